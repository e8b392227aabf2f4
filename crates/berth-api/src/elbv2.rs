//! Elastic Load Balancing v2 over awsQuery: the router decodes the form into the model's
//! shapes (PascalCase members, lists as arrays) and encodes the returned value as XML.

use crate::ApiState;
use crate::route::Support;
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

pub const SUPPORT: &[(&str, Support)] = &[
    (
        "CreateLoadBalancer",
        Support::Partial(
            "type application; the DNS name is the server's host (listeners bind its ports)",
        ),
    ),
    ("DescribeLoadBalancers", Support::Implemented),
    ("DeleteLoadBalancer", Support::Implemented),
    (
        "DescribeLoadBalancerAttributes",
        Support::Partial("idle_timeout, deletion_protection, routing.http2, cross_zone"),
    ),
    (
        "ModifyLoadBalancerAttributes",
        Support::Partial("idle_timeout, deletion_protection, routing.http2, cross_zone"),
    ),
    (
        "CreateTargetGroup",
        Support::Partial("HTTP; target types instance and ip (private and loopback addresses)"),
    ),
    ("DescribeTargetGroups", Support::Implemented),
    ("ModifyTargetGroup", Support::Implemented),
    ("DeleteTargetGroup", Support::Implemented),
    (
        "DescribeTargetGroupAttributes",
        Support::Partial(
            "deregistration delay, algorithm (round_robin / least_outstanding_requests), lb_cookie stickiness and slow start are applied; app_cookie, weighted_random and target_group_health.* are refused; cross-zone is stored only (one zone)",
        ),
    ),
    (
        "ModifyTargetGroupAttributes",
        Support::Partial(
            "deregistration delay, algorithm (round_robin / least_outstanding_requests), lb_cookie stickiness and slow start are applied; app_cookie, weighted_random and target_group_health.* are refused; cross-zone is stored only (one zone)",
        ),
    ),
    (
        "CreateListener",
        Support::Partial("HTTP; one action: forward (weighted), redirect or fixed-response"),
    ),
    ("DescribeListeners", Support::Implemented),
    (
        "ModifyListener",
        Support::Partial("HTTP; port and default actions"),
    ),
    ("DeleteListener", Support::Implemented),
    (
        "CreateRule",
        Support::Partial(
            "host-header, path-pattern, http-header, http-request-method, query-string, source-ip; one action",
        ),
    ),
    ("DescribeRules", Support::Implemented),
    ("ModifyRule", Support::Implemented),
    ("DeleteRule", Support::Implemented),
    ("SetRulePriorities", Support::Implemented),
    ("RegisterTargets", Support::Implemented),
    ("DeregisterTargets", Support::Implemented),
    ("DescribeTargetHealth", Support::Partial(HEALTH)),
    ("AddTags", Support::Implemented),
    ("RemoveTags", Support::Implemented),
    ("DescribeTags", Support::Implemented),
];

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

fn load_balancer_out(state: &ApiState, lb: &LoadBalancer) -> Value {
    json!({
        "LoadBalancerArn": state.inner.elb.load_balancer_arn(lb),
        "DNSName": lb.dns_name,
        "CanonicalHostedZoneId": "Z00BERTH",
        "CreatedTime": lb.created_at.epoch_seconds(),
        "LoadBalancerName": lb.name,
        "Scheme": lb.scheme,
        "VpcId": "vpc-berth",
        "State": {"Code": "active"},
        "Type": "application",
        "AvailabilityZones": lb.subnets.iter().map(|s| json!({"ZoneName": state.scope().region.as_str(), "SubnetId": s})).collect::<Vec<_>>(),
        "SecurityGroups": lb.security_groups,
        "IpAddressType": lb.ip_address_type,
    })
}

fn target_group_out(state: &ApiState, tg: &TargetGroup, users: &[String]) -> Value {
    let h = &tg.health_check;
    json!({
        "TargetGroupArn": state.inner.elb.target_group_arn(tg),
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

fn listener_out(state: &ApiState, l: &Listener) -> Value {
    let elb = &state.inner.elb;
    json!({
        "ListenerArn": elb.listener_arn(l),
        "LoadBalancerArn": elb.lb_arn(&l.load_balancer, &l.load_balancer_id),
        "Port": l.port,
        "Protocol": l.protocol,
        "DefaultActions": l.default_actions,
    })
}

fn rule_out(state: &ApiState, r: &Rule) -> Value {
    json!({
        "RuleArn": state.inner.elb.rule_arn(r),
        "Priority": r.priority.map_or_else(|| "default".to_string(), |p| p.to_string()),
        "Conditions": r.conditions,
        "Actions": r.actions,
        "IsDefault": r.priority.is_none(),
    })
}

/// Runs one ELBv2 operation (the router checks the support table first).
pub async fn call(state: &ApiState, operation: &str, v: Value) -> Result<Value, Error> {
    let elb = &state.inner.elb;
    match operation {
        "CreateLoadBalancer" => {
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
        "DescribeLoadBalancers" => {
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
        "DeleteLoadBalancer" => {
            let arn = string(&v, "LoadBalancerArn");
            elb.lb_delete(&arn).await?;
            Ok(json!({}))
        }
        "DescribeLoadBalancerAttributes" => Ok(attributes_out(
            &elb.lb_attributes(&string(&v, "LoadBalancerArn"))?,
        )),
        "ModifyLoadBalancerAttributes" => {
            let attrs = attributes_in(&v)?;
            let all = elb
                .lb_modify_attributes(&string(&v, "LoadBalancerArn"), attrs)
                .await?;
            Ok(attributes_out(&all))
        }
        "CreateTargetGroup" => {
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
        "DescribeTargetGroups" => {
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
        "ModifyTargetGroup" => {
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
        "DeleteTargetGroup" => {
            elb.tg_delete(&string(&v, "TargetGroupArn")).await?;
            Ok(json!({}))
        }
        "DescribeTargetGroupAttributes" => Ok(attributes_out(
            &elb.tg_attributes(&string(&v, "TargetGroupArn"))?,
        )),
        "ModifyTargetGroupAttributes" => {
            let attrs = attributes_in(&v)?;
            let all = elb
                .tg_modify_attributes(&string(&v, "TargetGroupArn"), attrs)
                .await?;
            Ok(attributes_out(&all))
        }
        "RegisterTargets" | "DeregisterTargets" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                target_group_arn: String,
                targets: Vec<WireTarget>,
            }
            let i: In = input(v)?;
            if operation == "RegisterTargets" {
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
        "DescribeTargetHealth" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                target_group_arn: String,
                #[serde(default)]
                targets: Vec<WireTarget>,
            }
            let i: In = input(v)?;
            let named: Vec<(String, Option<i64>)> =
                i.targets.into_iter().map(|t| (t.id, t.port)).collect();
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
        "CreateListener" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                load_balancer_arn: String,
                protocol: Option<String>,
                port: Option<i64>,
                #[serde(default)]
                default_actions: Vec<Value>,
                #[serde(default)]
                tags: Vec<WireTag>,
            }
            let i: In = input(v)?;
            let l = elb
                .listener_create(CreateListener {
                    load_balancer: i.load_balancer_arn,
                    protocol: i.protocol,
                    port: i.port,
                    default_actions: i.default_actions,
                    tags: tags(i.tags),
                })
                .await?;
            Ok(json!({"Listeners": [listener_out(state, &l)]}))
        }
        "DescribeListeners" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                load_balancer_arn: Option<String>,
                #[serde(default)]
                listener_arns: Vec<String>,
            }
            let i: In = input(v)?;
            let ls = elb.listener_describe(i.load_balancer_arn, i.listener_arns)?;
            Ok(json!({"Listeners": ls.iter().map(|l| listener_out(state, l)).collect::<Vec<_>>()}))
        }
        "ModifyListener" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                listener_arn: String,
                port: Option<i64>,
                protocol: Option<String>,
                default_actions: Option<Vec<Value>>,
            }
            let i: In = input(v)?;
            let l = elb
                .listener_modify(&i.listener_arn, i.port, i.protocol, i.default_actions)
                .await?;
            Ok(json!({"Listeners": [listener_out(state, &l)]}))
        }
        "DeleteListener" => {
            elb.listener_delete(&string(&v, "ListenerArn")).await?;
            Ok(json!({}))
        }
        "CreateRule" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                listener_arn: String,
                priority: i64,
                conditions: Vec<Value>,
                actions: Vec<Value>,
                #[serde(default)]
                tags: Vec<WireTag>,
            }
            let i: In = input(v)?;
            let r = elb
                .rule_create(CreateRule {
                    listener: i.listener_arn,
                    priority: i.priority,
                    conditions: i.conditions,
                    actions: i.actions,
                    tags: tags(i.tags),
                })
                .await?;
            Ok(json!({"Rules": [rule_out(state, &r)]}))
        }
        "DescribeRules" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                listener_arn: Option<String>,
                #[serde(default)]
                rule_arns: Vec<String>,
            }
            let i: In = input(v)?;
            let rules = elb.rule_describe(i.listener_arn, i.rule_arns)?;
            Ok(json!({"Rules": rules.iter().map(|r| rule_out(state, r)).collect::<Vec<_>>()}))
        }
        "ModifyRule" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                rule_arn: String,
                conditions: Option<Vec<Value>>,
                actions: Option<Vec<Value>>,
            }
            let i: In = input(v)?;
            let r = elb
                .rule_modify(&i.rule_arn, i.conditions, i.actions)
                .await?;
            Ok(json!({"Rules": [rule_out(state, &r)]}))
        }
        "DeleteRule" => {
            elb.rule_delete(&string(&v, "RuleArn")).await?;
            Ok(json!({}))
        }
        "SetRulePriorities" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct Pair {
                rule_arn: String,
                priority: i64,
            }
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                rule_priorities: Vec<Pair>,
            }
            let i: In = input(v)?;
            let rules = elb
                .rule_set_priorities(
                    i.rule_priorities
                        .into_iter()
                        .map(|p| (p.rule_arn, p.priority))
                        .collect(),
                )
                .await?;
            Ok(json!({"Rules": rules.iter().map(|r| rule_out(state, r)).collect::<Vec<_>>()}))
        }
        "AddTags" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                resource_arns: Vec<String>,
                tags: Vec<WireTag>,
            }
            let i: In = input(v)?;
            elb.tags_add(i.resource_arns, tags(i.tags)).await?;
            Ok(json!({}))
        }
        "RemoveTags" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                resource_arns: Vec<String>,
                tag_keys: Vec<String>,
            }
            let i: In = input(v)?;
            elb.tags_remove(i.resource_arns, i.tag_keys).await?;
            Ok(json!({}))
        }
        "DescribeTags" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "PascalCase")]
            struct In {
                resource_arns: Vec<String>,
            }
            let i: In = input(v)?;
            let described = elb.tags_describe(i.resource_arns)?;
            Ok(
                json!({"TagDescriptions": described.iter().map(|(arn, t)| json!({"ResourceArn": arn, "Tags": tags_out(t)})).collect::<Vec<_>>()}),
            )
        }
        other => Err(Error::NotImplemented(format!(
            "Berth does not implement elasticloadbalancing:{other} yet."
        ))),
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
