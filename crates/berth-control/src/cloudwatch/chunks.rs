//! Decoded `metric-chunk` records kept in memory, so that reads of the same stretch of a
//! metric — dashboards, GetMetricData pages, every alarm's evaluation every period — skip the
//! store read and the JSON decode. Bounded by buckets held (oldest entries leave first).
//!
//! Kept in step by a store watcher registered **before** the pending view: a changed chunk is
//! dropped as soon as its write job succeeds and again once the batch is committed, and a
//! reader may store what it read only if no chunk changed meanwhile (a version). So a reader
//! that no longer sees a batch in the pending view (its rollup is committed) never finds the
//! chunk as it was before that rollup here.

use super::records::ChunkDoc;
use berth_store::{Kind, Watcher};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// At most this many buckets are held (about 100 bytes each).
const MAX_BUCKETS: usize = 500_000;

#[derive(Default)]
pub(super) struct ChunkCache {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bumped whenever a chunk changes (or everything may have).
    version: u64,
    /// Chunks changed by the batch being committed.
    staged: Vec<String>,
    docs: HashMap<String, Arc<ChunkDoc>>,
    /// Keys in the order they were stored (a key may appear again after it left `docs`).
    order: VecDeque<String>,
    buckets: usize,
}

impl State {
    fn drop_key(&mut self, key: &str) {
        if let Some(doc) = self.docs.remove(key) {
            self.buckets -= doc.b.len();
        }
    }
}

impl ChunkCache {
    /// The version to pass to [`ChunkCache::insert`]: taken before reading the store.
    pub fn version(&self) -> u64 {
        self.state.lock().expect("chunk cache").version
    }

    pub fn get(&self, key: &str) -> Option<Arc<ChunkDoc>> {
        self.state
            .lock()
            .expect("chunk cache")
            .docs
            .get(key)
            .cloned()
    }

    /// Keeps `doc`, read from the store after [`ChunkCache::version`] answered `version`,
    /// unless some chunk changed since.
    pub fn insert(&self, key: &str, doc: Arc<ChunkDoc>, version: u64) {
        let mut s = self.state.lock().expect("chunk cache");
        if s.version != version || doc.b.len() > MAX_BUCKETS {
            return;
        }
        s.drop_key(key);
        s.buckets += doc.b.len();
        s.docs.insert(key.to_string(), doc);
        s.order.push_back(key.to_string());
        while s.buckets > MAX_BUCKETS {
            let Some(oldest) = s.order.pop_front() else {
                break;
            };
            s.drop_key(&oldest);
        }
        if s.order.len() > 2 * s.docs.len() + 64 {
            let State { order, docs, .. } = &mut *s;
            order.retain(|k| docs.contains_key(k));
        }
    }
}

impl Watcher for ChunkCache {
    fn watches(&self, kind: Kind) -> bool {
        kind == Kind::MetricChunk
    }

    fn changed(&self, _: Kind, key: &str, _: Option<&str>) {
        let mut s = self.state.lock().expect("chunk cache");
        s.version += 1;
        s.drop_key(key);
        s.staged.push(key.to_string());
    }

    fn reset(&self) {
        *self.state.lock().expect("chunk cache") = State {
            version: self.version() + 1,
            ..State::default()
        };
    }

    fn committed(&self) {
        let mut s = self.state.lock().expect("chunk cache");
        if s.staged.is_empty() {
            return;
        }
        s.version += 1;
        for key in std::mem::take(&mut s.staged) {
            s.drop_key(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(buckets: usize) -> Arc<ChunkDoc> {
        let mut d = ChunkDoc::default();
        for t in 0..buckets as i64 {
            d.merge(
                t,
                berth_metrics::Unit::None,
                &berth_metrics::Aggregate::from_value(1.0),
            );
        }
        Arc::new(d)
    }

    #[test]
    fn chunk_cache_never_keeps_what_a_write_replaced() {
        let c = ChunkCache::default();
        let v = c.version();
        c.insert("a", doc(1), v);
        assert!(c.get("a").is_some());
        // A read that began before a write of "a" may not store its (older) copy.
        let before = c.version();
        c.changed(Kind::MetricChunk, "a", Some("{}"));
        assert!(c.get("a").is_none(), "dropped when the job succeeds");
        c.insert("a", doc(1), before);
        assert!(c.get("a").is_none());
        // One that began after the job but before the commit stores a copy the commit drops.
        let during = c.version();
        c.insert("a", doc(1), during);
        c.committed();
        assert!(c.get("a").is_none(), "dropped again at the commit");
        let after = c.version();
        c.insert("a", doc(2), after);
        assert_eq!(c.get("a").unwrap().b.len(), 2);
        c.reset();
        assert!(c.get("a").is_none());
    }

    #[test]
    fn chunk_cache_is_bounded_by_buckets() {
        let c = ChunkCache::default();
        for i in 0..12 {
            c.insert(&format!("k{i}"), doc(50_000), c.version());
        }
        let s = c.state.lock().unwrap();
        assert!(s.buckets <= MAX_BUCKETS, "{}", s.buckets);
        assert!(!s.docs.contains_key("k0") && s.docs.contains_key("k11"));
    }
}
