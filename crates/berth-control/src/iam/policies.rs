//! Managed policies: customer-managed ones (with up to five versions) and the AWS-managed ones
//! Berth ships; attaching them to users, groups and roles.

use super::entities::Entity;
use super::*;
use crate::records::save;

/// A managed policy as `GetPolicy` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyView {
    pub name: String,
    pub path: String,
    pub arn: String,
    pub id: String,
    pub default_version: String,
    pub attachment_count: usize,
    pub description: Option<String>,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// AWS-managed (`arn:aws:iam::aws:policy/…`): read-only.
    pub aws_managed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionView {
    pub id: String,
    pub document: String,
    pub is_default: bool,
    pub created: Timestamp,
}

/// An attached policy as `ListAttached*Policies` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    pub name: String,
    pub arn: String,
}

/// When Berth's copies of the AWS-managed policies say they were created.
const AWS_MANAGED_CREATED: Timestamp = Timestamp(1_423_180_800_000);

/// The largest managed policy document (characters, whitespace not counted).
const POLICY_SIZE: usize = 6144;

/// The name of the policy an ARN names, and its path (`arn:…:policy/a/b/name` → `/a/b/`).
fn split_arn(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:aws:iam::")?;
    let (account, rest) = rest.split_once(':')?;
    let rest = rest.strip_prefix("policy")?;
    let cut = rest.rfind('/')?;
    Some((account, &rest[..=cut], &rest[cut + 1..]))
}

fn policy_not_found(arn: &str) -> Error {
    no_such(format!("Policy {arn} was not found."))
}

fn not_attachable(arn: &str) -> Error {
    no_such(format!("Policy {arn} does not exist or is not attachable."))
}

fn version_not_found(arn: &str, version: &str) -> Error {
    no_such(format!(
        "Policy {arn} version {version} does not exist or is not attachable."
    ))
}

fn check_size(document: &str) -> Result<(), Error> {
    if counted_len(document) > POLICY_SIZE {
        return Err(Error::iam(
            IamCode::LimitExceeded,
            format!("Cannot exceed quota for PolicySize: {POLICY_SIZE}"),
        ));
    }
    check_document(document, berth_iam::Kind::Identity).map(drop)
}

/// A stable id for an AWS-managed policy (`ANPA…`), from its name.
fn aws_policy_id(name: &str) -> String {
    use sha2::Digest;
    const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let hash = sha2::Sha256::digest(name.as_bytes());
    let mut id = String::from("ANPA");
    id.extend(
        hash.iter()
            .take(17)
            .map(|b| ID_CHARS[*b as usize % 32] as char),
    );
    id
}

impl Iam {
    fn customer_key(&self, arn: &str) -> Option<String> {
        let (account, _, name) = split_arn(arn)?;
        (account == self.account.as_str()).then(|| key(name))
    }

    /// How many users, groups and roles have `arn` attached.
    fn attachment_count(&self, arn: &str) -> Result<usize, Error> {
        fn count<E: Entity>(items: Vec<E>, arn: &str) -> usize {
            items
                .iter()
                .filter(|e| e.grants().attached.iter().any(|a| a == arn))
                .count()
        }
        Ok(count(self.users()?, arn) + count(self.groups()?, arn) + count(self.roles()?, arn))
    }

    fn customer_view(&self, p: &ManagedPolicy) -> Result<PolicyView, Error> {
        let arn = self.arn("policy", &p.path, &p.name);
        Ok(PolicyView {
            attachment_count: self.attachment_count(&arn)?,
            name: p.name.clone(),
            path: p.path.clone(),
            arn,
            id: p.id.clone(),
            default_version: p.default_version.clone(),
            description: p.description.clone(),
            created: p.created,
            updated: p.updated,
            aws_managed: false,
        })
    }

    fn aws_view(&self, m: &berth_iam::AwsManaged) -> Result<PolicyView, Error> {
        let arn = m.arn();
        Ok(PolicyView {
            attachment_count: self.attachment_count(&arn)?,
            name: m.name.to_string(),
            path: m.path.to_string(),
            arn,
            id: aws_policy_id(m.name),
            default_version: m.version.into(),
            description: None,
            created: AWS_MANAGED_CREATED,
            updated: AWS_MANAGED_CREATED,
            aws_managed: true,
        })
    }

    fn customer(&self, arn: &str) -> Result<Option<ManagedPolicy>, Error> {
        match self.customer_key(arn) {
            Some(k) => Ok(self
                .get::<ManagedPolicy>(Kind::IamPolicy, &k)?
                .filter(|p| self.arn("policy", &p.path, &p.name) == arn)),
            None => Ok(None),
        }
    }

    /// `CreatePolicy`.
    pub async fn create_policy(
        &self,
        name: &str,
        path: Option<&str>,
        document: String,
        description: Option<String>,
    ) -> Result<PolicyView, Error> {
        check_name("policyName", name, 128)?;
        let path = path.unwrap_or("/").to_string();
        check_path(&path)?;
        check_size(&document)?;
        let now = Timestamp::now();
        let policy = ManagedPolicy {
            name: name.to_string(),
            path,
            id: random_id("ANPA", 17),
            created: now,
            updated: now,
            description,
            default_version: "v1".into(),
            versions: vec![PolicyVersion {
                id: "v1".into(),
                document,
                created: now,
            }],
            next_version: 2,
        };
        let p = policy.clone();
        self.write_policy(move |tx| {
            if tx.get(Kind::IamPolicy, &key(&p.name))?.is_some() {
                return Err(Error::iam(
                    IamCode::EntityAlreadyExists,
                    format!(
                        "A policy called {} already exists. Duplicate names are not allowed.",
                        p.name
                    ),
                ));
            }
            save(tx, Kind::IamPolicy, &key(&p.name), None, &p, None)
        })
        .await?;
        self.customer_view(&policy)
    }

    async fn write_policy<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut berth_store::Tx<'_>) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.store.write(f).await
    }

    /// Changes a customer-managed policy in one write job (AWS-managed ones cannot change).
    async fn update_policy<T: Send + 'static>(
        &self,
        arn: &str,
        change: impl FnOnce(&mut ManagedPolicy) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        if berth_iam::aws_managed(arn).is_some() {
            return Err(Error::iam(
                IamCode::InvalidInput,
                format!("Policy {arn} is an AWS managed policy and cannot be changed."),
            ));
        }
        let k = self
            .customer_key(arn)
            .ok_or_else(|| policy_not_found(arn))?;
        let (arn, me) = (arn.to_string(), self.clone());
        self.write_policy(move |tx| {
            let (g, mut p) = load::<ManagedPolicy>(tx.get(Kind::IamPolicy, &k)?)?
                .filter(|(_, p)| me.arn("policy", &p.path, &p.name) == arn)
                .ok_or_else(|| policy_not_found(&arn))?;
            let out = change(&mut p)?;
            save(tx, Kind::IamPolicy, &k, None, &p, Some(g))?;
            Ok(out)
        })
        .await
    }

    /// `GetPolicy`.
    pub fn policy(&self, arn: &str) -> Result<PolicyView, Error> {
        if let Some(m) = berth_iam::aws_managed(arn) {
            return self.aws_view(m);
        }
        let p = self.customer(arn)?.ok_or_else(|| policy_not_found(arn))?;
        self.customer_view(&p)
    }

    /// `ListPolicies`: the AWS-managed ones, the account's, or both.
    pub fn policies(&self, aws: bool, local: bool) -> Result<Vec<PolicyView>, Error> {
        let mut out = Vec::new();
        if aws {
            for m in berth_iam::AWS_MANAGED {
                out.push(self.aws_view(m)?);
            }
        }
        if local {
            for p in self.all::<ManagedPolicy>(Kind::IamPolicy)? {
                out.push(self.customer_view(&p)?);
            }
        }
        Ok(out)
    }

    /// `DeletePolicy`: refused while attached or while it has versions besides the default.
    pub async fn delete_policy(&self, arn: &str) -> Result<(), Error> {
        if self.attachment_count(arn)? > 0 {
            return Err(Error::iam(
                IamCode::DeleteConflict,
                "Cannot delete a policy attached to entities.",
            ));
        }
        let k = self
            .customer_key(arn)
            .ok_or_else(|| policy_not_found(arn))?;
        let p = self.customer(arn)?.ok_or_else(|| policy_not_found(arn))?;
        if p.versions.len() > 1 {
            return Err(Error::iam(
                IamCode::DeleteConflict,
                "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.",
            ));
        }
        let arn = arn.to_string();
        self.write_policy(move |tx| {
            let rec = tx
                .get(Kind::IamPolicy, &k)?
                .ok_or_else(|| policy_not_found(&arn))?;
            tx.delete(Kind::IamPolicy, &k, rec.generation)?;
            Ok(())
        })
        .await
    }

    /// `CreatePolicyVersion`.
    pub async fn create_policy_version(
        &self,
        arn: &str,
        document: String,
        set_default: bool,
    ) -> Result<VersionView, Error> {
        check_size(&document)?;
        self.update_policy(arn, move |p| {
            if p.versions.len() >= VERSIONS_PER_POLICY {
                return Err(Error::iam(
                    IamCode::LimitExceeded,
                    "A managed policy can have up to 5 versions. Before you create a new version, you must delete an existing version.",
                ));
            }
            let now = Timestamp::now();
            let v = PolicyVersion {
                id: format!("v{}", p.next_version),
                document,
                created: now,
            };
            p.next_version += 1;
            p.updated = now;
            if set_default {
                p.default_version = v.id.clone();
            }
            p.versions.push(v.clone());
            Ok(VersionView {
                is_default: set_default,
                id: v.id,
                document: v.document,
                created: v.created,
            })
        })
        .await
    }

    /// A policy's versions (an AWS-managed one has one: its default).
    pub fn policy_versions(&self, arn: &str) -> Result<Vec<VersionView>, Error> {
        if let Some(m) = berth_iam::aws_managed(arn) {
            return Ok(vec![VersionView {
                id: m.version.into(),
                document: m.document.to_string(),
                is_default: true,
                created: AWS_MANAGED_CREATED,
            }]);
        }
        let p = self.customer(arn)?.ok_or_else(|| policy_not_found(arn))?;
        Ok(p.versions
            .iter()
            .rev()
            .map(|v| VersionView {
                is_default: v.id == p.default_version,
                id: v.id.clone(),
                document: v.document.clone(),
                created: v.created,
            })
            .collect())
    }

    /// `GetPolicyVersion`.
    pub fn policy_version(&self, arn: &str, version: &str) -> Result<VersionView, Error> {
        self.policy_versions(arn)?
            .into_iter()
            .find(|v| v.id == version)
            .ok_or_else(|| version_not_found(arn, version))
    }

    /// The document of a policy's default version, if the policy exists.
    pub fn default_document(&self, arn: &str) -> Result<Option<String>, Error> {
        if let Some(m) = berth_iam::aws_managed(arn) {
            return Ok(Some(m.document.to_string()));
        }
        Ok(self.customer(arn)?.and_then(|p| {
            p.versions
                .into_iter()
                .find(|v| v.id == p.default_version)
                .map(|v| v.document)
        }))
    }

    /// `DeletePolicyVersion` (never the default).
    pub async fn delete_policy_version(&self, arn: &str, version: &str) -> Result<(), Error> {
        let (a, version) = (arn.to_string(), version.to_string());
        self.update_policy(arn, move |p| {
            if p.default_version == version {
                return Err(Error::iam(
                    IamCode::DeleteConflict,
                    "Cannot delete the default version of a policy.",
                ));
            }
            let before = p.versions.len();
            p.versions.retain(|v| v.id != version);
            if p.versions.len() == before {
                return Err(version_not_found(&a, &version));
            }
            Ok(())
        })
        .await
    }

    /// `SetDefaultPolicyVersion`.
    pub async fn set_default_version(&self, arn: &str, version: &str) -> Result<(), Error> {
        let (a, version) = (arn.to_string(), version.to_string());
        self.update_policy(arn, move |p| {
            if !p.versions.iter().any(|v| v.id == version) {
                return Err(version_not_found(&a, &version));
            }
            p.default_version = version;
            p.updated = Timestamp::now();
            Ok(())
        })
        .await
    }

    /// `Attach{User,Group,Role}Policy`: at most ten per entity; attaching twice is a no-op.
    pub async fn attach(&self, kind: EntityKind, entity: &str, arn: &str) -> Result<(), Error> {
        if berth_iam::aws_managed(arn).is_none() && self.customer(arn)?.is_none() {
            return Err(not_attachable(arn));
        }
        let arn = arn.to_string();
        self.grants_update(kind, entity, move |g| {
            if g.attached.contains(&arn) {
                return Ok(());
            }
            if g.attached.len() >= MANAGED_POLICIES_PER_ENTITY {
                return Err(Error::iam(
                    IamCode::LimitExceeded,
                    format!(
                        "Cannot exceed quota for {}: {MANAGED_POLICIES_PER_ENTITY}",
                        kind.attach_quota_name()
                    ),
                ));
            }
            g.attached.push(arn);
            Ok(())
        })
        .await
    }

    /// `Detach{User,Group,Role}Policy`.
    pub async fn detach(&self, kind: EntityKind, entity: &str, arn: &str) -> Result<(), Error> {
        let arn = arn.to_string();
        self.grants_update(kind, entity, move |g| {
            let before = g.attached.len();
            g.attached.retain(|a| *a != arn);
            if g.attached.len() == before {
                return Err(policy_not_found(&arn));
            }
            Ok(())
        })
        .await
    }

    /// The managed policies attached to an entity.
    pub fn attached(&self, kind: EntityKind, entity: &str) -> Result<Vec<AttachedPolicy>, Error> {
        let (_, _, grants) = self.grants(kind, entity)?;
        Ok(grants
            .attached
            .into_iter()
            .map(|arn| AttachedPolicy {
                name: split_arn(&arn).map_or(arn.as_str(), |p| p.2).to_string(),
                arn,
            })
            .collect())
    }
}
