//! Replication, the copying: the `replication` background task (on the leader) takes each
//! image with a destination due ([`berth_registry::replication`] keeps the durable status) and
//! copies it there, children of an index first, then the image by digest, then its tags.
//!
//! * **Another region of this Berth**: content is shared by every region, so a copy links
//!   the blobs into the destination repository and stores the manifests there — no bytes
//!   move.
//! * **Another Berth deployment** (`[[replication.remote]]`: its registry id, regions,
//!   endpoint and an access key of it): over its `/v2/` API with an ECR token it issues for the
//!   destination region (`berth-oci`), every request marked `X-Berth-Replication`. Blobs it
//!   already has are skipped (so a copy cut short resumes where it stopped); the others are
//!   streamed from the blob store, four at a time. The remote creates a missing repository
//!   from its `REPLICATION` creation templates (or with defaults), as ECR does — if the key
//!   may `ecr:CreateRepository` there.
//!
//! A destination repository that is immutable and already has a tag on another image gets the
//! image without that tag (as ECR does). A failure that another attempt may mend (the remote
//! unreachable, a 5xx) is retried with a growing pause; others — or the eighth — leave the
//! destination `FAILED` with the reason, which DescribeImageReplicationStatus shows.

use crate::{ApiState, Regional};
use berth_registry::replication::{Attempt, Destination, ImageReplication};
use berth_registry::{Content, Image, PushOrigin, Reference, Registry};
use berth_store::Fence;
use berth_types::oci::{Digest, RepositoryName};
use berth_types::{Error, Timestamp};
use futures_util::StreamExt;
use std::sync::Arc;

/// The header that marks a push as a replication (the receiving Berth does not replicate it
/// again and creates a missing repository from its `REPLICATION` templates).
pub const REPLICATION_HEADER: &str = "x-berth-replication";

/// Images attempted per region per activation (the rest wait for the next).
const BATCH: usize = 64;
/// Blobs in flight at once per copy to a remote.
const PARALLEL_BLOBS: usize = 4;

/// Another Berth deployment images may be replicated to.
#[derive(Clone)]
pub struct ReplicationRemote {
    /// The destinations' `registryId` it stands for.
    pub registry_id: String,
    /// The destination regions it serves (empty: every region).
    pub regions: Vec<String>,
    /// Its endpoint (`https://host:port`).
    pub endpoint: String,
    /// An access key of it (root's, or an IAM user's that may push and create repositories).
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for ReplicationRemote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicationRemote")
            .field("registry_id", &self.registry_id)
            .field("regions", &self.regions)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// What of Berth's configuration ECR features need.
#[derive(Debug, Clone, Default)]
pub struct EcrSettings {
    pub replication_remotes: Vec<ReplicationRemote>,
    pub upstream_secrets: Vec<crate::pull_through::UpstreamSecret>,
}

/// Clients of other registries, kept so their tokens are reused.
#[derive(Default)]
pub(crate) struct Clients(
    std::sync::Mutex<std::collections::HashMap<String, Arc<berth_oci::Client>>>,
);

impl Clients {
    /// The client kept under `key`, or the one `make` makes.
    pub(crate) fn get(
        &self,
        key: String,
        make: impl FnOnce() -> Result<berth_oci::Client, berth_oci::OciError>,
    ) -> Result<Arc<berth_oci::Client>, berth_oci::OciError> {
        let mut all = self.0.lock().expect("clients");
        if let Some(c) = all.get(&key) {
            return Ok(c.clone());
        }
        let c = Arc::new(make()?);
        all.insert(key, c.clone());
        Ok(c)
    }
}

impl ApiState {
    /// The remote Berth that stands for destination `registry_id` in `region`, if one is
    /// configured.
    pub fn replication_remote(
        &self,
        registry_id: &str,
        region: &str,
    ) -> Option<&ReplicationRemote> {
        self.inner.ecr.replication_remotes.iter().find(|r| {
            r.registry_id == registry_id
                && (r.regions.is_empty() || r.regions.iter().any(|x| x == region))
        })
    }

    /// One pass of the replication task: every region's due copies. Counts of what it did.
    pub async fn replicate(
        &self,
        fence: Option<&Fence>,
    ) -> Result<Vec<(&'static str, u64)>, Error> {
        let (mut copied, mut retried, mut failed) = (0, 0, 0);
        let now = Timestamp::now();
        for region in self.regions() {
            let registry = region.registry.fenced(fence);
            for rep in registry.replication_pending(now, BATCH)? {
                for d in &rep.destinations {
                    let due = d.state == berth_registry::replication::ReplicationState::InProgress
                        && d.next_attempt_at.0 <= now.0;
                    if !due {
                        continue;
                    }
                    let outcome = self.copy(&region, fence, &rep, &d.destination).await;
                    match &outcome {
                        Attempt::Copied => copied += 1,
                        Attempt::Retry(why) | Attempt::Fail(why) => {
                            tracing::warn!(repository = %rep.repository, digest = %rep.digest, region = %d.destination.region, registry_id = %d.destination.registry_id, why, "replication attempt failed");
                            if matches!(outcome, Attempt::Retry(_)) {
                                retried += 1;
                            } else {
                                failed += 1;
                            }
                        }
                    }
                    registry
                        .replication_record(
                            &rep.repository,
                            &rep.digest,
                            &d.destination,
                            outcome,
                            Timestamp::now(),
                        )
                        .await?;
                }
            }
        }
        Ok(vec![
            ("copies completed", copied),
            ("copies to retry", retried),
            ("copies failed", failed),
        ])
    }

    /// One attempt to copy `rep`'s image to `dest`.
    async fn copy(
        &self,
        region: &Regional,
        fence: Option<&Fence>,
        rep: &ImageReplication,
        dest: &Destination,
    ) -> Attempt {
        let source = &region.registry;
        let repo = rep.repository.as_str();
        let tree = match image_tree(source, repo, &rep.digest) {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Attempt::Fail("The image was deleted before it was replicated".into());
            }
            Err(e) => return local_failure(e),
        };
        let result = match self.replication_remote(&dest.registry_id, &dest.region) {
            Some(remote) => copy_remote(self, remote, &dest.region, source, &rep.repository, &tree)
                .await
                .map_err(|e| {
                    if e.retryable() {
                        Attempt::Retry(e.message)
                    } else {
                        Attempt::Fail(e.message)
                    }
                }),
            None if dest.registry_id == self.inner.scope.account.as_str() => {
                let Ok(r) = berth_types::Region::parse(&dest.region) else {
                    return Attempt::Fail(format!("'{}' is not a region", dest.region));
                };
                let target = self.region(&r).registry.fenced(fence);
                copy_local(source, &target, &rep.repository, &tree)
                    .await
                    .map_err(local_failure)
            }
            None => Err(Attempt::Fail(format!(
                "No Berth deployment is configured for registry {} in region {}",
                dest.registry_id, dest.region
            ))),
        };
        match result {
            Ok(()) => Attempt::Copied,
            Err(a) => a,
        }
    }

    /// The client of remote Berth `remote` for `region`.
    fn remote_client(
        &self,
        remote: &ReplicationRemote,
        region: &str,
    ) -> Result<Arc<berth_oci::Client>, berth_oci::OciError> {
        let source = format!("{}/{}", self.inner.scope.account, self.inner.scope.region);
        self.inner.clients.get(
            format!(
                "replication\n{}\n{}\n{region}\n{}",
                remote.registry_id, remote.endpoint, remote.access_key_id
            ),
            || {
                berth_oci::Client::new(
                    &remote.endpoint,
                    berth_oci::Credentials::Ecr {
                        access_key_id: remote.access_key_id.clone(),
                        secret_access_key: remote.secret_access_key.clone(),
                        region: region.to_string(),
                    },
                )
                .map(|c| c.with_header(REPLICATION_HEADER, &source))
            },
        )
    }
}

fn local_failure(e: Error) -> Attempt {
    match e {
        Error::Unavailable(m) => Attempt::Retry(m),
        Error::Conflict => Attempt::Retry("a concurrent change; trying again".into()),
        other => Attempt::Fail(other.to_string()),
    }
}

/// An image and (for an index) the images it references, children first, each with its
/// manifest bytes; `None` if the image is gone.
pub(crate) struct Tree {
    /// Children first; the image itself last.
    pub images: Vec<(Image, bytes::Bytes)>,
}

fn image_tree(registry: &Registry, repo: &str, digest: &Digest) -> Result<Option<Tree>, Error> {
    let mut images = Vec::new();
    let mut stack = vec![(digest.clone(), false)];
    while let Some((d, expanded)) = stack.pop() {
        let image = match registry.image_resolve(repo, &Reference::Digest(d.clone())) {
            Ok(i) => i,
            Err(Error::ImageNotFound(_)) if images.is_empty() && !expanded && d == *digest => {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if expanded || image.manifests.is_empty() {
            images.push((image, bytes::Bytes::new()));
            continue;
        }
        stack.push((d, true));
        for child in image.manifests.iter().rev() {
            if !images.iter().any(|(i, _): &(Image, _)| &i.digest == child) {
                stack.push((child.clone(), false));
            }
        }
    }
    Ok(Some(Tree { images }))
}

/// Fills in each image's manifest bytes.
async fn with_bytes(registry: &Registry, tree: &Tree) -> Result<Vec<(Image, bytes::Bytes)>, Error> {
    let mut out = Vec::with_capacity(tree.images.len());
    for (img, _) in &tree.images {
        out.push((img.clone(), registry.manifest_bytes(img).await?));
    }
    Ok(out)
}

/// A copy into another region of this Berth (content is shared: blobs are linked).
async fn copy_local(
    source: &Registry,
    target: &Registry,
    repo: &RepositoryName,
    tree: &Tree,
) -> Result<(), Error> {
    if target.repository_find(repo.as_str())?.is_none() {
        target
            .repository_create_for(
                repo.as_str(),
                berth_registry::templates::AppliedFor::Replication,
            )
            .await?;
    }
    let images = with_bytes(source, tree).await?;
    let (top, _) = images.last().expect("a tree has its image");
    let top_tags = top.tags.clone();
    for (img, bytes) in &images {
        for b in &img.blobs {
            let size = source
                .blob_stored_size(b)?
                .ok_or_else(|| Error::internal(format!("blob {b} of {repo} is not stored")))?;
            target.blob_link(repo.as_str(), b, size).await?;
        }
        target
            .manifest_push(
                repo.as_str(),
                &Reference::Digest(img.digest.clone()),
                Some(&img.media_type),
                bytes.clone(),
                PushOrigin::Replication,
            )
            .await?;
    }
    let (img, bytes) = images.last().expect("a tree has its image");
    for t in top_tags {
        let tagged = target
            .manifest_push(
                repo.as_str(),
                &Reference::Tag(t),
                Some(&img.media_type),
                bytes.clone(),
                PushOrigin::Replication,
            )
            .await;
        match tagged {
            Ok(_) | Err(Error::ImageTagImmutable(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A copy to another Berth deployment.
async fn copy_remote(
    state: &ApiState,
    remote: &ReplicationRemote,
    region: &str,
    source: &Registry,
    repo: &RepositoryName,
    tree: &Tree,
) -> Result<(), berth_oci::OciError> {
    let client = state.remote_client(remote, region)?;
    let images = with_bytes(source, tree).await.map_err(oci_local)?;
    for (img, bytes) in &images {
        let transfers: Vec<_> = img
            .blobs
            .iter()
            .map(|b| push_blob(&client, source, repo, b))
            .collect();
        let results: Vec<Result<(), berth_oci::OciError>> = futures_util::stream::iter(transfers)
            .buffer_unordered(PARALLEL_BLOBS)
            .collect()
            .await;
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        client
            .manifest_put(
                repo.as_str(),
                img.digest.as_str(),
                &img.media_type,
                bytes.clone(),
            )
            .await?;
    }
    let (img, bytes) = images.last().expect("a tree has its image");
    for t in &img.tags {
        match client
            .manifest_put(repo.as_str(), t, &img.media_type, bytes.clone())
            .await
        {
            Err(e) if e.code.as_deref() == Some("TAG_INVALID") => {}
            other => other?,
        }
    }
    Ok(())
}

fn oci_local(e: Error) -> berth_oci::OciError {
    berth_oci::OciError {
        status: matches!(e, Error::Unavailable(_)).then_some(503),
        code: None,
        message: e.to_string(),
    }
}

/// Sends blob `b` to the remote unless it has it.
async fn push_blob(
    client: &berth_oci::Client,
    source: &Registry,
    repo: &RepositoryName,
    b: &Digest,
) -> Result<(), berth_oci::OciError> {
    if client.blob_size(repo.as_str(), b.as_str()).await?.is_some() {
        return Ok(());
    }
    let size = source
        .blob_stored_size(b)
        .map_err(oci_local)?
        .ok_or_else(|| oci_local(Error::internal(format!("blob {b} is not stored"))))?;
    let body: berth_oci::ByteStream = match source.blob_read(b, 0, size).await.map_err(oci_local)? {
        None => {
            return Err(oci_local(Error::internal(format!(
                "blob {b} is not stored"
            ))));
        }
        Some(Content::Inline(bytes)) => futures_util::stream::iter([Ok(bytes)]).boxed(),
        Some(Content::Stream(s)) => s
            .map(|c| {
                c.map_err(|e| berth_oci::OciError {
                    status: None,
                    code: None,
                    message: format!("reading the blob: {e}"),
                })
            })
            .boxed(),
    };
    client.blob_put(repo.as_str(), b.as_str(), size, body).await
}
