//! The general request path, on hyper: HTTP/2 without TLS (h2c) and the HTTP/1 requests the
//! hand-written path (`h1`) leaves to it. It matches the listener's rules, acts (forward,
//! redirect, fixed-response) and proxies to a target over hyper's pooled client (spec A.5).

use crate::routing::{
    AVOID_MS, CONNECT_TIMEOUT, HEADER_TIMEOUT, HOP, MAX_HEADERS, STICKY_COOKIE, error_page,
    location, now_ms, pick_group, pick_target, sticky_target, sticky_value, trace_id,
};
use crate::rules::Request;
use crate::{GroupConf, ListenerConf, Snapshot, TargetConf};
use arc_swap::ArcSwap;
use berth_node_api::lb;
use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

type Body = BoxBody<Bytes, hyper::Error>;
pub(crate) type Client = hyper_util::client::legacy::Client<HttpConnector, Body>;

pub(crate) fn client() -> Client {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    http.set_nodelay(true);
    hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build(http)
}

fn full(status: StatusCode, content_type: Option<&str>, body: impl Into<Bytes>) -> Response<Body> {
    let mut res = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed(),
    );
    *res.status_mut() = status;
    if let Some(ct) = content_type.and_then(|c| HeaderValue::from_str(c).ok()) {
        res.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    res
}

fn error(status: StatusCode) -> Response<Body> {
    full(status, Some("text/html"), error_page(status))
}

/// A connection whose first bytes were read ahead.
pub(crate) struct Prefixed {
    pub(crate) prefix: Bytes,
    pub(crate) stream: tokio::net::TcpStream,
}

impl tokio::io::AsyncRead for Prefixed {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Prefixed {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves the rest of a client connection with hyper: HTTP/2 without TLS, and the HTTP/1
/// requests the hand-written path leaves to it (see `h1`).
pub(crate) async fn connection(
    stream: Prefixed,
    peer: SocketAddr,
    port: u16,
    snapshot: Arc<ArcSwap<Snapshot>>,
    client: Arc<Client>,
) {
    let service = hyper::service::service_fn(move |req| {
        let (snapshot, client) = (snapshot.clone(), client.clone());
        async move {
            Ok::<_, std::convert::Infallible>(handle(req, peer, port, &snapshot, &client).await)
        }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_HEADERS);
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(
    req: http::Request<Incoming>,
    peer: SocketAddr,
    port: u16,
    snapshot: &ArcSwap<Snapshot>,
    client: &Client,
) -> Response<Body> {
    let snap = snapshot.load_full();
    let Some(listener) = snap.listeners.get(&port) else {
        return error(StatusCode::SERVICE_UNAVAILABLE);
    };
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_string();
    let action = {
        let view = Request {
            host: &host,
            path: req.uri().path(),
            query: req.uri().query().unwrap_or(""),
            method: req.method().as_str(),
            headers: req.headers(),
            client: peer.ip(),
        };
        listener
            .rules
            .iter()
            .find(|r| r.conditions.iter().all(|c| c.matches(&view)))
            .map(|r| &r.action)
    };
    let own = |res: Response<Body>| {
        listener.counters.answered(res.status().as_u16());
        res
    };
    match action {
        None => own(error(StatusCode::SERVICE_UNAVAILABLE)),
        Some(lb::Action::FixedResponse {
            status,
            content_type,
            body,
        }) => own(full(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
            content_type.as_deref(),
            Bytes::copy_from_slice(body.as_bytes()),
        )),
        Some(lb::Action::Redirect {
            protocol,
            host: to_host,
            port: to_port,
            path,
            query,
            status,
        }) => {
            let to = location(
                (
                    &host,
                    port,
                    req.uri().path(),
                    req.uri().query().unwrap_or(""),
                ),
                (protocol, to_host, to_port, path, query),
            );
            let mut res = full(
                StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND),
                None,
                Bytes::new(),
            );
            if let Ok(v) = HeaderValue::from_str(&to) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            own(res)
        }
        Some(lb::Action::Forward { groups }) => {
            let Some(group) = pick_group(&snap, groups) else {
                return own(error(StatusCode::SERVICE_UNAVAILABLE));
            };
            let counters = listener.group_counters.get(&group.arn);
            if let Some(c) = counters {
                c.request();
            }
            let started = std::time::Instant::now();
            let (res, from_target) = forward(req, peer, listener, &group, client).await;
            match (from_target, counters) {
                (true, Some(c)) => c.response(res.status().as_u16(), started.elapsed()),
                (false, _) => listener.counters.error(res.status().as_u16()),
                (true, None) => {}
            }
            res
        }
    }
}

async fn forward(
    req: http::Request<Incoming>,
    peer: SocketAddr,
    listener: &ListenerConf,
    group: &GroupConf,
    client: &Client,
) -> (Response<Body>, bool) {
    let sticky = sticky_target(group, req.headers());
    let Some(first) = sticky.or_else(|| pick_target(group, None)) else {
        return (error(StatusCode::SERVICE_UNAVAILABLE), false);
    };
    let (mut parts, body) = req.into_parts();
    for h in HOP {
        parts.headers.remove(*h);
    }
    // Targets speak HTTP/1.1, whatever the client spoke (HTTP/2 carries the host in the URI).
    parts.version = http::Version::HTTP_11;
    if !parts.headers.contains_key(header::HOST)
        && let Some(v) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(header::HOST, v);
    }
    let xff = match parts
        .headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(prior) => format!("{prior}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        parts.headers.insert("x-forwarded-for", v);
    }
    parts
        .headers
        .insert("x-forwarded-proto", HeaderValue::from_static("http"));
    let mut trace = Vec::new();
    let prior = parts.headers.get("x-amzn-trace-id").map(|v| v.as_bytes());
    trace_id(prior, &mut trace);
    if let Ok(v) = HeaderValue::from_bytes(&trace) {
        parts.headers.insert("x-amzn-trace-id", v);
    }
    parts
        .headers
        .insert("x-forwarded-port", HeaderValue::from(listener.port));
    // A request without a body can be sent again to another target if the first refuses.
    let bodiless = parts.method == http::Method::GET
        || parts.method == http::Method::HEAD
        || parts
            .headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() == b"0");
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let send = |target: &TargetConf, body: Body| {
        let mut out = http::Request::from_parts(parts.clone(), body);
        *out.uri_mut() = format!("http://{}{}", target.addr, path)
            .parse()
            .unwrap_or_default();
        let state = target.state.clone();
        state.outstanding.fetch_add(1, Ordering::Relaxed);
        let fut = client.request(out);
        let idle = listener.idle_timeout;
        async move {
            let r = tokio::time::timeout(idle, fut).await;
            state.outstanding.fetch_sub(1, Ordering::Relaxed);
            r
        }
    };
    let first_body: Body = if bodiless {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        body.boxed()
    };
    let outcome = send(first, first_body).await;
    // No response at all (refused, reset, closed): the target is avoided for a while, and a
    // request without a body is sent once more to another target.
    let outcome = match outcome {
        Ok(Err(e)) => {
            first
                .state
                .avoid_until
                .store(now_ms() + AVOID_MS, Ordering::Relaxed);
            match pick_target(group, Some(first)).filter(|_| bodiless) {
                Some(second) => {
                    let retried =
                        send(second, Empty::new().map_err(|never| match never {}).boxed()).await;
                    if matches!(retried, Ok(Err(_))) {
                        second
                            .state
                            .avoid_until
                            .store(now_ms() + AVOID_MS, Ordering::Relaxed);
                    }
                    retried
                }
                None => Ok(Err(e)),
            }
        }
        other => other,
    };
    match outcome {
        Ok(Ok(res)) => {
            let mut res = res.map(|b| b.boxed());
            if let Some(duration) = group.sticky {
                let value = format!(
                    "{STICKY_COOKIE}={}; Max-Age={}; Path=/",
                    sticky_value(first),
                    duration.as_secs()
                );
                if let Ok(v) = HeaderValue::from_str(&value) {
                    res.headers_mut().append(header::SET_COOKIE, v);
                }
            }
            (res, true)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "target failed");
            (error(StatusCode::BAD_GATEWAY), false)
        }
        Err(_) => (error(StatusCode::GATEWAY_TIMEOUT), false),
    }
}
