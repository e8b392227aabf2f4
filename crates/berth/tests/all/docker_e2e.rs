//! Real clients against the registry: `docker login/push/pull/run` and `skopeo copy` of
//! multi-layer images and a multi-arch index, both directions. Needs a running Docker Engine,
//! `skopeo` and busybox-static (`scripts/test.sh` installs and starts them); fails loudly
//! without them.

use crate::registry::{OCI_INDEX, OCI_MANIFEST, Reg, digest};
use crate::start;
use berth_testkit::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, TestServer, require_program};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

pub(crate) const HOW: &str =
    "scripts/test.sh installs docker.io, skopeo and busybox-static and starts dockerd";

pub(crate) fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `docker` with its own config directory (logins stay inside the test).
pub(crate) fn docker(config: &Path) -> Command {
    let mut c = Command::new(require_program("docker", HOW));
    c.env("DOCKER_CONFIG", config);
    c
}

pub(crate) fn require_docker_engine() {
    let out = Command::new(require_program("docker", HOW))
        .arg("info")
        .output()
        .unwrap();
    assert!(out.status.success(), "no Docker Engine is running: {HOW}");
}

/// A busybox-static image imported into the local engine as `reference`.
pub(crate) fn import_busybox(config: &Path, reference: &str, page: &str) {
    import_busybox_into(docker(config), reference, page)
}

/// A busybox-static image imported as `reference` by the `docker` command given.
fn import_busybox_into(mut docker: Command, reference: &str, page: &str) {
    let busybox = Path::new("/bin/busybox");
    assert!(busybox.exists(), "/bin/busybox is missing: {HOW}");
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::create_dir_all(root.path().join("www")).unwrap();
    std::fs::copy(busybox, root.path().join("bin/busybox")).unwrap();
    for applet in [
        "sh", "cat", "echo", "httpd", "sleep", "wget", "grep", "hostname",
    ] {
        std::os::unix::fs::symlink("busybox", root.path().join("bin").join(applet)).unwrap();
    }
    std::fs::write(root.path().join("www/index.html"), page).unwrap();
    // `/cgi-bin/host` answers the container's hostname (which task served a request).
    std::fs::create_dir_all(root.path().join("www/cgi-bin")).unwrap();
    let script = root.path().join("www/cgi-bin/host");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'Content-Type: text/plain'\necho\nhostname\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let tar = run(Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .args(["-c", "."]));
    let mut import = docker
        .args([
            "import",
            "-c",
            r#"CMD ["/bin/httpd","-f","-p","8080","-h","/www"]"#,
            "-",
            reference,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    import.stdin.take().unwrap().write_all(&tar.stdout).unwrap();
    assert!(import.wait().unwrap().success(), "docker import");
}

fn aws_login_password(server: &TestServer) -> String {
    let out = run(Command::new(require_program("aws", HOW))
        .args([
            "ecr",
            "get-login-password",
            "--endpoint-url",
            &server.endpoint,
            "--region",
            REGION,
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env_remove("AWS_PROFILE"));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn docker_login_push_pull_run() {
    require_docker_engine();
    let server = start();
    server
        .ecr()
        .create_repository()
        .repository_name("e2e/busybox")
        .send()
        .await
        .unwrap();
    let config = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", server.port);
    let image = format!("{host}/e2e/busybox:1");

    // Without login: refused.
    import_busybox(config.path(), &image, "hello from berth\n");
    let out = docker(config.path())
        .args(["push", &image])
        .output()
        .unwrap();
    assert!(!out.status.success(), "push without login must fail");

    // `aws ecr get-login-password | docker login --password-stdin`.
    let password = aws_login_password(&server);
    let mut login = docker(config.path())
        .args(["login", "--username", "AWS", "--password-stdin", &host])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    login
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = login.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"),
        "{out:?}"
    );

    run(docker(config.path()).args(["push", &image]));
    run(docker(config.path()).args(["rmi", &image]));
    run(docker(config.path()).args(["pull", &image]));
    let out = run(docker(config.path()).args([
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "cat",
        "/www/index.html",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello from berth\n");

    // `docker login -u AWS -p <password>` works too.
    let (_, pw) = server.registry_login().await;
    run(docker(config.path()).args(["login", "-u", "AWS", "-p", &pw, &host]));
    let details = server
        .ecr()
        .describe_images()
        .repository_name("e2e/busybox")
        .send()
        .await
        .unwrap();
    assert_eq!(details.image_details()[0].image_tags(), ["1"]);
    run(docker(config.path()).args(["rmi", &image]));
}

/// Writes a tar.gz layer holding `name` with `content`; returns its bytes.
fn layer(name: &str, content: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(name), content).unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .args(["-czf", "-", name]))
    .stdout
}

/// An OCI image layout holding, under tag `t`, either one image (one platform) or an index
/// of one image per platform. Returns the digest of what `t` names.
fn oci_layout(dir: &Path, platforms: &[&str], layers_per_image: usize) -> String {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |bytes: &[u8]| {
        let d = digest(bytes);
        std::fs::write(blobs.join(&d[7..]), bytes).unwrap();
        d
    };
    let mut manifests = Vec::new();
    for arch in platforms {
        let mut descs = Vec::new();
        for i in 0..layers_per_image {
            let l = layer(&format!("file-{arch}-{i}"), &format!("{arch} layer {i}\n"));
            descs.push(json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(&l), "size": l.len()}));
        }
        let config = serde_json::to_vec(&json!({"architecture": arch, "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []}}))
        .unwrap();
        let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(&config), "size": config.len()},
            "layers": descs})).unwrap();
        manifests.push((arch, put(&m), m.len()));
    }
    let top = if manifests.len() == 1 {
        let (_, d, size) = &manifests[0];
        json!({"mediaType": OCI_MANIFEST, "digest": d, "size": size, "annotations": {"org.opencontainers.image.ref.name": "t"}})
    } else {
        let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests":
            manifests.iter().map(|(arch, d, size)| json!({"mediaType": OCI_MANIFEST, "digest": d, "size": size,
                "platform": {"architecture": arch, "os": "linux"}})).collect::<Vec<_>>()})).unwrap();
        json!({"mediaType": OCI_INDEX, "digest": put(&index), "size": index.len(), "annotations": {"org.opencontainers.image.ref.name": "t"}})
    };
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    std::fs::write(
        dir.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [top.clone()]}).to_string(),
    )
    .unwrap();
    top["digest"].as_str().unwrap().to_string()
}

fn skopeo() -> Command {
    Command::new(require_program("skopeo", HOW))
}

#[tokio::test]
async fn skopeo_copies_multi_layer_and_multi_arch_images_both_ways() {
    let server = start();
    let ecr = server.ecr();
    ecr.create_repository()
        .repository_name("sk/multi")
        .send()
        .await
        .unwrap();
    let (_, pw) = server.registry_login().await;
    let creds = format!("AWS:{pw}");
    let host = format!("127.0.0.1:{}", server.port);
    let work = tempfile::tempdir().unwrap();

    for (tag, platforms, layers) in [
        ("layers", vec!["amd64"], 3),
        ("multiarch", vec!["amd64", "arm64"], 2),
    ] {
        let src = work.path().join(format!("src-{tag}"));
        let expected = oci_layout(&src, &platforms, layers);
        let dest = format!("docker://{host}/sk/multi:{tag}");
        run(skopeo()
            .args([
                "copy",
                "--all",
                "--preserve-digests",
                "--dest-tls-verify=false",
                "--dest-creds",
                &creds,
            ])
            .arg(format!("oci:{}:t", src.display()))
            .arg(&dest));
        let raw = run(skopeo().args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            "--creds",
            &creds,
            &dest,
        ]));
        assert_eq!(digest(&raw.stdout), expected, "{tag}: stored byte for byte");
        // And back into a fresh layout.
        let back = work.path().join(format!("back-{tag}"));
        run(skopeo()
            .args([
                "copy",
                "--all",
                "--preserve-digests",
                "--src-tls-verify=false",
                "--src-creds",
                &creds,
            ])
            .arg(&dest)
            .arg(format!("oci:{}:t", back.display())));
        let index: Value =
            serde_json::from_slice(&std::fs::read(back.join("index.json")).unwrap()).unwrap();
        assert_eq!(
            index["manifests"][0]["digest"],
            expected.as_str(),
            "{tag}: same digest after the round trip"
        );
    }
    let reg = Reg::login(&server).await;
    let r = reg
        .req(reqwest::Method::GET, "/v2/sk/multi/manifests/multiarch")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], OCI_INDEX);
    let details = ecr
        .describe_images()
        .repository_name("sk/multi")
        .send()
        .await
        .unwrap();
    assert_eq!(
        details.image_details().len(),
        4,
        "two single images, the index and its second platform"
    );

    // The Docker Engine's image goes through skopeo too.
    require_docker_engine();
    let config = tempfile::tempdir().unwrap();
    let local = format!("berth-e2e-skopeo:{}", server.port);
    import_busybox(config.path(), &local, "via skopeo\n");
    ecr.create_repository()
        .repository_name("sk/daemon")
        .send()
        .await
        .unwrap();
    let dest = format!("docker://{host}/sk/daemon:1");
    run(skopeo()
        .args(["copy", "--dest-tls-verify=false", "--dest-creds", &creds])
        .arg(format!("docker-daemon:{local}"))
        .arg(&dest));
    run(docker(config.path()).args(["rmi", &local]));
    run(skopeo()
        .args(["copy", "--src-tls-verify=false", "--src-creds", &creds])
        .arg(&dest)
        .arg(format!("docker-daemon:{local}")));
    let out = run(docker(config.path()).args([
        "run",
        "--rm",
        "--network",
        "none",
        &local,
        "cat",
        "/www/index.html",
    ]));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via skopeo\n");
    run(docker(config.path()).args(["rmi", &local]));
}

/// A server whose service scheduler passes every 200 ms and counts a task healthy after 1 s.
pub(crate) fn service_server() -> TestServer {
    service_server_with(&[])
}

/// [`service_server`] with `extra` arguments.
pub(crate) fn service_server_with(extra: &[&str]) -> TestServer {
    let mut args: Vec<String> = [
        "--scheduler-interval-ms",
        "200",
        "--task-healthy-after",
        "1",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    args.extend(extra.iter().map(|a| a.to_string()));
    crate::start_with(berth_testkit::Options {
        args,
        ..Default::default()
    })
}

/// A `berth agent` process, killed when dropped.
pub(crate) struct AgentProcess {
    child: std::process::Child,
    log: std::path::PathBuf,
    state: std::path::PathBuf,
}

impl AgentProcess {
    pub(crate) fn start(server: &TestServer, state: &Path) -> AgentProcess {
        Self::spawn(server, state, &[])
    }

    /// An agent, once its instance has registered in cluster `e2e`.
    pub(crate) async fn start_registered(server: &TestServer, state: &Path) -> AgentProcess {
        let agent = Self::start(server, state);
        let ecs = server.ecs();
        berth_testkit::until(
            std::time::Duration::from_secs(30),
            "the agent to register",
            || async { !instances(&ecs, "e2e").await.is_empty() },
        )
        .await;
        agent
    }

    fn start_in_zone(server: &TestServer, state: &Path, zone: &str) -> AgentProcess {
        Self::spawn(server, state, &["--availability-zone", zone])
    }

    /// `berth agent` for cluster `e2e` with `extra` arguments.
    pub(crate) fn spawn(server: &TestServer, state: &Path, extra: &[&str]) -> AgentProcess {
        Self::spawn_at(&server.endpoint, state, extra)
    }

    /// `berth agent --endpoint endpoints` (one URL, or several comma-separated) for cluster
    /// `e2e` with `extra` arguments.
    pub(crate) fn spawn_at(endpoints: &str, state: &Path, extra: &[&str]) -> AgentProcess {
        let log = state.join("agent.log");
        std::fs::create_dir_all(state).unwrap();
        // The agent signs as a node user, limited to what a node does.
        let key = crate::node_identity(endpoints, crate::NodeRole::Agent);
        let child = Command::new(crate::BIN)
            .args([
                "agent",
                "--endpoint",
                endpoints,
                "--cluster",
                "e2e",
                "--poll-interval",
                "0.2",
                "--state-dir",
            ])
            .arg(state)
            .args(extra)
            .env("AWS_ACCESS_KEY_ID", key.0)
            .env("AWS_SECRET_ACCESS_KEY", key.1)
            .env("BERTH_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        AgentProcess {
            child,
            log,
            state: state.to_path_buf(),
        }
    }

    /// `kill -9` (leaves its containers; dropping also removes them).
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        self.kill();
        // Remove whatever containers this agent's instance left on the engine.
        if let Ok(instance) = std::fs::read_to_string(self.state.join("instance-arn")) {
            let filter = format!("label=com.berth.container-instance={}", instance.trim());
            if let Ok(out) = Command::new("docker")
                .args(["ps", "-aq", "--filter", &filter])
                .output()
            {
                for id in String::from_utf8_lossy(&out.stdout).lines() {
                    let _ = Command::new("docker").args(["rm", "-f", id]).output();
                }
            }
            // And the 169.254.170.2 route a killed agent leaves behind.
            let id = instance.trim().rsplit('/').next().unwrap_or_default();
            let tag = format!("--comment \"berth-agent:{id}\"");
            if let Ok(out) = Command::new("iptables")
                .args(["-w", "-t", "nat", "-S", "PREROUTING"])
                .output()
            {
                for rule in String::from_utf8_lossy(&out.stdout).lines() {
                    if let Some(spec) = rule.strip_prefix("-A PREROUTING ")
                        && rule.contains(&tag)
                    {
                        let _ = Command::new("iptables")
                            .args(["-w", "-t", "nat", "-D", "PREROUTING"])
                            .args(spec.split_whitespace().map(|t| t.trim_matches('"')))
                            .output();
                    }
                }
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "---- agent log ----\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
}

/// Cluster `e2e`, and repository `repo` with a busybox image per `(tag, page)` pushed through
/// `docker` (and removed from the engine, so tasks pull it); returns the image references.
pub(crate) async fn cluster_and_images(
    server: &TestServer,
    repo: &str,
    tags: &[(&str, &str)],
) -> Vec<String> {
    server
        .ecs()
        .create_cluster()
        .cluster_name("e2e")
        .send()
        .await
        .unwrap();
    server
        .ecr()
        .create_repository()
        .repository_name(repo)
        .send()
        .await
        .unwrap();
    let config = tempfile::tempdir().unwrap();
    let host = format!("127.0.0.1:{}", server.port);
    let (_, pw) = server.registry_login().await;
    run(docker(config.path()).args(["login", "-u", "AWS", "-p", &pw, &host]));
    let mut images = Vec::new();
    for (tag, page) in tags {
        let image = format!("{host}/{repo}:{tag}");
        import_busybox(config.path(), &image, page);
        run(docker(config.path()).args(["push", &image]));
        run(docker(config.path()).args(["rmi", &image]));
        images.push(image);
    }
    images
}

/// The container instances of `cluster` (none if it does not exist yet).
pub(crate) async fn instances(
    ecs: &berth_testkit::aws_sdk_ecs::Client,
    cluster: &str,
) -> Vec<String> {
    match ecs.list_container_instances().cluster(cluster).send().await {
        Ok(l) => l.container_instance_arns().to_vec(),
        Err(_) => Vec::new(),
    }
}

/// Polls DescribeTasks until `done` holds for the task (bounded).
pub(crate) async fn wait_task(
    ecs: &berth_testkit::aws_sdk_ecs::Client,
    cluster: &str,
    task: &str,
    what: &str,
    done: impl Fn(&berth_testkit::aws_sdk_ecs::types::Task) -> bool,
) -> berth_testkit::aws_sdk_ecs::types::Task {
    let deadline = berth_testkit::Deadline::after(std::time::Duration::from_secs(60));
    loop {
        let d = ecs
            .describe_tasks()
            .cluster(cluster)
            .tasks(task)
            .send()
            .await
            .unwrap();
        let t = d.tasks()[0].clone();
        if done(&t) {
            return t;
        }
        deadline
            .next(format_args!("the task to reach {what}: {t:?}"))
            .await;
    }
}

/// Runs one task of `family` on cluster `e2e`; its ARN.
async fn run_one(ecs: &berth_testkit::aws_sdk_ecs::Client, family: &str) -> String {
    ecs.run_task()
        .cluster("e2e")
        .task_definition(family)
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .task_arn()
        .unwrap()
        .to_string()
}

/// Waits until the task on cluster `e2e` is RUNNING.
async fn running(
    ecs: &berth_testkit::aws_sdk_ecs::Client,
    task: &str,
) -> berth_testkit::aws_sdk_ecs::types::Task {
    wait_task(ecs, "e2e", task, "RUNNING", |t| {
        t.last_status() == Some("RUNNING")
    })
    .await
}

/// StopTask on cluster `e2e`, then waits until the task is STOPPED.
async fn stop(
    ecs: &berth_testkit::aws_sdk_ecs::Client,
    task: &str,
) -> berth_testkit::aws_sdk_ecs::types::Task {
    ecs.stop_task()
        .cluster("e2e")
        .task(task)
        .send()
        .await
        .unwrap();
    stopped(ecs, task).await
}

/// The body of a GET.
async fn page(url: String) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// Waits until the task on cluster `e2e` is STOPPED.
async fn stopped(
    ecs: &berth_testkit::aws_sdk_ecs::Client,
    task: &str,
) -> berth_testkit::aws_sdk_ecs::types::Task {
    wait_task(ecs, "e2e", task, "STOPPED", |t| {
        t.last_status() == Some("STOPPED")
    })
    .await
}

#[tokio::test]
async fn agent_runs_tasks_on_docker() {
    use berth_testkit::aws_sdk_ecs::types::{ContainerDefinition, PortMapping};
    require_docker_engine();
    let server = start();
    let ecs = server.ecs();
    let image = cluster_and_images(&server, "e2e/web", &[("1", "served by a berth task\n")])
        .await
        .remove(0);
    let host = format!("127.0.0.1:{}", server.port);

    let state = tempfile::tempdir().unwrap();
    let mut agent = AgentProcess::start_registered(&server, state.path()).await;
    let instance = instances(&ecs, "e2e").await.remove(0);

    let web = ContainerDefinition::builder()
        .name("web")
        .image(&image)
        .memory(64)
        .command("/bin/httpd")
        .command("-f")
        .command("-p")
        .command("8080")
        .command("-h")
        .command("/www")
        .port_mappings(
            PortMapping::builder()
                .container_port(8080)
                .host_port(0)
                .build(),
        )
        .stop_timeout(2)
        .health_check(
            berth_testkit::aws_sdk_ecs::types::HealthCheck::builder()
                .command("CMD-SHELL")
                .command("cat /www/index.html")
                .interval(5)
                .retries(2)
                .build()
                .unwrap(),
        )
        .build();
    ecs.register_task_definition()
        .family("web")
        .container_definitions(web)
        .send()
        .await
        .unwrap();
    let run_out = ecs
        .run_task()
        .cluster("e2e")
        .task_definition("web")
        .send()
        .await
        .unwrap();
    let task = run_out.tasks()[0].task_arn().unwrap().to_string();
    let t = running(&ecs, &task).await;
    let port = t.containers()[0].network_bindings()[0].host_port().unwrap();
    assert_eq!(
        page(format!("http://127.0.0.1:{port}/")).await,
        "served by a berth task\n"
    );
    assert!(t.pull_started_at().is_some() && t.started_at().is_some());
    // The container's health check (run by Docker) reaches the task's health.
    let t = wait_task(&ecs, "e2e", &task, "HEALTHY", |t| {
        t.health_status().map(|h| h.as_str()) == Some("HEALTHY")
    })
    .await;
    assert_eq!(
        t.containers()[0].health_status().map(|h| h.as_str()),
        Some("HEALTHY")
    );

    // awsvpc: the task gets its own address on Berth's task network, shown as an ENI.
    let vpc = ContainerDefinition::builder()
        .name("web")
        .image(&image)
        .memory(64)
        .command("/bin/httpd")
        .command("-f")
        .command("-p")
        .command("8080")
        .command("-h")
        .command("/www")
        .port_mappings(PortMapping::builder().container_port(8080).build())
        .stop_timeout(1)
        .build();
    ecs.register_task_definition()
        .family("vpc")
        .network_mode(berth_testkit::aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .container_definitions(vpc)
        .send()
        .await
        .unwrap();
    let vpc_task = run_one(&ecs, "vpc").await;
    let t = wait_task(&ecs, "e2e", &vpc_task, "RUNNING with an address", |t| {
        t.last_status() == Some("RUNNING") && !t.attachments().is_empty()
    })
    .await;
    let ip = t.attachments()[0]
        .details()
        .iter()
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .unwrap()
        .to_string();
    assert_eq!(
        t.containers()[0].network_interfaces()[0].private_ipv4_address(),
        Some(ip.as_str())
    );
    assert_eq!(
        page(format!("http://{ip}:8080/")).await,
        "served by a berth task\n"
    );
    stop(&ecs, &vpc_task).await;

    // An agent restart adopts the running container instead of starting another.
    agent.kill();
    let mut agent = AgentProcess::start(&server, state.path());
    // A second task reaching RUNNING proves the restarted agent has made reconcile passes.
    let second = run_one(&ecs, "web").await;
    running(&ecs, &second).await;
    let l = ecs
        .list_container_instances()
        .cluster("e2e")
        .send()
        .await
        .unwrap();
    assert_eq!(
        l.container_instance_arns(),
        std::slice::from_ref(&instance),
        "re-registered as the same instance"
    );
    let out = run(Command::new("docker").args([
        "ps",
        "-q",
        "--filter",
        &format!("label=com.amazonaws.ecs.task-arn={task}"),
    ]));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "no duplicate container"
    );
    // The container carries the ECS agent's labels.
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let labels: Value = serde_json::from_slice(
        &run(Command::new("docker").args(["inspect", "--format", "{{json .Config.Labels}}", &id]))
            .stdout,
    )
    .unwrap();
    assert_eq!(labels["com.amazonaws.ecs.task-arn"], task.as_str());
    assert_eq!(labels["com.amazonaws.ecs.cluster"], "e2e");
    assert_eq!(labels["com.amazonaws.ecs.container-name"], "web");
    assert_eq!(labels["com.amazonaws.ecs.task-definition-family"], "web");
    assert_eq!(labels["com.amazonaws.ecs.task-definition-version"], "1");
    assert_eq!(
        page(format!("http://127.0.0.1:{port}/")).await,
        "served by a berth task\n"
    );
    ecs.stop_task()
        .cluster("e2e")
        .task(&second)
        .send()
        .await
        .unwrap();

    // StopTask: SIGTERM, then SIGKILL after stopTimeout (busybox httpd ignores SIGTERM).
    let started = std::time::Instant::now();
    let t = stop(&ecs, &task).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    assert_eq!(t.stop_code().map(|c| c.as_str()), Some("UserInitiated"));
    assert_eq!(t.containers()[0].exit_code(), Some(137));

    // An essential container that exits 1 stops its task with that exit code.
    let failing = ContainerDefinition::builder()
        .name("job")
        .image(&image)
        .memory(32)
        .command("/bin/sh")
        .command("-c")
        .command("exit 1")
        .build();
    ecs.register_task_definition()
        .family("job")
        .container_definitions(failing)
        .send()
        .await
        .unwrap();
    let task = run_one(&ecs, "job").await;
    let t = stopped(&ecs, &task).await;
    assert_eq!(
        t.stop_code().map(|c| c.as_str()),
        Some("EssentialContainerExited")
    );
    assert_eq!(t.containers()[0].exit_code(), Some(1));

    // Host volumes, mount points and ulimits reach the container.
    use berth_testkit::aws_sdk_ecs::types::{
        HostVolumeProperties, MountPoint, Ulimit, UlimitName, Volume,
    };
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("in"), "hello").unwrap();
    let check = ContainerDefinition::builder()
        .name("check")
        .image(&image)
        .memory(32)
        .command("/bin/sh")
        .command("-c")
        .command(r#"test "$(cat /data/in)" = hello && test "$(ulimit -n)" = 1234"#)
        .mount_points(
            MountPoint::builder()
                .source_volume("data")
                .container_path("/data")
                .read_only(true)
                .build(),
        )
        .ulimits(
            Ulimit::builder()
                .name(UlimitName::Nofile)
                .soft_limit(1234)
                .hard_limit(1234)
                .build()
                .unwrap(),
        )
        .build();
    ecs.register_task_definition()
        .family("check")
        .volumes(
            Volume::builder()
                .name("data")
                .host(
                    HostVolumeProperties::builder()
                        .source_path(data.path().display().to_string())
                        .build(),
                )
                .build(),
        )
        .container_definitions(check)
        .send()
        .await
        .unwrap();
    let task = run_one(&ecs, "check").await;
    let t = stopped(&ecs, &task).await;
    assert_eq!(
        t.containers()[0].exit_code(),
        Some(0),
        "the volume and the ulimit were seen"
    );

    // dependsOn: "main" starts only once the non-essential "init" has exited 0.
    use berth_testkit::aws_sdk_ecs::types::{ContainerCondition, ContainerDependency};
    let ordered = |name: &str, script: &str| {
        ContainerDefinition::builder()
            .name(name)
            .image(&image)
            .memory(32)
            .command("/bin/sh")
            .command("-c")
            .command(script)
            .mount_points(
                MountPoint::builder()
                    .source_volume("data")
                    .container_path("/data")
                    .build(),
            )
    };
    ecs.register_task_definition()
        .family("ordered")
        .volumes(
            Volume::builder()
                .name("data")
                .host(
                    HostVolumeProperties::builder()
                        .source_path(data.path().display().to_string())
                        .build(),
                )
                .build(),
        )
        .container_definitions(
            ordered("main", r#"test "$(cat /data/out)" = done"#)
                .depends_on(
                    ContainerDependency::builder()
                        .container_name("init")
                        .condition(ContainerCondition::Success)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .container_definitions(
            ordered("init", "sleep 1; echo done > /data/out")
                .essential(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let task = run_one(&ecs, "ordered").await;
    let t = stopped(&ecs, &task).await;
    let exit = |name: &str| {
        t.containers()
            .iter()
            .find(|c| c.name() == Some(name))
            .and_then(|c| c.exit_code())
    };
    assert_eq!(
        (exit("init"), exit("main")),
        (Some(0), Some(0)),
        "main ran after init: {t:?}"
    );

    // The task metadata endpoint v4 answers inside the container, and only there.
    let probe = ContainerDefinition::builder()
        .name("probe")
        .image(&image)
        .memory(32)
        .command("/bin/sh")
        .command("-c")
        .command(
            r#"m="$ECS_CONTAINER_METADATA_URI_V4"
            wget -qO- "$m" | grep -q '"Name":"probe"' &&
            wget -qO- "$m/task" | grep -q '"Family":"meta"' &&
            wget -qO- "$m/stats" | grep -q memory_stats &&
            wget -qO- "$m/task/stats" | grep -q memory_stats &&
            sleep 30"#,
        )
        .stop_timeout(1)
        .build();
    ecs.register_task_definition()
        .family("meta")
        .container_definitions(probe)
        .send()
        .await
        .unwrap();
    let task = run_one(&ecs, "meta").await;
    running(&ecs, &task).await;
    let port = std::fs::read_to_string(state.path().join("metadata-port")).unwrap();
    // It listens where containers reach it (loopback, the bridge's host address), never on
    // every address.
    let listening = listening_addresses(port.trim().parse().unwrap());
    assert!(
        !listening.is_empty() && !listening.contains(&std::net::Ipv4Addr::UNSPECIFIED),
        "{listening:?}"
    );
    assert!(
        listening.contains(&std::net::Ipv4Addr::LOCALHOST),
        "{listening:?}"
    );
    let id = task.rsplit('/').next().unwrap();
    let outsider = reqwest::get(format!("http://127.0.0.1:{}/v4/{id}/probe", port.trim()))
        .await
        .unwrap();
    assert_eq!(outsider.status(), 403, "another process may not read it");
    // Reaching `sleep` means every query succeeded; the container then runs until stopped.
    let t = stop(&ecs, &task).await;
    assert_eq!(
        t.stop_code().map(|c| c.as_str()),
        Some("UserInitiated"),
        "the metadata queries succeeded: {t:?}"
    );
    assert!(
        matches!(t.containers()[0].exit_code(), Some(137 | 143)),
        "stopped in its sleep, not failed: {t:?}"
    );

    // An image that does not exist: the task stops with CannotPullContainerError.
    let missing = ContainerDefinition::builder()
        .name("x")
        .image(format!("{host}/e2e/web:missing"))
        .memory(32)
        .build();
    ecs.register_task_definition()
        .family("missing")
        .container_definitions(missing)
        .send()
        .await
        .unwrap();
    let task = run_one(&ecs, "missing").await;
    let t = stopped(&ecs, &task).await;
    assert!(
        t.stopped_reason()
            .unwrap_or("")
            .starts_with("CannotPullContainerError"),
        "{t:?}"
    );
    assert_eq!(t.stop_code().map(|c| c.as_str()), Some("TaskFailedToStart"));
    agent.kill();
}

/// The IPv4 addresses with a listening TCP socket on `port` (from /proc/net/tcp).
fn listening_addresses(port: u16) -> Vec<std::net::Ipv4Addr> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            let (address, p) = fields.get(1)?.split_once(':')?;
            let listening = fields.get(3) == Some(&"0A");
            (listening && u16::from_str_radix(p, 16).ok()? == port).then(|| {
                // The kernel prints the address in host byte order.
                std::net::Ipv4Addr::from(u32::from_be(u32::from_str_radix(address, 16).unwrap()))
            })
        })
        .collect()
}

#[tokio::test]
async fn berth_up_runs_a_local_agent_on_the_local_engine() {
    use berth_testkit::aws_sdk_ecs::types::ContainerDefinition;
    require_docker_engine();
    let server = crate::start_with(berth_testkit::Options {
        local_agent: true,
        ..Default::default()
    });
    let ecs = server.ecs();
    berth_testkit::until(
        std::time::Duration::from_secs(30),
        "the local agent to register",
        || async { !instances(&ecs, "default").await.is_empty() },
    )
    .await;
    let instance = instances(&ecs, "default").await.remove(0);
    let d = ecs
        .describe_container_instances()
        .container_instances(&instance)
        .send()
        .await
        .unwrap();
    let attrs = d.container_instances()[0].attributes();
    assert!(
        attrs
            .iter()
            .any(|a| a.name() == "berth.capacity" && a.value() == Some("managed"))
    );

    // It runs a task from an image the engine already has.
    let config = tempfile::tempdir().unwrap();
    let image = format!("berth-e2e-local:{}", server.port);
    import_busybox(config.path(), &image, "local\n");
    let job = ContainerDefinition::builder()
        .name("job")
        .image(&image)
        .memory(32)
        .command("/bin/sh")
        .command("-c")
        .command("exit 7")
        .build();
    ecs.register_task_definition()
        .family("local")
        .container_definitions(job)
        .send()
        .await
        .unwrap();
    let task = ecs
        .run_task()
        .task_definition("local")
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .task_arn()
        .unwrap()
        .to_string();
    let t = wait_task(&ecs, "default", &task, "STOPPED", |t| {
        t.last_status() == Some("STOPPED")
    })
    .await;
    assert_eq!(t.containers()[0].exit_code(), Some(7));

    // FARGATE runs on the managed capacity of `berth up`, each task with its own address.
    let web = ContainerDefinition::builder()
        .name("web")
        .image(&image)
        .command("/bin/httpd")
        .command("-f")
        .command("-p")
        .command("8080")
        .command("-h")
        .command("/www")
        .port_mappings(
            berth_testkit::aws_sdk_ecs::types::PortMapping::builder()
                .container_port(8080)
                .build(),
        )
        .stop_timeout(1)
        .build();
    ecs.register_task_definition()
        .family("fargate")
        .requires_compatibilities(berth_testkit::aws_sdk_ecs::types::Compatibility::Fargate)
        .network_mode(berth_testkit::aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .cpu("256")
        .memory("512")
        .container_definitions(web)
        .send()
        .await
        .unwrap();
    let task = ecs
        .run_task()
        .task_definition("fargate")
        .launch_type(berth_testkit::aws_sdk_ecs::types::LaunchType::Fargate)
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .task_arn()
        .unwrap()
        .to_string();
    let t = wait_task(&ecs, "default", &task, "RUNNING with an address", |t| {
        t.last_status() == Some("RUNNING") && !t.attachments().is_empty()
    })
    .await;
    assert_eq!(t.launch_type().map(|l| l.as_str()), Some("FARGATE"));
    let ip = t.attachments()[0]
        .details()
        .iter()
        .find(|d| d.name() == Some("privateIPv4Address"))
        .and_then(|d| d.value())
        .unwrap()
        .to_string();
    assert_eq!(page(format!("http://{ip}:8080/")).await, "local\n");
    ecs.stop_task().task(&task).send().await.unwrap();
    wait_task(&ecs, "default", &task, "STOPPED", |t| {
        t.last_status() == Some("STOPPED")
    })
    .await;
    run(docker(config.path()).args(["rmi", &image]));
}

/// Two agents on one Docker Engine: distinct instances and zones; each manages only its own
/// containers; spread placement uses both; losing one agent stops only its tasks.
#[tokio::test]
async fn two_agents_share_one_engine() {
    use berth_testkit::aws_sdk_ecs::types::{
        ContainerDefinition, PlacementStrategy, PlacementStrategyType,
    };
    require_docker_engine();
    let server = crate::start_with(berth_testkit::Options {
        args: vec![
            "--agent-timeout".into(),
            "2".into(),
            "--agent-lost-timeout".into(),
            "4".into(),
        ],
        ..Default::default()
    });
    let ecs = server.ecs();
    ecs.create_cluster()
        .cluster_name("e2e")
        .send()
        .await
        .unwrap();
    let config = tempfile::tempdir().unwrap();
    let image = format!("berth-e2e-two:{}", server.port);
    import_busybox(config.path(), &image, "two\n");
    let (sa, sb) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let _a = AgentProcess::start_in_zone(&server, sa.path(), "zone-a");
    let mut b = AgentProcess::start_in_zone(&server, sb.path(), "zone-b");
    berth_testkit::until(
        std::time::Duration::from_secs(30),
        "two agents to register",
        || async { instances(&ecs, "e2e").await.len() == 2 },
    )
    .await;
    let sleeper = ContainerDefinition::builder()
        .name("sleep")
        .image(&image)
        .memory(32)
        .command("/bin/sh")
        .command("-c")
        .command("trap 'exit 0' TERM; while true; do sleep 1; done")
        .stop_timeout(2)
        .build();
    ecs.register_task_definition()
        .family("sleep")
        .container_definitions(sleeper)
        .send()
        .await
        .unwrap();
    let run_out = ecs
        .run_task()
        .cluster("e2e")
        .task_definition("sleep")
        .count(2)
        .placement_strategy(
            PlacementStrategy::builder()
                .r#type(PlacementStrategyType::Spread)
                .field("attribute:ecs.availability-zone")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tasks: Vec<String> = run_out
        .tasks()
        .iter()
        .map(|t| t.task_arn().unwrap().to_string())
        .collect();
    let hosts: std::collections::BTreeSet<&str> = run_out
        .tasks()
        .iter()
        .map(|t| t.availability_zone().unwrap())
        .collect();
    assert_eq!(hosts.len(), 2, "one task per zone");
    for t in &tasks {
        wait_task(&ecs, "e2e", t, "RUNNING", |x| {
            x.last_status() == Some("RUNNING")
        })
        .await;
    }
    // Each container carries its own agent's instance.
    for t in run_out.tasks() {
        let filter = format!("label=com.amazonaws.ecs.task-arn={}", t.task_arn().unwrap());
        let out = run(Command::new("docker").args([
            "ps",
            "-q",
            "--filter",
            &filter,
            "--filter",
            &format!(
                "label=com.berth.container-instance={}",
                t.container_instance_arn().unwrap()
            ),
        ]));
        assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    }
    // Agent B goes away: its task is stopped by the control plane; A's keeps running.
    b.kill();
    let on_b = run_out
        .tasks()
        .iter()
        .find(|t| t.availability_zone() == Some("zone-b"))
        .unwrap()
        .task_arn()
        .unwrap()
        .to_string();
    let on_a = run_out
        .tasks()
        .iter()
        .find(|t| t.availability_zone() == Some("zone-a"))
        .unwrap()
        .task_arn()
        .unwrap()
        .to_string();
    let t = wait_task(&ecs, "e2e", &on_b, "STOPPED", |x| {
        x.last_status() == Some("STOPPED")
    })
    .await;
    assert!(t.stopped_reason().unwrap_or("").contains("lost contact"));
    let t = ecs
        .describe_tasks()
        .cluster("e2e")
        .tasks(&on_a)
        .send()
        .await
        .unwrap()
        .tasks()[0]
        .clone();
    assert_eq!(t.last_status(), Some("RUNNING"));
    ecs.stop_task()
        .cluster("e2e")
        .task(&on_a)
        .send()
        .await
        .unwrap();
    wait_task(&ecs, "e2e", &on_a, "STOPPED", |x| {
        x.last_status() == Some("STOPPED")
    })
    .await;
    drop(b);
    run(docker(config.path()).args(["rmi", "-f", &image]));
}

/// A Docker Engine of the test's own (own socket, data and exec roots and network namespace, no
/// bridge), so the test may kill and restart it without disturbing the shared engine. Stopped
/// when dropped.
struct PrivateEngine {
    dir: tempfile::TempDir,
    child: std::process::Child,
}

impl PrivateEngine {
    fn start(dir: tempfile::TempDir) -> PrivateEngine {
        let child = Self::daemon(dir.path());
        let engine = PrivateEngine { dir, child };
        engine.wait_ready();
        engine
    }

    fn daemon(d: &Path) -> std::process::Child {
        // In a network namespace of its own: an engine's networking setup (its default bridge)
        // must not touch the host's, which the shared engine uses.
        Command::new(require_program("unshare", HOW))
            .arg("--net")
            .arg(require_program("dockerd", HOW))
            .arg("--data-root")
            .arg(d.join("data"))
            .arg("--exec-root")
            .arg(d.join("exec"))
            .arg("--pidfile")
            .arg(d.join("pid"))
            .arg("-H")
            .arg(format!("unix://{}", d.join("sock").display()))
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(d.join("log")).unwrap())
            .spawn()
            .unwrap()
    }

    fn wait_ready(&self) {
        let deadline = berth_testkit::Deadline::after(std::time::Duration::from_secs(60));
        while !self.docker().arg("info").output().unwrap().status.success() {
            deadline.next_blocking(format_args!(
                "the private dockerd to start: {}",
                std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
            ));
        }
    }

    /// kill -9, then the same engine again.
    fn crash_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        // dockerd's own containerd dies with it; where nothing reaps it, its pid file would
        // point the new dockerd at a zombie.
        for stale in ["pid", "exec/containerd/containerd.pid"] {
            let _ = std::fs::remove_file(self.dir.path().join(stale));
        }
        self.child = Self::daemon(self.dir.path());
        self.wait_ready();
    }

    fn host(&self) -> String {
        format!("unix://{}", self.dir.path().join("sock").display())
    }

    fn docker(&self) -> Command {
        let mut c = Command::new(require_program("docker", HOW));
        c.args(["-H", &self.host()]);
        c
    }
}

impl Drop for PrivateEngine {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        // The engine leaves its data root (and any namespaces) mounted; unmount them so the
        // directory can go.
        let root = self.dir.path().display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut points: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|p| p.starts_with(&root))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for p in points {
            let _ = Command::new("umount").args(["-l", p]).status();
        }
    }
}

#[tokio::test]
async fn agent_recovers_when_the_docker_engine_restarts() {
    use berth_testkit::aws_sdk_ecs::types::{ContainerDefinition, NetworkMode};
    require_docker_engine();
    // A short path: the engine's socket must fit in sun_path.
    let mut engine = PrivateEngine::start(tempfile::Builder::new().tempdir_in("/tmp").unwrap());
    import_busybox_into(engine.docker(), "restart-test:1", "");

    let server = start();
    let ecs = server.ecs();
    ecs.create_cluster()
        .cluster_name("e2e")
        .send()
        .await
        .unwrap();
    let state = tempfile::tempdir().unwrap();
    let host = engine.host();
    let _agent = AgentProcess::spawn(&server, state.path(), &["--docker-host", &host]);
    berth_testkit::until(
        std::time::Duration::from_secs(30),
        "the agent to register",
        || async { !instances(&ecs, "e2e").await.is_empty() },
    )
    .await;
    ecs.register_task_definition()
        .family("sleep")
        .network_mode(NetworkMode::None)
        .container_definitions(
            ContainerDefinition::builder()
                .name("sleep")
                .image("restart-test:1")
                .memory(16)
                .command("/bin/sleep")
                .command("3600")
                .stop_timeout(1)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let task = run_one(&ecs, "sleep").await;
    running(&ecs, &task).await;

    // The engine dies under the agent and comes back. The agent keeps working on it...
    engine.crash_and_restart();
    let again = run_one(&ecs, "sleep").await;
    running(&ecs, &again).await;
    // ...and reports the first task as the engine has it: still running if the container
    // survived the restart, otherwise stopped with the exit code the engine recorded.
    let out = run(engine.docker().args([
        "ps",
        "-q",
        "--filter",
        &format!("label=com.amazonaws.ecs.task-arn={task}"),
    ]));
    if String::from_utf8_lossy(&out.stdout).trim().is_empty() {
        let t = stopped(&ecs, &task).await;
        assert_eq!(
            t.stop_code().map(|c| c.as_str()),
            Some("EssentialContainerExited"),
            "{t:?}"
        );
        assert!(t.containers()[0].exit_code().is_some(), "{t:?}");
    } else {
        let t = running(&ecs, &task).await;
        assert_eq!(t.desired_status(), Some("RUNNING"));
    }
    stop(&ecs, &again).await;
    drop(engine);
}

/// A 3-task service of an image pushed to Berth, on the real agent: a `docker kill`ed task is
/// replaced within 15 s, an update to a new revision replaces every task, and a revision whose
/// image does not exist trips the circuit breaker, which rolls back while the old tasks serve.
#[tokio::test]
async fn service_on_docker_heals_rolls_and_rolls_back() {
    use berth_testkit::aws_sdk_ecs::types::{
        ContainerDefinition, DeploymentCircuitBreaker, DeploymentConfiguration, DesiredStatus,
        PortMapping,
    };
    require_docker_engine();
    let server = service_server();
    let ecs = server.ecs();
    cluster_and_images(
        &server,
        "e2e/svc",
        &[("1", "version 1\n"), ("2", "version 2\n")],
    )
    .await;
    let host = format!("127.0.0.1:{}", server.port);
    for tag in ["1", "2", "missing"] {
        ecs.register_task_definition()
            .family("svc")
            .container_definitions(
                ContainerDefinition::builder()
                    .name("web")
                    .image(format!("{host}/e2e/svc:{tag}"))
                    .memory(32)
                    .port_mappings(
                        PortMapping::builder()
                            .container_port(8080)
                            .host_port(0)
                            .build(),
                    )
                    .stop_timeout(2)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::start_registered(&server, state.path()).await;
    ecs.create_service()
        .cluster("e2e")
        .service_name("svc")
        .task_definition("svc:1")
        .desired_count(3)
        .deployment_configuration(
            DeploymentConfiguration::builder()
                .minimum_healthy_percent(100)
                .maximum_percent(200)
                .deployment_circuit_breaker(
                    DeploymentCircuitBreaker::builder()
                        .enable(true)
                        .rollback(true)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    // The service's RUNNING tasks (desired RUNNING) and what each serves.
    let serving = || async {
        let arns = ecs
            .list_tasks()
            .cluster("e2e")
            .service_name("svc")
            .desired_status(DesiredStatus::Running)
            .send()
            .await
            .unwrap()
            .task_arns()
            .to_vec();
        if arns.is_empty() {
            return Vec::new();
        }
        let mut out = Vec::new();
        for t in ecs
            .describe_tasks()
            .cluster("e2e")
            .set_tasks(Some(arns))
            .send()
            .await
            .unwrap()
            .tasks()
        {
            if t.last_status() != Some("RUNNING") {
                continue;
            }
            let c = &t.containers()[0];
            let port = c.network_bindings()[0].host_port().unwrap();
            let body = match reqwest::get(format!("http://127.0.0.1:{port}/")).await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            out.push((
                t.task_arn().unwrap().to_string(),
                c.runtime_id().unwrap_or_default().to_string(),
                body,
            ));
        }
        out
    };
    let stable_on = |revision: &'static str| {
        let ecs = ecs.clone();
        move || {
            let ecs = ecs.clone();
            async move {
                let s = ecs
                    .describe_services()
                    .cluster("e2e")
                    .services("svc")
                    .send()
                    .await
                    .unwrap()
                    .services()[0]
                    .clone();
                s.deployments().len() == 1
                    && s.running_count() == 3
                    && s.desired_count() == 3
                    && s.task_definition().unwrap().ends_with(revision)
            }
        }
    };
    let minute = std::time::Duration::from_secs(60);
    // What infrastructure tools wait on: `aws ecs wait services-stable`.
    let waited = Command::new(require_program(
        "aws",
        "scripts/test.sh installs it with pip (awscli)",
    ))
    .args([
        "ecs",
        "wait",
        "services-stable",
        "--cluster",
        "e2e",
        "--services",
        "svc",
    ])
    .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
    .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
    .env("AWS_DEFAULT_REGION", REGION)
    .env("AWS_ENDPOINT_URL", &server.endpoint)
    .env_remove("AWS_PROFILE")
    .output()
    .unwrap();
    assert!(
        waited.status.success(),
        "aws ecs wait services-stable: {}",
        String::from_utf8_lossy(&waited.stderr)
    );
    berth_testkit::until(minute, "3 tasks of svc:1 serving", stable_on("svc:1")).await;
    let before = serving().await;
    assert_eq!(before.len(), 3);
    assert!(before.iter().all(|(_, _, body)| body == "version 1\n"));

    // docker kill one: a replacement is RUNNING within 15 s.
    let (killed, container, _) = before[0].clone();
    run(Command::new("docker").args(["kill", &container]));
    berth_testkit::until(
        std::time::Duration::from_secs(15),
        "a replacement for the killed task",
        || async {
            let now = serving().await;
            now.len() == 3 && !now.iter().any(|(arn, _, _)| arn == &killed)
        },
    )
    .await;

    // A new revision replaces every task.
    ecs.update_service()
        .cluster("e2e")
        .service("svc")
        .task_definition("svc:2")
        .send()
        .await
        .unwrap();
    berth_testkit::until(minute, "svc:2 everywhere", || async {
        stable_on("svc:2")().await && {
            let now = serving().await;
            now.len() == 3 && now.iter().all(|(_, _, body)| body == "version 2\n")
        }
    })
    .await;

    // An image that does not exist: the breaker rolls back; the svc:2 tasks serve throughout.
    ecs.update_service()
        .cluster("e2e")
        .service("svc")
        .task_definition("svc:3")
        .send()
        .await
        .unwrap();
    let deadline = berth_testkit::Deadline::after(std::time::Duration::from_secs(90));
    loop {
        let now = serving().await;
        let answering = now
            .iter()
            .filter(|(_, _, body)| body == "version 2\n")
            .count();
        assert!(
            answering >= 3,
            "fewer than 3 tasks served during the rollback: {now:?}"
        );
        let s = ecs
            .describe_services()
            .cluster("e2e")
            .services("svc")
            .send()
            .await
            .unwrap()
            .services()[0]
            .clone();
        let rolled_back = s
            .events()
            .iter()
            .any(|e| e.message().unwrap_or_default().contains("rolling back"));
        if rolled_back && stable_on("svc:2")().await {
            break;
        }
        deadline.next(format_args!("the rollback: {s:#?}")).await;
    }
    let stopped = ecs
        .list_tasks()
        .cluster("e2e")
        .service_name("svc")
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .unwrap()
        .task_arns()
        .to_vec();
    let failed = ecs
        .describe_tasks()
        .cluster("e2e")
        .set_tasks(Some(stopped))
        .send()
        .await
        .unwrap();
    assert!(failed.tasks().iter().any(|t| {
        t.stopped_reason()
            .unwrap_or_default()
            .starts_with("CannotPullContainerError")
    }));
    ecs.delete_service()
        .cluster("e2e")
        .service("svc")
        .force(true)
        .send()
        .await
        .unwrap();
    berth_testkit::until(minute, "the service's containers to stop", || async {
        serving().await.is_empty()
    })
    .await;
}

/// The `aws` CLI against `server` (JSON output parsed; `null` when it prints nothing).
pub(crate) fn aws(server: &TestServer, args: &[&str]) -> Value {
    let out = run(Command::new(require_program("aws", HOW))
        .args(args)
        .args([
            "--endpoint-url",
            &server.endpoint,
            "--region",
            REGION,
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env_remove("AWS_PROFILE"));
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// A load balancer, an HTTP target group (`target_group`: its port and further arguments;
/// health checks every 5 s, a 2 s deregistration delay) and a listener on a free port
/// forwarding to it, all named `name`, made with the aws CLI. Returns the target group's ARN and
/// the listener's port.
pub(crate) fn load_balancer(
    server: &TestServer,
    name: &str,
    target_group: &[&str],
) -> (String, String) {
    let lb = aws(
        server,
        &[
            "elbv2",
            "create-load-balancer",
            "--name",
            name,
            "--subnets",
            "subnet-1",
        ],
    )["LoadBalancers"][0]["LoadBalancerArn"]
        .as_str()
        .unwrap()
        .to_string();
    let mut args = vec![
        "elbv2",
        "create-target-group",
        "--name",
        name,
        "--protocol",
        "HTTP",
        "--vpc-id",
        "vpc-1",
        "--health-check-interval-seconds",
        "5",
        "--health-check-timeout-seconds",
        "2",
    ];
    args.extend_from_slice(target_group);
    let tg = aws(server, &args)["TargetGroups"][0]["TargetGroupArn"]
        .as_str()
        .unwrap()
        .to_string();
    aws(
        server,
        &[
            "elbv2",
            "modify-target-group-attributes",
            "--target-group-arn",
            &tg,
            "--attributes",
            "Key=deregistration_delay.timeout_seconds,Value=2",
        ],
    );
    let port = crate::elbv2::free_port().to_string();
    let forward = format!("Type=forward,TargetGroupArn={tg}");
    aws(
        server,
        &[
            "elbv2",
            "create-listener",
            "--load-balancer-arn",
            &lb,
            "--protocol",
            "HTTP",
            "--port",
            &port,
            "--default-actions",
            &forward,
        ],
    );
    (tg, port)
}

/// `aws ecs wait services-stable` for service `name` of cluster `e2e`.
pub(crate) fn services_stable(server: &TestServer, name: &str) {
    aws(
        server,
        &[
            "ecs",
            "wait",
            "services-stable",
            "--cluster",
            "e2e",
            "--services",
            name,
        ],
    );
}

/// DESIGN.md §1 end to end with the `aws` CLI and Docker: an image pushed to Berth, a 3-task
/// service behind a load balancer listener; 100 requests reach all 3 tasks; a rolling
/// deployment under continuous traffic fails no request; a `docker kill` costs at most the
/// requests in flight to that task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn walkthrough_service_behind_a_load_balancer_on_docker() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    require_docker_engine();
    let server = service_server();
    let images = cluster_and_images(
        &server,
        "e2e/site",
        &[("1", "site version 1\n"), ("2", "site version 2\n")],
    )
    .await;
    let state = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::start_registered(&server, state.path()).await;
    for image in &images {
        let definitions = json!([{
            "name": "web", "image": image, "memory": 32, "stopTimeout": 2,
            "portMappings": [{"containerPort": 8080, "hostPort": 0}],
        }]);
        aws(
            &server,
            &[
                "ecs",
                "register-task-definition",
                "--family",
                "site",
                "--container-definitions",
                &definitions.to_string(),
            ],
        );
    }
    let (tg, port) = load_balancer(&server, "site", &["--port", "80"]);
    aws(
        &server,
        &[
            "ecs",
            "create-service",
            "--cluster",
            "e2e",
            "--service-name",
            "site",
            "--task-definition",
            "site:1",
            "--desired-count",
            "3",
            "--load-balancers",
            &format!("targetGroupArn={tg},containerName=web,containerPort=8080"),
        ],
    );
    services_stable(&server, "site");
    let healthy = || {
        let h = aws(
            &server,
            &["elbv2", "describe-target-health", "--target-group-arn", &tg],
        );
        h["TargetHealthDescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["TargetHealth"]["State"] == "healthy")
            .count()
    };
    berth_testkit::until(
        std::time::Duration::from_secs(60),
        "3 healthy targets",
        || async { healthy() == 3 },
    )
    .await;

    // 100 requests: all 200, and all 3 tasks answer (each container's hostname differs).
    let url = format!("http://127.0.0.1:{port}/");
    let mut hosts = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let r = reqwest::get(format!("{url}cgi-bin/host")).await.unwrap();
        assert_eq!(r.status(), 200);
        hosts.insert(r.text().await.unwrap());
    }
    assert_eq!(hosts.len(), 3, "{hosts:?}");
    assert_eq!(
        reqwest::get(&url).await.unwrap().text().await.unwrap(),
        "site version 1\n"
    );

    // Continuous traffic from here on.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let (ok, bad) = (
        std::sync::Arc::new(AtomicUsize::new(0)),
        std::sync::Arc::new(AtomicUsize::new(0)),
    );
    let client = {
        let (stop, ok, bad, url) = (stop.clone(), ok.clone(), bad.clone(), url.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(r) if r.status() == 200 => {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                    other => {
                        bad.fetch_add(1, Ordering::Relaxed);
                        failures.push(format!("{other:?}"));
                    }
                }
            }
            failures
        })
    };
    aws(
        &server,
        &[
            "ecs",
            "update-service",
            "--cluster",
            "e2e",
            "--service",
            "site",
            "--task-definition",
            "site:2",
        ],
    );
    services_stable(&server, "site");
    berth_testkit::until(
        std::time::Duration::from_secs(60),
        "version 2 behind the listener",
        || async {
            reqwest::get(&url).await.unwrap().text().await.unwrap() == "site version 2\n"
                && reqwest::get(&url).await.unwrap().text().await.unwrap() == "site version 2\n"
        },
    )
    .await;
    assert_eq!(
        bad.load(Ordering::Relaxed),
        0,
        "failed requests during the rolling deployment"
    );

    // docker kill one task's container: at most the requests in flight to it fail.
    let arns = aws(
        &server,
        &[
            "ecs",
            "list-tasks",
            "--cluster",
            "e2e",
            "--service-name",
            "site",
        ],
    )["taskArns"]
        .clone();
    let first = arns[0].as_str().unwrap().to_string();
    let described = aws(
        &server,
        &[
            "ecs",
            "describe-tasks",
            "--cluster",
            "e2e",
            "--tasks",
            &first,
        ],
    );
    let container = described["tasks"][0]["containers"][0]["runtimeId"]
        .as_str()
        .unwrap()
        .to_string();
    let before = bad.load(Ordering::Relaxed);
    run(Command::new("docker").args(["kill", &container]));
    berth_testkit::until(
        std::time::Duration::from_secs(60),
        "the service to replace the killed task",
        || async {
            let tasks = aws(
                &server,
                &[
                    "ecs",
                    "list-tasks",
                    "--cluster",
                    "e2e",
                    "--service-name",
                    "site",
                ],
            );
            let list = tasks["taskArns"].as_array().unwrap().clone();
            list.len() == 3 && !list.iter().any(|t| t == &first) && healthy() == 3
        },
    )
    .await;
    // The killed task left the target group (its host port may be reused by another
    // container): only the three live tasks' targets remain.
    berth_testkit::until(
        std::time::Duration::from_secs(30),
        "only the live targets registered",
        || async {
            let h = aws(
                &server,
                &["elbv2", "describe-target-health", "--target-group-arn", &tg],
            );
            h["TargetHealthDescriptions"].as_array().unwrap().len() == 3
        },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    let failures = client.await.unwrap();
    let lost = bad.load(Ordering::Relaxed) - before;
    assert!(lost <= 2, "the kill cost {lost} requests: {failures:?}");
    assert!(ok.load(Ordering::Relaxed) > 50);
}

/// A service in `awsvpc` mode behind an `ip` target group: each task is registered by its own
/// address and the container port, requests through the listener reach every task, and
/// scaling in deregisters the stopped task's address while the rest keep serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awsvpc_service_registers_task_addresses_as_ip_targets() {
    require_docker_engine();
    let server = service_server();
    let images = cluster_and_images(&server, "e2e/vpc", &[("1", "vpc page\n")]).await;
    let state = tempfile::tempdir().unwrap();
    let _agent = AgentProcess::start_registered(&server, state.path()).await;
    let definitions = json!([{
        "name": "web", "image": images[0], "memory": 32, "stopTimeout": 2,
        "portMappings": [{"containerPort": 8080}],
    }]);
    aws(
        &server,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "vpc",
            "--network-mode",
            "awsvpc",
            "--container-definitions",
            &definitions.to_string(),
        ],
    );
    let (tg, port) = load_balancer(&server, "vpc", &["--port", "8080", "--target-type", "ip"]);
    aws(
        &server,
        &[
            "ecs",
            "create-service",
            "--cluster",
            "e2e",
            "--service-name",
            "vpc",
            "--task-definition",
            "vpc",
            "--desired-count",
            "2",
            "--network-configuration",
            "awsvpcConfiguration={subnets=[subnet-1]}",
            "--load-balancers",
            &format!("targetGroupArn={tg},containerName=web,containerPort=8080"),
        ],
    );
    services_stable(&server, "vpc");
    // (address, port) of the healthy targets, and of every target.
    let targets = |state: Option<&str>| -> std::collections::BTreeSet<(String, i64)> {
        aws(
            &server,
            &["elbv2", "describe-target-health", "--target-group-arn", &tg],
        )["TargetHealthDescriptions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| state.is_none_or(|s| d["TargetHealth"]["State"] == s))
            .map(|d| {
                (
                    d["Target"]["Id"].as_str().unwrap().to_string(),
                    d["Target"]["Port"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    berth_testkit::until(
        std::time::Duration::from_secs(60),
        "2 healthy targets",
        || async { targets(Some("healthy")).len() == 2 },
    )
    .await;
    // The targets are the tasks' own addresses (their ENIs) and the container port.
    let addresses = || -> std::collections::BTreeSet<(String, i64)> {
        let arns = aws(
            &server,
            &[
                "ecs",
                "list-tasks",
                "--cluster",
                "e2e",
                "--service-name",
                "vpc",
            ],
        )["taskArns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        let mut args = vec!["ecs", "describe-tasks", "--cluster", "e2e", "--tasks"];
        args.extend(arns.iter().map(String::as_str));
        aws(&server, &args)["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let ip = t["attachments"][0]["details"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|d| d["name"] == "privateIPv4Address")
                    .unwrap()["value"]
                    .as_str()
                    .unwrap()
                    .to_string();
                (ip, 8080)
            })
            .collect()
    };
    let healthy = targets(Some("healthy"));
    assert_eq!(healthy, addresses());
    assert!(
        healthy.iter().all(|(ip, _)| ip != "127.0.0.1"),
        "{healthy:?}"
    );
    let url = format!("http://127.0.0.1:{port}/");
    let mut hosts = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let r = reqwest::get(format!("{url}cgi-bin/host")).await.unwrap();
        assert_eq!(r.status(), 200);
        hosts.insert(r.text().await.unwrap());
    }
    assert_eq!(hosts.len(), 2, "{hosts:?}");

    // Scaling in: the stopped task's address leaves the target group; the other serves.
    aws(
        &server,
        &[
            "ecs",
            "update-service",
            "--cluster",
            "e2e",
            "--service",
            "vpc",
            "--desired-count",
            "1",
        ],
    );
    berth_testkit::until(
        std::time::Duration::from_secs(60),
        "one target left, the remaining task's",
        || async {
            let all = targets(None);
            all.len() == 1 && all == addresses()
        },
    )
    .await;
    for _ in 0..10 {
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "vpc page\n");
    }
}
