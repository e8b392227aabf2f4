//! IAM end to end through the real server: users, keys and inline policies over awsQuery
//! (raw signed requests), enforcement seen by the ECS SDK, a deactivated key refused, and
//! AssumeRole credentials that work until the injected clock passes their expiry.

use crate::{between, iam, post, start_with};
use berth_testkit::{Signing, signed};

#[tokio::test]
async fn iam_users_policies_enforcement_and_sessions() {
    // Ephemeral: its clock can be moved (`POST /_berth/clock`).
    let server = start_with(berth_testkit::Options {
        args: vec!["--ephemeral".into()],
        ..Default::default()
    });
    let ep = server.endpoint.clone();
    let (st, body) = iam(&ep, &[("Action", "CreateUser"), ("UserName", "bob")]).await;
    assert_eq!(st, 200, "{body}");
    assert!(
        body.contains("arn:aws:iam::000000000000:user/bob"),
        "{body}"
    );
    let (st, body) = iam(&ep, &[("Action", "CreateUser"), ("UserName", "BOB")]).await;
    assert_eq!(st, 409, "names are unique regardless of case: {body}");
    assert!(body.contains("EntityAlreadyExists"), "{body}");
    let (st, body) = iam(&ep, &[("Action", "CreateAccessKey"), ("UserName", "bob")]).await;
    assert_eq!(st, 200, "{body}");
    let (akid, secret) = (
        between(&body, "AccessKeyId").to_string(),
        between(&body, "SecretAccessKey").to_string(),
    );
    let bob = berth_testkit::aws_sdk_ecs::Client::new(&server.sdk_config_with(&akid, &secret));

    // Nothing is allowed by default.
    let err = bob.list_clusters().send().await.unwrap_err();
    let e = err.as_service_error().expect("a service error");
    assert_eq!(e.meta().code(), Some("AccessDeniedException"));
    assert_eq!(
        e.meta().message(),
        Some(
            "User: arn:aws:iam::000000000000:user/bob is not authorized to perform: ecs:ListClusters on resource: * because no identity-based policy allows the ecs:ListClusters action"
        )
    );

    // An inline policy allows reading; a Deny beats an Allow.
    let policy = r#"{"Version":"2012-10-17","Statement":[
        {"Effect":"Allow","Action":["ecs:List*","ecs:CreateCluster","ecs:DeleteCluster"],"Resource":"*"},
        {"Effect":"Deny","Action":"ecs:DeleteCluster","Resource":"arn:aws:ecs:*:*:cluster/keep"}]}"#;
    let (st, body) = iam(
        &ep,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "bob"),
            ("PolicyName", "ecs"),
            ("PolicyDocument", policy),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = iam(
        &ep,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "bob"),
            ("PolicyName", "bad"),
            ("PolicyDocument", "{\"Statement\": 1}"),
        ],
    )
    .await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("MalformedPolicyDocument"), "{body}");
    bob.list_clusters().send().await.expect("allowed now");
    bob.create_cluster()
        .cluster_name("keep")
        .send()
        .await
        .unwrap();
    let err = bob
        .delete_cluster()
        .cluster("keep")
        .send()
        .await
        .unwrap_err();
    let e = err.as_service_error().unwrap();
    assert!(
        e.meta()
            .message()
            .unwrap()
            .ends_with("with an explicit deny in an identity-based policy"),
        "{:?}",
        e.meta().message()
    );

    // A deactivated key is refused at once.
    let (st, body) = iam(
        &ep,
        &[
            ("Action", "UpdateAccessKey"),
            ("UserName", "bob"),
            ("AccessKeyId", &akid),
            ("Status", "Inactive"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let err = bob.list_clusters().send().await.unwrap_err();
    assert_eq!(
        err.as_service_error().unwrap().meta().code(),
        Some("UnrecognizedClientException")
    );
    let (st, body) = iam(&ep, &[("Action", "DeleteUser"), ("UserName", "bob")]).await;
    assert_eq!(st, 409, "keys and policies first: {body}");

    // A role bob may assume; its session works until it expires.
    iam(
        &ep,
        &[
            ("Action", "UpdateAccessKey"),
            ("UserName", "bob"),
            ("AccessKeyId", &akid),
            ("Status", "Active"),
        ],
    )
    .await;
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:user/bob"},"Action":"sts:AssumeRole"}]}"#;
    let (st, body) = iam(
        &ep,
        &[
            ("Action", "CreateRole"),
            ("RoleName", "reader"),
            ("AssumeRolePolicyDocument", trust),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = iam(
        &ep,
        &[
            ("Action", "AttachRolePolicy"),
            ("RoleName", "reader"),
            ("PolicyArn", "arn:aws:iam::aws:policy/AdministratorAccess"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let sts = berth_testkit::aws_sdk_sts::Client::new(&server.sdk_config_with(&akid, &secret));
    let out = sts
        .assume_role()
        .role_arn("arn:aws:iam::000000000000:role/reader")
        .role_session_name("s1")
        .duration_seconds(900)
        .send()
        .await
        .expect("the trust policy names bob");
    let c = out.credentials.unwrap();
    assert!(c.access_key_id.starts_with("ASIA"));
    let config = crate::session_config(
        &server,
        &c.access_key_id,
        &c.secret_access_key,
        &c.session_token,
    );
    let me = berth_testkit::aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await
        .unwrap();
    assert_eq!(
        me.arn(),
        Some("arn:aws:sts::000000000000:assumed-role/reader/s1")
    );
    let session_ecs = berth_testkit::aws_sdk_ecs::Client::new(&config);
    session_ecs
        .list_clusters()
        .send()
        .await
        .expect("the role allows it");
    // The injected clock passes the session's expiry.
    let s = Signing::root("ecs");
    let r = signed(
        &s,
        "POST",
        &format!("{ep}/_berth/clock?advance=901"),
        &[],
        b"",
    )
    .send()
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let err = session_ecs.list_clusters().send().await.unwrap_err();
    assert_eq!(
        err.as_service_error().unwrap().meta().code(),
        Some("ExpiredTokenException")
    );
}

/// A node endpoint call (`path`, JSON `body`) signed with this key for `service`.
async fn node_call(
    ep: &str,
    key: (&str, &str),
    service: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    post(ep, key, service, path, "application/json", body).await
}

#[tokio::test]
async fn node_endpoints_are_authorized_and_a_node_policy_cannot_delete_or_push() {
    let server = start_with(berth_testkit::Options {
        args: vec!["--ephemeral".into()],
        ..Default::default()
    });
    let ep = server.endpoint.clone();
    let ecs = server.ecs();
    ecs.create_cluster().cluster_name("a").send().await.unwrap();
    let mut keys = Vec::new();
    for user in ["node", "nobody"] {
        let (st, body) = iam(&ep, &[("Action", "CreateUser"), ("UserName", user)]).await;
        assert_eq!(st, 200, "{body}");
        let (st, body) = iam(&ep, &[("Action", "CreateAccessKey"), ("UserName", user)]).await;
        assert_eq!(st, 200, "{body}");
        keys.push((
            between(&body, "AccessKeyId").to_string(),
            between(&body, "SecretAccessKey").to_string(),
        ));
    }
    let policy = "arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role";
    let (st, body) = iam(
        &ep,
        &[
            ("Action", "AttachUserPolicy"),
            ("UserName", "node"),
            ("PolicyArn", policy),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let heartbeat = r#"{"cluster":"a","containerInstance":"0123456789abcdef"}"#;
    let node = (keys[0].0.as_str(), keys[0].1.as_str());
    let nobody = (keys[1].0.as_str(), keys[1].1.as_str());
    let path = berth_node_api::agent::HEARTBEAT;
    // Authorized: the call reaches the control plane (which knows no such instance).
    let (st, body) = node_call(&ep, node, "ecs", path, heartbeat).await;
    assert!(!body.contains("AccessDenied"), "{st} {body}");
    let (st, body) = node_call(&ep, nobody, "ecs", path, heartbeat).await;
    assert_eq!(st, 400, "{body}");
    assert!(body.contains("AccessDeniedException"), "{body}");
    assert!(body.contains("ecs:Poll"), "{body}");
    let lb = berth_node_api::lb::CONFIG;
    let (st, body) = node_call(&ep, node, "elasticloadbalancing", lb, "{}").await;
    assert!(
        body.contains("AccessDenied") && st == 400,
        "an agent is no LB node: {st} {body}"
    );
    // The node policy: no DeleteCluster, no push.
    let cfg = server.sdk_config_with(node.0, node.1);
    let node_ecs = berth_testkit::aws_sdk_ecs::Client::new(&cfg);
    let err = node_ecs
        .delete_cluster()
        .cluster("a")
        .send()
        .await
        .unwrap_err();
    let err = err.into_service_error();
    assert_eq!(err.meta().code(), Some("AccessDeniedException"), "{err:?}");
    let node_ecr = berth_testkit::aws_sdk_ecr::Client::new(&cfg);
    let token = node_ecr.get_authorization_token().send().await.unwrap();
    let token = token.authorization_data()[0]
        .authorization_token()
        .unwrap()
        .to_string();
    let err = node_ecr
        .create_repository()
        .repository_name("app")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.meta().code(), Some("AccessDeniedException"), "{err:?}");

    // RunTask of a task definition with a task role needs iam:PassRole on that role.
    let container = berth_testkit::aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("c")
        .image("busybox")
        .memory(64)
        .build();
    let role = "arn:aws:iam::000000000000:role/app";
    ecs.register_task_definition()
        .family("roled")
        .task_role_arn(role)
        .container_definitions(container)
        .send()
        .await
        .unwrap();
    let run = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:RunTask","Resource":"*"}]}"#;
    let (st, body) = iam(
        &ep,
        &[
            ("Action", "PutUserPolicy"),
            ("UserName", "nobody"),
            ("PolicyName", "run"),
            ("PolicyDocument", run),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    let runner =
        berth_testkit::aws_sdk_ecs::Client::new(&server.sdk_config_with(nobody.0, nobody.1));
    let err = runner
        .run_task()
        .cluster("a")
        .task_definition("roled")
        .send()
        .await
        .unwrap_err()
        .into_service_error();
    assert_eq!(err.meta().code(), Some("AccessDeniedException"), "{err:?}");
    let message = err.meta().message().unwrap_or_default();
    assert!(
        message.contains("iam:PassRole") && message.contains(role),
        "{message}"
    );

    // The node's registry token works until its key is deactivated, then at once no more.
    let v2 = || {
        reqwest::Client::new()
            .get(format!("{ep}/v2/"))
            .header("authorization", format!("Basic {token}"))
            .send()
    };
    assert_eq!(v2().await.unwrap().status(), 200);
    let (st, body) = iam(
        &ep,
        &[
            ("Action", "UpdateAccessKey"),
            ("UserName", "node"),
            ("AccessKeyId", node.0),
            ("Status", "Inactive"),
        ],
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(v2().await.unwrap().status(), 401);
}
