//! ECR's layer-level API as the `aws` CLI drives it, without docker: a layer uploaded in parts
//! (InitiateLayerUpload, UploadLayerPart, CompleteLayerUpload), BatchCheckLayerAvailability,
//! PutImage, BatchGetImage with `acceptedMediaTypes` (converted by tag), and the layer
//! downloaded from GetDownloadUrlForLayer's URL — with each operation's errors.

use crate::docker_e2e::HOW;
use crate::registry::{DOCKER_V2, OCI_MANIFEST, digest};
use crate::start;
use berth_testkit::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, TestServer, require_program};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

/// `aws ecr <args>` against `server`: `Ok(output JSON)` or `Err(stderr)`.
fn aws(server: &TestServer, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(require_program("aws", HOW))
        .arg("ecr")
        .args(args)
        .args([
            "--endpoint-url",
            &server.endpoint,
            "--region",
            REGION,
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    if out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).to_string())
    }
}

/// Uploads `content` as a layer of `repo` in parts of `part` bytes; its digest.
fn upload(server: &TestServer, dir: &Path, repo: &str, content: &[u8], part: usize) -> String {
    let init = aws(
        server,
        &["initiate-layer-upload", "--repository-name", repo],
    )
    .unwrap();
    let id = init["uploadId"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    assert!(init["partSize"].as_i64().unwrap() > 0);
    for (n, chunk) in content.chunks(part).enumerate() {
        let file = dir.join(format!("{id}.{n}"));
        std::fs::write(&file, chunk).unwrap();
        let first = n * part;
        let last = first + chunk.len() - 1;
        let r = aws(
            server,
            &[
                "upload-layer-part",
                "--repository-name",
                repo,
                "--upload-id",
                &id,
                "--part-first-byte",
                &first.to_string(),
                "--part-last-byte",
                &last.to_string(),
                "--layer-part-blob",
                &format!("fileb://{}", file.display()),
            ],
        )
        .unwrap();
        assert_eq!(r["lastByteReceived"], last);
    }
    let d = digest(content);
    let done = aws(
        server,
        &[
            "complete-layer-upload",
            "--repository-name",
            repo,
            "--upload-id",
            &id,
            "--layer-digests",
            &d,
        ],
    )
    .unwrap();
    assert_eq!(done["layerDigest"], d.as_str());
    d
}

#[tokio::test]
async fn ecr_layer_api_with_the_aws_cli() {
    let server = start();
    let dir = tempfile::tempdir().unwrap();
    let repo = "cli/app";
    aws(&server, &["create-repository", "--repository-name", repo]).unwrap();
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let layer_digest = upload(&server, dir.path(), repo, &layer, 120_000);
    let config =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let config_digest = upload(&server, dir.path(), repo, config, 1024);

    let check = aws(
        &server,
        &[
            "batch-check-layer-availability",
            "--repository-name",
            repo,
            "--layer-digests",
            &layer_digest,
            &digest(b"absent"),
            "sha256:nothex",
        ],
    )
    .unwrap();
    assert_eq!(check["layers"][0]["layerAvailability"], "AVAILABLE");
    assert_eq!(check["layers"][0]["layerSize"], 300_000);
    assert_eq!(check["layers"][1]["layerAvailability"], "UNAVAILABLE");
    assert_eq!(check["failures"][0]["failureCode"], "InvalidLayerDigest");

    // An uploaded layer no image uses is not served yet.
    let err = aws(
        &server,
        &[
            "get-download-url-for-layer",
            "--repository-name",
            repo,
            "--layer-digest",
            &layer_digest,
        ],
    )
    .unwrap_err();
    assert!(err.contains("LayerInaccessibleException"), "{err}");

    let manifest = serde_json::to_string_pretty(&json!({
        "schemaVersion": 2, "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let manifest_file = dir.path().join("manifest.json");
    std::fs::write(&manifest_file, &manifest).unwrap();
    let put = aws(
        &server,
        &[
            "put-image",
            "--repository-name",
            repo,
            "--image-tag",
            "v1",
            "--image-manifest",
            &format!("file://{}", manifest_file.display()),
        ],
    )
    .unwrap();
    let image_digest = digest(manifest.as_bytes());
    assert_eq!(
        put["image"]["imageId"]["imageDigest"],
        image_digest.as_str()
    );

    // As stored, and converted to OCI when only that is accepted — by tag, not by digest.
    let got = aws(
        &server,
        &[
            "batch-get-image",
            "--repository-name",
            repo,
            "--image-ids",
            "imageTag=v1",
        ],
    )
    .unwrap();
    assert_eq!(got["images"][0]["imageManifest"], manifest.as_str());
    let oci = aws(
        &server,
        &[
            "batch-get-image",
            "--repository-name",
            repo,
            "--image-ids",
            "imageTag=v1",
            "--accepted-media-types",
            OCI_MANIFEST,
        ],
    )
    .unwrap();
    assert_eq!(oci["images"][0]["imageManifestMediaType"], OCI_MANIFEST);
    let converted: Value =
        serde_json::from_str(oci["images"][0]["imageManifest"].as_str().unwrap()).unwrap();
    assert_eq!(
        converted["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    assert_eq!(converted["layers"][0]["digest"], layer_digest.as_str());
    let by_digest = aws(
        &server,
        &[
            "batch-get-image",
            "--repository-name",
            repo,
            "--image-ids",
            &format!("imageDigest={image_digest}"),
            "--accepted-media-types",
            OCI_MANIFEST,
        ],
    )
    .unwrap();
    assert_eq!(by_digest["failures"][0]["failureCode"], "ImageNotFound");
    assert_eq!(
        by_digest["failures"][0]["failureReason"],
        "Requested image not found"
    );

    // The layer's download URL serves its bytes, without other credentials.
    let url = aws(
        &server,
        &[
            "get-download-url-for-layer",
            "--repository-name",
            repo,
            "--layer-digest",
            &layer_digest,
        ],
    )
    .unwrap();
    let body = reqwest::get(url["downloadUrl"].as_str().unwrap())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(body.as_ref(), layer.as_slice());

    // Errors.
    let init = aws(
        &server,
        &["initiate-layer-upload", "--repository-name", repo],
    )
    .unwrap();
    let id = init["uploadId"].as_str().unwrap();
    let part = dir.path().join("part");
    std::fs::write(&part, b"0123456789").unwrap();
    let blob = format!("fileb://{}", part.display());
    let err = aws(
        &server,
        &[
            "upload-layer-part",
            "--repository-name",
            repo,
            "--upload-id",
            id,
            "--part-first-byte",
            "5",
            "--part-last-byte",
            "14",
            "--layer-part-blob",
            &blob,
        ],
    )
    .unwrap_err();
    assert!(err.contains("InvalidLayerPartException"), "{err}");
    aws(
        &server,
        &[
            "upload-layer-part",
            "--repository-name",
            repo,
            "--upload-id",
            id,
            "--part-first-byte",
            "0",
            "--part-last-byte",
            "9",
            "--layer-part-blob",
            &blob,
        ],
    )
    .unwrap();
    let err = aws(
        &server,
        &[
            "complete-layer-upload",
            "--repository-name",
            repo,
            "--upload-id",
            id,
            "--layer-digests",
            &digest(b"other"),
        ],
    )
    .unwrap_err();
    assert!(err.contains("InvalidLayerException"), "{err}");
    let unknown = "00000000-0000-0000-0000-000000000000";
    let err = aws(
        &server,
        &[
            "complete-layer-upload",
            "--repository-name",
            repo,
            "--upload-id",
            unknown,
            "--layer-digests",
            &layer_digest,
        ],
    )
    .unwrap_err();
    assert!(err.contains("UploadNotFoundException"), "{err}");
    assert!(
        err.contains("in the registry with id '000000000000'"),
        "{err}"
    );
    let again = aws(
        &server,
        &["initiate-layer-upload", "--repository-name", repo],
    )
    .unwrap();
    let id = again["uploadId"].as_str().unwrap();
    let err = aws(
        &server,
        &[
            "complete-layer-upload",
            "--repository-name",
            repo,
            "--upload-id",
            id,
            "--layer-digests",
            &layer_digest,
        ],
    )
    .unwrap_err();
    assert!(err.contains("EmptyUploadException"), "{err}");
    let dup = dir.path().join("dup");
    std::fs::write(&dup, config).unwrap();
    aws(
        &server,
        &[
            "upload-layer-part",
            "--repository-name",
            repo,
            "--upload-id",
            id,
            "--part-first-byte",
            "0",
            "--part-last-byte",
            &(config.len() - 1).to_string(),
            "--layer-part-blob",
            &format!("fileb://{}", dup.display()),
        ],
    )
    .unwrap();
    let err = aws(
        &server,
        &[
            "complete-layer-upload",
            "--repository-name",
            repo,
            "--upload-id",
            id,
            "--layer-digests",
            &config_digest,
        ],
    )
    .unwrap_err();
    assert!(err.contains("LayerAlreadyExistsException"), "{err}");
    let err = aws(
        &server,
        &[
            "put-image",
            "--repository-name",
            repo,
            "--image-tag",
            "v2",
            "--image-manifest",
            &manifest.replace(&layer_digest, &digest(b"missing")),
        ],
    )
    .unwrap_err();
    assert!(err.contains("LayersNotFoundException"), "{err}");
    assert!(
        err.contains("required for pushing image into repository with name 'cli/app'"),
        "{err}"
    );
}
