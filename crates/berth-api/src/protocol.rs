//! Response envelopes of the JSON and query protocols (spec/protocols.md §3, §5, §6).

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
    Query(Service),
    /// A JSON-style request for no service Berth knows.
    UnknownJson,
    /// A query-style request for no service Berth knows.
    UnknownQuery,
}

impl Proto {
    pub fn service(self) -> Option<Service> {
        match self {
            Proto::Json(s) | Proto::Query(s) => Some(s),
            Proto::UnknownJson | Proto::UnknownQuery => None,
        }
    }

    pub fn is_json(self) -> bool {
        match self {
            Proto::Json(_) | Proto::UnknownJson => true,
            Proto::Query(_) | Proto::UnknownQuery => false,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Proto::Json(s) => s.json_content_type(),
            Proto::UnknownJson => "application/x-amz-json-1.1",
            Proto::Query(_) | Proto::UnknownQuery => "text/xml",
        }
    }
}

fn respond(proto: Proto, status: u16, body: Vec<u8>, request_id: &str) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", proto.content_type())
        .header("x-amzn-RequestId", request_id)
        .body(Body::from(body))
        .expect("valid response")
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
        _ => {
            let xml = query::encode_response(model, operation, &output, request_id);
            respond(proto, 200, xml.into_bytes(), request_id)
        }
    }
}

/// An error envelope.
pub fn error(proto: Proto, e: ApiError, request_id: &str) -> Response<Body> {
    let mut response = if proto.is_json() {
        let mut body = serde_json::Map::new();
        body.insert("__type".into(), Value::String(e.code.into()));
        if !e.message.is_empty() {
            body.insert("message".into(), Value::String(e.message.clone()));
        }
        respond(
            proto,
            e.status,
            serde_json::to_vec(&body).expect("JSON value"),
            request_id,
        )
    } else {
        let model = proto.service().map(Service::model);
        let xml = query::encode_error(model, e.sender(), e.code, &e.message, request_id);
        respond(proto, e.status, xml.into_bytes(), request_id)
    };
    if proto.is_json() {
        response.headers_mut().insert(
            "x-amzn-ErrorType",
            e.code.parse().expect("error codes are header-safe"),
        );
    }
    response
}
