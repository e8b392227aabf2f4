//! ECR tags: wire input → domain command, domain view → wire output.

use super::*;

/// `TagResource` / `UntagResource` / `ListTagsForResource`.
pub(super) async fn tag_resource(cx: &Cx<'_>, op: EcrOp, v: Value) -> Result<Value, Error> {
    let registry = &cx.region.registry;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        resource_arn: String,
        #[serde(default)]
        tags: Vec<WireTag>,
        #[serde(default)]
        tag_keys: Vec<String>,
    }
    let i: In = input(v)?;
    let repo = arn_repository(state, &i.resource_arn)?.to_string();
    let r = match op {
        EcrOp::TagResource => {
            let new: Vec<Tag> = wire_tags(i.tags);
            check_tags(&new)?;
            registry
                .repository_update(&repo, move |r| {
                    berth_types::tags_merge(&mut r.tags, new);
                    check_tags(&r.tags)
                })
                .await?
        }
        EcrOp::UntagResource => {
            let keys = i.tag_keys;
            registry
                .repository_update(&repo, move |r| {
                    r.tags.retain(|t| !keys.contains(&t.key));
                    Ok(())
                })
                .await?
        }
        _ => registry.repository_get(&repo)?,
    };
    if op == EcrOp::ListTagsForResource {
        let tags: Vec<Value> = r
            .tags
            .iter()
            .map(|t| json!({"Key": t.key, "Value": t.value}))
            .collect();
        Ok(json!({"tags": tags}))
    } else {
        Ok(json!({}))
    }
}
