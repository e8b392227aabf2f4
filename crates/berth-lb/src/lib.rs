//! `berth-lb`: the load balancer's data plane (DESIGN.md §4.5). The control plane's listeners,
//! rules and target groups are compiled into a [`Snapshot`] swapped atomically behind an
//! `ArcSwap` (the request path takes no lock); each listener binds its port; active health
//! checks run per target and their transitions are reported back through a [`HealthSink`].

mod h1;
pub mod health;
pub mod metrics;
mod proxy;
mod routing;
pub mod rules;

use arc_swap::ArcSwap;
use berth_node_api::lb;
use rules::Condition;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// Health states a target moves through (spec A.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    Initial = 0,
    Healthy = 1,
    Unhealthy = 2,
}

/// A target's live state, shared by every snapshot that contains it.
#[derive(Debug, Default)]
pub struct TargetState {
    health: AtomicU8,
    /// Requests in flight (least outstanding requests).
    pub outstanding: AtomicUsize,
    /// A request to it failed without a response: avoided until then (ms since the epoch)
    /// unless nothing else is left — passive failure detection between health checks.
    pub avoid_until: std::sync::atomic::AtomicI64,
    /// When it last became healthy (ms since the epoch): slow start ramps up from there.
    pub healthy_since: std::sync::atomic::AtomicI64,
}

impl TargetState {
    pub fn health(&self) -> Health {
        match self.health.load(Ordering::Relaxed) {
            1 => Health::Healthy,
            2 => Health::Unhealthy,
            _ => Health::Initial,
        }
    }

    fn set(&self, h: Health) {
        if h == Health::Healthy && self.health() != Health::Healthy {
            self.healthy_since
                .store(routing::now_ms(), Ordering::Relaxed);
        }
        self.health.store(h as u8, Ordering::Relaxed);
    }
}

/// A target as the request path sees it.
#[derive(Debug, Clone)]
pub struct TargetConf {
    pub id: String,
    pub port: i64,
    pub addr: SocketAddr,
    /// Deregistered: no new requests.
    pub draining: bool,
    pub state: Arc<TargetState>,
}

/// `round_robin` or `least_outstanding_requests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    LeastOutstanding,
}

/// A target group's health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthConf {
    pub path: String,
    /// A fixed port, or `None` for each target's own port.
    pub port: Option<u16>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Status codes that pass: single codes and inclusive ranges.
    pub matcher: Vec<(u16, u16)>,
}

/// A target group as the request path sees it.
#[derive(Debug)]
pub struct GroupConf {
    pub arn: String,
    pub targets: Vec<TargetConf>,
    pub algorithm: Algorithm,
    pub health: HealthConf,
    /// `stickiness.enabled` with `lb_cookie`: how long the `AWSALB` cookie binds a client to
    /// its target.
    pub sticky: Option<Duration>,
    /// `slow_start.duration_seconds`: how long a target that became healthy takes to get its
    /// full share of requests (round robin only).
    pub slow_start: Option<Duration>,
    /// Round-robin position.
    next: AtomicUsize,
}

#[derive(Debug, Clone)]
pub struct RuleConf {
    pub conditions: Vec<Condition>,
    /// What the rule does (the node protocol's action, used as is).
    pub action: lb::Action,
}

/// A listener: rules by priority, the default last.
#[derive(Debug, Clone)]
pub struct ListenerConf {
    pub port: u16,
    pub rules: Vec<RuleConf>,
    /// The load balancer's `idle_timeout.timeout_seconds`: how long a target may stay silent.
    pub idle_timeout: Duration,
    /// Its load balancer's counters, and those of the groups its rules forward to.
    pub counters: Arc<metrics::LbCounters>,
    pub group_counters: HashMap<String, Arc<metrics::GroupCounters>>,
}

/// Everything the request path needs, swapped as a whole.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub listeners: BTreeMap<u16, ListenerConf>,
    pub groups: HashMap<String, Arc<GroupConf>>,
    /// Every counter, kept from one snapshot to the next.
    pub counters: Arc<metrics::Counters>,
}

/// Receives health transitions: `(target group ARN, target id, port, state, reason)`.
pub type HealthSink = Arc<dyn Fn(&str, &str, i64, Health, Option<&'static str>) + Send + Sync>;

/// Resolves an `instance` target's id to its address.
pub type InstanceAddress<'a> = &'a (dyn Fn(&str) -> Option<IpAddr> + Send + Sync);

impl Snapshot {
    /// Compiles the control plane's configuration, keeping the live state of targets that are
    /// already known (`previous`).
    pub fn compile(
        config: &lb::Config,
        instance_address: InstanceAddress<'_>,
        previous: &Snapshot,
    ) -> Snapshot {
        let mut out = Snapshot {
            counters: previous.counters.clone(),
            ..Default::default()
        };
        for tg in &config.target_groups {
            let old = previous.groups.get(&tg.arn);
            let targets = tg
                .targets
                .iter()
                .filter_map(|t| {
                    let ip = t.ip.or_else(|| instance_address(&t.id))?;
                    let port = i64::from(t.port);
                    let state = old
                        .and_then(|g| g.targets.iter().find(|x| x.id == t.id && x.port == port))
                        .map(|x| x.state.clone())
                        .unwrap_or_default();
                    Some(TargetConf {
                        id: t.id.clone(),
                        port,
                        addr: SocketAddr::new(ip, t.port),
                        draining: t.draining,
                        state,
                    })
                })
                .collect();
            let h = &tg.health_check;
            let seconds = |n: u32| Duration::from_secs(n.max(1).into());
            out.groups.insert(
                tg.arn.clone(),
                Arc::new(GroupConf {
                    arn: tg.arn.clone(),
                    targets,
                    algorithm: match tg.algorithm {
                        lb::Algorithm::RoundRobin => Algorithm::RoundRobin,
                        lb::Algorithm::LeastOutstandingRequests => Algorithm::LeastOutstanding,
                    },
                    sticky: tg.stickiness_seconds.map(Duration::from_secs),
                    slow_start: tg
                        .slow_start_seconds
                        .filter(|s| *s > 0)
                        .map(Duration::from_secs),
                    health: HealthConf {
                        path: h.path.clone(),
                        port: h.port,
                        interval: seconds(h.interval_seconds),
                        timeout: seconds(h.timeout_seconds),
                        healthy_threshold: h.healthy_threshold.max(1),
                        unhealthy_threshold: h.unhealthy_threshold.max(1),
                        matcher: h.matcher.clone(),
                    },
                    // A new configuration continues the rotation where the old one was.
                    next: AtomicUsize::new(old.map_or(0, |g| g.next.load(Ordering::Relaxed))),
                }),
            );
        }
        for l in &config.listeners {
            let rules = l
                .rules
                .iter()
                .map(|r| RuleConf {
                    conditions: r.conditions.iter().map(Condition::compile).collect(),
                    action: r.action.clone(),
                })
                .collect();
            let group_counters = l
                .rules
                .iter()
                .filter_map(|r| match &r.action {
                    lb::Action::Forward { groups } => Some(groups),
                    _ => None,
                })
                .flatten()
                .map(|g| {
                    let c = out.counters.group(&l.load_balancer, &g.target_group_arn);
                    (g.target_group_arn.clone(), c)
                })
                .collect();
            out.listeners.insert(
                l.port,
                ListenerConf {
                    port: l.port,
                    rules,
                    idle_timeout: Duration::from_secs(l.idle_timeout_seconds),
                    counters: out.counters.load_balancer(&l.load_balancer),
                    group_counters,
                },
            );
        }
        out
    }

    /// The target groups some listener forwards to (their targets are health checked).
    fn groups_in_use(&self) -> Vec<Arc<GroupConf>> {
        let mut arns: Vec<&String> = self
            .listeners
            .values()
            .flat_map(|l| &l.rules)
            .filter_map(|r| match &r.action {
                lb::Action::Forward { groups } => Some(groups.iter().map(|g| &g.target_group_arn)),
                _ => None,
            })
            .flatten()
            .collect();
        arns.sort();
        arns.dedup();
        arns.into_iter()
            .filter_map(|a| self.groups.get(a).cloned())
            .collect()
    }
}

/// The running data plane: the current snapshot, a task per bound listener port and per
/// health-checked target.
pub struct DataPlane {
    snapshot: Arc<ArcSwap<Snapshot>>,
    bind: IpAddr,
    sink: HealthSink,
    /// One single-threaded runtime per core: every listener port is bound once per worker
    /// (`SO_REUSEPORT`), so a connection, its requests and its pooled target connections stay
    /// on one thread (no cross-thread wake-ups on the request path).
    workers: Vec<Worker>,
    tasks: Mutex<Tasks>,
}

#[derive(Default)]
struct Tasks {
    /// Per port, the accept loop on each worker.
    listeners: HashMap<u16, Vec<JoinHandle<()>>>,
    checks: HashMap<(String, String, i64), (HealthConf, JoinHandle<()>)>,
}

/// Starts `n` worker threads, each driving a current-thread runtime until the process ends.
fn start_workers(n: usize) -> Vec<Worker> {
    (0..n)
        .map(|i| {
            let (tx, rx) = std::sync::mpsc::channel();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("berth-lb-{i}"))
                .spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .expect("a load balancer runtime");
                    tx.send(rt.handle().clone()).expect("handle");
                    // The thread's own work: closing its pooled target connections once idle,
                    // until the data plane is dropped (then its runtime and connections go).
                    rt.block_on(async {
                        tokio::select! {
                            () = h1::tend_pool() => {}
                            _ = stopped => {}
                        }
                    });
                })
                .expect("a load balancer thread");
            Worker {
                handle: rx.recv().expect("a worker handle"),
                _stop: stop,
            }
        })
        .collect()
}

/// A worker thread's runtime; dropping it ends the thread.
struct Worker {
    handle: tokio::runtime::Handle,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// Binds `addr` with `SO_REUSEPORT` (every worker binds the same port).
fn bind_shared(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_reuseport(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

impl DataPlane {
    /// A data plane binding listeners on `bind` (e.g. 127.0.0.1).
    pub fn new(bind: IpAddr, sink: HealthSink) -> Arc<DataPlane> {
        Arc::new(DataPlane {
            snapshot: Arc::new(ArcSwap::from_pointee(Snapshot::default())),
            bind,
            sink,
            workers: start_workers(
                std::thread::available_parallelism()
                    .map_or(2, |n| n.get())
                    .clamp(1, 8),
            ),
            tasks: Mutex::new(Tasks::default()),
        })
    }

    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    /// What the listeners served since the last call (the counters start again from zero),
    /// with each group's healthy and unhealthy registered targets.
    pub fn take_metrics(&self) -> lb::MetricsReport {
        let snap = self.snapshot();
        snap.counters.take(&|arn| {
            snap.groups.get(arn).map_or((0, 0), |g| {
                let live = g.targets.iter().filter(|t| !t.draining);
                live.fold((0, 0), |(h, u), t| match t.state.health() {
                    Health::Healthy => (h + 1, u),
                    _ => (h, u + 1),
                })
            })
        })
    }

    /// Compiles and applies the control plane's configuration: swaps the snapshot, binds new
    /// listener ports, stops removed ones, and starts or stops health checks. Returns the
    /// ports it could not bind.
    pub async fn apply(
        self: &Arc<Self>,
        config: &lb::Config,
        instance_address: InstanceAddress<'_>,
    ) -> Vec<(u16, String)> {
        let next = Arc::new(Snapshot::compile(
            config,
            instance_address,
            &self.snapshot.load(),
        ));
        self.snapshot.store(next.clone());
        let mut failed = Vec::new();
        let wanted: Vec<u16> = next.listeners.keys().copied().collect();
        let to_bind: Vec<u16> = {
            let mut tasks = self.tasks.lock().expect("tasks");
            tasks.listeners.retain(|port, per_worker| {
                let keep = wanted.contains(port);
                if !keep {
                    per_worker.iter().for_each(JoinHandle::abort);
                }
                keep
            });
            wanted
                .iter()
                .copied()
                .filter(|p| !tasks.listeners.contains_key(p))
                .collect()
        };
        for port in to_bind {
            // A plain bind first: a port another process holds is refused cleanly (and
            // SO_REUSEPORT sockets of other users never share it).
            let addr = SocketAddr::new(self.bind, port);
            if let Err(e) = std::net::TcpListener::bind(addr) {
                failed.push((port, e.to_string()));
                continue;
            }
            let mut per_worker = Vec::new();
            for worker in self.workers.iter().map(|w| &w.handle) {
                let (bound, snapshot) = (tokio::sync::oneshot::channel(), self.snapshot.clone());
                let (report, outcome) = bound;
                per_worker.push(worker.spawn(async move {
                    match bind_shared(addr) {
                        Ok(socket) => {
                            let _ = report.send(Ok(()));
                            h1::serve(socket, port, snapshot, proxy::client()).await;
                        }
                        Err(e) => {
                            let _ = report.send(Err(e.to_string()));
                        }
                    }
                }));
                if let Ok(Err(e)) = outcome.await {
                    failed.push((port, e));
                }
            }
            self.tasks
                .lock()
                .expect("tasks")
                .listeners
                .insert(port, per_worker);
        }
        self.restart_checks(&next);
        failed
    }

    fn restart_checks(&self, snap: &Snapshot) {
        let mut want: HashMap<(String, String, i64), (HealthConf, TargetConf)> = HashMap::new();
        for g in snap.groups_in_use() {
            for t in g.targets.iter().filter(|t| !t.draining) {
                want.insert(
                    (g.arn.clone(), t.id.clone(), t.port),
                    (g.health.clone(), t.clone()),
                );
            }
        }
        let mut tasks = self.tasks.lock().expect("tasks");
        tasks.checks.retain(|key, (conf, task)| {
            let keep = want.get(key).is_some_and(|(c, _)| c == conf);
            if !keep {
                task.abort();
            }
            keep
        });
        for (key, (conf, target)) in want {
            if tasks.checks.contains_key(&key) {
                continue;
            }
            let task = tokio::spawn(health::check(
                key.0.clone(),
                target,
                conf.clone(),
                self.sink.clone(),
            ));
            tasks.checks.insert(key, (conf, task));
        }
    }

    /// Stops every listener and health check.
    pub fn stop(&self) {
        let mut tasks = self.tasks.lock().expect("tasks");
        for (_, per_worker) in tasks.listeners.drain() {
            per_worker.iter().for_each(JoinHandle::abort);
        }
        for (_, (_, t)) in tasks.checks.drain() {
            t.abort();
        }
    }
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        self.stop();
    }
}
