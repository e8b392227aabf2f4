//! CloudWatch alarms of one region: metric alarms (one metric, or metric math) and composite
//! alarms, their states and history, tags, and the operations on them. Evaluation is
//! [`super::evaluate`].
//!
//! Records: `alarm` by name (the whole [`Alarm`]), `alarm-history` by
//! `<alarm>\t<time><sequence>` (kept 30 days, as CloudWatch keeps history, also of deleted
//! alarms).

use super::CloudWatch;
use super::metrics::{DataQuery, QueryKind};
use crate::records::{all, decode, load, save};
use berth_metrics::alarm::{AlarmSpec, AlarmState, ComparisonOperator, TreatMissingData};
use berth_metrics::{MetricId, Rule, Statistic, Unit};
use berth_store::{Kind, ListQuery, Tx};
use berth_types::{Error, Tag};
use serde::{Deserialize, Serialize};

/// History is kept this long.
pub(super) const HISTORY_MS: i64 = 30 * 24 * 3_600_000;
/// Actions per state an alarm may have.
const MAX_ACTIONS: usize = 5;

/// A metric alarm's one metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmMetric {
    pub metric: MetricId,
    pub statistic: Statistic,
    /// Given as `ExtendedStatistic` (a percentile) rather than `Statistic`.
    pub extended: bool,
    pub period_s: i64,
    pub unit: Option<Unit>,
}

/// What a metric alarm watches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlarmSource {
    Metric(AlarmMetric),
    /// Metric math: the queries; the one with `return_data` is the alarm's series.
    Math(Vec<DataQuery>),
}

/// A metric alarm's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricAlarm {
    pub source: AlarmSource,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: Option<u32>,
    pub threshold: Option<f64>,
    pub threshold_metric_id: Option<String>,
    pub comparison: ComparisonOperator,
    pub treat_missing_data: Option<TreatMissingData>,
    pub evaluate_low_sample_count_percentile: Option<String>,
}

impl MetricAlarm {
    /// The evaluation's parameters.
    pub fn spec(&self) -> AlarmSpec {
        let (period_s, statistic) = match &self.source {
            AlarmSource::Metric(m) => (m.period_s, Some(m.statistic.to_string())),
            AlarmSource::Math(queries) => (
                queries
                    .iter()
                    .filter_map(|q| match &q.what {
                        QueryKind::Stat(s) => Some(s.period_s),
                        QueryKind::Expression(_) => q.period_s,
                    })
                    .max()
                    .unwrap_or(60),
                None,
            ),
        };
        AlarmSpec {
            period_s,
            evaluation_periods: self.evaluation_periods,
            datapoints_to_alarm: self.datapoints_to_alarm.unwrap_or(self.evaluation_periods),
            threshold: self.threshold.unwrap_or(0.0),
            comparison: self.comparison,
            treat_missing_data: self.treat_missing_data.unwrap_or_default(),
            statistic,
        }
    }
}

/// A composite alarm's configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompositeAlarm {
    pub rule: String,
    pub actions_suppressor: Option<String>,
    pub suppressor_wait_period: Option<i64>,
    pub suppressor_extension_period: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AlarmKind {
    Metric(MetricAlarm),
    Composite(CompositeAlarm),
}

/// What PutMetricAlarm / PutCompositeAlarm give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlarmConfig {
    pub name: String,
    pub description: Option<String>,
    pub actions_enabled: bool,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
    pub kind: AlarmKind,
}

impl AlarmConfig {
    /// The actions of `state`.
    pub fn actions(&self, state: AlarmState) -> &[String] {
        match state {
            AlarmState::Ok => &self.ok_actions,
            AlarmState::Alarm => &self.alarm_actions,
            AlarmState::InsufficientData => &self.insufficient_data_actions,
        }
    }
}

/// An alarm as stored and described.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub config: AlarmConfig,
    pub arn: String,
    pub state: AlarmState,
    pub state_reason: String,
    pub state_reason_data: Option<String>,
    pub state_updated_ms: i64,
    pub state_transitioned_ms: i64,
    pub configuration_updated_ms: i64,
    pub tags: Vec<Tag>,
}

impl Alarm {
    pub fn is_composite(&self) -> bool {
        matches!(self.config.kind, AlarmKind::Composite(_))
    }

    pub fn type_name(&self) -> &'static str {
        if self.is_composite() {
            "CompositeAlarm"
        } else {
            "MetricAlarm"
        }
    }
}

/// One `AlarmHistoryItem`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    pub alarm_name: String,
    pub alarm_type: String,
    pub timestamp_ms: i64,
    /// `ConfigurationUpdate`, `StateUpdate` or `Action`.
    pub item_type: String,
    pub summary: String,
    /// JSON text.
    pub data: String,
}

/// DescribeAlarms' filters.
#[derive(Debug, Clone, Default)]
pub struct AlarmFilter {
    pub names: Vec<String>,
    pub name_prefix: Option<String>,
    /// `MetricAlarm`, `CompositeAlarm`; empty: metric alarms only (AWS's default).
    pub types: Vec<String>,
    pub children_of: Option<String>,
    pub parents_of: Option<String>,
    pub state: Option<AlarmState>,
    pub action_prefix: Option<String>,
}

/// DescribeAlarmsForMetric's selection.
#[derive(Debug, Clone)]
pub struct ForMetric {
    pub metric: MetricId,
    pub statistic: Option<Statistic>,
    pub period_s: Option<i64>,
    pub unit: Option<Unit>,
}

/// DescribeAlarmHistory's filters.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub alarm_name: Option<String>,
    pub types: Vec<String>,
    pub item_type: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub ascending: bool,
}

fn validation(m: impl Into<String>) -> Error {
    Error::coded("ValidationError", m)
}

fn not_found(m: impl Into<String>) -> Error {
    Error::Coded {
        code: "ResourceNotFound",
        status: 404,
        message: m.into(),
    }
}

/// The history item recording a state change.
pub(super) fn state_history(
    alarm: &Alarm,
    old: AlarmState,
    old_reason: &str,
    at: i64,
) -> HistoryItem {
    let data = serde_json::json!({
        "version": "1.0",
        "oldState": {"stateValue": old.as_str(), "stateReason": old_reason},
        "newState": {
            "stateValue": alarm.state.as_str(),
            "stateReason": alarm.state_reason,
            "stateReasonData": alarm.state_reason_data.as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok()),
        },
    });
    HistoryItem {
        alarm_name: alarm.config.name.clone(),
        alarm_type: alarm.type_name().into(),
        timestamp_ms: at,
        item_type: "StateUpdate".into(),
        summary: format!("Alarm updated from {old} to {}", alarm.state),
        data: data.to_string(),
    }
}

/// Stores a history item (its key orders an alarm's items by time).
pub(super) fn history_put(tx: &mut Tx<'_>, item: &HistoryItem) -> Result<(), Error> {
    let key = format!(
        "{}\t{:015}{:08x}",
        item.alarm_name,
        item.timestamp_ms,
        rand::random::<u32>()
    );
    crate::records::create_new(tx, Kind::AlarmHistory, &key, None, item)
}

impl CloudWatch {
    fn alarm_arn(&self, name: &str) -> String {
        self.scope.arn("cloudwatch", &format!("alarm:{name}"))
    }

    /// PutMetricAlarm / PutCompositeAlarm: creates the alarm (INSUFFICIENT_DATA, or OK for
    /// a composite until judged) or replaces its whole configuration, keeping its state.
    pub async fn alarm_put(&self, config: AlarmConfig, tags: Vec<Tag>) -> Result<Alarm, Error> {
        check_config(&config)?;
        let now = self.clock.now().0;
        let arn = self.alarm_arn(&config.name);
        let done = self
            .store
            .write(move |tx| {
                let existing = load::<Alarm>(tx.get(Kind::Alarm, &config.name)?)?;
                if let AlarmKind::Composite(c) = &config.kind {
                    check_references(tx, &config.name, &c.rule)?;
                }
                let (alarm, expected) = match existing {
                    Some((g, mut a)) => {
                        a.config = config;
                        a.configuration_updated_ms = now;
                        for t in tags {
                            berth_types::tags_merge(&mut a.tags, vec![t]);
                        }
                        (a, Some(g))
                    }
                    None => (
                        Alarm {
                            config,
                            arn,
                            state: AlarmState::InsufficientData,
                            state_reason: "Unchecked: Initial alarm creation".into(),
                            state_reason_data: None,
                            state_updated_ms: now,
                            state_transitioned_ms: now,
                            configuration_updated_ms: now,
                            tags,
                        },
                        None,
                    ),
                };
                let name = alarm.config.name.clone();
                save(tx, Kind::Alarm, &name, None, &alarm, expected)?;
                let data = serde_json::json!({
                    "type": if expected.is_some() { "Update" } else { "Create" },
                    "updatedAlarm": {"alarmName": name, "alarmArn": alarm.arn},
                });
                history_put(
                    tx,
                    &HistoryItem {
                        alarm_name: name.clone(),
                        alarm_type: alarm.type_name().into(),
                        timestamp_ms: now,
                        item_type: "ConfigurationUpdate".into(),
                        summary: format!(
                            "Alarm \"{name}\" {}",
                            if expected.is_some() {
                                "updated"
                            } else {
                                "created"
                            }
                        ),
                        data: data.to_string(),
                    },
                )?;
                Ok(alarm)
            })
            .await?;
        self.background.activate(crate::background::ALARM_EVALUATOR);
        Ok(done)
    }

    /// Every alarm of the region, by name.
    pub fn alarms_all(&self) -> Result<Vec<Alarm>, Error> {
        let rows = self.store.read(|r| all::<Alarm>(r, Kind::Alarm, ""))?;
        Ok(rows.into_iter().map(|(_, a)| a).collect())
    }

    /// The alarm `name`.
    pub fn alarm_get(&self, name: &str) -> Result<Option<Alarm>, Error> {
        let rec = self.store.read(|r| r.get(Kind::Alarm, name))?;
        Ok(load::<Alarm>(rec)?.map(|(_, a)| a))
    }

    /// DescribeAlarms: the alarms the filter selects, by name.
    pub fn alarms_describe(&self, f: &AlarmFilter) -> Result<Vec<Alarm>, Error> {
        let all = self.alarms_all()?;
        let want_type = |a: &Alarm| {
            if f.types.is_empty() {
                !a.is_composite()
            } else {
                f.types.iter().any(|t| t == a.type_name())
            }
        };
        let children: Option<Vec<String>> = f.children_of.as_ref().map(|parent| {
            all.iter()
                .find(|a| &a.config.name == parent)
                .map(rule_children)
                .unwrap_or_default()
        });
        let parents: Option<Vec<String>> = f.parents_of.as_ref().map(|child| {
            all.iter()
                .filter_map(|a| match &a.config.kind {
                    AlarmKind::Composite(c) => Rule::parse(&c.rule).ok().and_then(|r| {
                        r.references()
                            .iter()
                            .any(|n| berth_metrics::alarm_name_of(n) == child)
                            .then(|| a.config.name.clone())
                    }),
                    AlarmKind::Metric(_) => None,
                })
                .collect()
        });
        Ok(all
            .into_iter()
            .filter(|a| f.names.is_empty() || f.names.contains(&a.config.name))
            .filter(|a| {
                f.name_prefix
                    .as_deref()
                    .is_none_or(|p| a.config.name.starts_with(p))
            })
            .filter(|a| children.is_some() || parents.is_some() || want_type(a))
            .filter(|a| children.as_ref().is_none_or(|c| c.contains(&a.config.name)))
            .filter(|a| parents.as_ref().is_none_or(|p| p.contains(&a.config.name)))
            .filter(|a| f.state.is_none_or(|s| s == a.state))
            .filter(|a| {
                f.action_prefix.as_deref().is_none_or(|p| {
                    [
                        AlarmState::Ok,
                        AlarmState::Alarm,
                        AlarmState::InsufficientData,
                    ]
                    .iter()
                    .any(|s| a.config.actions(*s).iter().any(|x| x.starts_with(p)))
                })
            })
            .collect())
    }

    /// DescribeAlarmsForMetric: the metric alarms on exactly this metric.
    pub fn alarms_for_metric(&self, f: &ForMetric) -> Result<Vec<Alarm>, Error> {
        Ok(self
            .alarms_all()?
            .into_iter()
            .filter(|a| match &a.config.kind {
                AlarmKind::Metric(MetricAlarm {
                    source: AlarmSource::Metric(m),
                    ..
                }) => {
                    m.metric == f.metric
                        && f.statistic.is_none_or(|s| s == m.statistic)
                        && f.period_s.is_none_or(|p| p == m.period_s)
                        && f.unit.is_none_or(|u| Some(u) == m.unit)
                }
                _ => false,
            })
            .collect())
    }

    /// DeleteAlarms: all or none (an unknown name deletes nothing).
    pub async fn alarms_delete(&self, names: Vec<String>) -> Result<(), Error> {
        self.alarms_remove(names, true).await
    }

    /// Deletes those of `names` that exist (the alarms a deleted scaling policy owned).
    pub async fn alarms_delete_existing(&self, names: Vec<String>) -> Result<(), Error> {
        self.alarms_remove(names, false).await
    }

    async fn alarms_remove(&self, names: Vec<String>, all_or_none: bool) -> Result<(), Error> {
        self.store
            .write(move |tx| {
                let mut found = Vec::new();
                for n in &names {
                    match tx.get(Kind::Alarm, n)? {
                        Some(r) => found.push(r),
                        None if all_or_none => {
                            return Err(not_found(format!("The alarm {n} does not exist.")));
                        }
                        None => {}
                    }
                }
                for r in found {
                    tx.delete(Kind::Alarm, &r.key, r.generation)?;
                }
                Ok(())
            })
            .await
    }

    /// Changes one alarm in a write job.
    async fn alarm_update<T: Send + 'static>(
        &self,
        name: &str,
        change: impl FnOnce(&mut Tx<'_>, &mut Alarm) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let name = name.to_string();
        self.store
            .write(move |tx| {
                let (g, mut a) = load::<Alarm>(tx.get(Kind::Alarm, &name)?)?
                    .ok_or_else(|| not_found(format!("The alarm {name} does not exist.")))?;
                let out = change(tx, &mut a)?;
                save(tx, Kind::Alarm, &name, None, &a, Some(g))?;
                Ok(out)
            })
            .await
    }

    /// SetAlarmState: the state until the next evaluation; the change is recorded and its
    /// actions run. Returns the alarm when its state changed.
    pub async fn alarm_set_state(
        &self,
        name: &str,
        state: AlarmState,
        reason: String,
        reason_data: Option<String>,
    ) -> Result<Option<Alarm>, Error> {
        if let Some(d) = &reason_data
            && serde_json::from_str::<serde::de::IgnoredAny>(d).is_err()
        {
            return Err(Error::coded(
                "InvalidFormat",
                "StateReasonData must be valid JSON.",
            ));
        }
        let now = self.clock.now().0;
        self.alarm_update(name, move |tx, a| {
            let (old, old_reason) = (a.state, std::mem::take(&mut a.state_reason));
            a.state = state;
            a.state_reason = reason;
            a.state_reason_data = reason_data;
            a.state_updated_ms = now;
            if old == state {
                return Ok(None);
            }
            a.state_transitioned_ms = now;
            history_put(tx, &state_history(a, old, &old_reason, now))?;
            Ok(Some(a.clone()))
        })
        .await
    }

    /// EnableAlarmActions / DisableAlarmActions.
    pub async fn alarms_actions_enable(
        &self,
        names: Vec<String>,
        enabled: bool,
    ) -> Result<(), Error> {
        for n in names {
            // AWS ignores names that do not exist here.
            if self.alarm_get(&n)?.is_some() {
                self.alarm_update(&n, move |_, a| {
                    a.config.actions_enabled = enabled;
                    Ok(())
                })
                .await?;
            }
        }
        Ok(())
    }

    /// The alarm an ARN names.
    fn alarm_of_arn<'a>(&self, arn: &'a str) -> Result<&'a str, Error> {
        self.scope
            .arn_resource("cloudwatch", "alarm", arn)
            .or_else(|| {
                arn.strip_prefix(&format!(
                    "arn:aws:cloudwatch:{}:{}:alarm:",
                    self.scope.region, self.scope.account
                ))
            })
            .ok_or_else(|| Error::Coded {
                code: "ResourceNotFoundException",
                status: 404,
                message: format!("The resource {arn} does not exist."),
            })
    }

    /// TagResource / UntagResource / ListTagsForResource on an alarm ARN.
    pub async fn alarm_tags(
        &self,
        arn: &str,
        add: Vec<Tag>,
        remove: Vec<String>,
    ) -> Result<Vec<Tag>, Error> {
        let name = self.alarm_of_arn(arn)?.to_string();
        if self.alarm_get(&name)?.is_none() {
            return Err(Error::Coded {
                code: "ResourceNotFoundException",
                status: 404,
                message: format!("The resource {arn} does not exist."),
            });
        }
        if add.is_empty() && remove.is_empty() {
            return Ok(self.alarm_get(&name)?.map(|a| a.tags).unwrap_or_default());
        }
        if add.len() > 50 {
            return Err(Error::coded(
                "InvalidParameterValue",
                "A resource can have at most 50 tags.",
            ));
        }
        self.alarm_update(&name, move |_, a| {
            berth_types::tags_merge(&mut a.tags, add);
            a.tags.retain(|t| !remove.contains(&t.key));
            if a.tags.len() > 50 {
                return Err(Error::coded(
                    "LimitExceeded",
                    "A resource can have at most 50 tags.",
                ));
            }
            Ok(a.tags.clone())
        })
        .await
    }

    /// DescribeAlarmHistory: the items the filter selects, newest first unless ascending.
    pub fn alarm_history(&self, f: &HistoryFilter) -> Result<Vec<HistoryItem>, Error> {
        let prefix = f
            .alarm_name
            .as_ref()
            .map(|n| format!("{n}\t"))
            .unwrap_or_default();
        let mut items: Vec<HistoryItem> = self
            .store
            .read(|r| all::<HistoryItem>(r, Kind::AlarmHistory, &prefix))?
            .into_iter()
            .map(|(_, h)| h)
            .filter(|h| f.types.is_empty() || f.types.contains(&h.alarm_type))
            .filter(|h| f.item_type.as_ref().is_none_or(|t| t == &h.item_type))
            .filter(|h| f.start_ms.is_none_or(|s| h.timestamp_ms >= s))
            .filter(|h| f.end_ms.is_none_or(|e| h.timestamp_ms <= e))
            .collect();
        items.sort_by_key(|h| h.timestamp_ms);
        if !f.ascending {
            items.reverse();
        }
        Ok(items)
    }
}

/// The alarms a composite alarm's rule names (none for a metric alarm).
fn rule_children(a: &Alarm) -> Vec<String> {
    match &a.config.kind {
        AlarmKind::Composite(c) => Rule::parse(&c.rule)
            .map(|r| {
                r.references()
                    .into_iter()
                    .map(|n| berth_metrics::alarm_name_of(n).to_string())
                    .collect()
            })
            .unwrap_or_default(),
        AlarmKind::Metric(_) => Vec::new(),
    }
}

/// Drops history items older than 30 days (the rollup calls it).
pub(super) fn history_expire(tx: &mut Tx<'_>, now: i64) -> Result<u64, Error> {
    let rows = tx.list(
        Kind::AlarmHistory,
        &ListQuery {
            limit: usize::MAX >> 1,
            ..Default::default()
        },
    )?;
    let mut n = 0;
    for r in rows {
        let h: HistoryItem = decode(&r.doc, &r.key)?;
        if h.timestamp_ms < now - HISTORY_MS {
            tx.delete(Kind::AlarmHistory, &r.key, r.generation)?;
            n += 1;
        }
    }
    Ok(n)
}

/// PutMetricAlarm's and PutCompositeAlarm's checks.
fn check_config(c: &AlarmConfig) -> Result<(), Error> {
    if c.name.is_empty() || c.name.chars().count() > 255 {
        return Err(validation("AlarmName must be 1-255 characters."));
    }
    for (what, list) in [
        ("OKActions", &c.ok_actions),
        ("AlarmActions", &c.alarm_actions),
        ("InsufficientDataActions", &c.insufficient_data_actions),
    ] {
        if list.len() > MAX_ACTIONS {
            return Err(validation(format!(
                "The collection {what} must not have a size greater than {MAX_ACTIONS}."
            )));
        }
        if let Some(bad) = list.iter().find(|a| !a.starts_with("arn:")) {
            return Err(validation(format!("Invalid arn syntax: {bad}")));
        }
    }
    match &c.kind {
        AlarmKind::Composite(comp) => {
            Rule::parse(&comp.rule).map_err(|e| validation(e.0))?;
            Ok(())
        }
        AlarmKind::Metric(m) => check_metric_alarm(m),
    }
}

fn check_metric_alarm(m: &MetricAlarm) -> Result<(), Error> {
    match (&m.threshold, &m.threshold_metric_id) {
        (Some(_), None) => {}
        (None, Some(_)) => {
            return Err(validation(
                "ThresholdMetricId is only valid for anomaly detection alarms, which Berth does not support.",
            ));
        }
        _ => {
            return Err(validation(
                "Exactly one of Threshold and ThresholdMetricId must be specified.",
            ));
        }
    }
    if let AlarmSource::Math(queries) = &m.source {
        let returning = queries.iter().filter(|q| q.return_data).count();
        if returning != 1 {
            return Err(validation(
                "Exactly one element of the metrics list should return data.",
            ));
        }
        if queries.len() > 10 {
            return Err(validation(
                "The collection Metrics must not have a size greater than 10.",
            ));
        }
    }
    m.spec().check().map_err(|e| validation(e.to_string()))
}

/// A composite alarm's rule must name existing alarms (and not itself).
fn check_references(tx: &Tx<'_>, name: &str, rule: &str) -> Result<(), Error> {
    let rule = Rule::parse(rule).map_err(|e| validation(e.0))?;
    for r in rule.references() {
        let child = berth_metrics::alarm_name_of(r);
        if child == name {
            return Err(validation("A composite alarm cannot reference itself."));
        }
        if tx.get(Kind::Alarm, child)?.is_none() {
            return Err(validation(format!(
                "Could not save the composite alarm as alarms [{child}] in the alarm rule do not exist"
            )));
        }
    }
    Ok(())
}
