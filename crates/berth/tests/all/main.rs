//! Integration tests of the `berth` binary: a real server process per test on an ephemeral
//! port, driven by the official AWS SDK crates, raw signed requests and the `aws` CLI.

mod cli;
mod docker_deploy;
mod docker_e2e;
mod ecr;
mod ecs_clusters;
mod ecs_instances;
mod ecs_services;
mod ecs_settings;
mod ecs_task_definitions;
mod ecs_tasks;
mod elbv2;
mod front_door;
mod iam;
mod layering;
mod persistence;
mod readme;
mod regions;
mod registry;
mod replicas;
mod server;

use berth_testkit::TestServer;

pub fn start() -> TestServer {
    TestServer::start(env!("CARGO_BIN_EXE_berth"))
}

pub fn start_with(options: berth_testkit::Options) -> TestServer {
    TestServer::start_with(env!("CARGO_BIN_EXE_berth"), options)
}

pub const BIN: &str = env!("CARGO_BIN_EXE_berth");

/// A `berth lb` node given `endpoints`, stopped (by its PID) however the test ends.
pub struct LbNode(std::process::Child);

impl LbNode {
    pub fn start(endpoints: &str) -> LbNode {
        LbNode(
            std::process::Command::new(BIN)
                .args(["lb", "--endpoint", endpoints, "--bind", "127.0.0.1"])
                .env("AWS_ACCESS_KEY_ID", berth_testkit::ACCESS_KEY_ID)
                .env("AWS_SECRET_ACCESS_KEY", berth_testkit::SECRET_ACCESS_KEY)
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
