//! SigV4 authentication: the only place a [`Principal`] is made from a request.

use berth_aws::sigv4::{self, AuthError, Request as SigRequest};
use berth_control::Scope;
use berth_types::Principal;
use time::OffsetDateTime;

/// An access key pair.
#[derive(Clone, PartialEq, Eq)]
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

/// Verifies `req` as a request for the service signed as `signing_name`, in any region (the
/// region signed for is the region the call acts in).
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
    sigv4::check_claim(claim, now, signing_name, |r| {
        berth_types::Region::parse(r).is_ok()
    })?;
    sigv4::verify(req, claim, secret)?;
    Ok(Principal {
        account: scope.account.clone(),
        region: berth_types::Region::parse(&claim.region)
            .map_err(|_| AuthError::Incomplete("invalid region".into()))?,
        arn: scope.root_arn(),
        access_key_id: claim.access_key_id.clone(),
    })
}

/// ECR authorization tokens: the password half of `AWS:<password>` for `docker login`.
///
/// `password = base64url(JSON {k: access key id, r: region, e: expiry epoch seconds, n: nonce}) "." base64url(HMAC-SHA256)`
/// under a per-data-directory key. No `:` appears in it (the awscli splits on colons). The
/// token carries the identity that asked and the region it was issued in (ECR's tokens are per
/// region: the registry requests it authorizes reach that region's repositories); each
/// registry request re-checks that the access key still exists. A token from before regions
/// (no `r`) is the home region's.
pub mod token {
    use super::Keys;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use berth_control::Scope;
    use berth_types::Principal;
    use hmac::{Hmac, Mac};
    use serde::{Deserialize, Serialize};
    use sha2::Sha256;

    /// Tokens last 12 hours, as ECR's do.
    pub const VALIDITY_SECS: i64 = 12 * 3600;

    #[derive(Serialize, Deserialize)]
    struct Claims {
        k: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        r: Option<String>,
        e: i64,
        n: String,
    }

    fn mac(key: &[u8; 32], body: &str) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        m.update(body.as_bytes());
        m.finalize().into_bytes().to_vec()
    }

    /// A password for `principal`, valid until `now + VALIDITY_SECS`; returns it and the expiry.
    pub fn issue(key: &[u8; 32], principal: &Principal, now: i64) -> (String, i64) {
        let expires = now + VALIDITY_SECS;
        let nonce: [u8; 12] = rand::random();
        let claims = Claims {
            k: principal.access_key_id.clone(),
            r: Some(principal.region.as_str().to_string()),
            e: expires,
            n: URL_SAFE_NO_PAD.encode(nonce),
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("serializable"));
        let sig = URL_SAFE_NO_PAD.encode(mac(key, &body));
        (format!("{body}.{sig}"), expires)
    }

    /// Passwords already verified, with their principal and expiry: a registry client sends the
    /// same password on every request, and checking its HMAC and JSON each time is most of the
    /// cost of a manifest GET. Bounded; past the bound it starts over.
    #[derive(Default)]
    pub struct VerifiedTokens {
        seen: std::sync::Mutex<std::collections::HashMap<String, (Principal, i64)>>,
    }

    const VERIFIED_TOKENS: usize = 10_000;

    impl VerifiedTokens {
        /// [`verify`] with memory. The access key is re-checked on every call.
        pub fn verify(
            &self,
            key: &[u8; 32],
            scope: &Scope,
            keys: &Keys,
            password: &str,
            now: i64,
        ) -> Result<Principal, TokenError> {
            let hit = self
                .seen
                .lock()
                .expect("token cache")
                .get(password)
                .cloned();
            if let Some((p, expires)) = hit {
                if now >= expires {
                    return Err(TokenError::Expired);
                }
                if keys.secret(&p.access_key_id).is_none() {
                    return Err(TokenError::Invalid);
                }
                return Ok(p);
            }
            let p = verify(key, scope, keys, password, now)?;
            let expires = claims_expiry(password).unwrap_or(now);
            let mut seen = self.seen.lock().expect("token cache");
            if seen.len() >= VERIFIED_TOKENS {
                seen.clear();
            }
            seen.insert(password.to_string(), (p.clone(), expires));
            Ok(p)
        }
    }

    /// The expiry inside a password already verified.
    fn claims_expiry(password: &str) -> Option<i64> {
        let (body, _) = password.split_once('.')?;
        let raw = URL_SAFE_NO_PAD.decode(body).ok()?;
        serde_json::from_slice::<Claims>(&raw).ok().map(|c| c.e)
    }

    #[derive(Debug, PartialEq, Eq)]
    pub enum TokenError {
        Invalid,
        Expired,
    }

    /// The principal a password was issued to, if it is genuine, unexpired and its key exists.
    pub fn verify(
        key: &[u8; 32],
        scope: &Scope,
        keys: &Keys,
        password: &str,
        now: i64,
    ) -> Result<Principal, TokenError> {
        let (body, sig) = password.split_once('.').ok_or(TokenError::Invalid)?;
        let given = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Invalid)?;
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        m.update(body.as_bytes());
        m.verify_slice(&given).map_err(|_| TokenError::Invalid)?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&raw).map_err(|_| TokenError::Invalid)?;
        if now >= claims.e {
            return Err(TokenError::Expired);
        }
        if keys.secret(&claims.k).is_none() {
            return Err(TokenError::Invalid);
        }
        let region = match claims.r {
            Some(r) => berth_types::Region::parse(&r).map_err(|_| TokenError::Invalid)?,
            None => scope.region.clone(),
        };
        Ok(Principal {
            account: scope.account.clone(),
            region,
            arn: scope.root_arn(),
            access_key_id: claims.k,
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use crate::auth::KeyPair;

        #[test]
        fn tokens_verify_until_they_expire_and_resist_tampering() {
            let scope = Scope {
                account: berth_types::AccountId::parse("000000000000").unwrap(),
                region: berth_types::Region::parse("us-east-1").unwrap(),
            };
            let keys = Keys::new(KeyPair {
                access_key_id: "AKIAEXAMPLE000000000".into(),
                secret_access_key: "s".repeat(40),
            });
            let p = crate::root_principal(&scope, &keys);
            let (pw, exp) = issue(&[1; 32], &p, 1000);
            assert_eq!(exp, 1000 + VALIDITY_SECS);
            assert!(!pw.contains(':'));
            assert_eq!(verify(&[1; 32], &scope, &keys, &pw, 1001).unwrap(), p);
            assert_eq!(
                verify(&[1; 32], &scope, &keys, &pw, exp),
                Err(TokenError::Expired)
            );
            assert_eq!(
                verify(&[2; 32], &scope, &keys, &pw, 1001),
                Err(TokenError::Invalid)
            );
            let tampered = pw.replacen('e', "f", 1);
            assert_eq!(
                verify(&[1; 32], &scope, &keys, &tampered, 1001),
                Err(TokenError::Invalid)
            );
        }
    }
}
