//! `berth backup` and `berth restore` (a consistent copy of an embedded data directory, taken
//! while its server runs), and `berth migrate-store` (an embedded data directory's records
//! into PostgreSQL).
//!
//! A backup is a directory: `berth.db` (one snapshot of the embedded database, which also
//! holds manifests and small blobs), `blobs/` (every committed blob file; uploads in progress
//! are left out, their clients retry), `credentials.json`, and `berth-backup.json`, written
//! last, which marks it complete. Blob files are immutable and content-addressed; they are
//! copied after the snapshot, and the garbage collector only removes content unreferenced for
//! longer than its grace period, so every blob the snapshot references is still there to copy
//! (unless a backup takes longer than `--gc-grace`).

use crate::data_dir::{DataDir, credentials_path, replace_file};
use berth_store::{Kind, ListQuery, Store};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Refused(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    #[error(transparent)]
    DataDir(#[from] crate::data_dir::DataDirError),
    #[error("{0}")]
    Domain(#[from] berth_types::Error),
    #[error(transparent)]
    Blob(#[from] berth_blob::BlobError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The file that marks a backup complete.
const MANIFEST: &str = "berth-backup.json";

/// What a backup or restore copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub blobs: usize,
    pub bytes: u64,
}

/// Backs the embedded data directory `data` up into the new directory `to`, while a server
/// may be serving from it (no lock is taken; the database is read through one snapshot).
pub fn backup(data: &Path, to: &Path) -> Result<Copied, BackupError> {
    let db = data.join("berth.db");
    if !db.is_file() {
        return Err(BackupError::Refused(format!(
            "{} has no embedded database (a server on --database keeps its records in PostgreSQL: back that up with pg_dump or the database's own backups)",
            data.display()
        )));
    }
    if to.exists() && std::fs::read_dir(to).map_err(io(to))?.next().is_some() {
        return Err(BackupError::Refused(format!(
            "{} exists and is not empty: back up into a new directory",
            to.display()
        )));
    }
    std::fs::create_dir_all(to).map_err(io(to))?;
    berth_store::snapshot_embedded(&db, &to.join("berth.db"))?;
    let copied = copy_blobs(&data.join("blobs/blobs"), &to.join("blobs/blobs"))?;
    let creds = credentials_path(data);
    if creds.is_file() {
        copy_file(&creds, &credentials_path(to))?;
    }
    let manifest = serde_json::json!({
        "format": 1,
        "createdAt": berth_types::Timestamp::now().epoch_seconds(),
        "blobs": copied.blobs,
        "blobBytes": copied.bytes,
    });
    let marker = to.join(MANIFEST);
    replace_file(&marker, manifest.to_string().as_bytes(), 0o644).map_err(io(&marker))?;
    Ok(copied)
}

/// Restores the backup in `from` into the data directory `data`, which must hold no database
/// yet (and no running server: its lock is taken).
pub fn restore(from: &Path, data: &Path) -> Result<Copied, BackupError> {
    if !from.join(MANIFEST).is_file() {
        return Err(BackupError::Refused(format!(
            "{} is not a complete Berth backup (no {MANIFEST})",
            from.display()
        )));
    }
    let dir = DataDir::open(data)?;
    if dir.database().exists() {
        return Err(BackupError::Refused(format!(
            "{} already has a database: restore into a new data directory",
            data.display()
        )));
    }
    let copied = copy_blobs(&from.join("blobs/blobs"), &dir.blobs().join("blobs"))?;
    let creds = credentials_path(from);
    if creds.is_file() {
        copy_file(&creds, &dir.credentials_path())?;
    }
    // The database last: a data directory with a database is a restored one.
    copy_file(&from.join("berth.db"), &dir.database())?;
    sync_dir(dir.path())?;
    Ok(copied)
}

/// What `berth migrate-store` moved.
pub struct Migrated {
    pub records: usize,
    /// Blobs (and their bytes) copied to the S3 store, when one was given.
    pub blobs: Option<(usize, u64)>,
}

/// Copies every record of the embedded data directory `data` (whose server must be stopped:
/// its lock is taken) into the empty PostgreSQL database at `url` and, given `blobs`
/// (`s3://…`), its large blobs into that store, recorded there. Without `blobs` they stay in
/// the data directory, which the server on PostgreSQL goes on using.
pub async fn migrate_store(
    data: &Path,
    url: &str,
    blobs: Option<&str>,
    scope: berth_types::Scope,
) -> Result<Migrated, BackupError> {
    let dir = DataDir::open(data)?;
    if !dir.database().is_file() {
        return Err(BackupError::Refused(format!(
            "{} has no embedded database to migrate",
            data.display()
        )));
    }
    let from = Store::open(&dir.database())?;
    let to = Store::open_postgres(url)?;
    for kind in Kind::ALL {
        let any = to.read(|r| {
            r.list(
                kind,
                &ListQuery {
                    limit: 1,
                    ..Default::default()
                },
            )
        })?;
        if !any.is_empty() {
            return Err(BackupError::Refused(format!(
                "the database at {url} already holds Berth records: migrate into an empty one"
            )));
        }
    }
    let mut moved = 0;
    for kind in Kind::ALL {
        let mut after: Option<String> = None;
        loop {
            let page = from.read(|r| {
                r.list(
                    kind,
                    &ListQuery {
                        after: after.as_deref(),
                        limit: 500,
                        ..Default::default()
                    },
                )
            })?;
            let Some(last) = page.last() else { break };
            after = Some(last.key.clone());
            moved += page.len();
            to.write(move |tx| {
                for r in &page {
                    tx.insert(kind, &r.key, r.status.as_deref(), &r.doc)?;
                }
                Ok(())
            })
            .await?;
        }
    }
    from.close();
    let blobs = match blobs {
        None => None,
        Some(target) => {
            let registry = berth_registry::Registry::new(
                scope,
                to.clone(),
                berth_blob::open(None, &dir.blobs())?,
                String::new(),
            );
            // Blob files of data directories from before blob records get theirs first.
            registry.adopt_unrecorded_blob_files().await?;
            Some(
                registry
                    .copy_blobs_to(&berth_blob::open(Some(target), &dir.blobs())?)
                    .await?,
            )
        }
    };
    to.close();
    Ok(Migrated {
        records: moved,
        blobs,
    })
}

/// Copies the content-addressed blob files under `from` (`sha256/xx/hex`) to `to`.
fn copy_blobs(from: &Path, to: &Path) -> Result<Copied, BackupError> {
    let mut copied = Copied { blobs: 0, bytes: 0 };
    let algorithms = match std::fs::read_dir(from) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(copied),
        Err(e) => return Err(io(from)(e)),
    };
    for algorithm in algorithms {
        let algorithm = algorithm.map_err(io(from))?.path();
        for prefix in std::fs::read_dir(&algorithm).map_err(io(&algorithm))? {
            let prefix = prefix.map_err(io(&algorithm))?.path();
            for blob in std::fs::read_dir(&prefix).map_err(io(&prefix))? {
                let blob = blob.map_err(io(&prefix))?.path();
                let Ok(rel) = blob.strip_prefix(from) else {
                    continue;
                };
                let dest = to.join(rel);
                if let Some(parent) = dest.parent() {
                    std::fs::create_dir_all(parent).map_err(io(parent))?;
                }
                copied.bytes += copy_file(&blob, &dest)?;
                copied.blobs += 1;
            }
        }
    }
    Ok(copied)
}

/// Copies a file through a temporary name, fsynced, keeping its permissions; its size.
fn copy_file(from: &Path, to: &Path) -> Result<u64, BackupError> {
    let tmp = to.with_extension("restoring");
    let n = std::fs::copy(from, &tmp).map_err(io(from))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(io(&tmp))?;
    std::fs::rename(&tmp, to).map_err(io(to))?;
    Ok(n)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}
