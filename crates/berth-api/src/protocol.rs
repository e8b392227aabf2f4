//! Response envelopes of the JSON, RPC v2 CBOR and query protocols (spec/protocols.md §3–§6),
//! with CloudWatch's query compatibility on JSON and CBOR errors (`x-amzn-query-error`).

use crate::errors::ApiError;
use axum::body::Body;
use axum::http::{Response, StatusCode};
use berth_aws::validate::validate_strict;
use berth_aws::{Service, query};
use serde_json::Value;

/// The protocol a response is rendered in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Json(Service),
    /// Smithy RPC v2 CBOR (CloudWatch).
    Cbor(Service),
    Query(Service),
    /// A JSON-style request for no service Berth knows.
    UnknownJson,
    /// A query-style request for no service Berth knows.
    UnknownQuery,
}

impl Proto {
    pub fn service(self) -> Option<Service> {
        match self {
            Proto::Json(s) | Proto::Cbor(s) | Proto::Query(s) => Some(s),
            Proto::UnknownJson | Proto::UnknownQuery => None,
        }
    }

    /// A protocol of the JSON family (JSON or CBOR): errors carry `__type`, timestamps are
    /// epoch seconds, authentication errors use the JSON codes.
    pub fn is_json(self) -> bool {
        match self {
            Proto::Json(_) | Proto::Cbor(_) | Proto::UnknownJson => true,
            Proto::Query(_) | Proto::UnknownQuery => false,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Proto::Json(s) => s.json_content_type(),
            Proto::Cbor(_) => "application/cbor",
            Proto::UnknownJson => "application/x-amz-json-1.1",
            Proto::Query(_) | Proto::UnknownQuery => "text/xml",
        }
    }
}

fn respond(proto: Proto, status: u16, body: Vec<u8>, request_id: &str) -> Response<Body> {
    let mut r = Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", proto.content_type())
        .header("x-amzn-RequestId", request_id);
    if let Proto::Cbor(_) = proto {
        r = r.header("smithy-protocol", "rpc-v2-cbor");
    }
    r.body(Body::from(body)).expect("valid response")
}

/// A successful call. In debug builds the output is checked against the model first, so tests
/// catch any member Berth emits that the model does not define.
pub fn success(proto: Proto, operation: &str, output: Value, request_id: &str) -> Response<Body> {
    let service = proto.service().expect("success needs a service");
    let model = service.model();
    if cfg!(debug_assertions)
        && let Some(out_ref) = model.operation(operation).and_then(|o| o.output.as_ref())
        && let Err(e) = validate_strict(model, &out_ref.shape, &output)
    {
        tracing::error!(request_id, operation, error = ?e, "response does not match the model");
        let e = ApiError::new(
            "InternalFailure",
            500,
            format!("response does not match the model: {e:?}"),
        );
        return error(proto, e, request_id);
    }
    match proto {
        Proto::Json(_) => respond(
            proto,
            200,
            serde_json::to_vec(&output).expect("JSON value"),
            request_id,
        ),
        Proto::Cbor(_) => {
            let body = match model.operation(operation).and_then(|o| o.output.as_ref()) {
                Some(out) => berth_aws::cbor::encode(model, &out.shape, &output),
                None => Vec::new(),
            };
            respond(proto, 200, body, request_id)
        }
        _ => {
            let xml = query::encode_response(model, operation, &output, request_id);
            respond(proto, 200, xml.into_bytes(), request_id)
        }
    }
}

/// An error envelope.
pub fn error(proto: Proto, e: ApiError, request_id: &str) -> Response<Body> {
    // A query-compatible service (CloudWatch) names its error's shape in `__type` and its
    // query code in `x-amzn-query-error`; the others' codes are their shapes' names.
    let compatible = proto
        .service()
        .filter(|s| proto.is_json() && s.query_compatible());
    let shape = compatible
        .and_then(|s| s.model().error_shape(e.code))
        .unwrap_or(e.code);
    let mut response = match proto {
        Proto::Cbor(s) => {
            let id = format!("{}#{shape}", s.smithy_namespace());
            respond(
                proto,
                e.status,
                berth_aws::cbor::encode_error(&id, &e.message),
                request_id,
            )
        }
        _ if proto.is_json() => {
            let mut body = serde_json::Map::new();
            body.insert("__type".into(), Value::String(shape.into()));
            if !e.message.is_empty() {
                body.insert("message".into(), Value::String(e.message.clone()));
            }
            respond(
                proto,
                e.status,
                serde_json::to_vec(&body).expect("JSON value"),
                request_id,
            )
        }
        _ => {
            let model = proto.service().map(Service::model);
            let xml = query::encode_error(model, e.sender(), e.code, &e.message, request_id);
            respond(proto, e.status, xml.into_bytes(), request_id)
        }
    };
    let headers = response.headers_mut();
    if proto.is_json() {
        headers.insert(
            "x-amzn-ErrorType",
            shape.parse().expect("error codes are header-safe"),
        );
    }
    if compatible.is_some() {
        let fault = if e.sender() { "Sender" } else { "Receiver" };
        if let Ok(v) = format!("{};{fault}", e.code).parse() {
            headers.insert("x-amzn-query-error", v);
        }
    }
    response
}
