//! Validation of a decoded request against its input shape, as AWS front ends do before an
//! operation runs: wrong JSON types are a `SerializationException`; missing required members,
//! enum values outside the set, lengths and ranges outside the model's bounds are the
//! service's validation error, worded the way Smithy-based services word it.
//!
//! `null` counts as absent; unknown members are ignored (newer clients send newer fields).
//! Patterns (`pattern` traits) are not checked here: the domain checks the names it cares
//! about with its own rules.

use crate::model::{Model, Shape, ShapeKind};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// The JSON does not have the shape's types.
    Serialization(String),
    /// Constraint violations, already joined into AWS's message form.
    Constraint(String),
}

/// Checks `value` against the shape called `shape` in `model`.
pub fn validate(model: &Model, shape: &str, value: &Value) -> Result<(), Invalid> {
    run(model, shape, value, false)
}

/// Like [`validate`], and members the model does not define are violations too. Used on
/// Berth's own responses (in debug builds and tests) so output drift from the model is caught.
pub fn validate_strict(model: &Model, shape: &str, value: &Value) -> Result<(), Invalid> {
    run(model, shape, value, true)
}

/// Removes `null` members and list items, which [`validate`] treats as absent.
pub fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => {
            items.retain(|v| !v.is_null());
            items.iter_mut().for_each(strip_nulls);
        }
        _ => {}
    }
}

fn run(model: &Model, shape: &str, value: &Value, strict: bool) -> Result<(), Invalid> {
    let mut v = Validator {
        model,
        violations: Vec::new(),
        strict,
    };
    v.check(shape, value, "")?;
    match v.violations.len() {
        0 => Ok(()),
        1 => Err(Invalid::Constraint(format!(
            "1 validation error detected: {}",
            v.violations[0]
        ))),
        n => Err(Invalid::Constraint(format!(
            "{n} validation errors detected: {}",
            v.violations.join("; ")
        ))),
    }
}

struct Validator<'m> {
    model: &'m Model,
    violations: Vec<String>,
    strict: bool,
}

fn join(path: &str, member: &str) -> String {
    if path.is_empty() {
        member.to_string()
    } else {
        format!("{path}.{member}")
    }
}

fn describe(value: &Value) -> String {
    match value {
        Value::String(s) => format!("'{s}'"),
        other => format!("'{other}'"),
    }
}

impl Validator<'_> {
    fn type_error(path: &str, expected: &str) -> Invalid {
        let at = if path.is_empty() {
            "the request body"
        } else {
            path
        };
        Invalid::Serialization(format!("Expected {expected} at '{at}'"))
    }

    fn check(&mut self, shape_name: &str, value: &Value, path: &str) -> Result<(), Invalid> {
        let shape = self.model.shape(shape_name);
        match shape.kind {
            ShapeKind::Structure => {
                let Value::Object(map) = value else {
                    return Err(Self::type_error(path, "an object"));
                };
                for name in &shape.required {
                    if map.get(name).is_none_or(Value::is_null) {
                        self.violations.push(format!(
                            "Value null at '{}' failed to satisfy constraint: Member must not be null",
                            join(path, name)
                        ));
                    }
                }
                if self.strict {
                    for name in map.keys().filter(|k| !shape.members.contains_key(*k)) {
                        self.violations
                            .push(format!("Member '{}' is not in the model", join(path, name)));
                    }
                }
                for (name, member) in &shape.members {
                    match map.get(name) {
                        None | Some(Value::Null) => {}
                        Some(v) => self.check(&member.shape, v, &join(path, name))?,
                    }
                }
            }
            ShapeKind::List => {
                let Value::Array(items) = value else {
                    return Err(Self::type_error(path, "a list"));
                };
                // AWS's responses carry empty lists where the model says at least one item
                // (ECR's ListImages of an empty repository answers `"imageIds": []`): on
                // Berth's own responses an empty list is not a violation.
                if !(self.strict && items.is_empty()) {
                    self.length(shape, items.len(), value, path);
                }
                let member = shape.member.as_ref().expect("list shape has a member");
                for (i, item) in items.iter().enumerate() {
                    if !item.is_null() {
                        self.check(&member.shape, item, &format!("{path}.{}.member", i + 1))?;
                    }
                }
            }
            ShapeKind::Map => {
                let Value::Object(entries) = value else {
                    return Err(Self::type_error(path, "a map"));
                };
                self.length(shape, entries.len(), value, path);
                let key = shape.key.as_ref().expect("map shape has a key");
                let val = shape.value.as_ref().expect("map shape has a value");
                for (k, v) in entries {
                    self.check(&key.shape, &Value::String(k.clone()), path)?;
                    if !v.is_null() {
                        self.check(&val.shape, v, &format!("{path}.{k}"))?;
                    }
                }
            }
            ShapeKind::String => {
                let Value::String(s) = value else {
                    return Err(Self::type_error(path, "a string"));
                };
                if !shape.enum_values.is_empty() && !shape.enum_values.iter().any(|e| e == s) {
                    self.violations.push(format!(
                        "Value '{s}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                        shape.enum_values.join(", ")
                    ));
                }
                self.length(shape, s.chars().count(), value, path);
            }
            ShapeKind::Blob => {
                if !value.is_string() {
                    return Err(Self::type_error(path, "a base64 string"));
                }
            }
            ShapeKind::Boolean => {
                if !value.is_boolean() {
                    return Err(Self::type_error(path, "a boolean"));
                }
            }
            ShapeKind::Integer | ShapeKind::Long => {
                let Some(n) = value.as_i64() else {
                    return Err(Self::type_error(path, "an integer"));
                };
                if shape.kind == ShapeKind::Integer && i32::try_from(n).is_err() {
                    return Err(Self::type_error(path, "a 32-bit integer"));
                }
                self.range(shape, n as f64, value, path);
            }
            ShapeKind::Double | ShapeKind::Float => match value {
                Value::Number(n) => self.range(shape, n.as_f64().unwrap_or(f64::NAN), value, path),
                Value::String(s) if matches!(s.as_str(), "NaN" | "Infinity" | "-Infinity") => {}
                _ => return Err(Self::type_error(path, "a number")),
            },
            ShapeKind::Timestamp => match value {
                Value::Number(_) => {}
                Value::String(s) if crate::timestamp::parse_iso8601(s).is_some() => {}
                _ => return Err(Self::type_error(path, "a timestamp")),
            },
        }
        Ok(())
    }

    fn length(&mut self, shape: &Shape, len: usize, value: &Value, path: &str) {
        let len = len as f64;
        if let Some(min) = shape.min.filter(|m| len < *m) {
            self.violations.push(format!(
                "Value {} at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {min}",
                describe(value)
            ));
        }
        if let Some(max) = shape.max.filter(|m| len > *m) {
            self.violations.push(format!(
                "Value {} at '{path}' failed to satisfy constraint: Member must have length less than or equal to {max}",
                describe(value)
            ));
        }
    }

    fn range(&mut self, shape: &Shape, n: f64, value: &Value, path: &str) {
        if let Some(min) = shape.min.filter(|m| n < *m) {
            self.violations.push(format!(
                "Value {} at '{path}' failed to satisfy constraint: Member must have value greater than or equal to {min}",
                describe(value)
            ));
        }
        if let Some(max) = shape.max.filter(|m| n > *m) {
            self.violations.push(format!(
                "Value {} at '{path}' failed to satisfy constraint: Member must have value less than or equal to {max}",
                describe(value)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Service;
    use serde_json::json;

    fn ecs(shape: &str, v: Value) -> Result<(), Invalid> {
        validate(Service::Ecs.model(), shape, &v)
    }

    #[test]
    fn required_members_are_reported_in_aws_words() {
        let err = ecs("RegisterTaskDefinitionRequest", json!({"family": "web"})).unwrap_err();
        assert_eq!(
            err,
            Invalid::Constraint(
                "1 validation error detected: Value null at 'containerDefinitions' failed to satisfy constraint: Member must not be null".into()
            )
        );
    }

    #[test]
    fn enums_lengths_and_ranges_are_checked() {
        let err = ecs(
            "RegisterTaskDefinitionRequest",
            json!({"family": "web", "containerDefinitions": [], "networkMode": "mesh"}),
        )
        .unwrap_err();
        let Invalid::Constraint(msg) = err else {
            panic!()
        };
        assert!(
            msg.contains("Member must satisfy enum value set: [bridge, host, awsvpc, none]"),
            "{msg}"
        );
        let err = ecs(
            "TagResourceRequest",
            json!({"resourceArn": "a", "tags": [{"key": "", "value": "v"}]}),
        )
        .unwrap_err();
        let Invalid::Constraint(msg) = err else {
            panic!()
        };
        assert!(msg.contains("at 'tags.1.member.key'"), "{msg}");
        assert!(msg.contains("length greater than or equal to 1"), "{msg}");
    }

    #[test]
    fn strict_mode_flags_unknown_members_and_nulls_strip() {
        let err = validate_strict(
            Service::Ecs.model(),
            "ListClustersResponse",
            &json!({"clusterArns": [], "extra": 1}),
        );
        assert!(matches!(err, Err(Invalid::Constraint(m)) if m.contains("'extra'")));
        let mut v = json!({"a": null, "b": [1, null, {"c": null}]});
        strip_nulls(&mut v);
        assert_eq!(v, json!({"b": [1, {}]}));
    }

    #[test]
    fn wrong_types_are_serialization_errors_and_nulls_are_absent() {
        let err = ecs("ListClustersRequest", json!({"maxResults": "ten"})).unwrap_err();
        assert!(matches!(err, Invalid::Serialization(m) if m.contains("maxResults")));
        ecs(
            "ListClustersRequest",
            json!({"maxResults": null, "unknownNewField": 1}),
        )
        .unwrap();
        let err = ecs("ListClustersRequest", json!([])).unwrap_err();
        assert!(matches!(err, Invalid::Serialization(_)));
    }
}
