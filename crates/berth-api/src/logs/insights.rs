//! Logs Insights: StartQuery, GetQueryResults, StopQuery, DescribeQueries (the CWLI query
//! language only).

use super::*;
use berth_control::logs::{QueryInfo, QueryStatus, StartQuery};

pub(super) async fn start_query(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        query_language: Option<String>,
        log_group_name: Option<String>,
        log_group_names: Option<Vec<String>>,
        log_group_identifiers: Option<Vec<String>>,
        start_time: i64,
        end_time: i64,
        query_string: String,
        limit: Option<usize>,
    }
    let i: In = input(v)?;
    if i.query_language.as_deref().is_some_and(|l| l != "CWLI") {
        return Err(invalid(
            "Berth runs queries in the CWLI query language only.",
        ));
    }
    let given = [
        i.log_group_name.is_some(),
        i.log_group_names.is_some(),
        i.log_group_identifiers.is_some(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        return Err(invalid(
            "Only one of logGroupName, logGroupNames and logGroupIdentifiers may be specified.",
        ));
    }
    let mut groups: Vec<String> = i.log_group_name.into_iter().collect();
    groups.extend(i.log_group_names.unwrap_or_default());
    for id in i.log_group_identifiers.unwrap_or_default() {
        groups.push(cx.region.logs.group_of_identifier(&id)?);
    }
    let id = cx
        .region
        .logs
        .query_start(StartQuery {
            groups,
            start_s: i.start_time,
            end_s: i.end_time,
            query: i.query_string,
            limit: i.limit,
        })
        .await?;
    Ok(json!({ "queryId": id }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryRef {
    query_id: String,
}

pub(super) fn get_query_results(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: QueryRef = input(v)?;
    let r = cx.region.logs.query_results(&i.query_id)?;
    let rows: Vec<Value> = r
        .rows
        .iter()
        .map(|row| {
            Value::Array(
                row.iter()
                    .map(|(f, v)| json!({"field": f, "value": v}))
                    .collect(),
            )
        })
        .collect();
    Ok(json!({
        "queryLanguage": "CWLI",
        "results": rows,
        "statistics": {
            "recordsMatched": r.records_matched,
            "recordsScanned": r.records_scanned,
            "bytesScanned": r.bytes_scanned,
        },
        "status": r.status.as_str(),
    }))
}

pub(super) async fn stop_query(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: QueryRef = input(v)?;
    let stopped = cx.region.logs.query_stop(&i.query_id).await?;
    Ok(json!({ "success": stopped }))
}

fn query_out(q: &QueryInfo) -> Value {
    object(&[
        ("queryLanguage", Some(json!("CWLI"))),
        ("queryId", Some(json!(q.id))),
        ("queryString", Some(json!(q.query))),
        ("status", Some(json!(q.status.as_str()))),
        ("createTime", Some(json!(q.created))),
        ("logGroupName", q.group.as_ref().map(|g| json!(g))),
        ("queryDuration", q.duration_ms.map(|d| json!(d))),
        ("bytesScanned", Some(json!(q.bytes_scanned))),
    ])
}

pub(super) fn describe_queries(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        log_group_name: Option<String>,
        status: Option<String>,
        max_results: Option<usize>,
        next_token: Option<String>,
    }
    let i: In = input(v)?;
    let status = i.status.as_deref().and_then(QueryStatus::parse);
    let page = cx.region.logs.queries_describe(
        i.log_group_name.as_deref(),
        status,
        i.max_results,
        i.next_token.as_deref(),
    )?;
    let queries: Vec<Value> = page.items.iter().map(query_out).collect();
    Ok(with_token(json!({ "queries": queries }), page.next_token))
}
