//! ECR policies: wire input → domain command, domain view → wire output.

use super::*;

/// `SetRepositoryPolicy` / `GetRepositoryPolicy` / `DeleteRepositoryPolicy`.
pub(super) async fn set_repository_policy(
    cx: &Cx<'_>,
    op: EcrOp,
    v: Value,
) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let account = cx.region.scope.account.as_str();
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        registry_id: Option<String>,
        repository_name: String,
        policy_text: Option<String>,
    }
    let i: In = input(v)?;
    check_registry(cx, &i.registry_id)?;
    let no_policy = |name: &str| {
        Error::PolicyNotFound(format!(
            "Repository policy does not exist for the repository with name '{name}' in the registry with id '{account}'"
        ))
    };
    let policy = match op {
        EcrOp::SetRepositoryPolicy => {
            let text = i.policy_text.clone().unwrap_or_default();
            validate_policy(&text)?;
            registry
                .repository_update(&i.repository_name, move |r| {
                    r.policy = Some(text);
                    Ok(())
                })
                .await?
                .policy
        }
        EcrOp::GetRepositoryPolicy => registry.repository_get(&i.repository_name)?.policy,
        _ => {
            let current = registry.repository_get(&i.repository_name)?;
            if current.policy.is_none() {
                return Err(no_policy(&i.repository_name));
            }
            registry
                .repository_update(&i.repository_name, |r| {
                    r.policy = None;
                    Ok(())
                })
                .await?;
            current.policy
        }
    };
    let text = policy.ok_or_else(|| no_policy(&i.repository_name))?;
    Ok(json!({"registryId": account, "repositoryName": i.repository_name, "policyText": text}))
}
