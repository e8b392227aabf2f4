//! `berth-aws`: the AWS wire layer, shared by every service Berth serves.
//!
//! * [`model`]: botocore's service models (vendored, documentation stripped, embedded at
//!   compile time) — the source of truth for operation names, shapes and error codes.
//! * [`validate`]: checks a decoded JSON request against its input shape (types, required
//!   members, enums, lengths, ranges) the way AWS's front ends do.
//! * [`query`]: the awsQuery codec (flattened form parameters in, XML out).
//! * [`cbor`]: the Smithy RPC v2 CBOR codec (CloudWatch from current aws-sdk-rust).
//! * [`sigv4`]: Signature Version 4 math and request verification (pure; key lookup is a trait).
//! * [`timestamp`]: the wire timestamp formats.
//!
//! Called by `berth-api` only. Knows nothing of ECS or storage; never does I/O.

pub mod cbor;
pub mod model;
pub mod query;
pub mod sigv4;
pub mod timestamp;
pub mod validate;

pub use model::{Protocol, Service};
