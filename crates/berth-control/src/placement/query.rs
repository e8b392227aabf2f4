//! The cluster query language (spec/ecs.md §6.4): `memberOf` placement constraints and
//! `ListContainerInstances --filter`. Parsing and evaluation are pure.

use std::cmp::Ordering;
use std::fmt;

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Compare(Subject, Op, String),
    In(Subject, bool, Vec<String>),
    Exists(Subject, bool),
    /// `=~` / `!~`: the regex is compiled once, at parse time.
    Matches(Subject, bool, Regex),
}

/// A compiled `=~` pattern (anchored: it must match the whole value).
#[derive(Debug, Clone)]
pub struct Regex(regex_lite::Regex);

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Attribute(String),
    TaskGroup,
    AgentConnected,
    AgentVersion,
    Ec2InstanceId,
    RegisteredAt,
    RunningTasksCount,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// What an expression is evaluated against: one container instance.
pub trait Facts {
    fn attribute(&self, name: &str) -> Option<String>;
    /// Task groups with at least one task on the instance.
    fn task_groups(&self) -> Vec<String>;
    fn agent_connected(&self) -> bool;
    fn agent_version(&self) -> Option<String>;
    fn ec2_instance_id(&self) -> Option<String>;
    /// `registeredAt`, epoch milliseconds.
    fn registered_at(&self) -> i64;
    fn running_tasks_count(&self) -> u64;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
}

fn tokenize(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1
            }
            '[' => {
                out.push(Tok::LBracket);
                i += 1
            }
            ']' => {
                out.push(Tok::RBracket);
                i += 1
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1
            }
            _ => {
                let start = i;
                while i < chars.len()
                    && !matches!(chars[i], ' ' | '\t' | '\n' | '(' | ')' | '[' | ']' | ',')
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
        }
    }
    out
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_word(&self) -> Option<&str> {
        match self.toks.get(self.pos) {
            Some(Tok::Word(w)) => Some(w),
            _ => None,
        }
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, t: Tok) -> Result<(), ParseError> {
        match self.next() {
            Some(x) if x == t => Ok(()),
            other => Err(ParseError(format!("expected {t:?}, found {other:?}"))),
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while matches!(self.peek_word(), Some("||" | "or")) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.not()?;
        while matches!(self.peek_word(), Some("&&" | "and")) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.not()?));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        match self.toks.get(self.pos) {
            Some(Tok::Word(w)) if w == "!" || w == "not" => {
                self.pos += 1;
                Ok(Expr::Not(Box::new(self.not()?)))
            }
            Some(Tok::Word(w))
                if w.starts_with('!')
                    && w.len() > 1
                    && !w.starts_with("!=")
                    && !w.starts_with("!~") =>
            {
                // `!attribute:x exists` written without a space.
                let rest = w[1..].to_string();
                self.toks[self.pos] = Tok::Word(rest);
                Ok(Expr::Not(Box::new(self.not()?)))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            _ => self.predicate(),
        }
    }

    fn predicate(&mut self) -> Result<Expr, ParseError> {
        let subject = match self.next() {
            Some(Tok::Word(w)) => subject(&w)?,
            other => return Err(ParseError(format!("expected a subject, found {other:?}"))),
        };
        let op = match self.next() {
            Some(Tok::Word(w)) => w,
            other => return Err(ParseError(format!("expected an operator, found {other:?}"))),
        };
        let cmp = |o| -> Result<Expr, ParseError> {
            Ok(Expr::Compare(subject.clone(), o, String::new()))
        };
        let mut e = match op.as_str() {
            "==" | "equals" => cmp(Op::Eq)?,
            "!=" | "not_equals" => cmp(Op::Ne)?,
            ">" | "greater_than" => cmp(Op::Gt)?,
            ">=" | "greater_than_equal" => cmp(Op::Ge)?,
            "<" | "less_than" => cmp(Op::Lt)?,
            "<=" | "less_than_equal" => cmp(Op::Le)?,
            "exists" => return Ok(Expr::Exists(subject, true)),
            "!exists" | "not_exists" => return Ok(Expr::Exists(subject, false)),
            "in" | "!in" | "not_in" => {
                self.expect(Tok::LBracket)?;
                let mut values = Vec::new();
                loop {
                    match self.next() {
                        Some(Tok::Word(w)) => values.push(w),
                        other => {
                            return Err(ParseError(format!("expected a value, found {other:?}")));
                        }
                    }
                    match self.next() {
                        Some(Tok::Comma) => continue,
                        Some(Tok::RBracket) => break,
                        other => {
                            return Err(ParseError(format!(
                                "expected ',' or ']', found {other:?}"
                            )));
                        }
                    }
                }
                return Ok(Expr::In(subject, op == "in", values));
            }
            "=~" | "matches" | "!~" | "not_matches" => {
                let pattern = match self.next() {
                    Some(Tok::Word(w)) => w,
                    other => {
                        return Err(ParseError(format!("expected a pattern, found {other:?}")));
                    }
                };
                let re = regex_lite::Regex::new(&format!("^(?:{pattern})$"))
                    .map_err(|e| ParseError(format!("invalid pattern '{pattern}': {e}")))?;
                return Ok(Expr::Matches(
                    subject,
                    matches!(op.as_str(), "=~" | "matches"),
                    Regex(re),
                ));
            }
            other => return Err(ParseError(format!("unknown operator '{other}'"))),
        };
        let value = match self.next() {
            Some(Tok::Word(w)) => w,
            other => return Err(ParseError(format!("expected a value, found {other:?}"))),
        };
        if let Expr::Compare(_, _, v) = &mut e {
            *v = value;
        }
        Ok(e)
    }
}

fn subject(w: &str) -> Result<Subject, ParseError> {
    if let Some(name) = w.strip_prefix("attribute:") {
        if name.is_empty() {
            return Err(ParseError("attribute: needs a name".into()));
        }
        return Ok(Subject::Attribute(name.to_string()));
    }
    Ok(match w {
        "task:group" => Subject::TaskGroup,
        "agentConnected" => Subject::AgentConnected,
        "agentVersion" => Subject::AgentVersion,
        "ec2InstanceId" => Subject::Ec2InstanceId,
        "registeredAt" => Subject::RegisteredAt,
        "runningTasksCount" => Subject::RunningTasksCount,
        other => return Err(ParseError(format!("unknown subject '{other}'"))),
    })
}

/// Parses an expression.
pub fn parse(s: &str) -> Result<Expr, ParseError> {
    let toks = tokenize(s);
    if toks.is_empty() {
        return Err(ParseError("empty expression".into()));
    }
    let mut p = Parser { toks, pos: 0 };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err(ParseError(format!("unexpected {:?}", p.toks[p.pos])));
    }
    Ok(e)
}

/// Dotted versions compare component by component, numerically where both are numbers.
fn compare_versions(a: &str, b: &str) -> Ordering {
    let mut ia = a.split('.');
    let mut ib = b.split('.');
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(n), Ok(m)) => n.cmp(&m),
                    _ => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// `2018-06-18T22:28:28+00:00`, `…Z`, without a zone, or `2018-06-18` → epoch ms.
fn parse_date(s: &str) -> Option<i64> {
    use time::format_description::well_known::Iso8601;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    if let Ok(t) = time::PrimitiveDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some((t.assume_utc().unix_timestamp_nanos() / 1_000_000) as i64);
    }
    time::Date::parse(s, &Iso8601::DEFAULT)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp() * 1000)
}

fn values(subject: &Subject, f: &dyn Facts) -> Vec<String> {
    match subject {
        Subject::Attribute(n) => f.attribute(n).into_iter().collect(),
        Subject::TaskGroup => f.task_groups(),
        Subject::AgentConnected => vec![f.agent_connected().to_string()],
        Subject::AgentVersion => f.agent_version().into_iter().collect(),
        Subject::Ec2InstanceId => f.ec2_instance_id().into_iter().collect(),
        Subject::RegisteredAt => vec![f.registered_at().to_string()],
        Subject::RunningTasksCount => vec![f.running_tasks_count().to_string()],
    }
}

fn ordered(subject: &Subject, have: &str, want: &str) -> Option<Ordering> {
    match subject {
        Subject::RunningTasksCount => {
            Some(have.parse::<i64>().ok()?.cmp(&want.parse::<i64>().ok()?))
        }
        Subject::AgentVersion => Some(compare_versions(have, want)),
        Subject::RegisteredAt => Some(have.parse::<i64>().ok()?.cmp(&parse_date(want)?)),
        _ => match (have.parse::<f64>(), want.parse::<f64>()) {
            (Ok(a), Ok(b)) => a.partial_cmp(&b),
            _ => Some(have.cmp(want)),
        },
    }
}

/// Whether the instance described by `f` satisfies `e`.
pub fn eval(e: &Expr, f: &dyn Facts) -> bool {
    match e {
        Expr::Or(a, b) => eval(a, f) || eval(b, f),
        Expr::And(a, b) => eval(a, f) && eval(b, f),
        Expr::Not(a) => !eval(a, f),
        Expr::Exists(s, want) => values(s, f).is_empty() != *want,
        Expr::In(s, positive, list) => {
            let any = values(s, f).iter().any(|v| list.contains(v));
            any == *positive
        }
        Expr::Matches(s, positive, re) => {
            let any = values(s, f).iter().any(|v| re.0.is_match(v));
            any == *positive
        }
        Expr::Compare(s, op, want) => {
            let vals = values(s, f);
            match op {
                Op::Eq => vals.iter().any(|v| v == want),
                Op::Ne => !vals.iter().any(|v| v == want),
                Op::Gt | Op::Ge | Op::Lt | Op::Le => vals.iter().any(|v| {
                    ordered(s, v, want).is_some_and(|o| match op {
                        Op::Gt => o == Ordering::Greater,
                        Op::Ge => o != Ordering::Less,
                        Op::Lt => o == Ordering::Less,
                        Op::Le => o != Ordering::Greater,
                        Op::Eq | Op::Ne => false,
                    })
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    struct I {
        attrs: BTreeMap<String, String>,
        groups: Vec<String>,
        running: u64,
        version: &'static str,
        registered: i64,
    }

    impl Facts for I {
        fn attribute(&self, n: &str) -> Option<String> {
            self.attrs.get(n).cloned()
        }
        fn task_groups(&self) -> Vec<String> {
            self.groups.clone()
        }
        fn agent_connected(&self) -> bool {
            true
        }
        fn agent_version(&self) -> Option<String> {
            Some(self.version.into())
        }
        fn ec2_instance_id(&self) -> Option<String> {
            Some("i-0123".into())
        }
        fn registered_at(&self) -> i64 {
            self.registered
        }
        fn running_tasks_count(&self) -> u64 {
            self.running
        }
    }

    fn inst() -> I {
        I {
            attrs: [
                ("ecs.instance-type", "t2.small"),
                ("ecs.availability-zone", "us-east-1a"),
                ("stack", "prod"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            groups: vec!["service:web".into()],
            running: 3,
            version: "1.10.2",
            registered: parse_date("2024-01-02").unwrap(),
        }
    }

    fn yes(s: &str) -> bool {
        eval(&parse(s).unwrap_or_else(|e| panic!("{s}: {e}")), &inst())
    }

    #[test]
    fn query_language_examples_from_the_guide() {
        assert!(yes("attribute:ecs.instance-type == t2.small"));
        assert!(yes("attribute:ecs.instance-type =~ t2.*"));
        assert!(!yes("attribute:ecs.instance-type =~ t2"));
        assert!(yes(
            "attribute:ecs.availability-zone in [us-east-1a, us-east-1b]"
        ));
        assert!(!yes("attribute:ecs.availability-zone not_in [us-east-1a]"));
        assert!(yes("task:group == service:web"));
        assert!(yes("not(task:group == database)"));
        assert!(yes("attribute:stack exists && !(attribute:missing exists)"));
        assert!(yes("attribute:missing not_exists"));
        assert!(yes("runningTasksCount > 2 and runningTasksCount <= 3"));
        assert!(
            yes("agentVersion >= 1.9.10"),
            "versions compare numerically"
        );
        assert!(yes("registeredAt < 2024-06-01T00:00:00Z"));
        assert!(yes("ec2InstanceId != i-9999 or attribute:x == y"));
        assert!(yes(
            "(attribute:stack == dev || attribute:stack == prod) && agentConnected == true"
        ));
    }

    #[test]
    fn query_language_rejects_malformed_expressions() {
        for bad in [
            "",
            "attribute: == x",
            "nonsense == 1",
            "attribute:a ==",
            "attribute:a in [x",
            "attribute:a =~ (",
            "(attribute:a == b",
            "attribute:a == b c",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
