//! The store over any engine (`backend.rs`): one writer thread with group
//! commit, a pool of reader connections, the read cache, watchers and regions.

use crate::backend::{Engine, Opened, ReadConn, WriteConn};
use crate::{Change, Kind, Lease, ListQuery, Read, Record, StoreError, Watcher};
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

/// The store, as one region sees it. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// The region regional records are read and written in (`None`: a server-wide handle,
    /// which sees regional keys with their region prefix).
    region: Option<Arc<str>>,
    /// Writes through this handle are refused unless this lease is still held at this epoch.
    fence: Option<Arc<Fence>>,
}

/// A lease a controller's writes depend on: `holder` at `epoch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub lease: String,
    pub holder: String,
    pub epoch: u64,
}

/// How often a server looks for batches other servers committed to a shared database.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_millis(50);
/// Change rows kept for servers that follow the feed; one further behind starts over.
const CHANGES_KEPT: u64 = 100_000;

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
    views: Arc<Views>,
}

/// What this server keeps in memory of the records, and the revision it is exact at: every
/// batch up to `applied` — its own, and those of other servers sharing the database, read
/// from the change feed — is reflected in the cache and the watchers.
struct Views {
    cache: Cache,
    watchers: RwLock<Vec<Arc<dyn Watcher>>>,
    applied: Mutex<u64>,
}

impl Views {
    fn watching(&self) -> Vec<Arc<dyn Watcher>> {
        self.watchers.read().expect("watchers lock").clone()
    }

    fn reset(&self, watching: &[Arc<dyn Watcher>]) {
        self.cache.invalidate(&[], true);
        for w in watching {
            w.reset();
        }
    }

    /// Brings the cache and watchers from `*applied` to revision `upto`, through `conn`'s
    /// view of the change feed (records read as they are now: watchers keep state, so a
    /// later version seen early is seen again, never an older one after it).
    fn catch_up(
        &self,
        conn: &dyn ReadConn,
        applied: &mut u64,
        upto: u64,
        watching: &[Arc<dyn Watcher>],
    ) -> Result<(), StoreError> {
        if upto <= *applied {
            return Ok(());
        }
        match conn.changes(*applied, upto)? {
            None => self.reset(watching),
            Some(rows) => {
                for (_, text) in rows {
                    let Some(changed) = decode_changes(&text) else {
                        self.reset(watching);
                        continue;
                    };
                    self.cache.invalidate(&changed, false);
                    for (kind, key) in &changed {
                        let mut ws = watching.iter().filter(|w| w.watches(*kind)).peekable();
                        if ws.peek().is_none() {
                            continue;
                        }
                        let now = conn.get(*kind, key)?;
                        for w in ws {
                            w.changed(*kind, key, now.as_ref().map(|r| r.doc.as_str()));
                        }
                    }
                }
            }
        }
        *applied = upto;
        for w in watching {
            w.committed();
        }
        Ok(())
    }
}

/// A batch's change row: the keys it wrote, or `*` when it changed everything.
fn encode_changes(touched: &[(Kind, String)], everything: bool) -> String {
    if everything {
        return "*".into();
    }
    let pairs: Vec<(&str, &str)> = touched
        .iter()
        .map(|(k, key)| (k.as_str(), &**key))
        .collect();
    serde_json::to_string(&pairs).expect("strings serialize")
}

/// `None`: everything changed (or a row this build cannot read).
fn decode_changes(text: &str) -> Option<Vec<(Kind, String)>> {
    let pairs: Vec<(String, String)> = serde_json::from_str(text).ok()?;
    pairs
        .into_iter()
        .map(|(k, key)| Some((Kind::parse(&k)?, key)))
        .collect()
}

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
        let follower = engine.reader()?;
        let views = Arc::new(Views {
            cache: Cache::default(),
            watchers: RwLock::default(),
            applied: Mutex::new(follower.revision()?),
        });
        let writer_views = views.clone();
        std::thread::Builder::new()
            .name("berth-store-writer".into())
            .spawn(move || writer_loop(conn, rx, &writer_views))
            .map_err(StoreError::Thread)?;
        let inner = Arc::new(Inner {
            engine,
            writer: Mutex::new(Some(tx)),
            readers: Mutex::new(Vec::new()),
            views,
        });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new()
            .name("berth-store-follower".into())
            .spawn(move || follow(follower, weak))
            .map_err(StoreError::Thread)?;
        Ok(Store {
            inner,
            region: None,
            fence: None,
        })
    }

    /// The same store as region `region` sees it.
    pub fn in_region(&self, region: &str) -> Store {
        Store {
            region: Some(region.into()),
            ..self.clone()
        }
    }

    /// The same store, whose writes are refused (with `Unavailable`) once `fence`'s lease
    /// has passed to another holder: a controller that lost its leadership writes nothing.
    pub fn fenced(&self, fence: Fence) -> Store {
        Store {
            fence: Some(Arc::new(fence)),
            ..self.clone()
        }
    }

    fn unscoped(&self) -> Store {
        Store {
            inner: self.inner.clone(),
            region: None,
            fence: None,
        }
    }

    /// The regions that have records.
    pub fn regions(&self) -> Result<Vec<String>, Error> {
        self.unscoped().read(|r| Ok(r.conn.regions()?))
    }

    /// The revision of the last committed batch that changed records, as the database has it.
    pub fn revision(&self) -> Result<u64, Error> {
        self.read(|r| Ok(r.conn.revision()?))
    }

    /// The revision this server's caches and watchers are exact at.
    pub fn applied_revision(&self) -> u64 {
        *self.inner.views.applied.lock().expect("applied lock")
    }

    /// The batches committed after revision `rev`, up to the current one, with the keys each
    /// changed; `None` when the feed no longer reaches back to `rev` (start over from the
    /// records).
    pub fn changes_since(&self, rev: u64) -> Result<Option<Vec<Change>>, Error> {
        self.read(|r| {
            let upto = r.conn.revision()?;
            Ok(r.conn.changes(rev, upto)?.map(|rows| {
                rows.into_iter()
                    .map(|(rev, text)| Change {
                        rev,
                        keys: decode_changes(&text),
                    })
                    .collect()
            }))
        })
    }

    /// Takes or renews lease `name` for `holder` for `ttl`, by the database's clock, unless
    /// another holder has it; the epoch held.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: std::time::Duration,
    ) -> Result<Option<u64>, Error> {
        let (name, holder) = (name.to_string(), holder.to_string());
        let ttl_ms = ttl.as_millis().min(i64::MAX as u128) as i64;
        self.unscoped()
            .write(move |tx| Ok(tx.conn.acquire_lease(&name, &holder, ttl_ms)?))
            .await
    }

    /// Gives lease `name` up now, if `holder` has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), Error> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.unscoped()
            .write(move |tx| Ok(tx.conn.release_lease(&name, &holder)?))
            .await
    }

    /// Every lease, with the time it has left by the database's clock.
    pub fn leases(&self) -> Result<Vec<Lease>, Error> {
        self.read(|r| Ok(r.conn.leases()?))
    }

    /// Gives records of regional kinds written before regions existed (no region in their
    /// key) to `region`: a data directory's resources stay where its server's `--region` put
    /// them. Idempotent; a no-op once done.
    pub async fn assign_home_region(&self, region: &str) -> Result<usize, Error> {
        let region = region.to_string();
        self.unscoped()
            .write(move |tx| {
                let shared = [Kind::Content, Kind::Blob, Kind::Meta];
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
        let fence = self.fence.clone();
        let job: Job = Box::new(move |tx: &mut Tx<'_>| {
            tx.region = region;
            let result = tx.savepoint(|tx| {
                if let Some(fence) = &fence {
                    tx.check_fence(fence)?;
                }
                f(tx)
            });
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
            cache: &self.inner.views.cache,
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
            .views
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
    fn committed(&self) {
        self.inner.committed();
    }
}

/// Follows the batches other servers commit to a shared database, every [`FOLLOW_EVERY`],
/// until the store is closed or dropped.
fn follow(conn: Box<dyn ReadConn + Send>, store: std::sync::Weak<Inner>) {
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        let Some(inner) = store.upgrade() else { return };
        if inner.writer.lock().expect("writer lock").is_none() {
            return;
        }
        let views = inner.views.clone();
        drop(inner);
        let caught_up = conn.revision().and_then(|upto| {
            let mut applied = views.applied.lock().expect("applied lock");
            let watching = views.watching();
            views.catch_up(&*conn, &mut applied, upto, &watching)
        });
        if let Err(e) = caught_up {
            tracing::warn!(error = %e, "cannot read the store's change feed; retrying");
        }
    }
}

fn writer_loop(mut conn: Box<dyn WriteConn>, rx: mpsc::Receiver<Job>, views: &Views) {
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
        let watching = views.watching();
        // Held through the commit: the follower applies nothing while this batch runs.
        let mut applied = views.applied.lock().expect("applied lock");
        let mut committed = None;
        let outcome = conn.begin().and_then(|current| {
            // Other servers' batches first, so every view a job reads is exact.
            views.catch_up(&*conn, &mut applied, current, &watching)?;
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
            if !touched.is_empty() || cleared {
                let rev = current + 1;
                conn.append_change(rev, &encode_changes(&touched, cleared))?;
                if rev.is_multiple_of(1024) && rev > CHANGES_KEPT {
                    conn.prune_changes(rev - CHANGES_KEPT)?;
                }
                committed = Some(rev);
            }
            conn.commit()
        });
        if outcome.is_err() {
            conn.rollback();
        } else if let Some(rev) = committed {
            *applied = rev;
        }
        drop(applied);
        views.cache.invalidate(&touched, cleared);
        if outcome.is_err() || cleared {
            for w in &watching {
                w.reset();
            }
        }
        for w in &watching {
            w.committed();
        }
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "store commit failed; the batch is lost and reported as failed");
        }
        for complete in done {
            complete(outcome.as_ref().map(|_| ()).map_err(StoreError::to_domain));
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
        let touched_before = self.touched.len();
        let result = f(self);
        let changes = std::mem::take(&mut self.changes);
        if result.is_ok() {
            self.conn.release()?;
        } else {
            self.conn.rollback_to_savepoint()?;
            // What it wrote is gone: neither the cache nor the feed hears of it.
            self.touched.truncate(touched_before);
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

    /// Fails with `Unavailable` unless `fence`'s lease is still its holder's at its epoch
    /// (batches commit one at a time, so nothing changes hands before this one commits).
    fn check_fence(&self, fence: &Fence) -> Result<(), Error> {
        let held =
            self.conn.leases()?.into_iter().any(|l| {
                l.name == fence.lease && l.holder == fence.holder && l.epoch == fence.epoch
            });
        if held {
            Ok(())
        } else {
            Err(Error::Unavailable(format!(
                "this server no longer holds the {} lease (epoch {})",
                fence.lease, fence.epoch
            )))
        }
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
