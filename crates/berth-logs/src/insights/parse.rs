//! The Logs Insights query text: tokens, then commands (see `mod.rs` for the subset). Only
//! `insights::Query::parse` calls this.

use super::{Agg, AggFunc, Cond, GroupKey, Lit, Operand, Parse, Projection, QueryError, Stage};
use regex_lite::Regex;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A field name, keyword, number or duration (`5m`).
    Word(String),
    /// A `` `quoted` `` field name.
    Field(String),
    Str(String),
    Regex(String),
    Pipe,
    Comma,
    Open,
    Close,
    OpenList,
    CloseList,
    Star,
    Cmp(CmpTok),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum CmpTok {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Match,
}

#[derive(Debug, Clone)]
struct Spanned {
    tok: Tok,
    start: usize,
    end: usize,
}

fn word_char(c: char) -> bool {
    c.is_alphanumeric() || matches!(c, '_' | '@' | '.' | '$')
}

fn lex(text: &str) -> Result<Vec<Spanned>, QueryError> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < text.len() {
        let c = text[i..].chars().next().unwrap_or(' ');
        if c.is_whitespace() {
            i += c.len_utf8();
            continue;
        }
        let start = i;
        let two = text.get(i..i + 2).unwrap_or("");
        let (tok, len) = match (c, two) {
            (_, "!=") => (Tok::Cmp(CmpTok::Ne), 2),
            (_, "<=") => (Tok::Cmp(CmpTok::Le), 2),
            (_, ">=") => (Tok::Cmp(CmpTok::Ge), 2),
            (_, "=~") => (Tok::Cmp(CmpTok::Match), 2),
            ('=', _) => (Tok::Cmp(CmpTok::Eq), 1),
            ('<', _) => (Tok::Cmp(CmpTok::Lt), 1),
            ('>', _) => (Tok::Cmp(CmpTok::Gt), 1),
            ('|', _) => (Tok::Pipe, 1),
            (',', _) => (Tok::Comma, 1),
            ('(', _) => (Tok::Open, 1),
            (')', _) => (Tok::Close, 1),
            ('[', _) => (Tok::OpenList, 1),
            (']', _) => (Tok::CloseList, 1),
            ('*', _) => (Tok::Star, 1),
            ('"' | '\'' | '`' | '/', _) => {
                let (body, len) = delimited(text, i, c)?;
                let tok = match c {
                    '`' => Tok::Field(body),
                    '/' => Tok::Regex(body),
                    _ => Tok::Str(body),
                };
                (tok, len)
            }
            ('-', _) if b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                let len = 1 + text[i + 1..]
                    .find(|c: char| !word_char(c))
                    .unwrap_or(text.len() - i - 1);
                (Tok::Word(text[i..i + len].to_string()), len)
            }
            (c, _) if word_char(c) => {
                let len = text[i..]
                    .find(|c: char| !word_char(c))
                    .unwrap_or(text.len() - i);
                (Tok::Word(text[i..i + len].to_string()), len)
            }
            (c, _) => {
                return Err(QueryError::at(
                    format!("unexpected symbol found {c}"),
                    i,
                    i + c.len_utf8(),
                ));
            }
        };
        i += len;
        out.push(Spanned { tok, start, end: i });
    }
    Ok(out)
}

/// A string, field name or regex from `text[at]` (the quote) to its closing quote, with `\`
/// escaping the quote (and kept before anything else, for regexes).
fn delimited(text: &str, at: usize, quote: char) -> Result<(String, usize), QueryError> {
    let mut out = String::new();
    let mut it = text[at + 1..].char_indices();
    while let Some((j, c)) = it.next() {
        if c == quote {
            return Ok((out, j + 2));
        }
        if c == '\\' {
            match it.next() {
                Some((_, e)) if e == quote => out.push(e),
                Some((_, e)) if quote != '/' && e == '\\' => out.push(e),
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => break,
            }
        } else {
            out.push(c);
        }
    }
    Err(QueryError::at(
        format!("missing closing {quote}"),
        at,
        text.len(),
    ))
}

struct Parser<'t> {
    text: &'t str,
    toks: Vec<Spanned>,
    at: usize,
}

fn is_kw(t: Option<&Tok>, kw: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|s| &s.tok)
    }

    fn error_here(&self, what: &str) -> QueryError {
        match self.toks.get(self.at) {
            Some(s) => QueryError::at(
                format!(
                    "{what}: unexpected symbol found {} at position {}",
                    &self.text[s.start..s.end],
                    s.start + 1
                ),
                s.start,
                s.end,
            ),
            None => QueryError::at(
                format!("{what}: the query ends too early"),
                self.text.len(),
                self.text.len(),
            ),
        }
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.peek().cloned();
        self.at += usize::from(t.is_some());
        t
    }

    fn eat(&mut self, t: &Tok) -> bool {
        if self.peek() == Some(t) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        if is_kw(self.peek(), kw) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, t: &Tok, what: &str) -> Result<(), QueryError> {
        if self.eat(t) {
            Ok(())
        } else {
            Err(self.error_here(what))
        }
    }

    fn field(&mut self) -> Result<String, QueryError> {
        match self.peek() {
            Some(Tok::Field(f)) => {
                let f = f.clone();
                self.at += 1;
                Ok(f)
            }
            Some(Tok::Word(w)) if !w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                let w = w.clone();
                self.at += 1;
                Ok(w)
            }
            _ => Err(self.error_here("expected a field name")),
        }
    }

    fn field_list(&mut self) -> Result<Vec<String>, QueryError> {
        let mut v = vec![self.field()?];
        while self.eat(&Tok::Comma) {
            v.push(self.field()?);
        }
        Ok(v)
    }

    fn end_of_command(&self) -> bool {
        matches!(self.peek(), None | Some(Tok::Pipe))
    }

    fn commands(&mut self) -> Result<Vec<Stage>, QueryError> {
        let mut stages = Vec::new();
        loop {
            let Some(Tok::Word(cmd)) = self.peek().cloned() else {
                return Err(self.error_here("expected a command"));
            };
            self.at += 1;
            let stage = match cmd.to_ascii_lowercase().as_str() {
                "fields" => Stage::Fields(self.projections()?),
                "display" => Stage::Display(self.field_list()?),
                "filter" => Stage::Filter(self.or()?),
                "parse" => self.parse_command()?,
                "stats" => self.stats()?,
                "sort" => self.sort()?,
                "limit" => self.limit()?,
                _ => {
                    self.at -= 1;
                    return Err(self.error_here("unknown command"));
                }
            };
            stages.push(stage);
            if !self.end_of_command() {
                return Err(self.error_here("expected '|' or the end of the query"));
            }
            if self.next().is_none() {
                return Ok(stages);
            }
        }
    }

    fn projections(&mut self) -> Result<Vec<Projection>, QueryError> {
        let mut v = Vec::new();
        loop {
            let field = self.field()?;
            let alias = if self.eat_kw("as") {
                Some(self.field()?)
            } else {
                None
            };
            v.push(Projection { field, alias });
            if !self.eat(&Tok::Comma) {
                return Ok(v);
            }
        }
    }

    fn parse_command(&mut self) -> Result<Stage, QueryError> {
        // `parse "glob" as …` reads @message.
        let source = if matches!(self.peek(), Some(Tok::Str(_) | Tok::Regex(_))) {
            "@message".to_string()
        } else {
            self.field()?
        };
        let start = self.toks.get(self.at).map_or(self.text.len(), |s| s.start);
        match self.next() {
            Some(Tok::Str(glob)) => {
                if !self.eat_kw("as") {
                    return Err(self.error_here("expected 'as' after the parse pattern"));
                }
                let names = self.field_list()?;
                let stars = glob.matches('*').count();
                if stars != names.len() {
                    return Err(QueryError::at(
                        format!(
                            "the parse pattern has {stars} '*' but {} names follow 'as'",
                            names.len()
                        ),
                        start,
                        self.text.len(),
                    ));
                }
                let mut re = String::new();
                let pieces: Vec<&str> = glob.split('*').collect();
                for (k, piece) in pieces.iter().enumerate() {
                    re.push_str(&regex_lite::escape(piece));
                    if k + 1 < pieces.len() {
                        let last = k + 2 == pieces.len() && pieces[k + 1].is_empty();
                        re.push_str(if last { "(.*)" } else { "(.*?)" });
                    }
                }
                let regex = Regex::new(&re)
                    .map_err(|e| QueryError::at(e.to_string(), start, self.text.len()))?;
                Ok(Stage::Parse(Parse {
                    source,
                    regex,
                    names,
                }))
            }
            Some(Tok::Regex(body)) => {
                let regex = Regex::new(&body).map_err(|e| {
                    QueryError::at(format!("invalid regular expression: {e}"), start, start)
                })?;
                let names: Vec<String> =
                    regex.capture_names().flatten().map(String::from).collect();
                if names.is_empty() {
                    return Err(QueryError::at(
                        "a parse regular expression needs named groups (?<name>…)".into(),
                        start,
                        start,
                    ));
                }
                Ok(Stage::Parse(Parse {
                    source,
                    regex,
                    names,
                }))
            }
            _ => {
                self.at -= 1;
                Err(self.error_here("expected a \"glob\" or /regex/ to parse with"))
            }
        }
    }

    fn stats(&mut self) -> Result<Stage, QueryError> {
        let mut aggs = Vec::new();
        loop {
            let name_start = self.toks.get(self.at).map_or(0, |s| s.start);
            let Some(Tok::Word(f)) = self.next() else {
                self.at = self.at.saturating_sub(1);
                return Err(self.error_here("expected an aggregate function"));
            };
            let func = match f.to_ascii_lowercase().as_str() {
                "count" => AggFunc::Count,
                "count_distinct" => AggFunc::CountDistinct,
                "sum" => AggFunc::Sum,
                "avg" => AggFunc::Avg,
                "min" => AggFunc::Min,
                "max" => AggFunc::Max,
                _ => {
                    self.at -= 1;
                    return Err(self.error_here("unknown aggregate function"));
                }
            };
            self.expect(&Tok::Open, "expected '('")?;
            let field = if func == AggFunc::Count
                && (self.eat(&Tok::Star) || self.peek() == Some(&Tok::Close))
            {
                None
            } else {
                Some(self.field()?)
            };
            self.expect(&Tok::Close, "expected ')'")?;
            let name_end = self.toks[self.at - 1].end;
            let written: String = self.text[name_start..name_end]
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            let name = if self.eat_kw("as") {
                self.field()?
            } else {
                written
            };
            aggs.push(Agg { func, field, name });
            if !self.eat(&Tok::Comma) {
                break;
            }
        }
        let mut by = Vec::new();
        if self.eat_kw("by") {
            loop {
                let start = self.toks.get(self.at).map_or(0, |s| s.start);
                let key = if is_kw(self.peek(), "bin") {
                    self.at += 1;
                    self.expect(&Tok::Open, "expected '('")?;
                    let period_ms = match self.next() {
                        Some(Tok::Word(w)) => duration_ms(&w),
                        _ => None,
                    };
                    let Some(period_ms) = period_ms else {
                        self.at -= 1;
                        return Err(self.error_here("expected a period such as 5m"));
                    };
                    self.expect(&Tok::Close, "expected ')'")?;
                    let end = self.toks[self.at - 1].end;
                    let written: String = self.text[start..end]
                        .chars()
                        .filter(|c| !c.is_whitespace())
                        .collect();
                    GroupKey::Bin {
                        period_ms,
                        name: written,
                    }
                } else {
                    let f = self.field()?;
                    GroupKey::Field {
                        name: f.clone(),
                        field: f,
                    }
                };
                let key = if self.eat_kw("as") {
                    let alias = self.field()?;
                    key.renamed(alias)
                } else {
                    key
                };
                by.push(key);
                if !self.eat(&Tok::Comma) {
                    break;
                }
            }
        }
        Ok(Stage::Stats { aggs, by })
    }

    fn sort(&mut self) -> Result<Stage, QueryError> {
        let mut keys = Vec::new();
        loop {
            let f = self.field()?;
            let desc = if self.eat_kw("desc") {
                true
            } else {
                self.eat_kw("asc");
                false
            };
            keys.push((f, desc));
            if !self.eat(&Tok::Comma) {
                return Ok(Stage::Sort(keys));
            }
        }
    }

    fn limit(&mut self) -> Result<Stage, QueryError> {
        match self.peek() {
            Some(Tok::Word(w)) => match w.parse::<usize>() {
                Ok(n) if (1..=super::MAX_LIMIT).contains(&n) => {
                    self.at += 1;
                    Ok(Stage::Limit(n))
                }
                _ => Err(self.error_here("limit must be a whole number from 1 to 10000")),
            },
            _ => Err(self.error_here("expected a number after limit")),
        }
    }

    fn or(&mut self) -> Result<Cond, QueryError> {
        let mut c = self.and()?;
        while self.eat_kw("or") {
            c = Cond::Or(Box::new(c), Box::new(self.and()?));
        }
        Ok(c)
    }

    fn and(&mut self) -> Result<Cond, QueryError> {
        let mut c = self.unary()?;
        while self.eat_kw("and") {
            c = Cond::And(Box::new(c), Box::new(self.unary()?));
        }
        Ok(c)
    }

    fn unary(&mut self) -> Result<Cond, QueryError> {
        if self.eat_kw("not") {
            return Ok(Cond::Not(Box::new(self.unary()?)));
        }
        if self.eat(&Tok::Open) {
            let c = self.or()?;
            self.expect(&Tok::Close, "expected ')'")?;
            return Ok(c);
        }
        if is_kw(self.peek(), "ispresent")
            && self.toks.get(self.at + 1).map(|s| &s.tok) == Some(&Tok::Open)
        {
            self.at += 2;
            let f = self.field()?;
            self.expect(&Tok::Close, "expected ')'")?;
            return Ok(Cond::Present(f));
        }
        let left = self.operand()?;
        let negated = self.eat_kw("not");
        if self.eat_kw("like") {
            return self.like(left, negated);
        }
        if self.eat_kw("in") {
            self.expect(&Tok::OpenList, "expected '[' after in")?;
            let mut list = Vec::new();
            if !self.eat(&Tok::CloseList) {
                loop {
                    match self.operand()? {
                        Operand::Lit(l) => list.push(l),
                        Operand::Field(_) => {
                            self.at -= 1;
                            return Err(self.error_here("expected a literal in the list"));
                        }
                    }
                    if self.eat(&Tok::CloseList) {
                        break;
                    }
                    self.expect(&Tok::Comma, "expected ',' or ']'")?;
                }
            }
            return Ok(Cond::In {
                left,
                list,
                negated,
            });
        }
        if negated {
            return Err(self.error_here("expected like or in after not"));
        }
        let op = match self.next() {
            Some(Tok::Cmp(CmpTok::Match)) => return self.like(left, false),
            Some(Tok::Cmp(op)) => op,
            _ => {
                self.at = self.at.saturating_sub(1);
                return Err(self.error_here("expected a comparison"));
            }
        };
        let right = self.operand()?;
        Ok(Cond::Compare {
            left,
            op: match op {
                CmpTok::Eq => super::Cmp::Eq,
                CmpTok::Ne => super::Cmp::Ne,
                CmpTok::Lt => super::Cmp::Lt,
                CmpTok::Le => super::Cmp::Le,
                CmpTok::Gt => super::Cmp::Gt,
                CmpTok::Ge | CmpTok::Match => super::Cmp::Ge,
            },
            right,
        })
    }

    fn like(&mut self, left: Operand, negated: bool) -> Result<Cond, QueryError> {
        let start = self.toks.get(self.at).map_or(self.text.len(), |s| s.start);
        let cond = match self.next() {
            Some(Tok::Regex(r)) => Cond::Regex {
                left,
                regex: Regex::new(&r).map_err(|e| {
                    QueryError::at(format!("invalid regular expression: {e}"), start, start)
                })?,
            },
            Some(Tok::Str(s)) => Cond::Contains { left, needle: s },
            _ => {
                self.at = self.at.saturating_sub(1);
                return Err(self.error_here("expected a /regex/ or \"string\" after like"));
            }
        };
        Ok(if negated {
            Cond::Not(Box::new(cond))
        } else {
            cond
        })
    }

    fn operand(&mut self) -> Result<Operand, QueryError> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.at += 1;
                Ok(Operand::Lit(Lit::Str(s)))
            }
            Some(Tok::Word(w)) if w.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
                match w.parse::<f64>() {
                    Ok(n) => {
                        self.at += 1;
                        Ok(Operand::Lit(Lit::Num(n)))
                    }
                    Err(_) => Err(self.error_here("expected a number")),
                }
            }
            _ => Ok(Operand::Field(self.field()?)),
        }
    }
}

/// `5m`, `1h`, `30s`, `1d`, `100ms`: a `bin()` period.
fn duration_ms(w: &str) -> Option<i64> {
    let split = w.find(|c: char| !c.is_ascii_digit())?;
    let n: i64 = w[..split].parse().ok()?;
    let unit = match &w[split..] {
        "ms" => 1,
        "s" | "sec" => 1_000,
        "m" | "min" => 60_000,
        "h" | "hr" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        _ => return None,
    };
    (n > 0).then_some(n * unit)
}

pub(super) fn parse(text: &str) -> Result<Vec<Stage>, QueryError> {
    let toks = lex(text)?;
    if toks.is_empty() {
        return Err(QueryError::at("the query is empty".into(), 0, 0));
    }
    let mut p = Parser { text, toks, at: 0 };
    p.commands()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lex_regex_strings_and_backticks() {
        let t = lex(r#"filter `foo-bar` like /a\/b/ and x != "q\"r""#).unwrap();
        let toks: Vec<Tok> = t.into_iter().map(|s| s.tok).collect();
        assert_eq!(
            toks,
            vec![
                Tok::Word("filter".into()),
                Tok::Field("foo-bar".into()),
                Tok::Word("like".into()),
                Tok::Regex("a/b".into()),
                Tok::Word("and".into()),
                Tok::Word("x".into()),
                Tok::Cmp(CmpTok::Ne),
                Tok::Str("q\"r".into()),
            ]
        );
    }

    #[test]
    fn durations() {
        assert_eq!(duration_ms("5m"), Some(300_000));
        assert_eq!(duration_ms("1h"), Some(3_600_000));
        assert_eq!(duration_ms("30s"), Some(30_000));
        assert_eq!(duration_ms("0m"), None);
        assert_eq!(duration_ms("5x"), None);
        assert_eq!(duration_ms("m"), None);
    }
}
