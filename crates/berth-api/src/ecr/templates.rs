//! ECR repository creation templates: Create/Describe/Update/DeleteRepositoryCreationTemplate
//! (`berth_registry::templates` applies them).

use super::*;
use berth_registry::templates::{AppliedFor, Template};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TemplateIn {
    prefix: String,
    description: Option<String>,
    encryption_configuration: Option<Value>,
    resource_tags: Option<Vec<WireTag>>,
    image_tag_mutability: Option<String>,
    image_tag_mutability_exclusion_filters: Option<Vec<Value>>,
    repository_policy: Option<String>,
    lifecycle_policy: Option<String>,
    applied_for: Option<Vec<String>>,
    custom_role_arn: Option<String>,
}

fn template_out(t: &Template) -> Value {
    let mut v = json!({
        "prefix": t.prefix,
        "resourceTags": t.resource_tags.iter().map(|t| json!({"Key": t.key, "Value": t.value})).collect::<Vec<_>>(),
        "appliedFor": t.applied_for.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "imageTagMutability": t.tag_mutability.as_deref().unwrap_or("MUTABLE"),
        "encryptionConfiguration": t.encryption.clone().unwrap_or_else(|| json!({"encryptionType": "AES256"})),
        "createdAt": t.created_at.epoch_seconds(),
        "updatedAt": t.updated_at.epoch_seconds(),
    });
    let optional = [
        ("description", &t.description),
        ("repositoryPolicy", &t.repository_policy),
        ("lifecyclePolicy", &t.lifecycle_policy),
        ("customRoleArn", &t.custom_role_arn),
    ];
    for (k, value) in optional {
        if let Some(x) = value {
            v[k] = Value::String(x.clone());
        }
    }
    if !t.tag_mutability_exclusions.is_empty() {
        v["imageTagMutabilityExclusionFilters"] = Value::Array(t.tag_mutability_exclusions.clone());
    }
    v
}

/// Checks the settings a template would give a repository, as CreateRepository,
/// SetRepositoryPolicy and PutLifecyclePolicy check them.
fn check(t: &Template) -> Result<(), Error> {
    if t.applied_for.is_empty() {
        return Err(Error::InvalidParameter(
            "Invalid parameter at 'appliedFor' failed to satisfy constraint: 'Member must have length greater than or equal to 1'".into(),
        ));
    }
    check_mutability(t.tag_mutability.as_deref(), &t.tag_mutability_exclusions)?;
    check_tags(&t.resource_tags)?;
    if let Some(p) = t.repository_policy.as_deref().filter(|p| !p.is_empty()) {
        berth_iam::Policy::parse(p, berth_iam::Kind::Resource).map_err(|e| {
            Error::InvalidParameter(format!(
                "Invalid parameter at 'repositoryPolicy' failed to satisfy constraint: 'Invalid repository policy provided': {e}"
            ))
        })?;
    }
    if let Some(l) = t.lifecycle_policy.as_deref().filter(|l| !l.is_empty()) {
        berth_registry::lifecycle::LifecyclePolicy::parse(l)?;
    }
    Ok(())
}

/// Applies the members given to `t`.
fn merge(t: &mut Template, i: TemplateIn) -> Result<(), Error> {
    let blank = |s: Option<String>| s.filter(|x| !x.is_empty());
    if let Some(d) = i.description {
        t.description = Some(d).filter(|d| !d.is_empty());
    }
    if let Some(e) = i.encryption_configuration {
        t.encryption = Some(e);
    }
    if let Some(tags) = i.resource_tags {
        t.resource_tags = wire_tags(tags);
    }
    if let Some(m) = i.image_tag_mutability {
        t.tag_mutability = Some(m);
        t.tag_mutability_exclusions = i.image_tag_mutability_exclusion_filters.unwrap_or_default();
    } else if let Some(f) = i.image_tag_mutability_exclusion_filters {
        t.tag_mutability_exclusions = f;
    }
    if i.repository_policy.is_some() {
        t.repository_policy = blank(i.repository_policy);
    }
    if i.lifecycle_policy.is_some() {
        t.lifecycle_policy = blank(i.lifecycle_policy);
    }
    if let Some(a) = i.applied_for {
        t.applied_for =
            a.iter()
                .filter_map(|x| AppliedFor::parse(x))
                .fold(Vec::new(), |mut acc, x| {
                    if !acc.contains(&x) {
                        acc.push(x);
                    }
                    acc
                });
    }
    if let Some(r) = i.custom_role_arn {
        t.custom_role_arn = Some(r).filter(|r| !r.is_empty());
    }
    check(t)
}

/// `CreateRepositoryCreationTemplate` / `UpdateRepositoryCreationTemplate`.
pub(super) async fn put_template(cx: &Cx<'_>, op: EcrOp, v: Value) -> Result<Value, Error> {
    let i: TemplateIn = input(v)?;
    let registry = &cx.region.registry;
    let now = berth_types::Timestamp::now();
    let template = if op == EcrOp::CreateRepositoryCreationTemplate {
        let mut t = Template {
            prefix: i.prefix.clone(),
            description: None,
            encryption: None,
            resource_tags: Vec::new(),
            tag_mutability: None,
            tag_mutability_exclusions: Vec::new(),
            repository_policy: None,
            lifecycle_policy: None,
            applied_for: Vec::new(),
            custom_role_arn: None,
            created_at: now,
            updated_at: now,
        };
        merge(&mut t, i)?;
        registry.template_create(t).await?
    } else {
        let prefix = i.prefix.clone();
        registry
            .template_update(&prefix, move |t| {
                merge(t, i)?;
                t.updated_at = now;
                Ok(())
            })
            .await?
    };
    Ok(json!({
        "registryId": cx.region.scope.account.as_str(),
        "repositoryCreationTemplate": template_out(&template),
    }))
}

/// `DescribeRepositoryCreationTemplates`: the prefixes asked for (each must exist), or every
/// template, by prefix, paginated.
pub(super) async fn describe_templates(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        prefixes: Option<Vec<String>>,
        next_token: Option<String>,
        max_results: Option<i32>,
    }
    let i: In = input(v)?;
    let state = &*cx.region;
    let all = match &i.prefixes {
        Some(p) if !p.is_empty() => p
            .iter()
            .map(|p| state.registry.template_get(p))
            .collect::<Result<Vec<_>, _>>()?,
        _ => state.registry.templates_list()?,
    };
    let scope = "DescribeRepositoryCreationTemplates";
    let start = match &i.next_token {
        Some(t) => {
            let last = state.pager.decode(scope, t)?;
            all.iter()
                .position(|t| t.prefix > last)
                .unwrap_or(all.len())
        }
        None => 0,
    };
    let limit = i.max_results.unwrap_or(100) as usize;
    let page: Vec<&Template> = all.iter().skip(start).take(limit).collect();
    let mut out = json!({
        "registryId": state.scope.account.as_str(),
        "repositoryCreationTemplates": page.iter().map(|t| template_out(t)).collect::<Vec<_>>(),
    });
    if start + page.len() < all.len()
        && let Some(last) = page.last()
    {
        out["nextToken"] = Value::String(state.pager.encode(scope, &last.prefix));
    }
    Ok(out)
}

/// `DeleteRepositoryCreationTemplate`.
pub(super) async fn delete_template(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    struct In {
        prefix: String,
    }
    let i: In = input(v)?;
    let t = cx.region.registry.template_delete(&i.prefix).await?;
    Ok(json!({
        "registryId": cx.region.scope.account.as_str(),
        "repositoryCreationTemplate": template_out(&t),
    }))
}
