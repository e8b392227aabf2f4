//! Scaling activities (DescribeScalingActivities): what the scaler did to a target and why,
//! kept six weeks as AWS keeps them. A change is written in the same store write as the
//! service's new desired count; a "not scaled" activity (`NotScaledReasons`) is written when a
//! policy fired but the planner held, once per persisting reason.
//!
//! Records: `scaling-activity` by `<resource id>\t<start, 15 digits><id>`.

use super::AutoScaling;
use crate::records::all;
use berth_store::{Kind, Tx};
use berth_types::Error;
use serde::{Deserialize, Serialize};

/// Activities are kept this long (six weeks).
const KEEP_MS: i64 = 42 * 24 * 3_600_000;

/// One `NotScaledReason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotScaled {
    pub code: String,
    pub max: Option<i64>,
    pub min: Option<i64>,
    pub current: Option<i64>,
}

/// One scaling activity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    pub id: String,
    pub resource_id: String,
    pub description: String,
    pub cause: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    /// `Successful`, `Failed`, … (`ScalingActivityStatusCode`).
    pub status_code: String,
    pub status_message: Option<String>,
    pub details: Option<String>,
    #[serde(default)]
    pub not_scaled: Vec<NotScaled>,
}

impl Activity {
    /// A finished activity of `resource_id` at `now`.
    pub(super) fn done(
        resource_id: &str,
        description: String,
        cause: String,
        status_code: &str,
        status_message: Option<String>,
        now: i64,
    ) -> Activity {
        Activity {
            id: uuid::Uuid::new_v4().to_string(),
            resource_id: resource_id.to_string(),
            description,
            cause,
            start_ms: now,
            end_ms: Some(now),
            status_code: status_code.to_string(),
            status_message,
            details: None,
            not_scaled: Vec::new(),
        }
    }

    pub fn is_not_scaled(&self) -> bool {
        !self.not_scaled.is_empty()
    }
}

/// DescribeScalingActivities' filter.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    pub resource_id: Option<String>,
    pub include_not_scaled: bool,
}

/// Stores an activity inside a write.
pub(super) fn activity_put(tx: &mut Tx<'_>, a: &Activity) -> Result<(), Error> {
    let key = format!("{}\t{:015}{}", a.resource_id, a.start_ms.max(0), a.id);
    crate::records::create_new(tx, Kind::ScalingActivity, &key, None, a)
}

impl AutoScaling {
    /// DescribeScalingActivities: newest first.
    pub fn activities_describe(&self, f: &ActivityFilter) -> Result<Vec<Activity>, Error> {
        let prefix = f
            .resource_id
            .as_ref()
            .map(|r| format!("{r}\t"))
            .unwrap_or_default();
        let mut out: Vec<Activity> = self
            .store
            .read(|r| all::<Activity>(r, Kind::ScalingActivity, &prefix))?
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| f.include_not_scaled || !a.is_not_scaled())
            .collect();
        out.sort_by(|a, b| b.start_ms.cmp(&a.start_ms).then(b.id.cmp(&a.id)));
        Ok(out)
    }

    /// Forgets activities older than six weeks; how many.
    pub(super) async fn activities_expire(&self) -> Result<u64, Error> {
        let cutoff = self.now() - KEEP_MS;
        let old: Vec<(String, berth_types::Generation)> = self.store.read(|r| {
            Ok(r.list(
                Kind::ScalingActivity,
                &berth_store::ListQuery {
                    prefix: "",
                    limit: usize::MAX >> 1,
                    ..Default::default()
                },
            )?
            .into_iter()
            .filter(|rec| {
                crate::records::decode::<Activity>(&rec.doc, &rec.key)
                    .is_ok_and(|a| a.start_ms < cutoff)
            })
            .map(|rec| (rec.key, rec.generation))
            .collect())
        })?;
        if old.is_empty() {
            return Ok(0);
        }
        let n = old.len() as u64;
        self.store
            .write(move |tx| {
                for (key, g) in old {
                    // Written once, never updated: a generation mismatch means it is gone.
                    if tx.get(Kind::ScalingActivity, &key)?.is_some() {
                        tx.delete(Kind::ScalingActivity, &key, g)?;
                    }
                }
                Ok(())
            })
            .await?;
        Ok(n)
    }
}
