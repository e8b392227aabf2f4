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
    ReportBatch, ReportResult, ReportedStatus, TaskSpec, Ulimit, Volume, VolumeSource,
};
use berth_store::Kind;
use berth_types::ecs::{ClusterName, Task, TaskDefinition, TaskStatus};
use berth_types::{Error, Timestamp};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::time::Duration;

impl Ecs {
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
            tasks.push(self.task_spec(&task, &td)?);
        }
        Ok(Desired {
            version: berth_node_api::VERSION,
            generation: current,
            tasks: Some(tasks),
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
    fn task_spec(&self, task: &Task, td: &TaskDefinition) -> Result<TaskSpec, Error> {
        let spec = &td.spec;
        let network_mode = match spec.get("networkMode").and_then(Value::as_str) {
            None | Some("bridge") => NetworkMode::Bridge,
            Some("host") => NetworkMode::Host,
            Some("awsvpc") => NetworkMode::Awsvpc,
            Some("none") => NetworkMode::None,
            Some(other) => {
                return Err(Error::internal(format!("unknown network mode {other}")));
            }
        };
        // A task-level memory size (FARGATE-style definitions) bounds containers that set none.
        let task_memory = spec
            .get("memory")
            .and(task.memory_spec.as_deref())
            .and_then(|m| m.parse::<u32>().ok());
        let overrides = task
            .overrides
            .as_ref()
            .and_then(|o| o.get("containerOverrides"))
            .and_then(Value::as_array);
        let mut containers = Vec::new();
        for def in array(spec.get("containerDefinitions")) {
            let Some(def) = def.as_object() else { continue };
            let name = string(def.get("name")).unwrap_or_default();
            let o = overrides
                .into_iter()
                .flatten()
                .find(|o| o.get("name").and_then(Value::as_str) == Some(name.as_str()))
                .and_then(Value::as_object);
            let known = task.containers.iter().find(|c| c.name == name);
            containers.push(container_spec(def, o, task_memory, known)?);
        }
        let volumes = array(spec.get("volumes"))
            .filter_map(|v| {
                let name = string(v.get("name"))?;
                let source = match v.get("host").and_then(|h| h.get("sourcePath")) {
                    Some(p) => VolumeSource::Host {
                        source_path: string(Some(p))?,
                    },
                    None => VolumeSource::Docker {
                        shared: v
                            .get("dockerVolumeConfiguration")
                            .and_then(|d| d.get("scope"))
                            .and_then(Value::as_str)
                            == Some("shared"),
                    },
                };
                Some(Volume { name, source })
            })
            .collect();
        Ok(TaskSpec {
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
        })
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

fn array(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array).map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}

fn positive(v: Option<&Value>) -> Option<u32> {
    v.and_then(Value::as_i64)
        .filter(|n| *n > 0)
        .and_then(|n| u32::try_from(n).ok())
}

/// A container definition with its override (command, environment, cpu, memory) applied.
fn container_spec(
    def: &Map<String, Value>,
    o: Option<&Map<String, Value>>,
    task_memory: Option<u32>,
    known: Option<&berth_types::ecs::TaskContainer>,
) -> Result<ContainerSpec, Error> {
    let pick = |field: &str| {
        o.and_then(|o| o.get(field))
            .filter(|v| !v.is_null())
            .or(def.get(field))
    };
    let name = string(def.get("name")).unwrap_or_default();
    let mut environment: Vec<KeyValue> = Vec::new();
    for list in [def.get("environment"), o.and_then(|o| o.get("environment"))] {
        for e in array(list) {
            if let (Some(name), Some(value)) = (string(e.get("name")), string(e.get("value"))) {
                environment.retain(|kv| kv.name != name);
                environment.push(KeyValue { name, value });
            }
        }
    }
    let port_mappings = array(def.get("portMappings"))
        .filter_map(|pm| {
            let container_port = u16::try_from(pm.get("containerPort")?.as_i64()?).ok()?;
            Some(PortMapping {
                container_port,
                host_port: pm
                    .get("hostPort")
                    .and_then(Value::as_i64)
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(0),
                protocol: match pm.get("protocol").and_then(Value::as_str) {
                    Some("udp") => Protocol::Udp,
                    _ => Protocol::Tcp,
                },
            })
        })
        .collect();
    let mount_points = array(def.get("mountPoints"))
        .filter_map(|m| {
            Some(MountPoint {
                source_volume: string(m.get("sourceVolume"))?,
                container_path: string(m.get("containerPath"))?,
                read_only: m.get("readOnly").and_then(Value::as_bool) == Some(true),
            })
        })
        .collect();
    let ulimits = array(def.get("ulimits"))
        .filter_map(|u| {
            Some(Ulimit {
                name: string(u.get("name"))?,
                soft_limit: u.get("softLimit")?.as_i64()?,
                hard_limit: u.get("hardLimit")?.as_i64()?,
            })
        })
        .collect();
    let health_check = match def.get("healthCheck") {
        Some(h) => {
            let seconds = |field: &str, default: u32| {
                h.get(field)
                    .and_then(Value::as_i64)
                    .and_then(|n| u32::try_from(n).ok())
                    .unwrap_or(default)
            };
            Some(HealthCheck {
                command: strings(h.get("command")).unwrap_or_default(),
                interval: seconds("interval", 30),
                timeout: seconds("timeout", 5),
                retries: seconds("retries", 3),
                start_period: seconds("startPeriod", 0),
            })
        }
        None => None,
    };
    let mut depends_on = Vec::new();
    for d in array(def.get("dependsOn")) {
        let condition = match d.get("condition").and_then(Value::as_str) {
            None | Some("START") => Condition::Start,
            Some("COMPLETE") => Condition::Complete,
            Some("SUCCESS") => Condition::Success,
            Some("HEALTHY") => Condition::Healthy,
            Some(other) => {
                return Err(Error::internal(format!(
                    "unknown dependency condition {other}"
                )));
            }
        };
        if let Some(container_name) = string(d.get("containerName")) {
            depends_on.push(Dependency {
                container_name,
                condition,
            });
        }
    }
    let labels = |v: Option<&Value>| -> BTreeMap<String, String> {
        v.and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
            .collect()
    };
    let log_configuration = def.get("logConfiguration").and_then(|l| {
        Some(LogConfiguration {
            log_driver: string(l.get("logDriver"))?,
            options: labels(l.get("options")),
        })
    });
    let known_health = known
        .and_then(|c| c.health_status.as_deref())
        .map(|h| match h {
            "HEALTHY" => node::HealthStatus::Healthy,
            "UNHEALTHY" => node::HealthStatus::Unhealthy,
            _ => node::HealthStatus::Unknown,
        });
    Ok(ContainerSpec {
        image: string(def.get("image")).unwrap_or_default(),
        essential: def
            .get("essential")
            .and_then(Value::as_bool)
            .unwrap_or(true),
        command: strings(pick("command")),
        entry_point: strings(def.get("entryPoint")),
        environment,
        working_directory: string(def.get("workingDirectory")),
        user: string(def.get("user")),
        cpu: positive(pick("cpu")).unwrap_or(0),
        memory: positive(pick("memory")).or(task_memory),
        memory_reservation: positive(pick("memoryReservation")),
        port_mappings,
        mount_points,
        ulimits,
        health_check,
        docker_labels: labels(def.get("dockerLabels")),
        privileged: def.get("privileged").and_then(Value::as_bool) == Some(true),
        readonly_root_filesystem: def.get("readonlyRootFilesystem").and_then(Value::as_bool)
            == Some(true),
        stop_timeout: def
            .get("stopTimeout")
            .and_then(Value::as_i64)
            .and_then(|n| u32::try_from(n).ok()),
        depends_on,
        log_configuration,
        known_health,
        name,
    })
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
                        .map(|b| {
                            serde_json::json!({
                                "bindIP": b.bind_ip,
                                "containerPort": b.container_port,
                                "hostPort": b.host_port,
                                "protocol": b.protocol.as_str(),
                            })
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
