//! ECR repositories: wire input → domain command, domain view → wire output.

use super::*;

/// `CreateRepository`.
pub(super) async fn create_repository(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        #[serde(default)]
        tags: Vec<WireTag>,
        image_tag_mutability: Option<String>,
        #[serde(default)]
        image_tag_mutability_exclusion_filters: Vec<Value>,
        image_scanning_configuration: Option<Value>,
        encryption_configuration: Option<Value>,
    }
    let i: In = input(v)?;
    check_mutability(
        i.image_tag_mutability.as_deref(),
        &i.image_tag_mutability_exclusion_filters,
    )?;
    let tags: Vec<Tag> = wire_tags(i.tags);
    check_tags(&tags)?;
    let repo = registry
        .repository_create(CreateRepository {
            name: i.repository_name,
            tag_mutability: i.image_tag_mutability,
            tag_mutability_exclusions: i.image_tag_mutability_exclusion_filters,
            scanning: i.image_scanning_configuration,
            encryption: i.encryption_configuration,
            tags,
            policy: None,
        })
        .await?;
    Ok(json!({"repository": repository_out(state, &repo)}))
}

/// `DescribeRepositories`.
pub(super) async fn describe_repositories(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_names: Option<Vec<String>>,
        next_token: Option<String>,
        max_results: Option<i32>,
    }
    let i: In = input(v)?;
    if let Some(names) = i.repository_names {
        if i.max_results.is_some() || i.next_token.is_some() {
            return Err(Error::InvalidParameter(
                "maxResults and nextToken cannot be used with repositoryNames".into(),
            ));
        }
        let mut out = Vec::new();
        for n in names {
            out.push(repository_out(state, &registry.repository_get(&n)?));
        }
        return Ok(json!({"repositories": out}));
    }
    let limit = i.max_results.unwrap_or(1000) as usize;
    let after = match &i.next_token {
        Some(t) => Some(state.pager.decode("DescribeRepositories", t)?),
        None => None,
    };
    let mut repos = registry.repository_list(after.as_deref(), limit + 1)?;
    let more = repos.len() > limit;
    repos.truncate(limit);
    let mut out =
        json!({"repositories": repos.iter().map(|r| repository_out(state, r)).collect::<Vec<_>>()});
    if more && let Some(last) = repos.last() {
        out["nextToken"] = Value::String(
            state
                .pager
                .encode("DescribeRepositories", last.name.as_str()),
        );
    }
    Ok(out)
}

/// `DeleteRepository`.
pub(super) async fn delete_repository(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        #[serde(default)]
        force: bool,
    }
    let i: In = input(v)?;
    let (repo, _) = registry
        .repository_delete(&i.repository_name, i.force)
        .await?;
    Ok(json!({"repository": repository_out(state, &repo)}))
}

/// `PutImageTagMutability`.
pub(super) async fn put_image_tag_mutability(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let account = cx.region.scope.account.as_str();
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        image_tag_mutability: String,
        #[serde(default)]
        image_tag_mutability_exclusion_filters: Vec<Value>,
    }
    let i: In = input(v)?;
    check_mutability(
        Some(&i.image_tag_mutability),
        &i.image_tag_mutability_exclusion_filters,
    )?;
    let (m, f) = (
        i.image_tag_mutability.clone(),
        i.image_tag_mutability_exclusion_filters.clone(),
    );
    let repo = registry
        .repository_update(&i.repository_name, move |r| {
            r.tag_mutability = m;
            r.tag_mutability_exclusions = f;
            Ok(())
        })
        .await?;
    let mut out = json!({
        "registryId": account,
        "repositoryName": repo.name.as_str(),
        "imageTagMutability": repo.tag_mutability,
    });
    if !repo.tag_mutability_exclusions.is_empty() {
        out["imageTagMutabilityExclusionFilters"] = Value::Array(repo.tag_mutability_exclusions);
    }
    Ok(out)
}
