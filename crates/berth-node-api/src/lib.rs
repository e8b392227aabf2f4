//! `berth-node-api`: the typed, versioned protocol between the control plane and its nodes.
//!
//! The control plane (`berth-api` serves it, `berth-control` builds the documents), the agent
//! (`berth-agent`) and the load balancer node share only this crate: none of them sees another's
//! internals. Everything here is plain data with serde derives; the JSON is camelCase on the wire
//! (`POST`, SigV4-signed like every call).
//!
//! The agent side follows the desired-state pattern: an agent long-polls
//! [`agent::DESIRED`] with the generation it holds and gets its instance's **whole** desired
//! document back (every task with its resolved container specs) once the generation moved, or
//! `tasks: null` when nothing changed within the wait. It keeps the last document in a ledger, so
//! a restart converges from it at once, and reports what it observes in batches
//! ([`agent::REPORT`]).

pub mod agent;
pub mod awslogs;
pub mod lb;

/// The protocol version this build speaks; a document carries the version it was made for.
pub const VERSION: u32 = 1;
