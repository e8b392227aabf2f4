//! The OCI distribution API under `/v2/` (spec/ecr.md §4), authenticated like ECR: HTTP Basic
//! with user `AWS` and a password from `GetAuthorizationToken`.
//!
//! Paths are parsed by hand from the right (`<name>` may contain slashes). Request bodies are
//! streamed to the blob store, never buffered whole (manifests, at most 4 MiB, excepted).

use crate::auth::token::TokenError;
use crate::errors::oci_error;
use crate::{ApiState, Regional};
use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, Response, StatusCode};
use base64::Engine;
use berth_registry::{Content, MAX_MANIFEST_BYTES, MediaType, Reference};
use berth_types::oci::{Digest, RepositoryName};
use berth_types::{Error, Principal};
use serde_json::{Value, json};

const API_VERSION: (&str, &str) = ("Docker-Distribution-Api-Version", "registry/2.0");

fn builder(status: StatusCode) -> axum::http::response::Builder {
    Response::builder()
        .status(status)
        .header(API_VERSION.0, API_VERSION.1)
}

/// A failed registry request, already rendered (boxed: responses are large).
struct Fail(Box<Response<Body>>);

impl From<Response<Body>> for Fail {
    fn from(r: Response<Body>) -> Self {
        Fail(Box::new(r))
    }
}

fn error_response(status: u16, code: &str, message: &str, challenge: Option<&str>) -> Fail {
    let body = json!({"errors": [{"code": code, "message": message, "detail": null}]});
    let mut b = builder(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
        .header("content-type", "application/json");
    if let Some(c) = challenge {
        b = b.header("www-authenticate", c);
    }
    b.body(Body::from(body.to_string()))
        .expect("valid response")
        .into()
}

fn domain_error(e: Error) -> Fail {
    let (status, code, message) = oci_error(e, "registry");
    error_response(status, code, &message, None)
}

fn name_invalid(name: &str) -> Fail {
    error_response(
        400,
        "NAME_INVALID",
        &format!("invalid repository name '{name}'"),
        None,
    )
}

fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded_pairs(query.unwrap_or(""))
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

fn form_urlencoded_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    berth_aws::query::parse_form(q.as_bytes()).into_iter()
}

/// The registry's Basic challenge.
fn challenge(state: &ApiState) -> String {
    format!(
        "Basic realm=\"https://{}/\",service=\"ecr.amazonaws.com\"",
        state.inner.registry_host
    )
}

fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Principal, Fail> {
    let unauthorized =
        |msg: &str| error_response(401, "UNAUTHORIZED", msg, Some(&challenge(state)));
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(unauthorized("authentication required"));
    };
    let Some(b64) = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))
    else {
        return Err(unauthorized(
            "authentication required: use Basic auth with user AWS and an ECR authorization token",
        ));
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) else {
        return Err(unauthorized("malformed Basic credentials"));
    };
    if user != "AWS" {
        return Err(unauthorized("the user name must be AWS"));
    }
    match state.inner.tokens.verify(state, password, state.now()) {
        Ok(p) => Ok(p),
        Err(TokenError::Expired) => Err(error_response(
            403,
            "DENIED",
            "Your authorization token has expired. Reauthenticate and try again.",
            None,
        )),
        Err(TokenError::Invalid) => Err(unauthorized("invalid authorization token")),
    }
}

/// What a `/v2/...` path addresses.
#[derive(Debug, PartialEq, Eq)]
enum Route<'a> {
    Ping,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    Uploads(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

fn parse_route(path: &str) -> Option<Route<'_>> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Ping);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Some(Route::Tags(name));
    }
    if let Some(name) = rest
        .strip_suffix("/blobs/uploads/")
        .or_else(|| rest.strip_suffix("/blobs/uploads"))
    {
        return Some(Route::Uploads(name));
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return (!id.contains('/')).then_some(Route::Upload(name, id));
    }
    for marker in ["/manifests/", "/blobs/", "/referrers/"] {
        if let Some((name, last)) = rest.rsplit_once(marker)
            && !last.is_empty()
            && !last.contains('/')
        {
            return Some(match marker {
                "/manifests/" => Route::Manifest(name, last),
                "/blobs/" => Route::Blob(name, last),
                _ => Route::Referrers(name, last),
            });
        }
    }
    None
}

pub async fn handle(state: &ApiState, parts: Parts, body: Body) -> Response<Body> {
    let principal = match authenticate(state, &parts.headers) {
        Ok(p) => p,
        Err(f) => return *f.0,
    };
    // The region the caller's token was issued in: its repositories are the ones addressed.
    let region = state.region(&principal.region);
    let Some(route) = parse_route(parts.uri.path()) else {
        return *error_response(404, "NAME_UNKNOWN", "no such registry endpoint", None).0;
    };
    let name = match &route {
        Route::Ping | Route::Catalog => None,
        Route::Tags(n)
        | Route::Manifest(n, _)
        | Route::Blob(n, _)
        | Route::Uploads(n)
        | Route::Upload(n, _)
        | Route::Referrers(n, _) => Some(*n),
    };
    if let Some(n) = name
        && RepositoryName::parse(n).is_none()
    {
        return *name_invalid(n).0;
    }
    if let Err(f) = authorize_route(state, &region, &principal, &parts, &route) {
        return *f.0;
    }
    let caller = Caller {
        api: state,
        region: &region,
        principal: &principal,
        parts: &parts,
    };
    let pushed_to = match route {
        Route::Uploads(n) if parts.method == Method::POST => Some(n),
        Route::Manifest(n, _) if parts.method == Method::PUT => Some(n),
        _ => None,
    };
    if let Some(name) = pushed_to
        && let Err(f) = Box::pin(create_on_push(&caller, name)).await
    {
        return *f.0;
    }
    dispatch(&caller, route, body)
        .await
        .unwrap_or_else(|f| *f.0)
}

/// Who is asking, where, and how: what the registry's handlers beyond the plain ones need.
struct Caller<'a> {
    api: &'a ApiState,
    region: &'a Regional,
    principal: &'a Principal,
    parts: &'a Parts,
}

impl Caller<'_> {
    /// `action` on repository `repo` may be done by the caller (with the repository's policy).
    fn allowed(&self, repo: &str, action: &str) -> Result<(), Error> {
        if self.principal.is_root() {
            return Ok(());
        }
        let origin = crate::authorize::Origin::of(&self.parts.extensions);
        allow(self.api, self.region, self.principal, &origin, repo, action)
    }

    /// A push Berth makes as replication (another Berth's `X-Berth-Replication`).
    fn replicating(&self) -> bool {
        self.parts
            .headers
            .contains_key(crate::replicate::REPLICATION_HEADER)
    }
}

/// A push (blob upload or manifest) to a repository that does not exist creates it when a
/// creation template says so (`CREATE_ON_PUSH`), or — for a replication from another Berth —
/// from the `REPLICATION` templates or ECR's defaults; the caller needs
/// `ecr:CreateRepository` for it. Otherwise the push goes on to fail with `NAME_UNKNOWN`.
async fn create_on_push(c: &Caller<'_>, name: &str) -> Result<(), Fail> {
    let registry = &c.region.registry;
    if registry
        .repository_find(name)
        .map_err(domain_error)?
        .is_some()
    {
        return Ok(());
    }
    use berth_registry::templates::AppliedFor;
    let purpose = if c.replicating() {
        AppliedFor::Replication
    } else {
        AppliedFor::CreateOnPush
    };
    if purpose == AppliedFor::CreateOnPush
        && registry
            .template_for(name, purpose)
            .map_err(domain_error)?
            .is_none()
    {
        return Ok(());
    }
    c.allowed(name, "ecr:CreateRepository")
        .map_err(|e| error_response(403, "DENIED", &e.to_string(), None))?;
    registry
        .repository_create_for(name, purpose)
        .await
        .map_err(domain_error)?;
    Ok(())
}

/// Runs one authorized registry request. The arms other than manifest GET are boxed: an
/// `async fn`'s future is as large as its largest arm, and the hot pull should not carry
/// (and copy) the uploads' state.
async fn dispatch(c: &Caller<'_>, route: Route<'_>, body: Body) -> Reply {
    let (parts, m, state) = (c.parts, &c.parts.method, c.region);
    let query = parts.uri.query();
    match route {
        Route::Ping if *m == Method::GET || *m == Method::HEAD => Ok(json_ok(&json!({}))),
        Route::Catalog if *m == Method::GET => catalog(state, query),
        Route::Tags(n) if *m == Method::GET => tags(state, n, query),
        Route::Manifest(n, r) if *m == Method::GET || *m == Method::HEAD => {
            manifest_get(c, n, r, *m == Method::HEAD).await
        }
        Route::Manifest(n, r) if *m == Method::PUT => Box::pin(manifest_put(c, n, r, body)).await,
        Route::Manifest(n, r) if *m == Method::DELETE => Box::pin(manifest_delete(c, n, r)).await,
        Route::Blob(n, d) if *m == Method::GET || *m == Method::HEAD => {
            Box::pin(blob_get(state, n, d, &parts.headers, *m == Method::HEAD)).await
        }
        Route::Blob(n, d) if *m == Method::DELETE => Box::pin(blob_delete(state, n, d)).await,
        Route::Uploads(n) if *m == Method::POST => {
            Box::pin(upload_start(state, n, query, &parts.headers, body)).await
        }
        Route::Upload(n, id) if *m == Method::PATCH => {
            Box::pin(upload_patch(state, n, id, &parts.headers, body)).await
        }
        Route::Upload(n, id) if *m == Method::PUT => {
            Box::pin(upload_put(state, n, id, query, &parts.headers, body)).await
        }
        Route::Upload(n, id) if *m == Method::GET => Box::pin(upload_status(state, n, id)).await,
        Route::Upload(n, id) if *m == Method::DELETE => Box::pin(upload_cancel(state, n, id)).await,
        Route::Referrers(n, d) if *m == Method::GET => referrers(state, n, d, query),
        _ => Err(error_response(
            405,
            "UNSUPPORTED",
            "method not allowed here",
            None,
        )),
    }
}

type Reply = Result<Response<Body>, Fail>;

/// The ECR actions a registry request needs (pull = `BatchGetImage` for manifests,
/// `GetDownloadUrlForLayer` for blobs; push = `BatchCheckLayerAvailability`, the layer upload
/// actions and `PutImage`; tag listing = `ListImages`), each on its repository, decided with
/// the repository's policy: 403 `DENIED` otherwise.
fn authorize_route(
    state: &ApiState,
    region: &Regional,
    principal: &Principal,
    parts: &Parts,
    route: &Route<'_>,
) -> Result<(), Fail> {
    if principal.is_root() {
        return Ok(());
    }
    let m = &parts.method;
    let read = *m == Method::GET || *m == Method::HEAD;
    let (name, action) = match *route {
        Route::Ping => return Ok(()),
        Route::Catalog => ("*", "ecr:DescribeRepositories"),
        Route::Tags(n) => (n, "ecr:ListImages"),
        Route::Manifest(n, _) | Route::Referrers(n, _) if read => (n, "ecr:BatchGetImage"),
        Route::Manifest(n, _) if *m == Method::DELETE => (n, "ecr:BatchDeleteImage"),
        Route::Manifest(n, _) => (n, "ecr:PutImage"),
        Route::Blob(n, _) if *m == Method::HEAD => (n, "ecr:BatchCheckLayerAvailability"),
        Route::Blob(n, _) if read => (n, "ecr:GetDownloadUrlForLayer"),
        Route::Blob(n, _) => (n, "ecr:BatchDeleteImage"),
        Route::Uploads(n) => (n, "ecr:InitiateLayerUpload"),
        Route::Upload(n, _) if *m == Method::PUT => (n, "ecr:CompleteLayerUpload"),
        Route::Upload(n, _) => (n, "ecr:UploadLayerPart"),
        Route::Referrers(n, _) => (n, "ecr:BatchGetImage"),
    };
    let origin = crate::authorize::Origin::of(&parts.extensions);
    let check = |repo: &str, action: &str| {
        allow(state, region, principal, &origin, repo, action)
            .map_err(|e| error_response(403, "DENIED", &e.to_string(), None))
    };
    check(name, action)?;
    if let Route::Uploads(_) = route
        && let Some(from) = query_param(parts.uri.query(), "from")
    {
        check(&from, "ecr:GetDownloadUrlForLayer")?;
    }
    Ok(())
}

/// Whether `principal` may do `action` on repository `repo` (with the repository's policy and
/// tags): `AccessDenied` with AWS's message otherwise.
fn allow(
    state: &ApiState,
    region: &Regional,
    principal: &Principal,
    origin: &crate::authorize::Origin,
    repo: &str,
    action: &str,
) -> Result<(), Error> {
    let resource = region.scope.arn("ecr", &format!("repository/{repo}"));
    let repository = region.registry.repository_get(repo).ok();
    let policy = repository
        .as_ref()
        .and_then(|r| r.policy.as_deref())
        .and_then(|t| state.iam().compiled(t, berth_iam::Kind::Resource).ok());
    let tags_of = |_: &str| {
        repository
            .as_ref()
            .map(|r| r.tags.clone())
            .unwrap_or_default()
    };
    let resources = [resource];
    let ask = crate::authorize::Ask {
        resource_policy: policy.as_deref(),
        tags_of: Some(&tags_of),
        ..crate::authorize::Ask::new(action, &resources)
    };
    crate::authorize::authorize(state, principal, origin, &ask)
}

fn json_ok(v: &Value) -> Response<Body> {
    builder(StatusCode::OK)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .expect("valid response")
}

fn page_size(query: Option<&str>) -> Result<Option<usize>, Fail> {
    match query_param(query, "n") {
        None => Ok(None),
        Some(n) => n.parse::<usize>().map(Some).map_err(|_| {
            error_response(400, "PAGINATION_NUMBER_INVALID", "n must be a number", None)
        }),
    }
}

fn catalog(state: &Regional, query: Option<&str>) -> Reply {
    let n = page_size(query)?.unwrap_or(1000).min(1000);
    let last = query_param(query, "last");
    let repos = state
        .registry
        .repository_list(last.as_deref(), n)
        .map_err(domain_error)?;
    let names: Vec<String> = repos.iter().map(|r| r.name.to_string()).collect();
    let mut resp = json_ok(&json!({ "repositories": names }));
    if names.len() == n
        && let Some(l) = names.last()
    {
        let link = format!("</v2/_catalog?n={n}&last={l}>; rel=\"next\"");
        resp.headers_mut()
            .insert("link", link.parse().expect("header-safe"));
    }
    Ok(resp)
}

fn tags(state: &Regional, name: &str, query: Option<&str>) -> Reply {
    let n = page_size(query)?.unwrap_or(usize::MAX >> 1);
    let last = query_param(query, "last");
    let tags = state
        .registry
        .tags_list(name, last.as_deref(), n)
        .map_err(domain_error)?;
    let mut resp = json_ok(&json!({"name": name, "tags": tags}));
    if tags.len() == n
        && n > 0
        && let Some(l) = tags.last()
    {
        let link = format!("</v2/{name}/tags/list?n={n}&last={l}>; rel=\"next\"");
        resp.headers_mut()
            .insert("link", link.parse().expect("header-safe"));
    }
    Ok(resp)
}

fn reference(r: &str) -> Result<Reference, Fail> {
    Reference::parse(r).ok_or_else(|| {
        if r.contains(':') {
            error_response(
                400,
                "DIGEST_INVALID",
                &format!("invalid digest '{r}'"),
                None,
            )
        } else {
            error_response(400, "TAG_INVALID", &format!("invalid tag '{r}'"), None)
        }
    })
}

async fn manifest_get(c: &Caller<'_>, name: &str, r: &str, head: bool) -> Reply {
    // A reference that cannot name anything names no manifest (the conformance suite's
    // expectation for GET and HEAD).
    let reference = reference(r).map_err(|_| {
        error_response(
            404,
            "MANIFEST_UNKNOWN",
            &format!("manifest unknown: {r}"),
            None,
        )
    })?;
    let state = c.region;
    let registry = &state.registry;
    // A repository of the pull-through cache is filled (and refreshed) from its upstream.
    let authorize = |repo: &str, action: &str| c.allowed(repo, action);
    let rule = crate::pull_through::rule_of(c.api, state, name).map_err(domain_error)?;
    let image = match rule {
        // Boxed: the upstream's future is large, and most pulls never build it.
        Some(rule) => Box::pin(crate::pull_through::pull(
            c.api, state, &authorize, name, &reference, rule,
        ))
        .await
        .map_err(domain_error)?,
        None => registry
            .image_resolve(name, &reference)
            .map_err(domain_error)?,
    };
    let b = builder(StatusCode::OK)
        .header("content-type", image.media_type.as_str())
        .header("docker-content-digest", image.digest.as_str())
        .header("content-length", image.manifest_size);
    if head {
        return Ok(b.body(Body::empty()).expect("valid response"));
    }
    let bytes = registry
        .manifest_bytes(&image)
        .await
        .map_err(domain_error)?;
    record_pull(state, name, image);
    Ok(b.body(Body::from(bytes)).expect("valid response"))
}

/// Notes the pull in the background (`lastRecordedPullTime`); the response does not wait.
pub fn record_pull(state: &Regional, repo: &str, image: berth_registry::Image) {
    if !image.pull_is_stale(berth_types::Timestamp::now()) {
        return;
    }
    let registry = state.registry.clone();
    let repo = repo.to_string();
    tokio::spawn(async move {
        if let Err(e) = registry.image_pulled(&repo, &image).await {
            tracing::warn!(error = %e, "could not record a pull");
        }
    });
}

/// Reads a whole body of at most `limit` bytes; `None` if it is larger.
async fn read_limited(body: Body, limit: usize) -> Result<Option<bytes::Bytes>, Fail> {
    match axum::body::to_bytes(body, limit).await {
        Ok(b) => Ok(Some(b)),
        Err(_) => Ok(None),
    }
}

async fn manifest_put(c: &Caller<'_>, name: &str, r: &str, body: Body) -> Reply {
    let (state, headers) = (c.region, &c.parts.headers);
    let reference = reference(r)?;
    let Some(bytes) = read_limited(body, MAX_MANIFEST_BYTES).await? else {
        return Err(error_response(
            413,
            "SIZE_INVALID",
            &format!("manifest is larger than {MAX_MANIFEST_BYTES} bytes"),
            None,
        ));
    };
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let origin = if c.replicating() {
        berth_registry::PushOrigin::Replication
    } else {
        berth_registry::PushOrigin::Push
    };
    let pushed = state
        .registry
        .manifest_push(name, &reference, content_type, bytes, origin)
        .await
        .map_err(domain_error)?;
    if pushed.replication_queued {
        c.api
            .background()
            .activate(berth_control::background::REPLICATION);
    }
    let image = pushed.image;
    let mut b = builder(StatusCode::CREATED)
        .header("location", format!("/v2/{name}/manifests/{}", image.digest))
        .header("docker-content-digest", image.digest.as_str())
        .header("content-length", 0);
    if let Some(s) = &image.subject {
        b = b.header("oci-subject", s.as_str());
    }
    Ok(b.body(Body::empty()).expect("valid response"))
}

async fn manifest_delete(c: &Caller<'_>, name: &str, r: &str) -> Reply {
    let reference = reference(r)?;
    let image = c
        .region
        .registry
        .image_delete(name, &reference)
        .await
        .map_err(domain_error)?;
    if let Reference::Digest(_) = reference {
        berth_registry::audit::image_deleted(
            &c.region.scope,
            name,
            &image,
            berth_registry::audit::Deleter::Caller {
                arn: &c.principal.arn,
                operation: "DeleteManifest",
            },
        );
    }
    Ok(builder(StatusCode::ACCEPTED)
        .body(Body::empty())
        .expect("valid response"))
}

fn digest(d: &str) -> Result<Digest, Fail> {
    Digest::parse(d).ok_or_else(|| {
        error_response(
            400,
            "DIGEST_INVALID",
            &format!("invalid digest '{d}'"),
            None,
        )
    })
}

/// `bytes=start-end` (end optional) within `size`.
fn parse_range(h: &str, size: u64) -> Option<(u64, u64)> {
    let spec = h.strip_prefix("bytes=")?;
    let (s, e) = spec.split_once('-')?;
    let start: u64 = s.parse().ok()?;
    let end: u64 = if e.is_empty() {
        size.checked_sub(1)?
    } else {
        e.parse().ok()?
    };
    (start <= end && end < size).then_some((start, end))
}

async fn blob_get(state: &Regional, name: &str, d: &str, headers: &HeaderMap, head: bool) -> Reply {
    let d = digest(d)?;
    let registry = &state.registry;
    let unknown = || {
        error_response(
            404,
            "BLOB_UNKNOWN",
            &format!("blob {d} is not in repository {name}"),
            None,
        )
    };
    // The link's size: content stays stored as long as a link names it.
    let size = registry
        .blob_stat(name, &d)
        .map_err(domain_error)?
        .ok_or_else(unknown)?;
    let range = headers.get("range").and_then(|v| v.to_str().ok());
    let (status, start, len) = match range {
        None => (StatusCode::OK, 0, size),
        Some(r) => match parse_range(r, size) {
            Some((s, e)) => (StatusCode::PARTIAL_CONTENT, s, e - s + 1),
            None => {
                return Err(builder(StatusCode::RANGE_NOT_SATISFIABLE)
                    .header("content-range", format!("bytes */{size}"))
                    .body(Body::empty())
                    .expect("valid response")
                    .into());
            }
        },
    };
    let mut b = builder(status)
        .header("content-type", "application/octet-stream")
        .header("docker-content-digest", d.as_str())
        .header("accept-ranges", "bytes")
        .header("content-length", len);
    if status == StatusCode::PARTIAL_CONTENT {
        b = b.header(
            "content-range",
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    if head {
        return Ok(b.body(Body::empty()).expect("valid response"));
    }
    match registry
        .blob_read(&d, start, len)
        .await
        .map_err(domain_error)?
    {
        None => Err(unknown()),
        Some(Content::Inline(bytes)) => Ok(b.body(Body::from(bytes)).expect("valid response")),
        Some(Content::Stream(stream)) => {
            Ok(b.body(Body::from_stream(stream)).expect("valid response"))
        }
    }
}

async fn blob_delete(state: &Regional, name: &str, d: &str) -> Reply {
    let d = digest(d)?;
    state
        .registry
        .blob_unlink(name, &d)
        .await
        .map_err(domain_error)?;
    Ok(builder(StatusCode::ACCEPTED)
        .body(Body::empty())
        .expect("valid response"))
}

/// A request body as the blob store takes it.
fn byte_stream(body: Body) -> berth_blob::ByteStream {
    use futures_util::StreamExt;
    body.into_data_stream()
        .map(|r| r.map_err(|_| berth_blob::BlobError::Interrupted))
        .boxed()
}

fn upload_location(name: &str, id: &str) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

fn upload_accepted(name: &str, id: &str, size: u64, status: StatusCode) -> Response<Body> {
    let range = if size == 0 {
        "0-0".to_string()
    } else {
        format!("0-{}", size - 1)
    };
    builder(status)
        .header("location", upload_location(name, id))
        .header("docker-upload-uuid", id)
        .header("range", range)
        .header("content-length", 0)
        .body(Body::empty())
        .expect("valid response")
}

fn blob_created(name: &str, d: &Digest) -> Response<Body> {
    builder(StatusCode::CREATED)
        .header("location", format!("/v2/{name}/blobs/{d}"))
        .header("docker-content-digest", d.as_str())
        .header("content-length", 0)
        .body(Body::empty())
        .expect("valid response")
}

/// Commits upload `id` as `d` and makes it visible in `name`.
async fn commit(state: &Regional, name: &str, id: &str, d: &Digest) -> Reply {
    state
        .registry
        .upload_finish(name, id, d)
        .await
        .map_err(domain_error)?;
    Ok(blob_created(name, d))
}

async fn upload_start(
    state: &Regional,
    name: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Reply {
    let registry = &state.registry;
    registry.repository_get(name).map_err(domain_error)?;
    if let (Some(mount), from) = (query_param(query, "mount"), query_param(query, "from")) {
        let d = digest(&mount)?;
        if let Some(from) = from
            && registry
                .blob_mount(name, &from, &d)
                .await
                .map_err(domain_error)?
                .is_some()
        {
            return Ok(blob_created(name, &d));
        }
    }
    // A monolithic upload of small content goes straight to the store, no file.
    let digest_param = query_param(query, "digest")
        .map(|d| digest(&d))
        .transpose()?;
    let body = match &digest_param {
        Some(d) => match small_body(headers, body).await? {
            Ok(bytes) => {
                registry
                    .content_put(name, d, bytes)
                    .await
                    .map_err(domain_error)?;
                return Ok(blob_created(name, d));
            }
            Err(body) => body,
        },
        None => body,
    };
    let id = registry.upload_begin(name).await.map_err(domain_error)?;
    if let Some(d) = digest_param {
        registry
            .upload_append(name, &id, Some(0), byte_stream(body))
            .await
            .map_err(domain_error)?;
        return commit(state, name, &id, &d).await;
    }
    Ok(upload_accepted(name, &id, 0, StatusCode::ACCEPTED))
}

async fn upload_patch(
    state: &Regional,
    name: &str,
    id: &str,
    headers: &HeaderMap,
    body: Body,
) -> Reply {
    let offset = match headers.get("content-range").and_then(|v| v.to_str().ok()) {
        None => None,
        Some(r) => {
            let start = r
                .trim_start_matches("bytes ")
                .split('-')
                .next()
                .and_then(|s| s.parse::<u64>().ok());
            match start {
                Some(s) => Some(s),
                None => {
                    return Err(error_response(
                        416,
                        "BLOB_UPLOAD_INVALID",
                        "invalid Content-Range",
                        None,
                    ));
                }
            }
        }
    };
    let size = state
        .registry
        .upload_append(name, id, offset, byte_stream(body))
        .await
        .map_err(domain_error)?;
    Ok(upload_accepted(name, id, size, StatusCode::ACCEPTED))
}

async fn upload_put(
    state: &Regional,
    name: &str,
    id: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Body,
) -> Reply {
    let Some(d) = query_param(query, "digest") else {
        return Err(error_response(
            400,
            "DIGEST_INVALID",
            "the digest parameter is required",
            None,
        ));
    };
    let d = digest(&d)?;
    let registry = &state.registry;
    let size = registry.upload_size(name, id).map_err(domain_error)?;
    let body = if size == 0 {
        match small_body(headers, body).await? {
            Ok(bytes) => {
                registry
                    .content_put(name, &d, bytes)
                    .await
                    .map_err(domain_error)?;
                let _ = registry.upload_cancel(name, id).await;
                return Ok(blob_created(name, &d));
            }
            Err(body) => body,
        }
    } else {
        body
    };
    registry
        .upload_append(name, id, Some(size), byte_stream(body))
        .await
        .map_err(domain_error)?;
    commit(state, name, id, &d).await
}

/// A whole blob small enough to keep in the store (by its `Content-Length`), read into memory;
/// any other body is handed back to be streamed to a file.
async fn small_body(headers: &HeaderMap, body: Body) -> Result<Result<bytes::Bytes, Body>, Fail> {
    let len = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match len {
        Some(n) if n <= berth_registry::INLINE_MAX => match read_limited(body, n as usize).await? {
            Some(b) => Ok(Ok(b)),
            None => Err(error_response(
                400,
                "BLOB_UPLOAD_INVALID",
                "the body is longer than its Content-Length",
                None,
            )),
        },
        _ => Ok(Err(body)),
    }
}

async fn upload_status(state: &Regional, name: &str, id: &str) -> Reply {
    let size = state.registry.upload_size(name, id).map_err(domain_error)?;
    Ok(upload_accepted(name, id, size, StatusCode::NO_CONTENT))
}

async fn upload_cancel(state: &Regional, name: &str, id: &str) -> Reply {
    state
        .registry
        .upload_cancel(name, id)
        .await
        .map_err(domain_error)?;
    Ok(builder(StatusCode::NO_CONTENT)
        .body(Body::empty())
        .expect("valid response"))
}

fn referrers(state: &Regional, name: &str, d: &str, query: Option<&str>) -> Reply {
    let d = digest(d)?;
    let filter = query_param(query, "artifactType");
    let images = state.registry.images_list(name).map_err(domain_error)?;
    let manifests: Vec<Value> = images
        .iter()
        .filter(|i| i.subject.as_ref() == Some(&d))
        .filter_map(|i| {
            let artifact = i.artifact_type.clone().or_else(|| i.config_media_type.clone());
            if filter.as_ref().is_some_and(|f| artifact.as_ref() != Some(f)) {
                return None;
            }
            let mut m = json!({"mediaType": i.media_type, "digest": i.digest.as_str(), "size": i.manifest_size});
            if let Some(a) = artifact {
                m["artifactType"] = Value::String(a);
            }
            if !i.annotations.is_empty() {
                m["annotations"] = json!(i.annotations);
            }
            Some(m)
        })
        .collect();
    let body =
        json!({"schemaVersion": 2, "mediaType": MediaType::OCI_INDEX, "manifests": manifests});
    let mut b = builder(StatusCode::OK).header("content-type", MediaType::OCI_INDEX);
    if filter.is_some() {
        b = b.header("oci-filters-applied", "artifactType");
    }
    Ok(b.body(Body::from(body.to_string()))
        .expect("valid response"))
}

/// Path prefix of the time-limited layer URLs `GetDownloadUrlForLayer` hands out.
pub const LAYER_URL_PREFIX: &str = "/_berth/layers/";

/// How long a layer download URL is valid (seconds).
pub const LAYER_URL_VALIDITY: i64 = 3600;

fn layer_signature(key: &[u8; 32], region: &str, repo: &str, digest: &str, expires: i64) -> String {
    use hmac::{Hmac, Mac};
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key length");
    m.update(format!("{region}\n{repo}\n{digest}\n{expires}").as_bytes());
    hex::encode(m.finalize().into_bytes())
}

/// A URL that serves one layer of one repository, without other credentials, until it expires
/// (like the presigned S3 URL ECR returns).
pub fn layer_url(
    state: &ApiState,
    region: &berth_types::Region,
    repo: &str,
    digest: &Digest,
    now: i64,
) -> String {
    let expires = now + LAYER_URL_VALIDITY;
    let region = region.as_str();
    let sig = layer_signature(
        &state.inner.token_key,
        region,
        repo,
        digest.as_str(),
        expires,
    );
    format!(
        "{}{LAYER_URL_PREFIX}{repo}/{digest}?region={region}&expires={expires}&signature={sig}",
        state.inner.endpoint
    )
}

/// `GET /_berth/layers/<repo>/<digest>?region=&expires=&signature=`.
pub async fn layer_download(
    state: &ApiState,
    rest: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Response<Body> {
    let denied = || {
        *error_response(
            403,
            "DENIED",
            "The download URL is invalid or has expired.",
            None,
        )
        .0
    };
    let Some((repo, d)) = rest.rsplit_once('/') else {
        return denied();
    };
    let expires = query_param(query, "expires").and_then(|e| e.parse::<i64>().ok());
    let given = query_param(query, "signature").unwrap_or_default();
    let Some(expires) = expires else {
        return denied();
    };
    let Some(region) =
        query_param(query, "region").and_then(|r| berth_types::Region::parse(&r).ok())
    else {
        return denied();
    };
    let expected = layer_signature(&state.inner.token_key, region.as_str(), repo, d, expires);
    let same = expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |a, (x, y)| a | (x ^ y))
            == 0;
    if !same || time::OffsetDateTime::now_utc().unix_timestamp() >= expires {
        return denied();
    }
    blob_get(&state.region(&region), repo, d, headers, false)
        .await
        .unwrap_or_else(|f| *f.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_paths_parse_from_the_right() {
        assert_eq!(parse_route("/v2/"), Some(Route::Ping));
        assert_eq!(parse_route("/v2"), Some(Route::Ping));
        assert_eq!(parse_route("/v2/_catalog"), Some(Route::Catalog));
        assert_eq!(parse_route("/v2/a/b/tags/list"), Some(Route::Tags("a/b")));
        assert_eq!(
            parse_route("/v2/a/manifests/b/manifests/latest"),
            Some(Route::Manifest("a/manifests/b", "latest"))
        );
        assert_eq!(
            parse_route("/v2/team/app/blobs/uploads/"),
            Some(Route::Uploads("team/app"))
        );
        assert_eq!(
            parse_route("/v2/team/app/blobs/uploads/abc"),
            Some(Route::Upload("team/app", "abc"))
        );
        assert_eq!(
            parse_route("/v2/x/blobs/sha256:00"),
            Some(Route::Blob("x", "sha256:00"))
        );
        assert_eq!(
            parse_route("/v2/x/referrers/sha256:00"),
            Some(Route::Referrers("x", "sha256:00"))
        );
        assert_eq!(parse_route("/v2/x/unknown"), None);
        assert_eq!(parse_route("/v2/x/manifests/"), None);
        assert_eq!(parse_range("bytes=0-9", 100), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=90-100", 100), None);
    }
}
