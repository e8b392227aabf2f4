//! ECS clusters: wire input → domain command, domain view → wire output.

use super::*;
use berth_types::shapes::ecs::{
    CapacityProviderStrategyItem, ClusterConfiguration, ClusterServiceConnectDefaultsRequest,
};

/// `CreateCluster`.
pub(super) async fn create_cluster(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        cluster_name: Option<String>,
        #[serde(default)]
        tags: Vec<WireTag>,
        #[serde(default)]
        settings: Vec<WireSetting>,
        configuration: Option<ClusterConfiguration>,
        #[serde(default)]
        capacity_providers: Vec<String>,
        #[serde(default)]
        default_capacity_provider_strategy: Vec<CapacityProviderStrategyItem>,
        service_connect_defaults: Option<ClusterServiceConnectDefaultsRequest>,
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
    Ok(json!({"cluster": cluster_out(state, &c, ALL_PARTS)?}))
}

/// `DescribeClusters`.
pub(super) async fn describe_clusters(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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
        .map(|c| cluster_out(state, c, parts))
        .collect::<Result<_, _>>()?;
    Ok(json!({"clusters": clusters, "failures": failures_out(&failures)}))
}

/// `ListClusters`.
pub(super) async fn list_clusters(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let page = ecs.cluster_list(&input::<Paging>(v)?.request())?;
    Ok(page_out("clusterArns", page, Value::String))
}

/// `DeleteCluster`.
pub(super) async fn delete_cluster(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
    #[derive(Deserialize)]
    struct In {
        cluster: String,
    }
    let i: In = input(v)?;
    let c = ecs
        .cluster_delete(ecs.cluster_name(Some(&i.cluster))?)
        .await?;
    Ok(json!({"cluster": cluster_out(state, &c, ALL_PARTS)?}))
}

/// `UpdateCluster` / `UpdateClusterSettings`.
pub(super) async fn update_cluster(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        cluster: String,
        settings: Option<Vec<WireSetting>>,
        configuration: Option<ClusterConfiguration>,
        service_connect_defaults: Option<ClusterServiceConnectDefaultsRequest>,
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
    Ok(json!({"cluster": cluster_out(state, &c, ALL_PARTS)?}))
}
