//! STS: `GetCallerIdentity` (the first query-protocol operation; `aws sts get-caller-identity`
//! is how users check their profile).

use crate::route::{Cx, StsOp};
use berth_types::Error;
use serde_json::{Value, json};

/// Runs one STS operation.
pub fn dispatch(cx: &Cx<'_>, op: StsOp) -> Result<Value, Error> {
    match op {
        StsOp::GetCallerIdentity => Ok(json!({
            "Account": cx.principal.account.as_str(),
            "Arn": cx.principal.arn,
            "UserId": cx.principal.account.as_str(),
        })),
    }
}
