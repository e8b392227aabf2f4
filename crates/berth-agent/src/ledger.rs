//! The agent's ledger: the last desired-task document it applied, kept in its state directory
//! so a restarted agent converges at once (adopting what runs, stopping what should stop)
//! without waiting for the control plane, and long-polls from the generation it had.
//!
//! Written whole to a temporary file, fsynced and renamed over the old one: a crash leaves
//! the previous document or the new one, never a mix.

use berth_node_api::agent::Desired;
use std::io::Write;
use std::path::PathBuf;

pub struct Ledger {
    path: PathBuf,
}

impl Ledger {
    pub fn new(state_dir: &std::path::Path) -> Ledger {
        Ledger {
            path: state_dir.join("desired.json"),
        }
    }

    /// The last document saved; `None` when there is none or it cannot be read (a document of
    /// another protocol version is not used).
    pub fn load(&self) -> Option<Desired> {
        let text = std::fs::read(&self.path).ok()?;
        match serde_json::from_slice::<Desired>(&text) {
            Ok(d) if d.version == berth_node_api::VERSION && d.tasks.is_some() => Some(d),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "the agent's ledger is unreadable; starting without it");
                None
            }
        }
    }

    pub fn save(&self, doc: &Desired) -> std::io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(doc).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_keeps_the_last_document() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::new(dir.path());
        assert!(ledger.load().is_none());
        let doc = Desired {
            version: berth_node_api::VERSION,
            generation: 42,
            tasks: Some(vec![]),
            stats_interval_ms: 60_000,
        };
        ledger.save(&doc).unwrap();
        assert_eq!(ledger.load(), Some(doc));
        std::fs::write(dir.path().join("desired.json"), "{not json").unwrap();
        assert!(ledger.load().is_none());
    }
}
