//! Tasks (spec/ecs.md §5): RunTask / StartTask (placement by the pure planner in
//! `crate::placement`), DescribeTasks, ListTasks, StopTask, and the state changes agents
//! report (`SubmitTaskStateChange`, `SubmitContainerStateChange`).
//!
//! Store layout: `task` records under `cluster\nid`; the status column is the desired status
//! (what ListTasks filters on). A task holds its instance's CPU, memory and static ports from
//! creation until it is STOPPED; placement reads instances and tasks and writes the new tasks in
//! one transaction, so concurrent RunTask calls never over-commit an instance.

use super::capacity::{self, InstanceUsage, Listed, usage};
use super::{Ecs, Failure, load, save, validate_tags};
use crate::paging::{Page, PageRequest};
use crate::placement::{self, Constraint, Strategy, TaskShape};
use crate::records::create_new;
use berth_store::{Kind, ListQuery, Tx};
use berth_types::ecs::{
    ClusterName, ContainerInstance, Task, TaskContainer, TaskDefinition, TaskDefinitionStatus,
    TaskStatus, TaskTarget,
};
use berth_types::shapes::ecs::{
    ContainerOverride, NetworkBinding, NetworkMode, TaskOverride, TransportProtocol,
};
use berth_types::{Error, Tag, Timestamp};
use std::collections::BTreeMap;

/// Plans a RunTask makes before giving up on concurrent changes invalidating them.
const PLAN_ATTEMPTS: usize = 8;

/// Tasks one RunTask may launch.
pub const MAX_RUN_COUNT: i64 = 10;

/// `RunTask` / `StartTask` in domain terms.
#[derive(Debug, Clone, Default)]
pub struct RunTask {
    pub cluster: Option<String>,
    pub task_definition: String,
    pub count: i64,
    pub launch_type: Option<String>,
    pub group: Option<String>,
    pub started_by: Option<String>,
    pub overrides: Option<TaskOverride>,
    pub strategies: Vec<Strategy>,
    pub constraints: Vec<Constraint>,
    /// StartTask: the instances to use (no placement).
    pub instances: Option<Vec<String>>,
    pub tags: Vec<Tag>,
    /// `propagateTags`: `TASK_DEFINITION` copies the task definition's tags to the tasks
    /// (`SERVICE` is resolved by the service scheduler, which passes the service's tags).
    pub propagate_tags: Option<String>,
    /// `enableECSManagedTags`: `aws:ecs:clusterName` (and, for service tasks,
    /// `aws:ecs:serviceName`) are added.
    pub managed_tags: bool,
}

/// ListTasks filters.
#[derive(Debug, Clone, Default)]
pub struct ListTasks {
    pub container_instance: Option<String>,
    pub family: Option<String>,
    pub started_by: Option<String>,
    pub service_name: Option<String>,
    pub desired_stopped: bool,
    pub launch_type: Option<String>,
    pub page: PageRequest,
}

/// A container's state as an agent reports it.
#[derive(Debug, Clone, Default)]
pub struct ContainerReport {
    pub name: String,
    pub status: Option<String>,
    pub exit_code: Option<i64>,
    pub reason: Option<String>,
    pub runtime_id: Option<String>,
    pub network_bindings: Option<Vec<NetworkBinding>>,
    /// `HEALTHY`, `UNHEALTHY` or `UNKNOWN` (Berth's agent adds it to its reports).
    pub health_status: Option<String>,
    /// awsvpc: the task's address (Berth's agent adds it to its reports).
    pub private_ipv4_address: Option<String>,
}

/// A task's state as an agent reports it.
#[derive(Debug, Clone, Default)]
pub struct TaskReport {
    pub status: Option<TaskStatus>,
    pub reason: Option<String>,
    pub containers: Vec<ContainerReport>,
    pub pull_started_at: Option<Timestamp>,
    pub pull_stopped_at: Option<Timestamp>,
    pub execution_stopped_at: Option<Timestamp>,
}

pub(super) fn key(cluster: &ClusterName, id: &str) -> String {
    format!("{cluster}\n{id}")
}

/// 32 random lower-case hex digits.
fn random_hex() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// The override of container `name`, if any.
fn container_override<'a>(
    overrides: &'a Option<TaskOverride>,
    name: &str,
) -> Option<&'a ContainerOverride> {
    overrides
        .as_ref()?
        .container_overrides
        .as_ref()?
        .iter()
        .find(|o| o.name.as_deref() == Some(name))
}

/// What a task of a task definition is: what it reserves, its containers, and the task-level
/// `cpu`/`memory` strings it reports.
struct Shaped {
    shape: TaskShape,
    containers: Vec<TaskContainer>,
    cpu_spec: Option<String>,
    memory_spec: Option<String>,
}

/// What a task of `td` (with `overrides`) reserves, and its containers.
fn shape(td: &TaskDefinition, overrides: &Option<TaskOverride>) -> Result<Shaped, Error> {
    let containers = &td.spec.container_definitions;
    let given = overrides
        .as_ref()
        .and_then(|o| o.container_overrides.as_ref());
    for o in given.into_iter().flatten() {
        let name = o.name.as_deref().unwrap_or("");
        if !containers.iter().any(|c| c.name.as_deref() == Some(name)) {
            return Err(Error::InvalidParameter(format!(
                "Override for container named {name} is not a container in the TaskDefinition."
            )));
        }
    }
    let network_mode = td.spec.network_mode.unwrap_or(NetworkMode::Bridge);
    let cpu_spec = overrides
        .as_ref()
        .and_then(|o| o.cpu.clone())
        .or_else(|| td.spec.cpu.clone());
    let memory_spec = overrides
        .as_ref()
        .and_then(|o| o.memory.clone())
        .or_else(|| td.spec.memory.clone());
    let positive = |v: Option<i32>| v.filter(|n| *n > 0).map(i64::from);
    let mut out = Vec::new();
    let (mut cpu, mut memory) = (0i64, 0i64);
    let (mut tcp, mut udp) = (Vec::new(), Vec::new());
    for c in containers {
        let name = c.name.clone().unwrap_or_default();
        let o = container_override(overrides, &name);
        let ccpu = positive(o.and_then(|o| o.cpu)).or(positive(c.cpu));
        let cmem = positive(o.and_then(|o| o.memory)).or(positive(c.memory));
        let cres =
            positive(o.and_then(|o| o.memory_reservation)).or(positive(c.memory_reservation));
        cpu += ccpu.unwrap_or(0);
        memory += cres.or(cmem).unwrap_or(0);
        if network_mode != NetworkMode::Awsvpc && network_mode != NetworkMode::None {
            for pm in c.port_mappings.iter().flatten() {
                let host = positive(pm.host_port).or(if network_mode == NetworkMode::Host {
                    positive(pm.container_port)
                } else {
                    None
                });
                if let Some(p) = host.and_then(|p| u16::try_from(p).ok()) {
                    match pm.protocol {
                        Some(TransportProtocol::Udp) => udp.push(p),
                        _ => tcp.push(p),
                    }
                }
            }
        }
        out.push(TaskContainer {
            name,
            image: c.image.clone().unwrap_or_default(),
            uuid: uuid::Uuid::new_v4().to_string(),
            last_status: "PENDING".into(),
            essential: c.essential.unwrap_or(true),
            exit_code: None,
            reason: None,
            runtime_id: None,
            network_bindings: Vec::new(),
            health_status: c.health_check.as_ref().map(|_| "UNKNOWN".to_string()),
            cpu: ccpu,
            memory: cmem,
            memory_reservation: cres,
        });
    }
    if let Some(c) = cpu_spec.as_deref().and_then(|c| c.parse::<i64>().ok()) {
        cpu = c;
    }
    if let Some(m) = memory_spec.as_deref().and_then(|m| m.parse::<i64>().ok()) {
        memory = m;
    }
    let shape = TaskShape {
        cpu,
        memory,
        tcp_ports: tcp,
        udp_ports: udp,
        requires_attributes: td.requires_attributes.clone(),
        group: String::new(),
    };
    Ok(Shaped {
        shape,
        containers: out,
        cpu_spec,
        memory_spec,
    })
}

fn list_prefix<T: serde::de::DeserializeOwned>(
    tx: &Tx<'_>,
    kind: Kind,
    prefix: &str,
) -> Result<Vec<T>, Error> {
    Ok(crate::records::all(tx, kind, prefix)?
        .into_iter()
        .map(|(_, x)| x)
        .collect())
}

fn save_task(
    tx: &mut Tx<'_>,
    t: &Task,
    expected: Option<berth_types::Generation>,
) -> Result<(), Error> {
    let status = if t.desired_stopped {
        "STOPPED"
    } else {
        "RUNNING"
    };
    let k = key(&t.cluster, &t.id);
    match expected {
        // A new task's id is 128 random bits: its key is new by construction.
        None => create_new(tx, Kind::Task, &k, Some(status), t),
        Some(_) => save(tx, Kind::Task, &k, Some(status), t, expected),
    }
}

impl Ecs {
    pub fn task_arn(&self, t: &Task) -> String {
        self.scope
            .arn("ecs", &format!("task/{}/{}", t.cluster, t.id))
    }

    pub fn container_arn(&self, t: &Task, c: &TaskContainer) -> String {
        self.scope.arn(
            "ecs",
            &format!("container/{}/{}/{}", t.cluster, t.id, c.uuid),
        )
    }

    /// The task id named by an id or an ARN of this cluster.
    pub(super) fn task_id<'a>(&self, cluster: &ClusterName, given: &'a str) -> Option<&'a str> {
        let id = match given.starts_with("arn:") {
            true => {
                let rest = self.scope.arn_resource("ecs", "task", given)?;
                match rest.split_once('/') {
                    Some((c, id)) if c == cluster.as_str() => id,
                    Some(_) => return None,
                    None => rest,
                }
            }
            false => given,
        };
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    }

    /// All tasks of a cluster (including recently stopped ones).
    pub fn tasks_of(&self, cluster: &ClusterName) -> Result<Vec<Task>, Error> {
        self.cluster_records(Kind::Task, cluster, None)
    }

    /// What the tasks of a cluster use, per instance id: from the capacity view (kept in step
    /// with the store) once placement has loaded it, else from the stored tasks.
    pub fn instance_usage(
        &self,
        cluster: &ClusterName,
    ) -> Result<BTreeMap<String, InstanceUsage>, Error> {
        match self.capacity.read(cluster, |v| v.usage()) {
            Some(usage) => Ok(usage),
            None => Ok(usage(&self.tasks_of(cluster)?)),
        }
    }

    /// `RunTask` (placement by strategies and constraints) and `StartTask` (given instances).
    pub async fn task_run(&self, cmd: RunTask) -> Result<(Vec<Task>, Vec<Failure>), Error> {
        let cluster = self.cluster_name(cmd.cluster.as_deref())?;
        self.cluster_get_active(&cluster)?;
        if !(1..=MAX_RUN_COUNT).contains(&cmd.count) {
            return Err(Error::InvalidParameter(format!(
                "count must be between 1 and {MAX_RUN_COUNT}."
            )));
        }
        validate_tags(&cmd.tags)?;
        match cmd.propagate_tags.as_deref() {
            None | Some("NONE" | "TASK_DEFINITION") => {}
            Some("SERVICE")
                if cmd
                    .group
                    .as_deref()
                    .is_some_and(|g| g.starts_with("service:")) => {}
            Some(other) => {
                return Err(Error::InvalidParameter(format!(
                    "propagateTags {other} is not valid for a task that is not part of a service."
                )));
            }
        }
        let td = self
            .task_definition_describe(&cmd.task_definition)
            .map_err(|_| Error::InvalidParameter("TaskDefinition not found.".into()))?;
        if td.status != TaskDefinitionStatus::Active {
            return Err(Error::Client("TaskDefinition is inactive".into()));
        }
        let launch_type = cmd.launch_type.clone().unwrap_or_else(|| "EC2".into());
        if launch_type == "FARGATE" && !td.compatibilities.iter().any(|c| c == "FARGATE") {
            return Err(Error::InvalidParameter(
                "Task definition does not support launch_type FARGATE.".into(),
            ));
        }
        if cmd.strategies.len() > 5 {
            return Err(Error::InvalidParameter(
                "At most 5 placement strategies.".into(),
            ));
        }
        let mut constraints = cmd.constraints.clone();
        for c in td.spec.placement_constraints.iter().flatten() {
            if let Some(expr) = &c.expression {
                let e = placement::query::parse(expr).map_err(|e| {
                    Error::InvalidParameter(format!("Invalid placement constraint expression: {e}"))
                })?;
                constraints.push(Constraint::MemberOf(e));
            }
        }
        if launch_type == "FARGATE" {
            // FARGATE tasks run on the capacity Berth manages itself (`berth up`'s agent).
            let managed = placement::query::parse("attribute:berth.capacity == managed")
                .expect("a valid expression");
            constraints.push(Constraint::MemberOf(managed));
        }
        if constraints.len() > 10 {
            return Err(Error::InvalidParameter(
                "At most 10 placement constraints.".into(),
            ));
        }
        let Shaped {
            shape: mut task_shape,
            containers,
            cpu_spec,
            memory_spec,
        } = shape(&td, &cmd.overrides)?;
        let group = cmd
            .group
            .clone()
            .unwrap_or_else(|| format!("family:{}", td.family));
        task_shape.group = group.clone();
        let strategies = cmd.strategies.clone();
        let given_instances = match &cmd.instances {
            Some(list) => {
                if list.is_empty() || list.len() > 10 {
                    return Err(Error::InvalidParameter(
                        "containerInstances must list 1 to 10 instances.".into(),
                    ));
                }
                let mut ids = Vec::new();
                for g in list {
                    ids.push(
                        self.instance_id(&cluster, g)
                            .ok_or_else(|| {
                                Error::InvalidParameter(format!("Invalid container instance: {g}"))
                            })?
                            .to_string(),
                    );
                }
                Some(ids)
            }
            None => None,
        };
        let count = cmd.count as usize;
        let now = Timestamp::now();
        let mut tags = cmd.tags.clone();
        if cmd.propagate_tags.as_deref() == Some("TASK_DEFINITION") {
            berth_types::tags_merge(&mut tags, td.tags.clone());
        }
        if cmd.managed_tags {
            let mut managed = vec![Tag {
                key: "aws:ecs:clusterName".into(),
                value: cluster.to_string(),
            }];
            if let Some(service) = cmd
                .group
                .as_deref()
                .and_then(|g| g.strip_prefix("service:"))
            {
                managed.push(Tag {
                    key: "aws:ecs:serviceName".into(),
                    value: service.to_string(),
                });
            }
            berth_types::tags_merge(&mut tags, managed);
        }
        let new_task = |inst: &ContainerInstance| Task {
            id: random_hex(),
            cluster: cluster.clone(),
            family: td.family.clone(),
            revision: td.revision,
            container_instance: Some(inst.id.clone()),
            group: group.clone(),
            started_by: cmd.started_by.clone(),
            launch_type: launch_type.clone(),
            overrides: cmd.overrides.clone(),
            last_status: TaskStatus::Provisioning,
            desired_stopped: false,
            cpu: task_shape.cpu,
            memory: task_shape.memory,
            tcp_ports: task_shape.tcp_ports.clone(),
            udp_ports: task_shape.udp_ports.clone(),
            cpu_spec: cpu_spec.clone(),
            memory_spec: memory_spec.clone(),
            containers: containers
                .iter()
                .map(|c| TaskContainer {
                    uuid: uuid::Uuid::new_v4().to_string(),
                    ..c.clone()
                })
                .collect(),
            availability_zone: inst.attribute("ecs.availability-zone").map(str::to_string),
            created_at: now,
            pull_started_at: None,
            pull_stopped_at: None,
            started_at: None,
            stopping_at: None,
            stopped_at: None,
            execution_stopped_at: None,
            stop_code: None,
            stopped_reason: None,
            tags: tags.clone(),
            version: 1,
            private_ipv4_address: None,
            drain_reason: None,
            targets: Vec::new(),
        };
        let instance_arn = |id: &str| {
            self.scope
                .arn("ecs", &format!("container-instance/{cluster}/{id}"))
        };
        // Plan against the capacity view and reserve what the plan uses (on this thread, not
        // the store's writer), then write the tasks. The write job only checks the plan is
        // still valid; if not (the view was rebuilt, an instance left), plan again.
        for _ in 0..PLAN_ATTEMPTS {
            let planned = self.capacity.reserve(&cluster, |view| {
                let mut failures = Vec::new();
                let targets: Vec<&ContainerInstance> = match &given_instances {
                    Some(ids) => ids
                        .iter()
                        .filter_map(|id| {
                            let found = view.instance(id).map(|(_, i)| i);
                            if found.is_none() {
                                failures.push(Failure {
                                    arn: instance_arn(id),
                                    reason: "MISSING".into(),
                                    detail: None,
                                });
                            }
                            found
                        })
                        .collect(),
                    None => {
                        let plan = placement::plan(
                            &view.fleet,
                            &task_shape,
                            count,
                            &strategies,
                            &constraints,
                            rand::random(),
                        );
                        failures.extend(plan.failures.into_iter().map(|f| {
                            let instance = f.instance.as_deref().and_then(|i| view.instance(i));
                            let detail = (f.reason == "ATTRIBUTE")
                                .then(|| {
                                    let attributes = instance.map(|(_, i)| &i.attributes[..]);
                                    missing_attributes(&task_shape.requires_attributes, attributes)
                                })
                                .flatten();
                            Failure {
                                arn: f.instance.as_deref().map(instance_arn).unwrap_or_default(),
                                reason: f.reason,
                                detail,
                            }
                        }));
                        plan.placements
                            .into_iter()
                            .map(|i| view.instance_at(i))
                            .collect()
                    }
                };
                let tasks: Vec<Task> = targets.into_iter().map(new_task).collect();
                (tasks, failures)
            });
            let Some((reserved, (tasks, failures))) = planned else {
                // No view of this cluster yet: build it where writes are ordered.
                let (capacity, c) = (self.capacity.clone(), cluster.clone());
                self.store.write(move |tx| capacity.load(tx, &c)).await?;
                continue;
            };
            let ids: Vec<String> = tasks.iter().map(|t| t.id.clone()).collect();
            let (capacity, c) = (self.capacity.clone(), cluster.clone());
            let written = self
                .store
                .write(move |tx| {
                    if !capacity.still_valid(tx, &reserved, &c, &tasks)? {
                        return Err(Error::Conflict);
                    }
                    for t in &tasks {
                        save_task(tx, t, None)?;
                    }
                    Ok(tasks)
                })
                .await;
            let created = match written {
                Ok(created) => created,
                Err(e) => {
                    self.capacity.release(&cluster, &ids);
                    if e == Error::Conflict {
                        continue;
                    }
                    return Err(e);
                }
            };
            return Ok((created, failures));
        }
        Err(Error::internal(
            "placement kept conflicting with concurrent changes; try again",
        ))
    }

    /// `DescribeTasks`: found tasks and `MISSING` failures.
    pub fn task_describe(
        &self,
        cluster: &ClusterName,
        given: &[String],
    ) -> Result<(Vec<Task>, Vec<Failure>), Error> {
        self.describe_each(Kind::Task, "task", cluster, given, |g| {
            self.task_id(cluster, g)
        })
    }

    /// The ids of the tasks on instance `id` that are not STOPPED, from the capacity view.
    pub(super) async fn instance_task_ids(
        &self,
        cluster: &ClusterName,
        id: &str,
    ) -> Result<Vec<String>, Error> {
        let select = |v: &capacity::View| v.holding_on(id);
        if let Some(ids) = self.capacity.read(cluster, select) {
            return Ok(ids);
        }
        let (capacity, c) = (self.capacity.clone(), cluster.clone());
        self.store.write(move |tx| capacity.load(tx, &c)).await?;
        Ok(self.capacity.read(cluster, select).unwrap_or_default())
    }

    /// `ListTasks`, from the capacity view's index of the cluster's tasks (loaded from the
    /// store on first use): the agents' polls cost a walk over small entries, not a decode of
    /// every task record.
    pub async fn task_list(
        &self,
        cluster: &ClusterName,
        q: &ListTasks,
    ) -> Result<Page<String>, Error> {
        self.cluster_get_active(cluster)?;
        let instance = match &q.container_instance {
            Some(g) => Some(
                self.instance_id(cluster, g)
                    .ok_or_else(|| {
                        Error::InvalidParameter(format!("Invalid container instance: {g}"))
                    })?
                    .to_string(),
            ),
            None => None,
        };
        let service_group = q.service_name.as_ref().map(|s| format!("service:{s}"));
        let wanted = |t: &Listed| {
            t.desired_stopped == q.desired_stopped
                && instance
                    .as_ref()
                    .is_none_or(|i| t.container_instance.as_ref() == Some(i))
                && q.family.as_ref().is_none_or(|f| &t.family == f)
                && q.started_by
                    .as_ref()
                    .is_none_or(|s| t.started_by.as_ref() == Some(s))
                && service_group.as_ref().is_none_or(|g| &t.group == g)
                && q.launch_type.as_ref().is_none_or(|l| &t.launch_type == l)
        };
        let select = |v: &capacity::View| -> Vec<String> {
            v.listed()
                .filter(|(_, t)| wanted(t))
                .map(|(id, _)| id.clone())
                .collect()
        };
        let ids = match self.capacity.read(cluster, select) {
            Some(ids) => ids,
            None => {
                let (capacity, c) = (self.capacity.clone(), cluster.clone());
                self.store.write(move |tx| capacity.load(tx, &c)).await?;
                self.capacity.read(cluster, select).unwrap_or_default()
            }
        };
        let scope = format!(
            "ListTasks\n{cluster}\n{instance:?}\n{:?}\n{:?}\n{service_group:?}\n{}\n{:?}",
            q.family, q.started_by, q.desired_stopped, q.launch_type
        );
        self.page_in_memory(
            &scope,
            &q.page,
            (100, 100),
            &ids,
            |id| id.as_str(),
            |id| self.scope.arn("ecs", &format!("task/{cluster}/{id}")),
        )
    }

    /// Forgets the tasks that have been STOPPED for longer than `retention` (AWS keeps stopped
    /// tasks describable for at least an hour, then they vanish): without this the store, and
    /// every listing, would grow with each task ever run. Returns how many were forgotten.
    pub async fn task_purge_stopped(&self, retention: std::time::Duration) -> Result<usize, Error> {
        let cutoff = Timestamp(Timestamp::now().0 - retention.as_millis() as i64);
        let expired = move |t: &Task| {
            t.last_status == TaskStatus::Stopped && t.stopped_at.is_some_and(|at| at < cutoff)
        };
        // Only the tasks meant to be stopped are read (the store indexes them).
        let query = ListQuery {
            status: Some("STOPPED"),
            limit: usize::MAX >> 1,
            ..Default::default()
        };
        let old: Vec<String> = self
            .store
            .read(|r| r.list(Kind::Task, &query))?
            .into_iter()
            .filter_map(|rec| Some((rec.key.clone(), load::<Task>(Some(rec)).ok()??.1)))
            .filter(|(_, t)| expired(t))
            .map(|(k, _)| k)
            .collect();
        if old.is_empty() {
            return Ok(0);
        }
        self.store
            .write(move |tx| {
                let mut n = 0;
                for k in &old {
                    // Still there and still expired (a report may have raced the read).
                    if let Some((g, t)) = load::<Task>(tx.get(Kind::Task, k)?)?
                        && expired(&t)
                    {
                        tx.delete(Kind::Task, k, g)?;
                        n += 1;
                    }
                }
                Ok(n)
            })
            .await
    }

    /// `StopTask`: desired STOPPED with `UserInitiated`; the agent stops the containers and
    /// reports STOPPED. Idempotent on stopped tasks.
    pub async fn task_stop(
        &self,
        cluster: &ClusterName,
        given: &str,
        reason: Option<String>,
    ) -> Result<Task, Error> {
        self.cluster_get_active(cluster)?;
        let id = self
            .task_id(cluster, given)
            .ok_or_else(|| Error::InvalidParameter(format!("Invalid task: {given}")))?
            .to_string();
        let cluster = cluster.clone();
        let task = self
            .store
            .write(move |tx| {
                let (g, mut t) = load::<Task>(tx.get(Kind::Task, &key(&cluster, &id))?)?
                    .ok_or_else(|| {
                        Error::InvalidParameter("The referenced task was not found.".into())
                    })?;
                if !t.desired_stopped {
                    t.desired_stopped = true;
                    t.stop_code = Some("UserInitiated".into());
                    t.stopped_reason =
                        Some(reason.unwrap_or_else(|| "Task stopped by user".into()));
                    t.stopping_at = Some(Timestamp::now());
                    t.version += 1;
                    save_task(tx, &t, Some(g))?;
                }
                Ok(t)
            })
            .await?;
        Ok(task)
    }

    /// `SubmitTaskStateChange` / `SubmitContainerStateChange`: what an agent observed.
    pub async fn task_report(
        &self,
        cluster: &ClusterName,
        given: &str,
        report: TaskReport,
    ) -> Result<(), Error> {
        self.cluster_get_active(cluster)?;
        let id = self
            .task_id(cluster, given)
            .ok_or_else(|| Error::InvalidParameter(format!("Invalid task: {given}")))?
            .to_string();
        let cluster = cluster.clone();
        let service_task = self
            .store
            .write(move |tx| {
                let (g, mut t) = load::<Task>(tx.get(Kind::Task, &key(&cluster, &id))?)?
                    .ok_or_else(|| {
                        Error::InvalidParameter("The referenced task was not found.".into())
                    })?;
                let now = Timestamp::now();
                for c in report.containers {
                    let container = t
                        .containers
                        .iter_mut()
                        .find(|x| x.name == c.name)
                        .ok_or_else(|| {
                            Error::InvalidParameter(format!(
                                "The task has no container named {}.",
                                c.name
                            ))
                        })?;
                    if let Some(s) = c.status {
                        container.last_status = s;
                    }
                    container.exit_code = c.exit_code.or(container.exit_code);
                    container.reason = c.reason.or(container.reason.take());
                    container.runtime_id = c.runtime_id.or(container.runtime_id.take());
                    if let Some(b) = c.network_bindings {
                        container.network_bindings = b;
                    }
                    if let Some(ip) = c.private_ipv4_address {
                        t.private_ipv4_address.get_or_insert(ip);
                    }
                    if let Some(h) = c.health_status
                        && container.health_status.is_some()
                    {
                        container.health_status = Some(h);
                    }
                }
                if let Some(to) = report.status {
                    t.last_status = t.last_status.transition(to).map_err(|e| {
                        Error::InvalidParameter(format!("Invalid task state change: {e}"))
                    })?;
                    if to >= TaskStatus::Running
                        && t.started_at.is_none()
                        && to == TaskStatus::Running
                    {
                        t.started_at = Some(now);
                    }
                    if to == TaskStatus::Stopped {
                        t.stopped_at.get_or_insert(now);
                        if !t.desired_stopped {
                            // The task ended on its own: an essential container exited or it
                            // failed to start.
                            t.desired_stopped = true;
                            let essential_exit = t
                                .containers
                                .iter()
                                .any(|c| c.essential && c.last_status == "STOPPED");
                            let started = t.started_at.is_some();
                            t.stop_code = Some(
                                if started && essential_exit {
                                    "EssentialContainerExited"
                                } else {
                                    "TaskFailedToStart"
                                }
                                .into(),
                            );
                            t.stopped_reason = Some(report.reason.clone().unwrap_or_else(|| {
                                if started {
                                    "Essential container in task exited".into()
                                } else {
                                    "Task failed to start".into()
                                }
                            }));
                        }
                    }
                }
                t.pull_started_at = report.pull_started_at.or(t.pull_started_at);
                t.pull_stopped_at = report.pull_stopped_at.or(t.pull_stopped_at);
                t.execution_stopped_at = report.execution_stopped_at.or(t.execution_stopped_at);
                t.version += 1;
                save_task(tx, &t, Some(g))?;
                Ok(t.group.starts_with("service:"))
            })
            .await?;
        if service_task {
            // A service task started, stopped or changed health: its service may act now.
            self.wake_scheduler();
        }
        Ok(())
    }
}

/// The `detail` of an `ATTRIBUTE` failure: which required attributes the instance lacks, and
/// for a logging-driver capability, the `logDriver` that needs it.
fn missing_attributes(
    required: &[String],
    have: Option<&[berth_types::ecs::InstanceAttribute]>,
) -> Option<String> {
    let missing: Vec<&str> = required
        .iter()
        .filter(|r| !have.is_some_and(|h| h.iter().any(|a| &a.name == *r)))
        .map(String::as_str)
        .collect();
    let first = missing.first()?;
    let why = match first.strip_prefix("com.amazonaws.ecs.capability.logging-driver.") {
        Some(driver) => format!(
            "logConfiguration.logDriver '{driver}' is not supported by the agent of this container instance"
        ),
        None => "the container instance lacks an attribute the task definition requires".into(),
    };
    Some(format!("{why} (missing: {})", missing.join(", ")))
}

/// Whether any task of `cluster` still holds resources (inside a transaction).
pub(super) fn any_active(tx: &Tx<'_>, cluster: &ClusterName) -> Result<bool, Error> {
    let tasks: Vec<Task> = list_prefix(tx, Kind::Task, &format!("{cluster}\n"))?;
    Ok(tasks.iter().any(|t| t.last_status.holds_resources()))
}

/// Tasks of `cluster` holding resources on instance `id` (inside a transaction).
pub(super) fn active_on(tx: &Tx<'_>, cluster: &ClusterName, id: &str) -> Result<Vec<Task>, Error> {
    let tasks: Vec<Task> = list_prefix(tx, Kind::Task, &format!("{cluster}\n"))?;
    Ok(tasks
        .into_iter()
        .filter(|t| t.last_status.holds_resources() && t.container_instance.as_deref() == Some(id))
        .collect())
}

/// Marks a task to be stopped by the scheduler or the platform (inside a transaction).
pub(super) fn stop_in_tx(
    tx: &mut Tx<'_>,
    mut t: Task,
    code: &str,
    reason: &str,
) -> Result<(), Error> {
    let rec = tx
        .get(Kind::Task, &key(&t.cluster, &t.id))?
        .ok_or(Error::Conflict)?;
    if !t.desired_stopped {
        t.desired_stopped = true;
        t.stop_code = Some(code.into());
        t.stopped_reason = Some(reason.into());
        t.stopping_at = Some(Timestamp::now());
        t.version += 1;
        save_task(tx, &t, Some(rec.generation))?;
    }
    Ok(())
}

impl Ecs {
    /// Records that tasks are being drained from their load balancers before they are stopped
    /// (each with the reason they will be stopped with).
    pub(super) async fn tasks_mark_draining(
        &self,
        cluster: &ClusterName,
        marks: Vec<(String, String)>,
    ) -> Result<(), Error> {
        let c = cluster.clone();
        self.store
            .write(move |tx| {
                for (id, reason) in marks {
                    let k = key(&c, &id);
                    let Some((g, mut t)) = load::<Task>(tx.get(Kind::Task, &k)?)? else {
                        continue;
                    };
                    if t.drain_reason.is_none() && !t.desired_stopped {
                        t.drain_reason = Some(reason);
                        t.version += 1;
                        save_task(tx, &t, Some(g))?;
                    }
                }
                Ok(())
            })
            .await
    }

    /// Records load balancer targets on tasks before the scheduler registers them (each
    /// task's list grows; a target already recorded is not repeated).
    pub(super) async fn tasks_record_targets(
        &self,
        cluster: &ClusterName,
        records: Vec<(String, Vec<TaskTarget>)>,
    ) -> Result<(), Error> {
        let c = cluster.clone();
        self.store
            .write(move |tx| {
                for (id, targets) in records {
                    let k = key(&c, &id);
                    let Some((g, mut t)) = load::<Task>(tx.get(Kind::Task, &k)?)? else {
                        continue;
                    };
                    let before = t.targets.len();
                    for target in targets {
                        if !t.targets.contains(&target) {
                            t.targets.push(target);
                        }
                    }
                    if t.targets.len() != before {
                        t.version += 1;
                        save_task(tx, &t, Some(g))?;
                    }
                }
                Ok(())
            })
            .await
    }

    /// Stops tasks for the service scheduler (`ServiceSchedulerInitiated`), each with its
    /// reason, in one write. Tasks already stopping are left as they are.
    pub(super) async fn tasks_stop_by_scheduler(
        &self,
        cluster: &ClusterName,
        stops: Vec<(String, String)>,
    ) -> Result<Vec<Task>, Error> {
        let c = cluster.clone();
        let stopped = self
            .store
            .write(move |tx| {
                let mut stopped = Vec::new();
                for (id, reason) in stops {
                    let Some((_, t)) = load::<Task>(tx.get(Kind::Task, &key(&c, &id))?)? else {
                        continue;
                    };
                    if !t.desired_stopped {
                        stop_in_tx(tx, t.clone(), "ServiceSchedulerInitiated", &reason)?;
                        stopped.push(t);
                    }
                }
                Ok(stopped)
            })
            .await?;
        Ok(stopped)
    }
}
