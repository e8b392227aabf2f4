use crate::{code, register, start};
use berth_testkit::aws_sdk_ecs::types::{
    Compatibility, ContainerDefinition, HealthCheck, KeyValuePair, NetworkMode, PortMapping,
    SortOrder, Tag, TaskDefinitionFamilyStatus, TaskDefinitionField, TaskDefinitionStatus,
};

fn web() -> ContainerDefinition {
    ContainerDefinition::builder()
        .name("web")
        .image("127.0.0.1:4566/web:1")
        .memory(128)
        .build()
}

#[tokio::test]
async fn task_definition_register_returns_fields_as_given_plus_derived() {
    let server = start();
    let ecs = server.ecs();
    let container = ContainerDefinition::builder()
        .name("app")
        .image("nginx:1.25")
        .memory_reservation(64)
        .memory(256)
        .essential(true)
        .command("nginx")
        .command("-g")
        .command("daemon off;")
        .environment(KeyValuePair::builder().name("MODE").value("prod").build())
        .port_mappings(
            PortMapping::builder()
                .container_port(80)
                .host_port(0)
                .build(),
        )
        .health_check(
            HealthCheck::builder()
                .command("CMD-SHELL")
                .command("wget -q -O- localhost || exit 1")
                .interval(10)
                .build()
                .unwrap(),
        )
        .docker_labels("team", "web")
        .build();
    let out = ecs
        .register_task_definition()
        .family("nginx")
        .network_mode(NetworkMode::Bridge)
        .container_definitions(container)
        .cpu("0.5 vCPU")
        .memory("1 GB")
        .tags(Tag::builder().key("env").value("test").build())
        .send()
        .await
        .unwrap();
    let td = out.task_definition.unwrap();
    assert_eq!(
        td.task_definition_arn(),
        Some("arn:aws:ecs:us-east-1:000000000000:task-definition/nginx:1")
    );
    assert_eq!(td.family(), Some("nginx"));
    assert_eq!(td.revision(), 1);
    assert_eq!(td.status(), Some(&TaskDefinitionStatus::Active));
    assert_eq!(td.cpu(), Some("512"), "cpu normalized to units");
    assert_eq!(td.memory(), Some("1024"), "memory normalized to MiB");
    assert_eq!(td.registered_by(), Some("arn:aws:iam::000000000000:root"));
    assert!(td.registered_at().is_some());
    assert_eq!(
        td.compatibilities(),
        [Compatibility::Ec2, Compatibility::External]
    );
    let attrs: Vec<&str> = td.requires_attributes().iter().map(|a| a.name()).collect();
    assert!(
        attrs.contains(&"ecs.capability.container-health-check"),
        "{attrs:?}"
    );
    let c = &td.container_definitions()[0];
    assert_eq!(c.command(), ["nginx", "-g", "daemon off;"]);
    assert_eq!(c.memory_reservation(), Some(64));
    assert_eq!(c.environment()[0].value(), Some("prod"));
    assert_eq!(c.health_check().unwrap().interval(), Some(10));
    assert_eq!(
        c.docker_labels().unwrap().get("team").map(String::as_str),
        Some("web")
    );
    assert_eq!(out.tags.unwrap()[0].key(), Some("env"));

    // Describe by family, family:revision and ARN; tags only with include TAGS.
    for r in [
        "nginx",
        "nginx:1",
        "arn:aws:ecs:us-east-1:000000000000:task-definition/nginx:1",
    ] {
        let d = ecs
            .describe_task_definition()
            .task_definition(r)
            .send()
            .await
            .unwrap();
        assert_eq!(d.task_definition.unwrap().revision(), 1, "{r}");
        assert!(d.tags.is_none());
    }
    let d = ecs
        .describe_task_definition()
        .task_definition("nginx")
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(d.tags().len(), 1);

    // An identical body still makes a new revision.
    let again = ecs
        .register_task_definition()
        .family("nginx")
        .container_definitions(web())
        .send()
        .await
        .unwrap();
    assert_eq!(again.task_definition.unwrap().revision(), 2);
    let latest = ecs
        .describe_task_definition()
        .task_definition("nginx")
        .send()
        .await
        .unwrap();
    assert_eq!(latest.task_definition.unwrap().revision(), 2);
}

#[tokio::test]
async fn task_definition_fargate_rules() {
    let server = start();
    let ecs = server.ecs();
    let td = ecs
        .register_task_definition()
        .family("f")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .container_definitions(ContainerDefinition::builder().name("a").image("x").build())
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap();
    assert_eq!(
        td.compatibilities(),
        [Compatibility::Ec2, Compatibility::Fargate]
    );
    assert_eq!(td.requires_compatibilities(), [Compatibility::Fargate]);
    let err = ecs
        .register_task_definition()
        .family("f")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu("256")
        .memory("4096")
        .container_definitions(ContainerDefinition::builder().name("a").image("x").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClientException");
    assert!(
        err.to_string().contains("No Fargate configuration")
            || format!("{err:?}").contains("No Fargate configuration")
    );
}

#[tokio::test]
async fn task_definition_bad_input_changes_nothing() {
    let server = start();
    let ecs = server.ecs();
    register(&ecs, "web").await;
    let cases: Vec<(&str, Vec<ContainerDefinition>)> = vec![
        (
            "no memory",
            vec![ContainerDefinition::builder().name("a").image("x").build()],
        ),
        (
            "no image",
            vec![ContainerDefinition::builder().name("a").memory(64).build()],
        ),
        ("duplicate", vec![web(), web()]),
        (
            "no essential",
            vec![
                ContainerDefinition::builder()
                    .name("a")
                    .image("x")
                    .memory(64)
                    .essential(false)
                    .build(),
            ],
        ),
        ("empty", vec![]),
    ];
    for (what, containers) in cases {
        let err = ecs
            .register_task_definition()
            .family("web")
            .set_container_definitions(Some(containers))
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "ClientException", "{what}");
    }
    let err = ecs
        .register_task_definition()
        .family("bad family")
        .container_definitions(web())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClientException");
    // The failed registrations consumed no revision.
    assert_eq!(register(&ecs, "web").await, 2);
    let err = ecs
        .describe_task_definition()
        .task_definition("web:9")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClientException");
    let err = ecs
        .describe_task_definition()
        .task_definition("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClientException");
}

#[tokio::test]
async fn task_definition_lifecycle_deregister_and_delete() {
    let server = start();
    let ecs = server.ecs();
    for _ in 0..3 {
        register(&ecs, "app").await;
    }
    let err = ecs
        .deregister_task_definition()
        .task_definition("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClientException", "a revision is required");
    let d = ecs
        .deregister_task_definition()
        .task_definition("app:3")
        .send()
        .await
        .unwrap();
    let td = d.task_definition.unwrap();
    assert_eq!(td.status(), Some(&TaskDefinitionStatus::Inactive));
    assert!(td.deregistered_at().is_some());
    // The family now resolves to the latest ACTIVE revision.
    let latest = ecs
        .describe_task_definition()
        .task_definition("app")
        .send()
        .await
        .unwrap();
    assert_eq!(latest.task_definition.unwrap().revision(), 2);
    // INACTIVE revisions stay describable.
    let inactive = ecs
        .describe_task_definition()
        .task_definition("app:3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        inactive.task_definition.unwrap().status(),
        Some(&TaskDefinitionStatus::Inactive)
    );

    let del = ecs
        .delete_task_definitions()
        .task_definitions("app:3")
        .task_definitions("app:1")
        .task_definitions("app:99")
        .send()
        .await
        .unwrap();
    assert_eq!(del.task_definitions().len(), 1);
    assert_eq!(
        del.task_definitions()[0].status(),
        Some(&TaskDefinitionStatus::DeleteInProgress)
    );
    assert!(del.task_definitions()[0].delete_requested_at().is_some());
    let failed: Vec<&str> = del.failures().iter().map(|f| f.arn().unwrap()).collect();
    assert_eq!(
        failed,
        [
            "arn:aws:ecs:us-east-1:000000000000:task-definition/app:1",
            "arn:aws:ecs:us-east-1:000000000000:task-definition/app:99"
        ]
    );
    // Revisions are never reused.
    assert_eq!(register(&ecs, "app").await, 4);
}

#[tokio::test]
async fn task_definition_lists_filter_sort_and_paginate() {
    let server = start();
    let ecs = server.ecs();
    for f in ["alpha", "beta", "alpha", "gamma", "alpha"] {
        register(&ecs, f).await;
    }
    ecs.deregister_task_definition()
        .task_definition("gamma:1")
        .send()
        .await
        .unwrap();
    let arn = |s: &str| format!("arn:aws:ecs:us-east-1:000000000000:task-definition/{s}");

    let all = ecs.list_task_definitions().send().await.unwrap();
    assert_eq!(
        all.task_definition_arns(),
        [
            arn("alpha:1"),
            arn("alpha:2"),
            arn("alpha:3"),
            arn("beta:1")
        ]
    );
    let desc = ecs
        .list_task_definitions()
        .sort(SortOrder::Desc)
        .family_prefix("alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(
        desc.task_definition_arns(),
        [arn("alpha:3"), arn("alpha:2"), arn("alpha:1")]
    );
    let inactive = ecs
        .list_task_definitions()
        .status(TaskDefinitionStatus::Inactive)
        .send()
        .await
        .unwrap();
    assert_eq!(inactive.task_definition_arns(), [arn("gamma:1")]);

    let pages: Vec<String> = ecs
        .list_task_definitions()
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(pages.len(), 4);
    // A token is bound to its filters.
    let page = ecs
        .list_task_definitions()
        .max_results(1)
        .send()
        .await
        .unwrap();
    let err = ecs
        .list_task_definitions()
        .max_results(1)
        .sort(SortOrder::Desc)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");

    let fams = ecs.list_task_definition_families().send().await.unwrap();
    assert_eq!(fams.families(), ["alpha", "beta", "gamma"]);
    let active = ecs
        .list_task_definition_families()
        .status(TaskDefinitionFamilyStatus::Active)
        .send()
        .await
        .unwrap();
    assert_eq!(active.families(), ["alpha", "beta"]);
    let inactive = ecs
        .list_task_definition_families()
        .status(TaskDefinitionFamilyStatus::Inactive)
        .send()
        .await
        .unwrap();
    assert_eq!(inactive.families(), ["gamma"]);
    let prefixed = ecs
        .list_task_definition_families()
        .family_prefix("al")
        .send()
        .await
        .unwrap();
    assert_eq!(prefixed.families(), ["alpha"]);
    let paged: Vec<String> = ecs
        .list_task_definition_families()
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(paged, ["alpha", "beta", "gamma"]);
}

#[tokio::test]
async fn task_definition_tags() {
    let server = start();
    let ecs = server.ecs();
    register(&ecs, "t").await;
    let arn = "arn:aws:ecs:us-east-1:000000000000:task-definition/t:1";
    ecs.tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("k").value("v").build())
        .send()
        .await
        .unwrap();
    let tags = ecs
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].value(), Some("v"));
    ecs.untag_resource()
        .resource_arn(arn)
        .tag_keys("k")
        .send()
        .await
        .unwrap();
    assert!(
        ecs.list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap()
            .tags()
            .is_empty()
    );
    let err = ecs
        .list_tags_for_resource()
        .resource_arn("arn:aws:ecs:us-east-1:000000000000:task-definition/t:7")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceNotFoundException");
}
