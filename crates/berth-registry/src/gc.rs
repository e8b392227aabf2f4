//! `BlobCollector`: the registry's garbage collector (a reconciler).
//!
//! An activation takes no input, reads the whole state, and removes:
//! 1. repository blob links that no image of that repository references and that are older
//!    than the grace period (uploaded or mounted, never used);
//! 2. stored content (layers, configs, manifests; inline in the store or files) that no link
//!    and no image anywhere references — files only once untouched for the grace period;
//! 3. uploads untouched for the upload expiry.
//!
//! Safety against concurrent pushes: steps 1 and 2 run inside one store write transaction, so
//! they are serialized with `blob_link` and `manifest_put`, which re-check inside their own
//! transactions that the content and links they rely on exist. Content is only deleted when
//! its file has not been touched for the grace period, and every commit of a blob (even of
//! content already stored) renames a fresh file into place, so a push that reuses old content
//! makes it young again.

use crate::{BlobLink, Image, Registry, decode, list_all};
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
}

/// The registry garbage collector.
pub struct BlobCollector {
    registry: Registry,
    /// Unreferenced content younger than this is kept (an upload may be about to be used).
    pub grace: Duration,
    /// Uploads untouched for this long are abandoned.
    pub upload_expiry: Duration,
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
        let blobs = self.registry.blobs.clone();
        let grace = self.grace;
        let mut status = self
            .registry
            .store
            .write(move |tx| {
                let cutoff = SystemTime::now() - grace;
                let cutoff_ms = Timestamp(
                    cutoff
                        .duration_since(SystemTime::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_millis() as i64,
                );
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
                    if referenced.contains(&key) {
                        continue;
                    }
                    if link.linked_at.is_some_and(|t| t > cutoff_ms) {
                        if let Some(d) = digest {
                            live.insert(d);
                        }
                        continue;
                    }
                    tx.delete(Kind::RepositoryBlob, &key, generation)?;
                    status.links_removed += 1;
                }
                // Content still linked somewhere stays.
                for rec in list_all(tx, Kind::RepositoryBlob, "")? {
                    if let Some(d) = rec.key.split('\n').nth(1).and_then(Digest::parse) {
                        live.insert(d);
                    }
                }
                for rec in list_all(tx, Kind::Content, "")? {
                    if Digest::parse(&rec.key).is_some_and(|d| !live.contains(&d)) {
                        tx.delete(Kind::Content, &rec.key, rec.generation)?;
                        status.blobs_removed += 1;
                    }
                }
                for (d, _) in blobs.list_sync().map_err(Error::internal)? {
                    if !live.contains(&d)
                        && blobs
                            .delete_if_untouched_sync(&d, cutoff)
                            .map_err(Error::internal)?
                    {
                        status.blobs_removed += 1;
                    }
                }
                Ok(status)
            })
            .await?;
        status.uploads_expired = self
            .registry
            .blobs
            .uploads_expire(self.upload_expiry)
            .await
            .map_err(Error::internal)?;
        if status != GcStatus::default() {
            tracing::info!(?status, "registry garbage collection");
        }
        Ok(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CreateRepository, Reference};
    use berth_blob::BlobStore;
    use berth_store::Store;
    use berth_types::{AccountId, Region, Scope};

    async fn setup() -> (tempfile::TempDir, Registry) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        let blobs = BlobStore::open(&dir.path().join("blobs")).unwrap();
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

    async fn upload(registry: &Registry, content: &[u8]) -> Digest {
        let d = registry.blobs().put(content).await.unwrap();
        registry
            .blob_link("rr", &d, content.len() as u64)
            .await
            .unwrap();
        d
    }

    #[tokio::test]
    async fn manifests_are_stored_inline_and_read_back() {
        let (_dir, registry) = setup().await;
        let config = upload(&registry, b"{}").await;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"digest":"{config}","size":2}},"layers":[]}}"#
        );
        let image = registry
            .manifest_put(
                "rr",
                &Reference::Tag("v1".into()),
                None,
                bytes::Bytes::from(manifest.clone()),
            )
            .await
            .unwrap();
        let rec = registry
            .store
            .read(|r| r.get(Kind::Content, image.digest.as_str()))
            .unwrap();
        assert!(rec.is_some(), "content record");
        assert_eq!(
            registry.manifest_bytes(&image).await.unwrap(),
            manifest.as_bytes()
        );
    }

    #[tokio::test]
    async fn gc_keeps_referenced_and_young_content_and_removes_the_rest() {
        let (_dir, registry) = setup().await;
        let config = upload(&registry, b"{}").await;
        let layer = upload(&registry, b"layer").await;
        let orphan = upload(&registry, b"never referenced").await;
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"digest":"{config}","size":2}},"layers":[{{"digest":"{layer}","size":5}}]}}"#
        );
        let image = registry
            .manifest_put(
                "rr",
                &Reference::Tag("v1".into()),
                None,
                bytes::Bytes::from(manifest),
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
        assert!(!registry.blobs().exists_sync(&orphan));
        for d in [&config, &layer] {
            assert!(registry.blobs().exists_sync(d), "{d} kept");
        }
        assert_eq!(
            registry.manifest_bytes(&image).await.unwrap().len(),
            image.manifest_size as usize,
            "the manifest, kept in the store"
        );

        // Once the image is deleted, its content is collected too.
        registry
            .image_delete("rr", &Reference::Digest(image.digest.clone()))
            .await
            .unwrap();
        let s = eager.activate().await.unwrap();
        assert_eq!((s.links_removed, s.blobs_removed), (2, 3));
        assert!(!registry.blobs().exists_sync(&layer));

        // A manifest naming content the collector removed is refused, not stored dangling.
        let again = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"digest":"{config}","size":2}},"layers":[]}}"#
        );
        let err = registry
            .manifest_put(
                "rr",
                &Reference::Tag("v2".into()),
                None,
                bytes::Bytes::from(again),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::ManifestBlobUnknown(_)));
        // Re-uploading the same content brings it back.
        assert_eq!(upload(&registry, b"{}").await, config);
        assert!(registry.blobs().exists_sync(&config));
    }
}
