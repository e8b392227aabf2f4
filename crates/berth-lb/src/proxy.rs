//! The request path: accept, match the listener's rules, act (forward, redirect,
//! fixed-response) and proxy to a target over pooled connections (spec A.5).

use crate::rules::{Headers, Request};
use crate::{ActionConf, Algorithm, GroupConf, Health, ListenerConf, Snapshot, TargetConf};
use arc_swap::ArcSwap;
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

/// Headers a client may send: 64 KiB in all (requests beyond get 431).
pub(crate) const MAX_HEADERS: usize = 64 * 1024;
/// How long a client may take to send its request headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to a target may take (then 504).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The body of an error the load balancer itself answers.
pub(crate) fn error_page(status: StatusCode) -> String {
    format!(
        "<html><body><h1>{} {}</h1></body></html>\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
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

/// Serves one listener port until aborted.
pub(crate) async fn serve(
    socket: tokio::net::TcpListener,
    port: u16,
    snapshot: Arc<ArcSwap<Snapshot>>,
    client: Client,
) {
    // Shared by reference: a connection's task then holds a pointer, not a client.
    let client = Arc::new(client);
    loop {
        let Ok((stream, peer)) = socket.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(crate::h1::connection(
            stream,
            peer,
            port,
            snapshot.clone(),
            client.clone(),
        ));
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
    match action {
        None => error(StatusCode::SERVICE_UNAVAILABLE),
        Some(ActionConf::Fixed {
            status,
            content_type,
            body,
        }) => full(
            StatusCode::from_u16(*status).unwrap_or(StatusCode::OK),
            content_type.as_deref(),
            Bytes::copy_from_slice(body.as_bytes()),
        ),
        Some(ActionConf::Redirect {
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
            res
        }
        Some(ActionConf::Forward(groups)) => {
            let Some(group) = pick_group(&snap, groups) else {
                return error(StatusCode::SERVICE_UNAVAILABLE);
            };
            forward(req, peer, listener, &group, client).await
        }
    }
}

/// The redirect's `Location`, with `#{protocol}`, `#{host}`, `#{port}`, `#{path}` (without
/// its leading `/`) and `#{query}` replaced by the request's.
pub(crate) fn location(
    (host, port, req_path, req_query): (&str, u16, &str, &str),
    (protocol, to_host, to_port, path, query): (&str, &str, &str, &str, &str),
) -> String {
    let bare_host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let fill = |s: &str| {
        s.replace("#{protocol}", "http")
            .replace("#{host}", bare_host)
            .replace("#{port}", &port.to_string())
            .replace("#{path}", req_path.trim_start_matches('/'))
            .replace("#{query}", req_query)
    };
    let (scheme, to_host, to_port, path, query) = (
        fill(protocol).to_ascii_lowercase(),
        fill(to_host),
        fill(to_port),
        fill(path),
        fill(query),
    );
    let default_port =
        (scheme == "http" && to_port == "80") || (scheme == "https" && to_port == "443");
    let mut location = format!("{scheme}://{to_host}");
    if !default_port {
        location.push(':');
        location.push_str(&to_port);
    }
    location.push_str(&path);
    if !query.is_empty() {
        location.push('?');
        location.push_str(&query);
    }
    location
}

/// A weighted random choice among the action's target groups.
pub(crate) fn pick_group(snap: &Snapshot, groups: &[(String, u32)]) -> Option<Arc<GroupConf>> {
    let total: u32 = groups.iter().map(|(_, w)| *w).sum();
    let chosen = if groups.len() == 1 || total == 0 {
        &groups.first()?.0
    } else {
        let mut roll = rand::random_range(0..total);
        let mut chosen = &groups[0].0;
        for (arn, w) in groups {
            if roll < *w {
                chosen = arn;
                break;
            }
            roll -= w;
        }
        chosen
    };
    snap.groups.get(chosen).cloned()
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// How long a target that failed a request is avoided.
pub(crate) const AVOID_MS: i64 = 5_000;

/// A target for the next request, never a draining one nor `except`: a healthy one that has
/// not just failed; else any that has not just failed (fail open); else any.
pub(crate) fn pick_target<'a>(
    group: &'a GroupConf,
    except: Option<&TargetConf>,
) -> Option<&'a TargetConf> {
    let now = now_ms();
    let usable =
        |t: &TargetConf| !t.draining && except.is_none_or(|e| e.id != t.id || e.port != t.port);
    let fresh = |t: &TargetConf| usable(t) && t.state.avoid_until.load(Ordering::Relaxed) <= now;
    let healthy = |t: &TargetConf| fresh(t) && t.state.health() == Health::Healthy;
    // The first non-empty tier, chosen without allocating (this runs for every request).
    let tiers: [&dyn Fn(&TargetConf) -> bool; 3] = [&healthy, &fresh, &usable];
    let (tier, n) = tiers
        .iter()
        .map(|f| (*f, group.targets.iter().filter(|t| f(t)).count()))
        .find(|(_, n)| *n > 0)?;
    let mut pool = group.targets.iter().filter(|t| tier(t));
    if let Some(ramp) = group.slow_start
        && group.algorithm == Algorithm::RoundRobin
    {
        // Slow start: a target that became healthy less than `ramp` ago gets a share growing
        // linearly from 0 — while some target past its ramp takes the rest.
        let ramp = ramp.as_millis() as f64;
        let share = |t: &TargetConf| {
            let since = t.state.healthy_since.load(Ordering::Relaxed);
            let warm = (now - since) as f64 / ramp;
            if t.state.health() == Health::Healthy && warm < 1.0 {
                warm.max(0.0)
            } else {
                1.0
            }
        };
        let pool = || group.targets.iter().filter(|t| tier(t));
        if pool().any(|t| share(t) < 1.0) && pool().any(|t| share(t) >= 1.0) {
            let total: f64 = pool().map(share).sum();
            let mut roll = rand::random::<f64>() * total;
            for t in pool() {
                roll -= share(t);
                if roll < 0.0 {
                    return Some(t);
                }
            }
            return pool().filter(|t| share(t) >= 1.0).last();
        }
    }
    match group.algorithm {
        Algorithm::RoundRobin => pool.nth(group.next.fetch_add(1, Ordering::Relaxed) % n),
        Algorithm::LeastOutstanding => {
            pool.min_by_key(|t| t.state.outstanding.load(Ordering::Relaxed))
        }
    }
}

/// The stickiness cookie (the name ALB uses).
pub(crate) const STICKY_COOKIE: &str = "AWSALB";

/// The cookie value naming a target: its id and port, hex-encoded.
pub(crate) fn sticky_value(t: &TargetConf) -> String {
    format!("{}:{}", t.id, t.port)
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The target the client's `AWSALB` cookie names (lb_cookie stickiness), while it is usable.
pub(crate) fn sticky_target<'a>(
    group: &'a GroupConf,
    headers: &dyn Headers,
) -> Option<&'a TargetConf> {
    group.sticky?;
    let mut found = None;
    headers.any_value("cookie", &mut |v| {
        found = v
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(k, _)| *k == STICKY_COOKIE)
            .and_then(|(_, wanted)| {
                group.targets.iter().find(|t| {
                    !t.draining
                        && t.state.health() != Health::Unhealthy
                        && sticky_value(t) == wanted
                })
            });
        found.is_some()
    });
    found
}

/// Hop-by-hop headers, not forwarded.
pub(crate) const HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

async fn forward(
    req: http::Request<Incoming>,
    peer: SocketAddr,
    listener: &ListenerConf,
    group: &GroupConf,
    client: &Client,
) -> Response<Body> {
    let sticky = sticky_target(group, req.headers());
    let Some(first) = sticky.or_else(|| pick_target(group, None)) else {
        return error(StatusCode::SERVICE_UNAVAILABLE);
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
    // X-Amzn-Trace-Id: Root=1-<epoch seconds, hex>-<96 random bits>; an existing one gets Self=.
    let trace = format!(
        "1-{:08x}-{:024x}",
        now_ms() / 1000,
        rand::random::<u128>() >> 32
    );
    let trace = match parts
        .headers
        .get("x-amzn-trace-id")
        .and_then(|v| v.to_str().ok())
    {
        Some(prior) => format!("Self={trace};{prior}"),
        None => format!("Root={trace}"),
    };
    if let Ok(v) = HeaderValue::from_str(&trace) {
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
            res
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "target failed");
            error(StatusCode::BAD_GATEWAY)
        }
        Err(_) => error(StatusCode::GATEWAY_TIMEOUT),
    }
}
