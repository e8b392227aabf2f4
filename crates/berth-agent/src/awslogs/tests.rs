//! Shipping over the fake engine and an in-memory Logs server that stores idempotent batches
//! as Berth does: every line once and in order, across a crash mid-send, a server outage,
//! non-blocking mode's drops, and a container removed only once its output is shipped.

use super::*;
use crate::fake::Fake;
use crate::runtime::CreateContainer;
use crate::tests::{container, task};
use berth_node_api::agent::LogConfiguration;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};

/// A group's streams and their events.
type Streams = BTreeMap<String, Vec<(i64, String)>>;

/// CloudWatch Logs in memory: streams of events, each writer's last batch.
#[derive(Default)]
struct Server {
    groups: Mutex<BTreeMap<String, Streams>>,
    writers: Mutex<HashMap<String, u64>>,
    /// Calls fail (an outage) while set.
    down: AtomicBool,
    /// Calls failed by the outage.
    refused: AtomicUsize,
    /// The next PutLogEvents is stored, and then its answer never comes (a crash mid-send).
    hang_after_store: AtomicBool,
    puts: AtomicUsize,
}

impl Server {
    fn events(&self, group: &str, stream: &str) -> Vec<String> {
        self.groups.lock().unwrap()[group][stream]
            .iter()
            .map(|e| e.1.clone())
            .collect()
    }

    fn answer(&self, op: &str, body: &Value) -> Result<Value, ShipError> {
        let err = |code: &str| ShipError {
            code: Some(code.into()),
            message: code.into(),
        };
        let group = body["logGroupName"].as_str().unwrap().to_string();
        let mut groups = self.groups.lock().unwrap();
        match op {
            "CreateLogGroup" if groups.contains_key(&group) => {
                Err(err("ResourceAlreadyExistsException"))
            }
            "CreateLogGroup" => {
                groups.insert(group, BTreeMap::new());
                Ok(json!({}))
            }
            "CreateLogStream" => {
                let g = groups
                    .get_mut(&group)
                    .ok_or_else(|| err("ResourceNotFoundException"))?;
                let stream = body["logStreamName"].as_str().unwrap().to_string();
                if g.contains_key(&stream) {
                    return Err(err("ResourceAlreadyExistsException"));
                }
                g.insert(stream, Vec::new());
                Ok(json!({}))
            }
            "PutLogEvents" => {
                let g = groups
                    .get_mut(&group)
                    .ok_or_else(|| err("ResourceNotFoundException"))?;
                let s = g
                    .get_mut(body["logStreamName"].as_str().unwrap())
                    .ok_or_else(|| err("ResourceNotFoundException"))?;
                let events = body["logEvents"].as_array().unwrap();
                assert!(
                    events
                        .windows(2)
                        .all(|w| w[0]["timestamp"].as_i64() <= w[1]["timestamp"].as_i64())
                );
                let (writer, batch) = (
                    body["berthBatch"]["writer"].as_str().unwrap().to_string(),
                    body["berthBatch"]["batch"].as_u64().unwrap(),
                );
                let mut writers = self.writers.lock().unwrap();
                if writers.get(&writer).is_some_and(|b| *b >= batch) {
                    return Ok(json!({}));
                }
                writers.insert(writer, batch);
                s.extend(events.iter().map(|e| {
                    (
                        e["timestamp"].as_i64().unwrap(),
                        e["message"].as_str().unwrap().to_string(),
                    )
                }));
                self.puts.fetch_add(1, Ordering::SeqCst);
                Ok(json!({}))
            }
            other => panic!("unexpected {other}"),
        }
    }
}

struct Sink(Arc<Server>);

impl LogSink for Sink {
    fn call<'a>(
        &'a self,
        _: &'a str,
        _: Option<&'a str>,
        op: &'a str,
        body: Value,
    ) -> SinkFuture<'a> {
        Box::pin(async move {
            if self.0.down.load(Ordering::SeqCst) {
                self.0.refused.fetch_add(1, Ordering::SeqCst);
                return Err(ShipError {
                    code: None,
                    message: "connection refused".into(),
                });
            }
            let out = self.0.answer(op, &body);
            if op == "PutLogEvents" && self.0.hang_after_store.swap(false, Ordering::SeqCst) {
                std::future::pending::<()>().await;
            }
            out
        })
    }
}

struct Rig {
    fake: Fake,
    server: Arc<Server>,
    dir: tempfile::TempDir,
    shippers: Arc<Shippers<Fake>>,
}

impl Rig {
    fn new() -> Rig {
        let fake = Fake::new();
        let server = Arc::new(Server::default());
        let dir = tempfile::tempdir().unwrap();
        let shippers = Shippers::new(
            fake.clone(),
            Arc::new(Sink(server.clone())),
            dir.path(),
            "us-east-1",
        );
        Rig {
            fake,
            server,
            dir,
            shippers,
        }
    }

    /// A new agent on the same state directory (the old one's tasks are aborted by the caller).
    fn restart(&mut self) {
        self.shippers = Shippers::new(
            self.fake.clone(),
            Arc::new(Sink(self.server.clone())),
            self.dir.path(),
            "us-east-1",
        );
    }

    /// A running container of a task whose `awslogs` options are `options`, prepared and
    /// shipping; its id.
    async fn container(&self, options: &[(&str, &str)]) -> String {
        let mut spec = container("app", "img");
        spec.log_configuration = Some(LogConfiguration {
            log_driver: "awslogs".into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
        let t = task(1, vec![spec.clone()]);
        let id = self.fake.existing(
            CreateContainer {
                name: "ecs-app".into(),
                ..Default::default()
            },
            true,
        );
        let o = Shippers::<Fake>::options(&spec).unwrap().unwrap();
        self.shippers.prepare(&t, &spec, &o, &id).await.unwrap();
        self.shippers.start(&id);
        id
    }
}

const OPTIONS: &[(&str, &str)] = &[
    ("awslogs-group", "g"),
    ("awslogs-create-group", "true"),
    ("awslogs-stream-prefix", "web"),
];
const STREAM: &str = "web/app/00000001000000000000000000000000";

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("line {i}")).collect()
}

#[tokio::test]
async fn awslogs_ships_every_line_in_order_and_then_removes_the_container() {
    let rig = Rig::new();
    let id = rig.container(OPTIONS).await;
    let t = now_ns();
    for i in 0..500 {
        rig.fake.print(&id, t + i, &format!("line {i}\n"));
    }
    until("500 lines", || {
        rig.server.groups.lock().unwrap()["g"][STREAM].len() == 500
    })
    .await;
    // The task stops: the container stays until its last lines are out, then goes.
    assert!(rig.shippers.defer_removal(&id));
    for i in 500..510 {
        rig.fake.print(&id, t + i, &format!("line {i}\n"));
    }
    rig.fake.exit_container(&id, 0);
    until("the container removed", || rig.fake.count() == 0).await;
    assert_eq!(rig.server.events("g", STREAM), numbered(510));
    assert!(rig.shippers.dir.all().is_empty(), "its checkpoint is gone");
}

#[tokio::test]
async fn awslogs_a_container_that_exits_at_once_still_ships_its_last_line() {
    let rig = Rig::new();
    let id = rig.fake.existing(Default::default(), false);
    rig.fake.print(&id, now_ns(), "the only line\n");
    let mut spec = container("app", "img");
    spec.log_configuration = Some(LogConfiguration {
        log_driver: "awslogs".into(),
        options: OPTIONS
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    });
    let o = Shippers::<Fake>::options(&spec).unwrap().unwrap();
    rig.shippers
        .prepare(&task(1, vec![spec.clone()]), &spec, &o, &id)
        .await
        .unwrap();
    rig.shippers.start(&id);
    assert!(rig.shippers.defer_removal(&id));
    until("the container removed", || rig.fake.count() == 0).await;
    assert_eq!(rig.server.events("g", STREAM), vec!["the only line"]);
}

#[tokio::test]
async fn awslogs_a_restart_mid_send_neither_loses_nor_repeats_lines() {
    let mut rig = Rig::new();
    let id = rig.container(OPTIONS).await;
    let t = now_ns();
    for i in 0..100 {
        rig.fake.print(&id, t + i, &format!("line {i}\n"));
    }
    until("100 lines", || rig.server.events("g", STREAM).len() == 100).await;
    // The next batch is stored, but the agent dies before it hears so.
    rig.server.hang_after_store.store(true, Ordering::SeqCst);
    for i in 100..200 {
        rig.fake.print(&id, t + i, &format!("line {i}\n"));
    }
    until("the hung batch stored", || {
        rig.server.events("g", STREAM).len() == 200
    })
    .await;
    let ck = rig.shippers.dir.load(&id).unwrap();
    assert!(ck.inflight.is_some(), "{ck:?}");
    // "kill -9": a new agent on the same state directory (the old tasks keep hanging, as a
    // dead process's would do nothing at all).
    rig.restart();
    for i in 200..250 {
        rig.fake.print(&id, t + i, &format!("line {i}\n"));
    }
    rig.shippers.resume().await;
    until("250 lines", || rig.server.events("g", STREAM).len() >= 250).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(rig.server.events("g", STREAM), numbered(250));
}

#[tokio::test]
async fn awslogs_an_outage_delays_shipping_and_loses_nothing() {
    let rig = Rig::new();
    let id = rig.container(OPTIONS).await;
    rig.server.down.store(true, Ordering::SeqCst);
    let t = now_ns();
    for i in 0..300 {
        rig.fake.print(&id, t + i, &format!("line {i}\n"));
    }
    // The shipper has tried, and tried again.
    until("two refused sends", || {
        rig.server.refused.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert!(rig.server.events("g", STREAM).is_empty());
    rig.server.down.store(false, Ordering::SeqCst);
    until("300 lines", || rig.server.events("g", STREAM).len() == 300).await;
    assert_eq!(rig.server.events("g", STREAM), numbered(300));
}

#[tokio::test]
async fn awslogs_non_blocking_mode_drops_lines_past_its_buffer() {
    let rig = Rig::new();
    let mut options = OPTIONS.to_vec();
    options.extend([("mode", "non-blocking"), ("max-buffer-size", "2k")]);
    let id = rig.container(&options).await;
    rig.server.down.store(true, Ordering::SeqCst);
    let t = now_ns();
    for i in 0..2000 {
        rig.fake.print(&id, t + i, &format!("line {i}\n"));
    }
    // A send was cut and refused, and retried: the reader, which never waits for the sender
    // in this mode, has read the fake engine's whole log meanwhile.
    until("two refused sends", || {
        rig.server.refused.load(Ordering::SeqCst) >= 2
    })
    .await;
    rig.server.down.store(false, Ordering::SeqCst);
    rig.fake.exit_container(&id, 0);
    assert!(rig.shippers.defer_removal(&id));
    until("the container removed", || rig.fake.count() == 0).await;
    let got = rig.server.events("g", STREAM);
    assert!(!got.is_empty() && got.len() < 2000, "{} lines", got.len());
    // What arrived is in order, without repeats.
    let n: Vec<usize> = got.iter().map(|l| l[5..].parse().unwrap()).collect();
    assert!(n.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn awslogs_joins_a_stack_trace_into_one_event() {
    let rig = Rig::new();
    let mut options = OPTIONS.to_vec();
    options.push(("awslogs-multiline-pattern", r"^\d{4}-"));
    let id = rig.container(&options).await;
    let t = now_ns();
    for (i, l) in [
        "2024-01-01 ERROR boom",
        "java.lang.IllegalStateException: x",
        "\tat a.B.c(B.java:1)",
        "2024-01-01 INFO next",
    ]
    .iter()
    .enumerate()
    {
        rig.fake.print(&id, t + i as i64, &format!("{l}\n"));
    }
    rig.fake.exit_container(&id, 0);
    assert!(rig.shippers.defer_removal(&id));
    until("the container removed", || rig.fake.count() == 0).await;
    assert_eq!(
        rig.server.events("g", STREAM),
        vec![
            "2024-01-01 ERROR boom\njava.lang.IllegalStateException: x\n\tat a.B.c(B.java:1)\n",
            "2024-01-01 INFO next\n"
        ]
    );
}

#[tokio::test]
async fn awslogs_prepare_fails_without_the_group_unless_asked_to_create_it() {
    let rig = Rig::new();
    let mut spec = container("app", "img");
    spec.log_configuration = Some(LogConfiguration {
        log_driver: "awslogs".into(),
        options: [("awslogs-group".to_string(), "missing".to_string())].into(),
    });
    let o = Shippers::<Fake>::options(&spec).unwrap().unwrap();
    let id = rig.fake.existing(Default::default(), true);
    let e = rig
        .shippers
        .prepare(&task(1, vec![spec.clone()]), &spec, &o, &id)
        .await
        .unwrap_err();
    assert!(
        e.starts_with("failed to initialize logging driver: ResourceNotFoundException"),
        "{e}"
    );
}

#[tokio::test]
async fn awslogs_ships_within_a_second_while_lines_keep_coming() {
    let rig = Rig::new();
    let id = rig.container(OPTIONS).await;
    let started = Instant::now();
    let mut i = 0;
    // A line every 20 ms: the reader never waits long for one, and batches still go.
    while rig.server.events("g", STREAM).is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "nothing shipped while lines came"
        );
        rig.fake.print(&id, now_ns(), &format!("line {i}\n"));
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}
