//! ECR over awsJson 1.1: repositories, images and authorization tokens, on the same registry
//! domain as the `/v2/` API.

use crate::Regional;
use crate::auth::token;
use crate::route::Cx;
use base64::Engine;
use berth_registry::{CreateRepository, Image, Reference, Repository};
use berth_types::oci::Digest;
use berth_types::{Error, Tag};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

crate::operation::operations! {
    /// The ECR operations Berth implements (awsJson 1.1).
    pub enum EcrOp ("ecr") {
        GetAuthorizationToken => Read, Any, Implemented;
        CreateRepository => Write, Repository("repositoryName"), Implemented;
        DescribeRepositories => Read, Repository("repositoryNames"), Implemented;
        DeleteRepository => Write, Repository("repositoryName"), Implemented;
        ListImages => List, Repository("repositoryName"), Implemented;
        DescribeImages => List, Repository("repositoryName"),
            Partial("scan status only (Berth has no vulnerability database: no findings summary)");
        BatchGetImage => Read, Repository("repositoryName"),
            Partial("acceptedMediaTypes: a Docker v2 manifest and an OCI manifest requested by tag are converted into each other; no schema 1 conversion");
        PutImage => Write, Repository("repositoryName"), Implemented;
        BatchDeleteImage => Write, Repository("repositoryName"), Implemented;
        BatchCheckLayerAvailability => Read, Repository("repositoryName"), Implemented;
        PutImageTagMutability => Write, Repository("repositoryName"), Implemented;
        InitiateLayerUpload => Write, Repository("repositoryName"), Implemented;
        UploadLayerPart => Write, Repository("repositoryName"), Implemented;
        CompleteLayerUpload => Write, Repository("repositoryName"), Implemented;
        GetDownloadUrlForLayer => Read, Repository("repositoryName"),
            Partial("the URL is Berth's own (signed, valid an hour), not S3's");
        SetRepositoryPolicy => PermissionsManagement, Repository("repositoryName"),
            Partial("enforced with identity policies (one account); without `force`, a policy that would deny the caller SetRepositoryPolicy is refused");
        GetRepositoryPolicy => Read, Repository("repositoryName"), Implemented;
        DeleteRepositoryPolicy => PermissionsManagement, Repository("repositoryName"), Implemented;
        PutRegistryPolicy => PermissionsManagement, Any, Implemented;
        GetRegistryPolicy => Read, Any, Implemented;
        DeleteRegistryPolicy => PermissionsManagement, Any, Implemented;
        DescribeRegistry => Read, Any, Implemented;
        TagResource => Tagging, Arns("resourceArn"), Implemented;
        UntagResource => Tagging, Arns("resourceArn"), Implemented;
        ListTagsForResource => Read, Arns("resourceArn"), Implemented;
        PutLifecyclePolicy => Write, Repository("repositoryName"),
            Partial("standard storage only: rules that select archived images or transition them are refused");
        GetLifecyclePolicy => Read, Repository("repositoryName"), Implemented;
        DeleteLifecyclePolicy => Write, Repository("repositoryName"), Implemented;
        StartLifecyclePolicyPreview => Write, Repository("repositoryName"),
            Partial("evaluated before it answers: the preview is COMPLETE at once, never IN_PROGRESS");
        GetLifecyclePolicyPreview => Read, Repository("repositoryName"), Implemented;
        PutRegistryScanningConfiguration => Write, Any,
            Partial("stored and applied to scan-on-push; Berth has no vulnerability database");
        GetRegistryScanningConfiguration => Read, Any, Implemented;
        PutImageScanningConfiguration => Write, Repository("repositoryName"), Implemented;
        BatchGetRepositoryScanningConfiguration => Read, Repository("repositoryNames"), Implemented;
        StartImageScan => Write, Repository("repositoryName"),
            Partial("no vulnerability database: every scan ends FAILED with ECR's UnsupportedImageError, never with findings");
        DescribeImageScanFindings => Read, Repository("repositoryName"),
            Partial("no vulnerability database: status FAILED (UnsupportedImageError), no findings");
        CreateRepositoryCreationTemplate => Write, Any, Implemented;
        DescribeRepositoryCreationTemplates => Read, Any, Implemented;
        UpdateRepositoryCreationTemplate => Write, Any, Implemented;
        DeleteRepositoryCreationTemplate => Write, Any, Implemented;
        PutReplicationConfiguration => Write, Any,
            Partial("destinations are this Berth's regions and the Berth deployments configured as [[replication.remote]]");
        DescribeImageReplicationStatus => Read, Repository("repositoryName"), Implemented;
        CreatePullThroughCacheRule => Write, Any,
            Partial("any OCI registry URL; credentialArn names a secret of Berth's configuration ([[pull-through-cache.secret]]), not Secrets Manager");
        DescribePullThroughCacheRules => Read, Any, Implemented;
        UpdatePullThroughCacheRule => Write, Any, Implemented;
        DeletePullThroughCacheRule => Write, Any, Implemented;
        ValidatePullThroughCacheRule => Read, Any, Implemented;
    }
}

/// Tag mutability with its exclusion filters: the filters go with, and only with, the
/// `*_WITH_EXCLUSION` settings (the model checks there are 1–5 and their shape). Wording
/// guessed.
fn check_mutability(mutability: Option<&str>, filters: &[Value]) -> Result<(), Error> {
    let needs = mutability.is_some_and(|m| m.ends_with("_WITH_EXCLUSION"));
    match (needs, filters.is_empty()) {
        (true, true) => Err(Error::InvalidParameter(format!(
            "Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy constraint: 'must be specified when imageTagMutability is {}'",
            mutability.unwrap_or_default()
        ))),
        (false, false) => Err(Error::InvalidParameter(
            "Invalid parameter at 'imageTagMutabilityExclusionFilters' failed to satisfy constraint: 'can only be specified when imageTagMutability is IMMUTABLE_WITH_EXCLUSION or MUTABLE_WITH_EXCLUSION'".into(),
        )),
        _ => Ok(()),
    }
}

/// ECR's tag rules: keys 1–128 characters, values up to 256, no `aws:` prefix, at most 50.
fn check_tags(tags: &[Tag]) -> Result<(), Error> {
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 || t.value.chars().count() > 256 {
            return Err(Error::TagInvalid(
                "Tag keys must be 1-128 characters and tag values at most 256 characters.".into(),
            ));
        }
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(Error::TagInvalid(
                "Tag keys starting with 'aws:' are reserved.".into(),
            ));
        }
    }
    if tags.len() > 50 {
        return Err(Error::TooManyTags(
            "A repository can have at most 50 tags.".into(),
        ));
    }
    Ok(())
}

/// The repository a tagging ARN names.
fn arn_repository<'a>(state: &Regional, arn: &'a str) -> Result<&'a str, Error> {
    state
        .scope
        .arn_resource("ecr", "repository", arn)
        .ok_or_else(|| {
            Error::InvalidParameter(format!(
                "Invalid parameter at 'resourceArn': '{arn}' is not a repository of this registry"
            ))
        })
}

/// The part size `InitiateLayerUpload` suggests (bytes).
const PART_SIZE: i64 = 10 * 1024 * 1024;

fn input<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::InvalidParameter(format!("Invalid request: {e}")))
}

#[derive(Deserialize)]
struct WireTag {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "Value", default)]
    value: String,
}

fn wire_tags(wire: Vec<WireTag>) -> Vec<Tag> {
    wire.into_iter()
        .map(|t| Tag {
            key: t.key,
            value: t.value,
        })
        .collect()
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct ImageId {
    image_digest: Option<String>,
    image_tag: Option<String>,
}

fn repository_out(state: &Regional, r: &Repository) -> Value {
    let registry = &state.registry;
    let mut v = json!({
        "repositoryArn": registry.repository_arn(&r.name),
        "registryId": state.scope.account.as_str(),
        "repositoryName": r.name.as_str(),
        "repositoryUri": registry.repository_uri(&r.name),
        "createdAt": r.created_at.epoch_seconds(),
        "imageTagMutability": r.tag_mutability,
        "imageScanningConfiguration": r.scanning,
        "encryptionConfiguration": r.encryption,
    });
    if !r.tag_mutability_exclusions.is_empty() {
        v["imageTagMutabilityExclusionFilters"] = Value::Array(r.tag_mutability_exclusions.clone());
    }
    v
}

fn image_detail(state: &Regional, repo: &str, i: &Image) -> Value {
    let mut v = json!({
        "registryId": state.scope.account.as_str(),
        "repositoryName": repo,
        "imageDigest": i.digest.as_str(),
        "imageSizeInBytes": i.image_size,
        "imagePushedAt": i.pushed_at.epoch_seconds(),
        "imageManifestMediaType": i.media_type,
    });
    if !i.tags.is_empty() {
        v["imageTags"] = json!(i.tags);
    }
    if let Some(a) = i.artifact_type.as_ref().or(i.config_media_type.as_ref()) {
        v["artifactMediaType"] = Value::String(a.clone());
    }
    if let Some(t) = i.last_pull {
        v["lastRecordedPullTime"] = t.epoch_seconds().into();
    }
    if i.scanned_at.is_some() {
        v["imageScanStatus"] = scanning::scan_status(i);
    }
    if let Some(s) = &i.subject {
        v["subjectManifestDigest"] = Value::String(s.to_string());
    }
    v
}

fn image_reference(id: &ImageId) -> Result<Reference, (&'static str, String)> {
    match (&id.image_digest, &id.image_tag) {
        (None, None) => Err((
            "MissingDigestAndTag",
            "Invalid request parameters: both tag and digest cannot be null".into(),
        )),
        (Some(d), _) => Digest::parse(d).map(Reference::Digest).ok_or((
            "InvalidImageDigest",
            format!("Invalid parameter: imageDigest '{d}'"),
        )),
        (None, Some(t)) if berth_types::oci::is_tag(t) => Ok(Reference::Tag(t.clone())),
        (None, Some(t)) => Err((
            "InvalidImageTag",
            format!("Invalid parameter: imageTag '{t}'"),
        )),
    }
}

fn image_id_out(id: &ImageId) -> Value {
    let mut v = json!({});
    if let Some(d) = &id.image_digest {
        v["imageDigest"] = Value::String(d.clone());
    }
    if let Some(t) = &id.image_tag {
        v["imageTag"] = Value::String(t.clone());
    }
    v
}

/// The `failureReason` ECR gives a batch operation's image it does not find.
const NOT_FOUND: &str = "Requested image not found";

/// An image id matched against a stored image (tag and digest must agree when both given).
/// The error's message is ImageNotFoundException's; batch operations report the
/// `failureReason` ECR gives them instead ([`NOT_FOUND`]).
fn resolve(state: &Regional, repo: &str, id: &ImageId) -> Result<Image, (&'static str, String)> {
    let reference = image_reference(id)?;
    let image = state
        .registry
        .image_resolve(repo, &reference)
        .map_err(|e| ("ImageNotFound", e.to_string()))?;
    if let (Some(t), Some(_)) = (&id.image_tag, &id.image_digest)
        && !image.tags.contains(t)
    {
        return Err((
            "ImageTagDoesNotMatchDigest",
            "Invalid parameter: tag and digest do not match".into(),
        ));
    }
    Ok(image)
}

fn failure(id: &ImageId, code: &str, reason: String) -> Value {
    let reason = if code == "ImageNotFound" {
        NOT_FOUND.to_string()
    } else {
        reason
    };
    json!({"imageId": image_id_out(id), "failureCode": code, "failureReason": reason})
}

mod auth;
mod images;
mod layers;
mod lifecycle;
mod policies;
mod pull_through;
mod replication;
mod repositories;
mod scanning;
mod tags;
mod templates;

/// A `registryId` other than this account's names a registry of another account, which Berth
/// does not have: ECR answers such a call, from an account no resource policy lets in, with
/// `AccessDeniedException` naming the resource in that registry.
fn check_registry(cx: &Cx<'_>, op: EcrOp, v: &Value) -> Result<(), Error> {
    let account = cx.region.scope.account.as_str();
    let Some(id) = v.get("registryId").and_then(Value::as_str) else {
        return Ok(());
    };
    if id == account {
        return Ok(());
    }
    let resource = match op.info().resource {
        crate::operation::Resource::Repository(member) => {
            let name = match v.get(member) {
                Some(Value::Array(names)) => names.first().and_then(Value::as_str),
                other => other.and_then(Value::as_str),
            };
            format!(
                "arn:aws:ecr:{}:{id}:repository/{}",
                cx.region.scope.region,
                name.unwrap_or("*")
            )
        }
        _ => format!("arn:aws:ecr:{}:{id}:*", cx.region.scope.region),
    };
    Err(Error::AccessDenied(format!(
        "User: {} is not authorized to perform: {} on resource: {resource} because no resource-based policy allows the {} action",
        cx.principal.arn,
        op.action(),
        op.action()
    )))
}

/// Runs one ECR operation.
pub async fn dispatch(cx: &Cx<'_>, op: EcrOp, v: Value) -> Result<Value, Error> {
    check_registry(cx, op, &v)?;
    match op {
        EcrOp::GetAuthorizationToken => Box::pin(auth::get_authorization_token(cx, v)).await,
        EcrOp::CreateRepository => Box::pin(repositories::create_repository(cx, v)).await,
        EcrOp::DescribeRepositories => Box::pin(repositories::describe_repositories(cx, v)).await,
        EcrOp::DeleteRepository => Box::pin(repositories::delete_repository(cx, v)).await,
        EcrOp::PutImageTagMutability => {
            Box::pin(repositories::put_image_tag_mutability(cx, v)).await
        }
        EcrOp::ListImages => Box::pin(images::list_images(cx, op, v)).await,
        EcrOp::DescribeImages => Box::pin(images::list_images(cx, op, v)).await,
        EcrOp::BatchGetImage => Box::pin(images::batch_get_image(cx, v)).await,
        EcrOp::PutImage => Box::pin(images::put_image(cx, v)).await,
        EcrOp::BatchDeleteImage => Box::pin(images::batch_delete_image(cx, v)).await,
        EcrOp::BatchCheckLayerAvailability => {
            Box::pin(layers::batch_check_layer_availability(cx, v)).await
        }
        EcrOp::InitiateLayerUpload => Box::pin(layers::initiate_layer_upload(cx, v)).await,
        EcrOp::UploadLayerPart => Box::pin(layers::upload_layer_part(cx, v)).await,
        EcrOp::CompleteLayerUpload => Box::pin(layers::complete_layer_upload(cx, v)).await,
        EcrOp::GetDownloadUrlForLayer => Box::pin(layers::get_download_url_for_layer(cx, v)).await,
        EcrOp::SetRepositoryPolicy => Box::pin(policies::set_repository_policy(cx, op, v)).await,
        EcrOp::GetRepositoryPolicy => Box::pin(policies::set_repository_policy(cx, op, v)).await,
        EcrOp::DeleteRepositoryPolicy => Box::pin(policies::set_repository_policy(cx, op, v)).await,
        EcrOp::PutRegistryPolicy => Box::pin(policies::put_registry_policy(cx, op, v)).await,
        EcrOp::GetRegistryPolicy => Box::pin(policies::put_registry_policy(cx, op, v)).await,
        EcrOp::DeleteRegistryPolicy => Box::pin(policies::put_registry_policy(cx, op, v)).await,
        EcrOp::DescribeRegistry => Box::pin(replication::describe_registry(cx)).await,
        EcrOp::TagResource => Box::pin(tags::tag_resource(cx, op, v)).await,
        EcrOp::UntagResource => Box::pin(tags::tag_resource(cx, op, v)).await,
        EcrOp::ListTagsForResource => Box::pin(tags::tag_resource(cx, op, v)).await,
        _ => Box::pin(dispatch_registry(cx, op, v)).await,
    }
}

/// The registry-level operations: lifecycle, scanning, templates, replication, pull-through.
async fn dispatch_registry(cx: &Cx<'_>, op: EcrOp, v: Value) -> Result<Value, Error> {
    match op {
        EcrOp::PutLifecyclePolicy => lifecycle::put_lifecycle_policy(cx, v).await,
        EcrOp::GetLifecyclePolicy | EcrOp::DeleteLifecyclePolicy => {
            lifecycle::get_lifecycle_policy(cx, op, v).await
        }
        EcrOp::StartLifecyclePolicyPreview => lifecycle::start_preview(cx, v).await,
        EcrOp::GetLifecyclePolicyPreview => lifecycle::get_preview(cx, v).await,
        EcrOp::PutRegistryScanningConfiguration => scanning::put_registry_scanning(cx, v).await,
        EcrOp::GetRegistryScanningConfiguration => scanning::get_registry_scanning(cx).await,
        EcrOp::PutImageScanningConfiguration => scanning::put_image_scanning(cx, v).await,
        EcrOp::BatchGetRepositoryScanningConfiguration => {
            scanning::batch_get_repository_scanning(cx, v).await
        }
        EcrOp::StartImageScan => scanning::start_image_scan(cx, v).await,
        EcrOp::DescribeImageScanFindings => scanning::describe_image_scan_findings(cx, v).await,
        EcrOp::CreateRepositoryCreationTemplate | EcrOp::UpdateRepositoryCreationTemplate => {
            templates::put_template(cx, op, v).await
        }
        EcrOp::DescribeRepositoryCreationTemplates => templates::describe_templates(cx, v).await,
        EcrOp::DeleteRepositoryCreationTemplate => templates::delete_template(cx, v).await,
        EcrOp::PutReplicationConfiguration => replication::put_replication(cx, v).await,
        EcrOp::DescribeImageReplicationStatus => replication::describe_status(cx, v).await,
        EcrOp::CreatePullThroughCacheRule => pull_through::create_rule(cx, v).await,
        EcrOp::DescribePullThroughCacheRules => pull_through::describe_rules(cx, v).await,
        EcrOp::UpdatePullThroughCacheRule => pull_through::update_rule(cx, v).await,
        EcrOp::DeletePullThroughCacheRule => pull_through::delete_rule(cx, v).await,
        EcrOp::ValidatePullThroughCacheRule => pull_through::validate_rule(cx, v).await,
        other => Err(Error::internal(format!(
            "{} is not dispatched",
            other.name()
        ))),
    }
}
