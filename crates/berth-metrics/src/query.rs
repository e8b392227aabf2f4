//! Answers from stored buckets: the datapoints of a GetMetricStatistics call
//! ([`statistics_datapoints`]), the time series of a GetMetricData `MetricStat`
//! ([`metric_stat_series`]), and rollups of finer buckets into coarser ones ([`rollup`]).
//!
//! Called by the API layer after storage has read one tier's buckets of one metric (and
//! unit) for the planned [`QueryWindow`]. Pure; no I/O.
//!
//! Windows are aligned on the rounded StartTime: `[start + k·period, start + (k+1)·period)`,
//! StartTime inclusive, EndTime exclusive (a last, shorter window holds what precedes
//! EndTime). A window without data produces no datapoint. Buckets must be of the
//! window's tier; they are expected in ascending start order (unsorted input is sorted
//! first, at a cost).

use crate::aggregate::{Aggregate, Statistic, Summary};
use crate::retention::{QueryWindow, bucket_start};
use std::borrow::Cow;

/// A time series: ascending timestamps (ms) with one value each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
}

impl Series {
    pub fn new() -> Series {
        Series::default()
    }

    /// From `(timestamp, value)` pairs (sorted by timestamp here).
    pub fn from_points(mut points: Vec<(i64, f64)>) -> Series {
        points.sort_by_key(|&(t, _)| t);
        let (timestamps, values) = points.into_iter().unzip();
        Series { timestamps, values }
    }

    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    pub fn push(&mut self, t: i64, v: f64) {
        self.timestamps.push(t);
        self.values.push(v);
    }

    /// `(timestamp, value)` pairs, ascending.
    pub fn points(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.timestamps
            .iter()
            .copied()
            .zip(self.values.iter().copied())
    }

    /// The value at `t`, if there is one.
    pub fn at(&self, t: i64) -> Option<f64> {
        self.timestamps
            .binary_search(&t)
            .ok()
            .and_then(|i| self.values.get(i).copied())
    }
}

/// One GetMetricStatistics datapoint: the window start and the merged aggregate, from
/// which the API layer reads each requested statistic (`Aggregate::statistic`; a
/// percentile that is `None` is left out of `ExtendedStatistics`).
#[derive(Debug, Clone, PartialEq)]
pub struct Datapoint {
    pub timestamp_ms: i64,
    pub aggregate: Aggregate,
}

fn sorted(buckets: &[(i64, Aggregate)]) -> Cow<'_, [(i64, Aggregate)]> {
    if buckets.windows(2).all(|w| w[0].0 <= w[1].0) {
        Cow::Borrowed(buckets)
    } else {
        let mut v = buckets.to_vec();
        v.sort_by_key(|&(t, _)| t);
        Cow::Owned(v)
    }
}

/// Calls `f(window_start, group)` for each non-empty window, in ascending order, with the
/// buckets (contiguous in the sorted input) that fall in it.
fn for_each_window(
    buckets: &[(i64, Aggregate)],
    window: &QueryWindow,
    mut f: impl FnMut(i64, &[(i64, Aggregate)]),
) {
    if window.tier.is_none() || window.period_s <= 0 {
        return;
    }
    let buckets = sorted(buckets);
    let first = buckets.partition_point(|&(t, _)| t < window.start_ms);
    let mut i = first;
    while i < buckets.len() {
        let Some(w) = window.window_of(buckets[i].0) else {
            break;
        };
        let mut j = i + 1;
        while j < buckets.len() && window.window_of(buckets[j].0) == Some(w) {
            j += 1;
        }
        f(w, &buckets[i..j]);
        i = j;
    }
}

/// The GetMetricStatistics datapoints of `window` from one tier's `buckets`, ascending by
/// timestamp (AWS returns them unordered; any order is faithful).
pub fn statistics_datapoints(buckets: &[(i64, Aggregate)], window: &QueryWindow) -> Vec<Datapoint> {
    let mut out = Vec::new();
    for_each_window(buckets, window, |w, group| {
        let mut agg = group[0].1.clone();
        for (_, a) in &group[1..] {
            agg.merge(a);
        }
        out.push(Datapoint {
            timestamp_ms: w,
            aggregate: agg,
        });
    });
    out
}

/// The series of one GetMetricData `MetricStat`: one value of `stat` per window with data,
/// ascending (reverse it for `TimestampDescending`). Windows where the statistic does not
/// exist (a percentile over statistic sets) are left out.
pub fn metric_stat_series(
    buckets: &[(i64, Aggregate)],
    window: &QueryWindow,
    stat: &Statistic,
) -> Series {
    let mut out = Series::new();
    let needs_distribution = stat.is_extended();
    for_each_window(buckets, window, |w, group| {
        let value = if group.len() == 1 {
            group[0].1.statistic(stat)
        } else if needs_distribution {
            let mut agg = group[0].1.clone();
            for (_, a) in &group[1..] {
                agg.merge(a);
            }
            agg.statistic(stat)
        } else {
            let mut s = Summary::of(&group[0].1);
            for (_, a) in &group[1..] {
                s.merge(a);
            }
            s.statistic(stat)
        };
        if let Some(v) = value {
            out.push(w, v);
        }
    });
    out
}

/// Merges buckets into `period_s` buckets aligned to the epoch (e.g. 60 one-minute buckets
/// into their hour), ascending. This is the rollup storage applies from a finer tier into a
/// coarser one.
pub fn rollup(buckets: &[(i64, Aggregate)], period_s: i64) -> Vec<(i64, Aggregate)> {
    let buckets = sorted(buckets);
    let mut out: Vec<(i64, Aggregate)> = Vec::new();
    for (t, a) in buckets.iter() {
        let b = bucket_start(*t, period_s);
        match out.last_mut() {
            Some((last, agg)) if *last == b => agg.merge(a),
            _ => out.push((b, a.clone())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::{MINUTE, SECOND};

    // 2026-11-26T14:00:00Z, an hour boundary.
    const T0: i64 = 1_795_701_600_000;

    fn minute_buckets(values: &[f64]) -> Vec<(i64, Aggregate)> {
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| (T0 + i as i64 * 60_000, Aggregate::from_value(v)))
            .collect()
    }

    fn window(start: i64, end: i64, period_s: i64) -> QueryWindow {
        QueryWindow {
            start_ms: start,
            end_ms: end,
            period_s,
            tier: Some(MINUTE),
        }
    }

    #[test]
    fn statistics_datapoints_group_by_period_start_inclusive_end_exclusive() {
        // Minutes 0..10 with values 0..10; 5-minute windows from minute 1 to minute 9.
        let buckets = minute_buckets(&(0..10).map(f64::from).collect::<Vec<_>>());
        let w = window(T0 + 60_000, T0 + 9 * 60_000, 300);
        let dps = statistics_datapoints(&buckets, &w);
        assert_eq!(dps.len(), 2);
        // [1, 6): minutes 1..=5; [6, 9): minutes 6..=8 (EndTime exclusive drops minute 9).
        assert_eq!(dps[0].timestamp_ms, T0 + 60_000);
        assert_eq!(dps[0].aggregate.sample_count(), 5.0);
        assert_eq!(dps[0].aggregate.sum(), 15.0);
        assert_eq!(dps[1].timestamp_ms, T0 + 6 * 60_000);
        assert_eq!(dps[1].aggregate.sample_count(), 3.0);
        assert_eq!(dps[1].aggregate.sum(), 21.0);
        assert_eq!(dps[1].aggregate.minimum(), 6.0);
        assert_eq!(dps[1].aggregate.maximum(), 8.0);
    }

    #[test]
    fn statistics_datapoints_skip_empty_periods() {
        let mut buckets = minute_buckets(&[1.0, 2.0]);
        buckets.push((T0 + 10 * 60_000, Aggregate::from_value(7.0)));
        let dps = statistics_datapoints(&buckets, &window(T0, T0 + 15 * 60_000, 120));
        let stamps: Vec<i64> = dps.iter().map(|d| d.timestamp_ms).collect();
        assert_eq!(stamps, vec![T0, T0 + 10 * 60_000]);
    }

    #[test]
    fn statistics_datapoints_empty_without_tier() {
        let buckets = minute_buckets(&[1.0]);
        let mut w = window(T0, T0 + 60_000, 60);
        w.tier = None;
        assert!(statistics_datapoints(&buckets, &w).is_empty());
    }

    #[test]
    fn metric_stat_series_one_statistic_per_window() {
        let buckets = minute_buckets(&[4.0, 8.0, 1.0, 3.0]);
        let w = window(T0, T0 + 4 * 60_000, 120);
        let avg = metric_stat_series(&buckets, &w, &Statistic::Average);
        assert_eq!(avg.timestamps, vec![T0, T0 + 120_000]);
        assert_eq!(avg.values, vec![6.0, 2.0]);
        let max = metric_stat_series(&buckets, &w, &Statistic::Maximum);
        assert_eq!(max.values, vec![8.0, 3.0]);
        let p50 = metric_stat_series(&buckets, &w, &"p50".parse().unwrap());
        assert_eq!(p50.values, vec![4.0, 1.0]);
        // Unsorted input gives the same answer.
        let mut shuffled = buckets.clone();
        shuffled.reverse();
        assert_eq!(metric_stat_series(&shuffled, &w, &Statistic::Average), avg);
    }

    #[test]
    fn metric_stat_series_drops_unavailable_percentiles() {
        let buckets = vec![
            (T0, Aggregate::from_statistic_set(3.0, 6.0, 1.0, 3.0)),
            (T0 + 60_000, Aggregate::from_value(5.0)),
        ];
        let w = window(T0, T0 + 120_000, 60);
        let p90 = metric_stat_series(&buckets, &w, &"p90".parse().unwrap());
        assert_eq!(p90.timestamps, vec![T0 + 60_000]);
        let n = metric_stat_series(&buckets, &w, &Statistic::SampleCount);
        assert_eq!(n.values, vec![3.0, 1.0]);
    }

    #[test]
    fn metric_stat_series_high_resolution_windows() {
        let buckets: Vec<(i64, Aggregate)> = (0..30)
            .map(|s| (T0 + s * 1000, Aggregate::from_value(s as f64)))
            .collect();
        let w = QueryWindow {
            start_ms: T0,
            end_ms: T0 + 30_000,
            period_s: 10,
            tier: Some(SECOND),
        };
        let sum = metric_stat_series(&buckets, &w, &Statistic::Sum);
        assert_eq!(sum.values, vec![45.0, 145.0, 245.0]);
    }

    #[test]
    fn rollup_of_sixty_minutes_equals_the_hour() {
        let values: Vec<f64> = (0..60).map(|i| f64::from(i) * 1.5 - 10.0).collect();
        let buckets = minute_buckets(&values);
        let hour = rollup(&buckets, 3600);
        assert_eq!(hour.len(), 1);
        assert_eq!(hour[0].0, T0);
        let whole = Aggregate::from_values(&values, &[]).unwrap();
        let got = &hour[0].1;
        assert_eq!(got.sample_count(), whole.sample_count());
        assert!((got.sum() - whole.sum()).abs() < 1e-9);
        assert_eq!(got.minimum(), whole.minimum());
        assert_eq!(got.maximum(), whole.maximum());
        // Sixty-one minutes spill into the next hour.
        let more = minute_buckets(&(0..61).map(f64::from).collect::<Vec<_>>());
        let hours = rollup(&more, 3600);
        assert_eq!(hours.len(), 2);
        assert_eq!(hours[1].1.sample_count(), 1.0);
    }

    #[test]
    fn series_helpers() {
        let s = Series::from_points(vec![(3, 30.0), (1, 10.0)]);
        assert_eq!(s.timestamps, vec![1, 3]);
        assert_eq!(s.at(3), Some(30.0));
        assert_eq!(s.at(2), None);
        assert_eq!(s.len(), 2);
    }
}
