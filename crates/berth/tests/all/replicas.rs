//! Several servers on one PostgreSQL database: one leads the controllers; what one
//! acknowledges the other serves; an agent and a load balancer node given both endpoints
//! follow whichever answers;
//! when the leader is killed the other takes its lease within the TTL, and nothing
//! acknowledged is lost, no task duplicated. And a database restart under a server: 503s
//! meanwhile, nothing lost.

use crate::docker_e2e::{
    AgentProcess, cluster_and_images, instances, load_balancer, require_docker_engine,
};
use berth_testkit::{Deadline, TestServer, status_at};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The leader lease of these tests (the default is 10 s).
const LEASE_MS: u64 = 2_000;

fn replica(database: &str) -> TestServer {
    crate::start_with(berth_testkit::Options {
        args: [
            "--database",
            database,
            "--leader-lease-ms",
            &LEASE_MS.to_string(),
            "--scheduler-interval-ms",
            "200",
            "--agent-timeout",
            "6",
            "--task-healthy-after",
            "1",
            // The load balancer is a `berth lb` node of its own, given both servers.
            "--no-lb",
        ]
        .map(String::from)
        .to_vec(),
        ..Default::default()
    })
}

/// Waits (bounded) until the listener at `url` answers `page`.
async fn serves(url: &str, page: &str) {
    berth_testkit::until(
        Duration::from_secs(60),
        "the listener to serve the service",
        || async {
            match reqwest::get(url).await {
                Ok(r) => r.text().await.unwrap_or_default() == page,
                Err(_) => false,
            }
        },
    )
    .await;
}

/// The id of the server leading, as `endpoint`'s status shows it.
async fn leader(endpoint: &str) -> Option<String> {
    let s = status_at(endpoint).await;
    s["servers"]
        .as_array()?
        .iter()
        .find(|srv| srv["leader"] == true)
        .and_then(|srv| srv["id"].as_str().map(String::from))
}

fn server_id(server: &TestServer) -> String {
    std::fs::read_to_string(server.data_dir.join("server-id"))
        .unwrap()
        .trim()
        .to_string()
}

/// The service's tasks that are meant to run, as `ecs` lists them.
async fn running_tasks(ecs: &berth_testkit::aws_sdk_ecs::Client, service: &str) -> Vec<String> {
    ecs.list_tasks()
        .cluster("e2e")
        .service_name(service)
        .desired_status(berth_testkit::aws_sdk_ecs::types::DesiredStatus::Running)
        .send()
        .await
        .unwrap()
        .task_arns()
        .to_vec()
}

/// Sets the service's desired count.
async fn scale(ecs: &berth_testkit::aws_sdk_ecs::Client, service: &str, n: i32) {
    ecs.update_service()
        .cluster("e2e")
        .service(service)
        .desired_count(n)
        .send()
        .await
        .unwrap();
}

/// Waits (bounded) until the service has `n` RUNNING tasks and no others meant to run.
async fn wait_running(ecs: &berth_testkit::aws_sdk_ecs::Client, service: &str, n: usize) {
    let deadline = Deadline::after(Duration::from_secs(90));
    loop {
        let arns = running_tasks(ecs, service).await;
        let statuses: Vec<String> = if arns.is_empty() {
            Vec::new()
        } else {
            ecs.describe_tasks()
                .cluster("e2e")
                .set_tasks(Some(arns.clone()))
                .send()
                .await
                .unwrap()
                .tasks()
                .iter()
                .map(|t| format!("{:?} {:?}", t.last_status(), t.stopped_reason()))
                .collect()
        };
        if statuses.len() == n && statuses.iter().all(|s| s.starts_with("Some(\"RUNNING\")")) {
            return;
        }
        deadline
            .next(format_args!("{n} running tasks of {service}: {statuses:?}"))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_share_state_follow_one_leader_and_fail_over() {
    require_docker_engine();
    let database = crate::fresh_postgres_database("replicas");
    let mut a = replica(&database);
    let b = replica(&database);
    // One leader, and both servers see both servers.
    let (a_id, b_id) = (server_id(&a), server_id(&b));
    assert_eq!(leader(&b.endpoint).await.as_deref(), Some(a_id.as_str()));
    let servers = status_at(&b.endpoint).await["servers"].clone();
    assert_eq!(servers.as_array().unwrap().len(), 2, "{servers:#}");
    // The image is pushed through B (blobs live in each server's data directory until
    // they are on S3), the cluster and service made on A.
    let images = cluster_and_images(&b, "e2e/web", &[("1", "replica\n")]).await;
    let (ecs_a, ecs_b) = (a.ecs(), b.ecs());
    // An agent and a load balancer node given both endpoints, A first.
    let both = format!("{},{}", a.endpoint, b.endpoint);
    let state = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::spawn_at(&both, state.path(), &[]);
    let _lb = crate::LbNode::start(&both);
    let (tg, port) = load_balancer(&a, "web", &["--port", "80"]);
    let url = format!("http://127.0.0.1:{port}/");
    berth_testkit::until(Duration::from_secs(30), "the agent to register", || async {
        !instances(&ecs_b, "e2e").await.is_empty()
    })
    .await;
    let container = berth_testkit::aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("web")
        .image(&images[0])
        .memory(16)
        .port_mappings(
            berth_testkit::aws_sdk_ecs::types::PortMapping::builder()
                .container_port(8080)
                .host_port(0)
                .build(),
        )
        .build();
    ecs_a
        .register_task_definition()
        .family("web")
        .container_definitions(container)
        .send()
        .await
        .unwrap();
    ecs_a
        .create_service()
        .cluster("e2e")
        .service_name("web")
        .task_definition("web")
        .desired_count(2)
        .load_balancers(
            berth_testkit::aws_sdk_ecs::types::LoadBalancer::builder()
                .target_group_arn(&tg)
                .container_name("web")
                .container_port(8080)
                .build(),
        )
        .send()
        .await
        .unwrap();
    // B sees what A's scheduler started; scaled on B, A's scheduler starts one more.
    wait_running(&ecs_b, "web", 2).await;
    scale(&ecs_b, "web", 3).await;
    wait_running(&ecs_b, "web", 3).await;
    serves(&url, "replica\n").await;
    let before = running_tasks(&ecs_b, "web").await;

    // A stream of writes through B while the leader dies.
    let acked: Arc<Mutex<Vec<i32>>> = Arc::default();
    let writer = {
        let (ecs, acked) = (ecs_b.clone(), acked.clone());
        tokio::spawn(async move {
            for _ in 0..400 {
                let r = ecs
                    .register_task_definition()
                    .family("stream")
                    .container_definitions(crate::container())
                    .send()
                    .await;
                if let Ok(out) = r {
                    acked
                        .lock()
                        .unwrap()
                        .push(out.task_definition.unwrap().revision());
                }
            }
        })
    };
    berth_testkit::wait_for(Duration::from_secs(30), "writes before the kill", || {
        acked.lock().unwrap().len() >= 50
    })
    .await;
    a.kill9();
    let killed = Instant::now();
    let deadline = Deadline::after(Duration::from_millis(LEASE_MS + 10_000));
    while leader(&b.endpoint).await.as_deref() != Some(b_id.as_str()) {
        deadline.next("B to take the leader lease").await;
    }
    let took = killed.elapsed();
    eprintln!("leadership moved {took:?} after the leader's kill -9 (lease {LEASE_MS} ms)");
    assert!(
        took <= Duration::from_millis(LEASE_MS + 2_000),
        "leadership took {took:?} to move"
    );
    writer.await.unwrap();

    // Every acknowledged write is there.
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 50);
    for revision in &acked {
        ecs_b
            .describe_task_definition()
            .task_definition(format!("stream:{revision}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("acknowledged stream:{revision} is missing: {e:?}"));
    }
    // The service keeps its tasks, none duplicated; the agent now follows B: scaled to 4,
    // B's scheduler places one more task and the agent runs it.
    assert_eq!(running_tasks(&ecs_b, "web").await, before);
    scale(&ecs_b, "web", 4).await;
    wait_running(&ecs_b, "web", 4).await;
    // The load balancer node, now on B, still serves the service.
    serves(&url, "replica\n").await;
    let after = running_tasks(&ecs_b, "web").await;
    assert!(
        before.iter().all(|t| after.contains(t)),
        "{before:?} {after:?}"
    );
    // A restarted A follows B, and serves what B wrote.
    a.restart();
    assert_eq!(leader(&a.endpoint).await.as_deref(), Some(b_id.as_str()));
    assert_eq!(running_tasks(&a.ecs(), "web").await.len(), 4);
    scale(&ecs_b, "web", 0).await;
    wait_running(&ecs_b, "web", 0).await;
}

/// PostgreSQL restarted under a serving Berth: while it is down writes answer 503
/// `ServiceUnavailable` (which SDKs retry), and once it is back they succeed again on fresh
/// connections, with every write acknowledged before still there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_restart_answers_503_meanwhile_and_loses_nothing() {
    let pg = berth_testkit::PostgresServer::start();
    let admin = pg.url_of("postgres");
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute("CREATE DATABASE berth").unwrap();
    })
    .join()
    .unwrap();
    let server = crate::start_with(berth_testkit::Options {
        args: vec!["--database".into(), pg.url_of("berth")],
        ..Default::default()
    });
    let ecs = server.ecs();
    let mut acked = Vec::new();
    for _ in 0..20 {
        acked.push(crate::register(&ecs, "outage").await);
    }
    let register = || {
        berth_testkit::ecs_request(
            &server.endpoint,
            &berth_testkit::Signing::root("ecs"),
            "RegisterTaskDefinition",
            r#"{"family":"outage","containerDefinitions":[{"name":"a","image":"x","memory":32}]}"#,
        )
    };
    pg.pause();
    for _ in 0..3 {
        let r = register().send().await;
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(r.body.contains("ServiceUnavailable"), "{}", r.body);
    }
    pg.resume();
    let deadline = berth_testkit::Deadline::after(Duration::from_secs(30));
    loop {
        let r = register().send().await;
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        deadline.next("writes to succeed again").await;
    }
    acked.push(crate::register(&ecs, "outage").await);
    for revision in acked {
        ecs.describe_task_definition()
            .task_definition(format!("outage:{revision}"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("acknowledged outage:{revision} is missing: {e:?}"));
    }
}
