//! ECR layers: wire input → domain command, domain view → wire output.

use super::*;

/// `UploadNotFoundException`, naming the upload and where (ECR's style; wording guessed).
fn upload_missing(e: Error, cx: &Cx<'_>, repo: &str, id: &str) -> Error {
    match e {
        Error::UploadNotFound => Error::coded(
            "UploadNotFoundException",
            format!(
                "The upload with id '{id}' does not exist in the repository with name '{repo}' in the registry with id '{}'",
                cx.region.scope.account
            ),
        ),
        other => other,
    }
}

/// `BatchCheckLayerAvailability`.
pub(super) async fn batch_check_layer_availability(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        layer_digests: Vec<String>,
    }
    let i: In = input(v)?;
    registry.repository_get(&i.repository_name)?;
    let mut layers = Vec::new();
    let mut failures = Vec::new();
    for d in &i.layer_digests {
        let Some(digest) = Digest::parse(d) else {
            failures.push(json!({"layerDigest": d, "failureCode": "InvalidLayerDigest", "failureReason": "Invalid layer digest"}));
            continue;
        };
        match registry.blob_stat(&i.repository_name, &digest)? {
            Some(size) => layers.push(
                json!({"layerDigest": d, "layerAvailability": "AVAILABLE", "layerSize": size}),
            ),
            None => layers.push(json!({"layerDigest": d, "layerAvailability": "UNAVAILABLE"})),
        }
    }
    Ok(json!({"layers": layers, "failures": failures}))
}

/// `InitiateLayerUpload`.
pub(super) async fn initiate_layer_upload(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
    }
    let i: In = input(v)?;
    registry.repository_get(&i.repository_name)?;
    let id = registry.upload_begin(&i.repository_name).await?;
    Ok(json!({"uploadId": id, "partSize": PART_SIZE}))
}

/// `UploadLayerPart`.
pub(super) async fn upload_layer_part(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let account = cx.region.scope.account.as_str();
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        upload_id: String,
        part_first_byte: i64,
        part_last_byte: i64,
        layer_part_blob: String,
    }
    let i: In = input(v)?;
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
    let part = futures_util::stream::iter([Ok(bytes::Bytes::from(part))]);
    let size = registry
        .upload_append(
            &i.repository_name,
            &i.upload_id,
            Some(i.part_first_byte.max(0) as u64),
            futures_util::StreamExt::boxed(part),
        )
        .await
        .map_err(|e| upload_missing(e, cx, &i.repository_name, &i.upload_id))?;
    Ok(json!({
        "registryId": account,
        "repositoryName": i.repository_name,
        "uploadId": i.upload_id,
        "lastByteReceived": size as i64 - 1,
    }))
}

/// `CompleteLayerUpload`.
pub(super) async fn complete_layer_upload(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let account = cx.region.scope.account.as_str();
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        upload_id: String,
        layer_digests: Vec<String>,
    }
    let i: In = input(v)?;
    registry.repository_get(&i.repository_name)?;
    let [d] = &i.layer_digests[..] else {
        return Err(Error::InvalidParameter(
            "layerDigests must name exactly one digest".into(),
        ));
    };
    let d = Digest::parse(d)
        .ok_or_else(|| Error::InvalidParameter(format!("Invalid layer digest '{d}'")))?;
    let size = registry
        .upload_size(&i.repository_name, &i.upload_id)
        .map_err(|e| upload_missing(e, cx, &i.repository_name, &i.upload_id))?;
    if size == 0 {
        return Err(Error::EmptyUpload);
    }
    if registry.blob_stat(&i.repository_name, &d)?.is_some() {
        let _ = registry
            .upload_cancel(&i.repository_name, &i.upload_id)
            .await;
        return Err(Error::LayerAlreadyExists(format!(
            "The layer with digest '{d}' already exists in the repository with name '{}' in the registry with id '{account}'",
            i.repository_name
        )));
    }
    registry
        .upload_finish(&i.repository_name, &i.upload_id, &d)
        .await
        .map_err(|e| match e {
            Error::DigestMismatch(m) => {
                Error::LayerInvalid(format!("{m}, not the one given ({d})."))
            }
            other => upload_missing(other, cx, &i.repository_name, &i.upload_id),
        })?;
    Ok(json!({
        "registryId": account,
        "repositoryName": i.repository_name,
        "uploadId": i.upload_id,
        "layerDigest": d.as_str(),
    }))
}

/// `GetDownloadUrlForLayer`.
pub(super) async fn get_download_url_for_layer(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        layer_digest: String,
    }
    let i: In = input(v)?;
    let d = Digest::parse(&i.layer_digest).ok_or_else(|| {
        Error::InvalidParameter(format!("Invalid layer digest '{}'", i.layer_digest))
    })?;
    if registry.blob_stat(&i.repository_name, &d)?.is_none() {
        return Err(Error::BlobUnknown(format!(
            "The layer with digest '{d}' does not exist in the repository with name '{}' in the registry with id '{}'",
            i.repository_name, cx.region.scope.account
        )));
    }
    // ECR serves only layers an image uses; an uploaded, unused one may go any time.
    let used = registry
        .images_list(&i.repository_name)?
        .iter()
        .any(|img| img.blobs.contains(&d));
    if !used {
        return Err(Error::coded(
            "LayerInaccessibleException",
            "The specified layer is not available because it is not associated with an image. Unassociated image layers may be cleaned up at any time.",
        ));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let url = crate::registry::layer_url(
        cx.state,
        &cx.region.scope.region,
        &i.repository_name,
        &d,
        now,
    );
    Ok(json!({"downloadUrl": url, "layerDigest": d.as_str()}))
}
