//! Application Auto Scaling's pure pieces (spec B): [`plan`] decides a scalable target's new
//! desired count from a policy, its alarm's metric and the target's state; [`schedule`]
//! parses scheduled-action schedules and finds their next run. The API handlers and the
//! autoscaling background task (elsewhere in this crate) call them and apply the results.
//!
//! Must not: read a clock, touch the store, the network or any other I/O.

pub mod plan;
pub mod schedule;
