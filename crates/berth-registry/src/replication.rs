//! Replication, the registry's side: the configuration (PutReplicationConfiguration) and the
//! durable status of each pushed image's copies (DescribeImageReplicationStatus).
//!
//! * The configuration is the `registry-setting` record `replication`: up to 10 rules, each
//!   with destinations `{region, registryId}` and optional `PREFIX_MATCH` repository filters
//!   (none: every repository).
//! * A client's push to a repository some rule matches queues the image's copies **in the
//!   push's own transaction** ([`enqueue`]): one `replication` record `repo\ndigest` listing
//!   every destination the rules give it, each `IN_PROGRESS`, the record's status column
//!   `pending`. An acknowledged push is therefore replicated even if the server dies right
//!   after. Copies (replication itself, the pull-through cache) are never queued: one push
//!   replicates once, with no chains, as on ECR. Only images pushed after the configuration
//!   are replicated; deletes are not replicated.
//! * The replication task (in `berth-api`, which has the HTTP client) takes pending records
//!   ([`Registry::replication_pending`]), copies the image to each destination still
//!   `IN_PROGRESS`, and records each outcome ([`Registry::replication_record`]): `COMPLETE`,
//!   or a retry later, or — after [`MAX_ATTEMPTS`] or a failure no retry can mend — `FAILED`
//!   with the reason. A copy cut short (a crash, a restart) is simply attempted again: copies
//!   are idempotent and skip the blobs the destination already has, so they resume.

use crate::{Registry, decode, encode, key, list_all};
use berth_store::{Kind, ListQuery, Read, Tx};
use berth_types::oci::{Digest, RepositoryName};
use berth_types::{Error, Timestamp};
use serde::{Deserialize, Serialize};

const CONFIG: &str = "replication";
/// The status column of a record with a destination still `IN_PROGRESS`.
pub const PENDING: &str = "pending";
/// Attempts per destination before it is `FAILED`.
pub const MAX_ATTEMPTS: u32 = 8;

/// A destination registry: a region and a registry id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Destination {
    pub region: String,
    pub registry_id: String,
}

/// One replication rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationRule {
    pub destinations: Vec<Destination>,
    /// `PREFIX_MATCH` filters; empty: every repository.
    pub filters: Vec<String>,
}

/// The registry's replication configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationConfiguration {
    pub rules: Vec<ReplicationRule>,
}

impl ReplicationConfiguration {
    /// The destinations of repository `name`, each once, in rule order.
    pub fn destinations_of(&self, name: &str) -> Vec<Destination> {
        let mut out: Vec<Destination> = Vec::new();
        for rule in &self.rules {
            let matched =
                rule.filters.is_empty() || rule.filters.iter().any(|f| name.starts_with(f));
            if !matched {
                continue;
            }
            for d in &rule.destinations {
                if !out.contains(d) {
                    out.push(d.clone());
                }
            }
        }
        out
    }
}

/// `ReplicationStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplicationState {
    InProgress,
    Complete,
    Failed,
}

impl ReplicationState {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplicationState::InProgress => "IN_PROGRESS",
            ReplicationState::Complete => "COMPLETE",
            ReplicationState::Failed => "FAILED",
        }
    }
}

/// The copy of one image to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationStatus {
    pub destination: Destination,
    pub state: ReplicationState,
    /// Why the last attempt failed (`failureCode`), if it did.
    pub failure: Option<String>,
    pub attempts: u32,
    /// Not before this time (retries back off).
    pub next_attempt_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The replication of one pushed image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageReplication {
    pub repository: RepositoryName,
    pub digest: Digest,
    pub queued_at: Timestamp,
    pub destinations: Vec<DestinationStatus>,
}

impl ImageReplication {
    fn status_column(&self) -> Option<&'static str> {
        self.destinations
            .iter()
            .any(|d| d.state == ReplicationState::InProgress)
            .then_some(PENDING)
    }
}

/// What one attempt at one destination came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    Copied,
    /// Worth retrying (the destination was unreachable, answered 5xx, …).
    Retry(String),
    /// No retry will help (no such remote configured, access denied, …).
    Fail(String),
}

fn load_config(r: &impl Read) -> Result<ReplicationConfiguration, Error> {
    Ok(r.get(Kind::RegistrySetting, CONFIG)?
        .map(decode::<ReplicationConfiguration>)
        .transpose()?
        .map(|(_, v)| v)
        .unwrap_or_default())
}

/// Queues the copies of a pushed image, inside the push's transaction: whether any were.
/// An image pushed again (a new tag) is copied again where its last copy is done.
pub(crate) fn enqueue(
    tx: &mut Tx<'_>,
    repo: &RepositoryName,
    digest: &Digest,
    now: Timestamp,
) -> Result<bool, Error> {
    let destinations = load_config(tx)?.destinations_of(repo.as_str());
    if destinations.is_empty() {
        return Ok(false);
    }
    let k = key(repo, digest.as_str());
    let existing = tx
        .get(Kind::Replication, &k)?
        .map(decode::<ImageReplication>)
        .transpose()?;
    let fresh = |d: Destination| DestinationStatus {
        destination: d,
        state: ReplicationState::InProgress,
        failure: None,
        attempts: 0,
        next_attempt_at: now,
        updated_at: now,
    };
    let (generation, record) = match existing {
        Some((g, mut rec)) => {
            for d in destinations {
                match rec.destinations.iter_mut().find(|s| s.destination == d) {
                    Some(s) => *s = fresh(d),
                    None => rec.destinations.push(fresh(d)),
                }
            }
            (Some(g), rec)
        }
        None => (
            None,
            ImageReplication {
                repository: repo.clone(),
                digest: digest.clone(),
                queued_at: now,
                destinations: destinations.into_iter().map(fresh).collect(),
            },
        ),
    };
    let doc = encode(&record)?;
    match generation {
        Some(g) => tx.update(Kind::Replication, &k, g, record.status_column(), &doc)?,
        None => tx.insert(Kind::Replication, &k, record.status_column(), &doc)?,
    };
    Ok(true)
}

/// How long to wait before attempt `n` + 1 (2 s doubling, at most 10 minutes).
fn backoff_ms(attempts: u32) -> i64 {
    (2_000i64 << attempts.min(9)).min(600_000)
}

impl Registry {
    /// The registry's replication configuration.
    pub fn replication_config(&self) -> Result<ReplicationConfiguration, Error> {
        self.store.read(|r| load_config(r))
    }

    /// Replaces the replication configuration (checked by the caller).
    pub async fn replication_config_put(&self, c: ReplicationConfiguration) -> Result<(), Error> {
        self.store
            .write(move |tx| {
                let doc = encode(&c)?;
                match tx.get(Kind::RegistrySetting, CONFIG)? {
                    Some(r) => tx.update(Kind::RegistrySetting, CONFIG, r.generation, None, &doc),
                    None => tx.insert(Kind::RegistrySetting, CONFIG, None, &doc),
                }
                .map(|_| ())
            })
            .await
    }

    /// The replication of image `digest` of `repo`, if it was queued.
    pub fn replication_status(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<ImageReplication>, Error> {
        let n = self.require_repo(repo)?;
        let rec = self
            .store
            .read(|r| r.get(Kind::Replication, &key(&n, digest.as_str())))?;
        Ok(rec
            .map(decode::<ImageReplication>)
            .transpose()?
            .map(|(_, v)| v))
    }

    /// Up to `limit` images with a destination due for an attempt at `now`, oldest queued
    /// first.
    pub fn replication_pending(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> Result<Vec<ImageReplication>, Error> {
        let rows = self.store.read(|r| {
            r.list(
                Kind::Replication,
                &ListQuery {
                    status: Some(PENDING),
                    limit: usize::MAX >> 1,
                    ..Default::default()
                },
            )
        })?;
        let mut due: Vec<ImageReplication> = rows
            .into_iter()
            .map(|r| decode::<ImageReplication>(r).map(|(_, v)| v))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|rep| {
                rep.destinations.iter().any(|d| {
                    d.state == ReplicationState::InProgress && d.next_attempt_at.0 <= now.0
                })
            })
            .collect();
        due.sort_by_key(|r| r.queued_at.0);
        due.truncate(limit);
        Ok(due)
    }

    /// Records the outcome of an attempt to copy `digest` of `repo` to `destination`.
    pub async fn replication_record(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        destination: &Destination,
        outcome: Attempt,
        now: Timestamp,
    ) -> Result<ReplicationState, Error> {
        let k = key(repo, digest.as_str());
        let destination = destination.clone();
        self.store
            .write(move |tx| {
                let Some(rec) = tx.get(Kind::Replication, &k)? else {
                    // The image was deleted meanwhile: nothing to record.
                    return Ok(ReplicationState::Failed);
                };
                let (g, mut rep) = decode::<ImageReplication>(rec)?;
                let Some(d) = rep
                    .destinations
                    .iter_mut()
                    .find(|d| d.destination == destination)
                else {
                    return Ok(ReplicationState::Failed);
                };
                d.attempts += 1;
                d.updated_at = now;
                match outcome {
                    Attempt::Copied => {
                        d.state = ReplicationState::Complete;
                        d.failure = None;
                    }
                    Attempt::Retry(why) if d.attempts < MAX_ATTEMPTS => {
                        d.failure = Some(why);
                        d.next_attempt_at = Timestamp(now.0 + backoff_ms(d.attempts));
                    }
                    Attempt::Retry(why) | Attempt::Fail(why) => {
                        d.state = ReplicationState::Failed;
                        d.failure = Some(why);
                    }
                }
                let state = d.state;
                let status = rep.status_column();
                tx.update(Kind::Replication, &k, g, status, &encode(&rep)?)?;
                Ok(state)
            })
            .await
    }

    /// Every replication record of this registry (for tests and `berth status`).
    pub fn replication_all(&self) -> Result<Vec<ImageReplication>, Error> {
        let rows = self.store.read(|r| list_all(r, Kind::Replication, ""))?;
        rows.into_iter()
            .map(|r| decode::<ImageReplication>(r).map(|(_, v)| v))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dest(region: &str) -> Destination {
        Destination {
            region: region.into(),
            registry_id: "000000000000".into(),
        }
    }

    #[test]
    fn replication_rules_match_by_prefix_and_list_each_destination_once() {
        let c = ReplicationConfiguration {
            rules: vec![
                ReplicationRule {
                    destinations: vec![dest("eu-west-1")],
                    filters: vec!["prod".into()],
                },
                ReplicationRule {
                    destinations: vec![dest("eu-west-1"), dest("us-west-2")],
                    filters: Vec::new(),
                },
            ],
        };
        assert_eq!(
            c.destinations_of("prod/web"),
            [dest("eu-west-1"), dest("us-west-2")]
        );
        assert_eq!(
            c.destinations_of("dev/web"),
            [dest("eu-west-1"), dest("us-west-2")]
        );
        let only_prod = ReplicationConfiguration {
            rules: vec![c.rules[0].clone()],
        };
        assert!(only_prod.destinations_of("dev/web").is_empty());
        assert_eq!(backoff_ms(1), 4_000);
        assert_eq!(backoff_ms(30), 600_000);
    }
}
