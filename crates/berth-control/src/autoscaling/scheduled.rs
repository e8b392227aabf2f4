//! Scheduled actions (spec B.4): PutScheduledAction (create, or update the given fields),
//! DescribeScheduledActions, DeleteScheduledAction, and the `scheduled-scaling` task that runs
//! them: at each due time a target's MinCapacity / MaxCapacity change, then its service's
//! desired count moves inside them — also during cooldowns, never while
//! `ScheduledScalingSuspended`. A run missed while no server led runs once, late; the runs
//! before it are skipped.
//!
//! Records: `scheduled-action` by `<resource id>\t<action name>`.

use super::activities::{Activity, activity_put};
use super::schedule::{Schedule, check_timezone};
use super::targets::target_get;
use super::{AutoScaling, ServiceId, not_found, target_words, validation};
use crate::background::Counts;
use crate::records::{all, load, save};
use berth_store::Kind;
use berth_types::Error;
use serde::{Deserialize, Serialize};

/// Quota: scheduled actions per scalable target (spec B.5).
const MAX_ACTIONS: usize = 200;

/// A scheduled action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduledAction {
    pub resource_id: String,
    pub name: String,
    pub arn: String,
    pub schedule: String,
    pub timezone: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub created_ms: i64,
    /// The due time of its last run (or skip).
    #[serde(default)]
    pub last_run_ms: Option<i64>,
}

/// PutScheduledAction in domain terms.
#[derive(Debug, Clone, Default)]
pub struct PutScheduledAction {
    pub resource_id: String,
    pub name: String,
    pub schedule: Option<String>,
    pub timezone: Option<String>,
    pub start_ms: Option<i64>,
    pub end_ms: Option<i64>,
    /// `ScalableTargetAction` (absent: keep the action's).
    pub target_action: Option<(Option<i64>, Option<i64>)>,
}

fn action_key(resource_id: &str, name: &str) -> String {
    format!("{resource_id}\t{name}")
}

/// The activity's description of a bounds change: `Setting min capacity to 1 and max
/// capacity to 10` (the user guide's example), or only the half that is given.
fn bounds_words(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(a), Some(b)) => format!("min capacity to {a} and max capacity to {b}"),
        (Some(a), None) => format!("min capacity to {a}"),
        (None, Some(b)) => format!("max capacity to {b}"),
        (None, None) => "no capacity".into(),
    }
}

impl ScheduledAction {
    /// When it runs next after its last run (or its creation).
    fn next_due(&self) -> Option<i64> {
        let schedule = Schedule::parse(&self.schedule).ok()?;
        let after = self.last_run_ms.unwrap_or(self.created_ms);
        schedule
            .next_after(self.timezone.as_deref(), self.start_ms, self.end_ms, after)
            .ok()
            .flatten()
    }
}

impl AutoScaling {
    /// PutScheduledAction: creates the action (Schedule required) or updates the given fields.
    pub async fn scheduled_put(&self, cmd: PutScheduledAction) -> Result<ScheduledAction, Error> {
        ServiceId::parse(&cmd.resource_id)?;
        if let Some(s) = &cmd.schedule {
            Schedule::parse(s).map_err(|e| validation(e.to_string()))?;
        }
        if let Some(tz) = &cmd.timezone {
            check_timezone(tz).map_err(|e| validation(e.to_string()))?;
        }
        if let Some((Some(min), Some(max))) = cmd.target_action
            && min > max
        {
            return Err(validation(format!(
                "Minimum capacity ({min}) cannot be greater than maximum capacity ({max})"
            )));
        }
        if let (Some(s), Some(e)) = (cmd.start_ms, cmd.end_ms)
            && s >= e
        {
            return Err(validation("StartTime must be before EndTime"));
        }
        let now = self.now();
        let arn_of = |id: uuid::Uuid| {
            self.scope.arn(
                "autoscaling",
                &format!(
                    "scheduledAction:{id}:resource/ecs/{}:scheduledActionName/{}",
                    cmd.resource_id, cmd.name
                ),
            )
        };
        let arn = arn_of(uuid::Uuid::new_v4());
        let put = self
            .store
            .write(move |tx| {
                target_get(tx, &cmd.resource_id)?;
                let key = action_key(&cmd.resource_id, &cmd.name);
                let found = load::<ScheduledAction>(tx.get(Kind::ScheduledAction, &key)?)?;
                let (mut a, expected) = match found {
                    Some((g, a)) => (a, Some(g)),
                    None => {
                        let Some(schedule) = cmd.schedule.clone() else {
                            return Err(validation(
                                "Schedule is required to create a scheduled action",
                            ));
                        };
                        let prefix = format!("{}\t", cmd.resource_id);
                        if all::<ScheduledAction>(tx, Kind::ScheduledAction, &prefix)?.len()
                            >= MAX_ACTIONS
                        {
                            return Err(Error::coded(
                                "LimitExceededException",
                                format!(
                                    "You have reached the limit of {MAX_ACTIONS} scheduled actions for the scalable target {}",
                                    cmd.resource_id
                                ),
                            ));
                        }
                        let a = ScheduledAction {
                            resource_id: cmd.resource_id.clone(),
                            name: cmd.name.clone(),
                            arn,
                            schedule,
                            timezone: None,
                            start_ms: None,
                            end_ms: None,
                            min: None,
                            max: None,
                            created_ms: now,
                            last_run_ms: None,
                        };
                        (a, None)
                    }
                };
                if let Some(s) = cmd.schedule {
                    if s != a.schedule {
                        // A new schedule counts from now.
                        a.created_ms = now;
                        a.last_run_ms = None;
                    }
                    a.schedule = s;
                }
                a.timezone = cmd.timezone.or(a.timezone);
                a.start_ms = cmd.start_ms.or(a.start_ms);
                a.end_ms = cmd.end_ms.or(a.end_ms);
                if let Some((min, max)) = cmd.target_action {
                    a.min = min;
                    a.max = max;
                }
                save(tx, Kind::ScheduledAction, &key, None, &a, expected)?;
                Ok(a)
            })
            .await?;
        self.background
            .activate(crate::background::SCHEDULED_SCALING);
        Ok(put)
    }

    /// DescribeScheduledActions: by resource id, then name.
    pub fn scheduled_describe(
        &self,
        resource_id: Option<&str>,
        names: &[String],
    ) -> Result<Vec<ScheduledAction>, Error> {
        let prefix = resource_id.map(|r| format!("{r}\t")).unwrap_or_default();
        let rows = self
            .store
            .read(|r| all::<ScheduledAction>(r, Kind::ScheduledAction, &prefix))?;
        Ok(rows
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| names.is_empty() || names.contains(&a.name))
            .collect())
    }

    /// DeleteScheduledAction.
    pub async fn scheduled_delete(&self, resource_id: &str, name: &str) -> Result<(), Error> {
        let (rid, name) = (resource_id.to_string(), name.to_string());
        self.store
            .write(move |tx| {
                let key = action_key(&rid, &name);
                match tx.get(Kind::ScheduledAction, &key)? {
                    Some(rec) => tx.delete(Kind::ScheduledAction, &key, rec.generation),
                    None => Err(not_found(format!(
                        "No scheduled action found for {}, scheduled action name: {name}",
                        target_words(&rid)
                    ))),
                }
            })
            .await
    }

    /// One pass of the `scheduled-scaling` task: every due action runs; old activities go.
    pub async fn scheduled_run(&self) -> Result<Counts, Error> {
        let now = self.now();
        let mut ran = 0;
        for a in self.scheduled_describe(None, &[])? {
            let Some(due) = a.next_due().filter(|&t| t <= now) else {
                continue;
            };
            // The latest due time not after now: missed runs collapse into this one.
            let mut last = due;
            let mut probe = ScheduledAction {
                last_run_ms: Some(due),
                ..a.clone()
            };
            for _ in 0..10_000 {
                match probe.next_due() {
                    Some(t) if t <= now => {
                        last = t;
                        probe.last_run_ms = Some(t);
                    }
                    _ => break,
                }
            }
            if self.scheduled_once(&a, last).await? {
                ran += 1;
            }
        }
        let expired = self.activities_expire().await?;
        Ok(vec![
            ("scheduled actions run", ran),
            ("activities expired", expired),
        ])
    }

    /// Runs `a` for its due time `due`: the target's new bounds (unless scheduled scaling is
    /// suspended), the activity, then the desired count inside them. Whether it ran.
    async fn scheduled_once(&self, a: &ScheduledAction, due: i64) -> Result<bool, Error> {
        let a = a.clone();
        let now = self.now();
        let rid = a.resource_id.clone();
        let ran = self
            .store
            .write(move |tx| {
                let key = action_key(&a.resource_id, &a.name);
                let Some((ag, mut stored)) =
                    load::<ScheduledAction>(tx.get(Kind::ScheduledAction, &key)?)?
                else {
                    return Ok(false);
                };
                if stored.last_run_ms != a.last_run_ms {
                    return Ok(false); // Another pass ran it.
                }
                stored.last_run_ms = Some(due);
                save(tx, Kind::ScheduledAction, &key, None, &stored, Some(ag))?;
                let Ok((tg, mut t)) = target_get(tx, &a.resource_id) else {
                    return Ok(false);
                };
                if t.suspended.scheduled {
                    return Ok(false);
                }
                let (min, max) = (a.min.unwrap_or(t.min), a.max.unwrap_or(t.max));
                let cause = format!("scheduled action name {} was triggered", a.name);
                let words = bounds_words(a.min, a.max);
                let activity = if min > max {
                    Activity::done(
                        &a.resource_id,
                        format!("Setting {words}"),
                        cause,
                        "Failed",
                        Some(format!(
                            "Failed to set {words}: minimum capacity {min} is greater than maximum capacity {max}"
                        )),
                        now,
                    )
                } else {
                    (t.min, t.max) = (min, max);
                    save(tx, Kind::ScalableTarget, &a.resource_id, None, &t, Some(tg))?;
                    Activity::done(
                        &a.resource_id,
                        format!("Setting {words}"),
                        cause,
                        "Successful",
                        Some(format!("Successfully set {words}")),
                        now,
                    )
                };
                activity_put(tx, &activity)?;
                Ok(activity.status_code == "Successful")
            })
            .await?;
        if ran && let Err(e) = self.bounds_apply(&rid).await {
            tracing::warn!(resource = %rid, error = %e, "a scheduled action's bounds could not be applied");
        }
        Ok(ran)
    }
}
