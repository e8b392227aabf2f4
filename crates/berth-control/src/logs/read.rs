//! Reading events: GetLogEvents (one stream, forward and backward tokens), FilterLogEvents
//! (streams of a group, a filter pattern, pages), and the scans Logs Insights runs.
//!
//! Every event has a key — `(timestamp, chunk sequence, event number)` — which is AWS's
//! order (by time, then by ingestion) and the event's identity (`eventId`). A [`Scan`] yields
//! the events strictly between two keys, in key order either way, as a k-way merge of the
//! chunks the span index names: a chunk is loaded only when the merge reaches its first
//! event, so a read of recent events touches only recent chunks and memory holds only the
//! chunks whose times overlap. Events inside a chunk never go back in time (batches are
//! chronological, and a batch is appended to a tail chunk only if it starts at or after the
//! tail's last event).
//!
//! Tokens carry a key, MAC'd for the stream (GetLogEvents: `f/…` "after this key", `b/…`
//! "before this key") or the group (FilterLogEvents). At the end of a stream GetLogEvents
//! returns the token it was given, which is how clients know they are done. FilterLogEvents
//! gives a `nextToken` while there may be more, and stops a page after scanning
//! [`SCAN_BUDGET_BYTES`] or [`SCAN_BUDGET`] — a page may then be short or empty, as AWS's
//! may: the first page of a rare term over a large group comes back quickly.

use super::index::{Span, Streams};
use super::records::ChunkDoc;
use super::{Logs, invalid, invalid_token, key_of, name_error, scope_hash};
use crate::records::decode;
use berth_logs::Pattern;
use berth_store::Kind;
use berth_types::Error;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The most events a page holds, and the default `limit`.
pub const MAX_PAGE_EVENTS: usize = 10_000;
/// A page's size limit: messages plus 26 bytes each.
pub const MAX_PAGE_BYTES: usize = 1_048_576;
/// FilterLogEvents scans at most this much per call (message bytes)…
pub const SCAN_BUDGET_BYTES: u64 = 64 * 1024 * 1024;
/// …or for this long.
pub const SCAN_BUDGET: Duration = Duration::from_millis(500);

/// An event's place in the order, and its identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    pub ts: i64,
    pub seq: u64,
    pub n: u32,
}

impl Key {
    const MIN: Key = Key {
        ts: i64::MIN,
        seq: 0,
        n: 0,
    };
    const MAX: Key = Key {
        ts: i64::MAX,
        seq: u64::MAX,
        n: u32::MAX,
    };

    /// The key just below this one (events "at or before" it are those below its successor).
    fn pred(self) -> Key {
        if self.n > 0 {
            Key {
                n: self.n - 1,
                ..self
            }
        } else if self.seq > 0 {
            Key {
                seq: self.seq - 1,
                n: u32::MAX,
                ..self
            }
        } else if self.ts > i64::MIN {
            Key {
                ts: self.ts - 1,
                seq: u64::MAX,
                n: u32::MAX,
            }
        } else {
            self
        }
    }

    fn succ(self) -> Key {
        if self.n < u32::MAX {
            Key {
                n: self.n + 1,
                ..self
            }
        } else if self.seq < u64::MAX {
            Key {
                seq: self.seq + 1,
                n: 0,
                ..self
            }
        } else if self.ts < i64::MAX {
            Key {
                ts: self.ts + 1,
                seq: 0,
                n: 0,
            }
        } else {
            self
        }
    }

    fn encode(self) -> String {
        format!("{}.{}.{}", self.ts, self.seq, self.n)
    }

    fn parse(s: &str) -> Option<Key> {
        let mut p = s.split('.');
        let k = Key {
            ts: p.next()?.parse().ok()?,
            seq: p.next()?.parse().ok()?,
            n: p.next()?.parse().ok()?,
        };
        p.next().is_none().then_some(k)
    }

    /// The `eventId` of the event with this key.
    fn event_id(self) -> String {
        format!("{:019}{:020}{:010}", self.ts.max(0), self.seq, self.n)
    }
}

/// One event as reads return it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub timestamp: i64,
    pub message: String,
    pub ingestion_time: i64,
    pub stream: String,
    pub event_id: String,
}

/// A chunk loaded for a scan.
pub(super) struct Loaded {
    pub seq: u64,
    pub stream: Arc<str>,
    pub doc: ChunkDoc,
}

impl Loaded {
    fn key(&self, pos: usize) -> Key {
        Key {
            ts: self.doc.t[pos],
            seq: self.seq,
            n: self.doc.o + pos as u32,
        }
    }

    fn len(&self) -> usize {
        self.doc.t.len().min(self.doc.m.len())
    }
}

/// An event a scan reached.
pub(super) struct Item {
    pub key: Key,
    pub chunk: Arc<Loaded>,
    pub pos: usize,
}

impl Item {
    pub fn message(&self) -> &str {
        &self.chunk.doc.m[self.pos]
    }

    pub fn event(&self) -> LogEvent {
        LogEvent {
            timestamp: self.key.ts,
            message: self.message().to_string(),
            ingestion_time: self.chunk.doc.ingestion(self.key.n),
            stream: self.chunk.stream.to_string(),
            event_id: self.key.event_id(),
        }
    }
}

type Head = (Key, usize, usize);

/// A merge of chunks yielding the events strictly between `lo` and `hi`.
pub(super) struct Scan {
    logs: Logs,
    group: String,
    inc: String,
    spans: Vec<Span>,
    next: usize,
    loaded: Vec<Arc<Loaded>>,
    forward: bool,
    ahead: BinaryHeap<Reverse<Head>>,
    behind: BinaryHeap<Head>,
    lo: Key,
    hi: Key,
    /// Message bytes of the chunks loaded so far.
    pub bytes_loaded: u64,
}

impl Scan {
    pub fn new(
        logs: &Logs,
        group: &str,
        inc: &str,
        mut spans: Vec<Span>,
        lo: Key,
        hi: Key,
        forward: bool,
    ) -> Scan {
        spans.retain(|s| s.max >= lo.ts && s.min <= hi.ts);
        if forward {
            spans.sort_by_key(|s| (s.min, s.seq));
        } else {
            spans.sort_by_key(|s| Reverse((s.max, s.seq)));
        }
        Scan {
            logs: logs.clone(),
            group: group.to_string(),
            inc: inc.to_string(),
            spans,
            next: 0,
            loaded: Vec::new(),
            forward,
            ahead: BinaryHeap::new(),
            behind: BinaryHeap::new(),
            lo,
            hi,
            bytes_loaded: 0,
        }
    }

    fn top(&self) -> Option<Key> {
        if self.forward {
            self.ahead.peek().map(|Reverse(h)| h.0)
        } else {
            self.behind.peek().map(|h| h.0)
        }
    }

    fn push(&mut self, head: Head) {
        if self.forward {
            self.ahead.push(Reverse(head));
        } else {
            self.behind.push(head);
        }
    }

    fn pop(&mut self) -> Option<Head> {
        if self.forward {
            self.ahead.pop().map(|Reverse(h)| h)
        } else {
            self.behind.pop()
        }
    }

    /// Loads span `i`'s chunk and queues its first event inside the bounds.
    fn load(&mut self, i: usize) -> Result<(), Error> {
        let span = &self.spans[i];
        let key = super::records::chunk_key(&self.group, &self.inc, span.seq);
        let Some(rec) = self.logs.store.read(|r| r.get(Kind::LogChunk, &key))? else {
            return Ok(()); // not committed yet, or swept
        };
        let doc: ChunkDoc = decode(&rec.doc, &key)?;
        let chunk = Loaded {
            seq: span.seq,
            stream: span.stream.clone(),
            doc,
        };
        self.bytes_loaded += chunk.doc.m.iter().map(|m| m.len() as u64).sum::<u64>();
        let len = chunk.len();
        let pos = if self.forward {
            let mut p = chunk.doc.t[..len].partition_point(|t| *t < self.lo.ts);
            while p < len && chunk.key(p) <= self.lo {
                p += 1;
            }
            (p < len && chunk.key(p) < self.hi).then_some(p)
        } else {
            let mut p = chunk.doc.t[..len].partition_point(|t| *t <= self.hi.ts);
            while p > 0 && chunk.key(p - 1) >= self.hi {
                p -= 1;
            }
            (p > 0 && chunk.key(p - 1) > self.lo).then(|| p - 1)
        };
        if let Some(p) = pos {
            let key = chunk.key(p);
            self.loaded.push(Arc::new(chunk));
            self.push((key, self.loaded.len() - 1, p));
        }
        Ok(())
    }

    /// The next event, in the scan's direction.
    pub fn next_item(&mut self) -> Result<Option<Item>, Error> {
        loop {
            let due = self.next < self.spans.len()
                && match self.top() {
                    None => true,
                    Some(k) if self.forward => self.spans[self.next].min <= k.ts,
                    Some(k) => self.spans[self.next].max >= k.ts,
                };
            if !due {
                break;
            }
            self.next += 1;
            self.load(self.next - 1)?;
        }
        let Some((key, c, pos)) = self.pop() else {
            return Ok(None);
        };
        if (self.forward && key >= self.hi) || (!self.forward && key <= self.lo) {
            return Ok(None);
        }
        let chunk = self.loaded[c].clone();
        let following = if self.forward {
            (pos + 1 < chunk.len()).then_some(pos + 1)
        } else {
            pos.checked_sub(1)
        };
        if let Some(p) = following {
            self.push((chunk.key(p), c, p));
        }
        Ok(Some(Item { key, chunk, pos }))
    }
}

/// A GetLogEvents call.
#[derive(Debug, Clone, Default)]
pub struct GetEvents {
    pub group: String,
    pub stream: String,
    pub start: Option<i64>,
    /// Exclusive.
    pub end: Option<i64>,
    pub token: Option<String>,
    pub limit: Option<usize>,
    pub from_head: bool,
}

/// GetLogEvents' answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventsPage {
    pub events: Vec<LogEvent>,
    pub forward_token: String,
    pub backward_token: String,
}

/// A FilterLogEvents call.
#[derive(Debug, Clone, Default)]
pub struct FilterEvents {
    pub group: String,
    pub streams: Option<Vec<String>>,
    pub prefix: Option<String>,
    pub start: Option<i64>,
    /// Inclusive.
    pub end: Option<i64>,
    pub pattern: String,
    pub token: Option<String>,
    pub limit: Option<usize>,
}

/// FilterLogEvents' answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterPage {
    pub events: Vec<LogEvent>,
    /// The streams the page looked in.
    pub searched: Vec<String>,
    pub next_token: Option<String>,
}

/// Whether a page has room for one more event of `message` (10,000 events, 1 MB).
fn fits(count: usize, bytes: usize, limit: usize, message: &str) -> bool {
    count < limit && bytes + message.len() + 26 <= MAX_PAGE_BYTES
}

/// The bounds of `[start, end]` (both inclusive), as exclusive keys.
fn bounds(start: Option<i64>, end_inclusive: Option<i64>) -> (Key, Key) {
    let lo = start.map_or(Key::MIN, |s| {
        Key {
            ts: s,
            seq: 0,
            n: 0,
        }
        .pred()
    });
    let hi = end_inclusive.map_or(Key::MAX, |e| Key {
        ts: e.saturating_add(1),
        seq: 0,
        n: 0,
    });
    (lo, hi)
}

impl Logs {
    /// GetLogEvents.
    pub async fn events_get(&self, q: GetEvents) -> Result<EventsPage, Error> {
        berth_logs::check_log_group_name(&q.group).map_err(name_error)?;
        berth_logs::check_log_stream_name(&q.stream).map_err(name_error)?;
        let g = self.group_doc(&q.group)?;
        self.stream_describe(&q.group, &q.stream)?;
        let scope = format!("GetLogEvents:{}", scope_hash(&[&q.group, &q.stream]));
        let (lo, hi) = bounds(q.start, q.end.map(|e| e.saturating_sub(1)));
        // The direction and the position the token (or its absence) gives.
        let (forward, from) = match q.token.as_deref() {
            Some(t) => {
                let (dir, rest) = t.split_at_checked(2).ok_or_else(invalid_token)?;
                let key =
                    Key::parse(&key_of(&self.pager, &scope, rest)?).ok_or_else(invalid_token)?;
                match dir {
                    "f/" => (true, key),
                    "b/" => (false, key),
                    _ => return Err(invalid_token()),
                }
            }
            None if q.from_head => (true, lo),
            None => (false, hi),
        };
        let names = [q.stream.clone()];
        let spans = self
            .spans_for(&q.group, &g.inc, &Streams::Named(&names), lo.ts, hi.ts)
            .await?;
        let (scan_lo, scan_hi) = if forward {
            (from.max(lo), hi)
        } else {
            (lo, from.min(hi))
        };
        let limit = q.limit.unwrap_or(MAX_PAGE_EVENTS).clamp(1, MAX_PAGE_EVENTS);
        let mut scan = Scan::new(self, &q.group, &g.inc, spans, scan_lo, scan_hi, forward);
        let (mut events, mut bytes) = (Vec::new(), 0);
        while let Some(item) = scan.next_item()? {
            if !fits(events.len(), bytes, limit, item.message()) {
                break;
            }
            bytes += item.message().len() + 26;
            events.push((item.key, item.event()));
        }
        if !forward {
            events.reverse();
        }
        let tok = |dir: &str, k: Key| {
            format!("{dir}{}", super::token_of(&self.pager, &scope, &k.encode()))
        };
        let (forward_token, backward_token) = match (events.first(), events.last()) {
            (Some((first, _)), Some((last, _))) => (tok("f/", *last), tok("b/", *first)),
            _ if forward => (
                q.token.clone().unwrap_or_else(|| tok("f/", from)),
                tok("b/", from.succ()),
            ),
            // Nothing before `from`: reading forward starts at the range's start.
            _ => (
                tok("f/", lo),
                q.token.clone().unwrap_or_else(|| tok("b/", from)),
            ),
        };
        Ok(EventsPage {
            events: events.into_iter().map(|(_, e)| e).collect(),
            forward_token,
            backward_token,
        })
    }

    /// FilterLogEvents.
    pub async fn events_filter(&self, q: FilterEvents) -> Result<FilterPage, Error> {
        berth_logs::check_log_group_name(&q.group).map_err(name_error)?;
        if q.streams.is_some() && q.prefix.is_some() {
            return Err(invalid(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
            ));
        }
        let pattern = Pattern::parse(&q.pattern).map_err(|e| invalid(e.to_string()))?;
        let g = self.group_doc(&q.group)?;
        let scope = format!("FilterLogEvents:{}", scope_hash(&[&q.group, &g.inc]));
        let (lo, hi) = bounds(q.start, q.end);
        let after = match q.token.as_deref() {
            Some(t) => Key::parse(&key_of(&self.pager, &scope, t)?).ok_or_else(invalid_token)?,
            None => lo,
        };
        let streams = match (&q.streams, &q.prefix) {
            (Some(names), _) => Streams::Named(names),
            (_, Some(p)) => Streams::Prefix(p),
            _ => Streams::All,
        };
        let spans = self
            .spans_for(&q.group, &g.inc, &streams, lo.ts, hi.ts)
            .await?;
        let mut searched: Vec<String> = spans.iter().map(|s| s.stream.to_string()).collect();
        searched.sort();
        searched.dedup();
        let limit = q.limit.unwrap_or(MAX_PAGE_EVENTS).clamp(1, MAX_PAGE_EVENTS);
        let (logs, group, inc) = (self.clone(), q.group.clone(), g.inc.clone());
        let (events, last, done) = tokio::task::spawn_blocking(move || {
            let mut scan = Scan::new(&logs, &group, &inc, spans, after.max(lo), hi, true);
            filter_page(&mut scan, &pattern, limit)
        })
        .await
        .map_err(Error::internal)??;
        let next_token = match (done, last) {
            (false, Some(k)) => Some(super::token_of(&self.pager, &scope, &k.encode())),
            (false, None) => Some(super::token_of(&self.pager, &scope, &after.encode())),
            (true, _) => None,
        };
        Ok(FilterPage {
            events,
            searched,
            next_token,
        })
    }

    /// Every event of `group` in `[start, end]` (inclusive), in time order, for Insights;
    /// stops at `max` events.
    pub(super) async fn events_all(
        &self,
        group: &str,
        start: i64,
        end: i64,
        max: usize,
    ) -> Result<Vec<LogEvent>, Error> {
        let g = self.group_doc(group)?;
        let (lo, hi) = bounds(Some(start), Some(end));
        let spans = self
            .spans_for(group, &g.inc, &Streams::All, lo.ts, hi.ts)
            .await?;
        let (logs, group, inc) = (self.clone(), group.to_string(), g.inc.clone());
        tokio::task::spawn_blocking(move || {
            let mut scan = Scan::new(&logs, &group, &inc, spans, lo, hi, true);
            let mut out = Vec::new();
            while out.len() < max
                && let Some(item) = scan.next_item()?
            {
                out.push(item.event());
            }
            Ok(out)
        })
        .await
        .map_err(Error::internal)?
    }
}

/// One FilterLogEvents page off `scan`: the events, the last key examined, and whether the
/// scan reached the end.
fn filter_page(
    scan: &mut Scan,
    pattern: &Pattern,
    limit: usize,
) -> Result<(Vec<LogEvent>, Option<Key>, bool), Error> {
    let started = Instant::now();
    let (mut events, mut bytes, mut last) = (Vec::new(), 0, None);
    let all = pattern.matches_everything();
    loop {
        if scan.bytes_loaded > SCAN_BUDGET_BYTES || started.elapsed() > SCAN_BUDGET {
            return Ok((events, last, false));
        }
        let Some(item) = scan.next_item()? else {
            return Ok((events, last, true));
        };
        if all || pattern.matches(item.message()) {
            if !fits(events.len(), bytes, limit, item.message()) {
                return Ok((events, last, false));
            }
            bytes += item.message().len() + 26;
            events.push(item.event());
        }
        last = Some(item.key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_event_keys_order_and_step() {
        let k = Key {
            ts: 5,
            seq: 2,
            n: 0,
        };
        assert!(k.pred() < k && k < k.succ());
        assert_eq!(k.pred().succ(), k);
        assert_eq!(Key::parse(&k.encode()), Some(k));
        assert_eq!(Key::parse("1.2"), None);
        assert_eq!(Key::parse("1.2.3.4"), None);
        assert_eq!(Key::MIN.pred(), Key::MIN);
        assert_eq!(Key::MAX.succ(), Key::MAX);
        let id = k.event_id();
        assert_eq!(id.len(), 49);
        assert!(
            Key {
                ts: 5,
                seq: 2,
                n: 1
            }
            .event_id()
                > id
        );
    }

    #[test]
    fn log_read_bounds_are_inclusive_times() {
        let (lo, hi) = bounds(Some(10), Some(20));
        assert!(
            lo < Key {
                ts: 10,
                seq: 0,
                n: 0
            }
        );
        assert!(
            lo > Key {
                ts: 9,
                seq: u64::MAX,
                n: u32::MAX - 1
            }
        );
        assert!(
            hi > Key {
                ts: 20,
                seq: u64::MAX,
                n: u32::MAX
            }
        );
        assert!(
            hi <= Key {
                ts: 21,
                seq: 0,
                n: 0
            }
        );
    }
}
