//! ECS tags: wire input → domain command, domain view → wire output.

use super::*;

/// `TagResource`.
pub(super) async fn tag_resource(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
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

/// `UntagResource`.
pub(super) async fn untag_resource(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
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

/// `ListTagsForResource`.
pub(super) async fn list_tags_for_resource(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        resource_arn: String,
    }
    let i: In = input(v)?;
    Ok(json!({"tags": tags_out(&ecs.tags_list(&i.resource_arn)?)}))
}
