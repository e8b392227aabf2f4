//! The ECS application layer: clusters, task definitions, tags and account settings
//! (spec/ecs.md §1, §2, §4). Each public method is one operation's domain logic; every write
//! runs inside one store transaction.

mod capacity;
mod clusters;
mod instances;
mod liveness;
mod node;
mod scheduler;
mod service_tasks;
mod services;
mod settings;
mod targets;
mod task_definitions;
mod tasks;

pub use capacity::InstanceUsage;
pub use clusters::{ClusterCounts, CreateCluster, UpdateCluster};
pub use instances::{MAX_CUSTOM_ATTRIBUTES, RegisterInstance, TargetedAttribute};
pub use liveness::{InstanceLiveness, LivenessStatus};
pub use node::Utilization;
pub use scheduler::{ServiceScheduler, breaker_threshold};
pub use services::{CreateService, DeploymentConfiguration, MAX_EVENTS, UpdateService};
pub(crate) use services::{scale_service, service_in};
pub use settings::{ListAccountSettings, SETTING_NAMES};
pub use task_definitions::{FamilyStatusFilter, ListTaskDefinitions, RegisterTaskDefinition};
pub use tasks::{ContainerReport, ListTasks, MAX_RUN_COUNT, RunTask, TaskReport};

use crate::Scope;
use crate::paging::{Page, PageRequest, Pager};
use crate::records::{load, save};
use berth_store::{Kind, ListQuery, Record, Store};
use berth_types::ecs::{ClusterName, Family, Service};
use berth_types::{Error, Tag};
use serde::de::DeserializeOwned;

/// Tags per resource (spec/ecs.md §10).
pub const MAX_TAGS: usize = 50;

/// A `failures[]` entry of Describe*/Delete* responses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub arn: String,
    pub reason: String,
    pub detail: Option<String>,
}

/// The ECS control plane handle. Cheap to clone.
#[derive(Clone)]
pub struct Ecs {
    scope: Scope,
    store: Store,
    pager: Pager,
    /// When each instance's agent last checked in (soft state: after a restart every agent
    /// gets a full timeout to check in again).
    heartbeats: std::sync::Arc<liveness::Heartbeats>,
    /// A change counter per instance that agents long-poll (`instance_wait`).
    changes: std::sync::Arc<liveness::Changes>,
    /// Per-cluster capacity, kept in step with the store (placement reads it).
    capacity: std::sync::Arc<capacity::Capacity>,
    /// Every service's tasks, kept in step with the store (the service scheduler reads them).
    service_tasks: std::sync::Arc<service_tasks::ServiceTasks>,
    /// The background tasks handlers wake when they write intent.
    background: std::sync::Arc<crate::background::Driver>,
    /// Task definitions as last decoded (they are read far more often than written).
    task_definitions: std::sync::Arc<crate::records::Decoded<berth_types::ecs::TaskDefinition>>,
    /// How often agents report their tasks' usage (a minute of CloudWatch's clock, in real
    /// milliseconds).
    stats_interval_ms: u64,
}

/// What an ARN given to the tagging operations names.
enum Taggable {
    Cluster(ClusterName),
    TaskDefinition(Family, u32),
    Service(ClusterName, String),
}

impl Ecs {
    /// The same handle, writing only while `fence` holds (a controller's term; `None`:
    /// unfenced).
    pub fn fenced(&self, fence: Option<&berth_store::Fence>) -> Self {
        let mut h = self.clone();
        if let Some(f) = fence {
            h.store = h.store.fenced(f.clone());
        }
        h
    }
    pub fn new(
        scope: Scope,
        store: Store,
        pager: Pager,
        background: std::sync::Arc<crate::background::Driver>,
    ) -> Self {
        let capacity = std::sync::Arc::new(capacity::Capacity::default());
        store.watch(capacity.clone());
        let service_tasks = std::sync::Arc::new(service_tasks::ServiceTasks::default());
        store.watch(service_tasks.clone());
        let changes = std::sync::Arc::new(liveness::Changes::default());
        store.watch(changes.clone());
        Ecs {
            scope,
            store,
            pager,
            heartbeats: Default::default(),
            changes,
            capacity,
            service_tasks,
            background,
            task_definitions: std::sync::Arc::new(crate::records::Decoded::new(4096)),
            stats_interval_ms: 60_000,
        }
    }

    /// Agents report their tasks' usage every `interval` (real time).
    pub fn reporting_stats_every(mut self, interval: std::time::Duration) -> Self {
        self.stats_interval_ms = (interval.as_millis() as u64).max(200);
        self
    }

    /// Wakes the service scheduler (intent changed: a service, its tasks, its instances).
    pub(crate) fn wake_scheduler(&self) {
        self.background
            .activate(crate::background::SERVICE_SCHEDULER);
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    pub fn cluster_arn(&self, name: &ClusterName) -> String {
        self.scope.arn("ecs", &format!("cluster/{name}"))
    }

    pub fn task_definition_arn(&self, family: &Family, revision: u32) -> String {
        self.scope
            .arn("ecs", &format!("task-definition/{family}:{revision}"))
    }

    fn taggable(&self, arn: &str) -> Result<Taggable, Error> {
        let invalid = || Error::InvalidParameter(format!("Invalid resource ARN: {arn}"));
        let parsed = berth_types::ArnRef::parse(arn).ok_or_else(invalid)?;
        if parsed.service != "ecs" {
            return Err(invalid());
        }
        if parsed.account != self.scope.account.as_str()
            || parsed.region != self.scope.region.as_str()
        {
            return Err(Error::ResourceNotFound(
                "The specified resource could not be found.".into(),
            ));
        }
        match parsed.resource.split_once('/') {
            Some(("cluster", name)) => Ok(Taggable::Cluster(
                ClusterName::parse(name).map_err(|_| invalid())?,
            )),
            Some(("task-definition", rest)) => {
                let (family, rev) = rest.rsplit_once(':').ok_or_else(invalid)?;
                let rev = rev.parse::<u32>().map_err(|_| invalid())?;
                Ok(Taggable::TaskDefinition(
                    Family::parse(family).map_err(|_| invalid())?,
                    rev,
                ))
            }
            Some(("service", rest)) => match rest.split_once('/') {
                Some((c, n)) => Ok(Taggable::Service(
                    ClusterName::parse(c).map_err(|_| invalid())?,
                    n.to_string(),
                )),
                None => Err(invalid()),
            },
            Some(("task" | "container-instance" | "capacity-provider" | "task-set", _)) => Err(
                Error::ResourceNotFound("The specified resource could not be found.".into()),
            ),
            _ => Err(invalid()),
        }
    }

    /// `ListTagsForResource`.
    pub fn tags_list(&self, arn: &str) -> Result<Vec<Tag>, Error> {
        match self.taggable(arn)? {
            Taggable::Cluster(name) => Ok(self.cluster_get_active(&name)?.1.tags),
            Taggable::TaskDefinition(family, rev) => Ok(self
                .store
                .read(|r| {
                    load::<berth_types::ecs::TaskDefinition>(
                        r.get(Kind::TaskDefinition, &task_definitions::key(&family, rev))?,
                    )
                })?
                .ok_or_else(td_not_found)?
                .1
                .tags),
            Taggable::Service(cluster, name) => Ok(self
                .store
                .read(|r| load::<Service>(r.get(Kind::Service, &services::key(&cluster, &name))?))?
                .ok_or(Error::ServiceNotFound)?
                .1
                .tags),
        }
    }

    /// `TagResource`.
    pub async fn tags_add(&self, arn: &str, tags: Vec<Tag>) -> Result<(), Error> {
        validate_tags(&tags)?;
        self.retag(arn, move |current| {
            berth_types::tags_merge(current, tags);
            if current.len() > MAX_TAGS {
                return Err(Error::InvalidParameter(format!(
                    "The resource would have more than {MAX_TAGS} tags."
                )));
            }
            Ok(())
        })
        .await
    }

    /// `UntagResource`.
    pub async fn tags_remove(&self, arn: &str, keys: Vec<String>) -> Result<(), Error> {
        self.retag(arn, move |current| {
            current.retain(|t| !keys.contains(&t.key));
            Ok(())
        })
        .await
    }

    async fn retag(
        &self,
        arn: &str,
        change: impl FnOnce(&mut Vec<Tag>) -> Result<(), Error> + Send + 'static,
    ) -> Result<(), Error> {
        match self.taggable(arn)? {
            Taggable::Cluster(name) => {
                self.store
                    .write(move |tx| {
                        let (g, mut c) = clusters::get_active(tx, &name)?;
                        change(&mut c.tags)?;
                        clusters::save(tx, &c, Some(g))
                    })
                    .await
            }
            Taggable::TaskDefinition(family, rev) => {
                self.store
                    .write(move |tx| {
                        let key = task_definitions::key(&family, rev);
                        let (g, mut td) = load::<berth_types::ecs::TaskDefinition>(
                            tx.get(Kind::TaskDefinition, &key)?,
                        )?
                        .ok_or_else(td_not_found)?;
                        change(&mut td.tags)?;
                        save(
                            tx,
                            Kind::TaskDefinition,
                            &key,
                            Some(td.status.as_str()),
                            &td,
                            Some(g),
                        )
                    })
                    .await
            }
            Taggable::Service(cluster, name) => {
                self.store
                    .write(move |tx| {
                        let (g, mut s) = services::get(tx, &cluster, &name)?;
                        change(&mut s.tags)?;
                        services::put(tx, &s, Some(g))
                    })
                    .await
            }
        }
    }

    /// The `Describe*` of cluster resources: each given id, name or ARN (resolved by `id`) is
    /// found under `cluster\n<id>` or reported `MISSING` with the ARN of `resource/cluster/…`.
    fn describe_each<T: DeserializeOwned>(
        &self,
        kind: Kind,
        resource: &str,
        cluster: &ClusterName,
        given: &[String],
        id: impl for<'a> Fn(&'a str) -> Option<&'a str>,
    ) -> Result<(Vec<T>, Vec<Failure>), Error> {
        self.cluster_get_active(cluster)?;
        let mut found = Vec::new();
        let mut failures = Vec::new();
        for g in given {
            let rec = match id(g) {
                Some(id) => self
                    .store
                    .read(|r| r.get(kind, &format!("{cluster}\n{id}")))?,
                None => None,
            };
            match load::<T>(rec)? {
                Some((_, x)) => found.push(x),
                None => failures.push(Failure {
                    arn: if g.starts_with("arn:") {
                        g.clone()
                    } else {
                        self.scope.arn("ecs", &format!("{resource}/{cluster}/{g}"))
                    },
                    reason: "MISSING".into(),
                    detail: None,
                }),
            }
        }
        Ok((found, failures))
    }

    /// Every record of `kind` in `cluster` (keys `cluster\n…`), with `status` if given, decoded.
    fn cluster_records<T: DeserializeOwned>(
        &self,
        kind: Kind,
        cluster: &ClusterName,
        status: Option<&str>,
    ) -> Result<Vec<T>, Error> {
        let prefix = format!("{cluster}\n");
        let all = self
            .store
            .read(|r| crate::records::all_with(r, kind, &prefix, status))?;
        Ok(all.into_iter().map(|(_, x)| x).collect())
    }

    /// One page of `items` (sorted by `key`, filtered in memory), as ARNs.
    fn page_in_memory<T>(
        &self,
        scope: &str,
        page: &PageRequest,
        (default, max): (i32, i32),
        items: &[T],
        key: impl Fn(&T) -> &str,
        arn: impl Fn(&T) -> String,
    ) -> Result<Page<String>, Error> {
        let (limit, after) = self.page_start(scope, page, default, max)?;
        let start = match after {
            Some(a) => items
                .iter()
                .position(|x| key(x) > a.as_str())
                .unwrap_or(items.len()),
            None => 0,
        };
        let slice: Vec<&T> = items.iter().skip(start).take(limit).collect();
        let next_token = (start + slice.len() < items.len())
            .then(|| slice.last().map(|x| self.pager.encode(scope, key(x))))
            .flatten();
        Ok(Page {
            items: slice.into_iter().map(arn).collect(),
            next_token,
        })
    }

    /// Resolves a page request into a store listing: limit, start key.
    fn page_start(
        &self,
        scope: &str,
        page: &PageRequest,
        default: i32,
        max: i32,
    ) -> Result<(usize, Option<String>), Error> {
        let limit = match page.max_results {
            None => default,
            Some(n) if (1..=max).contains(&n) => n,
            Some(_) => {
                return Err(Error::InvalidParameter(format!(
                    "maxResults must be between 1 and {max}."
                )));
            }
        };
        let after = match &page.next_token {
            None => None,
            Some(t) => Some(self.pager.decode(scope, t)?),
        };
        Ok((limit as usize, after))
    }

    /// Lists one page of `kind` records; `limit + 1` rows are read to know whether another
    /// page follows.
    fn page<T>(
        &self,
        kind: Kind,
        scope: &str,
        query: ListQuery<'_>,
        page: &PageRequest,
        (default, max): (i32, i32),
        map: impl Fn(Record) -> Result<T, Error>,
    ) -> Result<Page<T>, Error> {
        let (limit, after) = self.page_start(scope, page, default, max)?;
        let rows = self.store.read(|r| {
            r.list(
                kind,
                &ListQuery {
                    after: after.as_deref(),
                    limit: limit + 1,
                    ..query
                },
            )
        })?;
        let more = rows.len() > limit;
        let mut items = Vec::with_capacity(limit);
        let mut last = None;
        for row in rows.into_iter().take(limit) {
            last = Some(row.key.clone());
            items.push(map(row)?);
        }
        Ok(Page {
            items,
            next_token: match (more, last) {
                (true, Some(k)) => Some(self.pager.encode(scope, &k)),
                _ => None,
            },
        })
    }
}

fn td_not_found() -> Error {
    Error::ResourceNotFound("The specified task definition does not exist.".into())
}

/// Tag rules shared by every ECS resource.
pub fn validate_tags(tags: &[Tag]) -> Result<(), Error> {
    if tags.len() > MAX_TAGS {
        return Err(Error::InvalidParameter(format!(
            "A resource can have at most {MAX_TAGS} tags."
        )));
    }
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 || t.value.chars().count() > 256 {
            return Err(Error::InvalidParameter(
                "Tag keys must be 1-128 characters and values at most 256 characters.".into(),
            ));
        }
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(Error::InvalidParameter(
                "Tag keys beginning with 'aws:' are reserved for AWS use.".into(),
            ));
        }
    }
    Ok(())
}
