//! `berth-testkit`: what integration tests need to drive a real Berth.
//!
//! [`TestServer`] starts the real `berth` binary on `127.0.0.1:0` with its own temporary data
//! directory and known root keys, waits until it reports the port it bound, and hands out
//! official AWS SDK clients pointed at it. It can `kill -9` and restart the process on the
//! same data directory. The server's log is kept in a file; when a test fails the log is
//! printed and the data directory is kept for inspection.
//!
//! [`signed`] builds raw SigV4-signed requests (with the `aws-sigv4` crate, independent of
//! Berth's verifier) for the tests that tamper with signatures.

use base64::Engine;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

pub use aws_config;
pub use aws_credential_types;
pub use aws_sdk_applicationautoscaling;
pub use aws_sdk_cloudwatch;
pub use aws_sdk_cloudwatchlogs;
pub use aws_sdk_ecr;
pub use aws_sdk_ecs;
pub use aws_sdk_elasticloadbalancingv2;
pub use aws_sdk_iam;
pub use aws_sdk_sts;

/// The root keys every test server starts with.
pub const ACCESS_KEY_ID: &str = "AKIATESTKEY000000001";
pub const SECRET_ACCESS_KEY: &str = "berthTestSecretKey/0123456789abcdefghijk";
pub const REGION: &str = "us-east-1";

/// Options for [`TestServer::start_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Reuse this data directory (for restarts); default: a new temporary one.
    pub data_dir: Option<PathBuf>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Do not pass the known root keys (to test generated credentials).
    pub no_root_env: bool,
    /// Let `berth up` run its in-process agent (off by default: tests drive agents themselves).
    pub local_agent: bool,
}

/// A running `berth up`.
pub struct TestServer {
    child: Option<Child>,
    bin: PathBuf,
    options: Options,
    pub port: u16,
    pub endpoint: String,
    pub data_dir: PathBuf,
    /// Owns the data directory when the testkit created it.
    temp: Option<tempfile::TempDir>,
    pub log_path: PathBuf,
    _log_dir: tempfile::TempDir,
}

/// A bound on a wait for something outside the test's control (a container, a health check,
/// an engine): a polling loop checks its condition, then calls [`Deadline::next`], which
/// fails the test once the time is up and otherwise waits a moment before the next look.
pub struct Deadline {
    until: Instant,
    every: Duration,
}

impl Deadline {
    pub fn after(timeout: Duration) -> Deadline {
        Deadline {
            until: Instant::now() + timeout,
            every: Duration::from_millis(100),
        }
    }

    /// Polls every `every` instead of 100 ms.
    pub fn every(mut self, every: Duration) -> Deadline {
        self.every = every;
        self
    }

    /// Fails with `what` past the deadline; otherwise waits for the next look.
    pub async fn next(&self, what: impl std::fmt::Display) {
        assert!(Instant::now() < self.until, "timed out waiting for {what}");
        tokio::time::sleep(self.every).await;
    }

    /// [`Deadline::next`] outside async code.
    pub fn next_blocking(&self, what: impl std::fmt::Display) {
        assert!(Instant::now() < self.until, "timed out waiting for {what}");
        std::thread::sleep(self.every);
    }
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub async fn wait_for<F: FnMut() -> bool>(timeout: Duration, what: &str, mut cond: F) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the async condition `cond` every 100 ms until it holds or `timeout` passes.
pub async fn until<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl TestServer {
    pub fn start(bin: &str) -> TestServer {
        Self::start_with(bin, Options::default())
    }

    /// Starts `bin up` and waits (bounded) for its ready line.
    pub fn start_with(bin: &str, options: Options) -> TestServer {
        let (temp, data_dir) = match &options.data_dir {
            Some(d) => (None, d.clone()),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("berth-test-")
                    .tempdir()
                    .expect("temp dir");
                let p = t.path().join("data");
                (Some(t), p)
            }
        };
        let log_dir = tempfile::Builder::new()
            .prefix("berth-test-log-")
            .tempdir()
            .expect("temp dir");
        let log_path = log_dir.path().join("server.log");
        let mut s = TestServer {
            child: None,
            bin: bin.into(),
            options,
            port: 0,
            endpoint: String::new(),
            data_dir,
            temp,
            log_path,
            _log_dir: log_dir,
        };
        s.spawn();
        s
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("up")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.options.args)
            .args(if self.options.local_agent {
                &[][..]
            } else {
                &["--no-agent"][..]
            })
            .env("BERTH_LOG", "info,berth=debug")
            .env_remove("BERTH_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if !self.options.no_root_env {
            cmd.env("BERTH_ROOT_ACCESS_KEY_ID", ACCESS_KEY_ID)
                .env("BERTH_ROOT_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY);
        }
        for (k, v) in &self.options.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start berth");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let (tx, rx) = mpsc::channel::<u16>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let _ = writeln!(log, "{line}");
                if let Some(rest) = line.split("Berth is ready at ").nth(1) {
                    let port = rest
                        .split_whitespace()
                        .next()
                        .and_then(|url| url.rsplit(':').next())
                        .and_then(|p| p.parse().ok());
                    if let Some(p) = port {
                        let _ = tx.send(p);
                    }
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(p) => p,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "berth did not become ready within 30 s; log:\n{}",
                    self.log()
                );
            }
        };
        self.port = port;
        self.endpoint = format!("http://127.0.0.1:{port}");
        self.child = Some(child);
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL, no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        c.wait().expect("wait")
    }

    /// Starts the server again on the same data directory (after `kill9` or `stop`).
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// AWS SDK configuration for this server with the given keys.
    pub fn sdk_config_with(&self, access_key_id: &str, secret: &str) -> aws_config::SdkConfig {
        self.sdk_config_for(access_key_id, secret, REGION)
    }

    /// AWS SDK configuration for this server, signing for `region`.
    pub fn sdk_config_in(&self, region: &str) -> aws_config::SdkConfig {
        self.sdk_config_for(ACCESS_KEY_ID, SECRET_ACCESS_KEY, region)
    }

    fn sdk_config_for(
        &self,
        access_key_id: &str,
        secret: &str,
        region: &str,
    ) -> aws_config::SdkConfig {
        let creds =
            aws_credential_types::Credentials::new(access_key_id, secret, None, None, "berth-test");
        aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .endpoint_url(&self.endpoint)
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(creds),
            )
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .build()
    }

    pub fn sdk_config(&self) -> aws_config::SdkConfig {
        self.sdk_config_with(ACCESS_KEY_ID, SECRET_ACCESS_KEY)
    }

    pub fn ecs(&self) -> aws_sdk_ecs::Client {
        aws_sdk_ecs::Client::new(&self.sdk_config())
    }

    pub fn ecr(&self) -> aws_sdk_ecr::Client {
        aws_sdk_ecr::Client::new(&self.sdk_config())
    }

    /// `docker login` credentials for the registry: (user, password) from
    /// `GetAuthorizationToken`.
    pub async fn registry_login(&self) -> (String, String) {
        self.registry_login_in(REGION).await
    }

    /// [`TestServer::registry_login`] with a token issued in `region`: the registry requests
    /// it authorizes reach that region's repositories.
    pub async fn registry_login_in(&self, region: &str) -> (String, String) {
        let out = aws_sdk_ecr::Client::new(&self.sdk_config_in(region))
            .get_authorization_token()
            .send()
            .await
            .expect("GetAuthorizationToken");
        let token = out.authorization_data()[0]
            .authorization_token()
            .expect("token");
        decode_basic(token)
    }

    pub fn elbv2(&self) -> aws_sdk_elasticloadbalancingv2::Client {
        aws_sdk_elasticloadbalancingv2::Client::new(&self.sdk_config())
    }

    pub fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.sdk_config())
    }

    /// CloudWatch as root (the SDK speaks Smithy RPC v2 CBOR).
    pub fn cloudwatch(&self) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&self.sdk_config())
    }

    /// CloudWatch Logs as root.
    pub fn logs(&self) -> aws_sdk_cloudwatchlogs::Client {
        aws_sdk_cloudwatchlogs::Client::new(&self.sdk_config())
    }

    /// Application Auto Scaling as root.
    pub fn autoscaling(&self) -> aws_sdk_applicationautoscaling::Client {
        aws_sdk_applicationautoscaling::Client::new(&self.sdk_config())
    }

    /// IAM as root (IAM is global: the SDK signs for us-east-1).
    pub fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.sdk_config())
    }

    /// Activates background task `name` (`service-scheduler`, `instance-liveness`,
    /// `registry-gc`, `stopped-task-purge`, …) and returns its status once an activation that
    /// started after the call has finished: a test waits for a pass instead of sleeping.
    pub async fn activate(&self, name: &str) -> serde_json::Value {
        activate_at(&self.endpoint, name).await
    }

    /// Keeps the temporary data directory (it is printed) instead of deleting it.
    fn keep(&mut self) {
        if let Some(t) = self.temp.take() {
            eprintln!("berth test data kept in {}", t.keep().display());
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!(
                "---- berth server log ({}) ----\n{}",
                self.log_path.display(),
                self.log()
            );
            self.keep();
        }
    }
}

/// The operator status of the server at `endpoint` (`/_berth/status`: the servers sharing
/// its store, the leader lease, the change feed's revision, the background tasks).
pub async fn status_at(endpoint: &str) -> serde_json::Value {
    operator_call(endpoint, "/_berth/status", "status").await
}

/// [`TestServer::activate`] for the server at `endpoint` (e.g. an SDK client's
/// `config().endpoint_url()`).
pub async fn activate_at(endpoint: &str, name: &str) -> serde_json::Value {
    let what = format!("activating {name}");
    operator_call(endpoint, &format!("/_berth/background/{name}"), &what).await
}

/// A root-signed `POST {}` to an operator endpoint; its JSON answer.
async fn operator_call(endpoint: &str, path: &str, what: &str) -> serde_json::Value {
    let r = signed(
        &Signing::root("ecs"),
        "POST",
        &format!("{endpoint}{path}"),
        &[("content-type", "application/json")],
        b"{}",
    )
    .send()
    .await;
    assert_eq!(r.status, 200, "{what}: {}", r.body);
    serde_json::from_str(&r.body).expect("a JSON answer")
}

/// The `Authorization` value of HTTP Basic auth.
/// An ECR authorization token (`base64("AWS:<password>")`) as its user and password.
pub fn decode_basic(token: &str) -> (String, String) {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(token)
        .expect("base64 token");
    let decoded = String::from_utf8(raw).expect("utf-8 token");
    let (user, password) = decoded.split_once(':').expect("AWS:<password>");
    (user.to_string(), password.to_string())
}

pub fn basic_auth(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

/// A raw request signed with `aws-sigv4` (independently of Berth's verifier).
pub struct Signed {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// How to sign a raw request.
pub struct Signing<'a> {
    pub service: &'a str,
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub time: SystemTime,
    /// `Some(expiry)`: a presigned URL instead of an `Authorization` header.
    pub presign: Option<Duration>,
    pub region: &'a str,
}

impl Signing<'_> {
    pub fn root(service: &str) -> Signing<'_> {
        Signing {
            service,
            access_key_id: ACCESS_KEY_ID,
            secret: SECRET_ACCESS_KEY,
            time: SystemTime::now(),
            presign: None,
            region: REGION,
        }
    }
}

/// Signs `method url` with `headers` and `body` (host is taken from the URL).
pub fn signed(
    s: &Signing<'_>,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Signed {
    use aws_sigv4::http_request::{
        SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
    };
    let identity =
        aws_credential_types::Credentials::new(s.access_key_id, s.secret, None, None, "test")
            .into();
    let mut settings = SigningSettings::default();
    if let Some(exp) = s.presign {
        settings.signature_location = SignatureLocation::QueryParams;
        settings.expires_in = Some(exp);
    }
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(s.region)
        .name(s.service)
        .time(s.time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .expect("signable request");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut req = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(()).expect("request");
    instructions.apply_to_request_http1x(&mut req);
    Signed {
        method: method.into(),
        url: req.uri().to_string(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
            .collect(),
        body: body.to_vec(),
    }
}

/// A response as the raw-request tests look at it.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Signed {
    /// Sends the request as signed.
    pub async fn send(&self) -> RawResponse {
        let client = reqwest::Client::new();
        let mut req = client.request(self.method.parse().expect("method"), &self.url);
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        let resp = req
            .body(self.body.clone())
            .send()
            .await
            .expect("request sent");
        RawResponse {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap_or_default(),
        }
    }
}

/// An ECS awsJson request for `operation` with `body`.
pub fn ecs_request(endpoint: &str, s: &Signing<'_>, operation: &str, body: &str) -> Signed {
    let target = format!("AmazonEC2ContainerServiceV20141113.{operation}");
    signed(
        s,
        "POST",
        &format!("{endpoint}/"),
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", &target),
        ],
        body.as_bytes(),
    )
}

/// Path of a program, or a loud failure naming what installs it.
pub fn require_program(name: &str, installed_by: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` is required by this test and is not on PATH; {installed_by}");
}

/// A PostgreSQL server of one test's own (its faults must not disturb the shared server of
/// `BERTH_TEST_POSTGRES`): a fresh cluster in a temporary directory, run as user `postgres`
/// (initdb refuses root) on a free loopback port, stopped — by its PID — when dropped. Needs
/// A free loopback port below the kernel's ephemeral range, for a server that stops and
/// starts again on the same port: an ephemeral port (`bind(0)`) can be handed to some
/// client's outgoing connection while its server is down (seen: SeaweedFS's filer unable to
/// listen again). Ports differ between calls in one process.
pub fn stable_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static CALLS: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    let (low, span) = (10_000, ephemeral_low.saturating_sub(10_000).max(1));
    let start = std::process::id().wrapping_mul(7919);
    for _ in 0..span {
        let n = CALLS.fetch_add(1, Ordering::Relaxed);
        let port = (low + start.wrapping_add(n.wrapping_mul(131)) % span) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port below {ephemeral_low}")
}

/// Debian's `postgresql` package, which scripts/test.sh installs.
pub struct PostgresServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    pub port: u16,
}

impl PostgresServer {
    pub fn start() -> PostgresServer {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| Some(v.ok()?.path().join("bin")))
                    .filter(|b| b.join("initdb").is_file())
                    .max()
            })
            .expect("PostgreSQL is not installed: scripts/test.sh installs Debian's postgresql");
        let dir = tempfile::Builder::new()
            .prefix("berth-test-pg-")
            .tempdir()
            .expect("temp dir");
        let port = stable_port();
        let s = PostgresServer { bin, dir, port };
        s.run_checked(Command::new("chown").args(["postgres:", &s.path()]));
        let initdb = s.bin.join("initdb");
        s.run_checked(Command::new("runuser").args([
            "-u",
            "postgres",
            "--",
            &initdb.display().to_string(),
            "-D",
            &format!("{}/data", s.path()),
            "-A",
            "trust",
            "-U",
            "postgres",
        ]));
        s.resume();
        s
    }

    fn path(&self) -> String {
        self.dir.path().display().to_string()
    }

    fn run_checked(&self, cmd: &mut Command) {
        let out = cmd.output().expect("run a PostgreSQL command");
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let pg_ctl = self.bin.join("pg_ctl");
        let data = format!("{}/data", self.path());
        let log = format!("{}/log", self.path());
        let mut all = vec![
            "-u",
            "postgres",
            "--",
            pg_ctl.to_str().expect("UTF-8 path"),
            "-D",
            &data,
            "-l",
            &log,
            "-w",
        ];
        all.extend_from_slice(args);
        self.run_checked(Command::new("runuser").args(all));
    }

    /// The URL of database `postgres` (`…/postgres`), or of another with [`Self::url_of`].
    pub fn url_of(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (fast shutdown: open connections are closed).
    pub fn pause(&self) {
        self.pg_ctl(&["-m", "fast", "stop"]);
    }

    /// Starts the server again on the same data and port.
    pub fn resume(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.path()
        );
        self.pg_ctl(&["-o", &options, "start"]);
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next()?.trim().parse::<i32>().ok());
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The environment of a Berth whose `--blobs` bucket is on the S3 endpoint `endpoint` (test
/// keys: SeaweedFS and moto accept any).
pub fn s3_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL_S3", endpoint),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "berth-test"),
        ("AWS_SECRET_ACCESS_KEY", "berth-test-secret"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .to_vec()
}

/// A SeaweedFS server of one test's own (its faults must not disturb the shared one of
/// `BERTH_TEST_S3_SEAWEEDFS`): `weed server -s3` (the binary `BERTH_TEST_WEED` names, which
/// scripts/test.sh installs) on free loopback ports, with a bucket `berth-test`; stopped — by
/// its PID — when dropped.
pub struct SeaweedServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// master, volume, filer, s3, then their gRPC ports.
    ports: Vec<u16>,
    child: Option<Child>,
}

impl SeaweedServer {
    pub fn start() -> SeaweedServer {
        let bin = std::env::var_os("BERTH_TEST_WEED")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!(
                    "BERTH_TEST_WEED is not set: scripts/test.sh installs SeaweedFS for this test"
                )
            });
        let dir = tempfile::Builder::new()
            .prefix("berth-test-weed-")
            .tempdir()
            .expect("temp dir");
        let ports = (0..8).map(|_| stable_port()).collect();
        let mut s = SeaweedServer {
            bin,
            dir,
            ports,
            child: None,
        };
        s.resume();
        s
    }

    /// The S3 endpoint (`http://127.0.0.1:PORT`).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports[3])
    }

    /// Kills the server (`kill -9`): its S3 endpoint refuses connections.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server (again) on the same data and ports, and waits (bounded) until its
    /// bucket answers.
    pub fn resume(&mut self) {
        let p = |i: usize| self.ports[i].to_string();
        let log = std::fs::File::create(self.dir.path().join("log")).expect("log file");
        let child = Command::new(&self.bin)
            .arg("server")
            .arg("-s3")
            .arg("-dir")
            .arg(self.dir.path())
            .args(["-ip", "127.0.0.1", "-ip.bind", "127.0.0.1"])
            .args(["-master.port", &p(0), "-volume.port", &p(1)])
            .args(["-filer.port", &p(2), "-s3.port", &p(3)])
            .args(["-master.port.grpc", &p(4), "-volume.port.grpc", &p(5)])
            .args(["-filer.port.grpc", &p(6), "-s3.port.grpc", &p(7)])
            // No listeners on fixed ports (two servers may run at once), no telemetry.
            .args(["-s3.port.iceberg", "0", "-s3.port.lance", "0"])
            .arg("-master.telemetry=false")
            .args(["-volume.max", "100", "-master.volumeSizeLimitMB", "64"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start weed");
        self.child = Some(child);
        let deadline = Deadline::after(Duration::from_secs(60));
        // Creating the bucket answers 200 the first time and 409 once it exists.
        while !matches!(self.put_bucket(), Some(200 | 409)) {
            deadline.next_blocking(format_args!(
                "SeaweedFS to serve S3; log:\n{}",
                std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
            ));
        }
    }

    /// `PUT /berth-test`'s status, if the S3 endpoint answers.
    fn put_bucket(&self) -> Option<u16> {
        use std::io::Read;
        let mut c = std::net::TcpStream::connect(("127.0.0.1", self.ports[3])).ok()?;
        c.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            c,
            "PUT /berth-test HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.ports[3]
        )
        .ok()?;
        let mut answer = String::new();
        c.read_to_string(&mut answer).ok()?;
        answer.split_whitespace().nth(1)?.parse().ok()
    }
}

impl Drop for SeaweedServer {
    fn drop(&mut self) {
        self.stop();
    }
}
