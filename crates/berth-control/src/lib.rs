//! `berth-control`: the application layer of the control plane.
//!
//! Handlers in `berth-api` call into here with domain commands and a verified
//! [`berth_types::Principal`]; this crate validates domain rules, writes intent to the store
//! in one transaction, and returns domain views. Later issues add the reconcilers and their
//! pure planners here.
//!
//! Must not: see wire types, speak HTTP, or pick a storage backend.

pub mod ecs;
pub mod paging;

use berth_types::{AccountId, Region};

/// Where this control plane lives: the account and region its ARNs carry.
#[derive(Debug, Clone)]
pub struct Scope {
    pub account: AccountId,
    pub region: Region,
}

impl Scope {
    /// `arn:aws:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:aws:{service}:{}:{}:{resource}",
            self.region, self.account
        )
    }

    pub fn root_arn(&self) -> String {
        format!("arn:aws:iam::{}:root", self.account)
    }
}
