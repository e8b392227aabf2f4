//! One container's shipping: a reader follows the engine's log from the checkpoint and cuts
//! batches; a sender ships them in order with PutLogEvents, each under its batch number, and
//! checkpoints what the server acknowledged.
//!
//! * **Blocking mode** (the default): the reader stops reading while [`QUEUE_BYTES`] wait to
//!   be shipped. Nothing is lost: the engine's log file holds the rest, and the container is
//!   never slowed (it writes to the engine, not to the agent).
//! * **Non-blocking mode**: while the waiting bytes exceed `max-buffer-size`, new lines are
//!   dropped (and counted as consumed), as Docker's ring buffer drops them.
//! * A failed send is retried, after a pause growing to 5 s, until it is acknowledged: a
//!   server outage delays shipping, it loses nothing. A stream or group deleted meanwhile is
//!   created again (the group only with `awslogs-create-group`); a batch the server refuses
//!   as invalid, or for a group that no longer exists, is dropped with a warning.
//! * When the container stops and its log is read to the end, the last batch goes, the
//!   checkpoint says `done`, and the container is removed if the agent asked for that.

use super::batcher::{Batch, Batcher};
use super::checkpoint::{Checkpoint, Inflight};
use super::{Entry, Shippers};
use crate::runtime::Runtime;
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;

/// Blocking mode reads on while less than this waits to be shipped.
pub const QUEUE_BYTES: usize = 4 * 1_048_576;
/// How often the reader looks at its batch's age when no message comes.
const TICK: Duration = Duration::from_millis(100);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

enum Item {
    Batch(Batch),
    End,
}

/// Ships one container's output until it is all shipped.
pub(super) async fn run<R: Runtime>(shippers: Arc<Shippers<R>>, ck: Checkpoint, entry: Arc<Entry>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let reader = tokio::spawn(read(shippers.clone(), ck.clone(), tx, queued.clone()));
    send(&shippers, ck, rx, &queued, &entry).await;
    reader.abort();
}

/// The reader: the engine's log from the checkpoint on, into batches.
async fn read<R: Runtime>(
    shippers: Arc<Shippers<R>>,
    ck: Checkpoint,
    tx: mpsc::UnboundedSender<Item>,
    queued: Arc<AtomicUsize>,
) {
    let multiline = match ck.options.multiline() {
        Ok(m) => m,
        Err(e) => {
            tracing::warn!(container = %ck.container_id, error = %e, "awslogs: bad multiline options; shipping line by line");
            berth_node_api::awslogs::Multiline::new(None)
        }
    };
    let mut batcher = Batcher::new(multiline, ck.last_ts);
    if let Some(f) = ck.inflight {
        batcher = batcher.rebuild(f.upto.saturating_sub(ck.consumed));
    }
    let emit = |batches: Vec<Batch>| {
        for b in batches {
            queued.fetch_add(b.bytes, Ordering::Relaxed);
            let _ = tx.send(Item::Batch(b));
        }
    };
    // Messages of the view to pass over: those the checkpoint says are consumed, then (when
    // the stream breaks and is opened again) those this reader took already.
    let mut skip = ck.consumed;
    let mut taken: u64 = 0;
    // The batcher's timer runs whether or not messages keep coming.
    let mut ticked = now_ms();
    loop {
        let mut logs = shippers.runtime.logs(&ck.container_id, ck.anchor, true);
        let mut seen: u64 = 0;
        loop {
            if !ck.options.non_blocking {
                while queued.load(Ordering::Relaxed) > QUEUE_BYTES {
                    tokio::time::sleep(TICK).await;
                }
            }
            let now = now_ms();
            if now - ticked >= TICK.as_millis() as i64 {
                ticked = now;
                emit(batcher.tick(now));
            }
            let Ok(next) = tokio::time::timeout(TICK, logs.next()).await else {
                continue;
            };
            let Some(Ok(m)) = next else { break };
            seen += 1;
            if seen <= skip {
                continue;
            }
            taken += 1;
            let drop = ck.options.non_blocking
                && queued.load(Ordering::Relaxed) + batcher.waiting_bytes() > ck.options.max_buffer;
            emit(batcher.push(m.time_ns, &m.text, drop, now_ms()));
        }
        // The stream ended: the container stopped (or is gone), or the engine broke it off.
        match shippers.runtime.inspect(&ck.container_id).await {
            Ok(Some(state)) if state.running => {
                skip = ck.consumed + taken;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => {
                tracing::warn!(container = %ck.container_id, error = %e, "awslogs: the engine's log broke off; reading on");
                skip = ck.consumed + taken;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Ok(_) => break,
        }
    }
    emit(batcher.finish(now_ms()));
    let _ = tx.send(Item::End);
}

/// The sender: batches in order, each acknowledged before the next.
async fn send<R: Runtime>(
    shippers: &Shippers<R>,
    mut ck: Checkpoint,
    mut rx: mpsc::UnboundedReceiver<Item>,
    queued: &AtomicUsize,
    entry: &Entry,
) {
    let mut rebuild = ck.inflight.map(|f| f.batch);
    while let Some(item) = rx.recv().await {
        let batch = match item {
            Item::Batch(b) => b,
            Item::End => break,
        };
        if !batch.events.is_empty() {
            let number = rebuild.take().unwrap_or(ck.next_batch);
            ck.inflight = Some(Inflight {
                batch: number,
                upto: ck.consumed + ck.in_view(&batch.seconds),
            });
            ck.next_batch = number + 1;
            ck.remove |= entry.remove_requested();
            shippers.save(&ck).await;
            put(shippers, &ck, number, &batch).await;
            ck.last_ts = batch.events.last().map_or(ck.last_ts, |e| e.0);
        } else if rebuild.take().is_some() {
            ck.next_batch = ck.next_batch.max(ck.inflight.map_or(0, |f| f.batch + 1));
        }
        ck.inflight = None;
        ck.count(&batch.seconds);
        queued.fetch_sub(
            batch.bytes.min(queued.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        if rx.is_empty() {
            ck.reanchor();
            ck.remove |= entry.remove_requested();
            shippers.save(&ck).await;
        }
    }
    ck.done = true;
    ck.remove |= entry.remove_requested();
    shippers.save(&ck).await;
    entry.finish();
    tracing::debug!(container = %ck.container_id, stream = %ck.stream, "awslogs: everything shipped");
    if entry.remove_requested() {
        shippers.remove_container(&ck.container_id).await;
    }
}

/// Sends one batch until the server has it (or refuses it for good).
async fn put<R: Runtime>(shippers: &Shippers<R>, ck: &Checkpoint, number: u64, batch: &Batch) {
    let events: Vec<Value> = batch
        .events
        .iter()
        .map(|(t, m)| json!({"timestamp": t, "message": m}))
        .collect();
    let body = json!({
        "logGroupName": ck.group,
        "logStreamName": ck.stream,
        "logEvents": events,
        "berthBatch": {"writer": writer(ck), "batch": number},
    });
    let mut pause = Duration::from_millis(200);
    loop {
        let sent = shippers.call(ck, "PutLogEvents", body.clone()).await;
        let e = match sent {
            Ok(_) => return,
            Err(e) => e,
        };
        match e.code.as_deref() {
            Some("ResourceNotFoundException") => {
                match super::create_destination(shippers, ck).await {
                    Ok(()) => continue,
                    Err(e) if e.code.as_deref() == Some("ResourceNotFoundException") => {
                        tracing::warn!(group = %ck.group, error = %e, "awslogs: the log group is gone; dropping a batch");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "awslogs: cannot create the log stream again")
                    }
                }
            }
            Some("InvalidParameterException") | Some("SerializationException") => {
                tracing::warn!(group = %ck.group, stream = %ck.stream, error = %e, "awslogs: the server refused a batch; dropping it");
                return;
            }
            _ => {
                tracing::warn!(group = %ck.group, stream = %ck.stream, error = %e, "awslogs: shipping failed; retrying")
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}

/// The idempotent writer's name: the container (ids are unique on an engine).
fn writer(ck: &Checkpoint) -> String {
    format!("berth-agent/{}", ck.container_id)
}
