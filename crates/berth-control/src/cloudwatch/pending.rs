//! The metric samples not yet rolled up into chunks, in memory: every server keeps the same
//! view of the `metric-batch` records, fed by a store [`Watcher`] (its own writes and, through
//! the change feed, other servers'), so a query anywhere sees a sample as soon as its
//! PutMetricData was acknowledged.
//!
//! The watcher only queues record changes (the writer thread must not decode batches); they
//! are applied when someone next reads the view, and only once their batch has committed —
//! so the view never shows a sample a failed batch wrote. When a batch fails, or at first
//! use, the view is built again from the store inside a write job (which sees exactly what
//! the watcher stream will continue from).

use super::records::{BatchDoc, BatchSample, batch_seq};
use crate::records::decode;
use berth_metrics::MetricId;
use berth_store::{Kind, ListQuery, Store, Watcher};
use berth_types::Error;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// A sample of a batch not rolled up yet, with the batch's sequence number.
#[derive(Debug, Clone)]
pub(super) struct PendingSample {
    pub seq: u64,
    pub sample: BatchSample,
}

/// One metric's pending samples.
#[derive(Debug, Clone)]
pub(super) struct PendingMetric {
    pub id: MetricId,
    pub samples: Vec<PendingSample>,
}

#[derive(Default)]
struct State {
    loaded: bool,
    /// Changes of the batch being committed (`None`: a deletion).
    staged: Vec<(String, Option<String>)>,
    /// Committed changes not applied yet.
    ready: Vec<(String, Option<String>)>,
    /// By metric hash.
    metrics: HashMap<String, PendingMetric>,
    /// The metric hashes each pending batch has samples of.
    batches: HashMap<u64, Vec<String>>,
}

impl State {
    fn apply(&mut self, key: &str, doc: Option<&str>) {
        let Some(seq) = batch_seq(key) else {
            return;
        };
        match doc {
            Some(doc) => {
                let Ok(batch) = decode::<BatchDoc>(doc, key) else {
                    tracing::warn!(key, "an undecodable metric batch is left out of the view");
                    return;
                };
                self.add(seq, batch);
            }
            None => {
                for hash in self.batches.remove(&seq).unwrap_or_default() {
                    if let Some(m) = self.metrics.get_mut(&hash) {
                        m.samples.retain(|s| s.seq != seq);
                        if m.samples.is_empty() {
                            self.metrics.remove(&hash);
                        }
                    }
                }
            }
        }
    }

    fn add(&mut self, seq: u64, batch: BatchDoc) {
        let hashes: Vec<String> = batch
            .metrics
            .iter()
            .map(super::records::metric_hash)
            .collect();
        for sample in batch.samples {
            let Some(hash) = hashes.get(sample.m as usize) else {
                continue;
            };
            let entry = self
                .metrics
                .entry(hash.clone())
                .or_insert_with(|| PendingMetric {
                    id: batch.metrics[sample.m as usize].clone(),
                    samples: Vec::new(),
                });
            entry.samples.push(PendingSample { seq, sample });
        }
        let mut touched = hashes;
        touched.sort();
        touched.dedup();
        self.batches.insert(seq, touched);
    }
}

/// The view of one region's pending samples.
#[derive(Default)]
pub(super) struct PendingView {
    state: Mutex<State>,
}

impl PendingView {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("pending metrics lock")
    }

    /// The view, loaded and up to date with every committed batch.
    async fn current(self: &Arc<Self>, store: &Store) -> Result<MutexGuard<'_, State>, Error> {
        if !self.lock().loaded {
            let view = self.clone();
            store
                .write(move |tx| {
                    let rows = tx.list(
                        Kind::MetricBatch,
                        &ListQuery {
                            prefix: "b",
                            limit: usize::MAX >> 1,
                            ..Default::default()
                        },
                    )?;
                    let mut fresh = State {
                        loaded: true,
                        ..Default::default()
                    };
                    for r in rows {
                        fresh.apply(&r.key, Some(&r.doc));
                    }
                    // What the listing saw includes every change queued so far.
                    *view.lock() = fresh;
                    Ok(())
                })
                .await?;
        }
        let mut state = self.lock();
        let ready = std::mem::take(&mut state.ready);
        for (key, doc) in ready {
            state.apply(&key, doc.as_deref());
        }
        Ok(state)
    }

    /// The pending samples of the metric `hash`, if any.
    pub async fn metric(
        self: &Arc<Self>,
        store: &Store,
        hash: &str,
    ) -> Result<Option<PendingMetric>, Error> {
        Ok(self.current(store).await?.metrics.get(hash).cloned())
    }

    /// Every metric with pending samples, and its newest sample's timestamp.
    pub async fn metrics(self: &Arc<Self>, store: &Store) -> Result<Vec<(MetricId, i64)>, Error> {
        let state = self.current(store).await?;
        Ok(state
            .metrics
            .values()
            .map(|m| {
                let last = m.samples.iter().map(|s| s.sample.t).max().unwrap_or(0);
                (m.id.clone(), last)
            })
            .collect())
    }
}

impl Watcher for PendingView {
    fn watches(&self, kind: Kind) -> bool {
        kind == Kind::MetricBatch
    }

    fn changed(&self, _: Kind, key: &str, doc: Option<&str>) {
        if batch_seq(key).is_some() {
            let mut state = self.lock();
            if state.loaded {
                state
                    .staged
                    .push((key.to_string(), doc.map(str::to_string)));
            }
        }
    }

    fn reset(&self) {
        *self.lock() = State::default();
    }

    fn committed(&self) {
        let mut state = self.lock();
        let staged = std::mem::take(&mut state.staged);
        state.ready.extend(staged);
    }
}
