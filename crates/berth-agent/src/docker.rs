//! Task definitions → Docker Engine, through bollard.

use crate::{AgentError, Control};
use base64::Engine;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, HealthConfig,
    HealthStatusEnum, HostConfig, PortBinding,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, ListContainersOptions,
    RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The Docker network awsvpc tasks get their own addresses on.
pub const TASK_NETWORK: &str = "berth-awsvpc";

const LABEL_TASK: &str = "com.berth.task-arn";
pub(crate) const LABEL_CONTAINER: &str = "com.berth.container-name";
const LABEL_INSTANCE: &str = "com.berth.container-instance";

/// What the agent's containers need to know about the node they run on.
pub struct Node {
    pub instance: String,
    /// The port of the task metadata endpoint (see `metadata`).
    pub metadata_port: u16,
}

/// This instance's containers, by task ARN.
pub async fn owned(
    docker: &Docker,
    instance: &str,
) -> Result<HashMap<String, Vec<ContainerSummary>>, AgentError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{LABEL_INSTANCE}={instance}")],
    )]);
    let list = docker
        .list_containers(Some(ListContainersOptions {
            all: true,
            filters: Some(filters),
            ..Default::default()
        }))
        .await?;
    let mut out: HashMap<String, Vec<ContainerSummary>> = HashMap::new();
    for c in list {
        if let Some(task) = c.labels.as_ref().and_then(|l| l.get(LABEL_TASK)).cloned() {
            out.entry(task).or_default().push(c);
        }
    }
    Ok(out)
}

pub(crate) fn label_of<'a>(c: &'a ContainerSummary, key: &str) -> Option<&'a str> {
    c.labels
        .as_ref()
        .and_then(|l| l.get(key))
        .map(String::as_str)
}

fn definitions(td: &Value) -> Vec<Value> {
    td["containerDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn override_of<'a>(task: &'a Value, name: &str) -> Option<&'a Value> {
    task["overrides"]["containerOverrides"]
        .as_array()?
        .iter()
        .find(|o| o["name"].as_str() == Some(name))
}

fn strings(v: &Value) -> Option<Vec<String>> {
    v.as_array().map(|a| {
        a.iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect()
    })
}

fn now() -> f64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_millis() as f64 / 1000.0
}

/// Pulls `image`, with an ECR token when it lives in this Berth's registry.
async fn pull(docker: &Docker, control: &Control, image: &str) -> Result<(), String> {
    let credentials = if image.starts_with(&format!("{}/", control.host())) {
        let out = control
            .call("ecr", "GetAuthorizationToken", json!({}))
            .await
            .map_err(|e| e.to_string())?;
        let token = out["authorizationData"][0]["authorizationToken"]
            .as_str()
            .unwrap_or("");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let (user, password) = decoded.split_once(':').unwrap_or(("AWS", ""));
        Some(DockerCredentials {
            username: Some(user.to_string()),
            password: Some(password.to_string()),
            serveraddress: Some(control.host().to_string()),
            ..Default::default()
        })
    } else {
        None
    };
    let mut stream = docker.create_image(
        Some(CreateImageOptions {
            from_image: Some(image.to_string()),
            ..Default::default()
        }),
        None,
        credentials,
    );
    while let Some(item) = stream.next().await {
        item.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Whether the `dependsOn` conditions of `def` hold, given the containers started so far;
/// `Err` when one can no longer hold (a SUCCESS dependency that failed).
async fn dependencies_met(
    docker: &Docker,
    def: &Value,
    started: &HashMap<String, String>,
) -> Result<bool, String> {
    for dep in def["dependsOn"].as_array().into_iter().flatten() {
        let target = dep["containerName"].as_str().unwrap_or_default();
        let condition = dep["condition"].as_str().unwrap_or("START");
        let Some(id) = started.get(target) else {
            return Ok(false);
        };
        if condition == "START" {
            continue;
        }
        let Ok(info) = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        else {
            return Ok(false);
        };
        let state = info.state.unwrap_or_default();
        let exited = !state.running.unwrap_or(false);
        let code = state.exit_code.unwrap_or(0);
        let healthy = state
            .health
            .and_then(|h| h.status)
            .is_some_and(|s| s == HealthStatusEnum::HEALTHY);
        let met = match condition {
            "COMPLETE" => exited,
            "SUCCESS" if exited && code != 0 => {
                return Err(format!(
                    "DependencyViolation: container {target} exited with code {code}, and {} needs it to succeed",
                    def["name"].as_str().unwrap_or_default()
                ));
            }
            "SUCCESS" => exited,
            "HEALTHY" => healthy,
            _ => true,
        };
        if !met {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Creates the awsvpc task network if it does not exist.
async fn ensure_task_network(docker: &Docker) -> Result<(), bollard::errors::Error> {
    if docker
        .inspect_network(
            TASK_NETWORK,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .is_ok()
    {
        return Ok(());
    }
    let created = docker
        .create_network(bollard::models::NetworkCreateRequest {
            name: TASK_NETWORK.into(),
            driver: Some("bridge".into()),
            labels: Some(HashMap::from([(
                "com.berth.network".to_string(),
                "awsvpc".to_string(),
            )])),
            ..Default::default()
        })
        .await;
    match created {
        Ok(_) => Ok(()),
        // Another agent on the same engine created it first.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Starts every container of `task` that does not run yet; the RUNNING (or failed) report.
pub async fn start_task(
    docker: &Docker,
    control: &Control,
    node: &Node,
    task: &Value,
    td: &Value,
    existing: &[ContainerSummary],
) -> Option<Value> {
    let task_arn = task["taskArn"].as_str().unwrap_or_default();
    let task_id = task_arn.rsplit('/').next().unwrap_or_default();
    let pull_started = now();
    let mut reports = Vec::new();
    let awsvpc = td["networkMode"].as_str() == Some("awsvpc");
    if awsvpc && let Err(e) = ensure_task_network(docker).await {
        let name = definitions(td)
            .first()
            .and_then(|d| d["name"].as_str().map(str::to_string))
            .unwrap_or_default();
        return Some(failed(
            &name,
            format!("ResourceInitializationError: cannot create the task network: {e}"),
        ));
    }
    // awsvpc: the first container holds the task's address; the others share its namespace.
    let mut namespace: Option<String> = existing
        .iter()
        .find(|c| {
            Some(label_of(c, LABEL_CONTAINER).unwrap_or_default())
                == definitions(td).first().and_then(|d| d["name"].as_str())
        })
        .and_then(|c| c.id.clone());
    // Containers start in dependency order (dependsOn); one that waits for a dependency
    // leaves the task PENDING until a later pass.
    let defs = definitions(td);
    let mut started: HashMap<String, String> = HashMap::new();
    loop {
        let mut progressed = false;
        for def in &defs {
            let name = def["name"].as_str().unwrap_or_default().to_string();
            if started.contains_key(&name) {
                continue;
            }
            match dependencies_met(docker, def, &started).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(reason) => return Some(failed(&name, reason)),
            }
            let image = def["image"].as_str().unwrap_or_default().to_string();
            let found = existing
                .iter()
                .find(|c| label_of(c, LABEL_CONTAINER) == Some(name.as_str()));
            // A container that already ran (a dependency that completed) is not run again.
            let ran = found.is_some_and(|c| c.state != Some(ContainerSummaryStateEnum::CREATED));
            let id = match found {
                Some(c) => c.id.clone().unwrap_or_default(),
                None => {
                    let have_image = docker.inspect_image(&image).await.is_ok();
                    if !have_image && let Err(e) = pull(docker, control, &image).await {
                        return Some(failed(&name, format!("CannotPullContainerError: {e}")));
                    }
                    let mode = if awsvpc {
                        Some(match &namespace {
                            Some(first) => format!("container:{first}"),
                            None => TASK_NETWORK.to_string(),
                        })
                    } else {
                        None
                    };
                    match create(docker, node, task, td, def, task_id, mode).await {
                        Ok(id) => id,
                        Err(e) => {
                            return Some(failed(&name, format!("CannotCreateContainerError: {e}")));
                        }
                    }
                }
            };
            if !ran && let Err(e) = docker.start_container(&id, None).await {
                let already = matches!(
                    &e,
                    bollard::errors::Error::DockerResponseServerError {
                        status_code: 304,
                        ..
                    }
                );
                if !already {
                    return Some(failed(&name, format!("CannotStartContainerError: {e}")));
                }
            }
            namespace.get_or_insert(id.clone());
            started.insert(name, id);
            progressed = true;
        }
        if started.len() == defs.len() {
            break;
        }
        if !progressed {
            return None;
        }
    }
    for def in &defs {
        let name = def["name"].as_str().unwrap_or_default();
        reports.push(container_report(docker, &started[name], name).await);
    }
    Some(json!({
        "status": "RUNNING",
        "containers": reports,
        "pullStartedAt": pull_started,
        "pullStoppedAt": now(),
    }))
}

fn failed(name: &str, reason: String) -> Value {
    tracing::warn!(container = name, %reason, "task failed to start");
    json!({
        "status": "STOPPED",
        "reason": reason,
        "containers": [{"containerName": name, "status": "STOPPED", "reason": reason}],
    })
}

async fn create(
    docker: &Docker,
    node: &Node,
    task: &Value,
    td: &Value,
    def: &Value,
    task_id: &str,
    network_override: Option<String>,
) -> Result<String, bollard::errors::Error> {
    let name = def["name"].as_str().unwrap_or_default();
    let o = override_of(task, name);
    let pick = |field: &str| {
        o.and_then(|o| o.get(field))
            .filter(|v| !v.is_null())
            .unwrap_or(&def[field])
    };
    let mut env: Vec<String> = Vec::new();
    for list in [
        &def["environment"],
        o.map_or(&Value::Null, |o| &o["environment"]),
    ] {
        for e in list.as_array().into_iter().flatten() {
            if let (Some(k), Some(v)) = (e["name"].as_str(), e["value"].as_str()) {
                env.retain(|x| !x.starts_with(&format!("{k}=")));
                env.push(format!("{k}={v}"));
            }
        }
    }
    let network_mode = td["networkMode"].as_str().unwrap_or("bridge");
    // The task metadata endpoint, through the host's address on the container's network.
    let host = match network_mode {
        "host" => Some("127.0.0.1".to_string()),
        "bridge" => crate::metadata::gateway(docker, "bridge").await,
        "awsvpc" => crate::metadata::gateway(docker, TASK_NETWORK).await,
        _ => None,
    };
    if let Some(host) = host {
        let uri = format!("http://{host}:{}/v4/{task_id}/{name}", node.metadata_port);
        env.push(format!("ECS_CONTAINER_METADATA_URI_V4={uri}"));
    }
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    if network_mode == "bridge" {
        for pm in def["portMappings"].as_array().into_iter().flatten() {
            let Some(cp) = pm["containerPort"].as_i64() else {
                continue;
            };
            let proto = pm["protocol"].as_str().unwrap_or("tcp");
            let key = format!("{cp}/{proto}");
            let host_port = pm["hostPort"]
                .as_i64()
                .filter(|p| *p > 0)
                .map(|p| p.to_string())
                .unwrap_or_default();
            exposed.push(key.clone());
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some(host_port),
                }]),
            );
        }
    }
    let mib = |v: &Value| v.as_i64().filter(|n| *n > 0).map(|n| n * 1024 * 1024);
    // A task-level memory size (FARGATE) bounds containers that set none of their own.
    let task_memory = task["memory"]
        .as_str()
        .and_then(|m| m.parse::<i64>().ok())
        .filter(|_| td["memory"].is_string())
        .map(|m| m * 1024 * 1024);
    let cpu = pick("cpu").as_i64().unwrap_or(0);
    let mut labels = HashMap::from([
        (
            LABEL_TASK.to_string(),
            task["taskArn"].as_str().unwrap_or_default().to_string(),
        ),
        (LABEL_CONTAINER.to_string(), name.to_string()),
        (LABEL_INSTANCE.to_string(), node.instance.clone()),
    ]);
    if let Some(extra) = def["dockerLabels"].as_object() {
        for (k, v) in extra {
            if let Some(v) = v.as_str() {
                labels.insert(k.clone(), v.to_string());
            }
        }
    }
    let family = td["family"].as_str().unwrap_or_default();
    let revision = td["revision"].as_i64().unwrap_or(0);
    // mountPoints: host volumes bind their sourcePath; other volumes are Docker volumes
    // (task-scoped unless `dockerVolumeConfiguration.scope` is `shared`).
    let mut binds = Vec::new();
    for m in def["mountPoints"].as_array().into_iter().flatten() {
        let (Some(volume), Some(path)) = (m["sourceVolume"].as_str(), m["containerPath"].as_str())
        else {
            continue;
        };
        let Some(v) = td["volumes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|v| v["name"].as_str() == Some(volume))
        else {
            continue;
        };
        let source = match v["host"]["sourcePath"].as_str() {
            Some(p) => p.to_string(),
            None if v["dockerVolumeConfiguration"]["scope"].as_str() == Some("shared") => {
                volume.to_string()
            }
            None => format!(
                "ecs-{family}-{revision}-{volume}-{}",
                &task_id[..8.min(task_id.len())]
            ),
        };
        let ro = if m["readOnly"].as_bool() == Some(true) {
            ":ro"
        } else {
            ""
        };
        binds.push(format!("{source}:{path}{ro}"));
    }
    let ulimits: Vec<bollard::models::ResourcesUlimits> = def["ulimits"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|u| bollard::models::ResourcesUlimits {
            name: u["name"].as_str().map(str::to_string),
            soft: u["softLimit"].as_i64(),
            hard: u["hardLimit"].as_i64(),
        })
        .collect();
    let body = ContainerCreateBody {
        image: def["image"].as_str().map(str::to_string),
        cmd: strings(pick("command")),
        entrypoint: strings(&def["entryPoint"]),
        env: Some(env),
        working_dir: def["workingDirectory"].as_str().map(str::to_string),
        user: def["user"].as_str().map(str::to_string),
        labels: Some(labels),
        exposed_ports: Some(exposed),
        stop_timeout: def["stopTimeout"].as_i64(),
        healthcheck: health_config(&def["healthCheck"]),
        host_config: Some(HostConfig {
            memory: mib(pick("memory")).or(task_memory),
            memory_reservation: mib(pick("memoryReservation")),
            cpu_shares: Some(if cpu < 2 { 2 } else { cpu }),
            port_bindings: Some(bindings),
            network_mode: Some(network_override.unwrap_or_else(|| network_mode.to_string())),
            privileged: def["privileged"].as_bool(),
            binds: Some(binds),
            ulimits: Some(ulimits),
            readonly_rootfs: def["readonlyRootFilesystem"].as_bool(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let created = docker
        .create_container(
            Some(CreateContainerOptions {
                name: Some(format!(
                    "ecs-{family}-{revision}-{name}-{}",
                    &task_id[..8.min(task_id.len())]
                )),
                ..Default::default()
            }),
            body,
        )
        .await?;
    Ok(created.id)
}

/// An ECS `healthCheck` as Docker's (seconds → nanoseconds; ECS defaults 30 s / 5 s / 3 / 0).
fn health_config(h: &Value) -> Option<HealthConfig> {
    let test = strings(&h["command"])?;
    let secs = |field: &str, default: i64| h[field].as_i64().unwrap_or(default) * 1_000_000_000;
    Some(HealthConfig {
        test: Some(test),
        interval: Some(secs("interval", 30)),
        timeout: Some(secs("timeout", 5)),
        retries: Some(h["retries"].as_i64().unwrap_or(3)),
        start_period: Some(secs("startPeriod", 0)),
        ..Default::default()
    })
}

/// The state of one container as `SubmitTaskStateChange` reports it.
async fn container_report(docker: &Docker, id: &str, name: &str) -> Value {
    let Ok(info) = docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    else {
        return json!({"containerName": name, "status": "STOPPED", "reason": "the container is gone"});
    };
    let state = info.state.unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let health = state
        .health
        .as_ref()
        .and_then(|h| h.status)
        .and_then(|s| match s {
            HealthStatusEnum::HEALTHY => Some("HEALTHY"),
            HealthStatusEnum::UNHEALTHY => Some("UNHEALTHY"),
            HealthStatusEnum::STARTING => Some("UNKNOWN"),
            HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
        });
    let mut bindings = Vec::new();
    for (key, list) in info
        .network_settings
        .as_ref()
        .and_then(|n| n.ports.clone())
        .unwrap_or_default()
    {
        let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        for b in list.unwrap_or_default() {
            let host_ip = b.host_ip.unwrap_or_default();
            if host_ip.contains(':') {
                continue; // the IPv6 twin of the IPv4 binding
            }
            if let (Ok(cp), Some(Ok(hp))) =
                (port.parse::<i64>(), b.host_port.map(|p| p.parse::<i64>()))
            {
                bindings.push(json!({"bindIP": if host_ip.is_empty() { "0.0.0.0".to_string() } else { host_ip }, "containerPort": cp, "hostPort": hp, "protocol": proto}));
            }
        }
    }
    let address = info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .and_then(|n| n.get(TASK_NETWORK))
        .and_then(|e| e.ip_address.clone())
        .filter(|ip| !ip.is_empty());
    let mut v = json!({
        "containerName": name,
        "runtimeId": id,
        "status": if running { "RUNNING" } else { "STOPPED" },
        "networkBindings": bindings,
    });
    if let Some(ip) = address {
        // Not in the AWS model's ContainerStateChange: the awsvpc address, Berth's extension.
        v["privateIpv4Address"] = ip.into();
    }
    if let Some(h) = health {
        // Not in the AWS model's ContainerStateChange: Berth's own extension.
        v["healthStatus"] = h.into();
    }
    if !running {
        v["exitCode"] = state.exit_code.unwrap_or(0).into();
        if state.oom_killed == Some(true) {
            v["reason"] = "OutOfMemoryError: Container killed due to memory usage".into();
        }
    }
    v
}

/// For a RUNNING task: if an essential container has exited, the task stops (its other
/// containers are stopped) and the STOPPED report is returned; if a container's health
/// changed from what the control plane knows, a RUNNING report carries it.
pub async fn check_task(
    docker: &Docker,
    task: &Value,
    td: &Value,
    mine: &[ContainerSummary],
) -> Result<Option<Value>, AgentError> {
    let mut exited_essential = false;
    let mut reports = Vec::new();
    let mut health_changed = false;
    for def in definitions(td) {
        let name = def["name"].as_str().unwrap_or_default();
        let essential = def["essential"].as_bool().unwrap_or(true);
        let c = mine
            .iter()
            .find(|c| label_of(c, LABEL_CONTAINER) == Some(name));
        let running = c
            .and_then(|c| c.state.as_ref())
            .is_some_and(|s| s.to_string() == "running");
        if essential && !running {
            exited_essential = true;
        }
        if def.get("healthCheck").is_some_and(|h| !h.is_null())
            && let Some(id) = c.and_then(|c| c.id.clone())
        {
            let report = container_report(docker, &id, name).await;
            let known = task["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["name"].as_str() == Some(name))
                .and_then(|x| x["healthStatus"].as_str());
            if report["healthStatus"].as_str().is_some() && report["healthStatus"].as_str() != known
            {
                health_changed = true;
            }
            reports.push(report);
        }
    }
    if exited_essential {
        let mut report = stop_task(docker, td, mine).await?;
        report["reason"] = "Essential container in task exited".into();
        return Ok(Some(report));
    }
    Ok(health_changed.then(|| json!({"status": "RUNNING", "containers": reports})))
}

/// Stops (SIGTERM, then SIGKILL after `stopTimeout`, default 30 s) and removes the task's
/// containers; the STOPPED report with their exit codes.
pub async fn stop_task(
    docker: &Docker,
    td: &Value,
    mine: &[ContainerSummary],
) -> Result<Value, AgentError> {
    let mut reports = Vec::new();
    for def in definitions(td) {
        let name = def["name"].as_str().unwrap_or_default();
        let Some(c) = mine
            .iter()
            .find(|c| label_of(c, LABEL_CONTAINER) == Some(name))
        else {
            reports.push(json!({"containerName": name, "status": "STOPPED"}));
            continue;
        };
        let id = c.id.clone().unwrap_or_default();
        let timeout = def["stopTimeout"].as_i64().unwrap_or(30) as i32;
        let _ = docker
            .stop_container(
                &id,
                Some(StopContainerOptions {
                    t: Some(timeout),
                    ..Default::default()
                }),
            )
            .await;
        reports.push(container_report(docker, &id, name).await);
        let _ = docker
            .remove_container(
                &id,
                Some(RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await;
    }
    Ok(json!({"status": "STOPPED", "containers": reports, "executionStoppedAt": now()}))
}
