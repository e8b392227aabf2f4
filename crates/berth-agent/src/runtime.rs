//! What the agent needs of a container engine, as a trait: Docker implements it
//! ([`crate::docker::Docker`]), and the unit tests use an in-memory fake (`crate::fake`).
//!
//! The agent's logic (which containers to create, in which order, when a task has failed)
//! lives above this trait and never calls an engine directly.

use berth_node_api::agent::{HealthCheck, HealthStatus, NetworkBinding, PortMapping, Ulimit};
use std::collections::BTreeMap;
use std::future::Future;
use std::net::Ipv4Addr;
use std::time::Duration;

/// An engine call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// No such container, image or network.
    #[error("not found: {0}")]
    NotFound(String),
    /// The engine refused or could not be reached.
    #[error("{0}")]
    Engine(String),
}

/// A container of this agent's instance, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub task_arn: String,
    /// The ECS container name.
    pub name: String,
    pub running: bool,
    /// Created and never started.
    pub created: bool,
}

/// A container, as inspected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    /// The engine's name (`ecs-<family>-<revision>-<name>-<task>`).
    pub docker_name: String,
    pub image: String,
    pub image_id: String,
    pub labels: BTreeMap<String, String>,
    pub running: bool,
    /// RFC 3339; `None` before the first start.
    pub started_at: Option<String>,
    pub created_at: Option<String>,
    pub exit_code: Option<i64>,
    pub oom_killed: bool,
    pub health: Option<HealthStatus>,
    /// `bridge`, `host`, `none`, a network name or `container:<id>`.
    pub network_mode: String,
    /// Network name → the container's address on it.
    pub networks: BTreeMap<String, Option<Ipv4Addr>>,
    /// Published ports (empty once stopped).
    pub ports: Vec<NetworkBinding>,
    pub cpu_shares: i64,
    /// Bytes.
    pub memory: i64,
}

/// What to create. Sizes are bytes; the agent resolves everything else.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreateContainer {
    pub name: String,
    pub image: String,
    pub command: Option<Vec<String>>,
    pub entry_point: Option<Vec<String>>,
    /// `NAME=value`.
    pub environment: Vec<String>,
    pub working_directory: Option<String>,
    pub user: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Published with `host_port` 0 meaning any free port.
    pub ports: Vec<PortMapping>,
    pub stop_timeout: Option<u32>,
    pub health_check: Option<HealthCheck>,
    pub memory: Option<i64>,
    pub memory_reservation: Option<i64>,
    pub cpu_shares: i64,
    pub network_mode: String,
    pub privileged: bool,
    /// `source:path[:ro]`.
    pub binds: Vec<String>,
    pub ulimits: Vec<Ulimit>,
    pub readonly_root_filesystem: bool,
    /// Docker's log driver and its options (`None`: the engine's default).
    pub log: Option<(String, BTreeMap<String, String>)>,
}

/// One message the engine logged for a container: when it arrived, from which stream, and
/// its bytes — a line with its `\n`, or a part of a longer line without it (Docker cuts lines
/// at 16 KiB).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogMessage {
    /// Nanoseconds since the epoch.
    pub time_ns: i64,
    pub stderr: bool,
    pub text: Vec<u8>,
}

/// A container's logged output, message by message.
pub type LogStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<LogMessage, RuntimeError>> + Send>>;

/// Credentials for pulling from a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistryAuth {
    pub username: String,
    pub password: String,
    pub server: String,
}

/// A container engine.
pub trait Runtime: Clone + Send + Sync + 'static {
    /// The engine's version (reported at registration).
    fn version(&self) -> impl Future<Output = Result<String, RuntimeError>> + Send;

    /// The containers labelled with `instance`.
    fn containers(
        &self,
        instance: &str,
    ) -> impl Future<Output = Result<Vec<Container>, RuntimeError>> + Send;

    /// `Ok(None)` when the container is gone.
    fn inspect(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<ContainerState>, RuntimeError>> + Send;

    fn has_image(&self, image: &str) -> impl Future<Output = Result<bool, RuntimeError>> + Send;

    fn pull(
        &self,
        image: &str,
        auth: Option<RegistryAuth>,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// The new container's id.
    fn create(
        &self,
        spec: CreateContainer,
    ) -> impl Future<Output = Result<String, RuntimeError>> + Send;

    /// Starting a running container is not an error.
    fn start(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// SIGTERM, then SIGKILL after `timeout`; stopping a stopped container is not an error.
    fn stop(
        &self,
        id: &str,
        timeout: Duration,
    ) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Removing a gone container is not an error.
    fn remove(&self, id: &str) -> impl Future<Output = Result<(), RuntimeError>> + Send;

    /// Creates the bridge network `name` unless it exists; returns the id to attach
    /// containers by (a name can be ambiguous on the engine).
    fn ensure_network(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<String, RuntimeError>> + Send;

    /// The host's address on network `name` (where its containers reach the host), if one can
    /// be found.
    fn host_address(
        &self,
        network: &str,
    ) -> impl Future<Output = Result<Option<Ipv4Addr>, RuntimeError>> + Send;

    /// One sample of the engine's statistics for the container, in the engine's own JSON
    /// shape (the task metadata endpoint passes it through).
    fn stats(
        &self,
        id: &str,
    ) -> impl Future<Output = Result<Option<serde_json::Value>, RuntimeError>> + Send;

    /// What the container printed, as its engine logged it (Docker's `json-file`), from the
    /// messages that arrived at or after `since` (Unix seconds; 0: all), in the order logged;
    /// with `follow`, the stream goes on until the container stops.
    fn logs(&self, id: &str, since: i64, follow: bool) -> LogStream;
}

/// The labels the agent puts on its containers: the ECS agent's (tools that read ECS labels
/// find them) and the instance's, so agents sharing one engine each see only their own.
pub mod labels {
    pub const TASK_ARN: &str = "com.amazonaws.ecs.task-arn";
    pub const CLUSTER: &str = "com.amazonaws.ecs.cluster";
    pub const CONTAINER_NAME: &str = "com.amazonaws.ecs.container-name";
    pub const FAMILY: &str = "com.amazonaws.ecs.task-definition-family";
    pub const VERSION: &str = "com.amazonaws.ecs.task-definition-version";
    pub const INSTANCE: &str = "com.berth.container-instance";
    /// What earlier agents labelled task and container with (still adopted).
    pub const LEGACY_TASK_ARN: &str = "com.berth.task-arn";
    pub const LEGACY_CONTAINER_NAME: &str = "com.berth.container-name";

    /// The task ARN and container name a label set names, new labels first.
    pub fn task_and_container(get: impl Fn(&str) -> Option<String>) -> Option<(String, String)> {
        let task = get(TASK_ARN).or_else(|| get(LEGACY_TASK_ARN))?;
        let name = get(CONTAINER_NAME).or_else(|| get(LEGACY_CONTAINER_NAME))?;
        Some((task, name))
    }
}
