//! A service's load balancer targets (spec/ecs.md §7.4, §7.7): which target each task is in
//! each of the service's target groups (`instance`: the container instance and the host port
//! bound to the container port; `ip`: the task's address and the container port), what the
//! load balancer says of them, and the registrations the scheduler makes.

use super::service_tasks::ServiceTask;
use berth_types::Timestamp;
use berth_types::ecs::{Service, TaskTarget};
use berth_types::elb::TargetGroup;
use std::collections::HashMap;

/// A task's target in one target group.
pub(super) type Binding = TaskTarget;

/// Where a binding stands in its target group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Standing {
    /// Not registered.
    Absent,
    /// Registered; health `None` = initial, `Some(true)` healthy, `Some(false)` unhealthy.
    Registered(Option<bool>),
    /// Deregistered, draining until then.
    Draining(Timestamp),
}

/// The service's target groups as the load balancer holds them.
pub(super) struct Targets<'a> {
    service: &'a Service,
    groups: HashMap<String, TargetGroup>,
    /// Container instance id → its node id (what `instance` targets name).
    nodes: &'a HashMap<String, String>,
}

impl<'a> Targets<'a> {
    pub fn new(
        service: &'a Service,
        groups: HashMap<String, TargetGroup>,
        nodes: &'a HashMap<String, String>,
    ) -> Self {
        Targets {
            service,
            groups,
            nodes,
        }
    }

    /// Whether the service has load balancers at all.
    pub fn any(&self) -> bool {
        !self.service.load_balancers.is_empty()
    }

    /// The task's targets (those it can have yet: a bound port, an address).
    pub fn bindings(&self, t: &ServiceTask) -> Vec<Binding> {
        let mut out = Vec::new();
        for lb in &self.service.load_balancers {
            let (Some(group), Some(container), Some(port)) = (
                lb.target_group_arn.as_deref(),
                lb.container_name.as_deref(),
                lb.container_port.map(i64::from),
            ) else {
                continue;
            };
            let Some(tg) = self.groups.get(group) else {
                continue;
            };
            let target = if tg.target_type == "ip" {
                t.private_ipv4_address.clone().map(|ip| (ip, port))
            } else {
                let host_port = t
                    .containers
                    .iter()
                    .filter(|c| c.name == container)
                    .flat_map(|c| &c.network_bindings)
                    .find(|b| b.container_port.map(i64::from) == Some(port))
                    .and_then(|b| b.host_port.map(i64::from));
                let node = t
                    .container_instance
                    .as_ref()
                    .and_then(|i| self.nodes.get(i));
                node.zip(host_port).map(|(n, p)| (n.clone(), p))
            };
            if let Some((id, port)) = target {
                out.push(Binding {
                    target_group: group.to_string(),
                    id,
                    port,
                });
            }
        }
        out
    }

    /// The task's targets as they were recorded when registered, and those it has now: once
    /// its containers are gone, only the recorded ones are known.
    fn known(&self, t: &ServiceTask) -> Vec<Binding> {
        let mut all = t.targets.clone();
        for b in self.bindings(t) {
            if !all.contains(&b) {
                all.push(b);
            }
        }
        all
    }

    pub fn standing(&self, b: &Binding, now: Timestamp) -> Standing {
        let Some(t) = self
            .groups
            .get(&b.target_group)
            .and_then(|g| g.targets.iter().find(|t| t.id == b.id && t.port == b.port))
        else {
            return Standing::Absent;
        };
        match t.draining_until {
            Some(until) if until.0 > now.0 => Standing::Draining(until),
            Some(_) => Standing::Absent,
            None => Standing::Registered(match t.health.as_ref().map(|(s, _)| s.as_str()) {
                Some("healthy") => Some(true),
                Some("unhealthy") => Some(false),
                _ => None,
            }),
        }
    }

    /// Healthy in every target group (spec §7.4), `false` if any is not (yet).
    pub fn healthy(&self, t: &ServiceTask, now: Timestamp) -> bool {
        let bindings = self.bindings(t);
        bindings.len() == self.service.load_balancers.len()
            && bindings
                .iter()
                .all(|b| self.standing(b, now) == Standing::Registered(Some(true)))
    }

    /// The target group in which the task's target is unhealthy, if any.
    pub fn unhealthy_in(&self, t: &ServiceTask, now: Timestamp) -> Option<String> {
        self.bindings(t)
            .into_iter()
            .find(|b| self.standing(b, now) == Standing::Registered(Some(false)))
            .map(|b| b.target_group)
    }

    /// Whether any of the task's targets is still draining.
    pub fn draining(&self, t: &ServiceTask, now: Timestamp) -> bool {
        self.known(t)
            .iter()
            .any(|b| matches!(self.standing(b, now), Standing::Draining(_)))
    }

    /// The task's targets that are registered (and not draining).
    pub fn registered(&self, t: &ServiceTask, now: Timestamp) -> Vec<Binding> {
        self.known(t)
            .into_iter()
            .filter(|b| matches!(self.standing(b, now), Standing::Registered(_)))
            .collect()
    }

    /// The task's targets that are not registered.
    pub fn missing(&self, t: &ServiceTask, now: Timestamp) -> Vec<Binding> {
        self.bindings(t)
            .into_iter()
            .filter(|b| self.standing(b, now) == Standing::Absent)
            .collect()
    }
}
