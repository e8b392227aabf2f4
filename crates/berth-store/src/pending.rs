//! A batch's writes, kept in memory until its commit writes them in a few statements: write
//! jobs read their own and earlier jobs' writes from here, a job that fails is undone here
//! (no savepoint per job), and the commit writes each record's net change once.

use crate::backend::Write;
use crate::{Kind, Record};
use berth_types::Generation;
use std::collections::BTreeMap;

/// A record this batch wrote.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    /// The generation the database holds now (`None`: no record there).
    pub stored: Option<Generation>,
    /// The record as the batch leaves it (`None`: deleted).
    pub now: Option<Record>,
}

#[derive(Default)]
pub(crate) struct Pending {
    /// By kind and stored key: byte order, as listings need.
    entries: BTreeMap<(Kind, String), Entry>,
    /// How to take the current job's changes back, newest last.
    undo: Vec<Undo>,
}

enum Undo {
    /// The entry as it was before (`None`: there was none).
    Entry((Kind, String), Option<Entry>),
    /// Every entry as it was before they were written out mid-batch.
    All(BTreeMap<(Kind, String), Entry>),
}

impl Pending {
    pub fn get(&self, kind: Kind, key: &str) -> Option<&Entry> {
        self.entries.get(&(kind, key.to_string()))
    }

    pub fn set(&mut self, kind: Kind, key: &str, entry: Entry) {
        let previous = self.entries.insert((kind, key.to_string()), entry);
        self.undo
            .push(Undo::Entry((kind, key.to_string()), previous));
    }

    /// A new job starts: its predecessors' writes are final.
    pub fn begin_job(&mut self) {
        self.undo.clear();
    }

    /// The current job failed: its writes are forgotten.
    pub fn undo_job(&mut self) {
        while let Some(undo) = self.undo.pop() {
            match undo {
                Undo::Entry(key, Some(e)) => {
                    self.entries.insert(key, e);
                }
                Undo::Entry(key, None) => {
                    self.entries.remove(&key);
                }
                Undo::All(entries) => self.entries = entries,
            }
        }
    }

    /// Every entry has been written to the database: there is nothing left to write (undone
    /// with the job, whose savepoint takes the database back too).
    pub fn written_out(&mut self) {
        let entries = std::mem::take(&mut self.entries);
        self.undo.push(Undo::All(entries));
    }

    /// The entries of `kind` with keys in `from..below`.
    pub fn range<'a>(
        &'a self,
        kind: Kind,
        from: &str,
        below: &str,
    ) -> impl Iterator<Item = (&'a str, &'a Entry)> + 'a {
        self.entries
            .range((kind, from.to_string())..(kind, below.to_string()))
            .map(|((_, key), e)| (key.as_str(), e))
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = (Kind, &Record)> + '_ {
        self.entries
            .iter()
            .filter_map(|((kind, _), e)| e.now.as_ref().map(|r| (*kind, r)))
    }

    /// The keys whose record was deleted.
    pub fn deleted(&self) -> impl Iterator<Item = (Kind, &str)> + '_ {
        self.entries
            .iter()
            .filter(|(_, e)| e.now.is_none())
            .map(|((kind, key), _)| (*kind, key.as_str()))
    }

    /// Each record's net change, for the commit.
    pub fn writes(&self) -> Vec<Write<'_>> {
        self.entries
            .iter()
            .filter(|(_, e)| e.stored.is_some() || e.now.is_some())
            .map(|((kind, key), e)| Write {
                kind: *kind,
                key,
                expected: e.stored,
                now: e.now.as_ref(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, generation: u64) -> Record {
        Record {
            key: key.into(),
            generation: Generation(generation),
            status: None,
            doc: format!("{key}@{generation}"),
        }
    }

    fn set(p: &mut Pending, key: &str, stored: Option<u64>, now: Option<u64>) {
        let entry = Entry {
            stored: stored.map(Generation),
            now: now.map(|g| record(key, g)),
        };
        p.set(Kind::Cluster, key, entry);
    }

    #[test]
    fn a_failed_job_leaves_its_predecessors_writes_only() {
        let mut p = Pending::default();
        p.begin_job();
        set(&mut p, "a", None, Some(1));
        p.begin_job();
        set(&mut p, "a", None, Some(2));
        set(&mut p, "b", Some(4), None);
        p.written_out();
        set(&mut p, "c", None, Some(1));
        p.undo_job();
        let writes = p.writes();
        assert_eq!(writes.len(), 1);
        assert_eq!(writes[0].key, "a");
        assert_eq!(writes[0].now.unwrap().generation, Generation(1));
        assert!(p.get(Kind::Cluster, "b").is_none());
        assert!(p.get(Kind::Task, "a").is_none());
        assert_eq!(
            p.range(Kind::Cluster, "", "\u{10FFFF}")
                .map(|(k, _)| k)
                .collect::<Vec<_>>(),
            ["a"]
        );
    }
}
