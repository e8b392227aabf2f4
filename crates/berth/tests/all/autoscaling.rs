//! Application Auto Scaling with `aws-sdk-applicationautoscaling`: every operation with its
//! errors, on a service without instances (the Docker end-to-end tests in `docker_e2e` scale
//! real tasks): registration moving the desired count inside new bounds, target tracking's
//! alarms as AWS names and configures them, a target-tracking policy and a step policy run by
//! the alarm evaluator from metrics put with PutMetricData, scheduled actions, activities with
//! AWS's causes, tags, and everything surviving a `kill -9`.

use crate::start;
use berth_testkit::aws_sdk_applicationautoscaling::Client;
use berth_testkit::aws_sdk_applicationautoscaling::error::ProvideErrorMetadata;
use berth_testkit::aws_sdk_applicationautoscaling::types::{
    AdjustmentType, CustomizedMetricSpecification, MetricStatistic, MetricType, PolicyType,
    PredefinedMetricSpecification, ScalableDimension, ScalableTargetAction, ServiceNamespace,
    StepAdjustment, StepScalingPolicyConfiguration, TargetTrackingScalingPolicyConfiguration,
};
use berth_testkit::aws_sdk_cloudwatch::primitives::DateTime;
use berth_testkit::aws_sdk_cloudwatch::types::{ComparisonOperator, MetricDatum, Statistic};
use berth_testkit::{Deadline, TestServer};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const WEB: &str = "service/shop/web";

fn code<E: ProvideErrorMetadata>(e: &E) -> (String, String) {
    (
        e.code().unwrap_or_default().to_string(),
        e.message().unwrap_or_default().to_string(),
    )
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Puts `value` for metric `name` of namespace `App` at each of the last four minutes.
async fn put_minutes(server: &TestServer, name: &str, value: f64) {
    let now = now_secs() - now_secs().rem_euclid(60);
    let mut put = server.cloudwatch().put_metric_data().namespace("App");
    for k in 0..4 {
        put = put.metric_data(
            MetricDatum::builder()
                .metric_name(name)
                .timestamp(DateTime::from_secs(now - 60 * k))
                .value(value)
                .build(),
        );
    }
    put.send().await.unwrap();
}

async fn desired(server: &TestServer) -> i32 {
    let out = server
        .ecs()
        .describe_services()
        .cluster("shop")
        .services("web")
        .send()
        .await
        .unwrap();
    out.services()[0].desired_count()
}

/// `(description, cause, status)` of the target's activities, newest first.
async fn activities(aas: &Client, not_scaled: bool) -> Vec<(String, String, String)> {
    let out = aas
        .describe_scaling_activities()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(WEB)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .include_not_scaled_activities(not_scaled)
        .send()
        .await
        .unwrap();
    out.scaling_activities()
        .iter()
        .map(|a| {
            (
                a.description().to_string(),
                a.cause().to_string(),
                a.status_code().as_str().to_string(),
            )
        })
        .collect()
}

async fn register(
    aas: &Client,
    min: Option<i32>,
    max: Option<i32>,
) -> Result<String, (String, String)> {
    aas.register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(WEB)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .set_min_capacity(min)
        .set_max_capacity(max)
        .send()
        .await
        .map(|o| o.scalable_target_arn().unwrap_or_default().to_string())
        .map_err(|e| code(&e.into_service_error()))
}

async fn shop(server: &TestServer) {
    let ecs = server.ecs();
    ecs.create_cluster()
        .cluster_name("shop")
        .send()
        .await
        .unwrap();
    crate::register(&ecs, "web").await;
    ecs.create_service()
        .cluster("shop")
        .service_name("web")
        .task_definition("web")
        .desired_count(1)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn autoscaling_targets_register_update_and_refuse_as_aws() {
    let server = start();
    let aas = server.autoscaling();
    // No such service yet.
    let (c, m) = register(&aas, Some(1), Some(4)).await.unwrap_err();
    assert_eq!(c, "ValidationException");
    assert!(
        m.contains("ECS service doesn't exist: service/shop/web"),
        "{m}"
    );
    shop(&server).await;
    // Other namespaces are not Berth's to scale.
    let e = aas
        .register_scalable_target()
        .service_namespace(ServiceNamespace::Dynamodb)
        .resource_id("table/orders")
        .scalable_dimension(ScalableDimension::DynamoDbTableReadCapacityUnits)
        .min_capacity(1)
        .max_capacity(5)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()).0, "ValidationException");
    let none = aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Dynamodb)
        .send()
        .await
        .unwrap();
    assert!(none.scalable_targets().is_empty());
    // A new target needs both bounds, in order.
    assert_eq!(
        register(&aas, Some(1), None).await.unwrap_err().0,
        "ValidationException"
    );
    assert_eq!(
        register(&aas, Some(5), Some(2)).await.unwrap_err().0,
        "ValidationException"
    );
    let arn = register(&aas, Some(0), Some(4)).await.unwrap();
    assert!(
        arn.starts_with("arn:aws:application-autoscaling:us-east-1:000000000000:scalable-target/"),
        "{arn}"
    );
    assert_eq!(desired(&server).await, 1, "inside [0, 4]: unchanged");
    // Raising the minimum above the desired count moves it at once, as an activity, with an
    // event on the service.
    assert_eq!(
        register(&aas, Some(2), None).await.unwrap(),
        arn,
        "same target"
    );
    assert_eq!(desired(&server).await, 2);
    let acts = activities(&aas, false).await;
    assert_eq!(
        acts[0],
        (
            "Setting desired count to 2.".to_string(),
            "minimum capacity was set to 2".to_string(),
            "Successful".to_string()
        )
    );
    let events = server
        .ecs()
        .describe_services()
        .cluster("shop")
        .services("web")
        .send()
        .await
        .unwrap();
    let events: Vec<&str> = events.services()[0]
        .events()
        .iter()
        .filter_map(|e| e.message())
        .collect();
    assert!(
        events.contains(
            &"(service web) Application Auto Scaling changed the desired count from 1 to 2: minimum capacity was set to 2."
        ),
        "{events:?}"
    );
    // Suspension and the default role are described.
    aas.register_scalable_target()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(WEB)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .suspended_state(
            berth_testkit::aws_sdk_applicationautoscaling::types::SuspendedState::builder()
                .dynamic_scaling_in_suspended(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = aas
        .describe_scalable_targets()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_ids(WEB)
        .send()
        .await
        .unwrap();
    let t = &out.scalable_targets()[0];
    assert_eq!((t.min_capacity(), t.max_capacity()), (2, 4));
    assert_eq!(t.scalable_target_arn(), Some(arn.as_str()));
    assert!(
        t.role_arn()
            .ends_with("AWSServiceRoleForApplicationAutoScaling_ECSService")
    );
    let s = t.suspended_state().unwrap();
    assert_eq!(
        (
            s.dynamic_scaling_in_suspended(),
            s.dynamic_scaling_out_suspended(),
            s.scheduled_scaling_suspended()
        ),
        (Some(true), Some(false), Some(false))
    );
    // Tags on the target's ARN.
    aas.tag_resource()
        .resource_arn(&arn)
        .tags("team", "web")
        .send()
        .await
        .unwrap();
    let tags = aas
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags().unwrap().get("team").map(String::as_str),
        Some("web")
    );
    aas.untag_resource()
        .resource_arn(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let tags = aas
        .list_tags_for_resource()
        .resource_arn(&arn)
        .send()
        .await
        .unwrap();
    assert!(tags.tags().unwrap().is_empty());
    let e = aas
        .list_tags_for_resource()
        .resource_arn("arn:aws:application-autoscaling:us-east-1:000000000000:scalable-target/nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()).0, "ResourceNotFoundException");
    // Deregistering twice: the second finds nothing.
    for expected in [None, Some("ObjectNotFoundException")] {
        let r = aas
            .deregister_scalable_target()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(WEB)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .send()
            .await;
        assert_eq!(
            r.err().map(|e| code(&e.into_service_error()).0).as_deref(),
            expected
        );
    }
    assert_eq!(
        desired(&server).await,
        2,
        "deregistering keeps the desired count"
    );
}

fn tracking(target: f64) -> TargetTrackingScalingPolicyConfiguration {
    TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(target)
        .customized_metric_specification(
            CustomizedMetricSpecification::builder()
                .namespace("App")
                .metric_name("Load")
                .statistic(MetricStatistic::Average)
                .build(),
        )
        .scale_out_cooldown(60)
        .build()
        .unwrap()
}

#[tokio::test]
async fn autoscaling_policies_scale_when_their_alarms_fire() {
    use berth_testkit::aws_sdk_cloudwatch::types::{HistoryItemType, StateValue};
    let mut server = start();
    shop(&server).await;
    let aas = server.autoscaling();
    let cw = server.cloudwatch();
    // No target yet.
    let put_tracking = |name: &'static str, config: TargetTrackingScalingPolicyConfiguration| {
        aas.put_scaling_policy()
            .policy_name(name)
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(WEB)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .policy_type(PolicyType::TargetTrackingScaling)
            .target_tracking_scaling_policy_configuration(config)
            .send()
    };
    let e = put_tracking("load10", tracking(10.0)).await.unwrap_err();
    let (c, m) = code(&e.into_service_error());
    assert_eq!(c, "ObjectNotFoundException");
    assert_eq!(
        m,
        "No scalable target registered for service namespace: ecs, resource ID: service/shop/web, scalable dimension: ecs:service:DesiredCount"
    );
    register(&aas, Some(0), Some(4)).await.unwrap();
    // ALBRequestCountPerTarget needs its ResourceLabel.
    let alb = TargetTrackingScalingPolicyConfiguration::builder()
        .target_value(100.0)
        .predefined_metric_specification(
            PredefinedMetricSpecification::builder()
                .predefined_metric_type(MetricType::AlbRequestCountPerTarget)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let e = put_tracking("alb", alb).await.unwrap_err();
    assert_eq!(code(&e.into_service_error()).0, "ValidationException");

    // Target tracking on a custom metric: two alarms named and configured as AWS's.
    let put = put_tracking("load10", tracking(10.0)).await.unwrap();
    let policy_arn = put.policy_arn().to_string();
    assert!(
        policy_arn.starts_with("arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:")
            && policy_arn.ends_with(":resource/ecs/service/shop/web:policyName/load10"),
        "{policy_arn}"
    );
    let names: Vec<&str> = put.alarms().iter().map(|a| a.alarm_name()).collect();
    assert_eq!(names.len(), 2);
    assert!(
        names[0].starts_with("TargetTracking-service/shop/web-AlarmHigh-"),
        "{names:?}"
    );
    assert!(
        names[1].starts_with("TargetTracking-service/shop/web-AlarmLow-"),
        "{names:?}"
    );
    let alarms = cw
        .describe_alarms()
        .alarm_name_prefix("TargetTracking-")
        .send()
        .await
        .unwrap();
    let by_name = |n: &str| {
        alarms
            .metric_alarms()
            .iter()
            .find(|a| a.alarm_name() == Some(n))
            .unwrap()
            .clone()
    };
    let high = by_name(names[0]);
    assert_eq!(
        (
            high.evaluation_periods(),
            high.datapoints_to_alarm(),
            high.period(),
            high.threshold()
        ),
        (Some(3), Some(3), Some(60), Some(10.0))
    );
    assert_eq!(
        high.comparison_operator(),
        Some(&ComparisonOperator::GreaterThanThreshold)
    );
    assert_eq!(high.statistic(), Some(&Statistic::Average));
    assert_eq!(high.alarm_actions(), std::slice::from_ref(&policy_arn));
    assert_eq!(
        high.alarm_description(),
        Some(
            format!("DO NOT EDIT OR DELETE. For TargetTrackingScaling policy {policy_arn}.")
                .as_str()
        )
    );
    let low = by_name(names[1]);
    assert_eq!(
        (low.evaluation_periods(), low.threshold()),
        (Some(15), Some(9.0))
    );
    assert_eq!(
        low.comparison_operator(),
        Some(&ComparisonOperator::LessThanThreshold)
    );

    // From no running task, a breaching load scales out by the minimum amount: to 1.
    server
        .ecs()
        .update_service()
        .cluster("shop")
        .service("web")
        .desired_count(0)
        .send()
        .await
        .unwrap();
    put_minutes(&server, "Load", 50.0).await;
    server.activate("alarm-evaluator").await;
    let high_now = cw
        .describe_alarms()
        .alarm_names(names[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        high_now.metric_alarms()[0].state_value(),
        Some(&StateValue::Alarm)
    );
    assert_eq!(desired(&server).await, 1);
    let acts = activities(&aas, false).await;
    assert_eq!(acts[0].0, "Setting desired count to 1.");
    assert_eq!(
        acts[0].1,
        format!(
            "monitor alarm {} in state ALARM triggered policy load10",
            names[0]
        )
    );
    let history = cw
        .describe_alarm_history()
        .alarm_name(names[0])
        .history_item_type(HistoryItemType::Action)
        .send()
        .await
        .unwrap();
    let summary = history.alarm_history_items()[0]
        .history_summary()
        .unwrap()
        .to_string();
    assert_eq!(
        summary,
        format!("Successfully executed action {policy_arn}")
    );

    // A step policy on an alarm the user makes: ExactCapacity 3 above the threshold.
    let step = aas
        .put_scaling_policy()
        .policy_name("queue")
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(WEB)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .policy_type(PolicyType::StepScaling)
        .step_scaling_policy_configuration(
            StepScalingPolicyConfiguration::builder()
                .adjustment_type(AdjustmentType::ExactCapacity)
                .step_adjustments(
                    StepAdjustment::builder()
                        .metric_interval_lower_bound(0.0)
                        .scaling_adjustment(3)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert!(step.alarms().is_empty(), "step policies own no alarms");
    // Steps that overlap are refused.
    let bad = aas
        .put_scaling_policy()
        .policy_name("bad")
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(WEB)
        .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
        .policy_type(PolicyType::StepScaling)
        .step_scaling_policy_configuration(
            StepScalingPolicyConfiguration::builder()
                .adjustment_type(AdjustmentType::ChangeInCapacity)
                .step_adjustments(
                    StepAdjustment::builder()
                        .scaling_adjustment(1)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    let (c, m) = code(&bad.into_service_error());
    assert_eq!(c, "ValidationException");
    assert_eq!(
        m,
        "Both lower and upper bounds of a step adjustment cannot be left unspecified"
    );
    cw.put_metric_alarm()
        .alarm_name("queue-deep")
        .namespace("App")
        .metric_name("Queue")
        .statistic(Statistic::Average)
        .period(60)
        .evaluation_periods(1)
        .threshold(100.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .alarm_actions(step.policy_arn())
        .send()
        .await
        .unwrap();
    put_minutes(&server, "Queue", 500.0).await;
    server.activate("alarm-evaluator").await;
    assert_eq!(desired(&server).await, 3);
    let acts = activities(&aas, false).await;
    assert_eq!(
        acts[0],
        (
            "Setting desired count to 3.".to_string(),
            "monitor alarm queue-deep in state ALARM triggered policy queue".to_string(),
            "Successful".to_string()
        )
    );

    // Policies page, and survive a kill -9.
    let page = aas
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(WEB)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.scaling_policies().len(), 1);
    let next = page.next_token().unwrap().to_string();
    server.kill9();
    server.restart();
    let aas = server.autoscaling();
    let rest = aas
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(WEB)
        .max_results(1)
        .next_token(next)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = rest
        .scaling_policies()
        .iter()
        .map(|p| p.policy_name())
        .collect();
    assert_eq!(names, ["queue"], "by name, after load10");
    let p = &rest.scaling_policies()[0];
    let conf = p.step_scaling_policy_configuration().unwrap();
    assert_eq!(conf.adjustment_type(), Some(&AdjustmentType::ExactCapacity));
    assert_eq!(conf.step_adjustments()[0].scaling_adjustment(), 3);
    let e = aas
        .describe_scaling_policies()
        .service_namespace(ServiceNamespace::Ecs)
        .next_token("forged")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()).0, "InvalidNextTokenException");

    // Deleting a target-tracking policy deletes its alarms, not the user's.
    for expected in [None, Some("ObjectNotFoundException")] {
        let r = aas
            .delete_scaling_policy()
            .policy_name("load10")
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(WEB)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .send()
            .await;
        assert_eq!(
            r.err().map(|e| code(&e.into_service_error()).0).as_deref(),
            expected
        );
    }
    let cw = server.cloudwatch();
    let left = cw.describe_alarms().send().await.unwrap();
    let left: Vec<&str> = left
        .metric_alarms()
        .iter()
        .filter_map(|a| a.alarm_name())
        .collect();
    assert_eq!(left, ["queue-deep"]);
}

#[tokio::test]
async fn autoscaling_scheduled_actions_change_bounds_when_due() {
    let server = start();
    shop(&server).await;
    let aas = server.autoscaling();
    let put = |name: &'static str, schedule: &str, tz: Option<&str>, min: i32, max: i32| {
        aas.put_scheduled_action()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(WEB)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .scheduled_action_name(name)
            .schedule(schedule)
            .set_timezone(tz.map(str::to_string))
            .scalable_target_action(
                ScalableTargetAction::builder()
                    .min_capacity(min)
                    .max_capacity(max)
                    .build(),
            )
            .send()
    };
    let e = put("night", "cron(0 22 * * ? *)", None, 1, 2)
        .await
        .unwrap_err();
    assert_eq!(code(&e.into_service_error()).0, "ObjectNotFoundException");
    register(&aas, Some(1), Some(4)).await.unwrap();
    for (schedule, tz, min, max) in [
        ("rate(1 minutes)", None, 1, 2),
        ("cron(0 22 * *)", None, 1, 2),
        ("cron(0 22 * * ? *)", Some("Mars/Olympus_Mons"), 1, 2),
        ("cron(0 22 * * ? *)", None, 3, 2),
    ] {
        let e = put("bad", schedule, tz, min, max).await.unwrap_err();
        assert_eq!(
            code(&e.into_service_error()).0,
            "ValidationException",
            "{schedule} {tz:?}"
        );
    }
    put(
        "weekday-evenings",
        "cron(0 18 ? * MON-FRI *)",
        Some("America/New_York"),
        1,
        2,
    )
    .await
    .unwrap();
    // An at() two seconds ahead (UTC): once due, the bounds change and the desired count
    // follows them.
    let at = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let at = format!(
        "at({:04}-{:02}-{:02}T{:02}:{:02}:{:02})",
        at.year(),
        at.month() as u8,
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    put("burst", &at, None, 5, 6).await.unwrap();
    let deadline = Deadline::after(Duration::from_secs(30)).every(Duration::from_millis(500));
    while desired(&server).await != 5 {
        server.activate("scheduled-scaling").await;
        deadline.next("the scheduled action to run").await;
    }
    let acts = activities(&aas, false).await;
    assert_eq!(
        acts[..2],
        [
            (
                "Setting desired count to 5.".to_string(),
                "minimum capacity was set to 5".to_string(),
                "Successful".to_string()
            ),
            (
                "Setting min capacity to 5 and max capacity to 6".to_string(),
                "scheduled action name burst was triggered".to_string(),
                "Successful".to_string()
            ),
        ]
    );
    let described = aas
        .describe_scheduled_actions()
        .service_namespace(ServiceNamespace::Ecs)
        .resource_id(WEB)
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = described
        .scheduled_actions()
        .iter()
        .map(|a| a.scheduled_action_name())
        .collect();
    assert_eq!(names, ["burst", "weekday-evenings"]);
    let evening = &described.scheduled_actions()[1];
    assert_eq!(evening.timezone(), Some("America/New_York"));
    assert_eq!(evening.schedule(), "cron(0 18 ? * MON-FRI *)");
    assert!(
        evening
            .scheduled_action_arn()
            .ends_with(":resource/ecs/service/shop/web:scheduledActionName/weekday-evenings")
    );
    for expected in [None, Some("ObjectNotFoundException")] {
        let r = aas
            .delete_scheduled_action()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(WEB)
            .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
            .scheduled_action_name("burst")
            .send()
            .await;
        assert_eq!(
            r.err().map(|e| code(&e.into_service_error()).0).as_deref(),
            expected
        );
    }
}
