//! The store over any engine (`backend.rs`): one writer thread with group
//! commit, a pool of reader connections, the read cache, watchers and regions.

use crate::backend::{Engine, Opened, ReadConn, WriteConn, prefix_end};
use crate::pending::{Entry, Pending};
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

/// Committed records recently read (or written: the writer's), so hot point reads skip the
/// database. After each commit and before acknowledging it, the writer bumps `epoch` and
/// removes (or, in its own cache, replaces) every key the batch wrote, and the follower
/// removes what other servers' batches wrote; a reader caches what it read only if no commit
/// happened since it looked, so the cache never holds a value older than the last write this
/// server acknowledged or applied from the feed.
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

impl CacheInner {
    fn put(&mut self, kind: Kind, record: &Record) {
        if record.doc.len() > CACHE_MAX_DOC {
            self.remove(kind, &record.key);
            return;
        }
        if self.len >= CACHE_RECORDS {
            self.records.clear();
            self.len = 0;
        }
        if self
            .records
            .entry(kind)
            .or_default()
            .insert(record.key.clone(), record.clone())
            .is_none()
        {
            self.len += 1;
        }
    }

    fn remove(&mut self, kind: Kind, key: &str) {
        if let Some(m) = self.records.get_mut(&kind)
            && m.remove(key).is_some()
        {
            self.len -= 1;
        }
    }
}

impl Cache {
    fn lookup(&self, kind: Kind, key: &str) -> Result<Record, u64> {
        let inner = self.inner.lock().expect("cache lock");
        match inner.records.get(&kind).and_then(|m| m.get(key)) {
            Some(r) => Ok(r.clone()),
            None => Err(inner.epoch),
        }
    }

    fn fill(&self, kind: Kind, record: &Record, epoch: u64) {
        let mut inner = self.inner.lock().expect("cache lock");
        if inner.epoch == epoch {
            inner.put(kind, record);
        }
    }

    /// This server's batch committed: its records are cached as it wrote them (nothing
    /// older is filled in after this, the epoch having moved).
    fn committed(&self, pending: &Pending) {
        let mut inner = self.inner.lock().expect("cache lock");
        inner.epoch += 1;
        for (kind, key) in pending.deleted() {
            inner.remove(kind, key);
        }
        for (kind, record) in pending.entries() {
            inner.put(kind, record);
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
            inner.remove(*kind, key);
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
    /// Readers' cache: what was read or written is served until this server hears it changed
    /// (by its own commit at once, by another server's through the feed within
    /// [`FOLLOW_EVERY`]).
    cache: Cache,
    /// The writer's cache: also holds what this server's batches wrote. Write jobs read it
    /// under the commit lock, after the writer caught up with the feed: exact there.
    writer_cache: Cache,
    watchers: RwLock<Vec<Arc<dyn Watcher>>>,
    applied: Mutex<u64>,
}

impl Views {
    fn watching(&self) -> Vec<Arc<dyn Watcher>> {
        self.watchers.read().expect("watchers lock").clone()
    }

    fn reset(&self, watching: &[Arc<dyn Watcher>]) {
        self.cache.invalidate(&[], true);
        self.writer_cache.invalidate(&[], true);
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
                    self.writer_cache.invalidate(&changed, false);
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
            writer_cache: Cache::default(),
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
            .write(move |tx| {
                tx.direct()?;
                Ok(tx.conn.acquire_lease(&name, &holder, ttl_ms)?)
            })
            .await
    }

    /// Gives lease `name` up now, if `holder` has it.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), Error> {
        let (name, holder) = (name.to_string(), holder.to_string());
        self.unscoped()
            .write(move |tx| {
                tx.direct()?;
                Ok(tx.conn.release_lease(&name, &holder)?)
            })
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
                tx.replace_records()?;
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
            let result = tx.job(|tx| {
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

/// How many times a batch is begun again when the database cannot serialize it with another
/// server's (SQLSTATE 40001, on databases that run transactions at a stricter isolation).
const SERIALIZATION_RETRIES: u32 = 8;

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
        let mut pending = Pending::default();
        let mut touched: Vec<(Kind, String)> = Vec::new();
        let mut cleared = false;
        let mut replayable = true;
        let watching = views.watching();
        // Held through the commit: the follower applies nothing while this batch runs.
        let mut applied = views.applied.lock().expect("applied lock");
        let mut committed = None;
        let outcome = begin(&mut *conn).and_then(|current| {
            // Other servers' batches first, so every view a job reads is exact.
            views.catch_up(&*conn, &mut applied, current, &watching)?;
            let mut tx = Tx {
                conn: &*conn,
                cache: &views.writer_cache,
                pending: &mut pending,
                touched: &mut touched,
                cleared: &mut cleared,
                replayable: &mut replayable,
                savepoint: false,
                watchers: &watching,
                changes: Vec::new(),
                region: None,
            };
            for job in batch.drain(..) {
                done.push(job(&mut tx));
            }
            let change = (!touched.is_empty() || cleared)
                .then(|| (current + 1, encode_changes(&touched, cleared)));
            committed = change.as_ref().map(|(rev, _)| *rev);
            finish(&mut *conn, current, &pending, change.as_ref(), replayable)
        });
        if outcome.is_err() {
            conn.rollback();
        } else if let Some(rev) = committed {
            *applied = rev;
        }
        drop(applied);
        views.cache.invalidate(&touched, cleared);
        if outcome.is_ok() && !cleared {
            views.writer_cache.committed(&pending);
        } else {
            views.writer_cache.invalidate(&touched, cleared);
        }
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

/// Opens a batch's transaction, begun again while the database cannot serialize it.
fn begin(conn: &mut dyn WriteConn) -> Result<u64, StoreError> {
    let mut tries = 0;
    loop {
        match conn.begin() {
            Err(StoreError::Serialization(e)) if tries < SERIALIZATION_RETRIES => {
                conn.rollback();
                tries += 1;
                tracing::debug!(error = %e, tries, "beginning the batch again");
                back_off(tries);
            }
            other => return other,
        }
    }
}

fn back_off(tries: u32) {
    std::thread::sleep(std::time::Duration::from_millis(2 << tries.min(6)));
}

/// Writes the batch's records and change row, and commits. When the database cannot
/// serialize that, the same is written in a new transaction — provided nothing committed in
/// between (what the jobs read still holds) and no job wrote to the database directly.
fn finish(
    conn: &mut dyn WriteConn,
    current: u64,
    pending: &Pending,
    change: Option<&(u64, String)>,
    replayable: bool,
) -> Result<(), StoreError> {
    let mut tries = 0;
    loop {
        let attempt = write_out(conn, pending, change).and_then(|()| conn.commit());
        match attempt {
            Err(StoreError::Serialization(e)) if replayable && tries < SERIALIZATION_RETRIES => {
                conn.rollback();
                tries += 1;
                tracing::debug!(error = %e, tries, "writing the batch again");
                back_off(tries);
                if begin(conn)? != current {
                    return Err(StoreError::Serialization(format!(
                        "{e} (and another server committed meanwhile)"
                    )));
                }
            }
            other => return other,
        }
    }
}

fn write_out(
    conn: &dyn WriteConn,
    pending: &Pending,
    change: Option<&(u64, String)>,
) -> Result<(), StoreError> {
    if !pending.is_empty() {
        conn.apply(&pending.writes())?;
    }
    if let Some((rev, text)) = change {
        conn.append_change(*rev, text)?;
        if rev.is_multiple_of(1024) && *rev > CHANGES_KEPT {
            conn.prune_changes(rev - CHANGES_KEPT)?;
        }
    }
    Ok(())
}

/// Longest stored key, region included, in bytes (PostgreSQL's B-tree entries stop near 2.7 KB).
const MAX_KEY_BYTES: usize = 2048;

/// Fails unless every engine can store `key` (no NUL, not too long) and `texts` (no NUL).
fn storable(key: &str, texts: &[Option<&str>]) -> Result<(), Error> {
    if key.len() > MAX_KEY_BYTES {
        return Err(Error::InvalidParameter(format!(
            "a stored key is limited to {MAX_KEY_BYTES} bytes"
        )));
    }
    if key.contains('\0') || texts.iter().flatten().any(|t| t.contains('\0')) {
        return Err(Error::InvalidParameter(
            "stored text cannot contain NUL characters".into(),
        ));
    }
    Ok(())
}

/// A committed record, from `cache` when it has it (and cached when read); from the database
/// alone without one.
fn committed_get(
    conn: &dyn ReadConn,
    cache: Option<&Cache>,
    kind: Kind,
    stored: &str,
) -> Result<Option<Record>, Error> {
    if storable(stored, &[]).is_err() {
        return Ok(None);
    }
    let Some(cache) = cache else {
        return Ok(conn.get(kind, stored)?);
    };
    let epoch = match cache.lookup(kind, stored) {
        Ok(hit) => return Ok(Some(hit)),
        Err(epoch) => epoch,
    };
    let found = conn.get(kind, stored)?;
    if let Some(r) = &found {
        cache.fill(kind, r, epoch);
    }
    Ok(found)
}

/// The write transaction of one job in a group commit.
pub struct Tx<'c> {
    conn: &'c dyn WriteConn,
    /// Exact for the records this batch has not written (see [`Cache`]).
    cache: &'c Cache,
    /// The batch's writes, not yet in the database.
    pending: &'c mut Pending,
    /// Keys written in this batch, for the change feed.
    touched: &'c mut Vec<(Kind, String)>,
    /// A job replaced the records wholesale (reset, regions assigned): the cache no longer
    /// holds, and the feed's row says "everything".
    cleared: &'c mut bool,
    /// No job wrote to the database directly, so after a serialization failure the batch can
    /// be written again from `pending`.
    replayable: &'c mut bool,
    /// The current job wrote to the database directly, inside a savepoint.
    savepoint: bool,
    watchers: &'c [Arc<dyn Watcher>],
    /// The current job's changes of watched kinds, delivered when it succeeds.
    changes: Vec<(Kind, String, Option<String>)>,
    /// The current job's region.
    region: Option<Arc<str>>,
}

impl Tx<'_> {
    /// Runs one job: if it fails, what it wrote is undone and nobody hears of it.
    fn job<T>(&mut self, f: impl FnOnce(&mut Tx<'_>) -> Result<T, Error>) -> Result<T, Error> {
        self.pending.begin_job();
        let touched_before = self.touched.len();
        let mut result = f(self);
        let changes = std::mem::take(&mut self.changes);
        if std::mem::take(&mut self.savepoint) {
            let ended = if result.is_ok() {
                self.conn.release()
            } else {
                self.conn.rollback_to_savepoint()
            };
            if let Err(e) = ended {
                result = Err(e.into());
            }
        }
        if result.is_err() {
            self.pending.undo_job();
            // Neither the cache nor the feed hears of it.
            self.touched.truncate(touched_before);
        } else {
            for (kind, key, doc) in &changes {
                for w in self.watchers.iter().filter(|w| w.watches(*kind)) {
                    w.changed(*kind, key, doc.as_deref());
                }
            }
        }
        result
    }

    /// The current job is about to write to the database directly: a savepoint keeps that
    /// undoable, and the batch can no longer be written again from memory.
    fn direct(&mut self) -> Result<(), Error> {
        *self.replayable = false;
        if !self.savepoint {
            self.conn.savepoint()?;
            self.savepoint = true;
        }
        Ok(())
    }

    /// The current job is about to rewrite the records wholesale: the batch's writes so far
    /// go to the database first (and the cache, which has not seen them, no longer holds).
    fn replace_records(&mut self) -> Result<(), Error> {
        self.direct()?;
        if !self.pending.is_empty() {
            self.conn.apply(&self.pending.writes())?;
            self.pending.written_out();
            *self.cleared = true;
        }
        Ok(())
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

    /// A record as this batch sees it: its own writes, else the committed record.
    fn current(&self, kind: Kind, stored: &str) -> Result<Option<Record>, Error> {
        match self.pending.get(kind, stored) {
            Some(e) => Ok(e.now.clone()),
            None => self.committed(kind, stored),
        }
    }

    /// A record as the database holds it (the batch has not written it).
    fn committed(&self, kind: Kind, stored: &str) -> Result<Option<Record>, Error> {
        let cache = (!*self.cleared).then_some(self.cache);
        committed_get(self.conn, cache, kind, stored)
    }

    pub fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, Error> {
        let stored = stored_key(&self.region, kind, key);
        Ok(self
            .current(kind, &stored)?
            .map(|r| region_key(&self.region, kind, r)))
    }

    pub fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, Error> {
        list_in(self.conn, &self.region, kind, q, Some(self.pending))
    }

    /// Sets the record under `key` to `now` (`None`: deletes it) if its generation is
    /// `expected` (`None`: there is no record); `Conflict` otherwise. The new generation.
    /// `new`: the key is taken to be free unless this batch wrote it ([`Tx::insert_new`]).
    fn put(
        &mut self,
        kind: Kind,
        key: &str,
        expected: Option<Generation>,
        now: Option<(Option<&str>, &str)>,
        new: bool,
    ) -> Result<Generation, Error> {
        let stored = stored_key(&self.region, kind, key).into_owned();
        let (status, doc) = now.unzip();
        storable(&stored, &[status.flatten(), doc])?;
        // What the record is now, and what the database holds.
        let (now_at, in_database) = match self.pending.get(kind, &stored) {
            Some(e) => (e.now.as_ref().map(|r| r.generation), e.stored),
            None if new => (None, None),
            None => {
                let g = self.committed(kind, &stored)?.map(|r| r.generation);
                (g, g)
            }
        };
        if now_at != expected {
            return Err(Error::Conflict);
        }
        let generation = Generation(expected.map_or(1, |g| g.0 + 1));
        let record = now.map(|(status, doc)| Record {
            key: stored.clone(),
            generation,
            status: status.map(str::to_string),
            doc: doc.to_string(),
        });
        self.pending.set(
            kind,
            &stored,
            Entry {
                stored: in_database,
                now: record,
            },
        );
        self.touched.push((kind, stored.clone()));
        if self.watchers.iter().any(|w| w.watches(kind)) {
            self.changes.push((kind, stored, doc.map(str::to_string)));
        }
        Ok(generation)
    }

    /// Creates a record; `Conflict` if one exists under that key.
    pub fn insert(
        &mut self,
        kind: Kind,
        key: &str,
        status: Option<&str>,
        doc: &str,
    ) -> Result<Generation, Error> {
        self.put(kind, key, None, Some((status, doc)), false)
    }

    /// Creates a record under a key that cannot exist yet by construction — a fresh UUID, or
    /// a revision one past a counter the same job read and updated — without looking it up
    /// first (a round trip saved on PostgreSQL, where it is the cost of such a write). Should
    /// one exist after all, the batch's commit fails, and every job of it with it: use
    /// [`Tx::insert`] wherever the key may be taken.
    pub fn insert_new(
        &mut self,
        kind: Kind,
        key: &str,
        status: Option<&str>,
        doc: &str,
    ) -> Result<Generation, Error> {
        self.put(kind, key, None, Some((status, doc)), true)
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
        self.put(kind, key, Some(expected), Some((status, doc)), false)
    }

    /// Deletes a record if it is still at `expected`.
    pub fn delete(&mut self, kind: Kind, key: &str, expected: Generation) -> Result<(), Error> {
        self.put(kind, key, Some(expected), None, false).map(|_| ())
    }

    /// Removes every record (the `--ephemeral` reset).
    pub fn delete_all(&mut self) -> Result<(), Error> {
        self.replace_records()?;
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
        Ok(committed_get(self.conn, Some(self.cache), kind, &stored)?
            .map(|r| region_key(self.region, kind, r)))
    }

    /// A point read from the database, never the cache: it sees what another server
    /// committed a moment ago (for records several servers take turns updating).
    pub fn get_fresh(&self, kind: Kind, key: &str) -> Result<Option<Record>, Error> {
        let stored = stored_key(self.region, kind, key);
        Ok(
            committed_get(self.conn, None, kind, &stored)?
                .map(|r| region_key(self.region, kind, r)),
        )
    }

    pub fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, Error> {
        list_in(self.conn, self.region, kind, q, None)
    }
}

/// A listing in `region` (the prefix and the `after` key are the region's, and so are the
/// keys returned), with a batch's own writes in place of what the database has for them.
fn list_in(
    conn: &dyn ReadConn,
    region: &Option<Arc<str>>,
    kind: Kind,
    q: &ListQuery<'_>,
    pending: Option<&Pending>,
) -> Result<Vec<Record>, Error> {
    let prefix = stored_key(region, kind, q.prefix);
    let after = q.after.map(|a| stored_key(region, kind, a));
    storable(&prefix, &[after.as_deref()])?;
    let below = prefix_end(&prefix);
    let past = |key: &str| match after.as_deref() {
        None => true,
        Some(a) if q.descending => key < a,
        Some(a) => key > a,
    };
    let mine: Vec<(&str, &Entry)> = pending
        .map(|p| {
            p.range(kind, &prefix, &below)
                .filter(|(key, _)| past(key))
                .collect()
        })
        .unwrap_or_default();
    let scoped = ListQuery {
        prefix: &prefix,
        after: after.as_deref(),
        status: q.status,
        descending: q.descending,
        // Enough for the limit however many of these rows the batch replaced or deleted.
        limit: q.limit.saturating_add(mine.len()),
    };
    let mut rows = conn.list(kind, &scoped)?;
    if !mine.is_empty() {
        let replaced: std::collections::HashSet<&str> = mine.iter().map(|(key, _)| *key).collect();
        rows.retain(|r| !replaced.contains(r.key.as_str()));
        rows.extend(
            mine.iter()
                .filter_map(|(_, e)| e.now.clone())
                .filter(|r| q.status.is_none_or(|s| r.status.as_deref() == Some(s))),
        );
        rows.sort_by(|a, b| a.key.cmp(&b.key));
        if q.descending {
            rows.reverse();
        }
        rows.truncate(q.limit);
    }
    Ok(rows
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
