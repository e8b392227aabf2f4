//! Shared pieces of the benchmark programs: starting Berth and peers on loopback, SigV4-signed
//! requests, driving `wrk`, reading RSS. Included by each example with `#[path]`.
#![allow(dead_code)]

use berth_aws::sigv4;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KEY_ID: &str = "AKIABENCHKEY00000001";
pub const SECRET: &str = "benchSecretKey/0123456789abcdefghijklmnop";
pub const TD: &str = r#"{"family":"bench","containerDefinitions":[{"name":"web","image":"nginx:1.25","memory":128,"cpu":256,"essential":true,"portMappings":[{"containerPort":80,"hostPort":0,"protocol":"tcp"}],"environment":[{"name":"MODE","value":"bench"}]}]}"#;

pub struct Target {
    pub name: &'static str,
    pub port: u16,
    pub child: Child,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_berth(bin: &str, dir: &std::path::Path) -> Target {
    start_berth_env(bin, dir, &[])
}

/// `berth up` with extra environment (settings such as `BERTH_NO_LB`).
pub fn start_berth_env(bin: &str, dir: &std::path::Path, env: &[(&str, &str)]) -> Target {
    let mut child = Command::new(bin)
        .args(["up", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .envs(env.iter().copied())
        .env("BERTH_ROOT_ACCESS_KEY_ID", KEY_ID)
        .env("BERTH_ROOT_SECRET_ACCESS_KEY", SECRET)
        .env("BERTH_LOG", "warn,berth::serve=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start berth");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("ready at http://127.0.0.1:").nth(1) {
                let port: u16 = rest
                    .split(|c: char| !c.is_ascii_digit())
                    .next()
                    .unwrap()
                    .parse()
                    .unwrap();
                let _ = tx.send(port);
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("berth ready");
    Target {
        name: "berth",
        port,
        child,
    }
}

pub fn start_moto(bin: &str) -> Target {
    let port = free_port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Target {
        name: "moto",
        port,
        child,
    }
}

/// Headers of a SigV4-signed ECS request.
pub fn sign(port: u16, operation: &str, body: &str) -> Vec<(String, String)> {
    sign_for(
        port,
        "ecs",
        "AmazonEC2ContainerServiceV20141113",
        operation,
        body,
    )
}

/// Headers of a SigV4-signed awsJson request to `service`.
pub fn sign_for(
    port: u16,
    service: &str,
    target_prefix: &str,
    operation: &str,
    body: &str,
) -> Vec<(String, String)> {
    sign_as(
        (KEY_ID, SECRET),
        port,
        service,
        target_prefix,
        operation,
        body,
    )
}

/// Headers of an awsJson request to `service` signed with `key` (id, secret).
pub fn sign_as(
    key: (&str, &str),
    port: u16,
    service: &str,
    target_prefix: &str,
    operation: &str,
    body: &str,
) -> Vec<(String, String)> {
    let host = format!("127.0.0.1:{port}");
    let target = format!("{target_prefix}.{operation}");
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("host", host.as_str()),
        ("x-amz-target", target.as_str()),
    ];
    with_signature(key, service, &headers, body)
}

/// `headers` and the SigV4 headers of a `POST /` of `body` to `service`, signed with `key`.
fn with_signature(
    key: (&str, &str),
    service: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Vec<(String, String)> {
    with_signature_at(key, service, "/", headers, body)
}

/// As [`with_signature`], for a `POST` to `path`.
fn with_signature_at(
    key: (&str, &str),
    service: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Vec<(String, String)> {
    let key = sigv4::SigningKey {
        access_key_id: key.0,
        secret: key.1,
        region: "us-east-1",
        service,
    };
    let mut out: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    out.extend(sigv4::sign_request(
        &key,
        "POST",
        path,
        headers,
        body.as_bytes(),
        time::OffsetDateTime::now_utc(),
    ));
    out
}

/// One signed ECS/ECR request over a fresh connection; returns the status code and body.
pub fn call(port: u16, operation: &str, body: &str) -> (u16, String) {
    let (service, prefix) = if operation.starts_with("ecr:") {
        ("ecr", "AmazonEC2ContainerRegistry_V20150921")
    } else {
        ("ecs", "AmazonEC2ContainerServiceV20141113")
    };
    let operation = operation.trim_start_matches("ecr:");
    let signed = sign_for(port, service, prefix, operation, body);
    exchange(port, &signed, body)
}

/// One signed awsQuery call (`Action`, `Version` and `params`) to `service` as root over a
/// fresh connection: the status code and body.
pub fn query_call(port: u16, service: &str, params: &[(&str, &str)]) -> (u16, String) {
    let body: String = params
        .iter()
        .map(|(k, v)| format!("{k}={}", sigv4::uri_encode(v, true)))
        .collect::<Vec<_>>()
        .join("&");
    let signed = sign_query(port, service, &body);
    exchange(port, &signed, &body)
}

/// The root-signed headers of an awsQuery `POST /` of `body` (form-encoded) to `service`.
pub fn sign_query(port: u16, service: &str, body: &str) -> Vec<(String, String)> {
    let host = format!("127.0.0.1:{port}");
    let headers = [
        ("content-type", "application/x-www-form-urlencoded"),
        ("host", host.as_str()),
    ];
    with_signature((KEY_ID, SECRET), service, &headers, body)
}

/// Activates Berth's background task `name` and waits for the pass: its status (JSON).
pub fn activate(port: u16, name: &str) -> String {
    let host = format!("127.0.0.1:{port}");
    let path = format!("/_berth/background/{name}");
    let headers = [
        ("content-type", "application/json"),
        ("host", host.as_str()),
    ];
    let signed = with_signature_at((KEY_ID, SECRET), "ecs", &path, &headers, "{}");
    let (status, body) = exchange_at(port, &path, &signed, "{}");
    assert_eq!(status, 200, "activating {name}: {body}");
    body
}

/// Sends one `POST /` with `headers` and `body` over a fresh connection.
fn exchange(port: u16, headers: &[(String, String)], body: &str) -> (u16, String) {
    exchange_at(port, "/", headers, body)
}

/// Sends one `POST {path}` with `headers` and `body` over a fresh connection.
pub fn exchange_at(
    port: u16,
    path: &str,
    headers: &[(String, String)],
    body: &str,
) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

pub struct WrkResult {
    pub rps: f64,
    pub p99_ms: f64,
    pub non2xx: u64,
    /// Requests completed in the run.
    pub requests: u64,
}

pub fn lua_quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn wrk(
    port: u16,
    operation: &str,
    body: &str,
    seconds: u32,
    dir: &std::path::Path,
) -> WrkResult {
    wrk_as((KEY_ID, SECRET), port, operation, body, seconds, dir)
}

/// `wrk` replaying one ECS request signed with `key`.
pub fn wrk_as(
    key: (&str, &str),
    port: u16,
    operation: &str,
    body: &str,
    seconds: u32,
    dir: &std::path::Path,
) -> WrkResult {
    let signed = sign_as(
        key,
        port,
        "ecs",
        "AmazonEC2ContainerServiceV20141113",
        operation,
        body,
    );
    let script = dir.join(format!("{operation}-{port}-{}.lua", key.0));
    wrk_signed(port, &signed, body, seconds, 32, &script)
}

/// `wrk` replaying one signed `POST /` (`headers` as signed) over `connections` connections
/// for `seconds`; `script` is where its Lua goes.
pub fn wrk_signed(
    port: u16,
    headers: &[(String, String)],
    body: &str,
    seconds: u32,
    connections: u32,
    script: &std::path::Path,
) -> WrkResult {
    let mut lua = format!("wrk.method = \"POST\"\nwrk.body = {}\n", lua_quote(body));
    for (k, v) in headers {
        if k != "host" {
            lua.push_str(&format!(
                "wrk.headers[{}] = {}\n",
                lua_quote(k),
                lua_quote(v)
            ));
        }
    }
    std::fs::write(script, lua).unwrap();
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            // A slow peer's answers still count (wrk's default gives up after 2 s).
            "--timeout",
            "30s",
            "--latency",
            "-s",
        ])
        .arg(script)
        .arg(format!("http://127.0.0.1:{port}/"))
        .output()
        .expect("run wrk");
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Requests/s, p99 and non-2xx count from `wrk --latency` output.
pub fn parse_wrk(text: &str) -> WrkResult {
    let field = |prefix: &str| -> Option<&str> {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
    };
    let rps = field("Requests/sec:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let p99 = field("99%").map(parse_latency).unwrap_or(f64::NAN);
    let non2xx = text
        .lines()
        .find(|l| l.contains("Non-2xx or 3xx responses:"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    WrkResult {
        rps,
        p99_ms: p99,
        non2xx,
        requests,
    }
}

pub fn parse_latency(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let n: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        _ => f64::NAN,
    }
}

/// The median of `v` (the upper one of an even count).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// CPU time a process used so far (user + system, every thread), in microseconds.
pub fn cpu_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name (which may hold spaces) in parentheses.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of proc_pid_stat(5), the 12th and 13th after the
    // name.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    (ticks(11) + ticks(12)) * 1_000_000 / hz
}

pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Imports `image` into the local engine: a root of busybox (`/bin/busybox` of busybox-static)
/// and its `applets`, built under `dir`.
pub fn import_busybox(dir: &std::path::Path, image: &str, applets: &[&str]) {
    let root = dir.join(format!("root-{}", image.replace(['/', ':'], "-")));
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).expect("/bin/busybox (busybox-static)");
    for applet in applets {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["-c", "."])
        .output()
        .unwrap();
    let mut import = Command::new("docker")
        .args(["import", "-", image])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(import.wait().unwrap().success(), "docker import");
}

/// Starts `berth agent` for cluster `bench` (which must exist) against `endpoint_port`.
pub fn spawn_bench_agent(bin: &str, endpoint_port: u16, state_dir: &std::path::Path) -> Child {
    Command::new(bin)
        .args([
            "agent",
            "--endpoint",
            &format!("http://127.0.0.1:{endpoint_port}"),
            "--cluster",
            "bench",
            "--state-dir",
        ])
        .arg(state_dir)
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("BERTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start berth agent")
}

/// Waits (30 s at most) until the server at `port` lists a container instance of `bench`.
pub fn wait_agent_registered(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !call(port, "ListContainerInstances", r#"{"cluster":"bench"}"#)
        .1
        .contains("container-instance/")
    {
        assert!(Instant::now() < deadline, "the agent did not register");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sha256:<hex>` of `b`.
pub fn digest(b: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(b)))
}

/// Pushes `content` as a blob of `repo` (one POST, one PUT) to the registry at `port`, with
/// `auth` as its `Authorization` (none for a registry without); its digest.
pub async fn push_blob(
    client: &reqwest::Client,
    port: u16,
    auth: Option<&str>,
    repo: &str,
    content: Vec<u8>,
) -> String {
    let d = digest(&content);
    let authorized = |r: reqwest::RequestBuilder| match auth {
        Some(a) => r.header("authorization", a),
        None => r,
    };
    let r = authorized(client.post(format!("http://127.0.0.1:{port}/v2/{repo}/blobs/uploads/")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "upload start on {port}");
    // Berth answers a path, CNCF distribution a whole URL (with a query of its own).
    let loc = r.headers()["location"].to_str().unwrap();
    let url = if loc.starts_with("http") {
        loc.to_string()
    } else {
        format!("http://127.0.0.1:{port}{loc}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let r = authorized(client.put(format!("{url}{sep}digest={d}")))
        .body(content)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "upload finish on {port}");
    d
}

/// An ECR authorization token of the Berth at `port`, as a registry `Authorization` value.
pub fn registry_auth(port: u16) -> String {
    let (status, body) = call(port, "ecr:GetAuthorizationToken", "{}");
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = v["authorizationData"][0]["authorizationToken"]
        .as_str()
        .unwrap();
    format!("Basic {token}")
}
