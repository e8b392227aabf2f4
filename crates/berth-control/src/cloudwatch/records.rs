//! How CloudWatch's metric data is stored (one region's partition of the store):
//!
//! * `metric-batch` `b<seq>`: the samples one PutMetricData accepted (or one publication of
//!   Berth's own metrics), written in one record — an acknowledged put costs one insert. The
//!   sequence (16 hex digits, from the `seq` record of the same kind, incremented in the same
//!   job) orders batches in commit order across every server sharing the store.
//! * `metric-chunk` `<period>\t<chunk start>\t<metric hash>`: one metric's buckets of one
//!   resolution over one stretch of time ([`chunk_span_ms`]), with `w`, the last batch
//!   sequence rolled into it. The rollup moves batches into chunks and deletes them in one
//!   job; a query adds to a chunk only the pending samples of batches after its `w`, so a
//!   sample is never counted twice nor lost while the rollup runs. Keys start with the
//!   period and the time, so expired chunks are found by a range scan.
//! * `metric` `<hash>`: a metric that has data: its identity and its last timestamp
//!   (ListMetrics).
//!
//! The metric hash is the first 16 bytes (hex) of the SHA-256 of the metric's canonical
//! JSON (dimensions sorted): keys stay short whatever the dimensions hold.

use berth_metrics::retention::Tier;
use berth_metrics::{Aggregate, MetricId, Resolution, Unit};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The key of the batch sequence counter.
pub(super) const SEQ_KEY: &str = "seq";

/// One stored sample: metric index into the batch's table, timestamp (ms), unit, resolution
/// (seconds: 1 or 60), aggregate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct BatchSample {
    pub m: u32,
    pub t: i64,
    pub u: Unit,
    pub r: i64,
    pub a: Aggregate,
}

impl BatchSample {
    pub fn resolution(&self) -> Resolution {
        if self.r == 1 {
            Resolution::High
        } else {
            Resolution::Standard
        }
    }
}

/// The samples of one put.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct BatchDoc {
    pub metrics: Vec<MetricId>,
    pub samples: Vec<BatchSample>,
}

/// One bucket of a chunk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ChunkBucket {
    pub t: i64,
    pub u: Unit,
    pub a: Aggregate,
}

/// One metric's buckets of one tier over one chunk span.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct ChunkDoc {
    /// The last batch sequence rolled into this chunk.
    pub w: u64,
    /// Sorted by time, then unit.
    pub b: Vec<ChunkBucket>,
}

impl ChunkDoc {
    /// Merges `a` into the bucket at `t` of unit `u`.
    pub fn merge(&mut self, t: i64, u: Unit, a: &Aggregate) {
        match self
            .b
            .binary_search_by(|b| (b.t, b.u.as_str()).cmp(&(t, u.as_str())))
        {
            Ok(i) => self.b[i].a.merge(a),
            Err(i) => self.b.insert(i, ChunkBucket { t, u, a: a.clone() }),
        }
    }
}

/// A metric that has data.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MetricDoc {
    pub id: MetricId,
    /// The newest timestamp (ms) it has data at.
    pub last: i64,
}

/// The hash naming `m` in keys.
pub(super) fn metric_hash(m: &MetricId) -> String {
    let canonical = serde_json::to_vec(m).unwrap_or_default();
    hex_of(&Sha256::digest(&canonical)[..16])
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn batch_key(seq: u64) -> String {
    format!("b{seq:016x}")
}

/// The sequence of a batch key (`None` for the counter).
pub(super) fn batch_seq(key: &str) -> Option<u64> {
    u64::from_str_radix(key.strip_prefix('b')?, 16).ok()
}

/// How long a chunk of `tier` spans: a few hundred buckets.
pub(super) fn chunk_span_ms(tier: Tier) -> i64 {
    const MINUTE: i64 = 60_000;
    match tier.period_s {
        1 => 10 * MINUTE,
        60 => 6 * 60 * MINUTE,
        300 => 24 * 60 * MINUTE,
        _ => 15 * 24 * 60 * MINUTE,
    }
}

/// The start of the chunk of `tier` that holds time `t`.
pub(super) fn chunk_start(tier: Tier, t: i64) -> i64 {
    t.div_euclid(chunk_span_ms(tier)) * chunk_span_ms(tier)
}

/// The key prefix of `tier`'s chunks.
pub(super) fn tier_prefix(tier: Tier) -> String {
    format!("{:05}\t", tier.period_s)
}

pub(super) fn chunk_key(tier: Tier, start: i64, hash: &str) -> String {
    format!("{}{start:015}\t{hash}", tier_prefix(tier))
}

/// The start of the chunk a chunk key names.
pub(super) fn chunk_key_start(key: &str) -> Option<i64> {
    key.split('\t').nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_metrics::retention::{HOUR, MINUTE};

    #[test]
    fn metric_records_keys_sort_by_sequence_and_time() {
        assert!(batch_key(9) < batch_key(10));
        assert_eq!(batch_seq(&batch_key(0xabc)), Some(0xabc));
        assert_eq!(batch_seq(SEQ_KEY), None);
        assert_eq!(chunk_start(MINUTE, 6 * 3_600_000 + 5), 6 * 3_600_000);
        let k = chunk_key(HOUR, 1_000, "ff");
        assert!(k < chunk_key(HOUR, 2_000, "00"), "time before hash");
        assert_eq!(chunk_key_start(&k), Some(1_000));
        let m = MetricId::new("NS", "M", vec![]).unwrap();
        assert_eq!(metric_hash(&m).len(), 32);
        assert_eq!(metric_hash(&m), metric_hash(&m.clone()));
    }

    #[test]
    fn metric_chunks_merge_per_time_and_unit() {
        let mut c = ChunkDoc::default();
        c.merge(60_000, Unit::Count, &Aggregate::from_value(1.0));
        c.merge(0, Unit::Count, &Aggregate::from_value(2.0));
        c.merge(60_000, Unit::Count, &Aggregate::from_value(3.0));
        c.merge(60_000, Unit::Seconds, &Aggregate::from_value(4.0));
        assert_eq!(c.b.len(), 3);
        assert_eq!(c.b[0].t, 0);
        assert_eq!(c.b[1].a.sum(), 4.0);
    }
}
