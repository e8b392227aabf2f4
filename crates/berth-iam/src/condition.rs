//! `Condition` blocks (spec/iam.md §3.4): every operator and every key must hold; several
//! policy values for one key are alternatives (for negated operators: none may match).

use crate::context::Context;
use crate::policy::Malformed;
use crate::vars::Text;
use crate::wildcard::{Pattern, arn_matches};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    ArnLike,
    Null,
}

/// How a key with several request values is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantifier {
    /// No prefix: any request value may match.
    Plain,
    ForAnyValue,
    ForAllValues,
}

/// One key under one operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub operator: Operator,
    /// `StringNotEquals`, `NotIpAddress`, `ArnNotLike`, …: the operator's negation.
    pub negated: bool,
    pub if_exists: bool,
    pub quantifier: Quantifier,
    /// Lowercased.
    pub key: String,
    pub(crate) values: Vec<Text>,
}

fn operator(name: &str) -> Option<(Operator, bool)> {
    use Operator::*;
    Some(match name {
        "StringEquals" => (StringEquals, false),
        "StringNotEquals" => (StringEquals, true),
        "StringEqualsIgnoreCase" => (StringEqualsIgnoreCase, false),
        "StringNotEqualsIgnoreCase" => (StringEqualsIgnoreCase, true),
        "StringLike" => (StringLike, false),
        "StringNotLike" => (StringLike, true),
        "NumericEquals" => (NumericEquals, false),
        "NumericNotEquals" => (NumericEquals, true),
        "NumericLessThan" => (NumericLessThan, false),
        "NumericLessThanEquals" => (NumericLessThanEquals, false),
        "NumericGreaterThan" => (NumericGreaterThan, false),
        "NumericGreaterThanEquals" => (NumericGreaterThanEquals, false),
        "DateEquals" => (DateEquals, false),
        "DateNotEquals" => (DateEquals, true),
        "DateLessThan" => (DateLessThan, false),
        "DateLessThanEquals" => (DateLessThanEquals, false),
        "DateGreaterThan" => (DateGreaterThan, false),
        "DateGreaterThanEquals" => (DateGreaterThanEquals, false),
        "Bool" => (Bool, false),
        "BinaryEquals" => (BinaryEquals, false),
        "IpAddress" => (IpAddress, false),
        "NotIpAddress" => (IpAddress, true),
        "ArnEquals" | "ArnLike" => (ArnLike, false),
        "ArnNotEquals" | "ArnNotLike" => (ArnLike, true),
        "Null" => (Null, false),
        _ => return None,
    })
}

/// Parses a statement's `Condition` object.
pub(crate) fn parse_block(v: &Value) -> Result<Vec<Condition>, Malformed> {
    let block = v
        .as_object()
        .ok_or_else(|| Malformed("Syntax errors in policy.".into()))?;
    let mut out = Vec::new();
    for (name, keys) in block {
        let (quantifier, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (Quantifier::ForAnyValue, r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (Quantifier::ForAllValues, r)
        } else {
            (Quantifier::Plain, name.as_str())
        };
        let (base, if_exists) = match rest.strip_suffix("IfExists") {
            Some(b) => (b, true),
            None => (rest, false),
        };
        let (operator, negated) = operator(base)
            .filter(|(op, _)| !(if_exists && *op == Operator::Null))
            .ok_or_else(|| Malformed(format!("Invalid Condition type : {name}")))?;
        let keys = keys
            .as_object()
            .ok_or_else(|| Malformed("Syntax errors in policy.".into()))?;
        for (key, values) in keys {
            let values = match values {
                Value::Array(items) => items.iter().map(scalar).collect::<Result<Vec<_>, _>>()?,
                one => vec![scalar(one)?],
            };
            out.push(Condition {
                operator,
                negated,
                if_exists,
                quantifier,
                key: key.to_lowercase(),
                values: values.iter().map(|v| Text::parse(v)).collect(),
            });
        }
    }
    Ok(out)
}

fn scalar(v: &Value) -> Result<String, Malformed> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(Malformed("Syntax errors in policy.".into())),
    }
}

impl Condition {
    /// Whether the condition holds for `ctx`; `vars` says whether policy variables are
    /// substituted (2012-10-17).
    pub(crate) fn holds(&self, ctx: &Context, vars: bool) -> bool {
        let request = ctx.get(&self.key).filter(|v| !v.is_empty());
        if self.operator == Operator::Null {
            let want_absent = self
                .values
                .iter()
                .any(|v| v.raw().eq_ignore_ascii_case("true"));
            return request.is_none() == want_absent;
        }
        let Some(request) = request else {
            return self.if_exists
                || match self.quantifier {
                    Quantifier::ForAllValues => true,
                    Quantifier::ForAnyValue => false,
                    Quantifier::Plain => self.negated,
                };
        };
        // The policy's values, variables substituted (a value whose variable is missing is
        // left out: it matches nothing).
        let values: Vec<std::borrow::Cow<'_, Pattern>> = self
            .values
            .iter()
            .filter_map(|v| v.pattern(ctx, vars, self.operator.has_wildcards()))
            .collect();
        let one = |r: &str| {
            let any = values.iter().any(|p| self.operator.matches(p, r));
            any != self.negated
        };
        match self.quantifier {
            Quantifier::ForAllValues => request.iter().all(|r| one(r)),
            Quantifier::ForAnyValue | Quantifier::Plain => request.iter().any(|r| one(r)),
        }
    }
}

impl Operator {
    fn has_wildcards(self) -> bool {
        matches!(self, Operator::StringLike | Operator::ArnLike)
    }

    /// Whether the request value `r` matches the policy value `p`.
    fn matches(self, p: &Pattern, r: &str) -> bool {
        use Operator::*;
        let literal = || p.as_literal();
        match self {
            StringEquals | BinaryEquals => literal() == r,
            StringEqualsIgnoreCase => literal().to_lowercase() == r.to_lowercase(),
            StringLike => p.matches(r),
            ArnLike => arn_matches(p, r),
            Bool => literal().eq_ignore_ascii_case(r),
            NumericEquals
            | NumericLessThan
            | NumericLessThanEquals
            | NumericGreaterThan
            | NumericGreaterThanEquals => {
                match (r.trim().parse::<f64>(), literal().trim().parse::<f64>()) {
                    (Ok(r), Ok(p)) => compare(self, r.partial_cmp(&p)),
                    _ => false,
                }
            }
            DateEquals
            | DateLessThan
            | DateLessThanEquals
            | DateGreaterThan
            | DateGreaterThanEquals => match (date(r), date(&literal())) {
                (Some(r), Some(p)) => compare(self, Some(r.cmp(&p))),
                _ => false,
            },
            IpAddress => in_cidr(r, &literal()),
            Null => false,
        }
    }
}

fn compare(op: Operator, ord: Option<std::cmp::Ordering>) -> bool {
    use Operator::*;
    use std::cmp::Ordering::*;
    let Some(ord) = ord else { return false };
    match op {
        NumericEquals | DateEquals => ord == Equal,
        NumericLessThan | DateLessThan => ord == Less,
        NumericLessThanEquals | DateLessThanEquals => ord != Greater,
        NumericGreaterThan | DateGreaterThan => ord == Greater,
        NumericGreaterThanEquals | DateGreaterThanEquals => ord != Less,
        _ => false,
    }
}

/// A date as epoch nanoseconds: ISO 8601 (`2026-12-03T10:00:00Z`, or a bare date) or epoch
/// seconds.
fn date(s: &str) -> Option<i128> {
    use time::format_description::well_known::{Iso8601, Rfc3339};
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Some((secs * 1e9) as i128);
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = time::OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.unix_timestamp_nanos());
    }
    let day = time::Date::parse(s, &Iso8601::DEFAULT).ok()?;
    Some(day.midnight().assume_utc().unix_timestamp_nanos())
}

/// Whether the address `ip` is in `cidr` (`10.0.0.0/8`, `2001:db8::/32`, or one address).
fn in_cidr(ip: &str, cidr: &str) -> bool {
    use std::net::IpAddr;
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let (Ok(ip), Ok(net)) = (ip.trim().parse::<IpAddr>(), net.trim().parse::<IpAddr>()) else {
        return false;
    };
    let (ip, net, width) = match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => (u32::from(a) as u128, u32::from(n) as u128, 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a), u128::from(n), 128),
        (IpAddr::V6(a), IpAddr::V4(n)) => match a.to_ipv4_mapped() {
            Some(a) => (u32::from(a) as u128, u32::from(n) as u128, 32),
            None => return false,
        },
        _ => return false,
    };
    let bits = bits.unwrap_or(width);
    if bits > width {
        return false;
    }
    let shift = width - bits;
    shift == width || (ip >> shift) == (net >> shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(json: &str) -> Vec<Condition> {
        parse_block(&serde_json::from_str(json).unwrap()).unwrap()
    }

    fn holds(json: &str, ctx: &Context) -> bool {
        block(json).iter().all(|c| c.holds(ctx, true))
    }

    #[test]
    fn strings_positive_and_negated_with_missing_keys() {
        let mut ctx = Context::new();
        ctx.set("aws:username", "bob");
        assert!(holds(
            r#"{"StringEquals":{"aws:UserName":["alice","bob"]}}"#,
            &ctx
        ));
        assert!(!holds(r#"{"StringEquals":{"aws:username":"Bob"}}"#, &ctx));
        assert!(holds(
            r#"{"StringEqualsIgnoreCase":{"aws:username":"BOB"}}"#,
            &ctx
        ));
        assert!(holds(r#"{"StringLike":{"aws:username":"b?b*"}}"#, &ctx));
        // Negated: NOR over the listed values.
        assert!(!holds(
            r#"{"StringNotEquals":{"aws:username":["alice","bob"]}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"StringNotLike":{"aws:username":["a*","c*"]}}"#,
            &ctx
        ));
        // A missing key: positive false, negated true, IfExists true.
        assert!(!holds(r#"{"StringEquals":{"ecs:cluster":"a"}}"#, &ctx));
        assert!(holds(r#"{"StringNotEquals":{"ecs:cluster":"a"}}"#, &ctx));
        assert!(holds(
            r#"{"StringEqualsIfExists":{"ecs:cluster":"a"}}"#,
            &ctx
        ));
        // Every operator and every key must hold.
        assert!(!holds(
            r#"{"StringEquals":{"aws:username":"bob"},"StringLike":{"aws:username":"x*"}}"#,
            &ctx
        ));
    }

    #[test]
    fn numbers_dates_bools_binary_and_null() {
        let mut ctx = Context::new();
        ctx.set("n", "10")
            .set("aws:CurrentTime", "2026-12-03T10:00:00Z")
            .set("aws:EpochTime", "1796292000")
            .set("aws:SecureTransport", "true")
            .set("b", "aGVsbG8=");
        assert!(holds(
            r#"{"NumericLessThan":{"n":11},"NumericGreaterThanEquals":{"n":"10"}}"#,
            &ctx
        ));
        assert!(holds(r#"{"NumericNotEquals":{"n":[1,2]}}"#, &ctx));
        assert!(!holds(r#"{"NumericEquals":{"n":"ten"}}"#, &ctx));
        assert!(holds(
            r#"{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"DateLessThan":{"aws:CurrentTime":"2027-01-01"}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"DateLessThanEquals":{"aws:EpochTime":"2026-12-03T10:00:00Z"}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"DateNotEquals":{"aws:CurrentTime":"2026-12-03T10:00:01Z"}}"#,
            &ctx
        ));
        assert!(holds(r#"{"Bool":{"aws:SecureTransport":"true"}}"#, &ctx));
        assert!(holds(r#"{"Bool":{"aws:SecureTransport":true}}"#, &ctx));
        assert!(holds(r#"{"BinaryEquals":{"b":"aGVsbG8="}}"#, &ctx));
        assert!(holds(
            r#"{"Null":{"aws:TokenIssueTime":"true","n":"false"}}"#,
            &ctx
        ));
        assert!(!holds(r#"{"Null":{"n":"true"}}"#, &ctx));
    }

    #[test]
    fn addresses_and_arns() {
        let mut ctx = Context::new();
        ctx.set("aws:SourceIp", "10.1.2.3")
            .set("aws:PrincipalArn", "arn:aws:iam::123456789012:role/deploy");
        assert!(holds(
            r#"{"IpAddress":{"aws:SourceIp":["192.168.0.0/16","10.0.0.0/8"]}}"#,
            &ctx
        ));
        assert!(!holds(
            r#"{"NotIpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &ctx
        ));
        assert!(holds(r#"{"IpAddress":{"aws:SourceIp":"10.1.2.3"}}"#, &ctx));
        assert!(holds(r#"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, &ctx));
        let mut v6 = Context::new();
        v6.set("aws:SourceIp", "2001:db8::1");
        assert!(holds(
            r#"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#,
            &v6
        ));
        assert!(!holds(
            r#"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
            &v6
        ));
        assert!(holds(
            r#"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/dep*"}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::123456789012:role/deploy"}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/*"}}"#,
            &ctx
        ));
    }

    #[test]
    fn multivalued_keys_with_for_any_and_for_all() {
        let mut ctx = Context::new();
        ctx.set_all("aws:TagKeys", vec!["team".into(), "env".into()]);
        assert!(holds(
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team","env","cost"]}}"#,
            &ctx
        ));
        assert!(!holds(
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}"#,
            &ctx
        ));
        assert!(holds(
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["env"]}}"#,
            &ctx
        ));
        assert!(!holds(
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["cost"]}}"#,
            &ctx
        ));
        // Missing: ForAllValues is vacuously true, ForAnyValue false.
        let empty = Context::new();
        assert!(holds(
            r#"{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}"#,
            &empty
        ));
        assert!(!holds(
            r#"{"ForAnyValue:StringEquals":{"aws:TagKeys":["team"]}}"#,
            &empty
        ));
        // Plain operator on a multivalued key: any value.
        assert!(holds(r#"{"StringEquals":{"aws:TagKeys":"env"}}"#, &ctx));
    }

    #[test]
    fn unknown_operators_are_malformed() {
        let e = parse_block(&serde_json::json!({"StringEqualz": {"a": "b"}})).unwrap_err();
        assert_eq!(e.0, "Invalid Condition type : StringEqualz");
        assert!(parse_block(&serde_json::json!({"NullIfExists": {"a": "true"}})).is_err());
    }
}
