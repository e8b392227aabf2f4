//! Unit tests of CloudWatch Logs over a real (temporary) store: token paging both ways,
//! FilterLogEvents pages, the tail chunk, idempotent writers, retention, deletes and sweeps.

use super::*;
use crate::paging::Pager;
use berth_types::{AccountId, Region};

struct Fixture {
    logs: Logs,
    store: Store,
    _dir: tempfile::TempDir,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("berth.db"))
        .unwrap()
        .in_region("us-east-1");
    let scope = Scope {
        account: AccountId::parse("000000000000").unwrap(),
        region: Region::parse("us-east-1").unwrap(),
    };
    let pager = Pager::new([3; 32]);
    let background = Arc::new(Driver::default());
    let clock = Clock::system();
    let cloudwatch = CloudWatch::new(
        scope.clone(),
        store.clone(),
        pager.clone(),
        clock,
        background.clone(),
    );
    let logs = Logs::new(scope, store.clone(), pager, clock, cloudwatch, background);
    Fixture {
        logs,
        store,
        _dir: dir,
    }
}

fn now() -> i64 {
    berth_types::Timestamp::now().0
}

async fn group_with_stream(logs: &Logs, group: &str, stream: &str) {
    logs.group_create(CreateGroup {
        name: group.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    logs.stream_create(group, stream).await.unwrap();
}

/// `n` events one ms apart from `t0`, messages `prefix-<i>`.
fn events(t0: i64, prefix: &str, range: std::ops::Range<usize>) -> Vec<(i64, String)> {
    range
        .map(|i| (t0 + i as i64, format!("{prefix}-{i}")))
        .collect()
}

fn messages(page: &EventsPage) -> Vec<String> {
    page.events.iter().map(|e| e.message.clone()).collect()
}

fn get(group: &str, stream: &str) -> GetEvents {
    GetEvents {
        group: group.into(),
        stream: stream.into(),
        ..Default::default()
    }
}

/// Forward paging from the head returns every event once, in order, and at the end the
/// token given comes back; new events then show up on the same token.
#[tokio::test]
async fn log_tokens_page_forward_to_the_same_token_at_the_end() {
    let f = fixture();
    group_with_stream(&f.logs, "g", "s").await;
    let t0 = now() - 60_000;
    for part in 0..5 {
        f.logs
            .events_put("g", "s", events(t0, "e", part * 10..part * 10 + 10), None)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut q = GetEvents {
        from_head: true,
        limit: Some(7),
        ..get("g", "s")
    };
    let last_token = loop {
        let page = f.logs.events_get(q.clone()).await.unwrap();
        if page.events.is_empty() {
            assert_eq!(
                Some(&page.forward_token),
                q.token.as_ref(),
                "same token at the end"
            );
            break page.forward_token;
        }
        assert!(page.events.len() <= 7);
        seen.extend(messages(&page));
        q.token = Some(page.forward_token);
    };
    let want: Vec<String> = (0..50).map(|i| format!("e-{i}")).collect();
    assert_eq!(seen, want);
    // More events arrive: the last forward token finds them.
    f.logs
        .events_put("g", "s", events(t0 + 100, "late", 0..3), None)
        .await
        .unwrap();
    let page = f
        .logs
        .events_get(GetEvents {
            token: Some(last_token),
            ..get("g", "s")
        })
        .await
        .unwrap();
    assert_eq!(messages(&page), vec!["late-0", "late-1", "late-2"]);
}

/// Without a token and without `startFromHead`, the latest events come (oldest first within
/// the page); backward tokens then walk to the head and repeat at its start.
#[tokio::test]
async fn log_tokens_page_backward_from_the_latest_events() {
    let f = fixture();
    group_with_stream(&f.logs, "g", "s").await;
    let t0 = now() - 60_000;
    f.logs
        .events_put("g", "s", events(t0, "e", 0..25), None)
        .await
        .unwrap();
    let page = f
        .logs
        .events_get(GetEvents {
            limit: Some(10),
            ..get("g", "s")
        })
        .await
        .unwrap();
    assert_eq!(
        messages(&page),
        (15..25).map(|i| format!("e-{i}")).collect::<Vec<_>>()
    );
    let mut pages = vec![messages(&page)];
    let mut token = page.backward_token;
    loop {
        let p = f
            .logs
            .events_get(GetEvents {
                limit: Some(10),
                token: Some(token.clone()),
                ..get("g", "s")
            })
            .await
            .unwrap();
        if p.events.is_empty() {
            assert_eq!(p.backward_token, token, "same token at the head");
            break;
        }
        pages.push(messages(&p));
        token = p.backward_token;
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(
        pages[2],
        (0..5).map(|i| format!("e-{i}")).collect::<Vec<_>>()
    );
    // A forward token of a backward page continues right after it.
    let p = f
        .logs
        .events_get(GetEvents {
            limit: Some(5),
            token: Some(token),
            ..get("g", "s")
        })
        .await
        .unwrap();
    let fwd = f
        .logs
        .events_get(GetEvents {
            limit: Some(3),
            token: Some(p.forward_token),
            ..get("g", "s")
        })
        .await
        .unwrap();
    assert_eq!(messages(&fwd), vec!["e-0", "e-1", "e-2"]);
}

/// Tokens are bound to their stream, and time ranges apply (end exclusive).
#[tokio::test]
async fn log_tokens_refuse_other_streams_and_respect_time_ranges() {
    let f = fixture();
    group_with_stream(&f.logs, "g", "a").await;
    f.logs.stream_create("g", "b").await.unwrap();
    let t0 = now() - 60_000;
    f.logs
        .events_put("g", "a", events(t0, "a", 0..10), None)
        .await
        .unwrap();
    let page = f
        .logs
        .events_get(GetEvents {
            from_head: true,
            start: Some(t0 + 2),
            end: Some(t0 + 5),
            ..get("g", "a")
        })
        .await
        .unwrap();
    assert_eq!(messages(&page), vec!["a-2", "a-3", "a-4"]);
    let e = f
        .logs
        .events_get(GetEvents {
            token: Some(page.forward_token),
            ..get("g", "b")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Coded {
                code: "InvalidParameterException",
                ..
            }
        ),
        "{e:?}"
    );
    let e = f
        .logs
        .events_get(GetEvents {
            token: Some("x/abc".into()),
            ..get("g", "a")
        })
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        Error::Coded {
            code: "InvalidParameterException",
            ..
        }
    ));
    let e = f.logs.events_get(get("g", "nope")).await.unwrap_err();
    assert_eq!(e.to_string(), "The specified log stream does not exist.");
    let e = f.logs.events_get(get("nope", "a")).await.unwrap_err();
    assert_eq!(e.to_string(), "The specified log group does not exist.");
}

/// FilterLogEvents interleaves streams by time, pages with nextToken until done, and matches
/// the pattern; event ids are unique and stable.
#[tokio::test]
async fn log_filter_pages_across_streams_in_time_order() {
    let f = fixture();
    group_with_stream(&f.logs, "g", "a").await;
    f.logs.stream_create("g", "b").await.unwrap();
    let t0 = now() - 60_000;
    let a: Vec<(i64, String)> = (0..30)
        .map(|i| {
            (
                t0 + 2 * i,
                format!("a {i} {}", if i % 3 == 0 { "ERROR" } else { "ok" }),
            )
        })
        .collect();
    let b: Vec<(i64, String)> = (0..30)
        .map(|i| (t0 + 2 * i + 1, format!("b {i} ok")))
        .collect();
    f.logs.events_put("g", "a", a, None).await.unwrap();
    f.logs.events_put("g", "b", b, None).await.unwrap();
    let mut all = Vec::new();
    let mut q = FilterEvents {
        group: "g".into(),
        limit: Some(7),
        ..Default::default()
    };
    loop {
        let page = f.logs.events_filter(q.clone()).await.unwrap();
        all.extend(page.events);
        match page.next_token {
            Some(t) => q.token = Some(t),
            None => break,
        }
    }
    assert_eq!(all.len(), 60);
    assert!(all.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
    assert_eq!(all[0].stream, "a");
    assert_eq!(all[1].stream, "b");
    let mut ids: Vec<&String> = all.iter().map(|e| &e.event_id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 60);
    let errors = f
        .logs
        .events_filter(FilterEvents {
            group: "g".into(),
            pattern: "\"ERROR\"".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(errors.events.len(), 10);
    assert!(errors.next_token.is_none());
    assert_eq!(errors.events[0].event_id, all[0].event_id);
    let only_b = f
        .logs
        .events_filter(FilterEvents {
            group: "g".into(),
            prefix: Some("b".into()),
            start: Some(t0 + 10),
            end: Some(t0 + 20),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_b.events.len(), 5);
    assert_eq!(only_b.searched, vec!["b".to_string()]);
    let e = f
        .logs
        .events_filter(FilterEvents {
            group: "g".into(),
            pattern: "{ $.a = ".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(
        e,
        Error::Coded {
            code: "InvalidParameterException",
            ..
        }
    ));
}

/// Small batches share the stream's tail chunk; a batch older than the tail's end, or a
/// large one, gets a chunk of its own; reads see every event once either way.
#[tokio::test]
async fn log_small_batches_share_a_tail_chunk() {
    let f = fixture();
    group_with_stream(&f.logs, "g", "s").await;
    let t0 = now() - 60_000;
    let mut seqs = Vec::new();
    for i in 0..5 {
        let out = f
            .logs
            .events_put("g", "s", events(t0 + 10 * i, &format!("b{i}"), 0..2), None)
            .await
            .unwrap();
        seqs.push(out.seq);
    }
    assert!(seqs.iter().all(|s| *s == seqs[0]), "{seqs:?}");
    let older = f
        .logs
        .events_put("g", "s", events(t0 - 5, "old", 0..1), None)
        .await
        .unwrap();
    assert_ne!(older.seq, seqs[0]);
    let big = vec![(t0 + 100, "x".repeat(70_000))];
    let big = f.logs.events_put("g", "s", big, None).await.unwrap();
    assert!(big.seq > older.seq);
    let page = f
        .logs
        .events_get(GetEvents {
            from_head: true,
            ..get("g", "s")
        })
        .await
        .unwrap();
    let m = messages(&page);
    assert_eq!(m.len(), 12);
    assert_eq!(m[0], "old-0");
    assert_eq!(m[1], "b0-0");
    assert!(m[11].starts_with("xxx"));
    let ingested: Vec<i64> = page.events.iter().map(|e| e.ingestion_time).collect();
    assert!(ingested.iter().all(|t| *t > 0));
    let s = f.logs.stream_describe("g", "s").unwrap();
    assert_eq!(s.first_event, Some(t0 - 5));
    assert_eq!(s.last_event, Some(t0 + 100));
    assert_eq!(s.stored_bytes, 10 * 4 + 5 + 70_000);
}

/// A batch an idempotent writer sends again is acknowledged and not stored twice.
#[tokio::test]
async fn log_idempotent_writer_batches_are_stored_once() {
    let f = fixture();
    group_with_stream(&f.logs, "g", "s").await;
    let t0 = now() - 60_000;
    let id = |n| {
        Some(BatchId {
            writer: "agent-1/c".into(),
            batch: n,
        })
    };
    let first = f
        .logs
        .events_put("g", "s", events(t0, "a", 0..3), id(1))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let again = f
        .logs
        .events_put("g", "s", events(t0, "a", 0..3), id(1))
        .await
        .unwrap();
    assert!(again.duplicate);
    f.logs
        .events_put("g", "s", events(t0 + 5, "b", 0..1), id(2))
        .await
        .unwrap();
    let page = f
        .logs
        .events_get(GetEvents {
            from_head: true,
            ..get("g", "s")
        })
        .await
        .unwrap();
    assert_eq!(messages(&page), vec!["a-0", "a-1", "a-2", "b-0"]);
}

/// Retention expires whole chunks and trims straddling ones; what stays keeps its ids; the
/// stream's counters follow.
#[tokio::test]
async fn log_retention_expires_old_events_only() {
    let f = fixture();
    group_with_stream(&f.logs, "g", "s").await;
    let day = 86_400_000;
    let t = now();
    // 3 days old, 12 h old: two chunks; then a chunk straddling the 1-day cutoff.
    f.logs
        .events_put("g", "s", events(t - 3 * day, "old", 0..3), None)
        .await
        .unwrap();
    f.logs
        .events_put(
            "g",
            "s",
            vec![
                (t - day - 1000, "edge-old".into()),
                (t - day + 60_000, "edge-new".into()),
            ],
            None,
        )
        .await
        .unwrap();
    f.logs
        .events_put("g", "s", events(t - day / 2, "new", 0..2), None)
        .await
        .unwrap();
    let before = f
        .logs
        .events_filter(FilterEvents {
            group: "g".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(before.events.len(), 7);
    let id_of_new = before
        .events
        .iter()
        .find(|e| e.message == "edge-new")
        .unwrap()
        .event_id
        .clone();
    f.logs.retention_put("g", 1).await.unwrap();
    let counts = f.logs.retention_enforce().await.unwrap();
    assert!(counts.contains(&("events expired", 4)), "{counts:?}");
    let after = f
        .logs
        .events_filter(FilterEvents {
            group: "g".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let m: Vec<&str> = after.events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(m, vec!["edge-new", "new-0", "new-1"]);
    assert_eq!(after.events[0].event_id, id_of_new);
    let s = f.logs.stream_describe("g", "s").unwrap();
    assert_eq!(s.first_event, Some(t - day + 60_000));
    assert_eq!(
        s.stored_bytes,
        ("edge-new".len() + 2 * "new-0".len()) as i64
    );
    assert_eq!(
        f.logs.group_describe("g").unwrap().stored_bytes,
        s.stored_bytes
    );
    // A second pass finds nothing more.
    let counts = f.logs.retention_enforce().await.unwrap();
    assert!(counts.contains(&("events expired", 0)), "{counts:?}");
    // Retention also drops events too old at put time (rejectedLogEventsInfo).
    let out = f
        .logs
        .events_put(
            "g",
            "s",
            vec![(t - 2 * day, "late".into()), (t, "now".into())],
            None,
        )
        .await
        .unwrap();
    assert_eq!(out.rejected.expired_end, Some(1));
}

/// Deleting a stream or a group hides its events at once; the sweeper removes its chunks;
/// a group made again under the same name starts empty.
#[tokio::test]
async fn log_deletes_hide_at_once_and_sweep_later() {
    let f = fixture();
    group_with_stream(&f.logs, "g", "s").await;
    f.logs.stream_create("g", "t").await.unwrap();
    let t0 = now() - 60_000;
    f.logs
        .events_put("g", "s", events(t0, "s", 0..3), None)
        .await
        .unwrap();
    f.logs
        .events_put("g", "t", events(t0, "t", 0..3), None)
        .await
        .unwrap();
    f.logs.stream_delete("g", "s").await.unwrap();
    f.logs.stream_create("g", "s").await.unwrap();
    let page = f
        .logs
        .events_filter(FilterEvents {
            group: "g".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.events.len(), 3, "only t's events");
    let chunks = || {
        f.store
            .read(|r| {
                r.list(
                    Kind::LogChunk,
                    &ListQuery {
                        limit: 100,
                        ..Default::default()
                    },
                )
            })
            .unwrap()
            .len()
    };
    assert_eq!(chunks(), 2);
    f.logs.retention_enforce().await.unwrap();
    assert_eq!(chunks(), 1);
    f.logs.group_delete("g").await.unwrap();
    assert_eq!(
        f.logs.stream_describe("g", "t").unwrap_err().to_string(),
        "The specified log stream does not exist."
    );
    group_with_stream(&f.logs, "g", "t").await;
    let page = f
        .logs
        .events_filter(FilterEvents {
            group: "g".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.events.is_empty());
    f.logs.retention_enforce().await.unwrap();
    assert_eq!(chunks(), 0);
}

/// The span index is rebuilt from the store when a store reset drops it.
#[tokio::test]
async fn log_reads_rebuild_the_span_index() {
    let f = fixture();
    group_with_stream(&f.logs, "g", "s").await;
    let t0 = now() - 60_000;
    f.logs
        .events_put("g", "s", events(t0, "e", 0..4), None)
        .await
        .unwrap();
    let q = FilterEvents {
        group: "g".into(),
        ..Default::default()
    };
    assert_eq!(
        f.logs.events_filter(q.clone()).await.unwrap().events.len(),
        4
    );
    berth_store::Watcher::reset(&index::IndexWatcher(f.logs.index.clone()));
    f.logs
        .events_put("g", "s", events(t0 + 10, "f", 0..2), None)
        .await
        .unwrap();
    assert_eq!(f.logs.events_filter(q).await.unwrap().events.len(), 6);
}
