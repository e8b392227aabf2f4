//! Every region at once: one server answers requests signed for any region, and each region's
//! resources are its own — the same names in two regions are two resources, neither visible
//! from the other, with the region in their ARNs; a registry token reaches the repositories
//! of the region it was issued in.

use crate::code;
use crate::registry::Reg;
use berth_testkit::{aws_sdk_ecr, aws_sdk_ecs, aws_sdk_elasticloadbalancingv2};
use reqwest::Method;

const US: &str = "us-east-1";
const EU: &str = "eu-west-1";

#[tokio::test]
async fn regions_partition_ecs_ecr_and_elbv2() {
    let server = crate::start();
    let ecs = |r| aws_sdk_ecs::Client::new(&server.sdk_config_in(r));
    let ecr = |r| aws_sdk_ecr::Client::new(&server.sdk_config_in(r));
    let elb = |r| aws_sdk_elasticloadbalancingv2::Client::new(&server.sdk_config_in(r));

    // ECS: a cluster and a task definition of the same names in each region.
    for r in [US, EU] {
        ecs(r)
            .create_cluster()
            .cluster_name("shared")
            .send()
            .await
            .unwrap();
    }
    ecs(EU)
        .create_cluster()
        .cluster_name("eu-only")
        .send()
        .await
        .unwrap();
    for r in [US, EU] {
        let l = ecs(r).list_clusters().send().await.unwrap();
        let expected: Vec<String> = if r == US {
            vec![format!("arn:aws:ecs:{US}:000000000000:cluster/shared")]
        } else {
            vec![
                format!("arn:aws:ecs:{EU}:000000000000:cluster/eu-only"),
                format!("arn:aws:ecs:{EU}:000000000000:cluster/shared"),
            ]
        };
        assert_eq!(l.cluster_arns(), expected, "{r}");
    }
    assert_eq!(crate::register(&ecs(EU), "web").await, 1);
    assert_eq!(crate::register(&ecs(EU), "web").await, 2);
    assert_eq!(
        crate::register(&ecs(US), "web").await,
        1,
        "revisions are per region"
    );
    let err = ecs(US)
        .describe_task_definition()
        .task_definition("web:2")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClientException");
    // Another region's ARN names nothing here.
    let d = ecs(US)
        .describe_clusters()
        .clusters(format!("arn:aws:ecs:{EU}:000000000000:cluster/eu-only"))
        .send()
        .await
        .unwrap();
    assert!(d.clusters().is_empty());
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));
    // Tags of a resource are reached only in its region.
    let arn = format!("arn:aws:ecs:{EU}:000000000000:cluster/shared");
    ecs(EU)
        .tag_resource()
        .resource_arn(&arn)
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("k")
                .value("v")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        ecs(US)
            .list_tags_for_resource()
            .resource_arn(&arn)
            .send()
            .await
            .is_err()
    );

    // ELBv2: load balancers of the same name.
    for r in [US, EU] {
        let lb = elb(r)
            .create_load_balancer()
            .name("front")
            .send()
            .await
            .unwrap();
        let arn = lb.load_balancers()[0].load_balancer_arn().unwrap();
        assert!(arn.contains(&format!(":{r}:")), "{arn}");
        let d = elb(r).describe_load_balancers().send().await.unwrap();
        assert_eq!(d.load_balancers().len(), 1);
    }

    // ECR: a repository of the same name in each; an image pushed with an EU token is EU's.
    for r in [US, EU] {
        let repo = ecr(r)
            .create_repository()
            .repository_name("app")
            .send()
            .await
            .unwrap();
        let repo = repo.repository().unwrap();
        assert_eq!(
            repo.repository_arn(),
            Some(format!("arn:aws:ecr:{r}:000000000000:repository/app").as_str())
        );
        assert_eq!(
            repo.repository_uri(),
            Some(format!("127.0.0.1:{}/app", server.port).as_str()),
            "one registry host for every region"
        );
    }
    let eu_reg = Reg::login_in(&server, EU).await;
    eu_reg.push_image("app", "v1", &[b"eu layer"]).await;
    let images = |r| {
        let ecr = ecr(r);
        async move {
            ecr.list_images()
                .repository_name("app")
                .send()
                .await
                .unwrap()
                .image_ids()
                .iter()
                .filter_map(|i| i.image_tag().map(str::to_string))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(images(EU).await, ["v1"]);
    assert!(images(US).await.is_empty());
    let us_reg = Reg::login_in(&server, US).await;
    let status = |reg: &Reg| {
        reg.req(Method::GET, "/v2/app/manifests/v1")
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
    };
    assert_eq!(status(&eu_reg).await.unwrap().status(), 200);
    assert_eq!(
        status(&us_reg).await.unwrap().status(),
        404,
        "a US token reaches US's repository"
    );

    // A request signed for something that is not a region is refused.
    let signing = berth_testkit::Signing {
        region: "Not_A_Region",
        ..berth_testkit::Signing::root("ecs")
    };
    let r = berth_testkit::ecs_request(&server.endpoint, &signing, "ListClusters", "{}")
        .send()
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("region"), "{}", r.body);
}
