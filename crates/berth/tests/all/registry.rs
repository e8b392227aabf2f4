//! The registry: OCI distribution API with ECR tokens, and the ECR image API on the same data.

use crate::start;
use berth_testkit::TestServer;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

pub fn digest(b: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(b)))
}

pub const DOCKER_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A raw registry client logged in with an ECR token.
pub struct Reg {
    pub base: String,
    user: String,
    password: String,
    client: reqwest::Client,
}

impl Reg {
    pub async fn login(server: &TestServer) -> Reg {
        Self::login_in(server, berth_testkit::REGION).await
    }

    /// With a token issued in `region`.
    pub async fn login_in(server: &TestServer, region: &str) -> Reg {
        let (user, password) = server.registry_login_in(region).await;
        Reg {
            base: server.endpoint.clone(),
            user,
            password,
            client: reqwest::Client::new(),
        }
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
    }

    /// A GET written byte for byte on a TCP connection (no path normalization): status, body.
    pub async fn raw_get(&self, path: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = self.base.trim_start_matches("http://");
        let auth = berth_testkit::basic_auth(&self.user, &self.password);
        let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
        let req = format!(
            "GET {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: {auth}\r\nconnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    /// Monolithic upload (`POST ?digest=`); returns the digest.
    pub async fn push_blob(&self, repo: &str, content: &[u8]) -> String {
        self.try_push_blob(repo, content).await.expect("blob push")
    }

    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> reqwest::Response {
        self.req(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap()
    }

    /// Pushes a config and `layers`, then a manifest under `tag`; returns (manifest bytes, digest).
    pub async fn push_image(&self, repo: &str, tag: &str, layers: &[&[u8]]) -> (Vec<u8>, String) {
        self.try_push_image(repo, tag, layers).await.expect("push")
    }

    /// Like `push_image`, but `None` when the server stops answering (crash tests).
    pub async fn try_push_image(
        &self,
        repo: &str,
        tag: &str,
        layers: &[&[u8]],
    ) -> Option<(Vec<u8>, String)> {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":[]}},"tag":"{tag}"}}"#
        );
        let config_digest = self.try_push_blob(repo, config.as_bytes()).await?;
        let mut descs = Vec::new();
        for l in layers {
            let d = self.try_push_blob(repo, l).await?;
            descs.push(json!({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d, "size": l.len()}));
        }
        let manifest = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_V2,
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest, "size": config.len()},
            "layers": descs,
        }))
        .unwrap();
        let r = self
            .req(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
            .header("content-type", DOCKER_V2)
            .body(manifest.clone())
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::CREATED).then(|| {
            let d = digest(&manifest);
            (manifest, d)
        })
    }

    /// Monolithic upload; `None` when the server does not acknowledge it.
    pub async fn try_push_blob(&self, repo: &str, content: &[u8]) -> Option<String> {
        let d = digest(content);
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            )
            .body(content.to_vec())
            .send()
            .await
            .ok()?;
        (r.status() == StatusCode::CREATED).then_some(d)
    }
}

async fn create_repo(server: &TestServer, name: &str) {
    server
        .ecr()
        .create_repository()
        .repository_name(name)
        .send()
        .await
        .unwrap();
}

fn error_code(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("OCI error body: {body}"));
    v["errors"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test]
async fn registry_requires_an_ecr_token() {
    let server = start();
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/v2/", server.endpoint))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        challenge.starts_with("Basic realm=\"https://127.0.0.1:"),
        "{challenge}"
    );
    assert!(challenge.ends_with("service=\"ecr.amazonaws.com\""));
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    assert_eq!(error_code(&r.text().await.unwrap()), "UNAUTHORIZED");

    let r = client
        .get(format!("{}/v2/", server.endpoint))
        .basic_auth("AWS", Some("forged.token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let out = server.ecr().get_authorization_token().send().await.unwrap();
    let data = &out.authorization_data()[0];
    let expires = data.expires_at().unwrap().secs();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!((expires - now - 12 * 3600).abs() < 60, "valid 12 hours");
    assert!(
        data.proxy_endpoint()
            .unwrap()
            .starts_with("https://127.0.0.1:")
    );
    let reg = Reg::login(&server).await;
    assert!(!reg.password.contains(':'));
    let r = reg.req(Method::GET, "/v2/").send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}");
}

#[tokio::test]
async fn registry_push_and_pull_with_every_upload_style() {
    let server = start();
    create_repo(&server, "team/app").await;
    let reg = Reg::login(&server).await;
    let repo = "team/app";

    // Chunked upload: POST, PATCH with Content-Range, status, PATCH, PUT ?digest=.
    let layer: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let d = digest(&layer);
    let r = reg
        .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("/v2/team/app/blobs/uploads/"));
    assert_eq!(r.headers()["range"], "0-0");
    let id = r.headers()["docker-upload-uuid"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(location.ends_with(&id));
    let r = reg
        .req(Method::PATCH, &location)
        .header("content-range", format!("0-{}", 99_999))
        .body(layer[..100_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    assert_eq!(r.headers()["range"], "0-99999");
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        location,
        "stable upload location"
    );
    // A stale or out-of-order chunk is refused.
    let r = reg
        .req(Method::PATCH, &location)
        .header("content-range", "50000-59999")
        .body(vec![0u8; 10_000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["range"], "0-99999");
    let r = reg
        .req(Method::PATCH, &location)
        .header("content-range", "100000-199999")
        .body(layer[100_000..200_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    // Not visible before the final PUT.
    let r = reg
        .req(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = reg
        .req(Method::PUT, &format!("{location}?digest={d}"))
        .body(layer[200_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), d);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/v2/{repo}/blobs/{d}")
    );
    let r = reg.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), 404, "a finished upload is gone");

    // Blob HEAD/GET/Range.
    let r = reg
        .req(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], "300000");
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &layer[..]);
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/blobs/{d}"))
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/300000");
    assert_eq!(r.bytes().await.unwrap().as_ref(), &layer[10..20]);

    // Manifest by tag and by digest, byte for byte.
    let (manifest, md) = reg
        .push_image(repo, "v1", &[b"layer-one", b"layer-two"])
        .await;
    for reference in ["v1", md.as_str()] {
        let r = reg
            .req(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .header("accept", DOCKER_V2)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], DOCKER_V2);
        assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), md);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &manifest[..]);
    }
    let r = reg
        .req(Method::HEAD, &format!("/v2/{repo}/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["content-length"].to_str().unwrap(),
        manifest.len().to_string()
    );

    // Tags with n/last pagination.
    for t in ["v2", "v3"] {
        assert_eq!(
            reg.put_manifest(repo, t, DOCKER_V2, &manifest)
                .await
                .status(),
            201
        );
    }
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/tags/list?n=2"))
        .send()
        .await
        .unwrap();
    assert!(r.headers()["link"].to_str().unwrap().contains("last=v2"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v, json!({"name": repo, "tags": ["v1", "v2"]}));
    let v: Value = reg
        .req(Method::GET, &format!("/v2/{repo}/tags/list?n=2&last=v2"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["tags"], json!(["v3"]));
    let v: Value = reg
        .req(Method::GET, "/v2/_catalog")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v, json!({"repositories": [repo]}));

    // Deletes: a tag, then the manifest by digest.
    assert_eq!(
        reg.req(Method::DELETE, &format!("/v2/{repo}/manifests/v3"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        reg.req(Method::GET, &format!("/v2/{repo}/manifests/v3"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        reg.req(Method::DELETE, &format!("/v2/{repo}/manifests/{md}"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    let r = reg
        .req(Method::GET, &format!("/v2/{repo}/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), error_code(&r.text().await.unwrap())),
        (404, "MANIFEST_UNKNOWN".into())
    );
    // A reference that is not a valid tag or digest names no manifest either.
    for bad in [".INVALID_MANIFEST_NAME", "sha256:abc"] {
        let r = reg
            .req(Method::GET, &format!("/v2/{repo}/manifests/{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            (r.status().as_u16(), error_code(&r.text().await.unwrap())),
            (404, "MANIFEST_UNKNOWN".into()),
            "{bad}"
        );
        let r = reg
            .req(Method::HEAD, &format!("/v2/{repo}/manifests/{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404, "{bad}");
    }
    assert_eq!(
        reg.req(Method::DELETE, &format!("/v2/{repo}/blobs/{d}"))
            .send()
            .await
            .unwrap()
            .status(),
        202
    );
    assert_eq!(
        reg.req(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
}

#[tokio::test]
async fn registry_bad_input_gets_exact_errors_and_changes_nothing() {
    let server = start();
    create_repo(&server, "app").await;
    server
        .ecr()
        .create_repository()
        .repository_name("frozen")
        .image_tag_mutability(berth_testkit::aws_sdk_ecr::types::ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    let reg = Reg::login(&server).await;
    let (manifest, md) = reg.push_image("app", "v1", &[b"good layer"]).await;

    // Wrong digest: 400 DIGEST_INVALID, nothing stored.
    let r = reg
        .req(
            Method::POST,
            &format!(
                "/v2/app/blobs/uploads/?digest={}",
                digest(b"something else")
            ),
        )
        .body(b"content".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), error_code(&r.text().await.unwrap())),
        (400, "DIGEST_INVALID".into())
    );
    for d in [digest(b"content"), digest(b"something else")] {
        assert_eq!(
            reg.req(Method::HEAD, &format!("/v2/app/blobs/{d}"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    // Truncated upload: the digest of what arrived is not the one promised.
    let full = vec![7u8; 5000];
    let r = reg
        .req(Method::POST, "/v2/app/blobs/uploads/")
        .send()
        .await
        .unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    reg.req(Method::PATCH, &loc)
        .body(full[..2000].to_vec())
        .send()
        .await
        .unwrap();
    let r = reg
        .req(Method::PUT, &format!("{loc}?digest={}", digest(&full)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        reg.req(Method::HEAD, &format!("/v2/app/blobs/{}", digest(&full)))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // A manifest that references a missing blob.
    let missing = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(b"nope"), "size": 4},
        "layers": []});
    let r = reg
        .put_manifest("app", "v1", OCI_MANIFEST, missing.to_string().as_bytes())
        .await;
    assert_eq!(
        (r.status().as_u16(), error_code(&r.text().await.unwrap())),
        (400, "MANIFEST_BLOB_UNKNOWN".into())
    );
    // Unknown media type, malformed JSON.
    let r = reg
        .put_manifest("app", "v1", "application/x-made-up", b"{}")
        .await;
    assert_eq!(error_code(&r.text().await.unwrap()), "MANIFEST_INVALID");
    let r = reg
        .put_manifest("app", "v1", OCI_MANIFEST, b"{not json")
        .await;
    assert_eq!(error_code(&r.text().await.unwrap()), "MANIFEST_INVALID");
    // A manifest pushed by a digest that is not its own.
    let r = reg
        .put_manifest("app", &digest(b"other"), DOCKER_V2, &manifest)
        .await;
    assert_eq!(error_code(&r.text().await.unwrap()), "DIGEST_INVALID");
    // Oversized manifest: 413.
    let big = vec![b' '; 4 * 1024 * 1024 + 1];
    let r = reg.put_manifest("app", "big", OCI_MANIFEST, &big).await;
    assert_eq!(r.status(), 413);
    // Invalid names and path traversal, sent as raw bytes (HTTP clients normalize `..`).
    for path in [
        "/v2/../etc/manifests/v1",
        "/v2/app/../x/manifests/v1",
        "/v2/%2e%2e/app/manifests/v1",
        "/v2/App/manifests/v1",
        "/v2/a..b/tags/list",
    ] {
        let (status, body) = reg.raw_get(path).await;
        assert_eq!(
            (status, error_code(&body)),
            (400, "NAME_INVALID".into()),
            "{path}"
        );
    }
    let r = reg
        .req(Method::GET, "/v2/nosuchrepo/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (r.status().as_u16(), error_code(&r.text().await.unwrap())),
        (404, "NAME_UNKNOWN".into())
    );
    let r = reg
        .req(Method::POST, "/v2/nosuchrepo/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    // Immutable tags: the same digest again is fine, another digest is TAG_INVALID.
    let (first, _) = reg.push_image("frozen", "v1", &[b"a"]).await;
    assert_eq!(
        reg.put_manifest("frozen", "v1", DOCKER_V2, &first)
            .await
            .status(),
        201
    );
    let config = reg.push_blob("frozen", br#"{"other":true}"#).await;
    let second = json!({"schemaVersion": 2, "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config, "size": 14}, "layers": []});
    let r = reg
        .put_manifest("frozen", "v1", DOCKER_V2, second.to_string().as_bytes())
        .await;
    let (status, body) = (r.status(), r.text().await.unwrap());
    assert_eq!(
        (status.as_u16(), error_code(&body)),
        (400, "TAG_INVALID".into())
    );
    assert!(body.contains("cannot be overwritten because the tag is immutable"));

    // Everything stored before is intact: re-pull.
    let r = reg
        .req(Method::GET, "/v2/app/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), md);
    assert_eq!(r.bytes().await.unwrap().as_ref(), &manifest[..]);
    let r = reg
        .req(Method::GET, "/v2/frozen/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &first[..]);
}

#[tokio::test]
async fn registry_mounts_across_repositories_and_lists_referrers() {
    let server = start();
    create_repo(&server, "src").await;
    create_repo(&server, "dst").await;
    let reg = Reg::login(&server).await;
    let (_, subject) = reg.push_image("src", "v1", &[b"shared layer"]).await;
    let layer = digest(b"shared layer");
    // Not visible in dst until mounted.
    assert_eq!(
        reg.req(Method::HEAD, &format!("/v2/dst/blobs/{layer}"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/dst/blobs/uploads/?mount={layer}&from=src"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.headers()["location"].to_str().unwrap(),
        format!("/v2/dst/blobs/{layer}")
    );
    assert_eq!(
        reg.req(Method::HEAD, &format!("/v2/dst/blobs/{layer}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // Mounting what the source lacks opens an ordinary upload.
    let r = reg
        .req(
            Method::POST,
            &format!(
                "/v2/dst/blobs/uploads/?mount={}&from=src",
                digest(b"absent")
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);

    // Referrers: an artifact whose subject is the image.
    let empty = reg.push_blob("src", b"{}").await;
    let sig = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sig",
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2},
        "layers": [], "subject": {"mediaType": DOCKER_V2, "digest": subject, "size": 1},
        "annotations": {"org.opencontainers.image.created": "2026-12-01T00:00:00Z", "signer": "ci"}});
    let sig_bytes = sig.to_string().into_bytes();
    let r = reg
        .put_manifest("src", &digest(&sig_bytes), OCI_MANIFEST, &sig_bytes)
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["oci-subject"].to_str().unwrap(), subject);
    let r = reg
        .req(Method::GET, &format!("/v2/src/referrers/{subject}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], OCI_INDEX);
    assert!(r.headers().get("oci-filters-applied").is_none());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["manifests"][0]["digest"], digest(&sig_bytes));
    assert_eq!(
        v["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );
    assert_eq!(
        v["manifests"][0]["annotations"],
        json!({"org.opencontainers.image.created": "2026-12-01T00:00:00Z", "signer": "ci"})
    );
    let r = reg
        .req(
            Method::GET,
            &format!("/v2/src/referrers/{subject}?artifactType=application/vnd.example.sig"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["manifests"][0]["digest"], digest(&sig_bytes));
    let r = reg
        .req(
            Method::GET,
            &format!("/v2/src/referrers/{subject}?artifactType=application/vnd.other"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["manifests"], json!([]));
    let none: Value = reg
        .req(Method::GET, &format!("/v2/src/referrers/{}", digest(b"x")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(none["manifests"], json!([]), "always 200 with an index");

    // An index of manifests in the repository.
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": DOCKER_V2, "digest": subject, "size": 1, "platform": {"architecture": "amd64", "os": "linux"}}]});
    let r = reg
        .put_manifest("src", "multi", OCI_INDEX, index.to_string().as_bytes())
        .await;
    assert_eq!(r.status(), 201);
    let dangling = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": DOCKER_V2, "digest": digest(b"no such manifest"), "size": 1}]});
    let r = reg
        .put_manifest("src", "bad", OCI_INDEX, dangling.to_string().as_bytes())
        .await;
    assert_eq!(
        error_code(&r.text().await.unwrap()),
        "MANIFEST_BLOB_UNKNOWN"
    );
}

/// kill -9 while 4 clients push images: every push acknowledged before the kill pulls intact
/// after the restart.
#[tokio::test]
async fn registry_acknowledged_pushes_survive_kill_9() {
    use std::sync::{Arc, Mutex};
    let mut server = start();
    create_repo(&server, "durable").await;
    /// (tag, manifest bytes, manifest digest, layer bytes) of each acknowledged push.
    type Pushed = (String, Vec<u8>, String, Vec<u8>);
    let acked: Arc<Mutex<Vec<Pushed>>> = Arc::default();
    let mut pushers = Vec::new();
    for p in 0..4 {
        let reg = Reg::login(&server).await;
        let acked = acked.clone();
        pushers.push(tokio::spawn(async move {
            for i in 0.. {
                let tag = format!("p{p}-{i}");
                let layer = format!("layer {tag} ").repeat(2000).into_bytes();
                let Some((manifest, d)) = reg.try_push_image("durable", &tag, &[&layer]).await
                else {
                    break;
                };
                acked.lock().unwrap().push((tag, manifest, d, layer));
            }
        }));
    }
    berth_testkit::wait_for(
        std::time::Duration::from_secs(30),
        "40 acknowledged pushes",
        || acked.lock().unwrap().len() >= 40,
    )
    .await;
    server.kill9();
    for p in pushers {
        p.await.unwrap();
    }
    server.restart();
    let reg = Reg::login(&server).await;
    let acked = acked.lock().unwrap().clone();
    for (tag, manifest, d, layer) in &acked {
        let r = reg
            .req(Method::GET, &format!("/v2/durable/manifests/{tag}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{tag}");
        assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), d);
        assert_eq!(r.bytes().await.unwrap().as_ref(), &manifest[..]);
        let r = reg
            .req(Method::GET, &format!("/v2/durable/blobs/{}", digest(layer)))
            .send()
            .await
            .unwrap();
        assert_eq!(r.bytes().await.unwrap().as_ref(), &layer[..]);
    }
}

#[tokio::test]
async fn registry_collects_unreferenced_blobs_and_keeps_images() {
    let server = crate::start_with(berth_testkit::Options {
        args: vec![
            "--gc-interval".into(),
            "1".into(),
            "--gc-grace".into(),
            "0".into(),
        ],
        ..Default::default()
    });
    create_repo(&server, "gc").await;
    let reg = Reg::login(&server).await;
    let (manifest, _) = reg.push_image("gc", "keep", &[b"kept layer"]).await;
    let orphan = reg.push_blob("gc", b"uploaded, never referenced").await;
    berth_testkit::until(
        std::time::Duration::from_secs(20),
        "the orphan blob to be collected",
        || async {
            let r = reg
                .req(Method::HEAD, &format!("/v2/gc/blobs/{orphan}"))
                .send()
                .await
                .unwrap();
            r.status() == 404
        },
    )
    .await;
    let r = reg
        .req(Method::GET, "/v2/gc/manifests/keep")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &manifest[..]);
    let r = reg
        .req(
            Method::GET,
            &format!("/v2/gc/blobs/{}", digest(b"kept layer")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"kept layer");
}
