//! What enforcement asks on every request: who owns an access key, and the compiled identity
//! policies of a user or role. Both are cached until any IAM record changes (here or, through
//! the change feed, on another server): a decision then costs no store read and no parsing.

use super::entities::Entity;
use super::*;
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The owner of an access key, as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOwner {
    pub user: String,
    pub user_id: String,
    pub user_arn: String,
    pub secret: String,
    pub active: bool,
    pub last_used: Option<Timestamp>,
}

/// A user's or role's identity policies, compiled: its inline and attached policies, and its
/// groups' (a user's).
#[derive(Debug, Default)]
pub struct Identity {
    pub policies: Vec<berth_iam::Policy>,
    /// The request-context keys the policies read (`Policy::context_keys`): a decision needs
    /// only these in its context.
    pub context_keys: std::collections::BTreeSet<String>,
}

impl Identity {
    pub fn new(policies: Vec<berth_iam::Policy>) -> Identity {
        let mut context_keys = Default::default();
        for p in &policies {
            p.context_keys(&mut context_keys);
        }
        Identity {
            policies,
            context_keys,
        }
    }
}

/// The caches, cleared on every change of an IAM record.
#[derive(Default)]
pub(super) struct View {
    /// Bumped at every clear: a lookup that read the store before a clear does not cache.
    epoch: AtomicU64,
    keys: RwLock<HashMap<String, Option<Arc<KeyOwner>>>>,
    identities: RwLock<HashMap<String, Arc<Identity>>>,
    documents: RwLock<HashMap<String, Arc<berth_iam::Policy>>>,
}

/// Past this many entries a cache starts over (unknown keys are cached too).
const CACHED: usize = 10_000;

impl View {
    fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.keys.write().expect("keys").clear();
        self.identities.write().expect("identities").clear();
    }

    fn cached<V: Clone>(
        &self,
        map: &RwLock<HashMap<String, V>>,
        key: &str,
        load: impl FnOnce() -> Result<V, Error>,
    ) -> Result<V, Error> {
        if let Some(v) = map.read().expect("cache").get(key) {
            return Ok(v.clone());
        }
        let epoch = self.epoch.load(Ordering::SeqCst);
        let v = load()?;
        let mut m = map.write().expect("cache");
        if self.epoch.load(Ordering::SeqCst) == epoch {
            if m.len() >= CACHED {
                m.clear();
            }
            m.insert(key.to_string(), v.clone());
        }
        Ok(v)
    }
}

impl berth_store::Watcher for View {
    fn watches(&self, kind: Kind) -> bool {
        matches!(
            kind,
            Kind::IamUser | Kind::IamAccessKey | Kind::IamGroup | Kind::IamRole | Kind::IamPolicy
        )
    }
    fn changed(&self, _: Kind, _: &str, _: Option<&str>) {
        self.clear();
    }
    fn reset(&self) {
        self.clear();
    }
    fn committed(&self) {
        self.clear();
    }
}

impl Iam {
    /// The owner of access key `id`, if it is a user's.
    pub fn key_owner(&self, id: &str) -> Result<Option<Arc<KeyOwner>>, Error> {
        self.view.cached(&self.view.keys, id, || {
            let Some(k) = self.access_key(id)? else {
                return Ok(None);
            };
            let Ok(u) = self.user(&k.user) else {
                return Ok(None);
            };
            Ok(Some(Arc::new(KeyOwner {
                user_arn: self.arn("user", &u.path, &u.name),
                user: u.name,
                user_id: u.id,
                secret: k.secret,
                active: k.status == KeyStatus::Active,
                last_used: k.last_used.map(|l| l.at),
            })))
        })
    }

    /// The identity policies of user `name`.
    pub fn user_identity(&self, name: &str) -> Result<Arc<Identity>, Error> {
        self.view.cached(
            &self.view.identities,
            &format!("user\0{}", key(name)),
            || {
                let user = self.user(name)?;
                let mut policies = self.compile(&user)?;
                for g in &user.groups {
                    if let Ok(group) = self.group(g) {
                        policies.extend(self.compile(&group)?);
                    }
                }
                Ok(Arc::new(Identity::new(policies)))
            },
        )
    }

    /// The identity policies of role `name`.
    pub fn role_identity(&self, name: &str) -> Result<Arc<Identity>, Error> {
        self.view.cached(
            &self.view.identities,
            &format!("role\0{}", key(name)),
            || {
                let role = self.role(name)?;
                Ok(Arc::new(Identity::new(self.compile(&role)?)))
            },
        )
    }

    /// A policy document compiled (kept by its text: session and resource policies repeat).
    pub fn compiled(
        &self,
        text: &str,
        kind: berth_iam::Kind,
    ) -> Result<Arc<berth_iam::Policy>, Error> {
        let cache_key = format!("{kind:?}\0{text}");
        self.view.cached(&self.view.documents, &cache_key, || {
            check_document(text, kind).map(Arc::new)
        })
    }

    /// The document of a managed policy `arn`'s default version, compiled.
    pub fn managed_compiled(&self, arn: &str) -> Result<Option<Arc<berth_iam::Policy>>, Error> {
        self.default_document(arn)?
            .map(|d| self.compiled(&d, berth_iam::Kind::Identity))
            .transpose()
    }

    fn compile<E: Entity>(&self, e: &E) -> Result<Vec<berth_iam::Policy>, Error> {
        let g = e.grants();
        let mut out = Vec::with_capacity(g.inline.len() + g.attached.len());
        for doc in g.inline.values() {
            out.push(check_document(doc, berth_iam::Kind::Identity)?);
        }
        for arn in &g.attached {
            if let Some(doc) = self.default_document(arn)? {
                out.push(check_document(&doc, berth_iam::Kind::Identity)?);
            }
        }
        Ok(out)
    }
}
