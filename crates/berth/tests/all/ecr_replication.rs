//! ECR replication: PutReplicationConfiguration's checks, images pushed after it copied to
//! another region of the same Berth and to a second Berth server (a `[[replication.remote]]`),
//! DescribeImageReplicationStatus through IN_PROGRESS to COMPLETE or FAILED with the reason,
//! copies that survive a `kill -9` before they ran, deletes not replicated — and, with
//! Docker, `docker pull` from each destination.

use crate::docker_e2e::{docker, import_busybox, require_docker_engine, run};
use crate::registry::{OCI_INDEX, OCI_MANIFEST, Reg, digest};
use crate::{code, start_with};
use berth_testkit::aws_sdk_ecr::types::{
    ImageIdentifier, ReplicationConfiguration, ReplicationDestination, ReplicationRule,
    ReplicationStatus, RepositoryFilter, RepositoryFilterType,
};
use berth_testkit::{ACCESS_KEY_ID, Options, SECRET_ACCESS_KEY, TestServer};
use serde_json::json;
use std::time::Duration;

pub const REMOTE_ACCOUNT: &str = "111122223333";

fn dest(region: &str, registry: &str) -> ReplicationDestination {
    ReplicationDestination::builder()
        .region(region)
        .registry_id(registry)
        .build()
        .unwrap()
}

fn rule(filter: Option<&str>, destinations: Vec<ReplicationDestination>) -> ReplicationRule {
    let mut r = ReplicationRule::builder().set_destinations(Some(destinations));
    if let Some(f) = filter {
        r = r.repository_filters(
            RepositoryFilter::builder()
                .filter(f)
                .filter_type(RepositoryFilterType::PrefixMatch)
                .build()
                .unwrap(),
        );
    }
    r.build().unwrap()
}

/// A second Berth (account 111122223333), and this Berth configured to replicate to it; also
/// a remote whose key is wrong (222233334444).
pub fn two_servers(dir: &std::path::Path) -> (TestServer, TestServer) {
    let b = start_with(Options {
        args: vec!["--account-id".into(), REMOTE_ACCOUNT.into()],
        ..Default::default()
    });
    let config = dir.join("berth.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[[replication.remote]]
registry-id = "{REMOTE_ACCOUNT}"
endpoint = "{}"
access-key-id = "{ACCESS_KEY_ID}"
secret-access-key = "{SECRET_ACCESS_KEY}"

[[replication.remote]]
registry-id = "222233334444"
endpoint = "{}"
access-key-id = "{ACCESS_KEY_ID}"
secret-access-key = "not the secret"
"#,
            b.endpoint, b.endpoint
        ),
    )
    .unwrap();
    let a = start_with(Options {
        args: vec!["--config".into(), config.display().to_string()],
        ..Default::default()
    });
    (a, b)
}

fn id_tag(t: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_tag(t).build()
}

/// The replication statuses of `repo:tag` once no destination is IN_PROGRESS (activating the
/// task meanwhile).
async fn settled(server: &TestServer, repo: &str, tag: &str) -> Vec<(String, String, String)> {
    let ecr = server.ecr();
    let deadline = berth_testkit::Deadline::after(Duration::from_secs(60));
    loop {
        server.activate("replication").await;
        let s = ecr
            .describe_image_replication_status()
            .repository_name(repo)
            .image_id(id_tag(tag))
            .send()
            .await
            .unwrap();
        let all: Vec<(String, String, String)> = s
            .replication_statuses()
            .iter()
            .map(|r| {
                (
                    format!("{}/{}", r.region().unwrap(), r.registry_id().unwrap()),
                    r.status().unwrap().as_str().to_string(),
                    r.failure_code().unwrap_or_default().to_string(),
                )
            })
            .collect();
        if !all.iter().any(|(_, st, _)| st == "IN_PROGRESS") {
            return all;
        }
        deadline
            .next(format!("replication of {repo}:{tag}: {all:?}"))
            .await;
    }
}

async fn tags_in(ecr: &berth_testkit::aws_sdk_ecr::Client, repo: &str) -> Vec<String> {
    let mut tags: Vec<String> = ecr
        .describe_images()
        .repository_name(repo)
        .send()
        .await
        .unwrap()
        .image_details()
        .iter()
        .flat_map(|d| d.image_tags().to_vec())
        .collect();
    tags.sort();
    tags
}

#[tokio::test]
async fn replication_copies_to_another_region_and_another_berth_with_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let (mut a, b) = two_servers(dir.path());
    let ecr = a.ecr();
    ecr.create_repository()
        .repository_name("prod/app")
        .send()
        .await
        .unwrap();
    let reg = Reg::login(&a).await;
    reg.push_image("prod/app", "before", &[b"pushed before"])
        .await;

    // Destinations Berth cannot reach are refused up front.
    for bad in [
        dest("us-east-1", "000000000000"),
        dest("eu-west-1", "999999999999"),
    ] {
        let err = ecr
            .put_replication_configuration()
            .replication_configuration(
                ReplicationConfiguration::builder()
                    .rules(rule(None, vec![bad]))
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidParameterException");
    }
    let config = ReplicationConfiguration::builder()
        .rules(rule(
            Some("prod"),
            vec![
                dest("us-west-2", "000000000000"),
                dest("us-east-1", REMOTE_ACCOUNT),
                dest("us-east-1", "222233334444"),
            ],
        ))
        .build()
        .unwrap();
    let put = ecr
        .put_replication_configuration()
        .replication_configuration(config.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(put.replication_configuration(), Some(&config));
    let registry = ecr.describe_registry().send().await.unwrap();
    assert_eq!(registry.replication_configuration(), Some(&config));

    // An index with two children, and a plain image.
    let mut children = Vec::new();
    for n in 0..2 {
        let cfg = format!(r#"{{"architecture":"arch{n}","os":"linux"}}"#);
        let c = reg.push_blob("prod/app", cfg.as_bytes()).await;
        let l = reg
            .push_blob("prod/app", format!("layer {n}").as_bytes())
            .await;
        let m = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c, "size": cfg.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": 7}]})
        .to_string();
        let d = digest(m.as_bytes());
        assert_eq!(
            reg.put_manifest("prod/app", &d, OCI_MANIFEST, m.as_bytes())
                .await
                .status(),
            201
        );
        children.push(d);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": children[0], "size": 1},
        {"mediaType": OCI_MANIFEST, "digest": children[1], "size": 1}]})
    .to_string();
    assert_eq!(
        reg.put_manifest("prod/app", "multi", OCI_INDEX, index.as_bytes())
            .await
            .status(),
        201
    );
    let (_, v1) = reg.push_image("prod/app", "v1", &[b"release one"]).await;

    for tag in ["multi", "v1"] {
        let statuses = settled(&a, "prod/app", tag).await;
        assert_eq!(statuses.len(), 3, "{statuses:?}");
        assert_eq!(statuses[0].0, "us-west-2/000000000000");
        assert_eq!(statuses[0].1, "COMPLETE", "{statuses:?}");
        assert_eq!(statuses[1].1, "COMPLETE", "{statuses:?}");
        assert_eq!(statuses[2].1, "FAILED");
        assert!(
            statuses[2].2.contains("GetAuthorizationToken"),
            "{statuses:?}"
        );
    }
    let west = berth_testkit::aws_sdk_ecr::Client::new(&a.sdk_config_in("us-west-2"));
    assert_eq!(tags_in(&west, "prod/app").await, ["multi", "v1"]);
    assert_eq!(tags_in(&b.ecr(), "prod/app").await, ["multi", "v1"]);
    let remote_images = b
        .ecr()
        .describe_images()
        .repository_name("prod/app")
        .send()
        .await
        .unwrap();
    assert_eq!(
        remote_images.image_details().len(),
        4,
        "the index, its children and v1"
    );
    let copied = b
        .ecr()
        .batch_get_image()
        .repository_name("prod/app")
        .image_ids(id_tag("v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        copied.images()[0].image_id().unwrap().image_digest(),
        Some(v1.as_str())
    );

    // Not replicated: what was pushed before the configuration, and repositories no rule matches.
    let err = west
        .describe_images()
        .repository_name("prod/app")
        .image_ids(id_tag("before"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ImageNotFoundException");
    ecr.create_repository()
        .repository_name("dev/app")
        .send()
        .await
        .unwrap();
    reg.push_image("dev/app", "v1", &[b"dev"]).await;
    let none = ecr
        .describe_image_replication_status()
        .repository_name("dev/app")
        .image_id(id_tag("v1"))
        .send()
        .await
        .unwrap();
    assert!(none.replication_statuses().is_empty());

    // Queued copies survive a kill -9 before the task ran, and are made after the restart.
    reg.push_image("prod/app", "v2", &[b"release two"]).await;
    a.kill9();
    a.restart();
    let statuses = settled(&a, "prod/app", "v2").await;
    assert_eq!(statuses[0].1, "COMPLETE", "{statuses:?}");
    assert_eq!(statuses[1].1, "COMPLETE", "{statuses:?}");

    // Deletes are not replicated.
    a.ecr()
        .batch_delete_image()
        .repository_name("prod/app")
        .image_ids(id_tag("v1"))
        .send()
        .await
        .unwrap();
    let west = berth_testkit::aws_sdk_ecr::Client::new(&a.sdk_config_in("us-west-2"));
    assert!(tags_in(&west, "prod/app").await.contains(&"v1".to_string()));
    assert!(
        tags_in(&b.ecr(), "prod/app")
            .await
            .contains(&"v1".to_string())
    );
    let _ = ReplicationStatus::Complete;
}

#[tokio::test]
async fn replication_then_docker_pull_from_the_other_region_and_the_other_berth() {
    require_docker_engine();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_servers(dir.path());
    let ecr = a.ecr();
    ecr.put_replication_configuration()
        .replication_configuration(
            ReplicationConfiguration::builder()
                .rules(rule(
                    None,
                    vec![
                        dest("eu-west-1", "000000000000"),
                        dest("us-east-1", REMOTE_ACCOUNT),
                    ],
                ))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    ecr.create_repository()
        .repository_name("rep/web")
        .send()
        .await
        .unwrap();
    let config = tempfile::tempdir().unwrap();
    let host_a = format!("127.0.0.1:{}", a.port);
    let image = format!("{host_a}/rep/web:1");
    let (_, pw) = a.registry_login().await;
    run(docker(config.path()).args(["login", "-u", "AWS", "-p", &pw, &host_a]));
    import_busybox(config.path(), &image, "replicated\n");
    run(docker(config.path()).args(["push", &image]));
    run(docker(config.path()).args(["rmi", &image]));
    let statuses = settled(&a, "rep/web", "1").await;
    assert!(
        statuses.iter().all(|(_, s, _)| s == "COMPLETE"),
        "{statuses:?}"
    );

    // From the other region of the same Berth: a token issued there reaches its repositories.
    let (_, pw) = a.registry_login_in("eu-west-1").await;
    run(docker(config.path()).args(["login", "-u", "AWS", "-p", &pw, &host_a]));
    run(docker(config.path()).args(["pull", &image]));
    let out = run(docker(config.path()).args([
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "cat",
        "/www/index.html",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "replicated\n");
    run(docker(config.path()).args(["rmi", &image]));

    // From the other Berth.
    let host_b = format!("127.0.0.1:{}", b.port);
    let image_b = format!("{host_b}/rep/web:1");
    let (_, pw) = b.registry_login().await;
    run(docker(config.path()).args(["login", "-u", "AWS", "-p", &pw, &host_b]));
    run(docker(config.path()).args(["pull", &image_b]));
    let out = run(docker(config.path()).args([
        "run",
        "--rm",
        "--network",
        "none",
        &image_b,
        "cat",
        "/www/index.html",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "replicated\n");
    run(docker(config.path()).args(["rmi", &image_b]));
}
