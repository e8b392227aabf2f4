//! Pull-through cache rules (Create/Describe/Update/DeletePullThroughCacheRule): which
//! repository names are filled from which upstream registry.
//!
//! Each rule is a `registry-setting` record `pull-through/<prefix>`, at most [`MAX_RULES`]. A
//! rule with prefix `p` serves the repositories `p/<upstream repository>`; the prefix `ROOT`
//! serves every repository no other rule's prefix covers. With `upstreamRepositoryPrefix` `u`
//! the upstream repository is `u/<rest>` (`ROOT`, the default: `<rest>`). The fetching itself —
//! an HTTP client of the upstream — is `berth-api`'s; images land in repositories created
//! from the `PULL_THROUGH_CACHE` creation templates and are ordinary images from then on.

use crate::{Registry, decode, encode, list_all};
use berth_store::Kind;
use berth_types::{Error, Timestamp};
use serde::{Deserialize, Serialize};

const PREFIX: &str = "pull-through/";
/// Rules per registry (ECR's quota).
pub const MAX_RULES: usize = 50;
/// The prefix that covers every repository.
pub const ROOT: &str = "ROOT";

/// A pull-through cache rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullThroughRule {
    /// `ecrRepositoryPrefix`.
    pub prefix: String,
    /// `upstreamRegistryUrl`, as given.
    pub upstream_url: String,
    pub upstream_registry: Option<String>,
    /// `credentialArn`: names a secret of Berth's configuration.
    pub credential_arn: Option<String>,
    pub custom_role_arn: Option<String>,
    /// `upstreamRepositoryPrefix` (`ROOT` when absent).
    pub upstream_prefix: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Option<Timestamp>,
}

impl PullThroughRule {
    /// The upstream repository of local repository `name`, if this rule covers it.
    pub fn upstream_repository(&self, name: &str) -> Option<String> {
        let rest = if self.prefix == ROOT {
            name
        } else {
            name.strip_prefix(self.prefix.trim_end_matches('/'))?
                .strip_prefix('/')?
        };
        if rest.is_empty() {
            return None;
        }
        Some(match self.upstream_prefix.as_deref() {
            None | Some(ROOT) => rest.to_string(),
            Some(u) => format!("{}/{rest}", u.trim_end_matches('/')),
        })
    }
}

fn record_key(prefix: &str) -> String {
    format!("{PREFIX}{prefix}")
}

/// `PullThroughCacheRuleNotFoundException` (in the words moto mirrors from ECR).
fn not_found(account: &str, prefix: &str) -> Error {
    Error::coded(
        "PullThroughCacheRuleNotFoundException",
        format!(
            "The pull through cache rule with Amazon ECR repository prefix '{prefix}' does not exist in the registry with id '{account}'"
        ),
    )
}

/// The rule of `rules` that serves repository `name` (the longest prefix covering it, else
/// `ROOT`) and the upstream repository it maps to.
pub fn rule_for(rules: &[PullThroughRule], name: &str) -> Option<(PullThroughRule, String)> {
    let specific = rules
        .iter()
        .filter(|r| r.prefix != ROOT)
        .filter_map(|r| r.upstream_repository(name).map(|u| (r, u)))
        .max_by_key(|(r, _)| r.prefix.len());
    let root = rules
        .iter()
        .find(|r| r.prefix == ROOT)
        .and_then(|r| r.upstream_repository(name).map(|u| (r, u)));
    specific.or(root).map(|(r, u)| (r.clone(), u))
}

/// Whether a `registry-setting` key (without its region) is a pull-through cache rule's.
pub fn is_rule_key(key: &str) -> bool {
    key.starts_with(PREFIX)
}

impl Registry {
    /// Every rule, by prefix.
    pub fn pull_through_rules(&self) -> Result<Vec<PullThroughRule>, Error> {
        let rows = self
            .store
            .read(|r| list_all(r, Kind::RegistrySetting, PREFIX))?;
        rows.into_iter()
            .map(|r| decode::<PullThroughRule>(r).map(|(_, v)| v))
            .collect()
    }

    /// The rule of `prefix`, or `PullThroughCacheRuleNotFoundException`.
    pub fn pull_through_rule(&self, prefix: &str) -> Result<PullThroughRule, Error> {
        let rec = self
            .store
            .read(|r| r.get(Kind::RegistrySetting, &record_key(prefix)))?;
        rec.map(|r| decode::<PullThroughRule>(r).map(|(_, v)| v))
            .transpose()?
            .ok_or_else(|| not_found(self.registry_id(), prefix))
    }

    /// The rule that serves repository `name` (see [`rule_for`]).
    pub fn pull_through_rule_for(
        &self,
        name: &str,
    ) -> Result<Option<(PullThroughRule, String)>, Error> {
        Ok(rule_for(&self.pull_through_rules()?, name))
    }

    /// `CreatePullThroughCacheRule` (checked by the caller).
    pub async fn pull_through_rule_create(
        &self,
        rule: PullThroughRule,
    ) -> Result<PullThroughRule, Error> {
        let account = self.registry_id().to_string();
        self.store
            .write(move |tx| {
                let existing = list_all(tx, Kind::RegistrySetting, PREFIX)?.len();
                let k = record_key(&rule.prefix);
                if tx.get(Kind::RegistrySetting, &k)?.is_some() {
                    return Err(Error::coded(
                        "PullThroughCacheRuleAlreadyExistsException",
                        format!(
                            "The pull through cache rule with Amazon ECR repository prefix '{}' already exists in the registry with id '{account}'",
                            rule.prefix
                        ),
                    ));
                }
                if existing >= MAX_RULES {
                    return Err(Error::LimitExceeded(format!(
                        "The maximum number of pull through cache rules ({MAX_RULES}) for the registry with id '{account}' has been reached"
                    )));
                }
                tx.insert(Kind::RegistrySetting, &k, None, &encode(&rule)?)?;
                Ok(rule)
            })
            .await
    }

    /// `UpdatePullThroughCacheRule`: new credentials (and role).
    pub async fn pull_through_rule_update(
        &self,
        prefix: &str,
        credential_arn: Option<String>,
        custom_role_arn: Option<String>,
        now: Timestamp,
    ) -> Result<PullThroughRule, Error> {
        let (k, account, prefix) = (
            record_key(prefix),
            self.registry_id().to_string(),
            prefix.to_string(),
        );
        self.store
            .write(move |tx| {
                let rec = tx
                    .get(Kind::RegistrySetting, &k)?
                    .ok_or_else(|| not_found(&account, &prefix))?;
                let (g, mut rule) = decode::<PullThroughRule>(rec)?;
                if credential_arn.is_some() {
                    rule.credential_arn = credential_arn;
                }
                if custom_role_arn.is_some() {
                    rule.custom_role_arn = custom_role_arn;
                }
                rule.updated_at = Some(now);
                tx.update(Kind::RegistrySetting, &k, g, None, &encode(&rule)?)?;
                Ok(rule)
            })
            .await
    }

    /// `DeletePullThroughCacheRule`: the rule as it was (its cached repositories stay).
    pub async fn pull_through_rule_delete(&self, prefix: &str) -> Result<PullThroughRule, Error> {
        self.setting_delete(record_key(prefix), not_found(self.registry_id(), prefix))
            .await
    }
}

impl Registry {
    /// Notes that the image `digest` of `repo` was found current upstream at `now` (its tag
    /// is checked again a day later).
    pub async fn image_upstream_checked(
        &self,
        repo: &str,
        digest: &berth_types::oci::Digest,
        now: Timestamp,
    ) -> Result<(), Error> {
        let n = self.require_repo(repo)?;
        let k = crate::key(&n, digest.as_str());
        self.store
            .write(move |tx| {
                let Some(rec) = tx.get(Kind::Image, &k)? else {
                    return Ok(());
                };
                let (g, mut img) = decode::<crate::Image>(rec)?;
                img.upstream_checked_at = Some(now);
                tx.update(Kind::Image, &k, g, None, &encode(&img)?)?;
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(prefix: &str, upstream_prefix: Option<&str>) -> PullThroughRule {
        PullThroughRule {
            prefix: prefix.into(),
            upstream_url: "registry-1.docker.io".into(),
            upstream_registry: None,
            credential_arn: None,
            custom_role_arn: None,
            upstream_prefix: upstream_prefix.map(str::to_string),
            created_at: Timestamp(0),
            updated_at: None,
        }
    }

    #[test]
    fn pull_through_rules_map_local_names_to_upstream_ones() {
        let hub = rule("docker-hub", None);
        assert_eq!(
            hub.upstream_repository("docker-hub/library/nginx")
                .as_deref(),
            Some("library/nginx")
        );
        assert_eq!(hub.upstream_repository("docker-hubx/nginx"), None);
        assert_eq!(hub.upstream_repository("docker-hub"), None);
        let prefixed = rule("hub", Some("library"));
        assert_eq!(
            prefixed.upstream_repository("hub/nginx").as_deref(),
            Some("library/nginx")
        );
        assert_eq!(
            rule(ROOT, None).upstream_repository("a/b").as_deref(),
            Some("a/b")
        );
    }
}
