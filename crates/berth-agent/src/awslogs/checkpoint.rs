//! What one container's shipping has done, kept in the agent's state directory
//! (`awslogs/<container id>.json`, written whole, fsynced and renamed like the ledger), so a
//! restarted agent resumes exactly where the last acknowledged batch ended.
//!
//! Positions count the engine's log messages in the *view* `since = anchor` (every message
//! logged at or after `anchor`, in the order logged — the same list every time it is read).
//! `consumed` messages of that view are shipped (or, in non-blocking mode, dropped). To keep
//! a restart from re-reading a long log from its start, the anchor moves up as shipping goes:
//! to two seconds before the newest message consumed, with `consumed` becoming the number of
//! consumed messages at or after the new anchor (kept per second in `seconds`). The messages
//! consumed are a prefix of the old view, so those at or after the new anchor are a prefix of
//! the new view; the two-second margin covers messages of stdout and stderr that reach the
//! log a moment out of time order.
//!
//! Before a batch is sent, its number and the positions it covers are written (`inflight`):
//! after a crash the same messages are read again and sent under the same number, and the
//! server's idempotent-writer check stores them once whether or not the first send arrived.

use crate::runtime::RuntimeError;
use berth_node_api::awslogs::Options;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The anchor stays this far behind the newest message consumed.
const ANCHOR_MARGIN_S: i64 = 2;

/// A batch sent but not yet known to be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inflight {
    pub batch: u64,
    /// The view position after its last message.
    pub upto: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub container_id: String,
    pub task_arn: String,
    pub container_name: String,
    pub options: Options,
    pub group: String,
    pub stream: String,
    /// The region the events go to.
    pub region: String,
    /// Ship with the task's execution role (else with the agent's own credentials).
    pub execution_role: bool,
    pub anchor: i64,
    pub consumed: u64,
    /// Consumed messages per second, for seconds at or after `anchor`.
    pub seconds: BTreeMap<i64, u64>,
    /// The newest event time shipped: later events are never dated before it.
    pub last_ts: i64,
    pub next_batch: u64,
    pub inflight: Option<Inflight>,
    /// Everything the container printed is shipped.
    pub done: bool,
    /// The agent wants the container removed once shipping is done.
    pub remove: bool,
}

impl Checkpoint {
    /// Moves the anchor up (when no batch is in flight): see the module's description.
    pub fn reanchor(&mut self) -> u64 {
        if self.inflight.is_some() {
            return 0;
        }
        let Some(newest) = self.seconds.keys().next_back().copied() else {
            return 0;
        };
        let anchor = (newest - ANCHOR_MARGIN_S).max(self.anchor);
        if anchor == self.anchor {
            return 0;
        }
        let keep = self.seconds.split_off(&anchor);
        let dropped: u64 = self.seconds.values().sum();
        self.seconds = keep;
        self.anchor = anchor;
        self.consumed -= dropped.min(self.consumed);
        dropped
    }

    /// How many of `seconds` (messages per second) are in the view: a message dated before
    /// the anchor is not (only a clock stepping back makes one).
    pub fn in_view(&self, seconds: &[(i64, u64)]) -> u64 {
        seconds
            .iter()
            .filter(|(s, _)| *s >= self.anchor)
            .map(|(_, n)| n)
            .sum()
    }

    /// Records messages (per second) as consumed; those not in the view are not counted.
    pub fn count(&mut self, seconds: &[(i64, u64)]) {
        for (s, n) in seconds.iter().filter(|(s, _)| *s >= self.anchor) {
            *self.seconds.entry(*s).or_default() += n;
            self.consumed += n;
        }
    }
}

/// Where checkpoints live.
#[derive(Debug, Clone)]
pub struct Dir(PathBuf);

impl Dir {
    pub fn new(state_dir: &Path) -> Dir {
        Dir(state_dir.join("awslogs"))
    }

    fn path(&self, container_id: &str) -> PathBuf {
        self.0.join(format!("{container_id}.json"))
    }

    pub fn load(&self, container_id: &str) -> Option<Checkpoint> {
        let text = std::fs::read(self.path(container_id)).ok()?;
        serde_json::from_slice(&text)
            .map_err(|e| tracing::warn!(container = container_id, error = %e, "an unreadable awslogs checkpoint"))
            .ok()
    }

    /// Every checkpoint kept.
    pub fn all(&self) -> Vec<Checkpoint> {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return Vec::new();
        };
        entries
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                self.load(name.strip_suffix(".json")?)
            })
            .collect()
    }

    /// Writes `c` durably (the previous version or this one survives a crash, never a mix).
    pub fn save(&self, c: &Checkpoint) -> Result<(), RuntimeError> {
        let io =
            |e: std::io::Error| RuntimeError::Engine(format!("saving an awslogs checkpoint: {e}"));
        std::fs::create_dir_all(&self.0).map_err(io)?;
        let path = self.path(&c.container_id);
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&serde_json::to_vec(c).map_err(|e| io(std::io::Error::other(e)))?)
            .map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &path).map_err(io)?;
        std::fs::File::open(&self.0)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }

    pub fn remove(&self, container_id: &str) {
        let _ = std::fs::remove_file(self.path(container_id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn checkpoint() -> Checkpoint {
        Checkpoint {
            container_id: "c1".into(),
            task_arn: "t".into(),
            container_name: "app".into(),
            options: Options::parse(&[("awslogs-group".to_string(), "g".to_string())].into())
                .unwrap(),
            group: "g".into(),
            stream: "s".into(),
            region: "us-east-1".into(),
            execution_role: false,
            anchor: 0,
            consumed: 0,
            seconds: BTreeMap::new(),
            last_ts: 0,
            next_batch: 1,
            inflight: None,
            done: false,
            remove: false,
        }
    }

    #[test]
    fn awslogs_checkpoints_reanchor_behind_the_newest_message() {
        let mut c = checkpoint();
        c.count(&[(100, 5), (101, 3), (103, 4), (104, 1)]);
        assert_eq!(c.consumed, 13);
        assert_eq!(c.reanchor(), 8, "seconds 100 and 101 leave the view");
        assert_eq!((c.anchor, c.consumed), (102, 5));
        // Nothing moves while a batch is in flight, nor when nothing is newer.
        c.inflight = Some(Inflight { batch: 1, upto: 9 });
        c.count(&[(110, 1)]);
        assert_eq!(c.reanchor(), 0);
        c.inflight = None;
        assert_eq!(c.reanchor(), 5);
        assert_eq!((c.anchor, c.consumed), (108, 1));
        assert_eq!(c.reanchor(), 0);
        // A message dated before the anchor is not in the view.
        assert_eq!(c.in_view(&[(50, 1), (108, 2)]), 2);
        c.count(&[(50, 1)]);
        assert_eq!(c.consumed, 1);
    }

    #[test]
    fn awslogs_checkpoints_survive_a_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let d = Dir::new(dir.path());
        assert!(d.load("c1").is_none());
        let mut c = checkpoint();
        c.count(&[(7, 2)]);
        d.save(&c).unwrap();
        assert_eq!(d.load("c1"), Some(c.clone()));
        assert_eq!(d.all(), vec![c]);
        d.remove("c1");
        assert!(d.all().is_empty());
    }
}
