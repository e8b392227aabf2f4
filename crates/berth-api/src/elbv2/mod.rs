//! Elastic Load Balancing v2 over awsQuery: the router decodes the form into the model's
//! shapes (PascalCase members, lists as arrays) and encodes the returned value as XML.

use crate::Regional;
use crate::route::Cx;
use berth_control::elb::{
    CreateListener, CreateLoadBalancer, CreateRule, CreateTargetGroup, ModifyTargetGroup,
};
use berth_control::paging::PageRequest;
use berth_types::elb::{Listener, LoadBalancer, Rule, TargetGroup};
use berth_types::{Error, Tag};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const HEALTH: &str = "initial, healthy, unhealthy, draining and unused with AWS's reason codes, from the data plane's checks; never unhealthy.draining or unavailable";

crate::operation::operations! {
    /// The ELBv2 operations Berth implements (awsQuery).
    pub enum ElbOp ("elasticloadbalancing") {
        CreateLoadBalancer => Write, Any,
            Partial("type application; the DNS name is the server's host (listeners bind its ports)");
        DescribeLoadBalancers => Read, Any, Implemented;
        DeleteLoadBalancer => Write, Arns("LoadBalancerArn"), Implemented;
        DescribeLoadBalancerAttributes => Read, Any,
            Partial("idle_timeout, deletion_protection, routing.http2, cross_zone");
        ModifyLoadBalancerAttributes => Write, Arns("LoadBalancerArn"),
            Partial("idle_timeout, deletion_protection, routing.http2, cross_zone");
        CreateTargetGroup => Write, Any,
            Partial("HTTP; target types instance and ip (private and loopback addresses)");
        DescribeTargetGroups => Read, Any, Implemented;
        ModifyTargetGroup => Write, Arns("TargetGroupArn"), Implemented;
        DeleteTargetGroup => Write, Arns("TargetGroupArn"), Implemented;
        DescribeTargetGroupAttributes => Read, Any, Partial(TARGET_GROUP_ATTRIBUTES);
        ModifyTargetGroupAttributes => Write, Arns("TargetGroupArn"), Partial(TARGET_GROUP_ATTRIBUTES);
        CreateListener => Write, Arns("LoadBalancerArn"),
            Partial("HTTP; one action: forward (weighted), redirect or fixed-response");
        DescribeListeners => Read, Any, Implemented;
        ModifyListener => Write, Arns("ListenerArn"), Partial("HTTP; port and default actions");
        DeleteListener => Write, Arns("ListenerArn"), Implemented;
        CreateRule => Write, Arns("ListenerArn"),
            Partial("host-header, path-pattern, http-header, http-request-method, query-string, source-ip; one action");
        DescribeRules => Read, Any, Implemented;
        ModifyRule => Write, Arns("RuleArn"), Implemented;
        DeleteRule => Write, Arns("RuleArn"), Implemented;
        SetRulePriorities => Write, Any, Implemented;
        RegisterTargets => Write, Arns("TargetGroupArn"), Implemented;
        DeregisterTargets => Write, Arns("TargetGroupArn"), Implemented;
        DescribeTargetHealth => Read, Any, Partial(HEALTH);
        AddTags => Tagging, Arns("ResourceArns"), Implemented;
        RemoveTags => Tagging, Arns("ResourceArns"), Implemented;
        DescribeTags => Read, Any, Implemented;
    }
}

/// What the target group attribute operations apply.
const TARGET_GROUP_ATTRIBUTES: &str = "deregistration delay, algorithm (round_robin / least_outstanding_requests), lb_cookie stickiness and slow start are applied; app_cookie, weighted_random and target_group_health.* are refused; cross-zone is stored only (one zone)";

fn input<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::InvalidParameter(e.to_string()))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireTag {
    key: String,
    value: Option<String>,
}

fn tags(wire: Vec<WireTag>) -> Vec<Tag> {
    wire.into_iter()
        .map(|t| Tag {
            key: t.key,
            value: t.value.unwrap_or_default(),
        })
        .collect()
}

fn tags_out(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect(),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireAttribute {
    key: String,
    value: Option<String>,
}

fn attributes_out(a: &BTreeMap<String, String>) -> Value {
    json!({"Attributes": a.iter().map(|(k, v)| json!({"Key": k, "Value": v})).collect::<Vec<_>>()})
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WireTarget {
    id: String,
    port: Option<i64>,
    availability_zone: Option<String>,
}

fn page(marker: Option<String>, size: Option<i32>) -> PageRequest {
    PageRequest {
        next_token: marker,
        max_results: size,
    }
}

fn load_balancer_out(state: &Regional, lb: &LoadBalancer) -> Value {
    json!({
        "LoadBalancerArn": state.elb.load_balancer_arn(lb),
        "DNSName": lb.dns_name,
        "CanonicalHostedZoneId": "Z00BERTH",
        "CreatedTime": lb.created_at.epoch_seconds(),
        "LoadBalancerName": lb.name,
        "Scheme": lb.scheme,
        "VpcId": "vpc-berth",
        "State": {"Code": "active"},
        "Type": "application",
        "AvailabilityZones": lb.subnets.iter().map(|s| json!({"ZoneName": state.scope.region.as_str(), "SubnetId": s})).collect::<Vec<_>>(),
        "SecurityGroups": lb.security_groups,
        "IpAddressType": lb.ip_address_type,
    })
}

fn target_group_out(state: &Regional, tg: &TargetGroup, users: &[String]) -> Value {
    let h = &tg.health_check;
    json!({
        "TargetGroupArn": state.elb.target_group_arn(tg),
        "TargetGroupName": tg.name,
        "Protocol": tg.protocol,
        "Port": tg.port,
        "VpcId": tg.vpc_id.clone().unwrap_or_else(|| "vpc-berth".into()),
        "HealthCheckProtocol": h.protocol,
        "HealthCheckPort": h.port,
        "HealthCheckEnabled": true,
        "HealthCheckIntervalSeconds": h.interval_seconds,
        "HealthCheckTimeoutSeconds": h.timeout_seconds,
        "HealthyThresholdCount": h.healthy_threshold,
        "UnhealthyThresholdCount": h.unhealthy_threshold,
        "HealthCheckPath": h.path,
        "Matcher": {"HttpCode": h.matcher},
        "LoadBalancerArns": users,
        "TargetType": tg.target_type,
        "ProtocolVersion": tg.protocol_version,
        "IpAddressType": "ipv4",
    })
}

fn listener_out(state: &Regional, l: &Listener) -> Value {
    let elb = &state.elb;
    json!({
        "ListenerArn": elb.listener_arn(l),
        "LoadBalancerArn": elb.lb_arn(&l.load_balancer, &l.load_balancer_id),
        "Port": l.port,
        "Protocol": l.protocol,
        "DefaultActions": l.default_actions,
    })
}

fn rule_out(state: &Regional, r: &Rule) -> Value {
    json!({
        "RuleArn": state.elb.rule_arn(r),
        "Priority": r.priority.map_or_else(|| "default".to_string(), |p| p.to_string()),
        "Conditions": r.conditions,
        "Actions": r.actions,
        "IsDefault": r.priority.is_none(),
    })
}

mod listeners;
mod load_balancers;
mod tags;
mod target_groups;

/// Runs one ELBv2 operation.
pub async fn dispatch(cx: &Cx<'_>, op: ElbOp, v: Value) -> Result<Value, Error> {
    match op {
        ElbOp::CreateLoadBalancer => Box::pin(load_balancers::create_load_balancer(cx, v)).await,
        ElbOp::DescribeLoadBalancers => {
            Box::pin(load_balancers::describe_load_balancers(cx, v)).await
        }
        ElbOp::DeleteLoadBalancer => Box::pin(load_balancers::delete_load_balancer(cx, v)).await,
        ElbOp::DescribeLoadBalancerAttributes => {
            Box::pin(load_balancers::describe_load_balancer_attributes(cx, v)).await
        }
        ElbOp::ModifyLoadBalancerAttributes => {
            Box::pin(load_balancers::modify_load_balancer_attributes(cx, v)).await
        }
        ElbOp::CreateTargetGroup => Box::pin(target_groups::create_target_group(cx, v)).await,
        ElbOp::DescribeTargetGroups => Box::pin(target_groups::describe_target_groups(cx, v)).await,
        ElbOp::ModifyTargetGroup => Box::pin(target_groups::modify_target_group(cx, v)).await,
        ElbOp::DeleteTargetGroup => Box::pin(target_groups::delete_target_group(cx, v)).await,
        ElbOp::DescribeTargetGroupAttributes => {
            Box::pin(target_groups::describe_target_group_attributes(cx, v)).await
        }
        ElbOp::ModifyTargetGroupAttributes => {
            Box::pin(target_groups::modify_target_group_attributes(cx, v)).await
        }
        ElbOp::RegisterTargets => Box::pin(target_groups::register_targets(cx, op, v)).await,
        ElbOp::DeregisterTargets => Box::pin(target_groups::register_targets(cx, op, v)).await,
        ElbOp::DescribeTargetHealth => Box::pin(target_groups::describe_target_health(cx, v)).await,
        ElbOp::CreateListener => Box::pin(listeners::create_listener(cx, v)).await,
        ElbOp::DescribeListeners => Box::pin(listeners::describe_listeners(cx, v)).await,
        ElbOp::ModifyListener => Box::pin(listeners::modify_listener(cx, v)).await,
        ElbOp::DeleteListener => Box::pin(listeners::delete_listener(cx, v)).await,
        ElbOp::CreateRule => Box::pin(listeners::create_rule(cx, v)).await,
        ElbOp::DescribeRules => Box::pin(listeners::describe_rules(cx, v)).await,
        ElbOp::ModifyRule => Box::pin(listeners::modify_rule(cx, v)).await,
        ElbOp::DeleteRule => Box::pin(listeners::delete_rule(cx, v)).await,
        ElbOp::SetRulePriorities => Box::pin(listeners::set_rule_priorities(cx, v)).await,
        ElbOp::AddTags => Box::pin(tags::add_tags(cx, v)).await,
        ElbOp::RemoveTags => Box::pin(tags::remove_tags(cx, v)).await,
        ElbOp::DescribeTags => Box::pin(tags::describe_tags(cx, v)).await,
    }
}

/// A required string member (the model validator has checked it is there).
fn string(v: &Value, member: &str) -> String {
    v.get(member)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn attributes_in(v: &Value) -> Result<Vec<(String, String)>, Error> {
    let list: Vec<WireAttribute> = input(v.get("Attributes").cloned().unwrap_or(json!([])))?;
    Ok(list
        .into_iter()
        .map(|a| (a.key, a.value.unwrap_or_default()))
        .collect())
}

fn health_in(v: &Value) -> Result<ModifyTargetGroup, Error> {
    let int = |k: &str| v.get(k).and_then(Value::as_i64);
    let text = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    Ok(ModifyTargetGroup {
        enabled: v.get("HealthCheckEnabled").and_then(Value::as_bool),
        protocol: text("HealthCheckProtocol"),
        port: text("HealthCheckPort"),
        path: text("HealthCheckPath"),
        interval_seconds: int("HealthCheckIntervalSeconds"),
        timeout_seconds: int("HealthCheckTimeoutSeconds"),
        healthy_threshold: int("HealthyThresholdCount"),
        unhealthy_threshold: int("UnhealthyThresholdCount"),
        matcher: v
            .pointer("/Matcher/HttpCode")
            .and_then(Value::as_str)
            .map(str::to_string),
    })
}
