//! Events: PutLogEvents, GetLogEvents, FilterLogEvents.
//!
//! PutLogEvents also reads `berthBatch` (`{"writer": …, "batch": n}`), Berth's idempotent
//! writer extension (see `berth-control::logs::ingest`), a member no AWS client sends.

use super::*;
use berth_control::logs::{BatchId, FilterEvents, GetEvents, LogEvent};

#[derive(Deserialize)]
struct InEvent {
    timestamp: i64,
    message: String,
}

#[derive(Deserialize)]
struct InBatch {
    writer: String,
    batch: u64,
}

pub(super) async fn put_log_events(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        log_group_name: String,
        log_stream_name: String,
        log_events: Vec<InEvent>,
        berth_batch: Option<InBatch>,
    }
    let i: In = input(v)?;
    let events = i
        .log_events
        .into_iter()
        .map(|e| (e.timestamp, e.message))
        .collect();
    let batch = i.berth_batch.map(|b| BatchId {
        writer: b.writer,
        batch: b.batch,
    });
    let out = cx
        .region
        .logs
        .events_put(&i.log_group_name, &i.log_stream_name, events, batch)
        .await?;
    let r = out.rejected;
    let rejected = (!r.is_empty()).then(|| {
        object(&[
            (
                "tooNewLogEventStartIndex",
                r.too_new_start.map(|x| json!(x)),
            ),
            ("tooOldLogEventEndIndex", r.too_old_end.map(|x| json!(x))),
            ("expiredLogEventEndIndex", r.expired_end.map(|x| json!(x))),
        ])
    });
    Ok(object(&[
        // Deprecated and ignored by AWS now; old clients still read one.
        ("nextSequenceToken", Some(json!(format!("{:056}", out.seq)))),
        ("rejectedLogEventsInfo", rejected),
    ]))
}

pub(super) async fn get_log_events(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        #[serde(flatten)]
        group: GroupRef,
        log_stream_name: String,
        start_time: Option<i64>,
        end_time: Option<i64>,
        next_token: Option<String>,
        limit: Option<usize>,
        #[serde(default)]
        start_from_head: bool,
    }
    let i: In = input(v)?;
    let group = group_of(cx, i.group.log_group_name, i.group.log_group_identifier)?;
    let page = cx
        .region
        .logs
        .events_get(GetEvents {
            group,
            stream: i.log_stream_name,
            start: i.start_time,
            end: i.end_time,
            token: i.next_token,
            limit: i.limit,
            from_head: i.start_from_head,
        })
        .await?;
    let events: Vec<Value> = page
        .events
        .iter()
        .map(|e| json!({"timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time}))
        .collect();
    Ok(json!({
        "events": events,
        "nextForwardToken": page.forward_token,
        "nextBackwardToken": page.backward_token,
    }))
}

fn filtered_out(e: &LogEvent) -> Value {
    json!({
        "logStreamName": e.stream,
        "timestamp": e.timestamp,
        "message": e.message,
        "ingestionTime": e.ingestion_time,
        "eventId": e.event_id,
    })
}

pub(super) async fn filter_log_events(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        #[serde(flatten)]
        group: GroupRef,
        log_stream_names: Option<Vec<String>>,
        log_stream_name_prefix: Option<String>,
        start_time: Option<i64>,
        end_time: Option<i64>,
        #[serde(default)]
        filter_pattern: String,
        next_token: Option<String>,
        limit: Option<usize>,
    }
    let i: In = input(v)?;
    let group = group_of(cx, i.group.log_group_name, i.group.log_group_identifier)?;
    for s in i
        .log_stream_names
        .iter()
        .flatten()
        .chain(&i.log_stream_name_prefix)
    {
        berth_logs::check_log_stream_name(s).map_err(berth_control::logs::name_error)?;
    }
    let page = cx
        .region
        .logs
        .events_filter(FilterEvents {
            group,
            streams: i.log_stream_names,
            prefix: i.log_stream_name_prefix,
            start: i.start_time,
            end: i.end_time,
            pattern: i.filter_pattern,
            token: i.next_token,
            limit: i.limit,
        })
        .await?;
    let complete = page.next_token.is_none();
    let events: Vec<Value> = page.events.iter().map(filtered_out).collect();
    let searched: Vec<Value> = page
        .searched
        .iter()
        .map(|s| json!({"logStreamName": s, "searchedCompletely": complete}))
        .collect();
    Ok(with_token(
        json!({"events": events, "searchedLogStreams": searched}),
        page.next_token,
    ))
}
