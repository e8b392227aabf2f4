//! The embedded backend: SQLite in WAL mode, one writer thread with group commit, a pool of
//! reader connections.

use crate::{Kind, ListQuery, Read, Record, StoreError, Watcher};
use berth_types::{Error, Generation};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, mpsc};
use tokio::sync::oneshot;

/// Schema migrations, applied in order at start-up; `PRAGMA user_version` counts them.
const MIGRATIONS: &[&str] = &["CREATE TABLE records (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        generation INTEGER NOT NULL,
        status TEXT,
        doc TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    CREATE INDEX records_by_status ON records (kind, status, key);"];

/// The writer connection's page cache, KiB.
const WRITER_CACHE_KIB: i64 = 32 * 1024;

/// Most jobs folded into one commit.
const MAX_BATCH: usize = 512;

type Job = Box<dyn FnOnce(&mut Tx<'_>) -> Completion + Send>;
type Completion = Box<dyn FnOnce(Result<(), Error>) + Send>;

/// Committed records recently read, so hot point reads skip SQLite. The writer removes every
/// key it touched (and bumps `epoch`) after each commit and before acknowledging it; a reader
/// caches what it read only if no commit happened since it looked, so the cache never holds a
/// value older than the last acknowledged write.
#[derive(Default)]
struct Cache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    epoch: u64,
    records: HashMap<Kind, HashMap<String, Record>>,
    len: usize,
}

/// Records kept at most; past it the cache starts over.
const CACHE_RECORDS: usize = 50_000;
/// Larger documents are not cached (the cache stays within ~50,000 × 16 KiB).
const CACHE_MAX_DOC: usize = 16 * 1024;

impl Cache {
    fn lookup(&self, kind: Kind, key: &str) -> Result<Record, u64> {
        let inner = self.inner.lock().expect("cache lock");
        match inner.records.get(&kind).and_then(|m| m.get(key)) {
            Some(r) => Ok(r.clone()),
            None => Err(inner.epoch),
        }
    }

    fn fill(&self, kind: Kind, record: &Record, epoch: u64) {
        if record.doc.len() > CACHE_MAX_DOC {
            return;
        }
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.epoch != epoch {
            return;
        }
        if inner.len >= CACHE_RECORDS {
            inner.records.clear();
            inner.len = 0;
        }
        if inner
            .records
            .entry(kind)
            .or_default()
            .insert(record.key.clone(), record.clone())
            .is_none()
        {
            inner.len += 1;
        }
    }

    fn invalidate(&self, touched: &[(Kind, String)], everything: bool) {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.epoch += 1;
        if everything {
            inner.records.clear();
            inner.len = 0;
            return;
        }
        for (kind, key) in touched {
            if let Some(m) = inner.records.get_mut(kind)
                && m.remove(key).is_some()
            {
                inner.len -= 1;
            }
        }
    }
}

/// The embedded store, as one region sees it. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// The region regional records are read and written in (`None`: a server-wide handle,
    /// which sees regional keys with their region prefix).
    region: Option<Arc<str>>,
}

/// Separates a regional record's region from its key (no name or id contains a tab).
const REGION_SEP: char = '\t';

/// The key a record of `kind` is stored under in `region`.
fn stored_key<'a>(
    region: &Option<Arc<str>>,
    kind: Kind,
    key: &'a str,
) -> std::borrow::Cow<'a, str> {
    match region {
        Some(r) if kind.is_regional() => format!("{r}{REGION_SEP}{key}").into(),
        _ => key.into(),
    }
}

/// A stored record's key as its region sees it.
fn region_key(region: &Option<Arc<str>>, kind: Kind, mut r: Record) -> Record {
    if let Some(reg) = region
        && kind.is_regional()
        && let Some(rest) = r
            .key
            .strip_prefix(&**reg)
            .and_then(|k| k.strip_prefix(REGION_SEP))
    {
        r.key = rest.to_string();
    }
    r
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    readers: Mutex<Vec<Connection>>,
    cache: Arc<Cache>,
    watchers: Watchers,
}

type Watchers = Arc<RwLock<Vec<Arc<dyn Watcher>>>>;

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the database at `path` and runs pending migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let mut conn = open_connection(path)?;
        // The writer walks the B-trees of every write: a larger page cache than SQLite's 2 MiB
        // default spares it re-reading pages from the OS (allocated only as pages are used).
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew {
                found: version,
                known,
            });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i as i64 + 1)?;
            tx.commit()?;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let cache = Arc::new(Cache::default());
        let writer_cache = cache.clone();
        let watchers = Watchers::default();
        let writer_watchers = watchers.clone();
        std::thread::Builder::new()
            .name("berth-store-writer".into())
            .spawn(move || writer_loop(conn, rx, &writer_cache, &writer_watchers))
            .map_err(|e| {
                StoreError::Sqlite(rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(Some(tx)),
                readers: Mutex::new(Vec::new()),
                cache,
                watchers,
            }),
            region: None,
        })
    }

    /// The same store as region `region` sees it.
    pub fn in_region(&self, region: &str) -> Store {
        Store {
            inner: self.inner.clone(),
            region: Some(region.into()),
        }
    }

    /// The regions that have records.
    pub fn regions(&self) -> Result<Vec<String>, Error> {
        let unscoped = Store {
            inner: self.inner.clone(),
            region: None,
        };
        unscoped.read(|r| {
            let mut stmt = r
                .conn
                .prepare(
                    "SELECT DISTINCT substr(key, 1, instr(key, char(9)) - 1) FROM records
                     WHERE instr(key, char(9)) > 0",
                )
                .map_err(StoreError::from)?;
            let rows = stmt
                .query_map([], |row| row.get::<_, String>(0))
                .map_err(StoreError::from)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| StoreError::from(e).into())
        })
    }

    /// Gives records of regional kinds written before regions existed (no region in their
    /// key) to `region`: a data directory's resources stay where its server's `--region` put
    /// them. Idempotent; a no-op once done.
    pub async fn assign_home_region(&self, region: &str) -> Result<usize, Error> {
        let region = region.to_string();
        let global: Vec<&'static str> = [Kind::Content, Kind::Meta]
            .iter()
            .map(|k| k.as_str())
            .collect();
        let unscoped = Store {
            inner: self.inner.clone(),
            region: None,
        };
        unscoped
            .write(move |tx| {
                let n = tx
                    .conn
                    .execute(
                        "UPDATE records SET key = ?1 || char(9) || key
                         WHERE instr(key, char(9)) = 0 AND kind NOT IN (?2, ?3)",
                        params![region, global[0], global[1]],
                    )
                    .map_err(StoreError::from)?;
                if n > 0 {
                    *tx.cleared = true;
                }
                Ok(n)
            })
            .await
    }

    /// Runs `f` in a write transaction and returns its result once the transaction is durable.
    /// If `f` fails, nothing it wrote is kept.
    pub async fn write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, Error> + Send + 'static,
    {
        let (done, wait) = oneshot::channel::<Result<T, Error>>();
        let region = self.region.clone();
        let job: Job = Box::new(move |tx: &mut Tx<'_>| {
            tx.region = region;
            let result = tx.savepoint(f);
            Box::new(move |committed: Result<(), Error>| {
                let _ = done.send(committed.and(result));
            })
        });
        let sender = self
            .inner
            .writer
            .lock()
            .expect("writer lock")
            .clone()
            .ok_or_else(|| Error::from(StoreError::Closed))?;
        sender
            .send(job)
            .map_err(|_| Error::from(StoreError::Closed))?;
        wait.await.map_err(|_| Error::from(StoreError::Closed))?
    }

    /// Runs `f` on a reader connection. Reads are short point or range queries; they run on the
    /// calling thread.
    pub fn read<T>(&self, f: impl FnOnce(&Reader<'_>) -> Result<T, Error>) -> Result<T, Error> {
        let conn = self.inner.readers.lock().expect("reader pool").pop();
        let conn = match conn {
            Some(c) => c,
            None => open_connection(&self.inner.path).map_err(StoreError::from)?,
        };
        let result = f(&Reader {
            conn: &conn,
            cache: &self.inner.cache,
            region: &self.region,
        });
        let mut pool = self.inner.readers.lock().expect("reader pool");
        if pool.len() < 16 {
            pool.push(conn);
        }
        result
    }

    /// Registers a [`Watcher`]; it sees every change of this handle's region (its keys
    /// without the region) written from the next batch on.
    pub fn watch(&self, watcher: Arc<dyn Watcher>) {
        let watcher: Arc<dyn Watcher> = match &self.region {
            Some(region) => Arc::new(RegionalWatcher {
                prefix: format!("{region}{REGION_SEP}"),
                inner: watcher,
            }),
            None => watcher,
        };
        self.inner
            .watchers
            .write()
            .expect("watchers lock")
            .push(watcher);
    }

    /// Stops the writer after the jobs already queued; later writes fail with `Closed`.
    pub fn close(&self) {
        self.inner.writer.lock().expect("writer lock").take();
    }
}

/// A watcher of one region: sees that region's changes of regional kinds, keys unprefixed.
struct RegionalWatcher {
    prefix: String,
    inner: Arc<dyn Watcher>,
}

impl Watcher for RegionalWatcher {
    fn watches(&self, kind: Kind) -> bool {
        self.inner.watches(kind)
    }
    fn changed(&self, kind: Kind, key: &str, doc: Option<&str>) {
        if !kind.is_regional() {
            self.inner.changed(kind, key, doc);
        } else if let Some(rest) = key.strip_prefix(&self.prefix) {
            self.inner.changed(kind, rest, doc);
        }
    }
    fn reset(&self) {
        self.inner.reset();
    }
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>, cache: &Cache, watchers: &Watchers) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let mut done: Vec<Completion> = Vec::with_capacity(batch.len());
        let mut touched: Vec<(Kind, String)> = Vec::new();
        let mut cleared = false;
        let watching = watchers.read().expect("watchers lock").clone();
        let outcome = (|| -> rusqlite::Result<()> {
            let txn = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut tx = Tx {
                    conn: &txn,
                    touched: &mut touched,
                    cleared: &mut cleared,
                    watchers: &watching,
                    changes: Vec::new(),
                    region: None,
                };
                for job in batch.drain(..) {
                    done.push(job(&mut tx));
                }
            }
            txn.commit()
        })();
        cache.invalidate(&touched, cleared);
        if outcome.is_err() || cleared {
            for w in &watching {
                w.reset();
            }
        }
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "store commit failed; the batch is lost and reported as failed");
        }
        for complete in done {
            complete(outcome.as_ref().map(|_| ()).map_err(Error::internal));
        }
    }
}

/// Record reads shared by [`Tx`] and [`Reader`].
fn get(conn: &Connection, kind: Kind, key: &str) -> Result<Option<Record>, Error> {
    let mut stmt = conn
        .prepare_cached("SELECT generation, status, doc FROM records WHERE kind = ?1 AND key = ?2")
        .map_err(StoreError::from)?;
    stmt.query_row(params![kind.as_str(), key], |r| {
        Ok(Record {
            key: key.to_string(),
            generation: Generation(r.get::<_, i64>(0)? as u64),
            status: r.get(1)?,
            doc: r.get(2)?,
        })
    })
    .optional()
    .map_err(|e| StoreError::from(e).into())
}

fn list(conn: &Connection, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, Error> {
    // Every key starting with the prefix sorts below `prefix || U+10FFFF`.
    let upper = format!("{}\u{10FFFF}", q.prefix);
    let (cmp, order) = if q.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    // One SQL text per combination of filters: parameters that only switch a clause on or off
    // would make SQLite re-plan (re-prepare) the statement on every execution.
    let mut sql = String::from(
        "SELECT key, generation, status, doc FROM records WHERE kind = ?1 AND key >= ?2 AND key < ?3",
    );
    let kind_name = kind.as_str();
    let mut values: Vec<&dyn rusqlite::ToSql> = vec![&kind_name, &q.prefix, &upper];
    if let Some(status) = &q.status {
        values.push(status);
        sql.push_str(&format!(" AND status = ?{}", values.len()));
    }
    if let Some(after) = &q.after {
        values.push(after);
        sql.push_str(&format!(" AND key {cmp} ?{}", values.len()));
    }
    // The limit is inlined too: SQLite's planner reads a bound LIMIT, which likewise forces a
    // re-prepare per execution. It is an integer of ours, never caller text.
    sql.push_str(&format!(" ORDER BY key {order} LIMIT {}", q.limit));
    let mut stmt = conn.prepare_cached(&sql).map_err(StoreError::from)?;
    let rows = stmt
        .query_map(values.as_slice(), |r| {
            Ok(Record {
                key: r.get(0)?,
                generation: Generation(r.get::<_, i64>(1)? as u64),
                status: r.get(2)?,
                doc: r.get(3)?,
            })
        })
        .map_err(StoreError::from)?;
    rows.collect::<rusqlite::Result<Vec<_>>>()
        .map_err(|e| StoreError::from(e).into())
}

/// A write transaction (one savepoint of a group commit).
pub struct Tx<'c> {
    conn: &'c Connection,
    /// Keys written in this batch: removed from the read cache after the commit.
    touched: &'c mut Vec<(Kind, String)>,
    cleared: &'c mut bool,
    watchers: &'c [Arc<dyn Watcher>],
    /// The current job's changes of watched kinds, delivered when it succeeds.
    changes: Vec<(Kind, String, Option<String>)>,
    /// The current job's region.
    region: Option<Arc<str>>,
}

impl Tx<'_> {
    fn savepoint<T>(
        &mut self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        self.conn
            .execute_batch("SAVEPOINT job")
            .map_err(StoreError::from)?;
        let result = f(self);
        let end = if result.is_ok() {
            "RELEASE job"
        } else {
            "ROLLBACK TO job; RELEASE job"
        };
        let changes = std::mem::take(&mut self.changes);
        self.conn.execute_batch(end).map_err(StoreError::from)?;
        if result.is_ok() {
            for (kind, key, doc) in &changes {
                for w in self.watchers.iter().filter(|w| w.watches(*kind)) {
                    w.changed(*kind, key, doc.as_deref());
                }
            }
        }
        result
    }

    /// Notes a change for the watchers of `kind`.
    fn changed(&mut self, kind: Kind, key: &str, doc: Option<&str>) {
        self.touched.push((kind, key.to_string()));
        if self.watchers.iter().any(|w| w.watches(kind)) {
            self.changes
                .push((kind, key.to_string(), doc.map(str::to_string)));
        }
    }

    pub fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, Error> {
        let stored = stored_key(&self.region, kind, key);
        Ok(get(self.conn, kind, &stored)?.map(|r| region_key(&self.region, kind, r)))
    }

    pub fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, Error> {
        list_in(self.conn, &self.region, kind, q)
    }

    /// Creates a record; `Conflict` if one exists under that key.
    pub fn insert(
        &mut self,
        kind: Kind,
        key: &str,
        status: Option<&str>,
        doc: &str,
    ) -> Result<Generation, Error> {
        let key = stored_key(&self.region, kind, key);
        let n = self
            .conn
            .prepare_cached(
                "INSERT INTO records (kind, key, generation, status, doc) VALUES (?1, ?2, 1, ?3, ?4)
                 ON CONFLICT DO NOTHING",
            )
            .and_then(|mut s| s.execute(params![kind.as_str(), &*key, status, doc]))
            .map_err(StoreError::from)?;
        if n == 0 {
            return Err(Error::Conflict);
        }
        self.changed(kind, &key, Some(doc));
        Ok(Generation(1))
    }

    /// Replaces a record if it is still at `expected`; `Conflict` otherwise.
    pub fn update(
        &mut self,
        kind: Kind,
        key: &str,
        expected: Generation,
        status: Option<&str>,
        doc: &str,
    ) -> Result<Generation, Error> {
        let key = stored_key(&self.region, kind, key);
        let n = self
            .conn
            .prepare_cached(
                "UPDATE records SET generation = generation + 1, status = ?3, doc = ?4
                 WHERE kind = ?1 AND key = ?2 AND generation = ?5",
            )
            .and_then(|mut s| {
                s.execute(params![
                    kind.as_str(),
                    &*key,
                    status,
                    doc,
                    expected.0 as i64
                ])
            })
            .map_err(StoreError::from)?;
        if n == 0 {
            return Err(Error::Conflict);
        }
        self.changed(kind, &key, Some(doc));
        Ok(Generation(expected.0 + 1))
    }

    /// Deletes a record if it is still at `expected`.
    pub fn delete(&mut self, kind: Kind, key: &str, expected: Generation) -> Result<(), Error> {
        let key = stored_key(&self.region, kind, key);
        let n = self
            .conn
            .prepare_cached("DELETE FROM records WHERE kind = ?1 AND key = ?2 AND generation = ?3")
            .and_then(|mut s| s.execute(params![kind.as_str(), &*key, expected.0 as i64]))
            .map_err(StoreError::from)?;
        if n == 0 {
            return Err(Error::Conflict);
        }
        self.changed(kind, &key, None);
        Ok(())
    }

    /// Removes every record (the `--ephemeral` reset).
    pub fn delete_all(&mut self) -> Result<(), Error> {
        self.conn
            .execute("DELETE FROM records", [])
            .map_err(StoreError::from)?;
        *self.cleared = true;
        Ok(())
    }
}

/// A read-only view.
pub struct Reader<'c> {
    conn: &'c Connection,
    cache: &'c Cache,
    region: &'c Option<Arc<str>>,
}

impl Reader<'_> {
    /// A point read, served from the cache when it can be.
    pub fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, Error> {
        let stored = stored_key(self.region, kind, key);
        let epoch = match self.cache.lookup(kind, &stored) {
            Ok(hit) => return Ok(Some(region_key(self.region, kind, hit))),
            Err(epoch) => epoch,
        };
        let found = get(self.conn, kind, &stored)?;
        if let Some(r) = &found {
            self.cache.fill(kind, r, epoch);
        }
        Ok(found.map(|r| region_key(self.region, kind, r)))
    }

    pub fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, Error> {
        list_in(self.conn, self.region, kind, q)
    }
}

/// A listing in `region`: the prefix and the `after` key are the region's, and so are the
/// keys returned.
fn list_in(
    conn: &Connection,
    region: &Option<Arc<str>>,
    kind: Kind,
    q: &ListQuery<'_>,
) -> Result<Vec<Record>, Error> {
    if region.is_none() || !kind.is_regional() {
        return list(conn, kind, q);
    }
    let prefix = stored_key(region, kind, q.prefix);
    let after = q.after.map(|a| stored_key(region, kind, a));
    let scoped = ListQuery {
        prefix: &prefix,
        after: after.as_deref(),
        status: q.status,
        descending: q.descending,
        limit: q.limit,
    };
    Ok(list(conn, kind, &scoped)?
        .into_iter()
        .map(|r| region_key(region, kind, r))
        .collect())
}

impl Read for Tx<'_> {
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, Error> {
        Tx::get(self, kind, key)
    }
    fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, Error> {
        Tx::list(self, kind, q)
    }
}

impl Read for Reader<'_> {
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, Error> {
        Reader::get(self, kind, key)
    }
    fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, Error> {
        Reader::list(self, kind, q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("berth.db")).unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn store_conditional_writes_compare_generations() {
        let (_dir, store) = store();
        let g = store
            .write(|tx| tx.insert(Kind::Cluster, "a", Some("ACTIVE"), "{}"))
            .await
            .unwrap();
        assert_eq!(g, Generation(1));
        let again = store
            .write(|tx| tx.insert(Kind::Cluster, "a", None, "{}"))
            .await;
        assert_eq!(again, Err(Error::Conflict));
        let g2 = store
            .write(move |tx| tx.update(Kind::Cluster, "a", g, None, "{\"x\":1}"))
            .await
            .unwrap();
        assert_eq!(g2, Generation(2));
        let stale = store
            .write(move |tx| tx.update(Kind::Cluster, "a", g, None, "{}"))
            .await;
        assert_eq!(stale, Err(Error::Conflict));
        let rec = store.read(|r| r.get(Kind::Cluster, "a")).unwrap().unwrap();
        assert_eq!(
            (rec.generation, rec.doc.as_str(), rec.status),
            (Generation(2), "{\"x\":1}", None)
        );
    }

    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Watcher for Log {
        fn watches(&self, kind: Kind) -> bool {
            kind == Kind::Meta
        }
        fn changed(&self, _: Kind, key: &str, doc: Option<&str>) {
            self.0.lock().unwrap().push(format!("{key}={doc:?}"));
        }
        fn reset(&self) {
            self.0.lock().unwrap().push("reset".into());
        }
    }

    #[tokio::test]
    async fn store_watchers_see_only_successful_jobs_in_order() {
        let (_dir, store) = store();
        let log = Arc::new(Log::default());
        store.watch(log.clone());
        let g = store
            .write(|tx| {
                tx.insert(Kind::Cluster, "unwatched", None, "{}")?;
                tx.insert(Kind::Meta, "a", None, "1")
            })
            .await
            .unwrap();
        let failed = store
            .write(|tx| {
                tx.insert(Kind::Meta, "b", None, "2")?;
                Err::<(), _>(Error::Conflict)
            })
            .await;
        assert_eq!(failed, Err(Error::Conflict));
        store
            .write(move |tx| {
                tx.update(Kind::Meta, "a", g, None, "3")?;
                tx.delete(Kind::Meta, "a", Generation(2))
            })
            .await
            .unwrap();
        store.write(|tx| tx.delete_all()).await.unwrap();
        assert_eq!(
            *log.0.lock().unwrap(),
            ["a=Some(\"1\")", "a=Some(\"3\")", "a=None", "reset"]
        );
    }

    #[tokio::test]
    async fn store_cached_reads_see_every_acknowledged_write() {
        let (_dir, store) = store();
        let mut g = store
            .write(|tx| tx.insert(Kind::Meta, "k", None, "0"))
            .await
            .unwrap();
        for i in 1..50 {
            // Warm the cache, then overwrite: the next read must see the new value.
            assert_eq!(
                store.read(|r| r.get(Kind::Meta, "k")).unwrap().unwrap().doc,
                (i - 1).to_string()
            );
            let doc = i.to_string();
            g = store
                .write(move |tx| tx.update(Kind::Meta, "k", g, None, &doc))
                .await
                .unwrap();
            assert_eq!(
                store.read(|r| r.get(Kind::Meta, "k")).unwrap().unwrap().doc,
                i.to_string()
            );
        }
        store
            .write(move |tx| tx.delete(Kind::Meta, "k", g))
            .await
            .unwrap();
        assert!(store.read(|r| r.get(Kind::Meta, "k")).unwrap().is_none());
        store
            .write(|tx| tx.insert(Kind::Meta, "k", None, "x"))
            .await
            .unwrap();
        store.read(|r| r.get(Kind::Meta, "k")).unwrap();
        store.write(|tx| tx.delete_all()).await.unwrap();
        assert!(store.read(|r| r.get(Kind::Meta, "k")).unwrap().is_none());
    }

    #[tokio::test]
    async fn store_failed_job_rolls_back_only_itself() {
        let (_dir, store) = store();
        let a = store.write(|tx| {
            tx.insert(Kind::Meta, "kept", None, "1")?;
            Ok(())
        });
        let b = store.write(|tx| {
            tx.insert(Kind::Meta, "dropped", None, "1")?;
            Err::<(), _>(Error::Client("no".into()))
        });
        let (a, b) = tokio::join!(a, b);
        a.unwrap();
        assert!(b.is_err());
        assert!(store.read(|r| r.get(Kind::Meta, "kept")).unwrap().is_some());
        assert!(
            store
                .read(|r| r.get(Kind::Meta, "dropped"))
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn store_lists_by_prefix_status_and_order_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("berth.db");
        {
            let store = Store::open(&path).unwrap();
            for (k, s) in [
                ("web:01", "ACTIVE"),
                ("web:02", "INACTIVE"),
                ("web:03", "ACTIVE"),
                ("wex:01", "ACTIVE"),
            ] {
                store
                    .write(move |tx| tx.insert(Kind::TaskDefinition, k, Some(s), "{}"))
                    .await
                    .unwrap();
            }
            store.close();
        }
        let store = Store::open(&path).unwrap();
        let keys = |q: ListQuery<'_>| -> Vec<String> {
            store
                .read(|r| r.list(Kind::TaskDefinition, &q))
                .unwrap()
                .into_iter()
                .map(|r| r.key)
                .collect()
        };
        assert_eq!(
            keys(ListQuery {
                prefix: "web:",
                limit: 10,
                ..Default::default()
            }),
            ["web:01", "web:02", "web:03"]
        );
        assert_eq!(
            keys(ListQuery {
                prefix: "web:",
                status: Some("ACTIVE"),
                limit: 10,
                ..Default::default()
            }),
            ["web:01", "web:03"]
        );
        assert_eq!(
            keys(ListQuery {
                prefix: "",
                descending: true,
                after: Some("wex:01"),
                limit: 2,
                ..Default::default()
            }),
            ["web:03", "web:02"]
        );
        assert_eq!(
            keys(ListQuery {
                prefix: "",
                after: Some("web:02"),
                limit: 10,
                ..Default::default()
            }),
            ["web:03", "wex:01"]
        );
    }
    #[derive(Default)]
    struct Clusters(Mutex<Vec<String>>);

    impl Watcher for Clusters {
        fn watches(&self, kind: Kind) -> bool {
            kind == Kind::Cluster
        }
        fn changed(&self, _: Kind, key: &str, _: Option<&str>) {
            self.0.lock().unwrap().push(key.to_string());
        }
        fn reset(&self) {}
    }

    /// Regions hold their own records under the same keys; listings, point reads (cached or
    /// not) and watchers of one never see another's; shared kinds are the same in every
    /// region; records from before regions go to the home region.
    #[tokio::test]
    async fn store_regions_are_partitions_and_legacy_records_go_home() {
        let (_dir, store) = store();
        // Written before regions existed.
        store
            .write(|tx| tx.insert(Kind::Cluster, "old", None, "legacy"))
            .await
            .unwrap();
        assert_eq!(store.assign_home_region("us-east-1").await.unwrap(), 1);
        assert_eq!(
            store.assign_home_region("us-east-1").await.unwrap(),
            0,
            "idempotent"
        );
        let (us, eu) = (store.in_region("us-east-1"), store.in_region("eu-west-1"));
        let seen = Arc::new(Clusters::default());
        eu.watch(seen.clone());
        for (s, doc) in [(&us, "us"), (&eu, "eu")] {
            s.write(move |tx| tx.insert(Kind::Cluster, "web", None, doc))
                .await
                .unwrap();
        }
        eu.write(|tx| tx.insert(Kind::Meta, "shared", None, "1"))
            .await
            .unwrap();
        for _ in 0..2 {
            // The second round is served from the read cache.
            let get = |s: &Store| s.read(|r| r.get(Kind::Cluster, "web")).unwrap().unwrap();
            assert_eq!(
                (get(&us).doc, get(&us).key),
                ("us".to_string(), "web".to_string())
            );
            assert_eq!(get(&eu).doc, "eu");
        }
        let keys = |s: &Store| -> Vec<String> {
            s.read(|r| {
                r.list(
                    Kind::Cluster,
                    &ListQuery {
                        limit: 10,
                        ..Default::default()
                    },
                )
            })
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect()
        };
        assert_eq!(keys(&us), ["old", "web"]);
        assert_eq!(keys(&eu), ["web"]);
        assert_eq!(
            us.read(|r| r.get(Kind::Meta, "shared"))
                .unwrap()
                .unwrap()
                .doc,
            "1"
        );
        assert_eq!(*seen.0.lock().unwrap(), ["web"]);
        let mut regions = store.regions().unwrap();
        regions.sort();
        assert_eq!(regions, ["eu-west-1", "us-east-1"]);
        // Conditional writes and deletes stay in their region too.
        let (g, _) = us
            .read(|r| r.get(Kind::Cluster, "web"))
            .unwrap()
            .map(|r| (r.generation, r))
            .unwrap();
        us.write(move |tx| tx.delete(Kind::Cluster, "web", g))
            .await
            .unwrap();
        assert_eq!(keys(&us), ["old"]);
        assert_eq!(keys(&eu), ["web"]);
    }
}
