//! Log streams: Create/Delete/DescribeLogStreams.

use super::*;
use berth_control::logs::{StreamFilter, StreamOrder, StreamView};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StreamRef {
    log_group_name: String,
    log_stream_name: String,
}

pub(super) async fn create_log_stream(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: StreamRef = input(v)?;
    cx.region
        .logs
        .stream_create(&i.log_group_name, &i.log_stream_name)
        .await?;
    Ok(json!({}))
}

pub(super) async fn delete_log_stream(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: StreamRef = input(v)?;
    cx.region
        .logs
        .stream_delete(&i.log_group_name, &i.log_stream_name)
        .await?;
    Ok(json!({}))
}

fn stream_out(cx: &Cx<'_>, group: &str, s: &StreamView) -> Value {
    object(&[
        ("logStreamName", Some(json!(s.name))),
        ("creationTime", Some(json!(s.created))),
        ("firstEventTimestamp", s.first_event.map(|t| json!(t))),
        ("lastEventTimestamp", s.last_event.map(|t| json!(t))),
        ("lastIngestionTime", s.last_ingestion.map(|t| json!(t))),
        (
            "arn",
            Some(json!(cx.region.logs.stream_arn(group, &s.name))),
        ),
        ("storedBytes", Some(json!(s.stored_bytes))),
    ])
}

pub(super) fn describe_log_streams(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        #[serde(flatten)]
        group: GroupRef,
        log_stream_name_prefix: Option<String>,
        order_by: Option<String>,
        #[serde(default)]
        descending: bool,
        next_token: Option<String>,
        limit: Option<usize>,
    }
    let i: In = input(v)?;
    let group = group_of(cx, i.group.log_group_name, i.group.log_group_identifier)?;
    if let Some(p) = &i.log_stream_name_prefix {
        berth_logs::check_log_stream_name(p).map_err(berth_control::logs::name_error)?;
    }
    let filter = StreamFilter {
        prefix: i.log_stream_name_prefix,
        order: match i.order_by.as_deref() {
            Some("LastEventTime") => StreamOrder::LastEventTime,
            _ => StreamOrder::Name,
        },
        descending: i.descending,
    };
    let page =
        cx.region
            .logs
            .streams_describe(&group, &filter, i.limit, i.next_token.as_deref())?;
    let streams: Vec<Value> = page
        .items
        .iter()
        .map(|s| stream_out(cx, &group, s))
        .collect();
    Ok(with_token(json!({"logStreams": streams}), page.next_token))
}
