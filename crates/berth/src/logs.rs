//! `berth logs <cluster> <service|task> [--follow]`: what a service's tasks (or one task)
//! printed, from CloudWatch Logs — the streams ECS names for their `awslogs` containers —
//! through the server's public API signed as the data directory's root.
//!
//! It reads as `aws logs tail` does (AWS CLI v2; not installable here, so this is its
//! contract, written for Berth): FilterLogEvents over the streams from `now - since`, page by
//! page until no `nextToken`; with `--follow`, again every two seconds from the newest
//! timestamp seen, skipping events whose `eventId` was printed already (events of the same
//! millisecond arrive in more than one poll). With `--follow`, a service's new tasks are
//! picked up as they start.

use berth_agent::control::Control;
use berth_node_api::awslogs::Options;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

type Error = Box<dyn std::error::Error>;

/// How often `--follow` looks again.
const FOLLOW_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// `10m`, `2h`, `30s`, `1d`, `1w` (as `aws logs tail --since`) in milliseconds.
pub fn parse_since(text: &str) -> Option<i64> {
    let t = text.trim();
    let unit = t.chars().last()?;
    let n: i64 = t[..t.len() - unit.len_utf8()].parse().ok()?;
    let ms = match unit {
        's' => 1_000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(ms).filter(|v| *v >= 0)
}

/// One event as printed: `<time> <stream> <message>` (`aws logs tail`'s short form).
pub fn format_event(timestamp: i64, stream: &str, message: &str) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(timestamp) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z {stream} {}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond(),
        message.trim_end_matches('\n')
    )
}

/// `--follow`'s memory: where the next poll starts, and which events of that millisecond (and
/// later) were printed.
#[derive(Debug, Default)]
pub struct Follow {
    pub since: i64,
    seen: BTreeMap<i64, BTreeSet<String>>,
}

impl Follow {
    pub fn new(since: i64) -> Follow {
        Follow {
            since,
            seen: BTreeMap::new(),
        }
    }

    /// Whether an event is new (and remembers it).
    pub fn fresh(&mut self, timestamp: i64, event_id: &str) -> bool {
        if self.seen.values().any(|ids| ids.contains(event_id)) {
            return false;
        }
        self.seen
            .entry(timestamp)
            .or_default()
            .insert(event_id.to_string());
        true
    }

    /// After a poll: the next starts at the newest timestamp seen; older ids are forgotten.
    pub fn advance(&mut self) {
        if let Some(newest) = self.seen.keys().next_back().copied() {
            self.since = self.since.max(newest);
        }
        self.seen = self.seen.split_off(&self.since);
    }
}

/// Where one task's `awslogs` containers write: `(region, group) → streams`.
type Destinations = BTreeMap<(String, String), BTreeSet<String>>;

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// The tasks `target` names in `cluster`: one task (id or ARN), or a service's tasks
/// (running and recently stopped).
async fn tasks(api: &Control, cluster: &str, target: &str) -> Result<Vec<Value>, Error> {
    let is_task = target.contains(":task/")
        || (target.len() == 32 && target.bytes().all(|b| b.is_ascii_hexdigit()));
    let arns = if is_task {
        vec![target.to_string()]
    } else {
        let mut arns = Vec::new();
        for status in ["RUNNING", "STOPPED"] {
            let out = api
                .call(
                    "ecs",
                    "ListTasks",
                    json!({"cluster": cluster, "serviceName": target, "desiredStatus": status}),
                )
                .await?;
            arns.extend(strings(&out["taskArns"]));
        }
        arns
    };
    let mut found = Vec::new();
    for chunk in arns.chunks(100) {
        let out = api
            .call(
                "ecs",
                "DescribeTasks",
                json!({"cluster": cluster, "tasks": chunk}),
            )
            .await?;
        found.extend(out["tasks"].as_array().cloned().unwrap_or_default());
    }
    if found.is_empty() && is_task {
        return Err(format!("no task {target} in cluster {cluster}").into());
    }
    Ok(found)
}

/// The streams of the tasks' `awslogs` containers, by region and group.
async fn destinations(api: &Control, tasks: &[Value], region: &str) -> Result<Destinations, Error> {
    let mut out = Destinations::new();
    let mut definitions: BTreeMap<String, Value> = BTreeMap::new();
    for t in tasks {
        let td = t["taskDefinitionArn"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if !definitions.contains_key(&td) {
            let d = api
                .call(
                    "ecs",
                    "DescribeTaskDefinition",
                    json!({"taskDefinition": td}),
                )
                .await?;
            definitions.insert(td.clone(), d["taskDefinition"].clone());
        }
        let task_id = t["taskArn"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default();
        for c in definitions[&td]["containerDefinitions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let Some(l) = c
                .get("logConfiguration")
                .filter(|l| l["logDriver"] == "awslogs")
            else {
                continue;
            };
            let options: BTreeMap<String, String> =
                serde_json::from_value(l["options"].clone()).unwrap_or_default();
            let Ok(o) = Options::parse(&options) else {
                continue;
            };
            let name = c["name"].as_str().unwrap_or_default();
            let runtime_id = t["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|x| x["name"] == name)
                .and_then(|x| x["runtimeId"].as_str())
                .unwrap_or_default();
            let region = o.region.clone().unwrap_or_else(|| region.to_string());
            out.entry((region, o.group.clone()))
                .or_default()
                .insert(o.stream_name(name, task_id, runtime_id));
        }
    }
    Ok(out)
}

/// One pass over every destination from `follow.since`: the new events, oldest first.
async fn poll(
    api: &Control,
    to: &Destinations,
    pattern: Option<&str>,
    follow: &mut Follow,
) -> Result<Vec<(i64, String, String)>, Error> {
    let mut out = Vec::new();
    for ((region, group), streams) in to {
        let api = api.in_region(region);
        let streams: Vec<&String> = streams.iter().collect();
        for names in streams.chunks(100) {
            let mut token: Option<String> = None;
            loop {
                let mut req = json!({"logGroupName": group, "logStreamNames": names, "startTime": follow.since});
                if let Some(p) = pattern {
                    req["filterPattern"] = json!(p);
                }
                if let Some(t) = &token {
                    req["nextToken"] = json!(t);
                }
                let page = match api.call("logs", "FilterLogEvents", req).await {
                    Ok(p) => p,
                    // A stream not made yet (a task still starting) is not an error.
                    Err(e) if e.to_string().contains("ResourceNotFoundException") => break,
                    Err(e) => return Err(e.into()),
                };
                for e in page["events"].as_array().into_iter().flatten() {
                    let (ts, id) = (
                        e["timestamp"].as_i64().unwrap_or(0),
                        e["eventId"].as_str().unwrap_or(""),
                    );
                    if follow.fresh(ts, id) {
                        let stream = e["logStreamName"].as_str().unwrap_or_default().to_string();
                        out.push((
                            ts,
                            stream,
                            e["message"].as_str().unwrap_or_default().to_string(),
                        ));
                    }
                }
                token = page["nextToken"].as_str().map(str::to_string);
                if token.is_none() {
                    break;
                }
            }
        }
    }
    out.sort_by_key(|e| e.0);
    follow.advance();
    Ok(out)
}

/// What `berth logs` was asked.
pub struct Request {
    pub cluster: String,
    pub target: String,
    pub since_ms: i64,
    pub pattern: Option<String>,
    pub follow: bool,
    /// The region tasks' groups are in when their options name none.
    pub region: String,
}

/// Prints the output, and with `follow` keeps printing until interrupted.
pub async fn run(api: Control, r: Request) -> Result<(), Error> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let mut follow = Follow::new(now as i64 - r.since_ms);
    let mut stdout = std::io::stdout();
    loop {
        let found = tasks(&api, &r.cluster, &r.target).await?;
        let to = destinations(&api, &found, &r.region).await?;
        if to.is_empty() && !r.follow {
            return Err(format!(
                "{} in cluster {} has no container logging with awslogs",
                r.target, r.cluster
            )
            .into());
        }
        for (ts, stream, message) in poll(&api, &to, r.pattern.as_deref(), &mut follow).await? {
            writeln!(stdout, "{}", format_event(ts, &stream, &message))?;
        }
        stdout.flush()?;
        if !r.follow {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_EVERY) => {}
            () = crate::serve::shutdown_signal() => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_since_reads_aws_tail_durations() {
        assert_eq!(parse_since("10m"), Some(600_000));
        assert_eq!(parse_since("2h"), Some(7_200_000));
        assert_eq!(parse_since("1w"), Some(604_800_000));
        assert_eq!(parse_since("30"), None);
        assert_eq!(parse_since("m"), None);
    }

    #[test]
    fn logs_follow_skips_events_seen_and_starts_at_the_newest_time() {
        let mut f = Follow::new(100);
        assert!(f.fresh(100, "a"));
        assert!(f.fresh(105, "b"));
        assert!(!f.fresh(105, "b"));
        f.advance();
        assert_eq!(f.since, 105);
        // The next poll starts at 105: b comes again and is skipped; c is new.
        assert!(!f.fresh(105, "b"));
        assert!(f.fresh(105, "c"));
        assert!(f.fresh(107, "d"));
        f.advance();
        assert_eq!(f.since, 107);
        assert!(
            f.fresh(105, "a"),
            "what is older than the start is forgotten"
        );
    }

    #[test]
    fn logs_events_print_as_aws_tail_prints_them() {
        assert_eq!(
            format_event(1_713_434_400_123, "app/web/1", "hello\n"),
            "2024-04-18T10:00:00.123Z app/web/1 hello"
        );
    }
}
