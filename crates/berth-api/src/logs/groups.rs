//! Log groups: Create/Delete/DescribeLogGroups, Put/DeleteRetentionPolicy, and tags — the
//! ARN-based TagResource family and the legacy TagLogGroup family.

use super::*;
use berth_control::logs::{CreateGroup, GroupClass, GroupFilter, LogGroupView};
use std::collections::BTreeMap;

fn class(s: Option<String>) -> Result<Option<GroupClass>, Error> {
    s.map(|c| GroupClass::parse(&c).ok_or_else(|| invalid(format!("Invalid logGroupClass {c}"))))
        .transpose()
}

fn group_out(cx: &Cx<'_>, g: &LogGroupView) -> Value {
    let arn = cx.region.logs.group_arn(&g.name);
    object(&[
        ("logGroupName", Some(json!(g.name))),
        ("creationTime", Some(json!(g.created))),
        ("retentionInDays", g.retention_days.map(|d| json!(d))),
        ("metricFilterCount", Some(json!(g.metric_filter_count))),
        ("arn", Some(json!(format!("{arn}:*")))),
        ("storedBytes", Some(json!(g.stored_bytes))),
        ("kmsKeyId", g.kms_key_id.as_ref().map(|k| json!(k))),
        ("logGroupClass", Some(json!(g.class.as_str()))),
        ("logGroupArn", Some(json!(arn))),
        (
            "deletionProtectionEnabled",
            Some(json!(g.deletion_protection)),
        ),
    ])
}

pub(super) async fn create_log_group(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        log_group_name: String,
        kms_key_id: Option<String>,
        #[serde(default)]
        tags: BTreeMap<String, String>,
        log_group_class: Option<String>,
        #[serde(default)]
        deletion_protection_enabled: bool,
    }
    let i: In = input(v)?;
    cx.region
        .logs
        .group_create(CreateGroup {
            name: i.log_group_name,
            kms_key_id: i.kms_key_id,
            tags: i.tags,
            class: class(i.log_group_class)?,
            deletion_protection: i.deletion_protection_enabled,
        })
        .await?;
    Ok(json!({}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Named {
    log_group_name: String,
}

pub(super) async fn delete_log_group(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: Named = input(v)?;
    cx.region.logs.group_delete(&i.log_group_name).await?;
    Ok(json!({}))
}

pub(super) fn describe_log_groups(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        log_group_name_prefix: Option<String>,
        log_group_name_pattern: Option<String>,
        next_token: Option<String>,
        limit: Option<usize>,
        log_group_class: Option<String>,
        log_group_identifiers: Option<Vec<String>>,
    }
    let i: In = input(v)?;
    if let Some(p) = &i.log_group_name_prefix {
        berth_logs::names::check_log_group_name_prefix(p, "logGroupNamePrefix")
            .map_err(berth_control::logs::name_error)?;
    }
    if let Some(p) = &i.log_group_name_pattern {
        berth_logs::names::check_log_group_name_prefix(p, "logGroupNamePattern")
            .map_err(berth_control::logs::name_error)?;
    }
    let names = i
        .log_group_identifiers
        .map(|ids| {
            ids.iter()
                .map(|id| cx.region.logs.group_of_identifier(id))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let filter = GroupFilter {
        prefix: i.log_group_name_prefix,
        pattern: i.log_group_name_pattern.filter(|p| !p.is_empty()),
        class: class(i.log_group_class)?,
        names,
    };
    let page = cx
        .region
        .logs
        .groups_describe(&filter, i.limit, i.next_token.as_deref())?;
    let groups: Vec<Value> = page.items.iter().map(|g| group_out(cx, g)).collect();
    Ok(with_token(json!({"logGroups": groups}), page.next_token))
}

pub(super) async fn put_retention_policy(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        log_group_name: String,
        retention_in_days: i64,
    }
    let i: In = input(v)?;
    cx.region
        .logs
        .retention_put(&i.log_group_name, i.retention_in_days)
        .await?;
    Ok(json!({}))
}

pub(super) async fn delete_retention_policy(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: Named = input(v)?;
    cx.region.logs.retention_delete(&i.log_group_name).await?;
    Ok(json!({}))
}

/// `tags` as the output shapes have them: left out when there are none (the map's minimum
/// length is 1).
fn tags_out(tags: BTreeMap<String, String>) -> Value {
    if tags.is_empty() {
        json!({})
    } else {
        json!({ "tags": tags })
    }
}

/// TagResource, UntagResource, ListTagsForResource (log group ARNs, without `:*`).
pub(super) async fn tag_resource(cx: &Cx<'_>, op: LogsOp, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        resource_arn: String,
        #[serde(default)]
        tags: BTreeMap<String, String>,
        #[serde(default)]
        tag_keys: Vec<String>,
    }
    let i: In = input(v)?;
    let logs = &cx.region.logs;
    let group = logs.group_of_arn(&i.resource_arn).map_err(|_| {
        Error::coded(
            "ResourceNotFoundException",
            format!("The specified resource {} does not exist.", i.resource_arn),
        )
    })?;
    match op {
        LogsOp::TagResource => logs.tags_add(&group, i.tags).await?,
        LogsOp::UntagResource => logs.tags_remove(&group, i.tag_keys).await?,
        _ => return Ok(tags_out(logs.tags_list(&group)?)),
    }
    Ok(json!({}))
}

/// TagLogGroup, UntagLogGroup, ListTagsLogGroup (by name; `tags` is a list of keys when
/// untagging).
pub(super) async fn tag_log_group(cx: &Cx<'_>, op: LogsOp, v: Value) -> Result<Value, Error> {
    let logs = &cx.region.logs;
    let name = v
        .get("logGroupName")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    berth_logs::check_log_group_name(&name).map_err(berth_control::logs::name_error)?;
    match op {
        LogsOp::TagLogGroup => {
            let tags: BTreeMap<String, String> = input(v["tags"].clone())?;
            logs.tags_add(&name, tags).await?;
        }
        LogsOp::UntagLogGroup => {
            let keys: Vec<String> = input(v["tags"].clone())?;
            logs.tags_remove(&name, keys).await?;
        }
        _ => return Ok(tags_out(logs.tags_list(&name)?)),
    }
    Ok(json!({}))
}
