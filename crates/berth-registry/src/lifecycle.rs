//! ECR lifecycle policies (spec/ecr.md §6): the policy document and the one evaluator that
//! both the preview (`StartLifecyclePolicyPreview` / `GetLifecyclePolicyPreview`) and the
//! background expiry use, so that what a preview shows is exactly what expiry does.
//!
//! * [`LifecyclePolicy::parse`] checks `lifecyclePolicyText` as `PutLifecyclePolicy` does and
//!   answers with AWS's `InvalidParameterException` message ([`PolicyError`]). The text's
//!   length (100–30,720) is the model validator's job, not this module's.
//! * [`evaluate`] decides, for one repository snapshot and a `now`, which images the policy
//!   acts on and by which rule ([`Expiration`]); [`summarize`] counts them for the preview's
//!   `summary`, and [`TagStatus::matches`] is the preview's `filter.tagStatus`.
//!
//! Called by `berth-api` (PutLifecyclePolicy, the preview operations) and by the lifecycle
//! background task. Pure: no store, no clock (`now` is an argument), no I/O. It must not
//! delete anything itself; the caller executes the returned list.
//!
//! # Validation messages
//!
//! Every rejection reads `Invalid parameter at 'LifecyclePolicyText' failed to satisfy
//! constraint: 'Lifecycle policy validation failure: <detail>'`. AWS checks the document in two
//! passes, and so does [`LifecyclePolicy::parse`]:
//!
//! 1. **Shape**, against a JSON schema. AWS words these failures as the Java JSON-schema
//!    validator it evidently runs does (`instance failed to match exactly one schema (matched 0
//!    out of 2)` is reported verbatim by users for a `countUnit` on an `imageCountMoreThan`
//!    rule and for a `targetStorageClass` on an `expire` action). Seen in public reports or in
//!    moto (which mirrors AWS): `Could not map policyString into LifecyclePolicy.` (not JSON,
//!    or not an object), `object has missing required properties (["rules"])`, the
//!    `oneOf` message above, `numeric instance is lower than the required minimum (minimum: 1,
//!    found: 0)`. **Guessed** from that validator's message templates (moto's copies differ in
//!    punctuation): unknown members (`object instance has properties which are not allowed by
//!    the schema: ["x"]`), enum values (`instance value ("x") not found in enum (possible
//!    values: [...])`), JSON types (`instance type (string) does not match any allowed
//!    primitive type (allowed: ["integer"])`) and an empty `rules` array (`array is too short:
//!    ...`). Also guessed: the selection's `oneOf` has two branches, count
//!    (`imageCountMoreThan`, no `countUnit`) and age (`since*` with `countUnit: days`); a
//!    storage class that does not fit the count type (`archive` ⇔ `sinceImageTransitioned`)
//!    fails that `oneOf` too; a `rulePriority` or `countNumber` beyond a 32-bit integer cannot
//!    be mapped (`Could not map policyString ...`).
//! 2. **Rules**, in AWS's own sentences. Seen in public reports: `Only one rule can select
//!    Untagged images per storage class.`, `Rule for tagStatus=ANY must have the lowest
//!    priority per storage class.` (the trailing period is a guess), `Must specify
//!    tagPrefixList or tagPatternList when tagStatus=TAGGED.`. **Guessed** wordings (the
//!    constraints themselves are documented in the user guide's "Lifecycle policy properties"
//!    and "evaluation rules"): duplicate priorities, a tag list on an `untagged`/`any` rule,
//!    both lists on one rule, more than four `*` in a pattern, repeated tag prefix sets, and a
//!    `transition` rule that selects archived images. They are the `RULE_*` constants below so
//!    the lead can correct one in one place.
//!
//! # Evaluation (spec/ecr.md §6.3)
//!
//! Rules run in `rulePriority` order (validation puts `any` rules last) over the same snapshot.
//! Each rule's selection matches images by tag status, tag list and storage class; of those,
//! the rule's count type picks candidates; a candidate is acted on unless an earlier rule's
//! *selection* matched it. A rule still counts images claimed by earlier rules towards its
//! "keep N" — AWS's "Filtering on all images, Example B" (images A–E, result A, B and D) comes
//! out right only that way.
//!
//! * Tag lists: every entry must be matched by at least one of the image's tags (`tagPrefixList`
//!   by prefix, `tagPatternList` by whole-string glob with `*`), case-sensitive.
//! * `imageCountMoreThan n`: the matched images are ordered newest first by `pushed_at`; ties
//!   are broken by digest, the smaller digest counting as the newer (so it is the one kept).
//! * `since*` by `n` days: acted on when `now - t > n × 24 h` (strictly older); `t` is the push
//!   time, for `sinceImagePulled` the last recorded pull (the push time if never pulled).
//! * Storage classes: Berth keeps every image in the standard class, so rules that select
//!   `archive` (and `sinceImageTransitioned`) match nothing; `transition` rules are reported
//!   with their action and the caller decides whether it can carry them out.
//! * Image indexes: AWS does not document how lifecycle treats an index's children (its
//!   BatchDeleteImage refuses a child with `ImageReferencedByManifestList`). Here an image
//!   referenced (through `manifests`, transitively) by an image that is not being expired is
//!   never expired; the children of an index that *is* expired may expire in the same run, and
//!   the list puts every index before the images it references, so deleting in list order never
//!   leaves an index pointing at a deleted manifest. Referrers (`subject`) are not followed:
//!   an artifact stands or falls by its own tags.

#[cfg(test)]
mod tests;

use crate::{Image, wildcard_match};
use berth_types::Timestamp;
use berth_types::oci::Digest;
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One day in the millisecond [`Timestamp`] unit.
pub const DAY_MS: i64 = 24 * 3600 * 1000;

/// The fixed part of every rejection.
const PREFIX: &str = "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: \
                      'Lifecycle policy validation failure: ";

const UNMAPPABLE: &str = "Could not map policyString into LifecyclePolicy.";
const ONE_OF: &str = "instance failed to match exactly one schema (matched 0 out of 2)";

/// Seen in public reports (2024–2026 wording, with the archive tier's "per storage class").
pub const RULE_ONE_UNTAGGED: &str = "Only one rule can select Untagged images per storage class.";
/// Seen in public reports; the trailing period is a guess.
pub const RULE_ANY_LAST: &str =
    "Rule for tagStatus=ANY must have the lowest priority per storage class.";
/// Seen in public reports.
pub const RULE_TAGGED_NEEDS_LIST: &str =
    "Must specify tagPrefixList or tagPatternList when tagStatus=TAGGED.";
/// Guessed wording.
pub const RULE_LIST_ONLY_TAGGED: &str =
    "tagPrefixList and tagPatternList can only be specified when tagStatus=TAGGED.";
/// Guessed wording.
pub const RULE_BOTH_LISTS: &str =
    "tagPrefixList and tagPatternList cannot both be specified in the same rule.";
/// Guessed wording (the user guide: "The set of rules must contain a unique set of tag
/// prefixes").
pub const RULE_UNIQUE_PREFIXES: &str =
    "The set of rules must contain a unique set of tag prefixes.";
/// Guessed wording.
pub const RULE_TRANSITION_STANDARD: &str =
    "A rule with action type TRANSITION can only select images in storageClass=STANDARD.";

/// The most `*` one `tagPatternList` entry may hold (user guide, "Tag pattern list").
pub const MAX_WILDCARDS: usize = 4;

/// Why a policy text was refused. [`Display`](std::fmt::Display) is the whole
/// `InvalidParameterException` message, ready for the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// Not JSON, not a JSON object, or a number too large to map.
    #[error("{}{}'", PREFIX, UNMAPPABLE)]
    Unmappable,
    /// The document does not have the policy's shape (worded as AWS's schema validator does).
    #[error("{}{}'", PREFIX, .0)]
    Schema(String),
    /// Well-formed, but breaks one of the policy's rules (priorities, tag lists, …).
    #[error("{}{}'", PREFIX, .0)]
    Rule(String),
}

impl PolicyError {
    /// The `<detail>` part of the message.
    pub fn detail(&self) -> &str {
        match self {
            PolicyError::Unmappable => UNMAPPABLE,
            PolicyError::Schema(d) | PolicyError::Rule(d) => d,
        }
    }
}

impl From<PolicyError> for berth_types::Error {
    fn from(e: PolicyError) -> Self {
        berth_types::Error::InvalidParameter(e.to_string())
    }
}

// ---- the document ------------------------------------------------------------------------

/// A checked lifecycle policy: its rules in `rulePriority` order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicy {
    rules: Vec<Rule>,
}

/// One rule of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `rulePriority`: unique in the policy, ≥ 1; lower runs first.
    pub priority: u32,
    pub description: Option<String>,
    pub selection: Selection,
    pub action: Action,
}

/// Which images a rule looks at, and which of those it acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub tags: TagSelector,
    /// `storageClass` (default `standard`).
    pub storage_class: StorageClass,
    pub count: Count,
}

/// `tagStatus` with its tag list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagSelector {
    /// `tagged`, with the list every image must satisfy.
    Tagged(TagList),
    Untagged,
    Any,
}

/// A `tagged` rule's list: each entry must be matched by at least one of the image's tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagList {
    /// `tagPrefixList`: a tag matches an entry it starts with.
    Prefixes(Vec<String>),
    /// `tagPatternList`: a tag matches an entry as a whole-string glob (`*`: any run).
    Patterns(Vec<String>),
}

/// `countType` with `countNumber` (and `countUnit: days` for the `since*` types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Count {
    /// `imageCountMoreThan`: keep the newest `n`, act on the rest.
    MoreThan(u32),
    /// `sinceImagePushed`: act on images pushed more than `days` ago.
    SincePushed { days: u32 },
    /// `sinceImagePulled`: act on images last pulled (else pushed) more than `days` ago.
    SincePulled { days: u32 },
    /// `sinceImageTransitioned`: act on archived images archived more than `days` ago.
    SinceTransitioned { days: u32 },
}

/// An image storage class (the model's `LifecyclePolicyStorageClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StorageClass {
    Standard,
    Archive,
}

/// What a rule does to the images it picks (the model's `LifecyclePolicyRuleAction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `expire`: delete the image (all its tags), as BatchDeleteImage by digest.
    Expire,
    /// `transition` to another storage class (only `archive` is defined).
    Transition { target: StorageClass },
}

/// An image's tag status, as the preview's `filter.tagStatus` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagStatus {
    Tagged,
    Untagged,
    Any,
}

impl TagStatus {
    /// Whether an image with `tags` has this status.
    pub fn matches(self, tags: &[String]) -> bool {
        match self {
            TagStatus::Tagged => !tags.is_empty(),
            TagStatus::Untagged => tags.is_empty(),
            TagStatus::Any => true,
        }
    }
}

impl TagSelector {
    pub fn status(&self) -> TagStatus {
        match self {
            TagSelector::Tagged(_) => TagStatus::Tagged,
            TagSelector::Untagged => TagStatus::Untagged,
            TagSelector::Any => TagStatus::Any,
        }
    }

    /// Whether an image with `tags` is selected.
    pub fn matches(&self, tags: &[String]) -> bool {
        match self {
            TagSelector::Tagged(list) => !tags.is_empty() && list.matches(tags),
            TagSelector::Untagged => tags.is_empty(),
            TagSelector::Any => true,
        }
    }
}

impl TagList {
    /// Every entry is matched by at least one tag.
    pub fn matches(&self, tags: &[String]) -> bool {
        match self {
            TagList::Prefixes(ps) => ps.iter().all(|p| tags.iter().any(|t| t.starts_with(p))),
            TagList::Patterns(qs) => qs.iter().all(|q| tags.iter().any(|t| wildcard_match(q, t))),
        }
    }
}

impl Selection {
    /// Whether an image with `tags`, currently in `class`, is selected.
    pub fn matches(&self, tags: &[String], class: StorageClass) -> bool {
        self.storage_class == class && self.tags.matches(tags)
    }
}

impl LifecyclePolicy {
    /// Parses and checks `lifecyclePolicyText` as PutLifecyclePolicy does (see the module
    /// documentation for the messages and which of them are guessed).
    pub fn parse(text: &str) -> Result<LifecyclePolicy, PolicyError> {
        let doc: Value = serde_json::from_str(text).map_err(|_| PolicyError::Unmappable)?;
        let root = doc.as_object().ok_or(PolicyError::Unmappable)?;
        members(root, &["rules"], &["rules"])?;
        let items = match &root["rules"] {
            Value::Array(a) => a,
            other => return Err(type_error(other, "array")),
        };
        if items.is_empty() {
            return Err(PolicyError::Schema(
                "array is too short: must have at least 1 elements but instance has 0 elements"
                    .into(),
            ));
        }
        // Pass 1: shape, rule by rule.
        let drafts = items.iter().map(draft).collect::<Result<Vec<_>, _>>()?;
        // Pass 2: each rule on its own, then the rules together.
        let mut rules = drafts
            .into_iter()
            .map(Draft::into_rule)
            .collect::<Result<Vec<_>, _>>()?;
        check_together(&rules)?;
        rules.sort_by_key(|r| r.priority);
        Ok(LifecyclePolicy { rules })
    }

    /// The rules, lowest `rulePriority` first.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The rule with `priority`.
    pub fn rule(&self, priority: u32) -> Option<&Rule> {
        self.rules.iter().find(|r| r.priority == priority)
    }

    /// Whether any rule uses the archive tier (selects `archive` images or transitions), for a
    /// caller that cannot carry those out and would rather say so up front.
    pub fn uses_archive(&self) -> bool {
        self.rules.iter().any(|r| {
            r.selection.storage_class == StorageClass::Archive
                || matches!(r.action, Action::Transition { .. })
        })
    }
}

/// A rule after the shape check, before the rule checks.
struct Draft {
    priority: u32,
    description: Option<String>,
    status: TagStatus,
    prefixes: Option<Vec<String>>,
    patterns: Option<Vec<String>>,
    storage_class: StorageClass,
    count: Count,
    action: Action,
}

fn draft(v: &Value) -> Result<Draft, PolicyError> {
    let rule = object(v)?;
    members(
        rule,
        &["rulePriority", "selection", "action"],
        &["rulePriority", "description", "selection", "action"],
    )?;
    let priority = positive(&rule["rulePriority"])?;
    let description = match rule.get("description") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => return Err(type_error(other, "string")),
    };

    let sel = object(&rule["selection"])?;
    members(
        sel,
        &["tagStatus", "countType", "countNumber"],
        &[
            "tagStatus",
            "tagPrefixList",
            "tagPatternList",
            "storageClass",
            "countType",
            "countUnit",
            "countNumber",
        ],
    )?;
    let status = match one_of_strings(&sel["tagStatus"], &["any", "tagged", "untagged"])? {
        "tagged" => TagStatus::Tagged,
        "untagged" => TagStatus::Untagged,
        _ => TagStatus::Any,
    };
    let prefixes = sel.get("tagPrefixList").map(strings).transpose()?;
    let patterns = sel.get("tagPatternList").map(strings).transpose()?;
    let storage_class = match sel.get("storageClass") {
        None => StorageClass::Standard,
        Some(v) => match one_of_strings(v, &["archive", "standard"])? {
            "archive" => StorageClass::Archive,
            _ => StorageClass::Standard,
        },
    };
    let number = positive(&sel["countNumber"])?;
    let count = count(sel, number, storage_class)?;
    let action = action(&rule["action"])?;
    Ok(Draft {
        priority,
        description,
        status,
        prefixes,
        patterns,
        storage_class,
        count,
        action,
    })
}

/// The selection's `oneOf`: a count branch and an age branch, each tied to its storage class.
fn count(sel: &Map<String, Value>, n: u32, class: StorageClass) -> Result<Count, PolicyError> {
    let days = || match sel.get("countUnit") {
        Some(Value::String(u)) if u == "days" => Some(n),
        _ => None,
    };
    let count = match sel["countType"].as_str() {
        Some("imageCountMoreThan") if !sel.contains_key("countUnit") => Some(Count::MoreThan(n)),
        Some("sinceImagePushed") => days().map(|days| Count::SincePushed { days }),
        Some("sinceImagePulled") => days().map(|days| Count::SincePulled { days }),
        Some("sinceImageTransitioned") => days().map(|days| Count::SinceTransitioned { days }),
        _ => None,
    };
    let fits = |c: &Count| {
        matches!(c, Count::SinceTransitioned { .. }) == (class == StorageClass::Archive)
    };
    count
        .filter(fits)
        .ok_or_else(|| PolicyError::Schema(ONE_OF.into()))
}

/// The action's `oneOf`: `{"type":"expire"}` or `{"type":"transition","targetStorageClass":
/// "archive"}`, nothing else.
fn action(v: &Value) -> Result<Action, PolicyError> {
    let obj = v.as_object();
    let get = |k: &str| obj.and_then(|o| o.get(k)).and_then(Value::as_str);
    let len = obj.map_or(0, Map::len);
    match (get("type"), get("targetStorageClass"), len) {
        (Some("expire"), None, 1) => Ok(Action::Expire),
        (Some("transition"), Some("archive"), 2) => Ok(Action::Transition {
            target: StorageClass::Archive,
        }),
        _ => Err(PolicyError::Schema(ONE_OF.into())),
    }
}

impl Draft {
    /// The checks that concern one rule on its own.
    fn into_rule(self) -> Result<Rule, PolicyError> {
        let rule_err = |m: &str| PolicyError::Rule(m.to_string());
        let tags = match self.status {
            TagStatus::Tagged => match (self.prefixes, self.patterns) {
                (Some(_), Some(_)) => return Err(rule_err(RULE_BOTH_LISTS)),
                (Some(p), None) if !p.is_empty() => TagSelector::Tagged(TagList::Prefixes(p)),
                (None, Some(p)) if !p.is_empty() => {
                    if let Some(bad) = p.iter().find(|q| q.matches('*').count() > MAX_WILDCARDS) {
                        return Err(PolicyError::Rule(format!(
                            "tagPatternList entry '{bad}' has more than {MAX_WILDCARDS} wildcards (*)."
                        )));
                    }
                    TagSelector::Tagged(TagList::Patterns(p))
                }
                _ => return Err(rule_err(RULE_TAGGED_NEEDS_LIST)),
            },
            TagStatus::Untagged | TagStatus::Any => {
                if self.prefixes.is_some() || self.patterns.is_some() {
                    return Err(rule_err(RULE_LIST_ONLY_TAGGED));
                }
                if self.status == TagStatus::Untagged {
                    TagSelector::Untagged
                } else {
                    TagSelector::Any
                }
            }
        };
        if matches!(self.action, Action::Transition { .. })
            && self.storage_class != StorageClass::Standard
        {
            return Err(rule_err(RULE_TRANSITION_STANDARD));
        }
        Ok(Rule {
            priority: self.priority,
            description: self.description,
            selection: Selection {
                tags,
                storage_class: self.storage_class,
                count: self.count,
            },
            action: self.action,
        })
    }
}

/// The checks that concern the rules together.
fn check_together(rules: &[Rule]) -> Result<(), PolicyError> {
    let mut priorities = BTreeSet::new();
    for r in rules {
        if !priorities.insert(r.priority) {
            return Err(PolicyError::Rule(format!(
                "Rule priorities must be unique: rulePriority {} is used by more than one rule.",
                r.priority
            )));
        }
    }
    for class in [StorageClass::Standard, StorageClass::Archive] {
        let in_class: Vec<&Rule> = rules
            .iter()
            .filter(|r| r.selection.storage_class == class)
            .collect();
        let untagged = in_class
            .iter()
            .filter(|r| r.selection.tags == TagSelector::Untagged)
            .count();
        if untagged > 1 {
            return Err(PolicyError::Rule(RULE_ONE_UNTAGGED.into()));
        }
        let highest = in_class.iter().map(|r| r.priority).max();
        if in_class
            .iter()
            .any(|r| r.selection.tags == TagSelector::Any && Some(r.priority) != highest)
        {
            return Err(PolicyError::Rule(RULE_ANY_LAST.into()));
        }
        let mut prefix_sets = BTreeSet::new();
        for r in &in_class {
            if let TagSelector::Tagged(TagList::Prefixes(ps)) = &r.selection.tags {
                let set: BTreeSet<&str> = ps.iter().map(String::as_str).collect();
                if !prefix_sets.insert(set) {
                    return Err(PolicyError::Rule(RULE_UNIQUE_PREFIXES.into()));
                }
            }
        }
    }
    Ok(())
}

// ---- schema-style checks, worded as AWS's validator words them ----------------------------

/// The JSON-schema name of a value's type.
fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `["a","b"]`, as the validator prints a list of names.
fn name_list<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names
        .iter()
        .map(|n| Value::String(n.as_ref().to_string()).to_string())
        .collect();
    format!("[{}]", quoted.join(","))
}

fn type_error(v: &Value, allowed: &str) -> PolicyError {
    PolicyError::Schema(format!(
        "instance type ({}) does not match any allowed primitive type (allowed: [\"{allowed}\"])",
        json_type(v)
    ))
}

fn object(v: &Value) -> Result<&Map<String, Value>, PolicyError> {
    v.as_object().ok_or_else(|| type_error(v, "object"))
}

/// `required` then `additionalProperties: false`, names sorted.
fn members(
    obj: &Map<String, Value>,
    required: &[&str],
    allowed: &[&str],
) -> Result<(), PolicyError> {
    let mut missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| !obj.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        missing.sort_unstable();
        return Err(PolicyError::Schema(format!(
            "object has missing required properties ({})",
            name_list(&missing)
        )));
    }
    let mut extra: Vec<&str> = obj
        .keys()
        .map(String::as_str)
        .filter(|k| !allowed.contains(k))
        .collect();
    if !extra.is_empty() {
        extra.sort_unstable();
        return Err(PolicyError::Schema(format!(
            "object instance has properties which are not allowed by the schema: {}",
            name_list(&extra)
        )));
    }
    Ok(())
}

/// An integer ≥ 1 that fits the 32-bit field AWS maps it to.
fn positive(v: &Value) -> Result<u32, PolicyError> {
    let Value::Number(n) = v else {
        return Err(type_error(v, "integer"));
    };
    if n.is_f64() {
        return Err(type_error(v, "integer"));
    }
    match n.as_i64() {
        Some(i) if i < 1 => Err(PolicyError::Schema(format!(
            "numeric instance is lower than the required minimum (minimum: 1, found: {i})"
        ))),
        Some(i) => u32::try_from(i)
            .ok()
            .filter(|&u| u <= i32::MAX as u32)
            .ok_or(PolicyError::Unmappable),
        // Above i64::MAX.
        None => Err(PolicyError::Unmappable),
    }
}

/// A string from `values`.
fn one_of_strings<'a>(v: &'a Value, values: &[&str]) -> Result<&'a str, PolicyError> {
    match v.as_str() {
        Some(s) if values.contains(&s) => Ok(s),
        _ => Err(PolicyError::Schema(format!(
            "instance value ({v}) not found in enum (possible values: {})",
            name_list(values)
        ))),
    }
}

/// An array of strings.
fn strings(v: &Value) -> Result<Vec<String>, PolicyError> {
    let Value::Array(items) = v else {
        return Err(type_error(v, "array"));
    };
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .ok_or_else(|| type_error(i, "string"))
        })
        .collect()
}

// ---- the evaluator -----------------------------------------------------------------------

/// One image the policy acts on: what the preview lists (`LifecyclePolicyPreviewResult`) and
/// what the expiry task carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiration {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub pushed_at: Timestamp,
    /// The image's storage class now (the preview's `storageClass`).
    pub storage_class: StorageClass,
    /// The rule that acts on it (`appliedRulePriority`).
    pub rule_priority: u32,
    pub action: Action,
}

/// The preview's `summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviewSummary {
    /// `expiringImageTotalCount`.
    pub expiring: usize,
    /// `transitioningImageTotalCounts`, by target class (absent when empty).
    pub transitioning: BTreeMap<StorageClass, usize>,
}

/// Counts an evaluation's results for the preview's `summary`.
pub fn summarize(results: &[Expiration]) -> PreviewSummary {
    let mut s = PreviewSummary::default();
    for e in results {
        match e.action {
            Action::Expire => s.expiring += 1,
            Action::Transition { target } => *s.transitioning.entry(target).or_default() += 1,
        }
    }
    s
}

/// The storage class an image is in. Berth has no archive tier: every image is standard.
fn storage_class_of(_: &Image) -> StorageClass {
    StorageClass::Standard
}

/// Whether `t` is more than `days` days before `now`.
fn older_than(t: Timestamp, days: u32, now: Timestamp) -> bool {
    now.0.saturating_sub(t.0) > i64::from(days) * DAY_MS
}

/// Which images of one repository `policy` acts on at `now`, and by which rule (see the module
/// documentation for the semantics). `images` is the repository's whole snapshot, one record
/// per digest, in any order.
///
/// The result lists each image at most once, every image index before the images it
/// references (delete in list order), then by rule priority, push time (oldest first) and
/// digest. Preview and expiry both call this; the preview filters the result by
/// [`TagStatus::matches`] on `tags`.
pub fn evaluate(policy: &LifecyclePolicy, images: &[Image], now: Timestamp) -> Vec<Expiration> {
    let n = images.len();
    // Newest first; on equal push times the smaller digest counts as newer.
    let mut newest_first: Vec<usize> = (0..n).collect();
    newest_first.sort_by(|&a, &b| {
        let (a, b) = (&images[a], &images[b]);
        b.pushed_at
            .0
            .cmp(&a.pushed_at.0)
            .then_with(|| a.digest.cmp(&b.digest))
    });
    let classes: Vec<StorageClass> = images.iter().map(storage_class_of).collect();

    // decided[i]: the index (into policy.rules) of the rule that acts on image i.
    let mut decided: Vec<Option<usize>> = vec![None; n];
    // claimed[i]: an earlier rule's selection matched image i.
    let mut claimed = vec![false; n];
    let mut matched = Vec::with_capacity(n);
    for (ri, rule) in policy.rules.iter().enumerate() {
        matched.clear();
        let sel = &rule.selection;
        for &i in &newest_first {
            let img = &images[i];
            if !sel.matches(&img.tags, classes[i]) {
                continue;
            }
            matched.push(i);
            let candidate = match sel.count {
                // This image is the matched.len()-th newest.
                Count::MoreThan(keep) => matched.len() > keep as usize,
                Count::SincePushed { days } => older_than(img.pushed_at, days, now),
                Count::SincePulled { days } => {
                    older_than(img.last_pull.unwrap_or(img.pushed_at), days, now)
                }
                // Berth records no transition times (no image is ever archived).
                Count::SinceTransitioned { .. } => false,
            };
            if candidate && !claimed[i] {
                decided[i] = Some(ri);
            }
        }
        for &i in &matched {
            claimed[i] = true;
        }
    }

    let expires = |d: Option<usize>| d.is_some_and(|ri| policy.rules[ri].action == Action::Expire);
    let by_digest: HashMap<&Digest, usize> = images
        .iter()
        .enumerate()
        .map(|(i, m)| (&m.digest, i))
        .collect();

    // An image referenced by one that stays is kept, and so is everything it references.
    let mut stack: Vec<usize> = (0..n).filter(|&i| !expires(decided[i])).collect();
    while let Some(i) = stack.pop() {
        for child in &images[i].manifests {
            if let Some(&c) = by_digest.get(child)
                && expires(decided[c])
            {
                decided[c] = None;
                stack.push(c);
            }
        }
    }

    // Height among the expiring images: an index above the manifests it references.
    let mut height: Vec<Option<usize>> = vec![None; n];
    let mut out: Vec<(usize, usize)> = Vec::new();
    for i in 0..n {
        if decided[i].is_some() {
            let h = expiring_height(i, images, &by_digest, &decided, &mut height, 0);
            out.push((h, i));
        }
    }
    out.sort_by(|&(ha, a), &(hb, b)| {
        let (ia, ib) = (&images[a], &images[b]);
        hb.cmp(&ha)
            .then_with(|| decided[a].cmp(&decided[b]))
            .then_with(|| ia.pushed_at.0.cmp(&ib.pushed_at.0))
            .then_with(|| ia.digest.cmp(&ib.digest))
    });
    out.into_iter()
        .filter_map(|(_, i)| {
            let rule = &policy.rules[decided[i]?];
            let img = &images[i];
            Some(Expiration {
                digest: img.digest.clone(),
                tags: img.tags.clone(),
                pushed_at: img.pushed_at,
                storage_class: classes[i],
                rule_priority: rule.priority,
                action: rule.action,
            })
        })
        .collect()
}

/// Nesting deeper than this is not followed (content addressing rules out cycles; this only
/// bounds the recursion on damaged records).
const MAX_INDEX_DEPTH: usize = 16;

/// 0 for an image that references no other acted-on image, else 1 + the largest height of
/// those it references.
fn expiring_height(
    i: usize,
    images: &[Image],
    by_digest: &HashMap<&Digest, usize>,
    decided: &[Option<usize>],
    memo: &mut [Option<usize>],
    depth: usize,
) -> usize {
    if let Some(h) = memo[i] {
        return h;
    }
    if depth >= MAX_INDEX_DEPTH {
        return 0;
    }
    let mut h = 0;
    for child in &images[i].manifests {
        if let Some(&c) = by_digest.get(child)
            && c != i
            && decided[c].is_some()
        {
            h = h.max(1 + expiring_height(c, images, by_digest, decided, memo, depth + 1));
        }
    }
    memo[i] = Some(h);
    h
}
