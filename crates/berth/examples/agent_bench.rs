//! What one idle agent costs the control plane: the requests and bytes it sends (and gets
//! back) per minute once registered, with nothing to do.
//!
//! Run with `scripts/bench-agent.sh` (Docker must be running: the agent checks its engine).
//! Starts `berth up` from BERTH_BIN on loopback and `berth agent` (of the same binary, so two
//! builds can be compared) pointed at a counting TCP relay in front of it. Once the agent has
//! registered, the relay's counters start; after SECONDS it prints requests, bytes sent and
//! bytes received, scaled to one minute.
//!
//! Usage: agent_bench BERTH_BIN [SECONDS]

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
}

/// Copies `from` to `to`, counting bytes (and request lines, for the agent's direction).
fn pump(mut from: TcpStream, mut to: TcpStream, counters: Arc<Counters>, upstream: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if upstream {
            counters.sent.fetch_add(n as u64, Ordering::Relaxed);
            // A request line starts every request the agent sends (it sends JSON bodies only).
            let text = String::from_utf8_lossy(&buf[..n]);
            let lines = text
                .split("\r\n")
                .filter(|l| l.starts_with("POST /") || l.starts_with("GET /"))
                .count();
            counters.requests.fetch_add(lines as u64, Ordering::Relaxed);
        } else {
            counters.received.fetch_add(n as u64, Ordering::Relaxed);
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

/// A relay on a free port in front of `target`; returns its port.
fn relay(target: u16, counters: Arc<Counters>) -> u16 {
    let socket = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = socket.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in socket.incoming().map_while(Result::ok) {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
            let (up, down) = (counters.clone(), counters.clone());
            std::thread::spawn(move || pump(client, server, up, true));
            std::thread::spawn(move || pump(s2, c2, down, false));
        }
    });
    port
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let berth_bin = args.get(1).expect("usage: agent_bench BERTH_BIN [SECONDS]");
    let seconds: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(60);
    let dir = tempfile::tempdir().unwrap();
    let berth = start_berth(berth_bin, &dir.path().join("data"));
    assert_eq!(
        call(berth.port, "CreateCluster", r#"{"clusterName":"bench"}"#).0,
        200
    );
    let counters = Arc::new(Counters::default());
    let port = relay(berth.port, counters.clone());
    let mut agent = spawn_bench_agent(berth_bin, port, &dir.path().join("agent"));
    wait_agent_registered(berth.port);
    // Settled: the first passes after registering are behind it.
    std::thread::sleep(Duration::from_secs(5));
    let start = (
        counters.requests.load(Ordering::Relaxed),
        counters.sent.load(Ordering::Relaxed),
        counters.received.load(Ordering::Relaxed),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let per_minute = |now: u64, then: u64| (now - then) as f64 * 60.0 / seconds as f64;
    let requests = per_minute(counters.requests.load(Ordering::Relaxed), start.0);
    let sent = per_minute(counters.sent.load(Ordering::Relaxed), start.1);
    let received = per_minute(counters.received.load(Ordering::Relaxed), start.2);
    let _ = agent.kill();
    let _ = agent.wait();
    println!("| idle agent, per minute | requests | bytes sent | bytes received |");
    println!("|---|---|---|---|");
    println!("| {berth_bin} | {requests:.0} | {sent:.0} | {received:.0} |");
}
