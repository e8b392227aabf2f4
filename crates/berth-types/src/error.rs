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
    /// Registry: the repository does not exist. The whole message, in ECR's words (`The
    /// repository with name 'x' does not exist in the registry with id '123456789012'`).
    #[error("{0}")]
    RepositoryNotFound(String),
    /// Registry: a repository of that name exists (the whole message).
    #[error("{0}")]
    RepositoryAlreadyExists(String),
    /// Registry: the repository still has images (the whole message).
    #[error("{0}")]
    RepositoryNotEmpty(String),
    /// Registry: no image (manifest) matches the reference.
    #[error("{0}")]
    ImageNotFound(String),
    /// Registry: the same image is already stored under that tag.
    #[error("{0}")]
    ImageAlreadyExists(String),
    /// Registry: an immutable tag would move.
    #[error("{0}")]
    ImageTagImmutable(String),
    /// Registry: the blob (layer) is not in the repository.
    #[error("{0}")]
    BlobUnknown(String),
    /// Registry: a manifest references blobs or manifests the repository does not have.
    #[error("{0}")]
    ManifestBlobUnknown(String),
    /// Registry: the manifest cannot be parsed or has an unsupported media type.
    #[error("{0}")]
    ManifestInvalid(String),
    /// Registry: content does not have the digest the client named.
    #[error("{0}")]
    DigestMismatch(String),
    /// Registry (ECR layer API): the uploaded layer does not have the digest named.
    #[error("{0}")]
    LayerInvalid(String),
    /// Registry (ECR layer API): the layer is already in the repository.
    #[error("{0}")]
    LayerAlreadyExists(String),
    /// Registry: the repository has no policy.
    #[error("{0}")]
    PolicyNotFound(String),
    /// Registry (ECR layer API): nothing was uploaded.
    #[error("The layer upload is empty.")]
    EmptyUpload,
    /// Registry: the upload session does not exist (finished, cancelled or expired).
    #[error("The upload does not exist or has expired.")]
    UploadNotFound,
    /// Registry: a chunk does not continue the upload where it ends.
    #[error("{0}")]
    UploadOutOfOrder(String),
    /// A tag key or value breaks the tagging rules (ECR `InvalidTagParameterException`).
    #[error("{0}")]
    TagInvalid(String),
    /// A resource would have more tags than allowed (ECR `TooManyTagsException`).
    #[error("{0}")]
    TooManyTags(String),
    /// ECS: the target of an attribute operation does not exist.
    #[error("{0}")]
    TargetNotFound(String),
    /// ECS: too many custom attributes on a resource.
    #[error("{0}")]
    AttributeLimitExceeded(String),
    /// ECS: the cluster still has registered container instances.
    #[error("The Cluster cannot be deleted while Container Instances are active or draining.")]
    ClusterContainsContainerInstances,
    /// ECS: the cluster still has tasks that are not STOPPED.
    #[error("The Cluster cannot be deleted while Tasks are active.")]
    ClusterContainsTasks,
    /// A quota was reached.
    #[error("The Cluster cannot be deleted while Services are active.")]
    ClusterContainsServices,

    #[error("Service not found.")]
    ServiceNotFound,

    #[error("Service was not ACTIVE.")]
    ServiceNotActive,

    /// An Elastic Load Balancing error with its modeled code (`LoadBalancerNotFound`, …).
    #[error("{message}")]
    Elb { code: ElbCode, message: String },

    /// An IAM or STS error with its modeled code (`NoSuchEntity`, …).
    #[error("{message}")]
    Iam { code: IamCode, message: String },
    /// An error of a service whose codes are used as the model spells them (ECR's newer
    /// operations, CloudWatch, Logs, Application Auto Scaling): the code is the wire code, the
    /// status its HTTP status.
    #[error("{message}")]
    Coded {
        code: &'static str,
        status: u16,
        message: String,
    },
    /// The caller may not do this (AWS `AccessDeniedException` / `AccessDenied`); the message
    /// says who, what, on which resource and why.
    #[error("{0}")]
    AccessDenied(String),

    #[error("{0}")]
    LimitExceeded(String),
    /// A conditional write lost a race and should be retried by the app layer.
    #[error("the resource was modified concurrently")]
    Conflict,
    /// The operation is part of the model but Berth does not implement it yet.
    #[error("{0}")]
    NotImplemented(String),
    /// A dependency (the database, the object store) is unreachable, or this server may not
    /// do it now: HTTP 503, which clients retry.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else. The text is for the log only; callers see a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn internal(e: impl std::fmt::Display) -> Self {
        Error::Internal(e.to_string())
    }

    /// An error with the model's wire `code` (HTTP 400).
    pub fn coded(code: &'static str, message: impl Into<String>) -> Self {
        Error::Coded {
            code,
            status: 400,
            message: message.into(),
        }
    }
}

/// The Elastic Load Balancing error codes Berth returns (the `error.code` of the model's
/// exception shapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElbCode {
    LoadBalancerNotFound,
    TargetGroupNotFound,
    ListenerNotFound,
    RuleNotFound,
    DuplicateLoadBalancerName,
    DuplicateTargetGroupName,
    DuplicateListener,
    DuplicateTagKeys,
    PriorityInUse,
    ResourceInUse,
    InvalidTarget,
    InvalidConfigurationRequest,
    InvalidLoadBalancerAction,
    TargetGroupAssociationLimit,
    OperationNotPermitted,
    UnsupportedProtocol,
    TooManyTags,
    TooManyTargets,
    TooManyLoadBalancers,
    TooManyTargetGroups,
    TooManyListeners,
    TooManyRules,
    TooManyActions,
}

impl ElbCode {
    pub fn as_str(self) -> &'static str {
        use ElbCode::*;
        match self {
            LoadBalancerNotFound => "LoadBalancerNotFound",
            TargetGroupNotFound => "TargetGroupNotFound",
            ListenerNotFound => "ListenerNotFound",
            RuleNotFound => "RuleNotFound",
            DuplicateLoadBalancerName => "DuplicateLoadBalancerName",
            DuplicateTargetGroupName => "DuplicateTargetGroupName",
            DuplicateListener => "DuplicateListener",
            DuplicateTagKeys => "DuplicateTagKeys",
            PriorityInUse => "PriorityInUse",
            ResourceInUse => "ResourceInUse",
            InvalidTarget => "InvalidTarget",
            InvalidConfigurationRequest => "InvalidConfigurationRequest",
            InvalidLoadBalancerAction => "InvalidLoadBalancerAction",
            TargetGroupAssociationLimit => "TargetGroupAssociationLimit",
            OperationNotPermitted => "OperationNotPermitted",
            UnsupportedProtocol => "UnsupportedProtocol",
            TooManyTags => "TooManyTags",
            TooManyTargets => "TooManyTargets",
            TooManyLoadBalancers => "TooManyLoadBalancers",
            TooManyTargetGroups => "TooManyTargetGroups",
            TooManyListeners => "TooManyListeners",
            TooManyRules => "TooManyRules",
            TooManyActions => "TooManyActions",
        }
    }
}

impl Error {
    /// An Elastic Load Balancing error.
    pub fn elb(code: ElbCode, message: impl Into<String>) -> Self {
        Error::Elb {
            code,
            message: message.into(),
        }
    }
}

/// The IAM and STS error codes Berth returns (the model's `error.code`) and their statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IamCode {
    NoSuchEntity,
    EntityAlreadyExists,
    DeleteConflict,
    LimitExceeded,
    MalformedPolicyDocument,
    InvalidInput,
    PolicyNotAttachable,
    UnmodifiableEntity,
    /// STS (and IAM's parameter checks): `ValidationError`.
    ValidationError,
    PackedPolicyTooLarge,
}

impl IamCode {
    pub fn as_str(self) -> &'static str {
        use IamCode::*;
        match self {
            NoSuchEntity => "NoSuchEntity",
            EntityAlreadyExists => "EntityAlreadyExists",
            DeleteConflict => "DeleteConflict",
            LimitExceeded => "LimitExceeded",
            MalformedPolicyDocument => "MalformedPolicyDocument",
            InvalidInput => "InvalidInput",
            PolicyNotAttachable => "PolicyNotAttachable",
            UnmodifiableEntity => "UnmodifiableEntity",
            ValidationError => "ValidationError",
            PackedPolicyTooLarge => "PackedPolicyTooLarge",
        }
    }

    pub fn status(self) -> u16 {
        use IamCode::*;
        match self {
            NoSuchEntity => 404,
            EntityAlreadyExists | DeleteConflict | LimitExceeded => 409,
            MalformedPolicyDocument
            | InvalidInput
            | PolicyNotAttachable
            | UnmodifiableEntity
            | ValidationError
            | PackedPolicyTooLarge => 400,
        }
    }
}

impl Error {
    /// An IAM or STS error.
    pub fn iam(code: IamCode, message: impl Into<String>) -> Self {
        Error::Iam {
            code,
            message: message.into(),
        }
    }
}
