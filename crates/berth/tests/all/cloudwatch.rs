//! CloudWatch metrics through every protocol clients use: `aws-sdk-cloudwatch` (Smithy RPC
//! v2 CBOR), the aws CLI (awsJson 1.0 with query compatibility) and raw awsQuery; answers
//! that stay the same once the rollup has moved samples into chunks, and after a `kill -9`.

use crate::{code, start_with};
use berth_testkit::aws_sdk_cloudwatch::primitives::DateTime;
use berth_testkit::aws_sdk_cloudwatch::types::{
    Dimension, DimensionFilter, Metric, MetricDataQuery, MetricDatum, ScanBy, StandardUnit,
    Statistic, StatisticSet,
};
use berth_testkit::{Signing, TestServer, signed};
use std::time::{SystemTime, UNIX_EPOCH};

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn dt(secs: i64) -> DateTime {
    DateTime::from_secs(secs)
}

fn host(h: &str) -> Dimension {
    Dimension::builder().name("Host").value(h).build()
}

/// The minute `secs` falls in.
fn minute(secs: i64) -> i64 {
    secs - secs.rem_euclid(60)
}

async fn statistics(server: &TestServer, start: i64, end: i64) -> Vec<(i64, f64, f64, f64)> {
    let out = server
        .cloudwatch()
        .get_metric_statistics()
        .namespace("App")
        .metric_name("Latency")
        .dimensions(host("a"))
        .start_time(dt(start))
        .end_time(dt(end))
        .period(60)
        .statistics(Statistic::Sum)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .unwrap();
    assert_eq!(out.label(), Some("Latency"));
    let mut points: Vec<(i64, f64, f64, f64)> = out
        .datapoints()
        .iter()
        .map(|d| {
            (
                d.timestamp().unwrap().secs(),
                d.sum().unwrap(),
                d.sample_count().unwrap(),
                d.maximum().unwrap(),
            )
        })
        .collect();
    points.sort_by_key(|p| p.0);
    points
}

#[tokio::test]
async fn cloudwatch_metrics_over_cbor_json_and_query() {
    let server = start_with(Default::default());
    let cw = server.cloudwatch();
    let t = minute(now_secs()) - 120;
    // A value, a statistic set and values with counts, in two minutes.
    cw.put_metric_data()
        .namespace("App")
        .metric_data(
            MetricDatum::builder()
                .metric_name("Latency")
                .dimensions(host("a"))
                .timestamp(dt(t + 5))
                .value(10.0)
                .unit(StandardUnit::Milliseconds)
                .build(),
        )
        .metric_data(
            MetricDatum::builder()
                .metric_name("Latency")
                .dimensions(host("a"))
                .timestamp(dt(t + 10))
                .statistic_values(
                    StatisticSet::builder()
                        .sample_count(3.0)
                        .sum(90.0)
                        .minimum(20.0)
                        .maximum(40.0)
                        .build(),
                )
                .unit(StandardUnit::Milliseconds)
                .build(),
        )
        .metric_data(
            MetricDatum::builder()
                .metric_name("Latency")
                .dimensions(host("a"))
                .timestamp(dt(t + 65))
                .values(5.0)
                .values(7.0)
                .counts(1.0)
                .counts(3.0)
                .unit(StandardUnit::Milliseconds)
                .build(),
        )
        .metric_data(
            MetricDatum::builder()
                .metric_name("Latency")
                .dimensions(host("b"))
                .timestamp(dt(t + 5))
                .value(99.0)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let expected = vec![(t, 100.0, 4.0, 40.0), (t + 60, 26.0, 4.0, 7.0)];
    assert_eq!(statistics(&server, t - 60, t + 180).await, expected);

    // Percentiles of raw values; GetMetricData with math, both orders, and pages.
    let p = cw
        .get_metric_statistics()
        .namespace("App")
        .metric_name("Latency")
        .dimensions(host("a"))
        .start_time(dt(t + 60))
        .end_time(dt(t + 120))
        .period(60)
        .extended_statistics("p50")
        .send()
        .await
        .unwrap();
    assert_eq!(p.datapoints()[0].extended_statistics().unwrap()["p50"], 7.0);
    let stat = |h: &str| {
        berth_testkit::aws_sdk_cloudwatch::types::MetricStat::builder()
            .metric(
                Metric::builder()
                    .namespace("App")
                    .metric_name("Latency")
                    .dimensions(host(h))
                    .build(),
            )
            .period(60)
            .stat("Sum")
            .build()
    };
    let data = cw
        .get_metric_data()
        .start_time(dt(t - 60))
        .end_time(dt(t + 180))
        .scan_by(ScanBy::TimestampAscending)
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("a")
                .metric_stat(stat("a"))
                .return_data(false)
                .build(),
        )
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("b")
                .metric_stat(stat("b"))
                .return_data(false)
                .build(),
        )
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("total")
                .expression("a + b")
                .label("total")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let results = data.metric_data_results();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].label(), Some("total"));
    assert_eq!(results[0].values(), [199.0, 26.0]);
    let secs: Vec<i64> = results[0].timestamps().iter().map(|d| d.secs()).collect();
    assert_eq!(secs, [t, t + 60]);
    let page = cw
        .get_metric_data()
        .start_time(dt(t - 60))
        .end_time(dt(t + 180))
        .max_datapoints(1)
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("a")
                .metric_stat(stat("a"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        page.metric_data_results()[0].values(),
        [26.0],
        "newest first"
    );
    let rest = cw
        .get_metric_data()
        .start_time(dt(t - 60))
        .end_time(dt(t + 180))
        .max_datapoints(1)
        .next_token(page.next_token().unwrap())
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("a")
                .metric_stat(stat("a"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(rest.metric_data_results()[0].values(), [100.0]);
    assert!(rest.next_token().is_none());

    // ListMetrics with a dimension filter.
    let listed = cw
        .list_metrics()
        .namespace("App")
        .dimensions(DimensionFilter::builder().name("Host").value("b").build())
        .send()
        .await
        .unwrap();
    assert_eq!(listed.metrics().len(), 1);

    // Errors as CloudWatch words them, over CBOR.
    let e = cw
        .put_metric_data()
        .namespace("AWS/ECS")
        .metric_data(MetricDatum::builder().metric_name("X").value(1.0).build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue");
    let e = cw
        .put_metric_data()
        .namespace("App")
        .metric_data(
            MetricDatum::builder()
                .metric_name("X")
                .timestamp(dt(now_secs() - 15 * 24 * 3600))
                .value(1.0)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterValue", "older than two weeks");
    let e = cw
        .get_metric_statistics()
        .namespace("App")
        .metric_name("Latency")
        .start_time(dt(t))
        .end_time(dt(t + 60))
        .period(60)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidParameterCombination");

    // The aws CLI (JSON with query compatibility) and raw awsQuery see the same data.
    let cli = crate::docker_e2e::aws(
        &server,
        &[
            "cloudwatch",
            "get-metric-statistics",
            "--namespace",
            "App",
            "--metric-name",
            "Latency",
            "--dimensions",
            "Name=Host,Value=a",
            "--start-time",
            &(t - 60).to_string(),
            "--end-time",
            &(t + 180).to_string(),
            "--period",
            "60",
            "--statistics",
            "Sum",
        ],
    );
    let mut sums: Vec<f64> = cli["Datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Sum"].as_f64().unwrap())
        .collect();
    sums.sort_by(f64::total_cmp);
    assert_eq!(sums, [26.0, 100.0]);
    let iso = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let body = format!(
        "Action=GetMetricStatistics&Version=2010-08-01&Namespace=App&MetricName=Latency&Dimensions.member.1.Name=Host&Dimensions.member.1.Value=a&StartTime={}&EndTime={}&Period=60&Statistics.member.1=Sum",
        iso(t - 60),
        iso(t + 180)
    );
    let r = signed(
        &Signing::root("monitoring"),
        "POST",
        &format!("{}/", server.endpoint),
        &[("content-type", "application/x-www-form-urlencoded")],
        body.as_bytes(),
    )
    .send()
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<Sum>100.0</Sum>") || r.body.contains("<Sum>100</Sum>"),
        "{}",
        r.body
    );

    // The rollup moves the samples into chunks; nothing changes for the reader.
    let status = server.activate("metric-rollup").await;
    assert!(status.to_string().contains("batches rolled up"), "{status}");
    assert_eq!(statistics(&server, t - 60, t + 180).await, expected);
}

#[tokio::test]
async fn cloudwatch_acknowledged_metric_data_survives_kill_9() {
    let mut server = start_with(Default::default());
    let t = minute(now_secs()) - 60;
    let put = |v: f64| {
        server
            .cloudwatch()
            .put_metric_data()
            .namespace("App")
            .metric_data(
                MetricDatum::builder()
                    .metric_name("Latency")
                    .dimensions(host("a"))
                    .timestamp(dt(t))
                    .value(v)
                    .build(),
            )
            .send()
    };
    put(1.0).await.unwrap();
    server.activate("metric-rollup").await;
    put(2.0).await.unwrap();
    server.kill9();
    server.restart();
    let got = statistics(&server, t - 60, t + 120).await;
    assert_eq!(
        got,
        vec![(t, 3.0, 2.0, 2.0)],
        "one sample in a chunk, one pending"
    );
}
