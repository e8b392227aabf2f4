//! `berth-agent`: the node agent. It registers its host as an ECS container instance, asks the
//! control plane which tasks it should run (ListTasks/DescribeTasks for its instance), makes the
//! Docker Engine match (pull, create, start, stop), and reports what it observes with
//! `SubmitTaskStateChange` — every call SigV4-signed like any AWS client's.
//!
//! Containers carry labels (task ARN, container name, instance) so a restarted agent adopts
//! what already runs and never starts a duplicate, and two agents sharing one engine each
//! manage only their own containers. The instance ARN is kept in the state directory so a
//! restart re-registers the same instance.
//!
//! Talks to the control plane only through its public API (no shared code beyond the wire
//! crate's SigV4 math).

pub mod control;
mod docker;
mod metadata;

pub use control::Control;

use bollard::Docker;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("control plane: {0}")]
    Control(String),
    #[error("docker: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Berth endpoint, e.g. `http://127.0.0.1:4566`.
    pub endpoint: String,
    pub cluster: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
    pub attributes: Vec<(String, String)>,
    pub availability_zone: Option<String>,
    /// `unix:///var/run/docker.sock` style; default: the local engine.
    pub docker_host: Option<String>,
    /// Where the agent keeps its instance ARN.
    pub state_dir: PathBuf,
    /// Memory (MiB) kept for the host, not offered to tasks.
    pub memory_reserve_mib: u64,
    pub poll_interval: Duration,
}

/// The agent `berth up` runs in-process: if a Docker Engine is reachable, make sure the
/// `default` cluster exists, register and run; otherwise say so once and do nothing.
pub async fn run_local(config: AgentConfig) {
    let reachable = async {
        let docker = Docker::connect_with_local_defaults()?
            .negotiate_version()
            .await?;
        docker.ping().await.map(|_| ())
    };
    if let Err(e) = reachable.await {
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
    "com.amazonaws.ecs.capability.ecr-auth",
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

/// A running agent.
pub struct Agent {
    config: AgentConfig,
    control: Control,
    docker: Docker,
    node: docker::Node,
    /// What the task metadata endpoint serves.
    tasks: metadata::Tasks,
    /// Task definitions by ARN (immutable apart from status).
    definitions: HashMap<String, Value>,
}

impl Agent {
    /// Connects to Docker and registers (or re-registers) the instance.
    pub async fn start(config: AgentConfig) -> Result<Agent, AgentError> {
        let docker = match &config.docker_host {
            Some(h) => Docker::connect_with_unix(
                h.trim_start_matches("unix://"),
                120,
                bollard::API_DEFAULT_VERSION,
            )?,
            None => Docker::connect_with_local_defaults()?,
        };
        let docker = docker.negotiate_version().await?;
        let docker_version = docker.version().await?.version.unwrap_or_default();
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
        std::fs::write(&state_file, &instance_arn)?;
        tracing::info!(instance = %instance_arn, cluster = %config.cluster, "agent registered");
        let tasks = metadata::Tasks::default();
        let metadata_port = metadata::serve(
            docker.clone(),
            instance_arn.clone(),
            zone,
            tasks.clone(),
            &config.state_dir,
        )
        .await?;
        Ok(Agent {
            config,
            control,
            docker,
            node: docker::Node {
                instance: instance_arn,
                metadata_port,
            },
            tasks,
            definitions: HashMap::new(),
        })
    }

    pub fn instance_arn(&self) -> &str {
        &self.node.instance
    }

    /// Reconciles until `shutdown` resolves; each pass is the retry of the previous one.
    /// Between passes it long-polls the control plane for changes to its tasks (so a RunTask or
    /// StopTask is acted on at once) for at most `poll_interval`, after which it looks at Docker
    /// again anyway.
    pub async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut generation = 0;
        loop {
            if let Err(e) = self.reconcile().await {
                tracing::warn!(error = %e, "reconcile pass failed; retrying");
            }
            let wait = self.control.wait_changes(
                &self.config.cluster,
                &self.node.instance,
                generation,
                self.config.poll_interval,
            );
            tokio::select! {
                r = wait => match r {
                    Ok(g) => generation = g,
                    Err(e) => {
                        tracing::warn!(error = %e, "waiting for changes failed");
                        tokio::time::sleep(self.config.poll_interval).await;
                    }
                },
                () = &mut shutdown => return,
            }
        }
    }

    async fn tasks(&self, desired: &str) -> Result<Vec<Value>, AgentError> {
        let mut arns = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut body = json!({"cluster": self.config.cluster, "containerInstance": self.node.instance, "desiredStatus": desired});
            if let Some(t) = &token {
                body["nextToken"] = Value::String(t.clone());
            }
            let out = self.control.call("ecs", "ListTasks", body).await?;
            arns.extend(
                out["taskArns"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string),
            );
            match out["nextToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        let mut tasks = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .control
                .call(
                    "ecs",
                    "DescribeTasks",
                    json!({"cluster": self.config.cluster, "tasks": chunk}),
                )
                .await?;
            tasks.extend(out["tasks"].as_array().cloned().unwrap_or_default());
        }
        Ok(tasks)
    }

    async fn definition(&mut self, arn: &str) -> Result<Value, AgentError> {
        if let Some(d) = self.definitions.get(arn) {
            return Ok(d.clone());
        }
        let out = self
            .control
            .call(
                "ecs",
                "DescribeTaskDefinition",
                json!({"taskDefinition": arn}),
            )
            .await?;
        let td = out["taskDefinition"].clone();
        self.definitions.insert(arn.to_string(), td.clone());
        Ok(td)
    }

    /// One pass: start what should run, notice what exited, stop what should stop.
    pub async fn reconcile(&mut self) -> Result<(), AgentError> {
        self.control
            .heartbeat(&self.config.cluster, &self.node.instance)
            .await?;
        let owned = docker::owned(&self.docker, &self.node.instance).await?;
        let running = self.tasks("RUNNING").await?;
        let stopping = self.tasks("STOPPED").await?;
        *self.tasks.lock().unwrap() = running
            .iter()
            .chain(&stopping)
            .map(|t| {
                let arn = t["taskArn"].as_str().unwrap_or_default();
                (
                    arn.rsplit('/').next().unwrap_or_default().to_string(),
                    t.clone(),
                )
            })
            .collect();
        for task in running {
            let arn = task["taskArn"].as_str().unwrap_or_default().to_string();
            let status = task["lastStatus"].as_str().unwrap_or_default();
            let td = self
                .definition(task["taskDefinitionArn"].as_str().unwrap_or_default())
                .await?;
            let mine = owned.get(&arn).cloned().unwrap_or_default();
            let report = match status {
                "PROVISIONING" | "PENDING" | "ACTIVATING" => {
                    docker::start_task(&self.docker, &self.control, &self.node, &task, &td, &mine)
                        .await
                }
                "RUNNING" => docker::check_task(&self.docker, &task, &td, &mine).await?,
                _ => None,
            };
            if let Some(r) = report {
                self.report(&arn, r).await?;
            }
        }
        for task in stopping {
            if task["lastStatus"].as_str() == Some("STOPPED") {
                continue;
            }
            let arn = task["taskArn"].as_str().unwrap_or_default().to_string();
            let td = self
                .definition(task["taskDefinitionArn"].as_str().unwrap_or_default())
                .await?;
            let mine = owned.get(&arn).cloned().unwrap_or_default();
            let report = docker::stop_task(&self.docker, &td, &mine).await?;
            self.report(&arn, report).await?;
        }
        Ok(())
    }

    async fn report(&self, task: &str, mut body: Value) -> Result<(), AgentError> {
        body["cluster"] = Value::String(self.config.cluster.clone());
        body["task"] = Value::String(task.to_string());
        self.control
            .call("ecs", "SubmitTaskStateChange", body)
            .await?;
        Ok(())
    }
}
