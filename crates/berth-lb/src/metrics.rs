//! What the listeners served, counted on the request path with relaxed atomics (no lock):
//! per load balancer (its own answers) and per load balancer and target group (requests,
//! target status classes, target response time). [`Counters::take`] empties them into the
//! node protocol's [`lb::MetricsReport`], which the control plane turns into the
//! `AWS/ApplicationELB` metrics.
//!
//! The counters of a load balancer and of a (load balancer, target group) pair outlive
//! snapshots: a new configuration keeps counting into the same ones.

use berth_node_api::lb;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One load balancer's own answers.
#[derive(Debug, Default)]
pub struct LbCounters {
    own: AtomicU64,
    elb_4xx: AtomicU64,
    elb_5xx: AtomicU64,
}

impl LbCounters {
    /// The load balancer answered a request itself with `status`.
    pub fn answered(&self, status: u16) {
        self.own.fetch_add(1, Ordering::Relaxed);
        self.error(status);
    }

    /// The load balancer's own error on a request already counted for its group.
    pub fn error(&self, status: u16) {
        match status {
            400..=499 => self.elb_4xx.fetch_add(1, Ordering::Relaxed),
            500..=599 => self.elb_5xx.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

/// One target group's counts behind one load balancer.
#[derive(Debug)]
pub struct GroupCounters {
    requests: AtomicU64,
    codes: [AtomicU64; 4],
    rt_count: AtomicU64,
    rt_sum_us: AtomicU64,
    rt_min_us: AtomicU64,
    rt_max_us: AtomicU64,
}

impl Default for GroupCounters {
    fn default() -> Self {
        GroupCounters {
            requests: AtomicU64::new(0),
            codes: Default::default(),
            rt_count: AtomicU64::new(0),
            rt_sum_us: AtomicU64::new(0),
            rt_min_us: AtomicU64::new(u64::MAX),
            rt_max_us: AtomicU64::new(0),
        }
    }
}

impl GroupCounters {
    /// A request was routed to the group.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// A target answered with `status` after `elapsed`.
    pub fn response(&self, status: u16, elapsed: Duration) {
        if let Some(class) = (status / 100).checked_sub(2).filter(|c| *c < 4) {
            self.codes[class as usize].fetch_add(1, Ordering::Relaxed);
        }
        let us = elapsed.as_micros().min(u128::from(u64::MAX)) as u64;
        self.rt_count.fetch_add(1, Ordering::Relaxed);
        self.rt_sum_us.fetch_add(us, Ordering::Relaxed);
        self.rt_min_us.fetch_min(us, Ordering::Relaxed);
        self.rt_max_us.fetch_max(us, Ordering::Relaxed);
    }

    fn take(&self) -> (u64, [u64; 4], Option<lb::TimeStats>) {
        let requests = self.requests.swap(0, Ordering::Relaxed);
        let codes = std::array::from_fn(|i| self.codes[i].swap(0, Ordering::Relaxed));
        let count = self.rt_count.swap(0, Ordering::Relaxed);
        let sum = self.rt_sum_us.swap(0, Ordering::Relaxed);
        let min = self.rt_min_us.swap(u64::MAX, Ordering::Relaxed);
        let max = self.rt_max_us.swap(0, Ordering::Relaxed);
        let secs = |us: u64| us as f64 / 1e6;
        let time = (count > 0).then(|| lb::TimeStats {
            count,
            sum: secs(sum),
            min: secs(min.min(max)),
            max: secs(max),
        });
        (requests, codes, time)
    }
}

/// Every counter of a data plane, by load balancer and by (load balancer, target group).
/// Locked only when a snapshot is compiled and when a report is taken.
#[derive(Debug, Default)]
pub struct Counters {
    lbs: Mutex<HashMap<String, Arc<LbCounters>>>,
    groups: Mutex<HashMap<(String, String), Arc<GroupCounters>>>,
}

impl Counters {
    /// The counters of load balancer `lb` (`app/<name>/<id>`).
    pub fn load_balancer(&self, lb: &str) -> Arc<LbCounters> {
        self.lbs
            .lock()
            .expect("lb counters")
            .entry(lb.to_string())
            .or_default()
            .clone()
    }

    /// The counters of target group `arn` behind `lb`.
    pub fn group(&self, lb: &str, arn: &str) -> Arc<GroupCounters> {
        self.groups
            .lock()
            .expect("group counters")
            .entry((lb.to_string(), arn.to_string()))
            .or_default()
            .clone()
    }

    /// What was counted since the last report (the counters start again from zero), with
    /// each group's healthy and unhealthy registered targets from `health`.
    pub fn take(&self, health: &dyn Fn(&str) -> (u64, u64)) -> lb::MetricsReport {
        let mut by_lb: HashMap<String, lb::LoadBalancerMetrics> = HashMap::new();
        for (name, c) in self.lbs.lock().expect("lb counters").iter() {
            let m = by_lb
                .entry(name.clone())
                .or_insert_with(|| lb::LoadBalancerMetrics {
                    load_balancer: name.clone(),
                    ..Default::default()
                });
            m.own_requests = c.own.swap(0, Ordering::Relaxed);
            m.elb_4xx = c.elb_4xx.swap(0, Ordering::Relaxed);
            m.elb_5xx = c.elb_5xx.swap(0, Ordering::Relaxed);
        }
        for ((name, arn), c) in self.groups.lock().expect("group counters").iter() {
            let (requests, target_codes, response_time) = c.take();
            let (healthy, unhealthy) = health(arn);
            by_lb
                .entry(name.clone())
                .or_insert_with(|| lb::LoadBalancerMetrics {
                    load_balancer: name.clone(),
                    ..Default::default()
                })
                .groups
                .push(lb::GroupMetrics {
                    target_group_arn: arn.clone(),
                    requests,
                    target_codes,
                    response_time,
                    healthy,
                    unhealthy,
                });
        }
        let mut load_balancers: Vec<lb::LoadBalancerMetrics> = by_lb.into_values().collect();
        load_balancers.sort_by(|a, b| a.load_balancer.cmp(&b.load_balancer));
        lb::MetricsReport { load_balancers }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_counted_and_start_again_after_a_report() {
        let c = Counters::default();
        let g = c.group("app/web/1", "arn:tg");
        for (status, ms) in [(200, 10), (204, 30), (503, 20)] {
            g.request();
            g.response(status, Duration::from_millis(ms));
        }
        g.request();
        let lb = c.load_balancer("app/web/1");
        lb.error(502);
        lb.answered(404);
        let r = c.take(&|_| (2, 1));
        let m = &r.load_balancers[0];
        assert_eq!((m.own_requests, m.elb_4xx, m.elb_5xx), (1, 1, 1));
        let g0 = &m.groups[0];
        assert_eq!(g0.requests, 4);
        assert_eq!(g0.target_codes, [2, 0, 0, 1]);
        let t = g0.response_time.unwrap();
        assert_eq!(t.count, 3);
        assert!(
            (t.sum - 0.06).abs() < 1e-9 && t.min == 0.01 && t.max == 0.03,
            "{t:?}"
        );
        assert_eq!((g0.healthy, g0.unhealthy), (2, 1));
        let again = c.take(&|_| (0, 0));
        assert_eq!(again.load_balancers[0].groups[0].requests, 0);
        assert!(again.load_balancers[0].groups[0].response_time.is_none());
    }
}
