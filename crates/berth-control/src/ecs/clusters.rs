//! Clusters (spec/ecs.md §2).

use super::{Ecs, Failure, load, validate_tags};
use crate::paging::{Page, PageRequest};
use berth_store::{Kind, ListQuery, Tx};
use berth_types::ecs::{Cluster, ClusterName, ClusterSetting, ClusterStatus};
use berth_types::shapes::ecs::{
    CapacityProviderStrategyItem, ClusterConfiguration, ClusterServiceConnectDefaultsRequest,
};
use berth_types::{Error, Generation, Tag, Timestamp};

/// `CreateCluster` in domain terms.
#[derive(Debug, Clone, Default)]
pub struct CreateCluster {
    pub name: Option<String>,
    pub tags: Vec<Tag>,
    pub settings: Vec<ClusterSetting>,
    pub configuration: Option<ClusterConfiguration>,
    pub capacity_providers: Vec<String>,
    pub default_capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
    pub service_connect_defaults: Option<ClusterServiceConnectDefaultsRequest>,
}

/// `UpdateCluster` / `UpdateClusterSettings` in domain terms: `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct UpdateCluster {
    pub settings: Option<Vec<ClusterSetting>>,
    pub configuration: Option<ClusterConfiguration>,
    pub service_connect_defaults: Option<ClusterServiceConnectDefaultsRequest>,
}

/// The derived counters of a cluster. Services arrive with the service work; until then their
/// count is truly zero.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterCounts {
    pub registered_container_instances: u32,
    pub running_tasks: u32,
    pub pending_tasks: u32,
    pub active_services: u32,
}

/// Capacity providers every account has.
const BUILT_IN_PROVIDERS: [&str; 2] = ["FARGATE", "FARGATE_SPOT"];

fn validate_settings(settings: &[ClusterSetting]) -> Result<(), Error> {
    for s in settings {
        if s.name != "containerInsights" {
            return Err(Error::InvalidParameter(format!(
                "Unknown cluster setting '{}'. The only cluster setting is containerInsights.",
                s.name
            )));
        }
        if !matches!(s.value.as_str(), "enabled" | "disabled" | "enhanced") {
            return Err(Error::InvalidParameter(
                "The value of containerInsights must be enabled, enhanced or disabled.".into(),
            ));
        }
    }
    Ok(())
}

fn merge_settings(current: &mut Vec<ClusterSetting>, new: Vec<ClusterSetting>) {
    for s in new {
        match current.iter_mut().find(|c| c.name == s.name) {
            Some(c) => c.value = s.value,
            None => current.push(s),
        }
    }
}

pub(super) fn get_active(tx: &Tx<'_>, name: &ClusterName) -> Result<(Generation, Cluster), Error> {
    match load::<Cluster>(tx.get(Kind::Cluster, name.as_str())?)? {
        Some((g, c)) if c.status == ClusterStatus::Active => Ok((g, c)),
        _ => Err(Error::ClusterNotFound),
    }
}

pub(super) fn save(
    tx: &mut Tx<'_>,
    c: &Cluster,
    expected: Option<Generation>,
) -> Result<(), Error> {
    super::save(
        tx,
        Kind::Cluster,
        c.name.as_str(),
        Some(c.status.as_str()),
        c,
        expected,
    )
}

impl Ecs {
    /// Resolves a `cluster` parameter: a name, a cluster ARN, or absent (`default`).
    pub fn cluster_name(&self, given: Option<&str>) -> Result<ClusterName, Error> {
        let Some(given) = given else {
            return Ok(ClusterName::default_cluster());
        };
        let name = match given.starts_with("arn:") {
            true => self
                .scope
                .arn_resource("ecs", "cluster", given)
                .ok_or(Error::ClusterNotFound)?,
            false => given,
        };
        ClusterName::parse(name)
    }

    pub(super) fn cluster_get_active(
        &self,
        name: &ClusterName,
    ) -> Result<(Generation, Cluster), Error> {
        match self
            .store
            .read(|r| load::<Cluster>(r.get(Kind::Cluster, name.as_str())?))?
        {
            Some((g, c)) if c.status == ClusterStatus::Active => Ok((g, c)),
            _ => Err(Error::ClusterNotFound),
        }
    }

    /// `CreateCluster`: idempotent on the name of an ACTIVE cluster; an INACTIVE one is
    /// replaced by a new cluster of the same name.
    pub async fn cluster_create(&self, cmd: CreateCluster) -> Result<Cluster, Error> {
        let name = match &cmd.name {
            Some(n) => ClusterName::parse(n)?,
            None => ClusterName::default_cluster(),
        };
        validate_tags(&cmd.tags)?;
        validate_settings(&cmd.settings)?;
        for p in &cmd.capacity_providers {
            if !BUILT_IN_PROVIDERS.contains(&p.as_str()) {
                return Err(Error::InvalidParameter(format!(
                    "The specified capacity provider '{p}' does not exist. Specify a valid capacity provider and try again."
                )));
            }
        }
        for item in &cmd.default_capacity_provider_strategy {
            let provider = item.capacity_provider.as_str();
            if !cmd.capacity_providers.iter().any(|p| p == provider) {
                return Err(Error::InvalidParameter(format!(
                    "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider '{provider}' with the cluster and try again."
                )));
            }
        }
        let insights_default = self.setting_effective_default("containerInsights")?;
        self.store
            .write(move |tx| {
                let existing = load::<Cluster>(tx.get(Kind::Cluster, name.as_str())?)?;
                if let Some((_, c)) = &existing
                    && c.status == ClusterStatus::Active
                {
                    return Ok(c.clone());
                }
                let mut settings = vec![ClusterSetting {
                    name: "containerInsights".into(),
                    value: insights_default,
                }];
                merge_settings(&mut settings, cmd.settings);
                let cluster = Cluster {
                    name,
                    status: ClusterStatus::Active,
                    settings,
                    configuration: cmd.configuration,
                    capacity_providers: cmd.capacity_providers,
                    default_capacity_provider_strategy: cmd.default_capacity_provider_strategy,
                    service_connect_defaults: cmd.service_connect_defaults,
                    tags: cmd.tags,
                    created_at: Timestamp::now(),
                };
                save(tx, &cluster, existing.map(|(g, _)| g))?;
                Ok(cluster)
            })
            .await
    }

    /// `DescribeClusters`: found clusters (ACTIVE or INACTIVE) and `MISSING` failures.
    pub fn cluster_describe(
        &self,
        given: &[String],
    ) -> Result<(Vec<Cluster>, Vec<Failure>), Error> {
        let mut found = Vec::new();
        let mut failures = Vec::new();
        let defaults = [String::from("default")];
        let given = if given.is_empty() {
            &defaults[..]
        } else {
            given
        };
        for g in given {
            let name = self.cluster_name(Some(g)).ok();
            let rec = match &name {
                Some(n) => self
                    .store
                    .read(|r| load::<Cluster>(r.get(Kind::Cluster, n.as_str())?))?,
                None => None,
            };
            match (rec, name) {
                (Some((_, c)), _) => found.push(c),
                (None, Some(n)) => failures.push(Failure {
                    arn: self.cluster_arn(&n),
                    reason: "MISSING".into(),
                    detail: None,
                }),
                (None, None) => failures.push(Failure {
                    arn: g.clone(),
                    reason: "MISSING".into(),
                    detail: None,
                }),
            }
        }
        Ok((found, failures))
    }

    /// The counters of a cluster (see [`ClusterCounts`]).
    pub fn cluster_counts(&self, cluster: &Cluster) -> Result<ClusterCounts, Error> {
        if cluster.status != ClusterStatus::Active {
            return Ok(ClusterCounts::default());
        }
        let usage = self.instance_usage(&cluster.name)?;
        Ok(ClusterCounts {
            registered_container_instances: self.instances_registered(&cluster.name)?.len() as u32,
            running_tasks: usage.values().map(|u| u.running).sum(),
            pending_tasks: usage.values().map(|u| u.pending).sum(),
            active_services: self.services_of(&cluster.name, Some("ACTIVE"))?.len() as u32,
        })
    }

    /// `ListClusters`: ARNs of ACTIVE clusters, by name.
    pub fn cluster_list(&self, page: &PageRequest) -> Result<Page<String>, Error> {
        self.page(
            Kind::Cluster,
            "ListClusters",
            ListQuery {
                status: Some(ClusterStatus::Active.as_str()),
                ..Default::default()
            },
            page,
            (100, 100),
            |r| Ok(self.scope.arn("ecs", &format!("cluster/{}", r.key))),
        )
    }

    /// `DeleteCluster`: the cluster becomes INACTIVE (and stays describable).
    pub async fn cluster_delete(&self, name: ClusterName) -> Result<Cluster, Error> {
        self.store
            .write(move |tx| {
                let (g, mut c) = get_active(tx, &name)?;
                if super::instances::any_registered(tx, &name)? {
                    return Err(Error::ClusterContainsContainerInstances);
                }
                if super::services::any_live(tx, &name)? {
                    return Err(Error::ClusterContainsServices);
                }
                if super::tasks::any_active(tx, &name)? {
                    return Err(Error::ClusterContainsTasks);
                }
                c.status = ClusterStatus::Inactive;
                save(tx, &c, Some(g))?;
                Ok(c)
            })
            .await
    }

    /// `UpdateCluster` and `UpdateClusterSettings`.
    pub async fn cluster_update(
        &self,
        name: ClusterName,
        cmd: UpdateCluster,
    ) -> Result<Cluster, Error> {
        if let Some(s) = &cmd.settings {
            validate_settings(s)?;
        }
        self.store
            .write(move |tx| {
                let (g, mut c) = get_active(tx, &name)?;
                if let Some(s) = cmd.settings {
                    merge_settings(&mut c.settings, s);
                }
                if let Some(conf) = cmd.configuration {
                    c.configuration = Some(conf);
                }
                if let Some(d) = cmd.service_connect_defaults {
                    c.service_connect_defaults = Some(d);
                }
                save(tx, &c, Some(g))?;
                Ok(c)
            })
            .await
    }
}
