//! The store conformance suite: the same checks on every engine behind `berth_store::Store`
//! (the embedded SQLite engine and PostgreSQL; each engine adds itself to `engines!`): conditional
//! writes, listing order, group commit with per-job rollback, the read cache's coherence,
//! watchers, regions, migrations, and durability across a close, a reopen and a crash.

use berth_store::{Fence, Kind, ListQuery, Store, StoreError, Watcher};
use berth_types::{Error, Generation};
use std::sync::{Arc, Mutex};

/// Where one test's store lives. `open` may be called again after `Store::close`, or in
/// another process given `location`: it opens the same data.
trait Engine {
    /// The test module of the engine's checks (the macro's).
    fn name(&self) -> &'static str;
    fn try_open(&self) -> Result<Store, StoreError>;
    fn open(&self) -> Store {
        self.try_open().unwrap()
    }
    /// What a child process needs to open the same store (see [`CHILD`]).
    fn location(&self) -> String;
    /// Marks the stored schema as written by a newer Berth.
    fn stamp_newer_schema(&self);
}

/// Set in a child process the crash check starts: the location of the store it writes to.
const CHILD: &str = "BERTH_STORE_CONFORMANCE_CHILD";

/// The embedded engine: a database file in a fresh directory (or the parent's, in a child).
struct Sqlite {
    _dir: Option<tempfile::TempDir>,
    path: std::path::PathBuf,
}

impl Sqlite {
    fn new() -> Sqlite {
        if let Ok(path) = std::env::var(CHILD) {
            return Sqlite {
                _dir: None,
                path: path.into(),
            };
        }
        let dir = tempfile::tempdir().unwrap();
        Sqlite {
            path: dir.path().join("berth.db"),
            _dir: Some(dir),
        }
    }
}

impl Engine for Sqlite {
    fn name(&self) -> &'static str {
        "sqlite"
    }
    fn try_open(&self) -> Result<Store, StoreError> {
        Store::open(&self.path)
    }
    fn location(&self) -> String {
        self.path.display().to_string()
    }
    fn stamp_newer_schema(&self) {
        let conn = rusqlite::Connection::open(&self.path).unwrap();
        conn.pragma_update(None, "user_version", 1_000).unwrap();
    }
}

/// The PostgreSQL server the tests use: `BERTH_TEST_POSTGRES`, a URL without a database
/// (`postgres://postgres@127.0.0.1:PORT`; `scripts/test.sh` starts one).
const POSTGRES: &str = "BERTH_TEST_POSTGRES";

/// A fresh database on the test server (or the parent's, in a child), dropped at the end.
struct Postgres {
    server: String,
    database: String,
    owned: bool,
}

/// Runs a statement on the server's `postgres` database, off the async runtime (the blocking
/// client must not be entered from one).
fn admin(server: &str, sql: String) {
    let url = format!("{server}/postgres");
    std::thread::spawn(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls)
            .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {url}: {e}"));
        client.batch_execute(&sql).unwrap();
    })
    .join()
    .unwrap();
}

impl Postgres {
    fn new() -> Postgres {
        let server = std::env::var(POSTGRES).unwrap_or_else(|_| {
            panic!(
                "{POSTGRES} is not set: scripts/test.sh starts a PostgreSQL server for these tests"
            )
        });
        if let Ok(url) = std::env::var(CHILD) {
            let (server, database) = url.rsplit_once('/').unwrap();
            return Postgres {
                server: server.into(),
                database: database.into(),
                owned: false,
            };
        }
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let database = format!(
            "conformance_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        admin(&server, format!("CREATE DATABASE {database}"));
        Postgres {
            server,
            database,
            owned: true,
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if self.owned && !std::thread::panicking() {
            admin(
                &self.server,
                format!("DROP DATABASE {} WITH (FORCE)", self.database),
            );
        }
    }
}

impl Engine for Postgres {
    fn name(&self) -> &'static str {
        "postgres"
    }
    fn try_open(&self) -> Result<Store, StoreError> {
        Store::open_postgres(&self.location())
    }
    fn location(&self) -> String {
        format!("{}/{}", self.server, self.database)
    }
    fn stamp_newer_schema(&self) {
        let url = self.location();
        std::thread::spawn(move || {
            let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
            client
                .batch_execute("UPDATE berth_schema SET version = 1000")
                .unwrap();
        })
        .join()
        .unwrap();
    }
}

/// One `#[tokio::test]` per engine and check, in a module named after the engine.
macro_rules! engines {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&super::Sqlite::new()).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(&super::Postgres::new()).await
                }
            )*
        }
    };
}

engines!(
    conditional_writes_compare_generations,
    watchers_see_only_successful_jobs_in_order,
    cached_reads_see_every_acknowledged_write,
    failed_job_rolls_back_only_itself,
    lists_by_prefix_status_and_order_and_survives_reopen,
    regions_are_partitions_and_legacy_records_go_home,
    listing_order_is_byte_order,
    group_commit_acknowledges_only_durable_writes,
    a_crashed_process_keeps_every_acknowledged_write,
    migrations_refuse_a_newer_schema,
    the_change_feed_has_every_committed_batch_in_order,
    servers_sharing_a_database_see_each_others_writes,
    write_jobs_see_every_batch_committed_before_them,
    leases_change_hands_only_when_expired_and_fence_writes,
    jobs_of_one_batch_read_and_list_each_others_writes,
    any_key_reaches_the_change_feed_as_written,
    insert_new_trusts_the_caller_and_a_taken_key_fails_the_batch,
);

/// Keys come back in byte order (what `COLLATE "C"` gives in PostgreSQL), in both directions
/// and across pages.
async fn listing_order_is_byte_order(e: &dyn Engine) {
    let store = e.open();
    let mut keys = [
        "b", "B", "a", "A", "a-b", "a_b", "ab", "a\u{e9}", "a~", "a0", "a/", "Z", "\u{4e2d}",
        "a\nb",
    ];
    for k in keys {
        store
            .write(move |tx| tx.insert(Kind::Repository, k, None, "{}"))
            .await
            .unwrap();
    }
    keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    let page = |after: Option<String>, descending: bool| -> Vec<String> {
        store
            .read(|r| {
                r.list(
                    Kind::Repository,
                    &ListQuery {
                        after: after.as_deref(),
                        descending,
                        limit: 3,
                        ..Default::default()
                    },
                )
            })
            .unwrap()
            .into_iter()
            .map(|r| r.key)
            .collect()
    };
    for descending in [false, true] {
        let (mut all, mut after) = (Vec::new(), None);
        loop {
            let got = page(after.clone(), descending);
            if got.is_empty() {
                break;
            }
            after = got.last().cloned();
            all.extend(got);
        }
        let mut want: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        if descending {
            want.reverse();
        }
        assert_eq!(all, want, "descending: {descending}");
    }
    // A prefix scan stops at the prefix: "a" does not list "b" nor "A".
    let prefixed = store
        .read(|r| {
            r.list(
                Kind::Repository,
                &ListQuery {
                    prefix: "a",
                    limit: 100,
                    ..Default::default()
                },
            )
        })
        .unwrap();
    assert!(prefixed.iter().all(|r| r.key.starts_with('a')));
    assert_eq!(
        prefixed.len(),
        keys.iter().filter(|k| k.starts_with('a')).count()
    );
}

/// Many concurrent writers: each is acknowledged on its own outcome (one job's failure or
/// conflict rolls back that job only), exactly one of racing inserts of a key wins, and
/// everything acknowledged is there after a reopen.
async fn group_commit_acknowledges_only_durable_writes(e: &dyn Engine) {
    let store = e.open();
    let mut writes = Vec::new();
    for i in 0..300u32 {
        let s = store.clone();
        writes.push(tokio::spawn(async move {
            s.write(move |tx| {
                tx.insert(Kind::Meta, &format!("k{i:03}"), None, &i.to_string())?;
                // Everyone also races for one key.
                let _ = tx.insert(Kind::Meta, "contended", None, &i.to_string());
                if i % 7 == 0 {
                    return Err(Error::Client("refused".into()));
                }
                Ok(())
            })
            .await
        }));
    }
    let mut acknowledged = Vec::new();
    for (i, w) in writes.into_iter().enumerate() {
        match w.await.unwrap() {
            Ok(()) => acknowledged.push(i),
            Err(err) => assert_eq!((i % 7, err), (0, Error::Client("refused".into()))),
        }
    }
    assert_eq!(acknowledged.len(), 300 - 300usize.div_ceil(7));
    store.close();
    let store = e.open();
    let all = store
        .read(|r| {
            r.list(
                Kind::Meta,
                &ListQuery {
                    prefix: "k",
                    limit: 1_000,
                    ..Default::default()
                },
            )
        })
        .unwrap();
    let found: Vec<usize> = all.iter().map(|r| r.doc.parse().unwrap()).collect();
    assert_eq!(found, acknowledged);
    let winner = store
        .read(|r| r.get(Kind::Meta, "contended"))
        .unwrap()
        .unwrap();
    assert!(acknowledged.contains(&winner.doc.parse().unwrap()));
    assert_eq!(winner.generation, Generation(1));
}

/// A writer process killed with SIGKILL mid-stream loses nothing it had acknowledged: the
/// check re-runs itself as a child that writes and prints each acknowledged key, kills it, and
/// reads the keys back.
async fn a_crashed_process_keeps_every_acknowledged_write(e: &dyn Engine) {
    use std::io::BufRead;
    if std::env::var(CHILD).is_ok() {
        let store = e.open();
        for i in 0.. {
            store
                .write(move |tx| tx.insert(Kind::Meta, &format!("crash{i:06}"), None, "x"))
                .await
                .unwrap();
            println!("acked crash{i:06}");
        }
    }
    let name = format!(
        "{}::a_crashed_process_keeps_every_acknowledged_write",
        e.name()
    );
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name.as_str(), "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, e.location())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
        if let Some(key) = line.unwrap().strip_prefix("acked ") {
            acked.push(key.to_string());
            if acked.len() == 300 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(acked.len(), 300, "the child stopped early");
    let store = e.open();
    for key in &acked {
        assert!(
            store.read(|r| r.get(Kind::Meta, key)).unwrap().is_some(),
            "{key} was acknowledged and is gone"
        );
    }
}

/// A store whose schema is newer than this build is refused, not opened.
async fn migrations_refuse_a_newer_schema(e: &dyn Engine) {
    e.open().close();
    e.stamp_newer_schema();
    assert!(matches!(e.try_open(), Err(StoreError::TooNew { .. })));
}

async fn conditional_writes_compare_generations(e: &dyn Engine) {
    let store = e.open();
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

async fn watchers_see_only_successful_jobs_in_order(e: &dyn Engine) {
    let store = e.open();
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

async fn cached_reads_see_every_acknowledged_write(e: &dyn Engine) {
    let store = e.open();
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

async fn failed_job_rolls_back_only_itself(e: &dyn Engine) {
    let store = e.open();
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

async fn lists_by_prefix_status_and_order_and_survives_reopen(e: &dyn Engine) {
    {
        let store = e.open();
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
    let store = e.open();
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
async fn regions_are_partitions_and_legacy_records_go_home(e: &dyn Engine) {
    let store = e.open();
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

/// Waits (at most 10 s) until `done` holds, looking again every 10 ms.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !done().await {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

/// Every batch that changed records gets the next revision and a row naming its keys; a batch
/// whose jobs all failed changes nothing, and a reset is one "everything" row.
async fn the_change_feed_has_every_committed_batch_in_order(e: &dyn Engine) {
    let store = e.open();
    let start = store.revision().unwrap();
    store
        .write(|tx| {
            tx.insert(Kind::Meta, "a", None, "1")?;
            tx.insert(Kind::Repository, "r", None, "{}")
        })
        .await
        .unwrap();
    let failed = store
        .write(|tx| {
            tx.insert(Kind::Meta, "lost", None, "1")?;
            Err::<(), _>(Error::Conflict)
        })
        .await;
    assert_eq!(failed, Err(Error::Conflict));
    store
        .write(|tx| tx.update(Kind::Meta, "a", Generation(1), None, "2"))
        .await
        .unwrap();
    store.write(|tx| tx.delete_all()).await.unwrap();
    let feed = store.changes_since(start).unwrap().unwrap();
    let revs: Vec<u64> = feed.iter().map(|c| c.rev).collect();
    assert_eq!(revs, [start + 1, start + 2, start + 3]);
    assert_eq!(
        feed[0].keys,
        Some(vec![
            (Kind::Meta, "a".to_string()),
            (Kind::Repository, "r".to_string())
        ])
    );
    assert_eq!(feed[1].keys, Some(vec![(Kind::Meta, "a".to_string())]));
    assert_eq!(feed[2].keys, None);
    assert_eq!(store.revision().unwrap(), start + 3);
    assert_eq!(store.applied_revision(), start + 3);
    // Reopened, it goes on from there.
    store.close();
    drop(store);
    let store = e.open();
    store
        .write(|tx| tx.insert(Kind::Meta, "b", None, "1"))
        .await
        .unwrap();
    assert_eq!(store.revision().unwrap(), start + 4);
    let tail = store.changes_since(start + 3).unwrap().unwrap();
    assert_eq!(tail.len(), 1);
}

/// Two servers on one database: what one acknowledges, the other's cache and watchers show
/// soon after (the change feed), without either restarting.
async fn servers_sharing_a_database_see_each_others_writes(e: &dyn Engine) {
    let a = e.open();
    let b = e.open();
    let log = Arc::new(Log::default());
    b.watch(log.clone());
    a.write(|tx| tx.insert(Kind::Meta, "k", None, "1"))
        .await
        .unwrap();
    // B caches what it reads ...
    eventually("B reads A's insert", || async {
        b.read(|r| r.get(Kind::Meta, "k")).unwrap().is_some()
    })
    .await;
    assert_eq!(
        b.read(|r| r.get(Kind::Meta, "k")).unwrap().unwrap().doc,
        "1"
    );
    // ... and A's later writes evict it there.
    a.write(|tx| tx.update(Kind::Meta, "k", Generation(1), None, "2"))
        .await
        .unwrap();
    eventually("B's cache drops the old version", || async {
        b.read(|r| r.get(Kind::Meta, "k")).unwrap().unwrap().doc == "2"
    })
    .await;
    a.write(|tx| tx.delete(Kind::Meta, "k", Generation(2)))
        .await
        .unwrap();
    eventually("B sees the delete", || async {
        b.read(|r| r.get(Kind::Meta, "k")).unwrap().is_none()
    })
    .await;
    eventually("B's watcher saw all three", || async {
        log.0.lock().unwrap().len() >= 3
    })
    .await;
    let seen = log.0.lock().unwrap().clone();
    assert_eq!(seen.last().map(String::as_str), Some("k=None"), "{seen:?}");
    // Both ways: B's writes reach A.
    b.write(|tx| tx.insert(Kind::Meta, "from-b", None, "x"))
        .await
        .unwrap();
    eventually("A reads B's insert", || async {
        a.read(|r| r.get(Kind::Meta, "from-b")).unwrap().is_some()
    })
    .await;
    assert_eq!(a.revision().unwrap(), b.revision().unwrap());
}

/// Counts the `Kind::Task` records it has seen (a stand-in for the placement's capacity view).
#[derive(Default)]
struct Reserved(Mutex<std::collections::HashSet<String>>);

impl Watcher for Reserved {
    fn watches(&self, kind: Kind) -> bool {
        kind == Kind::Task
    }
    fn changed(&self, _: Kind, key: &str, doc: Option<&str>) {
        let mut set = self.0.lock().unwrap();
        match doc {
            Some(_) => set.insert(key.to_string()),
            None => set.remove(key),
        };
    }
    fn reset(&self) {
        self.0.lock().unwrap().clear();
    }
}

/// A write job's views include every batch committed before it, whichever server committed
/// it: two servers admitting work against one in-memory count never admit more than the
/// limit between them (how placement on several replicas never over-commits an instance).
async fn write_jobs_see_every_batch_committed_before_them(e: &dyn Engine) {
    const LIMIT: usize = 40;
    let servers = [e.open(), e.open()];
    let views: Vec<Arc<Reserved>> = servers
        .iter()
        .map(|s| {
            let v = Arc::new(Reserved::default());
            s.watch(v.clone());
            v
        })
        .collect();
    let mut jobs = Vec::new();
    for i in 0..200 {
        let (store, view) = (servers[i % 2].clone(), views[i % 2].clone());
        jobs.push(tokio::spawn(async move {
            store
                .write(move |tx| {
                    if view.0.lock().unwrap().len() >= LIMIT {
                        return Ok(false);
                    }
                    tx.insert(Kind::Task, &format!("t{i:03}"), None, "{}")?;
                    Ok(true)
                })
                .await
                .unwrap()
        }));
    }
    let mut admitted = 0;
    for j in jobs {
        admitted += usize::from(j.await.unwrap());
    }
    let stored = servers[0]
        .read(|r| {
            r.list(
                Kind::Task,
                &ListQuery {
                    limit: 1_000,
                    ..Default::default()
                },
            )
        })
        .unwrap()
        .len();
    assert_eq!((admitted, stored), (LIMIT, LIMIT));
}

/// A lease is one holder's until it expires by the database's clock or is released; each new
/// holder gets the next epoch, and writes fenced by an old epoch are refused.
async fn leases_change_hands_only_when_expired_and_fence_writes(e: &dyn Engine) {
    use std::time::Duration;
    let (a, b) = (e.open(), e.open());
    let minute = Duration::from_secs(60);
    let epoch = a.acquire_lease("leader", "a", minute).await.unwrap();
    assert_eq!(epoch, Some(1));
    assert_eq!(b.acquire_lease("leader", "b", minute).await.unwrap(), None);
    // Renewing keeps the epoch.
    assert_eq!(
        a.acquire_lease("leader", "a", minute).await.unwrap(),
        Some(1)
    );
    let leases = b.leases().unwrap();
    assert_eq!(leases.len(), 1);
    assert_eq!((leases[0].holder.as_str(), leases[0].epoch), ("a", 1));
    assert!(leases[0].remaining_ms > 50_000, "{leases:?}");
    let fence = |holder: &str, epoch| Fence {
        lease: "leader".into(),
        holder: holder.into(),
        epoch,
    };
    let a_fenced = a.fenced(fence("a", 1));
    a_fenced
        .write(|tx| tx.insert(Kind::Meta, "by-a", None, "1"))
        .await
        .unwrap();
    // Released: B takes it at once, with the next epoch; A's fenced writes are refused.
    a.release_lease("leader", "a").await.unwrap();
    assert_eq!(
        b.acquire_lease("leader", "b", minute).await.unwrap(),
        Some(2)
    );
    let refused = a_fenced
        .write(|tx| tx.insert(Kind::Meta, "stale", None, "1"))
        .await;
    assert!(matches!(refused, Err(Error::Unavailable(_))), "{refused:?}");
    assert!(b.read(|r| r.get(Kind::Meta, "stale")).unwrap().is_none());
    b.fenced(fence("b", 2))
        .write(|tx| tx.insert(Kind::Meta, "by-b", None, "1"))
        .await
        .unwrap();
    // Not renewed, a lease expires and passes on.
    let short = Duration::from_millis(200);
    assert_eq!(a.acquire_lease("short", "a", short).await.unwrap(), Some(1));
    assert_eq!(b.acquire_lease("short", "b", minute).await.unwrap(), None);
    eventually("the lease to expire and pass to B", || async {
        b.acquire_lease("short", "b", minute)
            .await
            .unwrap()
            .is_some()
    })
    .await;
    let short_lease = b.leases().unwrap().into_iter().find(|l| l.name == "short");
    assert_eq!(
        short_lease.map(|l| (l.holder, l.epoch)),
        Some(("b".to_string(), 2))
    );
}

/// The listings the batch check compares, by what they ask of the merge of a batch's own
/// writes with the database's rows: order both ways, `after`, status and limits.
fn batch_queries() -> Vec<ListQuery<'static>> {
    let q = |after, status, descending, limit| ListQuery {
        prefix: "r",
        after,
        status,
        descending,
        limit,
    };
    vec![
        q(None, None, false, 100),
        q(None, None, true, 3),
        q(None, Some("s1"), false, 100),
        q(Some("r3"), None, false, 4),
        q(Some("r5"), Some("s0"), true, 2),
    ]
}

fn listed(read: &dyn berth_store::Read) -> Vec<Vec<(String, Option<String>, u64)>> {
    batch_queries()
        .iter()
        .map(|q| {
            read.list(Kind::Meta, q)
                .unwrap()
                .into_iter()
                .map(|r| (r.key, r.status, r.generation.0))
                .collect()
        })
        .collect()
}

/// Jobs of one batch see what the jobs before them wrote — point reads and listings, which
/// the store merges from its unwritten batch and the database — and never what a failed job
/// wrote; once committed, the database lists exactly what the last job saw.
async fn jobs_of_one_batch_read_and_list_each_others_writes(e: &dyn Engine) {
    let store = e.open();
    store
        .write(|tx| {
            for i in 0..10 {
                let status = format!("s{}", i % 2);
                tx.insert(Kind::Meta, &format!("r{i}"), Some(&status), "{}")?;
            }
            Ok(())
        })
        .await
        .unwrap();
    // The writer holds this job until the others are queued: they make up the next batch.
    let (go, held) = std::sync::mpsc::channel::<()>();
    let hold = store.write(move |_| {
        held.recv().unwrap();
        Ok(())
    });
    let first = store.write(|tx| {
        let g = tx.get(Kind::Meta, "r1")?.unwrap().generation;
        tx.update(Kind::Meta, "r1", g, Some("s0"), "{}")?;
        tx.delete(Kind::Meta, "r2", Generation(1))?;
        tx.insert(Kind::Meta, "r10", Some("s1"), "{}")?;
        Ok(())
    });
    let failed = store.write(|tx| {
        tx.insert(Kind::Meta, "r11", Some("s1"), "{}")?;
        tx.delete(Kind::Meta, "r3", Generation(1))?;
        Err::<(), _>(Error::Client("refused".into()))
    });
    let last = store.write(|tx| {
        assert!(tx.get(Kind::Meta, "r11")?.is_none());
        assert!(tx.get(Kind::Meta, "r2")?.is_none());
        assert_eq!(tx.get(Kind::Meta, "r3")?.unwrap().generation, Generation(1));
        assert_eq!(
            tx.get(Kind::Meta, "r1")?.unwrap().status.as_deref(),
            Some("s0")
        );
        let before = listed(tx);
        assert!(before[0].iter().any(|(k, _, _)| k == "r10"));
        assert!(!before[0].iter().any(|(k, _, _)| k == "r2" || k == "r11"));
        tx.delete(Kind::Meta, "r10", Generation(1))?;
        assert_eq!(
            tx.insert(Kind::Meta, "r2", Some("s1"), "{}")?,
            Generation(1)
        );
        tx.update(Kind::Meta, "r4", Generation(1), Some("s1"), "{}")?;
        Ok(listed(tx))
    });
    let release = async move {
        go.send(()).unwrap();
    };
    let (hold, first, failed, last, ()) = tokio::join!(hold, first, failed, last, release);
    hold.unwrap();
    first.unwrap();
    assert!(failed.is_err());
    let seen = last.unwrap();
    assert_eq!(store.read(|r| Ok(listed(r))).unwrap(), seen);
    store.close();
    assert_eq!(e.open().read(|r| Ok(listed(r))).unwrap(), seen);
    assert_eq!(
        seen[0]
            .iter()
            .map(|(k, _, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["r0", "r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8", "r9"]
    );
}

/// Runs `sql` on `url` on a thread of its own and returns the first column of each row.
fn pg_query(url: &str, sql: &'static str) -> Vec<i64> {
    let url = url.to_string();
    std::thread::spawn(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        client
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    })
    .join()
    .unwrap()
}

/// On a database whose transactions run at REPEATABLE READ (as CockroachDB's and
/// YugabyteDB's stricter levels do), a writer that waited for the commit lock while another
/// transaction updated it gets SQLSTATE 40001; the store begins the batch again and the
/// write is acknowledged once, durably.
#[tokio::test]
async fn postgres_serialization_failures_are_retried() {
    let e = Postgres::new();
    admin(
        &e.server,
        format!(
            "ALTER DATABASE {} SET default_transaction_isolation TO 'repeatable read'",
            e.database
        ),
    );
    let store = e.open();
    store
        .write(|tx| tx.insert(Kind::Meta, "before", None, "1"))
        .await
        .unwrap();
    // Another client holds the commit lock's row, updated, until told to commit.
    let (locked, is_locked) = std::sync::mpsc::channel();
    let (commit, do_commit) = std::sync::mpsc::channel::<()>();
    let url = e.location();
    let other = std::thread::spawn(move || {
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        let mut tx = client.transaction().unwrap();
        tx.batch_execute("UPDATE berth_revision SET rev = rev WHERE id = 1")
            .unwrap();
        locked.send(()).unwrap();
        do_commit.recv().unwrap();
        tx.commit().unwrap();
    });
    is_locked.recv().unwrap();
    let s = store.clone();
    let write = tokio::spawn(async move {
        s.write(|tx| tx.insert(Kind::Meta, "after", None, "2"))
            .await
    });
    let url = e.location();
    eventually("the store's writer to wait for the commit lock", || {
        let url = url.clone();
        async move {
            pg_query(
                &url,
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'
                 AND datname = current_database()",
            )[0] > 0
        }
    })
    .await;
    commit.send(()).unwrap();
    other.join().unwrap();
    write.await.unwrap().unwrap();
    store.close();
    let reopened = e.open();
    let after = reopened.read(|r| r.get(Kind::Meta, "after")).unwrap();
    assert_eq!(after.map(|r| r.doc), Some("2".to_string()));
}

/// Keys with quotes, backslashes and non-ASCII text come back from the change feed exactly as
/// written (the feed's row is text the engine quotes itself).
async fn any_key_reaches_the_change_feed_as_written(e: &dyn Engine) {
    let store = e.open();
    let from = store.revision().unwrap();
    let key = r#"it's a \ "key" \n ünï"#;
    store
        .write(move |tx| tx.insert(Kind::Meta, key, None, "1"))
        .await
        .unwrap();
    let changes = store.changes_since(from).unwrap().unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].keys, Some(vec![(Kind::Meta, key.to_string())]));
}

/// `insert_new` creates without looking the key up; a key this batch wrote is still a
/// conflict, and one the database has makes the commit fail — nothing of it kept.
async fn insert_new_trusts_the_caller_and_a_taken_key_fails_the_batch(e: &dyn Engine) {
    let store = e.open();
    store
        .write(|tx| {
            tx.insert_new(Kind::Meta, "fresh", None, "1")?;
            assert_eq!(
                tx.insert_new(Kind::Meta, "fresh", None, "2"),
                Err(Error::Conflict)
            );
            Ok(())
        })
        .await
        .unwrap();
    let failed = store
        .write(|tx| {
            tx.insert(Kind::Meta, "alongside", None, "1")?;
            tx.insert_new(Kind::Meta, "fresh", None, "3")
        })
        .await;
    assert!(failed.is_err(), "{failed:?}");
    let (fresh, alongside) = store
        .read(|r| Ok((r.get(Kind::Meta, "fresh")?, r.get(Kind::Meta, "alongside")?)))
        .unwrap();
    assert_eq!(fresh.map(|r| r.doc), Some("1".to_string()));
    assert!(alongside.is_none());
}
