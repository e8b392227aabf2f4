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

use berth_types::shapes::ecs::{PlacementConstraint, PlacementConstraintType, PlacementStrategy};
use query::{Expr, Facts};
use rand::{Rng, SeedableRng};
use std::cmp::Ordering;
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

/// The instances of a cluster as placement sees them, with what plans derive from their
/// attributes (each instance's value of a spread attribute) kept across plans until an
/// instance's attributes change.
#[derive(Debug, Default)]
pub struct Fleet {
    candidates: Vec<Candidate>,
    /// Spread attribute → each candidate's value as an index into the distinct values.
    columns: std::sync::Mutex<HashMap<String, std::sync::Arc<Vec<usize>>>>,
}

impl Fleet {
    pub fn new(candidates: Vec<Candidate>) -> Fleet {
        Fleet {
            candidates,
            columns: Default::default(),
        }
    }

    pub fn candidates(&self) -> &[Candidate] {
        &self.candidates
    }

    fn forget_columns(&mut self) {
        self.columns.get_mut().expect("columns lock").clear();
    }

    pub fn push(&mut self, c: Candidate) {
        self.candidates.push(c);
        self.forget_columns();
    }

    pub fn swap_remove(&mut self, i: usize) {
        self.candidates.swap_remove(i);
        self.forget_columns();
    }

    /// Replaces candidate `i`.
    pub fn set(&mut self, i: usize, c: Candidate) {
        if self.candidates[i].attributes != c.attributes {
            self.forget_columns();
        }
        self.candidates[i] = c;
    }

    /// Each candidate's value of `attribute`, as an index (equal values, equal indexes).
    fn column(&self, attribute: &str) -> std::sync::Arc<Vec<usize>> {
        let mut columns = self.columns.lock().expect("columns lock");
        if let Some(c) = columns.get(attribute) {
            return c.clone();
        }
        // Distinct values are few (zones, instance types): a linear search beats hashing.
        let mut distinct: Vec<Option<&String>> = Vec::new();
        let column: Vec<usize> = self
            .candidates
            .iter()
            .map(|c| {
                let value = c.attributes.get(attribute);
                distinct
                    .iter()
                    .position(|v| *v == value)
                    .unwrap_or_else(|| {
                        distinct.push(value);
                        distinct.len() - 1
                    })
            })
            .collect();
        let column = std::sync::Arc::new(column);
        columns.insert(attribute.to_string(), column.clone());
        column
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

/// `placementStrategy` as the API gives it.
pub fn strategies_from(list: &[PlacementStrategy]) -> Result<Vec<Strategy>, String> {
    list.iter()
        .map(|p| Strategy::parse(p.r#type.map_or("", |t| t.as_str()), p.field.as_deref()))
        .collect()
}

/// `placementConstraints` as the API gives them.
pub fn constraints_from(list: &[PlacementConstraint]) -> Result<Vec<Constraint>, String> {
    list.iter()
        .map(|p| match p.r#type {
            Some(PlacementConstraintType::DistinctInstance) => Ok(Constraint::DistinctInstance),
            Some(PlacementConstraintType::MemberOf) => {
                let e = p.expression.as_deref().unwrap_or("");
                query::parse(e)
                    .map(Constraint::MemberOf)
                    .map_err(|err| format!("Invalid placement constraint expression '{e}': {err}"))
            }
            None => Err("A placement constraint needs a type.".into()),
        })
        .collect()
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

/// Strategies a placement honours (RunTask and CreateService allow at most five).
pub const MAX_STRATEGIES: usize = 5;

/// Places `count` tasks shaped `task` on `candidates`.
///
/// Cost: one pass over the candidates to note what can change during the plan (blockers,
/// remaining resources, the group's counts, spread values), then one tight pass per task. Only
/// the chosen instance's facts change after a placement, so only its blocker is recomputed.
pub fn plan(
    fleet: &Fleet,
    task: &TaskShape,
    count: usize,
    strategies: &[Strategy],
    constraints: &[Constraint],
    seed: u64,
) -> Plan {
    let candidates = fleet.candidates();
    let strategies = &strategies[..strategies.len().min(MAX_STRATEGIES)];
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let mut out = Plan::default();
    // What can change during the plan, per active candidate, in one array for locality.
    struct Slot {
        at: usize,
        blocked: Option<&'static str>,
        cpu: i64,
        memory: i64,
        in_group: i64,
        /// Per strategy: the index of the candidate's value of a spread attribute.
        spread: [u32; MAX_STRATEGIES],
    }
    let mut slots: Vec<Slot> = candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.active)
        .map(|(at, c)| Slot {
            at,
            blocked: blocker(c, task, constraints),
            cpu: c.remaining_cpu,
            memory: c.remaining_memory,
            in_group: c.groups.get(&task.group).copied().unwrap_or(0) as i64,
            spread: [0; MAX_STRATEGIES],
        })
        .collect();
    if slots.is_empty() {
        out.failures.push(Failure {
            instance: None,
            reason: "No Container Instances were found in your cluster.".into(),
        });
        return out;
    }
    // Spread by attribute: the group's task count per value, counted once and kept up to date.
    let mut spread_total: [Vec<i64>; MAX_STRATEGIES] = Default::default();
    for (n, s) in strategies.iter().enumerate() {
        if let Strategy::Spread(SpreadField::Attribute(a)) = s {
            let column = fleet.column(a);
            for slot in &mut slots {
                let v = column[slot.at];
                if v >= spread_total[n].len() {
                    spread_total[n].resize(v + 1, 0);
                }
                spread_total[n][v] += slot.in_group;
                slot.spread[n] = v as u32;
            }
        }
    }
    // Candidates this plan placed tasks on, as they are now.
    let mut changed: HashMap<usize, Candidate> = HashMap::new();
    for _ in 0..count {
        // The smallest key wins; ties are broken uniformly at random (reservoir draw).
        let mut best: Option<([i64; MAX_STRATEGIES], usize)> = None;
        let mut ties = 0u64;
        for (k, slot) in slots.iter().enumerate() {
            if slot.blocked.is_some() {
                continue;
            }
            // Components are computed in order and the candidate dropped as soon as one is
            // worse than the best's (with spread first, most candidates go after one).
            let mut key = [0i64; MAX_STRATEGIES];
            let mut order = if best.is_some() {
                Ordering::Equal
            } else {
                Ordering::Less
            };
            for (n, s) in strategies.iter().enumerate() {
                key[n] = match s {
                    Strategy::Binpack(Resource::Cpu) => slot.cpu - task.cpu,
                    Strategy::Binpack(Resource::Memory) => slot.memory - task.memory,
                    Strategy::Spread(SpreadField::Instance) => slot.in_group,
                    Strategy::Spread(SpreadField::Attribute(_)) => {
                        spread_total[n][slot.spread[n] as usize]
                    }
                    Strategy::Random => rng.random_range(0..i64::MAX),
                };
                if order == Ordering::Equal
                    && let Some((b, _)) = &best
                {
                    order = key[n].cmp(&b[n]);
                    if order == Ordering::Greater {
                        break;
                    }
                }
            }
            match order {
                Ordering::Greater => {}
                Ordering::Equal => {
                    ties += 1;
                    if rng.random_range(0..ties) == 0 {
                        best = Some((key, k));
                    }
                }
                Ordering::Less => {
                    best = Some((key, k));
                    ties = 1;
                }
            }
        }
        let Some((_, k)) = best else {
            for slot in &slots {
                if let Some(reason) = slot.blocked {
                    out.failures.push(Failure {
                        instance: Some(candidates[slot.at].id.clone()),
                        reason: reason.into(),
                    });
                }
            }
            break;
        };
        let slot = &mut slots[k];
        let chosen = slot.at;
        let c = changed
            .entry(chosen)
            .or_insert_with(|| candidates[chosen].clone());
        c.remaining_cpu -= task.cpu;
        c.remaining_memory -= task.memory;
        c.reserved_tcp.extend(task.tcp_ports.iter().copied());
        c.reserved_udp.extend(task.udp_ports.iter().copied());
        *c.groups.entry(task.group.clone()).or_default() += 1;
        slot.blocked = blocker(c, task, constraints);
        slot.cpu -= task.cpu;
        slot.memory -= task.memory;
        slot.in_group += 1;
        for (n, s) in strategies.iter().enumerate() {
            if let Strategy::Spread(SpreadField::Attribute(_)) = s {
                spread_total[n][slot.spread[n] as usize] += 1;
            }
        }
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
            &Fleet::new(cands.clone()),
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
        let p = plan(
            &Fleet::new(cands.clone()),
            &task(100, 100),
            6,
            &strategies,
            &[],
            7,
        );
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
        let p = plan(&Fleet::new(cands.clone()), &t, 1, &[], &[], 1);
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
        let none = plan(&Fleet::default(), &t, 1, &[], &[], 1);
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
        let p = plan(&Fleet::new(two.clone()), &t, 3, &[], &[], 1);
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
        let p = plan(
            &Fleet::new(cands.clone()),
            &task(1, 1),
            2,
            &[],
            &[member],
            3,
        );
        assert_eq!(p.placements, [2, 2]);
        let p = plan(
            &Fleet::new(cands.clone()),
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

    /// A random instance: (cpu, memory, active, connected, port 80 taken, service tasks on it,
    /// in stack prod).
    fn random_instance()
    -> impl proptest::strategy::Strategy<Value = (i64, i64, bool, bool, bool, Option<u32>, bool)>
    {
        use proptest::bool::weighted;
        (
            0i64..4096,
            0i64..8192,
            weighted(0.9),
            weighted(0.9),
            weighted(0.3),
            proptest::option::weighted(0.3, 0u32..3),
            weighted(0.5),
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(500))]

        /// Over random clusters and requests (no I/O): resources never go negative,
        /// constraints always hold, only ACTIVE connected instances are used, and a task is
        /// only refused when no instance could take it.
        #[test]
        fn placement_properties_hold_for_random_clusters(
            raw in proptest::collection::vec(random_instance(), 0..12),
            (cpu, memory, port) in (0i64..1024, 1i64..2048, proptest::bool::weighted(0.3)),
            (distinct, member) in (proptest::bool::weighted(0.3), proptest::bool::weighted(0.3)),
            strategy in 0usize..4,
            count in 1usize..10,
            seed in proptest::num::u64::ANY,
        ) {
            let cands: Vec<Candidate> = raw
                .iter()
                .enumerate()
                .map(|(i, &(cpu, memory, active, connected, taken, group, prod))| {
                    let mut c = instance(&format!("i{i}"), ["z1", "z2", "z3"][i % 3], cpu, memory);
                    c.active = active;
                    c.agent_connected = connected;
                    if taken {
                        c.reserved_tcp.insert(80);
                    }
                    if let Some(n) = group {
                        c.groups.insert("service:web".into(), n);
                    }
                    if prod {
                        c.attributes.insert("stack".into(), "prod".into());
                    }
                    c
                })
                .collect();
            let t = TaskShape {
                tcp_ports: if port { vec![80] } else { vec![] },
                ..task(cpu, memory)
            };
            let mut constraints = Vec::new();
            if distinct {
                constraints.push(Constraint::DistinctInstance);
            }
            if member {
                constraints.push(Constraint::MemberOf(
                    query::parse("attribute:stack == prod").unwrap(),
                ));
            }
            let strategies = match strategy {
                0 => vec![Strategy::Binpack(Resource::Memory)],
                1 => vec![
                    Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
                    Strategy::Binpack(Resource::Cpu),
                ],
                2 => vec![Strategy::Random],
                _ => vec![],
            };
            let p = plan(&Fleet::new(cands.clone()), &t, count, &strategies, &constraints, seed);
            // Replay the plan and check every invariant.
            let mut state = cands.clone();
            for &i in &p.placements {
                let c = &mut state[i];
                proptest::prop_assert!(c.active && c.agent_connected);
                if member {
                    proptest::prop_assert_eq!(c.attributes.get("stack").map(String::as_str), Some("prod"));
                }
                if distinct {
                    proptest::prop_assert_eq!(c.groups.get("service:web").copied().unwrap_or(0), 0);
                }
                proptest::prop_assert!(!t.tcp_ports.iter().any(|p| c.reserved_tcp.contains(p)));
                c.remaining_cpu -= t.cpu;
                c.remaining_memory -= t.memory;
                proptest::prop_assert!(
                    c.remaining_cpu >= 0 && c.remaining_memory >= 0,
                    "negative resources"
                );
                c.reserved_tcp.extend(t.tcp_ports.iter().copied());
                *c.groups.entry("service:web".into()).or_default() += 1;
            }
            proptest::prop_assert!(p.placements.len() <= count);
            if p.placements.len() < count {
                // Nothing left could have taken the next task.
                proptest::prop_assert!(
                    state
                        .iter()
                        .filter(|c| c.active)
                        .all(|c| blocker(c, &t, &constraints).is_some())
                );
                proptest::prop_assert!(!p.failures.is_empty());
            } else {
                proptest::prop_assert!(p.failures.is_empty());
            }
        }
    }
}
