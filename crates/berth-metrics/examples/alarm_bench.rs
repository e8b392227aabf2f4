//! Throughput check for the alarm evaluator and the GetMetricData path.
//!
//! * 10,000 metric alarms, each with a 5-period evaluation range (3 of 3, a mix of
//!   TreatMissingData settings and missing periods), evaluated with their reason texts and
//!   reason data. Target: one pass in under 1 s.
//! * A GetMetricData-shaped request: 100 metrics × 24 h at 60 s read from stored 1-minute
//!   buckets (`metric_stat_series`, Average), plus `SUM(METRICS())` over them. Target: under
//!   50 ms.
//!
//! Run: `cargo run --release -p berth-metrics --example alarm_bench`. An example may read
//! the clock; the library never does.

use berth_metrics::math::{Context, Expr, Grid, Value, evaluate as evaluate_math};
use berth_metrics::{
    Aggregate, AlarmSpec, AlarmState, Api, ComparisonOperator, PeriodValue, Statistic,
    TreatMissingData, evaluate, metric_stat_series, plan_query,
};
use std::collections::HashMap;
use std::time::Instant;

// 2026-11-26T14:20:00Z
const NOW: i64 = 1_795_702_800_000;
const MIN: i64 = 60_000;

/// A small deterministic generator (no dependency needed for a benchmark's noise).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn alarms(rng: &mut Lcg) -> Vec<(AlarmSpec, Vec<PeriodValue>)> {
    let treatments = [
        TreatMissingData::Missing,
        TreatMissingData::Breaching,
        TreatMissingData::NotBreaching,
        TreatMissingData::Ignore,
    ];
    (0..10_000)
        .map(|i| {
            let spec = AlarmSpec {
                period_s: 60,
                evaluation_periods: 3,
                datapoints_to_alarm: if i % 3 == 0 { 2 } else { 3 },
                threshold: 75.0,
                comparison: ComparisonOperator::GreaterThanThreshold,
                treat_missing_data: treatments[i % 4],
                statistic: Some("Average".into()),
            };
            let range = (0..5)
                .map(|k| {
                    let value = if rng.next() < 0.1 {
                        None
                    } else {
                        Some(50.0 + rng.next() * 50.0)
                    };
                    PeriodValue {
                        start_ms: NOW - (5 - k) * MIN,
                        value,
                        sample_count: value.map(|_| 4.0),
                    }
                })
                .collect();
            (spec, range)
        })
        .collect()
}

fn bench_alarms() {
    let mut rng = Lcg(42);
    let alarms = alarms(&mut rng);
    let mut best = f64::INFINITY;
    let mut in_alarm = 0;
    for _ in 0..5 {
        let start = Instant::now();
        in_alarm = 0;
        for (spec, range) in &alarms {
            match evaluate(spec, range, NOW + 5_000, AlarmState::Ok) {
                Ok(e) if e.state == AlarmState::Alarm => in_alarm += 1,
                Ok(_) => {}
                Err(e) => panic!("{e}"),
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    println!(
        "alarms: 10000 evaluated (5 periods each, reasons + reason data) in {:.1} ms best of 5 \
         = {:.0} alarms/s; {in_alarm} in ALARM; target < 1000 ms per pass",
        best * 1000.0,
        10_000.0 / best
    );
}

fn bench_get_metric_data() {
    let mut rng = Lcg(7);
    let start_ms = NOW - 24 * 60 * MIN;
    // What storage holds: 1,440 one-minute buckets per metric, each from 4 samples.
    let stored: Vec<Vec<(i64, Aggregate)>> = (0..100)
        .map(|_| {
            (0..1440)
                .map(|k| {
                    let values: Vec<f64> = (0..4).map(|_| rng.next() * 100.0).collect();
                    let agg = Aggregate::from_values(&values, &[])
                        .unwrap_or_else(|| Aggregate::from_value(0.0));
                    (start_ms + k * MIN, agg)
                })
                .collect()
        })
        .collect();
    let window = match plan_query(Api::GetMetricData, start_ms, NOW, 60, NOW) {
        Ok(w) => w,
        Err(e) => panic!("{e}"),
    };
    let ids: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    let expr = match Expr::parse("SUM(METRICS())") {
        Ok(e) => e,
        Err(e) => panic!("{e}"),
    };
    let mut best_stat = f64::INFINITY;
    let mut best_total = f64::INFINITY;
    let mut points = 0;
    for _ in 0..10 {
        let t0 = Instant::now();
        let mut results: HashMap<String, Value> = HashMap::with_capacity(101);
        points = 0;
        for (id, buckets) in ids.iter().zip(&stored) {
            let s = metric_stat_series(buckets, &window, &Statistic::Average);
            points += s.len();
            results.insert(id.clone(), Value::Series(s));
        }
        let t1 = Instant::now();
        let ctx = Context {
            results: &results,
            metric_ids: &ids,
            grid: Grid::from(&window),
        };
        match evaluate_math(&expr, &ctx) {
            Ok(Value::Series(s)) => points += s.len(),
            Ok(other) => panic!("unexpected {other:?}"),
            Err(e) => panic!("{e}"),
        }
        best_stat = best_stat.min((t1 - t0).as_secs_f64());
        best_total = best_total.min(t0.elapsed().as_secs_f64());
    }
    let mut best_p99 = f64::INFINITY;
    let p99: Statistic = match "p99".parse() {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    };
    for _ in 0..10 {
        let t0 = Instant::now();
        for buckets in &stored {
            std::hint::black_box(metric_stat_series(buckets, &window, &p99));
        }
        best_p99 = best_p99.min(t0.elapsed().as_secs_f64());
    }
    println!(
        "get-metric-data: 100 metrics x 24 h at 60 s ({points} points incl. SUM(METRICS())): \
         MetricStat Average {:.2} ms, + math {:.2} ms total, best of 10; p99 instead: {:.2} ms; \
         target < 50 ms",
        best_stat * 1000.0,
        best_total * 1000.0,
        best_p99 * 1000.0
    );
}

fn main() {
    bench_alarms();
    bench_get_metric_data();
}
