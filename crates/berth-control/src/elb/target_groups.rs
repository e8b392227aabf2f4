//! Target groups, their attributes and targets (spec/elb-…md A.2, A.3).

use super::listeners::load_balancers_using;
use super::{Elb, all, check_tags, in_range, is_bool, load, random_id, save, valid_name};
use crate::paging::{Page, PageRequest};
use berth_store::{Kind, Read};
use berth_types::elb::{HealthCheck, Listener, LoadBalancer, Rule, Target, TargetGroup};
use berth_types::{ElbCode, Error, Generation, Tag, Timestamp};
use std::collections::BTreeMap;

/// `CreateTargetGroup` in domain terms (health check fields default as AWS's for HTTP).
#[derive(Debug, Clone, Default)]
pub struct CreateTargetGroup {
    pub name: String,
    pub protocol: Option<String>,
    pub protocol_version: Option<String>,
    pub port: Option<i64>,
    pub vpc_id: Option<String>,
    pub target_type: Option<String>,
    pub health: ModifyTargetGroup,
    pub tags: Vec<Tag>,
}

/// Health check settings of `CreateTargetGroup` / `ModifyTargetGroup`.
#[derive(Debug, Clone, Default)]
pub struct ModifyTargetGroup {
    pub enabled: Option<bool>,
    pub protocol: Option<String>,
    pub port: Option<String>,
    pub path: Option<String>,
    pub interval_seconds: Option<i64>,
    pub timeout_seconds: Option<i64>,
    pub healthy_threshold: Option<i64>,
    pub unhealthy_threshold: Option<i64>,
    pub matcher: Option<String>,
}

/// A target's health as `DescribeTargetHealth` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetHealth {
    pub id: String,
    pub port: i64,
    pub availability_zone: Option<String>,
    pub health_check_port: String,
    pub state: &'static str,
    pub reason: Option<&'static str>,
    pub description: Option<&'static str>,
}

/// Targets per target group.
const MAX_TARGETS: usize = 1000;

/// The target group attributes Berth knows, with their defaults.
const TG_ATTRIBUTES: &[(&str, &str)] = &[
    ("deregistration_delay.timeout_seconds", "300"),
    ("load_balancing.algorithm.type", "round_robin"),
    ("slow_start.duration_seconds", "0"),
    ("stickiness.enabled", "false"),
    ("stickiness.type", "lb_cookie"),
    ("stickiness.lb_cookie.duration_seconds", "86400"),
    (
        "load_balancing.cross_zone.enabled",
        "use_load_balancer_configuration",
    ),
];

fn check_tg_attribute(key: &str, value: &str) -> Result<(), Error> {
    let ok = match key {
        "deregistration_delay.timeout_seconds" => in_range(value, 0, 3600),
        "load_balancing.algorithm.type" => {
            matches!(value, "round_robin" | "least_outstanding_requests")
        }
        "slow_start.duration_seconds" => value == "0" || in_range(value, 30, 900),
        "stickiness.enabled" => is_bool(value),
        "stickiness.type" => value == "lb_cookie",
        "stickiness.lb_cookie.duration_seconds" => in_range(value, 1, 604_800),
        "load_balancing.cross_zone.enabled" => {
            matches!(value, "true" | "false" | "use_load_balancer_configuration")
        }
        _ => {
            return Err(Error::elb(
                ElbCode::InvalidConfigurationRequest,
                format!("Target group attribute key '{key}' is not recognized"),
            ));
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::elb(
            ElbCode::InvalidConfigurationRequest,
            format!("Target group attribute value '{value}' is not valid for '{key}'"),
        ))
    }
}

/// `Matcher.HttpCode`: codes 200–499, a list (`200,202`) or a range (`200-299`).
fn valid_matcher(m: &str) -> bool {
    let code = |s: &str| s.parse::<u16>().is_ok_and(|c| (200..=499).contains(&c));
    m.split(',').all(|part| match part.split_once('-') {
        Some((a, b)) => code(a) && code(b) && a <= b,
        None => code(part),
    })
}

fn apply_health(h: &mut HealthCheck, m: &ModifyTargetGroup) -> Result<(), Error> {
    if m.enabled == Some(false) {
        return Err(Error::elb(
            ElbCode::InvalidConfigurationRequest,
            "Health checks cannot be disabled for target groups of type instance or ip",
        ));
    }
    if let Some(p) = &m.protocol {
        if p != "HTTP" {
            return Err(Error::elb(
                ElbCode::InvalidConfigurationRequest,
                "Berth health checks use HTTP",
            ));
        }
        h.protocol = p.clone();
    }
    if let Some(p) = &m.port {
        if p != "traffic-port" && !in_range(p, 1, 65535) {
            return Err(Error::InvalidParameter(format!(
                "Health check port '{p}' must be 'traffic-port' or 1-65535"
            )));
        }
        h.port = p.clone();
    }
    if let Some(p) = &m.path {
        if !p.starts_with('/') {
            return Err(Error::InvalidParameter(
                "Health check path must begin with '/'".into(),
            ));
        }
        h.path = p.clone();
    }
    for (field, value) in [
        (&mut h.interval_seconds, m.interval_seconds),
        (&mut h.timeout_seconds, m.timeout_seconds),
        (&mut h.healthy_threshold, m.healthy_threshold),
        (&mut h.unhealthy_threshold, m.unhealthy_threshold),
    ] {
        if let Some(v) = value {
            *field = v;
        }
    }
    if let Some(m) = &m.matcher {
        if !valid_matcher(m) {
            return Err(Error::elb(
                ElbCode::InvalidConfigurationRequest,
                format!("Invalid matcher '{m}': HTTP codes 200-499, as a list or a range"),
            ));
        }
        h.matcher = m.clone();
    }
    if h.interval_seconds <= h.timeout_seconds {
        return Err(Error::InvalidParameter(
            "Health check interval must be greater than the timeout.".into(),
        ));
    }
    Ok(())
}

/// Drops targets whose deregistration delay is over.
fn expire(tg: &mut TargetGroup, now: Timestamp) {
    tg.targets
        .retain(|t| t.draining_until.is_none_or(|until| until.0 > now.0));
}

/// IPv4 addresses an `ip` target may have: private (RFC 1918), shared (100.64/10), and — a
/// Berth extension, for targets on this machine — loopback.
fn valid_ip_target(id: &str) -> bool {
    match id.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => {
            let o = ip.octets();
            ip.is_private() || ip.is_loopback() || (o[0] == 100 && (64..128).contains(&o[1]))
        }
        Err(_) => false,
    }
}

impl Elb {
    /// The target group an ARN names: (name, id).
    fn tg_ref<'a>(&self, arn: &'a str) -> Result<(&'a str, &'a str), Error> {
        match self.arn_parts(arn, "targetgroup").as_deref() {
            Some([name, id]) => Ok((name, id)),
            _ => Err(not_found(arn)),
        }
    }

    pub(super) fn tg_get(
        &self,
        tx: &impl Read,
        arn: &str,
    ) -> Result<(Generation, TargetGroup), Error> {
        let (name, id) = self.tg_ref(arn)?;
        match load::<TargetGroup>(tx.get(Kind::TargetGroup, name)?)? {
            Some((g, tg)) if tg.id == id => Ok((g, tg)),
            _ => Err(not_found(arn)),
        }
    }

    /// `CreateTargetGroup` (HTTP; target types `instance` and `ip`).
    pub async fn tg_create(&self, cmd: CreateTargetGroup) -> Result<TargetGroup, Error> {
        if !valid_name(&cmd.name) {
            return Err(Error::InvalidParameter(format!(
                "Target group name '{}' is not valid: 1-32 letters, digits and hyphens, not starting or ending with a hyphen",
                cmd.name
            )));
        }
        check_tags(&cmd.tags)?;
        let target_type = cmd.target_type.clone().unwrap_or_else(|| "instance".into());
        if !matches!(target_type.as_str(), "instance" | "ip") {
            return Err(Error::elb(
                ElbCode::InvalidConfigurationRequest,
                format!("Berth supports target types instance and ip, not '{target_type}'"),
            ));
        }
        let protocol = cmd.protocol.clone().ok_or_else(|| {
            Error::InvalidParameter("A protocol must be specified for target groups".into())
        })?;
        if protocol != "HTTP" {
            return Err(Error::elb(
                ElbCode::UnsupportedProtocol,
                format!("Berth's load balancer serves HTTP target groups, not {protocol}"),
            ));
        }
        let port = cmd.port.ok_or_else(|| {
            Error::InvalidParameter("A port must be specified for target groups".into())
        })?;
        let mut health_check = HealthCheck {
            protocol: "HTTP".into(),
            port: "traffic-port".into(),
            path: "/".into(),
            interval_seconds: 30,
            timeout_seconds: 5,
            healthy_threshold: 5,
            unhealthy_threshold: 2,
            matcher: "200".into(),
        };
        apply_health(&mut health_check, &cmd.health)?;
        let tg = TargetGroup {
            name: cmd.name,
            id: random_id(),
            protocol,
            port,
            protocol_version: cmd.protocol_version.unwrap_or_else(|| "HTTP1".into()),
            target_type,
            vpc_id: cmd.vpc_id,
            health_check,
            attributes: TG_ATTRIBUTES
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags: cmd.tags,
            targets: Vec::new(),
            created_at: Timestamp::now(),
        };
        self.store
            .write(move |tx| {
                if let Some((_, existing)) =
                    load::<TargetGroup>(tx.get(Kind::TargetGroup, &tg.name)?)?
                {
                    let same = existing.protocol == tg.protocol
                        && existing.port == tg.port
                        && existing.target_type == tg.target_type
                        && existing.health_check == tg.health_check;
                    if same {
                        return Ok(existing);
                    }
                    return Err(Error::elb(
                        ElbCode::DuplicateTargetGroupName,
                        "A target group with the same name exists, but with different settings",
                    ));
                }
                save(tx, Kind::TargetGroup, &tg.name, &tg, None)?;
                Ok(tg)
            })
            .await
    }

    /// Every target group, with the load balancers using each (their ARNs).
    fn tg_all(&self) -> Result<Vec<(TargetGroup, Vec<String>)>, Error> {
        let c = self.records()?;
        Ok(c.target_groups
            .into_iter()
            .map(|(arn, tg)| {
                let users = load_balancers_using(&c.rules, &arn)
                    .into_iter()
                    .filter_map(|name| c.load_balancers.iter().find(|lb| lb.name == name))
                    .map(|lb| self.load_balancer_arn(lb))
                    .collect();
                (tg, users)
            })
            .collect())
    }

    /// `DescribeTargetGroups`: by load balancer, by ARNs, by names, or all (paged).
    pub fn tg_describe(
        &self,
        load_balancer: Option<&str>,
        arns: &[String],
        names: &[String],
        page: &PageRequest,
    ) -> Result<Page<(TargetGroup, Vec<String>)>, Error> {
        let all = self.tg_all()?;
        if let Some(lb) = load_balancer {
            self.lb_ref(lb)?;
            if self.lb_describe(&[lb.to_string()], &[], page).is_err() {
                return Err(Error::elb(
                    ElbCode::LoadBalancerNotFound,
                    format!("Load balancer '{lb}' not found"),
                ));
            }
            let items = all
                .into_iter()
                .filter(|(_, users)| users.iter().any(|u| u == lb))
                .collect();
            return Ok(Page {
                items,
                next_token: None,
            });
        }
        if !arns.is_empty() || !names.is_empty() {
            let mut out = Vec::new();
            for arn in arns {
                let (name, id) = self.tg_ref(arn)?;
                let found = all.iter().find(|(tg, _)| tg.name == name && tg.id == id);
                out.push(found.cloned().ok_or_else(|| not_found(arn))?);
            }
            for name in names {
                let found = all.iter().find(|(tg, _)| &tg.name == name);
                out.push(found.cloned().ok_or_else(|| not_found(name))?);
            }
            return Ok(Page {
                items: out,
                next_token: None,
            });
        }
        self.page_of("DescribeTargetGroups", all, page, |(tg, _)| tg.name.clone())
    }

    /// `ModifyTargetGroup`: the health check settings.
    pub async fn tg_modify(&self, arn: &str, m: ModifyTargetGroup) -> Result<TargetGroup, Error> {
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let (g, mut tg) = this.tg_get(tx, &arn)?;
                apply_health(&mut tg.health_check, &m)?;
                save(tx, Kind::TargetGroup, &tg.name, &tg, Some(g))?;
                Ok(tg)
            })
            .await
    }

    /// `DeleteTargetGroup`: refused while a listener or rule forwards to it; deleting one that
    /// does not exist succeeds (as AWS).
    pub async fn tg_delete(&self, arn: &str) -> Result<(), Error> {
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let (g, tg) = match this.tg_get(tx, &arn) {
                    Ok(found) => found,
                    Err(_) if this.tg_ref(&arn).is_ok() => return Ok(()),
                    Err(e) => return Err(e),
                };
                let rules: Vec<berth_types::elb::Rule> = all(tx, Kind::Rule, "")?
                    .into_iter()
                    .map(|(_, r)| r)
                    .collect();
                if !load_balancers_using(&rules, &arn).is_empty() {
                    return Err(Error::elb(
                        ElbCode::ResourceInUse,
                        format!("Target group '{arn}' is currently in use by a listener or a rule"),
                    ));
                }
                tx.delete(Kind::TargetGroup, &tg.name, g)
            })
            .await
    }

    /// `DescribeTargetGroupAttributes`.
    pub fn tg_attributes(&self, arn: &str) -> Result<BTreeMap<String, String>, Error> {
        let (name, id) = self.tg_ref(arn)?;
        match self
            .store
            .read(|r| load::<TargetGroup>(r.get(Kind::TargetGroup, name)?))?
        {
            Some((_, tg)) if tg.id == id => Ok(tg.attributes),
            _ => Err(not_found(arn)),
        }
    }

    /// `ModifyTargetGroupAttributes`: all or nothing; returns every attribute.
    pub async fn tg_modify_attributes(
        &self,
        arn: &str,
        attributes: Vec<(String, String)>,
    ) -> Result<BTreeMap<String, String>, Error> {
        for (k, v) in &attributes {
            check_tg_attribute(k, v)?;
        }
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let (g, mut tg) = this.tg_get(tx, &arn)?;
                tg.attributes.extend(attributes);
                let slow = tg.attributes["slow_start.duration_seconds"] != "0";
                let lor =
                    tg.attributes["load_balancing.algorithm.type"] == "least_outstanding_requests";
                if slow && lor {
                    return Err(Error::elb(
                        ElbCode::InvalidConfigurationRequest,
                        "Slow start and least outstanding requests cannot be used together",
                    ));
                }
                save(tx, Kind::TargetGroup, &tg.name, &tg, Some(g))?;
                Ok(tg.attributes)
            })
            .await
    }

    /// `RegisterTargets`: idempotent for a registered (id, port); a draining one is
    /// registered again.
    pub async fn targets_register(
        &self,
        arn: &str,
        targets: Vec<(String, Option<i64>, Option<String>)>,
    ) -> Result<(), Error> {
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let (g, mut tg) = this.tg_get(tx, &arn)?;
                let now = Timestamp::now();
                expire(&mut tg, now);
                for (id, port, zone) in targets {
                    let port = port.unwrap_or(tg.port);
                    if !(1..=65535).contains(&port) {
                        return Err(Error::elb(
                            ElbCode::InvalidTarget,
                            format!("The port {port} of target '{id}' is not valid (1-65535)"),
                        ));
                    }
                    let valid = match tg.target_type.as_str() {
                        "ip" => valid_ip_target(&id),
                        _ => !id.is_empty() && !id.contains(char::is_whitespace),
                    };
                    if !valid {
                        return Err(Error::elb(
                            ElbCode::InvalidTarget,
                            format!(
                                "The following targets are not valid for a target group of type {}: '{id}'",
                                tg.target_type
                            ),
                        ));
                    }
                    match tg.targets.iter_mut().find(|t| t.id == id && t.port == port) {
                        Some(t) => t.draining_until = None,
                        None => tg.targets.push(Target {
                            id,
                            port,
                            availability_zone: zone,
                            registered_at: now,
                            draining_until: None,
                            health: None,
                        }),
                    }
                }
                if tg.targets.len() > MAX_TARGETS {
                    return Err(Error::elb(
                        ElbCode::TooManyTargets,
                        format!("A target group can have at most {MAX_TARGETS} targets"),
                    ));
                }
                save(tx, Kind::TargetGroup, &tg.name, &tg, Some(g))
            })
            .await
    }

    /// `DeregisterTargets`: each becomes `draining` for the deregistration delay.
    pub async fn targets_deregister(
        &self,
        arn: &str,
        targets: Vec<(String, Option<i64>)>,
    ) -> Result<(), Error> {
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let (g, mut tg) = this.tg_get(tx, &arn)?;
                let now = Timestamp::now();
                expire(&mut tg, now);
                let delay: i64 = tg.attributes["deregistration_delay.timeout_seconds"]
                    .parse()
                    .unwrap_or(300);
                for (id, port) in targets {
                    let port = port.unwrap_or(tg.port);
                    let t = tg
                        .targets
                        .iter_mut()
                        .find(|t| t.id == id && t.port == port && t.draining_until.is_none())
                        .ok_or_else(|| {
                            Error::elb(
                                ElbCode::InvalidTarget,
                                format!("The target '{id}' on port {port} is not registered"),
                            )
                        })?;
                    t.draining_until = Some(Timestamp(now.0 + delay * 1000));
                }
                save(tx, Kind::TargetGroup, &tg.name, &tg, Some(g))
            })
            .await
    }

    /// `DescribeTargetHealth`: every registered (and draining) target, or exactly those named.
    pub fn targets_health(
        &self,
        arn: &str,
        named: &[(String, Option<i64>)],
    ) -> Result<Vec<TargetHealth>, Error> {
        let (name, id) = self.tg_ref(arn)?;
        let (mut tg, users) = self
            .tg_all()?
            .into_iter()
            .find(|(tg, _)| tg.name == name && tg.id == id)
            .ok_or_else(|| not_found(arn))?;
        let now = Timestamp::now();
        expire(&mut tg, now);
        let in_use = !users.is_empty();
        let health_port = |port: i64| match tg.health_check.port.as_str() {
            "traffic-port" => port.to_string(),
            p => p.to_string(),
        };
        let report = |t: &Target| {
            let (state, reason, description) = if t.draining_until.is_some() {
                (
                    "draining",
                    Some("Target.DeregistrationInProgress"),
                    Some("Target deregistration is in progress"),
                )
            } else if !in_use {
                (
                    "unused",
                    Some("Target.NotInUse"),
                    Some(
                        "Target group is not configured to receive traffic from the load balancer",
                    ),
                )
            } else {
                match t.health.as_ref().map(|(s, r)| (s.as_str(), r.as_deref())) {
                    Some(("healthy", _)) => ("healthy", None, None),
                    Some(("unhealthy", reason)) => {
                        let (reason, description) = match reason {
                            Some("Target.Timeout") => ("Target.Timeout", "Request timed out"),
                            Some("Target.ResponseCodeMismatch") => (
                                "Target.ResponseCodeMismatch",
                                "Health checks failed with a status code outside the matcher",
                            ),
                            _ => ("Target.FailedHealthChecks", "Health checks failed"),
                        };
                        ("unhealthy", Some(reason), Some(description))
                    }
                    _ => (
                        "initial",
                        Some("Elb.InitialHealthChecking"),
                        Some("Initial health checks in progress"),
                    ),
                }
            };
            TargetHealth {
                id: t.id.clone(),
                port: t.port,
                availability_zone: t.availability_zone.clone(),
                health_check_port: health_port(t.port),
                state,
                reason,
                description,
            }
        };
        if named.is_empty() {
            return Ok(tg.targets.iter().map(report).collect());
        }
        Ok(named
            .iter()
            .map(|(id, port)| {
                let port = port.unwrap_or(tg.port);
                match tg.targets.iter().find(|t| &t.id == id && t.port == port) {
                    Some(t) => report(t),
                    None => TargetHealth {
                        id: id.clone(),
                        port,
                        availability_zone: None,
                        health_check_port: health_port(port),
                        state: "unused",
                        reason: Some("Target.NotRegistered"),
                        description: Some("Target is not registered to the target group"),
                    },
                }
            })
            .collect())
    }
}

impl Elb {
    /// The data plane's health checks moved a target to `state` (`healthy` / `unhealthy` /
    /// `initial`) for `reason`.
    pub async fn targets_report_health(
        &self,
        arn: &str,
        id: &str,
        port: i64,
        state: &str,
        reason: Option<&str>,
    ) -> Result<(), Error> {
        let this = self.clone();
        let (arn, id) = (arn.to_string(), id.to_string());
        let health = (state.to_string(), reason.map(str::to_string));
        self.store
            .write(move |tx| {
                let (g, mut tg) = this.tg_get(tx, &arn)?;
                let Some(t) = tg.targets.iter_mut().find(|t| t.id == id && t.port == port) else {
                    return Ok(());
                };
                if t.health.as_ref() == Some(&health) {
                    return Ok(());
                }
                t.health = Some(health);
                save(tx, Kind::TargetGroup, &tg.name, &tg, Some(g))
            })
            .await
    }

    /// Every ELB record of the region (one consistent read).
    pub(crate) fn records(&self) -> Result<Records, Error> {
        let this = self.clone();
        self.store.read(|r| {
            fn every<T: serde::de::DeserializeOwned>(
                r: &impl Read,
                kind: Kind,
            ) -> Result<Vec<T>, Error> {
                Ok(all(r, kind, "")?.into_iter().map(|(_, x)| x).collect())
            }
            let groups: Vec<TargetGroup> = every(r, Kind::TargetGroup)?;
            Ok(Records {
                load_balancers: every(r, Kind::LoadBalancer)?,
                listeners: every(r, Kind::Listener)?,
                rules: every(r, Kind::Rule)?,
                target_groups: groups
                    .into_iter()
                    .map(|tg| (this.target_group_arn(&tg), tg))
                    .collect(),
            })
        })
    }
}

/// Every ELB record of a region.
#[derive(Debug, Clone, Default)]
pub(crate) struct Records {
    pub load_balancers: Vec<LoadBalancer>,
    pub listeners: Vec<Listener>,
    pub rules: Vec<Rule>,
    /// With their ARNs.
    pub target_groups: Vec<(String, TargetGroup)>,
}

fn not_found(what: &str) -> Error {
    Error::elb(
        ElbCode::TargetGroupNotFound,
        format!("Target groups '[{what}]' not found"),
    )
}
