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
    /// One literal from each alternative that any match must contain: a cheap substring
    /// test before the (slow, unoptimised) `regex-lite` search. `None` when some alternative
    /// has no such literal.
    required: Option<Vec<String>>,
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
                '\\' => chars
                    .next()
                    .is_some_and(|e| e.is_ascii() && !e.is_ascii_control()),
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
            .map(|re| FilterRegex {
                re,
                required: required_literals(body),
            })
            .map_err(|e| PatternError::syntax(format!("invalid regular expression: {e}")))
    }

    pub fn is_match(&self, text: &str) -> bool {
        if let Some(lits) = &self.required
            && !lits.iter().any(|l| text.contains(l.as_str()))
        {
            return false;
        }
        self.re.is_match(text)
    }
}

/// For each `|` alternative (the subset has no groups, so every `|` is top level), the
/// longest run of characters any match of it must contain.
fn required_literals(body: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut best = String::new();
    let mut run = String::new();
    let commit = |run: &mut String, best: &mut String| {
        if run.len() > best.len() {
            *best = run.clone();
        }
        run.clear();
    };
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '|' => {
                commit(&mut run, &mut best);
                if best.is_empty() {
                    return None;
                }
                out.push(std::mem::take(&mut best));
            }
            '\\' => match chars.next() {
                Some(e) if !e.is_ascii_alphanumeric() => run.push(e),
                Some('x') => {
                    chars.next();
                    chars.next();
                    commit(&mut run, &mut best);
                }
                _ => commit(&mut run, &mut best),
            },
            '[' => {
                // Skip the class: `]` first in it is literal.
                let mut first = true;
                while let Some(k) = chars.next() {
                    match k {
                        '\\' => {
                            chars.next();
                        }
                        ']' if !first => break,
                        '^' if first => continue,
                        _ => {}
                    }
                    first = false;
                }
                commit(&mut run, &mut best);
            }
            '?' | '*' => {
                run.pop();
                commit(&mut run, &mut best);
            }
            '{' => {
                run.pop();
                commit(&mut run, &mut best);
                for k in chars.by_ref() {
                    if k == '}' {
                        break;
                    }
                }
            }
            '+' => commit(&mut run, &mut best),
            '.' | '^' | '$' => commit(&mut run, &mut best),
            c => run.push(c),
        }
    }
    commit(&mut run, &mut best);
    if best.is_empty() {
        return None;
    }
    out.push(best);
    Some(out)
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
    fn regex_required_literals() {
        let lits = |s: &str| required_literals(s);
        let v = |x: &[&str]| Some(x.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(lits("AUTHORIZED"), v(&["AUTHORIZED"]));
        assert_eq!(lits("colou?r"), v(&["colo"]));
        assert_eq!(lits("ab*c"), v(&["a"]));
        assert_eq!(lits("ab+c"), v(&["ab"]));
        assert_eq!(lits(r"10\.10\.0\.1"), v(&["10.10.0.1"]));
        assert_eq!(lits("gra|ey"), v(&["gra", "ey"]));
        assert_eq!(
            lits("^starting|^shutting down"),
            v(&["starting", "shutting down"])
        );
        assert_eq!(
            lits("/service/resource/[0-9]+$"),
            v(&["/service/resource/"])
        );
        assert_eq!(lits("a{3,5}bc"), v(&["bc"]));
        assert_eq!(lits(r"\x3Aab"), v(&["ab"]));
        assert_eq!(lits(r"[]x]yz"), v(&["yz"]));
        assert_eq!(lits(r"\d+"), None);
        assert_eq!(lits("ab|[0-9]"), None);
        assert_eq!(lits(".at"), v(&["at"]));
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

    proptest::proptest! {
        #[test]
        fn regex_prefilter_never_changes_the_answer(text in "[abcx.: 0-9-]{0,12}") {
            for body in ["ab", "a.c", "ab*c", "ab+c", "colou?r", "a|x", "^ab|c$", "[ab]x", r"\d{2}:", "x{2,3}", r"a\.b", "b?c"] {
                let f = FilterRegex::parse(body).unwrap();
                let plain = regex_lite::Regex::new(body).unwrap();
                proptest::prop_assert_eq!(f.is_match(&text), plain.is_match(&text), "{}", body);
            }
        }
    }
}
