//! Services on the real agent and Docker, as a new user runs them: a rolling deployment started
//! the moment `services-stable` returns loses no request behind the load balancer (with
//! `instance` and `ip` target groups, and the default `--task-healthy-after`), and an agent
//! stops many SIGTERM-ignoring tasks at once while it stays connected.

use crate::docker_e2e::{
    AgentProcess, aws, cluster_and_images, load_balancer, require_docker_engine, services_stable,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A server as a user runs it: every setting at its default but a faster scheduler pass and
/// the agent timeout given.
fn server(extra: &[&str]) -> berth_testkit::TestServer {
    let mut args = vec!["--scheduler-interval-ms".to_string(), "200".to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    crate::start_with(berth_testkit::Options {
        args,
        ..Default::default()
    })
}

/// Requests the listener at `url` back to back until stopped: how many were 2xx, and what
/// the others were.
struct Traffic {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Traffic {
    fn start(url: String) -> Traffic {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let (s, o) = (stop.clone(), ok.clone());
        let task = tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut failures = Vec::new();
            while !s.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    other => failures.push(format!("{other:?}")),
                }
            }
            failures
        });
        Traffic { stop, ok, task }
    }

    async fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let failures = self.task.await.unwrap();
        (self.ok.load(Ordering::Relaxed), failures)
    }
}

/// The service's task ARNs.
fn task_arns(server: &berth_testkit::TestServer, service: &str) -> Vec<String> {
    aws(
        server,
        &[
            "ecs",
            "list-tasks",
            "--cluster",
            "e2e",
            "--service-name",
            service,
        ],
    )["taskArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// Creates a 3-task service (min 100 %, max 200 %) behind a listener, waits for
/// `services-stable`, then at once forces a new deployment while a client keeps requesting,
/// and waits until the deployment has replaced every task: no request may fail.
async fn deploy_right_after_stable(
    server: &berth_testkit::TestServer,
    name: &str,
    target_group: &[&str],
    service: &[&str],
) {
    let (tg, port) = load_balancer(server, name, target_group);
    let mut args = vec![
        "ecs",
        "create-service",
        "--cluster",
        "e2e",
        "--service-name",
        name,
        "--task-definition",
        name,
        "--desired-count",
        "3",
        "--deployment-configuration",
        "minimumHealthyPercent=100,maximumPercent=200",
    ];
    let lb = format!("targetGroupArn={tg},containerName=web,containerPort=8080");
    args.extend(["--load-balancers", &lb]);
    args.extend_from_slice(service);
    aws(server, &args);
    services_stable(server, name);
    let before = task_arns(server, name);
    let traffic = Traffic::start(format!("http://127.0.0.1:{port}/"));
    aws(
        server,
        &[
            "ecs",
            "update-service",
            "--cluster",
            "e2e",
            "--service",
            name,
            "--force-new-deployment",
        ],
    );
    let deadline = berth_testkit::Deadline::after(Duration::from_secs(180));
    loop {
        let s = &aws(
            server,
            &[
                "ecs",
                "describe-services",
                "--cluster",
                "e2e",
                "--services",
                name,
            ],
        )["services"][0];
        let now = task_arns(server, name);
        let done = s["deployments"].as_array().unwrap().len() == 1
            && s["deployments"][0]["rolloutState"] == "COMPLETED"
            && s["runningCount"] == 3
            && now.len() == 3
            && now.iter().all(|t| !before.contains(t));
        if done {
            break;
        }
        deadline
            .next(format_args!("the deployment to finish: {s:#}"))
            .await;
    }
    let (ok, failures) = traffic.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the deployment: {:?}",
        failures.len(),
        ok + failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(ok > 50, "only {ok} requests were made");
}

/// The rollout that dropped requests on a fresh machine: created, `services-stable`, and a
/// forced deployment at once. Old tasks serving traffic count toward the minimum (their
/// target health decides, not 40 s of RUNNING), so none is drained before its replacement is
/// healthy in the load balancer — with `instance` targets (bridge, dynamic host ports) and
/// with `ip` targets (awsvpc).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_deployment_right_after_services_stable_loses_no_request() {
    require_docker_engine();
    let server = server(&[]);
    let images = cluster_and_images(&server, "e2e/roll", &[("1", "roll\n")]).await;
    let state = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::start_registered(&server, state.path()).await;
    for (family, mode, mapping) in [
        (
            "bridged",
            "bridge",
            json!({"containerPort": 8080, "hostPort": 0}),
        ),
        ("vpc", "awsvpc", json!({"containerPort": 8080})),
    ] {
        let definitions = json!([{
            "name": "web", "image": images[0], "memory": 32, "stopTimeout": 2,
            "portMappings": [mapping],
        }]);
        aws(
            &server,
            &[
                "ecs",
                "register-task-definition",
                "--family",
                family,
                "--network-mode",
                mode,
                "--container-definitions",
                &definitions.to_string(),
            ],
        );
    }
    deploy_right_after_stable(&server, "bridged", &["--port", "80"], &[]).await;
    deploy_right_after_stable(
        &server,
        "vpc",
        &["--port", "8080", "--target-type", "ip"],
        &[
            "--network-configuration",
            "awsvpcConfiguration={subnets=[subnet-1]}",
        ],
    )
    .await;
}

/// Six tasks whose containers ignore SIGTERM (busybox httpd as PID 1), scaled to 0: the agent
/// stops them all at once, each after its own stopTimeout, so they are gone in about one
/// stopTimeout, and its instance stays connected throughout (its polls never wait behind the
/// engine) — with an agent timeout far below six serial stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_stops_a_scaled_in_service_in_parallel_and_stays_connected() {
    require_docker_engine();
    let server = server(&["--agent-timeout", "6", "--task-healthy-after", "1"]);
    let images = cluster_and_images(&server, "e2e/stubborn", &[("1", "stubborn\n")]).await;
    let state = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::start_registered(&server, state.path()).await;
    let definitions = json!([{"name": "web", "image": images[0], "memory": 16, "stopTimeout": 8}]);
    aws(
        &server,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "stubborn",
            "--container-definitions",
            &definitions.to_string(),
        ],
    );
    aws(
        &server,
        &[
            "ecs",
            "create-service",
            "--cluster",
            "e2e",
            "--service-name",
            "stubborn",
            "--task-definition",
            "stubborn",
            "--desired-count",
            "6",
        ],
    );
    services_stable(&server, "stubborn");
    let ecs = server.ecs();
    let instance = crate::docker_e2e::instances(&ecs, "e2e").await.remove(0);
    let began = Instant::now();
    aws(
        &server,
        &[
            "ecs",
            "update-service",
            "--cluster",
            "e2e",
            "--service",
            "stubborn",
            "--desired-count",
            "0",
        ],
    );
    let deadline = berth_testkit::Deadline::after(Duration::from_secs(60));
    loop {
        let connected = ecs
            .describe_container_instances()
            .cluster("e2e")
            .container_instances(&instance)
            .send()
            .await
            .unwrap()
            .container_instances()[0]
            .agent_connected();
        assert!(
            connected,
            "the instance disconnected after {:?}",
            began.elapsed()
        );
        let s = &aws(
            &server,
            &[
                "ecs",
                "describe-services",
                "--cluster",
                "e2e",
                "--services",
                "stubborn",
            ],
        )["services"][0];
        if s["runningCount"] == 0 && task_arns(&server, "stubborn").is_empty() {
            break;
        }
        deadline
            .next(format_args!("the tasks to stop: {s:#}"))
            .await;
    }
    let took = began.elapsed();
    // One stopTimeout (8 s) plus a scheduler pass and the reports; serially it would be 48 s.
    assert!(took < Duration::from_secs(20), "six stops took {took:?}");
    let stopped = aws(
        &server,
        &[
            "ecs",
            "list-tasks",
            "--cluster",
            "e2e",
            "--service-name",
            "stubborn",
            "--desired-status",
            "STOPPED",
        ],
    )["taskArns"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(stopped, 6);
}
