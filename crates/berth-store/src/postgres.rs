//! The PostgreSQL engine (`postgres://…`): one table, keys `COLLATE "C"` so they sort by bytes
//! as listings need, on the portable subset of SQL listed in docs/architecture.md (no
//! triggers, no advisory locks, no LISTEN/NOTIFY, key-range scans instead of `LIKE`). A batch's
//! writes reach the database as one statement per kind of change (`UNNEST` of arrays).
//!
//! The `postgres` client is blocking and runs its own small runtime, which must never be
//! entered from an async context: every connection lives on a thread of its own — the store's
//! writer thread for the writer, one thread per pooled reader, which the reader handle sends
//! each operation to.

use crate::backend::{
    Engine, Opened, ReadConn, Write, WriteConn, contiguous, lease_sql, list_sql, prefix_end,
};
use crate::{Kind, Lease, ListQuery, Record, StoreError};
use berth_types::Generation;
use postgres::types::ToSql;
use postgres::{Client, NoTls, Statement};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::mpsc;

/// Schema migrations, applied in order at start-up; `berth_schema.version` counts them.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE records (
        kind TEXT NOT NULL,
        key TEXT COLLATE \"C\" NOT NULL,
        generation BIGINT NOT NULL,
        status TEXT,
        doc TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    );
    CREATE INDEX records_by_status ON records (kind, status, key);",
    "CREATE TABLE berth_revision (id INTEGER PRIMARY KEY, rev BIGINT NOT NULL);
    INSERT INTO berth_revision (id, rev) VALUES (1, 0);
    CREATE TABLE berth_changes (rev BIGINT PRIMARY KEY, changes TEXT NOT NULL);
    CREATE TABLE berth_leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        expires_ms BIGINT NOT NULL
    );",
];

/// The database server's clock, in Unix milliseconds (the statement's own time, not the
/// transaction's start).
const NOW_MS: &str = "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)";

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // No SQLSTATE: the connection failed; class 08 (connection exception) and 57P
        // (operator intervention: shutdown, restart) are the server going away.
        let gone = e.is_closed()
            || e.code().is_none_or(|c| {
                let c = c.code();
                c.starts_with("08") || c.starts_with("57P")
            });
        let retry = e
            .code()
            .is_some_and(|c| matches!(c.code(), "40001" | "40P01"));
        if gone {
            StoreError::Unavailable(e.to_string())
        } else if retry {
            StoreError::Serialization(e.to_string())
        } else {
            StoreError::Postgres(e.to_string())
        }
    }
}

/// Runs `f` on a thread outside any async runtime (the client's own runtime may not nest).
fn off_runtime<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(f).join().expect("postgres thread")
}

fn connect(url: &str) -> Result<Client, StoreError> {
    Ok(Client::connect(url, NoTls)?)
}

/// Connects to the database at `url`, runs pending migrations, and returns the writer's
/// connection and the engine readers come from.
pub(crate) fn open(url: &str) -> Result<Opened, StoreError> {
    let url = url.to_string();
    let client = off_runtime({
        let url = url.clone();
        move || -> Result<Client, StoreError> {
            let mut client = connect(&url)?;
            migrate(&mut client)?;
            Ok(client)
        }
    })?;
    Ok(Opened {
        writer: Box::new(Pg::new(&url, client)),
        engine: Box::new(Readers { url }),
    })
}

fn migrate(client: &mut Client) -> Result<(), StoreError> {
    client.batch_execute("CREATE TABLE IF NOT EXISTS berth_schema (version INTEGER NOT NULL)")?;
    let mut tx = client.transaction()?;
    // One migrator at a time (replicas starting together): the version row is locked.
    tx.batch_execute("LOCK TABLE berth_schema IN EXCLUSIVE MODE")?;
    let version: i32 = match tx.query_opt("SELECT version FROM berth_schema", &[])? {
        Some(row) => row.get(0),
        None => {
            tx.execute("INSERT INTO berth_schema (version) VALUES (0)", &[])?;
            0
        }
    };
    let known = MIGRATIONS.len() as i32;
    if version > known {
        return Err(StoreError::TooNew {
            found: version.into(),
            known: known.into(),
        });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql)?;
        tx.execute("UPDATE berth_schema SET version = $1", &[&(i as i32 + 1)])?;
    }
    tx.commit()?;
    Ok(())
}

/// One connection, with its prepared statements; connected again when the server closed it
/// (a restart), before the next statement.
struct Pg {
    url: String,
    client: RefCell<Client>,
    statements: RefCell<HashMap<String, Statement>>,
    /// Statements (of the writer) sent with the next `COMMIT`.
    at_commit: RefCell<String>,
    /// A transaction is open: a lost connection must fail it, never be replaced under it
    /// (the rest of the batch would run outside the transaction).
    in_tx: std::cell::Cell<bool>,
}

/// `text` as an SQL string literal, whatever `standard_conforming_strings` says (an `E''`
/// literal: backslashes and quotes doubled). Text the store writes has no NUL.
fn literal(text: &str) -> String {
    format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

impl Pg {
    fn new(url: &str, client: Client) -> Pg {
        Pg {
            url: url.to_string(),
            client: RefCell::new(client),
            statements: RefCell::default(),
            at_commit: RefCell::default(),
            in_tx: Default::default(),
        }
    }

    fn reconnect_if_closed(&self) -> Result<(), StoreError> {
        if self.client.borrow().is_closed() {
            if self.in_tx.get() {
                return Err(StoreError::Unavailable(
                    "the connection to the database was lost during a transaction".into(),
                ));
            }
            self.reconnect()?;
        }
        Ok(())
    }

    /// A new connection in place of this one.
    fn reconnect(&self) -> Result<(), StoreError> {
        *self.client.borrow_mut() = connect(&self.url)?;
        self.statements.borrow_mut().clear();
        Ok(())
    }

    fn statement(&self, sql: &str) -> Result<Statement, StoreError> {
        self.reconnect_if_closed()?;
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.borrow_mut().prepare(sql)?;
        self.statements
            .borrow_mut()
            .insert(sql.to_string(), s.clone());
        Ok(s)
    }

    fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.client.borrow_mut().execute(&s, params)?)
    }

    fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<postgres::Row>, StoreError> {
        let s = self.statement(sql)?;
        Ok(self.client.borrow_mut().query(&s, params)?)
    }

    fn batch(&self, sql: &str) -> Result<(), StoreError> {
        self.reconnect_if_closed()?;
        Ok(self.client.borrow_mut().batch_execute(sql)?)
    }
}

impl ReadConn for Pg {
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        let rows = self.query(
            "SELECT generation, status, doc FROM records WHERE kind = $1 AND key = $2",
            &[&kind.as_str(), &key],
        )?;
        Ok(rows.first().map(|r| Record {
            key: key.to_string(),
            generation: Generation(r.get::<_, i64>(0) as u64),
            status: r.get(1),
            doc: r.get(2),
        }))
    }

    fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, StoreError> {
        let sql = list_sql(q, |n| format!("${n}"));
        let (kind_name, upper) = (kind.as_str(), prefix_end(q.prefix));
        let mut values: Vec<&(dyn ToSql + Sync)> = vec![&kind_name, &q.prefix, &upper];
        values.extend(q.status.as_ref().map(|s| s as &(dyn ToSql + Sync)));
        values.extend(q.after.as_ref().map(|a| a as &(dyn ToSql + Sync)));
        Ok(self
            .query(&sql, &values)?
            .iter()
            .map(|r| Record {
                key: r.get(0),
                generation: Generation(r.get::<_, i64>(1) as u64),
                status: r.get(2),
                doc: r.get(3),
            })
            .collect())
    }

    fn regions(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .query(
                "SELECT DISTINCT split_part(key, E'\\t', 1) FROM records WHERE strpos(key, E'\\t') > 0",
                &[],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn revision(&self) -> Result<u64, StoreError> {
        let rows = self.query("SELECT rev FROM berth_revision WHERE id = 1", &[])?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    fn changes(&self, after: u64, upto: u64) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        let rows = self.query(
            "SELECT rev, changes FROM berth_changes WHERE rev > $1 AND rev <= $2 ORDER BY rev",
            &[&(after as i64), &(upto as i64)],
        )?;
        let rows = rows
            .iter()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, String>(1)))
            .collect();
        Ok(contiguous(rows, after, upto))
    }

    fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let sql = format!(
            "SELECT name, holder, epoch, expires_ms - {NOW_MS} FROM berth_leases ORDER BY name"
        );
        Ok(self
            .query(&sql, &[])?
            .iter()
            .map(|r| Lease {
                name: r.get(0),
                holder: r.get(1),
                epoch: r.get::<_, i64>(2) as u64,
                remaining_ms: r.get(3),
            })
            .collect())
    }
}

impl WriteConn for Pg {
    fn apply(&self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        // One statement per kind of change, each row conditional; the row counts tell
        // whether every condition held.
        let mut inserts = Columns::default();
        let mut updates = Columns::default();
        let mut deletes = Columns::default();
        for w in writes {
            match (w.expected, w.now) {
                (None, None) => {}
                (None, Some(r)) => inserts.push(w, r),
                (Some(expected), Some(r)) => {
                    updates.push(w, r);
                    updates.expected.push(expected.0 as i64);
                }
                (Some(expected), None) => {
                    deletes.kinds.push(w.kind.as_str());
                    deletes.keys.push(w.key);
                    deletes.expected.push(expected.0 as i64);
                }
            }
        }
        let mut wrong = false;
        if !inserts.keys.is_empty() {
            let c = &inserts;
            let n = self.execute(
                "INSERT INTO records (kind, key, generation, status, doc)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[])
                 ON CONFLICT DO NOTHING",
                &[&c.kinds, &c.keys, &c.generations, &c.statuses, &c.docs],
            )?;
            wrong |= n != c.keys.len() as u64;
        }
        if !updates.keys.is_empty() {
            let c = &updates;
            let n = self.execute(
                "UPDATE records AS r SET generation = u.generation, status = u.status, doc = u.doc
                 FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], $6::int8[])
                     AS u (kind, key, generation, status, doc, expected)
                 WHERE r.kind = u.kind AND r.key = u.key COLLATE \"C\" AND r.generation = u.expected",
                &[
                    &c.kinds,
                    &c.keys,
                    &c.generations,
                    &c.statuses,
                    &c.docs,
                    &c.expected,
                ],
            )?;
            wrong |= n != c.keys.len() as u64;
        }
        if !deletes.keys.is_empty() {
            let c = &deletes;
            let n = self.execute(
                "DELETE FROM records AS r
                 USING UNNEST($1::text[], $2::text[], $3::int8[]) AS d (kind, key, expected)
                 WHERE r.kind = d.kind AND r.key = d.key COLLATE \"C\" AND r.generation = d.expected",
                &[&c.kinds, &c.keys, &c.expected],
            )?;
            wrong |= n != c.keys.len() as u64;
        }
        if wrong {
            // Which one is not worth another round trip: the batch fails as a whole.
            return Err(StoreError::Diverged("one of the batch's records".into()));
        }
        Ok(())
    }

    fn delete_all(&self) -> Result<(), StoreError> {
        self.batch("DELETE FROM records")
    }

    fn assign_region(&self, region: &str, shared: &[Kind]) -> Result<usize, StoreError> {
        let shared: Vec<&str> = shared.iter().map(|k| k.as_str()).collect();
        let n = self.execute(
            "UPDATE records SET key = $1 || E'\\t' || key
             WHERE strpos(key, E'\\t') = 0 AND kind <> ALL($2)",
            &[&region, &shared],
        )?;
        Ok(n as usize)
    }

    fn begin(&mut self) -> Result<u64, StoreError> {
        // The revision row, locked until the commit, is the commit lock every replica's
        // writer takes first; one round trip for both statements.
        self.reconnect_if_closed()?;
        self.in_tx.set(true);
        let replies = self
            .client
            .borrow_mut()
            .simple_query("BEGIN; SELECT rev FROM berth_revision WHERE id = 1 FOR UPDATE")?;
        let rev = replies.iter().find_map(|m| match m {
            postgres::SimpleQueryMessage::Row(row) => row.get(0).and_then(|v| v.parse().ok()),
            _ => None,
        });
        rev.ok_or_else(|| StoreError::Postgres("the revision row is missing".into()))
    }
    // The revision and change row go with the `COMMIT`, in one round trip.
    fn append_change(&self, rev: u64, changes: &str) -> Result<(), StoreError> {
        self.at_commit.borrow_mut().push_str(&format!(
            "UPDATE berth_revision SET rev = {rev} WHERE id = 1;
             INSERT INTO berth_changes (rev, changes) VALUES ({rev}, {});",
            literal(changes)
        ));
        Ok(())
    }
    fn prune_changes(&self, below: u64) -> Result<(), StoreError> {
        self.at_commit
            .borrow_mut()
            .push_str(&format!("DELETE FROM berth_changes WHERE rev < {below};"));
        Ok(())
    }
    fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let sql = lease_sql(NOW_MS, |n| format!("${n}"));
        let rows = self.query(&sql, &[&name, &holder, &ttl_ms])?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0) as u64))
    }
    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.execute(
            "UPDATE berth_leases SET expires_ms = 0 WHERE name = $1 AND holder = $2",
            &[&name, &holder],
        )?;
        Ok(())
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        let mut sql = std::mem::take(&mut *self.at_commit.borrow_mut());
        sql.push_str("COMMIT");
        let done = self.batch(&sql);
        self.in_tx.set(false);
        done
    }
    fn rollback(&mut self) {
        self.at_commit.borrow_mut().clear();
        self.in_tx.set(false);
        let _ = self.batch("ROLLBACK");
    }
    fn savepoint(&self) -> Result<(), StoreError> {
        self.batch("SAVEPOINT job")
    }
    fn release(&self) -> Result<(), StoreError> {
        self.batch("RELEASE SAVEPOINT job")
    }
    fn rollback_to_savepoint(&self) -> Result<(), StoreError> {
        self.batch("ROLLBACK TO SAVEPOINT job; RELEASE SAVEPOINT job")
    }
}

/// A batch's changes of one kind, as the arrays its statement unnests.
#[derive(Default)]
struct Columns<'a> {
    kinds: Vec<&'static str>,
    keys: Vec<&'a str>,
    generations: Vec<i64>,
    statuses: Vec<Option<&'a str>>,
    docs: Vec<&'a str>,
    expected: Vec<i64>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, w: &Write<'a>, r: &'a Record) {
        self.kinds.push(w.kind.as_str());
        self.keys.push(w.key);
        self.generations.push(r.generation.0 as i64);
        self.statuses.push(r.status.as_deref());
        self.docs.push(&r.doc);
    }
}

struct Readers {
    url: String,
}

type Op = Box<dyn FnOnce(&Pg) + Send>;

/// A reader connection on its own thread; each operation is sent there and waited for.
struct Reader {
    ops: mpsc::Sender<Op>,
}

impl Engine for Readers {
    fn reader(&self) -> Result<Box<dyn ReadConn + Send>, StoreError> {
        let (ops, incoming) = mpsc::channel::<Op>();
        let (ready, connected) = mpsc::channel();
        let url = self.url.clone();
        std::thread::Builder::new()
            .name("berth-store-reader".into())
            .spawn(move || {
                let pg = match connect(&url) {
                    Ok(client) => Pg::new(&url, client),
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                while let Ok(op) = incoming.recv() {
                    op(&pg);
                }
            })
            .map_err(StoreError::Thread)?;
        connected.recv().map_err(|_| StoreError::Closed)??;
        Ok(Box::new(Reader { ops }))
    }
}

impl Reader {
    fn run<T: Send + 'static>(
        &self,
        f: impl Fn(&Pg) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (done, wait) = mpsc::channel();
        self.ops
            .send(Box::new(move |pg: &Pg| {
                // A read may be repeated: on a connection the server has dropped (a restart
                // closes every session) it is sent once more on a new one, so a restart costs
                // each pooled reader nothing once the database is back.
                let mut read = f(pg);
                if matches!(read, Err(StoreError::Unavailable(_))) && pg.reconnect().is_ok() {
                    read = f(pg);
                }
                let _ = done.send(read);
            }))
            .map_err(|_| StoreError::Closed)?;
        wait.recv().map_err(|_| StoreError::Closed)?
    }
}

/// An owned copy of a listing's query, to send to the reader's thread.
struct OwnedQuery {
    prefix: String,
    after: Option<String>,
    status: Option<String>,
    descending: bool,
    limit: usize,
}

impl ReadConn for Reader {
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        let key = key.to_string();
        self.run(move |pg| pg.get(kind, &key))
    }
    fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, StoreError> {
        let q = OwnedQuery {
            prefix: q.prefix.to_string(),
            after: q.after.map(str::to_string),
            status: q.status.map(str::to_string),
            descending: q.descending,
            limit: q.limit,
        };
        self.run(move |pg| {
            pg.list(
                kind,
                &ListQuery {
                    prefix: &q.prefix,
                    after: q.after.as_deref(),
                    status: q.status.as_deref(),
                    descending: q.descending,
                    limit: q.limit,
                },
            )
        })
    }
    fn regions(&self) -> Result<Vec<String>, StoreError> {
        self.run(|pg| pg.regions())
    }
    fn revision(&self) -> Result<u64, StoreError> {
        self.run(|pg| pg.revision())
    }
    fn changes(&self, after: u64, upto: u64) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        self.run(move |pg| pg.changes(after, upto))
    }
    fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        self.run(|pg| pg.leases())
    }
}
