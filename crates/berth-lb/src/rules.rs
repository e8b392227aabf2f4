//! Listener rules compiled for the request path, and their matching (spec/elb-…md A.4): pure,
//! no I/O.

use berth_node_api::lb;
use std::net::IpAddr;

/// One rule condition. Values within a condition are alternatives (OR); a rule's conditions
/// must all match (AND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Case-insensitive globs on the host (port ignored).
    Host(Vec<String>),
    /// Case-sensitive globs on the path (no query string).
    Path(Vec<String>),
    /// A header (name case-insensitive) whose value matches a case-insensitive glob.
    Header(String, Vec<String>),
    /// Exact, case-sensitive methods.
    Method(Vec<String>),
    /// Query parameters: `(key, value)` globs, case-insensitive; no key = any key.
    Query(Vec<(Option<String>, String)>),
    /// Client addresses in CIDR blocks.
    SourceIp(Vec<(IpAddr, u8)>),
}

/// What a request presents to the conditions.
pub struct Request<'a> {
    pub host: &'a str,
    pub path: &'a str,
    pub query: &'a str,
    pub method: &'a str,
    pub headers: &'a dyn Headers,
    pub client: IpAddr,
}

/// A request's header fields, however they were parsed.
pub trait Headers {
    /// Whether some value of field `name` (lower case) satisfies `f`.
    fn any_value(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool;
}

impl Headers for http::HeaderMap {
    fn any_value(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(f)
    }
}

impl Headers for &[httparse::Header<'_>] {
    fn any_value(&self, name: &str, f: &mut dyn FnMut(&str) -> bool) -> bool {
        self.iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .filter_map(|h| std::str::from_utf8(h.value).ok())
            .any(f)
    }
}

/// `*` matches any run (also empty), `?` one character; `fold` compares case-insensitively.
pub fn glob(pattern: &str, text: &str, fold: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if fold {
            a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    // Iterative matching with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || (p[i] != '*' && eq(p[i], t[j]))) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

fn in_cidr(ip: IpAddr, (net, bits): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits.min(32))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits.min(128))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Percent-decoding of a query component (`+` is a space).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Condition {
    pub fn matches(&self, r: &Request<'_>) -> bool {
        match self {
            Condition::Host(globs) => {
                let host = r.host.rsplit_once(':').map_or(r.host, |(h, p)| {
                    if p.bytes().all(|b| b.is_ascii_digit()) {
                        h
                    } else {
                        r.host
                    }
                });
                globs.iter().any(|g| glob(g, host, true))
            }
            Condition::Path(globs) => globs.iter().any(|g| glob(g, r.path, false)),
            Condition::Header(name, globs) => r
                .headers
                .any_value(name, &mut |v| globs.iter().any(|g| glob(g, v, true))),
            Condition::Method(methods) => methods.iter().any(|m| m == r.method),
            Condition::Query(pairs) => {
                let params: Vec<(String, String)> = r
                    .query
                    .split('&')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap_or((p, ""));
                        (unescape(k), unescape(v))
                    })
                    .collect();
                pairs.iter().any(|(key, value)| {
                    params.iter().any(|(k, v)| {
                        key.as_ref().is_none_or(|key| glob(key, k, true)) && glob(value, v, true)
                    })
                })
            }
            Condition::SourceIp(blocks) => blocks.iter().any(|b| in_cidr(r.client, *b)),
        }
    }

    /// From the node protocol's condition (source-ip blocks that do not parse match nothing).
    pub fn compile(c: &lb::Condition) -> Condition {
        match c {
            lb::Condition::HostHeader { values } => Condition::Host(values.clone()),
            lb::Condition::PathPattern { values } => Condition::Path(values.clone()),
            lb::Condition::HttpHeader { name, values } => {
                Condition::Header(name.to_ascii_lowercase(), values.clone())
            }
            lb::Condition::HttpRequestMethod { values } => Condition::Method(values.clone()),
            lb::Condition::QueryString { values } => Condition::Query(
                values
                    .iter()
                    .map(|p| (p.key.clone(), p.value.clone()))
                    .collect(),
            ),
            lb::Condition::SourceIp { values } => Condition::SourceIp(
                values
                    .iter()
                    .filter_map(|cidr| {
                        let (ip, bits) = cidr.split_once('/').unwrap_or((cidr, "128"));
                        let ip: IpAddr = ip.parse().ok()?;
                        let max = if ip.is_ipv4() { 32 } else { 128 };
                        Some((ip, bits.parse::<u8>().ok()?.min(max)))
                    })
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request<'a>(
        headers: &'a http::HeaderMap,
        host: &'a str,
        path: &'a str,
        query: &'a str,
    ) -> Request<'a> {
        Request {
            host,
            path,
            query,
            method: "GET",
            headers,
            client: "10.1.2.3".parse().unwrap(),
        }
    }

    #[test]
    fn rules_globs_follow_the_alb_rules() {
        assert!(glob("/img/*", "/img/a/b.jpg", false));
        assert!(!glob("/img/*", "/IMG/a", false), "paths are case-sensitive");
        assert!(glob("*.example.com", "WWW.Example.com", true));
        assert!(!glob("*.example.com", "example.com", true));
        assert!(glob("/a?c", "/abc", false));
        assert!(!glob("/a?c", "/ac", false));
        assert!(glob("*", "", false));
        assert!(glob("/*/x/*", "/a/x/b", false));
        assert!(!glob("/*/x/*", "/a/y/b", false));
    }

    #[test]
    fn rules_conditions_match_requests() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-canary", "Yes".parse().unwrap());
        let r = request(
            &headers,
            "api.example.com:8080",
            "/v1/items",
            "Version=2&x=%41",
        );
        assert!(Condition::Host(vec!["*.EXAMPLE.com".into()]).matches(&r));
        assert!(Condition::Path(vec!["/v1/*".into()]).matches(&r));
        assert!(!Condition::Path(vec!["/v2/*".into()]).matches(&r));
        assert!(Condition::Header("x-canary".into(), vec!["yes".into()]).matches(&r));
        assert!(Condition::Method(vec!["GET".into()]).matches(&r));
        assert!(!Condition::Method(vec!["get".into()]).matches(&r));
        assert!(Condition::Query(vec![(Some("version".into()), "2".into())]).matches(&r));
        assert!(Condition::Query(vec![(None, "a".into())]).matches(&r));
        assert!(Condition::SourceIp(vec![("10.0.0.0".parse().unwrap(), 8)]).matches(&r));
        assert!(!Condition::SourceIp(vec![("192.168.0.0".parse().unwrap(), 16)]).matches(&r));
        let parsed = [httparse::Header {
            name: "X-Canary",
            value: b"YES",
        }];
        let r = Request {
            headers: &&parsed[..],
            ..r
        };
        assert!(Condition::Header("x-canary".into(), vec!["yes".into()]).matches(&r));
        assert!(!Condition::Header("x-other".into(), vec!["*".into()]).matches(&r));
        let header = lb::Condition::HttpHeader {
            name: "X-Canary".into(),
            values: vec!["yes".into()],
        };
        assert_eq!(
            Condition::compile(&header),
            Condition::Header("x-canary".into(), vec!["yes".into()])
        );
        let blocks = lb::Condition::SourceIp {
            values: vec!["10.0.0.0/8".into(), "::1".into()],
        };
        assert_eq!(
            Condition::compile(&blocks),
            Condition::SourceIp(vec![
                ("10.0.0.0".parse().unwrap(), 8),
                ("::1".parse().unwrap(), 128)
            ])
        );
        let bad = lb::Condition::SourceIp {
            values: vec!["not-an-ip/8".into()],
        };
        assert_eq!(Condition::compile(&bad), Condition::SourceIp(vec![]));
    }
}
