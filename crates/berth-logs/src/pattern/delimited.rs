//! Filter patterns over space-delimited log events (FilterAndPatternSyntax, "Using filter
//! patterns to match terms in space-delimited log events"):
//! `[ip, user, ..., status_code = 4* && status_code != 403, bytes > 1000]`.
//!
//! * The event splits at runs of spaces; text between `"` and `"` or between `[` and `]` is
//!   one field (without its quotes or brackets).
//! * The pattern names fields in order, separated by commas; `...` stands for any number of
//!   fields (none included). Without `...`, the event must have at least as many fields, and
//!   the last field of the pattern takes the rest of the line: the current guide's
//!   `[w1=ERROR, w2]` "returns log events where the first word is ERROR" on seven-word lines
//!   and insists on the blank `w2` ("you must include a blank indicator after you specify the
//!   order of your terms"). The archived guide said `[w1=ERROR, w2]` does not match
//!   `ERROR WARN message`; that page's examples contradict themselves, so the current one
//!   decides. Unverified against AWS.
//! * A field may carry a condition on itself (`status_code = 404 || status_code = 410`):
//!   `=`/`!=`/`<`/`>`/`<=`/`>=` with the values of `value.rs`, `&&`, `||`, parentheses. A
//!   condition naming another field is refused (the guide's old example doing so was reported
//!   as refused by the console: awsdocs/amazon-cloudwatch-logs-user-guide#21).
//! * An empty entry (`[a,,b]`, or after a trailing comma) is an unnamed field.
//! * What a match extracts (TestMetricFilter's `extractedValues`): `$name` for each named
//!   field and `$N` (1-based position) for each field covered by `...` or unnamed.

use super::PatternError;
use super::json::{describe, operand};
use super::lex::{Tok, tokens};
use super::value::{Op, Operand, Scalar};
use std::borrow::Cow;

#[derive(Debug, Clone)]
enum Cond {
    Or(Vec<Cond>),
    And(Vec<Cond>),
    Compare(Op, Operand),
}

impl Cond {
    fn eval(&self, field: &str) -> bool {
        match self {
            Cond::Or(v) => v.iter().any(|c| c.eval(field)),
            Cond::And(v) => v.iter().all(|c| c.eval(field)),
            Cond::Compare(op, rhs) => rhs.compare(*op, Scalar::Str(field)),
        }
    }

    fn regex_count(&self) -> usize {
        match self {
            Cond::Or(v) | Cond::And(v) => v.iter().map(Cond::regex_count).sum(),
            Cond::Compare(_, o) => usize::from(o.is_regex()),
        }
    }
}

#[derive(Debug, Clone)]
enum Entry {
    Ellipsis,
    Field {
        name: Option<String>,
        cond: Option<Cond>,
    },
}

#[derive(Debug, Clone)]
pub(crate) struct Delimited {
    entries: Vec<Entry>,
    has_ellipsis: bool,
    fixed: usize,
}

/// What a match extracted: each field of the event with its name (`$name` or `$N`).
pub(crate) type Fields<'m> = Vec<(String, Cow<'m, str>)>;

/// Marks a field covered by `...`.
const SPREAD: usize = usize::MAX;

impl Delimited {
    /// Parses the text between the brackets.
    pub fn parse(inner: &str) -> Result<Delimited, PatternError> {
        let mut entries = Vec::new();
        for part in split_entries(inner)? {
            entries.push(entry(part.trim())?);
        }
        let has_ellipsis = entries.iter().any(|e| matches!(e, Entry::Ellipsis));
        let fixed = entries
            .iter()
            .filter(|e| !matches!(e, Entry::Ellipsis))
            .count();
        Ok(Delimited {
            entries,
            has_ellipsis,
            fixed,
        })
    }

    pub fn regex_count(&self) -> usize {
        self.entries
            .iter()
            .map(|e| match e {
                Entry::Field { cond: Some(c), .. } => c.regex_count(),
                _ => 0,
            })
            .sum()
    }

    /// Whether `$name` names a field of the pattern.
    pub fn has_field(&self, name: &str) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(e, Entry::Field { name: Some(n), .. } if n == name))
    }

    /// For each field of `message`, the index of the pattern entry it is bound to
    /// ([`SPREAD`] under `...`), when the message matches.
    fn bind<'m>(&self, message: &'m str) -> Option<(Vec<&'m str>, Vec<usize>)> {
        let fields = if self.has_ellipsis {
            split_fields(message, usize::MAX)
        } else {
            split_fields(message, self.fixed)
        };
        let n = fields.len();
        if n < self.fixed || (!self.has_ellipsis && n != self.fixed) {
            return None;
        }
        let mut assign = Vec::with_capacity(n);
        self.bind_from(0, &fields, 0, &mut assign)
            .then_some((fields, assign))
    }

    fn bind_from(&self, e: usize, fields: &[&str], f: usize, assign: &mut Vec<usize>) -> bool {
        let Some(entry) = self.entries.get(e) else {
            return f == fields.len();
        };
        match entry {
            Entry::Ellipsis => {
                for take in 0..=fields.len() - f {
                    assign.truncate(f);
                    assign.extend(std::iter::repeat_n(SPREAD, take));
                    if self.bind_from(e + 1, fields, f + take, assign) {
                        return true;
                    }
                }
                false
            }
            Entry::Field { cond, .. } => {
                let Some(field) = fields.get(f) else {
                    return false;
                };
                if cond.as_ref().is_some_and(|c| !c.eval(field)) {
                    return false;
                }
                assign.truncate(f);
                assign.push(e);
                self.bind_from(e + 1, fields, f + 1, assign)
            }
        }
    }

    pub fn matches(&self, message: &str) -> bool {
        self.bind(message).is_some()
    }

    pub fn captures<'m>(&self, message: &'m str) -> Option<Fields<'m>> {
        let (fields, assign) = self.bind(message)?;
        Some(
            fields
                .into_iter()
                .zip(assign)
                .enumerate()
                .map(|(i, (value, e))| {
                    let name = match self.entries.get(e) {
                        Some(Entry::Field { name: Some(n), .. }) => format!("${n}"),
                        _ => format!("${}", i + 1),
                    };
                    (name, Cow::Borrowed(value))
                })
                .collect(),
        )
    }
}

/// Splits at top-level commas (not inside `"…"` or `%…%`).
fn split_entries(inner: &str) -> Result<Vec<&str>, PatternError> {
    let mut parts = Vec::new();
    let (mut start, mut quote, mut regex, mut escaped) = (0, false, false, false);
    for (i, c) in inner.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quote => escaped = true,
            '"' if !regex => quote = !quote,
            '%' if !quote => regex = !regex,
            ',' if !quote && !regex => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if quote {
        return Err(PatternError::syntax("a quoted string has no closing '\"'"));
    }
    parts.push(&inner[start..]);
    Ok(parts)
}

fn field_name(w: &str) -> Result<&str, PatternError> {
    match w
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
    {
        Some(c) => Err(PatternError::InvalidCharacter(c.to_string())),
        None => Ok(w),
    }
}

fn entry(text: &str) -> Result<Entry, PatternError> {
    if text.is_empty() {
        return Ok(Entry::Field {
            name: None,
            cond: None,
        });
    }
    if text == "..." {
        return Ok(Entry::Ellipsis);
    }
    let toks = tokens(text)?;
    if let [Tok::Word(w)] = toks.as_slice() {
        return Ok(Entry::Field {
            name: Some(field_name(w)?.to_string()),
            cond: None,
        });
    }
    let mut p = CondParser {
        toks,
        at: 0,
        name: None,
    };
    let cond = p.or()?;
    if let Some(t) = p.toks.get(p.at) {
        return Err(PatternError::syntax(format!(
            "unexpected {} in a space-delimited filter pattern",
            describe(t)
        )));
    }
    Ok(Entry::Field {
        name: p.name,
        cond: Some(cond),
    })
}

struct CondParser {
    toks: Vec<Tok>,
    at: usize,
    name: Option<String>,
}

impl CondParser {
    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += usize::from(t.is_some());
        t
    }

    fn or(&mut self) -> Result<Cond, PatternError> {
        let mut v = vec![self.and()?];
        while self.toks.get(self.at) == Some(&Tok::Or) {
            self.at += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Cond::Or(v)
        })
    }

    fn and(&mut self) -> Result<Cond, PatternError> {
        let mut v = vec![self.unary()?];
        while self.toks.get(self.at) == Some(&Tok::And) {
            self.at += 1;
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Cond::And(v)
        })
    }

    fn unary(&mut self) -> Result<Cond, PatternError> {
        match self.next() {
            Some(Tok::Open) => {
                let c = self.or()?;
                match self.next() {
                    Some(Tok::Close) => Ok(c),
                    _ => Err(PatternError::syntax("a '(' has no matching ')'")),
                }
            }
            Some(Tok::Word(w)) => {
                let name = field_name(&w)?;
                match &self.name {
                    Some(n) if n != name => {
                        return Err(PatternError::syntax(format!(
                            "the condition on field '{n}' names another field, '{name}'"
                        )));
                    }
                    Some(_) => {}
                    None => self.name = Some(name.to_string()),
                }
                match self.next() {
                    Some(Tok::Op(op)) => Ok(Cond::Compare(op, operand(self.next(), op)?)),
                    _ => Err(PatternError::syntax(format!(
                        "expected an operator after '{name}'"
                    ))),
                }
            }
            Some(t) => Err(PatternError::syntax(format!(
                "expected a field name, found {}",
                describe(&t)
            ))),
            None => Err(PatternError::syntax("a field condition ends too early")),
        }
    }
}

/// Splits an event into fields: runs of spaces separate them; `"…"` and `[…]` are one field.
/// The `max`th field is the rest of the line.
pub(crate) fn split_fields(line: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() || max == 0 {
            return out;
        }
        if out.len() + 1 == max {
            let whole = rest.trim_end_matches([' ', '\t']);
            // A lone quoted or bracketed remainder still loses its quotes or brackets.
            let inner = split_fields(whole, usize::MAX);
            out.push(match inner.as_slice() {
                [one] => one,
                _ => whole,
            });
            return out;
        }
        let closer = match rest.as_bytes()[0] {
            b'"' => Some('"'),
            b'[' => Some(']'),
            _ => None,
        };
        if let Some(close) = closer
            && let Some(end) = rest[1..].find(close)
        {
            out.push(&rest[1..1 + end]);
            rest = &rest[end + 2..];
            continue;
        }
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        out.push(&rest[..end]);
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_fields_keeps_quoted_and_bracketed_fields_whole() {
        assert_eq!(
            split_fields(
                r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534"#,
                usize::MAX
            ),
            vec![
                "127.0.0.1",
                "-",
                "frank",
                "10/Oct/2000:13:25:15 -0700",
                "GET /apache_pb.gif HTTP/1.0",
                "200",
                "1534"
            ]
        );
        assert_eq!(split_fields("  a   b\tc ", usize::MAX), vec!["a", "b", "c"]);
        assert_eq!(
            split_fields(r#"a "unclosed b"#, usize::MAX),
            vec!["a", "\"unclosed", "b"]
        );
        assert!(split_fields("", usize::MAX).is_empty());
        assert_eq!(split_fields("a b  c d ", 2), vec!["a", "b  c d"]);
        assert_eq!(split_fields(r#"a "b c""#, 2), vec!["a", "b c"]);
        assert_eq!(split_fields("a", 2), vec!["a"]);
    }

    #[test]
    fn entries_split_outside_quotes_and_regex() {
        assert_eq!(
            split_entries(r#"a = "x,y", b=%1,2%, ..."#).unwrap(),
            vec![r#"a = "x,y""#, " b=%1,2%", " ..."]
        );
    }
}
