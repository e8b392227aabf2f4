//! Container instances (spec/ecs.md §3): registration (the ECS `RegisterContainerInstance`
//! API, which agents call), description, listing with the cluster query language, draining,
//! deregistration, and custom attributes.
//!
//! Store layout: `container-instance` records under `cluster\nid`, status in the status column.

use super::{Ecs, Failure, load, save, validate_tags};
use crate::paging::{Page, PageRequest};
use crate::placement::query::{self, Facts};
use berth_store::{Kind, ListQuery, Record, Tx};
use berth_types::ecs::{
    ClusterName, ContainerInstance, InstanceAttribute, InstanceResource, InstanceStatus,
};
use berth_types::{Error, Generation, Tag, Timestamp};

/// Custom attributes a container instance may carry (built-in `ecs.*` ones do not count).
pub const MAX_CUSTOM_ATTRIBUTES: usize = 10;

/// `RegisterContainerInstance` in domain terms.
#[derive(Debug, Clone, Default)]
pub struct RegisterInstance {
    pub cluster: Option<String>,
    /// Re-registration of a known instance.
    pub container_instance_arn: Option<String>,
    /// The node's id (from the instance identity document's `instanceId`).
    pub ec2_instance_id: Option<String>,
    pub total_resources: Vec<InstanceResource>,
    pub attributes: Vec<InstanceAttribute>,
    pub version_info: Option<berth_types::shapes::ecs::VersionInfo>,
    pub tags: Vec<Tag>,
}

/// An attribute as `PutAttributes` / `ListAttributes` name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetedAttribute {
    pub name: String,
    pub value: Option<String>,
    /// The container instance ARN (or id, in requests).
    pub target_id: Option<String>,
}

fn key(cluster: &ClusterName, id: &str) -> String {
    format!("{cluster}\n{id}")
}

fn new_instance_id() -> String {
    let b: [u8; 16] = rand::random();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The name rule of ECS attributes, and the value rule (no leading/trailing spaces).
fn check_attribute(a: &InstanceAttribute) -> Result<(), Error> {
    let name_ok = !a.name.is_empty()
        && a.name.len() <= 128
        && a.name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'/' | b'-' | b'@'));
    let value_ok = a.value.as_deref().is_none_or(|v| {
        !v.is_empty()
            && v.len() <= 128
            && v.trim() == v
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b" _.@/:-".contains(&b))
    });
    if name_ok && value_ok {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "Invalid attribute '{}': names are 1-128 letters, digits and _./-@; values 1-128 characters without leading or trailing spaces.",
            a.name
        )))
    }
}

fn is_builtin(name: &str) -> bool {
    name.starts_with("ecs.") || name.starts_with("com.amazonaws.ecs.")
}

fn set_attribute(attrs: &mut Vec<InstanceAttribute>, a: InstanceAttribute) {
    match attrs.iter_mut().find(|x| x.name == a.name) {
        Some(x) => x.value = a.value,
        None => attrs.push(a),
    }
}

/// The facts the cluster query language sees about an instance (and what its tasks use).
pub(super) struct InstanceFacts<'a>(
    pub(super) &'a ContainerInstance,
    pub(super) Option<&'a super::InstanceUsage>,
);

impl Facts for InstanceFacts<'_> {
    fn attribute(&self, name: &str) -> Option<String> {
        self.0.attribute(name).map(str::to_string)
    }
    fn task_groups(&self) -> Vec<String> {
        self.1
            .map(|u| u.groups.keys().cloned().collect())
            .unwrap_or_default()
    }
    fn agent_connected(&self) -> bool {
        self.0.agent_connected
    }
    fn agent_version(&self) -> Option<String> {
        self.0
            .version_info
            .as_ref()
            .and_then(|v| v.agent_version.clone())
    }
    fn ec2_instance_id(&self) -> Option<String> {
        Some(self.0.ec2_instance_id.clone())
    }
    fn registered_at(&self) -> i64 {
        self.0.registered_at.0
    }
    fn running_tasks_count(&self) -> u64 {
        self.1.map_or(0, |u| u.running as u64)
    }
}

fn decode_all(rows: Vec<Record>) -> Result<Vec<(Generation, ContainerInstance)>, Error> {
    rows.into_iter()
        .map(|r| load::<ContainerInstance>(Some(r)).map(|x| x.expect("record given")))
        .collect()
}

impl Ecs {
    pub fn instance_arn(&self, i: &ContainerInstance) -> String {
        self.scope
            .arn("ecs", &format!("container-instance/{}/{}", i.cluster, i.id))
    }

    /// The instance id named by an id or an ARN of this cluster.
    pub(super) fn instance_id<'a>(&self, cluster: &ClusterName, given: &'a str) -> Option<&'a str> {
        let id = match given.starts_with("arn:") {
            true => {
                let rest = self
                    .scope
                    .arn_resource("ecs", "container-instance", given)?;
                match rest.split_once('/') {
                    Some((c, id)) if c == cluster.as_str() => id,
                    Some(_) => return None,
                    None => rest,
                }
            }
            false => given,
        };
        (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    }

    fn instances_of(rows: Vec<Record>) -> Result<Vec<ContainerInstance>, Error> {
        Ok(decode_all(rows)?.into_iter().map(|(_, i)| i).collect())
    }

    /// The registered (ACTIVE or DRAINING) instances of a cluster.
    pub fn instances_registered(
        &self,
        cluster: &ClusterName,
    ) -> Result<Vec<ContainerInstance>, Error> {
        let prefix = format!("{cluster}\n");
        let rows = self.store.read(|r| {
            r.list(
                Kind::ContainerInstance,
                &ListQuery {
                    prefix: &prefix,
                    limit: usize::MAX >> 1,
                    ..Default::default()
                },
            )
        })?;
        Ok(Self::instances_of(rows)?
            .into_iter()
            .filter(|i| i.status.is_registered())
            .collect())
    }

    /// `RegisterContainerInstance`.
    pub async fn instance_register(
        &self,
        cmd: RegisterInstance,
    ) -> Result<ContainerInstance, Error> {
        let cluster = self.cluster_name(cmd.cluster.as_deref())?;
        self.cluster_get_active(&cluster)?;
        validate_tags(&cmd.tags)?;
        for a in &cmd.attributes {
            check_attribute(a)?;
        }
        for needed in ["CPU", "MEMORY"] {
            if !cmd.total_resources.iter().any(|r| r.name == needed) {
                return Err(Error::InvalidParameter(format!(
                    "totalResources must include {needed}."
                )));
            }
        }
        let reregister = match &cmd.container_instance_arn {
            Some(arn) => Some(
                self.instance_id(&cluster, arn)
                    .ok_or_else(|| {
                        Error::InvalidParameter(format!("Invalid containerInstanceArn: {arn}"))
                    })?
                    .to_string(),
            ),
            None => None,
        };
        let mut attributes = vec![
            InstanceAttribute {
                name: "ecs.os-type".into(),
                value: Some("linux".into()),
            },
            InstanceAttribute {
                name: "ecs.availability-zone".into(),
                value: Some(format!("{}a", self.scope.region)),
            },
        ];
        for a in cmd.attributes {
            set_attribute(&mut attributes, a);
        }
        let now = Timestamp::now();
        self.store
            .write(move |tx| {
                let (id, expected, previous) = match reregister {
                    Some(id) => match load::<ContainerInstance>(
                        tx.get(Kind::ContainerInstance, &key(&cluster, &id))?,
                    )? {
                        Some((g, old)) => (id, Some(g), Some(old)),
                        None => {
                            return Err(Error::InvalidParameter(format!(
                                "Container instance {id} is not registered in this cluster."
                            )));
                        }
                    },
                    None => (new_instance_id(), None, None),
                };
                let instance = ContainerInstance {
                    ec2_instance_id: cmd
                        .ec2_instance_id
                        .or_else(|| previous.as_ref().map(|p| p.ec2_instance_id.clone()))
                        .unwrap_or_else(|| format!("i-{}", &id[..17])),
                    id,
                    cluster,
                    status: InstanceStatus::Active,
                    agent_connected: true,
                    registered_resources: cmd.total_resources,
                    attributes,
                    version_info: cmd.version_info,
                    registered_at: previous.as_ref().map_or(now, |p| p.registered_at),
                    tags: cmd.tags,
                    version: previous.as_ref().map_or(1, |p| p.version + 1),
                };
                save_instance(tx, &instance, expected)?;
                Ok(instance)
            })
            .await
    }

    /// `DescribeContainerInstances`: found instances and `MISSING` failures.
    pub fn instance_describe(
        &self,
        cluster: &ClusterName,
        given: &[String],
    ) -> Result<(Vec<ContainerInstance>, Vec<Failure>), Error> {
        self.describe_each(
            Kind::ContainerInstance,
            "container-instance",
            cluster,
            given,
            |g| self.instance_id(cluster, g),
        )
    }

    /// `ListContainerInstances`: ARNs, filtered by status (default: all but INACTIVE) and by a
    /// cluster query language expression.
    pub fn instance_list(
        &self,
        cluster: &ClusterName,
        filter: Option<&str>,
        status: Option<InstanceStatus>,
        page: &PageRequest,
    ) -> Result<Page<String>, Error> {
        self.cluster_get_active(cluster)?;
        let expr = match filter {
            Some(f) => Some(query::parse(f).map_err(|e| {
                Error::InvalidParameter(format!("Invalid filter expression '{f}': {e}"))
            })?),
            None => None,
        };
        let all = self.instances_registered(cluster)?;
        let usage = self.instance_usage(cluster)?;
        let items: Vec<ContainerInstance> = all
            .into_iter()
            .filter(|i| status.is_none_or(|s| i.status == s))
            .filter(|i| {
                expr.as_ref()
                    .is_none_or(|e| query::eval(e, &InstanceFacts(i, usage.get(&i.id))))
            })
            .collect();
        let scope = format!("ListContainerInstances\n{cluster}\n{filter:?}\n{status:?}");
        let (limit, after) = self.page_start(&scope, page, 100, 100)?;
        let start = match after {
            Some(a) => items.iter().position(|i| i.id > a).unwrap_or(items.len()),
            None => 0,
        };
        let slice: Vec<&ContainerInstance> = items.iter().skip(start).take(limit).collect();
        let next_token = (start + slice.len() < items.len())
            .then(|| slice.last().map(|i| self.pager.encode(&scope, &i.id)))
            .flatten();
        Ok(Page {
            items: slice.iter().map(|i| self.instance_arn(i)).collect(),
            next_token,
        })
    }

    /// `DeregisterContainerInstance`: the instance leaves the cluster (INACTIVE). Without
    /// `force` it is refused while tasks run on it; with `force` its tasks are told to stop
    /// (Berth owns the node, so it does not leave them running untracked).
    pub async fn instance_deregister(
        &self,
        cluster: &ClusterName,
        given: &str,
        force: bool,
    ) -> Result<ContainerInstance, Error> {
        self.cluster_get_active(cluster)?;
        let id = self
            .instance_id(cluster, given)
            .ok_or_else(|| Error::InvalidParameter(format!("Invalid container instance: {given}")))?
            .to_string();
        let cluster = cluster.clone();
        self.store
            .write(move |tx| {
                let (g, mut i) = load::<ContainerInstance>(
                    tx.get(Kind::ContainerInstance, &key(&cluster, &id))?,
                )?
                .filter(|(_, i)| i.status.is_registered())
                .ok_or_else(|| Error::InvalidParameter("Container instance not found.".into()))?;
                let running = super::tasks::active_on(tx, &cluster, &i.id)?;
                if !running.is_empty() && !force {
                    return Err(Error::Client(format!(
                        "Found {} running tasks on the container instance. Stop them or deregister with force.",
                        running.len()
                    )));
                }
                for t in running {
                    let reason = format!("Container instance {} was deregistered", i.id);
                    super::tasks::stop_in_tx(tx, t, "TerminationNotice", &reason)?;
                }
                i.status = i
                    .status
                    .transition(InstanceStatus::Inactive)
                    .map_err(|e| Error::Client(e.to_string()))?;
                i.agent_connected = false;
                i.version += 1;
                save_instance(tx, &i, Some(g))?;
                Ok(i)
            })
            .await
            .inspect(|_| self.wake_scheduler())
    }

    /// `UpdateContainerInstancesState`: ACTIVE ⇄ DRAINING.
    pub async fn instance_update_state(
        &self,
        cluster: &ClusterName,
        given: Vec<String>,
        status: InstanceStatus,
    ) -> Result<(Vec<ContainerInstance>, Vec<Failure>), Error> {
        self.cluster_get_active(cluster)?;
        if status == InstanceStatus::Inactive {
            return Err(Error::InvalidParameter(
                "Container instances can be set to ACTIVE or DRAINING.".into(),
            ));
        }
        let resolved: Vec<(String, Option<String>)> = given
            .into_iter()
            .map(|g| {
                let id = self.instance_id(cluster, &g).map(str::to_string);
                (g, id)
            })
            .collect();
        let cluster = cluster.clone();
        let scope = self.scope.clone();
        self.store
            .write(move |tx| {
                let mut done = Vec::new();
                let mut failures = Vec::new();
                for (given, id) in resolved {
                    let rec = match &id {
                        Some(id) => load::<ContainerInstance>(
                            tx.get(Kind::ContainerInstance, &key(&cluster, id))?,
                        )?,
                        None => None,
                    };
                    let Some((g, mut i)) = rec.filter(|(_, i)| i.status.is_registered()) else {
                        failures.push(Failure {
                            arn: if given.starts_with("arn:") {
                                given
                            } else {
                                scope.arn("ecs", &format!("container-instance/{cluster}/{given}"))
                            },
                            reason: "MISSING".into(),
                            detail: None,
                        });
                        continue;
                    };
                    if i.status != status {
                        i.status = status;
                        i.version += 1;
                        save_instance(tx, &i, Some(g))?;
                    }
                    done.push(i);
                }
                Ok((done, failures))
            })
            .await
            .inspect(|_| self.wake_scheduler())
    }

    /// `PutAttributes` (on container instances).
    pub async fn attributes_put(
        &self,
        cluster: &ClusterName,
        attrs: Vec<TargetedAttribute>,
    ) -> Result<Vec<TargetedAttribute>, Error> {
        self.attributes_change(cluster, attrs, true).await
    }

    /// `DeleteAttributes`.
    pub async fn attributes_delete(
        &self,
        cluster: &ClusterName,
        attrs: Vec<TargetedAttribute>,
    ) -> Result<Vec<TargetedAttribute>, Error> {
        self.attributes_change(cluster, attrs, false).await
    }

    async fn attributes_change(
        &self,
        cluster: &ClusterName,
        attrs: Vec<TargetedAttribute>,
        put: bool,
    ) -> Result<Vec<TargetedAttribute>, Error> {
        self.cluster_get_active(cluster)?;
        let mut targets = Vec::new();
        for a in &attrs {
            if put {
                check_attribute(&InstanceAttribute {
                    name: a.name.clone(),
                    value: a.value.clone(),
                })?;
            }
            let target = a.target_id.as_deref().ok_or_else(|| {
                Error::InvalidParameter(
                    "targetId is required for container-instance attributes.".into(),
                )
            })?;
            let id = self
                .instance_id(cluster, target)
                .ok_or_else(|| Error::TargetNotFound(format!("Could not find {target}.")))?;
            targets.push(id.to_string());
        }
        let cluster = cluster.clone();
        let ecs = self.clone();
        self.store
            .write(move |tx| {
                let mut out = Vec::new();
                for (a, id) in attrs.into_iter().zip(targets) {
                    let k = key(&cluster, &id);
                    let (g, mut i) = load::<ContainerInstance>(tx.get(Kind::ContainerInstance, &k)?)?
                        .filter(|(_, i)| i.status.is_registered())
                        .ok_or_else(|| Error::TargetNotFound(format!("Could not find {id}.")))?;
                    if put {
                        set_attribute(
                            &mut i.attributes,
                            InstanceAttribute {
                                name: a.name.clone(),
                                value: a.value.clone(),
                            },
                        );
                        let custom = i.attributes.iter().filter(|x| !is_builtin(&x.name)).count();
                        if custom > MAX_CUSTOM_ATTRIBUTES {
                            return Err(Error::AttributeLimitExceeded(format!(
                                "A container instance can have at most {MAX_CUSTOM_ATTRIBUTES} custom attributes."
                            )));
                        }
                    } else {
                        i.attributes.retain(|x| x.name != a.name);
                    }
                    i.version += 1;
                    save_instance(tx, &i, Some(g))?;
                    out.push(TargetedAttribute {
                        name: a.name,
                        value: a.value,
                        target_id: Some(ecs.instance_arn(&i)),
                    });
                }
                Ok(out)
            })
            .await
    }

    /// `ListAttributes` (target type container-instance).
    pub fn attributes_list(
        &self,
        cluster: &ClusterName,
        name: Option<&str>,
        value: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<TargetedAttribute>, Error> {
        self.cluster_get_active(cluster)?;
        let mut all = Vec::new();
        for i in self.instances_registered(cluster)? {
            for a in &i.attributes {
                if name.is_some_and(|n| n != a.name)
                    || value.is_some_and(|v| Some(v) != a.value.as_deref())
                {
                    continue;
                }
                all.push(TargetedAttribute {
                    name: a.name.clone(),
                    value: a.value.clone(),
                    target_id: Some(self.instance_arn(&i)),
                });
            }
        }
        let scope = format!("ListAttributes\n{cluster}\n{name:?}\n{value:?}");
        let (limit, after) = self.page_start(&scope, page, 100, 100)?;
        let start = after.and_then(|a| a.parse::<usize>().ok()).unwrap_or(0);
        let items: Vec<TargetedAttribute> = all.iter().skip(start).take(limit).cloned().collect();
        let next = start + items.len();
        Ok(Page {
            items,
            next_token: (next < all.len()).then(|| self.pager.encode(&scope, &next.to_string())),
        })
    }
}

/// Whether any container instance of `cluster` is still registered (inside a transaction).
pub(super) fn any_registered(tx: &Tx<'_>, cluster: &ClusterName) -> Result<bool, Error> {
    let prefix = format!("{cluster}\n");
    let rows = tx.list(
        Kind::ContainerInstance,
        &ListQuery {
            prefix: &prefix,
            limit: usize::MAX >> 1,
            ..Default::default()
        },
    )?;
    Ok(decode_all(rows)?
        .iter()
        .any(|(_, i)| i.status.is_registered()))
}

fn save_instance(
    tx: &mut Tx<'_>,
    i: &ContainerInstance,
    expected: Option<Generation>,
) -> Result<(), Error> {
    save(
        tx,
        Kind::ContainerInstance,
        &key(&i.cluster, &i.id),
        Some(i.status.as_str()),
        i,
        expected,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_follow_the_naming_rules() {
        let ok = |n: &str, v: Option<&str>| {
            check_attribute(&InstanceAttribute {
                name: n.into(),
                value: v.map(Into::into),
            })
            .is_ok()
        };
        assert!(ok("stack", Some("prod")));
        assert!(ok("ecs.availability-zone", Some("us-east-1a")));
        assert!(ok("flag", None));
        assert!(!ok("", Some("x")));
        assert!(!ok("bad name", Some("x")));
        assert!(!ok("x", Some(" padded")));
        assert!(!ok(&"n".repeat(129), Some("x")));
    }
}
