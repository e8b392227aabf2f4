//! `%regex%` in filter patterns: the subset FilterAndPatternSyntax documents ("Supported
//! regular expressions (regex) syntax"), checked character by character, then compiled with
//! `regex-lite` and searched anywhere in the value (unanchored unless `^`/`$` say so).
//!
//! Allowed: ASCII letters and digits; the symbols `: _ # = @ / ; , -` and space; the
//! operators `^ $ ? [ ] { } | \ * + .`; after `\`, any ASCII character (`\d`, `\s`, `\w`, their
//! capitals, `\xhh`, escaped operators). `(` and `)` and multi-byte characters are refused.

use super::PatternError;

#[derive(Debug, Clone)]
pub(crate) struct FilterRegex {
    re: regex_lite::Regex,
}

impl FilterRegex {
    /// Checks and compiles the text between the `%`s.
    pub fn parse(body: &str) -> Result<FilterRegex, PatternError> {
        if body.is_empty() {
            return Err(PatternError::syntax("an empty regular expression"));
        }
        let mut chars = body.chars();
        while let Some(c) = chars.next() {
            let ok = match c {
                '\\' => match chars.next() {
                    Some(e) if e.is_ascii() && !e.is_ascii_control() => true,
                    _ => false,
                },
                c if c.is_ascii_alphanumeric() => true,
                ':' | '_' | '#' | '=' | '@' | '/' | ';' | ',' | '-' | ' ' => true,
                '^' | '$' | '?' | '[' | ']' | '{' | '}' | '|' | '*' | '+' | '.' => true,
                _ => false,
            };
            if !ok {
                return Err(PatternError::InvalidCharacter(c.to_string()));
            }
        }
        regex_lite::Regex::new(body)
            .map(|re| FilterRegex { re })
            .map_err(|e| PatternError::syntax(format!("invalid regular expression: {e}")))
    }

    pub fn is_match(&self, text: &str) -> bool {
        self.re.is_match(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn re(s: &str) -> FilterRegex {
        FilterRegex::parse(s).unwrap()
    }

    /// Every example of the guide's "Usage of supported operators".
    #[test]
    fn regex_operators_as_documented() {
        assert!(re("^[hc]at").is_match("hat trick"));
        assert!(!re("^[hc]at").is_match("a hat"));
        assert!(re("[hc]at$").is_match("a cat"));
        assert!(!re("[hc]at$").is_match("cats"));
        assert!(re("colou?r").is_match("color") && re("colou?r").is_match("colour"));
        assert!(re("[abcx-z]").is_match("y") && !re("[abcx-z]").is_match("d"));
        let a35 = re("^a{3,5}$");
        assert!(a35.is_match("aaa") && a35.is_match("aaaaa") && !a35.is_match("aa"));
        assert!(re("gra|ey").is_match("gray") && re("gra|ey").is_match("grey"));
        let alt = re("^starting|^initializing|^shutting down");
        assert!(alt.is_match("shutting down now"));
        assert!(!alt.is_match("skipping initializing ..."));
        let e = re("abcc|ab[^c]$");
        assert!(e.is_match("abcc ...") && e.is_match("aba") && !e.is_match("aac ..."));
        let br = re(r"\[.\]");
        for s in ["[a]", "[b]", "[7]", "[@]", "[]]", "[ ]"] {
            assert!(br.is_match(s), "{s}");
        }
        assert!(re(r"10\.10\.0\.1").is_match("10.10.0.1"));
        assert!(!re(r"10\.10\.0\.1").is_match("10010,051"));
        assert!(re("10.10.0.1").is_match("10010,051"));
        assert!(re("ab*c").is_match("ac") && re("ab*c").is_match("abbbc"));
        assert!(re("ab[0-9]*").is_match("ab129"));
        assert!(re("ab+c").is_match("abbc") && !re("ab+c").is_match("ac"));
        for s in ["hat", "4at", "#at", " at"] {
            assert!(re(".at").is_match(s), "{s}");
        }
        assert!(re(r"\d").is_match("a1") && !re(r"\D").is_match("12"));
        assert!(re(r"\s").is_match("a b") && re(r"\S").is_match(" a "));
        assert!(re(r"\w").is_match("_") && !re(r"\W").is_match("a_1"));
        assert!(re(r"\x3A").is_match(":") && re(r"\x28").is_match("("));
        assert!(re("AUTHORIZED").is_match("[ERROR 401] UNAUTHORIZED REQUEST"));
    }

    #[test]
    fn regex_refuses_undocumented_characters() {
        for (body, c) in [
            ("something!", "!"),
            ("(a)", "("),
            ("a)", ")"),
            ("é", "é"),
            ("a'b", "'"),
        ] {
            match FilterRegex::parse(body) {
                Err(PatternError::InvalidCharacter(got)) => assert_eq!(got, c, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(FilterRegex::parse("[a").is_err());
        assert!(FilterRegex::parse("").is_err());
    }
}
