//! Elastic Load Balancing (application load balancers) domain types (spec/elb-…md Part A).
//! Actions and rule conditions are the typed shapes of [`crate::shapes::elb`] (every modeled
//! member): the control plane validates them and compiles them for the data plane.

use crate::shapes::elb::{Action, RuleCondition};
use crate::{Tag, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An application load balancer. Stored under its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadBalancer {
    pub name: String,
    /// 16 lower-case hex characters (the last part of its ARN).
    pub id: String,
    /// `internet-facing` or `internal`.
    pub scheme: String,
    pub ip_address_type: String,
    pub dns_name: String,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub tags: Vec<Tag>,
    pub created_at: Timestamp,
}

/// A target group's health check settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    pub protocol: String,
    /// `traffic-port` or a port number.
    pub port: String,
    pub path: String,
    pub interval_seconds: i64,
    pub timeout_seconds: i64,
    pub healthy_threshold: i64,
    pub unhealthy_threshold: i64,
    /// `Matcher.HttpCode`: `200`, `200,202`, `200-299`.
    pub matcher: String,
}

/// A registered target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub id: String,
    pub port: i64,
    pub availability_zone: Option<String>,
    pub registered_at: Timestamp,
    /// Deregistered: shown `draining` until then, then removed.
    pub draining_until: Option<Timestamp>,
    /// What the data plane's health checks last found: `healthy` or `unhealthy` and the
    /// reason code (none until the first transition: `initial`).
    #[serde(default)]
    pub health: Option<(String, Option<String>)>,
}

/// A target group. Stored under its name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub name: String,
    pub id: String,
    pub protocol: String,
    pub port: i64,
    pub protocol_version: String,
    /// `instance` or `ip` (immutable).
    pub target_type: String,
    pub vpc_id: Option<String>,
    pub health_check: HealthCheck,
    pub attributes: BTreeMap<String, String>,
    pub tags: Vec<Tag>,
    pub targets: Vec<Target>,
    pub created_at: Timestamp,
}

/// A listener. Stored under `lb-name\nid`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Listener {
    pub id: String,
    pub load_balancer: String,
    pub load_balancer_id: String,
    pub protocol: String,
    pub port: i64,
    pub default_actions: Vec<Action>,
    pub tags: Vec<Tag>,
}

/// A listener rule. Stored under `lb-name\nlistener-id\nid`; every listener has a default
/// rule (`priority: None`) whose actions are the listener's default actions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rule {
    pub id: String,
    pub load_balancer: String,
    pub load_balancer_id: String,
    pub listener_id: String,
    pub priority: Option<u32>,
    pub conditions: Vec<RuleCondition>,
    pub actions: Vec<Action>,
    pub tags: Vec<Tag>,
}
