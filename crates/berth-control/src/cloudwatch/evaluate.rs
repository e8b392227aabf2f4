//! The alarm evaluator (a background task on the leader): at every pass each metric alarm is
//! judged over its evaluation range (N + 2 periods ending with the last complete one), with
//! `berth_metrics::evaluate`; composite alarms follow their children in the same pass. A
//! state change is stored with its history item in one job, and the actions of the new state
//! run. Application Auto Scaling actions also run again, once a minute, while the alarm
//! stays in their state, as CloudWatch re-invokes them.
//!
//! Actions are returned to the caller ([`FiredAction`]): the glue that runs the background
//! tasks hands Auto Scaling's to Application Auto Scaling and records the outcome
//! ([`CloudWatch::action_recorded`]). Other actions (SNS, EC2, SSM) are recorded as failed:
//! Berth delivers none of them.

use super::CloudWatch;
use super::alarms::{Alarm, AlarmKind, AlarmSource, HistoryItem, history_put, state_history};
use super::metrics::MetricStat;
use crate::background::Counts;
use crate::records::{load, save};
use berth_metrics::alarm::{AlarmState, PeriodValue};
use berth_metrics::{Rule, Statistic, math};
use berth_store::Kind;
use berth_types::Error;
use std::collections::HashMap;

/// An action an alarm fired.
#[derive(Debug, Clone, PartialEq)]
pub struct FiredAction {
    pub arn: String,
    pub alarm: String,
    pub state: AlarmState,
    /// The alarm's threshold and its newest datapoint (what step scaling measures from).
    pub threshold: Option<f64>,
    pub value: Option<f64>,
    pub at_ms: i64,
}

/// Whether an action ARN names an Application Auto Scaling policy.
pub fn is_scaling_policy(arn: &str) -> bool {
    arn.starts_with("arn:aws:autoscaling:") && arn.contains(":scalingPolicy:")
}

/// One alarm's judgement in a pass.
struct Judged {
    name: String,
    state: AlarmState,
    reason: String,
    reason_data: Option<String>,
    value: Option<f64>,
}

impl CloudWatch {
    /// One pass: every alarm whose period completed since it was last judged. Returns the
    /// counts and the actions to run.
    pub async fn alarms_evaluate(&self) -> Result<(Counts, Vec<FiredAction>), Error> {
        let now = self.clock.now().0;
        let alarms = self.alarms_all()?;
        let mut judged = Vec::new();
        let mut repeat = Vec::new();
        for a in &alarms {
            let AlarmKind::Metric(m) = &a.config.kind else {
                continue;
            };
            let spec = m.spec();
            let range = self.period_values(a, now).await?;
            let value = range.iter().rev().find_map(|p| p.value);
            let Ok(e) = berth_metrics::evaluate(&spec, &range, now, a.state) else {
                continue;
            };
            if e.state != a.state {
                judged.push(Judged {
                    name: a.config.name.clone(),
                    state: e.state,
                    reason: e.reason,
                    reason_data: Some(e.reason_data),
                    value,
                });
            } else if a.config.actions_enabled && self.repeat_due(&a.config.name, now) {
                repeat.extend(scaling_actions(a, a.state, value, now));
            }
        }
        let n_metric = judged.len() as u64;
        let mut states: HashMap<String, AlarmState> = alarms
            .iter()
            .map(|a| (a.config.name.clone(), a.state))
            .collect();
        for j in &judged {
            states.insert(j.name.clone(), j.state);
        }
        for a in alarms.iter().filter(|a| a.is_composite()) {
            let AlarmKind::Composite(c) = &a.config.kind else {
                continue;
            };
            let Ok(rule) = Rule::parse(&c.rule) else {
                continue;
            };
            let state_of = |r: &str| states.get(berth_metrics::alarm_name_of(r)).copied();
            let state = rule.state(&state_of);
            if state != a.state {
                judged.push(Judged {
                    name: a.config.name.clone(),
                    state,
                    reason: composite_reason(&rule, &state_of, state),
                    reason_data: None,
                    value: None,
                });
            }
        }
        let transitions = judged.len() as u64;
        let mut fired = self.transition(judged, now).await?;
        fired.extend(repeat);
        Ok((
            vec![
                ("alarms judged", alarms.len() as u64),
                ("metric alarms changed", n_metric),
                ("state changes", transitions),
                ("actions fired", fired.len() as u64),
            ],
            fired,
        ))
    }

    /// Whether an alarm's Auto Scaling actions are due again: once per minute of the clock
    /// (the minute is noted in memory; a new leader may repeat one, which its cooldowns
    /// absorb).
    fn repeat_due(&self, alarm: &str, now: i64) -> bool {
        let minute = now.div_euclid(60_000);
        let mut last = self.evaluated.lock().expect("evaluated lock");
        if last.get(alarm) == Some(&minute) {
            return false;
        }
        last.insert(alarm.to_string(), minute);
        true
    }

    /// The datapoints of a metric alarm's last `EvaluationPeriods` periods that have data,
    /// oldest first: what a step scaling policy aggregates and target tracking reads the
    /// newest of.
    pub async fn alarm_datapoints(&self, name: &str) -> Result<Vec<f64>, Error> {
        let Some(a) = self.alarm_get(name)? else {
            return Ok(Vec::new());
        };
        let AlarmKind::Metric(m) = &a.config.kind else {
            return Ok(Vec::new());
        };
        let range = self.period_values(&a, self.clock.now().0).await?;
        let skip = range.len().saturating_sub(m.evaluation_periods as usize);
        Ok(range[skip..].iter().filter_map(|p| p.value).collect())
    }

    /// The evaluation range of a metric alarm at `now`, one value per period.
    async fn period_values(&self, a: &Alarm, now: i64) -> Result<Vec<PeriodValue>, Error> {
        let AlarmKind::Metric(m) = &a.config.kind else {
            return Ok(Vec::new());
        };
        let spec = m.spec();
        let starts = spec.evaluation_range(now);
        let (Some(&first), Some(&last)) = (starts.first(), starts.last()) else {
            return Ok(Vec::new());
        };
        let end = last + spec.period_s * 1000;
        let (series, counts) = match &m.source {
            AlarmSource::Metric(metric) => {
                let stat = MetricStat {
                    metric: metric.metric.clone(),
                    period_s: metric.period_s,
                    stat: metric.statistic,
                    unit: metric.unit,
                };
                let (values, _) = self.stat_series(&stat, first, end).await?;
                let counted = MetricStat {
                    stat: Statistic::SampleCount,
                    ..stat
                };
                let (counts, _) = self.stat_series(&counted, first, end).await?;
                (values, Some(counts))
            }
            AlarmSource::Math(queries) => {
                let values = self.evaluate_queries(queries, first, end).await?;
                let series = queries
                    .iter()
                    .zip(values)
                    .find(|(q, _)| q.return_data)
                    .and_then(|(_, v)| match v {
                        math::Value::Series(s) => Some(s),
                        math::Value::Array(mut list) if list.len() == 1 => {
                            list.pop().map(|l| l.series)
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                (series, None)
            }
        };
        Ok(starts
            .into_iter()
            .map(|t| PeriodValue {
                start_ms: t,
                value: series.at(t),
                sample_count: counts.as_ref().and_then(|c| c.at(t)),
            })
            .collect())
    }

    /// Stores the state changes of a pass (each with its history item) in one job, and
    /// returns the actions of the new states.
    async fn transition(&self, judged: Vec<Judged>, now: i64) -> Result<Vec<FiredAction>, Error> {
        if judged.is_empty() {
            return Ok(Vec::new());
        }
        let changed: Vec<(Alarm, Option<f64>)> = self
            .store
            .write(move |tx| {
                let mut out = Vec::new();
                for j in judged {
                    let Some((g, mut a)) = load::<Alarm>(tx.get(Kind::Alarm, &j.name)?)? else {
                        continue;
                    };
                    let (old, old_reason) = (a.state, std::mem::take(&mut a.state_reason));
                    a.state = j.state;
                    a.state_reason = j.reason;
                    a.state_reason_data = j.reason_data;
                    a.state_updated_ms = now;
                    a.state_transitioned_ms = now;
                    history_put(tx, &state_history(&a, old, &old_reason, now))?;
                    save(tx, Kind::Alarm, &j.name, None, &a, Some(g))?;
                    out.push((a, j.value));
                }
                Ok(out)
            })
            .await?;
        let mut fired = Vec::new();
        for (a, value) in changed {
            if a.config.actions_enabled {
                self.repeat_due(&a.config.name, now);
                fired.extend(actions_of(&a, a.state, value, now));
            }
        }
        Ok(fired)
    }

    /// Records an action's outcome in its alarm's history.
    pub async fn action_recorded(
        &self,
        action: &FiredAction,
        outcome: Result<(), String>,
    ) -> Result<(), Error> {
        let Some(alarm) = self.alarm_get(&action.alarm)? else {
            return Ok(());
        };
        let summary = match &outcome {
            Ok(()) => format!("Successfully executed action {}", action.arn),
            Err(e) => format!(
                "Failed to execute action {}. Received error: \"{e}\"",
                action.arn
            ),
        };
        let data = serde_json::json!({
            "actionState": if outcome.is_ok() { "Succeeded" } else { "Failed" },
            "stateUpdateTimestamp": action.at_ms,
        });
        let item = HistoryItem {
            alarm_name: alarm.config.name.clone(),
            alarm_type: alarm.type_name().into(),
            timestamp_ms: self.clock.now().0,
            item_type: "Action".into(),
            summary,
            data: data.to_string(),
        };
        self.store.write(move |tx| history_put(tx, &item)).await
    }

    /// The actions SetAlarmState's change fires.
    pub fn actions_for_change(&self, a: &Alarm) -> Vec<FiredAction> {
        if !a.config.actions_enabled {
            return Vec::new();
        }
        actions_of(a, a.state, None, self.clock.now().0)
    }
}

/// Every action of `state`.
fn actions_of(a: &Alarm, state: AlarmState, value: Option<f64>, now: i64) -> Vec<FiredAction> {
    let threshold = match &a.config.kind {
        AlarmKind::Metric(m) => m.threshold,
        AlarmKind::Composite(_) => None,
    };
    a.config
        .actions(state)
        .iter()
        .map(|arn| FiredAction {
            arn: arn.clone(),
            alarm: a.config.name.clone(),
            state,
            threshold,
            value,
            at_ms: now,
        })
        .collect()
}

/// The Auto Scaling actions of `state` (run again while the alarm stays in it).
fn scaling_actions(a: &Alarm, state: AlarmState, value: Option<f64>, now: i64) -> Vec<FiredAction> {
    actions_of(a, state, value, now)
        .into_iter()
        .filter(|f| is_scaling_policy(&f.arn))
        .collect()
}

/// A composite alarm's reason: which children are in which state.
fn composite_reason(
    rule: &Rule,
    state_of: &impl Fn(&str) -> Option<AlarmState>,
    state: AlarmState,
) -> String {
    let children: Vec<String> = rule
        .references()
        .iter()
        .map(|r| {
            let s = state_of(r).map_or("(missing)", |s| s.as_str());
            format!("{} ({s})", berth_metrics::alarm_name_of(r))
        })
        .collect();
    format!(
        "{} the rule: {}",
        if state == AlarmState::Alarm {
            "Alarm rule holds for"
        } else {
            "Alarm rule does not hold for"
        },
        children.join(", ")
    )
}
