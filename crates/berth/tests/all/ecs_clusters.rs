use crate::{code, start};
use berth_testkit::aws_sdk_ecs::types::{ClusterField, ClusterSetting, ClusterSettingName, Tag};

#[tokio::test]
async fn cluster_create_describe_list_delete() {
    let server = start();
    let ecs = server.ecs();
    let created = ecs
        .create_cluster()
        .cluster_name("prod")
        .tags(Tag::builder().key("team").value("web").build())
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("enabled")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let c = created.cluster.unwrap();
    assert_eq!(
        c.cluster_arn(),
        Some("arn:aws:ecs:us-east-1:000000000000:cluster/prod")
    );
    assert_eq!(c.status(), Some("ACTIVE"));
    assert_eq!(c.settings()[0].value(), Some("enabled"));
    assert_eq!(c.tags()[0].key(), Some("team"));
    assert_eq!(c.registered_container_instances_count(), 0);

    // Idempotent on the name: the existing cluster comes back unchanged.
    let again = ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.cluster.unwrap().settings()[0].value(),
        Some("enabled")
    );

    // `default` is the name when none is given.
    ecs.create_cluster().send().await.unwrap();

    let d = ecs
        .describe_clusters()
        .clusters("prod")
        .clusters("arn:aws:ecs:us-east-1:000000000000:cluster/default")
        .clusters("missing")
        .include(ClusterField::Tags)
        .include(ClusterField::Statistics)
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters().len(), 2);
    assert_eq!(d.clusters()[0].tags().len(), 1);
    assert!(
        d.clusters()[0]
            .statistics()
            .iter()
            .any(|s| s.name() == Some("runningEC2TasksCount"))
    );
    assert!(
        d.clusters()[0].settings().is_empty(),
        "settings only with include SETTINGS"
    );
    assert_eq!(d.failures().len(), 1);
    assert_eq!(
        d.failures()[0].arn(),
        Some("arn:aws:ecs:us-east-1:000000000000:cluster/missing")
    );
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));

    let list = ecs.list_clusters().send().await.unwrap();
    assert_eq!(
        list.cluster_arns(),
        [
            "arn:aws:ecs:us-east-1:000000000000:cluster/default",
            "arn:aws:ecs:us-east-1:000000000000:cluster/prod"
        ]
    );

    let deleted = ecs.delete_cluster().cluster("prod").send().await.unwrap();
    assert_eq!(deleted.cluster.unwrap().status(), Some("INACTIVE"));
    let d = ecs
        .describe_clusters()
        .clusters("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.clusters()[0].status(),
        Some("INACTIVE"),
        "deleted clusters stay describable"
    );
    assert_eq!(
        ecs.list_clusters()
            .send()
            .await
            .unwrap()
            .cluster_arns()
            .len(),
        1
    );

    let err = ecs
        .delete_cluster()
        .cluster("prod")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClusterNotFoundException");
    let err = ecs
        .delete_cluster()
        .cluster("never")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClusterNotFoundException");

    // The name can be used again.
    let re = ecs
        .create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(re.cluster.unwrap().status(), Some("ACTIVE"));
}

#[tokio::test]
async fn cluster_update_and_settings() {
    let server = start();
    let ecs = server.ecs();
    ecs.create_cluster()
        .cluster_name("c1")
        .send()
        .await
        .unwrap();
    let u = ecs
        .update_cluster_settings()
        .cluster("c1")
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("enhanced")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(u.cluster.unwrap().settings()[0].value(), Some("enhanced"));
    use berth_testkit::aws_sdk_ecs::types::{
        ClusterConfiguration, ExecuteCommandConfiguration, ExecuteCommandLogging,
    };
    let u = ecs
        .update_cluster()
        .cluster("c1")
        .configuration(
            ClusterConfiguration::builder()
                .execute_command_configuration(
                    ExecuteCommandConfiguration::builder()
                        .logging(ExecuteCommandLogging::Default)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let c = u.cluster.unwrap();
    assert_eq!(
        c.configuration()
            .unwrap()
            .execute_command_configuration()
            .unwrap()
            .logging(),
        Some(&ExecuteCommandLogging::Default)
    );
    assert_eq!(
        c.settings()[0].value(),
        Some("enhanced"),
        "update keeps settings"
    );

    let d = ecs
        .describe_clusters()
        .clusters("c1")
        .include(ClusterField::Configurations)
        .include(ClusterField::Settings)
        .send()
        .await
        .unwrap();
    assert!(d.clusters()[0].configuration().is_some());

    let err = ecs
        .update_cluster_settings()
        .cluster("c1")
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("maybe")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let err = ecs
        .update_cluster()
        .cluster("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClusterNotFoundException");
}

#[tokio::test]
async fn cluster_bad_input_is_rejected() {
    let server = start();
    let ecs = server.ecs();
    let err = ecs
        .create_cluster()
        .cluster_name("bad name!")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let err = ecs
        .create_cluster()
        .cluster_name("c")
        .capacity_providers("my-asg-provider")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let err = ecs
        .create_cluster()
        .cluster_name("c")
        .tags(Tag::builder().key("aws:reserved").value("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let ok = ecs
        .create_cluster()
        .cluster_name("c")
        .capacity_providers("FARGATE")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.cluster.unwrap().capacity_providers(), ["FARGATE"]);
    // Nothing from the failed calls was stored.
    let d = ecs
        .describe_clusters()
        .clusters("c")
        .include(ClusterField::Tags)
        .send()
        .await
        .unwrap();
    assert!(d.clusters()[0].tags().is_empty());
}

#[tokio::test]
async fn cluster_list_paginates() {
    let server = start();
    let ecs = server.ecs();
    for i in 0..7 {
        ecs.create_cluster()
            .cluster_name(format!("c{i}"))
            .send()
            .await
            .unwrap();
    }
    let first = ecs.list_clusters().max_results(3).send().await.unwrap();
    assert_eq!(first.cluster_arns().len(), 3);
    let token = first.next_token().unwrap().to_string();
    let mut all: Vec<String> = ecs
        .list_clusters()
        .max_results(3)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all.len(), 7);
    let sorted = {
        let mut s = all.clone();
        s.sort();
        s
    };
    assert_eq!(all, sorted);
    all.dedup();
    assert_eq!(all.len(), 7);
    let second = ecs
        .list_clusters()
        .max_results(3)
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        second.cluster_arns()[0],
        "arn:aws:ecs:us-east-1:000000000000:cluster/c3"
    );
    let last = ecs.list_clusters().max_results(7).send().await.unwrap();
    assert!(last.next_token().is_none(), "no token on the last page");

    let err = ecs
        .list_clusters()
        .next_token("garbage")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let err = ecs.list_clusters().max_results(0).send().await.unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
}

#[tokio::test]
async fn cluster_tags_add_list_remove() {
    let server = start();
    let ecs = server.ecs();
    let arn = ecs
        .create_cluster()
        .cluster_name("tagged")
        .send()
        .await
        .unwrap()
        .cluster
        .unwrap()
        .cluster_arn
        .unwrap();
    ecs.tag_resource()
        .resource_arn(&arn)
        .tags(Tag::builder().key("a").value("1").build())
        .tags(Tag::builder().key("b").value("2").build())
        .send()
        .await
        .unwrap();
    ecs.tag_resource()
        .resource_arn(&arn)
        .tags(Tag::builder().key("a").value("3").build())
        .send()
        .await
        .unwrap();
    let tags = ecs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    let pairs: Vec<(&str, &str)> = tags
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(pairs, [("a", "3"), ("b", "2")]);
    ecs.untag_resource()
        .resource_arn(&arn)
        .tag_keys("a")
        .send()
        .await
        .unwrap();
    let tags = ecs
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 1);

    let err = ecs
        .list_tags_for_resource()
        .resource_arn("arn:aws:ecs:us-east-1:000000000000:cluster/none")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClusterNotFoundException");
    let err = ecs
        .list_tags_for_resource()
        .resource_arn("not-an-arn")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let many: Vec<Tag> = (0..51)
        .map(|i| Tag::builder().key(format!("k{i}")).value("v").build())
        .collect();
    let err = ecs
        .tag_resource()
        .resource_arn(&arn)
        .set_tags(Some(many))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
}
