//! The `log-retention` background task: expires events older than their group's retention,
//! sweeps what deleted groups and streams left behind, and forgets week-old Insights queries.
//!
//! Expiry works by chunk: a chunk whose newest event is past the cutoff is deleted with its
//! span; one that straddles the cutoff is rewritten without its expired head (its first event
//! number moves up, so the events kept keep their keys and ids). The stream's and group's
//! stored bytes and the stream's first event time follow in the same job. AWS says deletion
//! may lag up to 72 hours; here it lags at most the task's period (five minutes of the
//! clock) once an activation has the time to finish — one activation does at most
//! [`WORK_PER_ACTIVATION`] chunks and asks for another when more remain.

use super::Logs;
use super::index::{Span, Streams};
use super::records::{
    ChunkDoc, GroupDoc, SpanDoc, StreamDoc, SweepDoc, chunk_key, chunk_prefix, stream_key,
};
use super::streams::group_in;
use crate::background::Counts;
use crate::records::{decode, load, save};
use berth_store::{Kind, ListQuery, Tx};
use berth_types::Error;
use std::collections::HashMap;

/// Chunks one activation expires or sweeps at most.
pub const WORK_PER_ACTIVATION: usize = 2_048;
/// Chunks per write job.
const PER_JOB: usize = 16;
const DAY_MS: i64 = 86_400_000;

impl Logs {
    /// One activation of `log-retention`.
    pub async fn retention_enforce(&self) -> Result<Counts, Error> {
        let mut budget = WORK_PER_ACTIVATION;
        let swept = self.sweep(&mut budget).await?;
        let (mut chunks, mut events) = (0u64, 0u64);
        let now = self.clock.now().0;
        for (name, g) in self.groups_all()? {
            let Some(days) = g.retention else { continue };
            if budget == 0 {
                break;
            }
            let cutoff = now - i64::from(days) * DAY_MS;
            let (c, e) = self.expire_group(&name, &g, cutoff, &mut budget).await?;
            chunks += c;
            events += e;
        }
        if budget == 0 {
            self.background.activate(crate::background::LOG_RETENTION);
        }
        let queries = self.queries_expire().await?;
        Ok(vec![
            ("chunks expired", chunks),
            ("events expired", events),
            ("chunks swept", swept),
            ("queries forgotten", queries),
        ])
    }

    async fn expire_group(
        &self,
        group: &str,
        g: &GroupDoc,
        cutoff: i64,
        budget: &mut usize,
    ) -> Result<(u64, u64), Error> {
        let mut spans: Vec<Span> = self
            .spans_for(group, &g.inc, &Streams::All, i64::MIN, cutoff - 1)
            .await?;
        spans.sort_by_key(|s| s.seq);
        spans.truncate(*budget);
        *budget -= spans.len();
        let (mut chunks, mut events) = (0, 0);
        for part in spans.chunks(PER_JOB) {
            let (group, inc, seqs) = (
                group.to_string(),
                g.inc.clone(),
                part.iter().map(|s| s.seq).collect::<Vec<_>>(),
            );
            let index = self.index.clone();
            let (c, e) = self
                .store
                .write(move |tx| {
                    let (mut chunks, mut events) = (0, 0);
                    let mut changed = HashMap::new();
                    for seq in seqs {
                        let dropped =
                            expire_chunk(tx, &group, &inc, seq, cutoff, &index, &mut changed)?;
                        chunks += u64::from(dropped.0);
                        events += dropped.1;
                    }
                    Ok((chunks, events))
                })
                .await?;
            chunks += c;
            events += e;
        }
        Ok((chunks, events))
    }

    /// Deletes what the sweep records name, within `budget` chunks; how many.
    async fn sweep(&self, budget: &mut usize) -> Result<u64, Error> {
        let sweeps: Vec<(String, SweepDoc)> = self
            .store
            .read(|r| crate::records::all(r, Kind::LogSweep, ""))?;
        let mut swept = 0;
        for (key, _) in sweeps {
            while *budget > 0 {
                let n = PER_JOB.min(*budget);
                let key = key.clone();
                let (done, removed) = self.store.write(move |tx| sweep_step(tx, &key, n)).await?;
                *budget = budget.saturating_sub(removed.max(1));
                swept += removed as u64;
                if done {
                    break;
                }
            }
        }
        Ok(swept)
    }
}

/// Expires one chunk against `cutoff` (inside a write job): whether it was deleted, and how
/// many events went.
fn expire_chunk(
    tx: &mut Tx<'_>,
    group: &str,
    inc: &str,
    seq: u64,
    cutoff: i64,
    index: &super::index::SpanIndex,
    changed: &mut HashMap<u64, Option<i64>>,
) -> Result<(bool, u64), Error> {
    let key = chunk_key(group, inc, seq);
    let (Some(crec), Some(srec)) = (tx.get(Kind::LogChunk, &key)?, tx.get(Kind::LogSpan, &key)?)
    else {
        return Ok((false, 0));
    };
    let Ok((gg, mut g)) = group_in(tx, group) else {
        return Ok((false, 0));
    };
    if g.inc != inc {
        return Ok((false, 0));
    }
    let mut chunk: ChunkDoc = decode(&crec.doc, &key)?;
    let mut span: SpanDoc = decode(&srec.doc, &key)?;
    let cut = chunk.t.partition_point(|t| *t < cutoff).min(chunk.m.len());
    if cut == 0 {
        return Ok((false, 0));
    }
    let freed: u64 = chunk.m[..cut].iter().map(|m| m.len() as u64).sum();
    let whole = cut == chunk.t.len();
    if whole {
        tx.delete(Kind::LogChunk, &key, crec.generation)?;
        tx.delete(Kind::LogSpan, &key, srec.generation)?;
    } else {
        chunk.t.drain(..cut);
        chunk.m.drain(..cut);
        chunk.o += cut as u32;
        span.a = chunk.t[0];
        span.n -= cut as u32;
        span.b = span.b.saturating_sub(freed);
        let text = serde_json::to_string(&chunk).map_err(Error::internal)?;
        tx.update(Kind::LogChunk, &key, crec.generation, None, &text)?;
        let text = serde_json::to_string(&span).map_err(Error::internal)?;
        tx.update(Kind::LogSpan, &key, srec.generation, None, &text)?;
    }
    g.bytes -= freed as i64;
    save(tx, Kind::LogGroup, group, None, &g, Some(gg))?;
    let skey = stream_key(group, &span.s);
    if let Some((sg, mut s)) = load::<StreamDoc>(tx.get(Kind::LogStream, &skey)?)? {
        s.bytes -= freed as i64;
        if whole && s.tail.is_some_and(|t| t.seq == seq) {
            s.tail = None;
        }
        // What remains of the stream: the index (exact up to this job) with this job's
        // changes over it.
        changed.insert(seq, (!whole).then_some(span.a));
        s.first = index
            .stream_spans(group, inc, &span.s)
            .unwrap_or_default()
            .iter()
            .filter_map(|x| changed.get(&x.seq).copied().unwrap_or(Some(x.min)))
            .min();
        save(tx, Kind::LogStream, &skey, None, &s, Some(sg))?;
    }
    Ok((whole, cut as u64))
}

/// One step of a sweep (inside a write job): removes up to `n` records; whether the sweep is
/// done, and how many chunks went.
fn sweep_step(tx: &mut Tx<'_>, key: &str, n: usize) -> Result<(bool, usize), Error> {
    let Some(rec) = tx.get(Kind::LogSweep, key)? else {
        return Ok((true, 0));
    };
    let doc: SweepDoc = decode(&rec.doc, key)?;
    let mut parts = key.splitn(3, '\t');
    let (group, inc) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut removed = 0;
    match doc.seqs {
        // A deleted stream's chunks.
        Some(mut seqs) => {
            let now: Vec<u64> = seqs.drain(..n.min(seqs.len())).collect();
            for seq in now {
                let k = chunk_key(group, inc, seq);
                if let Some(r) = tx.get(Kind::LogChunk, &k)? {
                    tx.delete(Kind::LogChunk, &k, r.generation)?;
                    removed += 1;
                }
            }
            if seqs.is_empty() {
                tx.delete(Kind::LogSweep, key, rec.generation)?;
                return Ok((true, removed));
            }
            save(
                tx,
                Kind::LogSweep,
                key,
                None,
                &SweepDoc { seqs: Some(seqs) },
                Some(rec.generation),
            )?;
            Ok((false, removed))
        }
        // A deleted group's incarnation: everything under its prefix.
        None => {
            let prefix = chunk_prefix(group, inc);
            for kind in [Kind::LogSpan, Kind::LogChunk] {
                let q = ListQuery {
                    prefix: &prefix,
                    limit: n,
                    ..Default::default()
                };
                for r in tx.list(kind, &q)? {
                    tx.delete(kind, &r.key, r.generation)?;
                    if kind == Kind::LogChunk {
                        removed += 1;
                    }
                }
            }
            let left = tx
                .list(
                    Kind::LogChunk,
                    &ListQuery {
                        prefix: &prefix,
                        limit: 1,
                        ..Default::default()
                    },
                )?
                .is_empty()
                && tx
                    .list(
                        Kind::LogSpan,
                        &ListQuery {
                            prefix: &prefix,
                            limit: 1,
                            ..Default::default()
                        },
                    )?
                    .is_empty();
            if left {
                tx.delete(Kind::LogSweep, key, rec.generation)?;
            }
            Ok((left, removed))
        }
    }
}
