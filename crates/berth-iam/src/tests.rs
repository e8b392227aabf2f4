//! Decisions on AWS's documented example policies, and properties of the evaluator.

use crate::*;
use proptest::prelude::*;

const ACCOUNT: &str = "123456789012";

fn user(name: &str) -> Principal {
    Principal {
        arn: format!("arn:aws:iam::{ACCOUNT}:user/{name}"),
        account: ACCOUNT.into(),
        kind: PrincipalKind::User,
    }
}

fn session(role: &str, name: &str) -> Principal {
    Principal {
        arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/{role}/{name}"),
        account: ACCOUNT.into(),
        kind: PrincipalKind::AssumedRole {
            role_arn: format!("arn:aws:iam::{ACCOUNT}:role/{role}"),
        },
    }
}

fn identity(text: &str) -> Policy {
    Policy::parse(text, Kind::Identity).unwrap()
}

fn repo(name: &str) -> String {
    format!("arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{name}")
}

fn decide(
    identity: &[&Policy],
    p: &Principal,
    action: &str,
    resource: &str,
    ctx: &Context,
) -> Decision {
    evaluate(
        &Policies {
            identity,
            ..Default::default()
        },
        &Request {
            principal: p,
            action,
            resource,
            context: ctx,
        },
    )
    .decision
}

/// AmazonEC2ContainerRegistryReadOnly, as AWS publishes it.
const ECR_READ_ONLY: &str = r#"{
    "Version": "2012-10-17",
    "Statement": [{
        "Effect": "Allow",
        "Action": [
            "ecr:GetAuthorizationToken", "ecr:BatchCheckLayerAvailability",
            "ecr:GetDownloadUrlForLayer", "ecr:GetRepositoryPolicy", "ecr:DescribeRepositories",
            "ecr:ListImages", "ecr:DescribeImages", "ecr:BatchGetImage", "ecr:GetLifecyclePolicy",
            "ecr:GetLifecyclePolicyPreview", "ecr:ListTagsForResource",
            "ecr:DescribeImageScanFindings"
        ],
        "Resource": "*"
    }]
}"#;

#[test]
fn the_read_only_registry_policy_reads_and_never_writes() {
    let p = identity(ECR_READ_ONLY);
    let (bob, ctx) = (user("bob"), Context::new());
    for action in [
        "ecr:BatchGetImage",
        "ECR:getdownloadurlforlayer",
        "ecr:GetAuthorizationToken",
    ] {
        assert_eq!(
            decide(&[&p], &bob, action, &repo("app"), &ctx),
            Decision::Allowed
        );
    }
    for action in [
        "ecr:PutImage",
        "ecr:InitiateLayerUpload",
        "ecr:DeleteRepository",
    ] {
        assert_eq!(
            decide(&[&p], &bob, action, &repo("app"), &ctx),
            Decision::ImplicitDeny
        );
    }
}

#[test]
fn the_shipped_registry_policies_read_push_and_administer_as_named() {
    let shipped = |name: &str| {
        let p = AWS_MANAGED.iter().find(|p| p.name == name).unwrap();
        identity(p.document)
    };
    let (bob, ctx, app) = (user("bob"), Context::new(), repo("app"));
    let can = |p: &Policy, action: &str| decide(&[p], &bob, action, &app, &ctx);
    let read = shipped("AmazonEC2ContainerRegistryReadOnly");
    assert_eq!(read, identity(ECR_READ_ONLY));
    assert_eq!(can(&read, "ecr:BatchGetImage"), Decision::Allowed);
    assert_eq!(can(&read, "ecr:PutImage"), Decision::ImplicitDeny);
    let push = shipped("AmazonEC2ContainerRegistryPowerUser");
    assert_eq!(can(&push, "ecr:PutImage"), Decision::Allowed);
    assert_eq!(can(&push, "ecr:DeleteRepository"), Decision::ImplicitDeny);
    assert_eq!(
        can(&push, "ecr:SetRepositoryPolicy"),
        Decision::ImplicitDeny
    );
    let full = shipped("AmazonEC2ContainerRegistryFullAccess");
    assert_eq!(can(&full, "ecr:DeleteRepository"), Decision::Allowed);
    assert_eq!(can(&full, "ecs:RunTask"), Decision::ImplicitDeny);
    let exec = shipped("AmazonECSTaskExecutionRolePolicy");
    assert_eq!(can(&exec, "ecr:GetDownloadUrlForLayer"), Decision::Allowed);
    assert_eq!(can(&exec, "ecr:PutImage"), Decision::ImplicitDeny);
}

#[test]
fn an_explicit_deny_beats_every_allow_and_root_is_unrestricted() {
    let allow = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
    );
    let deny = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"ecr:Delete*","Resource":"arn:aws:ecr:*:*:repository/prod/*"}}"#,
    );
    let (bob, ctx) = (user("bob"), Context::new());
    assert_eq!(
        decide(
            &[&allow, &deny],
            &bob,
            "ecr:DeleteRepository",
            &repo("prod/web"),
            &ctx
        ),
        Decision::ExplicitDeny
    );
    assert_eq!(
        decide(
            &[&allow, &deny],
            &bob,
            "ecr:DeleteRepository",
            &repo("dev/web"),
            &ctx
        ),
        Decision::Allowed
    );
    let root = Principal {
        arn: format!("arn:aws:iam::{ACCOUNT}:root"),
        account: ACCOUNT.into(),
        kind: PrincipalKind::Root,
    };
    assert_eq!(
        decide(
            &[&deny],
            &root,
            "ecr:DeleteRepository",
            &repo("prod/web"),
            &ctx
        ),
        Decision::Allowed
    );
    // GetCallerIdentity needs no permission, even under a deny.
    let deny_all = identity(r#"{"Statement":{"Effect":"Deny","Action":"*","Resource":"*"}}"#);
    assert_eq!(
        decide(&[&deny_all], &bob, "sts:GetCallerIdentity", "*", &ctx),
        Decision::Allowed
    );
}

#[test]
fn not_action_and_not_resource() {
    // "Allows everything except IAM" (AWS's NotAction example).
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}}"#,
    );
    let (bob, ctx) = (user("bob"), Context::new());
    assert_eq!(
        decide(&[&p], &bob, "ecs:RunTask", "*", &ctx),
        Decision::Allowed
    );
    assert_eq!(
        decide(&[&p], &bob, "iam:CreateUser", "*", &ctx),
        Decision::ImplicitDeny
    );
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"ecr:*","Resource":"*"},
            {"Effect":"Deny","Action":"ecr:*","NotResource":"arn:aws:ecr:*:*:repository/app/*"}]}"#,
    );
    assert_eq!(
        decide(&[&p], &bob, "ecr:PutImage", &repo("app/web"), &ctx),
        Decision::Allowed
    );
    assert_eq!(
        decide(&[&p], &bob, "ecr:PutImage", &repo("other"), &ctx),
        Decision::ExplicitDeny
    );
}

#[test]
fn policy_variables_give_each_user_their_own_resources() {
    // AWS's "manage their own access keys" pattern, on repositories.
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}/*"}}"#,
    );
    let mut ctx = Context::new();
    ctx.set("aws:username", "bob");
    let bob = user("bob");
    assert_eq!(
        decide(&[&p], &bob, "ecr:PutImage", &repo("bob/app"), &ctx),
        Decision::Allowed
    );
    assert_eq!(
        decide(&[&p], &bob, "ecr:PutImage", &repo("alice/app"), &ctx),
        Decision::ImplicitDeny
    );
    // Without 2012-10-17 the variable is literal text.
    let old = identity(
        r#"{"Version":"2008-10-17","Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"arn:aws:ecr:*:*:repository/${aws:username}/*"}}"#,
    );
    assert_eq!(
        decide(&[&old], &bob, "ecr:PutImage", &repo("bob/app"), &ctx),
        Decision::ImplicitDeny
    );
}

#[test]
fn source_ip_and_time_conditions() {
    // AWS's "Denies access based on the source IP" example.
    let allow = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#,
    );
    let deny = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Deny","Action":"*","Resource":"*",
            "Condition":{"NotIpAddress":{"aws:SourceIp":["192.0.2.0/24","203.0.113.0/24"]},
                         "Bool":{"aws:ViaAWSService":"false"}}}}"#,
    );
    let bob = user("bob");
    let mut inside = Context::new();
    inside
        .set("aws:SourceIp", "203.0.113.9")
        .set("aws:ViaAWSService", "false");
    let mut outside = Context::new();
    outside
        .set("aws:SourceIp", "198.51.100.1")
        .set("aws:ViaAWSService", "false");
    assert_eq!(
        decide(&[&allow, &deny], &bob, "ecs:ListClusters", "*", &inside),
        Decision::Allowed
    );
    assert_eq!(
        decide(&[&allow, &deny], &bob, "ecs:ListClusters", "*", &outside),
        Decision::ExplicitDeny
    );
    // A window in time.
    let window = identity(
        r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"ecs:*","Resource":"*",
            "Condition":{"DateGreaterThan":{"aws:CurrentTime":"2026-01-01T00:00:00Z"},
                         "DateLessThan":{"aws:CurrentTime":"2026-12-31T23:59:59Z"}}}}"#,
    );
    let mut now = Context::new();
    now.set("aws:CurrentTime", "2026-12-03T10:00:00Z");
    assert_eq!(
        decide(&[&window], &bob, "ecs:RunTask", "*", &now),
        Decision::Allowed
    );
    now.set("aws:CurrentTime", "2027-01-01T00:00:00Z");
    assert_eq!(
        decide(&[&window], &bob, "ecs:RunTask", "*", &now),
        Decision::ImplicitDeny
    );
}

#[test]
fn cluster_conditions_and_resource_tags() {
    let p = identity(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Action":"ecs:RunTask","Resource":"*",
             "Condition":{"ArnEquals":{"ecs:cluster":"arn:aws:ecs:us-east-1:123456789012:cluster/a"}}},
            {"Effect":"Allow","Action":"ecr:*","Resource":"*",
             "Condition":{"StringEquals":{"ecr:ResourceTag/team":"web"}}}]}"#,
    );
    let bob = user("bob");
    let mut a = Context::new();
    a.set(
        "ecs:cluster",
        "arn:aws:ecs:us-east-1:123456789012:cluster/a",
    );
    let mut b = Context::new();
    b.set(
        "ecs:cluster",
        "arn:aws:ecs:us-east-1:123456789012:cluster/b",
    );
    let td = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:1";
    assert_eq!(
        decide(&[&p], &bob, "ecs:RunTask", td, &a),
        Decision::Allowed
    );
    assert_eq!(
        decide(&[&p], &bob, "ecs:RunTask", td, &b),
        Decision::ImplicitDeny
    );
    let mut tagged = Context::new();
    tagged.set("ecr:ResourceTag/team", "web");
    assert_eq!(
        decide(&[&p], &bob, "ecr:PutImage", &repo("x"), &tagged),
        Decision::Allowed
    );
    assert_eq!(
        decide(&[&p], &bob, "ecr:PutImage", &repo("x"), &Context::new()),
        Decision::ImplicitDeny
    );
}

fn with_resource(
    identity: &[&Policy],
    resource: &Policy,
    p: &Principal,
    action: &str,
    arn: &str,
) -> Outcome {
    evaluate(
        &Policies {
            identity,
            resource: Some(resource),
            ..Default::default()
        },
        &Request {
            principal: p,
            action,
            resource: arn,
            context: &Context::new(),
        },
    )
}

#[test]
fn repository_policies_grant_and_deny_alongside_identity_policies() {
    let pull = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[{"Sid":"AllowPull","Effect":"Allow",
            "Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},
            "Action":["ecr:BatchGetImage","ecr:GetDownloadUrlForLayer"]}]}"#,
        Kind::Resource,
    )
    .unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    let o = with_resource(&[], &pull, &alice, "ecr:BatchGetImage", &repo("app"));
    assert!(o.allowed());
    assert_eq!(o.matched[0].source, Source::Resource);
    assert!(!with_resource(&[], &pull, &bob, "ecr:BatchGetImage", &repo("app")).allowed());
    assert!(!with_resource(&[], &pull, &alice, "ecr:PutImage", &repo("app")).allowed());
    // Naming the account delegates to the identity policies.
    let account = Policy::parse(
        r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"ecr:*"}]}"#,
        Kind::Resource,
    )
    .unwrap();
    assert!(!with_resource(&[], &account, &bob, "ecr:PutImage", &repo("app")).allowed());
    let read = identity(ECR_READ_ONLY);
    assert!(with_resource(&[&read], &account, &bob, "ecr:BatchGetImage", &repo("app")).allowed());
    // A deny in the repository policy wins over the identity's allow, and says where it is.
    let deny = Policy::parse(
        r#"{"Statement":[{"Effect":"Deny","Principal":"*","Action":"ecr:BatchGetImage"}]}"#,
        Kind::Resource,
    )
    .unwrap();
    let o = with_resource(&[&read], &deny, &bob, "ecr:BatchGetImage", &repo("app"));
    assert_eq!(o.decision, Decision::ExplicitDeny);
    let request = Request {
        principal: &bob,
        action: "ecr:BatchGetImage",
        resource: &repo("app"),
        context: &Context::new(),
    };
    assert_eq!(
        o.denial_message(&request),
        format!(
            "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: ecr:BatchGetImage on resource: {} because with an explicit deny in a resource-based policy",
            repo("app")
        )
    );
    // Another account: both sides must allow.
    let stranger = Principal {
        arn: "arn:aws:iam::999999999999:user/eve".into(),
        account: "999999999999".into(),
        kind: PrincipalKind::User,
    };
    let anyone = Policy::parse(
        r#"{"Statement":[{"Effect":"Allow","Principal":"*","Action":"ecr:BatchGetImage"}]}"#,
        Kind::Resource,
    )
    .unwrap();
    assert!(!with_resource(&[], &anyone, &stranger, "ecr:BatchGetImage", &repo("app")).allowed());
    assert!(
        with_resource(
            &[&read],
            &anyone,
            &stranger,
            "ecr:BatchGetImage",
            &repo("app")
        )
        .allowed()
    );
}

#[test]
fn trust_policies_must_allow_assume_role() {
    let trust = Policy::parse(
        r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":{"AWS":"123456789012"},"Action":"sts:AssumeRole",
             "Condition":{"StringEquals":{"aws:username":"carol"}}}]}"#,
        Kind::Trust,
    )
    .unwrap();
    let role = "arn:aws:iam::123456789012:role/task";
    let assume = |p: &Principal, identity: &[&Policy], ctx: &Context| {
        evaluate(
            &Policies {
                identity,
                resource: Some(&trust),
                resource_must_allow: true,
                ..Default::default()
            },
            &Request {
                principal: p,
                action: "sts:AssumeRole",
                resource: role,
                context: ctx,
            },
        )
        .allowed()
    };
    let ecs = Principal {
        arn: "ecs-tasks.amazonaws.com".into(),
        account: ACCOUNT.into(),
        kind: PrincipalKind::Service("ecs-tasks.amazonaws.com".into()),
    };
    let all = identity(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
    assert!(assume(&ecs, &[], &Context::new()));
    assert!(assume(&user("alice"), &[], &Context::new()));
    // Not named: no identity policy can make up for it.
    assert!(!assume(&user("bob"), &[&all], &Context::new()));
    // Named through the account: the identity policy must allow too.
    let mut carol = Context::new();
    carol.set("aws:username", "carol");
    assert!(!assume(&user("carol"), &[], &carol));
    assert!(assume(&user("carol"), &[&all], &carol));
}

#[test]
fn boundaries_and_session_policies_only_narrow() {
    let all = identity(r#"{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}"#);
    let ecr_only = identity(r#"{"Statement":{"Effect":"Allow","Action":"ecr:*","Resource":"*"}}"#);
    let s = session("deploy", "ci");
    let run = |boundary: Option<&Policy>, session: &[&Policy], action: &str| {
        evaluate(
            &Policies {
                identity: &[&all],
                boundary,
                session,
                ..Default::default()
            },
            &Request {
                principal: &s,
                action,
                resource: "*",
                context: &Context::new(),
            },
        )
        .decision
    };
    assert_eq!(run(Some(&ecr_only), &[], "ecr:PutImage"), Decision::Allowed);
    assert_eq!(
        run(Some(&ecr_only), &[], "ecs:RunTask"),
        Decision::ImplicitDeny
    );
    assert_eq!(
        run(None, &[&ecr_only], "ecs:RunTask"),
        Decision::ImplicitDeny
    );
    assert_eq!(
        run(None, &[&ecr_only], "ecr:BatchGetImage"),
        Decision::Allowed
    );
}

#[test]
fn denial_messages_are_aws_words() {
    let bob = user("bob");
    let ctx = Context::new();
    let request = Request {
        principal: &bob,
        action: "ecr:PutImage",
        resource: &repo("app"),
        context: &ctx,
    };
    let o = evaluate(&Policies::default(), &request);
    assert_eq!(
        o.denial_message(&request),
        "User: arn:aws:iam::123456789012:user/bob is not authorized to perform: ecr:PutImage on resource: arn:aws:ecr:us-east-1:123456789012:repository/app because no identity-based policy allows the ecr:PutImage action"
    );
    let deny = identity(r#"{"Statement":{"Effect":"Deny","Action":"ecr:*","Resource":"*"}}"#);
    let o = evaluate(
        &Policies {
            identity: &[&deny],
            ..Default::default()
        },
        &request,
    );
    assert!(
        o.denial_message(&request)
            .ends_with("because with an explicit deny in an identity-based policy")
    );
}

/// A random statement over a small vocabulary, as JSON.
fn statement() -> impl Strategy<Value = String> {
    let action = prop::sample::select(vec![
        "*",
        "ecr:*",
        "ecr:Get*",
        "ecr:PutImage",
        "ecs:RunTask",
        "ecs:?unTask",
        "ecs:Describe*",
    ]);
    let resource = prop::sample::select(vec![
        "*",
        "arn:aws:ecr:*:*:repository/app/*",
        "arn:aws:ecr:us-east-1:123456789012:repository/other",
        "arn:aws:ecs:*",
        "arn:aws:ecr:*:*:repository/${aws:username}/*",
    ]);
    let condition = prop::sample::select(vec![
        "",
        r#","Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#,
        r#","Condition":{"StringNotEquals":{"aws:username":"bob"}}"#,
        r#","Condition":{"ForAllValues:StringEquals":{"aws:TagKeys":["team"]}}"#,
    ]);
    (
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        action,
        resource,
        condition,
    )
        .prop_map(|(deny, not_action, not_resource, a, r, c)| {
            format!(
                r#"{{"Effect":"{}","{}":"{a}","{}":"{r}"{c}}}"#,
                if deny { "Deny" } else { "Allow" },
                if not_action { "NotAction" } else { "Action" },
                if not_resource {
                    "NotResource"
                } else {
                    "Resource"
                },
            )
        })
}

fn policy_of(statements: &[String]) -> Policy {
    identity(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
        statements.join(",")
    ))
}

fn request() -> impl Strategy<Value = (String, String, Context)> {
    let action = prop::sample::select(vec![
        "ecr:PutImage",
        "ecr:GetAuthorizationToken",
        "ecs:RunTask",
        "ecs:DescribeTasks",
        "iam:CreateUser",
    ]);
    let resource = prop::sample::select(vec![
        "*".to_string(),
        repo("app/web"),
        repo("other"),
        repo("bob/x"),
        "arn:aws:ecs:us-east-1:123456789012:cluster/a".to_string(),
    ]);
    let user = prop::sample::select(vec!["bob", "alice"]);
    let ip = prop::sample::select(vec!["10.1.1.1", "192.168.1.1"]);
    (action, resource, user, ip).prop_map(|(a, r, u, ip)| {
        let mut ctx = Context::new();
        ctx.set("aws:username", u).set("aws:SourceIp", ip);
        (a.to_string(), r, ctx)
    })
}

proptest! {
    /// Adding a Deny statement never widens access; adding an Allow never narrows it.
    #[test]
    fn a_deny_never_widens_and_an_allow_never_narrows(
        statements in prop::collection::vec(statement(), 1..6),
        extra in statement(),
        (action, resource, ctx) in request(),
    ) {
        let bob = user("bob");
        let before = decide(&[&policy_of(&statements)], &bob, &action, &resource, &ctx);
        let mut more = statements.clone();
        more.push(extra.clone());
        let after = decide(&[&policy_of(&more)], &bob, &action, &resource, &ctx);
        if extra.contains(r#""Effect":"Deny""#) {
            prop_assert!(after != Decision::Allowed || before == Decision::Allowed);
        } else {
            prop_assert!(before != Decision::Allowed || after == Decision::Allowed);
        }
        // Splitting the statements over several policies decides the same.
        let split: Vec<Policy> = more.iter().map(|s| policy_of(std::slice::from_ref(s))).collect();
        let refs: Vec<&Policy> = split.iter().collect();
        prop_assert_eq!(decide(&refs, &bob, &action, &resource, &ctx), after);
    }

    /// An explicit deny is reported whenever some Deny statement matches on its own.
    #[test]
    fn a_matching_deny_is_always_explicit(
        statements in prop::collection::vec(statement(), 1..6),
        (action, resource, ctx) in request(),
    ) {
        let bob = user("bob");
        let all = decide(&[&policy_of(&statements)], &bob, &action, &resource, &ctx);
        let any_deny = statements.iter().filter(|s| s.contains(r#""Effect":"Deny""#)).any(|s| {
            let allowed = s.replace(r#""Effect":"Deny""#, r#""Effect":"Allow""#);
            decide(&[&policy_of(&[allowed])], &bob, &action, &resource, &ctx) == Decision::Allowed
        });
        prop_assert_eq!(all == Decision::ExplicitDeny, any_deny);
    }
}
