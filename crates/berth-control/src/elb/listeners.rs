//! Listeners, rules and their actions and conditions (spec/elb-…md A.4).

use super::{Elb, all, check_tags, load, random_id, save};
use berth_store::{Kind, Read};
use berth_types::elb::{Listener, LoadBalancer, Rule};
use berth_types::shapes::elb::{Action, ActionTypeEnum, RuleCondition};
use berth_types::{ElbCode, Error, Generation, Tag};

/// Listeners per load balancer, rules per load balancer (not counting default rules), target
/// groups per forward action.
const MAX_LISTENERS: usize = 50;
const MAX_RULES: usize = 100;
const MAX_FORWARD_GROUPS: usize = 5;

/// `CreateListener` in domain terms.
#[derive(Debug, Clone, Default)]
pub struct CreateListener {
    pub load_balancer: String,
    pub protocol: Option<String>,
    pub port: Option<i64>,
    pub default_actions: Vec<Action>,
    pub tags: Vec<Tag>,
}

/// `CreateRule` in domain terms.
#[derive(Debug, Clone, Default)]
pub struct CreateRule {
    pub listener: String,
    pub priority: i64,
    pub conditions: Vec<RuleCondition>,
    pub actions: Vec<Action>,
    pub tags: Vec<Tag>,
}

/// The target group ARNs an action forwards to.
fn forwards_to(action: &Action) -> Vec<&str> {
    let mut out: Vec<&str> = action.target_group_arn.as_deref().into_iter().collect();
    out.extend(
        action
            .forward_config
            .iter()
            .flat_map(|f| f.target_groups.iter().flatten())
            .filter_map(|g| g.target_group_arn.as_deref()),
    );
    out
}

/// The load balancers (by name) whose rules forward to `tg_arn`.
pub(super) fn load_balancers_using(rules: &[Rule], tg_arn: &str) -> Vec<String> {
    let mut out: Vec<String> = rules
        .iter()
        .filter(|r| r.actions.iter().any(|a| forwards_to(a).contains(&tg_arn)))
        .map(|r| r.load_balancer.clone())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn invalid_action(message: impl Into<String>) -> Error {
    Error::elb(ElbCode::InvalidLoadBalancerAction, message)
}

/// Conditions: known fields, values present, at most 5 values in all.
fn check_conditions(conditions: &[RuleCondition]) -> Result<(), Error> {
    let mut values = 0;
    for c in conditions {
        let field = c.field.as_deref().unwrap_or("");
        let config = match field {
            "host-header" => c
                .host_header_config
                .as_ref()
                .and_then(|h| h.values.as_ref()),
            "path-pattern" => c
                .path_pattern_config
                .as_ref()
                .and_then(|p| p.values.as_ref()),
            "http-header" => c
                .http_header_config
                .as_ref()
                .and_then(|h| h.values.as_ref()),
            "http-request-method" => c
                .http_request_method_config
                .as_ref()
                .and_then(|m| m.values.as_ref()),
            "source-ip" => c.source_ip_config.as_ref().and_then(|s| s.values.as_ref()),
            "query-string" => None,
            other => {
                return Err(Error::InvalidParameter(format!(
                    "Condition field '{other}' is not valid"
                )));
            }
        };
        let n = match field {
            "query-string" => c
                .query_string_config
                .as_ref()
                .and_then(|q| q.values.as_ref())
                .map_or(0, Vec::len),
            _ => config.or(c.values.as_ref()).map_or(0, Vec::len),
        };
        if n == 0 {
            return Err(Error::InvalidParameter(format!(
                "A '{field}' condition needs at least one value"
            )));
        }
        if field == "http-header"
            && c.http_header_config
                .as_ref()
                .and_then(|h| h.http_header_name.as_deref())
                .is_none_or(str::is_empty)
        {
            return Err(Error::InvalidParameter(
                "An 'http-header' condition needs HttpHeaderName".into(),
            ));
        }
        values += n;
    }
    if values > 5 {
        return Err(Error::elb(
            ElbCode::InvalidConfigurationRequest,
            "A rule can have at most 5 condition values",
        ));
    }
    Ok(())
}

impl Elb {
    /// The listener an ARN names: (load balancer name, load balancer id, listener id).
    fn listener_ref<'a>(&self, arn: &'a str) -> Result<(&'a str, &'a str, &'a str), Error> {
        match self.arn_parts(arn, "listener").as_deref() {
            Some(["app", lb, lb_id, id]) => Ok((lb, lb_id, id)),
            _ => Err(listener_not_found(arn)),
        }
    }

    fn listener_get(&self, tx: &impl Read, arn: &str) -> Result<(Generation, Listener), Error> {
        let (lb, lb_id, id) = self.listener_ref(arn)?;
        match load::<Listener>(tx.get(Kind::Listener, &format!("{lb}\n{id}"))?)? {
            Some((g, l)) if l.load_balancer_id == lb_id => Ok((g, l)),
            _ => Err(listener_not_found(arn)),
        }
    }

    /// The rule an ARN names: its key.
    fn rule_key(&self, arn: &str) -> Result<String, Error> {
        match self.arn_parts(arn, "listener-rule").as_deref() {
            Some(["app", lb, _, listener, id]) => Ok(format!("{lb}\n{listener}\n{id}")),
            _ => Err(rule_not_found(arn)),
        }
    }

    fn rule_get(&self, tx: &impl Read, arn: &str) -> Result<(Generation, Rule), Error> {
        let key = self.rule_key(arn)?;
        load::<Rule>(tx.get(Kind::Rule, &key)?)?.ok_or_else(|| rule_not_found(arn))
    }

    /// Actions: exactly one terminal action, last by `Order`; forward targets exist and are
    /// used by no other load balancer.
    fn check_actions(
        &self,
        tx: &impl Read,
        lb: &LoadBalancer,
        actions: &[Action],
    ) -> Result<(), Error> {
        if actions.is_empty() {
            return Err(invalid_action("At least one action is required"));
        }
        if actions.len() > 1 {
            return Err(Error::elb(
                ElbCode::TooManyActions,
                "Berth supports one action per rule (forward, redirect or fixed-response)",
            ));
        }
        let rules: Vec<Rule> = all::<Rule>(tx, Kind::Rule, "")?
            .into_iter()
            .map(|(_, r)| r)
            .collect();
        for a in actions {
            match a.r#type {
                ActionTypeEnum::Forward => {
                    let groups = forwards_to(a);
                    if groups.is_empty() {
                        return Err(invalid_action(
                            "A forward action needs TargetGroupArn or ForwardConfig.TargetGroups",
                        ));
                    }
                    if groups.len() > MAX_FORWARD_GROUPS {
                        return Err(invalid_action(format!(
                            "A forward action can name at most {MAX_FORWARD_GROUPS} target groups"
                        )));
                    }
                    for tg in groups {
                        self.tg_get(tx, tg)?;
                        if load_balancers_using(&rules, tg)
                            .iter()
                            .any(|other| *other != lb.name)
                        {
                            return Err(Error::elb(
                                ElbCode::TargetGroupAssociationLimit,
                                format!(
                                    "The target group '{tg}' is already associated with another load balancer"
                                ),
                            ));
                        }
                    }
                }
                ActionTypeEnum::Redirect => {
                    // The model's status code enum is exactly HTTP_301 and HTTP_302.
                    if a.redirect_config.is_none() {
                        return Err(invalid_action(
                            "A redirect action needs RedirectConfig.StatusCode HTTP_301 or HTTP_302",
                        ));
                    }
                }
                ActionTypeEnum::FixedResponse => {
                    let config = a.fixed_response_config.as_ref();
                    let code = config.map_or("", |f| f.status_code.as_str());
                    let valid = code.len() == 3
                        && code.bytes().all(|b| b.is_ascii_digit())
                        && matches!(code.as_bytes()[0], b'2' | b'4' | b'5');
                    if !valid {
                        return Err(invalid_action(
                            "A fixed-response action needs a 2XX, 4XX or 5XX status code",
                        ));
                    }
                    let body = config.and_then(|f| f.message_body.as_deref()).unwrap_or("");
                    if body.len() > 1024 {
                        return Err(invalid_action("MessageBody can be at most 1024 characters"));
                    }
                }
                other => {
                    return Err(invalid_action(format!(
                        "Berth does not support action type {:?}",
                        other.as_str()
                    )));
                }
            }
        }
        Ok(())
    }

    /// `CreateListener` (HTTP) and its default rule.
    pub async fn listener_create(&self, cmd: CreateListener) -> Result<Listener, Error> {
        check_tags(&cmd.tags)?;
        let protocol = cmd.protocol.clone().unwrap_or_else(|| "HTTP".into());
        if protocol != "HTTP" {
            return Err(Error::elb(
                ElbCode::UnsupportedProtocol,
                format!("Berth's load balancer serves HTTP listeners, not {protocol}"),
            ));
        }
        let port = cmd
            .port
            .ok_or_else(|| Error::InvalidParameter("A listener port must be specified".into()))?;
        let this = self.clone();
        self.store
            .write(move |tx| {
                let (_, lb) = this.lb_get(tx, &cmd.load_balancer)?;
                this.check_actions(tx, &lb, &cmd.default_actions)?;
                let listeners: Vec<Listener> = all::<Listener>(tx, Kind::Listener, "")?
                    .into_iter()
                    .map(|(_, l)| l)
                    .collect();
                if listeners
                    .iter()
                    .any(|l| l.load_balancer == lb.name && l.port == port)
                {
                    return Err(Error::elb(
                        ElbCode::DuplicateListener,
                        format!("A listener already exists on port {port}"),
                    ));
                }
                if listeners.iter().any(|l| l.port == port) {
                    return Err(Error::elb(
                        ElbCode::InvalidConfigurationRequest,
                        format!(
                            "Port {port} is already used by another load balancer on this host"
                        ),
                    ));
                }
                if listeners
                    .iter()
                    .filter(|l| l.load_balancer == lb.name)
                    .count()
                    >= MAX_LISTENERS
                {
                    return Err(Error::elb(
                        ElbCode::TooManyListeners,
                        format!("A load balancer can have at most {MAX_LISTENERS} listeners"),
                    ));
                }
                let listener = Listener {
                    id: random_id(),
                    load_balancer: lb.name.clone(),
                    load_balancer_id: lb.id.clone(),
                    protocol,
                    port,
                    default_actions: cmd.default_actions,
                    tags: cmd.tags,
                };
                let rule = Rule {
                    id: random_id(),
                    load_balancer: lb.name.clone(),
                    load_balancer_id: lb.id.clone(),
                    listener_id: listener.id.clone(),
                    priority: None,
                    conditions: Vec::new(),
                    actions: listener.default_actions.clone(),
                    tags: Vec::new(),
                };
                save(
                    tx,
                    Kind::Listener,
                    &format!("{}\n{}", lb.name, listener.id),
                    &listener,
                    None,
                )?;
                save(
                    tx,
                    Kind::Rule,
                    &format!("{}\n{}\n{}", lb.name, listener.id, rule.id),
                    &rule,
                    None,
                )?;
                Ok(listener)
            })
            .await
    }

    /// `DescribeListeners`: of a load balancer, or by ARNs.
    pub fn listener_describe(
        &self,
        load_balancer: Option<String>,
        arns: Vec<String>,
    ) -> Result<Vec<Listener>, Error> {
        if load_balancer.is_none() && arns.is_empty() {
            return Err(Error::InvalidParameter(
                "LoadBalancerArn or ListenerArns must be specified".into(),
            ));
        }
        self.store.read(|tx| match &load_balancer {
            Some(arn) => {
                let (_, lb) = self.lb_get(tx, arn)?;
                Ok(
                    all::<Listener>(tx, Kind::Listener, &format!("{}\n", lb.name))?
                        .into_iter()
                        .map(|(_, l)| l)
                        .collect(),
                )
            }
            None => arns
                .iter()
                .map(|arn| self.listener_get(tx, arn).map(|(_, l)| l))
                .collect(),
        })
    }

    /// `ModifyListener`: port and default actions (the default rule follows).
    pub async fn listener_modify(
        &self,
        arn: &str,
        port: Option<i64>,
        protocol: Option<String>,
        default_actions: Option<Vec<Action>>,
    ) -> Result<Listener, Error> {
        if protocol.as_deref().is_some_and(|p| p != "HTTP") {
            return Err(Error::elb(
                ElbCode::UnsupportedProtocol,
                "Berth's load balancer serves HTTP listeners",
            ));
        }
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let (g, mut l) = this.listener_get(tx, &arn)?;
                if let Some(port) = port
                    && port != l.port
                {
                    let taken = all::<Listener>(tx, Kind::Listener, "")?
                        .into_iter()
                        .any(|(_, other)| other.port == port);
                    if taken {
                        return Err(Error::elb(
                            ElbCode::DuplicateListener,
                            format!("A listener already exists on port {port}"),
                        ));
                    }
                    l.port = port;
                }
                if let Some(actions) = default_actions {
                    let (_, lb) = this.lb_of(tx, &l.load_balancer, &l.load_balancer_id)?;
                    this.check_actions(tx, &lb, &actions)?;
                    l.default_actions = actions.clone();
                    for (key, mut rule) in
                        all::<Rule>(tx, Kind::Rule, &format!("{}\n{}\n", l.load_balancer, l.id))?
                    {
                        if rule.priority.is_none() {
                            let g = tx.get(Kind::Rule, &key)?.expect("listed").generation;
                            rule.actions = actions.clone();
                            save(tx, Kind::Rule, &key, &rule, Some(g))?;
                        }
                    }
                }
                save(
                    tx,
                    Kind::Listener,
                    &format!("{}\n{}", l.load_balancer, l.id),
                    &l,
                    Some(g),
                )?;
                Ok(l)
            })
            .await
    }

    /// `DeleteListener` and its rules.
    pub async fn listener_delete(&self, arn: &str) -> Result<(), Error> {
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let (g, l) = this.listener_get(tx, &arn)?;
                for (key, _) in
                    all::<Rule>(tx, Kind::Rule, &format!("{}\n{}\n", l.load_balancer, l.id))?
                {
                    let g = tx.get(Kind::Rule, &key)?.expect("listed").generation;
                    tx.delete(Kind::Rule, &key, g)?;
                }
                tx.delete(Kind::Listener, &format!("{}\n{}", l.load_balancer, l.id), g)
            })
            .await
    }

    /// `CreateRule`.
    pub async fn rule_create(&self, cmd: CreateRule) -> Result<Rule, Error> {
        check_tags(&cmd.tags)?;
        check_conditions(&cmd.conditions)?;
        if cmd.conditions.is_empty() {
            return Err(Error::InvalidParameter(
                "A rule needs at least one condition".into(),
            ));
        }
        let this = self.clone();
        self.store
            .write(move |tx| {
                let (_, l) = this.listener_get(tx, &cmd.listener)?;
                let (_, lb) = this.lb_of(tx, &l.load_balancer, &l.load_balancer_id)?;
                this.check_actions(tx, &lb, &cmd.actions)?;
                let rules = all::<Rule>(tx, Kind::Rule, &format!("{}\n", lb.name))?;
                let priority = cmd.priority as u32;
                if rules
                    .iter()
                    .any(|(_, r)| r.listener_id == l.id && r.priority == Some(priority))
                {
                    return Err(Error::elb(
                        ElbCode::PriorityInUse,
                        format!("Priority '{priority}' is currently in use"),
                    ));
                }
                if rules.iter().filter(|(_, r)| r.priority.is_some()).count() >= MAX_RULES {
                    return Err(Error::elb(
                        ElbCode::TooManyRules,
                        format!("A load balancer can have at most {MAX_RULES} rules"),
                    ));
                }
                let rule = Rule {
                    id: random_id(),
                    load_balancer: lb.name.clone(),
                    load_balancer_id: lb.id.clone(),
                    listener_id: l.id.clone(),
                    priority: Some(priority),
                    conditions: cmd.conditions,
                    actions: cmd.actions,
                    tags: cmd.tags,
                };
                save(
                    tx,
                    Kind::Rule,
                    &format!("{}\n{}\n{}", lb.name, l.id, rule.id),
                    &rule,
                    None,
                )?;
                Ok(rule)
            })
            .await
    }

    /// `DescribeRules`: of a listener (by priority, the default last), or by ARNs.
    pub fn rule_describe(
        &self,
        listener: Option<String>,
        arns: Vec<String>,
    ) -> Result<Vec<Rule>, Error> {
        if listener.is_none() && arns.is_empty() {
            return Err(Error::InvalidParameter(
                "ListenerArn or RuleArns must be specified".into(),
            ));
        }
        self.store.read(|tx| {
            let mut rules: Vec<Rule> = match &listener {
                Some(arn) => {
                    let (_, l) = self.listener_get(tx, arn)?;
                    all::<Rule>(tx, Kind::Rule, &format!("{}\n{}\n", l.load_balancer, l.id))?
                        .into_iter()
                        .map(|(_, r)| r)
                        .collect()
                }
                None => arns
                    .iter()
                    .map(|arn| self.rule_get(tx, arn).map(|(_, r)| r))
                    .collect::<Result<_, _>>()?,
            };
            if listener.is_some() {
                rules.sort_by_key(|r| r.priority.unwrap_or(u32::MAX));
            }
            Ok(rules)
        })
    }

    /// `ModifyRule`: conditions and actions (a default rule's actions only; the listener's
    /// default actions follow).
    pub async fn rule_modify(
        &self,
        arn: &str,
        conditions: Option<Vec<RuleCondition>>,
        actions: Option<Vec<Action>>,
    ) -> Result<Rule, Error> {
        if let Some(c) = &conditions {
            check_conditions(c)?;
        }
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let key = this.rule_key(&arn)?;
                let (g, mut rule) = this.rule_get(tx, &arn)?;
                if let Some(c) = conditions {
                    if rule.priority.is_none() {
                        return Err(Error::elb(
                            ElbCode::OperationNotPermitted,
                            "The conditions of a default rule cannot be modified",
                        ));
                    }
                    rule.conditions = c;
                }
                if let Some(actions) = actions {
                    let (_, lb) = this.lb_of(tx, &rule.load_balancer, &rule.load_balancer_id)?;
                    this.check_actions(tx, &lb, &actions)?;
                    if rule.priority.is_none() {
                        let lkey = format!("{}\n{}", rule.load_balancer, rule.listener_id);
                        let (lg, mut l) = load::<Listener>(tx.get(Kind::Listener, &lkey)?)?
                            .ok_or_else(|| rule_not_found(&arn))?;
                        l.default_actions = actions.clone();
                        save(tx, Kind::Listener, &lkey, &l, Some(lg))?;
                    }
                    rule.actions = actions;
                }
                save(tx, Kind::Rule, &key, &rule, Some(g))?;
                Ok(rule)
            })
            .await
    }

    /// `DeleteRule` (not a default rule).
    pub async fn rule_delete(&self, arn: &str) -> Result<(), Error> {
        let this = self.clone();
        let arn = arn.to_string();
        self.store
            .write(move |tx| {
                let key = this.rule_key(&arn)?;
                let (g, rule) = this.rule_get(tx, &arn)?;
                if rule.priority.is_none() {
                    return Err(Error::elb(
                        ElbCode::OperationNotPermitted,
                        "A default rule cannot be deleted",
                    ));
                }
                tx.delete(Kind::Rule, &key, g)
            })
            .await
    }

    /// `SetRulePriorities`: all or nothing; priorities stay unique per listener.
    pub async fn rule_set_priorities(
        &self,
        changes: Vec<(String, i64)>,
    ) -> Result<Vec<Rule>, Error> {
        let this = self.clone();
        self.store
            .write(move |tx| {
                let mut changed = Vec::new();
                for (arn, priority) in &changes {
                    let key = this.rule_key(arn)?;
                    let (g, mut rule) = this.rule_get(tx, arn)?;
                    if rule.priority.is_none() {
                        return Err(Error::elb(
                            ElbCode::OperationNotPermitted,
                            "The priority of a default rule cannot be changed",
                        ));
                    }
                    rule.priority = Some(*priority as u32);
                    save(tx, Kind::Rule, &key, &rule, Some(g))?;
                    changed.push(rule);
                }
                for rule in &changed {
                    let siblings = all::<Rule>(
                        tx,
                        Kind::Rule,
                        &format!("{}\n{}\n", rule.load_balancer, rule.listener_id),
                    )?;
                    if siblings
                        .iter()
                        .filter(|(_, r)| r.priority == rule.priority)
                        .count()
                        > 1
                    {
                        return Err(Error::elb(
                            ElbCode::PriorityInUse,
                            format!(
                                "Priority '{}' is currently in use",
                                rule.priority.unwrap_or(0)
                            ),
                        ));
                    }
                }
                Ok(changed)
            })
            .await
    }
}

fn listener_not_found(arn: &str) -> Error {
    Error::elb(
        ElbCode::ListenerNotFound,
        format!("One or more listeners not found: '{arn}'"),
    )
}

fn rule_not_found(arn: &str) -> Error {
    Error::elb(
        ElbCode::RuleNotFound,
        format!("One or more rules not found: '{arn}'"),
    )
}
