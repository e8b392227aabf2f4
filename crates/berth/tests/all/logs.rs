//! CloudWatch Logs through `aws-sdk-cloudwatchlogs`, the aws CLI and boto3: every operation
//! Berth implements with its errors, GetLogEvents' tokens, FilterLogEvents' patterns and the
//! paging contract `aws logs tail --follow` relies on, metric filters publishing to
//! CloudWatch, Insights queries, retention, tags, IAM on log-group ARNs, and a `kill -9`.

use crate::{code, start};
use berth_testkit::aws_sdk_cloudwatchlogs::Client;
use berth_testkit::aws_sdk_cloudwatchlogs::types::{
    InputLogEvent, LogGroupClass, MetricTransformation, OrderBy, QueryStatus,
};
use berth_testkit::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, TestServer, require_program};
use serde_json::Value;
use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const HOW: &str = "scripts/test.sh installs the aws CLI and boto3 into its virtualenv";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn ev(t: i64, m: &str) -> InputLogEvent {
    InputLogEvent::builder()
        .timestamp(t)
        .message(m)
        .build()
        .unwrap()
}

async fn group_and_stream(logs: &Client, group: &str, stream: &str) {
    logs.create_log_group()
        .log_group_name(group)
        .send()
        .await
        .unwrap();
    logs.create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await
        .unwrap();
}

async fn put(logs: &Client, group: &str, stream: &str, events: Vec<InputLogEvent>) {
    logs.put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await
        .unwrap();
}

/// The error code and message of a Logs SDK error.
fn err<E: berth_testkit::aws_sdk_ecs::error::ProvideErrorMetadata>(e: &E) -> (String, String) {
    (code(e), e.message().unwrap_or("").to_string())
}

#[tokio::test]
async fn logs_groups_and_streams_with_their_errors() {
    let server = start();
    let logs = server.logs();
    logs.create_log_group()
        .log_group_name("/ecs/web")
        .log_group_class(LogGroupClass::InfrequentAccess)
        .tags("team", "a")
        .send()
        .await
        .unwrap();
    let e = logs
        .create_log_group()
        .log_group_name("/ecs/web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(&e),
        (
            "ResourceAlreadyExistsException".into(),
            "The specified log group already exists".into()
        )
    );
    let e = logs
        .create_log_group()
        .log_group_name("a:b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    assert!(err(&e).1.contains("failed to satisfy constraint"), "{e:?}");
    let e = logs
        .create_log_group()
        .log_group_name("aws/x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    let e = logs
        .create_log_group()
        .log_group_name("x".repeat(513))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    for n in ["/ecs/api", "/ecs/worker", "/lambda/f", "other"] {
        logs.create_log_group()
            .log_group_name(n)
            .send()
            .await
            .unwrap();
    }
    // Prefix, case-insensitive pattern, class, pages of `limit`.
    let d = logs
        .describe_log_groups()
        .log_group_name_prefix("/ecs/")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = d
        .log_groups()
        .iter()
        .filter_map(|g| g.log_group_name())
        .collect();
    assert_eq!(names, vec!["/ecs/api", "/ecs/web", "/ecs/worker"]);
    let web = &d.log_groups()[1];
    let arn = format!("arn:aws:logs:{REGION}:000000000000:log-group:/ecs/web");
    assert_eq!(web.arn(), Some(format!("{arn}:*").as_str()));
    assert_eq!(web.log_group_arn(), Some(arn.as_str()));
    assert_eq!(
        web.log_group_class(),
        Some(&LogGroupClass::InfrequentAccess)
    );
    assert_eq!(web.stored_bytes(), Some(0));
    assert!(web.creation_time().unwrap() > now_ms() - 60_000);
    let d = logs
        .describe_log_groups()
        .log_group_name_pattern("WOR")
        .send()
        .await
        .unwrap();
    assert_eq!(d.log_groups()[0].log_group_name(), Some("/ecs/worker"));
    let d = logs
        .describe_log_groups()
        .log_group_class(LogGroupClass::InfrequentAccess)
        .send()
        .await
        .unwrap();
    assert_eq!(d.log_groups().len(), 1);
    let e = logs
        .describe_log_groups()
        .log_group_name_prefix("/e")
        .log_group_name_pattern("e")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let p = logs
            .describe_log_groups()
            .limit(2)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        all.extend(
            p.log_groups()
                .iter()
                .filter_map(|g| g.log_group_name().map(str::to_string)),
        );
        token = p.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(
        all,
        vec!["/ecs/api", "/ecs/web", "/ecs/worker", "/lambda/f", "other"]
    );
    let e = logs
        .describe_log_groups()
        .next_token("bogus")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");

    // Retention.
    logs.put_retention_policy()
        .log_group_name("/ecs/web")
        .retention_in_days(7)
        .send()
        .await
        .unwrap();
    let e = logs
        .put_retention_policy()
        .log_group_name("/ecs/web")
        .retention_in_days(2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    assert!(err(&e).1.contains("retentionInDays"), "{e:?}");
    let e = logs
        .put_retention_policy()
        .log_group_name("nope")
        .retention_in_days(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(&e),
        (
            "ResourceNotFoundException".into(),
            "The specified log group does not exist.".into()
        )
    );
    let g = logs
        .describe_log_groups()
        .log_group_name_prefix("/ecs/web")
        .send()
        .await
        .unwrap();
    assert_eq!(g.log_groups()[0].retention_in_days(), Some(7));
    logs.delete_retention_policy()
        .log_group_name("/ecs/web")
        .send()
        .await
        .unwrap();
    let g = logs
        .describe_log_groups()
        .log_group_name_prefix("/ecs/web")
        .send()
        .await
        .unwrap();
    assert_eq!(g.log_groups()[0].retention_in_days(), None);

    // Streams.
    for s in ["b", "a", "c"] {
        logs.create_log_stream()
            .log_group_name("/ecs/api")
            .log_stream_name(s)
            .send()
            .await
            .unwrap();
    }
    let e = logs
        .create_log_stream()
        .log_group_name("/ecs/api")
        .log_stream_name("a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(&e),
        (
            "ResourceAlreadyExistsException".into(),
            "The specified log stream already exists".into()
        )
    );
    let e = logs
        .create_log_stream()
        .log_group_name("nope")
        .log_stream_name("a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
    let e = logs
        .create_log_stream()
        .log_group_name("/ecs/api")
        .log_stream_name("a:b")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    let t = now_ms();
    put(&logs, "/ecs/api", "a", vec![ev(t - 3000, "x")]).await;
    put(&logs, "/ecs/api", "b", vec![ev(t - 1000, "hello")]).await;
    put(&logs, "/ecs/api", "c", vec![ev(t - 2000, "y")]).await;
    let names = |d: &berth_testkit::aws_sdk_cloudwatchlogs::operation::describe_log_streams::DescribeLogStreamsOutput| {
        d.log_streams().iter().filter_map(|s| s.log_stream_name().map(str::to_string)).collect::<Vec<_>>()
    };
    let d = logs
        .describe_log_streams()
        .log_group_name("/ecs/api")
        .send()
        .await
        .unwrap();
    assert_eq!(names(&d), vec!["a", "b", "c"]);
    let b = &d.log_streams()[1];
    assert_eq!(b.first_event_timestamp(), Some(t - 1000));
    assert_eq!(b.last_event_timestamp(), Some(t - 1000));
    assert!(b.last_ingestion_time().unwrap() >= t - 1000);
    #[allow(deprecated)] // AWS reports 0 for streams since 2019; Berth reports what they hold.
    let stored = b.stored_bytes();
    assert_eq!(stored, Some(5));
    assert_eq!(
        b.arn(),
        Some(
            format!("arn:aws:logs:{REGION}:000000000000:log-group:/ecs/api:log-stream:b").as_str()
        )
    );
    let d = logs
        .describe_log_streams()
        .log_group_name("/ecs/api")
        .order_by(OrderBy::LastEventTime)
        .descending(true)
        .limit(2)
        .send()
        .await
        .unwrap();
    assert_eq!(names(&d), vec!["b", "c"]);
    let d2 = logs
        .describe_log_streams()
        .log_group_name("/ecs/api")
        .order_by(OrderBy::LastEventTime)
        .descending(true)
        .next_token(d.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(names(&d2), vec!["a"]);
    assert!(d2.next_token().is_none());
    let d = logs
        .describe_log_streams()
        .log_group_identifier(format!(
            "arn:aws:logs:{REGION}:000000000000:log-group:/ecs/api"
        ))
        .log_stream_name_prefix("c")
        .send()
        .await
        .unwrap();
    assert_eq!(names(&d), vec!["c"]);
    let e = logs
        .describe_log_streams()
        .log_group_name("/ecs/api")
        .log_stream_name_prefix("a")
        .order_by(OrderBy::LastEventTime)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    let e = logs
        .describe_log_streams()
        .log_group_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
    let e = logs
        .describe_log_streams()
        .log_group_name("/ecs/api")
        .limit(51)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");

    // Deletes.
    logs.delete_log_stream()
        .log_group_name("/ecs/api")
        .log_stream_name("a")
        .send()
        .await
        .unwrap();
    let e = logs
        .delete_log_stream()
        .log_group_name("/ecs/api")
        .log_stream_name("a")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(&e),
        (
            "ResourceNotFoundException".into(),
            "The specified log stream does not exist.".into()
        )
    );
    logs.delete_log_group()
        .log_group_name("/ecs/api")
        .send()
        .await
        .unwrap();
    let e = logs
        .delete_log_group()
        .log_group_name("/ecs/api")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
    let d = logs
        .describe_log_groups()
        .log_group_name_prefix("/ecs/api")
        .send()
        .await
        .unwrap();
    assert!(d.log_groups().is_empty());
}

#[tokio::test]
async fn logs_put_and_get_events_with_aws_tokens() {
    let server = start();
    let logs = server.logs();
    group_and_stream(&logs, "app", "s").await;
    let t = now_ms() - 60_000;
    for b in 0..5 {
        let events = (0..10)
            .map(|i| ev(t + b * 10 + i, &format!("line {}", b * 10 + i)))
            .collect();
        let out = logs
            .put_log_events()
            .log_group_name("app")
            .log_stream_name("s")
            .set_log_events(Some(events))
            .sequence_token("anything: tokens are ignored")
            .send()
            .await
            .unwrap();
        assert!(out.rejected_log_events_info().is_none());
        assert!(out.next_sequence_token().is_some());
    }
    // Too old, too new: dropped and reported; the rest stored.
    let out = logs
        .put_log_events()
        .log_group_name("app")
        .log_stream_name("s")
        .log_events(ev(now_ms() - 15 * 86_400_000, "ancient"))
        .log_events(ev(t + 60, "kept"))
        .log_events(ev(now_ms() + 3 * 3_600_000, "future"))
        .send()
        .await
        .unwrap();
    let r = out.rejected_log_events_info().unwrap();
    assert_eq!(r.too_old_log_event_end_index(), Some(1));
    assert_eq!(r.too_new_log_event_start_index(), Some(2));
    assert_eq!(r.expired_log_event_end_index(), None);
    // Refused batches store nothing.
    let e = logs
        .put_log_events()
        .log_group_name("app")
        .log_stream_name("s")
        .log_events(ev(t + 100, "b"))
        .log_events(ev(t + 99, "a"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(&e),
        (
            "InvalidParameterException".into(),
            "Log events in a single PutLogEvents request must be in chronological order.".into()
        )
    );
    let e = logs
        .put_log_events()
        .log_group_name("app")
        .log_stream_name("s")
        .log_events(ev(t, &"x".repeat(1_048_576)))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    let e = logs
        .put_log_events()
        .log_group_name("app")
        .log_stream_name("nope")
        .log_events(ev(t, "x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(&e),
        (
            "ResourceNotFoundException".into(),
            "The specified log stream does not exist.".into()
        )
    );
    let e = logs
        .put_log_events()
        .log_group_name("app")
        .log_stream_name("s")
        .log_events(ev(t, ""))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");

    // Forward from the head, 7 at a time, until the same token comes back.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let p = logs
            .get_log_events()
            .log_group_name("app")
            .log_stream_name("s")
            .start_from_head(true)
            .limit(7)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        let forward = p.next_forward_token().unwrap().to_string();
        assert!(forward.starts_with("f/") && p.next_backward_token().unwrap().starts_with("b/"));
        seen.extend(p.events().iter().map(|e| e.message().unwrap().to_string()));
        if token.as_deref() == Some(forward.as_str()) {
            assert!(p.events().is_empty());
            break;
        }
        token = Some(forward);
    }
    let mut want: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
    want.push("kept".into());
    assert_eq!(seen, want);
    // By default the latest events come; backward tokens page towards the head.
    let p = logs
        .get_log_events()
        .log_group_name("app")
        .log_stream_name("s")
        .limit(3)
        .send()
        .await
        .unwrap();
    let m: Vec<&str> = p.events().iter().filter_map(|e| e.message()).collect();
    assert_eq!(m, vec!["line 48", "line 49", "kept"]);
    assert!(p.events()[0].ingestion_time().unwrap() >= p.events()[0].timestamp().unwrap());
    let back = logs
        .get_log_events()
        .log_group_name("app")
        .log_stream_name("s")
        .limit(2)
        .next_token(p.next_backward_token().unwrap())
        .send()
        .await
        .unwrap();
    let m: Vec<&str> = back.events().iter().filter_map(|e| e.message()).collect();
    assert_eq!(m, vec!["line 46", "line 47"]);
    // A time range (end exclusive), and the group by ARN.
    let p = logs
        .get_log_events()
        .log_group_identifier(format!(
            "arn:aws:logs:{REGION}:000000000000:log-group:app:*"
        ))
        .log_stream_name("s")
        .start_time(t + 10)
        .end_time(t + 13)
        .start_from_head(true)
        .send()
        .await
        .unwrap();
    let m: Vec<&str> = p.events().iter().filter_map(|e| e.message()).collect();
    assert_eq!(m, vec!["line 10", "line 11", "line 12"]);
    let e = logs
        .get_log_events()
        .log_group_name("app")
        .log_stream_name("s")
        .next_token("f/not-a-token")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    let e = logs
        .get_log_events()
        .log_group_name("app")
        .log_stream_name("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
}

#[tokio::test]
async fn logs_filter_patterns_across_streams() {
    let server = start();
    let logs = server.logs();
    group_and_stream(&logs, "g", "web-1").await;
    logs.create_log_stream()
        .log_group_name("g")
        .log_stream_name("web-2")
        .send()
        .await
        .unwrap();
    logs.create_log_stream()
        .log_group_name("g")
        .log_stream_name("db")
        .send()
        .await
        .unwrap();
    let t = now_ms() - 60_000;
    put(
        &logs,
        "g",
        "web-1",
        vec![
            ev(t, r#"{"level":"error","latency":250,"path":"/a"}"#),
            ev(t + 2, "127.0.0.1 frank GET /index.html 200 1534"),
            ev(t + 4, "ERROR db timeout"),
        ],
    )
    .await;
    put(
        &logs,
        "g",
        "web-2",
        vec![
            ev(t + 1, r#"{"level":"info","latency":50,"path":"/b"}"#),
            ev(t + 3, "10.0.0.2 - GET /x 503 12"),
            ev(t + 5, "WARN slow DEBUG"),
        ],
    )
    .await;
    put(&logs, "g", "db", vec![ev(t + 6, "ERROR deadlock detected")]).await;
    let matching = |pattern: &str| {
        let logs = logs.clone();
        let pattern = pattern.to_string();
        async move {
            let out = logs
                .filter_log_events()
                .log_group_name("g")
                .filter_pattern(pattern)
                .send()
                .await
                .unwrap();
            out.events()
                .iter()
                .map(|e| e.message().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        matching("ERROR").await,
        vec!["ERROR db timeout", "ERROR deadlock detected"]
    );
    assert_eq!(matching("\"db timeout\"").await, vec!["ERROR db timeout"]);
    assert_eq!(
        matching("?WARN ?deadlock").await,
        vec!["WARN slow DEBUG", "ERROR deadlock detected"]
    );
    assert_eq!(matching("ERROR -deadlock").await, vec!["ERROR db timeout"]);
    assert_eq!(
        matching(r#"{ $.level = "error" && $.latency > 100 }"#).await,
        vec![r#"{"level":"error","latency":250,"path":"/a"}"#]
    );
    assert_eq!(
        matching("[ip, user, verb, path, status = 5*, bytes]").await,
        vec!["10.0.0.2 - GET /x 503 12"]
    );
    assert_eq!(matching("").await.len(), 7);
    for bad in ["{ $.level = ", "[a, b", "{ $.x ~~ 3 }"] {
        let e = logs
            .filter_log_events()
            .log_group_name("g")
            .filter_pattern(bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(err(&e).0, "InvalidParameterException", "{bad}: {e:?}");
    }
    // Interleaved across streams in time order, with ids; names and prefix select streams.
    let out = logs
        .filter_log_events()
        .log_group_name("g")
        .send()
        .await
        .unwrap();
    let streams: Vec<&str> = out
        .events()
        .iter()
        .filter_map(|e| e.log_stream_name())
        .collect();
    assert_eq!(
        streams,
        vec!["web-1", "web-2", "web-1", "web-2", "web-1", "web-2", "db"]
    );
    assert!(
        out.events()
            .iter()
            .all(|e| e.event_id().is_some_and(|i| !i.is_empty()))
    );
    assert!(out.next_token().is_none());
    let out = logs
        .filter_log_events()
        .log_group_name("g")
        .log_stream_name_prefix("web")
        .send()
        .await
        .unwrap();
    assert_eq!(out.events().len(), 6);
    let out = logs
        .filter_log_events()
        .log_group_name("g")
        .log_stream_names("db")
        .log_stream_names("web-2")
        .start_time(t + 3)
        .end_time(t + 5)
        .send()
        .await
        .unwrap();
    assert_eq!(out.events().len(), 2, "endTime is inclusive");
    let e = logs
        .filter_log_events()
        .log_group_name("g")
        .log_stream_names("db")
        .log_stream_name_prefix("w")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    let e = logs
        .filter_log_events()
        .log_group_name("none")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
    // Pages of `limit`, by nextToken.
    let mut got = 0;
    let mut token = None;
    loop {
        let p = logs
            .filter_log_events()
            .log_group_name("g")
            .limit(3)
            .set_next_token(token)
            .send()
            .await
            .unwrap();
        got += p.events().len();
        token = p.next_token().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(got, 7);
}

#[tokio::test]
async fn logs_metric_filters_publish_to_cloudwatch() {
    use berth_testkit::aws_sdk_cloudwatch::primitives::DateTime;
    use berth_testkit::aws_sdk_cloudwatch::types::Statistic;
    let server = start();
    let logs = server.logs();
    group_and_stream(&logs, "api", "s").await;
    let latency = MetricTransformation::builder()
        .metric_name("Latency")
        .metric_namespace("App")
        .metric_value("$.latency")
        .dimensions("Path", "$.path")
        .unit(berth_testkit::aws_sdk_cloudwatchlogs::types::StandardUnit::Milliseconds)
        .build()
        .unwrap();
    logs.put_metric_filter()
        .log_group_name("api")
        .filter_name("latency")
        .filter_pattern("{ $.latency > 0 }")
        .metric_transformations(latency)
        .send()
        .await
        .unwrap();
    let errors = MetricTransformation::builder()
        .metric_name("Errors")
        .metric_namespace("App")
        .metric_value("1")
        .default_value(0.0)
        .build()
        .unwrap();
    logs.put_metric_filter()
        .log_group_name("api")
        .filter_name("errors")
        .filter_pattern("ERROR")
        .metric_transformations(errors.clone())
        .send()
        .await
        .unwrap();
    // Refusals: a bad pattern, dimensions on a term pattern, a missing group.
    let e = logs
        .put_metric_filter()
        .log_group_name("api")
        .filter_name("bad")
        .filter_pattern("{ $.a = ")
        .metric_transformations(errors.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");
    let dims = MetricTransformation::builder()
        .metric_name("M")
        .metric_namespace("App")
        .metric_value("1")
        .dimensions("D", "$.x")
        .build()
        .unwrap();
    let e = logs
        .put_metric_filter()
        .log_group_name("api")
        .filter_name("dims")
        .filter_pattern("ERROR")
        .metric_transformations(dims)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        err(&e),
        (
            "InvalidParameterException".into(),
            "The specified filter pattern does not support dimensions".into()
        )
    );
    let e = logs
        .put_metric_filter()
        .log_group_name("none")
        .filter_name("x")
        .filter_pattern("")
        .metric_transformations(errors)
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
    let d = logs
        .describe_metric_filters()
        .log_group_name("api")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = d
        .metric_filters()
        .iter()
        .filter_map(|f| f.filter_name())
        .collect();
    assert_eq!(names, vec!["errors", "latency"]);
    let d = logs
        .describe_metric_filters()
        .metric_name("Latency")
        .metric_namespace("App")
        .send()
        .await
        .unwrap();
    assert_eq!(d.metric_filters().len(), 1);
    let t = d.metric_filters()[0].metric_transformations()[0].clone();
    assert_eq!(t.metric_value(), "$.latency");
    assert_eq!(
        t.dimensions().unwrap().get("Path").map(String::as_str),
        Some("$.path")
    );
    let g = logs
        .describe_log_groups()
        .log_group_name_prefix("api")
        .send()
        .await
        .unwrap();
    assert_eq!(g.log_groups()[0].metric_filter_count(), Some(2));

    let minute = (now_ms() - 120_000) / 60_000 * 60_000;
    put(
        &logs,
        "api",
        "s",
        vec![
            ev(minute + 1, r#"{"latency": 100, "path": "/a"}"#),
            ev(minute + 2, r#"{"latency": 300, "path": "/a"}"#),
            ev(minute + 3, "ERROR boom"),
            ev(minute + 4, "fine"),
        ],
    )
    .await;
    let stat = |name: &str, dims: Option<(&str, &str)>| {
        let cw = server.cloudwatch();
        let name = name.to_string();
        let dims = dims.map(|(k, v)| {
            berth_testkit::aws_sdk_cloudwatch::types::Dimension::builder()
                .name(k)
                .value(v)
                .build()
        });
        async move {
            let out = cw
                .get_metric_statistics()
                .namespace("App")
                .metric_name(name)
                .set_dimensions(dims.map(|d| vec![d]))
                .start_time(DateTime::from_millis(minute))
                .end_time(DateTime::from_millis(minute + 60_000))
                .period(60)
                .statistics(Statistic::Sum)
                .statistics(Statistic::SampleCount)
                .send()
                .await
                .unwrap();
            out.datapoints()
                .first()
                .map(|d| (d.sum().unwrap(), d.sample_count().unwrap()))
        }
    };
    assert_eq!(
        stat("Latency", Some(("Path", "/a"))).await,
        Some((400.0, 2.0))
    );
    // Errors: 1 for the match, the default 0 for each of the three others.
    assert_eq!(stat("Errors", None).await, Some((1.0, 4.0)));

    // TestMetricFilter.
    let out = logs
        .test_metric_filter()
        .filter_pattern("[ip, user, verb, path, status = 2*, bytes]")
        .log_event_messages("127.0.0.1 frank GET /a 200 12")
        .log_event_messages("nope")
        .log_event_messages("10.0.0.1 - GET /b 404 3")
        .send()
        .await
        .unwrap();
    assert_eq!(out.matches().len(), 1);
    let m = &out.matches()[0];
    assert_eq!(m.event_number(), 1);
    let v = m.extracted_values().unwrap();
    assert_eq!(v.get("$status").map(String::as_str), Some("200"));
    assert_eq!(v.get("$ip").map(String::as_str), Some("127.0.0.1"));
    let e = logs
        .test_metric_filter()
        .filter_pattern("{")
        .log_event_messages("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "InvalidParameterException");

    logs.delete_metric_filter()
        .log_group_name("api")
        .filter_name("errors")
        .send()
        .await
        .unwrap();
    let e = logs
        .delete_metric_filter()
        .log_group_name("api")
        .filter_name("errors")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
    let g = logs
        .describe_log_groups()
        .log_group_name_prefix("api")
        .send()
        .await
        .unwrap();
    assert_eq!(g.log_groups()[0].metric_filter_count(), Some(1));
}

#[tokio::test]
async fn logs_tags_in_both_forms() {
    let server = start();
    let logs = server.logs();
    logs.create_log_group()
        .log_group_name("t")
        .tags("a", "1")
        .send()
        .await
        .unwrap();
    let arn = format!("arn:aws:logs:{REGION}:000000000000:log-group:t");
    logs.tag_resource()
        .resource_arn(&arn)
        .tags("b", "2")
        .send()
        .await
        .unwrap();
    let tags = logs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let mut got: Vec<(String, String)> = tags
        .tags()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![("a".into(), "1".into()), ("b".into(), "2".into())]
    );
    logs.untag_resource()
        .resource_arn(&arn)
        .tag_keys("a")
        .send()
        .await
        .unwrap();
    #[allow(deprecated)]
    {
        logs.tag_log_group()
            .log_group_name("t")
            .tags("c", "3")
            .send()
            .await
            .unwrap();
        let l = logs
            .list_tags_log_group()
            .log_group_name("t")
            .send()
            .await
            .unwrap();
        assert_eq!(l.tags().unwrap().len(), 2);
        logs.untag_log_group()
            .log_group_name("t")
            .tags("b")
            .tags("c")
            .send()
            .await
            .unwrap();
        let l = logs
            .list_tags_log_group()
            .log_group_name("t")
            .send()
            .await
            .unwrap();
        assert!(l.tags().is_none_or(|t| t.is_empty()));
        let e = logs
            .list_tags_log_group()
            .log_group_name("none")
            .send()
            .await
            .unwrap_err();
        assert_eq!(err(&e).0, "ResourceNotFoundException");
    }
    let e = logs
        .tag_resource()
        .resource_arn(format!("arn:aws:logs:{REGION}:000000000000:log-group:none"))
        .tags("a", "1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
    let mut many = logs.tag_resource().resource_arn(&arn);
    for i in 0..50 {
        many = many.tags(format!("k{i}"), "v");
    }
    many.send().await.unwrap();
    let e = logs
        .tag_resource()
        .resource_arn(&arn)
        .tags("one-more", "v")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "TooManyTagsException");
}

/// Polls GetQueryResults until the query is no longer running.
async fn query_done(
    logs: &Client,
    id: &str,
) -> berth_testkit::aws_sdk_cloudwatchlogs::operation::get_query_results::GetQueryResultsOutput {
    let deadline = berth_testkit::Deadline::after(Duration::from_secs(30));
    loop {
        let r = logs.get_query_results().query_id(id).send().await.unwrap();
        if r.status() != Some(&QueryStatus::Running) && r.status() != Some(&QueryStatus::Scheduled)
        {
            return r;
        }
        deadline.next("the query to finish").await;
    }
}

#[tokio::test]
async fn logs_insights_queries() {
    let server = start();
    let logs = server.logs();
    group_and_stream(&logs, "q", "s").await;
    let t0 = (now_ms() - 3_600_000) / 300_000 * 300_000;
    let mut events = Vec::new();
    for i in 0..20 {
        let level = if i % 4 == 0 { "error" } else { "info" };
        events.push(ev(
            t0 + i * 30_000,
            &format!(r#"{{"level":"{level}","latency":{}}}"#, i * 10),
        ));
    }
    put(&logs, "q", "s", events).await;
    let start_s = t0 / 1000;
    let end_s = start_s + 3600;
    let id = logs
        .start_query()
        .log_group_name("q")
        .start_time(start_s)
        .end_time(end_s)
        .query_string(
            "filter level = \"error\" | stats count(*) as n, avg(latency) as avg by bin(5m)",
        )
        .send()
        .await
        .unwrap()
        .query_id()
        .unwrap()
        .to_string();
    let r = query_done(&logs, &id).await;
    assert_eq!(r.status(), Some(&QueryStatus::Complete));
    let rows: Vec<HashMap<&str, &str>> = r
        .results()
        .iter()
        .map(|row| {
            row.iter()
                .map(|f| (f.field().unwrap(), f.value().unwrap()))
                .collect()
        })
        .collect();
    // Errors at i = 0, 4, 8, 12, 16: minutes 0, 2, 4, 6, 8 → bins 0 (0, 4, 8) and 5 (12, 16).
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0]["n"], "3");
    assert_eq!(rows[0]["avg"], "40");
    assert_eq!(rows[1]["n"], "2");
    let stats = r.statistics().unwrap();
    assert_eq!(stats.records_scanned(), 20.0);
    assert_eq!(stats.records_matched(), 5.0);
    // fields / sort / limit, and StartQuery's limit.
    let id2 = logs
        .start_query()
        .log_group_names("q")
        .start_time(start_s)
        .end_time(end_s)
        .query_string("fields @timestamp, @message, latency | sort latency desc")
        .limit(3)
        .send()
        .await
        .unwrap()
        .query_id()
        .unwrap()
        .to_string();
    let r = query_done(&logs, &id2).await;
    assert_eq!(r.results().len(), 3);
    let first: HashMap<&str, &str> = r.results()[0]
        .iter()
        .map(|f| (f.field().unwrap(), f.value().unwrap()))
        .collect();
    assert_eq!(first["latency"], "190");
    // A finished query cannot be stopped; DescribeQueries lists both, newest first.
    let stop = logs.stop_query().query_id(&id).send().await.unwrap();
    assert!(!stop.success());
    let d = logs
        .describe_queries()
        .log_group_name("q")
        .send()
        .await
        .unwrap();
    let ids: Vec<&str> = d.queries().iter().filter_map(|q| q.query_id()).collect();
    assert_eq!(ids, vec![id2.as_str(), id.as_str()]);
    assert_eq!(d.queries()[0].status(), Some(&QueryStatus::Complete));
    // Errors.
    let e = logs
        .start_query()
        .log_group_name("q")
        .start_time(start_s)
        .end_time(end_s)
        .query_string("stats nonsense(")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "MalformedQueryException");
    let e = logs
        .start_query()
        .log_group_name("none")
        .start_time(start_s)
        .end_time(end_s)
        .query_string("fields @message")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
    let e = logs
        .get_query_results()
        .query_id("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
    let e = logs.stop_query().query_id("nope").send().await.unwrap_err();
    assert_eq!(err(&e).0, "ResourceNotFoundException");
}

#[tokio::test]
async fn logs_retention_task_expires_events() {
    let server = start();
    let logs = server.logs();
    group_and_stream(&logs, "r", "s").await;
    let day = 86_400_000;
    let now = now_ms();
    put(
        &logs,
        "r",
        "s",
        (0..3)
            .map(|i| ev(now - 3 * day + i, &format!("old {i}")))
            .collect(),
    )
    .await;
    put(&logs, "r", "s", vec![ev(now - 1000, "new")]).await;
    logs.put_retention_policy()
        .log_group_name("r")
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    let status = server.activate("log-retention").await;
    assert!(status.to_string().contains("events expired"), "{status}");
    let out = logs
        .filter_log_events()
        .log_group_name("r")
        .send()
        .await
        .unwrap();
    let m: Vec<&str> = out.events().iter().filter_map(|e| e.message()).collect();
    assert_eq!(m, vec!["new"]);
    let s = logs
        .describe_log_streams()
        .log_group_name("r")
        .send()
        .await
        .unwrap();
    assert_eq!(s.log_streams()[0].first_event_timestamp(), Some(now - 1000));
    #[allow(deprecated)]
    let stored = s.log_streams()[0].stored_bytes();
    assert_eq!(stored, Some(3));
}

#[tokio::test]
async fn logs_events_survive_kill9() {
    let mut server = start();
    let logs = server.logs();
    group_and_stream(&logs, "k", "s").await;
    let t = now_ms() - 10_000;
    put(
        &logs,
        "k",
        "s",
        (0..100).map(|i| ev(t + i, &format!("e{i}"))).collect(),
    )
    .await;
    server.kill9();
    server.restart();
    let logs = server.logs();
    let p = logs
        .get_log_events()
        .log_group_name("k")
        .log_stream_name("s")
        .start_from_head(true)
        .send()
        .await
        .unwrap();
    assert_eq!(p.events().len(), 100);
    assert_eq!(p.events()[99].message(), Some("e99"));
}

#[tokio::test]
async fn logs_iam_checks_log_group_and_stream_arns() {
    let server = start();
    let logs = server.logs();
    group_and_stream(&logs, "/app/web", "s").await;
    group_and_stream(&logs, "/other", "s").await;
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Action":["logs:PutLogEvents","logs:GetLogEvents"],"Resource":"arn:aws:logs:{REGION}:000000000000:log-group:/app/*:log-stream:*"}},
        {{"Effect":"Allow","Action":["logs:FilterLogEvents","logs:DescribeLogStreams"],"Resource":"arn:aws:logs:{REGION}:000000000000:log-group:/app/*:*"}}]}}"#
    );
    let iam = server.iam();
    iam.create_user().user_name("writer").send().await.unwrap();
    iam.put_user_policy()
        .user_name("writer")
        .policy_name("logs")
        .policy_document(policy)
        .send()
        .await
        .unwrap();
    let key = iam
        .create_access_key()
        .user_name("writer")
        .send()
        .await
        .unwrap();
    let key = key.access_key().unwrap();
    let user = Client::new(&server.sdk_config_with(key.access_key_id(), key.secret_access_key()));
    let t = now_ms();
    user.put_log_events()
        .log_group_name("/app/web")
        .log_stream_name("s")
        .log_events(ev(t, "ok"))
        .send()
        .await
        .unwrap();
    user.filter_log_events()
        .log_group_name("/app/web")
        .send()
        .await
        .unwrap();
    user.describe_log_streams()
        .log_group_name("/app/web")
        .send()
        .await
        .unwrap();
    let e = user
        .put_log_events()
        .log_group_name("/other")
        .log_stream_name("s")
        .log_events(ev(t, "no"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "AccessDeniedException");
    let e = user
        .filter_log_events()
        .log_group_name("/other")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "AccessDeniedException");
    let e = user
        .create_log_group()
        .log_group_name("/app/new")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err(&e).0, "AccessDeniedException");
}

/// `aws logs …` with the aws CLI (awsJson 1.1 from botocore).
fn aws(server: &TestServer, args: &[&str]) -> Value {
    let out = Command::new(require_program("aws", HOW))
        .arg("logs")
        .args(args)
        .args([
            "--endpoint-url",
            &server.endpoint,
            "--region",
            REGION,
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "aws logs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[tokio::test]
async fn logs_with_the_aws_cli() {
    let server = start();
    aws(
        &server,
        &["create-log-group", "--log-group-name", "/cli/app"],
    );
    aws(
        &server,
        &[
            "create-log-stream",
            "--log-group-name",
            "/cli/app",
            "--log-stream-name",
            "s",
        ],
    );
    let t = now_ms();
    let events = format!(
        r#"[{{"timestamp":{t},"message":"INFO start"}},{{"timestamp":{},"message":"ERROR failed"}},{{"timestamp":{},"message":"INFO done"}}]"#,
        t + 1,
        t + 2
    );
    aws(
        &server,
        &[
            "put-log-events",
            "--log-group-name",
            "/cli/app",
            "--log-stream-name",
            "s",
            "--log-events",
            &events,
        ],
    );
    let got = aws(
        &server,
        &[
            "get-log-events",
            "--log-group-name",
            "/cli/app",
            "--log-stream-name",
            "s",
            "--start-from-head",
        ],
    );
    let m: Vec<&str> = got["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(m, vec!["INFO start", "ERROR failed", "INFO done"]);
    let f = aws(
        &server,
        &[
            "filter-log-events",
            "--log-group-name",
            "/cli/app",
            "--filter-pattern",
            "\"ERROR\"",
        ],
    );
    let f = f["events"].as_array().unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["logStreamName"], "s");
    let g = aws(
        &server,
        &["describe-log-groups", "--log-group-name-prefix", "/cli"],
    );
    assert_eq!(g["logGroups"][0]["storedBytes"], 31);
    aws(
        &server,
        &[
            "put-retention-policy",
            "--log-group-name",
            "/cli/app",
            "--retention-in-days",
            "30",
        ],
    );
    let s = aws(
        &server,
        &["describe-log-streams", "--log-group-name", "/cli/app"],
    );
    assert_eq!(s["logStreams"][0]["lastEventTimestamp"], t + 2);
    // The CLI pages FilterLogEvents by itself (nextToken) with --max-items / --page-size.
    let paged = aws(
        &server,
        &[
            "filter-log-events",
            "--log-group-name",
            "/cli/app",
            "--page-size",
            "1",
        ],
    );
    assert_eq!(paged["events"].as_array().unwrap().len(), 3);
    let out = Command::new(require_program("aws", HOW))
        .args(["logs", "create-log-group", "--log-group-name", "/cli/app"])
        .args(["--endpoint-url", &server.endpoint, "--region", REGION])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ResourceAlreadyExistsException"));
}

/// The paging contract `aws logs tail --follow` relies on (AWS CLI v2's `tail` is not
/// installable here): FilterLogEvents from `startTime`, every page until no `nextToken`,
/// then again from the last timestamp seen, dropping events whose `eventId` was seen — while
/// a writer keeps putting events, several per millisecond. boto3 drives it.
#[tokio::test]
async fn logs_tail_follow_contract_with_boto3() {
    let server = start();
    let python = require_program("python3", HOW);
    let venv_python = std::path::Path::new(&require_program("aws", HOW))
        .parent()
        .unwrap()
        .join("python3");
    let python = if venv_python.exists() {
        venv_python
    } else {
        python
    };
    let script = r#"
import boto3, sys, threading, time
endpoint = sys.argv[1]
logs = boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1")
logs.create_log_group(logGroupName="tail")
for s in ("a", "b"):
    logs.create_log_stream(logGroupName="tail", logStreamName=s)
TOTAL = 400
start = int(time.time() * 1000) - 1000

def writer():
    w = boto3.client("logs", endpoint_url=endpoint, region_name="us-east-1")
    n = 0
    while n < TOTAL:
        t = int(time.time() * 1000)
        for s in ("a", "b"):
            # Five events in the same millisecond per stream.
            w.put_log_events(logGroupName="tail", logStreamName=s,
                logEvents=[{"timestamp": t, "message": "%s %d" % (s, n + i)} for i in range(5)])
        n += 10
        time.sleep(0.01)

threading.Thread(target=writer).start()
seen, order, since = set(), [], start
deadline = time.time() + 60
while len(seen) < TOTAL and time.time() < deadline:
    paginator = logs.get_paginator("filter_log_events")
    for page in paginator.paginate(logGroupName="tail", startTime=since, interleaved=True):
        for e in page["events"]:
            if e["eventId"] in seen:
                continue
            seen.add(e["eventId"])
            order.append((e["timestamp"], e["message"]))
            since = max(since, e["timestamp"])
    time.sleep(0.05)
messages = [m for _, m in order]
assert len(messages) == TOTAL, (len(messages), TOTAL)
assert len(set(messages)) == TOTAL, "a message came twice"
assert [t for t, _ in order] == sorted(t for t, _ in order), "out of time order"
for s in ("a", "b"):
    mine = [int(m.split()[1]) for m in messages if m.startswith(s + " ")]
    assert mine == sorted(mine), "a stream's events out of order"
print("ok", len(messages))
"#;
    let out = Command::new(python)
        .args(["-c", script, &server.endpoint])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok 400"));
}

// ---- The agent's `awslogs` driver, end to end on Docker ----

mod docker {
    use super::*;
    use crate::docker_e2e::{AgentProcess, cluster_and_images, require_docker_engine, wait_task};
    use berth_testkit::aws_sdk_ecs::types::{ContainerDefinition, LogConfiguration, LogDriver};

    /// A container definition printing with `script` (busybox sh), logging with `awslogs` to
    /// group `group` under prefix `app`, with `extra` options.
    fn printer(
        image: &str,
        name: &str,
        script: &str,
        group: &str,
        extra: &[(&str, &str)],
    ) -> ContainerDefinition {
        let mut log = LogConfiguration::builder()
            .log_driver(LogDriver::Awslogs)
            .options("awslogs-group", group)
            .options("awslogs-region", REGION)
            .options("awslogs-stream-prefix", "app");
        for (k, v) in extra {
            log = log.options(*k, *v);
        }
        ContainerDefinition::builder()
            .name(name)
            .image(image)
            .memory(32)
            .command("/bin/sh")
            .command("-c")
            .command(script)
            .stop_timeout(1)
            .log_configuration(log.build().unwrap())
            .build()
    }

    async fn run(ecs: &berth_testkit::aws_sdk_ecs::Client, family: &str) -> String {
        let out = ecs
            .run_task()
            .cluster("e2e")
            .task_definition(family)
            .send()
            .await
            .unwrap();
        assert!(out.failures().is_empty(), "{:?}", out.failures());
        out.tasks()[0].task_arn().unwrap().to_string()
    }

    fn task_id(arn: &str) -> &str {
        arn.rsplit('/').next().unwrap()
    }

    /// Every event of a stream, forward from the head (following tokens to the end).
    async fn all_events(logs: &Client, group: &str, stream: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let p = match logs
                .get_log_events()
                .log_group_name(group)
                .log_stream_name(stream)
                .start_from_head(true)
                .set_next_token(token.clone())
                .send()
                .await
            {
                Ok(p) => p,
                Err(_) => return out,
            };
            out.extend(
                p.events()
                    .iter()
                    .filter_map(|e| e.message().map(str::to_string)),
            );
            let next = p.next_forward_token().map(str::to_string);
            if next == token {
                return out;
            }
            token = next;
        }
    }

    /// Waits (bounded) until the task's containers are gone: the agent removes a container
    /// only once everything it printed is shipped.
    async fn wait_removed(task: &str) {
        let filter = format!("label=com.amazonaws.ecs.task-arn={task}");
        let deadline = berth_testkit::Deadline::after(Duration::from_secs(30));
        loop {
            let out = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
                .unwrap();
            if out.stdout.is_empty() {
                return;
            }
            deadline.next("the shipped container removed").await;
        }
    }

    /// Waits until the stream holds `n` events (bounded); them.
    async fn wait_events(logs: &Client, group: &str, stream: &str, n: usize) -> Vec<String> {
        let deadline = berth_testkit::Deadline::after(Duration::from_secs(90))
            .every(Duration::from_millis(500));
        loop {
            let got = all_events(logs, group, stream).await;
            if got.len() >= n {
                return got;
            }
            deadline
                .next(format_args!("{n} events in {stream} (have {})", got.len()))
                .await;
        }
    }

    /// 10,000 numbered lines (every thousandth an ERROR) reach the stream ECS names, in order:
    /// `aws logs get-log-events` and `filter-log-events '"ERROR"'` see exactly them; the
    /// stopped container's reason names the stream.
    #[tokio::test]
    async fn awslogs_task_ships_ten_thousand_lines_in_order() {
        require_docker_engine();
        let server = start();
        let image = cluster_and_images(&server, "logs/app", &[("1", "x\n")])
            .await
            .remove(0);
        let logs = server.logs();
        logs.create_log_group()
            .log_group_name("/ecs/numbers")
            .send()
            .await
            .unwrap();
        let script = r#"i=0; while [ $i -lt 10000 ]; do if [ $((i % 1000)) -eq 0 ]; then echo "ERROR line $i"; else echo "line $i"; fi; i=$((i+1)); done"#;
        let ecs = server.ecs();
        ecs.register_task_definition()
            .family("numbers")
            .container_definitions(printer(&image, "counter", script, "/ecs/numbers", &[]))
            .send()
            .await
            .unwrap();
        let state = tempfile::tempdir().unwrap();
        let _agent = AgentProcess::start_registered(&server, state.path()).await;
        let task = run(&ecs, "numbers").await;
        let stream = format!("app/counter/{}", task_id(&task));
        let t = wait_task(&ecs, "e2e", &task, "STOPPED", |t| {
            t.last_status() == Some("STOPPED")
        })
        .await;
        let got = wait_events(&logs, "/ecs/numbers", &stream, 10_000).await;
        let want: Vec<String> = (0..10_000)
            .map(|i| {
                if i % 1000 == 0 {
                    format!("ERROR line {i}")
                } else {
                    format!("line {i}")
                }
            })
            .collect();
        assert_eq!(got.len(), 10_000);
        assert!(got == want, "lines out of order or altered");
        let reason = t.containers()[0].reason().unwrap_or_default().to_string();
        assert!(
            reason.contains("/ecs/numbers") && reason.contains(&stream),
            "{reason}"
        );
        // The aws CLI sees the same.
        let g = aws(
            &server,
            &[
                "get-log-events",
                "--log-group-name",
                "/ecs/numbers",
                "--log-stream-name",
                &stream,
                "--start-from-head",
            ],
        );
        let cli: Vec<&str> = g["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        assert_eq!(cli.len(), 10_000);
        assert_eq!(cli[9_999], "line 9999");
        let f = aws(
            &server,
            &[
                "filter-log-events",
                "--log-group-name",
                "/ecs/numbers",
                "--filter-pattern",
                "\"ERROR\"",
            ],
        );
        let errors: Vec<&str> = f["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["message"].as_str().unwrap())
            .collect();
        let want_errors: Vec<String> = (0..10)
            .map(|i| format!("ERROR line {}", i * 1000))
            .collect();
        assert_eq!(errors, want_errors);
        // `berth logs` prints them as `aws logs tail` would: `<time> <stream> <message>`.
        let berth_logs = |extra: &[&str]| {
            let out = Command::new(env!("CARGO_BIN_EXE_berth"))
                .args(["logs", "e2e", task_id(&task), "--since", "1h", "--data-dir"])
                .arg(&server.data_dir)
                .args(extra)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let printed = berth_logs(&[]);
        let lines: Vec<&str> = printed.lines().collect();
        assert_eq!(lines.len(), 10_000);
        assert!(
            lines[0].ends_with(&format!(" {stream} ERROR line 0")),
            "{}",
            lines[0]
        );
        assert!(
            lines[9_999].ends_with(&format!(" {stream} line 9999")),
            "{}",
            lines[9_999]
        );
        let printed = berth_logs(&["--filter-pattern", "\"ERROR\""]);
        let messages: Vec<&str> = printed
            .lines()
            .map(|l| l.split_once(&format!(" {stream} ")).unwrap().1)
            .collect();
        assert_eq!(messages, want_errors);
        // Shipped, the container is removed.
        wait_removed(&task).await;
    }

    /// The agent is `kill -9`ed while a container prints; a new one resumes from its
    /// checkpoint: no line missing, none twice. `docker logs` shows the output meanwhile.
    #[tokio::test]
    async fn awslogs_agent_kill9_neither_loses_nor_repeats_lines() {
        require_docker_engine();
        let server = start();
        let image = cluster_and_images(&server, "logs/slow", &[("1", "x\n")])
            .await
            .remove(0);
        let logs = server.logs();
        logs.create_log_group()
            .log_group_name("/ecs/slow")
            .send()
            .await
            .unwrap();
        // About 3,000 lines over a few seconds.
        let script = r#"i=0; while [ $i -lt 3000 ]; do echo "line $i"; i=$((i+1)); if [ $((i % 20)) -eq 0 ]; then sleep 0.03; fi; done"#;
        let ecs = server.ecs();
        ecs.register_task_definition()
            .family("slow")
            .container_definitions(printer(&image, "slow", script, "/ecs/slow", &[]))
            .send()
            .await
            .unwrap();
        let state = tempfile::tempdir().unwrap();
        let mut agent = AgentProcess::start_registered(&server, state.path()).await;
        let task = run(&ecs, "slow").await;
        let stream = format!("app/slow/{}", task_id(&task));
        // Some lines shipped, then the agent dies mid-stream.
        let deadline = berth_testkit::Deadline::after(Duration::from_secs(60));
        while all_events(&logs, "/ecs/slow", &stream).await.len() < 200 {
            deadline.next("the first lines shipped").await;
        }
        agent.kill();
        let filter = format!("label=com.amazonaws.ecs.task-arn={task}");
        let id = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&id.stdout).trim().to_string();
        let local = Command::new("docker").args(["logs", &id]).output().unwrap();
        assert!(
            String::from_utf8_lossy(&local.stdout).starts_with("line 0\nline 1\n"),
            "docker logs works: {id:?} {local:?}"
        );
        let _agent = AgentProcess::spawn(&server, state.path(), &[]);
        wait_task(&ecs, "e2e", &task, "STOPPED", |t| {
            t.last_status() == Some("STOPPED")
        })
        .await;
        let got = wait_events(&logs, "/ecs/slow", &stream, 3_000).await;
        // Once the container is removed its shipping is over: nothing can arrive after.
        wait_removed(&task).await;
        let got_again = all_events(&logs, "/ecs/slow", &stream).await;
        assert_eq!(got.len(), got_again.len(), "nothing more arrives");
        let want: Vec<String> = (0..3_000).map(|i| format!("line {i}")).collect();
        assert!(
            got_again == want,
            "{} lines, first difference at {:?}",
            got_again.len(),
            got_again.iter().zip(&want).position(|(a, b)| a != b)
        );
    }

    /// A task that exits at once still has its last line delivered; a stack trace arrives as
    /// one event; `awslogs-create-group` creates the group with the execution role's
    /// credentials; a driver the agent lacks fails placement with a reason naming it.
    #[tokio::test]
    async fn awslogs_exit_at_once_multiline_and_create_group() {
        require_docker_engine();
        let server = start();
        let ep = server.endpoint.clone();
        let image = cluster_and_images(&server, "logs/misc", &[("1", "x\n")])
            .await
            .remove(0);
        let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
        let grant = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:PutLogEvents"],"Resource":"*"}]}"#;
        let calls: [&[(&str, &str)]; 3] = [
            &[
                ("Action", "CreateRole"),
                ("RoleName", "logs-exec"),
                ("AssumeRolePolicyDocument", trust),
            ],
            &[
                ("Action", "PutRolePolicy"),
                ("RoleName", "logs-exec"),
                ("PolicyName", "logs"),
                ("PolicyDocument", grant),
            ],
            &[
                ("Action", "AttachRolePolicy"),
                ("RoleName", "logs-exec"),
                (
                    "PolicyArn",
                    "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
                ),
            ],
        ];
        for params in calls {
            let (st, body) = crate::iam(&ep, params).await;
            assert_eq!(st, 200, "{body}");
        }
        let ecs = server.ecs();
        ecs.register_task_definition()
            .family("once")
            .execution_role_arn("arn:aws:iam::000000000000:role/logs-exec")
            .container_definitions(printer(
                &image,
                "once",
                "echo 'my last words'",
                "/ecs/created",
                &[("awslogs-create-group", "true")],
            ))
            .send()
            .await
            .unwrap();
        let trace = r#"echo '2024-04-18 10:00:00 ERROR Unhandled exception'
echo 'java.lang.IllegalStateException: boom'
echo '	at com.example.Service.run(Service.java:42)'
echo '2024-04-18 10:00:01 INFO recovered'"#;
        ecs.register_task_definition()
            .family("trace")
            .execution_role_arn("arn:aws:iam::000000000000:role/logs-exec")
            .container_definitions(printer(
                &image,
                "trace",
                trace,
                "/ecs/created",
                &[
                    ("awslogs-create-group", "true"),
                    ("awslogs-multiline-pattern", r"^\d{4}-\d{2}-\d{2}"),
                ],
            ))
            .send()
            .await
            .unwrap();
        let state = tempfile::tempdir().unwrap();
        let _agent = AgentProcess::start_registered(&server, state.path()).await;
        let once = run(&ecs, "once").await;
        let trace_task = run(&ecs, "trace").await;
        let logs = server.logs();
        let got = wait_events(
            &logs,
            "/ecs/created",
            &format!("app/once/{}", task_id(&once)),
            1,
        )
        .await;
        assert_eq!(got, vec!["my last words"]);
        let got = wait_events(
            &logs,
            "/ecs/created",
            &format!("app/trace/{}", task_id(&trace_task)),
            2,
        )
        .await;
        assert_eq!(
            got,
            vec![
                "2024-04-18 10:00:00 ERROR Unhandled exception\njava.lang.IllegalStateException: boom\n\tat com.example.Service.run(Service.java:42)\n",
                "2024-04-18 10:00:01 INFO recovered\n",
            ]
        );
        // A driver the agent does not advertise: placement says which.
        ecs.register_task_definition()
            .family("splunk")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("x")
                    .image(&image)
                    .memory(32)
                    .log_configuration(
                        LogConfiguration::builder()
                            .log_driver(LogDriver::Splunk)
                            .build()
                            .unwrap(),
                    )
                    .build(),
            )
            .send()
            .await
            .unwrap();
        let out = ecs
            .run_task()
            .cluster("e2e")
            .task_definition("splunk")
            .send()
            .await
            .unwrap();
        let f = &out.failures()[0];
        assert_eq!(f.reason(), Some("ATTRIBUTE"));
        assert!(f.detail().unwrap_or_default().contains("splunk"), "{f:?}");
    }
}
