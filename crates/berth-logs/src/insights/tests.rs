//! Queries over a small fixed event set, with rows checked by hand; malformed queries.

use super::*;

const T0: i64 = 1_713_434_400_000; // 2024-04-18 10:00:00.000 UTC
const LOG: &str = "123456789012:/ecs/web";

fn events() -> Vec<QueryEvent<'static>> {
    let e = |ts: i64, stream: &'static str, message: &'static str, ptr: &'static str| QueryEvent {
        timestamp_ms: ts,
        ingestion_time_ms: ts + 100,
        message,
        log_stream: stream,
        log: LOG,
        ptr: Some(ptr),
    };
    vec![
        e(
            T0,
            "web/a",
            r#"{"level":"info","latency":120,"path":"/a","user":{"id":7}}"#,
            "p1",
        ),
        e(
            T0 + 90_500,
            "web/a",
            r#"{"level":"error","latency":340,"path":"/b","user":{"id":8}}"#,
            "p2",
        ),
        e(
            T0 + 299_999,
            "web/a",
            r#"{"level":"info","latency":80,"path":"/a","tags":["x","y"]}"#,
            "p3",
        ),
        e(
            T0 + 360_000,
            "web/b",
            "[ERROR] 2024 db timeout after 5000 ms",
            "p4",
        ),
        e(T0 + 420_000, "web/b", "[INFO] 2024 request done", "p5"),
    ]
}

fn run(q: &str) -> QueryOutput {
    Query::parse(q)
        .unwrap_or_else(|e| panic!("{q}: {e}"))
        .run(events())
}

fn rows(q: &str) -> Vec<Vec<(String, String)>> {
    run(q).rows
}

fn row(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn query_fields_sort_limit() {
    assert_eq!(
        rows("fields @timestamp, @message | sort @timestamp desc | limit 2"),
        vec![
            row(&[
                ("@timestamp", "2024-04-18 10:07:00.000"),
                ("@message", "[INFO] 2024 request done"),
                ("@ptr", "p5")
            ]),
            row(&[
                ("@timestamp", "2024-04-18 10:06:00.000"),
                ("@message", "[ERROR] 2024 db timeout after 5000 ms"),
                ("@ptr", "p4")
            ]),
        ]
    );
}

#[test]
fn query_filter_json_fields_with_statistics() {
    let out = run(r#"filter level = "error" | fields path, latency"#);
    assert_eq!(
        out.rows,
        vec![row(&[("path", "/b"), ("latency", "340"), ("@ptr", "p2")])]
    );
    let bytes: usize = events().iter().map(|e| e.message.len()).sum();
    assert_eq!(
        out.statistics,
        QueryStatistics {
            records_matched: 1.0,
            records_scanned: 5.0,
            bytes_scanned: bytes as f64
        }
    );
}

#[test]
fn query_default_fields_and_newest_first() {
    assert_eq!(
        rows(r#"filter level = "info""#),
        vec![
            row(&[
                ("@timestamp", "2024-04-18 10:04:59.999"),
                (
                    "@message",
                    r#"{"level":"info","latency":80,"path":"/a","tags":["x","y"]}"#
                ),
                ("@ptr", "p3")
            ]),
            row(&[
                ("@timestamp", "2024-04-18 10:00:00.000"),
                (
                    "@message",
                    r#"{"level":"info","latency":120,"path":"/a","user":{"id":7}}"#
                ),
                ("@ptr", "p1")
            ]),
        ]
    );
}

#[test]
fn query_stats_aggregates() {
    let out = run(
        "filter ispresent(latency) | stats count(*), avg(latency), sum(latency), min(latency), max(latency), count_distinct(path)",
    );
    assert_eq!(
        out.rows,
        vec![row(&[
            ("count(*)", "3"),
            ("avg(latency)", "180"),
            ("sum(latency)", "540"),
            ("min(latency)", "80"),
            ("max(latency)", "340"),
            ("count_distinct(path)", "2"),
        ])]
    );
    assert_eq!(out.statistics.records_matched, 3.0);
}

#[test]
fn query_stats_by_bin_and_field() {
    assert_eq!(
        rows("stats count(*) by bin(5m)"),
        vec![
            row(&[("bin(5m)", "2024-04-18 10:00:00.000"), ("count(*)", "3")]),
            row(&[("bin(5m)", "2024-04-18 10:05:00.000"), ("count(*)", "2")]),
        ]
    );
    assert_eq!(
        rows(
            "filter latency > 100 | stats count(*) as n, avg(latency) as avgLatency by level | sort avgLatency desc"
        ),
        vec![
            row(&[("level", "error"), ("n", "1"), ("avgLatency", "340")]),
            row(&[("level", "info"), ("n", "1"), ("avgLatency", "120")]),
        ]
    );
    assert_eq!(
        rows("filter not ispresent(level) | stats count(*) as c by @logStream"),
        vec![row(&[("@logStream", "web/b"), ("c", "2")])]
    );
    assert_eq!(
        rows("stats max(@timestamp) as last, count(latency) by bin(1h) as hour"),
        vec![row(&[
            ("hour", "2024-04-18 10:00:00.000"),
            ("last", "2024-04-18 10:07:00.000"),
            ("count(latency)", "3")
        ])]
    );
}

#[test]
fn query_parse_glob_and_display() {
    assert_eq!(
        rows(
            r#"parse @message "[*] * *" as lvl, year, rest | filter ispresent(lvl) | display lvl, rest | sort lvl asc"#
        ),
        vec![
            row(&[
                ("lvl", "ERROR"),
                ("rest", "db timeout after 5000 ms"),
                ("@ptr", "p4")
            ]),
            row(&[("lvl", "INFO"), ("rest", "request done"), ("@ptr", "p5")]),
        ]
    );
}

#[test]
fn query_parse_regex_named_groups_and_in() {
    assert_eq!(
        rows(
            r#"parse @message /\[(?<lvl>[A-Z]+)\] (?<year>\d+)/ | filter lvl in ["ERROR", "WARN"] | fields lvl, year"#
        ),
        vec![row(&[("lvl", "ERROR"), ("year", "2024"), ("@ptr", "p4")])]
    );
    assert_eq!(
        rows(r#"parse @message /\[(?<lvl>[A-Z]+)\]/ | filter lvl not in ["ERROR"] | fields lvl"#),
        vec![row(&[("lvl", "INFO"), ("@ptr", "p5")])]
    );
}

#[test]
fn query_like_regex_substring_or() {
    assert_eq!(
        rows(r#"filter @message like /timeout/ or path like "/b" | fields @logStream"#),
        vec![
            row(&[("@logStream", "web/b"), ("@ptr", "p4")]),
            row(&[("@logStream", "web/a"), ("@ptr", "p2")]),
        ]
    );
    assert_eq!(
        rows(r#"filter @message =~ /(?i)REQUEST DONE/ | fields @ingestionTime"#),
        vec![row(&[
            ("@ingestionTime", "2024-04-18 10:07:00.100"),
            ("@ptr", "p5")
        ])]
    );
    assert_eq!(
        rows(r#"filter @message not like /\{/ and @message not like "INFO" | fields @log"#),
        vec![row(&[("@log", LOG), ("@ptr", "p4")])]
    );
}

#[test]
fn query_flattened_json_fields() {
    assert_eq!(
        rows("filter user.id = 8 | fields user.id, tags.0"),
        vec![row(&[("user.id", "8"), ("@ptr", "p2")])]
    );
    assert_eq!(
        rows(r#"filter tags.1 = "y" | fields `tags.1` as second"#),
        vec![row(&[("second", "y"), ("@ptr", "p3")])]
    );
    assert_eq!(
        rows("filter latency >= 120 and latency <= 340 | sort latency | fields latency"),
        vec![
            row(&[("latency", "120"), ("@ptr", "p1")]),
            row(&[("latency", "340"), ("@ptr", "p2")]),
        ]
    );
}

#[test]
fn query_json_field_named_at_is_shown_with_double_at() {
    let ev = QueryEvent {
        timestamp_ms: T0,
        ingestion_time_ms: T0,
        message: r#"{"@example.com": "x"}"#,
        log_stream: "s",
        log: LOG,
        ptr: None,
    };
    let out = Query::parse("fields `@@example.com`").unwrap().run([ev]);
    assert_eq!(out.rows, vec![row(&[("@@example.com", "x")])]);
}

#[test]
fn query_limit_defaults_to_10000() {
    let msgs: Vec<String> = (0..10_005).map(|i| format!("m{i}")).collect();
    let evs = msgs.iter().enumerate().map(|(i, m)| QueryEvent {
        timestamp_ms: T0 + i as i64,
        ingestion_time_ms: T0,
        message: m,
        log_stream: "s",
        log: LOG,
        ptr: None,
    });
    let out = Query::parse("fields @message").unwrap().run(evs);
    assert_eq!(out.rows.len(), MAX_LIMIT);
    assert_eq!(out.rows[0], row(&[("@message", "m10004")]));
    assert_eq!(out.statistics.records_scanned, 10_005.0);
}

#[test]
fn query_malformed_is_refused_with_location() {
    for q in [
        "",
        "bogus command",
        "fields",
        "fields a |",
        "| fields a",
        "filter x ==",
        "filter x = ",
        "filter (x = 1",
        "filter x like 5",
        "filter x not 5",
        "limit 0",
        "limit 10001",
        "limit abc",
        "stats foo(x)",
        "stats count(*) by bin(5x)",
        r#"parse @message "* *" as a"#,
        "parse @message /(x)/",
        r#"filter x = "unclosed"#,
        "sort",
        "fields a b",
        "filter x = 1 ; fields a",
    ] {
        assert!(Query::parse(q).is_err(), "{q:?} parsed");
    }
    let e = Query::parse("fields @timestamp | bogus x").unwrap_err();
    assert_eq!((e.start, e.end), (20, 25));
    assert_eq!(
        e.message,
        "unknown command: unexpected symbol found bogus at position 21"
    );
}

#[test]
fn query_default_limit_applies_only_without_a_limit_command() {
    let q = Query::parse("fields @message")
        .unwrap()
        .with_default_limit(2);
    assert_eq!(q.run(events()).rows.len(), 2);
    let q = Query::parse("fields @message | limit 4")
        .unwrap()
        .with_default_limit(2);
    assert_eq!(q.run(events()).rows.len(), 4);
}
