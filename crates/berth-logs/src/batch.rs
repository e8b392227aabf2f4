//! The rules a `PutLogEvents` batch must satisfy, as one pure decision: which events are
//! stored, which are dropped (and reported in `rejectedLogEventsInfo`), or why the whole
//! request fails (spec D.2; the `PutLogEvents` documentation in the model).
//!
//! Called by the Logs API handler with the request's events, the server's `now` and the log
//! group's retention; the handler stores `events[accepted]`. Pure: no clock, no I/O.
//!
//! Rules, in the order they are checked:
//! 1. 1–10,000 events, each message non-empty (the model's bounds; `berth-aws` checks them
//!    too, they are here so the function is total).
//! 2. The batch is at most 1,048,576 bytes, counting each message's UTF-8 bytes plus 26.
//! 3. Timestamps never decrease ("chronological order").
//! 4. Events more than 2 h after `now` are dropped (`tooNewLogEventStartIndex`, inclusive);
//!    events older than 14 days (`tooOldLogEventEndIndex`) or than the group's retention
//!    (`expiredLogEventEndIndex`) are dropped; both end indexes are exclusive, so the dropped
//!    old events are `0..end`.
//! 5. The events that remain span at most 24 h.
//!
//! The 2-h, 14-day and retention bounds are strict ("more than", "older than"): an event
//! exactly 2 h ahead, or exactly 14 days old, is kept.

use std::ops::Range;
use thiserror::Error;

/// The largest batch, in bytes (messages' UTF-8 bytes plus [`EVENT_OVERHEAD_BYTES`] each).
pub const MAX_BATCH_BYTES: usize = 1_048_576;
/// What each event adds to the batch size besides its message.
pub const EVENT_OVERHEAD_BYTES: usize = 26;
/// The most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 10_000;
/// Events further ahead of `now` than this are dropped as too new.
pub const MAX_AHEAD_MS: i64 = 2 * 3_600_000;
/// Events older than this are dropped as too old.
pub const MAX_AGE_MS: i64 = 14 * 86_400_000;
/// The widest span of the kept events' timestamps.
pub const MAX_SPAN_MS: i64 = 24 * 3_600_000;

const DAY_MS: i64 = 86_400_000;

/// Why a whole `PutLogEvents` request fails, as `InvalidParameterException` with AWS's message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BatchError {
    #[error(
        "1 validation error detected: Value '[]' at 'logEvents' failed to satisfy constraint: Member must have length greater than or equal to 1"
    )]
    Empty,
    #[error(
        "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to 10000"
    )]
    TooMany { count: usize },
    /// `index` is 0-based; the message names the 1-based list position as Smithy does.
    #[error(
        "1 validation error detected: Value '' at 'logEvents.{}.member.message' failed to satisfy constraint: Member must have length greater than or equal to 1", index + 1
    )]
    EmptyMessage { index: usize },
    #[error("Upload too large: {bytes} bytes exceeds limit of 1048576")]
    TooLarge { bytes: usize },
    #[error("Log events in a single PutLogEvents request must be in chronological order.")]
    NotChronological { index: usize },
    #[error(
        "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."
    )]
    SpanTooLong { first_ms: i64, last_ms: i64 },
}

/// `rejectedLogEventsInfo`: which events were dropped. Each field is `None` when nothing was
/// dropped for that reason (and is then left out of the response).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RejectedInfo {
    /// `tooNewLogEventStartIndex`: events from here on are more than 2 h ahead (inclusive).
    pub too_new_start: Option<usize>,
    /// `tooOldLogEventEndIndex`: events before this index are older than 14 days (exclusive).
    pub too_old_end: Option<usize>,
    /// `expiredLogEventEndIndex`: events before this index are older than the retention
    /// period (exclusive).
    pub expired_end: Option<usize>,
}

impl RejectedInfo {
    /// Whether nothing was dropped (the response then has no `rejectedLogEventsInfo`).
    pub fn is_empty(&self) -> bool {
        *self == RejectedInfo::default()
    }
}

/// What to do with a valid batch: store `events[accepted]`, report `rejected`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub accepted: Range<usize>,
    pub rejected: RejectedInfo,
}

/// The size a batch counts against [`MAX_BATCH_BYTES`].
pub fn batch_bytes<M: AsRef<str>>(events: &[(i64, M)]) -> usize {
    events
        .iter()
        .map(|(_, m)| m.as_ref().len() + EVENT_OVERHEAD_BYTES)
        .sum()
}

/// Decides a `PutLogEvents` batch of `(timestamp_ms, message)` events received at `now_ms` for
/// a group whose retention is `retention_days` (`None`: never expire).
pub fn check_batch<M: AsRef<str>>(
    events: &[(i64, M)],
    now_ms: i64,
    retention_days: Option<u32>,
) -> Result<BatchOutcome, BatchError> {
    if events.is_empty() {
        return Err(BatchError::Empty);
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(BatchError::TooMany {
            count: events.len(),
        });
    }
    if let Some(index) = events.iter().position(|(_, m)| m.as_ref().is_empty()) {
        return Err(BatchError::EmptyMessage { index });
    }
    let bytes = batch_bytes(events);
    if bytes > MAX_BATCH_BYTES {
        return Err(BatchError::TooLarge { bytes });
    }
    if let Some(i) = events.windows(2).position(|w| w[1].0 < w[0].0) {
        return Err(BatchError::NotChronological { index: i + 1 });
    }

    // Sorted, so each rejected set is a prefix or a suffix.
    let too_old_end = events.partition_point(|(t, _)| *t < now_ms.saturating_sub(MAX_AGE_MS));
    let expired_end = retention_days.map_or(0, |days| {
        let cutoff = now_ms.saturating_sub(i64::from(days).saturating_mul(DAY_MS));
        events.partition_point(|(t, _)| *t < cutoff)
    });
    let too_new_start = events.partition_point(|(t, _)| *t <= now_ms.saturating_add(MAX_AHEAD_MS));

    let start = too_old_end.max(expired_end);
    let end = too_new_start.max(start);
    if start < end {
        let (first_ms, last_ms) = (events[start].0, events[end - 1].0);
        if last_ms.saturating_sub(first_ms) > MAX_SPAN_MS {
            return Err(BatchError::SpanTooLong { first_ms, last_ms });
        }
    }
    Ok(BatchOutcome {
        accepted: start..end,
        rejected: RejectedInfo {
            too_new_start: (too_new_start < events.len()).then_some(too_new_start),
            too_old_end: (too_old_end > 0).then_some(too_old_end),
            expired_end: (expired_end > 0).then_some(expired_end),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_700_000_000_000;
    const H: i64 = 3_600_000;

    fn ev(ts: &[i64]) -> Vec<(i64, String)> {
        ts.iter().map(|t| (*t, "m".to_string())).collect()
    }

    #[test]
    fn batch_accepts_everything_in_window() {
        let out = check_batch(&ev(&[NOW - H, NOW, NOW + H]), NOW, None).unwrap();
        assert_eq!(out.accepted, 0..3);
        assert!(out.rejected.is_empty());
    }

    #[test]
    fn batch_counts_26_bytes_per_event_at_the_exact_boundary() {
        // Two events: (m1 + 26) + (m2 + 26) == 1,048,576 exactly.
        let m1 = "é".repeat(1000); // 2,000 UTF-8 bytes
        let m2 = "x".repeat(MAX_BATCH_BYTES - 2 * EVENT_OVERHEAD_BYTES - 2000);
        let ok = vec![(NOW, m1.clone()), (NOW, m2.clone())];
        assert_eq!(batch_bytes(&ok), MAX_BATCH_BYTES);
        assert!(check_batch(&ok, NOW, None).is_ok());
        let over = vec![(NOW, m1), (NOW, m2 + "x")];
        let e = check_batch(&over, NOW, None).unwrap_err();
        assert_eq!(
            e,
            BatchError::TooLarge {
                bytes: MAX_BATCH_BYTES + 1
            }
        );
        assert_eq!(
            e.to_string(),
            "Upload too large: 1048577 bytes exceeds limit of 1048576"
        );
    }

    #[test]
    fn batch_refuses_empty_too_many_and_empty_messages() {
        let none: Vec<(i64, String)> = vec![];
        assert_eq!(check_batch(&none, NOW, None), Err(BatchError::Empty));
        let many = ev(&vec![NOW; MAX_BATCH_EVENTS + 1]);
        assert_eq!(
            check_batch(&many, NOW, None),
            Err(BatchError::TooMany { count: 10_001 })
        );
        assert!(check_batch(&ev(&vec![NOW; MAX_BATCH_EVENTS]), NOW, None).is_ok());
        let e = check_batch(&[(NOW, "a"), (NOW, "")], NOW, None).unwrap_err();
        assert_eq!(e, BatchError::EmptyMessage { index: 1 });
        assert!(e.to_string().contains("'logEvents.2.member.message'"));
    }

    #[test]
    fn batch_refuses_out_of_order_with_aws_message() {
        let e = check_batch(&ev(&[NOW, NOW - 1]), NOW, None).unwrap_err();
        assert_eq!(e, BatchError::NotChronological { index: 1 });
        assert_eq!(
            e.to_string(),
            "Log events in a single PutLogEvents request must be in chronological order."
        );
        // Equal timestamps are in order.
        assert!(check_batch(&ev(&[NOW, NOW, NOW]), NOW, None).is_ok());
    }

    #[test]
    fn batch_span_counts_only_kept_events() {
        let exactly = ev(&[NOW - 22 * H, NOW + 2 * H]);
        assert!(check_batch(&exactly, NOW, None).is_ok());
        let over = ev(&[NOW - 22 * H - 1, NOW + 2 * H]);
        let e = check_batch(&over, NOW, None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."
        );
        // A dropped too-old event does not widen the span.
        let dropped = ev(&[NOW - 15 * 24 * H, NOW - H, NOW]);
        let out = check_batch(&dropped, NOW, None).unwrap();
        assert_eq!(out.accepted, 1..3);
    }

    #[test]
    fn batch_reports_too_new_from_the_first_one_more_than_2h_ahead() {
        let out = check_batch(
            &ev(&[NOW, NOW + 2 * H, NOW + 2 * H + 1, NOW + 3 * H]),
            NOW,
            None,
        )
        .unwrap();
        assert_eq!(out.accepted, 0..2);
        assert_eq!(
            out.rejected,
            RejectedInfo {
                too_new_start: Some(2),
                ..Default::default()
            }
        );
    }

    #[test]
    fn batch_reports_too_old_end_exclusive() {
        let d = 24 * H;
        let old = NOW - 14 * d;
        let out = check_batch(&ev(&[old - 1, old, old + H]), NOW, None).unwrap();
        assert_eq!(out.accepted, 1..3);
        assert_eq!(out.rejected.too_old_end, Some(1));
        assert_eq!(out.rejected.expired_end, None);
    }

    #[test]
    fn batch_reports_expired_by_retention() {
        let d = 24 * H;
        let events = ev(&[NOW - 2 * d, NOW - d - 1, NOW - d, NOW]);
        let out = check_batch(&events, NOW, Some(1)).unwrap();
        assert_eq!(out.accepted, 2..4);
        assert_eq!(
            out.rejected,
            RejectedInfo {
                expired_end: Some(2),
                ..Default::default()
            }
        );
        // Without retention the same batch is all kept, and then spans too long.
        assert!(matches!(
            check_batch(&events, NOW, None),
            Err(BatchError::SpanTooLong { .. })
        ));
    }

    #[test]
    fn batch_can_drop_everything() {
        let out = check_batch(&ev(&[NOW + 3 * H]), NOW, None).unwrap();
        assert!(out.accepted.is_empty());
        assert_eq!(out.rejected.too_new_start, Some(0));
        let d = 24 * H;
        let out = check_batch(&ev(&[NOW - 20 * d, NOW + 3 * H]), NOW, Some(7)).unwrap();
        assert!(out.accepted.is_empty());
        assert_eq!(
            out.rejected,
            RejectedInfo {
                too_new_start: Some(1),
                too_old_end: Some(1),
                expired_end: Some(1)
            }
        );
    }

    proptest! {
        #[test]
        fn batch_kept_events_are_exactly_those_in_the_window(
            mut offsets in proptest::collection::vec(-20i64 * 86_400_000..4 * 3_600_000, 1..50),
            retention in proptest::option::of(proptest::sample::select(&crate::RETENTION_DAYS[..6]))
        ) {
            offsets.sort();
            let events: Vec<(i64, &str)> = offsets.iter().map(|o| (NOW + o, "x")).collect();
            let lo = NOW - MAX_AGE_MS.min(retention.map_or(i64::MAX, |d| i64::from(d) * DAY_MS));
            let in_window = |t: i64| t >= lo && t <= NOW + MAX_AHEAD_MS;
            match check_batch(&events, NOW, retention) {
                Ok(out) => {
                    for (i, (t, _)) in events.iter().enumerate() {
                        prop_assert_eq!(out.accepted.contains(&i), in_window(*t));
                    }
                }
                Err(BatchError::SpanTooLong { first_ms, last_ms }) => {
                    prop_assert!(last_ms - first_ms > MAX_SPAN_MS);
                    prop_assert!(in_window(first_ms) && in_window(last_ms));
                }
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
