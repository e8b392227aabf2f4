//! `berth-metrics`: CloudWatch's metric and alarm semantics, pure (no I/O, no clock: every
//! function that needs the time takes `now`). The CloudWatch API layer and the metric
//! storage build on it; it must not depend on them, on the wire types, or on any store.
//!
//! * [`metric`]: metric identity ([`MetricId`], dimensions sorted), [`Unit`], and the
//!   PutMetricData check [`check_put_metric_data`] → [`Sample`]s or AWS's error.
//! * [`aggregate`]: what storage keeps per metric, tier and period bucket — an
//!   [`Aggregate`] (count, sum, min, max, bounded distribution for percentiles) — and the
//!   [`Statistic`]s computed from it.
//! * [`retention`]: the four resolution [`Tier`]s, bucket starts, expiry, StartTime
//!   rounding, which tier answers a query, and the Period / 1,440-datapoint checks
//!   ([`plan_query`] → [`QueryWindow`]).
//! * [`query`]: GetMetricStatistics datapoints and GetMetricData `MetricStat` series from one
//!   tier's buckets; rollups.
//! * [`math`]: the GetMetricData metric-math subset (parser, evaluator, query ordering).
//! * [`alarm`]: metric alarm evaluation with AWS's `StateReason` / `StateReasonData`.
//! * [`composite`]: composite-alarm rules.
//!
//! Errors: request checks return [`InputError`] (AWS wire code + message); math, alarm specs
//! and composite rules have their own error types whose message is what AWS's
//! `ValidationError` should carry.
//!
//! # How storage is meant to use it
//! For each accepted [`Sample`], merge its aggregate into the bucket
//! `tier.bucket_start(sample.timestamp_ms)` of every tier in
//! [`retention::tiers_for`]`(sample.resolution)`, keyed by (metric, unit, tier, bucket
//! start); drop buckets with `tier.expired(start, now)`. To answer a query, [`plan_query`],
//! read the buckets of `window.tier` in `[window.start_ms, window.end_ms)`, then call
//! [`query::statistics_datapoints`] or [`query::metric_stat_series`].

pub mod aggregate;
pub mod alarm;
pub mod composite;
mod error;
mod format;
pub mod math;
pub mod metric;
pub mod query;
pub mod retention;
mod serde_str;

pub use aggregate::{Aggregate, Percentile, Statistic, Summary, UnknownStatistic};
pub use alarm::{
    AlarmError, AlarmSpec, AlarmState, ComparisonOperator, Evaluation, InvalidEnumValue,
    PeriodValue, TreatMissingData, evaluate,
};
pub use composite::{Rule, RuleError, alarm_name_of};
pub use error::{ErrorCode, InputError};
pub use math::{Context, Expr, Grid, Labeled, MathError, Value, evaluation_order};
pub use metric::{
    DatumInput, Dimension, MetricId, Publisher, Resolution, Sample, StatisticSetInput, Unit,
    UnknownUnit, check_put_metric_data,
};
pub use query::{Datapoint, Series, metric_stat_series, rollup, statistics_datapoints};
pub use retention::{Api, QueryWindow, Tier, plan_query};
