//! Several servers on one PostgreSQL database: one leads the controllers; what one
//! acknowledges the other serves; an agent and a load balancer node given both endpoints
//! follow whichever answers;
//! when the leader is killed the other takes its lease within the TTL, and nothing
//! acknowledged is lost, no task duplicated. And a database restart under a server: 503s
//! meanwhile, nothing lost. With blobs on S3 (SeaweedFS), what is pushed through one server
//! is pulled through the other, a chunked upload moves between them, and an S3 outage
//! answers 503 until S3 is back.

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
    // The image is pushed through B (whose data directory keeps its blobs: these servers
    // have no --blobs), the cluster and service made on A.
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

/// A server on `database` (if any) with its blobs under `blobs` on the S3 endpoint `s3`.
fn on_s3(database: Option<&str>, s3: &str, blobs: &str) -> TestServer {
    let mut args = vec!["--blobs".to_string(), blobs.to_string()];
    if let Some(db) = database {
        args.extend(["--database".to_string(), db.to_string()]);
    }
    crate::start_with(berth_testkit::Options {
        args,
        env: berth_testkit::s3_env(s3),
        ..Default::default()
    })
}

pub(crate) fn shared_seaweedfs() -> String {
    std::env::var("BERTH_TEST_S3_SEAWEEDFS").unwrap_or_else(|_| {
        panic!("BERTH_TEST_S3_SEAWEEDFS is not set: scripts/test.sh starts SeaweedFS for this test")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_on_postgres_and_s3_serve_each_others_pushes_and_uploads() {
    use crate::docker_e2e::{docker, import_busybox, run};
    use crate::registry::{Reg, digest};
    use reqwest::{Method, StatusCode};
    require_docker_engine();
    let database = crate::fresh_postgres_database("replica_blobs");
    let (s3, blobs) = (
        shared_seaweedfs(),
        format!("s3://berth-test/replica-blobs-{}", std::process::id()),
    );
    let a = on_s3(Some(&database), &s3, &blobs);
    let b = on_s3(Some(&database), &s3, &blobs);
    a.ecr()
        .create_repository()
        .repository_name("e2e/shared")
        .send()
        .await
        .unwrap();

    // `docker push` through A, `docker pull` through B (busybox's layer is over the inline
    // limit: an S3 object).
    let config = tempfile::tempdir().unwrap();
    let (via_a, via_b) = (
        format!("127.0.0.1:{}/e2e/shared:1", a.port),
        format!("127.0.0.1:{}/e2e/shared:1", b.port),
    );
    for server in [&a, &b] {
        let (user, password) = server.registry_login().await;
        let host = format!("127.0.0.1:{}", server.port);
        run(docker(config.path()).args(["login", "-u", &user, "-p", &password, &host]));
    }
    import_busybox(config.path(), &via_a, "pushed through A\n");
    run(docker(config.path()).args(["push", &via_a]));
    run(docker(config.path()).args(["rmi", &via_a]));
    run(docker(config.path()).args(["pull", &via_b]));
    let out = run(docker(config.path()).args([
        "run",
        "--rm",
        "--network",
        "none",
        &via_b,
        "cat",
        "/www/index.html",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pushed through A\n");
    run(docker(config.path()).args(["rmi", &via_b]));

    // A chunked upload begun on A, continued on B, checked on A and finished on B: 11 MiB, so
    // the first S3 part (8 MiB) is written by one server from bytes staged by both.
    let (reg_a, reg_b) = (Reg::login(&a).await, Reg::login(&b).await);
    let content: Vec<u8> = (0..11 << 20).map(|i: u32| (i % 251) as u8).collect();
    let d = digest(&content);
    let r = reg_a
        .req(Method::POST, "/v2/e2e/shared/blobs/uploads/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    let five = 5 << 20;
    for (reg, range) in [(&reg_a, 0..five), (&reg_b, five..2 * five)] {
        let r = reg
            .req(Method::PATCH, &location)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{}-{}", range.start, range.end - 1),
            )
            .body(content[range.clone()].to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "{}",
            r.text().await.unwrap()
        );
        assert_eq!(
            r.headers()["range"],
            format!("0-{}", range.end - 1).as_str()
        );
    }
    let r = reg_a.req(Method::GET, &location).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["range"], format!("0-{}", 2 * five - 1).as_str());
    // A chunk that does not continue the upload is refused wherever it lands.
    let r = reg_b
        .req(Method::PATCH, &location)
        .header("content-range", "0-9")
        .body(content[..10].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = reg_b
        .req(Method::PUT, &format!("{location}?digest={d}"))
        .body(content[2 * five..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let r = reg_a
        .req(Method::GET, &format!("/v2/e2e/shared/blobs/{d}"))
        .header("range", "bytes=100-8388707")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert!(r.bytes().await.unwrap() == content[100..8_388_708]);
    let r = reg_b
        .req(Method::GET, &format!("/v2/e2e/shared/blobs/{d}"))
        .send()
        .await
        .unwrap();
    assert!(r.bytes().await.unwrap() == content[..]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_answer_503_while_s3_is_down_and_succeed_once_it_is_back() {
    use crate::registry::{Reg, digest};
    use reqwest::{Method, StatusCode};
    let mut weed = berth_testkit::SeaweedServer::start();
    let server = on_s3(None, &weed.endpoint(), "s3://berth-test/outage");
    server
        .ecr()
        .create_repository()
        .repository_name("outage")
        .send()
        .await
        .unwrap();
    let blobs = status_at(&server.endpoint).await["blobs"].clone();
    assert!(
        blobs
            .as_str()
            .unwrap()
            .starts_with("s3://berth-test/outage"),
        "{blobs}"
    );
    let reg = Reg::login(&server).await;
    // Over the inline limit, so each goes to S3.
    let layer = |n: u8| vec![n; 300 * 1024];
    let before = reg.push_blob("outage", &layer(1)).await;

    weed.stop();
    let during = layer(2);
    let r = reg
        .req(
            Method::POST,
            &format!("/v2/outage/blobs/uploads/?digest={}", digest(&during)),
        )
        .body(during.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
    let r = reg
        .req(Method::GET, &format!("/v2/outage/blobs/{before}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // The refused push left nothing visible.
    let r = reg
        .req(
            Method::HEAD,
            &format!("/v2/outage/blobs/{}", digest(&during)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    weed.resume();
    let deadline = berth_testkit::Deadline::after(Duration::from_secs(60));
    while reg.try_push_blob("outage", &during).await.is_none() {
        deadline.next("a push to succeed once S3 is back").await;
    }
    for (d, content) in [(before, layer(1)), (digest(&during), during)] {
        let r = reg
            .req(Method::GET, &format!("/v2/outage/blobs/{d}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.bytes().await.unwrap() == content[..]);
    }
}

/// The registry GC of whichever server leads, racing pushes through both (blobs on S3): what
/// a push acknowledged keeps every blob, on both servers, through passes during and after the
/// pushes; and the blobs of a push whose manifest comes after the grace period are collected
/// first — then the manifest is refused (`MANIFEST_BLOB_UNKNOWN`), never accepted without them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_on_the_leader_never_takes_a_blob_an_acknowledged_push_uses() {
    use crate::registry::{Reg, digest};
    use reqwest::{Method, StatusCode};
    use std::sync::atomic::{AtomicBool, Ordering};
    let database = crate::fresh_postgres_database("replica_gc");
    let (s3, blobs) = (
        shared_seaweedfs(),
        format!("s3://berth-test/replica-gc-{}", std::process::id()),
    );
    let server = || {
        crate::start_with(berth_testkit::Options {
            args: [
                "--blobs",
                &blobs,
                "--database",
                &database,
                // A second's grace: anything a push left unreferenced is soon collectable.
                "--gc-grace",
                "1",
            ]
            .map(String::from)
            .to_vec(),
            env: berth_testkit::s3_env(&s3),
            ..Default::default()
        })
    };
    let (a, b) = (server(), server());
    a.ecr()
        .create_repository()
        .repository_name("gc/race")
        .send()
        .await
        .unwrap();
    let (reg_a, reg_b) = (Reg::login(&a).await, Reg::login(&b).await);
    let endpoints = [a.endpoint.clone(), b.endpoint.clone()];

    let stop = Arc::new(AtomicBool::new(false));
    let collector = tokio::spawn({
        let (stop, endpoints) = (stop.clone(), endpoints.clone());
        async move {
            let mut passes = 0;
            while !stop.load(Ordering::Relaxed) {
                for e in &endpoints {
                    berth_testkit::activate_at(e, "registry-gc").await;
                }
                passes += 1;
            }
            passes
        }
    });
    // Layers over the inline limit (S3 objects), each image its own, half through each server.
    let mut pushed = Vec::new();
    for i in 0..16u32 {
        let layer: Vec<u8> = (0..300u32 << 10).map(|j| ((j + i) % 253) as u8).collect();
        let small = format!("layer {i}").into_bytes();
        let reg = if i % 2 == 0 { &reg_a } else { &reg_b };
        let (manifest, d) = reg
            .push_image("gc/race", &format!("t{i}"), &[&layer, &small])
            .await;
        pushed.push((manifest, d, [digest(&layer), digest(&small)]));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(collector.await.unwrap() > 0);
    for e in &endpoints {
        berth_testkit::activate_at(e, "registry-gc").await;
    }
    for reg in [&reg_a, &reg_b] {
        for (manifest, d, layers) in &pushed {
            let r = reg
                .req(Method::GET, &format!("/v2/gc/race/manifests/{d}"))
                .header(
                    "accept",
                    "application/vnd.docker.distribution.manifest.v2+json",
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.bytes().await.unwrap(), manifest.as_slice());
            for l in layers {
                let r = reg
                    .req(Method::GET, &format!("/v2/gc/race/blobs/{l}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::OK, "{l}");
                assert_eq!(&digest(&r.bytes().await.unwrap()), l);
            }
        }
    }

    // A push whose manifest is late: its blobs go first (passes until one collects them).
    let late: Vec<u8> = (0..300u32 << 10).map(|j| (j % 241) as u8).collect();
    let late_digest = reg_b.push_blob("gc/race", &late).await;
    let deadline = Deadline::after(Duration::from_secs(60)).every(Duration::from_millis(200));
    loop {
        for e in &endpoints {
            berth_testkit::activate_at(e, "registry-gc").await;
        }
        let r = reg_a
            .req(Method::HEAD, &format!("/v2/gc/race/blobs/{late_digest}"))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::NOT_FOUND {
            break;
        }
        deadline.next("the late push's blob to be collected").await;
    }
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": pushed[0].2[1], "size": 7},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": late_digest, "size": late.len()}],
    }))
    .unwrap();
    let r = reg_b
        .put_manifest(
            "gc/race",
            "late",
            "application/vnd.oci.image.manifest.v1+json",
            &manifest,
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body = r.text().await.unwrap();
    assert!(body.contains("MANIFEST_BLOB_UNKNOWN"), "{body}");
}
