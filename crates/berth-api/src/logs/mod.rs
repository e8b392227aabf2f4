//! CloudWatch Logs over awsJson 1.1 (`Logs_20140328`): wire input → `berth-control::logs`
//! calls → wire output with the model's member names (camelCase, times in epoch ms).
//!
//! Inputs arrive validated against the model (lengths, ranges, enums, required members) with
//! nulls removed; the names' patterns and the rules the model cannot say are checked by the
//! domain with Logs' own messages.

use crate::route::Cx;
use berth_types::Error;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

mod events;
mod filters;
mod groups;
mod insights;
mod streams;

crate::operation::operations! {
    /// The CloudWatch Logs operations Berth implements.
    pub enum LogsOp ("logs") {
        CreateLogGroup => Write, LogGroup("logGroupName"),
            Partial("kmsKeyId is kept and shown; events are not encrypted with it");
        DeleteLogGroup => Write, LogGroup("logGroupName"), Implemented;
        DescribeLogGroups => List, LogGroup("logGroupNamePrefix"),
            Partial("this account only: accountIdentifiers and includeLinkedAccounts are ignored");
        PutRetentionPolicy => Write, LogGroup("logGroupName"), Implemented;
        DeleteRetentionPolicy => Write, LogGroup("logGroupName"), Implemented;
        CreateLogStream => Write, LogGroup("logGroupName"), Implemented;
        DeleteLogStream => Write, LogGroup("logGroupName"), Implemented;
        DescribeLogStreams => List, LogGroup("logGroupName"), Implemented;
        PutLogEvents => Write, LogStream("logGroupName", "logStreamName"),
            Partial("sequence tokens are accepted and ignored, as AWS does now; entity is ignored");
        GetLogEvents => Read, LogStream("logGroupName", "logStreamName"),
            Partial("unmask is ignored (no data protection policies)");
        FilterLogEvents => Read, LogGroup("logGroupName"),
            Partial("always interleaved; a page stops after scanning 64 MiB or 0.5 s (then short, with a nextToken); unmask is ignored");
        PutMetricFilter => Write, LogGroup("logGroupName"),
            Partial("publishes a statistic set per minute and dimensions (no percentiles); applyOnTransformedLogs, fieldSelectionCriteria and emitSystemFieldDimensions are refused");
        DescribeMetricFilters => List, LogGroup("logGroupName"), Implemented;
        DeleteMetricFilter => Write, LogGroup("logGroupName"), Implemented;
        TestMetricFilter => Read, Any, Implemented;
        TagResource => Tagging, Arns("resourceArn"), Partial("log groups");
        UntagResource => Tagging, Arns("resourceArn"), Partial("log groups");
        ListTagsForResource => List, Arns("resourceArn"), Partial("log groups");
        TagLogGroup => Tagging, LogGroup("logGroupName"), Implemented;
        UntagLogGroup => Tagging, LogGroup("logGroupName"), Implemented;
        ListTagsLogGroup => List, LogGroup("logGroupName"), Implemented;
        StartQuery => Read, LogGroups("logGroupNames"),
            Partial("the CWLI subset of berth-logs (fields, display, filter, parse, stats with bin(), sort, limit); no SQL or PPL; at most 10,000 rows");
        GetQueryResults => Read, Any, Partial("no @ptr field");
        StopQuery => Read, Any, Implemented;
        DescribeQueries => List, Any, Partial("CWLI queries only");
    }
}

/// Runs one Logs operation.
pub async fn dispatch(cx: &Cx<'_>, op: LogsOp, v: Value) -> Result<Value, Error> {
    match op {
        LogsOp::CreateLogGroup => Box::pin(groups::create_log_group(cx, v)).await,
        LogsOp::DeleteLogGroup => Box::pin(groups::delete_log_group(cx, v)).await,
        LogsOp::DescribeLogGroups => groups::describe_log_groups(cx, v),
        LogsOp::PutRetentionPolicy => Box::pin(groups::put_retention_policy(cx, v)).await,
        LogsOp::DeleteRetentionPolicy => Box::pin(groups::delete_retention_policy(cx, v)).await,
        LogsOp::CreateLogStream => Box::pin(streams::create_log_stream(cx, v)).await,
        LogsOp::DeleteLogStream => Box::pin(streams::delete_log_stream(cx, v)).await,
        LogsOp::DescribeLogStreams => streams::describe_log_streams(cx, v),
        LogsOp::PutLogEvents => Box::pin(events::put_log_events(cx, v)).await,
        LogsOp::GetLogEvents => Box::pin(events::get_log_events(cx, v)).await,
        LogsOp::FilterLogEvents => Box::pin(events::filter_log_events(cx, v)).await,
        LogsOp::PutMetricFilter => Box::pin(filters::put_metric_filter(cx, v)).await,
        LogsOp::DescribeMetricFilters => filters::describe_metric_filters(cx, v),
        LogsOp::DeleteMetricFilter => Box::pin(filters::delete_metric_filter(cx, v)).await,
        LogsOp::TestMetricFilter => filters::test_metric_filter(v),
        LogsOp::TagResource | LogsOp::UntagResource | LogsOp::ListTagsForResource => {
            Box::pin(groups::tag_resource(cx, op, v)).await
        }
        LogsOp::TagLogGroup | LogsOp::UntagLogGroup | LogsOp::ListTagsLogGroup => {
            Box::pin(groups::tag_log_group(cx, op, v)).await
        }
        LogsOp::StartQuery => Box::pin(insights::start_query(cx, v)).await,
        LogsOp::GetQueryResults => insights::get_query_results(cx, v),
        LogsOp::StopQuery => Box::pin(insights::stop_query(cx, v)).await,
        LogsOp::DescribeQueries => insights::describe_queries(cx, v),
    }
}

fn input<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| invalid(e.to_string()))
}

fn invalid(message: impl Into<String>) -> Error {
    Error::coded("InvalidParameterException", message)
}

/// The group a request names: `logGroupName` or `logGroupIdentifier` (a name or an ARN),
/// exactly one of them.
fn group_of(
    cx: &Cx<'_>,
    name: Option<String>,
    identifier: Option<String>,
) -> Result<String, Error> {
    match (name, identifier) {
        (Some(n), None) => Ok(n),
        (None, Some(i)) => cx.region.logs.group_of_identifier(&i),
        (Some(_), Some(_)) => Err(invalid(
            "LogGroup name and LogGroup identifier are mutually exclusive parameters.",
        )),
        (None, None) => Err(invalid(
            "Either logGroupName or logGroupIdentifier must be specified.",
        )),
    }
}

/// A JSON object of the members that are set (absent ones left out, as AWS does).
fn object(members: &[(&str, Option<Value>)]) -> Value {
    let mut m = Map::new();
    for (k, v) in members {
        if let Some(v) = v {
            m.insert((*k).to_string(), v.clone());
        }
    }
    Value::Object(m)
}

/// `{"nextToken": …}` merged into `out` when there is one.
fn with_token(mut out: Value, token: Option<String>) -> Value {
    if let (Some(t), Value::Object(m)) = (token, &mut out) {
        m.insert("nextToken".into(), json!(t));
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupRef {
    log_group_name: Option<String>,
    log_group_identifier: Option<String>,
}

/// The tags of the log group an ARN IAM checks names (`…:log-group:<name>[:*|:log-stream:…]`),
/// for `aws:ResourceTag` conditions; none for anything else.
pub(crate) fn tags_of_arn(region: &crate::Regional, arn: &str) -> Vec<berth_types::Tag> {
    let prefix = region.scope.arn("logs", "log-group:");
    let Some(name) = arn.strip_prefix(&prefix).and_then(|r| r.split(':').next()) else {
        return Vec::new();
    };
    region
        .logs
        .tags_list(name)
        .map(|tags| {
            tags.into_iter()
                .map(|(key, value)| berth_types::Tag { key, value })
                .collect()
        })
        .unwrap_or_default()
}
