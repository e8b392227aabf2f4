//! SigV4 authentication: the only place a [`Principal`] is made from a request.

use crate::ApiState;
use berth_aws::sigv4::{self, AuthError, Request as SigRequest};
use berth_types::{Caller, Principal};
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

/// The root key pair (IAM users' keys and temporary credentials are looked up in IAM).
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
}

/// An access key's secret and whose it is (the region is the request's).
struct Resolved {
    secret: String,
    arn: String,
    caller: Caller,
}

/// Who holds access key `akid` (with `session`, the temporary credentials' token), and its
/// secret: root, an active IAM user key, or an unexpired session of a user or role that
/// still exists. `now` is Unix seconds on the server's clock.
fn resolve(
    state: &ApiState,
    akid: &str,
    session: Option<&str>,
    now: i64,
) -> Result<Resolved, AuthError> {
    let scope = state.scope();
    if akid == state.inner.keys.root.access_key_id {
        return Ok(Resolved {
            secret: state.inner.keys.root.secret_access_key.clone(),
            arn: scope.root_arn(),
            caller: Caller::Root,
        });
    }
    let iam = state.iam();
    if let Some(token) = session {
        let claims = session::verify(state.sts_key(), token, now)?;
        if claims.k != akid {
            return Err(AuthError::UnknownAccessKey);
        }
        let secret = session::secret(state.sts_key(), token);
        return match claims.who {
            session::Who::Root => Ok(Resolved {
                secret,
                arn: scope.root_arn(),
                caller: Caller::Root,
            }),
            session::Who::User { name } => {
                let user = iam.user(&name).map_err(|_| AuthError::UnknownAccessKey)?;
                Ok(Resolved {
                    secret,
                    arn: iam.arn("user", &user.path, &user.name),
                    caller: Caller::User {
                        name: user.name,
                        id: user.id,
                    },
                })
            }
            session::Who::Role {
                name,
                session,
                policy,
                policy_arns,
            } => {
                let role = iam.role(&name).map_err(|_| AuthError::UnknownAccessKey)?;
                Ok(Resolved {
                    secret,
                    arn: format!(
                        "arn:aws:sts::{}:assumed-role/{}/{session}",
                        scope.account, role.name
                    ),
                    caller: Caller::Role {
                        arn: iam.arn("role", &role.path, &role.name),
                        name: role.name,
                        id: role.id,
                        session,
                        policy,
                        policy_arns,
                    },
                })
            }
        };
    }
    let owner = iam
        .key_owner(akid)
        .ok()
        .flatten()
        .filter(|o| o.active)
        .ok_or(AuthError::UnknownAccessKey)?;
    Ok(Resolved {
        secret: owner.secret.clone(),
        arn: owner.user_arn.clone(),
        caller: Caller::User {
            name: owner.user.clone(),
            id: owner.user_id.clone(),
        },
    })
}

/// Verifies `req` as a request for the service signed as `signing_name`, in any region (the
/// region signed for is the region the call acts in).
pub fn authenticate(
    state: &ApiState,
    req: &SigRequest<'_>,
    claim: &sigv4::Claim,
    signing_name: &str,
) -> Result<Principal, AuthError> {
    sigv4::check_claim(claim, OffsetDateTime::now_utc(), signing_name, |r| {
        berth_types::Region::parse(r).is_ok()
    })?;
    let who = resolve(
        state,
        &claim.access_key_id,
        claim.security_token.as_deref(),
        state.now(),
    )?;
    let key = state.inner.signing_keys.get(&who.secret, claim);
    sigv4::verify_with_key(req, claim, &key)?;
    if let Caller::User { name, .. } = &who.caller
        && claim.security_token.is_none()
    {
        state.note_key_used(&claim.access_key_id, name, signing_name, &claim.region);
    }
    Ok(Principal {
        account: state.scope().account.clone(),
        region: berth_types::Region::parse(&claim.region)
            .map_err(|_| AuthError::Incomplete("invalid region".into()))?,
        arn: who.arn,
        access_key_id: claim.access_key_id.clone(),
        caller: who.caller,
    })
}

/// Parses and verifies a request's signature for `signing_name` (the claim's own service
/// when `None`): the caller, or why not.
pub fn authenticate_request(
    state: &ApiState,
    req: &SigRequest<'_>,
    signing_name: Option<&str>,
) -> Result<Principal, AuthError> {
    let claim = sigv4::parse(req)?;
    let service = signing_name.unwrap_or(&claim.service).to_string();
    authenticate(state, req, &claim, &service)
}

/// Temporary credentials (`AssumeRole`, `GetSessionToken`): self-contained and verifiable by
/// every server sharing the store's key.
///
/// `token = base64url(JSON claims) "." base64url(HMAC-SHA256(key, body))`; the secret is
/// derived from the token (`HMAC(key, "secret\0" body)`), so nothing is stored per session.
pub mod session {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use berth_aws::sigv4::AuthError;
    use hmac::{Hmac, Mac};
    use serde::{Deserialize, Serialize};
    use sha2::Sha256;

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(tag = "t", rename_all = "lowercase")]
    pub enum Who {
        /// The account's root (`GetSessionToken` with root's keys).
        Root,
        User {
            name: String,
        },
        Role {
            name: String,
            session: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            policy: Option<String>,
            #[serde(default, skip_serializing_if = "Vec::is_empty")]
            policy_arns: Vec<String>,
        },
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Claims {
        /// The access key id (`ASIA…`).
        pub k: String,
        /// Expiry, Unix seconds.
        pub e: i64,
        #[serde(flatten)]
        pub who: Who,
    }

    fn mac(key: &[u8; 32], parts: &[&[u8]]) -> Vec<u8> {
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().to_vec()
    }

    /// New credentials for `who` until `expires`: access key id, secret, session token.
    pub fn issue(key: &[u8; 32], who: Who, expires: i64) -> (String, String, String) {
        let claims = Claims {
            k: berth_control::iam::random_id("ASIA", 16),
            e: expires,
            who,
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("serializable"));
        let token = format!(
            "{body}.{}",
            URL_SAFE_NO_PAD.encode(mac(key, &[body.as_bytes()]))
        );
        let secret = secret(key, &token);
        (claims.k, secret, token)
    }

    /// The secret of the credentials whose token is `token`.
    pub fn secret(key: &[u8; 32], token: &str) -> String {
        let body = token.split_once('.').map_or(token, |t| t.0);
        let mut s = STANDARD.encode(mac(key, &[b"secret\0", body.as_bytes()]));
        s.truncate(40);
        s
    }

    /// The claims of a genuine token, unless it has expired at `now` (Unix seconds).
    pub fn verify(key: &[u8; 32], token: &str, now: i64) -> Result<Claims, AuthError> {
        let (body, sig) = token.split_once('.').ok_or(AuthError::UnknownAccessKey)?;
        let given = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| AuthError::UnknownAccessKey)?;
        let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        m.update(body.as_bytes());
        m.verify_slice(&given)
            .map_err(|_| AuthError::UnknownAccessKey)?;
        let raw = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| AuthError::UnknownAccessKey)?;
        let claims: Claims =
            serde_json::from_slice(&raw).map_err(|_| AuthError::UnknownAccessKey)?;
        if now >= claims.e {
            return Err(AuthError::ExpiredToken);
        }
        Ok(claims)
    }
}

/// ECR authorization tokens: the password half of `AWS:<password>` for `docker login`.
///
/// `password = base64url(JSON {k: access key id, s: session token?, r: region, e: expiry epoch
/// seconds, n: nonce}) "." base64url(HMAC-SHA256)` under a key the servers sharing a store
/// share. No `:` appears in it (the awscli splits on colons). The token carries the identity
/// that asked and the region it was issued in (ECR's tokens are per region: the registry
/// requests it authorizes reach that region's repositories); each registry request checks
/// again that the key is active (or the session unexpired) and whose it is, so a deactivated or
/// deleted key invalidates its tokens at once. A token from before regions (no `r`) is the
/// home region's.
pub mod token {
    use crate::ApiState;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use berth_types::Principal;
    use hmac::{Hmac, Mac};
    use serde::{Deserialize, Serialize};
    use sha2::Sha256;

    /// Tokens last 12 hours, as ECR's do (no longer than the credentials that asked).
    pub const VALIDITY_SECS: i64 = 12 * 3600;

    #[derive(Clone, Serialize, Deserialize)]
    struct Claims {
        k: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        s: Option<String>,
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

    /// A password for `principal` (signing with `session`, if temporary credentials), valid
    /// until `now + VALIDITY_SECS` or `not_after`; returns it and the expiry.
    pub fn issue(
        key: &[u8; 32],
        principal: &Principal,
        session: Option<&str>,
        now: i64,
        not_after: Option<i64>,
    ) -> (String, i64) {
        let expires = (now + VALIDITY_SECS).min(not_after.unwrap_or(i64::MAX));
        let nonce: [u8; 12] = rand::random();
        let claims = Claims {
            k: principal.access_key_id.clone(),
            s: session.map(str::to_string),
            r: Some(principal.region.as_str().to_string()),
            e: expires,
            n: URL_SAFE_NO_PAD.encode(nonce),
        };
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("serializable"));
        let sig = URL_SAFE_NO_PAD.encode(mac(key, &body));
        (format!("{body}.{sig}"), expires)
    }

    /// Passwords already verified, with their claims: a registry client sends the same
    /// password on every request, and checking its HMAC and JSON each time is most of the
    /// cost of a manifest GET. Bounded; past the bound it starts over.
    #[derive(Default)]
    pub struct VerifiedTokens {
        seen: std::sync::Mutex<std::collections::HashMap<String, Claims>>,
    }

    const VERIFIED_TOKENS: usize = 10_000;

    #[derive(Debug, PartialEq, Eq)]
    pub enum TokenError {
        Invalid,
        Expired,
    }

    impl VerifiedTokens {
        /// The principal a password was issued to, if it is genuine and unexpired and its key
        /// still valid (checked on every call). `now`: Unix seconds on the server's clock.
        pub fn verify(
            &self,
            state: &ApiState,
            password: &str,
            now: i64,
        ) -> Result<Principal, TokenError> {
            let hit = self
                .seen
                .lock()
                .expect("token cache")
                .get(password)
                .cloned();
            let claims = match hit {
                Some(c) => c,
                None => {
                    let c = verify(state.token_key(), password)?;
                    let mut seen = self.seen.lock().expect("token cache");
                    if seen.len() >= VERIFIED_TOKENS {
                        seen.clear();
                    }
                    seen.insert(password.to_string(), c.clone());
                    c
                }
            };
            if now >= claims.e {
                return Err(TokenError::Expired);
            }
            let region = match &claims.r {
                Some(r) => berth_types::Region::parse(r).map_err(|_| TokenError::Invalid)?,
                None => state.scope().region.clone(),
            };
            let who = super::resolve(state, &claims.k, claims.s.as_deref(), now)
                .map_err(|_| TokenError::Invalid)?;
            Ok(Principal {
                account: state.scope().account.clone(),
                region,
                arn: who.arn,
                access_key_id: claims.k,
                caller: who.caller,
            })
        }
    }

    /// The claims of a genuine password (expiry not checked).
    fn verify(key: &[u8; 32], password: &str) -> Result<Claims, TokenError> {
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
        serde_json::from_slice(&raw).map_err(|_| TokenError::Invalid)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn passwords_resist_tampering_and_carry_their_expiry() {
            let p = Principal {
                account: berth_types::AccountId::parse("000000000000").unwrap(),
                region: berth_types::Region::parse("us-east-1").unwrap(),
                arn: "arn:aws:iam::000000000000:root".into(),
                access_key_id: "AKIAEXAMPLE000000000".into(),
                caller: berth_types::Caller::Root,
            };
            let (pw, exp) = issue(&[1; 32], &p, None, 1000, None);
            assert_eq!(exp, 1000 + VALIDITY_SECS);
            assert!(!pw.contains(':'));
            let c = verify(&[1; 32], &pw).unwrap();
            assert_eq!((c.k.as_str(), c.e), ("AKIAEXAMPLE000000000", exp));
            assert!(verify(&[2; 32], &pw).is_err());
            assert!(verify(&[1; 32], &pw.replacen('e', "f", 1)).is_err());
            let (_, capped) = issue(&[1; 32], &p, Some("tok"), 1000, Some(2000));
            assert_eq!(capped, 2000, "no longer than the session that asked");
        }
    }
}
