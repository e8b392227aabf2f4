//! CloudWatch metrics: PutMetricData, GetMetricStatistics, GetMetricData, ListMetrics.

use super::*;
use berth_control::cloudwatch::{
    DataQuery, DataRequest, ListFilter, QueryKind, ScanBy, StatisticsQuery,
};
use berth_metrics::{DatumInput, Publisher, StatisticSetInput};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireStatisticSet {
    sample_count: WireDouble,
    sum: WireDouble,
    minimum: WireDouble,
    maximum: WireDouble,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireDatum {
    metric_name: String,
    #[serde(default)]
    dimensions: Vec<WireDimension>,
    timestamp: Option<WireTime>,
    value: Option<WireDouble>,
    statistic_values: Option<WireStatisticSet>,
    #[serde(default)]
    values: Vec<WireDouble>,
    #[serde(default)]
    counts: Vec<WireDouble>,
    unit: Option<String>,
    storage_resolution: Option<i64>,
}

/// `PutMetricData`.
pub(super) async fn put_metric_data(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        namespace: String,
        #[serde(default)]
        metric_data: Vec<WireDatum>,
        entity_metric_data: Option<Value>,
    }
    let i: In = input(v)?;
    if i.entity_metric_data.is_some() {
        return Err(invalid(
            "InvalidParameterValue",
            "EntityMetricData is not supported by Berth; send MetricData.",
        ));
    }
    let mut data = Vec::with_capacity(i.metric_data.len());
    for d in i.metric_data {
        data.push(DatumInput {
            metric_name: d.metric_name,
            dimensions: dimensions(d.dimensions),
            timestamp_ms: d.timestamp.map(|t| t.0),
            value: d.value.map(|v| v.0),
            statistic_values: d.statistic_values.map(|s| StatisticSetInput {
                sample_count: s.sample_count.0,
                sum: s.sum.0,
                minimum: s.minimum.0,
                maximum: s.maximum.0,
            }),
            values: d.values.into_iter().map(|v| v.0).collect(),
            counts: d.counts.into_iter().map(|v| v.0).collect(),
            unit: unit(d.unit)?,
            storage_resolution: d.storage_resolution,
        });
    }
    cx.region
        .cloudwatch
        .metric_data_put(&i.namespace, data, Publisher::User)
        .await?;
    Ok(json!({}))
}

/// `GetMetricStatistics`.
pub(super) async fn get_metric_statistics(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        namespace: String,
        metric_name: String,
        #[serde(default)]
        dimensions: Vec<WireDimension>,
        start_time: WireTime,
        end_time: WireTime,
        period: i64,
        #[serde(default)]
        statistics: Vec<String>,
        #[serde(default)]
        extended_statistics: Vec<String>,
        unit: Option<String>,
    }
    let i: In = input(v)?;
    if i.statistics.is_empty() == i.extended_statistics.is_empty() {
        return Err(invalid(
            "InvalidParameterCombination",
            "Must specify either Statistics or ExtendedStatistics, but not both.",
        ));
    }
    let extended = extended_statistics(&i.extended_statistics)?;
    let metric = WireMetric {
        namespace: i.namespace,
        metric_name: i.metric_name,
        dimensions: i.dimensions,
    }
    .id()?;
    let label = metric.name().to_string();
    let unit = unit(i.unit)?;
    let (points, data_unit) = cx
        .region
        .cloudwatch
        .metric_statistics(&StatisticsQuery {
            metric,
            start_ms: i.start_time.0,
            end_ms: i.end_time.0,
            period_s: i.period,
            unit,
        })
        .await?;
    let datapoints: Vec<Value> = points
        .iter()
        .map(|p| {
            let mut d = json!({
                "Timestamp": seconds(p.timestamp_ms),
                "Unit": data_unit.as_str(),
            });
            for s in &i.statistics {
                if let Some(x) = s
                    .parse::<Statistic>()
                    .ok()
                    .and_then(|st| p.aggregate.statistic(&st))
                {
                    d[s.as_str()] = json!(x);
                }
            }
            if !extended.is_empty() {
                let mut ext = serde_json::Map::new();
                for (name, s) in &extended {
                    if let Some(x) = p.aggregate.statistic(s) {
                        ext.insert(name.clone(), json!(x));
                    }
                }
                d["ExtendedStatistics"] = Value::Object(ext);
            }
            d
        })
        .collect();
    Ok(json!({"Label": label, "Datapoints": datapoints}))
}

/// `ExtendedStatistics` parsed: each percentile with its name as given.
fn extended_statistics(names: &[String]) -> Result<Vec<(String, Statistic)>, Error> {
    names
        .iter()
        .map(|e| match e.parse::<Statistic>() {
            Ok(s) if s.is_extended() => Ok((e.clone(), s)),
            _ => Err(invalid(
                "InvalidParameterValue",
                format!(
                    "The value {e} for parameter ExtendedStatistics is not a valid percentile."
                ),
            )),
        })
        .collect()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct WireQuery {
    id: String,
    metric_stat: Option<WireMetricStat>,
    expression: Option<String>,
    label: Option<String>,
    return_data: Option<bool>,
    period: Option<i64>,
    account_id: Option<String>,
}

/// A `MetricDataQuery` as the domain takes it.
pub(super) fn data_query(cx: &Cx<'_>, q: WireQuery) -> Result<DataQuery, Error> {
    if let Some(a) = &q.account_id
        && a != cx.region.scope.account.as_str()
    {
        return Err(invalid(
            "InvalidParameterValue",
            format!(
                "The value {a} for parameter MetricDataQueries.member.AccountId is invalid: Berth serves one account."
            ),
        ));
    }
    let what = match (q.metric_stat, q.expression) {
        (Some(stat), None) => QueryKind::Stat(stat.domain()?),
        (None, Some(e)) => QueryKind::Expression(e),
        _ => {
            return Err(invalid(
                "ValidationError",
                format!(
                    "The query {} must have exactly one of MetricStat and Expression.",
                    q.id
                ),
            ));
        }
    };
    Ok(DataQuery {
        id: q.id,
        what,
        label: q.label,
        return_data: q.return_data.unwrap_or(true),
        period_s: q.period,
    })
}

/// `GetMetricData`.
pub(super) async fn get_metric_data(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        metric_data_queries: Vec<WireQuery>,
        start_time: WireTime,
        end_time: WireTime,
        next_token: Option<String>,
        scan_by: Option<String>,
        max_datapoints: Option<i64>,
    }
    let i: In = input(v)?;
    let queries = i
        .metric_data_queries
        .into_iter()
        .map(|q| data_query(cx, q))
        .collect::<Result<Vec<_>, _>>()?;
    let response = cx
        .region
        .cloudwatch
        .metric_data(&DataRequest {
            queries,
            start_ms: i.start_time.0,
            end_ms: i.end_time.0,
            scan_by: match i.scan_by.as_deref() {
                Some("TimestampAscending") => ScanBy::TimestampAscending,
                _ => ScanBy::TimestampDescending,
            },
            max_datapoints: i.max_datapoints.map(|n| n.max(0) as usize),
            next_token: i.next_token,
        })
        .await?;
    let results: Vec<Value> = response
        .results
        .iter()
        .map(|r| {
            json!({
                "Id": r.id,
                "Label": r.label,
                "Timestamps": r.points.iter().map(|(t, _)| seconds(*t)).collect::<Vec<_>>(),
                "Values": r.points.iter().map(|(_, v)| json!(v)).collect::<Vec<_>>(),
                "StatusCode": if r.complete { "Complete" } else { "PartialData" },
                "Messages": r.messages.iter().map(|m| json!({"Value": m})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut out = json!({"MetricDataResults": results, "Messages": []});
    if let Some(t) = response.next_token {
        out["NextToken"] = t.into();
    }
    Ok(out)
}

/// `ListMetrics`.
pub(super) async fn list_metrics(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Filter {
        name: String,
        value: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        namespace: Option<String>,
        metric_name: Option<String>,
        #[serde(default)]
        dimensions: Vec<Filter>,
        next_token: Option<String>,
        recently_active: Option<String>,
    }
    let i: In = input(v)?;
    let filter = ListFilter {
        namespace: i.namespace,
        metric_name: i.metric_name,
        dimensions: i
            .dimensions
            .into_iter()
            .map(|d| (d.name, d.value))
            .collect(),
        recently_active: i.recently_active.is_some(),
    };
    let (metrics, next) = cx
        .region
        .cloudwatch
        .metrics_list(&filter, i.next_token.as_deref())
        .await?;
    let mut out = json!({"Metrics": metrics.iter().map(metric_out).collect::<Vec<_>>()});
    if let Some(t) = next {
        out["NextToken"] = t.into();
    }
    Ok(out)
}

/// A `MetricDataQuery` as DescribeAlarms shows it.
pub(super) fn data_query_out(q: &DataQuery) -> Value {
    let mut v = json!({"Id": q.id, "ReturnData": q.return_data});
    match &q.what {
        QueryKind::Stat(s) => {
            let mut stat = json!({
                "Metric": metric_out(&s.metric),
                "Period": s.period_s,
                "Stat": s.stat.to_string(),
            });
            if let Some(u) = s.unit {
                stat["Unit"] = u.as_str().into();
            }
            v["MetricStat"] = stat;
        }
        QueryKind::Expression(e) => v["Expression"] = e.clone().into(),
    }
    if let Some(l) = &q.label {
        v["Label"] = l.clone().into();
    }
    if let Some(p) = q.period_s {
        v["Period"] = p.into();
    }
    v
}
