//! ECR images: wire input → domain command, domain view → wire output.

use super::*;

/// `ListImages` / `DescribeImages`.
pub(super) async fn list_images(cx: &Cx<'_>, op: EcrOp, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        image_ids: Option<Vec<ImageId>>,
        filter: Option<Value>,
        next_token: Option<String>,
        max_results: Option<i32>,
    }
    let i: In = input(v)?;
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
            let image =
                resolve(state, &i.repository_name, id).map_err(|(_, m)| Error::ImageNotFound(m))?;
            details.push(image_detail(state, &i.repository_name, &image));
        }
        return Ok(json!({"imageDetails": details}));
    }
    let images = registry.images_list(&i.repository_name)?;
    let entries = image_entries(state, op, &i.repository_name, &images, &status);
    let scope = format!("{}\n{}\n{status}", op.name(), i.repository_name);
    let start = match &i.next_token {
        Some(t) => {
            let last = state.pager.decode(&scope, t)?;
            entries
                .iter()
                .position(|(k, _)| *k > last)
                .unwrap_or(entries.len())
        }
        None => 0,
    };
    let limit = i.max_results.unwrap_or(100) as usize;
    let page: Vec<&(String, Value)> = entries.iter().skip(start).take(limit).collect();
    let key = if op == EcrOp::ListImages {
        "imageIds"
    } else {
        "imageDetails"
    };
    let mut out = json!({ key: page.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>() });
    if start + page.len() < entries.len()
        && let Some((k, _)) = page.last()
    {
        out["nextToken"] = Value::String(state.pager.encode(&scope, k));
    }
    Ok(out)
}

/// What ListImages (one entry per image and tag) or DescribeImages (one per image) lists,
/// with the tag status filter applied, in key order.
fn image_entries(
    state: &Regional,
    op: EcrOp,
    repository: &str,
    images: &[Image],
    status: &str,
) -> Vec<(String, Value)> {
    let mut entries: Vec<(String, Value)> = Vec::new();
    for img in images {
        let tagged = !img.tags.is_empty();
        let keep = match status {
            "TAGGED" => tagged,
            "UNTAGGED" => !tagged,
            _ => true,
        };
        if !keep {
            continue;
        }
        if op == EcrOp::DescribeImages {
            entries.push((img.digest.to_string(), image_detail(state, repository, img)));
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
    entries
}

/// The manifest of `img` as BatchGetImage returns it for `id`: as stored when its type is
/// accepted; else, for an image asked for by tag, converted between a Docker v2 and an OCI
/// image manifest when one of those is accepted (as ECR converts, by tag only); else `None`.
async fn accepted_manifest(
    state: &Regional,
    id: &ImageId,
    img: &Image,
    accepted: &Option<Vec<String>>,
) -> Result<Option<(String, bytes::Bytes)>, Error> {
    let bytes = state.registry.manifest_bytes(img).await?;
    let Some(accepted) = accepted else {
        return Ok(Some((img.media_type.clone(), bytes)));
    };
    if accepted.contains(&img.media_type) {
        return Ok(Some((img.media_type.clone(), bytes)));
    }
    if id.image_digest.is_some() {
        return Ok(None);
    }
    Ok(accepted
        .iter()
        .find_map(|to| berth_registry::convert_manifest(&bytes, to).map(|b| (to.clone(), b))))
}

/// `BatchGetImage`.
pub(super) async fn batch_get_image(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let account = cx.region.scope.account.as_str();
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        image_ids: Vec<ImageId>,
        accepted_media_types: Option<Vec<String>>,
    }
    let i: In = input(v)?;
    registry.repository_get(&i.repository_name)?;
    let mut images = Vec::new();
    let mut failures = Vec::new();
    for id in &i.image_ids {
        let img = match resolve(state, &i.repository_name, id) {
            Ok(img) => img,
            Err((code, reason)) => {
                failures.push(failure(id, code, reason));
                continue;
            }
        };
        let Some((media_type, bytes)) =
            accepted_manifest(state, id, &img, &i.accepted_media_types).await?
        else {
            failures.push(failure(id, "ImageNotFound", NOT_FOUND.into()));
            continue;
        };
        crate::registry::record_pull(state, &i.repository_name, img.clone());
        let mut image_id = image_id_out(id);
        image_id["imageDigest"] = Value::String(berth_oci::digest_of(&bytes));
        images.push(json!({
            "registryId": account,
            "repositoryName": i.repository_name,
            "imageId": image_id,
            "imageManifest": String::from_utf8_lossy(&bytes),
            "imageManifestMediaType": media_type,
        }));
    }
    Ok(json!({"images": images, "failures": failures}))
}

/// `PutImage`.
pub(super) async fn put_image(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let account = cx.region.scope.account.as_str();
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        image_manifest: String,
        image_manifest_media_type: Option<String>,
        image_tag: Option<String>,
        image_digest: Option<String>,
    }
    let i: In = input(v)?;
    let account = account.to_string();
    let bytes = bytes::Bytes::from(i.image_manifest.clone().into_bytes());
    let digest = berth_blob::digest_of(&bytes);
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
            "Image with digest '{digest}' and tag '{}' already exists in the repository with name '{}' in registry with id '{account}'",
            i.image_tag.as_deref().unwrap_or("null"),
            i.repository_name
        )));
    }
    let pushed = registry
        .manifest_push(
            &i.repository_name,
            &reference,
            i.image_manifest_media_type.as_deref(),
            bytes,
            berth_registry::PushOrigin::Push,
        )
        .await
        .map_err(|e| match e {
            Error::ManifestBlobUnknown(m) if m.starts_with(berth_registry::IMAGES_MISSING) => {
                Error::coded("ReferencedImagesNotFoundException", m)
            }
            Error::ManifestBlobUnknown(m) => Error::BlobUnknown(m),
            other => other,
        })?;
    if pushed.replication_queued {
        cx.state
            .background()
            .activate(berth_control::background::REPLICATION);
    }
    let image = pushed.image;
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

/// `BatchDeleteImage`: each deleted image audited.
pub(super) async fn batch_delete_image(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        image_ids: Vec<ImageId>,
    }
    let i: In = input(v)?;
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
            failures.push(failure(
                id,
                "ImageReferencedByManifestList",
                "Requested image is referenced by a manifest list".into(),
            ));
            continue;
        }
        registry
            .image_delete(&i.repository_name, &reference)
            .await?;
        if by_tag_keeps_image {
            deleted.push(json!({"imageDigest": image.digest.as_str(), "imageTag": id.image_tag}));
            continue;
        }
        berth_registry::audit::image_deleted(
            &state.scope,
            &i.repository_name,
            &image,
            berth_registry::audit::Deleter::Caller {
                arn: &cx.principal.arn,
                operation: "BatchDeleteImage",
            },
        );
        if image.tags.is_empty() {
            deleted.push(json!({"imageDigest": image.digest.as_str()}));
        } else {
            for t in &image.tags {
                deleted.push(json!({"imageDigest": image.digest.as_str(), "imageTag": t}));
            }
        }
    }
    Ok(json!({"imageIds": deleted, "failures": failures}))
}
