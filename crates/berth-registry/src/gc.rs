//! `BlobCollector`: the registry's garbage collector (a reconciler).
//!
//! An activation takes no input, reads the whole state, and removes:
//! 1. repository blob links that no image of that repository references and that are older
//!    than the grace period (uploaded or mounted, never used);
//! 2. stored content — inline `content` records and `blob` records with their objects — that
//!    no link and no image anywhere references;
//! 3. uploads untouched for the upload expiry, with their staged bytes;
//! 4. objects and staged bytes of the blob store that no record names and that are older than
//!    the grace period (left by a crash between the blob store's step of a finish and its
//!    transaction, or by another server's).
//!
//! Safety against concurrent pushes, on this server or another: steps 1–3 run inside one store
//! write transaction, and every server's writes are serialized (one writer, or the shared
//! database's commit lock), so they are serialized with `blob_link`, `upload_finish` and
//! `manifest_put`, which re-check inside their own transactions that the content and links
//! they rely on exist. A push of content the collector is removing therefore either links the
//! old record before the collector's transaction (which then keeps it) or records its own
//! object after it; objects are deleted only after the transaction that unrecorded them
//! commits. The blob store is listed before that transaction, so an object finished after the
//! listing is not seen, and one finished before it but not yet recorded is younger than the
//! grace period.

use crate::blobs::{BlobRecord, UploadRecord, blob_error};
use crate::{BlobLink, Image, Registry, decode, list_all};
use berth_blob::Staged;
use berth_store::Kind;
use berth_types::oci::Digest;
use berth_types::{Error, Timestamp};
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// What one activation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcStatus {
    pub links_removed: usize,
    pub blobs_removed: usize,
    pub uploads_expired: usize,
    /// Objects and staged bytes no record named.
    pub orphans_removed: usize,
}

/// The registry garbage collector.
pub struct BlobCollector {
    registry: Registry,
    /// Unreferenced content younger than this is kept (an upload may be about to be used).
    pub grace: Duration,
    /// Uploads untouched for this long are abandoned.
    pub upload_expiry: Duration,
}

fn millis(t: SystemTime) -> Timestamp {
    Timestamp(
        t.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as i64,
    )
}

/// What the transaction decided; the blob store's deletions follow its commit.
struct Decided {
    status: GcStatus,
    /// Objects of the blob records removed, and orphans.
    objects: Vec<String>,
    /// Expired uploads, to abort.
    uploads: Vec<(String, Staged)>,
}

impl BlobCollector {
    pub fn new(registry: Registry, grace: Duration, upload_expiry: Duration) -> Self {
        BlobCollector {
            registry,
            grace,
            upload_expiry,
        }
    }

    /// One pass. Idempotent; the next activation is the retry.
    pub async fn activate(&self) -> Result<GcStatus, Error> {
        let now = SystemTime::now();
        let cutoff = now - self.grace;
        let (cutoff_ms, expiry_ms) = (millis(cutoff), millis(now - self.upload_expiry));
        let listed = self.registry.blobs.list().await.map_err(blob_error)?;
        let decided = self
            .registry
            .store
            .write(move |tx| {
                // What images reference, per repository and overall.
                let mut referenced: HashSet<String> = HashSet::new();
                let mut live: HashSet<Digest> = HashSet::new();
                for rec in list_all(tx, Kind::Image, "")? {
                    let repo = rec.key.split('\n').next().unwrap_or("").to_string();
                    let (_, img) = decode::<Image>(rec)?;
                    for d in img
                        .blobs
                        .iter()
                        .chain(img.manifests.iter())
                        .chain([&img.digest])
                    {
                        referenced.insert(format!("{repo}\n{d}"));
                        live.insert(d.clone());
                    }
                }
                let mut status = GcStatus::default();
                for rec in list_all(tx, Kind::RepositoryBlob, "")? {
                    let (key, generation) = (rec.key.clone(), rec.generation);
                    let (_, link) = decode::<BlobLink>(rec)?;
                    let digest = key.split('\n').nth(1).and_then(Digest::parse);
                    if referenced.contains(&key) || link.linked_at.is_some_and(|t| t > cutoff_ms) {
                        // Content still linked somewhere stays.
                        if let Some(d) = digest {
                            live.insert(d);
                        }
                        continue;
                    }
                    tx.delete(Kind::RepositoryBlob, &key, generation)?;
                    status.links_removed += 1;
                }
                for rec in list_all(tx, Kind::Content, "")? {
                    if Digest::parse(&rec.key).is_some_and(|d| !live.contains(&d)) {
                        tx.delete(Kind::Content, &rec.key, rec.generation)?;
                        status.blobs_removed += 1;
                    }
                }
                let mut objects = Vec::new();
                let mut recorded: HashSet<String> = HashSet::new();
                for rec in list_all(tx, Kind::Blob, "")? {
                    let (key, generation) = (rec.key.clone(), rec.generation);
                    let (_, blob) = decode::<BlobRecord>(rec)?;
                    if Digest::parse(&key).is_some_and(|d| live.contains(&d)) {
                        recorded.insert(blob.object);
                        continue;
                    }
                    tx.delete(Kind::Blob, &key, generation)?;
                    objects.push(blob.object);
                    status.blobs_removed += 1;
                }
                let mut uploads = Vec::new();
                let mut staging: HashSet<String> = HashSet::new();
                for rec in list_all(tx, Kind::Upload, "")? {
                    let (key, generation) = (rec.key.clone(), rec.generation);
                    let id = key.rsplit('\t').next().unwrap_or(&key).to_string();
                    let (_, upload) = decode::<UploadRecord>(rec)?;
                    if upload.updated_at > expiry_ms {
                        staging.insert(id);
                        continue;
                    }
                    tx.delete(Kind::Upload, &key, generation)?;
                    uploads.push((id, upload.staged));
                    status.uploads_expired += 1;
                }
                for l in listed.into_iter().filter(|l| l.modified < cutoff) {
                    let named = match &l.staging_for {
                        // Aborting an expired upload removes its staged bytes.
                        Some(id) => staging.contains(id) || uploads.iter().any(|(u, _)| u == id),
                        None => recorded.contains(&l.object),
                    };
                    if !named && !objects.contains(&l.object) {
                        objects.push(l.object);
                        status.orphans_removed += 1;
                    }
                }
                Ok(Decided {
                    status,
                    objects,
                    uploads,
                })
            })
            .await?;
        let blobs = &self.registry.blobs;
        for (id, staged) in &decided.uploads {
            blobs.abort(id, staged).await.map_err(blob_error)?;
        }
        for object in &decided.objects {
            blobs.delete(object).await.map_err(blob_error)?;
        }
        let status = decided.status;
        if status != GcStatus::default() {
            tracing::info!(?status, "registry garbage collection");
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Content, CreateRepository, INLINE_MAX, Reference};
    use berth_store::Store;
    use berth_types::{AccountId, Region, Scope};
    use futures_util::StreamExt;

    async fn setup() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let blobs = berth_blob::open(None, &dir.path().join("blobs")).unwrap();
        let scope = Scope {
            account: AccountId::parse("000000000000").unwrap(),
            region: Region::parse("us-east-1").unwrap(),
        };
        let registry = Registry::new(scope, store, blobs, "127.0.0.1:4566".into());
        registry
            .repository_create(CreateRepository {
                name: "rr".into(),
                ..Default::default()
            })
            .await
            .unwrap();
        (dir, registry)
    }

    /// Uploads `content` into `rr` in two chunks, as a chunked OCI upload does.
    async fn upload(registry: &Registry, content: &[u8]) -> Digest {
        let d = berth_blob::digest_of(content);
        let id = registry.upload_begin("rr").await.unwrap();
        let half = content.len() / 2;
        for (offset, part) in [(0, &content[..half]), (half, &content[half..])] {
            let chunk = bytes::Bytes::copy_from_slice(part);
            let body = futures_util::stream::iter([Ok(chunk)]).boxed();
            registry
                .upload_append("rr", &id, Some(offset as u64), body)
                .await
                .unwrap();
        }
        registry.upload_finish("rr", &id, &d).await.unwrap();
        d
    }

    /// The whole stored content of `d`, if any.
    async fn stored(registry: &Registry, d: &Digest) -> Option<Vec<u8>> {
        registry.blob_bytes(d).await.unwrap().map(|b| b.to_vec())
    }

    fn manifest(config: &Digest, layers: &[&Digest]) -> bytes::Bytes {
        let layers: Vec<String> = layers
            .iter()
            .map(|d| format!(r#"{{"digest":"{d}","size":1}}"#))
            .collect();
        bytes::Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"digest":"{config}","size":2}},"layers":[{}]}}"#,
            layers.join(",")
        ))
    }

    #[tokio::test]
    async fn manifests_are_stored_inline_and_read_back() {
        let (_dir, registry) = setup().await;
        let config = upload(&registry, b"{}").await;
        let m = manifest(&config, &[]);
        let image = registry
            .manifest_put("rr", &Reference::Tag("v1".into()), None, m.clone())
            .await
            .unwrap();
        let rec = registry
            .store
            .read(|r| r.get(Kind::Content, image.digest.as_str()))
            .unwrap();
        assert!(rec.is_some(), "content record");
        assert_eq!(registry.manifest_bytes(&image).await.unwrap(), m);
    }

    #[tokio::test]
    async fn large_uploads_are_objects_read_back_by_range() {
        let (_dir, registry) = setup().await;
        let content: Vec<u8> = (0..INLINE_MAX as usize + 1000).map(|i| i as u8).collect();
        let d = upload(&registry, &content).await;
        assert_eq!(
            registry.blob_stat("rr", &d).unwrap(),
            Some(content.len() as u64)
        );
        let Some(Content::Stream(mut s)) = registry.blob_read(&d, 10, 5000).await.unwrap() else {
            panic!("a large blob is streamed from the blob store");
        };
        let mut got = Vec::new();
        while let Some(c) = s.next().await {
            got.extend_from_slice(&c.unwrap());
        }
        assert_eq!(got, &content[10..5010]);
        // The same content pushed again keeps one object.
        assert_eq!(upload(&registry, &content).await, d);
        let objects = registry.blobs().list().await.unwrap();
        assert_eq!(objects.len(), 1, "{objects:?}");
    }

    #[tokio::test]
    async fn gc_keeps_referenced_and_young_content_and_removes_the_rest() {
        let (_dir, registry) = setup().await;
        let config = upload(&registry, b"{}").await;
        let big: Vec<u8> = vec![7; INLINE_MAX as usize + 1];
        let layer = upload(&registry, &big).await;
        let orphan = upload(&registry, b"never referenced").await;
        let image = registry
            .manifest_put(
                "rr",
                &Reference::Tag("v1".into()),
                None,
                manifest(&config, &[&layer]),
            )
            .await
            .unwrap();

        // Within the grace period nothing goes.
        let young = BlobCollector::new(
            registry.clone(),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        assert_eq!(young.activate().await.unwrap(), GcStatus::default());

        // Past it, the orphan's link and content go; the image's content stays.
        let eager = BlobCollector::new(registry.clone(), Duration::ZERO, Duration::ZERO);
        let s = eager.activate().await.unwrap();
        assert_eq!((s.links_removed, s.blobs_removed), (1, 1));
        assert!(registry.blob_stat("rr", &orphan).unwrap().is_none());
        assert!(stored(&registry, &orphan).await.is_none());
        assert_eq!(stored(&registry, &layer).await.unwrap(), big);
        assert!(stored(&registry, &config).await.is_some());
        assert_eq!(
            registry.manifest_bytes(&image).await.unwrap().len(),
            image.manifest_size as usize,
            "the manifest, kept in the store"
        );

        // Once the image is deleted, its content is collected too, the layer's object with it.
        registry
            .image_delete("rr", &Reference::Digest(image.digest.clone()))
            .await
            .unwrap();
        let s = eager.activate().await.unwrap();
        assert_eq!((s.links_removed, s.blobs_removed), (2, 3));
        assert!(stored(&registry, &layer).await.is_none());
        assert!(registry.blobs().list().await.unwrap().is_empty());

        // A manifest naming content the collector removed is refused, not stored dangling.
        let err = registry
            .manifest_put(
                "rr",
                &Reference::Tag("v2".into()),
                None,
                manifest(&config, &[]),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ManifestBlobUnknown(_)));
        // Re-uploading the same content brings it back.
        assert_eq!(upload(&registry, b"{}").await, config);
        assert!(stored(&registry, &config).await.is_some());
    }

    #[tokio::test]
    async fn blob_files_of_older_data_directories_are_recorded_and_kept() {
        let (dir, registry) = setup().await;
        // A blob file of a data directory from before blob records: named by digest alone.
        let content = vec![3u8; INLINE_MAX as usize + 1];
        let d = berth_blob::digest_of(&content);
        let file = dir
            .path()
            .join("blobs/blobs/sha256")
            .join(&d.hex()[..2])
            .join(d.hex());
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, &content).unwrap();
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        assert_eq!(registry.adopt_unrecorded_blob_files().await.unwrap(), 1);
        assert_eq!(registry.adopt_unrecorded_blob_files().await.unwrap(), 0);
        assert_eq!(stored(&registry, &d).await.unwrap(), content);
        registry
            .blob_link("rr", &d, content.len() as u64)
            .await
            .unwrap();
        // Recorded and linked, the old file is no orphan to the collector.
        let hour = Duration::from_secs(3600);
        let s = BlobCollector::new(registry.clone(), hour, hour)
            .activate()
            .await
            .unwrap();
        assert_eq!(s, GcStatus::default());
        assert!(file.exists());
    }

    #[tokio::test]
    async fn gc_expires_idle_uploads_and_removes_unrecorded_objects() {
        let (dir, registry) = setup().await;
        let id = registry.upload_begin("rr").await.unwrap();
        // An object no record names: a crash between the blob store's finish and the commit.
        let stray = dir.path().join("blobs/blobs/sha256/ab");
        std::fs::create_dir_all(&stray).unwrap();
        std::fs::write(stray.join(format!("{}.{id}", "ab".repeat(32))), b"x").unwrap();
        let young = BlobCollector::new(
            registry.clone(),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        );
        assert_eq!(young.activate().await.unwrap(), GcStatus::default());
        assert_eq!(registry.upload_size("rr", &id).unwrap(), 0);
        let eager = BlobCollector::new(registry.clone(), Duration::ZERO, Duration::ZERO);
        let s = eager.activate().await.unwrap();
        assert_eq!((s.uploads_expired, s.orphans_removed), (1, 1), "{s:?}");
        assert!(matches!(
            registry.upload_size("rr", &id),
            Err(Error::UploadNotFound)
        ));
        assert!(registry.blobs().list().await.unwrap().is_empty());
    }
}
