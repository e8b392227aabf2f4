//! The pull-through cache: a pull (`GET`/`HEAD /v2/<name>/manifests/<ref>`) of a repository
//! a pull-through cache rule covers is served from the upstream registry when Berth does not
//! have the image yet, and from Berth afterwards — also while the upstream is down.
//!
//! * **On a miss** the manifest is fetched from the upstream (`berth-oci`, with the rule's
//!   credentials), then every image an index references, then every blob Berth does not
//!   store yet (four at a time, each checked against its digest as any upload is), and only
//!   then is the manifest stored — under its tag, for a pull by tag — in a repository created
//!   from the `PULL_THROUGH_CACHE` creation templates if it did not exist. The first pull
//!   therefore waits for the whole image; every later pull is local.
//! * **Refresh**: a pull by tag checks the upstream for a newer manifest at most once every
//!   24 hours per image (ECR's rule); a new digest is imported and the tag moves to it. If the
//!   upstream cannot be reached the cached image is served.
//! * **Who may**: a caller other than root needs `ecr:BatchImportUpstreamImage` on the
//!   repository to fill it, and `ecr:CreateRepository` to create it (as on ECR).
//!
//! Credentials: a rule's `credentialArn` names a secret of Berth's configuration (see
//! `ecr/pull_through.rs`), [`UpstreamSecret`].

use crate::{ApiState, Regional};
use berth_registry::pull_through::PullThroughRule;
use berth_registry::{Image, PushOrigin, Reference, Registry};
use berth_types::oci::Digest;
use berth_types::{Error, Timestamp};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Every region's pull-through cache rules, kept in memory so that a pull of a repository no
/// rule covers costs no store read: reloaded after any committed change of a rule (a store
/// watcher, which also sees other servers' changes through the change feed).
type Rules = Arc<Vec<PullThroughRule>>;

#[derive(Default)]
pub(crate) struct RuleCache {
    /// Bumped once a change of some rule is durable and visible to readers.
    version: AtomicU64,
    /// A rule changed in the batch being committed.
    dirty: AtomicBool,
    cached: std::sync::Mutex<HashMap<String, (u64, Rules)>>,
}

impl berth_store::Watcher for RuleCache {
    fn watches(&self, kind: berth_store::Kind) -> bool {
        kind == berth_store::Kind::RegistrySetting
    }
    fn changed(&self, _: berth_store::Kind, key: &str, _: Option<&str>) {
        let key = key.split_once('\t').map_or(key, |(_, k)| k);
        if berth_registry::pull_through::is_rule_key(key) {
            self.dirty.store(true, Ordering::Release);
        }
    }
    fn reset(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }
    fn committed(&self) {
        if self.dirty.swap(false, Ordering::AcqRel) {
            self.version.fetch_add(1, Ordering::AcqRel);
        }
    }
}

impl RuleCache {
    /// The rules of `region`'s registry.
    fn rules(&self, region: &Regional) -> Result<Rules, Error> {
        let name = region.scope.region.as_str();
        let version = self.version.load(Ordering::Acquire);
        if let Some((v, rules)) = self.cached.lock().expect("rule cache").get(name)
            && *v == version
        {
            return Ok(rules.clone());
        }
        let rules = Arc::new(region.registry.pull_through_rules()?);
        self.cached
            .lock()
            .expect("rule cache")
            .insert(name.to_string(), (version, rules.clone()));
        Ok(rules)
    }
}

/// How often a cached tag is checked against the upstream.
const REFRESH_MS: i64 = 24 * 3600 * 1000;
/// Blobs fetched at once.
const PARALLEL_BLOBS: usize = 4;

/// Credentials of an upstream registry (`[[pull-through-cache.secret]]`).
#[derive(Clone)]
pub struct UpstreamSecret {
    /// The secret's name: what follows `:secret:` in a `credentialArn`
    /// (`ecr-pullthroughcache/<name>`).
    pub name: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for UpstreamSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamSecret")
            .field("name", &self.name)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// The configured secret a `credentialArn` names (by the name after `:secret:`; an AWS
    /// secret ARN's random `-XXXXXX` suffix may be left off or kept).
    pub fn upstream_secret(&self, arn: &str) -> Option<&UpstreamSecret> {
        let name = arn.split_once(":secret:").map_or(arn, |(_, n)| n);
        self.inner.ecr.upstream_secrets.iter().find(|s| {
            name == s.name
                || name
                    .strip_prefix(s.name.as_str())
                    .is_some_and(|rest| rest.len() == 7 && rest.starts_with('-'))
        })
    }
}

/// The client of a rule's upstream.
fn client(state: &ApiState, rule: &PullThroughRule) -> Result<Arc<berth_oci::Client>, String> {
    let credentials = match &rule.credential_arn {
        None => berth_oci::Credentials::Anonymous,
        Some(arn) => {
            let s = state
                .upstream_secret(arn)
                .ok_or_else(|| format!("the secret {arn} is not configured"))?;
            berth_oci::Credentials::Basic {
                username: s.username.clone(),
                password: s.password.clone(),
            }
        }
    };
    let key = format!(
        "pull-through\n{}\n{}",
        rule.upstream_url,
        rule.credential_arn.as_deref().unwrap_or("")
    );
    state
        .inner
        .clients
        .get(key, || {
            berth_oci::Client::new(&rule.upstream_url, credentials)
        })
        .map_err(|e| e.message)
}

/// `ValidatePullThroughCacheRule`: why the upstream cannot be used, if it cannot.
pub(crate) async fn validate(state: &ApiState, rule: &PullThroughRule) -> Option<String> {
    let c = match client(state, rule) {
        Ok(c) => c,
        Err(e) => return Some(e),
    };
    c.ping().await.err().map(|e| e.message)
}

/// An error of the upstream as the puller sees it: it could not be reached (or refused us).
fn upstream_error(e: berth_oci::OciError) -> Error {
    if e.is_denied() {
        Error::coded(
            "UnableToGetUpstreamImageException",
            format!("The upstream registry refused access: {}", e.message),
        )
    } else {
        Error::Unavailable(format!(
            "The upstream registry is unavailable: {}",
            e.message
        ))
    }
}

/// The rule of the pull-through cache that covers `repo` in `region`, with the upstream
/// repository it maps to; `None`: the repository is the registry's own business.
pub(crate) fn rule_of(
    state: &ApiState,
    region: &Regional,
    repo: &str,
) -> Result<Option<(PullThroughRule, String)>, Error> {
    let rules = state.inner.pull_through_rules.rules(region)?;
    Ok(berth_registry::pull_through::rule_for(&rules, repo))
}

/// A pull of `repo`:`reference` in `region`, a repository `rule` covers (see [`rule_of`]):
/// the image, from Berth's copy or from the upstream (see the module documentation).
pub(crate) async fn pull(
    state: &ApiState,
    region: &Regional,
    authorize: &(dyn Fn(&str, &str) -> Result<(), Error> + Sync),
    repo: &str,
    reference: &Reference,
    (rule, upstream): (PullThroughRule, String),
) -> Result<Image, Error> {
    let registry = &region.registry;
    let cached = match registry.image_resolve(repo, reference) {
        Ok(i) => Some(i),
        Err(Error::ImageNotFound(_) | Error::RepositoryNotFound(_)) => None,
        Err(e) => return Err(e),
    };
    let now = Timestamp::now();
    if let Some(img) = &cached {
        let fresh = img
            .upstream_checked_at
            .is_some_and(|t| now.0 - t.0 < REFRESH_MS);
        if fresh || matches!(reference, Reference::Digest(_)) {
            return Ok(img.clone());
        }
    }
    let c = client(state, &rule).map_err(Error::Unavailable)?;
    let reference_text = match reference {
        Reference::Tag(t) => t.clone(),
        Reference::Digest(d) => d.to_string(),
    };
    // A cached tag: does the upstream still name the same image?
    if let Some(img) = &cached {
        match c.manifest_digest(&upstream, &reference_text).await {
            Ok(Some(d)) if d == img.digest.as_str() => {
                registry
                    .image_upstream_checked(repo, &img.digest, now)
                    .await?;
                return Ok(img.clone());
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(repository = repo, error = %e, "the upstream could not be checked; serving the cached image");
                return Ok(img.clone());
            }
        }
    }
    let Some(manifest) = c
        .manifest_get(&upstream, &reference_text)
        .await
        .map_err(upstream_error)?
    else {
        return match cached {
            Some(img) => Ok(img),
            None => Err(Error::ImageNotFound(format!(
                "The image {repo}:{reference_text} does not exist in the upstream registry {}",
                rule.upstream_url
            ))),
        };
    };
    let fresh = fill(
        &c, registry, authorize, repo, &upstream, manifest, reference,
    )
    .await;
    match (fresh, cached) {
        (Ok(img), _) => Ok(img),
        // A refresh that cannot be stored (an immutable tag, no permission to import, …)
        // leaves the cached image served.
        (Err(e), Some(img)) => {
            tracing::warn!(repository = repo, error = %e, "the newer upstream image was not cached; serving the cached one");
            Ok(img)
        }
        (Err(e), None) => Err(e),
    }
}

/// Imports `manifest` into `repo` (created from the templates if need be), as the caller may.
async fn fill(
    c: &berth_oci::Client,
    registry: &Registry,
    authorize: &(dyn Fn(&str, &str) -> Result<(), Error> + Sync),
    repo: &str,
    upstream: &str,
    manifest: berth_oci::Manifest,
    reference: &Reference,
) -> Result<Image, Error> {
    authorize(repo, "ecr:BatchImportUpstreamImage")?;
    if registry.repository_find(repo)?.is_none() {
        authorize(repo, "ecr:CreateRepository")?;
        registry
            .repository_create_for(
                repo,
                berth_registry::templates::AppliedFor::PullThroughCache,
            )
            .await?;
    }
    import(c, registry, repo, upstream, manifest, reference).await
}

/// Stores `manifest` (and everything it references) from `upstream` into `repo` under
/// `reference`.
async fn import(
    c: &berth_oci::Client,
    registry: &Registry,
    repo: &str,
    upstream: &str,
    manifest: berth_oci::Manifest,
    reference: &Reference,
) -> Result<Image, Error> {
    // Children of an index first (depth 1: an index of indexes is not an image type).
    let parsed = berth_registry::parse_manifest(&manifest.bytes, Some(&manifest.media_type))?;
    for child in &parsed.manifests {
        if registry
            .image_resolve(repo, &Reference::Digest(child.clone()))
            .is_ok()
        {
            continue;
        }
        let m = c
            .manifest_get(upstream, child.as_str())
            .await
            .map_err(upstream_error)?
            .ok_or_else(|| {
                Error::coded(
                    "UnableToGetUpstreamImageException",
                    format!("The upstream registry has no manifest {child} of {upstream}"),
                )
            })?;
        let p = berth_registry::parse_manifest(&m.bytes, Some(&m.media_type))?;
        import_blobs(c, registry, repo, upstream, &p.blobs).await?;
        registry
            .manifest_push(
                repo,
                &Reference::Digest(child.clone()),
                Some(&m.media_type),
                m.bytes,
                PushOrigin::PullThrough,
            )
            .await?;
    }
    import_blobs(c, registry, repo, upstream, &parsed.blobs).await?;
    let pushed = registry
        .manifest_push(
            repo,
            reference,
            Some(&manifest.media_type),
            manifest.bytes,
            PushOrigin::PullThrough,
        )
        .await?;
    registry
        .image_upstream_checked(repo, &pushed.image.digest, Timestamp::now())
        .await?;
    tracing::info!(repository = repo, upstream, digest = %pushed.image.digest, "image pulled through the cache");
    Ok(pushed.image)
}

/// Makes `blobs` visible in `repo`: linked if Berth stores them already, else fetched.
async fn import_blobs(
    c: &berth_oci::Client,
    registry: &Registry,
    repo: &str,
    upstream: &str,
    blobs: &[Digest],
) -> Result<(), Error> {
    let fetches: Vec<_> = blobs
        .iter()
        .map(|b| import_blob(c, registry, repo, upstream, b))
        .collect();
    let results: Vec<Result<(), Error>> = futures_util::stream::iter(fetches)
        .buffer_unordered(PARALLEL_BLOBS)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Makes blob `b` visible in `repo`: linked if Berth stores it already, else fetched.
async fn import_blob(
    c: &berth_oci::Client,
    registry: &Registry,
    repo: &str,
    upstream: &str,
    b: &Digest,
) -> Result<(), Error> {
    if registry.blob_stat(repo, b)?.is_some() {
        return Ok(());
    }
    if let Some(size) = registry.blob_stored_size(b)? {
        return registry.blob_link(repo, b, size).await;
    }
    let (_, stream) = c.blob_get(upstream, b.as_str()).await.map_err(|e| {
        Error::coded(
            "UnableToGetUpstreamLayerException",
            format!(
                "The layer {b} could not be fetched from the upstream: {}",
                e.message
            ),
        )
    })?;
    let id = registry.upload_begin(repo).await?;
    let body = stream
        .map(|c| c.map_err(|_| berth_blob::BlobError::Interrupted))
        .boxed();
    registry.upload_append(repo, &id, Some(0), body).await?;
    registry.upload_finish(repo, &id, b).await.map(|_| ())
}
