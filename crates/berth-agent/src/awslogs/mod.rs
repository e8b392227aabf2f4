//! The `awslogs` log driver: containers whose definition says `logDriver: awslogs` get
//! Docker's local `json-file` log (so `docker logs` works), and the agent ships what they print
//! to CloudWatch Logs on the Berth it reports to — group `awslogs-group`, region
//! `awslogs-region`, stream `<awslogs-stream-prefix>/<container-name>/<task-id>` as ECS names
//! it — with the options Docker's driver has (`awslogs-create-group`, `mode`,
//! `max-buffer-size`, `awslogs-datetime-format`, `awslogs-multiline-pattern`).
//!
//! Before a container starts, its group (with `awslogs-create-group`) and stream are created
//! and a checkpoint is written; a failure there fails the task with Docker's words
//! ("failed to initialize logging driver: …"). From then on one shipper per container
//! (`ship.rs`) follows its log and ships batches (`batcher.rs`) under numbered, idempotent
//! PutLogEvents, checkpointing each (`checkpoint.rs`): a restarted agent resumes from the
//! checkpoint and neither loses nor repeats a line; a server outage delays shipping.
//!
//! A container is removed only once its shipping is done: the agent's stop and clean-up paths
//! ask [`Shippers::defer_removal`], and the shipper removes the container when it has shipped
//! everything — so a task that exits at once still has its last line delivered.
//!
//! Credentials: a task with an `executionRoleArn` ships with that role's credentials while
//! the control plane hands them out (as ECS does); otherwise — and once the task is STOPPED,
//! when they are no longer handed out — with the agent's own (AWS's
//! `AmazonEC2ContainerServiceforEC2Role` allows `logs:CreateLogStream` and
//! `logs:PutLogEvents`).

mod batcher;
mod checkpoint;
mod ship;

use crate::runtime::Runtime;
use berth_node_api::agent::{ContainerSpec, TaskSpec};
use berth_node_api::awslogs::Options;
use checkpoint::{Checkpoint, Dir};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The driver's name in `logConfiguration.logDriver`.
pub const DRIVER: &str = "awslogs";

/// A Logs call that failed: its AWS error code, when the server gave one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ShipError {
    pub code: Option<String>,
    pub message: String,
}

/// What a Logs call returns.
pub type SinkFuture<'a> = Pin<Box<dyn Future<Output = Result<Value, ShipError>> + Send + 'a>>;

/// Where Logs calls go: the Berth the agent reports to, signed for `region`, as the task's
/// execution role (`execution_role_of`: the task's ARN) when it can be had, else as the agent.
pub trait LogSink: Send + Sync + 'static {
    fn call<'a>(
        &'a self,
        region: &'a str,
        execution_role_of: Option<&'a str>,
        operation: &'a str,
        body: Value,
    ) -> SinkFuture<'a>;
}

/// One container's shipping, as the agent sees it.
pub(crate) struct Entry {
    done: AtomicBool,
    remove: AtomicBool,
}

impl Entry {
    fn remove_requested(&self) -> bool {
        self.remove.load(Ordering::SeqCst)
    }

    fn finish(&self) {
        self.done.store(true, Ordering::SeqCst);
    }
}

/// Every container's shipper.
pub struct Shippers<R> {
    runtime: R,
    sink: Arc<dyn LogSink>,
    dir: Dir,
    /// The agent's own region (where `awslogs-region` is not given).
    region: String,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
}

impl<R: Runtime> Shippers<R> {
    pub fn new(
        runtime: R,
        sink: Arc<dyn LogSink>,
        state_dir: &std::path::Path,
        region: &str,
    ) -> Arc<Shippers<R>> {
        Arc::new(Shippers {
            runtime,
            sink,
            dir: Dir::new(state_dir),
            region: region.to_string(),
            entries: Mutex::default(),
        })
    }

    /// Checks a container's `awslogs` options (Docker's refusal as the error).
    pub fn options(spec: &ContainerSpec) -> Result<Option<Options>, String> {
        match &spec.log_configuration {
            Some(l) if l.log_driver == DRIVER => Options::parse(&l.options).map(Some),
            _ => Ok(None),
        }
    }

    /// Before container `id` of `task` starts: its group and stream exist and its checkpoint
    /// is written (once; a container adopted after a restart has one already).
    pub async fn prepare(
        &self,
        task: &TaskSpec,
        spec: &ContainerSpec,
        options: &Options,
        id: &str,
    ) -> Result<(), String> {
        if self.dir.load(id).is_some() {
            return Ok(());
        }
        let ck = Checkpoint {
            container_id: id.to_string(),
            task_arn: task.arn.clone(),
            container_name: spec.name.clone(),
            options: options.clone(),
            group: options.group.clone(),
            stream: options.stream_name(&spec.name, task.id(), id),
            region: options
                .region
                .clone()
                .unwrap_or_else(|| self.region.clone()),
            execution_role: task.execution_role_arn.is_some(),
            anchor: 0,
            consumed: 0,
            seconds: Default::default(),
            last_ts: 0,
            next_batch: 1,
            inflight: None,
            done: false,
            remove: false,
        };
        create_destination(self, &ck)
            .await
            .map_err(|e| format!("failed to initialize logging driver: {e}"))?;
        self.dir.save(&ck).map_err(|e| e.to_string())
    }

    /// Starts shipping container `id` (after it started), unless it ships already.
    pub fn start(self: &Arc<Self>, id: &str) {
        let Some(ck) = self.dir.load(id) else { return };
        self.spawn(ck);
    }

    fn spawn(self: &Arc<Self>, ck: Checkpoint) {
        let entry = {
            let mut entries = self.entries.lock().expect("shippers");
            if entries.contains_key(&ck.container_id) {
                return;
            }
            let entry = Arc::new(Entry {
                done: AtomicBool::new(ck.done),
                remove: AtomicBool::new(ck.remove),
            });
            entries.insert(ck.container_id.clone(), entry.clone());
            entry
        };
        if ck.done {
            return;
        }
        tracing::debug!(container = %ck.container_id, group = %ck.group, stream = %ck.stream, "awslogs: shipping");
        tokio::spawn(ship::run(self.clone(), ck, entry));
    }

    /// At the agent's start: resumes every shipping not done whose container still exists,
    /// and removes what is finished (the containers the agent wanted gone, the checkpoints of
    /// containers that are gone).
    pub async fn resume(self: &Arc<Self>) {
        for ck in self.dir.all() {
            match self.runtime.inspect(&ck.container_id).await {
                Ok(None) => self.dir.remove(&ck.container_id),
                Ok(Some(_)) if ck.done && ck.remove => {
                    self.remove_container(&ck.container_id).await;
                }
                Ok(Some(_)) if ck.done => self.dir.remove(&ck.container_id),
                Ok(Some(_)) => self.spawn(ck),
                Err(e) => {
                    tracing::warn!(container = %ck.container_id, error = %e, "awslogs: cannot look at a container to resume its shipping");
                    self.spawn(ck);
                }
            }
        }
    }

    /// Whether container `id` must stay until its output is shipped; if so, the shipper
    /// removes it when done.
    pub fn defer_removal(&self, id: &str) -> bool {
        let entries = self.entries.lock().expect("shippers");
        match entries.get(id) {
            Some(e) if !e.done.load(Ordering::SeqCst) => {
                e.remove.store(true, Ordering::SeqCst);
                true
            }
            _ => false,
        }
    }

    /// Forgets a removed container's shipping.
    pub fn forget(&self, id: &str) {
        self.entries.lock().expect("shippers").remove(id);
        self.dir.remove(id);
    }

    async fn remove_container(&self, id: &str) {
        match self.runtime.remove(id).await {
            Ok(()) => self.forget(id),
            Err(e) => {
                tracing::warn!(container = id, error = %e, "awslogs: removing a shipped container failed")
            }
        }
    }

    async fn save(&self, ck: &Checkpoint) {
        // A checkpoint that cannot be written is retried: shipping past it could repeat
        // lines after a restart.
        let mut pause = std::time::Duration::from_millis(100);
        while let Err(e) = self.dir.save(ck) {
            tracing::warn!(container = %ck.container_id, error = %e, "awslogs: cannot write a checkpoint; retrying");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_secs(5));
        }
    }

    async fn call(&self, ck: &Checkpoint, op: &str, body: Value) -> Result<Value, ShipError> {
        let role = ck.execution_role.then_some(ck.task_arn.as_str());
        self.sink.call(&ck.region, role, op, body).await
    }
}

/// Creates the checkpoint's group (with `awslogs-create-group`) and stream; either existing
/// already is fine.
async fn create_destination<R: Runtime>(
    shippers: &Shippers<R>,
    ck: &Checkpoint,
) -> Result<(), ShipError> {
    let exists = |r: Result<Value, ShipError>| match r {
        Err(e) if e.code.as_deref() == Some("ResourceAlreadyExistsException") => Ok(()),
        other => other.map(|_| ()),
    };
    if ck.options.create_group {
        let body = json!({"logGroupName": ck.group});
        exists(shippers.call(ck, "CreateLogGroup", body).await)?;
    }
    let body = json!({"logGroupName": ck.group, "logStreamName": ck.stream});
    exists(shippers.call(ck, "CreateLogStream", body).await)
}

#[cfg(test)]
mod tests;
