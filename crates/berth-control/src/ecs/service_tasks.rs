//! The tasks of every service, as the scheduler reads them, kept in step with the store by a
//! [`Watcher`] so a scheduler pass costs a copy of the service's entries instead of reading and
//! decoding every task record of its cluster.
//!
//! A cluster's entries are built inside a write job (so they start from the writer's state and
//! every later change reaches them) and updated as each write job succeeds; a batch that fails
//! to commit drops them all, and the next pass rebuilds them.

use crate::records::{all, decode};
use berth_store::{Kind, Tx, Watcher};
use berth_types::ecs::{ClusterName, TaskStatus, TaskTarget, task_health};
use berth_types::{Error, Timestamp};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// What the scheduler needs of a service task.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ServiceTask {
    pub id: String,
    pub group: String,
    pub started_by: Option<String>,
    pub container_instance: Option<String>,
    pub last_status: TaskStatus,
    pub desired_stopped: bool,
    pub created_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub stopped_at: Option<Timestamp>,
    pub stop_code: Option<String>,
    /// awsvpc: the task's own address.
    #[serde(default)]
    pub private_ipv4_address: Option<String>,
    /// Being stopped once its load balancer targets have drained, for this reason.
    #[serde(default)]
    pub drain_reason: Option<String>,
    /// The load balancer targets recorded for it.
    #[serde(default)]
    pub targets: Vec<TaskTarget>,
    pub containers: Vec<ServiceContainer>,
}

/// What the scheduler needs of a service task's container.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct ServiceContainer {
    pub name: String,
    essential: bool,
    health_status: Option<String>,
    /// `{containerPort, hostPort, …}` as the agent reported them.
    pub network_bindings: Vec<berth_types::shapes::ecs::NetworkBinding>,
}

impl ServiceTask {
    /// The task's `healthStatus` (see [`task_health`]).
    pub fn health_status(&self) -> &'static str {
        task_health(
            self.containers
                .iter()
                .map(|c| (c.essential, c.health_status.as_deref())),
        )
    }

    /// Whether an essential container has a health check.
    pub fn health_checked(&self) -> bool {
        self.containers
            .iter()
            .any(|c| c.essential && c.health_status.is_some())
    }
}

/// Per cluster, per service name, the service's tasks by id.
type Clusters = HashMap<String, HashMap<String, BTreeMap<String, ServiceTask>>>;

#[derive(Default)]
pub(super) struct ServiceTasks {
    clusters: Mutex<Clusters>,
}

impl ServiceTasks {
    /// Builds `cluster`'s entries from the store unless they exist. Call it inside a write job.
    pub fn load(&self, tx: &Tx<'_>, cluster: &ClusterName) -> Result<(), Error> {
        let mut clusters = self.clusters.lock().expect("service tasks lock");
        if clusters.contains_key(cluster.as_str()) {
            return Ok(());
        }
        let mut services: HashMap<String, BTreeMap<String, ServiceTask>> = HashMap::new();
        for (_, t) in all::<ServiceTask>(tx, Kind::Task, &format!("{cluster}\n"))? {
            if let Some(name) = t.group.strip_prefix("service:") {
                services
                    .entry(name.to_string())
                    .or_default()
                    .insert(t.id.clone(), t);
            }
        }
        clusters.insert(cluster.to_string(), services);
        Ok(())
    }

    /// The tasks of service `name`, or `None` if the cluster's entries are not loaded.
    pub fn of(&self, cluster: &ClusterName, name: &str) -> Option<Vec<ServiceTask>> {
        let clusters = self.clusters.lock().expect("service tasks lock");
        let services = clusters.get(cluster.as_str())?;
        Some(
            services
                .get(name)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default(),
        )
    }

    /// Drops entries the scheduler no longer needs (stopped tasks of finished deployments);
    /// their records stay in the store.
    pub fn forget(&self, cluster: &ClusterName, name: &str, ids: &[String]) {
        let mut clusters = self.clusters.lock().expect("service tasks lock");
        if let Some(tasks) = clusters
            .get_mut(cluster.as_str())
            .and_then(|s| s.get_mut(name))
        {
            for id in ids {
                tasks.remove(id);
            }
        }
    }
}

impl Watcher for ServiceTasks {
    fn watches(&self, kind: Kind) -> bool {
        kind == Kind::Task
    }

    fn changed(&self, _: Kind, key: &str, doc: Option<&str>) {
        let Some((cluster, id)) = key.split_once('\n') else {
            return;
        };
        let mut clusters = self.clusters.lock().expect("service tasks lock");
        let Some(services) = clusters.get_mut(cluster) else {
            return;
        };
        match doc.map(|d| decode::<ServiceTask>(d, key)) {
            Some(Ok(t)) => {
                if let Some(name) = t.group.strip_prefix("service:") {
                    services
                        .entry(name.to_string())
                        .or_default()
                        .insert(t.id.clone(), t);
                }
            }
            Some(Err(_)) => {
                // Unreadable: forget the cluster; the next pass rebuilds it from the store.
                clusters.remove(cluster);
            }
            None => {
                for tasks in services.values_mut() {
                    tasks.remove(id);
                }
            }
        }
    }

    fn reset(&self) {
        self.clusters.lock().expect("service tasks lock").clear();
    }
}
