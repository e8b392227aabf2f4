//! IAM enforcement's cost end to end: a signed DescribeTaskDefinition as an IAM user with ten
//! attached customer-managed policies (31 statements: ARN wildcards, `ArnEquals` on
//! `ecs:cluster`, `NotAction` denies under `NotIpAddress`, the allow last) against the same
//! request as root (never evaluated), same server, same run, alternating.
//!
//! Usage: iam_bench BERTH_BIN [SECONDS [ROUNDS]] (needs `wrk`; `scripts/bench-iam.sh` builds
//! and runs it).

#[path = "bench_common/mod.rs"]
mod common;

use common::*;

const IAM: [(&str, &str); 1] = [("Version", "2010-05-08")];

fn iam(port: u16, action: &str, params: &[(&str, &str)]) -> String {
    let mut all = vec![("Action", action)];
    all.extend(IAM);
    all.extend(params);
    let (status, body) = query_call(port, "iam", &all);
    assert_eq!(status, 200, "{action}: {body}");
    body
}

fn between<'a>(text: &'a str, tag: &str) -> &'a str {
    let start = text.find(&format!("<{tag}>")).expect(tag) + tag.len() + 2;
    let end = text[start..].find(&format!("</{tag}>")).expect(tag) + start;
    &text[start..end]
}

/// Policy `i` of ten: three statements, and the allow the benchmark needs in the last.
fn policy(i: usize) -> String {
    let mut statements = vec![
        format!(
            r#"{{"Effect":"Allow","Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"],"Resource":"arn:aws:ecr:us-east-1:000000000000:repository/team-{i}/*"}}"#
        ),
        format!(
            r#"{{"Effect":"Allow","Action":"ecs:RunTask","Resource":"*","Condition":{{"ArnEquals":{{"ecs:cluster":"arn:aws:ecs:us-east-1:000000000000:cluster/team-{i}"}}}}}}"#
        ),
        format!(
            r#"{{"Effect":"Deny","NotAction":["ecs:*","ecr:*"],"Resource":"*","Condition":{{"NotIpAddress":{{"aws:SourceIp":"10.{i}.0.0/16"}}}}}}"#
        ),
    ];
    if i == 9 {
        statements.push(
            r#"{"Effect":"Allow","Action":"ecs:Describe*","Resource":"*","Condition":{"IpAddress":{"aws:SourceIp":"127.0.0.0/8"}}}"#.to_string(),
        );
    }
    format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    )
}

fn main() {
    let usage = "usage: iam_bench BERTH_BIN [SECONDS [ROUNDS]]";
    let args: Vec<String> = std::env::args().collect();
    let bin = args.get(1).expect(usage);
    let seconds: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = tempfile::tempdir().unwrap();
    let berth = start_berth(bin, &dir.path().join("data"));
    let port = berth.port;
    assert_eq!(call(port, "RegisterTaskDefinition", TD).0, 200);
    iam(port, "CreateUser", &[("UserName", "bench")]);
    for i in 0..10 {
        let name = format!("bench-{i}");
        let doc = policy(i);
        iam(
            port,
            "CreatePolicy",
            &[("PolicyName", &name), ("PolicyDocument", &doc)],
        );
        let arn = format!("arn:aws:iam::000000000000:policy/{name}");
        iam(
            port,
            "AttachUserPolicy",
            &[("UserName", "bench"), ("PolicyArn", &arn)],
        );
    }
    let key = iam(port, "CreateAccessKey", &[("UserName", "bench")]);
    let user = (
        between(&key, "AccessKeyId"),
        between(&key, "SecretAccessKey"),
    );
    let body = r#"{"taskDefinition":"bench"}"#;
    println!("| round | caller | req/s | p99 ms | non-2xx |");
    println!("|---|---|---|---|---|");
    let (mut root_rps, mut user_rps) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for (name, key, out) in [
            ("root", (KEY_ID, SECRET), &mut root_rps),
            ("user, 10 policies", user, &mut user_rps),
        ] {
            let r = wrk_as(
                key,
                port,
                "DescribeTaskDefinition",
                body,
                seconds,
                dir.path(),
            );
            assert_eq!(r.non2xx, 0, "{name}: every request must be allowed");
            println!(
                "| {round} | {name} | {:.0} | {:.2} | {} |",
                r.rps, r.p99_ms, r.non2xx
            );
            out.push(r.rps);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    println!(
        "\nuser/root = {:.3}x req/s (means of {rounds} rounds of {seconds} s)",
        mean(&user_rps) / mean(&root_rps).max(1.0)
    );
}
