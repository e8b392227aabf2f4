//! ECS resources as the domain sees them (spec/ecs.md §1, §2, §4).
//!
//! Where AWS accepts documents that Berth stores and returns as given (container definitions,
//! overrides, cluster configuration, a service's load balancers), the domain keeps them as the
//! typed shapes of [`crate::shapes::ecs`] — every modeled member — and interprets the ones it
//! needs.

use crate::shapes::ecs as shapes;
use crate::{Error, Tag, Timestamp};
use serde::{Deserialize, Serialize};
use std::fmt;

/// `[A-Za-z0-9_-]{1,255}`: the rule for cluster, family, container and service names.
pub fn is_ecs_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! ecs_name {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A validated ", $what, " name.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: &str) -> Result<Self, Error> {
                if is_ecs_name(s) {
                    Ok(Self(s.to_string()))
                } else {
                    Err(Error::InvalidParameter(format!(
                        "{} name should be between 1 and 255 characters long, and contain only letters, numbers, underscores and hyphens.",
                        $what
                    )))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

ecs_name!(ClusterName, "Cluster");
ecs_name!(Family, "Family");

impl ClusterName {
    pub fn default_cluster() -> Self {
        ClusterName("default".into())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ClusterStatus {
    Active,
    Inactive,
}

impl ClusterStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterStatus::Active => "ACTIVE",
            ClusterStatus::Inactive => "INACTIVE",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSetting {
    pub name: String,
    pub value: String,
}

/// A cluster. Counters (instances, tasks, services) are derived when described.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cluster {
    pub name: ClusterName,
    pub status: ClusterStatus,
    pub settings: Vec<ClusterSetting>,
    pub configuration: Option<shapes::ClusterConfiguration>,
    pub capacity_providers: Vec<String>,
    pub default_capacity_provider_strategy: Vec<shapes::CapacityProviderStrategyItem>,
    pub service_connect_defaults: Option<shapes::ClusterServiceConnectDefaultsRequest>,
    pub tags: Vec<Tag>,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskDefinitionStatus {
    #[serde(rename = "ACTIVE")]
    Active,
    #[serde(rename = "INACTIVE")]
    Inactive,
    #[serde(rename = "DELETE_IN_PROGRESS")]
    DeleteInProgress,
}

impl TaskDefinitionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskDefinitionStatus::Active => "ACTIVE",
            TaskDefinitionStatus::Inactive => "INACTIVE",
            TaskDefinitionStatus::DeleteInProgress => "DELETE_IN_PROGRESS",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ACTIVE" => Some(Self::Active),
            "INACTIVE" => Some(Self::Inactive),
            "DELETE_IN_PROGRESS" => Some(Self::DeleteInProgress),
            _ => None,
        }
    }

    /// The one transition function: ACTIVE → INACTIVE → DELETE_IN_PROGRESS.
    pub fn transition(self, to: Self) -> Result<Self, InvalidTransition> {
        use TaskDefinitionStatus::*;
        match (self, to) {
            (Active, Inactive) | (Inactive, DeleteInProgress) => Ok(to),
            (Active | Inactive | DeleteInProgress, _) => Err(InvalidTransition {
                from: self.as_str(),
                to: to.as_str(),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot go from {from} to {to}")]
pub struct InvalidTransition {
    pub from: &'static str,
    pub to: &'static str,
}

/// A registered task definition revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskDefinition {
    pub family: Family,
    pub revision: u32,
    pub status: TaskDefinitionStatus,
    /// Every member of the registration request except `family` and `tags`, as given (task
    /// `cpu`/`memory` normalized to units and MiB, as AWS does).
    pub spec: crate::shapes::ecs::TaskDefinitionSpec,
    /// Attribute names an instance must carry to run this task definition.
    pub requires_attributes: Vec<String>,
    pub compatibilities: Vec<String>,
    pub registered_at: Timestamp,
    pub registered_by: String,
    pub deregistered_at: Option<Timestamp>,
    pub delete_requested_at: Option<Timestamp>,
    pub tags: Vec<Tag>,
}

impl TaskDefinition {
    /// `family:revision`, the key users type.
    pub fn key(&self) -> String {
        format!("{}:{}", self.family, self.revision)
    }
}

/// Container instance status (the model's set, plus INACTIVE once deregistered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum InstanceStatus {
    Active,
    Draining,
    Inactive,
}

impl InstanceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            InstanceStatus::Active => "ACTIVE",
            InstanceStatus::Draining => "DRAINING",
            InstanceStatus::Inactive => "INACTIVE",
        }
    }

    /// Registered: counts toward the cluster and blocks its deletion.
    pub fn is_registered(self) -> bool {
        match self {
            InstanceStatus::Active | InstanceStatus::Draining => true,
            InstanceStatus::Inactive => false,
        }
    }

    /// The one transition function (spec/ecs.md §3).
    pub fn transition(self, to: Self) -> Result<Self, InvalidTransition> {
        use InstanceStatus::*;
        match (self, to) {
            (Active | Draining, Active | Draining | Inactive) => Ok(to),
            (Inactive, _) => Err(InvalidTransition {
                from: self.as_str(),
                to: to.as_str(),
            }),
        }
    }
}

/// A resource of a container instance (`CPU`, `MEMORY`, `PORTS`, `PORTS_UDP`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceResource {
    pub name: String,
    /// `INTEGER`, `LONG`, `DOUBLE` or `STRINGSET`.
    pub kind: String,
    pub integer: Option<i64>,
    pub long: Option<i64>,
    pub double: Option<f64>,
    pub string_set: Vec<String>,
}

/// A name/value attribute of a container instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceAttribute {
    pub name: String,
    pub value: Option<String>,
}

/// A registered container instance (a node running Berth's agent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerInstance {
    /// 32 lower-case hex characters.
    pub id: String,
    pub cluster: ClusterName,
    pub ec2_instance_id: String,
    pub status: InstanceStatus,
    pub agent_connected: bool,
    pub registered_resources: Vec<InstanceResource>,
    pub attributes: Vec<InstanceAttribute>,
    pub version_info: Option<shapes::VersionInfo>,
    pub registered_at: Timestamp,
    pub tags: Vec<Tag>,
    /// Bumped on every change, reported as `version`.
    pub version: i64,
}

impl ContainerInstance {
    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|a| a.name == name)
            .map(|a| a.value.as_deref().unwrap_or(""))
    }
}

/// A task's `lastStatus` (spec/ecs.md §5.1). The order is the life cycle: it never moves back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum TaskStatus {
    Provisioning,
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl Task {
    /// `HEALTHY` when every essential container with a health check is healthy, `UNHEALTHY`
    /// when one of them is not, `UNKNOWN` otherwise (spec/ecs.md §5.1).
    pub fn health_status(&self) -> &'static str {
        task_health(
            self.containers
                .iter()
                .map(|c| (c.essential, c.health_status.as_deref())),
        )
    }
}

/// A task's `healthStatus` from its containers' `(essential, healthStatus)`: UNHEALTHY if an
/// essential container is, HEALTHY if every essential container with a health check is (and
/// there is one), else UNKNOWN.
pub fn task_health<'a>(containers: impl Iterator<Item = (bool, Option<&'a str>)>) -> &'static str {
    let mut any = false;
    let mut all_healthy = true;
    for (essential, health) in containers {
        let Some(h) = health.filter(|_| essential) else {
            continue;
        };
        if h == "UNHEALTHY" {
            return "UNHEALTHY";
        }
        any = true;
        all_healthy &= h == "HEALTHY";
    }
    if any && all_healthy {
        "HEALTHY"
    } else {
        "UNKNOWN"
    }
}

impl TaskStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Provisioning => "PROVISIONING",
            TaskStatus::Pending => "PENDING",
            TaskStatus::Activating => "ACTIVATING",
            TaskStatus::Running => "RUNNING",
            TaskStatus::Deactivating => "DEACTIVATING",
            TaskStatus::Stopping => "STOPPING",
            TaskStatus::Deprovisioning => "DEPROVISIONING",
            TaskStatus::Stopped => "STOPPED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PROVISIONING" => TaskStatus::Provisioning,
            "PENDING" => TaskStatus::Pending,
            "ACTIVATING" => TaskStatus::Activating,
            "RUNNING" => TaskStatus::Running,
            "DEACTIVATING" => TaskStatus::Deactivating,
            "STOPPING" => TaskStatus::Stopping,
            "DEPROVISIONING" => TaskStatus::Deprovisioning,
            "STOPPED" => TaskStatus::Stopped,
            _ => return None,
        })
    }

    /// Tasks in these states hold their instance's resources.
    pub fn holds_resources(self) -> bool {
        self != TaskStatus::Stopped
    }

    /// Counted as pending (not yet running) by clusters and instances.
    pub fn is_pending(self) -> bool {
        match self {
            TaskStatus::Provisioning | TaskStatus::Pending | TaskStatus::Activating => true,
            TaskStatus::Running
            | TaskStatus::Deactivating
            | TaskStatus::Stopping
            | TaskStatus::Deprovisioning
            | TaskStatus::Stopped => false,
        }
    }

    /// The one transition function: forward only (a repeated report is a no-op).
    pub fn transition(self, to: Self) -> Result<Self, InvalidTransition> {
        if to >= self {
            Ok(to)
        } else {
            Err(InvalidTransition {
                from: self.as_str(),
                to: to.as_str(),
            })
        }
    }
}

/// A container of a task, as the control plane tracks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskContainer {
    pub name: String,
    pub image: String,
    /// The uuid in the container ARN.
    pub uuid: String,
    /// `PENDING`, `RUNNING` or `STOPPED`.
    pub last_status: String,
    pub essential: bool,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub runtime_id: Option<String>,
    /// The port bindings the agent reported.
    pub network_bindings: Vec<shapes::NetworkBinding>,
    pub health_status: Option<String>,
    pub cpu: Option<i64>,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
}

/// A task: one run of a task definition on a container instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    /// 32 lower-case hex characters.
    pub id: String,
    pub cluster: ClusterName,
    pub family: Family,
    pub revision: u32,
    pub container_instance: Option<String>,
    pub group: String,
    pub started_by: Option<String>,
    pub launch_type: String,
    pub overrides: Option<shapes::TaskOverride>,
    pub last_status: TaskStatus,
    /// `RUNNING` or `STOPPED`; only ever moves to STOPPED.
    pub desired_stopped: bool,
    /// CPU units and MiB reserved on the instance.
    pub cpu: i64,
    pub memory: i64,
    /// Static host ports reserved on the instance.
    pub tcp_ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
    /// The task-level `cpu`/`memory` strings of the task definition (or overrides), if any.
    pub cpu_spec: Option<String>,
    pub memory_spec: Option<String>,
    pub containers: Vec<TaskContainer>,
    pub availability_zone: Option<String>,
    pub created_at: Timestamp,
    pub pull_started_at: Option<Timestamp>,
    pub pull_stopped_at: Option<Timestamp>,
    pub started_at: Option<Timestamp>,
    pub stopping_at: Option<Timestamp>,
    pub stopped_at: Option<Timestamp>,
    pub execution_stopped_at: Option<Timestamp>,
    pub stop_code: Option<String>,
    pub stopped_reason: Option<String>,
    pub tags: Vec<Tag>,
    /// Bumped on every change.
    pub version: i64,
    /// awsvpc: the task's own address (its "ENI"), once the agent reports it.
    #[serde(default)]
    pub private_ipv4_address: Option<String>,
    /// Set by the service scheduler when it deregistered the task's load balancer targets to
    /// stop it: the reason it will be stopped with once they have drained.
    #[serde(default)]
    pub drain_reason: Option<String>,
    /// The load balancer targets the service scheduler registered for this task. Recorded
    /// before they are registered, so they are known (and deregistered) even after the
    /// containers and their port bindings are gone.
    #[serde(default)]
    pub targets: Vec<TaskTarget>,
}

/// A task's target in one target group: `instance` targets are the node id and the host port
/// bound to the container port, `ip` targets the task's address and the container port.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskTarget {
    pub target_group: String,
    pub id: String,
    pub port: i64,
}

/// A service (spec/ecs.md §7). Stored under `cluster\nname`; the status column is `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub cluster: ClusterName,
    /// `ACTIVE`, `DRAINING` (deleted, tasks stopping) or `INACTIVE`.
    pub status: String,
    /// `REPLICA` or `DAEMON`.
    pub scheduling_strategy: String,
    pub desired_count: u32,
    pub launch_type: String,
    /// The PRIMARY deployment's task definition.
    pub family: Family,
    pub revision: u32,
    pub placement_strategy: Vec<shapes::PlacementStrategy>,
    pub placement_constraints: Vec<shapes::PlacementConstraint>,
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
    pub circuit_breaker_enable: bool,
    pub circuit_breaker_rollback: bool,
    pub health_check_grace_period_seconds: u32,
    /// The target groups its tasks are registered in.
    pub load_balancers: Vec<shapes::LoadBalancer>,
    pub network_configuration: Option<shapes::NetworkConfiguration>,
    pub tags: Vec<Tag>,
    /// `propagateTags`: `NONE`, `SERVICE` or `TASK_DEFINITION`.
    pub propagate_tags: String,
    pub enable_ecs_managed_tags: bool,
    pub created_at: Timestamp,
    pub created_by: String,
    /// Newest first; PRIMARY first of all.
    pub deployments: Vec<Deployment>,
    /// Newest first, at most 100.
    pub events: Vec<ServiceEvent>,
    /// The task definition of the last deployment that completed (what a rollback restores).
    pub completed: Option<(Family, u32)>,
    /// Whether the last scheduler pass found the service steady (events fire on changes).
    pub steady: bool,
}

/// One deployment of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// `ecs-svc/` and 19 digits; service tasks carry it as `startedBy`.
    pub id: String,
    /// `PRIMARY` or `ACTIVE`.
    pub status: String,
    pub family: Family,
    pub revision: u32,
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    pub failed_tasks: u32,
    /// `IN_PROGRESS`, `COMPLETED` or `FAILED`.
    pub rollout_state: String,
    pub rollout_state_reason: String,
    pub launch_type: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A service event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEvent {
    pub id: String,
    pub created_at: Timestamp,
    pub message: String,
}

/// An account setting (`PutAccountSetting` / `PutAccountSettingDefault`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountSetting {
    pub name: String,
    pub value: String,
    /// The principal it applies to; the account root for defaults.
    pub principal_arn: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_ecs_rule() {
        assert!(ClusterName::parse("my-cluster_1").is_ok());
        assert!(ClusterName::parse("").is_err());
        assert!(ClusterName::parse("a b").is_err());
        assert!(Family::parse(&"x".repeat(256)).is_err());
    }

    #[test]
    fn task_health_follows_essential_containers() {
        let c = |essential: bool, health: Option<&str>| TaskContainer {
            name: "c".into(),
            image: "i".into(),
            uuid: "u".into(),
            last_status: "RUNNING".into(),
            essential,
            exit_code: None,
            reason: None,
            runtime_id: None,
            network_bindings: vec![],
            health_status: health.map(Into::into),
            cpu: None,
            memory: None,
            memory_reservation: None,
        };
        let task = |containers| Task {
            id: "t".into(),
            cluster: ClusterName::parse("c").unwrap(),
            family: Family::parse("f").unwrap(),
            revision: 1,
            container_instance: None,
            group: "g".into(),
            started_by: None,
            launch_type: "EC2".into(),
            overrides: None,
            last_status: TaskStatus::Running,
            desired_stopped: false,
            cpu: 0,
            memory: 0,
            tcp_ports: vec![],
            udp_ports: vec![],
            cpu_spec: None,
            memory_spec: None,
            containers,
            availability_zone: None,
            created_at: Timestamp(0),
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            stopping_at: None,
            stopped_at: None,
            execution_stopped_at: None,
            stop_code: None,
            stopped_reason: None,
            tags: vec![],
            version: 1,
            private_ipv4_address: None,
            drain_reason: None,
            targets: vec![],
        };
        assert_eq!(task(vec![c(true, None)]).health_status(), "UNKNOWN");
        assert_eq!(
            task(vec![c(true, Some("HEALTHY")), c(true, None)]).health_status(),
            "HEALTHY"
        );
        assert_eq!(
            task(vec![c(true, Some("HEALTHY")), c(true, Some("UNKNOWN"))]).health_status(),
            "UNKNOWN"
        );
        assert_eq!(
            task(vec![c(true, Some("HEALTHY")), c(false, Some("UNHEALTHY"))]).health_status(),
            "HEALTHY"
        );
        assert_eq!(
            task(vec![c(true, Some("UNHEALTHY")), c(true, Some("HEALTHY"))]).health_status(),
            "UNHEALTHY"
        );
    }

    #[test]
    fn task_status_only_moves_forward() {
        use TaskStatus::*;
        assert_eq!(Pending.transition(Running), Ok(Running));
        assert_eq!(Running.transition(Running), Ok(Running));
        assert_eq!(Pending.transition(Stopped), Ok(Stopped));
        assert!(Running.transition(Pending).is_err());
        assert!(Stopped.transition(Running).is_err());
        assert!(
            Pending.is_pending()
                && !Running.is_pending()
                && Stopping.holds_resources()
                && !Stopped.holds_resources()
        );
        for s in [
            Provisioning,
            Pending,
            Activating,
            Running,
            Deactivating,
            Stopping,
            Deprovisioning,
            Stopped,
        ] {
            assert_eq!(TaskStatus::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn task_definition_status_transitions() {
        use TaskDefinitionStatus::*;
        assert_eq!(Active.transition(Inactive), Ok(Inactive));
        assert_eq!(Inactive.transition(DeleteInProgress), Ok(DeleteInProgress));
        assert!(Active.transition(DeleteInProgress).is_err());
        assert!(DeleteInProgress.transition(Active).is_err());
        assert!(Inactive.transition(Active).is_err());
    }
}
