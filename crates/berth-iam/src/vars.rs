//! Policy variables (spec/iam.md §2): `${aws:username}`, `${aws:PrincipalTag/team}`, with a
//! default (`${aws:username, 'nobody'}`) and the escapes `${*}`, `${?}`, `${$}`. Substituted
//! in `Resource` and condition values under Version 2012-10-17 only; a variable whose key the
//! request lacks (and has no default) makes its value match nothing.

use crate::context::Context;
use crate::wildcard::Pattern;
use std::borrow::Cow;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    /// A lowercased key, and its default.
    Var(String, Option<String>),
    /// `${*}` and friends: the character itself, never a wildcard.
    Escaped(char),
}

/// A policy string that may hold variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Text {
    raw: String,
    parts: Vec<Part>,
    /// The patterns when there is nothing to substitute: (with wildcards, literal).
    fixed: Option<(Pattern, Pattern)>,
}

impl Text {
    pub fn parse(raw: &str) -> Text {
        let mut parts = Vec::new();
        let mut rest = raw;
        while let Some(start) = rest.find("${") {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            let inner = &rest[start + 2..start + len];
            let part = match inner {
                "*" => Part::Escaped('*'),
                "?" => Part::Escaped('?'),
                "$" => Part::Escaped('$'),
                _ => {
                    let (key, default) = match inner.split_once(',') {
                        Some((k, d)) => {
                            let d = d.trim();
                            let d = d
                                .strip_prefix('\'')
                                .and_then(|d| d.strip_suffix('\''))
                                .unwrap_or(d);
                            (k.trim(), Some(d.to_string()))
                        }
                        None => (inner.trim(), None),
                    };
                    Part::Var(key.to_lowercase(), default)
                }
            };
            if start > 0 {
                parts.push(Part::Text(rest[..start].to_string()));
            }
            parts.push(part);
            rest = &rest[start + len + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        let fixed = parts
            .iter()
            .all(|p| matches!(p, Part::Text(_)))
            .then(|| (Pattern::parse(raw), Pattern::literal(raw)));
        Text {
            raw: raw.to_string(),
            parts,
            fixed,
        }
    }

    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The (lowercased) keys of the variables it holds.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(key, _) => Some(key.as_str()),
            _ => None,
        })
    }

    /// The pattern for this request: with `*`/`?` as wildcards if `wildcards`, variables
    /// substituted if `vars`; `None` when a variable has no value.
    pub fn pattern(&self, ctx: &Context, vars: bool, wildcards: bool) -> Option<Cow<'_, Pattern>> {
        let whole = |text: &str| {
            if wildcards {
                Pattern::parse(text)
            } else {
                Pattern::literal(text)
            }
        };
        if let Some((wild, literal)) = &self.fixed {
            return Some(Cow::Borrowed(if wildcards { wild } else { literal }));
        }
        if !vars {
            return Some(Cow::Owned(whole(&self.raw)));
        }
        let mut out = Pattern::default();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.0.extend(whole(t).0),
                Part::Escaped(c) => out.push_literal(&c.to_string()),
                Part::Var(key, default) => match (ctx.get(key), default) {
                    (Some([one]), _) => out.push_literal(one),
                    (_, Some(d)) => out.push_literal(d),
                    _ => return None,
                },
            }
        }
        Some(Cow::Owned(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_defaults_and_escapes() {
        let mut ctx = Context::new();
        ctx.set("aws:username", "bob")
            .set("aws:PrincipalTag/team", "a*b");
        let p = |text: &str| {
            Text::parse(text)
                .pattern(&ctx, true, true)
                .map(|p| p.into_owned())
        };
        let home = p("arn:aws:ecr:*:*:repository/${aws:username}/*").unwrap();
        assert!(home.matches("arn:aws:ecr:us-east-1:1:repository/bob/app"));
        assert!(!home.matches("arn:aws:ecr:us-east-1:1:repository/alice/app"));
        // A substituted value is literal, whatever it holds.
        let team = p("repo/${aws:PrincipalTag/team}").unwrap();
        assert!(team.matches("repo/a*b"));
        assert!(!team.matches("repo/axxb"));
        assert!(p("x/${aws:userid}").is_none());
        assert!(p("x/${aws:userid, 'nobody'}").unwrap().matches("x/nobody"));
        assert!(p("a${*}b").unwrap().matches("a*b"));
        assert!(!p("a${*}b").unwrap().matches("axb"));
        assert!(p("cost${$}").unwrap().matches("cost$"));
        // Under 2008-10-17 the text is literal.
        let old = Text::parse("repo/${aws:username}");
        assert!(
            old.pattern(&ctx, false, true)
                .unwrap()
                .matches("repo/${aws:username}")
        );
    }
}
