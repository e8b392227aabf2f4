//! Task benchmark on a real Docker Engine: RunTask → RUNNING latency against a plain
//! `docker run -d` of the same image (same machine, same run), and the agent's RSS with 50
//! running tasks.
//!
//! Run with `scripts/bench-tasks.sh` (builds Berth in release mode; needs a running Docker
//! Engine and /bin/busybox).
//!
//! Usage: task_bench BERTH_BIN [ROUNDS]

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

const IMAGE: &str = "berth-bench-task:latest";

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ok(port: u16, op: &str, body: Value) -> Value {
    let (status, text) = call(port, op, &body.to_string());
    assert_eq!(status, 200, "{op}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn task_status(port: u16, task: &str) -> String {
    let out = ok(
        port,
        "DescribeTasks",
        json!({"cluster": "bench", "tasks": [task]}),
    );
    out["tasks"][0]["lastStatus"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn wait_status(port: u16, task: &str, status: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while task_status(port, task) != status {
        assert!(
            Instant::now() < deadline,
            "task {task} did not reach {status}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let berth_bin = args.get(1).expect("usage: task_bench BERTH_BIN [ROUNDS]");
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(7);
    let dir = tempfile::tempdir().unwrap();

    import_busybox(dir.path(), IMAGE, &["sh", "sleep"]);

    // Baseline: docker run -d.
    let mut docker_times = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let out = Command::new("docker")
            .args(["run", "-d", "--memory", "16m", IMAGE, "/bin/sleep", "3600"])
            .output()
            .unwrap();
        docker_times.push(started.elapsed().as_secs_f64() * 1000.0);
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let _ = Command::new("docker").args(["rm", "-f", &id]).output();
    }

    // Berth: server, agent, task definition.
    let berth = start_berth(berth_bin, &dir.path().join("data"));
    let port = berth.port;
    ok(port, "CreateCluster", json!({"clusterName": "bench"}));
    let mut agent = spawn_bench_agent(berth_bin, port, &dir.path().join("agent"));
    wait_agent_registered(port);
    ok(
        port,
        "RegisterTaskDefinition",
        json!({"family": "sleep", "containerDefinitions": [
        {"name": "sleep", "image": IMAGE, "memory": 16, "command": ["/bin/sleep", "3600"], "stopTimeout": 1}]}),
    );

    let mut berth_times = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let out = ok(
            port,
            "RunTask",
            json!({"cluster": "bench", "taskDefinition": "sleep"}),
        );
        let task = out["tasks"][0]["taskArn"].as_str().unwrap().to_string();
        wait_status(port, &task, "RUNNING");
        berth_times.push(started.elapsed().as_secs_f64() * 1000.0);
        ok(port, "StopTask", json!({"cluster": "bench", "task": task}));
        wait_status(port, &task, "STOPPED");
    }

    // Agent RSS with 50 running tasks.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let out = ok(
            port,
            "RunTask",
            json!({"cluster": "bench", "taskDefinition": "sleep", "count": 10}),
        );
        for t in out["tasks"].as_array().unwrap() {
            tasks.push(t["taskArn"].as_str().unwrap().to_string());
        }
    }
    for t in &tasks {
        wait_status(port, t, "RUNNING");
    }
    std::thread::sleep(Duration::from_secs(2));
    let agent_rss = rss_mib(agent.id());
    for t in &tasks {
        ok(port, "StopTask", json!({"cluster": "bench", "task": t}));
    }
    for t in &tasks {
        wait_status(port, t, "STOPPED");
    }
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = Command::new("docker").args(["rmi", "-f", IMAGE]).output();

    let (d, b) = (median(docker_times.clone()), median(berth_times.clone()));
    println!("| measure | median ms ({rounds} rounds) |");
    println!("|---|---|");
    println!("| docker run -d | {d:.0} |");
    println!("| RunTask → RUNNING (berth agent) | {b:.0} |");
    println!();
    println!(
        "RunTask→RUNNING / docker run = {:.2}x (all: docker {docker_times:.0?}, berth {berth_times:.0?})",
        b / d
    );
    println!(
        "agent RSS with {} running tasks: {agent_rss:.1} MiB",
        tasks.len()
    );
}
