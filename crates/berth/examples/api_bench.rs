//! API throughput benchmark: Berth vs moto's server, same machine, same run.
//!
//! Run with `scripts/bench-api.sh` (it builds Berth in release mode and installs wrk and moto).
//! Starts `berth up` and `moto_server` on loopback, prepares a cluster and a task definition on
//! each, then drives each with `wrk` replaying one SigV4-signed request (32 connections, one wrk
//! thread so the load generator leaves the server most of the 2 cores) and prints req/s, p99
//! and the ratio, plus Berth's RSS idle and after the runs.
//!
//! Usage: api_bench BERTH_BIN MOTO_SERVER_BIN [SECONDS]

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let berth_bin = args
        .get(1)
        .expect("usage: api_bench BERTH_BIN MOTO_SERVER_BIN [SECONDS]");
    let moto_bin = args
        .get(2)
        .expect("usage: api_bench BERTH_BIN MOTO_SERVER_BIN [SECONDS]");
    let seconds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();

    let berth = start_berth(berth_bin, &dir.path().join("data"));
    let moto = start_moto(moto_bin);
    let berth_pid = berth.child.id();
    std::thread::sleep(Duration::from_millis(500));
    let rss_idle = rss_mib(berth_pid);

    for t in [&berth, &moto] {
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

    println!("| workload | target | req/s | p99 ms | non-2xx |");
    println!("|---|---|---|---|---|");
    let mut results = Vec::new();
    for (op, body) in [
        ("DescribeTaskDefinition", r#"{"taskDefinition":"bench"}"#),
        ("RegisterTaskDefinition", TD),
    ] {
        let mut pair = Vec::new();
        for t in [&berth, &moto] {
            let r = wrk(t.port, op, body, seconds, dir.path());
            println!(
                "| {op} | {} | {:.0} | {:.2} | {} |",
                t.name, r.rps, r.p99_ms, r.non2xx
            );
            pair.push(r);
        }
        results.push((op, pair));
    }
    let rss_after = rss_mib(berth_pid);
    println!();
    for (op, pair) in &results {
        println!(
            "{op}: berth/moto = {:.1}x",
            pair[0].rps / pair[1].rps.max(1.0)
        );
    }
    println!("berth RSS: idle {rss_idle:.1} MiB, after the runs {rss_after:.1} MiB");
}
