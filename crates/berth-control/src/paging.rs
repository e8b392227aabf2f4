//! Opaque, tamper-evident pagination tokens.
//!
//! A token is `base64url(mac[..12] || scope || 0x00 || last_key)`, where `scope` names the
//! listing and its filters. A token from another listing, another filter, another server or
//! edited by hand fails the MAC and is rejected with the service's invalid-parameter error.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use berth_types::Error;
use hmac::{Hmac, Mac};
use sha2::Sha256;

#[derive(Clone)]
pub struct Pager {
    key: [u8; 32],
}

const MAC_LEN: usize = 12;

impl Pager {
    pub fn new(key: [u8; 32]) -> Self {
        Pager { key }
    }

    fn mac(&self, body: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut out = [0; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    pub fn encode(&self, scope: &str, last_key: &str) -> String {
        let mut body = Vec::with_capacity(scope.len() + last_key.len() + 1);
        body.extend_from_slice(scope.as_bytes());
        body.push(0);
        body.extend_from_slice(last_key.as_bytes());
        let mut token = self.mac(&body).to_vec();
        token.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(token)
    }

    /// The last key of the previous page, if `token` was issued for `scope`.
    pub fn decode(&self, scope: &str, token: &str) -> Result<String, Error> {
        let invalid = || Error::InvalidParameter("Invalid nextToken.".into());
        let raw = URL_SAFE_NO_PAD.decode(token).map_err(|_| invalid())?;
        if raw.len() < MAC_LEN {
            return Err(invalid());
        }
        let (mac, body) = raw.split_at(MAC_LEN);
        let expected = self.mac(body);
        let diff = mac.iter().zip(expected).fold(0u8, |a, (x, y)| a | (x ^ y));
        if diff != 0 {
            return Err(invalid());
        }
        let sep = body.iter().position(|b| *b == 0).ok_or_else(invalid)?;
        if &body[..sep] != scope.as_bytes() {
            return Err(invalid());
        }
        String::from_utf8(body[sep + 1..].to_vec()).map_err(|_| invalid())
    }
}

impl Pager {
    /// One page of at most `max` of `items` (a listing made whole on every call), after the
    /// position `token` carries; the token of the next page, if any. `None` for a token not
    /// issued for `scope` (the caller answers its service's error).
    pub fn offset_page<T: Clone>(
        &self,
        scope: &str,
        items: &[T],
        max: usize,
        token: Option<&str>,
    ) -> Option<(Vec<T>, Option<String>)> {
        let skip = match token {
            Some(t) => self.decode(scope, t).ok()?.parse::<usize>().ok()?,
            None => 0,
        };
        let out: Vec<T> = items.iter().skip(skip).take(max).cloned().collect();
        let next = (skip + out.len() < items.len())
            .then(|| self.encode(scope, &(skip + out.len()).to_string()));
        Some((out, next))
    }
}

/// A request for one page: the caller's `maxResults` (already range-checked) and token.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub max_results: Option<i32>,
    pub next_token: Option<String>,
}

/// One page of results and the token for the next one (absent on the last page).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_tokens_round_trip_and_reject_tampering() {
        let p = Pager::new([7; 32]);
        let t = p.encode("ListClusters", "abc");
        assert_eq!(p.decode("ListClusters", &t).unwrap(), "abc");
        assert!(p.decode("ListTaskDefinitions", &t).is_err());
        assert!(Pager::new([8; 32]).decode("ListClusters", &t).is_err());
        let mut raw = URL_SAFE_NO_PAD.decode(&t).unwrap();
        *raw.last_mut().unwrap() = b'x';
        assert!(
            p.decode("ListClusters", &URL_SAFE_NO_PAD.encode(raw))
                .is_err()
        );
        assert!(p.decode("ListClusters", "not a token").is_err());
    }
}
