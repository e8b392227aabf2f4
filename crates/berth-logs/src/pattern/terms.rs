//! Filter patterns over unstructured log events (FilterAndPatternSyntax, "Using filter
//! patterns to match terms in unstructured log events"): terms separated by spaces, each a
//! case-sensitive substring of the message.
//!
//! * `ERROR Exception`: every term must appear.
//! * `"INTERNAL SERVER ERROR"`: a quoted phrase; terms with characters other than letters,
//!   digits and `_` must be quoted (else `Invalid character(s) in term '…'`).
//! * `-ARGUMENTS` (or `- "Exiting"`): the term must not appear.
//! * `?ERROR ?WARN`: any one must appear. Combined with other terms, the `?` terms are ignored
//!   (the guide: "all question mark terms will be ignored").
//! * `""` or `" "`: a blank phrase matches everything.

use super::PatternError;
use super::lex::quoted;

#[derive(Debug, Clone, Default)]
pub(crate) struct Terms {
    required: Vec<String>,
    optional: Vec<String>,
    excluded: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Mark {
    Plain,
    Optional,
    Exclude,
}

impl Terms {
    pub fn parse(text: &str) -> Result<Terms, PatternError> {
        let mut terms = Terms::default();
        let mut rest = text.trim_start();
        while !rest.is_empty() {
            let mut mark = Mark::Plain;
            if let Some(r) = rest.strip_prefix('?') {
                mark = Mark::Optional;
                rest = r;
            } else if let Some(r) = rest.strip_prefix('-') {
                mark = Mark::Exclude;
                // The older guide writes `"ERROR" - "Exiting"`: the term may follow a space.
                rest = r.trim_start();
            }
            let term = if rest.starts_with('"') {
                let (s, len) = quoted(rest)?;
                rest = &rest[len..];
                if !rest.is_empty() && !rest.starts_with(char::is_whitespace) {
                    let c = rest.chars().next().unwrap_or('"');
                    return Err(PatternError::InvalidCharacter(c.to_string()));
                }
                s
            } else {
                let len = rest.find(char::is_whitespace).unwrap_or(rest.len());
                let word = &rest[..len];
                if word.is_empty() {
                    return Err(PatternError::syntax("a '?' or '-' with no term after it"));
                }
                if let Some(c) = word
                    .chars()
                    .find(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                {
                    return Err(PatternError::InvalidCharacter(c.to_string()));
                }
                rest = &rest[len..];
                word.to_string()
            };
            rest = rest.trim_start();
            if term.trim().is_empty() {
                // A blank phrase is the documented "match everything".
                continue;
            }
            match mark {
                Mark::Plain => terms.required.push(term),
                Mark::Optional => terms.optional.push(term),
                Mark::Exclude => terms.excluded.push(term),
            }
        }
        Ok(terms)
    }

    pub fn matches(&self, message: &str) -> bool {
        if self.required.is_empty() && self.excluded.is_empty() {
            return self.optional.is_empty() || self.optional.iter().any(|t| message.contains(t));
        }
        self.required.iter().all(|t| message.contains(t.as_str()))
            && !self.excluded.iter().any(|t| message.contains(t.as_str()))
    }
}
