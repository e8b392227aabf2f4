//! The registry's audit trail: one structured event per image deleted, whoever deleted it — a
//! caller (`BatchDeleteImage`, `DELETE /v2/<name>/manifests/<digest>`) or a lifecycle policy's
//! expiry — so that an operator can always tell where an image went.
//!
//! Events are `tracing` events of target [`TARGET`] at INFO level (the server's log; route
//! them elsewhere with `BERTH_LOG`, e.g. `BERTH_LOG=info,berth::audit=info`). Their `event`
//! field names them as AWS's CloudTrail does: `BatchDeleteImage` for a caller's delete,
//! `PolicyExecutionEvent` for a lifecycle expiry (CloudTrail records one such event per image a
//! lifecycle policy expires). Berth has no CloudTrail API: the log is the record.
//!
//! Called by `berth-api` after a caller's delete commits and by the lifecycle expiry after
//! its transaction commits (an event is never written for a delete that did not happen).

use crate::Image;
use berth_types::Scope;

/// The `tracing` target of audit events.
pub const TARGET: &str = "berth::audit";

/// Who deleted an image.
#[derive(Debug, Clone, Copy)]
pub enum Deleter<'a> {
    /// A caller: its ARN, and the operation (`BatchDeleteImage`, `DeleteManifest`).
    Caller { arn: &'a str, operation: &'a str },
    /// The repository's lifecycle policy, by the rule that expired it.
    LifecyclePolicy { rule_priority: u32 },
}

/// Records that `image` (with the tags it had) was deleted from `repository`.
pub fn image_deleted(scope: &Scope, repository: &str, image: &Image, by: Deleter<'_>) {
    let tags = image.tags.join(",");
    match by {
        Deleter::Caller { arn, operation } => tracing::info!(
            target: TARGET,
            event = "BatchDeleteImage",
            operation,
            principal = arn,
            region = scope.region.as_str(),
            registry_id = scope.account.as_str(),
            repository,
            image_digest = image.digest.as_str(),
            image_tags = tags.as_str(),
            "image deleted"
        ),
        Deleter::LifecyclePolicy { rule_priority } => tracing::info!(
            target: TARGET,
            event = "PolicyExecutionEvent",
            principal = "lifecycle policy",
            rule_priority,
            region = scope.region.as_str(),
            registry_id = scope.account.as_str(),
            repository,
            image_digest = image.digest.as_str(),
            image_tags = tags.as_str(),
            "image expired by the repository's lifecycle policy"
        ),
    }
}
