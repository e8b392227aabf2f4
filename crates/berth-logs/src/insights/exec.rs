//! Running a parsed query: records built from events, the commands applied in order (filter,
//! parse and fields stream; stats, sort and limit work on the records gathered so far), rows
//! formatted as GetQueryResults returns them. Only `insights::Query::run` calls this.

use super::{
    Agg, AggFunc, Cmp, Cond, GroupKey, Lit, MAX_JSON_FIELDS, MAX_LIMIT, Operand, QueryEvent,
    QueryOutput, QueryStatistics, Stage,
};
use crate::pattern::value::parse_number;
use serde_json::Value as Json;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone, PartialEq)]
enum Val {
    Str(String),
    Num(f64),
    /// Epoch milliseconds, shown as `yyyy-MM-dd HH:mm:ss.SSS`.
    Time(i64),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Str(s) => s.clone(),
            Val::Num(n) => format_number(*n),
            Val::Time(t) => format_timestamp(*t),
        }
    }

    /// The value as a number, when it is one (strings holding only a number count).
    fn number(&self) -> Option<f64> {
        match self {
            Val::Num(n) => Some(*n),
            Val::Time(t) => Some(*t as f64),
            Val::Str(s) => parse_number(s.trim()),
        }
    }
}

/// A number as Insights prints it: whole numbers without a fraction.
pub(super) fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

/// `yyyy-MM-dd HH:mm:ss.SSS`, UTC.
pub(super) fn format_timestamp(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => ms.to_string(),
    }
}

#[derive(Debug, Clone)]
struct Record {
    fields: Vec<(String, Val)>,
    ptr: Option<String>,
}

impl Record {
    fn get(&self, name: &str) -> Option<&Val> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn set(&mut self, name: &str, v: Val) {
        self.fields.push((name.to_string(), v));
    }
}

const BUILTIN: [&str; 6] = [
    "@timestamp",
    "@message",
    "@logStream",
    "@log",
    "@ingestionTime",
    "@ptr",
];

fn flatten(prefix: &str, v: &Json, out: &mut Vec<(String, Val)>) {
    if out.len() >= MAX_JSON_FIELDS {
        return;
    }
    let join = |k: &str| {
        if prefix.is_empty() {
            // A discovered field named `@x` is shown as `@@x`.
            if k.starts_with('@') {
                format!("@{k}")
            } else {
                k.to_string()
            }
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Json::Object(m) => m.iter().for_each(|(k, c)| flatten(&join(k), c, out)),
        Json::Array(a) => a
            .iter()
            .enumerate()
            .for_each(|(i, c)| flatten(&join(&i.to_string()), c, out)),
        Json::String(s) => out.push((prefix.to_string(), Val::Str(s.clone()))),
        Json::Number(n) => match n.as_f64() {
            Some(f) => out.push((prefix.to_string(), Val::Num(f))),
            None => out.push((prefix.to_string(), Val::Str(n.to_string()))),
        },
        Json::Bool(b) => out.push((prefix.to_string(), Val::Str(b.to_string()))),
        Json::Null => {}
    }
}

fn record(e: &QueryEvent<'_>, discover_json: bool) -> Record {
    let mut fields = vec![
        ("@timestamp".to_string(), Val::Time(e.timestamp_ms)),
        ("@message".to_string(), Val::Str(e.message.to_string())),
        ("@logStream".to_string(), Val::Str(e.log_stream.to_string())),
        ("@log".to_string(), Val::Str(e.log.to_string())),
        ("@ingestionTime".to_string(), Val::Time(e.ingestion_time_ms)),
    ];
    if discover_json
        && e.message.trim_start().starts_with('{')
        && let Ok(v @ Json::Object(_)) = serde_json::from_str::<Json>(e.message)
    {
        let mut discovered = Vec::new();
        flatten("", &v, &mut discovered);
        fields.extend(discovered);
    }
    Record {
        fields,
        ptr: e.ptr.map(str::to_string),
    }
}

fn operand<'r>(o: &'r Operand, r: &'r Record) -> Option<std::borrow::Cow<'r, Val>> {
    match o {
        Operand::Field(f) => r.get(f).map(std::borrow::Cow::Borrowed),
        Operand::Lit(Lit::Num(n)) => Some(std::borrow::Cow::Owned(Val::Num(*n))),
        Operand::Lit(Lit::Str(s)) => Some(std::borrow::Cow::Owned(Val::Str(s.clone()))),
    }
}

fn compare_vals(a: &Val, b: &Val) -> Option<Ordering> {
    let numeric = |v: &Val| matches!(v, Val::Num(_) | Val::Time(_));
    if (numeric(a) || numeric(b))
        && let (Some(x), Some(y)) = (a.number(), b.number())
    {
        return x.partial_cmp(&y);
    }
    Some(a.text().cmp(&b.text()))
}

fn holds(c: &Cond, r: &Record) -> bool {
    match c {
        Cond::And(a, b) => holds(a, r) && holds(b, r),
        Cond::Or(a, b) => holds(a, r) || holds(b, r),
        Cond::Not(a) => !holds(a, r),
        Cond::Present(f) => r.get(f).is_some(),
        Cond::Compare { left, op, right } => {
            let (Some(a), Some(b)) = (operand(left, r), operand(right, r)) else {
                return false;
            };
            let Some(ord) = compare_vals(&a, &b) else {
                return false;
            };
            match op {
                Cmp::Eq => ord == Ordering::Equal,
                Cmp::Ne => ord != Ordering::Equal,
                Cmp::Lt => ord == Ordering::Less,
                Cmp::Le => ord != Ordering::Greater,
                Cmp::Gt => ord == Ordering::Greater,
                Cmp::Ge => ord != Ordering::Less,
            }
        }
        Cond::Regex { left, regex } => operand(left, r).is_some_and(|v| regex.is_match(&v.text())),
        Cond::Contains { left, needle } => {
            operand(left, r).is_some_and(|v| v.text().contains(needle.as_str()))
        }
        Cond::In {
            left,
            list,
            negated,
        } => {
            let Some(v) = operand(left, r) else {
                return false;
            };
            let found = list.iter().any(|l| {
                let l = match l {
                    Lit::Num(n) => Val::Num(*n),
                    Lit::Str(s) => Val::Str(s.clone()),
                };
                compare_vals(&v, &l) == Some(Ordering::Equal)
            });
            found != *negated
        }
    }
}

/// The documented natural order, ascending: non-numbers first, then numbers by value.
fn natural(a: &Val, b: &Val) -> Ordering {
    let num = |v: &Val| match v {
        Val::Num(n) => Some(*n),
        Val::Time(t) => Some(*t as f64),
        Val::Str(s) => {
            let t = s.trim();
            (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
                .then(|| t.parse::<f64>().ok())
                .flatten()
        }
    };
    match (num(a), num(b)) {
        (Some(x), Some(y)) => x
            .partial_cmp(&y)
            .unwrap_or(Ordering::Equal)
            .then_with(|| a.text().cmp(&b.text())),
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (None, None) => chunked(&a.text(), &b.text()),
    }
}

/// Compares digit runs by length then value, everything else by Unicode.
fn chunked(a: &str, b: &str) -> Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut digit = None;
        for (i, c) in s.char_indices() {
            let d = c.is_ascii_digit();
            if digit.is_some_and(|p| p != d) {
                out.push((digit == Some(true), &s[start..i]));
                start = i;
            }
            digit = Some(d);
        }
        if start < s.len() {
            out.push((digit == Some(true), &s[start..]));
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, sa), (db, sb)) in ca.iter().zip(cb.iter()) {
        let ord = if *da && *db {
            sa.len().cmp(&sb.len()).then_with(|| sa.cmp(sb))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

fn sort_records(records: &mut [Record], keys: &[(String, bool)]) {
    records.sort_by(|x, y| {
        for (k, desc) in keys {
            let ord = match (x.get(k), y.get(k)) {
                (Some(a), Some(b)) => {
                    let o = natural(a, b);
                    if *desc { o.reverse() } else { o }
                }
                // Absent values go last either way.
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (None, None) => Ordering::Equal,
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    });
}

#[derive(Default)]
struct AggState {
    count: u64,
    distinct: HashSet<String>,
    sum: f64,
    n: u64,
    min: Option<Val>,
    max: Option<Val>,
}

fn stats(records: Vec<Record>, aggs: &[Agg], by: &[GroupKey]) -> Vec<Record> {
    let mut order: Vec<(Vec<Option<Val>>, Vec<AggState>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for r in &records {
        let key: Vec<Option<Val>> = by
            .iter()
            .map(|k| match k {
                GroupKey::Bin { period_ms, .. } => match r.get("@timestamp") {
                    Some(Val::Time(t)) => Some(Val::Time(t.div_euclid(*period_ms) * period_ms)),
                    _ => None,
                },
                GroupKey::Field { field, .. } => r.get(field).cloned(),
            })
            .collect();
        let id = key
            .iter()
            .map(|v| v.as_ref().map_or("\u{0}".to_string(), Val::text))
            .collect::<Vec<_>>()
            .join("\u{1}");
        let slot = *index.entry(id).or_insert_with(|| {
            order.push((key, aggs.iter().map(|_| AggState::default()).collect()));
            order.len() - 1
        });
        for (agg, st) in aggs.iter().zip(order[slot].1.iter_mut()) {
            let v = match &agg.field {
                None => {
                    st.count += 1;
                    continue;
                }
                Some(f) => match r.get(f) {
                    Some(v) => v,
                    None => continue,
                },
            };
            st.count += 1;
            match agg.func {
                AggFunc::CountDistinct => {
                    st.distinct.insert(v.text());
                }
                AggFunc::Sum | AggFunc::Avg => {
                    if let Some(n) = v.number() {
                        st.sum += n;
                        st.n += 1;
                    }
                }
                AggFunc::Min | AggFunc::Max => {
                    let better = |cur: &Option<Val>, want: Ordering| {
                        cur.as_ref()
                            .is_none_or(|c| compare_vals(v, c) == Some(want))
                    };
                    if agg.func == AggFunc::Min && better(&st.min, Ordering::Less) {
                        st.min = Some(v.clone());
                    }
                    if agg.func == AggFunc::Max && better(&st.max, Ordering::Greater) {
                        st.max = Some(v.clone());
                    }
                }
                AggFunc::Count => {}
            }
        }
    }
    order
        .into_iter()
        .map(|(key, states)| {
            let mut r = Record {
                fields: Vec::new(),
                ptr: None,
            };
            for (k, v) in by.iter().zip(key) {
                if let Some(v) = v {
                    r.set(k.name(), v);
                }
            }
            for (agg, st) in aggs.iter().zip(states) {
                let v = match agg.func {
                    AggFunc::Count => Some(Val::Num(st.count as f64)),
                    AggFunc::CountDistinct => Some(Val::Num(st.distinct.len() as f64)),
                    AggFunc::Sum => (st.n > 0).then_some(Val::Num(st.sum)),
                    AggFunc::Avg => (st.n > 0).then(|| Val::Num(st.sum / st.n as f64)),
                    AggFunc::Min => st.min,
                    AggFunc::Max => st.max,
                };
                if let Some(v) = v {
                    r.set(&agg.name, v);
                }
            }
            r
        })
        .collect()
}

fn referenced(stages: &[Stage]) -> Vec<&str> {
    fn cond<'a>(c: &'a Cond, out: &mut Vec<&'a str>) {
        let mut op = |o: &'a Operand| {
            if let Operand::Field(f) = o {
                out.push(f.as_str());
            }
        };
        match c {
            Cond::And(a, b) | Cond::Or(a, b) => {
                cond(a, out);
                cond(b, out);
            }
            Cond::Not(a) => cond(a, out),
            Cond::Present(f) => out.push(f),
            Cond::Compare { left, right, .. } => {
                op(left);
                op(right);
            }
            Cond::Regex { left, .. } | Cond::Contains { left, .. } | Cond::In { left, .. } => {
                op(left)
            }
        }
    }
    let mut out = Vec::new();
    for s in stages {
        match s {
            Stage::Fields(p) => out.extend(p.iter().map(|p| p.field.as_str())),
            Stage::Display(f) => out.extend(f.iter().map(String::as_str)),
            Stage::Filter(c) => cond(c, &mut out),
            Stage::Parse(p) => out.push(&p.source),
            Stage::Stats { aggs, by } => {
                out.extend(aggs.iter().filter_map(|a| a.field.as_deref()));
                out.extend(by.iter().filter_map(|k| match k {
                    GroupKey::Field { field, .. } => Some(field.as_str()),
                    GroupKey::Bin { .. } => None,
                }));
            }
            Stage::Sort(k) => out.extend(k.iter().map(|(f, _)| f.as_str())),
            Stage::Limit(_) => {}
        }
    }
    out
}

/// Applies a streaming stage; false drops the record.
fn apply(stage: &Stage, r: &mut Record) -> bool {
    match stage {
        Stage::Filter(c) => holds(c, r),
        Stage::Parse(p) => {
            let text = r.get(&p.source).map(Val::text);
            if let Some(text) = text
                && let Some(caps) = p.regex.captures(&text)
            {
                let values: Vec<(String, String)> =
                    if p.regex.capture_names().flatten().next().is_some() {
                        p.names
                            .iter()
                            .filter_map(|n| {
                                caps.name(n).map(|m| (n.clone(), m.as_str().to_string()))
                            })
                            .collect()
                    } else {
                        p.names
                            .iter()
                            .zip(caps.iter().skip(1))
                            .filter_map(|(n, m)| m.map(|m| (n.clone(), m.as_str().to_string())))
                            .collect()
                    };
                for (n, v) in values {
                    r.set(&n, Val::Str(v));
                }
            }
            true
        }
        Stage::Fields(p) => {
            for proj in p {
                if let Some(alias) = &proj.alias
                    && let Some(v) = r.get(&proj.field).cloned()
                {
                    r.set(alias, v);
                }
            }
            true
        }
        _ => true,
    }
}

pub(super) fn run<'a>(
    stages: &[Stage],
    events: impl IntoIterator<Item = QueryEvent<'a>>,
) -> QueryOutput {
    let discover_json = referenced(stages).iter().any(|f| !BUILTIN.contains(f));
    let barrier = stages
        .iter()
        .position(|s| matches!(s, Stage::Stats { .. } | Stage::Sort(_) | Stage::Limit(_)))
        .unwrap_or(stages.len());
    let (streaming, rest) = stages.split_at(barrier);

    let mut statistics = QueryStatistics::default();
    let mut records = Vec::new();
    for e in events {
        statistics.records_scanned += 1.0;
        statistics.bytes_scanned += e.message.len() as f64;
        let mut r = record(&e, discover_json);
        if streaming.iter().all(|s| apply(s, &mut r)) {
            records.push(r);
        }
    }

    let has_sort_or_stats = stages
        .iter()
        .any(|s| matches!(s, Stage::Stats { .. } | Stage::Sort(_)));
    if !has_sort_or_stats {
        sort_records(&mut records, &[("@timestamp".to_string(), true)]);
    }
    let mut matched = None;
    let mut stats_columns: Option<Vec<String>> = None;
    for stage in rest {
        match stage {
            Stage::Stats { aggs, by } => {
                matched.get_or_insert(records.len());
                records = stats(records, aggs, by);
                stats_columns = Some(
                    by.iter()
                        .map(|k| k.name().to_string())
                        .chain(aggs.iter().map(|a| a.name.clone()))
                        .collect(),
                );
            }
            Stage::Sort(keys) => sort_records(&mut records, keys),
            Stage::Limit(n) => {
                matched.get_or_insert(records.len());
                records.truncate(*n);
            }
            other => records.retain_mut(|r| apply(other, r)),
        }
    }
    statistics.records_matched = matched.unwrap_or(records.len()) as f64;
    records.truncate(MAX_LIMIT);

    let display = stages.iter().rev().find_map(|s| match s {
        Stage::Display(f) => Some(f.clone()),
        _ => None,
    });
    let fields: Vec<String> = stages
        .iter()
        .filter_map(|s| match s {
            Stage::Fields(p) => Some(
                p.iter()
                    .map(|p| p.alias.clone().unwrap_or_else(|| p.field.clone())),
            ),
            _ => None,
        })
        .flatten()
        .collect();
    let is_stats = stats_columns.is_some();
    let columns = display.or(stats_columns).unwrap_or_else(|| {
        if fields.is_empty() {
            vec!["@timestamp".to_string(), "@message".to_string()]
        } else {
            fields
        }
    });

    let rows = records
        .iter()
        .map(|r| {
            let mut row: Vec<(String, String)> = Vec::new();
            for c in &columns {
                if row.iter().any(|(n, _)| n == c) {
                    continue;
                }
                if let Some(v) = r.get(c) {
                    row.push((c.clone(), v.text()));
                }
            }
            if !is_stats && let Some(p) = &r.ptr {
                row.push(("@ptr".to_string(), p.clone()));
            }
            row
        })
        .collect();
    QueryOutput { rows, statistics }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Val {
        Val::Str(x.into())
    }

    /// The sort page's ascending example, in its order.
    #[test]
    fn natural_order_matches_the_sort_page() {
        let want = [
            "!:",
            "#",
            "*%04",
            "0#",
            "5A",
            "111A",
            "2345_",
            "@",
            "@_",
            "A",
            "A9876fghj",
            "a12345hfh",
            "0",
            "01",
            "1",
            "2",
            "3",
        ];
        let mut got: Vec<Val> = want.iter().rev().map(|x| s(x)).collect();
        got.sort_by(natural);
        let got: Vec<String> = got.iter().map(Val::text).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn numbers_and_timestamps_format_as_get_query_results_does() {
        assert_eq!(format_number(3.0), "3");
        assert_eq!(format_number(150.5), "150.5");
        assert_eq!(format_number(-2.0), "-2");
        assert_eq!(format_timestamp(0), "1970-01-01 00:00:00.000");
        assert_eq!(
            format_timestamp(1_713_434_402_123),
            "2024-04-18 10:00:02.123"
        );
    }
}
