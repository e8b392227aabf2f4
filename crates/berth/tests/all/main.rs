//! Integration tests of the `berth` binary: a real server process per test on an ephemeral
//! port, driven by the official AWS SDK crates, raw signed requests and the `aws` CLI.

mod autoscaling;
mod cli;
mod cloudwatch;
mod docker_deploy;
mod docker_e2e;
mod docker_scaling;
mod ecr;
mod ecr_layers;
mod ecr_lifecycle;
mod ecr_pull_through;
mod ecr_replication;
mod ecr_settings;
mod ecs_clusters;
mod ecs_instances;
mod ecs_services;
mod ecs_settings;
mod ecs_task_definitions;
mod ecs_tasks;
mod elbv2;
mod front_door;
mod iam;
mod iam_sdk;
mod layering;
mod logs;
mod persistence;
mod readme;
mod regions;
mod registry;
mod replicas;
mod server;
mod task_roles;

use berth_testkit::TestServer;

pub fn start() -> TestServer {
    TestServer::start(env!("CARGO_BIN_EXE_berth"))
}

pub fn start_with(options: berth_testkit::Options) -> TestServer {
    TestServer::start_with(env!("CARGO_BIN_EXE_berth"), options)
}

pub const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// AWS SDK configuration for this server with temporary credentials (a role session's).
pub fn session_config(
    server: &TestServer,
    access_key_id: &str,
    secret: &str,
    token: &str,
) -> berth_testkit::aws_config::SdkConfig {
    let creds = berth_testkit::aws_credential_types::Credentials::new(
        access_key_id,
        secret,
        Some(token.to_string()),
        None,
        "test",
    );
    server
        .sdk_config()
        .into_builder()
        .credentials_provider(
            berth_testkit::aws_credential_types::provider::SharedCredentialsProvider::new(creds),
        )
        .build()
}

/// An IAM query call signed as root; the response body.
pub async fn iam(endpoint: &str, params: &[(&str, &str)]) -> (u16, String) {
    let mut body = String::from("Version=2010-05-08");
    for (k, v) in params {
        body.push('&');
        body.push_str(k);
        body.push('=');
        body.push_str(&berth_aws::sigv4::uri_encode(v, true));
    }
    let root = (
        berth_testkit::ACCESS_KEY_ID,
        berth_testkit::SECRET_ACCESS_KEY,
    );
    post(
        endpoint,
        root,
        "iam",
        "/",
        "application/x-www-form-urlencoded",
        &body,
    )
    .await
}

/// `POST path` signed with this key for `service`: status, body.
pub async fn post(
    ep: &str,
    key: (&str, &str),
    service: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    let s = berth_testkit::Signing {
        access_key_id: key.0,
        secret: key.1,
        ..berth_testkit::Signing::root(service)
    };
    let r = berth_testkit::signed(
        &s,
        "POST",
        &format!("{ep}{path}"),
        &[("content-type", content_type)],
        body.as_bytes(),
    )
    .send()
    .await;
    (r.status, r.body)
}

pub fn between<'a>(text: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = text.find(&open).expect(tag) + open.len();
    let end = text[start..].find(&format!("</{tag}>")).expect(tag) + start;
    &text[start..end]
}

/// What a node of the tests may do.
pub enum NodeRole {
    /// `berth agent`: AWS's container-instance policy.
    Agent,
    /// `berth lb`: read the listeners, report target health.
    Lb,
}

/// The key of a new IAM user for a node of the servers at `endpoints` (the first is asked):
/// nodes in the tests sign as what a node may do, never as root.
pub fn node_identity(endpoints: &str, role: NodeRole) -> (String, String) {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ep = endpoints.split(',').next().unwrap().to_string();
    // The tests' runtimes may not block: a thread of its own with a runtime of its own.
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let name = format!("test-node-{n}");
            let user = ("UserName", name.as_str());
            let ok = |(st, body): (u16, String)| {
                assert_eq!(st, 200, "{body}");
                body
            };
            ok(iam(&ep, &[("Action", "CreateUser"), user]).await);
            let grant = match role {
                NodeRole::Agent => vec![
                    ("Action", "AttachUserPolicy"),
                    ("PolicyArn", "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role"),
                ],
                NodeRole::Lb => vec![
                    ("Action", "PutUserPolicy"),
                    ("PolicyName", "lb-node"),
                    ("PolicyDocument", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["elasticloadbalancing:DescribeLoadBalancers","elasticloadbalancing:ReportTargetHealth","cloudwatch:PutMetricData"],"Resource":"*"}]}"#),
                ],
            };
            ok(iam(&ep, &[grant, vec![user]].concat()).await);
            let key = ok(iam(&ep, &[("Action", "CreateAccessKey"), user]).await);
            (
                between(&key, "AccessKeyId").to_string(),
                between(&key, "SecretAccessKey").to_string(),
            )
        })
    })
    .join()
    .unwrap()
}

/// A `berth lb` node given `endpoints`, stopped (by its PID) however the test ends.
pub struct LbNode(std::process::Child);

impl LbNode {
    pub fn start(endpoints: &str) -> LbNode {
        let key = node_identity(endpoints, NodeRole::Lb);
        LbNode(
            std::process::Command::new(BIN)
                .args(["lb", "--endpoint", endpoints, "--bind", "127.0.0.1"])
                .env("AWS_ACCESS_KEY_ID", key.0)
                .env("AWS_SECRET_ACCESS_KEY", key.1)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        )
    }
}

impl Drop for LbNode {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A new, empty database `<prefix>_<pid>` on the test PostgreSQL server
/// (`BERTH_TEST_POSTGRES`, which scripts/test.sh starts); its URL.
pub fn fresh_postgres_database(prefix: &str) -> String {
    let server = std::env::var("BERTH_TEST_POSTGRES").unwrap_or_else(|_| {
        panic!("BERTH_TEST_POSTGRES is not set: scripts/test.sh starts a PostgreSQL server for this test")
    });
    let database = format!("{prefix}_{}", std::process::id());
    let admin = format!("{server}/postgres");
    let name = database.clone();
    // The blocking client may not run inside a test's async runtime.
    std::thread::spawn(move || {
        let mut c = postgres::Client::connect(&admin, postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    })
    .join()
    .unwrap();
    format!("{server}/{database}")
}

/// The error code of an SDK error.
pub fn code<E: berth_testkit::aws_sdk_ecs::error::ProvideErrorMetadata>(e: &E) -> String {
    // (`ProvideErrorMetadata` is the same trait for every SDK crate.)
    e.code().unwrap_or("<none>").to_string()
}

/// A minimal valid container definition.
pub fn container() -> berth_testkit::aws_sdk_ecs::types::ContainerDefinition {
    berth_testkit::aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("a")
        .image("x")
        .memory(32)
        .build()
}

/// Registers a minimal revision of `family` and returns its revision number.
pub async fn register(ecs: &berth_testkit::aws_sdk_ecs::Client, family: &str) -> i32 {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(container())
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap()
        .revision
}

/// An INTEGER resource (`CPU`, `MEMORY`) as agents register them.
pub fn integer_resource(name: &str, value: i32) -> berth_testkit::aws_sdk_ecs::types::Resource {
    berth_testkit::aws_sdk_ecs::types::Resource::builder()
        .name(name)
        .r#type("INTEGER")
        .integer_value(value)
        .build()
}

/// Registers a simulated container instance (no agent) in `cluster` and `zone`, with `cpu`
/// units, `memory` MiB and the valueless attributes given (capabilities); returns its ARN.
pub async fn simulated_instance(
    ecs: &berth_testkit::aws_sdk_ecs::Client,
    cluster: &str,
    zone: &str,
    (cpu, memory): (i32, i32),
    capabilities: &[&str],
) -> String {
    use berth_testkit::aws_sdk_ecs::types::Attribute;
    let mut register = ecs
        .register_container_instance()
        .cluster(cluster)
        .total_resources(integer_resource("CPU", cpu))
        .total_resources(integer_resource("MEMORY", memory))
        .attributes(
            Attribute::builder()
                .name("ecs.availability-zone")
                .value(zone)
                .build()
                .unwrap(),
        );
    for c in capabilities {
        register = register.attributes(Attribute::builder().name(*c).build().unwrap());
    }
    register
        .send()
        .await
        .unwrap()
        .container_instance
        .unwrap()
        .container_instance_arn
        .unwrap()
}
