//! Replication benchmark: how fast Berth replicates an image to a second Berth deployment,
//! against a plain `skopeo copy` of the same image between the same two servers, same run.
//!
//! Starts two `berth up` servers on loopback (B with account 111122223333; A with B as a
//! `[[replication.remote]]`), pushes an image of `LAYERS` incompressible layers of `LAYER_MIB`
//! MiB each into A, then:
//! * **Berth**: puts a replication configuration on A, pushes the image's manifest into the
//!   replicated repository (its blobs are linked there already) and times from the manifest's
//!   acknowledgement until DescribeImageReplicationStatus says COMPLETE (the task is activated
//!   by the push; the status is polled every 10 ms);
//! * **skopeo**: `skopeo copy docker://A/… docker://B/…` of the same image into another
//!   repository of B, timed as a process.
//!
//! Both move the same bytes from A's blob store through A's and B's HTTP stacks into B's blob
//! store (fsynced); MB/s = the image's bytes / the time.
//!
//! Usage: replication_bench BERTH_BIN [LAYER_MIB] [LAYERS] (`scripts/bench-replication.sh`)

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

const REMOTE_ACCOUNT: &str = "111122223333";

/// `len` bytes no compressor can shrink (xorshift), different per `seed`.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn ok(what: &str, (status, body): (u16, String)) -> String {
    assert_eq!(status, 200, "{what}: {body}");
    body
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = args
        .get(1)
        .expect("usage: replication_bench BERTH_BIN [LAYER_MIB] [LAYERS]");
    let layer_mib: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(128);
    let layers: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(4);
    let dir = tempfile::tempdir().unwrap();
    let b = start_berth_env(
        bin,
        &dir.path().join("b"),
        &[("BERTH_ACCOUNT_ID", REMOTE_ACCOUNT)],
    );
    let config = dir.path().join("a.toml");
    std::fs::write(
        &config,
        format!(
            "[[replication.remote]]\nregistry-id = \"{REMOTE_ACCOUNT}\"\nendpoint = \"http://127.0.0.1:{}\"\naccess-key-id = \"{KEY_ID}\"\nsecret-access-key = \"{SECRET}\"\n",
            b.port
        ),
    )
    .unwrap();
    let a = start_berth_env(
        bin,
        &dir.path().join("a"),
        &[("BERTH_CONFIG", config.to_str().unwrap())],
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = reqwest::Client::new();
    let auth = registry_auth(a.port);
    for repo in ["bench/src", "bench/rep"] {
        ok(
            "CreateRepository",
            call(
                a.port,
                "ecr:CreateRepository",
                &format!(r#"{{"repositoryName":"{repo}"}}"#),
            ),
        );
    }
    ok(
        "CreateRepository",
        call(
            b.port,
            "ecr:CreateRepository",
            r#"{"repositoryName":"bench/skopeo"}"#,
        ),
    );

    // The image: pushed into bench/src; its blobs mounted into bench/rep.
    let config_blob =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec();
    let (manifest, total) = rt.block_on(async {
        let cd = push_blob(&client, a.port, Some(&auth), "bench/src", config_blob.clone()).await;
        let mut descs = Vec::new();
        let mut total = config_blob.len();
        for n in 0..layers {
            let layer = noise(layer_mib << 20, n as u64 + 1);
            total += layer.len();
            let size = layer.len();
            let d = push_blob(&client, a.port, Some(&auth), "bench/src", layer).await;
            descs.push(serde_json::json!({"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": d, "size": size}));
        }
        let m = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": cd, "size": config_blob.len()},
            "layers": descs})
        .to_string();
        for d in std::iter::once(cd).chain(descs.iter().map(|d| d["digest"].as_str().unwrap().to_string())) {
            let r = client
                .post(format!("http://127.0.0.1:{}/v2/bench/rep/blobs/uploads/?mount={d}&from=bench/src", a.port))
                .header("authorization", &auth)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201, "mount");
        }
        let r = client
            .put(format!("http://127.0.0.1:{}/v2/bench/src/manifests/v1", a.port))
            .header("authorization", &auth)
            .header("content-type", "application/vnd.docker.distribution.manifest.v2+json")
            .body(m.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        (m, total)
    });
    let mb = total as f64 / 1e6;

    // Berth's replication.
    ok(
        "PutReplicationConfiguration",
        call(
            a.port,
            "ecr:PutReplicationConfiguration",
            &format!(
                r#"{{"replicationConfiguration":{{"rules":[{{"destinations":[{{"region":"us-east-1","registryId":"{REMOTE_ACCOUNT}"}}],"repositoryFilters":[{{"filter":"bench/rep","filterType":"PREFIX_MATCH"}}]}}]}}}}"#
            ),
        ),
    );
    let started = rt.block_on(async {
        let r = client
            .put(format!(
                "http://127.0.0.1:{}/v2/bench/rep/manifests/v1",
                a.port
            ))
            .header("authorization", &auth)
            .header(
                "content-type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .body(manifest.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        Instant::now()
    });
    loop {
        let body = ok(
            "DescribeImageReplicationStatus",
            call(
                a.port,
                "ecr:DescribeImageReplicationStatus",
                r#"{"repositoryName":"bench/rep","imageId":{"imageTag":"v1"}}"#,
            ),
        );
        if body.contains("COMPLETE") {
            break;
        }
        assert!(!body.contains("FAILED"), "{body}");
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "replication took too long"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let berth = started.elapsed();

    // skopeo between the same two servers.
    let creds = |port: u16| {
        let a = registry_auth(port);
        let (user, password) = berth_testkit::decode_basic(a.trim_start_matches("Basic "));
        format!("{user}:{password}")
    };
    let started = Instant::now();
    let out = Command::new("skopeo")
        .args([
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            "--dest-tls-verify=false",
        ])
        .args([
            "--src-creds",
            &creds(a.port),
            "--dest-creds",
            &creds(b.port),
        ])
        .arg(format!("docker://127.0.0.1:{}/bench/src:v1", a.port))
        .arg(format!("docker://127.0.0.1:{}/bench/skopeo:v1", b.port))
        .output()
        .expect("skopeo (apt-get install skopeo)");
    let skopeo = started.elapsed();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    println!(
        "replication of one image, {layers} layers x {layer_mib} MiB ({mb:.0} MB), A -> B on loopback"
    );
    println!(
        "  berth replication: {:.2} s, {:.0} MB/s",
        berth.as_secs_f64(),
        mb / berth.as_secs_f64()
    );
    println!(
        "  skopeo copy:       {:.2} s, {:.0} MB/s",
        skopeo.as_secs_f64(),
        mb / skopeo.as_secs_f64()
    );
    println!(
        "  ratio (berth / skopeo): {:.2}",
        skopeo.as_secs_f64() / berth.as_secs_f64()
    );
}
