//! The pull-through cache: rules through `aws-sdk-ecr` with their errors, a first pull that
//! fills the cache from Debian's `docker-registry` (CNCF distribution) on loopback and a pull
//! after the upstream stopped that Berth serves alone (`docker`), and an upstream that needs
//! credentials (another Berth, whose token is a `[[pull-through-cache.secret]]`).

use crate::docker_e2e::{docker, import_busybox, require_docker_engine, run};
use crate::registry::Reg;
use crate::{code, start, start_with};
use berth_testkit::aws_sdk_ecr::types::{RctAppliedFor, Tag};
use berth_testkit::{Deadline, Options, require_program};
use reqwest::Method;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn message<E: berth_testkit::aws_sdk_ecs::error::ProvideErrorMetadata>(e: &E) -> String {
    e.message().unwrap_or_default().to_string()
}

/// Debian's `docker-registry` on a free loopback port with its own config and storage,
/// stopped (by its PID) when dropped.
pub struct Distribution {
    child: Option<Child>,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Distribution {
    pub fn start() -> Distribution {
        let bin = require_program(
            "docker-registry",
            "scripts/test.sh installs Debian's docker-registry",
        );
        let dir = tempfile::tempdir().unwrap();
        let port = berth_testkit::stable_port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let d = Distribution {
            child: Some(child),
            port,
            _dir: dir,
        };
        let deadline = Deadline::after(Duration::from_secs(30));
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            deadline.next_blocking("docker-registry to listen");
        }
        d
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills it: its port refuses connections from now on.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn pull_through_cache_rules_and_their_errors() {
    let server = start();
    let ecr = server.ecr();
    let rule = ecr
        .create_pull_through_cache_rule()
        .ecr_repository_prefix("hub")
        .upstream_registry_url("registry-1.docker.io")
        .send()
        .await
        .unwrap();
    assert_eq!(rule.ecr_repository_prefix(), Some("hub"));
    assert_eq!(rule.upstream_registry_url(), Some("registry-1.docker.io"));
    assert!(rule.created_at().is_some());
    assert_eq!(rule.registry_id(), Some("000000000000"));
    let err = ecr
        .create_pull_through_cache_rule()
        .ecr_repository_prefix("hub")
        .upstream_registry_url("quay.io")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PullThroughCacheRuleAlreadyExistsException");
    assert_eq!(
        message(&err),
        "The pull through cache rule with Amazon ECR repository prefix 'hub' already exists in the registry with id '000000000000'"
    );
    let arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:ecr-pullthroughcache/none";
    let err = ecr
        .create_pull_through_cache_rule()
        .ecr_repository_prefix("quay")
        .upstream_registry_url("quay.io")
        .credential_arn(arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "SecretNotFoundException");
    let err = ecr
        .describe_pull_through_cache_rules()
        .ecr_repository_prefixes("quay")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PullThroughCacheRuleNotFoundException");
    assert_eq!(
        message(&err),
        "The pull through cache rule with Amazon ECR repository prefix 'quay' does not exist in the registry with id '000000000000'"
    );
    ecr.create_pull_through_cache_rule()
        .ecr_repository_prefix("k8s")
        .upstream_registry_url("registry.k8s.io")
        .upstream_repository_prefix("ROOT")
        .send()
        .await
        .unwrap();
    let all = ecr
        .describe_pull_through_cache_rules()
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let prefixes: Vec<_> = all
        .iter()
        .map(|r| r.ecr_repository_prefix().unwrap())
        .collect();
    assert_eq!(prefixes, ["hub", "k8s"]);
    let err = ecr
        .update_pull_through_cache_rule()
        .ecr_repository_prefix("hub")
        .credential_arn(arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "SecretNotFoundException");
    let gone = ecr
        .delete_pull_through_cache_rule()
        .ecr_repository_prefix("k8s")
        .send()
        .await
        .unwrap();
    assert_eq!(gone.upstream_registry_url(), Some("registry.k8s.io"));
    let err = ecr
        .delete_pull_through_cache_rule()
        .ecr_repository_prefix("k8s")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PullThroughCacheRuleNotFoundException");
    let err = ecr
        .validate_pull_through_cache_rule()
        .ecr_repository_prefix("k8s")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PullThroughCacheRuleNotFoundException");
}

#[tokio::test]
async fn pull_through_cache_fills_from_docker_registry_and_serves_after_it_stops() {
    require_docker_engine();
    let mut upstream = Distribution::start();
    let config = tempfile::tempdir().unwrap();
    let up_image = format!("127.0.0.1:{}/library/web:1", upstream.port);
    import_busybox(config.path(), &up_image, "from upstream\n");
    run(docker(config.path()).args(["push", &up_image]));
    run(docker(config.path()).args(["rmi", &up_image]));

    let server = start();
    let ecr = server.ecr();
    ecr.create_repository_creation_template()
        .prefix("hub")
        .applied_for(RctAppliedFor::PullThroughCache)
        .resource_tags(Tag::builder().key("cache").value("hub").build().unwrap())
        .send()
        .await
        .unwrap();
    ecr.create_pull_through_cache_rule()
        .ecr_repository_prefix("hub")
        .upstream_registry_url(upstream.url())
        .send()
        .await
        .unwrap();
    let valid = ecr
        .validate_pull_through_cache_rule()
        .ecr_repository_prefix("hub")
        .send()
        .await
        .unwrap();
    assert!(valid.is_valid(), "{:?}", valid.failure());

    let host = format!("127.0.0.1:{}", server.port);
    let (_, pw) = server.registry_login().await;
    run(docker(config.path()).args(["login", "-u", "AWS", "-p", &pw, &host]));
    let cached = format!("{host}/hub/library/web:1");
    // First pull: from the upstream, through Berth.
    run(docker(config.path()).args(["pull", &cached]));
    let out = run(docker(config.path()).args([
        "run",
        "--rm",
        "--network",
        "none",
        &cached,
        "cat",
        "/www/index.html",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from upstream\n");
    run(docker(config.path()).args(["rmi", &cached]));
    let repo = ecr
        .describe_repositories()
        .repository_names("hub/library/web")
        .send()
        .await
        .unwrap();
    let arn = repo.repositories()[0].repository_arn().unwrap().to_string();
    let tags = ecr
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].value(), "hub", "created from the template");

    // The upstream goes away: what was cached is still served.
    upstream.stop();
    run(docker(config.path()).args(["pull", &cached]));
    run(docker(config.path()).args(["rmi", &cached]));
    let missing = docker(config.path())
        .args(["pull", &format!("{host}/hub/library/other:1")])
        .output()
        .unwrap();
    assert!(!missing.status.success(), "nothing cached to serve");
    let invalid = ecr
        .validate_pull_through_cache_rule()
        .ecr_repository_prefix("hub")
        .send()
        .await
        .unwrap();
    assert!(!invalid.is_valid());
    assert!(invalid.failure().unwrap().contains("could not be reached"));
}

#[tokio::test]
async fn pull_through_cache_uses_configured_credentials() {
    // The upstream is another Berth: it wants Basic credentials (an ECR token).
    let upstream = start();
    upstream
        .ecr()
        .create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    let up = Reg::login(&upstream).await;
    let (manifest, d) = up.push_image("app", "v1", &[b"the layer"]).await;
    let (_, token) = upstream.registry_login().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("berth.toml");
    std::fs::write(
        &file,
        format!(
            "[[pull-through-cache.secret]]\nname = \"ecr-pullthroughcache/upstream\"\nusername = \"AWS\"\npassword = \"{token}\"\n"
        ),
    )
    .unwrap();
    let server = start_with(Options {
        args: vec!["--config".into(), file.display().to_string()],
        ..Default::default()
    });
    let ecr = server.ecr();
    let arn = "arn:aws:secretsmanager:us-east-1:000000000000:secret:ecr-pullthroughcache/upstream";
    ecr.create_pull_through_cache_rule()
        .ecr_repository_prefix("up")
        .upstream_registry_url(&upstream.endpoint)
        .credential_arn(arn)
        .send()
        .await
        .unwrap();
    ecr.create_pull_through_cache_rule()
        .ecr_repository_prefix("anon")
        .upstream_registry_url(&upstream.endpoint)
        .send()
        .await
        .unwrap();
    let valid = ecr
        .validate_pull_through_cache_rule()
        .ecr_repository_prefix("up")
        .send()
        .await
        .unwrap();
    assert!(valid.is_valid(), "{:?}", valid.failure());
    assert_eq!(valid.credential_arn(), Some(arn));
    let anon = ecr
        .validate_pull_through_cache_rule()
        .ecr_repository_prefix("anon")
        .send()
        .await
        .unwrap();
    assert!(!anon.is_valid());

    let reg = Reg::login(&server).await;
    let r = reg
        .req(Method::GET, "/v2/up/app/manifests/v1")
        .header("accept", crate::registry::DOCKER_V2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["docker-content-digest"], d.as_str());
    assert_eq!(r.bytes().await.unwrap().to_vec(), manifest);
    let layer = crate::registry::digest(b"the layer");
    let blob = reg
        .req(Method::GET, &format!("/v2/up/app/blobs/{layer}"))
        .send()
        .await
        .unwrap();
    assert_eq!(blob.bytes().await.unwrap().as_ref(), b"the layer");
    let denied = reg
        .req(Method::GET, "/v2/anon/app/manifests/v1")
        .send()
        .await
        .unwrap();
    assert_ne!(denied.status(), 200, "no credentials, no image");
}
