//! PutScheduledAction, DescribeScheduledActions, DeleteScheduledAction and
//! DescribeScalingActivities.

use super::{Listing, Target, input, millis, seconds};
use crate::route::Cx;
use berth_control::autoscaling::{
    Activity, ActivityFilter, ECS_DESIRED_COUNT, PutScheduledAction, ScheduledAction,
};
use berth_types::Error;
use serde::Deserialize;
use serde_json::{Value, json};

/// `PutScheduledAction`.
pub(super) async fn put_scheduled_action(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Bounds {
        min_capacity: Option<i64>,
        max_capacity: Option<i64>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        scheduled_action_name: String,
        schedule: Option<String>,
        timezone: Option<String>,
        start_time: Option<f64>,
        end_time: Option<f64>,
        scalable_target_action: Option<Bounds>,
    }
    let resource_id = input::<Target>(v.clone())?.ecs()?;
    let i: In = input(v)?;
    cx.region
        .autoscaling
        .scheduled_put(PutScheduledAction {
            resource_id,
            name: i.scheduled_action_name,
            schedule: i.schedule,
            timezone: i.timezone,
            start_ms: millis(i.start_time),
            end_ms: millis(i.end_time),
            target_action: i
                .scalable_target_action
                .map(|b| (b.min_capacity, b.max_capacity)),
        })
        .await?;
    Ok(json!({}))
}

fn action_out(a: &ScheduledAction) -> Value {
    json!({
        "ScheduledActionName": a.name,
        "ScheduledActionARN": a.arn,
        "ServiceNamespace": "ecs",
        "Schedule": a.schedule,
        "Timezone": a.timezone,
        "ResourceId": a.resource_id,
        "ScalableDimension": ECS_DESIRED_COUNT,
        "StartTime": a.start_ms.map(seconds),
        "EndTime": a.end_ms.map(seconds),
        "ScalableTargetAction": {"MinCapacity": a.min, "MaxCapacity": a.max},
        "CreationTime": seconds(a.created_ms),
    })
}

/// `DescribeScheduledActions`.
pub(super) fn describe_scheduled_actions(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        #[serde(default)]
        scheduled_action_names: Vec<String>,
        resource_id: Option<String>,
    }
    let listing: Listing = input(v.clone())?;
    let i: In = input(v)?;
    let scope = format!(
        "scheduled\t{}\t{}",
        i.resource_id.as_deref().unwrap_or(""),
        i.scheduled_action_names.join(",")
    );
    let actions = if listing.is_ecs() {
        cx.region
            .autoscaling
            .scheduled_describe(i.resource_id.as_deref(), &i.scheduled_action_names)?
    } else {
        Vec::new()
    };
    let (page, next) = listing.page(cx, &scope, &actions)?;
    Ok(json!({
        "ScheduledActions": page.iter().map(action_out).collect::<Vec<_>>(),
        "NextToken": next,
    }))
}

/// `DeleteScheduledAction`.
pub(super) async fn delete_scheduled_action(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        scheduled_action_name: String,
    }
    let resource_id = input::<Target>(v.clone())?.ecs()?;
    let i: In = input(v)?;
    cx.region
        .autoscaling
        .scheduled_delete(&resource_id, &i.scheduled_action_name)
        .await?;
    Ok(json!({}))
}

fn activity_out(a: &Activity) -> Value {
    let mut out = json!({
        "ActivityId": a.id,
        "ServiceNamespace": "ecs",
        "ResourceId": a.resource_id,
        "ScalableDimension": ECS_DESIRED_COUNT,
        "Description": a.description,
        "Cause": a.cause,
        "StartTime": seconds(a.start_ms),
        "EndTime": a.end_ms.map(seconds),
        "StatusCode": a.status_code,
        "StatusMessage": a.status_message,
        "Details": a.details,
    });
    if a.is_not_scaled() {
        out["NotScaledReasons"] = a
            .not_scaled
            .iter()
            .map(|r| {
                json!({
                    "Code": r.code,
                    "MaxCapacity": r.max,
                    "MinCapacity": r.min,
                    "CurrentCapacity": r.current,
                })
            })
            .collect();
    }
    out
}

/// `DescribeScalingActivities`.
pub(super) fn describe_scaling_activities(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        resource_id: Option<String>,
        #[serde(default)]
        include_not_scaled_activities: bool,
    }
    let listing: Listing = input(v.clone())?;
    let i: In = input(v)?;
    let scope = format!(
        "activities\t{}\t{}",
        i.resource_id.as_deref().unwrap_or(""),
        i.include_not_scaled_activities
    );
    let activities = if listing.is_ecs() {
        cx.region.autoscaling.activities_describe(&ActivityFilter {
            resource_id: i.resource_id,
            include_not_scaled: i.include_not_scaled_activities,
        })?
    } else {
        Vec::new()
    };
    let (page, next) = listing.page(cx, &scope, &activities)?;
    Ok(json!({
        "ScalingActivities": page.iter().map(activity_out).collect::<Vec<_>>(),
        "NextToken": next,
    }))
}
