//! The service scheduler (spec/ecs.md §7): a reconciler that, on every pass, compares each
//! live service with its tasks and instances, asks the pure planner (`crate::rollout`) what to
//! start and stop, does it through the same paths as RunTask/StartTask and StopTask, and
//! records what happened on the service: deployment counts and rollout state, the circuit
//! breaker, and events in AWS's wording.

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
use berth_types::{Error, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap};
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

impl ServiceScheduler {
    pub fn new(ecs: Ecs, elb: Elb, healthy_after: Duration) -> Self {
        ServiceScheduler {
            ecs,
            elb,
            healthy_after,
        }
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

    /// Whether the task is healthy as far as its containers go (spec §7.4): RUNNING and its
    /// essential containers' health check HEALTHY; without a health check, RUNNING for
    /// `healthy_after` — unless the service has load balancers (`load_balanced`), whose target
    /// health then decides alone (the caller checks it).
    fn healthy(&self, t: &ServiceTask, now: Timestamp, load_balanced: bool) -> bool {
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
                .is_some_and(|s| now.0 - s.0 >= self.healthy_after.as_millis() as i64),
        }
    }

    /// The service's tasks and its cluster's instances, from the in-memory views (built inside
    /// a write job the first time).
    async fn snapshot(
        &self,
        svc: &Service,
        constraints: &[Constraint],
    ) -> Result<(Vec<ServiceTask>, Fleet), Error> {
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
                return Ok((tasks, fleet));
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

    /// Reconciles one service; true if its record changed.
    async fn reconcile(&self, svc: Service) -> Result<bool, Error> {
        let ecs = &self.ecs;
        let now = Timestamp::now();
        let name = svc.name.clone();
        let cluster = svc.cluster.clone();
        let group = format!("service:{name}");
        let Some(primary) = svc.deployments.first().cloned() else {
            return Ok(false);
        };
        let (strategies, constraints) = (self.strategies(&svc)?, self.constraints(&svc)?);
        let (tasks, fleet) = self.snapshot(&svc, &constraints).await?;
        let deployment_of = |t: &ServiceTask| t.started_by.clone().unwrap_or_default();
        let mut out = Outcome {
            primary: primary.id.clone(),
            ..Default::default()
        };
        for t in &tasks {
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
        // Stopped tasks of deployments that are gone are no longer needed here.
        let finished: Vec<String> = tasks
            .iter()
            .filter(|t| t.last_status == TaskStatus::Stopped)
            .filter(|t| {
                !svc.deployments
                    .iter()
                    .any(|d| Some(&d.id) == t.started_by.as_ref())
            })
            .map(|t| t.id.clone())
            .collect();
        if !finished.is_empty() {
            ecs.service_tasks.forget(&cluster, &name, &finished);
        }
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
        let groups = if svc.load_balancers.is_empty() {
            HashMap::new()
        } else {
            self.elb
                .data_plane_config()?
                .target_groups
                .into_iter()
                .collect()
        };
        let targets = Targets::new(&svc, groups, &fleet.nodes);
        // Healthy per spec §7.4: the container health check if there is one and, with load
        // balancers, a healthy target in every target group (without them, 40 s RUNNING
        // stands in for a health check); a task draining its targets is on its way out.
        let healthy = |t: &ServiceTask| {
            self.healthy(t, now, targets.any())
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
        let mut start_on: Vec<Option<String>> = Vec::new();
        let stops: Vec<(String, StopWhy)>;
        let mut stuck = false;
        if svc.scheduling_strategy == "DAEMON" {
            let eligible = if draining { Vec::new() } else { fleet.eligible };
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
                start_on = on.into_iter().map(Some).collect();
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
                            .is_some_and(|i| fleet.active.contains(i)),
                })
                .collect();
            let step = rollout::replica_step(&bounds, &views, may_start);
            start_on = vec![None; step.start as usize];
            stops = step.stop;
            stuck = step.stuck;
        }
        if stuck {
            out.events.push(format!(
                "(service {name}) was unable to stop or start tasks during a deployment because of the service deployment configuration. Update the minimumHealthyPercent or maximumPercent value and try again."
            ));
        }

        // Act: stops first (they free room), then starts, all launches at once. A task with
        // registered targets is deregistered first and stopped once they have drained.
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
        let mut to_drain = Vec::new();
        let mut marks = Vec::new();
        let mut stop_now = Vec::new();
        for (id, why) in &stops {
            let Some(t) = tasks.iter().find(|t| &t.id == id) else {
                continue;
            };
            // The reason is fixed when draining starts (the cause may be gone by the end).
            let reason = t.drain_reason.clone().unwrap_or_else(|| reason(id, *why));
            if targets.any() {
                let registered = targets.registered(t, now);
                if !registered.is_empty() {
                    to_drain.push(registered);
                    if t.drain_reason.is_none() {
                        marks.push((id.clone(), reason));
                    }
                    continue;
                }
                if targets.draining(t, now) {
                    continue;
                }
            }
            stop_now.push((id.clone(), reason));
        }
        if !marks.is_empty() {
            ecs.tasks_mark_draining(&cluster, marks).await?;
        }
        if !to_drain.is_empty() {
            out.events.push(format!(
                "(service {name}) has begun draining connections on {} tasks.",
                to_drain.len()
            ));
            self.retarget(
                &name,
                to_drain.into_iter().flatten().collect(),
                false,
                &mut out,
            )
            .await?;
        }
        if targets.any() {
            // Register RUNNING tasks' targets (recorded on the task first, so they are known
            // however it ends); deregister those of tasks that are gone, whatever ended them,
            // unless a task that stays has the same target (a reused host port).
            let mut register: Vec<(String, Vec<Binding>)> = Vec::new();
            let mut staying = BTreeSet::new();
            let mut gone = Vec::new();
            for t in &tasks {
                let stopping = t.drain_reason.is_some() || stops.iter().any(|(id, _)| id == &t.id);
                if t.last_status == TaskStatus::Running && !t.desired_stopped && !stopping {
                    staying.extend(targets.bindings(t));
                    let missing = targets.missing(t, now);
                    if !missing.is_empty() {
                        register.push((t.id.clone(), missing));
                    }
                } else if t.desired_stopped || t.last_status == TaskStatus::Stopped {
                    gone.extend(targets.registered(t, now));
                }
            }
            gone.retain(|b| !staying.contains(b));
            if !register.is_empty() {
                ecs.tasks_record_targets(&cluster, register.clone()).await?;
            }
            let register = register.into_iter().flat_map(|(_, b)| b).collect();
            self.retarget(&name, register, true, &mut out).await?;
            self.retarget(&name, gone, false, &mut out).await?;
        }
        if !stop_now.is_empty() {
            let stopped = ecs.tasks_stop_by_scheduler(&cluster, stop_now).await?;
            if !stopped.is_empty() {
                out.events.push(format!(
                    "(service {name}) has stopped {} running tasks: {}.",
                    stopped.len(),
                    task_list(&stopped)
                ));
            }
        }
        let replicas = start_on.iter().filter(|i| i.is_none()).count();
        let mut batches: Vec<(usize, Option<Vec<String>>)> = (0..replicas)
            .step_by(super::MAX_RUN_COUNT as usize)
            .map(|from| ((replicas - from).min(super::MAX_RUN_COUNT as usize), None))
            .collect();
        batches.extend(start_on.into_iter().flatten().map(|i| (1, Some(vec![i]))));
        let mut launches = tokio::task::JoinSet::new();
        for (count, on) in batches {
            let ecs = ecs.clone();
            let run = RunTask {
                cluster: Some(cluster.to_string()),
                task_definition: format!("{}:{}", primary.family, primary.revision),
                count: count as i64,
                launch_type: Some(primary.launch_type.clone()),
                group: Some(group.clone()),
                started_by: Some(primary.id.clone()),
                overrides: None,
                strategies: strategies.clone(),
                constraints: constraints.clone(),
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
        let mut started = Vec::new();
        let mut unplaced = None;
        let mut failed = None;
        while let Some(done) = launches.join_next().await {
            match done.map_err(Error::internal)? {
                Ok((tasks, failures)) => {
                    started.extend(tasks);
                    if let Some(f) = failures.into_iter().next() {
                        unplaced.get_or_insert(f);
                    }
                }
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        if !started.is_empty() {
            out.events.push(format!(
                "(service {name}) has started {} tasks: {}.",
                started.len(),
                task_list(&started)
            ));
        }
        if let Some(f) = unplaced {
            out.events.push(unplaced_message(&name, &f));
        }
        let healthy_primary = live.iter().filter(|t| of_primary(t) && healthy(t)).count() as u32;
        let want = out.daemon_desired.unwrap_or(svc.desired_count);
        out.steady = !draining
            && started.is_empty()
            && stops.is_empty()
            && out.alive.iter().all(|d| d == &primary.id)
            && live.len() as u32 == want
            && healthy_primary == want;
        let changed = self.record(&svc, out).await?;
        match failed {
            Some(e) => Err(e),
            None => Ok(changed),
        }
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

    fn strategies(&self, svc: &Service) -> Result<Vec<placement::Strategy>, Error> {
        placement::strategies_from(&svc.placement_strategy).map_err(Error::InvalidParameter)
    }

    fn constraints(&self, svc: &Service) -> Result<Vec<Constraint>, Error> {
        placement::constraints_from(&svc.placement_constraints).map_err(Error::InvalidParameter)
    }

    /// Records a pass's outcome on the service. Nothing is written when it changes nothing
    /// (an unchanged service costs no write); otherwise the record is re-read in the write job
    /// (UpdateService may have run since) and the outcome applied to it.
    async fn record(&self, seen: &Service, out: Outcome) -> Result<bool, Error> {
        let mut preview = seen.clone();
        apply(&mut preview, &out);
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
                apply(&mut s, &out);
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
fn apply(s: &mut Service, out: &Outcome) {
    let name = s.name.clone();
    let now = Timestamp::now();
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
