//! The load balancer's data plane as a node: its configuration is the node protocol's
//! (`berth-node-api::lb`) document, compiled by the control plane — in-process in `berth up`
//! (rebuilt as soon as an ELB record changes), fetched from a server by `berth lb`
//! (`/lb/v1/config`). Either way it is re-read every second (draining deadlines), health
//! transitions are reported back so DescribeTargetHealth shows them, and what the listeners
//! served is reported every minute of CloudWatch's clock (`AWS/ApplicationELB` metrics).

use berth_control::cloudwatch::CloudWatch;
use berth_control::elb::Elb;
use berth_lb::{DataPlane, Health, HealthSink};
use berth_node_api::lb;
use berth_store::{Kind, Store, Watcher};
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Where a load balancer node gets its configuration and reports health.
pub trait Source: Send + Sync + 'static {
    fn config(&self) -> impl Future<Output = Result<lb::Config, String>> + Send;
    fn report(&self, r: lb::HealthReport) -> impl Future<Output = Result<(), String>> + Send;
    fn metrics(&self, r: lb::MetricsReport) -> impl Future<Output = Result<(), String>> + Send;
}

/// The control plane in this process.
struct Local(Elb, CloudWatch);

impl Source for Local {
    async fn config(&self) -> Result<lb::Config, String> {
        self.0.node_config().map_err(|e| e.to_string())
    }
    async fn report(&self, r: lb::HealthReport) -> Result<(), String> {
        self.0.node_health(r).await.map_err(|e| e.to_string())
    }
    async fn metrics(&self, r: lb::MetricsReport) -> Result<(), String> {
        self.1
            .load_balancer_metrics(&r)
            .await
            .map_err(|e| e.to_string())
    }
}

/// A Berth server, over its signed node endpoints.
pub struct Remote(pub berth_agent::control::Control);

impl Source for Remote {
    async fn config(&self) -> Result<lb::Config, String> {
        let v = self
            .0
            .node_call("elasticloadbalancing", lb::CONFIG, &serde_json::json!({}))
            .await
            .map_err(|e| e.to_string())?;
        serde_json::from_value(v).map_err(|e| e.to_string())
    }
    async fn report(&self, r: lb::HealthReport) -> Result<(), String> {
        self.post(lb::HEALTH, r).await
    }
    async fn metrics(&self, r: lb::MetricsReport) -> Result<(), String> {
        self.post(lb::METRICS, r).await
    }
}

impl Remote {
    async fn post(&self, path: &str, body: impl serde::Serialize) -> Result<(), String> {
        let body = serde_json::to_value(body).map_err(|e| e.to_string())?;
        self.0
            .node_call("elasticloadbalancing", path, &body)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Wakes the node once an ELB record change is committed (in-process only).
struct ElbChanges {
    wake: Arc<Notify>,
    changed: std::sync::atomic::AtomicBool,
}

impl Watcher for ElbChanges {
    fn watches(&self, kind: Kind) -> bool {
        matches!(
            kind,
            Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener | Kind::Rule
        )
    }
    fn changed(&self, _: Kind, _: &str, _: Option<&str>) {
        self.changed
            .store(true, std::sync::atomic::Ordering::Release);
    }
    fn reset(&self) {
        self.changed
            .store(true, std::sync::atomic::Ordering::Release);
    }
    fn committed(&self) {
        if self
            .changed
            .swap(false, std::sync::atomic::Ordering::AcqRel)
        {
            self.wake.notify_one();
        }
    }
}

/// Runs the data plane in this process (`berth up`): listeners bind on `bind`; `instance`
/// targets are reached at `instance_ip` (every instance of `berth up` is this machine).
pub fn spawn(
    (elb, cloudwatch): (Elb, CloudWatch),
    store: &Store,
    bind: IpAddr,
    instance_ip: IpAddr,
) -> JoinHandle<()> {
    let changed = Arc::new(Notify::new());
    store.watch(Arc::new(ElbChanges {
        wake: changed.clone(),
        changed: Default::default(),
    }));
    tokio::spawn(run(
        Arc::new(Local(elb, cloudwatch)),
        changed,
        bind,
        instance_ip,
    ))
}

/// One in-process data plane per region (load balancers, their listeners and target groups
/// are each region's own), started as regions appear; listeners bind on `bind`.
pub fn spawn_every_region(state: berth_api::ApiState, bind: IpAddr) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut planes: std::collections::HashMap<String, JoinHandle<()>> = Default::default();
        loop {
            for region in state.regions() {
                planes
                    .entry(region.scope.region.to_string())
                    .or_insert_with(|| {
                        spawn(
                            (region.elb.clone(), region.cloudwatch.clone()),
                            region.elb.store(),
                            bind,
                            IpAddr::from([127, 0, 0, 1]),
                        )
                    });
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    })
}

/// Runs the data plane against `source` until the task is dropped; `changed` wakes it early.
pub async fn run<S: Source>(
    source: Arc<S>,
    changed: Arc<Notify>,
    bind: IpAddr,
    instance_ip: IpAddr,
) {
    let reporter = source.clone();
    let sink: HealthSink = Arc::new(move |group, id, port, health, reason| {
        let Ok(port) = u16::try_from(port) else {
            return;
        };
        let report = lb::HealthReport {
            target_group_arn: group.to_string(),
            id: id.to_string(),
            port,
            state: match health {
                Health::Healthy => lb::TargetHealth::Healthy,
                Health::Unhealthy => lb::TargetHealth::Unhealthy,
                Health::Initial => lb::TargetHealth::Initial,
            },
            reason: reason.map(str::to_string),
        };
        let source = reporter.clone();
        tokio::spawn(async move {
            if let Err(e) = source.report(report).await {
                tracing::warn!(error = %e, "recording a target's health failed");
            }
        });
    });
    let plane = DataPlane::new(bind, sink);
    let interval = Arc::new(std::sync::atomic::AtomicU64::new(60_000));
    let _metrics = AbortOnDrop(tokio::spawn(report_metrics(
        source.clone(),
        plane.clone(),
        interval.clone(),
    )));
    let mut unbound: Vec<(u16, String)> = Vec::new();
    loop {
        match source.config().await {
            Ok(c) => {
                interval.store(
                    c.metrics_interval_ms.max(200),
                    std::sync::atomic::Ordering::Relaxed,
                );
                let failed = plane.apply(&c, &|_| Some(instance_ip)).await;
                if failed != unbound {
                    for (port, e) in &failed {
                        tracing::warn!(port, error = %e, "a listener's port cannot be bound");
                    }
                    unbound = failed;
                }
            }
            Err(e) => tracing::warn!(error = %e, "reading the load balancer configuration failed"),
        }
        tokio::select! {
            () = changed.notified() => {}
            () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}

/// Reports what the listeners served, every `interval` milliseconds (the configuration says
/// how long a minute of CloudWatch's clock is).
async fn report_metrics<S: Source>(
    source: Arc<S>,
    plane: Arc<DataPlane>,
    interval: Arc<std::sync::atomic::AtomicU64>,
) {
    loop {
        let ms = interval.load(std::sync::atomic::Ordering::Relaxed);
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        let report = plane.take_metrics();
        if report.load_balancers.is_empty() {
            continue;
        }
        if let Err(e) = source.metrics(report).await {
            tracing::warn!(error = %e, "reporting the load balancer's metrics failed");
        }
    }
}

/// Aborts a task when dropped (the reporter ends with its data plane).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
