//! `berth-registry`: the registry's domain — repositories, images (manifests), tags and which
//! blobs each repository may see — shared by the OCI distribution API and the ECR API.
//!
//! Content: manifests and blobs up to [`INLINE_MAX`] live in the store (`content` records,
//! committed with the metadata that makes them visible); larger blobs live in `berth-blob`.
//! Either way content is addressed by digest and served exactly as pushed. Metadata lives in
//! the store:
//! * `repository` `name` → [`Repository`];
//! * `image` `name\ndigest` → [`Image`] (media type, sizes, references, tags);
//! * `image-tag` `name\ntag` → the digest it names;
//! * `repository-blob` `name\ndigest` → size: the blob was uploaded to or mounted into the
//!   repository, so it may be pulled from it and referenced by its manifests;
//! * `content`, `blob` and `blob-upload`: the content itself and uploads (see `blobs.rs`).
//!
//! Order of effects on push: inline content commits in the same transaction as its link or
//! image; large content is made a durable object of the blob store first, and then one
//! metadata transaction records it and makes it visible, so a crash in between leaves an
//! unreferenced object for garbage collection, never a visible image without its bytes.
//!
//! Called by `berth-api`. Must not speak HTTP or see wire shapes.

pub mod audit;
mod blobs;
mod expiry;
mod gc;
pub mod lifecycle;
mod manifest;
pub mod pull_through;
pub mod replication;
pub mod scanning;
mod settings;
pub mod templates;

pub use blobs::Content;
pub use expiry::{LifecyclePreview, LifecycleRecord, LifecycleStatus, PreviewItem, PreviewStatus};
pub use gc::{BlobCollector, GcStatus};

pub use manifest::{
    MediaType, ParsedManifest, convert as convert_manifest, parse as parse_manifest,
};

use berth_blob::Blobs;
use berth_store::{Kind, ListQuery, Read, Record, Store, Tx};
use berth_types::oci::{Digest, RepositoryName, is_tag};
use berth_types::{Error, Generation, Scope, Tag, Timestamp};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Largest manifest accepted (bytes).
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// Blobs up to this size (and every manifest) are kept in the store itself: their content and
/// their link commit in one (group-committed) transaction, with no file fsyncs of their own.
/// Larger blobs are files in `berth-blob`.
pub const INLINE_MAX: u64 = 256 * 1024;

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// A repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Repository {
    pub name: RepositoryName,
    pub created_at: Timestamp,
    /// `MUTABLE` or `IMMUTABLE` (the `*_WITH_EXCLUSION` forms keep their filters in
    /// `tag_mutability_exclusions`).
    pub tag_mutability: String,
    pub tag_mutability_exclusions: Vec<Value>,
    /// `imageScanningConfiguration`, stored as given.
    pub scanning: Value,
    /// `encryptionConfiguration`, stored as given.
    pub encryption: Value,
    pub tags: Vec<Tag>,
    /// The repository policy text, when one is set.
    pub policy: Option<String>,
}

/// An image: one manifest (or index) in a repository.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    pub digest: Digest,
    pub media_type: String,
    /// Size of the manifest itself.
    pub manifest_size: u64,
    /// Sum of the layer sizes (for an index: the largest child image).
    pub image_size: u64,
    pub pushed_at: Timestamp,
    pub last_pull: Option<Timestamp>,
    pub tags: Vec<String>,
    /// Blobs (config and layers) it references.
    pub blobs: Vec<Digest>,
    /// Manifests it references (indexes).
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    pub config_media_type: Option<String>,
    /// The manifest's `annotations` (the referrers API lists them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// When the image was last scanned (StartImageScan or scan on push); see [`scanning`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scanned_at: Option<Timestamp>,
    /// A pull-through cache image: when its tag was last checked against the upstream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_checked_at: Option<Timestamp>,
}

impl Image {
    /// Whether a pull at `now` should be recorded (the last one is over a day old).
    pub fn pull_is_stale(&self, now: Timestamp) -> bool {
        const DAY_MS: i64 = 24 * 3600 * 1000;
        self.last_pull.is_none_or(|t| now.0 - t.0 >= DAY_MS)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct TagRecord {
    digest: Digest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BlobLink {
    size: u64,
    /// When the blob was linked (ms); unreferenced links older than the grace period go.
    #[serde(default)]
    linked_at: Option<Timestamp>,
}

/// `CreateRepository` in domain terms.
#[derive(Debug, Clone, Default)]
pub struct CreateRepository {
    pub name: String,
    pub tag_mutability: Option<String>,
    pub tag_mutability_exclusions: Vec<Value>,
    pub scanning: Option<Value>,
    pub encryption: Option<Value>,
    pub tags: Vec<Tag>,
    /// A repository policy (creation templates set one).
    pub policy: Option<String>,
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    pub fn parse(s: &str) -> Option<Reference> {
        if s.contains(':') {
            Digest::parse(s).map(Reference::Digest)
        } else if is_tag(s) {
            Some(Reference::Tag(s.to_string()))
        } else {
            None
        }
    }
}

fn key(repo: &RepositoryName, rest: &str) -> String {
    format!("{repo}\n{rest}")
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(r: Record) -> Result<(Generation, T), Error> {
    serde_json::from_str(&r.doc)
        .map(|v| (r.generation, v))
        .map_err(|e| Error::internal(format!("corrupt record {}: {e}", r.key)))
}

fn encode<T: Serialize>(v: &T) -> Result<String, Error> {
    serde_json::to_string(v).map_err(Error::internal)
}

impl Registry {
    /// Deletes the `registry-setting` record `key` and returns it as it was, or `missing` when
    /// there is none.
    pub(crate) async fn setting_delete<T>(&self, key: String, missing: Error) -> Result<T, Error>
    where
        T: serde::de::DeserializeOwned + Send + 'static,
    {
        self.store
            .write(move |tx| {
                let rec = tx.get(Kind::RegistrySetting, &key)?.ok_or(missing)?;
                let g = rec.generation;
                let (_, value) = decode::<T>(rec)?;
                tx.delete(Kind::RegistrySetting, &key, g)?;
                Ok(value)
            })
            .await
    }
}

/// ECR's `RepositoryNotFoundException` message.
pub(crate) fn not_found(account: &str, repo: &str) -> Error {
    Error::RepositoryNotFound(format!(
        "The repository with name '{repo}' does not exist in the registry with id '{account}'"
    ))
}

/// Where a manifest comes from: a client's push, or Berth copying it (replication, the
/// pull-through cache). Only pushes are replicated (no chains) and scanned on push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOrigin {
    Push,
    Replication,
    PullThrough,
}

/// What [`Registry::manifest_push`] did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub image: Image,
    /// The push matched a replication rule: copies are queued (wake the replication task).
    pub replication_queued: bool,
}

/// Manifest bytes recently served. Content-addressed, so never stale: a digest names the same
/// bytes forever. Bounded by total size; past it the cache starts over.
#[derive(Default)]
struct ManifestCache {
    inner: std::sync::Mutex<(std::collections::HashMap<Digest, Bytes>, usize)>,
}

const MANIFEST_CACHE_BYTES: usize = 64 * 1024 * 1024;

impl ManifestCache {
    fn get(&self, d: &Digest) -> Option<Bytes> {
        self.inner.lock().expect("manifest cache").0.get(d).cloned()
    }

    fn put(&self, d: Digest, b: Bytes) {
        let mut g = self.inner.lock().expect("manifest cache");
        if g.1 + b.len() > MANIFEST_CACHE_BYTES {
            g.0.clear();
            g.1 = 0;
        }
        g.1 += b.len();
        g.0.insert(d, b);
    }
}

/// The registry handle. Cheap to clone.
#[derive(Clone)]
pub struct Registry {
    scope: Scope,
    store: Store,
    blobs: Blobs,
    manifests: std::sync::Arc<ManifestCache>,
    /// `host[:port]` of repository URIs.
    host: String,
}

impl Registry {
    /// The same handle, writing only while `fence` holds (a controller's term; `None`:
    /// unfenced).
    pub fn fenced(&self, fence: Option<&berth_store::Fence>) -> Self {
        let mut h = self.clone();
        if let Some(f) = fence {
            h.store = h.store.fenced(f.clone());
        }
        h
    }
    pub fn new(scope: Scope, store: Store, blobs: Blobs, host: String) -> Self {
        Registry {
            scope,
            store,
            blobs,
            manifests: Default::default(),
            host,
        }
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn repository_arn(&self, name: &RepositoryName) -> String {
        self.scope.arn("ecr", &format!("repository/{name}"))
    }

    pub fn repository_uri(&self, name: &RepositoryName) -> String {
        format!("{}/{name}", self.host)
    }

    /// The registry id (the account) of this registry.
    pub fn registry_id(&self) -> &str {
        self.scope.account.as_str()
    }

    /// ECR's `RepositoryNotFoundException` for `name` in this registry.
    pub fn repository_not_found(&self, name: &str) -> Error {
        not_found(self.registry_id(), name)
    }

    pub fn parse_name(&self, name: &str) -> Result<RepositoryName, Error> {
        RepositoryName::parse(name).ok_or_else(|| {
            Error::InvalidParameter(format!(
                "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''; got '{name}'"
            ))
        })
    }

    // ---- repositories -------------------------------------------------------------------

    pub async fn repository_create(&self, cmd: CreateRepository) -> Result<Repository, Error> {
        self.repository_create_with(cmd, None).await
    }

    /// Creates a repository, with the lifecycle policy text a creation template gives it (in
    /// the same transaction).
    pub(crate) async fn repository_create_with(
        &self,
        cmd: CreateRepository,
        lifecycle_policy: Option<String>,
    ) -> Result<Repository, Error> {
        let name = self.parse_name(&cmd.name)?;
        let tag_mutability = cmd.tag_mutability.unwrap_or_else(|| "MUTABLE".into());
        let repo = Repository {
            name,
            created_at: Timestamp::now(),
            tag_mutability,
            tag_mutability_exclusions: cmd.tag_mutability_exclusions,
            scanning: cmd
                .scanning
                .unwrap_or_else(|| serde_json::json!({"scanOnPush": false})),
            encryption: cmd
                .encryption
                .unwrap_or_else(|| serde_json::json!({"encryptionType": "AES256"})),
            tags: cmd.tags,
            policy: cmd.policy,
        };
        let (r, account) = (repo.clone(), self.registry_id().to_string());
        self.store
            .write(move |tx| {
                let doc = encode(&r)?;
                match tx.insert(Kind::Repository, r.name.as_str(), None, &doc) {
                    Err(Error::Conflict) => {
                        return Err(Error::RepositoryAlreadyExists(format!(
                            "The repository with name '{}' already exists in the registry with id '{account}'",
                            r.name
                        )));
                    }
                    other => other?,
                };
                if let Some(text) = lifecycle_policy {
                    expiry::policy_set(tx, &r.name, text, r.created_at)?;
                }
                Ok(())
            })
            .await?;
        Ok(repo)
    }

    pub fn repository_get(&self, name: &str) -> Result<Repository, Error> {
        self.repository_find(name)?
            .ok_or_else(|| self.repository_not_found(name))
    }

    /// The repository, if it exists.
    pub fn repository_find(&self, name: &str) -> Result<Option<Repository>, Error> {
        let Some(n) = RepositoryName::parse(name) else {
            return Ok(None);
        };
        self.store
            .read(|r| r.get(Kind::Repository, n.as_str()))?
            .map(|rec| decode::<Repository>(rec).map(|(_, r)| r))
            .transpose()
    }

    /// Repositories by name after `after`, at most `limit` (+1 to tell whether more follow).
    pub fn repository_list(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Repository>, Error> {
        let rows = self.store.read(|r| {
            r.list(
                Kind::Repository,
                &ListQuery {
                    after,
                    limit,
                    ..Default::default()
                },
            )
        })?;
        rows.into_iter()
            .map(|r| decode(r).map(|(_, v)| v))
            .collect()
    }

    /// Changes a repository in one transaction.
    pub async fn repository_update(
        &self,
        name: &str,
        change: impl FnOnce(&mut Repository) -> Result<(), Error> + Send + 'static,
    ) -> Result<Repository, Error> {
        let n = RepositoryName::parse(name).ok_or_else(|| self.repository_not_found(name))?;
        let account = self.registry_id().to_string();
        self.store
            .write(move |tx| {
                let rec = tx
                    .get(Kind::Repository, n.as_str())?
                    .ok_or_else(|| not_found(&account, n.as_str()))?;
                let (g, mut repo) = decode::<Repository>(rec)?;
                change(&mut repo)?;
                tx.update(Kind::Repository, n.as_str(), g, None, &encode(&repo)?)?;
                Ok(repo)
            })
            .await
    }

    /// `DeleteRepository`: refuses a repository with images unless `force`.
    pub async fn repository_delete(
        &self,
        name: &str,
        force: bool,
    ) -> Result<(Repository, usize), Error> {
        let n = RepositoryName::parse(name).ok_or_else(|| self.repository_not_found(name))?;
        let account = self.registry_id().to_string();
        self.store
            .write(move |tx| {
                let rec = tx
                    .get(Kind::Repository, n.as_str())?
                    .ok_or_else(|| not_found(&account, n.as_str()))?;
                let (g, repo) = decode::<Repository>(rec)?;
                let prefix = key(&n, "");
                let images = list_all(tx, Kind::Image, &prefix)?;
                if !images.is_empty() && !force {
                    return Err(Error::RepositoryNotEmpty(format!(
                        "The repository with name '{n}' in registry with id '{account}' cannot be deleted because it still contains images"
                    )));
                }
                for kind in [
                    Kind::Image,
                    Kind::ImageTag,
                    Kind::RepositoryBlob,
                    Kind::Replication,
                ] {
                    for r in list_all(tx, kind, &prefix)? {
                        tx.delete(kind, &r.key, r.generation)?;
                    }
                }
                if let Some(r) = tx.get(Kind::Lifecycle, n.as_str())? {
                    tx.delete(Kind::Lifecycle, n.as_str(), r.generation)?;
                }
                tx.delete(Kind::Repository, n.as_str(), g)?;
                Ok((repo, images.len()))
            })
            .await
    }

    /// The repository's name, if it exists (a point read; the record is not decoded).
    fn require_repo(&self, name: &str) -> Result<RepositoryName, Error> {
        let n = RepositoryName::parse(name).ok_or_else(|| self.repository_not_found(name))?;
        match self.store.read(|r| r.get(Kind::Repository, n.as_str()))? {
            Some(_) => Ok(n),
            None => Err(self.repository_not_found(name)),
        }
    }

    // ---- manifests ------------------------------------------------------------------------

    /// Stores a manifest pushed under `reference` (a tag, or its own digest).
    pub async fn manifest_put(
        &self,
        repo: &str,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
    ) -> Result<Image, Error> {
        self.manifest_push(repo, reference, content_type, bytes, PushOrigin::Push)
            .await
            .map(|p| p.image)
    }

    /// ECR's message for blobs a manifest references that the repository lacks.
    fn layers_missing(&self, repo: &RepositoryName, missing: &[&Digest]) -> Error {
        Error::ManifestBlobUnknown(format!(
            "Layers with digests '[{}]' required for pushing image into repository with name '{repo}' in the registry with id '{}' do not exist",
            join(missing),
            self.registry_id()
        ))
    }

    /// Stores a manifest under `reference` (a tag, or its own digest). A client's push
    /// ([`PushOrigin::Push`]) to a repository a replication rule matches queues its copies in
    /// the same transaction, and is scanned on push where the repository or the registry's
    /// scanning rules say so.
    pub async fn manifest_push(
        &self,
        repo: &str,
        reference: &Reference,
        content_type: Option<&str>,
        bytes: Bytes,
        origin: PushOrigin,
    ) -> Result<Pushed, Error> {
        let n = self.require_repo(repo)?;
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(Error::ManifestInvalid(format!(
                "manifest is larger than {MAX_MANIFEST_BYTES} bytes"
            )));
        }
        let parsed = manifest::parse(&bytes, content_type)?;
        let digest = berth_blob::digest_of(&bytes);
        if let Reference::Digest(d) = reference
            && *d != digest
        {
            return Err(Error::DigestMismatch(format!(
                "the manifest's digest is {digest}, not {d}"
            )));
        }
        // Everything it references must already be in this repository.
        let mut image_size = 0u64;
        let mut missing = Vec::new();
        for b in &parsed.blobs {
            match self.blob_stat(repo, b)? {
                Some(s) if parsed.layers.contains(b) => image_size += s,
                Some(_) => {}
                None => missing.push(b),
            }
        }
        if !missing.is_empty() {
            return Err(self.layers_missing(&n, &missing));
        }
        for m in &parsed.manifests {
            match self.image_get(&n, m)? {
                Some((_, img)) => image_size = image_size.max(img.image_size),
                None => missing.push(m),
            }
        }
        if !missing.is_empty() {
            return Err(Error::ManifestBlobUnknown(format!(
                "{IMAGES_MISSING} '[{}]' required for pushing image into repository with name '{n}' in the registry with id '{}' do not exist",
                join(&missing),
                self.registry_id()
            )));
        }
        use base64::Engine;
        let encoded = b64().encode(&bytes);
        let tag = match reference {
            Reference::Tag(t) => Some(t.clone()),
            Reference::Digest(_) => None,
        };
        let now = Timestamp::now();
        let image = Image {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            manifest_size: bytes.len() as u64,
            image_size,
            pushed_at: now,
            last_pull: None,
            tags: Vec::new(),
            blobs: parsed.blobs,
            manifests: parsed.manifests,
            subject: parsed.subject,
            artifact_type: parsed.artifact_type,
            config_media_type: parsed.config_media_type,
            annotations: parsed.annotations,
            scanned_at: None,
            upstream_checked_at: (origin == PushOrigin::PullThrough).then_some(now),
        };
        let missing_layers = {
            let this = self.clone();
            let n = n.clone();
            move |missing: &[&Digest]| this.layers_missing(&n, missing)
        };
        let account = self.registry_id().to_string();
        self.store
            .write(move |tx| {
                let repo_rec = tx
                    .get(Kind::Repository, n.as_str())?
                    .ok_or_else(|| not_found(&account, n.as_str()))?;
                let (_, repository) = decode::<Repository>(repo_rec)?;
                // Re-checked inside the transaction, which the garbage collector's is serialized
                // with: what the manifest references cannot vanish before the image is stored.
                let mut gone = Vec::new();
                for b in &image.blobs {
                    if tx
                        .get(Kind::RepositoryBlob, &key(&n, b.as_str()))?
                        .is_none()
                    {
                        gone.push(b);
                    }
                }
                for m in &image.manifests {
                    if tx.get(Kind::Image, &key(&n, m.as_str()))?.is_none() {
                        gone.push(m);
                    }
                }
                if !gone.is_empty() {
                    return Err(missing_layers(&gone));
                }
                if tx.get(Kind::Content, digest.as_str())?.is_none() {
                    tx.insert(Kind::Content, digest.as_str(), None, &encoded)?;
                }
                let ik = key(&n, digest.as_str());
                let (mut current, expected) = match tx.get(Kind::Image, &ik)? {
                    Some(r) => {
                        let (g, img) = decode::<Image>(r)?;
                        (img, Some(g))
                    }
                    None => (image, None),
                };
                if let Some(tag) = tag {
                    tag_point(tx, &repository, &tag, &mut current)?;
                }
                let mut replication_queued = false;
                if origin == PushOrigin::Push {
                    if scanning::scans_on_push(tx, &repository)? {
                        current.scanned_at = Some(now);
                    }
                    replication_queued = replication::enqueue(tx, &n, &current.digest, now)?;
                }
                let doc = encode(&current)?;
                match expected {
                    Some(g) => tx.update(Kind::Image, &ik, g, None, &doc)?,
                    None => tx.insert(Kind::Image, &ik, None, &doc)?,
                };
                Ok(Pushed {
                    image: current,
                    replication_queued,
                })
            })
            .await
    }

    fn image_get(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<(Generation, Image)>, Error> {
        self.store
            .read(|r| r.get(Kind::Image, &key(repo, digest.as_str())))?
            .map(decode::<Image>)
            .transpose()
    }

    /// Resolves a reference to its image.
    pub fn image_resolve(&self, repo: &str, reference: &Reference) -> Result<Image, Error> {
        let n = self.require_repo(repo)?;
        let digest = match reference {
            Reference::Digest(d) => d.clone(),
            Reference::Tag(t) => {
                let rec = self.store.read(|r| r.get(Kind::ImageTag, &key(&n, t)))?;
                match rec {
                    Some(r) => decode::<TagRecord>(r)?.1.digest,
                    None => return Err(image_not_found(self.registry_id(), &n, reference)),
                }
            }
        };
        self.image_get(&n, &digest)?
            .map(|(_, i)| i)
            .ok_or_else(|| image_not_found(self.registry_id(), &n, reference))
    }

    /// The manifest bytes of an image.
    pub async fn manifest_bytes(&self, image: &Image) -> Result<Bytes, Error> {
        if let Some(b) = self.manifests.get(&image.digest) {
            return Ok(b);
        }
        // Boxed: the blob store's read is a large future the cached path should not carry.
        let bytes = Box::pin(self.blob_bytes(&image.digest))
            .await?
            .ok_or_else(|| {
                Error::internal(format!("manifest content {} is missing", image.digest))
            })?;
        self.manifests.put(image.digest.clone(), bytes.clone());
        Ok(bytes)
    }

    /// Records a pull of `image` in `lastRecordedPullTime`, at most once a day per image (as
    /// ECR does), so pulls do not turn into writes.
    pub async fn image_pulled(&self, repo: &str, image: &Image) -> Result<(), Error> {
        let now = Timestamp::now();
        if !image.pull_is_stale(now) {
            return Ok(());
        }
        let n = self.require_repo(repo)?;
        let ik = key(&n, image.digest.as_str());
        self.store
            .write(move |tx| {
                let Some(rec) = tx.get(Kind::Image, &ik)? else {
                    return Ok(());
                };
                let (g, mut img) = decode::<Image>(rec)?;
                if !img.pull_is_stale(now) {
                    return Ok(());
                }
                img.last_pull = Some(now);
                tx.update(Kind::Image, &ik, g, None, &encode(&img)?)?;
                Ok(())
            })
            .await
    }

    /// Tags of a repository, sorted, after `last`, at most `n`.
    pub fn tags_list(
        &self,
        repo: &str,
        last: Option<&str>,
        n: usize,
    ) -> Result<Vec<String>, Error> {
        let name = self.require_repo(repo)?;
        let prefix = key(&name, "");
        let after = last.map(|l| key(&name, l));
        let rows = self.store.read(|r| {
            r.list(
                Kind::ImageTag,
                &ListQuery {
                    prefix: &prefix,
                    after: after.as_deref(),
                    limit: n,
                    ..Default::default()
                },
            )
        })?;
        Ok(rows
            .into_iter()
            .map(|r| r.key[prefix.len()..].to_string())
            .collect())
    }

    /// Images of a repository in digest order.
    pub fn images_list(&self, repo: &str) -> Result<Vec<Image>, Error> {
        let name = self.require_repo(repo)?;
        let prefix = key(&name, "");
        let rows = self.store.read(|r| list_all(r, Kind::Image, &prefix))?;
        rows.into_iter()
            .map(|r| decode(r).map(|(_, v)| v))
            .collect()
    }

    /// Deletes an image (all its tags) by digest, or one tag.
    pub async fn image_delete(&self, repo: &str, reference: &Reference) -> Result<Image, Error> {
        let n = self.require_repo(repo)?;
        let image = self.image_resolve(repo, reference)?;
        let reference = reference.clone();
        let account = self.registry_id().to_string();
        self.store
            .write(move |tx| {
                let ik = key(&n, image.digest.as_str());
                let rec = tx
                    .get(Kind::Image, &ik)?
                    .ok_or_else(|| image_not_found(&account, &n, &reference))?;
                let (g, mut img) = decode::<Image>(rec)?;
                match &reference {
                    Reference::Tag(t) => {
                        if let Some(r) = tx.get(Kind::ImageTag, &key(&n, t))? {
                            tx.delete(Kind::ImageTag, &r.key, r.generation)?;
                        }
                        img.tags.retain(|x| x != t);
                        tx.update(Kind::Image, &ik, g, None, &encode(&img)?)?;
                    }
                    Reference::Digest(_) => image_remove(tx, &n, g, &img)?,
                }
                Ok(img)
            })
            .await
    }
}

/// Removes an image and its tags inside a write transaction, as BatchDeleteImage by digest
/// does (the caller has checked no surviving index references it). Copies of it still queued
/// for replication go with it: deletes are not replicated, and neither is what was deleted.
pub(crate) fn image_remove(
    tx: &mut Tx<'_>,
    n: &RepositoryName,
    g: Generation,
    img: &Image,
) -> Result<(), Error> {
    for t in &img.tags {
        if let Some(r) = tx.get(Kind::ImageTag, &key(n, t))? {
            let (tg, rec) = decode::<TagRecord>(r)?;
            if rec.digest == img.digest {
                tx.delete(Kind::ImageTag, &key(n, t), tg)?;
            }
        }
    }
    let ik = key(n, img.digest.as_str());
    tx.delete(Kind::Image, &ik, g)?;
    if let Some(r) = tx.get(Kind::Replication, &ik)? {
        tx.delete(Kind::Replication, &ik, r.generation)?;
    }
    Ok(())
}

/// How ECR's messages name an image id: `{imageDigest:'sha256:…', imageTag:'null'}`.
pub fn image_id_text(digest: Option<&str>, tag: Option<&str>) -> String {
    format!(
        "{{imageDigest:'{}', imageTag:'{}'}}",
        digest.unwrap_or("null"),
        tag.unwrap_or("null")
    )
}

/// ECR's `ImageNotFoundException` message.
pub fn image_not_found_message(account: &str, repo: &str, id: &str) -> String {
    format!(
        "The image with imageId {id} does not exist within the repository with name '{repo}' in the registry with id '{account}'"
    )
}

fn image_not_found(account: &str, repo: &RepositoryName, reference: &Reference) -> Error {
    let id = match reference {
        Reference::Tag(t) => image_id_text(None, Some(t)),
        Reference::Digest(d) => image_id_text(Some(d.as_str()), None),
    };
    Error::ImageNotFound(image_not_found_message(account, repo.as_str(), &id))
}

/// The start of the message of a manifest list or index whose images are missing (ECR
/// answers `ReferencedImagesNotFoundException` to PutImage there).
pub const IMAGES_MISSING: &str = "Images with digests";

/// `a, b` of digests, as ECR lists them.
fn join(ds: &[&Digest]) -> String {
    ds.iter().map(|d| d.as_str()).collect::<Vec<_>>().join(", ")
}

/// Points `tag` at `image` within a write transaction, honouring tag immutability.
fn tag_point(
    tx: &mut Tx<'_>,
    repo: &Repository,
    tag: &str,
    image: &mut Image,
) -> Result<(), Error> {
    let n = &repo.name;
    let tk = key(n, tag);
    match tx.get(Kind::ImageTag, &tk)? {
        Some(rec) => {
            let (g, old) = decode::<TagRecord>(rec)?;
            if old.digest == image.digest {
                return Ok(());
            }
            if tag_is_immutable(repo, tag) {
                return Err(Error::ImageTagImmutable(format!(
                    "The image tag '{tag}' already exists in the '{n}' repository and cannot be overwritten because the tag is immutable."
                )));
            }
            // Detach from the image it named.
            let ok = key(n, old.digest.as_str());
            if let Some(r) = tx.get(Kind::Image, &ok)? {
                let (og, mut other) = decode::<Image>(r)?;
                other.tags.retain(|t| t != tag);
                tx.update(Kind::Image, &ok, og, None, &encode(&other)?)?;
            }
            tx.update(
                Kind::ImageTag,
                &tk,
                g,
                None,
                &encode(&TagRecord {
                    digest: image.digest.clone(),
                })?,
            )?;
        }
        None => {
            tx.insert(
                Kind::ImageTag,
                &tk,
                None,
                &encode(&TagRecord {
                    digest: image.digest.clone(),
                })?,
            )?;
        }
    }
    if !image.tags.iter().any(|t| t == tag) {
        image.tags.push(tag.to_string());
    }
    Ok(())
}

/// Whether `tag` may not move in `repo` (mutability plus exclusion filters).
pub fn tag_is_immutable(repo: &Repository, tag: &str) -> bool {
    let excluded = repo.tag_mutability_exclusions.iter().any(|f| {
        f.get("filter")
            .and_then(Value::as_str)
            .is_some_and(|pattern| wildcard_match(pattern, tag))
    });
    match repo.tag_mutability.as_str() {
        "IMMUTABLE" => true,
        "IMMUTABLE_WITH_EXCLUSION" => !excluded,
        "MUTABLE_WITH_EXCLUSION" => excluded,
        _ => false,
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn wildcard_match(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !s.starts_with(first) || s.len() < first.len() + last.len() || !s.ends_with(last) {
        return false;
    }
    let mut rest = &s[first.len()..s.len() - last.len()];
    for p in &parts[1..parts.len() - 1] {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    true
}

/// Every record of `kind` whose key starts with `prefix`, inside a write job or from a reader.
pub(crate) fn list_all(r: &impl Read, kind: Kind, prefix: &str) -> Result<Vec<Record>, Error> {
    r.list(
        kind,
        &ListQuery {
            prefix,
            limit: usize::MAX >> 1,
            ..Default::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_whole_strings() {
        assert!(wildcard_match("prod*", "prod-1"));
        assert!(wildcard_match("*-rc*", "v1-rc2"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("prod*", "dev-prod"));
        assert!(wildcard_match("a*b*c", "aXbYc"));
        assert!(!wildcard_match("a*b*c", "acb"));
        assert!(wildcard_match("exact", "exact") && !wildcard_match("exact", "exactly"));
    }
}
