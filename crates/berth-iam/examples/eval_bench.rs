//! Decisions per second of the evaluator on one core: a user with 10 attached policies, 30
//! statements in all (conditions included), asking for an action the last policy allows.
//! `cargo run --release -p berth-iam --example eval_bench [SECONDS]`

use berth_iam::{Context, Kind, Policies, Policy, Principal, PrincipalKind, Request, evaluate};
use std::time::{Duration, Instant};

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let policies: Vec<Policy> = (0..10)
        .map(|i| {
            let text = format!(
                r#"{{"Version":"2012-10-17","Statement":[
                    {{"Effect":"Allow","Action":["ecr:Get*","ecr:Describe*","ecr:List*"],"Resource":"arn:aws:ecr:*:*:repository/team{i}/*"}},
                    {{"Effect":"Allow","Action":"ecs:RunTask","Resource":"*","Condition":{{"ArnEquals":{{"ecs:cluster":"arn:aws:ecs:*:*:cluster/c{i}"}}}}}},
                    {{"Effect":"Deny","NotAction":["ecr:*","ecs:*"],"Resource":"*","Condition":{{"NotIpAddress":{{"aws:SourceIp":["10.0.0.0/8","192.168.0.0/16"]}}}}}}
                ]}}"#
            );
            Policy::parse(&text, Kind::Identity).unwrap()
        })
        .chain(std::iter::once(
            Policy::parse(
                r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:Describe*","Resource":"arn:aws:ecs:*:123456789012:task-definition/${aws:username}*"}}"#,
                Kind::Identity,
            )
            .unwrap(),
        ))
        .collect();
    let refs: Vec<&Policy> = policies.iter().collect();
    let principal = Principal {
        arn: "arn:aws:iam::123456789012:user/web".into(),
        account: "123456789012".into(),
        kind: PrincipalKind::User,
    };
    let mut ctx = Context::new();
    ctx.set("aws:username", "web")
        .set("aws:SourceIp", "10.1.2.3")
        .set("aws:CurrentTime", "2026-12-03T10:00:00Z");
    let request = Request {
        principal: &principal,
        action: "ecs:DescribeTaskDefinition",
        resource: "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3",
        context: &ctx,
    };
    let set = Policies {
        identity: &refs,
        ..Default::default()
    };
    assert!(evaluate(&set, &request).allowed());
    let (start, mut n) = (Instant::now(), 0u64);
    while start.elapsed() < Duration::from_secs(seconds) {
        for _ in 0..1000 {
            std::hint::black_box(evaluate(&set, std::hint::black_box(&request)));
        }
        n += 1000;
    }
    let per_second = n as f64 / start.elapsed().as_secs_f64();
    println!(
        "{} statements in {} policies: {per_second:.0} decisions/s on one core ({:.2} µs each)",
        policies.iter().map(|p| p.statements.len()).sum::<usize>(),
        policies.len(),
        1e6 / per_second
    );
}
