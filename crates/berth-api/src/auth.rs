//! SigV4 authentication: the only place a [`Principal`] is made from a request.

use berth_aws::sigv4::{self, AuthError, Request as SigRequest};
use berth_control::Scope;
use berth_types::Principal;
use time::OffsetDateTime;

/// An access key pair.
#[derive(Clone)]
pub struct KeyPair {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .finish()
    }
}

/// The keys the server accepts. Today: the root key pair; IAM users' keys come with IAM.
#[derive(Clone, Debug)]
pub struct Keys {
    root: KeyPair,
}

impl Keys {
    pub fn new(root: KeyPair) -> Self {
        Keys { root }
    }

    pub fn root_access_key_id(&self) -> &str {
        &self.root.access_key_id
    }

    fn secret(&self, access_key_id: &str) -> Option<&str> {
        (access_key_id == self.root.access_key_id).then_some(self.root.secret_access_key.as_str())
    }
}

/// Verifies `req` as a request for the service signed as `signing_name`.
pub fn authenticate(
    scope: &Scope,
    keys: &Keys,
    req: &SigRequest<'_>,
    claim: &sigv4::Claim,
    signing_name: &str,
    now: OffsetDateTime,
) -> Result<Principal, AuthError> {
    let secret = keys
        .secret(&claim.access_key_id)
        .ok_or(AuthError::UnknownAccessKey)?;
    sigv4::check_claim(claim, now, signing_name, |r| r == scope.region.as_str())?;
    sigv4::verify(req, claim, secret)?;
    Ok(Principal {
        account: scope.account.clone(),
        arn: scope.root_arn(),
        access_key_id: claim.access_key_id.clone(),
    })
}
