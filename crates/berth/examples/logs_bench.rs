//! CloudWatch Logs benchmark, Berth vs moto's server in the same run (awsJson 1.1; every
//! request signed):
//!
//! 1. PutLogEvents ingest: `wrk` replays one batch of 1,900 events of 500-byte lines (just
//!    under the 1 MiB a batch may hold: 1,048,576 bytes counting 26 per event) into one stream
//!    over 4 connections for SECONDS; events/s = requests/s × 1,900 and MB/s = requests/s × the
//!    batch's message bytes. Berth acknowledges a batch once it is durable.
//! 2. FilterLogEvents over 1,000,000 stored events (100 batches of 10,000 70-byte lines in 10
//!    streams of one group): a term in one line of 10,000 — the time to the first page and to
//!    the end of the scan (every page) — and a term in every line (the first, full page).
//! 3. The agent's overhead (Berth only; needs Docker): a container printing about 10,000
//!    lines/s through the `awslogs` driver; over 20 s the agent's CPU (% of one core), its RSS,
//!    dockerd's CPU (its json-file logging) and the lines/s that reached the stream.
//!
//! Usage: logs_bench BERTH_BIN MOTO_SERVER [SECONDS] (`scripts/bench-logs.sh` builds and runs
//! it).

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

const INGEST_EVENTS: usize = 1_900;
const LINE: usize = 500;

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

fn logs_call(port: u16, op: &str, body: &Value) -> Value {
    let body = body.to_string();
    let signed = sign_for(port, "logs", "Logs_20140328", op, &body);
    let (status, out) = exchange_at(port, "/", &signed, &body);
    assert_eq!(status, 200, "{op}: {}", &out[..out.len().min(400)]);
    serde_json::from_str(&out).unwrap_or(Value::Null)
}

fn group_and_streams(port: u16, group: &str, streams: usize) {
    logs_call(port, "CreateLogGroup", &json!({"logGroupName": group}));
    for s in 0..streams {
        logs_call(
            port,
            "CreateLogStream",
            &json!({"logGroupName": group, "logStreamName": format!("s{s}")}),
        );
    }
}

/// A line of exactly `len` bytes starting with `head`.
fn line(head: &str, len: usize) -> String {
    let mut l = head.to_string();
    while l.len() < len {
        l.push_str(" lorem ipsum dolor sit amet");
    }
    l.truncate(len);
    l
}

/// Ingest: events/s and MB/s over `seconds`.
fn ingest(t: &Target, seconds: u32, dir: &std::path::Path) -> (f64, f64, u64) {
    group_and_streams(t.port, "ingest", 1);
    let at = now_ms() - 60_000;
    let events: Vec<Value> = (0..INGEST_EVENTS)
        .map(|i| json!({"timestamp": at, "message": line(&format!("{i:05} GET /api/items 200"), LINE)}))
        .collect();
    let body =
        json!({"logGroupName": "ingest", "logStreamName": "s0", "logEvents": events}).to_string();
    let signed = sign_for(t.port, "logs", "Logs_20140328", "PutLogEvents", &body);
    let (status, out) = exchange_at(t.port, "/", &signed, &body);
    assert_eq!(status, 200, "{} PutLogEvents: {out}", t.name);
    let r = wrk_signed(
        t.port,
        &signed,
        &body,
        seconds,
        4,
        &dir.join(format!("put-{}.lua", t.name)),
    );
    let batch_mb = (INGEST_EVENTS * LINE) as f64 / 1e6;
    (r.rps * INGEST_EVENTS as f64, r.rps * batch_mb, r.non2xx)
}

/// 1,000,000 events of 70 bytes in 10 streams of group `scan`; every 10,000th holds `needle`.
fn seed(t: &Target) -> Duration {
    group_and_streams(t.port, "scan", 10);
    let started = Instant::now();
    let base = now_ms() - 3_600_000;
    for b in 0..100u64 {
        let events: Vec<Value> = (0..10_000u64)
            .map(|i| {
                let n = b * 10_000 + i;
                let head = if n % 10_000 == 5_000 {
                    format!("{n:07} GET /api/needle 500")
                } else {
                    format!("{n:07} GET /api/items/{} 200 {}ms", n % 977, n % 89)
                };
                json!({"timestamp": base + (n / 100) as i64, "message": line(&head, 70)})
            })
            .collect();
        logs_call(
            t.port,
            "PutLogEvents",
            &json!({"logGroupName": "scan", "logStreamName": format!("s{}", b % 10), "logEvents": events}),
        );
    }
    started.elapsed()
}

/// FilterLogEvents of `pattern` over group `scan`: the time to the first page and the events
/// on it, then the time to the end (every page) and the events found.
fn filter(t: &Target, pattern: &str, all_pages: bool) -> (Duration, usize, Duration, usize) {
    let started = Instant::now();
    let mut token: Option<String> = None;
    let (mut first, mut first_n, mut total) = (None, 0, 0);
    loop {
        let mut req = json!({"logGroupName": "scan", "filterPattern": pattern});
        if let Some(tok) = &token {
            req["nextToken"] = json!(tok);
        }
        let page = logs_call(t.port, "FilterLogEvents", &req);
        let n = page["events"].as_array().map_or(0, Vec::len);
        total += n;
        if first.is_none() {
            first = Some(started.elapsed());
            first_n = n;
        }
        token = page["nextToken"].as_str().map(str::to_string);
        if token.is_none() || !all_pages {
            return (first.unwrap(), first_n, started.elapsed(), total);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn ecs(port: u16, op: &str, body: Value) -> Value {
    let (status, out) = call(port, op, &body.to_string());
    assert_eq!(status, 200, "{op}: {out}");
    serde_json::from_str(&out).unwrap()
}

fn pid_of(name: &str) -> Option<u32> {
    let out = Command::new("pidof").arg(name).output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The agent shipping a container's ~10,000 lines/s: (agent CPU %, agent RSS MiB, dockerd CPU
/// %, lines/s stored) over 20 s.
fn agent_overhead(berth_bin: &str, t: &Target, dir: &std::path::Path) -> (f64, f64, f64, f64) {
    const IMAGE: &str = "berth-bench/logs:1";
    import_busybox(dir, IMAGE, &["sh", "sleep", "yes", "head"]);
    let port = t.port;
    ecs(port, "CreateCluster", json!({"clusterName": "bench"}));
    let mut agent = spawn_bench_agent(berth_bin, port, &dir.join("agent"));
    wait_agent_registered(port);
    logs_call(
        port,
        "CreateLogGroup",
        &json!({"logGroupName": "/bench/agent"}),
    );
    // 1,000 lines of 100 bytes, then a tenth of a second's rest: about 10,000 lines/s.
    let text = line("GET /api/items 200 12ms", 99);
    let script = format!("while true; do yes '{text}' | head -n 1000; sleep 0.1; done");
    ecs(
        port,
        "RegisterTaskDefinition",
        json!({"family": "printer", "containerDefinitions": [{
            "name": "printer", "image": IMAGE, "memory": 64, "stopTimeout": 1,
            "command": ["/bin/sh", "-c", script],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": "/bench/agent", "awslogs-region": "us-east-1",
                "awslogs-stream-prefix": "b"}}}]}),
    );
    let out = ecs(
        port,
        "RunTask",
        json!({"cluster": "bench", "taskDefinition": "printer"}),
    );
    let task = out["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    let stream = format!("b/printer/{}", task.rsplit('/').next().unwrap());
    let stored = || -> u64 {
        let v = logs_call(
            port,
            "DescribeLogStreams",
            &json!({"logGroupName": "/bench/agent", "logStreamNamePrefix": stream}),
        );
        v["logStreams"][0]["storedBytes"].as_u64().unwrap_or(0)
    };
    // Warm up until lines flow, then measure 20 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    while stored() == 0 {
        assert!(Instant::now() < deadline, "no line reached {stream}");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(5));
    let dockerd = pid_of("dockerd");
    let (b0, a0, d0, t0) = (
        stored(),
        cpu_us(agent.id()),
        dockerd.map_or(0, cpu_us),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(20));
    let (b1, a1, d1, elapsed) = (
        stored(),
        cpu_us(agent.id()),
        dockerd.map_or(0, cpu_us),
        t0.elapsed(),
    );
    let rss = rss_mib(agent.id());
    let us = elapsed.as_micros() as f64;
    ecs(port, "StopTask", json!({"cluster": "bench", "task": task}));
    let _ = agent.kill();
    let _ = agent.wait();
    let _ = Command::new("docker")
        .args(["rm", "-f"])
        .args(task_containers(&task))
        .output();
    let _ = Command::new("docker").args(["rmi", "-f", IMAGE]).output();
    (
        (a1 - a0) as f64 / us * 100.0,
        rss,
        (d1 - d0) as f64 / us * 100.0,
        // storedBytes counts each event's message; a line is 99 bytes.
        (b1 - b0) as f64 / 99.0 / elapsed.as_secs_f64(),
    )
}

fn task_containers(task: &str) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter"])
        .arg(format!("label=com.amazonaws.ecs.task-arn={task}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

fn main() {
    let usage = "usage: logs_bench BERTH_BIN MOTO_SERVER [SECONDS]";
    let args: Vec<String> = std::env::args().collect();
    let berth_bin = args.get(1).expect(usage);
    let seconds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let berth = start_berth(berth_bin, &dir.path().join("data"));
    let moto = start_moto(args.get(2).expect(usage));

    println!(
        "PutLogEvents ingest (batches of {INGEST_EVENTS} x {LINE}-byte lines, 4 connections, {seconds} s):"
    );
    let mut rates = Vec::new();
    for t in [&berth, &moto] {
        let (events, mb, non2xx) = ingest(t, seconds, dir.path());
        println!(
            "  {:5}: {events:>10.0} events/s  {mb:>6.1} MB/s  (non-2xx {non2xx})",
            t.name
        );
        rates.push(events);
    }
    println!("  berth/moto = {:.1}x", rates[0] / rates[1]);

    println!("FilterLogEvents over 1,000,000 events (10 streams):");
    let mut scans = Vec::new();
    for t in [&berth, &moto] {
        let seeded = seed(t);
        let (first, first_n, all, found) = filter(t, "needle", true);
        let (busy_first, busy_n, _, _) = filter(t, "GET", false);
        println!(
            "  {:5}: rare term: first page {:.0} ms ({first_n} events), whole scan {:.0} ms ({found} found); \
             common term: first page {:.0} ms ({busy_n} events); seeding {:.1} s",
            t.name,
            ms(first),
            ms(all),
            ms(busy_first),
            seeded.as_secs_f64()
        );
        scans.push(all);
    }
    println!(
        "  whole scan moto/berth = {:.1}x",
        scans[1].as_secs_f64() / scans[0].as_secs_f64()
    );
    drop(moto);

    println!("awslogs: the agent shipping ~10,000 lines/s of one container (20 s):");
    let (agent_cpu, rss, dockerd_cpu, rate) = agent_overhead(berth_bin, &berth, dir.path());
    println!(
        "  agent CPU {agent_cpu:.1}% of one core, RSS {rss:.1} MiB; dockerd CPU {dockerd_cpu:.1}%; {rate:.0} lines/s stored"
    );
}
