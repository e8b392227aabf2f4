//! The `berth` binary's library: command line, configuration, data directory, serving.
//!
//! * [`cli`]: the commands (`up`, `server`, `credentials`).
//! * [`config`]: one settings struct, from flags, `BERTH_*` environment and a TOML file.
//! * [`data_dir`]: the lock, the root credentials, the database path.
//! * [`serve`]: binds the listener (plain HTTP or TLS) and runs the API until shutdown.
//! * [`lb`]: the load balancer's data plane as a node (in-process or `berth lb`).
//! * [`top`]: `berth top`, services' utilization and request rates from CloudWatch.
//! * [`logs`]: `berth logs`, what tasks printed, from CloudWatch Logs.
//!
//! This is the only crate that picks a storage backend.

pub mod backup;
pub mod cli;
pub mod config;
pub mod data_dir;
pub mod lb;
pub mod logs;
pub mod serve;
pub mod top;
