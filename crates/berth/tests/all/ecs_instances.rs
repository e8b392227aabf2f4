//! Container instances through the ECS API (as agents register them).

use crate::{code, integer_resource, start};
use berth_testkit::aws_sdk_ecs::Client;
use berth_testkit::aws_sdk_ecs::types::{Attribute, ContainerInstanceStatus, Resource, TargetType};

async fn register(ecs: &Client, cluster: &str, zone: &str, memory: i32) -> String {
    ecs.register_container_instance()
        .cluster(cluster)
        .instance_identity_document(format!(r#"{{"instanceId":"node-{zone}-{memory}"}}"#))
        .total_resources(integer_resource("CPU", 2048))
        .total_resources(integer_resource("MEMORY", memory))
        .total_resources(
            Resource::builder()
                .name("PORTS")
                .r#type("STRINGSET")
                .string_set_value("22")
                .string_set_value("2375")
                .build(),
        )
        .attributes(
            Attribute::builder()
                .name("ecs.availability-zone")
                .value(zone)
                .build()
                .unwrap(),
        )
        .version_info(
            berth_testkit::aws_sdk_ecs::types::VersionInfo::builder()
                .agent_version("1.2.3")
                .docker_version("20.10.24")
                .build(),
        )
        .send()
        .await
        .unwrap()
        .container_instance
        .unwrap()
        .container_instance_arn
        .unwrap()
}

#[tokio::test]
async fn container_instances_register_describe_list_drain_deregister() {
    let server = start();
    let ecs = server.ecs();
    ecs.create_cluster()
        .cluster_name("fleet")
        .send()
        .await
        .unwrap();
    let a = register(&ecs, "fleet", "us-east-1a", 3904).await;
    let b = register(&ecs, "fleet", "us-east-1b", 7808).await;
    assert!(a.starts_with("arn:aws:ecs:us-east-1:000000000000:container-instance/fleet/"));
    let id_a = a.rsplit('/').next().unwrap().to_string();
    assert_eq!(id_a.len(), 32);

    let d = ecs
        .describe_container_instances()
        .cluster("fleet")
        .container_instances(&id_a)
        .container_instances(&b)
        .container_instances("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(d.container_instances().len(), 2);
    let ia = &d.container_instances()[0];
    assert_eq!(ia.ec2_instance_id(), Some("node-us-east-1a-3904"));
    assert_eq!(ia.status(), Some("ACTIVE"));
    assert!(ia.agent_connected());
    assert_eq!(
        ia.registered_resources()
            .iter()
            .find(|r| r.name() == Some("MEMORY"))
            .unwrap()
            .integer_value(),
        3904
    );
    assert_eq!(ia.remaining_resources().len(), 3);
    assert_eq!(ia.version_info().unwrap().agent_version(), Some("1.2.3"));
    assert!(
        ia.attributes()
            .iter()
            .any(|x| x.name() == "ecs.os-type" && x.value() == Some("linux"))
    );
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));
    let c = ecs
        .describe_clusters()
        .clusters("fleet")
        .send()
        .await
        .unwrap();
    assert_eq!(c.clusters()[0].registered_container_instances_count(), 2);

    // Listing with the cluster query language.
    let all = ecs
        .list_container_instances()
        .cluster("fleet")
        .send()
        .await
        .unwrap();
    assert_eq!(all.container_instance_arns().len(), 2);
    let zone_b = ecs
        .list_container_instances()
        .cluster("fleet")
        .filter("attribute:ecs.availability-zone == us-east-1b")
        .send()
        .await
        .unwrap();
    assert_eq!(zone_b.container_instance_arns(), std::slice::from_ref(&b));
    let zones = ecs
        .list_container_instances()
        .cluster("fleet")
        .filter(
            "attribute:ecs.availability-zone in [us-east-1a, us-east-1b] and agentVersion >= 1.2",
        )
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(zones.len(), 2);
    let err = ecs
        .list_container_instances()
        .cluster("fleet")
        .filter("attribute:x ==")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");

    // Draining and back.
    let u = ecs
        .update_container_instances_state()
        .cluster("fleet")
        .container_instances(&a)
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    assert_eq!(u.container_instances()[0].status(), Some("DRAINING"));
    let draining = ecs
        .list_container_instances()
        .cluster("fleet")
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    assert_eq!(draining.container_instance_arns(), std::slice::from_ref(&a));
    ecs.update_container_instances_state()
        .cluster("fleet")
        .container_instances(&a)
        .status(ContainerInstanceStatus::Active)
        .send()
        .await
        .unwrap();

    // A cluster with registered instances cannot be deleted.
    let err = ecs
        .delete_cluster()
        .cluster("fleet")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClusterContainsContainerInstancesException");
    for arn in [&a, &b] {
        let r = ecs
            .deregister_container_instance()
            .cluster("fleet")
            .container_instance(arn)
            .send()
            .await
            .unwrap();
        assert_eq!(r.container_instance.unwrap().status(), Some("INACTIVE"));
    }
    assert!(
        ecs.list_container_instances()
            .cluster("fleet")
            .send()
            .await
            .unwrap()
            .container_instance_arns()
            .is_empty()
    );
    ecs.delete_cluster().cluster("fleet").send().await.unwrap();
    let err = register_err(&ecs).await;
    assert_eq!(err, "ClusterNotFoundException");
}

async fn register_err(ecs: &Client) -> String {
    let err = ecs
        .register_container_instance()
        .cluster("fleet")
        .total_resources(integer_resource("CPU", 1024))
        .total_resources(integer_resource("MEMORY", 1024))
        .send()
        .await
        .unwrap_err();
    code(&err)
}

#[tokio::test]
async fn container_instance_attributes_put_list_delete() {
    let server = start();
    let ecs = server.ecs();
    ecs.create_cluster().send().await.unwrap();
    let a = register(&ecs, "default", "us-east-1a", 2048).await;
    let put = ecs
        .put_attributes()
        .attributes(
            Attribute::builder()
                .name("stack")
                .value("prod")
                .target_type(TargetType::ContainerInstance)
                .target_id(&a)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(put.attributes()[0].target_id(), Some(a.as_str()));
    let listed = ecs
        .list_attributes()
        .target_type(TargetType::ContainerInstance)
        .attribute_name("stack")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.attributes().len(), 1);
    assert_eq!(listed.attributes()[0].value(), Some("prod"));
    let filtered = ecs
        .list_container_instances()
        .filter("attribute:stack == prod")
        .send()
        .await
        .unwrap();
    assert_eq!(filtered.container_instance_arns(), std::slice::from_ref(&a));

    // Limits and bad targets.
    let many: Vec<Attribute> = (0..10)
        .map(|i| {
            Attribute::builder()
                .name(format!("k{i}"))
                .value("v")
                .target_id(&a)
                .build()
                .unwrap()
        })
        .collect();
    let err = ecs
        .put_attributes()
        .set_attributes(Some(many))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "AttributeLimitExceededException");
    let err = ecs
        .put_attributes()
        .attributes(
            Attribute::builder()
                .name("x")
                .value("y")
                .target_id("0123456789abcdef0123456789abcdef")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TargetNotFoundException");
    let err = ecs
        .put_attributes()
        .attributes(
            Attribute::builder()
                .name("bad name")
                .value("y")
                .target_id(&a)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");

    ecs.delete_attributes()
        .attributes(
            Attribute::builder()
                .name("stack")
                .target_id(&a)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let listed = ecs
        .list_attributes()
        .target_type(TargetType::ContainerInstance)
        .attribute_name("stack")
        .send()
        .await
        .unwrap();
    assert!(listed.attributes().is_empty());
}
