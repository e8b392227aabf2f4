//! ECR policies: a repository's (`SetRepositoryPolicy` …) and the registry's
//! (`PutRegistryPolicy` …). Both are IAM resource policies, checked as IAM checks them.

use super::*;
use crate::authorize::{Ask, allows};

/// `Invalid parameter at 'PolicyText' …`: ECR's answer to a policy it refuses.
fn invalid_policy(what: &str, why: &str) -> Error {
    Error::InvalidParameter(format!(
        "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid {what} policy provided'{why}"
    ))
}

/// Checks a repository policy: an IAM resource policy (each statement names a `Principal`).
fn check_repository_policy(text: &str) -> Result<(), Error> {
    berth_iam::Policy::parse(text, berth_iam::Kind::Resource)
        .map(|_| ())
        .map_err(|e| invalid_policy("repository", &format!(": {e}")))
}

/// The actions ECR enforces at the registry level: a registry policy may grant no others.
const REGISTRY_ACTIONS: [&str; 4] = [
    "ecr:replicateimage",
    "ecr:batchimportupstreamimage",
    "ecr:createrepository",
    "ecr:*",
];

/// Checks a registry policy: a resource policy granting only what ECR enforces there.
fn check_registry_policy(text: &str) -> Result<(), Error> {
    let policy = berth_iam::Policy::parse(text, berth_iam::Kind::Resource)
        .map_err(|_| invalid_policy("registry", ""))?;
    let allowed = policy.statements.iter().all(|st| {
        !st.action_text.negated
            && st
                .action_text
                .items
                .iter()
                .all(|a| REGISTRY_ACTIONS.contains(&a.to_ascii_lowercase().as_str()))
    });
    if allowed {
        Ok(())
    } else {
        Err(invalid_policy("registry", ""))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RepositoryPolicyIn {
    repository_name: String,
    policy_text: Option<String>,
    #[serde(default)]
    force: bool,
}

/// `SetRepositoryPolicy` / `GetRepositoryPolicy` / `DeleteRepositoryPolicy`.
pub(super) async fn set_repository_policy(
    cx: &Cx<'_>,
    op: EcrOp,
    v: Value,
) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let account = cx.region.scope.account.as_str();
    let i: RepositoryPolicyIn = input(v)?;
    let no_policy = |name: &str| {
        Error::PolicyNotFound(format!(
            "Repository policy does not exist for the repository with name '{name}' in the registry with id '{account}'"
        ))
    };
    let policy = match op {
        EcrOp::SetRepositoryPolicy => {
            let text = i.policy_text.clone().unwrap_or_default();
            check_repository_policy(&text)?;
            registry.repository_get(&i.repository_name)?;
            if !i.force {
                check_not_locked_out(cx, &i.repository_name, &text)?;
            }
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

/// ECR's lock-out check: without `force`, a policy under which the caller could no longer
/// set the repository's policy is refused.
fn check_not_locked_out(cx: &Cx<'_>, repository: &str, text: &str) -> Result<(), Error> {
    let Ok(policy) = cx.state.iam().compiled(text, berth_iam::Kind::Resource) else {
        return Ok(());
    };
    let resources = [cx
        .region
        .scope
        .arn("ecr", &format!("repository/{repository}"))];
    let ask = Ask {
        resource_policy: Some(&policy),
        ..Ask::new("ecr:SetRepositoryPolicy", &resources)
    };
    if allows(cx.state, cx.principal, &cx.origin, &ask) {
        Ok(())
    } else {
        Err(Error::InvalidParameter(format!(
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'The policy would prevent {} from setting another policy on the repository; set force to set it anyway'",
            cx.principal.arn
        )))
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RegistryPolicyIn {
    policy_text: Option<String>,
}

/// `PutRegistryPolicy` / `GetRegistryPolicy` / `DeleteRegistryPolicy`.
pub(super) async fn put_registry_policy(cx: &Cx<'_>, op: EcrOp, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let account = cx.region.scope.account.as_str();
    let i: RegistryPolicyIn = input(v)?;
    let text = match op {
        EcrOp::PutRegistryPolicy => {
            let text = i.policy_text.unwrap_or_default();
            check_registry_policy(&text)?;
            registry.registry_policy_put(text.clone()).await?;
            text
        }
        EcrOp::GetRegistryPolicy => registry.registry_policy_required()?,
        _ => registry.registry_policy_delete().await?,
    };
    Ok(json!({"registryId": account, "policyText": text}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_policies_grant_only_registry_level_actions() {
        let policy = |actions: &str| {
            format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::111122223333:root"}},"Action":{actions},"Resource":"*"}}]}}"#
            )
        };
        assert!(
            check_registry_policy(&policy(r#"["ecr:ReplicateImage","ecr:CreateRepository"]"#))
                .is_ok()
        );
        assert!(check_registry_policy(&policy(r#""ecr:*""#)).is_ok());
        let refused = check_registry_policy(&policy(r#""ecr:BatchGetImage""#)).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "Invalid parameter at 'PolicyText' failed to satisfy constraint: 'Invalid registry policy provided'"
        );
        assert!(check_registry_policy("{}").is_err());
    }
}
