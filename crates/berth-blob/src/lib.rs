//! `berth-blob`: where the bytes of large blobs (image layers) live, and the staging of
//! uploads on their way there. The registry (`berth-registry`) decides what is visible: it
//! keeps, in the metadata store, a record per committed blob naming the object that holds its
//! bytes, and a record per upload in progress holding its [`Staged`] state. This crate only
//! moves bytes, behind one trait, [`BlobStore`], with two implementations:
//! * [`FsBlobs`]: a directory (`berth up`, one server);
//! * [`S3Blobs`]: any S3-compatible object store, over `object_store` (several servers).
//!
//! The contract every implementation keeps (checked by `tests/conformance.rs`):
//! * An upload is appended to request after request, from the [`Staged`] state the previous
//!   append returned — possibly on another server: the state, not the server, knows where the
//!   bytes are. Bytes past `Staged::size` (a crash after writing, before the state was
//!   stored) are ignored.
//! * [`BlobStore::finish`] checks the digest of every byte staged before it names the object
//!   that holds them; on a mismatch the upload is discarded. Each finished upload gets an
//!   object of its own (named after the upload), written create-if-absent, so two servers
//!   committing the same content never overwrite each other, and the collector can delete an
//!   object it no longer references without racing a push of the same content.
//! * Reads stream, from any byte offset.
//! * Failures of the storage service itself are [`BlobError::Unavailable`] (HTTP 503).

mod fs;
mod s3;

pub use fs::FsBlobs;
pub use s3::{PART_SIZE, S3Blobs, S3Settings};

use berth_types::oci::Digest;
use bytes::Bytes;
use futures_util::stream::BoxStream;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob storage I/O on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The object store could not be reached, or failed; the request may be retried.
    #[error("blob storage is unavailable: {0}")]
    Unavailable(String),
    /// The upload's staged bytes are gone (cancelled, expired) or were never there.
    #[error("upload not found")]
    UploadNotFound,
    /// The bytes received do not have the digest the client named.
    #[error("the content's digest is {actual}")]
    DigestMismatch { actual: Digest },
    /// The request body ended with an error (the client went away).
    #[error("the request body was interrupted")]
    Interrupted,
}

/// Request bodies and blob contents, chunk by chunk.
pub type ByteStream = BoxStream<'static, Result<Bytes, BlobError>>;

/// Where an upload's bytes are between requests. Kept by the caller (in the metadata store)
/// and handed back to the next call; each implementation uses the fields it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staged {
    /// Bytes received.
    pub size: u64,
    /// S3: the multipart upload holding the parts written so far.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart: Option<String>,
    /// S3: the parts' entity tags, in order (each [`s3::PART_SIZE`] bytes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// S3: bytes after the last part, kept in a staging object until a part is full.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tail: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// An object of the blob store, as listed for garbage collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// What [`BlobStore::get`] and [`BlobStore::delete`] take.
    pub object: String,
    /// The upload it belongs to, while it is staging (not yet finished).
    pub staging_for: Option<String>,
    pub size: u64,
    pub modified: SystemTime,
}

/// The bytes of large blobs. See the crate documentation for the contract.
#[async_trait::async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Where the bytes are (for logs and `berth status`).
    fn location(&self) -> String;

    /// Starts upload `id` (see [`new_upload_id`]).
    async fn begin(&self, id: &str) -> Result<Staged, BlobError>;

    /// Appends `body` to the upload whose state is `staged`; returns the new state.
    async fn append(
        &self,
        id: &str,
        staged: &Staged,
        body: ByteStream,
    ) -> Result<Staged, BlobError>;

    /// The whole content of a small upload (the registry keeps small blobs inline in its
    /// metadata store). The upload stays until [`BlobStore::abort`].
    async fn read_staged(&self, id: &str, staged: &Staged) -> Result<Bytes, BlobError>;

    /// Makes the upload one object after checking that its content has digest `expected`;
    /// returns the object's name. On a mismatch the upload is discarded.
    async fn finish(
        &self,
        id: &str,
        staged: &Staged,
        expected: &Digest,
    ) -> Result<String, BlobError>;

    /// Discards an upload: its staged bytes, and its object if it was finished.
    async fn abort(&self, id: &str, staged: &Staged) -> Result<(), BlobError>;

    /// Streams an object from byte `from` (`None`: no such object).
    async fn get(&self, object: &str, from: u64) -> Result<Option<ByteStream>, BlobError>;

    /// Deletes an object or a staging object (as [`BlobStore::list`] names them); deleting a
    /// missing one is not an error.
    async fn delete(&self, object: &str) -> Result<(), BlobError>;

    /// Every object and staging object.
    async fn list(&self) -> Result<Vec<Listed>, BlobError>;
}

/// A shared handle on a blob store.
pub type Blobs = Arc<dyn BlobStore>;

/// Opens the blob store `url` names: `s3://bucket[/prefix]` (AWS settings from the usual
/// environment variables, see [`S3Settings::from_env`]), or else the directory `default_dir`.
pub fn open(url: Option<&str>, default_dir: &std::path::Path) -> Result<Blobs, BlobError> {
    Ok(match url {
        Some(u) => Arc::new(S3Blobs::open(u, &S3Settings::from_env())?),
        None => Arc::new(FsBlobs::open(default_dir)?),
    })
}

/// An upload id: 32 random hex digits rendered as a UUID (`8-4-4-4-12`).
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

/// Whether `id` has the form [`new_upload_id`] gives (ids name files and objects).
pub fn valid_upload_id(id: &str) -> bool {
    id.len() == 36 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Running hashes of the uploads this process appended to, so a finish need not read the
/// bytes back. A hash is used only while it covers exactly the staged bytes: after another
/// server appended, or after a restart, the finish hashes what is stored.
#[derive(Default)]
struct Hashes(Mutex<HashMap<String, (Sha256, u64)>>);

impl Hashes {
    fn start(&self, id: &str) {
        self.put(id, Sha256::new(), 0);
    }

    /// The hash of upload `id`'s first `size` bytes, if this process has it.
    fn take(&self, id: &str, size: u64) -> Option<Sha256> {
        let (h, n) = self.0.lock().expect("hash lock").remove(id)?;
        (n == size).then_some(h)
    }

    fn put(&self, id: &str, h: Sha256, size: u64) {
        self.0
            .lock()
            .expect("hash lock")
            .insert(id.to_string(), (h, size));
    }

    fn forget(&self, id: &str) {
        self.0.lock().expect("hash lock").remove(id);
    }
}

fn check_digest(actual: Sha256, expected: &Digest) -> Result<(), BlobError> {
    let actual = hex::encode(actual.finalize());
    if actual == expected.hex() {
        Ok(())
    } else {
        Err(BlobError::DigestMismatch {
            actual: Digest::from_sha256_hex(&actual),
        })
    }
}

/// Hashes a stream to its end.
async fn hash_stream(mut s: ByteStream) -> Result<Sha256, BlobError> {
    use futures_util::StreamExt;
    let mut h = Sha256::new();
    while let Some(chunk) = s.next().await {
        h.update(&chunk?);
    }
    Ok(h)
}

/// The digest of `bytes`.
pub fn digest_of(bytes: &[u8]) -> Digest {
    Digest::from_sha256_hex(&hex::encode(Sha256::digest(bytes)))
}
