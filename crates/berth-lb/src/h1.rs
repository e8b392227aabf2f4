//! The hot path: HTTP/1.1 from clients to targets, by hand. A request head is parsed in place
//! (`httparse`), matched and rewritten into one buffer for the target; the response head is
//! rewritten the same way and both bodies are copied through as bytes, their framing
//! (`Content-Length`, chunked, or until close) tracked so connections stay reusable. Target
//! connections are pooled per worker thread, so a request touches no lock and wakes no other
//! thread.
//!
//! An `Upgrade` (WebSocket) request is forwarded with its `Connection` and `Upgrade`; if the
//! target answers `101`, the connection becomes a tunnel between client and target.
//!
//! What this path does not handle — HTTP/2 (h2c), HTTP/1.0, `Expect`, chunked request bodies,
//! upgrades with a body, absolute-form targets — it hands, with the rest of the connection, to
//! the general hyper stack (`proxy::connection`).

use crate::metrics::{GroupCounters, LbCounters};
use crate::proxy::{self, Client};
use crate::routing::{
    AVOID_MS, CONNECT_TIMEOUT, HEADER_TIMEOUT, HOP, MAX_HEADERS, STICKY_COOKIE, error_page,
    location, now_ms, pick_group, pick_target, sticky_target, sticky_value, trace_id,
};
use crate::rules::Request;
use crate::{GroupConf, Snapshot, TargetConf, TargetState};
use arc_swap::ArcSwap;
use berth_node_api::lb;
use http::StatusCode;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Read size (client and target buffers).
const READ: usize = 8 * 1024;
/// Header fields a head may carry (more: 431 from clients, 502 from targets).
const FIELDS: usize = 100;
/// How long a pooled target connection may stay idle before it is not reused.
const POOL_IDLE: Duration = Duration::from_secs(30);
/// Idle connections kept per target and worker thread.
const POOL_MAX: usize = 256;
/// The HTTP/2 connection preface (h2c with prior knowledge).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n";

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
        tokio::spawn(connection(
            stream,
            peer,
            port,
            snapshot.clone(),
            client.clone(),
        ));
    }
}

/// Serves one client connection until it closes.
pub(crate) async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    port: u16,
    snapshot: Arc<ArcSwap<Snapshot>>,
    fallback: Arc<Client>,
) {
    // Bytes read from the client and not yet handled. Nothing is allocated while the client is
    // idle between requests: 10,000 idle connections stay small.
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let idle = snapshot
            .load()
            .listeners
            .get(&port)
            .map_or(Duration::from_secs(60), |l| l.idle_timeout);
        let decide = |head: &[u8]| plan(head, peer, port, &snapshot.load());
        let Some(plan) = read_head(&mut stream, &mut buf, idle, decide).await else {
            return;
        };
        let keep = match plan {
            Plan::Answer { bytes, close } => write(&mut stream, &bytes, idle).await && !close,
            Plan::Forward(f) => Box::pin(forward(&mut stream, &mut buf, f)).await,
            Plan::Fallback => {
                let prefixed = proxy::Prefixed {
                    prefix: std::mem::take(&mut buf).into(),
                    stream,
                };
                Box::pin(proxy::connection(prefixed, peer, port, snapshot, fallback)).await;
                return;
            }
        };
        if !keep {
            Box::pin(linger(&mut stream)).await;
            return;
        }
    }
}

/// How long a closing connection's late bytes are read and dropped.
const LINGER: Duration = Duration::from_secs(2);

/// Closes our side first (FIN), then reads and drops what the client still sends for a moment:
/// closing on unread bytes would reset the connection, and a reset can destroy the answer
/// before the client reads it.
async fn linger(stream: &mut TcpStream) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Writes all of `bytes`, unless the peer stops reading for `idle`.
async fn write(stream: &mut TcpStream, bytes: &[u8], idle: Duration) -> bool {
    matches!(
        tokio::time::timeout(idle, stream.write_all(bytes)).await,
        Ok(Ok(()))
    )
}

/// Reads until `decide` makes a plan of the buffered head (it returns `None` while the head is
/// incomplete). The first byte may take the listener's idle timeout; the rest of the head
/// must follow within the header timeout (or the idle timeout, if shorter). `None`: the
/// client left or was too slow.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    idle: Duration,
    mut decide: impl FnMut(&[u8]) -> Option<(Plan, usize)>,
) -> Option<Plan> {
    let idle_until = Instant::now() + idle;
    let mut head_until = None;
    loop {
        if buf.is_empty() {
            // Idle (or a spurious wake-up): hold no buffer.
            if buf.capacity() > 0 {
                *buf = Vec::new();
            }
        } else {
            if let Some((plan, used)) = decide(buf) {
                buf.drain(..used);
                return Some(plan);
            }
            head_until.get_or_insert_with(|| Instant::now() + idle.min(HEADER_TIMEOUT));
        }
        let until = head_until.unwrap_or(idle_until);
        let n = tokio::time::timeout_at(until, read_some(stream, buf))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
    }
}

/// Reads what the client sent. The buffer is allocated only once the socket is readable, and
/// given back if that was a spurious wake-up. A short read marks the socket drained (tokio's
/// `poll_read`), so the next wait costs no extra `recv`.
async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        std::task::ready!(stream.poll_read_ready(cx))?;
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ);
        }
        let polled = tokio_util::io::poll_read_buf(std::pin::Pin::new(&mut *stream), cx, buf);
        if polled.is_pending() && buf.is_empty() {
            *buf = Vec::new();
        }
        polled
    })
    .await
}

/// What one request head asks for, decided without waiting.
enum Plan {
    /// Answer directly, then close the connection if told.
    Answer {
        bytes: Vec<u8>,
        close: bool,
    },
    Forward(Box<Forward>),
    /// Hand the connection, from this request on, to the hyper stack.
    Fallback,
}

/// A request on its way to a target group.
struct Forward {
    group: Arc<GroupConf>,
    /// The counters of the group behind this listener's load balancer, and of the load
    /// balancer itself.
    counters: Option<Arc<GroupCounters>>,
    lb: Arc<LbCounters>,
    /// The target a stickiness cookie names.
    sticky: Option<usize>,
    /// The rewritten head and the part of the body already read.
    head: Vec<u8>,
    /// Body bytes still to be copied from the client.
    remaining: u64,
    /// A `HEAD` request: the response has no body whatever its headers say.
    head_only: bool,
    /// The client asked to close after this response.
    close: bool,
    /// The client asked to switch protocols (`Upgrade`): a `101` answer turns the connection
    /// into a tunnel to the target.
    upgrade: bool,
    /// The listener's idle timeout: how long the target may stay silent.
    idle: Duration,
}

/// A response the load balancer writes itself (without the body when it answers `HEAD`).
fn answer(
    status: StatusCode,
    (content_type, location): (Option<&str>, Option<&str>),
    body: &[u8],
    close: bool,
    head_only: bool,
) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(128 + body.len());
    let _ = write!(
        bytes,
        "HTTP/1.1 {} {}\r\ncontent-length: {}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    if let Some(ct) = content_type {
        let _ = write!(bytes, "content-type: {ct}\r\n");
    }
    if let Some(to) = location {
        let _ = write!(bytes, "location: {to}\r\n");
    }
    if close {
        bytes.extend_from_slice(b"connection: close\r\n");
    }
    bytes.extend_from_slice(b"\r\n");
    if !head_only {
        bytes.extend_from_slice(body);
    }
    bytes
}

fn error(status: StatusCode, close: bool, head_only: bool) -> Vec<u8> {
    let page = error_page(status);
    answer(
        status,
        (Some("text/html"), None),
        page.as_bytes(),
        close,
        head_only,
    )
}

/// A head refused before it could be read: answered, and the connection closed.
fn refuse(status: StatusCode, buf: &[u8]) -> Option<(Plan, usize)> {
    let bytes = error(status, true, false);
    Some((Plan::Answer { bytes, close: true }, buf.len()))
}

/// Whether comma-separated `value` holds `token` (case-insensitive).
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|b| *b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// What the load balancer needs from a request head's fields.
#[derive(Default)]
struct Fields<'a> {
    host: Option<&'a [u8]>,
    length: Option<u64>,
    /// Two `Content-Length`s that disagree, or one that is not a number.
    bad_length: bool,
    chunked_or_coded: bool,
    close: bool,
    /// `Connection: upgrade`.
    connection_upgrade: bool,
    /// The `Upgrade` field's value (the protocol asked for, e.g. `websocket`).
    upgrade: Option<&'a [u8]>,
    expect: bool,
}

impl<'a> Fields<'a> {
    fn scan(headers: &[httparse::Header<'a>]) -> Fields<'a> {
        let mut f = Fields::default();
        for h in headers {
            let name = h.name.as_bytes();
            if name.eq_ignore_ascii_case(b"host") {
                f.host = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                let n = std::str::from_utf8(h.value.trim_ascii())
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok());
                match (n, f.length) {
                    (None, _) => f.bad_length = true,
                    (Some(n), Some(m)) if n != m => f.bad_length = true,
                    (Some(n), _) => f.length = Some(n),
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                f.chunked_or_coded = true;
            } else if name.eq_ignore_ascii_case(b"connection") {
                f.close |= has_token(h.value, "close");
                f.connection_upgrade |= has_token(h.value, "upgrade");
            } else if name.eq_ignore_ascii_case(b"upgrade") {
                f.upgrade = Some(h.value);
            } else if name.eq_ignore_ascii_case(b"expect") {
                f.expect = true;
            }
        }
        f
    }
}

/// Whether a request field is the load balancer's to set or drop.
fn replaced(name: &str) -> bool {
    HOP.iter().any(|h| name.eq_ignore_ascii_case(h))
        || [
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-port",
            "x-amzn-trace-id",
        ]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// Decides what to do with the head at the start of `buf`: `None` until it is complete, then
/// the plan and how many bytes of `buf` it used (the head, and the body bytes it carries).
fn plan(buf: &[u8], peer: SocketAddr, port: u16, snap: &Snapshot) -> Option<(Plan, usize)> {
    if buf.starts_with(H2_PREFACE) || H2_PREFACE.starts_with(buf) {
        // h2c with prior knowledge, or too little to tell yet.
        return (buf.len() >= H2_PREFACE.len()).then_some((Plan::Fallback, 0));
    }
    let mut fields = [httparse::EMPTY_HEADER; FIELDS];
    let mut req = httparse::Request::new(&mut fields);
    let n = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEADERS => {
            return refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, buf);
        }
        Ok(httparse::Status::Partial) => return None,
        Err(httparse::Error::TooManyHeaders) => {
            return refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, buf);
        }
        Err(_) => return refuse(StatusCode::BAD_REQUEST, buf),
    };
    if n > MAX_HEADERS {
        return refuse(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, buf);
    }
    let (method, target, headers) = (req.method?, req.path?, &*req.headers);
    let f = Fields::scan(headers);
    // Framed two ways (how requests are smuggled past proxies), or framed wrongly: refused.
    if f.bad_length || (f.length.is_some() && f.chunked_or_coded) {
        return refuse(StatusCode::BAD_REQUEST, buf);
    }
    // HTTP/1.1 requires a Host.
    if req.version == Some(1) && f.host.is_none() {
        return refuse(StatusCode::BAD_REQUEST, buf);
    }
    // An upgrade (WebSocket) is tunnelled once the target agrees; one with a body is left to
    // the general stack.
    let upgrade = f.upgrade.filter(|_| f.connection_upgrade);
    if req.version != Some(1)
        || f.chunked_or_coded
        || (upgrade.is_some() && f.length.is_some_and(|l| l > 0))
        || f.expect
        || !target.starts_with('/')
    {
        return Some((Plan::Fallback, 0));
    }
    let length = f.length.unwrap_or(0);
    let in_buf = length.min((buf.len() - n) as u64) as usize;
    let used = n + in_buf;
    // An answer that leaves part of the body unread closes the connection.
    let unread = length > in_buf as u64;
    let close = f.close || unread;
    let head_only = method == "HEAD";
    let answered = |bytes| Some((Plan::Answer { bytes, close }, used));
    let Some(listener) = snap.listeners.get(&port) else {
        return answered(error(StatusCode::SERVICE_UNAVAILABLE, close, head_only));
    };
    let own = |status: StatusCode| listener.counters.answered(status.as_u16());
    let host = f
        .host
        .and_then(|h| std::str::from_utf8(h).ok())
        .unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let view = Request {
        host,
        path,
        query,
        method,
        headers: &headers,
        client: peer.ip(),
    };
    let action = listener
        .rules
        .iter()
        .find(|r| r.conditions.iter().all(|c| c.matches(&view)))
        .map(|r| &r.action);
    let groups = match action {
        None => {
            own(StatusCode::SERVICE_UNAVAILABLE);
            return answered(error(StatusCode::SERVICE_UNAVAILABLE, close, head_only));
        }
        Some(lb::Action::FixedResponse {
            status,
            content_type,
            body,
        }) => {
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::OK);
            let ct = content_type.as_deref();
            own(status);
            return answered(answer(
                status,
                (ct, None),
                body.as_bytes(),
                close,
                head_only,
            ));
        }
        Some(lb::Action::Redirect {
            protocol,
            host: to_host,
            port: to_port,
            path: to_path,
            query: to_query,
            status,
        }) => {
            let to = location(
                (host, port, path, query),
                (protocol, to_host, to_port, to_path, to_query),
            );
            let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::FOUND);
            own(status);
            return answered(answer(status, (None, Some(&to)), b"", close, head_only));
        }
        Some(lb::Action::Forward { groups }) => groups,
    };
    let Some(group) = pick_group(snap, groups) else {
        own(StatusCode::SERVICE_UNAVAILABLE);
        return answered(error(StatusCode::SERVICE_UNAVAILABLE, close, head_only));
    };
    let counters = listener.group_counters.get(&group.arn).cloned();
    if let Some(c) = &counters {
        c.request();
    }
    let sticky = sticky_target(&group, &headers)
        .and_then(|t| group.targets.iter().position(|x| std::ptr::eq(x, t)));
    let mut head = Vec::with_capacity(used + 256);
    head.extend_from_slice(method.as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    let (mut forwarded_for, mut trace) = (Vec::new(), None);
    for h in headers {
        if replaced(h.name) {
            if h.name.eq_ignore_ascii_case("x-forwarded-for") {
                forwarded_for.extend_from_slice(h.value);
                forwarded_for.extend_from_slice(b", ");
            } else if h.name.eq_ignore_ascii_case("x-amzn-trace-id") {
                trace = Some(h.value);
            }
            continue;
        }
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"x-forwarded-for: ");
    head.extend_from_slice(&forwarded_for);
    let _ = write!(
        head,
        "{}\r\nx-forwarded-proto: http\r\nx-forwarded-port: {}\r\nx-amzn-trace-id: ",
        peer.ip(),
        listener.port
    );
    trace_id(trace, &mut head);
    head.extend_from_slice(b"\r\n");
    if let Some(protocol) = upgrade {
        head.extend_from_slice(b"connection: upgrade\r\nupgrade: ");
        head.extend_from_slice(protocol);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(&buf[n..used]);
    let forward = Forward {
        group,
        counters,
        lb: listener.counters.clone(),
        sticky,
        head,
        remaining: length - in_buf as u64,
        head_only,
        close: f.close,
        upgrade: upgrade.is_some(),
        idle: listener.idle_timeout,
    };
    Some((Plan::Forward(Box::new(forward)), used))
}

/// A connection to a target, with its read buffer.
struct Upstream {
    stream: TcpStream,
    buf: Vec<u8>,
}

thread_local! {
    /// Idle target connections of this worker thread, by address (most recent last).
    static POOL: RefCell<HashMap<SocketAddr, Vec<(Upstream, Instant)>>> =
        RefCell::new(HashMap::new());
}

/// A pooled connection to `addr` that has not been idle too long.
fn checkout(addr: SocketAddr) -> Option<Upstream> {
    POOL.with_borrow_mut(|pool| {
        let idle = pool.get_mut(&addr)?;
        let (up, since) = idle.pop()?;
        if since.elapsed() < POOL_IDLE {
            Some(up)
        } else {
            // The rest are older still.
            idle.clear();
            None
        }
    })
}

fn checkin(addr: SocketAddr, mut up: Upstream) {
    up.buf.clear();
    if up.buf.capacity() > 4 * READ {
        up.buf = Vec::with_capacity(READ);
    }
    POOL.with_borrow_mut(|pool| {
        let idle = pool.entry(addr).or_default();
        if idle.len() < POOL_MAX {
            idle.push((up, Instant::now()));
        }
    });
}

/// Closes this thread's pooled connections once they have been idle too long, every few
/// seconds, forever: targets come and go (every task has its own address), and a connection to
/// one that is gone would otherwise stay open until a request to that address came again.
pub(crate) async fn tend_pool() {
    let mut tick = tokio::time::interval(POOL_IDLE / 4);
    loop {
        tick.tick().await;
        POOL.with_borrow_mut(|pool| {
            pool.retain(|_, idle| {
                idle.retain(|(_, since)| since.elapsed() < POOL_IDLE);
                !idle.is_empty()
            });
        });
    }
}

/// Forgets the pooled connections to `addr` (the target closed one under us).
fn discard(addr: SocketAddr) {
    POOL.with_borrow_mut(|pool| pool.remove(&addr));
}

/// A request in flight to a target (least outstanding requests counts them).
struct InFlight<'a>(&'a TargetState);

impl<'a> InFlight<'a> {
    fn new(state: &'a TargetState) -> Self {
        state.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How an exchange with a target failed.
enum Failed {
    /// No response at all: refused, reset or closed before a byte came back.
    NoResponse,
    /// Silent past the idle timeout.
    Timeout,
    /// A broken or unreadable response, or the client went away mid-body.
    Broken,
}

/// How a response body ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    Empty,
    Length(u64),
    Chunked,
    UntilClose,
    /// No body: the connection switched protocols and is tunnelled until either side closes.
    Tunnel,
}

/// A target's response head, rewritten for the client.
struct ResponseHead {
    /// The target's status code.
    status: u16,
    /// The rewritten head.
    bytes: Vec<u8>,
    /// Its length in the target connection's buffer.
    len: usize,
    framing: Framing,
    /// The target will not take another request on this connection.
    close: bool,
}

/// Sends the request and reads the response head: on a pooled connection first, and if that
/// turns out closed under us, on a new one (when the request can be sent again).
async fn exchange(
    target: &TargetConf,
    f: &Forward,
    client: &mut TcpStream,
    client_buf: &mut Vec<u8>,
    cookie: Option<&str>,
) -> Result<(Upstream, ResponseHead), Failed> {
    let mut pooled = checkout(target.addr);
    // A request that cannot be sent again (its body streams from the client) only goes on a
    // pooled connection the target has not closed meanwhile.
    while f.remaining > 0
        && let Some(up) = pooled.take()
    {
        if still_open(&up) {
            pooled = Some(up);
            break;
        }
        pooled = checkout(target.addr);
    }
    loop {
        let reused = pooled.is_some();
        let mut up = match pooled.take() {
            Some(up) => up,
            None => connect(target.addr).await?,
        };
        match send(&mut up, f, client, client_buf, cookie).await {
            Ok(head) => return Ok((up, head)),
            Err(Failed::NoResponse) if reused && f.remaining == 0 => {
                discard(target.addr);
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether an idle connection is still open: nothing to read, not even an end of stream.
fn still_open(up: &Upstream) -> bool {
    let mut byte = [0u8; 1];
    matches!(up.stream.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

async fn connect(addr: SocketAddr) -> Result<Upstream, Failed> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            let _ = stream.set_nodelay(true);
            Ok(Upstream {
                stream,
                buf: Vec::with_capacity(READ),
            })
        }
        Ok(Err(_)) => Err(Failed::NoResponse),
        Err(_) => Err(Failed::Timeout),
    }
}

async fn send(
    up: &mut Upstream,
    f: &Forward,
    client: &mut TcpStream,
    client_buf: &mut Vec<u8>,
    cookie: Option<&str>,
) -> Result<ResponseHead, Failed> {
    if !write(&mut up.stream, &f.head, f.idle).await {
        return Err(Failed::NoResponse);
    }
    let mut remaining = f.remaining;
    while remaining > 0 {
        // The head's buffer is empty by now: the body's rest arrives in it.
        if client_buf.capacity() - client_buf.len() < 1024 {
            client_buf.reserve(READ);
        }
        let read = tokio::time::timeout(f.idle, client.read_buf(client_buf)).await;
        let n = match read {
            Ok(Ok(n)) if n > 0 => n,
            _ => return Err(Failed::Broken),
        };
        let take = remaining.min(n as u64) as usize;
        if !write(&mut up.stream, &client_buf[..take], f.idle).await {
            return Err(Failed::Broken);
        }
        client_buf.drain(..take);
        remaining -= take as u64;
    }
    let read = async {
        loop {
            if up.buf.capacity() - up.buf.len() < 1024 {
                up.buf.reserve(READ);
            }
            match up.stream.read_buf(&mut up.buf).await {
                Ok(0) | Err(_) if up.buf.is_empty() => return Err(Failed::NoResponse),
                Ok(0) | Err(_) => return Err(Failed::Broken),
                Ok(_) => {}
            }
            match response_head(&up.buf, f, cookie)? {
                Some(head) if head.len == 0 => {} // only interim (1xx) responses so far
                Some(head) => return Ok(head),
                None => {}
            }
        }
    };
    tokio::time::timeout(f.idle, read)
        .await
        .map_err(|_| Failed::Timeout)?
}

/// Parses the response head at the start of `buf`, past any interim (1xx) responses, and
/// rewrites it for the client; `len` 0 when only interim responses came so far. `None` while
/// incomplete.
fn response_head(
    buf: &[u8],
    f: &Forward,
    cookie: Option<&str>,
) -> Result<Option<ResponseHead>, Failed> {
    let mut start = 0;
    loop {
        let mut fields = [httparse::EMPTY_HEADER; FIELDS];
        let mut res = httparse::Response::new(&mut fields);
        let n = match res.parse(&buf[start..]) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() - start > MAX_HEADERS => {
                return Err(Failed::Broken);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Failed::Broken),
        };
        let status = res.code.ok_or(Failed::Broken)?;
        if status == 101 && f.upgrade {
            // The target switches protocols: its answer goes through whole (with its
            // `Connection` and `Upgrade`), then the connection is a tunnel.
            let mut bytes = Vec::with_capacity(n + 32);
            let _ = write!(bytes, "HTTP/1.1 101 {}\r\n", res.reason.unwrap_or_default());
            for h in res.headers.iter().filter(|h| {
                !h.name.eq_ignore_ascii_case("keep-alive")
                    && !h.name.eq_ignore_ascii_case("proxy-connection")
            }) {
                bytes.extend_from_slice(h.name.as_bytes());
                bytes.extend_from_slice(b": ");
                bytes.extend_from_slice(h.value);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"\r\n");
            return Ok(Some(ResponseHead {
                status,
                bytes,
                len: start + n,
                framing: Framing::Tunnel,
                close: true,
            }));
        }
        if (100..200).contains(&status) {
            // 101 switches protocols, which only an upgrade request may be answered with.
            if status == 101 {
                return Err(Failed::Broken);
            }
            start += n;
            if start == buf.len() {
                return Ok(Some(ResponseHead {
                    status,
                    bytes: Vec::new(),
                    len: 0,
                    framing: Framing::Empty,
                    close: false,
                }));
            }
            continue;
        }
        // Framed by Transfer-Encoding, a Content-Length is dropped (a client must never see
        // both).
        let coded = res
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
        let mut framing = Framing::UntilClose;
        let mut close = res.version != Some(1);
        let mut length = None;
        let mut bytes = Vec::with_capacity(n + 96);
        let _ = write!(
            bytes,
            "HTTP/1.1 {status} {}\r\n",
            res.reason.unwrap_or_default()
        );
        for h in res.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("transfer-encoding") {
                let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default();
                framing = if last.trim_ascii().eq_ignore_ascii_case(b"chunked") {
                    Framing::Chunked
                } else {
                    Framing::UntilClose
                };
            } else if name.eq_ignore_ascii_case("content-length") {
                if coded {
                    continue;
                }
                length = std::str::from_utf8(h.value.trim_ascii())
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                if length.is_none() {
                    return Err(Failed::Broken);
                }
            }
            if name.eq_ignore_ascii_case("connection") {
                close |= has_token(h.value, "close");
                continue;
            }
            if ["keep-alive", "proxy-connection", "upgrade"]
                .iter()
                .any(|hop| name.eq_ignore_ascii_case(hop))
            {
                continue;
            }
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(h.value);
            bytes.extend_from_slice(b"\r\n");
        }
        if framing == Framing::UntilClose
            && let Some(n) = length
        {
            framing = Framing::Length(n);
        }
        if f.head_only || status == 204 || status == 304 {
            framing = Framing::Empty;
        }
        if let Some(c) = cookie {
            let _ = write!(bytes, "set-cookie: {c}\r\n");
        }
        if f.close || framing == Framing::UntilClose {
            bytes.extend_from_slice(b"connection: close\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        return Ok(Some(ResponseHead {
            status,
            bytes,
            len: start + n,
            framing,
            close,
        }));
    }
}

/// Proxies one request: the target, the response back. Returns whether the client connection
/// can take another request.
async fn forward(client: &mut TcpStream, client_buf: &mut Vec<u8>, f: Box<Forward>) -> bool {
    let group = &f.group;
    let Some(first) = f
        .sticky
        .map(|i| &group.targets[i])
        .or_else(|| pick_target(group, None))
    else {
        f.lb.error(503);
        return reply(client, StatusCode::SERVICE_UNAVAILABLE, &f).await;
    };
    let cookie = group.sticky.map(|d| {
        format!(
            "{STICKY_COOKIE}={}; Max-Age={}; Path=/",
            sticky_value(first),
            d.as_secs()
        )
    });
    let cookie = cookie.as_deref();
    let avoid = |t: &TargetConf| {
        t.state
            .avoid_until
            .store(now_ms() + AVOID_MS, Ordering::Relaxed)
    };
    let mut target = first;
    let mut in_flight = InFlight::new(&target.state);
    let started = std::time::Instant::now();
    let mut outcome = exchange(target, &f, client, client_buf, cookie).await;
    // No response at all: the target is avoided for a while, and a request the load balancer
    // still holds whole is sent once more, to another target.
    if matches!(outcome, Err(Failed::NoResponse)) {
        avoid(first);
        if f.remaining == 0
            && let Some(second) = pick_target(group, Some(first))
        {
            target = second;
            in_flight = InFlight::new(&target.state);
            outcome = exchange(target, &f, client, client_buf, cookie).await;
            if matches!(outcome, Err(Failed::NoResponse)) {
                avoid(second);
            }
        }
    }
    let (mut up, head) = match outcome {
        Ok(ok) => ok,
        Err(Failed::Timeout) => {
            f.lb.error(504);
            return reply(client, StatusCode::GATEWAY_TIMEOUT, &f).await;
        }
        Err(Failed::NoResponse | Failed::Broken) => {
            f.lb.error(502);
            return reply(client, StatusCode::BAD_GATEWAY, &f).await;
        }
    };
    if let Some(c) = &f.counters {
        c.response(head.status, started.elapsed());
    }
    if head.framing == Framing::Tunnel {
        drop(in_flight);
        tunnel(client, client_buf, up, head, f.idle).await;
        return false;
    }
    let close = f.close || head.framing == Framing::UntilClose;
    let mut out = head.bytes;
    let mut body = Body::new(head.framing);
    let avail = &up.buf[head.len..];
    let Some((take, mut done)) = body.feed(avail) else {
        return false;
    };
    out.extend_from_slice(&avail[..take]);
    let mut reusable = !head.close && take == avail.len();
    if !write(client, &out, f.idle).await {
        return false;
    }
    drop(out);
    while !done {
        up.buf.clear();
        let read = tokio::time::timeout(f.idle, up.stream.read_buf(&mut up.buf)).await;
        let n = match read {
            Ok(Ok(n)) => n,
            _ => return false,
        };
        if n == 0 {
            // The end of a body that runs until the target closes; else a broken one.
            if body.framing == Framing::UntilClose {
                reusable = false;
                break;
            }
            return false;
        }
        let Some((take, end)) = body.feed(&up.buf) else {
            return false;
        };
        done = end;
        reusable &= take == up.buf.len();
        if !write(client, &up.buf[..take], f.idle).await {
            return false;
        }
    }
    drop(in_flight);
    if reusable {
        checkin(target.addr, up);
    }
    !close
}

/// Relays a connection that switched protocols (a WebSocket): the target's `101` and whatever
/// either side sent after it first, then bytes both ways until one side closes or both stay
/// silent past the idle timeout.
async fn tunnel(
    client: &mut TcpStream,
    client_buf: &mut Vec<u8>,
    mut up: Upstream,
    head: ResponseHead,
    idle: Duration,
) {
    let mut out = head.bytes;
    out.extend_from_slice(&up.buf[head.len..]);
    if !write(client, &out, idle).await || !write(&mut up.stream, client_buf, idle).await {
        return;
    }
    client_buf.clear();
    let (mut from_client, mut to_client) = client.split();
    let (mut from_target, mut to_target) = up.stream.split();
    let (mut a, mut b) = (vec![0u8; READ], vec![0u8; READ]);
    loop {
        tokio::select! {
            read = from_client.read(&mut a) => match read {
                Ok(n) if n > 0 => {
                    if to_target.write_all(&a[..n]).await.is_err() {
                        return;
                    }
                }
                _ => return,
            },
            read = from_target.read(&mut b) => match read {
                Ok(n) if n > 0 => {
                    if to_client.write_all(&b[..n]).await.is_err() {
                        return;
                    }
                }
                _ => return,
            },
            () = tokio::time::sleep(idle) => return,
        }
    }
}

/// Answers an error of the load balancer's own, closing when part of the body is unread.
async fn reply(client: &mut TcpStream, status: StatusCode, f: &Forward) -> bool {
    let close = f.close || f.remaining > 0;
    let bytes = error(status, close, f.head_only);
    write(client, &bytes, f.idle).await && !close
}

/// Tracks where a response body ends as its bytes pass through.
struct Body {
    framing: Framing,
    left: u64,
    chunks: Chunked,
}

impl Body {
    fn new(framing: Framing) -> Body {
        Body {
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            chunks: Chunked::default(),
        }
    }

    /// How many of `data`'s bytes belong to the body, and whether it ended with them; `None`
    /// when the framing is broken.
    fn feed(&mut self, data: &[u8]) -> Option<(usize, bool)> {
        match self.framing {
            Framing::Empty | Framing::Tunnel => Some((0, true)),
            Framing::UntilClose => Some((data.len(), false)),
            Framing::Length(_) => {
                let take = self.left.min(data.len() as u64);
                self.left -= take;
                Some((take as usize, self.left == 0))
            }
            Framing::Chunked => match self.chunks.feed(data)? {
                Some(end) => Some((end, true)),
                None => Some((data.len(), false)),
            },
        }
    }
}

/// Where a chunked body is in its framing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// In a chunk-size line: the hex digits so far.
    #[default]
    Size,
    /// After the size: an extension, up to the line end.
    Extension,
    /// The size line's CR seen.
    SizeLf,
    /// In the chunk's data.
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    Trailer,
    EndLf,
}

/// Finds the end of a chunked body, fed its bytes in any pieces.
#[derive(Debug, Default)]
struct Chunked {
    state: Chunk,
    size: u64,
    digits: u32,
}

impl Chunked {
    /// `Some(Some(n))`: the body ends after `n` bytes of `data`; `Some(None)`: all of `data` is
    /// body, more follows; `None`: not chunked framing.
    fn feed(&mut self, data: &[u8]) -> Option<Option<usize>> {
        let mut i = 0;
        while i < data.len() {
            let b = data[i];
            self.state = match self.state {
                Chunk::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = (b as char).to_digit(16)? as u64;
                        self.digits += 1;
                        if self.digits > 15 {
                            return None;
                        }
                        self.size = self.size * 16 + digit;
                        Chunk::Size
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => Chunk::Extension,
                    b'\r' if self.digits > 0 => Chunk::SizeLf,
                    b'\n' if self.digits > 0 => self.size_done(),
                    _ => return None,
                },
                Chunk::Extension => match b {
                    b'\r' => Chunk::SizeLf,
                    b'\n' => self.size_done(),
                    _ => Chunk::Extension,
                },
                Chunk::SizeLf if b == b'\n' => self.size_done(),
                Chunk::SizeLf => return None,
                Chunk::Data => {
                    let take = self.size.min((data.len() - i) as u64);
                    self.size -= take;
                    i += take as usize;
                    if self.size == 0 {
                        self.state = Chunk::DataCr;
                    }
                    continue;
                }
                Chunk::DataCr if b == b'\r' => Chunk::DataLf,
                Chunk::DataCr | Chunk::DataLf if b == b'\n' => Chunk::Size,
                Chunk::DataCr | Chunk::DataLf => return None,
                Chunk::TrailerStart => match b {
                    b'\r' => Chunk::EndLf,
                    b'\n' => return Some(Some(i + 1)),
                    _ => Chunk::Trailer,
                },
                Chunk::Trailer if b == b'\n' => Chunk::TrailerStart,
                Chunk::Trailer => Chunk::Trailer,
                Chunk::EndLf if b == b'\n' => return Some(Some(i + 1)),
                Chunk::EndLf => return None,
            };
            i += 1;
        }
        Some(None)
    }

    fn size_done(&mut self) -> Chunk {
        self.digits = 0;
        if self.size == 0 {
            Chunk::TrailerStart
        } else {
            Chunk::Data
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] =
        b"5\r\nhello\r\n1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nTrailer: x\r\n\r\nNEXT";

    #[test]
    fn h1_chunked_bodies_end_where_their_framing_says_in_any_pieces() {
        let end = BODY.len() - 4;
        assert_eq!(Chunked::default().feed(BODY), Some(Some(end)));
        for split in 1..BODY.len() {
            let mut c = Chunked::default();
            let (a, b) = BODY.split_at(split);
            match c.feed(a) {
                Some(Some(n)) => assert_eq!(n, end, "split at {split}"),
                Some(None) => assert_eq!(c.feed(b), Some(Some(end - split)), "split at {split}"),
                None => panic!("split at {split}: refused"),
            }
        }
        let mut c = Chunked::default();
        let ended = BODY
            .iter()
            .position(|b| c.feed(std::slice::from_ref(b)) == Some(Some(1)));
        assert_eq!(ended, Some(end - 1), "fed a byte at a time");
        assert_eq!(
            Chunked::default().feed(b"0\r\n\r\n"),
            Some(Some(5)),
            "an empty body"
        );
        assert_eq!(Chunked::default().feed(b"zz\r\n"), None, "not hex");
        assert_eq!(
            Chunked::default().feed(b"3\r\nabcX"),
            None,
            "no CRLF after data"
        );
        assert_eq!(
            Chunked::default().feed(b"ffffffffffffffff\r\n"),
            None,
            "a size past 60 bits"
        );
    }

    #[test]
    fn h1_bodies_by_length_stop_at_the_length() {
        let mut b = Body::new(Framing::Length(5));
        assert_eq!(b.feed(b"abc"), Some((3, false)));
        assert_eq!(b.feed(b"deXYZ"), Some((2, true)));
        assert_eq!(Body::new(Framing::Empty).feed(b"x"), Some((0, true)));
        assert_eq!(
            Body::new(Framing::UntilClose).feed(b"xyz"),
            Some((3, false))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn h1_pooled_connections_idle_too_long_are_closed() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut target_side, _) = listener.accept().await.unwrap();
        checkin(
            addr,
            Upstream {
                stream,
                buf: Vec::new(),
            },
        );
        let tend = tokio::spawn(tend_pool());
        tokio::time::sleep(POOL_IDLE / 2).await;
        assert!(
            POOL.with_borrow(|p| p.contains_key(&addr)),
            "kept while fresh"
        );
        tokio::time::sleep(POOL_IDLE).await;
        assert!(POOL.with_borrow(|p| p.is_empty()), "closed once idle");
        let mut byte = [0u8; 1];
        assert_eq!(
            target_side.read(&mut byte).await.unwrap(),
            0,
            "the target sees EOF"
        );
        tend.abort();
    }

    #[test]
    fn h1_tokens_and_fields() {
        assert!(has_token(b"keep-alive, Close", "close"));
        assert!(!has_token(b"closed", "close"));
        let fields = [
            httparse::Header {
                name: "Content-Length",
                value: b"5",
            },
            httparse::Header {
                name: "content-length",
                value: b"6",
            },
        ];
        assert!(Fields::scan(&fields).bad_length, "disagreeing lengths");
        let fields = [httparse::Header {
            name: "Content-Length",
            value: b"+5",
        }];
        assert!(Fields::scan(&fields).bad_length, "a sign is not a length");
    }
}
