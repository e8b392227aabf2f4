//! Turning a container's log messages into PutLogEvents batches, without I/O or a clock of its
//! own (the caller passes the time), so its arithmetic is unit-tested.
//!
//! Messages become lines (parts of a line Docker cut at 16 KiB are put back together; the
//! `\n` and a `\r` before it are dropped), lines become events (`awslogs-datetime-format` /
//! `awslogs-multiline-pattern` joining, from `berth-logs`; empty lines make no event, as
//! Docker's driver skips them), events become batches of at most 10,000 events, 1,048,576
//! bytes (messages + 26 each) and 23 hours, cut when one is full or its first event has
//! waited [`BATCH_WAIT_MS`]. An event is dated by its first line's arrival, and never before
//! the event shipped before it (PutLogEvents wants batches in time order; stdout and stderr
//! can reach the log a moment out of order).
//!
//! Every batch carries how many messages it consumes, per second of their arrival: the
//! messages of its events, plus any dropped or empty ones before them — a batch ends right
//! after the last message of its last event, so the checkpoint after it is a clean place to
//! resume (see `checkpoint.rs`).

use berth_node_api::awslogs::{MAX_EVENT_BYTES, Multiline};
use std::collections::VecDeque;

/// A batch's first event is shipped at most this long after it was complete.
pub const BATCH_WAIT_MS: i64 = 1_000;
/// PutLogEvents' limits.
pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_BATCH_BYTES: usize = 1_048_576;
const EVENT_OVERHEAD: usize = 26;
/// A batch spans at most this much time (PutLogEvents allows 24 h).
const MAX_SPAN_MS: i64 = 23 * 3_600_000;

/// One batch to ship.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Batch {
    pub events: Vec<(i64, String)>,
    /// Messages consumed, per second of arrival, in order of arrival (run-length).
    pub seconds: Vec<(i64, u64)>,
    /// The batch's PutLogEvents size.
    pub bytes: usize,
}

impl Batch {
    #[cfg(test)]
    pub fn messages(&self) -> u64 {
        self.seconds.iter().map(|(_, n)| n).sum()
    }
}

/// Messages in, batches out.
pub struct Batcher {
    multiline: Multiline,
    /// Events are never dated before this.
    last_ts: i64,
    /// The line being put back together: its first message's position and time, its bytes.
    partial: Option<(u64, i64, Vec<u8>)>,
    /// Messages taken so far.
    pos: u64,
    /// The position after the last complete line.
    line_end: u64,
    /// Where the last batch ended.
    cut_pos: u64,
    /// Seconds of the messages after `cut_pos` (run-length, in order).
    pending_seconds: VecDeque<(i64, u64)>,
    /// Complete events not in a batch yet: time, message, the position after their last line.
    events: Vec<(i64, String, u64)>,
    event_bytes: usize,
    /// When the first of `events` was complete.
    first_at: Option<i64>,
    /// The position consumed without an event pending (empty or dropped lines).
    idle_end: u64,
    /// Ship everything up to this position as one batch (a batch sent again after a restart).
    stop_at: Option<u64>,
}

impl Batcher {
    pub fn new(multiline: Multiline, last_ts: i64) -> Batcher {
        Batcher {
            multiline,
            last_ts,
            partial: None,
            pos: 0,
            line_end: 0,
            cut_pos: 0,
            pending_seconds: VecDeque::new(),
            events: Vec::new(),
            event_bytes: 0,
            first_at: None,
            idle_end: 0,
            stop_at: None,
        }
    }

    /// The first batch is to end exactly after `messages` messages, whatever its size.
    pub fn rebuild(mut self, messages: u64) -> Batcher {
        self.stop_at = Some(messages);
        self
    }

    /// The bytes of events waiting for a batch.
    pub fn waiting_bytes(&self) -> usize {
        self.event_bytes
    }

    /// Takes one message (`drop`: counted, not shipped — non-blocking mode's overflow).
    pub fn push(&mut self, time_ns: i64, text: &[u8], drop: bool, now_ms: i64) -> Vec<Batch> {
        let ms = time_ns.div_euclid(1_000_000);
        let second = time_ns.div_euclid(1_000_000_000);
        match self.pending_seconds.back_mut() {
            Some((s, n)) if *s == second => *n += 1,
            _ => self.pending_seconds.push_back((second, 1)),
        }
        let at = self.pos;
        self.pos += 1;
        let (start, t0, mut bytes) = self.partial.take().unwrap_or((at, ms, Vec::new()));
        bytes.extend_from_slice(text);
        let complete = bytes.last() == Some(&b'\n') || bytes.len() >= MAX_EVENT_BYTES;
        if !complete {
            self.partial = Some((start, t0, bytes));
            return self.stop_check(now_ms);
        }
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
            if bytes.last() == Some(&b'\r') {
                bytes.pop();
            }
        }
        let line = String::from_utf8_lossy(&bytes).into_owned();
        let mut out = Vec::new();
        if !drop {
            let events = self.multiline.push(&line, t0);
            let end = if self.multiline.pending_since_ms().is_some() {
                start
            } else {
                self.pos
            };
            for e in events {
                out.extend(self.add(e.timestamp_ms, e.message, end, now_ms));
            }
        }
        self.line_end = self.pos;
        if self.multiline.pending_since_ms().is_none() {
            self.idle_end = self.pos;
        }
        out.extend(self.stop_check(now_ms));
        out
    }

    /// On the caller's timer: a multi-line event that waited its flush interval is complete,
    /// and a batch whose first event waited [`BATCH_WAIT_MS`] is cut (or, with nothing to
    /// ship, the messages consumed so far form an empty batch).
    pub fn tick(&mut self, now_ms: i64) -> Vec<Batch> {
        if self.stop_at.is_some() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for e in self.multiline.flush_due(now_ms) {
            out.extend(self.add(e.timestamp_ms, e.message, self.line_end, now_ms));
        }
        if self.multiline.pending_since_ms().is_none() && self.partial.is_none() {
            self.idle_end = self.line_end;
        }
        let due = self
            .first_at
            .is_some_and(|t| now_ms.saturating_sub(t) >= BATCH_WAIT_MS);
        if due {
            out.push(self.cut());
        } else if self.events.is_empty() && self.idle_end > self.cut_pos {
            out.push(self.cut_to(self.idle_end));
        }
        out
    }

    /// The stream ended: everything pending becomes the last batches.
    pub fn finish(&mut self, now_ms: i64) -> Vec<Batch> {
        let mut out = Vec::new();
        if let Some((start, t0, bytes)) = self.partial.take() {
            let line = String::from_utf8_lossy(&bytes).into_owned();
            for e in self.multiline.push(&line, t0) {
                let end = if self.multiline.pending_since_ms().is_some() {
                    start
                } else {
                    self.pos
                };
                out.extend(self.add(e.timestamp_ms, e.message, end, now_ms));
            }
        }
        for e in self.multiline.flush() {
            out.extend(self.add(e.timestamp_ms, e.message, self.pos, now_ms));
        }
        self.stop_at = None;
        if !self.events.is_empty() || self.pos > self.cut_pos {
            out.push(self.cut_to(self.pos));
        }
        out
    }

    /// A rebuilt batch ends once its last message is in.
    fn stop_check(&mut self, now_ms: i64) -> Vec<Batch> {
        if self.stop_at != Some(self.pos) || self.partial.is_some() {
            return Vec::new();
        }
        self.stop_at = None;
        let mut out = Vec::new();
        for e in self.multiline.flush() {
            out.extend(self.add(e.timestamp_ms, e.message, self.pos, now_ms));
        }
        let mut batch = self.cut_to(self.pos);
        // Lines dropped the first time can make it larger than a batch may be.
        let mut bytes = 0;
        let keep = batch
            .events
            .iter()
            .take(MAX_BATCH_EVENTS)
            .take_while(|(_, m)| {
                bytes += m.len() + EVENT_OVERHEAD;
                bytes <= MAX_BATCH_BYTES
            })
            .count();
        batch.events.truncate(keep);
        batch.bytes = batch
            .events
            .iter()
            .map(|(_, m)| m.len() + EVENT_OVERHEAD)
            .sum();
        out.push(batch);
        out
    }

    /// Adds a complete event ending at `end`; the batch it fills, if it does.
    fn add(&mut self, ts: i64, message: String, end: u64, now_ms: i64) -> Option<Batch> {
        if message.is_empty() {
            return None;
        }
        let ts = ts.max(self.last_ts);
        self.last_ts = ts;
        let size = message.len() + EVENT_OVERHEAD;
        let full = self.stop_at.is_none()
            && (self.events.len() == MAX_BATCH_EVENTS
                || self.event_bytes + size > MAX_BATCH_BYTES
                || self
                    .events
                    .first()
                    .is_some_and(|(t, _, _)| ts - t > MAX_SPAN_MS));
        // A batch ends after a whole line: the pieces of a line cut for size stay together,
        // unless they alone fill a batch — then it consumes nothing yet (after a crash the
        // line is read again, and those pieces come twice rather than not at all).
        let cut = full.then(|| {
            let whole = self.events.partition_point(|e| e.2 < end);
            match whole {
                0 => self.cut_n(self.events.len(), self.cut_pos),
                k => self.cut_n(k, self.events[k - 1].2),
            }
        });
        self.event_bytes += size;
        self.events.push((ts, message, end));
        self.first_at.get_or_insert(now_ms);
        cut
    }

    /// Every complete event as a batch, ending after the last one's last message.
    fn cut(&mut self) -> Batch {
        let end = self.events.last().map_or(self.cut_pos, |e| e.2);
        self.cut_to(end)
    }

    fn cut_to(&mut self, end: u64) -> Batch {
        self.cut_n(self.events.len(), end)
    }

    /// The first `k` events as a batch consuming the messages up to `end`.
    fn cut_n(&mut self, k: usize, end: u64) -> Batch {
        let events: Vec<(i64, String)> = self.events.drain(..k).map(|(t, m, _)| (t, m)).collect();
        let bytes = events.iter().map(|(_, m)| m.len() + EVENT_OVERHEAD).sum();
        self.event_bytes -= bytes;
        self.first_at = if self.events.is_empty() {
            None
        } else {
            self.first_at
        };
        let mut left = end.saturating_sub(self.cut_pos);
        let mut seconds = Vec::new();
        while left > 0 {
            let Some((s, n)) = self.pending_seconds.front_mut() else {
                break;
            };
            let take = (*n).min(left);
            seconds.push((*s, take));
            *n -= take;
            left -= take;
            if *n == 0 {
                self.pending_seconds.pop_front();
            }
        }
        self.cut_pos = end.max(self.cut_pos);
        Batch {
            events,
            seconds,
            bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn lines(b: &[Batch]) -> Vec<String> {
        b.iter()
            .flat_map(|b| b.events.iter().map(|(_, m)| m.clone()))
            .collect()
    }

    #[test]
    fn awslogs_batcher_ships_each_line_and_counts_every_message() {
        let mut b = Batcher::new(Multiline::new(None), 0);
        let mut out = Vec::new();
        out.extend(b.push(10 * S, b"one\n", false, 0));
        out.extend(b.push(10 * S + 5, b"\n", false, 0));
        out.extend(b.push(11 * S, b"two\r\n", false, 0));
        assert!(out.is_empty());
        out.extend(b.tick(999));
        assert!(out.is_empty(), "not due yet");
        out.extend(b.tick(1_000));
        assert_eq!(lines(&out), vec!["one", "two"]);
        assert_eq!(out[0].seconds, vec![(10, 2), (11, 1)]);
        assert_eq!(out[0].bytes, 3 + 26 + 3 + 26);
        assert_eq!(out[0].events[0].0, 10_000);
        // An empty line alone makes an empty batch that still consumes it.
        let e = b.push(12 * S, b"\n", false, 2_000);
        assert!(e.is_empty());
        let e = b.tick(2_000);
        assert_eq!(e.len(), 1);
        assert!(e[0].events.is_empty());
        assert_eq!(e[0].messages(), 1);
    }

    #[test]
    fn awslogs_batcher_rejoins_partial_messages_and_keeps_time_order() {
        let mut b = Batcher::new(Multiline::new(None), 0);
        b.push(5 * S, b"abc", false, 0);
        b.push(6 * S, b"def\n", false, 0);
        // A stderr line logged a moment before the stdout one before it.
        b.push(4 * S, b"late\n", false, 0);
        let out = b.finish(0);
        assert_eq!(lines(&out), vec!["abcdef", "late"]);
        assert_eq!(out[0].events[0].0, 5_000);
        assert_eq!(
            out[0].events[1].0, 5_000,
            "never before the event before it"
        );
        assert_eq!(out[0].messages(), 3);
    }

    #[test]
    fn awslogs_batcher_ends_batches_after_complete_multiline_events() {
        let ml = Multiline::from_options(None, Some(r"^\d")).unwrap();
        let mut b = Batcher::new(ml, 0);
        let mut out = Vec::new();
        for (i, l) in ["1 Exception", "\tat a", "\tat b", "2 next"]
            .iter()
            .enumerate()
        {
            out.extend(b.push(i as i64 * S, format!("{l}\n").as_bytes(), false, 0));
        }
        out.extend(b.tick(5_000));
        // The first event is complete (the 4th line started another); the batch holds it and
        // consumes its three messages only.
        assert_eq!(lines(&out), vec!["1 Exception\n\tat a\n\tat b\n"]);
        assert_eq!(out[0].messages(), 3);
        let rest = b.finish(6_000);
        assert_eq!(lines(&rest), vec!["2 next\n"]);
        assert_eq!(rest[0].messages(), 1);
    }

    #[test]
    fn awslogs_batcher_cuts_full_batches() {
        let mut b = Batcher::new(Multiline::new(None), 0);
        let mut out = Vec::new();
        for i in 0..10_001 {
            out.extend(b.push(S, format!("{i}\n").as_bytes(), false, 0));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].events.len(), 10_000);
        assert_eq!(out[0].messages(), 10_000);
        // Two 600,000-byte lines pass 1 MiB: the first alone is a batch.
        let big = "x".repeat(600_000);
        let mut b = Batcher::new(Multiline::new(None), 0);
        b.push(S, format!("{big}\n").as_bytes(), false, 0);
        let out = b.push(S, format!("{big}\n").as_bytes(), false, 0);
        assert_eq!(out.len(), 1, "two would pass 1 MiB");
        assert_eq!(out[0].messages(), 1);
        assert_eq!(
            out[0].events.len(),
            3,
            "its pieces of at most 262,118 bytes"
        );
        let rest = b.finish(0);
        assert_eq!(rest[0].messages(), 1);
        assert_eq!(rest[0].events.len(), 3);
        // One line larger than a batch: its first pieces go without consuming it.
        let huge = "y".repeat(1_200_000);
        let mut b = Batcher::new(Multiline::new(None), 0);
        let out = b.push(S, format!("{huge}\n").as_bytes(), false, 0);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].messages(), 0);
        let rest = b.finish(0);
        assert_eq!(rest[0].messages(), 1);
        let total: usize = out
            .iter()
            .chain(&rest)
            .flat_map(|b| &b.events)
            .map(|e| e.1.len())
            .sum();
        assert_eq!(total, 1_200_000);
    }

    #[test]
    fn awslogs_batcher_rebuilds_exactly_the_messages_asked() {
        let ml = Multiline::from_options(None, Some("^S")).unwrap();
        let mut b = Batcher::new(ml, 0).rebuild(3);
        let mut out = Vec::new();
        for l in ["S1", "a", "S2", "b"] {
            out.extend(b.push(S, format!("{l}\n").as_bytes(), false, 0));
        }
        assert_eq!(out.len(), 1);
        assert_eq!(lines(&out), vec!["S1\na\n", "S2\n"]);
        assert_eq!(out[0].messages(), 3);
        assert_eq!(lines(&b.finish(0)), vec!["b\n"]);
    }

    #[test]
    fn awslogs_batcher_counts_dropped_lines() {
        let mut b = Batcher::new(Multiline::new(None), 0);
        b.push(S, b"kept\n", false, 0);
        b.push(S, b"dropped\n", true, 0);
        let out = b.finish(0);
        assert_eq!(lines(&out), vec!["kept"]);
        assert_eq!(out[0].messages(), 2);
    }
}
