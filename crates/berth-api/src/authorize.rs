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
    /// The tags of a resource, for `aws:ResourceTag/…` and `<service>:ResourceTag/…`: asked
    /// only when a policy of the decision reads such a key.
    pub tags_of: Option<&'a TagsOf<'a>>,
}

/// Looks up the tags of a resource ARN.
pub type TagsOf<'a> = dyn Fn(&str) -> Vec<berth_types::Tag> + 'a;

impl<'a> Ask<'a> {
    /// `action` on `resources`, with no resource policy, extra keys or tags.
    pub fn new(action: &'a str, resources: &'a [String]) -> Ask<'a> {
        Ask {
            action,
            resources,
            resource_policy: None,
            resource_must_allow: false,
            extra: &[],
            tags_of: None,
        }
    }
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
    context_with(state, p, origin, |_| true)
}

/// The global condition keys of a request by `p` that `wanted` asks for (lowercased names):
/// a decision's context needs only the keys its policies read.
fn context_with(
    state: &ApiState,
    p: &Principal,
    origin: &Origin,
    wanted: impl Fn(&str) -> bool,
) -> Context {
    let mut c = Context::new();
    let now = state.now();
    if wanted("aws:epochtime") {
        c.set("aws:EpochTime", now.to_string());
    }
    if wanted("aws:currenttime")
        && let Ok(t) = time::OffsetDateTime::from_unix_timestamp(now)
        && let Ok(s) = t.format(&time::format_description::well_known::Rfc3339)
    {
        c.set("aws:CurrentTime", s);
    }
    if wanted("aws:securetransport") {
        c.set("aws:SecureTransport", origin.tls.to_string());
    }
    if let Some(peer) = origin.peer
        && wanted("aws:sourceip")
    {
        c.set("aws:SourceIp", peer.ip().to_string());
    }
    if wanted("aws:principalaccount") {
        c.set("aws:PrincipalAccount", p.account.as_str());
    }
    if wanted("aws:userid") {
        c.set("aws:userid", p.user_id());
    }
    let (arn, kind, username) = match &p.caller {
        Caller::Root => (&p.arn, "Account", None),
        Caller::User { name, .. } => (&p.arn, "User", Some(name)),
        Caller::Role { arn, .. } => (arn, "AssumedRole", None),
    };
    if wanted("aws:principalarn") {
        c.set("aws:PrincipalArn", arn.clone());
    }
    if wanted("aws:principaltype") {
        c.set("aws:PrincipalType", kind);
    }
    if let Some(name) = username
        && wanted("aws:username")
    {
        c.set("aws:username", name.clone());
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
    for denial in denials(state, p, origin, ask)? {
        let Denial {
            resource,
            message,
            reason,
        } = denial;
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

/// Whether `ask` would be allowed for `p`, whatever the mode, logging nothing.
pub fn allows(state: &ApiState, p: &Principal, origin: &Origin, ask: &Ask<'_>) -> bool {
    denials(state, p, origin, ask).is_ok_and(|d| d.is_empty())
}

/// One resource `ask` may not act on.
struct Denial<'a> {
    resource: &'a str,
    /// AWS's words for it.
    message: String,
    reason: &'static str,
}

/// The resources of `ask` that `p` may not act on (all, in audit mode too: the caller
/// decides what to do with them).
fn denials<'a>(
    state: &ApiState,
    p: &Principal,
    origin: &Origin,
    ask: &Ask<'a>,
) -> Result<Vec<Denial<'a>>, Error> {
    if p.is_root() {
        return Ok(Vec::new());
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
    let (context, reads_tags) = decision_context(state, p, origin, ask, &compiled);
    let mut out = Vec::new();
    for resource in ask.resources {
        let tagged;
        let context = match ask.tags_of {
            Some(tags_of) if reads_tags => {
                tagged = with_resource_tags(&context, ask.action, &tags_of(resource));
                &tagged
            }
            _ => &context,
        };
        let request = Request {
            principal: &principal,
            action: ask.action,
            resource,
            context,
        };
        let outcome = berth_iam::evaluate(&policies, &request);
        if outcome.decision == Decision::Allowed {
            continue;
        }
        out.push(Denial {
            resource,
            message: outcome.denial_message(&request),
            reason: match outcome.decision {
                Decision::ExplicitDeny => "explicit deny",
                _ => "no allow",
            },
        });
    }
    Ok(out)
}

/// The context of a decision on `ask`: the global keys its policies read and the extra keys
/// of the request; and whether a policy reads resource tags.
fn decision_context(
    state: &ApiState,
    p: &Principal,
    origin: &Origin,
    ask: &Ask<'_>,
    compiled: &Compiled,
) -> (Context, bool) {
    let mut keys = compiled.identity.context_keys.clone();
    for policy in compiled
        .session
        .iter()
        .map(|p| &**p)
        .chain(ask.resource_policy)
    {
        policy.context_keys(&mut keys);
    }
    let mut context = context_with(state, p, origin, |k| keys.contains(k));
    for (k, v) in ask.extra {
        context.set_all(k, v.clone());
    }
    let service = service_of(ask.action);
    let tag_prefixes = [
        "aws:resourcetag/".to_string(),
        format!("{service}:resourcetag/"),
    ];
    let reads_tags = keys
        .iter()
        .any(|k| tag_prefixes.iter().any(|p| k.starts_with(p.as_str())));
    (context, reads_tags)
}

/// The service prefix of an action (`ecr` of `ecr:PutImage`), lowercased.
fn service_of(action: &str) -> String {
    action.split(':').next().unwrap_or("").to_ascii_lowercase()
}

/// `context` with a resource's tags as `aws:ResourceTag/…` and `<service>:ResourceTag/…`.
fn with_resource_tags(context: &Context, action: &str, tags: &[berth_types::Tag]) -> Context {
    let mut c = context.clone();
    let service = service_of(action);
    for t in tags {
        for prefix in ["aws", service.as_str()] {
            c.set(&format!("{prefix}:ResourceTag/{}", t.key), t.value.clone());
        }
    }
    c
}
