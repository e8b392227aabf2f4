//! `berth top`: each service's tasks, CPU and memory utilization and request rate, live, from
//! the same CloudWatch metrics autoscaling reads (`AWS/ECS` `CPUUtilization` and
//! `MemoryUtilization` by cluster and service; `AWS/ApplicationELB` `RequestCount` of the
//! service's target groups), through the server's public API signed as the data
//! directory's root.

use berth_agent::control::Control;
use serde_json::{Value, json};
use std::io::Write;

/// One row of the table.
struct Row {
    cluster: String,
    service: String,
    desired: i64,
    running: i64,
    /// `(TargetGroup, LoadBalancer)` dimension values of its load balancers.
    groups: Vec<(String, String)>,
}

/// The services of `clusters` (every cluster when empty).
async fn services(
    api: &Control,
    clusters: &[String],
) -> Result<Vec<Row>, Box<dyn std::error::Error>> {
    let clusters = if clusters.is_empty() {
        let out = api.call("ecs", "ListClusters", json!({})).await?;
        strings(&out["clusterArns"])
    } else {
        clusters.to_vec()
    };
    let mut rows = Vec::new();
    for cluster in clusters {
        let listed = api
            .call(
                "ecs",
                "ListServices",
                json!({"cluster": cluster, "maxResults": 100}),
            )
            .await?;
        for arns in strings(&listed["serviceArns"]).chunks(10) {
            let out = api
                .call(
                    "ecs",
                    "DescribeServices",
                    json!({"cluster": cluster, "services": arns}),
                )
                .await?;
            for s in out["services"].as_array().into_iter().flatten() {
                let mut groups = Vec::new();
                for lb in s["loadBalancers"].as_array().into_iter().flatten() {
                    if let Some(tg) = lb["targetGroupArn"].as_str() {
                        groups.extend(load_balancer_of(api, tg).await);
                    }
                }
                rows.push(Row {
                    cluster: name_of(s["clusterArn"].as_str().unwrap_or(&cluster)),
                    service: s["serviceName"].as_str().unwrap_or_default().to_string(),
                    desired: s["desiredCount"].as_i64().unwrap_or_default(),
                    running: s["runningCount"].as_i64().unwrap_or_default(),
                    groups,
                });
            }
        }
    }
    Ok(rows)
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// The last part of an ARN (a cluster's name).
fn name_of(arn: &str) -> String {
    arn.rsplit('/').next().unwrap_or(arn).to_string()
}

/// The `(TargetGroup, LoadBalancer)` dimensions of target group `arn` (one per load balancer
/// it serves).
async fn load_balancer_of(api: &Control, arn: &str) -> Vec<(String, String)> {
    let Ok(xml) = api
        .query(
            "elasticloadbalancing",
            "2015-12-01",
            "DescribeTargetGroups",
            &[("TargetGroupArns.member.1", arn)],
        )
        .await
    else {
        return Vec::new();
    };
    let section = xml
        .split_once("<LoadBalancerArns>")
        .and_then(|(_, rest)| rest.split_once("</LoadBalancerArns>"))
        .map_or("", |(inner, _)| inner);
    let tg = arn
        .split_once(":targetgroup/")
        .map_or(arn.to_string(), |(_, r)| format!("targetgroup/{r}"));
    section
        .split("<member>")
        .filter_map(|m| m.split_once("</member>"))
        .filter_map(|(lb, _)| lb.split_once(":loadbalancer/").map(|(_, r)| r.to_string()))
        .map(|lb| (tg.clone(), lb))
        .collect()
}

/// The newest value of each query (ids `c<i>`, `m<i>`, `r<i>_<j>`) of the last minutes.
async fn latest(
    api: &Control,
    rows: &[Row],
) -> Result<std::collections::HashMap<String, f64>, Box<dyn std::error::Error>> {
    let stat = |id: String, ns: &str, name: &str, dims: Value, stat: &str| json!({"Id": id, "MetricStat": {"Metric": {"Namespace": ns, "MetricName": name, "Dimensions": dims}, "Period": 60, "Stat": stat}});
    let mut queries = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        let dims = json!([{"Name": "ClusterName", "Value": r.cluster}, {"Name": "ServiceName", "Value": r.service}]);
        queries.push(stat(
            format!("c{i}"),
            "AWS/ECS",
            "CPUUtilization",
            dims.clone(),
            "Average",
        ));
        queries.push(stat(
            format!("m{i}"),
            "AWS/ECS",
            "MemoryUtilization",
            dims,
            "Average",
        ));
        for (j, (tg, lb)) in r.groups.iter().enumerate() {
            let dims = json!([{"Name": "TargetGroup", "Value": tg}, {"Name": "LoadBalancer", "Value": lb}]);
            queries.push(stat(
                format!("r{i}_{j}"),
                "AWS/ApplicationELB",
                "RequestCount",
                dims,
                "Sum",
            ));
        }
    }
    let mut out = std::collections::HashMap::new();
    if queries.is_empty() {
        return Ok(out);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // The window reaches two hours ahead: a test server's clock may run faster than this one
    // (`--time-scale`); results come newest first.
    for chunk in queries.chunks(50) {
        let answer = api
            .call(
                "monitoring",
                "GetMetricData",
                json!({"MetricDataQueries": chunk, "StartTime": now - 600, "EndTime": now + 7200}),
            )
            .await?;
        for r in answer["MetricDataResults"].as_array().into_iter().flatten() {
            if let (Some(id), Some(v)) = (r["Id"].as_str(), r["Values"][0].as_f64()) {
                out.insert(id.to_string(), v);
            }
        }
    }
    Ok(out)
}

/// Prints the table once.
async fn show(
    api: &Control,
    clusters: &[String],
    out: &mut impl Write,
) -> Result<(), Box<dyn std::error::Error>> {
    let rows = services(api, clusters).await?;
    let values = latest(api, &rows).await?;
    writeln!(
        out,
        "{:<20} {:<24} {:>7} {:>7} {:>7} {:>7} {:>9}",
        "CLUSTER", "SERVICE", "DESIRED", "RUNNING", "CPU%", "MEM%", "REQ/S"
    )?;
    let pct = |id: String| {
        values
            .get(&id)
            .map_or("-".to_string(), |v| format!("{v:.1}"))
    };
    for (i, r) in rows.iter().enumerate() {
        let requests: Vec<f64> = (0..r.groups.len())
            .filter_map(|j| values.get(&format!("r{i}_{j}")).copied())
            .collect();
        let rate = if requests.is_empty() {
            "-".to_string()
        } else {
            format!("{:.2}", requests.iter().sum::<f64>() / 60.0)
        };
        writeln!(
            out,
            "{:<20} {:<24} {:>7} {:>7} {:>7} {:>7} {:>9}",
            r.cluster,
            r.service,
            r.desired,
            r.running,
            pct(format!("c{i}")),
            pct(format!("m{i}")),
            rate
        )?;
    }
    Ok(())
}

/// Shows the table every `interval` (once with `once`).
pub async fn run(
    api: Control,
    clusters: Vec<String>,
    interval: std::time::Duration,
    once: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    loop {
        let mut buffer = Vec::new();
        if !once {
            // Clear the screen and go home, as top does.
            write!(buffer, "\x1b[2J\x1b[H")?;
        }
        show(&api, &clusters, &mut buffer).await?;
        let mut out = std::io::stdout().lock();
        out.write_all(&buffer)?;
        out.flush()?;
        drop(out);
        if once {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}
