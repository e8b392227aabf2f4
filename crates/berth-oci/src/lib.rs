//! `berth-oci`: a client of the OCI distribution API (`/v2/`) of another registry — any CNCF
//! distribution, Docker Hub, quay.io, ghcr.io, ECR, or another Berth. The registry uses it to
//! copy images out (replication to another Berth deployment) and in (the pull-through cache).
//!
//! What it does: manifests (GET, HEAD, PUT, with the `Accept` list every image type needs),
//! blobs (HEAD, a streamed GET that follows redirects, a streamed monolithic upload: `POST`
//! then one `PUT ?digest=`), and the registries' ways to authenticate:
//! * none, or HTTP Basic with a user name and password;
//! * token auth (`401` + `WWW-Authenticate: Bearer realm=…,service=…,scope=…`): a token is
//!   fetched from the realm (with the Basic credentials, if any) per scope and kept;
//! * ECR (another Berth, or ECR itself): `GetAuthorizationToken`, SigV4-signed with an access
//!   key for a region, gives the Basic credentials (`AWS:<password>`, valid 12 hours); a `401`
//!   fetches a new one.
//!
//! Who calls it: `berth-api` (the replication task, the pull-through cache). It knows nothing
//! of Berth's store or domain; errors say what the other registry answered
//! ([`OciError::retryable`] tells a passing failure from a lasting one).

use base64::Engine;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Blob content on its way.
pub type ByteStream = BoxStream<'static, Result<Bytes, OciError>>;

/// Every manifest media type a client accepts (docker v2 and lists, OCI manifests and indexes,
/// docker schema 1).
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.v1+prettyjws, \
     application/vnd.docker.distribution.manifest.v1+json";

/// How long a request other than a blob transfer may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to the other registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct OciError {
    /// The HTTP status, when the registry answered.
    pub status: Option<u16>,
    /// The first `errors[].code` of its answer, if any.
    pub code: Option<String>,
    pub message: String,
}

impl OciError {
    fn transport(base: &str, e: reqwest::Error) -> OciError {
        OciError {
            status: None,
            code: None,
            message: format!("{base} could not be reached: {e}"),
        }
    }

    fn local(message: impl Into<String>) -> OciError {
        OciError {
            status: None,
            code: None,
            message: message.into(),
        }
    }

    /// Worth trying again later: no answer, a server error, throttling.
    pub fn retryable(&self) -> bool {
        match self.status {
            None => true,
            Some(s) => s >= 500 || s == 429 || s == 408,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status == Some(404)
    }

    /// The registry refused the credentials or the access.
    pub fn is_denied(&self) -> bool {
        matches!(self.status, Some(401 | 403))
    }
}

/// How to authenticate to the registry.
#[derive(Clone)]
pub enum Credentials {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// ECR's `GetAuthorizationToken` at the registry's endpoint, signed for `region`.
    Ecr {
        access_key_id: String,
        secret_access_key: String,
        region: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username})"),
            Credentials::Ecr {
                access_key_id,
                region,
                ..
            } => write!(f, "Ecr({access_key_id}, {region})"),
        }
    }
}

/// A manifest as the registry served it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    pub bytes: Bytes,
}

#[derive(Default)]
struct AuthState {
    /// ECR's Basic credentials and when to fetch new ones.
    ecr: Option<(String, Instant)>,
    /// Bearer tokens by scope (`repository:<name>:pull`).
    bearer: HashMap<String, String>,
}

/// A client of one registry.
pub struct Client {
    http: reqwest::Client,
    base: String,
    host: String,
    credentials: Credentials,
    headers: Vec<(String, String)>,
    auth: tokio::sync::Mutex<AuthState>,
}

/// `sha256:<hex>` of `bytes`.
pub fn digest_of(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

/// `https://host` for a bare `host[:port]`, or the URL as given (without a trailing `/`).
pub fn base_url(url: &str) -> String {
    let url = url.trim();
    let full = if url.starts_with("http://") || url.starts_with("https://") {
        url.to_string()
    } else {
        format!("https://{url}")
    };
    full.trim_end_matches('/').to_string()
}

impl Client {
    /// A client of the registry at `url` (`https://host[:port]`, `http://…`, or a bare
    /// `host[:port]`, which means HTTPS).
    pub fn new(url: &str, credentials: Credentials) -> Result<Client, OciError> {
        let base = base_url(url);
        let parsed = reqwest::Url::parse(&base)
            .ok()
            .filter(|u| u.host_str().is_some_and(|h| !h.is_empty()) && u.path() == "/")
            .ok_or_else(|| OciError::local(format!("'{url}' is not a registry URL")))?;
        let host = match parsed.port() {
            Some(p) => format!("{}:{p}", parsed.host_str().unwrap_or_default()),
            None => parsed.host_str().unwrap_or_default().to_string(),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OciError::local(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            host,
            credentials,
            headers: Vec::new(),
            auth: Default::default(),
        })
    }

    /// Sends `name: value` with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Client {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// The registry's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// The `Authorization` value to send for `scope`, if any.
    async fn authorization(&self, scope: &str) -> Result<Option<String>, OciError> {
        let mut auth = self.auth.lock().await;
        if let Some(t) = auth.bearer.get(scope) {
            return Ok(Some(t.clone()));
        }
        match &self.credentials {
            Credentials::Anonymous => Ok(None),
            Credentials::Basic { username, password } => Ok(Some(basic(username, password))),
            Credentials::Ecr { .. } => {
                if let Some((v, until)) = &auth.ecr
                    && Instant::now() < *until
                {
                    return Ok(Some(v.clone()));
                }
                let v = self.ecr_token().await?;
                auth.ecr = Some((v.clone(), Instant::now() + Duration::from_secs(6 * 3600)));
                Ok(Some(v))
            }
        }
    }

    /// The Basic credentials of an ECR authorization token.
    async fn ecr_token(&self) -> Result<String, OciError> {
        let Credentials::Ecr {
            access_key_id,
            secret_access_key,
            region,
        } = &self.credentials
        else {
            return Err(OciError::local("not ECR credentials"));
        };
        let target = "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken";
        let headers = [
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", target),
            ("host", self.host.as_str()),
        ];
        let key = berth_aws::sigv4::SigningKey {
            access_key_id,
            secret: secret_access_key,
            region,
            service: "ecr",
        };
        let signed = berth_aws::sigv4::sign_request(
            &key,
            "POST",
            "/",
            &headers,
            b"{}",
            time::OffsetDateTime::now_utc(),
        );
        let mut req = self
            .http
            .post(self.url("/"))
            .timeout(REQUEST_TIMEOUT)
            .header("content-type", headers[0].1)
            .header("x-amz-target", target);
        for (k, v) in signed {
            req = req.header(k, v);
        }
        let resp = req
            .body("{}")
            .send()
            .await
            .map_err(|e| OciError::transport(&self.base, e))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        if status != 200 {
            return Err(OciError {
                status: Some(status),
                code: None,
                message: format!(
                    "{}: GetAuthorizationToken answered {status}: {body}",
                    self.base
                ),
            });
        }
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        let token = v["authorizationData"][0]["authorizationToken"]
            .as_str()
            .ok_or_else(|| {
                OciError::local(format!("{}: no authorization token in {body}", self.base))
            })?;
        Ok(format!("Basic {token}"))
    }

    /// Answers a `401`: a Bearer token for the challenge's scope, or new ECR credentials.
    /// Whether a retry may succeed.
    async fn reauthenticate(&self, challenge: &str, scope: &str) -> Result<bool, OciError> {
        if let Some(params) = challenge.strip_prefix("Bearer ") {
            let p = challenge_params(params);
            let realm = p.get("realm").ok_or_else(|| {
                OciError::local(format!("{}: a Bearer challenge without realm", self.base))
            })?;
            let mut query: Vec<String> = Vec::new();
            if let Some(s) = p.get("service") {
                query.push(format!("service={}", berth_aws::sigv4::uri_encode(s, true)));
            }
            let wanted = p.get("scope").map(String::as_str).unwrap_or(scope);
            if !wanted.is_empty() {
                query.push(format!(
                    "scope={}",
                    berth_aws::sigv4::uri_encode(wanted, true)
                ));
            }
            let sep = if realm.contains('?') { '&' } else { '?' };
            let url = format!("{realm}{sep}{}", query.join("&"));
            let mut req = self.http.get(&url).timeout(REQUEST_TIMEOUT);
            if let Credentials::Basic { username, password } = &self.credentials {
                req = req.basic_auth(username, Some(password));
            }
            let resp = req
                .send()
                .await
                .map_err(|e| OciError::transport(realm, e))?;
            let status = resp.status().as_u16();
            if status != 200 {
                return Err(OciError {
                    status: Some(status),
                    code: None,
                    message: format!("{realm} refused a token (HTTP {status})"),
                });
            }
            let v: serde_json::Value = resp.json().await.unwrap_or_default();
            let token = v["token"]
                .as_str()
                .or_else(|| v["access_token"].as_str())
                .ok_or_else(|| OciError::local(format!("{realm} answered no token")))?;
            self.auth
                .lock()
                .await
                .bearer
                .insert(scope.to_string(), format!("Bearer {token}"));
            return Ok(true);
        }
        if matches!(self.credentials, Credentials::Ecr { .. }) {
            let had = self.auth.lock().await.ecr.take();
            return Ok(had.is_some());
        }
        Ok(false)
    }

    /// Sends the request `build` makes (again after a `401`, once, when new credentials may
    /// help). Requests with streamed bodies are not sent this way.
    async fn send(
        &self,
        scope: &str,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, OciError> {
        for attempt in 0..2 {
            let mut req = build(&self.http);
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            if let Some(a) = self.authorization(scope).await? {
                req = req.header("authorization", a);
            }
            let resp = req
                .send()
                .await
                .map_err(|e| OciError::transport(&self.base, e))?;
            if resp.status().as_u16() == 401 && attempt == 0 {
                let challenge = resp
                    .headers()
                    .get("www-authenticate")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                if self.reauthenticate(&challenge, scope).await? {
                    continue;
                }
            }
            return Ok(resp);
        }
        unreachable!("the loop returns")
    }

    /// `GET /v2/`: whether the registry answers and takes the credentials.
    pub async fn ping(&self) -> Result<(), OciError> {
        let url = self.url("/v2/");
        let resp = self
            .send("", |c| c.get(&url).timeout(REQUEST_TIMEOUT))
            .await?;
        ok(resp, &url).await.map(|_| ())
    }

    /// The manifest `reference` (tag or digest) of `repo`; `None` if there is none.
    pub async fn manifest_get(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, OciError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self
            .send(&pull_scope(repo), |c| {
                c.get(&url)
                    .header("accept", ACCEPT)
                    .timeout(REQUEST_TIMEOUT)
            })
            .await?;
        let resp = match ok(resp, &url).await {
            Ok(r) => r,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let media_type = header(&resp, "content-type").unwrap_or_default();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| OciError::transport(&self.base, e))?;
        let digest = digest_of(&bytes);
        if reference.starts_with("sha256:") && reference != digest {
            return Err(OciError::local(format!(
                "{url} served content of digest {digest}"
            )));
        }
        Ok(Some(Manifest {
            media_type: media_type
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_string(),
            digest,
            bytes,
        }))
    }

    /// The digest the registry gives for manifest `reference` of `repo` (`HEAD`); `None` if
    /// there is none or it names none.
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, OciError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self
            .send(&pull_scope(repo), |c| {
                c.head(&url)
                    .header("accept", ACCEPT)
                    .timeout(REQUEST_TIMEOUT)
            })
            .await?;
        match ok(resp, &url).await {
            Ok(r) => Ok(header(&r, "docker-content-digest")),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Stores a manifest under `reference` (a tag or its digest).
    pub async fn manifest_put(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<(), OciError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"));
        let resp = self
            .send(&push_scope(repo), |c| {
                c.put(&url)
                    .header("content-type", media_type)
                    .body(bytes.clone())
                    .timeout(REQUEST_TIMEOUT)
            })
            .await?;
        ok(resp, &url).await.map(|_| ())
    }

    /// The size of blob `digest` in `repo`, if the registry has it there.
    pub async fn blob_size(&self, repo: &str, digest: &str) -> Result<Option<u64>, OciError> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let resp = self
            .send(&pull_scope(repo), |c| c.head(&url).timeout(REQUEST_TIMEOUT))
            .await?;
        match ok(resp, &url).await {
            Ok(r) => Ok(Some(
                header(&r, "content-length")
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Blob `digest` of `repo`, streamed (redirects followed), with its size if announced.
    pub async fn blob_get(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<(Option<u64>, ByteStream), OciError> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"));
        let resp = self.send(&pull_scope(repo), |c| c.get(&url)).await?;
        let resp = ok(resp, &url).await?;
        let size = resp.content_length();
        let base = self.base.clone();
        let stream = resp
            .bytes_stream()
            .map(move |c| c.map_err(|e| OciError::transport(&base, e)))
            .boxed();
        Ok((size, stream))
    }

    /// Uploads blob `digest` (`size` bytes of `body`) into `repo`: `POST` an upload, then
    /// one streamed `PUT ?digest=`.
    pub async fn blob_put(
        &self,
        repo: &str,
        digest: &str,
        size: u64,
        body: ByteStream,
    ) -> Result<(), OciError> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"));
        let scope = push_scope(repo);
        let resp = self
            .send(&scope, |c| {
                c.post(&url)
                    .header("content-length", "0")
                    .timeout(REQUEST_TIMEOUT)
            })
            .await?;
        let resp = ok(resp, &url).await?;
        let location = header(&resp, "location")
            .ok_or_else(|| OciError::local(format!("{url}: no upload location")))?;
        let sep = if location.contains('?') { '&' } else { '?' };
        let put = self.url(&format!("{location}{sep}digest={digest}"));
        let mut req = self
            .http
            .put(&put)
            .header("content-type", "application/octet-stream")
            .header("content-length", size.to_string())
            .body(reqwest::Body::wrap_stream(body));
        for (k, v) in &self.headers {
            req = req.header(k, v);
        }
        if let Some(a) = self.authorization(&scope).await? {
            req = req.header("authorization", a);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| OciError::transport(&self.base, e))?;
        ok(resp, &put).await.map(|_| ())
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

fn push_scope(repo: &str) -> String {
    format!("repository:{repo}:pull,push")
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The response if it succeeded; otherwise an error with the registry's own words.
async fn ok(resp: reqwest::Response, url: &str) -> Result<reqwest::Response, OciError> {
    let status = resp.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    let code = v["errors"][0]["code"].as_str().map(str::to_string);
    let said = v["errors"][0]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(200).collect());
    Err(OciError {
        status: Some(status),
        message: format!(
            "{url} answered {status}{}{}",
            code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(),
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ),
        code,
    })
}

/// The `key="value"` pairs of a challenge.
fn challenge_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_ascii_lowercase();
        let (v, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((v, next)) => (v.to_string(), next),
                None => (quoted.to_string(), ""),
            }
        } else {
            match after.split_once(',') {
                Some((v, next)) => (v.trim().to_string(), next),
                None => (after.trim().to_string(), ""),
            }
        };
        out.insert(k, v);
        rest = next.trim_start_matches(',').trim();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_parse_with_commas_inside_quotes() {
        let p = challenge_params(
            r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull,push""#,
        );
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/nginx:pull,push");
    }

    #[test]
    fn registry_urls_default_to_https() {
        assert_eq!(
            base_url("registry-1.docker.io"),
            "https://registry-1.docker.io"
        );
        assert_eq!(base_url("http://127.0.0.1:5000/"), "http://127.0.0.1:5000");
        let c = Client::new("http://127.0.0.1:5000", Credentials::Anonymous).unwrap();
        assert_eq!(c.host, "127.0.0.1:5000");
        assert!(Client::new("https://", Credentials::Anonymous).is_err());
    }
}
