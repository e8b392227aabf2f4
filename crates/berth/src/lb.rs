//! The load balancer's data plane in this process (`berth up`): fed by the control plane's
//! ELB records (rebuilt as soon as one changes, and every second for draining deadlines);
//! health transitions are written back so DescribeTargetHealth shows them.

use berth_control::elb::Elb;
use berth_lb::{DataPlane, Desired, Health, HealthSink};
use berth_store::{Kind, Store, Watcher};
use std::net::IpAddr;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Wakes the feeder when an ELB record changes.
struct ElbChanges(Arc<Notify>);

impl Watcher for ElbChanges {
    fn watches(&self, kind: Kind) -> bool {
        matches!(
            kind,
            Kind::LoadBalancer | Kind::TargetGroup | Kind::Listener | Kind::Rule
        )
    }
    fn changed(&self, _: Kind, _: &str, _: Option<&str>) {
        self.0.notify_one();
    }
    fn reset(&self) {
        self.0.notify_one();
    }
}

/// Runs the data plane: listeners bind on `bind`; `instance` targets are reached at
/// `instance_ip` (every instance of `berth up` is this machine).
pub fn spawn(elb: Elb, store: &Store, bind: IpAddr, instance_ip: IpAddr) -> JoinHandle<()> {
    let changed = Arc::new(Notify::new());
    store.watch(Arc::new(ElbChanges(changed.clone())));
    tokio::spawn(async move {
        let reporter = elb.clone();
        let sink: HealthSink = Arc::new(move |group, id, port, health, reason| {
            let (elb, group, id) = (reporter.clone(), group.to_string(), id.to_string());
            let state = match health {
                Health::Healthy => "healthy",
                Health::Unhealthy => "unhealthy",
                Health::Initial => "initial",
            };
            tokio::spawn(async move {
                if let Err(e) = elb
                    .targets_report_health(&group, &id, port, state, reason)
                    .await
                {
                    tracing::warn!(error = %e, "recording a target's health failed");
                }
            });
        });
        let plane = DataPlane::new(bind, sink);
        let mut unbound: Vec<(u16, String)> = Vec::new();
        loop {
            match elb.data_plane_config() {
                Ok(c) => {
                    let failed = plane
                        .apply(&Desired {
                            load_balancers: &c.load_balancers,
                            listeners: &c.listeners,
                            rules: &c.rules,
                            target_groups: &c.target_groups,
                            instance_address: &|_| Some(instance_ip),
                        })
                        .await;
                    if failed != unbound {
                        for (port, e) in &failed {
                            tracing::warn!(port, error = %e, "a listener's port cannot be bound");
                        }
                        unbound = failed;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "reading the load balancer configuration failed")
                }
            }
            tokio::select! {
                () = changed.notified() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    })
}
