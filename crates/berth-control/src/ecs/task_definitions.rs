//! Task definitions (spec/ecs.md §4): families, contiguous revisions, the ACTIVE → INACTIVE →
//! DELETE_IN_PROGRESS life cycle, and the fields AWS derives at registration.
//!
//! Store layout: one `task-definition` record per revision under `family:NNNNNNNNNN` (the
//! zero-padded revision makes key order = family, then revision), and one
//! `task-definition-family` record per family holding the last revision handed out and how
//! many revisions are ACTIVE. Both change in the same transaction, so revisions are contiguous
//! and never reused, even across crashes.

use super::{Ecs, Failure, load, save, validate_tags};
use crate::paging::{Page, PageRequest};
use crate::records::create_new;
use berth_store::{Kind, ListQuery, Tx};
use berth_types::ecs::{Family, TaskDefinition, TaskDefinitionStatus};
use berth_types::shapes::ecs::{
    Compatibility, ContainerDefinition, LogDriver, NetworkMode, TaskDefinitionSpec,
};
use berth_types::{Error, Generation, Principal, Tag, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// Largest registration body AWS accepts.
pub const MAX_TASK_DEFINITION_BYTES: usize = 64 * 1024;
const MAX_CONTAINERS: usize = 10;

/// `RegisterTaskDefinition` in domain terms: the family, the tags, and every other member of
/// the request as given.
#[derive(Debug, Clone)]
pub struct RegisterTaskDefinition {
    pub family: String,
    pub tags: Vec<Tag>,
    pub spec: TaskDefinitionSpec,
}

#[derive(Debug, Clone, Default)]
pub struct ListTaskDefinitions {
    pub family: Option<String>,
    pub status: Option<TaskDefinitionStatus>,
    pub descending: bool,
    pub page: PageRequest,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyStatusFilter {
    Active,
    Inactive,
    All,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FamilyRecord {
    /// The last revision handed out.
    latest: u32,
    /// How many revisions are ACTIVE.
    active: u32,
    /// The newest ACTIVE revision: what a bare family name resolves to (a point read).
    latest_active: Option<u32>,
}

impl FamilyRecord {
    fn status(&self) -> &'static str {
        if self.active > 0 {
            "ACTIVE"
        } else {
            "INACTIVE"
        }
    }
}

pub(super) fn key(family: &Family, revision: u32) -> String {
    format!("{family}:{revision:010}")
}

fn client(msg: impl Into<String>) -> Error {
    Error::Client(msg.into())
}

/// A reference to a task definition as users give it.
enum Reference {
    Family(Family),
    Revision(Family, u32),
}

/// `cpu` / `memory` of a task: a number, or `"1 vCPU"`, `"0.5 vcpu"`, `"2 GB"`, `"512 MiB"`.
fn normalize_units(value: &str, what: &str) -> Result<String, Error> {
    let v = value.trim();
    let lower = v.to_ascii_lowercase();
    let invalid = || client(format!("Invalid '{what}' setting for task."));
    let parse = |n: &str, factor: f64| -> Result<String, Error> {
        let x: f64 = n.trim().parse().map_err(|_| invalid())?;
        let units = x * factor;
        if !(units.is_finite() && units > 0.0 && units.fract() == 0.0) {
            return Err(invalid());
        }
        Ok(format!("{}", units as u64))
    };
    if what == "cpu" {
        if let Some(n) = lower.strip_suffix("vcpu") {
            return parse(n, 1024.0);
        }
        parse(&lower, 1.0)
    } else if let Some(n) = lower
        .strip_suffix("gb")
        .or_else(|| lower.strip_suffix("gib"))
    {
        parse(n, 1024.0)
    } else if let Some(n) = lower
        .strip_suffix("mb")
        .or_else(|| lower.strip_suffix("mib"))
    {
        parse(n, 1.0)
    } else {
        parse(&lower, 1.0)
    }
}

/// Valid Fargate (cpu units → memory MiB) pairs (spec/ecs.md §4.2).
fn fargate_pair_ok(cpu: u64, memory: u64) -> bool {
    let stepped = |lo: u64, hi: u64, step: u64| {
        memory >= lo && memory <= hi && (memory - lo).is_multiple_of(step)
    };
    match cpu {
        256 => matches!(memory, 512 | 1024 | 2048),
        512 => stepped(1024, 4096, 1024),
        1024 => stepped(2048, 8192, 1024),
        2048 => stepped(4096, 16384, 1024),
        4096 => stepped(8192, 30720, 1024),
        8192 => stepped(16384, 61440, 4096),
        16384 => stepped(32768, 122880, 8192),
        _ => false,
    }
}

/// Checks the rules AWS applies beyond the model and fills in the normalized task cpu/memory.
fn check_spec(spec: &mut TaskDefinitionSpec) -> Result<(), Error> {
    if let Some(cpu) = &spec.cpu {
        spec.cpu = Some(normalize_units(cpu, "cpu")?);
    }
    if let Some(memory) = &spec.memory {
        spec.memory = Some(normalize_units(memory, "memory")?);
    }
    let task_memory = spec.memory.as_deref().and_then(|s| s.parse::<u64>().ok());
    let network_mode = spec.network_mode.unwrap_or(NetworkMode::Bridge);
    let containers = &spec.container_definitions;
    if containers.is_empty() {
        return Err(client("Container list cannot be empty."));
    }
    if containers.len() > MAX_CONTAINERS {
        return Err(client(format!(
            "Too many containers: a task definition can have at most {MAX_CONTAINERS} containers."
        )));
    }
    let mut names = HashSet::new();
    let mut any_essential = false;
    let mut container_memory = 0u64;
    for c in containers {
        let name = c.name.as_deref().unwrap_or("");
        check_container(c, name, &mut names, task_memory.is_some(), network_mode)?;
        any_essential |= c.essential.unwrap_or(true);
        let memory = c.memory.filter(|m| *m > 0);
        let reservation = c.memory_reservation.filter(|m| *m > 0);
        container_memory += memory.or(reservation).unwrap_or(0) as u64;
    }
    for c in containers {
        for dep in c.depends_on.iter().flatten() {
            if !names.contains(dep.container_name.as_str()) {
                return Err(client(format!(
                    "Container '{}' depends on container '{}', which is not in the task definition.",
                    c.name.as_deref().unwrap_or(""),
                    dep.container_name
                )));
            }
        }
    }
    if !any_essential {
        return Err(client("At least one essential container is required."));
    }
    if let Some(tm) = task_memory
        && container_memory > tm
    {
        return Err(client(format!(
            "The sum of the containers' memory ({container_memory} MiB) exceeds the task memory ({tm} MiB)."
        )));
    }
    let requires = spec.requires_compatibilities.as_deref().unwrap_or_default();
    if requires.contains(&Compatibility::Fargate) {
        if network_mode != NetworkMode::Awsvpc {
            return Err(client("Fargate only supports network mode 'awsvpc'."));
        }
        let (cpu, mem) = fargate_size(spec)
            .ok_or_else(|| client("Fargate requires that 'cpu' be defined at the task level."))?;
        if !fargate_pair_ok(cpu, mem) {
            return Err(client(format!(
                "No Fargate configuration exists for given values: {cpu} CPU, {mem} memory. See the Amazon ECS documentation for the valid combinations."
            )));
        }
    }
    if requires.contains(&Compatibility::External) && network_mode == NetworkMode::Awsvpc {
        return Err(client(
            "Task definitions for EXTERNAL do not support network mode 'awsvpc'.",
        ));
    }
    Ok(())
}

/// One container's rules: a unique valid name, an image, memory that adds up, port mappings
/// the network mode allows.
fn check_container<'a>(
    c: &'a ContainerDefinition,
    name: &'a str,
    names: &mut HashSet<&'a str>,
    task_memory: bool,
    network_mode: NetworkMode,
) -> Result<(), Error> {
    if name.is_empty() {
        return Err(client("Container.name should not be null or empty."));
    }
    if !berth_types::ecs::is_ecs_name(name) {
        return Err(client(format!(
            "Container name '{name}' is invalid: up to 255 letters, numbers, hyphens and underscores are allowed."
        )));
    }
    if !names.insert(name) {
        return Err(client(format!(
            "Duplicate container name '{name}': container names must be unique within a task definition."
        )));
    }
    if c.image.as_deref().is_none_or(str::is_empty) {
        return Err(client("Container.image should not be null or empty."));
    }
    let memory = c.memory.filter(|m| *m > 0);
    let reservation = c.memory_reservation.filter(|m| *m > 0);
    if !task_memory && memory.is_none() && reservation.is_none() {
        return Err(client(format!(
            "Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified."
        )));
    }
    if let (Some(m), Some(r)) = (memory, reservation)
        && m < r
    {
        return Err(client(format!(
            "Invalid setting for container '{name}'. 'memory' must be greater than or equal to 'memoryReservation'."
        )));
    }
    if let Some(m) = memory.or(reservation)
        && m < 6
    {
        return Err(client(format!(
            "Invalid 'memory' setting for container '{name}'. The minimum is 6 MiB."
        )));
    }
    for pm in c.port_mappings.iter().flatten() {
        let hp = pm.host_port.filter(|h| *h != 0);
        match network_mode {
            NetworkMode::Host | NetworkMode::Awsvpc if hp.is_some() && hp != pm.container_port => {
                return Err(client(format!(
                    "When networkMode={}, the host ports and container ports in port mappings must match.",
                    network_mode.as_str()
                )));
            }
            NetworkMode::None => {
                return Err(client(
                    "Port mappings are not allowed when networkMode=none.",
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

fn fargate_size(spec: &TaskDefinitionSpec) -> Option<(u64, u64)> {
    let get = |f: &Option<String>| f.as_deref().and_then(|s| s.parse::<u64>().ok());
    Some((get(&spec.cpu)?, get(&spec.memory)?))
}

/// The launch types this task definition can run on.
fn compatibilities(spec: &TaskDefinitionSpec) -> Vec<String> {
    let awsvpc = spec.network_mode == Some(NetworkMode::Awsvpc);
    let mut out = vec!["EC2".to_string()];
    if !awsvpc {
        out.push("EXTERNAL".into());
    }
    let privileged = spec
        .container_definitions
        .iter()
        .any(|c| c.privileged == Some(true));
    if awsvpc && !privileged && fargate_size(spec).is_some_and(|(c, m)| fargate_pair_ok(c, m)) {
        out.push("FARGATE".into());
    }
    out
}

/// The instance attributes the task definition needs, as the ECS agent names them.
fn requires_attributes(spec: &TaskDefinitionSpec) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |s: &str| {
        if !out.iter().any(|x| x == s) {
            out.push(s.to_string());
        }
    };
    if spec.network_mode.is_some() {
        add("com.amazonaws.ecs.capability.docker-remote-api.1.18");
    }
    if spec.network_mode == Some(NetworkMode::Awsvpc) {
        add("ecs.capability.task-eni");
    }
    if spec.task_role_arn.is_some() {
        add("com.amazonaws.ecs.capability.task-iam-role");
    }
    let execution_role = spec.execution_role_arn.is_some();
    for c in &spec.container_definitions {
        if let Some(l) = &c.log_configuration {
            let driver = l.log_driver.as_str();
            add(&format!(
                "com.amazonaws.ecs.capability.logging-driver.{driver}"
            ));
            if l.log_driver == LogDriver::Awslogs && execution_role {
                add("ecs.capability.execution-role-awslogs");
            }
        }
        if c.health_check.is_some() {
            add("ecs.capability.container-health-check");
        }
        if c.depends_on.as_ref().is_some_and(|d| !d.is_empty()) {
            add("ecs.capability.container-ordering");
        }
        if c.memory_reservation.is_some() {
            add("com.amazonaws.ecs.capability.docker-remote-api.1.21");
        }
        if c.docker_labels.is_some() {
            add("com.amazonaws.ecs.capability.docker-remote-api.1.18");
        }
        if c.image.as_deref().is_some_and(|i| i.contains(".dkr.ecr.")) {
            add("com.amazonaws.ecs.capability.ecr-auth");
            if execution_role {
                add("ecs.capability.execution-role-ecr-pull");
            }
        }
        if c.repository_credentials.is_some() {
            add("com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager");
        }
        for secret in c.secrets.iter().flatten() {
            if secret.value_from.contains(":secretsmanager:") {
                add("ecs.capability.secrets.asm.environment-variables");
            } else {
                add("ecs.capability.secrets.ssm.environment-variables");
            }
        }
    }
    out
}

impl Ecs {
    fn reference(&self, given: &str) -> Result<Reference, Error> {
        let invalid = || client(format!("Invalid task definition reference: '{given}'."));
        let body = match given.starts_with("arn:") {
            true => self
                .scope
                .arn_resource("ecs", "task-definition", given)
                .ok_or_else(invalid)?,
            false => given,
        };
        match body.rsplit_once(':') {
            Some((family, rev)) => {
                let rev: u32 = rev
                    .parse()
                    .ok()
                    .filter(|r| *r > 0)
                    .ok_or_else(|| client(format!("Invalid revision number. Number: {rev}")))?;
                Ok(Reference::Revision(
                    Family::parse(family).map_err(|_| invalid())?,
                    rev,
                ))
            }
            None => Ok(Reference::Family(
                Family::parse(body).map_err(|_| invalid())?,
            )),
        }
    }

    fn resolve(
        &self,
        reference: &Reference,
    ) -> Result<Option<(Generation, Arc<TaskDefinition>)>, Error> {
        let record = self.store.read(|r| match reference {
            Reference::Revision(f, rev) => r.get(Kind::TaskDefinition, &key(f, *rev)),
            Reference::Family(f) => {
                let family = load::<FamilyRecord>(r.get(Kind::TaskDefinitionFamily, f.as_str())?)?;
                match family.and_then(|(_, rec)| rec.latest_active) {
                    Some(rev) => r.get(Kind::TaskDefinition, &key(f, rev)),
                    None => Ok(None),
                }
            }
        })?;
        self.task_definitions.load(record)
    }

    /// `RegisterTaskDefinition`: a new revision of the family, even for an identical body.
    pub async fn task_definition_register(
        &self,
        principal: &Principal,
        cmd: RegisterTaskDefinition,
        body_len: usize,
    ) -> Result<TaskDefinition, Error> {
        if body_len > MAX_TASK_DEFINITION_BYTES {
            return Err(client(format!(
                "The task definition is larger than the maximum of {} KiB.",
                MAX_TASK_DEFINITION_BYTES / 1024
            )));
        }
        let family = Family::parse(&cmd.family).map_err(|e| client(e.to_string()))?;
        validate_tags(&cmd.tags)?;
        let mut spec = cmd.spec;
        check_spec(&mut spec)?;
        let requires_attributes = requires_attributes(&spec);
        let compatibilities = compatibilities(&spec);
        let registered_by = principal.arn.clone();
        let tags = cmd.tags;
        self.store
            .write(move |tx| {
                let fam =
                    load::<FamilyRecord>(tx.get(Kind::TaskDefinitionFamily, family.as_str())?)?;
                let (expected, mut record) = match fam {
                    Some((g, r)) => (Some(g), r),
                    None => (
                        None,
                        FamilyRecord {
                            latest: 0,
                            active: 0,
                            latest_active: None,
                        },
                    ),
                };
                record.latest += 1;
                record.active += 1;
                record.latest_active = Some(record.latest);
                save(
                    tx,
                    Kind::TaskDefinitionFamily,
                    family.as_str(),
                    Some(record.status()),
                    &record,
                    expected,
                )?;
                let td = TaskDefinition {
                    family,
                    revision: record.latest,
                    status: TaskDefinitionStatus::Active,
                    spec,
                    requires_attributes,
                    compatibilities,
                    registered_at: Timestamp::now(),
                    registered_by,
                    deregistered_at: None,
                    delete_requested_at: None,
                    tags,
                };
                // The family's counter, updated above, makes this revision's key new.
                create_new(
                    tx,
                    Kind::TaskDefinition,
                    &key(&td.family, td.revision),
                    Some("ACTIVE"),
                    &td,
                )?;
                Ok(td)
            })
            .await
    }

    /// `DescribeTaskDefinition`: by family (latest ACTIVE revision), `family:revision` or ARN.
    pub fn task_definition_describe(&self, given: &str) -> Result<Arc<TaskDefinition>, Error> {
        let reference = self.reference(given)?;
        match self.resolve(&reference)? {
            Some((_, td)) => Ok(td),
            None => Err(client("Unable to describe task definition.")),
        }
    }

    /// `ListTaskDefinitions`: ARNs sorted by family, then revision.
    pub fn task_definition_list(&self, q: &ListTaskDefinitions) -> Result<Page<String>, Error> {
        let prefix = match &q.family {
            Some(f) => format!("{}:", Family::parse(f)?),
            None => String::new(),
        };
        let status = q.status.unwrap_or(TaskDefinitionStatus::Active);
        let scope = format!(
            "ListTaskDefinitions\n{prefix}\n{}\n{}",
            status.as_str(),
            q.descending
        );
        self.page(
            Kind::TaskDefinition,
            &scope,
            ListQuery {
                prefix: &prefix,
                status: Some(status.as_str()),
                descending: q.descending,
                ..Default::default()
            },
            &q.page,
            (100, 100),
            |r| {
                let (family, rev) = r.key.rsplit_once(':').unwrap_or((&r.key, "0"));
                Ok(self.scope.arn(
                    "ecs",
                    &format!(
                        "task-definition/{family}:{}",
                        rev.parse::<u32>().unwrap_or(0)
                    ),
                ))
            },
        )
    }

    /// `ListTaskDefinitionFamilies`: family names starting with `prefix`.
    pub fn family_list(
        &self,
        prefix: Option<&str>,
        status: FamilyStatusFilter,
        page: &PageRequest,
    ) -> Result<Page<String>, Error> {
        let prefix = prefix.unwrap_or("");
        let status = match status {
            FamilyStatusFilter::Active => Some("ACTIVE"),
            FamilyStatusFilter::Inactive => Some("INACTIVE"),
            FamilyStatusFilter::All => None,
        };
        let scope = format!("ListTaskDefinitionFamilies\n{prefix}\n{status:?}");
        self.page(
            Kind::TaskDefinitionFamily,
            &scope,
            ListQuery {
                prefix,
                status,
                ..Default::default()
            },
            page,
            (100, 100),
            |r| Ok(r.key),
        )
    }

    /// `DeregisterTaskDefinition`: ACTIVE → INACTIVE. A revision is required.
    pub async fn task_definition_deregister(&self, given: &str) -> Result<TaskDefinition, Error> {
        let Reference::Revision(family, rev) = self.reference(given)? else {
            return Err(client(format!(
                "Invalid revision number. Number: {given}. Specify the task definition as family:revision or its full ARN."
            )));
        };
        self.store
            .write(move |tx| {
                let k = key(&family, rev);
                let (g, mut td) = load::<TaskDefinition>(tx.get(Kind::TaskDefinition, &k)?)?
                    .ok_or_else(|| client("The specified task definition does not exist."))?;
                if td.status != TaskDefinitionStatus::Active {
                    return Ok(td);
                }
                td.status = td
                    .status
                    .transition(TaskDefinitionStatus::Inactive)
                    .map_err(|e| client(e.to_string()))?;
                td.deregistered_at = Some(Timestamp::now());
                save(
                    tx,
                    Kind::TaskDefinition,
                    &k,
                    Some(td.status.as_str()),
                    &td,
                    Some(g),
                )?;
                family_deactivated(tx, &family, rev)?;
                Ok(td)
            })
            .await
    }

    /// `DeleteTaskDefinitions`: INACTIVE revisions → DELETE_IN_PROGRESS; others are failures.
    pub async fn task_definition_delete(
        &self,
        given: Vec<String>,
    ) -> Result<(Vec<TaskDefinition>, Vec<Failure>), Error> {
        if given.is_empty() || given.len() > 10 {
            return Err(Error::InvalidParameter(
                "taskDefinitions must list between 1 and 10 task definitions.".into(),
            ));
        }
        let mut resolved = Vec::new();
        for g in given {
            match self.reference(&g) {
                Ok(Reference::Revision(f, r)) => resolved.push((g, Some((f, r)))),
                _ => resolved.push((g, None)),
            }
        }
        let scope = self.scope.clone();
        self.store
            .write(move |tx| {
                let mut done = Vec::new();
                let mut failures = Vec::new();
                for (given, reference) in resolved {
                    let Some((family, rev)) = reference else {
                        failures.push(Failure {
                            arn: given,
                            reason: "The specified task definition identifier is invalid. Specify a valid name or ARN and try again.".into(),
                            detail: None,
                        });
                        continue;
                    };
                    let arn = scope.arn("ecs", &format!("task-definition/{family}:{rev}"));
                    let k = key(&family, rev);
                    match load::<TaskDefinition>(tx.get(Kind::TaskDefinition, &k)?)? {
                        None => failures.push(Failure { arn, reason: "MISSING".into(), detail: None }),
                        Some((g, mut td)) => match td.status.transition(TaskDefinitionStatus::DeleteInProgress) {
                            Ok(s) => {
                                td.status = s;
                                td.delete_requested_at = Some(Timestamp::now());
                                save(tx, Kind::TaskDefinition, &k, Some(s.as_str()), &td, Some(g))?;
                                done.push(td);
                            }
                            Err(_) => failures.push(Failure {
                                arn,
                                reason: format!(
                                    "The specified task definition is {}. Only INACTIVE task definitions can be deleted.",
                                    td.status.as_str()
                                ),
                                detail: None,
                            }),
                        },
                    }
                }
                Ok((done, failures))
            })
            .await
    }
}

/// Bookkeeping after revision `rev` of `family` left ACTIVE: one fewer active revision, and if
/// it was the newest ACTIVE one, the next older ACTIVE revision takes its place.
fn family_deactivated(tx: &mut Tx<'_>, family: &Family, rev: u32) -> Result<(), Error> {
    let (g, mut rec) = load::<FamilyRecord>(tx.get(Kind::TaskDefinitionFamily, family.as_str())?)?
        .ok_or_else(|| Error::internal(format!("family record of {family} is missing")))?;
    rec.active = rec.active.saturating_sub(1);
    if rec.latest_active == Some(rev) {
        let prefix = format!("{family}:");
        let after = key(family, rev);
        let older = tx.list(
            Kind::TaskDefinition,
            &ListQuery {
                prefix: &prefix,
                status: Some("ACTIVE"),
                after: Some(&after),
                descending: true,
                limit: 1,
            },
        )?;
        rec.latest_active = match load::<TaskDefinition>(older.into_iter().next())? {
            Some((_, td)) => Some(td.revision),
            None => None,
        };
    }
    save(
        tx,
        Kind::TaskDefinitionFamily,
        family.as_str(),
        Some(rec.status()),
        &rec,
        Some(g),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: serde_json::Value) -> TaskDefinitionSpec {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn task_units_are_normalized() {
        assert_eq!(normalize_units("1 vCPU", "cpu").unwrap(), "1024");
        assert_eq!(normalize_units("0.5 vcpu", "cpu").unwrap(), "512");
        assert_eq!(normalize_units("256", "cpu").unwrap(), "256");
        assert_eq!(normalize_units("2 GB", "memory").unwrap(), "2048");
        assert_eq!(normalize_units("512", "memory").unwrap(), "512");
        assert!(normalize_units("lots", "memory").is_err());
        assert!(normalize_units("-1", "cpu").is_err());
    }

    #[test]
    fn task_definition_rules_are_enforced() {
        let ok =
            json!({"containerDefinitions": [{"name": "web", "image": "nginx", "memory": 128}]});
        check_spec(&mut spec(ok)).unwrap();
        for (bad, needle) in [
            (json!({"containerDefinitions": []}), "cannot be empty"),
            (
                json!({"containerDefinitions": [{"name": "web", "image": "x"}]}),
                "memoryReservation",
            ),
            (
                json!({"containerDefinitions": [{"name": "web", "image": "x", "memory": 64, "memoryReservation": 128}]}),
                "greater than or equal",
            ),
            (
                json!({"containerDefinitions": [{"name": "a", "image": "x", "memory": 64}, {"name": "a", "image": "x", "memory": 64}]}),
                "Duplicate",
            ),
            (
                json!({"containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "essential": false}]}),
                "essential",
            ),
            (
                json!({"containerDefinitions": [{"name": "a", "memory": 64}]}),
                "image",
            ),
            (
                json!({"networkMode": "awsvpc", "containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "portMappings": [{"containerPort": 80, "hostPort": 81}]}]}),
                "must match",
            ),
            (
                json!({"requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc", "cpu": "256", "memory": "4096", "containerDefinitions": [{"name": "a", "image": "x"}]}),
                "No Fargate configuration",
            ),
            (
                json!({"requiresCompatibilities": ["FARGATE"], "containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}),
                "awsvpc",
            ),
            (
                json!({"containerDefinitions": [{"name": "a", "image": "x", "memory": 64, "dependsOn": [{"containerName": "b", "condition": "START"}]}]}),
                "depends on",
            ),
        ] {
            let err = check_spec(&mut spec(bad.clone())).unwrap_err();
            assert!(err.to_string().contains(needle), "{bad}: {err}");
        }
    }

    #[test]
    fn derived_fields_follow_the_spec() {
        let fargate = spec(
            json!({"networkMode": "awsvpc", "cpu": "256", "memory": "512", "executionRoleArn": "r",
            "containerDefinitions": [{"name": "a", "image": "1.dkr.ecr.us-east-1.amazonaws.com/x",
              "logConfiguration": {"logDriver": "awslogs"}, "healthCheck": {"command": ["CMD", "true"]}}]}),
        );
        assert_eq!(compatibilities(&fargate), ["EC2", "FARGATE"]);
        let attrs = requires_attributes(&fargate);
        for a in [
            "ecs.capability.task-eni",
            "com.amazonaws.ecs.capability.logging-driver.awslogs",
            "ecs.capability.execution-role-awslogs",
            "ecs.capability.container-health-check",
            "com.amazonaws.ecs.capability.ecr-auth",
            "ecs.capability.execution-role-ecr-pull",
        ] {
            assert!(attrs.iter().any(|x| x == a), "{a} in {attrs:?}");
        }
        let bridge =
            spec(json!({"containerDefinitions": [{"name": "a", "image": "x", "memory": 64}]}));
        assert_eq!(compatibilities(&bridge), ["EC2", "EXTERNAL"]);
        assert!(requires_attributes(&bridge).is_empty());
        assert!(
            fargate_pair_ok(1024, 3072)
                && !fargate_pair_ok(1024, 1024)
                && fargate_pair_ok(8192, 20480)
        );
    }
}
