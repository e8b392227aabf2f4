//! Times `lifecycle::evaluate` on one repository of 10,000 images (varied tags, some image
//! indexes) under a 5-rule policy. Target: under 100 ms per evaluation.
//!
//! `cargo run --release -p berth-registry --example lifecycle_bench`
//!
//! A measurement tool, not library code: it reads the clock to time the calls, and the images
//! are synthetic (built in memory, no store).

use berth_registry::Image;
use berth_registry::lifecycle::{LifecyclePolicy, evaluate, summarize};
use berth_types::Timestamp;
use berth_types::oci::Digest;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const IMAGES: u64 = 10_000;
const RUNS: usize = 20;
const NOW: Timestamp = Timestamp(1_750_000_000_000);
const STEP_MS: i64 = 10 * 60 * 1000;

const POLICY: &str = r#"{"rules":[
  {"rulePriority":1,"description":"release candidates live a week",
   "selection":{"tagStatus":"tagged","tagPatternList":["*-rc*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":7},
   "action":{"type":"expire"}},
  {"rulePriority":2,"description":"keep the newest 100 releases",
   "selection":{"tagStatus":"tagged","tagPatternList":["v*.*.*"],"countType":"imageCountMoreThan","countNumber":100},
   "action":{"type":"expire"}},
  {"rulePriority":3,"description":"keep 500 main builds",
   "selection":{"tagStatus":"tagged","tagPrefixList":["main-","sha-"],"countType":"imageCountMoreThan","countNumber":500},
   "action":{"type":"expire"}},
  {"rulePriority":4,"description":"untagged for a day",
   "selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":1},
   "action":{"type":"expire"}},
  {"rulePriority":5,"description":"nothing older than 60 days",
   "selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":60},
   "action":{"type":"expire"}}
]}"#;

fn digest(n: u64) -> Digest {
    Digest::from_sha256_hex(&format!("{:064x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)))
}

/// Image `i` was pushed `10 × i` minutes before `NOW` (so the repository spans about 69 days);
/// every 50th is an index over the two images pushed just before it.
fn repository() -> Vec<Image> {
    (0..IMAGES)
        .map(|i| {
            let tags: Vec<String> = match i % 7 {
                0 | 1 => Vec::new(),
                2 => vec![format!("v{}.{}.{}", i / 1000, (i / 100) % 10, i % 100)],
                3 => vec![format!(
                    "v{}.{}.{}-rc{}",
                    i / 1000,
                    (i / 100) % 10,
                    i % 100,
                    i % 3
                )],
                4 => vec![
                    format!("main-{i}"),
                    format!("sha-{:08x}", i * 2_654_435_761),
                ],
                5 => vec![format!("feature-{}", i % 40), "dev".to_string()],
                _ => vec![format!("main-{i}")],
            };
            let manifests = if i % 50 == 0 && i + 2 < IMAGES {
                vec![digest(i + 1), digest(i + 2)]
            } else {
                Vec::new()
            };
            Image {
                digest: digest(i),
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                manifest_size: 1000,
                image_size: 50_000_000,
                pushed_at: Timestamp(NOW.0 - i as i64 * STEP_MS),
                last_pull: None,
                tags,
                blobs: Vec::new(),
                manifests,
                subject: None,
                artifact_type: None,
                config_media_type: None,
                annotations: BTreeMap::new(),
                scanned_at: None,
                upstream_checked_at: None,
            }
        })
        .collect()
}

fn main() {
    let policy = match LifecyclePolicy::parse(POLICY) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    let images = repository();
    let mut times: Vec<Duration> = Vec::with_capacity(RUNS);
    let mut last = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        last = evaluate(&policy, &images, NOW);
        times.push(start.elapsed());
    }
    times.sort();
    let summary = summarize(&last);
    let mut per_rule: BTreeMap<u32, usize> = BTreeMap::new();
    for e in &last {
        *per_rule.entry(e.rule_priority).or_default() += 1;
    }
    println!(
        "lifecycle evaluate: {} images, {} rules, {} expiring {:?}",
        images.len(),
        policy.rules().len(),
        summary.expiring,
        per_rule
    );
    println!(
        "time over {RUNS} runs: min {:.2} ms, median {:.2} ms, max {:.2} ms (target < 100 ms)",
        times[0].as_secs_f64() * 1e3,
        times[RUNS / 2].as_secs_f64() * 1e3,
        times[RUNS - 1].as_secs_f64() * 1e3
    );
}
