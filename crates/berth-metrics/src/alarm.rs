//! Metric alarm evaluation as CloudWatch does it: given an alarm's [`AlarmSpec`], the
//! period values of its evaluation range, `now` and the current state, [`evaluate`] returns
//! the new state with AWS's `StateReason` text and `StateReasonData` JSON.
//!
//! Called by the alarm reconciler each evaluation (it computes the period values with
//! `query::metric_stat_series` or metric math first, then records a state change and runs
//! actions when the state differs). Pure: `now` is an argument; no I/O.
//!
//! # The rules (User Guide, "Evaluating an alarm" / "Configuring how CloudWatch alarms
//! treat missing data")
//! CloudWatch fetches more periods than `EvaluationPeriods` (N): the *evaluation range*
//! ([`AlarmSpec::evaluation_range`]: N + 2 periods ending at the last complete period, as in
//! AWS's example where N = 3 retrieves 5; the exact extra count is undocumented).
//! * At least N real datapoints in the range: the most recent N are evaluated and
//!   `TreatMissingData` is ignored. ALARM when at least M (`DatapointsToAlarm`) breach,
//!   else OK.
//! * None at all: `missing` → INSUFFICIENT_DATA, `ignore` → current state kept,
//!   `breaching` → ALARM, `notBreaching` → OK.
//! * Some but fewer than N: `breaching` / `notBreaching` fill the N − R missing slots with
//!   breaching / non-breaching points (every real point in the range counts). `missing` and
//!   `ignore` evaluate the real points alone: ALARM when at least M breach, OK when any
//!   real point does not breach; when every real point breaches but fewer than M, `ignore`
//!   keeps the state and `missing` goes to INSUFFICIENT_DATA if the newest period has data,
//!   ALARM if it has none (the metric stopped while breaching).
//!
//! This reproduces every row of AWS's two evaluation-range tables (3/3 and 2/3, 5 periods
//! retrieved), including the pair `- - - - X` → INSUFFICIENT_DATA and `X - - - -` → ALARM
//! under `missing`, which no rule blind to position can satisfy; the last clause is
//! inferred from those two rows (AWS: "the oldest evaluated data point is breaching and
//! there aren't any non-breaching data points") and from a published alarm history where a
//! single breaching point among missing ones raised a 3-of-3 alarm.
//!
//! # Texts
//! Observed AWS reasons this module reproduces:
//! * `Threshold Crossed: 1 datapoint [3.0 (26/10/24 18:59:00)] was greater than or equal to
//!   the threshold (1.0).` (N = 1)
//! * `Threshold Crossed: 2 out of the last 2 datapoints [10.25 (05/10/20 06:25:00), 10.0
//!   (05/10/20 06:20:00)] were greater than or equal to the threshold (10.0) (minimum 2
//!   datapoints for OK -> ALARM transition).`
//! * `Threshold Crossed: 3 out of the last 5 datapoints […] were not greater than the
//!   threshold (0.0) (minimum 3 datapoints for ALARM -> OK transition).`
//! * `Threshold Crossed: no datapoints were received for 2 periods and 2 missing datapoints
//!   were treated as [Breaching].` (`[NonBreaching]` for notBreaching)
//! * `Threshold Crossed: 1 datapoint [1.0 (25/09/26 21:51:00)] was not less than the
//!   threshold (1.0) and 1 missing datapoint was treated as [Breaching].`
//! * `… and 5 missing datapoints were treated as [NonBreaching] (minimum 7 datapoints for
//!   ALARM -> OK transition).` (with M < N)
//! * `Insufficient Data: 1 datapoint was unknown.`
//!
//! Guesses: the "(minimum …)" suffix appears with filled points only when M < N (as in the
//! two observed filled texts); a filled ALARM/OK with no real point of the listed kind uses
//! the "no datapoints were received" form; "Insufficient Data: K datapoints were unknown."
//! counts the unknown slots. `StateReasonData` follows observed payloads: `version`,
//! `queryDate`, `startDate` (absent without real data), `statistic`, `period`,
//! `recentDatapoints` (oldest first), `threshold`, `evaluatedDatapoints` (newest first;
//! missing ones carry only `timestamp`).

use crate::format::{java_double, reason_data_time, reason_time};
use crate::retention::bucket_start;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// An alarm's state (`StateValue`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlarmState::Ok => "OK",
            AlarmState::Alarm => "ALARM",
            AlarmState::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

impl fmt::Display for AlarmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that is not one of the enum's wire values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {0:?}")]
pub struct InvalidEnumValue(pub String);

impl FromStr for AlarmState {
    type Err = InvalidEnumValue;

    fn from_str(s: &str) -> Result<AlarmState, InvalidEnumValue> {
        match s {
            "OK" => Ok(AlarmState::Ok),
            "ALARM" => Ok(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Ok(AlarmState::InsufficientData),
            _ => Err(InvalidEnumValue(s.into())),
        }
    }
}

/// `ComparisonOperator`. The three anomaly-band operators parse but cannot be evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComparisonOperator {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
    LessThanLowerOrGreaterThanUpperThreshold,
    LessThanLowerThreshold,
    GreaterThanUpperThreshold,
}

impl ComparisonOperator {
    pub const ALL: [ComparisonOperator; 7] = [
        ComparisonOperator::GreaterThanOrEqualToThreshold,
        ComparisonOperator::GreaterThanThreshold,
        ComparisonOperator::LessThanThreshold,
        ComparisonOperator::LessThanOrEqualToThreshold,
        ComparisonOperator::LessThanLowerOrGreaterThanUpperThreshold,
        ComparisonOperator::LessThanLowerThreshold,
        ComparisonOperator::GreaterThanUpperThreshold,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            ComparisonOperator::GreaterThanThreshold => "GreaterThanThreshold",
            ComparisonOperator::LessThanThreshold => "LessThanThreshold",
            ComparisonOperator::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
            ComparisonOperator::LessThanLowerOrGreaterThanUpperThreshold => {
                "LessThanLowerOrGreaterThanUpperThreshold"
            }
            ComparisonOperator::LessThanLowerThreshold => "LessThanLowerThreshold",
            ComparisonOperator::GreaterThanUpperThreshold => "GreaterThanUpperThreshold",
        }
    }

    /// Whether the operator compares against an anomaly detection band.
    pub fn is_anomaly_band(self) -> bool {
        matches!(
            self,
            ComparisonOperator::LessThanLowerOrGreaterThanUpperThreshold
                | ComparisonOperator::LessThanLowerThreshold
                | ComparisonOperator::GreaterThanUpperThreshold
        )
    }

    /// Whether `value` breaches `threshold` (`None` for the anomaly-band operators).
    pub fn breaches(self, value: f64, threshold: f64) -> Option<bool> {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => Some(value >= threshold),
            ComparisonOperator::GreaterThanThreshold => Some(value > threshold),
            ComparisonOperator::LessThanThreshold => Some(value < threshold),
            ComparisonOperator::LessThanOrEqualToThreshold => Some(value <= threshold),
            _ => None,
        }
    }

    /// The words in a `StateReason` ("greater than or equal to").
    fn words(self) -> &'static str {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => "greater than or equal to",
            ComparisonOperator::GreaterThanThreshold => "greater than",
            ComparisonOperator::LessThanThreshold => "less than",
            ComparisonOperator::LessThanOrEqualToThreshold => "less than or equal to",
            _ => "outside",
        }
    }
}

impl FromStr for ComparisonOperator {
    type Err = InvalidEnumValue;

    fn from_str(s: &str) -> Result<ComparisonOperator, InvalidEnumValue> {
        ComparisonOperator::ALL
            .iter()
            .copied()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| InvalidEnumValue(s.into()))
    }
}

/// `TreatMissingData` (default `missing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TreatMissingData {
    #[default]
    Missing,
    Breaching,
    NotBreaching,
    Ignore,
}

impl TreatMissingData {
    pub fn as_str(self) -> &'static str {
        match self {
            TreatMissingData::Missing => "missing",
            TreatMissingData::Breaching => "breaching",
            TreatMissingData::NotBreaching => "notBreaching",
            TreatMissingData::Ignore => "ignore",
        }
    }
}

impl FromStr for TreatMissingData {
    type Err = InvalidEnumValue;

    fn from_str(s: &str) -> Result<TreatMissingData, InvalidEnumValue> {
        match s {
            "missing" => Ok(TreatMissingData::Missing),
            "breaching" => Ok(TreatMissingData::Breaching),
            "notBreaching" => Ok(TreatMissingData::NotBreaching),
            "ignore" => Ok(TreatMissingData::Ignore),
            _ => Err(InvalidEnumValue(s.into())),
        }
    }
}

/// Why an alarm cannot be evaluated (PutMetricAlarm answers `ValidationError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AlarmError {
    #[error("Comparison operator {} is only valid for anomaly detection alarms, which Berth does not support.", .0.as_str())]
    UnsupportedOperator(ComparisonOperator),
    #[error("{0}")]
    Invalid(String),
}

/// What evaluation needs of a metric alarm.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub period_s: i64,
    /// N.
    pub evaluation_periods: u32,
    /// M (PutMetricAlarm's default is N).
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    pub comparison: ComparisonOperator,
    pub treat_missing_data: TreatMissingData,
    /// `Statistic` or `ExtendedStatistic` as configured, for `StateReasonData`; `None` for
    /// metric-math alarms.
    pub statistic: Option<String>,
}

/// Periods past N that the evaluation range adds.
pub const EXTRA_RANGE_PERIODS: u32 = 2;

impl AlarmSpec {
    /// PutMetricAlarm's checks on these fields. Wording: "Metrics cannot be checked across
    /// more than a day (EvaluationPeriods * Period must be <= 86400)" is AWS's; the others
    /// are guesses in that style.
    pub fn check(&self) -> Result<(), AlarmError> {
        if self.comparison.is_anomaly_band() {
            return Err(AlarmError::UnsupportedOperator(self.comparison));
        }
        let p = self.period_s;
        if !(matches!(p, 10 | 20 | 30) || (p > 0 && p % 60 == 0)) {
            return Err(AlarmError::Invalid(
                "Period must be 10, 20, 30 or a multiple of 60.".into(),
            ));
        }
        if self.evaluation_periods < 1 {
            return Err(AlarmError::Invalid(
                "EvaluationPeriods must be at least 1.".into(),
            ));
        }
        if self.datapoints_to_alarm < 1 || self.datapoints_to_alarm > self.evaluation_periods {
            return Err(AlarmError::Invalid(
                "DatapointsToAlarm must be between 1 and EvaluationPeriods.".into(),
            ));
        }
        let span = p.saturating_mul(i64::from(self.evaluation_periods));
        if p < 3600 && span > 86_400 {
            return Err(AlarmError::Invalid(
                "Metrics cannot be checked across more than a day (EvaluationPeriods * Period must be <= 86400).".into(),
            ));
        }
        if span > 604_800 {
            return Err(AlarmError::Invalid(
                "Metrics cannot be checked across more than a week (EvaluationPeriods * Period must be <= 604800).".into(),
            ));
        }
        if !self.threshold.is_finite() {
            return Err(AlarmError::Invalid(
                "Threshold must be a finite number.".into(),
            ));
        }
        Ok(())
    }

    fn period_ms(&self) -> i64 {
        self.period_s * 1000
    }

    /// The period starts (oldest first) of the evaluation range at `now_ms`: N + 2 periods
    /// ending with the last complete one.
    pub fn evaluation_range(&self, now_ms: i64) -> Vec<i64> {
        let end = bucket_start(now_ms, self.period_s);
        let n = i64::from(self.evaluation_periods + EXTRA_RANGE_PERIODS);
        (1..=n).rev().map(|k| end - k * self.period_ms()).collect()
    }
}

/// One period of the evaluation range: its start, the alarm statistic's value (`None`
/// when the period has no data) and, when known, the period's sample count (for
/// `StateReasonData`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeriodValue {
    pub start_ms: i64,
    pub value: Option<f64>,
    pub sample_count: Option<f64>,
}

/// The outcome of one evaluation. Record `reason` and `reason_data` only when `state`
/// differs from the current state (CloudWatch keeps the reason of the last transition).
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub state: AlarmState,
    pub reason: String,
    /// `StateReasonData` (JSON text).
    pub reason_data: String,
}

#[derive(Serialize)]
struct ReasonData<'a> {
    version: &'static str,
    #[serde(rename = "queryDate")]
    query_date: String,
    #[serde(rename = "startDate", skip_serializing_if = "Option::is_none")]
    start_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    statistic: Option<&'a str>,
    period: i64,
    #[serde(rename = "recentDatapoints")]
    recent_datapoints: Vec<f64>,
    threshold: f64,
    #[serde(rename = "evaluatedDatapoints")]
    evaluated_datapoints: Vec<EvaluatedPoint>,
}

#[derive(Serialize)]
struct EvaluatedPoint {
    timestamp: String,
    #[serde(rename = "sampleCount", skip_serializing_if = "Option::is_none")]
    sample_count: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    value: Option<f64>,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn was(n: usize) -> &'static str {
    if n == 1 { "was" } else { "were" }
}

fn list(points: &[PeriodValue]) -> String {
    points
        .iter()
        .map(|p| {
            format!(
                "{} ({})",
                java_double(p.value.unwrap_or(f64::NAN)),
                reason_time(p.start_ms)
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `(minimum K datapoints for X -> Y transition)` clause.
fn minimum(state: AlarmState, n: usize, m: usize) -> String {
    match state {
        AlarmState::Alarm => format!(
            "(minimum {} for OK -> ALARM transition)",
            plural(m, "datapoint", "datapoints")
        ),
        _ => format!(
            "(minimum {} for ALARM -> OK transition)",
            plural(n - m + 1, "datapoint", "datapoints")
        ),
    }
}

struct Texts<'a> {
    spec: &'a AlarmSpec,
    n: usize,
    m: usize,
}

impl Texts<'_> {
    fn threshold(&self) -> String {
        java_double(self.spec.threshold)
    }

    /// Reason when the real points decide without filling. `listed` are the points of the
    /// kind that decided (breaching for ALARM, non-breaching for OK), newest first.
    fn crossed(&self, state: AlarmState, listed: &[PeriodValue]) -> String {
        let not = if state == AlarmState::Alarm {
            ""
        } else {
            "not "
        };
        let op = self.spec.comparison.words();
        let k = listed.len();
        if self.n == 1 {
            return format!(
                "Threshold Crossed: 1 datapoint [{}] was {not}{op} the threshold ({}).",
                list(listed),
                self.threshold()
            );
        }
        format!(
            "Threshold Crossed: {k} out of the last {} datapoints [{}] {} {not}{op} the threshold ({}) {}.",
            self.n,
            list(listed),
            was(k),
            self.threshold(),
            minimum(state, self.n, self.m)
        )
    }

    /// Reason when `filled` missing slots were treated as `treated`.
    fn filled(
        &self,
        state: AlarmState,
        listed: &[PeriodValue],
        filled: usize,
        treated: &str,
    ) -> String {
        let suffix = if self.m < self.n {
            format!(" {}", minimum(state, self.n, self.m))
        } else {
            String::new()
        };
        let missing = format!(
            "{} {} treated as [{treated}]",
            plural(filled, "missing datapoint", "missing datapoints"),
            was(filled)
        );
        if listed.is_empty() {
            return format!(
                "Threshold Crossed: no datapoints were received for {} and {missing}{suffix}.",
                plural(filled, "period", "periods")
            );
        }
        let not = if state == AlarmState::Alarm {
            ""
        } else {
            "not "
        };
        format!(
            "Threshold Crossed: {} [{}] {} {not}{} the threshold ({}) and {missing}{suffix}.",
            plural(listed.len(), "datapoint", "datapoints"),
            list(listed),
            was(listed.len()),
            self.spec.comparison.words(),
            self.threshold()
        )
    }

    fn insufficient(&self, unknown: usize) -> String {
        format!(
            "Insufficient Data: {} {} unknown.",
            plural(unknown, "datapoint", "datapoints"),
            was(unknown)
        )
    }
}

/// Evaluates a metric alarm over its evaluation range (`range`: one entry per period, any
/// order; periods absent from `range` count as missing only through the rules above).
pub fn evaluate(
    spec: &AlarmSpec,
    range: &[PeriodValue],
    now_ms: i64,
    current: AlarmState,
) -> Result<Evaluation, AlarmError> {
    spec.check()?;
    let n = spec.evaluation_periods as usize;
    let m = spec.datapoints_to_alarm as usize;
    let breaches = |p: &PeriodValue| {
        p.value
            .and_then(|v| spec.comparison.breaches(v, spec.threshold))
            .unwrap_or(false)
    };
    let mut periods: Vec<PeriodValue> = range.to_vec();
    periods.sort_by_key(|p| p.start_ms);
    let real: Vec<PeriodValue> = periods
        .iter()
        .copied()
        .filter(|p| p.value.is_some_and(f64::is_finite))
        .collect();
    let texts = Texts { spec, n, m };
    let newest_missing = periods
        .last()
        .is_some_and(|p| !p.value.is_some_and(f64::is_finite));

    // The real points evaluated (oldest first) and how many slots are missing.
    let evaluated: Vec<PeriodValue> = real[real.len().saturating_sub(n)..].to_vec();
    let unknown = n - evaluated.len();
    let newest_first = |kind: bool| -> Vec<PeriodValue> {
        evaluated
            .iter()
            .rev()
            .copied()
            .filter(|p| breaches(p) == kind)
            .collect()
    };
    let b = evaluated.iter().filter(|p| breaches(p)).count();
    let nb = evaluated.len() - b;
    let tmd = spec.treat_missing_data;

    let (state, reason) = if unknown == 0 {
        let state = if b >= m {
            AlarmState::Alarm
        } else {
            AlarmState::Ok
        };
        (
            state,
            texts.crossed(state, &newest_first(state == AlarmState::Alarm)),
        )
    } else {
        match tmd {
            TreatMissingData::Breaching | TreatMissingData::NotBreaching => {
                let treated_breaching = tmd == TreatMissingData::Breaching;
                let total = b + if treated_breaching { unknown } else { 0 };
                let state = if total >= m {
                    AlarmState::Alarm
                } else {
                    AlarmState::Ok
                };
                let treated = if treated_breaching {
                    "Breaching"
                } else {
                    "NonBreaching"
                };
                let listed = newest_first(state == AlarmState::Alarm);
                (state, texts.filled(state, &listed, unknown, treated))
            }
            TreatMissingData::Missing | TreatMissingData::Ignore => {
                if evaluated.is_empty() {
                    let state = if tmd == TreatMissingData::Ignore {
                        current
                    } else {
                        AlarmState::InsufficientData
                    };
                    (state, texts.insufficient(unknown))
                } else if b >= m {
                    (
                        AlarmState::Alarm,
                        texts.crossed(AlarmState::Alarm, &newest_first(true)),
                    )
                } else if nb >= 1 {
                    (
                        AlarmState::Ok,
                        texts.crossed(AlarmState::Ok, &newest_first(false)),
                    )
                } else if tmd == TreatMissingData::Ignore {
                    (current, texts.insufficient(unknown))
                } else if newest_missing {
                    (
                        AlarmState::Alarm,
                        texts.crossed(AlarmState::Alarm, &newest_first(true)),
                    )
                } else {
                    (AlarmState::InsufficientData, texts.insufficient(unknown))
                }
            }
        }
    };

    let reason_data = reason_data(spec, &periods, &evaluated, unknown, now_ms);
    Ok(Evaluation {
        state,
        reason,
        reason_data,
    })
}

fn reason_data(
    spec: &AlarmSpec,
    periods: &[PeriodValue],
    evaluated: &[PeriodValue],
    unknown: usize,
    now_ms: i64,
) -> String {
    let period_ms = spec.period_ms();
    // Slots for the unknown points: the newest periods of the range without data, then
    // periods before the range.
    let mut slots: Vec<i64> = periods
        .iter()
        .rev()
        .filter(|p| !p.value.is_some_and(f64::is_finite))
        .map(|p| p.start_ms)
        .take(unknown)
        .collect();
    let mut before = periods
        .first()
        .map_or_else(|| bucket_start(now_ms, spec.period_s), |p| p.start_ms);
    while slots.len() < unknown {
        before -= period_ms;
        slots.push(before);
    }
    let mut points: Vec<EvaluatedPoint> = Vec::with_capacity(evaluated.len() + slots.len());
    let mut all: Vec<(i64, Option<&PeriodValue>)> = evaluated
        .iter()
        .map(|p| (p.start_ms, Some(p)))
        .chain(slots.iter().map(|&t| (t, None)))
        .collect();
    all.sort_by_key(|&(t, _)| std::cmp::Reverse(t));
    for (t, p) in &all {
        points.push(EvaluatedPoint {
            timestamp: reason_data_time(*t),
            sample_count: p.and_then(|p| p.sample_count),
            value: p.and_then(|p| p.value),
        });
    }
    let data = ReasonData {
        version: "1.0",
        query_date: reason_data_time(now_ms),
        start_date: (!evaluated.is_empty())
            .then(|| all.last().map(|(t, _)| reason_data_time(*t)))
            .flatten(),
        statistic: spec.statistic.as_deref(),
        period: spec.period_s,
        recent_datapoints: evaluated.iter().filter_map(|p| p.value).collect(),
        threshold: spec.threshold,
        evaluated_datapoints: points,
    };
    serde_json::to_string(&data).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-26T14:20:00Z
    const NOW: i64 = 1_795_702_800_000;
    const MIN: i64 = 60_000;

    fn spec(n: u32, m: u32, tmd: TreatMissingData) -> AlarmSpec {
        AlarmSpec {
            period_s: 60,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            threshold: 3.0,
            comparison: ComparisonOperator::GreaterThanThreshold,
            treat_missing_data: tmd,
            statistic: Some("Average".into()),
        }
    }

    /// A range from AWS's table notation: `0` not breaching (1.0), `X` breaching (5.0),
    /// `-` missing; oldest first, the newest period ending at NOW.
    fn range(pattern: &str) -> Vec<PeriodValue> {
        let cells: Vec<&str> = pattern.split_whitespace().collect();
        let k = cells.len() as i64;
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| PeriodValue {
                start_ms: NOW - (k - i as i64) * MIN,
                value: match *c {
                    "0" => Some(1.0),
                    "X" => Some(5.0),
                    _ => None,
                },
                sample_count: match *c {
                    "-" => None,
                    _ => Some(1.0),
                },
            })
            .collect()
    }

    fn state(
        n: u32,
        m: u32,
        tmd: TreatMissingData,
        pattern: &str,
        current: AlarmState,
    ) -> AlarmState {
        evaluate(&spec(n, m, tmd), &range(pattern), NOW, current)
            .unwrap()
            .state
    }

    use AlarmState::{Alarm, InsufficientData as Insufficient, Ok as Good};
    use TreatMissingData::{Breaching, Ignore, Missing, NotBreaching};

    /// AWS's first table (3 of 3, 5 periods retrieved), columns MISSING, IGNORE, BREACHING,
    /// NOT BREACHING; `None` = retain current state.
    #[test]
    fn alarm_evaluation_table_three_of_three() {
        let rows: [(&str, [Option<AlarmState>; 4]); 6] = [
            (
                "0 - X - X",
                [Some(Good), Some(Good), Some(Good), Some(Good)],
            ),
            (
                "0 - - - -",
                [Some(Good), Some(Good), Some(Good), Some(Good)],
            ),
            (
                "- - - - -",
                [Some(Insufficient), None, Some(Alarm), Some(Good)],
            ),
            (
                "0 X X - X",
                [Some(Alarm), Some(Alarm), Some(Alarm), Some(Alarm)],
            ),
            (
                "- - - - X",
                [Some(Insufficient), None, Some(Alarm), Some(Good)],
            ),
            ("X - - - -", [Some(Alarm), None, Some(Alarm), Some(Good)]),
        ];
        for (pattern, want) in rows {
            for (tmd, w) in [Missing, Ignore, Breaching, NotBreaching]
                .into_iter()
                .zip(want)
            {
                for current in [Good, Alarm, Insufficient] {
                    let got = state(3, 3, tmd, pattern, current);
                    assert_eq!(
                        got,
                        w.unwrap_or(current),
                        "{pattern} {tmd:?} from {current:?}"
                    );
                }
            }
        }
    }

    /// AWS's second table (2 of 3).
    #[test]
    fn alarm_evaluation_table_two_of_three() {
        let rows: [(&str, [Option<AlarmState>; 4]); 5] = [
            (
                "0 - X - X",
                [Some(Alarm), Some(Alarm), Some(Alarm), Some(Alarm)],
            ),
            (
                "0 0 X 0 X",
                [Some(Alarm), Some(Alarm), Some(Alarm), Some(Alarm)],
            ),
            (
                "0 - X - -",
                [Some(Good), Some(Good), Some(Alarm), Some(Good)],
            ),
            (
                "- - - - 0",
                [Some(Good), Some(Good), Some(Alarm), Some(Good)],
            ),
            (
                "- - - - X",
                [Some(Insufficient), None, Some(Alarm), Some(Good)],
            ),
        ];
        for (pattern, want) in rows {
            for (tmd, w) in [Missing, Ignore, Breaching, NotBreaching]
                .into_iter()
                .zip(want)
            {
                for current in [Good, Alarm, Insufficient] {
                    let got = state(3, 2, tmd, pattern, current);
                    assert_eq!(
                        got,
                        w.unwrap_or(current),
                        "{pattern} {tmd:?} from {current:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn alarm_m_of_n_counts_breaches_anywhere_in_last_n() {
        // 4 of 5: breaching points need not be consecutive.
        assert_eq!(state(5, 4, Missing, "X X 0 X X", Good), Alarm);
        assert_eq!(state(5, 4, Missing, "X 0 0 X X", Alarm), Good);
        // Only the most recent N real points count.
        assert_eq!(state(2, 2, Missing, "X X 0 0", Alarm), Good);
        assert_eq!(state(2, 2, Missing, "0 0 X X", Good), Alarm);
        // 1 of 1.
        assert_eq!(state(1, 1, Missing, "0 X", Good), Alarm);
    }

    fn reason(n: u32, m: u32, tmd: TreatMissingData, pattern: &str) -> String {
        evaluate(&spec(n, m, tmd), &range(pattern), NOW, Good)
            .unwrap()
            .reason
    }

    #[test]
    fn alarm_reason_single_datapoint() {
        assert_eq!(
            reason(1, 1, Missing, "- X"),
            "Threshold Crossed: 1 datapoint [5.0 (26/11/26 14:19:00)] was greater than the threshold (3.0)."
        );
        assert_eq!(
            reason(1, 1, Missing, "X 0"),
            "Threshold Crossed: 1 datapoint [1.0 (26/11/26 14:19:00)] was not greater than the threshold (3.0)."
        );
    }

    #[test]
    fn alarm_reason_m_of_n_lists_newest_first() {
        assert_eq!(
            reason(3, 3, Missing, "0 X X X"),
            "Threshold Crossed: 3 out of the last 3 datapoints [5.0 (26/11/26 14:19:00), 5.0 (26/11/26 14:18:00), 5.0 (26/11/26 14:17:00)] were greater than the threshold (3.0) (minimum 3 datapoints for OK -> ALARM transition)."
        );
        assert_eq!(
            reason(5, 3, Missing, "X 0 0 X 0"),
            "Threshold Crossed: 3 out of the last 5 datapoints [1.0 (26/11/26 14:19:00), 1.0 (26/11/26 14:17:00), 1.0 (26/11/26 14:16:00)] were not greater than the threshold (3.0) (minimum 3 datapoints for ALARM -> OK transition)."
        );
        assert_eq!(
            reason(3, 1, Missing, "0 0 X"),
            "Threshold Crossed: 1 out of the last 3 datapoints [5.0 (26/11/26 14:19:00)] was greater than the threshold (3.0) (minimum 1 datapoint for OK -> ALARM transition)."
        );
    }

    #[test]
    fn alarm_reason_missing_data_treated() {
        assert_eq!(
            reason(2, 2, Breaching, "- - - -"),
            "Threshold Crossed: no datapoints were received for 2 periods and 2 missing datapoints were treated as [Breaching]."
        );
        assert_eq!(
            reason(1, 1, Breaching, "- - -"),
            "Threshold Crossed: no datapoints were received for 1 period and 1 missing datapoint was treated as [Breaching]."
        );
        assert_eq!(
            reason(3, 3, NotBreaching, "- - - - -"),
            "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints were treated as [NonBreaching]."
        );
        assert_eq!(
            reason(2, 2, Breaching, "- - - 0"),
            "Threshold Crossed: 1 datapoint [1.0 (26/11/26 14:19:00)] was not greater than the threshold (3.0) and 1 missing datapoint was treated as [Breaching]."
        );
        assert_eq!(
            reason(8, 2, NotBreaching, "0 - 0 - - 0 - - - -"),
            "Threshold Crossed: 3 datapoints [1.0 (26/11/26 14:15:00), 1.0 (26/11/26 14:12:00), 1.0 (26/11/26 14:10:00)] were not greater than the threshold (3.0) and 5 missing datapoints were treated as [NonBreaching] (minimum 7 datapoints for ALARM -> OK transition)."
        );
    }

    #[test]
    fn alarm_reason_insufficient_data() {
        assert_eq!(
            reason(1, 1, Missing, "- - -"),
            "Insufficient Data: 1 datapoint was unknown."
        );
        assert_eq!(
            reason(3, 3, Missing, "- - - - X"),
            "Insufficient Data: 2 datapoints were unknown."
        );
    }

    #[test]
    fn alarm_reason_data_json() {
        let mut s = spec(1, 1, Missing);
        s.comparison = ComparisonOperator::GreaterThanOrEqualToThreshold;
        s.threshold = 1.0;
        s.statistic = Some("Sum".into());
        let r = vec![PeriodValue {
            start_ms: NOW - MIN,
            value: Some(3.0),
            sample_count: Some(3.0),
        }];
        let e = evaluate(&s, &r, NOW + 38_853, Good).unwrap();
        assert_eq!(e.state, Alarm);
        assert_eq!(
            e.reason,
            "Threshold Crossed: 1 datapoint [3.0 (26/11/26 14:19:00)] was greater than or equal to the threshold (1.0)."
        );
        assert_eq!(
            e.reason_data,
            r#"{"version":"1.0","queryDate":"2026-11-26T14:20:38.853+0000","startDate":"2026-11-26T14:19:00.000+0000","statistic":"Sum","period":60,"recentDatapoints":[3.0],"threshold":1.0,"evaluatedDatapoints":[{"timestamp":"2026-11-26T14:19:00.000+0000","sampleCount":3.0,"value":3.0}]}"#
        );
        let missing = vec![PeriodValue {
            start_ms: NOW - MIN,
            value: None,
            sample_count: None,
        }];
        let e = evaluate(&s, &missing, NOW + 38_853, Good).unwrap();
        assert_eq!(e.state, Insufficient);
        assert_eq!(
            e.reason_data,
            r#"{"version":"1.0","queryDate":"2026-11-26T14:20:38.853+0000","statistic":"Sum","period":60,"recentDatapoints":[],"threshold":1.0,"evaluatedDatapoints":[{"timestamp":"2026-11-26T14:19:00.000+0000"}]}"#
        );
    }

    #[test]
    fn alarm_reason_data_orders_points() {
        let e = evaluate(&spec(2, 2, Missing), &range("X 0 X X"), NOW, Good).unwrap();
        let v: serde_json::Value = serde_json::from_str(&e.reason_data).unwrap();
        assert_eq!(v["recentDatapoints"], serde_json::json!([5.0, 5.0]));
        assert_eq!(v["startDate"], "2026-11-26T14:18:00.000+0000");
        assert_eq!(
            v["evaluatedDatapoints"][0]["timestamp"],
            "2026-11-26T14:19:00.000+0000"
        );
        // Filled slots are the newest missing periods.
        let e = evaluate(&spec(4, 4, Breaching), &range("0 X - X -"), NOW, Good).unwrap();
        let v: serde_json::Value = serde_json::from_str(&e.reason_data).unwrap();
        let stamps: Vec<&str> = v["evaluatedDatapoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["timestamp"].as_str().unwrap())
            .collect();
        assert_eq!(
            stamps,
            vec![
                "2026-11-26T14:19:00.000+0000",
                "2026-11-26T14:18:00.000+0000",
                "2026-11-26T14:16:00.000+0000",
                "2026-11-26T14:15:00.000+0000"
            ]
        );
    }

    #[test]
    fn alarm_spec_checked() {
        let mut s = spec(3, 3, Missing);
        assert!(s.check().is_ok());
        s.datapoints_to_alarm = 4;
        assert!(s.check().is_err());
        s.datapoints_to_alarm = 0;
        assert!(s.check().is_err());
        let mut s = spec(1441, 1, Missing);
        assert_eq!(
            s.check().unwrap_err().to_string(),
            "Metrics cannot be checked across more than a day (EvaluationPeriods * Period must be <= 86400)."
        );
        s.period_s = 3600;
        s.evaluation_periods = 168;
        assert!(s.check().is_ok());
        s.evaluation_periods = 169;
        assert!(s.check().is_err());
        let mut s = spec(1, 1, Missing);
        for p in [10, 20, 30, 60, 300] {
            s.period_s = p;
            assert!(s.check().is_ok(), "{p}");
        }
        for p in [0, 1, 5, 45, 90] {
            s.period_s = p;
            assert!(s.check().is_err(), "{p}");
        }
        let mut s = spec(1, 1, Missing);
        s.comparison = ComparisonOperator::LessThanLowerOrGreaterThanUpperThreshold;
        assert_eq!(
            evaluate(&s, &[], NOW, Good).unwrap_err(),
            AlarmError::UnsupportedOperator(
                ComparisonOperator::LessThanLowerOrGreaterThanUpperThreshold
            )
        );
    }

    #[test]
    fn alarm_evaluation_range_ends_at_last_complete_period() {
        let s = spec(3, 3, Missing);
        let r = s.evaluation_range(NOW + 25_000);
        assert_eq!(
            r,
            vec![
                NOW - 5 * MIN,
                NOW - 4 * MIN,
                NOW - 3 * MIN,
                NOW - 2 * MIN,
                NOW - MIN
            ]
        );
    }

    #[test]
    fn alarm_enums_parse_as_aws_spells_them() {
        for o in ComparisonOperator::ALL {
            assert_eq!(o.as_str().parse::<ComparisonOperator>().unwrap(), o);
        }
        for t in [Missing, Breaching, NotBreaching, Ignore] {
            assert_eq!(t.as_str().parse::<TreatMissingData>().unwrap(), t);
        }
        for st in [Good, Alarm, Insufficient] {
            assert_eq!(st.as_str().parse::<AlarmState>().unwrap(), st);
        }
        assert!("notbreaching".parse::<TreatMissingData>().is_err());
    }

    /// Scripted minutes of a target-tracking AlarmHigh (3 of 3, > 75) fed one datapoint a
    /// minute: the state after each evaluation.
    #[test]
    fn alarm_target_tracking_high_script() {
        let mut s = spec(3, 3, Missing);
        s.threshold = 75.0;
        let values = [
            None,
            Some(80.0),
            Some(81.2),
            Some(90.0),
            Some(70.0),
            Some(76.0),
            Some(77.0),
            Some(78.0),
        ];
        let want = [
            Insufficient,
            Insufficient,
            Insufficient,
            Alarm,
            Good,
            Good,
            Good,
            Alarm,
        ];
        let mut current = Insufficient;
        let mut history: Vec<PeriodValue> = Vec::new();
        for (i, (v, w)) in values.iter().zip(want).enumerate() {
            let start = NOW + i as i64 * MIN;
            history.push(PeriodValue {
                start_ms: start,
                value: *v,
                sample_count: v.map(|_| 1.0),
            });
            let now = start + MIN + 10_000;
            let range_starts = s.evaluation_range(now);
            let range: Vec<PeriodValue> = range_starts
                .iter()
                .map(|t| {
                    history
                        .iter()
                        .copied()
                        .find(|p| p.start_ms == *t)
                        .unwrap_or(PeriodValue {
                            start_ms: *t,
                            value: None,
                            sample_count: None,
                        })
                })
                .collect();
            let e = evaluate(&s, &range, now, current).unwrap();
            assert_eq!(e.state, w, "minute {i}");
            current = e.state;
        }
    }
}
