//! STS: who am I (`GetCallerIdentity`, no permission needed), and temporary credentials —
//! `AssumeRole` (the trust policy was checked by enforcement) and `GetSessionToken`.

use crate::auth::session::{self, Who};
use crate::route::{Cx, StsOp};
use berth_types::{Caller, Error, IamCode};
use serde::Deserialize;
use serde_json::{Value, json};

fn validation(m: impl Into<String>) -> Error {
    Error::iam(IamCode::ValidationError, m)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleIn {
    role_arn: String,
    role_session_name: String,
    duration_seconds: Option<i64>,
    policy: Option<String>,
    #[serde(default)]
    policy_arns: Vec<ArnIn>,
}

#[derive(Deserialize)]
struct ArnIn {
    arn: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SessionTokenIn {
    duration_seconds: Option<i64>,
}

fn credentials(key: &[u8; 32], who: Who, expires: i64) -> Value {
    let (akid, secret, token) = session::issue(key, who, expires);
    json!({
        "AccessKeyId": akid,
        "SecretAccessKey": secret,
        "SessionToken": token,
        "Expiration": expires,
    })
}

/// `AssumeRole` (its trust policy was checked by enforcement).
fn assume_role(cx: &Cx<'_>, v: Value, now: i64) -> Result<Value, Error> {
    let p = cx.principal;
    let i: AssumeRoleIn =
        serde_json::from_value(v).map_err(|e| validation(format!("Invalid input: {e}")))?;
    if p.is_root() {
        return Err(Error::AccessDenied(
            "Roles may not be assumed by root accounts.".into(),
        ));
    }
    let name_ok = (2..=64).contains(&i.role_session_name.len())
        && i.role_session_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if !name_ok {
        return Err(validation(format!(
            "1 validation error detected: Value '{}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]*",
            i.role_session_name
        )));
    }
    let iam = cx.state.iam();
    let role_name = i.role_arn.rsplit('/').next().unwrap_or("");
    let role = iam
        .role(role_name)
        .ok()
        .filter(|r| iam.arn("role", &r.path, &r.name) == i.role_arn)
        .ok_or_else(|| {
            Error::AccessDenied(format!(
                "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
                p.arn, i.role_arn
            ))
        })?;
    let duration = session_duration(p, &role, i.duration_seconds)?;
    let packed = session_policy(i.policy.as_deref())?;
    let policy_arns: Vec<String> = i.policy_arns.into_iter().filter_map(|a| a.arn).collect();
    for arn in &policy_arns {
        if iam.default_document(arn)?.is_none() {
            return Err(validation(format!("Policy {arn} does not exist.")));
        }
    }
    let session_name = i.role_session_name;
    let arn = format!(
        "arn:aws:sts::{}:assumed-role/{}/{session_name}",
        p.account, role.name
    );
    let assumed_id = format!("{}:{session_name}", role.id);
    let who = Who::Role {
        name: role.name,
        session: session_name,
        policy: i.policy,
        policy_arns,
    };
    Ok(json!({
        "Credentials": credentials(cx.state.sts_key(), who, now + duration),
        "AssumedRoleUser": {"AssumedRoleId": assumed_id, "Arn": arn},
        "PackedPolicySize": packed,
    }))
}

/// What ECS hands a task for one of its roles: a session of the role named for the task (its
/// id), lasting the role's `MaxSessionDuration`, if the role's trust policy lets
/// `ecs-tasks.amazonaws.com` assume it.
pub fn task_credentials(
    state: &crate::ApiState,
    role_arn: &str,
    task_id: &str,
) -> Result<berth_node_api::agent::RoleCredentials, Error> {
    let refused = || {
        Error::AccessDenied(format!(
            "ECS was unable to assume the role '{role_arn}' that was provided for this task. Please verify that the role being passed has the proper trust relationship and permissions and that your IAM user has permissions to pass this role."
        ))
    };
    let iam = state.iam();
    let role = iam
        .role(role_arn.rsplit('/').next().unwrap_or(""))
        .ok()
        .filter(|r| iam.arn("role", &r.path, &r.name) == role_arn)
        .ok_or_else(refused)?;
    let trust = iam.compiled(&role.trust, berth_iam::Kind::Trust)?;
    const SERVICE: &str = "ecs-tasks.amazonaws.com";
    let principal = berth_iam::Principal {
        arn: SERVICE.to_string(),
        account: iam.account().as_str().to_string(),
        kind: berth_iam::PrincipalKind::Service(SERVICE.to_string()),
    };
    let context = berth_iam::Context::new();
    let request = berth_iam::Request {
        principal: &principal,
        action: "sts:AssumeRole",
        resource: role_arn,
        context: &context,
    };
    let policies = berth_iam::Policies {
        resource: Some(&trust),
        resource_must_allow: true,
        ..Default::default()
    };
    if !berth_iam::evaluate(&policies, &request).allowed() {
        return Err(refused());
    }
    let expiration = state.now() + i64::from(role.max_session);
    let who = Who::Role {
        name: role.name,
        session: task_id.to_string(),
        policy: None,
        policy_arns: Vec::new(),
    };
    let (access_key_id, secret_access_key, session_token) =
        session::issue(state.sts_key(), who, expiration);
    Ok(berth_node_api::agent::RoleCredentials {
        role_arn: role_arn.to_string(),
        access_key_id,
        secret_access_key,
        session_token,
        expiration,
    })
}

/// The session's duration: 900 s up to the role's maximum (an hour when chaining roles).
fn session_duration(
    p: &berth_types::Principal,
    role: &berth_control::iam::Role,
    asked: Option<i64>,
) -> Result<i64, Error> {
    let chained = matches!(p.caller, Caller::Role { .. });
    let max = if chained {
        3600
    } else {
        i64::from(role.max_session)
    };
    let duration = asked.unwrap_or(3600.min(max));
    if duration < 900 {
        return Err(validation(format!(
            "1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900"
        )));
    }
    if duration > max {
        return Err(validation(if chained {
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.".to_string()
        } else {
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                .to_string()
        }));
    }
    Ok(duration)
}

/// Checks a session policy; its packed size (percent of the allowance).
fn session_policy(policy: Option<&str>) -> Result<usize, Error> {
    let mut packed = 0;
    if let Some(text) = policy {
        berth_iam::Policy::parse(text, berth_iam::Kind::Identity)
            .map_err(|m| Error::iam(IamCode::MalformedPolicyDocument, m.0))?;
        packed = text.chars().filter(|c| !c.is_whitespace()).count() * 100 / 2048;
        if packed > 100 {
            return Err(Error::iam(
                IamCode::PackedPolicyTooLarge,
                format!(
                    "Packed policy consumes {packed}% of allotted space, please use smaller policy for this request."
                ),
            ));
        }
    }
    Ok(packed)
}

/// Runs one STS operation.
pub async fn dispatch(cx: &Cx<'_>, op: StsOp, v: Value) -> Result<Value, Error> {
    let p = cx.principal;
    let now = cx.state.now();
    match op {
        StsOp::GetCallerIdentity => Ok(json!({
            "Account": p.account.as_str(),
            "Arn": p.arn,
            "UserId": p.user_id(),
        })),
        StsOp::AssumeRole => assume_role(cx, v, now),
        StsOp::GetSessionToken => {
            let i: SessionTokenIn =
                serde_json::from_value(v).map_err(|e| validation(format!("Invalid input: {e}")))?;
            let (who, max) = match &p.caller {
                Caller::User { name, .. } if cx.session_token.is_none() => {
                    (Who::User { name: name.clone() }, 129_600)
                }
                Caller::Root => (Who::Root, 3600),
                _ => {
                    return Err(Error::AccessDenied(
                        "Cannot call GetSessionToken with session credentials".into(),
                    ));
                }
            };
            let duration = i.duration_seconds.unwrap_or(43_200.min(max));
            if !(900..=max).contains(&duration) {
                return Err(validation(format!(
                    "1 validation error detected: Value '{duration}' at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to {max}"
                )));
            }
            Ok(json!({"Credentials": credentials(cx.state.sts_key(), who, now + duration)}))
        }
    }
}
