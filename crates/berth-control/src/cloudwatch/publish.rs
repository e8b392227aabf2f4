//! The metrics Berth publishes itself, in the namespaces and with the dimensions AWS uses:
//! `AWS/ApplicationELB` from the load balancer nodes' reports. Each report becomes one
//! PutMetricData (as Berth's own publisher, which may write `AWS/` namespaces) stamped with
//! the clock's now: a minute's datapoint is the sum (or the statistic set) of the reports
//! that minute.

use super::CloudWatch;
use berth_metrics::{DatumInput, Dimension, Publisher, StatisticSetInput, Unit};
use berth_node_api::lb;
use berth_types::Error;

/// `AWS/ApplicationELB`'s `TargetGroup` dimension of a target group ARN
/// (`targetgroup/<name>/<id>`).
fn target_group_dimension(arn: &str) -> String {
    match arn.split_once(":targetgroup/") {
        Some((_, rest)) => format!("targetgroup/{rest}"),
        None => arn.to_string(),
    }
}

/// One datum of `name` with `value` (and `unit`) on `dims`.
fn datum(name: &str, dims: &[Dimension], value: f64, unit: Unit) -> DatumInput {
    DatumInput {
        metric_name: name.to_string(),
        dimensions: dims.to_vec(),
        timestamp_ms: None,
        value: Some(value),
        statistic_values: None,
        values: Vec::new(),
        counts: Vec::new(),
        unit: Some(unit),
        storage_resolution: None,
    }
}

/// A statistic set of response times (seconds).
fn times(dims: &[Dimension], t: &lb::TimeStats) -> DatumInput {
    DatumInput {
        value: None,
        statistic_values: Some(StatisticSetInput {
            sample_count: t.count as f64,
            sum: t.sum,
            minimum: t.min,
            maximum: t.max,
        }),
        ..datum("TargetResponseTime", dims, 0.0, Unit::Seconds)
    }
}

/// Merges `b` into `a`.
fn merged(a: Option<lb::TimeStats>, b: &lb::TimeStats) -> lb::TimeStats {
    match a {
        None => *b,
        Some(a) => lb::TimeStats {
            count: a.count + b.count,
            sum: a.sum + b.sum,
            min: a.min.min(b.min),
            max: a.max.max(b.max),
        },
    }
}

const CODES: [&str; 4] = [
    "HTTPCode_Target_2XX_Count",
    "HTTPCode_Target_3XX_Count",
    "HTTPCode_Target_4XX_Count",
    "HTTPCode_Target_5XX_Count",
];

/// The `AWS/ApplicationELB` data of one report. Counts are published when something was
/// counted (as ELB publishes only while requests flow); host counts always.
pub(super) fn load_balancer_data(r: &lb::MetricsReport) -> Vec<DatumInput> {
    let mut out = Vec::new();
    for m in r
        .load_balancers
        .iter()
        .filter(|m| !m.load_balancer.is_empty())
    {
        let lb_dims = [Dimension::new("LoadBalancer", &m.load_balancer)];
        let mut requests = m.own_requests;
        let mut codes = [0u64; 4];
        let mut time: Option<lb::TimeStats> = None;
        for g in &m.groups {
            let tg = Dimension::new("TargetGroup", target_group_dimension(&g.target_group_arn));
            let dims = [lb_dims[0].clone(), tg.clone()];
            requests += g.requests;
            if g.requests > 0 {
                out.push(datum("RequestCount", &dims, g.requests as f64, Unit::Count));
                // Per target: over the healthy targets, or every registered one if none is.
                let targets = if g.healthy > 0 {
                    g.healthy
                } else {
                    g.unhealthy.max(1)
                };
                let per = g.requests as f64 / targets as f64;
                out.push(datum("RequestCountPerTarget", &dims, per, Unit::Count));
                out.push(datum(
                    "RequestCountPerTarget",
                    std::slice::from_ref(&tg),
                    per,
                    Unit::Count,
                ));
            }
            for (i, n) in g.target_codes.iter().enumerate().filter(|(_, n)| **n > 0) {
                codes[i] += n;
                out.push(datum(CODES[i], &dims, *n as f64, Unit::Count));
            }
            if let Some(t) = &g.response_time {
                time = Some(merged(time, t));
                out.push(times(&dims, t));
            }
            out.push(datum(
                "HealthyHostCount",
                &dims,
                g.healthy as f64,
                Unit::Count,
            ));
            out.push(datum(
                "UnHealthyHostCount",
                &dims,
                g.unhealthy as f64,
                Unit::Count,
            ));
        }
        if requests > 0 {
            out.push(datum(
                "RequestCount",
                &lb_dims,
                requests as f64,
                Unit::Count,
            ));
        }
        for (i, n) in codes.iter().enumerate().filter(|(_, n)| **n > 0) {
            out.push(datum(CODES[i], &lb_dims, *n as f64, Unit::Count));
        }
        if let Some(t) = &time {
            out.push(times(&lb_dims, t));
        }
        for (name, n) in [
            ("HTTPCode_ELB_4XX_Count", m.elb_4xx),
            ("HTTPCode_ELB_5XX_Count", m.elb_5xx),
        ] {
            if n > 0 {
                out.push(datum(name, &lb_dims, n as f64, Unit::Count));
            }
        }
    }
    out
}

/// The `AWS/ECS` data of one agent report: `CPUUtilization` and `MemoryUtilization` (Percent)
/// by `ClusterName, ServiceName` for each service task, by `ClusterName` for the instance.
pub(super) fn ecs_data(samples: &[crate::ecs::Utilization]) -> Vec<DatumInput> {
    let mut out = Vec::new();
    for s in samples {
        let mut dims = vec![Dimension::new("ClusterName", &s.cluster)];
        if let Some(service) = &s.service {
            dims.push(Dimension::new("ServiceName", service));
        }
        out.push(datum("CPUUtilization", &dims, s.cpu, Unit::Percent));
        out.push(datum("MemoryUtilization", &dims, s.memory, Unit::Percent));
    }
    out
}

impl CloudWatch {
    /// Publishes an agent's usage samples as `AWS/ECS` metrics.
    pub async fn ecs_metrics(&self, samples: &[crate::ecs::Utilization]) -> Result<(), Error> {
        let data = ecs_data(samples);
        for chunk in data.chunks(1000) {
            self.metric_data_put("AWS/ECS", chunk.to_vec(), Publisher::Internal)
                .await?;
        }
        Ok(())
    }

    /// Publishes a load balancer node's report as `AWS/ApplicationELB` metrics.
    pub async fn load_balancer_metrics(&self, r: &lb::MetricsReport) -> Result<(), Error> {
        let data = load_balancer_data(r);
        for chunk in data.chunks(1000) {
            self.metric_data_put("AWS/ApplicationELB", chunk.to_vec(), Publisher::Internal)
                .await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_load_balancer_reports_with_aws_dimensions() {
        let report = lb::MetricsReport {
            load_balancers: vec![lb::LoadBalancerMetrics {
                load_balancer: "app/web/abc".into(),
                own_requests: 1,
                elb_4xx: 0,
                elb_5xx: 1,
                groups: vec![lb::GroupMetrics {
                    target_group_arn: "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/tg/def"
                        .into(),
                    requests: 10,
                    target_codes: [9, 0, 1, 0],
                    response_time: Some(lb::TimeStats {
                        count: 10,
                        sum: 0.5,
                        min: 0.01,
                        max: 0.2,
                    }),
                    healthy: 2,
                    unhealthy: 1,
                }],
            }],
        };
        let data = load_balancer_data(&report);
        let find = |name: &str, dims: usize| {
            data.iter()
                .find(|d| d.metric_name == name && d.dimensions.len() == dims)
                .unwrap_or_else(|| panic!("{name} by {dims} dimensions"))
        };
        assert_eq!(
            find("RequestCount", 1).value,
            Some(11.0),
            "the LB's own answers too"
        );
        assert_eq!(find("RequestCount", 2).value, Some(10.0));
        assert_eq!(find("RequestCountPerTarget", 1).value, Some(5.0));
        assert_eq!(
            find("RequestCountPerTarget", 1).dimensions[0].value,
            "targetgroup/tg/def"
        );
        assert_eq!(find("HTTPCode_Target_4XX_Count", 2).value, Some(1.0));
        assert_eq!(find("HTTPCode_ELB_5XX_Count", 1).value, Some(1.0));
        assert_eq!(find("UnHealthyHostCount", 2).value, Some(1.0));
        let t = find("TargetResponseTime", 1).statistic_values.unwrap();
        assert_eq!((t.sample_count, t.sum), (10.0, 0.5));
        assert!(
            data.iter()
                .all(|d| d.metric_name != "HTTPCode_ELB_4XX_Count")
        );
    }
}
