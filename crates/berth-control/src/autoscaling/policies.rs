//! Scaling policies (spec B.2–B.3): PutScalingPolicy (create or replace), the CloudWatch
//! alarms a target-tracking policy owns, DescribeScalingPolicies, DeleteScalingPolicy.
//!
//! A target-tracking policy gets two alarms, named and configured as AWS's:
//! `TargetTracking-<ResourceId>-AlarmHigh-<uuid>` (period 60, 3 of 3 datapoints
//! `GreaterThanThreshold` the target) and, unless scale-in is disabled,
//! `TargetTracking-<ResourceId>-AlarmLow-<uuid>` (15 of 15 `LessThanThreshold` 0.9 × the
//! target), both acting on the policy's ARN. A step scaling policy acts through alarms the user
//! makes with the policy's ARN among their actions.
//!
//! Records: `scaling-policy` by `<resource id>\t<policy name>`.

use super::plan::{
    AdjustmentType, DEFAULT_COOLDOWN_S, MetricAggregation, StepAdjustment, StepScalingPolicy,
    TargetTrackingPolicy,
};
use super::targets::target_get;
use super::{AutoScaling, ServiceId, not_found, target_words, validation};
use crate::cloudwatch::{
    AlarmConfig, AlarmKind, AlarmMetric, AlarmSource, DataQuery, MetricAlarm, QueryKind,
};
use crate::records::{all, load, save};
use berth_metrics::alarm::ComparisonOperator;
use berth_metrics::{Dimension, MetricId, Statistic, Unit};
use berth_store::Kind;
use berth_types::Error;
use serde::{Deserialize, Serialize};

/// Quota: scaling policies per scalable target (spec B.5).
const MAX_POLICIES: usize = 50;

/// The predefined metrics of ECS services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PredefinedMetric {
    EcsCpu,
    EcsMemory,
    AlbRequestCountPerTarget,
}

impl PredefinedMetric {
    pub fn as_str(self) -> &'static str {
        match self {
            PredefinedMetric::EcsCpu => "ECSServiceAverageCPUUtilization",
            PredefinedMetric::EcsMemory => "ECSServiceAverageMemoryUtilization",
            PredefinedMetric::AlbRequestCountPerTarget => "ALBRequestCountPerTarget",
        }
    }

    /// The predefined metric type `name`, if ECS services have it.
    pub fn parse(name: &str) -> Result<PredefinedMetric, Error> {
        [
            PredefinedMetric::EcsCpu,
            PredefinedMetric::EcsMemory,
            PredefinedMetric::AlbRequestCountPerTarget,
        ]
        .into_iter()
        .find(|m| m.as_str() == name)
        .ok_or_else(|| {
            validation(format!(
                "Unsupported predefined metric type for service namespace ecs: {name}. ECS services have ECSServiceAverageCPUUtilization, ECSServiceAverageMemoryUtilization and ALBRequestCountPerTarget"
            ))
        })
    }
}

/// What a target-tracking policy tracks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetricSource {
    Predefined {
        metric: PredefinedMetric,
        resource_label: Option<String>,
    },
    /// `CustomizedMetricSpecification` with one metric.
    Metric {
        metric: MetricId,
        statistic: Statistic,
        unit: Option<Unit>,
    },
    /// `CustomizedMetricSpecification` with metric math (`Metrics`); periods are 60 s.
    Math(Vec<DataQuery>),
}

/// `TargetTrackingScalingPolicyConfiguration`, as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetTrackingConfig {
    pub target_value: f64,
    pub metric: MetricSource,
    pub scale_out_cooldown_s: Option<i64>,
    pub scale_in_cooldown_s: Option<i64>,
    pub disable_scale_in: Option<bool>,
}

/// `StepScalingPolicyConfiguration`, as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepConfig {
    pub adjustment_type: AdjustmentType,
    pub steps: Vec<StepAdjustment>,
    pub min_adjustment_magnitude: Option<i64>,
    pub cooldown_s: Option<i64>,
    pub metric_aggregation: Option<MetricAggregation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PolicyConfig {
    TargetTracking(TargetTrackingConfig),
    Step(StepConfig),
}

/// A scaling policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingPolicy {
    pub resource_id: String,
    pub name: String,
    pub arn: String,
    pub config: PolicyConfig,
    /// The alarms target tracking made for it, `(name, arn)`: AlarmHigh, then AlarmLow.
    #[serde(default)]
    pub alarms: Vec<(String, String)>,
    pub created_ms: i64,
}

impl ScalingPolicy {
    /// The names of the alarms this policy owns (target tracking's).
    pub fn owned_alarm_names(&self) -> Vec<String> {
        self.alarms.iter().map(|(n, _)| n.clone()).collect()
    }

    /// The planner's view of a target-tracking policy.
    pub fn tracking(&self) -> Option<TargetTrackingPolicy> {
        let PolicyConfig::TargetTracking(c) = &self.config else {
            return None;
        };
        Some(TargetTrackingPolicy {
            name: self.name.clone(),
            target_value: c.target_value,
            disable_scale_in: c.disable_scale_in.unwrap_or(false),
            scale_out_cooldown_s: c.scale_out_cooldown_s.unwrap_or(DEFAULT_COOLDOWN_S),
            scale_in_cooldown_s: c.scale_in_cooldown_s.unwrap_or(DEFAULT_COOLDOWN_S),
        })
    }

    /// The planner's view of a step scaling policy.
    pub fn stepping(&self) -> Option<StepScalingPolicy> {
        let PolicyConfig::Step(c) = &self.config else {
            return None;
        };
        Some(StepScalingPolicy {
            name: self.name.clone(),
            adjustment_type: c.adjustment_type,
            steps: c.steps.clone(),
            min_adjustment_magnitude: c.min_adjustment_magnitude,
            cooldown_s: c.cooldown_s.unwrap_or(DEFAULT_COOLDOWN_S),
            metric_aggregation: c.metric_aggregation.unwrap_or_default(),
        })
    }
}

/// PutScalingPolicy in domain terms.
#[derive(Debug, Clone)]
pub struct PutPolicy {
    pub resource_id: String,
    pub name: String,
    pub config: PolicyConfig,
}

/// DescribeScalingPolicies' filter.
#[derive(Debug, Clone, Default)]
pub struct PolicyFilter {
    pub resource_id: Option<String>,
    pub names: Vec<String>,
}

pub(super) fn policy_key(resource_id: &str, name: &str) -> String {
    format!("{resource_id}\t{name}")
}

/// `(resource id, policy name)` of a policy ARN
/// (`…:scalingPolicy:<uuid>:resource/ecs/<resource id>:policyName/<name>`).
pub fn parse_policy_arn(arn: &str) -> Option<(String, String)> {
    let (_, rest) = arn.split_once(":scalingPolicy:")?;
    let (_, rest) = rest.split_once(":resource/ecs/")?;
    let (rid, name) = rest.split_once(":policyName/")?;
    Some((rid.to_string(), name.to_string()))
}

fn check_config(config: &PolicyConfig) -> Result<(), Error> {
    match config {
        PolicyConfig::Step(c) => {
            let p = StepScalingPolicy {
                name: String::new(),
                adjustment_type: c.adjustment_type,
                steps: c.steps.clone(),
                min_adjustment_magnitude: c.min_adjustment_magnitude,
                cooldown_s: c.cooldown_s.unwrap_or(DEFAULT_COOLDOWN_S),
                metric_aggregation: c.metric_aggregation.unwrap_or_default(),
            };
            p.check().map_err(|e| validation(e.to_string()))
        }
        PolicyConfig::TargetTracking(c) => {
            if !(c.target_value.is_finite() && c.target_value >= 8.515920e-109) {
                return Err(validation(format!(
                    "TargetValue must be a positive number between 8.515920e-109 and 6.174597e+307, not {}",
                    c.target_value
                )));
            }
            for cd in [c.scale_out_cooldown_s, c.scale_in_cooldown_s]
                .into_iter()
                .flatten()
            {
                if !(0..=31_536_000).contains(&cd) {
                    return Err(validation(
                        "Cooldown must be between 0 and 31536000 seconds",
                    ));
                }
            }
            if let MetricSource::Predefined {
                metric: PredefinedMetric::AlbRequestCountPerTarget,
                resource_label,
            } = &c.metric
            {
                let label = resource_label.as_deref().ok_or_else(|| {
                    validation("ResourceLabel must be specified for the predefined metric type ALBRequestCountPerTarget")
                })?;
                target_group_of(label)?;
            }
            Ok(())
        }
    }
}

/// The `TargetGroup` dimension value (`targetgroup/<name>/<id>`) of an
/// `ALBRequestCountPerTarget` resource label (`app/<lb>/<id>/targetgroup/<tg>/<id>`).
fn target_group_of(label: &str) -> Result<String, Error> {
    let parts: Vec<&str> = label.split('/').collect();
    match parts.as_slice() {
        ["app", lb, lb_id, "targetgroup", tg, tg_id]
            if [lb, lb_id, tg, tg_id].iter().all(|p| !p.is_empty()) =>
        {
            Ok(format!("targetgroup/{tg}/{tg_id}"))
        }
        _ => Err(validation(format!(
            "Invalid ResourceLabel: {label}. It must be app/<load-balancer-name>/<load-balancer-id>/targetgroup/<target-group-name>/<target-group-id>"
        ))),
    }
}

/// The alarm source a target-tracking policy's alarms watch.
fn alarm_source(id: &ServiceId, metric: &MetricSource) -> Result<AlarmSource, Error> {
    let one = |ns: &str, name: &str, dims: Vec<Dimension>, statistic| {
        Ok(AlarmSource::Metric(AlarmMetric {
            metric: MetricId::new(ns, name, dims).map_err(crate::cloudwatch::input_error)?,
            statistic,
            extended: false,
            period_s: 60,
            unit: None,
        }))
    };
    let service_dims = || {
        vec![
            Dimension::new("ClusterName", id.cluster.as_str()),
            Dimension::new("ServiceName", id.service.as_str()),
        ]
    };
    match metric {
        MetricSource::Predefined {
            metric,
            resource_label,
        } => match metric {
            PredefinedMetric::EcsCpu => one(
                "AWS/ECS",
                "CPUUtilization",
                service_dims(),
                Statistic::Average,
            ),
            PredefinedMetric::EcsMemory => one(
                "AWS/ECS",
                "MemoryUtilization",
                service_dims(),
                Statistic::Average,
            ),
            PredefinedMetric::AlbRequestCountPerTarget => {
                let tg = target_group_of(resource_label.as_deref().unwrap_or_default())?;
                one(
                    "AWS/ApplicationELB",
                    "RequestCountPerTarget",
                    vec![Dimension::new("TargetGroup", tg)],
                    Statistic::Sum,
                )
            }
        },
        MetricSource::Metric {
            metric,
            statistic,
            unit,
        } => Ok(AlarmSource::Metric(AlarmMetric {
            metric: metric.clone(),
            statistic: *statistic,
            extended: false,
            period_s: 60,
            unit: *unit,
        })),
        MetricSource::Math(queries) => Ok(AlarmSource::Math(
            queries
                .iter()
                .cloned()
                .map(|mut q| {
                    if let QueryKind::Stat(s) = &mut q.what {
                        s.period_s = 60;
                    }
                    q
                })
                .collect(),
        )),
    }
}

/// The configurations of a target-tracking policy's alarms: AlarmHigh, and AlarmLow unless
/// scale-in is disabled. `names` are the names they keep across updates.
fn tracking_alarms(
    id: &ServiceId,
    arn: &str,
    c: &TargetTrackingConfig,
    names: (&str, &str),
) -> Result<Vec<AlarmConfig>, Error> {
    let source = alarm_source(id, &c.metric)?;
    let alarm = |name: &str, periods: u32, threshold: f64, comparison| AlarmConfig {
        name: name.to_string(),
        description: Some(format!(
            "DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {arn}."
        )),
        actions_enabled: true,
        ok_actions: Vec::new(),
        alarm_actions: vec![arn.to_string()],
        insufficient_data_actions: Vec::new(),
        kind: AlarmKind::Metric(MetricAlarm {
            source: source.clone(),
            evaluation_periods: periods,
            datapoints_to_alarm: Some(periods),
            threshold: Some(threshold),
            threshold_metric_id: None,
            comparison,
            treat_missing_data: None,
            evaluate_low_sample_count_percentile: None,
        }),
    };
    let mut out = vec![alarm(
        names.0,
        3,
        c.target_value,
        ComparisonOperator::GreaterThanThreshold,
    )];
    if !c.disable_scale_in.unwrap_or(false) {
        out.push(alarm(
            names.1,
            15,
            0.9 * c.target_value,
            ComparisonOperator::LessThanThreshold,
        ));
    }
    Ok(out)
}

impl AutoScaling {
    /// PutScalingPolicy: creates the policy or replaces its configuration (its ARN and the
    /// names of its alarms stay). Returns the policy with its alarms.
    pub async fn policy_put(&self, cmd: PutPolicy) -> Result<ScalingPolicy, Error> {
        let id = ServiceId::parse(&cmd.resource_id)?;
        check_config(&cmd.config)?;
        let key = policy_key(&cmd.resource_id, &cmd.name);
        let existing = self
            .store
            .read(|r| load::<ScalingPolicy>(r.get(Kind::ScalingPolicy, &key)?))?
            .map(|(_, p)| p);
        let arn = existing.as_ref().map_or_else(
            || {
                self.scope.arn(
                    "autoscaling",
                    &format!(
                        "scalingPolicy:{}:resource/ecs/{}:policyName/{}",
                        uuid::Uuid::new_v4(),
                        cmd.resource_id,
                        cmd.name
                    ),
                )
            },
            |p| p.arn.clone(),
        );
        // Alarm names stay across updates (AlarmLow's too, when scale-in comes back).
        let suffix = existing
            .as_ref()
            .and_then(|p| p.alarms.first())
            .and_then(|(n, _)| n.rsplit_once("-AlarmHigh-").map(|(_, u)| u.to_string()))
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let high = format!("TargetTracking-{}-AlarmHigh-{suffix}", cmd.resource_id);
        let low = format!("TargetTracking-{}-AlarmLow-{suffix}", cmd.resource_id);
        let configs = match &cmd.config {
            PolicyConfig::TargetTracking(c) => tracking_alarms(&id, &arn, c, (&high, &low))?,
            PolicyConfig::Step(_) => Vec::new(),
        };
        let now = self.now();
        let (policy, created) = {
            let cmd = cmd.clone();
            let arn = arn.clone();
            self.store
                .write(move |tx| {
                    target_get(tx, &cmd.resource_id)?;
                    let key = policy_key(&cmd.resource_id, &cmd.name);
                    let found = load::<ScalingPolicy>(tx.get(Kind::ScalingPolicy, &key)?)?;
                    let (created_ms, expected) = match &found {
                        Some((g, p)) => (p.created_ms, Some(*g)),
                        None => {
                            let prefix = format!("{}\t", cmd.resource_id);
                            if all::<ScalingPolicy>(tx, Kind::ScalingPolicy, &prefix)?.len()
                                >= MAX_POLICIES
                            {
                                return Err(Error::coded(
                                    "LimitExceededException",
                                    format!(
                                        "You have reached the limit of {MAX_POLICIES} scaling policies for the scalable target {}",
                                        cmd.resource_id
                                    ),
                                ));
                            }
                            (now, None)
                        }
                    };
                    let p = ScalingPolicy {
                        resource_id: cmd.resource_id,
                        name: cmd.name,
                        arn,
                        config: cmd.config,
                        alarms: Vec::new(),
                        created_ms,
                    };
                    save(tx, Kind::ScalingPolicy, &key, None, &p, expected)?;
                    Ok((p, expected.is_none()))
                })
                .await?
        };
        let mut alarms = Vec::new();
        for config in configs {
            match self.cloudwatch.alarm_put(config, Vec::new()).await {
                Ok(a) => alarms.push((a.config.name.clone(), a.arn.clone())),
                Err(e) => {
                    if created {
                        let _ = self.policy_remove(&policy.resource_id, &policy.name).await;
                    }
                    return Err(e);
                }
            }
        }
        // Alarms the new configuration no longer has (AlarmLow once scale-in is disabled, both
        // when a policy becomes a step policy).
        let stale: Vec<String> = existing
            .map(|p| p.owned_alarm_names())
            .unwrap_or_default()
            .into_iter()
            .filter(|n| !alarms.iter().any(|(a, _)| a == n))
            .collect();
        if !stale.is_empty() {
            self.cloudwatch.alarms_delete_existing(stale).await?;
        }
        let key = policy_key(&policy.resource_id, &policy.name);
        let kept = alarms.clone();
        self.store
            .write(move |tx| {
                let Some((g, mut p)) = load::<ScalingPolicy>(tx.get(Kind::ScalingPolicy, &key)?)?
                else {
                    return Err(Error::Conflict);
                };
                p.alarms = kept;
                save(tx, Kind::ScalingPolicy, &key, None, &p, Some(g))?;
                Ok(p)
            })
            .await
    }

    /// DescribeScalingPolicies: by resource id, then name.
    pub fn policies_describe(&self, f: &PolicyFilter) -> Result<Vec<ScalingPolicy>, Error> {
        let prefix = f
            .resource_id
            .as_ref()
            .map(|r| format!("{r}\t"))
            .unwrap_or_default();
        let rows = self
            .store
            .read(|r| all::<ScalingPolicy>(r, Kind::ScalingPolicy, &prefix))?;
        Ok(rows
            .into_iter()
            .map(|(_, p)| p)
            .filter(|p| f.names.is_empty() || f.names.contains(&p.name))
            .collect())
    }

    /// The policy `name` of `resource_id`.
    pub fn policy_get(
        &self,
        resource_id: &str,
        name: &str,
    ) -> Result<Option<ScalingPolicy>, Error> {
        let key = policy_key(resource_id, name);
        let rec = self.store.read(|r| r.get(Kind::ScalingPolicy, &key))?;
        Ok(load::<ScalingPolicy>(rec)?.map(|(_, p)| p))
    }

    /// DeleteScalingPolicy: the policy, the alarms target tracking made for it, and its
    /// scale-in cooldown mark.
    pub async fn policy_delete(&self, resource_id: &str, name: &str) -> Result<(), Error> {
        let p = self.policy_remove(resource_id, name).await?;
        let owned = p.owned_alarm_names();
        if !owned.is_empty() {
            self.cloudwatch.alarms_delete_existing(owned).await?;
        }
        Ok(())
    }

    async fn policy_remove(&self, resource_id: &str, name: &str) -> Result<ScalingPolicy, Error> {
        let (rid, name) = (resource_id.to_string(), name.to_string());
        self.store
            .write(move |tx| {
                let key = policy_key(&rid, &name);
                let Some((g, p)) = load::<ScalingPolicy>(tx.get(Kind::ScalingPolicy, &key)?)?
                else {
                    return Err(not_found(format!(
                        "No scaling policy found for {}, policy name: {name}",
                        target_words(&rid)
                    )));
                };
                tx.delete(Kind::ScalingPolicy, &key, g)?;
                if let Some(rec) = tx.get(Kind::ScalableTarget, &rid)? {
                    let mut t: super::ScalableTarget = crate::records::decode(&rec.doc, &rec.key)?;
                    t.cooldowns.scale_in_ms.remove(&name);
                    save(
                        tx,
                        Kind::ScalableTarget,
                        &rid,
                        None,
                        &t,
                        Some(rec.generation),
                    )?;
                }
                Ok(p)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_arns_name_their_target_and_policy() {
        let arn = "arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:6d8972f3-efc8-437c-92d1-6270f29a66e7:resource/ecs/service/default/web:policyName/cpu75";
        assert_eq!(
            parse_policy_arn(arn),
            Some(("service/default/web".into(), "cpu75".into()))
        );
        assert_eq!(parse_policy_arn("arn:aws:sns:us-east-1:0:topic"), None);
    }

    #[test]
    fn resource_labels_name_a_target_group() {
        assert_eq!(
            target_group_of("app/web/50dc6c495c0c9188/targetgroup/tg/943f017f100becff").unwrap(),
            "targetgroup/tg/943f017f100becff"
        );
        for bad in [
            "",
            "app/web/1/targetgroup/tg",
            "net/web/1/targetgroup/tg/2",
            "app//1/targetgroup/tg/2",
        ] {
            assert!(target_group_of(bad).is_err(), "{bad}");
        }
    }
}
