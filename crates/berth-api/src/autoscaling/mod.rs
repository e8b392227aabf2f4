//! Application Auto Scaling over awsJson 1.1 (`AnyScaleFrontendService`): scalable targets,
//! scaling policies, scheduled actions, scaling activities and tags, for ECS services. Wire
//! shapes (PascalCase members, epoch-second timestamps) are converted here to and from
//! `berth-control::autoscaling`.
//!
//! Other namespaces and dimensions are modeled but not Berth's to scale: writes naming them
//! answer `ValidationException`; reads find nothing registered there.

use crate::route::Cx;
use berth_control::autoscaling::{
    ECS_DESIRED_COUNT, RegisterTarget, ScalableTarget, SuspendedChange, check_dimension,
};
use berth_types::{Error, Tag};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;

mod policies;
mod scheduled;

crate::operation::operations! {
    /// The Application Auto Scaling operations Berth implements.
    pub enum AasOp ("application-autoscaling") {
        RegisterScalableTarget => Write, Any,
            Partial("ECS services' ecs:service:DesiredCount; other namespaces answer ValidationException");
        DescribeScalableTargets => Read, Any, Partial("ECS services");
        DeregisterScalableTarget => Write, Any, Partial("ECS services");
        PutScalingPolicy => Write, Any,
            Partial("TargetTrackingScaling (ECSServiceAverageCPUUtilization, ECSServiceAverageMemoryUtilization, ALBRequestCountPerTarget, customized metrics and metric math) and StepScaling; no PredictiveScaling");
        DescribeScalingPolicies => Read, Any, Partial("ECS services");
        DeleteScalingPolicy => Write, Any, Partial("ECS services");
        PutScheduledAction => Write, Any, Partial("ECS services: at(), rate(), cron() with time zones");
        DescribeScheduledActions => Read, Any, Partial("ECS services");
        DeleteScheduledAction => Write, Any, Partial("ECS services");
        DescribeScalingActivities => Read, Any, Partial("ECS services");
        TagResource => Tagging, Arns("ResourceARN"), Partial("scalable targets");
        UntagResource => Tagging, Arns("ResourceARN"), Partial("scalable targets");
        ListTagsForResource => Read, Arns("ResourceARN"), Partial("scalable targets");
    }
}

/// Runs one Application Auto Scaling operation.
pub async fn dispatch(cx: &Cx<'_>, op: AasOp, v: Value) -> Result<Value, Error> {
    match op {
        AasOp::RegisterScalableTarget => Box::pin(register_scalable_target(cx, v)).await,
        AasOp::DescribeScalableTargets => describe_scalable_targets(cx, v),
        AasOp::DeregisterScalableTarget => Box::pin(deregister_scalable_target(cx, v)).await,
        AasOp::PutScalingPolicy => Box::pin(policies::put_scaling_policy(cx, v)).await,
        AasOp::DescribeScalingPolicies => policies::describe_scaling_policies(cx, v),
        AasOp::DeleteScalingPolicy => Box::pin(policies::delete_scaling_policy(cx, v)).await,
        AasOp::PutScheduledAction => Box::pin(scheduled::put_scheduled_action(cx, v)).await,
        AasOp::DescribeScheduledActions => scheduled::describe_scheduled_actions(cx, v),
        AasOp::DeleteScheduledAction => Box::pin(scheduled::delete_scheduled_action(cx, v)).await,
        AasOp::DescribeScalingActivities => scheduled::describe_scaling_activities(cx, v),
        AasOp::TagResource | AasOp::UntagResource | AasOp::ListTagsForResource => {
            Box::pin(tag_resource(cx, op, v)).await
        }
    }
}

fn input<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::coded("ValidationException", e.to_string()))
}

/// Epoch seconds of a millisecond time.
fn seconds(ms: i64) -> Value {
    json!(ms as f64 / 1000.0)
}

/// An epoch-seconds timestamp member, in milliseconds.
fn millis(v: Option<f64>) -> Option<i64> {
    v.map(|s| (s * 1000.0).round() as i64)
}

/// The members every request names its target with.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Target {
    service_namespace: String,
    resource_id: String,
    scalable_dimension: String,
}

impl Target {
    /// The resource id, once namespace and dimension are ECS's.
    fn ecs(self) -> Result<String, Error> {
        check_dimension(&self.service_namespace, &self.scalable_dimension)?;
        Ok(self.resource_id)
    }
}

/// What the Describe operations filter on; `None` when the namespace is not ECS's (nothing
/// is registered there).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Listing {
    service_namespace: String,
    scalable_dimension: Option<String>,
    max_results: Option<i64>,
    next_token: Option<String>,
}

impl Listing {
    fn is_ecs(&self) -> bool {
        self.service_namespace == "ecs"
            && self
                .scalable_dimension
                .as_deref()
                .is_none_or(|d| d == ECS_DESIRED_COUNT)
    }

    /// One page of `items` (offset tokens bound to `scope`), as `(items, NextToken)`.
    fn page<T: Clone>(
        &self,
        cx: &Cx<'_>,
        scope: &str,
        items: &[T],
    ) -> Result<(Vec<T>, Option<String>), Error> {
        let max = match self.max_results {
            None => 50,
            Some(n) if (1..=50).contains(&n) => n as usize,
            Some(n) => {
                return Err(Error::coded(
                    "ValidationException",
                    format!(
                        "1 validation error detected: Value '{n}' at 'maxResults' failed to satisfy constraint: Member must have value between 1 and 50"
                    ),
                ));
            }
        };
        cx.region
            .pager
            .offset_page(scope, items, max, self.next_token.as_deref())
            .ok_or_else(|| Error::coded("InvalidNextTokenException", "Invalid token"))
    }
}

fn tags_in(map: BTreeMap<String, String>) -> Vec<Tag> {
    map.into_iter()
        .map(|(key, value)| Tag { key, value })
        .collect()
}

/// `RegisterScalableTarget`.
async fn register_scalable_target(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Suspended {
        dynamic_scaling_in_suspended: Option<bool>,
        dynamic_scaling_out_suspended: Option<bool>,
        scheduled_scaling_suspended: Option<bool>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        min_capacity: Option<i64>,
        max_capacity: Option<i64>,
        #[serde(rename = "RoleARN")]
        role_arn: Option<String>,
        suspended_state: Option<Suspended>,
        #[serde(default)]
        tags: BTreeMap<String, String>,
    }
    let resource_id = input::<Target>(v.clone())?.ecs()?;
    let i: In = input(v)?;
    let t = cx
        .region
        .autoscaling
        .target_register(RegisterTarget {
            resource_id,
            min: i.min_capacity,
            max: i.max_capacity,
            role_arn: i.role_arn,
            suspended: i.suspended_state.map(|s| SuspendedChange {
                dynamic_in: s.dynamic_scaling_in_suspended,
                dynamic_out: s.dynamic_scaling_out_suspended,
                scheduled: s.scheduled_scaling_suspended,
            }),
            tags: tags_in(i.tags),
        })
        .await?;
    Ok(json!({"ScalableTargetARN": t.arn}))
}

fn target_out(t: &ScalableTarget) -> Value {
    json!({
        "ServiceNamespace": "ecs",
        "ResourceId": t.resource_id,
        "ScalableDimension": ECS_DESIRED_COUNT,
        "MinCapacity": t.min,
        "MaxCapacity": t.max,
        "RoleARN": t.role_arn,
        "CreationTime": seconds(t.created_ms),
        "SuspendedState": {
            "DynamicScalingInSuspended": t.suspended.dynamic_in,
            "DynamicScalingOutSuspended": t.suspended.dynamic_out,
            "ScheduledScalingSuspended": t.suspended.scheduled,
        },
        "ScalableTargetARN": t.arn,
    })
}

/// `DescribeScalableTargets`.
fn describe_scalable_targets(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        #[serde(default)]
        resource_ids: Vec<String>,
    }
    let listing: Listing = input(v.clone())?;
    let i: In = input(v)?;
    let targets = if listing.is_ecs() {
        cx.region.autoscaling.targets_describe(&i.resource_ids)?
    } else {
        Vec::new()
    };
    let scope = format!("targets\t{}", i.resource_ids.join(","));
    let (page, next) = listing.page(cx, &scope, &targets)?;
    Ok(json!({
        "ScalableTargets": page.iter().map(target_out).collect::<Vec<_>>(),
        "NextToken": next,
    }))
}

/// `DeregisterScalableTarget`.
async fn deregister_scalable_target(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let resource_id = input::<Target>(v)?.ecs()?;
    cx.region
        .autoscaling
        .target_deregister(&resource_id)
        .await?;
    Ok(json!({}))
}

/// `TagResource`, `UntagResource`, `ListTagsForResource` on a scalable target's ARN.
async fn tag_resource(cx: &Cx<'_>, op: AasOp, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        #[serde(rename = "ResourceARN")]
        resource_arn: String,
        #[serde(default)]
        tags: BTreeMap<String, String>,
        #[serde(default)]
        tag_keys: Vec<String>,
    }
    let i: In = input(v)?;
    let tags = cx
        .region
        .autoscaling
        .target_tags(&i.resource_arn, tags_in(i.tags), i.tag_keys)
        .await?;
    Ok(match op {
        AasOp::ListTagsForResource => {
            let map: BTreeMap<String, String> =
                tags.into_iter().map(|t| (t.key, t.value)).collect();
            json!({"Tags": map})
        }
        _ => json!({}),
    })
}
