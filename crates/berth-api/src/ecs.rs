//! ECS over awsJson 1.1: wire input → domain command, domain view → wire output.
//!
//! Inputs arrive validated against the model with nulls removed; the structs below name only
//! the members each operation reads (AWS member names, via `rename_all = "camelCase"`).

use crate::ApiState;
use berth_control::ecs::{
    ContainerReport, CreateCluster, Failure, FamilyStatusFilter, InstanceUsage,
    ListAccountSettings, ListTaskDefinitions, ListTasks, RegisterInstance, RegisterTaskDefinition,
    RunTask, TargetedAttribute, TaskReport, UpdateCluster,
};
use berth_control::ecs::{CreateService, DeploymentConfiguration, UpdateService};
use berth_control::paging::{Page, PageRequest};
use berth_control::placement;
use berth_types::ecs::{
    Cluster, ClusterSetting, ContainerInstance, InstanceAttribute, InstanceResource,
    InstanceStatus, Service, Task, TaskDefinition, TaskDefinitionStatus, TaskStatus,
};
use berth_types::{Error, Principal, Tag, Timestamp};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

#[derive(Deserialize)]
struct WireTag {
    key: String,
    #[serde(default)]
    value: String,
}

fn tags(wire: Vec<WireTag>) -> Vec<Tag> {
    wire.into_iter()
        .map(|t| Tag {
            key: t.key,
            value: t.value,
        })
        .collect()
}

fn tags_out(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect(),
    )
}

#[derive(Deserialize)]
struct WireSetting {
    name: String,
    value: String,
}

fn settings(wire: Vec<WireSetting>) -> Vec<ClusterSetting> {
    wire.into_iter()
        .map(|s| ClusterSetting {
            name: s.name,
            value: s.value,
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Paging {
    next_token: Option<String>,
    max_results: Option<i32>,
}

impl Paging {
    fn request(self) -> PageRequest {
        PageRequest {
            max_results: self.max_results,
            next_token: self.next_token,
        }
    }
}

fn input<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::InvalidParameter(format!("Invalid request: {e}")))
}

fn page_out<T>(key: &str, page: Page<T>, item: impl Fn(T) -> Value) -> Value {
    let mut out = Map::new();
    out.insert(
        key.into(),
        Value::Array(page.items.into_iter().map(item).collect()),
    );
    if let Some(t) = page.next_token {
        out.insert("nextToken".into(), Value::String(t));
    }
    Value::Object(out)
}

fn failures_out(failures: &[Failure]) -> Value {
    Value::Array(
        failures
            .iter()
            .map(|f| {
                let mut m = json!({"arn": f.arn, "reason": f.reason});
                if let Some(d) = &f.detail {
                    m["detail"] = Value::String(d.clone());
                }
                m
            })
            .collect(),
    )
}

/// Which optional parts of a cluster to render.
#[derive(Clone, Copy)]
struct ClusterParts {
    settings: bool,
    configuration: bool,
    tags: bool,
    statistics: bool,
    attachments: bool,
}

const ALL_PARTS: ClusterParts = ClusterParts {
    settings: true,
    configuration: true,
    tags: true,
    statistics: false,
    attachments: false,
};

fn cluster_out(state: &ApiState, c: &Cluster, parts: ClusterParts) -> Result<Value, Error> {
    let ecs = &state.inner.ecs;
    let counts = ecs.cluster_counts(c)?;
    let mut m = json!({
        "clusterArn": ecs.cluster_arn(&c.name),
        "clusterName": c.name.as_str(),
        "status": c.status.as_str(),
        "registeredContainerInstancesCount": counts.registered_container_instances,
        "runningTasksCount": counts.running_tasks,
        "pendingTasksCount": counts.pending_tasks,
        "activeServicesCount": counts.active_services,
        "capacityProviders": c.capacity_providers,
        "defaultCapacityProviderStrategy": c.default_capacity_provider_strategy,
    });
    if parts.settings {
        m["settings"] = Value::Array(
            c.settings
                .iter()
                .map(|s| json!({"name": s.name, "value": s.value}))
                .collect(),
        );
    }
    if parts.configuration
        && let Some(conf) = &c.configuration
    {
        m["configuration"] = conf.clone();
    }
    if let Some(d) = &c.service_connect_defaults {
        m["serviceConnectDefaults"] = d.clone();
    }
    if parts.tags {
        m["tags"] = tags_out(&c.tags);
    }
    if parts.statistics {
        let stats = [
            ("runningEC2TasksCount", counts.running_tasks),
            ("runningFargateTasksCount", 0),
            ("pendingEC2TasksCount", counts.pending_tasks),
            ("pendingFargateTasksCount", 0),
            ("runningExternalTasksCount", 0),
            ("pendingExternalTasksCount", 0),
            ("activeEC2ServiceCount", counts.active_services),
            ("activeFargateServiceCount", 0),
            ("drainingEC2ServiceCount", 0),
            ("drainingFargateServiceCount", 0),
            ("activeExternalServiceCount", 0),
            ("drainingExternalServiceCount", 0),
        ];
        m["statistics"] = Value::Array(
            stats
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v.to_string()}))
                .collect(),
        );
    }
    if parts.attachments {
        m["attachments"] = json!([]);
    }
    Ok(m)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireResource {
    name: String,
    #[serde(rename = "type")]
    kind: Option<String>,
    double_value: Option<f64>,
    long_value: Option<i64>,
    integer_value: Option<i64>,
    #[serde(default)]
    string_set_value: Vec<String>,
}

fn resource_in(r: WireResource) -> InstanceResource {
    let kind = r.kind.unwrap_or_else(|| {
        if !r.string_set_value.is_empty() {
            "STRINGSET".into()
        } else if r.double_value.is_some() {
            "DOUBLE".into()
        } else if r.long_value.is_some() {
            "LONG".into()
        } else {
            "INTEGER".into()
        }
    });
    InstanceResource {
        name: r.name,
        kind,
        integer: r.integer_value,
        long: r.long_value,
        double: r.double_value,
        string_set: r.string_set_value,
    }
}

fn resource_out(r: &InstanceResource) -> Value {
    let mut v = json!({"name": r.name, "type": r.kind});
    if let Some(n) = r.integer {
        v["integerValue"] = n.into();
    }
    if let Some(n) = r.long {
        v["longValue"] = n.into();
    }
    if let Some(d) = r.double {
        v["doubleValue"] = d.into();
    }
    if r.kind == "STRINGSET" {
        v["stringSetValue"] = json!(r.string_set);
    }
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireAttribute {
    name: String,
    value: Option<String>,
    target_type: Option<String>,
    target_id: Option<String>,
}

fn attribute_out(a: &TargetedAttribute) -> Value {
    let mut v = json!({"name": a.name, "targetType": "container-instance"});
    if let Some(x) = &a.value {
        v["value"] = Value::String(x.clone());
    }
    if let Some(t) = &a.target_id {
        v["targetId"] = Value::String(t.clone());
    }
    v
}

fn instance_out(
    state: &ApiState,
    i: &ContainerInstance,
    usage: Option<&InstanceUsage>,
    with_tags: bool,
) -> Value {
    let resources: Vec<Value> = i.registered_resources.iter().map(resource_out).collect();
    let u = usage.cloned().unwrap_or_default();
    let remaining: Vec<Value> = i
        .registered_resources
        .iter()
        .map(|r| {
            let mut r = r.clone();
            match r.name.as_str() {
                "CPU" => r.integer = r.integer.map(|n| n - u.cpu),
                "MEMORY" => r.integer = r.integer.map(|n| n - u.memory),
                "PORTS" => r
                    .string_set
                    .extend(u.tcp_ports.iter().map(|p| p.to_string())),
                "PORTS_UDP" => r
                    .string_set
                    .extend(u.udp_ports.iter().map(|p| p.to_string())),
                _ => {}
            }
            resource_out(&r)
        })
        .collect();
    let mut v = json!({
        "containerInstanceArn": state.inner.ecs.instance_arn(i),
        "ec2InstanceId": i.ec2_instance_id,
        "version": i.version,
        "status": i.status.as_str(),
        "agentConnected": i.agent_connected,
        "registeredResources": resources,
        "remainingResources": remaining,
        "runningTasksCount": u.running,
        "pendingTasksCount": u.pending,
        "attributes": i.attributes.iter().map(|a| {
            let mut x = json!({"name": a.name});
            if let Some(val) = &a.value {
                x["value"] = Value::String(val.clone());
            }
            x
        }).collect::<Vec<_>>(),
        "registeredAt": i.registered_at.epoch_seconds(),
    });
    if let Some(vi) = &i.version_info {
        v["versionInfo"] = vi.clone();
    }
    if with_tags {
        v["tags"] = tags_out(&i.tags);
    }
    v
}

fn ts(t: Option<Timestamp>) -> Option<f64> {
    t.map(Timestamp::epoch_seconds)
}

fn task_out(state: &ApiState, t: &Task, with_tags: bool) -> Value {
    let ecs = &state.inner.ecs;
    let task_arn = ecs.task_arn(t);
    let containers: Vec<Value> = t
        .containers
        .iter()
        .map(|c| {
            let mut v = json!({
                "containerArn": ecs.container_arn(t, c),
                "taskArn": task_arn,
                "name": c.name,
                "image": c.image,
                "lastStatus": c.last_status,
                "networkBindings": c.network_bindings,
            });
            for (k, x) in [
                ("cpu", c.cpu),
                ("memory", c.memory),
                ("memoryReservation", c.memory_reservation),
            ] {
                if let Some(n) = x {
                    v[k] = Value::String(n.to_string());
                }
            }
            if let Some(e) = c.exit_code {
                v["exitCode"] = e.into();
            }
            for (k, x) in [
                ("reason", &c.reason),
                ("runtimeId", &c.runtime_id),
                ("healthStatus", &c.health_status),
            ] {
                if let Some(x) = x {
                    v[k] = Value::String(x.clone());
                }
            }
            v
        })
        .collect();
    let mut v = json!({
        "taskArn": task_arn,
        "clusterArn": ecs.cluster_arn(&t.cluster),
        "taskDefinitionArn": ecs.task_definition_arn(&t.family, t.revision),
        "overrides": t.overrides.clone().unwrap_or_else(|| json!({"containerOverrides": []})),
        "lastStatus": t.last_status.as_str(),
        "desiredStatus": if t.desired_stopped { "STOPPED" } else { "RUNNING" },
        "cpu": t.cpu_spec.clone().unwrap_or_else(|| t.cpu.to_string()),
        "memory": t.memory_spec.clone().unwrap_or_else(|| t.memory.to_string()),
        "containers": containers,
        "version": t.version,
        "createdAt": t.created_at.epoch_seconds(),
        "group": t.group,
        "launchType": t.launch_type,
        "healthStatus": t.health_status(),
    });
    if let Some(ip) = &t.private_ipv4_address {
        // awsvpc: the task's own address, shown as AWS shows an ENI.
        let attachment = format!("{}-eni", &t.id[..8]);
        v["attachments"] = json!([{
            "id": attachment,
            "type": "ElasticNetworkInterface",
            "status": "ATTACHED",
            "details": [
                {"name": "subnetId", "value": "subnet-berth"},
                {"name": "networkInterfaceId", "value": format!("eni-{}", &t.id[..17])},
                {"name": "privateIPv4Address", "value": ip},
            ],
        }]);
        if let Some(cs) = v["containers"].as_array_mut() {
            for c in cs {
                c["networkInterfaces"] =
                    json!([{"attachmentId": attachment, "privateIpv4Address": ip}]);
            }
        }
    }
    if let Some(i) = &t.container_instance {
        v["containerInstanceArn"] = Value::String(
            ecs.scope()
                .arn("ecs", &format!("container-instance/{}/{i}", t.cluster)),
        );
    }
    for (k, x) in [
        ("startedBy", &t.started_by),
        ("stopCode", &t.stop_code),
        ("stoppedReason", &t.stopped_reason),
        ("availabilityZone", &t.availability_zone),
    ] {
        if let Some(x) = x {
            v[k] = Value::String(x.clone());
        }
    }
    for (k, x) in [
        ("pullStartedAt", ts(t.pull_started_at)),
        ("pullStoppedAt", ts(t.pull_stopped_at)),
        ("startedAt", ts(t.started_at)),
        ("stoppingAt", ts(t.stopping_at)),
        ("stoppedAt", ts(t.stopped_at)),
        ("executionStoppedAt", ts(t.execution_stopped_at)),
    ] {
        if let Some(x) = x {
            v[k] = x.into();
        }
    }
    if with_tags {
        v["tags"] = tags_out(&t.tags);
    }
    v
}

fn service_out(state: &ApiState, s: &Service, with_tags: bool) -> Value {
    let ecs = &state.inner.ecs;
    let deployments: Vec<Value> = s
        .deployments
        .iter()
        .map(|d| {
            let mut v = json!({
                "id": d.id,
                "status": d.status,
                "taskDefinition": ecs.task_definition_arn(&d.family, d.revision),
                "desiredCount": d.desired_count,
                "pendingCount": d.pending_count,
                "runningCount": d.running_count,
                "failedTasks": d.failed_tasks,
                "createdAt": d.created_at.epoch_seconds(),
                "updatedAt": d.updated_at.epoch_seconds(),
                "launchType": d.launch_type,
                "rolloutState": d.rollout_state,
                "rolloutStateReason": d.rollout_state_reason,
            });
            if let Some(n) = &s.network_configuration {
                v["networkConfiguration"] = n.clone();
            }
            v
        })
        .collect();
    let events: Vec<Value> = s
        .events
        .iter()
        .map(|e| json!({"id": e.id, "createdAt": e.created_at.epoch_seconds(), "message": e.message}))
        .collect();
    let mut v = json!({
        "serviceArn": ecs.service_arn(s),
        "serviceName": s.name,
        "clusterArn": ecs.cluster_arn(&s.cluster),
        "loadBalancers": s.load_balancers,
        "serviceRegistries": [],
        "status": s.status,
        "desiredCount": s.desired_count,
        "runningCount": s.deployments.iter().map(|d| d.running_count).sum::<u32>(),
        "pendingCount": s.deployments.iter().map(|d| d.pending_count).sum::<u32>(),
        "launchType": s.launch_type,
        "taskDefinition": ecs.task_definition_arn(&s.family, s.revision),
        "deploymentConfiguration": {
            "deploymentCircuitBreaker": {
                "enable": s.circuit_breaker_enable,
                "rollback": s.circuit_breaker_rollback,
            },
            "maximumPercent": s.maximum_percent,
            "minimumHealthyPercent": s.minimum_healthy_percent,
        },
        "deployments": deployments,
        "events": events,
        "createdAt": s.created_at.epoch_seconds(),
        "placementConstraints": s.placement_constraints,
        "placementStrategy": s.placement_strategy,
        "schedulingStrategy": s.scheduling_strategy,
        "deploymentController": {"type": "ECS"},
        "createdBy": s.created_by,
        "enableECSManagedTags": s.enable_ecs_managed_tags,
        "propagateTags": s.propagate_tags,
        "enableExecuteCommand": false,
    });
    if s.health_check_grace_period_seconds > 0 || !s.load_balancers.is_empty() {
        v["healthCheckGracePeriodSeconds"] = s.health_check_grace_period_seconds.into();
    }
    if let Some(n) = &s.network_configuration {
        v["networkConfiguration"] = n.clone();
    }
    if with_tags {
        v["tags"] = tags_out(&s.tags);
    }
    v
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireDeploymentConfiguration {
    minimum_healthy_percent: Option<i64>,
    maximum_percent: Option<i64>,
    deployment_circuit_breaker: Option<WireCircuitBreaker>,
}

#[derive(Deserialize)]
struct WireCircuitBreaker {
    enable: bool,
    rollback: bool,
}

impl From<WireDeploymentConfiguration> for DeploymentConfiguration {
    fn from(w: WireDeploymentConfiguration) -> Self {
        DeploymentConfiguration {
            minimum_healthy_percent: w.minimum_healthy_percent,
            maximum_percent: w.maximum_percent,
            circuit_breaker: w.deployment_circuit_breaker.map(|c| (c.enable, c.rollback)),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireContainerChange {
    container_name: Option<String>,
    exit_code: Option<i64>,
    status: Option<String>,
    reason: Option<String>,
    runtime_id: Option<String>,
    network_bindings: Option<Vec<Value>>,
    /// Not in the AWS model: Berth's agent reports container health here.
    health_status: Option<String>,
    /// Not in the AWS model: Berth's agent reports an awsvpc task's address here.
    private_ipv4_address: Option<String>,
}

fn timestamp_in(v: Option<f64>) -> Option<Timestamp> {
    v.map(|s| Timestamp((s * 1000.0) as i64))
}

fn instance_status(s: &str) -> Result<InstanceStatus, Error> {
    match s {
        "ACTIVE" => Ok(InstanceStatus::Active),
        "DRAINING" => Ok(InstanceStatus::Draining),
        other => Err(Error::InvalidParameter(format!(
            "Container instance status '{other}' cannot be set or listed here: use ACTIVE or DRAINING."
        ))),
    }
}

fn task_definition_out(state: &ApiState, td: &TaskDefinition) -> Value {
    let mut m = td.spec.clone();
    let ecs = &state.inner.ecs;
    m.insert(
        "taskDefinitionArn".into(),
        ecs.task_definition_arn(&td.family, td.revision).into(),
    );
    m.insert("family".into(), td.family.as_str().into());
    m.insert("revision".into(), td.revision.into());
    m.insert("status".into(), td.status.as_str().into());
    m.insert(
        "requiresAttributes".into(),
        Value::Array(
            td.requires_attributes
                .iter()
                .map(|a| json!({"name": a}))
                .collect(),
        ),
    );
    m.insert("compatibilities".into(), json!(td.compatibilities));
    m.insert(
        "registeredAt".into(),
        td.registered_at.epoch_seconds().into(),
    );
    m.insert("registeredBy".into(), td.registered_by.clone().into());
    if let Some(t) = td.deregistered_at {
        m.insert("deregisteredAt".into(), t.epoch_seconds().into());
    }
    if let Some(t) = td.delete_requested_at {
        m.insert("deleteRequestedAt".into(), t.epoch_seconds().into());
    }
    Value::Object(m)
}

/// Runs one ECS operation. Unknown names are `NotImplemented` (the router checks the support
/// table first, so only a table/dispatch mismatch reaches that arm).
pub async fn call(
    state: &ApiState,
    principal: &Principal,
    operation: &str,
    v: Value,
    body_len: usize,
) -> Result<Value, Error> {
    let ecs = &state.inner.ecs;
    match operation {
        "CreateCluster" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster_name: Option<String>,
                #[serde(default)]
                tags: Vec<WireTag>,
                #[serde(default)]
                settings: Vec<WireSetting>,
                configuration: Option<Value>,
                #[serde(default)]
                capacity_providers: Vec<String>,
                #[serde(default)]
                default_capacity_provider_strategy: Vec<Value>,
                service_connect_defaults: Option<Value>,
            }
            let i: In = input(v)?;
            let c = ecs
                .cluster_create(CreateCluster {
                    name: i.cluster_name,
                    tags: tags(i.tags),
                    settings: settings(i.settings),
                    configuration: i.configuration,
                    capacity_providers: i.capacity_providers,
                    default_capacity_provider_strategy: i.default_capacity_provider_strategy,
                    service_connect_defaults: i.service_connect_defaults,
                })
                .await?;
            Ok(json!({"cluster": cluster_out(state, &c, ALL_PARTS)?}))
        }
        "DescribeClusters" => {
            #[derive(Deserialize)]
            struct In {
                #[serde(default)]
                clusters: Vec<String>,
                #[serde(default)]
                include: Vec<String>,
            }
            let i: In = input(v)?;
            if i.clusters.len() > 100 {
                return Err(Error::InvalidParameter(
                    "clusters can have at most 100 items.".into(),
                ));
            }
            let has = |f: &str| i.include.iter().any(|x| x == f);
            let parts = ClusterParts {
                settings: has("SETTINGS"),
                configuration: has("CONFIGURATIONS"),
                tags: has("TAGS"),
                statistics: has("STATISTICS"),
                attachments: has("ATTACHMENTS"),
            };
            let (found, failures) = ecs.cluster_describe(&i.clusters)?;
            let clusters: Vec<Value> = found
                .iter()
                .map(|c| cluster_out(state, c, parts))
                .collect::<Result<_, _>>()?;
            Ok(json!({"clusters": clusters, "failures": failures_out(&failures)}))
        }
        "ListClusters" => {
            let page = ecs.cluster_list(&input::<Paging>(v)?.request())?;
            Ok(page_out("clusterArns", page, Value::String))
        }
        "DeleteCluster" => {
            #[derive(Deserialize)]
            struct In {
                cluster: String,
            }
            let i: In = input(v)?;
            let c = ecs
                .cluster_delete(ecs.cluster_name(Some(&i.cluster))?)
                .await?;
            Ok(json!({"cluster": cluster_out(state, &c, ALL_PARTS)?}))
        }
        "UpdateCluster" | "UpdateClusterSettings" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: String,
                settings: Option<Vec<WireSetting>>,
                configuration: Option<Value>,
                service_connect_defaults: Option<Value>,
            }
            let i: In = input(v)?;
            let c = ecs
                .cluster_update(
                    ecs.cluster_name(Some(&i.cluster))?,
                    UpdateCluster {
                        settings: i.settings.map(settings),
                        configuration: i.configuration,
                        service_connect_defaults: i.service_connect_defaults,
                    },
                )
                .await?;
            Ok(json!({"cluster": cluster_out(state, &c, ALL_PARTS)?}))
        }
        "RegisterTaskDefinition" => {
            let Value::Object(mut spec) = v else {
                return Err(Error::InvalidParameter(
                    "The request must be an object.".into(),
                ));
            };
            let family = match spec.remove("family") {
                Some(Value::String(f)) => f,
                _ => return Err(Error::InvalidParameter("family is required.".into())),
            };
            let wire_tags: Vec<WireTag> = match spec.remove("tags") {
                Some(t) => input(t)?,
                None => Vec::new(),
            };
            let td = ecs
                .task_definition_register(
                    principal,
                    RegisterTaskDefinition {
                        family,
                        tags: tags(wire_tags),
                        spec,
                    },
                    body_len,
                )
                .await?;
            Ok(
                json!({"taskDefinition": task_definition_out(state, &td), "tags": tags_out(&td.tags)}),
            )
        }
        "DescribeTaskDefinition" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                task_definition: String,
                #[serde(default)]
                include: Vec<String>,
            }
            let i: In = input(v)?;
            let td = ecs.task_definition_describe(&i.task_definition)?;
            let mut out = json!({"taskDefinition": task_definition_out(state, &td)});
            if i.include.iter().any(|x| x == "TAGS") {
                out["tags"] = tags_out(&td.tags);
            }
            Ok(out)
        }
        "ListTaskDefinitions" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                family_prefix: Option<String>,
                status: Option<String>,
                sort: Option<String>,
                #[serde(flatten)]
                paging: Paging,
            }
            let i: In = input(v)?;
            let page = ecs.task_definition_list(&ListTaskDefinitions {
                family: i.family_prefix,
                status: i.status.as_deref().and_then(TaskDefinitionStatus::parse),
                descending: i.sort.as_deref() == Some("DESC"),
                page: i.paging.request(),
            })?;
            Ok(page_out("taskDefinitionArns", page, Value::String))
        }
        "ListTaskDefinitionFamilies" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                family_prefix: Option<String>,
                status: Option<String>,
                #[serde(flatten)]
                paging: Paging,
            }
            let i: In = input(v)?;
            let status = match i.status.as_deref() {
                Some("ACTIVE") => FamilyStatusFilter::Active,
                Some("INACTIVE") => FamilyStatusFilter::Inactive,
                _ => FamilyStatusFilter::All,
            };
            let page = ecs.family_list(i.family_prefix.as_deref(), status, &i.paging.request())?;
            Ok(page_out("families", page, Value::String))
        }
        "DeregisterTaskDefinition" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                task_definition: String,
            }
            let i: In = input(v)?;
            let td = ecs.task_definition_deregister(&i.task_definition).await?;
            Ok(json!({"taskDefinition": task_definition_out(state, &td)}))
        }
        "DeleteTaskDefinitions" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                task_definitions: Vec<String>,
            }
            let i: In = input(v)?;
            let (done, failures) = ecs.task_definition_delete(i.task_definitions).await?;
            let tds: Vec<Value> = done
                .iter()
                .map(|td| task_definition_out(state, td))
                .collect();
            Ok(json!({"taskDefinitions": tds, "failures": failures_out(&failures)}))
        }
        "TagResource" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                resource_arn: String,
                tags: Vec<WireTag>,
            }
            let i: In = input(v)?;
            ecs.tags_add(&i.resource_arn, tags(i.tags)).await?;
            Ok(json!({}))
        }
        "UntagResource" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                resource_arn: String,
                tag_keys: Vec<String>,
            }
            let i: In = input(v)?;
            ecs.tags_remove(&i.resource_arn, i.tag_keys).await?;
            Ok(json!({}))
        }
        "ListTagsForResource" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                resource_arn: String,
            }
            let i: In = input(v)?;
            Ok(json!({"tags": tags_out(&ecs.tags_list(&i.resource_arn)?)}))
        }
        "ListAccountSettings" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                name: Option<String>,
                value: Option<String>,
                principal_arn: Option<String>,
                #[serde(default)]
                effective_settings: bool,
                #[serde(flatten)]
                paging: Paging,
            }
            let i: In = input(v)?;
            let page = ecs.setting_list(
                principal,
                &ListAccountSettings {
                    name: i.name,
                    value: i.value,
                    principal_arn: i.principal_arn,
                    effective: i.effective_settings,
                    page: i.paging.request(),
                },
            )?;
            Ok(page_out("settings", page, |s| {
                json!({
                    "name": s.setting.name,
                    "value": s.setting.value,
                    "principalArn": s.setting.principal_arn,
                    "type": if s.user_set { "user" } else { "aws_managed" },
                })
            }))
        }
        "PutAccountSetting" | "PutAccountSettingDefault" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                name: String,
                value: String,
                principal_arn: Option<String>,
            }
            let i: In = input(v)?;
            let s = if operation == "PutAccountSetting" {
                ecs.setting_put(principal, i.name, i.value, i.principal_arn)
                    .await?
            } else {
                ecs.setting_put_default(principal, i.name, i.value).await?
            };
            Ok(
                json!({"setting": {"name": s.name, "value": s.value, "principalArn": s.principal_arn, "type": "user"}}),
            )
        }
        "RegisterContainerInstance" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                instance_identity_document: Option<String>,
                container_instance_arn: Option<String>,
                #[serde(default)]
                total_resources: Vec<WireResource>,
                version_info: Option<Value>,
                #[serde(default)]
                attributes: Vec<WireAttribute>,
                #[serde(default)]
                tags: Vec<WireTag>,
            }
            let i: In = input(v)?;
            let ec2_instance_id = i
                .instance_identity_document
                .as_deref()
                .and_then(|d| serde_json::from_str::<Value>(d).ok())
                .and_then(|d| {
                    d.get("instanceId")
                        .and_then(Value::as_str)
                        .map(str::to_string)
                });
            let inst = ecs
                .instance_register(RegisterInstance {
                    cluster: i.cluster,
                    container_instance_arn: i.container_instance_arn,
                    ec2_instance_id,
                    total_resources: i.total_resources.into_iter().map(resource_in).collect(),
                    attributes: i
                        .attributes
                        .into_iter()
                        .map(|a| InstanceAttribute {
                            name: a.name,
                            value: a.value,
                        })
                        .collect(),
                    version_info: i.version_info,
                    tags: tags(i.tags),
                })
                .await?;
            Ok(
                json!({"containerInstance": instance_out(state, &inst, ecs.instance_usage(&inst.cluster)?.get(&inst.id), true)}),
            )
        }
        "DescribeContainerInstances" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                container_instances: Vec<String>,
                #[serde(default)]
                include: Vec<String>,
            }
            let i: In = input(v)?;
            if i.container_instances.len() > 100 {
                return Err(Error::InvalidParameter(
                    "containerInstances can have at most 100 items.".into(),
                ));
            }
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let (found, failures) = ecs.instance_describe(&cluster, &i.container_instances)?;
            let with_tags = i.include.iter().any(|x| x == "TAGS");
            let usage = ecs.instance_usage(&cluster)?;
            let out: Vec<Value> = found
                .iter()
                .map(|x| instance_out(state, x, usage.get(&x.id), with_tags))
                .collect();
            Ok(json!({"containerInstances": out, "failures": failures_out(&failures)}))
        }
        "ListContainerInstances" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                filter: Option<String>,
                status: Option<String>,
                #[serde(flatten)]
                paging: Paging,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let status = i.status.as_deref().map(instance_status).transpose()?;
            let page =
                ecs.instance_list(&cluster, i.filter.as_deref(), status, &i.paging.request())?;
            Ok(page_out("containerInstanceArns", page, Value::String))
        }
        "DeregisterContainerInstance" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                container_instance: String,
                #[serde(default)]
                force: bool,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let inst = ecs
                .instance_deregister(&cluster, &i.container_instance, i.force)
                .await?;
            Ok(
                json!({"containerInstance": instance_out(state, &inst, ecs.instance_usage(&inst.cluster)?.get(&inst.id), false)}),
            )
        }
        "UpdateContainerInstancesState" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                container_instances: Vec<String>,
                status: String,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let status = instance_status(&i.status)?;
            let (done, failures) = ecs
                .instance_update_state(&cluster, i.container_instances, status)
                .await?;
            let usage = ecs.instance_usage(&cluster)?;
            let out: Vec<Value> = done
                .iter()
                .map(|x| instance_out(state, x, usage.get(&x.id), false))
                .collect();
            Ok(json!({"containerInstances": out, "failures": failures_out(&failures)}))
        }
        "PutAttributes" | "DeleteAttributes" => {
            #[derive(Deserialize)]
            struct In {
                cluster: Option<String>,
                attributes: Vec<WireAttribute>,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            if i.attributes.len() > 10 {
                return Err(Error::AttributeLimitExceeded(
                    "At most 10 attributes per call.".into(),
                ));
            }
            let mut attrs = Vec::new();
            for a in i.attributes {
                if a.target_type
                    .as_deref()
                    .is_some_and(|t| t != "container-instance")
                {
                    return Err(Error::InvalidParameter(
                        "targetType must be container-instance.".into(),
                    ));
                }
                attrs.push(TargetedAttribute {
                    name: a.name,
                    value: a.value,
                    target_id: a.target_id,
                });
            }
            let done = if operation == "PutAttributes" {
                ecs.attributes_put(&cluster, attrs).await?
            } else {
                ecs.attributes_delete(&cluster, attrs).await?
            };
            Ok(json!({"attributes": done.iter().map(attribute_out).collect::<Vec<_>>()}))
        }
        "ListAttributes" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                attribute_name: Option<String>,
                attribute_value: Option<String>,
                #[serde(flatten)]
                paging: Paging,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let page = ecs.attributes_list(
                &cluster,
                i.attribute_name.as_deref(),
                i.attribute_value.as_deref(),
                &i.paging.request(),
            )?;
            Ok(page_out("attributes", page, |a| attribute_out(&a)))
        }
        "RunTask" | "StartTask" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                task_definition: String,
                count: Option<i64>,
                launch_type: Option<String>,
                group: Option<String>,
                started_by: Option<String>,
                overrides: Option<Value>,
                #[serde(default)]
                placement_strategy: Vec<Value>,
                #[serde(default)]
                placement_constraints: Vec<Value>,
                container_instances: Option<Vec<String>>,
                #[serde(default)]
                tags: Vec<WireTag>,
                propagate_tags: Option<String>,
                #[serde(default, rename = "enableECSManagedTags")]
                enable_ecs_managed_tags: bool,
            }
            let i: In = input(v)?;
            if i.started_by.as_ref().is_some_and(|s| s.len() > 128) {
                return Err(Error::InvalidParameter(
                    "startedBy can be at most 128 characters.".into(),
                ));
            }
            if i.group.as_ref().is_some_and(|g| g.len() > 255) {
                return Err(Error::InvalidParameter(
                    "group can be at most 255 characters.".into(),
                ));
            }
            let start = operation == "StartTask";
            if start && i.container_instances.is_none() {
                return Err(Error::InvalidParameter(
                    "containerInstances is required.".into(),
                ));
            }
            let (tasks, failures) = ecs
                .task_run(RunTask {
                    cluster: i.cluster,
                    task_definition: i.task_definition,
                    count: if start {
                        i.container_instances.as_ref().map_or(1, |c| c.len() as i64)
                    } else {
                        i.count.unwrap_or(1)
                    },
                    launch_type: i.launch_type,
                    group: i.group,
                    started_by: i.started_by,
                    overrides: i.overrides,
                    strategies: placement::strategies_from(&i.placement_strategy)
                        .map_err(Error::InvalidParameter)?,
                    constraints: placement::constraints_from(&i.placement_constraints)
                        .map_err(Error::InvalidParameter)?,
                    instances: if start { i.container_instances } else { None },
                    tags: tags(i.tags),
                    propagate_tags: i.propagate_tags,
                    managed_tags: i.enable_ecs_managed_tags,
                })
                .await?;
            let out: Vec<Value> = tasks.iter().map(|t| task_out(state, t, false)).collect();
            Ok(json!({"tasks": out, "failures": failures_out(&failures)}))
        }
        "DescribeTasks" => {
            #[derive(Deserialize)]
            struct In {
                cluster: Option<String>,
                tasks: Vec<String>,
                #[serde(default)]
                include: Vec<String>,
            }
            let i: In = input(v)?;
            if i.tasks.len() > 100 {
                return Err(Error::InvalidParameter(
                    "tasks can have at most 100 items.".into(),
                ));
            }
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let (found, failures) = ecs.task_describe(&cluster, &i.tasks)?;
            let with_tags = i.include.iter().any(|x| x == "TAGS");
            let out: Vec<Value> = found
                .iter()
                .map(|t| task_out(state, t, with_tags))
                .collect();
            Ok(json!({"tasks": out, "failures": failures_out(&failures)}))
        }
        "ListTasks" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                container_instance: Option<String>,
                family: Option<String>,
                started_by: Option<String>,
                service_name: Option<String>,
                desired_status: Option<String>,
                launch_type: Option<String>,
                #[serde(flatten)]
                paging: Paging,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let page = ecs
                .task_list(
                    &cluster,
                    &ListTasks {
                        container_instance: i.container_instance,
                        family: i.family,
                        started_by: i.started_by,
                        service_name: i.service_name,
                        desired_stopped: i.desired_status.as_deref() == Some("STOPPED"),
                        launch_type: i.launch_type,
                        page: i.paging.request(),
                    },
                )
                .await?;
            Ok(page_out("taskArns", page, Value::String))
        }
        "StopTask" => {
            #[derive(Deserialize)]
            struct In {
                cluster: Option<String>,
                task: String,
                reason: Option<String>,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let t = ecs.task_stop(&cluster, &i.task, i.reason).await?;
            Ok(json!({"task": task_out(state, &t, false)}))
        }
        "CreateService" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                service_name: String,
                task_definition: Option<String>,
                desired_count: Option<i64>,
                launch_type: Option<String>,
                scheduling_strategy: Option<String>,
                #[serde(default)]
                placement_strategy: Vec<Value>,
                #[serde(default)]
                placement_constraints: Vec<Value>,
                deployment_configuration: Option<WireDeploymentConfiguration>,
                deployment_controller: Option<Value>,
                health_check_grace_period_seconds: Option<i64>,
                #[serde(default)]
                load_balancers: Vec<Value>,
                network_configuration: Option<Value>,
                #[serde(default)]
                tags: Vec<WireTag>,
                propagate_tags: Option<String>,
                #[serde(default, rename = "enableECSManagedTags")]
                enable_ecs_managed_tags: bool,
                capacity_provider_strategy: Option<Vec<Value>>,
            }
            let i: In = input(v)?;
            if i.capacity_provider_strategy.is_some_and(|c| !c.is_empty()) {
                return Err(Error::InvalidParameter(
                    "Capacity providers are not supported; use launchType.".into(),
                ));
            }
            let s = ecs
                .service_create(CreateService {
                    cluster: i.cluster,
                    name: i.service_name,
                    task_definition: i.task_definition,
                    desired_count: i.desired_count,
                    launch_type: i.launch_type,
                    scheduling_strategy: i.scheduling_strategy,
                    placement_strategy: i.placement_strategy,
                    placement_constraints: i.placement_constraints,
                    deployment_configuration: i.deployment_configuration.map(Into::into),
                    deployment_controller: i
                        .deployment_controller
                        .and_then(|c| c.get("type").and_then(Value::as_str).map(str::to_string)),
                    health_check_grace_period_seconds: i.health_check_grace_period_seconds,
                    load_balancers: i.load_balancers,
                    network_configuration: i.network_configuration,
                    tags: tags(i.tags),
                    propagate_tags: i.propagate_tags,
                    enable_ecs_managed_tags: i.enable_ecs_managed_tags,
                })
                .await?;
            Ok(json!({"service": service_out(state, &s, true)}))
        }
        "UpdateService" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                service: String,
                task_definition: Option<String>,
                desired_count: Option<i64>,
                #[serde(default)]
                force_new_deployment: bool,
                deployment_configuration: Option<WireDeploymentConfiguration>,
                placement_strategy: Option<Vec<Value>>,
                placement_constraints: Option<Vec<Value>>,
                health_check_grace_period_seconds: Option<i64>,
                load_balancers: Option<Vec<Value>>,
                network_configuration: Option<Value>,
                propagate_tags: Option<String>,
                #[serde(rename = "enableECSManagedTags")]
                enable_ecs_managed_tags: Option<bool>,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let s = ecs
                .service_update(
                    &cluster,
                    &i.service,
                    UpdateService {
                        task_definition: i.task_definition,
                        desired_count: i.desired_count,
                        force_new_deployment: i.force_new_deployment,
                        deployment_configuration: i.deployment_configuration.map(Into::into),
                        placement_strategy: i.placement_strategy,
                        placement_constraints: i.placement_constraints,
                        health_check_grace_period_seconds: i.health_check_grace_period_seconds,
                        load_balancers: i.load_balancers,
                        network_configuration: i.network_configuration,
                        propagate_tags: i.propagate_tags,
                        enable_ecs_managed_tags: i.enable_ecs_managed_tags,
                    },
                )
                .await?;
            Ok(json!({"service": service_out(state, &s, false)}))
        }
        "DeleteService" => {
            #[derive(Deserialize)]
            struct In {
                cluster: Option<String>,
                service: String,
                force: Option<bool>,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let s = ecs
                .service_delete(&cluster, &i.service, i.force.unwrap_or(false))
                .await?;
            Ok(json!({"service": service_out(state, &s, false)}))
        }
        "DescribeServices" => {
            #[derive(Deserialize)]
            struct In {
                cluster: Option<String>,
                services: Vec<String>,
                #[serde(default)]
                include: Vec<String>,
            }
            let i: In = input(v)?;
            if i.services.is_empty() || i.services.len() > 10 {
                return Err(Error::InvalidParameter(
                    "services must list 1 to 10 services.".into(),
                ));
            }
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let (found, failures) = ecs.service_describe(&cluster, &i.services)?;
            let with_tags = i.include.iter().any(|x| x == "TAGS");
            let out: Vec<Value> = found
                .iter()
                .map(|s| service_out(state, s, with_tags))
                .collect();
            Ok(json!({"services": out, "failures": failures_out(&failures)}))
        }
        "ListServices" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                launch_type: Option<String>,
                scheduling_strategy: Option<String>,
                #[serde(flatten)]
                paging: Paging,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let page = ecs.service_list(
                &cluster,
                i.launch_type.as_deref(),
                i.scheduling_strategy.as_deref(),
                &i.paging.request(),
            )?;
            Ok(page_out("serviceArns", page, Value::String))
        }
        "ListServicesByNamespace" => {
            // No service discovery (Cloud Map) yet: no service is in any namespace.
            Ok(json!({"serviceArns": []}))
        }
        "SubmitTaskStateChange" | "SubmitContainerStateChange" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: Option<String>,
                task: Option<String>,
                status: Option<String>,
                reason: Option<String>,
                #[serde(default)]
                containers: Vec<WireContainerChange>,
                pull_started_at: Option<f64>,
                pull_stopped_at: Option<f64>,
                execution_stopped_at: Option<f64>,
                // SubmitContainerStateChange
                container_name: Option<String>,
                exit_code: Option<i64>,
                runtime_id: Option<String>,
                network_bindings: Option<Vec<Value>>,
            }
            let i: In = input(v)?;
            let cluster = ecs.cluster_name(i.cluster.as_deref())?;
            let task = i
                .task
                .ok_or_else(|| Error::InvalidParameter("task is required.".into()))?;
            let report = if operation == "SubmitTaskStateChange" {
                let status = match i.status.as_deref() {
                    Some(s) => Some(TaskStatus::parse(s).ok_or_else(|| {
                        Error::InvalidParameter(format!("Invalid task status '{s}'."))
                    })?),
                    None => None,
                };
                TaskReport {
                    status,
                    reason: i.reason,
                    containers: i
                        .containers
                        .into_iter()
                        .map(|c| ContainerReport {
                            name: c.container_name.unwrap_or_default(),
                            status: c.status,
                            exit_code: c.exit_code,
                            reason: c.reason,
                            runtime_id: c.runtime_id,
                            network_bindings: c.network_bindings,
                            health_status: c.health_status,
                            private_ipv4_address: c.private_ipv4_address,
                        })
                        .collect(),
                    pull_started_at: timestamp_in(i.pull_started_at),
                    pull_stopped_at: timestamp_in(i.pull_stopped_at),
                    execution_stopped_at: timestamp_in(i.execution_stopped_at),
                }
            } else {
                TaskReport {
                    containers: vec![ContainerReport {
                        name: i.container_name.ok_or_else(|| {
                            Error::InvalidParameter("containerName is required.".into())
                        })?,
                        status: i.status,
                        exit_code: i.exit_code,
                        reason: i.reason,
                        runtime_id: i.runtime_id,
                        network_bindings: i.network_bindings,
                        health_status: None,
                        private_ipv4_address: None,
                    }],
                    ..Default::default()
                }
            };
            ecs.task_report(&cluster, &task, report).await?;
            Ok(json!({"acknowledgment": "ACK"}))
        }
        other => Err(Error::NotImplemented(format!(
            "Berth does not implement ecs:{other} yet."
        ))),
    }
}
