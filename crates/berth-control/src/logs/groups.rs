//! Log groups: create, delete, describe (prefix or case-insensitive pattern, class,
//! identifiers, pages), retention, tags (`TagResource` and the legacy `TagLogGroup` forms).
//!
//! Deleting a group removes its record, its streams and metric filters at once and leaves
//! its chunks to the sweeper (`retention.rs`): a new group of the same name is a new
//! incarnation whose keys cannot meet the old ones.

use super::records::{GroupClass, GroupDoc, StreamDoc, SweepDoc, chunk_prefix, new_incarnation};
use super::{Logs, group_not_found, invalid, key_of, name_error, scope_hash, token_of};
use crate::paging::Page;
use crate::records::{all, decode, load, save};
use berth_store::{Kind, ListQuery};
use berth_types::Error;
use std::collections::BTreeMap;

/// Tags a log group may have.
const MAX_TAGS: usize = 50;
/// DescribeLogGroups' default and largest page.
const PAGE: usize = 50;

/// A CreateLogGroup.
#[derive(Debug, Clone, Default)]
pub struct CreateGroup {
    pub name: String,
    pub kms_key_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    pub class: Option<GroupClass>,
    pub deletion_protection: bool,
}

/// A log group as DescribeLogGroups shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LogGroupView {
    pub name: String,
    pub created: i64,
    pub retention_days: Option<u32>,
    pub class: GroupClass,
    pub kms_key_id: Option<String>,
    pub stored_bytes: i64,
    pub metric_filter_count: u32,
    pub deletion_protection: bool,
}

/// DescribeLogGroups' filters.
#[derive(Debug, Clone, Default)]
pub struct GroupFilter {
    pub prefix: Option<String>,
    /// Case-insensitive substring (`logGroupNamePattern`).
    pub pattern: Option<String>,
    pub class: Option<GroupClass>,
    /// Only these groups (names), in name order.
    pub names: Option<Vec<String>>,
}

fn view(name: &str, g: &GroupDoc) -> LogGroupView {
    LogGroupView {
        name: name.to_string(),
        created: g.created,
        retention_days: g.retention,
        class: g.class,
        kms_key_id: g.kms.clone(),
        stored_bytes: g.bytes.max(0),
        metric_filter_count: g.filters,
        deletion_protection: g.protected,
    }
}

/// Checks tag keys and values beyond the model's lengths.
fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), Error> {
    if let Some(k) = tags
        .keys()
        .find(|k| k.to_ascii_lowercase().starts_with("aws:"))
    {
        return Err(invalid(format!(
            "Tag keys starting with 'aws:' are reserved for AWS use: {k}"
        )));
    }
    Ok(())
}

fn too_many_tags() -> Error {
    Error::coded(
        "TooManyTagsException",
        format!("A resource can have no more than {MAX_TAGS} tags."),
    )
}

impl Logs {
    /// CreateLogGroup.
    pub async fn group_create(&self, c: CreateGroup) -> Result<(), Error> {
        berth_logs::check_new_log_group_name(&c.name).map_err(name_error)?;
        check_tags(&c.tags)?;
        let doc = GroupDoc {
            created: self.clock.now().0,
            retention: None,
            class: c.class.unwrap_or_default(),
            kms: c.kms_key_id,
            tags: c.tags,
            inc: new_incarnation(),
            seq: 0,
            bytes: 0,
            filters: 0,
            protected: c.deletion_protection,
        };
        self.store
            .write(move |tx| {
                if tx.get(Kind::LogGroup, &c.name)?.is_some() {
                    return Err(Error::coded(
                        "ResourceAlreadyExistsException",
                        "The specified log group already exists",
                    ));
                }
                save(tx, Kind::LogGroup, &c.name, None, &doc, None)
            })
            .await
    }

    /// DeleteLogGroup: the group, its streams and metric filters now; its events by the
    /// sweeper.
    pub async fn group_delete(&self, name: &str) -> Result<(), Error> {
        berth_logs::check_log_group_name(name).map_err(name_error)?;
        let name = name.to_string();
        self.store
            .write(move |tx| {
                let Some((g, doc)) = load::<GroupDoc>(tx.get(Kind::LogGroup, &name)?)? else {
                    return Err(group_not_found());
                };
                if doc.protected {
                    return Err(Error::coded(
                        "ValidationException",
                        format!("Log group {name} has deletion protection enabled. Disable it before deleting the log group."),
                    ));
                }
                tx.delete(Kind::LogGroup, &name, g)?;
                let prefix = format!("{name}\t");
                for kind in [Kind::LogStream, Kind::LogMetricFilter] {
                    let q = ListQuery {
                        prefix: &prefix,
                        limit: usize::MAX >> 1,
                        ..Default::default()
                    };
                    for r in tx.list(kind, &q)? {
                        tx.delete(kind, &r.key, r.generation)?;
                    }
                }
                let sweep = format!("{name}\t{}", doc.inc);
                save(tx, Kind::LogSweep, &sweep, None, &SweepDoc::default(), None)
            })
            .await?;
        self.background.activate(crate::background::LOG_RETENTION);
        Ok(())
    }

    /// DescribeLogGroups: groups by name, filtered, `limit` (≤ 50) per page.
    pub fn groups_describe(
        &self,
        f: &GroupFilter,
        limit: Option<usize>,
        token: Option<&str>,
    ) -> Result<Page<LogGroupView>, Error> {
        if f.prefix.is_some() && f.pattern.is_some() {
            return Err(invalid(
                "LogGroup name prefix and LogGroup name pattern are mutually exclusive parameters.",
            ));
        }
        if f.names.is_some() && (f.prefix.is_some() || f.pattern.is_some()) {
            return Err(invalid(
                "logGroupIdentifiers cannot be used with logGroupNamePrefix or logGroupNamePattern.",
            ));
        }
        let scope = format!("DescribeLogGroups:{}", scope_hash(&[]));
        let after = token.map(|t| key_of(&self.pager, &scope, t)).transpose()?;
        let limit = limit.unwrap_or(PAGE).clamp(1, PAGE);
        let pattern = f.pattern.as_ref().map(|p| p.to_lowercase());
        let wanted = |name: &str, g: &GroupDoc| {
            pattern
                .as_ref()
                .is_none_or(|p| name.to_lowercase().contains(p.as_str()))
                && f.class.is_none_or(|c| c == g.class)
                && f.names.as_ref().is_none_or(|n| n.iter().any(|x| x == name))
        };
        let prefix = f.prefix.clone().unwrap_or_default();
        let mut items = Vec::new();
        let mut last = after.clone();
        let mut more = false;
        self.store.read(|r| {
            loop {
                let batch = r.list(
                    Kind::LogGroup,
                    &ListQuery {
                        prefix: &prefix,
                        after: last.as_deref(),
                        limit: 500,
                        ..Default::default()
                    },
                )?;
                let exhausted = batch.len() < 500;
                for rec in batch {
                    let g: GroupDoc = decode(&rec.doc, &rec.key)?;
                    if items.len() == limit {
                        more = true;
                        return Ok(());
                    }
                    last = Some(rec.key.clone());
                    if wanted(&rec.key, &g) {
                        items.push(view(&rec.key, &g));
                    }
                }
                if exhausted {
                    return Ok(());
                }
            }
        })?;
        // The token names the last group returned; only when another may follow.
        let next_token = match (more, items.last()) {
            (true, Some(v)) => Some(token_of(&self.pager, &scope, &v.name)),
            _ => None,
        };
        Ok(Page { items, next_token })
    }

    /// One group's view.
    pub fn group_describe(&self, name: &str) -> Result<LogGroupView, Error> {
        Ok(view(name, &self.group_doc(name)?))
    }

    /// PutRetentionPolicy.
    pub async fn retention_put(&self, name: &str, days: i64) -> Result<(), Error> {
        berth_logs::check_log_group_name(name).map_err(name_error)?;
        let days = berth_logs::check_retention_days(days).map_err(name_error)?;
        self.group_update(name, move |g| {
            g.retention = Some(days);
            Ok(())
        })
        .await?;
        self.background.activate(crate::background::LOG_RETENTION);
        Ok(())
    }

    /// DeleteRetentionPolicy.
    pub async fn retention_delete(&self, name: &str) -> Result<(), Error> {
        berth_logs::check_log_group_name(name).map_err(name_error)?;
        self.group_update(name, |g| {
            g.retention = None;
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// A read-modify-write of a group's record.
    async fn group_update(
        &self,
        name: &str,
        f: impl FnOnce(&mut GroupDoc) -> Result<(), Error> + Send + 'static,
    ) -> Result<GroupDoc, Error> {
        let name = name.to_string();
        self.store
            .write(move |tx| {
                let Some((g, mut doc)) = load::<GroupDoc>(tx.get(Kind::LogGroup, &name)?)? else {
                    return Err(group_not_found());
                };
                f(&mut doc)?;
                save(tx, Kind::LogGroup, &name, None, &doc, Some(g))?;
                Ok(doc)
            })
            .await
    }

    /// The group an ARN (without `:*`, as TagResource takes it) names.
    pub fn group_of_arn(&self, arn: &str) -> Result<String, Error> {
        let prefix = self.scope.arn("logs", "log-group:");
        match arn.strip_prefix(&prefix) {
            Some(name) if !name.is_empty() && !name.contains(':') => Ok(name.to_string()),
            _ => Err(invalid(format!(
                "The specified resource ARN {arn} is not a log group ARN of this account and region."
            ))),
        }
    }

    /// A group's tags.
    pub fn tags_list(&self, group: &str) -> Result<BTreeMap<String, String>, Error> {
        Ok(self.group_doc(group)?.tags)
    }

    /// Adds or replaces tags of a group (at most 50 in all).
    pub async fn tags_add(&self, group: &str, tags: BTreeMap<String, String>) -> Result<(), Error> {
        check_tags(&tags)?;
        self.group_update(group, move |g| {
            let mut all = g.tags.clone();
            all.extend(tags);
            if all.len() > MAX_TAGS {
                return Err(too_many_tags());
            }
            g.tags = all;
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Removes tags of a group (keys it does not have are ignored).
    pub async fn tags_remove(&self, group: &str, keys: Vec<String>) -> Result<(), Error> {
        self.group_update(group, move |g| {
            for k in &keys {
                g.tags.remove(k);
            }
            Ok(())
        })
        .await
        .map(|_| ())
    }

    /// Every group's name, retention and incarnation (for the retention task).
    pub(super) fn groups_all(&self) -> Result<Vec<(String, GroupDoc)>, Error> {
        self.store.read(|r| all(r, Kind::LogGroup, ""))
    }

    /// The streams of a group.
    pub(super) fn streams_all(&self, group: &str) -> Result<Vec<(String, StreamDoc)>, Error> {
        let prefix = format!("{group}\t");
        let found: Vec<(String, StreamDoc)> =
            self.store.read(|r| all(r, Kind::LogStream, &prefix))?;
        Ok(found
            .into_iter()
            .map(|(k, d)| (k[prefix.len()..].to_string(), d))
            .collect())
    }

    /// The chunk prefix of a group's current incarnation.
    #[allow(dead_code)]
    pub(super) fn prefix_of(&self, group: &str) -> Result<String, Error> {
        Ok(chunk_prefix(group, &self.group_doc(group)?.inc))
    }
}
