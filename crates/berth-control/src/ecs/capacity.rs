//! The per-cluster capacity view placement reads: every registered container instance as a
//! placement [`Candidate`] (remaining CPU and memory, reserved ports, task counts per group),
//! kept in step with the store by a [`Watcher`] so RunTask and the service scheduler plan
//! without reading or decoding a cluster's instance and task records.
//!
//! A cluster's view is built inside a write job the first time placement needs it, then updated
//! from every instance and task record change as each write job succeeds, so it is what the
//! store holds at the writer's current point plus the *reservations* of plans whose tasks are
//! being written. Planning happens on the caller's thread under the view's lock (concurrent
//! plans see each other's reservations, so instances are never over-committed); the write job
//! only checks the plan is still valid. When a batch fails to commit the views are dropped and
//! every plan made before is void (an epoch counter), so nothing is placed on a stale view.

use crate::placement::{Candidate, Fleet};
use crate::records::{all, decode};
use berth_store::{Kind, Tx, Watcher};
use berth_types::Error;
use berth_types::ecs::{ClusterName, ContainerInstance, InstanceStatus, Task, TaskStatus};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Mutex, MutexGuard};

/// What a task holds on its instance (the fields of a task record placement needs), and what
/// ListTasks filters on.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Hold {
    pub container_instance: Option<String>,
    pub last_status: TaskStatus,
    pub cpu: i64,
    pub memory: i64,
    pub tcp_ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
    pub group: String,
    pub family: String,
    pub started_by: Option<String>,
    pub launch_type: String,
    pub desired_stopped: bool,
}

/// What ListTasks filters a task on.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub container_instance: Option<String>,
    pub group: String,
    pub family: String,
    pub started_by: Option<String>,
    pub launch_type: String,
    pub desired_stopped: bool,
}

impl Listed {
    fn of(h: &Hold) -> Listed {
        Listed {
            container_instance: h.container_instance.clone(),
            group: h.group.clone(),
            family: h.family.clone(),
            started_by: h.started_by.clone(),
            launch_type: h.launch_type.clone(),
            desired_stopped: h.desired_stopped,
        }
    }
}

impl Hold {
    fn of(t: &Task) -> Hold {
        Hold {
            container_instance: t.container_instance.clone(),
            last_status: t.last_status,
            cpu: t.cpu,
            memory: t.memory,
            tcp_ports: t.tcp_ports.clone(),
            udp_ports: t.udp_ports.clone(),
            group: t.group.clone(),
            family: t.family.to_string(),
            started_by: t.started_by.clone(),
            launch_type: t.launch_type.clone(),
            desired_stopped: t.desired_stopped,
        }
    }
}

/// What the non-stopped tasks of an instance use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InstanceUsage {
    pub cpu: i64,
    pub memory: i64,
    pub tcp_ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
    pub running: u32,
    pub pending: u32,
    pub groups: BTreeMap<String, u32>,
}

impl InstanceUsage {
    fn add(&mut self, h: &Hold) {
        self.cpu += h.cpu;
        self.memory += h.memory;
        self.tcp_ports.extend(&h.tcp_ports);
        self.udp_ports.extend(&h.udp_ports);
        if h.last_status.is_pending() {
            self.pending += 1;
        } else {
            self.running += 1;
        }
        *self.groups.entry(h.group.clone()).or_default() += 1;
    }

    fn remove(&mut self, h: &Hold) {
        self.cpu -= h.cpu;
        self.memory -= h.memory;
        for (held, ports) in [
            (&mut self.tcp_ports, &h.tcp_ports),
            (&mut self.udp_ports, &h.udp_ports),
        ] {
            for p in ports {
                if let Some(at) = held.iter().position(|x| x == p) {
                    held.swap_remove(at);
                }
            }
        }
        if h.last_status.is_pending() {
            self.pending -= 1;
        } else {
            self.running -= 1;
        }
        if let Some(n) = self.groups.get_mut(&h.group) {
            *n -= 1;
            if *n == 0 {
                self.groups.remove(&h.group);
            }
        }
    }
}

/// Usage per instance id, from the tasks holding resources.
pub(super) fn usage(tasks: &[Task]) -> BTreeMap<String, InstanceUsage> {
    let mut out: BTreeMap<String, InstanceUsage> = BTreeMap::new();
    for t in tasks.iter().filter(|t| t.last_status.holds_resources()) {
        if let Some(i) = &t.container_instance {
            out.entry(i.clone()).or_default().add(&Hold::of(t));
        }
    }
    out
}

fn resource(i: &ContainerInstance, name: &str) -> i64 {
    i.registered_resources
        .iter()
        .find(|r| r.name == name)
        .and_then(|r| r.integer.or(r.long))
        .unwrap_or(0)
}

fn ports<'a>(i: &'a ContainerInstance, name: &'a str) -> impl Iterator<Item = u16> + 'a {
    i.registered_resources
        .iter()
        .filter(move |r| r.name == name)
        .flat_map(|r| r.string_set.iter().filter_map(|p| p.parse().ok()))
}

/// Instance `i` as placement sees it, given what its tasks use.
fn candidate(i: &ContainerInstance, u: Option<&InstanceUsage>) -> Candidate {
    let empty = InstanceUsage::default();
    let u = u.unwrap_or(&empty);
    Candidate {
        id: i.id.clone(),
        attributes: i
            .attributes
            .iter()
            .map(|a| (a.name.clone(), a.value.clone().unwrap_or_default()))
            .collect(),
        active: i.status == InstanceStatus::Active,
        agent_connected: i.agent_connected,
        agent_version: i
            .version_info
            .as_ref()
            .and_then(|v| v.agent_version.clone()),
        ec2_instance_id: Some(i.ec2_instance_id.clone()),
        registered_at: i.registered_at.0,
        remaining_cpu: resource(i, "CPU") - u.cpu,
        remaining_memory: resource(i, "MEMORY") - u.memory,
        reserved_tcp: ports(i, "PORTS")
            .chain(u.tcp_ports.iter().copied())
            .collect(),
        reserved_udp: ports(i, "PORTS_UDP")
            .chain(u.udp_ports.iter().copied())
            .collect(),
        groups: u.groups.clone(),
    }
}

/// One cluster's capacity.
#[derive(Default)]
pub(super) struct View {
    /// Registered (ACTIVE or DRAINING) instances as placement sees them (same order as
    /// `instances`).
    pub fleet: Fleet,
    instances: Vec<ContainerInstance>,
    index: HashMap<String, usize>,
    /// What the tasks holding resources use, per instance id.
    usage: HashMap<String, InstanceUsage>,
    /// Tasks holding resources, by task id.
    holds: HashMap<String, Hold>,
    /// Every stored task (not reservations), by id.
    listed: BTreeMap<String, Listed>,
}

impl View {
    /// The registered instance `id`, as stored and as placement sees it.
    pub fn instance(&self, id: &str) -> Option<(usize, &ContainerInstance)> {
        self.index.get(id).map(|i| (*i, &self.instances[*i]))
    }

    pub fn instance_at(&self, i: usize) -> &ContainerInstance {
        &self.instances[i]
    }

    /// The registered instances.
    pub fn instances(&self) -> &[ContainerInstance] {
        &self.instances
    }

    /// The stored tasks, in id order.
    pub fn listed(&self) -> impl Iterator<Item = (&String, &Listed)> {
        self.listed.iter()
    }

    /// The tasks on instance `id` that are not STOPPED yet (what its agent runs or stops).
    pub fn holding_on(&self, id: &str) -> Vec<String> {
        self.holds
            .iter()
            .filter(|(_, h)| h.container_instance.as_deref() == Some(id))
            .map(|(task, _)| task.clone())
            .collect()
    }

    /// What the tasks holding resources use, per instance id.
    pub fn usage(&self) -> BTreeMap<String, InstanceUsage> {
        self.usage
            .iter()
            .map(|(id, u)| (id.clone(), u.clone()))
            .collect()
    }

    /// Whether what the tasks on instance `id` hold (reservations included) exceeds what it
    /// registered: more CPU or memory, or a host port twice.
    fn overcommitted(&self, id: &str) -> bool {
        let (Some((_, inst)), Some(u)) = (self.instance(id), self.usage.get(id)) else {
            return false;
        };
        let twice = |held: &[u16], own: &mut std::collections::HashSet<u16>| {
            !held.iter().all(|p| own.insert(*p))
        };
        resource(inst, "CPU") < u.cpu
            || resource(inst, "MEMORY") < u.memory
            || twice(&u.tcp_ports, &mut ports(inst, "PORTS").collect())
            || twice(&u.udp_ports, &mut ports(inst, "PORTS_UDP").collect())
    }

    fn refresh(&mut self, id: &str) {
        if let Some(&i) = self.index.get(id) {
            self.fleet
                .set(i, candidate(&self.instances[i], self.usage.get(id)));
        }
    }

    fn put_instance(&mut self, inst: ContainerInstance) {
        let id = inst.id.clone();
        match self.index.get(&id) {
            Some(&i) => self.instances[i] = inst,
            None => {
                self.index.insert(id.clone(), self.instances.len());
                self.fleet.push(Candidate::default());
                self.instances.push(inst);
            }
        }
        self.refresh(&id);
    }

    fn remove_instance(&mut self, id: &str) {
        if let Some(i) = self.index.remove(id) {
            self.fleet.swap_remove(i);
            self.instances.swap_remove(i);
            if let Some(moved) = self.instances.get(i) {
                self.index.insert(moved.id.clone(), i);
            }
        }
    }

    fn put_task(&mut self, task_id: &str, hold: Option<Hold>) {
        if let Some(old) = self.holds.remove(task_id)
            && let Some(i) = &old.container_instance
        {
            if let Some(u) = self.usage.get_mut(i) {
                u.remove(&old);
            }
            self.refresh(i);
        }
        if let Some(h) = hold.filter(|h| h.last_status.holds_resources())
            && let Some(i) = h.container_instance.clone()
        {
            self.usage.entry(i.clone()).or_default().add(&h);
            self.holds.insert(task_id.to_string(), h);
            self.refresh(&i);
        }
    }

    /// A task record as stored (`None`: deleted).
    fn stored_task(&mut self, task_id: &str, hold: Option<Hold>) {
        match &hold {
            Some(h) => self.listed.insert(task_id.to_string(), Listed::of(h)),
            None => self.listed.remove(task_id),
        };
        self.put_task(task_id, hold);
    }

    fn load(tx: &Tx<'_>, cluster: &ClusterName) -> Result<View, Error> {
        let prefix = format!("{cluster}\n");
        let mut view = View::default();
        for (key, hold) in all::<Hold>(tx, Kind::Task, &prefix)? {
            view.stored_task(task_id(&key), Some(hold));
        }
        for (_, inst) in all::<ContainerInstance>(tx, Kind::ContainerInstance, &prefix)? {
            if inst.status.is_registered() {
                view.put_instance(inst);
            }
        }
        Ok(view)
    }
}

fn task_id(key: &str) -> &str {
    key.split_once('\n').map_or(key, |(_, id)| id)
}

/// What a plan reserved on: the views' epoch, and the instances already over-committed with
/// its tasks (a StartTask onto named instances may ask for that; a plan never does).
pub struct Reserved {
    epoch: u64,
    over: Vec<String>,
}

/// The views of the clusters placement has looked at.
#[derive(Default)]
pub(super) struct Capacity {
    views: Mutex<Views>,
    /// Changes the writer delivered that the views have not applied yet: the writer only
    /// queues them (it never waits for a plan); whoever takes `views` next applies them.
    inbox: Mutex<Vec<(Kind, String, Option<String>)>>,
    /// Bumped whenever the store drops what the views were built on: plans made before are void.
    epoch: AtomicU64,
}

#[derive(Default)]
struct Views {
    /// The epoch the views were built in.
    epoch: u64,
    clusters: HashMap<String, View>,
}

impl Capacity {
    /// The views, with every delivered change applied.
    fn views(&self) -> MutexGuard<'_, Views> {
        let mut views = self.views.lock().expect("capacity lock");
        let epoch = self.epoch.load(AtomicOrdering::Acquire);
        let changes = std::mem::take(&mut *self.inbox.lock().expect("inbox lock"));
        if views.epoch != epoch {
            views.clusters.clear();
            views.epoch = epoch;
            return views;
        }
        for (kind, key, doc) in changes {
            if views.apply(kind, &key, doc.as_deref()).is_err() {
                // Unreadable: drop the views; the next placement rebuilds them from the store.
                views.clusters.clear();
                self.epoch.fetch_add(1, AtomicOrdering::AcqRel);
                views.epoch = self.epoch.load(AtomicOrdering::Acquire);
                break;
            }
        }
        views
    }

    /// Builds `cluster`'s view from the store unless it exists. Call it inside a write job, so
    /// the view starts from the writer's state and every later change reaches it.
    pub fn load(&self, tx: &Tx<'_>, cluster: &ClusterName) -> Result<(), Error> {
        let mut views = self.views();
        if !views.clusters.contains_key(cluster.as_str()) {
            let view = View::load(tx, cluster)?;
            views.clusters.insert(cluster.to_string(), view);
        }
        Ok(())
    }

    /// Plans with `f` on `cluster`'s view and reserves what the tasks it returns hold, so
    /// concurrent plans see them before they are written. `None` if the view is not loaded.
    /// The caller writes the tasks (checking [`Capacity::still_valid`] in the write job) or
    /// [`Capacity::release`]s them.
    pub fn reserve<T>(
        &self,
        cluster: &ClusterName,
        f: impl FnOnce(&View) -> (Vec<Task>, T),
    ) -> Option<(Reserved, (Vec<Task>, T))> {
        let mut views = self.views();
        let epoch = views.epoch;
        let view = views.clusters.get_mut(cluster.as_str())?;
        let (tasks, rest) = f(view);
        for t in &tasks {
            view.put_task(&t.id, Some(Hold::of(t)));
        }
        let mut over: Vec<String> = tasks
            .iter()
            .filter_map(|t| t.container_instance.clone())
            .filter(|i| view.overcommitted(i))
            .collect();
        over.dedup();
        Some((Reserved { epoch, over }, (tasks, rest)))
    }

    /// Whether tasks reserved at `epoch` may still be written: the store did not drop what the
    /// views were built on since, their instances are still registered, and no instance is
    /// over-committed now that the view holds every batch committed before this job — those
    /// of other servers sharing the database too, which the plan may not have seen. Call it
    /// inside the write job (it reads the instances' status there, never waiting for a plan).
    pub fn still_valid(
        &self,
        tx: &Tx<'_>,
        reserved: &Reserved,
        cluster: &ClusterName,
        tasks: &[Task],
    ) -> Result<bool, Error> {
        let epoch = reserved.epoch;
        if self.epoch.load(AtomicOrdering::Acquire) != epoch {
            return Ok(false);
        }
        let mut checked: Vec<&str> = Vec::new();
        for i in tasks.iter().filter_map(|t| t.container_instance.as_deref()) {
            if checked.contains(&i) {
                continue;
            }
            let registered = tx
                .get(Kind::ContainerInstance, &format!("{cluster}\n{i}"))?
                .and_then(|r| r.status)
                .is_some_and(|s| s != InstanceStatus::Inactive.as_str());
            if !registered {
                return Ok(false);
            }
            checked.push(i);
        }
        let views = self.views();
        if views.epoch != epoch {
            return Ok(false);
        }
        let Some(view) = views.clusters.get(cluster.as_str()) else {
            return Ok(false);
        };
        Ok(!checked
            .iter()
            .any(|i| view.overcommitted(i) && !reserved.over.iter().any(|o| o == i)))
    }

    /// Reads `cluster`'s view (`None` if it is not loaded).
    pub fn read<T>(&self, cluster: &ClusterName, f: impl FnOnce(&View) -> T) -> Option<T> {
        self.views().clusters.get(cluster.as_str()).map(f)
    }

    /// Drops the reservations of tasks that were not written.
    pub fn release(&self, cluster: &ClusterName, task_ids: &[String]) {
        let mut views = self.views();
        if let Some(view) = views.clusters.get_mut(cluster.as_str()) {
            for id in task_ids {
                view.put_task(id, None);
            }
        }
    }
}

impl Views {
    fn apply(&mut self, kind: Kind, key: &str, doc: Option<&str>) -> Result<(), Error> {
        let Some((cluster, id)) = key.split_once('\n') else {
            return Ok(());
        };
        let Some(view) = self.clusters.get_mut(cluster) else {
            return Ok(());
        };
        match kind {
            Kind::ContainerInstance => match doc.map(|d| decode::<ContainerInstance>(d, key)) {
                Some(Ok(inst)) if inst.status.is_registered() => view.put_instance(inst),
                Some(Err(e)) => return Err(e),
                _ => view.remove_instance(id),
            },
            _ => view.stored_task(id, doc.map(|d| decode::<Hold>(d, key)).transpose()?),
        }
        Ok(())
    }
}

impl Watcher for Capacity {
    fn watches(&self, kind: Kind) -> bool {
        matches!(kind, Kind::ContainerInstance | Kind::Task)
    }

    fn changed(&self, kind: Kind, key: &str, doc: Option<&str>) {
        self.inbox.lock().expect("inbox lock").push((
            kind,
            key.to_string(),
            doc.map(str::to_string),
        ));
    }

    fn reset(&self) {
        self.epoch.fetch_add(1, AtomicOrdering::AcqRel);
    }
}
