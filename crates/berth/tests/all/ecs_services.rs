//! Services with simulated agents: the scheduler keeps the desired count, replaces tasks that
//! die, rolls deployments within the min/max bounds, trips the circuit breaker, moves tasks off
//! draining instances and follows DAEMON placement. The simulated agent is stepped explicitly
//! by the test (`Agent::pass`): it reports every task placed on its instances as RUNNING (or as
//! failing to pull, for images named `missing…`) and every task to stop as STOPPED.

use crate::code;
use berth_testkit::aws_sdk_ecs::Client;
use berth_testkit::aws_sdk_ecs::types::{
    ContainerDefinition, ContainerInstanceStatus, ContainerStateChange, DeploymentCircuitBreaker,
    DeploymentConfiguration, DesiredStatus, SchedulingStrategy, Service, Tag, Task,
};
use std::collections::{BTreeMap, BTreeSet};

const CLUSTER: &str = "svc";

fn server() -> berth_testkit::TestServer {
    crate::start_with(berth_testkit::Options {
        args: vec![
            "--scheduler-interval-ms".into(),
            "3600000".into(),
            "--task-healthy-after".into(),
            "0".into(),
            "--agent-timeout".into(),
            "600".into(),
        ],
        ..Default::default()
    })
}

async fn instance(ecs: &Client, zone: &str) -> String {
    let capabilities = ["ecs.capability.container-health-check"];
    crate::simulated_instance(ecs, CLUSTER, zone, (4096, 4096), &capabilities).await
}

/// A cluster with `n` instances over three zones and task definition `web` revisions 1 and 2
/// (images `img:1`, `img:2`) and 3 (an image that cannot be pulled).
async fn setup(ecs: &Client, n: usize) -> Vec<String> {
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    let mut instances = Vec::new();
    for i in 0..n {
        instances.push(instance(ecs, ["us-east-1a", "us-east-1b", "us-east-1c"][i % 3]).await);
    }
    for image in ["img:1", "img:2", "missing:3"] {
        ecs.register_task_definition()
            .family("web")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("app")
                    .image(image)
                    .memory(128)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    instances
}

async fn tasks(ecs: &Client, desired: DesiredStatus) -> Vec<Task> {
    let arns = ecs
        .list_tasks()
        .cluster(CLUSTER)
        .desired_status(desired)
        .send()
        .await
        .unwrap()
        .task_arns()
        .to_vec();
    if arns.is_empty() {
        return Vec::new();
    }
    ecs.describe_tasks()
        .cluster(CLUSTER)
        .set_tasks(Some(arns))
        .send()
        .await
        .unwrap()
        .tasks()
        .to_vec()
}

/// One pass of a simulated agent for every instance of the cluster.
async fn agent_pass(ecs: &Client) {
    for t in tasks(ecs, DesiredStatus::Running).await {
        let status = t.last_status().unwrap_or_default();
        if status != "PROVISIONING" && status != "PENDING" {
            continue;
        }
        let image = t.containers()[0].image().unwrap_or_default().to_string();
        let (task_status, container_status, reason) = if image.starts_with("missing") {
            (
                "STOPPED",
                "STOPPED",
                Some(format!(
                    "CannotPullContainerError: pull access denied for {image}"
                )),
            )
        } else {
            ("RUNNING", "RUNNING", None)
        };
        ecs.submit_task_state_change()
            .cluster(CLUSTER)
            .task(t.task_arn().unwrap())
            .status(task_status)
            .set_reason(reason)
            .containers(
                ContainerStateChange::builder()
                    .container_name("app")
                    .status(container_status)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    for t in tasks(ecs, DesiredStatus::Stopped).await {
        if t.last_status() != Some("STOPPED") {
            exit(ecs, t.task_arn().unwrap(), 0).await;
        }
    }
}

/// The agent reports the task's container exited with `code` (and, as Docker shows a stopped
/// container, without port bindings).
async fn exit(ecs: &Client, task: &str, code: i32) {
    ecs.submit_task_state_change()
        .cluster(CLUSTER)
        .task(task)
        .status("STOPPED")
        .containers(
            ContainerStateChange::builder()
                .container_name("app")
                .status("STOPPED")
                .exit_code(code)
                .set_network_bindings(Some(Vec::new()))
                .build(),
        )
        .send()
        .await
        .unwrap();
}

async fn service(ecs: &Client, name: &str) -> Service {
    ecs.describe_services()
        .cluster(CLUSTER)
        .services(name)
        .send()
        .await
        .unwrap()
        .services()[0]
        .clone()
}

/// One pass of the service scheduler, now: the tests step it instead of waiting for its timer
/// (their server's timer is an hour).
async fn scheduler_pass(server: &berth_testkit::TestServer) {
    server.activate("service-scheduler").await;
}

/// What `aws ecs wait services-stable` checks: one deployment, running == desired.
fn stable(s: &Service) -> bool {
    s.deployments().len() == 1 && s.running_count() == s.desired_count()
}

/// Steps the simulated agent and the scheduler until `cond` holds for service `web`
/// (bounded).
async fn drive(
    server: &berth_testkit::TestServer,
    what: &str,
    cond: impl Fn(&Service) -> bool,
) -> Service {
    drive_service(server, "web", what, cond).await
}

/// Steps the simulated agent and the scheduler until `cond` holds for the service (bounded).
async fn drive_service(
    server: &berth_testkit::TestServer,
    name: &str,
    what: &str,
    cond: impl Fn(&Service) -> bool,
) -> Service {
    let ecs = &server.ecs();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        agent_pass(ecs).await;
        let s = service(ecs, name).await;
        if cond(&s) {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {s:#?}"
        );
        scheduler_pass(server).await;
    }
}

fn messages(s: &Service) -> Vec<String> {
    s.events()
        .iter()
        .map(|e| e.message().unwrap_or_default().to_string())
        .collect()
}

async fn create(ecs: &Client, name: &str, desired: i32, conf: DeploymentConfiguration) {
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name(name)
        .task_definition("web:1")
        .desired_count(desired)
        .deployment_configuration(conf)
        .send()
        .await
        .unwrap();
}

fn rolling(min: i32, max: i32, breaker: Option<bool>) -> DeploymentConfiguration {
    DeploymentConfiguration::builder()
        .minimum_healthy_percent(min)
        .maximum_percent(max)
        .set_deployment_circuit_breaker(breaker.map(|rollback| {
            DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(rollback)
                .build()
        }))
        .build()
}

fn revision(t: &Task) -> String {
    t.task_definition_arn()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn service_api_shapes_and_bad_input() {
    let server = server();
    let ecs = server.ecs();
    setup(&ecs, 1).await;
    let created = ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition("web:1")
        .desired_count(0)
        .tags(Tag::builder().key("team").value("a").build())
        .send()
        .await
        .unwrap()
        .service
        .unwrap();
    assert_eq!(created.status(), Some("ACTIVE"));
    assert_eq!(
        created.scheduling_strategy(),
        Some(&SchedulingStrategy::Replica)
    );
    assert!(created.service_arn().unwrap().ends_with(":service/svc/web"));
    let d = &created.deployments()[0];
    assert_eq!(d.status(), Some("PRIMARY"));
    assert!(d.id().unwrap().starts_with("ecs-svc/") && d.id().unwrap().len() == 27);
    assert_eq!(d.rollout_state().map(|r| r.as_str()), Some("IN_PROGRESS"));
    let conf = created.deployment_configuration().unwrap();
    assert_eq!(
        (conf.minimum_healthy_percent(), conf.maximum_percent()),
        (Some(100), Some(200))
    );
    assert_eq!(created.placement_strategy().len(), 2, "default spread");

    // Identical re-create returns it; a different one is refused.
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition("web:1")
        .desired_count(0)
        .send()
        .await
        .unwrap();
    let err = ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition("web:2")
        .desired_count(0)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    for bad in [
        ecs.create_service()
            .cluster(CLUSTER)
            .service_name("d")
            .task_definition("web:1")
            .scheduling_strategy(SchedulingStrategy::Daemon)
            .desired_count(1),
        ecs.create_service()
            .cluster(CLUSTER)
            .service_name("r")
            .task_definition("web:1"),
        ecs.create_service()
            .cluster(CLUSTER)
            .service_name("bad name")
            .task_definition("web:1")
            .desired_count(1),
        ecs.create_service()
            .cluster(CLUSTER)
            .service_name("x")
            .task_definition("nope:1")
            .desired_count(1),
    ] {
        let err = bad.send().await.unwrap_err();
        assert_eq!(code(&err), "InvalidParameterException");
    }
    let listed = ecs.list_services().cluster(CLUSTER).send().await.unwrap();
    assert_eq!(listed.service_arns().len(), 1);
    let d = ecs
        .describe_services()
        .cluster(CLUSTER)
        .services("web")
        .services("ghost")
        .include(berth_testkit::aws_sdk_ecs::types::ServiceField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(d.services()[0].tags().len(), 1);
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));
    let err = ecs
        .update_service()
        .cluster(CLUSTER)
        .service("ghost")
        .desired_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ServiceNotFoundException");
    ecs.tag_resource()
        .resource_arn(created.service_arn().unwrap())
        .tags(Tag::builder().key("env").value("prod").build())
        .send()
        .await
        .unwrap();
    let tags = ecs
        .list_tags_for_resource()
        .resource_arn(created.service_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 2);
    assert!(
        ecs.list_services_by_namespace()
            .namespace("ns")
            .send()
            .await
            .unwrap()
            .service_arns()
            .is_empty()
    );

    // A cluster with a service cannot go; a scaled-up service needs force to be deleted.
    let err = ecs
        .delete_cluster()
        .cluster(CLUSTER)
        .send()
        .await
        .unwrap_err();
    assert!(matches!(
        code(&err).as_str(),
        "ClusterContainsServicesException" | "ClusterContainsContainerInstancesException"
    ));
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .desired_count(1)
        .send()
        .await
        .unwrap();
    let err = ecs
        .delete_service()
        .cluster(CLUSTER)
        .service("web")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
    let gone = ecs
        .delete_service()
        .cluster(CLUSTER)
        .service("web")
        .force(true)
        .send()
        .await
        .unwrap()
        .service
        .unwrap();
    assert_eq!(gone.status(), Some("DRAINING"));
    let s = drive(&server, "INACTIVE", |s| s.status() == Some("INACTIVE")).await;
    assert_eq!(s.running_count(), 0);
    assert!(
        ecs.list_services()
            .cluster(CLUSTER)
            .send()
            .await
            .unwrap()
            .service_arns()
            .is_empty()
    );
    let err = ecs
        .update_service()
        .cluster(CLUSTER)
        .service("web")
        .desired_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ServiceNotActiveException");
}

#[tokio::test]
async fn service_reaches_steady_state_and_replaces_tasks_that_die() {
    let server = server();
    let ecs = server.ecs();
    setup(&ecs, 3).await;
    create(&ecs, "web", 3, rolling(100, 200, None)).await;
    let s = drive(&server, "steady state", |s| {
        stable(s)
            && messages(s)
                .iter()
                .any(|m| m.ends_with("has reached a steady state."))
    })
    .await;
    let d = &s.deployments()[0];
    assert_eq!(d.rollout_state().map(|r| r.as_str()), Some("COMPLETED"));
    assert!(
        messages(&s)
            .iter()
            .any(|m| m.starts_with("(service web) has started 3 tasks: (task "))
    );
    let running = tasks(&ecs, DesiredStatus::Running).await;
    assert_eq!(running.len(), 3);
    let zones: BTreeSet<&str> = running
        .iter()
        .map(|t| t.availability_zone().unwrap())
        .collect();
    assert_eq!(zones.len(), 3, "spread over the zones by default");
    assert!(
        running
            .iter()
            .all(|t| t.group() == Some("service:web") && t.started_by() == d.id())
    );

    // A task dies: the scheduler replaces it.
    let dead = running[0].task_arn().unwrap().to_string();
    exit(&ecs, &dead, 1).await;
    let s = drive(&server, "a replacement", |s| {
        stable(s)
            && messages(s)
                .iter()
                .any(|m| m.starts_with("(service web) has started 1 tasks:"))
    })
    .await;
    let now: Vec<String> = tasks(&ecs, DesiredStatus::Running)
        .await
        .iter()
        .map(|t| t.task_arn().unwrap().to_string())
        .collect();
    assert_eq!(now.len(), 3);
    assert!(!now.contains(&dead));
    assert!(
        messages(&s)
            .iter()
            .any(|m| m.starts_with("(service web) has started 1 tasks:"))
    );

    // Scale out and in without a new deployment.
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .desired_count(5)
        .send()
        .await
        .unwrap();
    let s = drive(&server, "5 running", |s| {
        stable(s) && s.running_count() == 5
    })
    .await;
    assert_eq!(s.deployments().len(), 1);
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .desired_count(2)
        .send()
        .await
        .unwrap();
    drive(&server, "2 running", |s| {
        stable(s) && s.running_count() == 2
    })
    .await;
    assert_eq!(tasks(&ecs, DesiredStatus::Running).await.len(), 2);
}

#[tokio::test]
async fn service_rolling_deployment_stays_within_bounds() {
    let server = server();
    let ecs = server.ecs();
    setup(&ecs, 3).await;
    create(&ecs, "web", 3, rolling(100, 200, None)).await;
    drive(&server, "steady", stable).await;
    let updated = ecs
        .update_service()
        .cluster(CLUSTER)
        .service("web")
        .task_definition("web:2")
        .send()
        .await
        .unwrap()
        .service
        .unwrap();
    let states: Vec<(&str, &str)> = updated
        .deployments()
        .iter()
        .map(|d| (d.status().unwrap(), d.task_definition().unwrap()))
        .collect();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].0, "PRIMARY");
    assert!(states[0].1.ends_with("web:2"));
    assert_eq!(states[1].0, "ACTIVE");
    // Step by step: never more than 6 (200%) tasks, never fewer than 3 (100%) running.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        agent_pass(&ecs).await;
        let live = tasks(&ecs, DesiredStatus::Running).await;
        assert!(live.len() <= 6, "beyond maximumPercent: {}", live.len());
        let all = [live.clone(), tasks(&ecs, DesiredStatus::Stopped).await].concat();
        let running = all
            .iter()
            .filter(|t| t.last_status() == Some("RUNNING"))
            .count();
        assert!(running >= 3, "below minimumHealthyPercent: {running}");
        let s = service(&ecs, "web").await;
        if stable(&s) && live.iter().all(|t| revision(t) == "2") {
            let d = &s.deployments()[0];
            assert_eq!(d.rollout_state().map(|r| r.as_str()), Some("COMPLETED"));
            assert!(
                messages(&s)
                    .iter()
                    .any(|m| m.contains("deployment completed."))
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "deployment: {s:#?}");
        scheduler_pass(&server).await;
    }
    // forceNewDeployment redeploys the same revision; a desired-count change does not.
    let s = ecs
        .update_service()
        .cluster(CLUSTER)
        .service("web")
        .force_new_deployment(true)
        .send()
        .await
        .unwrap()
        .service
        .unwrap();
    assert_eq!(s.deployments().len(), 2);
    drive(&server, "forced deployment done", |s| {
        stable(s) && s.deployments()[0].rollout_state().map(|r| r.as_str()) == Some("COMPLETED")
    })
    .await;

    // min 0 / max 100 on one task: stop first, then start (the guide's downtime case).
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .desired_count(1)
        .deployment_configuration(rolling(0, 100, None))
        .send()
        .await
        .unwrap();
    drive(&server, "one task", |s| stable(s) && s.running_count() == 1).await;
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .task_definition("web:1")
        .send()
        .await
        .unwrap();
    drive(&server, "back on web:1", |s| {
        stable(s) && s.task_definition().unwrap().ends_with("web:1")
    })
    .await;
    // 100/100 cannot move: the scheduler says so.
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .task_definition("web:2")
        .deployment_configuration(rolling(100, 100, None))
        .send()
        .await
        .unwrap();
    drive(&server, "the stuck event", |s| {
        messages(s)
            .iter()
            .any(|m| m.contains("was unable to stop or start tasks during a deployment"))
    })
    .await;
}

#[tokio::test]
async fn service_circuit_breaker_with_and_without_rollback() {
    let server = server();
    let ecs = server.ecs();
    setup(&ecs, 3).await;
    create(&ecs, "web", 2, rolling(100, 200, Some(true))).await;
    drive(&server, "steady", stable).await;
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .task_definition("web:3")
        .send()
        .await
        .unwrap();
    // Step by step: two web:1 tasks keep serving all along, through the failure and the
    // rollback (a new deployment of web:1 that replaces them within the bounds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        agent_pass(&ecs).await;
        let serving = tasks(&ecs, DesiredStatus::Running)
            .await
            .into_iter()
            .chain(tasks(&ecs, DesiredStatus::Stopped).await)
            .filter(|t| t.last_status() == Some("RUNNING") && revision(t) == "1")
            .count();
        assert!(serving >= 2, "old tasks stopped serving: {serving}");
        let s = service(&ecs, "web").await;
        let rolled_back = messages(&s)
            .iter()
            .any(|m| m.contains("rolling back to deployment"));
        if rolled_back && stable(&s) && s.task_definition().unwrap().ends_with("web:1") {
            assert!(
                messages(&s)
                    .iter()
                    .any(|m| m.contains("deployment failed: tasks failed to start."))
            );
            assert_eq!(
                s.deployments()[0].rollout_state().map(|r| r.as_str()),
                Some("COMPLETED")
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "rollback: {s:#?}");
        scheduler_pass(&server).await;
    }

    // Without rollback the failed deployment stays PRIMARY and FAILED; old tasks stay.
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .task_definition("web:3")
        .deployment_configuration(rolling(100, 200, Some(false)))
        .send()
        .await
        .unwrap();
    let s = drive(&server, "failed deployment", |s| {
        s.deployments()[0].rollout_state().map(|r| r.as_str()) == Some("FAILED")
    })
    .await;
    let primary = &s.deployments()[0];
    assert_eq!(
        primary.rollout_state_reason(),
        Some("ECS deployment circuit breaker: tasks failed to start.")
    );
    assert!(primary.failed_tasks() >= 3);
    assert_eq!(
        s.deployments().len(),
        2,
        "the old deployment keeps its tasks"
    );
    let running: Vec<Task> = tasks(&ecs, DesiredStatus::Running).await;
    assert_eq!(running.len(), 2);
    assert!(running.iter().all(|t| revision(t) == "1"));
}

#[tokio::test]
async fn service_tasks_leave_draining_and_lost_instances_and_daemons_follow_instances() {
    let server = server();
    let ecs = server.ecs();
    let instances = setup(&ecs, 3).await;
    create(&ecs, "web", 3, rolling(50, 200, None)).await;
    drive(&server, "steady", stable).await;
    // A standalone task on the instance about to drain is left alone.
    let standalone = ecs
        .start_task()
        .cluster(CLUSTER)
        .task_definition("web:1")
        .container_instances(&instances[0])
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .task_arn()
        .unwrap()
        .to_string();
    agent_pass(&ecs).await;
    ecs.update_container_instances_state()
        .cluster(CLUSTER)
        .container_instances(&instances[0])
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    let on_drained = |ts: &[Task]| {
        ts.iter()
            .filter(|t| {
                t.group() == Some("service:web")
                    && t.container_instance_arn() == Some(instances[0].as_str())
            })
            .count()
    };
    drive(&server, "tasks off the draining instance", stable).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while on_drained(&tasks(&ecs, DesiredStatus::Running).await) > 0 {
        agent_pass(&ecs).await;
        assert!(std::time::Instant::now() < deadline, "drain");
        scheduler_pass(&server).await;
    }
    let s = drive(&server, "stable after drain", stable).await;
    assert_eq!(s.running_count(), 3);
    let stopped = tasks(&ecs, DesiredStatus::Stopped).await;
    assert!(stopped.iter().any(|t| t.stop_code().map(|c| c.as_str())
        == Some("ServiceSchedulerInitiated")
        && t.stopped_reason() == Some("Container instance is draining")));
    let live = tasks(&ecs, DesiredStatus::Running).await;
    assert!(
        live.iter()
            .any(|t| t.task_arn() == Some(standalone.as_str())),
        "the standalone task is not touched"
    );

    // Instance loss: a forced deregistration stops its tasks; they come back elsewhere.
    let victim = live
        .iter()
        .find(|t| t.group() == Some("service:web"))
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_string();
    ecs.deregister_container_instance()
        .cluster(CLUSTER)
        .container_instance(&victim)
        .force(true)
        .send()
        .await
        .unwrap();
    drive(&server, "replacements after instance loss", |s| {
        stable(s) && s.running_count() == 3
    })
    .await;
    let live = tasks(&ecs, DesiredStatus::Running).await;
    assert!(
        live.iter()
            .filter(|t| t.group() == Some("service:web"))
            .all(|t| t.container_instance_arn() != Some(victim.as_str()))
    );

    // DAEMON: one task per ACTIVE instance, following instances that join and drain.
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("agent")
        .task_definition("web:1")
        .scheduling_strategy(SchedulingStrategy::Daemon)
        .send()
        .await
        .unwrap();
    let active = |n: i32| move |s: &Service| stable(s) && s.desired_count() == n;
    drive_service(
        &server,
        "agent",
        "one daemon per active instance",
        active(1),
    )
    .await;
    let joined = instance(&ecs, "us-east-1c").await;
    drive_service(&server, "agent", "a daemon on the new instance", active(2)).await;
    let per_instance: BTreeMap<String, usize> = tasks(&ecs, DesiredStatus::Running)
        .await
        .iter()
        .filter(|t| t.group() == Some("service:agent"))
        .fold(BTreeMap::new(), |mut m, t| {
            *m.entry(t.container_instance_arn().unwrap().to_string())
                .or_default() += 1;
            m
        });
    assert_eq!(per_instance.len(), 2);
    assert!(per_instance.values().all(|n| *n == 1));
    assert!(per_instance.contains_key(&joined));
    ecs.update_container_instances_state()
        .cluster(CLUSTER)
        .container_instances(&joined)
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    drive_service(
        &server,
        "agent",
        "the daemon leaves the drained instance",
        active(1),
    )
    .await;
}

/// Reports a container's health as Berth's agent does (an extension member of the
/// container changes, so a raw signed request).
async fn report_health(server: &berth_testkit::TestServer, task: &str, health: &str) {
    let body = serde_json::json!({
        "cluster": CLUSTER,
        "task": task,
        "containers": [{"containerName": "app", "healthStatus": health}],
    });
    let r = berth_testkit::ecs_request(
        &server.endpoint,
        &berth_testkit::Signing::root("ecs"),
        "SubmitTaskStateChange",
        &body.to_string(),
    )
    .send()
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn service_replaces_unhealthy_tasks_and_throttles_failing_launches() {
    use berth_testkit::aws_sdk_ecs::types::HealthCheck;
    let server = server();
    let ecs = server.ecs();
    setup(&ecs, 3).await;
    ecs.register_task_definition()
        .family("checked")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("img:1")
                .memory(128)
                .health_check(
                    HealthCheck::builder()
                        .command("CMD-SHELL")
                        .command("true")
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition("checked")
        .desired_count(2)
        .health_check_grace_period_seconds(1)
        .send()
        .await
        .unwrap();
    // Healthy only once the container health check says so.
    let sick = std::sync::Mutex::new(None::<String>);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let pass = || async {
        agent_pass(&ecs).await;
        for t in tasks(&ecs, DesiredStatus::Running).await {
            let arn = t.task_arn().unwrap().to_string();
            if t.last_status() == Some("RUNNING") {
                let health = if sick.lock().unwrap().as_deref() == Some(arn.as_str()) {
                    "UNHEALTHY"
                } else {
                    "HEALTHY"
                };
                report_health(&server, &arn, health).await;
            }
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "timed out: {:#?} {:#?}",
                service(&ecs, "web").await,
                tasks(&ecs, DesiredStatus::Running).await
            );
        }
        scheduler_pass(&server).await;
    };
    loop {
        pass().await;
        let s = service(&ecs, "web").await;
        if stable(&s) && messages(&s).iter().any(|m| m.contains("steady state")) {
            break;
        }
    }
    let victim = tasks(&ecs, DesiredStatus::Running).await[0]
        .task_arn()
        .unwrap()
        .to_string();
    *sick.lock().unwrap() = Some(victim.clone());
    loop {
        pass().await;
        let stopped = tasks(&ecs, DesiredStatus::Stopped).await;
        let replaced = stopped.iter().any(|t| {
            t.task_arn() == Some(victim.as_str())
                && t.stopped_reason() == Some("Task failed container health checks")
        });
        if replaced && stable(&service(&ecs, "web").await) {
            break;
        }
    }
    assert_eq!(tasks(&ecs, DesiredStatus::Running).await.len(), 2);

    // A service whose tasks never start is throttled (no circuit breaker here).
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("bad")
        .task_definition("web:3")
        .desired_count(1)
        .send()
        .await
        .unwrap();
    let s = drive_service(&server, "bad", "the throttle event", |s| {
        messages(s)
            .iter()
            .any(|m| m == "(service bad) is unable to consistently start tasks successfully.")
    })
    .await;
    assert_eq!(s.deployments()[0].failed_tasks(), 3);
    assert_eq!(
        s.deployments()[0].rollout_state().map(|r| r.as_str()),
        Some("IN_PROGRESS"),
        "without a circuit breaker the deployment does not fail"
    );
    // Held back: the next passes launch nothing (the back-off is 10 s after 3 failures).
    for _ in 0..5 {
        agent_pass(&ecs).await;
        scheduler_pass(&server).await;
    }
    let s = service(&ecs, "bad").await;
    assert_eq!(s.deployments()[0].failed_tasks(), 3);
    assert_eq!(s.pending_count() + s.running_count(), 0);
}

#[tokio::test]
async fn service_and_run_task_tags_propagate_and_managed_tags_are_added() {
    use berth_testkit::aws_sdk_ecs::types::{PropagateTags, TaskField};
    let server = server();
    let ecs = server.ecs();
    setup(&ecs, 1).await;
    ecs.tag_resource()
        .resource_arn(
            ecs.describe_task_definition()
                .task_definition("web:1")
                .send()
                .await
                .unwrap()
                .task_definition()
                .unwrap()
                .task_definition_arn()
                .unwrap(),
        )
        .tags(Tag::builder().key("from").value("definition").build())
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition("web:1")
        .desired_count(1)
        .tags(Tag::builder().key("from").value("service").build())
        .propagate_tags(PropagateTags::Service)
        .enable_ecs_managed_tags(true)
        .send()
        .await
        .unwrap();
    drive(&server, "steady", stable).await;
    let standalone = ecs
        .run_task()
        .cluster(CLUSTER)
        .task_definition("web:1")
        .propagate_tags(PropagateTags::TaskDefinition)
        .enable_ecs_managed_tags(true)
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .task_arn()
        .unwrap()
        .to_string();
    let arns: Vec<String> = tasks(&ecs, DesiredStatus::Running)
        .await
        .iter()
        .map(|t| t.task_arn().unwrap().to_string())
        .collect();
    let described = ecs
        .describe_tasks()
        .cluster(CLUSTER)
        .set_tasks(Some(arns))
        .include(TaskField::Tags)
        .send()
        .await
        .unwrap();
    for t in described.tasks() {
        let tags: BTreeMap<&str, &str> = t
            .tags()
            .iter()
            .map(|x| (x.key().unwrap(), x.value().unwrap()))
            .collect();
        assert_eq!(tags.get("aws:ecs:clusterName"), Some(&CLUSTER));
        if t.task_arn() == Some(standalone.as_str()) {
            assert_eq!(tags.get("from"), Some(&"definition"));
            assert!(!tags.contains_key("aws:ecs:serviceName"));
        } else {
            assert_eq!(tags.get("from"), Some(&"service"));
            assert_eq!(tags.get("aws:ecs:serviceName"), Some(&"web"));
        }
    }
    let err = ecs
        .run_task()
        .cluster(CLUSTER)
        .task_definition("web:1")
        .propagate_tags(PropagateTags::Service)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidParameterException");
}

/// A service behind a load balancer, with simulated agents whose "containers" are in-test
/// HTTP backends: tasks are registered as they run, traffic reaches them, and a rolling
/// deployment drains old targets before stopping their tasks — with zero failed requests.
#[tokio::test]
async fn service_behind_a_load_balancer_rolls_with_zero_failed_requests() {
    use berth_testkit::aws_sdk_ecs::types::{LoadBalancer, NetworkBinding, PortMapping};
    use berth_testkit::aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ProtocolEnum, TargetGroupAttribute, TargetHealthStateEnum,
    };
    use std::sync::atomic::{AtomicUsize, Ordering};
    let server = server();
    let ecs = server.ecs();
    let elb = server.elbv2();
    setup(&ecs, 2).await;
    for image in ["web:a", "web:b"] {
        ecs.register_task_definition()
            .family("lbweb")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("app")
                    .image(image)
                    .memory(64)
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
    }
    let tg = elb
        .create_target_group()
        .name("lbweb")
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id("vpc-1")
        .health_check_interval_seconds(5)
        .health_check_timeout_seconds(2)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    elb.modify_target_group_attributes()
        .target_group_arn(&tg)
        .attributes(
            TargetGroupAttribute::builder()
                .key("deregistration_delay.timeout_seconds")
                .value("1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let lb = elb
        .create_load_balancer()
        .name("front")
        .send()
        .await
        .unwrap()
        .load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    let port = crate::elbv2::free_port();
    elb.create_listener()
        .load_balancer_arn(&lb)
        .protocol(ProtocolEnum::Http)
        .port(port)
        .default_actions(
            Action::builder()
                .r#type(ActionTypeEnum::Forward)
                .target_group_arn(&tg)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition("lbweb:1")
        .desired_count(2)
        .load_balancers(
            LoadBalancer::builder()
                .target_group_arn(&tg)
                .container_name("app")
                .container_port(80)
                .build(),
        )
        .send()
        .await
        .unwrap();

    // The simulated agent: a backend per running task, gone when the task stops.
    let backends: std::sync::Mutex<BTreeMap<String, crate::elbv2::Backend>> = Default::default();
    let agent = || async {
        for t in tasks(&ecs, DesiredStatus::Running).await {
            if t.last_status() != Some("PROVISIONING") {
                continue;
            }
            let arn = t.task_arn().unwrap().to_string();
            let image = t.containers()[0].image().unwrap().to_string();
            let b = crate::elbv2::backend(&image).await;
            let host_port = b.port as i32;
            backends.lock().unwrap().insert(arn.clone(), b);
            ecs.submit_task_state_change()
                .cluster(CLUSTER)
                .task(&arn)
                .status("RUNNING")
                .containers(
                    ContainerStateChange::builder()
                        .container_name("app")
                        .status("RUNNING")
                        .network_bindings(
                            NetworkBinding::builder()
                                .bind_ip("0.0.0.0")
                                .container_port(80)
                                .host_port(host_port)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        for t in tasks(&ecs, DesiredStatus::Stopped).await {
            if t.last_status() != Some("STOPPED") {
                backends.lock().unwrap().remove(t.task_arn().unwrap());
                exit(&ecs, t.task_arn().unwrap(), 0).await;
            }
        }
    };
    let url = format!("http://127.0.0.1:{port}/");
    let (served, failed) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let request = || async {
        match reqwest::get(&url).await {
            Ok(r) if r.status() == 200 => {
                served.fetch_add(1, Ordering::Relaxed);
                r.text().await.unwrap()
            }
            other => {
                failed.fetch_add(1, Ordering::Relaxed);
                format!("{other:?}")
            }
        }
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    loop {
        agent().await;
        let s = service(&ecs, "web").await;
        let h = elb
            .describe_target_health()
            .target_group_arn(&tg)
            .send()
            .await
            .unwrap();
        let healthy = h
            .target_health_descriptions()
            .iter()
            .filter(|d| d.target_health().unwrap().state() == Some(&TargetHealthStateEnum::Healthy))
            .count();
        if stable(&s) && healthy == 2 && messages(&s).iter().any(|m| m.contains("steady state")) {
            assert!(
                messages(&s)
                    .iter()
                    .any(|m| m.contains("registered 1 targets in (target-group")
                        || m.contains("registered 2 targets in (target-group"))
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no steady state: {s:#?} {h:#?}"
        );
        scheduler_pass(&server).await;
    }
    for _ in 0..20 {
        assert_eq!(request().await, "web:a");
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0);

    // A rolling deployment while requests keep coming: none fails.
    ecs.update_service()
        .cluster(CLUSTER)
        .service("web")
        .task_definition("lbweb:2")
        .send()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        agent().await;
        for _ in 0..5 {
            request().await;
        }
        let s = service(&ecs, "web").await;
        let done = stable(&s)
            && s.deployments()[0].rollout_state().map(|r| r.as_str()) == Some("COMPLETED");
        if done && request().await == "web:b" && request().await == "web:b" {
            assert!(
                messages(&s)
                    .iter()
                    .any(|m| m.contains("has begun draining connections on"))
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "deployment: {s:#?}");
        scheduler_pass(&server).await;
    }
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests during the deployment"
    );
    assert!(served.load(Ordering::Relaxed) > 20);

    // A task whose target fails its health checks (past the grace period) is replaced.
    let victim = tasks(&ecs, DesiredStatus::Running).await[0]
        .task_arn()
        .unwrap()
        .to_string();
    backends.lock().unwrap()[&victim]
        .healthy
        .store(false, Ordering::Relaxed);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        agent().await;
        let stopped = tasks(&ecs, DesiredStatus::Stopped).await;
        let replaced = stopped.iter().any(|t| {
            t.task_arn() == Some(victim.as_str())
                && t.stopped_reason().is_some_and(|r| {
                    r.starts_with("Task failed ELB health checks in (target-group ")
                })
        });
        if replaced && stable(&service(&ecs, "web").await) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the unhealthy task was not replaced"
        );
        scheduler_pass(&server).await;
    }
}

/// However a service task ends — its container killed, its essential container exiting, its
/// agent lost, or stopped by the user — its targets leave every target group it was
/// registered in, even though its stopped containers no longer show the host ports (another
/// container can later take such a port and must not get this service's traffic).
#[tokio::test]
async fn service_task_targets_are_deregistered_however_the_task_stops() {
    use berth_testkit::aws_sdk_ecs::types::{LoadBalancer, NetworkBinding, PortMapping};
    use berth_testkit::aws_sdk_elasticloadbalancingv2::types::{
        Action, ActionTypeEnum, ProtocolEnum, TargetGroupAttribute,
    };
    let server = crate::start_with(berth_testkit::Options {
        args: [
            "--scheduler-interval-ms",
            "3600000",
            "--agent-timeout",
            "2",
            "--agent-lost-timeout",
            "3",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    });
    let ecs = server.ecs();
    let elb = server.elbv2();
    setup(&ecs, 3).await;
    ecs.register_task_definition()
        .family("lbweb")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("web:a")
                .memory(64)
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
    let lb = elb
        .create_load_balancer()
        .name("front")
        .send()
        .await
        .unwrap()
        .load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string();
    // Two target groups, both fed by the service: a task leaves both.
    let mut groups = Vec::new();
    for name in ["one", "two"] {
        let tg = elb
            .create_target_group()
            .name(name)
            .protocol(ProtocolEnum::Http)
            .port(80)
            .vpc_id("vpc-1")
            .health_check_interval_seconds(5)
            .health_check_timeout_seconds(2)
            .send()
            .await
            .unwrap()
            .target_groups()[0]
            .target_group_arn()
            .unwrap()
            .to_string();
        elb.modify_target_group_attributes()
            .target_group_arn(&tg)
            .attributes(
                TargetGroupAttribute::builder()
                    .key("deregistration_delay.timeout_seconds")
                    .value("0")
                    .build(),
            )
            .send()
            .await
            .unwrap();
        elb.create_listener()
            .load_balancer_arn(&lb)
            .protocol(ProtocolEnum::Http)
            .port(crate::elbv2::free_port())
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(&tg)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        groups.push(tg);
    }
    let mut create = ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name("web")
        .task_definition("lbweb")
        .desired_count(3);
    for tg in &groups {
        create = create.load_balancers(
            LoadBalancer::builder()
                .target_group_arn(tg)
                .container_name("app")
                .container_port(80)
                .build(),
        );
    }
    create.send().await.unwrap();

    // The simulated agents: a backend per running task; a stopped task is reported as a
    // stopped container shows — without port bindings. Instances heartbeat unless lost.
    // (Stopped tasks' backends are kept, so no new task gets their ports.)
    let backends: std::sync::Mutex<BTreeMap<String, crate::elbv2::Backend>> = Default::default();
    let lost: std::sync::Mutex<Option<String>> = Default::default();
    let instances = ecs
        .list_container_instances()
        .cluster(CLUSTER)
        .send()
        .await
        .unwrap()
        .container_instance_arns()
        .to_vec();
    let agent = || async {
        for i in &instances {
            if lost.lock().unwrap().as_deref() != Some(i.as_str()) {
                heartbeat(&server, i).await;
            }
        }
        for t in tasks(&ecs, DesiredStatus::Running).await {
            if t.last_status() != Some("PROVISIONING") {
                continue;
            }
            let arn = t.task_arn().unwrap().to_string();
            let b = crate::elbv2::backend("web").await;
            let host_port = b.port as i32;
            backends.lock().unwrap().insert(arn.clone(), b);
            ecs.submit_task_state_change()
                .cluster(CLUSTER)
                .task(&arn)
                .status("RUNNING")
                .containers(
                    ContainerStateChange::builder()
                        .container_name("app")
                        .status("RUNNING")
                        .network_bindings(
                            NetworkBinding::builder()
                                .bind_ip("0.0.0.0")
                                .container_port(80)
                                .host_port(host_port)
                                .build(),
                        )
                        .build(),
                )
                .send()
                .await
                .unwrap();
        }
        for t in tasks(&ecs, DesiredStatus::Stopped).await {
            if t.last_status() != Some("STOPPED")
                && lost.lock().unwrap().as_deref() != t.container_instance_arn()
            {
                exit(&ecs, t.task_arn().unwrap(), 0).await;
            }
        }
    };
    // The host ports registered in each group.
    let registered = || async {
        let mut all = Vec::new();
        for tg in &groups {
            let h = elb
                .describe_target_health()
                .target_group_arn(tg)
                .send()
                .await
                .unwrap();
            let ports: BTreeSet<i32> = h
                .target_health_descriptions()
                .iter()
                .filter_map(|d| d.target()?.port())
                .collect();
            all.push(ports);
        }
        all
    };
    let host_port = |t: &Task| t.containers()[0].network_bindings()[0].host_port().unwrap();
    // Until the service runs 3 tasks and every group holds exactly their ports.
    let settle = |what: &'static str| {
        let (ecs, agent, registered, server) = (&ecs, &agent, &registered, &server);
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
            loop {
                agent().await;
                let live: Vec<Task> = tasks(ecs, DesiredStatus::Running)
                    .await
                    .into_iter()
                    .filter(|t| t.last_status() == Some("RUNNING"))
                    .collect();
                let ports: BTreeSet<i32> = live.iter().map(host_port).collect();
                let groups_now = registered().await;
                if live.len() == 3 && groups_now.iter().all(|g| *g == ports) {
                    return live;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what}: tasks on {ports:?}, targets {groups_now:?}"
                );
                scheduler_pass(server).await;
            }
        }
    };
    let gone = |port: i32| {
        let registered = &registered;
        async move {
            let groups_now = registered().await;
            assert!(
                groups_now.iter().all(|g| !g.contains(&port)),
                "port {port} still registered: {groups_now:?}"
            );
        }
    };

    // Killed (exit 137) and exited on its own (exit 0): reported STOPPED without bindings.
    for code in [137, 0] {
        let live = settle("steady").await;
        let victim = &live[0];
        exit(&ecs, victim.task_arn().unwrap(), code).await;
        let port = host_port(victim);
        settle("replaced").await;
        gone(port).await;
    }
    // Stopped by the user: the agent reports it stopped before any scheduler pass sees it.
    let live = settle("steady").await;
    let victim = &live[0];
    ecs.stop_task()
        .cluster(CLUSTER)
        .task(victim.task_arn().unwrap())
        .send()
        .await
        .unwrap();
    exit(&ecs, victim.task_arn().unwrap(), 0).await;
    let port = host_port(victim);
    settle("replaced after StopTask").await;
    gone(port).await;
    // Its agent lost: the instance's tasks are stopped by the control plane.
    let live = settle("steady").await;
    let instance = live[0].container_instance_arn().unwrap().to_string();
    let on_instance: Vec<&Task> = live
        .iter()
        .filter(|t| t.container_instance_arn() == Some(instance.as_str()))
        .collect();
    let ports: Vec<i32> = on_instance.iter().map(|t| host_port(t)).collect();
    let arns: BTreeSet<&str> = on_instance.iter().filter_map(|t| t.task_arn()).collect();
    *lost.lock().unwrap() = Some(instance.clone());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        agent().await;
        let stopped = tasks(&ecs, DesiredStatus::Stopped).await;
        let on_lost = stopped
            .iter()
            .filter(|t| t.task_arn().is_some_and(|a| arns.contains(a)))
            .filter(|t| t.last_status() == Some("STOPPED"))
            .count();
        if on_lost == arns.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the agent was not lost"
        );
        server.activate("instance-liveness").await;
    }
    settle("replaced after the agent was lost").await;
    for port in ports {
        gone(port).await;
    }
}

/// A simulated agent's check-in.
async fn heartbeat(server: &berth_testkit::TestServer, instance: &str) {
    let body = serde_json::json!({"cluster": CLUSTER, "containerInstance": instance});
    let r = berth_testkit::signed(
        &berth_testkit::Signing::root("ecs"),
        "POST",
        &format!("{}/agent/v1/heartbeat", server.endpoint),
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
    .send()
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}
