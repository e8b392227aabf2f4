//! The README's quickstart, run as written: its second shell block is taken from `README.md`
//! and run by bash against a real `berth up` (with its in-process agent on Docker), changing
//! only what a test must — the binary's path, the ports (free ones instead of 4566 and 8000)
//! and the home and working directories (temporary ones).

use crate::docker_e2e::{HOW, require_docker_engine};
use berth_testkit::require_program;
use std::process::Command;

/// The shell blocks of the README's Quickstart section, in order.
fn quickstart_blocks() -> Vec<String> {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(std::path::Path::new(&dir).join("../../README.md"))
        .expect("README.md");
    let section = readme
        .split("## Quickstart")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Quickstart section");
    section
        .split("```sh\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .map(str::to_string)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quickstart_works_as_written() {
    require_docker_engine();
    require_program("aws", HOW);
    let blocks = quickstart_blocks();
    assert_eq!(blocks.len(), 2, "the quickstart has two shell blocks");
    assert!(blocks[0].contains("cargo run --release -p berth -- up"));
    assert!(blocks[0].contains("./scripts/test.sh"));

    let server = crate::start_with(berth_testkit::Options {
        local_agent: true,
        ..Default::default()
    });
    let work = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&server.data_dir, work.path().join("berth-data")).unwrap();
    let listener = crate::elbv2::free_port().to_string();
    let script = blocks[1]
        .replace("cargo run --release -p berth --", crate::BIN)
        .replace("127.0.0.1:4566", &format!("127.0.0.1:{}", server.port))
        .replace("--port 8000", &format!("--port {listener}"))
        .replace("127.0.0.1:8000", &format!("127.0.0.1:{listener}"));
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c"])
        // The background agent the block starts goes when the script ends.
        .arg(format!("trap 'kill $(jobs -p) 2>/dev/null' EXIT\n{script}"))
        .current_dir(work.path())
        .env("HOME", work.path())
        .env("DOCKER_CONFIG", work.path().join(".docker"))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_CONFIG_FILE")
        .env_remove("AWS_SHARED_CREDENTIALS_FILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // What the tasks and agents left on the engine goes, whatever the outcome.
    let instances = server
        .ecs()
        .list_container_instances()
        .cluster("default")
        .send()
        .await
        .map(|l| l.container_instance_arns().to_vec())
        .unwrap_or_default();
    let demo = server
        .ecs()
        .list_container_instances()
        .cluster("demo")
        .send()
        .await
        .map(|l| l.container_instance_arns().to_vec())
        .unwrap_or_default();
    for instance in instances.iter().chain(&demo) {
        let filter = format!("label=com.berth.container-instance={instance}");
        if let Ok(ids) = Command::new("docker")
            .args(["ps", "-aq", "--filter", &filter])
            .output()
        {
            for id in String::from_utf8_lossy(&ids.stdout).lines() {
                let _ = Command::new("docker").args(["rm", "-f", id]).output();
            }
        }
    }
    let _ = Command::new("docker")
        .args(["rmi", "-f", "hello:1"])
        .arg(format!("127.0.0.1:{}/hello:1", server.port))
        .output();
    assert!(
        out.status.success(),
        "the quickstart failed:\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    );
    assert!(stdout.contains("hello from berth"), "{stdout}");
    let profile = std::fs::read_to_string(work.path().join(".aws/config")).unwrap();
    assert!(
        profile.contains(&format!("endpoint_url = http://127.0.0.1:{}", server.port)),
        "{profile}"
    );
}
