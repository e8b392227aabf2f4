//! Metric filters: Put/Describe/DeleteMetricFilter and TestMetricFilter.

use super::*;
use berth_control::logs::{MetricFilter, MetricFilterFilter, MetricTransformation};
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InTransformation {
    metric_name: String,
    metric_namespace: String,
    metric_value: String,
    default_value: Option<f64>,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    unit: Option<String>,
}

pub(super) async fn put_metric_filter(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        log_group_name: String,
        filter_name: String,
        filter_pattern: String,
        metric_transformations: Vec<InTransformation>,
        #[serde(default)]
        apply_on_transformed_logs: bool,
        field_selection_criteria: Option<String>,
        #[serde(default)]
        emit_system_field_dimensions: Vec<String>,
    }
    let i: In = input(v)?;
    if i.apply_on_transformed_logs
        || i.field_selection_criteria.is_some()
        || !i.emit_system_field_dimensions.is_empty()
    {
        return Err(invalid(
            "Berth does not support applyOnTransformedLogs, fieldSelectionCriteria or emitSystemFieldDimensions.",
        ));
    }
    let Some(t) = i.metric_transformations.into_iter().next() else {
        return Err(invalid("metricTransformations must have one member."));
    };
    let t = MetricTransformation {
        metric_name: t.metric_name,
        namespace: t.metric_namespace,
        value: t.metric_value,
        default_value: t.default_value,
        dimensions: t.dimensions,
        unit: t.unit,
    };
    cx.region
        .logs
        .metric_filter_put(&i.log_group_name, &i.filter_name, &i.filter_pattern, t)
        .await?;
    Ok(json!({}))
}

fn filter_out(f: &MetricFilter) -> Value {
    let t = &f.transformation;
    let transformation = object(&[
        ("metricName", Some(json!(t.metric_name))),
        ("metricNamespace", Some(json!(t.namespace))),
        ("metricValue", Some(json!(t.value))),
        ("defaultValue", t.default_value.map(|d| json!(d))),
        (
            "dimensions",
            (!t.dimensions.is_empty()).then(|| json!(t.dimensions)),
        ),
        ("unit", t.unit.as_ref().map(|u| json!(u))),
    ]);
    json!({
        "filterName": f.name,
        "filterPattern": f.pattern,
        "metricTransformations": [transformation],
        "creationTime": f.created,
        "logGroupName": f.group,
    })
}

pub(super) fn describe_metric_filters(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        log_group_name: Option<String>,
        filter_name_prefix: Option<String>,
        next_token: Option<String>,
        limit: Option<usize>,
        metric_name: Option<String>,
        metric_namespace: Option<String>,
    }
    let i: In = input(v)?;
    let f = MetricFilterFilter {
        group: i.log_group_name,
        name_prefix: i.filter_name_prefix,
        metric_name: i.metric_name,
        namespace: i.metric_namespace,
    };
    let page = cx
        .region
        .logs
        .metric_filters_describe(&f, i.limit, i.next_token.as_deref())?;
    let filters: Vec<Value> = page.items.iter().map(filter_out).collect();
    Ok(with_token(
        json!({"metricFilters": filters}),
        page.next_token,
    ))
}

pub(super) async fn delete_metric_filter(cx: &Cx<'_>, v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        log_group_name: String,
        filter_name: String,
    }
    let i: In = input(v)?;
    cx.region
        .logs
        .metric_filter_delete(&i.log_group_name, &i.filter_name)
        .await?;
    Ok(json!({}))
}

pub(super) fn test_metric_filter(v: Value) -> Result<Value, Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct In {
        filter_pattern: String,
        log_event_messages: Vec<String>,
    }
    let i: In = input(v)?;
    let matches =
        berth_control::logs::metric_filter_test(&i.filter_pattern, &i.log_event_messages)?;
    let out: Vec<Value> = matches
        .iter()
        .map(|m| {
            let extracted: Map<String, Value> = m
                .extracted
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            json!({
                "eventNumber": m.event_number,
                "eventMessage": m.message,
                "extractedValues": extracted,
            })
        })
        .collect();
    Ok(json!({ "matches": out }))
}
