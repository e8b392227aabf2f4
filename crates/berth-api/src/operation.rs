//! Operations as types: one enum per service (declared with [`operations!`]), each variant an
//! operation Berth implements, carrying its AWS name, its IAM action (`ecs:RunTask`), its
//! access level, the resources it acts on and how far Berth implements it. Dispatch is one
//! exhaustive `match` per service; the compatibility page and the support checks are derived
//! from these tables (an operation of the model that is not in its service's enum answers
//! `NotImplemented`). The pattern is garage's `src/api/s3/router.rs` endpoint enum.

use serde_json::Value;

/// How far Berth implements one modeled operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Support {
    Implemented,
    /// Implemented, with the limits the note gives.
    Partial(&'static str),
    NotImplemented,
}

/// The access level of an action, as AWS's service authorization reference classes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    List,
    Read,
    Write,
    Tagging,
    PermissionsManagement,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Access::List => "List",
            Access::Read => "Read",
            Access::Write => "Write",
            Access::Tagging => "Tagging",
            Access::PermissionsManagement => "Permissions management",
        }
    }
}

/// Which resources an operation acts on, found in its (validated) input: what IAM checks the
/// action against. Member names are the model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// Not resource-scoped: the action is checked against `*`.
    Any,
    /// The ECS cluster named (or given by ARN) in the member; `default` when absent.
    Cluster(&'static str),
    /// The ECS clusters listed in the member; `default` when absent.
    Clusters(&'static str),
    /// The container instance(s) in the member (one or a list), of the cluster in `cluster`.
    ContainerInstances(&'static str),
    /// The task(s) in the member, of the cluster in `cluster`.
    Tasks(&'static str),
    /// The service(s) in the member, of the cluster in `cluster`.
    Services(&'static str),
    /// The task definition in the member (`family`, `family:revision` or an ARN); a family
    /// alone is `family:*`.
    TaskDefinition(&'static str),
    /// The ECR repository named in the member.
    Repository(&'static str),
    /// The ARN(s) in the member (ELBv2 resources, tagging operations).
    Arns(&'static str),
    /// The CloudWatch alarm(s) named in the member
    /// (`arn:aws:cloudwatch:<region>:<account>:alarm:<name>`); `*` when absent.
    Alarms(&'static str),
    /// The IAM entity (`user`, `group`, `role`) named in the member
    /// (`arn:aws:iam::<account>:<kind>/<name>`); `*` when absent.
    Iam(&'static str, &'static str),
    /// The CloudWatch Logs group named in the member (or in `logGroupIdentifier`, a name or
    /// an ARN), in the form IAM checks log-group actions against:
    /// `arn:aws:logs:<region>:<account>:log-group:<name>:*`; every group when absent.
    LogGroup(&'static str),
    /// The log groups of the list member, of `logGroupName` and of `logGroupIdentifiers`
    /// (StartQuery), each as [`Resource::LogGroup`].
    LogGroups(&'static str),
    /// The log stream the members name (group, stream):
    /// `arn:aws:logs:<region>:<account>:log-group:<group>:log-stream:<stream>`.
    LogStream(&'static str, &'static str),
}

/// What is known of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub name: &'static str,
    /// `<service prefix>:<operation>`.
    pub action: &'static str,
    pub access: Access,
    pub resource: Resource,
    pub support: Support,
}

/// Declares a service's operation enum: `Name => Access, Resource, Support;` per operation.
/// Generates `ALL`, `parse`, `name`, `action` and `info`.
macro_rules! operations {
    ($(#[$meta:meta])* $vis:vis enum $enum:ident ($prefix:literal) {
        $($op:ident => $access:ident, $resource:expr, $support:expr;)*
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $enum { $($op),* }

        impl $enum {
            /// Every operation Berth implements of this service.
            pub const ALL: &'static [$enum] = &[$($enum::$op),*];

            pub fn parse(name: &str) -> Option<$enum> {
                match name {
                    $(stringify!($op) => Some($enum::$op),)*
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self { $($enum::$op => stringify!($op)),* }
            }

            pub fn action(self) -> &'static str {
                match self { $($enum::$op => concat!($prefix, ":", stringify!($op))),* }
            }

            pub fn info(self) -> $crate::operation::Info {
                #[allow(unused_imports)]
                use $crate::operation::{Access::*, Resource::*, Support::*};
                match self {
                    $($enum::$op => $crate::operation::Info {
                        name: stringify!($op),
                        action: concat!($prefix, ":", stringify!($op)),
                        access: $access,
                        resource: $resource,
                        support: $support,
                    }),*
                }
            }
        }
    };
}
pub(crate) use operations;

/// Where the resources of an operation live: the account and region of the request.
pub struct Place<'a> {
    pub account: &'a str,
    pub region: &'a str,
}

impl Place<'_> {
    fn arn(&self, service: &str, resource: &str) -> String {
        format!(
            "arn:aws:{service}:{}:{}:{resource}",
            self.region, self.account
        )
    }
}

/// The strings of a member that is a string or a list of strings.
fn strings(input: &Value, member: &str) -> Vec<String> {
    match input.get(member) {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

impl Resource {
    /// The ARNs the operation acts on, as IAM sees them (`*` when not resource-scoped).
    pub fn arns(&self, input: &Value, place: &Place<'_>) -> Vec<String> {
        let cluster_name = || {
            let given = input
                .get("cluster")
                .and_then(Value::as_str)
                .unwrap_or("default");
            given.rsplit('/').next().unwrap_or(given).to_string()
        };
        let or_arn = |given: String, make: &dyn Fn(&str) -> String| {
            if given.starts_with("arn:") {
                given
            } else {
                make(&given)
            }
        };
        match *self {
            Resource::Any => vec!["*".into()],
            Resource::Cluster(m) | Resource::Clusters(m) => {
                let mut names = strings(input, m);
                if names.is_empty() {
                    names.push("default".into());
                }
                names
                    .into_iter()
                    .map(|n| or_arn(n, &|n| place.arn("ecs", &format!("cluster/{n}"))))
                    .collect()
            }
            Resource::ContainerInstances(m) | Resource::Tasks(m) | Resource::Services(m) => {
                self.in_cluster(m, cluster_name(), input, place)
            }
            Resource::TaskDefinition(m) => strings(input, m)
                .into_iter()
                .map(|td| {
                    or_arn(td, &|td| {
                        let td = if td.contains(':') {
                            td.to_string()
                        } else {
                            format!("{td}:*")
                        };
                        place.arn("ecs", &format!("task-definition/{td}"))
                    })
                })
                .collect(),
            Resource::Repository(m) => strings(input, m)
                .into_iter()
                .map(|r| place.arn("ecr", &format!("repository/{r}")))
                .collect(),
            Resource::Alarms(m) => {
                let names = strings(input, m);
                if names.is_empty() {
                    return vec!["*".into()];
                }
                names
                    .into_iter()
                    .map(|n| place.arn("cloudwatch", &format!("alarm:{n}")))
                    .collect()
            }
            Resource::Iam(kind, m) => match input.get(m).and_then(Value::as_str) {
                Some(name) => vec![format!("arn:aws:iam::{}:{kind}/{name}", place.account)],
                None => vec!["*".into()],
            },
            Resource::LogGroup(_) | Resource::LogGroups(_) | Resource::LogStream(..) => {
                self.log_arns(input, place)
            }
            Resource::Arns(m) => {
                let list = strings(input, m);
                if list.is_empty() {
                    vec!["*".into()]
                } else {
                    list
                }
            }
        }
    }

    /// The CloudWatch Logs resources of [`Resource::LogGroup`], [`Resource::LogGroups`] and
    /// [`Resource::LogStream`].
    fn log_arns(&self, input: &Value, place: &Place<'_>) -> Vec<String> {
        match *self {
            Resource::LogGroups(m) => {
                let mut out: Vec<String> = [m, "logGroupName", "logGroupIdentifiers"]
                    .iter()
                    .flat_map(|m| strings(input, m))
                    .map(|g| log_group_of(&g, place))
                    .collect();
                if out.is_empty() {
                    out.push(place.arn("logs", "log-group:*"));
                }
                out
            }
            Resource::LogStream(g, s) => {
                let group = log_group_arn(input, g, place);
                let group = group.strip_suffix(":*").unwrap_or(&group);
                let stream = input.get(s).and_then(Value::as_str).unwrap_or("*");
                vec![format!("{group}:log-stream:{stream}")]
            }
            Resource::LogGroup(m) => vec![log_group_arn(input, m, place)],
            _ => Vec::new(),
        }
    }

    /// The container instances, tasks or services `member` names in `cluster`.
    fn in_cluster(
        &self,
        member: &str,
        cluster: String,
        input: &Value,
        place: &Place<'_>,
    ) -> Vec<String> {
        let kind = match self {
            Resource::ContainerInstances(_) => "container-instance",
            Resource::Tasks(_) => "task",
            _ => "service",
        };
        let list = strings(input, member);
        if list.is_empty() {
            return vec![place.arn("ecs", &format!("{kind}/{cluster}/*"))];
        }
        list.into_iter()
            .map(|x| {
                if x.starts_with("arn:") {
                    x
                } else {
                    place.arn("ecs", &format!("{kind}/{cluster}/{x}"))
                }
            })
            .collect()
    }
}

/// `…:log-group:<name>:*` of a group given by name or ARN (with or without `:*`).
fn log_group_of(given: &str, place: &Place<'_>) -> String {
    if given.starts_with("arn:") {
        let bare = given.strip_suffix(":*").unwrap_or(given);
        format!("{bare}:*")
    } else {
        place.arn("logs", &format!("log-group:{given}:*"))
    }
}

/// The log group of `member` (or `logGroupIdentifier`) as IAM checks it; every group when
/// neither is given.
fn log_group_arn(input: &Value, member: &str, place: &Place<'_>) -> String {
    [member, "logGroupIdentifier"]
        .iter()
        .find_map(|m| input.get(*m).and_then(Value::as_str))
        .map_or_else(
            || place.arn("logs", "log-group:*"),
            |g| log_group_of(g, place),
        )
}
