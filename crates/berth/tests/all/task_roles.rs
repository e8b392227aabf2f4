//! Task roles on Docker: a container fetches its task role's credentials at
//! `169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (busybox `wget`), the test calls Berth
//! with them, another task cannot read them, and the image was pulled with the execution
//! role's credentials.

use crate::docker_e2e::{AgentProcess, cluster_and_images, require_docker_engine, wait_task};
use crate::{iam, start};
use berth_testkit::aws_sdk_ecs::types::{ContainerDefinition, ContainerOverride, TaskOverride};
use std::process::Command;
use std::time::Duration;

const TRUST_ECS_TASKS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// A role ECS tasks may assume.
async fn task_role(endpoint: &str, name: &str) -> String {
    let (st, body) = iam(
        endpoint,
        &[
            ("Action", "CreateRole"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", TRUST_ECS_TASKS),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    format!("arn:aws:iam::000000000000:role/{name}")
}

/// What the task's container printed (`docker logs`).
fn logs(task_arn: &str) -> String {
    let filter = format!("label=com.amazonaws.ecs.task-arn={task_arn}");
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &filter])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if id.is_empty() {
        return String::new();
    }
    let out = Command::new("docker").args(["logs", &id]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// Waits until the task's container has printed a line starting with `prefix`; the rest of it.
async fn printed(task_arn: &str, prefix: &str) -> String {
    let deadline = berth_testkit::Deadline::after(Duration::from_secs(60));
    loop {
        let text = logs(task_arn);
        if let Some(line) = text.lines().find_map(|l| l.strip_prefix(prefix)) {
            return line.to_string();
        }
        deadline
            .next(format_args!("the task to print {prefix:?}: {text}"))
            .await;
    }
}

#[tokio::test]
async fn task_role_credentials_reach_their_task_only() {
    require_docker_engine();
    let server = start();
    let ep = server.endpoint.clone();
    let image = cluster_and_images(&server, "roles/app", &[("1", "roles\n")])
        .await
        .remove(0);
    let app = task_role(&ep, "app-task").await;
    let policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:ListClusters","Resource":"*"}]}"#;
    let (st, body) = iam(
        &ep,
        &[
            ("Action", "PutRolePolicy"),
            ("RoleName", "app-task"),
            ("PolicyName", "list"),
            ("PolicyDocument", policy),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    // The image is pulled as the execution role: one without ECR permissions cannot pull
    // (the agent's own identity could).
    let exec = task_role(&ep, "app-exec").await;
    let (st, body) = iam(
        &ep,
        &[
            ("Action", "AttachRolePolicy"),
            ("RoleName", "app-exec"),
            (
                "PolicyArn",
                "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
            ),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let state = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::start_registered(&server, state.path()).await;
    let ecs = server.ecs();
    let probe = ContainerDefinition::builder()
        .name("app")
        .image(&image)
        .memory(32)
        .command("/bin/sh")
        .command("-c")
        .command(
            r#"echo "uri=$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
            echo "own=$(wget -qO- "http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")"
            [ -n "$OTHER" ] && echo "other=$(wget -qO- "http://169.254.170.2$OTHER" 2>&1)"
            sleep 300"#,
        )
        .stop_timeout(1)
        .build();
    ecs.register_task_definition()
        .family("roles")
        .task_role_arn(&app)
        .execution_role_arn(&exec)
        .container_definitions(probe)
        .send()
        .await
        .unwrap();
    let denied = task_role(&ep, "no-pull").await;
    ecs.register_task_definition()
        .family("no-pull")
        .execution_role_arn(&denied)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image(&image)
                .memory(32)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = ecs
        .run_task()
        .cluster("e2e")
        .task_definition("no-pull")
        .send()
        .await
        .unwrap();
    let t = wait_task(
        &ecs,
        "e2e",
        out.tasks()[0].task_arn().unwrap(),
        "STOPPED",
        |t| t.last_status() == Some("STOPPED"),
    )
    .await;
    let reason = t.stopped_reason().unwrap_or_default();
    assert!(
        reason.starts_with("CannotPullContainerError")
            && reason.contains("ecr:GetAuthorizationToken"),
        "{t:?}"
    );
    let run = |other: Option<String>| {
        let ecs = ecs.clone();
        async move {
            let mut req = ecs.run_task().cluster("e2e").task_definition("roles");
            if let Some(uri) = other {
                let env = berth_testkit::aws_sdk_ecs::types::KeyValuePair::builder()
                    .name("OTHER")
                    .value(uri)
                    .build();
                let o = ContainerOverride::builder()
                    .name("app")
                    .environment(env)
                    .build();
                req = req.overrides(TaskOverride::builder().container_overrides(o).build());
            }
            let out = req.send().await.unwrap();
            assert!(out.failures().is_empty(), "{:?}", out.failures());
            out.tasks()[0].task_arn().unwrap().to_string()
        }
    };
    let first = run(None).await;
    wait_task(&ecs, "e2e", &first, "RUNNING", |t| {
        t.last_status() == Some("RUNNING")
    })
    .await;
    let uri = printed(&first, "uri=").await;
    assert!(uri.starts_with("/v2/credentials/"), "{uri}");
    let own: serde_json::Value = serde_json::from_str(&printed(&first, "own=").await).unwrap();
    assert_eq!(own["RoleArn"], app.as_str());
    for member in ["AccessKeyId", "SecretAccessKey", "Token", "Expiration"] {
        assert!(own[member].is_string(), "{member}: {own}");
    }
    let s = |m: &str| own[m].as_str().unwrap().to_string();
    let config = crate::session_config(
        &server,
        &s("AccessKeyId"),
        &s("SecretAccessKey"),
        &s("Token"),
    );
    let me = berth_testkit::aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    let task_id = first.rsplit('/').next().unwrap();
    assert_eq!(
        me.arn(),
        Some(format!("arn:aws:sts::000000000000:assumed-role/app-task/{task_id}").as_str())
    );
    let as_task = berth_testkit::aws_sdk_ecs::Client::new(&config);
    as_task
        .list_clusters()
        .send()
        .await
        .expect("the task role allows ListClusters");
    let err = as_task
        .delete_cluster()
        .cluster("e2e")
        .send()
        .await
        .unwrap_err();
    assert_eq!(crate::code(&err), "AccessDeniedException");

    // A second task gets its own credentials, and not the first one's.
    let second = run(Some(uri.clone())).await;
    let theirs: serde_json::Value = serde_json::from_str(&printed(&second, "own=").await).unwrap();
    assert_ne!(theirs["AccessKeyId"], own["AccessKeyId"]);
    let other = printed(&second, "other=").await;
    assert!(
        other.contains("403") && !other.contains(&s("AccessKeyId")),
        "another task read the credentials: {other}"
    );
    // Nor does a process outside the task's containers.
    let port = std::fs::read_to_string(state.path().join("metadata-port")).unwrap();
    let outsider = reqwest::get(format!("http://127.0.0.1:{}{uri}", port.trim()))
        .await
        .unwrap();
    assert_eq!(outsider.status(), 403);
}
