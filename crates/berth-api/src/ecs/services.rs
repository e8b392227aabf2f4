//! ECS services: wire input → domain command, domain view → wire output.

use super::*;
use berth_types::shapes::ecs::{
    LoadBalancer, NetworkConfiguration, PlacementConstraint, PlacementStrategy,
};

/// `CreateService`.
pub(super) async fn create_service(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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
        placement_strategy: Vec<PlacementStrategy>,
        #[serde(default)]
        placement_constraints: Vec<PlacementConstraint>,
        deployment_configuration: Option<WireDeploymentConfiguration>,
        deployment_controller: Option<Value>,
        health_check_grace_period_seconds: Option<i64>,
        #[serde(default)]
        load_balancers: Vec<LoadBalancer>,
        network_configuration: Option<NetworkConfiguration>,
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

/// `UpdateService`.
pub(super) async fn update_service(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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
        placement_strategy: Option<Vec<PlacementStrategy>>,
        placement_constraints: Option<Vec<PlacementConstraint>>,
        health_check_grace_period_seconds: Option<i64>,
        load_balancers: Option<Vec<LoadBalancer>>,
        network_configuration: Option<NetworkConfiguration>,
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

/// `DeleteService`.
pub(super) async fn delete_service(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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

/// `DescribeServices`.
pub(super) async fn describe_services(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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

/// `ListServices`.
pub(super) async fn list_services(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
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

/// `ListServicesByNamespace`.
pub(super) async fn list_services_by_namespace(_: &Cx<'_>, _: Value) -> Result<Value, Error> {
    // No service discovery (Cloud Map) yet: no service is in any namespace.
    Ok(json!({"serviceArns": []}))
}
