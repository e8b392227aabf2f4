//! `berth-iam`: IAM policy documents and their evaluation, pure (no I/O, no clock: the
//! caller puts `aws:CurrentTime` and the rest in the [`Context`]).
//!
//! * [`Policy::parse`] checks a document as IAM does ([`Malformed`] carries IAM's message) for
//!   its use ([`Kind`]: identity, resource, trust).
//! * [`evaluate`] decides a [`Request`] under the [`Policies`] that bear on it, exactly as
//!   spec/iam.md §4 says for one account: root may do anything, an explicit deny wins, else an
//!   identity or resource policy must allow, within a permissions boundary and session
//!   policies; the [`Outcome`] lists the statements that matched (what
//!   `SimulatePrincipalPolicy` reports) and words the denial as AWS does.
//! * Matching: `Action`/`NotAction` case-insensitive with `*` and `?`; `Resource`/`NotResource`
//!   ARNs component by component (`wildcard.rs`); policy variables (`vars.rs`); `Condition`
//!   operators with `…IfExists`, `ForAnyValue:` and `ForAllValues:` (`condition.rs`).
//! * [`AWS_MANAGED`]: the AWS-managed policies users attach by ARN, with AWS's documents.

mod condition;
mod context;
mod eval;
mod managed;
mod policy;
mod vars;
mod wildcard;

pub use condition::{Condition, Operator, Quantifier};
pub use context::Context;
pub use eval::{
    Decision, Matched, Outcome, Policies, Principal, PrincipalKind, Request, Source, evaluate,
};
pub use managed::{AWS_MANAGED, AwsManaged, aws_managed};
pub use policy::{
    Effect, Kind, Malformed, Policy, PrincipalPattern, ResourcePattern, Set, Statement, Version,
};

#[cfg(test)]
mod tests;
