//! IAM over awsQuery: wire input → `berth_control::iam` → wire output. Policy documents go
//! out URL-encoded, as IAM sends them.

use crate::route::Cx;
use berth_aws::sigv4::uri_encode;
use berth_control::iam::{
    EntityKind, Grants, Group, Iam, KeyStatus, Listing, NewRole, PolicyView, Role, User,
    VersionView, page,
};
use berth_types::{Error, IamCode, Tag, Timestamp};
use serde_json::{Value, json};

crate::operation::operations! {
    /// The IAM operations Berth implements (awsQuery, global).
    pub enum IamOp ("iam") {
        CreateUser => Write, Iam("user", "UserName"), Partial("no permissions boundaries");
        GetUser => Read, Iam("user", "UserName"), Implemented;
        ListUsers => List, Any, Implemented;
        UpdateUser => Write, Iam("user", "UserName"), Implemented;
        DeleteUser => Write, Iam("user", "UserName"), Implemented;
        TagUser => Tagging, Iam("user", "UserName"), Implemented;
        UntagUser => Tagging, Iam("user", "UserName"), Implemented;
        ListUserTags => Read, Iam("user", "UserName"), Implemented;
        CreateAccessKey => Write, Iam("user", "UserName"), Implemented;
        ListAccessKeys => List, Iam("user", "UserName"), Implemented;
        UpdateAccessKey => Write, Iam("user", "UserName"), Implemented;
        DeleteAccessKey => Write, Iam("user", "UserName"), Implemented;
        GetAccessKeyLastUsed => Read, Any, Implemented;
        CreateGroup => Write, Iam("group", "GroupName"), Implemented;
        GetGroup => Read, Iam("group", "GroupName"), Implemented;
        ListGroups => List, Any, Implemented;
        DeleteGroup => Write, Iam("group", "GroupName"), Implemented;
        AddUserToGroup => Write, Iam("group", "GroupName"), Implemented;
        RemoveUserFromGroup => Write, Iam("group", "GroupName"), Implemented;
        ListGroupsForUser => List, Iam("user", "UserName"), Implemented;
        CreateRole => Write, Iam("role", "RoleName"), Partial("no permissions boundaries");
        GetRole => Read, Iam("role", "RoleName"), Partial("RoleLastUsed is not tracked");
        ListRoles => List, Any, Implemented;
        UpdateRole => Write, Iam("role", "RoleName"), Implemented;
        DeleteRole => Write, Iam("role", "RoleName"), Implemented;
        UpdateAssumeRolePolicy => PermissionsManagement, Iam("role", "RoleName"), Implemented;
        TagRole => Tagging, Iam("role", "RoleName"), Implemented;
        UntagRole => Tagging, Iam("role", "RoleName"), Implemented;
        ListRoleTags => Read, Iam("role", "RoleName"), Implemented;
        CreatePolicy => PermissionsManagement, Any, Partial("no policy tags");
        GetPolicy => Read, Arns("PolicyArn"), Implemented;
        ListPolicies => List, Any, Partial("PolicyUsageFilter is ignored");
        DeletePolicy => PermissionsManagement, Arns("PolicyArn"), Implemented;
        CreatePolicyVersion => PermissionsManagement, Arns("PolicyArn"), Implemented;
        GetPolicyVersion => Read, Arns("PolicyArn"), Implemented;
        ListPolicyVersions => List, Arns("PolicyArn"), Implemented;
        DeletePolicyVersion => PermissionsManagement, Arns("PolicyArn"), Implemented;
        SetDefaultPolicyVersion => PermissionsManagement, Arns("PolicyArn"), Implemented;
        AttachUserPolicy => PermissionsManagement, Iam("user", "UserName"), Implemented;
        DetachUserPolicy => PermissionsManagement, Iam("user", "UserName"), Implemented;
        AttachGroupPolicy => PermissionsManagement, Iam("group", "GroupName"), Implemented;
        DetachGroupPolicy => PermissionsManagement, Iam("group", "GroupName"), Implemented;
        AttachRolePolicy => PermissionsManagement, Iam("role", "RoleName"), Implemented;
        DetachRolePolicy => PermissionsManagement, Iam("role", "RoleName"), Implemented;
        ListAttachedUserPolicies => List, Iam("user", "UserName"), Implemented;
        ListAttachedGroupPolicies => List, Iam("group", "GroupName"), Implemented;
        ListAttachedRolePolicies => List, Iam("role", "RoleName"), Implemented;
        PutUserPolicy => PermissionsManagement, Iam("user", "UserName"), Implemented;
        GetUserPolicy => Read, Iam("user", "UserName"), Implemented;
        DeleteUserPolicy => PermissionsManagement, Iam("user", "UserName"), Implemented;
        ListUserPolicies => List, Iam("user", "UserName"), Implemented;
        PutGroupPolicy => PermissionsManagement, Iam("group", "GroupName"), Implemented;
        GetGroupPolicy => Read, Iam("group", "GroupName"), Implemented;
        DeleteGroupPolicy => PermissionsManagement, Iam("group", "GroupName"), Implemented;
        ListGroupPolicies => List, Iam("group", "GroupName"), Implemented;
        PutRolePolicy => PermissionsManagement, Iam("role", "RoleName"), Implemented;
        GetRolePolicy => Read, Iam("role", "RoleName"), Implemented;
        DeleteRolePolicy => PermissionsManagement, Iam("role", "RoleName"), Implemented;
        ListRolePolicies => List, Iam("role", "RoleName"), Implemented;
        GetAccountAuthorizationDetails => Read, Any, Partial("Filter is ignored; no instance profiles");
        SimulatePrincipalPolicy => Read, Arns("PolicySourceArn"),
            Partial("no permissions boundaries, no resource policies");
        SimulateCustomPolicy => Read, Any, Partial("no permissions boundaries");
    }
}

/// A string member (the model has checked required ones are present).
fn s<'a>(v: &'a Value, member: &str) -> &'a str {
    v.get(member).and_then(Value::as_str).unwrap_or("")
}

fn opt<'a>(v: &'a Value, member: &str) -> Option<&'a str> {
    v.get(member).and_then(Value::as_str)
}

fn strings(v: &Value, member: &str) -> Vec<String> {
    v.get(member)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn tags_in(v: &Value) -> Vec<Tag> {
    v.get("Tags")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|t| Tag {
                    key: s(t, "Key").to_string(),
                    value: s(t, "Value").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn tags_out(tags: &[Tag]) -> Value {
    Value::from(
        tags.iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect::<Vec<_>>(),
    )
}

fn date(t: Timestamp) -> Value {
    Value::from(t.epoch_seconds())
}

/// A policy document as IAM sends it: URL-encoded.
fn document(text: &str) -> Value {
    Value::from(uri_encode(text, true))
}

fn user_json(iam: &Iam, u: &User) -> Value {
    let mut out = json!({
        "Path": u.path,
        "UserName": u.name,
        "UserId": u.id,
        "Arn": iam.arn("user", &u.path, &u.name),
        "CreateDate": date(u.created),
    });
    if !u.tags.is_empty() {
        out["Tags"] = tags_out(&u.tags);
    }
    out
}

fn group_json(iam: &Iam, g: &Group) -> Value {
    json!({
        "Path": g.path,
        "GroupName": g.name,
        "GroupId": g.id,
        "Arn": iam.arn("group", &g.path, &g.name),
        "CreateDate": date(g.created),
    })
}

fn role_json(iam: &Iam, r: &Role) -> Value {
    let mut out = json!({
        "Path": r.path,
        "RoleName": r.name,
        "RoleId": r.id,
        "Arn": iam.arn("role", &r.path, &r.name),
        "CreateDate": date(r.created),
        "AssumeRolePolicyDocument": document(&r.trust),
        "MaxSessionDuration": r.max_session,
    });
    if let Some(d) = &r.description {
        out["Description"] = Value::from(d.as_str());
    }
    if !r.tags.is_empty() {
        out["Tags"] = tags_out(&r.tags);
    }
    out
}

fn policy_json(p: &PolicyView) -> Value {
    let mut out = json!({
        "PolicyName": p.name,
        "PolicyId": p.id,
        "Arn": p.arn,
        "Path": p.path,
        "DefaultVersionId": p.default_version,
        "AttachmentCount": p.attachment_count,
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": true,
        "CreateDate": date(p.created),
        "UpdateDate": date(p.updated),
    });
    if let Some(d) = &p.description {
        out["Description"] = Value::from(d.as_str());
    }
    out
}

fn version_json(v: &VersionView) -> Value {
    json!({
        "Document": document(&v.document),
        "VersionId": v.id,
        "IsDefaultVersion": v.is_default,
        "CreateDate": date(v.created),
    })
}

/// `"IsTruncated"` and `"Marker"` of a page, merged into `out`.
fn paged<T>(mut out: Value, listing: &Listing<T>) -> Value {
    out["IsTruncated"] = Value::from(listing.marker.is_some());
    if let Some(m) = &listing.marker {
        out["Marker"] = Value::from(m.as_str());
    }
    out
}

fn max_items(v: &Value) -> Option<i32> {
    v.get("MaxItems").and_then(Value::as_i64).map(|n| n as i32)
}

/// The entity an operation is about, from its name.
fn entity_of(op: IamOp) -> EntityKind {
    let name = op.name();
    if name.contains("Group") && !name.contains("GroupsForUser") {
        EntityKind::Group
    } else if name.contains("Role") {
        EntityKind::Role
    } else {
        EntityKind::User
    }
}

/// The member naming the entity of `kind`.
fn entity_member(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::User => "UserName",
        EntityKind::Group => "GroupName",
        EntityKind::Role => "RoleName",
    }
}

/// What every IAM operation's handler reads first.
struct Common<'a> {
    iam: &'a Iam,
    pager: &'a berth_control::paging::Pager,
    marker: Option<&'a str>,
    path_prefix: &'a str,
    kind: EntityKind,
    entity: &'a str,
    empty: Value,
}

impl<'a> Common<'a> {
    fn of(cx: &'a Cx<'_>, op: IamOp, v: &'a Value) -> Common<'a> {
        let kind = entity_of(op);
        Common {
            iam: cx.state.iam(),
            pager: &cx.region.pager,
            marker: opt(v, "Marker"),
            path_prefix: opt(v, "PathPrefix").unwrap_or("/"),
            kind,
            entity: s(v, entity_member(kind)),
            empty: json!({}),
        }
    }
}

/// Runs one IAM operation (one handler per group of operations).
pub async fn dispatch(cx: &Cx<'_>, op: IamOp, v: Value) -> Result<Value, Error> {
    use IamOp::*;
    match op {
        CreateUser | GetUser | ListUsers | UpdateUser | DeleteUser | TagUser | TagRole
        | UntagUser | UntagRole | ListUserTags | ListRoleTags => Box::pin(users(cx, op, &v)).await,
        CreateAccessKey | ListAccessKeys | UpdateAccessKey | DeleteAccessKey
        | GetAccessKeyLastUsed => Box::pin(keys(cx, op, &v)).await,
        CreateGroup | GetGroup | ListGroups | DeleteGroup | AddUserToGroup
        | RemoveUserFromGroup | ListGroupsForUser => Box::pin(groups(cx, op, &v)).await,
        CreateRole | GetRole | ListRoles | UpdateRole | DeleteRole | UpdateAssumeRolePolicy => {
            Box::pin(roles(cx, op, &v)).await
        }
        CreatePolicy
        | GetPolicy
        | ListPolicies
        | DeletePolicy
        | CreatePolicyVersion
        | GetPolicyVersion
        | ListPolicyVersions
        | DeletePolicyVersion
        | SetDefaultPolicyVersion => Box::pin(managed(cx, op, &v)).await,
        AttachUserPolicy
        | AttachGroupPolicy
        | AttachRolePolicy
        | DetachUserPolicy
        | DetachGroupPolicy
        | DetachRolePolicy
        | ListAttachedUserPolicies
        | ListAttachedGroupPolicies
        | ListAttachedRolePolicies
        | PutUserPolicy
        | PutGroupPolicy
        | PutRolePolicy
        | GetUserPolicy
        | GetGroupPolicy
        | GetRolePolicy
        | DeleteUserPolicy
        | DeleteGroupPolicy
        | DeleteRolePolicy
        | ListUserPolicies
        | ListGroupPolicies
        | ListRolePolicies => Box::pin(grants(cx, op, &v)).await,
        GetAccountAuthorizationDetails => authorization_details(cx.state.iam()),
        SimulatePrincipalPolicy => simulate(cx, &v, true),
        SimulateCustomPolicy => simulate(cx, &v, false),
    }
}

/// Users and their tags (and roles' tags).
async fn users(cx: &Cx<'_>, op: IamOp, v: &Value) -> Result<Value, Error> {
    let c = Common::of(cx, op, v);
    use IamOp::*;
    Ok(match op {
        CreateUser => {
            let u = c
                .iam
                .create_user(s(v, "UserName"), opt(v, "Path"), tags_in(v))
                .await?;
            json!({"User": user_json(c.iam, &u)})
        }
        GetUser => match opt(v, "UserName") {
            Some(name) => json!({"User": user_json(c.iam, &c.iam.user(name)?)}),
            None => match &cx.principal.caller {
                berth_types::Caller::User { name, .. } => {
                    json!({"User": user_json(c.iam, &c.iam.user(name)?)})
                }
                _ => json!({"User": {
                    "Path": "/",
                    "UserName": cx.principal.account.as_str(),
                    "UserId": cx.principal.user_id(),
                    "Arn": cx.principal.arn,
                    "CreateDate": date(Timestamp(0)),
                }}),
            },
        },
        ListUsers => {
            let mut users = c.iam.users()?;
            users.retain(|u| u.path.starts_with(c.path_prefix));
            let l = page(
                users,
                |u| u.name.to_lowercase(),
                c.marker,
                max_items(v),
                c.pager,
                "iam-users",
            )?;
            let list: Vec<Value> = l.items.iter().map(|u| user_json(c.iam, u)).collect();
            paged(json!({"Users": list}), &l)
        }
        UpdateUser => {
            c.iam
                .update_user(s(v, "UserName"), opt(v, "NewUserName"), opt(v, "NewPath"))
                .await?;
            c.empty
        }
        DeleteUser => {
            c.iam.delete_user(s(v, "UserName")).await?;
            c.empty
        }
        TagUser | TagRole => {
            c.iam.tag(c.kind, c.entity, tags_in(v), Vec::new()).await?;
            c.empty
        }
        UntagUser | UntagRole => {
            c.iam
                .tag(c.kind, c.entity, Vec::new(), strings(v, "TagKeys"))
                .await?;
            c.empty
        }
        ListUserTags => {
            json!({"Tags": tags_out(&c.iam.user(c.entity)?.tags), "IsTruncated": false})
        }
        ListRoleTags => {
            json!({"Tags": tags_out(&c.iam.role(c.entity)?.tags), "IsTruncated": false})
        }
        _ => unreachable!("dispatched by group"),
    })
}

/// Access keys.
async fn keys(cx: &Cx<'_>, op: IamOp, v: &Value) -> Result<Value, Error> {
    let c = Common::of(cx, op, v);
    use IamOp::*;
    Ok(match op {
        CreateAccessKey => {
            let user = caller_user(cx, opt(v, "UserName"))?;
            let k = c.iam.create_access_key(&user).await?;
            json!({"AccessKey": {
                "UserName": k.user,
                "AccessKeyId": k.id,
                "Status": k.status.as_str(),
                "SecretAccessKey": k.secret,
                "CreateDate": date(k.created),
            }})
        }
        ListAccessKeys => {
            let user = caller_user(cx, opt(v, "UserName"))?;
            let keys = c.iam.access_keys(&user)?;
            let l = page(
                keys,
                |k| k.id.clone(),
                c.marker,
                max_items(v),
                c.pager,
                "iam-keys",
            )?;
            let list: Vec<Value> = l
                .items
                .iter()
                .map(|k| {
                    json!({
                        "UserName": k.user,
                        "AccessKeyId": k.id,
                        "Status": k.status.as_str(),
                        "CreateDate": date(k.created),
                    })
                })
                .collect();
            paged(json!({"AccessKeyMetadata": list}), &l)
        }
        UpdateAccessKey | DeleteAccessKey | GetAccessKeyLastUsed => {
            return keys_more(cx, op, v).await;
        }
        _ => unreachable!("dispatched by group"),
    })
}

/// The rest of the group above.
async fn keys_more(cx: &Cx<'_>, op: IamOp, v: &Value) -> Result<Value, Error> {
    let c = Common::of(cx, op, v);
    use IamOp::*;
    Ok(match op {
        UpdateAccessKey => {
            let user = caller_user(cx, opt(v, "UserName"))?;
            let status = KeyStatus::parse(s(v, "Status")).ok_or_else(|| {
                Error::iam(
                    IamCode::ValidationError,
                    "Status must be Active or Inactive",
                )
            })?;
            c.iam
                .change_access_key(&user, s(v, "AccessKeyId"), Some(status))
                .await?;
            c.empty
        }
        DeleteAccessKey => {
            let user = caller_user(cx, opt(v, "UserName"))?;
            c.iam
                .change_access_key(&user, s(v, "AccessKeyId"), None)
                .await?;
            c.empty
        }
        GetAccessKeyLastUsed => {
            let id = s(v, "AccessKeyId");
            let k = c.iam.access_key(id)?.ok_or_else(|| {
                Error::iam(
                    IamCode::NoSuchEntity,
                    format!("The Access Key with id {id} cannot be found."),
                )
            })?;
            let used = match &k.last_used {
                Some(l) => json!({
                    "LastUsedDate": date(l.at),
                    "ServiceName": l.service,
                    "Region": l.region,
                }),
                None => json!({"ServiceName": "N/A", "Region": "N/A"}),
            };
            json!({"UserName": k.user, "AccessKeyLastUsed": used})
        }
        _ => unreachable!("dispatched by group"),
    })
}

/// Groups and membership.
async fn groups(cx: &Cx<'_>, op: IamOp, v: &Value) -> Result<Value, Error> {
    let c = Common::of(cx, op, v);
    use IamOp::*;
    Ok(match op {
        CreateGroup => {
            let g = c.iam.create_group(c.entity, opt(v, "Path")).await?;
            json!({"Group": group_json(c.iam, &g)})
        }
        GetGroup => {
            let g = c.iam.group(c.entity)?;
            let members = c.iam.group_members(&g)?;
            let l = page(
                members,
                |u| u.name.to_lowercase(),
                c.marker,
                max_items(v),
                c.pager,
                "iam-group-users",
            )?;
            let list: Vec<Value> = l.items.iter().map(|u| user_json(c.iam, u)).collect();
            paged(json!({"Group": group_json(c.iam, &g), "Users": list}), &l)
        }
        ListGroups => {
            let mut groups = c.iam.groups()?;
            groups.retain(|g| g.path.starts_with(c.path_prefix));
            let l = page(
                groups,
                |g| g.name.to_lowercase(),
                c.marker,
                max_items(v),
                c.pager,
                "iam-groups",
            )?;
            let list: Vec<Value> = l.items.iter().map(|g| group_json(c.iam, g)).collect();
            paged(json!({"Groups": list}), &l)
        }
        DeleteGroup => {
            c.iam.delete_group(c.entity).await?;
            c.empty
        }
        AddUserToGroup | RemoveUserFromGroup => {
            c.iam
                .group_membership(c.entity, s(v, "UserName"), op == AddUserToGroup)
                .await?;
            c.empty
        }
        ListGroupsForUser => {
            let u = c.iam.user(s(v, "UserName"))?;
            let groups: Vec<Group> = u
                .groups
                .iter()
                .filter_map(|g| c.iam.group(g).ok())
                .collect();
            let l = page(
                groups,
                |g| g.name.to_lowercase(),
                c.marker,
                max_items(v),
                c.pager,
                "iam-user-groups",
            )?;
            let list: Vec<Value> = l.items.iter().map(|g| group_json(c.iam, g)).collect();
            paged(json!({"Groups": list}), &l)
        }
        _ => unreachable!("dispatched by group"),
    })
}

/// Roles.
async fn roles(cx: &Cx<'_>, op: IamOp, v: &Value) -> Result<Value, Error> {
    let c = Common::of(cx, op, v);
    use IamOp::*;
    Ok(match op {
        CreateRole => {
            let r = c
                .iam
                .create_role(NewRole {
                    name: c.entity.to_string(),
                    path: opt(v, "Path").map(str::to_string),
                    trust: s(v, "AssumeRolePolicyDocument").to_string(),
                    description: opt(v, "Description").map(str::to_string),
                    max_session: v
                        .get("MaxSessionDuration")
                        .and_then(Value::as_i64)
                        .map(|n| n as i32),
                    tags: tags_in(v),
                })
                .await?;
            json!({"Role": role_json(c.iam, &r)})
        }
        GetRole => json!({"Role": role_json(c.iam, &c.iam.role(c.entity)?)}),
        ListRoles => {
            let mut roles = c.iam.roles()?;
            roles.retain(|r| r.path.starts_with(c.path_prefix));
            let l = page(
                roles,
                |r| r.name.to_lowercase(),
                c.marker,
                max_items(v),
                c.pager,
                "iam-roles",
            )?;
            let list: Vec<Value> = l.items.iter().map(|r| role_json(c.iam, r)).collect();
            paged(json!({"Roles": list}), &l)
        }
        UpdateRole => {
            c.iam
                .update_role(
                    c.entity,
                    opt(v, "Description").map(str::to_string),
                    v.get("MaxSessionDuration")
                        .and_then(Value::as_i64)
                        .map(|n| n as i32),
                )
                .await?;
            c.empty
        }
        DeleteRole => {
            c.iam.delete_role(c.entity).await?;
            c.empty
        }
        UpdateAssumeRolePolicy => {
            c.iam
                .update_trust(c.entity, s(v, "PolicyDocument").to_string())
                .await?;
            c.empty
        }
        _ => unreachable!("dispatched by group"),
    })
}

/// Managed policies and their versions.
async fn managed(cx: &Cx<'_>, op: IamOp, v: &Value) -> Result<Value, Error> {
    let c = Common::of(cx, op, v);
    use IamOp::*;
    Ok(match op {
        CreatePolicy => {
            let p = c
                .iam
                .create_policy(
                    s(v, "PolicyName"),
                    opt(v, "Path"),
                    s(v, "PolicyDocument").to_string(),
                    opt(v, "Description").map(str::to_string),
                )
                .await?;
            json!({"Policy": policy_json(&p)})
        }
        GetPolicy => json!({"Policy": policy_json(&c.iam.policy(s(v, "PolicyArn"))?)}),
        ListPolicies => {
            let scope = opt(v, "Scope").unwrap_or("All");
            let only_attached = v
                .get("OnlyAttached")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut list = c.iam.policies(scope != "Local", scope != "AWS")?;
            list.retain(|p| {
                p.path.starts_with(c.path_prefix) && (!only_attached || p.attachment_count > 0)
            });
            let l = page(
                list,
                |p| p.arn.clone(),
                c.marker,
                max_items(v),
                c.pager,
                "iam-policies",
            )?;
            let items: Vec<Value> = l.items.iter().map(policy_json).collect();
            paged(json!({"Policies": items}), &l)
        }
        DeletePolicy => {
            c.iam.delete_policy(s(v, "PolicyArn")).await?;
            c.empty
        }
        CreatePolicyVersion
        | GetPolicyVersion
        | ListPolicyVersions
        | DeletePolicyVersion
        | SetDefaultPolicyVersion => return managed_more(cx, op, v).await,
        _ => unreachable!("dispatched by group"),
    })
}

/// The rest of the group above.
async fn managed_more(cx: &Cx<'_>, op: IamOp, v: &Value) -> Result<Value, Error> {
    let c = Common::of(cx, op, v);
    use IamOp::*;
    Ok(match op {
        CreatePolicyVersion => {
            let set_default = v
                .get("SetAsDefault")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let ver = c
                .iam
                .create_policy_version(
                    s(v, "PolicyArn"),
                    s(v, "PolicyDocument").to_string(),
                    set_default,
                )
                .await?;
            json!({"PolicyVersion": version_json(&ver)})
        }
        GetPolicyVersion => {
            let ver = c.iam.policy_version(s(v, "PolicyArn"), s(v, "VersionId"))?;
            json!({"PolicyVersion": version_json(&ver)})
        }
        ListPolicyVersions => {
            let list: Vec<Value> = c
                .iam
                .policy_versions(s(v, "PolicyArn"))?
                .iter()
                .map(|ver| {
                    let mut j = version_json(ver);
                    j.as_object_mut().map(|o| o.remove("Document"));
                    j
                })
                .collect();
            json!({"Versions": list, "IsTruncated": false})
        }
        DeletePolicyVersion => {
            c.iam
                .delete_policy_version(s(v, "PolicyArn"), s(v, "VersionId"))
                .await?;
            c.empty
        }
        SetDefaultPolicyVersion => {
            c.iam
                .set_default_version(s(v, "PolicyArn"), s(v, "VersionId"))
                .await?;
            c.empty
        }
        _ => unreachable!("dispatched by group"),
    })
}

/// Attached and inline policies of users, groups and roles.
async fn grants(cx: &Cx<'_>, op: IamOp, v: &Value) -> Result<Value, Error> {
    let c = Common::of(cx, op, v);
    use IamOp::*;
    Ok(match op {
        AttachUserPolicy | AttachGroupPolicy | AttachRolePolicy => {
            c.iam.attach(c.kind, c.entity, s(v, "PolicyArn")).await?;
            c.empty
        }
        DetachUserPolicy | DetachGroupPolicy | DetachRolePolicy => {
            c.iam.detach(c.kind, c.entity, s(v, "PolicyArn")).await?;
            c.empty
        }
        ListAttachedUserPolicies | ListAttachedGroupPolicies | ListAttachedRolePolicies => {
            let list = c.iam.attached(c.kind, c.entity)?;
            let l = page(
                list,
                |p| p.arn.clone(),
                c.marker,
                max_items(v),
                c.pager,
                "iam-attached",
            )?;
            let items: Vec<Value> = l
                .items
                .iter()
                .map(|p| json!({"PolicyName": p.name, "PolicyArn": p.arn}))
                .collect();
            paged(json!({"AttachedPolicies": items}), &l)
        }
        PutUserPolicy | PutGroupPolicy | PutRolePolicy | GetUserPolicy | GetGroupPolicy
        | GetRolePolicy | DeleteUserPolicy | DeleteGroupPolicy | DeleteRolePolicy
        | ListUserPolicies | ListGroupPolicies | ListRolePolicies => {
            return grants_more(cx, op, v).await;
        }
        _ => unreachable!("dispatched by group"),
    })
}

/// The rest of the group above.
async fn grants_more(cx: &Cx<'_>, op: IamOp, v: &Value) -> Result<Value, Error> {
    let c = Common::of(cx, op, v);
    use IamOp::*;
    Ok(match op {
        PutUserPolicy | PutGroupPolicy | PutRolePolicy => {
            c.iam
                .put_inline(
                    c.kind,
                    c.entity,
                    s(v, "PolicyName"),
                    s(v, "PolicyDocument").to_string(),
                )
                .await?;
            c.empty
        }
        GetUserPolicy | GetGroupPolicy | GetRolePolicy => {
            let (name, _, grants) = c.iam.grants(c.kind, c.entity)?;
            let policy = s(v, "PolicyName");
            let doc = grants
                .inline
                .get(policy)
                .ok_or_else(|| berth_control::iam::inline_not_found(c.kind, policy))?;
            json!({
                entity_member(c.kind): name,
                "PolicyName": policy,
                "PolicyDocument": document(doc),
            })
        }
        DeleteUserPolicy | DeleteGroupPolicy | DeleteRolePolicy => {
            c.iam
                .delete_inline(c.kind, c.entity, s(v, "PolicyName"))
                .await?;
            c.empty
        }
        ListUserPolicies | ListGroupPolicies | ListRolePolicies => {
            let (_, _, grants) = c.iam.grants(c.kind, c.entity)?;
            let names: Vec<String> = grants.inline.keys().cloned().collect();
            let l = page(
                names,
                Clone::clone,
                c.marker,
                max_items(v),
                c.pager,
                "iam-inline",
            )?;
            paged(json!({"PolicyNames": l.items}), &l)
        }
        _ => unreachable!("dispatched by group"),
    })
}

/// The user an access-key operation is about: the one named, else the caller.
fn caller_user(cx: &Cx<'_>, named: Option<&str>) -> Result<String, Error> {
    match (named, &cx.principal.caller) {
        (Some(n), _) => Ok(n.to_string()),
        (None, berth_types::Caller::User { name, .. }) => Ok(name.clone()),
        (None, _) => Err(Error::iam(
            IamCode::ValidationError,
            "Berth keeps root's key in its data directory: name the user (UserName).",
        )),
    }
}

fn inline_list(grants: &Grants) -> Value {
    Value::from(
        grants
            .inline
            .iter()
            .map(|(n, d)| json!({"PolicyName": n, "PolicyDocument": document(d)}))
            .collect::<Vec<_>>(),
    )
}

fn attached_list(grants: &Grants) -> Value {
    Value::from(
        grants
            .attached
            .iter()
            .map(|arn| {
                json!({"PolicyName": arn.rsplit('/').next().unwrap_or(arn), "PolicyArn": arn})
            })
            .collect::<Vec<_>>(),
    )
}

/// `GetAccountAuthorizationDetails`: every user, group, role and customer-managed policy.
fn authorization_details(iam: &Iam) -> Result<Value, Error> {
    let users: Vec<Value> = iam
        .users()?
        .iter()
        .map(|u| {
            let mut j = user_json(iam, u);
            j["UserPolicyList"] = inline_list(&u.grants);
            j["GroupList"] = Value::from(u.groups.clone());
            j["AttachedManagedPolicies"] = attached_list(&u.grants);
            j
        })
        .collect();
    let groups: Vec<Value> = iam
        .groups()?
        .iter()
        .map(|g| {
            let mut j = group_json(iam, g);
            j["GroupPolicyList"] = inline_list(&g.grants);
            j["AttachedManagedPolicies"] = attached_list(&g.grants);
            j
        })
        .collect();
    let roles: Vec<Value> = iam
        .roles()?
        .iter()
        .map(|r| {
            let mut j = role_json(iam, r);
            j.as_object_mut().map(|o| o.remove("MaxSessionDuration"));
            j.as_object_mut().map(|o| o.remove("Description"));
            j["RolePolicyList"] = inline_list(&r.grants);
            j["AttachedManagedPolicies"] = attached_list(&r.grants);
            j["InstanceProfileList"] = json!([]);
            j
        })
        .collect();
    let policies: Vec<Value> = iam
        .policies(false, true)?
        .iter()
        .map(|p| {
            let mut j = policy_json(p);
            let versions: Vec<Value> = iam
                .policy_versions(&p.arn)
                .unwrap_or_default()
                .iter()
                .map(version_json)
                .collect();
            j["PolicyVersionList"] = Value::from(versions);
            j
        })
        .collect();
    Ok(json!({
        "UserDetailList": users,
        "GroupDetailList": groups,
        "RoleDetailList": roles,
        "Policies": policies,
        "IsTruncated": false,
    }))
}

/// `SimulatePrincipalPolicy` (the policies of a user, group or role) and
/// `SimulateCustomPolicy` (the policies given): the enforcer's decision for each action and
/// resource, with the statements it rests on.
fn simulate(cx: &Cx<'_>, v: &Value, principal: bool) -> Result<Value, Error> {
    let iam = cx.state.iam();
    let malformed = |m: berth_iam::Malformed| Error::iam(IamCode::MalformedPolicyDocument, m.0);
    let mut policies: Vec<(String, berth_iam::Policy)> = Vec::new();
    let mut caller = berth_iam::Principal {
        arn: opt(v, "CallerArn").unwrap_or("").to_string(),
        account: iam.account().as_str().to_string(),
        kind: berth_iam::PrincipalKind::User,
    };
    if principal {
        principal_policies(iam, v, &mut policies, &mut caller)?;
    }
    for (i, d) in strings(v, "PolicyInputList").iter().enumerate() {
        policies.push((
            format!("PolicyInputList.{}", i + 1),
            parse_identity(d).map_err(malformed)?,
        ));
    }
    let mut context = berth_iam::Context::new();
    if let Some(entries) = v.get("ContextEntries").and_then(Value::as_array) {
        for e in entries {
            context.set_all(s(e, "ContextKeyName"), strings(e, "ContextKeyValues"));
        }
    }
    let mut resources = strings(v, "ResourceArns");
    if resources.is_empty() {
        resources.push("*".into());
    }
    let identity: Vec<&berth_iam::Policy> = policies.iter().map(|p| &p.1).collect();
    let set = berth_iam::Policies {
        identity: &identity,
        ..Default::default()
    };
    let mut results = Vec::new();
    for action in strings(v, "ActionNames") {
        for resource in &resources {
            let request = berth_iam::Request {
                principal: &caller,
                action: &action,
                resource,
                context: &context,
            };
            let outcome = berth_iam::evaluate(&set, &request);
            let decision = match outcome.decision {
                berth_iam::Decision::Allowed => "allowed",
                berth_iam::Decision::ExplicitDeny => "explicitDeny",
                berth_iam::Decision::ImplicitDeny => "implicitDeny",
            };
            let matched: Vec<Value> = outcome
                .matched
                .iter()
                .filter_map(|m| match m.source {
                    berth_iam::Source::Identity(i) => Some(json!({
                        "SourcePolicyId": policies[i].0,
                        "SourcePolicyType": if policies[i].0.starts_with("arn:") { "aws-managed" } else { "user" },
                    })),
                    _ => None,
                })
                .collect();
            results.push(json!({
                "EvalActionName": action,
                "EvalResourceName": resource,
                "EvalDecision": decision,
                "MatchedStatements": matched,
                "MissingContextValues": [],
            }));
        }
    }
    Ok(json!({"EvaluationResults": results, "IsTruncated": false}))
}

/// The policies of `PolicySourceArn` (a user's groups' too), and the caller it simulates.
fn principal_policies(
    iam: &Iam,
    v: &Value,
    policies: &mut Vec<(String, berth_iam::Policy)>,
    caller: &mut berth_iam::Principal,
) -> Result<(), Error> {
    let malformed = |m: berth_iam::Malformed| Error::iam(IamCode::MalformedPolicyDocument, m.0);
    let source = s(v, "PolicySourceArn");
    let name = source.rsplit('/').next().unwrap_or("");
    let kind = if source.contains(":role/") {
        EntityKind::Role
    } else if source.contains(":group/") {
        EntityKind::Group
    } else {
        EntityKind::User
    };
    let (_, _, grants) = iam.grants(kind, name).map_err(|_| {
        Error::iam(
            IamCode::NoSuchEntity,
            format!("PolicySourceArn {source} does not exist."),
        )
    })?;
    if kind == EntityKind::User
        && let Ok(u) = iam.user(name)
    {
        for g in &u.groups {
            if let Ok((gname, _, gg)) = iam.grants(EntityKind::Group, g) {
                for (pn, d) in &gg.inline {
                    policies.push((
                        format!("group {gname} {pn}"),
                        parse_identity(d).map_err(malformed)?,
                    ));
                }
                for arn in &gg.attached {
                    if let Some(d) = iam.default_document(arn)? {
                        policies.push((arn.clone(), parse_identity(&d).map_err(malformed)?));
                    }
                }
            }
        }
    }
    for (pn, d) in &grants.inline {
        policies.push((pn.clone(), parse_identity(d).map_err(malformed)?));
    }
    for arn in &grants.attached {
        if let Some(d) = iam.default_document(arn)? {
            policies.push((arn.clone(), parse_identity(&d).map_err(malformed)?));
        }
    }
    if caller.arn.is_empty() {
        caller.arn = source.to_string();
    }
    if kind == EntityKind::Role {
        caller.kind = berth_iam::PrincipalKind::AssumedRole {
            role_arn: source.to_string(),
        };
    }
    Ok(())
}

fn parse_identity(text: &str) -> Result<berth_iam::Policy, berth_iam::Malformed> {
    berth_iam::Policy::parse(text, berth_iam::Kind::Identity)
}
