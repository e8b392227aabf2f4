//! ELBv2 listeners: wire input → domain command, domain view → wire output.

use super::*;
use berth_types::shapes::elb::{Action, RuleCondition};

/// `CreateListener`.
pub(super) async fn create_listener(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        load_balancer_arn: String,
        protocol: Option<String>,
        port: Option<i64>,
        #[serde(default)]
        default_actions: Vec<Action>,
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

/// `DescribeListeners`.
pub(super) async fn describe_listeners(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
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

/// `ModifyListener`.
pub(super) async fn modify_listener(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        listener_arn: String,
        port: Option<i64>,
        protocol: Option<String>,
        default_actions: Option<Vec<Action>>,
    }
    let i: In = input(v)?;
    let l = elb
        .listener_modify(&i.listener_arn, i.port, i.protocol, i.default_actions)
        .await?;
    Ok(json!({"Listeners": [listener_out(state, &l)]}))
}

/// `DeleteListener`.
pub(super) async fn delete_listener(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    elb.listener_delete(&string(&v, "ListenerArn")).await?;
    Ok(json!({}))
}

/// `CreateRule`.
pub(super) async fn create_rule(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        listener_arn: String,
        priority: i64,
        conditions: Vec<RuleCondition>,
        actions: Vec<Action>,
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

/// `DescribeRules`.
pub(super) async fn describe_rules(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
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

/// `ModifyRule`.
pub(super) async fn modify_rule(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        rule_arn: String,
        conditions: Option<Vec<RuleCondition>>,
        actions: Option<Vec<Action>>,
    }
    let i: In = input(v)?;
    let r = elb
        .rule_modify(&i.rule_arn, i.conditions, i.actions)
        .await?;
    Ok(json!({"Rules": [rule_out(state, &r)]}))
}

/// `DeleteRule`.
pub(super) async fn delete_rule(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    elb.rule_delete(&string(&v, "RuleArn")).await?;
    Ok(json!({}))
}

/// `SetRulePriorities`.
pub(super) async fn set_rule_priorities(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    let state = &*cx.region;
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
