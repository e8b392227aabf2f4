//! Dispatch: which service, protocol and operation a request is for (spec/protocols.md §2),
//! then authentication, decoding, the call, and the response envelope.
//!
//! The support tables here are the single list of what Berth implements; the compatibility
//! page is generated from them and the models (`compatibility_table`).

use crate::errors::{self, ApiError};
use crate::protocol::{self, Proto};
use crate::{ApiState, MAX_BODY, auth, ecr, ecs, elbv2, registry, sts};
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use berth_aws::sigv4::{self, Request as SigRequest};
use berth_aws::validate::{Invalid, strip_nulls, validate};
use berth_aws::{Protocol, Service, query};
use berth_node_api::agent;
use berth_types::Principal;
use serde_json::Value;
use time::OffsetDateTime;

/// How far Berth implements one modeled operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Implemented,
    /// Implemented, with the limits the note gives.
    Partial(&'static str),
    NotImplemented,
}

const ECS_SUPPORT: &[(&str, Support)] = &[
    ("CreateCluster", Support::Implemented),
    ("DescribeClusters", Support::Implemented),
    ("ListClusters", Support::Implemented),
    ("DeleteCluster", Support::Implemented),
    ("UpdateCluster", Support::Implemented),
    ("UpdateClusterSettings", Support::Implemented),
    ("RegisterTaskDefinition", Support::Implemented),
    ("DescribeTaskDefinition", Support::Implemented),
    ("ListTaskDefinitions", Support::Implemented),
    ("ListTaskDefinitionFamilies", Support::Implemented),
    ("DeregisterTaskDefinition", Support::Implemented),
    (
        "DeleteTaskDefinitions",
        Support::Partial("revisions stay DELETE_IN_PROGRESS (describable); never purged yet"),
    ),
    (
        "TagResource",
        Support::Partial(
            "clusters, task definitions and services (not yet tasks or container instances)",
        ),
    ),
    (
        "UntagResource",
        Support::Partial(
            "clusters, task definitions and services (not yet tasks or container instances)",
        ),
    ),
    (
        "ListTagsForResource",
        Support::Partial(
            "clusters, task definitions and services (not yet tasks or container instances)",
        ),
    ),
    ("ListAccountSettings", Support::Implemented),
    ("PutAccountSetting", Support::Implemented),
    ("PutAccountSettingDefault", Support::Implemented),
    ("RegisterContainerInstance", Support::Implemented),
    ("DescribeContainerInstances", Support::Implemented),
    ("ListContainerInstances", Support::Implemented),
    ("DeregisterContainerInstance", Support::Implemented),
    ("UpdateContainerInstancesState", Support::Implemented),
    ("PutAttributes", Support::Implemented),
    ("DeleteAttributes", Support::Implemented),
    ("ListAttributes", Support::Implemented),
    (
        "RunTask",
        Support::Partial(
            "EC2/EXTERNAL/FARGATE with strategies and constraints; no capacity providers; repositoryCredentials needs Secrets Manager, which Berth does not provide",
        ),
    ),
    (
        "StartTask",
        Support::Partial("as RunTask, on the given instances"),
    ),
    (
        "StopTask",
        Support::Partial("sets desiredStatus STOPPED; the agent stops the containers"),
    ),
    ("DescribeTasks", Support::Implemented),
    ("ListTasks", Support::Implemented),
    (
        "SubmitTaskStateChange",
        Support::Partial(
            "task status, container states and timestamps; no attachments or managed agents",
        ),
    ),
    ("SubmitContainerStateChange", Support::Implemented),
    (
        "CreateService",
        Support::Partial(
            "REPLICA and DAEMON with the ECS deployment controller and launchType; loadBalancers register tasks with ELBv2 target groups; no capacity providers, service discovery or Service Connect",
        ),
    ),
    (
        "UpdateService",
        Support::Partial(
            "task definition, desired count, forceNewDeployment, deployment configuration, placement, load balancers, network configuration",
        ),
    ),
    ("DeleteService", Support::Implemented),
    ("DescribeServices", Support::Implemented),
    ("ListServices", Support::Implemented),
    (
        "ListServicesByNamespace",
        Support::Partial("no service discovery yet: always an empty list"),
    ),
];

const STS_SUPPORT: &[(&str, Support)] = &[("GetCallerIdentity", Support::Implemented)];

/// What Berth does with `operation` of `service`.
pub fn support(service: Service, operation: &str) -> Support {
    let table = match service {
        Service::Ecs => ECS_SUPPORT,
        Service::Sts => STS_SUPPORT,
        Service::Ecr => ecr::SUPPORT,
        Service::Elbv2 => elbv2::SUPPORT,
        Service::ApplicationAutoScaling | Service::CloudWatch | Service::Logs | Service::Iam => &[],
    };
    table
        .iter()
        .find(|(name, _)| *name == operation)
        .map_or(Support::NotImplemented, |(_, s)| *s)
}

/// Every operation of every model with its support, by service then name.
pub fn compatibility_table() -> Vec<(Service, &'static str, Support)> {
    let mut out = Vec::new();
    for service in Service::ALL {
        for name in service.model().operations.keys() {
            out.push((service, name.as_str(), support(service, name)));
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

/// Handles one API request.
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
    if [agent::HEARTBEAT, agent::DESIRED, agent::REPORT].contains(&path) {
        return agent_call(state, path, &sig, &body, &request_id).await;
    }
    if path == LB_CONFIG || path == LB_HEALTH {
        return lb_call(state, path, &sig, &body, &request_id).await;
    }
    // Everything below needs a signature: an unsigned request is refused before anything
    // else is looked at (what it names is not disclosed to an anonymous caller).
    if let Err(e @ sigv4::AuthError::Missing) = sigv4::parse(&sig) {
        let proto = unsigned_proto(&parts, &body);
        return protocol::error(proto, errors::auth_error(&e, proto.is_json()), &request_id);
    }
    if path == "/metrics" || path == OPS_STATUS || path.starts_with(OPS_ACTIVATE) {
        return operator_call(state, &parts, &sig, &request_id).await;
    }
    if path == "/_berth/reset" {
        return if state.inner.reset_enabled && parts.method == Method::POST {
            reset(state, &sig, &request_id).await
        } else {
            text(StatusCode::NOT_FOUND, "not found\n")
        };
    }

    // 1. Which service and operation (before authentication).
    let (proto, operation, input) = if let Some(target) = parts.headers.get("x-amz-target") {
        let target = target.to_str().unwrap_or("");
        let (prefix, op) = target.rsplit_once('.').unwrap_or(("", target));
        match Service::by_target_prefix(prefix) {
            Some(s) => (Proto::Json(s), op.to_string(), Input::Json),
            None => {
                let e = ApiError::new("UnknownOperationException", 400, "");
                return protocol::error(Proto::UnknownJson, e, &request_id);
            }
        }
    } else if (parts.method == Method::POST && is_form(&parts.headers))
        || (parts.method == Method::GET && query_has_action(parts.uri.query()))
    {
        let params = if parts.method == Method::POST {
            query::parse_form(&body)
        } else {
            query::parse_form(parts.uri.query().unwrap_or("").as_bytes())
        };
        let service = params
            .get("Version")
            .and_then(|v| Service::by_query_version(v))
            .or_else(|| {
                sigv4::parse(&sig)
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
            return protocol::error(Proto::UnknownQuery, e, &request_id);
        };
        let Some(action) = params.get("Action").cloned() else {
            let e = ApiError::new(
                "MissingAction",
                400,
                "The request must contain the parameter Action.",
            );
            return protocol::error(Proto::Query(service), e, &request_id);
        };
        (Proto::Query(service), action, Input::Query(params))
    } else {
        let e = ApiError::new(
            "UnknownOperationException",
            400,
            "The request names no operation: send X-Amz-Target (JSON protocols) or Action and Version (query protocol).",
        );
        return protocol::error(Proto::UnknownJson, e, &request_id);
    };
    let service = proto.service().expect("known service");

    // 2. Who is calling.
    let principal = match sigv4::parse(&sig).and_then(|claim| {
        auth::authenticate(
            state.scope(),
            &state.inner.keys,
            &sig,
            &claim,
            service.signing_name(),
            OffsetDateTime::now_utc(),
        )
    }) {
        Ok(p) => p,
        Err(e) => {
            tracing::debug!(request_id, error = %e, "authentication failed");
            return protocol::error(proto, errors::auth_error(&e, proto.is_json()), &request_id);
        }
    };

    // 3. Which operation, and is it implemented.
    let model = service.model();
    let Some(op) = model.operation(&operation) else {
        let e = if proto.is_json() {
            ApiError::new("UnknownOperationException", 400, "")
        } else {
            ApiError::new(
                "InvalidAction",
                400,
                format!("The action {operation} is not valid for this web service."),
            )
        };
        return protocol::error(proto, e, &request_id);
    };
    if support(service, &operation) == Support::NotImplemented {
        return protocol::error(
            proto,
            errors::not_implemented(service, &operation),
            &request_id,
        );
    }

    // 4. Decode and validate the input.
    let mut value = match input {
        Input::Json if body.is_empty() => Value::Object(Default::default()),
        Input::Json => match serde_json::from_slice::<Value>(&body) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => {
                let e = ApiError::new(
                    "SerializationException",
                    400,
                    "The request body must be a JSON object.",
                );
                return protocol::error(proto, e, &request_id);
            }
            Err(err) => {
                let e = ApiError::new(
                    "SerializationException",
                    400,
                    format!("Malformed JSON: {err}"),
                );
                return protocol::error(proto, e, &request_id);
            }
        },
        Input::Query(params) => match &op.input {
            None => Value::Object(Default::default()),
            Some(r) => match query::decode(model, &r.shape, &params) {
                Ok(v) => v,
                Err(bad) => {
                    let e = ApiError::new(service.validation_error_code(), 400, bad.0);
                    return protocol::error(proto, e, &request_id);
                }
            },
        },
    };
    if let Some(input_ref) = &op.input
        && let Err(invalid) = validate(model, &input_ref.shape, &value)
    {
        let e = match invalid {
            Invalid::Serialization(m) if proto.is_json() => {
                ApiError::new("SerializationException", 400, m)
            }
            Invalid::Serialization(m) | Invalid::Constraint(m) => {
                ApiError::new(service.validation_error_code(), 400, m)
            }
        };
        return protocol::error(proto, e, &request_id);
    }
    strip_nulls(&mut value);

    // 5. Call.
    let result = match service {
        Service::Ecs => ecs::call(state, &principal, &operation, value, body.len())
            .await
            .map_err(|e| errors::ecs_error(e, &request_id)),
        Service::Sts => sts::call(state, &principal, &operation)
            .map_err(|e| errors::query_error(e, &request_id)),
        Service::Ecr => ecr::call(state, &principal, &operation, value)
            .await
            .map_err(|e| errors::ecr_error(e, &request_id)),
        Service::Elbv2 => elbv2::call(state, &operation, value)
            .await
            .map_err(|e| errors::query_error(e, &request_id)),
        Service::ApplicationAutoScaling | Service::CloudWatch | Service::Logs | Service::Iam => {
            Err(errors::not_implemented(service, &operation))
        }
    };
    match result {
        Ok(output) => protocol::success(proto, &operation, output, &request_id),
        Err(e) => protocol::error(proto, e, &request_id),
    }
}

/// The envelope to refuse an unsigned request in: its service's when it names one Berth
/// serves, else the JSON one.
fn unsigned_proto(parts: &axum::http::request::Parts, body: &[u8]) -> Proto {
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

/// A request id in UUID form: a random per-process prefix and a counter. Unique, cheap (no
/// system call per request), and sortable within one process's log.
fn request_id() -> String {
    use std::sync::LazyLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static PREFIX: LazyLock<u64> = LazyLock::new(rand::random);
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let (a, c) = (*PREFIX, COUNTER.fetch_add(1, Ordering::Relaxed));
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        (c >> 48) & 0xffff,
        c & 0xffff_ffff_ffff
    )
}

enum Input {
    Json,
    Query(query::Params),
}

/// Authenticates a node endpoint call (SigV4 for `service`): the error response if it fails.
fn node_auth(
    state: &ApiState,
    sig: &SigRequest<'_>,
    service: &str,
    request_id: &str,
) -> Option<Response<Body>> {
    sigv4::parse(sig)
        .and_then(|claim| {
            auth::authenticate(
                state.scope(),
                &state.inner.keys,
                sig,
                &claim,
                service,
                OffsetDateTime::now_utc(),
            )
        })
        .err()
        .map(|e| {
            protocol::error(
                Proto::Json(Service::Ecs),
                errors::auth_error(&e, true),
                request_id,
            )
        })
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

/// A load balancer node (`berth lb`) fetches the ELB configuration: `POST {}` (SigV4 for
/// `elasticloadbalancing`) answers every load balancer, listener, rule and target group.
pub const LB_CONFIG: &str = "/lb/v1/config";
/// A load balancer node reports a health transition: `POST {targetGroupArn, id, port, state,
/// reason}`.
pub const LB_HEALTH: &str = "/lb/v1/health";

/// The load balancer node endpoints: signed like every call, JSON in and out.
async fn lb_call(
    state: &ApiState,
    path: &str,
    sig: &SigRequest<'_>,
    body: &[u8],
    request_id: &str,
) -> Response<Body> {
    if let Some(denied) = node_auth(state, sig, "elasticloadbalancing", request_id) {
        return denied;
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Report {
        target_group_arn: String,
        id: String,
        port: i64,
        state: String,
        reason: Option<String>,
    }
    let elb = &state.inner.elb;
    let result = if path == LB_CONFIG {
        elb.data_plane_config()
            .and_then(|c| serde_json::to_value(c).map_err(berth_types::Error::internal))
    } else {
        match serde_json::from_slice::<Report>(body) {
            Ok(r) => elb
                .targets_report_health(
                    &r.target_group_arn,
                    &r.id,
                    r.port,
                    &r.state,
                    r.reason.as_deref(),
                )
                .await
                .map(|()| Value::Object(Default::default())),
            Err(e) => Err(berth_types::Error::InvalidParameter(format!(
                "Malformed health report: {e}"
            ))),
        }
    };
    node_response(result, request_id)
}

/// The agent endpoints (`berth-node-api::agent`): signed like every call, typed JSON in and
/// out, ECS errors.
async fn agent_call(
    state: &ApiState,
    path: &str,
    sig: &SigRequest<'_>,
    body: &[u8],
    request_id: &str,
) -> Response<Body> {
    if let Some(denied) = node_auth(state, sig, "ecs", request_id) {
        return denied;
    }
    let ecs = &state.inner.ecs;
    let result = match path {
        agent::DESIRED => match decode::<agent::DesiredRequest>(body) {
            Ok(r) => match ecs.cluster_name(Some(&r.cluster)) {
                Ok(cluster) => {
                    // The poll is the agent's check-in: it never waits past a third of the
                    // agent timeout.
                    let wait =
                        std::time::Duration::from_millis(r.timeout_ms.min(agent::MAX_WAIT_MS))
                            .min(state.inner.agent_timeout / 3);
                    ecs.instance_desired(&cluster, &r.container_instance, r.generation, wait)
                        .await
                        .and_then(to_json)
                }
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
        agent::REPORT => match decode::<agent::ReportBatch>(body) {
            Ok(batch) => ecs.instance_report(batch).await.and_then(to_json),
            Err(e) => Err(e),
        },
        _ => match decode::<agent::InstanceRef>(body) {
            Ok(r) => match ecs.cluster_name(Some(&r.cluster)) {
                Ok(cluster) => ecs
                    .instance_heartbeat(&cluster, &r.container_instance)
                    .await
                    .map(|()| Value::Object(Default::default())),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        },
    };
    node_response(result, request_id)
}

/// A node request body: a malformed one is the caller's error.
fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, berth_types::Error> {
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
    let principal = sigv4::parse(sig).and_then(|claim| {
        let service = claim.service.clone();
        auth::authenticate(
            state.scope(),
            &state.inner.keys,
            sig,
            &claim,
            &service,
            OffsetDateTime::now_utc(),
        )
    });
    let principal = match principal {
        Ok(p) => p,
        Err(e) => {
            return protocol::error(Proto::UnknownJson, errors::auth_error(&e, true), request_id);
        }
    };
    if principal.arn != state.scope().root_arn() {
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
            Ok(serde_json::json!({"backgroundTasks": tasks})),
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

/// `POST /_berth/reset` (ephemeral servers only): signed by a known key, empties all state.
async fn reset(state: &ApiState, sig: &SigRequest<'_>, request_id: &str) -> Response<Body> {
    let proto = Proto::UnknownJson;
    let principal: Result<Principal, _> = sigv4::parse(sig).and_then(|claim| {
        let service = claim.service.clone();
        auth::authenticate(
            state.scope(),
            &state.inner.keys,
            sig,
            &claim,
            &service,
            OffsetDateTime::now_utc(),
        )
    });
    if let Err(e) = principal {
        return protocol::error(proto, errors::auth_error(&e, true), request_id);
    }
    match state.inner.store.write(|tx| tx.delete_all()).await {
        Ok(()) => {
            tracing::info!("state reset by POST /_berth/reset");
            text(StatusCode::OK, "reset\n")
        }
        Err(e) => protocol::error(proto, errors::ecs_error(e, request_id), request_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{KeyPair, Keys};
    use berth_control::Scope;

    /// Every operation the tables call implemented is really dispatched (an empty input may be
    /// invalid, but it must never reach the not-implemented arm), and every table entry names a
    /// modeled operation.
    #[tokio::test]
    async fn support_tables_match_the_dispatchers_and_the_models() {
        let dir = tempfile::tempdir().unwrap();
        let store = berth_store::Store::open(&dir.path().join("db")).unwrap();
        let scope = Scope {
            account: berth_types::AccountId::parse("000000000000").unwrap(),
            region: berth_types::Region::parse("us-east-1").unwrap(),
        };
        let keys = Keys::new(KeyPair {
            access_key_id: "AKIAEXAMPLE000000000".into(),
            secret_access_key: "x".repeat(40),
        });
        let blobs = berth_blob::BlobStore::open(&dir.path().join("blobs")).unwrap();
        let state = ApiState::new(crate::ApiConfig {
            scope: scope.clone(),
            keys: keys.clone(),
            store,
            blobs,
            paging_key: [0; 32],
            token_key: [0; 32],
            registry_host: "127.0.0.1:4566".into(),
            endpoint: "http://127.0.0.1:4566".into(),
            reset_enabled: false,
            agent_timeout: std::time::Duration::from_secs(30),
            background: Default::default(),
        });
        let principal = crate::root_principal(&scope, &keys);
        for (service, table) in [
            (Service::Ecs, ECS_SUPPORT),
            (Service::Sts, STS_SUPPORT),
            (Service::Ecr, ecr::SUPPORT),
        ] {
            for (name, support) in table {
                assert!(
                    service.model().operation(name).is_some(),
                    "{service:?} {name} is not modeled"
                );
                assert_ne!(
                    *support,
                    Support::NotImplemented,
                    "list only what is supported"
                );
                let result = match service {
                    Service::Ecs => {
                        ecs::call(
                            &state,
                            &principal,
                            name,
                            Value::Object(Default::default()),
                            2,
                        )
                        .await
                    }
                    Service::Ecr => {
                        ecr::call(&state, &principal, name, Value::Object(Default::default())).await
                    }
                    _ => sts::call(&state, &principal, name),
                };
                assert!(
                    !matches!(result, Err(berth_types::Error::NotImplemented(_))),
                    "{service:?} {name} is in the table but not dispatched"
                );
            }
        }
    }
}
