//! The service scheduler (spec/ecs.md §7): a reconciler that, on every pass, takes each live
//! service through four steps:
//! 1. **snapshot** — the service, its tasks and its cluster's instances from the in-memory
//!    views, and its target groups;
//! 2. **plan** — a pure function of the snapshot and the time: health (§7.4), the circuit
//!    breaker and launch back-off (§7.5), what to start and stop within the bounds
//!    (`crate::rollout`), which targets to drain, register and deregister;
//! 3. **apply** — stops, target changes and launches, through the same paths as
//!    RunTask/StartTask and StopTask;
//! 4. **record** — deployment counts and rollout state, the breaker and events in AWS's
//!    wording, written only when something changed.

use super::instances::InstanceFacts;
use super::service_tasks::ServiceTask;
use super::services::{self, deploy, new_deployment, push_event};
use super::targets::{Binding, Targets};
use super::{Ecs, RunTask, load};
use crate::elb::Elb;
use crate::placement::{self, Constraint, query};
use crate::rollout::{self, Bounds, Live, StopWhy};
use berth_store::{Kind, ListQuery};
use berth_types::ecs::{InstanceStatus, Service, Task, TaskStatus};
use berth_types::elb::TargetGroup;
use berth_types::{Error, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// The scheduler's settings.
#[derive(Clone)]
pub struct ServiceScheduler {
    ecs: Ecs,
    /// Where service tasks are registered as load balancer targets.
    elb: Elb,
    /// A RUNNING task without a container health check counts as healthy after this long
    /// (AWS: 40 s).
    pub healthy_after: Duration,
    /// What time it is (injected: tests run the planner at the times they choose).
    clock: Arc<dyn Fn() -> Timestamp + Send + Sync>,
}

/// The circuit breaker's threshold for `desired` tasks: `clamp(ceil(D / 2), 3, 200)`.
pub fn breaker_threshold(desired: u32) -> u32 {
    desired.div_ceil(2).clamp(3, 200)
}

/// Launch back-off after `streak` consecutive tasks failed to start: none below 3, then
/// 10 s doubling up to 15 minutes.
fn backoff(streak: usize) -> Duration {
    if streak < 3 {
        return Duration::ZERO;
    }
    let secs = 10u64.saturating_mul(1 << (streak - 3).min(20));
    Duration::from_secs(secs.min(15 * 60))
}

fn failed_to_start(t: &ServiceTask) -> bool {
    t.last_status == TaskStatus::Stopped
        && t.started_at.is_none()
        && t.stop_code.as_deref() == Some("TaskFailedToStart")
}

/// Per deployment: RUNNING, PENDING and failed-to-start tasks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    running: u32,
    pending: u32,
    failed: u32,
}

/// What a pass decided, to record on the service.
#[derive(Debug, Default)]
struct Outcome {
    primary: String,
    counts: BTreeMap<String, Counts>,
    /// Deployments with tasks not yet STOPPED.
    alive: BTreeSet<String>,
    daemon_desired: Option<u32>,
    trip: bool,
    steady: bool,
    no_tasks_left: bool,
    events: Vec<String>,
}

/// What the scheduler reads of a cluster's instances.
struct Fleet {
    active: BTreeSet<String>,
    /// DAEMON: the ACTIVE, connected instances meeting the service's constraints.
    eligible: Vec<String>,
    /// Instance id → node id (what `instance` targets name).
    nodes: HashMap<String, String>,
}

/// Everything one pass reads of one service (step 1 of 4).
struct Snapshot {
    svc: Service,
    tasks: Vec<ServiceTask>,
    fleet: Fleet,
    /// The service's target groups as the load balancer holds them (none without load
    /// balancers).
    groups: HashMap<String, TargetGroup>,
    strategies: Vec<placement::Strategy>,
    constraints: Vec<Constraint>,
}

/// What a pass decides for one service (step 2, pure): what to stop, drain, register and
/// start, and what to record. Acting on it (step 3) adds what only the acts tell: which
/// tasks started, which could not be placed.
#[derive(Debug, Default)]
struct Plan {
    /// Stopped tasks of finished deployments the in-memory view may drop.
    forget: Vec<String>,
    /// Tasks whose targets start draining now, with the reason they will be stopped with.
    mark_draining: Vec<(String, String)>,
    /// Their targets, deregistered now (the tasks stop once these have drained), and how
    /// many tasks they are of.
    drain: Vec<Binding>,
    drain_tasks: usize,
    /// RUNNING tasks' targets to record on the task and register.
    register: Vec<(String, Vec<Binding>)>,
    /// Targets of tasks that ended, to deregister.
    deregister: Vec<Binding>,
    /// Tasks to stop now, with their reason.
    stop: Vec<(String, String)>,
    /// Tasks to start: `None` placed by the service's strategies, `Some(instance)` there
    /// (DAEMON).
    start: Vec<Option<String>>,
    /// Steady unless a task gets started.
    steady_unless_started: bool,
    outcome: Outcome,
}

/// Whether the task is healthy as far as its containers go (spec §7.4): RUNNING and its
/// essential containers' health check HEALTHY; without a health check, RUNNING for
/// `healthy_after` — unless the service has load balancers (`load_balanced`), whose target
/// health then decides alone.
fn containers_healthy(
    t: &ServiceTask,
    now: Timestamp,
    healthy_after: Duration,
    load_balanced: bool,
) -> bool {
    if t.last_status != TaskStatus::Running || t.desired_stopped {
        return false;
    }
    match t.health_status() {
        "HEALTHY" => true,
        "UNHEALTHY" => false,
        _ if t.health_checked() => false,
        _ if load_balanced => true,
        _ => t
            .started_at
            .is_some_and(|s| now.0 - s.0 >= healthy_after.as_millis() as i64),
    }
}

/// Step 2: the pass's decisions for one service, from its snapshot alone.
fn plan(snap: &Snapshot, now: Timestamp, healthy_after: Duration) -> Plan {
    let svc = &snap.svc;
    let tasks = &snap.tasks;
    let name = &svc.name;
    let mut plan = Plan::default();
    let Some(primary) = svc.deployments.first() else {
        return plan;
    };
    let deployment_of = |t: &ServiceTask| t.started_by.clone().unwrap_or_default();
    let out = &mut plan.outcome;
    out.primary = primary.id.clone();
    for t in tasks {
        let c = out.counts.entry(deployment_of(t)).or_default();
        match t.last_status {
            TaskStatus::Running => c.running += 1,
            TaskStatus::Stopped if failed_to_start(t) => c.failed += 1,
            TaskStatus::Stopped => {}
            _ if t.last_status.is_pending() => c.pending += 1,
            _ => c.running += 1,
        }
        if t.last_status != TaskStatus::Stopped {
            out.alive.insert(deployment_of(t));
        }
    }
    plan.forget = tasks
        .iter()
        .filter(|t| t.last_status == TaskStatus::Stopped)
        .filter(|t| {
            !svc.deployments
                .iter()
                .any(|d| Some(&d.id) == t.started_by.as_ref())
        })
        .map(|t| t.id.clone())
        .collect();
    let out = &mut plan.outcome;
    out.no_tasks_left = out.alive.is_empty();
    let live: Vec<&ServiceTask> = tasks.iter().filter(|t| !t.desired_stopped).collect();
    let of_primary = |t: &ServiceTask| t.started_by.as_deref() == Some(primary.id.as_str());
    let draining = svc.status != "ACTIVE";

    // Circuit breaker and launch throttle (spec/ecs.md §7.5).
    let primary_counts = out.counts.get(&primary.id).copied().unwrap_or_default();
    let primary_started = tasks
        .iter()
        .any(|t| of_primary(t) && t.started_at.is_some());
    let desired_now = if svc.scheduling_strategy == "DAEMON" {
        primary.desired_count
    } else {
        svc.desired_count
    };
    out.trip = svc.circuit_breaker_enable
        && !draining
        && primary.rollout_state == "IN_PROGRESS"
        && !primary_started
        && primary_counts.failed >= breaker_threshold(desired_now);
    let mut primary_tasks: Vec<&ServiceTask> = tasks.iter().filter(|t| of_primary(t)).collect();
    primary_tasks.sort_by_key(|t| std::cmp::Reverse(t.created_at));
    let streak = primary_tasks
        .iter()
        .filter(|t| t.last_status == TaskStatus::Stopped)
        .take_while(|t| failed_to_start(t))
        .count();
    let last_failure = primary_tasks
        .iter()
        .filter(|t| failed_to_start(t))
        .filter_map(|t| t.stopped_at)
        .max();
    let throttled =
        last_failure.is_some_and(|at| now.0 - at.0 < backoff(streak).as_millis() as i64);
    if throttled {
        out.events.push(format!(
            "(service {name}) is unable to consistently start tasks successfully."
        ));
    }
    let may_start = !draining && !out.trip && primary.rollout_state != "FAILED" && !throttled;

    let grace = svc.health_check_grace_period_seconds as i64 * 1000;
    let targets = Targets::new(svc, snap.groups.clone(), &snap.fleet.nodes);
    // Healthy per spec §7.4: the container health check if there is one and, with load
    // balancers, a healthy target in every target group (without them, 40 s RUNNING stands
    // in for a health check); a task draining its targets is on its way out.
    let healthy = |t: &ServiceTask| {
        containers_healthy(t, now, healthy_after, targets.any())
            && (!targets.any() || (targets.healthy(t, now) && !targets.draining(t, now)))
    };
    let past_grace = |t: &ServiceTask| t.started_at.is_some_and(|s| now.0 - s.0 >= grace);
    let mut unhealthy_reason: HashMap<String, String> = HashMap::new();
    for t in live
        .iter()
        .filter(|t| t.last_status == TaskStatus::Running && past_grace(t))
    {
        if t.health_status() == "UNHEALTHY" {
            unhealthy_reason.insert(t.id.clone(), "Task failed container health checks".into());
        } else if let Some(group) = targets.unhealthy_in(t, now) {
            unhealthy_reason.insert(
                t.id.clone(),
                format!("Task failed ELB health checks in (target-group {group})"),
            );
        }
    }
    let stops: Vec<(String, StopWhy)>;
    let mut stuck = false;
    if svc.scheduling_strategy == "DAEMON" {
        let eligible = if draining {
            Vec::new()
        } else {
            snap.fleet.eligible.clone()
        };
        out.daemon_desired = Some(eligible.len() as u32);
        let placed: Vec<(String, String, bool)> = live
            .iter()
            .map(|t| {
                (
                    t.id.clone(),
                    t.container_instance.clone().unwrap_or_default(),
                    of_primary(t),
                )
            })
            .collect();
        let (on, stop) = rollout::daemon_step(&eligible, &placed);
        if may_start {
            plan.start = on.into_iter().map(Some).collect();
        }
        stops = stop;
    } else {
        let bounds = Bounds {
            desired: if draining { 0 } else { svc.desired_count },
            min_percent: if draining {
                0
            } else {
                svc.minimum_healthy_percent
            },
            max_percent: svc.maximum_percent,
        };
        let views: Vec<Live> = live
            .iter()
            .map(|t| Live {
                id: t.id.clone(),
                primary: of_primary(t),
                healthy: healthy(t),
                failing: unhealthy_reason.contains_key(&t.id),
                draining: t.drain_reason.is_some()
                    || !t
                        .container_instance
                        .as_ref()
                        .is_some_and(|i| snap.fleet.active.contains(i)),
            })
            .collect();
        let step = rollout::replica_step(&bounds, &views, may_start);
        plan.start = vec![None; step.start as usize];
        stops = step.stop;
        stuck = step.stuck;
    }
    if stuck {
        plan.outcome.events.push(format!(
            "(service {name}) was unable to stop or start tasks during a deployment because of the service deployment configuration. Update the minimumHealthyPercent or maximumPercent value and try again."
        ));
    }

    // Stops: a task with registered targets is deregistered first and stopped once they have
    // drained; the others stop now.
    let reason = |id: &str, why: StopWhy| match why {
        StopWhy::Replaced | StopWhy::ScaleIn => {
            format!("Scaling activity initiated by (deployment {})", primary.id)
        }
        StopWhy::Draining => "Container instance is draining".to_string(),
        StopWhy::Unhealthy => unhealthy_reason
            .get(id)
            .cloned()
            .unwrap_or_else(|| "Task failed container health checks".into()),
    };
    for (id, why) in &stops {
        let Some(t) = tasks.iter().find(|t| &t.id == id) else {
            continue;
        };
        // The reason is fixed when draining starts (the cause may be gone by the end).
        let reason = t.drain_reason.clone().unwrap_or_else(|| reason(id, *why));
        if targets.any() {
            let registered = targets.registered(t, now);
            if !registered.is_empty() {
                plan.drain.extend(registered);
                plan.drain_tasks += 1;
                if t.drain_reason.is_none() {
                    plan.mark_draining.push((id.clone(), reason));
                }
                continue;
            }
            if targets.draining(t, now) {
                continue;
            }
        }
        plan.stop.push((id.clone(), reason));
    }
    if targets.any() {
        // Register RUNNING tasks' targets (recorded on the task first, so they are known
        // however it ends); deregister those of tasks that are gone, whatever ended them,
        // unless a task that stays has the same target (a reused host port).
        let mut staying = BTreeSet::new();
        for t in tasks {
            let stopping = t.drain_reason.is_some() || stops.iter().any(|(id, _)| id == &t.id);
            if t.last_status == TaskStatus::Running && !t.desired_stopped && !stopping {
                staying.extend(targets.bindings(t));
                let missing = targets.missing(t, now);
                if !missing.is_empty() {
                    plan.register.push((t.id.clone(), missing));
                }
            } else if t.desired_stopped || t.last_status == TaskStatus::Stopped {
                plan.deregister.extend(targets.registered(t, now));
            }
        }
        plan.deregister.retain(|b| !staying.contains(b));
    }
    let healthy_primary = live.iter().filter(|t| of_primary(t) && healthy(t)).count() as u32;
    let want = plan.outcome.daemon_desired.unwrap_or(svc.desired_count);
    plan.steady_unless_started = !draining
        && stops.is_empty()
        && plan.outcome.alive.iter().all(|d| d == &primary.id)
        && live.len() as u32 == want
        && healthy_primary == want;
    plan
}

/// What acting on a plan started and could not place.
struct Applied {
    started: Vec<Task>,
    unplaced: Option<super::Failure>,
    /// A launch that failed outright (recorded, then reported as the pass's error).
    failed: Option<Error>,
}

impl ServiceScheduler {
    pub fn new(ecs: Ecs, elb: Elb, healthy_after: Duration) -> Self {
        ServiceScheduler {
            ecs,
            elb,
            healthy_after,
            clock: Arc::new(Timestamp::now),
        }
    }

    /// The scheduler with its time from `clock` (tests).
    pub fn with_clock(mut self, clock: Arc<dyn Fn() -> Timestamp + Send + Sync>) -> Self {
        self.clock = clock;
        self
    }

    /// One pass over every ACTIVE or DRAINING service. Returns how many services changed.
    pub async fn activate(&self) -> Result<usize, Error> {
        let rows = self.ecs.store.read(|r| {
            r.list(
                Kind::Service,
                &ListQuery {
                    limit: usize::MAX >> 1,
                    ..Default::default()
                },
            )
        })?;
        let mut changed = 0;
        for r in rows {
            if r.status.as_deref() == Some("INACTIVE") {
                continue;
            }
            let Some((_, s)) = load::<Service>(Some(r))? else {
                continue;
            };
            match self.reconcile(s).await {
                Ok(true) => changed += 1,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "service scheduler pass failed"),
            }
        }
        Ok(changed)
    }

    /// One service: snapshot, plan, apply, record. True if its record changed.
    async fn reconcile(&self, svc: Service) -> Result<bool, Error> {
        if svc.deployments.is_empty() {
            return Ok(false);
        }
        let now = (self.clock)();
        let snap = self.snapshot(svc).await?;
        let mut plan = plan(&snap, now, self.healthy_after);
        let applied = self.apply(&snap, &mut plan).await?;
        let mut out = plan.outcome;
        if !applied.started.is_empty() {
            out.events.push(format!(
                "(service {}) has started {} tasks: {}.",
                snap.svc.name,
                applied.started.len(),
                task_list(&applied.started)
            ));
        }
        if let Some(f) = &applied.unplaced {
            out.events.push(unplaced_message(&snap.svc.name, f));
        }
        out.steady = plan.steady_unless_started && applied.started.is_empty();
        let changed = self.record(&snap.svc, out, now).await?;
        match applied.failed {
            Some(e) => Err(e),
            None => Ok(changed),
        }
    }

    /// Step 1: the service's tasks and its cluster's instances, from the in-memory views
    /// (built inside a write job the first time), and its target groups.
    async fn snapshot(&self, svc: Service) -> Result<Snapshot, Error> {
        let strategies =
            placement::strategies_from(&svc.placement_strategy).map_err(Error::InvalidParameter)?;
        let constraints = placement::constraints_from(&svc.placement_constraints)
            .map_err(Error::InvalidParameter)?;
        let groups = if svc.load_balancers.is_empty() {
            HashMap::new()
        } else {
            self.elb.records()?.target_groups.into_iter().collect()
        };
        let ecs = &self.ecs;
        for _ in 0..3 {
            let tasks = ecs.service_tasks.of(&svc.cluster, &svc.name);
            let fleet = ecs.capacity.read(&svc.cluster, |view| {
                let instances = view.instances();
                Fleet {
                    active: instances
                        .iter()
                        .filter(|i| i.status == InstanceStatus::Active)
                        .map(|i| i.id.clone())
                        .collect(),
                    eligible: instances
                        .iter()
                        .filter(|i| i.status == InstanceStatus::Active && i.agent_connected)
                        .filter(|i| {
                            constraints.iter().all(|c| match c {
                                Constraint::MemberOf(e) => query::eval(e, &InstanceFacts(i, None)),
                                Constraint::DistinctInstance => true,
                            })
                        })
                        .map(|i| i.id.clone())
                        .collect(),
                    nodes: instances
                        .iter()
                        .map(|i| (i.id.clone(), i.ec2_instance_id.clone()))
                        .collect(),
                }
            });
            if let (Some(tasks), Some(fleet)) = (tasks, fleet) {
                return Ok(Snapshot {
                    svc,
                    tasks,
                    fleet,
                    groups,
                    strategies,
                    constraints,
                });
            }
            let (capacity, service_tasks) = (ecs.capacity.clone(), ecs.service_tasks.clone());
            let cluster = svc.cluster.clone();
            ecs.store
                .write(move |tx| {
                    capacity.load(tx, &cluster)?;
                    service_tasks.load(tx, &cluster)
                })
                .await?;
        }
        Err(Error::internal("the scheduler's views keep being dropped"))
    }

    /// Step 3: does what the plan says — stops first (they free room), then registrations,
    /// then all launches at once — adding the events of what was done to its outcome.
    async fn apply(&self, snap: &Snapshot, plan: &mut Plan) -> Result<Applied, Error> {
        let ecs = &self.ecs;
        let svc = &snap.svc;
        let (cluster, name) = (&svc.cluster, &svc.name);
        let out = &mut plan.outcome;
        if !plan.forget.is_empty() {
            ecs.service_tasks.forget(cluster, name, &plan.forget);
        }
        if !plan.mark_draining.is_empty() {
            ecs.tasks_mark_draining(cluster, plan.mark_draining.clone())
                .await?;
        }
        if !plan.drain.is_empty() {
            out.events.push(format!(
                "(service {name}) has begun draining connections on {} tasks.",
                plan.drain_tasks
            ));
            self.retarget(name, plan.drain.clone(), false, out).await?;
        }
        if !plan.register.is_empty() {
            ecs.tasks_record_targets(cluster, plan.register.clone())
                .await?;
        }
        let register = plan.register.iter().flat_map(|(_, b)| b.clone()).collect();
        self.retarget(name, register, true, out).await?;
        self.retarget(name, plan.deregister.clone(), false, out)
            .await?;
        if !plan.stop.is_empty() {
            let stopped = ecs
                .tasks_stop_by_scheduler(cluster, plan.stop.clone())
                .await?;
            if !stopped.is_empty() {
                out.events.push(format!(
                    "(service {name}) has stopped {} running tasks: {}.",
                    stopped.len(),
                    task_list(&stopped)
                ));
            }
        }
        self.launch(snap, &plan.start).await
    }

    /// Starts the plan's tasks of the PRIMARY deployment: replicas in RunTask batches placed
    /// by the service's strategies, DAEMON tasks on their instances, all at once.
    async fn launch(&self, snap: &Snapshot, start: &[Option<String>]) -> Result<Applied, Error> {
        let svc = &snap.svc;
        let primary = &svc.deployments[0];
        let replicas = start.iter().filter(|i| i.is_none()).count();
        let mut batches: Vec<(usize, Option<Vec<String>>)> = (0..replicas)
            .step_by(super::MAX_RUN_COUNT as usize)
            .map(|from| ((replicas - from).min(super::MAX_RUN_COUNT as usize), None))
            .collect();
        batches.extend(start.iter().flatten().map(|i| (1, Some(vec![i.clone()]))));
        let mut launches = tokio::task::JoinSet::new();
        for (count, on) in batches {
            let ecs = self.ecs.clone();
            let run = RunTask {
                cluster: Some(svc.cluster.to_string()),
                task_definition: format!("{}:{}", primary.family, primary.revision),
                count: count as i64,
                launch_type: Some(primary.launch_type.clone()),
                group: Some(format!("service:{}", svc.name)),
                started_by: Some(primary.id.clone()),
                overrides: None,
                strategies: snap.strategies.clone(),
                constraints: snap.constraints.clone(),
                instances: on,
                tags: if svc.propagate_tags == "SERVICE" {
                    svc.tags.clone()
                } else {
                    Vec::new()
                },
                propagate_tags: Some(svc.propagate_tags.clone()),
                managed_tags: svc.enable_ecs_managed_tags,
            };
            launches.spawn(async move { ecs.task_run(run).await });
        }
        let mut applied = Applied {
            started: Vec::new(),
            unplaced: None,
            failed: None,
        };
        while let Some(done) = launches.join_next().await {
            match done.map_err(Error::internal)? {
                Ok((tasks, failures)) => {
                    applied.started.extend(tasks);
                    if let Some(f) = failures.into_iter().next() {
                        applied.unplaced.get_or_insert(f);
                    }
                }
                Err(e) => {
                    applied.failed.get_or_insert(e);
                }
            }
        }
        Ok(applied)
    }

    /// Registers targets (`register`) or deregisters them (they drain for the group's
    /// deregistration delay): one call per target group, with the AWS event.
    async fn retarget(
        &self,
        service: &str,
        bindings: Vec<Binding>,
        register: bool,
        out: &mut Outcome,
    ) -> Result<(), Error> {
        for (group, list) in by_group(bindings) {
            let n = list.len();
            let verb = if register {
                let targets = list
                    .into_iter()
                    .map(|b| (b.id, Some(b.port), None))
                    .collect();
                self.elb.targets_register(&group, targets).await?;
                "registered"
            } else {
                let targets = list.into_iter().map(|b| (b.id, Some(b.port))).collect();
                self.elb.targets_deregister(&group, targets).await?;
                "deregistered"
            };
            out.events.push(format!(
                "(service {service}) {verb} {n} targets in (target-group {group})"
            ));
        }
        Ok(())
    }

    /// Step 4: records a pass's outcome on the service. Nothing is written when it changes
    /// nothing (an unchanged service costs no write); otherwise the record is re-read in the
    /// write job (UpdateService may have run since) and the outcome applied to it.
    async fn record(&self, seen: &Service, out: Outcome, now: Timestamp) -> Result<bool, Error> {
        let mut preview = seen.clone();
        apply(&mut preview, &out, now);
        if preview == *seen {
            return Ok(false);
        }
        let (cluster, name) = (seen.cluster.clone(), seen.name.clone());
        self.ecs
            .store
            .write(move |tx| {
                let (g, mut s) = services::get(tx, &cluster, &name)?;
                if s.status == "INACTIVE" {
                    return Ok(false);
                }
                let before = s.clone();
                apply(&mut s, &out, now);
                if s == before {
                    return Ok(false);
                }
                services::put(tx, &s, Some(g))?;
                Ok(true)
            })
            .await
    }
}

/// Applies a pass's outcome to the service record.
fn apply(s: &mut Service, out: &Outcome, now: Timestamp) {
    let name = s.name.clone();
    for d in &mut s.deployments {
        let c = out.counts.get(&d.id).copied().unwrap_or_default();
        d.running_count = c.running;
        d.pending_count = c.pending;
        if d.status == "PRIMARY" {
            d.failed_tasks = c.failed;
        } else {
            d.desired_count = c.running + c.pending;
        }
    }
    let current = s.deployments.first().is_some_and(|d| d.id == out.primary);
    if current && let Some(n) = out.daemon_desired {
        s.desired_count = n;
        s.deployments[0].desired_count = n;
    }
    for e in &out.events {
        push_event(s, e.clone());
    }
    if current && out.trip {
        let failed = &mut s.deployments[0];
        failed.rollout_state = "FAILED".into();
        failed.rollout_state_reason =
            "ECS deployment circuit breaker: tasks failed to start.".into();
        failed.updated_at = now;
        let failed_id = failed.id.clone();
        push_event(
            s,
            format!(
                "(service {name}) (deployment {failed_id}) deployment failed: tasks failed to start."
            ),
        );
        if s.circuit_breaker_rollback
            && let Some((family, revision)) = s.completed.clone()
        {
            s.family = family;
            s.revision = revision;
            let d = new_deployment(s, s.desired_count);
            let message = format!(
                "(service {name}) rolling back to deployment {} ({}:{}).",
                d.id, s.family, s.revision
            );
            deploy(s, d);
            push_event(s, message);
        }
    }
    // Old deployments whose tasks are all gone leave the list.
    s.deployments
        .retain(|d| d.status == "PRIMARY" || out.alive.contains(&d.id));
    let primary_current = s.deployments.len() == 1 && s.deployments[0].id == out.primary;
    if primary_current && out.steady {
        let p = &mut s.deployments[0];
        if p.rollout_state == "IN_PROGRESS" {
            p.rollout_state = "COMPLETED".into();
            p.rollout_state_reason = format!("ECS deployment {} completed.", p.id);
            p.updated_at = now;
            let id = p.id.clone();
            s.completed = Some((p.family.clone(), p.revision));
            push_event(
                s,
                format!("(service {name}) (deployment {id}) deployment completed."),
            );
        }
        if !s.steady {
            push_event(s, format!("(service {name}) has reached a steady state."));
        }
    }
    s.steady = primary_current && out.steady;
    if s.status == "DRAINING" && out.no_tasks_left {
        s.status = "INACTIVE".into();
        for d in &mut s.deployments {
            d.running_count = 0;
            d.pending_count = 0;
        }
    }
}

fn by_group(bindings: Vec<Binding>) -> BTreeMap<String, Vec<Binding>> {
    let mut out: BTreeMap<String, Vec<Binding>> = BTreeMap::new();
    for b in bindings {
        if !out.get(&b.target_group).is_some_and(|l| l.contains(&b)) {
            out.entry(b.target_group.clone()).or_default().push(b);
        }
    }
    out
}

fn task_list(tasks: &[Task]) -> String {
    tasks
        .iter()
        .map(|t| format!("(task {})", t.id))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The event for a task that could not be placed, naming the closest instance's reason.
fn unplaced_message(name: &str, f: &super::Failure) -> String {
    let base = format!(
        "(service {name}) was unable to place a task because no container instance met all of its requirements."
    );
    let instance = f.arn.rsplit('/').next().unwrap_or("");
    let why = match f.reason.as_str() {
        "RESOURCE:CPU" => "has insufficient CPU units available.".to_string(),
        "RESOURCE:MEMORY" => "has insufficient memory available.".to_string(),
        "RESOURCE:PORTS" | "RESOURCE:PORTS_UDP" => {
            "is already using a port required by your task.".to_string()
        }
        "AGENT" => "encountered error \"AGENT\".".to_string(),
        "ATTRIBUTE" => match &f.detail {
            Some(d) => format!("is missing an attribute required by your task: {d}."),
            None => "is missing an attribute required by your task.".to_string(),
        },
        _ => return base,
    };
    format!("{base} The closest matching (container-instance {instance}) {why}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);
    const FORTY: Duration = Duration::from_secs(40);

    /// A 3-task service (100/200) on deployment `new`, behind target group `tg` if `lb`.
    fn service(lb: bool) -> Service {
        let deployment = |id: &str, status: &str, state: &str| {
            json!({"id": id, "status": status, "family": "web", "revision": 1,
                "desired_count": 3, "running_count": 0, "pending_count": 0, "failed_tasks": 0,
                "rollout_state": state, "rollout_state_reason": "", "launch_type": "EC2",
                "created_at": 0, "updated_at": 0})
        };
        let load_balancers = if lb {
            json!([{"targetGroupArn": "tg", "containerName": "app", "containerPort": 80}])
        } else {
            json!([])
        };
        serde_json::from_value(json!({
            "name": "svc", "cluster": "c", "status": "ACTIVE", "scheduling_strategy": "REPLICA",
            "desired_count": 3, "launch_type": "EC2", "family": "web", "revision": 1,
            "placement_strategy": [], "placement_constraints": [],
            "minimum_healthy_percent": 100, "maximum_percent": 200,
            "circuit_breaker_enable": true, "circuit_breaker_rollback": false,
            "health_check_grace_period_seconds": 0, "load_balancers": load_balancers,
            "network_configuration": null, "tags": [], "propagate_tags": "NONE",
            "enable_ecs_managed_tags": false, "created_at": 0, "created_by": "root",
            "deployments": [deployment("new", "PRIMARY", "IN_PROGRESS"),
                            deployment("old", "ACTIVE", "COMPLETED")],
            "events": [], "completed": null, "steady": true,
        }))
        .unwrap()
    }

    /// A RUNNING task of deployment `of`, started `age` ago, bound to host port `port` on
    /// instance `i1`.
    fn task(id: &str, of: &str, age: Duration, port: i64) -> ServiceTask {
        serde_json::from_value(json!({
            "id": id, "group": "service:svc", "started_by": of, "container_instance": "i1",
            "last_status": "RUNNING", "desired_stopped": false, "created_at": 0,
            "started_at": NOW.0 - age.as_millis() as i64, "stopped_at": null, "stop_code": null,
            "containers": [{"name": "app", "essential": true, "health_status": null,
                "network_bindings": [{"containerPort": 80, "hostPort": port}]}],
        }))
        .unwrap()
    }

    /// Target group `tg` with these `(port, health)` targets on node `n1`.
    fn group(targets: &[(i64, &str)]) -> HashMap<String, TargetGroup> {
        let targets: Vec<serde_json::Value> = targets
            .iter()
            .map(|(port, h)| {
                json!({"id": "n1", "port": port, "availability_zone": null, "registered_at": 0,
                    "draining_until": null, "health": [h, null]})
            })
            .collect();
        let tg = serde_json::from_value(json!({
            "name": "tg", "id": "1", "protocol": "HTTP", "port": 80, "protocol_version": "HTTP1",
            "target_type": "instance", "vpc_id": null,
            "health_check": {"protocol": "HTTP", "port": "traffic-port", "path": "/",
                "interval_seconds": 5, "timeout_seconds": 2, "healthy_threshold": 5,
                "unhealthy_threshold": 2, "matcher": "200"},
            "attributes": {"deregistration_delay.timeout_seconds": "300"}, "tags": [],
            "targets": targets, "created_at": 0,
        }))
        .unwrap();
        HashMap::from([("tg".to_string(), tg)])
    }

    fn snapshot(
        svc: Service,
        tasks: Vec<ServiceTask>,
        groups: HashMap<String, TargetGroup>,
    ) -> Snapshot {
        Snapshot {
            svc,
            tasks,
            fleet: Fleet {
                active: ["i1".to_string()].into(),
                eligible: vec!["i1".into()],
                nodes: HashMap::from([("i1".to_string(), "n1".to_string())]),
            },
            groups,
            strategies: vec![],
            constraints: vec![],
        }
    }

    /// The deployment that dropped requests: right after creation the old tasks are seconds
    /// old. Serving healthy targets, they count toward the minimum: the new tasks start, and
    /// no old one is drained until a new one is healthy in the load balancer.
    #[test]
    fn scheduler_counts_load_balanced_tasks_healthy_by_their_targets() {
        let young = Duration::from_secs(5);
        let old: Vec<ServiceTask> = (0..3)
            .map(|i| task(&format!("o{i}"), "old", young, 30000 + i))
            .collect();
        let healthy = group(&[(30000, "healthy"), (30001, "healthy"), (30002, "healthy")]);
        let p = plan(
            &snapshot(service(true), old.clone(), healthy.clone()),
            NOW,
            FORTY,
        );
        assert_eq!(p.start.len(), 3, "{p:?}");
        assert!(p.stop.is_empty() && p.drain.is_empty(), "{p:?}");
        // Once a new task is healthy in the group, one old task may drain.
        let mut tasks = old.clone();
        tasks.push(task("n0", "new", young, 31000));
        let mut groups = group(&[
            (30000, "healthy"),
            (30001, "healthy"),
            (30002, "healthy"),
            (31000, "healthy"),
        ]);
        let p = plan(
            &snapshot(service(true), tasks.clone(), groups.clone()),
            NOW,
            FORTY,
        );
        assert_eq!(p.drain_tasks, 1, "{p:?}");
        assert_eq!(p.mark_draining.len(), 1);
        // A new task whose target is still initial does not count.
        groups.get_mut("tg").unwrap().targets[3].health = None;
        let p = plan(&snapshot(service(true), tasks, groups), NOW, FORTY);
        assert_eq!(p.drain_tasks, 0, "{p:?}");
        // Without a load balancer, a task without a health check is healthy after 40 s only.
        let p = plan(
            &snapshot(service(false), old.clone(), HashMap::new()),
            NOW,
            FORTY,
        );
        assert_eq!(
            p.stop.len(),
            3,
            "young old tasks are not healthy: stopped freely"
        );
        let seasoned: Vec<ServiceTask> = (0..3)
            .map(|i| task(&format!("o{i}"), "old", Duration::from_secs(41), 30000 + i))
            .collect();
        let p = plan(
            &snapshot(service(false), seasoned, HashMap::new()),
            NOW,
            FORTY,
        );
        assert!(p.stop.is_empty(), "{p:?}");
    }

    /// A task that ended is deregistered by the targets recorded on it (its stopped
    /// containers show no ports), unless a task that stays now has the same target.
    #[test]
    fn scheduler_deregisters_recorded_targets_of_ended_tasks() {
        let mut svc = service(true);
        svc.deployments.truncate(1);
        let mut gone = task("t0", "new", Duration::from_secs(60), 30000);
        gone.last_status = TaskStatus::Stopped;
        gone.desired_stopped = true;
        gone.containers[0].network_bindings.clear();
        gone.targets = vec![Binding {
            target_group: "tg".into(),
            id: "n1".into(),
            port: 30000,
        }];
        let live = task("t1", "new", Duration::from_secs(60), 30001);
        let p = plan(
            &snapshot(
                svc.clone(),
                vec![gone.clone(), live.clone()],
                group(&[(30000, "unhealthy"), (30001, "healthy")]),
            ),
            NOW,
            FORTY,
        );
        assert_eq!(p.deregister, gone.targets, "{p:?}");
        // The port was reused by a task that stays: its target is left alone.
        let reused = task("t2", "new", Duration::from_secs(60), 30000);
        let p = plan(
            &snapshot(
                svc,
                vec![gone, live, reused],
                group(&[(30000, "healthy"), (30001, "healthy")]),
            ),
            NOW,
            FORTY,
        );
        assert!(p.deregister.is_empty(), "{p:?}");
    }

    /// Tasks that keep failing to start trip the breaker (none ever ran), and hold launches
    /// back for 10 s after three failures without one.
    #[test]
    fn scheduler_trips_the_breaker_and_backs_off() {
        let mut svc = service(false);
        svc.deployments.truncate(1);
        let failed = |id: &str, at: i64| {
            let mut t = task(id, "new", Duration::ZERO, 0);
            t.last_status = TaskStatus::Stopped;
            t.desired_stopped = true;
            t.started_at = None;
            t.stopped_at = Some(Timestamp(at));
            t.stop_code = Some("TaskFailedToStart".into());
            t
        };
        let tasks: Vec<ServiceTask> = (0..3)
            .map(|i| failed(&format!("f{i}"), NOW.0 - 1000))
            .collect();
        let p = plan(
            &snapshot(svc.clone(), tasks.clone(), HashMap::new()),
            NOW,
            FORTY,
        );
        assert!(p.outcome.trip);
        assert!(p.start.is_empty());
        svc.circuit_breaker_enable = false;
        let p = plan(
            &snapshot(svc.clone(), tasks.clone(), HashMap::new()),
            NOW,
            FORTY,
        );
        assert!(!p.outcome.trip && p.start.is_empty(), "held back: {p:?}");
        assert!(
            p.outcome
                .events
                .iter()
                .any(|e| e.contains("unable to consistently start tasks"))
        );
        let later = Timestamp(NOW.0 + 10_000);
        let p = plan(&snapshot(svc, tasks, HashMap::new()), later, FORTY);
        assert_eq!(p.start.len(), 3, "after the back-off: {p:?}");
    }

    #[test]
    fn scheduler_breaker_threshold_and_backoff() {
        assert_eq!(breaker_threshold(1), 3);
        assert_eq!(breaker_threshold(10), 5);
        assert_eq!(breaker_threshold(1000), 200);
        assert_eq!(backoff(2), Duration::ZERO);
        assert_eq!(backoff(3), Duration::from_secs(10));
        assert_eq!(backoff(4), Duration::from_secs(20));
        assert_eq!(backoff(40), Duration::from_secs(900));
    }
}
