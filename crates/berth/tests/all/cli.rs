//! End to end with the real `aws` CLI (installed by `scripts/test.sh`), through a profile
//! written by `berth credentials --aws-profile`.

use crate::{BIN, start};
use berth_testkit::require_program;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

/// The `aws` CLI with profile `berth` of the files in `home`.
fn aws_out(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(require_program(
        "aws",
        "scripts/test.sh installs it with pip (awscli)",
    ))
    .args(["--profile", "berth", "--output", "json"])
    .args(args)
    .env("AWS_CONFIG_FILE", home.join("config"))
    .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
    .env_remove("AWS_ACCESS_KEY_ID")
    .env_remove("AWS_SECRET_ACCESS_KEY")
    .env_remove("AWS_ENDPOINT_URL")
    .env_remove("AWS_PROFILE")
    .env_remove("AWS_DEFAULT_REGION")
    .output()
    .unwrap()
}

fn aws(home: &Path, args: &[&str]) -> Value {
    let out = aws_out(home, args);
    assert!(
        out.status.success(),
        "aws {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// `berth credentials --aws-profile berth` for `server` with `extra` arguments, into `home`.
fn write_profile(server: &berth_testkit::TestServer, home: &Path, extra: &[&str]) {
    let out = Command::new(BIN)
        .args(["credentials", "--aws-profile", "berth", "--data-dir"])
        .arg(&server.data_dir)
        .args(extra)
        .env("AWS_CONFIG_FILE", home.join("config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.join("credentials"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn cli_credentials_for_a_least_privilege_user() {
    let server = start();
    let home = tempfile::tempdir().unwrap();
    let policy = "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly";
    write_profile(
        &server,
        home.path(),
        &["--user", "reader", "--policy", policy],
    );
    let who = aws(home.path(), &["sts", "get-caller-identity"]);
    assert_eq!(who["Arn"], "arn:aws:iam::000000000000:user/reader");
    let repos = aws(home.path(), &["ecr", "describe-repositories"]);
    assert_eq!(repos["repositories"], serde_json::json!([]));
    let denied = aws_out(
        home.path(),
        &["ecr", "create-repository", "--repository-name", "app"],
    );
    assert!(!denied.status.success());
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(
        stderr.contains("AccessDeniedException")
            && stderr.contains("user/reader is not authorized to perform: ecr:CreateRepository"),
        "{stderr}"
    );
    // Again for the same user: a second key (IAM allows two).
    write_profile(&server, home.path(), &["--user", "reader"]);
    aws(home.path(), &["ecr", "describe-repositories"]);
}

#[tokio::test]
async fn cli_aws_walkthrough_with_a_berth_profile() {
    let server = start();
    let home = tempfile::tempdir().unwrap();
    write_profile(&server, home.path(), &[]);
    // The profile names the address the server really listens on (it chose its port), as
    // the server recorded it in its data directory.
    let config = std::fs::read_to_string(home.path().join("config")).unwrap();
    assert!(
        config.contains(&format!("endpoint_url = http://127.0.0.1:{}", server.port)),
        "{config}"
    );

    let who = aws(home.path(), &["sts", "get-caller-identity"]);
    assert_eq!(who["Account"], "000000000000");

    let c = aws(
        home.path(),
        &["ecs", "create-cluster", "--cluster-name", "cli"],
    );
    assert_eq!(
        c["cluster"]["clusterArn"],
        "arn:aws:ecs:us-east-1:000000000000:cluster/cli"
    );

    let td = home.path().join("td.json");
    std::fs::write(
        &td,
        r#"{
  "family": "hello",
  "networkMode": "bridge",
  "containerDefinitions": [
    {"name": "web", "image": "127.0.0.1:4566/hello:1", "cpu": 128, "memory": 64, "essential": true,
     "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp"}],
     "environment": [{"name": "GREETING", "value": "hi"}],
     "healthCheck": {"command": ["CMD-SHELL", "wget -q -O- localhost:8080"], "interval": 5, "retries": 2}}
  ],
  "tags": [{"key": "via", "value": "cli"}]
}"#,
    )
    .unwrap();
    let reg = aws(
        home.path(),
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &format!("file://{}", td.display()),
        ],
    );
    assert_eq!(reg["taskDefinition"]["revision"], 1);
    let d = aws(
        home.path(),
        &[
            "ecs",
            "describe-task-definition",
            "--task-definition",
            "hello",
            "--include",
            "TAGS",
        ],
    );
    let c = &d["taskDefinition"]["containerDefinitions"][0];
    assert_eq!(c["portMappings"][0]["hostPort"], 0);
    assert_eq!(c["healthCheck"]["retries"], 2);
    assert_eq!(c["environment"][0]["value"], "hi");
    assert_eq!(d["tags"][0]["value"], "cli");
    assert!(
        d["taskDefinition"]["registeredAt"]
            .as_f64()
            .is_some_and(|t| t > 1.7e9),
        "epoch seconds"
    );

    let l = aws(home.path(), &["ecs", "list-task-definitions"]);
    assert_eq!(
        l["taskDefinitionArns"][0],
        "arn:aws:ecs:us-east-1:000000000000:task-definition/hello:1"
    );
    let failed = aws_out(
        home.path(),
        &[
            "ecs",
            "describe-task-definition",
            "--task-definition",
            "hello:5",
        ],
    );
    assert!(!failed.status.success());
    assert!(String::from_utf8_lossy(&failed.stderr).contains("(ClientException)"));
}

/// `berth agent` pointed at an address where nothing listens says the endpoint is
/// unreachable, and names it (not a bare connection error).
#[tokio::test]
async fn cli_agent_names_an_unreachable_endpoint() {
    crate::docker_e2e::require_docker_engine();
    let endpoint = format!("http://127.0.0.1:{}", crate::elbv2::free_port());
    let state = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args([
            "agent",
            "--endpoint",
            &endpoint,
            "--cluster",
            "c",
            "--state-dir",
        ])
        .arg(state.path())
        .env("AWS_ACCESS_KEY_ID", berth_testkit::ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", berth_testkit::SECRET_ACCESS_KEY)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("the Berth endpoint {endpoint} is unreachable")),
        "{stderr}"
    );
}

/// `berth top --once` lists every service with its counts; utilization and request rate show
/// `-` until the agents and load balancers publish them (the Docker end-to-end autoscaling
/// test reads real figures).
#[tokio::test]
async fn cli_top_lists_services() {
    let server = start();
    let ecs = server.ecs();
    ecs.create_cluster()
        .cluster_name("shop")
        .send()
        .await
        .unwrap();
    crate::register(&ecs, "web").await;
    ecs.create_service()
        .cluster("shop")
        .service_name("web")
        .task_definition("web")
        .desired_count(2)
        .send()
        .await
        .unwrap();
    let out = Command::new(BIN)
        .args(["top", "--once", "--cluster", "shop", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        vec![
            vec![
                "CLUSTER", "SERVICE", "DESIRED", "RUNNING", "CPU%", "MEM%", "REQ/S"
            ],
            vec!["shop", "web", "2", "0", "-", "-", "-"],
        ],
        "{text}"
    );
}
