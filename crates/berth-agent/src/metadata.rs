//! The task metadata endpoint v4 (`ECS_CONTAINER_METADATA_URI_V4`), served to containers.
//!
//! Each container gets `http://<host address on its network>:<port>/v4/<task id>/<container>`.
//! The endpoint listens only where containers reach it: the host's address on each Docker
//! network a task uses (bound when the first such task starts) and loopback (for `host`
//! network mode) — never on every address. A request is answered only when it comes from an
//! address of that task's containers (or from loopback, for `host` mode), so one task cannot
//! read another's metadata. It also serves the task role credentials (`crate::credentials`).

use crate::credentials::{self, Credentials};
use crate::runtime::{ContainerState, Runtime};
use crate::worker::TASK_NETWORK;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use berth_node_api::agent::{DesiredStatus, KnownStatus, TaskRole, TaskSpec};
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

/// The tasks of this instance as the agent knows them, by task id.
pub type Tasks = Arc<Mutex<HashMap<String, (TaskSpec, KnownStatus)>>>;

/// The endpoint: one port, listening on the addresses containers reach it on.
pub struct Metadata<R> {
    runtime: R,
    instance: String,
    zone: String,
    tasks: Tasks,
    port: u16,
    bound: tokio::sync::Mutex<HashSet<IpAddr>>,
    /// The task role credentials it serves (`/v2/credentials/<id>`), once set.
    credentials: std::sync::OnceLock<Arc<Credentials>>,
}

impl<R: Runtime> Metadata<R> {
    /// Listens on loopback on the port the agent used before (kept in `state_dir`, so adopted
    /// containers' URIs stay valid), or a new one, and on the host's address on the networks
    /// tasks already use.
    pub async fn start(
        runtime: R,
        instance: String,
        zone: String,
        tasks: Tasks,
        state_dir: &std::path::Path,
    ) -> std::io::Result<Arc<Metadata<R>>> {
        let file = state_dir.join("metadata-port");
        let previous: u16 = std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let listener = match tokio::net::TcpListener::bind((loopback, previous)).await {
            Ok(l) => l,
            Err(_) => tokio::net::TcpListener::bind((loopback, 0)).await?,
        };
        let port = listener.local_addr()?.port();
        std::fs::write(&file, port.to_string())?;
        let m = Arc::new(Metadata {
            runtime,
            instance,
            zone,
            tasks,
            port,
            bound: tokio::sync::Mutex::new(HashSet::from([loopback])),
            credentials: Default::default(),
        });
        m.serve(listener);
        for network in ["bridge", TASK_NETWORK] {
            if let Ok(Some(address)) = m.runtime.host_address(network).await
                && let Err(e) = m.listen(IpAddr::V4(address)).await
            {
                tracing::warn!(network, %address, error = %e, "the task metadata endpoint cannot listen on this network's host address");
            }
        }
        Ok(m)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves task role credentials from now on.
    pub fn serve_credentials(&self, credentials: Arc<Credentials>) {
        let _ = self.credentials.set(credentials);
    }

    pub fn credentials(&self) -> Option<&Arc<Credentials>> {
        self.credentials.get()
    }

    /// Listens on `address` too (once).
    pub async fn listen(self: &Arc<Self>, address: IpAddr) -> std::io::Result<()> {
        let mut bound = self.bound.lock().await;
        if bound.contains(&address) {
            return Ok(());
        }
        let listener = tokio::net::TcpListener::bind((address, self.port)).await?;
        self.serve(listener);
        bound.insert(address);
        tracing::info!(%address, port = self.port, "the task metadata endpoint listens");
        Ok(())
    }

    fn serve(self: &Arc<Self>, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/v4/{task}/{container}", get(container::<R>))
            .route("/v4/{task}/{container}/task", get(task::<R>))
            .route("/v4/{task}/{container}/stats", get(container_stats::<R>))
            .route("/v4/{task}/{container}/task/stats", get(task_stats::<R>))
            .route("/v2/credentials/{id}", get(role_credentials::<R>))
            .with_state(self.clone());
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the task metadata endpoint stopped");
            }
        });
    }
}

type Ctx<R> = State<Arc<Metadata<R>>>;
type Peer = ConnectInfo<SocketAddr>;

fn json_response(v: Value) -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        v.to_string(),
    )
        .into_response()
}

fn not_found(what: &'static str) -> Response {
    (StatusCode::NOT_FOUND, what).into_response()
}

/// The task and its containers (by ECS name), if `peer` may see them.
async fn lookup<R: Runtime>(
    m: &Metadata<R>,
    peer: SocketAddr,
    task_id: &str,
) -> Result<(TaskSpec, KnownStatus, Vec<(String, ContainerState)>), Response> {
    let (task, known) = m
        .tasks
        .lock()
        .unwrap()
        .get(task_id)
        .cloned()
        .ok_or_else(|| not_found("no such task on this instance"))?;
    let listed = m
        .runtime
        .containers(&m.instance)
        .await
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response())?;
    // Inspect, not the listing: the engine's list can lag a just-started container.
    let mut containers = Vec::new();
    for c in listed.into_iter().filter(|c| c.task_arn == task.arn) {
        if let Ok(Some(state)) = m.runtime.inspect(&c.id).await {
            containers.push((c.name, state));
        }
    }
    if containers.is_empty() {
        return Err(not_found("no such task on this instance"));
    }
    let allowed = containers.iter().any(|(_, s)| {
        (s.network_mode == "host" && peer.ip().is_loopback())
            || s.networks
                .values()
                .flatten()
                .any(|ip| IpAddr::V4(*ip) == peer.ip())
    });
    if !allowed {
        return Err((
            StatusCode::FORBIDDEN,
            "the metadata of a task is served to its own containers only",
        )
            .into_response());
    }
    Ok((task, known, containers))
}

fn status_name(s: KnownStatus) -> &'static str {
    match s {
        KnownStatus::Pending => "PENDING",
        KnownStatus::Running => "RUNNING",
        KnownStatus::Stopped => "STOPPED",
    }
}

fn desired_name(d: DesiredStatus) -> &'static str {
    match d {
        DesiredStatus::Running => "RUNNING",
        DesiredStatus::Stopped => "STOPPED",
    }
}

/// One container in the v4 shape.
fn container_json(name: &str, s: &ContainerState, task: &TaskSpec) -> Value {
    let known = if s.running {
        "RUNNING"
    } else if s.started_at.is_some() {
        "STOPPED"
    } else {
        "PENDING"
    };
    let networks: Vec<Value> = s
        .networks
        .iter()
        .map(|(network, ip)| {
            let mode = if network == TASK_NETWORK {
                "awsvpc"
            } else {
                network
            };
            let ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
            json!({"NetworkMode": mode, "IPv4Addresses": [ip]})
        })
        .collect();
    let mut v = json!({
        "DockerId": s.id,
        "Name": name,
        "DockerName": s.docker_name,
        "Image": s.image,
        "ImageID": s.image_id,
        "Labels": s.labels,
        "DesiredStatus": desired_name(task.desired),
        "KnownStatus": known,
        "Limits": {"CPU": s.cpu_shares, "Memory": s.memory / (1024 * 1024)},
        "CreatedAt": s.created_at,
        "Type": "NORMAL",
        "Networks": networks,
    });
    if let Some(started) = &s.started_at {
        v["StartedAt"] = started.clone().into();
    }
    if known == "STOPPED" {
        v["ExitCode"] = s.exit_code.unwrap_or(0).into();
    }
    v
}

/// Epoch milliseconds as RFC 3339.
fn rfc3339(ms: i64) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

/// `GET /v2/credentials/<id>`: the task role's credentials, to the task's own containers.
async fn role_credentials<R: Runtime>(
    State(m): Ctx<R>,
    ConnectInfo(peer): Peer,
    Path(id): Path<String>,
) -> Response {
    let Some(creds) = m.credentials() else {
        return not_found("no credentials are served here");
    };
    let task_id = m
        .tasks
        .lock()
        .unwrap()
        .iter()
        .find(|(_, (t, _))| t.task_role_arn.is_some() && creds.id(&t.arn) == id)
        .map(|(task_id, _)| task_id.clone());
    let Some(task_id) = task_id else {
        return not_found("no such credentials on this instance");
    };
    let task = match lookup(&m, peer, &task_id).await {
        Ok((task, _, _)) => task,
        Err(r) => return r,
    };
    match creds.get(&task.arn, TaskRole::Task).await {
        Ok(c) => json_response(credentials::container_json(&c)),
        Err(e) => {
            tracing::warn!(task = %task.arn, error = %e, "no credentials for the task role");
            (StatusCode::SERVICE_UNAVAILABLE, e).into_response()
        }
    }
}

async fn container<R: Runtime>(
    State(m): Ctx<R>,
    ConnectInfo(peer): Peer,
    Path((task_id, name)): Path<(String, String)>,
) -> Response {
    match lookup(&m, peer, &task_id).await {
        Ok((task, _, containers)) => match containers.iter().find(|(n, _)| *n == name) {
            Some((n, s)) => json_response(container_json(n, s, &task)),
            None => not_found("no such container in this task"),
        },
        Err(r) => r,
    }
}

async fn task<R: Runtime>(
    State(m): Ctx<R>,
    ConnectInfo(peer): Peer,
    Path((task_id, _)): Path<(String, String)>,
) -> Response {
    let (task, known, containers) = match lookup(&m, peer, &task_id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let list: Vec<Value> = containers
        .iter()
        .map(|(n, s)| container_json(n, s, &task))
        .collect();
    let mut v = json!({
        "Cluster": task.cluster_arn,
        "TaskARN": task.arn,
        "Family": task.family,
        "Revision": task.revision.to_string(),
        "DesiredStatus": desired_name(task.desired),
        "KnownStatus": status_name(known),
        "Containers": list,
        "AvailabilityZone": task.availability_zone.clone().unwrap_or_else(|| m.zone.clone()),
        "LaunchType": task.launch_type,
    });
    if let Some(t) = task.pull_started_at.and_then(rfc3339) {
        v["PullStartedAt"] = t.into();
    }
    if let Some(t) = task.pull_stopped_at.and_then(rfc3339) {
        v["PullStoppedAt"] = t.into();
    }
    let limit = |s: &Option<String>| s.as_deref().and_then(|s| s.parse::<f64>().ok());
    if let (Some(cpu), Some(memory)) = (limit(&task.cpu), limit(&task.memory)) {
        v["Limits"] = json!({"CPU": cpu / 1024.0, "Memory": memory});
    }
    json_response(v)
}

async fn container_stats<R: Runtime>(
    State(m): Ctx<R>,
    ConnectInfo(peer): Peer,
    Path((task_id, name)): Path<(String, String)>,
) -> Response {
    match lookup(&m, peer, &task_id).await {
        Ok((_, _, containers)) => match containers.iter().find(|(n, _)| *n == name) {
            Some((_, s)) => json_response(m.runtime.stats(&s.id).await.ok().flatten().into()),
            None => not_found("no such container in this task"),
        },
        Err(r) => r,
    }
}

async fn task_stats<R: Runtime>(
    State(m): Ctx<R>,
    ConnectInfo(peer): Peer,
    Path((task_id, _)): Path<(String, String)>,
) -> Response {
    let (_, _, containers) = match lookup(&m, peer, &task_id).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let mut all = serde_json::Map::new();
    for (_, s) in &containers {
        let stats = m.runtime.stats(&s.id).await.ok().flatten();
        all.insert(s.id.clone(), stats.into());
    }
    json_response(Value::Object(all))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::labels;

    #[test]
    fn metadata_times_are_rfc3339() {
        assert_eq!(
            rfc3339(1_764_547_200_123).as_deref(),
            Some("2025-12-01T00:00:00.123Z")
        );
    }

    #[test]
    fn container_labels_are_shown_as_set() {
        let s = ContainerState {
            id: "abc".into(),
            labels: [(labels::TASK_ARN.to_string(), "arn".to_string())].into(),
            running: true,
            started_at: Some("2026-12-01T00:00:00Z".into()),
            ..Default::default()
        };
        let task: TaskSpec = serde_json::from_value(json!({
            "arn": "a", "clusterArn": "c", "taskDefinitionArn": "t", "family": "f",
            "revision": 1, "desired": "RUNNING", "known": "RUNNING", "networkMode": "bridge",
            "launchType": "EC2", "availabilityZone": null, "cpu": null, "memory": null,
            "pullStartedAt": null, "pullStoppedAt": null, "containers": [], "volumes": []
        }))
        .unwrap();
        let v = container_json("web", &s, &task);
        assert_eq!(v["Labels"][labels::TASK_ARN], "arn");
        assert_eq!(v["KnownStatus"], "RUNNING");
        assert!(v.get("ExitCode").is_none());
    }
}
