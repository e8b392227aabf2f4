//! The AWS front door: SigV4 verification, protocol routing, error envelopes.

use crate::start;
use berth_testkit::{ACCESS_KEY_ID, SECRET_ACCESS_KEY, Signing, ecs_request, signed};
use std::time::{Duration, SystemTime};

fn json_type(body: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body: {body}"));
    v["__type"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn sigv4_accepts_a_correct_signature_and_sets_headers() {
    let server = start();
    let r = ecs_request(
        &server.endpoint,
        &Signing::root("ecs"),
        "ListClusters",
        "{}",
    )
    .send()
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body, r#"{"clusterArns":[]}"#);
    assert_eq!(r.headers["content-type"], "application/x-amz-json-1.1");
    assert_eq!(r.headers["x-amzn-requestid"].len(), 36);
    assert!(r.headers.contains_key("date"));
    // An empty body is `{}`.
    let r = ecs_request(&server.endpoint, &Signing::root("ecs"), "ListClusters", "")
        .send()
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn sigv4_rejects_wrong_secret_unknown_key_and_tampering() {
    let server = start();
    let wrong_secret = aws_sdk_ecs_client(
        &server,
        ACCESS_KEY_ID,
        "not-the-secret-at-all-0000000000000000000",
    );
    let err = wrong_secret.list_clusters().send().await.unwrap_err();
    assert_eq!(err.code(), Some("InvalidSignatureException"));
    let unknown = aws_sdk_ecs_client(&server, "AKIAUNKNOWNKEY000000", SECRET_ACCESS_KEY);
    let err = unknown.list_clusters().send().await.unwrap_err();
    assert_eq!(err.code(), Some("UnrecognizedClientException"));

    // Tampered body: signed one body, sent another.
    let mut req = ecs_request(
        &server.endpoint,
        &Signing::root("ecs"),
        "CreateCluster",
        r#"{"clusterName":"a"}"#,
    );
    req.body = br#"{"clusterName":"b"}"#.to_vec();
    let r = req.send().await;
    assert_eq!(
        (r.status, json_type(&r.body)),
        (400, "InvalidSignatureException".into())
    );
    let list = ecs_request(
        &server.endpoint,
        &Signing::root("ecs"),
        "ListClusters",
        "{}",
    )
    .send()
    .await;
    assert_eq!(
        list.body, r#"{"clusterArns":[]}"#,
        "the tampered request changed nothing"
    );

    // A signed header that is missing from the request.
    let mut req = ecs_request(
        &server.endpoint,
        &Signing::root("ecs"),
        "ListClusters",
        "{}",
    );
    req.headers.retain(|(k, _)| k != "content-type");
    let r = req.send().await;
    assert_eq!(
        (r.status, json_type(&r.body)),
        (400, "InvalidSignatureException".into())
    );

    // No date at all: the signature is incomplete.
    let mut req = ecs_request(
        &server.endpoint,
        &Signing::root("ecs"),
        "ListClusters",
        "{}",
    );
    req.headers.retain(|(k, _)| k != "x-amz-date");
    let r = req.send().await;
    assert_eq!(json_type(&r.body), "IncompleteSignatureException");

    // No Authorization header.
    let mut req = ecs_request(
        &server.endpoint,
        &Signing::root("ecs"),
        "ListClusters",
        "{}",
    );
    req.headers.retain(|(k, _)| k != "authorization");
    let r = req.send().await;
    assert_eq!(
        (r.status, json_type(&r.body)),
        (400, "MissingAuthenticationTokenException".into())
    );
    // Unsigned requests to paths that are not public are refused before anything else,
    // whatever they name.
    let http = reqwest::Client::new();
    for (method, path, target) in [
        ("GET", "/", None),
        ("GET", "/metrics", None),
        ("POST", "/", None),
        ("POST", "/", Some("NoSuchService_20200101.ListThings")),
        (
            "POST",
            "/",
            Some("AmazonEC2ContainerServiceV20141113.NoSuchOperation"),
        ),
        ("POST", "/_berth/reset", None),
    ] {
        let mut req = http.request(
            method.parse().unwrap(),
            format!("{}{path}", server.endpoint),
        );
        if let Some(t) = target {
            req = req.header("x-amz-target", t);
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let body = r.text().await.unwrap();
        assert_eq!(
            (status, json_type(&body)),
            (400, "MissingAuthenticationTokenException".into()),
            "{method} {path} {target:?}"
        );
    }

    // Signed for another service.
    let r = ecs_request(
        &server.endpoint,
        &Signing::root("ecr"),
        "ListClusters",
        "{}",
    )
    .send()
    .await;
    assert_eq!(json_type(&r.body), "InvalidSignatureException");
    assert!(
        r.body
            .contains("Credential should be scoped to correct service: 'ecs'"),
        "{}",
        r.body
    );
}

fn aws_sdk_ecs_client(
    server: &berth_testkit::TestServer,
    id: &str,
    secret: &str,
) -> berth_testkit::aws_sdk_ecs::Client {
    berth_testkit::aws_sdk_ecs::Client::new(&server.sdk_config_with(id, secret))
}

use berth_testkit::aws_sdk_ecs::error::ProvideErrorMetadata;

#[tokio::test]
async fn sigv4_enforces_the_clock_skew_window() {
    let server = start();
    let mut s = Signing::root("ecs");
    s.time = SystemTime::now() - Duration::from_secs(10 * 60);
    let r = ecs_request(&server.endpoint, &s, "ListClusters", "{}")
        .send()
        .await;
    assert_eq!(json_type(&r.body), "InvalidSignatureException");
    assert!(r.body.contains("Signature expired"), "{}", r.body);
    s.time = SystemTime::now() + Duration::from_secs(10 * 60);
    let r = ecs_request(&server.endpoint, &s, "ListClusters", "{}")
        .send()
        .await;
    assert!(r.body.contains("Signature not yet current"), "{}", r.body);
    s.time = SystemTime::now() - Duration::from_secs(4 * 60);
    let r = ecs_request(&server.endpoint, &s, "ListClusters", "{}")
        .send()
        .await;
    assert_eq!(r.status, 200, "4 minutes of skew is tolerated: {}", r.body);
}

#[tokio::test]
async fn sigv4_presigned_urls_work_until_they_expire() {
    let server = start();
    let url = format!(
        "{}/?Action=GetCallerIdentity&Version=2011-06-15",
        server.endpoint
    );
    let mut s = Signing::root("sts");
    s.presign = Some(Duration::from_secs(60));
    let r = signed(&s, "GET", &url, &[], b"").send().await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains("<Arn>arn:aws:iam::000000000000:root</Arn>"),
        "{}",
        r.body
    );
    assert!(r.body.starts_with(
        "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
    ));
    s.time = SystemTime::now() - Duration::from_secs(120);
    let r = signed(&s, "GET", &url, &[], b"").send().await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("<Code>SignatureDoesNotMatch</Code>")
            && r.body.contains("Request has expired"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn query_protocol_works_through_the_sts_sdk_and_errors_are_xml() {
    let server = start();
    let who = server.sts().get_caller_identity().send().await.unwrap();
    assert_eq!(who.account(), Some("000000000000"));
    assert_eq!(who.arn(), Some("arn:aws:iam::000000000000:root"));

    let form = [(
        "content-type",
        "application/x-www-form-urlencoded; charset=utf-8",
    )];
    let url = format!("{}/", server.endpoint);
    let r = signed(
        &Signing::root("sts"),
        "POST",
        &url,
        &form,
        b"Action=NoSuchThing&Version=2011-06-15",
    )
    .send()
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body
            .contains("<Type>Sender</Type><Code>InvalidAction</Code>"),
        "{}",
        r.body
    );
    assert_eq!(r.headers["content-type"], "text/xml");

    let r = signed(
        &Signing::root("elasticloadbalancing"),
        "POST",
        &url,
        &form,
        b"Action=DescribeSSLPolicies&Version=2015-12-01",
    )
    .send()
    .await;
    assert_eq!(r.status, 501);
    assert!(r.body.starts_with("<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\"><Error><Type>Receiver</Type><Code>NotImplemented</Code>"), "{}", r.body);

    let r = signed(
        &Signing::root("sts"),
        "POST",
        &url,
        &form,
        b"Version=2011-06-15",
    )
    .send()
    .await;
    assert!(r.body.contains("<Code>MissingAction</Code>"), "{}", r.body);

    let mut bad = signed(
        &Signing::root("sts"),
        "POST",
        &url,
        &form,
        b"Action=GetCallerIdentity&Version=2011-06-15",
    );
    bad.headers.retain(|(k, _)| k != "authorization");
    let r = bad.send().await;
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("<Code>MissingAuthenticationToken</Code>"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn json_protocol_errors_have_exact_codes() {
    let server = start();
    let s = Signing::root("ecs");
    let post = |target: &str, body: &str| {
        signed(
            &s,
            "POST",
            &format!("{}/", server.endpoint),
            &[
                ("content-type", "application/x-amz-json-1.1"),
                ("x-amz-target", target),
            ],
            body.as_bytes(),
        )
    };
    let r = post("AmazonEC2ContainerServiceV20141113.NoSuchOperation", "{}")
        .send()
        .await;
    assert_eq!(
        (r.status, json_type(&r.body)),
        (400, "UnknownOperationException".into())
    );
    let r = post("NoSuchService_20200101.ListThings", "{}").send().await;
    assert_eq!(
        (r.status, json_type(&r.body)),
        (400, "UnknownOperationException".into())
    );
    let r = post("AmazonEC2ContainerServiceV20141113.CreateTaskSet", "{}")
        .send()
        .await;
    assert_eq!(
        (r.status, json_type(&r.body)),
        (501, "NotImplemented".into())
    );
    assert_eq!(r.headers["x-amzn-errortype"], "NotImplemented");
    // Signed for ecs, routed to ecr: the credential scope does not fit.
    let r = post(
        "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
        "{}",
    )
    .send()
    .await;
    assert_eq!(json_type(&r.body), "InvalidSignatureException");

    let r = post(
        "AmazonEC2ContainerServiceV20141113.CreateCluster",
        "{not json",
    )
    .send()
    .await;
    assert_eq!(
        (r.status, json_type(&r.body)),
        (400, "SerializationException".into())
    );
    let r = post("AmazonEC2ContainerServiceV20141113.CreateCluster", "[1]")
        .send()
        .await;
    assert_eq!(json_type(&r.body), "SerializationException");
    let r = post(
        "AmazonEC2ContainerServiceV20141113.ListClusters",
        r#"{"maxResults":"ten"}"#,
    )
    .send()
    .await;
    assert_eq!(json_type(&r.body), "SerializationException");
    let r = post(
        "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition",
        r#"{"family":"x"}"#,
    )
    .send()
    .await;
    assert_eq!(json_type(&r.body), "InvalidParameterException");
    assert!(r.body.contains("Value null at 'containerDefinitions' failed to satisfy constraint: Member must not be null"), "{}", r.body);
    let r = post(
        "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition",
        r#"{"family":"x","networkMode":"mesh","containerDefinitions":[{"name":"a","image":"b","memory":6}]}"#,
    )
    .send()
    .await;
    assert_eq!(json_type(&r.body), "InvalidParameterException");
    assert!(
        r.body.contains("Member must satisfy enum value set"),
        "{}",
        r.body
    );
    // Unknown members are ignored, nulls are absent.
    let r = post(
        "AmazonEC2ContainerServiceV20141113.CreateCluster",
        r#"{"clusterName":"ok","futureField":{"x":1},"tags":null}"#,
    )
    .send()
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // No selector at all.
    let r = signed(
        &s,
        "POST",
        &format!("{}/", server.endpoint),
        &[("content-type", "application/json")],
        b"{}",
    )
    .send()
    .await;
    assert_eq!(json_type(&r.body), "UnknownOperationException");
}
