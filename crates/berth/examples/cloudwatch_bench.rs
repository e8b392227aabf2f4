//! CloudWatch benchmark, Berth vs moto's server in the same run (awsQuery, the protocol both
//! speak; every request signed):
//!
//! 1. PutMetricData ingest: `wrk` replays a batch of 1,000 datapoints (1,000 series) for
//!    SECONDS; datapoints/s = requests/s × 1,000. Berth acknowledges a batch once it is durable.
//! 2. GetMetricData of 100 metrics over 24 h at 60 s (144,000 datapoints seeded, rolled up
//!    into chunks on Berth): the time to fetch every page, median of several calls.
//! 3. Alarm evaluation: 10,000 metric alarms on those metrics; the alarm evaluator's pass time
//!    (Berth only: moto does not evaluate alarms).
//!
//! Usage: cloudwatch_bench BERTH_BIN MOTO_SERVER [SECONDS] (`scripts/bench-cloudwatch.sh`
//! builds and runs it).

#[path = "bench_common/mod.rs"]
mod common;

use common::*;
use std::time::{Duration, Instant};

const VERSION: &str = "2010-08-01";

fn iso(secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A form-encoded query body.
fn form(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{k}={}", berth_aws::sigv4::uri_encode(v, true)))
        .collect::<Vec<_>>()
        .join("&")
}

/// A PutMetricData of `points` (`(metric, host, timestamp, value)`) in namespace `ns`.
fn put_body(ns: &str, points: &[(String, Option<String>, i64, f64)]) -> String {
    let mut p = vec![
        ("Action".to_string(), "PutMetricData".to_string()),
        ("Version".into(), VERSION.into()),
        ("Namespace".into(), ns.into()),
    ];
    for (i, (metric, host, t, v)) in points.iter().enumerate() {
        let m = format!("MetricData.member.{}", i + 1);
        p.push((format!("{m}.MetricName"), metric.clone()));
        p.push((format!("{m}.Timestamp"), iso(*t)));
        p.push((format!("{m}.Value"), v.to_string()));
        if let Some(h) = host {
            p.push((format!("{m}.Dimensions.member.1.Name"), "Host".into()));
            p.push((format!("{m}.Dimensions.member.1.Value"), h.clone()));
        }
    }
    form(&p)
}

fn post(port: u16, body: &str) -> (u16, String) {
    let signed = sign_query(port, "monitoring", body);
    exchange_at(port, "/", &signed, body)
}

/// Ingest: datapoints per second over `seconds`.
fn ingest(t: &Target, seconds: u32, dir: &std::path::Path) -> (f64, u64) {
    let at = now() - 30;
    let points: Vec<_> = (0..1000)
        .map(|i| {
            (
                format!("M{}", i % 100),
                Some(format!("h{}", i / 100)),
                at,
                i as f64,
            )
        })
        .collect();
    let body = put_body("Ingest", &points);
    assert_eq!(post(t.port, &body).0, 200, "{} PutMetricData", t.name);
    let signed = sign_query(t.port, "monitoring", &body);
    let r = wrk_signed(
        t.port,
        &signed,
        &body,
        seconds,
        // moto answers one request at a time (its requests queue behind a lock).
        if t.name == "moto" { 1 } else { 8 },
        &dir.join(format!("put-{}.lua", t.name)),
    );
    (r.rps * 1000.0, r.non2xx)
}

/// Seeds `metrics` metrics (`G0`, `G1`, …) with one datapoint per minute over the last 24 h.
fn seed(t: &Target, end: i64, metrics: usize) {
    for m in 0..metrics {
        let points: Vec<_> = (0..1440)
            .map(|k| {
                (
                    format!("G{m}"),
                    None,
                    end - 60 * (1440 - k),
                    (k % 97) as f64,
                )
            })
            .collect();
        for chunk in points.chunks(1000) {
            let (status, body) = post(t.port, &put_body("Bench", chunk));
            assert_eq!(status, 200, "{} seeding: {body}", t.name);
        }
    }
}

/// One GetMetricData of the first `metrics` metrics over the 24 h before `end`, every page: the
/// time and the datapoints returned.
fn get_all(t: &Target, end: i64, metrics: usize) -> (Duration, usize) {
    let start = Instant::now();
    let mut token: Option<String> = None;
    let mut points = 0;
    loop {
        let mut p = vec![
            ("Action".to_string(), "GetMetricData".to_string()),
            ("Version".into(), VERSION.into()),
            ("StartTime".into(), iso(end - 86_400)),
            ("EndTime".into(), iso(end)),
        ];
        for m in 0..metrics {
            let q = format!("MetricDataQueries.member.{}", m + 1);
            p.push((format!("{q}.Id"), format!("q{m}")));
            p.push((format!("{q}.MetricStat.Metric.Namespace"), "Bench".into()));
            p.push((format!("{q}.MetricStat.Metric.MetricName"), format!("G{m}")));
            p.push((format!("{q}.MetricStat.Period"), "60".into()));
            p.push((format!("{q}.MetricStat.Stat"), "Average".into()));
        }
        if let Some(tok) = &token {
            p.push(("NextToken".into(), tok.clone()));
        }
        let (status, body) = post(t.port, &form(&p));
        assert_eq!(
            status,
            200,
            "{} GetMetricData: {}",
            t.name,
            &body[..body.len().min(500)]
        );
        points += body
            .split("<Values>")
            .skip(1)
            .map(|v| {
                v.split("</Values>")
                    .next()
                    .unwrap_or("")
                    .matches("<member>")
                    .count()
            })
            .sum::<usize>();
        token = body
            .split_once("<NextToken>")
            .and_then(|(_, r)| r.split_once("</NextToken>"))
            .map(|(tok, _)| tok.to_string());
        if token.is_none() {
            return (start.elapsed(), points);
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// 10,000 alarms on the seeded metrics, made by 4 threads.
fn alarms(port: u16) {
    let threads: Vec<_> = (0..4)
        .map(|w| {
            std::thread::spawn(move || {
                for i in (w..10_000).step_by(4) {
                    let p = vec![
                        ("Action".to_string(), "PutMetricAlarm".to_string()),
                        ("Version".into(), VERSION.into()),
                        ("AlarmName".into(), format!("a{i}")),
                        ("Namespace".into(), "Bench".into()),
                        ("MetricName".into(), format!("G{}", i % 100)),
                        ("Statistic".into(), "Average".into()),
                        ("Period".into(), "60".into()),
                        ("EvaluationPeriods".into(), "3".into()),
                        ("Threshold".into(), (i / 100).to_string()),
                        ("ComparisonOperator".into(), "GreaterThanThreshold".into()),
                    ];
                    let (status, body) = post(port, &form(&p));
                    assert_eq!(status, 200, "PutMetricAlarm: {body}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

fn pass_seconds(status: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(status).unwrap();
    v["lastDurationSeconds"].as_f64().unwrap_or(f64::NAN)
}

fn main() {
    let usage = "usage: cloudwatch_bench BERTH_BIN MOTO_SERVER [SECONDS]";
    let args: Vec<String> = std::env::args().collect();
    let seconds: u32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10);
    let dir = tempfile::tempdir().unwrap();
    let berth = start_berth(args.get(1).expect(usage), &dir.path().join("data"));
    let moto = start_moto(args.get(2).expect(usage));

    println!("PutMetricData ingest (batches of 1,000; 8 connections, moto 1; {seconds} s):");
    let mut rates = Vec::new();
    for t in [&berth, &moto] {
        let (rate, non2xx) = ingest(t, seconds, dir.path());
        println!(
            "  {:5}: {rate:>10.0} datapoints/s  (non-2xx {non2xx})",
            t.name
        );
        rates.push(rate);
    }
    println!("  berth/moto = {:.1}x", rates[0] / rates[1]);

    // moto answers a GetMetricData over 24 h of one metric in seconds (it scans every
    // datapoint it holds per query), so the peer is measured on one metric and Berth on one
    // and on 100.
    let end = now() - now().rem_euclid(60);
    let seeding = Instant::now();
    seed(&berth, end, 100);
    println!(
        "Seeding 100 metrics x 24 h at 60 s (144,000 datapoints): berth {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    activate(berth.port, "metric-rollup");
    let seeding = Instant::now();
    // A fresh moto: the one that took the ingest run scans all it holds on every query.
    drop(moto);
    let moto = start_moto(args.get(2).expect(usage));
    seed(&moto, end, 1);
    println!(
        "Seeding 1 metric x 24 h (1,440 datapoints): moto {:.1} s",
        seeding.elapsed().as_secs_f64()
    );
    let timed = |t: &Target, metrics: usize, runs: usize| {
        let runs: Vec<(Duration, usize)> = (0..runs).map(|_| get_all(t, end, metrics)).collect();
        let points = runs[0].1;
        (median(runs.into_iter().map(|r| r.0).collect()), points)
    };
    println!("GetMetricData over 24 h at 60 s, every page, median:");
    let (cold, _) = timed(&berth, 100, 1);
    let (berth_100, points) = timed(&berth, 100, 9);
    println!(
        "  berth, 100 metrics: {:>8.1} ms ({points} values; the first call, cold: {:.1} ms)",
        ms(berth_100),
        ms(cold)
    );
    let (berth_1, _) = timed(&berth, 1, 9);
    let (moto_1, points) = timed(&moto, 1, 3);
    println!(
        "  berth, 1 metric:    {:>8.1} ms ({points} values)",
        ms(berth_1)
    );
    println!("  moto,  1 metric:    {:>8.1} ms", ms(moto_1));
    println!(
        "  moto/berth (1 metric) = {:.0}x",
        moto_1.as_secs_f64() / berth_1.as_secs_f64()
    );

    println!("Alarm evaluation, 10,000 metric alarms (berth):");
    let made = Instant::now();
    alarms(berth.port);
    println!("  created in {:.1} s", made.elapsed().as_secs_f64());
    let passes: Vec<f64> = (0..3)
        .map(|_| pass_seconds(&activate(berth.port, "alarm-evaluator")))
        .collect();
    println!(
        "  evaluator pass: {}",
        passes
            .iter()
            .map(|s| format!("{:.0} ms", s * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  berth RSS after all: {:.1} MiB",
        rss_mib(berth.child.id())
    );
}
