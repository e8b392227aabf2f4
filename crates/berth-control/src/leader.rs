//! Leadership of the controllers: of all servers sharing a store, one — the holder of the
//! store's `leader` lease — runs the background tasks (the service scheduler, liveness, GC,
//! purge, and those to come). The lease is a row the database's clock expires; its epoch is
//! the fence every controller write carries ([`Store::fenced`]), so a server that lost the
//! lease (paused, partitioned, presumed dead) cannot write as leader any more.
//!
//! Each server also holds a `replica:<id>` lease of its own, renewed on the same beat, so
//! `berth status` can list the servers alive.

use berth_store::{Fence, Store};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The controllers' lease.
pub const LEADER: &str = "leader";
/// The prefix of every server's own lease.
pub const REPLICA_PREFIX: &str = "replica:";

/// This server's side of the leadership.
pub struct Leadership {
    store: Store,
    /// Who this server is in the leases (stable per data directory, so a restarted server
    /// takes its own unexpired lease back at once).
    holder: String,
    /// What `berth status` shows of this server (its endpoint).
    about: String,
    ttl: Duration,
    /// The epoch while this server leads.
    term: watch::Sender<Option<u64>>,
}

impl Leadership {
    pub fn new(store: Store, holder: String, about: String, ttl: Duration) -> Arc<Leadership> {
        Arc::new(Leadership {
            store,
            holder,
            about,
            ttl,
            term: watch::channel(None).0,
        })
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The fence of this server's current term, if it leads.
    pub fn fence(&self) -> Option<Fence> {
        let epoch = (*self.term.borrow())?;
        Some(Fence {
            lease: LEADER.into(),
            holder: self.holder.clone(),
            epoch,
        })
    }

    /// Changes of the term (`Some(epoch)` while leading).
    pub fn subscribe(&self) -> watch::Receiver<Option<u64>> {
        self.term.subscribe()
    }

    /// One renewal: this server's own lease, then the leader lease (taken if free or
    /// expired). The term ends when the lease is lost or cannot be renewed.
    pub async fn renew(&self) -> Option<u64> {
        let own = format!("{REPLICA_PREFIX}{}", self.holder);
        let replica = self.store.acquire_lease(&own, &self.about, self.ttl).await;
        if let Err(e) = replica {
            tracing::warn!(error = %e, "cannot renew this server's lease");
        }
        let epoch = match self
            .store
            .acquire_lease(LEADER, &self.holder, self.ttl)
            .await
        {
            Ok(epoch) => epoch,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the leader lease; not leading until it can");
                None
            }
        };
        let before = self.term.send_replace(epoch);
        if before != epoch {
            match epoch {
                Some(epoch) => {
                    tracing::info!(epoch, holder = %self.holder, "leading the controllers")
                }
                None => tracing::info!(holder = %self.holder, "not leading the controllers"),
            }
        }
        epoch
    }

    /// Renews for ever: the leader every third of the TTL, the others every second (at most
    /// a third of the TTL), so leadership moves within about TTL + 1 s of the leader's end.
    pub async fn run(self: Arc<Self>) {
        loop {
            let leading = self.renew().await.is_some();
            let every = if leading {
                self.ttl / 3
            } else {
                (self.ttl / 3).min(Duration::from_secs(1))
            };
            tokio::time::sleep(every).await;
        }
    }

    /// Gives the leases up (a clean shutdown: another server leads at once).
    pub async fn step_down(&self) {
        self.term.send_replace(None);
        let own = format!("{REPLICA_PREFIX}{}", self.holder);
        for (name, holder) in [(LEADER, &self.holder), (own.as_str(), &self.about)] {
            if let Err(e) = self.store.release_lease(name, holder).await {
                tracing::warn!(error = %e, lease = name, "cannot release a lease");
            }
        }
    }
}
