//! Task placement: a pure planner (spec/ecs.md §6). Given the container instances of a cluster
//! as placement sees them, a task's needs, strategies and constraints, it decides where each
//! of `count` tasks goes — or why it cannot. No store, no clock, no network: RunTask and the
//! service scheduler feed it snapshots and apply its plan.
//!
//! Algorithm: for each task in turn, the candidates are the ACTIVE, connected instances that
//! carry every required attribute, satisfy every constraint and have the CPU, memory and
//! static ports left; strategies order them as successive tie-breakers (remaining ties are
//! broken by a seeded random draw); the first is chosen and its remaining resources, ports and
//! group counts are updated before the next task.

pub mod query;

use query::{Expr, Facts};
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A container instance, as placement sees it.
#[derive(Debug, Clone, Default)]
pub struct Candidate {
    /// The instance's id (what failures name).
    pub id: String,
    pub attributes: BTreeMap<String, String>,
    pub active: bool,
    pub agent_connected: bool,
    pub agent_version: Option<String>,
    pub ec2_instance_id: Option<String>,
    /// Epoch milliseconds.
    pub registered_at: i64,
    pub remaining_cpu: i64,
    pub remaining_memory: i64,
    pub reserved_tcp: BTreeSet<u16>,
    pub reserved_udp: BTreeSet<u16>,
    /// Non-stopped tasks on the instance, per task group.
    pub groups: BTreeMap<String, u32>,
}

impl Candidate {
    fn running(&self) -> u64 {
        self.groups.values().map(|n| *n as u64).sum()
    }
}

impl Facts for Candidate {
    fn attribute(&self, name: &str) -> Option<String> {
        self.attributes.get(name).cloned()
    }
    fn task_groups(&self) -> Vec<String> {
        self.groups
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(g, _)| g.clone())
            .collect()
    }
    fn agent_connected(&self) -> bool {
        self.agent_connected
    }
    fn agent_version(&self) -> Option<String> {
        self.agent_version.clone()
    }
    fn ec2_instance_id(&self) -> Option<String> {
        self.ec2_instance_id.clone()
    }
    fn registered_at(&self) -> i64 {
        self.registered_at
    }
    fn running_tasks_count(&self) -> u64 {
        self.running()
    }
}

/// What one task needs.
#[derive(Debug, Clone, Default)]
pub struct TaskShape {
    pub cpu: i64,
    pub memory: i64,
    /// Static host ports (dynamic ports never block placement).
    pub tcp_ports: Vec<u16>,
    pub udp_ports: Vec<u16>,
    pub requires_attributes: Vec<String>,
    /// `service:<name>`, `family:<family>` or a custom group.
    pub group: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadField {
    /// `instanceId` / `host`.
    Instance,
    /// `attribute:<name>`.
    Attribute(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    Binpack(Resource),
    Spread(SpreadField),
    Random,
}

impl Strategy {
    /// From the API's `{type, field}`.
    pub fn parse(kind: &str, field: Option<&str>) -> Result<Strategy, String> {
        match (kind, field.map(|f| f.trim())) {
            ("random", _) => Ok(Strategy::Random),
            ("binpack", Some(f)) if f.eq_ignore_ascii_case("cpu") => {
                Ok(Strategy::Binpack(Resource::Cpu))
            }
            ("binpack", Some(f)) if f.eq_ignore_ascii_case("memory") => {
                Ok(Strategy::Binpack(Resource::Memory))
            }
            ("binpack", f) => Err(format!("binpack needs field cpu or memory, not {f:?}")),
            ("spread", Some("instanceId" | "host")) => Ok(Strategy::Spread(SpreadField::Instance)),
            ("spread", Some(f)) => match f.strip_prefix("attribute:") {
                Some(a) if !a.is_empty() => {
                    Ok(Strategy::Spread(SpreadField::Attribute(a.to_string())))
                }
                _ => Err(format!(
                    "spread needs field instanceId, host or attribute:<name>, not '{f}'"
                )),
            },
            ("spread", None) => Err("spread needs a field".into()),
            (other, _) => Err(format!("unknown placement strategy type '{other}'")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    DistinctInstance,
    MemberOf(Expr),
}

/// Why a task could not go somewhere (AWS's reason strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The instance it concerns, or `None` for the cluster as a whole.
    pub instance: Option<String>,
    pub reason: String,
}

/// The planner's answer: the candidate index of each placed task, in order, and failures for
/// what could not be placed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub placements: Vec<usize>,
    pub failures: Vec<Failure>,
}

/// Why `c` cannot take `task` now, if it cannot.
fn blocker(c: &Candidate, task: &TaskShape, constraints: &[Constraint]) -> Option<&'static str> {
    if !c.agent_connected {
        return Some("AGENT");
    }
    if !task
        .requires_attributes
        .iter()
        .all(|a| c.attributes.contains_key(a))
    {
        return Some("ATTRIBUTE");
    }
    for k in constraints {
        match k {
            Constraint::DistinctInstance if c.groups.get(&task.group).copied().unwrap_or(0) > 0 => {
                return Some("DistinctInstance placement constraint unsatisfied.");
            }
            Constraint::MemberOf(e) if !query::eval(e, c) => {
                return Some("MemberOf placement constraint unsatisfied.");
            }
            _ => {}
        }
    }
    if c.remaining_cpu < task.cpu {
        return Some("RESOURCE:CPU");
    }
    if c.remaining_memory < task.memory {
        return Some("RESOURCE:MEMORY");
    }
    if task.tcp_ports.iter().any(|p| c.reserved_tcp.contains(p)) {
        return Some("RESOURCE:PORTS");
    }
    if task.udp_ports.iter().any(|p| c.reserved_udp.contains(p)) {
        return Some("RESOURCE:PORTS_UDP");
    }
    None
}

/// Places `count` tasks shaped `task` on `candidates`.
pub fn plan(
    candidates: &[Candidate],
    task: &TaskShape,
    count: usize,
    strategies: &[Strategy],
    constraints: &[Constraint],
    seed: u64,
) -> Plan {
    let mut state: Vec<Candidate> = candidates.to_vec();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = Plan::default();
    let active: Vec<usize> = (0..state.len()).filter(|i| state[*i].active).collect();
    if active.is_empty() {
        out.failures.push(Failure {
            instance: None,
            reason: "No Container Instances were found in your cluster.".into(),
        });
        return out;
    }
    for _ in 0..count {
        let eligible: Vec<usize> = active
            .iter()
            .copied()
            .filter(|i| blocker(&state[*i], task, constraints).is_none())
            .collect();
        if eligible.is_empty() {
            for i in &active {
                if let Some(reason) = blocker(&state[*i], task, constraints) {
                    out.failures.push(Failure {
                        instance: Some(state[*i].id.clone()),
                        reason: reason.into(),
                    });
                }
            }
            break;
        }
        // Spread by attribute: the group's task count per attribute value, counted once.
        let spread_totals: Vec<HashMap<Option<&String>, i64>> = strategies
            .iter()
            .map(|s| {
                let mut totals = HashMap::new();
                if let Strategy::Spread(SpreadField::Attribute(a)) = s {
                    for o in state.iter().filter(|o| o.active) {
                        *totals.entry(o.attributes.get(a)).or_default() +=
                            o.groups.get(&task.group).copied().unwrap_or(0) as i64;
                    }
                }
                totals
            })
            .collect();
        // Successive tie-breakers: one key per strategy, then a random draw.
        let keys: Vec<(Vec<i64>, u64, usize)> = eligible
            .iter()
            .map(|i| {
                let c = &state[*i];
                let mut key = Vec::with_capacity(strategies.len());
                for (s, totals) in strategies.iter().zip(&spread_totals) {
                    key.push(match s {
                        Strategy::Binpack(Resource::Cpu) => c.remaining_cpu - task.cpu,
                        Strategy::Binpack(Resource::Memory) => c.remaining_memory - task.memory,
                        Strategy::Spread(SpreadField::Instance) => {
                            c.groups.get(&task.group).copied().unwrap_or(0) as i64
                        }
                        Strategy::Spread(SpreadField::Attribute(a)) => {
                            totals.get(&c.attributes.get(a)).copied().unwrap_or(0)
                        }
                        Strategy::Random => rng.random_range(0..i64::MAX),
                    });
                }
                (key, rng.random::<u64>(), *i)
            })
            .collect();
        let chosen = keys
            .into_iter()
            .min_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)))
            .map(|(_, _, i)| i)
            .expect("eligible is not empty");
        let c = &mut state[chosen];
        c.remaining_cpu -= task.cpu;
        c.remaining_memory -= task.memory;
        c.reserved_tcp.extend(task.tcp_ports.iter().copied());
        c.reserved_udp.extend(task.udp_ports.iter().copied());
        *c.groups.entry(task.group.clone()).or_default() += 1;
        out.placements.push(chosen);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(id: &str, zone: &str, cpu: i64, memory: i64) -> Candidate {
        Candidate {
            id: id.into(),
            attributes: [("ecs.availability-zone".to_string(), zone.to_string())]
                .into_iter()
                .collect(),
            active: true,
            agent_connected: true,
            remaining_cpu: cpu,
            remaining_memory: memory,
            ..Default::default()
        }
    }

    fn task(cpu: i64, memory: i64) -> TaskShape {
        TaskShape {
            cpu,
            memory,
            group: "service:web".into(),
            ..Default::default()
        }
    }

    #[test]
    fn placement_binpack_fills_the_fullest_instance_first() {
        let cands = vec![
            instance("a", "z1", 4096, 4000),
            instance("b", "z1", 4096, 1000),
            instance("c", "z2", 4096, 2000),
        ];
        let p = plan(
            &cands,
            &task(10, 500),
            3,
            &[Strategy::Binpack(Resource::Memory)],
            &[],
            1,
        );
        assert_eq!(p.placements, [1, 1, 2], "least remaining memory first");
    }

    #[test]
    fn placement_spread_by_zone_then_instance_balances() {
        let cands = vec![
            instance("a", "z1", 4096, 8000),
            instance("b", "z1", 4096, 8000),
            instance("c", "z2", 4096, 8000),
            instance("d", "z3", 4096, 8000),
        ];
        let strategies = [
            Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
            Strategy::Spread(SpreadField::Instance),
        ];
        let p = plan(&cands, &task(100, 100), 6, &strategies, &[], 7);
        let mut per_zone = BTreeMap::new();
        for i in &p.placements {
            *per_zone
                .entry(&cands[*i].attributes["ecs.availability-zone"])
                .or_insert(0) += 1;
        }
        assert_eq!(per_zone.values().copied().collect::<Vec<_>>(), [2, 2, 2]);
        // Within z1 the two instances share evenly.
        let in_a = p.placements.iter().filter(|i| **i == 0).count();
        assert_eq!(in_a, 1);
    }

    #[test]
    fn placement_failures_name_the_reason() {
        let mut cands = vec![
            instance("a", "z1", 512, 256),
            instance("b", "z1", 128, 4096),
        ];
        cands[0].reserved_tcp.insert(80);
        let t = TaskShape {
            tcp_ports: vec![80],
            ..task(256, 512)
        };
        let p = plan(&cands, &t, 1, &[], &[], 1);
        assert!(p.placements.is_empty());
        assert_eq!(
            p.failures,
            [
                Failure {
                    instance: Some("a".into()),
                    reason: "RESOURCE:MEMORY".into()
                },
                Failure {
                    instance: Some("b".into()),
                    reason: "RESOURCE:CPU".into()
                },
            ]
        );
        let none = plan(&[], &t, 1, &[], &[], 1);
        assert_eq!(
            none.failures[0].reason,
            "No Container Instances were found in your cluster."
        );
        // Static ports are taken by the first task: a second one on the same port goes elsewhere.
        let two = vec![
            instance("a", "z1", 4096, 4096),
            instance("b", "z1", 4096, 4096),
        ];
        let t = TaskShape {
            tcp_ports: vec![8080],
            ..task(1, 1)
        };
        let p = plan(&two, &t, 3, &[], &[], 1);
        assert_eq!(p.placements.len(), 2);
        assert_ne!(p.placements[0], p.placements[1]);
        assert_eq!(p.failures.len(), 2);
        assert!(p.failures.iter().all(|f| f.reason == "RESOURCE:PORTS"));
    }

    #[test]
    fn placement_constraints_bind() {
        let mut cands = vec![
            instance("a", "z1", 4096, 4096),
            instance("b", "z2", 4096, 4096),
            instance("c", "z3", 4096, 4096),
        ];
        cands[2].attributes.insert("stack".into(), "prod".into());
        let member = Constraint::MemberOf(query::parse("attribute:stack == prod").unwrap());
        let p = plan(&cands, &task(1, 1), 2, &[], &[member], 3);
        assert_eq!(p.placements, [2, 2]);
        let p = plan(
            &cands,
            &task(1, 1),
            4,
            &[],
            &[Constraint::DistinctInstance],
            3,
        );
        assert_eq!(p.placements.len(), 3, "one per instance");
        let distinct: BTreeSet<usize> = p.placements.iter().copied().collect();
        assert_eq!(distinct.len(), 3);
        assert!(
            p.failures
                .iter()
                .all(|f| f.reason.starts_with("DistinctInstance"))
        );
    }

    #[test]
    fn placement_strategies_parse_from_the_api_form() {
        assert_eq!(
            Strategy::parse("binpack", Some("MEMORY")),
            Ok(Strategy::Binpack(Resource::Memory))
        );
        assert_eq!(
            Strategy::parse("spread", Some("host")),
            Ok(Strategy::Spread(SpreadField::Instance))
        );
        assert_eq!(
            Strategy::parse("spread", Some("attribute:ecs.availability-zone")),
            Ok(Strategy::Spread(SpreadField::Attribute(
                "ecs.availability-zone".into()
            )))
        );
        assert!(Strategy::parse("binpack", Some("disk")).is_err());
        assert!(Strategy::parse("spread", Some("attribute:")).is_err());
        assert!(Strategy::parse("pack", None).is_err());
    }

    /// Property test over random clusters and requests (seeded, no I/O): resources never go
    /// negative, constraints always hold, only ACTIVE connected instances are used, and a task
    /// is only refused when no instance could take it.
    #[test]
    fn placement_properties_hold_for_random_clusters() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        for round in 0..500 {
            let n = rng.random_range(0..12);
            let cands: Vec<Candidate> = (0..n)
                .map(|i| {
                    let mut c = instance(
                        &format!("i{i}"),
                        ["z1", "z2", "z3"][i % 3],
                        rng.random_range(0..4096),
                        rng.random_range(0..8192),
                    );
                    c.active = rng.random_bool(0.9);
                    c.agent_connected = rng.random_bool(0.9);
                    if rng.random_bool(0.3) {
                        c.reserved_tcp.insert(80);
                    }
                    if rng.random_bool(0.3) {
                        c.groups
                            .insert("service:web".into(), rng.random_range(0..3));
                    }
                    if rng.random_bool(0.5) {
                        c.attributes.insert("stack".into(), "prod".into());
                    }
                    c
                })
                .collect();
            let t = TaskShape {
                tcp_ports: if rng.random_bool(0.3) {
                    vec![80]
                } else {
                    vec![]
                },
                ..task(rng.random_range(0..1024), rng.random_range(1..2048))
            };
            let mut constraints = Vec::new();
            if rng.random_bool(0.3) {
                constraints.push(Constraint::DistinctInstance);
            }
            let member = rng.random_bool(0.3);
            if member {
                constraints.push(Constraint::MemberOf(
                    query::parse("attribute:stack == prod").unwrap(),
                ));
            }
            let strategies = match round % 4 {
                0 => vec![Strategy::Binpack(Resource::Memory)],
                1 => vec![
                    Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
                    Strategy::Binpack(Resource::Cpu),
                ],
                2 => vec![Strategy::Random],
                _ => vec![],
            };
            let count = rng.random_range(1..10);
            let p = plan(&cands, &t, count, &strategies, &constraints, round);
            // Replay the plan and check every invariant.
            let mut state = cands.clone();
            for &i in &p.placements {
                let c = &mut state[i];
                assert!(c.active && c.agent_connected, "round {round}");
                if member {
                    assert_eq!(c.attributes.get("stack").map(String::as_str), Some("prod"));
                }
                if constraints.contains(&Constraint::DistinctInstance) {
                    assert_eq!(
                        c.groups.get("service:web").copied().unwrap_or(0),
                        0,
                        "round {round}"
                    );
                }
                assert!(!t.tcp_ports.iter().any(|p| c.reserved_tcp.contains(p)));
                c.remaining_cpu -= t.cpu;
                c.remaining_memory -= t.memory;
                assert!(
                    c.remaining_cpu >= 0 && c.remaining_memory >= 0,
                    "round {round}: negative resources"
                );
                c.reserved_tcp.extend(t.tcp_ports.iter().copied());
                *c.groups.entry("service:web".into()).or_default() += 1;
            }
            assert!(p.placements.len() <= count);
            if p.placements.len() < count {
                // Nothing left could have taken the next task.
                assert!(
                    state
                        .iter()
                        .filter(|c| c.active)
                        .all(|c| blocker(c, &t, &constraints).is_some()),
                    "round {round}"
                );
                assert!(!p.failures.is_empty());
            } else {
                assert!(p.failures.is_empty());
            }
        }
    }
}
