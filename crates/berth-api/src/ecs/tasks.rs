//! ECS tasks: wire input → domain command, domain view → wire output.

use super::*;
use berth_types::shapes::ecs::{
    NetworkBinding, PlacementConstraint, PlacementStrategy, TaskOverride,
};

/// `RunTask` / `StartTask`.
pub(super) async fn run_task(cx: &Cx<'_>, op: EcsOp, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        cluster: Option<String>,
        task_definition: String,
        count: Option<i64>,
        launch_type: Option<String>,
        group: Option<String>,
        started_by: Option<String>,
        overrides: Option<TaskOverride>,
        #[serde(default)]
        placement_strategy: Vec<PlacementStrategy>,
        #[serde(default)]
        placement_constraints: Vec<PlacementConstraint>,
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
    let start = op == EcsOp::StartTask;
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

/// `DescribeTasks`.
pub(super) async fn describe_tasks(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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

/// `ListTasks`.
pub(super) async fn list_tasks(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
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

/// `StopTask`.
pub(super) async fn stop_task(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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

/// `SubmitTaskStateChange` / `SubmitContainerStateChange`.
pub(super) async fn submit_task_state_change(
    cx: &Cx<'_>,
    op: EcsOp,
    v: Value,
) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
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
        network_bindings: Option<Vec<NetworkBinding>>,
    }
    let i: In = input(v)?;
    let cluster = ecs.cluster_name(i.cluster.as_deref())?;
    let task = i
        .task
        .ok_or_else(|| Error::InvalidParameter("task is required.".into()))?;
    let report = if op == EcsOp::SubmitTaskStateChange {
        let status =
            match i.status.as_deref() {
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
                name: i
                    .container_name
                    .ok_or_else(|| Error::InvalidParameter("containerName is required.".into()))?,
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
