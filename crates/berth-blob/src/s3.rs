//! The S3 blob store, over `object_store` (AWS S3, MinIO, Ceph RGW, SeaweedFS, Garage, …).
//! Keys under the configured prefix:
//! * `blobs/<upload id>` — finished uploads, immutable;
//! * `uploads/<upload id>.tail` — an upload's bytes after its last full part.
//!
//! An upload writes parts of [`PART_SIZE`] bytes into one S3 multipart upload (created with
//! the first full part; up to [`PARTS_IN_FLIGHT`] parts sent while the body goes on arriving)
//! whose id and part tags travel in [`Staged`], so any server can continue it; what does not fill a part waits in the tail object. Finishing adds the tail as
//! the last part and completes the multipart upload into `blobs/<id>` (or, for uploads smaller
//! than a part, writes the tail's bytes there with `If-None-Match: *`).
//!
//! An S3 multipart upload that is never completed or aborted (its server died, and its upload
//! record was lost with it) is not listed by S3; a bucket lifecycle rule
//! (`AbortIncompleteMultipartUpload`) reclaims it.

use crate::{
    BlobError, BlobStore, ByteStream, Hashes, Listed, Staged, check_digest, hash_stream,
    valid_upload_id,
};
use berth_types::oci::Digest;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
};
use sha2::Digest as _;
use std::time::Duration;

/// Size of each multipart part but the last (S3 requires at least 5 MiB).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts of one upload sent to S3 at once (each a task; [`PART_SIZE`] bytes of memory each).
const PARTS_IN_FLIGHT: usize = 4;

/// The tag of a part once S3 has it.
async fn sent(
    part: tokio::task::JoinHandle<object_store::Result<PartId>>,
) -> Result<String, BlobError> {
    let tag = part
        .await
        .map_err(|e| BlobError::Unavailable(format!("a part upload failed: {e}")))?
        .map_err(unavailable)?;
    Ok(tag.content_id)
}

/// Blobs in an S3 bucket.
pub struct S3Blobs {
    s3: AmazonS3,
    bucket: String,
    /// The key prefix, empty or ending in `/`.
    prefix: String,
    hashes: Hashes,
}

fn unavailable(e: object_store::Error) -> BlobError {
    BlobError::Unavailable(e.to_string())
}

/// Where the bucket is and how to sign for it: the usual AWS settings.
#[derive(Debug, Clone, Default)]
pub struct S3Settings {
    /// An S3-compatible server (`http://` is allowed); AWS S3 when `None`.
    pub endpoint: Option<String>,
    /// Default `us-east-1`.
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

impl S3Settings {
    /// From the environment, as every AWS tool reads it: `AWS_ENDPOINT_URL_S3` or
    /// `AWS_ENDPOINT_URL`, `AWS_REGION` or `AWS_DEFAULT_REGION`, `AWS_ACCESS_KEY_ID`,
    /// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
    pub fn from_env() -> S3Settings {
        let var = |names: &[&str]| names.iter().find_map(|n| std::env::var(n).ok());
        S3Settings {
            endpoint: var(&["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]),
            region: var(&["AWS_REGION", "AWS_DEFAULT_REGION"]),
            access_key_id: var(&["AWS_ACCESS_KEY_ID"]),
            secret_access_key: var(&["AWS_SECRET_ACCESS_KEY"]),
            session_token: var(&["AWS_SESSION_TOKEN"]),
        }
    }
}

impl S3Blobs {
    /// Opens `s3://bucket[/prefix]`.
    pub fn open(url: &str, settings: &S3Settings) -> Result<S3Blobs, BlobError> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| {
            BlobError::Unavailable(format!("{url}: a blob store URL is s3://bucket[/prefix]"))
        })?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        };
        let http = settings
            .endpoint
            .as_deref()
            .is_some_and(|e| e.starts_with("http://"));
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(bucket)
            .with_region(settings.region.as_deref().unwrap_or("us-east-1"));
        if let Some(e) = &settings.endpoint {
            builder = builder.with_endpoint(e);
        }
        if let Some(k) = &settings.access_key_id {
            builder = builder.with_access_key_id(k);
        }
        if let Some(k) = &settings.secret_access_key {
            builder = builder.with_secret_access_key(k);
        }
        if let Some(t) = &settings.session_token {
            builder = builder.with_token(t);
        }
        // A storage outage is answered (503) within seconds, not after minutes of retries.
        let retry = object_store::RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(10),
            ..Default::default()
        };
        let client = object_store::ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(3))
            .with_timeout(Duration::from_secs(60))
            .with_allow_http(http);
        let s3 = builder
            .with_retry(retry)
            .with_client_options(client)
            .build()
            .map_err(|e| BlobError::Unavailable(format!("{url}: {e}")))?;
        Ok(S3Blobs {
            s3,
            bucket: bucket.to_string(),
            prefix,
            hashes: Hashes::default(),
        })
    }

    fn key(&self, rest: &str) -> Path {
        Path::from(format!("{}{rest}", self.prefix))
    }

    fn object_key(&self, id: &str) -> Path {
        self.key(&format!("blobs/{id}"))
    }

    fn tail_key(&self, id: &str) -> Path {
        self.key(&format!("uploads/{id}.tail"))
    }

    /// The whole of a (small) object; `None` if missing.
    async fn read_all(&self, key: &Path) -> Result<Option<Bytes>, BlobError> {
        match self.s3.get(key).await {
            Ok(r) => Ok(Some(r.bytes().await.map_err(unavailable)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// The staged tail (exactly `staged.tail` bytes).
    async fn tail(&self, id: &str, staged: &Staged) -> Result<Bytes, BlobError> {
        if staged.tail == 0 {
            return Ok(Bytes::new());
        }
        let t = self
            .read_all(&self.tail_key(id))
            .await?
            .ok_or(BlobError::UploadNotFound)?;
        if (t.len() as u64) < staged.tail {
            return Err(BlobError::UploadNotFound);
        }
        Ok(t.slice(..staged.tail as usize))
    }

    fn parts(staged: &Staged) -> Vec<PartId> {
        staged
            .parts
            .iter()
            .map(|t| PartId {
                content_id: t.clone(),
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl BlobStore for S3Blobs {
    fn location(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.prefix)
    }

    async fn begin(&self, id: &str) -> Result<Staged, BlobError> {
        if !valid_upload_id(id) {
            return Err(BlobError::UploadNotFound);
        }
        self.hashes.start(id);
        Ok(Staged::default())
    }

    async fn append(
        &self,
        id: &str,
        staged: &Staged,
        mut body: ByteStream,
    ) -> Result<Staged, BlobError> {
        if !valid_upload_id(id) {
            return Err(BlobError::UploadNotFound);
        }
        let mut next = staged.clone();
        let mut buf = BytesMut::from(&self.tail(id, staged).await?[..]);
        let mut hash = self.hashes.take(id, staged.size);
        let object = self.object_key(id);
        // Parts on their way to S3 while the body goes on arriving, oldest first.
        let mut sending: std::collections::VecDeque<tokio::task::JoinHandle<_>> =
            Default::default();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            if let Some(h) = &mut hash {
                h.update(&chunk);
            }
            next.size += chunk.len() as u64;
            buf.extend_from_slice(&chunk);
            while buf.len() >= PART_SIZE {
                let part = buf.split_to(PART_SIZE).freeze();
                let multipart = match &next.multipart {
                    Some(m) => m.clone(),
                    None => {
                        let m = self
                            .s3
                            .create_multipart(&object)
                            .await
                            .map_err(unavailable)?;
                        next.multipart = Some(m.clone());
                        m
                    }
                };
                let (s3, object, index) = (
                    self.s3.clone(),
                    object.clone(),
                    next.parts.len() + sending.len(),
                );
                sending.push_back(tokio::spawn(async move {
                    s3.put_part(&object, &multipart, index, PutPayload::from(part))
                        .await
                }));
                if sending.len() >= PARTS_IN_FLIGHT
                    && let Some(oldest) = sending.pop_front()
                {
                    next.parts.push(sent(oldest).await?);
                }
            }
        }
        while let Some(part) = sending.pop_front() {
            next.parts.push(sent(part).await?);
        }
        if next.size != staged.size && !buf.is_empty() {
            self.s3
                .put(&self.tail_key(id), PutPayload::from(buf.clone().freeze()))
                .await
                .map_err(unavailable)?;
        }
        next.tail = buf.len() as u64;
        if let Some(h) = hash {
            self.hashes.put(id, h, next.size);
        }
        Ok(next)
    }

    async fn read_staged(&self, id: &str, staged: &Staged) -> Result<Bytes, BlobError> {
        if staged.multipart.is_some() {
            return Err(BlobError::Unavailable(format!(
                "upload {id} has {} bytes, too many to read whole",
                staged.size
            )));
        }
        self.tail(id, staged).await
    }

    async fn finish(
        &self,
        id: &str,
        staged: &Staged,
        expected: &Digest,
    ) -> Result<String, BlobError> {
        let object = self.object_key(id);
        let tail = self.tail(id, staged).await?;
        let hash = self.hashes.take(id, staged.size);
        let checked = match hash {
            Some(h) => {
                if let Err(e) = check_digest(h, expected) {
                    let _ = self.abort(id, staged).await;
                    return Err(e);
                }
                true
            }
            None => false,
        };
        match &staged.multipart {
            None => {
                if !checked {
                    let mut h = sha2::Sha256::new();
                    h.update(&tail);
                    if let Err(e) = check_digest(h, expected) {
                        let _ = self.abort(id, staged).await;
                        return Err(e);
                    }
                }
                let opts = PutOptions {
                    mode: PutMode::Create,
                    ..Default::default()
                };
                match self
                    .s3
                    .put_opts(&object, PutPayload::from(tail), opts)
                    .await
                {
                    // A retried finish of the same (checked) upload.
                    Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => {}
                    Err(e) => return Err(unavailable(e)),
                }
            }
            Some(multipart) => {
                let mut parts = Self::parts(staged);
                if !tail.is_empty() {
                    let tag = self
                        .s3
                        .put_part(&object, multipart, parts.len(), PutPayload::from(tail))
                        .await
                        .map_err(unavailable)?;
                    parts.push(tag);
                }
                self.s3
                    .complete_multipart(&object, multipart, parts)
                    .await
                    .map_err(unavailable)?;
                if !checked {
                    let content = self
                        .get(&format!("blobs/{id}"), 0)
                        .await?
                        .ok_or(BlobError::UploadNotFound)?;
                    if let Err(e) = check_digest(hash_stream(content).await?, expected) {
                        let _ = self.s3.delete(&object).await;
                        let _ = self.s3.delete(&self.tail_key(id)).await;
                        return Err(e);
                    }
                }
            }
        }
        if staged.tail > 0 {
            // Best effort: the collector removes tails no upload owns.
            let _ = self.s3.delete(&self.tail_key(id)).await;
        }
        Ok(format!("blobs/{id}"))
    }

    async fn abort(&self, id: &str, staged: &Staged) -> Result<(), BlobError> {
        self.hashes.forget(id);
        let object = self.object_key(id);
        if let Some(m) = &staged.multipart {
            // Fails when already completed or aborted; the object is deleted below either way.
            let _ = self.s3.abort_multipart(&object, m).await;
        }
        for key in [self.tail_key(id), object] {
            match self.s3.delete(&key).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    async fn get(&self, object: &str, from: u64) -> Result<Option<ByteStream>, BlobError> {
        let opts = GetOptions {
            range: (from > 0).then_some(GetRange::Offset(from)),
            ..Default::default()
        };
        match self.s3.get_opts(&self.key(object), opts).await {
            Ok(r) => Ok(Some(
                r.into_stream().map(|c| c.map_err(unavailable)).boxed(),
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn delete(&self, object: &str) -> Result<(), BlobError> {
        match self.s3.delete(&self.key(object)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn list(&self) -> Result<Vec<Listed>, BlobError> {
        let mut out = Vec::new();
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.as_str()));
        let mut all = self.s3.list(prefix.as_ref());
        while let Some(meta) = all.next().await {
            let meta = meta.map_err(unavailable)?;
            let key = meta.location.to_string();
            let Some(rest) = key.strip_prefix(&self.prefix) else {
                continue;
            };
            let staging_for = match rest.strip_prefix("uploads/") {
                Some(t) => match t.strip_suffix(".tail") {
                    Some(id) if valid_upload_id(id) => Some(id.to_string()),
                    _ => continue,
                },
                None if rest.starts_with("blobs/") => None,
                None => continue,
            };
            out.push(Listed {
                object: rest.to_string(),
                staging_for,
                size: meta.size,
                modified: meta.last_modified.into(),
            });
        }
        Ok(out)
    }
}
