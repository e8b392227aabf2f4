//! The server process: start-up, health, data-dir lock, TLS, credentials, ephemeral reset.

use crate::{BIN, start, start_with};
use berth_testkit::{Options, Signing, ecs_request, signed};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[tokio::test]
async fn server_health_and_help() {
    let server = start();
    let body = reqwest::get(format!("{}/healthz", server.endpoint))
        .await
        .unwrap();
    assert_eq!(body.status(), 200);
    for cmd in [
        vec!["--help"],
        vec!["up", "--help"],
        vec!["server", "--help"],
        vec!["credentials", "--help"],
    ] {
        let out = Command::new(BIN).args(&cmd).output().unwrap();
        assert!(out.status.success(), "{cmd:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage: berth"), "{cmd:?}: {text}");
    }
    let up = String::from_utf8(
        Command::new(BIN)
            .args(["up", "--help"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    for flag in [
        "--listen",
        "--data-dir",
        "--account-id",
        "--region",
        "--public-host",
        "--tls-cert",
        "--insecure-http",
        "--ephemeral",
        "BERTH_LISTEN",
    ] {
        assert!(up.contains(flag), "up --help mentions {flag}");
    }
    // The registry path answers with an OCI error body, not a bare 404.
    let r = reqwest::get(format!("{}/v2/", server.endpoint))
        .await
        .unwrap();
    assert_eq!(
        r.headers()["docker-distribution-api-version"],
        "registry/2.0"
    );
    assert!(r.text().await.unwrap().contains("\"errors\""));
}

#[tokio::test]
async fn server_refuses_a_second_process_on_the_same_data_dir() {
    let server = start();
    let out = Command::new(BIN)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is in use by another Berth process"), "{err}");
}

#[tokio::test]
async fn server_refuses_plain_http_off_loopback_and_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["up", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--insecure-http"));
    let cfg = dir.path().join("b.toml");
    std::fs::write(&cfg, "listen = \"127.0.0.1:0\"\nno-such-key = 1\n").unwrap();
    let out = Command::new(BIN)
        .args(["up", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-key"));
    let out = Command::new(BIN)
        .args(["up", "--account-id", "12345"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("12 digits"));
}

#[tokio::test]
async fn server_serves_https_with_tls_flags() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let ok = Command::new(berth_testkit::require_program(
        "openssl",
        "install Debian's openssl package",
    ))
    .args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
    ])
    .arg("-keyout")
    .arg(&key)
    .arg("-out")
    .arg(&cert)
    .output()
    .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let server = start_with(Options {
        args: vec![
            "--tls-cert".into(),
            cert.display().to_string(),
            "--tls-key".into(),
            key.display().to_string(),
        ],
        ..Default::default()
    });
    assert!(
        server.log().contains("ready at https://"),
        "{}",
        server.log()
    );
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = client
        .get(format!("https://127.0.0.1:{}/healthz", server.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        reqwest::get(format!("http://127.0.0.1:{}/healthz", server.port))
            .await
            .is_err(),
        "no plain HTTP on the TLS port"
    );
}

#[tokio::test]
async fn server_generates_private_aws_shaped_credentials_once() {
    let mut server = start_with(Options {
        no_root_env: true,
        ..Default::default()
    });
    let path = server.data_dir.join("credentials.json");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let out = Command::new(BIN)
        .args(["credentials", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let id = text
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("aws_access_key_id = ")
        .to_string();
    let secret = text
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches("aws_secret_access_key = ")
        .to_string();
    assert!(id.starts_with("AKIA") && id.len() == 20, "{id}");
    assert_eq!(secret.len(), 40);
    assert!(server.log().contains(&secret), "shown once on first start");
    // The generated keys work.
    let ecs = berth_testkit::aws_sdk_ecs::Client::new(&server.sdk_config_with(&id, &secret));
    ecs.list_clusters().send().await.unwrap();
    // After a restart they are never logged again.
    let before = server.log().len();
    server.restart();
    assert!(!server.log()[before..].contains(&secret));
    let ecs = berth_testkit::aws_sdk_ecs::Client::new(&server.sdk_config_with(&id, &secret));
    ecs.list_clusters().send().await.unwrap();
}

#[tokio::test]
async fn server_reset_exists_only_when_ephemeral() {
    let plain = start();
    let url = format!("{}/_berth/reset", plain.endpoint);
    let r = signed(&Signing::root("ecs"), "POST", &url, &[], b"")
        .send()
        .await;
    assert_eq!(r.status, 404);

    let server = start_with(Options {
        args: vec!["--ephemeral".into()],
        ..Default::default()
    });
    let ecs = server.ecs();
    ecs.create_cluster()
        .cluster_name("gone")
        .send()
        .await
        .unwrap();
    let url = format!("{}/_berth/reset", server.endpoint);
    let mut unsigned = signed(&Signing::root("ecs"), "POST", &url, &[], b"");
    unsigned.headers.retain(|(k, _)| k != "authorization");
    assert_eq!(unsigned.send().await.status, 400);
    let r = signed(&Signing::root("ecs"), "POST", &url, &[], b"")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let list = ecs.list_clusters().send().await.unwrap();
    assert!(list.cluster_arns().is_empty());
    // The root credentials still work after the reset.
    let r = ecs_request(
        &server.endpoint,
        &Signing::root("ecs"),
        "ListClusters",
        "{}",
    )
    .send()
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn server_up_without_docker_starts_anyway_and_says_so_once() {
    let server = start_with(Options {
        local_agent: true,
        env: vec![(
            "DOCKER_HOST".into(),
            "unix:///nonexistent/docker.sock".into(),
        )],
        ..Default::default()
    });
    let r = reqwest::get(format!("{}/healthz", server.endpoint))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let ecs = server.ecs();
    ecs.list_clusters().send().await.unwrap();
    berth_testkit::wait_for(
        std::time::Duration::from_secs(10),
        "the no-Docker notice",
        || server.log().contains("no Docker Engine is reachable"),
    )
    .await;
    assert_eq!(
        server
            .log()
            .matches("no Docker Engine is reachable")
            .count(),
        1
    );
}

/// The background tasks report what they did: `/metrics` (Prometheus text) and
/// `/_berth/status` for root, `berth status` from the data directory; a test (or an operator)
/// activates one and gets the status of a pass that started after asking.
#[tokio::test]
async fn server_background_tasks_report_and_can_be_activated() {
    let server = start();
    let status = server.activate("service-scheduler").await;
    assert_eq!(status["name"], "service-scheduler");
    assert!(status["activations"].as_u64().unwrap() >= 1);
    assert_eq!(status["lastOutcome"]["ok"]["services changed"], 0);
    let again = server.activate("service-scheduler").await;
    assert!(again["activations"].as_u64() > status["activations"].as_u64());
    let metrics = berth_testkit::signed(
        &berth_testkit::Signing::root("ecs"),
        "GET",
        &format!("{}/metrics", server.endpoint),
        &[],
        b"",
    )
    .send()
    .await;
    assert_eq!(metrics.status, 200);
    assert_eq!(
        metrics.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    for task in [
        "service-scheduler",
        "instance-liveness",
        "registry-gc",
        "stopped-task-purge",
    ] {
        assert!(
            metrics.body.contains(&format!(
                "berth_background_activations_total{{task=\"{task}\"}}"
            )),
            "{}",
            metrics.body
        );
    }
    // An unknown task, and an unsigned read.
    let r = berth_testkit::signed(
        &berth_testkit::Signing::root("ecs"),
        "POST",
        &format!("{}/_berth/background/nothing", server.endpoint),
        &[],
        b"{}",
    )
    .send()
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    let r = reqwest::get(format!("{}/_berth/status", server.endpoint))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // `berth status`, from the data directory alone.
    let out = std::process::Command::new(crate::BIN)
        .args(["status", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&server.endpoint), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("service-scheduler") && l.contains("services changed: 0")),
        "{text}"
    );
}
