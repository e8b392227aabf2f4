//! The one domain error. Each variant carries the message the caller sees; `berth-api` maps
//! variants to each protocol's code and status with one exhaustive `match`.

/// What went wrong, in domain terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// A parameter is invalid (ECS `InvalidParameterException`).
    #[error("{0}")]
    InvalidParameter(String),
    /// The request cannot be honoured as asked (ECS `ClientException`).
    #[error("{0}")]
    Client(String),
    /// The named cluster does not exist (or is INACTIVE where it must be ACTIVE).
    #[error("Cluster not found.")]
    ClusterNotFound,
    /// A resource named by ARN does not exist.
    #[error("{0}")]
    ResourceNotFound(String),
    /// A quota was reached.
    #[error("{0}")]
    LimitExceeded(String),
    /// A conditional write lost a race and should be retried by the app layer.
    #[error("the resource was modified concurrently")]
    Conflict,
    /// The operation is part of the model but Berth does not implement it yet.
    #[error("{0}")]
    NotImplemented(String),
    /// Anything else. The text is for the log only; callers see a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }
}
