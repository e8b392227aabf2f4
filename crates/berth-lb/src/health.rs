//! Active health checks (spec A.3): `GET <path>` on a fresh connection every interval, with
//! `User-Agent: ELB-HealthChecker/2.0`; a new target needs one pass to become healthy, then
//! `unhealthy_threshold` consecutive failures make it unhealthy and `healthy_threshold`
//! consecutive passes healthy again.

use crate::{Health, HealthConf, HealthSink, TargetConf};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;

/// Why a check failed: the reason code DescribeTargetHealth shows.
fn probe_failure(e: &Probe) -> &'static str {
    match e {
        Probe::Timeout => "Target.Timeout",
        Probe::Mismatch => "Target.ResponseCodeMismatch",
        Probe::Failed => "Target.FailedHealthChecks",
    }
}

enum Probe {
    Timeout,
    Mismatch,
    Failed,
}

async fn probe(addr: SocketAddr, conf: &HealthConf) -> Result<(), Probe> {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|_| Probe::Failed)?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|_| Probe::Failed)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = http::Request::get(&conf.path)
            .header(http::header::HOST, addr.to_string())
            .header(http::header::USER_AGENT, "ELB-HealthChecker/2.0")
            .header(http::header::CONNECTION, "close")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|_| Probe::Failed)?;
        let res = send.send_request(req).await.map_err(|_| Probe::Failed)?;
        let status = res.status().as_u16();
        if conf
            .matcher
            .iter()
            .any(|(lo, hi)| (*lo..=*hi).contains(&status))
        {
            Ok(())
        } else {
            Err(Probe::Mismatch)
        }
    };
    match tokio::time::timeout(conf.timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(Probe::Timeout),
    }
}

/// Checks `target` of group `group` until aborted, reporting every transition.
pub async fn check(group: String, target: TargetConf, conf: HealthConf, sink: HealthSink) {
    let addr = SocketAddr::new(target.addr.ip(), conf.port.unwrap_or(target.addr.port()));
    let (mut passes, mut failures) = (0u32, 0u32);
    let mut tick = tokio::time::interval(conf.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let result = probe(addr, &conf).await;
        let now = target.state.health();
        let next = match &result {
            Ok(()) => {
                passes += 1;
                failures = 0;
                match now {
                    Health::Initial => Some(Health::Healthy),
                    Health::Unhealthy if passes >= conf.healthy_threshold => Some(Health::Healthy),
                    _ => None,
                }
            }
            Err(_) => {
                failures += 1;
                passes = 0;
                match now {
                    Health::Initial | Health::Healthy if failures >= conf.unhealthy_threshold => {
                        Some(Health::Unhealthy)
                    }
                    _ => None,
                }
            }
        };
        if let Some(h) = next {
            target.state.set(h);
            let reason = result.as_ref().err().map(probe_failure);
            sink(&group, &target.id, target.port, h, reason);
        }
    }
}
