//! PutLogEvents: the batch rules of `berth-logs` (refused batches, dropped events), then one
//! write job — a new chunk for the batch, or an append to the stream's small tail chunk —
//! that also moves the stream's and group's counters; then the group's metric filters.
//!
//! **Idempotent writers** (a Berth extension AWS clients never send): a batch may carry a
//! [`BatchId`] — a writer's name and an increasing batch number. The stream remembers the last
//! number of each writer (its 16 most recent writers); a batch numbered at or below it was
//! already stored and is acknowledged again without storing anything. The agent's `awslogs`
//! shipping numbers its batches so a batch re-sent after a crash is never stored twice.

use super::records::{
    ChunkDoc, MAX_WRITERS, SpanDoc, StreamDoc, TAIL_MAX_BYTES, TAIL_MAX_EVENTS, Tail, WriterMark,
    chunk_key, stream_key,
};
use super::streams::group_in;
use super::{Logs, invalid, name_error, stream_not_found};
use crate::records::{decode, load, save};
use berth_logs::RejectedInfo;
use berth_store::{Kind, Tx};
use berth_types::Error;

/// An idempotent writer's batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchId {
    pub writer: String,
    pub batch: u64,
}

/// What PutLogEvents did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutOutcome {
    pub rejected: RejectedInfo,
    /// The chunk the events went to (0 when none was stored).
    pub seq: u64,
    /// The batch had been stored before (an idempotent writer's re-send).
    pub duplicate: bool,
}

/// What the write job needs to store a batch.
struct Batch {
    events: Vec<(i64, String)>,
    bytes: u64,
    /// The chunk document of a batch too large for a tail, encoded before the job.
    encoded: Option<String>,
    now: i64,
}

impl Batch {
    fn small(&self) -> bool {
        self.encoded.is_none()
    }
    fn min(&self) -> i64 {
        self.events.first().map_or(0, |e| e.0)
    }
    fn max(&self) -> i64 {
        self.events.last().map_or(0, |e| e.0)
    }
}

fn chunk_of(events: &[(i64, String)], now: i64) -> ChunkDoc {
    ChunkDoc {
        o: 0,
        t: events.iter().map(|e| e.0).collect(),
        m: events.iter().map(|e| e.1.clone()).collect(),
        g: vec![(0, now)],
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(Error::internal)
}

impl Logs {
    /// PutLogEvents of `events` (`(timestamp ms, message)`) into `group`/`stream`.
    pub async fn events_put(
        &self,
        group: &str,
        stream: &str,
        events: Vec<(i64, String)>,
        batch_id: Option<BatchId>,
    ) -> Result<PutOutcome, Error> {
        berth_logs::check_log_group_name(group).map_err(name_error)?;
        berth_logs::check_log_stream_name(stream).map_err(name_error)?;
        let retention = self.group_doc(group)?.retention;
        let now = self.clock.now().0;
        let outcome =
            berth_logs::check_batch(&events, now, retention).map_err(|e| invalid(e.to_string()))?;
        let mut events = events;
        events.truncate(outcome.accepted.end);
        events.drain(..outcome.accepted.start);
        let bytes: u64 = events.iter().map(|e| e.1.len() as u64).sum();
        let small = bytes <= TAIL_MAX_BYTES && (events.len() as u32) < TAIL_MAX_EVENTS;
        let encoded = if small {
            None
        } else {
            Some(encode(&chunk_of(&events, now))?)
        };
        let batch = Batch {
            events,
            bytes,
            encoded,
            now,
        };
        let (group_s, stream_s) = (group.to_string(), stream.to_string());
        let (seq, duplicate, filters, stored) = self
            .store
            .write(move |tx| store_batch(tx, &group_s, &stream_s, batch, batch_id))
            .await?;
        if filters > 0 && !stored.is_empty() {
            self.metric_filters_apply(group, &stored).await;
        }
        Ok(PutOutcome {
            rejected: outcome.rejected,
            seq,
            duplicate,
        })
    }
}

/// What the write job of a batch did: `(chunk sequence, duplicate, metric filters of the
/// group, the events stored when the group has filters)`.
type Stored = (u64, bool, u32, Vec<(i64, String)>);

/// The write job of one batch.
fn store_batch(
    tx: &mut Tx<'_>,
    group: &str,
    stream: &str,
    batch: Batch,
    batch_id: Option<BatchId>,
) -> Result<Stored, Error> {
    let (gg, mut g) = group_in(tx, group)?;
    let skey = stream_key(group, stream);
    let Some((sg, mut s)) = load::<StreamDoc>(tx.get(Kind::LogStream, &skey)?)? else {
        return Err(stream_not_found());
    };
    if let Some(b) = &batch_id {
        if s.writers.get(&b.writer).is_some_and(|m| m.batch >= b.batch) {
            return Ok((0, true, g.filters, Vec::new()));
        }
        s.writers.insert(
            b.writer.clone(),
            WriterMark {
                batch: b.batch,
                at: batch.now,
            },
        );
        while s.writers.len() > MAX_WRITERS {
            let oldest = s
                .writers
                .iter()
                .min_by_key(|(_, m)| m.at)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                s.writers.remove(&k);
            }
        }
    }
    if batch.events.is_empty() {
        if batch_id.is_some() {
            save(tx, Kind::LogStream, &skey, None, &s, Some(sg))?;
        }
        return Ok((0, false, g.filters, Vec::new()));
    }
    let (min, max, n) = (batch.min(), batch.max(), batch.events.len() as u32);
    let appended = match s.tail {
        Some(t)
            if batch.small()
                && t.bytes + batch.bytes <= TAIL_MAX_BYTES
                && t.n + n <= TAIL_MAX_EVENTS
                && min >= t.max =>
        {
            append(tx, group, &g.inc, stream, t, &batch)?
        }
        _ => None,
    };
    let seq = match appended {
        Some(tail) => {
            s.tail = Some(tail);
            tail.seq
        }
        None => {
            g.seq += 1;
            let key = chunk_key(group, &g.inc, g.seq);
            let doc = match &batch.encoded {
                Some(d) => d.clone(),
                None => encode(&chunk_of(&batch.events, batch.now))?,
            };
            tx.insert_new(Kind::LogChunk, &key, None, &doc)?;
            let span = SpanDoc {
                s: stream.to_string(),
                a: min,
                z: max,
                n,
                b: batch.bytes,
            };
            tx.insert_new(Kind::LogSpan, &key, None, &encode(&span)?)?;
            s.tail = batch.small().then_some(Tail {
                seq: g.seq,
                n,
                bytes: batch.bytes,
                max,
            });
            g.seq
        }
    };
    s.first = Some(s.first.map_or(min, |f| f.min(min)));
    s.last = Some(s.last.map_or(max, |l| l.max(max)));
    s.ingested = Some(batch.now);
    s.bytes += batch.bytes as i64;
    g.bytes += batch.bytes as i64;
    save(tx, Kind::LogStream, &skey, None, &s, Some(sg))?;
    save(tx, Kind::LogGroup, group, None, &g, Some(gg))?;
    let stored = if g.filters > 0 {
        batch.events
    } else {
        Vec::new()
    };
    Ok((seq, false, g.filters, stored))
}

/// Appends a small batch to the stream's tail chunk; the tail after it (`None` when the tail
/// chunk is gone — retention or a sweep took it — and a new chunk must be made).
fn append(
    tx: &mut Tx<'_>,
    group: &str,
    inc: &str,
    stream: &str,
    tail: Tail,
    batch: &Batch,
) -> Result<Option<Tail>, Error> {
    let key = chunk_key(group, inc, tail.seq);
    let (Some(chunk), Some(span)) = (tx.get(Kind::LogChunk, &key)?, tx.get(Kind::LogSpan, &key)?)
    else {
        return Ok(None);
    };
    let mut doc: ChunkDoc = decode(&chunk.doc, &key)?;
    let mut sdoc: SpanDoc = decode(&span.doc, &key)?;
    if sdoc.s != stream {
        return Ok(None);
    }
    doc.g.push((doc.o + doc.t.len() as u32, batch.now));
    for (t, m) in &batch.events {
        doc.t.push(*t);
        doc.m.push(m.clone());
    }
    let n = batch.events.len() as u32;
    sdoc.a = sdoc.a.min(batch.min());
    sdoc.z = sdoc.z.max(batch.max());
    sdoc.n += n;
    sdoc.b += batch.bytes;
    tx.update(Kind::LogChunk, &key, chunk.generation, None, &encode(&doc)?)?;
    tx.update(Kind::LogSpan, &key, span.generation, None, &encode(&sdoc)?)?;
    Ok(Some(Tail {
        seq: tail.seq,
        n: tail.n + n,
        bytes: tail.bytes + batch.bytes,
        max: tail.max.max(batch.max()),
    }))
}
