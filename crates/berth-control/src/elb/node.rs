//! What the control plane tells a load balancer node (the `berth-node-api` lb protocol): its
//! region's listeners with their rules in order and its target groups with their targets,
//! compiled from the ELB records; and the health transitions the node reports back.

use super::Elb;
use berth_node_api::lb;
use berth_types::Error;
use berth_types::elb::{HealthCheck, Listener, LoadBalancer, Rule, TargetGroup};
use berth_types::shapes::elb::{
    Action, ActionTypeEnum, RedirectActionStatusCodeEnum, RuleCondition,
};

impl Elb {
    /// The node's whole configuration (one consistent read of the records).
    pub fn node_config(&self) -> Result<lb::Config, Error> {
        let records = self.records()?;
        let listeners = records
            .listeners
            .iter()
            .filter_map(|l| listener(l, &records.load_balancers, &records.rules))
            .collect();
        let target_groups = records
            .target_groups
            .iter()
            .map(|(arn, tg)| target_group(arn, tg))
            .collect();
        Ok(lb::Config {
            version: berth_node_api::VERSION,
            listeners,
            target_groups,
            metrics_interval_ms: self.metrics_interval_ms,
        })
    }

    /// A node's health checks moved a target.
    pub async fn node_health(&self, r: lb::HealthReport) -> Result<(), Error> {
        self.targets_report_health(
            &r.target_group_arn,
            &r.id,
            r.port.into(),
            r.state.as_str(),
            r.reason.as_deref(),
        )
        .await
    }
}

fn listener(l: &Listener, lbs: &[LoadBalancer], rules: &[Rule]) -> Option<lb::Listener> {
    let port = u16::try_from(l.port).ok()?;
    let owner = lbs.iter().find(|lb| lb.name == l.load_balancer);
    let idle_timeout_seconds = owner
        .and_then(|lb| lb.attributes.get("idle_timeout.timeout_seconds"))
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let mut mine: Vec<&Rule> = rules
        .iter()
        .filter(|r| r.load_balancer == l.load_balancer && r.listener_id == l.id)
        .collect();
    mine.sort_by_key(|r| r.priority.unwrap_or(u32::MAX));
    let rules = mine
        .into_iter()
        .filter_map(|r| {
            Some(lb::Rule {
                conditions: r
                    .conditions
                    .iter()
                    .map(condition)
                    .collect::<Option<Vec<_>>>()?,
                action: action(r.actions.last()?)?,
            })
        })
        .collect();
    Some(lb::Listener {
        port,
        load_balancer: owner
            .map(|lb| format!("app/{}/{}", lb.name, lb.id))
            .unwrap_or_default(),
        rules,
        idle_timeout_seconds,
    })
}

/// A condition's values: its `…Config` values, else the legacy `Values`.
fn values(c: &RuleCondition, config: Option<&Vec<String>>) -> Vec<String> {
    config
        .filter(|v| !v.is_empty())
        .or(c.values.as_ref())
        .cloned()
        .unwrap_or_default()
}

fn condition(c: &RuleCondition) -> Option<lb::Condition> {
    Some(match c.field.as_deref()? {
        "host-header" => lb::Condition::HostHeader {
            values: values(
                c,
                c.host_header_config
                    .as_ref()
                    .and_then(|h| h.values.as_ref()),
            ),
        },
        "path-pattern" => lb::Condition::PathPattern {
            values: values(
                c,
                c.path_pattern_config
                    .as_ref()
                    .and_then(|p| p.values.as_ref()),
            ),
        },
        "http-header" => {
            let h = c.http_header_config.as_ref()?;
            lb::Condition::HttpHeader {
                name: h.http_header_name.as_ref()?.to_ascii_lowercase(),
                values: values(c, h.values.as_ref()),
            }
        }
        "http-request-method" => lb::Condition::HttpRequestMethod {
            values: values(
                c,
                c.http_request_method_config
                    .as_ref()
                    .and_then(|m| m.values.as_ref()),
            ),
        },
        "query-string" => lb::Condition::QueryString {
            values: c
                .query_string_config
                .as_ref()?
                .values
                .iter()
                .flatten()
                .map(|kv| lb::QueryPair {
                    key: kv.key.clone(),
                    value: kv.value.clone().unwrap_or_default(),
                })
                .collect(),
        },
        "source-ip" => lb::Condition::SourceIp {
            values: values(
                c,
                c.source_ip_config.as_ref().and_then(|s| s.values.as_ref()),
            ),
        },
        _ => return None,
    })
}

fn action(a: &Action) -> Option<lb::Action> {
    Some(match a.r#type {
        ActionTypeEnum::Forward => {
            let mut groups: Vec<lb::WeightedGroup> = a
                .forward_config
                .iter()
                .flat_map(|f| f.target_groups.iter().flatten())
                .filter_map(|g| {
                    Some(lb::WeightedGroup {
                        target_group_arn: g.target_group_arn.clone()?,
                        weight: g.weight.and_then(|w| u32::try_from(w).ok()).unwrap_or(1),
                    })
                })
                .collect();
            if let Some(arn) = &a.target_group_arn
                && !groups.iter().any(|g| &g.target_group_arn == arn)
            {
                groups.push(lb::WeightedGroup {
                    target_group_arn: arn.clone(),
                    weight: 1,
                });
            }
            lb::Action::Forward { groups }
        }
        ActionTypeEnum::Redirect => {
            let r = a.redirect_config.as_ref()?;
            let part = |v: &Option<String>, default: &str| {
                v.clone().unwrap_or_else(|| default.to_string())
            };
            lb::Action::Redirect {
                protocol: part(&r.protocol, "#{protocol}"),
                host: part(&r.host, "#{host}"),
                port: part(&r.port, "#{port}"),
                path: part(&r.path, "/#{path}"),
                query: part(&r.query, "#{query}"),
                status: match r.status_code {
                    RedirectActionStatusCodeEnum::Http301 => 301,
                    RedirectActionStatusCodeEnum::Http302 => 302,
                },
            }
        }
        ActionTypeEnum::FixedResponse => {
            let f = a.fixed_response_config.as_ref()?;
            lb::Action::FixedResponse {
                status: f.status_code.parse().ok()?,
                content_type: f.content_type.clone(),
                body: f.message_body.clone().unwrap_or_default(),
            }
        }
        _ => return None,
    })
}

fn target_group(arn: &str, tg: &TargetGroup) -> lb::TargetGroup {
    let attribute = |name: &str| tg.attributes.get(name).map(String::as_str);
    lb::TargetGroup {
        arn: arn.to_string(),
        algorithm: match attribute("load_balancing.algorithm.type") {
            Some("least_outstanding_requests") => lb::Algorithm::LeastOutstandingRequests,
            _ => lb::Algorithm::RoundRobin,
        },
        stickiness_seconds: (attribute("stickiness.enabled") == Some("true")).then(|| {
            attribute("stickiness.lb_cookie.duration_seconds")
                .and_then(|s| s.parse().ok())
                .unwrap_or(86_400)
        }),
        slow_start_seconds: attribute("slow_start.duration_seconds")
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|s| *s > 0),
        health_check: health_check(&tg.health_check),
        targets: tg
            .targets
            .iter()
            .filter_map(|t| {
                Some(lb::Target {
                    id: t.id.clone(),
                    port: u16::try_from(t.port).ok()?,
                    ip: t.id.parse().ok(),
                    draining: t.draining_until.is_some(),
                })
            })
            .collect(),
    }
}

fn health_check(h: &HealthCheck) -> lb::HealthCheck {
    let count = |n: i64| u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    lb::HealthCheck {
        path: h.path.clone(),
        port: h.port.parse().ok(),
        interval_seconds: count(h.interval_seconds),
        timeout_seconds: count(h.timeout_seconds),
        healthy_threshold: count(h.healthy_threshold),
        unhealthy_threshold: count(h.unhealthy_threshold),
        matcher: matcher(&h.matcher),
    }
}

/// `200`, `200,202`, `200-299` as inclusive ranges.
fn matcher(m: &str) -> Vec<(u16, u16)> {
    m.split(',')
        .filter_map(|part| match part.split_once('-') {
            Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
            None => part.trim().parse().ok().map(|c| (c, c)),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lb_node_config_compiles_conditions_actions_and_matchers() {
        let c: RuleCondition = serde_json::from_value(
            json!({"Field": "path-pattern", "PathPatternConfig": {"Values": ["/v1/*"]}}),
        )
        .unwrap();
        assert_eq!(
            condition(&c),
            Some(lb::Condition::PathPattern {
                values: vec!["/v1/*".into()]
            })
        );
        let legacy: RuleCondition =
            serde_json::from_value(json!({"Field": "host-header", "Values": ["a.com"]})).unwrap();
        assert_eq!(
            condition(&legacy),
            Some(lb::Condition::HostHeader {
                values: vec!["a.com".into()]
            })
        );
        let header: RuleCondition = serde_json::from_value(json!({"Field": "http-header",
            "HttpHeaderConfig": {"HttpHeaderName": "X-Canary", "Values": ["yes"]}}))
        .unwrap();
        assert_eq!(
            condition(&header),
            Some(lb::Condition::HttpHeader {
                name: "x-canary".into(),
                values: vec!["yes".into()]
            })
        );
        let weighted: Action = serde_json::from_value(json!({"Type": "forward",
            "TargetGroupArn": "arn:b",
            "ForwardConfig": {"TargetGroups": [{"TargetGroupArn": "arn:a", "Weight": 3}]}}))
        .unwrap();
        assert_eq!(
            action(&weighted),
            Some(lb::Action::Forward {
                groups: vec![
                    lb::WeightedGroup {
                        target_group_arn: "arn:a".into(),
                        weight: 3
                    },
                    lb::WeightedGroup {
                        target_group_arn: "arn:b".into(),
                        weight: 1
                    }
                ]
            })
        );
        let redirect: Action = serde_json::from_value(json!({"Type": "redirect",
            "RedirectConfig": {"StatusCode": "HTTP_301", "Protocol": "HTTPS"}}))
        .unwrap();
        assert_eq!(
            action(&redirect),
            Some(lb::Action::Redirect {
                protocol: "HTTPS".into(),
                host: "#{host}".into(),
                port: "#{port}".into(),
                path: "/#{path}".into(),
                query: "#{query}".into(),
                status: 301
            })
        );
        assert_eq!(matcher("200,202-204"), vec![(200, 200), (202, 204)]);
    }
}
