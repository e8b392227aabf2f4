//! ELBv2 load balancers: wire input → domain command, domain view → wire output.

use super::*;

/// `CreateLoadBalancer`.
pub(super) async fn create_load_balancer(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        name: String,
        scheme: Option<String>,
        r#type: Option<String>,
        ip_address_type: Option<String>,
        #[serde(default)]
        subnets: Vec<String>,
        #[serde(default)]
        security_groups: Vec<String>,
        #[serde(default)]
        tags: Vec<WireTag>,
    }
    let i: In = input(v)?;
    let lb = elb
        .lb_create(CreateLoadBalancer {
            name: i.name,
            scheme: i.scheme,
            kind: i.r#type,
            ip_address_type: i.ip_address_type,
            subnets: i.subnets,
            security_groups: i.security_groups,
            tags: tags(i.tags),
        })
        .await?;
    Ok(json!({"LoadBalancers": [load_balancer_out(state, &lb)]}))
}

/// `DescribeLoadBalancers`.
pub(super) async fn describe_load_balancers(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        #[serde(default)]
        load_balancer_arns: Vec<String>,
        #[serde(default)]
        names: Vec<String>,
        marker: Option<String>,
        page_size: Option<i32>,
    }
    let i: In = input(v)?;
    let p = elb.lb_describe(
        &i.load_balancer_arns,
        &i.names,
        &page(i.marker, i.page_size),
    )?;
    let mut out = json!({"LoadBalancers": p.items.iter().map(|lb| load_balancer_out(state, lb)).collect::<Vec<_>>()});
    if let Some(m) = p.next_token {
        out["NextMarker"] = m.into();
    }
    Ok(out)
}

/// `DeleteLoadBalancer`.
pub(super) async fn delete_load_balancer(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let arn = string(&v, "LoadBalancerArn");
    elb.lb_delete(&arn).await?;
    Ok(json!({}))
}

/// `DescribeLoadBalancerAttributes`.
pub(super) async fn describe_load_balancer_attributes(
    cx: &Cx<'_>,
    v: Value,
) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    Ok(attributes_out(
        &elb.lb_attributes(&string(&v, "LoadBalancerArn"))?,
    ))
}

/// `ModifyLoadBalancerAttributes`.
pub(super) async fn modify_load_balancer_attributes(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let attrs = attributes_in(&v)?;
    let all = elb
        .lb_modify_attributes(&string(&v, "LoadBalancerArn"), attrs)
        .await?;
    Ok(attributes_out(&all))
}
