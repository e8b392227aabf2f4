//! Filter patterns over JSON log events (FilterAndPatternSyntax, "Using filter patterns to
//! match terms in JSON log events"): `{ $.level = "error" && ($.latency > 100 || $.a[0].b IS
//! NULL) }`.
//!
//! * Selectors start `$.` or `$[`: `.key` (letters, digits, `-`, `_`), `[0]`, `['key.with.dots']`,
//!   and one wildcard `.*` / `[*]` (any element or member); at most three wildcards in a
//!   pattern.
//! * Conditions: `selector op value` (see `value.rs`), `IS NULL`, `IS TRUE`, `IS FALSE`,
//!   `NOT EXISTS`; `&&` binds tighter than `||`; parentheses group.
//! * A comparison holds when the selector reaches a string, number or boolean that satisfies
//!   it (any of them, through a wildcard); a selector that reaches an object, an array, `null`
//!   or nothing fails both `=` and `!=`.
//! * An event that is not a JSON object matches nothing.

use super::PatternError;
use super::lex::Tok;
use super::prune::Trie;
use super::regex::FilterRegex;
use super::value::{Op, Operand, Scalar};
use serde_json::Value;

/// Most wildcards in one pattern's selectors.
const MAX_WILDCARDS: usize = 3;
/// Most `%regex%` values in one JSON or space-delimited pattern.
pub(crate) const MAX_REGEX: usize = 2;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
    /// `.*` or `[*]`.
    Any,
}

/// A property selector such as `$.users[0].email`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Selector {
    pub text: String,
    pub(crate) steps: Vec<Step>,
}

fn key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

impl Selector {
    pub fn parse(text: &str) -> Result<Selector, PatternError> {
        let bad = |at: usize| {
            let end = text[at..]
                .chars()
                .next()
                .map_or(text.len(), |c| at + c.len_utf8());
            PatternError::InvalidCharacter(text[..end].to_string())
        };
        let b = text.as_bytes();
        if !text.starts_with('$') {
            return Err(bad(0));
        }
        let mut steps = Vec::new();
        let mut i = 1;
        while i < b.len() {
            match b[i] {
                b'.' if b.get(i + 1) == Some(&b'*') => {
                    steps.push(Step::Any);
                    i += 2;
                }
                b'.' if b.get(i + 1) == Some(&b'[') => i += 1,
                b'.' => {
                    let start = i + 1;
                    let len = text[start..]
                        .find(|c: char| !key_char(c))
                        .unwrap_or(text.len() - start);
                    if len == 0 {
                        return Err(bad(start.min(text.len())));
                    }
                    steps.push(Step::Key(text[start..start + len].to_string()));
                    i = start + len;
                }
                b'[' => {
                    let inner_start = i + 1;
                    let Some(close) = text[inner_start..].find(']') else {
                        return Err(bad(i));
                    };
                    let inner = &text[inner_start..inner_start + close];
                    let step = if inner == "*" {
                        Step::Any
                    } else if !inner.is_empty() && inner.bytes().all(|c| c.is_ascii_digit()) {
                        Step::Index(inner.parse().map_err(|_| bad(inner_start))?)
                    } else if inner.len() >= 2
                        && ((inner.starts_with('\'') && inner.ends_with('\''))
                            || (inner.starts_with('"') && inner.ends_with('"')))
                    {
                        Step::Key(inner[1..inner.len() - 1].to_string())
                    } else {
                        return Err(bad(inner_start));
                    };
                    steps.push(step);
                    i = inner_start + close + 1;
                }
                _ => return Err(bad(i)),
            }
        }
        if steps.is_empty() {
            return Err(PatternError::syntax(
                "a selector must name a property after '$'",
            ));
        }
        if steps.iter().filter(|s| **s == Step::Any).count() > 1 {
            return Err(PatternError::syntax(
                "a property selector can use at most one wildcard",
            ));
        }
        Ok(Selector {
            text: text.to_string(),
            steps,
        })
    }

    pub fn wildcards(&self) -> usize {
        self.steps.iter().filter(|s| **s == Step::Any).count()
    }

    /// Calls `f` on each value the selector reaches until `f` returns true; whether it did.
    pub fn any(&self, root: &Value, f: &mut dyn FnMut(&Value) -> bool) -> bool {
        walk(root, &self.steps, f)
    }

    /// The first value the selector reaches.
    pub fn first<'v>(&self, root: &'v Value) -> Option<&'v Value> {
        first(root, &self.steps)
    }
}

fn walk(v: &Value, steps: &[Step], f: &mut dyn FnMut(&Value) -> bool) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return f(v);
    };
    match (step, v) {
        (Step::Key(k), Value::Object(m)) => m.get(k).is_some_and(|c| walk(c, rest, f)),
        (Step::Index(n), Value::Array(a)) => a.get(*n).is_some_and(|c| walk(c, rest, f)),
        (Step::Any, Value::Object(m)) => m.values().any(|c| walk(c, rest, f)),
        (Step::Any, Value::Array(a)) => a.iter().any(|c| walk(c, rest, f)),
        _ => false,
    }
}

fn first<'v>(v: &'v Value, steps: &[Step]) -> Option<&'v Value> {
    let Some((step, rest)) = steps.split_first() else {
        return Some(v);
    };
    match (step, v) {
        (Step::Key(k), Value::Object(m)) => first(m.get(k)?, rest),
        (Step::Index(n), Value::Array(a)) => first(a.get(*n)?, rest),
        (Step::Any, Value::Object(m)) => m.values().find_map(|c| first(c, rest)),
        (Step::Any, Value::Array(a)) => a.iter().find_map(|c| first(c, rest)),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Or(Vec<Expr>),
    And(Vec<Expr>),
    Compare(Selector, Op, Operand),
    IsNull(Selector),
    IsBool(Selector, bool),
    NotExists(Selector),
}

impl Expr {
    pub fn eval(&self, root: &Value) -> bool {
        match self {
            Expr::Or(v) => v.iter().any(|e| e.eval(root)),
            Expr::And(v) => v.iter().all(|e| e.eval(root)),
            Expr::Compare(sel, op, rhs) => sel.any(root, &mut |v| compare(v, *op, rhs)),
            Expr::IsNull(sel) => sel.any(root, &mut |v| v.is_null()),
            Expr::IsBool(sel, b) => sel.any(root, &mut |v| v.as_bool() == Some(*b)),
            Expr::NotExists(sel) => !sel.any(root, &mut |_| true),
        }
    }

    /// Selectors in the order they appear.
    pub fn selectors<'a>(&'a self, out: &mut Vec<&'a Selector>) {
        match self {
            Expr::Or(v) | Expr::And(v) => v.iter().for_each(|e| e.selectors(out)),
            Expr::Compare(s, ..) | Expr::IsNull(s) | Expr::IsBool(s, _) | Expr::NotExists(s) => {
                out.push(s)
            }
        }
    }
}

fn compare(v: &Value, op: Op, rhs: &Operand) -> bool {
    match v {
        Value::String(s) => rhs.compare(op, Scalar::Str(s)),
        Value::Bool(b) => rhs.compare(op, Scalar::Bool(*b)),
        Value::Number(n) => {
            let Some(f) = n.as_f64() else { return false };
            if matches!(rhs, Operand::Text(_) | Operand::Regex(_)) {
                rhs.compare(op, Scalar::Num(f, &n.to_string()))
            } else {
                rhs.compare(op, Scalar::Num(f, ""))
            }
        }
        _ => false,
    }
}

/// Text any event satisfying `e` contains, written as JSON writes it without escapes: each
/// key on the path of a condition that needs a value there (`"key"`), and the literal part of
/// a string compared with `=` (when it is not all digits, signs, dots and exponents, which a
/// number could spell differently). `||` keeps what both sides need.
fn required_text(e: &Expr) -> Vec<String> {
    let keys = |s: &Selector| {
        s.steps
            .iter()
            .filter_map(|st| match st {
                Step::Key(k) if !k.contains(['"', '\\']) => Some(format!("\"{k}\"")),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    match e {
        Expr::And(v) => v.iter().flat_map(required_text).collect(),
        Expr::Or(v) => {
            let mut sets = v.iter().map(required_text);
            let first = sets.next().unwrap_or_default();
            sets.fold(first, |acc, s| {
                acc.into_iter().filter(|x| s.contains(x)).collect()
            })
        }
        Expr::IsNull(s) | Expr::IsBool(s, _) => keys(s),
        Expr::NotExists(_) => Vec::new(),
        Expr::Compare(s, op, rhs) => {
            let mut out = keys(s);
            if *op == Op::Eq
                && let Some(lit) = rhs.literal()
                && !lit.is_empty()
                && !lit.contains(['"', '\\'])
                && !lit
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-' | 'e' | 'E'))
            {
                out.push(lit.to_string());
            }
            out
        }
    }
}

/// A parsed `{ … }` pattern.
#[derive(Debug, Clone)]
pub(crate) struct JsonPattern {
    pub expr: Expr,
    /// The selectors' paths, to read only those from events.
    trie: Trie,
    /// Text every matching event contains (quoted keys, literal string values), checked
    /// before any parsing on events without a `\\` (which could escape that text).
    required: Vec<String>,
}

impl JsonPattern {
    /// Parses the text between the braces.
    pub fn parse(inner: &str) -> Result<JsonPattern, PatternError> {
        let toks = super::lex::tokens(inner)?;
        let mut p = Parser { toks, at: 0 };
        let expr = p.or()?;
        if p.at != p.toks.len() {
            return Err(PatternError::syntax(format!(
                "unexpected {} in a JSON filter pattern",
                describe(&p.toks[p.at])
            )));
        }
        let mut sels = Vec::new();
        expr.selectors(&mut sels);
        if sels.iter().map(|s| s.wildcards()).sum::<usize>() > MAX_WILDCARDS {
            return Err(PatternError::syntax(
                "a filter pattern can use at most three wildcard selectors",
            ));
        }
        let mut trie = Trie::default();
        for s in sels {
            trie.insert(&s.steps);
        }
        let mut required = required_text(&expr);
        required.sort();
        required.dedup();
        Ok(JsonPattern {
            expr,
            trie,
            required,
        })
    }

    /// Whether `message` is a JSON object the expression holds for (reading only the
    /// selectors' paths).
    pub fn matches(&self, message: &str) -> bool {
        if !message.trim_start().starts_with('{') {
            return false;
        }
        if !self.required.is_empty()
            && !message.contains('\\')
            && !self.required.iter().all(|r| message.contains(r.as_str()))
        {
            return false;
        }
        self.trie
            .read(message)
            .is_some_and(|v| v.is_object() && self.expr.eval(&v))
    }

    pub fn regex_count(&self) -> usize {
        fn count(e: &Expr) -> usize {
            match e {
                Expr::Or(v) | Expr::And(v) => v.iter().map(count).sum(),
                Expr::Compare(_, _, o) => usize::from(o.is_regex()),
                _ => 0,
            }
        }
        count(&self.expr)
    }

    /// The event as JSON, when it is an object.
    pub fn parse_event(message: &str) -> Option<Value> {
        if !message.trim_start().starts_with('{') {
            return None;
        }
        serde_json::from_str::<Value>(message)
            .ok()
            .filter(Value::is_object)
    }
}

pub(crate) fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("'{w}'"),
        Tok::Quoted(q) => format!("'\"{q}\"'"),
        Tok::Regex(r) => format!("'%{r}%'"),
        Tok::Op(_) => "an operator".into(),
        Tok::And => "'&&'".into(),
        Tok::Or => "'||'".into(),
        Tok::Open => "'('".into(),
        Tok::Close => "')'".into(),
    }
}

struct Parser {
    toks: Vec<Tok>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).cloned();
        self.at += usize::from(t.is_some());
        t
    }

    fn or(&mut self) -> Result<Expr, PatternError> {
        let mut v = vec![self.and()?];
        while self.peek() == Some(&Tok::Or) {
            self.at += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::Or(v)
        })
    }

    fn and(&mut self) -> Result<Expr, PatternError> {
        let mut v = vec![self.unary()?];
        while self.peek() == Some(&Tok::And) {
            self.at += 1;
            v.push(self.unary()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Expr::And(v)
        })
    }

    fn unary(&mut self) -> Result<Expr, PatternError> {
        match self.next() {
            Some(Tok::Open) => {
                let e = self.or()?;
                match self.next() {
                    Some(Tok::Close) => Ok(e),
                    _ => Err(PatternError::syntax("a '(' has no matching ')'")),
                }
            }
            Some(Tok::Word(w)) => self.condition(&w),
            Some(t) => Err(PatternError::syntax(format!(
                "expected a property selector, found {}",
                describe(&t)
            ))),
            None => Err(PatternError::syntax("a JSON filter pattern ends too early")),
        }
    }

    fn condition(&mut self, selector: &str) -> Result<Expr, PatternError> {
        let sel = Selector::parse(selector)?;
        match self.next() {
            Some(Tok::Op(op)) => {
                let rhs = operand(self.next(), op)?;
                Ok(Expr::Compare(sel, op, rhs))
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("IS") => match self.next() {
                Some(Tok::Word(k)) if k.eq_ignore_ascii_case("NULL") => Ok(Expr::IsNull(sel)),
                Some(Tok::Word(k)) if k.eq_ignore_ascii_case("TRUE") => Ok(Expr::IsBool(sel, true)),
                Some(Tok::Word(k)) if k.eq_ignore_ascii_case("FALSE") => {
                    Ok(Expr::IsBool(sel, false))
                }
                _ => Err(PatternError::syntax(
                    "IS must be followed by NULL, TRUE or FALSE",
                )),
            },
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("NOT") => match self.next() {
                Some(Tok::Word(k)) if k.eq_ignore_ascii_case("EXISTS") => Ok(Expr::NotExists(sel)),
                _ => Err(PatternError::syntax("NOT must be followed by EXISTS")),
            },
            _ => Err(PatternError::syntax(format!(
                "expected an operator after '{selector}'"
            ))),
        }
    }
}

/// The value after an operator, in JSON and space-delimited patterns alike.
pub(crate) fn operand(tok: Option<Tok>, op: Op) -> Result<Operand, PatternError> {
    let rhs = match tok {
        Some(Tok::Quoted(s)) => Operand::quoted(&s),
        Some(Tok::Regex(r)) => Operand::Regex(FilterRegex::parse(&r)?),
        Some(Tok::Word(w)) => Operand::bare(&w)?,
        Some(t) => {
            return Err(PatternError::syntax(format!(
                "expected a value, found {}",
                describe(&t)
            )));
        }
        None => return Err(PatternError::syntax("an operator has no value after it")),
    };
    if !matches!(op, Op::Eq | Op::Ne) && !rhs.is_number() {
        return Err(PatternError::syntax(
            "'<', '>', '<=' and '>=' compare with a number",
        ));
    }
    Ok(rhs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_steps() {
        let s = Selector::parse("$.users[0].email").unwrap();
        assert_eq!(
            s.steps,
            vec![
                Step::Key("users".into()),
                Step::Index(0),
                Step::Key("email".into())
            ]
        );
        let s = Selector::parse("$.['cluster.name']").unwrap();
        assert_eq!(s.steps, vec![Step::Key("cluster.name".into())]);
        assert_eq!(
            Selector::parse("$.coordinates[0][1]").unwrap().steps.len(),
            3
        );
        assert_eq!(Selector::parse("$.*").unwrap().steps, vec![Step::Any]);
        assert_eq!(
            Selector::parse("$.detail-type").unwrap().steps,
            vec![Step::Key("detail-type".into())]
        );
    }

    #[test]
    fn selector_errors_name_the_term_up_to_the_bad_character() {
        assert_eq!(
            Selector::parse("$.\"sc-status\""),
            Err(PatternError::InvalidCharacter("$.\"".into()))
        );
        assert_eq!(
            Selector::parse("$.a@b"),
            Err(PatternError::InvalidCharacter("$.a@".into()))
        );
        assert!(Selector::parse("$").is_err());
        assert!(Selector::parse("$.a[*].b[*]").is_err());
    }

    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (0i64..5).prop_map(Value::from),
            proptest::sample::select(vec!["x", "y", "val", "1"]).prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(
                    proptest::sample::select(vec!["a", "b", "c", "a.b"]).prop_map(String::from),
                    inner,
                    0..4
                )
                .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        #[test]
        fn pruned_reading_agrees_with_the_whole_event(
            body in proptest::collection::btree_map(
                proptest::sample::select(vec!["a", "b", "c"]).prop_map(String::from),
                json_value(),
                0..4
            )
        ) {
            let message = Value::Object(body.into_iter().collect()).to_string();
            let whole: Value = serde_json::from_str(&message).unwrap();
            for text in [
                "$.a = x", "$.a != x", "$.a.b IS NULL", "$.b[0] = 1", "$.b[1].c NOT EXISTS",
                "$.a[*] = val", "$.* = 1", "$.c IS TRUE", "$.a.b = * || $.c[0][0] = y",
                "$.['a.b'] NOT EXISTS", "$.a NOT EXISTS && $.b.* = x", "$.a > 2",
                "$.b = val || $.c = y", "$.a = *al && $.b != x", "$.c = true", "$.a = 1",
            ] {
                let p = JsonPattern::parse(text).unwrap();
                prop_assert_eq!(p.matches(&message), p.expr.eval(&whole), "{}", text);
            }
        }
    }
}
