//! ECR image scanning: the registry's and repositories' scanning configuration, and scans.
//! Berth has no vulnerability database, so a scan ends as ECR's basic scanning ends for an
//! image whose operating system it does not support (`berth_registry::scanning`): status
//! `FAILED`, `UnsupportedImageError`, no findings.

use super::*;
use berth_registry::scanning::{RegistryScanning, ScanFrequency, ScanRule, ScanType, UNSUPPORTED};

fn scanning_out(c: &RegistryScanning) -> Value {
    let rules: Vec<Value> = c
        .rules
        .iter()
        .map(|r| {
            json!({
                "scanFrequency": r.frequency.as_str(),
                "repositoryFilters": r.filters.iter()
                    .map(|f| json!({"filter": f, "filterType": "WILDCARD"}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({"scanType": c.scan_type.as_str(), "rules": rules})
}

/// The rules of a PutRegistryScanningConfiguration input (the model checked their shapes).
fn scanning_in(v: &Value) -> Result<RegistryScanning, Error> {
    let scan_type = v
        .get("scanType")
        .and_then(Value::as_str)
        .and_then(ScanType::parse)
        .unwrap_or_default();
    let mut rules = Vec::new();
    for r in v
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let frequency = r
            .get("scanFrequency")
            .and_then(Value::as_str)
            .and_then(ScanFrequency::parse)
            .unwrap_or(ScanFrequency::Manual);
        if scan_type == ScanType::Basic && frequency == ScanFrequency::ContinuousScan {
            return Err(Error::InvalidParameter(
                "Invalid parameter at 'scanFrequency' failed to satisfy constraint: 'CONTINUOUS_SCAN is only supported for the ENHANCED scan type'".into(),
            ));
        }
        let filters = r
            .get("repositoryFilters")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|f| f.get("filter").and_then(Value::as_str).map(str::to_string))
            .collect();
        rules.push(ScanRule { frequency, filters });
    }
    Ok(RegistryScanning { scan_type, rules })
}

/// `PutRegistryScanningConfiguration`.
pub(super) async fn put_registry_scanning(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let config = scanning_in(&v)?;
    cx.region.registry.scanning_put(config.clone()).await?;
    Ok(json!({"registryScanningConfiguration": scanning_out(&config)}))
}

/// `GetRegistryScanningConfiguration`.
pub(super) async fn get_registry_scanning(cx: &Cx<'_>) -> Result<Value, Error> {
    let config = cx.region.registry.scanning_get()?;
    Ok(json!({
        "registryId": cx.region.scope.account.as_str(),
        "scanningConfiguration": scanning_out(&config),
    }))
}

/// `PutImageScanningConfiguration`.
pub(super) async fn put_image_scanning(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        image_scanning_configuration: Value,
    }
    let i: In = input(v)?;
    let on_push = i
        .image_scanning_configuration
        .get("scanOnPush")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let config = json!({"scanOnPush": on_push});
    let stored = config.clone();
    cx.region
        .registry
        .repository_update(&i.repository_name, move |r| {
            r.scanning = stored;
            Ok(())
        })
        .await?;
    Ok(json!({
        "registryId": cx.region.scope.account.as_str(),
        "repositoryName": i.repository_name,
        "imageScanningConfiguration": config,
    }))
}

/// `BatchGetRepositoryScanningConfiguration`.
pub(super) async fn batch_get_repository_scanning(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_names: Vec<String>,
    }
    let i: In = input(v)?;
    let registry = &cx.region.registry;
    let config = registry.scanning_get()?;
    let (mut found, mut failures) = (Vec::new(), Vec::new());
    for name in &i.repository_names {
        let Some(repo) = registry.repository_find(name)? else {
            failures.push(json!({"repositoryName": name, "failureCode": "REPOSITORY_NOT_FOUND", "failureReason": "REPOSITORY_NOT_FOUND"}));
            continue;
        };
        let (frequency, filters) = config.frequency(&repo);
        found.push(json!({
            "repositoryArn": registry.repository_arn(&repo.name),
            "repositoryName": name,
            "scanOnPush": frequency == ScanFrequency::ScanOnPush,
            "scanFrequency": frequency.as_str(),
            "appliedScanFilters": filters.iter()
                .map(|f| json!({"filter": f, "filterType": "WILDCARD"}))
                .collect::<Vec<_>>(),
        }));
    }
    Ok(json!({"scanningConfigurations": found, "failures": failures}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ScanIn {
    repository_name: String,
    image_id: ImageId,
}

/// The image a scan request names, as ECR resolves it.
fn scanned_image(cx: &Cx<'_>, i: &ScanIn) -> Result<Image, Error> {
    resolve(&cx.region, &i.repository_name, &i.image_id).map_err(|(code, reason)| match code {
        "ImageNotFound" => Error::ImageNotFound(reason),
        _ => Error::InvalidParameter(reason),
    })
}

fn scan_image_id(i: &ScanIn, image: &Image) -> Value {
    let mut id = image_id_out(&i.image_id);
    id["imageDigest"] = Value::String(image.digest.to_string());
    id
}

/// `StartImageScan`: recorded (one per image per 24 hours); it ends at once, unsupported.
pub(super) async fn start_image_scan(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: ScanIn = input(v)?;
    let image = scanned_image(cx, &i)?;
    let now = berth_types::Timestamp::now();
    cx.region
        .registry
        .image_scan_start(
            &i.repository_name,
            &Reference::Digest(image.digest.clone()),
            now,
        )
        .await?;
    Ok(json!({
        "registryId": cx.region.scope.account.as_str(),
        "repositoryName": i.repository_name,
        "imageId": scan_image_id(&i, &image),
        "imageScanStatus": {"status": "IN_PROGRESS"},
    }))
}

/// `DescribeImageScanFindings`: `ScanNotFoundException` before any scan, else the scan's
/// status — `FAILED`, `UnsupportedImageError` — and no findings.
pub(super) async fn describe_image_scan_findings(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: ScanIn = input(v)?;
    let image = scanned_image(cx, &i)?;
    let account = cx.region.scope.account.as_str();
    if image.scanned_at.is_none() {
        let id = berth_registry::image_id_text(
            i.image_id.image_digest.as_deref(),
            i.image_id.image_tag.as_deref(),
        );
        return Err(Error::coded(
            "ScanNotFoundException",
            format!(
                "Image scan does not exist for the image with '{id}' in the repository with name '{}' in the registry with id '{account}'",
                i.repository_name
            ),
        ));
    }
    Ok(json!({
        "registryId": account,
        "repositoryName": i.repository_name,
        "imageId": scan_image_id(&i, &image),
        "imageScanStatus": scan_status(&image),
    }))
}

/// An image's `imageScanStatus` (DescribeImages shows it too).
pub(super) fn scan_status(_: &Image) -> Value {
    json!({"status": "FAILED", "description": UNSUPPORTED})
}
