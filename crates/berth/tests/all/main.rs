//! Integration tests of the `berth` binary: a real server process per test on an ephemeral
//! port, driven by the official AWS SDK crates, raw signed requests and the `aws` CLI.

mod cli;
mod ecs_clusters;
mod ecs_settings;
mod ecs_task_definitions;
mod front_door;
mod persistence;
mod server;

use berth_testkit::TestServer;

pub fn start() -> TestServer {
    TestServer::start(env!("CARGO_BIN_EXE_berth"))
}

pub fn start_with(options: berth_testkit::Options) -> TestServer {
    TestServer::start_with(env!("CARGO_BIN_EXE_berth"), options)
}

pub const BIN: &str = env!("CARGO_BIN_EXE_berth");
