//! ECS over awsJson 1.1: wire input → domain command, domain view → wire output.
//!
//! Inputs arrive validated against the model with nulls removed; the structs below name only
//! the members each operation reads (AWS member names, via `rename_all = "camelCase"`).

use crate::Regional;
use crate::route::Cx;
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
use berth_types::{Error, Tag, Timestamp};
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

fn cluster_out(state: &Regional, c: &Cluster, parts: ClusterParts) -> Result<Value, Error> {
    let ecs = &state.ecs;
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
        m["configuration"] = json!(conf);
    }
    if let Some(d) = &c.service_connect_defaults {
        m["serviceConnectDefaults"] = json!(d);
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
    state: &Regional,
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
        "containerInstanceArn": state.ecs.instance_arn(i),
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
        v["versionInfo"] = json!(vi);
    }
    if with_tags {
        v["tags"] = tags_out(&i.tags);
    }
    v
}

fn ts(t: Option<Timestamp>) -> Option<f64> {
    t.map(Timestamp::epoch_seconds)
}

/// One container of a task in the API's shape.
fn container_out(state: &Regional, t: &Task, c: &berth_types::ecs::TaskContainer) -> Value {
    let ecs = &state.ecs;
    let mut v = json!({
        "containerArn": ecs.container_arn(t, c),
        "taskArn": ecs.task_arn(t),
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
}

/// awsvpc: the task's own address, shown as AWS shows an ENI (on the task and its containers).
fn eni_out(v: &mut Value, t: &Task, ip: &str) {
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

fn task_out(state: &Regional, t: &Task, with_tags: bool) -> Value {
    let ecs = &state.ecs;
    let task_arn = ecs.task_arn(t);
    let containers: Vec<Value> = t
        .containers
        .iter()
        .map(|c| container_out(state, t, c))
        .collect();
    let mut v = json!({
        "taskArn": task_arn,
        "clusterArn": ecs.cluster_arn(&t.cluster),
        "taskDefinitionArn": ecs.task_definition_arn(&t.family, t.revision),
        "overrides": t.overrides.as_ref().map_or_else(|| json!({"containerOverrides": []}), |o| json!(o)),
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
        eni_out(&mut v, t, ip);
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

fn service_out(state: &Regional, s: &Service, with_tags: bool) -> Value {
    let ecs = &state.ecs;
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
                v["networkConfiguration"] = json!(n);
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
        v["networkConfiguration"] = json!(n);
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
    network_bindings: Option<Vec<berth_types::shapes::ecs::NetworkBinding>>,
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

fn task_definition_out(state: &Regional, td: &TaskDefinition) -> Value {
    let Ok(Value::Object(mut m)) = serde_json::to_value(&td.spec) else {
        unreachable!("a task definition's spec is a JSON object");
    };
    let ecs = &state.ecs;
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

crate::operation::operations! {
    /// The ECS operations Berth implements (awsJson 1.1).
    pub enum EcsOp ("ecs") {
        CreateCluster => Write, Cluster("clusterName"), Implemented;
        DescribeClusters => Read, Clusters("clusters"), Implemented;
        ListClusters => List, Any, Implemented;
        DeleteCluster => Write, Cluster("cluster"), Implemented;
        UpdateCluster => Write, Cluster("cluster"), Implemented;
        UpdateClusterSettings => Write, Cluster("cluster"), Implemented;
        RegisterTaskDefinition => Write, Any, Implemented;
        DescribeTaskDefinition => Read, Any, Implemented;
        ListTaskDefinitions => List, Any, Implemented;
        ListTaskDefinitionFamilies => List, Any, Implemented;
        DeregisterTaskDefinition => Write, Any, Implemented;
        DeleteTaskDefinitions => Write, Any,
            Partial("revisions stay DELETE_IN_PROGRESS (describable); never purged yet");
        TagResource => Tagging, Arns("resourceArn"),
            Partial("clusters, task definitions and services (not yet tasks or container instances)");
        UntagResource => Tagging, Arns("resourceArn"),
            Partial("clusters, task definitions and services (not yet tasks or container instances)");
        ListTagsForResource => Read, Arns("resourceArn"),
            Partial("clusters, task definitions and services (not yet tasks or container instances)");
        ListAccountSettings => Read, Any, Implemented;
        PutAccountSetting => Write, Any, Implemented;
        PutAccountSettingDefault => Write, Any, Implemented;
        RegisterContainerInstance => Write, Cluster("cluster"), Implemented;
        DescribeContainerInstances => Read, ContainerInstances("containerInstances"), Implemented;
        ListContainerInstances => List, Cluster("cluster"), Implemented;
        DeregisterContainerInstance => Write, Cluster("cluster"), Implemented;
        UpdateContainerInstancesState => Write, ContainerInstances("containerInstances"), Implemented;
        PutAttributes => Write, Cluster("cluster"), Implemented;
        DeleteAttributes => Write, Cluster("cluster"), Implemented;
        ListAttributes => List, Cluster("cluster"), Implemented;
        RunTask => Write, TaskDefinition("taskDefinition"),
            Partial("EC2/EXTERNAL/FARGATE with strategies and constraints; no capacity providers; repositoryCredentials needs Secrets Manager, which Berth does not provide");
        StartTask => Write, TaskDefinition("taskDefinition"),
            Partial("as RunTask, on the given instances");
        StopTask => Write, Tasks("task"),
            Partial("sets desiredStatus STOPPED; the agent stops the containers");
        DescribeTasks => Read, Tasks("tasks"), Implemented;
        ListTasks => List, ContainerInstances("containerInstance"), Implemented;
        SubmitTaskStateChange => Write, Cluster("cluster"),
            Partial("task status, container states and timestamps; no attachments or managed agents");
        SubmitContainerStateChange => Write, Cluster("cluster"), Implemented;
        CreateService => Write, Services("serviceName"),
            Partial("REPLICA and DAEMON with the ECS deployment controller and launchType; loadBalancers register tasks with ELBv2 target groups; no capacity providers, service discovery or Service Connect");
        UpdateService => Write, Services("service"),
            Partial("task definition, desired count, forceNewDeployment, deployment configuration, placement, load balancers, network configuration");
        DeleteService => Write, Services("service"), Implemented;
        DescribeServices => Read, Services("services"), Implemented;
        ListServices => List, Cluster("cluster"), Implemented;
        ListServicesByNamespace => List, Any,
            Partial("no service discovery yet: always an empty list");
    }
}

mod clusters;
mod instances;
mod services;
mod settings;
mod tags;
mod task_definitions;
mod tasks;

/// Runs one ECS operation.
pub async fn dispatch(cx: &Cx<'_>, op: EcsOp, v: Value) -> Result<Value, Error> {
    match op {
        EcsOp::CreateCluster => Box::pin(clusters::create_cluster(cx, v)).await,
        EcsOp::DescribeClusters => Box::pin(clusters::describe_clusters(cx, v)).await,
        EcsOp::ListClusters => Box::pin(clusters::list_clusters(cx, v)).await,
        EcsOp::DeleteCluster => Box::pin(clusters::delete_cluster(cx, v)).await,
        EcsOp::UpdateCluster => Box::pin(clusters::update_cluster(cx, v)).await,
        EcsOp::UpdateClusterSettings => Box::pin(clusters::update_cluster(cx, v)).await,
        EcsOp::RegisterTaskDefinition => {
            Box::pin(task_definitions::register_task_definition(cx, v)).await
        }
        EcsOp::DescribeTaskDefinition => {
            Box::pin(task_definitions::describe_task_definition(cx, v)).await
        }
        EcsOp::ListTaskDefinitions => {
            Box::pin(task_definitions::list_task_definitions(cx, v)).await
        }
        EcsOp::ListTaskDefinitionFamilies => {
            Box::pin(task_definitions::list_task_definition_families(cx, v)).await
        }
        EcsOp::DeregisterTaskDefinition => {
            Box::pin(task_definitions::deregister_task_definition(cx, v)).await
        }
        EcsOp::DeleteTaskDefinitions => {
            Box::pin(task_definitions::delete_task_definitions(cx, v)).await
        }
        EcsOp::TagResource => Box::pin(tags::tag_resource(cx, v)).await,
        EcsOp::UntagResource => Box::pin(tags::untag_resource(cx, v)).await,
        EcsOp::ListTagsForResource => Box::pin(tags::list_tags_for_resource(cx, v)).await,
        EcsOp::ListAccountSettings => Box::pin(settings::list_account_settings(cx, v)).await,
        EcsOp::PutAccountSetting => Box::pin(settings::put_account_setting(cx, op, v)).await,
        EcsOp::PutAccountSettingDefault => Box::pin(settings::put_account_setting(cx, op, v)).await,
        EcsOp::RegisterContainerInstance => {
            Box::pin(instances::register_container_instance(cx, v)).await
        }
        EcsOp::DescribeContainerInstances => {
            Box::pin(instances::describe_container_instances(cx, v)).await
        }
        EcsOp::ListContainerInstances => Box::pin(instances::list_container_instances(cx, v)).await,
        EcsOp::DeregisterContainerInstance => {
            Box::pin(instances::deregister_container_instance(cx, v)).await
        }
        EcsOp::UpdateContainerInstancesState => {
            Box::pin(instances::update_container_instances_state(cx, v)).await
        }
        EcsOp::PutAttributes => Box::pin(instances::put_attributes(cx, op, v)).await,
        EcsOp::DeleteAttributes => Box::pin(instances::put_attributes(cx, op, v)).await,
        EcsOp::ListAttributes => Box::pin(instances::list_attributes(cx, v)).await,
        EcsOp::RunTask => Box::pin(tasks::run_task(cx, op, v)).await,
        EcsOp::StartTask => Box::pin(tasks::run_task(cx, op, v)).await,
        EcsOp::DescribeTasks => Box::pin(tasks::describe_tasks(cx, v)).await,
        EcsOp::ListTasks => Box::pin(tasks::list_tasks(cx, v)).await,
        EcsOp::StopTask => Box::pin(tasks::stop_task(cx, v)).await,
        EcsOp::CreateService => Box::pin(services::create_service(cx, v)).await,
        EcsOp::UpdateService => Box::pin(services::update_service(cx, v)).await,
        EcsOp::DeleteService => Box::pin(services::delete_service(cx, v)).await,
        EcsOp::DescribeServices => Box::pin(services::describe_services(cx, v)).await,
        EcsOp::ListServices => Box::pin(services::list_services(cx, v)).await,
        EcsOp::ListServicesByNamespace => {
            Box::pin(services::list_services_by_namespace(cx, v)).await
        }
        EcsOp::SubmitTaskStateChange => Box::pin(tasks::submit_task_state_change(cx, op, v)).await,
        EcsOp::SubmitContainerStateChange => {
            Box::pin(tasks::submit_task_state_change(cx, op, v)).await
        }
    }
}
