//! A metric filter's `metricTransformations[].metricValue` and `dimensions`, checked against
//! its pattern when the filter is put, and resolved against each matching event.
//!
//! * `metricValue`: a number (`"1"`), a JSON property (`"$.latency"`, JSON patterns only) or
//!   a field (`"$bytes"`, `"$7"`, space-delimited patterns only).
//! * `dimensions`: at most 3 `name -> $.property | $field`, on JSON and space-delimited
//!   patterns only ("The specified filter pattern does not support dimensions" otherwise: the
//!   message AWS returns).
//!
//! An event whose value is missing or not a number, or lacks a dimension, publishes nothing.
//! Called by the Logs API (PutMetricFilter, TestMetricFilter) and the metric-filter consumer.

use super::{Captures, Pattern, PatternKind, json};
use thiserror::Error;

/// Most dimensions on one metric transformation (the model's `MetricTransformation` doc).
pub const MAX_DIMENSIONS: usize = 3;

/// A transformation CloudWatch Logs refuses, as `InvalidParameterException`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MetricError {
    #[error("The specified filter pattern does not support dimensions")]
    DimensionsNotSupported,
    #[error("A metric transformation can have at most 3 dimensions")]
    TooManyDimensions,
    #[error("Invalid metric value '{0}': use a number, or a field the filter pattern extracts")]
    Value(String),
    #[error("Invalid dimension value '{0}': use a field the filter pattern extracts")]
    Dimension(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Source {
    Constant(f64),
    /// `$.…` or `$name`, read through [`Captures::get`].
    Field(String),
}

/// A checked metric transformation.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricExtraction {
    value: Source,
    dimensions: Vec<(String, String)>,
}

/// What one matching event publishes.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    pub value: f64,
    pub dimensions: Vec<(String, String)>,
}

fn field_ref(pattern: &Pattern, text: &str) -> bool {
    match pattern.kind() {
        PatternKind::Json => {
            (text.starts_with("$.") || text.starts_with("$["))
                && json::Selector::parse(text).is_ok()
        }
        PatternKind::Delimited => text.strip_prefix('$').is_some_and(|name| {
            pattern.delimited_field(name)
                || (!name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) && name != "0")
        }),
        _ => false,
    }
}

impl MetricExtraction {
    /// Checks `metric_value` and `dimensions` against `pattern` (PutMetricFilter).
    pub fn new(
        pattern: &Pattern,
        metric_value: &str,
        dimensions: &[(String, String)],
    ) -> Result<MetricExtraction, MetricError> {
        if !dimensions.is_empty()
            && !matches!(pattern.kind(), PatternKind::Json | PatternKind::Delimited)
        {
            return Err(MetricError::DimensionsNotSupported);
        }
        if dimensions.len() > MAX_DIMENSIONS {
            return Err(MetricError::TooManyDimensions);
        }
        let v = metric_value.trim();
        let value = if let Some(n) = super::value::parse_number(v) {
            Source::Constant(n)
        } else if field_ref(pattern, v) {
            Source::Field(v.to_string())
        } else {
            return Err(MetricError::Value(metric_value.to_string()));
        };
        for (_, d) in dimensions {
            if !field_ref(pattern, d.trim()) {
                return Err(MetricError::Dimension(d.clone()));
            }
        }
        Ok(MetricExtraction {
            value,
            dimensions: dimensions
                .iter()
                .map(|(k, v)| (k.clone(), v.trim().to_string()))
                .collect(),
        })
    }

    /// What a matching event publishes, if its value is a number and its dimensions are
    /// present.
    pub fn extract(&self, captures: &Captures<'_>) -> Option<MetricPoint> {
        let value = match &self.value {
            Source::Constant(n) => *n,
            Source::Field(f) => super::value::parse_number(captures.get(f)?.trim())?,
        };
        let dimensions = self
            .dimensions
            .iter()
            .map(|(k, f)| Some((k.clone(), captures.get(f)?.into_owned())))
            .collect::<Option<Vec<_>>>()?;
        Some(MetricPoint { value, dimensions })
    }
}
