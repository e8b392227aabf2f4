//! The embedded engine: SQLite in WAL mode (`synchronous=FULL`), one writer connection, reader
//! connections opened as the store's pool needs them.

use crate::backend::{
    Engine, Opened, ReadConn, Write, WriteConn, contiguous, lease_sql, list_sql, prefix_end,
};
use crate::{Kind, Lease, ListQuery, Record, StoreError};
use berth_types::Generation;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::{Path, PathBuf};

/// Schema migrations, applied in order at start-up; `PRAGMA user_version` counts them.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE records (
        kind TEXT NOT NULL,
        key TEXT NOT NULL,
        generation INTEGER NOT NULL,
        status TEXT,
        doc TEXT NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    CREATE INDEX records_by_status ON records (kind, status, key);",
    "CREATE TABLE berth_revision (id INTEGER PRIMARY KEY, rev INTEGER NOT NULL);
    INSERT INTO berth_revision (id, rev) VALUES (1, 0);
    CREATE TABLE berth_changes (rev INTEGER PRIMARY KEY, changes TEXT NOT NULL);
    CREATE TABLE berth_leases (
        name TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );",
];

/// The database's clock, in Unix milliseconds.
const NOW_MS: &str = "CAST(unixepoch('subsec') * 1000 AS INTEGER)";

/// The writer connection's page cache, KiB.
const WRITER_CACHE_KIB: i64 = 32 * 1024;

fn open_connection(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

/// Opens (creating if needed) the database at `path`, runs pending migrations, and returns
/// the writer's connection and the engine readers come from.
pub(crate) fn open(path: &Path) -> Result<Opened, StoreError> {
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
    Ok(Opened {
        writer: Box::new(Sqlite(conn)),
        engine: Box::new(Readers {
            path: path.to_path_buf(),
        }),
    })
}

struct Sqlite(Connection);

struct Readers {
    path: PathBuf,
}

impl Engine for Readers {
    fn reader(&self) -> Result<Box<dyn ReadConn + Send>, StoreError> {
        Ok(Box::new(Sqlite(open_connection(&self.path)?)))
    }
}

impl ReadConn for Sqlite {
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT generation, status, doc FROM records WHERE kind = ?1 AND key = ?2",
        )?;
        Ok(stmt
            .query_row(params![kind.as_str(), key], |r| {
                Ok(Record {
                    key: key.to_string(),
                    generation: Generation(r.get::<_, i64>(0)? as u64),
                    status: r.get(1)?,
                    doc: r.get(2)?,
                })
            })
            .optional()?)
    }

    fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, StoreError> {
        let sql = list_sql(q, |n| format!("?{n}"));
        let (kind_name, upper) = (kind.as_str(), prefix_end(q.prefix));
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&kind_name, &q.prefix, &upper];
        values.extend(q.status.as_ref().map(|s| s as &dyn rusqlite::ToSql));
        values.extend(q.after.as_ref().map(|a| a as &dyn rusqlite::ToSql));
        let mut stmt = self.0.prepare_cached(&sql)?;
        let rows = stmt.query_map(values.as_slice(), |r| {
            Ok(Record {
                key: r.get(0)?,
                generation: Generation(r.get::<_, i64>(1)? as u64),
                status: r.get(2)?,
                doc: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn regions(&self) -> Result<Vec<String>, StoreError> {
        let mut stmt = self.0.prepare(
            "SELECT DISTINCT substr(key, 1, instr(key, char(9)) - 1) FROM records
             WHERE instr(key, char(9)) > 0",
        )?;
        let rows = stmt.query_map([], |row| row.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn revision(&self) -> Result<u64, StoreError> {
        let rev: i64 = self
            .0
            .prepare_cached("SELECT rev FROM berth_revision WHERE id = 1")?
            .query_row([], |r| r.get(0))?;
        Ok(rev as u64)
    }

    fn changes(&self, after: u64, upto: u64) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        let mut stmt = self.0.prepare_cached(
            "SELECT rev, changes FROM berth_changes WHERE rev > ?1 AND rev <= ?2 ORDER BY rev",
        )?;
        let rows = stmt
            .query_map(params![after as i64, upto as i64], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(contiguous(rows, after, upto))
    }

    fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let mut stmt = self.0.prepare_cached(&format!(
            "SELECT name, holder, epoch, expires_ms - {NOW_MS} FROM berth_leases ORDER BY name"
        ))?;
        let rows = stmt.query_map([], |r| {
            Ok(Lease {
                name: r.get(0)?,
                holder: r.get(1)?,
                epoch: r.get::<_, i64>(2)? as u64,
                remaining_ms: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }
}

impl WriteConn for Sqlite {
    fn apply(&self, writes: &[Write<'_>]) -> Result<(), StoreError> {
        for w in writes {
            let kind = w.kind.as_str();
            let n = match (w.expected, w.now) {
                (None, None) => continue,
                (None, Some(r)) => self
                    .0
                    .prepare_cached(
                        "INSERT INTO records (kind, key, generation, status, doc)
                         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![kind, w.key, r.generation.0 as i64, r.status, r.doc])?,
                (Some(expected), Some(r)) => self
                    .0
                    .prepare_cached(
                        "UPDATE records SET generation = ?3, status = ?4, doc = ?5
                         WHERE kind = ?1 AND key = ?2 AND generation = ?6",
                    )?
                    .execute(params![
                        kind,
                        w.key,
                        r.generation.0 as i64,
                        r.status,
                        r.doc,
                        expected.0 as i64
                    ])?,
                (Some(expected), None) => self
                    .0
                    .prepare_cached(
                        "DELETE FROM records WHERE kind = ?1 AND key = ?2 AND generation = ?3",
                    )?
                    .execute(params![kind, w.key, expected.0 as i64])?,
            };
            if n != 1 {
                return Err(StoreError::Diverged(format!(
                    "the {kind} record {:?}",
                    w.key
                )));
            }
        }
        Ok(())
    }

    fn delete_all(&self) -> Result<(), StoreError> {
        self.0.execute("DELETE FROM records", [])?;
        Ok(())
    }

    fn assign_region(&self, region: &str, shared: &[Kind]) -> Result<usize, StoreError> {
        let shared: Vec<&str> = shared.iter().map(|k| k.as_str()).collect();
        let placeholders = (0..shared.len())
            .map(|i| format!("?{}", i + 2))
            .collect::<Vec<_>>()
            .join(", ");
        let mut values: Vec<&dyn rusqlite::ToSql> = vec![&region];
        values.extend(shared.iter().map(|s| s as &dyn rusqlite::ToSql));
        Ok(self.0.execute(
            &format!(
                "UPDATE records SET key = ?1 || char(9) || key
                 WHERE instr(key, char(9)) = 0 AND kind NOT IN ({placeholders})"
            ),
            values.as_slice(),
        )?)
    }

    fn begin(&mut self) -> Result<u64, StoreError> {
        // BEGIN IMMEDIATE takes the database's write lock: that is the commit lock.
        self.0.execute_batch("BEGIN IMMEDIATE")?;
        self.revision()
    }
    fn append_change(&self, rev: u64, changes: &str) -> Result<(), StoreError> {
        self.0
            .prepare_cached("UPDATE berth_revision SET rev = ?1 WHERE id = 1")?
            .execute(params![rev as i64])?;
        self.0
            .prepare_cached("INSERT INTO berth_changes (rev, changes) VALUES (?1, ?2)")?
            .execute(params![rev as i64, changes])?;
        Ok(())
    }
    fn prune_changes(&self, below: u64) -> Result<(), StoreError> {
        self.0
            .prepare_cached("DELETE FROM berth_changes WHERE rev < ?1")?
            .execute(params![below as i64])?;
        Ok(())
    }
    fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl_ms: i64,
    ) -> Result<Option<u64>, StoreError> {
        let sql = lease_sql(NOW_MS, |n| format!("?{n}"));
        Ok(self
            .0
            .prepare_cached(&sql)?
            .query_row(params![name, holder, ttl_ms], |r| r.get::<_, i64>(0))
            .optional()?
            .map(|e| e as u64))
    }
    fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.0
            .prepare_cached(
                "UPDATE berth_leases SET expires_ms = 0 WHERE name = ?1 AND holder = ?2",
            )?
            .execute(params![name, holder])?;
        Ok(())
    }
    fn commit(&mut self) -> Result<(), StoreError> {
        Ok(self.0.execute_batch("COMMIT")?)
    }
    fn rollback(&mut self) {
        if !self.0.is_autocommit() {
            let _ = self.0.execute_batch("ROLLBACK");
        }
    }
    fn savepoint(&self) -> Result<(), StoreError> {
        Ok(self.0.execute_batch("SAVEPOINT job")?)
    }
    fn release(&self) -> Result<(), StoreError> {
        Ok(self.0.execute_batch("RELEASE job")?)
    }
    fn rollback_to_savepoint(&self) -> Result<(), StoreError> {
        Ok(self.0.execute_batch("ROLLBACK TO job; RELEASE job")?)
    }
}

/// Writes a consistent copy of the database at `path` to `to` (a new file) while writers may
/// go on: `VACUUM INTO` reads one snapshot. The copy is fsynced.
pub(crate) fn snapshot(path: &Path, to: &Path) -> Result<(), StoreError> {
    let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let target = to
        .to_str()
        .ok_or_else(|| StoreError::Io(format!("{}: not UTF-8", to.display())))?;
    conn.execute("VACUUM INTO ?1", params![target])?;
    std::fs::File::open(to)
        .and_then(|f| f.sync_all())
        .map_err(|e| StoreError::Io(format!("{}: {e}", to.display())))?;
    Ok(())
}
