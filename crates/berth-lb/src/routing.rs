//! What both request paths share: the limits, the load balancer's own error page, redirect
//! locations, and the choice of a target group and a target (weights, round robin or least
//! outstanding requests, slow start, stickiness, passive failure avoidance).

use crate::rules::Headers;
use crate::{Algorithm, GroupConf, Health, Snapshot, TargetConf};
use berth_node_api::lb;
use http::StatusCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Headers a client may send: 64 KiB in all (requests beyond get 431).
pub(crate) const MAX_HEADERS: usize = 64 * 1024;
/// How long a client may take to send its request headers.
pub(crate) const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting to a target may take (then 504).
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The body of an error the load balancer itself answers.
pub(crate) fn error_page(status: StatusCode) -> String {
    format!(
        "<html><body><h1>{} {}</h1></body></html>\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
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
pub(crate) fn pick_group(snap: &Snapshot, groups: &[lb::WeightedGroup]) -> Option<Arc<GroupConf>> {
    let total: u32 = groups.iter().map(|g| g.weight).sum();
    let chosen = if groups.len() == 1 || total == 0 {
        &groups.first()?.target_group_arn
    } else {
        let mut roll = rand::random_range(0..total);
        let mut chosen = &groups[0].target_group_arn;
        for g in groups {
            if roll < g.weight {
                chosen = &g.target_group_arn;
                break;
            }
            roll -= g.weight;
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

/// Appends the `X-Amzn-Trace-Id` value for a request: `Root=1-<epoch seconds, hex>-<96 random
/// bits>`, or, when the request already carries one (`prior`), `Self=1-…;` before it.
pub(crate) fn trace_id(prior: Option<&[u8]>, out: &mut Vec<u8>) {
    out.extend_from_slice(if prior.is_some() {
        b"Self=1-"
    } else {
        b"Root=1-"
    });
    push_hex(out, (now_ms() / 1000) as u128, 8);
    out.push(b'-');
    push_hex(out, rand::random::<u128>(), 24);
    if let Some(prior) = prior {
        out.push(b';');
        out.extend_from_slice(prior);
    }
}

/// Appends the low `digits` hex digits of `value`.
fn push_hex(out: &mut Vec<u8>, value: u128, digits: usize) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend(
        (0..digits)
            .rev()
            .map(|i| HEX[((value >> (i * 4)) & 0xf) as usize]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_hex_digits_and_trace_ids() {
        let mut out = Vec::new();
        push_hex(&mut out, 0x6a1b_2c3d, 8);
        push_hex(&mut out, 0xabc, 6);
        assert_eq!(out, b"6a1b2c3d000abc");
        let mut root = Vec::new();
        trace_id(None, &mut root);
        let root = String::from_utf8(root).unwrap();
        let parts: Vec<&str> = root.trim_start_matches("Root=").split('-').collect();
        assert_eq!(
            (parts[0], parts[1].len(), parts[2].len()),
            ("1", 8, 24),
            "{root}"
        );
        let mut chained = Vec::new();
        trace_id(Some(b"Root=1-abc-def"), &mut chained);
        let chained = String::from_utf8(chained).unwrap();
        assert!(
            chained.starts_with("Self=1-") && chained.ends_with(";Root=1-abc-def"),
            "{chained}"
        );
    }
}
