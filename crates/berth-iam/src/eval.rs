//! The decision (spec/iam.md §4): an explicit deny anywhere wins; otherwise an identity or
//! resource policy must allow, within the permissions boundary and the session policies.

use crate::context::Context;
use crate::policy::{Effect, Policy, PrincipalPattern, Statement, Version};
use crate::wildcard::arn_matches;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// `arn:aws:iam::<acct>:root`, `…:user/<name>`, `arn:aws:sts::<acct>:assumed-role/<role>/<session>`.
    pub arn: String,
    pub account: String,
    pub kind: PrincipalKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalKind {
    Root,
    User,
    /// A role session; the role's ARN (`arn:aws:iam::<acct>:role/<path><name>`).
    AssumedRole {
        role_arn: String,
    },
    /// Berth itself acting as an AWS service (`ecs-tasks.amazonaws.com`, …).
    Service(String),
}

/// What is asked.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub principal: &'a Principal,
    /// `ecr:PutImage` (any case).
    pub action: &'a str,
    /// The resource's ARN, or `*` for actions without resource-level permissions.
    pub resource: &'a str,
    pub context: &'a Context,
}

/// The policies that bear on a request.
#[derive(Debug, Clone, Copy, Default)]
pub struct Policies<'a> {
    /// The principal's: inline and attached, its groups' too.
    pub identity: &'a [&'a Policy],
    /// The resource's (a repository or registry policy, a role's trust policy).
    pub resource: Option<&'a Policy>,
    /// The resource policy must allow whatever the identity policies say (trust policies).
    pub resource_must_allow: bool,
    pub boundary: Option<&'a Policy>,
    /// A role session's policies (AssumeRole's `Policy` and `PolicyArns`).
    pub session: &'a [&'a Policy],
}

/// Where a statement came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Policies::identity[i]`.
    Identity(usize),
    Resource,
    Boundary,
    /// `Policies::session[i]`.
    Session(usize),
}

/// A statement that matched the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub source: Source,
    /// Its index in its policy.
    pub statement: usize,
    pub effect: Effect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// An explicit `Deny` matched.
    ExplicitDeny,
    /// Nothing allowed it (or a boundary or session policy did not).
    ImplicitDeny,
}

/// A decision and the statements it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub decision: Decision,
    pub matched: Vec<Matched>,
}

impl Outcome {
    pub fn allowed(&self) -> bool {
        self.decision == Decision::Allowed
    }

    /// AWS's denial message: `User: <arn> is not authorized to perform: <action> on
    /// resource: <resource> because …`.
    pub fn denial_message(&self, request: &Request<'_>) -> String {
        let why = match self.decision {
            Decision::Allowed => return String::new(),
            Decision::ExplicitDeny => {
                let in_resource = self
                    .matched
                    .iter()
                    .any(|m| m.effect == Effect::Deny && m.source == Source::Resource);
                format!(
                    "with an explicit deny in {}",
                    if in_resource {
                        "a resource-based policy"
                    } else {
                        "an identity-based policy"
                    }
                )
            }
            Decision::ImplicitDeny => {
                format!(
                    "no identity-based policy allows the {} action",
                    request.action
                )
            }
        };
        format!(
            "User: {} is not authorized to perform: {} on resource: {} because {why}",
            request.principal.arn, request.action, request.resource
        )
    }
}

/// How specifically a resource policy's `Principal` names the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Named {
    /// The caller's account: its identity policies must allow too.
    Account,
    /// Anyone, or the caller's role: bounded by its boundary and session policies.
    Broadly,
    /// The user or the session itself.
    Exactly,
}

fn named(pattern: &PrincipalPattern, p: &Principal) -> Option<Named> {
    match pattern {
        PrincipalPattern::Anyone => Some(Named::Broadly),
        PrincipalPattern::Account(a) => (*a == p.account).then_some(Named::Account),
        PrincipalPattern::Arn(arn) => match &p.kind {
            _ if *arn == p.arn => Some(Named::Exactly),
            PrincipalKind::AssumedRole { role_arn } if arn == role_arn => Some(Named::Broadly),
            _ => None,
        },
        PrincipalPattern::Service(s) => {
            matches!(&p.kind, PrincipalKind::Service(mine) if mine == s).then_some(Named::Exactly)
        }
        PrincipalPattern::Other(_) => None,
    }
}

/// How a statement applies to a request: `None` if it does not; for resource policies, how
/// specifically it names the caller.
fn applies(
    st: &Statement,
    version: Version,
    r: &Request<'_>,
    action: &str,
    on_resource: bool,
) -> Option<Named> {
    let acts = st.actions.items.iter().any(|p| p.matches(action));
    if acts == st.actions.negated {
        return None;
    }
    let vars = version == Version::V2012;
    if let Some(res) = &st.resources {
        let hit = res.items.iter().any(|pat| {
            pat.0
                .pattern(r.context, vars, true)
                .is_some_and(|p| arn_matches(&p, r.resource))
        });
        if hit == res.negated {
            return None;
        }
    }
    let named = match (&st.principal, on_resource) {
        (Some(set), true) => {
            let best = set.items.iter().filter_map(|p| named(p, r.principal)).max();
            match (best, set.negated) {
                (Some(n), false) => n,
                (None, true) => Named::Broadly,
                _ => return None,
            }
        }
        _ => Named::Exactly,
    };
    st.conditions
        .iter()
        .all(|c| c.holds(r.context, vars))
        .then_some(named)
}

/// The account an ARN belongs to (`None` for `*` and for ARNs without one).
fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

/// Decides `request` under `policies`.
pub fn evaluate(policies: &Policies<'_>, request: &Request<'_>) -> Outcome {
    let principal = request.principal;
    let same_account = account_of(request.resource).is_none_or(|a| a == principal.account);
    if (principal.kind == PrincipalKind::Root && same_account)
        || request.action.eq_ignore_ascii_case("sts:GetCallerIdentity")
    {
        return Outcome {
            decision: Decision::Allowed,
            matched: Vec::new(),
        };
    }
    let action = request.action.to_lowercase();
    let mut matched = Vec::new();
    // (how specifically an allowing statement named the caller, whether one denied)
    let mut consider = |source: Source, policy: &Policy, on_resource: bool| {
        let mut allow: Option<Named> = None;
        let mut deny = false;
        for (i, st) in policy.statements.iter().enumerate() {
            if let Some(n) = applies(st, policy.version, request, &action, on_resource) {
                matched.push(Matched {
                    source,
                    statement: i,
                    effect: st.effect,
                });
                match st.effect {
                    Effect::Deny => deny = true,
                    Effect::Allow => allow = allow.max(Some(n)),
                }
            }
        }
        (allow, deny)
    };
    let mut denied = false;
    let mut allow_id = false;
    for (i, p) in policies.identity.iter().enumerate() {
        let (a, d) = consider(Source::Identity(i), p, false);
        allow_id |= a.is_some();
        denied |= d;
    }
    let (allow_res, d) = policies
        .resource
        .map_or((None, false), |p| consider(Source::Resource, p, true));
    denied |= d;
    let boundary = policies
        .boundary
        .map(|p| consider(Source::Boundary, p, false));
    denied |= boundary.is_some_and(|(_, d)| d);
    let mut session_allows = true;
    for (i, p) in policies.session.iter().enumerate() {
        let (a, d) = consider(Source::Session(i), p, false);
        denied |= d;
        session_allows &= a.is_some();
    }
    let decision = if denied {
        Decision::ExplicitDeny
    } else {
        let exactly = allow_res == Some(Named::Exactly);
        let mut allowed = if policies.resource_must_allow {
            // A trust policy naming the account leaves the decision to the identity policies.
            match allow_res {
                None => false,
                Some(Named::Account) => allow_id,
                Some(_) => true,
            }
        } else if same_account {
            allow_id || allow_res.is_some_and(|n| n != Named::Account)
        } else {
            allow_id && allow_res.is_some()
        };
        if !exactly || !same_account {
            if boundary.is_some_and(|(a, _)| a.is_none()) {
                allowed = false;
            }
            if !policies.session.is_empty() && !session_allows {
                allowed = false;
            }
        }
        if allowed {
            Decision::Allowed
        } else {
            Decision::ImplicitDeny
        }
    };
    Outcome { decision, matched }
}
