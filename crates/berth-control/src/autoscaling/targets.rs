//! Scalable targets (spec B.1): RegisterScalableTarget (create, or update the given fields),
//! DescribeScalableTargets, DeregisterScalableTarget (with its policies, their alarms and its
//! scheduled actions), and the tags of a target.
//!
//! Records: `scalable-target` by resource id — the whole [`ScalableTarget`], with the
//! planner's cooldown marks.

use super::plan::{Cooldowns, Suspended};
use super::{AutoScaling, ServiceId, not_found, target_words, validation};
use crate::records::{all, load, save};
use berth_store::{Kind, Tx};
use berth_types::{Error, Tag};
use serde::{Deserialize, Serialize};

/// The role a target gets when RegisterScalableTarget names none: ECS's service-linked role.
const ECS_SERVICE_LINKED_ROLE: &str = "role/aws-service-role/ecs.application-autoscaling.amazonaws.com/AWSServiceRoleForApplicationAutoScaling_ECSService";

/// Quota: scalable targets of the ecs namespace per region (spec B.5).
const MAX_TARGETS: usize = 3000;

/// A registered scalable target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalableTarget {
    pub resource_id: String,
    pub arn: String,
    pub min: i64,
    pub max: i64,
    pub role_arn: String,
    pub suspended: Suspended,
    pub created_ms: i64,
    #[serde(default)]
    pub tags: Vec<Tag>,
    /// The planner's marks (kept across policy firings).
    #[serde(default)]
    pub cooldowns: Cooldowns,
    /// The last not-scaled activity recorded, `(cause, code)`: a hold that persists while an
    /// alarm stays in ALARM is recorded once, not every minute.
    #[serde(default)]
    pub last_not_scaled: Option<(String, String)>,
}

/// `SuspendedState` as given: members left out keep their value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SuspendedChange {
    pub dynamic_in: Option<bool>,
    pub dynamic_out: Option<bool>,
    pub scheduled: Option<bool>,
}

/// RegisterScalableTarget in domain terms.
#[derive(Debug, Clone, Default)]
pub struct RegisterTarget {
    pub resource_id: String,
    pub min: Option<i64>,
    pub max: Option<i64>,
    pub role_arn: Option<String>,
    pub suspended: Option<SuspendedChange>,
    pub tags: Vec<Tag>,
}

/// Application Auto Scaling's tag rules: keys 1–128 characters, values up to 256, at most 50.
pub(super) fn check_tags(tags: &[Tag]) -> Result<(), Error> {
    if tags.len() > 50 {
        return Err(Error::coded(
            "TooManyTagsException",
            "The number of tags exceeds the limit of 50 tags per resource.",
        ));
    }
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 || t.value.chars().count() > 256 {
            return Err(validation(
                "Tag keys must be 1-128 characters and tag values at most 256 characters.",
            ));
        }
        if t.key.starts_with("aws:") {
            return Err(validation("Tag keys starting with 'aws:' are reserved."));
        }
    }
    Ok(())
}

pub(super) fn target_get(
    tx: &Tx<'_>,
    resource_id: &str,
) -> Result<(berth_types::Generation, ScalableTarget), Error> {
    load::<ScalableTarget>(tx.get(Kind::ScalableTarget, resource_id)?)?.ok_or_else(|| {
        not_found(format!(
            "No scalable target registered for {}",
            target_words(resource_id)
        ))
    })
}

impl AutoScaling {
    /// RegisterScalableTarget: registers the service's desired count (min and max required)
    /// or updates the given fields of its registration. A desired count outside the new
    /// bounds moves inside at once, as a scaling activity.
    pub async fn target_register(&self, cmd: RegisterTarget) -> Result<ScalableTarget, Error> {
        let id = ServiceId::parse(&cmd.resource_id)?;
        self.service_active(&id)?;
        for n in [cmd.min, cmd.max].into_iter().flatten() {
            if !(0..=100_000).contains(&n) {
                return Err(validation(format!(
                    "Capacity {n} is out of range: MinCapacity and MaxCapacity of an ECS service are between 0 and 100000"
                )));
            }
        }
        check_tags(&cmd.tags)?;
        let now = self.now();
        let arn = self.scope.arn(
            "application-autoscaling",
            &format!("scalable-target/{}", target_id()),
        );
        let role = format!(
            "arn:aws:iam::{}:{ECS_SERVICE_LINKED_ROLE}",
            self.scope.account
        );
        let target = self
            .store
            .write(move |tx| {
                let existing = load::<ScalableTarget>(tx.get(Kind::ScalableTarget, &cmd.resource_id)?)?;
                let (mut t, expected) = match existing {
                    Some((g, t)) => (t, Some(g)),
                    None => {
                        let (Some(min), Some(max)) = (cmd.min, cmd.max) else {
                            return Err(validation(
                                "MinCapacity and MaxCapacity are required to register a new scalable target",
                            ));
                        };
                        if all::<ScalableTarget>(tx, Kind::ScalableTarget, "")?.len() >= MAX_TARGETS {
                            return Err(Error::coded(
                                "LimitExceededException",
                                format!("You have reached the limit of {MAX_TARGETS} scalable targets for service namespace ecs"),
                            ));
                        }
                        let t = ScalableTarget {
                            resource_id: cmd.resource_id.clone(),
                            arn,
                            min,
                            max,
                            role_arn: role,
                            suspended: Suspended::default(),
                            created_ms: now,
                            tags: Vec::new(),
                            cooldowns: Cooldowns::default(),
                            last_not_scaled: None,
                        };
                        (t, None)
                    }
                };
                t.min = cmd.min.unwrap_or(t.min);
                t.max = cmd.max.unwrap_or(t.max);
                if t.min > t.max {
                    return Err(validation(format!(
                        "Minimum capacity ({}) cannot be greater than maximum capacity ({})",
                        t.min, t.max
                    )));
                }
                if let Some(r) = cmd.role_arn {
                    t.role_arn = r;
                }
                if let Some(s) = cmd.suspended {
                    t.suspended.dynamic_in = s.dynamic_in.unwrap_or(t.suspended.dynamic_in);
                    t.suspended.dynamic_out = s.dynamic_out.unwrap_or(t.suspended.dynamic_out);
                    t.suspended.scheduled = s.scheduled.unwrap_or(t.suspended.scheduled);
                }
                berth_types::tags_merge(&mut t.tags, cmd.tags);
                save(tx, Kind::ScalableTarget, &t.resource_id, None, &t, expected)?;
                Ok(t)
            })
            .await?;
        self.bounds_apply(&target.resource_id).await?;
        Ok(target)
    }

    /// DescribeScalableTargets: every target, or those of `resource_ids`, by resource id.
    pub fn targets_describe(&self, resource_ids: &[String]) -> Result<Vec<ScalableTarget>, Error> {
        let rows = self
            .store
            .read(|r| all::<ScalableTarget>(r, Kind::ScalableTarget, ""))?;
        Ok(rows
            .into_iter()
            .map(|(_, t)| t)
            .filter(|t| resource_ids.is_empty() || resource_ids.contains(&t.resource_id))
            .collect())
    }

    /// The target of `resource_id`, if registered.
    pub fn target_get(&self, resource_id: &str) -> Result<Option<ScalableTarget>, Error> {
        let rec = self
            .store
            .read(|r| r.get(Kind::ScalableTarget, resource_id))?;
        Ok(load::<ScalableTarget>(rec)?.map(|(_, t)| t))
    }

    /// DeregisterScalableTarget: the target, its policies (and the alarms target tracking
    /// made for them) and its scheduled actions. The service keeps its desired count.
    pub async fn target_deregister(&self, resource_id: &str) -> Result<(), Error> {
        let rid = resource_id.to_string();
        let alarms = self
            .store
            .write(move |tx| {
                let (g, _) = target_get(tx, &rid).map_err(|_| {
                    not_found(format!(
                        "No scalable target found for {}",
                        target_words(&rid)
                    ))
                })?;
                tx.delete(Kind::ScalableTarget, &rid, g)?;
                let prefix = format!("{rid}\t");
                let mut alarms = Vec::new();
                for kind in [Kind::ScalingPolicy, Kind::ScheduledAction] {
                    for rec in tx.list(
                        kind,
                        &berth_store::ListQuery {
                            prefix: &prefix,
                            limit: usize::MAX >> 1,
                            ..Default::default()
                        },
                    )? {
                        if kind == Kind::ScalingPolicy
                            && let Ok(p) =
                                crate::records::decode::<super::ScalingPolicy>(&rec.doc, &rec.key)
                        {
                            alarms.extend(p.owned_alarm_names());
                        }
                        tx.delete(kind, &rec.key, rec.generation)?;
                    }
                }
                Ok(alarms)
            })
            .await?;
        if !alarms.is_empty() {
            self.cloudwatch.alarms_delete_existing(alarms).await?;
        }
        Ok(())
    }

    /// TagResource / UntagResource / ListTagsForResource on a target's ARN: `add` merged,
    /// `remove` keys dropped; the tags after.
    pub async fn target_tags(
        &self,
        arn: &str,
        add: Vec<Tag>,
        remove: Vec<String>,
    ) -> Result<Vec<Tag>, Error> {
        let missing = || {
            Error::coded(
                "ResourceNotFoundException",
                format!("No scalable target found for ARN {arn}"),
            )
        };
        let target = self
            .targets_describe(&[])?
            .into_iter()
            .find(|t| t.arn == arn)
            .ok_or_else(missing)?;
        if add.is_empty() && remove.is_empty() {
            return Ok(target.tags);
        }
        let rid = target.resource_id;
        self.store
            .write(move |tx| {
                let (g, mut t) = target_get(tx, &rid)?;
                t.tags.retain(|x| !remove.contains(&x.key));
                berth_types::tags_merge(&mut t.tags, add);
                check_tags(&t.tags)?;
                save(tx, Kind::ScalableTarget, &rid, None, &t, Some(g))?;
                Ok(t.tags)
            })
            .await
    }

    /// Fails unless the service exists and is ACTIVE (AWS's check on registration).
    fn service_active(&self, id: &ServiceId) -> Result<(), Error> {
        let (found, _) = self
            .ecs
            .service_describe(&id.cluster, std::slice::from_ref(&id.service))
            .unwrap_or_default();
        if found.iter().any(|s| s.status == "ACTIVE") {
            Ok(())
        } else {
            Err(validation(format!(
                "ECS service doesn't exist: {}",
                id.resource_id()
            )))
        }
    }
}

/// A target's id in its ARN: 36 hexadecimal digits, as AWS's look.
fn target_id() -> String {
    let a = uuid::Uuid::new_v4().simple().to_string();
    let b = uuid::Uuid::new_v4().simple().to_string();
    format!("{a}{}", &b[..4])
}
