//! The service scheduler's pure planner (spec/ecs.md §7.3, §7.6): given a service's bounds and
//! its live tasks as the scheduler sees them, what to start and what to stop in this pass. No
//! store, no clock: the scheduler feeds it a snapshot and applies the step.

use std::collections::BTreeMap;

/// `desiredCount` and the deployment configuration's percentages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub desired: u32,
    pub min_percent: u32,
    pub max_percent: u32,
}

impl Bounds {
    /// Tasks that must stay RUNNING and healthy: `ceil(D × min% / 100)`.
    pub fn lower(&self) -> u32 {
        (self.desired as u64 * self.min_percent as u64).div_ceil(100) as u32
    }

    /// Cap on RUNNING + PENDING tasks: `floor(D × max% / 100)`.
    pub fn upper(&self) -> u32 {
        (self.desired as u64 * self.max_percent as u64 / 100) as u32
    }
}

/// A live (desired RUNNING) task of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Live {
    pub id: String,
    /// Of the PRIMARY deployment.
    pub primary: bool,
    /// RUNNING and healthy (spec/ecs.md §7.4).
    pub healthy: bool,
    /// Failed its health check outside the grace period: it must be replaced.
    pub failing: bool,
    /// On a DRAINING (or gone) instance: it must move.
    pub draining: bool,
}

/// Why a task is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopWhy {
    /// Of an old deployment.
    Replaced,
    /// More PRIMARY tasks than desired.
    ScaleIn,
    /// Its instance is draining.
    Draining,
    /// It failed its health checks.
    Unhealthy,
}

/// What one pass does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Step {
    /// New PRIMARY tasks to start.
    pub start: u32,
    pub stop: Vec<(String, StopWhy)>,
    /// Tasks must be replaced but the bounds allow neither a start nor a stop.
    pub stuck: bool,
}

/// One REPLICA pass. New tasks are started while RUNNING + PENDING stays within `upper`;
/// tasks that are not healthy (pending, failing, of old deployments) are stopped freely since
/// that never lowers the healthy count; healthy tasks are stopped only while the healthy count
/// stays at or above `lower`. Tasks being stopped still count until they are gone, so a pass
/// never starts into room a stop has not freed yet. `may_start` is false while launches are
/// held back (circuit breaker tripped).
pub fn replica_step(b: &Bounds, live: &[Live], may_start: bool) -> Step {
    let (lower, upper) = (b.lower(), b.upper());
    let keeps = |t: &&Live| t.primary && !t.failing && !t.draining;
    let primary_ok = live.iter().filter(keeps).count() as u32;
    let mut step = Step::default();
    if may_start {
        let room = upper.saturating_sub(live.len() as u32);
        step.start = b.desired.saturating_sub(primary_ok).min(room);
    }
    let mut healthy = live.iter().filter(|t| t.healthy).count() as u32;
    let mut stop = |t: &Live, why: StopWhy, step: &mut Step| -> bool {
        if t.healthy {
            if healthy <= lower {
                return false;
            }
            healthy -= 1;
        }
        step.stop.push((t.id.clone(), why));
        true
    };
    // Failing tasks, then what is not healthy and must go anyway.
    for t in live.iter().filter(|t| t.failing) {
        stop(t, StopWhy::Unhealthy, &mut step);
    }
    for t in live.iter().filter(|t| !t.failing && !t.healthy) {
        if t.draining {
            stop(t, StopWhy::Draining, &mut step);
        } else if !t.primary {
            stop(t, StopWhy::Replaced, &mut step);
        }
    }
    // Surplus PRIMARY tasks (scale-in): the not-yet-healthy ones first.
    let mut surplus = primary_ok.saturating_sub(b.desired);
    let mut kept: Vec<&Live> = live.iter().filter(keeps).collect();
    kept.sort_by_key(|t| t.healthy);
    for t in kept {
        if surplus == 0 {
            break;
        }
        if stop(t, StopWhy::ScaleIn, &mut step) {
            surplus -= 1;
        }
    }
    // Healthy tasks of old deployments and on draining instances, within the lower bound.
    let mut blocked = false;
    for t in live.iter().filter(|t| t.healthy && !t.failing) {
        let why = if t.draining {
            StopWhy::Draining
        } else if !t.primary {
            StopWhy::Replaced
        } else {
            continue;
        };
        if !stop(t, why, &mut step) {
            blocked = true;
        }
    }
    step.stuck = blocked && step.start == 0 && step.stop.is_empty() && upper <= b.desired;
    step
}

/// One DAEMON pass (spec/ecs.md §7.6): one PRIMARY task on every eligible instance. `tasks`
/// maps each live task to its instance and whether it is of the PRIMARY deployment. Old tasks
/// are stopped first and replaced on a later pass (min 0% / max 100%), instance by instance.
/// Returns the instances to start a task on and the tasks to stop.
pub fn daemon_step(
    eligible: &[String],
    tasks: &[(String, String, bool)],
) -> (Vec<String>, Vec<(String, StopWhy)>) {
    let mut on: BTreeMap<&str, Vec<&(String, String, bool)>> = BTreeMap::new();
    for t in tasks {
        on.entry(t.1.as_str()).or_default().push(t);
    }
    let mut start = Vec::new();
    let mut stop = Vec::new();
    for (instance, here) in &on {
        if !eligible.iter().any(|e| e == instance) {
            stop.extend(here.iter().map(|t| (t.0.clone(), StopWhy::Draining)));
            continue;
        }
        let mut primary_seen = false;
        for t in here {
            if !t.2 {
                stop.push((t.0.clone(), StopWhy::Replaced));
            } else if primary_seen {
                stop.push((t.0.clone(), StopWhy::ScaleIn));
            } else {
                primary_seen = true;
            }
        }
    }
    for e in eligible {
        if !on.contains_key(e.as_str()) {
            start.push(e.clone());
        }
    }
    (start, stop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(id: usize, primary: bool, healthy: bool) -> Live {
        Live {
            id: format!("t{id}"),
            primary,
            healthy,
            failing: false,
            draining: false,
        }
    }

    fn bounds(desired: u32, min_percent: u32, max_percent: u32) -> Bounds {
        Bounds {
            desired,
            min_percent,
            max_percent,
        }
    }

    #[test]
    fn rollout_bounds_follow_the_guide_examples() {
        assert_eq!(
            (bounds(4, 50, 200).lower(), bounds(4, 50, 200).upper()),
            (2, 8)
        );
        assert_eq!(bounds(2, 75, 200).lower(), 2);
        assert_eq!(bounds(3, 100, 125).upper(), 3);
        // D=4, 50/200: start 4 new and stop 2 old at once.
        let old: Vec<Live> = (0..4).map(|i| live(i, false, true)).collect();
        let s = replica_step(&bounds(4, 50, 200), &old, true);
        assert_eq!(s.start, 4);
        assert_eq!(s.stop.len(), 2);
        // D=4, 100/200: start 4 new, stop nothing until they are healthy.
        let s = replica_step(&bounds(4, 100, 200), &old, true);
        assert_eq!((s.start, s.stop.len()), (4, 0));
        // D=1, 0/100: stop the old one first (downtime), start on a later pass.
        let s = replica_step(&bounds(1, 0, 100), &old[..1], true);
        assert_eq!((s.start, s.stop.len()), (0, 1));
        let s = replica_step(&bounds(1, 0, 100), &[], true);
        assert_eq!(s.start, 1);
        // 100/100: nothing can move.
        let s = replica_step(&bounds(3, 100, 100), &old[..3], true);
        assert!(s.stuck && s.start == 0 && s.stop.is_empty());
    }

    #[test]
    fn rollout_replaces_failing_and_draining_tasks_and_scales_in() {
        let mut tasks: Vec<Live> = (0..3).map(|i| live(i, true, true)).collect();
        tasks[0].failing = true;
        tasks[0].healthy = false;
        tasks[1].draining = true;
        let s = replica_step(&bounds(3, 100, 200), &tasks, true);
        assert_eq!(
            s.start, 2,
            "the failing and the draining task are replaced first"
        );
        assert_eq!(s.stop, [("t0".to_string(), StopWhy::Unhealthy)]);
        // Scale-in: surplus primary tasks go, pending ones first.
        let mut tasks: Vec<Live> = (0..4).map(|i| live(i, true, true)).collect();
        tasks[3].healthy = false;
        let s = replica_step(&bounds(2, 100, 200), &tasks, true);
        assert_eq!(s.start, 0);
        let stopped: Vec<&str> = s.stop.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(stopped[0], "t3");
        assert_eq!(stopped.len(), 2);
    }

    fn live_task() -> impl proptest::strategy::Strategy<Value = (bool, bool, bool, bool)> {
        (
            proptest::bool::weighted(0.5),
            proptest::bool::weighted(0.7),
            proptest::bool::weighted(0.1),
            proptest::bool::weighted(0.1),
        )
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(2000))]

        /// For any service state the plan never starts beyond the maximum nor stops a healthy
        /// task below the minimum, and makes progress whenever the bounds allow any.
        #[test]
        fn rollout_properties_hold_for_random_states(
            desired in 0u32..12,
            min in 0u32..=100,
            max in 100u32..=200,
            raw in proptest::collection::vec(live_task(), 0..20),
        ) {
            let b = bounds(desired, min, max);
            let tasks: Vec<Live> = raw
                .iter()
                .enumerate()
                .map(|(i, &(primary, healthy, failing, draining))| Live {
                    id: format!("t{i}"),
                    primary,
                    healthy: healthy && !failing,
                    failing,
                    draining,
                })
                .collect();
            let s = replica_step(&b, &tasks, true);
            let total = tasks.len() as u32;
            proptest::prop_assert!(s.start == 0 || total + s.start <= b.upper(), "starts beyond the maximum");
            let healthy = tasks.iter().filter(|t| t.healthy).count() as u32;
            let stopped_healthy = s
                .stop
                .iter()
                .filter(|(id, _)| tasks.iter().any(|t| &t.id == id && t.healthy))
                .count() as u32;
            proptest::prop_assert!(
                stopped_healthy == 0 || healthy - stopped_healthy >= b.lower(),
                "drops below the minimum healthy"
            );
            let mut ids: Vec<&String> = s.stop.iter().map(|(id, _)| id).collect();
            ids.dedup();
            proptest::prop_assert_eq!(ids.len(), s.stop.len(), "stops a task twice");
            let primary_ok = tasks
                .iter()
                .filter(|t| t.primary && !t.failing && !t.draining)
                .count() as u32;
            if primary_ok < b.desired && total < b.upper() {
                proptest::prop_assert!(s.start > 0, "no progress");
            }
            proptest::prop_assert!(
                s.stop.iter().all(|(id, _)| {
                    let t = tasks.iter().find(|t| &t.id == id).unwrap();
                    t.failing || t.draining || !t.primary || primary_ok > b.desired
                }),
                "stops a task it should keep"
            );
        }

        /// A DAEMON pass leaves at most one task per eligible instance, all of the PRIMARY
        /// deployment, and nothing on instances that are not eligible.
        #[test]
        fn rollout_daemon_keeps_one_primary_task_per_eligible_instance(
            instances in 0usize..6,
            eligible_mask in proptest::collection::vec(proptest::bool::weighted(0.7), 6),
            raw in proptest::collection::vec((0usize..6, proptest::bool::weighted(0.6)), 0..10),
        ) {
            let instances: Vec<String> = (0..instances).map(|i| format!("i{i}")).collect();
            let eligible: Vec<String> = instances
                .iter()
                .zip(&eligible_mask)
                .filter(|(_, e)| **e)
                .map(|(i, _)| i.clone())
                .collect();
            let tasks: Vec<(String, String, bool)> = raw
                .iter()
                .enumerate()
                .filter(|_| !instances.is_empty())
                .map(|(n, (i, primary))| {
                    (format!("t{n}"), instances[i % instances.len()].clone(), *primary)
                })
                .collect();
            let (start, stop) = daemon_step(&eligible, &tasks);
            for i in &instances {
                let kept = tasks
                    .iter()
                    .filter(|t| &t.1 == i && !stop.iter().any(|(s, _)| s == &t.0))
                    .collect::<Vec<_>>();
                let starts = start.iter().filter(|s| *s == i).count();
                if eligible.contains(i) {
                    proptest::prop_assert!(kept.len() + starts <= 1, "at most one task per instance");
                    proptest::prop_assert!(kept.iter().all(|t| t.2), "old tasks go");
                    if !tasks.iter().any(|t| &t.1 == i) {
                        proptest::prop_assert_eq!(starts, 1, "an empty eligible instance gets its task");
                    }
                } else {
                    proptest::prop_assert!(kept.is_empty() && starts == 0, "nothing on ineligible instances");
                }
            }
        }
    }
}
