//! Blob-store benchmark: Berth with its blobs on SeaweedFS (S3, `--blobs`) vs on the
//! filesystem, and Berth's blob GET vs a GET straight from SeaweedFS's own S3 endpoint; same
//! machine, same run. Both Berths run with auth on and durable defaults.
//!
//! Run with `scripts/bench-blobs.sh` (it installs SeaweedFS and builds Berth in release mode).
//! Measures, for each Berth:
//! * pushing 32 layers of 8 MiB (monolithic POST + PUT) at concurrency 4: MB/s;
//! * pulling them back at concurrency 4: MB/s;
//! * one 256 MiB blob pushed in one PUT: MB/s;
//! * its GET in a single stream (curl): MB/s — and the same object's GET from SeaweedFS
//!   directly.
//!
//! Usage: blobs_bench BERTH_BIN (with `BERTH_TEST_WEED` naming SeaweedFS's `weed`)

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use std::process::Command;
use std::time::Instant;

const LAYERS: usize = 32;
const LAYER_BYTES: usize = 8 << 20;
const CONCURRENCY: usize = 4;
const BIG_BYTES: usize = 256 << 20;

/// A Berth with a repository `bench`, and its registry `Authorization`.
fn berth_with_repo(bin: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> (Target, String) {
    let berth = start_berth_env(bin, dir, env);
    let (status, body) = call(
        berth.port,
        "ecr:CreateRepository",
        r#"{"repositoryName":"bench"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let auth = registry_auth(berth.port);
    (berth, auth)
}

/// Push then pull throughput (MB/s) of [`LAYERS`] layers at [`CONCURRENCY`].
async fn push_pull(port: u16, auth: &str, seed: u8) -> (f64, f64) {
    let client = reqwest::Client::new();
    let layers: Vec<Vec<u8>> = (0..LAYERS)
        .map(|i| {
            let mut l = vec![seed; LAYER_BYTES];
            l[..8].copy_from_slice(&(i as u64).to_le_bytes());
            l
        })
        .collect();
    let total = (LAYERS * LAYER_BYTES) as f64 / 1e6;
    let started = Instant::now();
    let mut digests = Vec::new();
    for chunk in layers.chunks(CONCURRENCY) {
        let pushes = chunk
            .iter()
            .map(|l| push_blob(&client, port, Some(auth), "bench", l.clone()))
            .collect::<Vec<_>>();
        digests.extend(futures_util::future::join_all(pushes).await);
    }
    let push_mbs = total / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for chunk in digests.chunks(CONCURRENCY) {
        let pulls = chunk.iter().map(|d| {
            let client = client.clone();
            async move {
                let r = client
                    .get(format!("http://127.0.0.1:{port}/v2/bench/blobs/{d}"))
                    .header("authorization", auth)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.bytes().await.unwrap().len(), LAYER_BYTES);
            }
        });
        futures_util::future::join_all(pulls).await;
    }
    (push_mbs, total / started.elapsed().as_secs_f64())
}

/// `curl` GET of `url` to /dev/null: MB/s.
fn curl_get(url: &str, auth: Option<&str>) -> f64 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{speed_download} %{http_code}",
    ]);
    if let Some(a) = auth {
        cmd.args(["-H", &format!("Authorization: {a}")]);
    }
    let out = cmd.arg(url).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut it = text.split_whitespace();
    let speed: f64 = it.next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    assert_eq!(it.next(), Some("200"), "GET {url}");
    speed / 1e6
}

/// `curl` PUT of `file` to `url` (SeaweedFS takes unsigned requests).
fn curl_put(url: &str, file: &std::path::Path) {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-T"])
        .arg(file)
        .arg(url)
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "PUT {url}");
}

fn main() {
    let bin = std::env::args()
        .nth(1)
        .expect("usage: blobs_bench BERTH_BIN");
    let weed = berth_testkit::SeaweedServer::start();
    let s3 = weed.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let (fs, fs_auth) = berth_with_repo(&bin, &dir.path().join("fs"), &[]);
    let mut env = berth_testkit::s3_env(&s3);
    env.push(("BERTH_BLOBS".into(), "s3://berth-test/bench".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (on_s3, s3_auth) = berth_with_repo(&bin, &dir.path().join("s3"), &env);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (fs_push, fs_pull) = rt.block_on(push_pull(fs.port, &fs_auth, 1));
    let (s3_push, s3_pull) = rt.block_on(push_pull(on_s3.port, &s3_auth, 2));

    // One 256 MiB blob: through Berth (S3), through Berth (filesystem), and straight from
    // SeaweedFS.
    let big: Vec<u8> = (0..BIG_BYTES).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("big");
    std::fs::write(&file, &big).unwrap();
    curl_put(&format!("{s3}/berth-test/direct-big"), &file);
    let mb = BIG_BYTES as f64 / 1e6;
    let (d, big_s3_push, big_fs_push) = rt.block_on(async {
        let client = reqwest::Client::new();
        let started = Instant::now();
        push_blob(&client, on_s3.port, Some(&s3_auth), "bench", big.clone()).await;
        let on_s3 = mb / started.elapsed().as_secs_f64();
        let started = Instant::now();
        let d = push_blob(&client, fs.port, Some(&fs_auth), "bench", big).await;
        (d, on_s3, mb / started.elapsed().as_secs_f64())
    });
    let blob_url = |port: u16| format!("http://127.0.0.1:{port}/v2/bench/blobs/{d}");
    let mut rows = Vec::new();
    for _ in 0..3 {
        rows.push((
            curl_get(&blob_url(on_s3.port), Some(&s3_auth)),
            curl_get(&format!("{s3}/berth-test/direct-big"), None),
            curl_get(&blob_url(fs.port), Some(&fs_auth)),
        ));
    }
    let best = |f: fn(&(f64, f64, f64)) -> f64| rows.iter().map(f).fold(0.0, f64::max);
    let (via_s3, direct, via_fs) = (best(|r| r.0), best(|r| r.1), best(|r| r.2));

    println!(
        "{LAYERS} layers of {} MiB, concurrency {CONCURRENCY}:",
        LAYER_BYTES >> 20
    );
    println!("| blobs | push MB/s | pull MB/s |\n|---|---|---|");
    println!("| filesystem | {fs_push:.0} | {fs_pull:.0} |");
    println!("| SeaweedFS (S3) | {s3_push:.0} | {s3_pull:.0} |");
    println!(
        "S3 / filesystem: push {:.2}x, pull {:.2}x",
        s3_push / fs_push,
        s3_pull / fs_pull
    );
    println!(
        "256 MiB blob pushed in one PUT, MB/s: berth on S3 {big_s3_push:.0}, berth on filesystem {big_fs_push:.0}; S3 / filesystem: {:.2}x",
        big_s3_push / big_fs_push
    );
    println!(
        "256 MiB blob GET (best of 3), MB/s: berth on S3 {via_s3:.0}, SeaweedFS direct {direct:.0}, berth on filesystem {via_fs:.0}; berth on S3 / direct: {:.2}x",
        via_s3 / direct
    );
}
