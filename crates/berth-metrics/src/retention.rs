//! Resolution tiers and time windows: which [`Tier`]s a datum is written to, the bucket a
//! timestamp falls in, when a bucket expires, which tier answers a query, how CloudWatch
//! rounds a query's StartTime, and the Period / datapoint-count checks of
//! GetMetricStatistics and GetMetricData ([`plan_query`]).
//!
//! Called by storage (bucket keys, expiry sweeps) and by the API layer before it reads
//! buckets. Pure: `now` is an argument.
//!
//! AWS's retention (GetMetricStatistics documentation): periods under 60 s for 3 hours
//! (high-resolution custom metrics only), 60 s for 15 days, 300 s for 63 days, 3600 s for
//! 455 days. Data published at a fine period is aggregated into the coarser ones. Storage
//! should merge each sample into its bucket in every tier of [`tiers_for`] at write time
//! (or roll up before the finer bucket expires): a query then reads exactly one tier.
//!
//! Messages: `You have requested up to N datapoints, which exceeds the limit of 1,440. …`
//! and `The parameter StartTime must be less than the parameter EndTime.` are AWS's; the
//! Period message is a guess in the same style.

use crate::error::InputError;
use crate::format::grouped;
use crate::metric::Resolution;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// GetMetricStatistics returns at most this many datapoints.
pub const MAX_STATISTICS_DATAPOINTS: u64 = 1440;

/// One stored resolution: buckets of `period_s` seconds kept for `retention_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tier {
    pub period_s: i64,
    pub retention_ms: i64,
}

/// 1-second buckets, kept 3 hours (high-resolution metrics only).
pub const SECOND: Tier = Tier {
    period_s: 1,
    retention_ms: 3 * HOUR_MS,
};
/// 1-minute buckets, kept 15 days.
pub const MINUTE: Tier = Tier {
    period_s: 60,
    retention_ms: 15 * DAY_MS,
};
/// 5-minute buckets, kept 63 days.
pub const FIVE_MINUTES: Tier = Tier {
    period_s: 300,
    retention_ms: 63 * DAY_MS,
};
/// 1-hour buckets, kept 455 days.
pub const HOUR: Tier = Tier {
    period_s: 3600,
    retention_ms: 455 * DAY_MS,
};

/// All tiers, finest first.
pub const TIERS: [Tier; 4] = [SECOND, MINUTE, FIVE_MINUTES, HOUR];

impl Tier {
    pub fn period_ms(self) -> i64 {
        self.period_s * 1000
    }

    /// The start of the bucket holding `ts_ms`.
    pub fn bucket_start(self, ts_ms: i64) -> i64 {
        bucket_start(ts_ms, self.period_s)
    }

    /// Buckets starting before this instant have expired at `now_ms`.
    pub fn cutoff_ms(self, now_ms: i64) -> i64 {
        now_ms - self.retention_ms
    }

    /// Whether the bucket starting at `bucket_start_ms` has expired at `now_ms`.
    pub fn expired(self, bucket_start_ms: i64, now_ms: i64) -> bool {
        bucket_start_ms < self.cutoff_ms(now_ms)
    }

    /// The next coarser tier (what this one rolls up into).
    pub fn coarser(self) -> Option<Tier> {
        let i = TIERS.iter().position(|t| *t == self)?;
        TIERS.get(i + 1).copied()
    }
}

/// The tiers a sample of this resolution is written to: high-resolution samples go to all
/// four, standard ones to the 1-minute tier and coarser.
pub fn tiers_for(resolution: Resolution) -> &'static [Tier] {
    match resolution {
        Resolution::High => &TIERS,
        Resolution::Standard => &TIERS[1..],
    }
}

/// The start of the `period_s` bucket holding `ts_ms` (aligned to the epoch; correct for
/// negative timestamps too).
pub fn bucket_start(ts_ms: i64, period_s: i64) -> i64 {
    let p = period_s.max(1) * 1000;
    ts_ms.div_euclid(p) * p
}

/// StartTime as CloudWatch rounds it: for periods of 1/5/10/20/30 s, down to a multiple of
/// the period; otherwise down to the minute when less than 15 days ago, to 5 minutes
/// between 15 and 63 days ago, to the hour when older.
pub fn round_start_time(start_ms: i64, period_s: i64, now_ms: i64) -> i64 {
    if period_s < 60 {
        return bucket_start(start_ms, period_s);
    }
    let age = now_ms - start_ms;
    let unit_s = if age < MINUTE.retention_ms {
        60
    } else if age < FIVE_MINUTES.retention_ms {
        300
    } else {
        3600
    };
    bucket_start(start_ms, unit_s)
}

/// The tier whose buckets answer a query of `period_s` starting at (rounded) `start_ms`,
/// or `None` when AWS would return no datapoints: periods under 60 s read the 1-second
/// tier while it still holds `start_ms`; longer periods read the finest of the 1-minute,
/// 5-minute and 1-hour tiers that divides the period and still holds `start_ms` ("start
/// time between 15 and 63 days ago – use a multiple of 300 seconds … or no data points in
/// that time range is returned").
pub fn answering_tier(period_s: i64, start_ms: i64, now_ms: i64) -> Option<Tier> {
    if period_s <= 0 {
        return None;
    }
    let candidates: &[Tier] = if period_s < 60 {
        &TIERS[..1]
    } else {
        &TIERS[1..]
    };
    candidates
        .iter()
        .copied()
        .find(|t| period_s % t.period_s == 0 && !t.expired(start_ms, now_ms))
}

/// Which API a window is planned for (they differ in limits and error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    GetMetricStatistics,
    GetMetricData,
}

/// A checked query window: datapoints are the windows `[start + k·period,
/// start + (k+1)·period)` with `start + k·period < end`, read from `tier`'s buckets
/// (`None`: nothing to read, the answer is empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueryWindow {
    /// StartTime after CloudWatch's rounding (inclusive).
    pub start_ms: i64,
    /// EndTime (exclusive).
    pub end_ms: i64,
    pub period_s: i64,
    pub tier: Option<Tier>,
}

impl QueryWindow {
    pub fn period_ms(&self) -> i64 {
        self.period_s * 1000
    }

    /// How many period windows the query spans.
    pub fn datapoint_count(&self) -> u64 {
        let span = (self.end_ms - self.start_ms).max(0);
        let p = self.period_ms().max(1);
        u64::try_from((span + p - 1) / p).unwrap_or(0)
    }

    /// The start of the window holding `ts_ms`, if it is inside the query.
    pub fn window_of(&self, ts_ms: i64) -> Option<i64> {
        if ts_ms < self.start_ms || ts_ms >= self.end_ms {
            return None;
        }
        let p = self.period_ms();
        Some(self.start_ms + (ts_ms - self.start_ms) / p * p)
    }
}

/// Whether `period_s` is a valid query period: 1, 5, 10, 20, 30 or a multiple of 60.
pub fn valid_period(period_s: i64) -> bool {
    matches!(period_s, 1 | 5 | 10 | 20 | 30) || (period_s > 0 && period_s % 60 == 0)
}

/// Checks a GetMetricStatistics / GetMetricData time range and period and rounds the start:
/// StartTime must precede EndTime, the period must be valid, and GetMetricStatistics may
/// not span more than 1,440 datapoints (`InvalidParameterCombination`). GetMetricData's
/// errors carry the `ValidationError` code.
pub fn plan_query(
    api: Api,
    start_ms: i64,
    end_ms: i64,
    period_s: i64,
    now_ms: i64,
) -> Result<QueryWindow, InputError> {
    let invalid = |m: String| match api {
        Api::GetMetricStatistics => InputError::value(m),
        Api::GetMetricData => InputError::validation(m),
    };
    if !valid_period(period_s) {
        return Err(invalid(format!(
            "The parameter Period must be 1, 5, 10, 20, 30, or a multiple of 60 (got {period_s})."
        )));
    }
    if start_ms >= end_ms {
        return Err(invalid(
            "The parameter StartTime must be less than the parameter EndTime.".into(),
        ));
    }
    let start = round_start_time(start_ms, period_s, now_ms);
    let window = QueryWindow {
        start_ms: start,
        end_ms,
        period_s,
        tier: answering_tier(period_s, start, now_ms),
    };
    if api == Api::GetMetricStatistics {
        let n = window.datapoint_count();
        if n > MAX_STATISTICS_DATAPOINTS {
            return Err(InputError::combination(format!(
                "You have requested up to {} datapoints, which exceeds the limit of {}. You may reduce the datapoints requested by increasing Period, or decreasing the time range.",
                grouped(n),
                grouped(MAX_STATISTICS_DATAPOINTS)
            )));
        }
    }
    Ok(window)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    // 2026-11-26T14:20:00Z
    const NOW: i64 = 1_795_702_800_000;

    #[test]
    fn bucket_start_floors_to_the_period() {
        assert_eq!(bucket_start(NOW + 59_999, 60), NOW);
        assert_eq!(bucket_start(NOW + 60_000, 60), NOW + 60_000);
        assert_eq!(bucket_start(-1, 60), -60_000);
        assert_eq!(MINUTE.bucket_start(NOW + 12_345), NOW);
        assert_eq!(HOUR.bucket_start(NOW), NOW - 20 * 60_000);
    }

    #[test]
    fn tier_expiry_follows_retention() {
        assert!(!SECOND.expired(NOW - 3 * HOUR_MS, NOW));
        assert!(SECOND.expired(NOW - 3 * HOUR_MS - 1000, NOW));
        assert!(!MINUTE.expired(NOW - 15 * DAY_MS, NOW));
        assert!(MINUTE.expired(NOW - 15 * DAY_MS - 60_000, NOW));
        assert!(FIVE_MINUTES.expired(NOW - 64 * DAY_MS, NOW));
        assert!(!HOUR.expired(NOW - 455 * DAY_MS, NOW));
        assert!(HOUR.expired(NOW - 456 * DAY_MS, NOW));
        assert_eq!(SECOND.coarser(), Some(MINUTE));
        assert_eq!(HOUR.coarser(), None);
        assert_eq!(
            tiers_for(Resolution::Standard),
            &[MINUTE, FIVE_MINUTES, HOUR]
        );
        assert_eq!(tiers_for(Resolution::High).len(), 4);
    }

    #[test]
    fn round_start_time_follows_aws_rules() {
        // 12:32:34 style offsets: 2 min 34 s past a 5-minute boundary.
        let recent = NOW - DAY_MS + 2 * 60_000 + 34_000;
        assert_eq!(round_start_time(recent, 60, NOW), NOW - DAY_MS + 2 * 60_000);
        let older = NOW - 20 * DAY_MS + 2 * 60_000 + 34_000;
        assert_eq!(round_start_time(older, 300, NOW), NOW - 20 * DAY_MS);
        let oldest = NOW - 70 * DAY_MS + 2 * 60_000 + 34_000;
        assert_eq!(
            round_start_time(oldest, 3600, NOW),
            NOW - 70 * DAY_MS - 20 * 60_000
        );
        // High-resolution periods: "01:05:23 for a 10-second period → 01:05:20".
        assert_eq!(
            round_start_time(NOW + 5 * 60_000 + 23_000, 10, NOW),
            NOW + 5 * 60_000 + 20_000
        );
        assert_eq!(round_start_time(NOW + 17_000, 5, NOW), NOW + 15_000);
    }

    #[test]
    fn answering_tier_picks_finest_that_still_holds_start() {
        assert_eq!(answering_tier(60, NOW - HOUR_MS, NOW), Some(MINUTE));
        assert_eq!(answering_tier(300, NOW - HOUR_MS, NOW), Some(MINUTE));
        assert_eq!(answering_tier(10, NOW - HOUR_MS, NOW), Some(SECOND));
        assert_eq!(answering_tier(10, NOW - 4 * HOUR_MS, NOW), None);
        assert_eq!(answering_tier(60, NOW - 20 * DAY_MS, NOW), None);
        assert_eq!(
            answering_tier(300, NOW - 20 * DAY_MS, NOW),
            Some(FIVE_MINUTES)
        );
        assert_eq!(
            answering_tier(600, NOW - 20 * DAY_MS, NOW),
            Some(FIVE_MINUTES)
        );
        assert_eq!(answering_tier(300, NOW - 100 * DAY_MS, NOW), None);
        assert_eq!(answering_tier(7200, NOW - 100 * DAY_MS, NOW), Some(HOUR));
        assert_eq!(answering_tier(3600, NOW - 500 * DAY_MS, NOW), None);
    }

    #[test]
    fn plan_query_checks_period_and_range() {
        let w = plan_query(
            Api::GetMetricStatistics,
            NOW - HOUR_MS + 34_000,
            NOW,
            60,
            NOW,
        )
        .unwrap();
        assert_eq!(w.start_ms, NOW - HOUR_MS);
        assert_eq!(w.datapoint_count(), 60);
        assert_eq!(w.tier, Some(MINUTE));
        for p in [1, 5, 10, 20, 30, 60, 120, 300, 86_400] {
            assert!(
                plan_query(Api::GetMetricData, NOW - HOUR_MS, NOW, p, NOW).is_ok(),
                "{p}"
            );
        }
        for p in [0, -60, 2, 45, 90] {
            let e = plan_query(Api::GetMetricStatistics, NOW - HOUR_MS, NOW, p, NOW).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidParameterValue, "{p}");
            let e = plan_query(Api::GetMetricData, NOW - HOUR_MS, NOW, p, NOW).unwrap_err();
            assert_eq!(e.code, ErrorCode::ValidationError, "{p}");
        }
        let e = plan_query(Api::GetMetricStatistics, NOW, NOW, 60, NOW).unwrap_err();
        assert_eq!(
            e.message,
            "The parameter StartTime must be less than the parameter EndTime."
        );
    }

    #[test]
    fn plan_query_limits_statistics_to_1440_datapoints() {
        assert!(plan_query(Api::GetMetricStatistics, NOW - DAY_MS, NOW, 60, NOW).is_ok());
        let e = plan_query(
            Api::GetMetricStatistics,
            NOW - 2 * DAY_MS - 60_000,
            NOW,
            60,
            NOW,
        )
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidParameterCombination);
        assert_eq!(
            e.message,
            "You have requested up to 2,881 datapoints, which exceeds the limit of 1,440. You may reduce the datapoints requested by increasing Period, or decreasing the time range."
        );
        // GetMetricData has no such limit (MaxDatapoints pages instead).
        assert!(plan_query(Api::GetMetricData, NOW - 2 * DAY_MS, NOW, 60, NOW).is_ok());
    }

    #[test]
    fn query_window_maps_timestamps_to_period_windows() {
        let w = QueryWindow {
            start_ms: NOW,
            end_ms: NOW + 150_000,
            period_s: 60,
            tier: Some(MINUTE),
        };
        assert_eq!(w.datapoint_count(), 3);
        assert_eq!(w.window_of(NOW), Some(NOW));
        assert_eq!(w.window_of(NOW + 119_999), Some(NOW + 60_000));
        assert_eq!(w.window_of(NOW + 149_999), Some(NOW + 120_000));
        assert_eq!(w.window_of(NOW + 150_000), None);
        assert_eq!(w.window_of(NOW - 1), None);
    }
}
