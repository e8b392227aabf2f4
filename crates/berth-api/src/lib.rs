//! `berth-api`: the edge. One HTTP handler for every AWS API Berth serves.
//!
//! Request flow (DESIGN.md §4): [`route`] identifies service, protocol and operation from the
//! request alone; [`auth`] verifies SigV4 and yields the caller's [`Principal`]; the protocol
//! module decodes and validates the input against the model; the service module converts wire
//! input to a domain command, calls `berth-control`, and converts the domain result back to
//! wire output; [`errors`] maps the domain error to the protocol's error envelope.
//!
//! Wire shapes stop here: nothing below this crate sees a camelCase member name.

pub mod auth;
mod compat;
mod ecr;
mod ecs;
mod elbv2;
pub mod errors;
mod operation;
mod protocol;
mod registry;
pub mod route;
mod sts;

use auth::Keys;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response};
use berth_control::Scope;
use berth_control::ecs::Ecs;
use berth_control::paging::Pager;
use berth_store::Store;
use berth_types::Principal;
use std::sync::Arc;

pub use compat::render_markdown as compatibility_markdown;
pub use route::{Support, compatibility_table};

/// Everything the handlers need. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

struct Inner {
    scope: Scope,
    keys: Keys,
    ecs: Ecs,
    elb: berth_control::elb::Elb,
    registry: berth_registry::Registry,
    store: Store,
    pager: Pager,
    /// Key of registry (ECR) authorization tokens and layer download URLs.
    token_key: [u8; 32],
    tokens: auth::token::VerifiedTokens,
    /// The URL clients reach this server at (`http(s)://host:port`).
    endpoint: String,
    /// `POST /_berth/reset` exists only for `--ephemeral` servers.
    reset_enabled: bool,
    /// How long an agent may be silent before it counts as disconnected (its desired-state
    /// polls stay well inside it).
    agent_timeout: std::time::Duration,
    background: Arc<berth_control::background::Driver>,
}

/// What the API is built from.
pub struct ApiConfig {
    pub scope: Scope,
    pub keys: Keys,
    pub store: Store,
    pub blobs: berth_blob::BlobStore,
    /// Key of pagination tokens.
    pub paging_key: [u8; 32],
    /// Key of registry (ECR) authorization tokens.
    pub token_key: [u8; 32],
    /// `host[:port]` in repository URIs and registry challenges.
    pub registry_host: String,
    /// The URL clients reach this server at (`http(s)://host:port`), for URLs handed out.
    pub endpoint: String,
    pub reset_enabled: bool,
    /// The server's `--agent-timeout`.
    pub agent_timeout: std::time::Duration,
    /// The background tasks (handlers wake them; root reads and activates them).
    pub background: Arc<berth_control::background::Driver>,
}

impl ApiState {
    pub fn new(c: ApiConfig) -> Self {
        let pager = Pager::new(c.paging_key);
        let ecs = Ecs::new(
            c.scope.clone(),
            c.store.clone(),
            pager.clone(),
            c.background.clone(),
        );
        let elb = berth_control::elb::Elb::new(
            c.scope.clone(),
            c.store.clone(),
            pager.clone(),
            host_name(&c.registry_host),
        );
        let registry = berth_registry::Registry::new(
            c.scope.clone(),
            c.store.clone(),
            c.blobs,
            c.registry_host,
        );
        ApiState {
            inner: Arc::new(Inner {
                scope: c.scope,
                keys: c.keys,
                ecs,
                elb,
                registry,
                store: c.store,
                pager,
                token_key: c.token_key,
                tokens: Default::default(),
                endpoint: c.endpoint,
                reset_enabled: c.reset_enabled,
                agent_timeout: c.agent_timeout,
                background: c.background,
            }),
        }
    }

    pub fn scope(&self) -> &Scope {
        &self.inner.scope
    }

    /// The ECS domain (for its background reconcilers).
    pub fn ecs(&self) -> &Ecs {
        &self.inner.ecs
    }

    /// The ELB domain (for the load balancer's data plane).
    pub fn elb(&self) -> &berth_control::elb::Elb {
        &self.inner.elb
    }

    /// The background tasks.
    pub fn background(&self) -> &Arc<berth_control::background::Driver> {
        &self.inner.background
    }

    /// The registry domain (for its background reconcilers).
    pub fn registry(&self) -> &berth_registry::Registry {
        &self.inner.registry
    }
}

/// The host part of `host[:port]` (load balancers' DNS name: a name that resolves here).
fn host_name(host_port: &str) -> String {
    if let Ok(addr) = host_port.parse::<std::net::SocketAddr>() {
        return addr.ip().to_string();
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host.to_string(),
        _ => host_port.to_string(),
    }
}

/// The router of the whole API listener.
pub fn router(state: ApiState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// Largest request body accepted on the API (registry uploads stream elsewhere).
pub const MAX_BODY: usize = 16 * 1024 * 1024;

async fn handle(State(state): State<ApiState>, req: Request<Body>) -> Response<Body> {
    route::handle(&state, req).await
}

/// Internal calls get a principal too (used by tests and the all-in-one process).
pub fn root_principal(scope: &Scope, keys: &Keys) -> Principal {
    Principal {
        account: scope.account.clone(),
        arn: scope.root_arn(),
        access_key_id: keys.root_access_key_id().to_string(),
    }
}
