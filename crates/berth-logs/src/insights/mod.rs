//! The CloudWatch Logs Insights query subset Berth runs (StartQuery / GetQueryResults), from
//! the Logs Insights query syntax pages.
//!
//! [`Query::parse`] reads the query (a [`QueryError`] is a `MalformedQueryException`, with the
//! character offsets `queryCompileError.location` reports); [`Query::run`] runs it over
//! [`QueryEvent`]s and returns GetQueryResults' rows and statistics.
//!
//! Commands, joined with `|`, applied in order:
//! * `fields a, b as c` — the fields to return (each `fields` adds to the list);
//! * `display a, b` — the fields to return, replacing any earlier list;
//! * `filter …` — `=`, `!=`, `<`, `<=`, `>`, `>=`; `like /regex/`, `like "substring"`, `=~`;
//!   `in [..]`, `not in`, `not like`; `ispresent(f)`; `and`, `or`, `not`, parentheses;
//! * `parse @message "* [*] *" as a, b, c` (glob) or `parse @message /(?<a>…)…/` (named
//!   groups); a message that does not match leaves the fields absent;
//! * `stats count(*), count(f), count_distinct(f), sum(f), avg(f), min(f), max(f) [as x]
//!   [by bin(5m) [as y], field…]`;
//! * `sort f [asc|desc], …` — the documented natural order: non-numbers before numbers,
//!   digit runs compared by length then value, the rest by Unicode; absent values last;
//!   `asc` when no direction is given;
//! * `limit n` (1–10,000).
//!
//! Fields: `@timestamp`, `@message`, `@logStream`, `@log` (`account-id:group`),
//! `@ingestionTime`, `@ptr` (returned with every non-`stats` row when the caller supplies it);
//! for messages that are JSON objects, their fields flattened with dots (`a.b`, arrays as
//! `items.0.id`), at most 200, a field named `@x` shown as `@@x` (discoverable-fields page).
//!
//! Defaults: without `fields`, `display` or `stats`, rows hold `@timestamp` and `@message`;
//! without `sort`, event rows come newest first (`@timestamp desc`, as the console's default
//! query) and `stats` rows in the order their group was first seen; at most 10,000 rows
//! (the `limit` page: "If you omit limit, the query … return[s] up to 10,000 log events").
//!
//! Values are strings as GetQueryResults returns them: timestamps `yyyy-MM-dd HH:mm:ss.SSS`
//! (UTC), numbers without a trailing `.0`. Absent fields are left out of a row.
//!
//! Called by the Logs API's query runner with the events of the queried groups and time
//! range. Pure: no clock, no I/O.

mod exec;
mod parse;

#[cfg(test)]
mod tests;

use regex_lite::Regex;
use thiserror::Error;

/// The most rows a query returns, and the largest `limit`.
pub const MAX_LIMIT: usize = 10_000;
/// The most fields discovered in one JSON message.
pub const MAX_JSON_FIELDS: usize = 200;

/// A query Insights refuses: `MalformedQueryException`. `start`/`end` are character offsets
/// into the query (`queryCompileError.location`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct QueryError {
    pub message: String,
    pub start: usize,
    pub end: usize,
}

impl QueryError {
    fn at(message: String, start: usize, end: usize) -> QueryError {
        QueryError {
            message,
            start,
            end,
        }
    }
}

/// One log event as a query sees it.
#[derive(Debug, Clone, Copy)]
pub struct QueryEvent<'a> {
    pub timestamp_ms: i64,
    pub ingestion_time_ms: i64,
    pub message: &'a str,
    pub log_stream: &'a str,
    /// `@log`: `account-id:log-group-name`.
    pub log: &'a str,
    /// `@ptr`, the record's identifier for GetLogRecord, when the caller has one.
    pub ptr: Option<&'a str>,
}

/// `statistics` of GetQueryResults.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QueryStatistics {
    pub records_matched: f64,
    pub records_scanned: f64,
    pub bytes_scanned: f64,
}

/// GetQueryResults' `results` (rows of `(field, value)`) and `statistics`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryOutput {
    pub rows: Vec<Vec<(String, String)>>,
    pub statistics: QueryStatistics,
}

/// A parsed query.
#[derive(Debug, Clone)]
pub struct Query {
    text: String,
    stages: Vec<Stage>,
}

impl Query {
    pub fn parse(text: &str) -> Result<Query, QueryError> {
        Ok(Query {
            text: text.to_string(),
            stages: parse::parse(text)?,
        })
    }

    /// The query as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The query with `limit n` at its end unless it has a `limit` command of its own
    /// (StartQuery's `limit` parameter), `n` capped at [`MAX_LIMIT`].
    pub fn with_default_limit(mut self, n: usize) -> Query {
        if !self.stages.iter().any(|s| matches!(s, Stage::Limit(_))) {
            self.stages.push(Stage::Limit(n.clamp(1, MAX_LIMIT)));
        }
        self
    }

    /// Runs the query over `events` (in any order).
    pub fn run<'a>(&self, events: impl IntoIterator<Item = QueryEvent<'a>>) -> QueryOutput {
        exec::run(&self.stages, events)
    }
}

#[derive(Debug, Clone)]
enum Stage {
    Fields(Vec<Projection>),
    Display(Vec<String>),
    Filter(Cond),
    Parse(Parse),
    Stats { aggs: Vec<Agg>, by: Vec<GroupKey> },
    Sort(Vec<(String, bool)>),
    Limit(usize),
}

#[derive(Debug, Clone)]
struct Projection {
    field: String,
    alias: Option<String>,
}

#[derive(Debug, Clone)]
struct Parse {
    source: String,
    regex: Regex,
    names: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum AggFunc {
    Count,
    CountDistinct,
    Sum,
    Avg,
    Min,
    Max,
}

#[derive(Debug, Clone)]
struct Agg {
    func: AggFunc,
    /// `None` for `count(*)`.
    field: Option<String>,
    /// The output field: the alias, or the call as written without spaces (`count(*)`).
    name: String,
}

#[derive(Debug, Clone)]
enum GroupKey {
    Bin { period_ms: i64, name: String },
    Field { field: String, name: String },
}

impl GroupKey {
    fn renamed(self, alias: String) -> GroupKey {
        match self {
            GroupKey::Bin { period_ms, .. } => GroupKey::Bin {
                period_ms,
                name: alias,
            },
            GroupKey::Field { field, .. } => GroupKey::Field { field, name: alias },
        }
    }

    fn name(&self) -> &str {
        match self {
            GroupKey::Bin { name, .. } | GroupKey::Field { name, .. } => name,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Num(f64),
    Str(String),
}

#[derive(Debug, Clone)]
enum Operand {
    Field(String),
    Lit(Lit),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
enum Cond {
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
    Compare {
        left: Operand,
        op: Cmp,
        right: Operand,
    },
    Regex {
        left: Operand,
        regex: Regex,
    },
    Contains {
        left: Operand,
        needle: String,
    },
    In {
        left: Operand,
        list: Vec<Lit>,
        negated: bool,
    },
    Present(String),
}
