//! What the control plane tells an agent and takes from it (the `berth-node-api` agent
//! protocol): an instance's whole desired-task document, long-polled on the instance's change
//! generation, and batches of observed task states.
//!
//! The document lists every task on the instance that is not STOPPED yet (to run, or to stop),
//! each with its containers resolved from the task definition and the task's overrides, so the
//! agent reads nothing else. A poll is also the agent's check-in.

use super::tasks::{ContainerReport, TaskReport, key};
use super::{Ecs, load};
use berth_node_api::agent::{
    self as node, Condition, ContainerSpec, Dependency, Desired, DesiredStatus, HealthCheck,
    KeyValue, KnownStatus, LogConfiguration, MountPoint, NetworkMode, PortMapping, Protocol,
    ReportBatch, ReportResult, ReportedStatus, TaskRole, TaskSpec, Ulimit, Volume, VolumeSource,
};
use berth_store::Kind;
use berth_types::ecs::{ClusterName, Task, TaskDefinition, TaskStatus};
use berth_types::shapes::ecs::{self as shapes, ContainerDefinition, ContainerOverride};
use berth_types::{Error, Timestamp};
use std::time::Duration;

/// One task's (or, without `service`, one instance's) utilization in percent of what it
/// reserved (or registered), for CloudWatch's `AWS/ECS` metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct Utilization {
    pub cluster: String,
    /// The service whose task this is; `None` for an instance (the cluster's metric).
    pub service: Option<String>,
    pub cpu: f64,
    pub memory: f64,
}

/// A task reserves no CPU: its usage counts against one vCPU.
const UNRESERVED_CPU: f64 = 1024.0;

impl Ecs {
    /// An agent's usage report as utilization samples: one per task of a service (relative
    /// to the task's CPU and memory reservations, as ECS computes `CPUUtilization` and
    /// `MemoryUtilization` by `ClusterName, ServiceName`) and one for the instance (its
    /// tasks' use relative to what it registered: the `ClusterName` metric).
    pub fn instance_stats(&self, report: &node::StatsReport) -> Result<Vec<Utilization>, Error> {
        let cluster = self.cluster_name(Some(&report.cluster))?;
        let Some(instance_id) = self.instance_id(&cluster, &report.container_instance) else {
            return Err(Error::InvalidParameter(format!(
                "Invalid container instance: {}",
                report.container_instance
            )));
        };
        let mut out = Vec::new();
        let (mut cpu_used, mut memory_used) = (0.0, 0.0);
        for t in &report.tasks {
            let id = t.task_arn.rsplit('/').next().unwrap_or(&t.task_arn);
            let rec = self.store.read(|r| r.get(Kind::Task, &key(&cluster, id)))?;
            let Some((_, task)) = load::<Task>(rec)? else {
                continue;
            };
            if task.container_instance.as_deref() != Some(instance_id) {
                continue;
            }
            cpu_used += t.cpu_units;
            memory_used += t.memory_mib;
            if let Some(service) = task.group.strip_prefix("service:") {
                let cpu = if task.cpu > 0 {
                    task.cpu as f64
                } else {
                    UNRESERVED_CPU
                };
                out.push(Utilization {
                    cluster: cluster.to_string(),
                    service: Some(service.to_string()),
                    cpu: 100.0 * t.cpu_units / cpu,
                    memory: 100.0 * t.memory_mib / task.memory.max(1) as f64,
                });
            }
        }
        let rec = self
            .store
            .read(|r| r.get(Kind::ContainerInstance, &key(&cluster, instance_id)))?;
        if let Some((_, instance)) = load::<berth_types::ecs::ContainerInstance>(rec)? {
            let registered = |name: &str| {
                instance
                    .registered_resources
                    .iter()
                    .find(|r| r.name == name)
                    .and_then(|r| r.integer.or(r.long))
                    .map_or(0.0, |n| n as f64)
            };
            let (cpu, memory) = (registered("CPU"), registered("MEMORY"));
            if cpu > 0.0 && memory > 0.0 {
                out.push(Utilization {
                    cluster: cluster.to_string(),
                    service: None,
                    cpu: 100.0 * cpu_used / cpu,
                    memory: 100.0 * memory_used / memory,
                });
            }
        }
        Ok(out)
    }

    /// A desired-state poll: checks the agent in, waits (at most `wait`) until the instance's
    /// generation differs from `generation`, then answers the whole document — or no tasks
    /// when nothing changed.
    pub async fn instance_desired(
        &self,
        cluster: &ClusterName,
        instance: &str,
        generation: u64,
        wait: Duration,
    ) -> Result<Desired, Error> {
        self.instance_heartbeat(cluster, instance).await?;
        let current = self
            .instance_wait(cluster, instance, generation, wait)
            .await?;
        if current == generation {
            return Ok(Desired {
                version: berth_node_api::VERSION,
                generation,
                tasks: None,
                stats_interval_ms: self.stats_interval_ms,
            });
        }
        let id = self
            .instance_id(cluster, instance)
            .ok_or_else(|| {
                Error::InvalidParameter(format!("Invalid container instance: {instance}"))
            })?
            .to_string();
        let ids = self.instance_task_ids(cluster, &id).await?;
        let mut tasks = Vec::with_capacity(ids.len());
        for task_id in ids {
            let rec = self
                .store
                .read(|r| r.get(Kind::Task, &key(cluster, &task_id)))?;
            let Some((_, task)) = load::<Task>(rec)? else {
                continue;
            };
            if task.last_status == TaskStatus::Stopped {
                continue;
            }
            let td =
                self.task_definition_describe(&format!("{}:{}", task.family, task.revision))?;
            tasks.push(self.task_spec(&task, &td));
        }
        Ok(Desired {
            version: berth_node_api::VERSION,
            generation: current,
            tasks: Some(tasks),
            stats_interval_ms: self.stats_interval_ms,
        })
    }

    /// Applies an agent's batch of reports, each on its own: the ones that cannot be applied
    /// come back with why.
    pub async fn instance_report(&self, batch: ReportBatch) -> Result<ReportResult, Error> {
        let cluster = self.cluster_name(Some(&batch.cluster))?;
        let mut result = ReportResult::default();
        for r in batch.reports {
            let arn = r.task_arn.clone();
            if let Err(e) = self.task_report(&cluster, &arn, task_report(r)).await {
                result.rejected.push(node::Rejected {
                    task_arn: arn,
                    reason: e.to_string(),
                });
            }
        }
        Ok(result)
    }

    /// The task's agent document: its containers as its task definition and overrides make them.
    fn task_spec(&self, task: &Task, td: &TaskDefinition) -> TaskSpec {
        let spec = &td.spec;
        let network_mode = match spec.network_mode {
            None | Some(shapes::NetworkMode::Bridge) => NetworkMode::Bridge,
            Some(shapes::NetworkMode::Host) => NetworkMode::Host,
            Some(shapes::NetworkMode::Awsvpc) => NetworkMode::Awsvpc,
            Some(shapes::NetworkMode::None) => NetworkMode::None,
        };
        // A task-level memory size (FARGATE-style definitions) bounds containers that set none.
        let task_memory = spec
            .memory
            .as_ref()
            .and(task.memory_spec.as_deref())
            .and_then(|m| m.parse::<u32>().ok());
        let overrides = task
            .overrides
            .as_ref()
            .and_then(|o| o.container_overrides.as_deref())
            .unwrap_or_default();
        let containers = spec
            .container_definitions
            .iter()
            .map(|def| {
                let name = def.name.as_deref().unwrap_or_default();
                let o = overrides.iter().find(|o| o.name.as_deref() == Some(name));
                let known = task.containers.iter().find(|c| c.name == name);
                container_spec(def, o, task_memory, known)
            })
            .collect();
        let volumes = spec
            .volumes
            .iter()
            .flatten()
            .filter_map(|v| {
                let name = v.name.clone()?;
                let source = match v.host.as_ref().and_then(|h| h.source_path.clone()) {
                    Some(source_path) => VolumeSource::Host { source_path },
                    None => VolumeSource::Docker {
                        shared: v.docker_volume_configuration.as_ref().and_then(|d| d.scope)
                            == Some(shapes::Scope::Shared),
                    },
                };
                Some(Volume { name, source })
            })
            .collect();
        TaskSpec {
            arn: self.task_arn(task),
            cluster_arn: self.cluster_arn(&task.cluster),
            task_definition_arn: self.task_definition_arn(&task.family, task.revision),
            family: task.family.to_string(),
            revision: task.revision,
            desired: if task.desired_stopped {
                DesiredStatus::Stopped
            } else {
                DesiredStatus::Running
            },
            known: known_status(task.last_status),
            network_mode,
            launch_type: task.launch_type.clone(),
            availability_zone: task.availability_zone.clone(),
            cpu: task.cpu_spec.clone(),
            memory: task.memory_spec.clone(),
            pull_started_at: task.pull_started_at.map(|t| t.0),
            pull_stopped_at: task.pull_stopped_at.map(|t| t.0),
            containers,
            volumes,
            task_role_arn: task_role(task, td, TaskRole::Task).map(str::to_string),
            execution_role_arn: task_role(task, td, TaskRole::Execution).map(str::to_string),
        }
    }

    /// The ARN of one of a task's roles, for the agent of the instance it runs on: the task
    /// must be placed on `instance` and not STOPPED yet, and have that role.
    pub fn instance_task_role(
        &self,
        cluster: &ClusterName,
        instance: &str,
        task_arn: &str,
        role: TaskRole,
    ) -> Result<String, Error> {
        let not_here = || {
            Error::InvalidParameter(format!(
                "Task {task_arn} does not run on container instance {instance}"
            ))
        };
        let instance_id = self.instance_id(cluster, instance).ok_or_else(not_here)?;
        let task_id = self.task_id(cluster, task_arn).ok_or_else(not_here)?;
        let rec = self
            .store
            .read(|r| r.get(Kind::Task, &key(cluster, task_id)))?;
        let task = load::<Task>(rec)?
            .map(|(_, t)| t)
            .filter(|t| {
                t.container_instance.as_deref() == Some(instance_id)
                    && t.last_status != TaskStatus::Stopped
            })
            .ok_or_else(not_here)?;
        let td = self.task_definition_describe(&format!("{}:{}", task.family, task.revision))?;
        task_role(&task, &td, role)
            .map(str::to_string)
            .ok_or_else(|| {
                let member = match role {
                    TaskRole::Task => "taskRoleArn",
                    TaskRole::Execution => "executionRoleArn",
                };
                Error::InvalidParameter(format!("Task {task_arn} has no {member}"))
            })
    }
}

/// A task's role: its overrides', else its task definition's.
fn task_role<'a>(task: &'a Task, td: &'a TaskDefinition, role: TaskRole) -> Option<&'a str> {
    let o = task.overrides.as_ref();
    match role {
        TaskRole::Task => o
            .and_then(|o| o.task_role_arn.as_deref())
            .or(td.spec.task_role_arn.as_deref()),
        TaskRole::Execution => o
            .and_then(|o| o.execution_role_arn.as_deref())
            .or(td.spec.execution_role_arn.as_deref()),
    }
}

fn known_status(s: TaskStatus) -> KnownStatus {
    match s {
        TaskStatus::Provisioning | TaskStatus::Pending | TaskStatus::Activating => {
            KnownStatus::Pending
        }
        TaskStatus::Running
        | TaskStatus::Deactivating
        | TaskStatus::Stopping
        | TaskStatus::Deprovisioning => KnownStatus::Running,
        TaskStatus::Stopped => KnownStatus::Stopped,
    }
}

fn positive(v: Option<i32>) -> Option<u32> {
    v.filter(|n| *n > 0).and_then(|n| u32::try_from(n).ok())
}

/// A container definition with its override (command, environment, cpu, memory) applied.
fn container_spec(
    def: &ContainerDefinition,
    o: Option<&ContainerOverride>,
    task_memory: Option<u32>,
    known: Option<&berth_types::ecs::TaskContainer>,
) -> ContainerSpec {
    let mut environment: Vec<KeyValue> = Vec::new();
    for list in [&def.environment, &o.and_then(|o| o.environment.clone())] {
        for e in list.iter().flatten() {
            if let (Some(name), Some(value)) = (e.name.clone(), e.value.clone()) {
                environment.retain(|kv| kv.name != name);
                environment.push(KeyValue { name, value });
            }
        }
    }
    let port_mappings = def
        .port_mappings
        .iter()
        .flatten()
        .filter_map(|pm| {
            Some(PortMapping {
                container_port: u16::try_from(pm.container_port?).ok()?,
                host_port: pm
                    .host_port
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(0),
                protocol: match pm.protocol {
                    Some(shapes::TransportProtocol::Udp) => Protocol::Udp,
                    _ => Protocol::Tcp,
                },
            })
        })
        .collect();
    let mount_points = def
        .mount_points
        .iter()
        .flatten()
        .filter_map(|m| {
            Some(MountPoint {
                source_volume: m.source_volume.clone()?,
                container_path: m.container_path.clone()?,
                read_only: m.read_only == Some(true),
            })
        })
        .collect();
    let ulimits = def
        .ulimits
        .iter()
        .flatten()
        .map(|u| Ulimit {
            name: u.name.as_str().to_string(),
            soft_limit: u.soft_limit.into(),
            hard_limit: u.hard_limit.into(),
        })
        .collect();
    let health_check = def.health_check.as_ref().map(|h| {
        let seconds =
            |v: Option<i32>, default: u32| v.and_then(|n| u32::try_from(n).ok()).unwrap_or(default);
        HealthCheck {
            command: h.command.clone(),
            interval: seconds(h.interval, 30),
            timeout: seconds(h.timeout, 5),
            retries: seconds(h.retries, 3),
            start_period: seconds(h.start_period, 0),
        }
    });
    let depends_on = def
        .depends_on
        .iter()
        .flatten()
        .map(|d| Dependency {
            container_name: d.container_name.clone(),
            condition: match d.condition {
                shapes::ContainerCondition::Start => Condition::Start,
                shapes::ContainerCondition::Complete => Condition::Complete,
                shapes::ContainerCondition::Success => Condition::Success,
                shapes::ContainerCondition::Healthy => Condition::Healthy,
            },
        })
        .collect();
    let log_configuration = def.log_configuration.as_ref().map(|l| LogConfiguration {
        log_driver: l.log_driver.as_str().to_string(),
        options: l.options.clone().unwrap_or_default(),
    });
    let known_health = known
        .and_then(|c| c.health_status.as_deref())
        .map(|h| match h {
            "HEALTHY" => node::HealthStatus::Healthy,
            "UNHEALTHY" => node::HealthStatus::Unhealthy,
            _ => node::HealthStatus::Unknown,
        });
    ContainerSpec {
        name: def.name.clone().unwrap_or_default(),
        image: def.image.clone().unwrap_or_default(),
        essential: def.essential.unwrap_or(true),
        command: o
            .and_then(|o| o.command.clone())
            .or_else(|| def.command.clone()),
        entry_point: def.entry_point.clone(),
        environment,
        working_directory: def.working_directory.clone(),
        user: def.user.clone(),
        cpu: positive(o.and_then(|o| o.cpu).or(def.cpu)).unwrap_or(0),
        memory: positive(o.and_then(|o| o.memory).or(def.memory)).or(task_memory),
        memory_reservation: positive(
            o.and_then(|o| o.memory_reservation)
                .or(def.memory_reservation),
        ),
        port_mappings,
        mount_points,
        ulimits,
        health_check,
        docker_labels: def.docker_labels.clone().unwrap_or_default(),
        privileged: def.privileged == Some(true),
        readonly_root_filesystem: def.readonly_root_filesystem == Some(true),
        stop_timeout: def.stop_timeout.and_then(|n| u32::try_from(n).ok()),
        depends_on,
        log_configuration,
        known_health,
    }
}

/// A report in the domain's terms.
fn task_report(r: node::TaskReport) -> TaskReport {
    let status = |s: ReportedStatus| match s {
        ReportedStatus::Running => "RUNNING",
        ReportedStatus::Stopped => "STOPPED",
    };
    TaskReport {
        status: Some(match r.status {
            ReportedStatus::Running => TaskStatus::Running,
            ReportedStatus::Stopped => TaskStatus::Stopped,
        }),
        reason: r.reason,
        containers: r
            .containers
            .into_iter()
            .map(|c| ContainerReport {
                name: c.name,
                status: Some(status(c.status).to_string()),
                exit_code: c.exit_code,
                reason: c.reason,
                runtime_id: c.runtime_id,
                network_bindings: Some(
                    c.network_bindings
                        .iter()
                        .map(|b| shapes::NetworkBinding {
                            bind_ip: Some(b.bind_ip.clone()),
                            container_port: Some(b.container_port.into()),
                            host_port: Some(b.host_port.into()),
                            protocol: Some(match b.protocol {
                                Protocol::Udp => shapes::TransportProtocol::Udp,
                                Protocol::Tcp => shapes::TransportProtocol::Tcp,
                            }),
                            ..Default::default()
                        })
                        .collect(),
                ),
                health_status: c.health.map(|h| {
                    match h {
                        node::HealthStatus::Healthy => "HEALTHY",
                        node::HealthStatus::Unhealthy => "UNHEALTHY",
                        node::HealthStatus::Unknown => "UNKNOWN",
                    }
                    .to_string()
                }),
                private_ipv4_address: c.private_ipv4_address,
            })
            .collect(),
        pull_started_at: r.pull_started_at.map(Timestamp),
        pull_stopped_at: r.pull_stopped_at.map(Timestamp),
        execution_stopped_at: r.execution_stopped_at.map(Timestamp),
    }
}
