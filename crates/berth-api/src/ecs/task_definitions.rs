//! ECS task definitions: wire input → domain command, domain view → wire output.

use super::*;

/// `RegisterTaskDefinition`.
pub(super) async fn register_task_definition(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
    let principal = cx.principal;
    let body_len = cx.body_len;
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
                spec: input(Value::Object(spec))?,
            },
            body_len,
        )
        .await?;
    Ok(json!({"taskDefinition": task_definition_out(state, &td), "tags": tags_out(&td.tags)}))
}

/// `DescribeTaskDefinition`.
pub(super) async fn describe_task_definition(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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

/// `ListTaskDefinitions`.
pub(super) async fn list_task_definitions(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
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

/// `ListTaskDefinitionFamilies`.
pub(super) async fn list_task_definition_families(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
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

/// `DeregisterTaskDefinition`.
pub(super) async fn deregister_task_definition(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        task_definition: String,
    }
    let i: In = input(v)?;
    let td = ecs.task_definition_deregister(&i.task_definition).await?;
    Ok(json!({"taskDefinition": task_definition_out(state, &td)}))
}

/// `DeleteTaskDefinitions`.
pub(super) async fn delete_task_definitions(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    let ecs = &cx.region.ecs;
    let state = &*cx.region;
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
