//! The commands.

use crate::config::ServerArgs;
use crate::data_dir::{read_credentials, recorded_endpoint};
use crate::serve;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Berth: a self-hosted, AWS-compatible container platform (ECS + ECR APIs, a registry, a
/// load balancer) that you drive with the aws CLI, the AWS SDKs and docker.
#[derive(Debug, Parser)]
#[command(name = "berth", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything in one process: the AWS API endpoint, the registry and the node pieces.
    /// Example: `berth up`, then `berth credentials --aws-profile berth` and
    /// `aws --profile berth ecs list-clusters`.
    Up(ServerArgs),
    /// Run the control-plane server only (API endpoint and registry), for multi-node setups.
    Server(ServerArgs),
    /// Print the root credentials of a data directory; with --aws-profile, write them as an AWS
    /// CLI profile (credentials, region and endpoint_url). With --user NAME [--policy ARN]…,
    /// those of a new key of that IAM user instead (created on the running server).
    Credentials(CredentialsArgs),
    /// Run the node agent: register this host's Docker Engine as a container instance of a
    /// cluster and run the tasks placed on it. Credentials come from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY (as for any AWS client).
    Agent(AgentArgs),
    /// Show what a running server's background tasks (the service scheduler, instance
    /// liveness, the registry's garbage collector, …) last did. Reads the data directory's root
    /// credentials and the address the server recorded there.
    Status(StatusArgs),
    /// Show each service's desired and running tasks, CPU and memory utilization and request
    /// rate, live, from the CloudWatch metrics autoscaling reads (signed as the data
    /// directory's root).
    Top(TopArgs),
    /// Print what a service's tasks (or one task) printed, from CloudWatch Logs — the streams
    /// of their `awslogs` containers — like `aws logs tail`; with --follow, keep printing
    /// (signed as the data directory's root).
    Logs(LogsArgs),
    /// Run a load balancer node: serve the ELBv2 listeners of a Berth server on this host
    /// (`berth up` runs one in-process). Credentials come from AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY.
    Lb(LbArgs),
    /// Back an embedded data directory up into a new directory, while its server runs: one
    /// consistent snapshot of the database, then every blob and the root credentials.
    Backup(BackupArgs),
    /// Restore a backup into a new data directory (no server may run on it).
    Restore(RestoreArgs),
    /// Move an embedded data directory's records into an empty PostgreSQL database (stop its
    /// server first); then run the server with --database on the same data directory.
    MigrateStore(MigrateStoreArgs),
}

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The directory to write the backup to (new or empty).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The backup to restore (a directory `berth backup` wrote).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct MigrateStoreArgs {
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Debug, clap::Args)]
pub struct LbArgs {
    /// The Berth endpoint; several servers sharing a store, comma-separated (the next is
    /// used when one cannot be reached).
    #[arg(long, env = "BERTH_ENDPOINT", default_value = "http://127.0.0.1:4566")]
    pub endpoint: String,
    /// The region of the endpoint.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// The address listeners bind.
    #[arg(long, env = "BERTH_LB_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// The address `instance` targets are reached at (the container instances' host).
    #[arg(long, default_value = "127.0.0.1")]
    pub instance_address: std::net::IpAddr,
}

#[derive(Debug, clap::Args)]
pub struct AgentArgs {
    /// The Berth endpoint; several servers sharing a store, comma-separated (the next is
    /// used when one cannot be reached).
    #[arg(long, env = "BERTH_ENDPOINT", default_value = "http://127.0.0.1:4566")]
    pub endpoint: String,
    /// The cluster to join.
    #[arg(long, env = "BERTH_CLUSTER", default_value = "default")]
    pub cluster: String,
    /// The region of the endpoint.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// An attribute of this instance (repeatable), e.g. --attribute stack=prod.
    #[arg(long = "attribute", value_name = "NAME=VALUE")]
    pub attributes: Vec<String>,
    /// The instance's `ecs.availability-zone` [default: <region>a].
    #[arg(long)]
    pub availability_zone: Option<String>,
    /// The Docker Engine socket [default: the local engine].
    #[arg(long, env = "DOCKER_HOST")]
    pub docker_host: Option<String>,
    /// Where the agent keeps its state (its instance ARN).
    #[arg(long, env = "BERTH_AGENT_STATE_DIR", default_value = "./berth-agent")]
    pub state_dir: std::path::PathBuf,
    /// Memory (MiB) kept for the host and not offered to tasks.
    #[arg(long, default_value_t = 256)]
    pub memory_reserve: u64,
    /// Seconds between looks at the Docker Engine when nothing else happens (the agent acts
    /// on a new desired-task document at once).
    #[arg(long, default_value_t = 1.0)]
    pub poll_interval: f64,
    /// Container starts, stops and checks run at once (each task's stop honours its own
    /// stopTimeout).
    #[arg(long, default_value_t = 10)]
    pub max_parallel: usize,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The server's URL [default: the address recorded in the data directory].
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The server's URL [default: the address recorded in the data directory].
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Only this cluster (repeatable) [default: every cluster].
    #[arg(long = "cluster", value_name = "NAME")]
    pub clusters: Vec<String>,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 5.0)]
    pub interval: f64,
    /// Print the table once and exit.
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The server's URL [default: the address recorded in the data directory].
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The cluster.
    pub cluster: String,
    /// A service's name, or a task's id or ARN.
    pub target: String,
    /// Keep printing new output (until interrupted).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// How far back to start: `30s`, `10m`, `2h`, `1d`, `1w`.
    #[arg(long, default_value = "10m", value_parser = since_ms)]
    pub since: i64,
    /// Only events matching this CloudWatch Logs filter pattern.
    #[arg(long, value_name = "PATTERN")]
    pub filter_pattern: Option<String>,
}

fn since_ms(text: &str) -> Result<i64, String> {
    crate::logs::parse_since(text)
        .ok_or_else(|| format!("{text:?} is not a duration like 30s, 10m, 2h, 1d or 1w"))
}

#[derive(Debug, clap::Args)]
pub struct CredentialsArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Write profile NAME to the AWS CLI files (~/.aws/credentials and ~/.aws/config, or
    /// AWS_SHARED_CREDENTIALS_FILE / AWS_CONFIG_FILE).
    #[arg(long, value_name = "NAME")]
    pub aws_profile: Option<String>,
    /// The endpoint URL to put in the profile [default: the address the server on this data
    /// directory recorded when it started, else from --public-host / --listen].
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Instead of root's: create IAM user NAME (unless it exists) and a new access key for it
    /// on the running server, and print or write those (least privilege in one step; give
    /// it policies with --policy).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// With --user: attach this managed policy to the user (repeatable), e.g.
    /// arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly.
    #[arg(long = "policy", value_name = "ARN", requires = "user")]
    pub policies: Vec<String>,
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// A client of the server's public API signed as the data directory's root, at `endpoint`
/// (else the address the data directory records, else the configured one), and the region.
fn root_client(
    server: &ServerArgs,
    endpoint: Option<String>,
) -> Result<(berth_agent::control::Control, String), Box<dyn std::error::Error>> {
    let config = server.resolve()?;
    let pair = read_credentials(&config.data_dir)?;
    let endpoint = endpoint
        .or_else(|| recorded_endpoint(&config.data_dir))
        .unwrap_or_else(|| config.endpoint_url(config.listen));
    let api = berth_agent::control::Control::connect(
        &endpoint,
        &pair.access_key_id,
        &pair.secret_access_key,
        config.region.as_str(),
    );
    Ok((api, config.region.as_str().to_string()))
}

/// A command's result, where output cut short by a closed pipe (`| head`) is no error.
fn quiet_on_broken_pipe(
    result: Result<(), Box<dyn std::error::Error>>,
) -> Result<(), Box<dyn std::error::Error>> {
    match result {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

pub async fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Up(args) => {
            let mut config = args.resolve()?;
            config.local_agent = !args.no_agent;
            config.load_balancer = !args.no_lb;
            serve::run(config, serve::shutdown_signal()).await?;
        }
        Command::Server(args) => {
            let config = args.resolve()?;
            serve::run(config, serve::shutdown_signal()).await?;
        }
        Command::Credentials(args) => credentials(args).await?,
        Command::Backup(args) => {
            let config = args.server.resolve()?;
            let c = crate::backup::backup(&config.data_dir, &args.to)?;
            println!(
                "Backed up {} into {} ({} blobs, {} bytes)",
                config.data_dir.display(),
                args.to.display(),
                c.blobs,
                c.bytes
            );
        }
        Command::Restore(args) => {
            let config = args.server.resolve()?;
            let c = crate::backup::restore(&args.from, &config.data_dir)?;
            println!(
                "Restored {} into {} ({} blobs, {} bytes)",
                args.from.display(),
                config.data_dir.display(),
                c.blobs,
                c.bytes
            );
        }
        Command::MigrateStore(args) => {
            let config = args.server.resolve()?;
            let url = config
                .database
                .ok_or("give the target with --database postgres://…")?;
            let scope = berth_types::Scope {
                account: config.account_id.clone(),
                region: config.region.clone(),
            };
            let m = crate::backup::migrate_store(
                &config.data_dir,
                &url,
                config.blobs.as_deref(),
                scope,
            )
            .await?;
            let data = config.data_dir.display();
            match (m.blobs, &config.blobs) {
                (Some((n, bytes)), Some(blobs)) => println!(
                    "Moved {} records of {data} into {url} and {n} blobs ({bytes} bytes) into {blobs}; run the server with --database {url} --blobs {blobs}",
                    m.records
                ),
                _ => println!(
                    "Moved {} records of {data} into {url}; run the server with --database {url} --data-dir {data} (blobs stay there)",
                    m.records
                ),
            }
        }
        Command::Status(args) => quiet_on_broken_pipe(status(args).await)?,
        Command::Top(args) => {
            let (api, _) = root_client(&args.server, args.endpoint_url)?;
            let every = std::time::Duration::from_secs_f64(args.interval.max(0.5));
            crate::top::run(api, args.clusters, every, args.once).await?;
        }
        Command::Logs(args) => {
            let (api, region) = root_client(&args.server, args.endpoint_url)?;
            let request = crate::logs::Request {
                cluster: args.cluster,
                target: args.target,
                since_ms: args.since,
                pattern: args.filter_pattern,
                follow: args.follow,
                region,
            };
            quiet_on_broken_pipe(crate::logs::run(api, request).await)?;
        }
        Command::Agent(args) => agent(args).await?,
        Command::Lb(args) => {
            let key = |name: &str| {
                std::env::var(name).map_err(|_| {
                    format!("{name} is not set: the load balancer signs its calls with it")
                })
            };
            let control = berth_agent::control::Control::connect(
                &args.endpoint,
                &key("AWS_ACCESS_KEY_ID")?,
                &key("AWS_SECRET_ACCESS_KEY")?,
                &args.region,
            );
            let source = std::sync::Arc::new(crate::lb::Remote(control));
            let never = std::sync::Arc::new(tokio::sync::Notify::new());
            tokio::select! {
                () = crate::lb::run(source, never, args.bind, args.instance_address) => {}
                () = serve::shutdown_signal() => {}
            }
        }
    }
    Ok(())
}

async fn agent(args: AgentArgs) -> Result<(), Box<dyn std::error::Error>> {
    let key = |name: &str| {
        std::env::var(name)
            .map_err(|_| format!("{name} is not set: the agent signs its calls with it"))
    };
    let mut attributes = Vec::new();
    for a in &args.attributes {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| format!("--attribute takes NAME=VALUE, not '{a}'"))?;
        attributes.push((k.to_string(), v.to_string()));
    }
    let config = berth_agent::AgentConfig {
        endpoint: args.endpoint,
        cluster: args.cluster,
        access_key_id: key("AWS_ACCESS_KEY_ID")?,
        secret_access_key: key("AWS_SECRET_ACCESS_KEY")?,
        region: args.region,
        attributes,
        availability_zone: args.availability_zone,
        docker_host: args.docker_host,
        state_dir: args.state_dir,
        memory_reserve_mib: args.memory_reserve,
        poll_interval: std::time::Duration::from_secs_f64(args.poll_interval.max(0.05)),
        max_parallel: args.max_parallel.max(1),
    };
    let agent = berth_agent::Agent::start(config).await?;
    agent.run(serve::shutdown_signal()).await;
    Ok(())
}

async fn status(args: StatusArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = args.server.resolve()?;
    let pair = read_credentials(&config.data_dir)?;
    let endpoint = args
        .endpoint_url
        .or_else(|| recorded_endpoint(&config.data_dir))
        .unwrap_or_else(|| config.endpoint_url(config.listen));
    let control = berth_agent::control::Control::connect(
        &endpoint,
        &pair.access_key_id,
        &pair.secret_access_key,
        config.region.as_str(),
    );
    let status = control
        .node_call("ecs", "/_berth/status", &serde_json::json!({}))
        .await?;
    // A closed stdout (`berth status | head`) ends the listing quietly.
    let mut out = std::io::stdout().lock();
    writeln!(out, "Berth at {endpoint}\n")?;
    writeln!(
        out,
        "{:<18} {:<32} {:>7} {:>14}",
        "server", "endpoint", "leader", "lease left"
    )?;
    for srv in status["servers"].as_array().into_iter().flatten() {
        let left = srv["leaseRemainingMs"].as_i64().unwrap_or_default();
        writeln!(
            out,
            "{:<18} {:<32} {:>7} {:>14}",
            srv["id"].as_str().unwrap_or_default(),
            srv["endpoint"].as_str().unwrap_or_default(),
            if srv["leader"] == true { "yes" } else { "" },
            if left > 0 {
                format!("{:.1} s", left as f64 / 1000.0)
            } else {
                "expired".into()
            },
        )?;
    }
    if let Some(l) = status["leader"].as_object() {
        writeln!(
            out,
            "leader lease: {} at epoch {}, {:.1} s left",
            l["holder"].as_str().unwrap_or_default(),
            l["epoch"],
            l["remainingMs"].as_f64().unwrap_or_default() / 1000.0
        )?;
    }
    writeln!(
        out,
        "change feed: revision {} (this server has applied {})",
        status["revision"], status["appliedRevision"]
    )?;
    writeln!(
        out,
        "blobs: {}\n",
        status["blobs"].as_str().unwrap_or_default()
    )?;
    writeln!(
        out,
        "{:<22} {:>11} {:>8} {:>10} {:>11}  last outcome",
        "background task", "activations", "failures", "last run", "took"
    )?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    for t in status["backgroundTasks"].as_array().into_iter().flatten() {
        let ago = t["lastStarted"]
            .as_f64()
            .map_or("never".to_string(), |at| format!("{:.1} s ago", now - at));
        let took = t["lastDurationSeconds"]
            .as_f64()
            .map_or("-".to_string(), |d| format!("{:.1} ms", d * 1000.0));
        let outcome = match (&t["lastOutcome"]["ok"], &t["lastOutcome"]["error"]) {
            (serde_json::Value::Object(counts), _) => counts
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", "),
            (_, serde_json::Value::String(e)) => format!("FAILED: {e}"),
            _ => "-".into(),
        };
        writeln!(
            out,
            "{:<22} {:>11} {:>8} {:>10} {:>11}  {outcome}",
            t["name"].as_str().unwrap_or_default(),
            t["activations"].to_string(),
            t["failures"].to_string(),
            ago,
            took,
        )?;
    }
    Ok(())
}

async fn credentials(args: CredentialsArgs) -> Result<(), Box<dyn std::error::Error>> {
    let config = args.server.resolve()?;
    let mut pair = read_credentials(&config.data_dir)?;
    let endpoint = args
        .endpoint_url
        .or_else(|| recorded_endpoint(&config.data_dir))
        .unwrap_or_else(|| config.endpoint_url(config.listen));
    if let Some(user) = &args.user {
        let root = berth_agent::control::Control::connect(
            &endpoint,
            &pair.access_key_id,
            &pair.secret_access_key,
            config.region.as_str(),
        );
        pair = create_user_key(&root, user, &args.policies).await?;
    }
    let Some(profile) = args.aws_profile else {
        println!("aws_access_key_id = {}", pair.access_key_id);
        println!("aws_secret_access_key = {}", pair.secret_access_key);
        return Ok(());
    };
    if profile.is_empty() || profile.contains([']', '[', '\n']) {
        return Err(format!("invalid profile name '{profile}'").into());
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let creds_file = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    let config_file = std::env::var_os("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/config"));
    upsert_ini_section(
        &creds_file,
        &profile,
        &[
            ("aws_access_key_id", pair.access_key_id.as_str()),
            ("aws_secret_access_key", pair.secret_access_key.as_str()),
        ],
        true,
    )?;
    let section = if profile == "default" {
        profile.clone()
    } else {
        format!("profile {profile}")
    };
    upsert_ini_section(
        &config_file,
        &section,
        &[
            ("region", config.region.as_str()),
            ("endpoint_url", endpoint.as_str()),
        ],
        false,
    )?;
    println!(
        "Wrote AWS CLI profile '{profile}' (endpoint {endpoint}, region {}): try `aws --profile {profile} ecs list-clusters`",
        config.region
    );
    Ok(())
}

/// `berth credentials --user`: IAM user `user` (created unless it exists) with `policies`
/// attached, and a new access key of it, through the running server as root.
async fn create_user_key(
    root: &berth_agent::control::Control,
    user: &str,
    policies: &[String],
) -> Result<berth_api::auth::KeyPair, Box<dyn std::error::Error>> {
    const IAM: &str = "2010-05-08";
    let name = [("UserName", user)];
    if let Err(e) = root.query("iam", IAM, "CreateUser", &name).await
        && !e.to_string().contains("EntityAlreadyExists")
    {
        return Err(e.into());
    }
    for arn in policies {
        let params = [("UserName", user), ("PolicyArn", arn.as_str())];
        root.query("iam", IAM, "AttachUserPolicy", &params).await?;
    }
    let xml = root.query("iam", IAM, "CreateAccessKey", &name).await?;
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let start = xml.find(&open).map(|i| i + open.len());
        let end = xml.find(&format!("</{tag}>"));
        match (start, end) {
            (Some(a), Some(b)) if a <= b => Ok(xml[a..b].to_string()),
            _ => Err(format!("CreateAccessKey answered without {tag}: {xml}")),
        }
    };
    Ok(berth_api::auth::KeyPair {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: field("SecretAccessKey")?,
    })
}

/// Replaces (or appends) `[section]` in an INI file, keeping every other section as it was.
fn upsert_ini_section(
    path: &Path,
    section: &str,
    pairs: &[(&str, &str)],
    secret: bool,
) -> std::io::Result<()> {
    let existing = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut out = String::new();
    let mut skipping = false;
    for line in existing.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            skipping = trimmed[1..trimmed.len() - 1].trim() == section;
        }
        if !skipping {
            out.push_str(line);
            out.push('\n');
        }
    }
    if !out.is_empty() && !out.ends_with("\n\n") {
        out.push('\n');
    }
    out.push_str(&format!("[{section}]\n"));
    for (k, v) in pairs {
        out.push_str(&format!("{k} = {v}\n"));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("berth-tmp");
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(if secret { 0o600 } else { 0o644 })
            .open(&tmp)?;
        f.write_all(out.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ini_sections_are_replaced_not_duplicated() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config");
        std::fs::write(&p, "[default]\nregion = eu-west-1\n\n[profile berth]\nregion = old\n[profile other]\nx = 1\n").unwrap();
        upsert_ini_section(&p, "profile berth", &[("region", "us-east-1")], false).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.matches("[profile berth]").count(), 1);
        assert!(text.contains("[default]\nregion = eu-west-1"));
        assert!(text.contains("[profile other]\nx = 1"));
        assert!(text.ends_with("[profile berth]\nregion = us-east-1\n"));
        assert!(!text.contains("old"));
    }
}
