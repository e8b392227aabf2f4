//! Policy documents (spec/iam.md §2): parsed once, checked as IAM checks them, matched many
//! times.

use crate::condition::Condition;
use crate::vars::Text;
use crate::wildcard::Pattern;
use serde_json::{Map, Value};

/// `Version`: variables are substituted only under 2012-10-17.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2008,
    V2012,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Where a document is used, which decides what it must and must not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Attached to a user, group or role (managed or inline), a permissions boundary or a
    /// session policy: no `Principal`, `Resource` required.
    Identity,
    /// On a resource (an ECR repository or registry): `Principal` required, `Resource`
    /// optional (the resource itself).
    Resource,
    /// A role's trust policy: `Principal` required, no `Resource`.
    Trust,
}

/// A list element of `Action`/`NotAction`, `Resource`/`NotResource` or `Principal`, with
/// which of the pair it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set<T> {
    /// `NotAction`, `NotResource`, `NotPrincipal`.
    pub negated: bool,
    pub items: Vec<T>,
}

/// A resource pattern (variables are substituted per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePattern(pub(crate) Text);

impl ResourcePattern {
    /// As written.
    pub fn as_str(&self) -> &str {
        self.0.raw()
    }
}

/// Who a resource or trust policy statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalPattern {
    /// `"*"` or `{"AWS": "*"}`.
    Anyone,
    /// An account (`"123456789012"` or `arn:aws:iam::123456789012:root`).
    Account(String),
    /// A user, role, or role session ARN.
    Arn(String),
    /// `{"Service": "ecs-tasks.amazonaws.com"}`.
    Service(String),
    /// `Federated` or `CanonicalUser`: never matches a Berth principal.
    Other(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<Set<PrincipalPattern>>,
    /// Lowercased patterns (actions match case-insensitively).
    pub(crate) actions: Set<Pattern>,
    pub action_text: Set<String>,
    /// `None`: the resource the policy is on.
    pub resources: Option<Set<ResourcePattern>>,
    pub conditions: Vec<Condition>,
}

/// A checked policy document.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: Version,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

/// Why a document is not a policy: IAM's `MalformedPolicyDocument` (ECR's
/// `InvalidParameterException` for repository policies) with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Malformed(pub String);

fn malformed(m: impl Into<String>) -> Malformed {
    Malformed(m.into())
}

fn syntax() -> Malformed {
    malformed("Syntax errors in policy.")
}

/// A string or a list of strings (IAM accepts both wherever a list is allowed).
fn strings(v: &Value) -> Result<Vec<String>, Malformed> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| i.as_str().map(str::to_string).ok_or_else(syntax))
            .collect(),
        _ => Err(syntax()),
    }
}

/// The one of `names` present in `st` (`None` if neither; malformed if both).
fn one_of<'a>(
    st: &'a Map<String, Value>,
    names: [&str; 2],
) -> Result<Option<(bool, &'a Value)>, Malformed> {
    match (st.get(names[0]), st.get(names[1])) {
        (Some(_), Some(_)) => Err(syntax()),
        (Some(v), None) => Ok(Some((false, v))),
        (None, Some(v)) => Ok(Some((true, v))),
        (None, None) => Ok(None),
    }
}

impl Policy {
    /// Adds to `out` the request-context keys (lowercased) this document can read: its
    /// condition keys and the variables of its resources and condition values. A context
    /// holding only these decides as the whole context would.
    pub fn context_keys(&self, out: &mut std::collections::BTreeSet<String>) {
        for st in &self.statements {
            for r in st.resources.iter().flat_map(|set| &set.items) {
                out.extend(r.0.vars().map(str::to_string));
            }
            for c in &st.conditions {
                out.insert(c.key.clone());
                out.extend(c.values.iter().flat_map(|v| v.vars()).map(str::to_string));
            }
        }
    }

    /// Parses and checks `text` as a policy of `kind`.
    pub fn parse(text: &str, kind: Kind) -> Result<Policy, Malformed> {
        let doc: Value = serde_json::from_str(text).map_err(|_| syntax())?;
        let doc = doc.as_object().ok_or_else(syntax)?;
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(syntax());
            }
        }
        let version = match doc.get("Version") {
            None => Version::V2008,
            Some(Value::String(v)) if v == "2012-10-17" => Version::V2012,
            Some(Value::String(v)) if v == "2008-10-17" => Version::V2008,
            Some(_) => {
                return Err(malformed(
                    "The policy failed legacy parsing: invalid Version.",
                ));
            }
        };
        let id = match doc.get("Id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(syntax()),
        };
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.iter().collect(),
            Some(one @ Value::Object(_)) => vec![one],
            _ => return Err(syntax()),
        };
        let statements = statements
            .into_iter()
            .map(|s| statement(s, kind))
            .collect::<Result<Vec<_>, _>>()?;
        if kind == Kind::Identity {
            let mut seen = std::collections::HashSet::new();
            for sid in statements.iter().filter_map(|s| s.sid.as_deref()) {
                if !seen.insert(sid) {
                    return Err(malformed(format!(
                        "Statement IDs (SID) in a single policy must be unique. Duplicate SID: {sid}"
                    )));
                }
            }
        }
        Ok(Policy {
            version,
            id,
            statements,
        })
    }
}

fn statement(v: &Value, kind: Kind) -> Result<Statement, Malformed> {
    let st = v.as_object().ok_or_else(syntax)?;
    for key in st.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(syntax());
        }
    }
    let sid = match st.get("Sid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(syntax()),
    };
    let effect = match st.get("Effect").and_then(Value::as_str) {
        Some("Allow") => Effect::Allow,
        Some("Deny") => Effect::Deny,
        Some(other) => {
            return Err(malformed(format!("Invalid effect: {other}")));
        }
        None => return Err(malformed("Missing required field Effect")),
    };
    let principal = match one_of(st, ["Principal", "NotPrincipal"])? {
        Some(_) if kind == Kind::Identity => {
            return Err(malformed("Policy document should not specify a principal."));
        }
        Some((negated, _)) if negated && effect == Effect::Allow => {
            return Err(malformed(
                "NotPrincipal is only supported with Deny statements.",
            ));
        }
        Some((negated, v)) => Some(Set {
            negated,
            items: principals(v)?,
        }),
        None if kind != Kind::Identity => {
            return Err(malformed("Missing required field Principal"));
        }
        None => None,
    };
    let (negated, action) = one_of(st, ["Action", "NotAction"])?
        .ok_or_else(|| malformed("Policy statement must contain actions."))?;
    let action_text = strings(action)?;
    for a in &action_text {
        if a != "*" && !a.contains(':') {
            return Err(malformed(format!(
                "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc. ({a})"
            )));
        }
    }
    let actions = Set {
        negated,
        items: action_text
            .iter()
            .map(|a| Pattern::parse(&a.to_lowercase()))
            .collect(),
    };
    let resources = match one_of(st, ["Resource", "NotResource"])? {
        Some(_) if kind == Kind::Trust => {
            return Err(malformed("Has prohibited field Resource"));
        }
        Some((negated, v)) => Some(Set {
            negated,
            items: strings(v)?
                .iter()
                .map(|r| ResourcePattern(Text::parse(r)))
                .collect(),
        }),
        None if kind == Kind::Identity => {
            return Err(malformed("Policy statement must contain resources."));
        }
        None => None,
    };
    let conditions = match st.get("Condition") {
        None => Vec::new(),
        Some(v) => crate::condition::parse_block(v)?,
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        actions,
        action_text: Set {
            negated,
            items: action_text,
        },
        resources,
        conditions,
    })
}

fn principals(v: &Value) -> Result<Vec<PrincipalPattern>, Malformed> {
    match v {
        Value::String(s) if s == "*" => Ok(vec![PrincipalPattern::Anyone]),
        Value::Object(map) if !map.is_empty() => {
            let mut out = Vec::new();
            for (kind, ids) in map {
                for id in strings(ids)? {
                    out.push(match kind.as_str() {
                        "AWS" => aws_principal(&id)?,
                        "Service" => PrincipalPattern::Service(id),
                        "Federated" | "CanonicalUser" => PrincipalPattern::Other(id),
                        _ => return Err(syntax()),
                    });
                }
            }
            Ok(out)
        }
        _ => Err(malformed("Invalid principal in policy")),
    }
}

fn aws_principal(id: &str) -> Result<PrincipalPattern, Malformed> {
    if id == "*" {
        return Ok(PrincipalPattern::Anyone);
    }
    if id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(PrincipalPattern::Account(id.to_string()));
    }
    let parts: Vec<&str> = id.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", "", account, "root"] => {
            Ok(PrincipalPattern::Account(account.to_string()))
        }
        ["arn", _, "iam" | "sts", "", _, rest]
            if rest.starts_with("user/")
                || rest.starts_with("role/")
                || rest.starts_with("assumed-role/") =>
        {
            Ok(PrincipalPattern::Arn(id.to_string()))
        }
        _ => Err(malformed(format!(
            "Invalid principal in policy: \"AWS\":\"{id}\""
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, kind: Kind) -> String {
        Policy::parse(text, kind).unwrap_err().0
    }

    #[test]
    fn identity_policies_need_actions_and_resources_and_no_principal() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#,
            Kind::Identity,
        )
        .unwrap();
        assert_eq!(p.version, Version::V2012);
        assert_eq!(p.statements.len(), 1);
        assert_eq!(
            err(
                r#"{"Statement":[{"Effect":"Allow","Action":"ecr:*"}]}"#,
                Kind::Identity
            ),
            "Policy statement must contain resources."
        );
        assert_eq!(
            err(
                r#"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
                Kind::Identity
            ),
            "Policy statement must contain actions."
        );
        assert_eq!(
            err(
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"a:b","Resource":"*"}]}"#,
                Kind::Identity
            ),
            "Policy document should not specify a principal."
        );
        assert_eq!(err("{not json", Kind::Identity), "Syntax errors in policy.");
        assert_eq!(
            err(
                r#"{"Statement":[{"Effect":"Allow","Action":"a:b","Resource":"*","Extra":1}]}"#,
                Kind::Identity
            ),
            "Syntax errors in policy."
        );
        assert_eq!(
            err(
                r#"{"Statement":[{"Effect":"Permit","Action":"a:b","Resource":"*"}]}"#,
                Kind::Identity
            ),
            "Invalid effect: Permit"
        );
        assert!(err(
            r#"{"Statement":[{"Sid":"A","Effect":"Allow","Action":"a:b","Resource":"*"},{"Sid":"A","Effect":"Deny","Action":"a:b","Resource":"*"}]}"#,
            Kind::Identity
        )
        .contains("Duplicate SID: A"));
        assert!(
            err(
                r#"{"Statement":[{"Effect":"Allow","Action":"ListUsers","Resource":"*"}]}"#,
                Kind::Identity
            )
            .starts_with("Actions/Conditions must be prefaced by a vendor")
        );
    }

    #[test]
    fn resource_and_trust_policies_name_principals() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":["123456789012","arn:aws:iam::123456789012:user/bob"],"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
            Kind::Trust,
        )
        .unwrap();
        let items = &p.statements[0].principal.as_ref().unwrap().items;
        assert!(items.contains(&PrincipalPattern::Account("123456789012".into())));
        assert!(items.contains(&PrincipalPattern::Arn(
            "arn:aws:iam::123456789012:user/bob".into()
        )));
        assert!(items.contains(&PrincipalPattern::Service("ecs-tasks.amazonaws.com".into())));
        assert_eq!(
            err(
                r#"{"Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#,
                Kind::Trust
            ),
            "Missing required field Principal"
        );
        assert_eq!(
            err(
                r#"{"Statement":[{"Effect":"Allow","NotPrincipal":"*","Action":"ecr:*"}]}"#,
                Kind::Resource
            ),
            "NotPrincipal is only supported with Deny statements."
        );
        assert!(
            Policy::parse(
                r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}"#,
                Kind::Resource
            )
            .unwrap()
            .statements[0]
                .resources
                .is_none()
        );
    }
}
