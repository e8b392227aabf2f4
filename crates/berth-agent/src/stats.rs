//! What the instance's running tasks use, reported to the control plane once per minute of
//! its CloudWatch clock (the desired-state document says how long that is): each task's CPU
//! units (1,024 per core) and memory without the page cache, summed over its running
//! containers, from one sample of the engine's statistics each — what ECS computes its
//! `CPUUtilization` and `MemoryUtilization` metrics from.

use crate::runtime::Runtime;
use crate::{ControlPlane, Current};
use berth_node_api::agent::{DesiredStatus, StatsReport, TaskStats};
use futures_util::future::join_all;
use serde_json::Value;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The interval until the first document says otherwise.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// Where a report goes: its tasks, with the instance they ran on.
pub(crate) fn report_of(cluster: &str, instance: &str, tasks: Vec<TaskStats>) -> StatsReport {
    StatsReport {
        cluster: cluster.to_string(),
        container_instance: instance.to_string(),
        tasks,
    }
}

/// CPU units and MiB a container used, from one engine sample (Docker's stats shape: the
/// CPU time between `precpu_stats` and `cpu_stats` over the system's, times its CPUs).
pub(crate) fn usage(stats: &Value) -> Option<(f64, f64)> {
    let n = |v: &Value, path: &[&str]| {
        path.iter()
            .try_fold(v, |v, k| v.get(k))
            .and_then(Value::as_f64)
    };
    let cpu_now = n(stats, &["cpu_stats", "cpu_usage", "total_usage"])?;
    let cpu_before = n(stats, &["precpu_stats", "cpu_usage", "total_usage"]).unwrap_or(0.0);
    let sys_now = n(stats, &["cpu_stats", "system_cpu_usage"]).unwrap_or(0.0);
    let sys_before = n(stats, &["precpu_stats", "system_cpu_usage"]).unwrap_or(0.0);
    let cpus = n(stats, &["cpu_stats", "online_cpus"])
        .unwrap_or(1.0)
        .max(1.0);
    let (cpu_delta, sys_delta) = (cpu_now - cpu_before, sys_now - sys_before);
    let units = if cpu_delta > 0.0 && sys_delta > 0.0 {
        cpu_delta / sys_delta * cpus * 1024.0
    } else {
        0.0
    };
    let memory = n(stats, &["memory_stats", "usage"]).unwrap_or(0.0);
    // cgroup v2 names the page cache `inactive_file`, v1 `cache`.
    let cache = n(stats, &["memory_stats", "stats", "inactive_file"])
        .or_else(|| n(stats, &["memory_stats", "stats", "cache"]))
        .unwrap_or(0.0);
    Some((units, (memory - cache).max(0.0) / (1024.0 * 1024.0)))
}

/// Reports the running tasks' usage every interval until the document channel closes.
pub(crate) async fn report<R: Runtime, C: ControlPlane>(
    runtime: R,
    instance: String,
    control: Arc<C>,
    mut doc: watch::Receiver<Current>,
) {
    loop {
        let interval = doc.borrow().stats_interval;
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            changed = doc.changed() => {
                if changed.is_err() {
                    return;
                }
                continue;
            }
        }
        let tasks = doc.borrow().tasks.clone();
        let running: Vec<&str> = tasks
            .iter()
            .filter(|t| t.desired == DesiredStatus::Running)
            .map(|t| t.arn.as_str())
            .collect();
        if running.is_empty() {
            continue;
        }
        let containers = match runtime.containers(&instance).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "listing containers for their statistics failed");
                continue;
            }
        };
        let mine: Vec<_> = containers
            .into_iter()
            .filter(|c| c.running && running.contains(&c.task_arn.as_str()))
            .collect();
        let samples = join_all(mine.iter().map(|c| runtime.stats(&c.id))).await;
        let mut by_task: HashMap<&str, (f64, f64)> = HashMap::new();
        for (c, sample) in mine.iter().zip(samples) {
            if let Some((cpu, memory)) = sample.ok().flatten().as_ref().and_then(usage) {
                let t = by_task.entry(c.task_arn.as_str()).or_default();
                t.0 += cpu;
                t.1 += memory;
            }
        }
        if by_task.is_empty() {
            continue;
        }
        let tasks = by_task
            .into_iter()
            .map(|(arn, (cpu_units, memory_mib))| TaskStats {
                task_arn: arn.to_string(),
                cpu_units,
                memory_mib,
            })
            .collect();
        if let Err(e) = control.stats(tasks).await {
            tracing::debug!(error = %e, "reporting the tasks' usage failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn stats_usage_follows_docker_cpu_and_memory_accounting() {
        // Half a core busy on a 4-CPU host between two samples; 100 MiB, 20 MiB of it cache.
        let s = json!({
            "cpu_stats": {"cpu_usage": {"total_usage": 1_500_000_000u64},
                          "system_cpu_usage": 8_000_000_000u64, "online_cpus": 4},
            "precpu_stats": {"cpu_usage": {"total_usage": 1_000_000_000u64},
                             "system_cpu_usage": 4_000_000_000u64},
            "memory_stats": {"usage": 104_857_600u64, "stats": {"inactive_file": 20_971_520u64}}
        });
        let (cpu, memory) = usage(&s).unwrap();
        assert!((cpu - 512.0).abs() < 1e-6, "{cpu}");
        assert!((memory - 80.0).abs() < 1e-6, "{memory}");
        // No previous sample: no CPU figure, memory still.
        let first = json!({"cpu_stats": {"cpu_usage": {"total_usage": 5}},
                           "memory_stats": {"usage": 1_048_576u64}});
        assert_eq!(usage(&first), Some((0.0, 1.0)));
        assert_eq!(usage(&json!({})), None);
    }
}
