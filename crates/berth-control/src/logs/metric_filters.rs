//! Metric filters: Put/Describe/DeleteMetricFilter, TestMetricFilter, and publishing — each
//! PutLogEvents runs the group's filters over the events it stored and publishes what they
//! extract to CloudWatch (the region's metrics), at the events' own times.
//!
//! What one batch publishes per filter: for each minute and dimension set, a statistic set of
//! the values the matching events gave (so Sum, SampleCount, Average, Minimum and Maximum are
//! exact; percentiles of filter metrics are not kept). Events that do not match add the
//! filter's `defaultValue`, when it has one, at their minute. Publishing follows the write:
//! a PutLogEvents is acknowledged once its events are durable, and a failed publication is
//! logged, not returned (AWS's metric filters are asynchronous too).

use super::records::{GroupClass, MetricFilter, MetricTransformation, filter_key};
use super::streams::group_in;
use super::{Logs, invalid, key_of, name_error, scope_hash, token_of};
use crate::paging::Page;
use crate::records::{all, decode, save};
use berth_logs::{MetricExtraction, Pattern};
use berth_metrics::{DatumInput, Dimension, Publisher, StatisticSetInput, Unit};
use berth_store::{Kind, ListQuery};
use berth_types::Error;
use std::collections::{BTreeMap, HashMap};

/// Metric filters a log group may have.
pub const MAX_FILTERS: usize = 100;
/// DescribeMetricFilters' default and largest page.
const PAGE: usize = 50;
/// TestMetricFilter / PutMetricData: data per PutMetricData call.
const DATA_PER_PUT: usize = 1_000;

/// DescribeMetricFilters' filters.
#[derive(Debug, Clone, Default)]
pub struct MetricFilterFilter {
    pub group: Option<String>,
    pub name_prefix: Option<String>,
    pub metric_name: Option<String>,
    pub namespace: Option<String>,
}

/// One TestMetricFilter match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterMatch {
    /// 1-based.
    pub event_number: i64,
    pub message: String,
    pub extracted: Vec<(String, String)>,
}

fn pattern_of(text: &str) -> Result<Pattern, Error> {
    Pattern::parse(text).map_err(|e| invalid(e.to_string()))
}

fn extraction_of(p: &Pattern, t: &MetricTransformation) -> Result<MetricExtraction, Error> {
    let dims: Vec<(String, String)> = t
        .dimensions
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    MetricExtraction::new(p, &t.value, &dims).map_err(|e| invalid(e.to_string()))
}

impl Logs {
    /// PutMetricFilter (creates or replaces the group's filter of that name).
    pub async fn metric_filter_put(
        &self,
        group: &str,
        name: &str,
        pattern: &str,
        t: MetricTransformation,
    ) -> Result<(), Error> {
        berth_logs::check_log_group_name(group).map_err(name_error)?;
        check_filter_name(name)?;
        let p = pattern_of(pattern)?;
        if !t.dimensions.is_empty() && t.default_value.is_some() {
            return Err(invalid(
                "A metric transformation with dimensions cannot have a default value.",
            ));
        }
        if let Some(u) = &t.unit
            && u.parse::<Unit>().is_err()
        {
            return Err(invalid(format!("The unit {u} is not valid.")));
        }
        extraction_of(&p, &t)?;
        let filter = MetricFilter {
            group: group.to_string(),
            name: name.to_string(),
            pattern: pattern.to_string(),
            transformation: t,
            created: self.clock.now().0,
        };
        self.store
            .write(move |tx| {
                let (gg, mut g) = group_in(tx, &filter.group)?;
                if g.class == GroupClass::InfrequentAccess {
                    return Err(invalid(
                        "Metric filters are not supported for log groups of the INFREQUENT_ACCESS class.",
                    ));
                }
                let key = filter_key(&filter.group, &filter.name);
                match tx.get(Kind::LogMetricFilter, &key)? {
                    Some(r) => {
                        let old: MetricFilter = decode(&r.doc, &r.key)?;
                        let kept = MetricFilter {
                            created: old.created,
                            ..filter
                        };
                        save(tx, Kind::LogMetricFilter, &key, None, &kept, Some(r.generation))
                    }
                    None => {
                        if g.filters as usize >= MAX_FILTERS {
                            return Err(Error::coded(
                                "LimitExceededException",
                                "Resource limit exceeded.",
                            ));
                        }
                        g.filters += 1;
                        save(tx, Kind::LogGroup, &filter.group, None, &g, Some(gg))?;
                        save(tx, Kind::LogMetricFilter, &key, None, &filter, None)
                    }
                }
            })
            .await
    }

    /// DeleteMetricFilter.
    pub async fn metric_filter_delete(&self, group: &str, name: &str) -> Result<(), Error> {
        berth_logs::check_log_group_name(group).map_err(name_error)?;
        check_filter_name(name)?;
        let (group, key) = (group.to_string(), filter_key(group, name));
        self.store
            .write(move |tx| {
                let (gg, mut g) = group_in(tx, &group)?;
                let Some(r) = tx.get(Kind::LogMetricFilter, &key)? else {
                    return Err(Error::coded(
                        "ResourceNotFoundException",
                        "The specified metric filter does not exist.",
                    ));
                };
                tx.delete(Kind::LogMetricFilter, &key, r.generation)?;
                g.filters = g.filters.saturating_sub(1);
                save(tx, Kind::LogGroup, &group, None, &g, Some(gg))
            })
            .await
    }

    /// DescribeMetricFilters: by group then name.
    pub fn metric_filters_describe(
        &self,
        f: &MetricFilterFilter,
        limit: Option<usize>,
        token: Option<&str>,
    ) -> Result<Page<MetricFilter>, Error> {
        if f.name_prefix.is_some() && f.group.is_none() {
            return Err(invalid(
                "If you specify filterNamePrefix, you must specify logGroupName.",
            ));
        }
        if f.metric_name.is_some() != f.namespace.is_some() {
            return Err(invalid(
                "metricName and metricNamespace must be specified together.",
            ));
        }
        let prefix = match &f.group {
            Some(g) => {
                self.group_doc(g)?;
                filter_key(g, f.name_prefix.as_deref().unwrap_or(""))
            }
            None => String::new(),
        };
        let scope = format!("DescribeMetricFilters:{}", scope_hash(&[&prefix]));
        let mut after = token.map(|t| key_of(&self.pager, &scope, t)).transpose()?;
        let limit = limit.unwrap_or(PAGE).clamp(1, PAGE);
        let (mut items, mut more) = (Vec::new(), false);
        'pages: loop {
            let rows = self.store.read(|r| {
                r.list(
                    Kind::LogMetricFilter,
                    &ListQuery {
                        prefix: &prefix,
                        after: after.as_deref(),
                        limit: 500,
                        ..Default::default()
                    },
                )
            })?;
            let exhausted = rows.len() < 500;
            for r in rows {
                let m: MetricFilter = decode(&r.doc, &r.key)?;
                let wanted = f.metric_name.as_ref().is_none_or(|n| {
                    *n == m.transformation.metric_name
                        && f.namespace.as_deref() == Some(m.transformation.namespace.as_str())
                });
                if !wanted {
                    after = Some(r.key);
                    continue;
                }
                if items.len() == limit {
                    more = true;
                    break 'pages;
                }
                after = Some(r.key);
                items.push(m);
            }
            if exhausted {
                break;
            }
        }
        let next_token = match (more, items.last()) {
            (true, Some(m)) => Some(token_of(
                &self.pager,
                &scope,
                &filter_key(&m.group, &m.name),
            )),
            _ => None,
        };
        Ok(Page { items, next_token })
    }

    /// Runs the group's metric filters over events just stored and publishes their metrics.
    pub(super) async fn metric_filters_apply(&self, group: &str, events: &[(i64, String)]) {
        let filters: Result<Vec<(String, MetricFilter)>, Error> = self
            .store
            .read(|r| all(r, Kind::LogMetricFilter, &format!("{group}\t")));
        let filters = match filters {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(group, error = %e, "could not read the log group's metric filters");
                return;
            }
        };
        // Data older than CloudWatch accepts is not published.
        let oldest = self.clock.now().0 - 14 * 86_400_000 + 60_000;
        let mut by_namespace: BTreeMap<String, Vec<DatumInput>> = BTreeMap::new();
        for (_, f) in filters {
            let data = match filter_data(&f, events, oldest) {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(group, filter = %f.name, error = %e, "a stored metric filter no longer parses");
                    continue;
                }
            };
            by_namespace
                .entry(f.transformation.namespace.clone())
                .or_default()
                .extend(data);
        }
        for (namespace, data) in by_namespace {
            for part in data.chunks(DATA_PER_PUT) {
                if let Err(e) = self
                    .cloudwatch
                    .metric_data_put(&namespace, part.to_vec(), Publisher::Internal)
                    .await
                {
                    tracing::warn!(group, namespace, error = %e, "publishing a metric filter's data failed");
                }
            }
        }
    }
}

/// What one filter publishes for `events`: a statistic set per minute and dimensions.
fn filter_data(
    f: &MetricFilter,
    events: &[(i64, String)],
    oldest: i64,
) -> Result<Vec<DatumInput>, Error> {
    let pattern = pattern_of(&f.pattern)?;
    let extraction = extraction_of(&pattern, &f.transformation)?;
    let mut sets: HashMap<(i64, Vec<(String, String)>), StatisticSetInput> = HashMap::new();
    let mut add = |t: i64, dims: Vec<(String, String)>, v: f64| {
        let s = sets
            .entry((t - t.rem_euclid(60_000), dims))
            .or_insert(StatisticSetInput {
                sample_count: 0.0,
                sum: 0.0,
                minimum: f64::INFINITY,
                maximum: f64::NEG_INFINITY,
            });
        s.sample_count += 1.0;
        s.sum += v;
        s.minimum = s.minimum.min(v);
        s.maximum = s.maximum.max(v);
    };
    for (t, m) in events.iter().filter(|(t, _)| *t >= oldest) {
        match pattern.captures(m).and_then(|c| extraction.extract(&c)) {
            Some(p) => add(*t, p.dimensions, p.value),
            None => {
                if let Some(d) = f.transformation.default_value {
                    add(*t, Vec::new(), d);
                }
            }
        }
    }
    let unit = f
        .transformation
        .unit
        .as_deref()
        .and_then(|u| u.parse::<Unit>().ok());
    Ok(sets
        .into_iter()
        .map(|((t, dims), set)| DatumInput {
            metric_name: f.transformation.metric_name.clone(),
            dimensions: dims
                .into_iter()
                .map(|(k, v)| Dimension::new(k, v))
                .collect(),
            timestamp_ms: Some(t),
            value: None,
            statistic_values: Some(set),
            values: Vec::new(),
            counts: Vec::new(),
            unit,
            storage_resolution: None,
        })
        .collect())
}

/// A filter name: 1–512 characters, no `:` or `*` (the model's `FilterName`).
fn check_filter_name(name: &str) -> Result<(), Error> {
    if name.contains([':', '*']) {
        return Err(invalid(format!(
            "1 validation error detected: Value '{name}' at 'filterName' failed to satisfy constraint: Member must satisfy regular expression pattern: [^:*]*"
        )));
    }
    Ok(())
}

/// TestMetricFilter: which messages match, and what a space-delimited pattern extracts.
pub fn metric_filter_test(pattern: &str, messages: &[String]) -> Result<Vec<FilterMatch>, Error> {
    let p = pattern_of(pattern)?;
    Ok(messages
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let c = p.captures(m)?;
            Some(FilterMatch {
                event_number: i as i64 + 1,
                message: m.clone(),
                extracted: c.extracted_values(),
            })
        })
        .collect())
}
