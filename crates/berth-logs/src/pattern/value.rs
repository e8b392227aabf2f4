//! The right-hand side of a JSON or space-delimited condition and how it compares with a
//! value from the log event (FilterAndPatternSyntax: "Writing filter patterns that match
//! strings / numeric values").
//!
//! * `"quoted"` or bare text: equal, with `*` as a wildcard at the start and/or the end only
//!   (the guide: "`Ev*ent` will only match the actual string `Ev*ent`"). A lone `*` matches
//!   any value that is present.
//! * A number (`400`, `-1.5`, `+1000`, `1e+3`, `10e-3`): numeric comparison; the event's
//!   value must be a number or a string holding one.
//! * `%regex%`: the value contains a match.
//! * `<`, `>`, `<=`, `>=` need a number; `=` and `!=` take any of these.

use super::PatternError;
use super::regex::FilterRegex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

/// Text with optional `*` wildcards at either end.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Wildcard {
    lead: bool,
    trail: bool,
    literal: String,
}

impl Wildcard {
    pub fn parse(text: &str) -> Wildcard {
        let lead = text.starts_with('*');
        let body = if lead { &text[1..] } else { text };
        let trail = body.ends_with('*') && !body.is_empty();
        let body = if trail { &body[..body.len() - 1] } else { body };
        Wildcard {
            lead,
            trail,
            literal: body.to_string(),
        }
    }

    pub fn matches(&self, s: &str) -> bool {
        let l = self.literal.as_str();
        match (self.lead, self.trail) {
            (false, false) => s == l,
            (true, false) => s.ends_with(l),
            (false, true) => s.starts_with(l),
            (true, true) => s.contains(l),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Operand {
    /// A lone `*`.
    Any,
    Text(Wildcard),
    /// A number.
    Number(f64),
    Regex(FilterRegex),
}

/// A value from the event: a JSON scalar or a delimited field.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scalar<'a> {
    Str(&'a str),
    /// A JSON number, with its text.
    Num(f64, &'a str),
    Bool(bool),
}

impl<'a> Scalar<'a> {
    fn text(&self) -> &'a str {
        match *self {
            Scalar::Str(s) | Scalar::Num(_, s) => s,
            Scalar::Bool(true) => "true",
            Scalar::Bool(false) => "false",
        }
    }

    fn number(&self) -> Option<f64> {
        match *self {
            Scalar::Num(n, _) => Some(n),
            Scalar::Str(s) => parse_number(s.trim()),
            Scalar::Bool(_) => None,
        }
    }
}

/// A number as filter patterns write them: optional sign, digits with an optional fraction,
/// optional exponent.
pub(crate) fn parse_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut digits = i > start;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let f = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        digits |= i > f;
    }
    if !digits {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        i += usize::from(matches!(b.get(i), Some(b'+' | b'-')));
        let e = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == e {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    s.parse::<f64>().ok()
}

impl Operand {
    /// A bare (unquoted) value. Only letters, digits and `_ . * + -` may appear unquoted.
    pub fn bare(text: &str) -> Result<Operand, PatternError> {
        if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '+' | '-')))
        {
            return Err(PatternError::InvalidCharacter(c.to_string()));
        }
        if text == "*" {
            return Ok(Operand::Any);
        }
        if let Some(n) = parse_number(text) {
            return Ok(Operand::Number(n));
        }
        Ok(Operand::Text(Wildcard::parse(text)))
    }

    pub fn quoted(text: &str) -> Operand {
        Operand::Text(Wildcard::parse(text))
    }

    pub fn is_number(&self) -> bool {
        matches!(self, Operand::Number(..))
    }

    /// The text a matching value contains, for `Text` operands.
    pub fn literal(&self) -> Option<&str> {
        match self {
            Operand::Text(w) => Some(&w.literal),
            _ => None,
        }
    }

    pub fn is_regex(&self) -> bool {
        matches!(self, Operand::Regex(_))
    }

    /// Whether `value <op> self` holds.
    pub fn compare(&self, op: Op, value: Scalar<'_>) -> bool {
        match (op, self) {
            (Op::Eq | Op::Ne, Operand::Any) => op == Op::Eq,
            (Op::Eq | Op::Ne, Operand::Text(w)) => w.matches(value.text()) == (op == Op::Eq),
            (Op::Eq | Op::Ne, Operand::Regex(r)) => r.is_match(value.text()) == (op == Op::Eq),
            (_, Operand::Number(n)) => match value.number() {
                Some(v) => match op {
                    Op::Eq => v == *n,
                    Op::Ne => v != *n,
                    Op::Lt => v < *n,
                    Op::Gt => v > *n,
                    Op::Le => v <= *n,
                    Op::Ge => v >= *n,
                },
                None => op == Op::Ne,
            },
            // Ordering against a non-number is refused when the pattern is parsed.
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_only_at_the_ends() {
        assert!(Wildcard::parse("*Event").matches("PutEvent"));
        assert!(Wildcard::parse("Event*").matches("EventName"));
        assert!(Wildcard::parse("*html*").matches("GET /index.html HTTP/1.0"));
        assert!(!Wildcard::parse("Ev*ent").matches("Event"));
        assert!(Wildcard::parse("Ev*ent").matches("Ev*ent"));
        assert!(Wildcard::parse("123.123.*").matches("123.123.4.5"));
    }

    #[test]
    fn numbers_as_patterns_write_them() {
        for (s, v) in [
            ("400", 400.0),
            ("+1000", 1000.0),
            ("-1.5", -1.5),
            ("1e+3", 1000.0),
            ("10e-3", 0.01),
            ("55.5", 55.5),
        ] {
            assert_eq!(parse_number(s), Some(v), "{s}");
        }
        for s in ["", "+", "1e", "1.2.3", "123.123.*", "0x10", "1 "] {
            assert_eq!(parse_number(s), None, "{s}");
        }
    }

    #[test]
    fn compare_numbers_with_numeric_strings() {
        let four = Operand::bare("400").unwrap();
        assert!(four.compare(Op::Eq, Scalar::Str("400")));
        assert!(four.compare(Op::Eq, Scalar::Num(400.0, "400")));
        assert!(!four.compare(Op::Eq, Scalar::Str("abc")));
        assert!(four.compare(Op::Ne, Scalar::Str("abc")));
        assert!(!four.compare(Op::Lt, Scalar::Str("401")));
        assert!(four.compare(Op::Gt, Scalar::Str("401")));
    }
}
