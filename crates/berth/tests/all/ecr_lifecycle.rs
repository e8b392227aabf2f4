//! ECR lifecycle policies through `aws-sdk-ecr`: the policy operations with their errors, a
//! preview and then the real expiry removing exactly what the preview listed, an image an
//! index uses surviving, and — with Docker — a repository of 12 tags cut to its 5 newest, the
//! others no longer pullable and their blobs collected.

use crate::docker_e2e::{HOW, docker, import_busybox, require_docker_engine, run};
use crate::registry::{OCI_INDEX, OCI_MANIFEST, Reg, digest};
use crate::{code, start, start_with};
use berth_testkit::aws_sdk_ecr::types::{
    ImageIdentifier, LifecyclePolicyPreviewFilter, LifecyclePolicyPreviewStatus, TagStatus,
};
use berth_testkit::{Options, TestServer};
use serde_json::json;
use std::collections::BTreeSet;

fn message<E: berth_testkit::aws_sdk_ecs::error::ProvideErrorMetadata>(e: &E) -> String {
    e.message().unwrap_or_default().to_string()
}

/// A policy text of `rules` (each a JSON object).
fn policy(rules: &[serde_json::Value]) -> String {
    json!({ "rules": rules }).to_string()
}

#[tokio::test]
async fn lifecycle_policy_operations_and_their_errors() {
    let server = start();
    let ecr = server.ecr();
    let keep_three = policy(&[json!({"rulePriority": 1, "description": "keep three",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 3},
        "action": {"type": "expire"}})]);

    // No repository.
    let err = ecr
        .put_lifecycle_policy()
        .repository_name("nope")
        .lifecycle_policy_text(&keep_three)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "RepositoryNotFoundException");
    assert_eq!(
        message(&err),
        "The repository with name 'nope' does not exist in the registry with id '000000000000'"
    );
    ecr.create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();

    // No policy yet.
    let err = ecr
        .get_lifecycle_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LifecyclePolicyNotFoundException");
    assert_eq!(
        message(&err),
        "Lifecycle policy does not exist for the repository with name 'app' in the registry with id '000000000000'"
    );
    let err = ecr
        .delete_lifecycle_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LifecyclePolicyNotFoundException");
    let err = ecr
        .get_lifecycle_policy_preview()
        .repository_name("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LifecyclePolicyPreviewNotFoundException");
    let err = ecr
        .start_lifecycle_policy_preview()
        .repository_name("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LifecyclePolicyNotFoundException");

    // Rejected policies, with AWS's words; nothing is stored.
    let tagged_without_list = policy(&[json!({"rulePriority": 1,
        "selection": {"tagStatus": "tagged", "countType": "imageCountMoreThan", "countNumber": 3},
        "action": {"type": "expire"}})]);
    let any_not_last = policy(&[
        json!({"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "expire"}}),
        json!({"rulePriority": 2, "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 3}, "action": {"type": "expire"}}),
    ]);
    let archive = policy(&[json!({"rulePriority": 1,
        "selection": {"tagStatus": "any", "countType": "sinceImagePushed", "countUnit": "days", "countNumber": 30},
        "action": {"type": "transition", "targetStorageClass": "archive"}})]);
    for (text, detail) in [
        (
            &tagged_without_list,
            "Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.",
        ),
        (
            &any_not_last,
            "Rule for tagStatus=ANY must have the lowest priority per storage class.",
        ),
        (
            &archive,
            "Berth has no archive storage class: rules with storageClass=ARCHIVE or action type TRANSITION are not supported.",
        ),
    ] {
        let err = ecr
            .put_lifecycle_policy()
            .repository_name("app")
            .lifecycle_policy_text(text)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "InvalidParameterException");
        assert_eq!(
            message(&err),
            format!(
                "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: {detail}'"
            )
        );
    }
    let err = ecr
        .get_lifecycle_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LifecyclePolicyNotFoundException");

    // Put, get (not evaluated yet), delete.
    let put = ecr
        .put_lifecycle_policy()
        .repository_name("app")
        .lifecycle_policy_text(&keep_three)
        .send()
        .await
        .unwrap();
    assert_eq!(put.lifecycle_policy_text(), Some(keep_three.as_str()));
    assert_eq!(put.registry_id(), Some("000000000000"));
    let got = ecr
        .get_lifecycle_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(got.lifecycle_policy_text(), Some(keep_three.as_str()));
    assert!(got.last_evaluated_at().is_none());
    server.activate("lifecycle").await;
    let got = ecr
        .get_lifecycle_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert!(
        got.last_evaluated_at().is_some(),
        "lastEvaluatedAt after a pass"
    );
    let deleted = ecr
        .delete_lifecycle_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.lifecycle_policy_text(), Some(keep_three.as_str()));
    let err = ecr
        .get_lifecycle_policy()
        .repository_name("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LifecyclePolicyNotFoundException");
}

/// Pushes an image with a config of its own (`name`) and no layers, under `tag` or by digest.
async fn push(reg: &Reg, repo: &str, name: &str, tag: Option<&str>) -> String {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","name":"{name}"}}"#);
    let d = reg.push_blob(repo, config.as_bytes()).await;
    let manifest = json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": config.len()},
        "layers": []})
    .to_string();
    let md = digest(manifest.as_bytes());
    let r = reg
        .put_manifest(repo, tag.unwrap_or(&md), OCI_MANIFEST, manifest.as_bytes())
        .await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    md
}

async fn digests_in(server: &TestServer, repo: &str) -> BTreeSet<String> {
    server
        .ecr()
        .describe_images()
        .repository_name(repo)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.image_digest.unwrap())
        .collect()
}

#[tokio::test]
async fn lifecycle_preview_then_expiry_remove_exactly_the_previewed_images() {
    let server = start();
    let ecr = server.ecr();
    ecr.create_repository()
        .repository_name("svc")
        .send()
        .await
        .unwrap();
    let reg = Reg::login(&server).await;
    // Oldest first: two untagged children and their index (tagged), eight releases, three
    // untagged builds.
    let child_a = push(&reg, "svc", "child-a", None).await;
    let child_b = push(&reg, "svc", "child-b", None).await;
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child_a, "size": 1},
        {"mediaType": OCI_MANIFEST, "digest": child_b, "size": 1}]})
    .to_string();
    assert_eq!(
        reg.put_manifest("svc", "multi", OCI_INDEX, index.as_bytes())
            .await
            .status(),
        201
    );
    let mut releases = Vec::new();
    for n in 1..=8 {
        releases.push(push(&reg, "svc", &format!("r{n}"), Some(&format!("v{n}"))).await);
    }
    let mut builds = Vec::new();
    for n in 1..=3 {
        builds.push(push(&reg, "svc", &format!("b{n}"), None).await);
    }
    let text = policy(&[
        json!({"rulePriority": 1, "description": "one untagged build",
            "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 1},
            "action": {"type": "expire"}}),
        json!({"rulePriority": 2, "description": "three releases",
            "selection": {"tagStatus": "tagged", "tagPrefixList": ["v"], "countType": "imageCountMoreThan", "countNumber": 3},
            "action": {"type": "expire"}}),
    ]);
    ecr.put_lifecycle_policy()
        .repository_name("svc")
        .lifecycle_policy_text(&text)
        .send()
        .await
        .unwrap();

    let started = ecr
        .start_lifecycle_policy_preview()
        .repository_name("svc")
        .send()
        .await
        .unwrap();
    assert_eq!(
        started.status(),
        Some(&LifecyclePolicyPreviewStatus::Complete)
    );
    assert_eq!(started.lifecycle_policy_text(), Some(text.as_str()));
    // The whole preview, a page of two at a time.
    let pages: Vec<_> = ecr
        .get_lifecycle_policy_preview()
        .repository_name("svc")
        .max_results(2)
        .into_paginator()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert!(pages.len() >= 4, "{} pages", pages.len());
    let results: Vec<_> = pages
        .iter()
        .flat_map(|p| p.preview_results().to_vec())
        .collect();
    let previewed: BTreeSet<String> = results
        .iter()
        .map(|r| r.image_digest().unwrap().to_string())
        .collect();
    // Releases v1..v5 (rule 2) and the two older builds (rule 1); the index's children are
    // untagged too, but the index that stays uses them.
    let mut expected: BTreeSet<String> = releases[..5].iter().cloned().collect();
    expected.extend(builds[..2].iter().cloned());
    assert_eq!(previewed, expected);
    assert_eq!(results.len(), 7, "each image once");
    for r in &results {
        let rule = r.applied_rule_priority().unwrap();
        assert_eq!(rule, if r.image_tags().is_empty() { 1 } else { 2 });
        assert_eq!(r.action().unwrap().r#type().unwrap().as_str(), "EXPIRE");
    }
    let summary = pages[0].summary().unwrap();
    assert_eq!(summary.expiring_image_total_count(), Some(7));
    let tagged = ecr
        .get_lifecycle_policy_preview()
        .repository_name("svc")
        .filter(
            LifecyclePolicyPreviewFilter::builder()
                .tag_status(TagStatus::Tagged)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.preview_results().len(), 5);
    let one = ecr
        .get_lifecycle_policy_preview()
        .repository_name("svc")
        .image_ids(ImageIdentifier::builder().image_tag("v2").build())
        .send()
        .await
        .unwrap();
    assert_eq!(one.preview_results().len(), 1);
    assert_eq!(one.preview_results()[0].image_tags(), ["v2"]);
    // The preview deleted nothing.
    assert_eq!(digests_in(&server, "svc").await.len(), 14);

    // The real thing removes exactly what the preview listed, one audit event per image.
    let before = digests_in(&server, "svc").await;
    let status = server.activate("lifecycle").await;
    let after = digests_in(&server, "svc").await;
    let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
    assert_eq!(removed, previewed, "status: {status}");
    assert!(after.contains(&child_a) && after.contains(&child_b));
    let log = server.log();
    let audited = log
        .lines()
        .filter(|l| l.contains("PolicyExecutionEvent"))
        .count();
    assert_eq!(audited, 7, "one audit event per expired image");
    for d in &previewed {
        assert!(log.contains(d.as_str()), "{d} audited");
    }
    // A second pass finds nothing more.
    server.activate("lifecycle").await;
    assert_eq!(digests_in(&server, "svc").await, after);
}

fn blob_files(server: &TestServer) -> usize {
    fn count(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| {
                        let p = e.path();
                        if p.is_dir() { count(&p) } else { 1 }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    count(&server.data_dir.join("blobs/blobs"))
}

#[tokio::test]
async fn lifecycle_keeps_the_5_newest_of_12_docker_tags_and_gc_shrinks_the_blob_store() {
    require_docker_engine();
    let server = start_with(Options {
        args: vec!["--gc-grace".into(), "0".into()],
        ..Default::default()
    });
    let ecr = server.ecr();
    ecr.create_repository()
        .repository_name("lc/web")
        .send()
        .await
        .unwrap();
    let config = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", server.port);
    let (_, pw) = server.registry_login().await;
    run(docker(config.path()).args(["login", "-u", "AWS", "-p", &pw, &host]));
    let images: Vec<String> = (1..=12).map(|n| format!("{host}/lc/web:t{n:02}")).collect();
    for (n, image) in images.iter().enumerate() {
        // A page of its own per image: each has a layer of its own (busybox makes it large
        // enough for the blob store).
        import_busybox(config.path(), image, &format!("build {n}\n"));
        run(docker(config.path()).args(["push", image]));
        run(docker(config.path()).args(["rmi", image]));
    }
    let stored = blob_files(&server);
    assert!(stored >= 12, "{stored} blob files for 12 images ({HOW})");
    ecr.put_lifecycle_policy()
        .repository_name("lc/web")
        .lifecycle_policy_text(policy(&[
            json!({"rulePriority": 1, "description": "keep 5",
            "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5},
            "action": {"type": "expire"}}),
        ]))
        .send()
        .await
        .unwrap();
    server.activate("lifecycle").await;
    for (n, image) in images.iter().enumerate() {
        let pulled = docker(config.path())
            .args(["pull", image])
            .output()
            .unwrap();
        assert_eq!(
            pulled.status.success(),
            n >= 7,
            "{image}: {}",
            String::from_utf8_lossy(&pulled.stderr)
        );
        if pulled.status.success() {
            run(docker(config.path()).args(["rmi", image]));
        }
    }
    server.activate("registry-gc").await;
    let left = blob_files(&server);
    assert!(
        left < stored && left <= stored * 5 / 12 + 1,
        "blob files: {stored} before, {left} after"
    );
}
