//! STS: `GetCallerIdentity` (the first query-protocol operation; `aws sts get-caller-identity`
//! is how users check their profile).

use crate::ApiState;
use berth_types::{Error, Principal};
use serde_json::{Value, json};

pub fn call(_state: &ApiState, principal: &Principal, operation: &str) -> Result<Value, Error> {
    match operation {
        "GetCallerIdentity" => Ok(json!({
            "Account": principal.account.as_str(),
            "Arn": principal.arn,
            "UserId": principal.account.as_str(),
        })),
        other => Err(Error::NotImplemented(format!(
            "Berth does not implement sts:{other} yet."
        ))),
    }
}
