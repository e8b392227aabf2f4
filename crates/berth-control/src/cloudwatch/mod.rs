//! CloudWatch of one region: metrics (PutMetricData, GetMetricStatistics, GetMetricData,
//! ListMetrics, the rollup — [`metrics`]) and alarms (metric, metric-math and composite
//! alarms, states, history, tags — [`alarms`]; their evaluation — [`evaluate`]) over the
//! pure semantics of `berth-metrics`.
//!
//! Time is the region's [`Clock`] (the system clock unless a test runs it faster).
//! Errors carry CloudWatch's query codes (`InvalidParameterValue`, …); `berth-api` renders
//! them in each of CloudWatch's three protocols.

mod alarms;
mod chunks;
mod evaluate;
mod metrics;
mod pending;
mod publish;
mod records;

pub use alarms::{
    Alarm, AlarmConfig, AlarmFilter, AlarmKind, AlarmMetric, AlarmSource, CompositeAlarm,
    ForMetric, HistoryFilter, HistoryItem, MetricAlarm,
};
pub use evaluate::{FiredAction, is_scaling_policy};
pub use metrics::{
    DataQuery, DataRequest, DataResponse, DataResult, ListFilter, MetricStat, QueryKind, ScanBy,
    StatisticsQuery,
};

use crate::background::Driver;
use crate::clock::Clock;
use crate::paging::Pager;
use berth_store::Store;
use berth_types::{Error, Scope};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// CloudWatch of one region. Cheap to clone.
#[derive(Clone)]
pub struct CloudWatch {
    scope: Scope,
    store: Store,
    pager: Pager,
    clock: Clock,
    pending: Arc<pending::PendingView>,
    chunks: Arc<chunks::ChunkCache>,
    background: Arc<Driver>,
    /// The minute each alarm's Auto Scaling actions last ran in.
    evaluated: Arc<Mutex<HashMap<String, i64>>>,
}

impl CloudWatch {
    /// CloudWatch over `store` (one region's partition).
    pub fn new(
        scope: Scope,
        store: Store,
        pager: Pager,
        clock: Clock,
        background: Arc<Driver>,
    ) -> CloudWatch {
        // The chunk cache hears of a commit before the pending view (see `chunks`).
        let chunks = Arc::new(chunks::ChunkCache::default());
        store.watch(chunks.clone());
        let pending = Arc::new(pending::PendingView::default());
        store.watch(pending.clone());
        CloudWatch {
            scope,
            store,
            pager,
            clock,
            pending,
            chunks,
            background,
            evaluated: Default::default(),
        }
    }

    /// The same handle, writing only while `fence` holds (a controller's term).
    pub fn fenced(&self, fence: Option<&berth_store::Fence>) -> Self {
        let mut h = self.clone();
        if let Some(f) = fence {
            h.store = h.store.fenced(f.clone());
        }
        h
    }

    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// The clock metric timestamps and periods follow.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
}

/// A request check's error, with its CloudWatch code and status.
pub fn input_error(e: berth_metrics::InputError) -> Error {
    Error::Coded {
        code: e.code.as_str(),
        status: e.code.http_status(),
        message: e.message,
    }
}

/// CloudWatch's answer to a token it did not issue for this listing.
fn invalid_token() -> Error {
    Error::coded(
        "InvalidNextToken",
        "The service couldn't process the NextToken.",
    )
}
