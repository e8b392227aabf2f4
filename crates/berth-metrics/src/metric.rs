//! Metric identity ([`MetricId`]: namespace, name and the dimension set, sorted by name),
//! units ([`Unit`], every `StandardUnit` of the model) and the PutMetricData input check
//! ([`check_put_metric_data`]): from the request's datums to the [`Sample`]s storage merges
//! into its buckets, or the error AWS would return.
//!
//! Called by the CloudWatch API layer (PutMetricData, and [`MetricId::new`] for the metric
//! named by GetMetricStatistics / GetMetricData / alarms) and by Berth's own publishers
//! (ECS and ALB metrics, with [`Publisher::Internal`] to write `AWS/` namespaces). Pure: the
//! caller passes `now`.
//!
//! Error codes are the model's wire codes for PutMetricData. Message wording:
//! * documented or observed from AWS: `The value NaN for parameter
//!   MetricData.member.1.Value is invalid.`; `The parameters MetricData.member.1.Value and
//!   MetricData.member.1.StatisticValues are mutually exclusive and you have specified
//!   both.`; `The parameters MetricData.member.1.Values and MetricData.member.1.Counts must
//!   be of the same size.`; `The collection MetricData must not have a size greater than
//!   1000.` (AWS's wording for list limits).
//! * by analogy with those (guessed): the `AWS/` namespace refusal (`The value AWS/ECS for
//!   parameter Namespace is invalid.`), timestamps out of range, StorageResolution, the
//!   statistic-set checks, missing value, duplicate dimension names.
//!
//! Magnitudes: the documented range is -2^360..2^360; CloudWatch also refuses non-zero
//! values smaller in magnitude than 2^-360 (observed by Netflix servo's CloudWatch probe),
//! and so does this check.

use crate::aggregate::Aggregate;
use crate::error::InputError;
use crate::format::iso_time;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// Dimensions a metric may have.
pub const MAX_DIMENSIONS: usize = 30;
/// Datums one PutMetricData request may carry.
pub const MAX_DATUMS: usize = 1000;
/// Distinct values one datum's `Values` may carry.
pub const MAX_VALUES: usize = 150;
/// How far in the past a datum's timestamp may be (14 days).
pub const MAX_PAST_MS: i64 = 14 * 24 * 3600 * 1000;
/// How far in the future a datum's timestamp may be (2 hours).
pub const MAX_FUTURE_MS: i64 = 2 * 3600 * 1000;

/// One `{Name, Value}` dimension.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Dimension {
    pub name: String,
    pub value: String,
}

impl Dimension {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Dimension {
        Dimension {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A metric: namespace, name and its exact dimension set. Dimensions are kept sorted by
/// name, so two requests naming the same set in different orders are the same metric, and
/// `{ClusterName}` and `{ClusterName, ServiceName}` are different metrics.
///
/// Serde is for storage (trusted data): deserializing does not re-check or re-sort.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MetricId {
    namespace: String,
    name: String,
    dimensions: Vec<Dimension>,
}

impl MetricId {
    /// Checks the parts (lengths, ≤ 30 dimensions, no duplicate dimension names) and sorts
    /// the dimensions. Errors name the parameters as GetMetricStatistics does
    /// (`Namespace`, `MetricName`, `Dimensions`).
    pub fn new(
        namespace: impl Into<String>,
        name: impl Into<String>,
        dimensions: Vec<Dimension>,
    ) -> Result<MetricId, InputError> {
        let namespace = namespace.into();
        check_namespace(&namespace)?;
        let name = name.into();
        check_metric_name(&name, "MetricName")?;
        let dimensions = checked_dimensions(dimensions, "Dimensions")?;
        Ok(MetricId {
            namespace,
            name,
            dimensions,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sorted by name.
    pub fn dimensions(&self) -> &[Dimension] {
        &self.dimensions
    }

    /// ListMetrics' dimension filter: every `(name, value?)` given is present (a `None`
    /// value matches any value).
    pub fn matches_dimension_filter(&self, filter: &[(String, Option<String>)]) -> bool {
        filter.iter().all(|(name, value)| {
            self.dimensions
                .iter()
                .any(|d| &d.name == name && value.as_ref().is_none_or(|v| v == &d.value))
        })
    }
}

fn check_namespace(ns: &str) -> Result<(), InputError> {
    let bad = ns.is_empty()
        || ns.chars().count() > 255
        || ns.starts_with(':')
        || ns.chars().any(|c| !c.is_ascii() || c.is_ascii_control());
    if bad {
        return Err(InputError::value(format!(
            "The value {ns} for parameter Namespace is invalid."
        )));
    }
    Ok(())
}

fn check_metric_name(name: &str, param: &str) -> Result<(), InputError> {
    if name.is_empty() {
        return Err(InputError::missing(format!(
            "The parameter {param} is required."
        )));
    }
    if name.chars().count() > 255 {
        return Err(InputError::value(format!(
            "The value {name} for parameter {param} is invalid."
        )));
    }
    Ok(())
}

fn checked_dimensions(mut dims: Vec<Dimension>, param: &str) -> Result<Vec<Dimension>, InputError> {
    if dims.len() > MAX_DIMENSIONS {
        return Err(InputError::value(format!(
            "The collection {param} must not have a size greater than {MAX_DIMENSIONS}."
        )));
    }
    for (i, d) in dims.iter().enumerate() {
        let n = i + 1;
        if d.name.is_empty() {
            return Err(InputError::missing(format!(
                "The parameter {param}.member.{n}.Name is required."
            )));
        }
        if d.value.is_empty() {
            return Err(InputError::missing(format!(
                "The parameter {param}.member.{n}.Value is required."
            )));
        }
        if d.name.chars().count() > 255 {
            return Err(InputError::value(format!(
                "The value {} for parameter {param}.member.{n}.Name is invalid.",
                d.name
            )));
        }
        if d.value.chars().count() > 1024 {
            return Err(InputError::value(format!(
                "The value {} for parameter {param}.member.{n}.Value is invalid.",
                d.value
            )));
        }
    }
    dims.sort();
    if let Some(w) = dims.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(InputError::value(format!(
            "The value {} for parameter {param} is invalid: dimension names must be unique.",
            w[0].name
        )));
    }
    Ok(dims)
}

/// `StandardUnit`: every unit of the CloudWatch model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Seconds,
    Microseconds,
    Milliseconds,
    Bytes,
    Kilobytes,
    Megabytes,
    Gigabytes,
    Terabytes,
    Bits,
    Kilobits,
    Megabits,
    Gigabits,
    Terabits,
    Percent,
    Count,
    BytesPerSecond,
    KilobytesPerSecond,
    MegabytesPerSecond,
    GigabytesPerSecond,
    TerabytesPerSecond,
    BitsPerSecond,
    KilobitsPerSecond,
    MegabitsPerSecond,
    GigabitsPerSecond,
    TerabitsPerSecond,
    CountPerSecond,
    None,
}

impl Unit {
    /// All units, in the model's order.
    pub const ALL: [Unit; 27] = [
        Unit::Seconds,
        Unit::Microseconds,
        Unit::Milliseconds,
        Unit::Bytes,
        Unit::Kilobytes,
        Unit::Megabytes,
        Unit::Gigabytes,
        Unit::Terabytes,
        Unit::Bits,
        Unit::Kilobits,
        Unit::Megabits,
        Unit::Gigabits,
        Unit::Terabits,
        Unit::Percent,
        Unit::Count,
        Unit::BytesPerSecond,
        Unit::KilobytesPerSecond,
        Unit::MegabytesPerSecond,
        Unit::GigabytesPerSecond,
        Unit::TerabytesPerSecond,
        Unit::BitsPerSecond,
        Unit::KilobitsPerSecond,
        Unit::MegabitsPerSecond,
        Unit::GigabitsPerSecond,
        Unit::TerabitsPerSecond,
        Unit::CountPerSecond,
        Unit::None,
    ];

    /// The wire spelling (`Bytes/Second`, `None`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "Seconds",
            Unit::Microseconds => "Microseconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
            Unit::Kilobytes => "Kilobytes",
            Unit::Megabytes => "Megabytes",
            Unit::Gigabytes => "Gigabytes",
            Unit::Terabytes => "Terabytes",
            Unit::Bits => "Bits",
            Unit::Kilobits => "Kilobits",
            Unit::Megabits => "Megabits",
            Unit::Gigabits => "Gigabits",
            Unit::Terabits => "Terabits",
            Unit::Percent => "Percent",
            Unit::Count => "Count",
            Unit::BytesPerSecond => "Bytes/Second",
            Unit::KilobytesPerSecond => "Kilobytes/Second",
            Unit::MegabytesPerSecond => "Megabytes/Second",
            Unit::GigabytesPerSecond => "Gigabytes/Second",
            Unit::TerabytesPerSecond => "Terabytes/Second",
            Unit::BitsPerSecond => "Bits/Second",
            Unit::KilobitsPerSecond => "Kilobits/Second",
            Unit::MegabitsPerSecond => "Megabits/Second",
            Unit::GigabitsPerSecond => "Gigabits/Second",
            Unit::TerabitsPerSecond => "Terabits/Second",
            Unit::CountPerSecond => "Count/Second",
            Unit::None => "None",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Unit {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unit, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A string that is not a `StandardUnit`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown unit {0:?}")]
pub struct UnknownUnit(pub String);

impl FromStr for Unit {
    type Err = UnknownUnit;

    fn from_str(s: &str) -> Result<Unit, UnknownUnit> {
        Unit::ALL
            .iter()
            .copied()
            .find(|u| u.as_str() == s)
            .ok_or_else(|| UnknownUnit(s.to_string()))
    }
}

/// Storage resolution of a datum (`StorageResolution` 60, the default, or 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Resolution {
    Standard,
    High,
}

impl Resolution {
    pub fn seconds(self) -> i64 {
        match self {
            Resolution::Standard => 60,
            Resolution::High => 1,
        }
    }
}

/// `StatisticValues` of a datum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatisticSetInput {
    pub sample_count: f64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
}

/// One `MetricDatum` as the request carried it (already decoded from the wire).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DatumInput {
    pub metric_name: String,
    pub dimensions: Vec<Dimension>,
    /// Milliseconds since the epoch; `None` means "now".
    pub timestamp_ms: Option<i64>,
    pub value: Option<f64>,
    pub statistic_values: Option<StatisticSetInput>,
    /// `Values`; empty when absent.
    pub values: Vec<f64>,
    /// `Counts`; empty when absent (then every count is 1).
    pub counts: Vec<f64>,
    /// `None` when the request gave no unit (stored as [`Unit::None`]).
    pub unit: Option<Unit>,
    /// `StorageResolution` as given.
    pub storage_resolution: Option<i64>,
}

/// Who is writing: users may not write `AWS/` namespaces; Berth's own publishers may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publisher {
    User,
    Internal,
}

/// One accepted datum, ready for storage: merge `aggregate` into the bucket of
/// `timestamp_ms` in the tiers `retention::tiers_for(resolution)` names.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub metric: MetricId,
    pub timestamp_ms: i64,
    pub unit: Unit,
    pub resolution: Resolution,
    pub aggregate: Aggregate,
}

const TWO_POW_360: f64 = 2.348_542_582_773_833_3e108;

fn valid_number(v: f64) -> bool {
    v.is_finite() && (v == 0.0 || (v.abs() <= TWO_POW_360 && v.abs() >= 1.0 / TWO_POW_360))
}

fn render_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        format!("{v}")
    }
}

fn check_number(v: f64, param: &str) -> Result<(), InputError> {
    if valid_number(v) {
        Ok(())
    } else {
        Err(InputError::value(format!(
            "The value {} for parameter {param} is invalid.",
            render_value(v)
        )))
    }
}

/// Checks a PutMetricData request as CloudWatch does and turns each datum into a
/// [`Sample`]. All-or-nothing: the first invalid datum fails the whole request, like AWS.
/// A `Values`/`Counts` datum whose counts are all zero yields no sample.
pub fn check_put_metric_data(
    namespace: &str,
    data: &[DatumInput],
    now_ms: i64,
    publisher: Publisher,
) -> Result<Vec<Sample>, InputError> {
    if namespace.is_empty() {
        return Err(InputError::missing("The parameter Namespace is required."));
    }
    check_namespace(namespace)?;
    if publisher == Publisher::User && namespace.starts_with("AWS/") {
        return Err(InputError::value(format!(
            "The value {namespace} for parameter Namespace is invalid."
        )));
    }
    if data.is_empty() {
        return Err(InputError::missing("The parameter MetricData is required."));
    }
    if data.len() > MAX_DATUMS {
        return Err(InputError::value(format!(
            "The collection MetricData must not have a size greater than {MAX_DATUMS}."
        )));
    }
    let mut samples = Vec::with_capacity(data.len());
    for (i, d) in data.iter().enumerate() {
        if let Some(s) = check_datum(namespace, d, i + 1, now_ms)? {
            samples.push(s);
        }
    }
    Ok(samples)
}

fn check_datum(
    namespace: &str,
    d: &DatumInput,
    n: usize,
    now_ms: i64,
) -> Result<Option<Sample>, InputError> {
    let p = format!("MetricData.member.{n}");
    check_metric_name(&d.metric_name, &format!("{p}.MetricName"))?;
    let dimensions = checked_dimensions(d.dimensions.clone(), &format!("{p}.Dimensions"))?;

    let has_values = !d.values.is_empty();
    match (d.value.is_some(), d.statistic_values.is_some(), has_values) {
        (true, true, _) => {
            return Err(InputError::combination(format!(
                "The parameters {p}.Value and {p}.StatisticValues are mutually exclusive and you have specified both."
            )));
        }
        (true, false, true) => {
            return Err(InputError::value(format!(
                "The parameters {p}.Value and {p}.Values are mutually exclusive and you have specified both."
            )));
        }
        (false, true, true) => {
            return Err(InputError::combination(format!(
                "The parameters {p}.StatisticValues and {p}.Values are mutually exclusive and you have specified both."
            )));
        }
        (false, false, false) if d.counts.is_empty() => {
            return Err(InputError::missing(format!(
                "The parameter {p}.Value is required when neither {p}.StatisticValues nor {p}.Values is given."
            )));
        }
        _ => {}
    }

    let resolution = match d.storage_resolution {
        None | Some(60) => Resolution::Standard,
        Some(1) => Resolution::High,
        Some(r) => {
            return Err(InputError::value(format!(
                "The value {r} for parameter {p}.StorageResolution is invalid."
            )));
        }
    };

    let timestamp_ms = d.timestamp_ms.unwrap_or(now_ms);
    if timestamp_ms < now_ms - MAX_PAST_MS || timestamp_ms > now_ms + MAX_FUTURE_MS {
        return Err(InputError::value(format!(
            "The value {} for parameter {p}.Timestamp is invalid: timestamps must be no more than two weeks in the past and no more than two hours in the future.",
            iso_time(timestamp_ms)
        )));
    }

    let aggregate = if let Some(v) = d.value {
        check_number(v, &format!("{p}.Value"))?;
        Aggregate::from_value(v)
    } else if let Some(s) = d.statistic_values {
        let sp = format!("{p}.StatisticValues");
        check_number(s.sample_count, &format!("{sp}.SampleCount"))?;
        check_number(s.sum, &format!("{sp}.Sum"))?;
        check_number(s.minimum, &format!("{sp}.Minimum"))?;
        check_number(s.maximum, &format!("{sp}.Maximum"))?;
        if s.sample_count <= 0.0 {
            return Err(InputError::value(format!(
                "The value {} for parameter {sp}.SampleCount is invalid: it must be greater than 0.",
                render_value(s.sample_count)
            )));
        }
        if s.minimum > s.maximum {
            return Err(InputError::value(format!(
                "The parameter {sp}.Minimum must be less than or equal to {sp}.Maximum."
            )));
        }
        Aggregate::from_statistic_set(s.sample_count, s.sum, s.minimum, s.maximum)
    } else {
        if d.values.len() > MAX_VALUES {
            return Err(InputError::value(format!(
                "The collection {p}.Values must not have a size greater than {MAX_VALUES}."
            )));
        }
        if !d.counts.is_empty() && d.counts.len() != d.values.len() {
            return Err(InputError::value(format!(
                "The parameters {p}.Values and {p}.Counts must be of the same size."
            )));
        }
        for (j, &v) in d.values.iter().enumerate() {
            check_number(v, &format!("{p}.Values.member.{}", j + 1))?;
        }
        for (j, &c) in d.counts.iter().enumerate() {
            if !(c.is_finite() && c >= 0.0) {
                return Err(InputError::value(format!(
                    "The value {} for parameter {p}.Counts.member.{} is invalid.",
                    render_value(c),
                    j + 1
                )));
            }
        }
        match Aggregate::from_values(&d.values, &d.counts) {
            Some(a) => a,
            None => return Ok(None),
        }
    };

    Ok(Some(Sample {
        metric: MetricId {
            namespace: namespace.to_string(),
            name: d.metric_name.clone(),
            dimensions,
        },
        timestamp_ms,
        unit: d.unit.unwrap_or(Unit::None),
        resolution,
        aggregate,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    const NOW: i64 = 1_795_702_800_000;

    fn datum(name: &str, value: f64) -> DatumInput {
        DatumInput {
            metric_name: name.into(),
            value: Some(value),
            ..DatumInput::default()
        }
    }

    fn put(ns: &str, data: &[DatumInput]) -> Result<Vec<Sample>, InputError> {
        check_put_metric_data(ns, data, NOW, Publisher::User)
    }

    fn err(ns: &str, data: &[DatumInput]) -> (ErrorCode, String) {
        let e = put(ns, data).unwrap_err();
        (e.code, e.message)
    }

    #[test]
    fn metric_id_sorts_dimensions() {
        let a = MetricId::new(
            "AWS/ECS",
            "CPUUtilization",
            vec![
                Dimension::new("ServiceName", "web"),
                Dimension::new("ClusterName", "default"),
            ],
        )
        .unwrap();
        let b = MetricId::new(
            "AWS/ECS",
            "CPUUtilization",
            vec![
                Dimension::new("ClusterName", "default"),
                Dimension::new("ServiceName", "web"),
            ],
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.dimensions()[0].name, "ClusterName");
        let cluster_only = MetricId::new(
            "AWS/ECS",
            "CPUUtilization",
            vec![Dimension::new("ClusterName", "default")],
        )
        .unwrap();
        assert_ne!(a, cluster_only);
        assert!(a.matches_dimension_filter(&[("ServiceName".into(), None)]));
        assert!(a.matches_dimension_filter(&[("ClusterName".into(), Some("default".into()))]));
        assert!(!a.matches_dimension_filter(&[("ClusterName".into(), Some("other".into()))]));
    }

    #[test]
    fn metric_id_refuses_more_than_30_dimensions_and_duplicates() {
        let dims: Vec<Dimension> = (0..31)
            .map(|i| Dimension::new(format!("d{i:02}"), "v"))
            .collect();
        let e = MetricId::new("ns", "m", dims).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterValue);
        assert_eq!(
            e.message,
            "The collection Dimensions must not have a size greater than 30."
        );
        let dup = vec![Dimension::new("a", "1"), Dimension::new("a", "2")];
        assert!(MetricId::new("ns", "m", dup).is_err());
    }

    #[test]
    fn unit_parse_round_trips_every_standard_unit() {
        for u in Unit::ALL {
            assert_eq!(u.as_str().parse::<Unit>().unwrap(), u);
        }
        assert_eq!(
            "Bytes/Second".parse::<Unit>().unwrap(),
            Unit::BytesPerSecond
        );
        assert!("bytes".parse::<Unit>().is_err());
        assert_eq!(
            serde_json::to_string(&Unit::CountPerSecond).unwrap(),
            r#""Count/Second""#
        );
        let u: Unit = serde_json::from_str(r#""Percent""#).unwrap();
        assert_eq!(u, Unit::Percent);
        assert!(serde_json::from_str::<Unit>(r#""percent""#).is_err());
    }

    #[test]
    fn put_accepts_value_and_defaults() {
        let s = put("MyApp", &[datum("Latency", 81.2)]).unwrap();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].timestamp_ms, NOW);
        assert_eq!(s[0].unit, Unit::None);
        assert_eq!(s[0].resolution, Resolution::Standard);
        assert_eq!(s[0].aggregate.sum(), 81.2);
        assert_eq!(s[0].metric.namespace(), "MyApp");
    }

    #[test]
    fn put_refuses_reserved_namespace_for_users_only() {
        assert_eq!(
            err("AWS/ECS", &[datum("CPUUtilization", 1.0)]),
            (
                ErrorCode::InvalidParameterValue,
                "The value AWS/ECS for parameter Namespace is invalid.".into()
            )
        );
        let ok = check_put_metric_data(
            "AWS/ECS",
            &[datum("CPUUtilization", 1.0)],
            NOW,
            Publisher::Internal,
        );
        assert!(ok.is_ok());
        assert!(put(":bad", &[datum("m", 1.0)]).is_err());
    }

    #[test]
    fn put_refuses_more_than_1000_datums() {
        let data: Vec<DatumInput> = (0..1001).map(|_| datum("m", 1.0)).collect();
        assert_eq!(
            err("ns", &data),
            (
                ErrorCode::InvalidParameterValue,
                "The collection MetricData must not have a size greater than 1000.".into()
            )
        );
        assert_eq!(put("ns", &data[..1000]).unwrap().len(), 1000);
    }

    #[test]
    fn put_value_with_statistic_values_is_a_combination_error() {
        let mut d = datum("stats", 123.0);
        d.statistic_values = Some(StatisticSetInput {
            sample_count: 2.0,
            sum: 10.0,
            minimum: 1.0,
            maximum: 9.0,
        });
        assert_eq!(
            err("ns", &[d]),
            (
                ErrorCode::InvalidParameterCombination,
                "The parameters MetricData.member.1.Value and MetricData.member.1.StatisticValues are mutually exclusive and you have specified both.".into()
            )
        );
    }

    #[test]
    fn put_values_and_counts_checked() {
        let mut d = datum("m", 0.0);
        d.value = None;
        d.values = vec![1.0, 10.0];
        d.counts = vec![2.0, 4.0, 1.0];
        assert_eq!(
            err("ns", std::slice::from_ref(&d)),
            (
                ErrorCode::InvalidParameterValue,
                "The parameters MetricData.member.1.Values and MetricData.member.1.Counts must be of the same size.".into()
            )
        );
        d.counts = vec![2.0, 4.0];
        let s = put("ns", &[d.clone()]).unwrap();
        assert_eq!(s[0].aggregate.sample_count(), 6.0);
        assert_eq!(s[0].aggregate.sum(), 42.0);
        d.values = (0..151).map(f64::from).collect();
        d.counts = vec![];
        assert_eq!(
            err("ns", &[d.clone()]).1,
            "The collection MetricData.member.1.Values must not have a size greater than 150."
        );
        d.values = vec![1.0, 2.0];
        d.counts = vec![0.0, 0.0];
        assert!(put("ns", &[d]).unwrap().is_empty());
    }

    #[test]
    fn put_refuses_nan_infinity_and_huge_magnitudes() {
        assert_eq!(
            err("ns", &[datum("m", f64::NAN)]).1,
            "The value NaN for parameter MetricData.member.1.Value is invalid."
        );
        assert!(put("ns", &[datum("m", f64::INFINITY)]).is_err());
        assert!(put("ns", &[datum("m", f64::NEG_INFINITY)]).is_err());
        assert!(put("ns", &[datum("m", 2f64.powi(361))]).is_err());
        assert!(put("ns", &[datum("m", -(2f64.powi(361)))]).is_err());
        assert!(put("ns", &[datum("m", 2f64.powi(-361))]).is_err());
        assert!(put("ns", &[datum("m", 2f64.powi(360))]).is_ok());
        assert!(put("ns", &[datum("m", -(2f64.powi(360)))]).is_ok());
        assert!(put("ns", &[datum("m", 0.0)]).is_ok());
        let mut d = datum("m", 0.0);
        d.value = None;
        d.values = vec![1.0, f64::NAN];
        assert_eq!(
            err("ns", &[d]).1,
            "The value NaN for parameter MetricData.member.1.Values.member.2 is invalid."
        );
    }

    #[test]
    fn put_timestamps_limited_to_two_weeks_back_two_hours_ahead() {
        let mut d = datum("m", 1.0);
        d.timestamp_ms = Some(NOW - MAX_PAST_MS);
        assert!(put("ns", &[d.clone()]).is_ok());
        d.timestamp_ms = Some(NOW - MAX_PAST_MS - 1);
        let (code, msg) = err("ns", &[d.clone()]);
        assert_eq!(code, ErrorCode::InvalidParameterValue);
        assert!(msg.starts_with(
            "The value 2026-11-12T14:19:59Z for parameter MetricData.member.1.Timestamp is invalid"
        ));
        d.timestamp_ms = Some(NOW + MAX_FUTURE_MS);
        assert!(put("ns", &[d.clone()]).is_ok());
        d.timestamp_ms = Some(NOW + MAX_FUTURE_MS + 1);
        assert!(put("ns", &[d]).is_err());
    }

    #[test]
    fn put_storage_resolution_is_1_or_60() {
        let mut d = datum("m", 1.0);
        d.storage_resolution = Some(1);
        assert_eq!(
            put("ns", &[d.clone()]).unwrap()[0].resolution,
            Resolution::High
        );
        d.storage_resolution = Some(60);
        assert_eq!(
            put("ns", &[d.clone()]).unwrap()[0].resolution,
            Resolution::Standard
        );
        d.storage_resolution = Some(5);
        assert_eq!(
            err("ns", &[d]).1,
            "The value 5 for parameter MetricData.member.1.StorageResolution is invalid."
        );
    }

    #[test]
    fn put_statistic_set_checked() {
        let mut d = datum("m", 0.0);
        d.value = None;
        d.statistic_values = Some(StatisticSetInput {
            sample_count: 3.0,
            sum: 123.0,
            minimum: 100.0,
            maximum: 12.0,
        });
        assert_eq!(err("ns", &[d.clone()]).0, ErrorCode::InvalidParameterValue);
        d.statistic_values = Some(StatisticSetInput {
            sample_count: 0.0,
            sum: 0.0,
            minimum: 1.0,
            maximum: 1.0,
        });
        assert_eq!(err("ns", &[d.clone()]).0, ErrorCode::InvalidParameterValue);
        d.statistic_values = Some(StatisticSetInput {
            sample_count: 3.0,
            sum: 123.0,
            minimum: 12.0,
            maximum: 100.0,
        });
        let s = put("ns", &[d]).unwrap();
        assert_eq!(s[0].aggregate.average(), 41.0);
    }

    #[test]
    fn put_errors_name_the_failing_member() {
        let data = vec![datum("ok", 1.0), datum("", 1.0)];
        assert_eq!(
            err("ns", &data),
            (
                ErrorCode::MissingParameter,
                "The parameter MetricData.member.2.MetricName is required.".into()
            )
        );
        let mut no_value = datum("m", 0.0);
        no_value.value = None;
        assert_eq!(err("ns", &[no_value]).0, ErrorCode::MissingParameter);
    }
}
