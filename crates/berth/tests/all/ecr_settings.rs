//! ECR registry-level settings through `aws-sdk-ecr`: scanning configuration and scans (which
//! end as ECR's do for an image it cannot scan), repository creation templates and pushes that
//! create repositories from them, tag mutability with exclusion filters, DescribeRegistry,
//! another account's `registryId`, and ECR's wording of its errors.

use crate::registry::{DOCKER_V2, Reg};
use crate::{code, start};
use berth_testkit::aws_sdk_ecr::types::{
    ImageIdentifier, ImageScanningConfiguration, ImageTagMutability,
    ImageTagMutabilityExclusionFilter, ImageTagMutabilityExclusionFilterType, RctAppliedFor,
    RegistryScanningRule, ScanFrequency, ScanStatus, ScanType, ScanningRepositoryFilter,
    ScanningRepositoryFilterType, Tag,
};
use reqwest::Method;

fn message<E: berth_testkit::aws_sdk_ecs::error::ProvideErrorMetadata>(e: &E) -> String {
    e.message().unwrap_or_default().to_string()
}

fn tag(t: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_tag(t).build()
}

#[tokio::test]
async fn ecr_scanning_configuration_and_scans_without_findings() {
    let server = start();
    let ecr = server.ecr();
    let got = ecr
        .get_registry_scanning_configuration()
        .send()
        .await
        .unwrap();
    let c = got.scanning_configuration().unwrap();
    assert_eq!(c.scan_type(), Some(&ScanType::Basic));
    assert!(c.rules().is_empty());
    let rule = RegistryScanningRule::builder()
        .scan_frequency(ScanFrequency::ScanOnPush)
        .repository_filters(
            ScanningRepositoryFilter::builder()
                .filter("prod")
                .filter_type(ScanningRepositoryFilterType::Wildcard)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let err = ecr
        .put_registry_scanning_configuration()
        .scan_type(ScanType::Basic)
        .rules(
            RegistryScanningRule::builder()
                .scan_frequency(ScanFrequency::ContinuousScan)
                .set_repository_filters(Some(rule.repository_filters().to_vec()))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    ecr.put_registry_scanning_configuration()
        .scan_type(ScanType::Basic)
        .rules(rule)
        .send()
        .await
        .unwrap();
    let c = ecr
        .get_registry_scanning_configuration()
        .send()
        .await
        .unwrap();
    let rules = c.scanning_configuration().unwrap().rules();
    assert_eq!(rules.len(), 1);
    assert_eq!(rules[0].scan_frequency(), &ScanFrequency::ScanOnPush);

    for name in ["team/prod-web", "team/dev"] {
        ecr.create_repository()
            .repository_name(name)
            .send()
            .await
            .unwrap();
    }
    let on = ecr
        .put_image_scanning_configuration()
        .repository_name("team/dev")
        .image_scanning_configuration(
            ImageScanningConfiguration::builder()
                .scan_on_push(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(!on.image_scanning_configuration().unwrap().scan_on_push());
    let batch = ecr
        .batch_get_repository_scanning_configuration()
        .repository_names("team/prod-web")
        .repository_names("team/dev")
        .repository_names("nope")
        .send()
        .await
        .unwrap();
    let configs = batch.scanning_configurations();
    assert_eq!(configs.len(), 2);
    assert_eq!(
        configs[0].scan_frequency(),
        Some(&ScanFrequency::ScanOnPush)
    );
    assert_eq!(configs[0].applied_scan_filters()[0].filter(), "prod");
    assert_eq!(configs[1].scan_frequency(), Some(&ScanFrequency::Manual));
    assert_eq!(batch.failures()[0].repository_name(), Some("nope"));

    let reg = Reg::login(&server).await;
    reg.push_image("team/dev", "v1", &[b"a"]).await;
    reg.push_image("team/prod-web", "v1", &[b"b"]).await;
    // Not scanned yet: ECR's ScanNotFoundException, in its words.
    let err = ecr
        .describe_image_scan_findings()
        .repository_name("team/dev")
        .image_id(tag("v1"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ScanNotFoundException");
    assert_eq!(
        message(&err),
        "Image scan does not exist for the image with '{imageDigest:'null', imageTag:'v1'}' in the repository with name 'team/dev' in the registry with id '000000000000'"
    );
    // Scanned: started, then over at once, unsupported — never findings.
    let started = ecr
        .start_image_scan()
        .repository_name("team/dev")
        .image_id(tag("v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        started.image_scan_status().unwrap().status(),
        Some(&ScanStatus::InProgress)
    );
    assert!(started.image_id().unwrap().image_digest().is_some());
    let err = ecr
        .start_image_scan()
        .repository_name("team/dev")
        .image_id(tag("v1"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LimitExceededException");
    for repo in ["team/dev", "team/prod-web"] {
        let f = ecr
            .describe_image_scan_findings()
            .repository_name(repo)
            .image_id(tag("v1"))
            .send()
            .await
            .unwrap();
        let s = f.image_scan_status().unwrap();
        assert_eq!(s.status(), Some(&ScanStatus::Failed), "{repo}");
        assert_eq!(
            s.description(),
            Some(
                "UnsupportedImageError: The operating system and/or package manager are not supported."
            )
        );
        assert!(f.image_scan_findings().is_none());
    }
    let err = ecr
        .start_image_scan()
        .repository_name("team/dev")
        .image_id(tag("nope"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ImageNotFoundException");
    assert_eq!(
        message(&err),
        "The image with imageId {imageDigest:'null', imageTag:'nope'} does not exist within the repository with name 'team/dev' in the registry with id '000000000000'"
    );
}

#[tokio::test]
async fn ecr_creation_templates_create_repositories_on_push() {
    let server = start();
    let ecr = server.ecr();
    let lifecycle = r#"{"rules":[{"rulePriority":1,"description":"keep 10","selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}}]}"#;
    let created = ecr
        .create_repository_creation_template()
        .prefix("team")
        .description("team repositories")
        .applied_for(RctAppliedFor::CreateOnPush)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .resource_tags(Tag::builder().key("owner").value("team").build().unwrap())
        .lifecycle_policy(lifecycle)
        .send()
        .await
        .unwrap();
    let t = created.repository_creation_template().unwrap();
    assert_eq!(t.prefix(), Some("team"));
    assert_eq!(t.applied_for(), [RctAppliedFor::CreateOnPush]);
    assert!(t.created_at().is_some());
    let err = ecr
        .create_repository_creation_template()
        .prefix("team")
        .applied_for(RctAppliedFor::Replication)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TemplateAlreadyExistsException");
    assert_eq!(
        message(&err),
        "The repository creation template with the prefix 'team' already exists in the registry with id '000000000000'"
    );
    let err = ecr
        .create_repository_creation_template()
        .prefix("bad")
        .applied_for(RctAppliedFor::CreateOnPush)
        .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let err = ecr
        .update_repository_creation_template()
        .prefix("nope")
        .description("x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TemplateNotFoundException");
    ecr.create_repository_creation_template()
        .prefix("ROOT")
        .applied_for(RctAppliedFor::Replication)
        .send()
        .await
        .unwrap();
    let updated = ecr
        .update_repository_creation_template()
        .prefix("team")
        .description("the team's")
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated
            .repository_creation_template()
            .unwrap()
            .description(),
        Some("the team's")
    );
    let all = ecr
        .describe_repository_creation_templates()
        .send()
        .await
        .unwrap();
    let prefixes: Vec<_> = all
        .repository_creation_templates()
        .iter()
        .map(|t| t.prefix().unwrap())
        .collect();
    assert_eq!(prefixes, ["ROOT", "team"]);

    // A push to a repository that does not exist: created from the template that covers it…
    let reg = Reg::login(&server).await;
    reg.push_image("team/web", "v1", &[b"layer"]).await;
    let repo = ecr
        .describe_repositories()
        .repository_names("team/web")
        .send()
        .await
        .unwrap();
    let repo = &repo.repositories()[0];
    assert_eq!(
        repo.image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    let tags = ecr
        .list_tags_for_resource()
        .resource_arn(repo.repository_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].key(), "owner");
    let policy = ecr
        .get_lifecycle_policy()
        .repository_name("team/web")
        .send()
        .await
        .unwrap();
    assert_eq!(policy.lifecycle_policy_text(), Some(lifecycle));
    // …and not where no CREATE_ON_PUSH template covers it (ROOT here is for replication).
    assert!(
        reg.try_push_image("other/web", "v1", &[b"x"])
            .await
            .is_none()
    );
    let r = reg
        .req(Method::POST, "/v2/other/web/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("NAME_UNKNOWN"));

    let gone = ecr
        .delete_repository_creation_template()
        .prefix("team")
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.repository_creation_template().unwrap().prefix(),
        Some("team")
    );
    let err = ecr
        .describe_repository_creation_templates()
        .prefixes("team")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TemplateNotFoundException");
}

#[tokio::test]
async fn ecr_tag_mutability_exclusions_registry_and_foreign_registry_ids() {
    let server = start();
    let ecr = server.ecr();
    let latest = ImageTagMutabilityExclusionFilter::builder()
        .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
        .filter("latest*")
        .build()
        .unwrap();
    let err = ecr
        .create_repository()
        .repository_name("x")
        .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let err = ecr
        .create_repository()
        .repository_name("x")
        .image_tag_mutability(ImageTagMutability::Mutable)
        .image_tag_mutability_exclusion_filters(latest.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let r = ecr
        .create_repository()
        .repository_name("app")
        .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
        .image_tag_mutability_exclusion_filters(latest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.repository()
            .unwrap()
            .image_tag_mutability_exclusion_filters()[0]
            .filter(),
        "latest*"
    );
    let reg = Reg::login(&server).await;
    let (m1, _) = reg.push_image("app", "v1", &[b"one"]).await;
    reg.put_manifest("app", "latest", DOCKER_V2, &m1).await;
    let (m2, _) = reg.push_image("app", "latest", &[b"two"]).await;
    // `latest` moves (excluded); `v1` does not.
    let moved = reg.put_manifest("app", "v1", DOCKER_V2, &m2).await;
    assert_eq!(moved.status(), 400);
    assert!(moved.text().await.unwrap().contains("TAG_INVALID"));
    // Mutable with exclusions: the excluded tags are the immutable ones.
    ecr.put_image_tag_mutability()
        .repository_name("app")
        .image_tag_mutability(ImageTagMutability::MutableWithExclusion)
        .image_tag_mutability_exclusion_filters(latest)
        .send()
        .await
        .unwrap();
    assert_eq!(
        reg.put_manifest("app", "v1", DOCKER_V2, &m2).await.status(),
        201
    );
    assert_eq!(
        reg.put_manifest("app", "latest", DOCKER_V2, &m1)
            .await
            .status(),
        400
    );
    let err = ecr
        .put_image_tag_mutability()
        .repository_name("app")
        .image_tag_mutability(ImageTagMutability::MutableWithExclusion)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");

    let registry = ecr.describe_registry().send().await.unwrap();
    assert_eq!(registry.registry_id(), Some("000000000000"));
    assert!(
        registry
            .replication_configuration()
            .unwrap()
            .rules()
            .is_empty()
    );

    // Another account's registry: not this one's to show.
    let err = ecr
        .describe_images()
        .registry_id("111122223333")
        .repository_name("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AccessDeniedException");
    assert_eq!(
        message(&err),
        "User: arn:aws:iam::000000000000:root is not authorized to perform: ecr:DescribeImages on resource: arn:aws:ecr:us-east-1:111122223333:repository/app because no resource-based policy allows the ecr:DescribeImages action"
    );
    let ok = ecr
        .describe_images()
        .registry_id("000000000000")
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.image_details().len(), 2);
    let err = ecr
        .delete_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        message(&err),
        "The repository with name 'app' in registry with id '000000000000' cannot be deleted because it still contains images"
    );
    let err = ecr
        .create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        message(&err),
        "The repository with name 'app' already exists in the registry with id '000000000000'"
    );
}
