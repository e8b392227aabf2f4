//! Control plane ↔ agent: the desired-task document and the observed-state reports.
//!
//! Timestamps are epoch milliseconds. Names keep ECS's meaning (`essential`, `stopTimeout`,
//! `dependsOn`, …); values are resolved by the control plane — overrides applied, task-level
//! memory spread to containers that set none — so the agent interprets nothing twice.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `POST {cluster, containerInstance, generation, timeoutMs}` → [`Desired`].
pub const DESIRED: &str = "/agent/v1/desired";
/// `POST` [`ReportBatch`] → [`ReportResult`].
pub const REPORT: &str = "/agent/v1/report";
/// `POST {cluster, containerInstance}` → `{}`: a check-in without a long-poll (a desired-state
/// poll checks in too).
pub const HEARTBEAT: &str = "/agent/v1/heartbeat";
/// `POST` [`CredentialsRequest`] → [`RoleCredentials`]: temporary credentials of a task's role,
/// for a task placed on the calling instance.
pub const CREDENTIALS: &str = "/agent/v1/credentials";
/// `POST` [`StatsReport`] → `{}`: what the instance's tasks used (CloudWatch's `AWS/ECS`
/// utilization metrics).
pub const STATS: &str = "/agent/v1/stats";

/// The longest a desired-state poll waits for a change (the server may cut it shorter, to
/// stay well inside its agent timeout: the poll is the agent's heartbeat).
pub const MAX_WAIT_MS: u64 = 20_000;

/// Which instance a call is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceRef {
    pub cluster: String,
    pub container_instance: String,
}

/// A desired-state poll.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DesiredRequest {
    pub cluster: String,
    pub container_instance: String,
    /// The generation the agent holds (0: none).
    pub generation: u64,
    /// How long to wait for a newer one, at most [`MAX_WAIT_MS`].
    pub timeout_ms: u64,
}

/// An instance's desired tasks. Generations only grow; a document of a generation the agent
/// already holds is the same document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Desired {
    pub version: u32,
    pub generation: u64,
    /// Every task the instance should run or stop; `None` when the generation did not move
    /// during the wait.
    pub tasks: Option<Vec<TaskSpec>>,
    /// How often the agent reports its tasks' usage ([`StatsReport`]): a minute of the
    /// control plane's CloudWatch clock, in real milliseconds.
    #[serde(default = "default_stats_interval")]
    pub stats_interval_ms: u64,
}

fn default_stats_interval() -> u64 {
    60_000
}

/// What an instance's running tasks used, sampled once per report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatsReport {
    pub cluster: String,
    pub container_instance: String,
    pub tasks: Vec<TaskStats>,
}

/// One task's usage: CPU units (1,024 per core) and memory (MiB, without the page cache),
/// summed over its containers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStats {
    pub task_arn: String,
    pub cpu_units: f64,
    pub memory_mib: f64,
}

/// What the agent should make of a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DesiredStatus {
    Running,
    Stopped,
}

/// Where the control plane last recorded a task (its `lastStatus`, in the three steps an agent
/// acts on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum KnownStatus {
    Pending,
    Running,
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Bridge,
    Host,
    Awsvpc,
    None,
}

/// One task, resolved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    pub arn: String,
    pub cluster_arn: String,
    pub task_definition_arn: String,
    pub family: String,
    pub revision: u32,
    pub desired: DesiredStatus,
    pub known: KnownStatus,
    pub network_mode: NetworkMode,
    pub launch_type: String,
    pub availability_zone: Option<String>,
    /// Task-level `cpu` (units) and `memory` (MiB) as the task reports them, if set.
    pub cpu: Option<String>,
    pub memory: Option<String>,
    pub pull_started_at: Option<i64>,
    pub pull_stopped_at: Option<i64>,
    pub containers: Vec<ContainerSpec>,
    pub volumes: Vec<Volume>,
    /// The task's IAM role (`taskRoleArn`, overrides applied): its containers get credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_role_arn: Option<String>,
    /// The role the agent pulls the task's images with (`executionRoleArn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_role_arn: Option<String>,
}

impl TaskSpec {
    /// The last part of the ARN.
    pub fn id(&self) -> &str {
        self.arn.rsplit('/').next().unwrap_or(&self.arn)
    }

    pub fn container(&self, name: &str) -> Option<&ContainerSpec> {
        self.containers.iter().find(|c| c.name == name)
    }
}

/// One container, resolved (overrides applied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub essential: bool,
    pub command: Option<Vec<String>>,
    pub entry_point: Option<Vec<String>>,
    /// In order; a later entry with the same name wins.
    pub environment: Vec<KeyValue>,
    pub working_directory: Option<String>,
    pub user: Option<String>,
    /// CPU units (0: none given).
    pub cpu: u32,
    /// Hard limit and soft reservation, MiB.
    pub memory: Option<u32>,
    pub memory_reservation: Option<u32>,
    pub port_mappings: Vec<PortMapping>,
    pub mount_points: Vec<MountPoint>,
    pub ulimits: Vec<Ulimit>,
    pub health_check: Option<HealthCheck>,
    pub docker_labels: BTreeMap<String, String>,
    pub privileged: bool,
    pub readonly_root_filesystem: bool,
    /// Seconds between SIGTERM and SIGKILL (ECS default 30).
    pub stop_timeout: Option<u32>,
    pub depends_on: Vec<Dependency>,
    pub log_configuration: Option<LogConfiguration>,
    /// The health the control plane last recorded (the agent reports changes).
    pub known_health: Option<HealthStatus>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyValue {
    pub name: String,
    pub value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub container_port: u16,
    /// 0: any free port.
    pub host_port: u16,
    pub protocol: Protocol,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MountPoint {
    pub source_volume: String,
    pub container_path: String,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Ulimit {
    pub name: String,
    pub soft_limit: i64,
    pub hard_limit: i64,
}

/// A container health check, times in seconds (ECS defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthCheck {
    pub command: Vec<String>,
    pub interval: u32,
    pub timeout: u32,
    pub retries: u32,
    pub start_period: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HealthStatus {
    Healthy,
    Unhealthy,
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Condition {
    Start,
    Complete,
    Success,
    Healthy,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dependency {
    pub container_name: String,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogConfiguration {
    pub log_driver: String,
    pub options: BTreeMap<String, String>,
}

/// A task volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub source: VolumeSource,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum VolumeSource {
    /// A path on the host.
    Host { source_path: String },
    /// A Docker volume: task-scoped unless `shared`.
    Docker { shared: bool },
}

/// Which of a task's roles credentials are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskRole {
    /// `taskRoleArn`: served to the task's containers.
    Task,
    /// `executionRoleArn`: the agent's, for pulling the task's images; never a container's.
    Execution,
}

/// Credentials of one of a task's roles.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsRequest {
    pub cluster: String,
    pub container_instance: String,
    pub task_arn: String,
    pub role: TaskRole,
}

/// Temporary credentials of a role session (`arn:aws:sts::<acct>:assumed-role/<role>/<task id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleCredentials {
    pub role_arn: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Epoch seconds.
    pub expiration: i64,
}

/// Observed states, sent in batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportBatch {
    pub cluster: String,
    pub container_instance: String,
    pub reports: Vec<TaskReport>,
}

/// What the agent saw of one task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskReport {
    pub task_arn: String,
    pub status: ReportedStatus,
    pub reason: Option<String>,
    pub containers: Vec<ContainerReport>,
    pub pull_started_at: Option<i64>,
    pub pull_stopped_at: Option<i64>,
    pub execution_stopped_at: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReportedStatus {
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerReport {
    pub name: String,
    pub runtime_id: Option<String>,
    pub status: ReportedStatus,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub network_bindings: Vec<NetworkBinding>,
    pub health: Option<HealthStatus>,
    /// awsvpc: the task's own address.
    pub private_ipv4_address: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkBinding {
    pub bind_ip: String,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Protocol,
}

/// What became of a batch: the reports the control plane could not apply, with why (a task
/// it no longer knows, a transition it refuses). The others were applied.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReportResult {
    pub rejected: Vec<Rejected>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rejected {
    pub task_arn: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form is camelCase with ECS's enum spellings, and it round-trips.
    #[test]
    fn agent_documents_round_trip_in_camel_case() {
        let doc = Desired {
            version: crate::VERSION,
            generation: 7,
            tasks: Some(vec![TaskSpec {
                arn: "arn:aws:ecs:us-east-1:000000000000:task/c/0123".into(),
                cluster_arn: "arn:aws:ecs:us-east-1:000000000000:cluster/c".into(),
                task_definition_arn: "arn:aws:ecs:us-east-1:000000000000:task-definition/f:1"
                    .into(),
                family: "f".into(),
                revision: 1,
                desired: DesiredStatus::Running,
                known: KnownStatus::Pending,
                network_mode: NetworkMode::Awsvpc,
                launch_type: "EC2".into(),
                availability_zone: None,
                cpu: None,
                memory: Some("512".into()),
                pull_started_at: None,
                pull_stopped_at: None,
                containers: vec![],
                volumes: vec![Volume {
                    name: "data".into(),
                    source: VolumeSource::Docker { shared: true },
                }],
                task_role_arn: Some("arn:aws:iam::000000000000:role/app".into()),
                execution_role_arn: None,
            }]),
            stats_interval_ms: 60_000,
        };
        let text = serde_json::to_string(&doc).unwrap();
        assert!(text.contains(r#""desired":"RUNNING""#), "{text}");
        assert!(text.contains(r#""networkMode":"awsvpc""#), "{text}");
        assert!(
            text.contains(r#""source":{"type":"docker","shared":true}"#),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Desired>(&text).unwrap(), doc);
        assert_eq!(doc.tasks.unwrap()[0].id(), "0123");
    }
}
