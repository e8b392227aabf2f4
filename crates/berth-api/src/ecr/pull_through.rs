//! ECR pull-through cache rules: Create/Describe/Update/Delete/ValidatePullThroughCacheRule.
//! The cache itself — fetching on a pull — is `crate::pull_through`'s.
//!
//! The upstream is any OCI registry URL (`https://host[:port]`, `http://…`, or a bare host,
//! which means HTTPS), whatever `upstreamRegistry` says. Credentials: ECR keeps them in AWS
//! Secrets Manager and a rule names the secret (`credentialArn`,
//! `arn:aws:secretsmanager:<region>:<account>:secret:ecr-pullthroughcache/<name>`); Berth has
//! no Secrets Manager, so the ARN names a secret of Berth's configuration instead — a
//! `[[pull-through-cache.secret]]` of berth.toml whose `name` is the ARN's secret name
//! (`ecr-pullthroughcache/<name>`). A rule naming a secret Berth does not have is refused
//! (`SecretNotFoundException`).

use super::*;
use berth_registry::pull_through::PullThroughRule;

fn rule_out(cx: &Cx<'_>, r: &PullThroughRule) -> Value {
    let mut v = json!({
        "ecrRepositoryPrefix": r.prefix,
        "upstreamRegistryUrl": r.upstream_url,
        "createdAt": r.created_at.epoch_seconds(),
        "registryId": cx.region.scope.account.as_str(),
    });
    let optional = [
        ("upstreamRegistry", &r.upstream_registry),
        ("credentialArn", &r.credential_arn),
        ("customRoleArn", &r.custom_role_arn),
        ("upstreamRepositoryPrefix", &r.upstream_prefix),
    ];
    for (k, value) in optional {
        if let Some(x) = value {
            v[k] = Value::String(x.clone());
        }
    }
    if let Some(t) = r.updated_at {
        v["updatedAt"] = t.epoch_seconds().into();
    }
    v
}

/// A credential ARN must name a secret of Berth's configuration.
fn check_secret(cx: &Cx<'_>, arn: &Option<String>) -> Result<(), Error> {
    match arn {
        Some(a) if cx.state.upstream_secret(a).is_none() => Err(Error::coded(
            "SecretNotFoundException",
            format!(
                "The secret '{a}' does not exist: Berth keeps pull-through cache credentials in its configuration, as a [[pull-through-cache.secret]] named after the ARN's secret name"
            ),
        )),
        _ => Ok(()),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuleIn {
    ecr_repository_prefix: String,
    upstream_registry_url: Option<String>,
    upstream_registry: Option<String>,
    credential_arn: Option<String>,
    custom_role_arn: Option<String>,
    upstream_repository_prefix: Option<String>,
}

/// `CreatePullThroughCacheRule`.
pub(super) async fn create_rule(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: RuleIn = input(v)?;
    let url = i.upstream_registry_url.unwrap_or_default();
    berth_oci::Client::new(&url, berth_oci::Credentials::Anonymous).map_err(|e| {
        Error::InvalidParameter(format!(
            "Invalid parameter at 'upstreamRegistryUrl' failed to satisfy constraint: '{e}'"
        ))
    })?;
    check_secret(cx, &i.credential_arn)?;
    let rule = PullThroughRule {
        prefix: i.ecr_repository_prefix.trim_end_matches('/').to_string(),
        upstream_url: url,
        upstream_registry: i.upstream_registry,
        credential_arn: i.credential_arn,
        custom_role_arn: i.custom_role_arn,
        upstream_prefix: i.upstream_repository_prefix,
        created_at: berth_types::Timestamp::now(),
        updated_at: None,
    };
    let rule = cx.region.registry.pull_through_rule_create(rule).await?;
    Ok(rule_out(cx, &rule))
}

/// `DescribePullThroughCacheRules`.
pub(super) async fn describe_rules(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        ecr_repository_prefixes: Option<Vec<String>>,
        next_token: Option<String>,
        max_results: Option<i32>,
    }
    let i: In = input(v)?;
    let state = &*cx.region;
    let all = match &i.ecr_repository_prefixes {
        Some(p) => p
            .iter()
            .map(|p| state.registry.pull_through_rule(p.trim_end_matches('/')))
            .collect::<Result<Vec<_>, _>>()?,
        None => state.registry.pull_through_rules()?,
    };
    let scope = "DescribePullThroughCacheRules";
    let start = match &i.next_token {
        Some(t) => {
            let last = state.pager.decode(scope, t)?;
            all.iter()
                .position(|r| r.prefix > last)
                .unwrap_or(all.len())
        }
        None => 0,
    };
    let limit = i.max_results.unwrap_or(100) as usize;
    let page: Vec<&PullThroughRule> = all.iter().skip(start).take(limit).collect();
    let mut out = json!({
        "pullThroughCacheRules": page.iter().map(|r| rule_out(cx, r)).collect::<Vec<_>>(),
    });
    if start + page.len() < all.len()
        && let Some(last) = page.last()
    {
        out["nextToken"] = Value::String(state.pager.encode(scope, &last.prefix));
    }
    Ok(out)
}

/// `UpdatePullThroughCacheRule`.
pub(super) async fn update_rule(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: RuleIn = input(v)?;
    check_secret(cx, &i.credential_arn)?;
    let rule = cx
        .region
        .registry
        .pull_through_rule_update(
            i.ecr_repository_prefix.trim_end_matches('/'),
            i.credential_arn,
            i.custom_role_arn,
            berth_types::Timestamp::now(),
        )
        .await?;
    let mut out = rule_out(cx, &rule);
    if let Some(o) = out.as_object_mut() {
        for k in ["upstreamRegistryUrl", "createdAt", "upstreamRegistry"] {
            o.remove(k);
        }
    }
    Ok(out)
}

/// `DeletePullThroughCacheRule` (the repositories it filled stay).
pub(super) async fn delete_rule(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: RuleIn = input(v)?;
    let rule = cx
        .region
        .registry
        .pull_through_rule_delete(i.ecr_repository_prefix.trim_end_matches('/'))
        .await?;
    let mut out = rule_out(cx, &rule);
    if let Some(o) = out.as_object_mut() {
        o.remove("upstreamRegistry");
        o.remove("updatedAt");
    }
    Ok(out)
}

/// `ValidatePullThroughCacheRule`: whether the upstream answers and takes the credentials.
pub(super) async fn validate_rule(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let i: RuleIn = input(v)?;
    let rule = cx
        .region
        .registry
        .pull_through_rule(i.ecr_repository_prefix.trim_end_matches('/'))?;
    let failure = crate::pull_through::validate(cx.state, &rule).await;
    let mut out = rule_out(cx, &rule);
    if let Some(o) = out.as_object_mut() {
        for k in ["createdAt", "upstreamRegistry", "updatedAt"] {
            o.remove(k);
        }
    }
    out["isValid"] = Value::Bool(failure.is_none());
    if let Some(f) = failure {
        out["failure"] = Value::String(f);
    }
    Ok(out)
}
