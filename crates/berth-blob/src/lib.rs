//! `berth-blob`: content-addressed blobs (image layers, configs, manifests) and resumable
//! uploads.
//!
//! Layout under the root directory:
//! * `blobs/sha256/<first two hex>/<hex>` — committed blobs, immutable, named by digest;
//! * `uploads/<id>` — uploads in progress (appended to chunk by chunk).
//!
//! A blob becomes visible only when [`BlobStore::upload_commit`] has checked the digest of every
//! byte received, fsynced the file and renamed it into place (then fsynced the directory), so
//! a crash never leaves a partial or unverified blob under a digest. Uploads stream to disk;
//! no upload is held in memory. Which repository may see which blob is the registry's
//! business (metadata in the store), not this crate's.
//!
//! This is the local-filesystem backend. (An S3 backend over `object_store` arrives with the
//! scale-out work; the commit step is built around create-if-absent, which both support.)

use berth_types::oci::Digest;
use bytes::Bytes;
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWriteExt;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob storage I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("upload not found")]
    UploadNotFound,
    /// A chunk did not start where the upload ends.
    #[error("chunk starts at {given}, the upload has {size} bytes")]
    OutOfOrder { given: u64, size: u64 },
    /// The bytes received do not have the digest the client named.
    #[error("the content's digest is {actual}")]
    DigestMismatch { actual: Digest },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An upload id: 32 hex characters rendered as a UUID (`8-4-4-4-12`).
pub fn new_upload_id() -> String {
    let b: [u8; 16] = rand::random();
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn valid_upload_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// The content-addressed store. Cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    /// Running hash and size of uploads in progress, so a commit need not re-read the file.
    /// Lost on restart; the commit then hashes the file.
    hashing: Mutex<HashMap<String, (Sha256, u64)>>,
}

impl BlobStore {
    pub fn open(root: &Path) -> Result<BlobStore, BlobError> {
        for d in ["blobs/sha256", "uploads"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(BlobStore {
            inner: Arc::new(Inner {
                root: root.to_path_buf(),
                hashing: Mutex::new(HashMap::new()),
            }),
        })
    }

    fn blob_path(&self, d: &Digest) -> PathBuf {
        let hex = d.hex();
        self.inner
            .root
            .join("blobs/sha256")
            .join(&hex[..2])
            .join(hex)
    }

    fn upload_path(&self, id: &str) -> Result<PathBuf, BlobError> {
        if !valid_upload_id(id) {
            return Err(BlobError::UploadNotFound);
        }
        Ok(self.inner.root.join("uploads").join(id))
    }

    /// The size of a committed blob, if it exists.
    pub async fn size(&self, d: &Digest) -> Result<Option<u64>, BlobError> {
        let p = self.blob_path(d);
        match tokio::fs::metadata(&p).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Opens a committed blob for reading.
    pub async fn open_blob(&self, d: &Digest) -> Result<Option<(tokio::fs::File, u64)>, BlobError> {
        let p = self.blob_path(d);
        match tokio::fs::File::open(&p).await {
            Ok(f) => {
                let len = f.metadata().await.map_err(io(&p))?.len();
                Ok(Some((f, len)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Reads a whole (small) blob, such as a manifest.
    pub async fn read(&self, d: &Digest) -> Result<Option<Bytes>, BlobError> {
        let p = self.blob_path(d);
        match tokio::fs::read(&p).await {
            Ok(b) => Ok(Some(Bytes::from(b))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Stores small content (a manifest) under its digest, durably; returns the digest.
    pub async fn put(&self, content: &[u8]) -> Result<Digest, BlobError> {
        let id = new_upload_id();
        self.upload_start(&id).await?;
        self.upload_append(&id, 0, content).await?;
        let digest = Digest::from_sha256_hex(&hex::encode(Sha256::digest(content)));
        self.upload_commit(&id, &digest).await?;
        Ok(digest)
    }

    /// Starts an upload under `id` (see [`new_upload_id`]).
    pub async fn upload_start(&self, id: &str) -> Result<(), BlobError> {
        let p = self.upload_path(id)?;
        tokio::fs::File::create(&p).await.map_err(io(&p))?;
        self.inner
            .hashing
            .lock()
            .expect("hash lock")
            .insert(id.to_string(), (Sha256::new(), 0));
        Ok(())
    }

    /// Bytes received so far.
    pub async fn upload_size(&self, id: &str) -> Result<u64, BlobError> {
        let p = self.upload_path(id)?;
        match tokio::fs::metadata(&p).await {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::UploadNotFound),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Appends `chunk`, which must start at byte `offset` (the current size).
    pub async fn upload_append(
        &self,
        id: &str,
        offset: u64,
        chunk: &[u8],
    ) -> Result<u64, BlobError> {
        let mut w = self.upload_writer(id, offset).await?;
        w.write(chunk).await?;
        w.finish().await
    }

    /// A writer that appends chunk after chunk (streamed request bodies), from `offset`.
    pub async fn upload_writer(&self, id: &str, offset: u64) -> Result<UploadWriter, BlobError> {
        let size = self.upload_size(id).await?;
        if offset != size {
            return Err(BlobError::OutOfOrder {
                given: offset,
                size,
            });
        }
        let p = self.upload_path(id)?;
        let file = tokio::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .await
            .map_err(io(&p))?;
        let hashing = self.inner.hashing.lock().expect("hash lock").remove(id);
        Ok(UploadWriter {
            store: self.clone(),
            id: id.to_string(),
            path: p,
            file,
            hashing: hashing.filter(|(_, n)| *n == size),
            size,
        })
    }

    /// Checks that the upload's content has digest `expected`; if so makes it the blob of that
    /// digest (durably) and returns its size. On a mismatch the upload is discarded.
    pub async fn upload_commit(&self, id: &str, expected: &Digest) -> Result<u64, BlobError> {
        let p = self.upload_path(id)?;
        let size = self.upload_size(id).await?;
        let hashing = self.inner.hashing.lock().expect("hash lock").remove(id);
        let actual = match hashing.filter(|(_, n)| *n == size) {
            Some((h, _)) => hex::encode(h.finalize()),
            None => hash_file(&p).await?,
        };
        if actual != expected.hex() {
            let _ = tokio::fs::remove_file(&p).await;
            return Err(BlobError::DigestMismatch {
                actual: Digest::from_sha256_hex(&actual),
            });
        }
        // Renamed into place even when the same content is already stored: the rename is
        // atomic, and the fresh modification time tells the garbage collector (which only
        // removes blobs untouched for a grace period) that the blob is in use again.
        let target = self.blob_path(expected);
        let dir = target
            .parent()
            .expect("blob path has a parent")
            .to_path_buf();
        tokio::fs::create_dir_all(&dir).await.map_err(io(&dir))?;
        let file = tokio::fs::File::open(&p).await.map_err(io(&p))?;
        file.sync_all().await.map_err(io(&p))?;
        tokio::fs::rename(&p, &target).await.map_err(io(&target))?;
        let d = tokio::fs::File::open(&dir).await.map_err(io(&dir))?;
        d.sync_all().await.map_err(io(&dir))?;
        Ok(size)
    }

    /// Reads a (small) upload whole after checking it has digest `expected`, and removes the
    /// upload. The caller stores the content elsewhere (the registry inlines small blobs in its
    /// metadata store). On a mismatch the upload is discarded.
    pub async fn upload_take(&self, id: &str, expected: &Digest) -> Result<Bytes, BlobError> {
        let p = self.upload_path(id)?;
        let content = match tokio::fs::read(&p).await {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::UploadNotFound);
            }
            Err(e) => return Err(io(&p)(e)),
        };
        self.inner.hashing.lock().expect("hash lock").remove(id);
        let _ = tokio::fs::remove_file(&p).await;
        let actual = hex::encode(Sha256::digest(&content));
        if actual != expected.hex() {
            return Err(BlobError::DigestMismatch {
                actual: Digest::from_sha256_hex(&actual),
            });
        }
        Ok(Bytes::from(content))
    }

    /// Abandons an upload.
    pub async fn upload_cancel(&self, id: &str) -> Result<(), BlobError> {
        let p = self.upload_path(id)?;
        self.inner.hashing.lock().expect("hash lock").remove(id);
        match tokio::fs::remove_file(&p).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(BlobError::UploadNotFound),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Removes uploads untouched for longer than `max_age`; returns how many.
    pub async fn uploads_expire(&self, max_age: Duration) -> Result<usize, BlobError> {
        let dir = self.inner.root.join("uploads");
        let mut entries = tokio::fs::read_dir(&dir).await.map_err(io(&dir))?;
        let mut removed = 0;
        let now = SystemTime::now();
        while let Some(e) = entries.next_entry().await.map_err(io(&dir))? {
            let modified = e.metadata().await.ok().and_then(|m| m.modified().ok());
            if modified.is_some_and(|m| now.duration_since(m).unwrap_or_default() >= max_age) {
                let name = e.file_name().to_string_lossy().to_string();
                self.inner.hashing.lock().expect("hash lock").remove(&name);
                if tokio::fs::remove_file(e.path()).await.is_ok() {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    /// Every committed blob with its last modification time (garbage collection).
    /// Synchronous: the collector runs it inside a store transaction.
    pub fn list_sync(&self) -> Result<Vec<(Digest, SystemTime)>, BlobError> {
        let root = self.inner.root.join("blobs/sha256");
        let mut out = Vec::new();
        for prefix in std::fs::read_dir(&root).map_err(io(&root))? {
            let prefix = prefix.map_err(io(&root))?.path();
            if !prefix.is_dir() {
                continue;
            }
            for entry in std::fs::read_dir(&prefix).map_err(io(&prefix))? {
                let entry = entry.map_err(io(&prefix))?;
                let name = entry.file_name().to_string_lossy().to_string();
                let Some(d) = Digest::parse(&format!("sha256:{name}")) else {
                    continue;
                };
                let modified = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .map_err(io(&entry.path()))?;
                out.push((d, modified));
            }
        }
        Ok(out)
    }

    /// Deletes a committed blob if it has not been touched since `untouched_since`.
    /// Synchronous: the collector runs it inside a store transaction, so no commit of the same
    /// content can slip between its checks and the removal unnoticed.
    pub fn delete_if_untouched_sync(
        &self,
        d: &Digest,
        untouched_since: SystemTime,
    ) -> Result<bool, BlobError> {
        let p = self.blob_path(d);
        match std::fs::metadata(&p).and_then(|m| m.modified()) {
            Ok(m) if m <= untouched_since => {}
            Ok(_) => return Ok(false),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io(&p)(e)),
        }
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io(&p)(e)),
        }
    }

    /// Whether a committed blob exists (synchronous, for store transactions).
    pub fn exists_sync(&self, d: &Digest) -> bool {
        self.blob_path(d).exists()
    }
}

async fn hash_file(p: &Path) -> Result<String, BlobError> {
    use tokio::io::AsyncReadExt;
    let mut f = tokio::fs::File::open(p).await.map_err(io(p))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await.map_err(io(p))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Appends to an upload, hashing as it goes. Call [`UploadWriter::finish`] at the end.
pub struct UploadWriter {
    store: BlobStore,
    id: String,
    path: PathBuf,
    file: tokio::fs::File,
    hashing: Option<(Sha256, u64)>,
    size: u64,
}

impl UploadWriter {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), BlobError> {
        self.file.write_all(chunk).await.map_err(io(&self.path))?;
        if let Some((h, n)) = &mut self.hashing {
            h.update(chunk);
            *n += chunk.len() as u64;
        }
        self.size += chunk.len() as u64;
        Ok(())
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Flushes and returns the upload's size.
    pub async fn finish(mut self) -> Result<u64, BlobError> {
        self.file.flush().await.map_err(io(&self.path))?;
        if let Some(h) = self.hashing.take() {
            self.store
                .inner
                .hashing
                .lock()
                .expect("hash lock")
                .insert(self.id.clone(), h);
        }
        Ok(self.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(b: &[u8]) -> Digest {
        Digest::from_sha256_hex(&hex::encode(Sha256::digest(b)))
    }

    #[tokio::test]
    async fn blob_upload_in_chunks_commits_only_with_the_right_digest() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let id = new_upload_id();
        s.upload_start(&id).await.unwrap();
        assert_eq!(s.upload_append(&id, 0, b"hello ").await.unwrap(), 6);
        assert!(matches!(
            s.upload_append(&id, 3, b"x").await,
            Err(BlobError::OutOfOrder { given: 3, size: 6 })
        ));
        assert_eq!(s.upload_append(&id, 6, b"world").await.unwrap(), 11);
        let d = digest_of(b"hello world");
        assert!(
            s.size(&d).await.unwrap().is_none(),
            "invisible before commit"
        );
        assert_eq!(s.upload_commit(&id, &d).await.unwrap(), 11);
        assert_eq!(
            s.read(&d).await.unwrap().unwrap(),
            Bytes::from_static(b"hello world")
        );

        let id = new_upload_id();
        s.upload_start(&id).await.unwrap();
        s.upload_append(&id, 0, b"other").await.unwrap();
        let err = s
            .upload_commit(&id, &digest_of(b"not it"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, BlobError::DigestMismatch { actual } if actual == digest_of(b"other"))
        );
        assert!(s.size(&digest_of(b"other")).await.unwrap().is_none());
        assert!(matches!(
            s.upload_size(&id).await,
            Err(BlobError::UploadNotFound)
        ));
    }

    #[tokio::test]
    async fn blob_commit_after_restart_rehashes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let id = new_upload_id();
        {
            let s = BlobStore::open(dir.path()).unwrap();
            s.upload_start(&id).await.unwrap();
            s.upload_append(&id, 0, b"abc").await.unwrap();
        }
        let s = BlobStore::open(dir.path()).unwrap();
        assert_eq!(s.upload_size(&id).await.unwrap(), 3);
        s.upload_append(&id, 3, b"def").await.unwrap();
        assert_eq!(
            s.upload_commit(&id, &digest_of(b"abcdef")).await.unwrap(),
            6
        );
        assert!(matches!(
            s.upload_size("../../etc/passwd").await,
            Err(BlobError::UploadNotFound)
        ));
        assert_eq!(s.put(b"abcdef").await.unwrap(), digest_of(b"abcdef"));
    }

    #[tokio::test]
    async fn blob_abandoned_uploads_expire_and_leave_nothing_visible() {
        let dir = tempfile::tempdir().unwrap();
        let s = BlobStore::open(dir.path()).unwrap();
        let id = new_upload_id();
        s.upload_start(&id).await.unwrap();
        s.upload_append(&id, 0, b"half of a layer").await.unwrap();
        assert_eq!(
            s.uploads_expire(Duration::from_secs(3600)).await.unwrap(),
            0,
            "still fresh"
        );
        assert_eq!(s.uploads_expire(Duration::ZERO).await.unwrap(), 1);
        assert!(matches!(
            s.upload_size(&id).await,
            Err(BlobError::UploadNotFound)
        ));
        assert!(s.list_sync().unwrap().is_empty(), "nothing became a blob");
    }
}
