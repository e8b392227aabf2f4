//! Background tasks: every reconciler of the control plane (the service scheduler, instance
//! liveness, the registry's garbage collector, the stopped-task purge, and those to come) runs
//! through this driver.
//!
//! A task is a named activation — a function that reads the whole current and desired state,
//! does a bounded amount of work and returns counts of what it did — run on its own timer
//! **and** whenever something activates it: a handler that just wrote intent, or a test that
//! wants the pass now instead of waiting for the timer. Activations never overlap (a request
//! that arrives during one makes exactly one more run after it), a failed activation is only
//! recorded (the next one is the retry), and the driver keeps each task's last status — when
//! it started, how long it took, what it did or why it failed — for `/metrics` and
//! `berth status`.
//!
//! Of several servers sharing a store, only the leader runs them ([`crate::leader`]): an
//! activation elsewhere does nothing and says so, and the leader's get the fence of its term
//! to write with. A server that becomes leader activates every task at once.
//!
//! The design follows the background tasks of oxidecomputer/omicron's nexus (timer plus
//! activation, kept statuses, tests that activate).

use crate::leader::Leadership;
use berth_store::Fence;
use berth_types::{Error, Timestamp};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

/// What an activation did: named counts (`("services changed", 2)`).
pub type Counts = Vec<(&'static str, u64)>;

/// The names of the control plane's tasks.
pub const SERVICE_SCHEDULER: &str = "service-scheduler";
pub const INSTANCE_LIVENESS: &str = "instance-liveness";
pub const REGISTRY_GC: &str = "registry-gc";
pub const STOPPED_TASK_PURGE: &str = "stopped-task-purge";
pub const METRIC_ROLLUP: &str = "metric-rollup";
pub const ALARM_EVALUATOR: &str = "alarm-evaluator";
pub const SCHEDULED_SCALING: &str = "scheduled-scaling";
pub const LOG_RETENTION: &str = "log-retention";
/// ECR lifecycle policies: expires what each repository's policy says, at least daily.
pub const LIFECYCLE: &str = "lifecycle";
/// ECR replication: copies pushed images to their destinations.
pub const REPLICATION: &str = "replication";

/// What an activation gets: the fence its writes must carry (`None` on a server without
/// leadership, which is alone by construction: unit tests).
type Activation = Box<
    dyn Fn(Option<Fence>) -> Pin<Box<dyn Future<Output = Result<Counts, Error>> + Send>>
        + Send
        + Sync,
>;

/// The outcome of an activation on a server that does not lead.
pub const NOT_LEADER: &str = "skipped: another server leads";

/// The last activation of a task, and how many there were.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub name: &'static str,
    pub period: Duration,
    /// Activations started, and completed.
    pub started: u64,
    pub activations: u64,
    pub last_started: Option<Timestamp>,
    pub last_duration: Option<Duration>,
    /// `Ok(counts)` or the error's message.
    pub last_outcome: Option<Result<Counts, String>>,
    pub failures: u64,
}

struct Entry {
    status: Mutex<Status>,
    /// Activation requests (on top of the timer).
    wake: Notify,
    /// Completed activations, for waiters.
    done: watch::Sender<u64>,
}

/// A registered task: activate it, read its status.
#[derive(Clone)]
pub struct Handle(Arc<Entry>);

impl Handle {
    /// Asks for an activation as soon as the current one (if any) ends.
    pub fn activate(&self) {
        self.0.wake.notify_one();
    }

    /// Activates the task and waits until an activation that started after this call has
    /// completed; its status.
    pub async fn activate_and_wait(&self) -> Status {
        let mut done = self.0.done.subscribe();
        // One that is running now started before the call: the one after it is ours (the
        // request below makes it run as soon as the current one ends).
        let target = self.0.status.lock().expect("status").started + 1;
        self.activate();
        while *done.borrow_and_update() < target {
            if done.changed().await.is_err() {
                break;
            }
        }
        self.status()
    }

    pub fn status(&self) -> Status {
        self.0.status.lock().expect("status").clone()
    }

    pub fn name(&self) -> &'static str {
        self.0.status.lock().expect("status").name
    }
}

/// The background tasks of one server.
#[derive(Default)]
pub struct Driver {
    tasks: Mutex<BTreeMap<&'static str, Handle>>,
    runners: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    leadership: Option<Arc<Leadership>>,
}

impl Driver {
    /// The tasks of a server that runs them only while it leads; every task is activated
    /// when its term begins.
    pub fn led_by(leadership: Arc<Leadership>) -> Arc<Driver> {
        let driver = Arc::new(Driver {
            tasks: Mutex::default(),
            runners: Mutex::default(),
            leadership: Some(leadership.clone()),
        });
        let weak = Arc::downgrade(&driver);
        let mut term = leadership.subscribe();
        let watcher = tokio::spawn(async move {
            while term.changed().await.is_ok() {
                let leading = term.borrow_and_update().is_some();
                let Some(driver) = weak.upgrade() else { return };
                if leading {
                    for h in driver.tasks.lock().expect("tasks").values() {
                        h.activate();
                    }
                }
            }
        });
        driver.runners.lock().expect("runners").push(watcher);
        driver
    }

    /// Registers `activate` as task `name`, run every `period` and on demand; starts it.
    pub fn register<F, Fut>(&self, name: &'static str, period: Duration, activate: F) -> Handle
    where
        F: Fn(Option<Fence>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Counts, Error>> + Send + 'static,
    {
        let activation: Activation = Box::new(move |fence| Box::pin(activate(fence)));
        let entry = Arc::new(Entry {
            status: Mutex::new(Status {
                name,
                period,
                ..Default::default()
            }),
            wake: Notify::new(),
            done: watch::channel(0).0,
        });
        let handle = Handle(entry.clone());
        let leadership = self.leadership.clone();
        let runner = tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = entry.wake.notified() => {}
                }
                run_once(&entry, &activation, leadership.as_deref()).await;
            }
        });
        self.tasks
            .lock()
            .expect("tasks")
            .insert(name, handle.clone());
        self.runners.lock().expect("runners").push(runner);
        handle
    }

    /// The task called `name`.
    pub fn task(&self, name: &str) -> Option<Handle> {
        self.tasks.lock().expect("tasks").get(name).cloned()
    }

    /// Asks task `name` for an activation (nothing if there is no such task: a server may
    /// run without some of them).
    pub fn activate(&self, name: &str) {
        if let Some(h) = self.task(name) {
            h.activate();
        }
    }

    /// Every task's status, by name.
    pub fn statuses(&self) -> Vec<Status> {
        self.tasks
            .lock()
            .expect("tasks")
            .values()
            .map(Handle::status)
            .collect()
    }

    /// Stops every task.
    pub fn shutdown(&self) {
        for r in self.runners.lock().expect("runners").drain(..) {
            r.abort();
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn run_once(entry: &Entry, activation: &Activation, leadership: Option<&Leadership>) {
    let started = Instant::now();
    {
        let mut s = entry.status.lock().expect("status");
        s.started += 1;
        s.last_started = Some(Timestamp::now());
    }
    let outcome = match leadership.map(Leadership::fence) {
        None => activation(None).await,
        Some(Some(fence)) => activation(Some(fence)).await,
        Some(None) => Ok(vec![(NOT_LEADER, 1)]),
    };
    let took = started.elapsed();
    let mut s = entry.status.lock().expect("status");
    s.activations += 1;
    s.last_duration = Some(took);
    match &outcome {
        Ok(_) => {}
        Err(e) => {
            s.failures += 1;
            tracing::warn!(task = s.name, error = %e, "background task failed; the next activation retries");
        }
    }
    s.last_outcome = Some(outcome.map_err(|e| e.to_string()));
    let n = s.activations;
    drop(s);
    entry.done.send_replace(n);
}

/// The statuses as Prometheus text (`berth_background_*` gauges and counters).
pub fn prometheus(statuses: &[Status]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let metric = |out: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    metric(
        &mut out,
        "berth_background_activations_total",
        "counter",
        "Completed activations of a background task.",
    );
    for s in statuses {
        let _ = writeln!(
            out,
            "berth_background_activations_total{{task=\"{}\"}} {}",
            s.name, s.activations
        );
    }
    metric(
        &mut out,
        "berth_background_failures_total",
        "counter",
        "Activations of a background task that failed.",
    );
    for s in statuses {
        let _ = writeln!(
            out,
            "berth_background_failures_total{{task=\"{}\"}} {}",
            s.name, s.failures
        );
    }
    metric(
        &mut out,
        "berth_background_last_duration_seconds",
        "gauge",
        "How long the last activation of a background task took.",
    );
    for s in statuses {
        if let Some(d) = s.last_duration {
            let _ = writeln!(
                out,
                "berth_background_last_duration_seconds{{task=\"{}\"}} {:.6}",
                s.name,
                d.as_secs_f64()
            );
        }
    }
    metric(
        &mut out,
        "berth_background_last_started_seconds",
        "gauge",
        "When the last activation of a background task started (Unix time).",
    );
    for s in statuses {
        if let Some(t) = s.last_started {
            let _ = writeln!(
                out,
                "berth_background_last_started_seconds{{task=\"{}\"}} {:.3}",
                s.name,
                t.epoch_seconds()
            );
        }
    }
    metric(
        &mut out,
        "berth_background_last_count",
        "gauge",
        "What the last successful activation of a background task did.",
    );
    for s in statuses {
        if let Some(Ok(counts)) = &s.last_outcome {
            for (what, n) in counts {
                let _ = writeln!(
                    out,
                    "berth_background_last_count{{task=\"{}\",count=\"{what}\"}} {n}",
                    s.name
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// A task runs on its timer and when activated; a failure is recorded and the next
    /// activation runs anyway; an activation asked for during one runs right after it.
    #[tokio::test(start_paused = true)]
    async fn background_tasks_run_on_timer_and_on_demand() {
        let driver = Driver::default();
        let runs = Arc::new(AtomicU64::new(0));
        let r = runs.clone();
        let handle = driver.register("counter", Duration::from_secs(60), move |_| {
            let r = r.clone();
            async move {
                let n = r.fetch_add(1, Ordering::SeqCst) + 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
                if n == 2 {
                    return Err(Error::internal("the second pass fails"));
                }
                Ok(vec![("runs", n)])
            }
        });
        // The first timer tick runs it at once; an activation returns a completed run.
        let s = handle.activate_and_wait().await;
        assert!(s.activations >= 1);
        assert_eq!(s.last_duration, Some(Duration::from_secs(1)));
        // The failing second run is recorded, and the next activation is the retry.
        let mut s = s;
        for _ in 0..3 {
            if s.failures > 0 {
                break;
            }
            s = handle.activate_and_wait().await;
        }
        assert_eq!(s.failures, 1, "{s:?}");
        let s = handle.activate_and_wait().await;
        assert!(matches!(s.last_outcome, Some(Ok(_))), "{s:?}");
        // Once idle, one activation is one run.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let before = runs.load(Ordering::SeqCst);
        let s = handle.activate_and_wait().await;
        assert_eq!(runs.load(Ordering::SeqCst), before + 1);
        assert_eq!(s.last_outcome, Some(Ok(vec![("runs", before + 1)])));
        // Without activations it still runs on its timer.
        let n = runs.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert!(runs.load(Ordering::SeqCst) > n);
        let text = prometheus(&driver.statuses());
        assert!(text.contains("berth_background_activations_total{task=\"counter\"}"));
        assert!(text.contains("berth_background_failures_total{task=\"counter\"} 1"));
        assert!(text.contains("berth_background_last_count{task=\"counter\",count=\"runs\"}"));
    }
}
