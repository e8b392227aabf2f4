//! CloudWatch alarms: Put(Metric|Composite)Alarm, DescribeAlarms, DescribeAlarmsForMetric,
//! DeleteAlarms, SetAlarmState, DescribeAlarmHistory, Enable/DisableAlarmActions and the
//! tagging operations on alarm ARNs.

use super::*;
use berth_control::cloudwatch::{
    Alarm, AlarmConfig, AlarmFilter, AlarmKind, AlarmMetric, AlarmSource, CompositeAlarm,
    ForMetric, HistoryFilter, MetricAlarm,
};
use berth_metrics::alarm::{AlarmState, ComparisonOperator, TreatMissingData};
use berth_types::Tag;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireTag {
    key: String,
    value: String,
}

fn tags(wire: Vec<WireTag>) -> Vec<Tag> {
    wire.into_iter()
        .map(|t| Tag {
            key: t.key,
            value: t.value,
        })
        .collect()
}

fn tags_out(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
}

fn parse_enum<T: std::str::FromStr>(what: &str, v: &str) -> Result<T, Error> {
    v.parse().map_err(|_| {
        invalid(
            "InvalidParameterValue",
            format!("The value {v} for parameter {what} is invalid."),
        )
    })
}

/// The members every alarm has.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Common {
    alarm_name: String,
    alarm_description: Option<String>,
    actions_enabled: Option<bool>,
    #[serde(rename = "OKActions", default)]
    ok_actions: Vec<String>,
    #[serde(default)]
    alarm_actions: Vec<String>,
    #[serde(default)]
    insufficient_data_actions: Vec<String>,
    #[serde(default)]
    tags: Vec<WireTag>,
}

impl Common {
    fn config(self, kind: AlarmKind) -> (AlarmConfig, Vec<Tag>) {
        (
            AlarmConfig {
                name: self.alarm_name,
                description: self.alarm_description,
                actions_enabled: self.actions_enabled.unwrap_or(true),
                ok_actions: self.ok_actions,
                alarm_actions: self.alarm_actions,
                insufficient_data_actions: self.insufficient_data_actions,
                kind,
            },
            tags(self.tags),
        )
    }
}

/// `PutMetricAlarm`'s own members (the common ones are [`Common`]).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutMetricAlarm {
    metric_name: Option<String>,
    namespace: Option<String>,
    statistic: Option<String>,
    extended_statistic: Option<String>,
    #[serde(default)]
    dimensions: Vec<WireDimension>,
    period: Option<i64>,
    unit: Option<String>,
    evaluation_periods: u32,
    datapoints_to_alarm: Option<u32>,
    threshold: Option<WireDouble>,
    comparison_operator: String,
    treat_missing_data: Option<String>,
    evaluate_low_sample_count_percentile: Option<String>,
    metrics: Option<Vec<super::metrics::WireQuery>>,
    threshold_metric_id: Option<String>,
    evaluation_criteria: Option<Value>,
}

/// `PutMetricAlarm`.
pub(super) async fn put_metric_alarm(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let common: Common = input(v.clone())?;
    let mut i: PutMetricAlarm = input(v)?;
    if i.evaluation_criteria.is_some() {
        return Err(invalid(
            "ValidationError",
            "EvaluationCriteria (PromQL alarms) is not supported by Berth.",
        ));
    }
    let source = match (i.metrics.take(), i.metric_name.take()) {
        (Some(queries), None) => AlarmSource::Math(
            queries
                .into_iter()
                .map(|q| super::metrics::data_query(cx, q))
                .collect::<Result<_, _>>()?,
        ),
        (None, Some(name)) => single_metric(&mut i, name)?,
        _ => {
            return Err(invalid(
                "ValidationError",
                "Exactly one of MetricName and Metrics must be specified.",
            ));
        }
    };
    let alarm = MetricAlarm {
        source,
        evaluation_periods: i.evaluation_periods,
        datapoints_to_alarm: i.datapoints_to_alarm,
        threshold: i.threshold.map(|t| t.0),
        threshold_metric_id: i.threshold_metric_id,
        comparison: parse_enum::<ComparisonOperator>("ComparisonOperator", &i.comparison_operator)?,
        treat_missing_data: i
            .treat_missing_data
            .as_deref()
            .map(|t| parse_enum::<TreatMissingData>("TreatMissingData", t))
            .transpose()?,
        evaluate_low_sample_count_percentile: i.evaluate_low_sample_count_percentile,
    };
    let (config, tags) = common.config(AlarmKind::Metric(alarm));
    cx.region.cloudwatch.alarm_put(config, tags).await?;
    Ok(json!({}))
}

/// The one metric of a `PutMetricAlarm` that names `MetricName`.
fn single_metric(i: &mut PutMetricAlarm, name: String) -> Result<AlarmSource, Error> {
    let (statistic, extended) = match (i.statistic.take(), i.extended_statistic.take()) {
        (Some(s), None) => (parse_enum("Statistic", &s)?, false),
        (None, Some(e)) => (parse_enum("ExtendedStatistic", &e)?, true),
        _ => {
            return Err(invalid(
                "ValidationError",
                "Exactly one of Statistic and ExtendedStatistic must be specified.",
            ));
        }
    };
    let metric = WireMetric {
        namespace: i.namespace.take().unwrap_or_default(),
        metric_name: name,
        dimensions: std::mem::take(&mut i.dimensions),
    }
    .id()?;
    Ok(AlarmSource::Metric(AlarmMetric {
        metric,
        statistic,
        extended,
        period_s: i.period.ok_or_else(|| {
            invalid(
                "ValidationError",
                "Period must not be null when MetricName is given.",
            )
        })?,
        unit: unit(i.unit.take())?,
    }))
}

/// `PutCompositeAlarm`.
pub(super) async fn put_composite_alarm(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        alarm_rule: String,
        actions_suppressor: Option<String>,
        actions_suppressor_wait_period: Option<i64>,
        actions_suppressor_extension_period: Option<i64>,
    }
    let common: Common = input(v.clone())?;
    let i: In = input(v)?;
    let (config, tags) = common.config(AlarmKind::Composite(CompositeAlarm {
        rule: i.alarm_rule,
        actions_suppressor: i.actions_suppressor,
        suppressor_wait_period: i.actions_suppressor_wait_period,
        suppressor_extension_period: i.actions_suppressor_extension_period,
    }));
    cx.region.cloudwatch.alarm_put(config, tags).await?;
    Ok(json!({}))
}

/// The members every described alarm has.
fn alarm_common(a: &Alarm) -> serde_json::Map<String, Value> {
    let c = &a.config;
    let mut v = json!({
        "AlarmName": c.name,
        "AlarmArn": a.arn,
        "AlarmConfigurationUpdatedTimestamp": seconds(a.configuration_updated_ms),
        "ActionsEnabled": c.actions_enabled,
        "OKActions": c.ok_actions,
        "AlarmActions": c.alarm_actions,
        "InsufficientDataActions": c.insufficient_data_actions,
        "StateValue": a.state.as_str(),
        "StateReason": a.state_reason,
        "StateUpdatedTimestamp": seconds(a.state_updated_ms),
        "StateTransitionedTimestamp": seconds(a.state_transitioned_ms),
    });
    if let Some(d) = &c.description {
        v["AlarmDescription"] = d.clone().into();
    }
    if let Some(d) = &a.state_reason_data {
        v["StateReasonData"] = d.clone().into();
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("an object"),
    }
}

fn metric_alarm_out(a: &Alarm, m: &MetricAlarm) -> Value {
    let mut v = alarm_common(a);
    v.insert("EvaluationPeriods".into(), json!(m.evaluation_periods));
    if let Some(d) = m.datapoints_to_alarm {
        v.insert("DatapointsToAlarm".into(), json!(d));
    }
    if let Some(t) = m.threshold {
        v.insert("Threshold".into(), json!(t));
    }
    v.insert("ComparisonOperator".into(), m.comparison.as_str().into());
    if let Some(t) = m.treat_missing_data {
        v.insert("TreatMissingData".into(), t.as_str().into());
    }
    if let Some(e) = &m.evaluate_low_sample_count_percentile {
        v.insert("EvaluateLowSampleCountPercentile".into(), e.clone().into());
    }
    match &m.source {
        AlarmSource::Metric(s) => {
            v.insert("MetricName".into(), s.metric.name().into());
            v.insert("Namespace".into(), s.metric.namespace().into());
            v.insert("Dimensions".into(), dimensions_out(&s.metric));
            v.insert("Period".into(), json!(s.period_s));
            let key = if s.extended {
                "ExtendedStatistic"
            } else {
                "Statistic"
            };
            v.insert(key.into(), s.statistic.to_string().into());
            if let Some(u) = s.unit {
                v.insert("Unit".into(), u.as_str().into());
            }
        }
        AlarmSource::Math(queries) => {
            v.insert(
                "Metrics".into(),
                Value::Array(queries.iter().map(super::metrics::data_query_out).collect()),
            );
        }
    }
    Value::Object(v)
}

fn composite_alarm_out(a: &Alarm, c: &CompositeAlarm) -> Value {
    let mut v = alarm_common(a);
    v.insert("AlarmRule".into(), c.rule.clone().into());
    if let Some(s) = &c.actions_suppressor {
        v.insert("ActionsSuppressor".into(), s.clone().into());
    }
    if let Some(p) = c.suppressor_wait_period {
        v.insert("ActionsSuppressorWaitPeriod".into(), json!(p));
    }
    if let Some(p) = c.suppressor_extension_period {
        v.insert("ActionsSuppressorExtensionPeriod".into(), json!(p));
    }
    Value::Object(v)
}

/// A page of `items` after the token's position (`scope` names the listing).
fn page<T: Clone>(
    cx: &Cx<'_>,
    scope: &str,
    items: &[T],
    max: usize,
    token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), Error> {
    cx.region
        .pager
        .offset_page(scope, items, max, token)
        .ok_or_else(|| {
            invalid(
                "InvalidNextToken",
                "The service couldn't process the NextToken.",
            )
        })
}

fn max_records(n: Option<i64>, default: usize, max: usize) -> Result<usize, Error> {
    match n {
        None => Ok(default),
        Some(n) if n >= 1 && n as usize <= max => Ok(n as usize),
        Some(n) => Err(invalid(
            "InvalidParameterValue",
            format!(
                "The value {n} for parameter MaxRecords is invalid: it must be between 1 and {max}."
            ),
        )),
    }
}

/// `DescribeAlarms`.
pub(super) async fn describe_alarms(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        #[serde(default)]
        alarm_names: Vec<String>,
        alarm_name_prefix: Option<String>,
        #[serde(default)]
        alarm_types: Vec<String>,
        children_of_alarm_name: Option<String>,
        parents_of_alarm_name: Option<String>,
        state_value: Option<String>,
        action_prefix: Option<String>,
        max_records: Option<i64>,
        next_token: Option<String>,
    }
    let i: In = input(v)?;
    let max = max_records(i.max_records, 50, 100)?;
    let filter = AlarmFilter {
        names: i.alarm_names,
        name_prefix: i.alarm_name_prefix,
        types: i.alarm_types,
        children_of: i.children_of_alarm_name,
        parents_of: i.parents_of_alarm_name,
        state: i
            .state_value
            .as_deref()
            .map(|s| parse_enum::<AlarmState>("StateValue", s))
            .transpose()?,
        action_prefix: i.action_prefix,
    };
    let alarms = cx.region.cloudwatch.alarms_describe(&filter)?;
    let scope = format!("DescribeAlarms\0{filter:?}");
    let (page, next) = page(cx, &scope, &alarms, max, i.next_token.as_deref())?;
    let mut metric = Vec::new();
    let mut composite = Vec::new();
    for a in &page {
        match &a.config.kind {
            AlarmKind::Metric(m) => metric.push(metric_alarm_out(a, m)),
            AlarmKind::Composite(c) => composite.push(composite_alarm_out(a, c)),
        }
    }
    let mut out = json!({"MetricAlarms": metric, "CompositeAlarms": composite});
    if let Some(t) = next {
        out["NextToken"] = t.into();
    }
    Ok(out)
}

/// `DescribeAlarmsForMetric`.
pub(super) async fn describe_alarms_for_metric(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        metric_name: String,
        namespace: String,
        statistic: Option<String>,
        extended_statistic: Option<String>,
        #[serde(default)]
        dimensions: Vec<WireDimension>,
        period: Option<i64>,
        unit: Option<String>,
    }
    let i: In = input(v)?;
    let statistic = i
        .statistic
        .or(i.extended_statistic)
        .map(|s| parse_enum("Statistic", &s))
        .transpose()?;
    let f = ForMetric {
        metric: WireMetric {
            namespace: i.namespace,
            metric_name: i.metric_name,
            dimensions: i.dimensions,
        }
        .id()?,
        statistic,
        period_s: i.period,
        unit: unit(i.unit)?,
    };
    let alarms = cx.region.cloudwatch.alarms_for_metric(&f)?;
    let out: Vec<Value> = alarms
        .iter()
        .filter_map(|a| match &a.config.kind {
            AlarmKind::Metric(m) => Some(metric_alarm_out(a, m)),
            AlarmKind::Composite(_) => None,
        })
        .collect();
    Ok(json!({"MetricAlarms": out}))
}

/// `DeleteAlarms`.
pub(super) async fn delete_alarms(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        alarm_names: Vec<String>,
    }
    let i: In = input(v)?;
    cx.region.cloudwatch.alarms_delete(i.alarm_names).await?;
    Ok(json!({}))
}

/// `SetAlarmState`.
pub(super) async fn set_alarm_state(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        alarm_name: String,
        state_value: String,
        state_reason: String,
        state_reason_data: Option<String>,
    }
    let i: In = input(v)?;
    let state = parse_enum::<AlarmState>("StateValue", &i.state_value)?;
    let cw = &cx.region.cloudwatch;
    if let Some(changed) = cw
        .alarm_set_state(&i.alarm_name, state, i.state_reason, i.state_reason_data)
        .await?
    {
        cx.state
            .alarm_actions(&cx.region, None, cw.actions_for_change(&changed))
            .await;
    }
    Ok(json!({}))
}

/// `EnableAlarmActions` / `DisableAlarmActions`.
pub(super) async fn enable_alarm_actions(cx: &Cx<'_>, op: CwOp, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        alarm_names: Vec<String>,
    }
    let i: In = input(v)?;
    cx.region
        .cloudwatch
        .alarms_actions_enable(i.alarm_names, op == CwOp::EnableAlarmActions)
        .await?;
    Ok(json!({}))
}

/// `DescribeAlarmHistory`.
pub(super) async fn describe_alarm_history(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        alarm_name: Option<String>,
        #[serde(default)]
        alarm_types: Vec<String>,
        history_item_type: Option<String>,
        start_date: Option<WireTime>,
        end_date: Option<WireTime>,
        max_records: Option<i64>,
        next_token: Option<String>,
        scan_by: Option<String>,
    }
    let i: In = input(v)?;
    let max = max_records(i.max_records, 100, 100)?;
    let f = HistoryFilter {
        alarm_name: i.alarm_name,
        types: i.alarm_types,
        item_type: i.history_item_type,
        start_ms: i.start_date.map(|t| t.0),
        end_ms: i.end_date.map(|t| t.0),
        ascending: i.scan_by.as_deref() == Some("TimestampAscending"),
    };
    let items = cx.region.cloudwatch.alarm_history(&f)?;
    let scope = format!("DescribeAlarmHistory\0{f:?}");
    let (page, next) = page(cx, &scope, &items, max, i.next_token.as_deref())?;
    let out: Vec<Value> = page
        .iter()
        .map(|h| {
            json!({
                "AlarmName": h.alarm_name,
                "AlarmType": h.alarm_type,
                "Timestamp": seconds(h.timestamp_ms),
                "HistoryItemType": h.item_type,
                "HistorySummary": h.summary,
                "HistoryData": h.data,
            })
        })
        .collect();
    let mut v = json!({"AlarmHistoryItems": out});
    if let Some(t) = next {
        v["NextToken"] = t.into();
    }
    Ok(v)
}

/// `TagResource` / `UntagResource` / `ListTagsForResource`.
pub(super) async fn tag_resource(cx: &Cx<'_>, op: CwOp, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        #[serde(rename = "ResourceARN")]
        resource_arn: String,
        #[serde(default)]
        tags: Vec<WireTag>,
        #[serde(default)]
        tag_keys: Vec<String>,
    }
    let i: In = input(v)?;
    let tags = cx
        .region
        .cloudwatch
        .alarm_tags(&i.resource_arn, tags(i.tags), i.tag_keys)
        .await?;
    Ok(match op {
        CwOp::ListTagsForResource => json!({"Tags": tags_out(&tags)}),
        _ => json!({}),
    })
}
