//! What the agent does to one task, over a [`Runtime`]: start it (pull, create, start its
//! containers in dependency order), check it (an essential container gone, a health change),
//! stop it (SIGTERM, SIGKILL after each container's `stopTimeout`, in reverse dependency
//! order), and the report each ends with.
//!
//! A worker runs on its own tokio task, so a slow engine call holds up only its task: many
//! tasks start and stop at once, bounded by the agent's permits, while the agent keeps polling
//! and reporting.

use crate::metadata::Metadata;
use crate::runtime::{Container, ContainerState, CreateContainer, RegistryAuth, Runtime, labels};
use berth_node_api::agent::{
    Condition, ContainerReport, ContainerSpec, HealthStatus, NetworkMode, ReportedStatus,
    TaskReport, TaskSpec, VolumeSource,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The Docker network awsvpc tasks get their own addresses on.
pub const TASK_NETWORK: &str = "berth-awsvpc";

/// The log drivers the agent supports (it advertises their capabilities): `json-file`, passed
/// to the engine, and `awslogs`, a `json-file` log the agent ships (`crate::awslogs`).
pub const LOG_DRIVERS: &[&str] = &["json-file", "awslogs"];

/// ECS's default `stopTimeout`.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a container waiting for a dependency looks again.
const DEPENDENCY_POLL: Duration = Duration::from_millis(250);

/// Why a task could not start: the text is the task's `stoppedReason`, in ECS's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskError {
    #[error("CannotPullContainerError: {0}")]
    Pull(String),
    #[error("CannotCreateContainerError: {0}")]
    Create(String),
    #[error("CannotStartContainerError: {0}")]
    Start(String),
    #[error("ResourceInitializationError: {0}")]
    Resources(String),
    #[error(
        "DependencyViolation: container {dependency} exited with code {code}, and {container} needs it to succeed"
    )]
    Dependency {
        dependency: String,
        code: i64,
        container: String,
    },
    #[error("ResourceInitializationError: the container engine failed: {0}")]
    Engine(String),
}

/// Where the agent gets registry credentials for an image (an ECR token for images of its own
/// Berth's registry; none for others).
pub trait Registry: Send + Sync + 'static {
    fn auth(
        &self,
        image: &str,
        task: &TaskSpec,
    ) -> impl std::future::Future<Output = Result<Option<RegistryAuth>, String>> + Send;
}

/// What every worker of one agent shares.
pub struct Ctx<R, G> {
    pub runtime: R,
    pub registry: G,
    pub instance_arn: String,
    pub cluster: String,
    /// The task metadata endpoint (`None`: containers get no `ECS_CONTAINER_METADATA_URI_V4`).
    pub metadata: Option<Arc<Metadata<R>>>,
    /// Engine work in flight at once, across tasks.
    pub permits: Arc<Semaphore>,
    /// The `awslogs` shippers (`None`: the agent ships no logs — unit tests without them).
    pub logs: Option<Arc<crate::awslogs::Shippers<R>>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl<R: Runtime, G: Registry> Ctx<R, G> {
    /// Starts every container of the task that does not run yet (adopting those that do), in
    /// dependency order; the RUNNING report, or STOPPED with the reason it could not start
    /// (its containers then removed).
    pub async fn start_task(&self, task: &TaskSpec, existing: &[Container]) -> TaskReport {
        let pull_started = now_ms();
        match self.start_containers(task, existing).await {
            Ok(started) => {
                let mut containers = Vec::new();
                for c in &task.containers {
                    containers.push(self.container_report(&started[&c.name], &c.name).await);
                }
                TaskReport {
                    task_arn: task.arn.clone(),
                    status: ReportedStatus::Running,
                    reason: None,
                    containers,
                    pull_started_at: Some(pull_started),
                    pull_stopped_at: Some(now_ms()),
                    execution_stopped_at: None,
                }
            }
            Err(e) => {
                tracing::warn!(task = %task.arn, reason = %e, "task failed to start");
                let left = self
                    .runtime
                    .containers(&self.instance_arn)
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|c| c.task_arn == task.arn)
                    .collect::<Vec<_>>();
                let mut report = self.stop_task(task, &left).await;
                report.reason = Some(e.to_string());
                for c in &mut report.containers {
                    c.reason.get_or_insert_with(|| e.to_string());
                }
                report
            }
        }
    }

    async fn start_containers(
        &self,
        task: &TaskSpec,
        existing: &[Container],
    ) -> Result<HashMap<String, String>, TaskError> {
        let mut permit = Some(self.permits.acquire().await.expect("permits"));
        // awsvpc: the task network, by id.
        let task_network = match task.network_mode {
            NetworkMode::Awsvpc => Some(self.runtime.ensure_network(TASK_NETWORK).await.map_err(
                |e| TaskError::Resources(format!("cannot create the task network: {e}")),
            )?),
            _ => None,
        };
        let metadata = self.metadata_host(task, task_network.as_deref()).await?;
        let credentials = self.credentials_env(task, metadata).await?;
        let mut started: HashMap<String, String> = HashMap::new();
        // awsvpc: the first container holds the task's address; the others join its namespace.
        let mut namespace: Option<String> = None;
        loop {
            let mut progressed = false;
            for spec in &task.containers {
                if started.contains_key(&spec.name) {
                    continue;
                }
                if !self.dependencies_met(spec, &started).await? {
                    continue;
                }
                let found = existing.iter().find(|c| c.name == spec.name);
                let id = match found {
                    Some(c) => c.id.clone(),
                    None => {
                        self.logging_options(spec)?;
                        self.ensure_image(&spec.image, task).await?;
                        let network = match (task.network_mode, &namespace) {
                            (NetworkMode::Awsvpc, Some(first)) => format!("container:{first}"),
                            (NetworkMode::Awsvpc, None) => {
                                task_network.clone().unwrap_or_else(|| TASK_NETWORK.into())
                            }
                            (NetworkMode::Bridge, _) => "bridge".into(),
                            (NetworkMode::Host, _) => "host".into(),
                            (NetworkMode::None, _) => "none".into(),
                        };
                        let create = container_config(
                            task,
                            spec,
                            &self.cluster,
                            &self.instance_arn,
                            network,
                            metadata,
                            credentials.as_deref(),
                        );
                        self.runtime
                            .create(create)
                            .await
                            .map_err(|e| TaskError::Create(e.to_string()))?
                    }
                };
                // A container that already ran (a dependency that completed) is not run again.
                let ran = found.is_some_and(|c| !c.created);
                if !ran {
                    self.prepare_logging(task, spec, &id).await?;
                    self.runtime
                        .start(&id)
                        .await
                        .map_err(|e| TaskError::Start(e.to_string()))?;
                    if let Some(logs) = &self.logs {
                        logs.start(&id);
                    }
                }
                namespace.get_or_insert(id.clone());
                started.insert(spec.name.clone(), id);
                progressed = true;
            }
            if started.len() == task.containers.len() {
                return Ok(started);
            }
            if !progressed {
                // Waiting for a dependency: let other tasks' work go meanwhile.
                permit.take();
                tokio::time::sleep(DEPENDENCY_POLL).await;
                permit = Some(self.permits.acquire().await.expect("permits"));
            }
        }
    }

    /// A container's log driver options, checked before anything is created for it.
    fn logging_options(
        &self,
        spec: &ContainerSpec,
    ) -> Result<Option<berth_node_api::awslogs::Options>, TaskError> {
        if let Some(l) = &spec.log_configuration
            && !LOG_DRIVERS.contains(&l.log_driver.as_str())
        {
            return Err(TaskError::Create(format!(
                "logConfiguration.logDriver '{}' of container {} is not supported by this agent (it supports {})",
                l.log_driver,
                spec.name,
                LOG_DRIVERS.join(", ")
            )));
        }
        crate::awslogs::Shippers::<R>::options(spec)
            .map_err(|e| TaskError::Create(format!("failed to initialize logging driver: {e}")))
    }

    /// An `awslogs` container's group and stream exist before it starts.
    async fn prepare_logging(
        &self,
        task: &TaskSpec,
        spec: &ContainerSpec,
        id: &str,
    ) -> Result<(), TaskError> {
        let (Some(logs), Some(options)) = (&self.logs, self.logging_options(spec)?) else {
            return Ok(());
        };
        logs.prepare(task, spec, &options, id)
            .await
            .map_err(TaskError::Start)
    }

    /// Removes a container, unless its output is still being shipped (its shipper removes it
    /// then).
    pub async fn remove_container(&self, id: &str) {
        if let Some(logs) = &self.logs {
            if logs.defer_removal(id) {
                return;
            }
            logs.forget(id);
        }
        if let Err(e) = self.runtime.remove(id).await {
            tracing::warn!(container = %id, error = %e, "removing a container failed");
        }
    }

    /// The address and port the task's containers reach the metadata endpoint at, listening
    /// there.
    async fn metadata_host(
        &self,
        task: &TaskSpec,
        task_network: Option<&str>,
    ) -> Result<Option<(IpAddr, u16)>, TaskError> {
        let Some(metadata) = &self.metadata else {
            return Ok(None);
        };
        let network = match task.network_mode {
            NetworkMode::None => return Ok(None),
            NetworkMode::Host => return listen(metadata, IpAddr::V4(Ipv4Addr::LOCALHOST)).await,
            NetworkMode::Bridge => "bridge",
            NetworkMode::Awsvpc => task_network.unwrap_or(TASK_NETWORK),
        };
        match self.runtime.host_address(network).await {
            Ok(Some(address)) => listen(metadata, IpAddr::V4(address)).await,
            Ok(None) => {
                let why = format!(
                    "the host has no address on Docker network '{network}' for the task metadata endpoint (no IPAM gateway, no bridge interface address, no IPv4 subnet)"
                );
                tracing::warn!(
                    network,
                    "{why}: give the network a gateway (docker network inspect {network}) or run tasks in host mode"
                );
                Err(TaskError::Resources(why))
            }
            Err(e) => Err(TaskError::Engine(e.to_string())),
        }
    }

    /// Where a task with a `taskRoleArn` finds its credentials (an environment entry), routing
    /// 169.254.170.2 there first; `host` mode reaches the endpoint on loopback.
    async fn credentials_env(
        &self,
        task: &TaskSpec,
        endpoint: Option<(IpAddr, u16)>,
    ) -> Result<Option<String>, TaskError> {
        let creds = self.metadata.as_ref().and_then(|m| m.credentials());
        let (Some(creds), Some((host, port)), Some(_)) = (creds, endpoint, &task.task_role_arn)
        else {
            return Ok(None);
        };
        let uri = creds.relative_uri(&task.arn);
        if task.network_mode == NetworkMode::Host {
            return Ok(Some(format!(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://{host}:{port}{uri}"
            )));
        }
        let IpAddr::V4(host) = host else {
            return Ok(None);
        };
        let tag = crate::credentials::tag(&self.instance_arn);
        creds
            .route(&tag, SocketAddrV4::new(host, port))
            .await
            .map_err(|e| {
                TaskError::Resources(format!(
                    "cannot route 169.254.170.2 to the task credentials endpoint: {e}"
                ))
            })?;
        Ok(Some(format!(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI={uri}"
        )))
    }

    async fn ensure_image(&self, image: &str, task: &TaskSpec) -> Result<(), TaskError> {
        if self
            .runtime
            .has_image(image)
            .await
            .map_err(|e| TaskError::Engine(e.to_string()))?
        {
            return Ok(());
        }
        let auth = self
            .registry
            .auth(image, task)
            .await
            .map_err(TaskError::Pull)?;
        self.runtime
            .pull(image, auth)
            .await
            .map_err(|e| TaskError::Pull(e.to_string()))
    }

    /// Whether `spec`'s `dependsOn` conditions hold given the containers started so far;
    /// an error when one never can (a SUCCESS dependency that failed).
    async fn dependencies_met(
        &self,
        spec: &ContainerSpec,
        started: &HashMap<String, String>,
    ) -> Result<bool, TaskError> {
        for dep in &spec.depends_on {
            let Some(id) = started.get(&dep.container_name) else {
                return Ok(false);
            };
            if dep.condition == Condition::Start {
                continue;
            }
            let Some(state) = self
                .runtime
                .inspect(id)
                .await
                .map_err(|e| TaskError::Engine(e.to_string()))?
            else {
                return Ok(false);
            };
            let exited = !state.running;
            let code = state.exit_code.unwrap_or(0);
            let met = match dep.condition {
                Condition::Start => true,
                Condition::Complete => exited,
                Condition::Success if exited && code != 0 => {
                    return Err(TaskError::Dependency {
                        dependency: dep.container_name.clone(),
                        code,
                        container: spec.name.clone(),
                    });
                }
                Condition::Success => exited,
                Condition::Healthy => state.health == Some(HealthStatus::Healthy),
            };
            if !met {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The state of one container as reported.
    async fn container_report(&self, id: &str, name: &str) -> ContainerReport {
        match self.runtime.inspect(id).await {
            Ok(Some(state)) => report_of(&state, name),
            _ => ContainerReport {
                name: name.into(),
                runtime_id: Some(id.into()),
                status: ReportedStatus::Stopped,
                exit_code: None,
                reason: Some("the container is gone".into()),
                network_bindings: Vec::new(),
                health: None,
                private_ipv4_address: None,
            },
        }
    }

    /// For a RUNNING task: a RUNNING report when a health-checked container's health differs
    /// from `known`.
    pub async fn check_health(
        &self,
        task: &TaskSpec,
        mine: &[Container],
        known: &BTreeMap<String, HealthStatus>,
    ) -> Option<TaskReport> {
        let _permit = self.permits.acquire().await.expect("permits");
        let mut containers = Vec::new();
        let mut changed = false;
        for spec in task.containers.iter().filter(|c| c.health_check.is_some()) {
            let Some(c) = mine.iter().find(|c| c.name == spec.name) else {
                continue;
            };
            let report = self.container_report(&c.id, &spec.name).await;
            if report.health.is_some() && report.health != known.get(&spec.name).copied() {
                changed = true;
            }
            containers.push(report);
        }
        changed.then(|| TaskReport {
            task_arn: task.arn.clone(),
            status: ReportedStatus::Running,
            reason: None,
            containers,
            pull_started_at: None,
            pull_stopped_at: None,
            execution_stopped_at: None,
        })
    }

    /// Stops the task's containers — each with its own `stopTimeout`, those no other running
    /// container depends on first, each wave at once — and removes them; the STOPPED report.
    pub async fn stop_task(&self, task: &TaskSpec, mine: &[Container]) -> TaskReport {
        let _permit = self.permits.acquire().await.expect("permits");
        let mut remaining: Vec<&Container> = mine.iter().collect();
        while !remaining.is_empty() {
            let needed: BTreeSet<&str> = remaining
                .iter()
                .filter_map(|c| task.container(&c.name))
                .flat_map(|s| s.depends_on.iter().map(|d| d.container_name.as_str()))
                .collect();
            let (mut wave, rest): (Vec<&Container>, Vec<&Container>) = remaining
                .iter()
                .partition(|c| !needed.contains(c.name.as_str()));
            if wave.is_empty() {
                wave = rest.clone(); // a cycle: stop what is left together
            }
            let stops = wave.iter().map(|c| {
                let timeout = task
                    .container(&c.name)
                    .and_then(|s| s.stop_timeout)
                    .map_or(DEFAULT_STOP_TIMEOUT, |s| Duration::from_secs(s.into()));
                self.runtime.stop(&c.id, timeout)
            });
            for (c, result) in wave.iter().zip(futures_util::future::join_all(stops).await) {
                if let Err(e) = result {
                    tracing::warn!(container = %c.id, error = %e, "stopping a container failed");
                }
            }
            remaining.retain(|c| !wave.iter().any(|w| w.id == c.id));
        }
        let mut containers = Vec::new();
        for spec in &task.containers {
            match mine.iter().find(|c| c.name == spec.name) {
                Some(c) => containers.push(self.container_report(&c.id, &spec.name).await),
                None => containers.push(ContainerReport {
                    name: spec.name.clone(),
                    runtime_id: None,
                    status: ReportedStatus::Stopped,
                    exit_code: None,
                    reason: None,
                    network_bindings: Vec::new(),
                    health: None,
                    private_ipv4_address: None,
                }),
            }
        }
        for c in mine {
            self.remove_container(&c.id).await;
        }
        for (report, spec) in containers.iter_mut().zip(&task.containers) {
            log_stream_reason(report, spec, task);
        }
        TaskReport {
            task_arn: task.arn.clone(),
            status: ReportedStatus::Stopped,
            reason: None,
            containers,
            pull_started_at: None,
            pull_stopped_at: None,
            execution_stopped_at: Some(now_ms()),
        }
    }

    /// Stops and removes containers whose task the control plane no longer has for this
    /// instance (it stopped them for a lost agent, or forgot them).
    pub async fn remove_orphans(&self, orphans: &[Container]) {
        let _permit = self.permits.acquire().await.expect("permits");
        let stops = orphans
            .iter()
            .map(|c| self.runtime.stop(&c.id, DEFAULT_STOP_TIMEOUT));
        futures_util::future::join_all(stops).await;
        for c in orphans {
            tracing::info!(container = %c.id, task = %c.task_arn, "removing a container of a task this instance no longer runs");
            self.remove_container(&c.id).await;
        }
    }
}

async fn listen<R: Runtime>(
    metadata: &Arc<Metadata<R>>,
    address: IpAddr,
) -> Result<Option<(IpAddr, u16)>, TaskError> {
    metadata.listen(address).await.map_err(|e| {
        TaskError::Resources(format!(
            "the task metadata endpoint cannot listen on {address}: {e}"
        ))
    })?;
    Ok(Some((address, metadata.port())))
}

/// A stopped `awslogs` container's reason points to where its output is (unless it has a
/// reason of its own): what a user reads first when a task stopped.
fn log_stream_reason(report: &mut ContainerReport, spec: &ContainerSpec, task: &TaskSpec) {
    let ran = report.exit_code.is_some();
    let Some(l) = spec
        .log_configuration
        .as_ref()
        .filter(|l| l.log_driver == "awslogs")
    else {
        return;
    };
    let Ok(o) = berth_node_api::awslogs::Options::parse(&l.options) else {
        return;
    };
    if !ran || report.reason.is_some() {
        return;
    }
    let stream = o.stream_name(
        &spec.name,
        task.id(),
        report.runtime_id.as_deref().unwrap_or(""),
    );
    let mut reason = format!(
        "Output in CloudWatch Logs: log group {}, log stream {stream}",
        o.group
    );
    // ECS's limit for a container's reason.
    if reason.len() > 255 {
        let mut cut = 255;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    report.reason = Some(reason);
}

/// A container's state as a report carries it.
fn report_of(state: &ContainerState, name: &str) -> ContainerReport {
    let exited = !state.running;
    ContainerReport {
        name: name.into(),
        runtime_id: Some(state.id.clone()),
        status: if state.running {
            ReportedStatus::Running
        } else {
            ReportedStatus::Stopped
        },
        exit_code: exited.then(|| state.exit_code.unwrap_or(0)),
        reason: (exited && state.oom_killed)
            .then(|| "OutOfMemoryError: Container killed due to memory usage".to_string()),
        network_bindings: state.ports.clone(),
        health: state.health,
        private_ipv4_address: state
            .networks
            .get(TASK_NETWORK)
            .copied()
            .flatten()
            .map(|ip| ip.to_string()),
    }
}

/// What the engine gets for one container of a task: its ECS definition resolved to engine
/// terms, the ECS labels, and the metadata endpoint's URI when the task has one.
pub fn container_config(
    task: &TaskSpec,
    spec: &ContainerSpec,
    cluster: &str,
    instance_arn: &str,
    network_mode: String,
    metadata: Option<(IpAddr, u16)>,
    credentials: Option<&str>,
) -> CreateContainer {
    let short_id = &task.id()[..8.min(task.id().len())];
    let mut environment: Vec<String> = spec
        .environment
        .iter()
        .map(|kv| format!("{}={}", kv.name, kv.value))
        .collect();
    if let Some((host, port)) = metadata {
        environment.push(format!(
            "ECS_CONTAINER_METADATA_URI_V4=http://{host}:{port}/v4/{}/{}",
            task.id(),
            spec.name
        ));
    }
    environment.extend(credentials.map(str::to_string));
    let mut all_labels = spec.docker_labels.clone();
    for (k, v) in [
        (labels::TASK_ARN, task.arn.as_str()),
        (labels::CLUSTER, cluster),
        (labels::CONTAINER_NAME, spec.name.as_str()),
        (labels::FAMILY, task.family.as_str()),
        (labels::INSTANCE, instance_arn),
    ] {
        all_labels.insert(k.into(), v.into());
    }
    all_labels.insert(labels::VERSION.into(), task.revision.to_string());
    let binds = spec
        .mount_points
        .iter()
        .filter_map(|m| {
            let volume = task.volumes.iter().find(|v| v.name == m.source_volume)?;
            let source = match &volume.source {
                VolumeSource::Host { source_path } => source_path.clone(),
                VolumeSource::Docker { shared: true } => volume.name.clone(),
                VolumeSource::Docker { shared: false } => format!(
                    "ecs-{}-{}-{}-{short_id}",
                    task.family, task.revision, volume.name
                ),
            };
            let ro = if m.read_only { ":ro" } else { "" };
            Some(format!("{source}:{}{ro}", m.container_path))
        })
        .collect();
    let mib = |m: Option<u32>| m.map(|m| m as i64 * 1024 * 1024);
    CreateContainer {
        name: format!(
            "ecs-{}-{}-{}-{short_id}",
            task.family, task.revision, spec.name
        ),
        image: spec.image.clone(),
        command: spec.command.clone(),
        entry_point: spec.entry_point.clone(),
        environment,
        working_directory: spec.working_directory.clone(),
        user: spec.user.clone(),
        labels: all_labels,
        ports: if task.network_mode == NetworkMode::Bridge {
            spec.port_mappings.clone()
        } else {
            Vec::new()
        },
        stop_timeout: spec.stop_timeout,
        health_check: spec.health_check.clone(),
        memory: mib(spec.memory),
        memory_reservation: mib(spec.memory_reservation),
        // Docker's minimum share is 2 (ECS gives 0 and 1 the same meaning).
        cpu_shares: i64::from(spec.cpu.max(2)),
        network_mode,
        privileged: spec.privileged,
        binds,
        ulimits: spec.ulimits.clone(),
        readonly_root_filesystem: spec.readonly_root_filesystem,
        // `awslogs` output goes to Docker's local log, which the agent ships.
        log: spec.log_configuration.as_ref().map(|l| {
            if l.log_driver == crate::awslogs::DRIVER {
                ("json-file".to_string(), Default::default())
            } else {
                (l.log_driver.clone(), l.options.clone())
            }
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use crate::tests::{container, task};
    use berth_node_api::agent::{Dependency, KeyValue, PortMapping, Protocol};
    use tokio::time::Instant;

    struct NoAuth;

    impl Registry for NoAuth {
        async fn auth(&self, _: &str, _: &TaskSpec) -> Result<Option<RegistryAuth>, String> {
            Ok(None)
        }
    }

    fn ctx(fake: &Fake) -> Ctx<Fake, NoAuth> {
        Ctx {
            runtime: fake.clone(),
            registry: NoAuth,
            instance_arn: "i".into(),
            cluster: "c".into(),
            metadata: None,
            permits: Arc::new(Semaphore::new(4)),
            logs: None,
        }
    }

    async fn ctx_with_metadata(fake: &Fake, dir: &std::path::Path) -> Ctx<Fake, NoAuth> {
        let metadata = Metadata::start(
            fake.clone(),
            "i".into(),
            "us-east-1a".into(),
            Default::default(),
            dir,
        )
        .await
        .unwrap();
        Ctx {
            metadata: Some(metadata),
            ..ctx(fake)
        }
    }

    async fn mine(fake: &Fake, t: &TaskSpec) -> Vec<Container> {
        fake.containers("i")
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.task_arn == t.arn)
            .collect()
    }

    /// Containers start once their dependencies hold: `main` waits until `init` has exited 0.
    #[tokio::test(start_paused = true)]
    async fn worker_starts_containers_in_dependency_order() {
        let fake = Fake::new();
        fake.add_image("img");
        let mut main = container("main", "img");
        main.depends_on = vec![Dependency {
            container_name: "init".into(),
            condition: Condition::Success,
        }];
        let mut init = container("init", "img");
        init.essential = false;
        let t = task(1, vec![main, init]);
        let c = ctx(&fake);
        let start = tokio::spawn({
            let t = t.clone();
            async move { c.start_task(&t, &[]).await }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(fake.log(), ["create init", "start init"], "main waits");
        fake.exit(&t.arn, "init", 0);
        let r = start.await.unwrap();
        assert_eq!(r.status, ReportedStatus::Running);
        assert_eq!(
            fake.log(),
            ["create init", "start init", "create main", "start main"]
        );
    }

    /// A SUCCESS dependency that fails fails the task: ECS's reason, nothing left behind.
    #[tokio::test(start_paused = true)]
    async fn worker_fails_a_task_whose_dependency_failed() {
        let fake = Fake::new();
        fake.add_image("img");
        let mut main = container("main", "img");
        main.depends_on = vec![Dependency {
            container_name: "init".into(),
            condition: Condition::Success,
        }];
        let t = task(1, vec![main, container("init", "img")]);
        let c = ctx(&fake);
        let start = tokio::spawn({
            let t = t.clone();
            async move { c.start_task(&t, &[]).await }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        fake.exit(&t.arn, "init", 2);
        let r = start.await.unwrap();
        assert_eq!(r.status, ReportedStatus::Stopped);
        assert_eq!(
            r.reason.as_deref(),
            Some(
                "DependencyViolation: container init exited with code 2, and main needs it to succeed"
            )
        );
        assert_eq!(fake.count(), 0);
    }

    /// Images are pulled when missing; a failed pull is CannotPullContainerError.
    #[tokio::test]
    async fn worker_reports_pull_failures() {
        let fake = Fake::new();
        fake.unpullable("nowhere:1");
        let t = task(1, vec![container("a", "nowhere:1")]);
        let r = ctx(&fake).start_task(&t, &[]).await;
        assert_eq!(r.status, ReportedStatus::Stopped);
        let reason = r.reason.unwrap();
        assert!(
            reason.starts_with("CannotPullContainerError: pull access denied for nowhere:1"),
            "{reason}"
        );
        assert_eq!(fake.log(), ["pull nowhere:1"]);
        let t = task(2, vec![container("a", "pulled:1")]);
        let r = ctx(&fake).start_task(&t, &[]).await;
        assert_eq!(r.status, ReportedStatus::Running);
    }

    /// A log driver the agent does not support fails the task with a reason naming it
    /// (placement normally keeps such tasks away: the agent advertises only what it has).
    #[tokio::test]
    async fn worker_refuses_log_drivers_it_does_not_support() {
        let fake = Fake::new();
        fake.add_image("img");
        let mut spec = container("a", "img");
        spec.log_configuration = Some(berth_node_api::agent::LogConfiguration {
            log_driver: "splunk".into(),
            options: Default::default(),
        });
        let r = ctx(&fake).start_task(&task(1, vec![spec]), &[]).await;
        assert_eq!(r.status, ReportedStatus::Stopped);
        assert_eq!(
            r.reason.as_deref(),
            Some(
                "CannotCreateContainerError: logConfiguration.logDriver 'splunk' of container a is not supported by this agent (it supports json-file, awslogs)"
            )
        );
        assert_eq!(fake.count(), 0);
    }

    /// A container already there (a restart) is adopted, also under the labels older agents
    /// used; only what is missing is created.
    #[tokio::test]
    async fn worker_adopts_existing_containers() {
        let fake = Fake::new();
        fake.add_image("img");
        let t = task(1, vec![container("a", "img"), container("b", "img")]);
        let mut old = container_config(&t, &t.containers[0], "c", "i", "bridge".into(), None, None);
        old.labels.remove(labels::TASK_ARN);
        old.labels.remove(labels::CONTAINER_NAME);
        old.labels
            .insert(labels::LEGACY_TASK_ARN.into(), t.arn.clone());
        old.labels
            .insert(labels::LEGACY_CONTAINER_NAME.into(), "a".into());
        fake.existing(old, true);
        let existing = mine(&fake, &t).await;
        assert_eq!(existing.len(), 1);
        let r = ctx(&fake).start_task(&t, &existing).await;
        assert_eq!(r.status, ReportedStatus::Running);
        assert_eq!(fake.log(), ["create b", "start b"]);
    }

    /// Each container gets its own stopTimeout: one that honours SIGTERM is gone at once,
    /// one that ignores it is killed after its timeout; a container others depend on stops
    /// after them.
    #[tokio::test(start_paused = true)]
    async fn worker_stops_with_each_containers_timeout_in_reverse_dependency_order() {
        let fake = Fake::new();
        fake.add_image("polite");
        fake.add_image("stubborn");
        fake.graceful("polite", Duration::from_millis(100));
        let mut app = container("app", "stubborn");
        app.stop_timeout = Some(7);
        app.depends_on = vec![Dependency {
            container_name: "db".into(),
            condition: Condition::Start,
        }];
        let mut db = container("db", "polite");
        db.stop_timeout = Some(60);
        let t = task(1, vec![app, db]);
        let c = ctx(&fake);
        assert_eq!(c.start_task(&t, &[]).await.status, ReportedStatus::Running);
        let began = Instant::now();
        let r = c.stop_task(&t, &mine(&fake, &t).await).await;
        let took = began.elapsed();
        assert!(
            took >= Duration::from_secs(7) && took < Duration::from_secs(8),
            "{took:?}"
        );
        let code = |n: &str| r.containers.iter().find(|c| c.name == n).unwrap().exit_code;
        assert_eq!((code("app"), code("db")), (Some(137), Some(0)));
        let log = fake.log();
        let at = |l: &str| log.iter().position(|x| x == l).unwrap();
        assert!(at("stopped app") < at("stop db"), "{log:?}");
        assert_eq!(fake.count(), 0);
    }

    /// The metadata endpoint's address: a network with no address to be found fails the task
    /// with a reason (it never starts silently without it); one that has one gets the URI.
    #[tokio::test]
    async fn worker_needs_the_metadata_address_of_its_network() {
        let dir = tempfile::tempdir().unwrap();
        let fake = Fake::new();
        fake.add_image("img");
        let c = ctx_with_metadata(&fake, dir.path()).await;
        let t = task(1, vec![container("a", "img")]);
        assert_eq!(c.start_task(&t, &[]).await.status, ReportedStatus::Running);
        let env = fake.containers_of(&t.arn)[0].spec.environment.clone();
        let port = c.metadata.as_ref().unwrap().port();
        assert!(
            env.contains(&format!(
                "ECS_CONTAINER_METADATA_URI_V4=http://127.0.0.1:{port}/v4/{}/a",
                t.id()
            )),
            "{env:?}"
        );
        fake.set_network("bridge", None);
        let t = task(2, vec![container("a", "img")]);
        let r = c.start_task(&t, &[]).await;
        assert_eq!(r.status, ReportedStatus::Stopped);
        let reason = r.reason.unwrap();
        assert!(
            reason.starts_with(
                "ResourceInitializationError: the host has no address on Docker network 'bridge'"
            ),
            "{reason}"
        );
        assert!(fake.containers_of(&t.arn).is_empty());
    }

    /// A health check's result is reported when it differs from what is known.
    #[tokio::test]
    async fn worker_reports_health_changes_only() {
        let fake = Fake::new();
        fake.add_image("img");
        let mut spec = container("a", "img");
        spec.health_check = Some(berth_node_api::agent::HealthCheck {
            command: vec!["CMD".into(), "true".into()],
            interval: 5,
            timeout: 2,
            retries: 3,
            start_period: 0,
        });
        let t = task(1, vec![spec]);
        let c = ctx(&fake);
        c.start_task(&t, &[]).await;
        let existing = mine(&fake, &t).await;
        let known = BTreeMap::from([("a".to_string(), HealthStatus::Unknown)]);
        assert!(c.check_health(&t, &existing, &known).await.is_none());
        fake.set_health(&t.arn, "a", HealthStatus::Healthy);
        let r = c.check_health(&t, &existing, &known).await.unwrap();
        assert_eq!(r.status, ReportedStatus::Running);
        assert_eq!(r.containers[0].health, Some(HealthStatus::Healthy));
        let known = BTreeMap::from([("a".to_string(), HealthStatus::Healthy)]);
        assert!(c.check_health(&t, &existing, &known).await.is_none());
    }

    /// What the engine is asked for: ECS labels, environment with overrides resolved, limits,
    /// published ports only in bridge mode, and volumes.
    #[test]
    fn container_config_carries_ecs_labels_and_limits() {
        let mut spec = container("web", "img");
        spec.environment = vec![KeyValue {
            name: "A".into(),
            value: "1".into(),
        }];
        spec.cpu = 1;
        spec.memory = Some(128);
        spec.port_mappings = vec![PortMapping {
            container_port: 80,
            host_port: 0,
            protocol: Protocol::Tcp,
        }];
        spec.docker_labels.insert("team".into(), "a".into());
        let t = task(7, vec![spec.clone()]);
        let c = container_config(
            &t,
            &spec,
            "prod",
            "arn:instance",
            "bridge".into(),
            None,
            None,
        );
        assert_eq!(c.name, "ecs-f-1-web-00000007");
        assert_eq!(c.labels[labels::TASK_ARN], t.arn);
        assert_eq!(c.labels[labels::CLUSTER], "prod");
        assert_eq!(c.labels[labels::CONTAINER_NAME], "web");
        assert_eq!(c.labels[labels::FAMILY], "f");
        assert_eq!(c.labels[labels::VERSION], "1");
        assert_eq!(c.labels[labels::INSTANCE], "arn:instance");
        assert_eq!(c.labels["team"], "a");
        assert_eq!(c.environment, ["A=1"]);
        assert_eq!((c.cpu_shares, c.memory), (2, Some(128 * 1024 * 1024)));
        assert_eq!(c.ports.len(), 1);
        let awsvpc = TaskSpec {
            network_mode: NetworkMode::Awsvpc,
            ..t
        };
        let c = container_config(&awsvpc, &spec, "prod", "i", TASK_NETWORK.into(), None, None);
        assert!(c.ports.is_empty(), "awsvpc publishes nothing");
    }
}
