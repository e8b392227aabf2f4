//! Services that scale for real, on Docker: target tracking on `ALBRequestCountPerTarget` with
//! load driven through the listener (out to ≥ 3 tasks serving, back in once the load stops),
//! target tracking on `ECSServiceAverageCPUUtilization` with a container that burns CPU, and a
//! step policy on a custom metric put with PutMetricData. The scaled tests run CloudWatch's
//! clock 30 times faster (`--time-scale 30`: a minute lasts 2 s, a 300 s cooldown 10 s);
//! every rule is AWS's.

use crate::docker_e2e::{
    AgentProcess, aws, cluster_and_images, load_balancer, require_docker_engine,
    service_server_with,
};
use berth_testkit::{TestServer, until};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// `aws application-autoscaling …`.
fn aas(server: &TestServer, args: &[&str]) -> Value {
    let mut all = vec!["application-autoscaling"];
    all.extend_from_slice(args);
    aws(server, &all)
}

fn register_target(server: &TestServer, service: &str, min: u32, max: u32) {
    aas(
        server,
        &[
            "register-scalable-target",
            "--service-namespace",
            "ecs",
            "--scalable-dimension",
            "ecs:service:DesiredCount",
            "--resource-id",
            &format!("service/e2e/{service}"),
            "--min-capacity",
            &min.to_string(),
            "--max-capacity",
            &max.to_string(),
        ],
    );
}

fn put_policy(server: &TestServer, service: &str, name: &str, kind: &str, config: Value) -> Value {
    let member = if kind == "TargetTrackingScaling" {
        "--target-tracking-scaling-policy-configuration"
    } else {
        "--step-scaling-policy-configuration"
    };
    aas(
        server,
        &[
            "put-scaling-policy",
            "--service-namespace",
            "ecs",
            "--scalable-dimension",
            "ecs:service:DesiredCount",
            "--resource-id",
            &format!("service/e2e/{service}"),
            "--policy-name",
            name,
            "--policy-type",
            kind,
            member,
            &config.to_string(),
        ],
    )
}

/// `(description, cause)` of a service's scaling activities, newest first.
fn activities(server: &TestServer, service: &str) -> Vec<(String, String)> {
    let out = aas(
        server,
        &[
            "describe-scaling-activities",
            "--service-namespace",
            "ecs",
            "--resource-id",
            &format!("service/e2e/{service}"),
        ],
    );
    out["ScalingActivities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["Description"].as_str().unwrap().to_string(),
                a["Cause"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `(desired, running)` of a service.
async fn counts(server: &TestServer, service: &str) -> (i32, i32) {
    let out = server
        .ecs()
        .describe_services()
        .cluster("e2e")
        .services(service)
        .send()
        .await
        .unwrap();
    let s = &out.services()[0];
    (s.desired_count(), s.running_count())
}

/// Registers task definition `family` (one container `web` of `image`, `cpu` units) and
/// creates a one-task service of it, behind `target_group` when given.
fn service(
    server: &TestServer,
    family: &str,
    image: &str,
    cpu: u32,
    extra: Value,
    target_group: Option<&str>,
) {
    let mut container = json!({
        "name": "web", "image": image, "memory": 32, "cpu": cpu, "stopTimeout": 2,
        "portMappings": [{"containerPort": 8080, "hostPort": 0}],
    });
    if let (Some(c), Some(e)) = (container.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    aws(
        server,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            family,
            "--container-definitions",
            &json!([container]).to_string(),
        ],
    );
    let mut args = vec![
        "ecs".to_string(),
        "create-service".into(),
        "--cluster".into(),
        "e2e".into(),
        "--service-name".into(),
        family.into(),
        "--task-definition".into(),
        family.into(),
        "--desired-count".into(),
        "1".into(),
    ];
    if let Some(tg) = target_group {
        args.push("--load-balancers".into());
        args.push(format!(
            "targetGroupArn={tg},containerName=web,containerPort=8080"
        ));
    }
    aws(server, &args.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Requests through the listener at one every `gap` microseconds (changed while it runs)
/// until stopped; counts answers.
struct Load {
    gap_us: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(url: String, gap: Duration) -> Load {
        let gap_us = Arc::new(AtomicU64::new(gap.as_micros() as u64));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let task = {
            let (gap_us, stop, sent) = (gap_us.clone(), stop.clone(), sent.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                while !stop.load(Ordering::Relaxed) {
                    let _ = http.get(&url).send().await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    // Pacing the load, not waiting for a condition.
                    tokio::time::sleep(Duration::from_micros(gap_us.load(Ordering::Relaxed))).await;
                }
            })
        };
        Load {
            gap_us,
            stop,
            sent,
            task,
        }
    }

    fn set_gap(&self, gap: Duration) {
        self.gap_us.store(gap.as_micros() as u64, Ordering::Relaxed);
    }

    async fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.task.await;
        self.sent.load(Ordering::Relaxed)
    }
}

/// The scenario: one task behind the listener, `ALBRequestCountPerTarget` target
/// tracking (target 10 requests per target per minute, min 1, max 4). Load through the listener
/// scales the service out to ≥ 3 RUNNING tasks that all serve; when only a trickle is left (an
/// ALB publishes request counts only for minutes with requests, so a trickle keeps the metric
/// defined, as on AWS) it scales back in; the activities say why, and `berth top` shows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_follows_requests_through_the_load_balancer() {
    require_docker_engine();
    let server = service_server_with(&["--time-scale", "30"]);
    let images = cluster_and_images(&server, "e2e/site", &[("1", "site\n")]).await;
    let state = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::start_registered(&server, state.path()).await;
    let (tg, port) = load_balancer(&server, "site", &["--port", "80"]);
    service(&server, "site", &images[0], 128, json!({}), Some(&tg));
    let lb = aws(
        &server,
        &["elbv2", "describe-load-balancers", "--names", "site"],
    )["LoadBalancers"][0]["LoadBalancerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let label = format!(
        "{}/{}",
        lb.split_once(":loadbalancer/").unwrap().1,
        tg.rsplit_once(':').unwrap().1
    );
    register_target(&server, "site", 1, 4);
    let policy = put_policy(
        &server,
        "site",
        "requests10",
        "TargetTrackingScaling",
        json!({
            "TargetValue": 10.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "ALBRequestCountPerTarget", "ResourceLabel": label,
            },
        }),
    );
    let high = policy["Alarms"][0]["AlarmName"]
        .as_str()
        .unwrap()
        .to_string();
    let low = policy["Alarms"][1]["AlarmName"]
        .as_str()
        .unwrap()
        .to_string();
    until(Duration::from_secs(60), "the first task to run", || async {
        counts(&server, "site").await.1 == 1
    })
    .await;

    // Load: ~40 requests per second, 80 per minute of the scaled clock, on one target.
    let url = format!("http://127.0.0.1:{port}/cgi-bin/host");
    let load = Load::start(url.clone(), Duration::from_millis(25));
    let started = Instant::now();
    until(Duration::from_secs(120), "≥ 3 tasks running", || async {
        counts(&server, "site").await.1 >= 3
    })
    .await;
    let reaction = started.elapsed();
    // All of them serve: the listener reaches ≥ 3 distinct hosts.
    until(Duration::from_secs(60), "≥ 3 tasks serving", || async {
        let mut hosts = std::collections::BTreeSet::new();
        for _ in 0..40 {
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == 200
            {
                hosts.insert(r.text().await.unwrap_or_default());
            }
        }
        hosts.len() >= 3
    })
    .await;
    eprintln!(
        "reaction: load start to 3 RUNNING tasks in {:.1} s real ({:.0} s of the scaled clock; AWS documents 3 one-minute datapoints before a scale-out)",
        reaction.as_secs_f64(),
        reaction.as_secs_f64() * 30.0
    );
    let scaled_out = activities(&server, "site");
    assert!(
        scaled_out
            .iter()
            .any(|(d, c)| d.starts_with("Setting desired count to ")
                && *c
                    == format!("monitor alarm {high} in state ALARM triggered policy requests10")),
        "{scaled_out:?}"
    );
    // `berth top` reads the same metrics: the service with a request rate.
    let top = crate::docker_e2e::run(
        std::process::Command::new(crate::BIN)
            .args(["top", "--once", "--cluster", "e2e", "--data-dir"])
            .arg(&server.data_dir),
    );
    let top = String::from_utf8_lossy(&top.stdout).to_string();
    let row: Vec<&str> = top
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("site"))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert!(
        row.len() == 7 && row[6].parse::<f64>().is_ok_and(|r| r > 0.0),
        "{top}"
    );

    // Only a trickle now (~2 per second: well under 9 per target per minute): back in.
    load.set_gap(Duration::from_millis(500));
    until(
        Duration::from_secs(150),
        "the service to scale back in",
        || async { counts(&server, "site").await.0 == 1 },
    )
    .await;
    let sent = load.stop().await;
    let all = activities(&server, "site");
    assert!(
        all[0].0 == "Setting desired count to 1."
            && all[0].1
                == format!("monitor alarm {low} in state ALARM triggered policy requests10"),
        "{all:?}"
    );
    assert!(sent < 20_000, "bounded load: {sent} requests");
}

/// `ECSServiceAverageCPUUtilization` target tracking: a container that burns a core against a
/// reservation of 256 CPU units is far above a 50 % target; the service scales out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_follows_cpu_utilization() {
    require_docker_engine();
    let server = service_server_with(&["--time-scale", "30"]);
    let images = cluster_and_images(&server, "e2e/burn", &[("1", "burn\n")]).await;
    let state = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::start_registered(&server, state.path()).await;
    service(
        &server,
        "burn",
        &images[0],
        256,
        json!({"command": ["sh", "-c", "while :; do :; done"]}),
        None,
    );
    register_target(&server, "burn", 1, 2);
    let policy = put_policy(
        &server,
        "burn",
        "cpu50",
        "TargetTrackingScaling",
        json!({
            "TargetValue": 50.0,
            "PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"},
        }),
    );
    let high = policy["Alarms"][0]["AlarmName"]
        .as_str()
        .unwrap()
        .to_string();
    until(Duration::from_secs(120), "2 tasks running", || async {
        counts(&server, "burn").await.1 == 2
    })
    .await;
    let all = activities(&server, "burn");
    assert_eq!(
        all[0],
        (
            "Setting desired count to 2.".to_string(),
            format!("monitor alarm {high} in state ALARM triggered policy cpu50")
        )
    );
    // Stop burning at once: the target first (its minimum), then the tasks.
    aas(
        &server,
        &[
            "deregister-scalable-target",
            "--service-namespace",
            "ecs",
            "--scalable-dimension",
            "ecs:service:DesiredCount",
            "--resource-id",
            "service/e2e/burn",
        ],
    );
    aws(
        &server,
        &[
            "ecs",
            "update-service",
            "--cluster",
            "e2e",
            "--service",
            "burn",
            "--desired-count",
            "0",
        ],
    );
}

/// A step policy on an alarm over a custom metric the test puts with PutMetricData (real
/// time): a queue 400 above the threshold adds 2 tasks to the one running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_steps_on_a_custom_metric() {
    require_docker_engine();
    let server = service_server_with(&[]);
    let images = cluster_and_images(&server, "e2e/worker", &[("1", "worker\n")]).await;
    let state = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::start_registered(&server, state.path()).await;
    service(&server, "worker", &images[0], 128, json!({}), None);
    register_target(&server, "worker", 1, 5);
    let policy = put_policy(
        &server,
        "worker",
        "queue",
        "StepScaling",
        json!({
            "AdjustmentType": "ChangeInCapacity",
            "StepAdjustments": [
                {"MetricIntervalLowerBound": 0, "MetricIntervalUpperBound": 200, "ScalingAdjustment": 1},
                {"MetricIntervalLowerBound": 200, "ScalingAdjustment": 2},
            ],
            "Cooldown": 60,
        }),
    );
    let arn = policy["PolicyARN"].as_str().unwrap();
    until(Duration::from_secs(60), "the first task to run", || async {
        counts(&server, "worker").await.1 == 1
    })
    .await;
    aws(
        &server,
        &[
            "cloudwatch",
            "put-metric-alarm",
            "--alarm-name",
            "queue-deep",
            "--namespace",
            "Jobs",
            "--metric-name",
            "QueueDepth",
            "--statistic",
            "Average",
            "--period",
            "60",
            "--evaluation-periods",
            "1",
            "--threshold",
            "100",
            "--comparison-operator",
            "GreaterThanOrEqualToThreshold",
            "--alarm-actions",
            arn,
        ],
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let minute = now - now.rem_euclid(60);
    let data: Vec<Value> = (0..3)
        .map(|k| json!({"MetricName": "QueueDepth", "Timestamp": minute - 60 * k, "Value": 500.0}))
        .collect();
    aws(
        &server,
        &[
            "cloudwatch",
            "put-metric-data",
            "--namespace",
            "Jobs",
            "--metric-data",
            &Value::Array(data).to_string(),
        ],
    );
    server.activate("alarm-evaluator").await;
    until(Duration::from_secs(90), "3 tasks running", || async {
        counts(&server, "worker").await == (3, 3)
    })
    .await;
    assert_eq!(
        activities(&server, "worker")[0],
        (
            "Setting desired count to 3.".to_string(),
            "monitor alarm queue-deep in state ALARM triggered policy queue".to_string()
        )
    );
}
