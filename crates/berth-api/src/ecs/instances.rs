//! ECS instances: wire input → domain command, domain view → wire output.

use super::*;
use berth_types::shapes::ecs::VersionInfo;

/// `RegisterContainerInstance`.
pub(super) async fn register_container_instance(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        cluster: Option<String>,
        instance_identity_document: Option<String>,
        container_instance_arn: Option<String>,
        #[serde(default)]
        total_resources: Vec<WireResource>,
        version_info: Option<VersionInfo>,
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

/// `DescribeContainerInstances`.
pub(super) async fn describe_container_instances(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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

/// `ListContainerInstances`.
pub(super) async fn list_container_instances(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
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
    let page = ecs.instance_list(&cluster, i.filter.as_deref(), status, &i.paging.request())?;
    Ok(page_out("containerInstanceArns", page, Value::String))
}

/// `DeregisterContainerInstance`.
pub(super) async fn deregister_container_instance(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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

/// `UpdateContainerInstancesState`.
pub(super) async fn update_container_instances_state(
    cx: &Cx<'_>,
    v: Value,
) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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

/// `PutAttributes` / `DeleteAttributes`.
pub(super) async fn put_attributes(cx: &Cx<'_>, op: EcsOp, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
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
    let done = if op == EcsOp::PutAttributes {
        ecs.attributes_put(&cluster, attrs).await?
    } else {
        ecs.attributes_delete(&cluster, attrs).await?
    };
    Ok(json!({"attributes": done.iter().map(attribute_out).collect::<Vec<_>>()}))
}

/// `ListAttributes`.
pub(super) async fn list_attributes(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
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
