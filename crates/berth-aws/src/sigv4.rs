//! AWS Signature Version 4: pure signature math and server-side verification.
//!
//! `berth-api` calls [`parse`] on every request (the credential scope can pick the service),
//! then [`verify`] with the secret found for the access key. Nothing here does I/O or reads
//! the clock: the caller passes `now`. spec/protocols.md §9 is the reference.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use time::{Duration, OffsetDateTime};

use crate::timestamp::{format_amz_date, parse_amz_date};

type HmacSha256 = Hmac<Sha256>;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a request's timestamp may be from the server clock.
pub const MAX_SKEW: Duration = Duration::minutes(5);

/// Why a request's authentication failed. `berth-api` maps each to the protocol's error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    #[error("The security token included in the request is expired")]
    ExpiredToken,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    SignatureMismatch,
    /// Clock skew, an expired presigned URL, or a credential scope that does not fit.
    #[error("{0}")]
    Rejected(String),
}

/// The parts of a request that its signature covers.
pub struct Request<'a> {
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub headers: &'a http::HeaderMap,
    /// Lower-case hex SHA-256 of the body bytes as received.
    pub payload_sha256: &'a str,
}

/// What the `Authorization` header (or the presigned query) claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub access_key_id: String,
    /// `yyyymmdd` from the scope.
    pub scope_date: String,
    pub region: String,
    pub service: String,
    pub terminator: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// `X-Amz-Date` (or `Date`) of the request.
    pub amz_date: String,
    /// `X-Amz-Expires` of a presigned URL.
    pub expires: Option<i64>,
    pub presigned: bool,
    /// `X-Amz-Security-Token` (header or presigned query): temporary credentials' session.
    pub security_token: Option<String>,
}

impl Claim {
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.scope_date, self.region, self.service, self.terminator
        )
    }
}

fn query_pairs(query: Option<&str>) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Reads the claim from the `Authorization` header or from a presigned query string.
pub fn parse(req: &Request<'_>) -> Result<Claim, AuthError> {
    if let Some(auth) = req.headers.get(http::header::AUTHORIZATION) {
        let auth = auth
            .to_str()
            .map_err(|_| AuthError::Incomplete("Authorization header is not ASCII".into()))?;
        return parse_header(auth, req.headers);
    }
    let pairs = query_pairs(req.query);
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
    };
    let Some(algorithm) = get("X-Amz-Algorithm") else {
        return Err(AuthError::Missing);
    };
    if algorithm != ALGORITHM {
        return Err(AuthError::Incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'"
        )));
    }
    let missing = |name: &str| {
        AuthError::Incomplete(format!(
            "AWS query-string parameters must include '{name}'. Re-examine the query-string parameters."
        ))
    };
    let credential = get("X-Amz-Credential").ok_or_else(|| missing("X-Amz-Credential"))?;
    let amz_date = get("X-Amz-Date").ok_or_else(|| missing("X-Amz-Date"))?;
    let signed = get("X-Amz-SignedHeaders").ok_or_else(|| missing("X-Amz-SignedHeaders"))?;
    let signature = get("X-Amz-Signature").ok_or_else(|| missing("X-Amz-Signature"))?;
    let expires = get("X-Amz-Expires")
        .ok_or_else(|| missing("X-Amz-Expires"))?
        .parse::<i64>()
        .ok()
        .filter(|e| (1..=604_800).contains(e))
        .ok_or_else(|| {
            AuthError::Incomplete("X-Amz-Expires must be between 1 and 604800 seconds".into())
        })?;
    let mut claim = claim_from_parts(&credential, &signed, &signature, amz_date)?;
    claim.expires = Some(expires);
    claim.presigned = true;
    claim.security_token = get("X-Amz-Security-Token");
    Ok(claim)
}

fn parse_header(auth: &str, headers: &http::HeaderMap) -> Result<Claim, AuthError> {
    let Some((algorithm, rest)) = auth.trim().split_once(' ') else {
        return Err(AuthError::Incomplete(format!(
            "Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization={auth}"
        )));
    };
    if algorithm != ALGORITHM {
        return Err(AuthError::Incomplete(format!(
            "Unsupported AWS 'algorithm': '{algorithm}'"
        )));
    }
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((k, v)) = part.trim().split_once('=') else {
            continue;
        };
        match k.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for (name, value) in [
        ("Credential", credential),
        ("Signature", signature),
        ("SignedHeaders", signed),
    ] {
        if value.is_none() {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    let amz_date = headers
        .get("x-amz-date")
        .or_else(|| headers.get(http::header::DATE))
        .and_then(|v| v.to_str().ok());
    if amz_date.is_none() {
        missing.push(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
                .into(),
        );
    }
    if !missing.is_empty() {
        return Err(AuthError::Incomplete(format!(
            "{} Authorization={auth}",
            missing.join(" ")
        )));
    }
    let mut claim = claim_from_parts(
        credential.unwrap_or_default(),
        signed.unwrap_or_default(),
        signature.unwrap_or_default(),
        amz_date.unwrap_or_default().to_string(),
    )?;
    claim.security_token = headers
        .get("x-amz-security-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok(claim)
}

fn claim_from_parts(
    credential: &str,
    signed_headers: &str,
    signature: &str,
    amz_date: String,
) -> Result<Claim, AuthError> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [akid, date, region, service, terminator] = parts[..] else {
        return Err(AuthError::Incomplete(format!(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '{credential}'"
        )));
    };
    Ok(Claim {
        access_key_id: akid.to_string(),
        scope_date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        terminator: terminator.to_string(),
        signed_headers: signed_headers
            .split(';')
            .map(str::to_ascii_lowercase)
            .collect(),
        signature: signature.to_ascii_lowercase(),
        amz_date,
        expires: None,
        presigned: false,
        security_token: None,
    })
}

/// Checks everything about `claim` except the secret: scope, clock, required signed headers.
/// `expected_service` is the signing name of the service the request was routed to;
/// `region_ok` says whether a region is served here.
pub fn check_claim(
    claim: &Claim,
    now: OffsetDateTime,
    expected_service: &str,
    region_ok: impl Fn(&str) -> bool,
) -> Result<OffsetDateTime, AuthError> {
    let Some(date) = parse_amz_date(&claim.amz_date) else {
        return Err(AuthError::Incomplete(format!(
            "Date must be in ISO-8601 'basic format'. Got '{}'. See http://en.wikipedia.org/wiki/ISO_8601",
            claim.amz_date
        )));
    };
    if !claim.signed_headers.iter().any(|h| h == "host") {
        return Err(AuthError::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    if claim.amz_date.get(..8) != Some(claim.scope_date.as_str()) {
        return Err(AuthError::Rejected(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            claim.scope_date,
            claim.amz_date.get(..8).unwrap_or(""),
            claim.amz_date
        )));
    }
    if !region_ok(&claim.region) {
        return Err(AuthError::Rejected(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            claim.region
        )));
    }
    if claim.service != expected_service {
        return Err(AuthError::Rejected(format!(
            "Credential should be scoped to correct service: '{expected_service}'. "
        )));
    }
    if claim.terminator != "aws4_request" {
        return Err(AuthError::Rejected(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '"
                .to_string()
                + &claim.terminator
                + "'. ",
        ));
    }
    if let Some(expires) = claim.expires {
        if now > date + Duration::seconds(expires) {
            return Err(AuthError::Rejected("Request has expired".into()));
        }
        if date > now + MAX_SKEW {
            return Err(AuthError::Rejected("Request is not yet valid".into()));
        }
    } else if date < now - MAX_SKEW {
        return Err(AuthError::Rejected(format!(
            "Signature expired: {} is now earlier than {} ({} - 5 min.)",
            claim.amz_date,
            format_amz_date(now - MAX_SKEW),
            format_amz_date(now)
        )));
    } else if date > now + MAX_SKEW {
        return Err(AuthError::Rejected(format!(
            "Signature not yet current: {} is still later than {} ({} + 5 min.)",
            claim.amz_date,
            format_amz_date(now + MAX_SKEW),
            format_amz_date(now)
        )));
    }
    Ok(date)
}

/// Verifies the signature of `req` against `claim`, with the secret of its access key.
pub fn verify(req: &Request<'_>, claim: &Claim, secret: &str) -> Result<(), AuthError> {
    let key = signing_key(secret, &claim.scope_date, &claim.region, &claim.service);
    verify_with_key(req, claim, &key)
}

/// As [`verify`], with the claim's derived signing key (see [`SigningKeys`]).
pub fn verify_with_key(req: &Request<'_>, claim: &Claim, key: &[u8; 32]) -> Result<(), AuthError> {
    let canonical = canonical_request(req, claim)?;
    let expected = signature_with_key(key, claim, &canonical);
    let (a, b) = (expected.as_bytes(), claim.signature.as_bytes());
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    if a.len() == b.len() && diff == 0 {
        Ok(())
    } else {
        Err(AuthError::SignatureMismatch)
    }
}

/// Builds the canonical request (step 5 of the spec).
pub fn canonical_request(req: &Request<'_>, claim: &Claim) -> Result<String, AuthError> {
    let mut out = String::with_capacity(256);
    out.push_str(req.method);
    out.push('\n');
    out.push_str(&canonical_uri(req.path));
    out.push('\n');
    let mut pairs: Vec<(String, String)> = query_pairs(req.query)
        .into_iter()
        .filter(|(k, _)| !(claim.presigned && k == "X-Amz-Signature"))
        .map(|(k, v)| (uri_encode(&k, true), uri_encode(&v, true)))
        .collect();
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out.push('\n');
    for name in &claim.signed_headers {
        let mut values = req.headers.get_all(name.as_str()).iter().peekable();
        if values.peek().is_none() {
            return Err(AuthError::SignatureMismatch);
        }
        out.push_str(name);
        out.push(':');
        for (i, v) in values.enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_trimmed(&mut out, &String::from_utf8_lossy(v.as_bytes()));
        }
        out.push('\n');
    }
    out.push('\n');
    for (i, name) in claim.signed_headers.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(req.payload_sha256);
    Ok(out)
}

/// A header value as the canonical request has it: trimmed, each run of whitespace one space.
fn push_trimmed(out: &mut String, value: &str) {
    for (i, word) in value.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
}

/// Client side: the `x-amz-date` and `authorization` headers that sign a request with
/// `headers` (which must include `host`) and `body`, every given header signed.
pub struct SigningKey<'a> {
    pub access_key_id: &'a str,
    pub secret: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

pub fn sign_request(
    key: &SigningKey<'_>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    now: OffsetDateTime,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(now);
    let mut map = http::HeaderMap::new();
    let mut names: Vec<String> = Vec::new();
    for (k, v) in headers
        .iter()
        .copied()
        .chain([("x-amz-date", amz_date.as_str())])
    {
        let name = k.to_ascii_lowercase();
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_str(v),
        ) {
            map.append(n, v);
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names.sort();
    let claim = Claim {
        access_key_id: key.access_key_id.to_string(),
        scope_date: amz_date[..8].to_string(),
        region: key.region.to_string(),
        service: key.service.to_string(),
        terminator: "aws4_request".into(),
        signed_headers: names,
        signature: String::new(),
        amz_date: amz_date.clone(),
        expires: None,
        presigned: false,
        security_token: None,
    };
    let payload = sha256_hex(body);
    let req = Request {
        method,
        path,
        query: None,
        headers: &map,
        payload_sha256: &payload,
    };
    let canonical = canonical_request(&req, &claim).expect("every signed header is present");
    let sig = signature(key.secret, &claim, &canonical);
    vec![
        ("x-amz-date".into(), amz_date),
        (
            "authorization".into(),
            format!(
                "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={sig}",
                key.access_key_id,
                claim.scope(),
                claim.signed_headers.join(";")
            ),
        ),
    ]
}

/// The signature of a canonical request: string-to-sign, derived key, HMAC.
pub fn signature(secret: &str, claim: &Claim, canonical_request: &str) -> String {
    let key = signing_key(secret, &claim.scope_date, &claim.region, &claim.service);
    signature_with_key(&key, claim, canonical_request)
}

fn signature_with_key(key: &[u8; 32], claim: &Claim, canonical_request: &str) -> String {
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{}\n{}",
        claim.amz_date,
        claim.scope(),
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    hex::encode(hmac(key, string_to_sign.as_bytes()))
}

/// Derived signing keys by secret and scope: a key serves every request of its day, region
/// and service, and deriving it is four HMACs. Bounded; past the bound it starts over.
#[derive(Default)]
pub struct SigningKeys {
    keys: std::sync::Mutex<std::collections::HashMap<String, [u8; 32]>>,
}

impl SigningKeys {
    const LIMIT: usize = 10_000;

    /// The signing key of `claim`'s scope for `secret`.
    pub fn get(&self, secret: &str, claim: &Claim) -> [u8; 32] {
        let id = format!(
            "{}\n{}\n{}\n{secret}",
            claim.scope_date, claim.region, claim.service
        );
        if let Some(k) = self.keys.lock().expect("signing keys").get(&id) {
            return *k;
        }
        let k = signing_key(secret, &claim.scope_date, &claim.region, &claim.service);
        let mut keys = self.keys.lock().expect("signing keys");
        if keys.len() >= Self::LIMIT {
            keys.clear();
        }
        keys.insert(id, k);
        k
    }
}

pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Lower-case hex SHA-256.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The canonical URI of a non-S3 service: normalized, each segment encoded once more.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::new();
    for s in &segments {
        out.push('/');
        out.push_str(&uri_encode(s, true));
    }
    if out.is_empty() || (path.ends_with('/') && !segments.is_empty()) {
        out.push('/');
    }
    out
}

/// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, the rest `%XX`.
pub fn uri_encode(s: &str, encode_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b'/' if !encode_slash => out.push('/'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Decodes `%XX` escapes; `+` stays a plus (SigV4 clients encode spaces as `%20`).
pub fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains('%') {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    /// The known-answer vector of spec/protocols.md §9 (checked against botocore).
    #[test]
    fn sigv4_known_answer_header_auth() {
        let h = headers(&[
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "ecs.us-east-1.amazonaws.com"),
            ("x-amz-date", "20250102T030405Z"),
            (
                "x-amz-target",
                "AmazonEC2ContainerServiceV20141113.ListClusters",
            ),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250102/us-east-1/ecs/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=53224caf56d9c9bec64deb664d3007000631f57ca64c4d98350f4f59afc6bc63",
            ),
        ]);
        let body_hash = sha256_hex(b"{}");
        assert_eq!(
            body_hash,
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let req = Request {
            method: "POST",
            path: "/",
            query: None,
            headers: &h,
            payload_sha256: &body_hash,
        };
        let claim = parse(&req).unwrap();
        assert_eq!(claim.scope(), "20250102/us-east-1/ecs/aws4_request");
        assert_eq!(
            hex::encode(signing_key(SECRET, "20250102", "us-east-1", "ecs")),
            "202254a8172a0d6e64e2ead3c93dfdc336abc2de41620a58a28cfa26890e7e62"
        );
        let canonical = canonical_request(&req, &claim).unwrap();
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "479faf1b2093b5211297a75364ce20ba3213d682375e6ef99434b58d08d4794c"
        );
        verify(&req, &claim, SECRET).unwrap();
        let now = parse_amz_date("20250102T030700Z").unwrap();
        check_claim(&claim, now, "ecs", |r| r == "us-east-1").unwrap();
        assert_eq!(
            verify(&req, &claim, "wrong").unwrap_err(),
            AuthError::SignatureMismatch
        );
        let tampered = sha256_hex(b"{ }");
        let req2 = Request {
            payload_sha256: &tampered,
            ..req
        };
        assert_eq!(
            verify(&req2, &claim, SECRET).unwrap_err(),
            AuthError::SignatureMismatch
        );
    }

    /// Header values are trimmed and their whitespace runs folded; repeated headers are
    /// joined with commas (AWS's `get-header-value-multiline`-style cases); the cached
    /// signing key is the derived one.
    #[test]
    fn canonical_headers_fold_whitespace_and_join_repeats() {
        let h = headers(&[
            ("host", "example.amazonaws.com"),
            ("my-header1", "  value1   with \t  spaces "),
            ("my-header2", "a"),
            ("my-header2", " b  c"),
            ("x-amz-date", "20150830T123600Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;my-header1;my-header2;x-amz-date, Signature=00",
            ),
        ]);
        let empty = sha256_hex(b"");
        let req = Request {
            method: "GET",
            path: "/",
            query: None,
            headers: &h,
            payload_sha256: &empty,
        };
        let claim = parse(&req).unwrap();
        assert_eq!(
            canonical_request(&req, &claim).unwrap(),
            format!(
                "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1 with spaces\nmy-header2:a,b c\nx-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n{empty}"
            )
        );
        let keys = SigningKeys::default();
        let derived = signing_key(SECRET, "20150830", "us-east-1", "service");
        assert_eq!(keys.get(SECRET, &claim), derived);
        assert_eq!(keys.get(SECRET, &claim), derived, "from the cache");
        assert_ne!(keys.get("another secret", &claim), derived);
    }

    #[test]
    fn sigv4_known_answer_presigned() {
        let h = headers(&[("host", "sts.us-east-1.amazonaws.com")]);
        let q = "Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20250102%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20250102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=fa5211602207ffb6315e09f65e2991583ad6e7f1236eab3ad5e76a380f38da8b";
        let empty = sha256_hex(b"");
        let req = Request {
            method: "GET",
            path: "/",
            query: Some(q),
            headers: &h,
            payload_sha256: &empty,
        };
        let claim = parse(&req).unwrap();
        assert!(claim.presigned);
        verify(&req, &claim, SECRET).unwrap();
        let in_time = parse_amz_date("20250102T030500Z").unwrap();
        check_claim(&claim, in_time, "sts", |_| true).unwrap();
        let late = parse_amz_date("20250102T030506Z").unwrap();
        assert_eq!(
            check_claim(&claim, late, "sts", |_| true).unwrap_err(),
            AuthError::Rejected("Request has expired".into())
        );
    }

    #[test]
    fn sigv4_claims_are_checked_against_scope_and_clock() {
        let h = headers(&[
            ("host", "x"),
            ("x-amz-date", "20250102T030405Z"),
            (
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AK/20250102/us-east-1/ecs/aws4_request,SignedHeaders=host;x-amz-date,Signature=00",
            ),
        ]);
        let req = Request {
            method: "POST",
            path: "/",
            query: None,
            headers: &h,
            payload_sha256: "",
        };
        let claim = parse(&req).unwrap();
        let now = parse_amz_date("20250102T031500Z").unwrap();
        let err = check_claim(&claim, now, "ecs", |_| true).unwrap_err();
        assert_eq!(
            err,
            AuthError::Rejected("Signature expired: 20250102T030405Z is now earlier than 20250102T031000Z (20250102T031500Z - 5 min.)".into())
        );
        let now = parse_amz_date("20250102T025000Z").unwrap();
        let err = check_claim(&claim, now, "ecs", |_| true).unwrap_err();
        assert!(
            matches!(err, AuthError::Rejected(m) if m.starts_with("Signature not yet current"))
        );
        let now = parse_amz_date("20250102T030405Z").unwrap();
        let err = check_claim(&claim, now, "ecr", |_| true).unwrap_err();
        assert_eq!(
            err,
            AuthError::Rejected("Credential should be scoped to correct service: 'ecr'. ".into())
        );
        let err = check_claim(&claim, now, "ecs", |r| r == "eu-west-1").unwrap_err();
        assert!(matches!(err, AuthError::Rejected(m) if m.contains("valid region")));
    }

    #[test]
    fn sigv4_malformed_headers_are_incomplete() {
        for auth in [
            "AWS4-HMAC-SHA256 Credential=AK/20250102/us-east-1/ecs/aws4_request",
            "AWS4-HMAC-SHA256",
            "AWS4-ECDSA-P256-SHA256 Credential=a, SignedHeaders=host, Signature=00",
            "AWS4-HMAC-SHA256 Credential=AK/20250102/ecs, SignedHeaders=host, Signature=00",
        ] {
            let h = headers(&[("authorization", auth), ("x-amz-date", "20250102T030405Z")]);
            let req = Request {
                method: "POST",
                path: "/",
                query: None,
                headers: &h,
                payload_sha256: "",
            };
            assert!(
                matches!(parse(&req), Err(AuthError::Incomplete(_))),
                "{auth}"
            );
        }
        let h = headers(&[]);
        let req = Request {
            method: "POST",
            path: "/",
            query: None,
            headers: &h,
            payload_sha256: "",
        };
        assert_eq!(parse(&req).unwrap_err(), AuthError::Missing);
    }

    #[test]
    fn sigv4_client_signatures_verify() {
        let key = SigningKey {
            access_key_id: "AKIDEXAMPLE",
            secret: SECRET,
            region: "us-east-1",
            service: "ecs",
        };
        let now = parse_amz_date("20250102T030405Z").unwrap();
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("host", "ecs.us-east-1.amazonaws.com"),
            (
                "x-amz-target",
                "AmazonEC2ContainerServiceV20141113.ListClusters",
            ),
        ];
        let added = sign_request(&key, "POST", "/", &headers, b"{}", now);
        let auth = &added[1].1;
        assert!(
            auth.ends_with(
                "Signature=53224caf56d9c9bec64deb664d3007000631f57ca64c4d98350f4f59afc6bc63"
            ),
            "{auth}"
        );
    }

    #[test]
    fn canonical_uri_and_encoding() {
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a/./b/../c//d"), "/a/c/d");
        assert_eq!(canonical_uri("/a%2Fb"), "/a%252Fb");
        assert_eq!(uri_encode("a b+c~", true), "a%20b%2Bc~");
        assert_eq!(percent_decode("a%2Fb%"), "a/b%");
    }
}
