//! How CloudWatch Logs is stored (one region's partition of the store). Designed for ingest:
//! an accepted `PutLogEvents` costs one chunk record however many events it carries, plus
//! three small updates; reads find the chunks they need from small span records without
//! loading events.
//!
//! * `log-group` `<name>`: [`GroupDoc`] — creation, retention, class, tags, the metric
//!   filter count, the stored bytes, and `seq`, the last chunk sequence of the group (chunk
//!   keys are new by construction), and `inc`, the group's incarnation (a group deleted and
//!   created again has new keys, so what the sweeper has not removed yet never shows).
//! * `log-stream` `<group>\t<stream>`: [`StreamDoc`] — first/last event time, last ingestion,
//!   stored bytes, the stream's open *tail* chunk, and the last batch of each idempotent writer.
//! * `log-chunk` `<group>\t<inc>\t<seq>`: [`ChunkDoc`] — one stream's events, sorted by time:
//!   the events of one PutLogEvents, or of several small ones appended to the stream's tail
//!   chunk while it stays under [`TAIL_MAX_BYTES`] and the batches come in time order.
//!   Events are numbered from `o`; an event's identity — and its sort key — is
//!   `(timestamp, seq, number)`: AWS's order ("by timestamp, then ingestion"), total, and
//!   stable when retention trims a chunk's expired head.
//! * `log-span` `<group>\t<inc>\t<seq>`: [`SpanDoc`] — the chunk's stream, time range, count,
//!   bytes. The in-memory span index (`index.rs`) is built from these.
//! * `log-metric-filter` `<group>\t<filter>`, `log-query` `<query id>`,
//!   `log-sweep` `<group>\t<inc>[\t<stream>]`: metric filters, Insights queries, and what a
//!   deleted group or stream left for the sweeper.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A stream's tail chunk takes appended batches while it is smaller than this.
pub(super) const TAIL_MAX_BYTES: u64 = 64 * 1024;
/// …and has fewer events than this.
pub(super) const TAIL_MAX_EVENTS: u32 = 10_000;
/// Idempotent writers remembered per stream (the oldest is forgotten first).
pub(super) const MAX_WRITERS: usize = 16;

/// The class of a log group (`logGroupClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum GroupClass {
    #[default]
    #[serde(rename = "STANDARD")]
    Standard,
    #[serde(rename = "INFREQUENT_ACCESS")]
    InfrequentAccess,
    #[serde(rename = "DELIVERY")]
    Delivery,
}

impl GroupClass {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupClass::Standard => "STANDARD",
            GroupClass::InfrequentAccess => "INFREQUENT_ACCESS",
            GroupClass::Delivery => "DELIVERY",
        }
    }

    pub fn parse(s: &str) -> Option<GroupClass> {
        match s {
            "STANDARD" => Some(GroupClass::Standard),
            "INFREQUENT_ACCESS" => Some(GroupClass::InfrequentAccess),
            "DELIVERY" => Some(GroupClass::Delivery),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct GroupDoc {
    pub created: i64,
    #[serde(default)]
    pub retention: Option<u32>,
    #[serde(default)]
    pub class: GroupClass,
    #[serde(default)]
    pub kms: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub inc: String,
    #[serde(default)]
    pub seq: u64,
    #[serde(default)]
    pub bytes: i64,
    #[serde(default)]
    pub filters: u32,
    #[serde(default)]
    pub protected: bool,
}

/// A stream's open chunk.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct Tail {
    pub seq: u64,
    pub n: u32,
    pub bytes: u64,
    pub max: i64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct StreamDoc {
    pub created: i64,
    #[serde(default)]
    pub first: Option<i64>,
    #[serde(default)]
    pub last: Option<i64>,
    #[serde(default)]
    pub ingested: Option<i64>,
    #[serde(default)]
    pub bytes: i64,
    #[serde(default)]
    pub tail: Option<Tail>,
    /// Idempotent writer → the last batch number it had accepted.
    #[serde(default)]
    pub writers: BTreeMap<String, WriterMark>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct WriterMark {
    pub batch: u64,
    /// When it was last used (the oldest writer is forgotten first).
    pub at: i64,
}

/// The events of one chunk, oldest first (`t` never decreases).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ChunkDoc {
    /// The number of the first event kept (retention trims a chunk's head).
    #[serde(default)]
    pub o: u32,
    pub t: Vec<i64>,
    pub m: Vec<String>,
    /// `(first event number, ingestion time)` of each batch appended, in order.
    pub g: Vec<(u32, i64)>,
}

impl ChunkDoc {
    /// The ingestion time of event number `number`.
    pub fn ingestion(&self, number: u32) -> i64 {
        let i = self.g.partition_point(|(first, _)| *first <= number);
        self.g[i.saturating_sub(1)].1
    }
}

/// What a chunk holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(super) struct SpanDoc {
    pub s: String,
    pub a: i64,
    pub z: i64,
    pub n: u32,
    pub b: u64,
}

/// A metric filter.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricFilter {
    pub group: String,
    pub name: String,
    pub pattern: String,
    pub transformation: MetricTransformation,
    pub created: i64,
}

/// A metric filter's `metricTransformations[0]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetricTransformation {
    pub metric_name: String,
    pub namespace: String,
    pub value: String,
    pub default_value: Option<f64>,
    pub dimensions: BTreeMap<String, String>,
    pub unit: Option<String>,
}

/// What a sweep removes: every chunk and span under `<group>\t<inc>\t` (a deleted group), or
/// the chunks `seqs` (a deleted stream's).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct SweepDoc {
    #[serde(default)]
    pub seqs: Option<Vec<u64>>,
}

pub(super) fn stream_key(group: &str, stream: &str) -> String {
    format!("{group}\t{stream}")
}

pub(super) fn chunk_prefix(group: &str, inc: &str) -> String {
    format!("{group}\t{inc}\t")
}

pub(super) fn chunk_key(group: &str, inc: &str, seq: u64) -> String {
    format!("{group}\t{inc}\t{seq:016x}")
}

/// `(group, inc, seq)` of a chunk or span key.
pub(super) fn parse_chunk_key(key: &str) -> Option<(&str, &str, u64)> {
    let mut parts = key.rsplitn(3, '\t');
    let seq = u64::from_str_radix(parts.next()?, 16).ok()?;
    let inc = parts.next()?;
    let group = parts.next()?;
    Some((group, inc, seq))
}

pub(super) fn filter_key(group: &str, name: &str) -> String {
    format!("{group}\t{name}")
}

/// A new incarnation id.
pub(super) fn new_incarnation() -> String {
    format!("{:016x}", rand::random::<u64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_chunk_keys_sort_by_sequence_and_parse_back() {
        let a = chunk_key("/ecs/web", "00ff", 9);
        let b = chunk_key("/ecs/web", "00ff", 10);
        assert!(a < b);
        assert!(a.starts_with(&chunk_prefix("/ecs/web", "00ff")));
        assert_eq!(parse_chunk_key(&b), Some(("/ecs/web", "00ff", 10)));
        assert_eq!(parse_chunk_key("nope"), None);
    }

    #[test]
    fn log_chunk_ingestion_times_follow_appended_batches() {
        let c = ChunkDoc {
            o: 0,
            t: vec![1, 2, 3, 4],
            m: vec!["a".into(), "b".into(), "c".into(), "d".into()],
            g: vec![(0, 100), (2, 200), (3, 300)],
        };
        assert_eq!(
            (0..4).map(|n| c.ingestion(n)).collect::<Vec<_>>(),
            vec![100, 100, 200, 300]
        );
    }
}
