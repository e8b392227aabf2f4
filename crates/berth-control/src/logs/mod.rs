//! CloudWatch Logs of one region: log groups (retention, class, tags — [`groups`]), log
//! streams ([`streams`]), events — ingest ([`ingest`]) and reads by stream, by group with a
//! filter pattern, and for Insights ([`read`]) — metric filters publishing to CloudWatch
//! ([`metric_filters`]), Logs Insights queries ([`insights`]) and the retention task that
//! expires events and sweeps what deleted groups and streams left ([`retention`]). The
//! languages and rules are `berth-logs`'; storage is described in [`records`].
//!
//! Time is the region's [`Clock`] (CloudWatch's: `--time-scale` runs it faster for tests).
//! Errors carry Logs' codes (`ResourceNotFoundException`, `InvalidParameterException`, …) as
//! [`Error::Coded`]; `berth-api` renders them.

mod groups;
mod index;
mod ingest;
mod insights;
mod metric_filters;
mod read;
mod records;
mod retention;
mod streams;

pub use groups::{CreateGroup, GroupFilter, LogGroupView};
pub use ingest::{BatchId, PutOutcome};
pub use insights::{QueryInfo, QueryResults, QueryStatus, StartQuery};
pub use metric_filters::{FilterMatch, MAX_FILTERS, MetricFilterFilter, metric_filter_test};
pub use read::{EventsPage, FilterEvents, FilterPage, GetEvents, LogEvent};
pub use records::{GroupClass, MetricFilter, MetricTransformation};
pub use streams::{StreamFilter, StreamOrder, StreamView};

use crate::background::Driver;
use crate::clock::Clock;
use crate::cloudwatch::CloudWatch;
use crate::paging::Pager;
use crate::records::decode;
use berth_store::{Kind, ListQuery, Store};
use berth_types::{Error, Scope};
use std::sync::Arc;

/// CloudWatch Logs of one region. Cheap to clone.
#[derive(Clone)]
pub struct Logs {
    scope: Scope,
    store: Store,
    pager: Pager,
    clock: Clock,
    cloudwatch: CloudWatch,
    index: Arc<index::SpanIndex>,
    queries: Arc<insights::Running>,
    background: Arc<Driver>,
}

impl Logs {
    /// CloudWatch Logs over `store` (one region's partition), publishing metric filters'
    /// metrics to `cloudwatch`.
    pub fn new(
        scope: Scope,
        store: Store,
        pager: Pager,
        clock: Clock,
        cloudwatch: CloudWatch,
        background: Arc<Driver>,
    ) -> Logs {
        let index = Arc::new(index::SpanIndex::default());
        store.watch(Arc::new(index::IndexWatcher(index.clone())));
        Logs {
            scope,
            store,
            pager,
            clock,
            cloudwatch,
            index,
            queries: Default::default(),
            background,
        }
    }

    /// The same handle, writing only while `fence` holds (a controller's term).
    pub fn fenced(&self, fence: Option<&berth_store::Fence>) -> Self {
        let mut h = self.clone();
        if let Some(f) = fence {
            h.store = h.store.fenced(f.clone());
        }
        h
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// `arn:aws:logs:<region>:<account>:log-group:<name>` (no trailing `:*`).
    pub fn group_arn(&self, name: &str) -> String {
        self.scope.arn("logs", &format!("log-group:{name}"))
    }

    /// `…:log-group:<group>:log-stream:<stream>`.
    pub fn stream_arn(&self, group: &str, stream: &str) -> String {
        self.scope
            .arn("logs", &format!("log-group:{group}:log-stream:{stream}"))
    }

    /// The group a `logGroupIdentifier` names: a name, or a log group ARN of this account and
    /// region (with or without the trailing `:*`).
    pub fn group_of_identifier(&self, identifier: &str) -> Result<String, Error> {
        if !identifier.starts_with("arn:") {
            return Ok(identifier.to_string());
        }
        let prefix = self.scope.arn("logs", "log-group:");
        match identifier.strip_prefix(&prefix) {
            Some(rest) => Ok(rest.strip_suffix(":*").unwrap_or(rest).to_string()),
            None => Err(invalid(format!(
                "The specified log group identifier {identifier} is not a log group of this account and region."
            ))),
        }
    }

    /// The group's record, or Logs' not-found error.
    fn group_doc(&self, name: &str) -> Result<records::GroupDoc, Error> {
        let rec = self.store.read(|r| r.get(Kind::LogGroup, name))?;
        match rec {
            Some(r) => decode(&r.doc, &r.key),
            None => Err(group_not_found()),
        }
    }

    /// The spans of `group` (incarnation `inc`) that a read wants, building the group's
    /// index first if needed.
    async fn spans_for(
        &self,
        group: &str,
        inc: &str,
        streams: &index::Streams<'_>,
        from: i64,
        to: i64,
    ) -> Result<Vec<index::Span>, Error> {
        loop {
            if let Some(s) = self.index.spans(group, inc, streams, from, to) {
                return Ok(s);
            }
            self.build_index(group, inc).await?;
        }
    }

    /// Builds a group's span index inside a write job, so no change is missed between the
    /// listing and the watcher's next call.
    async fn build_index(&self, group: &str, inc: &str) -> Result<(), Error> {
        let (index, group, inc) = (self.index.clone(), group.to_string(), inc.to_string());
        self.store
            .write(move |tx| {
                if index.built(&group, &inc) {
                    return Ok(());
                }
                let prefix = records::chunk_prefix(&group, &inc);
                let spans = tx
                    .list(
                        Kind::LogSpan,
                        &ListQuery {
                            prefix: &prefix,
                            limit: usize::MAX >> 1,
                            ..Default::default()
                        },
                    )?
                    .into_iter()
                    .filter_map(|r| {
                        let (_, _, seq) = records::parse_chunk_key(&r.key)?;
                        Some(decode::<records::SpanDoc>(&r.doc, &r.key).map(|d| (seq, d)))
                    })
                    .collect::<Result<Vec<_>, Error>>()?;
                index.install(&group, &inc, spans);
                Ok(())
            })
            .await
    }
}

/// `InvalidParameterException`.
pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::coded("InvalidParameterException", message)
}

pub(crate) fn group_not_found() -> Error {
    Error::coded(
        "ResourceNotFoundException",
        "The specified log group does not exist.",
    )
}

pub(crate) fn stream_not_found() -> Error {
    Error::coded(
        "ResourceNotFoundException",
        "The specified log stream does not exist.",
    )
}

/// A name or retention value Logs refuses.
pub fn name_error(e: berth_logs::NameError) -> Error {
    invalid(e.to_string())
}

/// Logs' answer to a token it did not issue for this listing.
fn invalid_token() -> Error {
    invalid("The specified nextToken is invalid.")
}

/// A page token of `scope` for `last_key`.
fn token_of(pager: &Pager, scope: &str, last: &str) -> String {
    pager.encode(scope, last)
}

/// The last key a page token of `scope` carries.
fn key_of(pager: &Pager, scope: &str, token: &str) -> Result<String, Error> {
    pager.decode(scope, token).map_err(|_| invalid_token())
}

/// A short, stable name of what a token belongs to (names can be long).
fn scope_hash(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests;
