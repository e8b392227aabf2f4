//! The ELBv2 API over awsQuery through `aws-sdk-elasticloadbalancingv2`: load balancers,
//! target groups and targets, listeners and rules, attributes and tags, with AWS's error codes.

use crate::{code, start};
use berth_testkit::aws_sdk_elasticloadbalancingv2::Client;
use berth_testkit::aws_sdk_elasticloadbalancingv2::error::ProvideErrorMetadata as _;
use berth_testkit::aws_sdk_elasticloadbalancingv2::types::{
    Action, ActionTypeEnum, FixedResponseActionConfig, ForwardActionConfig,
    HostHeaderConditionConfig, HttpHeaderConditionConfig, HttpRequestMethodConditionConfig,
    LoadBalancerAttribute, LoadBalancerStateEnum, Matcher, PathPatternConditionConfig,
    ProtocolEnum, QueryStringConditionConfig, QueryStringKeyValuePair, RedirectActionConfig,
    RedirectActionStatusCodeEnum, RuleCondition, RulePriorityPair, Tag, TargetDescription,
    TargetGroupAttribute, TargetGroupTuple, TargetHealthReasonEnum, TargetHealthStateEnum,
    TargetTypeEnum,
};

async fn load_balancer(elb: &Client, name: &str) -> String {
    elb.create_load_balancer()
        .name(name)
        .subnets("subnet-a")
        .send()
        .await
        .unwrap()
        .load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_string()
}

async fn target_group(elb: &Client, name: &str, kind: TargetTypeEnum) -> String {
    elb.create_target_group()
        .name(name)
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id("vpc-1")
        .target_type(kind)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string()
}

fn forward(tg: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .target_group_arn(tg)
        .build()
}

fn fixed(status: &str) -> Action {
    Action::builder()
        .r#type(ActionTypeEnum::FixedResponse)
        .fixed_response_config(
            FixedResponseActionConfig::builder()
                .status_code(status)
                .content_type("text/plain")
                .message_body("fixed")
                .build(),
        )
        .build()
}

async fn listener(elb: &Client, lb: &str, port: i32, action: Action) -> String {
    elb.create_listener()
        .load_balancer_arn(lb)
        .protocol(ProtocolEnum::Http)
        .port(port)
        .default_actions(action)
        .send()
        .await
        .unwrap()
        .listeners()[0]
        .listener_arn()
        .unwrap()
        .to_string()
}

/// A free loopback port for a listener (binding it is the data plane's job).
pub(crate) fn free_port() -> i32 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port() as i32
}

#[tokio::test]
async fn elbv2_load_balancers_attributes_and_tags() {
    let server = start();
    let elb = server.elbv2();
    let created = elb
        .create_load_balancer()
        .name("web-lb")
        .subnets("subnet-a")
        .tags(Tag::builder().key("team").value("a").build())
        .send()
        .await
        .unwrap();
    let lb = &created.load_balancers()[0];
    let arn = lb.load_balancer_arn().unwrap().to_string();
    assert!(
        arn.starts_with(
            "arn:aws:elasticloadbalancing:us-east-1:000000000000:loadbalancer/app/web-lb/"
        ),
        "{arn}"
    );
    assert_eq!(arn.rsplit('/').next().unwrap().len(), 16);
    assert_eq!(lb.dns_name(), Some("127.0.0.1"));
    assert_eq!(
        lb.state().unwrap().code(),
        Some(&LoadBalancerStateEnum::Active)
    );
    // Same name, same settings: the same load balancer.
    assert_eq!(load_balancer(&elb, "web-lb").await, arn);

    let by_name = elb
        .describe_load_balancers()
        .names("web-lb")
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_name.load_balancers()[0].load_balancer_arn(),
        Some(arn.as_str())
    );
    let err = elb
        .describe_load_balancers()
        .names("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LoadBalancerNotFound");
    let err = elb
        .create_load_balancer()
        .name("-bad-")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationError");
    for i in 0..3 {
        load_balancer(&elb, &format!("page-{i}")).await;
    }
    let first = elb
        .describe_load_balancers()
        .page_size(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.load_balancers().len(), 2);
    let rest = elb
        .describe_load_balancers()
        .marker(first.next_marker().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.load_balancers().len(), 2);
    assert!(rest.next_marker().is_none());

    // Attributes.
    let attrs = elb
        .describe_load_balancer_attributes()
        .load_balancer_arn(&arn)
        .send()
        .await
        .unwrap();
    let idle = attrs
        .attributes()
        .iter()
        .find(|a| a.key() == Some("idle_timeout.timeout_seconds"))
        .unwrap();
    assert_eq!(idle.value(), Some("60"));
    let attribute = |k: &str, v: &str| LoadBalancerAttribute::builder().key(k).value(v).build();
    elb.modify_load_balancer_attributes()
        .load_balancer_arn(&arn)
        .attributes(attribute("idle_timeout.timeout_seconds", "120"))
        .attributes(attribute("deletion_protection.enabled", "true"))
        .send()
        .await
        .unwrap();
    let err = elb
        .modify_load_balancer_attributes()
        .load_balancer_arn(&arn)
        .attributes(attribute("no.such.key", "1"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidConfigurationRequest");
    let err = elb
        .delete_load_balancer()
        .load_balancer_arn(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "OperationNotPermitted");

    // Tags.
    elb.add_tags()
        .resource_arns(&arn)
        .tags(Tag::builder().key("env").value("prod").build())
        .send()
        .await
        .unwrap();
    elb.remove_tags()
        .resource_arns(&arn)
        .tag_keys("team")
        .send()
        .await
        .unwrap();
    let described = elb
        .describe_tags()
        .resource_arns(&arn)
        .send()
        .await
        .unwrap();
    let tags: Vec<(&str, &str)> = described.tag_descriptions()[0]
        .tags()
        .iter()
        .map(|t| (t.key().unwrap(), t.value().unwrap()))
        .collect();
    assert_eq!(tags, [("env", "prod")]);

    elb.modify_load_balancer_attributes()
        .load_balancer_arn(&arn)
        .attributes(attribute("deletion_protection.enabled", "false"))
        .send()
        .await
        .unwrap();
    elb.delete_load_balancer()
        .load_balancer_arn(&arn)
        .send()
        .await
        .unwrap();
    let err = elb
        .describe_load_balancers()
        .load_balancer_arns(&arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "LoadBalancerNotFound");
}

#[tokio::test]
async fn elbv2_target_groups_targets_and_their_health() {
    let server = start();
    let elb = server.elbv2();
    let tg = target_group(&elb, "web", TargetTypeEnum::Instance).await;
    let d = elb
        .describe_target_groups()
        .names("web")
        .send()
        .await
        .unwrap();
    let g = &d.target_groups()[0];
    assert_eq!(
        (
            g.health_check_path(),
            g.health_check_interval_seconds(),
            g.health_check_timeout_seconds(),
            g.healthy_threshold_count(),
            g.unhealthy_threshold_count(),
            g.matcher().unwrap().http_code(),
            g.health_check_port(),
        ),
        (
            Some("/"),
            Some(30),
            Some(5),
            Some(5),
            Some(2),
            Some("200"),
            Some("traffic-port")
        )
    );
    let err = elb
        .create_target_group()
        .name("web")
        .protocol(ProtocolEnum::Http)
        .port(8080)
        .vpc_id("vpc-1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "DuplicateTargetGroupName");
    // The interval must exceed the timeout, on creation and on change; nothing is made.
    for (interval, timeout) in [(5, 5), (6, 10)] {
        let err = elb
            .create_target_group()
            .name("tight")
            .protocol(ProtocolEnum::Http)
            .port(8080)
            .vpc_id("vpc-1")
            .health_check_interval_seconds(interval)
            .health_check_timeout_seconds(timeout)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&err), "ValidationError");
        assert_eq!(
            err.message(),
            Some("Health check interval must be greater than the timeout.")
        );
    }
    let err = elb
        .modify_target_group()
        .target_group_arn(&tg)
        .health_check_timeout_seconds(30)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationError");
    assert!(
        elb.describe_target_groups()
            .names("tight")
            .send()
            .await
            .is_err()
    );
    let modified = elb
        .modify_target_group()
        .target_group_arn(&tg)
        .health_check_path("/health")
        .health_check_interval_seconds(5)
        .health_check_timeout_seconds(2)
        .matcher(Matcher::builder().http_code("200-299").build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        modified.target_groups()[0].health_check_path(),
        Some("/health")
    );
    let err = elb
        .modify_target_group()
        .target_group_arn(&tg)
        .matcher(Matcher::builder().http_code("600").build())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidConfigurationRequest");

    // Attributes.
    let attribute = |k: &str, v: &str| TargetGroupAttribute::builder().key(k).value(v).build();
    let attrs = elb
        .modify_target_group_attributes()
        .target_group_arn(&tg)
        .attributes(attribute("deregistration_delay.timeout_seconds", "0"))
        .attributes(attribute("stickiness.enabled", "true"))
        .send()
        .await
        .unwrap();
    let get = |k: &str| {
        attrs
            .attributes()
            .iter()
            .find(|a| a.key() == Some(k))
            .and_then(|a| a.value())
            .unwrap()
            .to_string()
    };
    assert_eq!(get("deregistration_delay.timeout_seconds"), "0");
    assert_eq!(get("load_balancing.algorithm.type"), "round_robin");
    let err = elb
        .modify_target_group_attributes()
        .target_group_arn(&tg)
        .attributes(attribute(
            "load_balancing.algorithm.type",
            "least_outstanding_requests",
        ))
        .attributes(attribute("slow_start.duration_seconds", "60"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidConfigurationRequest");

    // Targets: unused until a listener forwards to the group.
    let target = |id: &str, port: i32| TargetDescription::builder().id(id).port(port).build();
    elb.register_targets()
        .target_group_arn(&tg)
        .targets(target("i-0123456789abcdef0", 32768))
        .targets(target("i-0123456789abcdef0", 32769))
        .send()
        .await
        .unwrap();
    let health = elb
        .describe_target_health()
        .target_group_arn(&tg)
        .send()
        .await
        .unwrap();
    assert_eq!(health.target_health_descriptions().len(), 2);
    let h = health.target_health_descriptions()[0]
        .target_health()
        .unwrap();
    assert_eq!(h.state(), Some(&TargetHealthStateEnum::Unused));
    assert_eq!(h.reason(), Some(&TargetHealthReasonEnum::NotInUse));
    assert_eq!(
        health.target_health_descriptions()[0].health_check_port(),
        Some("32768")
    );
    let lb = load_balancer(&elb, "front").await;
    let l = listener(&elb, &lb, free_port(), forward(&tg)).await;
    let health = elb
        .describe_target_health()
        .target_group_arn(&tg)
        .send()
        .await
        .unwrap();
    assert!(
        health
            .target_health_descriptions()
            .iter()
            .all(|d| d.target_health().unwrap().state() == Some(&TargetHealthStateEnum::Initial))
    );
    let in_use = elb
        .describe_target_groups()
        .load_balancer_arn(&lb)
        .send()
        .await
        .unwrap();
    assert_eq!(
        in_use.target_groups()[0].load_balancer_arns(),
        std::slice::from_ref(&lb)
    );
    // Deregistered: draining (a delay of 0 ends it at once).
    elb.modify_target_group_attributes()
        .target_group_arn(&tg)
        .attributes(attribute("deregistration_delay.timeout_seconds", "300"))
        .send()
        .await
        .unwrap();
    elb.deregister_targets()
        .target_group_arn(&tg)
        .targets(target("i-0123456789abcdef0", 32768))
        .send()
        .await
        .unwrap();
    let named = elb
        .describe_target_health()
        .target_group_arn(&tg)
        .targets(target("i-0123456789abcdef0", 32768))
        .targets(target("i-other", 80))
        .send()
        .await
        .unwrap();
    let states: Vec<(&TargetHealthStateEnum, &TargetHealthReasonEnum)> = named
        .target_health_descriptions()
        .iter()
        .map(|d| {
            let h = d.target_health().unwrap();
            (h.state().unwrap(), h.reason().unwrap())
        })
        .collect();
    assert_eq!(
        states,
        [
            (
                &TargetHealthStateEnum::Draining,
                &TargetHealthReasonEnum::DeregistrationInProgress
            ),
            (
                &TargetHealthStateEnum::Unused,
                &TargetHealthReasonEnum::NotRegistered
            ),
        ]
    );
    let err = elb
        .deregister_targets()
        .target_group_arn(&tg)
        .targets(target("i-never", 80))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidTarget");

    // ip targets must be private (or, on Berth, loopback) addresses.
    let ip = target_group(&elb, "by-ip", TargetTypeEnum::Ip).await;
    elb.register_targets()
        .target_group_arn(&ip)
        .targets(target("10.0.0.5", 8080))
        .targets(target("127.0.0.1", 8080))
        .send()
        .await
        .unwrap();
    let err = elb
        .register_targets()
        .target_group_arn(&ip)
        .targets(target("8.8.8.8", 80))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "InvalidTarget");
    let err = elb
        .register_targets()
        .target_group_arn(&ip)
        .targets(target("10.0.0.6", 70000))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ValidationError");
    let missing = tg.replace("/web/", "/gone/");
    let err = elb
        .register_targets()
        .target_group_arn(&missing)
        .targets(target("i-1", 80))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TargetGroupNotFound");

    // In use: the group cannot go until the listener does.
    let err = elb
        .delete_target_group()
        .target_group_arn(&tg)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ResourceInUse");
    elb.delete_listener().listener_arn(&l).send().await.unwrap();
    elb.delete_target_group()
        .target_group_arn(&tg)
        .send()
        .await
        .unwrap();
    let err = elb
        .describe_target_groups()
        .target_group_arns(&tg)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TargetGroupNotFound");
}

#[tokio::test]
async fn elbv2_listeners_and_rules() {
    let server = start();
    let elb = server.elbv2();
    let lb = load_balancer(&elb, "front").await;
    let blue = target_group(&elb, "blue", TargetTypeEnum::Instance).await;
    let green = target_group(&elb, "green", TargetTypeEnum::Instance).await;
    let port = free_port();
    let weighted = Action::builder()
        .r#type(ActionTypeEnum::Forward)
        .forward_config(
            ForwardActionConfig::builder()
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(&blue)
                        .weight(3)
                        .build(),
                )
                .target_groups(
                    TargetGroupTuple::builder()
                        .target_group_arn(&green)
                        .weight(1)
                        .build(),
                )
                .build(),
        )
        .build();
    let l = listener(&elb, &lb, port, weighted).await;
    assert!(l.contains(":listener/app/front/"), "{l}");
    let err = elb
        .create_listener()
        .load_balancer_arn(&lb)
        .protocol(ProtocolEnum::Http)
        .port(port)
        .default_actions(fixed("404"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "DuplicateListener");
    let err = elb
        .create_listener()
        .load_balancer_arn(&lb)
        .protocol(ProtocolEnum::Http)
        .port(free_port())
        .default_actions(forward(&blue.replace("/blue/", "/none/")))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TargetGroupNotFound");
    let listed = elb
        .describe_listeners()
        .load_balancer_arn(&lb)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.listeners().len(), 1);
    assert_eq!(listed.listeners()[0].port(), Some(port));
    let groups = listed.listeners()[0].default_actions()[0]
        .forward_config()
        .unwrap()
        .target_groups();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[0].weight(), Some(3));

    // Rules, in priority order, the default last.
    let path = |p: &str| {
        RuleCondition::builder()
            .field("path-pattern")
            .path_pattern_config(PathPatternConditionConfig::builder().values(p).build())
            .build()
    };
    let rule = |priority: i32, condition: RuleCondition, action: Action| {
        elb.create_rule()
            .listener_arn(&l)
            .priority(priority)
            .conditions(condition)
            .actions(action)
            .send()
    };
    let api = rule(10, path("/api/*"), forward(&green))
        .await
        .unwrap()
        .rules()[0]
        .rule_arn()
        .unwrap()
        .to_string();
    let host = RuleCondition::builder()
        .field("host-header")
        .host_header_config(
            HostHeaderConditionConfig::builder()
                .values("*.example.com")
                .build(),
        )
        .build();
    let by_host = rule(20, host, fixed("503")).await.unwrap().rules()[0]
        .rule_arn()
        .unwrap()
        .to_string();
    let header = RuleCondition::builder()
        .field("http-header")
        .http_header_config(
            HttpHeaderConditionConfig::builder()
                .http_header_name("X-Canary")
                .values("yes")
                .build(),
        )
        .build();
    rule(30, header, forward(&green)).await.unwrap();
    let method = RuleCondition::builder()
        .field("http-request-method")
        .http_request_method_config(
            HttpRequestMethodConditionConfig::builder()
                .values("POST")
                .build(),
        )
        .build();
    rule(40, method, fixed("405")).await.unwrap();
    let query = RuleCondition::builder()
        .field("query-string")
        .query_string_config(
            QueryStringConditionConfig::builder()
                .values(
                    QueryStringKeyValuePair::builder()
                        .key("v")
                        .value("2")
                        .build(),
                )
                .build(),
        )
        .build();
    let redirect = Action::builder()
        .r#type(ActionTypeEnum::Redirect)
        .redirect_config(
            RedirectActionConfig::builder()
                .path("/v2/#{path}")
                .status_code(RedirectActionStatusCodeEnum::Http301)
                .build(),
        )
        .build();
    rule(50, query, redirect).await.unwrap();
    let err = rule(10, path("/other"), fixed("200")).await.unwrap_err();
    assert_eq!(code(&err), "PriorityInUse");
    let rules = elb.describe_rules().listener_arn(&l).send().await.unwrap();
    let order: Vec<(&str, bool)> = rules
        .rules()
        .iter()
        .map(|r| (r.priority().unwrap(), r.is_default().unwrap()))
        .collect();
    assert_eq!(
        order,
        [
            ("10", false),
            ("20", false),
            ("30", false),
            ("40", false),
            ("50", false),
            ("default", true)
        ]
    );
    let default_rule = rules.rules()[5].rule_arn().unwrap().to_string();

    elb.set_rule_priorities()
        .rule_priorities(
            RulePriorityPair::builder()
                .rule_arn(&api)
                .priority(25)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let err = elb
        .set_rule_priorities()
        .rule_priorities(
            RulePriorityPair::builder()
                .rule_arn(&api)
                .priority(20)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "PriorityInUse");
    let modified = elb
        .modify_rule()
        .rule_arn(&by_host)
        .conditions(path("/status"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        modified.rules()[0].conditions()[0].field(),
        Some("path-pattern")
    );
    let err = elb
        .modify_rule()
        .rule_arn(&default_rule)
        .conditions(path("/x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "OperationNotPermitted");
    let err = elb
        .delete_rule()
        .rule_arn(&default_rule)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "OperationNotPermitted");
    // The default rule and the listener's default actions are one.
    elb.modify_listener()
        .listener_arn(&l)
        .default_actions(fixed("404"))
        .send()
        .await
        .unwrap();
    let d = elb
        .describe_rules()
        .rule_arns(&default_rule)
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.rules()[0].actions()[0].r#type(),
        Some(&ActionTypeEnum::FixedResponse)
    );
    elb.delete_rule().rule_arn(&api).send().await.unwrap();
    let err = elb.delete_rule().rule_arn(&api).send().await.unwrap_err();
    assert_eq!(code(&err), "RuleNotFound");

    // A target group serves one load balancer.
    let other = load_balancer(&elb, "other").await;
    let err = elb
        .create_listener()
        .load_balancer_arn(&other)
        .protocol(ProtocolEnum::Http)
        .port(free_port())
        .default_actions(forward(&green))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "TargetGroupAssociationLimit");
    let err = elb
        .create_listener()
        .load_balancer_arn(&other)
        .protocol(ProtocolEnum::Https)
        .port(free_port())
        .default_actions(fixed("200"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "UnsupportedProtocol");

    // Deleting the load balancer takes its listeners and rules; target groups stay.
    elb.delete_load_balancer()
        .load_balancer_arn(&lb)
        .send()
        .await
        .unwrap();
    let err = elb
        .describe_listeners()
        .listener_arns(&l)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&err), "ListenerNotFound");
    elb.delete_target_group()
        .target_group_arn(&green)
        .send()
        .await
        .unwrap();
}

/// A tiny HTTP backend on loopback answering `name` to every request (health checks too); it
/// counts the requests that are not health checks and stops serving when dropped.
pub(crate) struct Backend {
    pub port: u16,
    pub hits: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// When false, it answers 500 to everything.
    pub healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(crate) async fn backend(name: &str) -> Backend {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    let healthy = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let ok = healthy.clone();
    let name = name.to_string();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = socket.accept().await else {
                return;
            };
            let (counter, name, ok) = (counter.clone(), name.clone(), ok.clone());
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if !String::from_utf8_lossy(&head).contains("ELB-HealthChecker") {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                let status = if ok.load(std::sync::atomic::Ordering::Relaxed) {
                    "200 OK"
                } else {
                    "500 Internal Server Error"
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{name}",
                    name.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    Backend {
        port,
        hits,
        healthy,
        task,
    }
}

#[tokio::test]
async fn elbv2_traffic_flows_through_a_listener_to_healthy_targets() {
    use std::sync::atomic::Ordering;
    let server = start();
    let elb = server.elbv2();
    let one = backend("one").await;
    let two = backend("two").await;
    let (p1, hits1, p2, hits2) = (one.port, one.hits.clone(), two.port, two.hits.clone());
    let tg = elb
        .create_target_group()
        .name("web")
        .protocol(ProtocolEnum::Http)
        .port(80)
        .vpc_id("vpc-1")
        .target_type(TargetTypeEnum::Ip)
        .health_check_interval_seconds(5)
        .health_check_timeout_seconds(2)
        .healthy_threshold_count(2)
        .send()
        .await
        .unwrap()
        .target_groups()[0]
        .target_group_arn()
        .unwrap()
        .to_string();
    let target = |port: u16| {
        TargetDescription::builder()
            .id("127.0.0.1")
            .port(port as i32)
            .build()
    };
    elb.register_targets()
        .target_group_arn(&tg)
        .targets(target(p1))
        .targets(target(p2))
        .send()
        .await
        .unwrap();
    let lb = load_balancer(&elb, "front").await;
    let port = free_port();
    let l = listener(&elb, &lb, port, forward(&tg)).await;
    elb.create_rule()
        .listener_arn(&l)
        .priority(1)
        .conditions(
            RuleCondition::builder()
                .field("path-pattern")
                .path_pattern_config(
                    PathPatternConditionConfig::builder()
                        .values("/ping")
                        .build(),
                )
                .build(),
        )
        .actions(fixed("200"))
        .send()
        .await
        .unwrap();
    berth_testkit::until(
        std::time::Duration::from_secs(20),
        "both targets healthy",
        || async {
            let h = elb
                .describe_target_health()
                .target_group_arn(&tg)
                .send()
                .await
                .unwrap();
            h.target_health_descriptions().len() == 2
                && h.target_health_descriptions().iter().all(|d| {
                    d.target_health().unwrap().state() == Some(&TargetHealthStateEnum::Healthy)
                })
        },
    )
    .await;
    let url = format!("http://127.0.0.1:{port}/");
    for _ in 0..20 {
        let r = reqwest::get(&url).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        (hits1.load(Ordering::Relaxed), hits2.load(Ordering::Relaxed)),
        (10, 10),
        "round robin over the healthy targets"
    );
    let fixed_body = reqwest::get(format!("http://127.0.0.1:{port}/ping"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(fixed_body, "fixed");
    // Deregistered: draining, and no new requests.
    elb.deregister_targets()
        .target_group_arn(&tg)
        .targets(target(p2))
        .send()
        .await
        .unwrap();
    berth_testkit::until(
        std::time::Duration::from_secs(10),
        "the config to reach the data plane",
        || async {
            let before = hits2.load(Ordering::Relaxed);
            reqwest::get(&url).await.unwrap();
            reqwest::get(&url).await.unwrap();
            hits2.load(Ordering::Relaxed) == before
        },
    )
    .await;
    let before = hits2.load(Ordering::Relaxed);
    for _ in 0..10 {
        assert_eq!(reqwest::get(&url).await.unwrap().status(), 200);
    }
    assert_eq!(hits2.load(Ordering::Relaxed), before);
    // A listener moved to another port is served there.
    let moved = free_port();
    elb.modify_listener()
        .listener_arn(&l)
        .port(moved)
        .send()
        .await
        .unwrap();
    berth_testkit::until(
        std::time::Duration::from_secs(10),
        "the moved listener",
        || async {
            reqwest::get(format!("http://127.0.0.1:{moved}/ping"))
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
}

/// `berth lb` as its own process, fed by a server (`berth up --no-lb`): it serves the
/// listeners and reports target health back.
#[tokio::test]
async fn elbv2_a_separate_berth_lb_serves_the_listeners() {
    let server = crate::start_with(berth_testkit::Options {
        args: vec!["--no-lb".into()],
        ..Default::default()
    });
    let elb = server.elbv2();
    let site = backend("separate").await;
    let tg = target_group(&elb, "web", TargetTypeEnum::Ip).await;
    elb.register_targets()
        .target_group_arn(&tg)
        .targets(
            TargetDescription::builder()
                .id("127.0.0.1")
                .port(site.port as i32)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let lb = load_balancer(&elb, "front").await;
    let port = free_port();
    listener(&elb, &lb, port, forward(&tg)).await;
    let url = format!("http://127.0.0.1:{port}/");
    assert!(reqwest::get(&url).await.is_err(), "nothing serves it yet");
    let _node = crate::LbNode::start(&server.endpoint);
    berth_testkit::until(
        std::time::Duration::from_secs(20),
        "the separate load balancer to serve and report health",
        || async {
            let served = match reqwest::get(&url).await {
                Ok(r) => r.text().await.unwrap_or_default() == "separate",
                Err(_) => false,
            };
            let health = elb
                .describe_target_health()
                .target_group_arn(&tg)
                .send()
                .await
                .unwrap();
            served
                && health.target_health_descriptions()[0]
                    .target_health()
                    .unwrap()
                    .state()
                    == Some(&TargetHealthStateEnum::Healthy)
        },
    )
    .await;
}
