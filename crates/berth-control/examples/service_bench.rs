//! Service scheduler benchmark: a REPLICA service on simulated instances, in-process over a
//! durable store (no HTTP, no Docker). Simulated agents report at once; only the scheduler's
//! passes are timed. Prints:
//! - create → steady state: tasks scheduled per second of scheduler time;
//! - a full rolling deployment (min 100%, max 200%): scheduler time;
//! - the reconcile pass of the unchanged service (median of 50).
//!
//! Run with `scripts/bench-services.sh [INSTANCES] [TASKS]`.

use berth_control::ecs::{
    ContainerReport, CreateCluster, CreateService, DeploymentConfiguration, Ecs, ListTasks,
    RegisterInstance, RegisterTaskDefinition, ServiceScheduler, TaskReport, UpdateService,
};
use berth_control::elb::Elb;
use berth_control::paging::{PageRequest, Pager};
use berth_store::Store;
use berth_types::ecs::{ClusterName, InstanceAttribute, InstanceResource, TaskStatus};
use berth_types::{AccountId, Principal, Region, Scope};
use serde_json::json;
use std::time::{Duration, Instant};

fn resource(name: &str, value: i64) -> InstanceResource {
    InstanceResource {
        name: name.into(),
        kind: "INTEGER".into(),
        integer: Some(value),
        long: None,
        double: None,
        string_set: Vec::new(),
    }
}

/// Every task id of the cluster with the given desired status (all pages).
async fn task_ids(ecs: &Ecs, cluster: &ClusterName, stopped: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = ecs
            .task_list(
                cluster,
                &ListTasks {
                    desired_stopped: stopped,
                    page: PageRequest {
                        next_token: token,
                        max_results: Some(100),
                    },
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        out.extend(
            page.items
                .iter()
                .map(|arn| arn.rsplit('/').next().unwrap().to_string()),
        );
        token = page.next_token;
        if token.is_none() {
            return out;
        }
    }
}

/// The simulated agents: every task to run is reported RUNNING, every task to stop STOPPED.
async fn agents(ecs: &Ecs, cluster: &ClusterName) {
    let mut reports = tokio::task::JoinSet::new();
    for (stopped, status) in [(false, TaskStatus::Running), (true, TaskStatus::Stopped)] {
        let ids = task_ids(ecs, cluster, stopped).await;
        let (tasks, _) = ecs.task_describe(cluster, &ids).unwrap();
        for t in tasks {
            if t.last_status == status {
                continue;
            }
            let (ecs, cluster) = (ecs.clone(), cluster.clone());
            let container = t.containers[0].name.clone();
            reports.spawn(async move {
                ecs.task_report(
                    &cluster,
                    &t.id,
                    TaskReport {
                        status: Some(status),
                        containers: vec![ContainerReport {
                            name: container,
                            status: Some(status.as_str().to_string()),
                            exit_code: stopped.then_some(0),
                            ..Default::default()
                        }],
                        ..Default::default()
                    },
                )
                .await
                .unwrap()
            });
        }
    }
    while reports.join_next().await.is_some() {}
}

/// Runs scheduler passes and agents until `done`; returns the scheduler's time.
async fn converge(
    ecs: &Ecs,
    scheduler: &ServiceScheduler,
    cluster: &ClusterName,
    done: impl Fn() -> bool,
) -> Duration {
    let mut spent = Duration::ZERO;
    for _ in 0..1000 {
        let t = Instant::now();
        scheduler.activate().await.unwrap();
        spent += t.elapsed();
        if done() {
            return spent;
        }
        agents(ecs, cluster).await;
    }
    panic!("the service did not converge");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
    let (instances, tasks) = (arg(1, 500), arg(2, 2000));
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("berth.db")).unwrap();
    let scope = Scope {
        account: AccountId::parse("000000000000").unwrap(),
        region: Region::parse("us-east-1").unwrap(),
    };
    let ecs = Ecs::new(
        scope.clone(),
        store.clone(),
        Pager::new([7; 32]),
        Default::default(),
    );
    let elb = Elb::new(scope, store, Pager::new([7; 32]), "127.0.0.1".into());
    let cluster = ClusterName::parse("bench").unwrap();
    ecs.cluster_create(CreateCluster {
        name: Some("bench".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    for i in 0..instances {
        ecs.instance_register(RegisterInstance {
            cluster: Some("bench".into()),
            ec2_instance_id: Some(format!("i-{i:08}")),
            total_resources: vec![resource("CPU", 4096), resource("MEMORY", 16384)],
            attributes: vec![InstanceAttribute {
                name: "ecs.availability-zone".into(),
                value: Some(format!("us-east-1{}", ["a", "b", "c"][i % 3])),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let principal = Principal {
        account: AccountId::parse("000000000000").unwrap(),
        region: berth_types::Region::parse("us-east-1").unwrap(),
        arn: "arn:aws:iam::000000000000:root".into(),
        access_key_id: "bench".into(),
        caller: berth_types::Caller::Root,
    };
    for image in ["web:1", "web:2"] {
        let spec =
            json!({"containerDefinitions": [{"name": "web", "image": image, "memory": 128}]});
        ecs.task_definition_register(
            &principal,
            RegisterTaskDefinition {
                family: "web".into(),
                tags: Vec::new(),
                spec: serde_json::from_value(spec.clone()).unwrap(),
            },
            0,
        )
        .await
        .unwrap();
    }
    let scheduler = ServiceScheduler::new(ecs.clone(), elb, Duration::ZERO);
    ecs.service_create(CreateService {
        cluster: Some("bench".into()),
        name: "web".into(),
        task_definition: Some("web:1".into()),
        desired_count: Some(tasks as i64),
        deployment_configuration: Some(DeploymentConfiguration {
            minimum_healthy_percent: Some(100),
            maximum_percent: Some(200),
            circuit_breaker: None,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let completed = || {
        let (found, _) = ecs.service_describe(&cluster, &["web".into()]).unwrap();
        let s = &found[0];
        s.deployments.len() == 1
            && s.deployments[0].rollout_state == "COMPLETED"
            && s.deployments[0].running_count == tasks as u32
    };
    let wall = Instant::now();
    let spent = converge(&ecs, &scheduler, &cluster, completed).await;
    println!(
        "create -> steady: {tasks} tasks on {instances} instances, scheduler time {:.3} s = {:.0} tasks/s (wall {:.1} s with the agents' reports)",
        spent.as_secs_f64(),
        tasks as f64 / spent.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );

    let mut passes = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        scheduler.activate().await.unwrap();
        passes.push(t.elapsed());
    }
    passes.sort();
    println!(
        "reconcile of the unchanged {tasks}-task service: median {:.2} ms, max {:.2} ms",
        passes[passes.len() / 2].as_secs_f64() * 1e3,
        passes[passes.len() - 1].as_secs_f64() * 1e3
    );

    ecs.service_update(
        &cluster,
        "web",
        UpdateService {
            task_definition: Some("web:2".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let wall = Instant::now();
    let spent = converge(&ecs, &scheduler, &cluster, completed).await;
    let (found, _) = ecs.service_describe(&cluster, &["web".into()]).unwrap();
    assert_eq!(found[0].revision, 2, "the deployment finished on web:2");
    println!(
        "rolling deployment (min 100%, max 200%) of {tasks} tasks: scheduler time {:.3} s (wall {:.1} s with the agents' reports)",
        spent.as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
}
