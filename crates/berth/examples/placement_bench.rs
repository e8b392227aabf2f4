//! Placement benchmark: simulated container instances (registered through the API, no Docker)
//! and tasks placed through `RunTask` (count 10, spread by zone then binpack memory), durably.
//! Prints the sustained rate over the whole run and over its last tenth, so a slowdown as the
//! cluster fills shows.
//!
//! Run with `scripts/bench-placement.sh [INSTANCES] [TASKS] [CLIENTS]`.

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use std::time::Instant;

fn ok(port: u16, op: &str, body: Value) -> Value {
    let (status, text) = call(port, op, &body.to_string());
    assert_eq!(status, 200, "{op}: {text}");
    serde_json::from_str(&text).unwrap()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .expect("usage: placement_bench BERTH_BIN [INSTANCES] [TASKS] [CLIENTS]");
    let arg =
        |i: usize, default: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(default);
    let (instances, tasks, clients) = (arg(2, 500), arg(3, 5_000), arg(4, 4));
    let dir = tempfile::tempdir().unwrap();
    let berth = start_berth(bin, &dir.path().join("data"));
    let port = berth.port;
    ok(port, "CreateCluster", json!({"clusterName": "bench"}));
    let started = Instant::now();
    for i in 0..instances {
        let zone = ["a", "b", "c"][i % 3];
        ok(
            port,
            "RegisterContainerInstance",
            json!({
                "cluster": "bench",
                "instanceIdentityDocument": json!({"instanceId": format!("i-{i:08}")}).to_string(),
                "totalResources": [
                    {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
                    {"name": "MEMORY", "type": "INTEGER", "integerValue": 16384}
                ],
                "attributes": [{"name": "ecs.availability-zone", "value": format!("us-east-1{zone}")}]
            }),
        );
    }
    println!(
        "registered {instances} instances in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    ok(
        port,
        "RegisterTaskDefinition",
        json!({"family": "p", "containerDefinitions": [{"name": "c", "image": "busybox", "memory": 128, "cpu": 10}]}),
    );
    let calls = tasks.div_ceil(10);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let last_tenth_from = calls - calls / 10;
    let last_tenth_start = std::sync::Mutex::new(None::<Instant>);
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..clients {
            s.spawn(|| {
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= calls {
                        break;
                    }
                    if n == last_tenth_from {
                        *last_tenth_start.lock().unwrap() = Some(Instant::now());
                    }
                    let out = ok(
                        port,
                        "RunTask",
                        json!({"cluster": "bench", "taskDefinition": "p", "count": 10,
                            "placementStrategy": [
                                {"type": "spread", "field": "attribute:ecs.availability-zone"},
                                {"type": "binpack", "field": "memory"}]}),
                    );
                    assert_eq!(out["tasks"].as_array().map(Vec::len), Some(10), "{out}");
                }
            });
        }
    });
    let total = started.elapsed().as_secs_f64();
    let tail = last_tenth_start
        .lock()
        .unwrap()
        .map_or(total, |t| t.elapsed().as_secs_f64());
    let placed = calls * 10;
    println!(
        "placed {placed} tasks on {instances} instances with {clients} clients: {:.0} tasks/s overall, {:.0} tasks/s over the last tenth",
        placed as f64 / total,
        (calls / 10 * 10) as f64 / tail
    );
    check(port, placed);
}

/// Checks the outcome through the API: no instance over-committed, every task's memory
/// accounted for, and the zones within one count-10 call of each other.
fn check(port: u16, placed: usize) {
    let started = std::time::Instant::now();
    let (mut token, mut pages): (Option<String>, usize) = (None, 0);
    // The instance with the most tasks (binpack leaves many empty).
    let mut busiest = (0i64, String::new());
    let (mut used, mut per_zone) = (0i64, std::collections::BTreeMap::<String, i64>::new());
    loop {
        let page = ok(
            port,
            "ListContainerInstances",
            json!({"cluster": "bench", "maxResults": 100, "nextToken": token}),
        );
        let arns = page["containerInstanceArns"].clone();
        let out = ok(
            port,
            "DescribeContainerInstances",
            json!({"cluster": "bench", "containerInstances": arns}),
        );
        for ci in out["containerInstances"].as_array().unwrap() {
            let memory = |field: &str| {
                ci[field]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|r| r["name"] == "MEMORY")
                    .and_then(|r| r["integerValue"].as_i64())
                    .unwrap()
            };
            let remaining = memory("remainingResources");
            assert!(remaining >= 0, "over-committed: {ci}");
            let zone = ci["attributes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == "ecs.availability-zone")
                .and_then(|a| a["value"].as_str())
                .unwrap()
                .to_string();
            let on_it = memory("registeredResources") - remaining;
            if on_it > busiest.0 {
                busiest = (
                    on_it,
                    ci["containerInstanceArn"].as_str().unwrap().to_string(),
                );
            }
            used += on_it;
            *per_zone.entry(zone).or_default() += on_it / 128;
        }
        pages += 1;
        token = page["nextToken"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    println!(
        "read back through {pages} pages of ListContainerInstances + DescribeContainerInstances in {:.2} s ({:.1} ms a page)",
        started.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64() * 1000.0 / pages as f64
    );
    // What an agent's poll asks: the tasks to run on its instance.
    let started = std::time::Instant::now();
    let calls = 20;
    for _ in 0..calls {
        let out = ok(
            port,
            "ListTasks",
            json!({"cluster": "bench", "containerInstance": busiest.1, "desiredStatus": "RUNNING"}),
        );
        // One page (at most 100) of the instance's tasks.
        assert_eq!(
            out["taskArns"].as_array().unwrap().len() as i64,
            (busiest.0 / 128).min(100)
        );
    }
    println!(
        "ListTasks for one instance of {} tasks (an agent's poll): {:.1} ms a call",
        busiest.0 / 128,
        started.elapsed().as_secs_f64() * 1000.0 / calls as f64
    );
    assert_eq!(
        used,
        placed as i64 * 128,
        "every task's memory is accounted for"
    );
    let (min, max) = (
        per_zone.values().min().unwrap(),
        per_zone.values().max().unwrap(),
    );
    assert!(max - min <= 10, "zones balanced: {per_zone:?}");
    println!("checked: no instance over-committed, tasks per zone {per_zone:?}");
}
