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

/// Puts `value` for App/CPU (Host=a) in each of the last four minutes (the current one
/// included, so a minute turning over meanwhile still leaves three complete ones).
async fn cpu(server: &TestServer, name: &str, value: f64) {
    let now = minute(now_secs());
    let mut put = server.cloudwatch().put_metric_data().namespace("App");
    for k in 0..4 {
        put = put.metric_data(
            MetricDatum::builder()
                .metric_name(name)
                .dimensions(host("a"))
                .timestamp(dt(now - 60 * k))
                .value(value)
                .build(),
        );
    }
    put.send().await.unwrap();
}

#[tokio::test]
async fn cloudwatch_alarms_are_judged_as_aws_judges_them() {
    use berth_testkit::aws_sdk_cloudwatch::types::{
        AlarmType, ComparisonOperator, HistoryItemType, StateValue, Tag,
    };
    let server = start_with(Default::default());
    let cw = server.cloudwatch();
    cw.put_metric_alarm()
        .alarm_name("high")
        .namespace("App")
        .metric_name("CPU")
        .dimensions(host("a"))
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(3)
        .threshold(70.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .alarm_actions("arn:aws:sns:us-east-1:000000000000:ops")
        .tags(Tag::builder().key("team").value("web").build())
        .send()
        .await
        .unwrap();
    let describe = |name: &'static str| {
        let cw = cw.clone();
        async move {
            cw.describe_alarms()
                .alarm_names(name)
                .alarm_types(AlarmType::MetricAlarm)
                .alarm_types(AlarmType::CompositeAlarm)
                .send()
                .await
                .unwrap()
        }
    };
    let d = describe("high").await;
    let a = &d.metric_alarms()[0];
    assert_eq!(a.state_value(), Some(&StateValue::InsufficientData));
    assert_eq!(a.state_reason(), Some("Unchecked: Initial alarm creation"));
    assert_eq!(
        a.alarm_arn(),
        Some("arn:aws:cloudwatch:us-east-1:000000000000:alarm:high")
    );

    // Three breaching minutes: ALARM, with AWS's reason.
    cpu(&server, "CPU", 85.0).await;
    server.activate("alarm-evaluator").await;
    let d = describe("high").await;
    let a = &d.metric_alarms()[0];
    assert_eq!(a.state_value(), Some(&StateValue::Alarm), "{a:?}");
    let reason = a.state_reason().unwrap();
    assert!(
        reason.starts_with("Threshold Crossed: 3 out of the last 3 datapoints"),
        "{reason}"
    );
    assert!(
        reason.contains("were greater than the threshold (70.0)"),
        "{reason}"
    );
    let data: serde_json::Value = serde_json::from_str(a.state_reason_data().unwrap()).unwrap();
    assert_eq!(data["threshold"], 70.0);
    assert_eq!(data["period"], 60);

    // The SNS action is recorded as failed (Berth delivers none); history has both.
    let history = cw
        .describe_alarm_history()
        .alarm_name("high")
        .send()
        .await
        .unwrap();
    let kinds: Vec<&HistoryItemType> = history
        .alarm_history_items()
        .iter()
        .filter_map(|h| h.history_item_type())
        .collect();
    assert!(kinds.contains(&&HistoryItemType::StateUpdate), "{kinds:?}");
    assert!(
        kinds.contains(&&HistoryItemType::ConfigurationUpdate),
        "{kinds:?}"
    );
    assert!(kinds.contains(&&HistoryItemType::Action), "{kinds:?}");

    // A metric-math alarm and a composite of both.
    cpu(&server, "Mem", 30.0).await;
    let stat = |name: &str| {
        berth_testkit::aws_sdk_cloudwatch::types::MetricStat::builder()
            .metric(
                Metric::builder()
                    .namespace("App")
                    .metric_name(name)
                    .dimensions(host("a"))
                    .build(),
            )
            .period(60)
            .stat("Average")
            .build()
    };
    cw.put_metric_alarm()
        .alarm_name("math")
        .metrics(
            MetricDataQuery::builder()
                .id("m1")
                .metric_stat(stat("Mem"))
                .return_data(false)
                .build(),
        )
        .metrics(
            MetricDataQuery::builder()
                .id("e1")
                .expression("m1 * 2")
                .return_data(true)
                .build(),
        )
        .evaluation_periods(2)
        .threshold(50.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .send()
        .await
        .unwrap();
    cw.put_composite_alarm()
        .alarm_name("both")
        .alarm_rule("ALARM(\"high\") AND ALARM(math)")
        .send()
        .await
        .unwrap();
    server.activate("alarm-evaluator").await;
    assert_eq!(
        describe("math").await.metric_alarms()[0].state_value(),
        Some(&StateValue::Alarm)
    );
    let both = describe("both").await;
    assert_eq!(
        both.composite_alarms()[0].state_value(),
        Some(&StateValue::Alarm)
    );
    let children = cw
        .describe_alarms()
        .children_of_alarm_name("both")
        .send()
        .await
        .unwrap();
    assert_eq!(children.metric_alarms().len(), 2);

    // SetAlarmState moves the state until the next judgement.
    cw.set_alarm_state()
        .alarm_name("math")
        .state_value(StateValue::Ok)
        .state_reason("testing")
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe("math").await.metric_alarms()[0].state_value(),
        Some(&StateValue::Ok)
    );
    let e = cw
        .set_alarm_state()
        .alarm_name("math")
        .state_value(StateValue::Alarm)
        .state_reason("testing")
        .state_reason_data("{not json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidFormat");
    assert_eq!(
        describe("math").await.metric_alarms()[0].state_value(),
        Some(&StateValue::Ok),
        "a refused SetAlarmState changes nothing"
    );

    // DescribeAlarmsForMetric, tags, enabling actions.
    let for_metric = cw
        .describe_alarms_for_metric()
        .namespace("App")
        .metric_name("CPU")
        .dimensions(host("a"))
        .send()
        .await
        .unwrap();
    assert_eq!(for_metric.metric_alarms().len(), 1);
    let arn = "arn:aws:cloudwatch:us-east-1:000000000000:alarm:high";
    cw.tag_resource()
        .resource_arn(arn)
        .tags(Tag::builder().key("tier").value("1").build())
        .send()
        .await
        .unwrap();
    let tags = cw
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags().len(), 2);
    let e = cw
        .list_tags_for_resource()
        .resource_arn("arn:aws:cloudwatch:us-east-1:000000000000:alarm:nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    cw.disable_alarm_actions()
        .alarm_names("high")
        .send()
        .await
        .unwrap();
    assert_eq!(
        describe("high").await.metric_alarms()[0].actions_enabled(),
        Some(false)
    );

    // Errors; a failed DeleteAlarms deletes nothing.
    let e = cw
        .put_metric_alarm()
        .alarm_name("bad")
        .namespace("App")
        .metric_name("CPU")
        .statistic(Statistic::Average)
        .extended_statistic("p99")
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationError");
    let e = cw
        .put_composite_alarm()
        .alarm_name("dangling")
        .alarm_rule("ALARM(nothing)")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationError");
    let e = cw
        .delete_alarms()
        .alarm_names("high")
        .alarm_names("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFound");
    assert_eq!(describe("high").await.metric_alarms().len(), 1);
    cw.delete_alarms()
        .alarm_names("both")
        .alarm_names("math")
        .send()
        .await
        .unwrap();
    assert!(describe("math").await.metric_alarms().is_empty());
}
