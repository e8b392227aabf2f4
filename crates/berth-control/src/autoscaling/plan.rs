//! The scaler's pure planner for one scalable target (`ecs:service:DesiredCount`), spec
//! B.2–B.3: given a policy, what its alarm says and the target's state, whether to change the
//! service's desired count and to what. The autoscaling task feeds it a snapshot once per alarm
//! action (every minute while an alarm stays in ALARM), applies a [`Scale`] with
//! `UpdateService`, writes the scaling activity and calls [`TargetState::record`].
//!
//! Must not: read a clock (`now_ms` is an argument), touch the store, the network or alarms.
//!
//! Choices where AWS publishes no formula (documented with each function):
//! * Target tracking uses spec B.2: `ceil(running × metric / target)`, at least `running + 1`
//!   on scale-out; `ceil` on scale-in removes the least capacity that gets back under target.
//! * Step scaling adds to the *running* count on scale-out (so capacity already being added
//!   counts as in place, as the AWS cooldown example needs) and removes from the *desired*
//!   count on scale-in (so a step never removes more than it says).
//! * Cooldowns: one scale-out mark per target (time and the desired count it set, whatever
//!   policy set it) and one scale-in time per policy. A scale-out clears every scale-in mark
//!   ("a scale-out cancels the scale-in cooldown"); a scale-in clears the scale-out mark (the
//!   capacity it counted as in flight is gone).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use thiserror::Error;

/// ECS default for `ScaleOutCooldown`, `ScaleInCooldown` and step `Cooldown`, in seconds.
pub const DEFAULT_COOLDOWN_S: i64 = 300;

/// Quota: step adjustments per policy (spec B.5).
pub const MAX_STEP_ADJUSTMENTS: usize = 20;

/// `Description` of a not-scaled activity (the user guide's example).
pub const NOT_SCALED_DESCRIPTION: &str = "Attempting to scale due to alarm triggered";

fn default_cooldown() -> i64 {
    DEFAULT_COOLDOWN_S
}

/// A `TargetTrackingScaling` policy as the planner needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetTrackingPolicy {
    /// `PolicyName`: keys the per-policy scale-in cooldown and names the policy in `Cause`.
    pub name: String,
    pub target_value: f64,
    #[serde(default)]
    pub disable_scale_in: bool,
    #[serde(default = "default_cooldown")]
    pub scale_out_cooldown_s: i64,
    #[serde(default = "default_cooldown")]
    pub scale_in_cooldown_s: i64,
}

impl TargetTrackingPolicy {
    /// A policy with the ECS defaults: scale-in enabled, both cooldowns 300 s.
    pub fn new(name: impl Into<String>, target_value: f64) -> Self {
        Self {
            name: name.into(),
            target_value,
            disable_scale_in: false,
            scale_out_cooldown_s: DEFAULT_COOLDOWN_S,
            scale_in_cooldown_s: DEFAULT_COOLDOWN_S,
        }
    }
}

/// `AdjustmentType`; serialized with AWS's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdjustmentType {
    ChangeInCapacity,
    ExactCapacity,
    PercentChangeInCapacity,
}

impl AdjustmentType {
    pub fn as_str(self) -> &'static str {
        match self {
            AdjustmentType::ChangeInCapacity => "ChangeInCapacity",
            AdjustmentType::ExactCapacity => "ExactCapacity",
            AdjustmentType::PercentChangeInCapacity => "PercentChangeInCapacity",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ChangeInCapacity" => Some(AdjustmentType::ChangeInCapacity),
            "ExactCapacity" => Some(AdjustmentType::ExactCapacity),
            "PercentChangeInCapacity" => Some(AdjustmentType::PercentChangeInCapacity),
            _ => None,
        }
    }
}

/// `MetricAggregationType` (default `Average`). The caller aggregates the alarm's recent
/// datapoints with it before calling [`step`]; the planner only carries it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetricAggregation {
    #[default]
    Average,
    Minimum,
    Maximum,
}

impl MetricAggregation {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricAggregation::Average => "Average",
            MetricAggregation::Minimum => "Minimum",
            MetricAggregation::Maximum => "Maximum",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "Average" => Some(MetricAggregation::Average),
            "Minimum" => Some(MetricAggregation::Minimum),
            "Maximum" => Some(MetricAggregation::Maximum),
            _ => None,
        }
    }
}

/// One `StepAdjustment`: bounds are offsets from the alarm threshold; `None` is −∞ (lower)
/// or +∞ (upper).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepAdjustment {
    pub lower: Option<f64>,
    pub upper: Option<f64>,
    pub adjustment: i64,
}

impl StepAdjustment {
    /// Whether `diff` (metric − threshold) falls in this step. At or above the threshold the
    /// lower bound is inclusive and the upper exclusive; below it the lower bound is exclusive
    /// and the upper inclusive (API reference, `StepAdjustment`).
    fn contains(&self, diff: f64, above: bool) -> bool {
        let lower_ok = match self.lower {
            None => true,
            Some(l) if above => diff >= l,
            Some(l) => diff > l,
        };
        let upper_ok = match self.upper {
            None => true,
            Some(u) if above => diff < u,
            Some(u) => diff <= u,
        };
        lower_ok && upper_ok
    }
}

/// A `StepScaling` policy as the planner needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepScalingPolicy {
    /// `PolicyName`: keys the per-policy scale-in cooldown and names the policy in `Cause`.
    pub name: String,
    pub adjustment_type: AdjustmentType,
    pub steps: Vec<StepAdjustment>,
    #[serde(default)]
    pub min_adjustment_magnitude: Option<i64>,
    #[serde(default = "default_cooldown")]
    pub cooldown_s: i64,
    #[serde(default)]
    pub metric_aggregation: MetricAggregation,
}

/// Why a step scaling configuration is refused; `Display` is the `ValidationException`
/// message. Only [`StepError::BothBoundsUnspecified`] is AWS's wording as seen in the wild
/// (Application Auto Scaling's answer quoted in terraform-provider-aws#4812); the two
/// "There must be a step adjustment with an unspecified … bound" messages follow the EC2 Auto
/// Scaling wording for the same rule; the rest are our guesses in the same style, built from
/// the API reference's sentences.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StepError {
    #[error("At least one step adjustment is required")]
    NoSteps,
    #[error("There can be at most {MAX_STEP_ADJUSTMENTS} step adjustments per scaling policy")]
    TooManySteps,
    #[error("Both lower and upper bounds of a step adjustment cannot be left unspecified")]
    BothBoundsUnspecified,
    #[error("Step adjustment bounds must be finite numbers")]
    NotFinite,
    #[error("The upper bound of a step adjustment must be greater than the lower bound")]
    LowerNotBelowUpper,
    #[error("At most one step adjustment may have an unspecified lower bound")]
    MultipleNullLower,
    #[error("At most one step adjustment may have an unspecified upper bound")]
    MultipleNullUpper,
    #[error(
        "There must be a step adjustment with an unspecified lower bound when one step adjustment has a negative lower bound"
    )]
    MissingNullLower,
    #[error(
        "There must be a step adjustment with an unspecified upper bound when one step adjustment has a positive upper bound"
    )]
    MissingNullUpper,
    #[error("Step adjustment intervals cannot overlap")]
    Overlap,
    #[error("Step adjustment intervals cannot have gaps between them")]
    Gap,
    #[error(
        "The scaling adjustment must be non-negative when the adjustment type is ExactCapacity"
    )]
    NegativeExactCapacity,
    #[error(
        "MinAdjustmentMagnitude may only be specified when the adjustment type is PercentChangeInCapacity"
    )]
    MinAdjustmentMagnitudeNotPercent,
    #[error("MinAdjustmentMagnitude must be greater than or equal to 0")]
    NegativeMinAdjustmentMagnitude,
    #[error("Cooldown must be greater than or equal to 0")]
    NegativeCooldown,
}

impl StepScalingPolicy {
    /// AWS's validation of a step scaling configuration (user guide "Step adjustments", API
    /// reference `StepAdjustment` and `StepScalingPolicyConfiguration`): 1–20 steps; no step
    /// with both bounds null; lower < upper; at most one null lower and one null upper bound;
    /// a negative lower bound needs a step with a null lower bound and a positive upper bound
    /// one with a null upper bound; sorted by lower bound, each step ends where the next
    /// begins (no overlap, no gap); `ExactCapacity` adjustments non-negative;
    /// `MinAdjustmentMagnitude` only with `PercentChangeInCapacity`.
    pub fn check(&self) -> Result<(), StepError> {
        if self.steps.is_empty() {
            return Err(StepError::NoSteps);
        }
        if self.steps.len() > MAX_STEP_ADJUSTMENTS {
            return Err(StepError::TooManySteps);
        }
        if self.cooldown_s < 0 {
            return Err(StepError::NegativeCooldown);
        }
        for s in &self.steps {
            if s.lower.is_none() && s.upper.is_none() {
                return Err(StepError::BothBoundsUnspecified);
            }
            if s.lower.is_some_and(|v| !v.is_finite()) || s.upper.is_some_and(|v| !v.is_finite()) {
                return Err(StepError::NotFinite);
            }
            if let (Some(l), Some(u)) = (s.lower, s.upper)
                && l >= u
            {
                return Err(StepError::LowerNotBelowUpper);
            }
            if self.adjustment_type == AdjustmentType::ExactCapacity && s.adjustment < 0 {
                return Err(StepError::NegativeExactCapacity);
            }
        }
        let null_lower = self.steps.iter().filter(|s| s.lower.is_none()).count();
        let null_upper = self.steps.iter().filter(|s| s.upper.is_none()).count();
        if null_lower > 1 {
            return Err(StepError::MultipleNullLower);
        }
        if null_upper > 1 {
            return Err(StepError::MultipleNullUpper);
        }
        if null_lower == 0 && self.steps.iter().any(|s| s.lower.is_some_and(|l| l < 0.0)) {
            return Err(StepError::MissingNullLower);
        }
        if null_upper == 0 && self.steps.iter().any(|s| s.upper.is_some_and(|u| u > 0.0)) {
            return Err(StepError::MissingNullUpper);
        }
        let mut sorted: Vec<&StepAdjustment> = self.steps.iter().collect();
        sorted.sort_by(|a, b| {
            let key = |s: &StepAdjustment| s.lower.unwrap_or(f64::NEG_INFINITY);
            key(a).total_cmp(&key(b))
        });
        for pair in sorted.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            // Only the first step may have a null lower bound and only the last a null upper.
            let (Some(end), Some(start)) = (a.upper, b.lower) else {
                return Err(StepError::Overlap);
            };
            if end > start {
                return Err(StepError::Overlap);
            }
            if end < start {
                return Err(StepError::Gap);
            }
        }
        match (self.min_adjustment_magnitude, self.adjustment_type) {
            (Some(m), AdjustmentType::PercentChangeInCapacity) if m < 0 => {
                Err(StepError::NegativeMinAdjustmentMagnitude)
            }
            (Some(_), AdjustmentType::PercentChangeInCapacity) | (None, _) => Ok(()),
            (Some(_), _) => Err(StepError::MinAdjustmentMagnitudeNotPercent),
        }
    }

    /// The step that applies when the aggregated metric is `diff` away from the threshold.
    /// Exactly at the threshold the "above" rule is tried first, then the "below" one, so a
    /// scale-in policy whose top step ends at 0 still matches there.
    pub fn step_for(&self, diff: f64) -> Option<&StepAdjustment> {
        let find = |above: bool| self.steps.iter().find(|s| s.contains(diff, above));
        if diff > 0.0 {
            find(true)
        } else if diff < 0.0 {
            find(false)
        } else {
            find(true).or_else(|| find(false))
        }
    }
}

/// `SuspendedState`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspended {
    /// `DynamicScalingInSuspended`.
    #[serde(default)]
    pub dynamic_in: bool,
    /// `DynamicScalingOutSuspended`.
    #[serde(default)]
    pub dynamic_out: bool,
    /// `ScheduledScalingSuspended` (the scheduled-action runner checks it, not this planner).
    #[serde(default)]
    pub scheduled: bool,
}

/// The last policy scale-out of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleOutMark {
    /// Epoch milliseconds.
    pub at_ms: i64,
    /// The desired count it set.
    pub desired: i64,
}

/// Cooldown bookkeeping for one target, kept by [`TargetState::record`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cooldowns {
    /// The last scale-out by any policy since the last scale-in.
    #[serde(default)]
    pub scale_out: Option<ScaleOutMark>,
    /// Policy name → epoch milliseconds of its last scale-in since the last scale-out.
    #[serde(default)]
    pub scale_in_ms: BTreeMap<String, i64>,
}

/// What the planner reads about one scalable target. Stored by the caller as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    /// The service's `runningCount`.
    pub running: i64,
    /// The service's `desiredCount`.
    pub desired: i64,
    /// `MinCapacity`.
    pub min: i64,
    /// `MaxCapacity`.
    pub max: i64,
    #[serde(default)]
    pub suspended: Suspended,
    /// The service has a deployment other than the PRIMARY one still running tasks.
    #[serde(default)]
    pub deployment_in_progress: bool,
    #[serde(default)]
    pub cooldowns: Cooldowns,
}

impl TargetState {
    /// Updates the desired count and the cooldown marks after `scale` was applied at `now_ms`.
    /// Changes made to honour min/max ([`bounds`]) start no cooldown: cooldowns apply only to
    /// policy activities.
    pub fn record(&mut self, scale: &Scale, now_ms: i64) {
        self.desired = scale.to;
        let By::Policy(policy) = &scale.by else {
            return;
        };
        match scale.direction {
            Direction::Out => {
                self.cooldowns.scale_out = Some(ScaleOutMark {
                    at_ms: now_ms,
                    desired: scale.to,
                });
                self.cooldowns.scale_in_ms.clear();
            }
            Direction::In => {
                self.cooldowns.scale_out = None;
                self.cooldowns.scale_in_ms.insert(policy.clone(), now_ms);
            }
        }
    }

    /// Drops a deleted policy's scale-in mark.
    pub fn forget_policy(&mut self, policy: &str) {
        self.cooldowns.scale_in_ms.remove(policy);
    }

    /// `max`, never below `min` (the API refuses min > max; this keeps the planner total).
    fn upper(&self) -> i64 {
        self.max.max(self.min)
    }
}

/// Which of a target-tracking policy's two alarms is in ALARM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// `TargetTracking-…-AlarmHigh`: metric above the target.
    AlarmHigh,
    /// `TargetTracking-…-AlarmLow`: metric below 0.9 × the target.
    AlarmLow,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Direction {
    Out,
    In,
}

/// What made the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum By {
    /// A scaling policy (by name) whose alarm fired.
    Policy(String),
    /// The desired count was below a new `MinCapacity`.
    MinCapacity(i64),
    /// The desired count was above a new `MaxCapacity`.
    MaxCapacity(i64),
}

/// A new desired count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scale {
    pub from: i64,
    pub to: i64,
    pub direction: Direction,
    pub by: By,
}

impl Scale {
    /// The activity's `Description` (user guide, "Scaling activities"): `Setting desired count
    /// to 4.`
    pub fn description(&self) -> String {
        format!("Setting desired count to {}.", self.to)
    }

    /// The activity's `StatusMessage` once ECS accepted the change (same page).
    pub fn status_message(&self) -> String {
        format!(
            "Successfully set desired count to {}. Change successfully fulfilled by ecs.",
            self.to
        )
    }

    /// The activity's `Cause`. For a policy, `alarm` is the name of the alarm in ALARM:
    /// `monitor alarm <alarm> in state ALARM triggered policy <policy>` (AWS's wording, from
    /// the user guide). For min/max changes `alarm` is ignored and the text is our guess at
    /// AWS's (`minimum capacity was set to 2`, `maximum capacity was set to 4`).
    pub fn cause(&self, alarm: &str) -> String {
        match &self.by {
            By::Policy(policy) => {
                format!("monitor alarm {alarm} in state ALARM triggered policy {policy}")
            }
            By::MinCapacity(n) => format!("minimum capacity was set to {n}"),
            By::MaxCapacity(n) => format!("maximum capacity was set to {n}"),
        }
    }
}

/// Why the desired count stays as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// None of the policy's alarms is in ALARM.
    NotInAlarm,
    /// `DynamicScalingInSuspended` / `DynamicScalingOutSuspended` for this direction.
    Suspended,
    /// A scale-in asked of a policy with `DisableScaleIn` (it abstains from scale-in votes).
    ScaleInDisabled,
    /// In cooldown until this epoch millisecond.
    Cooldown {
        until_ms: i64,
    },
    /// Scale-in is skipped while an ECS deployment is in progress.
    DeploymentInProgress,
    AtMaxCapacity,
    AtMinCapacity,
    /// The computed count is not beyond the desired count in the asked direction.
    AtDesiredCapacity,
    /// No step adjustment covers the metric.
    NoMatchingStep,
    /// The metric (or threshold) is not a finite number.
    NoData,
    /// The target value is not a positive finite number.
    BadTarget,
    /// Some policy wants to scale in but another one (with scale-in enabled) does not.
    OtherPolicyHoldsScaleIn,
    /// [`combine`] was given no decisions.
    NoPolicies,
}

impl Hold {
    /// The `NotScaledReasons[].Code` for a not-scaled activity, where one fits. The mapping of
    /// a deployment in progress to `TargetServicePutResourceAsUnscalable` is ours.
    pub fn not_scaled_code(&self) -> Option<&'static str> {
        match self {
            Hold::AtMaxCapacity => Some("AlreadyAtMaxCapacity"),
            Hold::AtMinCapacity => Some("AlreadyAtMinCapacity"),
            Hold::AtDesiredCapacity => Some("AlreadyAtDesiredCapacity"),
            Hold::DeploymentInProgress => Some("TargetServicePutResourceAsUnscalable"),
            Hold::NotInAlarm
            | Hold::Suspended
            | Hold::ScaleInDisabled
            | Hold::Cooldown { .. }
            | Hold::NoMatchingStep
            | Hold::NoData
            | Hold::BadTarget
            | Hold::OtherPolicyHoldsScaleIn
            | Hold::NoPolicies => None,
        }
    }
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Hold(Hold),
    Scale(Scale),
}

impl Decision {
    /// What a target-tracking policy whose alarms are not in ALARM contributes to [`combine`]:
    /// no change, and, with `DisableScaleIn`, no vote on scale-in either.
    pub fn idle(policy: &TargetTrackingPolicy) -> Decision {
        if policy.disable_scale_in {
            Decision::Hold(Hold::ScaleInDisabled)
        } else {
            Decision::Hold(Hold::NotInAlarm)
        }
    }

    pub fn scale(&self) -> Option<&Scale> {
        match self {
            Decision::Scale(s) => Some(s),
            Decision::Hold(_) => None,
        }
    }

    fn direction(&self) -> Option<Direction> {
        self.scale().map(|s| s.direction)
    }
}

/// `ceil(x)` that ignores floating-point noise (`10 × 66 / 60` is `11.000000000000002`).
fn ceil_conservative(x: f64) -> i64 {
    let nudged = x - 1e-9 * x.abs().max(1.0);
    // `as` saturates for out-of-range values; the caller has checked x is finite.
    nudged.ceil() as i64
}

/// One target-tracking policy's decision (spec B.2) when `trigger` is in ALARM and `metric` is
/// its latest datapoint.
///
/// * AlarmHigh: `want = max(ceil(running × metric / target), running + 1)`, raised to `min`
///   (a desired count set below `min` by hand moves up first) and capped at `max`; from zero
///   running tasks that is `max(1, min)`. During the scale-out cooldown it applies only if
///   `want` exceeds the count the last scale-out set. Nothing when the desired count is
///   already at or above `max`, or already ≥ `want`.
/// * AlarmLow (unless `DisableScaleIn`): `want = ceil(running × metric / target)`, applied
///   only when below `running` and below the desired count; capped at `max` (a desired count
///   set above `max` by hand moves down to `max` even when the formula keeps it) and raised to
///   `min`. Blocked during the policy's scale-in cooldown and during a deployment.
pub fn target_tracking(
    policy: &TargetTrackingPolicy,
    trigger: Trigger,
    metric: f64,
    state: &TargetState,
    now_ms: i64,
) -> Decision {
    if trigger == Trigger::AlarmLow && policy.disable_scale_in {
        return Decision::Hold(Hold::ScaleInDisabled);
    }
    let suspended = match trigger {
        Trigger::AlarmHigh => state.suspended.dynamic_out,
        Trigger::AlarmLow => state.suspended.dynamic_in,
    };
    if suspended {
        return Decision::Hold(Hold::Suspended);
    }
    if !metric.is_finite() {
        return Decision::Hold(Hold::NoData);
    }
    if !(policy.target_value.is_finite() && policy.target_value > 0.0) {
        return Decision::Hold(Hold::BadTarget);
    }
    let running = state.running.max(0);
    let raw = ceil_conservative(running as f64 * metric / policy.target_value);
    match trigger {
        Trigger::AlarmHigh => {
            let want = raw.max(running.saturating_add(1));
            scale_out(
                &policy.name,
                want,
                policy.scale_out_cooldown_s,
                state,
                now_ms,
            )
        }
        Trigger::AlarmLow => {
            let want = if raw < running { raw } else { state.desired };
            scale_in(
                &policy.name,
                want,
                policy.scale_in_cooldown_s,
                state,
                now_ms,
            )
        }
    }
}

/// One step scaling policy's decision (spec B.3) when its alarm (threshold `threshold`) is in
/// ALARM and `metric` is the datapoints aggregated with the policy's `MetricAggregationType`.
///
/// The step is chosen by `metric − threshold`. Its direction is the sign of the adjustment
/// (`ExactCapacity`: whether it is above or below the desired count). A scale-out adds to the
/// running count, a scale-in subtracts from the desired count. `PercentChangeInCapacity`
/// rounds as the user guide says: above 1 down, in (0, 1) to 1, in (−1, 0) to −1, below −1 up
/// (toward zero), then `MinAdjustmentMagnitude` raises a non-zero change to that magnitude;
/// from zero running tasks a positive percentage adds `max(1, MinAdjustmentMagnitude)`.
/// Clamps, cooldowns (the policy's `Cooldown` for both directions), deployments and
/// suspension work as for [`target_tracking`].
pub fn step(
    policy: &StepScalingPolicy,
    threshold: f64,
    metric: f64,
    state: &TargetState,
    now_ms: i64,
) -> Decision {
    if !metric.is_finite() || !threshold.is_finite() {
        return Decision::Hold(Hold::NoData);
    }
    let Some(adj) = policy.step_for(metric - threshold) else {
        return Decision::Hold(Hold::NoMatchingStep);
    };
    let direction = match policy.adjustment_type {
        AdjustmentType::ExactCapacity => adj.adjustment.cmp(&state.desired),
        AdjustmentType::ChangeInCapacity | AdjustmentType::PercentChangeInCapacity => {
            adj.adjustment.cmp(&0)
        }
    };
    let direction = match direction {
        std::cmp::Ordering::Greater => Direction::Out,
        std::cmp::Ordering::Less => Direction::In,
        std::cmp::Ordering::Equal => return Decision::Hold(Hold::AtDesiredCapacity),
    };
    let suspended = match direction {
        Direction::Out => state.suspended.dynamic_out,
        Direction::In => state.suspended.dynamic_in,
    };
    if suspended {
        return Decision::Hold(Hold::Suspended);
    }
    let base = match direction {
        Direction::Out => state.running.max(0),
        Direction::In => state.desired,
    };
    let want = match policy.adjustment_type {
        AdjustmentType::ExactCapacity => adj.adjustment,
        AdjustmentType::ChangeInCapacity => base.saturating_add(adj.adjustment),
        AdjustmentType::PercentChangeInCapacity => base.saturating_add(percent_change(
            base,
            adj.adjustment,
            policy.min_adjustment_magnitude,
        )),
    };
    match direction {
        Direction::Out => scale_out(&policy.name, want, policy.cooldown_s, state, now_ms),
        Direction::In => scale_in(&policy.name, want, policy.cooldown_s, state, now_ms),
    }
}

/// The change `percent` % of `base` makes, rounded as the user guide says (toward zero, but
/// at least ±1), then raised to `min_magnitude`.
pub fn percent_change(base: i64, percent: i64, min_magnitude: Option<i64>) -> i64 {
    let product = i128::from(base) * i128::from(percent);
    let mut change = product / 100; // Rust division truncates toward zero.
    if change == 0 && product != 0 {
        change = product.signum();
    }
    if base == 0 && percent > 0 {
        change = 1;
    }
    if let Some(m) = min_magnitude {
        let m = i128::from(m.max(0));
        if change != 0 && change.abs() < m {
            change = m * change.signum();
        }
    }
    i64::try_from(change).unwrap_or(if change > 0 { i64::MAX } else { i64::MIN })
}

fn scale_out(
    policy: &str,
    want: i64,
    cooldown_s: i64,
    state: &TargetState,
    now_ms: i64,
) -> Decision {
    let max = state.upper();
    if state.desired >= max {
        return Decision::Hold(Hold::AtMaxCapacity);
    }
    let want = want.max(state.min).min(max);
    if let Some(mark) = state.cooldowns.scale_out {
        let until_ms = mark.at_ms.saturating_add(cooldown_s.saturating_mul(1000));
        if now_ms < until_ms && want <= mark.desired {
            return Decision::Hold(Hold::Cooldown { until_ms });
        }
    }
    if want <= state.desired {
        return Decision::Hold(Hold::AtDesiredCapacity);
    }
    Decision::Scale(Scale {
        from: state.desired,
        to: want,
        direction: Direction::Out,
        by: By::Policy(policy.to_string()),
    })
}

fn scale_in(
    policy: &str,
    want: i64,
    cooldown_s: i64,
    state: &TargetState,
    now_ms: i64,
) -> Decision {
    if state.deployment_in_progress {
        return Decision::Hold(Hold::DeploymentInProgress);
    }
    if let Some(&at_ms) = state.cooldowns.scale_in_ms.get(policy) {
        let until_ms = at_ms.saturating_add(cooldown_s.saturating_mul(1000));
        if now_ms < until_ms {
            return Decision::Hold(Hold::Cooldown { until_ms });
        }
    }
    if state.desired <= state.min {
        return Decision::Hold(Hold::AtMinCapacity);
    }
    let want = want.min(state.upper()).max(state.min);
    if want >= state.desired {
        return Decision::Hold(Hold::AtDesiredCapacity);
    }
    Decision::Scale(Scale {
        from: state.desired,
        to: want,
        direction: Direction::In,
        by: By::Policy(policy.to_string()),
    })
}

/// Merges the decisions of all target-tracking policies of one target (one per policy:
/// [`target_tracking`] for those in ALARM, [`Decision::idle`] for the others). Scale out if any
/// wants to; scale in only if every policy that votes on scale-in (all but those with
/// `DisableScaleIn`) wants to; the largest desired count wins either way. Otherwise the first
/// informative hold.
pub fn combine(decisions: &[Decision]) -> Decision {
    let largest = |dir: Direction| {
        decisions
            .iter()
            .filter_map(Decision::scale)
            .filter(|s| s.direction == dir)
            .max_by_key(|s| s.to)
            .cloned()
    };
    if let Some(out) = largest(Direction::Out) {
        return Decision::Scale(out);
    }
    if let Some(scale_in) = largest(Direction::In) {
        let all_in = decisions
            .iter()
            .filter(|d| **d != Decision::Hold(Hold::ScaleInDisabled))
            .all(|d| d.direction() == Some(Direction::In));
        return if all_in {
            Decision::Scale(scale_in)
        } else {
            Decision::Hold(Hold::OtherPolicyHoldsScaleIn)
        };
    }
    let quiet = |d: &&Decision| {
        matches!(
            d,
            Decision::Hold(Hold::NotInAlarm) | Decision::Hold(Hold::ScaleInDisabled)
        )
    };
    decisions
        .iter()
        .find(|d| !quiet(d))
        .or_else(|| decisions.first())
        .cloned()
        .unwrap_or(Decision::Hold(Hold::NoPolicies))
}

/// The change that moves the desired count inside `[min, max]`, if it is outside — after
/// `RegisterScalableTarget` or a scheduled action changed the bounds. Ignores cooldowns and
/// suspension of dynamic scaling (the caller skips scheduled actions while
/// `ScheduledScalingSuspended`).
pub fn bounds(state: &TargetState) -> Option<Scale> {
    let max = state.upper();
    if state.desired < state.min {
        Some(Scale {
            from: state.desired,
            to: state.min,
            direction: Direction::Out,
            by: By::MinCapacity(state.min),
        })
    } else if state.desired > max {
        Some(Scale {
            from: state.desired,
            to: max,
            direction: Direction::In,
            by: By::MaxCapacity(max),
        })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T0: i64 = 1_700_000_000_000;

    fn state(running: i64, desired: i64, min: i64, max: i64) -> TargetState {
        TargetState {
            running,
            desired,
            min,
            max,
            ..TargetState::default()
        }
    }

    fn cpu75() -> TargetTrackingPolicy {
        TargetTrackingPolicy::new("cpu75", 75.0)
    }

    fn to(d: &Decision) -> Option<i64> {
        d.scale().map(|s| s.to)
    }

    fn hold(d: &Decision) -> Option<Hold> {
        match d {
            Decision::Hold(h) => Some(*h),
            Decision::Scale(_) => None,
        }
    }

    // ---- target tracking: the formula ----

    #[test]
    fn target_tracking_scales_out_proportionally() {
        // 4 tasks at 150 % of a 75 % target → ceil(4 × 150 / 75) = 8.
        let d = target_tracking(&cpu75(), Trigger::AlarmHigh, 150.0, &state(4, 4, 1, 10), T0);
        assert_eq!(to(&d), Some(8));
        let s = d.scale().unwrap();
        assert_eq!((s.from, s.direction), (4, Direction::Out));
        assert_eq!(s.by, By::Policy("cpu75".into()));
    }

    #[test]
    fn target_tracking_scale_out_adds_at_least_one() {
        // ceil(4 × 76 / 75) = ceil(4.05) = 5; and barely above target still adds one.
        let d = target_tracking(&cpu75(), Trigger::AlarmHigh, 76.0, &state(4, 4, 1, 10), T0);
        assert_eq!(to(&d), Some(5));
        let d = target_tracking(
            &cpu75(),
            Trigger::AlarmHigh,
            75.01,
            &state(10, 10, 1, 20),
            T0,
        );
        assert_eq!(to(&d), Some(11));
    }

    #[test]
    fn target_tracking_rounds_conservatively() {
        // Out: 3 × 80 / 75 = 3.2 → 4 (never too little). In: 10 × 50 / 75 = 6.67 → 7 (never
        // too much removed); 10 × 66 / 60 is 11.000000000000002 in floating point → 11.
        let d = target_tracking(&cpu75(), Trigger::AlarmHigh, 80.0, &state(3, 3, 1, 10), T0);
        assert_eq!(to(&d), Some(4));
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 50.0, &state(10, 10, 1, 20), T0);
        assert_eq!(to(&d), Some(7));
        let p = TargetTrackingPolicy::new("p", 60.0);
        let d = target_tracking(&p, Trigger::AlarmHigh, 66.0, &state(10, 10, 1, 20), T0);
        assert_eq!(to(&d), Some(11));
    }

    #[test]
    fn target_tracking_scales_in() {
        // 8 tasks at 30 % of 75 % → ceil(3.2) = 4.
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 30.0, &state(8, 8, 1, 10), T0);
        assert_eq!(to(&d), Some(4));
        assert_eq!(d.scale().unwrap().direction, Direction::In);
    }

    #[test]
    fn target_tracking_scale_in_noop_when_not_lower() {
        // 2 tasks at 67 % of 75 % → ceil(1.79) = 2: not lower, nothing to do.
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 67.0, &state(2, 2, 1, 10), T0);
        assert_eq!(hold(&d), Some(Hold::AtDesiredCapacity));
        // A formula result below running but not below desired never raises the count.
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 60.0, &state(10, 6, 1, 20), T0);
        assert_eq!(hold(&d), Some(Hold::AtDesiredCapacity));
    }

    #[test]
    fn target_tracking_clamps_to_max_and_min() {
        let d = target_tracking(&cpu75(), Trigger::AlarmHigh, 300.0, &state(4, 4, 1, 10), T0);
        assert_eq!(to(&d), Some(10));
        let d = target_tracking(
            &cpu75(),
            Trigger::AlarmHigh,
            300.0,
            &state(10, 10, 1, 10),
            T0,
        );
        assert_eq!(hold(&d), Some(Hold::AtMaxCapacity));
        assert_eq!(
            hold(&d).unwrap().not_scaled_code(),
            Some("AlreadyAtMaxCapacity")
        );
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 1.0, &state(8, 8, 3, 10), T0);
        assert_eq!(to(&d), Some(3));
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 1.0, &state(3, 3, 3, 10), T0);
        assert_eq!(hold(&d), Some(Hold::AtMinCapacity));
    }

    #[test]
    fn target_tracking_scales_from_zero() {
        // No running task: the minimum amount, max(1, min).
        let d = target_tracking(&cpu75(), Trigger::AlarmHigh, 500.0, &state(0, 0, 0, 10), T0);
        assert_eq!(to(&d), Some(1));
        let d = target_tracking(&cpu75(), Trigger::AlarmHigh, 500.0, &state(0, 0, 0, 10), T0);
        assert_eq!(d.scale().unwrap().from, 0);
        // Tasks already starting (desired 1, running 0): nothing more.
        let d = target_tracking(&cpu75(), Trigger::AlarmHigh, 500.0, &state(0, 1, 0, 10), T0);
        assert_eq!(hold(&d), Some(Hold::AtDesiredCapacity));
    }

    #[test]
    fn target_tracking_moves_hand_set_desired_inside_first() {
        // Desired 1 set by hand below min 3: a scale-out goes to at least 3.
        let d = target_tracking(&cpu75(), Trigger::AlarmHigh, 80.0, &state(1, 1, 3, 10), T0);
        assert_eq!(to(&d), Some(3));
        // Desired 15 above max 10: a scale-in goes to 10 even though the formula keeps 15.
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 74.0, &state(15, 15, 1, 10), T0);
        assert_eq!(to(&d), Some(10));
        // …and further if the formula says so: ceil(15 × 30 / 75) = 6.
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 30.0, &state(15, 15, 1, 10), T0);
        assert_eq!(to(&d), Some(6));
        // A scale-out never lowers a desired count above max; a scale-in never raises one
        // below min.
        let d = target_tracking(
            &cpu75(),
            Trigger::AlarmHigh,
            200.0,
            &state(15, 15, 1, 10),
            T0,
        );
        assert_eq!(hold(&d), Some(Hold::AtMaxCapacity));
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 10.0, &state(1, 1, 3, 10), T0);
        assert_eq!(hold(&d), Some(Hold::AtMinCapacity));
    }

    #[test]
    fn target_tracking_without_data_or_target_holds() {
        let d = target_tracking(
            &cpu75(),
            Trigger::AlarmHigh,
            f64::NAN,
            &state(4, 4, 1, 10),
            T0,
        );
        assert_eq!(hold(&d), Some(Hold::NoData));
        let p = TargetTrackingPolicy::new("zero", 0.0);
        let d = target_tracking(&p, Trigger::AlarmHigh, 50.0, &state(4, 4, 1, 10), T0);
        assert_eq!(hold(&d), Some(Hold::BadTarget));
    }

    #[test]
    fn target_tracking_disable_scale_in_holds() {
        let mut p = cpu75();
        p.disable_scale_in = true;
        let d = target_tracking(&p, Trigger::AlarmLow, 10.0, &state(8, 8, 1, 10), T0);
        assert_eq!(hold(&d), Some(Hold::ScaleInDisabled));
        let d = target_tracking(&p, Trigger::AlarmHigh, 150.0, &state(4, 4, 1, 10), T0);
        assert_eq!(to(&d), Some(8));
    }

    // ---- cooldowns ----

    #[test]
    fn cooldown_scale_out_only_beyond_the_count_already_set() {
        let p = cpu75();
        let mut st = state(4, 4, 1, 20);
        let d = target_tracking(&p, Trigger::AlarmHigh, 150.0, &st, T0);
        st.record(d.scale().unwrap(), T0);
        assert_eq!(st.desired, 8);
        // A minute later the 4 new tasks are not running yet; same load → 8 again: wait.
        let d = target_tracking(&p, Trigger::AlarmHigh, 150.0, &st, T0 + 60_000);
        assert_eq!(
            hold(&d),
            Some(Hold::Cooldown {
                until_ms: T0 + 300_000
            })
        );
        // Load grew: ceil(4 × 225 / 75) = 12 > 8 → only the extra is added (to 12).
        let d = target_tracking(&p, Trigger::AlarmHigh, 225.0, &st, T0 + 120_000);
        assert_eq!(d.scale().map(|s| (s.from, s.to)), Some((8, 12)));
        // After the cooldown, the computed count is compared with the desired count only.
        st.running = 8;
        let d = target_tracking(&p, Trigger::AlarmHigh, 80.0, &st, T0 + 300_000);
        assert_eq!(to(&d), Some(9));
    }

    #[test]
    fn cooldown_blocks_scale_in() {
        let p = cpu75();
        let mut st = state(8, 8, 1, 20);
        let d = target_tracking(&p, Trigger::AlarmLow, 30.0, &st, T0);
        st.record(d.scale().unwrap(), T0);
        assert_eq!(st.desired, 4);
        st.running = 4;
        let d = target_tracking(&p, Trigger::AlarmLow, 10.0, &st, T0 + 299_999);
        assert_eq!(
            hold(&d),
            Some(Hold::Cooldown {
                until_ms: T0 + 300_000
            })
        );
        let d = target_tracking(&p, Trigger::AlarmLow, 10.0, &st, T0 + 300_000);
        assert_eq!(to(&d), Some(1));
    }

    #[test]
    fn cooldown_scale_out_ends_scale_in_cooldown() {
        let p = cpu75();
        let mut st = state(8, 8, 1, 20);
        let d = target_tracking(&p, Trigger::AlarmLow, 30.0, &st, T0);
        st.record(d.scale().unwrap(), T0);
        st.running = 4;
        // A scale-out during the scale-in cooldown happens at once…
        let d = target_tracking(&p, Trigger::AlarmHigh, 150.0, &st, T0 + 60_000);
        assert_eq!(to(&d), Some(8));
        st.record(d.scale().unwrap(), T0 + 60_000);
        assert!(st.cooldowns.scale_in_ms.is_empty());
        // …and ends the scale-in cooldown: a scale-in is no longer blocked by it.
        st.running = 8;
        let d = target_tracking(&p, Trigger::AlarmLow, 30.0, &st, T0 + 120_000);
        assert_eq!(to(&d), Some(4));
    }

    #[test]
    fn cooldown_scale_in_is_per_policy() {
        let a = cpu75();
        let b = TargetTrackingPolicy::new("mem60", 60.0);
        let mut st = state(8, 8, 1, 20);
        let d = target_tracking(&a, Trigger::AlarmLow, 30.0, &st, T0);
        st.record(d.scale().unwrap(), T0);
        st.running = 4;
        assert!(matches!(
            hold(&target_tracking(&a, Trigger::AlarmLow, 10.0, &st, T0 + 1)),
            Some(Hold::Cooldown { .. })
        ));
        assert_eq!(
            to(&target_tracking(&b, Trigger::AlarmLow, 10.0, &st, T0 + 1)),
            Some(1)
        );
    }

    #[test]
    fn cooldown_zero_never_blocks() {
        let mut p = cpu75();
        p.scale_out_cooldown_s = 0;
        p.scale_in_cooldown_s = 0;
        let mut st = state(4, 4, 1, 20);
        st.record(
            target_tracking(&p, Trigger::AlarmHigh, 150.0, &st, T0)
                .scale()
                .unwrap(),
            T0,
        );
        assert_eq!(
            hold(&target_tracking(&p, Trigger::AlarmHigh, 150.0, &st, T0)),
            Some(Hold::AtDesiredCapacity)
        );
    }

    #[test]
    fn record_bounds_change_starts_no_cooldown() {
        let mut st = state(2, 2, 5, 10);
        let s = bounds(&st).unwrap();
        st.record(&s, T0);
        assert_eq!(st.desired, 5);
        assert_eq!(st.cooldowns, Cooldowns::default());
    }

    // ---- deployments and suspension ----

    #[test]
    fn deployment_in_progress_skips_scale_in_only() {
        let mut st = state(8, 8, 1, 20);
        st.deployment_in_progress = true;
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 30.0, &st, T0);
        assert_eq!(hold(&d), Some(Hold::DeploymentInProgress));
        let d = target_tracking(&cpu75(), Trigger::AlarmHigh, 150.0, &st, T0);
        assert_eq!(to(&d), Some(16));
    }

    #[test]
    fn suspended_states_hold_their_direction() {
        let mut st = state(8, 8, 1, 20);
        st.suspended.dynamic_out = true;
        let d = target_tracking(&cpu75(), Trigger::AlarmHigh, 150.0, &st, T0);
        assert_eq!(hold(&d), Some(Hold::Suspended));
        assert_eq!(
            to(&target_tracking(&cpu75(), Trigger::AlarmLow, 30.0, &st, T0)),
            Some(4)
        );
        st.suspended = Suspended {
            dynamic_in: true,
            ..Suspended::default()
        };
        let d = target_tracking(&cpu75(), Trigger::AlarmLow, 30.0, &st, T0);
        assert_eq!(hold(&d), Some(Hold::Suspended));
        assert_eq!(
            to(&target_tracking(
                &cpu75(),
                Trigger::AlarmHigh,
                150.0,
                &st,
                T0
            )),
            Some(16)
        );
        // Scheduled suspension does not concern policies.
        st.suspended = Suspended {
            scheduled: true,
            ..Suspended::default()
        };
        assert_eq!(
            to(&target_tracking(&cpu75(), Trigger::AlarmLow, 30.0, &st, T0)),
            Some(4)
        );
    }

    // ---- several target-tracking policies ----

    #[test]
    fn combine_scales_out_if_any_and_largest_wins() {
        let st = state(4, 4, 1, 20);
        let cpu = target_tracking(&cpu75(), Trigger::AlarmHigh, 150.0, &st, T0); // 8
        let mem = target_tracking(
            &TargetTrackingPolicy::new("mem50", 50.0),
            Trigger::AlarmHigh,
            150.0,
            &st,
            T0,
        ); // 12
        let low = target_tracking(
            &TargetTrackingPolicy::new("req", 1000.0),
            Trigger::AlarmLow,
            10.0,
            &st,
            T0,
        );
        let d = combine(&[cpu, mem, low]);
        assert_eq!(to(&d), Some(12));
        assert_eq!(d.scale().unwrap().by, By::Policy("mem50".into()));
    }

    #[test]
    fn combine_scales_in_only_if_all_want_to() {
        let st = state(8, 8, 1, 20);
        let cpu = target_tracking(&cpu75(), Trigger::AlarmLow, 30.0, &st, T0); // 4
        let mem_p = TargetTrackingPolicy::new("mem60", 60.0);
        let mem = target_tracking(&mem_p, Trigger::AlarmLow, 45.0, &st, T0); // 6
        assert_eq!(to(&combine(&[cpu.clone(), mem.clone()])), Some(6));
        // Memory not in alarm: no scale-in.
        let d = combine(&[cpu.clone(), Decision::idle(&mem_p)]);
        assert_eq!(hold(&d), Some(Hold::OtherPolicyHoldsScaleIn));
        // A policy with scale-in disabled does not vote.
        let mut quiet = mem_p.clone();
        quiet.disable_scale_in = true;
        assert_eq!(
            to(&combine(&[cpu.clone(), Decision::idle(&quiet)])),
            Some(4)
        );
        let d = target_tracking(&quiet, Trigger::AlarmLow, 10.0, &st, T0);
        assert_eq!(to(&combine(&[cpu, d])), Some(4));
    }

    #[test]
    fn combine_without_scaling_reports_a_hold() {
        let st = state(8, 8, 1, 20);
        let mut s = st.clone();
        s.deployment_in_progress = true;
        let blocked = target_tracking(&cpu75(), Trigger::AlarmLow, 30.0, &s, T0);
        let d = combine(&[Decision::idle(&cpu75()), blocked]);
        assert_eq!(hold(&d), Some(Hold::DeploymentInProgress));
        assert_eq!(
            hold(&combine(&[Decision::idle(&cpu75())])),
            Some(Hold::NotInAlarm)
        );
        assert_eq!(hold(&combine(&[])), Some(Hold::NoPolicies));
    }

    // ---- step scaling ----

    fn pct(steps: &[(Option<f64>, Option<f64>, i64)]) -> StepScalingPolicy {
        StepScalingPolicy {
            name: "step".into(),
            adjustment_type: AdjustmentType::PercentChangeInCapacity,
            steps: steps
                .iter()
                .map(|&(lower, upper, adjustment)| StepAdjustment {
                    lower,
                    upper,
                    adjustment,
                })
                .collect(),
            min_adjustment_magnitude: None,
            cooldown_s: DEFAULT_COOLDOWN_S,
            metric_aggregation: MetricAggregation::Average,
        }
    }

    /// The user guide's example: threshold 50, scale-out steps [0,10) 0 %, [10,20) +10 %,
    /// [20,∞) +30 %; scale-in steps (−10,0] 0 %, (−20,−10] −10 %, (−∞,−20] −30 %.
    fn guide_out() -> StepScalingPolicy {
        pct(&[
            (Some(0.0), Some(10.0), 0),
            (Some(10.0), Some(20.0), 10),
            (Some(20.0), None, 30),
        ])
    }

    fn guide_in() -> StepScalingPolicy {
        pct(&[
            (Some(-10.0), Some(0.0), 0),
            (Some(-20.0), Some(-10.0), -10),
            (None, Some(-20.0), -30),
        ])
    }

    #[test]
    fn step_guide_example_current_ten() {
        let st = state(10, 10, 1, 100);
        assert_eq!(guide_out().check(), Ok(()));
        assert_eq!(guide_in().check(), Ok(()));
        // 40 < metric < 60: unchanged.
        assert_eq!(
            hold(&step(&guide_out(), 50.0, 55.0, &st, T0)),
            Some(Hold::AtDesiredCapacity)
        );
        assert_eq!(
            hold(&step(&guide_in(), 50.0, 45.0, &st, T0)),
            Some(Hold::AtDesiredCapacity)
        );
        // 60 ≤ metric < 70: +10 % of 10 = +1.
        assert_eq!(to(&step(&guide_out(), 50.0, 60.0, &st, T0)), Some(11));
        assert_eq!(to(&step(&guide_out(), 50.0, 69.9, &st, T0)), Some(11));
        // ≥ 70: +30 % of 10 = +3.
        assert_eq!(to(&step(&guide_out(), 50.0, 70.0, &st, T0)), Some(13));
        // 30 < metric ≤ 40: −10 % of 10 = −1.
        assert_eq!(to(&step(&guide_in(), 50.0, 40.0, &st, T0)), Some(9));
        assert_eq!(to(&step(&guide_in(), 50.0, 30.1, &st, T0)), Some(9));
        // ≤ 30: −30 % of 10 = −3.
        assert_eq!(to(&step(&guide_in(), 50.0, 30.0, &st, T0)), Some(7));
    }

    #[test]
    fn step_guide_example_sequence() {
        // The guide's walk-through: 11 tasks at 70 → +30 % of 11 = 3.3 → 14; 14 at 40 → −1.4 →
        // 13; 13 at 30 → −3.9 → 10.
        let st = state(11, 11, 1, 100);
        assert_eq!(to(&step(&guide_out(), 50.0, 70.0, &st, T0)), Some(14));
        let st = state(14, 14, 1, 100);
        assert_eq!(to(&step(&guide_in(), 50.0, 40.0, &st, T0)), Some(13));
        let st = state(13, 13, 1, 100);
        assert_eq!(to(&step(&guide_in(), 50.0, 30.0, &st, T0)), Some(10));
    }

    #[test]
    fn step_percent_rounding_rules() {
        // > 1 rounds down: 12.7 → 12 (127 % of 10).
        assert_eq!(percent_change(10, 127, None), 12);
        // (0, 1) → 1: 0.67 (67 % of 1).
        assert_eq!(percent_change(1, 67, None), 1);
        // (−1, 0) → −1: −0.58 (−58 % of 1).
        assert_eq!(percent_change(1, -58, None), -1);
        // < −1 rounds up: −6.67 → −6 (−667 % of 1, or −23 % of 29 = −6.67).
        assert_eq!(percent_change(29, -23, None), -6);
        // Exact values are kept; zero stays zero.
        assert_eq!(percent_change(10, 10, None), 1);
        assert_eq!(percent_change(10, -100, None), -10);
        assert_eq!(percent_change(10, 0, None), 0);
    }

    #[test]
    fn step_min_adjustment_magnitude_raises_small_changes() {
        // The API reference's example: +25 % of 4 = 1, MinAdjustmentMagnitude 2 → +2.
        assert_eq!(percent_change(4, 25, Some(2)), 2);
        assert_eq!(percent_change(4, -25, Some(2)), -2);
        assert_eq!(percent_change(40, 25, Some(2)), 10);
        assert_eq!(percent_change(4, 0, Some(2)), 0);
        let mut p = pct(&[(Some(0.0), None, 25)]);
        p.min_adjustment_magnitude = Some(2);
        assert_eq!(p.check(), Ok(()));
        assert_eq!(to(&step(&p, 50.0, 80.0, &state(4, 4, 1, 10), T0)), Some(6));
    }

    #[test]
    fn step_percent_from_zero_adds_the_minimum() {
        let mut p = pct(&[(Some(0.0), None, 50)]);
        assert_eq!(to(&step(&p, 1.0, 5.0, &state(0, 0, 0, 10), T0)), Some(1));
        p.min_adjustment_magnitude = Some(3);
        assert_eq!(to(&step(&p, 1.0, 5.0, &state(0, 0, 0, 10), T0)), Some(3));
    }

    #[test]
    fn step_change_in_capacity_and_clamps() {
        let p = StepScalingPolicy {
            adjustment_type: AdjustmentType::ChangeInCapacity,
            ..pct(&[
                (None, Some(-10.0), -2),
                (Some(-10.0), Some(0.0), -1),
                (Some(0.0), Some(10.0), 1),
                (Some(10.0), None, 5),
            ])
        };
        assert_eq!(p.check(), Ok(()));
        assert_eq!(to(&step(&p, 50.0, 55.0, &state(3, 3, 1, 10), T0)), Some(4));
        assert_eq!(to(&step(&p, 50.0, 65.0, &state(3, 3, 1, 10), T0)), Some(8));
        assert_eq!(to(&step(&p, 50.0, 65.0, &state(8, 8, 1, 10), T0)), Some(10));
        assert_eq!(to(&step(&p, 50.0, 45.0, &state(3, 3, 1, 10), T0)), Some(2));
        assert_eq!(to(&step(&p, 50.0, 10.0, &state(3, 3, 2, 10), T0)), Some(2));
        assert_eq!(
            hold(&step(&p, 50.0, 10.0, &state(2, 2, 2, 10), T0)),
            Some(Hold::AtMinCapacity)
        );
    }

    #[test]
    fn step_bounds_inclusive_above_exclusive_below() {
        // Above the threshold lower is inclusive: metric 60 = 50 + 10 is in [10, ∞).
        let p = StepScalingPolicy {
            adjustment_type: AdjustmentType::ChangeInCapacity,
            ..pct(&[(Some(0.0), Some(10.0), 1), (Some(10.0), None, 3)])
        };
        assert_eq!(to(&step(&p, 50.0, 60.0, &state(5, 5, 1, 20), T0)), Some(8));
        assert_eq!(
            to(&step(&p, 50.0, 59.999, &state(5, 5, 1, 20), T0)),
            Some(6)
        );
        assert_eq!(to(&step(&p, 50.0, 50.0, &state(5, 5, 1, 20), T0)), Some(6));
        // Below it upper is inclusive: metric 40 = 50 − 10 is in (−20, −10], not (−10, 0].
        let q = StepScalingPolicy {
            adjustment_type: AdjustmentType::ChangeInCapacity,
            ..pct(&[(Some(-10.0), Some(0.0), -1), (None, Some(-10.0), -3)])
        };
        assert_eq!(to(&step(&q, 50.0, 40.0, &state(5, 5, 1, 20), T0)), Some(2));
        assert_eq!(
            to(&step(&q, 50.0, 40.001, &state(5, 5, 1, 20), T0)),
            Some(4)
        );
        // Exactly at the threshold a scale-in-only policy still matches its top step.
        assert_eq!(to(&step(&q, 50.0, 50.0, &state(5, 5, 1, 20), T0)), Some(4));
        // Outside every step: nothing.
        assert_eq!(
            hold(&step(&p, 50.0, 40.0, &state(5, 5, 1, 20), T0)),
            Some(Hold::NoMatchingStep)
        );
    }

    #[test]
    fn step_exact_capacity_sets_the_count() {
        let p = StepScalingPolicy {
            adjustment_type: AdjustmentType::ExactCapacity,
            ..pct(&[(Some(0.0), Some(50.0), 10), (Some(50.0), None, 20)])
        };
        assert_eq!(p.check(), Ok(()));
        assert_eq!(
            to(&step(&p, 100.0, 120.0, &state(3, 3, 1, 50), T0)),
            Some(10)
        );
        assert_eq!(
            to(&step(&p, 100.0, 170.0, &state(3, 3, 1, 50), T0)),
            Some(20)
        );
        // Below the desired count, ExactCapacity scales in.
        let d = step(&p, 100.0, 120.0, &state(15, 15, 1, 50), T0);
        assert_eq!(
            d.scale().map(|s| (s.to, s.direction)),
            Some((10, Direction::In))
        );
        assert_eq!(
            hold(&step(&p, 100.0, 120.0, &state(10, 10, 1, 50), T0)),
            Some(Hold::AtDesiredCapacity)
        );
        assert_eq!(
            to(&step(&p, 100.0, 170.0, &state(3, 3, 1, 15), T0)),
            Some(15)
        );
    }

    #[test]
    fn step_cooldown_counts_in_flight_capacity() {
        // The guide's example: +2, then during the cooldown a +3 step adds only 1.
        let p = StepScalingPolicy {
            adjustment_type: AdjustmentType::ChangeInCapacity,
            ..pct(&[(Some(0.0), Some(10.0), 2), (Some(10.0), None, 3)])
        };
        let mut st = state(10, 10, 1, 50);
        let d = step(&p, 50.0, 55.0, &st, T0);
        st.record(d.scale().unwrap(), T0);
        assert_eq!(st.desired, 12);
        // Same step again within the cooldown: 10 + 2 = 12 is not beyond 12 → wait.
        assert!(matches!(
            hold(&step(&p, 50.0, 55.0, &st, T0 + 60_000)),
            Some(Hold::Cooldown { .. })
        ));
        // A bigger step: 10 + 3 = 13 → one more.
        let d = step(&p, 50.0, 65.0, &st, T0 + 60_000);
        assert_eq!(d.scale().map(|s| (s.from, s.to)), Some((12, 13)));
    }

    #[test]
    fn step_scale_in_cooldown_and_deployment() {
        let p = StepScalingPolicy {
            adjustment_type: AdjustmentType::ChangeInCapacity,
            cooldown_s: 60,
            ..pct(&[(None, Some(0.0), -1)])
        };
        let mut st = state(5, 5, 1, 10);
        let d = step(&p, 50.0, 20.0, &st, T0);
        st.record(d.scale().unwrap(), T0);
        assert_eq!(
            hold(&step(&p, 50.0, 20.0, &st, T0 + 59_000)),
            Some(Hold::Cooldown {
                until_ms: T0 + 60_000
            })
        );
        assert_eq!(to(&step(&p, 50.0, 20.0, &st, T0 + 60_000)), Some(3));
        st.deployment_in_progress = true;
        assert_eq!(
            hold(&step(&p, 50.0, 20.0, &st, T0 + 60_000)),
            Some(Hold::DeploymentInProgress)
        );
        st.deployment_in_progress = false;
        st.suspended.dynamic_in = true;
        assert_eq!(
            hold(&step(&p, 50.0, 20.0, &st, T0 + 60_000)),
            Some(Hold::Suspended)
        );
    }

    // ---- step validation ----

    fn change(steps: &[(Option<f64>, Option<f64>, i64)]) -> StepScalingPolicy {
        StepScalingPolicy {
            adjustment_type: AdjustmentType::ChangeInCapacity,
            ..pct(steps)
        }
    }

    #[test]
    fn step_check_accepts_valid_configurations() {
        assert_eq!(change(&[(Some(0.0), None, 1)]).check(), Ok(()));
        assert_eq!(change(&[(None, Some(0.0), -1)]).check(), Ok(()));
        // A positive lower bound alone leaves [0, 5) uncovered: allowed.
        assert_eq!(change(&[(Some(5.0), None, 1)]).check(), Ok(()));
        let many: Vec<_> = (0..20)
            .map(|i| {
                let lo = Some(f64::from(i) * 10.0);
                let hi = if i == 19 {
                    None
                } else {
                    Some(f64::from(i + 1) * 10.0)
                };
                (lo, hi, 1)
            })
            .collect();
        assert_eq!(change(&many).check(), Ok(()));
    }

    #[test]
    fn step_check_rejects_each_rule() {
        use StepError::*;
        let cases: Vec<(StepScalingPolicy, StepError)> = vec![
            (change(&[]), NoSteps),
            (change(&[(None, None, 1)]), BothBoundsUnspecified),
            (
                change(&[(Some(10.0), Some(10.0), 1), (Some(10.0), None, 1)]),
                LowerNotBelowUpper,
            ),
            (change(&[(Some(f64::NAN), None, 1)]), NotFinite),
            (
                change(&[(None, Some(-5.0), 1), (None, Some(0.0), 1)]),
                MultipleNullLower,
            ),
            (
                change(&[(Some(0.0), None, 1), (Some(5.0), None, 1)]),
                MultipleNullUpper,
            ),
            (change(&[(Some(-10.0), Some(0.0), -1)]), MissingNullLower),
            (change(&[(Some(0.0), Some(10.0), 1)]), MissingNullUpper),
            (
                change(&[(Some(0.0), Some(20.0), 1), (Some(10.0), None, 2)]),
                Overlap,
            ),
            (
                change(&[(Some(0.0), Some(10.0), 1), (Some(15.0), None, 2)]),
                Gap,
            ),
            (
                change(&[
                    (None, Some(0.0), -1),
                    (Some(0.0), Some(10.0), 1),
                    (Some(20.0), None, 2),
                ]),
                Gap,
            ),
            (
                StepScalingPolicy {
                    adjustment_type: AdjustmentType::ExactCapacity,
                    ..pct(&[(Some(0.0), None, -1)])
                },
                NegativeExactCapacity,
            ),
            (
                StepScalingPolicy {
                    min_adjustment_magnitude: Some(2),
                    ..change(&[(Some(0.0), None, 1)])
                },
                MinAdjustmentMagnitudeNotPercent,
            ),
            (
                StepScalingPolicy {
                    min_adjustment_magnitude: Some(-1),
                    ..pct(&[(Some(0.0), None, 1)])
                },
                NegativeMinAdjustmentMagnitude,
            ),
            (
                StepScalingPolicy {
                    cooldown_s: -1,
                    ..pct(&[(Some(0.0), None, 1)])
                },
                NegativeCooldown,
            ),
        ];
        for (policy, want) in cases {
            assert_eq!(policy.check(), Err(want.clone()), "{:?}", policy.steps);
        }
        let many: Vec<_> = (0..21)
            .map(|i| {
                let lo = Some(f64::from(i) * 10.0);
                let hi = if i == 20 {
                    None
                } else {
                    Some(f64::from(i + 1) * 10.0)
                };
                (lo, hi, 1)
            })
            .collect();
        assert_eq!(change(&many).check(), Err(TooManySteps));
    }

    #[test]
    fn step_error_messages_are_aws_text() {
        assert_eq!(
            StepError::BothBoundsUnspecified.to_string(),
            "Both lower and upper bounds of a step adjustment cannot be left unspecified"
        );
        assert_eq!(
            StepError::TooManySteps.to_string(),
            "There can be at most 20 step adjustments per scaling policy"
        );
    }

    // ---- texts, bounds, storage ----

    #[test]
    fn scale_texts_match_aws_activity() {
        let s = Scale {
            from: 2,
            to: 4,
            direction: Direction::Out,
            by: By::Policy("cpu75".into()),
        };
        assert_eq!(s.description(), "Setting desired count to 4.");
        assert_eq!(
            s.status_message(),
            "Successfully set desired count to 4. Change successfully fulfilled by ecs."
        );
        assert_eq!(
            s.cause("TargetTracking-service/default/web-AlarmHigh-3b6c"),
            "monitor alarm TargetTracking-service/default/web-AlarmHigh-3b6c in state ALARM triggered policy cpu75"
        );
    }

    #[test]
    fn bounds_moves_desired_inside() {
        assert_eq!(bounds(&state(3, 3, 1, 10)), None);
        let s = bounds(&state(1, 1, 3, 10)).unwrap();
        assert_eq!((s.to, s.direction), (3, Direction::Out));
        assert_eq!(s.cause(""), "minimum capacity was set to 3");
        let s = bounds(&state(12, 12, 1, 10)).unwrap();
        assert_eq!((s.to, s.direction), (10, Direction::In));
        assert_eq!(s.cause(""), "maximum capacity was set to 10");
    }

    #[test]
    fn target_state_round_trips_as_json() {
        let mut st = state(4, 4, 1, 10);
        st.suspended.dynamic_in = true;
        st.cooldowns.scale_out = Some(ScaleOutMark {
            at_ms: T0,
            desired: 4,
        });
        st.cooldowns.scale_in_ms.insert("cpu75".into(), T0);
        let json = serde_json::to_string(&st).unwrap();
        assert_eq!(serde_json::from_str::<TargetState>(&json).unwrap(), st);
        // Older records without the optional parts still load.
        let old: TargetState =
            serde_json::from_str(r#"{"running":1,"desired":2,"min":0,"max":5}"#).unwrap();
        assert_eq!(old, state(1, 2, 0, 5));
        let p: TargetTrackingPolicy =
            serde_json::from_str(r#"{"name":"p","target_value":50.0}"#).unwrap();
        assert_eq!(p, TargetTrackingPolicy::new("p", 50.0));
    }

    // ---- properties ----

    fn any_state() -> impl Strategy<Value = TargetState> {
        (
            0i64..60,
            0i64..60,
            0i64..30,
            0i64..40,
            any::<[bool; 4]>(),
            proptest::option::of((0i64..600_000, 0i64..60)),
            proptest::option::of(0i64..600_000),
        )
            .prop_map(|(running, desired, min, extra, flags, out, inn)| {
                let mut st = TargetState {
                    running,
                    desired,
                    min,
                    max: min + extra,
                    suspended: Suspended {
                        dynamic_in: flags[0],
                        dynamic_out: flags[1],
                        scheduled: flags[2],
                    },
                    deployment_in_progress: flags[3],
                    cooldowns: Cooldowns::default(),
                };
                st.cooldowns.scale_out = out.map(|(at_ms, desired)| ScaleOutMark {
                    at_ms: T0 - at_ms,
                    desired,
                });
                if let Some(at) = inn {
                    st.cooldowns.scale_in_ms.insert("p".into(), T0 - at);
                }
                st
            })
    }

    fn any_policy() -> impl Strategy<Value = TargetTrackingPolicy> {
        (1.0f64..200.0, any::<bool>(), 0i64..600, 0i64..600).prop_map(|(t, dis, o, i)| {
            TargetTrackingPolicy {
                name: "p".into(),
                target_value: t,
                disable_scale_in: dis,
                scale_out_cooldown_s: o,
                scale_in_cooldown_s: i,
            }
        })
    }

    fn check_scale(d: &Decision, st: &TargetState) -> Result<(), TestCaseError> {
        if let Decision::Scale(s) = d {
            prop_assert!(
                s.to >= st.min && s.to <= st.max,
                "{s:?} outside [{}, {}]",
                st.min,
                st.max
            );
            prop_assert_eq!(s.from, st.desired);
            match s.direction {
                Direction::Out => prop_assert!(s.to > s.from),
                Direction::In => prop_assert!(s.to < s.from),
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn target_tracking_stays_within_bounds_and_direction(
            p in any_policy(), st in any_state(), m in 0.0f64..1000.0, high in any::<bool>()
        ) {
            let trigger = if high { Trigger::AlarmHigh } else { Trigger::AlarmLow };
            let d = target_tracking(&p, trigger, m, &st, T0);
            check_scale(&d, &st)?;
            if let Decision::Scale(s) = &d {
                let expected = if high { Direction::Out } else { Direction::In };
                prop_assert_eq!(s.direction, expected);
            }
        }

        #[test]
        fn step_stays_within_bounds_and_never_raises_on_scale_in(
            st in any_state(), m in 0.0f64..100.0, adj in -100i64..100, mam in proptest::option::of(0i64..5),
            exact in any::<bool>(),
        ) {
            let mut p = pct(&[(None, Some(0.0), -adj.abs()), (Some(0.0), None, adj.abs())]);
            p.min_adjustment_magnitude = mam;
            if exact {
                p.adjustment_type = AdjustmentType::ExactCapacity;
                p.min_adjustment_magnitude = None;
                p.steps[0].adjustment = adj.abs();
            }
            let d = step(&p, 50.0, m, &st, T0);
            check_scale(&d, &st)?;
            if let Decision::Scale(s) = &d && !exact {
                let expected = if m < 50.0 { Direction::In } else { Direction::Out };
                prop_assert_eq!(s.direction, expected);
            }
        }

        #[test]
        fn percent_change_rounds_toward_zero_but_moves(base in 0i64..10_000, p in -100i64..1000) {
            let c = percent_change(base, p, None);
            let exact = base as f64 * p as f64 / 100.0;
            if p == 0 || (base == 0 && p < 0) {
                prop_assert_eq!(c, 0);
            } else if base == 0 {
                prop_assert_eq!(c, 1);
            } else {
                prop_assert!(c != 0);
                prop_assert!((c as f64).abs() <= exact.abs().max(1.0) + 1e-9);
                prop_assert!((exact - c as f64).abs() < 1.0 || c.abs() == 1);
                prop_assert_eq!(c.signum(), p.signum());
            }
        }

        #[test]
        fn combine_picks_one_of_its_inputs(
            st in any_state(), ms in proptest::collection::vec((0.0f64..300.0, any::<bool>()), 1..4)
        ) {
            let ds: Vec<Decision> = ms
                .iter()
                .enumerate()
                .map(|(i, (m, high))| {
                    let p = TargetTrackingPolicy::new(format!("p{i}"), 50.0);
                    let t = if *high { Trigger::AlarmHigh } else { Trigger::AlarmLow };
                    target_tracking(&p, t, *m, &st, T0)
                })
                .collect();
            let d = combine(&ds);
            if let Decision::Scale(s) = &d {
                prop_assert!(ds.contains(&d));
                if s.direction == Direction::In {
                    prop_assert!(ds.iter().all(|x| x.scale().is_some_and(|y| y.direction == Direction::In)));
                    prop_assert!(ds.iter().filter_map(Decision::scale).all(|y| y.to <= s.to));
                }
            }
            prop_assert_eq!(d.direction() == Some(Direction::Out),
                ds.iter().any(|x| x.direction() == Some(Direction::Out)));
        }
    }
}
