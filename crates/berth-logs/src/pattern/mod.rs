//! The filter-pattern language of `FilterLogEvents`, metric filters, subscription filters and
//! `TestMetricFilter` (https://docs.aws.amazon.com/AmazonCloudWatch/latest/logs/FilterAndPatternSyntax.html).
//!
//! [`Pattern::parse`] reads a pattern once (an invalid one is an error carrying AWS's
//! `InvalidParameterException` message, never "match everything"); [`Pattern::matches`] tests
//! a message; [`Pattern::captures`] also returns what a metric filter can publish
//! ([`MetricExtraction`]).
//!
//! Four forms, told apart by the first character:
//! * empty: every event;
//! * `{ … }`: JSON conditions (`json.rs`);
//! * `[ … ]`: space-delimited fields (`delimited.rs`);
//! * `%…%`: one regular expression (`regex.rs`);
//! * otherwise terms and quoted phrases (`terms.rs`).
//!
//! Called by the Logs API (FilterLogEvents, metric and subscription filters) and storage
//! scans. Pure: no I/O, no clock.

mod delimited;
mod json;
mod lex;
mod metric;
mod prune;
mod regex;
mod terms;
pub(crate) mod value;

#[cfg(test)]
mod tests;

pub use metric::{MetricError, MetricExtraction, MetricPoint};

use serde_json::Value;
use std::borrow::Cow;
use thiserror::Error;

/// The longest filter pattern (the model's `FilterPattern` shape).
pub const PATTERN_MAX: usize = 1024;

/// Why a filter pattern is refused, as `InvalidParameterException`. `Display` is the message.
///
/// `InvalidCharacter` and `UnclosedJson` are AWS's wording (seen in reports of real
/// responses); `Syntax` and the rest are Berth's wording where AWS's is not known.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PatternError {
    #[error("Invalid character(s) in term '{0}'")]
    InvalidCharacter(String),
    #[error("If a filter pattern starts with '{{' it must end with '}}'")]
    UnclosedJson,
    #[error("If a filter pattern starts with '[' it must end with ']'")]
    UnclosedDelimited,
    #[error("Invalid filter pattern: {0}")]
    Syntax(String),
    #[error("A filter pattern can contain at most 2 regular expressions")]
    TooManyRegex,
    #[error(
        "1 validation error detected: Value at 'filterPattern' failed to satisfy constraint: Member must have length less than or equal to 1024"
    )]
    TooLong,
}

impl PatternError {
    pub(crate) fn syntax(detail: impl Into<String>) -> PatternError {
        PatternError::Syntax(detail.into())
    }
}

/// Which form a pattern has (metric filters allow dimensions only on JSON and space-delimited
/// patterns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    All,
    Terms,
    Regex,
    Json,
    Delimited,
}

#[derive(Debug, Clone)]
enum Form {
    All,
    Terms(terms::Terms),
    Regex(regex::FilterRegex),
    Json(json::JsonPattern),
    Delimited(delimited::Delimited),
}

/// A parsed filter pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    form: Form,
}

impl Pattern {
    /// Parses `text` as AWS does; `""` (or only spaces) matches every event.
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        if text.chars().count() > PATTERN_MAX {
            return Err(PatternError::TooLong);
        }
        let t = text.trim();
        let form = if t.is_empty() {
            Form::All
        } else if let Some(rest) = t.strip_prefix('{') {
            let inner = rest.strip_suffix('}').ok_or(PatternError::UnclosedJson)?;
            let p = json::JsonPattern::parse(inner)?;
            if p.regex_count() > json::MAX_REGEX {
                return Err(PatternError::TooManyRegex);
            }
            Form::Json(p)
        } else if let Some(rest) = t.strip_prefix('[') {
            let inner = rest
                .strip_suffix(']')
                .ok_or(PatternError::UnclosedDelimited)?;
            let p = delimited::Delimited::parse(inner)?;
            if p.regex_count() > json::MAX_REGEX {
                return Err(PatternError::TooManyRegex);
            }
            Form::Delimited(p)
        } else if t.len() >= 2 && t.starts_with('%') && t.ends_with('%') {
            Form::Regex(regex::FilterRegex::parse(&t[1..t.len() - 1])?)
        } else {
            let terms = terms::Terms::parse(t)?;
            Form::Terms(terms)
        };
        Ok(Pattern {
            text: text.to_string(),
            form,
        })
    }

    /// The pattern as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn kind(&self) -> PatternKind {
        match self.form {
            Form::All => PatternKind::All,
            Form::Terms(_) => PatternKind::Terms,
            Form::Regex(_) => PatternKind::Regex,
            Form::Json(_) => PatternKind::Json,
            Form::Delimited(_) => PatternKind::Delimited,
        }
    }

    /// Whether every event matches (FilterLogEvents can then skip matching).
    pub fn matches_everything(&self) -> bool {
        matches!(self.form, Form::All)
    }

    /// Whether `message` matches.
    pub fn matches(&self, message: &str) -> bool {
        match &self.form {
            Form::All => true,
            Form::Terms(t) => t.matches(message),
            Form::Regex(r) => r.is_match(message),
            Form::Json(j) => j.matches(message),
            Form::Delimited(d) => d.matches(message),
        }
    }

    /// When `message` matches, what a metric filter can read from it.
    pub fn captures<'m>(&self, message: &'m str) -> Option<Captures<'m>> {
        let inner = match &self.form {
            Form::All | Form::Terms(_) | Form::Regex(_) => {
                self.matches(message).then_some(Inner::None)?
            }
            Form::Json(j) => {
                let v = json::JsonPattern::parse_event(message)?;
                j.expr.eval(&v).then_some(Inner::Json(v))?
            }
            Form::Delimited(d) => Inner::Fields(d.captures(message)?),
        };
        Some(Captures { inner })
    }

    pub(crate) fn delimited_field(&self, name: &str) -> bool {
        match &self.form {
            Form::Delimited(d) => d.has_field(name),
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Inner<'m> {
    None,
    Json(Value),
    Fields(delimited::Fields<'m>),
}

/// What a matching event offers a metric filter: JSON properties (`$.latency`) for JSON
/// patterns, fields (`$bytes`, `$3`) for space-delimited ones, nothing for the others.
#[derive(Debug, Clone)]
pub struct Captures<'m> {
    inner: Inner<'m>,
}

impl<'m> Captures<'m> {
    /// The value `reference` (`$.a.b[0]`, `$name`, `$N`) names, as text; JSON strings
    /// without quotes, numbers and booleans as JSON writes them. `None` when absent, or when
    /// it is an object, an array or `null`.
    pub fn get(&self, reference: &str) -> Option<Cow<'_, str>> {
        match &self.inner {
            Inner::None => None,
            Inner::Json(v) => {
                if !reference.starts_with("$.") && !reference.starts_with("$[") {
                    return None;
                }
                let sel = json::Selector::parse(reference).ok()?;
                match sel.first(v)? {
                    Value::String(s) => Some(Cow::Borrowed(s.as_str())),
                    Value::Number(n) => Some(Cow::Owned(n.to_string())),
                    Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
                    _ => None,
                }
            }
            Inner::Fields(f) => {
                let name = reference.strip_prefix('$')?;
                if let Some((_, v)) = f.iter().find(|(n, _)| n == reference) {
                    return Some(Cow::Borrowed(v.as_ref()));
                }
                let pos: usize = name.parse().ok()?;
                f.get(pos.checked_sub(1)?)
                    .map(|(_, v)| Cow::Borrowed(v.as_ref()))
            }
        }
    }

    /// `TestMetricFilter`'s `extractedValues`: every field of a space-delimited match, named
    /// `$name` or `$N`; empty for other patterns (the guide: "If you are not using a
    /// space-delimited filter, this will be empty").
    pub fn extracted_values(&self) -> Vec<(String, String)> {
        match &self.inner {
            Inner::Fields(f) => f.iter().map(|(n, v)| (n.clone(), v.to_string())).collect(),
            _ => Vec::new(),
        }
    }
}
