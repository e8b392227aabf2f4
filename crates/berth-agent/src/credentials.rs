//! Task role credentials (spec/iam.md §6): what a task's containers fetch at
//! `http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, and the execution role's
//! credentials the agent pulls the task's images with.
//!
//! - Each task with a `taskRoleArn` gets `/v2/credentials/<id>`, the id a keyed hash of its
//!   ARN under a key kept in the agent's state directory: unguessable, and the same after the
//!   agent restarts (adopted containers keep their URI). The metadata endpoint serves it, to
//!   the task's own containers only (by their addresses, as the metadata itself).
//! - 169.254.170.2:80 reaches that endpoint through a DNAT rule the agent puts in the host's
//!   `nat` table (`PREROUTING`, tagged with the instance id). `host`-mode containers share the
//!   host's network and get `AWS_CONTAINER_CREDENTIALS_FULL_URI` on loopback instead.
//! - Credentials come from the control plane (`berth-node-api::agent::CREDENTIALS`), are kept
//!   until [`REFRESH_BEFORE`] their expiry and fetched anew after, so what a container reads
//!   is always valid for a while yet. Execution role credentials never reach a container.

use berth_node_api::agent::{RoleCredentials, TaskRole};
use futures_util::future::BoxFuture;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where containers reach the credentials endpoint (ECS's address).
pub const LINK_LOCAL: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);

/// Credentials expiring sooner than this are fetched anew.
pub const REFRESH_BEFORE: Duration = Duration::from_secs(15 * 60);

/// How the agent asks the control plane for a task role's credentials.
pub type Fetch = Arc<
    dyn Fn(String, TaskRole) -> BoxFuture<'static, Result<RoleCredentials, String>> + Send + Sync,
>;

/// The credentials of this instance's tasks' roles.
pub struct Credentials {
    key: String,
    fetch: Fetch,
    cache: Mutex<HashMap<(String, TaskRole), RoleCredentials>>,
    /// One rule change at a time.
    routing: tokio::sync::Mutex<()>,
}

impl Credentials {
    /// With the key kept in `state_dir` (made on first use).
    pub fn new(state_dir: &std::path::Path, fetch: Fetch) -> std::io::Result<Credentials> {
        let file = state_dir.join("credentials-key");
        let key = match std::fs::read_to_string(&file) {
            Ok(k) if k.trim().len() == 64 => k.trim().to_string(),
            _ => {
                let mut bytes = [0u8; 32];
                std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
                let k: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                write_private(&file, &k)?;
                k
            }
        };
        Ok(Credentials {
            key,
            fetch,
            cache: Mutex::new(HashMap::new()),
            routing: Default::default(),
        })
    }

    /// The task's credentials id (the last part of its relative URI).
    pub fn id(&self, task_arn: &str) -> String {
        let mut digest =
            berth_aws::sigv4::sha256_hex(format!("{}\0{task_arn}", self.key).as_bytes());
        digest.truncate(32);
        digest
    }

    /// `/v2/credentials/<id>`.
    pub fn relative_uri(&self, task_arn: &str) -> String {
        format!("/v2/credentials/{}", self.id(task_arn))
    }

    /// The role's credentials, valid for at least [`REFRESH_BEFORE`] more.
    pub async fn get(&self, task_arn: &str, role: TaskRole) -> Result<RoleCredentials, String> {
        let key = (task_arn.to_string(), role);
        let fresh_until = now() + REFRESH_BEFORE.as_secs() as i64;
        if let Some(c) = self.cache.lock().expect("credentials").get(&key)
            && c.expiration > fresh_until
        {
            return Ok(c.clone());
        }
        let c = (self.fetch)(task_arn.to_string(), role).await?;
        self.cache
            .lock()
            .expect("credentials")
            .insert(key, c.clone());
        Ok(c)
    }

    /// Routes 169.254.170.2:80 to the endpoint at `to` (see [`route`]).
    pub async fn route(&self, tag: &str, to: SocketAddrV4) -> Result<(), String> {
        let _one = self.routing.lock().await;
        route(tag, to).await
    }

    /// Drops what is kept of tasks other than `live`.
    pub fn retain(&self, live: impl Fn(&str) -> bool) {
        self.cache
            .lock()
            .expect("credentials")
            .retain(|(arn, _), _| live(arn));
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::io::Write::write_all(&mut f, text.as_bytes())
}

/// The answer containers get, in the shape the SDKs read.
pub fn container_json(c: &RoleCredentials) -> serde_json::Value {
    let expiration = time::OffsetDateTime::from_unix_timestamp(c.expiration)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    serde_json::json!({
        "RoleArn": c.role_arn,
        "AccessKeyId": c.access_key_id,
        "SecretAccessKey": c.secret_access_key,
        "Token": c.session_token,
        "Expiration": expiration,
    })
}

/// What this instance's rules are tagged with.
pub fn tag(instance_arn: &str) -> String {
    let id = instance_arn.rsplit('/').next().unwrap_or_default();
    format!("berth-agent:{id}")
}

/// The `nat` table rules routing 169.254.170.2:80 to the endpoint at `to`, tagged `tag`
/// (`-A` spelling, without the chain).
fn rule(tag: &str, to: SocketAddrV4) -> Vec<String> {
    [
        "-d",
        &format!("{LINK_LOCAL}/32"),
        "-p",
        "tcp",
        "-m",
        "tcp",
        "--dport",
        "80",
        "-m",
        "comment",
        "--comment",
        tag,
        "-j",
        "DNAT",
        "--to-destination",
        &to.to_string(),
    ]
    .map(str::to_string)
    .to_vec()
}

async fn iptables(args: &[String]) -> Result<String, String> {
    let out = tokio::process::Command::new("iptables")
        .args(["-w", "-t", "nat"])
        .args(args)
        .output()
        .await
        .map_err(|e| format!("iptables: {e}"))?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        false => Err(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )),
    }
}

/// Makes 169.254.170.2:80 reach `to` from the host's container networks: this agent's rule
/// first in `PREROUTING` (its older ones, to another address, removed).
async fn route(tag: &str, to: SocketAddrV4) -> Result<(), String> {
    let wanted = rule(tag, to);
    let mut check = vec!["-C".to_string(), "PREROUTING".to_string()];
    check.extend(wanted.iter().cloned());
    if iptables(&check).await.is_ok() {
        return Ok(());
    }
    unroute(tag).await?;
    let mut insert = vec!["-I".to_string(), "PREROUTING".into(), "1".into()];
    insert.extend(wanted);
    iptables(&insert).await?;
    tracing::info!(%to, "169.254.170.2:80 routed to the task credentials endpoint");
    Ok(())
}

/// Removes this agent's rules.
pub async fn unroute(tag: &str) -> Result<(), String> {
    let listed = iptables(&["-S".into(), "PREROUTING".into()]).await?;
    // `-S` quotes the comment: `--comment "berth-agent:<id>"`.
    let marker = format!("--comment \"{tag}\"");
    for line in listed.lines().filter(|l| l.contains(&marker)) {
        let Some(spec) = line.strip_prefix("-A PREROUTING ") else {
            continue;
        };
        let mut delete = vec!["-D".to_string(), "PREROUTING".to_string()];
        delete.extend(
            spec.split_whitespace()
                .map(|t| t.trim_matches('"').to_string()),
        );
        iptables(&delete).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetcher(calls: Arc<Mutex<u32>>, lasts: i64) -> Fetch {
        Arc::new(move |arn, _| {
            let calls = calls.clone();
            Box::pin(async move {
                *calls.lock().unwrap() += 1;
                Ok(RoleCredentials {
                    role_arn: format!("role-of-{arn}"),
                    access_key_id: "ASIAEXAMPLE".into(),
                    secret_access_key: "secret".into(),
                    session_token: "token".into(),
                    expiration: now() + lasts,
                })
            })
        })
    }

    /// Ids are stable under one key, differ between tasks and between keys, and say nothing
    /// of the ARN.
    #[test]
    fn ids_are_keyed_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let fetch = fetcher(Default::default(), 3600);
        let a = Credentials::new(dir.path(), fetch.clone()).unwrap();
        let again = Credentials::new(dir.path(), fetch.clone()).unwrap();
        assert_eq!(a.id("arn:task/1"), again.id("arn:task/1"));
        assert_ne!(a.id("arn:task/1"), a.id("arn:task/2"));
        let other = tempfile::tempdir().unwrap();
        let b = Credentials::new(other.path(), fetch).unwrap();
        assert_ne!(a.id("arn:task/1"), b.id("arn:task/1"));
        assert_eq!(a.relative_uri("x").len(), "/v2/credentials/".len() + 32);
    }

    /// Credentials are kept while fresh, fetched anew when close to expiry.
    #[tokio::test]
    async fn credentials_are_refreshed_before_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let calls = Arc::new(Mutex::new(0));
        let long = Credentials::new(dir.path(), fetcher(calls.clone(), 3600)).unwrap();
        long.get("t", TaskRole::Task).await.unwrap();
        long.get("t", TaskRole::Task).await.unwrap();
        assert_eq!(*calls.lock().unwrap(), 1);
        long.get("t", TaskRole::Execution).await.unwrap();
        assert_eq!(*calls.lock().unwrap(), 2);
        let short_calls = Arc::new(Mutex::new(0));
        let short = Credentials::new(dir.path(), fetcher(short_calls.clone(), 600)).unwrap();
        short.get("t", TaskRole::Task).await.unwrap();
        short.get("t", TaskRole::Task).await.unwrap();
        assert_eq!(*short_calls.lock().unwrap(), 2);
    }

    /// The container's answer has the members and time format the SDKs parse.
    #[test]
    fn container_answer_has_the_sdk_shape() {
        let c = RoleCredentials {
            role_arn: "arn:aws:iam::000000000000:role/app".into(),
            access_key_id: "ASIA1".into(),
            secret_access_key: "s".into(),
            session_token: "t".into(),
            expiration: 1_800_000_000,
        };
        let v = container_json(&c);
        assert_eq!(v["Expiration"], "2027-01-15T08:00:00Z");
        assert_eq!(v["Token"], "t");
        assert_eq!(v["RoleArn"], "arn:aws:iam::000000000000:role/app");
    }
}
