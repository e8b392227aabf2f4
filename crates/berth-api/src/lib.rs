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
pub mod authorize;
mod autoscaling;
mod cloudwatch;
mod compat;
mod ecr;
mod ecs;
mod elbv2;
pub mod errors;
mod iam;
mod logs;
mod operation;
mod protocol;
pub mod pull_through;
mod registry;
pub mod replicate;
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
pub use pull_through::UpstreamSecret;
pub use replicate::{EcrSettings, ReplicationRemote};
pub use route::{Support, compatibility_table};

/// Everything the handlers need. Cheap to clone.
#[derive(Clone)]
pub struct ApiState {
    inner: Arc<Inner>,
}

/// One region's control plane: its domain handles over its partition of the store. Every
/// region a request names gets one, made on first use.
pub struct Regional {
    pub scope: Scope,
    pub ecs: Ecs,
    pub elb: berth_control::elb::Elb,
    pub registry: berth_registry::Registry,
    pub cloudwatch: berth_control::cloudwatch::CloudWatch,
    pub autoscaling: berth_control::autoscaling::AutoScaling,
    /// CloudWatch Logs (its metric filters publish to `cloudwatch`).
    pub logs: berth_control::logs::Logs,
    /// Pagination tokens of this region's listings (keyed per region: a token of one region
    /// is refused in another).
    pub pager: Pager,
}

struct Inner {
    /// The account, and the home region: where records from before regions belong, and the
    /// default of `berth credentials` and the local agent.
    scope: Scope,
    keys: Keys,
    store: Store,
    blobs: berth_blob::Blobs,
    paging_key: [u8; 32],
    registry_host: String,
    regions: std::sync::RwLock<std::collections::HashMap<String, Arc<Regional>>>,
    /// Regions other servers sharing the store created resources in, not made here yet.
    discovered: Arc<NewRegions>,
    /// Key of registry (ECR) authorization tokens and layer download URLs.
    token_key: [u8; 32],
    /// Key of temporary credentials (STS sessions), derived from the token key.
    sts_key: [u8; 32],
    iam: berth_control::iam::Iam,
    /// `enforce` or `audit` (log would-be denials, allow).
    iam_mode: IamMode,
    /// Added to the real clock for credential expiry (tests move it with
    /// `POST /_berth/clock`, ephemeral servers only; SigV4's skew check keeps real time).
    clock_offset_secs: std::sync::atomic::AtomicI64,
    /// When this server last noted each access key's use (it writes at most every few minutes).
    key_use_noted: std::sync::Mutex<std::collections::HashMap<String, i64>>,
    tokens: auth::token::VerifiedTokens,
    signing_keys: berth_aws::sigv4::SigningKeys,
    /// The URL clients reach this server at (`http(s)://host:port`).
    endpoint: String,
    /// `POST /_berth/reset` exists only for `--ephemeral` servers.
    reset_enabled: bool,
    /// How long an agent may be silent before it counts as disconnected (its desired-state
    /// polls stay well inside it).
    agent_timeout: std::time::Duration,
    background: Arc<berth_control::background::Driver>,
    /// CloudWatch's clock (the system clock unless a test runs it faster).
    clock: berth_control::clock::Clock,
    /// ECR's replication remotes and pull-through cache secrets.
    ecr: EcrSettings,
    /// Clients of other registries (replication remotes, pull-through upstreams).
    clients: replicate::Clients,
    /// Every region's pull-through cache rules, in memory.
    pull_through_rules: Arc<pull_through::RuleCache>,
}

/// Notes the regions of new clusters, load balancers and repositories (what the background
/// tasks and the data plane work on), wherever they were created.
#[derive(Default)]
struct NewRegions(std::sync::Mutex<std::collections::HashSet<String>>);

impl berth_store::Watcher for NewRegions {
    fn watches(&self, kind: berth_store::Kind) -> bool {
        matches!(
            kind,
            berth_store::Kind::Cluster
                | berth_store::Kind::LoadBalancer
                | berth_store::Kind::Repository
        )
    }
    fn changed(&self, _: berth_store::Kind, key: &str, doc: Option<&str>) {
        if let (Some((region, _)), Some(_)) = (key.split_once('\t'), doc) {
            let mut found = self.0.lock().expect("new regions");
            if !found.contains(region) {
                found.insert(region.to_string());
            }
        }
    }
    fn reset(&self) {}
}

/// What the API is built from.
pub struct ApiConfig {
    /// The account and the home region.
    pub scope: Scope,
    pub keys: Keys,
    /// The whole store (every region's partition).
    pub store: Store,
    pub blobs: berth_blob::Blobs,
    /// Key of pagination tokens.
    pub paging_key: [u8; 32],
    /// Key of registry (ECR) authorization tokens.
    pub token_key: [u8; 32],
    pub iam_mode: IamMode,
    /// `host[:port]` in repository URIs and registry challenges.
    pub registry_host: String,
    /// The URL clients reach this server at (`http(s)://host:port`), for URLs handed out.
    pub endpoint: String,
    pub reset_enabled: bool,
    /// The server's `--agent-timeout`.
    pub agent_timeout: std::time::Duration,
    /// The background tasks (handlers wake them; root reads and activates them).
    pub background: Arc<berth_control::background::Driver>,
    /// CloudWatch's and Application Auto Scaling's clock.
    pub clock: berth_control::clock::Clock,
    /// ECR's replication remotes and pull-through cache secrets.
    pub ecr: EcrSettings,
}

impl ApiState {
    /// The API over `c.store`, with a control plane for the home region and for every region
    /// the store has records of.
    pub fn new(c: ApiConfig) -> Self {
        let state = ApiState {
            inner: Arc::new(Inner {
                scope: c.scope.clone(),
                keys: c.keys,
                store: c.store.clone(),
                blobs: c.blobs,
                paging_key: c.paging_key,
                registry_host: c.registry_host,
                regions: Default::default(),
                discovered: Default::default(),
                token_key: c.token_key,
                sts_key: derived_key(&c.token_key, b"sts", ""),
                iam: berth_control::iam::Iam::new(c.scope.account.clone(), c.store.clone()),
                iam_mode: c.iam_mode,
                clock_offset_secs: Default::default(),
                key_use_noted: Default::default(),
                tokens: Default::default(),
                signing_keys: Default::default(),
                endpoint: c.endpoint,
                reset_enabled: c.reset_enabled,
                agent_timeout: c.agent_timeout,
                background: c.background,
                clock: c.clock,
                ecr: c.ecr,
                clients: Default::default(),
                pull_through_rules: Default::default(),
            }),
        };
        state.home();
        state.inner.store.watch(state.inner.discovered.clone());
        state
            .inner
            .store
            .watch(state.inner.pull_through_rules.clone());
        for r in state.inner.store.regions().unwrap_or_default() {
            if let Ok(region) = berth_types::Region::parse(&r) {
                state.region(&region);
            }
        }
        state
    }

    /// The account and the home region.
    pub fn scope(&self) -> &Scope {
        &self.inner.scope
    }

    /// The control plane of `region` (made on first use).
    pub fn region(&self, region: &berth_types::Region) -> Arc<Regional> {
        if let Some(r) = self
            .inner
            .regions
            .read()
            .expect("regions")
            .get(region.as_str())
        {
            return r.clone();
        }
        let mut regions = self.inner.regions.write().expect("regions");
        regions
            .entry(region.as_str().to_string())
            .or_insert_with(|| Arc::new(self.make_region(region)))
            .clone()
    }

    fn make_region(&self, region: &berth_types::Region) -> Regional {
        let c = &self.inner;
        let scope = Scope {
            account: c.scope.account.clone(),
            region: region.clone(),
        };
        let store = c.store.in_region(region.as_str());
        let pager = Pager::new(region_key(&c.paging_key, region.as_str()));
        let ecs = Ecs::new(
            scope.clone(),
            store.clone(),
            pager.clone(),
            c.background.clone(),
        )
        .storing_check_ins_every((c.agent_timeout / 4).clamp(
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(10),
        ))
        .reporting_stats_every(c.clock.real(std::time::Duration::from_secs(60)));
        let cloudwatch = berth_control::cloudwatch::CloudWatch::new(
            scope.clone(),
            store.clone(),
            pager.clone(),
            c.clock,
            c.background.clone(),
        );
        Regional {
            autoscaling: berth_control::autoscaling::AutoScaling::new(
                scope.clone(),
                store.clone(),
                c.clock,
                ecs.clone(),
                cloudwatch.clone(),
                c.background.clone(),
            ),
            ecs,
            elb: berth_control::elb::Elb::new(
                scope.clone(),
                store.clone(),
                pager.clone(),
                host_name(&c.registry_host),
            )
            .reporting_every(c.clock.real(std::time::Duration::from_secs(60))),
            registry: berth_registry::Registry::new(
                scope.clone(),
                store.clone(),
                c.blobs.clone(),
                c.registry_host.clone(),
            ),
            cloudwatch: cloudwatch.clone(),
            logs: berth_control::logs::Logs::new(
                scope.clone(),
                store,
                pager.clone(),
                c.clock,
                cloudwatch,
                c.background.clone(),
            ),
            pager,
            scope,
        }
    }

    /// The home region's control plane.
    pub fn home(&self) -> Arc<Regional> {
        self.region(&self.inner.scope.region.clone())
    }

    /// Every region's control plane so far (for the background tasks), those of regions
    /// another server sharing the store started using included.
    pub fn regions(&self) -> Vec<Arc<Regional>> {
        let found = std::mem::take(&mut *self.inner.discovered.0.lock().expect("new regions"));
        for r in found {
            if let Ok(region) = berth_types::Region::parse(&r) {
                self.region(&region);
            }
        }
        self.inner
            .regions
            .read()
            .expect("regions")
            .values()
            .cloned()
            .collect()
    }

    /// The key of registry authorization tokens and layer URLs.
    pub(crate) fn token_key(&self) -> &[u8; 32] {
        &self.inner.token_key
    }

    /// The key of temporary credentials.
    pub(crate) fn sts_key(&self) -> &[u8; 32] {
        &self.inner.sts_key
    }

    /// The account's IAM.
    pub fn iam(&self) -> &berth_control::iam::Iam {
        &self.inner.iam
    }

    pub fn iam_mode(&self) -> IamMode {
        self.inner.iam_mode
    }

    /// Now, Unix seconds, on the clock credentials expire by.
    pub fn now(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
            + self
                .inner
                .clock_offset_secs
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves the credentials' clock forward (ephemeral servers' `POST /_berth/clock`).
    pub(crate) fn advance_clock(&self, secs: i64) {
        self.inner
            .clock_offset_secs
            .fetch_add(secs, std::sync::atomic::Ordering::Relaxed);
    }

    /// Records that a user's access key was used (`GetAccessKeyLastUsed`), at most every
    /// five minutes per key and server, in the background.
    pub(crate) fn note_key_used(&self, akid: &str, _user: &str, service: &str, region: &str) {
        let now = self.now();
        {
            let mut noted = self.inner.key_use_noted.lock().expect("key use");
            if noted.get(akid).is_some_and(|t| now - t < 300) {
                return;
            }
            if noted.len() >= 10_000 {
                noted.clear();
            }
            noted.insert(akid.to_string(), now);
        }
        let (iam, akid, service, region) = (
            self.inner.iam.clone(),
            akid.to_string(),
            service.to_string(),
            region.to_string(),
        );
        tokio::spawn(async move {
            if let Err(e) = iam.note_key_used(&akid, &service, &region).await {
                tracing::debug!(error = %e, "could not note an access key's use");
            }
        });
    }

    /// The background tasks.
    pub fn background(&self) -> &Arc<berth_control::background::Driver> {
        &self.inner.background
    }

    /// A registry over every region's records (keys carry their region): for what spans
    /// regions, like collecting the content they share.
    pub fn registry_of_every_region(&self) -> berth_registry::Registry {
        berth_registry::Registry::new(
            self.inner.scope.clone(),
            self.inner.store.clone(),
            self.inner.blobs.clone(),
            self.inner.registry_host.clone(),
        )
    }

    /// CloudWatch's and Application Auto Scaling's clock.
    pub fn clock(&self) -> &berth_control::clock::Clock {
        &self.inner.clock
    }

    /// The store (every region's partition: for what is shared, like the registry's content).
    pub fn store(&self) -> &Store {
        &self.inner.store
    }
}

impl ApiState {
    /// Runs the actions alarms fired in `region` (writing under `fence`, the evaluator's term)
    /// and records each outcome in the alarm's history: Application Auto Scaling policies
    /// scale; Berth delivers no other kind.
    pub async fn alarm_actions(
        &self,
        region: &Regional,
        fence: Option<&berth_store::Fence>,
        actions: Vec<berth_control::cloudwatch::FiredAction>,
    ) {
        let autoscaling = region.autoscaling.fenced(fence);
        let cloudwatch = region.cloudwatch.fenced(fence);
        for action in actions {
            let outcome = if berth_control::cloudwatch::is_scaling_policy(&action.arn) {
                autoscaling.policy_fired(&action).await
            } else {
                Err(format!(
                    "Berth does not deliver {} actions",
                    action.arn.split(':').nth(2).unwrap_or("these")
                ))
            };
            if let Err(e) = cloudwatch.action_recorded(&action, outcome).await {
                tracing::warn!(error = %e, alarm = %action.alarm, "could not record an alarm action");
            }
        }
    }
}

/// A region's own key, derived from a server-wide one.
fn region_key(key: &[u8; 32], region: &str) -> [u8; 32] {
    derived_key(key, b"region", region)
}

/// A key for one use (`label`, `name`), derived from a server-wide one.
fn derived_key(key: &[u8; 32], label: &[u8], name: &str) -> [u8; 32] {
    use hmac::Mac;
    let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    m.update(label);
    m.update(b"\0");
    m.update(name.as_bytes());
    m.finalize().into_bytes().into()
}

/// What IAM does with a request its policies do not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IamMode {
    /// Refuse it (the default).
    #[default]
    Enforce,
    /// Log the denial, let the request through.
    Audit,
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
        region: scope.region.clone(),
        arn: scope.root_arn(),
        access_key_id: keys.root_access_key_id().to_string(),
        caller: berth_types::Caller::Root,
    }
}
