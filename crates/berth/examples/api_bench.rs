//! API throughput benchmark: Berth vs moto's server and vs a physical-limit anchor, same
//! machine, same run.
//!
//! Run with `scripts/bench-api.sh` (it builds Berth in release mode and installs wrk and moto).
//! Starts `berth up`, `moto_server` and the anchor — this program again (`--anchor`): a minimal
//! hyper server on tokio's multi-threaded runtime that reads each request's body and answers a
//! fixed 1 KiB JSON document, the least any server answering this POST must do — on loopback,
//! prepares a cluster and a task definition on Berth and moto, then drives each with `wrk`
//! replaying one SigV4-signed request (32 connections, one wrk thread so the load generator
//! leaves the servers most of the 2 cores). Prints req/s, p99, the server's CPU time per
//! request (user + system, all threads, from /proc), the ratios, and Berth's RSS idle and after
//! the runs.
//!
//! Usage: api_bench BERTH_BIN MOTO_SERVER_BIN [SECONDS]

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--anchor") {
        anchor();
        return;
    }
    if args.get(1).map(String::as_str) == Some("--ab") {
        return ab(&args[2..]);
    }
    let usage = "usage: api_bench BERTH_BIN MOTO_SERVER_BIN [SECONDS [POSTGRES_URL]]";
    let berth_bin = args.get(1).expect(usage);
    let moto_bin = args.get(2).expect(usage);
    let seconds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();

    let berth = start_berth(berth_bin, &dir.path().join("data"));
    let moto = start_moto(moto_bin);
    let anchor = start_anchor();
    // With a PostgreSQL database: two servers sharing it, A (where the writes go) and B (a
    // second replica, read only here).
    let replicas: Vec<Target> = args
        .get(4)
        .map(|url| {
            ["berth-pg-a", "berth-pg-b"]
                .into_iter()
                .enumerate()
                .map(|(i, name)| {
                    let mut t = start_berth_env(
                        berth_bin,
                        &dir.path().join(format!("replica-{i}")),
                        &[("BERTH_DATABASE", url.as_str())],
                    );
                    t.name = name;
                    t
                })
                .collect()
        })
        .unwrap_or_default();
    let berth_pid = berth.child.id();
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss_mib(berth_pid);

    for t in [&berth, &moto].into_iter().chain(replicas.first()) {
        assert_eq!(
            call(t.port, "CreateCluster", r#"{"clusterName":"bench"}"#).0,
            200,
            "{} CreateCluster",
            t.name
        );
        assert_eq!(
            call(t.port, "RegisterTaskDefinition", TD).0,
            200,
            "{} RegisterTaskDefinition",
            t.name
        );
    }

    println!("| workload | target | req/s | p99 ms | CPU µs/request | non-2xx |");
    println!("|---|---|---|---|---|---|");
    let mut results = Vec::new();
    for (op, body) in [
        ("DescribeTaskDefinition", r#"{"taskDefinition":"bench"}"#),
        ("RegisterTaskDefinition", TD),
    ] {
        let mut runs = Vec::new();
        // Replica A takes the writes, and both replicas the reads.
        let on_postgres = match op {
            "RegisterTaskDefinition" => &replicas[..replicas.len().min(1)],
            _ => &replicas[..],
        };
        for t in [&berth, &moto, &anchor].into_iter().chain(on_postgres) {
            let before = cpu_us(t.child.id());
            let r = wrk(t.port, op, body, seconds, dir.path());
            let per_request = (cpu_us(t.child.id()) - before) as f64 / r.requests.max(1) as f64;
            println!(
                "| {op} | {} | {:.0} | {:.2} | {per_request:.1} | {} |",
                t.name, r.rps, r.p99_ms, r.non2xx
            );
            runs.push((r, per_request));
        }
        results.push((op, runs));
    }
    let rss_after = rss_mib(berth_pid);
    println!();
    for (op, runs) in &results {
        let (berth, moto, anchor) = (&runs[0], &runs[1], &runs[2]);
        println!(
            "{op}: berth/moto = {:.1}x; berth/anchor = {:.2}x req/s, {:.2}x CPU per request",
            berth.0.rps / moto.0.rps.max(1.0),
            berth.0.rps / anchor.0.rps.max(1.0),
            berth.1 / anchor.1.max(0.001),
        );
        for (i, pg) in runs[3..].iter().enumerate() {
            println!(
                "{op}: PostgreSQL replica {}/embedded = {:.2}x req/s",
                ["A", "B"][i],
                pg.0.rps / berth.0.rps.max(1.0),
            );
        }
    }
    println!("berth RSS: idle {rss_idle:.1} MiB, after the runs {rss_after:.1} MiB");
}

/// `--ab BERTH_BIN_A BERTH_BIN_B [ROUNDS] [SECONDS]`: two builds of Berth and the anchor,
/// side by side, each workload driven on A then B (B then A on odd rounds) then the anchor,
/// round after round; prints each run, then the medians of B ÷ A and of each ÷ the anchor
/// (ratios taken within a round, so the machine's swings cancel).
fn ab(args: &[String]) {
    let usage = "usage: api_bench --ab BERTH_BIN_A BERTH_BIN_B [ROUNDS] [SECONDS]";
    let bins = [args.first().expect(usage), args.get(1).expect(usage)];
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let seconds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let mut a = start_berth(bins[0], &dir.path().join("a"));
    a.name = "A";
    let mut b = start_berth(bins[1], &dir.path().join("b"));
    b.name = "B";
    for t in [&a, &b] {
        assert_eq!(
            call(t.port, "RegisterTaskDefinition", TD).0,
            200,
            "{}",
            t.name
        );
    }
    let anchor = start_anchor();
    println!(
        "| round | workload | A req/s | A CPU µs | B req/s | B CPU µs | anchor req/s | anchor CPU µs |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let workloads = [
        ("DescribeTaskDefinition", r#"{"taskDefinition":"bench"}"#),
        ("RegisterTaskDefinition", TD),
    ];
    // Per workload: B/A req/s, B/A CPU, A/anchor req/s, B/anchor req/s.
    let mut ratios = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; workloads.len()];
    for round in 0..rounds {
        for (w, (op, body)) in workloads.iter().enumerate() {
            let order = if round % 2 == 0 {
                [&a, &b, &anchor]
            } else {
                [&b, &a, &anchor]
            };
            let mut got = std::collections::HashMap::new();
            for t in order {
                let before = cpu_us(t.child.id());
                let r = wrk(t.port, op, body, seconds, dir.path());
                let cpu = (cpu_us(t.child.id()) - before) as f64 / r.requests.max(1) as f64;
                assert_eq!(r.non2xx, 0, "{} {op}", t.name);
                got.insert(t.name, (r.rps, cpu));
            }
            let (ra, rb, rn) = (got["A"], got["B"], got["anchor"]);
            println!(
                "| {} | {op} | {:.0} | {:.1} | {:.0} | {:.1} | {:.0} | {:.1} |",
                round + 1,
                ra.0,
                ra.1,
                rb.0,
                rb.1,
                rn.0,
                rn.1
            );
            let r = &mut ratios[w];
            r[0].push(rb.0 / ra.0.max(1.0));
            r[1].push(rb.1 / ra.1.max(0.001));
            r[2].push(ra.0 / rn.0.max(1.0));
            r[3].push(rb.0 / rn.0.max(1.0));
        }
    }
    println!();
    for ((op, _), r) in workloads.iter().zip(ratios) {
        let [rps, cpu, a_anchor, b_anchor] = r.map(median);
        println!(
            "{op}, medians of {rounds} rounds: B/A = {rps:.3}x req/s, {cpu:.3}x CPU per request; A/anchor = {a_anchor:.2}x, B/anchor = {b_anchor:.2}x req/s"
        );
    }
}

/// This program as the anchor server; it prints its port.
fn start_anchor() -> Target {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--anchor")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the anchor");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    Target {
        name: "anchor",
        port: line.trim().parse().expect("the anchor's port"),
        child,
    }
}

/// The anchor: reads each request whole and answers the same 1 KiB of JSON.
#[tokio::main]
async fn anchor() {
    use http_body_util::{BodyExt, Full};
    use hyper::body::{Bytes, Incoming};
    let body = Bytes::from(format!(
        r#"{{"taskDefinition":{{"padding":"{}"}}}}"#,
        "x".repeat(990)
    ));
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", socket.local_addr().unwrap().port());
    loop {
        let Ok((stream, _)) = socket.accept().await else {
            continue;
        };
        let body = body.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let body = body.clone();
                async move {
                    let _ = req.into_body().collect().await;
                    hyper::Response::builder()
                        .header("content-type", "application/x-amz-json-1.1")
                        .body(Full::new(body))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}
