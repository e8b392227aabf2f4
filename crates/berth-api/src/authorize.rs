//! Authorization: every AWS API call and every registry request is decided with `berth-iam`
//! against the caller's identity policies (and the resource's policy, when it has one) before
//! anything runs. Root may do anything; a denial answers AWS's `AccessDenied…` with AWS's
//! message and is logged with the principal, action, resource and reason. In `--iam audit` the
//! denial is only logged.

use crate::{ApiState, IamMode};
use berth_iam::{Context, Decision, Policies, Policy, PrincipalKind, Request};
use berth_types::{Caller, Error, Principal};
use std::net::SocketAddr;
use std::sync::Arc;

/// Where a request came from, for `aws:SourceIp` and `aws:SecureTransport`.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub peer: Option<SocketAddr>,
    pub tls: bool,
}

/// A request over TLS: the TLS listener puts this in each request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct TlsPeer(pub SocketAddr);

impl Origin {
    pub fn of(extensions: &axum::http::Extensions) -> Origin {
        if let Some(TlsPeer(peer)) = extensions.get::<TlsPeer>() {
            return Origin {
                peer: Some(*peer),
                tls: true,
            };
        }
        Origin {
            peer: extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            tls: false,
        }
    }
}

/// What one decision is about.
pub struct Ask<'a> {
    pub action: &'a str,
    /// The resources acted on (each is decided; all must be allowed).
    pub resources: &'a [String],
    /// The resource's own policy (a repository's, a role's trust policy).
    pub resource_policy: Option<&'a Policy>,
    /// The resource policy must allow (trust policies).
    pub resource_must_allow: bool,
    /// Extra condition keys (`aws:RequestTag/…`, `ecs:cluster`, …).
    pub extra: &'a [(String, Vec<String>)],
}

/// The caller's identity policies and its session policies (which bound what a role
/// allows), compiled.
struct Compiled {
    identity: Arc<berth_control::iam::Identity>,
    session: Vec<Arc<Policy>>,
}

fn compiled(state: &ApiState, p: &Principal) -> Result<Compiled, Error> {
    let iam = state.iam();
    match &p.caller {
        Caller::Root => Ok(Compiled {
            identity: Default::default(),
            session: Vec::new(),
        }),
        Caller::User { name, .. } => Ok(Compiled {
            identity: iam.user_identity(name)?,
            session: Vec::new(),
        }),
        Caller::Role {
            name,
            policy,
            policy_arns,
            ..
        } => {
            let mut session = Vec::new();
            if let Some(text) = policy {
                session.push(iam.compiled(text, berth_iam::Kind::Identity)?);
            }
            for arn in policy_arns {
                session.extend(iam.managed_compiled(arn)?);
            }
            Ok(Compiled {
                identity: iam.role_identity(name)?,
                session,
            })
        }
    }
}

/// The evaluator's view of the caller.
pub fn iam_principal(p: &Principal) -> berth_iam::Principal {
    berth_iam::Principal {
        arn: p.arn.clone(),
        account: p.account.as_str().to_string(),
        kind: match &p.caller {
            Caller::Root => PrincipalKind::Root,
            Caller::User { .. } => PrincipalKind::User,
            Caller::Role { arn, .. } => PrincipalKind::AssumedRole {
                role_arn: arn.clone(),
            },
        },
    }
}

/// The global condition keys of a request by `p`.
pub fn context(state: &ApiState, p: &Principal, origin: &Origin) -> Context {
    let mut c = Context::new();
    let now = state.now();
    c.set("aws:EpochTime", now.to_string());
    if let Ok(t) = time::OffsetDateTime::from_unix_timestamp(now)
        && let Ok(s) = t.format(&time::format_description::well_known::Rfc3339)
    {
        c.set("aws:CurrentTime", s);
    }
    c.set("aws:SecureTransport", origin.tls.to_string());
    if let Some(peer) = origin.peer {
        c.set("aws:SourceIp", peer.ip().to_string());
    }
    c.set("aws:PrincipalAccount", p.account.as_str());
    c.set("aws:userid", p.user_id());
    match &p.caller {
        Caller::Root => {
            c.set("aws:PrincipalArn", p.arn.clone());
            c.set("aws:PrincipalType", "Account");
        }
        Caller::User { name, .. } => {
            c.set("aws:PrincipalArn", p.arn.clone());
            c.set("aws:username", name.clone());
            c.set("aws:PrincipalType", "User");
        }
        Caller::Role { arn, .. } => {
            c.set("aws:PrincipalArn", arn.clone());
            c.set("aws:PrincipalType", "AssumedRole");
        }
    }
    c
}

/// Decides `ask` for `p`: `Ok` when allowed (or in audit mode), else `AccessDenied` with
/// AWS's message.
pub fn authorize(
    state: &ApiState,
    p: &Principal,
    origin: &Origin,
    ask: &Ask<'_>,
) -> Result<(), Error> {
    if p.is_root() {
        return Ok(());
    }
    let compiled = compiled(state, p).map_err(|e| {
        tracing::warn!(principal = %p.arn, error = %e, "the caller's policies could not be read");
        Error::AccessDenied(format!(
            "User: {} is not authorized to perform: {} because its policies could not be read",
            p.arn, ask.action
        ))
    })?;
    let identity: Vec<&Policy> = compiled.identity.policies.iter().collect();
    let session: Vec<&Policy> = compiled.session.iter().map(|p| &**p).collect();
    let policies = Policies {
        identity: &identity,
        resource: ask.resource_policy,
        resource_must_allow: ask.resource_must_allow,
        boundary: None,
        session: &session,
    };
    let principal = iam_principal(p);
    let mut context = context(state, p, origin);
    for (k, v) in ask.extra {
        context.set_all(k, v.clone());
    }
    for resource in ask.resources {
        let request = Request {
            principal: &principal,
            action: ask.action,
            resource,
            context: &context,
        };
        let outcome = berth_iam::evaluate(&policies, &request);
        if outcome.decision == Decision::Allowed {
            continue;
        }
        let message = outcome.denial_message(&request);
        let reason = match outcome.decision {
            Decision::ExplicitDeny => "explicit deny",
            _ => "no allow",
        };
        match state.iam_mode() {
            IamMode::Enforce => {
                tracing::warn!(principal = %p.arn, action = ask.action, resource = %resource, reason, "access denied");
                return Err(Error::AccessDenied(message));
            }
            IamMode::Audit => {
                tracing::warn!(principal = %p.arn, action = ask.action, resource = %resource, reason, "access would be denied (audit mode: allowed)");
            }
        }
    }
    Ok(())
}
