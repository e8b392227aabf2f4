//! Users, groups, roles and access keys; the inline and attached policies all three carry.

use super::*;
use crate::records::save;
use berth_store::Tx;
use berth_types::Generation;
use serde::de::DeserializeOwned;

/// What users, groups and roles share: a name, a path, an id and their grants.
pub(crate) trait Entity: Serialize + DeserializeOwned + Send + 'static {
    const KIND: EntityKind;
    fn name(&self) -> &str;
    fn path(&self) -> &str;
    fn grants(&self) -> &Grants;
}

macro_rules! entity {
    ($t:ty, $kind:expr) => {
        impl Entity for $t {
            const KIND: EntityKind = $kind;
            fn name(&self) -> &str {
                &self.name
            }
            fn path(&self) -> &str {
                &self.path
            }
            fn grants(&self) -> &Grants {
                &self.grants
            }
        }
    };
}
entity!(User, EntityKind::User);
entity!(Group, EntityKind::Group);
entity!(Role, EntityKind::Role);

/// `CreateRole`'s input, checked.
#[derive(Debug, Clone)]
pub struct NewRole {
    pub name: String,
    pub path: Option<String>,
    pub trust: String,
    pub description: Option<String>,
    pub max_session: Option<i32>,
    pub tags: Vec<Tag>,
}

fn already_exists(kind: EntityKind, name: &str) -> Error {
    Error::iam(
        IamCode::EntityAlreadyExists,
        format!("{} with name {name} already exists.", kind.title()),
    )
}

/// Reads an entity inside a write job.
pub(crate) fn entity_in<E: Entity>(tx: &Tx<'_>, name: &str) -> Result<(Generation, E), Error> {
    load::<E>(tx.get(E::KIND.kind(), &key(name))?)?.ok_or_else(|| not_found(E::KIND, name))
}

fn check_max_session(n: i32) -> Result<u32, Error> {
    if (3600..=43200).contains(&n) {
        Ok(n as u32)
    } else {
        Err(validation(format!(
            "1 validation error detected: Value '{n}' at 'maxSessionDuration' failed to satisfy constraint: Member must have value greater than or equal to 3600 and less than or equal to 43200"
        )))
    }
}

fn check_tags(tags: &[Tag]) -> Result<(), Error> {
    if tags.len() > 50 {
        return Err(Error::iam(
            IamCode::LimitExceeded,
            "The number of tags has reached the maximum limit.",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for t in tags {
        if !seen.insert(t.key.to_lowercase()) {
            return Err(invalid(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            ));
        }
    }
    Ok(())
}

impl Iam {
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        self.store.write(f).await
    }

    /// Changes an entity in one write job; returns it changed.
    pub(crate) async fn update_entity<E: Entity + Clone>(
        &self,
        name: &str,
        change: impl FnOnce(&mut E) -> Result<(), Error> + Send + 'static,
    ) -> Result<E, Error> {
        let name = name.to_string();
        self.write(move |tx| {
            let (g, mut e) = entity_in::<E>(tx, &name)?;
            change(&mut e)?;
            save(tx, E::KIND.kind(), &key(&name), None, &e, Some(g))?;
            Ok(e)
        })
        .await
    }

    /// An entity by name.
    pub(crate) fn entity<E: Entity>(&self, name: &str) -> Result<E, Error> {
        self.get::<E>(E::KIND.kind(), &key(name))?
            .ok_or_else(|| not_found(E::KIND, name))
    }

    // ---- users ----

    pub async fn create_user(
        &self,
        name: &str,
        path: Option<&str>,
        tags: Vec<Tag>,
    ) -> Result<User, Error> {
        check_name("userName", name, EntityKind::User.max_name())?;
        let path = path.unwrap_or("/").to_string();
        check_path(&path)?;
        check_tags(&tags)?;
        let user = User {
            name: name.to_string(),
            path,
            id: random_id("AIDA", 17),
            created: Timestamp::now(),
            tags,
            groups: Vec::new(),
            grants: Grants::default(),
        };
        let u = user.clone();
        self.write(move |tx| {
            if tx.get(Kind::IamUser, &key(&u.name))?.is_some() {
                return Err(already_exists(EntityKind::User, &u.name));
            }
            save(tx, Kind::IamUser, &key(&u.name), None, &u, None)
        })
        .await?;
        Ok(user)
    }

    pub fn user(&self, name: &str) -> Result<User, Error> {
        self.entity::<User>(name)
    }

    pub fn users(&self) -> Result<Vec<User>, Error> {
        self.all(Kind::IamUser)
    }

    /// `UpdateUser`: a new name and/or path (the keys and groups follow).
    pub async fn update_user(
        &self,
        name: &str,
        new_name: Option<&str>,
        new_path: Option<&str>,
    ) -> Result<(), Error> {
        if let Some(n) = new_name {
            check_name("newUserName", n, EntityKind::User.max_name())?;
        }
        if let Some(p) = new_path {
            check_path(p)?;
        }
        let (name, new_name, new_path) = (
            name.to_string(),
            new_name.map(str::to_string),
            new_path.map(str::to_string),
        );
        self.write(move |tx| {
            let (g, mut user) = entity_in::<User>(tx, &name)?;
            if let Some(p) = new_path {
                user.path = p;
            }
            let Some(to) = new_name.filter(|n| *n != user.name) else {
                return save(tx, Kind::IamUser, &key(&name), None, &user, Some(g));
            };
            if key(&to) != key(&name) && tx.get(Kind::IamUser, &key(&to))?.is_some() {
                return Err(already_exists(EntityKind::User, &to));
            }
            for (id, mut k) in keys_of(tx, &user.name)? {
                let g = tx
                    .get(Kind::IamAccessKey, &id)?
                    .map(|r| r.generation)
                    .ok_or_else(|| no_such("The access key vanished."))?;
                k.user = to.clone();
                save(tx, Kind::IamAccessKey, &id, None, &k, Some(g))?;
            }
            tx.delete(Kind::IamUser, &key(&name), g)?;
            user.name = to;
            save(tx, Kind::IamUser, &key(&user.name), None, &user, None)
        })
        .await
    }

    /// `DeleteUser`: refused while it has keys, policies or groups, as IAM does.
    pub async fn delete_user(&self, name: &str) -> Result<(), Error> {
        let name = name.to_string();
        self.write(move |tx| {
            let (g, user) = entity_in::<User>(tx, &name)?;
            let conflict = |what: &str| {
                Error::iam(
                    IamCode::DeleteConflict,
                    format!("Cannot delete entity, must {what} first."),
                )
            };
            if !keys_of(tx, &user.name)?.is_empty() {
                return Err(conflict("delete access keys"));
            }
            if !user.grants.inline.is_empty() {
                return Err(conflict("delete policies"));
            }
            if !user.grants.attached.is_empty() {
                return Err(conflict("detach all policies"));
            }
            if !user.groups.is_empty() {
                return Err(conflict("remove user from group"));
            }
            tx.delete(Kind::IamUser, &key(&name), g)?;
            Ok(())
        })
        .await
    }

    // ---- access keys ----

    /// `CreateAccessKey`: at most two per user.
    pub async fn create_access_key(&self, user: &str) -> Result<AccessKey, Error> {
        let user = user.to_string();
        let new = AccessKey {
            id: random_id("AKIA", 16),
            user: String::new(),
            secret: random_secret(),
            status: KeyStatus::Active,
            created: Timestamp::now(),
            last_used: None,
        };
        self.write(move |tx| {
            let (_, u) = entity_in::<User>(tx, &user)?;
            if keys_of(tx, &u.name)?.len() >= ACCESS_KEYS_PER_USER {
                return Err(Error::iam(
                    IamCode::LimitExceeded,
                    format!("Cannot exceed quota for AccessKeysPerUser: {ACCESS_KEYS_PER_USER}"),
                ));
            }
            let key = AccessKey {
                user: u.name,
                ..new
            };
            crate::records::create_new(tx, Kind::IamAccessKey, &key.id, None, &key)?;
            Ok(key)
        })
        .await
    }

    /// A node's identity (`berth up`'s local agent): user `name` under `/berth/` with the
    /// managed policy `policy` attached and an active access key — created the first time,
    /// the same ones on every later start (a detached policy is attached again).
    pub async fn node_user(&self, name: &str, policy: &str) -> Result<AccessKey, Error> {
        match self.create_user(name, Some("/berth/"), Vec::new()).await {
            Ok(_) => {}
            Err(Error::Iam {
                code: IamCode::EntityAlreadyExists,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
        self.attach(EntityKind::User, name, policy).await?;
        let active = self
            .access_keys(name)?
            .into_iter()
            .find(|k| k.status == KeyStatus::Active);
        match active {
            Some(k) => Ok(k),
            None => self.create_access_key(name).await,
        }
    }

    /// A user's access keys.
    pub fn access_keys(&self, user: &str) -> Result<Vec<AccessKey>, Error> {
        let u = self.user(user)?;
        let mut keys: Vec<AccessKey> = self
            .all::<AccessKey>(Kind::IamAccessKey)?
            .into_iter()
            .filter(|k| k.user == u.name)
            .collect();
        keys.sort_by_key(|k| k.created);
        Ok(keys)
    }

    /// An access key by id (any user's).
    pub fn access_key(&self, id: &str) -> Result<Option<AccessKey>, Error> {
        self.get(Kind::IamAccessKey, id)
    }

    fn key_not_found(id: &str) -> Error {
        no_such(format!("The Access Key with id {id} cannot be found."))
    }

    /// `UpdateAccessKey` / `DeleteAccessKey`: the key must be the user's.
    pub async fn change_access_key(
        &self,
        user: &str,
        id: &str,
        status: Option<KeyStatus>,
    ) -> Result<(), Error> {
        let (user, id) = (user.to_string(), id.to_string());
        self.write(move |tx| {
            let (_, u) = entity_in::<User>(tx, &user)?;
            let (g, mut k) = load::<AccessKey>(tx.get(Kind::IamAccessKey, &id)?)?
                .filter(|(_, k)| k.user == u.name)
                .ok_or_else(|| Iam::key_not_found(&id))?;
            match status {
                Some(s) => {
                    k.status = s;
                    save(tx, Kind::IamAccessKey, &id, None, &k, Some(g))
                }
                None => Ok(tx.delete(Kind::IamAccessKey, &id, g)?),
            }
        })
        .await
    }

    /// Notes a key's use (at most every few minutes: enforcement calls it on every request).
    pub async fn note_key_used(&self, id: &str, service: &str, region: &str) -> Result<(), Error> {
        let (id, service, region) = (id.to_string(), service.to_string(), region.to_string());
        let now = Timestamp::now();
        self.write(move |tx| {
            let Some((g, mut k)) = load::<AccessKey>(tx.get(Kind::IamAccessKey, &id)?)? else {
                return Ok(());
            };
            k.last_used = Some(LastUsed {
                at: now,
                service,
                region,
            });
            save(tx, Kind::IamAccessKey, &id, None, &k, Some(g))
        })
        .await
    }

    // ---- groups ----

    pub async fn create_group(&self, name: &str, path: Option<&str>) -> Result<Group, Error> {
        check_name("groupName", name, EntityKind::Group.max_name())?;
        let path = path.unwrap_or("/").to_string();
        check_path(&path)?;
        let group = Group {
            name: name.to_string(),
            path,
            id: random_id("AGPA", 17),
            created: Timestamp::now(),
            grants: Grants::default(),
        };
        let g = group.clone();
        self.write(move |tx| {
            if tx.get(Kind::IamGroup, &key(&g.name))?.is_some() {
                return Err(already_exists(EntityKind::Group, &g.name));
            }
            save(tx, Kind::IamGroup, &key(&g.name), None, &g, None)
        })
        .await?;
        Ok(group)
    }

    pub fn group(&self, name: &str) -> Result<Group, Error> {
        self.entity::<Group>(name)
    }

    pub fn groups(&self) -> Result<Vec<Group>, Error> {
        self.all(Kind::IamGroup)
    }

    /// The users in a group.
    pub fn group_members(&self, group: &Group) -> Result<Vec<User>, Error> {
        Ok(self
            .users()?
            .into_iter()
            .filter(|u| u.groups.iter().any(|g| key(g) == key(&group.name)))
            .collect())
    }

    /// `DeleteGroup`: refused while it has members or policies.
    pub async fn delete_group(&self, name: &str) -> Result<(), Error> {
        let name = name.to_string();
        self.write(move |tx| {
            let (g, group) = entity_in::<Group>(tx, &name)?;
            let members = crate::records::all::<User>(tx, Kind::IamUser, "")?
                .into_iter()
                .any(|(_, u)| u.groups.iter().any(|x| key(x) == key(&group.name)));
            let conflict = |what: &str| {
                Error::iam(
                    IamCode::DeleteConflict,
                    format!("Cannot delete entity, must {what} first."),
                )
            };
            if members {
                return Err(conflict("remove users from group"));
            }
            if !group.grants.inline.is_empty() {
                return Err(conflict("delete policies"));
            }
            if !group.grants.attached.is_empty() {
                return Err(conflict("detach all policies"));
            }
            tx.delete(Kind::IamGroup, &key(&name), g)?;
            Ok(())
        })
        .await
    }

    /// `AddUserToGroup` (`add`) / `RemoveUserFromGroup`.
    pub async fn group_membership(&self, group: &str, user: &str, add: bool) -> Result<(), Error> {
        let (group, user) = (group.to_string(), user.to_string());
        self.write(move |tx| {
            let (_, grp) = entity_in::<Group>(tx, &group)?;
            let (g, mut u) = entity_in::<User>(tx, &user)?;
            let present = u.groups.iter().position(|x| key(x) == key(&grp.name));
            match (add, present) {
                (true, None) => u.groups.push(grp.name),
                (true, Some(_)) => return Ok(()),
                (false, Some(i)) => {
                    u.groups.remove(i);
                }
                (false, None) => {
                    return Err(no_such(format!(
                        "The user with name {} cannot be found in group {}.",
                        u.name, grp.name
                    )));
                }
            }
            save(tx, Kind::IamUser, &key(&u.name), None, &u, Some(g))
        })
        .await
    }

    // ---- roles ----

    pub async fn create_role(&self, new: NewRole) -> Result<Role, Error> {
        check_name("roleName", &new.name, EntityKind::Role.max_name())?;
        let path = new.path.unwrap_or_else(|| "/".into());
        check_path(&path)?;
        check_trust(&new.trust)?;
        check_tags(&new.tags)?;
        let max_session = new
            .max_session
            .map(check_max_session)
            .transpose()?
            .unwrap_or(MAX_SESSION_DEFAULT);
        let role = Role {
            name: new.name,
            path,
            id: random_id("AROA", 17),
            created: Timestamp::now(),
            trust: new.trust,
            description: new.description,
            max_session,
            tags: new.tags,
            grants: Grants::default(),
        };
        let r = role.clone();
        self.write(move |tx| {
            if tx.get(Kind::IamRole, &key(&r.name))?.is_some() {
                return Err(already_exists(EntityKind::Role, &r.name));
            }
            save(tx, Kind::IamRole, &key(&r.name), None, &r, None)
        })
        .await?;
        Ok(role)
    }

    pub fn role(&self, name: &str) -> Result<Role, Error> {
        self.entity::<Role>(name)
    }

    pub fn roles(&self) -> Result<Vec<Role>, Error> {
        self.all(Kind::IamRole)
    }

    /// `UpdateRole`: description and/or maximum session duration.
    pub async fn update_role(
        &self,
        name: &str,
        description: Option<String>,
        max_session: Option<i32>,
    ) -> Result<(), Error> {
        let max = max_session.map(check_max_session).transpose()?;
        self.update_entity::<Role>(name, move |r| {
            if let Some(d) = description {
                r.description = Some(d);
            }
            if let Some(m) = max {
                r.max_session = m;
            }
            Ok(())
        })
        .await
        .map(drop)
    }

    /// `UpdateAssumeRolePolicy`.
    pub async fn update_trust(&self, name: &str, trust: String) -> Result<(), Error> {
        check_trust(&trust)?;
        self.update_entity::<Role>(name, move |r| {
            r.trust = trust;
            Ok(())
        })
        .await
        .map(drop)
    }

    /// `DeleteRole`: refused while it has policies.
    pub async fn delete_role(&self, name: &str) -> Result<(), Error> {
        let name = name.to_string();
        self.write(move |tx| {
            let (g, role) = entity_in::<Role>(tx, &name)?;
            if !role.grants.attached.is_empty() {
                return Err(Error::iam(
                    IamCode::DeleteConflict,
                    "Cannot delete entity, must detach all policies first.",
                ));
            }
            if !role.grants.inline.is_empty() {
                return Err(Error::iam(
                    IamCode::DeleteConflict,
                    "Cannot delete entity, must delete policies first.",
                ));
            }
            tx.delete(Kind::IamRole, &key(&name), g)?;
            Ok(())
        })
        .await
    }

    // ---- tags (users and roles) ----

    /// `TagUser`/`TagRole` (`add`) and `UntagUser`/`UntagRole` (`remove`).
    pub async fn tag(
        &self,
        kind: EntityKind,
        name: &str,
        add: Vec<Tag>,
        remove: Vec<String>,
    ) -> Result<(), Error> {
        fn change(tags: &mut Vec<Tag>, add: Vec<Tag>, remove: &[String]) -> Result<(), Error> {
            check_tags(&add)?;
            for t in add {
                match tags.iter_mut().find(|x| x.key.eq_ignore_ascii_case(&t.key)) {
                    Some(x) => x.value = t.value,
                    None => tags.push(t),
                }
            }
            tags.retain(|t| !remove.iter().any(|r| r.eq_ignore_ascii_case(&t.key)));
            check_tags(tags)
        }
        match kind {
            EntityKind::User => {
                self.update_entity::<User>(name, move |u| change(&mut u.tags, add, &remove))
                    .await?;
            }
            EntityKind::Role => {
                self.update_entity::<Role>(name, move |r| change(&mut r.tags, add, &remove))
                    .await?;
            }
            EntityKind::Group => return Err(invalid("Groups have no tags.")),
        }
        Ok(())
    }

    // ---- inline policies ----

    /// `Put{User,Group,Role}Policy`.
    pub async fn put_inline(
        &self,
        kind: EntityKind,
        entity: &str,
        policy_name: &str,
        document: String,
    ) -> Result<(), Error> {
        check_name("policyName", policy_name, 128)?;
        check_document(&document, berth_iam::Kind::Identity)?;
        let (policy_name, entity_name) = (policy_name.to_string(), entity.to_string());
        let change = move |g: &mut Grants| {
            g.inline.insert(policy_name, document);
            let total: usize = g.inline.values().map(|d| counted_len(d)).sum();
            if total > kind.inline_quota() {
                return Err(Error::iam(
                    IamCode::LimitExceeded,
                    format!(
                        "Maximum policy size of {} bytes exceeded for {} {entity_name}",
                        kind.inline_quota(),
                        kind.as_str()
                    ),
                ));
            }
            Ok(())
        };
        self.grants_update(kind, entity, change).await
    }

    /// `Delete{User,Group,Role}Policy`.
    pub async fn delete_inline(
        &self,
        kind: EntityKind,
        entity: &str,
        policy_name: &str,
    ) -> Result<(), Error> {
        let policy_name = policy_name.to_string();
        self.grants_update(kind, entity, move |g| {
            g.inline
                .remove(&policy_name)
                .map(drop)
                .ok_or_else(|| inline_not_found(kind, &policy_name))
        })
        .await
    }

    /// An entity's grants.
    pub fn grants(&self, kind: EntityKind, name: &str) -> Result<(String, String, Grants), Error> {
        fn of<E: Entity>(e: E) -> (String, String, Grants) {
            (
                e.name().to_string(),
                e.path().to_string(),
                e.grants().clone(),
            )
        }
        Ok(match kind {
            EntityKind::User => of(self.entity::<User>(name)?),
            EntityKind::Group => of(self.entity::<Group>(name)?),
            EntityKind::Role => of(self.entity::<Role>(name)?),
        })
    }

    /// Changes an entity's grants in one write job.
    pub(crate) async fn grants_update(
        &self,
        kind: EntityKind,
        name: &str,
        change: impl FnOnce(&mut Grants) -> Result<(), Error> + Send + 'static,
    ) -> Result<(), Error> {
        match kind {
            EntityKind::User => {
                self.update_entity::<User>(name, |e| change(&mut e.grants))
                    .await?;
            }
            EntityKind::Group => {
                self.update_entity::<Group>(name, |e| change(&mut e.grants))
                    .await?;
            }
            EntityKind::Role => {
                self.update_entity::<Role>(name, |e| change(&mut e.grants))
                    .await?;
            }
        }
        Ok(())
    }
}

pub fn inline_not_found(kind: EntityKind, policy: &str) -> Error {
    no_such(format!(
        "The {} policy with name {policy} cannot be found.",
        kind.as_str()
    ))
}

/// Checks a trust policy: a policy of its kind, at most 2,048 characters.
fn check_trust(text: &str) -> Result<(), Error> {
    if counted_len(text) > 2048 {
        return Err(Error::iam(
            IamCode::LimitExceeded,
            "Cannot exceed quota for ACLSizePerRole: 2048",
        ));
    }
    check_document(text, berth_iam::Kind::Trust).map(drop)
}

/// The access keys of the user named `user` (as given), with their ids.
fn keys_of(tx: &Tx<'_>, user: &str) -> Result<Vec<(String, AccessKey)>, Error> {
    Ok(
        crate::records::all::<AccessKey>(tx, Kind::IamAccessKey, "")?
            .into_iter()
            .filter(|(_, k)| k.user == user)
            .collect(),
    )
}
