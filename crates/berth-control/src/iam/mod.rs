//! IAM: users, access keys, groups, roles, managed and inline policies (one set per account:
//! IAM is global), and what enforcement asks of them — a key's secret and owner, a
//! principal's identity policies, compiled once and kept until an IAM record changes.
//!
//! Records are keyed by lower-cased name (IAM names are unique regardless of case); the
//! documents keep the name as given. Policy documents are checked with `berth-iam` when
//! written and compiled again when read for a decision.

mod authority;
mod entities;
mod policies;

pub use authority::{Identity, KeyOwner};
pub use entities::{NewRole, inline_not_found};
pub use policies::{AttachedPolicy, PolicyView, VersionView};

use crate::records::load;
use berth_store::{Kind, Store};
use berth_types::{AccountId, Error, IamCode, Tag, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// The IAM of one account.
#[derive(Clone)]
pub struct Iam {
    account: AccountId,
    store: Store,
    view: Arc<authority::View>,
}

/// What a user, group or role carries: inline policies by name, attached managed policies by
/// ARN (in the order attached).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    #[serde(default)]
    pub inline: BTreeMap<String, String>,
    #[serde(default)]
    pub attached: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub path: String,
    /// `AIDA…`.
    pub id: String,
    pub created: Timestamp,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The groups it is in (their names as given).
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub grants: Grants,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub path: String,
    /// `AGPA…`.
    pub id: String,
    pub created: Timestamp,
    #[serde(default)]
    pub grants: Grants,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Role {
    pub name: String,
    pub path: String,
    /// `AROA…`.
    pub id: String,
    pub created: Timestamp,
    /// The trust policy (`AssumeRolePolicyDocument`).
    pub trust: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Seconds, 3,600 – 43,200.
    pub max_session: u32,
    #[serde(default)]
    pub tags: Vec<Tag>,
    #[serde(default)]
    pub grants: Grants,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyStatus {
    Active,
    Inactive,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "Active",
            KeyStatus::Inactive => "Inactive",
        }
    }

    pub fn parse(s: &str) -> Option<KeyStatus> {
        match s {
            "Active" => Some(KeyStatus::Active),
            "Inactive" => Some(KeyStatus::Inactive),
            _ => None,
        }
    }
}

/// When and where an access key was last used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUsed {
    pub at: Timestamp,
    pub service: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    /// The owner's name as given.
    pub user: String,
    pub secret: String,
    pub status: KeyStatus,
    pub created: Timestamp,
    #[serde(default)]
    pub last_used: Option<LastUsed>,
}

/// A customer-managed policy with its versions (at most five, one the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManagedPolicy {
    pub name: String,
    pub path: String,
    /// `ANPA…`.
    pub id: String,
    pub created: Timestamp,
    pub updated: Timestamp,
    #[serde(default)]
    pub description: Option<String>,
    pub default_version: String,
    pub versions: Vec<PolicyVersion>,
    /// The number of the next version (`v<n>`): numbers are never reused.
    pub next_version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyVersion {
    pub id: String,
    pub document: String,
    pub created: Timestamp,
}

/// Limits (IAM's default quotas).
pub const ACCESS_KEYS_PER_USER: usize = 2;
pub const MANAGED_POLICIES_PER_ENTITY: usize = 10;
pub const VERSIONS_PER_POLICY: usize = 5;
pub const MAX_SESSION_DEFAULT: u32 = 3600;

/// An IAM-style unique id or access key id: `prefix` and `n` characters of `[A-Z2-7]`.
pub fn random_id(prefix: &str, n: usize) -> String {
    const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::from(prefix);
    out.extend((0..n).map(|_| ID_CHARS[rand::random_range(0..ID_CHARS.len())] as char));
    out
}

/// A secret access key: 40 characters of base64's alphabet.
pub fn random_secret() -> String {
    const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    (0..40)
        .map(|_| SECRET_CHARS[rand::random_range(0..SECRET_CHARS.len())] as char)
        .collect()
}

/// The three kinds of entity that carry policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    User,
    Group,
    Role,
}

impl EntityKind {
    fn kind(self) -> Kind {
        match self {
            EntityKind::User => Kind::IamUser,
            EntityKind::Group => Kind::IamGroup,
            EntityKind::Role => Kind::IamRole,
        }
    }

    /// As IAM's messages name it (`user`, `group`, `role`).
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::User => "user",
            EntityKind::Group => "group",
            EntityKind::Role => "role",
        }
    }

    fn title(self) -> &'static str {
        match self {
            EntityKind::User => "User",
            EntityKind::Group => "Group",
            EntityKind::Role => "Role",
        }
    }

    /// The most characters a name of this kind may have.
    fn max_name(self) -> usize {
        match self {
            EntityKind::User | EntityKind::Role => 64,
            EntityKind::Group => 128,
        }
    }

    /// The most characters of its inline policies together (whitespace not counted).
    fn inline_quota(self) -> usize {
        match self {
            EntityKind::User => 2048,
            EntityKind::Group => 5120,
            EntityKind::Role => 10240,
        }
    }

    /// The quota named in the LimitExceeded message for attached policies.
    fn attach_quota_name(self) -> &'static str {
        match self {
            EntityKind::User => "PoliciesPerUser",
            EntityKind::Group => "PoliciesPerGroup",
            EntityKind::Role => "PoliciesPerRole",
        }
    }
}

pub(crate) fn no_such(message: impl Into<String>) -> Error {
    Error::iam(IamCode::NoSuchEntity, message)
}

pub(crate) fn invalid(message: impl Into<String>) -> Error {
    Error::iam(IamCode::InvalidInput, message)
}

fn validation(message: impl Into<String>) -> Error {
    Error::iam(IamCode::ValidationError, message)
}

fn not_found(kind: EntityKind, name: &str) -> Error {
    no_such(format!(
        "The {} with name {name} cannot be found.",
        kind.as_str()
    ))
}

/// Checks an entity or policy name: 1..=max of `[\w+=,.@-]`.
pub(crate) fn check_name(member: &str, name: &str, max: usize) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.chars().count() <= max
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{name}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+ and have length at most {max}"
        )))
    }
}

/// Checks a path: `/` or `/…/` of printable ASCII, at most 512 characters.
pub(crate) fn check_path(path: &str) -> Result<(), Error> {
    let ok = path.len() <= 512
        && path.starts_with('/')
        && path.ends_with('/')
        && path.bytes().all(|b| (0x21..0x7f).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(validation(format!(
            "The specified value for path is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters: {path}"
        )))
    }
}

/// Parses and checks a policy document for `kind` of use: IAM's `MalformedPolicyDocument`.
pub fn check_document(text: &str, kind: berth_iam::Kind) -> Result<berth_iam::Policy, Error> {
    berth_iam::Policy::parse(text, kind)
        .map_err(|m| Error::iam(IamCode::MalformedPolicyDocument, m.0))
}

/// A document's size as IAM counts it (whitespace not counted).
fn counted_len(text: &str) -> usize {
    text.chars().filter(|c| !c.is_whitespace()).count()
}

/// The key of an entity or customer-managed policy.
fn key(name: &str) -> String {
    name.to_lowercase()
}

impl Iam {
    /// The IAM of `account` over `store` (its global, unregional records).
    pub fn new(account: AccountId, store: Store) -> Iam {
        let view = Arc::new(authority::View::default());
        store.watch(view.clone());
        Iam {
            account,
            store,
            view,
        }
    }

    pub fn account(&self) -> &AccountId {
        &self.account
    }

    /// `arn:aws:iam::<account>:<kind>/<path-without-leading-slash><name>`.
    pub fn arn(&self, kind: &str, path: &str, name: &str) -> String {
        format!("arn:aws:iam::{}:{kind}{path}{name}", self.account)
    }

    fn get<T: serde::de::DeserializeOwned>(
        &self,
        kind: Kind,
        key: &str,
    ) -> Result<Option<T>, Error> {
        let rec = self.store.read(|r| r.get(kind, key))?;
        Ok(load::<T>(rec)?.map(|(_, v)| v))
    }

    fn all<T: serde::de::DeserializeOwned>(&self, kind: Kind) -> Result<Vec<T>, Error> {
        let rows = self.store.read(|r| crate::records::all::<T>(r, kind, ""))?;
        Ok(rows.into_iter().map(|(_, v)| v).collect())
    }
}

/// One page of an IAM listing: `Marker`, `MaxItems` (1–1000, default 100), `IsTruncated`.
pub struct Listing<T> {
    pub items: Vec<T>,
    pub marker: Option<String>,
}

/// Pages `items` (sorted by `sort_key`) after the item whose key the marker names.
pub fn page<T>(
    mut items: Vec<T>,
    sort_key: impl Fn(&T) -> String,
    marker: Option<&str>,
    max_items: Option<i32>,
    pager: &crate::paging::Pager,
    scope: &str,
) -> Result<Listing<T>, Error> {
    let max = match max_items {
        None => 100,
        Some(n @ 1..=1000) => n as usize,
        Some(n) => {
            return Err(validation(format!(
                "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
            )));
        }
    };
    items.sort_by_key(&sort_key);
    if let Some(m) = marker {
        let after = pager
            .decode(scope, m)
            .map_err(|_| invalid("Invalid Marker."))?;
        items.retain(|i| sort_key(i) > after);
    }
    let marker = (items.len() > max).then(|| pager.encode(scope, &sort_key(&items[max - 1])));
    items.truncate(max);
    Ok(Listing { items, marker })
}
