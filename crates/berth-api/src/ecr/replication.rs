//! ECR replication: PutReplicationConfiguration, DescribeRegistry and
//! DescribeImageReplicationStatus. The copying is `crate::replicate`'s (a background task).
//!
//! A destination `{region, registryId}` is one of this Berth's regions when `registryId` is
//! this account (and no `[[replication.remote]]` claims that region for it), else another
//! Berth deployment configured as a `[[replication.remote]]` of that registry id and region.
//! A destination Berth cannot reach is refused up front rather than failing every copy.

use super::*;
use berth_registry::replication::{Destination, ReplicationConfiguration, ReplicationRule};

/// Most destinations of all rules together (ECR's quota).
const MAX_DESTINATIONS: usize = 25;

fn config_out(c: &ReplicationConfiguration) -> Value {
    let rules: Vec<Value> = c
        .rules
        .iter()
        .map(|r| {
            let mut v = json!({
                "destinations": r.destinations.iter()
                    .map(|d| json!({"region": d.region, "registryId": d.registry_id}))
                    .collect::<Vec<_>>(),
            });
            if !r.filters.is_empty() {
                v["repositoryFilters"] = r
                    .filters
                    .iter()
                    .map(|f| json!({"filter": f, "filterType": "PREFIX_MATCH"}))
                    .collect();
            }
            v
        })
        .collect();
    json!({"rules": rules})
}

fn invalid(why: &str) -> Error {
    Error::InvalidParameter(format!(
        "Invalid parameter at 'replicationConfiguration' failed to satisfy constraint: '{why}'"
    ))
}

/// The configuration in a request (shapes checked by the model), each destination checked
/// against what this Berth can reach.
fn config_in(cx: &Cx<'_>, v: &Value) -> Result<ReplicationConfiguration, Error> {
    let scope = &cx.region.scope;
    let mut rules = Vec::new();
    let mut all: Vec<Destination> = Vec::new();
    let list = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for r in list(&v["replicationConfiguration"], "rules") {
        let mut destinations = Vec::new();
        for d in list(&r, "destinations") {
            let dest = Destination {
                region: d["region"].as_str().unwrap_or_default().to_string(),
                registry_id: d["registryId"].as_str().unwrap_or_default().to_string(),
            };
            let remote = cx.state.replication_remote(&dest.registry_id, &dest.region);
            let local = dest.registry_id == scope.account.as_str() && remote.is_none();
            if local && dest.region == scope.region.as_str() {
                return Err(invalid(&format!(
                    "A replication destination cannot be the source registry itself (region {}, registry {})",
                    dest.region, dest.registry_id
                )));
            }
            if local && berth_types::Region::parse(&dest.region).is_err() {
                return Err(invalid(&format!("'{}' is not a region", dest.region)));
            }
            if !local && remote.is_none() {
                return Err(invalid(&format!(
                    "No Berth deployment is configured for registry {} in region {} (a [[replication.remote]] of berth.toml)",
                    dest.registry_id, dest.region
                )));
            }
            if !all.contains(&dest) {
                all.push(dest.clone());
            }
            destinations.push(dest);
        }
        let filters = list(&r, "repositoryFilters")
            .iter()
            .filter_map(|f| f["filter"].as_str().map(str::to_string))
            .collect();
        rules.push(ReplicationRule {
            destinations,
            filters,
        });
    }
    if all.len() > MAX_DESTINATIONS {
        return Err(invalid(&format!(
            "The replication configuration has {} destinations; at most {MAX_DESTINATIONS} are allowed",
            all.len()
        )));
    }
    Ok(ReplicationConfiguration { rules })
}

/// `PutReplicationConfiguration`: replaces the registry's configuration; images pushed from
/// now on are replicated by it.
pub(super) async fn put_replication(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let config = config_in(cx, &v)?;
    cx.region
        .registry
        .replication_config_put(config.clone())
        .await?;
    Ok(json!({"replicationConfiguration": config_out(&config)}))
}

/// `DescribeRegistry`.
pub(super) async fn describe_registry(cx: &Cx<'_>) -> Result<Value, Error> {
    let config = cx.region.registry.replication_config()?;
    Ok(json!({
        "registryId": cx.region.scope.account.as_str(),
        "replicationConfiguration": config_out(&config),
    }))
}

/// `DescribeImageReplicationStatus`: each destination of the image's replication (none for an
/// image pushed before the configuration, or to a repository no rule matches).
pub(super) async fn describe_status(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        repository_name: String,
        image_id: ImageId,
    }
    let i: In = input(v)?;
    let registry = &cx.region.registry;
    registry.repository_get(&i.repository_name)?;
    let image =
        resolve(&cx.region, &i.repository_name, &i.image_id).map_err(|(code, m)| match code {
            "ImageNotFound" => Error::ImageNotFound(m),
            _ => Error::InvalidParameter(m),
        })?;
    let statuses: Vec<Value> = registry
        .replication_status(&i.repository_name, &image.digest)?
        .map(|r| r.destinations)
        .unwrap_or_default()
        .iter()
        .map(|d| {
            let mut s = json!({
                "region": d.destination.region,
                "registryId": d.destination.registry_id,
                "status": d.state.as_str(),
            });
            if let Some(f) = d
                .failure
                .as_ref()
                .filter(|_| d.state == berth_registry::replication::ReplicationState::Failed)
            {
                s["failureCode"] = Value::String(f.clone());
            }
            s
        })
        .collect();
    let mut image_id = image_id_out(&i.image_id);
    image_id["imageDigest"] = Value::String(image.digest.to_string());
    Ok(json!({
        "repositoryName": i.repository_name,
        "imageId": image_id,
        "replicationStatuses": statuses,
    }))
}
