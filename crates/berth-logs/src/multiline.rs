//! Joining container output lines into log events as Docker's `awslogs` driver does with
//! `awslogs-datetime-format` and `awslogs-multiline-pattern` (moby
//! `daemon/logger/awslogs/cloudwatchlogs.go`, and the driver's documentation).
//!
//! Called by the agent's `awslogs` shipping, one [`Multiline`] per container stream. Pure: the
//! caller passes each line's time and, on its timer, `now`; no clock, no I/O.
//!
//! What Docker does, and this module does too:
//! * `awslogs-datetime-format` is a strftime-like format turned into a regular expression
//!   (each `%X` replaced from Docker's table, everything else kept as regex text, so `\[`
//!   must be written escaped, as Docker's docs show); it wins over
//!   `awslogs-multiline-pattern`. Directives outside Docker's table become nothing, as in
//!   Docker (`%e`, `%l` and friends are not in it).
//! * The pattern is searched anywhere in the line (Go's `Regexp.Match`), not anchored at its
//!   start: write `^` to anchor it.
//! * A line that matches starts a new event; others are appended. Every line appended to a
//!   multiline event gets a `\n` after it (so events end with `\n`), unless the line alone
//!   fills an event.
//! * An event never exceeds 262,118 bytes (256 KiB less the 26-byte per-event overhead): a
//!   line that would overflow the pending event starts a new one, and longer text is split
//!   at character boundaries. (The overflow test counts the line's `\n`; Docker's does not,
//!   and then splits a lone `\n` off an event that ends exactly at the cap.)
//! * The pending event is sent when the next one starts, when [`Multiline::flush_due`] finds
//!   it at least the flush interval old (Docker checks every
//!   `awslogs-force-flush-interval-seconds`, default 5 s), or on [`Multiline::flush`].
//! * Without a pattern every line is its own event, without a `\n`.
//!
//! One difference: after a timer flush Docker keeps the flushed event's timestamp for the
//! lines that follow; here the next line's own time starts the next event.

use regex_lite::Regex;
use thiserror::Error;

/// Docker's `maximumBytesPerEvent`: 262,144 less the 26-byte per-event overhead.
pub const MAX_EVENT_BYTES: usize = 262_144 - 26;
/// Docker's default `awslogs-force-flush-interval-seconds`, in milliseconds.
pub const DEFAULT_FLUSH_INTERVAL_MS: i64 = 5_000;

/// Docker's strftime-to-regex table.
const DIRECTIVES: [(char, &str); 19] = [
    ('a', "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"),
    (
        'A',
        "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)",
    ),
    ('w', "[0-6]"),
    ('d', "(?:0[1-9]|[1,2][0-9]|3[0,1])"),
    ('b', "(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"),
    (
        'B',
        "(?:January|February|March|April|May|June|July|August|September|October|November|December)",
    ),
    ('m', "(?:0[1-9]|1[0-2])"),
    ('Y', r"\d{4}"),
    ('y', r"\d{2}"),
    ('H', "(?:[0,1][0-9]|2[0-3])"),
    ('I', "(?:0[0-9]|1[0-2])"),
    ('p', "[A,P]M"),
    ('M', "[0-5][0-9]"),
    ('S', "[0-5][0-9]"),
    ('f', r"\d{6}"),
    ('z', r"[+-]\d{4}"),
    ('Z', "[A-Z]{1,4}T"),
    ('j', "(?:0[0-9][1-9]|[1,2][0-9][0-9]|3[0-5][0-9]|36[0-6])"),
    ('L', r"\.\d{3}"),
];

/// An option the driver refuses (Docker: "awslogs could not parse multiline pattern key").
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MultilineError {
    #[error("awslogs could not parse multiline pattern key {pattern:?}: {detail}")]
    Pattern { pattern: String, detail: String },
}

/// The regular expression Docker makes of an `awslogs-datetime-format`.
pub fn datetime_format_regex(format: &str) -> String {
    let mut out = String::with_capacity(format.len() * 4);
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(d) => {
                if let Some((_, re)) = DIRECTIVES.iter().find(|(k, _)| *k == d) {
                    out.push_str(re);
                }
            }
            // A trailing lone `%` is kept (Docker's `%.` needs a character after it).
            None => out.push('%'),
        }
    }
    out
}

/// The start-of-event pattern from the driver's options: the datetime format when given,
/// else the multiline pattern; `None` when neither is set (one event per line).
pub fn start_pattern(
    datetime_format: Option<&str>,
    multiline_pattern: Option<&str>,
) -> Result<Option<Regex>, MultilineError> {
    let text = match (datetime_format, multiline_pattern) {
        (Some(f), _) if !f.is_empty() => datetime_format_regex(f),
        (_, Some(p)) if !p.is_empty() => p.to_string(),
        _ => return Ok(None),
    };
    Regex::new(&text)
        .map(Some)
        .map_err(|e| MultilineError::Pattern {
            pattern: text,
            detail: e.to_string(),
        })
}

/// One event to ship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub timestamp_ms: i64,
    pub message: String,
}

/// Joins one stream's lines into events.
#[derive(Debug, Clone)]
pub struct Multiline {
    start: Option<Regex>,
    max_event_bytes: usize,
    flush_interval_ms: i64,
    pending: String,
    pending_since_ms: i64,
}

impl Multiline {
    /// Joins with `start` (see [`start_pattern`]); `None` ships each line alone.
    pub fn new(start: Option<Regex>) -> Multiline {
        Multiline {
            start,
            max_event_bytes: MAX_EVENT_BYTES,
            flush_interval_ms: DEFAULT_FLUSH_INTERVAL_MS,
            pending: String::new(),
            pending_since_ms: 0,
        }
    }

    /// From the driver's `awslogs-datetime-format` and `awslogs-multiline-pattern` options.
    pub fn from_options(
        datetime_format: Option<&str>,
        multiline_pattern: Option<&str>,
    ) -> Result<Multiline, MultilineError> {
        Ok(Multiline::new(start_pattern(
            datetime_format,
            multiline_pattern,
        )?))
    }

    /// Caps events at `bytes` (at least 4, so any character fits).
    pub fn with_max_event_bytes(mut self, bytes: usize) -> Multiline {
        self.max_event_bytes = bytes.max(4);
        self
    }

    /// Sends a pending event once it is this old (`awslogs-force-flush-interval-seconds`).
    pub fn with_flush_interval_ms(mut self, ms: i64) -> Multiline {
        self.flush_interval_ms = ms;
        self
    }

    /// When the pending event started, if there is one (for the caller's timer).
    pub fn pending_since_ms(&self) -> Option<i64> {
        (!self.pending.is_empty()).then_some(self.pending_since_ms)
    }

    /// Takes one line (without its newline) read at `time_ms`; returns the events it
    /// completes.
    pub fn push(&mut self, line: &str, time_ms: i64) -> Vec<LogEvent> {
        let mut out = Vec::new();
        let Some(start) = &self.start else {
            split_into(&mut out, line, time_ms, self.max_event_bytes);
            return out;
        };
        if start.is_match(line)
            || (!self.pending.is_empty()
                && self.pending.len() + line.len() + 1 > self.max_event_bytes)
        {
            out.extend(self.flush());
        }
        if self.pending.is_empty() {
            self.pending_since_ms = time_ms;
        }
        self.pending.push_str(line);
        if line.len() < self.max_event_bytes {
            self.pending.push('\n');
        }
        out
    }

    /// Sends the pending event if it is at least the flush interval old at `now_ms` (or
    /// dated after `now_ms`, as Docker does with a negative age).
    pub fn flush_due(&mut self, now_ms: i64) -> Vec<LogEvent> {
        let age = now_ms.saturating_sub(self.pending_since_ms);
        if !self.pending.is_empty() && (age >= self.flush_interval_ms || age < 0) {
            self.flush()
        } else {
            Vec::new()
        }
    }

    /// Sends the pending event now (the stream ended, or the caller is shutting down).
    pub fn flush(&mut self) -> Vec<LogEvent> {
        let mut out = Vec::new();
        let text = std::mem::take(&mut self.pending);
        split_into(&mut out, &text, self.pending_since_ms, self.max_event_bytes);
        out
    }
}

/// `text` as events of at most `max` bytes, split at character boundaries.
fn split_into(out: &mut Vec<LogEvent>, mut text: &str, time_ms: i64, max: usize) {
    while !text.is_empty() {
        let mut cut = text.len().min(max);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        out.push(LogEvent {
            timestamp_ms: time_ms,
            message: text[..cut].to_string(),
        });
        text = &text[cut..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn messages(events: &[LogEvent]) -> Vec<&str> {
        events.iter().map(|e| e.message.as_str()).collect()
    }

    fn run(m: &mut Multiline, lines: &[&str]) -> Vec<LogEvent> {
        let mut out = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            out.extend(m.push(l, 1000 + i as i64));
        }
        out.extend(m.flush());
        out
    }

    #[test]
    fn datetime_format_becomes_dockers_regex() {
        assert_eq!(
            datetime_format_regex(r"\[%b %d, %Y %H:%M:%S\]"),
            r"\[(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?:0[1-9]|[1,2][0-9]|3[0,1]), \d{4} (?:[0,1][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\]"
        );
        // Outside Docker's table: nothing, as in Docker.
        assert_eq!(datetime_format_regex("%e-%Y"), r"-\d{4}");
        let re = start_pattern(Some("%Y-%m-%dT%H:%M:%S%L%z"), None)
            .unwrap()
            .unwrap();
        assert!(re.is_match("2024-04-18T10:00:02.123+0000 x"));
        let re = start_pattern(Some("%a %A %B %j %I %p %y %f %Z"), None)
            .unwrap()
            .unwrap();
        assert!(re.is_match("Mon Monday February 363 07 AM 08 000345 PST"));
        assert!(!re.is_match("Mon Monday February 367 07 AM 08 000345 PST"));
    }

    #[test]
    fn datetime_format_wins_over_multiline_pattern() {
        let re = start_pattern(Some("%Y"), Some("^INFO")).unwrap().unwrap();
        assert!(re.is_match("2024"));
        assert!(!re.is_match("INFO"));
        assert!(start_pattern(None, None).unwrap().is_none());
        assert!(start_pattern(Some(""), Some("")).unwrap().is_none());
        assert!(start_pattern(None, Some("[")).is_err());
    }

    #[test]
    fn multiline_joins_a_java_stack_trace() {
        let mut m = Multiline::from_options(None, Some(r"^\d{4}-\d{2}-\d{2}")).unwrap();
        let out = run(
            &mut m,
            &[
                "2024-04-18 10:00:00 ERROR Unhandled exception",
                "java.lang.IllegalStateException: boom",
                "\tat com.example.Service.run(Service.java:42)",
                "\tat java.base/java.lang.Thread.run(Thread.java:833)",
                "2024-04-18 10:00:01 INFO recovered",
            ],
        );
        assert_eq!(
            messages(&out),
            vec![
                "2024-04-18 10:00:00 ERROR Unhandled exception\njava.lang.IllegalStateException: boom\n\tat com.example.Service.run(Service.java:42)\n\tat java.base/java.lang.Thread.run(Thread.java:833)\n",
                "2024-04-18 10:00:01 INFO recovered\n",
            ]
        );
        assert_eq!(out[0].timestamp_ms, 1000);
        assert_eq!(out[1].timestamp_ms, 1004);
    }

    #[test]
    fn multiline_starts_events_at_datetime_format_matches() {
        let mut m = Multiline::from_options(Some(r"\[%b %d, %Y %H:%M:%S\]"), None).unwrap();
        let out = run(
            &mut m,
            &[
                "[May 01, 2017 19:00:01] A message was logged",
                "[May 01, 2017 19:00:04] Another multi-line message was logged",
                "Some random message",
                "with some random words",
                "[May 01, 2017 19:01:32] Another message was logged",
            ],
        );
        assert_eq!(
            messages(&out),
            vec![
                "[May 01, 2017 19:00:01] A message was logged\n",
                "[May 01, 2017 19:00:04] Another multi-line message was logged\nSome random message\nwith some random words\n",
                "[May 01, 2017 19:01:32] Another message was logged\n",
            ]
        );
    }

    #[test]
    fn multiline_pattern_is_searched_anywhere_in_the_line() {
        let mut m = Multiline::from_options(None, Some("START")).unwrap();
        let out = run(&mut m, &["a START", "b", "c START"]);
        assert_eq!(messages(&out), vec!["a START\nb\n", "c START\n"]);
    }

    #[test]
    fn multiline_leading_continuations_form_their_own_event() {
        let mut m = Multiline::from_options(None, Some("^S")).unwrap();
        let out = run(&mut m, &["x", "y", "S1", "z"]);
        assert_eq!(messages(&out), vec!["x\ny\n", "S1\nz\n"]);
    }

    #[test]
    fn multiline_without_pattern_ships_each_line() {
        let mut m = Multiline::new(None);
        assert_eq!(messages(&m.push("one", 1)), vec!["one"]);
        assert_eq!(messages(&m.push("two", 2)), vec!["two"]);
        assert!(m.flush().is_empty());
    }

    #[test]
    fn multiline_flushes_when_due() {
        let mut m = Multiline::from_options(None, Some("^S")).unwrap();
        assert!(m.push("S1", 10_000).is_empty());
        assert!(m.push("more", 12_000).is_empty());
        assert_eq!(m.pending_since_ms(), Some(10_000));
        assert!(m.flush_due(14_999).is_empty());
        let out = m.flush_due(15_000);
        assert_eq!(messages(&out), vec!["S1\nmore\n"]);
        assert_eq!(out[0].timestamp_ms, 10_000);
        assert_eq!(m.pending_since_ms(), None);
        // A continuation after a timer flush starts an event at its own time.
        assert!(m.push("late", 16_000).is_empty());
        assert_eq!(m.flush()[0].timestamp_ms, 16_000);
        // An event dated after `now` is sent at once, as Docker does.
        m.push("S2", 20_000);
        assert_eq!(messages(&m.flush_due(19_000)), vec!["S2\n"]);
    }

    #[test]
    fn multiline_caps_event_size() {
        let mut m = Multiline::from_options(None, Some("^S"))
            .unwrap()
            .with_max_event_bytes(10);
        let out = run(&mut m, &["S1234", "abcd", "efgh"]);
        // "S1234\n" + "abcd\n" would be 11 bytes: a new event; "abcd\nefgh\n" is 10.
        assert_eq!(messages(&out), vec!["S1234\n", "abcd\nefgh\n"]);
        let mut m = Multiline::new(None).with_max_event_bytes(4);
        assert_eq!(messages(&m.push("ééé", 1)), vec!["éé", "é"]);
        assert_eq!(MAX_EVENT_BYTES, 262_118);
    }

    proptest! {
        #[test]
        fn multiline_keeps_every_byte_in_order(
            lines in proptest::collection::vec("(S|x)[a-z]{0,6}", 0..20),
            max in 4usize..16,
        ) {
            let mut m = Multiline::from_options(None, Some("^S")).unwrap().with_max_event_bytes(max);
            let out = run(&mut m, &lines.iter().map(String::as_str).collect::<Vec<_>>());
            let joined: String = out.iter().map(|e| e.message.as_str()).collect();
            let want: String = lines.iter().map(|l| if l.len() < max { format!("{l}\n") } else { l.clone() }).collect();
            prop_assert_eq!(joined, want);
            prop_assert!(out.iter().all(|e| e.message.len() <= max && !e.message.is_empty()));
        }
    }
}
