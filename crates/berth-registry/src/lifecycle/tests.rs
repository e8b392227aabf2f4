//! Tests of the lifecycle policy parser and evaluator: AWS's published examples (user guide,
//! "Examples of lifecycle policies in Amazon ECR") as golden tests, every rejection with its
//! exact message, the edge cases (ties, indexes, several tags), and properties (proptest).

use super::*;
use berth_types::oci::Digest;
use proptest::prelude::*;
use std::collections::BTreeMap;

const NOW: Timestamp = Timestamp(1_750_000_000_000);
const HOUR_MS: i64 = 3600 * 1000;

fn ago(days: i64) -> Timestamp {
    Timestamp(NOW.0 - days * DAY_MS)
}

fn digest(n: u64) -> Digest {
    Digest::from_sha256_hex(&format!("{n:064x}"))
}

fn image_at(n: u64, tags: &[&str], pushed_at: Timestamp) -> Image {
    Image {
        digest: digest(n),
        media_type: "application/vnd.oci.image.manifest.v1+json".into(),
        manifest_size: 500,
        image_size: 1000,
        pushed_at,
        last_pull: None,
        tags: tags.iter().map(|t| t.to_string()).collect(),
        blobs: Vec::new(),
        manifests: Vec::new(),
        subject: None,
        artifact_type: None,
        config_media_type: None,
        annotations: BTreeMap::new(),
        scanned_at: None,
        upstream_checked_at: None,
    }
}

/// Image named by a letter (`'A'` → digest 0x41).
fn lettered(name: char, tags: &[&str], pushed_at: Timestamp) -> Image {
    image_at(name as u64, tags, pushed_at)
}

fn policy(text: &str) -> LifecyclePolicy {
    match LifecyclePolicy::parse(text) {
        Ok(p) => p,
        Err(e) => panic!("policy rejected: {e}\n{text}"),
    }
}

/// The letters of the images acted on, in alphabetical order, with their rule priority.
fn outcome(text: &str, images: &[Image]) -> Vec<(char, u32)> {
    let mut r: Vec<(char, u32)> = evaluate(&policy(text), images, NOW)
        .into_iter()
        .map(|e| {
            let n = u32::from_str_radix(e.digest.hex(), 16).expect("test digest");
            (char::from_u32(n).expect("letter"), e.rule_priority)
        })
        .collect();
    r.sort();
    r
}

/// A one-rule policy text around a selection.
fn one_rule(selection: &str) -> String {
    format!(
        r#"{{"rules":[{{"rulePriority":1,"description":"d","selection":{selection},"action":{{"type":"expire"}}}}]}}"#
    )
}

// ---- AWS's examples ----------------------------------------------------------------------

#[test]
fn example_filtering_on_image_age_expires_old_prod_images() {
    // "Filtering on image age": tagPatternList prod*, sinceImagePushed 14 days.
    let text = r#"{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days",
        "selection":{"tagStatus":"tagged","tagPatternList":["prod*"],"countType":"sinceImagePushed",
        "countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;
    let images = [
        lettered('A', &["prod-1"], ago(20)),
        lettered('B', &["prod-2"], ago(10)),
        lettered('C', &["dev-1"], ago(30)),
        lettered('D', &[], ago(30)),
        lettered('E', &["prod-0"], ago(14)), // exactly 14 days: not older than 14
    ];
    assert_eq!(outcome(text, &images), [('A', 1)]);
}

#[test]
fn example_filtering_on_image_age_untagged_older_version() {
    // The older guide's version of the same example: untagged images older than 14 days.
    let text = r#"{"rules":[{"rulePriority":1,"description":"Expire images older than 14 days",
        "selection":{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days",
        "countNumber":14},"action":{"type":"expire"}}]}"#;
    let images = [
        lettered('A', &[], ago(15)),
        lettered('B', &[], ago(13)),
        lettered('C', &["v1"], ago(100)),
    ];
    assert_eq!(outcome(text, &images), [('A', 1)]);
}

#[test]
fn example_filtering_on_image_count_keeps_one_untagged() {
    // "Filtering on image count": keep only one untagged image, expire all others.
    let text = r#"{"rules":[{"rulePriority":1,"description":"Keep only one untagged image, expire all others",
        "selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},
        "action":{"type":"expire"}}]}"#;
    let images = [
        lettered('A', &[], ago(3)),
        lettered('B', &[], ago(2)),
        lettered('C', &[], ago(1)),
        lettered('D', &["latest"], ago(9)),
    ];
    assert_eq!(outcome(text, &images), [('A', 1), ('B', 1)]);
}

fn multiple_rules_repository() -> Vec<Image> {
    vec![
        lettered('A', &["beta-1", "prod-1"], ago(10)),
        lettered('B', &["beta-2", "prod-2"], ago(9)),
        lettered('C', &["beta-3"], ago(8)),
    ]
}

fn two_keep_one_rules(list: &str, first: &str, second: &str) -> String {
    format!(
        r#"{{"rules":[
        {{"rulePriority":1,"description":"Rule 1","selection":{{"tagStatus":"tagged","{list}":["{first}"],
          "countType":"imageCountMoreThan","countNumber":1}},"action":{{"type":"expire"}}}},
        {{"rulePriority":2,"description":"Rule 2","selection":{{"tagStatus":"tagged","{list}":["{second}"],
          "countType":"imageCountMoreThan","countNumber":1}},"action":{{"type":"expire"}}}}]}}"#
    )
}

#[test]
fn example_multiple_rules_a_expires_only_a() {
    // Rule 1 (prod) keeps B and expires A; rule 2 (beta) would mark A and B, but A is taken
    // and B was matched by rule 1. Result: A.
    let images = multiple_rules_repository();
    for (list, prod, beta) in [
        ("tagPrefixList", "prod", "beta"),
        ("tagPatternList", "prod*", "beta*"),
    ] {
        let text = two_keep_one_rules(list, prod, beta);
        assert_eq!(outcome(&text, &images), [('A', 1)], "{list}");
    }
}

#[test]
fn example_multiple_rules_b_expires_a_and_b() {
    // Rule 1 (beta) keeps C and expires A and B; rule 2 (prod) marks nothing more.
    let images = multiple_rules_repository();
    for (list, beta, prod) in [
        ("tagPrefixList", "beta", "prod"),
        ("tagPatternList", "beta*", "prod*"),
    ] {
        let text = two_keep_one_rules(list, beta, prod);
        assert_eq!(outcome(&text, &images), [('A', 1), ('B', 1)], "{list}");
    }
}

#[test]
fn example_multiple_tags_a_needs_every_prefix_and_the_age() {
    // "Filtering on multiple tags in a single rule", Example A: only images carrying both
    // alpha and beta tags (C, F), and of those only the one older than 5 days (C).
    let images = [
        lettered('A', &["alpha-1"], ago(12)),
        lettered('B', &["beta-1"], ago(11)),
        lettered('C', &["alpha-2", "beta-2"], ago(10)),
        lettered('D', &["alpha-3"], ago(4)),
        lettered('E', &["beta-3"], ago(3)),
        lettered('F', &["alpha-4", "beta-4"], ago(2)),
    ];
    for (list, entries) in [
        ("tagPrefixList", r#"["alpha","beta"]"#),
        ("tagPatternList", r#"["alpha*","beta*"]"#),
    ] {
        let text = one_rule(&format!(
            r#"{{"tagStatus":"tagged","{list}":{entries},"countType":"sinceImagePushed","countNumber":5,"countUnit":"days"}}"#
        ));
        assert_eq!(outcome(&text, &images), [('C', 1)], "{list}");
    }
}

#[test]
fn example_multiple_tags_b_tags_are_not_exclusive() {
    // Example B: all three images carry alpha and beta tags (gamma does not matter); keep
    // the newest one. Result: A and B.
    let images = [
        lettered('A', &["alpha-1", "beta-1", "gamma-1"], ago(10)),
        lettered('B', &["alpha-2", "beta-2"], ago(9)),
        lettered('C', &["alpha-3", "beta-3", "gamma-2"], ago(8)),
    ];
    for (list, entries) in [
        ("tagPrefixList", r#"["alpha","beta"]"#),
        ("tagPatternList", r#"["alpha*","beta*"]"#),
    ] {
        let text = one_rule(&format!(
            r#"{{"tagStatus":"tagged","{list}":{entries},"countType":"imageCountMoreThan","countNumber":1}}"#
        ));
        assert_eq!(outcome(&text, &images), [('A', 1), ('B', 1)], "{list}");
    }
}

#[test]
fn example_all_images_a_keeps_the_newest() {
    // "Filtering on all images", Example A: tagStatus any, keep one. Result: A, B and C.
    let images = [
        lettered('A', &["alpha-1"], ago(4)),
        lettered('B', &["beta-1"], ago(3)),
        lettered('C', &[], ago(2)),
        lettered('D', &["alpha-2"], ago(1)),
    ];
    let text = one_rule(r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1}"#);
    assert_eq!(outcome(&text, &images), [('A', 1), ('B', 1), ('C', 1)]);
}

#[test]
fn example_all_images_b_lower_rules_count_claimed_images() {
    // "Filtering on all images", Example B, every rule type in one policy:
    // rule 1 (alpha, keep 1) expires A; rule 2 (untagged older than 1 day) expires B;
    // rule 3 (any, keep 1) sees A–E, keeps the newest (E) and may only mark D.
    // This is the example that settles spec §6.3's ambiguity: were claimed images invisible
    // to rule 3, it would see only D and keep it.
    let images = [
        lettered('A', &["alpha-1", "beta-1"], ago(4)),
        lettered('B', &[], ago(3)),
        lettered('C', &["alpha-2"], ago(2)),
        lettered('D', &["git hash"], ago(1)),
        // "1 day ago" as well, pushed after D (the guide lists images oldest first).
        lettered('E', &[], Timestamp(ago(1).0 + HOUR_MS)),
    ];
    for (list, alpha) in [("tagPrefixList", "alpha"), ("tagPatternList", "alpha*")] {
        let text = format!(
            r#"{{"rules":[
            {{"rulePriority":1,"description":"Rule 1","selection":{{"tagStatus":"tagged","{list}":["{alpha}"],
              "countType":"imageCountMoreThan","countNumber":1}},"action":{{"type":"expire"}}}},
            {{"rulePriority":2,"description":"Rule 2","selection":{{"tagStatus":"untagged",
              "countType":"sinceImagePushed","countUnit":"days","countNumber":1}},"action":{{"type":"expire"}}}},
            {{"rulePriority":3,"description":"Rule 3","selection":{{"tagStatus":"any",
              "countType":"imageCountMoreThan","countNumber":1}},"action":{{"type":"expire"}}}}]}}"#
        );
        assert_eq!(
            outcome(&text, &images),
            [('A', 1), ('B', 2), ('D', 3)],
            "{list}"
        );
    }
}

// ---- idioms and edge cases ---------------------------------------------------------------

#[test]
fn evaluate_protects_the_newest_100_with_a_high_priority_rule() {
    // Rule 1 keeps the newest 100 prod images (expiring older prod ones); rule 2 expires
    // anything older than 14 days, but never a prod image: rule 1 matched them all.
    let mut images = Vec::new();
    for i in 0..150u64 {
        images.push(image_at(i, &[&format!("prod-{i}")], ago(i as i64 + 1)));
    }
    for i in 0..50u64 {
        images.push(image_at(
            1000 + i,
            &[&format!("dev-{i}")],
            ago(i as i64 + 1),
        ));
    }
    let text = r#"{"rules":[
        {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPatternList":["prod*"],
          "countType":"imageCountMoreThan","countNumber":100},"action":{"type":"expire"}},
        {"rulePriority":2,"selection":{"tagStatus":"any","countType":"sinceImagePushed",
          "countUnit":"days","countNumber":14},"action":{"type":"expire"}}]}"#;
    let result = evaluate(&policy(text), &images, NOW);
    let by_rule = |p: u32| -> BTreeSet<Digest> {
        result
            .iter()
            .filter(|e| e.rule_priority == p)
            .map(|e| e.digest.clone())
            .collect()
    };
    let prod_expired: BTreeSet<Digest> = (100..150).map(digest).collect();
    // dev-i is i+1 days old: older than 14 days from i = 14 on.
    let dev_expired: BTreeSet<Digest> = (14..50).map(|i| digest(1000 + i)).collect();
    assert_eq!(by_rule(1), prod_expired);
    assert_eq!(by_rule(2), dev_expired);
    assert_eq!(result.len(), 50 + 36);
}

#[test]
fn evaluate_protect_all_idiom_keeps_matched_images_from_lower_rules() {
    // The "countNumber 9999" idiom: rule 1 never expires anything, yet shields what it matches.
    let images = [
        lettered('A', &["release-1"], ago(400)),
        lettered('B', &["feature-x"], ago(400)),
    ];
    let text = r#"{"rules":[
        {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["release"],
          "countType":"imageCountMoreThan","countNumber":9999},"action":{"type":"expire"}},
        {"rulePriority":10,"selection":{"tagStatus":"any","countType":"sinceImagePushed",
          "countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}"#;
    assert_eq!(outcome(text, &images), [('B', 10)]);
}

#[test]
fn evaluate_image_with_tags_matched_by_different_rules_goes_to_the_first_rule() {
    // A carries tags both rules match; rule 1 (older than 5 days) takes it, rule 2 (keep 1)
    // may not mark it again, and rule 2's own candidate B was matched by rule 1 (kept).
    let images = [
        lettered('A', &["web-1", "api-1"], ago(10)),
        lettered('B', &["web-2", "api-2"], ago(3)),
        lettered('C', &["api-3"], ago(1)),
    ];
    let text = r#"{"rules":[
        {"rulePriority":1,"selection":{"tagStatus":"tagged","tagPrefixList":["web"],
          "countType":"sinceImagePushed","countUnit":"days","countNumber":5},"action":{"type":"expire"}},
        {"rulePriority":2,"selection":{"tagStatus":"tagged","tagPrefixList":["api"],
          "countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}}]}"#;
    assert_eq!(outcome(text, &images), [('A', 1)]);
}

#[test]
fn evaluate_any_rule_runs_after_tagged_rules() {
    // The tagged rule matches v-images and expires none of them (keep 10); the any rule keeps
    // the newest 1 of everything, but may only act on what the tagged rule did not match.
    let images = [
        lettered('A', &["v1"], ago(5)),
        lettered('B', &["x1"], ago(4)),
        lettered('C', &[], ago(3)),
        lettered('D', &["v2"], ago(2)),
        lettered('E', &["x2"], ago(1)),
    ];
    let text = r#"{"rules":[
        {"rulePriority":7,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":1},
          "action":{"type":"expire"}},
        {"rulePriority":3,"selection":{"tagStatus":"tagged","tagPatternList":["v*"],
          "countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}}]}"#;
    let p = policy(text);
    assert_eq!(p.rules()[0].priority, 3, "rules are kept in priority order");
    assert_eq!(outcome(text, &images), [('B', 7), ('C', 7)]);
}

#[test]
fn evaluate_breaks_push_time_ties_by_digest() {
    // Same push time: the smaller digest counts as newer and is the one kept, whatever the
    // input order.
    let t = ago(3);
    let images = vec![
        lettered('B', &[], t),
        lettered('A', &[], t),
        lettered('C', &[], t),
    ];
    let text =
        one_rule(r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#);
    assert_eq!(outcome(&text, &images), [('B', 1), ('C', 1)]);
    let mut reversed = images.clone();
    reversed.reverse();
    assert_eq!(
        evaluate(&policy(&text), &images, NOW),
        evaluate(&policy(&text), &reversed, NOW)
    );
}

#[test]
fn evaluate_pattern_lists_need_every_entry() {
    // ["v1*", "*-rc*"]: one tag may satisfy both entries, or two tags one each; a tag that
    // matches only one entry is not enough. Patterns match whole strings, case-sensitively.
    let images = [
        lettered('A', &["v1.2-rc1"], ago(10)),
        lettered('B', &["v1.2", "build-rc7"], ago(10)),
        lettered('C', &["v1.3"], ago(10)),
        lettered('D', &["x-rc1"], ago(10)),
        lettered('E', &["V1-RC1"], ago(10)),
        lettered('F', &["av1-rc1"], ago(10)),
    ];
    let text = one_rule(
        r#"{"tagStatus":"tagged","tagPatternList":["v1*","*-rc*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    );
    assert_eq!(outcome(&text, &images), [('A', 1), ('B', 1)]);
}

#[test]
fn evaluate_pattern_star_selects_every_tagged_image() {
    let images = [
        lettered('A', &["anything"], ago(10)),
        lettered('B', &[], ago(10)),
    ];
    let text = one_rule(
        r#"{"tagStatus":"tagged","tagPatternList":["*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":1}"#,
    );
    assert_eq!(outcome(&text, &images), [('A', 1)]);
}

#[test]
fn evaluate_since_image_pulled_uses_last_pull_else_push() {
    let mut pulled_recently = lettered('A', &[], ago(100));
    pulled_recently.last_pull = Some(ago(2));
    let mut pulled_long_ago = lettered('B', &[], ago(100));
    pulled_long_ago.last_pull = Some(ago(40));
    let never_pulled = lettered('C', &[], ago(31));
    let text = one_rule(
        r#"{"tagStatus":"untagged","countType":"sinceImagePulled","countUnit":"days","countNumber":30}"#,
    );
    assert_eq!(
        outcome(&text, &[pulled_recently, pulled_long_ago, never_pulled]),
        [('B', 1), ('C', 1)]
    );
}

#[test]
fn evaluate_archive_rules_match_no_berth_image() {
    let text = one_rule(
        r#"{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":1}"#,
    );
    assert!(policy(&text).uses_archive());
    assert_eq!(outcome(&text, &[lettered('A', &[], ago(500))]), []);
}

#[test]
fn evaluate_transition_rules_are_reported_with_their_action() {
    let text = r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"sinceImagePulled",
        "countUnit":"days","countNumber":90},"action":{"type":"transition","targetStorageClass":"archive"}}]}"#;
    let images = [
        lettered('A', &["old"], ago(100)),
        lettered('B', &[], ago(100)),
    ];
    let result = evaluate(&policy(text), &images, NOW);
    assert_eq!(result.len(), 2);
    assert!(result.iter().all(|e| e.action
        == Action::Transition {
            target: StorageClass::Archive
        }
        && e.storage_class == StorageClass::Standard));
    let summary = summarize(&result);
    assert_eq!(summary.expiring, 0);
    assert_eq!(summary.transitioning.get(&StorageClass::Archive), Some(&2));
}

fn index(n: u64, tags: &[&str], pushed_at: Timestamp, children: &[u64]) -> Image {
    let mut i = image_at(n, tags, pushed_at);
    i.media_type = "application/vnd.oci.image.index.v1+json".into();
    i.manifests = children.iter().map(|&c| digest(c)).collect();
    i
}

#[test]
fn evaluate_never_expires_children_of_a_surviving_index() {
    // A multi-arch image: a tagged index over two untagged platform manifests. The untagged
    // rule would expire the children; the index stays, so they stay too. The orphan goes.
    let images = [
        index(1, &["v1"], ago(30), &[2, 3]),
        image_at(2, &[], ago(30)),
        image_at(3, &[], ago(30)),
        image_at(4, &[], ago(30)),
    ];
    let text = one_rule(
        r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":7}"#,
    );
    let result = evaluate(&policy(&text), &images, NOW);
    let digests: Vec<&Digest> = result.iter().map(|e| &e.digest).collect();
    assert_eq!(digests, [&digest(4)]);
}

#[test]
fn evaluate_expires_an_index_before_its_children() {
    // Everything older than 7 days goes: the nested index first, then the inner index, then
    // the platform manifests, whatever their push times.
    let images = [
        image_at(2, &[], ago(40)),
        image_at(3, &[], ago(40)),
        index(5, &[], ago(30), &[2, 3]),
        index(1, &["v1"], ago(20), &[5]),
        image_at(4, &["other"], ago(50)),
    ];
    let text = one_rule(
        r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":7}"#,
    );
    let result = evaluate(&policy(&text), &images, NOW);
    let order: Vec<Digest> = result.iter().map(|e| e.digest.clone()).collect();
    assert_eq!(
        order,
        [digest(1), digest(5), digest(4), digest(2), digest(3)]
    );
    assert_eq!(summarize(&result).expiring, 5);
}

#[test]
fn evaluate_keeps_a_nested_child_when_the_outer_index_survives() {
    // The outer index is new (kept); the inner index and its child are old but referenced.
    let images = [
        image_at(2, &[], ago(40)),
        index(5, &[], ago(30), &[2]),
        index(1, &["v1"], ago(1), &[5]),
    ];
    let text = one_rule(
        r#"{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":7}"#,
    );
    assert!(evaluate(&policy(&text), &images, NOW).is_empty());
}

#[test]
fn tag_status_filter_matches_the_preview_filter() {
    let tagged = vec!["a".to_string()];
    assert!(TagStatus::Tagged.matches(&tagged) && !TagStatus::Tagged.matches(&[]));
    assert!(TagStatus::Untagged.matches(&[]) && !TagStatus::Untagged.matches(&tagged));
    assert!(TagStatus::Any.matches(&[]) && TagStatus::Any.matches(&tagged));
}

// ---- parsing -----------------------------------------------------------------------------

#[test]
fn parse_reads_every_member() {
    let text = r#"{"rules":[
        {"rulePriority":20,"description":"archive stale","selection":{"tagStatus":"tagged",
          "tagPrefixList":["prod","rel-"],"storageClass":"standard","countType":"sinceImagePulled",
          "countUnit":"days","countNumber":90},"action":{"type":"transition","targetStorageClass":"archive"}},
        {"rulePriority":5,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan",
          "countNumber":3},"action":{"type":"expire"}}]}"#;
    let p = policy(text);
    assert_eq!(
        p.rules(),
        [
            Rule {
                priority: 5,
                description: None,
                selection: Selection {
                    tags: TagSelector::Untagged,
                    storage_class: StorageClass::Standard,
                    count: Count::MoreThan(3),
                },
                action: Action::Expire,
            },
            Rule {
                priority: 20,
                description: Some("archive stale".into()),
                selection: Selection {
                    tags: TagSelector::Tagged(TagList::Prefixes(vec![
                        "prod".into(),
                        "rel-".into()
                    ])),
                    storage_class: StorageClass::Standard,
                    count: Count::SincePulled { days: 90 },
                },
                action: Action::Transition {
                    target: StorageClass::Archive
                },
            },
        ]
    );
    assert!(p.uses_archive());
    assert_eq!(p.rule(20).map(|r| r.priority), Some(20));
    assert!(p.rule(6).is_none());
}

#[test]
fn parse_accepts_any_last_per_storage_class_and_one_untagged_per_class() {
    // An archive-class rule may come after the standard class's `any` rule, and each class
    // may have its own untagged rule.
    let text = r#"{"rules":[
        {"rulePriority":1,"selection":{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1},"action":{"type":"expire"}},
        {"rulePriority":2,"selection":{"tagStatus":"any","countType":"sinceImagePushed","countUnit":"days","countNumber":30},"action":{"type":"expire"}},
        {"rulePriority":3,"selection":{"tagStatus":"untagged","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":30},"action":{"type":"expire"}}]}"#;
    assert_eq!(policy(text).rules().len(), 3);
}

#[test]
fn parse_accepts_four_wildcards_and_noncontiguous_priorities() {
    let text = one_rule(
        r#"{"tagStatus":"tagged","tagPatternList":["*test*1*2*3","test*1*2*3*"],"countType":"imageCountMoreThan","countNumber":1}"#,
    )
    .replace("\"rulePriority\":1", "\"rulePriority\":100");
    assert_eq!(policy(&text).rules()[0].priority, 100);
}

fn full(detail: &str) -> String {
    format!(
        "Invalid parameter at 'LifecyclePolicyText' failed to satisfy constraint: 'Lifecycle policy validation failure: {detail}'"
    )
}

fn rejected(text: &str) -> String {
    match LifecyclePolicy::parse(text) {
        Ok(p) => panic!("accepted: {p:?}\n{text}"),
        Err(e) => e.to_string(),
    }
}

const EXPIRE: &str = r#"{"type":"expire"}"#;

fn rule_with(priority: u32, selection: &str, action: &str) -> String {
    format!(r#"{{"rulePriority":{priority},"selection":{selection},"action":{action}}}"#)
}

fn rules(rules: &[String]) -> String {
    format!(r#"{{"rules":[{}]}}"#, rules.join(","))
}

const UNTAGGED_KEEP_1: &str =
    r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":1}"#;

#[test]
fn parse_rejects_malformed_documents_with_awss_messages() {
    let cases: Vec<(String, &str)> = vec![
        (
            "not json at all".into(),
            "Could not map policyString into LifecyclePolicy.",
        ),
        (
            format!("[{}]", rule_with(1, UNTAGGED_KEEP_1, EXPIRE)),
            "Could not map policyString into LifecyclePolicy.",
        ),
        (
            r#"{"no_rules":"test"}"#.into(),
            r#"object has missing required properties (["rules"])"#,
        ),
        (
            r#"{"rules":[],"extra":1}"#.into(),
            r#"object instance has properties which are not allowed by the schema: ["extra"]"#,
        ),
        (
            format!(r#"{{"rules":{}}}"#, rule_with(1, UNTAGGED_KEEP_1, EXPIRE)),
            r#"instance type (object) does not match any allowed primitive type (allowed: ["array"])"#,
        ),
        (
            r#"{"rules":[]}"#.into(),
            "array is too short: must have at least 1 elements but instance has 0 elements",
        ),
        (
            r#"{"rules":["not_dict"]}"#.into(),
            r#"instance type (string) does not match any allowed primitive type (allowed: ["object"])"#,
        ),
        (
            format!(r#"{{"rules":[{{"selection":{UNTAGGED_KEEP_1}}}]}}"#),
            r#"object has missing required properties (["action","rulePriority"])"#,
        ),
        (
            format!(
                r#"{{"rules":[{{"rulePriority":1,"selection":{UNTAGGED_KEEP_1},"action":{EXPIRE},"unknown":123}}]}}"#
            ),
            r#"object instance has properties which are not allowed by the schema: ["unknown"]"#,
        ),
        (
            rules(&[rule_with(0, UNTAGGED_KEEP_1, EXPIRE)]),
            "numeric instance is lower than the required minimum (minimum: 1, found: 0)",
        ),
        (
            rules(&[rule_with(1, UNTAGGED_KEEP_1, EXPIRE)])
                .replace(r#""rulePriority":1"#, r#""rulePriority":"1""#),
            r#"instance type (string) does not match any allowed primitive type (allowed: ["integer"])"#,
        ),
        (
            rules(&[rule_with(1, UNTAGGED_KEEP_1, EXPIRE)])
                .replace(r#""rulePriority":1"#, r#""rulePriority":1.5"#),
            r#"instance type (number) does not match any allowed primitive type (allowed: ["integer"])"#,
        ),
        (
            rules(&[rule_with(1, UNTAGGED_KEEP_1, EXPIRE)])
                .replace(r#""rulePriority":1"#, r#""rulePriority":4294967296"#),
            "Could not map policyString into LifecyclePolicy.",
        ),
        (
            format!(
                r#"{{"rules":[{{"rulePriority":1,"description":7,"selection":{UNTAGGED_KEEP_1},"action":{EXPIRE}}}]}}"#
            ),
            r#"instance type (integer) does not match any allowed primitive type (allowed: ["string"])"#,
        ),
        // selection
        (
            rules(&[rule_with(
                1,
                r#"{"countType":"imageCountMoreThan"}"#,
                EXPIRE,
            )]),
            r#"object has missing required properties (["countNumber","tagStatus"])"#,
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":30,"unknown":1}"#,
                EXPIRE,
            )]),
            r#"object instance has properties which are not allowed by the schema: ["unknown"]"#,
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"unknown","countType":"imageCountMoreThan","countNumber":30}"#,
                EXPIRE,
            )]),
            r#"instance value ("unknown") not found in enum (possible values: ["any","tagged","untagged"])"#,
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"TAGGED","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":30}"#,
                EXPIRE,
            )]),
            r#"instance value ("TAGGED") not found in enum (possible values: ["any","tagged","untagged"])"#,
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"tagged","tagPrefixList":"prod","countType":"imageCountMoreThan","countNumber":30}"#,
                EXPIRE,
            )]),
            r#"instance type (string) does not match any allowed primitive type (allowed: ["array"])"#,
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"tagged","tagPatternList":["a",1],"countType":"imageCountMoreThan","countNumber":30}"#,
                EXPIRE,
            )]),
            r#"instance type (integer) does not match any allowed primitive type (allowed: ["string"])"#,
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","storageClass":"glacier","countType":"imageCountMoreThan","countNumber":30}"#,
                EXPIRE,
            )]),
            r#"instance value ("glacier") not found in enum (possible values: ["archive","standard"])"#,
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":0}"#,
                EXPIRE,
            )]),
            "numeric instance is lower than the required minimum (minimum: 1, found: 0)",
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countNumber":-1}"#,
                EXPIRE,
            )]),
            "numeric instance is lower than the required minimum (minimum: 1, found: -1)",
        ),
        // the selection's oneOf
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","countType":"unknown","countNumber":30}"#,
                EXPIRE,
            )]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countUnit":"days","countNumber":30}"#,
                EXPIRE,
            )]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","countType":"imageCountMoreThan","countUnit":null,"countNumber":30}"#,
                EXPIRE,
            )]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countNumber":30}"#,
                EXPIRE,
            )]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"hours","countNumber":30}"#,
                EXPIRE,
            )]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","storageClass":"archive","countType":"sinceImagePushed","countUnit":"days","countNumber":30}"#,
                EXPIRE,
            )]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","countType":"sinceImageTransitioned","countUnit":"days","countNumber":30}"#,
                EXPIRE,
            )]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        // the action's oneOf
        (
            rules(&[rule_with(1, UNTAGGED_KEEP_1, "{}")]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(1, UNTAGGED_KEEP_1, r#"{"type":"keep"}"#)]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(
                1,
                UNTAGGED_KEEP_1,
                r#"{"type":"expire","targetStorageClass":null}"#,
            )]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(1, UNTAGGED_KEEP_1, r#"{"type":"transition"}"#)]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(
                1,
                UNTAGGED_KEEP_1,
                r#"{"type":"transition","targetStorageClass":"standard"}"#,
            )]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
        (
            rules(&[rule_with(1, UNTAGGED_KEEP_1, r#""expire""#)]),
            "instance failed to match exactly one schema (matched 0 out of 2)",
        ),
    ];
    for (text, detail) in cases {
        assert_eq!(rejected(&text), full(detail), "{text}");
    }
}

#[test]
fn parse_rejects_rule_violations_with_awss_messages() {
    let any_keep = r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":5}"#;
    let prod = r#"{"tagStatus":"tagged","tagPrefixList":["prod"],"countType":"imageCountMoreThan","countNumber":5}"#;
    let cases: Vec<(String, String)> = vec![
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"tagged","countType":"imageCountMoreThan","countNumber":5}"#,
                EXPIRE,
            )]),
            RULE_TAGGED_NEEDS_LIST.into(),
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"tagged","tagPrefixList":[],"countType":"imageCountMoreThan","countNumber":5}"#,
                EXPIRE,
            )]),
            RULE_TAGGED_NEEDS_LIST.into(),
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"tagged","tagPrefixList":["a"],"tagPatternList":["b*"],"countType":"imageCountMoreThan","countNumber":5}"#,
                EXPIRE,
            )]),
            RULE_BOTH_LISTS.into(),
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"untagged","tagPrefixList":["a"],"countType":"imageCountMoreThan","countNumber":5}"#,
                EXPIRE,
            )]),
            RULE_LIST_ONLY_TAGGED.into(),
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"any","tagPatternList":[],"countType":"imageCountMoreThan","countNumber":5}"#,
                EXPIRE,
            )]),
            RULE_LIST_ONLY_TAGGED.into(),
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"tagged","tagPatternList":["ok*","test*1*2*3*4*5*6"],"countType":"imageCountMoreThan","countNumber":5}"#,
                EXPIRE,
            )]),
            "tagPatternList entry 'test*1*2*3*4*5*6' has more than 4 wildcards (*).".into(),
        ),
        (
            rules(&[
                rule_with(2, prod, EXPIRE),
                rule_with(2, UNTAGGED_KEEP_1, EXPIRE),
            ]),
            "Rule priorities must be unique: rulePriority 2 is used by more than one rule.".into(),
        ),
        (
            rules(&[
                rule_with(1, UNTAGGED_KEEP_1, EXPIRE),
                rule_with(
                    2,
                    r#"{"tagStatus":"untagged","countType":"sinceImagePushed","countUnit":"days","countNumber":3}"#,
                    EXPIRE,
                ),
            ]),
            RULE_ONE_UNTAGGED.into(),
        ),
        (
            rules(&[rule_with(1, any_keep, EXPIRE), rule_with(2, prod, EXPIRE)]),
            RULE_ANY_LAST.into(),
        ),
        (
            rules(&[
                rule_with(1, any_keep, EXPIRE),
                rule_with(2, &any_keep.replace('5', "6"), EXPIRE),
            ]),
            RULE_ANY_LAST.into(),
        ),
        (
            rules(&[
                rule_with(
                    1,
                    r#"{"tagStatus":"tagged","tagPrefixList":["b","a"],"countType":"imageCountMoreThan","countNumber":5}"#,
                    EXPIRE,
                ),
                rule_with(
                    2,
                    r#"{"tagStatus":"tagged","tagPrefixList":["a","b"],"countType":"sinceImagePushed","countUnit":"days","countNumber":5}"#,
                    EXPIRE,
                ),
            ]),
            RULE_UNIQUE_PREFIXES.into(),
        ),
        (
            rules(&[rule_with(
                1,
                r#"{"tagStatus":"any","storageClass":"archive","countType":"sinceImageTransitioned","countUnit":"days","countNumber":5}"#,
                r#"{"type":"transition","targetStorageClass":"archive"}"#,
            )]),
            RULE_TRANSITION_STANDARD.into(),
        ),
    ];
    for (text, detail) in cases {
        assert_eq!(rejected(&text), full(&detail), "{text}");
    }
}

#[test]
fn policy_error_maps_to_invalid_parameter() {
    let e = LifecyclePolicy::parse("{").expect_err("not json");
    assert_eq!(
        e.detail(),
        "Could not map policyString into LifecyclePolicy."
    );
    let domain: berth_types::Error = e.clone().into();
    assert_eq!(domain, berth_types::Error::InvalidParameter(e.to_string()));
}

// ---- properties --------------------------------------------------------------------------

/// A generated rule, rendered to JSON (so the parser is exercised too).
#[derive(Debug, Clone)]
enum GenTags {
    Prefixes(Vec<&'static str>),
    Patterns(Vec<&'static str>),
}

#[derive(Debug, Clone)]
struct GenRule {
    tags: GenTags,
    by_count: bool,
    number: u32,
}

fn selection_json(tags: &str, by_count: bool, number: u32) -> String {
    if by_count {
        format!(r#"{{{tags}"countType":"imageCountMoreThan","countNumber":{number}}}"#)
    } else {
        format!(
            r#"{{{tags}"countType":"sinceImagePushed","countUnit":"days","countNumber":{number}}}"#
        )
    }
}

fn list_json(items: &[&str]) -> String {
    serde_json::to_string(items).expect("strings")
}

/// A valid policy: tagged rules, then optionally one untagged rule, then optionally one `any`
/// rule (highest priority). Priorities are spread out and shuffled in the document.
fn policy_text(
    tagged: &[GenRule],
    untagged: Option<(bool, u32)>,
    any: Option<(bool, u32)>,
) -> String {
    let mut rendered = Vec::new();
    let mut priority = 1;
    for r in tagged {
        let tags = match &r.tags {
            GenTags::Prefixes(p) => {
                format!(r#""tagStatus":"tagged","tagPrefixList":{},"#, list_json(p))
            }
            GenTags::Patterns(p) => {
                format!(r#""tagStatus":"tagged","tagPatternList":{},"#, list_json(p))
            }
        };
        rendered.push(rule_with(
            priority,
            &selection_json(&tags, r.by_count, r.number),
            EXPIRE,
        ));
        priority += 3;
    }
    if let Some((by_count, number)) = untagged {
        rendered.push(rule_with(
            priority,
            &selection_json(r#""tagStatus":"untagged","#, by_count, number),
            EXPIRE,
        ));
        priority += 3;
    }
    if let Some((by_count, number)) = any {
        rendered.push(rule_with(
            priority,
            &selection_json(r#""tagStatus":"any","#, by_count, number),
            EXPIRE,
        ));
    }
    rendered.reverse();
    rules(&rendered)
}

const PREFIXES: [&str; 4] = ["a", "b", "ab", "prod"];
const PATTERNS: [&str; 6] = ["a*", "*b*", "prod-*", "*-1", "*", "a*b"];
const TAGS: [&str; 8] = ["a-1", "b-2", "ab", "prod-1", "prod-2", "ba", "x-1", "a-b"];

fn gen_rule() -> impl Strategy<Value = GenRule> {
    let tags = prop_oneof![
        proptest::sample::subsequence(PREFIXES.to_vec(), 1..=2).prop_map(GenTags::Prefixes),
        proptest::sample::subsequence(PATTERNS.to_vec(), 1..=2).prop_map(GenTags::Patterns),
    ];
    (tags, any::<bool>(), 1u32..4).prop_map(|(tags, by_count, number)| GenRule {
        tags,
        by_count,
        number,
    })
}

/// Images 0..n with random tags and push times (many ties), some of them indexes over
/// earlier images.
fn gen_images() -> impl Strategy<Value = Vec<Image>> {
    proptest::collection::vec(
        (
            proptest::sample::subsequence(TAGS.to_vec(), 0..=3),
            0i64..6,
            proptest::collection::vec(0usize..40, 0..=2),
            any::<bool>(),
        ),
        0..25,
    )
    .prop_map(|specs| {
        specs
            .into_iter()
            .enumerate()
            .map(|(i, (tags, age, children, is_index))| {
                let mut img = image_at(i as u64, &tags, ago(age));
                if is_index && i > 0 {
                    img.manifests = children.iter().map(|c| digest((c % i) as u64)).collect();
                }
                img
            })
            .collect()
    })
}

fn gen_policy() -> impl Strategy<Value = String> {
    (
        proptest::collection::vec(gen_rule(), 0..4),
        proptest::option::of((any::<bool>(), 1u32..4)),
        proptest::option::of((any::<bool>(), 1u32..4)),
    )
        .prop_filter("at least one rule", |(t, u, a)| {
            !t.is_empty() || u.is_some() || a.is_some()
        })
        .prop_map(|(t, u, a)| policy_text(&t, u, a))
}

/// The newest-first order `evaluate` documents.
fn newest_first(images: &[Image]) -> Vec<&Image> {
    let mut v: Vec<&Image> = images.iter().collect();
    v.sort_by(|a, b| {
        b.pushed_at
            .0
            .cmp(&a.pushed_at.0)
            .then_with(|| a.digest.cmp(&b.digest))
    });
    v
}

fn selects(rule: &Rule, img: &Image) -> bool {
    rule.selection.matches(&img.tags, StorageClass::Standard)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn evaluate_properties_hold(text in gen_policy(), images in gen_images()) {
        // Repeated tag prefix sets are refused (documented); skip those draws.
        let parsed = LifecyclePolicy::parse(&text);
        prop_assume!(parsed.is_ok());
        let policy = parsed.expect("assumed valid");
        let result = evaluate(&policy, &images, NOW);
        let by_digest: HashMap<&Digest, &Image> = images.iter().map(|i| (&i.digest, i)).collect();
        let expired: BTreeSet<&Digest> = result.iter().map(|e| &e.digest).collect();

        // No image is acted on twice.
        prop_assert_eq!(expired.len(), result.len());

        for e in &result {
            let img = by_digest[&e.digest];
            let rule = policy.rule(e.rule_priority).expect("the rule exists");
            // The rule that acts on an image selects it…
            prop_assert!(selects(rule, img));
            // …and no higher-priority rule does.
            for earlier in policy.rules().iter().filter(|r| r.priority < e.rule_priority) {
                prop_assert!(!selects(earlier, img), "rule {} selects {}", earlier.priority, e.digest);
            }
            match rule.selection.count {
                // Never one of the rule's own `keep` newest.
                Count::MoreThan(keep) => {
                    let rank = newest_first(&images)
                        .into_iter()
                        .filter(|i| selects(rule, i))
                        .position(|i| i.digest == e.digest)
                        .expect("selected");
                    prop_assert!(rank >= keep as usize);
                }
                Count::SincePushed { days } => {
                    prop_assert!(NOW.0 - img.pushed_at.0 > i64::from(days) * DAY_MS);
                }
                _ => prop_assert!(false, "not generated"),
            }
            prop_assert_eq!(&e.tags, &img.tags);
            prop_assert_eq!(e.pushed_at, img.pushed_at);
        }

        // Nothing acted on is referenced by an image that stays; and an index comes before
        // the images it references.
        let position: HashMap<&Digest, usize> =
            result.iter().enumerate().map(|(i, e)| (&e.digest, i)).collect();
        for img in &images {
            for child in &img.manifests {
                match (position.get(&img.digest), position.get(child)) {
                    (None, Some(_)) => prop_assert!(false, "{} stays but {} expires", img.digest, child),
                    (Some(p), Some(c)) if child != &img.digest => prop_assert!(p < c),
                    _ => {}
                }
            }
        }

        // The input order does not matter.
        let mut reversed = images.clone();
        reversed.reverse();
        prop_assert_eq!(&evaluate(&policy, &reversed, NOW), &result);
    }

    #[test]
    fn evaluate_image_count_keeps_at_least_n_of_its_matches(
        rule in gen_rule(),
        images in gen_images(),
    ) {
        let rule = GenRule { by_count: true, ..rule };
        let policy = policy(&policy_text(&[rule], None, None));
        let keep = match policy.rules()[0].selection.count {
            Count::MoreThan(n) => n as usize,
            other => panic!("{other:?}"),
        };
        let result = evaluate(&policy, &images, NOW);
        let expired: BTreeSet<&Digest> = result.iter().map(|e| &e.digest).collect();
        let matched: Vec<&Image> =
            images.iter().filter(|i| selects(&policy.rules()[0], i)).collect();
        let survivors = matched.iter().filter(|i| !expired.contains(&i.digest)).count();
        prop_assert!(survivors >= keep.min(matched.len()));
        // Without indexes in play, exactly the newest `keep` survive.
        if images.iter().all(|i| i.manifests.is_empty()) {
            prop_assert_eq!(survivors, keep.min(matched.len()));
        }
    }
}
