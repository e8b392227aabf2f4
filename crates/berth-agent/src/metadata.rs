//! The task metadata endpoint v4 (`ECS_CONTAINER_METADATA_URI_V4`), served to containers.
//!
//! Each container gets `http://<host address on its network>:<port>/v4/<task id>/<container>`.
//! A request is answered only when it comes from an address of that task's containers (or from
//! loopback, for `host` network mode), so one task cannot read another's metadata.

use crate::docker::{self, label_of};
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bollard::Docker;
use bollard::models::{ContainerInspectResponse, ContainerSummary};
use bollard::query_parameters::{InspectContainerOptions, StatsOptions};
use futures_util::StreamExt;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

/// The tasks of this instance as the control plane last described them, by task id.
pub type Tasks = Arc<Mutex<HashMap<String, Value>>>;

#[derive(Clone)]
struct Ctx {
    docker: Docker,
    instance: String,
    zone: String,
    tasks: Tasks,
}

/// Binds the endpoint on all addresses — containers reach it through their network's gateway —
/// on the port the agent used before (kept in `state_dir`, so adopted containers' URIs stay
/// valid), and serves it in the background. Returns the port.
pub async fn serve(
    docker: Docker,
    instance: String,
    zone: String,
    tasks: Tasks,
    state_dir: &std::path::Path,
) -> std::io::Result<u16> {
    let file = state_dir.join("metadata-port");
    let previous: u16 = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", previous)).await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind(("0.0.0.0", 0)).await?,
    };
    let port = listener.local_addr()?.port();
    std::fs::write(&file, port.to_string())?;
    let app = axum::Router::new()
        .route("/v4/{task}/{container}", get(container))
        .route("/v4/{task}/{container}/task", get(task))
        .route("/v4/{task}/{container}/stats", get(container_stats))
        .route("/v4/{task}/{container}/task/stats", get(task_stats))
        .with_state(Ctx {
            docker,
            instance,
            zone,
            tasks,
        });
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the task metadata endpoint stopped");
        }
    });
    Ok(port)
}

type Peer = ConnectInfo<SocketAddr>;

fn json_response(v: Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

/// The task's document and its containers, if `peer` may see them.
async fn lookup(
    ctx: &Ctx,
    peer: SocketAddr,
    task_id: &str,
) -> Result<(Value, Vec<ContainerSummary>), Response> {
    let not_found = || (StatusCode::NOT_FOUND, "no such task on this instance").into_response();
    let task = ctx
        .tasks
        .lock()
        .unwrap()
        .get(task_id)
        .cloned()
        .ok_or_else(not_found)?;
    let arn = task["taskArn"].as_str().unwrap_or_default();
    let containers = docker::owned(&ctx.docker, &ctx.instance)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())?
        .remove(arn)
        .ok_or_else(not_found)?;
    // Inspect, not the listing: Docker's container list can lag a just-started container.
    let mut allowed = false;
    for c in &containers {
        let Some(info) = inspect(ctx, c.id.as_deref().unwrap_or_default()).await else {
            continue;
        };
        let host = info
            .host_config
            .as_ref()
            .and_then(|h| h.network_mode.as_deref())
            == Some("host");
        let mut ips = info
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .into_iter()
            .flat_map(|n| n.values())
            .filter_map(|e| e.ip_address.as_deref()?.parse::<IpAddr>().ok());
        if (host && peer.ip().is_loopback()) || ips.any(|ip| ip == peer.ip()) {
            allowed = true;
            break;
        }
    }
    if !allowed {
        return Err((
            StatusCode::FORBIDDEN,
            "the metadata of a task is served to its own containers only",
        )
            .into_response());
    }
    Ok((task, containers))
}

async fn inspect(ctx: &Ctx, id: &str) -> Option<ContainerInspectResponse> {
    ctx.docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
        .ok()
}

fn named<'a>(containers: &'a [ContainerSummary], name: &str) -> Option<&'a ContainerSummary> {
    containers
        .iter()
        .find(|c| label_of(c, docker::LABEL_CONTAINER) == Some(name))
}

/// One container in the v4 shape.
fn container_json(info: &ContainerInspectResponse, task: &Value) -> Value {
    let labels = info
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let state = info.state.clone().unwrap_or_default();
    let running = state.running.unwrap_or(false);
    let started = state.started_at.clone().filter(|s| !s.starts_with("0001-"));
    let known = if running {
        "RUNNING"
    } else if started.is_some() {
        "STOPPED"
    } else {
        "PENDING"
    };
    let host = info.host_config.clone().unwrap_or_default();
    let networks: Vec<Value> = info
        .network_settings
        .as_ref()
        .and_then(|n| n.networks.as_ref())
        .into_iter()
        .flatten()
        .map(|(name, e)| {
            let mode = match name.as_str() {
                docker::TASK_NETWORK => "awsvpc",
                other => other,
            };
            json!({"NetworkMode": mode, "IPv4Addresses": [e.ip_address.clone().unwrap_or_default()]})
        })
        .collect();
    let mut v = json!({
        "DockerId": info.id,
        "Name": labels.get(docker::LABEL_CONTAINER),
        "DockerName": info.name.as_deref().unwrap_or_default().trim_start_matches('/'),
        "Image": info.config.as_ref().and_then(|c| c.image.clone()),
        "ImageID": info.image,
        "Labels": labels,
        "DesiredStatus": task["desiredStatus"],
        "KnownStatus": known,
        "Limits": {"CPU": host.cpu_shares.unwrap_or(0), "Memory": host.memory.unwrap_or(0) / (1024 * 1024)},
        "CreatedAt": info.created,
        "Type": "NORMAL",
        "Networks": networks,
    });
    if let Some(s) = started {
        v["StartedAt"] = s.into();
    }
    if known == "STOPPED" {
        v["ExitCode"] = state.exit_code.unwrap_or(0).into();
    }
    v
}

async fn container(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): Peer,
    Path((task_id, name)): Path<(String, String)>,
) -> Response {
    let (task, containers) = match lookup(&ctx, peer, &task_id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Some(id) = named(&containers, &name).and_then(|c| c.id.clone()) else {
        return (StatusCode::NOT_FOUND, "no such container in this task").into_response();
    };
    match inspect(&ctx, &id).await {
        Some(info) => json_response(container_json(&info, &task)),
        None => (StatusCode::NOT_FOUND, "the container is gone").into_response(),
    }
}

async fn task(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): Peer,
    Path((task_id, _)): Path<(String, String)>,
) -> Response {
    let (task, containers) = match lookup(&ctx, peer, &task_id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut list = Vec::new();
    for c in &containers {
        if let Some(info) = inspect(&ctx, c.id.as_deref().unwrap_or_default()).await {
            list.push(container_json(&info, &task));
        }
    }
    let td = task["taskDefinitionArn"].as_str().unwrap_or_default();
    let (family, revision) = td
        .rsplit('/')
        .next()
        .and_then(|fr| fr.rsplit_once(':'))
        .unwrap_or_default();
    let mut v = json!({
        "Cluster": task["clusterArn"],
        "TaskARN": task["taskArn"],
        "Family": family,
        "Revision": revision,
        "DesiredStatus": task["desiredStatus"],
        "KnownStatus": task["lastStatus"],
        "Containers": list,
        "AvailabilityZone": task["availabilityZone"].as_str().unwrap_or(&ctx.zone),
        "LaunchType": task["launchType"],
    });
    for (from, to) in [
        ("pullStartedAt", "PullStartedAt"),
        ("pullStoppedAt", "PullStoppedAt"),
    ] {
        if !task[from].is_null() {
            v[to] = task[from].clone();
        }
    }
    let limit = |f: &str| task[f].as_str().and_then(|s| s.parse::<f64>().ok());
    if let (Some(cpu), Some(memory)) = (limit("cpu"), limit("memory")) {
        v["Limits"] = json!({"CPU": cpu / 1024.0, "Memory": memory});
    }
    json_response(v)
}

async fn stats_of(ctx: &Ctx, id: &str) -> Value {
    let options = StatsOptions {
        stream: false,
        one_shot: false,
    };
    match ctx.docker.stats(id, Some(options)).next().await {
        Some(Ok(s)) => serde_json::to_value(s).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

async fn container_stats(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): Peer,
    Path((task_id, name)): Path<(String, String)>,
) -> Response {
    let (_, containers) = match lookup(&ctx, peer, &task_id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    match named(&containers, &name).and_then(|c| c.id.clone()) {
        Some(id) => json_response(stats_of(&ctx, &id).await),
        None => (StatusCode::NOT_FOUND, "no such container in this task").into_response(),
    }
}

async fn task_stats(
    State(ctx): State<Ctx>,
    ConnectInfo(peer): Peer,
    Path((task_id, _)): Path<(String, String)>,
) -> Response {
    let (_, containers) = match lookup(&ctx, peer, &task_id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut all = serde_json::Map::new();
    for id in containers.iter().filter_map(|c| c.id.clone()) {
        let s = stats_of(&ctx, &id).await;
        all.insert(id, s);
    }
    json_response(Value::Object(all))
}

/// The host's address on a Docker network (its gateway), where containers on it reach us.
pub async fn gateway(docker: &Docker, network: &str) -> Option<String> {
    let n = docker
        .inspect_network(
            network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .ok()?;
    n.ipam?.config?.into_iter().find_map(|c| {
        c.gateway
            .filter(|g| g.parse::<std::net::Ipv4Addr>().is_ok())
    })
}
