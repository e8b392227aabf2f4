//! ELBv2 tags: wire input → domain command, domain view → wire output.

use super::*;

/// `AddTags`.
pub(super) async fn add_tags(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        resource_arns: Vec<String>,
        tags: Vec<WireTag>,
    }
    let i: In = input(v)?;
    elb.tags_add(i.resource_arns, tags(i.tags)).await?;
    Ok(json!({}))
}

/// `RemoveTags`.
pub(super) async fn remove_tags(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        resource_arns: Vec<String>,
        tag_keys: Vec<String>,
    }
    let i: In = input(v)?;
    elb.tags_remove(i.resource_arns, i.tag_keys).await?;
    Ok(json!({}))
}

/// `DescribeTags`.
pub(super) async fn describe_tags(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let elb = &cx.region.elb;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct In {
        resource_arns: Vec<String>,
    }
    let i: In = input(v)?;
    let described = elb.tags_describe(i.resource_arns)?;
    Ok(
        json!({"TagDescriptions": described.iter().map(|(arn, t)| json!({"ResourceArn": arn, "Tags": tags_out(t)})).collect::<Vec<_>>()}),
    )
}
