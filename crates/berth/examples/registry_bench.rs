//! Registry benchmark: Berth (auth on) vs CNCF distribution (Debian's `docker-registry`) and
//! `ferro-oci-server`, same machine, same run.
//!
//! Run with `scripts/bench-registry.sh` (it installs the peers and wrk, builds Berth in release
//! mode). Measures, for each registry:
//! * pushing 200 small images (config + one layer + manifest, POST/PUT uploads) at
//!   concurrency 8, in images/s — every blob and manifest acknowledged is durable in Berth;
//! * manifest GET by tag with `wrk -t1 -c32`: req/s and p99;
//! * one 256 MiB blob GET in a single stream (curl): MB/s;
//!
//! and for Berth alone the peak RSS while a 2 GiB layer is pushed in one streamed PUT.
//!
//! Usage: registry_bench BERTH_BIN DOCKER_REGISTRY_BIN [FERRO_BIN] [SECONDS]
//!
//! `registry_bench --ab BERTH_BIN_A BERTH_BIN_B [ROUNDS] [SECONDS]` compares two builds of
//! Berth on manifest GET only: both run side by side, and each round drives A then B (B then
//! A on odd rounds) with the same `wrk`, printing req/s and server CPU µs per request, then the
//! medians of B ÷ A.

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

struct Peer {
    name: &'static str,
    port: u16,
    /// `Authorization` header value, if the registry wants one.
    auth: Option<String>,
    child: Child,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Clone)]
struct PeerInfo {
    name: &'static str,
    port: u16,
    auth: Option<String>,
}

async fn push_image(client: &reqwest::Client, p: &PeerInfo, repo: &str, i: usize) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","n":{i}}}"#).into_bytes();
    let layer = format!("layer {i} ").repeat(100).into_bytes();
    let (cl, ll) = (config.len(), layer.len());
    let cd = push_blob(client, p.port, p.auth.as_deref(), repo, config).await;
    let ld = push_blob(client, p.port, p.auth.as_deref(), repo, layer).await;
    let manifest = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": cl},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": ld, "size": ll}]})
    .to_string();
    let mut put = client
        .put(format!(
            "http://127.0.0.1:{}/v2/{repo}/manifests/t{i}",
            p.port
        ))
        .header(
            "content-type",
            "application/vnd.docker.distribution.manifest.v2+json",
        )
        .body(manifest);
    if let Some(a) = &p.auth {
        put = put.header("authorization", a);
    }
    let r = put.send().await.unwrap();
    assert_eq!(r.status(), 201, "{} manifest push", p.name);
}

fn wrk_manifest(p: &PeerInfo, seconds: u32, dir: &std::path::Path) -> WrkResult {
    let mut lua = String::from(
        "wrk.method = \"GET\"\nwrk.headers[\"Accept\"] = \"application/vnd.docker.distribution.manifest.v2+json\"\n",
    );
    if let Some(a) = &p.auth {
        lua.push_str(&format!("wrk.headers[\"Authorization\"] = \"{a}\"\n"));
    }
    let script = dir.join(format!("manifest-{}.lua", p.port));
    std::fs::write(&script, lua).unwrap();
    let out = Command::new("wrk")
        .args(["-t1", "-c32", &format!("-d{seconds}s"), "--latency", "-s"])
        .arg(&script)
        .arg(format!("http://127.0.0.1:{}/v2/bench/manifests/t0", p.port))
        .output()
        .expect("run wrk");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

fn curl_speed(p: &PeerInfo, d: &str) -> f64 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-L",
        "-o",
        "/dev/null",
        "-w",
        "%{speed_download} %{http_code}",
    ]);
    if let Some(a) = &p.auth {
        cmd.args(["-H", &format!("Authorization: {a}")]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{}/v2/bench/blobs/{d}", p.port))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut it = text.split_whitespace();
    let speed: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    assert_eq!(it.next(), Some("200"), "{} blob GET", p.name);
    speed / 1e6
}

/// `berth up` with an empty `bench` repository, and how to reach its registry.
fn berth_with_repository(
    bin: &str,
    dir: &std::path::Path,
    name: &'static str,
) -> (Target, PeerInfo) {
    let berth = start_berth(bin, dir);
    let created = call(
        berth.port,
        "ecr:CreateRepository",
        r#"{"repositoryName":"bench"}"#,
    );
    assert_eq!(created.0, 200, "{name}: CreateRepository");
    let peer = PeerInfo {
        name,
        port: berth.port,
        auth: Some(registry_auth(berth.port)),
    };
    (berth, peer)
}

/// `--ab`: manifest GET of two builds, interleaved round by round.
fn ab(args: &[String]) {
    let usage = "usage: registry_bench --ab BERTH_BIN_A BERTH_BIN_B [ROUNDS] [SECONDS]";
    let bins = [args.first().expect(usage), args.get(1).expect(usage)];
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let seconds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let dir = tempfile::tempdir().unwrap();
    let servers = [
        berth_with_repository(bins[0], &dir.path().join("a"), "A"),
        berth_with_repository(bins[1], &dir.path().join("b"), "B"),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (_, peer) in &servers {
        rt.block_on(push_image(&reqwest::Client::new(), peer, "bench", 0));
    }
    println!("| round | A req/s | A CPU µs/request | B req/s | B CPU µs/request |");
    println!("|---|---|---|---|---|");
    let (mut rps_ratio, mut cpu_ratio) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let mut got = [(0.0, 0.0); 2];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for i in order {
            let (server, peer) = &servers[i];
            let pid = server.child.id();
            let before = cpu_us(pid);
            let w = wrk_manifest(peer, seconds, dir.path());
            let cpu = (cpu_us(pid) - before) as f64 / w.requests.max(1) as f64;
            got[i] = (w.rps, cpu);
        }
        println!(
            "| {} | {:.0} | {:.1} | {:.0} | {:.1} |",
            round + 1,
            got[0].0,
            got[0].1,
            got[1].0,
            got[1].1
        );
        rps_ratio.push(got[1].0 / got[0].0.max(1.0));
        cpu_ratio.push(got[1].1 / got[0].1.max(0.001));
    }
    println!(
        "B / A, median of {rounds} rounds: {:.3}x req/s, {:.3}x CPU per request",
        median(rps_ratio),
        median(cpu_ratio)
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--ab") {
        return ab(&args[2..]);
    }
    let usage = "usage: registry_bench BERTH_BIN DOCKER_REGISTRY_BIN [FERRO_BIN] [SECONDS]";
    let berth_bin = args.get(1).expect(usage);
    let distribution_bin = args.get(2).expect(usage);
    let ferro_bin = args.get(3).filter(|s| !s.is_empty());
    let seconds: u32 = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // Berth, with a repository and an ECR token.
    let (berth, info) = berth_with_repository(berth_bin, &dir.path().join("berth"), "berth");
    let berth_pid = berth.child.id();
    let mut peers = vec![Peer {
        name: info.name,
        port: info.port,
        auth: info.auth,
        child: Command::new("true").spawn().unwrap(),
    }];

    // CNCF distribution, filesystem storage, no auth (its fastest configuration).
    let dport = free_port();
    let config = dir.path().join("distribution.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{dport}\n",
            dir.path().join("distribution-data").display()
        ),
    )
    .unwrap();
    let child = Command::new(distribution_bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    wait_listening(dport);
    peers.push(Peer {
        name: "distribution",
        port: dport,
        auth: None,
        child,
    });

    if let Some(bin) = ferro_bin {
        let fport = free_port();
        let child = Command::new(bin)
            .env("FERRO_OCI_LISTEN", format!("127.0.0.1:{fport}"))
            .env("FERRO_OCI_STORAGE_DIR", dir.path().join("ferro-data"))
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ferro-oci-server");
        wait_listening(fport);
        peers.push(Peer {
            name: "ferro-oci-server",
            port: fport,
            auth: None,
            child,
        });
    }
    let infos: Vec<PeerInfo> = peers
        .iter()
        .map(|p| PeerInfo {
            name: p.name,
            port: p.port,
            auth: p.auth.clone(),
        })
        .collect();

    println!(
        "| registry | push 200 images, c=8 (images/s) | manifest GET req/s | p99 ms | 256 MiB blob GET MB/s |"
    );
    println!("|---|---|---|---|---|");
    let big: Vec<u8> = (0..256u32 * 1024 * 1024)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let mut rows = Vec::new();
    let mut manifest_cpu_us = 0.0;
    for p in &infos {
        let client = reqwest::Client::new();
        let started = Instant::now();
        rt.block_on(async {
            let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let mut tasks = Vec::new();
            for _ in 0..8 {
                let (client, p, next) = (client.clone(), p.clone(), next.clone());
                tasks.push(tokio::spawn(async move {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= 200 {
                            break;
                        }
                        push_image(&client, &p, "bench", i).await;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
        });
        let push_rate = 200.0 / started.elapsed().as_secs_f64();
        let cpu_before = cpu_us(berth_pid);
        let w = wrk_manifest(p, seconds, dir.path());
        if p.name == "berth" {
            // Server CPU per request: steadier than req/s on a shared VM.
            let cpu = cpu_us(berth_pid) - cpu_before;
            manifest_cpu_us = cpu as f64 / w.requests.max(1) as f64;
        }
        let d = rt.block_on(push_blob(
            &client,
            p.port,
            p.auth.as_deref(),
            "bench",
            big.clone(),
        ));
        let speed = curl_speed(p, &d);
        println!(
            "| {} | {push_rate:.0} | {:.0} | {:.2} | {speed:.0} |",
            p.name, w.rps, w.p99_ms
        );
        rows.push((p.name, push_rate, w.rps, w.p99_ms, speed));
    }
    println!();
    println!("berth manifest GET: {manifest_cpu_us:.1} µs of server CPU per request");
    for r in rows.iter().skip(1) {
        println!(
            "berth / {}: push {:.1}x, manifest GET {:.1}x, blob GET {:.2}x",
            r.0,
            rows[0].1 / r.1,
            rows[0].2 / r.2.max(1.0),
            rows[0].4 / r.4.max(1.0)
        );
    }

    // Peak RSS of Berth while a 2 GiB layer streams in (one PUT of a file via curl).
    let file = dir.path().join("2g.bin");
    let f = std::fs::File::create(&file).unwrap();
    f.set_len(2 << 30).unwrap();
    let sum = Command::new("sha256sum").arg(&file).output().unwrap();
    let hexsum = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let auth = peers[0].auth.clone().unwrap();
    let loc = rt.block_on(async {
        let r = reqwest::Client::new()
            .post(format!(
                "http://127.0.0.1:{}/v2/bench/blobs/uploads/",
                berth.port
            ))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        r.headers()["location"].to_str().unwrap().to_string()
    });
    let peak = Arc::new(std::sync::Mutex::new(0.0f64));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let r = rss_mib(berth_pid);
                let mut p = peak.lock().unwrap();
                *p = p.max(r);
                drop(p);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let started = Instant::now();
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-T",
        ])
        .arg(&file)
        .args(["-H", &format!("Authorization: {auth}")])
        .arg(format!(
            "http://127.0.0.1:{}{loc}?digest=sha256:{hexsum}",
            berth.port
        ))
        .output()
        .unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "201", "2 GiB push");
    println!(
        "berth: 2 GiB layer pushed in {:.1} s, peak RSS {:.1} MiB",
        started.elapsed().as_secs_f64(),
        *peak.lock().unwrap()
    );
}
