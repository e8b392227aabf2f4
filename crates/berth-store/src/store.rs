//! The store over any engine (`backend.rs`): one writer thread with group
//! commit, a pool of reader connections, the read cache, watchers and regions.

use crate::backend::{Engine, Opened, ReadConn, WriteConn};
use crate::{Kind, ListQuery, Read, Record, StoreError, Watcher};
use berth_types::{Error, Generation};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock, mpsc};
use tokio::sync::oneshot;

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
    engine: Box<dyn Engine>,
    writer: Mutex<Option<mpsc::Sender<Job>>>,
    readers: Mutex<Vec<Box<dyn ReadConn + Send>>>,
    cache: Arc<Cache>,
    watchers: Watchers,
}

type Watchers = Arc<RwLock<Vec<Arc<dyn Watcher>>>>;

impl Store {
    /// Opens (creating if needed) the embedded database at `path` and runs pending
    /// migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::start(crate::sqlite::open(path)?)
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user@host:port/db`) and runs
    /// pending migrations.
    pub fn open_postgres(url: &str) -> Result<Store, StoreError> {
        Store::start(crate::postgres::open(url)?)
    }

    fn start(opened: Opened) -> Result<Store, StoreError> {
        let Opened {
            writer: conn,
            engine,
        } = opened;
        let (tx, rx) = mpsc::channel::<Job>();
        let cache = Arc::new(Cache::default());
        let writer_cache = cache.clone();
        let watchers = Watchers::default();
        let writer_watchers = watchers.clone();
        std::thread::Builder::new()
            .name("berth-store-writer".into())
            .spawn(move || writer_loop(conn, rx, &writer_cache, &writer_watchers))
            .map_err(StoreError::Thread)?;
        Ok(Store {
            inner: Arc::new(Inner {
                engine,
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
        unscoped.read(|r| Ok(r.conn.regions()?))
    }

    /// Gives records of regional kinds written before regions existed (no region in their
    /// key) to `region`: a data directory's resources stay where its server's `--region` put
    /// them. Idempotent; a no-op once done.
    pub async fn assign_home_region(&self, region: &str) -> Result<usize, Error> {
        let region = region.to_string();
        let unscoped = Store {
            inner: self.inner.clone(),
            region: None,
        };
        unscoped
            .write(move |tx| {
                let shared = [Kind::Content, Kind::Meta];
                debug_assert!(shared.iter().all(|k| !k.is_regional()));
                let n = tx.conn.assign_region(&region, &shared)?;
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
            None => self.inner.engine.reader()?,
        };
        let result = f(&Reader {
            conn: &*conn,
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

fn writer_loop(
    mut conn: Box<dyn WriteConn>,
    rx: mpsc::Receiver<Job>,
    cache: &Cache,
    watchers: &Watchers,
) {
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
        let outcome = conn.begin().and_then(|()| {
            let mut tx = Tx {
                conn: &*conn,
                touched: &mut touched,
                cleared: &mut cleared,
                watchers: &watching,
                changes: Vec::new(),
                region: None,
            };
            for job in batch.drain(..) {
                done.push(job(&mut tx));
            }
            conn.commit()
        });
        if outcome.is_err() {
            conn.rollback();
        }
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
            complete(
                outcome
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| Error::internal(e.to_string())),
            );
        }
    }
}

/// A write transaction (one savepoint of a group commit).
pub struct Tx<'c> {
    conn: &'c dyn WriteConn,
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
        self.conn.savepoint()?;
        let result = f(self);
        let changes = std::mem::take(&mut self.changes);
        if result.is_ok() {
            self.conn.release()?;
        } else {
            self.conn.rollback_to_savepoint()?;
        }
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
        Ok(self
            .conn
            .get(kind, &stored)?
            .map(|r| region_key(&self.region, kind, r)))
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
        if !self.conn.insert(kind, &key, status, doc)? {
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
        if !self.conn.update(kind, &key, expected, status, doc)? {
            return Err(Error::Conflict);
        }
        self.changed(kind, &key, Some(doc));
        Ok(Generation(expected.0 + 1))
    }

    /// Deletes a record if it is still at `expected`.
    pub fn delete(&mut self, kind: Kind, key: &str, expected: Generation) -> Result<(), Error> {
        let key = stored_key(&self.region, kind, key);
        if !self.conn.delete(kind, &key, expected)? {
            return Err(Error::Conflict);
        }
        self.changed(kind, &key, None);
        Ok(())
    }

    /// Removes every record (the `--ephemeral` reset).
    pub fn delete_all(&mut self) -> Result<(), Error> {
        self.conn.delete_all()?;
        *self.cleared = true;
        Ok(())
    }
}

/// A read-only view.
pub struct Reader<'c> {
    conn: &'c dyn ReadConn,
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
        let found = self.conn.get(kind, &stored)?;
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
    conn: &dyn ReadConn,
    region: &Option<Arc<str>>,
    kind: Kind,
    q: &ListQuery<'_>,
) -> Result<Vec<Record>, Error> {
    if region.is_none() || !kind.is_regional() {
        return Ok(conn.list(kind, q)?);
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
    Ok(conn
        .list(kind, &scoped)?
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
