//! The `awslogs` log driver as ECS defines it: a container's `logConfiguration.options`,
//! checked as Docker checks them, the stream name ECS gives a container's output, and (from
//! `berth-logs`) the multi-line joining of lines into events.
//!
//! Shared by the agent, which ships a container's output, the control plane, which names the
//! stream in a stopped container's reason, and `berth logs`, which reads it back.

use std::collections::BTreeMap;

pub use berth_logs::multiline::{LogEvent, MAX_EVENT_BYTES, Multiline, MultilineError};

/// Docker's default `max-buffer-size` in non-blocking mode (1 MB).
pub const DEFAULT_MAX_BUFFER: usize = 1 << 20;

/// The options Docker's `awslogs` driver and ECS accept (others are refused, as Docker
/// refuses them). `awslogs-endpoint`, `awslogs-credentials-endpoint`, `awslogs-format`,
/// `awslogs-create-stream`, `awslogs-max-buffered-events` and `tag` are accepted and have
/// no effect here: the agent always ships to the Berth it reports to.
const KNOWN: &[&str] = &[
    "awslogs-group",
    "awslogs-region",
    "awslogs-stream-prefix",
    "awslogs-stream",
    "awslogs-create-group",
    "awslogs-create-stream",
    "awslogs-datetime-format",
    "awslogs-multiline-pattern",
    "awslogs-force-flush-interval-seconds",
    "awslogs-max-buffered-events",
    "awslogs-endpoint",
    "awslogs-credentials-endpoint",
    "awslogs-format",
    "mode",
    "max-buffer-size",
    "tag",
];

/// A container's `awslogs` settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Options {
    pub group: String,
    pub region: Option<String>,
    pub stream_prefix: Option<String>,
    pub stream: Option<String>,
    pub create_group: bool,
    /// `mode: non-blocking`: lines are dropped rather than held back once `max_buffer`
    /// bytes wait to be shipped.
    pub non_blocking: bool,
    pub max_buffer: usize,
    pub datetime_format: Option<String>,
    pub multiline_pattern: Option<String>,
    /// `awslogs-force-flush-interval-seconds`, in ms.
    pub flush_interval_ms: Option<i64>,
}

fn flag(name: &str, v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "t" => Ok(true),
        "false" | "0" | "f" => Ok(false),
        _ => Err(format!("invalid value for log opt '{name}': {v}")),
    }
}

/// A size as Docker reads one (`units.RAMInBytes`: `512`, `64k`, `1m`, `2g`, `1MiB`, …).
pub fn parse_size(v: &str) -> Option<usize> {
    let t = v.trim().to_ascii_lowercase();
    let digits = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(digits);
    let n: f64 = n.parse().ok()?;
    let unit = unit.trim().trim_end_matches('b').trim_end_matches('i');
    let scale = match unit {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((n * scale) as usize)
}

impl Options {
    /// The options of a container whose `logDriver` is `awslogs`; Docker's refusal otherwise.
    pub fn parse(options: &BTreeMap<String, String>) -> Result<Options, String> {
        if let Some(k) = options.keys().find(|k| !KNOWN.contains(&k.as_str())) {
            return Err(format!("unknown log opt '{k}' for awslogs log driver"));
        }
        let get = |k: &str| options.get(k).filter(|v| !v.is_empty()).cloned();
        let group =
            get("awslogs-group").ok_or("must specify valid value for log opt 'awslogs-group'")?;
        let non_blocking = match options.get("mode").map(String::as_str) {
            None | Some("") | Some("blocking") => false,
            Some("non-blocking") => true,
            Some(other) => return Err(format!("logger: logging mode not supported: {other}")),
        };
        let max_buffer = match get("max-buffer-size") {
            None => DEFAULT_MAX_BUFFER,
            Some(_) if !non_blocking => {
                return Err(
                    "max-buffer-size option is only supported with 'mode=non-blocking'".into(),
                );
            }
            Some(v) => parse_size(&v).ok_or(format!("invalid value for max-buffer-size: {v}"))?,
        };
        let flush_interval_ms = get("awslogs-force-flush-interval-seconds")
            .map(|v| match v.parse::<i64>() {
                Ok(s) if s > 0 => Ok(s * 1000),
                _ => Err(format!("invalid awslogs-force-flush-interval-seconds: {v}")),
            })
            .transpose()?;
        let o = Options {
            group,
            region: get("awslogs-region"),
            stream_prefix: get("awslogs-stream-prefix"),
            stream: get("awslogs-stream"),
            create_group: get("awslogs-create-group")
                .map(|v| flag("awslogs-create-group", &v))
                .transpose()?
                .unwrap_or(false),
            non_blocking,
            max_buffer,
            datetime_format: get("awslogs-datetime-format"),
            multiline_pattern: get("awslogs-multiline-pattern"),
            flush_interval_ms,
        };
        o.multiline().map_err(|e| e.to_string())?;
        Ok(o)
    }

    /// The event joiner these options ask for.
    pub fn multiline(&self) -> Result<Multiline, MultilineError> {
        let m = Multiline::from_options(
            self.datetime_format.as_deref(),
            self.multiline_pattern.as_deref(),
        )?;
        Ok(match self.flush_interval_ms {
            Some(ms) => m.with_flush_interval_ms(ms),
            None => m,
        })
    }

    /// The stream a container's output goes to: `awslogs-stream`, else ECS's
    /// `<awslogs-stream-prefix>/<container-name>/<task-id>`, else (Docker's default) the
    /// container's id.
    pub fn stream_name(&self, container_name: &str, task_id: &str, container_id: &str) -> String {
        match (&self.stream, &self.stream_prefix) {
            (Some(s), _) => s.clone(),
            (None, Some(p)) => format!("{p}/{container_name}/{task_id}"),
            (None, None) => container_id.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn awslogs_options_parse_as_docker_does() {
        let o = Options::parse(&opts(&[
            ("awslogs-group", "/ecs/web"),
            ("awslogs-region", "eu-west-1"),
            ("awslogs-stream-prefix", "web"),
            ("awslogs-create-group", "true"),
            ("mode", "non-blocking"),
            ("max-buffer-size", "4m"),
        ]))
        .unwrap();
        assert_eq!(o.group, "/ecs/web");
        assert!(o.create_group && o.non_blocking);
        assert_eq!(o.max_buffer, 4 << 20);
        assert_eq!(o.stream_name("app", "abc123", "c0ffee"), "web/app/abc123");
        let plain = Options::parse(&opts(&[("awslogs-group", "g")])).unwrap();
        assert_eq!(plain.stream_name("app", "abc", "c0ffee"), "c0ffee");
        assert!(!plain.non_blocking);
        assert_eq!(plain.max_buffer, DEFAULT_MAX_BUFFER);
        for (bad, why) in [
            (opts(&[]), "awslogs-group"),
            (
                opts(&[("awslogs-group", "g"), ("nope", "1")]),
                "unknown log opt 'nope'",
            ),
            (
                opts(&[("awslogs-group", "g"), ("mode", "fast")]),
                "mode not supported",
            ),
            (
                opts(&[("awslogs-group", "g"), ("max-buffer-size", "1m")]),
                "non-blocking",
            ),
            (
                opts(&[("awslogs-group", "g"), ("awslogs-create-group", "maybe")]),
                "awslogs-create-group",
            ),
            (
                opts(&[("awslogs-group", "g"), ("awslogs-multiline-pattern", "[")]),
                "multiline",
            ),
        ] {
            let e = Options::parse(&bad).unwrap_err();
            assert!(e.contains(why), "{e}");
        }
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("64k"), Some(65536));
        assert_eq!(parse_size("1MiB"), Some(1 << 20));
        assert_eq!(parse_size("lots"), None);
    }
}
