//! Golden tests: every example of AWS's FilterAndPatternSyntax page (the current page, and the
//! archived awsdocs/amazon-cloudwatch-logs-user-guide version where it has examples the
//! current one dropped), with the page's own log lines and expected matches; invalid
//! patterns; metric values and dimensions; properties of the matcher.

use super::*;
use proptest::prelude::*;

fn p(text: &str) -> Pattern {
    Pattern::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The lines of `log` that `pattern` matches.
fn hits<'a>(pattern: &str, log: &[&'a str]) -> Vec<&'a str> {
    let pat = p(pattern);
    log.iter().copied().filter(|l| pat.matches(l)).collect()
}

/// The current page's unstructured example log (timestamps dropped: they are not part of
/// the messages the examples list).
const UNSTRUCTURED: [&str; 12] = [
    "[INFO 200] SUCCESSFUL REQUEST",
    "[ERROR 401] UNAUTHORIZED REQUEST",
    "[ERROR 400] BAD REQUEST",
    "[ERROR 419] MISSING ARGUMENTS",
    "[ERROR 420] INVALID ARGUMENTS",
    "[ERROR 500] INTERNAL SERVER ERROR",
    "[SUCCESS 200] AUTHORIZED REQUEST",
    "[INFO] REQUEST FAILED",
    "[WARN] UNAUTHORIZED REQUEST",
    "[WARNING 404] PAGE NOT FOUND",
    "[DEBUG 500] DEBUGGING INTERNAL INVALID",
    "[ERROR] 400 BAD REQUEST",
];

#[test]
fn terms_single_term() {
    assert_eq!(
        hits("ERROR", &UNSTRUCTURED),
        vec![
            "[ERROR 401] UNAUTHORIZED REQUEST",
            "[ERROR 400] BAD REQUEST",
            "[ERROR 419] MISSING ARGUMENTS",
            "[ERROR 420] INVALID ARGUMENTS",
            "[ERROR 500] INTERNAL SERVER ERROR",
            "[ERROR] 400 BAD REQUEST",
        ]
    );
}

#[test]
fn terms_multiple_terms_all_must_appear() {
    assert_eq!(
        hits("ERROR ARGUMENTS", &UNSTRUCTURED),
        vec![
            "[ERROR 419] MISSING ARGUMENTS",
            "[ERROR 420] INVALID ARGUMENTS"
        ]
    );
}

#[test]
fn terms_optional_terms_any_may_appear() {
    assert_eq!(
        hits("?ERROR ?ARGUMENTS", &UNSTRUCTURED),
        hits("ERROR", &UNSTRUCTURED)
    );
}

#[test]
fn terms_optional_terms_are_ignored_beside_other_terms() {
    let got = hits("?ERROR ?ARGUMENTS REQUEST", &UNSTRUCTURED);
    for listed in [
        "[INFO 200] SUCCESSFUL REQUEST",
        "[WARN] UNAUTHORIZED REQUEST",
        "[ERROR] 400 BAD REQUEST",
        "[SUCCESS 200] AUTHORIZED REQUEST",
        "[INFO] REQUEST FAILED",
    ] {
        assert!(got.contains(&listed), "{listed}");
    }
    assert_eq!(got, hits("REQUEST", &UNSTRUCTURED));
}

#[test]
fn terms_exact_phrase() {
    assert_eq!(
        hits("\"INTERNAL SERVER ERROR\"", &UNSTRUCTURED),
        vec!["[ERROR 500] INTERNAL SERVER ERROR"]
    );
}

#[test]
fn terms_include_and_exclude() {
    assert_eq!(
        hits("ERROR -ARGUMENTS", &UNSTRUCTURED),
        vec![
            "[ERROR 401] UNAUTHORIZED REQUEST",
            "[ERROR 400] BAD REQUEST",
            "[ERROR 500] INTERNAL SERVER ERROR",
            "[ERROR] 400 BAD REQUEST",
        ]
    );
}

#[test]
fn terms_blank_phrase_and_empty_pattern_match_everything() {
    for pattern in ["", "   ", "\" \"", "\"   \"", "\"\""] {
        assert_eq!(
            hits(pattern, &UNSTRUCTURED).len(),
            UNSTRUCTURED.len(),
            "{pattern:?}"
        );
    }
    assert!(p("").matches_everything());
}

#[test]
fn regex_standalone_authorized() {
    assert_eq!(
        hits("%AUTHORIZED%", &UNSTRUCTURED),
        vec![
            "[ERROR 401] UNAUTHORIZED REQUEST",
            "[SUCCESS 200] AUTHORIZED REQUEST",
            "[WARN] UNAUTHORIZED REQUEST",
        ]
    );
    assert_eq!(p("%AUTHORIZED%").kind(), PatternKind::Regex);
}

/// The archived page's term examples.
#[test]
fn terms_archived_examples() {
    let log = [
        "[ERROR] A fatal exception has occurred",
        "Exiting with ERRORCODE: -1",
    ];
    assert_eq!(hits("ERROR", &log), log.to_vec());
    assert_eq!(hits("\"ERROR\" - \"Exiting\"", &log), vec![log[0]]);
    let log = [
        "[ERROR] Caught IllegalArgumentException",
        "[ERROR] Unhandled Exception",
    ];
    assert_eq!(hits("ERROR Exception", &log), log.to_vec());
    let log = [
        "[WARN] Failed to process the request",
        "[ERROR] Unable to continue: Failed to process the request",
    ];
    assert_eq!(hits("Failed to process the request", &log), log.to_vec());
    let log = ["ERROR WARN message", "ERROR message", "WARN message"];
    assert_eq!(hits("ERROR", &log), vec![log[0], log[1]]);
    assert_eq!(hits("?ERROR ?WARN", &log), log.to_vec());
    assert_eq!(hits("ERROR WARN", &log), vec![log[0]]);
    assert_eq!(hits("ERROR -WARN", &log), vec![log[1]]);
    assert_eq!(hits("-WARN", &log), vec![log[1]]);
}

#[test]
fn terms_are_case_sensitive() {
    assert!(!p("error").matches("[ERROR] x"));
    assert!(p("ERROR").matches("ERRORNEOUS"));
}

/// The current page's JSON log event.
const JSON_EVENT: &str = r#"{"eventType": "UpdateTrail", "sourceIPAddress": "111.111.111.111",
 "arrayKey": ["value", "another value"],
 "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
 "SomeObject": null, "cluster.name": "c"}"#;

/// The archived page's event: the same, with `ThisFlag` and without `cluster.name`.
const JSON_EVENT_ARCHIVED: &str = r#"{"eventType": "UpdateTrail", "sourceIPAddress": "111.111.111.111",
 "arrayKey": ["value", "another value"],
 "objectList": [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
 "SomeObject": null, "ThisFlag": true}"#;

#[test]
fn json_examples_that_match() {
    for pattern in [
        r#"{ $.eventType = "UpdateTrail" }"#,
        "{ $.sourceIPAddress != 123.123.* }",
        r#"{ $.arrayKey[0] = "value" }"#,
        "{ $.eventType = %Trail% }",
        "{ $.arrayKey[*] = %val.{2}% }",
        r"{ $.* = %111\.111\.111\.1[0-9]{1,2}% }",
        r#"{ $.['cluster.name'] = "c" }"#,
        "{ $.SomeObject IS NULL }",
        "{ $.SomeOtherObject NOT EXISTS }",
        "{ $.objectList[1].id = 2 }",
    ] {
        assert!(p(pattern).matches(JSON_EVENT), "{pattern}");
    }
    assert!(p("{ $.ThisFlag IS TRUE }").matches(JSON_EVENT_ARCHIVED));
    assert!(!p("{ $.ThisFlag IS FALSE }").matches(JSON_EVENT_ARCHIVED));
}

#[test]
fn json_near_misses_do_not_match() {
    for pattern in [
        r#"{ $.eventType = "Update" }"#,
        "{ $.sourceIPAddress != 111.111.* }",
        r#"{ $.arrayKey[1] = "value" }"#,
        "{ $.eventType = %^Trail% }",
        "{ $.SomeObject NOT EXISTS }",
        "{ $.eventType IS NULL }",
        "{ $.SomeOtherObject IS NULL }",
        "{ $.objectList[2].id = 2 }",
        // A selector reaching an array or object fails `=` and `!=` alike.
        "{ $.objectList = 1 }",
        "{ $.objectList != 1 }",
        // `"cluster.name"` is one key, not a path.
        r#"{ $.cluster.name = "c" }"#,
    ] {
        assert!(!p(pattern).matches(JSON_EVENT), "{pattern}");
    }
}

#[test]
fn json_selector_on_array_fails_both_equalities() {
    let ev = r#"{"users": [1, 2, 3]}"#;
    assert!(!p("{$.users = 1}").matches(ev));
    assert!(!p("{$.users != 1}").matches(ev));
}

/// The page's OR examples for JSON.
#[test]
fn json_or_examples() {
    let log = [r#"{"foo": "bar"}"#, r#"{"foo": "baz"}"#];
    assert_eq!(hits("{$.foo = bar}", &log), vec![log[0]]);
    assert_eq!(hits("{$.foo = baz }", &log), vec![log[1]]);
    assert_eq!(hits("{$.foo = bar || $.foo = baz }", &log), log.to_vec());
}

const COMPOUND_EVENT: &str = r#"{"user": {"id": 1, "email": "John.Stiles@example.com"},
 "users": [{"id": 2, "email": "John.Doe@example.com"}, {"id": 3, "email": "Jane.Doe@example.com"}],
 "actions": ["GET", "PUT", "DELETE"],
 "coordinates": [[0, 1, 2], [4, 5, 6], [7, 8, 9]]}"#;

#[test]
fn json_compound_examples() {
    let yes = [
        r#"{ ($.user.id = 1) && ($.users[0].email = "John.Doe@example.com") }"#,
        r#"{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = "nonmatch" && $.actions[2] = "nonmatch" }"#,
        // The archived page's unquoted spelling.
        r#"{ $.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch && $.actions[2] = nomatch }"#,
        "{ $.coordinates[1][2] = 6 && $.actions[0] = GET }",
    ];
    let no = [
        r#"{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = "nonmatch") && $.actions[2] = "nonmatch" }"#,
        r#"{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }"#,
        r#"{ ($.user.email = "John.Stiles@example.com" || $.coordinates[0][1] = nonmatch) && $.actions[2] = nomatch }"#,
    ];
    for pattern in yes {
        assert!(p(pattern).matches(COMPOUND_EVENT), "{pattern}");
    }
    for pattern in no {
        assert!(!p(pattern).matches(COMPOUND_EVENT), "{pattern}");
    }
}

#[test]
fn json_numeric_examples() {
    let ev = r#"{"bandwidth": 76, "latency": 49, "refreshRate": 60, "responseTime": 5,
        "errorCode": 400, "number": [1000], "numbers": [0.001],
        "processes": [{}, {}, {}, {}, {"averageRuntime": 55.5}]}"#;
    for pattern in [
        "{ $.bandwidth > 75 }",
        "{ $.latency < 50 }",
        "{ $.refreshRate >= 60 }",
        "{ $.responseTime <= 5 }",
        "{ $.errorCode = 400}",
        "{ $.errorCode != 500 }",
        "{ $.number[0] = 1e+3 }",
        "{ $.number[0] != 1e-3 }",
        "{ $.numbers[0] < 10e3 }",
        "{ $.numbers[0] <= 10e-4 }",
        "{ $.processes[4].averageRuntime <= 55.5 }",
        "{ $.number[0] > +999 }",
        "{ $.errorCode = 4* }",
        "{ $.latency = * }",
    ] {
        assert!(p(pattern).matches(ev), "{pattern}");
    }
    for pattern in [
        "{ $.bandwidth > 76 }",
        "{ $.numbers[0] < 10e-3 && $.latency > +1000 }",
        "{ $.errorCode = 500 }",
        "{ $.missing = * }",
        "{ $.missing != 1 }",
    ] {
        assert!(!p(pattern).matches(ev), "{pattern}");
    }
}

#[test]
fn json_numbers_compare_with_numeric_strings() {
    assert!(p("{ $.code = 200 }").matches(r#"{"code": "200"}"#));
    assert!(p("{ $.latency > 100 }").matches(r#"{"latency": "150.5"}"#));
    assert!(!p("{ $.latency > 100 }").matches(r#"{"latency": "slow"}"#));
}

#[test]
fn json_patterns_skip_events_that_are_not_json_objects() {
    let pat = p("{ $.a NOT EXISTS }");
    assert!(pat.matches(r#"{"b": 1}"#));
    assert!(!pat.matches("plain text"));
    assert!(!pat.matches("[1, 2]"));
    assert!(!pat.matches(r#"{"unterminated": "#));
}

/// The current page's space-delimited event.
const DELIMITED_EVENT: &str =
    r#"127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534"#;

#[test]
fn delimited_current_examples() {
    for pattern in [
        r"[ip=%127\.0\.0\.[1-9]%, user, username, timestamp, request =*.html*, status_code = 4*, bytes]",
        "[..., request =*.html*, status_code = 4*, bytes]",
        "[ip, user, username, timestamp, request =*.html*, status_code = 404 || status_code = 410, bytes]",
    ] {
        assert!(p(pattern).matches(DELIMITED_EVENT), "{pattern}");
    }
    assert!(
        !p(r"[ip=%127\.0\.0\.[2-9]%, user, username, timestamp, request, status_code, bytes]")
            .matches(DELIMITED_EVENT)
    );
}

const ORDERED_LOG: [&str; 4] = [
    "INFO 09/25/2014 12:00:00 GET /service/resource/67 1200",
    "INFO 09/25/2014 12:00:01 POST /service/resource/67/part/111 1310",
    "WARNING 09/25/2014 12:00:02 Invalid user request",
    "ERROR 09/25/2014 12:00:02 Failed to process request",
];

#[test]
fn delimited_terms_in_order() {
    assert_eq!(hits("[w1=ERROR, w2]", &ORDERED_LOG), vec![ORDERED_LOG[3]]);
    assert_eq!(
        hits("[w1=ERROR || w1=WARNING, w2]", &ORDERED_LOG),
        vec![ORDERED_LOG[2], ORDERED_LOG[3]]
    );
    assert_eq!(
        hits("[w1!=ERROR && w1!=WARNING, w2]", &ORDERED_LOG),
        vec![ORDERED_LOG[0], ORDERED_LOG[1]]
    );
    assert_eq!(
        hits(
            "[logLevel, date, time, method, url=%/service/resource/[0-9]+$%, response_time]",
            &ORDERED_LOG
        ),
        vec![ORDERED_LOG[0]]
    );
    assert_eq!(
        hits(
            "[logLevel, date, time, method, url=%/service/resource/[0-9]+/part/[0-9]+$%, response_time]",
            &ORDERED_LOG
        ),
        vec![ORDERED_LOG[1]]
    );
}

/// The archived page's OR examples for space-delimited patterns (its third claim,
/// `[w1!=ERROR&&w1!=WARN, w2]` matching `ERROR WARN message`, contradicts its own operators
/// and is not asserted).
#[test]
fn delimited_archived_or_examples() {
    let log = ["ERROR message", "WARN message", "INFO message"];
    assert_eq!(hits("[w1=ERROR, w2]", &log), vec![log[0]]);
    assert_eq!(
        hits("[w1=ERROR || w1=WARN, w2]", &log),
        vec![log[0], log[1]]
    );
    assert_eq!(hits("[w1!=ERROR&&w1!=WARN, w2]", &log), vec![log[2]]);
}

const APACHE: [&str; 3] = [
    r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /apache_pb.gif HTTP/1.0" 200 1534"#,
    r#"127.0.0.1 - frank [10/Oct/2000:13:35:22 -0700] "GET /apache_pb.gif HTTP/1.0" 500 5324"#,
    r#"127.0.0.1 - frank [10/Oct/2000:13:50:35 -0700] "GET /apache_pb.gif HTTP/1.0" 200 4355"#,
];

#[test]
fn delimited_archived_examples() {
    for all in [
        "[ip, user, username, timestamp, request, status_code, bytes]",
        "[..., status_code, bytes]",
        "[ip, user, ..., status_code, bytes]",
        "[ip, user, ...]",
        "[ip, user, username, timestamp, request, status_code, bytes > 1000]",
    ] {
        assert_eq!(hits(all, &APACHE), APACHE.to_vec(), "{all}");
    }
    assert_eq!(
        hits(
            "[ip, user, username, timestamp, request, status_code = 200, bytes]",
            &APACHE
        ),
        vec![APACHE[0], APACHE[2]]
    );
    for none in [
        "[ip, user, username, timestamp, request, status_code = 4*, bytes]",
        "[ip, user, username, timestamp, request = *html*, status_code = 4*, bytes]",
        "[ip, user, username, timestamp, request, status_code = 403 || status_code = 404, bytes]",
        "[ip, user, username, timestamp, request, status_code, bytes > 5324]",
    ] {
        assert!(hits(none, &APACHE).is_empty(), "{none}");
    }
    assert_eq!(
        hits(
            "[ip, user, username, timestamp, request, status_code = 5* && status_code != 503, bytes]",
            &APACHE
        ),
        vec![APACHE[1]]
    );
    // The 2014 page's `status_code = 4* && bytes > 1000` names another field: refused, as the
    // console refused it (awsdocs/amazon-cloudwatch-logs-user-guide#21).
    assert!(
        Pattern::parse(
            "[ip, user, username, timestamp, request, status_code = 4* && bytes > 1000]"
        )
        .is_err()
    );
}

#[test]
fn delimited_field_count_must_fit() {
    // Fewer fields than named: no match; more: the last named field takes the rest.
    assert!(!p("[a, b, c]").matches("x y"));
    let pat = p("[a, b]");
    let caps = pat.captures("x y z").unwrap();
    assert_eq!(caps.get("$b").as_deref(), Some("y z"));
}

/// The archived page's `extractedValues` example (its `$request` says
/// `/products/index.html`, which is not in its own log line).
#[test]
fn delimited_extracted_values_example() {
    let line =
        r#"127.0.0.1 - frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534"#;
    let pat = p("[..., request=*.html*, status_code=4*,]");
    let caps = pat.captures(line).unwrap();
    let mut got = caps.extracted_values();
    got.sort();
    let mut want: Vec<(String, String)> = [
        ("$status_code", "404"),
        ("$request", "GET /index.html HTTP/1.0"),
        ("$7", "1534"),
        ("$4", "10/Oct/2000:13:25:15 -0700"),
        ("$3", "frank"),
        ("$2", "-"),
        ("$1", "127.0.0.1"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(caps.get("$5").as_deref(), Some("GET /index.html HTTP/1.0"));
    assert_eq!(caps.get("$8"), None);
}

#[test]
fn captures_only_for_matches_and_empty_extraction_outside_delimited() {
    assert!(p("ERROR").captures("ok").is_none());
    let caps = p("ERROR").captures("ERROR x").unwrap();
    assert!(caps.extracted_values().is_empty());
    assert_eq!(caps.get("$1"), None);
    let caps = p("{ $.a = 1 }")
        .captures(r#"{"a": 1, "b": {"c": "x"}}"#)
        .unwrap();
    assert!(caps.extracted_values().is_empty());
    assert_eq!(caps.get("$.b.c").as_deref(), Some("x"));
    assert_eq!(caps.get("$.a").as_deref(), Some("1"));
    assert_eq!(caps.get("$.b"), None);
}

#[test]
fn invalid_patterns_carry_aws_messages() {
    for (pattern, message) in [
        ("foo-bar", "Invalid character(s) in term '-'"),
        ("Status: timeout", "Invalid character(s) in term ':'"),
        (
            "\"retrievedReferences\":[]",
            "Invalid character(s) in term ':'",
        ),
        ("a(b)", "Invalid character(s) in term '('"),
        (r"level\x", r"Invalid character(s) in term '\'"),
        ("`x", "Invalid character(s) in term '`'"),
        ("%something!%", "Invalid character(s) in term '!'"),
        ("%(a|b)%", "Invalid character(s) in term '('"),
        (
            r#"{ $."sc-status" = 5* }"#,
            "Invalid character(s) in term '$.\"'",
        ),
        (
            r#"{$.kubernetes.namespace_name="abc""#,
            "If a filter pattern starts with '{' it must end with '}'",
        ),
        (
            "[a, b",
            "If a filter pattern starts with '[' it must end with ']'",
        ),
        ("{ $.a = x@y }", "Invalid character(s) in term '@'"),
        (
            "[a, b c]",
            "Invalid filter pattern: expected an operator after 'b'",
        ),
    ] {
        match Pattern::parse(pattern) {
            Err(e) => assert_eq!(e.to_string(), message, "{pattern}"),
            Ok(_) => panic!("{pattern} parsed"),
        }
    }
}

#[test]
fn invalid_patterns_are_refused_not_matched() {
    for pattern in [
        "\"unclosed",
        "?",
        "-",
        "{ }",
        "{ $.a }",
        "{ $.a = }",
        "{ $.a > abc }",
        "{ $.a = 1 && }",
        "{ ($.a = 1 }",
        "{ $.a IS MAYBE }",
        "{ $.a NOT THERE }",
        "{ a = 1 }",
        "{ $.a[*].b[*] = 1 }",
        "{ $.a[*] = 1 && $.b[*] = 1 && $.c[*] = 1 && $.d[*] = 1 }",
        "{ $.a = %a% && $.b = %b% && $.c = %c% }",
        "[a = %a%, b = %b%, c = %c%]",
        "[a > x]",
        "[a = 1 b]",
        "%[a%",
        "%%",
    ] {
        assert!(Pattern::parse(pattern).is_err(), "{pattern}");
    }
    assert_eq!(
        Pattern::parse(&"a".repeat(1025)).unwrap_err(),
        PatternError::TooLong
    );
    assert!(Pattern::parse(&"a".repeat(1024)).is_ok());
    assert!(Pattern::parse("{ $.a[*] = 1 && $.b[*] = 1 && $.c[*] = 1 }").is_ok());
}

#[test]
fn metric_value_from_json_property() {
    let pat = p("{ $.latency = * }");
    let m = MetricExtraction::new(&pat, "$.latency", &[]).unwrap();
    let caps = pat.captures(r#"{"latency": 250}"#).unwrap();
    assert_eq!(
        m.extract(&caps),
        Some(MetricPoint {
            value: 250.0,
            dimensions: vec![]
        })
    );
    // A non-numeric value publishes nothing.
    let caps = pat.captures(r#"{"latency": "slow"}"#).unwrap();
    assert_eq!(m.extract(&caps), None);
}

#[test]
fn metric_value_from_delimited_field_with_dimensions() {
    let pat = p("[ip, user, username, timestamp, request, status_code, bytes]");
    let dims = vec![("Status".to_string(), "$status_code".to_string())];
    let m = MetricExtraction::new(&pat, "$bytes", &dims).unwrap();
    let caps = pat.captures(APACHE[1]).unwrap();
    assert_eq!(
        m.extract(&caps),
        Some(MetricPoint {
            value: 5324.0,
            dimensions: vec![("Status".into(), "500".into())]
        })
    );
    let m = MetricExtraction::new(&pat, "$7", &[]).unwrap();
    assert_eq!(m.extract(&caps).map(|p| p.value), Some(5324.0));
}

#[test]
fn metric_constant_value_and_refusals() {
    let terms = p("ERROR");
    let m = MetricExtraction::new(&terms, "1", &[]).unwrap();
    assert_eq!(
        m.extract(&terms.captures("ERROR").unwrap())
            .map(|p| p.value),
        Some(1.0)
    );
    let dims = vec![("Level".to_string(), "$.level".to_string())];
    assert_eq!(
        MetricExtraction::new(&terms, "1", &dims)
            .unwrap_err()
            .to_string(),
        "The specified filter pattern does not support dimensions"
    );
    assert!(MetricExtraction::new(&terms, "$.latency", &[]).is_err());
    let json = p("{ $.a = 1 }");
    assert!(MetricExtraction::new(&json, "$bytes", &[]).is_err());
    assert!(MetricExtraction::new(&json, "abc", &[]).is_err());
    let four: Vec<(String, String)> = (0..4).map(|i| (format!("d{i}"), "$.a".into())).collect();
    assert_eq!(
        MetricExtraction::new(&json, "1", &four),
        Err(MetricError::TooManyDimensions)
    );
    let delimited = p("[a, b]");
    assert!(MetricExtraction::new(&delimited, "$c", &[]).is_err());
    assert!(MetricExtraction::new(&delimited, "$0", &[]).is_err());
    assert!(MetricExtraction::new(&delimited, "$2", &[]).is_ok());
}

proptest! {
    #[test]
    fn terms_match_iff_every_word_is_a_substring(
        words in proptest::collection::vec("[A-Za-z0-9_]{1,4}", 1..4),
        message in "[A-Za-z0-9_ ]{0,30}",
    ) {
        let pattern = p(&words.join(" "));
        prop_assert_eq!(pattern.matches(&message), words.iter().all(|w| message.contains(w.as_str())));
    }

    #[test]
    fn quoted_phrase_matches_iff_substring(
        phrase in "[A-Za-z0-9 :\\[\\]{}-]{1,8}",
        message in "[A-Za-z0-9 :\\[\\]{}-]{0,30}",
    ) {
        prop_assume!(!phrase.trim().is_empty());
        let pattern = p(&format!("\"{phrase}\""));
        prop_assert_eq!(pattern.matches(&message), message.contains(&phrase));
    }

    #[test]
    fn parse_never_panics(text in "\\PC{0,40}") {
        let _ = Pattern::parse(&text).map(|p| p.matches(&text));
    }

    #[test]
    fn delimited_ellipsis_matches_any_line_with_enough_fields(
        fields in proptest::collection::vec("[a-z0-9]{1,5}", 0..8),
    ) {
        let line = fields.join(" ");
        prop_assert_eq!(p("[..., a, b]").matches(&line), fields.len() >= 2);
        prop_assert_eq!(p("[a, ..., b]").matches(&line), fields.len() >= 2);
        prop_assert!(p("[...]").matches(&line));
    }
}

#[test]
fn json_prefilter_does_not_miss_escaped_text() {
    // `\/` and `\u0065` spell "/" and "e" without the raw text containing them.
    assert!(p(r#"{ $.path = "/api" }"#).matches(r#"{"path":"\/api"}"#));
    assert!(p(r#"{ $.level = "error" }"#).matches(r#"{"level":"\u0065rror"}"#));
    assert!(p(r#"{ $.level = "error" }"#).matches(r#"{"l\u0065vel":"error"}"#));
    assert!(!p(r#"{ $.level = "error" }"#).matches(r#"{"level":"info"}"#));
}
