//! Composite-alarm rules (`PutCompositeAlarm`'s `AlarmRule`): parsing with AWS's documented
//! limits ([`Rule::parse`]), the alarms a rule references ([`Rule::references`]) and
//! evaluation against a state lookup ([`Rule::evaluate`]).
//!
//! Called by the CloudWatch API layer (PutCompositeAlarm: parse, check the references exist)
//! and by the alarm reconciler (re-evaluate a composite when a child changes state). Pure.
//!
//! Grammar (User Guide / API reference): `ALARM(x)`, `OK(x)`, `INSUFFICIENT_DATA(x)` where
//! `x` is an alarm name or ARN, double-quoted or bare; `TRUE`, `FALSE`; `NOT`, `AND`, `OR`
//! and parentheses. `NOT` binds tightest, then `AND`, then `OR` (AWS documents no
//! precedence; this is the usual one, and parentheses make any rule explicit). Keywords
//! are accepted in any case. A bare name runs to the next `)` and is trimmed.
//!
//! Limits (documented): the rule is 1–10,240 characters, names at most 100 distinct
//! children, and has at most 500 elements (children, `TRUE`/`FALSE`, parentheses). Error
//! messages are Berth's wording (AWS's are undocumented); the API layer answers
//! `ValidationError` with them.

use crate::alarm::AlarmState;

/// `AlarmRule`'s maximum length.
pub const MAX_RULE_LEN: usize = 10_240;
/// Distinct alarms a rule may reference.
pub const MAX_CHILDREN: usize = 100;
/// Elements (alarm functions, constants, parentheses) a rule may have.
pub const MAX_ELEMENTS: usize = 500;
const MAX_DEPTH: usize = 100;

/// Why a rule is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RuleError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, RuleError> {
    Err(RuleError(message.into()))
}

/// A parsed composite-alarm rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    Const(bool),
    /// `ALARM(x)` / `OK(x)` / `INSUFFICIENT_DATA(x)`: true when alarm `x` (name or ARN, as
    /// written) is in that state.
    State(AlarmState, String),
    Not(Box<Rule>),
    And(Box<Rule>, Box<Rule>),
    Or(Box<Rule>, Box<Rule>),
}

/// The alarm name a rule reference denotes: the part after `:alarm:` of an ARN
/// (`arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-high`), else the reference itself.
pub fn alarm_name_of(reference: &str) -> &str {
    if reference.starts_with("arn:")
        && let Some((_, name)) = reference.split_once(":alarm:")
    {
        return name;
    }
    reference
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
    elements: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn rest(&self) -> &'a str {
        &self.text[self.pos..]
    }

    fn skip_ws(&mut self) {
        let rest = self.rest();
        self.pos += rest.len() - rest.trim_start().len();
    }

    fn column(&self) -> usize {
        self.text[..self.pos].chars().count() + 1
    }

    fn unexpected<T>(&self) -> Result<T, RuleError> {
        let found: String = self.rest().chars().take(20).collect();
        if found.is_empty() {
            fail("Invalid AlarmRule: unexpected end of rule.")
        } else {
            fail(format!(
                "Invalid AlarmRule: unexpected '{found}' at position {}.",
                self.column()
            ))
        }
    }

    /// The next word (letters and underscores), without consuming it.
    fn peek_word(&self) -> &'a str {
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
            .unwrap_or(rest.len());
        &rest[..end]
    }

    fn eat_keyword(&mut self, kw: &str) -> bool {
        self.skip_ws();
        let w = self.peek_word();
        if w.eq_ignore_ascii_case(kw) {
            self.pos += w.len();
            true
        } else {
            false
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.rest().starts_with(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn count(&mut self) -> Result<(), RuleError> {
        self.elements += 1;
        if self.elements > MAX_ELEMENTS {
            return fail(format!(
                "Invalid AlarmRule: a rule can have at most {MAX_ELEMENTS} elements."
            ));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Rule, RuleError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return fail("Invalid AlarmRule: the rule is nested too deeply.");
        }
        let mut left = self.and()?;
        while self.eat_keyword("OR") {
            let right = self.and()?;
            left = Rule::Or(Box::new(left), Box::new(right));
        }
        self.depth -= 1;
        Ok(left)
    }

    fn and(&mut self) -> Result<Rule, RuleError> {
        let mut left = self.not()?;
        while self.eat_keyword("AND") {
            let right = self.not()?;
            left = Rule::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Rule, RuleError> {
        if self.eat_keyword("NOT") {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return fail("Invalid AlarmRule: the rule is nested too deeply.");
            }
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Rule::Not(Box::new(inner)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Rule, RuleError> {
        self.skip_ws();
        if self.eat('(') {
            self.count()?;
            let inner = self.or()?;
            if !self.eat(')') {
                return self.unexpected();
            }
            return Ok(inner);
        }
        let word = self.peek_word();
        let state = if word.eq_ignore_ascii_case("TRUE") || word.eq_ignore_ascii_case("FALSE") {
            self.pos += word.len();
            self.count()?;
            return Ok(Rule::Const(word.eq_ignore_ascii_case("TRUE")));
        } else if word.eq_ignore_ascii_case("ALARM") {
            AlarmState::Alarm
        } else if word.eq_ignore_ascii_case("OK") {
            AlarmState::Ok
        } else if word.eq_ignore_ascii_case("INSUFFICIENT_DATA") {
            AlarmState::InsufficientData
        } else {
            return self.unexpected();
        };
        self.pos += word.len();
        if !self.eat('(') {
            return self.unexpected();
        }
        self.skip_ws();
        let name = if self.rest().starts_with('"') {
            let body = &self.rest()[1..];
            let Some(end) = body.find('"') else {
                return fail("Invalid AlarmRule: unterminated quoted alarm name.");
            };
            let name = body[..end].to_string();
            self.pos += end + 2;
            if !self.eat(')') {
                return self.unexpected();
            }
            name
        } else {
            let rest = self.rest();
            let Some(end) = rest.find(')') else {
                return fail("Invalid AlarmRule: missing ')' after an alarm name.");
            };
            let name = rest[..end].trim().to_string();
            self.pos += end + 1;
            name
        };
        if name.is_empty() {
            return fail(format!(
                "Invalid AlarmRule: {}() needs an alarm name or ARN.",
                state.as_str()
            ));
        }
        self.count()?;
        Ok(Rule::State(state, name))
    }
}

impl Rule {
    /// Parses and checks an `AlarmRule`.
    pub fn parse(text: &str) -> Result<Rule, RuleError> {
        if text.trim().is_empty() {
            return fail("Invalid AlarmRule: the rule is empty.");
        }
        if text.chars().count() > MAX_RULE_LEN {
            return fail(format!(
                "Invalid AlarmRule: the rule is longer than {MAX_RULE_LEN} characters."
            ));
        }
        let mut p = Parser {
            text,
            pos: 0,
            elements: 0,
            depth: 0,
        };
        let rule = p.or()?;
        p.skip_ws();
        if !p.rest().is_empty() {
            return p.unexpected();
        }
        let children = rule.references().len();
        if children > MAX_CHILDREN {
            return fail(format!(
                "Invalid AlarmRule: a rule can reference at most {MAX_CHILDREN} alarms (it references {children})."
            ));
        }
        Ok(rule)
    }

    /// The alarms the rule references (names or ARNs as written), in order, without
    /// repeats. Use [`alarm_name_of`] to resolve ARNs.
    pub fn references(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Rule::Const(_) => {}
            Rule::State(_, name) => {
                if !out.contains(&name.as_str()) {
                    out.push(name);
                }
            }
            Rule::Not(r) => r.collect(out),
            Rule::And(a, b) | Rule::Or(a, b) => {
                a.collect(out);
                b.collect(out);
            }
        }
    }

    /// Whether the rule holds, given each referenced alarm's state (`state_of` receives
    /// the reference as written; an unknown alarm makes its function false).
    pub fn evaluate<F: Fn(&str) -> Option<AlarmState>>(&self, state_of: &F) -> bool {
        match self {
            Rule::Const(b) => *b,
            Rule::State(want, name) => state_of(name) == Some(*want),
            Rule::Not(r) => !r.evaluate(state_of),
            Rule::And(a, b) => a.evaluate(state_of) && b.evaluate(state_of),
            Rule::Or(a, b) => a.evaluate(state_of) || b.evaluate(state_of),
        }
    }

    /// The composite alarm's state: ALARM when the rule holds, else OK.
    pub fn state<F: Fn(&str) -> Option<AlarmState>>(&self, state_of: &F) -> AlarmState {
        if self.evaluate(state_of) {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(states: &'a [(&'a str, AlarmState)]) -> impl Fn(&str) -> Option<AlarmState> + 'a {
        move |r: &str| {
            let name = alarm_name_of(r);
            states.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
        }
    }

    #[test]
    fn composite_parse_documented_examples() {
        let r = Rule::parse("ALARM(CPUUtilizationTooHigh) AND ALARM(DiskReadOpsTooHigh)").unwrap();
        assert_eq!(
            r,
            Rule::And(
                Box::new(Rule::State(
                    AlarmState::Alarm,
                    "CPUUtilizationTooHigh".into()
                )),
                Box::new(Rule::State(AlarmState::Alarm, "DiskReadOpsTooHigh".into()))
            )
        );
        let r = Rule::parse("ALARM(CPUUtilizationTooHigh) AND NOT ALARM(DeploymentInProgress)")
            .unwrap();
        assert_eq!(
            r.references(),
            vec!["CPUUtilizationTooHigh", "DeploymentInProgress"]
        );
        let r = Rule::parse(
            "(ALARM(CPUUtilizationTooHigh) OR ALARM(DiskReadOpsTooHigh)) AND OK(NetworkOutTooHigh)",
        )
        .unwrap();
        let states = [
            ("CPUUtilizationTooHigh", AlarmState::Alarm),
            ("DiskReadOpsTooHigh", AlarmState::Ok),
            ("NetworkOutTooHigh", AlarmState::Ok),
        ];
        assert!(r.evaluate(&lookup(&states)));
        let states = [
            ("CPUUtilizationTooHigh", AlarmState::Alarm),
            ("NetworkOutTooHigh", AlarmState::Alarm),
        ];
        assert!(!r.evaluate(&lookup(&states)));
    }

    #[test]
    fn composite_names_quoted_bare_and_arns() {
        let r = Rule::parse(
            r#"ALARM("web high (p99)") OR INSUFFICIENT_DATA( bare name ) OR OK(arn:aws:cloudwatch:us-east-1:123456789012:alarm:db-low)"#,
        )
        .unwrap();
        assert_eq!(
            r.references(),
            vec![
                "web high (p99)",
                "bare name",
                "arn:aws:cloudwatch:us-east-1:123456789012:alarm:db-low"
            ]
        );
        assert_eq!(alarm_name_of(r.references()[2]), "db-low");
        assert_eq!(alarm_name_of("plain"), "plain");
        let states = [("db-low", AlarmState::Ok)];
        assert_eq!(r.state(&lookup(&states)), AlarmState::Alarm);
        let none: [(&str, AlarmState); 0] = [];
        assert_eq!(r.state(&lookup(&none)), AlarmState::Ok);
    }

    #[test]
    fn composite_precedence_and_constants() {
        // NOT > AND > OR: TRUE OR FALSE AND FALSE = TRUE OR (FALSE AND FALSE).
        assert!(
            Rule::parse("TRUE OR FALSE AND FALSE")
                .unwrap()
                .evaluate(&|_: &str| None)
        );
        assert!(
            !Rule::parse("(TRUE OR FALSE) AND FALSE")
                .unwrap()
                .evaluate(&|_: &str| None)
        );
        assert!(
            Rule::parse("NOT FALSE AND TRUE")
                .unwrap()
                .evaluate(&|_: &str| None)
        );
        assert!(
            Rule::parse("not false and true")
                .unwrap()
                .evaluate(&|_: &str| None)
        );
        assert!(
            Rule::parse("NOT NOT TRUE")
                .unwrap()
                .evaluate(&|_: &str| None)
        );
        assert!(Rule::parse("FALSE").unwrap().references().is_empty());
    }

    #[test]
    fn composite_refuses_malformed_rules() {
        for bad in [
            "",
            "   ",
            "ALARM()",
            "ALARM(a",
            "ALARM(\"a)",
            "ALARM(a) AND",
            "ALARM(a) ALARM(b)",
            "(ALARM(a)",
            "ALARM(a))",
            "WARN(a)",
            "ALARM a",
            "TRUE FALSE",
        ] {
            assert!(Rule::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert_eq!(
            Rule::parse("ALARM(a) AND").unwrap_err().0,
            "Invalid AlarmRule: unexpected end of rule."
        );
        assert_eq!(
            Rule::parse("ALARM(a) XOR ALARM(b)").unwrap_err().0,
            "Invalid AlarmRule: unexpected 'XOR ALARM(b)' at position 10."
        );
    }

    #[test]
    fn composite_limits() {
        let many: Vec<String> = (0..101).map(|i| format!("ALARM(a{i})")).collect();
        let e = Rule::parse(&many.join(" OR ")).unwrap_err();
        assert!(e.0.contains("at most 100 alarms"), "{e}");
        let hundred: Vec<String> = (0..100).map(|i| format!("ALARM(a{i})")).collect();
        assert!(Rule::parse(&hundred.join(" OR ")).is_ok());
        let repeated: Vec<&str> = vec!["ALARM(a)"; 501];
        let e = Rule::parse(&repeated.join(" OR ")).unwrap_err();
        assert!(e.0.contains("at most 500 elements"), "{e}");
        let long = format!("ALARM({})", "x".repeat(MAX_RULE_LEN));
        assert!(Rule::parse(&long).is_err());
        let deep = format!("{}TRUE{}", "(".repeat(200), ")".repeat(200));
        assert!(Rule::parse(&deep).is_err());
        let nots = format!("{}TRUE", "NOT ".repeat(200));
        assert!(Rule::parse(&nots).is_err());
    }
}
