//! Wildcard patterns as IAM matches them: `*` is any run of characters (none included), `?`
//! exactly one; everything else is literal. A pattern is tokens, so a policy variable's value
//! (or an escape such as `${*}`) stays literal whatever characters it holds.

/// One element of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Token {
    Char(char),
    /// `*`
    Any,
    /// `?`
    One,
}

/// A parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Pattern(pub Vec<Token>);

impl Pattern {
    /// `text` with `*` and `?` as wildcards.
    pub fn parse(text: &str) -> Pattern {
        Pattern(
            text.chars()
                .map(|c| match c {
                    '*' => Token::Any,
                    '?' => Token::One,
                    c => Token::Char(c),
                })
                .collect(),
        )
    }

    /// `text` taken literally.
    pub fn literal(text: &str) -> Pattern {
        Pattern(text.chars().map(Token::Char).collect())
    }

    pub fn push_literal(&mut self, text: &str) {
        self.0.extend(text.chars().map(Token::Char));
    }

    pub fn is_any(&self) -> bool {
        self.0 == [Token::Any]
    }

    /// Splits at the first `n` literal `:` characters (an ARN's components).
    pub fn split_colons(&self, n: usize) -> Vec<Pattern> {
        let mut parts = vec![Pattern::default()];
        for t in &self.0 {
            if *t == Token::Char(':') && parts.len() <= n {
                parts.push(Pattern::default());
            } else {
                parts.last_mut().expect("one part").0.push(t.clone());
            }
        }
        parts
    }

    /// The pattern's text, wildcards written as `*` and `?`.
    pub fn as_literal(&self) -> String {
        self.0
            .iter()
            .map(|t| match t {
                Token::Char(c) => *c,
                Token::Any => '*',
                Token::One => '?',
            })
            .collect()
    }

    /// Whether `text` matches (greedy, with one backtrack point: the last `*`).
    pub fn matches(&self, text: &str) -> bool {
        let p = &self.0;
        let (mut pi, mut ti) = (0, 0);
        // The last `*` seen, and where in the text it began to match.
        let mut star: Option<(usize, usize)> = None;
        while ti < text.len() {
            let c = text[ti..].chars().next().expect("in bounds");
            match p.get(pi) {
                Some(Token::Any) => {
                    star = Some((pi, ti));
                    pi += 1;
                    continue;
                }
                Some(Token::One) => {
                    pi += 1;
                    ti += c.len_utf8();
                    continue;
                }
                Some(Token::Char(want)) if *want == c => {
                    pi += 1;
                    ti += c.len_utf8();
                    continue;
                }
                _ => {}
            }
            let Some((sp, st)) = star else { return false };
            // The `*` takes one more character, and matching resumes after it.
            let skipped = text[st..].chars().next().expect("in bounds").len_utf8();
            star = Some((sp, st + skipped));
            pi = sp + 1;
            ti = st + skipped;
        }
        p[pi..].iter().all(|t| *t == Token::Any)
    }
}

/// Whether `arn` matches the ARN pattern `pattern` (spec/iam.md §3.2): component by component
/// over the six parts (split at the first five colons), case-sensitive. `*` alone matches
/// anything; a pattern of fewer components whose last is `*` matches the rest (people write
/// `arn:aws:ecs:*`). The resource `*` (actions without resource-level permissions) is matched
/// by `*` alone.
pub(crate) fn arn_matches(pattern: &Pattern, arn: &str) -> bool {
    if pattern.is_any() {
        return true;
    }
    if arn == "*" {
        return false;
    }
    let want = pattern.split_colons(5);
    let have: Vec<&str> = arn.splitn(6, ':').collect();
    if want.len() < have.len() {
        let last = want.len() - 1;
        return want[last].is_any()
            && want[..last]
                .iter()
                .zip(&have)
                .all(|(p, part)| p.matches(part));
    }
    want.len() == have.len() && want.iter().zip(&have).all(|(p, part)| p.matches(part))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_and_question_marks() {
        let m = |p: &str, t: &str| Pattern::parse(p).matches(t);
        assert!(m("*", ""));
        assert!(m("ecr:Batch*", "ecr:BatchGetImage"));
        assert!(m("iam:*AccessKey*", "iam:CreateAccessKey"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b", "xxaxxbxxc"));
        assert!(!m("ecs:Describe*", "ecs:ListTasks"));
        assert!(m("", ""));
        assert!(!m("", "x"));
        let mut lit = Pattern::parse("repo/");
        lit.push_literal("a*b");
        assert!(lit.matches("repo/a*b"));
        assert!(!lit.matches("repo/axxb"));
    }

    #[test]
    fn arns_match_by_component() {
        let m = |p: &str, t: &str| arn_matches(&Pattern::parse(p), t);
        let repo = "arn:aws:ecr:us-east-1:123456789012:repository/app/web";
        assert!(m("*", repo));
        assert!(m("arn:aws:ecr:*:123456789012:repository/app/*", repo));
        assert!(m("arn:aws:ecr:*", repo));
        assert!(m("arn:aws:ecr:us-east-1:*:*", repo));
        assert!(!m("arn:aws:ecr:eu-west-1:*:*", repo));
        assert!(!m("arn:aws:ecr:*:123456789012:repository/other", repo));
        // The resource component may hold colons; `*` there spans them.
        let group = "arn:aws:logs:us-east-1:123456789012:log-group:/ecs/web:*";
        assert!(m("arn:aws:logs:*:*:log-group:/ecs/*", group));
        // Empty components match only empty ones.
        assert!(m(
            "arn:aws:iam::123456789012:role/*",
            "arn:aws:iam::123456789012:role/x"
        ));
        assert!(!m(
            "arn:aws:iam::123456789012:role/*",
            "arn:aws:iam:us-east-1:123456789012:role/x"
        ));
        // Resource-less actions match only `*`.
        assert!(m("*", "*"));
        assert!(!m("arn:aws:ecs:*", "*"));
        assert!(!m("arn:aws:ecs", repo));
    }
}
