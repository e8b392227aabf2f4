//! The vendored botocore models, parsed once on first use.
//!
//! The JSON files under `models/` are botocore's `service-2.json` with documentation
//! removed (see `models/strip.py`). Shapes keep botocore's field names.

use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

/// The services whose models Berth carries. Every one is routable; which operations are
/// implemented is decided by `berth-api`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    Ecs,
    Ecr,
    Elbv2,
    ApplicationAutoScaling,
    CloudWatch,
    Logs,
    Iam,
    Sts,
}

/// Wire protocols (spec/protocols.md §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// awsJson 1.0 or 1.1, routed by `X-Amz-Target`.
    Json,
    /// awsQuery: form parameters in, XML out.
    Query,
}

impl Service {
    pub const ALL: [Service; 8] = [
        Service::Ecs,
        Service::Ecr,
        Service::Elbv2,
        Service::ApplicationAutoScaling,
        Service::CloudWatch,
        Service::Logs,
        Service::Iam,
        Service::Sts,
    ];

    fn source(self) -> &'static str {
        match self {
            Service::Ecs => include_str!("../models/ecs.json"),
            Service::Ecr => include_str!("../models/ecr.json"),
            Service::Elbv2 => include_str!("../models/elbv2.json"),
            Service::ApplicationAutoScaling => {
                include_str!("../models/application-autoscaling.json")
            }
            Service::CloudWatch => include_str!("../models/cloudwatch.json"),
            Service::Logs => include_str!("../models/logs.json"),
            Service::Iam => include_str!("../models/iam.json"),
            Service::Sts => include_str!("../models/sts.json"),
        }
    }

    /// The parsed model. Parsing happens once per service, on first use.
    pub fn model(self) -> &'static Model {
        static MODELS: LazyLock<HashMap<Service, Model>> = LazyLock::new(|| {
            Service::ALL
                .iter()
                .map(|s| {
                    let model: Model = serde_json::from_str(s.source())
                        .unwrap_or_else(|e| panic!("embedded model for {s:?} is invalid: {e}"));
                    (*s, model)
                })
                .collect()
        });
        &MODELS[&self]
    }

    /// The name in the SigV4 credential scope and in IAM actions (`ecs`, `elasticloadbalancing`…).
    pub fn signing_name(self) -> &'static str {
        match self {
            Service::Ecs => "ecs",
            Service::Ecr => "ecr",
            Service::Elbv2 => "elasticloadbalancing",
            Service::ApplicationAutoScaling => "application-autoscaling",
            Service::CloudWatch => "monitoring",
            Service::Logs => "logs",
            Service::Iam => "iam",
            Service::Sts => "sts",
        }
    }

    /// The `X-Amz-Target` prefix of JSON services.
    pub fn target_prefix(self) -> Option<&'static str> {
        self.model().metadata.target_prefix.as_deref()
    }

    /// The protocol of the service's query-style requests (`Action=…`). CloudWatch also
    /// accepts awsJson 1.0 and Smithy RPC v2 CBOR.
    pub fn protocol(self) -> Protocol {
        match self {
            Service::Elbv2 | Service::Iam | Service::Sts | Service::CloudWatch => Protocol::Query,
            _ => Protocol::Json,
        }
    }

    /// Whether the service's JSON and CBOR errors are query-compatible (CloudWatch's
    /// `awsQueryCompatible`): `__type` names the error shape, `x-amzn-query-error` the query
    /// code.
    pub fn query_compatible(self) -> bool {
        self == Service::CloudWatch
    }

    /// The Smithy namespace of the service's shapes (absolute ids of CBOR errors).
    pub fn smithy_namespace(self) -> &'static str {
        match self {
            Service::Ecs => "com.amazonaws.ecs",
            Service::Ecr => "com.amazonaws.ecr",
            Service::Elbv2 => "com.amazonaws.elasticloadbalancingv2",
            Service::ApplicationAutoScaling => "com.amazonaws.applicationautoscaling",
            Service::CloudWatch => "com.amazonaws.cloudwatch",
            Service::Logs => "com.amazonaws.cloudwatchlogs",
            Service::Iam => "com.amazonaws.iam",
            Service::Sts => "com.amazonaws.sts",
        }
    }

    /// The service whose RPC v2 CBOR path segment (`…/service/<name>/operation/<Op>`) is
    /// `name`: its target prefix, bare or with its namespace.
    pub fn by_cbor_service_name(name: &str) -> Option<Service> {
        Service::ALL.iter().copied().find(|s| {
            s.target_prefix().is_some_and(|p| {
                name == p
                    || name
                        .strip_suffix(p)
                        .is_some_and(|ns| ns == format!("{}.", s.smithy_namespace()))
            })
        })
    }

    /// `application/x-amz-json-1.0` or `-1.1`.
    pub fn json_content_type(self) -> &'static str {
        match self.model().metadata.json_version.as_deref() {
            Some("1.0") => "application/x-amz-json-1.0",
            _ => "application/x-amz-json-1.1",
        }
    }

    pub fn api_version(self) -> &'static str {
        &self.model().metadata.api_version
    }

    pub fn service_id(self) -> &'static str {
        &self.model().metadata.service_id
    }

    /// The error code clients get for a request that breaks the model's constraints.
    pub fn validation_error_code(self) -> &'static str {
        match self {
            // CloudWatch Logs answers a broken constraint with InvalidParameterException
            // ("1 validation error detected: …"), as ECS does.
            Service::Ecs | Service::Ecr | Service::Logs => "InvalidParameterException",
            Service::ApplicationAutoScaling => "ValidationException",
            Service::Elbv2 | Service::Iam | Service::Sts | Service::CloudWatch => "ValidationError",
        }
    }

    pub fn by_target_prefix(prefix: &str) -> Option<Service> {
        Service::ALL
            .into_iter()
            .find(|s| s.target_prefix() == Some(prefix))
    }

    pub fn by_signing_name(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.signing_name() == name)
    }

    /// Query services are told apart by the `Version` parameter.
    pub fn by_query_version(version: &str) -> Option<Service> {
        Service::ALL
            .into_iter()
            .find(|s| s.protocol() == Protocol::Query && s.api_version() == version)
    }
}

#[derive(Debug, Deserialize)]
pub struct Model {
    pub metadata: Metadata,
    pub operations: BTreeMap<String, Operation>,
    pub shapes: HashMap<String, Shape>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    pub api_version: String,
    pub service_id: String,
    #[serde(default)]
    pub target_prefix: Option<String>,
    #[serde(default)]
    pub json_version: Option<String>,
    #[serde(default)]
    pub xml_namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Operation {
    pub name: String,
    #[serde(default)]
    pub input: Option<ShapeRef>,
    #[serde(default)]
    pub output: Option<ShapeRef>,
    #[serde(default)]
    pub errors: Vec<ShapeRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShapeRef {
    pub shape: String,
    #[serde(default)]
    pub location_name: Option<String>,
    #[serde(default)]
    pub result_wrapper: Option<String>,
    #[serde(default)]
    pub flattened: bool,
}

#[derive(Debug, Deserialize)]
pub struct Shape {
    #[serde(rename = "type")]
    pub kind: ShapeKind,
    #[serde(default)]
    pub members: BTreeMap<String, ShapeRef>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default)]
    pub member: Option<ShapeRef>,
    #[serde(default)]
    pub key: Option<ShapeRef>,
    #[serde(default)]
    pub value: Option<ShapeRef>,
    #[serde(default, rename = "enum")]
    pub enum_values: Vec<String>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    #[serde(default)]
    pub flattened: bool,
    #[serde(default)]
    pub exception: bool,
    #[serde(default)]
    pub error: Option<ErrorTrait>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ShapeKind {
    Structure,
    List,
    Map,
    String,
    Integer,
    Long,
    Double,
    Float,
    Boolean,
    Timestamp,
    Blob,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorTrait {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub http_status_code: Option<u16>,
    #[serde(default)]
    pub sender_fault: bool,
}

impl Model {
    /// The name of the error shape whose query code (`error.code`) is `code`, or the shape
    /// named `code` itself.
    pub fn error_shape<'a>(&'a self, code: &str) -> Option<&'a str> {
        if self.shapes.get(code).is_some_and(|s| s.exception) {
            return self.shapes.get_key_value(code).map(|(k, _)| k.as_str());
        }
        self.shapes
            .iter()
            .find(|(_, s)| s.error.as_ref().and_then(|e| e.code.as_deref()) == Some(code))
            .map(|(name, _)| name.as_str())
    }

    /// The HTTP status the model gives the error whose query code (or shape name) is `code`.
    pub fn error_status(&self, code: &str) -> Option<u16> {
        let shape = self.error_shape(code)?;
        self.shapes.get(shape)?.error.as_ref()?.http_status_code
    }

    pub fn shape(&self, name: &str) -> &Shape {
        self.shapes
            .get(name)
            .unwrap_or_else(|| panic!("model refers to missing shape {name}"))
    }

    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_parses_and_resolves_its_shapes() {
        for service in Service::ALL {
            let model = service.model();
            assert!(!model.operations.is_empty(), "{service:?}");
            for shape in model.shapes.values() {
                for r in shape
                    .members
                    .values()
                    .chain(shape.member.iter())
                    .chain(shape.key.iter())
                    .chain(shape.value.iter())
                {
                    model.shape(&r.shape);
                }
            }
        }
    }

    #[test]
    fn services_are_found_by_their_selectors() {
        assert_eq!(
            Service::by_target_prefix("AmazonEC2ContainerServiceV20141113"),
            Some(Service::Ecs)
        );
        assert_eq!(
            Service::by_signing_name("elasticloadbalancing"),
            Some(Service::Elbv2)
        );
        assert_eq!(Service::by_query_version("2011-06-15"), Some(Service::Sts));
        assert_eq!(
            Service::by_query_version("2015-12-01"),
            Some(Service::Elbv2)
        );
        assert_eq!(Service::Ecs.model().operations.len(), 77);
    }
}
