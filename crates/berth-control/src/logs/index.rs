//! The span index: per log group (incarnation), every chunk's stream, time range, count and
//! bytes, so a read knows which chunks to load — and in which order — without listing or
//! decoding any. Built from a group's `log-span` records inside a write job the first time a
//! read needs it, then kept in step by a store [`Watcher`] (this server's writes as their job
//! succeeds, other servers' from the change feed). A batch that fails to commit, or a cleared
//! store, drops every group's index; the next read builds it again.
//!
//! Because the watcher hears of a write before it commits, the index may name a chunk a
//! reader cannot load yet (or only the version before an append): readers take what the
//! chunk holds and skip what is not there — those events were not acknowledged yet.

use super::records::{SpanDoc, parse_chunk_key};
use berth_store::{Kind, Watcher};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// One chunk, as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Span {
    pub seq: u64,
    pub stream: Arc<str>,
    pub min: i64,
    pub max: i64,
    pub n: u32,
    pub bytes: u64,
}

#[derive(Default)]
struct GroupIndex {
    /// Stream → its chunks by sequence.
    streams: HashMap<Arc<str>, BTreeMap<u64, Span>>,
    /// Sequence → stream, to find a span again when it changes.
    owner: HashMap<u64, Arc<str>>,
}

impl GroupIndex {
    fn put(&mut self, seq: u64, doc: &SpanDoc) {
        self.remove(seq);
        let stream: Arc<str> = match self.streams.get_key_value(doc.s.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(doc.s.as_str()),
        };
        self.owner.insert(seq, stream.clone());
        self.streams.entry(stream.clone()).or_default().insert(
            seq,
            Span {
                seq,
                stream,
                min: doc.a,
                max: doc.z,
                n: doc.n,
                bytes: doc.b,
            },
        );
    }

    fn remove(&mut self, seq: u64) {
        if let Some(stream) = self.owner.remove(&seq)
            && let Some(spans) = self.streams.get_mut(&stream)
        {
            spans.remove(&seq);
            if spans.is_empty() {
                self.streams.remove(&stream);
            }
        }
    }
}

/// Which streams a read wants.
pub(super) enum Streams<'a> {
    All,
    Named(&'a [String]),
    Prefix(&'a str),
}

impl Streams<'_> {
    fn wants(&self, stream: &str) -> bool {
        match self {
            Streams::All => true,
            Streams::Named(names) => names.iter().any(|n| n == stream),
            Streams::Prefix(p) => stream.starts_with(p),
        }
    }
}

/// Every built group's spans, by `(group, incarnation)`.
#[derive(Default)]
pub(super) struct SpanIndex {
    groups: Mutex<HashMap<(String, String), GroupIndex>>,
}

impl SpanIndex {
    /// Whether the group's index is built.
    pub fn built(&self, group: &str, inc: &str) -> bool {
        self.groups
            .lock()
            .expect("span index")
            .contains_key(&(group.to_string(), inc.to_string()))
    }

    /// Installs a group's index from its span records (called inside a write job).
    pub fn install(&self, group: &str, inc: &str, spans: Vec<(u64, SpanDoc)>) {
        let mut g = GroupIndex::default();
        for (seq, doc) in &spans {
            g.put(*seq, doc);
        }
        self.groups
            .lock()
            .expect("span index")
            .insert((group.to_string(), inc.to_string()), g);
    }

    /// The spans of the streams wanted that overlap `[from, to]`, and the names of those
    /// streams (with or without spans there).
    pub fn spans(
        &self,
        group: &str,
        inc: &str,
        streams: &Streams<'_>,
        from: i64,
        to: i64,
    ) -> Option<Vec<Span>> {
        let groups = self.groups.lock().expect("span index");
        let g = groups.get(&(group.to_string(), inc.to_string()))?;
        let pick = |spans: &BTreeMap<u64, Span>, out: &mut Vec<Span>| {
            out.extend(
                spans
                    .values()
                    .filter(|s| s.max >= from && s.min <= to)
                    .cloned(),
            );
        };
        let mut out = Vec::new();
        match streams {
            Streams::Named(names) => {
                for n in names.iter() {
                    if let Some(spans) = g.streams.get(n.as_str()) {
                        pick(spans, &mut out);
                    }
                }
            }
            _ => {
                for (name, spans) in &g.streams {
                    if streams.wants(name) {
                        pick(spans, &mut out);
                    }
                }
            }
        }
        Some(out)
    }

    /// Every span of one stream (all of them, whatever their time).
    pub fn stream_spans(&self, group: &str, inc: &str, stream: &str) -> Option<Vec<Span>> {
        self.spans(
            group,
            inc,
            &Streams::Named(&[stream.to_string()]),
            i64::MIN,
            i64::MAX,
        )
    }

    fn forget_group(&self, group: &str) {
        self.groups
            .lock()
            .expect("span index")
            .retain(|(g, _), _| g != group);
    }
}

/// Keeps the index in step with the store.
pub(super) struct IndexWatcher(pub Arc<SpanIndex>);

impl Watcher for IndexWatcher {
    fn watches(&self, kind: Kind) -> bool {
        matches!(kind, Kind::LogSpan | Kind::LogGroup)
    }

    fn changed(&self, kind: Kind, key: &str, doc: Option<&str>) {
        if kind == Kind::LogGroup {
            if doc.is_none() {
                self.0.forget_group(key);
            }
            return;
        }
        let Some((group, inc, seq)) = parse_chunk_key(key) else {
            return;
        };
        let mut groups = self.0.groups.lock().expect("span index");
        let Some(g) = groups.get_mut(&(group.to_string(), inc.to_string())) else {
            return; // not built: the next build reads the store
        };
        match doc.map(serde_json::from_str::<SpanDoc>) {
            Some(Ok(d)) => g.put(seq, &d),
            Some(Err(e)) => {
                tracing::warn!(key, error = %e, "an unreadable log span; rebuilding the group's index");
                groups.remove(&(group.to_string(), inc.to_string()));
            }
            None => g.remove(seq),
        }
    }

    fn reset(&self) {
        self.0.groups.lock().expect("span index").clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(s: &str, a: i64, z: i64) -> String {
        serde_json::to_string(&SpanDoc {
            s: s.into(),
            a,
            z,
            n: 1,
            b: 1,
        })
        .unwrap()
    }

    #[test]
    fn log_span_index_follows_changes_of_built_groups_only() {
        let index = Arc::new(SpanIndex::default());
        let w = IndexWatcher(index.clone());
        w.changed(
            Kind::LogSpan,
            "g\ti\t0000000000000001",
            Some(&span("a", 1, 5)),
        );
        assert!(index.spans("g", "i", &Streams::All, 0, 10).is_none());
        index.install("g", "i", vec![]);
        w.changed(
            Kind::LogSpan,
            "g\ti\t0000000000000001",
            Some(&span("a", 1, 5)),
        );
        w.changed(
            Kind::LogSpan,
            "g\ti\t0000000000000002",
            Some(&span("b", 6, 9)),
        );
        w.changed(
            Kind::LogSpan,
            "g\ti\t0000000000000001",
            Some(&span("a", 1, 7)),
        );
        let all = index.spans("g", "i", &Streams::All, 0, 100).unwrap();
        assert_eq!(all.len(), 2);
        let late = index.spans("g", "i", &Streams::All, 8, 100).unwrap();
        assert_eq!(late.len(), 1);
        assert_eq!(&*late[0].stream, "b");
        let a = index
            .spans("g", "i", &Streams::Prefix("a"), 0, 100)
            .unwrap();
        assert_eq!(a[0].max, 7);
        w.changed(Kind::LogSpan, "g\ti\t0000000000000002", None);
        assert_eq!(index.stream_spans("g", "i", "b").unwrap().len(), 0);
        w.changed(Kind::LogGroup, "g", None);
        assert!(!index.built("g", "i"));
        index.install("g", "i", vec![]);
        w.reset();
        assert!(!index.built("g", "i"));
    }
}
