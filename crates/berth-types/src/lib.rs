//! `berth-types`: the vocabulary every layer shares — typed names and ids, ARNs, the domain
//! resources, their state sets, and the one domain [`Error`].
//!
//! No I/O, no wire formats: `berth-api` converts wire shapes to and from these types.

pub mod ecs;
pub mod elb;
mod error;
mod ids;
pub mod oci;
pub mod shapes;

pub use error::{ElbCode, Error, IamCode};
pub use ids::{AccountId, ArnRef, Generation, Region, Timestamp};

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where this control plane lives: the account and region its ARNs carry.
#[derive(Debug, Clone)]
pub struct Scope {
    pub account: AccountId,
    pub region: Region,
}

impl Scope {
    /// `arn:aws:<service>:<region>:<account>:<resource>`.
    pub fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:aws:{service}:{}:{}:{resource}",
            self.region, self.account
        )
    }

    /// The resource path after `<kind>/` of an ARN of `service` in this account and region
    /// (`arn:aws:ecs:<region>:<account>:cluster/web` → `web`); `None` for any other string.
    pub fn arn_resource<'a>(&self, service: &str, kind: &str, arn: &'a str) -> Option<&'a str> {
        let a = ArnRef::parse(arn)?;
        (a.service == service
            && a.region == self.region.as_str()
            && a.account == self.account.as_str())
        .then(|| a.path_of(kind))
        .flatten()
    }

    pub fn root_arn(&self) -> String {
        format!("arn:aws:iam::{}:root", self.account)
    }
}

/// The caller, as proven by SigV4 verification (only `berth-api`'s verifier builds one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub account: AccountId,
    /// The region the request was signed for (for a registry token: the region it was issued
    /// in): the region whose resources the call acts on.
    pub region: Region,
    /// `arn:aws:iam::<account>:root`, `arn:aws:iam::<account>:user/<path><name>` or
    /// `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub arn: String,
    pub access_key_id: String,
    pub caller: Caller,
}

/// Who signed: the account's root, an IAM user (with its long-term key or a session of
/// `GetSessionToken`), or a session of a role (`AssumeRole`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Root,
    User {
        name: String,
        /// `AIDA…`.
        id: String,
    },
    Role {
        name: String,
        /// The role's `arn:aws:iam::<account>:role/<path><name>`.
        arn: String,
        /// `AROA…`.
        id: String,
        session: String,
        /// The session policy `AssumeRole` was given (`Policy`), and its `PolicyArns`.
        policy: Option<String>,
        policy_arns: Vec<String>,
    },
}

impl Principal {
    pub fn is_root(&self) -> bool {
        self.caller == Caller::Root
    }

    /// `GetCallerIdentity`'s `UserId`: the account for root, `AIDA…` for a user,
    /// `AROA…:<session>` for a role session.
    pub fn user_id(&self) -> String {
        match &self.caller {
            Caller::Root => self.account.as_str().to_string(),
            Caller::User { id, .. } => id.clone(),
            Caller::Role { id, session, .. } => format!("{id}:{session}"),
        }
    }
}

/// A resource tag. Order is kept as the caller gave it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// Merges `new` into `tags`: an existing key gets the new value.
pub fn tags_merge(tags: &mut Vec<Tag>, new: Vec<Tag>) {
    for t in new {
        match tags.iter_mut().find(|x| x.key == t.key) {
            Some(existing) => existing.value = t.value,
            None => tags.push(t),
        }
    }
}
