//! `berth-control`: the application layer of the control plane.
//!
//! Handlers in `berth-api` call into here with domain commands and a verified
//! [`berth_types::Principal`]; this crate validates domain rules, writes intent to the store
//! in one transaction, and returns domain views. Later issues add the reconcilers and their
//! pure planners here.
//!
//! Must not: see wire types, speak HTTP, or pick a storage backend.

pub mod autoscaling;
pub mod background;
pub mod clock;
pub mod cloudwatch;
pub mod ecs;
pub mod elb;
pub mod format;
pub mod iam;
pub mod leader;
pub mod logs;
pub mod paging;
pub mod placement;
mod records;
pub mod rollout;

pub use berth_types::Scope;
