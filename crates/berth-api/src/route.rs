//! Dispatch: which service, protocol and operation a request is for (spec/protocols.md §2),
//! then authentication, decoding, the call, and the response envelope.
//!
//! The support tables here are the single list of what Berth implements; the compatibility
//! page is generated from them and the models (`compatibility_table`).

use crate::authorize::{Ask, Origin, authorize};
use crate::autoscaling::AasOp;
use crate::cloudwatch::CwOp;
use crate::ecr::EcrOp;
use crate::ecs::EcsOp;
use crate::elbv2::ElbOp;
use crate::errors::{self, ApiError};
use crate::iam::IamOp;
use crate::logs::LogsOp;
pub use crate::operation::{Info, Support};
use crate::protocol::{self, Proto};
use crate::{
    ApiState, MAX_BODY, Regional, auth, autoscaling, cloudwatch, ecr, ecs, elbv2, iam, logs,
    registry, sts,
};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use berth_aws::sigv4::{self, Request as SigRequest};
use berth_aws::validate::{Invalid, strip_nulls, validate};
use berth_aws::{Protocol, Service, query};
use berth_node_api::{agent, lb};
use berth_types::Principal;
use serde_json::Value;
use std::sync::Arc;

/// What one AWS API call is for: its operation, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ecs(EcsOp),
    Ecr(EcrOp),
    Elb(ElbOp),
    Sts(StsOp),
    Iam(IamOp),
    Cw(CwOp),
    Aas(AasOp),
    Logs(LogsOp),
}

impl Op {
    /// The operation `name` of `service`, if Berth implements it.
    pub fn parse(service: Service, name: &str) -> Option<Op> {
        match service {
            Service::Ecs => EcsOp::parse(name).map(Op::Ecs),
            Service::Ecr => EcrOp::parse(name).map(Op::Ecr),
            Service::Elbv2 => ElbOp::parse(name).map(Op::Elb),
            Service::Sts => StsOp::parse(name).map(Op::Sts),
            Service::Iam => IamOp::parse(name).map(Op::Iam),
            Service::CloudWatch => CwOp::parse(name).map(Op::Cw),
            Service::ApplicationAutoScaling => AasOp::parse(name).map(Op::Aas),
            Service::Logs => LogsOp::parse(name).map(Op::Logs),
        }
    }

    pub fn info(self) -> Info {
        match self {
            Op::Ecs(o) => o.info(),
            Op::Ecr(o) => o.info(),
            Op::Elb(o) => o.info(),
            Op::Sts(o) => o.info(),
            Op::Iam(o) => o.info(),
            Op::Cw(o) => o.info(),
            Op::Aas(o) => o.info(),
            Op::Logs(o) => o.info(),
        }
    }
}

crate::operation::operations! {
    /// The STS operations Berth implements (awsQuery).
    pub enum StsOp ("sts") {
        GetCallerIdentity => Read, Any, Implemented;
        AssumeRole => Write, Arns("RoleArn"),
            Partial("no session tags, ExternalId checks only through conditions, no MFA");
        GetSessionToken => Read, Any, Partial("no MFA");
    }
}

/// What a handler gets: the server, the region the request was signed for, the verified
/// caller (and its session token, if it signed with temporary credentials), where the
/// request came from, the request's size.
pub struct Cx<'a> {
    pub state: &'a ApiState,
    pub region: Arc<Regional>,
    pub principal: &'a Principal,
    pub session_token: Option<&'a str>,
    pub origin: Origin,
    pub body_len: usize,
}

/// What Berth does with `operation` of `service`.
pub fn support(service: Service, operation: &str) -> Support {
    Op::parse(service, operation).map_or(Support::NotImplemented, |op| op.info().support)
}

/// Every operation of every model with its support (and, for implemented ones, what is
/// known of them), by service then name.
pub fn compatibility_table() -> Vec<(Service, &'static str, Support, Option<Info>)> {
    let mut out = Vec::new();
    for service in Service::ALL {
        for name in service.model().operations.keys() {
            let info = Op::parse(service, name).map(Op::info);
            let support = info.map_or(Support::NotImplemented, |i| i.support);
            out.push((service, name.as_str(), support, info));
        }
    }
    out
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; charset=utf-8")
        .body(Body::from(body))
        .expect("valid response")
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

fn query_has_action(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|p| p.starts_with("Action=")))
}

/// Handles one request on the API listener.
pub async fn handle(state: &ApiState, req: Request<Body>) -> Response<Body> {
    let request_id = request_id();
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    if path == "/healthz" && parts.method == Method::GET {
        return text(StatusCode::OK, "ok\n");
    }
    if path == "/v2" || path.starts_with("/v2/") {
        return registry::handle(state, parts, body).await;
    }
    if let Some(rest) = path.strip_prefix(registry::LAYER_URL_PREFIX) {
        return registry::layer_download(state, rest, parts.uri.query(), &parts.headers).await;
    }
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(b) => b,
        Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
    };
    let payload_sha256 = sigv4::sha256_hex(&body);
    let sig = SigRequest {
        method: parts.method.as_str(),
        path,
        query: parts.uri.query(),
        headers: &parts.headers,
        payload_sha256: &payload_sha256,
    };
    let node = NodeCall {
        state,
        sig: &sig,
        origin: Origin::of(&parts.extensions),
        request_id: &request_id,
    };
    if [
        agent::HEARTBEAT,
        agent::DESIRED,
        agent::REPORT,
        agent::CREDENTIALS,
        agent::STATS,
    ]
    .contains(&path)
    {
        return Box::pin(agent_call(node, path, &body)).await;
    }
    if [lb::CONFIG, lb::HEALTH, lb::METRICS].contains(&path) {
        return Box::pin(lb_call(node, path, &body)).await;
    }
    // Everything below needs a signature: an unsigned request is refused before anything
    // else is looked at (what it names is not disclosed to an anonymous caller).
    let claim = sigv4::parse(&sig);
    if let Err(e @ sigv4::AuthError::Missing) = &claim {
        let proto = unsigned_proto(&parts, &body);
        return protocol::error(proto, errors::auth_error(e, proto.is_json()), &request_id);
    }
    if path == "/metrics" || path == OPS_STATUS || path.starts_with(OPS_ACTIVATE) {
        return Box::pin(operator_call(state, &parts, &sig, &request_id)).await;
    }
    if path == "/_berth/reset" || path == CLOCK {
        return Box::pin(ephemeral_call(state, &parts, &sig, &request_id)).await;
    }
    match aws_call(state, &parts, &body, &sig, claim, &request_id).await {
        Ok(r) | Err(r) => r,
    }
}

/// The endpoints of `--ephemeral` servers (root only): `POST /_berth/reset` and the
/// credential clock.
async fn ephemeral_call(
    state: &ApiState,
    parts: &axum::http::request::Parts,
    sig: &SigRequest<'_>,
    request_id: &str,
) -> Response<Body> {
    let path = parts.uri.path();
    if !state.inner.reset_enabled || parts.method != Method::POST {
        return text(StatusCode::NOT_FOUND, "not found\n");
    }
    if let Err(denied) = root_only(state, sig, request_id) {
        return denied;
    }
    if path == CLOCK {
        let secs = query::parse_form(parts.uri.query().unwrap_or("").as_bytes())
            .get("advance")
            .and_then(|s| s.parse::<i64>().ok())
            .filter(|s| *s >= 0);
        return match secs {
            Some(s) => {
                state.advance_clock(s);
                text(StatusCode::OK, "advanced\n")
            }
            None => text(StatusCode::BAD_REQUEST, "advance=<seconds> is required\n"),
        };
    }
    reset(state, request_id).await
}

/// An AWS API call: which operation (from the request alone), who calls, the decoded and
/// validated input, the handler, the response envelope.
async fn aws_call(
    state: &ApiState,
    parts: &axum::http::request::Parts,
    body: &[u8],
    sig: &SigRequest<'_>,
    claim: Result<sigv4::Claim, sigv4::AuthError>,
    request_id: &str,
) -> Result<Response<Body>, Response<Body>> {
    let (proto, operation, input) =
        identify(parts, body, sig).map_err(|(p, e)| protocol::error(p, e, request_id))?;
    let service = proto.service().expect("known service");
    let session_token = claim.as_ref().ok().and_then(|c| c.security_token.clone());
    let principal = claim
        .and_then(|claim| auth::authenticate(state, sig, &claim, service.signing_name()))
        .map_err(|e| {
            tracing::debug!(request_id, error = %e, "authentication failed");
            protocol::error(proto, errors::auth_error(&e, proto.is_json()), request_id)
        })?;
    let op = resolve(proto, &operation).map_err(|e| protocol::error(proto, e, request_id))?;
    let value = decode(proto, &operation, input, body)
        .map_err(|e| protocol::error(proto, e, request_id))?;
    let cx = Cx {
        state,
        region: state.region(&principal.region),
        principal: &principal,
        session_token: session_token.as_deref(),
        origin: Origin::of(&parts.extensions),
        body_len: body.len(),
    };
    let error = |e: berth_types::Error| match op {
        Op::Ecs(_) => errors::ecs_error(e, request_id),
        Op::Ecr(_) => errors::ecr_error(e, request_id),
        Op::Elb(_) | Op::Sts(_) | Op::Iam(_) => errors::query_error(e, request_id),
        Op::Cw(_) => errors::cloudwatch_error(e, request_id),
        Op::Aas(_) => errors::autoscaling_error(e, request_id),
        Op::Logs(_) => errors::logs_error(e, request_id),
    };
    enforce(&cx, op, &value).map_err(|e| protocol::error(proto, error(e), request_id))?;
    // The services' dispatches box their handlers (STS's are plain functions): an `async
    // fn`'s future is as large as its largest state, and every request would otherwise carry
    // (and copy) the largest handler of all.
    let result = match op {
        Op::Ecs(op) => ecs::dispatch(&cx, op, value).await,
        Op::Sts(op) => sts::dispatch(&cx, op, value).await,
        Op::Ecr(op) => ecr::dispatch(&cx, op, value).await,
        Op::Elb(op) => elbv2::dispatch(&cx, op, value).await,
        Op::Iam(op) => iam::dispatch(&cx, op, value).await,
        Op::Cw(op) => cloudwatch::dispatch(&cx, op, value).await,
        Op::Aas(op) => autoscaling::dispatch(&cx, op, value).await,
        Op::Logs(op) => logs::dispatch(&cx, op, value).await,
    }
    .map_err(error);
    Ok(match result {
        Ok(output) => protocol::success(proto, &operation, output, request_id),
        Err(e) => protocol::error(proto, e, request_id),
    })
}

/// Step 5: may the caller do it? The operation's action on each resource its input names,
/// with the resource's own policy where it has one (an ECR repository's; a role's trust policy
/// for `sts:AssumeRole`), and `iam:PassRole` on the roles an ECS call hands to tasks.
fn enforce(cx: &Cx<'_>, op: Op, input: &Value) -> Result<(), berth_types::Error> {
    let p = cx.principal;
    if p.is_root() || op == Op::Sts(StsOp::GetCallerIdentity) {
        return Ok(());
    }
    let info = op.info();
    let place = crate::operation::Place {
        account: p.account.as_str(),
        region: p.region.as_str(),
    };
    let resources = info.resource.arns(input, &place);
    let mut resource_policy = None;
    let mut must_allow = false;
    match (op, info.resource) {
        // The registry's policy grants what ECR enforces at the registry level.
        (Op::Ecr(EcrOp::CreateRepository), _) => {
            if let Ok(Some(text)) = cx.region.registry.registry_policy() {
                resource_policy = cx
                    .state
                    .iam()
                    .compiled(&text, berth_iam::Kind::Resource)
                    .ok();
            }
        }
        (Op::Ecr(_), crate::operation::Resource::Repository(member)) => {
            if let Some(name) = input.get(member).and_then(Value::as_str)
                && let Ok(repo) = cx.region.registry.repository_get(name)
                && let Some(text) = repo.policy
            {
                resource_policy = cx
                    .state
                    .iam()
                    .compiled(&text, berth_iam::Kind::Resource)
                    .ok();
            }
        }
        (Op::Sts(StsOp::AssumeRole), _) => {
            must_allow = true;
            let arn = input.get("RoleArn").and_then(Value::as_str).unwrap_or("");
            let name = arn.rsplit('/').next().unwrap_or("");
            if let Ok(role) = cx.state.iam().role(name) {
                resource_policy = cx
                    .state
                    .iam()
                    .compiled(&role.trust, berth_iam::Kind::Trust)
                    .ok();
            }
        }
        _ => {}
    }
    let extra = extra_context(op, input, &resources, &place);
    let tags_of = |arn: &str| resource_tags(cx, op, arn);
    let ask = Ask {
        resource_policy: resource_policy.as_deref(),
        resource_must_allow: must_allow,
        extra: &extra,
        tags_of: Some(&tags_of),
        ..Ask::new(info.action, &resources)
    };
    authorize(cx.state, p, &cx.origin, &ask)?;
    if let Op::Ecs(_) = op {
        let roles = passed_roles(cx, input);
        if !roles.is_empty() {
            let to_tasks = [(
                "iam:PassedToService".to_string(),
                vec!["ecs-tasks.amazonaws.com".to_string()],
            )];
            let ask = Ask {
                extra: &to_tasks,
                ..Ask::new("iam:PassRole", &roles)
            };
            authorize(cx.state, p, &cx.origin, &ask)?;
        }
    }
    Ok(())
}

/// The tags of the resource `arn` an operation acts on (none for what has no tags, or is
/// not found).
fn resource_tags(cx: &Cx<'_>, op: Op, arn: &str) -> Vec<berth_types::Tag> {
    let region = &cx.region;
    match op {
        Op::Ecs(_) => region.ecs.tags_list(arn).unwrap_or_default(),
        Op::Ecr(_) => region
            .scope
            .arn_resource("ecr", "repository", arn)
            .and_then(|name| region.registry.repository_get(name).ok())
            .map(|r| r.tags)
            .unwrap_or_default(),
        Op::Elb(_) => region
            .elb
            .tags_describe(vec![arn.to_string()])
            .ok()
            .and_then(|mut found| found.pop())
            .map(|(_, tags)| tags)
            .unwrap_or_default(),
        Op::Aas(_) => region
            .autoscaling
            .targets_describe(&[])
            .unwrap_or_default()
            .into_iter()
            .find(|t| t.arn == arn)
            .map(|t| t.tags)
            .unwrap_or_default(),
        Op::Sts(_) | Op::Iam(_) | Op::Cw(_) => Vec::new(),
        Op::Logs(_) => logs::tags_of_arn(region, arn),
    }
}

/// The condition keys of a request's input: the tags it sets, the cluster of an ECS call.
fn extra_context(
    op: Op,
    input: &Value,
    resources: &[String],
    place: &crate::operation::Place<'_>,
) -> Vec<(String, Vec<String>)> {
    let mut extra = Vec::new();
    if let Some(tags) = request_tags(input) {
        extra.push((
            "aws:TagKeys".to_string(),
            tags.iter().map(|t| t.0.clone()).collect(),
        ));
        for (k, v) in tags {
            extra.push((format!("aws:RequestTag/{k}"), vec![v]));
        }
    }
    if let Op::Ecs(ecs_op) = op {
        let mut cluster: Vec<String> = resources
            .iter()
            .filter(|r| r.contains(":cluster/"))
            .cloned()
            .collect();
        // An operation with a `cluster` member acts in that cluster (`default` when absent),
        // whatever its resource is (RunTask's is the task definition).
        if cluster.is_empty() && has_cluster_member(ecs_op) {
            cluster = crate::operation::Resource::Cluster("cluster").arns(input, place);
        }
        if !cluster.is_empty() {
            extra.push(("ecs:cluster".to_string(), cluster));
        }
    }
    extra
}

/// Whether the ECS operation's input has a `cluster` member (the model says).
fn has_cluster_member(op: EcsOp) -> bool {
    let model = Service::Ecs.model();
    model
        .operation(op.name())
        .and_then(|o| o.input.as_ref())
        .and_then(|i| model.shapes.get(&i.shape))
        .is_some_and(|shape| shape.members.contains_key("cluster"))
}

/// The tags a request sets (`tags`/`Tags`, ECS/ECR `key`/`value`, ELB and IAM `Key`/`Value`).
fn request_tags(input: &Value) -> Option<Vec<(String, String)>> {
    let list = input
        .get("tags")
        .or_else(|| input.get("Tags"))
        .and_then(Value::as_array)?;
    Some(
        list.iter()
            .filter_map(|t| {
                let k = t.get("key").or_else(|| t.get("Key"))?.as_str()?;
                let v = t
                    .get("value")
                    .or_else(|| t.get("Value"))
                    .and_then(Value::as_str);
                Some((k.to_string(), v.unwrap_or("").to_string()))
            })
            .collect(),
    )
}

/// The roles an ECS call hands to tasks: `taskRoleArn` and `executionRoleArn` of a task
/// definition it registers, of a task's overrides, and of the task definition it runs or
/// deploys (RunTask, StartTask, CreateService, UpdateService).
fn passed_roles(cx: &Cx<'_>, input: &Value) -> Vec<String> {
    let referenced = input
        .get("taskDefinition")
        .and_then(Value::as_str)
        .and_then(|td| cx.region.ecs.task_definition_describe(td).ok())
        .map(|td| {
            [
                td.spec.task_role_arn.clone(),
                td.spec.execution_role_arn.clone(),
            ]
        });
    let mut out = Vec::new();
    let named = [Some(input), input.get("overrides")]
        .into_iter()
        .flatten()
        .flat_map(|holder| ["taskRoleArn", "executionRoleArn"].map(|m| holder.get(m)))
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string));
    for arn in named.chain(referenced.into_iter().flatten().flatten()) {
        if !out.contains(&arn) {
            out.push(arn);
        }
    }
    out
}

/// An RPC v2 CBOR request (`smithy-protocol: rpc-v2-cbor`): the service and operation its
/// path's last four segments name (`…/service/<Svc>/operation/<Op>`).
fn cbor_target(parts: &axum::http::request::Parts) -> Option<(Option<Service>, String)> {
    let header = parts.headers.get("smithy-protocol")?.to_str().ok()?;
    if !header.eq_ignore_ascii_case("rpc-v2-cbor") {
        return None;
    }
    let segments: Vec<&str> = parts.uri.path().rsplit('/').take(4).collect();
    match segments.as_slice() {
        [op, "operation", svc, "service"] => {
            Some((Service::by_cbor_service_name(svc), op.to_string()))
        }
        _ => Some((None, String::new())),
    }
}

/// Step 1: the service, protocol and operation name, from the request alone.
fn identify(
    parts: &axum::http::request::Parts,
    body: &[u8],
    sig: &SigRequest<'_>,
) -> Result<(Proto, String, Input), (Proto, ApiError)> {
    if let Some((service, op)) = cbor_target(parts) {
        return match service {
            _ if parts.headers.contains_key("x-amz-target") => Err((
                Proto::UnknownJson,
                ApiError::new(
                    "SerializationException",
                    400,
                    "An RPC v2 CBOR request must not carry X-Amz-Target.",
                ),
            )),
            Some(s) if !op.is_empty() => Ok((Proto::Cbor(s), op, Input::Cbor)),
            _ => Err((
                Proto::UnknownJson,
                ApiError::new("UnknownOperationException", 404, ""),
            )),
        };
    }
    if let Some(target) = parts.headers.get("x-amz-target") {
        let target = target.to_str().unwrap_or("");
        let (prefix, op) = target.rsplit_once('.').unwrap_or(("", target));
        return match Service::by_target_prefix(prefix) {
            Some(s) => Ok((Proto::Json(s), op.to_string(), Input::Json)),
            None => {
                let e = ApiError::new("UnknownOperationException", 400, "");
                Err((Proto::UnknownJson, e))
            }
        };
    }
    let query = (parts.method == Method::POST && is_form(&parts.headers))
        || (parts.method == Method::GET && query_has_action(parts.uri.query()));
    if !query {
        let e = ApiError::new(
            "UnknownOperationException",
            400,
            "The request names no operation: send X-Amz-Target (JSON protocols) or Action and Version (query protocol).",
        );
        return Err((Proto::UnknownJson, e));
    }
    let params = if parts.method == Method::POST {
        query::parse_form(body)
    } else {
        query::parse_form(parts.uri.query().unwrap_or("").as_bytes())
    };
    let service = params
        .get("Version")
        .and_then(|v| Service::by_query_version(v))
        .or_else(|| {
            sigv4::parse(sig)
                .ok()
                .and_then(|c| Service::by_signing_name(&c.service))
                .filter(|s| s.protocol() == Protocol::Query)
        });
    let Some(service) = service else {
        let e = ApiError::new(
            "InvalidAction",
            400,
            "The request does not name a service Berth serves (Version parameter).",
        );
        return Err((Proto::UnknownQuery, e));
    };
    let Some(action) = params.get("Action").cloned() else {
        let e = ApiError::new(
            "MissingAction",
            400,
            "The request must contain the parameter Action.",
        );
        return Err((Proto::Query(service), e));
    };
    Ok((Proto::Query(service), action, Input::Query(params)))
}

/// Step 3: the operation, if the model has it and Berth implements it.
fn resolve(proto: Proto, operation: &str) -> Result<Op, ApiError> {
    let service = proto.service().expect("known service");
    if service.model().operation(operation).is_none() {
        return Err(if proto.is_json() {
            ApiError::new("UnknownOperationException", 400, "")
        } else {
            ApiError::new(
                "InvalidAction",
                400,
                format!("The action {operation} is not valid for this web service."),
            )
        });
    }
    Op::parse(service, operation).ok_or_else(|| errors::not_implemented(service, operation))
}

/// Step 4: the input as JSON (awsQuery forms walked through the input shape), validated
/// against the model, nulls removed.
fn decode(proto: Proto, operation: &str, input: Input, body: &[u8]) -> Result<Value, ApiError> {
    let service = proto.service().expect("known service");
    let model = service.model();
    let op = model.operation(operation).expect("resolved");
    let mut value = match input {
        Input::Json if body.is_empty() => Value::Object(Default::default()),
        Input::Json => match serde_json::from_slice::<Value>(body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return Err(ApiError::new(
                    "SerializationException",
                    400,
                    "The request body must be a JSON object.",
                ));
            }
            Err(err) => {
                return Err(ApiError::new(
                    "SerializationException",
                    400,
                    format!("Malformed JSON: {err}"),
                ));
            }
        },
        Input::Cbor if body.is_empty() => Value::Object(Default::default()),
        Input::Cbor => match berth_aws::cbor::decode(body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                return Err(ApiError::new(
                    "SerializationException",
                    400,
                    "The request body must be a CBOR map.",
                ));
            }
            Err(e) => return Err(ApiError::new("SerializationException", 400, e.to_string())),
        },
        Input::Query(params) => match &op.input {
            None => Value::Object(Default::default()),
            Some(r) => query::decode(model, &r.shape, &params)
                .map_err(|bad| ApiError::new(service.validation_error_code(), 400, bad.0))?,
        },
    };
    if let Some(input_ref) = &op.input
        && let Err(invalid) = validate(model, &input_ref.shape, &value)
    {
        return Err(match invalid {
            Invalid::Serialization(m) if proto.is_json() => {
                ApiError::new("SerializationException", 400, m)
            }
            Invalid::Serialization(m) | Invalid::Constraint(m) => {
                ApiError::new(service.validation_error_code(), 400, m)
            }
        });
    }
    strip_nulls(&mut value);
    Ok(value)
}

/// The envelope to refuse an unsigned request in: its service's when it names one Berth
/// serves, else the JSON one.
fn unsigned_proto(parts: &axum::http::request::Parts, body: &[u8]) -> Proto {
    if let Some((service, _)) = cbor_target(parts) {
        return service.map_or(Proto::UnknownJson, Proto::Cbor);
    }
    if let Some(target) = parts.headers.get("x-amz-target") {
        let prefix = target
            .to_str()
            .unwrap_or("")
            .rsplit_once('.')
            .map_or("", |p| p.0);
        return Service::by_target_prefix(prefix).map_or(Proto::UnknownJson, Proto::Json);
    }
    let params = if parts.method == Method::POST && is_form(&parts.headers) {
        query::parse_form(body)
    } else {
        query::parse_form(parts.uri.query().unwrap_or("").as_bytes())
    };
    params
        .get("Version")
        .and_then(|v| Service::by_query_version(v))
        .map_or(Proto::UnknownJson, Proto::Query)
}

/// A request id: a random (v4) UUID, as AWS's are.
fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

enum Input {
    Json,
    Cbor,
    Query(query::Params),
}

/// Authenticates a node endpoint call (SigV4 for `service`) and authorizes it as `action`
/// on `resources` (node endpoints are AWS actions like any call: an agent's `ecs:Poll`, …):
/// the error response if either fails. A node acts in the region it signs for (an agent's
/// cluster, a load balancer node's listeners, are that region's): its control plane.
#[allow(clippy::result_large_err)]
fn node_auth(
    node: &NodeCall<'_>,
    service: &str,
    action: &str,
    cluster: Option<&str>,
) -> Result<Arc<Regional>, Response<Body>> {
    let state = node.state;
    let p = auth::authenticate_request(state, node.sig, Some(service)).map_err(|e| {
        protocol::error(
            Proto::Json(Service::Ecs),
            errors::auth_error(&e, true),
            node.request_id,
        )
    })?;
    // On the cluster (a name or an ARN) in the region signed for, else on `*`.
    let resource = match cluster {
        Some(c) if c.starts_with("arn:") => c.to_string(),
        Some(c) => format!("arn:aws:ecs:{}:{}:cluster/{c}", p.region, p.account),
        None => "*".to_string(),
    };
    let ask = Ask::new(action, std::slice::from_ref(&resource));
    authorize(state, &p, &node.origin, &ask).map_err(|e| {
        protocol::error(
            Proto::Json(Service::Ecs),
            errors::ecs_error(e, node.request_id),
            node.request_id,
        )
    })?;
    Ok(state.region(&p.region))
}

/// One node endpoint request: the server, its signature, where it came from.
struct NodeCall<'a> {
    state: &'a ApiState,
    sig: &'a SigRequest<'a>,
    origin: Origin,
    request_id: &'a str,
}

/// A node endpoint's JSON answer, or its error in the ECS shape.
fn node_response(result: Result<Value, berth_types::Error>, request_id: &str) -> Response<Body> {
    match result {
        Ok(v) => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/json")
            .header("x-amzn-RequestId", request_id)
            .body(Body::from(v.to_string()))
            .expect("valid response"),
        Err(e) => protocol::error(
            Proto::Json(Service::Ecs),
            errors::ecs_error(e, request_id),
            request_id,
        ),
    }
}

/// The load balancer node endpoints: signed like every call, JSON in and out. Reading the
/// listeners' configuration is `elasticloadbalancing:DescribeLoadBalancers`; reporting
/// target health is Berth's `elasticloadbalancing:ReportTargetHealth` (no AWS action is a
/// node's report).
async fn lb_call(node: NodeCall<'_>, path: &str, body: &[u8]) -> Response<Body> {
    let action = match path {
        lb::CONFIG => "elasticloadbalancing:DescribeLoadBalancers",
        lb::METRICS => "cloudwatch:PutMetricData",
        _ => "elasticloadbalancing:ReportTargetHealth",
    };
    let region = match node_auth(&node, "elasticloadbalancing", action, None) {
        Ok(r) => r,
        Err(denied) => return denied,
    };
    let elb = &region.elb;
    let done = |()| Value::Object(Default::default());
    let result = match path {
        lb::CONFIG => elb
            .node_config()
            .and_then(|c| serde_json::to_value(c).map_err(berth_types::Error::internal)),
        lb::METRICS => match node_body::<lb::MetricsReport>(body) {
            Ok(r) => region.cloudwatch.load_balancer_metrics(&r).await.map(done),
            Err(e) => Err(e),
        },
        _ => match node_body::<lb::HealthReport>(body) {
            Ok(r) => elb.node_health(r).await.map(done),
            Err(e) => Err(e),
        },
    };
    node_response(result, node.request_id)
}

/// The agent endpoints (`berth-node-api::agent`): signed like every call, typed JSON in and
/// out, ECS errors. The desired-state poll, the heartbeat and a task role's credentials (for a
/// task on the calling instance only) are `ecs:Poll` on the cluster,
/// a task state report `ecs:SubmitTaskStateChange` (the agent's actions in
/// AmazonEC2ContainerServiceforEC2Role).
async fn agent_call(node: NodeCall<'_>, path: &str, body: &[u8]) -> Response<Body> {
    let parsed = match path {
        agent::DESIRED => node_body(body).map(AgentRequest::Desired),
        agent::REPORT => node_body(body).map(AgentRequest::Report),
        agent::CREDENTIALS => node_body(body).map(AgentRequest::Credentials),
        agent::STATS => node_body(body).map(AgentRequest::Stats),
        _ => node_body(body).map(AgentRequest::Heartbeat),
    };
    let request = match parsed {
        Ok(r) => r,
        Err(e) => return node_response(Err(e), node.request_id),
    };
    let (action, cluster) = match &request {
        AgentRequest::Desired(r) => ("ecs:Poll", &r.cluster),
        AgentRequest::Report(b) => ("ecs:SubmitTaskStateChange", &b.cluster),
        AgentRequest::Heartbeat(r) => ("ecs:Poll", &r.cluster),
        AgentRequest::Credentials(r) => ("ecs:Poll", &r.cluster),
        AgentRequest::Stats(r) => ("ecs:StartTelemetrySession", &r.cluster),
    };
    let region = match node_auth(&node, "ecs", action, Some(cluster)) {
        Ok(r) => r,
        Err(denied) => return denied,
    };
    let result = agent_answer(node.state, &region, request).await;
    node_response(result, node.request_id)
}

/// An agent endpoint's request, decoded.
enum AgentRequest {
    Desired(agent::DesiredRequest),
    Report(agent::ReportBatch),
    Heartbeat(agent::InstanceRef),
    Credentials(agent::CredentialsRequest),
    Stats(agent::StatsReport),
}

async fn agent_answer(
    state: &ApiState,
    region: &Regional,
    request: AgentRequest,
) -> Result<Value, berth_types::Error> {
    let ecs = &region.ecs;
    match request {
        AgentRequest::Desired(r) => {
            let cluster = ecs.cluster_name(Some(&r.cluster))?;
            // The poll is the agent's check-in: it never waits past a third of the agent
            // timeout.
            let wait = std::time::Duration::from_millis(r.timeout_ms.min(agent::MAX_WAIT_MS))
                .min(state.inner.agent_timeout / 3);
            ecs.instance_desired(&cluster, &r.container_instance, r.generation, wait)
                .await
                .and_then(to_json)
        }
        AgentRequest::Report(batch) => ecs.instance_report(batch).await.and_then(to_json),
        AgentRequest::Heartbeat(r) => {
            let cluster = ecs.cluster_name(Some(&r.cluster))?;
            ecs.instance_heartbeat(&cluster, &r.container_instance)
                .await
                .map(|()| Value::Object(Default::default()))
        }
        AgentRequest::Credentials(r) => {
            let cluster = ecs.cluster_name(Some(&r.cluster))?;
            let role =
                ecs.instance_task_role(&cluster, &r.container_instance, &r.task_arn, r.role)?;
            let task_id = r.task_arn.rsplit('/').next().unwrap_or_default();
            crate::sts::task_credentials(state, &role, task_id).and_then(to_json)
        }
        AgentRequest::Stats(r) => {
            let samples = ecs.instance_stats(&r)?;
            region
                .cloudwatch
                .ecs_metrics(&samples)
                .await
                .map(|()| Value::Object(Default::default()))
        }
    }
}

/// A node request body: a malformed one is the caller's error.
fn node_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, berth_types::Error> {
    serde_json::from_slice(body)
        .map_err(|e| berth_types::Error::InvalidParameter(format!("Malformed node request: {e}")))
}

fn to_json<T: serde::Serialize>(v: T) -> Result<Value, berth_types::Error> {
    serde_json::to_value(v).map_err(berth_types::Error::internal)
}

/// `GET` (or `POST {}`) `/_berth/status`: the background tasks' statuses as JSON (root only).
pub const OPS_STATUS: &str = "/_berth/status";
/// `POST /_berth/background/<task>`: activates a background task now and answers its status
/// once an activation that started after the request has finished (root only).
pub const OPS_ACTIVATE: &str = "/_berth/background/";

/// The operator endpoints: `/metrics` (Prometheus text), the status and activation of
/// background tasks. Signed like every call, and for the account's root only.
async fn operator_call(
    state: &ApiState,
    parts: &axum::http::request::Parts,
    sig: &SigRequest<'_>,
    request_id: &str,
) -> Response<Body> {
    let principal = match auth::authenticate_request(state, sig, None) {
        Ok(p) => p,
        Err(e) => {
            return protocol::error(Proto::UnknownJson, errors::auth_error(&e, true), request_id);
        }
    };
    if !principal.is_root() {
        let e = ApiError::new(
            "AccessDeniedException",
            403,
            format!(
                "{} may not read or activate the server's background tasks",
                principal.arn
            ),
        );
        return protocol::error(Proto::UnknownJson, e, request_id);
    }
    let driver = state.background();
    let path = parts.uri.path();
    if path == "/metrics" && parts.method == Method::GET {
        let text = berth_control::background::prometheus(&driver.statuses());
        return Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "text/plain; version=0.0.4; charset=utf-8")
            .body(Body::from(text))
            .expect("valid response");
    }
    if path == OPS_STATUS && (parts.method == Method::GET || parts.method == Method::POST) {
        let tasks: Vec<Value> = driver.statuses().iter().map(status_json).collect();
        return node_response(
            cluster_json(state.store()).map(|mut v| {
                v["blobs"] = Value::from(state.registry_of_every_region().blobs().location());
                v["backgroundTasks"] = Value::from(tasks);
                v
            }),
            request_id,
        );
    }
    if let Some(name) = path.strip_prefix(OPS_ACTIVATE)
        && parts.method == Method::POST
    {
        return match driver.task(name) {
            Some(task) => {
                node_response(Ok(status_json(&task.activate_and_wait().await)), request_id)
            }
            None => node_response(
                Err(berth_types::Error::ResourceNotFound(format!(
                    "There is no background task named {name}."
                ))),
                request_id,
            ),
        };
    }
    text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n")
}

/// The servers sharing the store (their own leases), the controllers' leader lease, and the
/// change feed's revision as the database and this server have it.
fn cluster_json(store: &berth_store::Store) -> Result<Value, berth_types::Error> {
    use berth_control::leader::{LEADER, REPLICA_PREFIX};
    let leases = store.leases()?;
    let leader = leases.iter().find(|l| l.name == LEADER);
    let servers: Vec<Value> = leases
        .iter()
        .filter_map(|l| {
            let id = l.name.strip_prefix(REPLICA_PREFIX)?;
            Some(serde_json::json!({
                "id": id,
                "endpoint": l.holder,
                "alive": l.remaining_ms > 0,
                "leaseRemainingMs": l.remaining_ms,
                "leader": leader.is_some_and(|ld| ld.holder == id && ld.remaining_ms > 0),
            }))
        })
        .collect();
    Ok(serde_json::json!({
        "servers": servers,
        "leader": leader.map(|l| serde_json::json!({
            "holder": l.holder,
            "epoch": l.epoch,
            "remainingMs": l.remaining_ms,
        })),
        "revision": store.revision()?,
        "appliedRevision": store.applied_revision(),
    }))
}

/// A background task's status as the operator endpoints show it.
fn status_json(s: &berth_control::background::Status) -> Value {
    let outcome = match &s.last_outcome {
        None => Value::Null,
        Some(Ok(counts)) => serde_json::json!({
            "ok": counts.iter().map(|(k, v)| ((*k).to_string(), Value::from(*v))).collect::<serde_json::Map<_, _>>()
        }),
        Some(Err(e)) => serde_json::json!({"error": e}),
    };
    serde_json::json!({
        "name": s.name,
        "periodSeconds": s.period.as_secs_f64(),
        "activations": s.activations,
        "failures": s.failures,
        "lastStarted": s.last_started.map(|t| t.epoch_seconds()),
        "lastDurationSeconds": s.last_duration.map(|d| d.as_secs_f64()),
        "lastOutcome": outcome,
    })
}

/// `POST /_berth/clock?advance=<seconds>` (ephemeral servers only, root only): moves the clock
/// credentials expire by forward — the tests' injected clock.
pub const CLOCK: &str = "/_berth/clock";

/// Lets only the account's root through: the error response otherwise.
#[allow(clippy::result_large_err)]
fn root_only(
    state: &ApiState,
    sig: &SigRequest<'_>,
    request_id: &str,
) -> Result<(), Response<Body>> {
    let proto = Proto::UnknownJson;
    match auth::authenticate_request(state, sig, None) {
        Ok(p) if p.is_root() => Ok(()),
        Ok(p) => {
            let e = ApiError::new(
                "AccessDeniedException",
                403,
                format!("{} may not use the server's test endpoints", p.arn),
            );
            Err(protocol::error(proto, e, request_id))
        }
        Err(e) => Err(protocol::error(
            proto,
            errors::auth_error(&e, true),
            request_id,
        )),
    }
}

/// `POST /_berth/reset` (ephemeral servers only, root only): empties all state.
async fn reset(state: &ApiState, request_id: &str) -> Response<Body> {
    match state.inner.store.write(|tx| tx.delete_all()).await {
        Ok(()) => {
            tracing::info!("state reset by POST /_berth/reset");
            text(StatusCode::OK, "reset\n")
        }
        Err(e) => protocol::error(
            Proto::UnknownJson,
            errors::ecs_error(e, request_id),
            request_id,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::{Access, Place, Resource};
    use serde_json::json;

    /// Every operation of every enum is one its service's model has (dispatch is an
    /// exhaustive `match`, so every one is handled), and parses back from its name.
    #[test]
    fn operation_enums_match_the_models() {
        let all: Vec<(Service, Op)> = EcsOp::ALL
            .iter()
            .map(|o| (Service::Ecs, Op::Ecs(*o)))
            .chain(EcrOp::ALL.iter().map(|o| (Service::Ecr, Op::Ecr(*o))))
            .chain(ElbOp::ALL.iter().map(|o| (Service::Elbv2, Op::Elb(*o))))
            .chain(StsOp::ALL.iter().map(|o| (Service::Sts, Op::Sts(*o))))
            .chain(IamOp::ALL.iter().map(|o| (Service::Iam, Op::Iam(*o))))
            .chain(CwOp::ALL.iter().map(|o| (Service::CloudWatch, Op::Cw(*o))))
            .chain(
                AasOp::ALL
                    .iter()
                    .map(|o| (Service::ApplicationAutoScaling, Op::Aas(*o))),
            )
            .collect();
        for (service, op) in all {
            let info = op.info();
            assert!(
                service.model().operation(info.name).is_some(),
                "{service:?} {} is not modeled",
                info.name
            );
            assert_eq!(Op::parse(service, info.name), Some(op));
            assert_ne!(info.support, Support::NotImplemented);
        }
    }

    /// The router's table: service + name → operation, IAM action and access level.
    #[test]
    fn router_resolves_operations_by_table() {
        let cases: &[(Service, &str, Option<&str>, Option<Access>)] = &[
            (
                Service::Ecs,
                "RunTask",
                Some("ecs:RunTask"),
                Some(Access::Write),
            ),
            (
                Service::Ecs,
                "ListClusters",
                Some("ecs:ListClusters"),
                Some(Access::List),
            ),
            (
                Service::Ecs,
                "DescribeServices",
                Some("ecs:DescribeServices"),
                Some(Access::Read),
            ),
            (
                Service::Ecs,
                "TagResource",
                Some("ecs:TagResource"),
                Some(Access::Tagging),
            ),
            (Service::Ecs, "CreateTaskSet", None, None),
            (Service::Ecs, "NoSuchThing", None, None),
            (
                Service::Ecr,
                "PutImage",
                Some("ecr:PutImage"),
                Some(Access::Write),
            ),
            (
                Service::Ecr,
                "SetRepositoryPolicy",
                Some("ecr:SetRepositoryPolicy"),
                Some(Access::PermissionsManagement),
            ),
            (Service::Ecr, "PutSigningConfiguration", None, None),
            (
                Service::Elbv2,
                "CreateLoadBalancer",
                Some("elasticloadbalancing:CreateLoadBalancer"),
                Some(Access::Write),
            ),
            (
                Service::Sts,
                "GetCallerIdentity",
                Some("sts:GetCallerIdentity"),
                Some(Access::Read),
            ),
            (
                Service::Sts,
                "AssumeRole",
                Some("sts:AssumeRole"),
                Some(Access::Write),
            ),
        ];
        for (service, name, action, access) in cases {
            let info = Op::parse(*service, name).map(Op::info);
            assert_eq!(info.map(|i| i.action), *action, "{service:?} {name}");
            assert_eq!(info.map(|i| i.access), *access, "{service:?} {name}");
            let expected = if action.is_some() {
                "supported"
            } else {
                "not implemented"
            };
            let got = if support(*service, name) == Support::NotImplemented {
                "not implemented"
            } else {
                "supported"
            };
            assert_eq!(got, expected, "{service:?} {name}");
        }
    }

    /// Which resources an operation names, as IAM will check them.
    #[test]
    fn operations_name_their_resources_by_table() {
        let place = Place {
            account: "000000000000",
            region: "eu-west-1",
        };
        let arn = |r: &str| format!("arn:aws:{r}");
        let cases: Vec<(Op, serde_json::Value, Vec<String>)> = vec![
            (Op::Ecs(EcsOp::ListClusters), json!({}), vec!["*".into()]),
            (
                Op::Ecs(EcsOp::DescribeClusters),
                json!({"clusters": ["a", "arn:aws:ecs:eu-west-1:000000000000:cluster/b"]}),
                vec![
                    arn("ecs:eu-west-1:000000000000:cluster/a"),
                    arn("ecs:eu-west-1:000000000000:cluster/b"),
                ],
            ),
            (
                Op::Ecs(EcsOp::DeleteCluster),
                json!({}),
                vec![arn("ecs:eu-west-1:000000000000:cluster/default")],
            ),
            (
                Op::Ecs(EcsOp::RunTask),
                json!({"cluster": "c", "taskDefinition": "web"}),
                vec![arn("ecs:eu-west-1:000000000000:task-definition/web:*")],
            ),
            (
                Op::Ecs(EcsOp::StopTask),
                json!({"cluster": "c", "task": "0123"}),
                vec![arn("ecs:eu-west-1:000000000000:task/c/0123")],
            ),
            (
                Op::Ecs(EcsOp::DescribeServices),
                json!({"cluster": "arn:aws:ecs:eu-west-1:000000000000:cluster/c", "services": ["s"]}),
                vec![arn("ecs:eu-west-1:000000000000:service/c/s")],
            ),
            (
                Op::Ecr(EcrOp::PutImage),
                json!({"repositoryName": "app/web"}),
                vec![arn("ecr:eu-west-1:000000000000:repository/app/web")],
            ),
            (
                Op::Ecr(EcrOp::GetAuthorizationToken),
                json!({}),
                vec!["*".into()],
            ),
            (
                Op::Elb(ElbOp::DeleteTargetGroup),
                json!({"TargetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:000000000000:targetgroup/t/1"}),
                vec![arn(
                    "elasticloadbalancing:eu-west-1:000000000000:targetgroup/t/1",
                )],
            ),
        ];
        for (op, input, expected) in cases {
            let resource: Resource = op.info().resource;
            assert_eq!(resource.arns(&input, &place), expected, "{op:?}");
        }
    }
}
