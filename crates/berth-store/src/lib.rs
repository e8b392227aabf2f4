//! `berth-store`: durable metadata storage.
//!
//! The model is a small document store: every resource is a [`Record`] — a JSON document
//! under `(kind, key)` with a [`Generation`] that conditional writes compare, and an optional
//! `status` column the lists filter on. Keys sort the way listings must come out.
//!
//! * Writes go through [`Store::write`]: the closure runs on the single writer thread inside
//!   the database's transaction. Concurrent writes are **group-committed**: every closure
//!   waiting when the writer wakes runs in one transaction, which commits (and is fsynced)
//!   before any of them is acknowledged. The closures' writes are held in memory
//!   (`pending.rs`) and written at the commit, each record's net change once, in one statement
//!   per kind of change where the engine can; a closure that fails is undone there, without
//!   touching the others.
//! * Reads go through [`Store::read`] on a pool of WAL reader connections; they see every
//!   acknowledged write.
//!
//! * **Regions**: a store handle is for one region ([`Store::in_region`]); records of regional
//!   kinds are kept under `region \t key`, so every region has its own clusters, repositories,
//!   load balancers, … with the same names possible in each, while blob content and server-wide
//!   values are shared. Domain code sees only its region's keys, unprefixed; watchers see only
//!   their region's changes. Records written before regions existed belong to the data
//!   directory's home region ([`Store::assign_home_region`]).
//!
//! * **Engines**: the group commit, the cache, watchers and regions above are the store's
//!   (`store.rs`); a database engine provides only the record operations on a connection and
//!   transactions (`backend.rs`). The embedded engine is SQLite (`sqlite.rs`), the shared one PostgreSQL (`postgres.rs`);
//!   `tests/conformance.rs` is the suite every engine must pass.
//!
//! The app layer (`berth-control`) maps domain types to records; this crate knows no
//! resource types.

mod backend;
mod pending;
mod postgres;
mod sqlite;
mod store;

pub use store::{Fence, Reader, Store, Tx};

/// Writes a consistent copy of the embedded database at `path` to the new file `to`, while a
/// server may be writing to it (`berth backup`).
pub fn snapshot_embedded(path: &std::path::Path, to: &std::path::Path) -> Result<(), StoreError> {
    sqlite::snapshot(path, to)
}

use berth_types::Generation;

/// What a stored record is. The string is the `kind` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Cluster,
    TaskDefinition,
    TaskDefinitionFamily,
    AccountSetting,
    /// An ECS container instance: `cluster\nid`.
    ContainerInstance,
    /// When an instance's agent last checked in with some server: `cluster\nid`.
    Heartbeat,
    /// An ECS task: `cluster\nid`; the status column holds the desired status.
    Task,
    /// An ECS service: `cluster\nname`; the status column holds its status.
    Service,
    /// An application load balancer, by name.
    LoadBalancer,
    /// A target group, by name.
    TargetGroup,
    /// A listener: `load-balancer-name\nid`.
    Listener,
    /// A listener rule: `load-balancer-name\nlistener-id\nid`.
    Rule,
    /// An ECR repository, keyed by name.
    Repository,
    /// An image (manifest) in a repository: `repo\ndigest`.
    Image,
    /// A tag in a repository: `repo\ntag` → digest.
    ImageTag,
    /// A blob visible in a repository: `repo\ndigest`.
    RepositoryBlob,
    /// Small content (manifests, configs, small layers) kept in the store: `digest` → base64.
    Content,
    /// A large blob committed to the blob store: `digest` → its size and object.
    Blob,
    /// A blob upload in progress: `id` → its repository and staged state.
    Upload,
    /// Server-wide values (pagination-token key, …).
    Meta,
    /// IAM (global, like AWS's): a user, by its lower-cased name (names are unique
    /// regardless of case).
    IamUser,
    /// An access key of a user, by its id.
    IamAccessKey,
    /// A group, by its lower-cased name.
    IamGroup,
    /// A role, by its lower-cased name.
    IamRole,
    /// A customer-managed policy, by its lower-cased name.
    IamPolicy,
    /// A registry-level setting of a region's registry (its policy, …), by name.
    RegistrySetting,
    /// CloudWatch: the samples of one PutMetricData (or of one publication of Berth's own
    /// metrics), `b<sequence>`, until the rollup moves them into chunks; `seq` holds the
    /// last sequence number.
    MetricBatch,
    /// CloudWatch: one metric's buckets of one resolution over one stretch of time,
    /// `<period>\t<metric hash>\t<chunk start>`.
    MetricChunk,
    /// CloudWatch: a metric that has data (its identity, its last timestamp), by its hash.
    Metric,
    /// CloudWatch: a metric or composite alarm, by name.
    Alarm,
    /// CloudWatch: an alarm's history item, `<alarm name>\t<timestamp><sequence>`.
    AlarmHistory,
    /// Application Auto Scaling: a scalable target, by its resource id
    /// (`service/<cluster>/<service>`).
    ScalableTarget,
    /// Application Auto Scaling: a scaling policy, `<resource id>\t<policy name>`.
    ScalingPolicy,
    /// Application Auto Scaling: a scheduled action, `<resource id>\t<action name>`.
    ScheduledAction,
    /// Application Auto Scaling: a scaling activity, `<resource id>\t<start><id>`.
    ScalingActivity,
    /// CloudWatch Logs: a log group, by name.
    LogGroup,
    /// CloudWatch Logs: a log stream, `<group>\t<stream>`.
    LogStream,
    /// CloudWatch Logs: the events of one chunk of a stream (one accepted PutLogEvents, or
    /// several small ones appended), `<group>\t<incarnation>\t<sequence>`.
    LogChunk,
    /// CloudWatch Logs: what a chunk holds (stream, time range, count, bytes), under the
    /// chunk's key: small, so the chunks a read needs are found without loading events.
    LogSpan,
    /// CloudWatch Logs: a metric filter, `<group>\t<filter name>`.
    LogMetricFilter,
    /// CloudWatch Logs: a Logs Insights query and its results, by query id.
    LogQuery,
    /// CloudWatch Logs: what a deleted group or stream left for the sweeper to delete.
    LogSweep,
    /// ECR: a repository's lifecycle policy, when it was last evaluated and its last preview,
    /// by repository name.
    Lifecycle,
    /// ECR: the replication of one pushed image to each destination, `repo\ndigest`; the
    /// status column is `pending` while a destination is still to be copied to.
    Replication,
}

impl Kind {
    /// Records of these kinds belong to a region (AWS partitions resources by region); the
    /// others — content-addressed blobs, server-wide values — are shared by every region.
    pub fn is_regional(self) -> bool {
        !matches!(
            self,
            Kind::Content
                | Kind::Blob
                | Kind::Meta
                | Kind::IamUser
                | Kind::IamAccessKey
                | Kind::IamGroup
                | Kind::IamRole
                | Kind::IamPolicy
        )
    }

    pub const ALL: [Kind; 44] = [
        Kind::Cluster,
        Kind::TaskDefinition,
        Kind::TaskDefinitionFamily,
        Kind::AccountSetting,
        Kind::ContainerInstance,
        Kind::Heartbeat,
        Kind::Task,
        Kind::Service,
        Kind::LoadBalancer,
        Kind::TargetGroup,
        Kind::Listener,
        Kind::Rule,
        Kind::Repository,
        Kind::Image,
        Kind::ImageTag,
        Kind::RepositoryBlob,
        Kind::Content,
        Kind::Blob,
        Kind::Upload,
        Kind::Meta,
        Kind::IamUser,
        Kind::IamAccessKey,
        Kind::IamGroup,
        Kind::IamRole,
        Kind::IamPolicy,
        Kind::RegistrySetting,
        Kind::MetricBatch,
        Kind::MetricChunk,
        Kind::Metric,
        Kind::Alarm,
        Kind::AlarmHistory,
        Kind::ScalableTarget,
        Kind::ScalingPolicy,
        Kind::ScheduledAction,
        Kind::ScalingActivity,
        Kind::LogGroup,
        Kind::LogStream,
        Kind::LogChunk,
        Kind::LogSpan,
        Kind::LogMetricFilter,
        Kind::LogQuery,
        Kind::LogSweep,
        Kind::Lifecycle,
        Kind::Replication,
    ];

    /// The kind whose `kind` column is `s`.
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Cluster => "cluster",
            Kind::TaskDefinition => "task-definition",
            Kind::TaskDefinitionFamily => "task-definition-family",
            Kind::AccountSetting => "account-setting",
            Kind::ContainerInstance => "container-instance",
            Kind::Heartbeat => "agent-heartbeat",
            Kind::Task => "task",
            Kind::Service => "service",
            Kind::LoadBalancer => "load-balancer",
            Kind::TargetGroup => "target-group",
            Kind::Listener => "listener",
            Kind::Rule => "listener-rule",
            Kind::Repository => "repository",
            Kind::Image => "image",
            Kind::ImageTag => "image-tag",
            Kind::RepositoryBlob => "repository-blob",
            Kind::Content => "content",
            Kind::Blob => "blob",
            Kind::Upload => "blob-upload",
            Kind::Meta => "meta",
            Kind::IamUser => "iam-user",
            Kind::IamAccessKey => "iam-access-key",
            Kind::IamGroup => "iam-group",
            Kind::IamRole => "iam-role",
            Kind::IamPolicy => "iam-policy",
            Kind::RegistrySetting => "registry-setting",
            Kind::MetricBatch => "metric-batch",
            Kind::MetricChunk => "metric-chunk",
            Kind::Metric => "metric",
            Kind::Alarm => "alarm",
            Kind::AlarmHistory => "alarm-history",
            Kind::ScalableTarget => "scalable-target",
            Kind::ScalingPolicy => "scaling-policy",
            Kind::ScheduledAction => "scheduled-action",
            Kind::ScalingActivity => "scaling-activity",
            Kind::LogGroup => "log-group",
            Kind::LogStream => "log-stream",
            Kind::LogChunk => "log-chunk",
            Kind::LogSpan => "log-span",
            Kind::LogMetricFilter => "log-metric-filter",
            Kind::LogQuery => "log-query",
            Kind::LogSweep => "log-sweep",
            Kind::Lifecycle => "lifecycle",
            Kind::Replication => "replication",
        }
    }
}

/// The reads a write transaction ([`Tx`]) and a [`Reader`] share, so a lookup is written once
/// for both.
pub trait Read {
    fn get(&self, kind: Kind, key: &str) -> Result<Option<Record>, berth_types::Error>;
    fn list(&self, kind: Kind, q: &ListQuery<'_>) -> Result<Vec<Record>, berth_types::Error>;
}

/// An in-memory view kept in step with the records of some kinds (e.g. the control plane's
/// per-cluster capacity). Called on the writer thread: `changed` for each record a write job
/// inserted, updated (`Some(doc)`) or deleted (`None`), as soon as that job succeeds — so later
/// jobs of the same batch see it — and `reset` when a batch fails to commit or the store is
/// cleared, after which the view must be rebuilt from the store. A view used only inside write
/// jobs is therefore exactly what the store holds.
///
/// `committed` follows once the changes delivered since the last call are durable and
/// visible to every reader: a view that wakes someone who will read the store (an agent's
/// long-poll, a load balancer's configuration) wakes them there, not in `changed`.
pub trait Watcher: Send + Sync {
    fn watches(&self, kind: Kind) -> bool;
    fn changed(&self, kind: Kind, key: &str, doc: Option<&str>);
    fn reset(&self);
    fn committed(&self) {}
}

/// One stored document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub generation: Generation,
    pub status: Option<String>,
    pub doc: String,
}

/// A lease (the controllers' leadership, …) as the database's clock sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub name: String,
    pub holder: String,
    /// Bumped each time the lease changes hands: the fencing token of its holder's writes.
    pub epoch: u64,
    /// Milliseconds until it expires (negative: expired that long ago).
    pub remaining_ms: i64,
}

/// What a listing returns: keys in order, after `after` (exclusive), at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct ListQuery<'a> {
    pub prefix: &'a str,
    pub after: Option<&'a str>,
    pub status: Option<&'a str>,
    pub descending: bool,
    pub limit: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "the data directory's database was written by a newer Berth (schema {found}, this build knows {known})"
    )]
    TooNew { found: i64, known: i64 },
    #[error("the store has shut down")]
    Closed,
    #[error("cannot start the store's writer thread: {0}")]
    Thread(std::io::Error),
    #[error("database error: {0}")]
    Postgres(String),
    #[error("{0}")]
    Io(String),
    /// The database cannot be reached (down, restarting, connection lost): worth retrying.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    /// The database could not serialize the transaction with a concurrent one (SQLSTATE
    /// 40001, or a deadlock, 40P01): the whole transaction may be tried again.
    #[error("the database could not serialize the transaction: {0}")]
    Serialization(String),
    /// A batch's write found a record other than its jobs saw it (a key `insert_new` was
    /// told is new was taken, or something wrote without the commit lock): what it names.
    #[error("{0} was not as the batch writing it saw it")]
    Diverged(String),
}

impl StoreError {
    /// The domain error callers see (the store's own error stays in the log).
    pub fn to_domain(&self) -> berth_types::Error {
        match self {
            StoreError::Unavailable(_) | StoreError::Closed | StoreError::Serialization(_) => {
                berth_types::Error::Unavailable(self.to_string())
            }
            _ => berth_types::Error::internal(self),
        }
    }
}

impl From<StoreError> for berth_types::Error {
    fn from(e: StoreError) -> Self {
        e.to_domain()
    }
}

/// One committed batch of the change feed ([`Store::changes_since`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub rev: u64,
    /// The `(kind, stored key)` it wrote; `None` when it changed everything (a reset).
    pub keys: Option<Vec<(Kind, String)>>,
}
