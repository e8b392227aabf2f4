//! Server configuration: command-line flags (each also a `BERTH_*` environment variable) over a
//! TOML file (`--config`) over the defaults. `berth.example.toml` documents every key; a unit
//! test parses it. Unknown keys in the file are rejected.

use clap::Args;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4566";
pub const DEFAULT_DATA_DIR: &str = "./berth-data";
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
pub const DEFAULT_REGION: &str = "us-east-1";

/// Flags shared by `up`, `server` and `credentials`.
#[derive(Debug, Clone, Default, Args)]
pub struct ServerArgs {
    /// TOML file with any of the settings below (flags and environment win over it).
    #[arg(long, env = "BERTH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address of the API and registry listener [default: 127.0.0.1:4566].
    #[arg(long, env = "BERTH_LISTEN", value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// Where state lives: database, blobs, root credentials [default: ./berth-data].
    #[arg(long, env = "BERTH_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Keep metadata in this PostgreSQL database (`postgres://USER[:PASSWORD]@HOST:PORT/DB`)
    /// instead of the data directory's embedded one [default: embedded].
    #[arg(long, env = "BERTH_DATABASE", value_name = "URL")]
    pub database: Option<String>,
    /// Keep large blobs (image layers) in this S3 bucket (`s3://BUCKET[/PREFIX]`), reached
    /// with the usual AWS settings (AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN) instead of the data
    /// directory [default: the data directory].
    #[arg(long, env = "BERTH_BLOBS", value_name = "URL")]
    pub blobs: Option<String>,
    /// The 12-digit account id in every ARN [default: 000000000000].
    #[arg(long, env = "BERTH_ACCOUNT_ID", value_name = "ID")]
    pub account_id: Option<String>,
    /// The region this endpoint serves [default: us-east-1].
    #[arg(long, env = "BERTH_REGION")]
    pub region: Option<String>,
    /// host[:port] used in the URIs Berth hands out [default: the listen address].
    #[arg(long, env = "BERTH_PUBLIC_HOST", value_name = "HOST[:PORT]")]
    pub public_host: Option<String>,
    /// PEM certificate chain: serve HTTPS.
    #[arg(
        long,
        env = "BERTH_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(
        long,
        env = "BERTH_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,
    /// Allow plain HTTP on a non-loopback address (credentials then cross the network in the
    /// clear apart from their signatures; a warning is logged).
    #[arg(long, env = "BERTH_INSECURE_HTTP")]
    pub insecure_http: bool,
    /// Keep state in a temporary directory, removed on exit, and enable `POST /_berth/reset`.
    #[arg(long, env = "BERTH_EPHEMERAL")]
    pub ephemeral: bool,
    /// `berth up` only: do not run the local agent even when a Docker Engine is reachable.
    #[arg(long, env = "BERTH_NO_AGENT")]
    pub no_agent: bool,
    /// `berth up` only: do not run the load balancer in-process (a `berth lb` serves the
    /// listeners instead).
    #[arg(long, env = "BERTH_NO_LB")]
    pub no_lb: bool,
    /// Seconds without a heartbeat after which an instance's agent counts as disconnected
    /// (`agentConnected=false`, no new placements) [default: 30].
    #[arg(long, env = "BERTH_AGENT_TIMEOUT", value_name = "SECONDS")]
    pub agent_timeout: Option<u64>,
    /// Seconds without a heartbeat after which an instance's tasks are stopped [default: 300].
    #[arg(long, env = "BERTH_AGENT_LOST_TIMEOUT", value_name = "SECONDS")]
    pub agent_lost_timeout: Option<u64>,
    /// `berth up` only: the address load balancer listeners bind [default: 127.0.0.1].
    #[arg(long, env = "BERTH_LB_BIND", value_name = "IP")]
    pub lb_bind: Option<std::net::IpAddr>,
    /// Milliseconds between service scheduler passes [default: 1000].
    #[arg(long, env = "BERTH_SCHEDULER_INTERVAL_MS", value_name = "MILLISECONDS")]
    pub scheduler_interval_ms: Option<u64>,
    /// Milliseconds the controllers' leader lease lasts unrenewed: when the leading server
    /// dies, another of those sharing the database leads within about this [default: 10000].
    #[arg(long, env = "BERTH_LEADER_LEASE_MS", value_name = "MILLISECONDS")]
    pub leader_lease_ms: Option<u64>,
    /// Seconds a RUNNING service task without a container health check must run before it
    /// counts as healthy [default: 40, as AWS].
    #[arg(long, env = "BERTH_TASK_HEALTHY_AFTER", value_name = "SECONDS")]
    pub task_healthy_after: Option<u64>,
    /// Seconds a STOPPED task stays describable before it is forgotten [default: 3600, as AWS].
    #[arg(long, env = "BERTH_STOPPED_TASK_RETENTION", value_name = "SECONDS")]
    pub stopped_task_retention: Option<u64>,
    /// Seconds between registry garbage-collection passes [default: 600].
    #[arg(long, env = "BERTH_GC_INTERVAL", value_name = "SECONDS")]
    pub gc_interval: Option<u64>,
    /// Unreferenced registry content younger than this many seconds is kept [default: 3600].
    #[arg(long, env = "BERTH_GC_GRACE", value_name = "SECONDS")]
    pub gc_grace: Option<u64>,
    /// What IAM does with a request no policy allows: `enforce` refuses it (AccessDenied),
    /// `audit` logs the would-be denial and lets it through [default: enforce].
    #[arg(long, env = "BERTH_IAM", value_name = "MODE", value_parser = ["enforce", "audit"])]
    pub iam: Option<String>,
    /// A test setting: CloudWatch's and Application Auto Scaling's clock runs this many times
    /// faster than real time from the start (a 60 s alarm period lasts 60/N real seconds,
    /// a 300 s cooldown 300/N); every rule stays AWS's [default: 1, real time].
    #[arg(long, env = "BERTH_TIME_SCALE", value_name = "FACTOR")]
    pub time_scale: Option<f64>,
}

/// The TOML file: the same settings, kebab-case keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database: Option<String>,
    pub blobs: Option<String>,
    pub account_id: Option<String>,
    pub region: Option<String>,
    pub public_host: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub insecure_http: Option<bool>,
    pub ephemeral: Option<bool>,
    pub gc_interval: Option<u64>,
    pub gc_grace: Option<u64>,
    pub agent_timeout: Option<u64>,
    pub agent_lost_timeout: Option<u64>,
    pub scheduler_interval_ms: Option<u64>,
    pub leader_lease_ms: Option<u64>,
    pub task_healthy_after: Option<u64>,
    pub stopped_task_retention: Option<u64>,
    pub lb_bind: Option<std::net::IpAddr>,
    pub iam: Option<String>,
    pub time_scale: Option<f64>,
    /// `[[replication.remote]]`: other Berth deployments ECR replication may copy to.
    pub replication: Option<ReplicationFile>,
    /// `[[pull-through-cache.secret]]`: credentials of pull-through cache upstreams.
    pub pull_through_cache: Option<PullThroughFile>,
}

/// The `[replication]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ReplicationFile {
    #[serde(default)]
    pub remote: Vec<RemoteFile>,
}

/// One `[[replication.remote]]`: another Berth deployment, the registry id destinations name
/// it by, the regions it serves (all when absent), and an access key of it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RemoteFile {
    pub registry_id: String,
    #[serde(default)]
    pub regions: Vec<String>,
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: Option<String>,
    pub secret_access_key_file: Option<PathBuf>,
}

/// The `[pull-through-cache]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct PullThroughFile {
    #[serde(default)]
    pub secret: Vec<SecretFile>,
}

/// One `[[pull-through-cache.secret]]`: what a rule's `credentialArn` names (by the secret
/// name in it, `ecr-pullthroughcache/<name>`), with the upstream's user name and password.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SecretFile {
    pub name: String,
    pub username: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
}

/// A secret given inline or in a file (whose content, trimmed, is the secret); exactly one.
fn secret(
    inline: Option<String>,
    file: Option<PathBuf>,
    what: &str,
) -> Result<String, ConfigError> {
    match (inline, file) {
        (Some(s), None) => Ok(s),
        (None, Some(p)) => std::fs::read_to_string(&p)
            .map(|s| s.trim().to_string())
            .map_err(|source| ConfigError::Read { path: p, source }),
        _ => Err(ConfigError::Invalid(format!(
            "{what}: give the secret or a file holding it, not both or neither"
        ))),
    }
}

/// The ECR settings of the file.
fn ecr_settings(
    replication: Option<ReplicationFile>,
    pull_through: Option<PullThroughFile>,
) -> Result<berth_api::EcrSettings, ConfigError> {
    let mut out = berth_api::EcrSettings::default();
    for r in replication.unwrap_or_default().remote {
        if berth_types::AccountId::parse(&r.registry_id).is_err() {
            return Err(ConfigError::Invalid(format!(
                "replication.remote: registry-id must be 12 digits (got '{}')",
                r.registry_id
            )));
        }
        let what = format!("replication.remote {}", r.endpoint);
        out.replication_remotes.push(berth_api::ReplicationRemote {
            secret_access_key: secret(r.secret_access_key, r.secret_access_key_file, &what)?,
            registry_id: r.registry_id,
            regions: r.regions,
            endpoint: r.endpoint,
            access_key_id: r.access_key_id,
        });
    }
    for s in pull_through.unwrap_or_default().secret {
        let what = format!("pull-through-cache.secret {}", s.name);
        out.upstream_secrets.push(berth_api::UpstreamSecret {
            password: secret(s.password, s.password_file, &what)?,
            name: s.name,
            username: s.username,
        });
    }
    Ok(out)
}

/// The resolved settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// A PostgreSQL URL: metadata lives there instead of the data directory's database.
    pub database: Option<String>,
    /// An `s3://bucket/prefix` URL: large blobs live there instead of the data directory.
    pub blobs: Option<String>,
    pub account_id: berth_types::AccountId,
    pub region: berth_types::Region,
    pub public_host: Option<String>,
    pub tls: Option<(PathBuf, PathBuf)>,
    pub insecure_http: bool,
    pub ephemeral: bool,
    pub gc_interval: std::time::Duration,
    pub gc_grace: std::time::Duration,
    /// Run a node agent in-process against the local Docker Engine (`berth up`).
    pub local_agent: bool,
    /// Run the load balancer's data plane in-process (`berth up`).
    pub load_balancer: bool,
    /// The address load balancer listeners bind.
    pub lb_bind: std::net::IpAddr,
    pub agent_timeout: std::time::Duration,
    pub agent_lost_timeout: std::time::Duration,
    pub scheduler_interval: std::time::Duration,
    pub leader_lease: std::time::Duration,
    pub task_healthy_after: std::time::Duration,
    pub stopped_task_retention: std::time::Duration,
    pub iam_mode: berth_api::IamMode,
    /// CloudWatch's clock speed (1: real time).
    pub time_scale: f64,
    /// ECR replication remotes and pull-through cache secrets (file only).
    pub ecr: berth_api::EcrSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

pub fn load_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

impl ServerArgs {
    pub fn resolve(&self) -> Result<ServerConfig, ConfigError> {
        let file = match &self.config {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        let listen = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default"));
        let account = self
            .account_id
            .clone()
            .or(file.account_id)
            .unwrap_or_else(|| DEFAULT_ACCOUNT_ID.into());
        let region = self
            .region
            .clone()
            .or(file.region)
            .unwrap_or_else(|| DEFAULT_REGION.into());
        let tls = match (
            self.tls_cert.clone().or(file.tls_cert),
            self.tls_key.clone().or(file.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => {
                return Err(ConfigError::Invalid(
                    "tls-cert and tls-key go together: give both or neither".into(),
                ));
            }
        };
        let database = self.database.clone().or(file.database);
        if let Some(url) = &database
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Invalid(format!(
                "database must be a postgres:// URL (got '{url}'); without it the embedded database in the data directory is used"
            )));
        }
        let blobs = self.blobs.clone().or(file.blobs);
        if let Some(url) = &blobs
            && !url.starts_with("s3://")
        {
            return Err(ConfigError::Invalid(format!(
                "blobs must be an s3:// URL (got '{url}'); without it blobs live in the data directory"
            )));
        }
        let iam_mode = match self.iam.as_deref().or(file.iam.as_deref()) {
            None | Some("enforce") => berth_api::IamMode::Enforce,
            Some("audit") => berth_api::IamMode::Audit,
            Some(other) => {
                return Err(ConfigError::Invalid(format!(
                    "iam must be 'enforce' or 'audit' (got '{other}')"
                )));
            }
        };
        let time_scale = self.time_scale.or(file.time_scale).unwrap_or(1.0);
        if !(time_scale.is_finite() && time_scale >= 1.0) {
            return Err(ConfigError::Invalid(format!(
                "time-scale must be a number of at least 1 (got {time_scale})"
            )));
        }
        let ecr = ecr_settings(file.replication, file.pull_through_cache)?;
        Ok(ServerConfig {
            ecr,
            iam_mode,
            time_scale,
            listen,
            database,
            blobs,
            data_dir: self
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            account_id: berth_types::AccountId::parse(&account).map_err(ConfigError::Invalid)?,
            region: berth_types::Region::parse(&region).map_err(ConfigError::Invalid)?,
            public_host: self.public_host.clone().or(file.public_host),
            tls,
            insecure_http: self.insecure_http || file.insecure_http.unwrap_or(false),
            ephemeral: self.ephemeral || file.ephemeral.unwrap_or(false),
            gc_interval: std::time::Duration::from_secs(
                self.gc_interval.or(file.gc_interval).unwrap_or(600).max(1),
            ),
            gc_grace: std::time::Duration::from_secs(
                self.gc_grace.or(file.gc_grace).unwrap_or(3600),
            ),
            local_agent: false,
            load_balancer: false,
            lb_bind: self
                .lb_bind
                .or(file.lb_bind)
                .unwrap_or(std::net::IpAddr::from([127, 0, 0, 1])),
            agent_timeout: std::time::Duration::from_secs(
                self.agent_timeout
                    .or(file.agent_timeout)
                    .unwrap_or(30)
                    .max(1),
            ),
            agent_lost_timeout: std::time::Duration::from_secs(
                self.agent_lost_timeout
                    .or(file.agent_lost_timeout)
                    .unwrap_or(300)
                    .max(1),
            ),
            scheduler_interval: std::time::Duration::from_millis(
                self.scheduler_interval_ms
                    .or(file.scheduler_interval_ms)
                    .unwrap_or(1000)
                    .max(10),
            ),
            leader_lease: std::time::Duration::from_millis(
                self.leader_lease_ms
                    .or(file.leader_lease_ms)
                    .unwrap_or(10_000)
                    .max(300),
            ),
            task_healthy_after: std::time::Duration::from_secs(
                self.task_healthy_after
                    .or(file.task_healthy_after)
                    .unwrap_or(40),
            ),
            stopped_task_retention: std::time::Duration::from_secs(
                self.stopped_task_retention
                    .or(file.stopped_task_retention)
                    .unwrap_or(3600),
            ),
        })
    }
}

impl ServerConfig {
    /// The URL clients use: scheme from TLS, host from `public_host` or the listen address.
    pub fn endpoint_url(&self, bound: SocketAddr) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        match &self.public_host {
            Some(h) => format!("{scheme}://{h}"),
            None => format!("{scheme}://{bound}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_example_file_parses_and_unknown_keys_fail() {
        let example = include_str!("../../../berth.example.toml");
        let file: FileConfig = toml::from_str(example).expect("example parses");
        assert_eq!(file.listen, Some(DEFAULT_LISTEN.parse().unwrap()));
        assert!(toml::from_str::<FileConfig>("listen = \"127.0.0.1:1\"\nlisten-port = 3").is_err());
    }

    #[test]
    fn config_replication_remotes_and_pull_through_secrets_parse() {
        // The commented tables of the example file, uncommented.
        let example = include_str!("../../../berth.example.toml");
        let tables: String = example
            .lines()
            .skip_while(|l| !l.starts_with("# [[replication.remote]]"))
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with('[') || l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let file: FileConfig = toml::from_str(&tables).expect("tables parse");
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("s");
        std::fs::write(&secret, "s3cret\n").unwrap();
        let mut replication = file.replication.unwrap();
        replication.remote[0].secret_access_key_file = Some(secret.clone());
        let mut pull_through = file.pull_through_cache.unwrap();
        pull_through.secret[0].password_file = Some(secret);
        let ecr = ecr_settings(Some(replication), Some(pull_through)).unwrap();
        assert_eq!(ecr.replication_remotes[0].registry_id, "111122223333");
        assert_eq!(ecr.replication_remotes[0].regions, ["us-east-1"]);
        assert_eq!(ecr.replication_remotes[0].secret_access_key, "s3cret");
        assert_eq!(
            ecr.upstream_secrets[0].name,
            "ecr-pullthroughcache/docker-hub"
        );
        assert_eq!(ecr.upstream_secrets[0].password, "s3cret");
        let both = "[[pull-through-cache.secret]]\nname = \"x\"\nusername = \"u\"\npassword = \"p\"\npassword-file = \"/f\"\n";
        let file: FileConfig = toml::from_str(both).unwrap();
        assert!(ecr_settings(None, file.pull_through_cache).is_err());
        let unknown = "[[replication.remote]]\nregistry-id = \"111122223333\"\nendpoint = \"e\"\naccess-key-id = \"k\"\nsecret = \"s\"\n";
        assert!(toml::from_str::<FileConfig>(unknown).is_err());
    }

    #[test]
    fn config_flags_win_over_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        std::fs::write(
            &path,
            "region = \"eu-west-1\"\naccount-id = \"123456789012\"\n",
        )
        .unwrap();
        let args = ServerArgs {
            config: Some(path),
            region: Some("eu-central-1".into()),
            ..Default::default()
        };
        let c = args.resolve().unwrap();
        assert_eq!(c.region.as_str(), "eu-central-1");
        assert_eq!(c.account_id.as_str(), "123456789012");
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        let bad = ServerArgs {
            account_id: Some("12".into()),
            ..Default::default()
        };
        assert!(bad.resolve().is_err());
    }
}
