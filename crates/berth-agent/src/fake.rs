//! An in-memory [`Runtime`] for the agent's unit tests: containers are records, time is
//! tokio's (so tests pause it), and the test scripts what the "engine" does — which images
//! exist, how long a container takes to honour SIGTERM, which containers exit and how.

use crate::runtime::{
    Container, ContainerState, CreateContainer, LogMessage, LogStream, RegistryAuth, Runtime,
    RuntimeError, labels,
};
use berth_node_api::agent::{HealthStatus, NetworkBinding};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct FakeContainer {
    pub spec: CreateContainer,
    pub running: bool,
    pub started: bool,
    pub exit_code: Option<i64>,
    pub health: Option<HealthStatus>,
    /// What it printed: `(time ns, stderr, text)`.
    pub output: Vec<(i64, bool, String)>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    containers: BTreeMap<String, FakeContainer>,
    images: BTreeSet<String>,
    /// Images whose containers exit on SIGTERM after this long (else they ignore it).
    graceful: HashMap<String, Duration>,
    /// Images that fail to pull.
    unpullable: BTreeSet<String>,
    networks: HashMap<String, Option<Ipv4Addr>>,
    /// What was done, in order: `create NAME`, `start NAME`, `stop NAME`, `remove NAME`,
    /// `pull IMAGE`.
    log: Vec<String>,
}

/// The fake engine. Clones share their state.
#[derive(Clone, Default)]
pub struct Fake(Arc<Mutex<State>>);

impl Fake {
    /// An engine with a `bridge` network whose host address is 127.0.0.1.
    pub fn new() -> Fake {
        let f = Fake::default();
        f.0.lock()
            .unwrap()
            .networks
            .insert("bridge".into(), Some(Ipv4Addr::LOCALHOST));
        f
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    pub fn add_image(&self, image: &str) {
        self.state().images.insert(image.into());
    }

    pub fn unpullable(&self, image: &str) {
        self.state().unpullable.insert(image.into());
    }

    /// Containers of `image` exit `after` a SIGTERM (by default they ignore it).
    pub fn graceful(&self, image: &str, after: Duration) {
        self.state().graceful.insert(image.into(), after);
    }

    pub fn set_network(&self, name: &str, address: Option<Ipv4Addr>) {
        self.state().networks.insert(name.into(), address);
    }

    /// The container with ECS name `name` of task `task` exits with `code`.
    pub fn exit(&self, task: &str, name: &str, code: i64) {
        let mut s = self.state();
        for c in s.containers.values_mut() {
            if c.spec.labels.get(labels::TASK_ARN).map(String::as_str) == Some(task)
                && c.spec
                    .labels
                    .get(labels::CONTAINER_NAME)
                    .map(String::as_str)
                    == Some(name)
                && c.running
            {
                c.running = false;
                c.exit_code = Some(code);
            }
        }
    }

    pub fn set_health(&self, task: &str, name: &str, health: HealthStatus) {
        let mut s = self.state();
        for c in s.containers.values_mut() {
            if c.spec.labels.get(labels::TASK_ARN).map(String::as_str) == Some(task)
                && c.spec
                    .labels
                    .get(labels::CONTAINER_NAME)
                    .map(String::as_str)
                    == Some(name)
            {
                c.health = Some(health);
            }
        }
    }

    /// Adds a container as a previous agent would have left it (for adoption tests).
    pub fn existing(&self, spec: CreateContainer, running: bool) -> String {
        let mut s = self.state();
        s.next_id += 1;
        let id = format!("c{:04}", s.next_id);
        s.containers.insert(
            id.clone(),
            FakeContainer {
                spec,
                running,
                started: running,
                exit_code: None,
                health: None,
                output: Vec::new(),
            },
        );
        id
    }

    /// Container `id` prints `text` (a line with its `\n`, or part of one) at `time_ns`.
    pub fn print(&self, id: &str, time_ns: i64, text: &str) {
        if let Some(c) = self.state().containers.get_mut(id) {
            c.output.push((time_ns, false, text.to_string()));
        }
    }

    /// Container `id` exits with `code`.
    pub fn exit_container(&self, id: &str, code: i64) {
        if let Some(c) = self.state().containers.get_mut(id) {
            c.running = false;
            c.exit_code = Some(code);
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.state().log.clone()
    }

    pub fn containers_of(&self, task: &str) -> Vec<FakeContainer> {
        self.state()
            .containers
            .values()
            .filter(|c| c.spec.labels.get(labels::TASK_ARN).map(String::as_str) == Some(task))
            .cloned()
            .collect()
    }

    pub fn count(&self) -> usize {
        self.state().containers.len()
    }
}

fn name_of(c: &FakeContainer) -> String {
    c.spec
        .labels
        .get(labels::CONTAINER_NAME)
        .cloned()
        .unwrap_or_default()
}

impl Runtime for Fake {
    async fn version(&self) -> Result<String, RuntimeError> {
        Ok("fake".into())
    }

    async fn containers(&self, instance: &str) -> Result<Vec<Container>, RuntimeError> {
        Ok(self
            .state()
            .containers
            .iter()
            .filter(|(_, c)| {
                c.spec.labels.get(labels::INSTANCE).map(String::as_str) == Some(instance)
            })
            .filter_map(|(id, c)| {
                let (task_arn, name) =
                    labels::task_and_container(|k| c.spec.labels.get(k).cloned())?;
                Some(Container {
                    id: id.clone(),
                    task_arn,
                    name,
                    running: c.running,
                    created: !c.started,
                })
            })
            .collect())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError> {
        let s = self.state();
        let Some(c) = s.containers.get(id) else {
            return Ok(None);
        };
        let address = s
            .networks
            .get(&c.spec.network_mode)
            .and_then(|a| a.map(|a| Ipv4Addr::from(u32::from(a) + 1 + id.len() as u32)));
        Ok(Some(ContainerState {
            id: id.into(),
            docker_name: c.spec.name.clone(),
            image: c.spec.image.clone(),
            image_id: format!("sha256:{}", c.spec.image.len()),
            labels: c.spec.labels.clone(),
            running: c.running,
            started_at: c.started.then(|| "2026-12-01T00:00:00Z".into()),
            created_at: Some("2026-12-01T00:00:00Z".into()),
            exit_code: c.exit_code,
            oom_killed: false,
            health: c.health,
            network_mode: c.spec.network_mode.clone(),
            networks: BTreeMap::from([(c.spec.network_mode.clone(), address)]),
            ports: if c.running {
                c.spec
                    .ports
                    .iter()
                    .map(|p| NetworkBinding {
                        bind_ip: "0.0.0.0".into(),
                        container_port: p.container_port,
                        host_port: if p.host_port == 0 {
                            40000 + p.container_port
                        } else {
                            p.host_port
                        },
                        protocol: p.protocol,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            cpu_shares: c.spec.cpu_shares,
            memory: c.spec.memory.unwrap_or(0),
        }))
    }

    async fn has_image(&self, image: &str) -> Result<bool, RuntimeError> {
        Ok(self.state().images.contains(image))
    }

    async fn pull(&self, image: &str, _: Option<RegistryAuth>) -> Result<(), RuntimeError> {
        let mut s = self.state();
        s.log.push(format!("pull {image}"));
        if s.unpullable.contains(image) {
            return Err(RuntimeError::Engine(format!(
                "pull access denied for {image}, repository does not exist"
            )));
        }
        s.images.insert(image.into());
        Ok(())
    }

    async fn create(&self, spec: CreateContainer) -> Result<String, RuntimeError> {
        let mut s = self.state();
        if !s.images.contains(&spec.image) {
            return Err(RuntimeError::NotFound(format!(
                "No such image: {}",
                spec.image
            )));
        }
        if s.containers.values().any(|c| c.spec.name == spec.name) {
            return Err(RuntimeError::Engine(format!(
                "Conflict. The container name \"/{}\" is already in use",
                spec.name
            )));
        }
        s.next_id += 1;
        let id = format!("c{:04}", s.next_id);
        let name = spec
            .labels
            .get(labels::CONTAINER_NAME)
            .cloned()
            .unwrap_or_default();
        s.log.push(format!("create {name}"));
        s.containers.insert(
            id.clone(),
            FakeContainer {
                spec,
                running: false,
                started: false,
                exit_code: None,
                health: None,
                output: Vec::new(),
            },
        );
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state();
        let c = s
            .containers
            .get_mut(id)
            .ok_or_else(|| RuntimeError::NotFound(id.into()))?;
        if !c.running {
            c.running = true;
            c.started = true;
            c.exit_code = None;
            if c.spec.health_check.is_some() {
                c.health = Some(HealthStatus::Unknown);
            }
            let name = name_of(c);
            s.log.push(format!("start {name}"));
        }
        Ok(())
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let (delay, name) = {
            let mut s = self.state();
            let Some(c) = s.containers.get(id) else {
                return Ok(());
            };
            if !c.running {
                return Ok(());
            }
            let graceful = s.graceful.get(&c.spec.image).copied();
            let name = name_of(c);
            s.log.push(format!("stop {name}"));
            (graceful.filter(|d| *d < timeout), name)
        };
        tokio::time::sleep(delay.unwrap_or(timeout)).await;
        let mut s = self.state();
        if let Some(c) = s.containers.get_mut(id)
            && c.running
        {
            c.running = false;
            c.exit_code = Some(if delay.is_some() { 0 } else { 137 });
        }
        s.log.push(format!("stopped {name}"));
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let mut s = self.state();
        if let Some(c) = s.containers.remove(id) {
            let name = name_of(&c);
            s.log.push(format!("remove {name}"));
        }
        Ok(())
    }

    async fn ensure_network(&self, name: &str) -> Result<String, RuntimeError> {
        self.state()
            .networks
            .entry(name.into())
            .or_insert(Some(Ipv4Addr::LOCALHOST));
        Ok(name.into())
    }

    async fn host_address(&self, network: &str) -> Result<Option<Ipv4Addr>, RuntimeError> {
        Ok(self.state().networks.get(network).copied().flatten())
    }

    /// Follows by polling every 10 ms (of tokio's time) until the container stops.
    fn logs(&self, id: &str, since: i64, follow: bool) -> LogStream {
        let (fake, id) = (self.clone(), id.to_string());
        let since_ns = since.saturating_mul(1_000_000_000);
        let stream = futures_util::stream::unfold(0usize, move |at| {
            let (fake, id) = (fake.clone(), id.clone());
            async move {
                loop {
                    let (next, running) = {
                        let s = fake.state();
                        let c = s.containers.get(&id)?;
                        let next = c
                            .output
                            .iter()
                            .enumerate()
                            .skip(at)
                            .find(|(_, o)| o.0 >= since_ns);
                        (next.map(|(i, o)| (i, o.clone())), c.running)
                    };
                    match next {
                        Some((i, (time_ns, stderr, text))) => {
                            let m = LogMessage {
                                time_ns,
                                stderr,
                                text: text.into_bytes(),
                            };
                            return Some((Ok(m), i + 1));
                        }
                        None if follow && running => {
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                        None => return None,
                    }
                }
            }
        });
        Box::pin(stream)
    }

    async fn stats(&self, id: &str) -> Result<Option<serde_json::Value>, RuntimeError> {
        Ok(self
            .state()
            .containers
            .contains_key(id)
            .then(|| serde_json::json!({"memory_stats": {"usage": 1}})))
    }
}
