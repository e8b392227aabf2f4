//! ECS over awsJson 1.1: wire input → domain command, domain view → wire output.
//!
//! Inputs arrive validated against the model with nulls removed; the structs below name only
//! the members each operation reads (AWS member names, via `rename_all = "camelCase"`).

use crate::ApiState;
use berth_control::ecs::{
    ClusterCounts, CreateCluster, Failure, FamilyStatusFilter, ListAccountSettings,
    ListTaskDefinitions, RegisterTaskDefinition, UpdateCluster,
};
use berth_control::paging::{Page, PageRequest};
use berth_types::ecs::{Cluster, ClusterSetting, TaskDefinition, TaskDefinitionStatus};
use berth_types::{Error, Principal, Tag};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

#[derive(Deserialize)]
struct WireTag {
    key: String,
    #[serde(default)]
    value: String,
}

fn tags(wire: Vec<WireTag>) -> Vec<Tag> {
    wire.into_iter()
        .map(|t| Tag {
            key: t.key,
            value: t.value,
        })
        .collect()
}

fn tags_out(tags: &[Tag]) -> Value {
    Value::Array(
        tags.iter()
            .map(|t| json!({"key": t.key, "value": t.value}))
            .collect(),
    )
}

#[derive(Deserialize)]
struct WireSetting {
    name: String,
    value: String,
}

fn settings(wire: Vec<WireSetting>) -> Vec<ClusterSetting> {
    wire.into_iter()
        .map(|s| ClusterSetting {
            name: s.name,
            value: s.value,
        })
        .collect()
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Paging {
    next_token: Option<String>,
    max_results: Option<i32>,
}

impl Paging {
    fn request(self) -> PageRequest {
        PageRequest {
            max_results: self.max_results,
            next_token: self.next_token,
        }
    }
}

fn input<T: DeserializeOwned>(v: Value) -> Result<T, Error> {
    serde_json::from_value(v).map_err(|e| Error::InvalidParameter(format!("Invalid request: {e}")))
}

fn page_out<T>(key: &str, page: Page<T>, item: impl Fn(T) -> Value) -> Value {
    let mut out = Map::new();
    out.insert(
        key.into(),
        Value::Array(page.items.into_iter().map(item).collect()),
    );
    if let Some(t) = page.next_token {
        out.insert("nextToken".into(), Value::String(t));
    }
    Value::Object(out)
}

fn failures_out(failures: &[Failure]) -> Value {
    Value::Array(
        failures
            .iter()
            .map(|f| {
                let mut m = json!({"arn": f.arn, "reason": f.reason});
                if let Some(d) = &f.detail {
                    m["detail"] = Value::String(d.clone());
                }
                m
            })
            .collect(),
    )
}

/// Which optional parts of a cluster to render.
#[derive(Clone, Copy)]
struct ClusterParts {
    settings: bool,
    configuration: bool,
    tags: bool,
    statistics: bool,
    attachments: bool,
}

const ALL_PARTS: ClusterParts = ClusterParts {
    settings: true,
    configuration: true,
    tags: true,
    statistics: false,
    attachments: false,
};

fn cluster_out(state: &ApiState, c: &Cluster, counts: ClusterCounts, parts: ClusterParts) -> Value {
    let ecs = &state.inner.ecs;
    let mut m = json!({
        "clusterArn": ecs.cluster_arn(&c.name),
        "clusterName": c.name.as_str(),
        "status": c.status.as_str(),
        "registeredContainerInstancesCount": counts.registered_container_instances,
        "runningTasksCount": counts.running_tasks,
        "pendingTasksCount": counts.pending_tasks,
        "activeServicesCount": counts.active_services,
        "capacityProviders": c.capacity_providers,
        "defaultCapacityProviderStrategy": c.default_capacity_provider_strategy,
    });
    if parts.settings {
        m["settings"] = Value::Array(
            c.settings
                .iter()
                .map(|s| json!({"name": s.name, "value": s.value}))
                .collect(),
        );
    }
    if parts.configuration
        && let Some(conf) = &c.configuration
    {
        m["configuration"] = conf.clone();
    }
    if let Some(d) = &c.service_connect_defaults {
        m["serviceConnectDefaults"] = d.clone();
    }
    if parts.tags {
        m["tags"] = tags_out(&c.tags);
    }
    if parts.statistics {
        let stats = [
            ("runningEC2TasksCount", counts.running_tasks),
            ("runningFargateTasksCount", 0),
            ("pendingEC2TasksCount", counts.pending_tasks),
            ("pendingFargateTasksCount", 0),
            ("runningExternalTasksCount", 0),
            ("pendingExternalTasksCount", 0),
            ("activeEC2ServiceCount", counts.active_services),
            ("activeFargateServiceCount", 0),
            ("drainingEC2ServiceCount", 0),
            ("drainingFargateServiceCount", 0),
            ("activeExternalServiceCount", 0),
            ("drainingExternalServiceCount", 0),
        ];
        m["statistics"] = Value::Array(
            stats
                .iter()
                .map(|(k, v)| json!({"name": k, "value": v.to_string()}))
                .collect(),
        );
    }
    if parts.attachments {
        m["attachments"] = json!([]);
    }
    m
}

fn task_definition_out(state: &ApiState, td: &TaskDefinition) -> Value {
    let mut m = td.spec.clone();
    let ecs = &state.inner.ecs;
    m.insert(
        "taskDefinitionArn".into(),
        ecs.task_definition_arn(&td.family, td.revision).into(),
    );
    m.insert("family".into(), td.family.as_str().into());
    m.insert("revision".into(), td.revision.into());
    m.insert("status".into(), td.status.as_str().into());
    m.insert(
        "requiresAttributes".into(),
        Value::Array(
            td.requires_attributes
                .iter()
                .map(|a| json!({"name": a}))
                .collect(),
        ),
    );
    m.insert("compatibilities".into(), json!(td.compatibilities));
    m.insert(
        "registeredAt".into(),
        td.registered_at.epoch_seconds().into(),
    );
    m.insert("registeredBy".into(), td.registered_by.clone().into());
    if let Some(t) = td.deregistered_at {
        m.insert("deregisteredAt".into(), t.epoch_seconds().into());
    }
    if let Some(t) = td.delete_requested_at {
        m.insert("deleteRequestedAt".into(), t.epoch_seconds().into());
    }
    Value::Object(m)
}

/// Runs one ECS operation. Unknown names are `NotImplemented` (the router checks the support
/// table first, so only a table/dispatch mismatch reaches that arm).
pub async fn call(
    state: &ApiState,
    principal: &Principal,
    operation: &str,
    v: Value,
    body_len: usize,
) -> Result<Value, Error> {
    let ecs = &state.inner.ecs;
    match operation {
        "CreateCluster" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster_name: Option<String>,
                #[serde(default)]
                tags: Vec<WireTag>,
                #[serde(default)]
                settings: Vec<WireSetting>,
                configuration: Option<Value>,
                #[serde(default)]
                capacity_providers: Vec<String>,
                #[serde(default)]
                default_capacity_provider_strategy: Vec<Value>,
                service_connect_defaults: Option<Value>,
            }
            let i: In = input(v)?;
            let c = ecs
                .cluster_create(CreateCluster {
                    name: i.cluster_name,
                    tags: tags(i.tags),
                    settings: settings(i.settings),
                    configuration: i.configuration,
                    capacity_providers: i.capacity_providers,
                    default_capacity_provider_strategy: i.default_capacity_provider_strategy,
                    service_connect_defaults: i.service_connect_defaults,
                })
                .await?;
            Ok(json!({"cluster": cluster_out(state, &c, ecs.cluster_counts(&c), ALL_PARTS)}))
        }
        "DescribeClusters" => {
            #[derive(Deserialize)]
            struct In {
                #[serde(default)]
                clusters: Vec<String>,
                #[serde(default)]
                include: Vec<String>,
            }
            let i: In = input(v)?;
            if i.clusters.len() > 100 {
                return Err(Error::InvalidParameter(
                    "clusters can have at most 100 items.".into(),
                ));
            }
            let has = |f: &str| i.include.iter().any(|x| x == f);
            let parts = ClusterParts {
                settings: has("SETTINGS"),
                configuration: has("CONFIGURATIONS"),
                tags: has("TAGS"),
                statistics: has("STATISTICS"),
                attachments: has("ATTACHMENTS"),
            };
            let (found, failures) = ecs.cluster_describe(&i.clusters)?;
            let clusters: Vec<Value> = found
                .iter()
                .map(|c| cluster_out(state, c, ecs.cluster_counts(c), parts))
                .collect();
            Ok(json!({"clusters": clusters, "failures": failures_out(&failures)}))
        }
        "ListClusters" => {
            let page = ecs.cluster_list(&input::<Paging>(v)?.request())?;
            Ok(page_out("clusterArns", page, Value::String))
        }
        "DeleteCluster" => {
            #[derive(Deserialize)]
            struct In {
                cluster: String,
            }
            let i: In = input(v)?;
            let c = ecs
                .cluster_delete(ecs.cluster_name(Some(&i.cluster))?)
                .await?;
            Ok(json!({"cluster": cluster_out(state, &c, ecs.cluster_counts(&c), ALL_PARTS)}))
        }
        "UpdateCluster" | "UpdateClusterSettings" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                cluster: String,
                settings: Option<Vec<WireSetting>>,
                configuration: Option<Value>,
                service_connect_defaults: Option<Value>,
            }
            let i: In = input(v)?;
            let c = ecs
                .cluster_update(
                    ecs.cluster_name(Some(&i.cluster))?,
                    UpdateCluster {
                        settings: i.settings.map(settings),
                        configuration: i.configuration,
                        service_connect_defaults: i.service_connect_defaults,
                    },
                )
                .await?;
            Ok(json!({"cluster": cluster_out(state, &c, ecs.cluster_counts(&c), ALL_PARTS)}))
        }
        "RegisterTaskDefinition" => {
            let Value::Object(mut spec) = v else {
                return Err(Error::InvalidParameter(
                    "The request must be an object.".into(),
                ));
            };
            let family = match spec.remove("family") {
                Some(Value::String(f)) => f,
                _ => return Err(Error::InvalidParameter("family is required.".into())),
            };
            let wire_tags: Vec<WireTag> = match spec.remove("tags") {
                Some(t) => input(t)?,
                None => Vec::new(),
            };
            let td = ecs
                .task_definition_register(
                    principal,
                    RegisterTaskDefinition {
                        family,
                        tags: tags(wire_tags),
                        spec,
                    },
                    body_len,
                )
                .await?;
            Ok(
                json!({"taskDefinition": task_definition_out(state, &td), "tags": tags_out(&td.tags)}),
            )
        }
        "DescribeTaskDefinition" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                task_definition: String,
                #[serde(default)]
                include: Vec<String>,
            }
            let i: In = input(v)?;
            let td = ecs.task_definition_describe(&i.task_definition)?;
            let mut out = json!({"taskDefinition": task_definition_out(state, &td)});
            if i.include.iter().any(|x| x == "TAGS") {
                out["tags"] = tags_out(&td.tags);
            }
            Ok(out)
        }
        "ListTaskDefinitions" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                family_prefix: Option<String>,
                status: Option<String>,
                sort: Option<String>,
                #[serde(flatten)]
                paging: Paging,
            }
            let i: In = input(v)?;
            let page = ecs.task_definition_list(&ListTaskDefinitions {
                family: i.family_prefix,
                status: i.status.as_deref().and_then(TaskDefinitionStatus::parse),
                descending: i.sort.as_deref() == Some("DESC"),
                page: i.paging.request(),
            })?;
            Ok(page_out("taskDefinitionArns", page, Value::String))
        }
        "ListTaskDefinitionFamilies" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                family_prefix: Option<String>,
                status: Option<String>,
                #[serde(flatten)]
                paging: Paging,
            }
            let i: In = input(v)?;
            let status = match i.status.as_deref() {
                Some("ACTIVE") => FamilyStatusFilter::Active,
                Some("INACTIVE") => FamilyStatusFilter::Inactive,
                _ => FamilyStatusFilter::All,
            };
            let page = ecs.family_list(i.family_prefix.as_deref(), status, &i.paging.request())?;
            Ok(page_out("families", page, Value::String))
        }
        "DeregisterTaskDefinition" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                task_definition: String,
            }
            let i: In = input(v)?;
            let td = ecs.task_definition_deregister(&i.task_definition).await?;
            Ok(json!({"taskDefinition": task_definition_out(state, &td)}))
        }
        "DeleteTaskDefinitions" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                task_definitions: Vec<String>,
            }
            let i: In = input(v)?;
            let (done, failures) = ecs.task_definition_delete(i.task_definitions).await?;
            let tds: Vec<Value> = done
                .iter()
                .map(|td| task_definition_out(state, td))
                .collect();
            Ok(json!({"taskDefinitions": tds, "failures": failures_out(&failures)}))
        }
        "TagResource" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                resource_arn: String,
                tags: Vec<WireTag>,
            }
            let i: In = input(v)?;
            ecs.tags_add(&i.resource_arn, tags(i.tags)).await?;
            Ok(json!({}))
        }
        "UntagResource" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                resource_arn: String,
                tag_keys: Vec<String>,
            }
            let i: In = input(v)?;
            ecs.tags_remove(&i.resource_arn, i.tag_keys).await?;
            Ok(json!({}))
        }
        "ListTagsForResource" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                resource_arn: String,
            }
            let i: In = input(v)?;
            Ok(json!({"tags": tags_out(&ecs.tags_list(&i.resource_arn)?)}))
        }
        "ListAccountSettings" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                name: Option<String>,
                value: Option<String>,
                principal_arn: Option<String>,
                #[serde(default)]
                effective_settings: bool,
                #[serde(flatten)]
                paging: Paging,
            }
            let i: In = input(v)?;
            let page = ecs.setting_list(
                principal,
                &ListAccountSettings {
                    name: i.name,
                    value: i.value,
                    principal_arn: i.principal_arn,
                    effective: i.effective_settings,
                    page: i.paging.request(),
                },
            )?;
            Ok(page_out("settings", page, |s| {
                json!({
                    "name": s.setting.name,
                    "value": s.setting.value,
                    "principalArn": s.setting.principal_arn,
                    "type": if s.user_set { "user" } else { "aws_managed" },
                })
            }))
        }
        "PutAccountSetting" | "PutAccountSettingDefault" => {
            #[derive(Deserialize)]
            #[serde(rename_all = "camelCase")]
            struct In {
                name: String,
                value: String,
                principal_arn: Option<String>,
            }
            let i: In = input(v)?;
            let s = if operation == "PutAccountSetting" {
                ecs.setting_put(principal, i.name, i.value, i.principal_arn)
                    .await?
            } else {
                ecs.setting_put_default(principal, i.name, i.value).await?
            };
            Ok(
                json!({"setting": {"name": s.name, "value": s.value, "principalArn": s.principal_arn, "type": "user"}}),
            )
        }
        other => Err(Error::NotImplemented(format!(
            "Berth does not implement ecs:{other} yet."
        ))),
    }
}
