//! Control plane ↔ load balancer node: the listeners and target groups a data plane serves,
//! compiled by the control plane from its ELB records, and the health transitions the data
//! plane's checks observe.
//!
//! Everything the request path needs is resolved here — rules in priority order with the
//! default last, ELB's defaults filled in, matchers as code ranges — so the data plane reads no
//! ELB API shape.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// `POST {}` → [`Config`].
pub const CONFIG: &str = "/lb/v1/config";
/// `POST` [`HealthReport`] → `{}`.
pub const HEALTH: &str = "/lb/v1/health";
/// `POST` [`MetricsReport`] → `{}`: what the listeners served since the last report.
pub const METRICS: &str = "/lb/v1/metrics";

/// Every listener and target group of a region.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Config {
    pub version: u32,
    pub listeners: Vec<Listener>,
    pub target_groups: Vec<TargetGroup>,
    /// How often the node reports what it served ([`MetricsReport`]): a minute of the
    /// control plane's CloudWatch clock, in real milliseconds.
    #[serde(default = "default_metrics_interval")]
    pub metrics_interval_ms: u64,
}

fn default_metrics_interval() -> u64 {
    60_000
}

/// A listener port: its rules by priority, the default rule last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub port: u16,
    /// Its load balancer as CloudWatch names it (`app/<name>/<id>`).
    #[serde(default)]
    pub load_balancer: String,
    pub rules: Vec<Rule>,
    /// The load balancer's `idle_timeout.timeout_seconds`.
    pub idle_timeout_seconds: u64,
}

/// A rule: every condition must match (none for the default rule).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub conditions: Vec<Condition>,
    pub action: Action,
}

/// A rule condition; any of its values may match (ALB glob patterns).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "field", rename_all = "kebab-case")]
pub enum Condition {
    HostHeader {
        values: Vec<String>,
    },
    PathPattern {
        values: Vec<String>,
    },
    /// `name` lower-cased.
    HttpHeader {
        name: String,
        values: Vec<String>,
    },
    HttpRequestMethod {
        values: Vec<String>,
    },
    QueryString {
        values: Vec<QueryPair>,
    },
    /// CIDR blocks.
    SourceIp {
        values: Vec<String>,
    },
}

/// A query-string condition's pair; no key matches any key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryPair {
    pub key: Option<String>,
    pub value: String,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Action {
    Forward {
        groups: Vec<WeightedGroup>,
    },
    /// Each part may use `#{protocol}`, `#{host}`, `#{port}`, `#{path}` and `#{query}`.
    Redirect {
        protocol: String,
        host: String,
        port: String,
        path: String,
        query: String,
        status: u16,
    },
    #[serde(rename_all = "camelCase")]
    FixedResponse {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
}

/// A forward action's target group and its weight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WeightedGroup {
    pub target_group_arn: String,
    pub weight: u32,
}

/// How a target group picks a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    RoundRobin,
    LeastOutstandingRequests,
}

/// A target group and its registered targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroup {
    pub arn: String,
    pub algorithm: Algorithm,
    /// `stickiness.enabled` (`lb_cookie`): how long the cookie binds a client to a target.
    pub stickiness_seconds: Option<u64>,
    /// `slow_start.duration_seconds`, when set.
    pub slow_start_seconds: Option<u64>,
    pub health_check: HealthCheck,
    pub targets: Vec<Target>,
}

/// A target group's health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub path: String,
    /// A fixed port, or `None` for each target's own port (`traffic-port`).
    pub port: Option<u16>,
    pub interval_seconds: u32,
    pub timeout_seconds: u32,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Status codes that pass, as inclusive ranges.
    pub matcher: Vec<(u16, u16)>,
}

/// A registered target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Target {
    /// An IP address (`ip` target groups) or an instance id.
    pub id: String,
    pub port: u16,
    /// The address of an `ip` target; `None` for an instance, which the node resolves.
    pub ip: Option<IpAddr>,
    /// Deregistered and draining: no new requests.
    pub draining: bool,
}

/// A target's health as the data plane's checks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetHealth {
    Initial,
    Healthy,
    Unhealthy,
}

impl TargetHealth {
    /// ELB's `TargetHealthStateEnum` value.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealth::Initial => "initial",
            TargetHealth::Healthy => "healthy",
            TargetHealth::Unhealthy => "unhealthy",
        }
    }
}

/// A health transition of one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthReport {
    pub target_group_arn: String,
    pub id: String,
    pub port: u16,
    pub state: TargetHealth,
    /// ELB's reason code (`Target.Timeout`, `Target.ResponseCodeMismatch`, …).
    pub reason: Option<String>,
}

/// What a node's listeners served since its last report, per load balancer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsReport {
    pub load_balancers: Vec<LoadBalancerMetrics>,
}

/// One load balancer's counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerMetrics {
    /// `app/<name>/<id>`.
    pub load_balancer: String,
    /// Requests the load balancer answered itself (fixed responses, redirects, its errors).
    pub own_requests: u64,
    /// Its own 4xx and 5xx answers (`HTTPCode_ELB_4XX_Count`, `HTTPCode_ELB_5XX_Count`).
    pub elb_4xx: u64,
    pub elb_5xx: u64,
    pub groups: Vec<GroupMetrics>,
}

/// One target group's counts behind one load balancer.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupMetrics {
    pub target_group_arn: String,
    /// Requests routed to the group.
    pub requests: u64,
    /// Responses of its targets by status class (2xx, 3xx, 4xx, 5xx).
    pub target_codes: [u64; 4],
    /// The time from sending a request to a target until its response head, in seconds.
    pub response_time: Option<TimeStats>,
    /// Registered targets (not draining) healthy and not healthy at the report.
    pub healthy: u64,
    pub unhealthy: u64,
}

/// A statistic set of durations in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimeStats {
    pub count: u64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lb_config_is_tagged_json() {
        let rule = Rule {
            conditions: vec![Condition::HttpHeader {
                name: "x-canary".into(),
                values: vec!["yes".into()],
            }],
            action: Action::FixedResponse {
                status: 503,
                content_type: Some("text/plain".into()),
                body: String::new(),
            },
        };
        let v = serde_json::to_value(&rule).unwrap();
        assert_eq!(v["conditions"][0]["field"], "http-header");
        assert_eq!(v["action"]["type"], "fixed-response");
        assert_eq!(v["action"]["contentType"], "text/plain");
        assert_eq!(serde_json::from_value::<Rule>(v).unwrap(), rule);
    }
}
