//! Filter-pattern throughput: a term pattern, a JSON pattern (and, for reference, a
//! space-delimited and a regex pattern) over 1,000,000 generated ~200-byte log lines, as a
//! FilterLogEvents scan that finds few matches would run them. Prints lines per second.
//!
//! `cargo run --release -p berth-logs --example filter_bench [lines]`
//!
//! The lead's target: a FilterLogEvents first page over 1,000,000 stored events in under 1 s.

use berth_logs::Pattern;
use std::time::Instant;

/// A small deterministic generator (no dependency): xorshift64*.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PATHS: [&str; 6] = [
    "/api/v1/orders",
    "/api/v1/users/me",
    "/healthz",
    "/api/v1/cart/items",
    "/static/app.js",
    "/api/v1/search",
];

/// ~200-byte JSON lines; about 1 in 100 is an error, 1 in 200 mentions a timeout.
fn json_lines(n: usize, g: &mut Gen) -> Vec<String> {
    (0..n)
        .map(|i| {
            let level = if g.below(100) == 0 { "error" } else { "info" };
            let note = if g.below(200) == 0 {
                "upstream timeout"
            } else {
                "request completed normally"
            };
            format!(
                r#"{{"time":"2024-04-18T10:{:02}:{:02}.{:03}Z","level":"{level}","requestId":"{:016x}","path":"{}","status":{},"latency":{},"service":"checkout-api","msg":"{note}"}}"#,
                (i / 60_000) % 60,
                (i / 1000) % 60,
                i % 1000,
                g.next(),
                PATHS[g.below(PATHS.len() as u64) as usize],
                if level == "error" { 500 } else { 200 },
                g.below(400),
            )
        })
        .collect()
}

/// ~200-byte access-log lines.
fn text_lines(n: usize, g: &mut Gen) -> Vec<String> {
    (0..n)
        .map(|i| {
            let status = if g.below(100) == 0 { 503 } else { 200 };
            format!(
                r#"10.0.{}.{} - frank [18/Apr/2024:10:{:02}:{:02} +0000] "GET {} HTTP/1.1" {status} {} "-" "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 berth-bench/1.0 req-{:016x}""#,
                g.below(256),
                g.below(256),
                (i / 60) % 60,
                i % 60,
                PATHS[g.below(PATHS.len() as u64) as usize],
                g.below(100_000),
                g.next(),
            )
        })
        .collect()
}

fn bench(name: &str, pattern: &str, lines: &[String]) {
    let p = Pattern::parse(pattern).expect("benchmark pattern parses");
    // One warm-up pass, then the timed one.
    let _ = lines.iter().filter(|l| p.matches(l)).count();
    let start = Instant::now();
    let hits = lines.iter().filter(|l| p.matches(l)).count();
    let secs = start.elapsed().as_secs_f64();
    let bytes: usize = lines.iter().map(String::len).sum();
    println!(
        "{name:<12} {pattern:<55} {:>9} lines in {:>6.3} s = {:>10.0} lines/s ({:>6.0} MB/s), {hits} matches",
        lines.len(),
        secs,
        lines.len() as f64 / secs,
        bytes as f64 / secs / 1e6,
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let json = json_lines(n, &mut g);
    let text = text_lines(n, &mut g);
    let avg = |v: &[String]| v.iter().map(String::len).sum::<usize>() / v.len().max(1);
    println!(
        "lines: {n} JSON (avg {} bytes), {n} text (avg {} bytes)",
        avg(&json),
        avg(&text)
    );
    bench("term", "timeout", &json);
    bench("terms", "?timeout ?error", &json);
    bench("json", r#"{ $.level = "error" && $.latency > 100 }"#, &json);
    // No literal to pre-filter on: every line is parsed.
    bench("json", "{ $.latency > 390 }", &json);
    bench("term", "\" 503 \"", &text);
    bench(
        "delimited",
        "[ip, u, user, ts, request, status = 5*, bytes, ...]",
        &text,
    );
    bench("regex", "%req-0000%", &text);
}
