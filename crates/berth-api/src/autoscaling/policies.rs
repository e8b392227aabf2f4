//! PutScalingPolicy, DescribeScalingPolicies and DeleteScalingPolicy: the policy
//! configurations on the wire and in domain terms.

use super::{Listing, Target, input, seconds};
use crate::route::Cx;
use berth_control::autoscaling::plan::{AdjustmentType, MetricAggregation, StepAdjustment};
use berth_control::autoscaling::{
    ECS_DESIRED_COUNT, MetricSource, PolicyConfig, PolicyFilter, PredefinedMetric, PutPolicy,
    ScalingPolicy, StepConfig, TargetTrackingConfig,
};
use berth_control::cloudwatch::{DataQuery, MetricStat, QueryKind};
use berth_metrics::{Dimension, MetricId, Statistic, Unit};
use berth_types::Error;
use serde::Deserialize;
use serde_json::{Value, json};

fn invalid(message: impl Into<String>) -> Error {
    Error::coded("ValidationException", message)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireDimension {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WirePredefined {
    predefined_metric_type: String,
    resource_label: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireMetric {
    #[serde(default)]
    dimensions: Vec<WireDimension>,
    metric_name: Option<String>,
    namespace: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireMetricStat {
    metric: WireMetric,
    stat: String,
    unit: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireQuery {
    expression: Option<String>,
    id: String,
    label: Option<String>,
    metric_stat: Option<WireMetricStat>,
    return_data: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireCustomized {
    #[serde(flatten)]
    metric: WireMetric,
    statistic: Option<String>,
    unit: Option<String>,
    metrics: Option<Vec<WireQuery>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireTracking {
    target_value: f64,
    predefined_metric_specification: Option<WirePredefined>,
    customized_metric_specification: Option<WireCustomized>,
    scale_out_cooldown: Option<i64>,
    scale_in_cooldown: Option<i64>,
    disable_scale_in: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireStep {
    metric_interval_lower_bound: Option<f64>,
    metric_interval_upper_bound: Option<f64>,
    scaling_adjustment: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireStepConfig {
    adjustment_type: Option<String>,
    #[serde(default)]
    step_adjustments: Vec<WireStep>,
    min_adjustment_magnitude: Option<i64>,
    cooldown: Option<i64>,
    metric_aggregation_type: Option<String>,
}

fn unit(u: Option<String>) -> Result<Option<Unit>, Error> {
    u.map(|u| {
        u.parse::<Unit>()
            .map_err(|_| invalid(format!("Unsupported metric unit: {u}")))
    })
    .transpose()
}

fn metric_id(m: WireMetric) -> Result<MetricId, Error> {
    let (Some(namespace), Some(name)) = (m.namespace, m.metric_name) else {
        return Err(invalid(
            "A customized metric specification needs a Namespace and a MetricName",
        ));
    };
    let dims = m
        .dimensions
        .into_iter()
        .map(|d| Dimension::new(d.name, d.value))
        .collect();
    MetricId::new(namespace, name, dims).map_err(|e| invalid(e.message))
}

fn statistic(s: &str) -> Result<Statistic, Error> {
    s.parse::<Statistic>()
        .map_err(|_| invalid(format!("Unsupported statistic: {s}")))
}

impl WireCustomized {
    fn domain(self) -> Result<MetricSource, Error> {
        let Some(queries) = self.metrics else {
            let statistic = statistic(self.statistic.as_deref().unwrap_or_default())?;
            return Ok(MetricSource::Metric {
                metric: metric_id(self.metric)?,
                statistic,
                unit: unit(self.unit)?,
            });
        };
        if self.metric.metric_name.is_some() || self.statistic.is_some() {
            return Err(invalid(
                "A customized metric specification has either MetricName, Namespace, Dimensions and Statistic, or Metrics, not both",
            ));
        }
        let returned = queries
            .iter()
            .filter(|q| q.return_data != Some(false))
            .count();
        if queries.is_empty() || returned != 1 {
            return Err(invalid(
                "Exactly one of the Metrics of a customized metric specification must have ReturnData true",
            ));
        }
        queries
            .into_iter()
            .map(|q| {
                let what = match (q.expression, q.metric_stat) {
                    (Some(e), None) => QueryKind::Expression(e),
                    (None, Some(s)) => QueryKind::Stat(MetricStat {
                        metric: metric_id(s.metric)?,
                        period_s: 60,
                        stat: statistic(&s.stat)?,
                        unit: unit(s.unit)?,
                    }),
                    _ => {
                        return Err(invalid(format!(
                            "The metric {} must have exactly one of Expression and MetricStat",
                            q.id
                        )));
                    }
                };
                Ok(DataQuery {
                    id: q.id,
                    what,
                    label: q.label,
                    return_data: q.return_data != Some(false),
                    period_s: None,
                })
            })
            .collect::<Result<_, _>>()
            .map(MetricSource::Math)
    }
}

impl WireTracking {
    fn domain(self) -> Result<TargetTrackingConfig, Error> {
        let metric = match (
            self.predefined_metric_specification,
            self.customized_metric_specification,
        ) {
            (Some(p), None) => MetricSource::Predefined {
                metric: PredefinedMetric::parse(&p.predefined_metric_type)?,
                resource_label: p.resource_label,
            },
            (None, Some(c)) => c.domain()?,
            _ => {
                return Err(invalid(
                    "Exactly one of PredefinedMetricSpecification and CustomizedMetricSpecification must be specified",
                ));
            }
        };
        Ok(TargetTrackingConfig {
            target_value: self.target_value,
            metric,
            scale_out_cooldown_s: self.scale_out_cooldown,
            scale_in_cooldown_s: self.scale_in_cooldown,
            disable_scale_in: self.disable_scale_in,
        })
    }
}

impl WireStepConfig {
    fn domain(self) -> Result<StepConfig, Error> {
        let adjustment_type = self
            .adjustment_type
            .as_deref()
            .ok_or_else(|| invalid("AdjustmentType is required for a StepScaling policy"))
            .and_then(|a| {
                AdjustmentType::parse(a)
                    .ok_or_else(|| invalid(format!("Unsupported adjustment type: {a}")))
            })?;
        let metric_aggregation = self
            .metric_aggregation_type
            .map(|m| {
                MetricAggregation::parse(&m)
                    .ok_or_else(|| invalid(format!("Unsupported metric aggregation type: {m}")))
            })
            .transpose()?;
        Ok(StepConfig {
            adjustment_type,
            steps: self
                .step_adjustments
                .into_iter()
                .map(|s| StepAdjustment {
                    lower: s.metric_interval_lower_bound,
                    upper: s.metric_interval_upper_bound,
                    adjustment: s.scaling_adjustment,
                })
                .collect(),
            min_adjustment_magnitude: self.min_adjustment_magnitude,
            cooldown_s: self.cooldown,
            metric_aggregation,
        })
    }
}

/// `PutScalingPolicy`.
pub(super) async fn put_scaling_policy(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        policy_name: String,
        policy_type: Option<String>,
        step_scaling_policy_configuration: Option<WireStepConfig>,
        target_tracking_scaling_policy_configuration: Option<WireTracking>,
        predictive_scaling_policy_configuration: Option<Value>,
    }
    let resource_id = input::<Target>(v.clone())?.ecs()?;
    let i: In = input(v)?;
    let config = match (i.policy_type.as_deref(), i.predictive_scaling_policy_configuration) {
        (_, Some(_)) | (Some("PredictiveScaling"), _) => {
            return Err(invalid(
                "PredictiveScaling is not supported for service namespace ecs by Berth",
            ));
        }
        (Some("TargetTrackingScaling"), _) => PolicyConfig::TargetTracking(
            i.target_tracking_scaling_policy_configuration
                .ok_or_else(|| invalid("TargetTrackingScalingPolicyConfiguration is required for a TargetTrackingScaling policy"))?
                .domain()?,
        ),
        (Some("StepScaling") | None, _) => PolicyConfig::Step(
            i.step_scaling_policy_configuration
                .ok_or_else(|| invalid("StepScalingPolicyConfiguration is required for a StepScaling policy"))?
                .domain()?,
        ),
        (Some(other), _) => return Err(invalid(format!("Unsupported policy type: {other}"))),
    };
    let p = cx
        .region
        .autoscaling
        .policy_put(PutPolicy {
            resource_id,
            name: i.policy_name,
            config,
        })
        .await?;
    Ok(json!({"PolicyARN": p.arn, "Alarms": alarms_out(&p)}))
}

fn alarms_out(p: &ScalingPolicy) -> Value {
    p.alarms
        .iter()
        .map(|(name, arn)| json!({"AlarmName": name, "AlarmARN": arn}))
        .collect()
}

fn metric_out(m: &MetricId) -> Value {
    json!({
        "Namespace": m.namespace(),
        "MetricName": m.name(),
        "Dimensions": m.dimensions().iter().map(|d| json!({"Name": d.name, "Value": d.value})).collect::<Vec<_>>(),
    })
}

fn source_out(m: &MetricSource) -> (&'static str, Value) {
    match m {
        MetricSource::Predefined {
            metric,
            resource_label,
        } => (
            "PredefinedMetricSpecification",
            json!({"PredefinedMetricType": metric.as_str(), "ResourceLabel": resource_label}),
        ),
        MetricSource::Metric {
            metric,
            statistic,
            unit,
        } => {
            let mut out = metric_out(metric);
            out["Statistic"] = json!(statistic.to_string());
            if let Some(u) = unit {
                out["Unit"] = json!(u.as_str());
            }
            ("CustomizedMetricSpecification", out)
        }
        MetricSource::Math(queries) => {
            let metrics: Vec<Value> = queries
                .iter()
                .map(|q| {
                    let mut out =
                        json!({"Id": q.id, "Label": q.label, "ReturnData": q.return_data});
                    match &q.what {
                        QueryKind::Expression(e) => out["Expression"] = json!(e),
                        QueryKind::Stat(s) => {
                            out["MetricStat"] = json!({
                                "Metric": metric_out(&s.metric),
                                "Stat": s.stat.to_string(),
                                "Unit": s.unit.map(|u| u.as_str()),
                            });
                        }
                    }
                    out
                })
                .collect();
            ("CustomizedMetricSpecification", json!({"Metrics": metrics}))
        }
    }
}

fn policy_out(p: &ScalingPolicy) -> Value {
    let mut out = json!({
        "PolicyARN": p.arn,
        "PolicyName": p.name,
        "ServiceNamespace": "ecs",
        "ResourceId": p.resource_id,
        "ScalableDimension": ECS_DESIRED_COUNT,
        "Alarms": alarms_out(p),
        "CreationTime": seconds(p.created_ms),
    });
    match &p.config {
        PolicyConfig::TargetTracking(c) => {
            let (member, spec) = source_out(&c.metric);
            let mut conf = json!({
                "TargetValue": c.target_value,
                "ScaleOutCooldown": c.scale_out_cooldown_s,
                "ScaleInCooldown": c.scale_in_cooldown_s,
                "DisableScaleIn": c.disable_scale_in,
            });
            conf[member] = spec;
            out["PolicyType"] = json!("TargetTrackingScaling");
            out["TargetTrackingScalingPolicyConfiguration"] = conf;
        }
        PolicyConfig::Step(c) => {
            out["PolicyType"] = json!("StepScaling");
            out["StepScalingPolicyConfiguration"] = json!({
                "AdjustmentType": c.adjustment_type.as_str(),
                "StepAdjustments": c.steps.iter().map(|s| json!({
                    "MetricIntervalLowerBound": s.lower,
                    "MetricIntervalUpperBound": s.upper,
                    "ScalingAdjustment": s.adjustment,
                })).collect::<Vec<_>>(),
                "MinAdjustmentMagnitude": c.min_adjustment_magnitude,
                "Cooldown": c.cooldown_s,
                "MetricAggregationType": c.metric_aggregation.map(|m| m.as_str()),
            });
        }
    }
    out
}

/// `DescribeScalingPolicies`.
pub(super) fn describe_scaling_policies(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        #[serde(default)]
        policy_names: Vec<String>,
        resource_id: Option<String>,
    }
    let listing: Listing = input(v.clone())?;
    let i: In = input(v)?;
    let scope = format!(
        "policies\t{}\t{}",
        i.resource_id.as_deref().unwrap_or(""),
        i.policy_names.join(",")
    );
    let policies = if listing.is_ecs() {
        cx.region.autoscaling.policies_describe(&PolicyFilter {
            resource_id: i.resource_id,
            names: i.policy_names,
        })?
    } else {
        Vec::new()
    };
    let (page, next) = listing.page(cx, &scope, &policies)?;
    Ok(json!({
        "ScalingPolicies": page.iter().map(policy_out).collect::<Vec<_>>(),
        "NextToken": next,
    }))
}

/// `DeleteScalingPolicy`.
pub(super) async fn delete_scaling_policy(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        policy_name: String,
    }
    let resource_id = input::<Target>(v.clone())?.ecs()?;
    let i: In = input(v)?;
    cx.region
        .autoscaling
        .policy_delete(&resource_id, &i.policy_name)
        .await?;
    Ok(json!({}))
}
