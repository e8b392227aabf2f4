//! ELBv2 target groups: wire input → domain command, domain view → wire output.

use super::*;

/// `CreateTargetGroup`.
pub(super) async fn create_target_group(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
    let health = health_in(&v)?;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        name: String,
        protocol: Option<String>,
        protocol_version: Option<String>,
        port: Option<i64>,
        vpc_id: Option<String>,
        target_type: Option<String>,
        #[serde(default)]
        tags: Vec<WireTag>,
    }
    let i: In = input(v)?;
    let tg = elb
        .tg_create(CreateTargetGroup {
            name: i.name,
            protocol: i.protocol,
            protocol_version: i.protocol_version,
            port: i.port,
            vpc_id: i.vpc_id,
            target_type: i.target_type,
            health,
            tags: tags(i.tags),
        })
        .await?;
    Ok(json!({"TargetGroups": [target_group_out(state, &tg, &[])]}))
}

/// `DescribeTargetGroups`.
pub(super) async fn describe_target_groups(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        load_balancer_arn: Option<String>,
        #[serde(default)]
        target_group_arns: Vec<String>,
        #[serde(default)]
        names: Vec<String>,
        marker: Option<String>,
        page_size: Option<i32>,
    }
    let i: In = input(v)?;
    let p = elb.tg_describe(
        i.load_balancer_arn.as_deref(),
        &i.target_group_arns,
        &i.names,
        &page(i.marker, i.page_size),
    )?;
    let mut out = json!({"TargetGroups": p.items.iter().map(|(tg, users)| target_group_out(state, tg, users)).collect::<Vec<_>>()});
    if let Some(m) = p.next_token {
        out["NextMarker"] = m.into();
    }
    Ok(out)
}

/// `ModifyTargetGroup`.
pub(super) async fn modify_target_group(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
    let tg = elb
        .tg_modify(&string(&v, "TargetGroupArn"), health_in(&v)?)
        .await?;
    let users = elb
        .tg_describe(
            None,
            &[elb.target_group_arn(&tg)],
            &[],
            &PageRequest::default(),
        )?
        .items
        .pop()
        .map(|(_, u)| u)
        .unwrap_or_default();
    Ok(json!({"TargetGroups": [target_group_out(state, &tg, &users)]}))
}

/// `DeleteTargetGroup`.
pub(super) async fn delete_target_group(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    elb.tg_delete(&string(&v, "TargetGroupArn")).await?;
    Ok(json!({}))
}

/// `DescribeTargetGroupAttributes`.
pub(super) async fn describe_target_group_attributes(
    cx: &Cx<'_>,
    v: Value,
) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    Ok(attributes_out(
        &elb.tg_attributes(&string(&v, "TargetGroupArn"))?,
    ))
}

/// `ModifyTargetGroupAttributes`.
pub(super) async fn modify_target_group_attributes(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let attrs = attributes_in(&v)?;
    let all = elb
        .tg_modify_attributes(&string(&v, "TargetGroupArn"), attrs)
        .await?;
    Ok(attributes_out(&all))
}

/// `RegisterTargets` / `DeregisterTargets`.
pub(super) async fn register_targets(cx: &Cx<'_>, op: ElbOp, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        target_group_arn: String,
        targets: Vec<WireTarget>,
    }
    let i: In = input(v)?;
    if op == ElbOp::RegisterTargets {
        let targets = i
            .targets
            .into_iter()
            .map(|t| (t.id, t.port, t.availability_zone))
            .collect();
        elb.targets_register(&i.target_group_arn, targets).await?;
    } else {
        let targets = i.targets.into_iter().map(|t| (t.id, t.port)).collect();
        elb.targets_deregister(&i.target_group_arn, targets).await?;
    }
    Ok(json!({}))
}

/// `DescribeTargetHealth`.
pub(super) async fn describe_target_health(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        target_group_arn: String,
        #[serde(default)]
        targets: Vec<WireTarget>,
    }
    let i: In = input(v)?;
    let named: Vec<(String, Option<i64>)> = i.targets.into_iter().map(|t| (t.id, t.port)).collect();
    let health = elb.targets_health(&i.target_group_arn, &named)?;
    let out: Vec<Value> = health
        .iter()
        .map(|h| {
            let mut target = json!({"Id": h.id, "Port": h.port});
            if let Some(z) = &h.availability_zone {
                target["AvailabilityZone"] = z.clone().into();
            }
            let mut th = json!({"State": h.state});
            if let Some(r) = h.reason {
                th["Reason"] = r.into();
            }
            if let Some(d) = h.description {
                th["Description"] = d.into();
            }
            json!({"Target": target, "HealthCheckPort": h.health_check_port, "TargetHealth": th})
        })
        .collect();
    Ok(json!({"TargetHealthDescriptions": out}))
}
