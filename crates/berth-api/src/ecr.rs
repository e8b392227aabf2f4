//! ECR over awsJson 1.1: repositories, images and authorization tokens, on the same registry
//! domain as the `/v2/` API.

use crate::ApiState;
use crate::auth::token;
use crate::route::Support;
use base64::Engine;
use berth_registry::{CreateRepository, Image, Reference, Repository};
use berth_types::oci::Digest;
use berth_types::{Error, Principal, Tag};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

pub const SUPPORT: &[(&str, Support)] = &[
    ("GetAuthorizationToken", Support::Implemented),
    (
        "CreateRepository",
        Support::Partial("repository tags are stored; creation templates are not supported"),
    ),
    ("DescribeRepositories", Support::Implemented),
    ("DeleteRepository", Support::Implemented),
    ("ListImages", Support::Implemented),
    (
        "DescribeImages",
        Support::Partial("no scan status or findings"),
    ),
    (
        "BatchGetImage",
        Support::Partial("returns manifests as stored; no media-type conversion"),
    ),
    ("PutImage", Support::Implemented),
    ("BatchDeleteImage", Support::Implemented),
    ("BatchCheckLayerAvailability", Support::Implemented),
    ("PutImageTagMutability", Support::Implemented),
    ("InitiateLayerUpload", Support::Implemented),
    ("UploadLayerPart", Support::Implemented),
    ("CompleteLayerUpload", Support::Implemented),
    ("GetDownloadUrlForLayer", Support::Implemented),
    (
        "SetRepositoryPolicy",
        Support::Partial("validated and stored; enforced once IAM lands"),
    ),
    ("GetRepositoryPolicy", Support::Implemented),
    ("DeleteRepositoryPolicy", Support::Implemented),
    (
        "DescribeRegistry",
        Support::Partial("no replication: the configuration is always empty"),
    ),
    ("TagResource", Support::Implemented),
    ("UntagResource", Support::Implemented),
    ("ListTagsForResource", Support::Implemented),
];

/// Checks that `text` is an IAM policy document: a JSON object with a `Statement` (one or a
/// list) whose entries have an `Effect` of Allow or Deny and an `Action` or `NotAction`.
fn validate_policy(text: &str) -> Result<(), Error> {
    let invalid = |why: &str| {
        Error::InvalidParameter(format!(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid repository policy provided': {why}"
        ))
    };
    let v: Value = serde_json::from_str(text).map_err(|e| invalid(&format!("not JSON ({e})")))?;
    let statements = match v.get("Statement") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(o @ Value::Object(_)) => vec![o.clone()],
        _ => return Err(invalid("a non-empty Statement is required")),
    };
    for st in &statements {
        match st.get("Effect").and_then(Value::as_str) {
            Some("Allow" | "Deny") => {}
            _ => return Err(invalid("each statement needs an Effect of Allow or Deny")),
        }
        if st.get("Action").is_none() && st.get("NotAction").is_none() {
            return Err(invalid("each statement needs an Action or NotAction"));
        }
        if st.get("Principal").is_none() && st.get("NotPrincipal").is_none() {
            return Err(invalid("a repository policy statement needs a Principal"));
        }
    }
    Ok(())
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
fn arn_repository<'a>(state: &ApiState, arn: &'a str) -> Result<&'a str, Error> {
    let prefix = state.scope().arn("ecr", "repository/");
    arn.strip_prefix(&prefix).ok_or_else(|| {
        Error::InvalidParameter(format!(
            "Invalid parameter at 'resourceArn': '{arn}' is not a repository of this registry"
        ))
    })
}

/// The part size `InitiateLayerUpload` suggests (bytes).
const PART_SIZE: i64 = 10 * 1024 * 1024;

fn blob_error(e: berth_blob::BlobError) -> Error {
    match e {
        berth_blob::BlobError::UploadNotFound => Error::UploadNotFound,
        berth_blob::BlobError::OutOfOrder { given, size } => Error::UploadOutOfOrder(format!(
            "The part starts at byte {given}, but {size} bytes have been received (last valid byte {}).",
            size as i64 - 1
        )),
        berth_blob::BlobError::DigestMismatch { actual } => Error::LayerInvalid(format!(
            "The layer's digest is {actual}, not the one given."
        )),
        other => Error::internal(other),
    }
}

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

fn repository_out(state: &ApiState, r: &Repository) -> Value {
    let registry = &state.inner.registry;
    let mut v = json!({
        "repositoryArn": registry.repository_arn(&r.name),
        "registryId": state.scope().account.as_str(),
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

fn image_detail(state: &ApiState, repo: &str, i: &Image) -> Value {
    let mut v = json!({
        "registryId": state.scope().account.as_str(),
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

/// An image id matched against a stored image (tag and digest must agree when both given).
fn resolve(state: &ApiState, repo: &str, id: &ImageId) -> Result<Image, (&'static str, String)> {
    let reference = image_reference(id)?;
    let image = state
        .inner
        .registry
        .image_resolve(repo, &reference)
        .map_err(|e| ("ImageNotFound", e.to_string()))?;
    if let (Some(t), Some(_)) = (&id.image_tag, &id.image_digest)
        && !image.tags.contains(t)
    {
        return Err((
            "ImageTagDoesNotMatchDigest",
            "Invalid parameter: the tag does not name that digest".into(),
        ));
    }
    Ok(image)
}

fn failure(id: &ImageId, code: &str, reason: String) -> Value {
    json!({"imageId": image_id_out(id), "failureCode": code, "failureReason": reason})
}

pub async fn call(
    state: &ApiState,
    principal: &Principal,
    operation: &str,
    v: Value,
) -> Result<Value, Error> {
    let registry = &state.inner.registry;
    let account = state.scope().account.as_str();
    let check_registry = |id: &Option<String>| -> Result<(), Error> {
        match id {
            Some(r) if r != account => Err(Error::InvalidParameter(format!(
                "Invalid parameter at 'registryId': this registry is '{account}', not '{r}'"
            ))),
            _ => Ok(()),
        }
    };
    match operation {
        "GetAuthorizationToken" => {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let (password, expires) = token::issue(&state.inner.token_key, principal, now);
            let token = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"));
            Ok(json!({"authorizationData": [{
                "authorizationToken": token,
                "expiresAt": expires,
                "proxyEndpoint": format!("https://{}", registry.host()),
            }]}))
        }
        "CreateRepository" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                #[serde(default)]
                tags: Vec<WireTag>,
                image_tag_mutability: Option<String>,
                #[serde(default)]
                image_tag_mutability_exclusion_filters: Vec<Value>,
                image_scanning_configuration: Option<Value>,
                encryption_configuration: Option<Value>,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            let mutability_needs_filters = i
                .image_tag_mutability
                .as_deref()
                .is_some_and(|m| m.ends_with("_WITH_EXCLUSION"));
            if mutability_needs_filters == i.image_tag_mutability_exclusion_filters.is_empty() {
                return Err(Error::InvalidParameter(
                    "imageTagMutabilityExclusionFilters go with, and only with, a *_WITH_EXCLUSION tag mutability".into(),
                ));
            }
            let tags: Vec<Tag> = wire_tags(i.tags);
            check_tags(&tags)?;
            let repo = registry
                .repository_create(CreateRepository {
                    name: i.repository_name,
                    tag_mutability: i.image_tag_mutability,
                    tag_mutability_exclusions: i.image_tag_mutability_exclusion_filters,
                    scanning: i.image_scanning_configuration,
                    encryption: i.encryption_configuration,
                    tags,
                })
                .await?;
            Ok(json!({"repository": repository_out(state, &repo)}))
        }
        "DescribeRepositories" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_names: Option<Vec<String>>,
                next_token: Option<String>,
                max_results: Option<i32>,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            if let Some(names) = i.repository_names {
                if i.max_results.is_some() || i.next_token.is_some() {
                    return Err(Error::InvalidParameter(
                        "maxResults and nextToken cannot be used with repositoryNames".into(),
                    ));
                }
                let mut out = Vec::new();
                for n in names {
                    out.push(repository_out(state, &registry.repository_get(&n)?));
                }
                return Ok(json!({"repositories": out}));
            }
            let limit = i.max_results.unwrap_or(1000) as usize;
            let after = match &i.next_token {
                Some(t) => Some(state.inner.pager.decode("DescribeRepositories", t)?),
                None => None,
            };
            let mut repos = registry.repository_list(after.as_deref(), limit + 1)?;
            let more = repos.len() > limit;
            repos.truncate(limit);
            let mut out = json!({"repositories": repos.iter().map(|r| repository_out(state, r)).collect::<Vec<_>>()});
            if more && let Some(last) = repos.last() {
                out["nextToken"] = Value::String(
                    state
                        .inner
                        .pager
                        .encode("DescribeRepositories", last.name.as_str()),
                );
            }
            Ok(out)
        }
        "DeleteRepository" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                #[serde(default)]
                force: bool,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            let (repo, _) = registry
                .repository_delete(&i.repository_name, i.force)
                .await?;
            Ok(json!({"repository": repository_out(state, &repo)}))
        }
        "PutImageTagMutability" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                image_tag_mutability: String,
                #[serde(default)]
                image_tag_mutability_exclusion_filters: Vec<Value>,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            let (m, f) = (
                i.image_tag_mutability.clone(),
                i.image_tag_mutability_exclusion_filters.clone(),
            );
            let repo = registry
                .repository_update(&i.repository_name, move |r| {
                    r.tag_mutability = m;
                    r.tag_mutability_exclusions = f;
                    Ok(())
                })
                .await?;
            let mut out = json!({
                "registryId": account,
                "repositoryName": repo.name.as_str(),
                "imageTagMutability": repo.tag_mutability,
            });
            if !repo.tag_mutability_exclusions.is_empty() {
                out["imageTagMutabilityExclusionFilters"] =
                    Value::Array(repo.tag_mutability_exclusions);
            }
            Ok(out)
        }
        "ListImages" | "DescribeImages" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                image_ids: Option<Vec<ImageId>>,
                filter: Option<Value>,
                next_token: Option<String>,
                max_results: Option<i32>,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            let status = i
                .filter
                .as_ref()
                .and_then(|f| f.get("tagStatus"))
                .and_then(Value::as_str)
                .unwrap_or("ANY")
                .to_string();
            if let Some(ids) = &i.image_ids {
                if i.max_results.is_some() || i.next_token.is_some() {
                    return Err(Error::InvalidParameter(
                        "maxResults and nextToken cannot be used with imageIds".into(),
                    ));
                }
                let mut details = Vec::new();
                for id in ids {
                    let image = resolve(state, &i.repository_name, id)
                        .map_err(|(_, m)| Error::ImageNotFound(m))?;
                    details.push(image_detail(state, &i.repository_name, &image));
                }
                return Ok(json!({"imageDetails": details}));
            }
            let images = registry.images_list(&i.repository_name)?;
            // One entry per (image, tag) for ListImages; one per image for DescribeImages.
            let mut entries: Vec<(String, Value)> = Vec::new();
            for img in &images {
                let tagged = !img.tags.is_empty();
                let keep = match status.as_str() {
                    "TAGGED" => tagged,
                    "UNTAGGED" => !tagged,
                    _ => true,
                };
                if !keep {
                    continue;
                }
                if operation == "DescribeImages" {
                    entries.push((
                        img.digest.to_string(),
                        image_detail(state, &i.repository_name, img),
                    ));
                } else if tagged {
                    for t in &img.tags {
                        entries.push((
                            format!("{}\n{t}", img.digest),
                            json!({"imageDigest": img.digest.as_str(), "imageTag": t}),
                        ));
                    }
                } else {
                    entries.push((
                        img.digest.to_string(),
                        json!({"imageDigest": img.digest.as_str()}),
                    ));
                }
            }
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let scope = format!("{operation}\n{}\n{status}", i.repository_name);
            let start = match &i.next_token {
                Some(t) => {
                    let last = state.inner.pager.decode(&scope, t)?;
                    entries
                        .iter()
                        .position(|(k, _)| *k > last)
                        .unwrap_or(entries.len())
                }
                None => 0,
            };
            let limit = i.max_results.unwrap_or(100) as usize;
            let page: Vec<&(String, Value)> = entries.iter().skip(start).take(limit).collect();
            let key = if operation == "ListImages" {
                "imageIds"
            } else {
                "imageDetails"
            };
            let mut out = json!({ key: page.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>() });
            if start + page.len() < entries.len()
                && let Some((k, _)) = page.last()
            {
                out["nextToken"] = Value::String(state.inner.pager.encode(&scope, k));
            }
            Ok(out)
        }
        "BatchGetImage" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                image_ids: Vec<ImageId>,
                accepted_media_types: Option<Vec<String>>,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            registry.repository_get(&i.repository_name)?;
            let mut images = Vec::new();
            let mut failures = Vec::new();
            for id in &i.image_ids {
                match resolve(state, &i.repository_name, id) {
                    Ok(img) => {
                        if let Some(accepted) = &i.accepted_media_types
                            && !accepted.contains(&img.media_type)
                        {
                            failures.push(failure(id, "ImageNotFound", format!("The image's media type {} is not among the accepted media types", img.media_type)));
                            continue;
                        }
                        let bytes = registry.manifest_bytes(&img).await?;
                        crate::registry::record_pull(state, &i.repository_name, img.clone());
                        let mut image_id = image_id_out(id);
                        image_id["imageDigest"] = Value::String(img.digest.to_string());
                        images.push(json!({
                            "registryId": account,
                            "repositoryName": i.repository_name,
                            "imageId": image_id,
                            "imageManifest": String::from_utf8_lossy(&bytes),
                            "imageManifestMediaType": img.media_type,
                        }));
                    }
                    Err((code, reason)) => failures.push(failure(id, code, reason)),
                }
            }
            Ok(json!({"images": images, "failures": failures}))
        }
        "PutImage" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                image_manifest: String,
                image_manifest_media_type: Option<String>,
                image_tag: Option<String>,
                image_digest: Option<String>,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            let bytes = bytes::Bytes::from(i.image_manifest.clone().into_bytes());
            let digest = Digest::from_sha256_hex(&berth_registry::sha256_hex(&bytes));
            if let Some(d) = &i.image_digest
                && d != digest.as_str()
            {
                return Err(Error::DigestMismatch(format!(
                    "Invalid parameter: the image digest '{d}' does not match the manifest's digest '{digest}'"
                )));
            }
            let reference = match &i.image_tag {
                Some(t) if berth_types::oci::is_tag(t) => Reference::Tag(t.clone()),
                Some(t) => {
                    return Err(Error::InvalidParameter(format!(
                        "Invalid parameter: imageTag '{t}'"
                    )));
                }
                None => Reference::Digest(digest.clone()),
            };
            // Same image already there under that tag (or untagged push of a stored digest).
            if let Ok(existing) =
                registry.image_resolve(&i.repository_name, &Reference::Digest(digest.clone()))
                && i.image_tag
                    .as_ref()
                    .is_none_or(|t| existing.tags.contains(t))
            {
                return Err(Error::ImageAlreadyExists(format!(
                    "Image with digest '{digest}' and tag '{}' already exists in the repository with name '{}'",
                    i.image_tag.as_deref().unwrap_or(""),
                    i.repository_name
                )));
            }
            let image = registry
                .manifest_put(
                    &i.repository_name,
                    &reference,
                    i.image_manifest_media_type.as_deref(),
                    bytes,
                )
                .await
                .map_err(|e| match e {
                    Error::ManifestBlobUnknown(m) => Error::BlobUnknown(m),
                    other => other,
                })?;
            let mut image_id = json!({"imageDigest": image.digest.as_str()});
            if let Some(t) = &i.image_tag {
                image_id["imageTag"] = Value::String(t.clone());
            }
            Ok(json!({"image": {
                "registryId": account,
                "repositoryName": i.repository_name,
                "imageId": image_id,
                "imageManifest": i.image_manifest,
                "imageManifestMediaType": image.media_type,
            }}))
        }
        "BatchDeleteImage" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                image_ids: Vec<ImageId>,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            registry.repository_get(&i.repository_name)?;
            let mut deleted = Vec::new();
            let mut failures = Vec::new();
            for id in &i.image_ids {
                let image = match resolve(state, &i.repository_name, id) {
                    Ok(img) => img,
                    Err((code, reason)) => {
                        failures.push(failure(id, code, reason));
                        continue;
                    }
                };
                // By tag: remove the tag; the image goes with its last tag. By digest: the image.
                let by_tag_keeps_image = id.image_digest.is_none() && image.tags.len() > 1;
                let reference = if by_tag_keeps_image {
                    Reference::Tag(id.image_tag.clone().unwrap_or_default())
                } else {
                    Reference::Digest(image.digest.clone())
                };
                let referenced_by_index = registry
                    .images_list(&i.repository_name)?
                    .iter()
                    .any(|other| other.manifests.contains(&image.digest));
                if !by_tag_keeps_image && referenced_by_index {
                    failures.push(failure(id, "ImageReferencedByManifestList", "The image is referenced by a manifest list or image index in the repository".into()));
                    continue;
                }
                registry
                    .image_delete(&i.repository_name, &reference)
                    .await?;
                if by_tag_keeps_image {
                    deleted.push(
                        json!({"imageDigest": image.digest.as_str(), "imageTag": id.image_tag}),
                    );
                } else if image.tags.is_empty() {
                    deleted.push(json!({"imageDigest": image.digest.as_str()}));
                } else {
                    for t in &image.tags {
                        deleted.push(json!({"imageDigest": image.digest.as_str(), "imageTag": t}));
                    }
                }
            }
            Ok(json!({"imageIds": deleted, "failures": failures}))
        }
        "BatchCheckLayerAvailability" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                layer_digests: Vec<String>,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            registry.repository_get(&i.repository_name)?;
            let mut layers = Vec::new();
            let mut failures = Vec::new();
            for d in &i.layer_digests {
                let Some(digest) = Digest::parse(d) else {
                    failures.push(json!({"layerDigest": d, "failureCode": "InvalidLayerDigest", "failureReason": "Invalid layer digest"}));
                    continue;
                };
                match registry.blob_stat(&i.repository_name, &digest)? {
                    Some(size) => layers.push(json!({"layerDigest": d, "layerAvailability": "AVAILABLE", "layerSize": size})),
                    None => layers.push(json!({"layerDigest": d, "layerAvailability": "UNAVAILABLE"})),
                }
            }
            Ok(json!({"layers": layers, "failures": failures}))
        }
        "InitiateLayerUpload" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            registry.repository_get(&i.repository_name)?;
            let id = berth_blob::new_upload_id();
            registry
                .blobs()
                .upload_start(&id)
                .await
                .map_err(blob_error)?;
            Ok(json!({"uploadId": id, "partSize": PART_SIZE}))
        }
        "UploadLayerPart" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                upload_id: String,
                part_first_byte: i64,
                part_last_byte: i64,
                layer_part_blob: String,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            registry.repository_get(&i.repository_name)?;
            let part = base64::engine::general_purpose::STANDARD
                .decode(&i.layer_part_blob)
                .map_err(|_| Error::InvalidParameter("layerPartBlob is not valid base64".into()))?;
            if i.part_last_byte - i.part_first_byte + 1 != part.len() as i64 {
                return Err(Error::UploadOutOfOrder(format!(
                    "partFirstByte {} and partLastByte {} do not span the {} bytes sent.",
                    i.part_first_byte,
                    i.part_last_byte,
                    part.len()
                )));
            }
            let size = registry
                .blobs()
                .upload_append(&i.upload_id, i.part_first_byte.max(0) as u64, &part)
                .await
                .map_err(blob_error)?;
            Ok(json!({
                "registryId": account,
                "repositoryName": i.repository_name,
                "uploadId": i.upload_id,
                "lastByteReceived": size as i64 - 1,
            }))
        }
        "CompleteLayerUpload" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                upload_id: String,
                layer_digests: Vec<String>,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            registry.repository_get(&i.repository_name)?;
            let [d] = &i.layer_digests[..] else {
                return Err(Error::InvalidParameter(
                    "layerDigests must name exactly one digest".into(),
                ));
            };
            let d = Digest::parse(d)
                .ok_or_else(|| Error::InvalidParameter(format!("Invalid layer digest '{d}'")))?;
            let blobs = registry.blobs();
            if blobs.upload_size(&i.upload_id).await.map_err(blob_error)? == 0 {
                return Err(Error::EmptyUpload);
            }
            if registry.blob_stat(&i.repository_name, &d)?.is_some() {
                let _ = blobs.upload_cancel(&i.upload_id).await;
                return Err(Error::LayerAlreadyExists(format!(
                    "The layer '{d}' already exists in the repository with name '{}'",
                    i.repository_name
                )));
            }
            registry
                .upload_finish(&i.repository_name, &i.upload_id, &d)
                .await
                .map_err(|e| match e {
                    Error::DigestMismatch(m) => Error::LayerInvalid(m),
                    other => other,
                })?;
            Ok(json!({
                "registryId": account,
                "repositoryName": i.repository_name,
                "uploadId": i.upload_id,
                "layerDigest": d.as_str(),
            }))
        }
        "GetDownloadUrlForLayer" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                layer_digest: String,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            let d = Digest::parse(&i.layer_digest).ok_or_else(|| {
                Error::InvalidParameter(format!("Invalid layer digest '{}'", i.layer_digest))
            })?;
            if registry.blob_stat(&i.repository_name, &d)?.is_none() {
                return Err(Error::BlobUnknown(format!(
                    "The layer '{d}' does not exist in the repository with name '{}'",
                    i.repository_name
                )));
            }
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let url = crate::registry::layer_url(state, &i.repository_name, &d, now);
            Ok(json!({"downloadUrl": url, "layerDigest": d.as_str()}))
        }
        "SetRepositoryPolicy" | "GetRepositoryPolicy" | "DeleteRepositoryPolicy" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                registry_id: Option<String>,
                repository_name: String,
                policy_text: Option<String>,
            }
            let i: In = input(v)?;
            check_registry(&i.registry_id)?;
            let no_policy = |name: &str| {
                Error::PolicyNotFound(format!(
                    "Repository policy does not exist for the repository with name '{name}' in the registry with id '{account}'"
                ))
            };
            let policy = match operation {
                "SetRepositoryPolicy" => {
                    let text = i.policy_text.clone().unwrap_or_default();
                    validate_policy(&text)?;
                    registry
                        .repository_update(&i.repository_name, move |r| {
                            r.policy = Some(text);
                            Ok(())
                        })
                        .await?
                        .policy
                }
                "GetRepositoryPolicy" => registry.repository_get(&i.repository_name)?.policy,
                _ => {
                    let current = registry.repository_get(&i.repository_name)?;
                    if current.policy.is_none() {
                        return Err(no_policy(&i.repository_name));
                    }
                    registry
                        .repository_update(&i.repository_name, |r| {
                            r.policy = None;
                            Ok(())
                        })
                        .await?;
                    current.policy
                }
            };
            let text = policy.ok_or_else(|| no_policy(&i.repository_name))?;
            Ok(
                json!({"registryId": account, "repositoryName": i.repository_name, "policyText": text}),
            )
        }
        "DescribeRegistry" => {
            Ok(json!({"registryId": account, "replicationConfiguration": {"rules": []}}))
        }
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                resource_arn: String,
                #[serde(default)]
                tags: Vec<WireTag>,
                #[serde(default)]
                tag_keys: Vec<String>,
            }
            let i: In = input(v)?;
            let repo = arn_repository(state, &i.resource_arn)?.to_string();
            let r = match operation {
                "TagResource" => {
                    let new: Vec<Tag> = wire_tags(i.tags);
                    check_tags(&new)?;
                    registry
                        .repository_update(&repo, move |r| {
                            berth_types::tags_merge(&mut r.tags, new);
                            check_tags(&r.tags)
                        })
                        .await?
                }
                "UntagResource" => {
                    let keys = i.tag_keys;
                    registry
                        .repository_update(&repo, move |r| {
                            r.tags.retain(|t| !keys.contains(&t.key));
                            Ok(())
                        })
                        .await?
                }
                _ => registry.repository_get(&repo)?,
            };
            if operation == "ListTagsForResource" {
                let tags: Vec<Value> = r
                    .tags
                    .iter()
                    .map(|t| json!({"Key": t.key, "Value": t.value}))
                    .collect();
                Ok(json!({"tags": tags}))
            } else {
                Ok(json!({}))
            }
        }
        other => Err(Error::NotImplemented(format!(
            "Berth does not implement ecr:{other} yet."
        ))),
    }
}
