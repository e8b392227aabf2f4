//! The error a request check returns: an AWS wire error code (as the CloudWatch model spells
//! it) and the message. `metric` (PutMetricData) and `retention` (GetMetricStatistics /
//! GetMetricData windows) produce it; the API layer renders it into the protocol's error
//! envelope. Nothing here knows about HTTP bodies.

use std::fmt;

/// The AWS error codes the checks in this crate can produce (wire codes from the model's
/// `error.code`, not the shape names: `InvalidParameterValueException` is
/// `InvalidParameterValue` on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `InvalidParameterValueException`, HTTP 400.
    InvalidParameterValue,
    /// `InvalidParameterCombinationException`, HTTP 400.
    InvalidParameterCombination,
    /// `MissingRequiredParameterException`, HTTP 400.
    MissingParameter,
    /// The generic `ValidationError` (GetMetricData, PutMetricAlarm), HTTP 400.
    ValidationError,
}

impl ErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidParameterValue => "InvalidParameterValue",
            ErrorCode::InvalidParameterCombination => "InvalidParameterCombination",
            ErrorCode::MissingParameter => "MissingParameter",
            ErrorCode::ValidationError => "ValidationError",
        }
    }

    /// The HTTP status AWS answers with (all of these are client faults).
    pub fn http_status(self) -> u16 {
        400
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused request: AWS's error code and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct InputError {
    pub code: ErrorCode,
    pub message: String,
}

impl InputError {
    pub(crate) fn value(message: impl Into<String>) -> Self {
        InputError {
            code: ErrorCode::InvalidParameterValue,
            message: message.into(),
        }
    }

    pub(crate) fn combination(message: impl Into<String>) -> Self {
        InputError {
            code: ErrorCode::InvalidParameterCombination,
            message: message.into(),
        }
    }

    pub(crate) fn missing(message: impl Into<String>) -> Self {
        InputError {
            code: ErrorCode::MissingParameter,
            message: message.into(),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        InputError {
            code: ErrorCode::ValidationError,
            message: message.into(),
        }
    }
}
