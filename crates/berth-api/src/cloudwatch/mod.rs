//! CloudWatch over its three protocols (awsQuery, awsJson 1.0 with query compatibility,
//! Smithy RPC v2 CBOR): the router decodes any of them into the model's shapes (PascalCase
//! members), the handlers here turn them into `berth-control::cloudwatch` calls, and the
//! protocol layer renders the result and CloudWatch's query-compatible errors.

use crate::route::Cx;
use berth_control::cloudwatch::MetricStat;
use berth_metrics::{Dimension, MetricId, Statistic, Unit};
use berth_types::Error;
use serde::Deserialize;
use serde::de::{DeserializeOwned, Deserializer};
use serde_json::{Value, json};

mod alarms;
mod metrics;

crate::operation::operations! {
    /// The CloudWatch operations Berth implements.
    pub enum CwOp ("cloudwatch") {
        PutMetricData => Write, Any,
            Partial("values, statistic sets, values/counts, units, 1 s and 60 s resolution; EntityMetricData is refused");
        GetMetricStatistics => Read, Any, Implemented;
        GetMetricData => Read, Any,
            Partial("MetricStat and the metric-math subset of berth-metrics (arithmetic, SUM/AVG/MIN/MAX/STDDEV, METRICS(), FILL, RATE, DIFF, …); no SEARCH, no Metrics Insights queries, no cross-account");
        ListMetrics => List, Any, Partial("this account only");
        PutMetricAlarm => Write, Alarms("AlarmName"),
            Partial("static thresholds (no anomaly detection or PromQL criteria); actions: Application Auto Scaling policies run, other actions are recorded as failed");
        PutCompositeAlarm => Write, Alarms("AlarmName"),
            Partial("the rule language; actions suppressors are stored, not applied");
        DescribeAlarms => Read, Any, Implemented;
        DescribeAlarmsForMetric => Read, Any, Implemented;
        DeleteAlarms => Write, Alarms("AlarmNames"), Implemented;
        SetAlarmState => Write, Alarms("AlarmName"), Implemented;
        DescribeAlarmHistory => Read, Alarms("AlarmName"), Implemented;
        EnableAlarmActions => Write, Alarms("AlarmNames"), Implemented;
        DisableAlarmActions => Write, Alarms("AlarmNames"), Implemented;
        TagResource => Tagging, Arns("ResourceARN"), Partial("alarms");
        UntagResource => Tagging, Arns("ResourceARN"), Partial("alarms");
        ListTagsForResource => Read, Arns("ResourceARN"), Partial("alarms");
    }
}

/// Runs one CloudWatch operation.
pub async fn dispatch(cx: &Cx<'_>, op: CwOp, v: Value) -> Result<Value, Error> {
    match op {
        CwOp::PutMetricData => Box::pin(metrics::put_metric_data(cx, v)).await,
        CwOp::GetMetricStatistics => Box::pin(metrics::get_metric_statistics(cx, v)).await,
        CwOp::GetMetricData => Box::pin(metrics::get_metric_data(cx, v)).await,
        CwOp::ListMetrics => Box::pin(metrics::list_metrics(cx, v)).await,
        CwOp::PutMetricAlarm => Box::pin(alarms::put_metric_alarm(cx, v)).await,
        CwOp::PutCompositeAlarm => Box::pin(alarms::put_composite_alarm(cx, v)).await,
        CwOp::DescribeAlarms => Box::pin(alarms::describe_alarms(cx, v)).await,
        CwOp::DescribeAlarmsForMetric => Box::pin(alarms::describe_alarms_for_metric(cx, v)).await,
        CwOp::DeleteAlarms => Box::pin(alarms::delete_alarms(cx, v)).await,
        CwOp::SetAlarmState => Box::pin(alarms::set_alarm_state(cx, v)).await,
        CwOp::DescribeAlarmHistory => Box::pin(alarms::describe_alarm_history(cx, v)).await,
        CwOp::EnableAlarmActions | CwOp::DisableAlarmActions => {
            Box::pin(alarms::enable_alarm_actions(cx, op, v)).await
        }
        CwOp::TagResource | CwOp::UntagResource | CwOp::ListTagsForResource => {
            Box::pin(alarms::tag_resource(cx, op, v)).await
        }
    }
}

fn input<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::coded("InvalidParameterValue", e.to_string()))
}

/// A CloudWatch error with its model status (`InvalidParameterValue` is 400, …).
fn invalid(code: &'static str, message: impl Into<String>) -> Error {
    Error::coded(code, message)
}

/// A timestamp member: epoch seconds (JSON, CBOR) or ISO 8601 text (query); milliseconds.
#[derive(Debug, Clone, Copy)]
struct WireTime(i64);

impl<'de> Deserialize<'de> for WireTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireTime, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => n
                .as_f64()
                .map(|s| WireTime((s * 1000.0).round() as i64))
                .ok_or_else(|| serde::de::Error::custom("bad timestamp")),
            Value::String(s) => berth_aws::timestamp::parse_iso8601(&s)
                .map(|t| WireTime((t.unix_timestamp_nanos() / 1_000_000) as i64))
                .ok_or_else(|| serde::de::Error::custom(format!("bad timestamp {s}"))),
            _ => Err(serde::de::Error::custom("bad timestamp")),
        }
    }
}

/// A double member: a number, or the `NaN` / `Infinity` / `-Infinity` strings of the JSON
/// protocols.
#[derive(Debug, Clone, Copy)]
struct WireDouble(f64);

impl<'de> Deserialize<'de> for WireDouble {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<WireDouble, D::Error> {
        match Value::deserialize(d)? {
            Value::Number(n) => Ok(WireDouble(n.as_f64().unwrap_or(f64::NAN))),
            Value::String(s) => match s.as_str() {
                "NaN" => Ok(WireDouble(f64::NAN)),
                "Infinity" => Ok(WireDouble(f64::INFINITY)),
                "-Infinity" => Ok(WireDouble(f64::NEG_INFINITY)),
                _ => s
                    .parse()
                    .map(WireDouble)
                    .map_err(|_| serde::de::Error::custom(format!("bad number {s}"))),
            },
            _ => Err(serde::de::Error::custom("bad number")),
        }
    }
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct WireDimension {
    name: String,
    value: String,
}

fn dimensions(wire: Vec<WireDimension>) -> Vec<Dimension> {
    wire.into_iter()
        .map(|d| Dimension::new(d.name, d.value))
        .collect()
}

fn dimensions_out(m: &MetricId) -> Value {
    Value::Array(
        m.dimensions()
            .iter()
            .map(|d| json!({"Name": d.name, "Value": d.value}))
            .collect(),
    )
}

/// `{Namespace, MetricName, Dimensions}`.
#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct WireMetric {
    namespace: String,
    metric_name: String,
    #[serde(default)]
    dimensions: Vec<WireDimension>,
}

impl WireMetric {
    fn id(self) -> Result<MetricId, Error> {
        MetricId::new(
            self.namespace,
            self.metric_name,
            dimensions(self.dimensions),
        )
        .map_err(berth_control::cloudwatch::input_error)
    }
}

fn metric_out(m: &MetricId) -> Value {
    json!({"Namespace": m.namespace(), "MetricName": m.name(), "Dimensions": dimensions_out(m)})
}

fn unit(u: Option<String>) -> Result<Option<Unit>, Error> {
    u.map(|u| {
        u.parse::<Unit>().map_err(|_| {
            invalid(
                "InvalidParameterValue",
                format!("The unit {u} is not valid."),
            )
        })
    })
    .transpose()
}

/// `{Metric, Period, Stat, Unit}`.
#[derive(Deserialize, Clone)]
#[serde(rename_all = "PascalCase")]
struct WireMetricStat {
    metric: WireMetric,
    period: i64,
    stat: String,
    unit: Option<String>,
}

impl WireMetricStat {
    fn domain(self) -> Result<MetricStat, Error> {
        let stat = self.stat.parse::<Statistic>().map_err(|_| {
            invalid(
                "InvalidParameterValue",
                format!(
                    "The value {} for parameter MetricStat.Stat is not supported.",
                    self.stat
                ),
            )
        })?;
        Ok(MetricStat {
            metric: self.metric.id()?,
            period_s: self.period,
            stat,
            unit: unit(self.unit)?,
        })
    }
}

/// Epoch seconds of a millisecond time (the value every protocol's timestamp starts as).
fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}
