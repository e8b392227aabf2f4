//! Error mapping: the domain [`Error`] and the protocol-level failures become each protocol's
//! code, HTTP status and message — one exhaustive `match` each. `docs/errors.md` documents it.

use berth_aws::Service;
use berth_aws::sigv4::AuthError;
use berth_types::Error;

/// An error ready to be rendered by a protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &'static str, status: u16, message: impl Into<String>) -> Self {
        ApiError {
            code,
            status,
            message: message.into(),
        }
    }

    pub fn sender(&self) -> bool {
        self.status < 500
    }
}

/// Domain errors of ECS operations.
pub fn ecs_error(e: Error, request_id: &str) -> ApiError {
    match e {
        Error::InvalidParameter(m) => ApiError::new("InvalidParameterException", 400, m),
        Error::Client(m) => ApiError::new("ClientException", 400, m),
        Error::ClusterNotFound => {
            ApiError::new("ClusterNotFoundException", 400, "Cluster not found.")
        }
        Error::ResourceNotFound(m) => ApiError::new("ResourceNotFoundException", 400, m),
        Error::LimitExceeded(m) => ApiError::new("LimitExceededException", 400, m),
        Error::NotImplemented(m) => ApiError::new("NotImplemented", 501, m),
        Error::Conflict | Error::Internal(_) => internal(&e, request_id, "ServerException"),
    }
}

/// Domain errors of query-protocol services (STS today).
pub fn query_error(e: Error, request_id: &str) -> ApiError {
    match e {
        Error::InvalidParameter(m) | Error::Client(m) => ApiError::new("ValidationError", 400, m),
        Error::ClusterNotFound | Error::ResourceNotFound(_) => {
            ApiError::new("ValidationError", 400, e.to_string())
        }
        Error::LimitExceeded(m) => ApiError::new("LimitExceeded", 400, m),
        Error::NotImplemented(m) => ApiError::new("NotImplemented", 501, m),
        Error::Conflict | Error::Internal(_) => internal(&e, request_id, "InternalFailure"),
    }
}

/// Internal errors are logged with the request id; the caller sees only the id.
fn internal(e: &Error, request_id: &str, code: &'static str) -> ApiError {
    tracing::error!(request_id, error = %e, "internal error");
    ApiError::new(
        code,
        500,
        format!("An internal error occurred. Request id: {request_id}"),
    )
}

/// Authentication failures (spec/protocols.md §6).
pub fn auth_error(e: &AuthError, json: bool) -> ApiError {
    let m = e.to_string();
    match (e, json) {
        (AuthError::Missing, true) => ApiError::new("MissingAuthenticationTokenException", 400, m),
        (AuthError::Missing, false) => ApiError::new("MissingAuthenticationToken", 403, m),
        (AuthError::Incomplete(_), true) => ApiError::new("IncompleteSignatureException", 400, m),
        (AuthError::Incomplete(_), false) => ApiError::new("IncompleteSignature", 400, m),
        (AuthError::UnknownAccessKey, true) => ApiError::new("UnrecognizedClientException", 400, m),
        (AuthError::UnknownAccessKey, false) => ApiError::new("InvalidClientTokenId", 403, m),
        (AuthError::SignatureMismatch | AuthError::Rejected(_), true) => {
            ApiError::new("InvalidSignatureException", 400, m)
        }
        (AuthError::SignatureMismatch | AuthError::Rejected(_), false) => {
            ApiError::new("SignatureDoesNotMatch", 403, m)
        }
    }
}

/// A modeled operation Berth does not implement yet.
pub fn not_implemented(service: Service, operation: &str) -> ApiError {
    ApiError::new(
        "NotImplemented",
        501,
        format!(
            "Berth does not implement {}:{operation} yet. See docs/compatibility.md for what is supported.",
            service.signing_name()
        ),
    )
}
