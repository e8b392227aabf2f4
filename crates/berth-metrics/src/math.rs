//! The GetMetricData (and metric-math alarm) expression subset: a parser ([`Expr::parse`])
//! and an evaluator ([`evaluate`]) over the series other queries produced, following the
//! CloudWatch User Guide's "Metric math syntax and functions".
//!
//! Called by the API layer: it parses every `Expression`, orders the queries with
//! [`evaluation_order`], fills a [`Context`] with each query's result as it goes, and maps
//! a [`MathError`] to `ValidationError` with the error's message. Pure; no I/O.
//!
//! # Supported
//! * Numbers (`5`, `0.5`, `1e-36`), query ids (`m1`, `errors`; must start lowercase),
//!   strings (only as the argument of `METRICS`), lists `[m1, m2, METRICS("5xx")]`,
//!   parentheses.
//! * Operators, loosest first: `OR`/`||`; `AND`/`&&`; `== != < <= > >=`; `+ -`; `* /`;
//!   unary `-`; `^` (right-associative, tighter than unary minus: `-2^2 = -4`).
//! * Functions: `ABS`, `AVG`, `CEIL`, `DATAPOINT_COUNT`, `DIFF`, `DIFF_TIME`, `FILL`,
//!   `FIRST`, `FLOOR`, `LAST`, `LOG`, `LOG10`, `MAX`, `METRIC_COUNT`, `METRICS`, `MIN`,
//!   `RATE`, `REMOVE_EMPTY`, `RUNNING_SUM`, `STDDEV`, `SUM`, `TIME_SERIES`.
//!   Everything else AWS has (`IF`, `SORT`, `SLICE`, `SEARCH`, `ANOMALY_DETECTION_BAND`,
//!   `PERIOD`, `MINUTE`…, `INSIGHT_RULE_METRIC`, `SERVICE_QUOTA`, Metrics Insights `SELECT`)
//!   is refused with "Unsupported function".
//!
//! # Rules (AWS's, as documented)
//! * Series with series: aligned on timestamps over the union of both; "missing values in a
//!   time series are treated as 0" (also for comparisons). Series with scalar: per point.
//!   Array with scalar or series: per member. Array with array: refused.
//! * A point whose result would divide by zero is dropped (so is any non-finite result).
//! * `SUM/AVG/MIN/MAX/STDDEV/DATAPOINT_COUNT` of one series give a scalar (`m1 - AVG(m1)`);
//!   of an array they give one series over the union of timestamps. For arrays, `AVG` treats
//!   missing values as 0 (documented); `SUM` adds what is there; `MIN`/`MAX` consider only
//!   present values and `STDDEV` treats missing as 0 like `AVG` (guesses: undocumented).
//!   `STDDEV` is the population standard deviation (undocumented; guess).
//! * `RATE`: per second between consecutive points; `DIFF`: consecutive difference;
//!   `DIFF_TIME`: seconds between consecutive points (the first point has no result).
//! * `FILL(x, v)` fills the query grid's missing timestamps with a scalar, the value of
//!   another series at that timestamp, `REPEAT` (the last value before; leading gaps take
//!   the first value — a guess) or `LINEAR` (interpolated; leading/trailing gaps take the
//!   nearest value — a guess).
//! * A final result must be a series or an array ([`Value::check_final`]).
//!
//! Error messages are Berth's wording (AWS's texts for these are not documented).

use crate::query::Series;
use crate::retention::QueryWindow;
use std::collections::HashMap;

/// `MetricExpression`'s maximum length in the model.
pub const MAX_EXPRESSION_LEN: usize = 2048;
const MAX_DEPTH: usize = 64;

/// Why an expression cannot be parsed or evaluated; the API layer answers
/// `ValidationError` with this message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MathError {
    pub message: String,
}

fn err<T>(message: impl Into<String>) -> Result<T, MathError> {
    Err(MathError {
        message: message.into(),
    })
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    And,
    Or,
}

impl BinOp {
    fn apply(self, a: f64, b: f64) -> f64 {
        let truth = |c: bool| if c { 1.0 } else { 0.0 };
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => {
                if b == 0.0 {
                    f64::NAN
                } else {
                    a / b
                }
            }
            BinOp::Pow => a.powf(b),
            BinOp::Eq => truth(a == b),
            BinOp::Ne => truth(a != b),
            BinOp::Lt => truth(a < b),
            BinOp::Le => truth(a <= b),
            BinOp::Gt => truth(a > b),
            BinOp::Ge => truth(a >= b),
            BinOp::And => truth(a != 0.0 && b != 0.0),
            BinOp::Or => truth(a != 0.0 || b != 0.0),
        }
    }
}

/// The functions this evaluator supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    Abs,
    Avg,
    Ceil,
    DatapointCount,
    Diff,
    DiffTime,
    Fill,
    First,
    Floor,
    Last,
    Log,
    Log10,
    Max,
    MetricCount,
    Metrics,
    Min,
    Rate,
    RemoveEmpty,
    RunningSum,
    Stddev,
    Sum,
    TimeSeries,
}

impl Function {
    /// Every supported function.
    pub const ALL: [Function; 22] = [
        Function::Abs,
        Function::Avg,
        Function::Ceil,
        Function::DatapointCount,
        Function::Diff,
        Function::DiffTime,
        Function::Fill,
        Function::First,
        Function::Floor,
        Function::Last,
        Function::Log,
        Function::Log10,
        Function::Max,
        Function::MetricCount,
        Function::Metrics,
        Function::Min,
        Function::Rate,
        Function::RemoveEmpty,
        Function::RunningSum,
        Function::Stddev,
        Function::Sum,
        Function::TimeSeries,
    ];

    /// The name as written in expressions (uppercase).
    pub fn name(self) -> &'static str {
        match self {
            Function::Abs => "ABS",
            Function::Avg => "AVG",
            Function::Ceil => "CEIL",
            Function::DatapointCount => "DATAPOINT_COUNT",
            Function::Diff => "DIFF",
            Function::DiffTime => "DIFF_TIME",
            Function::Fill => "FILL",
            Function::First => "FIRST",
            Function::Floor => "FLOOR",
            Function::Last => "LAST",
            Function::Log => "LOG",
            Function::Log10 => "LOG10",
            Function::Max => "MAX",
            Function::MetricCount => "METRIC_COUNT",
            Function::Metrics => "METRICS",
            Function::Min => "MIN",
            Function::Rate => "RATE",
            Function::RemoveEmpty => "REMOVE_EMPTY",
            Function::RunningSum => "RUNNING_SUM",
            Function::Stddev => "STDDEV",
            Function::Sum => "SUM",
            Function::TimeSeries => "TIME_SERIES",
        }
    }

    fn from_name(name: &str) -> Option<Function> {
        Function::ALL.iter().copied().find(|f| f.name() == name)
    }
}

/// AWS functions and keywords this evaluator knows of but does not implement.
const UNSUPPORTED: [&str; 18] = [
    "IF",
    "SORT",
    "SLICE",
    "SEARCH",
    "SELECT",
    "ANOMALY_DETECTION_BAND",
    "PERIOD",
    "MINUTE",
    "HOUR",
    "DAY",
    "DATE",
    "MONTH",
    "YEAR",
    "EPOCH",
    "INSIGHT_RULE_METRIC",
    "SERVICE_QUOTA",
    "LAMBDA",
    "DB_PERF_INSIGHTS",
];

/// `FILL`'s keyword fillers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FillMode {
    Repeat,
    Linear,
}

/// A parsed expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Number(f64),
    Id(String),
    Str(String),
    FillMode(FillMode),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
    Call(Function, Vec<Expr>),
    List(Vec<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Word(String),
    Str(String),
    Op(BinOp),
    Minus,
    Plus,
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Num(n) => format!("number {n}"),
        Tok::Word(w) => format!("'{w}'"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Op(_) | Tok::Minus | Tok::Plus => "operator".into(),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Comma => "','".into(),
        Tok::End => "end of expression".into(),
    }
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, MathError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
        let tok = match two.as_str() {
            "==" => Some(Tok::Op(BinOp::Eq)),
            "!=" => Some(Tok::Op(BinOp::Ne)),
            "<=" => Some(Tok::Op(BinOp::Le)),
            ">=" => Some(Tok::Op(BinOp::Ge)),
            "&&" => Some(Tok::Op(BinOp::And)),
            "||" => Some(Tok::Op(BinOp::Or)),
            _ => None,
        };
        if let Some(t) = tok {
            out.push((t, start));
            i += 2;
            continue;
        }
        let tok = match c {
            '+' => Tok::Plus,
            '-' => Tok::Minus,
            '*' => Tok::Op(BinOp::Mul),
            '/' => Tok::Op(BinOp::Div),
            '^' => Tok::Op(BinOp::Pow),
            '<' => Tok::Op(BinOp::Lt),
            '>' => Tok::Op(BinOp::Gt),
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '"' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '"' {
                    j += 1;
                }
                if j >= chars.len() {
                    return err(format!(
                        "Syntax error at position {}: unterminated string.",
                        start + 1
                    ));
                }
                let s: String = chars[i + 1..j].iter().collect();
                i = j + 1;
                out.push((Tok::Str(s), start));
                continue;
            }
            c if c.is_ascii_digit() || c == '.' => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '.') {
                    j += 1;
                }
                if j < chars.len() && (chars[j] == 'e' || chars[j] == 'E') {
                    let mut k = j + 1;
                    if k < chars.len() && (chars[k] == '+' || chars[k] == '-') {
                        k += 1;
                    }
                    if k < chars.len() && chars[k].is_ascii_digit() {
                        while k < chars.len() && chars[k].is_ascii_digit() {
                            k += 1;
                        }
                        j = k;
                    }
                }
                let s: String = chars[i..j].iter().collect();
                let Ok(n) = s.parse::<f64>() else {
                    return err(format!(
                        "Syntax error at position {}: invalid number '{s}'.",
                        start + 1
                    ));
                };
                i = j;
                out.push((Tok::Num(n), start));
                continue;
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let mut j = i;
                while j < chars.len() && (chars[j].is_ascii_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let w: String = chars[i..j].iter().collect();
                i = j;
                let t = match w.as_str() {
                    "AND" => Tok::Op(BinOp::And),
                    "OR" => Tok::Op(BinOp::Or),
                    _ => Tok::Word(w),
                };
                out.push((t, start));
                continue;
            }
            other => {
                return err(format!(
                    "Syntax error at position {}: unexpected character '{other}'.",
                    start + 1
                ));
            }
        };
        out.push((tok, start));
        i += 1;
    }
    out.push((Tok::End, chars.len()));
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::End, |(t, _)| t)
    }

    fn at(&self) -> usize {
        self.toks.get(self.pos).map_or(0, |(_, p)| *p) + 1
    }

    fn next(&mut self) -> Tok {
        let t = self.peek().clone();
        self.pos += 1;
        t
    }

    fn unexpected<T>(&self) -> Result<T, MathError> {
        err(format!(
            "Syntax error at position {}: unexpected {}.",
            self.at(),
            describe(self.peek())
        ))
    }

    fn expect(&mut self, want: Tok) -> Result<(), MathError> {
        if *self.peek() == want {
            self.pos += 1;
            Ok(())
        } else {
            err(format!(
                "Syntax error at position {}: expected {} but found {}.",
                self.at(),
                describe(&want),
                describe(self.peek())
            ))
        }
    }

    fn descend(&mut self) -> Result<(), MathError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err("The expression is nested too deeply.");
        }
        Ok(())
    }

    fn binary_level(
        &mut self,
        ops: &[BinOp],
        next: fn(&mut Parser) -> Result<Expr, MathError>,
    ) -> Result<Expr, MathError> {
        let mut left = next(self)?;
        loop {
            let op = match self.peek() {
                Tok::Op(op) if ops.contains(op) => *op,
                Tok::Plus if ops.contains(&BinOp::Add) => BinOp::Add,
                Tok::Minus if ops.contains(&BinOp::Sub) => BinOp::Sub,
                _ => return Ok(left),
            };
            self.pos += 1;
            let right = next(self)?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn or(&mut self) -> Result<Expr, MathError> {
        self.descend()?;
        let e = self.binary_level(&[BinOp::Or], Parser::and);
        self.depth -= 1;
        e
    }

    fn and(&mut self) -> Result<Expr, MathError> {
        self.binary_level(&[BinOp::And], Parser::comparison)
    }

    fn comparison(&mut self) -> Result<Expr, MathError> {
        self.binary_level(
            &[
                BinOp::Eq,
                BinOp::Ne,
                BinOp::Lt,
                BinOp::Le,
                BinOp::Gt,
                BinOp::Ge,
            ],
            Parser::additive,
        )
    }

    fn additive(&mut self) -> Result<Expr, MathError> {
        self.binary_level(&[BinOp::Add, BinOp::Sub], Parser::multiplicative)
    }

    fn multiplicative(&mut self) -> Result<Expr, MathError> {
        self.binary_level(&[BinOp::Mul, BinOp::Div], Parser::unary)
    }

    fn unary(&mut self) -> Result<Expr, MathError> {
        match self.peek() {
            Tok::Minus => {
                self.pos += 1;
                self.descend()?;
                let e = self.unary();
                self.depth -= 1;
                Ok(Expr::Neg(Box::new(e?)))
            }
            Tok::Plus => {
                self.pos += 1;
                self.descend()?;
                let e = self.unary();
                self.depth -= 1;
                e
            }
            _ => self.power(),
        }
    }

    fn power(&mut self) -> Result<Expr, MathError> {
        let base = self.primary()?;
        if *self.peek() == Tok::Op(BinOp::Pow) {
            self.pos += 1;
            self.descend()?;
            let exp = self.unary();
            self.depth -= 1;
            return Ok(Expr::Binary(BinOp::Pow, Box::new(base), Box::new(exp?)));
        }
        Ok(base)
    }

    fn list_items(&mut self, close: Tok) -> Result<Vec<Expr>, MathError> {
        let mut items = Vec::new();
        if *self.peek() == close {
            self.pos += 1;
            return Ok(items);
        }
        loop {
            items.push(self.or()?);
            match self.peek() {
                Tok::Comma => self.pos += 1,
                t if *t == close => {
                    self.pos += 1;
                    return Ok(items);
                }
                _ => return self.unexpected(),
            }
        }
    }

    fn primary(&mut self) -> Result<Expr, MathError> {
        let at = self.at();
        match self.next() {
            Tok::Num(n) => Ok(Expr::Number(n)),
            Tok::Str(s) => Ok(Expr::Str(s)),
            Tok::LParen => {
                let e = self.or()?;
                self.expect(Tok::RParen)?;
                Ok(e)
            }
            Tok::LBracket => {
                self.descend()?;
                let items = self.list_items(Tok::RBracket);
                self.depth -= 1;
                Ok(Expr::List(items?))
            }
            Tok::Word(w) => {
                let lower_start = w.chars().next().is_some_and(|c| c.is_ascii_lowercase());
                if *self.peek() == Tok::LParen {
                    self.pos += 1;
                    let Some(f) = Function::from_name(&w) else {
                        if UNSUPPORTED.contains(&w.as_str()) {
                            return err(format!("Unsupported function: {w}."));
                        }
                        return err(format!("Unknown function: {w}."));
                    };
                    self.descend()?;
                    let args = self.list_items(Tok::RParen);
                    self.depth -= 1;
                    return Ok(Expr::Call(f, args?));
                }
                match w.as_str() {
                    "REPEAT" => Ok(Expr::FillMode(FillMode::Repeat)),
                    "LINEAR" => Ok(Expr::FillMode(FillMode::Linear)),
                    _ if lower_start => Ok(Expr::Id(w)),
                    _ => err(format!(
                        "Syntax error at position {at}: '{w}' is not a valid id (ids start with a lowercase letter) or keyword."
                    )),
                }
            }
            Tok::End => err(format!(
                "Syntax error at position {at}: unexpected end of expression."
            )),
            other => err(format!(
                "Syntax error at position {at}: unexpected {}.",
                describe(&other)
            )),
        }
    }
}

impl Expr {
    /// Parses a metric-math expression.
    pub fn parse(text: &str) -> Result<Expr, MathError> {
        if text.trim().is_empty() {
            return err("The expression is empty.");
        }
        if text.chars().count() > MAX_EXPRESSION_LEN {
            return err(format!(
                "The expression is longer than {MAX_EXPRESSION_LEN} characters."
            ));
        }
        let mut p = Parser {
            toks: lex(text)?,
            pos: 0,
            depth: 0,
        };
        let e = p.or()?;
        if *p.peek() != Tok::End {
            return p.unexpected();
        }
        Ok(e)
    }

    /// The query ids this expression names, in order of appearance, without repeats.
    /// (`METRICS()` names no id: it means every metric query.)
    pub fn references(&self) -> Vec<&str> {
        let mut out = Vec::new();
        self.collect_refs(&mut out);
        out
    }

    /// Whether the expression uses `METRICS(…)` (it then depends on every metric query).
    pub fn uses_metrics_function(&self) -> bool {
        match self {
            Expr::Call(Function::Metrics, _) => true,
            Expr::Call(_, args) | Expr::List(args) => args.iter().any(Expr::uses_metrics_function),
            Expr::Neg(e) => e.uses_metrics_function(),
            Expr::Binary(_, a, b) => a.uses_metrics_function() || b.uses_metrics_function(),
            Expr::Number(_) | Expr::Id(_) | Expr::Str(_) | Expr::FillMode(_) => false,
        }
    }

    fn collect_refs<'a>(&'a self, out: &mut Vec<&'a str>) {
        match self {
            Expr::Id(id) => {
                if !out.contains(&id.as_str()) {
                    out.push(id);
                }
            }
            Expr::Neg(e) => e.collect_refs(out),
            Expr::Binary(_, a, b) => {
                a.collect_refs(out);
                b.collect_refs(out);
            }
            Expr::Call(_, args) | Expr::List(args) => {
                for a in args {
                    a.collect_refs(out);
                }
            }
            Expr::Number(_) | Expr::Str(_) | Expr::FillMode(_) => {}
        }
    }
}

/// One member of an array of series, with the id of the query it came from (empty for a
/// computed member).
#[derive(Debug, Clone, PartialEq)]
pub struct Labeled {
    pub id: String,
    pub series: Series,
}

/// An evaluation result.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(f64),
    Series(Series),
    Array(Vec<Labeled>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "a scalar",
            Value::Series(_) => "a time series",
            Value::Array(_) => "an array of time series",
        }
    }

    /// Checks the value can be an expression's final result (a series or an array).
    pub fn check_final(&self) -> Result<(), MathError> {
        match self {
            Value::Scalar(_) => err(
                "The expression must return a time series or an array of time series, not a scalar.",
            ),
            Value::Series(_) | Value::Array(_) => Ok(()),
        }
    }
}

/// The query's period grid: timestamps `start + k·period < end`. `FILL` and `TIME_SERIES`
/// produce values on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub start_ms: i64,
    pub end_ms: i64,
    pub period_ms: i64,
}

impl Grid {
    fn timestamps(&self) -> impl Iterator<Item = i64> + '_ {
        let p = self.period_ms.max(1);
        (0..)
            .map(move |k: i64| self.start_ms + k * p)
            .take_while(move |t| *t < self.end_ms)
    }
}

impl From<&QueryWindow> for Grid {
    fn from(w: &QueryWindow) -> Grid {
        Grid {
            start_ms: w.start_ms,
            end_ms: w.end_ms,
            period_ms: w.period_ms(),
        }
    }
}

/// What an expression can see: every query result computed so far (metric queries as
/// series, earlier expressions as their values), the metric query ids in request order
/// (for `METRICS()`), and the grid.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub results: &'a HashMap<String, Value>,
    pub metric_ids: &'a [String],
    pub grid: Grid,
}

fn map_series(s: &Series, mut f: impl FnMut(f64) -> f64) -> Series {
    let mut out = Series::new();
    for (t, v) in s.points() {
        let r = f(v);
        if r.is_finite() {
            out.push(t, r);
        }
    }
    out
}

/// Pointwise `f` over the union of both series' timestamps, a missing value being 0.
fn zip_union(a: &Series, b: &Series, f: impl Fn(f64, f64) -> f64) -> Series {
    let mut out = Series::new();
    let (mut i, mut j) = (0, 0);
    let (ta, tb) = (&a.timestamps, &b.timestamps);
    while i < ta.len() || j < tb.len() {
        let (t, x, y) = if j >= tb.len() || (i < ta.len() && ta[i] < tb[j]) {
            i += 1;
            (ta[i - 1], a.values[i - 1], 0.0)
        } else if i >= ta.len() || tb[j] < ta[i] {
            j += 1;
            (tb[j - 1], 0.0, b.values[j - 1])
        } else {
            i += 1;
            j += 1;
            (ta[i - 1], a.values[i - 1], b.values[j - 1])
        };
        let r = f(x, y);
        if r.is_finite() {
            out.push(t, r);
        }
    }
    out
}

fn binary(op: BinOp, l: Value, r: Value) -> Result<Value, MathError> {
    let f = |a: f64, b: f64| op.apply(a, b);
    Ok(match (l, r) {
        (Value::Scalar(a), Value::Scalar(b)) => Value::Scalar(f(a, b)),
        (Value::Series(a), Value::Scalar(b)) => Value::Series(map_series(&a, |x| f(x, b))),
        (Value::Scalar(a), Value::Series(b)) => Value::Series(map_series(&b, |x| f(a, x))),
        (Value::Series(a), Value::Series(b)) => Value::Series(zip_union(&a, &b, f)),
        (Value::Array(xs), other @ (Value::Scalar(_) | Value::Series(_))) => Value::Array(
            xs.into_iter()
                .map(|m| {
                    let s = match binary(op, Value::Series(m.series), other.clone())? {
                        Value::Series(s) => s,
                        _ => Series::new(),
                    };
                    Ok(Labeled {
                        id: m.id,
                        series: s,
                    })
                })
                .collect::<Result<_, MathError>>()?,
        ),
        (other @ (Value::Scalar(_) | Value::Series(_)), Value::Array(xs)) => Value::Array(
            xs.into_iter()
                .map(|m| {
                    let s = match binary(op, other.clone(), Value::Series(m.series))? {
                        Value::Series(s) => s,
                        _ => Series::new(),
                    };
                    Ok(Labeled {
                        id: m.id,
                        series: s,
                    })
                })
                .collect::<Result<_, MathError>>()?,
        ),
        (Value::Array(_), Value::Array(_)) => {
            return err("Operators cannot combine two arrays of time series.");
        }
    })
}

fn elementwise(v: Value, f: fn(f64) -> f64) -> Value {
    match v {
        Value::Scalar(x) => Value::Scalar(f(x)),
        Value::Series(s) => Value::Series(map_series(&s, f)),
        Value::Array(xs) => Value::Array(
            xs.into_iter()
                .map(|m| Labeled {
                    id: m.id,
                    series: map_series(&m.series, f),
                })
                .collect(),
        ),
    }
}

/// Applies a series transform to a series or to each member of an array.
fn per_series(
    name: &str,
    v: Value,
    mut f: impl FnMut(&Series) -> Series,
) -> Result<Value, MathError> {
    match v {
        Value::Series(s) => Ok(Value::Series(f(&s))),
        Value::Array(xs) => Ok(Value::Array(
            xs.into_iter()
                .map(|m| Labeled {
                    series: f(&m.series),
                    id: m.id,
                })
                .collect(),
        )),
        Value::Scalar(_) => err(format!(
            "{name} expects a time series or an array of time series, not a scalar."
        )),
    }
}

fn consecutive(s: &Series, f: impl Fn(i64, f64, i64, f64) -> f64) -> Series {
    let mut out = Series::new();
    for i in 1..s.len() {
        let r = f(
            s.timestamps[i - 1],
            s.values[i - 1],
            s.timestamps[i],
            s.values[i],
        );
        if r.is_finite() {
            out.push(s.timestamps[i], r);
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Reduce {
    Sum,
    Avg,
    Min,
    Max,
    Stddev,
    Count,
}

fn reduce_values(how: Reduce, vals: &[f64]) -> f64 {
    let n = vals.len() as f64;
    match how {
        Reduce::Sum => vals.iter().sum(),
        Reduce::Avg => {
            if vals.is_empty() {
                f64::NAN
            } else {
                vals.iter().sum::<f64>() / n
            }
        }
        Reduce::Min => vals.iter().copied().fold(f64::NAN, f64::min),
        Reduce::Max => vals.iter().copied().fold(f64::NAN, f64::max),
        Reduce::Stddev => {
            if vals.is_empty() {
                return f64::NAN;
            }
            let mean = vals.iter().sum::<f64>() / n;
            (vals.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt()
        }
        Reduce::Count => n,
    }
}

fn reduce(name: &str, how: Reduce, v: Value) -> Result<Value, MathError> {
    match v {
        Value::Series(s) => Ok(Value::Scalar(reduce_values(how, &s.values))),
        Value::Array(xs) => {
            let mut stamps: Vec<i64> = xs
                .iter()
                .flat_map(|m| m.series.timestamps.iter().copied())
                .collect();
            stamps.sort_unstable();
            stamps.dedup();
            let mut cursors = vec![0usize; xs.len()];
            let mut out = Series::new();
            let mut vals = Vec::with_capacity(xs.len());
            for t in stamps {
                vals.clear();
                for (m, c) in xs.iter().zip(cursors.iter_mut()) {
                    let ts = &m.series.timestamps;
                    while *c < ts.len() && ts[*c] < t {
                        *c += 1;
                    }
                    if *c < ts.len() && ts[*c] == t {
                        vals.push(m.series.values[*c]);
                    } else if matches!(how, Reduce::Avg | Reduce::Stddev) {
                        vals.push(0.0);
                    }
                }
                let r = reduce_values(how, &vals);
                if r.is_finite() {
                    out.push(t, r);
                }
            }
            Ok(Value::Series(out))
        }
        Value::Scalar(_) => err(format!(
            "{name} expects a time series or an array of time series, not a scalar."
        )),
    }
}

fn fill(s: &Series, filler: &Value, grid: Grid) -> Result<Series, MathError> {
    let mut points: Vec<(i64, f64)> = s.points().collect();
    let missing: Vec<i64> = grid.timestamps().filter(|t| s.at(*t).is_none()).collect();
    for t in missing {
        let v = match filler {
            Value::Scalar(x) => Some(*x),
            Value::Series(f) => f.at(t),
            Value::Array(_) => return err("FILL's filler cannot be an array of time series."),
        };
        if let Some(v) = v.filter(|v| v.is_finite()) {
            points.push((t, v));
        }
    }
    Ok(Series::from_points(points))
}

fn fill_mode(s: &Series, mode: FillMode, grid: Grid) -> Series {
    if s.is_empty() {
        return s.clone();
    }
    let mut points: Vec<(i64, f64)> = s.points().collect();
    for t in grid.timestamps().filter(|t| s.at(*t).is_none()) {
        let after = s.timestamps.partition_point(|&x| x < t);
        let prev = after.checked_sub(1).map(|i| (s.timestamps[i], s.values[i]));
        let next = (after < s.len()).then(|| (s.timestamps[after], s.values[after]));
        let v = match (mode, prev, next) {
            (FillMode::Repeat, Some((_, pv)), _) => pv,
            (FillMode::Linear, Some((pt, pv)), Some((nt, nv))) => {
                pv + (nv - pv) * ((t - pt) as f64) / ((nt - pt) as f64)
            }
            (_, Some((_, pv)), None) => pv,
            (_, None, Some((_, nv))) => nv,
            (_, None, None) => continue,
        };
        points.push((t, v));
    }
    Series::from_points(points)
}

fn want_array(name: &str, v: Value) -> Result<Vec<Labeled>, MathError> {
    match v {
        Value::Array(xs) => Ok(xs),
        other => err(format!(
            "{name} expects an array of time series, not {}.",
            other.kind()
        )),
    }
}

fn arity(f: Function, args: &[Expr], allowed: &[usize]) -> Result<(), MathError> {
    if allowed.contains(&args.len()) {
        Ok(())
    } else {
        let want = allowed
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(" or ");
        err(format!(
            "{} expects {want} argument(s) but got {}.",
            f.name(),
            args.len()
        ))
    }
}

/// Evaluates `expr` in `ctx`.
pub fn evaluate(expr: &Expr, ctx: &Context<'_>) -> Result<Value, MathError> {
    match expr {
        Expr::Number(n) => Ok(Value::Scalar(*n)),
        Expr::Id(id) => ctx
            .results
            .get(id)
            .cloned()
            .map_or_else(|| err(format!("Unknown id: {id}.")), Ok),
        Expr::Str(_) => err("A string can only be the argument of METRICS."),
        Expr::FillMode(_) => err("REPEAT and LINEAR can only be the second argument of FILL."),
        Expr::Neg(e) => Ok(elementwise(evaluate(e, ctx)?, |x| -x)),
        Expr::Binary(op, a, b) => binary(*op, evaluate(a, ctx)?, evaluate(b, ctx)?),
        Expr::List(items) => {
            let mut out = Vec::new();
            for item in items {
                match evaluate(item, ctx)? {
                    Value::Series(s) => out.push(Labeled {
                        id: match item {
                            Expr::Id(id) => id.clone(),
                            _ => String::new(),
                        },
                        series: s,
                    }),
                    Value::Array(xs) => out.extend(xs),
                    Value::Scalar(_) => {
                        return err("A list can only hold time series, not scalars.");
                    }
                }
            }
            Ok(Value::Array(out))
        }
        Expr::Call(f, args) => call(*f, args, ctx),
    }
}

fn call(f: Function, args: &[Expr], ctx: &Context<'_>) -> Result<Value, MathError> {
    let name = f.name();
    let first = |ctx: &Context<'_>| -> Result<Value, MathError> {
        match args.first() {
            Some(a) => evaluate(a, ctx),
            None => err(format!("{name} expects an argument.")),
        }
    };
    match f {
        Function::Metrics => {
            arity(f, args, &[0, 1])?;
            let filter = match args.first() {
                None => None,
                Some(Expr::Str(s)) => Some(s.as_str()),
                Some(_) => return err("METRICS takes no argument or one string."),
            };
            let members = ctx
                .metric_ids
                .iter()
                .filter(|id| filter.is_none_or(|s| id.contains(s)))
                .map(|id| {
                    let series = match ctx.results.get(id) {
                        Some(Value::Series(s)) => s.clone(),
                        _ => Series::new(),
                    };
                    Labeled {
                        id: id.clone(),
                        series,
                    }
                })
                .collect();
            Ok(Value::Array(members))
        }
        Function::Sum
        | Function::Avg
        | Function::Min
        | Function::Max
        | Function::Stddev
        | Function::DatapointCount => {
            arity(f, args, &[1])?;
            let how = match f {
                Function::Sum => Reduce::Sum,
                Function::Avg => Reduce::Avg,
                Function::Min => Reduce::Min,
                Function::Max => Reduce::Max,
                Function::Stddev => Reduce::Stddev,
                _ => Reduce::Count,
            };
            reduce(name, how, first(ctx)?)
        }
        Function::Abs => {
            arity(f, args, &[1])?;
            Ok(elementwise(first(ctx)?, f64::abs))
        }
        Function::Ceil => {
            arity(f, args, &[1])?;
            Ok(elementwise(first(ctx)?, f64::ceil))
        }
        Function::Floor => {
            arity(f, args, &[1])?;
            Ok(elementwise(first(ctx)?, f64::floor))
        }
        Function::Log => {
            arity(f, args, &[1])?;
            Ok(elementwise(first(ctx)?, f64::ln))
        }
        Function::Log10 => {
            arity(f, args, &[1])?;
            Ok(elementwise(first(ctx)?, f64::log10))
        }
        Function::Diff => {
            arity(f, args, &[1])?;
            per_series(name, first(ctx)?, |s| consecutive(s, |_, a, _, b| b - a))
        }
        Function::DiffTime => {
            arity(f, args, &[1])?;
            per_series(name, first(ctx)?, |s| {
                consecutive(s, |ta, _, tb, _| (tb - ta) as f64 / 1000.0)
            })
        }
        Function::Rate => {
            arity(f, args, &[1])?;
            per_series(name, first(ctx)?, |s| {
                consecutive(s, |ta, a, tb, b| (b - a) / ((tb - ta) as f64 / 1000.0))
            })
        }
        Function::RunningSum => {
            arity(f, args, &[1])?;
            per_series(name, first(ctx)?, |s| {
                let mut acc = 0.0;
                map_series(s, |v| {
                    acc += v;
                    acc
                })
            })
        }
        Function::Fill => {
            arity(f, args, &[2])?;
            let target = first(ctx)?;
            let grid = ctx.grid;
            match args.get(1) {
                Some(Expr::FillMode(mode)) => {
                    let mode = *mode;
                    per_series(name, target, |s| fill_mode(s, mode, grid))
                }
                Some(e) => {
                    let filler = evaluate(e, ctx)?;
                    if matches!(target, Value::Scalar(_)) {
                        return err(
                            "FILL expects a time series or an array of time series, not a scalar.",
                        );
                    }
                    let mut failure = None;
                    let out = per_series(name, target, |s| match fill(s, &filler, grid) {
                        Ok(s) => s,
                        Err(e) => {
                            failure = Some(e);
                            Series::new()
                        }
                    })?;
                    match failure {
                        Some(e) => Err(e),
                        None => Ok(out),
                    }
                }
                None => err("FILL expects 2 argument(s) but got 1."),
            }
        }
        Function::First | Function::Last => {
            arity(f, args, &[1])?;
            let xs = want_array(name, first(ctx)?)?;
            let pick = if f == Function::First {
                xs.into_iter().next()
            } else {
                xs.into_iter().last()
            };
            Ok(Value::Series(pick.map(|m| m.series).unwrap_or_default()))
        }
        Function::MetricCount => {
            arity(f, args, &[1])?;
            let xs = want_array(name, first(ctx)?)?;
            Ok(Value::Scalar(xs.len() as f64))
        }
        Function::RemoveEmpty => {
            arity(f, args, &[1])?;
            let xs = want_array(name, first(ctx)?)?;
            Ok(Value::Array(
                xs.into_iter().filter(|m| !m.series.is_empty()).collect(),
            ))
        }
        Function::TimeSeries => {
            arity(f, args, &[1])?;
            match first(ctx)? {
                Value::Scalar(x) if x.is_finite() => {
                    let mut s = Series::new();
                    for t in ctx.grid.timestamps() {
                        s.push(t, x);
                    }
                    Ok(Value::Series(s))
                }
                Value::Scalar(_) => Ok(Value::Series(Series::new())),
                other => err(format!(
                    "TIME_SERIES expects a scalar, not {}.",
                    other.kind()
                )),
            }
        }
    }
}

/// Orders queries so every expression comes after the queries it names (and, if it uses
/// `METRICS()`, after every metric query). `queries` are `(id, expression)` in request
/// order, `None` for a MetricStat query. Errors: an id named but not defined, duplicate
/// ids, or a cycle.
pub fn evaluation_order(queries: &[(&str, Option<&Expr>)]) -> Result<Vec<usize>, MathError> {
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, (id, _)) in queries.iter().enumerate() {
        if index.insert(id, i).is_some() {
            return err(format!("The id {id} is used by more than one query."));
        }
    }
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(queries.len());
    for (id, expr) in queries {
        let mut d = Vec::new();
        if let Some(e) = expr {
            for r in e.references() {
                match index.get(r) {
                    Some(&j) => d.push(j),
                    None => return err(format!("Unknown id {r} in the expression of {id}.")),
                }
            }
            if e.uses_metrics_function() {
                d.extend(
                    queries
                        .iter()
                        .enumerate()
                        .filter(|(_, (_, e))| e.is_none())
                        .map(|(j, _)| j),
                );
            }
        }
        deps.push(d);
    }
    // Depth-first topological sort; state 1 = on the stack, 2 = done.
    let mut state = vec![0u8; queries.len()];
    let mut order = Vec::with_capacity(queries.len());
    for start in 0..queries.len() {
        if state[start] != 0 {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        state[start] = 1;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                match state[dep] {
                    0 => {
                        state[dep] = 1;
                        stack.push((dep, 0));
                    }
                    1 => {
                        return err(format!(
                            "The expression of {} depends on itself.",
                            queries[dep].0
                        ));
                    }
                    _ => {}
                }
            } else {
                state[node] = 2;
                order.push(node);
                stack.pop();
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_701_600_000;
    const P: i64 = 60_000;

    fn s(points: &[(i64, f64)]) -> Series {
        Series::from_points(points.iter().map(|&(k, v)| (T + k * P, v)).collect())
    }

    fn pts(v: &Value) -> Vec<(i64, f64)> {
        match v {
            Value::Series(s) => s.points().map(|(t, v)| ((t - T) / P, v)).collect(),
            other => panic!("expected a series, got {other:?}"),
        }
    }

    struct Fixture {
        results: HashMap<String, Value>,
        metric_ids: Vec<String>,
    }

    impl Fixture {
        fn new(series: &[(&str, Series)]) -> Fixture {
            Fixture {
                results: series
                    .iter()
                    .map(|(id, s)| (id.to_string(), Value::Series(s.clone())))
                    .collect(),
                metric_ids: series.iter().map(|(id, _)| id.to_string()).collect(),
            }
        }

        fn eval(&self, text: &str) -> Result<Value, MathError> {
            let ctx = Context {
                results: &self.results,
                metric_ids: &self.metric_ids,
                grid: Grid {
                    start_ms: T,
                    end_ms: T + 5 * P,
                    period_ms: P,
                },
            };
            evaluate(&Expr::parse(text)?, &ctx)
        }

        fn series(&self, text: &str) -> Vec<(i64, f64)> {
            pts(&self.eval(text).unwrap())
        }

        fn scalar(&self, text: &str) -> f64 {
            match self.eval(text).unwrap() {
                Value::Scalar(x) => x,
                other => panic!("expected a scalar, got {other:?}"),
            }
        }

        fn error(&self, text: &str) -> String {
            self.eval(text).unwrap_err().message
        }
    }

    fn fixture() -> Fixture {
        // m1 = [10, 20, 30, 40] at minutes 0..4; m2 = [2, -, 5, 0] (minute 1 missing);
        // errors5xx = [1, 2] at 0, 1; errors4xx = [3] at 0.
        Fixture::new(&[
            ("m1", s(&[(0, 10.0), (1, 20.0), (2, 30.0), (3, 40.0)])),
            ("m2", s(&[(0, 2.0), (2, 5.0), (3, 0.0)])),
            ("errors5xx", s(&[(0, 1.0), (1, 2.0)])),
            ("errors4xx", s(&[(0, 3.0)])),
        ])
    }

    #[test]
    fn math_parse_precedence() {
        let e = Expr::parse("m1 + m2 * 2 ^ 2").unwrap();
        let want = Expr::Binary(
            BinOp::Add,
            Box::new(Expr::Id("m1".into())),
            Box::new(Expr::Binary(
                BinOp::Mul,
                Box::new(Expr::Id("m2".into())),
                Box::new(Expr::Binary(
                    BinOp::Pow,
                    Box::new(Expr::Number(2.0)),
                    Box::new(Expr::Number(2.0)),
                )),
            )),
        );
        assert_eq!(e, want);
        let f = fixture();
        assert_eq!(f.scalar("-2^2"), -4.0);
        assert_eq!(f.scalar("2^3^2"), 512.0);
        assert_eq!(f.scalar("(1 + 2) * 3 - 4 / 2"), 7.0);
        assert_eq!(f.scalar("10 - 4 - 3"), 3.0);
        assert_eq!(f.scalar("1e-36 * 1e36"), 1.0);
        assert_eq!(f.scalar("1 + 2 > 2 AND 0 || 1"), 1.0);
    }

    #[test]
    fn math_series_arithmetic_aligns_on_timestamps_missing_as_zero() {
        let f = fixture();
        assert_eq!(
            f.series("m1 + m2"),
            vec![(0, 12.0), (1, 20.0), (2, 35.0), (3, 40.0)]
        );
        assert_eq!(
            f.series("m1 - m2"),
            vec![(0, 8.0), (1, 20.0), (2, 25.0), (3, 40.0)]
        );
        assert_eq!(
            f.series("m1 * m2"),
            vec![(0, 20.0), (1, 0.0), (2, 150.0), (3, 0.0)]
        );
        // Division by zero (the missing minute 1 counts as 0, minute 3 is 0) drops points.
        assert_eq!(f.series("m1 / m2"), vec![(0, 5.0), (2, 6.0)]);
        assert_eq!(f.series("m2 ^ 2"), vec![(0, 4.0), (2, 25.0), (3, 0.0)]);
    }

    #[test]
    fn math_series_with_scalar_and_unary_minus() {
        let f = fixture();
        assert_eq!(
            f.series("m1 / 10"),
            vec![(0, 1.0), (1, 2.0), (2, 3.0), (3, 4.0)]
        );
        assert_eq!(
            f.series("100 - m1"),
            vec![(0, 90.0), (1, 80.0), (2, 70.0), (3, 60.0)]
        );
        assert_eq!(f.series("-m2"), vec![(0, -2.0), (2, -5.0), (3, -0.0)]);
        assert_eq!(f.series("m1 / 0"), vec![]);
        assert_eq!(
            f.series("m1 * 100 / (m1 + m2)"),
            vec![
                (0, 1000.0 / 12.0),
                (1, 100.0),
                (2, 3000.0 / 35.0),
                (3, 100.0),
            ]
        );
        assert_eq!(
            f.series("m1 - AVG(m1)"),
            vec![(0, -15.0), (1, -5.0), (2, 5.0), (3, 15.0)]
        );
    }

    #[test]
    fn math_comparison_and_logical_operators() {
        // AWS's documented example: metric1 = [30, 20, 0, 0], metric2 = [20, -, 20, -].
        let f = Fixture::new(&[
            ("metric1", s(&[(0, 30.0), (1, 20.0), (2, 0.0), (3, 0.0)])),
            ("metric2", s(&[(0, 20.0), (2, 20.0)])),
        ]);
        assert_eq!(
            f.series("(metric1 < metric2)"),
            vec![(0, 0.0), (1, 0.0), (2, 1.0), (3, 0.0)]
        );
        assert_eq!(
            f.series("(metric1 >= 30)"),
            vec![(0, 1.0), (1, 0.0), (2, 0.0), (3, 0.0)]
        );
        assert_eq!(
            f.series("(metric1 > 15 AND metric2 > 15)"),
            vec![(0, 1.0), (1, 0.0), (2, 0.0), (3, 0.0)]
        );
        assert_eq!(
            f.series("metric1 == 0 || metric2 != 20"),
            vec![(0, 0.0), (1, 0.0), (2, 1.0), (3, 1.0)]
        );
    }

    #[test]
    fn math_functions_over_one_series_give_scalars() {
        let f = fixture();
        assert_eq!(f.scalar("SUM(m1)"), 100.0);
        assert_eq!(f.scalar("AVG(m1)"), 25.0);
        assert_eq!(f.scalar("MIN(m1)"), 10.0);
        assert_eq!(f.scalar("MAX(m2)"), 5.0);
        assert_eq!(f.scalar("DATAPOINT_COUNT(m2)"), 3.0);
        assert!((f.scalar("STDDEV(m1)") - 125f64.sqrt()).abs() < 1e-12);
        assert_eq!(f.scalar("METRIC_COUNT(METRICS())"), 4.0);
        assert_eq!(f.scalar("METRIC_COUNT(METRICS(\"errors\"))"), 2.0);
    }

    #[test]
    fn math_functions_over_lists_give_one_series() {
        let f = fixture();
        assert_eq!(
            f.series("SUM([m1, m2])"),
            vec![(0, 12.0), (1, 20.0), (2, 35.0), (3, 40.0)]
        );
        // AVG treats missing as 0: minute 1 is (20 + 0) / 2.
        assert_eq!(
            f.series("AVG([m1, m2])"),
            vec![(0, 6.0), (1, 10.0), (2, 17.5), (3, 20.0)]
        );
        assert_eq!(
            f.series("MIN([m1, m2])"),
            vec![(0, 2.0), (1, 20.0), (2, 5.0), (3, 0.0)]
        );
        assert_eq!(
            f.series("MAX([m1, m2])"),
            vec![(0, 10.0), (1, 20.0), (2, 30.0), (3, 40.0)]
        );
        assert_eq!(
            f.series("DATAPOINT_COUNT([m1, m2])"),
            vec![(0, 2.0), (1, 1.0), (2, 2.0), (3, 2.0)]
        );
        assert_eq!(
            f.series("SUM(METRICS(\"errors\"))"),
            vec![(0, 4.0), (1, 2.0)]
        );
        assert_eq!(
            f.series("SUM([METRICS(\"5xx\"), METRICS(\"4xx\")])"),
            vec![(0, 4.0), (1, 2.0)]
        );
        assert_eq!(
            f.series("SUM(100 / [m1, m2])"),
            vec![(0, 60.0), (1, 5.0), (2, 100.0 / 30.0 + 20.0), (3, 2.5)]
        );
        assert_eq!(
            f.series("STDDEV([m1, m2])"),
            vec![(0, 4.0), (1, 10.0), (2, 12.5), (3, 20.0)]
        );
        assert_eq!(f.series("FIRST(METRICS())"), f.series("m1"));
        assert_eq!(f.series("LAST(METRICS())"), f.series("errors4xx"));
    }

    #[test]
    fn math_metrics_arrays_keep_ids() {
        let f = fixture();
        match f.eval("METRICS(\"errors\") * 2").unwrap() {
            Value::Array(xs) => {
                let ids: Vec<&str> = xs.iter().map(|m| m.id.as_str()).collect();
                assert_eq!(ids, vec!["errors5xx", "errors4xx"]);
                assert_eq!(xs[0].series.values, vec![2.0, 4.0]);
            }
            other => panic!("{other:?}"),
        }
        match f.eval("REMOVE_EMPTY(METRICS() - m1)").unwrap() {
            Value::Array(xs) => assert_eq!(xs.len(), 4),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn math_fill_scalar_series_repeat_linear() {
        // x = [-, 2, -, -, 8] on a 5-minute grid.
        let mut f = Fixture::new(&[
            ("x", s(&[(1, 2.0), (4, 8.0)])),
            ("y", s(&[(0, 100.0), (2, 200.0)])),
        ]);
        f.metric_ids = vec!["x".into()];
        assert_eq!(
            f.series("FILL(x, 0)"),
            vec![(0, 0.0), (1, 2.0), (2, 0.0), (3, 0.0), (4, 8.0)]
        );
        assert_eq!(
            f.series("FILL(x, y)"),
            vec![(0, 100.0), (1, 2.0), (2, 200.0), (4, 8.0)]
        );
        assert_eq!(
            f.series("FILL(x, REPEAT)"),
            vec![(0, 2.0), (1, 2.0), (2, 2.0), (3, 2.0), (4, 8.0)]
        );
        assert_eq!(
            f.series("FILL(x, LINEAR)"),
            vec![(0, 2.0), (1, 2.0), (2, 4.0), (3, 6.0), (4, 8.0)]
        );
        assert_eq!(
            f.series("FILL(x, MIN(x))"),
            vec![(0, 2.0), (1, 2.0), (2, 2.0), (3, 2.0), (4, 8.0)]
        );
        match f.eval("FILL(METRICS(), 1)").unwrap() {
            Value::Array(xs) => assert_eq!(xs[0].series.len(), 5),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn math_rate_diff_abs_and_friends() {
        let f = Fixture::new(&[("c", s(&[(0, 100.0), (1, 160.0), (3, 100.0)]))]);
        assert_eq!(f.series("RATE(c)"), vec![(1, 1.0), (3, -0.5)]);
        assert_eq!(f.series("DIFF(c)"), vec![(1, 60.0), (3, -60.0)]);
        assert_eq!(f.series("DIFF_TIME(c)"), vec![(1, 60.0), (3, 120.0)]);
        assert_eq!(f.series("ABS(DIFF(c))"), vec![(1, 60.0), (3, 60.0)]);
        assert_eq!(
            f.series("RUNNING_SUM(c)"),
            vec![(0, 100.0), (1, 260.0), (3, 360.0)]
        );
        assert_eq!(
            f.series("CEIL(c / 7)"),
            vec![(0, 15.0), (1, 23.0), (3, 15.0)]
        );
        assert_eq!(
            f.series("FLOOR(c / 7)"),
            vec![(0, 14.0), (1, 22.0), (3, 14.0)]
        );
        assert_eq!(
            f.series("LOG10(c)"),
            vec![(0, 2.0), (1, 160f64.log10()), (3, 2.0)]
        );
        assert_eq!(f.series("LOG(c - 100)"), vec![(1, 60f64.ln())]);
        assert_eq!(f.series("TIME_SERIES(7)").len(), 5);
    }

    #[test]
    fn math_errors_have_messages() {
        let f = fixture();
        assert_eq!(f.error("FOO(m1)"), "Unknown function: FOO.");
        assert_eq!(f.error("IF(m1 > 1, m1)"), "Unsupported function: IF.");
        assert_eq!(f.error("m1 + m3"), "Unknown id: m3.");
        assert_eq!(
            f.error("m1 +"),
            "Syntax error at position 5: unexpected end of expression."
        );
        assert_eq!(
            f.error("(m1"),
            "Syntax error at position 4: expected ')' but found end of expression."
        );
        assert_eq!(
            f.error("m1 m2"),
            "Syntax error at position 4: unexpected 'm2'."
        );
        assert_eq!(
            f.error("m1 $ 2"),
            "Syntax error at position 4: unexpected character '$'."
        );
        assert!(f.error("M1 + 1").contains("not a valid id"));
        assert_eq!(
            f.error("\"abc"),
            "Syntax error at position 1: unterminated string."
        );
        assert_eq!(f.error("FILL(m1)"), "FILL expects 2 argument(s) but got 1.");
        assert_eq!(
            f.error("FIRST(m1)"),
            "FIRST expects an array of time series, not a time series."
        );
        assert_eq!(
            f.error("METRICS() + METRICS()"),
            "Operators cannot combine two arrays of time series."
        );
        assert_eq!(
            f.error("SUM(5)"),
            "SUM expects a time series or an array of time series, not a scalar."
        );
        assert_eq!(
            f.error("[m1, 5]"),
            "A list can only hold time series, not scalars."
        );
        assert_eq!(
            f.error("REPEAT"),
            "REPEAT and LINEAR can only be the second argument of FILL."
        );
        assert_eq!(f.error("  "), "The expression is empty.");
        let deep = format!("{}m1{}", "(".repeat(100), ")".repeat(100));
        assert_eq!(f.error(&deep), "The expression is nested too deeply.");
        assert!(Expr::parse(&"1+".repeat(1100)).is_err());
        let v = f.eval("AVG(m1)").unwrap();
        assert!(v.check_final().is_err());
        assert!(f.eval("m1").unwrap().check_final().is_ok());
    }

    #[test]
    fn math_references_and_evaluation_order() {
        let e1 = Expr::parse("m1 / m2 * 100").unwrap();
        assert_eq!(e1.references(), vec!["m1", "m2"]);
        let e2 = Expr::parse("e1 + SUM(METRICS())").unwrap();
        assert_eq!(e2.references(), vec!["e1"]);
        assert!(e2.uses_metrics_function());
        let order = evaluation_order(&[
            ("e2", Some(&e2)),
            ("e1", Some(&e1)),
            ("m1", None),
            ("m2", None),
        ])
        .unwrap();
        let pos = |i: usize| order.iter().position(|&x| x == i).unwrap();
        assert!(pos(2) < pos(1) && pos(3) < pos(1) && pos(1) < pos(0));
        let a = Expr::parse("b + 1").unwrap();
        let b = Expr::parse("a + 1").unwrap();
        assert!(
            evaluation_order(&[("a", Some(&a)), ("b", Some(&b))])
                .unwrap_err()
                .message
                .contains("depends on itself")
        );
        assert_eq!(
            evaluation_order(&[("e1", Some(&e1)), ("m1", None)])
                .unwrap_err()
                .message,
            "Unknown id m2 in the expression of e1."
        );
        assert!(evaluation_order(&[("m1", None), ("m1", None)]).is_err());
    }

    #[test]
    fn math_expression_results_feed_later_expressions() {
        let mut f = fixture();
        let e1 = f.eval("m1 * 2").unwrap();
        f.results.insert("e1".into(), e1);
        assert_eq!(f.series("e1 - m1"), f.series("m1"));
    }
}
