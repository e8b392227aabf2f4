//! Repository creation templates (Create/Describe/Update/DeleteRepositoryCreationTemplate):
//! the settings a repository gets when Berth creates it on a client's behalf — on a push to a
//! repository that does not exist (`CREATE_ON_PUSH`), when replication copies an image into one
//! (`REPLICATION`), when the pull-through cache fills one (`PULL_THROUGH_CACHE`).
//!
//! Each template is a `registry-setting` record `template/<prefix>`. A template's prefix is a
//! namespace: `prod` applies to `prod/…` (and `prod/team` to `prod/team/…`); the longest
//! matching prefix wins, and `ROOT` applies to every repository no other template matches (the
//! user guide's "Repository creation templates"). Without a template, replication and the
//! pull-through cache create repositories with ECR's defaults (mutable tags, AES256, no
//! scanning on push) and a push to a missing repository fails with `NAME_UNKNOWN`, as on ECR.

use crate::{CreateRepository, Registry, Repository, decode, encode, list_all};
use berth_store::Kind;
use berth_types::{Error, Tag, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const PREFIX: &str = "template/";

/// The template prefix that applies to every repository.
pub const ROOT: &str = "ROOT";

/// What a template is used for (`appliedFor`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppliedFor {
    Replication,
    PullThroughCache,
    CreateOnPush,
}

impl AppliedFor {
    pub fn as_str(self) -> &'static str {
        match self {
            AppliedFor::Replication => "REPLICATION",
            AppliedFor::PullThroughCache => "PULL_THROUGH_CACHE",
            AppliedFor::CreateOnPush => "CREATE_ON_PUSH",
        }
    }

    pub fn parse(s: &str) -> Option<AppliedFor> {
        match s {
            "REPLICATION" => Some(AppliedFor::Replication),
            "PULL_THROUGH_CACHE" => Some(AppliedFor::PullThroughCache),
            "CREATE_ON_PUSH" => Some(AppliedFor::CreateOnPush),
            _ => None,
        }
    }
}

/// A repository creation template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub prefix: String,
    pub description: Option<String>,
    /// `encryptionConfiguration`, as given.
    pub encryption: Option<Value>,
    pub resource_tags: Vec<Tag>,
    pub tag_mutability: Option<String>,
    pub tag_mutability_exclusions: Vec<Value>,
    pub repository_policy: Option<String>,
    pub lifecycle_policy: Option<String>,
    pub applied_for: Vec<AppliedFor>,
    pub custom_role_arn: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Template {
    /// Whether the template applies to repository `name` (ignoring `ROOT`).
    fn covers(&self, name: &str) -> bool {
        let p = self.prefix.trim_end_matches('/');
        name.strip_prefix(p)
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

fn not_found(account: &str, prefix: &str) -> Error {
    Error::coded(
        "TemplateNotFoundException",
        format!(
            "The repository creation template with the prefix '{prefix}' does not exist in the registry with id '{account}'"
        ),
    )
}

fn record_key(prefix: &str) -> String {
    format!("{PREFIX}{prefix}")
}

impl Registry {
    /// Every template, by prefix.
    pub fn templates_list(&self) -> Result<Vec<Template>, Error> {
        let rows = self
            .store
            .read(|r| list_all(r, Kind::RegistrySetting, PREFIX))?;
        rows.into_iter()
            .map(|r| decode::<Template>(r).map(|(_, t)| t))
            .collect()
    }

    /// The template of `prefix`, or `TemplateNotFoundException`.
    pub fn template_get(&self, prefix: &str) -> Result<Template, Error> {
        let rec = self
            .store
            .read(|r| r.get(Kind::RegistrySetting, &record_key(prefix)))?;
        rec.map(|r| decode::<Template>(r).map(|(_, t)| t))
            .transpose()?
            .ok_or_else(|| not_found(self.registry_id(), prefix))
    }

    /// `CreateRepositoryCreationTemplate` (the caller has checked the settings).
    pub async fn template_create(&self, t: Template) -> Result<Template, Error> {
        let account = self.registry_id().to_string();
        self.store
            .write(move |tx| {
                let k = record_key(&t.prefix);
                match tx.insert(Kind::RegistrySetting, &k, None, &encode(&t)?) {
                    Err(Error::Conflict) => Err(Error::coded(
                        "TemplateAlreadyExistsException",
                        format!(
                            "The repository creation template with the prefix '{}' already exists in the registry with id '{account}'",
                            t.prefix
                        ),
                    )),
                    other => other.map(|_| t),
                }
            })
            .await
    }

    /// Changes a template in one transaction.
    pub async fn template_update(
        &self,
        prefix: &str,
        change: impl FnOnce(&mut Template) -> Result<(), Error> + Send + 'static,
    ) -> Result<Template, Error> {
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
                let (g, mut t) = decode::<Template>(rec)?;
                change(&mut t)?;
                tx.update(Kind::RegistrySetting, &k, g, None, &encode(&t)?)?;
                Ok(t)
            })
            .await
    }

    /// `DeleteRepositoryCreationTemplate`: the template as it was.
    pub async fn template_delete(&self, prefix: &str) -> Result<Template, Error> {
        self.setting_delete(record_key(prefix), not_found(self.registry_id(), prefix))
            .await
    }

    /// The template that applies to repository `name` for `purpose`: the longest prefix
    /// covering it, else `ROOT` (a template not applied for `purpose` does not count).
    pub fn template_for(&self, name: &str, purpose: AppliedFor) -> Result<Option<Template>, Error> {
        let all = self.templates_list()?;
        let usable = |t: &&Template| t.applied_for.contains(&purpose);
        let specific = all
            .iter()
            .filter(usable)
            .filter(|t| t.prefix != ROOT && t.covers(name))
            .max_by_key(|t| t.prefix.trim_end_matches('/').len());
        let root = all.iter().filter(usable).find(|t| t.prefix == ROOT);
        Ok(specific.or(root).cloned())
    }

    /// Creates repository `name` for `purpose` from the template that applies, or with ECR's
    /// defaults when none does — except for `CREATE_ON_PUSH`, which needs a template (`None`
    /// then). A repository created meanwhile by someone else is returned as it is.
    pub async fn repository_create_for(
        &self,
        name: &str,
        purpose: AppliedFor,
    ) -> Result<Option<Repository>, Error> {
        let template = self.template_for(name, purpose)?;
        if template.is_none() && purpose == AppliedFor::CreateOnPush {
            return Ok(None);
        }
        let t = template.as_ref();
        let cmd = CreateRepository {
            name: name.to_string(),
            tag_mutability: t.and_then(|t| t.tag_mutability.clone()),
            tag_mutability_exclusions: t
                .map(|t| t.tag_mutability_exclusions.clone())
                .unwrap_or_default(),
            scanning: None,
            encryption: t.and_then(|t| t.encryption.clone()),
            tags: t.map(|t| t.resource_tags.clone()).unwrap_or_default(),
            policy: t.and_then(|t| t.repository_policy.clone()),
        };
        let lifecycle = t.and_then(|t| t.lifecycle_policy.clone());
        match self.repository_create_with(cmd, lifecycle).await {
            Ok(r) => {
                tracing::info!(
                    repository = name,
                    purpose = purpose.as_str(),
                    template = t.map(|t| t.prefix.as_str()),
                    "repository created"
                );
                Ok(Some(r))
            }
            Err(Error::RepositoryAlreadyExists(_)) => self.repository_get(name).map(Some),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(prefix: &str) -> Template {
        Template {
            prefix: prefix.into(),
            description: None,
            encryption: None,
            resource_tags: Vec::new(),
            tag_mutability: None,
            tag_mutability_exclusions: Vec::new(),
            repository_policy: None,
            lifecycle_policy: None,
            applied_for: vec![AppliedFor::CreateOnPush],
            custom_role_arn: None,
            created_at: Timestamp(0),
            updated_at: Timestamp(0),
        }
    }

    #[test]
    fn templates_cover_their_namespace() {
        assert!(template("prod").covers("prod/web"));
        assert!(template("prod/").covers("prod/web"));
        assert!(template("prod/team").covers("prod/team/web"));
        assert!(!template("prod").covers("production/web"));
        assert!(!template("prod").covers("prod"));
    }
}
