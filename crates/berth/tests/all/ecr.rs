//! The ECR API through `aws-sdk-ecr`, on images pushed through the registry.

use crate::registry::{DOCKER_V2, Reg, digest};
use crate::{code, start};
use berth_testkit::aws_sdk_ecr::types::{
    ImageIdentifier, ImageTagMutability, ListImagesFilter, TagStatus,
};
use serde_json::json;

fn tag(t: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_tag(t).build()
}

fn by_digest(d: &str) -> ImageIdentifier {
    ImageIdentifier::builder().image_digest(d).build()
}

#[tokio::test]
async fn ecr_repositories_create_describe_delete() {
    let server = start();
    let ecr = server.ecr();
    let r = ecr
        .create_repository()
        .repository_name("team/web")
        .image_tag_mutability(ImageTagMutability::Immutable)
        .tags(
            berth_testkit::aws_sdk_ecr::types::Tag::builder()
                .key("env")
                .value("prod")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap()
        .repository
        .unwrap();
    assert_eq!(
        r.repository_arn(),
        Some("arn:aws:ecr:us-east-1:000000000000:repository/team/web")
    );
    assert_eq!(r.registry_id(), Some("000000000000"));
    assert_eq!(
        r.repository_uri(),
        Some(format!("127.0.0.1:{}/team/web", server.port).as_str())
    );
    assert_eq!(
        r.image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    assert!(r.created_at().is_some());
    assert_eq!(
        r.encryption_configuration()
            .unwrap()
            .encryption_type()
            .as_str(),
        "AES256"
    );

    let err = ecr
        .create_repository()
        .repository_name("team/web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "RepositoryAlreadyExistsException");
    let err = ecr
        .create_repository()
        .repository_name("Bad_Name")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");

    for n in ["a1", "b2", "c3"] {
        ecr.create_repository()
            .repository_name(n)
            .send()
            .await
            .unwrap();
    }
    let all: Vec<String> = ecr
        .describe_repositories()
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.repository_name.unwrap())
        .collect();
    assert_eq!(all, ["a1", "b2", "c3", "team/web"]);
    let one = ecr
        .describe_repositories()
        .repository_names("b2")
        .send()
        .await
        .unwrap();
    assert_eq!(one.repositories().len(), 1);
    let err = ecr
        .describe_repositories()
        .repository_names("zz")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "RepositoryNotFoundException");

    let m = ecr
        .put_image_tag_mutability()
        .repository_name("b2")
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    assert_eq!(
        m.image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );

    // Not empty: refused without force.
    let reg = Reg::login(&server).await;
    reg.push_image("a1", "v1", &[b"x"]).await;
    let err = ecr
        .delete_repository()
        .repository_name("a1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "RepositoryNotEmptyException");
    let d = ecr
        .delete_repository()
        .repository_name("a1")
        .force(true)
        .send()
        .await
        .unwrap();
    assert_eq!(d.repository.unwrap().repository_name(), Some("a1"));
    let err = ecr
        .delete_repository()
        .repository_name("a1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "RepositoryNotFoundException");
    ecr.delete_repository()
        .repository_name("c3")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn ecr_images_list_describe_get_put_delete() {
    let server = start();
    let ecr = server.ecr();
    ecr.create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    let reg = Reg::login(&server).await;
    let (m1, d1) = reg
        .push_image("app", "v1", &[b"layer a", b"layer bb"])
        .await;
    let (_, d2) = reg.push_image("app", "v2", &[b"layer c"]).await;
    // v2 also tagged latest; an untagged image too.
    assert_eq!(
        reg.put_manifest("app", "latest", DOCKER_V2, &reg_bytes(&reg, "v2").await)
            .await
            .status(),
        201
    );
    let config = reg.push_blob("app", br#"{"untagged":1}"#).await;
    let untagged = json!({"schemaVersion": 2, "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config, "size": 14}, "layers": []})
    .to_string();
    let du = digest(untagged.as_bytes());
    assert_eq!(
        reg.put_manifest("app", &du, DOCKER_V2, untagged.as_bytes())
            .await
            .status(),
        201
    );

    let ids = ecr
        .list_images()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ids.image_ids().len(),
        4,
        "one entry per tag, plus the untagged image"
    );
    let tagged = ecr
        .list_images()
        .repository_name("app")
        .filter(
            ListImagesFilter::builder()
                .tag_status(TagStatus::Untagged)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.image_ids().len(), 1);
    assert_eq!(tagged.image_ids()[0].image_digest(), Some(du.as_str()));
    let paged: Vec<_> = ecr
        .list_images()
        .repository_name("app")
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(paged.len(), 4);

    let details = ecr
        .describe_images()
        .repository_name("app")
        .image_ids(tag("v1"))
        .send()
        .await
        .unwrap();
    let v1 = &details.image_details()[0];
    assert_eq!(v1.image_digest(), Some(d1.as_str()));
    assert_eq!(v1.image_tags(), ["v1"]);
    assert_eq!(v1.image_size_in_bytes(), Some(15), "sum of the layer sizes");
    assert_eq!(v1.image_manifest_media_type(), Some(DOCKER_V2));
    assert!(v1.image_pushed_at().is_some());
    let err = ecr
        .describe_images()
        .repository_name("app")
        .image_ids(tag("nope"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ImageNotFoundException");
    let all = ecr
        .describe_images()
        .repository_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(all.image_details().len(), 3);

    let got = ecr
        .batch_get_image()
        .repository_name("app")
        .image_ids(tag("v1"))
        .image_ids(by_digest(&d2))
        .image_ids(tag("missing"))
        .send()
        .await
        .unwrap();
    assert_eq!(got.images().len(), 2);
    assert_eq!(
        got.images()[0].image_manifest().unwrap().as_bytes(),
        &m1[..],
        "byte for byte"
    );
    assert_eq!(
        got.failures()[0].failure_code().map(|c| c.as_str()),
        Some("ImageNotFound")
    );
    let got = ecr
        .batch_get_image()
        .repository_name("app")
        .image_ids(tag("v1"))
        .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    // By tag, a Docker v2 manifest is converted to the OCI manifest accepted; by digest not.
    assert!(got.failures().is_empty());
    assert_eq!(
        got.images()[0].image_manifest_media_type(),
        Some("application/vnd.oci.image.manifest.v1+json")
    );
    let got = ecr
        .batch_get_image()
        .repository_name("app")
        .image_ids(by_digest(&d1))
        .accepted_media_types("application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(got.failures().len(), 1, "not an accepted media type");

    // PutImage: a new tag on an existing manifest; the same again is ImageAlreadyExists.
    let put = ecr
        .put_image()
        .repository_name("app")
        .image_manifest(String::from_utf8(m1.clone()).unwrap())
        .image_tag("stable")
        .send()
        .await
        .unwrap();
    assert_eq!(
        put.image.unwrap().image_id().unwrap().image_digest(),
        Some(d1.as_str())
    );
    let err = ecr
        .put_image()
        .repository_name("app")
        .image_manifest(String::from_utf8(m1.clone()).unwrap())
        .image_tag("stable")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ImageAlreadyExistsException");
    let err = ecr
        .put_image()
        .repository_name("app")
        .image_manifest(String::from_utf8(m1.clone()).unwrap())
        .image_digest(&d2)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ImageDigestDoesNotMatchException");
    let missing = json!({"schemaVersion": 2, "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": digest(b"gone"), "size": 4}, "layers": []});
    let err = ecr
        .put_image()
        .repository_name("app")
        .image_manifest(missing.to_string())
        .image_tag("broken")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LayersNotFoundException");
    ecr.create_repository()
        .repository_name("frozen")
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    reg.push_image("frozen", "v1", &[b"one"]).await;
    let (other, _) = reg.push_image("frozen", "v2", &[b"two"]).await;
    let err = ecr
        .put_image()
        .repository_name("frozen")
        .image_manifest(String::from_utf8(other).unwrap())
        .image_tag("v1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ImageTagAlreadyExistsException");

    // Layer availability.
    let layers = ecr
        .batch_check_layer_availability()
        .repository_name("app")
        .layer_digests(digest(b"layer a"))
        .layer_digests(digest(b"never pushed"))
        .layer_digests("garbage")
        .send()
        .await
        .unwrap();
    assert_eq!(
        layers.layers()[0].layer_availability().map(|a| a.as_str()),
        Some("AVAILABLE")
    );
    assert_eq!(layers.layers()[0].layer_size(), Some(7));
    assert_eq!(
        layers.layers()[1].layer_availability().map(|a| a.as_str()),
        Some("UNAVAILABLE")
    );
    assert_eq!(
        layers.failures()[0].failure_code().map(|c| c.as_str()),
        Some("InvalidLayerDigest")
    );

    // Delete: a tag of a multi-tag image keeps the image; its last tag takes it; digests go whole.
    let del = ecr
        .batch_delete_image()
        .repository_name("app")
        .image_ids(tag("latest"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.image_ids().len(), 1);
    assert!(
        ecr.describe_images()
            .repository_name("app")
            .image_ids(by_digest(&d2))
            .send()
            .await
            .is_ok()
    );
    ecr.batch_delete_image()
        .repository_name("app")
        .image_ids(tag("v2"))
        .send()
        .await
        .unwrap();
    let err = ecr
        .describe_images()
        .repository_name("app")
        .image_ids(by_digest(&d2))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&err),
        "ImageNotFoundException",
        "the last tag took the image"
    );
    let del = ecr
        .batch_delete_image()
        .repository_name("app")
        .image_ids(by_digest(&d1))
        .image_ids(tag("ghost"))
        .send()
        .await
        .unwrap();
    assert_eq!(del.image_ids().len(), 2, "both tags of the image");
    assert_eq!(del.failures().len(), 1);
    let err = ecr
        .list_images()
        .repository_name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "RepositoryNotFoundException");
}

async fn reg_bytes(reg: &Reg, tag: &str) -> Vec<u8> {
    reg.req(reqwest::Method::GET, &format!("/v2/app/manifests/{tag}"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec()
}

/// Push through the ECR layer-upload API (as the "ECR proxy" clients do), pull through `/v2/`.
#[tokio::test]
async fn ecr_layer_upload_api_then_registry_pull() {
    use berth_testkit::aws_sdk_ecr::primitives::Blob;
    let server = start();
    let ecr = server.ecr();
    ecr.create_repository()
        .repository_name("viaapi")
        .send()
        .await
        .unwrap();
    let push = |content: Vec<u8>| {
        let ecr = ecr.clone();
        async move {
            let up = ecr
                .initiate_layer_upload()
                .repository_name("viaapi")
                .send()
                .await
                .unwrap();
            let id = up.upload_id().unwrap().to_string();
            assert_eq!(id.len(), 36);
            assert!(up.part_size().unwrap() > 0);
            let mid = content.len() / 2;
            let r = ecr
                .upload_layer_part()
                .repository_name("viaapi")
                .upload_id(&id)
                .part_first_byte(0)
                .part_last_byte(mid as i64 - 1)
                .layer_part_blob(Blob::new(content[..mid].to_vec()))
                .send()
                .await
                .unwrap();
            assert_eq!(r.last_byte_received(), Some(mid as i64 - 1));
            // A part that does not continue the upload.
            let err = ecr
                .upload_layer_part()
                .repository_name("viaapi")
                .upload_id(&id)
                .part_first_byte(1)
                .part_last_byte(1)
                .layer_part_blob(Blob::new(vec![0u8]))
                .send()
                .await
                .unwrap_err();
            assert_eq!(code(&err), "InvalidLayerPartException");
            ecr.upload_layer_part()
                .repository_name("viaapi")
                .upload_id(&id)
                .part_first_byte(mid as i64)
                .part_last_byte(content.len() as i64 - 1)
                .layer_part_blob(Blob::new(content[mid..].to_vec()))
                .send()
                .await
                .unwrap();
            let d = digest(&content);
            let done = ecr
                .complete_layer_upload()
                .repository_name("viaapi")
                .upload_id(&id)
                .layer_digests(&d)
                .send()
                .await
                .unwrap();
            assert_eq!(done.layer_digest(), Some(d.as_str()));
            d
        }
    };
    let layer = b"layer pushed through the API".repeat(1000);
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let ld = push(layer.clone()).await;
    let cd = push(config.clone()).await;

    // Wrong digest, empty upload, unknown upload, already present.
    let up = ecr
        .initiate_layer_upload()
        .repository_name("viaapi")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_string();
    let err = ecr
        .complete_layer_upload()
        .repository_name("viaapi")
        .upload_id(&id)
        .layer_digests(&ld)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "EmptyUploadException");
    ecr.upload_layer_part()
        .repository_name("viaapi")
        .upload_id(&id)
        .part_first_byte(0)
        .part_last_byte(2)
        .layer_part_blob(Blob::new(b"abc".to_vec()))
        .send()
        .await
        .unwrap();
    let err = ecr
        .complete_layer_upload()
        .repository_name("viaapi")
        .upload_id(&id)
        .layer_digests(digest(b"xyz"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidLayerException");
    let err = ecr
        .complete_layer_upload()
        .repository_name("viaapi")
        .upload_id("00000000-0000-0000-0000-000000000000")
        .layer_digests(&ld)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "UploadNotFoundException");
    let up = ecr
        .initiate_layer_upload()
        .repository_name("viaapi")
        .send()
        .await
        .unwrap();
    let id = up.upload_id().unwrap().to_string();
    ecr.upload_layer_part()
        .repository_name("viaapi")
        .upload_id(&id)
        .part_first_byte(0)
        .part_last_byte(layer.len() as i64 - 1)
        .layer_part_blob(Blob::new(layer.clone()))
        .send()
        .await
        .unwrap();
    let err = ecr
        .complete_layer_upload()
        .repository_name("viaapi")
        .upload_id(&id)
        .layer_digests(&ld)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LayerAlreadyExistsException");

    let manifest = json!({"schemaVersion": 2, "mediaType": DOCKER_V2,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": ld, "size": layer.len()}]})
    .to_string();
    ecr.put_image()
        .repository_name("viaapi")
        .image_manifest(&manifest)
        .image_tag("api")
        .send()
        .await
        .unwrap();
    let reg = Reg::login(&server).await;
    let r = reg
        .req(reqwest::Method::GET, "/v2/viaapi/manifests/api")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], DOCKER_V2);
    assert_eq!(r.bytes().await.unwrap().as_ref(), manifest.as_bytes());
    let r = reg
        .req(reqwest::Method::GET, &format!("/v2/viaapi/blobs/{ld}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().as_ref(), &layer[..]);
}

#[tokio::test]
async fn ecr_download_urls_policies_registry_and_tags() {
    let server = start();
    let ecr = server.ecr();
    ecr.create_repository()
        .repository_name("dl")
        .send()
        .await
        .unwrap();
    let reg = Reg::login(&server).await;
    reg.push_image("dl", "v1", &[b"downloadable layer"]).await;
    let ld = digest(b"downloadable layer");

    let out = ecr
        .get_download_url_for_layer()
        .repository_name("dl")
        .layer_digest(&ld)
        .send()
        .await
        .unwrap();
    let url = out.download_url().unwrap().to_string();
    assert_eq!(out.layer_digest(), Some(ld.as_str()));
    // No credentials needed: the URL is the credential, for one layer, for a while.
    let r = reqwest::get(&url).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().await.unwrap().as_ref(), b"downloadable layer");
    let forged = url.replace("signature=", "signature=0");
    assert_eq!(reqwest::get(&forged).await.unwrap().status(), 403);
    let other = url.replace(&ld[7..], &digest(b"other")[7..]);
    assert_eq!(reqwest::get(&other).await.unwrap().status(), 403);
    let err = ecr
        .get_download_url_for_layer()
        .repository_name("dl")
        .layer_digest(digest(b"not here"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LayersNotFoundException");

    // Repository policies: validated, stored, returned, deleted.
    let err = ecr
        .get_repository_policy()
        .repository_name("dl")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "RepositoryPolicyNotFoundException");
    let err = ecr
        .set_repository_policy()
        .repository_name("dl")
        .policy_text(r#"{"Statement":[{"Effect":"Maybe","Action":"ecr:*","Principal":"*"}]}"#)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Sid":"pull","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":["ecr:BatchGetImage"]}]}"#;
    let set = ecr
        .set_repository_policy()
        .repository_name("dl")
        .policy_text(policy)
        .send()
        .await
        .unwrap();
    assert_eq!(set.policy_text(), Some(policy));
    let got = ecr
        .get_repository_policy()
        .repository_name("dl")
        .send()
        .await
        .unwrap();
    assert_eq!(got.policy_text(), Some(policy));
    let del = ecr
        .delete_repository_policy()
        .repository_name("dl")
        .send()
        .await
        .unwrap();
    assert_eq!(del.policy_text(), Some(policy));
    let err = ecr
        .delete_repository_policy()
        .repository_name("dl")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "RepositoryPolicyNotFoundException");

    let registry = ecr.describe_registry().send().await.unwrap();
    assert_eq!(registry.registry_id(), Some("000000000000"));

    // Tags.
    use berth_testkit::aws_sdk_ecr::types::Tag;
    let arn = "arn:aws:ecr:us-east-1:000000000000:repository/dl";
    ecr.tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("team").value("a").build().unwrap())
        .send()
        .await
        .unwrap();
    ecr.tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("team").value("b").build().unwrap())
        .tags(Tag::builder().key("env").value("dev").build().unwrap())
        .send()
        .await
        .unwrap();
    let tags = ecr
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = tags.tags().iter().map(|t| (t.key(), t.value())).collect();
    assert_eq!(pairs, [("team", "b"), ("env", "dev")]);
    ecr.untag_resource()
        .resource_arn(arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    assert_eq!(
        ecr.list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap()
            .tags()
            .len(),
        1
    );
    let err = ecr
        .tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("aws:x").value("y").build().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidTagParameterException");
    let many: Vec<Tag> = (0..51)
        .map(|i| {
            Tag::builder()
                .key(format!("k{i}"))
                .value("v")
                .build()
                .unwrap()
        })
        .collect();
    let err = ecr
        .tag_resource()
        .resource_arn(arn)
        .set_tags(Some(many))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TooManyTagsException");
    let err = ecr
        .list_tags_for_resource()
        .resource_arn("arn:aws:ecr:us-east-1:000000000000:repository/none")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "RepositoryNotFoundException");
}

#[tokio::test]
async fn ecr_pulls_are_recorded() {
    let server = start();
    let ecr = server.ecr();
    ecr.create_repository()
        .repository_name("pulled")
        .send()
        .await
        .unwrap();
    let reg = Reg::login(&server).await;
    reg.push_image("pulled", "v1", &[b"l"]).await;
    let describe = || async {
        ecr.describe_images()
            .repository_name("pulled")
            .send()
            .await
            .unwrap()
            .image_details()[0]
            .last_recorded_pull_time()
            .cloned()
    };
    assert!(describe().await.is_none(), "never pulled yet");
    reg.req(reqwest::Method::GET, "/v2/pulled/manifests/v1")
        .send()
        .await
        .unwrap();
    berth_testkit::until(
        std::time::Duration::from_secs(10),
        "the pull to be recorded",
        || async { describe().await.is_some() },
    )
    .await;
}
