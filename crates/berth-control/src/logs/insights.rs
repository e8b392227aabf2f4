//! Logs Insights: StartQuery, GetQueryResults, StopQuery, DescribeQueries over the query
//! subset of `berth-logs`.
//!
//! StartQuery checks the query and the groups, stores the query (`log-query` by id, status
//! `Running`) and runs it in the background on this server: the events of its groups in its
//! time range, in time order, through the parsed query; the rows and statistics are stored
//! with status `Complete` (or `Failed`). StopQuery marks a running query `Cancelled`, and a
//! run that ends after that stores nothing. A query still `Running` an hour after it started
//! — its server died — reads as `Timeout`, AWS's limit for a query's run. Queries are kept
//! 7 days (the retention task removes older ones), as AWS keeps their results.

use super::{Logs, group_not_found, invalid, key_of, name_error, scope_hash, token_of};
use crate::paging::Page;
use crate::records::{all, decode, load, save};
use berth_logs::{Query, QueryEvent};
use berth_store::Kind;
use berth_types::Error;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Mutex;

/// Log groups one query may read.
const MAX_GROUPS: usize = 50;
/// Queries running at once in a region (AWS's default concurrency quota).
const MAX_RUNNING: usize = 30;
/// A query's longest run.
const TIMEOUT_MS: i64 = 60 * 60_000;
/// How long finished queries are kept.
pub(super) const KEPT_MS: i64 = 7 * 86_400_000;
/// The most events one query reads.
const MAX_SCANNED: usize = 10_000_000;
/// DescribeQueries' default and largest page.
const PAGE: usize = 1_000;

/// A query's status (`QueryStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QueryStatus {
    Scheduled,
    Running,
    Complete,
    Failed,
    Cancelled,
    Timeout,
    Unknown,
}

impl QueryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            QueryStatus::Scheduled => "Scheduled",
            QueryStatus::Running => "Running",
            QueryStatus::Complete => "Complete",
            QueryStatus::Failed => "Failed",
            QueryStatus::Cancelled => "Cancelled",
            QueryStatus::Timeout => "Timeout",
            QueryStatus::Unknown => "Unknown",
        }
    }

    pub fn parse(s: &str) -> Option<QueryStatus> {
        [
            QueryStatus::Scheduled,
            QueryStatus::Running,
            QueryStatus::Complete,
            QueryStatus::Failed,
            QueryStatus::Cancelled,
            QueryStatus::Timeout,
            QueryStatus::Unknown,
        ]
        .into_iter()
        .find(|q| q.as_str() == s)
    }
}

/// A StartQuery.
#[derive(Debug, Clone, Default)]
pub struct StartQuery {
    pub groups: Vec<String>,
    /// Epoch seconds, both inclusive.
    pub start_s: i64,
    pub end_s: i64,
    pub query: String,
    pub limit: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct QueryDoc {
    id: String,
    query: String,
    groups: Vec<String>,
    start_s: i64,
    end_s: i64,
    limit: Option<usize>,
    status: QueryStatus,
    created: i64,
    #[serde(default)]
    finished: Option<i64>,
    #[serde(default)]
    rows: Vec<Vec<(String, String)>>,
    #[serde(default)]
    matched: f64,
    #[serde(default)]
    scanned: f64,
    #[serde(default)]
    bytes: f64,
}

impl QueryDoc {
    /// The status as callers see it (a run that outlived its server timed out).
    fn status_at(&self, now: i64) -> QueryStatus {
        match self.status {
            QueryStatus::Running if now - self.created > TIMEOUT_MS => QueryStatus::Timeout,
            s => s,
        }
    }
}

/// GetQueryResults' answer.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResults {
    pub status: QueryStatus,
    pub rows: Vec<Vec<(String, String)>>,
    pub records_matched: f64,
    pub records_scanned: f64,
    pub bytes_scanned: f64,
}

/// DescribeQueries' view of a query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryInfo {
    pub id: String,
    pub query: String,
    pub status: QueryStatus,
    pub created: i64,
    pub group: Option<String>,
    pub duration_ms: Option<i64>,
    pub bytes_scanned: f64,
}

/// The queries this server runs now, and those stopped while running.
#[derive(Default)]
pub(super) struct Running {
    ids: Mutex<HashSet<String>>,
}

fn not_found(id: &str) -> Error {
    Error::coded(
        "ResourceNotFoundException",
        format!("Query with id {id} does not exist."),
    )
}

impl Logs {
    /// StartQuery: the query's id.
    pub async fn query_start(&self, q: StartQuery) -> Result<String, Error> {
        if q.groups.is_empty() {
            return Err(invalid(
                "Specify at least one log group: logGroupName, logGroupNames or logGroupIdentifiers.",
            ));
        }
        if q.groups.len() > MAX_GROUPS {
            return Err(invalid(format!(
                "A query can search at most {MAX_GROUPS} log groups."
            )));
        }
        if q.end_s < q.start_s {
            return Err(invalid(
                "endTime must be greater than or equal to startTime.",
            ));
        }
        let mut parsed = Query::parse(&q.query)
            .map_err(|e| Error::coded("MalformedQueryException", e.to_string()))?;
        if let Some(n) = q.limit {
            parsed = parsed.with_default_limit(n);
        }
        for g in &q.groups {
            berth_logs::check_log_group_name(g).map_err(name_error)?;
            self.group_doc(g).map_err(|_| {
                Error::coded(
                    "ResourceNotFoundException",
                    format!(
                        "Log group '{g}' does not exist for account ID '{}'",
                        self.scope.account
                    ),
                )
            })?;
        }
        let id = uuid::Uuid::new_v4().to_string();
        {
            let mut running = self.queries.ids.lock().expect("queries");
            if running.len() >= MAX_RUNNING {
                return Err(Error::coded(
                    "LimitExceededException",
                    format!("Account maximum query concurrency limit of [{MAX_RUNNING}] reached."),
                ));
            }
            running.insert(id.clone());
        }
        let doc = QueryDoc {
            id: id.clone(),
            query: q.query.clone(),
            groups: q.groups.clone(),
            start_s: q.start_s,
            end_s: q.end_s,
            limit: q.limit,
            status: QueryStatus::Running,
            created: self.clock.now().0,
            finished: None,
            rows: Vec::new(),
            matched: 0.0,
            scanned: 0.0,
            bytes: 0.0,
        };
        let stored = doc.clone();
        if let Err(e) = self
            .store
            .write(move |tx| save(tx, Kind::LogQuery, &stored.id, None, &stored, None))
            .await
        {
            self.queries.ids.lock().expect("queries").remove(&id);
            return Err(e);
        }
        let logs = self.clone();
        tokio::spawn(async move {
            let id = doc.id.clone();
            if let Err(e) = logs.query_run(doc, parsed).await {
                tracing::warn!(query = %id, error = %e, "a Logs Insights query failed");
            }
            logs.queries.ids.lock().expect("queries").remove(&id);
        });
        Ok(id)
    }

    /// Runs a query and stores its outcome (unless it was stopped meanwhile).
    async fn query_run(&self, mut doc: QueryDoc, query: Query) -> Result<(), Error> {
        let (start, end) = (doc.start_s * 1000, doc.end_s * 1000 + 999);
        let mut events = Vec::new();
        let mut failed = None;
        for g in &doc.groups {
            match self.events_all(g, start, end, MAX_SCANNED).await {
                Ok(e) => events.push((format!("{}:{g}", self.scope.account), e)),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let out = tokio::task::spawn_blocking(move || {
            let all = events.iter().flat_map(|(log, evs)| {
                evs.iter().map(move |e| QueryEvent {
                    timestamp_ms: e.timestamp,
                    ingestion_time_ms: e.ingestion_time,
                    message: &e.message,
                    log_stream: &e.stream,
                    log,
                    ptr: None,
                })
            });
            query.run(all)
        })
        .await
        .map_err(Error::internal)?;
        doc.finished = Some(self.clock.now().0);
        match failed {
            Some(e) => {
                tracing::warn!(query = %doc.id, error = %e, "a Logs Insights query could not read its events");
                doc.status = QueryStatus::Failed;
            }
            None => {
                doc.status = QueryStatus::Complete;
                doc.rows = out.rows;
                doc.matched = out.statistics.records_matched;
                doc.scanned = out.statistics.records_scanned;
                doc.bytes = out.statistics.bytes_scanned;
            }
        }
        self.store
            .write(move |tx| {
                let Some((g, now)) = load::<QueryDoc>(tx.get(Kind::LogQuery, &doc.id)?)? else {
                    return Ok(());
                };
                if now.status != QueryStatus::Running {
                    return Ok(()); // stopped meanwhile
                }
                save(tx, Kind::LogQuery, &doc.id, None, &doc, Some(g))
            })
            .await
    }

    /// GetQueryResults.
    pub fn query_results(&self, id: &str) -> Result<QueryResults, Error> {
        let doc = self.query_doc(id)?;
        Ok(QueryResults {
            status: doc.status_at(self.clock.now().0),
            rows: doc.rows,
            records_matched: doc.matched,
            records_scanned: doc.scanned,
            bytes_scanned: doc.bytes,
        })
    }

    fn query_doc(&self, id: &str) -> Result<QueryDoc, Error> {
        match self.store.read(|r| r.get(Kind::LogQuery, id))? {
            Some(r) => decode(&r.doc, &r.key),
            None => Err(not_found(id)),
        }
    }

    /// StopQuery: whether a running query was stopped.
    pub async fn query_stop(&self, id: &str) -> Result<bool, Error> {
        let (id, now) = (id.to_string(), self.clock.now().0);
        self.store
            .write(move |tx| {
                let Some((g, mut doc)) = load::<QueryDoc>(tx.get(Kind::LogQuery, &id)?)? else {
                    return Err(not_found(&id));
                };
                if doc.status_at(now) != QueryStatus::Running {
                    return Ok(false);
                }
                doc.status = QueryStatus::Cancelled;
                doc.finished = Some(now);
                save(tx, Kind::LogQuery, &id, None, &doc, Some(g))?;
                Ok(true)
            })
            .await
    }

    /// DescribeQueries: newest first.
    pub fn queries_describe(
        &self,
        group: Option<&str>,
        status: Option<QueryStatus>,
        max: Option<usize>,
        token: Option<&str>,
    ) -> Result<Page<QueryInfo>, Error> {
        if let Some(g) = group {
            berth_logs::check_log_group_name(g).map_err(name_error)?;
            if self.group_doc(g).is_err() {
                return Err(group_not_found());
            }
        }
        let now = self.clock.now().0;
        let mut docs: Vec<QueryDoc> = self
            .store
            .read(|r| all::<QueryDoc>(r, Kind::LogQuery, ""))?
            .into_iter()
            .map(|(_, d)| d)
            .filter(|d| group.is_none_or(|g| d.groups.iter().any(|x| x == g)))
            .filter(|d| status.is_none_or(|s| d.status_at(now) == s))
            .collect();
        docs.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
        let scope = format!(
            "DescribeQueries:{}",
            scope_hash(&[group.unwrap_or(""), status.map_or("", QueryStatus::as_str)])
        );
        let start = match token {
            Some(t) => {
                let last = key_of(&self.pager, &scope, t)?;
                docs.iter()
                    .position(|d| d.id == last)
                    .map_or(docs.len(), |i| i + 1)
            }
            None => 0,
        };
        let max = max.unwrap_or(PAGE).clamp(1, PAGE);
        let items: Vec<QueryInfo> = docs[start..]
            .iter()
            .take(max)
            .map(|d| QueryInfo {
                id: d.id.clone(),
                query: d.query.clone(),
                status: d.status_at(now),
                created: d.created,
                group: d.groups.first().cloned(),
                duration_ms: d.finished.map(|f| f - d.created),
                bytes_scanned: d.bytes,
            })
            .collect();
        let next_token = (start + items.len() < docs.len())
            .then(|| items.last().map(|i| token_of(&self.pager, &scope, &i.id)))
            .flatten();
        Ok(Page { items, next_token })
    }

    /// Removes queries older than [`KEPT_MS`]; how many.
    pub(super) async fn queries_expire(&self) -> Result<u64, Error> {
        let cutoff = self.clock.now().0 - KEPT_MS;
        let old: Vec<String> = self
            .store
            .read(|r| all::<QueryDoc>(r, Kind::LogQuery, ""))?
            .into_iter()
            .filter(|(_, d)| d.created < cutoff)
            .map(|(k, _)| k)
            .collect();
        let n = old.len() as u64;
        if n > 0 {
            self.store
                .write(move |tx| {
                    for k in &old {
                        if let Some(r) = tx.get(Kind::LogQuery, k)? {
                            tx.delete(Kind::LogQuery, k, r.generation)?;
                        }
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(n)
    }
}
