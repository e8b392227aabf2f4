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
        Error::RepositoryNotFound(_)
        | Error::RepositoryAlreadyExists(_)
        | Error::RepositoryNotEmpty(_)
        | Error::ImageNotFound(_)
        | Error::ImageAlreadyExists(_)
        | Error::ImageTagImmutable(_)
        | Error::BlobUnknown(_)
        | Error::ManifestBlobUnknown(_)
        | Error::ManifestInvalid(_)
        | Error::DigestMismatch(_)
        | Error::UploadNotFound
        | Error::UploadOutOfOrder(_)
        | Error::LayerInvalid(_)
        | Error::LayerAlreadyExists(_)
        | Error::EmptyUpload
        | Error::PolicyNotFound(_) => ApiError::new("ClientException", 400, e.to_string()),
        Error::TagInvalid(m) | Error::TooManyTags(m) => {
            ApiError::new("InvalidParameterException", 400, m)
        }
        Error::TargetNotFound(m) => ApiError::new("TargetNotFoundException", 400, m),
        Error::AttributeLimitExceeded(m) => {
            ApiError::new("AttributeLimitExceededException", 400, m)
        }
        Error::ClusterContainsTasks => {
            ApiError::new("ClusterContainsTasksException", 400, e.to_string())
        }
        Error::ClusterContainsContainerInstances => ApiError::new(
            "ClusterContainsContainerInstancesException",
            400,
            e.to_string(),
        ),
        Error::ClusterContainsServices => {
            ApiError::new("ClusterContainsServicesException", 400, e.to_string())
        }
        Error::ServiceNotFound => ApiError::new("ServiceNotFoundException", 400, e.to_string()),
        Error::Elb { message, .. } | Error::Iam { message, .. } => {
            ApiError::new("InvalidParameterException", 400, message)
        }
        Error::Coded {
            code,
            status,
            message,
        } => ApiError::new(code, status, message),
        Error::AccessDenied(m) => ApiError::new("AccessDeniedException", 400, m),
        Error::ServiceNotActive => ApiError::new("ServiceNotActiveException", 400, e.to_string()),
        Error::Unavailable(m) => ApiError::new("ServiceUnavailable", 503, m),
        Error::Conflict | Error::Internal(_) => internal(&e, request_id, "ServerException"),
    }
}

/// Domain errors of ECR API operations.
pub fn ecr_error(e: Error, request_id: &str) -> ApiError {
    let m = e.to_string();
    match e {
        Error::InvalidParameter(_) | Error::Client(_) | Error::ClusterNotFound => {
            ApiError::new("InvalidParameterException", 400, m)
        }
        Error::ResourceNotFound(_) => ApiError::new("RepositoryNotFoundException", 400, m),
        Error::RepositoryNotFound(_) => ApiError::new("RepositoryNotFoundException", 400, m),
        Error::RepositoryAlreadyExists(_) => {
            ApiError::new("RepositoryAlreadyExistsException", 400, m)
        }
        Error::RepositoryNotEmpty(_) => ApiError::new("RepositoryNotEmptyException", 400, m),
        Error::ImageNotFound(_) => ApiError::new("ImageNotFoundException", 400, m),
        Error::ImageAlreadyExists(_) => ApiError::new("ImageAlreadyExistsException", 400, m),
        Error::ImageTagImmutable(_) => ApiError::new("ImageTagAlreadyExistsException", 400, m),
        Error::BlobUnknown(_) | Error::ManifestBlobUnknown(_) => {
            ApiError::new("LayersNotFoundException", 400, m)
        }
        Error::ManifestInvalid(_) => ApiError::new("InvalidParameterException", 400, m),
        Error::DigestMismatch(_) => ApiError::new("ImageDigestDoesNotMatchException", 400, m),
        Error::UploadNotFound => ApiError::new("UploadNotFoundException", 400, m),
        Error::UploadOutOfOrder(_) => ApiError::new("InvalidLayerPartException", 400, m),
        Error::LayerInvalid(_) => ApiError::new("InvalidLayerException", 400, m),
        Error::LayerAlreadyExists(_) => ApiError::new("LayerAlreadyExistsException", 400, m),
        Error::EmptyUpload => ApiError::new("EmptyUploadException", 400, m),
        Error::PolicyNotFound(_) => ApiError::new("RepositoryPolicyNotFoundException", 400, m),
        Error::TagInvalid(_) => ApiError::new("InvalidTagParameterException", 400, m),
        Error::TooManyTags(_) => ApiError::new("TooManyTagsException", 400, m),
        Error::TargetNotFound(_)
        | Error::AttributeLimitExceeded(_)
        | Error::ClusterContainsContainerInstances
        | Error::ClusterContainsTasks
        | Error::ClusterContainsServices
        | Error::ServiceNotFound
        | Error::ServiceNotActive
        | Error::Elb { .. }
        | Error::Iam { .. } => ApiError::new("InvalidParameterException", 400, m),
        Error::Coded { code, status, .. } => ApiError::new(code, status, m),
        Error::AccessDenied(_) => ApiError::new("AccessDeniedException", 400, m),
        Error::LimitExceeded(_) => ApiError::new("LimitExceededException", 400, m),
        Error::NotImplemented(_) => ApiError::new("NotImplemented", 501, m),
        Error::Unavailable(m) => ApiError::new("ServiceUnavailable", 503, m),
        Error::Conflict | Error::Internal(_) => internal(&e, request_id, "ServerException"),
    }
}

/// An OCI distribution error: HTTP status and `errors[].code`.
pub fn oci_error(e: Error, request_id: &str) -> (u16, &'static str, String) {
    let m = e.to_string();
    match e {
        Error::RepositoryNotFound(_) => (404, "NAME_UNKNOWN", m),
        Error::ImageNotFound(_) => (404, "MANIFEST_UNKNOWN", m),
        Error::BlobUnknown(_) => (404, "BLOB_UNKNOWN", m),
        Error::ManifestBlobUnknown(_) => (400, "MANIFEST_BLOB_UNKNOWN", m),
        Error::ManifestInvalid(_) => (400, "MANIFEST_INVALID", m),
        Error::DigestMismatch(_) | Error::LayerInvalid(_) => (400, "DIGEST_INVALID", m),
        Error::EmptyUpload => (400, "BLOB_UPLOAD_INVALID", m),
        Error::PolicyNotFound(_) => (404, "NAME_UNKNOWN", m),
        Error::TagInvalid(_)
        | Error::TooManyTags(_)
        | Error::TargetNotFound(_)
        | Error::AttributeLimitExceeded(_)
        | Error::ClusterContainsContainerInstances
        | Error::ClusterContainsTasks
        | Error::ClusterContainsServices
        | Error::ServiceNotFound
        | Error::ServiceNotActive
        | Error::Elb { .. }
        | Error::Iam { .. }
        | Error::Coded { .. } => (400, "UNSUPPORTED", m),
        Error::AccessDenied(_) => (403, "DENIED", m),
        Error::ImageTagImmutable(_) => (400, "TAG_INVALID", m),
        Error::UploadNotFound => (404, "BLOB_UPLOAD_UNKNOWN", m),
        Error::UploadOutOfOrder(_) => (416, "BLOB_UPLOAD_INVALID", m),
        Error::InvalidParameter(_)
        | Error::Client(_)
        | Error::ClusterNotFound
        | Error::ResourceNotFound(_) => (400, "UNSUPPORTED", m),
        Error::RepositoryAlreadyExists(_)
        | Error::RepositoryNotEmpty(_)
        | Error::ImageAlreadyExists(_)
        | Error::LayerAlreadyExists(_) => (409, "DENIED", m),
        Error::LimitExceeded(_) => (429, "TOOMANYREQUESTS", m),
        Error::NotImplemented(_) => (405, "UNSUPPORTED", m),
        Error::Unavailable(_) => (503, "UNAVAILABLE", m),
        Error::Conflict | Error::Internal(_) => {
            let a = internal(&e, request_id, "InternalFailure");
            (500, "UNKNOWN", a.message)
        }
    }
}

/// Domain errors of query-protocol services (STS, ELBv2).
pub fn query_error(e: Error, request_id: &str) -> ApiError {
    match e {
        Error::Elb { code, message } => ApiError::new(code.as_str(), 400, message),
        Error::Iam { code, message } => ApiError::new(code.as_str(), code.status(), message),
        Error::Coded {
            code,
            status,
            message,
        } => ApiError::new(code, status, message),
        Error::AccessDenied(m) => ApiError::new("AccessDenied", 403, m),
        Error::InvalidParameter(m) | Error::Client(m) => ApiError::new("ValidationError", 400, m),
        Error::ClusterNotFound | Error::ResourceNotFound(_) => {
            ApiError::new("ValidationError", 400, e.to_string())
        }
        Error::LimitExceeded(m) => ApiError::new("LimitExceeded", 400, m),
        Error::NotImplemented(m) => ApiError::new("NotImplemented", 501, m),
        Error::RepositoryNotFound(_)
        | Error::RepositoryAlreadyExists(_)
        | Error::RepositoryNotEmpty(_)
        | Error::ImageNotFound(_)
        | Error::ImageAlreadyExists(_)
        | Error::ImageTagImmutable(_)
        | Error::BlobUnknown(_)
        | Error::ManifestBlobUnknown(_)
        | Error::ManifestInvalid(_)
        | Error::DigestMismatch(_)
        | Error::UploadNotFound
        | Error::UploadOutOfOrder(_)
        | Error::LayerInvalid(_)
        | Error::LayerAlreadyExists(_)
        | Error::EmptyUpload
        | Error::PolicyNotFound(_) => ApiError::new("ValidationError", 400, e.to_string()),
        Error::TagInvalid(m) | Error::TooManyTags(m) => ApiError::new("ValidationError", 400, m),
        Error::TargetNotFound(m) | Error::AttributeLimitExceeded(m) => {
            ApiError::new("ValidationError", 400, m)
        }
        Error::ClusterContainsContainerInstances
        | Error::ClusterContainsTasks
        | Error::ClusterContainsServices
        | Error::ServiceNotFound
        | Error::ServiceNotActive => ApiError::new("ValidationError", 400, e.to_string()),
        Error::Unavailable(m) => ApiError::new("ServiceUnavailable", 503, m),
        Error::Conflict | Error::Internal(_) => internal(&e, request_id, "InternalFailure"),
    }
}

/// Domain errors of CloudWatch (query-compatible: the query code here, the shape name in
/// JSON and CBOR envelopes). A coded error takes the model's status for its code.
pub fn cloudwatch_error(e: Error, request_id: &str) -> ApiError {
    match e {
        Error::Coded { code, message, .. } => {
            let status = Service::CloudWatch
                .model()
                .error_status(code)
                .unwrap_or(400);
            ApiError::new(code, status, message)
        }
        Error::InvalidParameter(m) | Error::Client(m) => {
            ApiError::new("InvalidParameterValue", 400, m)
        }
        Error::ResourceNotFound(m) => ApiError::new("ResourceNotFound", 404, m),
        Error::Conflict | Error::Internal(_) => internal(&e, request_id, "InternalServiceError"),
        other => query_error(other, request_id),
    }
}

/// Domain errors of Application Auto Scaling. A coded error takes the model's status for its
/// code; what the other layers say about input is a `ValidationException`.
pub fn autoscaling_error(e: Error, request_id: &str) -> ApiError {
    match e {
        Error::Coded { code, message, .. } => {
            let status = Service::ApplicationAutoScaling
                .model()
                .error_status(code)
                .unwrap_or(400);
            ApiError::new(code, status, message)
        }
        Error::Conflict => ApiError::new(
            "ConcurrentUpdateException",
            500,
            "Concurrent updates are not allowed for the same resource: retry the request",
        ),
        Error::Internal(_) => internal(&e, request_id, "InternalServiceException"),
        Error::AccessDenied(m) => ApiError::new("AccessDeniedException", 400, m),
        Error::Unavailable(m) => ApiError::new("ServiceUnavailable", 503, m),
        other => ApiError::new("ValidationException", 400, other.to_string()),
    }
}

/// Domain errors of CloudWatch Logs: modeled codes as they are, the rest as Logs' own.
pub fn logs_error(e: Error, request_id: &str) -> ApiError {
    match e {
        Error::Coded { code, message, .. } => {
            let status = Service::Logs.model().error_status(code).unwrap_or(400);
            ApiError::new(code, status, message)
        }
        Error::InvalidParameter(m) | Error::Client(m) => {
            ApiError::new("InvalidParameterException", 400, m)
        }
        Error::ResourceNotFound(m) => ApiError::new("ResourceNotFoundException", 400, m),
        Error::AccessDenied(m) => ApiError::new("AccessDeniedException", 400, m),
        Error::LimitExceeded(m) => ApiError::new("LimitExceededException", 400, m),
        Error::Unavailable(m) => ApiError::new("ServiceUnavailableException", 503, m),
        Error::Conflict | Error::Internal(_) => {
            internal(&e, request_id, "ServiceUnavailableException")
        }
        other => ecs_error(other, request_id),
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
        (AuthError::ExpiredToken, true) => ApiError::new("ExpiredTokenException", 400, m),
        (AuthError::ExpiredToken, false) => ApiError::new("ExpiredToken", 403, m),
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
