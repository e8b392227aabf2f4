//! Durability: state survives restarts, and every acknowledged write survives `kill -9`.

use crate::{container, register, start};
use berth_testkit::aws_sdk_ecs::types::TaskDefinitionStatus;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[tokio::test]
async fn persistence_state_survives_a_restart() {
    let mut server = start();
    let ecs = server.ecs();
    ecs.create_cluster()
        .cluster_name("kept")
        .send()
        .await
        .unwrap();
    for _ in 0..3 {
        register(&ecs, "svc").await;
    }
    ecs.deregister_task_definition()
        .task_definition("svc:2")
        .send()
        .await
        .unwrap();
    let token = ecs
        .list_task_definitions()
        .max_results(1)
        .send()
        .await
        .unwrap()
        .next_token
        .unwrap();
    let status = server.stop();
    assert!(status.success(), "clean exit on SIGTERM");
    server.restart();
    let ecs = server.ecs();
    let clusters = ecs.list_clusters().send().await.unwrap();
    assert_eq!(
        clusters.cluster_arns(),
        ["arn:aws:ecs:us-east-1:000000000000:cluster/kept"]
    );
    let td = ecs
        .describe_task_definition()
        .task_definition("svc:2")
        .send()
        .await
        .unwrap();
    assert_eq!(
        td.task_definition.unwrap().status(),
        Some(&TaskDefinitionStatus::Inactive)
    );
    // Pagination tokens stay valid across restarts.
    let next = ecs
        .list_task_definitions()
        .max_results(1)
        .next_token(token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        next.task_definition_arns(),
        ["arn:aws:ecs:us-east-1:000000000000:task-definition/svc:3"]
    );
    assert_eq!(register(&ecs, "svc").await, 4);
}

/// kill -9 in the middle of a stream of RegisterTaskDefinition calls from 8 concurrent
/// clients: after the restart every acknowledged revision is there and revisions are
/// contiguous from 1.
#[tokio::test]
async fn persistence_acknowledged_registrations_survive_kill_9() {
    registrations_survive_kill_9(start()).await;
}

/// The same on PostgreSQL (`--database`, a fresh database on the server `scripts/test.sh`
/// starts): nothing goes to the data directory's embedded database.
#[tokio::test]
async fn persistence_on_postgres_acknowledged_registrations_survive_kill_9() {
    let url = crate::fresh_postgres_database("persistence");
    let server = crate::start_with(berth_testkit::Options {
        args: vec!["--database".into(), url],
        ..Default::default()
    });
    assert!(!server.data_dir.join("berth.db").exists());
    registrations_survive_kill_9(server).await;
}

async fn registrations_survive_kill_9(mut server: berth_testkit::TestServer) {
    let acked: Arc<Mutex<Vec<i32>>> = Arc::default();
    let mut writers = Vec::new();
    for _ in 0..8 {
        let ecs = server.ecs();
        let acked = acked.clone();
        writers.push(tokio::spawn(async move {
            loop {
                let r = ecs
                    .register_task_definition()
                    .family("crash")
                    .container_definitions(container())
                    .send()
                    .await;
                match r {
                    Ok(out) => acked
                        .lock()
                        .unwrap()
                        .push(out.task_definition.unwrap().revision()),
                    Err(_) => break,
                }
            }
        }));
    }
    berth_testkit::wait_for(
        Duration::from_secs(30),
        "200 acknowledged registrations",
        || acked.lock().unwrap().len() >= 200,
    )
    .await;
    server.kill9();
    for w in writers {
        w.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    server.restart();
    let ecs = server.ecs();
    let arns: Vec<String> = ecs
        .list_task_definitions()
        .family_prefix("crash")
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    let revisions: Vec<i32> = arns
        .iter()
        .map(|a| a.rsplit(':').next().unwrap().parse().unwrap())
        .collect();
    let expected: Vec<i32> = (1..=revisions.len() as i32).collect();
    assert_eq!(revisions, expected, "revisions are contiguous from 1");
    let max = *acked.iter().max().unwrap();
    assert!(
        revisions.len() as i32 >= max,
        "acknowledged revision {max} lost ({} stored)",
        revisions.len()
    );
    for r in &acked {
        assert!(revisions.contains(r));
    }
    // The next registration continues the sequence.
    assert_eq!(register(&ecs, "crash").await, revisions.len() as i32 + 1);
}

/// A data directory written by the Berth of before the typed core (`tests/fixtures/
/// datadir-v1.tar.gz`, made by `tests/fixtures/make-datadir-v1.sh`, one of every kind of
/// record) opens in this Berth: everything in it reads back as it was written, and the
/// server carries on from it.
#[tokio::test]
async fn persistence_a_data_dir_of_the_previous_format_opens_and_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    )
    .join("tests/fixtures/datadir-v1.tar.gz");
    let untar = std::process::Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-xzf")
        .arg(&fixture)
        .status()
        .unwrap();
    assert!(untar.success());
    let data = dir.path().join("data");
    let ids = std::fs::read_to_string(data.join("fixture-ids")).unwrap();
    let (instance, task) = ids.trim().split_once(' ').unwrap();
    // The fixture's stopped task is as old as the fixture: kept past the default hour here.
    let server = crate::start_with(berth_testkit::Options {
        data_dir: Some(data.clone()),
        args: vec!["--stopped-task-retention".into(), "3153600000".into()],
        ..Default::default()
    });
    let ecs = server.ecs();
    let c = ecs
        .describe_clusters()
        .clusters("old")
        .include(berth_testkit::aws_sdk_ecs::types::ClusterField::Settings)
        .include(berth_testkit::aws_sdk_ecs::types::ClusterField::Tags)
        .send()
        .await
        .unwrap();
    let cluster = &c.clusters()[0];
    assert_eq!(cluster.status(), Some("ACTIVE"));
    assert_eq!(cluster.settings()[0].value(), Some("enabled"));
    assert_eq!(cluster.tags()[0].value(), Some("a"));
    assert_eq!(cluster.registered_container_instances_count(), 1);
    assert_eq!(cluster.running_tasks_count(), 1);
    assert_eq!(cluster.active_services_count(), 1);
    // The task definition, every member as it was registered.
    let td = ecs
        .describe_task_definition()
        .task_definition("web:1")
        .include(berth_testkit::aws_sdk_ecs::types::TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    let d = td.task_definition().unwrap();
    assert_eq!((d.cpu(), d.memory()), (Some("256"), Some("512")));
    let web = &d.container_definitions()[0];
    assert_eq!(web.command(), ["/bin/httpd", "-f"]);
    assert_eq!(web.environment()[0].value(), Some("1"));
    assert_eq!(web.port_mappings()[0].container_port(), Some(8080));
    assert_eq!(web.health_check().unwrap().retries(), Some(2));
    assert_eq!(
        web.linux_parameters().unwrap().init_process_enabled(),
        Some(true)
    );
    assert_eq!(web.docker_labels().unwrap()["x"], "y");
    assert_eq!(
        web.log_configuration().unwrap().options().unwrap()["max-size"],
        "1m"
    );
    assert_eq!(d.volumes()[0].host().unwrap().source_path(), Some("/tmp"));
    assert_eq!(td.tags()[0].value(), Some("web"));
    // Instances, tasks (one running with its port, one stopped), the service.
    let i = ecs
        .describe_container_instances()
        .cluster("old")
        .container_instances(instance)
        .send()
        .await
        .unwrap();
    assert_eq!(i.container_instances()[0].running_tasks_count(), 1);
    let t = ecs
        .describe_tasks()
        .cluster("old")
        .tasks(task)
        .send()
        .await
        .unwrap();
    let t = &t.tasks()[0];
    assert_eq!(t.last_status(), Some("RUNNING"));
    assert_eq!(
        t.containers()[0].network_bindings()[0].host_port(),
        Some(32768)
    );
    let stopped = ecs
        .list_tasks()
        .cluster("old")
        .desired_status(berth_testkit::aws_sdk_ecs::types::DesiredStatus::Stopped)
        .send()
        .await
        .unwrap();
    assert_eq!(stopped.task_arns().len(), 1);
    let s = ecs
        .describe_services()
        .cluster("old")
        .services("svc")
        .send()
        .await
        .unwrap();
    let s = &s.services()[0];
    assert_eq!(s.status(), Some("ACTIVE"));
    assert_eq!(s.load_balancers()[0].container_port(), Some(8080));
    assert_eq!(
        s.placement_strategy()[0].field(),
        Some("attribute:ecs.availability-zone")
    );
    // ELB: the load balancer, its listener and rule, the target group.
    let elb = server.elbv2();
    let lb = elb
        .describe_load_balancers()
        .names("old-lb")
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0].load_balancer_arn().unwrap();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(lb_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(listeners.listeners()[0].port(), Some(18080));
    let rules = elb
        .describe_rules()
        .listener_arn(listeners.listeners()[0].listener_arn().unwrap())
        .send()
        .await
        .unwrap();
    let rule = rules
        .rules()
        .iter()
        .find(|r| r.priority() == Some("10"))
        .unwrap();
    assert_eq!(rule.conditions()[0].values(), ["/api/*"], "{rule:?}");
    assert_eq!(
        rule.actions()[0]
            .fixed_response_config()
            .unwrap()
            .status_code(),
        Some("404")
    );
    elb.describe_target_groups()
        .names("old-tg")
        .send()
        .await
        .unwrap();
    // The registry: the repository, its image and its layer.
    let ecr = server.ecr();
    let img = ecr
        .batch_get_image()
        .repository_name("old/app")
        .image_ids(
            berth_testkit::aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag("v1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(
        img.images()[0]
            .image_manifest()
            .unwrap()
            .contains("application/vnd.oci.image.layer.v1.tar")
    );
    // And it carries on: a new revision, a task, a scaled service, a tag.
    let rev = crate::register(&ecs, "web").await;
    assert_eq!(rev, 2);
    let run = ecs
        .run_task()
        .cluster("old")
        .task_definition("web:1")
        .send()
        .await
        .unwrap();
    assert_eq!(run.tasks().len(), 1, "{:?}", run.failures());
    ecs.update_service()
        .cluster("old")
        .service("svc")
        .desired_count(0)
        .send()
        .await
        .unwrap();
    ecr.put_image()
        .repository_name("old/app")
        .image_tag("v2")
        .image_manifest(img.images()[0].image_manifest().unwrap())
        .send()
        .await
        .unwrap();
}

/// `berth <args>`: its stdout, and whether it succeeded.
fn berth(args: &[&str]) -> (bool, String) {
    berth_with(args, &[])
}

/// [`berth`] with more environment.
fn berth_with(args: &[&str], env: &[(String, String)]) -> (bool, String) {
    let out = std::process::Command::new(crate::BIN)
        .args(args)
        .env_remove("BERTH_CONFIG")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Five revisions of `kept` and an image `img:v1` with a layer large enough to be a blob file
/// (and a small one kept in the database); the manifest bytes and the large layer.
async fn records_and_blobs(server: &berth_testkit::TestServer) -> (Vec<u8>, Vec<u8>) {
    let ecs = server.ecs();
    for _ in 0..5 {
        register(&ecs, "kept").await;
    }
    server
        .ecr()
        .create_repository()
        .repository_name("img")
        .send()
        .await
        .unwrap();
    let reg = crate::registry::Reg::login(server).await;
    let large: Vec<u8> = (0..3 << 20).map(|i: u32| (i % 251) as u8).collect();
    let (manifest, _) = reg.push_image("img", "v1", &[&large, b"small"]).await;
    (manifest, large)
}

/// What [`records_and_blobs`] wrote is all there on `server`.
async fn has_records_and_blobs(
    server: &berth_testkit::TestServer,
    (manifest, large): &(Vec<u8>, Vec<u8>),
) {
    let ecs = server.ecs();
    for revision in 1..=5 {
        ecs.describe_task_definition()
            .task_definition(format!("kept:{revision}"))
            .send()
            .await
            .unwrap();
    }
    let reg = crate::registry::Reg::login(server).await;
    let got = reg
        .req(reqwest::Method::GET, "/v2/img/manifests/v1")
        .header("accept", crate::registry::DOCKER_V2)
        .header("accept", crate::registry::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(&got.bytes().await.unwrap()[..], &manifest[..]);
    let layer = reg
        .req(
            reqwest::Method::GET,
            &format!("/v2/img/blobs/{}", crate::registry::digest(large)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(layer.status(), 200);
    assert!(layer.bytes().await.unwrap()[..] == large[..]);
}

/// A backup taken while the server serves restores, into a new data directory, every record
/// and blob written before it, and nothing written after it; a restore never overwrites a
/// data directory that has a database.
#[tokio::test]
async fn persistence_backup_while_serving_then_restore() {
    let server = start();
    let written = records_and_blobs(&server).await;
    let backups = tempfile::tempdir().unwrap();
    let to = backups.path().join("monday");
    let data = server.data_dir.display().to_string();
    let (ok, out) = berth(&["backup", "--data-dir", &data, "--to", to.to_str().unwrap()]);
    assert!(ok, "{out}");
    assert!(out.contains("Backed up"), "{out}");
    register(&server.ecs(), "after").await;
    let (again, out) = berth(&["backup", "--data-dir", &data, "--to", to.to_str().unwrap()]);
    assert!(!again && out.contains("not empty"), "{out}");

    let target = tempfile::tempdir().unwrap();
    let restored = target.path().join("data");
    let dir = restored.to_str().unwrap();
    let (ok, out) = berth(&["restore", "--from", to.to_str().unwrap(), "--data-dir", dir]);
    assert!(ok, "{out}");
    let (twice, out) = berth(&["restore", "--from", to.to_str().unwrap(), "--data-dir", dir]);
    assert!(!twice && out.contains("already has a database"), "{out}");
    let second = crate::start_with(berth_testkit::Options {
        data_dir: Some(restored.clone()),
        ..Default::default()
    });
    has_records_and_blobs(&second, &written).await;
    let missing = second
        .ecs()
        .describe_task_definition()
        .task_definition("after:1")
        .send()
        .await;
    assert!(missing.is_err(), "written after the backup: {missing:?}");
}

/// `berth migrate-store` moves a stopped embedded server's records into an empty PostgreSQL
/// database; the server then runs on it with the same data directory (its blobs), and a second
/// migration into the now non-empty database is refused. With `--blobs` the blobs go to S3
/// too: a server on a data directory of its own serves them from there.
#[tokio::test]
async fn persistence_migrate_store_moves_a_data_dir_into_postgres() {
    let mut server = start();
    let written = records_and_blobs(&server).await;
    server.stop();
    let url = crate::fresh_postgres_database("migrate");
    let data = server.data_dir.display().to_string();
    let (ok, out) = berth(&["migrate-store", "--data-dir", &data, "--database", &url]);
    assert!(ok, "{out}");
    assert!(out.contains("Moved"), "{out}");
    let (again, out) = berth(&["migrate-store", "--data-dir", &data, "--database", &url]);
    assert!(!again && out.contains("already holds"), "{out}");
    let mut on_postgres = crate::start_with(berth_testkit::Options {
        data_dir: Some(server.data_dir.clone()),
        args: vec!["--database".into(), url],
        ..Default::default()
    });
    has_records_and_blobs(&on_postgres, &written).await;
    on_postgres.stop();

    let url = crate::fresh_postgres_database("migrate_s3");
    let blobs = format!("s3://berth-test/migrate-{}", std::process::id());
    let env = berth_testkit::s3_env(&crate::replicas::shared_seaweedfs());
    let (ok, out) = berth_with(
        &[
            "migrate-store",
            "--data-dir",
            &data,
            "--database",
            &url,
            "--blobs",
            &blobs,
        ],
        &env,
    );
    assert!(ok, "{out}");
    assert!(out.contains("and 1 blobs"), "{out}");
    let on_s3 = crate::start_with(berth_testkit::Options {
        args: vec!["--database".into(), url, "--blobs".into(), blobs],
        env,
        ..Default::default()
    });
    has_records_and_blobs(&on_s3, &written).await;
}
