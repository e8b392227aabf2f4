//! The data plane with in-process backends: rule matching, balancing, health transitions,
//! draining, 502/503/504, the retry on a refused connection, and request smuggling attempts.

use berth_lb::{DataPlane, Health, HealthSink};
use berth_node_api::lb::{
    Action, Algorithm, Condition, Config, HealthCheck, Listener, QueryPair, Rule, Target,
    TargetGroup, WeightedGroup,
};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// A backend answering its name (and the X-Forwarded-* it saw); `/health` answers `health`;
/// `/slow` never answers.
struct Backend {
    port: u16,
    hits: Arc<AtomicUsize>,
    health: Arc<AtomicU16>,
}

async fn backend(name: &'static str) -> Backend {
    let socket = tokio::net::TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let health = Arc::new(AtomicU16::new(200));
    let (h, s) = (hits.clone(), health.clone());
    tokio::spawn(async move {
        loop {
            let (stream, _) = socket.accept().await.unwrap();
            let (h, s) = (h.clone(), s.clone());
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let (h, s) = (h.clone(), s.clone());
                        async move {
                            let path = req.uri().path().to_string();
                            if path == "/health" {
                                let mut res = http::Response::new(Full::new(bytes::Bytes::new()));
                                *res.status_mut() =
                                    http::StatusCode::from_u16(s.load(Ordering::Relaxed)).unwrap();
                                return Ok::<_, std::convert::Infallible>(res);
                            }
                            if path == "/slow" {
                                // Silent: a target that never answers.
                                std::future::pending::<()>().await;
                            }
                            if path == "/echo" {
                                use http_body_util::BodyExt;
                                let body = req.into_body().collect().await.unwrap().to_bytes();
                                return Ok(http::Response::new(Full::new(body)));
                            }
                            h.fetch_add(1, Ordering::Relaxed);
                            let seen = |n: &str| {
                                req.headers()
                                    .get(n)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("")
                                    .to_string()
                            };
                            let body = format!(
                                "{name} xff={} proto={} port={} trace={}",
                                seen("x-forwarded-for"),
                                seen("x-forwarded-proto"),
                                seen("x-forwarded-port"),
                                seen("x-amzn-trace-id")
                            );
                            Ok(http::Response::new(Full::new(bytes::Bytes::from(body))))
                        }
                    });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Backend { port, hits, health }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind((LOCAL, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn target(port: u16, draining: bool) -> Target {
    Target {
        id: "127.0.0.1".into(),
        port,
        ip: Some(LOCAL),
        draining,
    }
}

fn sticky(mut g: TargetGroup) -> TargetGroup {
    g.stickiness_seconds = Some(86_400);
    g
}

fn group(name: &str, targets: Vec<Target>) -> TargetGroup {
    TargetGroup {
        arn: format!("arn:tg/{name}"),
        algorithm: Algorithm::RoundRobin,
        stickiness_seconds: None,
        slow_start_seconds: None,
        health_check: HealthCheck {
            path: "/health".into(),
            port: None,
            interval_seconds: 1,
            timeout_seconds: 1,
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            matcher: vec![(200, 299)],
        },
        targets,
    }
}

fn rule(conditions: Vec<Condition>, action: Action) -> Rule {
    Rule { conditions, action }
}

fn forward(group: &str) -> Action {
    Action::Forward {
        groups: vec![WeightedGroup {
            target_group_arn: format!("arn:tg/{group}"),
            weight: 1,
        }],
    }
}

fn path(pattern: &str) -> Condition {
    Condition::PathPattern {
        values: vec![pattern.into()],
    }
}

type Transitions = Arc<Mutex<Vec<(u16, Health, Option<&'static str>)>>>;

/// A data plane with one listener on a free port running `rules` over `groups`.
async fn plane(
    rules: Vec<Rule>,
    groups: Vec<TargetGroup>,
    idle_timeout: u64,
) -> (Arc<DataPlane>, u16, Transitions) {
    let seen: Transitions = Arc::default();
    let s = seen.clone();
    let sink: HealthSink = Arc::new(move |_, _, port, h, reason| {
        s.lock().unwrap().push((port as u16, h, reason));
    });
    let plane = DataPlane::new(LOCAL, sink);
    let port = free_port();
    let config = Config {
        version: berth_node_api::VERSION,
        listeners: vec![Listener {
            port,
            load_balancer: "app/test/1".into(),
            rules,
            idle_timeout_seconds: idle_timeout,
        }],
        target_groups: groups,
        metrics_interval_ms: 60_000,
    };
    let failed = plane.apply(&config, &|_| None).await;
    assert!(failed.is_empty(), "{failed:?}");
    (plane, port, seen)
}

/// A data plane whose one listener forwards everything to the target on `target_port`.
async fn one_target(target_port: u16, idle_timeout: u64) -> (Arc<DataPlane>, u16, Transitions) {
    plane(
        vec![rule(vec![], forward("a"))],
        vec![group("a", vec![target(target_port, false)])],
        idle_timeout,
    )
    .await
}

/// Sends raw bytes and reads the whole response (the request asks to close).
async fn raw(port: u16, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect((LOCAL, port)).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn get(port: u16, path: &str, host: &str) -> (u16, String) {
    let text = raw(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await;
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (status, body)
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn lb_routes_by_rules_and_balances_round_robin() {
    let a: Vec<Backend> = vec![
        backend("a0").await,
        backend("a1").await,
        backend("a2").await,
    ];
    let b = backend("b").await;
    let rules = vec![
        rule(vec![path("/b/*")], forward("b")),
        rule(
            vec![Condition::HostHeader {
                values: vec!["*.fixed.test".into()],
            }],
            Action::FixedResponse {
                status: 418,
                content_type: Some("text/plain".into()),
                body: "teapot".into(),
            },
        ),
        rule(
            vec![Condition::QueryString {
                values: vec![QueryPair {
                    key: Some("go".into()),
                    value: "v2".into(),
                }],
            }],
            Action::Redirect {
                protocol: "#{protocol}".into(),
                host: "#{host}".into(),
                port: "#{port}".into(),
                path: "/v2/#{path}".into(),
                query: "#{query}".into(),
                status: 301,
            },
        ),
        rule(vec![], forward("a")),
    ];
    let groups = vec![
        group("a", a.iter().map(|x| target(x.port, false)).collect()),
        group("b", vec![target(b.port, false)]),
    ];
    let (_plane, port, seen) = plane(rules, groups, 60).await;
    // Round robin runs over the healthy targets: count only once all four have been checked.
    until("all targets healthy", || {
        let seen = seen.lock().unwrap();
        seen.len() >= 4 && seen.iter().all(|(_, h, _)| *h == Health::Healthy)
    })
    .await;
    for _ in 0..30 {
        let (status, body) = get(port, "/", "app.test").await;
        assert_eq!(status, 200);
        assert!(body.contains("xff=127.0.0.1 proto=http"), "{body}");
        assert!(body.contains(&format!("port={port}")), "{body}");
    }
    let hits: Vec<usize> = a.iter().map(|x| x.hits.load(Ordering::Relaxed)).collect();
    assert_eq!(hits, [10, 10, 10], "round robin");
    let (status, body) = get(port, "/b/x", "app.test").await;
    assert_eq!((status, body.starts_with("b ")), (200, true));
    let (status, body) = get(port, "/", "www.FIXED.test").await;
    assert_eq!((status, body.as_str()), (418, "teapot"));
    let text = raw(
        port,
        b"GET /docs?go=v2 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(text.starts_with("HTTP/1.1 301"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains(&format!("location: http://app.test:{port}/v2/docs?go=v2")),
        "{text}"
    );
}

#[tokio::test]
async fn lb_counts_what_it_serves_for_cloudwatch() {
    let a = backend("a").await;
    let (plane, port, _) = plane(
        vec![
            rule(
                vec![path("/missing")],
                Action::FixedResponse {
                    status: 404,
                    content_type: None,
                    body: String::new(),
                },
            ),
            rule(vec![], forward("a")),
        ],
        vec![group("a", vec![target(a.port, false)])],
        60,
    )
    .await;
    for _ in 0..3 {
        assert_eq!(get(port, "/", "x").await.0, 200);
    }
    assert_eq!(get(port, "/missing", "x").await.0, 404);
    let report = plane.take_metrics();
    let lb = &report.load_balancers[0];
    assert_eq!(lb.load_balancer, "app/test/1");
    assert_eq!((lb.own_requests, lb.elb_4xx), (1, 1));
    let g = &lb.groups[0];
    assert_eq!(g.target_group_arn, "arn:tg/a");
    assert_eq!(g.requests, 3);
    assert_eq!(g.target_codes, [3, 0, 0, 0]);
    let t = g.response_time.unwrap();
    assert_eq!(t.count, 3);
    assert!(t.min <= t.max && t.sum > 0.0, "{t:?}");
    assert_eq!(
        plane.take_metrics().load_balancers[0].groups[0].requests,
        0,
        "counted once"
    );
}

#[tokio::test]
async fn lb_health_checks_move_targets_and_report_transitions() {
    let good = backend("good").await;
    let flaky = backend("flaky").await;
    let groups = vec![group(
        "a",
        vec![target(good.port, false), target(flaky.port, false)],
    )];
    let (plane, port, seen) = plane(vec![rule(vec![], forward("a"))], groups, 60).await;
    let healthy = |p: u16| {
        let seen = seen.clone();
        move || {
            seen.lock()
                .unwrap()
                .iter()
                .rev()
                .find(|(x, _, _)| *x == p)
                .map(|t| t.1)
                == Some(Health::Healthy)
        }
    };
    until("both healthy", || {
        healthy(good.port)() && healthy(flaky.port)()
    })
    .await;
    flaky.health.store(500, Ordering::Relaxed);
    let s = seen.clone();
    let fp = flaky.port;
    until("flaky unhealthy", move || {
        s.lock()
            .unwrap()
            .contains(&(fp, Health::Unhealthy, Some("Target.ResponseCodeMismatch")))
    })
    .await;
    let before = flaky.hits.load(Ordering::Relaxed);
    for _ in 0..10 {
        assert_eq!(get(port, "/", "x").await.0, 200);
    }
    assert_eq!(
        flaky.hits.load(Ordering::Relaxed),
        before,
        "no traffic to an unhealthy target"
    );
    // It comes back after `healthy_threshold` passes.
    flaky.health.store(200, Ordering::Relaxed);
    until("flaky healthy again", healthy(flaky.port)).await;
    drop(plane);
}

#[tokio::test]
async fn lb_errors_retry_and_draining() {
    // No target: 503.
    let (_p1, port, _) = plane(
        vec![rule(vec![], forward("a"))],
        vec![group("a", vec![])],
        60,
    )
    .await;
    assert_eq!(get(port, "/", "x").await.0, 503);
    // Only a target that refuses: 502; with a working one too, the refused request is retried.
    let closed = free_port();
    let (_p2, port, _) = one_target(closed, 60).await;
    assert_eq!(get(port, "/", "x").await.0, 502);
    let up = backend("up").await;
    let (_p3, port, _) = plane(
        vec![rule(vec![], forward("a"))],
        vec![group(
            "a",
            vec![target(closed, false), target(up.port, false)],
        )],
        60,
    )
    .await;
    for _ in 0..6 {
        assert_eq!(get(port, "/", "x").await.0, 200);
    }
    // A target silent past the idle timeout: 504.
    let slow = backend("slow").await;
    let (_p4, port, _) = one_target(slow.port, 1).await;
    assert_eq!(get(port, "/slow", "x").await.0, 504);
    // A draining target gets no new requests.
    let stay = backend("stay").await;
    let leave = backend("leave").await;
    let (_p5, port, _) = plane(
        vec![rule(vec![], forward("a"))],
        vec![group(
            "a",
            vec![target(stay.port, false), target(leave.port, true)],
        )],
        60,
    )
    .await;
    for _ in 0..6 {
        assert_eq!(get(port, "/", "x").await.0, 200);
    }
    assert_eq!(leave.hits.load(Ordering::Relaxed), 0);
    assert_eq!(stay.hits.load(Ordering::Relaxed), 6);
}

#[tokio::test]
async fn lb_rejects_smuggling_and_oversized_headers() {
    let up = backend("up").await;
    let (_p, port, _) = one_target(up.port, 60).await;
    let smuggle = raw(
        port,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(smuggle.starts_with("HTTP/1.1 400"), "{smuggle}");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let answer = raw(port, big.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    let hostless = raw(port, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(hostless.starts_with("HTTP/1.1 400"), "{hostless}");
    assert_eq!(
        up.hits.load(Ordering::Relaxed),
        0,
        "nothing reached the backend"
    );
    let _ = SocketAddr::new(LOCAL, 0);
}

#[tokio::test]
async fn lb_sticky_sessions_weights_trace_ids_and_h2c() {
    let a: Vec<Backend> = vec![
        backend("a0").await,
        backend("a1").await,
        backend("a2").await,
    ];
    let b = backend("b").await;
    let weighted = Action::Forward {
        groups: vec![
            WeightedGroup {
                target_group_arn: "arn:tg/a".into(),
                weight: 3,
            },
            WeightedGroup {
                target_group_arn: "arn:tg/b".into(),
                weight: 1,
            },
        ],
    };
    let rules = vec![
        rule(vec![path("/sticky")], forward("a")),
        rule(vec![], weighted),
    ];
    let groups = vec![
        sticky(group(
            "a",
            a.iter().map(|x| target(x.port, false)).collect(),
        )),
        group("b", vec![target(b.port, false)]),
    ];
    let (_plane, port, _) = plane(rules, groups, 60).await;

    // The first answer sets AWSALB; with it, every request reaches the same target.
    let first = raw(
        port,
        b"GET /sticky HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let cookie = first
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .starts_with("set-cookie:")
                .then(|| l[11..].trim().to_string())
        })
        .expect("a stickiness cookie");
    assert!(
        cookie.starts_with("AWSALB=") && cookie.contains("Max-Age=86400"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    let served = first
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_string();
    for _ in 0..10 {
        let text = raw(
            port,
            format!(
                "GET /sticky HTTP/1.1\r\nHost: x\r\nCookie: {pair}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .await;
        let body = text.split("\r\n\r\n").nth(1).unwrap();
        assert!(body.starts_with(&format!("{served} ")), "{body}");
        assert!(body.contains("trace=Root=1-"), "{body}");
    }

    // Weighted forward: about 3 requests in 4 go to group a.
    for _ in 0..400 {
        assert_eq!(get(port, "/", "x").await.0, 200);
    }
    let to_b = b.hits.load(Ordering::Relaxed);
    assert!((60..=140).contains(&to_b), "group b got {to_b} of 400");

    // HTTP/2 without TLS (prior knowledge).
    let stream = tokio::net::TcpStream::connect((LOCAL, port)).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get(format!("http://127.0.0.1:{port}/"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = send.send_request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), http::Version::HTTP_2);
}

/// A backend speaking raw HTTP/1.1: every request (without a body) gets a chunked answer with
/// a trailer (and a bogus Content-Length beside it), on a kept-alive connection. Returns its port and the most `/chunked` requests
/// one connection carried.
async fn chunked_backend() -> (u16, Arc<AtomicUsize>) {
    let socket = tokio::net::TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let most = Arc::new(AtomicUsize::new(0));
    let m = most.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = socket.accept().await.unwrap();
            let m = m.clone();
            tokio::spawn(async move {
                let (mut buf, mut served) = (Vec::new(), 0);
                loop {
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        if buf.starts_with(b"GET /chunked ") {
                            served += 1;
                            m.fetch_max(served, Ordering::Relaxed);
                        }
                        buf.drain(..end + 4);
                        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 999\r\nTrailer: x-sum\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-sum: 11\r\n\r\n";
                        if stream.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    (port, most)
}

/// Reads from `s` until `done` holds for what was read (bounded in time).
async fn read_until(s: &mut tokio::net::TcpStream, done: impl Fn(&str) -> bool) -> String {
    let mut out = Vec::new();
    let read = async {
        let mut chunk = [0u8; 65536];
        while !done(&String::from_utf8_lossy(&out)) {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn lb_streams_bodies_keeps_connections_and_drops_silent_clients() {
    let up = backend("up").await;
    let (chunked, most_on_one_connection) = chunked_backend().await;
    let rules = vec![
        rule(vec![path("/chunked")], forward("c")),
        rule(vec![], forward("a")),
    ];
    let groups = vec![
        group("a", vec![target(up.port, false)]),
        group("c", vec![target(chunked, false)]),
    ];
    let (plane, port, _) = plane(rules, groups, 1).await;
    let mut s = tokio::net::TcpStream::connect((LOCAL, port)).await.unwrap();

    // Three requests in one write (pipelined) get three answers, in order.
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut s, |t| t.matches("up xff=").count() == 3).await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 3, "{text}");

    // A chunked answer passes through whole, trailer included, and the connection (both
    // sides) is kept: two requests, one target connection.
    for _ in 0..2 {
        s.write_all(b"GET /chunked HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let text = read_until(&mut s, |t| t.ends_with("x-sum: 11\r\n\r\n")).await;
        assert!(
            text.contains("transfer-encoding: chunked")
                || text.contains("Transfer-Encoding: chunked"),
            "{text}"
        );
        assert!(
            text.contains("5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n"),
            "{text}"
        );
        assert!(
            !text.to_ascii_lowercase().contains("content-length"),
            "never both framings: {text}"
        );
    }
    assert_eq!(most_on_one_connection.load(Ordering::Relaxed), 2);

    // A body larger than any buffer goes up and comes back whole; HEAD gets no body.
    let body: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    s.write_all(
        format!(
            "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    let read = async {
        let mut chunk = [0u8; 65536];
        loop {
            let n = s.read(&mut chunk).await.unwrap();
            assert!(n > 0, "closed early");
            answer.extend_from_slice(&chunk[..n]);
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n")
                && answer.len() >= end + 4 + body.len()
            {
                return end + 4;
            }
        }
    };
    let start = tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .unwrap();
    assert_eq!(&answer[start..], &body[..], "the echo came back whole");
    s.write_all(b"HEAD /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /after-head HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut s, |t| t.contains("up xff=")).await;
    assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{text}");
    assert!(
        text.split("\r\n\r\n")
            .nth(1)
            .unwrap()
            .starts_with("HTTP/1.1 200"),
        "no body after HEAD: {text}"
    );

    // Silent clients are dropped after the idle timeout (1 s here): one that sends nothing,
    // one that stops in the middle of its head.
    for opening in [&b""[..], b"GET / HTTP/1.1\r\nHost: x\r\n"] {
        let mut idle = tokio::net::TcpStream::connect((LOCAL, port)).await.unwrap();
        idle.write_all(opening).await.unwrap();
        let mut rest = Vec::new();
        let closed =
            tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest)).await;
        assert!(matches!(closed, Ok(Ok(0))), "the silent client was dropped");
    }

    // A data plane dropped closes its connections too, not only its listeners.
    s.write_all(b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut s, |t| t.contains("up xff=")).await;
    drop(plane);
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(_))), "closed with the data plane");
    until("the listener closed", || {
        std::net::TcpStream::connect((LOCAL, port)).is_err()
    })
    .await;
}

#[tokio::test]
async fn lb_slow_start_ramps_a_newly_healthy_target_up() {
    let warm = backend("warm").await;
    let new = backend("new").await;
    let mut g = group("a", vec![target(warm.port, false), target(new.port, false)]);
    g.slow_start_seconds = Some(30);
    let (plane, port, seen) = plane(vec![rule(vec![], forward("a"))], vec![g], 60).await;
    until("both healthy", || {
        seen.lock()
            .unwrap()
            .iter()
            .filter(|(_, h, _)| *h == Health::Healthy)
            .count()
            == 2
    })
    .await;
    // Both became healthy just now (both in slow start: no one to take the rest, so even
    // shares). Make one healthy for a minute already, then the other ramps from ~0.
    let snapshot = plane.snapshot();
    let targets = &snapshot.groups["arn:tg/a"].targets;
    let since = |p: u16| {
        &targets
            .iter()
            .find(|t| t.port == p as i64)
            .unwrap()
            .state
            .healthy_since
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    since(warm.port).store(now - 60_000, Ordering::Relaxed);
    since(new.port).store(now - 3_000, Ordering::Relaxed);
    for _ in 0..200 {
        assert_eq!(get(port, "/", "x").await.0, 200);
    }
    let early = new.hits.load(Ordering::Relaxed);
    assert!(
        early < 50,
        "a target 3 s into a 30 s slow start got {early} of 200"
    );
    // Past its ramp it gets its full share.
    since(new.port).store(now - 31_000, Ordering::Relaxed);
    for _ in 0..200 {
        assert_eq!(get(port, "/", "x").await.0, 200);
    }
    let late = new.hits.load(Ordering::Relaxed) - early;
    assert!(
        (90..=110).contains(&late),
        "round robin again: {late} of 200"
    );
}

/// Reads `stream` into `buf` up to the end of a request head: the head (lower case) and where
/// it ends in `buf`; `None` if the connection closed first.
async fn head_of(stream: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<(String, usize)> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).to_ascii_lowercase();
            return Some((head, end + 4));
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A target that closes every connection right after its answer (while saying keep-alive, as a
/// target whose keep-alive ran out does); reports the body length of each request but health
/// checks.
async fn closing_backend() -> (u16, tokio::sync::mpsc::UnboundedReceiver<usize>) {
    let socket = tokio::net::TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = socket.local_addr().unwrap().port();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = socket.accept().await.unwrap();
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                let Some((head, end)) = head_of(&mut stream, &mut buf).await else {
                    return;
                };
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                while buf.len() < end + length {
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                    .await;
                drop(stream);
                if !head.starts_with("get /health") {
                    let _ = tx.send(length);
                }
            });
        }
    });
    (port, rx)
}

#[tokio::test]
async fn lb_sends_no_body_onto_a_target_connection_closed_meanwhile() {
    let (target_port, mut seen) = closing_backend().await;
    let (_plane, port, _) = one_target(target_port, 60).await;
    let mut s = tokio::net::TcpStream::connect((LOCAL, port)).await.unwrap();
    // The first request leaves a pooled connection the target then closes.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut s, |t| t.ends_with("ok")).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(seen.recv().await, Some(0));
    // A body too large to hold whole: it must go on a live connection, not the closed one.
    let body = vec![b'x'; 100_000];
    s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&body).await.unwrap();
    let text = read_until(&mut s, |t| t.ends_with("ok") || t.contains("502")).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(seen.recv().await, Some(100_000));
    // A bodiless one on the next closed connection is simply sent again on a new one.
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let text = read_until(&mut s, |t| t.ends_with("ok")).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

/// A target that switches protocols on `Upgrade: echo` (then echoes every byte, upper-cased)
/// and answers anything else 200 before closing.
async fn upgrade_backend() -> u16 {
    let socket = tokio::net::TcpListener::bind((LOCAL, 0)).await.unwrap();
    let port = socket.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = socket.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                let Some((head, end)) = head_of(&mut stream, &mut buf).await else {
                    return;
                };
                if !(head.contains("\r\nconnection: upgrade\r\n")
                    && head.contains("\r\nupgrade: echo\r\n"))
                {
                    let _ = stream
                        .write_all(
                            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
                    .await;
                let mut pending = buf.split_off(end);
                loop {
                    if !pending.is_empty() {
                        let upper = pending.to_ascii_uppercase();
                        if stream.write_all(&upper).await.is_err() {
                            return;
                        }
                        pending.clear();
                    }
                    match stream.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => pending.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    port
}

#[tokio::test]
async fn lb_tunnels_upgraded_connections() {
    let target_port = upgrade_backend().await;
    let (_plane, port, _) = one_target(target_port, 60).await;
    let mut s = tokio::net::TcpStream::connect((LOCAL, port)).await.unwrap();
    // The first frame follows the request at once, before the 101 is back.
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\nhello ",
    )
    .await
    .unwrap();
    let text = read_until(&mut s, |t| t.ends_with("HELLO ")).await;
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("upgrade: echo"),
        "{text}"
    );
    for word in ["over ", "the tunnel"] {
        s.write_all(word.as_bytes()).await.unwrap();
        let echoed = read_until(&mut s, |t| t == word.to_ascii_uppercase()).await;
        assert_eq!(echoed, word.to_ascii_uppercase());
    }
    // Without `Connection: upgrade` it is a plain request.
    let plain = raw(
        port,
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: echo\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(plain.starts_with("HTTP/1.1 200"), "{plain}");
}

#[tokio::test]
async fn lb_hands_what_it_does_not_frame_itself_to_the_general_stack() {
    let up = backend("up").await;
    let (_plane, port, _) = one_target(up.port, 60).await;
    // A chunked upload, after a request on the same connection (handed over mid-connection).
    let mut s = tokio::net::TcpStream::connect((LOCAL, port)).await.unwrap();
    s.write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    read_until(&mut s, |t| t.contains("up xff=")).await;
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    )
    .await
    .unwrap();
    let text = read_until(&mut s, |t| t.ends_with("hello world")).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    // `Expect: 100-continue`: the client hears 100 before it sends the body.
    let mut s = tokio::net::TcpStream::connect((LOCAL, port)).await.unwrap();
    s.write_all(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let text = read_until(&mut s, |t| t.contains("\r\n\r\n")).await;
    assert!(text.starts_with("HTTP/1.1 100"), "{text}");
    s.write_all(b"ping").await.unwrap();
    let text = read_until(&mut s, |t| t.ends_with("ping")).await;
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    // HTTP/1.0.
    let text = raw(port, b"GET /old HTTP/1.0\r\nHost: x\r\n\r\n").await;
    assert!(text.starts_with("HTTP/1.0 200"), "{text}");
    assert!(text.contains("up xff=127.0.0.1"), "{text}");
}
