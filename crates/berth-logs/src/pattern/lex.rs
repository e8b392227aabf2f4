//! Tokens of the structured filter patterns (`{ … }` JSON and `[ … ]` space-delimited): words,
//! `"quoted"` strings, `%regex%`, comparison operators, `&&`, `||` and parentheses.
//! Only `pattern::json` and `pattern::delimited` call this; it knows nothing of their grammar.

use super::PatternError;
use super::value::Op;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Anything unquoted: a selector, a field name, a bare value or a keyword.
    Word(String),
    Quoted(String),
    /// The text between `%` and `%`.
    Regex(String),
    Op(Op),
    And,
    Or,
    Open,
    Close,
}

/// Characters that end a word.
fn stops_word(c: char) -> bool {
    c.is_whitespace() || matches!(c, '=' | '!' | '<' | '>' | '(' | ')' | '&' | '|' | '"' | '%')
}

/// Splits `text` into tokens.
pub(crate) fn tokens(text: &str) -> Result<Vec<Tok>, PatternError> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(i, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let rest = &text[i..];
        let two = |s: &str| rest.starts_with(s);
        let (tok, len) = if two("&&") {
            (Tok::And, 2)
        } else if two("||") {
            (Tok::Or, 2)
        } else if two("!=") {
            (Tok::Op(Op::Ne), 2)
        } else if two("<=") {
            (Tok::Op(Op::Le), 2)
        } else if two(">=") {
            (Tok::Op(Op::Ge), 2)
        } else {
            match c {
                '=' => (Tok::Op(Op::Eq), 1),
                '<' => (Tok::Op(Op::Lt), 1),
                '>' => (Tok::Op(Op::Gt), 1),
                '(' => (Tok::Open, 1),
                ')' => (Tok::Close, 1),
                '"' => {
                    let (s, len) = quoted(rest)?;
                    (Tok::Quoted(s), len)
                }
                '%' => {
                    let Some(end) = rest[1..].find('%') else {
                        return Err(PatternError::syntax(
                            "a regular expression has no closing '%'",
                        ));
                    };
                    (Tok::Regex(rest[1..1 + end].to_string()), end + 2)
                }
                '!' | '&' | '|' => return Err(PatternError::InvalidCharacter(c.to_string())),
                _ => {
                    // A selector runs on through quotes so that `$."a-b"` is refused whole.
                    let selector = c == '$';
                    let len = rest
                        .find(|c| stops_word(c) && !(selector && c == '"'))
                        .unwrap_or(rest.len());
                    (Tok::Word(rest[..len].to_string()), len)
                }
            }
        };
        out.push(tok);
        while chars.peek().is_some_and(|&(j, _)| j < i + len) {
            chars.next();
        }
    }
    Ok(out)
}

/// A `"…"` string at the start of `text` (`\"` and `\\` escape): its content and its length
/// in bytes, quotes included.
pub(crate) fn quoted(text: &str) -> Result<(String, usize), PatternError> {
    let mut out = String::new();
    let mut it = text.char_indices().skip(1);
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match it.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(PatternError::syntax("a quoted string has no closing '\"'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_operators_without_spaces() {
        let t = tokens(r#"w1!=ERROR&&w1!="WARN x"||($.a>=1e+3)%a|b%"#).unwrap();
        assert_eq!(
            t,
            vec![
                Tok::Word("w1".into()),
                Tok::Op(Op::Ne),
                Tok::Word("ERROR".into()),
                Tok::And,
                Tok::Word("w1".into()),
                Tok::Op(Op::Ne),
                Tok::Quoted("WARN x".into()),
                Tok::Or,
                Tok::Open,
                Tok::Word("$.a".into()),
                Tok::Op(Op::Ge),
                Tok::Word("1e+3".into()),
                Tok::Close,
                Tok::Regex("a|b".into()),
            ]
        );
    }

    #[test]
    fn tokens_refuse_unclosed_quotes_and_lone_bang() {
        assert!(tokens(r#"a = "x"#).is_err());
        assert!(tokens("a = %x").is_err());
        assert_eq!(
            tokens("a ! b"),
            Err(PatternError::InvalidCharacter("!".into()))
        );
    }
}
