//! Load balancer benchmark: Berth's listener vs nginx and haproxy (Debian) as reverse proxies to
//! the same nginx backend, same machine, same run, with `wrk` (2 threads, 64 connections).
//! The proxies run in interleaved rounds; it prints req/s and p99 of each run (and of the
//! backend hit directly), their medians, the ratio of the medians to the better peer (and per
//! round), the p99 Berth adds over the backend, and Berth's RSS idle and with 10,000 idle
//! client connections open on its listener.
//!
//! Run with `scripts/bench-lb.sh [SECONDS] [ROUNDS]` (it installs nginx, haproxy and wrk).
//! Usage: lb_bench BERTH_BIN AWS_BIN [SECONDS] [ROUNDS]

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(program: &str, args: &[&str]) -> std::process::Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn wait_http(port: u16, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            let _ = s.write_all(
                format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
            );
            let mut out = String::new();
            let _ = s.read_to_string(&mut out);
            if out.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "nothing answers 200 on port {port}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_wrk(port: u16, seconds: u32) -> WrkResult {
    let out = Command::new("wrk")
        .args(["-t2", "-c64", &format!("-d{seconds}s"), "--latency"])
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("run wrk");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: lb_bench BERTH_BIN AWS_BIN [SECONDS] [ROUNDS]";
    let (berth_bin, aws_bin) = (args.get(1).expect(usage), args.get(2).expect(usage));
    let seconds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let rounds: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(3).max(1);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // The backend: nginx answering a small static page.
    let backend = free_port();
    std::fs::write(
        d.join("backend.conf"),
        format!(
            "worker_processes 1; daemon off; pid {d}/backend.pid; error_log {d}/backend.err;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off; server {{ listen 127.0.0.1:{backend}; location / {{ return 200 'hello from the backend\\n'; }} }} }}\n",
            d = d.display()
        ),
    )
    .unwrap();
    let mut children = vec![spawn(
        "nginx",
        &["-c", &d.join("backend.conf").to_string_lossy()],
    )];
    wait_http(backend, "/");

    // nginx as a reverse proxy (2 workers, keep-alive upstream).
    let nginx = free_port();
    std::fs::write(
        d.join("proxy.conf"),
        format!(
            "worker_processes 2; daemon off; pid {d}/proxy.pid; error_log {d}/proxy.err;\n\
             events {{ worker_connections 4096; }}\n\
             http {{ access_log off; upstream b {{ server 127.0.0.1:{backend}; keepalive 128; }}\n\
             server {{ listen 127.0.0.1:{nginx}; location / {{ proxy_pass http://b; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n",
            d = d.display()
        ),
    )
    .unwrap();
    children.push(spawn(
        "nginx",
        &["-c", &d.join("proxy.conf").to_string_lossy()],
    ));
    // haproxy (2 threads, connection reuse).
    let haproxy = free_port();
    std::fs::write(
        d.join("haproxy.cfg"),
        format!(
            "global\n  nbthread 2\n  maxconn 4000\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n  http-reuse always\n\
             frontend f\n  bind 127.0.0.1:{haproxy}\n  default_backend b\nbackend b\n  server s1 127.0.0.1:{backend}\n"
        ),
    )
    .unwrap();
    children.push(spawn(
        "haproxy",
        &["-f", &d.join("haproxy.cfg").to_string_lossy()],
    ));
    wait_http(nginx, "/");
    wait_http(haproxy, "/");

    // Berth: the server without its in-process load balancer, and a `berth lb` node (so the
    // load balancer's own memory is measured); a load balancer, a target group with the
    // backend, a listener.
    let berth = start_berth_env(berth_bin, &d.join("data"), &[("BERTH_NO_LB", "true")]);
    let endpoint = format!("http://127.0.0.1:{}", berth.port);
    let mut node = Command::new(berth_bin)
        .args(["lb", "--endpoint", &endpoint, "--bind", "127.0.0.1"])
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("berth lb");
    let node_pid = node.id();
    let aws = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(aws_bin)
            .args(args)
            .args([
                "--endpoint-url",
                &endpoint,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .output()
            .expect("aws");
        assert!(
            out.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    };
    let lb = aws(&["elbv2", "create-load-balancer", "--name", "bench"])["LoadBalancers"][0]
        ["LoadBalancerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let tg = aws(&[
        "elbv2",
        "create-target-group",
        "--name",
        "bench",
        "--protocol",
        "HTTP",
        "--port",
        "80",
        "--vpc-id",
        "vpc-1",
        "--target-type",
        "ip",
        "--health-check-interval-seconds",
        "5",
        "--health-check-timeout-seconds",
        "2",
    ])["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_string();
    aws(&[
        "elbv2",
        "register-targets",
        "--target-group-arn",
        &tg,
        "--targets",
        &format!("Id=127.0.0.1,Port={backend}"),
    ]);
    let listener = free_port();
    aws(&[
        "elbv2",
        "create-listener",
        "--load-balancer-arn",
        &lb,
        "--protocol",
        "HTTP",
        "--port",
        &listener.to_string(),
        "--default-actions",
        &format!("Type=forward,TargetGroupArn={tg}"),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = aws(&["elbv2", "describe-target-health", "--target-group-arn", &tg]);
        if h["TargetHealthDescriptions"][0]["TargetHealth"]["State"] == "healthy" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the target never became healthy: {h}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_http(listener, "/");
    let rss_idle = rss_mib(node_pid);

    // Warm up, then measure the backend once and the three proxies in interleaved rounds (the
    // order rotating), so drift on the shared machine falls on all of them alike.
    for port in [backend, nginx, haproxy, listener] {
        run_wrk(port, 2);
    }
    let direct = run_wrk(backend, seconds);
    let proxies = [
        ("nginx as proxy", nginx),
        ("haproxy", haproxy),
        ("berth lb listener", listener),
    ];
    let mut runs: Vec<Vec<WrkResult>> = proxies.iter().map(|_| Vec::new()).collect();
    println!(
        "{:<24} {:>5} {:>10} {:>10} {:>8}",
        "", "round", "req/s", "p99 ms", "non-2xx"
    );
    let row = |name: &str, round: &str, r: &WrkResult| {
        println!(
            "{name:<24} {round:>5} {:>10.0} {:>10.2} {:>8}",
            r.rps, r.p99_ms, r.non2xx
        );
    };
    row("backend (direct)", "-", &direct);
    let mut ratios = Vec::new();
    for round in 0..rounds {
        for k in 0..proxies.len() {
            let i = (round + k) % proxies.len();
            let r = run_wrk(proxies[i].1, seconds);
            row(proxies[i].0, &(round + 1).to_string(), &r);
            runs[i].push(r);
        }
        let best = runs[0][round].rps.max(runs[1][round].rps);
        ratios.push(runs[2][round].rps / best);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let rps = |i: usize| median(runs[i].iter().map(|r| r.rps).collect());
    let p99 = |i: usize| median(runs[i].iter().map(|r| r.p99_ms).collect());
    for (i, (name, _)) in proxies.iter().enumerate() {
        println!("{name:<24} {:>5} {:>10.0} {:>10.2}", "med", rps(i), p99(i));
    }
    let mut sorted = ratios.clone();
    sorted.sort_by(f64::total_cmp);
    println!(
        "berth / better of nginx and haproxy: {:.2}x (medians); per round {}; p99 added over the backend: {:.2} ms",
        rps(2) / rps(0).max(rps(1)),
        ratios
            .iter()
            .map(|r| format!("{r:.2}x"))
            .collect::<Vec<_>>()
            .join(" "),
        p99(2) - direct.p99_ms
    );

    // 10,000 idle client connections on the listener.
    let rss_loaded = rss_mib(node_pid);
    let mut idle = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        match std::net::TcpStream::connect(("127.0.0.1", listener)) {
            Ok(s) => idle.push(s),
            Err(e) => {
                println!("stopped opening connections at {}: {e}", idle.len());
                break;
            }
        }
    }
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "berth lb RSS: {rss_idle:.1} MiB idle, {rss_loaded:.1} MiB after the runs, {:.1} MiB with {} idle client connections",
        rss_mib(node_pid),
        idle.len()
    );
    drop(idle);
    let _ = node.kill();
    let _ = node.wait();
    // SIGTERM, not SIGKILL: nginx's master then stops its workers too (a killed master leaves
    // them running).
    for mut c in children {
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let _ = c.wait();
    }
}
