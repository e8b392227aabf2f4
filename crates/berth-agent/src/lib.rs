//! `berth-agent`: the node agent. It registers its host as an ECS container instance, follows
//! its instance's desired-task document (the `berth-node-api` agent protocol: one long-poll
//! that is also its heartbeat), makes the container engine match, and reports what it observes
//! in batches.
//!
//! Three loops that never wait for each other:
//! - the **poller** long-polls the control plane for the document and keeps it in a ledger;
//! - the **reconciler** looks at the engine (on every new document, every `poll_interval` and
//!   every finished piece of work), decides per task what to do ([`plan`], pure), and hands
//!   each piece of work to a worker on its own tokio task — starts, stops (each with its own
//!   `stopTimeout`), health checks — at most `max_parallel` at once;
//! - the **reporter** sends the workers' reports in batches and retries them.
//!
//! Containers carry the ECS agent's labels plus the instance's, so a restarted agent adopts
//! what already runs and two agents sharing one engine each manage only their own. The engine
//! is behind the [`Runtime`] trait (Docker in production, a fake in the unit tests).
//!
//! Talks to the control plane only through its public API and `berth-node-api` (no shared
//! code beyond the wire crate's SigV4 math).

mod awslogs;
pub mod control;
mod credentials;
mod docker;
#[cfg(test)]
mod fake;
mod ledger;
mod metadata;
mod runtime;
mod stats;
mod worker;

pub use control::Control;
pub use docker::Docker;
pub use runtime::{Runtime, RuntimeError};

use berth_node_api::agent::{
    self as node, Desired, DesiredStatus, HealthStatus, KnownStatus, ReportResult, ReportedStatus,
    TaskReport, TaskSpec,
};
use runtime::{Container, RegistryAuth};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::{AbortHandle, Id, JoinSet};
use worker::{Ctx, Registry};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("control plane: {0}")]
    Control(String),
    #[error("container engine: {0}")]
    Runtime(#[from] RuntimeError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Berth endpoint, e.g. `http://127.0.0.1:4566`, or several servers sharing a store,
    /// comma-separated (the agent moves to the next when one cannot be reached).
    pub endpoint: String,
    pub cluster: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub attributes: Vec<(String, String)>,
    pub availability_zone: Option<String>,
    /// `unix:///var/run/docker.sock` style; default: the local engine.
    pub docker_host: Option<String>,
    /// Where the agent keeps its instance ARN, metadata port and ledger.
    pub state_dir: PathBuf,
    /// Memory (MiB) kept for the host, not offered to tasks.
    pub memory_reserve_mib: u64,
    /// How often the engine is looked at when nothing else happens.
    pub poll_interval: Duration,
    /// Starts, stops and checks in flight at once.
    pub max_parallel: usize,
}

/// The agent `berth up` runs in-process: if a Docker Engine is reachable, make sure the
/// `default` cluster exists, register and run; otherwise say so once and do nothing.
pub async fn run_local(config: AgentConfig) {
    if let Err(e) = Docker::connect(config.docker_host.as_deref()).await {
        tracing::warn!(
            error = %e,
            "no Docker Engine is reachable: berth up runs without a local agent (start dockerd, or run `berth agent` on another host)"
        );
        return;
    }
    let control = Control::new(&config);
    if let Err(e) = control
        .call(
            "ecs",
            "CreateCluster",
            json!({"clusterName": config.cluster}),
        )
        .await
    {
        tracing::warn!(error = %e, "the local agent could not create its cluster");
        return;
    }
    match Agent::start(config).await {
        Ok(agent) => agent.run(std::future::pending()).await,
        Err(e) => tracing::warn!(error = %e, "the local agent could not start"),
    }
}

/// The capability attributes this agent publishes (only what it really supports).
pub const CAPABILITIES: &[&str] = &[
    "com.amazonaws.ecs.capability.docker-remote-api.1.17",
    "com.amazonaws.ecs.capability.docker-remote-api.1.18",
    "com.amazonaws.ecs.capability.docker-remote-api.1.19",
    "com.amazonaws.ecs.capability.docker-remote-api.1.21",
    "com.amazonaws.ecs.capability.docker-remote-api.1.24",
    "com.amazonaws.ecs.capability.logging-driver.json-file",
    "com.amazonaws.ecs.capability.logging-driver.awslogs",
    "ecs.capability.execution-role-awslogs",
    "com.amazonaws.ecs.capability.ecr-auth",
    "com.amazonaws.ecs.capability.task-iam-role",
    "com.amazonaws.ecs.capability.task-iam-role-network-host",
    "ecs.capability.execution-role-ecr-pull",
    "ecs.capability.container-health-check",
    "ecs.capability.task-eni",
    "ecs.capability.container-ordering",
];

/// Host memory in MiB (from /proc/meminfo).
fn host_memory_mib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(1024, |kb| kb / 1024)
}

/// What the agent loop needs of the control plane.
pub trait ControlPlane: Registry {
    /// The instance's document once its generation differs from `generation` (waiting at
    /// most `wait`), or `tasks: None`.
    fn desired(
        &self,
        generation: u64,
        wait: Duration,
    ) -> impl Future<Output = Result<Desired, AgentError>> + Send;

    fn report(
        &self,
        reports: Vec<TaskReport>,
    ) -> impl Future<Output = Result<ReportResult, AgentError>> + Send;

    /// Reports what the running tasks used (for CloudWatch's `AWS/ECS` metrics).
    fn stats(
        &self,
        tasks: Vec<node::TaskStats>,
    ) -> impl Future<Output = Result<(), AgentError>> + Send {
        let _ = tasks;
        async { Ok(()) }
    }

    /// Which of several servers answers now (it changes when the agent moves to another):
    /// generations are one server's, so after a move the agent asks for the whole document.
    fn server_epoch(&self) -> u64 {
        0
    }
}

/// A Berth server, over its signed agent endpoints.
pub struct Remote {
    control: Control,
    instance: node::InstanceRef,
    credentials: Arc<credentials::Credentials>,
}

impl Registry for Remote {
    /// An ECR token of the task's execution role when it has one (as ECS pulls), else of the
    /// agent's own identity.
    async fn auth(&self, image: &str, task: &TaskSpec) -> Result<Option<RegistryAuth>, String> {
        let Some(server) = self.control.registry_of(image) else {
            return Ok(None);
        };
        let control = match &task.execution_role_arn {
            Some(_) => {
                let c = self
                    .credentials
                    .get(&task.arn, node::TaskRole::Execution)
                    .await?;
                self.control
                    .with_session(&c.access_key_id, &c.secret_access_key, &c.session_token)
            }
            None => self.control.clone(),
        };
        let (username, password) = control.registry_token().await.map_err(|e| e.to_string())?;
        Ok(Some(RegistryAuth {
            username,
            password,
            server: server.to_string(),
        }))
    }
}

impl ControlPlane for Remote {
    fn server_epoch(&self) -> u64 {
        self.control.endpoint_epoch()
    }

    async fn desired(&self, generation: u64, wait: Duration) -> Result<Desired, AgentError> {
        let request = node::DesiredRequest {
            cluster: self.instance.cluster.clone(),
            container_instance: self.instance.container_instance.clone(),
            generation,
            timeout_ms: wait.as_millis() as u64,
        };
        self.control.agent_call(node::DESIRED, &request).await
    }

    async fn report(&self, reports: Vec<TaskReport>) -> Result<ReportResult, AgentError> {
        let batch = node::ReportBatch {
            cluster: self.instance.cluster.clone(),
            container_instance: self.instance.container_instance.clone(),
            reports,
        };
        self.control.agent_call(node::REPORT, &batch).await
    }

    async fn stats(&self, tasks: Vec<node::TaskStats>) -> Result<(), AgentError> {
        let report = stats::report_of(
            &self.instance.cluster,
            &self.instance.container_instance,
            tasks,
        );
        let _: serde_json::Value = self.control.agent_call(node::STATS, &report).await?;
        Ok(())
    }
}

impl awslogs::LogSink for Remote {
    fn call<'a>(
        &'a self,
        region: &'a str,
        execution_role_of: Option<&'a str>,
        operation: &'a str,
        body: Value,
    ) -> awslogs::SinkFuture<'a> {
        Box::pin(async move {
            let base = self.control.in_region(region);
            let control = match execution_role_of {
                Some(task) => match self.credentials.get(task, node::TaskRole::Execution).await {
                    Ok(c) => {
                        base.with_session(&c.access_key_id, &c.secret_access_key, &c.session_token)
                    }
                    // A STOPPED task's role is no longer handed out: the agent's own keys.
                    Err(e) => {
                        tracing::debug!(task, error = %e, "awslogs: no execution-role credentials; shipping as the agent");
                        base
                    }
                },
                None => base,
            };
            control
                .call_coded("logs", operation, body)
                .await
                .map_err(|e| awslogs::ShipError {
                    code: e.code,
                    message: e.message,
                })
        })
    }
}

impl<T: Registry> Registry for Arc<T> {
    fn auth(
        &self,
        image: &str,
        task: &TaskSpec,
    ) -> impl Future<Output = Result<Option<RegistryAuth>, String>> + Send {
        (**self).auth(image, task)
    }
}

/// A running agent.
pub struct Agent<R: Runtime, C: ControlPlane> {
    ctx: Arc<Ctx<R, Arc<C>>>,
    control: Arc<C>,
    /// What the task metadata endpoint serves.
    tasks: metadata::Tasks,
    ledger: Option<ledger::Ledger>,
    poll_interval: Duration,
}

impl Agent<Docker, Remote> {
    /// Connects to Docker and registers (or re-registers) the instance.
    pub async fn start(config: AgentConfig) -> Result<Self, AgentError> {
        let runtime = Docker::connect(config.docker_host.as_deref()).await?;
        let docker_version = runtime.version().await?;
        let control = Control::new(&config);
        std::fs::create_dir_all(&config.state_dir)?;
        let state_file = config.state_dir.join("instance-arn");
        let previous = std::fs::read_to_string(&state_file)
            .ok()
            .map(|s| s.trim().to_string());
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        let memory = host_memory_mib().saturating_sub(config.memory_reserve_mib) as i64;
        let mut attributes: Vec<Value> = config
            .attributes
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        let zone = config
            .availability_zone
            .clone()
            .unwrap_or_else(|| format!("{}a", config.region));
        attributes.push(json!({"name": "ecs.availability-zone", "value": zone}));
        attributes.push(json!({"name": "ecs.cpu-architecture", "value": if cfg!(target_arch = "aarch64") { "arm64" } else { "x86_64" }}));
        // What this agent can do, as the ECS agent names it: task definitions list what they
        // need in `requiresAttributes`, and placement only uses instances that have it.
        for capability in CAPABILITIES {
            attributes.push(json!({"name": capability}));
        }
        let hostname = std::fs::read_to_string("/etc/hostname")
            .unwrap_or_default()
            .trim()
            .to_string();
        let mut body = json!({
            "cluster": config.cluster,
            "instanceIdentityDocument": json!({"instanceId": format!("{hostname}-{}", std::process::id())}).to_string(),
            "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": cpus * 1024},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": memory},
                {"name": "PORTS", "type": "STRINGSET", "stringSetValue": ["22", "2375", "2376", "51678", "51679"]},
                {"name": "PORTS_UDP", "type": "STRINGSET", "stringSetValue": []}
            ],
            "versionInfo": {"agentVersion": env!("CARGO_PKG_VERSION"), "agentHash": "berth", "dockerVersion": docker_version},
            "attributes": attributes,
        });
        if let Some(arn) = &previous {
            body["containerInstanceArn"] = Value::String(arn.clone());
        }
        let out = match control
            .call("ecs", "RegisterContainerInstance", body.clone())
            .await
        {
            Ok(o) => o,
            Err(e) if previous.is_some() => {
                tracing::warn!(error = %e, "re-registration refused; registering as a new instance");
                body.as_object_mut()
                    .map(|b| b.remove("containerInstanceArn"));
                control
                    .call("ecs", "RegisterContainerInstance", body)
                    .await?
            }
            Err(e) => return Err(e),
        };
        let instance_arn = out["containerInstance"]["containerInstanceArn"]
            .as_str()
            .ok_or_else(|| AgentError::Control("RegisterContainerInstance returned no ARN".into()))?
            .to_string();
        if previous.as_deref() != Some(instance_arn.as_str()) {
            // Another instance: the old ledger describes someone else's tasks.
            let _ = std::fs::remove_file(config.state_dir.join("desired.json"));
        }
        std::fs::write(&state_file, &instance_arn)?;
        tracing::info!(instance = %instance_arn, cluster = %config.cluster, "agent registered");
        let instance = node::InstanceRef {
            cluster: config.cluster.clone(),
            container_instance: instance_arn.clone(),
        };
        let fetch: credentials::Fetch = {
            let (control, instance) = (control.clone(), instance.clone());
            Arc::new(move |task_arn, role| {
                let (control, instance) = (control.clone(), instance.clone());
                Box::pin(async move {
                    let request = node::CredentialsRequest {
                        cluster: instance.cluster,
                        container_instance: instance.container_instance,
                        task_arn,
                        role,
                    };
                    control
                        .agent_call(node::CREDENTIALS, &request)
                        .await
                        .map_err(|e| e.to_string())
                })
            })
        };
        let credentials = Arc::new(credentials::Credentials::new(&config.state_dir, fetch)?);
        let tasks = metadata::Tasks::default();
        let metadata = metadata::Metadata::start(
            runtime.clone(),
            instance_arn.clone(),
            zone,
            tasks.clone(),
            &config.state_dir,
        )
        .await?;
        metadata.serve_credentials(credentials.clone());
        let remote = Arc::new(Remote {
            control,
            instance,
            credentials,
        });
        let logs = awslogs::Shippers::new(
            runtime.clone(),
            remote.clone(),
            &config.state_dir,
            &config.region,
        );
        let mut agent = Agent::new(runtime, remote, &config.cluster, &instance_arn, &config);
        agent.tasks = tasks;
        agent.ledger = Some(ledger::Ledger::new(&config.state_dir));
        let ctx = Arc::get_mut(&mut agent.ctx).expect("not shared yet");
        ctx.metadata = Some(metadata);
        ctx.logs = Some(logs);
        Ok(agent)
    }
}

/// What the reconciler knows of one task beyond the document.
#[derive(Default)]
struct Seen {
    /// The last status the agent reported (the document's `known` may be older).
    reported: Option<ReportedStatus>,
    /// The last health reported per container.
    health: BTreeMap<String, HealthStatus>,
}

/// Work in flight for a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Start,
    Stop,
    Check,
    Remove,
}

/// What a reconcile pass decides for one task (or one orphaned task's containers).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Start,
    /// Stop; with the reason when the task ended on its own.
    Stop(Option<&'static str>),
    Check,
    /// Remove the task's containers without reporting (it is already STOPPED).
    Remove,
}

/// The reason an essential container's exit gives its task.
const ESSENTIAL_EXITED: &str = "Essential container in task exited";

/// Decides what one task needs, from the document, what the agent reported, the engine's
/// containers of the task and the work already in flight. Pure.
fn plan(
    task: &TaskSpec,
    seen: Option<&Seen>,
    mine: &[Container],
    in_flight: Option<Work>,
) -> Option<Action> {
    let reported = seen.and_then(|s| s.reported).map(|r| match r {
        ReportedStatus::Running => KnownStatus::Running,
        ReportedStatus::Stopped => KnownStatus::Stopped,
    });
    let status = reported.map_or(task.known, |r| r.max(task.known));
    match (task.desired, in_flight) {
        // A stop overrides a start in flight (which is cancelled).
        (DesiredStatus::Stopped, Some(Work::Start)) => Some(Action::Stop(None)),
        (_, Some(_)) => None,
        (DesiredStatus::Running, None) => match status {
            KnownStatus::Pending => Some(Action::Start),
            KnownStatus::Running => {
                let gone = task
                    .containers
                    .iter()
                    .filter(|c| c.essential)
                    .any(|c| !mine.iter().any(|m| m.name == c.name && m.running));
                if gone {
                    Some(Action::Stop(Some(ESSENTIAL_EXITED)))
                } else if task.containers.iter().any(|c| c.health_check.is_some()) {
                    Some(Action::Check)
                } else {
                    None
                }
            }
            KnownStatus::Stopped => (!mine.is_empty()).then_some(Action::Remove),
        },
        (DesiredStatus::Stopped, None) => match status {
            KnownStatus::Stopped => (!mine.is_empty()).then_some(Action::Remove),
            _ => Some(Action::Stop(None)),
        },
    }
}

/// The document the reconciler works from.
#[derive(Clone, Default)]
struct Current {
    tasks: Arc<Vec<TaskSpec>>,
    /// How often the tasks' usage is reported (the document says).
    stats_interval: Duration,
    /// Confirmed by the control plane since the agent started (not only the ledger's): only
    /// then are containers of tasks it does not list removed.
    confirmed: bool,
}

impl<R: Runtime, C: ControlPlane> Agent<R, C> {
    /// An agent of instance `instance_arn` on `runtime`, following `control`.
    pub fn new(
        runtime: R,
        control: Arc<C>,
        cluster: &str,
        instance_arn: &str,
        config: &AgentConfig,
    ) -> Self {
        Agent {
            ctx: Arc::new(Ctx {
                runtime,
                registry: control.clone(),
                instance_arn: instance_arn.to_string(),
                cluster: cluster.to_string(),
                metadata: None,
                permits: Arc::new(Semaphore::new(config.max_parallel.max(1))),
                logs: None,
            }),
            control,
            tasks: Default::default(),
            ledger: None,
            poll_interval: config.poll_interval,
        }
    }

    pub fn instance_arn(&self) -> &str {
        &self.ctx.instance_arn
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let ledger = self.ledger.take();
        let from_ledger = ledger.as_ref().and_then(|l| l.load());
        let (doc_tx, mut doc_rx) = watch::channel(Current {
            tasks: Arc::new(from_ledger.and_then(|d| d.tasks).unwrap_or_default()),
            stats_interval: stats::DEFAULT_INTERVAL,
            confirmed: false,
        });
        if let Some(logs) = &self.ctx.logs {
            logs.resume().await;
        }
        let poller = tokio::spawn(poll(self.control.clone(), ledger, doc_tx));
        let usage = tokio::spawn(stats::report(
            self.ctx.runtime.clone(),
            self.ctx.instance_arn.clone(),
            self.control.clone(),
            doc_rx.clone(),
        ));
        let (report_tx, report_rx) = mpsc::unbounded_channel();
        let reporter = tokio::spawn(report(self.control.clone(), report_rx));
        let mut tick = tokio::time::interval(self.poll_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut work: JoinSet<(String, Option<TaskReport>)> = JoinSet::new();
        let mut in_flight: HashMap<String, (Work, AbortHandle)> = HashMap::new();
        let mut by_id: HashMap<Id, String> = HashMap::new();
        let mut seen: HashMap<String, Seen> = HashMap::new();
        let mut current = doc_rx.borrow().clone();
        loop {
            tokio::select! {
                changed = doc_rx.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    current = doc_rx.borrow_and_update().clone();
                    seen.retain(|arn, _| current.tasks.iter().any(|t| &t.arn == arn));
                }
                _ = tick.tick() => {}
                Some(done) = work.join_next_with_id(), if !work.is_empty() => {
                    let (id, result) = match done {
                        Ok((id, r)) => (id, Some(r)),
                        Err(e) => (e.id(), None),
                    };
                    let Some(arn) = by_id.remove(&id) else { continue };
                    if in_flight.get(&arn).is_some_and(|(_, h)| h.id() == id) {
                        in_flight.remove(&arn);
                    }
                    if let Some((_, Some(r))) = result {
                        let s = seen.entry(arn).or_default();
                        s.reported = Some(s.reported.map_or(r.status, |p| p.max(r.status)));
                        for c in &r.containers {
                            if let Some(h) = c.health {
                                s.health.insert(c.name.clone(), h);
                            }
                        }
                        let _ = report_tx.send(r);
                    }
                }
                () = &mut shutdown => break,
            }
            self.publish(&current, &seen);
            let containers = match self.ctx.runtime.containers(&self.ctx.instance_arn).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "listing the engine's containers failed; retrying");
                    continue;
                }
            };
            let mut by_task: HashMap<&str, Vec<Container>> = HashMap::new();
            for c in &containers {
                by_task.entry(&c.task_arn).or_default().push(c.clone());
            }
            for task in current.tasks.iter() {
                let mine = by_task.remove(task.arn.as_str()).unwrap_or_default();
                let flying = in_flight.get(&task.arn).map(|(w, _)| *w);
                let Some(action) = plan(task, seen.get(&task.arn), &mine, flying) else {
                    continue;
                };
                // Containers whose output is still being shipped stay until it is (their
                // shipper removes them): nothing to do for them now.
                let mine = match (&action, &self.ctx.logs) {
                    (Action::Remove, Some(logs)) => {
                        let left: Vec<Container> = mine
                            .into_iter()
                            .filter(|c| !logs.defer_removal(&c.id))
                            .collect();
                        if left.is_empty() {
                            continue;
                        }
                        left
                    }
                    _ => mine,
                };
                if flying == Some(Work::Start)
                    && let Some((_, start)) = in_flight.get(&task.arn)
                {
                    // Cancelled mid-start; the stop below takes whatever it created.
                    start.abort();
                }
                let (ctx, task) = (self.ctx.clone(), task.clone());
                let arn = task.arn.clone();
                let known_health = seen.get(&arn).map(|s| s.health.clone()).unwrap_or_else(|| {
                    task.containers
                        .iter()
                        .filter_map(|c| Some((c.name.clone(), c.known_health?)))
                        .collect()
                });
                let (kind, handle) = match action {
                    Action::Start => (
                        Work::Start,
                        work.spawn(async move {
                            let r = ctx.start_task(&task, &mine).await;
                            (task.arn, Some(r))
                        }),
                    ),
                    Action::Stop(reason) => (
                        Work::Stop,
                        work.spawn(async move {
                            // What is there now (a cancelled start may have created more).
                            let mine = ctx
                                .runtime
                                .containers(&ctx.instance_arn)
                                .await
                                .map(|l| l.into_iter().filter(|c| c.task_arn == task.arn).collect())
                                .unwrap_or(mine);
                            let mut r = ctx.stop_task(&task, &mine).await;
                            r.reason = reason.map(str::to_string);
                            (task.arn, Some(r))
                        }),
                    ),
                    Action::Check => (
                        Work::Check,
                        work.spawn(async move {
                            let r = ctx.check_health(&task, &mine, &known_health).await;
                            (task.arn, r)
                        }),
                    ),
                    Action::Remove => (
                        Work::Remove,
                        work.spawn(async move {
                            ctx.remove_orphans(&mine).await;
                            (task.arn, None)
                        }),
                    ),
                };
                by_id.insert(handle.id(), arn.clone());
                in_flight.insert(arn, (kind, handle));
            }
            // Containers of tasks the control plane no longer has for this instance.
            if current.confirmed {
                for (arn, orphans) in by_task {
                    if in_flight.contains_key(arn) {
                        continue;
                    }
                    let orphans: Vec<Container> = match &self.ctx.logs {
                        Some(logs) => orphans
                            .into_iter()
                            .filter(|c| !logs.defer_removal(&c.id))
                            .collect(),
                        None => orphans,
                    };
                    if orphans.is_empty() {
                        continue;
                    }
                    let ctx = self.ctx.clone();
                    let arn = arn.to_string();
                    let key = arn.clone();
                    let handle = work.spawn(async move {
                        ctx.remove_orphans(&orphans).await;
                        (arn, None)
                    });
                    by_id.insert(handle.id(), key.clone());
                    in_flight.insert(key, (Work::Remove, handle));
                }
            }
        }
        poller.abort();
        reporter.abort();
        usage.abort();
        work.abort_all();
        if self
            .ctx
            .metadata
            .as_ref()
            .and_then(|m| m.credentials())
            .is_some()
        {
            let tag = credentials::tag(&self.ctx.instance_arn);
            if let Err(e) = credentials::unroute(&tag).await {
                tracing::warn!(error = %e, "could not remove the credentials endpoint's route");
            }
        }
    }

    /// Hands the metadata endpoint the tasks as the agent knows them.
    fn publish(&self, current: &Current, seen: &HashMap<String, Seen>) {
        let mut tasks = self.tasks.lock().expect("metadata tasks");
        tasks.clear();
        for t in current.tasks.iter() {
            let known = seen
                .get(&t.arn)
                .and_then(|s| s.reported)
                .map_or(t.known, |r| match r {
                    ReportedStatus::Running => t.known.max(KnownStatus::Running),
                    ReportedStatus::Stopped => KnownStatus::Stopped,
                });
            tasks.insert(t.id().to_string(), (t.clone(), known));
        }
        if let Some(creds) = self.ctx.metadata.as_ref().and_then(|m| m.credentials()) {
            creds.retain(|arn| current.tasks.iter().any(|t| t.arn == arn));
        }
    }
}

/// The poller: long-polls for the document, saves it in the ledger and hands it to the
/// reconciler. A failed poll is retried after a pause growing to 5 s.
async fn poll<C: ControlPlane>(
    control: Arc<C>,
    ledger: Option<ledger::Ledger>,
    out: watch::Sender<Current>,
) {
    let mut pause = Duration::from_millis(200);
    let mut generation = 0;
    // The generations a server hands out are its own: on the first poll (the ledger's may
    // be another server's) and after a move to another server, ask for the whole document.
    let mut server = None;
    loop {
        if server != Some(control.server_epoch()) {
            server = Some(control.server_epoch());
            generation = 0;
        }
        match control
            .desired(generation, Duration::from_millis(node::MAX_WAIT_MS))
            .await
        {
            Ok(doc) => {
                pause = Duration::from_millis(200);
                match doc.tasks {
                    Some(tasks) if doc.generation >= generation => {
                        generation = doc.generation;
                        let doc = Desired {
                            tasks: Some(tasks),
                            ..doc
                        };
                        if let Some(l) = &ledger
                            && let Err(e) = l.save(&doc)
                        {
                            tracing::warn!(error = %e, "saving the agent's ledger failed");
                        }
                        let tasks = doc.tasks.unwrap_or_default();
                        let _ = out.send(Current {
                            tasks: Arc::new(tasks),
                            stats_interval: Duration::from_millis(doc.stats_interval_ms.max(200)),
                            confirmed: true,
                        });
                    }
                    Some(_) => {
                        tracing::debug!(generation = doc.generation, "ignoring an older document");
                    }
                    None => {
                        out.send_if_modified(|c| !std::mem::replace(&mut c.confirmed, true));
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "polling for desired tasks failed; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// The reporter: sends what the workers report, batched; a failed batch is retried (with what
/// arrived meanwhile) after a pause growing to 5 s.
async fn report<C: ControlPlane>(
    control: Arc<C>,
    mut reports: mpsc::UnboundedReceiver<TaskReport>,
) {
    const MAX_BATCH: usize = 100;
    while let Some(first) = reports.recv().await {
        let mut batch = vec![first];
        let mut pause = Duration::from_millis(200);
        loop {
            while batch.len() < MAX_BATCH
                && let Ok(r) = reports.try_recv()
            {
                batch.push(r);
            }
            match control.report(batch.clone()).await {
                Ok(result) => {
                    for r in result.rejected {
                        tracing::warn!(task = %r.task_arn, reason = %r.reason, "the control plane refused a task report");
                    }
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, reports = batch.len(), "reporting task states failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::Fake;
    use berth_node_api::agent::{ContainerSpec, NetworkMode};
    use std::sync::Mutex;
    use tokio::time::Instant;

    pub(crate) fn container(name: &str, image: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: image.into(),
            essential: true,
            command: None,
            entry_point: None,
            environment: vec![],
            working_directory: None,
            user: None,
            cpu: 0,
            memory: Some(64),
            memory_reservation: None,
            port_mappings: vec![],
            mount_points: vec![],
            ulimits: vec![],
            health_check: None,
            docker_labels: Default::default(),
            privileged: false,
            readonly_root_filesystem: false,
            stop_timeout: None,
            depends_on: vec![],
            log_configuration: None,
            known_health: None,
        }
    }

    pub(crate) fn task(n: usize, containers: Vec<ContainerSpec>) -> TaskSpec {
        TaskSpec {
            arn: format!(
                "arn:aws:ecs:us-east-1:000000000000:task/c/{n:08x}{:024x}",
                0
            ),
            cluster_arn: "arn:aws:ecs:us-east-1:000000000000:cluster/c".into(),
            task_definition_arn: "arn:aws:ecs:us-east-1:000000000000:task-definition/f:1".into(),
            family: "f".into(),
            revision: 1,
            desired: DesiredStatus::Running,
            known: KnownStatus::Pending,
            network_mode: NetworkMode::Bridge,
            launch_type: "EC2".into(),
            availability_zone: None,
            cpu: None,
            memory: None,
            pull_started_at: None,
            pull_stopped_at: None,
            containers,
            volumes: vec![],
            task_role_arn: None,
            execution_role_arn: None,
        }
    }

    /// A control plane in memory: the test sets the document; polls wait at most 5 s (the
    /// server's cap inside its agent timeout) and are recorded, as are the reports.
    #[derive(Default)]
    struct FakeControl {
        doc: Mutex<(u64, Vec<TaskSpec>)>,
        changed: tokio::sync::Notify,
        polls: Mutex<Vec<Instant>>,
        reports: Mutex<Vec<TaskReport>>,
        /// Which server answers (see [`ControlPlane::server_epoch`]).
        server: std::sync::atomic::AtomicU64,
    }

    impl FakeControl {
        /// The agent now talks to another server, whose generation for the document is
        /// `generation` (lower or higher than the last one's).
        fn move_to(&self, generation: u64, tasks: Vec<TaskSpec>) {
            *self.doc.lock().unwrap() = (generation, tasks);
            self.server
                .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.changed.notify_waiters();
        }

        fn set(&self, tasks: Vec<TaskSpec>) {
            let mut d = self.doc.lock().unwrap();
            d.0 += 1;
            d.1 = tasks;
            self.changed.notify_waiters();
        }

        fn stopped(&self) -> usize {
            self.reports
                .lock()
                .unwrap()
                .iter()
                .filter(|r| r.status == ReportedStatus::Stopped)
                .count()
        }
    }

    impl Registry for FakeControl {
        async fn auth(&self, _: &str, _: &TaskSpec) -> Result<Option<RegistryAuth>, String> {
            Ok(None)
        }
    }

    impl ControlPlane for FakeControl {
        async fn desired(&self, generation: u64, wait: Duration) -> Result<Desired, AgentError> {
            // A round trip takes time (an agent that polled in a loop would show in paused
            // time, not spin).
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.polls.lock().unwrap().push(Instant::now());
            let changed = self.changed.notified();
            let current = self.doc.lock().unwrap().0;
            if current == generation {
                let _ = tokio::time::timeout(wait.min(Duration::from_secs(5)), changed).await;
            }
            let (g, tasks) = self.doc.lock().unwrap().clone();
            Ok(Desired {
                version: berth_node_api::VERSION,
                generation: g,
                tasks: (g != generation).then_some(tasks),
                stats_interval_ms: 60_000,
            })
        }

        async fn report(&self, reports: Vec<TaskReport>) -> Result<ReportResult, AgentError> {
            self.reports.lock().unwrap().extend(reports);
            Ok(ReportResult::default())
        }

        fn server_epoch(&self) -> u64 {
            self.server.load(std::sync::atomic::Ordering::SeqCst)
        }
    }

    /// Generations are one server's: when the agent moves to a server whose generation for
    /// its document is lower than the last one's, it still takes that server's document.
    #[tokio::test(start_paused = true)]
    async fn agent_takes_the_document_of_the_server_it_moved_to() {
        let fake = Fake::new();
        fake.add_image("img");
        let control = Arc::new(FakeControl::default());
        let spec = container("app", "img");
        *control.doc.lock().unwrap() = (5_000, vec![task(0, vec![spec.clone()])]);
        let running = spawn_agent(&fake, &control, 10);
        let c = control.clone();
        until(
            "the first task RUNNING",
            Duration::from_secs(30),
            move || c.reports.lock().unwrap().len() == 1,
        )
        .await;
        control.move_to(7, vec![task(0, vec![spec.clone()]), task(1, vec![spec])]);
        let c = control.clone();
        until(
            "the second server's task RUNNING",
            Duration::from_secs(30),
            move || c.reports.lock().unwrap().len() == 2,
        )
        .await;
        running.abort();
    }

    /// Runs an agent of instance `instance-1` of cluster `c` on `fake` and `control`.
    fn spawn_agent(
        fake: &Fake,
        control: &Arc<FakeControl>,
        max_parallel: usize,
    ) -> tokio::task::JoinHandle<()> {
        let agent = Agent::new(
            fake.clone(),
            control.clone(),
            "c",
            "instance-1",
            &config(max_parallel),
        );
        tokio::spawn(agent.run(std::future::pending()))
    }

    /// Whatever runs the agent, waiting (in paused time) until `cond` holds.
    async fn until(what: &str, limit: Duration, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + limit;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn config(max_parallel: usize) -> AgentConfig {
        AgentConfig {
            endpoint: String::new(),
            cluster: "c".into(),
            access_key_id: String::new(),
            secret_access_key: String::new(),
            region: "us-east-1".into(),
            attributes: vec![],
            availability_zone: None,
            docker_host: None,
            state_dir: PathBuf::new(),
            memory_reserve_mib: 0,
            poll_interval: Duration::from_secs(1),
            max_parallel,
        }
    }

    /// Six tasks whose containers ignore SIGTERM and take their whole two-minute stopTimeout:
    /// they stop together in about one stopTimeout, not six, and the agent's polls (its
    /// heartbeat) keep coming every few seconds throughout.
    #[tokio::test(start_paused = true)]
    async fn agent_stops_tasks_in_parallel_and_keeps_polling() {
        let fake = Fake::new();
        fake.add_image("slow");
        let control = Arc::new(FakeControl::default());
        let mut spec = container("app", "slow");
        spec.stop_timeout = Some(120);
        let tasks: Vec<TaskSpec> = (0..6).map(|n| task(n, vec![spec.clone()])).collect();
        control.set(tasks.clone());
        let running = spawn_agent(&fake, &control, 10);
        let c = control.clone();
        until("six RUNNING reports", Duration::from_secs(30), move || {
            c.reports.lock().unwrap().len() == 6
        })
        .await;
        let stop_all: Vec<TaskSpec> = tasks
            .iter()
            .map(|t| TaskSpec {
                desired: DesiredStatus::Stopped,
                known: KnownStatus::Running,
                ..t.clone()
            })
            .collect();
        let began = Instant::now();
        control.set(stop_all);
        let c = control.clone();
        until("six STOPPED reports", Duration::from_secs(600), move || {
            c.stopped() == 6
        })
        .await;
        let took = began.elapsed();
        assert!(
            took >= Duration::from_secs(120) && took < Duration::from_secs(125),
            "the stops took {took:?}"
        );
        let polls = control.polls.lock().unwrap().clone();
        let during: Vec<&Instant> = polls.iter().filter(|p| **p >= began).collect();
        let gaps = during.windows(2).map(|w| *w[1] - *w[0]);
        assert!(
            gaps.clone().all(|g| g <= Duration::from_secs(6)),
            "a poll gap of {:?}",
            gaps.max()
        );
        assert!(during.len() >= 20, "{} polls in two minutes", during.len());
        for r in control
            .reports
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.status == ReportedStatus::Stopped)
        {
            assert_eq!(
                r.containers[0].exit_code,
                Some(137),
                "SIGKILLed after the timeout"
            );
        }
        assert_eq!(fake.count(), 0, "their containers are removed");
        running.abort();
    }

    /// The bound on parallel work holds: with two permits, six slow stops take three rounds.
    #[tokio::test(start_paused = true)]
    async fn agent_bounds_parallel_work() {
        let fake = Fake::new();
        fake.add_image("slow");
        let control = Arc::new(FakeControl::default());
        let mut spec = container("app", "slow");
        spec.stop_timeout = Some(10);
        let tasks: Vec<TaskSpec> = (0..6).map(|n| task(n, vec![spec.clone()])).collect();
        control.set(tasks.clone());
        let running = spawn_agent(&fake, &control, 2);
        let c = control.clone();
        until("RUNNING", Duration::from_secs(30), move || {
            c.reports.lock().unwrap().len() == 6
        })
        .await;
        let began = Instant::now();
        control.set(
            tasks
                .iter()
                .map(|t| TaskSpec {
                    desired: DesiredStatus::Stopped,
                    ..t.clone()
                })
                .collect(),
        );
        let c = control.clone();
        until("STOPPED", Duration::from_secs(600), move || {
            c.stopped() == 6
        })
        .await;
        let took = began.elapsed();
        assert!(
            took >= Duration::from_secs(30) && took < Duration::from_secs(35),
            "{took:?}"
        );
        running.abort();
    }

    /// An essential container that exits stops its task (the others are stopped too) with
    /// ECS's reason and the exit code; a restarted agent adopts running containers instead
    /// of starting more, and removes containers of tasks the control plane no longer lists.
    #[tokio::test(start_paused = true)]
    async fn agent_adopts_stops_on_exit_and_removes_orphans() {
        let fake = Fake::new();
        fake.add_image("img");
        let control = Arc::new(FakeControl::default());
        let mut side = container("side", "img");
        side.essential = false;
        let t = task(1, vec![container("main", "img"), side]);
        control.set(vec![t.clone()]);
        let agent = Agent::new(fake.clone(), control.clone(), "c", "i", &config(10));
        let running = tokio::spawn(agent.run(std::future::pending()));
        let c = control.clone();
        until("RUNNING", Duration::from_secs(30), move || {
            c.reports.lock().unwrap().len() == 1
        })
        .await;
        assert_eq!(fake.containers_of(&t.arn).len(), 2);
        running.abort();

        // A new agent (same instance) adopts the running containers, and removes the one of a
        // task the control plane no longer lists for the instance.
        fake.existing(
            crate::worker::container_config(
                &task(9, vec![container("gone", "img")]),
                &container("gone", "img"),
                "c",
                "i",
                "bridge".into(),
                None,
                None,
            ),
            true,
        );
        let control = Arc::new(FakeControl::default());
        control.set(vec![TaskSpec {
            known: KnownStatus::Running,
            ..t.clone()
        }]);
        let agent = Agent::new(fake.clone(), control.clone(), "c", "i", &config(10));
        let running = tokio::spawn(agent.run(std::future::pending()));
        let f = fake.clone();
        until("the orphan removed", Duration::from_secs(60), move || {
            f.containers_of(&task(9, vec![]).arn).is_empty()
        })
        .await;
        let creates = fake.log().iter().filter(|l| *l == "create main").count();
        assert_eq!(creates, 1, "adopted, not created again: {:?}", fake.log());
        assert!(fake.log().contains(&"remove gone".to_string()));

        // The essential container exits: the task stops, with the exit code and reason.
        fake.exit(&t.arn, "main", 3);
        let c = control.clone();
        until("STOPPED", Duration::from_secs(60), move || c.stopped() == 1).await;
        let r = control
            .reports
            .lock()
            .unwrap()
            .iter()
            .find(|r| r.status == ReportedStatus::Stopped)
            .cloned()
            .unwrap();
        assert_eq!(r.reason.as_deref(), Some(ESSENTIAL_EXITED));
        let main = r.containers.iter().find(|c| c.name == "main").unwrap();
        assert_eq!(main.exit_code, Some(3));
        assert!(fake.containers_of(&t.arn).is_empty());
        running.abort();
    }

    #[test]
    fn plan_follows_desired_and_observed_state() {
        let t = task(1, vec![container("a", "img")]);
        let up = Container {
            id: "x".into(),
            task_arn: t.arn.clone(),
            name: "a".into(),
            running: true,
            created: false,
        };
        let down = Container {
            running: false,
            ..up.clone()
        };
        assert_eq!(plan(&t, None, &[], None), Some(Action::Start));
        assert_eq!(plan(&t, None, &[], Some(Work::Start)), None);
        let running = TaskSpec {
            known: KnownStatus::Running,
            ..t.clone()
        };
        assert_eq!(plan(&running, None, std::slice::from_ref(&up), None), None);
        assert_eq!(
            plan(&running, None, std::slice::from_ref(&down), None),
            Some(Action::Stop(Some(ESSENTIAL_EXITED)))
        );
        // Reported RUNNING counts even when the document is older.
        let seen = Seen {
            reported: Some(ReportedStatus::Running),
            ..Default::default()
        };
        assert_eq!(plan(&t, Some(&seen), std::slice::from_ref(&up), None), None);
        let stopping = TaskSpec {
            desired: DesiredStatus::Stopped,
            ..t.clone()
        };
        assert_eq!(
            plan(
                &stopping,
                None,
                std::slice::from_ref(&up),
                Some(Work::Start)
            ),
            Some(Action::Stop(None))
        );
        assert_eq!(
            plan(&stopping, None, std::slice::from_ref(&up), Some(Work::Stop)),
            None
        );
        let done = Seen {
            reported: Some(ReportedStatus::Stopped),
            ..Default::default()
        };
        assert_eq!(plan(&stopping, Some(&done), &[], None), None);
        assert_eq!(
            plan(&stopping, Some(&done), &[down], None),
            Some(Action::Remove)
        );
        let mut checked = running.clone();
        checked.containers[0].health_check = Some(node::HealthCheck {
            command: vec!["CMD".into(), "true".into()],
            interval: 5,
            timeout: 2,
            retries: 3,
            start_period: 0,
        });
        assert_eq!(plan(&checked, None, &[up], None), Some(Action::Check));
    }
}
