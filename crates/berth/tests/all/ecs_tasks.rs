//! Tasks in the control plane: placement on registered instances, resource accounting, and the
//! lifecycle driven by a simulated agent that reports through the ECS agent APIs.

use crate::{code, start};
use berth_testkit::aws_sdk_ecs::Client;
use berth_testkit::aws_sdk_ecs::types::{
    ContainerDefinition, ContainerStateChange, DesiredStatus, NetworkBinding, PlacementConstraint,
    PlacementConstraintType, PlacementStrategy, PlacementStrategyType, PortMapping,
};

async fn instance(ecs: &Client, zone: &str) -> String {
    crate::simulated_instance(ecs, "work", zone, (1024, 1024), &[]).await
}

async fn setup(ecs: &Client) -> (String, String) {
    ecs.create_cluster()
        .cluster_name("work")
        .send()
        .await
        .unwrap();
    let a = instance(ecs, "us-east-1a").await;
    let b = instance(ecs, "us-east-1b").await;
    ecs.register_task_definition()
        .family("app")
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image("127.0.0.1:4566/app:1")
                .cpu(128)
                .memory(256)
                .port_mappings(
                    PortMapping::builder()
                        .container_port(80)
                        .host_port(0)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    (a, b)
}

/// StartTask of `app` on `instance`; the task's ARN.
async fn start_on(ecs: &Client, instance: &str) -> String {
    let run = ecs
        .start_task()
        .cluster("work")
        .task_definition("app")
        .container_instances(instance)
        .send()
        .await
        .unwrap();
    run.tasks()[0].task_arn().unwrap().to_string()
}

/// The simulated agent reports `task`'s container exited 0 and the task STOPPED.
async fn report_stopped(ecs: &Client, task: &str) {
    ecs.submit_task_state_change()
        .cluster("work")
        .task(task)
        .status("STOPPED")
        .containers(
            ContainerStateChange::builder()
                .container_name("web")
                .status("STOPPED")
                .exit_code(0)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

async fn remaining_memory(ecs: &Client, arn: &str) -> i32 {
    let d = ecs
        .describe_container_instances()
        .cluster("work")
        .container_instances(arn)
        .send()
        .await
        .unwrap();
    d.container_instances()[0]
        .remaining_resources()
        .iter()
        .find(|r| r.name() == Some("MEMORY"))
        .unwrap()
        .integer_value()
}

fn spread_by_zone() -> PlacementStrategy {
    PlacementStrategy::builder()
        .r#type(PlacementStrategyType::Spread)
        .field("attribute:ecs.availability-zone")
        .build()
}

#[tokio::test]
async fn tasks_are_placed_within_resources_and_fail_with_reasons() {
    let server = start();
    let ecs = server.ecs();
    let (a, b) = setup(&ecs).await;

    let run = ecs
        .run_task()
        .cluster("work")
        .task_definition("app")
        .count(2)
        .placement_strategy(spread_by_zone())
        .started_by("tester")
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks().len(), 2);
    let instances: Vec<&str> = run
        .tasks()
        .iter()
        .map(|t| t.container_instance_arn().unwrap())
        .collect();
    assert!(
        instances.contains(&a.as_str()) && instances.contains(&b.as_str()),
        "spread across zones"
    );
    let t = &run.tasks()[0];
    assert_eq!(t.last_status(), Some("PROVISIONING"));
    assert_eq!(t.desired_status(), Some("RUNNING"));
    assert_eq!(t.group(), Some("family:app"));
    assert_eq!(t.started_by(), Some("tester"));
    assert_eq!(
        t.task_definition_arn(),
        Some("arn:aws:ecs:us-east-1:000000000000:task-definition/app:1")
    );
    assert!(
        t.task_arn()
            .unwrap()
            .starts_with("arn:aws:ecs:us-east-1:000000000000:task/work/")
    );
    assert_eq!(t.containers()[0].name(), Some("web"));
    assert_eq!(remaining_memory(&ecs, &a).await, 768);

    // 1024 MiB per instance and 256 per task: 6 more fit, the rest fail on memory.
    let run = ecs
        .run_task()
        .cluster("work")
        .task_definition("app")
        .count(10)
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks().len(), 6);
    assert!(!run.failures().is_empty());
    assert!(
        run.failures()
            .iter()
            .all(|f| f.reason() == Some("RESOURCE:MEMORY")),
        "{:?}",
        run.failures()
    );
    assert_eq!(remaining_memory(&ecs, &a).await, 0);
    // A log driver no agent supports: ATTRIBUTE, with a detail naming the driver.
    use berth_testkit::aws_sdk_ecs::types::{LogConfiguration, LogDriver};
    ecs.register_task_definition()
        .family("logged")
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image("x")
                .memory(16)
                .log_configuration(
                    LogConfiguration::builder()
                        .log_driver(LogDriver::Splunk)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let run = ecs
        .run_task()
        .cluster("work")
        .task_definition("logged")
        .send()
        .await
        .unwrap();
    assert!(run.tasks().is_empty());
    let f = &run.failures()[0];
    assert_eq!(f.reason(), Some("ATTRIBUTE"));
    assert!(
        f.detail().is_some_and(|d| d.contains("logDriver 'splunk'")
            && d.contains("com.amazonaws.ecs.capability.logging-driver.splunk")),
        "{f:?}"
    );
    let c = ecs
        .describe_clusters()
        .clusters("work")
        .send()
        .await
        .unwrap();
    assert_eq!(c.clusters()[0].pending_tasks_count(), 8);

    // Bad input.
    let err = ecs
        .run_task()
        .cluster("work")
        .task_definition("app")
        .count(11)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let err = ecs
        .run_task()
        .cluster("work")
        .task_definition("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let err = ecs
        .run_task()
        .cluster("work")
        .task_definition("app")
        .placement_strategy(
            PlacementStrategy::builder()
                .r#type(PlacementStrategyType::Binpack)
                .field("disk")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    ecs.deregister_task_definition()
        .task_definition("app:1")
        .send()
        .await
        .unwrap();
    let err = ecs
        .run_task()
        .cluster("work")
        .task_definition("app:1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClientException");
    let err = ecs
        .run_task()
        .cluster("nowhere")
        .task_definition("app:1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClusterNotFoundException");
}

#[tokio::test]
async fn tasks_follow_the_lifecycle_an_agent_reports() {
    let server = start();
    let ecs = server.ecs();
    let (a, _) = setup(&ecs).await;
    let task = start_on(&ecs, &a).await;

    // The simulated agent finds its work through ListTasks and reports.
    let mine = ecs
        .list_tasks()
        .cluster("work")
        .container_instance(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(mine.task_arns(), std::slice::from_ref(&task));
    ecs.submit_task_state_change()
        .cluster("work")
        .task(&task)
        .status("RUNNING")
        .containers(
            ContainerStateChange::builder()
                .container_name("web")
                .status("RUNNING")
                .runtime_id("abc123")
                .network_bindings(
                    NetworkBinding::builder()
                        .bind_ip("0.0.0.0")
                        .container_port(80)
                        .host_port(49153)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let d = ecs
        .describe_tasks()
        .cluster("work")
        .tasks(&task)
        .send()
        .await
        .unwrap();
    let t = &d.tasks()[0];
    assert_eq!(t.last_status(), Some("RUNNING"));
    assert!(t.started_at().is_some());
    assert_eq!(
        t.containers()[0].network_bindings()[0].host_port(),
        Some(49153)
    );
    assert_eq!(t.containers()[0].runtime_id(), Some("abc123"));
    let c = ecs
        .describe_clusters()
        .clusters("work")
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            c.clusters()[0].running_tasks_count(),
            c.clusters()[0].pending_tasks_count()
        ),
        (1, 0)
    );
    // A state never moves back.
    let err = ecs
        .submit_task_state_change()
        .cluster("work")
        .task(&task)
        .status("PENDING")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");

    // The cluster cannot go while a task is active; nor the instance, without force.
    let err = ecs
        .delete_cluster()
        .cluster("work")
        .send()
        .await
        .unwrap_err();
    assert!(
        code(&err) == "ClusterContainsContainerInstancesException"
            || code(&err) == "ClusterContainsTasksException"
    );
    let err = ecs
        .deregister_container_instance()
        .cluster("work")
        .container_instance(&a)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ClientException");

    // StopTask: desired STOPPED now, STOPPED when the agent says so.
    let stopped = ecs
        .stop_task()
        .cluster("work")
        .task(&task)
        .reason("no longer needed")
        .send()
        .await
        .unwrap();
    let t = stopped.task.unwrap();
    assert_eq!(
        (t.desired_status(), t.last_status()),
        (Some("STOPPED"), Some("RUNNING"))
    );
    assert_eq!(t.stop_code().map(|c| c.as_str()), Some("UserInitiated"));
    assert_eq!(t.stopped_reason(), Some("no longer needed"));
    let to_stop = ecs
        .list_tasks()
        .cluster("work")
        .container_instance(&a)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert_eq!(to_stop.task_arns().len(), 1);
    report_stopped(&ecs, &task).await;
    let t = ecs
        .describe_tasks()
        .cluster("work")
        .tasks(&task)
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .clone();
    assert_eq!(t.last_status(), Some("STOPPED"));
    assert!(t.stopped_at().is_some());
    assert_eq!(t.containers()[0].exit_code(), Some(0));
    assert_eq!(remaining_memory(&ecs, &a).await, 1024, "resources released");
    // Stopping again is idempotent; the task stays describable.
    ecs.stop_task()
        .cluster("work")
        .task(&task)
        .send()
        .await
        .unwrap();

    // A task whose essential container exits on its own.
    let run = ecs
        .run_task()
        .cluster("work")
        .task_definition("app")
        .send()
        .await
        .unwrap();
    let task = run.tasks()[0].task_arn().unwrap().to_string();
    ecs.submit_task_state_change()
        .cluster("work")
        .task(&task)
        .status("RUNNING")
        .send()
        .await
        .unwrap();
    ecs.submit_container_state_change()
        .cluster("work")
        .task(&task)
        .container_name("web")
        .status("STOPPED")
        .exit_code(1)
        .reason("exited")
        .send()
        .await
        .unwrap();
    ecs.submit_task_state_change()
        .cluster("work")
        .task(&task)
        .status("STOPPED")
        .send()
        .await
        .unwrap();
    let t = ecs
        .describe_tasks()
        .cluster("work")
        .tasks(&task)
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .clone();
    assert_eq!(t.desired_status(), Some("STOPPED"));
    assert_eq!(
        t.stop_code().map(|c| c.as_str()),
        Some("EssentialContainerExited")
    );
    assert_eq!(t.containers()[0].exit_code(), Some(1));

    let missing = ecs
        .describe_tasks()
        .cluster("work")
        .tasks("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.failures()[0].reason(), Some("MISSING"));
}

#[tokio::test]
async fn tasks_respect_static_ports_and_constraints() {
    let server = start();
    let ecs = server.ecs();
    let (a, b) = setup(&ecs).await;
    ecs.register_task_definition()
        .family("static")
        .container_definitions(
            ContainerDefinition::builder()
                .name("web")
                .image("x")
                .memory(64)
                .port_mappings(
                    PortMapping::builder()
                        .container_port(80)
                        .host_port(8080)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let run = ecs
        .run_task()
        .cluster("work")
        .task_definition("static")
        .count(3)
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks().len(), 2, "one per instance: port 8080 is taken");
    assert!(
        run.failures()
            .iter()
            .all(|f| f.reason() == Some("RESOURCE:PORTS"))
    );

    let member = ecs
        .run_task()
        .cluster("work")
        .task_definition("app")
        .count(2)
        .placement_constraints(
            PlacementConstraint::builder()
                .r#type(PlacementConstraintType::MemberOf)
                .expression("attribute:ecs.availability-zone == us-east-1b")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        member
            .tasks()
            .iter()
            .all(|t| t.container_instance_arn() == Some(b.as_str()))
    );
    let distinct = ecs
        .run_task()
        .cluster("work")
        .task_definition("app")
        .group("singletons")
        .count(3)
        .placement_constraints(
            PlacementConstraint::builder()
                .r#type(PlacementConstraintType::DistinctInstance)
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(distinct.tasks().len(), 2);
    assert_ne!(
        distinct.tasks()[0].container_instance_arn(),
        distinct.tasks()[1].container_instance_arn()
    );
    let by_group = ecs
        .list_container_instances()
        .cluster("work")
        .filter("task:group == singletons")
        .send()
        .await
        .unwrap();
    assert_eq!(by_group.container_instance_arns().len(), 2);

    // Filters.
    let statics = ecs
        .list_tasks()
        .cluster("work")
        .family("static")
        .send()
        .await
        .unwrap();
    assert_eq!(statics.task_arns().len(), 2);
    let paged: Vec<String> = ecs
        .list_tasks()
        .cluster("work")
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(paged.len(), 6);
    // Forced deregistration tells the instance's tasks to stop.
    ecs.deregister_container_instance()
        .cluster("work")
        .container_instance(&a)
        .force(true)
        .send()
        .await
        .unwrap();
    let stopping = ecs
        .list_tasks()
        .cluster("work")
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert!(!stopping.task_arns().is_empty());
    let running_on_a = ecs
        .list_tasks()
        .cluster("work")
        .container_instance(&a)
        .send()
        .await
        .unwrap();
    assert!(running_on_a.task_arns().is_empty());
}

async fn heartbeat(server: &berth_testkit::TestServer, instance: &str) -> u16 {
    let body = format!(r#"{{"cluster":"work","containerInstance":"{instance}"}}"#);
    berth_testkit::signed(
        &berth_testkit::Signing::root("ecs"),
        "POST",
        &format!("{}/agent/v1/heartbeat", server.endpoint),
        &[("content-type", "application/json")],
        body.as_bytes(),
    )
    .send()
    .await
    .status
}

async fn connected(ecs: &Client, arn: &str) -> bool {
    let d = ecs
        .describe_container_instances()
        .cluster("work")
        .container_instances(arn)
        .send()
        .await
        .unwrap();
    d.container_instances()[0].agent_connected()
}

async fn until<F, Fut>(what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    berth_testkit::until(std::time::Duration::from_secs(20), what, cond).await;
}

#[tokio::test]
async fn instances_disconnect_when_agents_go_silent_and_their_tasks_stop() {
    let server = crate::start_with(berth_testkit::Options {
        args: vec![
            "--agent-timeout".into(),
            "1".into(),
            "--agent-lost-timeout".into(),
            "4".into(),
        ],
        ..Default::default()
    });
    let ecs = server.ecs();
    let (a, b) = setup(&ecs).await;
    ecs.deregister_container_instance()
        .cluster("work")
        .container_instance(&b)
        .send()
        .await
        .unwrap();
    assert_eq!(heartbeat(&server, &a).await, 200);
    let task = ecs
        .run_task()
        .cluster("work")
        .task_definition("app")
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .task_arn()
        .unwrap()
        .to_string();

    // Silent agent: disconnected, and nothing new is placed on it.
    until("agentConnected=false", || async {
        !connected(&ecs, &a).await
    })
    .await;
    let run = ecs
        .run_task()
        .cluster("work")
        .task_definition("app")
        .send()
        .await
        .unwrap();
    assert!(run.tasks().is_empty());
    assert_eq!(run.failures()[0].reason(), Some("AGENT"));
    // A heartbeat reconnects it.
    assert_eq!(heartbeat(&server, &a).await, 200);
    assert!(connected(&ecs, &a).await);
    // Silent for good: its tasks are stopped with a clear reason.
    until("the lost instance's task to stop", || async {
        let t = ecs
            .describe_tasks()
            .cluster("work")
            .tasks(&task)
            .send()
            .await
            .unwrap()
            .tasks()[0]
            .clone();
        t.last_status() == Some("STOPPED")
    })
    .await;
    let t = ecs
        .describe_tasks()
        .cluster("work")
        .tasks(&task)
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .clone();
    assert!(
        t.stopped_reason()
            .unwrap()
            .contains("lost contact with the control plane"),
        "{t:?}"
    );
    assert_eq!(remaining_memory(&ecs, &a).await, 1024);
    // Heartbeats for unknown or deregistered instances are refused.
    assert_eq!(heartbeat(&server, &b).await, 400);
    assert_eq!(
        heartbeat(&server, "0123456789abcdef0123456789abcdef").await,
        400
    );
}

/// A desired-state poll of `instance` holding `generation`, as an agent makes it.
async fn desired(
    endpoint: &str,
    instance: &str,
    generation: u64,
    timeout_ms: u64,
) -> serde_json::Value {
    let body = serde_json::json!({
        "cluster": "work", "containerInstance": instance,
        "generation": generation, "timeoutMs": timeout_ms,
    });
    let r = berth_testkit::signed(
        &berth_testkit::Signing::root("ecs"),
        "POST",
        &format!("{endpoint}/agent/v1/desired"),
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .send()
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_str(&r.body).unwrap()
}

/// Agents long-poll their instance's desired-task document: the whole document at once when
/// they hold another generation; a RunTask placed on the instance (or a StopTask of one of
/// its tasks) answers a waiting poll at once; nothing changing answers no tasks.
#[tokio::test]
async fn agents_follow_their_desired_task_document() {
    let server = start();
    let ecs = server.ecs();
    let (a, _) = setup(&ecs).await;
    let first = desired(&server.endpoint, &a, 0, 200).await;
    assert_eq!(first["version"], 1);
    assert_eq!(first["tasks"], serde_json::json!([]));
    let generation = first["generation"].as_u64().unwrap();
    assert!(generation > 0);
    // Nothing changes: the poll waits, then answers the same generation and no tasks.
    let same = desired(&server.endpoint, &a, generation, 200).await;
    assert_eq!(same["generation"], generation);
    assert!(same["tasks"].is_null(), "{same}");

    let started = std::time::Instant::now();
    let poll = {
        let (endpoint, a) = (server.endpoint.clone(), a.clone());
        tokio::spawn(async move { desired(&endpoint, &a, generation, 10_000).await })
    };
    let run = ecs
        .start_task()
        .cluster("work")
        .task_definition("app")
        .container_instances(&a)
        .overrides(
            berth_testkit::aws_sdk_ecs::types::TaskOverride::builder()
                .container_overrides(
                    berth_testkit::aws_sdk_ecs::types::ContainerOverride::builder()
                        .name("web")
                        .command("/bin/run")
                        .environment(
                            berth_testkit::aws_sdk_ecs::types::KeyValuePair::builder()
                                .name("MODE")
                                .value("test")
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let doc = poll.await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "answered when the task was placed"
    );
    let placed = doc["generation"].as_u64().unwrap();
    assert!(placed > generation);
    let task = &doc["tasks"][0];
    let arn = run.tasks()[0].task_arn().unwrap();
    assert_eq!(task["arn"], arn);
    assert_eq!(task["desired"], "RUNNING");
    assert_eq!(task["known"], "PENDING");
    assert_eq!(task["family"], "app");
    let web = &task["containers"][0];
    assert_eq!(web["name"], "web");
    assert_eq!(
        web["command"],
        serde_json::json!(["/bin/run"]),
        "overrides resolved"
    );
    assert_eq!(
        web["environment"],
        serde_json::json!([{"name": "MODE", "value": "test"}])
    );
    // StopTask is a change too: the task stays in the document, to be stopped.
    ecs.stop_task()
        .cluster("work")
        .task(arn)
        .send()
        .await
        .unwrap();
    let doc = desired(&server.endpoint, &a, placed, 10_000).await;
    assert!(doc["generation"].as_u64().unwrap() > placed);
    assert_eq!(doc["tasks"][0]["desired"], "STOPPED");
    // Once reported STOPPED it leaves the document.
    report_stopped(&ecs, arn).await;
    let doc = desired(&server.endpoint, &a, 0, 200).await;
    assert_eq!(doc["tasks"], serde_json::json!([]));
}

#[tokio::test]
async fn stopped_tasks_are_forgotten_after_their_retention() {
    let server = crate::start_with(berth_testkit::Options {
        args: vec!["--stopped-task-retention".into(), "2".into()],
        ..Default::default()
    });
    let ecs = server.ecs();
    let (a, _) = setup(&ecs).await;
    let mut tasks = Vec::new();
    for _ in 0..2 {
        tasks.push(start_on(&ecs, &a).await);
    }
    // The first stops (reported by its agent); the second keeps running.
    ecs.stop_task()
        .cluster("work")
        .task(&tasks[0])
        .send()
        .await
        .unwrap();
    report_stopped(&ecs, &tasks[0]).await;
    let described = |arn: String| {
        let ecs = ecs.clone();
        async move {
            let d = ecs
                .describe_tasks()
                .cluster("work")
                .tasks(arn)
                .send()
                .await
                .unwrap();
            let status = d
                .tasks()
                .first()
                .and_then(|t| t.last_status().map(String::from));
            let missing = d
                .failures()
                .first()
                .and_then(|f| f.reason().map(String::from));
            (status, missing)
        }
    };
    assert_eq!(
        described(tasks[0].clone()).await.0.as_deref(),
        Some("STOPPED"),
        "describable at first"
    );
    until("the stopped task to be forgotten", || {
        let d = described(tasks[0].clone());
        async move { d.await.1.as_deref() == Some("MISSING") }
    })
    .await;
    let stopped = ecs
        .list_tasks()
        .cluster("work")
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert!(stopped.task_arns().is_empty());
    assert_eq!(
        described(tasks[1].clone()).await.0.as_deref(),
        Some("PROVISIONING"),
        "a task that has not stopped stays"
    );
    // The forgotten task holds nothing: the instance's memory is back to one task's worth.
    assert_eq!(remaining_memory(&ecs, &a).await, 1024 - 256);
}
