//! The Docker Engine as a [`Runtime`], through bollard.
//!
//! Also where the host's address on a Docker network is found ([`host_address`]): the task
//! metadata endpoint must listen there, and engines differ in what they show of it.

use crate::runtime::{
    Container, ContainerState, CreateContainer, LogMessage, LogStream, RegistryAuth, Runtime,
    RuntimeError, labels,
};
use berth_node_api::agent::{HealthStatus, NetworkBinding, Protocol};
use bollard::auth::DockerCredentials;
use bollard::errors::Error as BollardError;
use bollard::models::{
    ContainerCreateBody, ContainerSummaryStateEnum, HealthConfig, HealthStatusEnum, HostConfig,
    HostConfigLogConfig, Network, NetworkInspect, PortBinding, ResourcesUlimits,
};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, InspectContainerOptions, InspectNetworkOptions,
    ListContainersOptions, ListNetworksOptions, LogsOptions, RemoveContainerOptions, StatsOptions,
    StopContainerOptions,
};
use futures_util::StreamExt;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

/// How long one engine call may take: a stop waits up to the container's `stopTimeout`
/// (ECS allows 120 s), so well above that.
const CALL_TIMEOUT_SECS: u64 = 600;

/// A Docker Engine.
#[derive(Clone)]
pub struct Docker(bollard::Docker);

fn engine(e: BollardError) -> RuntimeError {
    match e {
        BollardError::DockerResponseServerError {
            status_code: 404,
            message,
        } => RuntimeError::NotFound(message),
        other => RuntimeError::Engine(other.to_string()),
    }
}

impl Docker {
    /// Connects to `host` (`unix:///path`), else `DOCKER_HOST`, else the local socket, and
    /// agrees on an API version (Debian's engine speaks 1.41).
    pub async fn connect(host: Option<&str>) -> Result<Docker, RuntimeError> {
        let host = host
            .map(str::to_string)
            .or_else(|| std::env::var("DOCKER_HOST").ok())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".into());
        let path = host.strip_prefix("unix://").unwrap_or(&host);
        let docker = bollard::Docker::connect_with_unix(
            path,
            CALL_TIMEOUT_SECS,
            bollard::API_DEFAULT_VERSION,
        )
        .map_err(engine)?
        .negotiate_version()
        .await
        .map_err(engine)?;
        docker.ping().await.map_err(engine)?;
        Ok(Docker(docker))
    }
}

impl Runtime for Docker {
    async fn version(&self) -> Result<String, RuntimeError> {
        Ok(self
            .0
            .version()
            .await
            .map_err(engine)?
            .version
            .unwrap_or_default())
    }

    async fn containers(&self, instance: &str) -> Result<Vec<Container>, RuntimeError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{}={instance}", labels::INSTANCE)],
        )]);
        let list = self
            .0
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(filters),
                ..Default::default()
            }))
            .await
            .map_err(engine)?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let l = c.labels.clone().unwrap_or_default();
                let (task_arn, name) = labels::task_and_container(|k| l.get(k).cloned())?;
                Some(Container {
                    id: c.id?,
                    task_arn,
                    name,
                    running: c.state == Some(ContainerSummaryStateEnum::RUNNING),
                    created: c.state == Some(ContainerSummaryStateEnum::CREATED),
                })
            })
            .collect())
    }

    async fn inspect(&self, id: &str) -> Result<Option<ContainerState>, RuntimeError> {
        let info = match self
            .0
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(i) => i,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(engine(e)),
        };
        let state = info.state.clone().unwrap_or_default();
        let config = info.config.clone().unwrap_or_default();
        let host = info.host_config.clone().unwrap_or_default();
        let settings = info.network_settings.clone().unwrap_or_default();
        let mut ports = Vec::new();
        for (key, list) in settings.ports.clone().unwrap_or_default() {
            let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            for b in list.unwrap_or_default() {
                let bind_ip = b.host_ip.unwrap_or_default();
                if bind_ip.contains(':') {
                    continue; // the IPv6 twin of the IPv4 binding
                }
                let (Ok(container_port), Some(Ok(host_port))) =
                    (port.parse::<u16>(), b.host_port.map(|p| p.parse::<u16>()))
                else {
                    continue;
                };
                ports.push(NetworkBinding {
                    bind_ip: if bind_ip.is_empty() {
                        "0.0.0.0".into()
                    } else {
                        bind_ip
                    },
                    container_port,
                    host_port,
                    protocol: if proto == "udp" {
                        Protocol::Udp
                    } else {
                        Protocol::Tcp
                    },
                });
            }
        }
        Ok(Some(ContainerState {
            id: info.id.clone().unwrap_or_default(),
            docker_name: info
                .name
                .as_deref()
                .unwrap_or_default()
                .trim_start_matches('/')
                .to_string(),
            image: config.image.clone().unwrap_or_default(),
            image_id: info.image.clone().unwrap_or_default(),
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            running: state.running.unwrap_or(false),
            started_at: state.started_at.filter(|s| !s.starts_with("0001-")),
            created_at: info.created.map(|c| c.to_string()),
            exit_code: state.exit_code,
            oom_killed: state.oom_killed == Some(true),
            health: state.health.and_then(|h| h.status).and_then(|s| match s {
                HealthStatusEnum::HEALTHY => Some(HealthStatus::Healthy),
                HealthStatusEnum::UNHEALTHY => Some(HealthStatus::Unhealthy),
                HealthStatusEnum::STARTING => Some(HealthStatus::Unknown),
                HealthStatusEnum::NONE | HealthStatusEnum::EMPTY => None,
            }),
            network_mode: host.network_mode.unwrap_or_default(),
            networks: settings
                .networks
                .unwrap_or_default()
                .into_iter()
                .map(|(name, e)| {
                    let ip = e.ip_address.and_then(|ip| ip.parse().ok());
                    (name, ip)
                })
                .collect(),
            ports,
            cpu_shares: host.cpu_shares.unwrap_or(0),
            memory: host.memory.unwrap_or(0),
        }))
    }

    async fn has_image(&self, image: &str) -> Result<bool, RuntimeError> {
        match self.0.inspect_image(image).await {
            Ok(_) => Ok(true),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(engine(e)),
        }
    }

    async fn pull(&self, image: &str, auth: Option<RegistryAuth>) -> Result<(), RuntimeError> {
        let credentials = auth.map(|a| DockerCredentials {
            username: Some(a.username),
            password: Some(a.password),
            serveraddress: Some(a.server),
            ..Default::default()
        });
        let mut stream = self.0.create_image(
            Some(CreateImageOptions {
                from_image: Some(image.to_string()),
                ..Default::default()
            }),
            None,
            credentials,
        );
        while let Some(item) = stream.next().await {
            item.map_err(|e| RuntimeError::Engine(e.to_string()))?;
        }
        Ok(())
    }

    async fn create(&self, c: CreateContainer) -> Result<String, RuntimeError> {
        let mut exposed = Vec::new();
        let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for pm in &c.ports {
            let key = format!("{}/{}", pm.container_port, pm.protocol.as_str());
            exposed.push(key.clone());
            let host_port = match pm.host_port {
                0 => String::new(),
                p => p.to_string(),
            };
            bindings.insert(
                key,
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some(host_port),
                }]),
            );
        }
        let seconds = |s: u32| s as i64 * 1_000_000_000;
        let body = ContainerCreateBody {
            image: Some(c.image),
            cmd: c.command,
            entrypoint: c.entry_point,
            env: Some(c.environment),
            working_dir: c.working_directory,
            user: c.user,
            labels: Some(c.labels.into_iter().collect()),
            exposed_ports: Some(exposed),
            stop_timeout: c.stop_timeout.map(i64::from),
            healthcheck: c.health_check.map(|h| HealthConfig {
                test: Some(h.command),
                interval: Some(seconds(h.interval)),
                timeout: Some(seconds(h.timeout)),
                retries: Some(h.retries as i64),
                start_period: Some(seconds(h.start_period)),
                ..Default::default()
            }),
            host_config: Some(HostConfig {
                memory: c.memory,
                memory_reservation: c.memory_reservation,
                cpu_shares: Some(c.cpu_shares),
                port_bindings: Some(bindings),
                network_mode: Some(c.network_mode),
                privileged: Some(c.privileged),
                binds: Some(c.binds),
                ulimits: Some(
                    c.ulimits
                        .into_iter()
                        .map(|u| ResourcesUlimits {
                            name: Some(u.name),
                            soft: Some(u.soft_limit),
                            hard: Some(u.hard_limit),
                        })
                        .collect(),
                ),
                readonly_rootfs: Some(c.readonly_root_filesystem),
                log_config: c.log.map(|(driver, options)| HostConfigLogConfig {
                    typ: Some(driver),
                    config: Some(options.into_iter().collect()),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let created = self
            .0
            .create_container(
                Some(CreateContainerOptions {
                    name: Some(c.name),
                    ..Default::default()
                }),
                body,
            )
            .await
            .map_err(engine)?;
        Ok(created.id)
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        match self.0.start_container(id, None).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 304, ..
            }) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let options = StopContainerOptions {
            t: Some(timeout.as_secs().min(i32::MAX as u64) as i32),
            ..Default::default()
        };
        match self.0.stop_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 304 | 404,
                ..
            }) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let options = RemoveContainerOptions {
            force: true,
            ..Default::default()
        };
        match self.0.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(e) => Err(engine(e)),
        }
    }

    async fn ensure_network(&self, name: &str) -> Result<String, RuntimeError> {
        if let Some(id) = self.network_id(name).await? {
            return Ok(id);
        }
        let created = self
            .0
            .create_network(bollard::models::NetworkCreateRequest {
                name: name.into(),
                driver: Some("bridge".into()),
                labels: Some(HashMap::from([(
                    "com.berth.network".to_string(),
                    "awsvpc".to_string(),
                )])),
                ..Default::default()
            })
            .await;
        match created {
            // Another agent on the same engine created it first.
            Ok(_)
            | Err(BollardError::DockerResponseServerError {
                status_code: 409, ..
            }) => {}
            Err(e) => return Err(engine(e)),
        }
        // Listed again: agents that raced each other see the same networks and choose the same.
        self.network_id(name).await?.ok_or_else(|| {
            RuntimeError::Engine(format!(
                "network {name} vanished right after it was created"
            ))
        })
    }

    async fn host_address(&self, network: &str) -> Result<Option<Ipv4Addr>, RuntimeError> {
        let n = match self
            .0
            .inspect_network(network, None::<InspectNetworkOptions>)
            .await
        {
            Ok(n) => n,
            Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            }) => return Ok(None),
            Err(e) => return Err(engine(e)),
        };
        Ok(host_address(&n, interface_address))
    }

    async fn stats(&self, id: &str) -> Result<Option<serde_json::Value>, RuntimeError> {
        let options = StatsOptions {
            stream: false,
            one_shot: false,
        };
        match self.0.stats(id, Some(options)).next().await {
            Some(Ok(s)) => Ok(serde_json::to_value(s).ok()),
            Some(Err(BollardError::DockerResponseServerError {
                status_code: 404, ..
            })) => Ok(None),
            Some(Err(e)) => Err(engine(e)),
            None => Ok(None),
        }
    }

    fn logs(&self, id: &str, since: i64, follow: bool) -> LogStream {
        let options = LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            since: i32::try_from(since).unwrap_or(i32::MAX),
            timestamps: true,
            ..Default::default()
        };
        let frames = self.0.logs(id, Some(options));
        // A TTY container's output comes as one console stream cut anywhere: lines are found
        // again at their `\n`; other containers' come a message per frame.
        let mut console = Vec::new();
        let stream = frames.flat_map(move |frame| {
            let out: Vec<Result<LogMessage, RuntimeError>> = match frame {
                Err(e) => vec![Err(engine(e))],
                Ok(bollard::container::LogOutput::Console { message }) => {
                    console.extend_from_slice(&message);
                    let mut out = Vec::new();
                    while let Some(end) = console.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = console.drain(..=end).collect();
                        out.extend(log_message(&line, false).map(Ok));
                    }
                    out
                }
                Ok(bollard::container::LogOutput::StdErr { message }) => {
                    log_message(&message, true).map(Ok).into_iter().collect()
                }
                Ok(o) => log_message(o.as_ref(), false).map(Ok).into_iter().collect(),
            };
            futures_util::stream::iter(out)
        });
        Box::pin(stream)
    }
}

/// A message as the engine returns it with timestamps on (`<RFC 3339 nanos> <text>`).
fn log_message(frame: &[u8], stderr: bool) -> Option<LogMessage> {
    let space = frame.iter().position(|b| *b == b' ')?;
    let stamp = std::str::from_utf8(&frame[..space]).ok()?;
    let time =
        time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).ok()?;
    Some(LogMessage {
        time_ns: i64::try_from(time.unix_timestamp_nanos()).ok()?,
        stderr,
        text: frame[space + 1..].to_vec(),
    })
}

impl Docker {
    /// The network named exactly `name` (the engine's name filter also matches parts of
    /// names). Engines before API 1.44 let concurrent creates make several networks of one
    /// name, and then refuse to use any of them by name: the oldest is chosen, by id, and the
    /// others are removed when no container uses them.
    async fn network_id(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        let options = ListNetworksOptions {
            filters: Some(HashMap::from([(
                "name".to_string(),
                vec![name.to_string()],
            )])),
        };
        let listed = self.0.list_networks(Some(options)).await.map_err(engine)?;
        let Some(chosen) = oldest_named(&listed, name) else {
            return Ok(None);
        };
        for n in listed.iter().filter(|n| n.name.as_deref() == Some(name)) {
            let Some(id) = n.id.as_deref().filter(|id| *id != chosen) else {
                continue;
            };
            match self.0.remove_network(id).await {
                Ok(()) => tracing::info!(network = name, id, "removed a duplicate network"),
                Err(e) => tracing::debug!(network = name, id, error = %e, "duplicate network kept"),
            }
        }
        Ok(Some(chosen.to_string()))
    }
}

/// The id of the oldest of `networks` named exactly `name` (ties: the smallest id).
pub fn oldest_named<'a>(networks: &'a [Network], name: &str) -> Option<&'a str> {
    networks
        .iter()
        .filter(|n| n.name.as_deref() == Some(name))
        .filter_map(|n| Some((n.created.as_deref().unwrap_or_default(), n.id.as_deref()?)))
        .min()
        .map(|(_, id)| id)
}

/// The bridge option naming a network's host interface.
const BRIDGE_NAME: &str = "com.docker.network.bridge.name";

/// The host's address on a Docker network, found the most reliable way the network allows:
/// 1. the IPAM gateway, when the engine lists one;
/// 2. the address of the network's bridge interface on the host (`interface`): the one the
///    `com.docker.network.bridge.name` option names (`docker0` for the default bridge), or the
///    `br-<id>` interface the engine makes for a user-defined bridge;
/// 3. the first host address of its IPv4 subnet (where engines put the gateway by default).
///
/// Debian's Docker 20.10 on a fresh machine lists the default bridge's IPAM config as only
/// `{"Subnet": "172.17.0.0/16"}`, with no gateway, hence the fallbacks.
pub fn host_address(
    n: &NetworkInspect,
    interface: impl Fn(&str) -> Option<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    let configs = n
        .ipam
        .as_ref()
        .and_then(|i| i.config.as_deref())
        .unwrap_or_default();
    if let Some(gateway) = configs
        .iter()
        .filter_map(|c| c.gateway.as_deref()?.parse::<Ipv4Addr>().ok())
        .next()
    {
        return Some(gateway);
    }
    let bridge = n
        .options
        .as_ref()
        .and_then(|o| o.get(BRIDGE_NAME))
        .cloned()
        .or_else(|| {
            let id = n.id.as_deref()?;
            (n.driver.as_deref() == Some("bridge") && id.len() >= 12)
                .then(|| format!("br-{}", &id[..12]))
        });
    if let Some(address) = bridge.as_deref().and_then(&interface) {
        return Some(address);
    }
    configs
        .iter()
        .filter_map(|c| first_host(c.subnet.as_deref()?))
        .next()
}

/// The first host address of an IPv4 subnet (`172.17.0.0/16` → `172.17.0.1`).
fn first_host(subnet: &str) -> Option<Ipv4Addr> {
    let (base, bits) = subnet.split_once('/')?;
    let base: Ipv4Addr = base.parse().ok()?;
    let bits: u32 = bits.parse().ok()?;
    if bits > 30 {
        return None;
    }
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    Some(Ipv4Addr::from((u32::from(base) & mask) + 1))
}

/// The IPv4 address of host interface `name`, if it has one.
fn interface_address(name: &str) -> Option<Ipv4Addr> {
    let mut found = None;
    // SAFETY: getifaddrs fills a list we only read and free with freeifaddrs; every pointer is
    // checked for null before use.
    unsafe {
        let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
        if libc::getifaddrs(&mut list) != 0 {
            return None;
        }
        let mut cur = list;
        while !cur.is_null() {
            let ifa = &*cur;
            if !ifa.ifa_addr.is_null()
                && (*ifa.ifa_addr).sa_family as i32 == libc::AF_INET
                && !ifa.ifa_name.is_null()
                && std::ffi::CStr::from_ptr(ifa.ifa_name).to_bytes() == name.as_bytes()
            {
                let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                found = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
                break;
            }
            cur = ifa.ifa_next;
        }
        libc::freeifaddrs(list);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_networks_resolve_to_the_oldest_of_the_exact_name() {
        let listed: Vec<Network> = serde_json::from_str(
            r#"[{"Name": "berth-awsvpc", "Id": "bbb", "Created": "2026-12-02T06:07:02.1Z"},
                {"Name": "berth-awsvpc-old", "Id": "000", "Created": "2020-01-01T00:00:00Z"},
                {"Name": "berth-awsvpc", "Id": "ccc", "Created": "2026-12-02T06:07:01.9Z"},
                {"Name": "berth-awsvpc", "Id": "aaa", "Created": "2026-12-02T06:07:01.9Z"}]"#,
        )
        .unwrap();
        assert_eq!(oldest_named(&listed, "berth-awsvpc"), Some("aaa"));
        assert_eq!(oldest_named(&listed[..1], "berth-awsvpc"), Some("bbb"));
        assert_eq!(oldest_named(&listed[1..2], "berth-awsvpc"), None);
    }

    fn network(doc: &str) -> NetworkInspect {
        serde_json::from_str(doc).unwrap()
    }

    const BRIDGE_WITHOUT_GATEWAY: &str = r#"{
        "Name": "bridge", "Id": "6b1c5bfe7e6d9d0f5a3b0c7f1e2d3c4b5a69788776655443322110ffeeddccbb",
        "Scope": "local", "Driver": "bridge",
        "IPAM": {"Driver": "default", "Options": null, "Config": [{"Subnet": "172.17.0.0/16"}]},
        "Options": {"com.docker.network.bridge.default_bridge": "true",
                    "com.docker.network.bridge.name": "docker0"}
    }"#;

    #[test]
    fn host_address_is_the_ipam_gateway_when_listed() {
        let n = network(
            r#"{"Name": "bridge", "Driver": "bridge",
                "IPAM": {"Config": [{"Subnet": "fd00::/64", "Gateway": "fd00::1"},
                                    {"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}]},
                "Options": {"com.docker.network.bridge.name": "docker0"}}"#,
        );
        let never = |_: &str| -> Option<Ipv4Addr> { panic!("no interface lookup needed") };
        assert_eq!(host_address(&n, never), Some(Ipv4Addr::new(172, 18, 0, 1)));
    }

    #[test]
    fn host_address_falls_back_to_the_bridge_interface() {
        // Docker 20.10's default bridge: no gateway, but docker0 carries the address.
        let n = network(BRIDGE_WITHOUT_GATEWAY);
        let docker0 = |name: &str| (name == "docker0").then(|| Ipv4Addr::new(172, 17, 0, 1));
        assert_eq!(
            host_address(&n, docker0),
            Some(Ipv4Addr::new(172, 17, 0, 1))
        );
        // A user-defined bridge without the option: its interface is br-<first 12 of the id>.
        let n = network(
            r#"{"Name": "berth-awsvpc", "Id": "0123456789abcdef0123", "Driver": "bridge",
                "IPAM": {"Config": [{"Subnet": "172.20.0.0/16"}]}}"#,
        );
        let br = |name: &str| (name == "br-0123456789ab").then(|| Ipv4Addr::new(172, 20, 0, 1));
        assert_eq!(host_address(&n, br), Some(Ipv4Addr::new(172, 20, 0, 1)));
    }

    #[test]
    fn host_address_falls_back_to_the_first_subnet_address() {
        let n = network(BRIDGE_WITHOUT_GATEWAY);
        assert_eq!(
            host_address(&n, |_| None),
            Some(Ipv4Addr::new(172, 17, 0, 1))
        );
        let n = network(r#"{"Name": "x", "IPAM": {"Config": [{"Subnet": "10.1.2.64/26"}]}}"#);
        assert_eq!(
            host_address(&n, |_| None),
            Some(Ipv4Addr::new(10, 1, 2, 65))
        );
    }

    #[test]
    fn host_address_is_none_without_anything_to_go_by() {
        for doc in [
            r#"{"Name": "none", "Driver": "null", "IPAM": {"Config": []}}"#,
            r#"{"Name": "v6", "IPAM": {"Config": [{"Subnet": "fd00::/64"}]}}"#,
            r#"{"Name": "tiny", "IPAM": {"Config": [{"Subnet": "10.0.0.0/31"}]}}"#,
            r#"{"Name": "bare"}"#,
        ] {
            assert_eq!(host_address(&network(doc), |_| None), None, "{doc}");
        }
    }

    #[test]
    fn interface_lookup_finds_loopback() {
        assert_eq!(interface_address("lo"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(interface_address("no-such-interface0"), None);
    }
}
