//! ECR lifecycle policies: Put/Get/DeleteLifecyclePolicy and the preview operations, over
//! `berth_registry`'s store of them (`expiry.rs`) and its pure evaluator (`lifecycle.rs`).
//! Times come from the server's clock (the one the lifecycle task uses), so a preview and the
//! expiry judge image ages alike.

use super::*;
use berth_registry::lifecycle::{LifecyclePolicy, PolicyError, TagStatus};
use berth_registry::{LifecyclePreview, LifecycleRecord};

/// A policy text as PutLifecyclePolicy checks it: AWS's validation, then what Berth can
/// carry out — it keeps every image in the standard storage class, so a rule that selects
/// archived images or transitions images to the archive is refused (not ignored).
fn checked(text: &str) -> Result<LifecyclePolicy, Error> {
    let policy = LifecyclePolicy::parse(text)?;
    if policy.uses_archive() {
        return Err(PolicyError::Rule(
            "Berth has no archive storage class: rules with storageClass=ARCHIVE or action type TRANSITION are not supported.".into(),
        )
        .into());
    }
    Ok(policy)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyIn {
    repository_name: String,
    lifecycle_policy_text: Option<String>,
}

/// `PutLifecyclePolicy`.
pub(super) async fn put_lifecycle_policy(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: PolicyIn = input(v)?;
    let text = i.lifecycle_policy_text.unwrap_or_default();
    checked(&text)?;
    cx.region
        .registry
        .lifecycle_policy_put(&i.repository_name, text.clone())
        .await?;
    Ok(json!({
        "registryId": cx.region.scope.account.as_str(),
        "repositoryName": i.repository_name,
        "lifecyclePolicyText": text,
    }))
}

fn policy_out(cx: &Cx<'_>, repo: &str, rec: &LifecycleRecord) -> Value {
    let mut out = json!({
        "registryId": cx.region.scope.account.as_str(),
        "repositoryName": repo,
        "lifecyclePolicyText": rec.policy,
    });
    if let Some(t) = rec.last_evaluated_at {
        out["lastEvaluatedAt"] = t.epoch_seconds().into();
    }
    out
}

/// `GetLifecyclePolicy` / `DeleteLifecyclePolicy`.
pub(super) async fn get_lifecycle_policy(cx: &Cx<'_>, op: EcrOp, v: Value) -> Result<Value, Error> {
    let i: PolicyIn = input(v)?;
    let registry = &cx.region.registry;
    let rec = if op == EcrOp::DeleteLifecyclePolicy {
        registry.lifecycle_policy_delete(&i.repository_name).await?
    } else {
        registry.lifecycle_policy_required(&i.repository_name)?
    };
    Ok(policy_out(cx, &i.repository_name, &rec))
}

/// `StartLifecyclePolicyPreview`: evaluated now, so the answer is `COMPLETE`.
pub(super) async fn start_preview(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: PolicyIn = input(v)?;
    if let Some(text) = &i.lifecycle_policy_text {
        checked(text)?;
    }
    let preview = cx
        .region
        .registry
        .lifecycle_preview_start(
            &i.repository_name,
            i.lifecycle_policy_text,
            cx.state.clock().now(),
        )
        .await?;
    Ok(json!({
        "registryId": cx.region.scope.account.as_str(),
        "repositoryName": i.repository_name,
        "lifecyclePolicyText": preview.policy,
        "status": preview.status.as_str(),
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreviewIn {
    repository_name: String,
    image_ids: Option<Vec<ImageId>>,
    next_token: Option<String>,
    max_results: Option<i32>,
    filter: Option<Value>,
}

/// The preview's results the request asks for: by tag status, and by image ids.
fn preview_selected<'a>(
    preview: &'a LifecyclePreview,
    status: TagStatus,
    ids: &Option<Vec<ImageId>>,
) -> Vec<&'a berth_registry::PreviewItem> {
    preview
        .results
        .iter()
        .filter(|r| status.matches(&r.tags))
        .filter(|r| {
            ids.as_ref().is_none_or(|ids| {
                ids.iter().any(|id| {
                    id.image_digest.as_deref() == Some(r.digest.as_str())
                        || id.image_tag.as_ref().is_some_and(|t| r.tags.contains(t))
                })
            })
        })
        .collect()
}

fn tag_status(filter: &Option<Value>) -> TagStatus {
    match filter
        .as_ref()
        .and_then(|f| f.get("tagStatus"))
        .and_then(Value::as_str)
    {
        Some("TAGGED") => TagStatus::Tagged,
        Some("UNTAGGED") => TagStatus::Untagged,
        _ => TagStatus::Any,
    }
}

/// `GetLifecyclePolicyPreview`: the last preview, filtered and paginated (the summary counts
/// the whole preview, as AWS's does).
pub(super) async fn get_preview(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: PreviewIn = input(v)?;
    let state = &*cx.region;
    let preview = state.registry.lifecycle_preview_get(&i.repository_name)?;
    let status = tag_status(&i.filter);
    let selected = preview_selected(&preview, status, &i.image_ids);
    let scope = format!(
        "GetLifecyclePolicyPreview\n{}\n{status:?}\n{}",
        i.repository_name, preview.evaluated_at.0
    );
    let start = match &i.next_token {
        Some(t) => {
            let last = state.pager.decode(&scope, t)?;
            selected
                .iter()
                .position(|r| r.digest.as_str() == last)
                .map_or(selected.len(), |p| p + 1)
        }
        None => 0,
    };
    let limit = i.max_results.unwrap_or(100) as usize;
    let page: Vec<_> = selected.iter().skip(start).take(limit).collect();
    let results: Vec<Value> = page
        .iter()
        .map(|r| {
            let mut v = json!({
                "imageDigest": r.digest.as_str(),
                "imagePushedAt": r.pushed_at.epoch_seconds(),
                "action": {"type": if r.transition { "TRANSITION" } else { "EXPIRE" }},
                "appliedRulePriority": r.rule_priority,
                "storageClass": "STANDARD",
            });
            if !r.tags.is_empty() {
                v["imageTags"] = json!(r.tags);
            }
            v
        })
        .collect();
    let summary = preview.results.iter().filter(|r| !r.transition).count();
    let mut out = json!({
        "registryId": state.scope.account.as_str(),
        "repositoryName": i.repository_name,
        "lifecyclePolicyText": preview.policy,
        "status": preview.status.as_str(),
        "previewResults": results,
        "summary": {"expiringImageTotalCount": summary},
    });
    if start + page.len() < selected.len()
        && let Some(last) = page.last()
    {
        out["nextToken"] = Value::String(state.pager.encode(&scope, last.digest.as_str()));
    }
    Ok(out)
}

impl crate::ApiState {
    /// One pass of the `lifecycle` background task: every region's lifecycle policies carried
    /// out at the clock's now, each expired image audited (`berth_registry::audit`). The
    /// expired images' blobs go with the garbage collector's next pass past its grace period.
    pub async fn lifecycle_expire(
        &self,
        fence: Option<&berth_store::Fence>,
    ) -> Result<Vec<(&'static str, u64)>, Error> {
        let now = self.clock().now();
        let (mut repositories, mut expired, mut failed) = (0, 0, 0);
        for region in self.regions() {
            let registry = region.registry.fenced(fence);
            let scope = region.scope.clone();
            let s = registry
                .lifecycle_run(now, |repo, image, rule_priority| {
                    berth_registry::audit::image_deleted(
                        &scope,
                        repo,
                        image,
                        berth_registry::audit::Deleter::LifecyclePolicy { rule_priority },
                    )
                })
                .await?;
            repositories += s.repositories as u64;
            expired += s.images_expired as u64;
            failed += s.failures as u64;
        }
        Ok(vec![
            ("repositories evaluated", repositories),
            ("images expired", expired),
            ("repositories failed", failed),
        ])
    }
}
