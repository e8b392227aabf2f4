//! What a database engine provides to the [`Store`](crate::Store): the record reads on one
//! connection, on keys as stored (region prefix included), and for the writer transactions
//! that end by writing a batch's net changes ([`WriteConn::apply`]), with savepoints for the
//! jobs that write to the database directly. Group commit, the read cache, watchers and
//! regions are the store's and the same for every engine; `sqlite.rs` is the embedded engine,
//! `postgres.rs` the shared one.

use crate::{Kind, Lease, ListQuery, Record, StoreError};
use berth_types::Generation;

/// The reads of one connection (inside the writer's transaction, or a reader's).
pub(crate) trait ReadConn {
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError>;
    /// Keys in byte order (descending when asked), after `q.after`, at most `q.limit`.
    fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, StoreError>;
    /// The distinct regions of region-prefixed keys.
    fn regions(&self) -> Result<Vec<String>, StoreError>;
    /// The revision of the last committed batch that changed records (0 before any).
    fn revision(&self) -> Result<u64, StoreError>;
    /// The change rows of revisions `after + 1 ..= upto`, in order; `None` when some of them
    /// were pruned (the reader must start over from the records).
    fn changes(&self, after: u64, upto: u64) -> Result<Option<Vec<(u64, String)>>, StoreError>;
    /// Every lease, with the time left by the database's clock.
    fn leases(&self) -> Result<Vec<Lease>, StoreError>;
}

/// One record's net change in a batch, as its commit writes it.
#[derive(Debug)]
pub(crate) struct Write<'a> {
    pub kind: Kind,
    pub key: &'a str,
    /// The generation the record must have (`None`: there must be no record).
    pub expected: Option<Generation>,
    /// What it becomes (`None`: it is deleted).
    pub now: Option<&'a Record>,
}

/// The writer's connection: one transaction per batch, its records' net changes written at
/// its end, and savepoints for the jobs that write to the database directly.
pub(crate) trait WriteConn: ReadConn + Send {
    /// Writes every change, each conditional on the record's generation (or absence); fails
    /// with [`StoreError::Diverged`] — and the batch with it — if one does not hold.
    fn apply(&self, writes: &[Write<'_>]) -> Result<(), StoreError>;
    fn delete_all(&self) -> Result<(), StoreError>;
    /// Prefixes with `region` every key without a region, except those of `shared` kinds;
    /// returns how many records moved.
    fn assign_region(&self, region: &str, shared: &[Kind]) -> Result<usize, StoreError>;
    /// Opens the batch's transaction holding the store-wide commit lock (so batches of all
    /// servers sharing the database commit one at a time, in revision order); the current
    /// revision.
    fn begin(&mut self) -> Result<u64, StoreError>;
    /// Records revision `rev` (the current one + 1) and its change row.
    fn append_change(&self, rev: u64, changes: &str) -> Result<(), StoreError>;
    /// Forgets the change rows below `rev`.
    fn prune_changes(&self, below: u64) -> Result<(), StoreError>;
    /// Takes or renews lease `name` for `holder` for `ttl_ms` by the database's clock, unless
    /// another holder's lease has not expired; the epoch held (bumped when the holder changes).
    fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<u64>, StoreError>;
    /// Ends `holder`'s lease `name` now, if it holds it.
    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    fn commit(&mut self) -> Result<(), StoreError>;
    /// Abandons the open transaction, if any.
    fn rollback(&mut self);
    fn savepoint(&self) -> Result<(), StoreError>;
    fn release(&self) -> Result<(), StoreError>;
    fn rollback_to_savepoint(&self) -> Result<(), StoreError>;
}

/// A listing's SQL text for every engine: `mark(n)` writes the n-th placeholder, and the
/// parameters go in the order kind, prefix, [`prefix_end`] of the prefix, then `q.status` and
/// `q.after` when present. One text per combination of filters (parameters that only switch a
/// clause on or off make planners re-plan); the limit is inlined, an integer of ours.
pub(crate) fn list_sql(q: &ListQuery<'_>, mark: impl Fn(usize) -> String) -> String {
    let (cmp, order) = if q.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let mut sql = format!(
        "SELECT key, generation, status, doc FROM records WHERE kind = {} AND key >= {} AND key < {}",
        mark(1),
        mark(2),
        mark(3)
    );
    let mut n = 3;
    if q.status.is_some() {
        n += 1;
        sql.push_str(&format!(" AND status = {}", mark(n)));
    }
    if q.after.is_some() {
        n += 1;
        sql.push_str(&format!(" AND key {cmp} {}", mark(n)));
    }
    // SQL's LIMIT is a signed 64-bit integer.
    let limit = q.limit.min(i64::MAX as usize);
    sql.push_str(&format!(" ORDER BY key {order} LIMIT {limit}"));
    sql
}

/// The statement that takes or renews a lease (parameters: name, holder, TTL in ms), with
/// `now` the engine's clock in Unix milliseconds: a new holder gets the next epoch, the
/// same holder keeps its epoch, and a lease another holder has not let expire is untouched
/// (no row returned).
pub(crate) fn lease_sql(now: &str, mark: impl Fn(usize) -> String) -> String {
    let (name, holder, ttl) = (mark(1), mark(2), mark(3));
    format!(
        "INSERT INTO berth_leases AS l (name, holder, epoch, expires_ms)
         VALUES ({name}, {holder}, 1, {now} + {ttl})
         ON CONFLICT (name) DO UPDATE SET
             epoch = CASE WHEN l.holder = excluded.holder THEN l.epoch ELSE l.epoch + 1 END,
             holder = excluded.holder,
             expires_ms = excluded.expires_ms
         WHERE l.holder = excluded.holder OR l.expires_ms < {now}
         RETURNING epoch"
    )
}

/// The change rows of `after + 1 ..= upto` if none is missing.
pub(crate) fn contiguous(
    rows: Vec<(u64, String)>,
    after: u64,
    upto: u64,
) -> Option<Vec<(u64, String)>> {
    let whole = rows.len() as u64 == upto.saturating_sub(after)
        && rows
            .iter()
            .zip(after + 1..)
            .all(|((rev, _), want)| *rev == want);
    whole.then_some(rows)
}

/// Every key starting with `prefix` sorts below this (bytewise: U+10FFFF is the largest
/// character).
pub(crate) fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// An engine: where reader connections come from.
pub(crate) trait Engine: Send + Sync {
    fn reader(&self) -> Result<Box<dyn ReadConn + Send>, StoreError>;
}

/// An opened engine: the writer's connection, and where readers come from.
pub(crate) struct Opened {
    pub writer: Box<dyn WriteConn>,
    pub engine: Box<dyn Engine>,
}
