//! The scaler: runs a policy whose alarm is in ALARM ([`AutoScaling::policy_fired`], once when
//! the alarm goes to ALARM and then every minute while it stays there) and moves a desired
//! count back inside new bounds ([`AutoScaling::bounds_apply`]).
//!
//! Target-tracking policies of one target vote together (`plan::combine`): each policy's
//! alarms are read, the firing one's datapoint comes with the action, the others' newest
//! datapoints from CloudWatch. Step policies act alone, on their alarm's datapoints
//! aggregated with `MetricAggregationType`.
//!
//! The decision is made inside the store write that applies it, on the service as it is
//! then (a manual UpdateService in between is seen), and that write carries the service's
//! new desired count with an event, the target's cooldown marks and the activity.

use super::activities::{Activity, NotScaled, activity_put};
use super::plan::{self, Decision, Hold, Scale, TargetState, Trigger};
use super::policies::parse_policy_arn;
use super::targets::{ScalableTarget, target_get};
use super::{AutoScaling, ServiceId, not_found, target_words};
use crate::cloudwatch::FiredAction;
use crate::records::save;
use berth_metrics::alarm::AlarmState;
use berth_store::{Kind, Tx};
use berth_types::Error;
use berth_types::ecs::Service;

/// What the planner is asked, gathered before the write.
enum Ask {
    /// Every target-tracking policy of the target: in ALARM (which alarm, its datapoint) or
    /// idle.
    Tracking(Vec<(plan::TargetTrackingPolicy, Option<(Trigger, f64)>)>),
    Step {
        policy: plan::StepScalingPolicy,
        threshold: f64,
        metric: f64,
    },
}

impl AutoScaling {
    /// Runs the policy an alarm action names. `Err` is the reason the action failed, for the
    /// alarm's history.
    pub async fn policy_fired(&self, action: &FiredAction) -> Result<(), String> {
        if action.state != AlarmState::Alarm {
            return Ok(());
        }
        self.run_policy(action).await.map_err(|e| match e {
            Error::Coded { message, .. } => message,
            other => other.to_string(),
        })
    }

    async fn run_policy(&self, action: &FiredAction) -> Result<(), Error> {
        let missing = || not_found(format!("No scaling policy found for ARN {}", action.arn));
        let (rid, name) = parse_policy_arn(&action.arn).ok_or_else(missing)?;
        let policy = self
            .policy_get(&rid, &name)?
            .filter(|p| p.arn == action.arn)
            .ok_or_else(missing)?;
        let ask = match (policy.tracking(), policy.stepping()) {
            (Some(_), _) => Ask::Tracking(self.tracking_votes(&rid, action).await?),
            (None, Some(step)) => {
                let values = self.cloudwatch.alarm_datapoints(&action.alarm).await?;
                Ask::Step {
                    metric: aggregate(step.metric_aggregation, &values).unwrap_or(f64::NAN),
                    threshold: action.threshold.unwrap_or(f64::NAN),
                    policy: step,
                }
            }
            (None, None) => return Ok(()),
        };
        let cause = format!(
            "monitor alarm {} in state ALARM triggered policy {}",
            action.alarm, policy.name
        );
        let now = self.now();
        let scaled = self
            .store
            .write(move |tx| {
                let (g, mut target, id, state) = snapshot(tx, &rid)?;
                let decision = match &ask {
                    Ask::Tracking(votes) => plan::combine(
                        &votes
                            .iter()
                            .map(|(p, vote)| match vote {
                                Some((trigger, value)) => {
                                    plan::target_tracking(p, *trigger, *value, &state, now)
                                }
                                None => Decision::idle(p),
                            })
                            .collect::<Vec<_>>(),
                    ),
                    Ask::Step {
                        policy,
                        threshold,
                        metric,
                    } => plan::step(policy, *threshold, *metric, &state, now),
                };
                let scaled = match decision {
                    Decision::Scale(s) => {
                        apply(tx, &id, &mut target, state, &s, &cause, now)?;
                        true
                    }
                    Decision::Hold(h) => {
                        not_scaled(tx, &mut target, &state, h, &cause, now)?;
                        false
                    }
                };
                save(tx, Kind::ScalableTarget, &rid, None, &target, Some(g))?;
                Ok(scaled)
            })
            .await?;
        if scaled {
            self.ecs.wake_scheduler();
        }
        Ok(())
    }

    /// The votes of the target-tracking policies of `rid` when `action` fired.
    async fn tracking_votes(
        &self,
        rid: &str,
        action: &FiredAction,
    ) -> Result<Vec<(plan::TargetTrackingPolicy, Option<(Trigger, f64)>)>, Error> {
        let policies = self.policies_describe(&super::PolicyFilter {
            resource_id: Some(rid.to_string()),
            names: Vec::new(),
        })?;
        let mut votes = Vec::new();
        for p in policies {
            let Some(tracking) = p.tracking() else {
                continue;
            };
            let mut vote = None;
            for (i, (alarm, _)) in p.alarms.iter().enumerate() {
                let trigger = if i == 0 {
                    Trigger::AlarmHigh
                } else {
                    Trigger::AlarmLow
                };
                let value = if *alarm == action.alarm {
                    match action.value {
                        Some(v) => Some(v),
                        None => self.newest(alarm).await?,
                    }
                } else if self
                    .cloudwatch
                    .alarm_get(alarm)?
                    .is_some_and(|a| a.state == AlarmState::Alarm)
                {
                    self.newest(alarm).await?
                } else {
                    None
                };
                if let Some(v) = value {
                    vote = Some((trigger, v));
                    break;
                }
            }
            votes.push((tracking, vote));
        }
        Ok(votes)
    }

    async fn newest(&self, alarm: &str) -> Result<Option<f64>, Error> {
        Ok(self
            .cloudwatch
            .alarm_datapoints(alarm)
            .await?
            .last()
            .copied())
    }

    /// Moves the desired count of `resource_id`'s service inside its target's bounds, if it is
    /// outside, as an activity (after a registration or a scheduled action changed them).
    pub(super) async fn bounds_apply(&self, resource_id: &str) -> Result<(), Error> {
        let rid = resource_id.to_string();
        let now = self.now();
        let scaled = self
            .store
            .write(move |tx| {
                let (g, mut target, id, state) = snapshot(tx, &rid)?;
                let Some(s) = plan::bounds(&state) else {
                    return Ok(false);
                };
                let cause = s.cause("");
                apply(tx, &id, &mut target, state, &s, &cause, now)?;
                save(tx, Kind::ScalableTarget, &rid, None, &target, Some(g))?;
                Ok(true)
            })
            .await?;
        if scaled {
            self.ecs.wake_scheduler();
        }
        Ok(())
    }
}

/// A target as the planner sees it inside a write: its record (with its generation), its
/// service, their state.
fn snapshot(
    tx: &Tx<'_>,
    rid: &str,
) -> Result<
    (
        berth_types::Generation,
        ScalableTarget,
        ServiceId,
        TargetState,
    ),
    Error,
> {
    let (g, target) = target_get(tx, rid)?;
    let id = ServiceId::parse(rid)?;
    let state = target_state(&target, &service_of(tx, &id)?);
    Ok((g, target, id, state))
}

/// The target's service, ACTIVE.
fn service_of(tx: &Tx<'_>, id: &ServiceId) -> Result<Service, Error> {
    crate::ecs::service_in(tx, &id.cluster, &id.service)?
        .filter(|s| s.status == "ACTIVE")
        .ok_or_else(|| {
            not_found(format!(
                "ECS service doesn't exist: {} ({})",
                id.resource_id(),
                target_words(&id.resource_id())
            ))
        })
}

/// What the planner reads: the target's bounds, suspension and marks, the service's counts.
fn target_state(t: &ScalableTarget, s: &Service) -> TargetState {
    TargetState {
        running: s
            .deployments
            .iter()
            .map(|d| i64::from(d.running_count))
            .sum(),
        desired: i64::from(s.desired_count),
        min: t.min,
        max: t.max,
        suspended: t.suspended,
        deployment_in_progress: s.deployments.len() > 1,
        cooldowns: t.cooldowns.clone(),
    }
}

/// Applies a change: the service's desired count with an event saying why, the target's
/// marks, the activity.
fn apply(
    tx: &mut Tx<'_>,
    id: &ServiceId,
    target: &mut ScalableTarget,
    mut state: TargetState,
    s: &Scale,
    cause: &str,
    now: i64,
) -> Result<(), Error> {
    let event = format!(
        "(service {}) Application Auto Scaling changed the desired count from {} to {}: {cause}.",
        id.service, s.from, s.to
    );
    crate::ecs::scale_service(tx, &id.cluster, &id.service, s.to, event)?;
    state.record(s, now);
    target.cooldowns = state.cooldowns;
    target.last_not_scaled = None;
    activity_put(
        tx,
        &Activity::done(
            &target.resource_id,
            s.description(),
            cause.to_string(),
            "Successful",
            Some(s.status_message()),
            now,
        ),
    )
}

/// Records a hold that has a `NotScaledReasons` code, unless the same hold of the same cause
/// was the last one recorded.
fn not_scaled(
    tx: &mut Tx<'_>,
    target: &mut ScalableTarget,
    state: &TargetState,
    hold: Hold,
    cause: &str,
    now: i64,
) -> Result<(), Error> {
    let Some(code) = hold.not_scaled_code() else {
        return Ok(());
    };
    let seen = (cause.to_string(), code.to_string());
    if target.last_not_scaled.as_ref() == Some(&seen) {
        return Ok(());
    }
    let mut a = Activity::done(
        &target.resource_id,
        super::plan::NOT_SCALED_DESCRIPTION.to_string(),
        cause.to_string(),
        "Failed",
        None,
        now,
    );
    a.not_scaled = vec![NotScaled {
        code: code.to_string(),
        max: (hold == Hold::AtMaxCapacity).then_some(state.max),
        min: (hold == Hold::AtMinCapacity).then_some(state.min),
        current: Some(state.desired),
    }];
    activity_put(tx, &a)?;
    target.last_not_scaled = Some(seen);
    Ok(())
}

/// A step policy's metric: its alarm's datapoints aggregated with `MetricAggregationType`.
fn aggregate(how: plan::MetricAggregation, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match how {
        plan::MetricAggregation::Average => values.iter().sum::<f64>() / values.len() as f64,
        plan::MetricAggregation::Minimum => values.iter().copied().fold(f64::INFINITY, f64::min),
        plan::MetricAggregation::Maximum => {
            values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_metrics_aggregate_as_the_policy_says() {
        let v = [40.0, 70.0, 61.0];
        assert_eq!(aggregate(plan::MetricAggregation::Average, &v), Some(57.0));
        assert_eq!(aggregate(plan::MetricAggregation::Minimum, &v), Some(40.0));
        assert_eq!(aggregate(plan::MetricAggregation::Maximum, &v), Some(70.0));
        assert_eq!(aggregate(plan::MetricAggregation::Average, &[]), None);
    }
}
