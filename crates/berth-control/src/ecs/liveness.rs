//! Agent liveness: heartbeats and the `InstanceLiveness` reconciler (spec/ecs.md §3).
//!
//! Agents check in (`POST /agent/v1/heartbeat`) on every reconcile pass. An instance whose agent
//! has been silent for `disconnect_after` is `agentConnected=false` (placement skips it); after
//! `lost_after` its tasks are stopped, since nothing is left to run or report them. A heartbeat
//! reconnects the instance.

use super::{Ecs, load, save};
use berth_store::{Kind, ListQuery, Watcher};
use berth_types::ecs::{ClusterName, ContainerInstance, Task, TaskStatus};
use berth_types::{Error, Timestamp};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Last check-in per `cluster\nid` with this server, and when this process started watching.
/// Check-ins are also stored (a `Heartbeat` record, at most every `store_every` per
/// instance), so the leader sees agents that check in with other servers.
pub struct Heartbeats {
    seen: Mutex<HashMap<String, Instant>>,
    stored: Mutex<HashMap<String, Instant>>,
    since: Instant,
    /// A quarter of the agent timeout (see [`Ecs::storing_check_ins_every`]).
    store_every: Duration,
}

/// A stored check-in: when, in Unix milliseconds by the clock of the server it reached.
#[derive(serde::Serialize, serde::Deserialize)]
struct StoredHeartbeat {
    at_ms: i64,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Heartbeats {
            seen: Mutex::new(HashMap::new()),
            stored: Mutex::new(HashMap::new()),
            since: Instant::now(),
            store_every: Duration::from_secs(1),
        }
    }
}

impl Heartbeats {
    fn last(&self, key: &str) -> Instant {
        self.seen
            .lock()
            .expect("heartbeats")
            .get(key)
            .copied()
            .unwrap_or(self.since)
    }
}

/// Per-instance generations of the desired-task document: bumped when what an instance should
/// run changes (a task placed on it, a task to stop, a task gone), so its agent's long-poll
/// answers at once. A [`Watcher`] of task records: the changes of every server sharing the
/// store reach it (the change feed), so an agent may long-poll any of them.
///
/// Soft state that still only grows across restarts: every counter starts at the process's
/// start time in milliseconds times 1024, above anything an earlier process reached (which
/// would have needed over 1024 changes per millisecond of its life). An agent's ledger
/// generation is therefore never ahead of a restarted server's.
pub struct Changes {
    base: u64,
    senders: Mutex<HashMap<String, tokio::sync::watch::Sender<u64>>>,
    /// Each task's instance and desired stop, as last seen (`cluster\ntask-id` keys).
    desired: Mutex<HashMap<String, Desired>>,
    /// Instances (`cluster\nid`) whose document changed in changes not committed yet: bumped
    /// once they are, so a woken agent reads what woke it.
    pending: Mutex<Vec<String>>,
}

/// What of a task record its instance's desired document depends on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
struct Desired {
    container_instance: Option<String>,
    desired_stopped: bool,
}

impl Default for Changes {
    fn default() -> Self {
        Changes {
            base: (Timestamp::now().0.max(0) as u64) << 10,
            senders: Mutex::new(HashMap::new()),
            desired: Mutex::default(),
            pending: Mutex::default(),
        }
    }
}

impl Watcher for Changes {
    fn watches(&self, kind: Kind) -> bool {
        kind == Kind::Task
    }

    fn changed(&self, _: Kind, key: &str, doc: Option<&str>) {
        let Some((cluster, _)) = key.split_once('\n') else {
            return;
        };
        let now: Option<Desired> = doc.and_then(|d| serde_json::from_str(d).ok());
        let before = {
            let mut desired = self.desired.lock().expect("desired");
            match &now {
                Some(d) => desired.insert(key.to_string(), d.clone()),
                None => desired.remove(key),
            }
        };
        if before == now {
            return;
        }
        let mut pending = self.pending.lock().expect("pending");
        for d in [before, now].into_iter().flatten() {
            if let Some(i) = d.container_instance {
                pending.push(format!("{cluster}\n{i}"));
            }
        }
    }

    fn reset(&self) {
        // Whatever was missed, every agent looks again.
        self.desired.lock().expect("desired").clear();
        self.pending.lock().expect("pending").clear();
        for s in self.senders.lock().expect("changes").values() {
            s.send_modify(|n| *n += 1);
        }
    }

    fn committed(&self) {
        let mut pending = std::mem::take(&mut *self.pending.lock().expect("pending"));
        pending.sort_unstable();
        pending.dedup();
        for key in pending {
            self.sender(&key).send_modify(|n| *n += 1);
        }
    }
}

impl Changes {
    fn sender(&self, key: &str) -> tokio::sync::watch::Sender<u64> {
        self.senders
            .lock()
            .expect("changes")
            .entry(key.to_string())
            .or_insert_with(|| tokio::sync::watch::channel(self.base).0)
            .clone()
    }
}

/// What one activation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LivenessStatus {
    pub disconnected: usize,
    pub tasks_stopped: usize,
}

/// The reconciler.
pub struct InstanceLiveness {
    ecs: Ecs,
    pub disconnect_after: Duration,
    pub lost_after: Duration,
}

fn key(cluster: &ClusterName, id: &str) -> String {
    format!("{cluster}\n{id}")
}

impl Ecs {
    /// Stores an instance's check-ins at most every `every` (default 1 s): a quarter of the
    /// agent timeout keeps the leader's view of agents on other servers fresh enough.
    pub fn storing_check_ins_every(mut self, every: Duration) -> Self {
        self.heartbeats = std::sync::Arc::new(Heartbeats {
            store_every: every,
            ..Heartbeats::default()
        });
        self
    }

    /// An agent checked in for `instance` (an id or ARN) of `cluster`.
    pub async fn instance_heartbeat(
        &self,
        cluster: &ClusterName,
        instance: &str,
    ) -> Result<(), Error> {
        let id = self
            .instance_id(cluster, instance)
            .ok_or_else(|| {
                Error::InvalidParameter(format!("Invalid container instance: {instance}"))
            })?
            .to_string();
        let k = key(cluster, &id);
        let rec = self.store.read(|r| r.get(Kind::ContainerInstance, &k))?;
        let Some((_, inst)) = load::<ContainerInstance>(rec)? else {
            return Err(Error::InvalidParameter(
                "Container instance not found.".into(),
            ));
        };
        if !inst.status.is_registered() {
            return Err(Error::Client(
                "The container instance is deregistered.".into(),
            ));
        }
        let now = Instant::now();
        self.heartbeats
            .seen
            .lock()
            .expect("heartbeats")
            .insert(k.clone(), now);
        let due = self
            .heartbeats
            .stored
            .lock()
            .expect("heartbeats")
            .get(&k)
            .is_none_or(|at| now.duration_since(*at) >= self.heartbeats.store_every);
        if due {
            let (hk, doc) = (
                k.clone(),
                serde_json::to_string(&StoredHeartbeat {
                    at_ms: Timestamp::now().0,
                })
                .map_err(Error::internal)?,
            );
            self.store
                .write(move |tx| match tx.get(Kind::Heartbeat, &hk)? {
                    Some(r) => tx.update(Kind::Heartbeat, &hk, r.generation, None, &doc),
                    None => tx.insert(Kind::Heartbeat, &hk, None, &doc),
                })
                .await?;
            self.heartbeats
                .stored
                .lock()
                .expect("heartbeats")
                .insert(k.clone(), now);
        }
        if !inst.agent_connected {
            self.store
                .write(move |tx| {
                    if let Some((g, mut i)) =
                        load::<ContainerInstance>(tx.get(Kind::ContainerInstance, &k)?)?
                    {
                        i.agent_connected = true;
                        i.version += 1;
                        save(
                            tx,
                            Kind::ContainerInstance,
                            &k,
                            Some(i.status.as_str()),
                            &i,
                            Some(g),
                        )?;
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }
}

impl Ecs {
    /// Waits (at most `timeout`) until the change counter of `instance` differs from `since`;
    /// returns the counter.
    pub async fn instance_wait(
        &self,
        cluster: &ClusterName,
        instance: &str,
        since: u64,
        timeout: Duration,
    ) -> Result<u64, Error> {
        let id = self
            .instance_id(cluster, instance)
            .ok_or_else(|| {
                Error::InvalidParameter(format!("Invalid container instance: {instance}"))
            })?
            .to_string();
        let mut rx = self.changes.sender(&key(cluster, &id)).subscribe();
        let current = *rx.borrow_and_update();
        if current != since {
            return Ok(current);
        }
        let _ = tokio::time::timeout(timeout, rx.changed()).await;
        Ok(*rx.borrow())
    }
}

impl InstanceLiveness {
    pub fn new(ecs: Ecs, disconnect_after: Duration, lost_after: Duration) -> Self {
        InstanceLiveness {
            ecs,
            disconnect_after,
            lost_after,
        }
    }

    /// One pass over every registered instance. Idempotent; the next activation is the retry.
    pub async fn activate(&self) -> Result<LivenessStatus, Error> {
        let now = Instant::now();
        let rows = self.ecs.store.read(|r| {
            r.list(
                Kind::ContainerInstance,
                &ListQuery {
                    limit: usize::MAX >> 1,
                    ..Default::default()
                },
            )
        })?;
        // Check-ins other servers stored, as instants of this server's clock.
        let wall_now = Timestamp::now().0;
        let stored: HashMap<String, Instant> = self
            .ecs
            .store
            .read(|r| {
                r.list(
                    Kind::Heartbeat,
                    &ListQuery {
                        limit: usize::MAX >> 1,
                        ..Default::default()
                    },
                )
            })?
            .into_iter()
            .filter_map(|rec| {
                let at = serde_json::from_str::<StoredHeartbeat>(&rec.doc)
                    .ok()?
                    .at_ms;
                let ago = Duration::from_millis(wall_now.saturating_sub(at).max(0) as u64);
                Some((rec.key, now.checked_sub(ago)?))
            })
            .collect();
        let mut status = LivenessStatus::default();
        for rec in rows {
            let k = rec.key.clone();
            let Some((_, inst)) = load::<ContainerInstance>(Some(rec))? else {
                continue;
            };
            if !inst.status.is_registered() {
                continue;
            }
            let last = match stored.get(&k) {
                Some(at) => self.ecs.heartbeats.last(&k).max(*at),
                None => self.ecs.heartbeats.last(&k),
            };
            let silent = now.saturating_duration_since(last);
            let disconnect = silent >= self.disconnect_after && inst.agent_connected;
            let lost = silent >= self.lost_after;
            if !disconnect && !lost {
                continue;
            }
            let reason = format!(
                "Container instance {} lost contact with the control plane (its agent was silent for {} s)",
                inst.id,
                silent.as_secs()
            );
            let (cluster, id) = (inst.cluster.clone(), inst.id.clone());
            let (d, stopped) = self
                .ecs
                .store
                .write(move |tx| {
                    let mut d = 0;
                    if disconnect
                        && let Some((g, mut i)) =
                            load::<ContainerInstance>(tx.get(Kind::ContainerInstance, &k)?)?
                        && i.agent_connected
                    {
                        i.agent_connected = false;
                        i.version += 1;
                        save(
                            tx,
                            Kind::ContainerInstance,
                            &k,
                            Some(i.status.as_str()),
                            &i,
                            Some(g),
                        )?;
                        d = 1;
                    }
                    let mut stopped = 0;
                    if lost {
                        for t in super::tasks::active_on(tx, &cluster, &id)? {
                            stop_lost(tx, t, &reason)?;
                            stopped += 1;
                        }
                    }
                    Ok((d, stopped))
                })
                .await?;
            status.disconnected += d;
            status.tasks_stopped += stopped;
            if stopped > 0 {
                self.ecs.wake_scheduler();
            }
        }
        if status != LivenessStatus::default() {
            tracing::info!(?status, "instance liveness");
        }
        Ok(status)
    }
}

/// A task of a lost instance: nothing will report it any more, so it is STOPPED now.
fn stop_lost(tx: &mut berth_store::Tx<'_>, mut t: Task, reason: &str) -> Result<(), Error> {
    let k = key(&t.cluster, &t.id);
    let rec = tx.get(Kind::Task, &k)?.ok_or(Error::Conflict)?;
    let now = Timestamp::now();
    if !t.desired_stopped {
        t.desired_stopped = true;
        let code = if t.started_at.is_some() {
            "TerminationNotice"
        } else {
            "TaskFailedToStart"
        };
        t.stop_code = Some(code.into());
        t.stopped_reason = Some(reason.to_string());
        t.stopping_at = Some(now);
    }
    t.last_status = TaskStatus::Stopped;
    t.stopped_at = Some(now);
    for c in &mut t.containers {
        c.last_status = "STOPPED".into();
    }
    t.version += 1;
    save(
        tx,
        Kind::Task,
        &k,
        Some("STOPPED"),
        &t,
        Some(rec.generation),
    )
}
