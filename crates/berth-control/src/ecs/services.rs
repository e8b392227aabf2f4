//! Services (spec/ecs.md §7.1–§7.2): CreateService, UpdateService, DeleteService,
//! DescribeServices, ListServices. What runs is decided by the service scheduler
//! (`scheduler.rs`); these operations only record intent: the desired count, the deployments.
//!
//! Store layout: `service` records under `cluster\nname`, status column = the service status.

use super::{Ecs, Failure, load, save, validate_tags};
use crate::paging::{Page, PageRequest};
use crate::placement;
use berth_store::{Kind, ListQuery, Tx};
use berth_types::ecs::{
    ClusterName, Deployment, Service, ServiceEvent, TaskDefinition, TaskDefinitionStatus,
};
use berth_types::shapes::ecs::{
    LoadBalancer, NetworkConfiguration, PlacementConstraint, PlacementStrategy,
};
use berth_types::{Error, Generation, Tag, Timestamp};

/// Events a service keeps (newest first).
pub const MAX_EVENTS: usize = 100;

/// `CreateService` in domain terms.
#[derive(Debug, Clone, Default)]
pub struct CreateService {
    pub cluster: Option<String>,
    pub name: String,
    pub task_definition: Option<String>,
    pub desired_count: Option<i64>,
    pub launch_type: Option<String>,
    pub scheduling_strategy: Option<String>,
    pub placement_strategy: Vec<PlacementStrategy>,
    pub placement_constraints: Vec<PlacementConstraint>,
    pub deployment_configuration: Option<DeploymentConfiguration>,
    pub deployment_controller: Option<String>,
    pub health_check_grace_period_seconds: Option<i64>,
    pub load_balancers: Vec<LoadBalancer>,
    pub network_configuration: Option<NetworkConfiguration>,
    pub tags: Vec<Tag>,
    pub propagate_tags: Option<String>,
    pub enable_ecs_managed_tags: bool,
}

/// `deploymentConfiguration`.
#[derive(Debug, Clone, Default)]
pub struct DeploymentConfiguration {
    pub minimum_healthy_percent: Option<i64>,
    pub maximum_percent: Option<i64>,
    /// `deploymentCircuitBreaker {enable, rollback}`.
    pub circuit_breaker: Option<(bool, bool)>,
}

/// `UpdateService` in domain terms.
#[derive(Debug, Clone, Default)]
pub struct UpdateService {
    pub task_definition: Option<String>,
    pub desired_count: Option<i64>,
    pub force_new_deployment: bool,
    pub deployment_configuration: Option<DeploymentConfiguration>,
    pub placement_strategy: Option<Vec<PlacementStrategy>>,
    pub placement_constraints: Option<Vec<PlacementConstraint>>,
    pub health_check_grace_period_seconds: Option<i64>,
    pub load_balancers: Option<Vec<LoadBalancer>>,
    pub network_configuration: Option<NetworkConfiguration>,
    pub propagate_tags: Option<String>,
    pub enable_ecs_managed_tags: Option<bool>,
}

pub(super) fn key(cluster: &ClusterName, name: &str) -> String {
    format!("{cluster}\n{name}")
}

fn valid_name(name: &str) -> bool {
    (1..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new deployment id: `ecs-svc/` and 19 digits.
fn deployment_id() -> String {
    format!(
        "ecs-svc/{:019}",
        rand::random::<u64>() % 10_000_000_000_000_000_000
    )
}

/// A PRIMARY deployment of `family:revision` for `desired` tasks.
pub(super) fn new_deployment(s: &Service, desired: u32) -> Deployment {
    let id = deployment_id();
    let now = Timestamp::now();
    Deployment {
        rollout_state: "IN_PROGRESS".into(),
        rollout_state_reason: format!("ECS deployment {id} in progress."),
        id,
        status: "PRIMARY".into(),
        family: s.family.clone(),
        revision: s.revision,
        desired_count: desired,
        running_count: 0,
        pending_count: 0,
        failed_tasks: 0,
        launch_type: s.launch_type.clone(),
        created_at: now,
        updated_at: now,
    }
}

/// Makes `d` the PRIMARY deployment; the others become ACTIVE (drained by the scheduler).
pub(super) fn deploy(s: &mut Service, d: Deployment) {
    for old in &mut s.deployments {
        old.status = "ACTIVE".into();
    }
    s.deployments.insert(0, d);
    s.steady = false;
}

/// How long a repeated event message is suppressed (spec/ecs.md §7.1).
const REPEAT_AFTER_MS: i64 = 6 * 3600 * 1000;

/// Adds an event (newest first, at most [`MAX_EVENTS`]). A message equal to the newest event's
/// is dropped unless that one is older than 6 hours: a condition that persists across passes
/// (a task that cannot be placed, a throttle) is reported once.
pub(super) fn push_event(s: &mut Service, message: String) {
    let now = Timestamp::now();
    if s.events
        .first()
        .is_some_and(|e| e.message == message && now.0 - e.created_at.0 < REPEAT_AFTER_MS)
    {
        return;
    }
    s.events.insert(
        0,
        ServiceEvent {
            id: uuid::Uuid::new_v4().to_string(),
            created_at: now,
            message,
        },
    );
    s.events.truncate(MAX_EVENTS);
}

pub(super) fn get(
    tx: &Tx<'_>,
    cluster: &ClusterName,
    name: &str,
) -> Result<(Generation, Service), Error> {
    load::<Service>(tx.get(Kind::Service, &key(cluster, name))?)?.ok_or(Error::ServiceNotFound)
}

pub(super) fn put(tx: &mut Tx<'_>, s: &Service, expected: Option<Generation>) -> Result<(), Error> {
    save(
        tx,
        Kind::Service,
        &key(&s.cluster, &s.name),
        Some(&s.status),
        s,
        expected,
    )
}

/// A service as it is inside a write (Application Auto Scaling plans on it there).
pub(crate) fn service_in(
    tx: &Tx<'_>,
    cluster: &ClusterName,
    name: &str,
) -> Result<Option<Service>, Error> {
    Ok(load::<Service>(tx.get(Kind::Service, &key(cluster, name))?)?.map(|(_, s)| s))
}

/// Sets an ACTIVE service's desired count inside a write (Application Auto Scaling's change:
/// the PRIMARY deployment follows, as with UpdateService), with an event saying why.
pub(crate) fn scale_service(
    tx: &mut Tx<'_>,
    cluster: &ClusterName,
    name: &str,
    desired: i64,
    why: String,
) -> Result<Service, Error> {
    let (g, mut s) = get(tx, cluster, name)?;
    if s.status != "ACTIVE" {
        return Err(Error::ServiceNotActive);
    }
    s.desired_count = desired.clamp(0, 100_000) as u32;
    if let Some(primary) = s.deployments.first_mut() {
        primary.desired_count = s.desired_count;
    }
    s.steady = false;
    push_event(&mut s, why);
    put(tx, &s, Some(g))?;
    Ok(s)
}

/// Whether any service of `cluster` is not INACTIVE (inside a transaction).
pub(super) fn any_live(tx: &Tx<'_>, cluster: &ClusterName) -> Result<bool, Error> {
    let rows = tx.list(
        Kind::Service,
        &ListQuery {
            prefix: &format!("{cluster}\n"),
            limit: usize::MAX >> 1,
            ..Default::default()
        },
    )?;
    Ok(rows.iter().any(|r| r.status.as_deref() != Some("INACTIVE")))
}

fn check_percentages(strategy: &str, min: i64, max: i64) -> Result<(), Error> {
    if !(0..=100).contains(&min) {
        return Err(Error::InvalidParameter(
            "minimumHealthyPercent must be between 0 and 100.".into(),
        ));
    }
    if strategy == "DAEMON" && max > 100 {
        return Err(Error::InvalidParameter(
            "The maximumPercent for a service using the DAEMON scheduling strategy can be at most 100."
                .into(),
        ));
    }
    if max < 100 && strategy == "REPLICA" || max < min {
        return Err(Error::InvalidParameter(
            "maximumPercent must be at least 100 and at least minimumHealthyPercent.".into(),
        ));
    }
    Ok(())
}

fn check_placement(
    strategy: &[PlacementStrategy],
    constraints: &[PlacementConstraint],
) -> Result<(), Error> {
    if strategy.len() > 5 {
        return Err(Error::InvalidParameter(
            "At most 5 placement strategies.".into(),
        ));
    }
    if constraints.len() > 10 {
        return Err(Error::InvalidParameter(
            "At most 10 placement constraints.".into(),
        ));
    }
    placement::strategies_from(strategy).map_err(Error::InvalidParameter)?;
    placement::constraints_from(constraints).map_err(Error::InvalidParameter)?;
    Ok(())
}

/// Each `loadBalancers` entry names a container and a port its definition maps.
fn check_load_balancers(td: &TaskDefinition, lbs: &[LoadBalancer]) -> Result<(), Error> {
    if lbs.len() > 5 {
        return Err(Error::InvalidParameter(
            "A service can have at most 5 target groups.".into(),
        ));
    }
    for lb in lbs {
        let name = lb.container_name.as_deref().unwrap_or("");
        let port = lb.container_port.unwrap_or(-1);
        let container = td
            .spec
            .container_definitions
            .iter()
            .find(|c| c.name.as_deref() == Some(name))
            .ok_or_else(|| {
                Error::InvalidParameter(format!(
                    "The container {name} does not exist in the task definition."
                ))
            })?;
        let mapped = container
            .port_mappings
            .iter()
            .flatten()
            .any(|pm| pm.container_port == Some(port));
        if !mapped {
            return Err(Error::InvalidParameter(format!(
                "The container {name} did not have a container port {port} defined."
            )));
        }
    }
    Ok(())
}

impl Ecs {
    pub fn service_arn(&self, s: &Service) -> String {
        self.scope
            .arn("ecs", &format!("service/{}/{}", s.cluster, s.name))
    }

    /// The service name given as a name or an ARN of this cluster.
    fn service_name<'a>(&self, cluster: &ClusterName, given: &'a str) -> Option<&'a str> {
        if !given.starts_with("arn:") {
            return Some(given);
        }
        let rest = self.scope.arn_resource("ecs", "service", given)?;
        match rest.split_once('/') {
            Some((c, n)) if c == cluster.as_str() => Some(n),
            Some(_) => None,
            None => Some(rest),
        }
    }

    /// The name of a service given by name or ARN, in an ACTIVE cluster.
    fn service_named(&self, cluster: &ClusterName, given: &str) -> Result<String, Error> {
        self.cluster_get_active(cluster)?;
        self.service_name(cluster, given)
            .map(str::to_string)
            .ok_or(Error::ServiceNotFound)
    }

    /// An ACTIVE task definition, for a service.
    fn service_task_definition(
        &self,
        given: &str,
    ) -> Result<std::sync::Arc<TaskDefinition>, Error> {
        let td = self
            .task_definition_describe(given)
            .map_err(|_| Error::InvalidParameter("TaskDefinition not found.".into()))?;
        if td.status != TaskDefinitionStatus::Active {
            return Err(Error::InvalidParameter(format!(
                "TaskDefinition is inactive: {}:{}",
                td.family, td.revision
            )));
        }
        Ok(td)
    }

    /// `CreateService`.
    pub async fn service_create(&self, cmd: CreateService) -> Result<Service, Error> {
        let cluster = self.cluster_name(cmd.cluster.as_deref())?;
        self.cluster_get_active(&cluster)?;
        if !valid_name(&cmd.name) {
            return Err(Error::InvalidParameter(
                "Service names can have up to 255 letters, numbers, hyphens and underscores."
                    .into(),
            ));
        }
        validate_tags(&cmd.tags)?;
        match cmd.deployment_controller.as_deref() {
            None | Some("ECS") => {}
            Some(other) => {
                return Err(Error::InvalidParameter(format!(
                    "The {other} deployment controller is not supported; use ECS."
                )));
            }
        }
        let strategy = cmd
            .scheduling_strategy
            .clone()
            .unwrap_or_else(|| "REPLICA".into());
        let daemon = strategy == "DAEMON";
        let desired = match (daemon, cmd.desired_count) {
            (true, Some(_)) => {
                return Err(Error::InvalidParameter(
                    "The daemon scheduling strategy does not support a desired count for services."
                        .into(),
                ));
            }
            (true, None) => 0,
            (false, None) => {
                return Err(Error::InvalidParameter(
                    "desiredCount is required for a service using the REPLICA scheduling strategy."
                        .into(),
                ));
            }
            (false, Some(n)) if !(0..=100_000).contains(&n) => {
                return Err(Error::InvalidParameter(
                    "desiredCount must be between 0 and 100000.".into(),
                ));
            }
            (false, Some(n)) => n as u32,
        };
        if daemon && !cmd.placement_strategy.is_empty() {
            return Err(Error::InvalidParameter(
                "Placement strategies are not supported with the DAEMON scheduling strategy."
                    .into(),
            ));
        }
        check_placement(&cmd.placement_strategy, &cmd.placement_constraints)?;
        let conf = cmd.deployment_configuration.clone().unwrap_or_default();
        let min = conf
            .minimum_healthy_percent
            .unwrap_or(if daemon { 0 } else { 100 });
        let max = conf
            .maximum_percent
            .unwrap_or(if daemon { 100 } else { 200 });
        check_percentages(&strategy, min, max)?;
        let given_td = cmd
            .task_definition
            .as_deref()
            .ok_or_else(|| Error::InvalidParameter("taskDefinition is required.".into()))?;
        let td = self.service_task_definition(given_td)?;
        let launch_type = cmd.launch_type.clone().unwrap_or_else(|| "EC2".into());
        if launch_type == "FARGATE" {
            if daemon {
                return Err(Error::InvalidParameter(
                    "The DAEMON scheduling strategy is not supported with FARGATE.".into(),
                ));
            }
            if !td.compatibilities.iter().any(|c| c == "FARGATE") {
                return Err(Error::InvalidParameter(
                    "Task definition does not support launch_type FARGATE.".into(),
                ));
            }
        }
        check_load_balancers(&td, &cmd.load_balancers)?;
        let grace = cmd.health_check_grace_period_seconds.unwrap_or(0);
        if !(0..=2_147_483_647).contains(&grace) {
            return Err(Error::InvalidParameter(
                "healthCheckGracePeriodSeconds must not be negative.".into(),
            ));
        }
        let propagate = cmd.propagate_tags.clone().unwrap_or_else(|| "NONE".into());
        let mut placement_strategy = cmd.placement_strategy.clone();
        if placement_strategy.is_empty() && !daemon {
            // The default: spread across zones, then across instances.
            placement_strategy = vec![
                PlacementStrategy {
                    r#type: Some(berth_types::shapes::ecs::PlacementStrategyType::Spread),
                    field: Some("attribute:ecs.availability-zone".into()),
                },
                PlacementStrategy {
                    r#type: Some(berth_types::shapes::ecs::PlacementStrategyType::Spread),
                    field: Some("instanceId".into()),
                },
            ];
        }
        let mut service = Service {
            name: cmd.name.clone(),
            cluster: cluster.clone(),
            status: "ACTIVE".into(),
            scheduling_strategy: strategy,
            desired_count: desired,
            launch_type,
            family: td.family.clone(),
            revision: td.revision,
            placement_strategy,
            placement_constraints: cmd.placement_constraints.clone(),
            minimum_healthy_percent: min as u32,
            maximum_percent: max as u32,
            circuit_breaker_enable: conf.circuit_breaker.is_some_and(|c| c.0),
            circuit_breaker_rollback: conf.circuit_breaker.is_some_and(|c| c.1),
            health_check_grace_period_seconds: grace as u32,
            load_balancers: cmd.load_balancers.clone(),
            network_configuration: cmd.network_configuration.clone(),
            tags: cmd.tags.clone(),
            propagate_tags: propagate,
            enable_ecs_managed_tags: cmd.enable_ecs_managed_tags,
            created_at: Timestamp::now(),
            created_by: format!("arn:aws:iam::{}:root", self.scope.account.as_str()),
            deployments: Vec::new(),
            events: Vec::new(),
            completed: None,
            steady: false,
        };
        let d = new_deployment(&service, desired);
        service.deployments.push(d);
        self.store
            .write(move |tx| {
                let existing =
                    load::<Service>(tx.get(Kind::Service, &key(&cluster, &service.name))?)?;
                match existing {
                    Some((_, s)) if s.status != "INACTIVE" => {
                        let same = s.family == service.family
                            && s.revision == service.revision
                            && s.desired_count == service.desired_count
                            && s.launch_type == service.launch_type
                            && s.scheduling_strategy == service.scheduling_strategy;
                        if same {
                            Ok(s)
                        } else {
                            Err(Error::InvalidParameter(
                                "Creation of service was not idempotent.".into(),
                            ))
                        }
                    }
                    Some((g, _)) => {
                        put(tx, &service, Some(g))?;
                        Ok(service)
                    }
                    None => {
                        put(tx, &service, None)?;
                        Ok(service)
                    }
                }
            })
            .await
            .inspect(|_| self.wake_scheduler())
    }

    /// `UpdateService`: a change of what runs (task definition, placement, load balancers,
    /// network, or `forceNewDeployment`) starts a new PRIMARY deployment; a desired count or
    /// deployment configuration change updates the service in place.
    pub async fn service_update(
        &self,
        cluster: &ClusterName,
        given: &str,
        cmd: UpdateService,
    ) -> Result<Service, Error> {
        let name = self.service_named(cluster, given)?;
        let td = match &cmd.task_definition {
            Some(g) => Some(self.service_task_definition(g)?),
            None => None,
        };
        if let Some(s) = &cmd.placement_strategy {
            check_placement(s, &[])?;
        }
        if let Some(c) = &cmd.placement_constraints {
            check_placement(&[], c)?;
        }
        // Load balancers are checked against the task definition the service will run.
        if let Some(lbs) = &cmd.load_balancers {
            let td = match &td {
                Some(td) => td.clone(),
                None => {
                    let (_, s) = self
                        .store
                        .read(|r| load::<Service>(r.get(Kind::Service, &key(cluster, &name))?))?
                        .ok_or(Error::ServiceNotFound)?;
                    self.task_definition_describe(&format!("{}:{}", s.family, s.revision))?
                }
            };
            check_load_balancers(&td, lbs)?;
        }
        let cluster = cluster.clone();
        self.store
            .write(move |tx| {
                let (g, mut s) = get(tx, &cluster, &name)?;
                if s.status != "ACTIVE" {
                    return Err(Error::ServiceNotActive);
                }
                let daemon = s.scheduling_strategy == "DAEMON";
                let mut redeploy = cmd.force_new_deployment;
                if let Some(n) = cmd.desired_count {
                    if daemon {
                        return Err(Error::InvalidParameter(
                            "The daemon scheduling strategy does not support a desired count for services."
                                .into(),
                        ));
                    }
                    if !(0..=100_000).contains(&n) {
                        return Err(Error::InvalidParameter(
                            "desiredCount must be between 0 and 100000.".into(),
                        ));
                    }
                    s.desired_count = n as u32;
                    if let Some(primary) = s.deployments.first_mut() {
                        primary.desired_count = n as u32;
                    }
                }
                if let Some(conf) = &cmd.deployment_configuration {
                    let min = conf
                        .minimum_healthy_percent
                        .unwrap_or(s.minimum_healthy_percent as i64);
                    let max = conf.maximum_percent.unwrap_or(s.maximum_percent as i64);
                    check_percentages(&s.scheduling_strategy, min, max)?;
                    s.minimum_healthy_percent = min as u32;
                    s.maximum_percent = max as u32;
                    if let Some((enable, rollback)) = conf.circuit_breaker {
                        s.circuit_breaker_enable = enable;
                        s.circuit_breaker_rollback = rollback;
                    }
                }
                if let Some(td) = &td
                    && (td.family != s.family || td.revision != s.revision)
                {
                    s.family = td.family.clone();
                    s.revision = td.revision;
                    redeploy = true;
                }
                if let Some(p) = cmd.placement_strategy {
                    if daemon && !p.is_empty() {
                        return Err(Error::InvalidParameter(
                            "Placement strategies are not supported with the DAEMON scheduling strategy."
                                .into(),
                        ));
                    }
                    redeploy |= p != s.placement_strategy;
                    s.placement_strategy = p;
                }
                if let Some(c) = cmd.placement_constraints {
                    redeploy |= c != s.placement_constraints;
                    s.placement_constraints = c;
                }
                if let Some(lbs) = cmd.load_balancers {
                    redeploy |= lbs != s.load_balancers;
                    s.load_balancers = lbs;
                }
                if let Some(n) = cmd.network_configuration {
                    redeploy |= Some(&n) != s.network_configuration.as_ref();
                    s.network_configuration = Some(n);
                }
                if let Some(grace) = cmd.health_check_grace_period_seconds {
                    s.health_check_grace_period_seconds = grace.clamp(0, 2_147_483_647) as u32;
                }
                if let Some(p) = cmd.propagate_tags {
                    s.propagate_tags = p;
                }
                if let Some(m) = cmd.enable_ecs_managed_tags {
                    s.enable_ecs_managed_tags = m;
                }
                if redeploy {
                    let d = new_deployment(&s, s.desired_count);
                    deploy(&mut s, d);
                }
                put(tx, &s, Some(g))?;
                Ok(s)
            })
            .await
            .inspect(|_| self.wake_scheduler())
    }

    /// `DeleteService`: the service scales to zero (DRAINING), then becomes INACTIVE once its
    /// tasks are gone. A REPLICA service must be scaled to 0 first unless `force`.
    pub async fn service_delete(
        &self,
        cluster: &ClusterName,
        given: &str,
        force: bool,
    ) -> Result<Service, Error> {
        let name = self.service_named(cluster, given)?;
        let cluster = cluster.clone();
        self.store
            .write(move |tx| {
                let (g, mut s) = get(tx, &cluster, &name)?;
                if s.status != "ACTIVE" {
                    return Err(Error::ServiceNotActive);
                }
                if s.scheduling_strategy == "REPLICA" && s.desired_count > 0 && !force {
                    return Err(Error::InvalidParameter(
                        "The service cannot be stopped while it is scaled above 0.".into(),
                    ));
                }
                s.status = "DRAINING".into();
                s.desired_count = 0;
                for d in &mut s.deployments {
                    d.desired_count = 0;
                }
                put(tx, &s, Some(g))?;
                Ok(s)
            })
            .await
            .inspect(|_| self.wake_scheduler())
    }

    /// `DescribeServices`: found services (any status) and `MISSING` failures.
    pub fn service_describe(
        &self,
        cluster: &ClusterName,
        given: &[String],
    ) -> Result<(Vec<Service>, Vec<Failure>), Error> {
        self.describe_each(Kind::Service, "service", cluster, given, |g| {
            self.service_name(cluster, g)
        })
    }

    /// The services of a cluster with `status`, or every one.
    pub fn services_of(
        &self,
        cluster: &ClusterName,
        status: Option<&str>,
    ) -> Result<Vec<Service>, Error> {
        self.cluster_records(Kind::Service, cluster, status)
    }

    /// `ListServices`: ARNs of the ACTIVE services, by name.
    pub fn service_list(
        &self,
        cluster: &ClusterName,
        launch_type: Option<&str>,
        scheduling_strategy: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<String>, Error> {
        self.cluster_get_active(cluster)?;
        let items: Vec<Service> = self
            .services_of(cluster, Some("ACTIVE"))?
            .into_iter()
            .filter(|s| launch_type.is_none_or(|l| s.launch_type == l))
            .filter(|s| scheduling_strategy.is_none_or(|x| s.scheduling_strategy == x))
            .collect();
        let scope = format!("ListServices\n{cluster}\n{launch_type:?}\n{scheduling_strategy:?}");
        self.page_in_memory(
            &scope,
            page,
            (10, 100),
            &items,
            |s| &s.name,
            |s| self.service_arn(s),
        )
    }
}
