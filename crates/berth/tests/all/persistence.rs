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
    let mut server = start();
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
