//! Application Auto Scaling of one region, for ECS services (`ecs:service:DesiredCount`):
//! scalable targets ([`targets`]), scaling policies and the alarms target tracking owns
//! ([`policies`]), scheduled actions ([`scheduled`]), scaling activities ([`activities`]) and
//! the scaler that applies them ([`scaler`]).
//!
//! The decisions are pure: [`plan`] says what a policy does to a target's desired count,
//! [`schedule`] when a scheduled action runs. The scaler reads a target, its service and its
//! alarms, asks the planner, and in one store write sets the service's desired count (with an
//! event saying why), the target's cooldown marks and the scaling activity.
//!
//! Alarm actions reach the scaler through the alarm evaluator ([`AutoScaling::policy_fired`],
//! called by the glue that runs the background tasks); scheduled actions through the
//! `scheduled-scaling` task ([`AutoScaling::scheduled_run`]). Time is the region's [`Clock`]
//! (CloudWatch's), so a test that runs it faster scales faster.
//!
//! Errors carry Application Auto Scaling's codes (`ValidationException`,
//! `ObjectNotFoundException`, …); `berth-api` renders them.

mod activities;
pub mod plan;
mod policies;
mod scaler;
pub mod schedule;
mod scheduled;
mod targets;

pub use activities::{Activity, ActivityFilter, NotScaled};
pub use policies::{
    MetricSource, PolicyConfig, PolicyFilter, PredefinedMetric, PutPolicy, ScalingPolicy,
    StepConfig, TargetTrackingConfig,
};
pub use scheduled::{PutScheduledAction, ScheduledAction};
pub use targets::{RegisterTarget, ScalableTarget, SuspendedChange};

use crate::background::Driver;
use crate::clock::Clock;
use crate::cloudwatch::CloudWatch;
use crate::ecs::Ecs;
use berth_store::Store;
use berth_types::ecs::ClusterName;
use berth_types::{Error, Scope};
use std::sync::Arc;

/// The one scalable dimension Berth scales.
pub const ECS_DESIRED_COUNT: &str = "ecs:service:DesiredCount";

/// Application Auto Scaling of one region. Cheap to clone.
#[derive(Clone)]
pub struct AutoScaling {
    scope: Scope,
    store: Store,
    clock: Clock,
    ecs: Ecs,
    cloudwatch: CloudWatch,
    background: Arc<Driver>,
}

impl AutoScaling {
    /// Application Auto Scaling over `store` (one region's partition, the one `ecs` and
    /// `cloudwatch` use: a scaling step writes the service and the activity together).
    pub fn new(
        scope: Scope,
        store: Store,
        clock: Clock,
        ecs: Ecs,
        cloudwatch: CloudWatch,
        background: Arc<Driver>,
    ) -> AutoScaling {
        AutoScaling {
            scope,
            store,
            clock,
            ecs,
            cloudwatch,
            background,
        }
    }

    /// The same handle, writing only while `fence` holds (a controller's term).
    pub fn fenced(&self, fence: Option<&berth_store::Fence>) -> Self {
        let mut h = self.clone();
        if let Some(f) = fence {
            h.store = h.store.fenced(f.clone());
            h.ecs = h.ecs.fenced(fence);
            h.cloudwatch = h.cloudwatch.fenced(fence);
        }
        h
    }

    fn now(&self) -> i64 {
        self.clock.now().0
    }
}

/// An ECS service's resource id, `service/<cluster>/<service>`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceId {
    pub cluster: ClusterName,
    pub service: String,
}

impl ServiceId {
    /// Parses a `ResourceId` of the `ecs` namespace.
    pub fn parse(resource_id: &str) -> Result<ServiceId, Error> {
        let bad = || {
            validation(format!(
                "Unsupported service namespace, resource type or scalable dimension: the ResourceId of an ECS service is service/<cluster name>/<service name>, not '{resource_id}'"
            ))
        };
        let mut parts = resource_id.split('/');
        let (Some("service"), Some(cluster), Some(service), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if service.is_empty() {
            return Err(bad());
        }
        Ok(ServiceId {
            cluster: ClusterName::parse(cluster).map_err(|_| bad())?,
            service: service.to_string(),
        })
    }

    pub fn resource_id(&self) -> String {
        format!("service/{}/{}", self.cluster, self.service)
    }
}

/// Checks the namespace and dimension of a request: Berth scales ECS services' desired count.
pub fn check_dimension(namespace: &str, dimension: &str) -> Result<(), Error> {
    if namespace != "ecs" {
        return Err(validation(format!(
            "Unsupported service namespace: Berth scales ECS services (ecs), not {namespace}"
        )));
    }
    if dimension != ECS_DESIRED_COUNT {
        return Err(validation(format!(
            "Unsupported scalable dimension for service namespace ecs: {dimension}. The ecs namespace has {ECS_DESIRED_COUNT}"
        )));
    }
    Ok(())
}

pub(crate) fn validation(message: impl Into<String>) -> Error {
    Error::coded("ValidationException", message)
}

pub(crate) fn not_found(message: impl Into<String>) -> Error {
    Error::coded("ObjectNotFoundException", message)
}

/// `service namespace: ecs, resource ID: …, scalable dimension: …` — how AWS's not-found
/// messages name a target.
fn target_words(resource_id: &str) -> String {
    format!(
        "service namespace: ecs, resource ID: {resource_id}, scalable dimension: {ECS_DESIRED_COUNT}"
    )
}
