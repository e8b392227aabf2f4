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

mod blobs;
mod gc;
pub mod lifecycle;
mod manifest;
mod settings;

pub use blobs::Content;
pub use gc::{BlobCollector, GcStatus};

pub use manifest::{MediaType, ParsedManifest};

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

fn not_found(repo: &str) -> Error {
    Error::RepositoryNotFound(repo.to_string())
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

    pub fn parse_name(&self, name: &str) -> Result<RepositoryName, Error> {
        RepositoryName::parse(name).ok_or_else(|| {
            Error::InvalidParameter(format!(
                "Invalid parameter at 'repositoryName' failed to satisfy constraint: 'must satisfy regular expression '(?:[a-z0-9]+(?:[._-][a-z0-9]+)*/)*[a-z0-9]+(?:[._-][a-z0-9]+)*''; got '{name}'"
            ))
        })
    }

    // ---- repositories -------------------------------------------------------------------

    pub async fn repository_create(&self, cmd: CreateRepository) -> Result<Repository, Error> {
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
            policy: None,
        };
        let r = repo.clone();
        self.store
            .write(move |tx| {
                let doc = encode(&r)?;
                match tx.insert(Kind::Repository, r.name.as_str(), None, &doc) {
                    Err(Error::Conflict) => Err(Error::RepositoryAlreadyExists(r.name.to_string())),
                    other => other.map(|_| ()),
                }
            })
            .await?;
        Ok(repo)
    }

    pub fn repository_get(&self, name: &str) -> Result<Repository, Error> {
        let Some(n) = RepositoryName::parse(name) else {
            return Err(not_found(name));
        };
        self.store
            .read(|r| r.get(Kind::Repository, n.as_str()))?
            .map(|rec| decode::<Repository>(rec).map(|(_, r)| r))
            .transpose()?
            .ok_or_else(|| not_found(name))
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
        let n = RepositoryName::parse(name).ok_or_else(|| not_found(name))?;
        self.store
            .write(move |tx| {
                let rec = tx
                    .get(Kind::Repository, n.as_str())?
                    .ok_or_else(|| not_found(n.as_str()))?;
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
        let n = RepositoryName::parse(name).ok_or_else(|| not_found(name))?;
        self.store
            .write(move |tx| {
                let rec = tx
                    .get(Kind::Repository, n.as_str())?
                    .ok_or_else(|| not_found(n.as_str()))?;
                let (g, repo) = decode::<Repository>(rec)?;
                let prefix = key(&n, "");
                let images = list_all(tx, Kind::Image, &prefix)?;
                if !images.is_empty() && !force {
                    return Err(Error::RepositoryNotEmpty(n.to_string()));
                }
                for kind in [Kind::Image, Kind::ImageTag, Kind::RepositoryBlob] {
                    for r in list_all(tx, kind, &prefix)? {
                        tx.delete(kind, &r.key, r.generation)?;
                    }
                }
                tx.delete(Kind::Repository, n.as_str(), g)?;
                Ok((repo, images.len()))
            })
            .await
    }

    /// The repository's name, if it exists (a point read; the record is not decoded).
    fn require_repo(&self, name: &str) -> Result<RepositoryName, Error> {
        let n = RepositoryName::parse(name).ok_or_else(|| not_found(name))?;
        match self.store.read(|r| r.get(Kind::Repository, n.as_str()))? {
            Some(_) => Ok(n),
            None => Err(not_found(name)),
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
        for b in &parsed.blobs {
            match self.blob_stat(repo, b)? {
                Some(s) => {
                    if parsed.layers.contains(b) {
                        image_size += s;
                    }
                }
                None => {
                    return Err(Error::ManifestBlobUnknown(format!(
                        "blob {b} referenced by the manifest is not in the repository"
                    )));
                }
            }
        }
        for m in &parsed.manifests {
            match self.image_get(&n, m)? {
                Some((_, img)) => image_size = image_size.max(img.image_size),
                None => {
                    return Err(Error::ManifestBlobUnknown(format!(
                        "manifest {m} referenced by the index is not in the repository"
                    )));
                }
            }
        }
        use base64::Engine;
        let encoded = b64().encode(&bytes);
        let tag = match reference {
            Reference::Tag(t) => Some(t.clone()),
            Reference::Digest(_) => None,
        };
        let image = Image {
            digest: digest.clone(),
            media_type: parsed.media_type.clone(),
            manifest_size: bytes.len() as u64,
            image_size,
            pushed_at: Timestamp::now(),
            last_pull: None,
            tags: Vec::new(),
            blobs: parsed.blobs,
            manifests: parsed.manifests,
            subject: parsed.subject,
            artifact_type: parsed.artifact_type,
            config_media_type: parsed.config_media_type,
            annotations: parsed.annotations,
        };
        self.store
            .write(move |tx| {
                let repo_rec = tx
                    .get(Kind::Repository, n.as_str())?
                    .ok_or_else(|| not_found(n.as_str()))?;
                let (_, repository) = decode::<Repository>(repo_rec)?;
                // Re-checked inside the transaction, which the garbage collector's is serialized
                // with: what the manifest references cannot vanish before the image is stored.
                for b in &image.blobs {
                    if tx
                        .get(Kind::RepositoryBlob, &key(&n, b.as_str()))?
                        .is_none()
                    {
                        return Err(Error::ManifestBlobUnknown(format!(
                            "blob {b} referenced by the manifest is not in the repository"
                        )));
                    }
                }
                for m in &image.manifests {
                    if tx.get(Kind::Image, &key(&n, m.as_str()))?.is_none() {
                        return Err(Error::ManifestBlobUnknown(format!(
                            "manifest {m} referenced by the index is not in the repository"
                        )));
                    }
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
                let doc = encode(&current)?;
                match expected {
                    Some(g) => tx.update(Kind::Image, &ik, g, None, &doc)?,
                    None => tx.insert(Kind::Image, &ik, None, &doc)?,
                };
                Ok(current)
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
                    None => return Err(image_not_found(&n, reference)),
                }
            }
        };
        self.image_get(&n, &digest)?
            .map(|(_, i)| i)
            .ok_or_else(|| image_not_found(&n, reference))
    }

    /// The manifest bytes of an image.
    pub async fn manifest_bytes(&self, image: &Image) -> Result<Bytes, Error> {
        if let Some(b) = self.manifests.get(&image.digest) {
            return Ok(b);
        }
        let bytes = self.blob_bytes(&image.digest).await?.ok_or_else(|| {
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
        self.store
            .write(move |tx| {
                let ik = key(&n, image.digest.as_str());
                let rec = tx
                    .get(Kind::Image, &ik)?
                    .ok_or_else(|| image_not_found(&n, &reference))?;
                let (g, mut img) = decode::<Image>(rec)?;
                let remove_tags: Vec<String> = match &reference {
                    Reference::Tag(t) => vec![t.clone()],
                    Reference::Digest(_) => img.tags.clone(),
                };
                for t in &remove_tags {
                    if let Some(r) = tx.get(Kind::ImageTag, &key(&n, t))? {
                        tx.delete(Kind::ImageTag, &r.key, r.generation)?;
                    }
                }
                img.tags.retain(|t| !remove_tags.contains(t));
                match reference {
                    Reference::Tag(_) => {
                        tx.update(Kind::Image, &ik, g, None, &encode(&img)?)?;
                    }
                    Reference::Digest(_) => tx.delete(Kind::Image, &ik, g)?,
                }
                Ok(img)
            })
            .await
    }
}

fn image_not_found(repo: &RepositoryName, reference: &Reference) -> Error {
    let what = match reference {
        Reference::Tag(t) => format!("imageTag={t}"),
        Reference::Digest(d) => format!("imageDigest={d}"),
    };
    Error::ImageNotFound(format!(
        "The image with imageId {{{what}}} does not exist within the repository with name '{repo}'"
    ))
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
