//! Blobs: which repository may see which content, where the content is, and uploads on their
//! way in.
//!
//! Records (see the crate documentation for the others):
//! * `content` `digest` → the bytes, base64 — blobs up to [`INLINE_MAX`];
//! * `blob` `digest` → [`BlobRecord`]: the size and the blob-store object of a larger blob;
//! * `blob-upload` `id` → [`UploadRecord`]: an upload in progress, its repository and the
//!   [`Staged`] state its next request continues from — on any server sharing the store.
//!
//! A large upload is finished in two steps: the blob store checks the digest and makes the
//! upload an object of its own, then one transaction removes the upload record, records the
//! object under its digest (unless another push recorded one first: that one is kept and ours
//! deleted) and links the blob into the repository. A crash between the two leaves an object
//! no record names, which the collector removes once it is older than its grace period.

use crate::{BlobLink, INLINE_MAX, Registry, b64, decode, encode, key};
use berth_blob::{BlobError, ByteStream, Staged};
use berth_store::{Kind, Tx};
use berth_types::oci::{Digest, RepositoryName};
use berth_types::{Error, Generation, Timestamp};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

/// A blob kept in the blob store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BlobRecord {
    pub size: u64,
    /// The object holding its bytes.
    pub object: String,
    pub committed_at: Timestamp,
}

/// An upload in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct UploadRecord {
    pub repository: RepositoryName,
    pub started_at: Timestamp,
    /// The last request that appended to it; uploads idle past the expiry are abandoned.
    pub updated_at: Timestamp,
    pub staged: Staged,
}

/// Where a blob's bytes are.
pub enum Content {
    /// Kept in the metadata store.
    Inline(Bytes),
    /// Streamed from the blob store.
    Stream(ByteStream),
}

pub(crate) fn blob_error(e: BlobError) -> Error {
    match e {
        BlobError::UploadNotFound => Error::UploadNotFound,
        BlobError::DigestMismatch { actual } => {
            Error::DigestMismatch(format!("the uploaded content's digest is {actual}"))
        }
        BlobError::Unavailable(m) => Error::Unavailable(m),
        BlobError::Interrupted => Error::Client(e.to_string()),
        other @ BlobError::Io { .. } => Error::internal(other),
    }
}

/// Whether content for `d` is stored (inline or in the blob store). For use inside
/// transactions, which the collector's deletions are serialized with.
fn content_present(tx: &Tx<'_>, d: &Digest) -> Result<bool, Error> {
    Ok(tx.get(Kind::Content, d.as_str())?.is_some() || tx.get(Kind::Blob, d.as_str())?.is_some())
}

/// Links `d` (of `size` bytes) into the repository of link key `k`, or refreshes the link's
/// age.
fn link(tx: &mut Tx<'_>, k: &str, size: u64) -> Result<(), Error> {
    let doc = encode(&BlobLink {
        size,
        linked_at: Some(Timestamp::now()),
    })?;
    match tx.get(Kind::RepositoryBlob, k)? {
        None => tx.insert(Kind::RepositoryBlob, k, None, &doc)?,
        Some(r) => tx.update(Kind::RepositoryBlob, k, r.generation, None, &doc)?,
    };
    Ok(())
}

/// At most `len` bytes of `s`.
fn take(s: ByteStream, len: u64) -> ByteStream {
    s.scan(len, |left, chunk| {
        let out = match chunk {
            Ok(_) if *left == 0 => None,
            Ok(mut c) => {
                if c.len() as u64 > *left {
                    c.truncate(*left as usize);
                }
                *left -= c.len() as u64;
                Some(Ok(c))
            }
            Err(e) => Some(Err(e)),
        };
        futures_util::future::ready(out)
    })
    .boxed()
}

impl Registry {
    /// The size of `digest` if the repository may see it.
    pub fn blob_stat(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, Error> {
        let n = self.require_repo(repo)?;
        let rec = self
            .store
            .read(|r| r.get(Kind::RepositoryBlob, &key(&n, digest.as_str())))?;
        rec.map(|r| decode::<BlobLink>(r).map(|(_, l)| l.size))
            .transpose()
    }

    /// The size of `digest`'s content if it is stored (in any repository, of any region:
    /// content is shared), so a copy can link it instead of transferring it.
    pub fn blob_stored_size(&self, digest: &Digest) -> Result<Option<u64>, Error> {
        let (inline, large) = self.store.read(|r| {
            Ok((
                r.get(Kind::Content, digest.as_str())?,
                r.get(Kind::Blob, digest.as_str())?,
            ))
        })?;
        if let Some(rec) = inline {
            use base64::Engine;
            let bytes = b64().decode(rec.doc.as_bytes()).map_err(Error::internal)?;
            return Ok(Some(bytes.len() as u64));
        }
        large
            .map(|r| decode::<BlobRecord>(r).map(|(_, b)| b.size))
            .transpose()
    }

    /// Makes stored content visible in the repository.
    pub async fn blob_link(&self, repo: &str, digest: &Digest, size: u64) -> Result<(), Error> {
        let n = self.require_repo(repo)?;
        let (k, d) = (key(&n, digest.as_str()), digest.clone());
        self.store
            .write(move |tx| {
                if !content_present(tx, &d)? {
                    return Err(Error::BlobUnknown(format!("blob {d} is not stored")));
                }
                link(tx, &k, size)
            })
            .await
    }

    /// Stores small content received whole (a monolithic upload) under `digest`, which it must
    /// have, and makes it visible in `repo`: one transaction, nothing in the blob store.
    pub async fn content_put(
        &self,
        repo: &str,
        digest: &Digest,
        bytes: Bytes,
    ) -> Result<u64, Error> {
        let n = self.require_repo(repo)?;
        let actual = berth_blob::digest_of(&bytes);
        if actual != *digest {
            return Err(Error::DigestMismatch(format!(
                "the uploaded content's digest is {actual}"
            )));
        }
        let size = bytes.len() as u64;
        self.content_link(&n, digest, bytes, None).await?;
        Ok(size)
    }

    /// Inline content and its link in `n`, in one transaction (which also ends upload `done`).
    async fn content_link(
        &self,
        n: &RepositoryName,
        digest: &Digest,
        bytes: Bytes,
        done: Option<(String, Generation)>,
    ) -> Result<(), Error> {
        use base64::Engine;
        let size = bytes.len() as u64;
        let encoded = b64().encode(&bytes);
        let (k, d) = (key(n, digest.as_str()), digest.clone());
        self.store
            .write(move |tx| {
                if let Some((id, g)) = &done {
                    tx.delete(Kind::Upload, id, *g)?;
                }
                if tx.get(Kind::Content, d.as_str())?.is_none() {
                    tx.insert(Kind::Content, d.as_str(), None, &encoded)?;
                }
                link(tx, &k, size)
            })
            .await
    }

    /// The bytes `from..from + len` of a stored blob, wherever they are kept.
    pub async fn blob_read(
        &self,
        d: &Digest,
        from: u64,
        len: u64,
    ) -> Result<Option<Content>, Error> {
        use base64::Engine;
        let (inline, large) = self.store.read(|r| {
            Ok((
                r.get(Kind::Content, d.as_str())?,
                r.get(Kind::Blob, d.as_str())?,
            ))
        })?;
        if let Some(rec) = inline {
            let bytes = b64().decode(rec.doc.as_bytes()).map_err(Error::internal)?;
            let end = (from.saturating_add(len)).min(bytes.len() as u64) as usize;
            let start = (from as usize).min(end);
            return Ok(Some(Content::Inline(Bytes::from(bytes).slice(start..end))));
        }
        let Some(rec) = large else { return Ok(None) };
        let (_, blob) = decode::<BlobRecord>(rec)?;
        match self
            .blobs
            .get(&blob.object, from)
            .await
            .map_err(blob_error)?
        {
            Some(s) => Ok(Some(Content::Stream(take(s, len)))),
            None => Err(Error::internal(format!(
                "the object {} of blob {d} is missing from {}",
                blob.object,
                self.blobs.location()
            ))),
        }
    }

    /// The whole content of a stored blob, in memory (manifests).
    pub(crate) async fn blob_bytes(&self, d: &Digest) -> Result<Option<Bytes>, Error> {
        match self.blob_read(d, 0, u64::MAX).await? {
            None => Ok(None),
            Some(Content::Inline(b)) => Ok(Some(b)),
            Some(Content::Stream(mut s)) => {
                let mut out = Vec::new();
                while let Some(chunk) = s.next().await {
                    out.extend_from_slice(&chunk.map_err(blob_error)?);
                }
                Ok(Some(Bytes::from(out)))
            }
        }
    }

    /// Cross-repository mount: links `digest` into `repo` if `from` has it.
    pub async fn blob_mount(
        &self,
        repo: &str,
        from: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, Error> {
        let size = match self.blob_stat(from, digest) {
            Ok(Some(s)) => s,
            Ok(None) | Err(Error::RepositoryNotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        self.blob_link(repo, digest, size).await?;
        Ok(Some(size))
    }

    /// Hides a blob from a repository (`DELETE /v2/<name>/blobs/<digest>`).
    pub async fn blob_unlink(&self, repo: &str, digest: &Digest) -> Result<(), Error> {
        let n = self.require_repo(repo)?;
        let k = key(&n, digest.as_str());
        let d = digest.clone();
        self.store
            .write(move |tx| match tx.get(Kind::RepositoryBlob, &k)? {
                Some(r) => tx.delete(Kind::RepositoryBlob, &k, r.generation),
                None => Err(Error::BlobUnknown(format!(
                    "blob {d} is not in the repository"
                ))),
            })
            .await
    }

    // ---- uploads --------------------------------------------------------------------------

    /// Starts an upload into `repo`; returns its id.
    pub async fn upload_begin(&self, repo: &str) -> Result<String, Error> {
        let n = self.require_repo(repo)?;
        let id = berth_blob::new_upload_id();
        let staged = self.blobs.begin(&id).await.map_err(blob_error)?;
        let now = Timestamp::now();
        let doc = encode(&UploadRecord {
            repository: n,
            started_at: now,
            updated_at: now,
            staged,
        })?;
        let k = id.clone();
        self.store
            .write(move |tx| tx.insert(Kind::Upload, &k, None, &doc).map(|_| ()))
            .await?;
        Ok(id)
    }

    /// Upload `id` of `repo`, as stored.
    fn upload_get(&self, repo: &str, id: &str) -> Result<(Generation, UploadRecord), Error> {
        let n = self.require_repo(repo)?;
        if !berth_blob::valid_upload_id(id) {
            return Err(Error::UploadNotFound);
        }
        // Fresh: the upload's last chunk may have landed on another server a moment ago.
        let rec = self.store.read(|r| r.get_fresh(Kind::Upload, id))?;
        match rec.map(decode::<UploadRecord>).transpose()? {
            Some((g, u)) if u.repository == n => Ok((g, u)),
            _ => Err(Error::UploadNotFound),
        }
    }

    /// The number of bytes upload `id` has received.
    pub fn upload_size(&self, repo: &str, id: &str) -> Result<u64, Error> {
        Ok(self.upload_get(repo, id)?.1.staged.size)
    }

    /// Appends `body` to upload `id`, at byte `offset` (`None`: wherever it ends); returns the
    /// upload's new size.
    pub async fn upload_append(
        &self,
        repo: &str,
        id: &str,
        offset: Option<u64>,
        body: ByteStream,
    ) -> Result<u64, Error> {
        let (g, mut upload) = self.upload_get(repo, id)?;
        let size = upload.staged.size;
        if offset.is_some_and(|o| o != size) {
            return Err(Error::UploadOutOfOrder(format!(
                "The part starts at byte {}, but {size} bytes have been received.",
                offset.unwrap_or_default()
            )));
        }
        upload.staged = self
            .blobs
            .append(id, &upload.staged, body)
            .await
            .map_err(blob_error)?;
        upload.updated_at = Timestamp::now();
        let size = upload.staged.size;
        let (k, doc) = (id.to_string(), encode(&upload)?);
        self.store
            .write(move |tx| {
                tx.update(Kind::Upload, &k, g, None, &doc)
                    .map_err(|e| match e {
                        // Another request appended meanwhile: ours is not part of the upload.
                        Error::Conflict => Error::UploadOutOfOrder(
                            "another request appended to the upload at the same time".into(),
                        ),
                        other => other,
                    })
                    .map(|_| ())
            })
            .await?;
        Ok(size)
    }

    /// Finishes upload `id` as `digest` and makes it visible in `repo`: small content goes into
    /// the store with its link in one transaction; larger content becomes an object of the
    /// blob store, then its record and link commit together. Returns the blob's size.
    pub async fn upload_finish(&self, repo: &str, id: &str, digest: &Digest) -> Result<u64, Error> {
        let (g, upload) = self.upload_get(repo, id)?;
        let n = upload.repository.clone();
        let size = upload.staged.size;
        let discard = || async {
            let k = id.to_string();
            let _ = self
                .store
                .write(move |tx| tx.delete(Kind::Upload, &k, g))
                .await;
            let _ = self.blobs.abort(id, &upload.staged).await;
        };
        if size <= INLINE_MAX {
            let bytes = self
                .blobs
                .read_staged(id, &upload.staged)
                .await
                .map_err(blob_error)?;
            let actual = berth_blob::digest_of(&bytes);
            if actual != *digest {
                discard().await;
                return Err(Error::DigestMismatch(format!(
                    "the uploaded content's digest is {actual}"
                )));
            }
            self.content_link(&n, digest, bytes, Some((id.to_string(), g)))
                .await?;
            let _ = self.blobs.abort(id, &upload.staged).await;
            return Ok(size);
        }
        let object = match self.blobs.finish(id, &upload.staged, digest).await {
            Ok(o) => o,
            Err(e @ BlobError::DigestMismatch { .. }) => {
                discard().await;
                return Err(blob_error(e));
            }
            Err(e) => return Err(blob_error(e)),
        };
        let record = encode(&BlobRecord {
            size,
            object: object.clone(),
            committed_at: Timestamp::now(),
        })?;
        let (k, d, upload_key) = (key(&n, digest.as_str()), digest.clone(), id.to_string());
        let kept_other = self
            .store
            .write(move |tx| {
                tx.delete(Kind::Upload, &upload_key, g)?;
                let existing = content_present(tx, &d)?;
                if !existing {
                    tx.insert(Kind::Blob, d.as_str(), None, &record)?;
                }
                link(tx, &k, size)?;
                Ok(existing)
            })
            .await?;
        if kept_other {
            // The same content was stored before: its object serves, ours is not needed.
            let _ = self.blobs.delete(&object).await;
        }
        Ok(size)
    }

    /// Discards upload `id`.
    pub async fn upload_cancel(&self, repo: &str, id: &str) -> Result<(), Error> {
        let (g, upload) = self.upload_get(repo, id)?;
        let k = id.to_string();
        self.store
            .write(move |tx| tx.delete(Kind::Upload, &k, g))
            .await?;
        self.blobs
            .abort(id, &upload.staged)
            .await
            .map_err(blob_error)
    }

    /// Copies every blob kept in the blob store into `to` and records it there (`berth
    /// migrate-store --blobs`); how many, and their bytes. Each copy is checked against its
    /// digest on the way in.
    pub async fn copy_blobs_to(&self, to: &berth_blob::Blobs) -> Result<(usize, u64), Error> {
        let records = self.store.read(|r| crate::list_all(r, Kind::Blob, ""))?;
        let (mut n, mut bytes) = (0, 0);
        for rec in records {
            let key = rec.key.clone();
            let d = Digest::parse(&key)
                .ok_or_else(|| Error::internal(format!("blob record {key} is not a digest")))?;
            let (g, mut blob) = decode::<BlobRecord>(rec)?;
            let content = self
                .blobs
                .get(&blob.object, 0)
                .await
                .map_err(blob_error)?
                .ok_or_else(|| {
                    Error::internal(format!("the object {} of blob {d} is missing", blob.object))
                })?;
            let id = berth_blob::new_upload_id();
            let staged = to.begin(&id).await.map_err(blob_error)?;
            let staged = to.append(&id, &staged, content).await.map_err(blob_error)?;
            blob.object = to.finish(&id, &staged, &d).await.map_err(blob_error)?;
            let doc = encode(&blob)?;
            self.store
                .write(move |tx| tx.update(Kind::Blob, &key, g, None, &doc).map(|_| ()))
                .await?;
            n += 1;
            bytes += blob.size;
        }
        Ok((n, bytes))
    }

    /// Records the blob files of data directories from before blob records (named
    /// `sha256/<xx>/<hex>`, by digest alone), so they stay served and the collector sees
    /// them. Idempotent; returns how many it recorded.
    pub async fn adopt_unrecorded_blob_files(&self) -> Result<usize, Error> {
        let listed = self.blobs.list().await.map_err(blob_error)?;
        let files: Vec<(Digest, String, u64)> = listed
            .into_iter()
            .filter(|l| l.staging_for.is_none())
            .filter_map(|l| {
                let hex = l.object.strip_prefix("sha256/")?.split_once('/')?.1;
                let d = Digest::parse(&format!("sha256:{hex}"))?;
                Some((d, l.object, l.size))
            })
            .collect();
        if files.is_empty() {
            return Ok(0);
        }
        let now = Timestamp::now();
        self.store
            .write(move |tx| {
                let mut n = 0;
                for (d, object, size) in files {
                    if content_present(tx, &d)? {
                        continue;
                    }
                    let doc = encode(&BlobRecord {
                        size,
                        object,
                        committed_at: now,
                    })?;
                    tx.insert(Kind::Blob, d.as_str(), None, &doc)?;
                    n += 1;
                }
                Ok(n)
            })
            .await
    }
}
