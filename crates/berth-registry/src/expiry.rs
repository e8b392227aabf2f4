//! Lifecycle policies on the store: a repository's policy text, when it was last evaluated,
//! its last preview, and the expiry pass that carries a policy out.
//!
//! One `lifecycle` record per repository (keyed by its name) holds all three
//! ([`LifecycleRecord`]); deleting the repository deletes it. The policy text was checked with
//! [`LifecyclePolicy::parse`] before it was stored.
//!
//! Preview and expiry call the same pure function, [`crate::lifecycle::evaluate`], on the
//! same kind of snapshot (every image record of the repository) and with the same clock, so
//! a preview lists exactly what an expiry at that moment removes:
//!
//! * [`Registry::lifecycle_preview_start`] evaluates at once — under 100 ms for 10,000 images
//!   (docs/benchmarks.md) — and stores the result as a `COMPLETE` preview. Berth therefore
//!   never has a preview `IN_PROGRESS`, and `LifecyclePolicyPreviewInProgressException` never
//!   happens (AWS computes previews asynchronously; clients poll with the
//!   `lifecycle-policy-preview-complete` waiter, which a `COMPLETE` answer satisfies at once).
//! * [`Registry::lifecycle_apply`] runs in **one write transaction** per repository: it lists
//!   the images, evaluates, removes the expired images in the evaluator's order (every index
//!   before the manifests it references) as BatchDeleteImage by digest does, and stamps
//!   `lastEvaluatedAt` — so a push or tag move racing the pass is either wholly before it or
//!   wholly after it. The evaluator never expires an image a surviving index references. The
//!   caller audits each expired image after the commit ([`crate::audit`]); the blobs the
//!   images used are collected by the garbage collector once past its grace period.
//!
//! The background task (`lifecycle`, on the leader) calls [`Registry::lifecycle_run`] for
//! every region at least every 24 hours of its clock, as AWS evaluates policies at least daily,
//! and whenever it is activated.

use crate::lifecycle::{self, Action, LifecyclePolicy};
use crate::{Image, Registry, decode, encode, image_remove, key, list_all, not_found};
use berth_store::{Kind, Tx};
use berth_types::oci::{Digest, RepositoryName};
use berth_types::{Error, Timestamp};
use serde::{Deserialize, Serialize};

/// What is kept of one repository's lifecycle.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LifecycleRecord {
    /// `lifecyclePolicyText`, as put.
    pub policy: Option<String>,
    /// When the policy was last carried out (`lastEvaluatedAt`).
    #[serde(default)]
    pub last_evaluated_at: Option<Timestamp>,
    /// The last preview.
    #[serde(default)]
    pub preview: Option<LifecyclePreview>,
}

/// `LifecyclePolicyPreviewStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PreviewStatus {
    InProgress,
    Complete,
    Expired,
    Failed,
}

impl PreviewStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PreviewStatus::InProgress => "IN_PROGRESS",
            PreviewStatus::Complete => "COMPLETE",
            PreviewStatus::Expired => "EXPIRED",
            PreviewStatus::Failed => "FAILED",
        }
    }
}

/// A preview: the policy text it evaluated and what that policy would act on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LifecyclePreview {
    pub policy: String,
    pub status: PreviewStatus,
    pub evaluated_at: Timestamp,
    /// In the evaluator's order.
    pub results: Vec<PreviewItem>,
}

/// One image a preview lists (`LifecyclePolicyPreviewResult`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewItem {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub pushed_at: Timestamp,
    pub rule_priority: u32,
    /// `true` for a `transition` rule (to the archive class), else `expire`.
    #[serde(default)]
    pub transition: bool,
}

/// What one expiry pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LifecycleStatus {
    /// Repositories whose policy was evaluated.
    pub repositories: usize,
    pub images_expired: usize,
    /// Repositories whose pass failed (the next activation retries them).
    pub failures: usize,
}

/// ECR's `LifecyclePolicyNotFoundException`.
fn no_policy(account: &str, repo: &str) -> Error {
    Error::coded(
        "LifecyclePolicyNotFoundException",
        format!(
            "Lifecycle policy does not exist for the repository with name '{repo}' in the registry with id '{account}'"
        ),
    )
}

/// Sets a repository's policy inside a write transaction (a creation template's, applied as
/// the repository is created).
pub(crate) fn policy_set(
    tx: &mut Tx<'_>,
    repo: &RepositoryName,
    text: String,
    _now: Timestamp,
) -> Result<(), Error> {
    let (generation, mut rec) = match tx.get(Kind::Lifecycle, repo.as_str())? {
        Some(r) => {
            let (g, v) = decode::<LifecycleRecord>(r)?;
            (Some(g), v)
        }
        None => (None, LifecycleRecord::default()),
    };
    rec.policy = Some(text);
    let doc = encode(&rec)?;
    match generation {
        Some(g) => tx.update(Kind::Lifecycle, repo.as_str(), g, None, &doc)?,
        None => tx.insert(Kind::Lifecycle, repo.as_str(), None, &doc)?,
    };
    Ok(())
}

fn results_of(evaluated: Vec<lifecycle::Expiration>) -> Vec<PreviewItem> {
    evaluated
        .into_iter()
        .map(|e| PreviewItem {
            digest: e.digest,
            tags: e.tags,
            pushed_at: e.pushed_at,
            rule_priority: e.rule_priority,
            transition: matches!(e.action, Action::Transition { .. }),
        })
        .collect()
}

impl Registry {
    /// The repository's lifecycle record (empty when it has none). The repository must exist.
    pub fn lifecycle_get(&self, repo: &str) -> Result<LifecycleRecord, Error> {
        let n = self.require_repo(repo)?;
        let rec = self.store.read(|r| r.get(Kind::Lifecycle, n.as_str()))?;
        Ok(rec
            .map(decode::<LifecycleRecord>)
            .transpose()?
            .map(|(_, v)| v)
            .unwrap_or_default())
    }

    /// The repository's policy text, or `LifecyclePolicyNotFoundException`.
    pub fn lifecycle_policy_required(&self, repo: &str) -> Result<LifecycleRecord, Error> {
        let rec = self.lifecycle_get(repo)?;
        match rec.policy {
            Some(_) => Ok(rec),
            None => Err(no_policy(self.registry_id(), repo)),
        }
    }

    /// `PutLifecyclePolicy`: `text` has been checked by the caller.
    pub async fn lifecycle_policy_put(&self, repo: &str, text: String) -> Result<(), Error> {
        let n = self.require_repo(repo)?;
        let account = self.registry_id().to_string();
        self.store
            .write(move |tx| {
                if tx.get(Kind::Repository, n.as_str())?.is_none() {
                    return Err(not_found(&account, n.as_str()));
                }
                policy_set(tx, &n, text, Timestamp::now())
            })
            .await
    }

    /// `DeleteLifecyclePolicy`: the record as it was.
    pub async fn lifecycle_policy_delete(&self, repo: &str) -> Result<LifecycleRecord, Error> {
        let n = self.require_repo(repo)?;
        let account = self.registry_id().to_string();
        self.store
            .write(move |tx| {
                let rec = tx.get(Kind::Lifecycle, n.as_str())?;
                let Some((g, mut rec)) = rec.map(decode::<LifecycleRecord>).transpose()? else {
                    return Err(no_policy(&account, n.as_str()));
                };
                let Some(text) = rec.policy.take() else {
                    return Err(no_policy(&account, n.as_str()));
                };
                let before = LifecycleRecord {
                    policy: Some(text),
                    ..rec.clone()
                };
                tx.update(Kind::Lifecycle, n.as_str(), g, None, &encode(&rec)?)?;
                Ok(before)
            })
            .await
    }

    /// `StartLifecyclePolicyPreview`: evaluates `text` (or the repository's policy) on the
    /// repository as it is at `now` and keeps the result as the repository's preview.
    pub async fn lifecycle_preview_start(
        &self,
        repo: &str,
        text: Option<String>,
        now: Timestamp,
    ) -> Result<LifecyclePreview, Error> {
        let n = self.require_repo(repo)?;
        let text = match text {
            Some(t) => t,
            None => self
                .lifecycle_policy_required(repo)?
                .policy
                .unwrap_or_default(),
        };
        let policy = LifecyclePolicy::parse(&text)?;
        let account = self.registry_id().to_string();
        self.store
            .write(move |tx| {
                if tx.get(Kind::Repository, n.as_str())?.is_none() {
                    return Err(not_found(&account, n.as_str()));
                }
                let images = repository_images(tx, &n)?;
                let preview = LifecyclePreview {
                    policy: text,
                    status: PreviewStatus::Complete,
                    evaluated_at: now,
                    results: results_of(lifecycle::evaluate(&policy, &images, now)),
                };
                let (g, mut rec) = match tx.get(Kind::Lifecycle, n.as_str())? {
                    Some(r) => {
                        let (g, v) = decode::<LifecycleRecord>(r)?;
                        (Some(g), v)
                    }
                    None => (None, LifecycleRecord::default()),
                };
                rec.preview = Some(preview.clone());
                let doc = encode(&rec)?;
                match g {
                    Some(g) => tx.update(Kind::Lifecycle, n.as_str(), g, None, &doc)?,
                    None => tx.insert(Kind::Lifecycle, n.as_str(), None, &doc)?,
                };
                Ok(preview)
            })
            .await
    }

    /// `GetLifecyclePolicyPreview`: the last preview, or
    /// `LifecyclePolicyPreviewNotFoundException` (wording guessed after
    /// `LifecyclePolicyNotFoundException`'s).
    pub fn lifecycle_preview_get(&self, repo: &str) -> Result<LifecyclePreview, Error> {
        self.lifecycle_get(repo)?.preview.ok_or_else(|| {
            Error::coded(
                "LifecyclePolicyPreviewNotFoundException",
                format!(
                    "Lifecycle policy preview does not exist for the repository with name '{repo}' in the registry with id '{}'",
                    self.registry_id()
                ),
            )
        })
    }

    /// Carries out the lifecycle policy of every repository of this registry that has one
    /// (see the module documentation); `expired` is called once per image removed, after
    /// its repository's transaction committed.
    pub async fn lifecycle_run(
        &self,
        now: Timestamp,
        mut expired: impl FnMut(&str, &Image, u32),
    ) -> Result<LifecycleStatus, Error> {
        let records = self.store.read(|r| list_all(r, Kind::Lifecycle, ""))?;
        let mut status = LifecycleStatus::default();
        for rec in records {
            let (_, lc) = decode::<LifecycleRecord>(rec.clone())?;
            if lc.policy.is_none() {
                continue;
            }
            status.repositories += 1;
            match self.lifecycle_apply(&rec.key, now).await {
                Ok(gone) => {
                    status.images_expired += gone.len();
                    for (image, rule) in &gone {
                        expired(&rec.key, image, *rule);
                    }
                }
                Err(e) => {
                    status.failures += 1;
                    tracing::warn!(repository = %rec.key, error = %e, "lifecycle policy pass failed");
                }
            }
        }
        Ok(status)
    }

    /// Carries out one repository's lifecycle policy at `now` in one transaction: the images
    /// removed, each with the priority of the rule that expired it, in the order removed.
    pub async fn lifecycle_apply(
        &self,
        repo: &str,
        now: Timestamp,
    ) -> Result<Vec<(Image, u32)>, Error> {
        let n = self.require_repo(repo)?;
        self.store
            .write(move |tx| {
                let Some(rec) = tx.get(Kind::Lifecycle, n.as_str())? else {
                    return Ok(Vec::new());
                };
                let (g, mut lc) = decode::<LifecycleRecord>(rec)?;
                let Some(text) = &lc.policy else {
                    return Ok(Vec::new());
                };
                let policy = LifecyclePolicy::parse(text)?;
                let images = repository_images(tx, &n)?;
                let by_digest: std::collections::HashMap<&Digest, &Image> =
                    images.iter().map(|i| (&i.digest, i)).collect();
                let mut gone = Vec::new();
                for e in lifecycle::evaluate(&policy, &images, now) {
                    // Berth keeps every image in the standard class: it carries out `expire`
                    // only (PutLifecyclePolicy refuses transitions).
                    if e.action != Action::Expire {
                        continue;
                    }
                    let Some(image) = by_digest.get(&e.digest) else {
                        continue;
                    };
                    let ik = key(&n, image.digest.as_str());
                    let Some(current) = tx.get(Kind::Image, &ik)? else {
                        continue;
                    };
                    image_remove(tx, &n, current.generation, image)?;
                    gone.push(((*image).clone(), e.rule_priority));
                }
                lc.last_evaluated_at = Some(now);
                tx.update(Kind::Lifecycle, n.as_str(), g, None, &encode(&lc)?)?;
                Ok(gone)
            })
            .await
    }
}

/// Every image of a repository, inside a write job.
fn repository_images(tx: &Tx<'_>, n: &RepositoryName) -> Result<Vec<Image>, Error> {
    list_all(tx, Kind::Image, &key(n, ""))?
        .into_iter()
        .map(|r| decode::<Image>(r).map(|(_, i)| i))
        .collect()
}
