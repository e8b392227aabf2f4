//! Elastic Load Balancing (application load balancers): load balancers, target groups and
//! targets, listeners and rules, attributes and tags (spec/elb-…md Part A). This layer records
//! intent; the data plane (listeners' ports, health checks) reads it.

mod listeners;
mod node;
mod target_groups;

pub use listeners::{CreateListener, CreateRule};
pub use target_groups::{CreateTargetGroup, ModifyTargetGroup, TargetHealth};

use crate::paging::{Page, PageRequest, Pager};
use crate::records::{all, load};
use berth_store::{Kind, Read, Store, Tx};
use berth_types::elb::{Listener, LoadBalancer, Rule, TargetGroup};
use berth_types::{ElbCode, Error, Generation, Scope, Tag, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;

/// Tags per resource.
pub const MAX_TAGS: usize = 50;

/// The Elastic Load Balancing control plane handle. Cheap to clone.
#[derive(Clone)]
pub struct Elb {
    scope: Scope,
    store: Store,
    pager: Pager,
    /// What load balancers' `DNSName` is: a name that resolves on this machine (the configured
    /// public host, or the listen address).
    dns_host: String,
    /// How often load balancer nodes report what they served (a minute of CloudWatch's
    /// clock, in real milliseconds).
    metrics_interval_ms: u64,
}

/// `CreateLoadBalancer` in domain terms.
#[derive(Debug, Clone, Default)]
pub struct CreateLoadBalancer {
    pub name: String,
    pub scheme: Option<String>,
    pub kind: Option<String>,
    pub ip_address_type: Option<String>,
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub tags: Vec<Tag>,
}

fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Names of load balancers and target groups: 1–32 of `[A-Za-z0-9-]`, no leading or trailing
/// hyphen.
fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Stores an ELB record (no status column).
fn save<T: Serialize>(
    tx: &mut Tx<'_>,
    kind: Kind,
    key: &str,
    value: &T,
    expected: Option<Generation>,
) -> Result<(), Error> {
    crate::records::save(tx, kind, key, None, value, expected)
}

/// An ELB resource that carries tags, as its record holds it.
enum Tagged {
    LoadBalancer(LoadBalancer),
    TargetGroup(TargetGroup),
    Listener(Listener),
    Rule(Rule),
}

impl Tagged {
    /// The resource of `kind` in `rec`, with its generation.
    fn load(
        kind: Kind,
        rec: Option<berth_store::Record>,
    ) -> Result<Option<(Generation, Tagged)>, Error> {
        fn typed<T: serde::de::DeserializeOwned>(
            rec: Option<berth_store::Record>,
            wrap: fn(T) -> Tagged,
        ) -> Result<Option<(Generation, Tagged)>, Error> {
            Ok(load::<T>(rec)?.map(|(g, v)| (g, wrap(v))))
        }
        match kind {
            Kind::LoadBalancer => typed(rec, Tagged::LoadBalancer),
            Kind::TargetGroup => typed(rec, Tagged::TargetGroup),
            Kind::Listener => typed(rec, Tagged::Listener),
            Kind::Rule => typed(rec, Tagged::Rule),
            other => Err(Error::internal(format!("{other:?} records carry no tags"))),
        }
    }

    fn tags_mut(&mut self) -> &mut Vec<Tag> {
        match self {
            Tagged::LoadBalancer(x) => &mut x.tags,
            Tagged::TargetGroup(x) => &mut x.tags,
            Tagged::Listener(x) => &mut x.tags,
            Tagged::Rule(x) => &mut x.tags,
        }
    }

    fn save(&self, tx: &mut Tx<'_>, key: &str, expected: Generation) -> Result<(), Error> {
        match self {
            Tagged::LoadBalancer(x) => save(tx, Kind::LoadBalancer, key, x, Some(expected)),
            Tagged::TargetGroup(x) => save(tx, Kind::TargetGroup, key, x, Some(expected)),
            Tagged::Listener(x) => save(tx, Kind::Listener, key, x, Some(expected)),
            Tagged::Rule(x) => save(tx, Kind::Rule, key, x, Some(expected)),
        }
    }
}

/// Tag rules shared by every ELB resource.
fn check_tags(tags: &[Tag]) -> Result<(), Error> {
    let mut keys: Vec<&str> = tags.iter().map(|t| t.key.as_str()).collect();
    keys.sort_unstable();
    if keys.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::elb(
            ElbCode::DuplicateTagKeys,
            "A tag key was specified more than once.",
        ));
    }
    if tags.len() > MAX_TAGS {
        return Err(Error::elb(
            ElbCode::TooManyTags,
            format!("A resource can have at most {MAX_TAGS} tags."),
        ));
    }
    Ok(())
}

/// The load balancer attributes Berth knows, with their defaults.
const LB_ATTRIBUTES: &[(&str, &str)] = &[
    ("idle_timeout.timeout_seconds", "60"),
    ("deletion_protection.enabled", "false"),
    ("routing.http2.enabled", "true"),
    ("load_balancing.cross_zone.enabled", "true"),
];

fn is_bool(v: &str) -> bool {
    v == "true" || v == "false"
}

fn in_range(v: &str, lo: i64, hi: i64) -> bool {
    v.parse::<i64>().is_ok_and(|n| (lo..=hi).contains(&n))
}

fn check_lb_attribute(key: &str, value: &str) -> Result<(), Error> {
    let ok = match key {
        "idle_timeout.timeout_seconds" => in_range(value, 1, 4000),
        "deletion_protection.enabled" | "routing.http2.enabled" => is_bool(value),
        "load_balancing.cross_zone.enabled" => value == "true",
        _ => {
            return Err(Error::elb(
                ElbCode::InvalidConfigurationRequest,
                format!("Load balancer attribute key '{key}' is not recognized"),
            ));
        }
    };
    if ok {
        Ok(())
    } else {
        Err(Error::elb(
            ElbCode::InvalidConfigurationRequest,
            format!("Load balancer attribute value '{value}' is not valid for '{key}'"),
        ))
    }
}

impl Elb {
    /// The same handle, writing only while `fence` holds (a controller's term; `None`:
    /// unfenced).
    pub fn fenced(&self, fence: Option<&berth_store::Fence>) -> Self {
        let mut h = self.clone();
        if let Some(f) = fence {
            h.store = h.store.fenced(f.clone());
        }
        h
    }
    pub fn new(scope: Scope, store: Store, pager: Pager, dns_host: String) -> Self {
        Elb {
            scope,
            store,
            pager,
            dns_host,
            metrics_interval_ms: 60_000,
        }
    }

    /// Nodes report their counts every `interval` (real time).
    pub fn reporting_every(mut self, interval: std::time::Duration) -> Self {
        self.metrics_interval_ms = (interval.as_millis() as u64).max(200);
        self
    }

    fn arn(&self, resource: &str) -> String {
        self.scope.arn("elasticloadbalancing", resource)
    }

    /// The store this region's ELB records live in (the data plane watches it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn load_balancer_arn(&self, lb: &LoadBalancer) -> String {
        self.lb_arn(&lb.name, &lb.id)
    }

    /// The ARN of load balancer `name` with `id`.
    pub fn lb_arn(&self, name: &str, id: &str) -> String {
        self.arn(&format!("loadbalancer/app/{name}/{id}"))
    }

    pub fn target_group_arn(&self, tg: &TargetGroup) -> String {
        self.arn(&format!("targetgroup/{}/{}", tg.name, tg.id))
    }

    pub fn listener_arn(&self, l: &Listener) -> String {
        self.arn(&format!(
            "listener/app/{}/{}/{}",
            l.load_balancer, l.load_balancer_id, l.id
        ))
    }

    pub fn rule_arn(&self, r: &Rule) -> String {
        self.arn(&format!(
            "listener-rule/app/{}/{}/{}/{}",
            r.load_balancer, r.load_balancer_id, r.listener_id, r.id
        ))
    }

    /// The parts after `<kind>/` of an ARN of ours, if it names `kind`.
    fn arn_parts<'a>(&self, arn: &'a str, kind: &str) -> Option<Vec<&'a str>> {
        self.scope
            .arn_resource("elasticloadbalancing", kind, arn)
            .map(|rest| rest.split('/').collect())
    }

    /// The load balancer an ARN names: (name, id).
    fn lb_ref<'a>(&self, arn: &'a str) -> Result<(&'a str, &'a str), Error> {
        match self.arn_parts(arn, "loadbalancer").as_deref() {
            Some(["app", name, id]) => Ok((name, id)),
            _ => Err(Error::elb(
                ElbCode::LoadBalancerNotFound,
                format!("Load balancer '{arn}' not found"),
            )),
        }
    }

    /// The load balancer a listener or rule belongs to (by name and id).
    fn lb_of(
        &self,
        tx: &impl Read,
        name: &str,
        id: &str,
    ) -> Result<(Generation, LoadBalancer), Error> {
        self.lb_get(tx, &self.lb_arn(name, id))
    }

    /// Reads a load balancer by ARN inside a transaction.
    fn lb_get(&self, tx: &impl Read, arn: &str) -> Result<(Generation, LoadBalancer), Error> {
        let (name, id) = self.lb_ref(arn)?;
        match load::<LoadBalancer>(tx.get(Kind::LoadBalancer, name)?)? {
            Some((g, lb)) if lb.id == id => Ok((g, lb)),
            _ => Err(Error::elb(
                ElbCode::LoadBalancerNotFound,
                format!("Load balancer '{arn}' not found"),
            )),
        }
    }

    /// `CreateLoadBalancer` (application load balancers; the state is `active` at once).
    /// Idempotent for the same name and settings.
    pub async fn lb_create(&self, cmd: CreateLoadBalancer) -> Result<LoadBalancer, Error> {
        if !valid_name(&cmd.name) || cmd.name.starts_with("internal-") {
            return Err(Error::InvalidParameter(format!(
                "Load balancer name '{}' is not valid: 1-32 letters, digits and hyphens, not starting or ending with a hyphen nor starting with 'internal-'",
                cmd.name
            )));
        }
        match cmd.kind.as_deref() {
            None | Some("application") => {}
            Some(other) => {
                return Err(Error::elb(
                    ElbCode::InvalidConfigurationRequest,
                    format!("Berth provides application load balancers only, not '{other}'"),
                ));
            }
        }
        check_tags(&cmd.tags)?;
        let scheme = cmd.scheme.unwrap_or_else(|| "internet-facing".into());
        let lb = LoadBalancer {
            dns_name: if scheme == "internal" {
                format!("internal-{}", self.dns_host)
            } else {
                self.dns_host.clone()
            },
            name: cmd.name,
            id: random_id(),
            scheme,
            ip_address_type: cmd.ip_address_type.unwrap_or_else(|| "ipv4".into()),
            subnets: cmd.subnets,
            security_groups: cmd.security_groups,
            attributes: LB_ATTRIBUTES
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags: cmd.tags,
            created_at: Timestamp::now(),
        };
        self.store
            .write(move |tx| {
                if let Some((_, existing)) =
                    load::<LoadBalancer>(tx.get(Kind::LoadBalancer, &lb.name)?)?
                {
                    if existing.scheme == lb.scheme {
                        return Ok(existing);
                    }
                    return Err(Error::elb(
                        ElbCode::DuplicateLoadBalancerName,
                        "A load balancer with the same name exists, but with different settings",
                    ));
                }
                save(tx, Kind::LoadBalancer, &lb.name, &lb, None)?;
                Ok(lb)
            })
            .await
    }

    /// `DescribeLoadBalancers`: by ARNs, by names, or all (paged with `Marker`).
    pub fn lb_describe(
        &self,
        arns: &[String],
        names: &[String],
        page: &PageRequest,
    ) -> Result<Page<LoadBalancer>, Error> {
        let all: Vec<LoadBalancer> = self
            .store
            .read(|r| all::<LoadBalancer>(r, Kind::LoadBalancer, ""))?
            .into_iter()
            .map(|(_, lb)| lb)
            .collect();
        if !arns.is_empty() || !names.is_empty() {
            let mut out = Vec::new();
            for arn in arns {
                let (name, id) = self.lb_ref(arn)?;
                match all.iter().find(|lb| lb.name == name && lb.id == id) {
                    Some(lb) => out.push(lb.clone()),
                    None => {
                        return Err(Error::elb(
                            ElbCode::LoadBalancerNotFound,
                            format!("Load balancers '[{arn}]' not found"),
                        ));
                    }
                }
            }
            for name in names {
                match all.iter().find(|lb| &lb.name == name) {
                    Some(lb) => out.push(lb.clone()),
                    None => {
                        return Err(Error::elb(
                            ElbCode::LoadBalancerNotFound,
                            format!("Load balancers '[{name}]' not found"),
                        ));
                    }
                }
            }
            return Ok(Page {
                items: out,
                next_token: None,
            });
        }
        self.page_of("DescribeLoadBalancers", all, page, |lb| lb.name.clone())
    }

    /// One page of `items` (sorted by `key`) after the marker.
    fn page_of<T>(
        &self,
        scope: &str,
        items: Vec<T>,
        page: &PageRequest,
        key: impl Fn(&T) -> String,
    ) -> Result<Page<T>, Error> {
        let limit = match page.max_results {
            None => 400,
            Some(n) if (1..=400).contains(&n) => n as usize,
            Some(_) => {
                return Err(Error::InvalidParameter(
                    "PageSize must be between 1 and 400".into(),
                ));
            }
        };
        let after = match &page.next_token {
            Some(t) => Some(self.pager.decode(scope, t)?),
            None => None,
        };
        let mut rest: Vec<T> = items
            .into_iter()
            .filter(|x| after.as_ref().is_none_or(|a| key(x) > *a))
            .collect();
        let more = rest.len() > limit;
        rest.truncate(limit);
        let next_token = more
            .then(|| rest.last().map(|x| self.pager.encode(scope, &key(x))))
            .flatten();
        Ok(Page {
            items: rest,
            next_token,
        })
    }

    /// `DeleteLoadBalancer`: its listeners and rules go too; target groups stay. Deleting one
    /// that does not exist succeeds (as AWS).
    pub async fn lb_delete(&self, arn: &str) -> Result<(), Error> {
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let (g, lb) = match this.lb_get(tx, &arn) {
                    Ok(found) => found,
                    Err(Error::Elb {
                        code: ElbCode::LoadBalancerNotFound,
                        ..
                    }) if this.lb_ref(&arn).is_ok() => return Ok(()),
                    Err(e) => return Err(e),
                };
                if lb
                    .attributes
                    .get("deletion_protection.enabled")
                    .map(String::as_str)
                    == Some("true")
                {
                    return Err(Error::elb(
                        ElbCode::OperationNotPermitted,
                        "Load balancer cannot be deleted because deletion protection is enabled",
                    ));
                }
                let prefix = format!("{}\n", lb.name);
                for (key, _) in all::<Rule>(tx, Kind::Rule, &prefix)? {
                    let rec = tx.get(Kind::Rule, &key)?.expect("listed");
                    tx.delete(Kind::Rule, &key, rec.generation)?;
                }
                for (key, _) in all::<Listener>(tx, Kind::Listener, &prefix)? {
                    let rec = tx.get(Kind::Listener, &key)?.expect("listed");
                    tx.delete(Kind::Listener, &key, rec.generation)?;
                }
                tx.delete(Kind::LoadBalancer, &lb.name, g)
            })
            .await
    }

    /// `DescribeLoadBalancerAttributes`.
    pub fn lb_attributes(&self, arn: &str) -> Result<BTreeMap<String, String>, Error> {
        let (name, id) = self.lb_ref(arn)?;
        match self
            .store
            .read(|r| load::<LoadBalancer>(r.get(Kind::LoadBalancer, name)?))?
        {
            Some((_, lb)) if lb.id == id => Ok(lb.attributes),
            _ => Err(Error::elb(
                ElbCode::LoadBalancerNotFound,
                format!("Load balancer '{arn}' not found"),
            )),
        }
    }

    /// `ModifyLoadBalancerAttributes`: all or nothing; returns every attribute.
    pub async fn lb_modify_attributes(
        &self,
        arn: &str,
        attributes: Vec<(String, String)>,
    ) -> Result<BTreeMap<String, String>, Error> {
        for (k, v) in &attributes {
            check_lb_attribute(k, v)?;
        }
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let (g, mut lb) = this.lb_get(tx, &arn)?;
                lb.attributes.extend(attributes);
                save(tx, Kind::LoadBalancer, &lb.name, &lb, Some(g))?;
                Ok(lb.attributes)
            })
            .await
    }

    /// The record a tagging ARN names: kind, key, and the error if it is missing.
    fn locate(&self, arn: &str) -> Result<(Kind, String, Error), Error> {
        let missing = |code, what: &str| Error::elb(code, format!("{what} '{arn}' not found"));
        if let Some(parts) = self.arn_parts(arn, "loadbalancer") {
            if let ["app", name, _] = parts.as_slice() {
                let e = missing(ElbCode::LoadBalancerNotFound, "Load balancer");
                return Ok((Kind::LoadBalancer, name.to_string(), e));
            }
        } else if let Some(parts) = self.arn_parts(arn, "targetgroup") {
            if let [name, _] = parts.as_slice() {
                let e = missing(ElbCode::TargetGroupNotFound, "Target group");
                return Ok((Kind::TargetGroup, name.to_string(), e));
            }
        } else if let Some(parts) = self.arn_parts(arn, "listener") {
            if let ["app", lb, _, id] = parts.as_slice() {
                let e = missing(ElbCode::ListenerNotFound, "Listener");
                return Ok((Kind::Listener, format!("{lb}\n{id}"), e));
            }
        } else if let Some(parts) = self.arn_parts(arn, "listener-rule")
            && let ["app", lb, _, listener, id] = parts.as_slice()
        {
            let e = missing(ElbCode::RuleNotFound, "Rule");
            return Ok((Kind::Rule, format!("{lb}\n{listener}\n{id}"), e));
        }
        Err(Error::InvalidParameter(format!(
            "'{arn}' is not a valid resource ARN"
        )))
    }

    /// Changes the tags of the resource `arn` names.
    fn retag(
        &self,
        tx: &mut Tx<'_>,
        arn: &str,
        change: impl Fn(&mut Vec<Tag>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let (kind, key, missing) = self.locate(arn)?;
        let (g, mut resource) = Tagged::load(kind, tx.get(kind, &key)?)?.ok_or(missing)?;
        change(resource.tags_mut())?;
        resource.save(tx, &key, g)
    }

    /// `AddTags`: to every resource named, all or nothing.
    pub async fn tags_add(&self, arns: Vec<String>, tags: Vec<Tag>) -> Result<(), Error> {
        check_tags(&tags)?;
        let this = self.clone();
        self.store
            .write(move |tx| {
                for arn in &arns {
                    this.retag(tx, arn, |current| {
                        berth_types::tags_merge(current, tags.clone());
                        if current.len() > MAX_TAGS {
                            return Err(Error::elb(
                                ElbCode::TooManyTags,
                                format!("A resource can have at most {MAX_TAGS} tags."),
                            ));
                        }
                        Ok(())
                    })?;
                }
                Ok(())
            })
            .await
    }

    /// `RemoveTags`.
    pub async fn tags_remove(&self, arns: Vec<String>, keys: Vec<String>) -> Result<(), Error> {
        let this = self.clone();
        self.store
            .write(move |tx| {
                for arn in &arns {
                    this.retag(tx, arn, |current| {
                        current.retain(|t| !keys.contains(&t.key));
                        Ok(())
                    })?;
                }
                Ok(())
            })
            .await
    }

    /// `DescribeTags`: each ARN with its tags.
    pub fn tags_describe(&self, arns: Vec<String>) -> Result<Vec<(String, Vec<Tag>)>, Error> {
        let mut out = Vec::new();
        for arn in arns {
            let (kind, key, missing) = self.locate(&arn)?;
            let (_, mut resource) = self
                .store
                .read(|r| Tagged::load(kind, r.get(kind, &key)?))?
                .ok_or(missing)?;
            let tags = std::mem::take(resource.tags_mut());
            out.push((arn, tags));
        }
        Ok(out)
    }
}
