//! CloudWatch metrics of one region: PutMetricData, the reads (GetMetricStatistics,
//! GetMetricData, ListMetrics) and the rollup that moves batches into chunks and drops what
//! retention no longer keeps. Record formats: [`super::records`].

use super::pending::PendingMetric;
use super::records::*;
use super::{CloudWatch, input_error, invalid_token};
use crate::background::Counts;
use crate::records::decode;
use berth_metrics::math::{self, Context, Expr, Grid};
use berth_metrics::retention::{self, Api, QueryWindow, Tier};
use berth_metrics::{
    Aggregate, Datapoint, DatumInput, MetricId, Publisher, Statistic, Unit, check_put_metric_data,
};
use berth_store::{Kind, ListQuery};
use berth_types::Error;
use std::collections::{BTreeMap, HashMap};

/// A GetMetricStatistics call.
#[derive(Debug, Clone)]
pub struct StatisticsQuery {
    pub metric: MetricId,
    pub start_ms: i64,
    pub end_ms: i64,
    pub period_s: i64,
    pub unit: Option<Unit>,
}

/// What one metric query of GetMetricData (or a metric-math alarm) reads.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct MetricStat {
    pub metric: MetricId,
    pub period_s: i64,
    pub stat: Statistic,
    pub unit: Option<Unit>,
}

/// One `MetricDataQuery`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DataQuery {
    pub id: String,
    pub what: QueryKind,
    pub label: Option<String>,
    pub return_data: bool,
    /// An expression's own period (a metric stat's is in its [`MetricStat`]).
    pub period_s: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum QueryKind {
    Stat(MetricStat),
    Expression(String),
}

/// How GetMetricData orders each result's points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScanBy {
    #[default]
    TimestampDescending,
    TimestampAscending,
}

/// A GetMetricData call.
#[derive(Debug, Clone)]
pub struct DataRequest {
    pub queries: Vec<DataQuery>,
    pub start_ms: i64,
    pub end_ms: i64,
    pub scan_by: ScanBy,
    pub max_datapoints: Option<usize>,
    pub next_token: Option<String>,
}

/// One `MetricDataResult`.
#[derive(Debug, Clone, PartialEq)]
pub struct DataResult {
    pub id: String,
    pub label: String,
    /// In the order ScanBy asks.
    pub points: Vec<(i64, f64)>,
    /// `Complete`, or `PartialData` when a page ends inside this result.
    pub complete: bool,
    pub messages: Vec<String>,
}

/// GetMetricData's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct DataResponse {
    pub results: Vec<DataResult>,
    pub next_token: Option<String>,
}

/// ListMetrics' filters.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub namespace: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: Vec<(String, Option<String>)>,
    /// Only metrics with data in the last 3 hours (`RecentlyActive=PT3H`).
    pub recently_active: bool,
}

/// ListMetrics pages hold at most this many metrics.
const LIST_PAGE: usize = 500;
/// GetMetricData returns at most this many datapoints in all.
const MAX_DATAPOINTS: usize = 100_800;
/// ListMetrics shows metrics with data in the last two weeks.
const LISTED_FOR_MS: i64 = 14 * 24 * 3_600_000;
/// One rollup job moves at most this many batches.
const ROLLUP_BATCHES: usize = 256;

impl CloudWatch {
    /// PutMetricData: checks the data as CloudWatch does and stores the accepted samples in
    /// one batch record. Answers how many samples were stored.
    pub async fn metric_data_put(
        &self,
        namespace: &str,
        data: Vec<DatumInput>,
        publisher: Publisher,
    ) -> Result<usize, Error> {
        let now = self.clock.now().0;
        let samples =
            check_put_metric_data(namespace, &data, now, publisher).map_err(input_error)?;
        if samples.is_empty() {
            return Ok(0);
        }
        let mut doc = BatchDoc::default();
        let mut index: HashMap<MetricId, u32> = HashMap::new();
        for s in &samples {
            let m = *index.entry(s.metric.clone()).or_insert_with(|| {
                doc.metrics.push(s.metric.clone());
                (doc.metrics.len() - 1) as u32
            });
            doc.samples.push(BatchSample {
                m,
                t: s.timestamp_ms,
                u: s.unit,
                r: s.resolution.seconds(),
                a: s.aggregate.clone(),
            });
        }
        let n = doc.samples.len();
        let text = serde_json::to_string(&doc).map_err(Error::internal)?;
        self.store
            .write(move |tx| {
                let seq = match tx.get(Kind::MetricBatch, SEQ_KEY)? {
                    Some(rec) => {
                        let last: u64 = decode(&rec.doc, SEQ_KEY)?;
                        tx.update(
                            Kind::MetricBatch,
                            SEQ_KEY,
                            rec.generation,
                            None,
                            &(last + 1).to_string(),
                        )?;
                        last + 1
                    }
                    None => {
                        tx.insert(Kind::MetricBatch, SEQ_KEY, None, "1")?;
                        1
                    }
                };
                tx.insert_new(Kind::MetricBatch, &batch_key(seq), None, &text)?;
                Ok(())
            })
            .await?;
        Ok(n)
    }

    /// The buckets of `metric` in `tier` within `[start, end)`, of `unit` (every unit when
    /// `None`): its chunks, plus the pending samples of batches after each chunk's mark.
    async fn buckets(
        &self,
        metric: &MetricId,
        tier: Tier,
        start: i64,
        end: i64,
        unit: Option<Unit>,
    ) -> Result<(Vec<(i64, Aggregate)>, Option<Unit>), Error> {
        let hash = metric_hash(metric);
        // Pending first: a rollup that commits after this reads chunks that hold what left
        // the view (the store's cache is refreshed before the view learns of the commit).
        let pending = self.pending.metric(&self.store, &hash).await?;
        let mut merged: BTreeMap<i64, Aggregate> = BTreeMap::new();
        let mut marks: HashMap<i64, u64> = HashMap::new();
        let mut seen = None;
        let mut keep = |t: i64, u: Unit| {
            let kept = t >= start && t < end && unit.is_none_or(|w| w == u);
            if kept && seen.is_none() {
                seen = Some(u);
            }
            kept
        };
        let version = self.chunks.version();
        let mut chunk = chunk_start(tier, start);
        while chunk < end {
            let key = chunk_key(tier, chunk, &hash);
            let doc = match self.chunks.get(&key) {
                Some(doc) => Some(doc),
                None => match self.store.read(|r| r.get(Kind::MetricChunk, &key))? {
                    Some(rec) => {
                        let doc = std::sync::Arc::new(decode::<ChunkDoc>(&rec.doc, &key)?);
                        self.chunks.insert(&key, doc.clone(), version);
                        Some(doc)
                    }
                    None => None,
                },
            };
            if let Some(doc) = doc {
                marks.insert(chunk, doc.w);
                for b in doc.b.iter().filter(|b| keep(b.t, b.u)) {
                    merge_into(&mut merged, b.t, &b.a);
                }
            }
            chunk += chunk_span_ms(tier);
        }
        if let Some(PendingMetric { samples, .. }) = pending {
            for p in samples {
                let s = &p.sample;
                if !retention::tiers_for(s.resolution()).contains(&tier) {
                    continue;
                }
                let t = tier.bucket_start(s.t);
                let mark = marks.get(&chunk_start(tier, t)).copied().unwrap_or(0);
                if p.seq > mark && keep(t, s.u) {
                    merge_into(&mut merged, t, &s.a);
                }
            }
        }
        Ok((merged.into_iter().collect(), seen))
    }

    /// GetMetricStatistics: the datapoints (ascending) and their unit (the query's, else
    /// the data's).
    pub async fn metric_statistics(
        &self,
        q: &StatisticsQuery,
    ) -> Result<(Vec<Datapoint>, Unit), Error> {
        let now = self.clock.now().0;
        let window = retention::plan_query(
            Api::GetMetricStatistics,
            q.start_ms,
            q.end_ms,
            q.period_s,
            now,
        )
        .map_err(input_error)?;
        let Some(tier) = window.tier else {
            return Ok((Vec::new(), q.unit.unwrap_or(Unit::None)));
        };
        let (buckets, seen) = self
            .buckets(&q.metric, tier, window.start_ms, window.end_ms, q.unit)
            .await?;
        Ok((
            berth_metrics::statistics_datapoints(&buckets, &window),
            q.unit.or(seen).unwrap_or(Unit::None),
        ))
    }

    /// The series of one metric stat over `[start, end)` (ascending).
    pub(super) async fn stat_series(
        &self,
        stat: &MetricStat,
        start_ms: i64,
        end_ms: i64,
    ) -> Result<(berth_metrics::Series, QueryWindow), Error> {
        let now = self.clock.now().0;
        let window =
            retention::plan_query(Api::GetMetricData, start_ms, end_ms, stat.period_s, now)
                .map_err(input_error)?;
        let Some(tier) = window.tier else {
            return Ok((berth_metrics::Series::new(), window));
        };
        let (buckets, _) = self
            .buckets(
                &stat.metric,
                tier,
                window.start_ms,
                window.end_ms,
                stat.unit,
            )
            .await?;
        Ok((
            berth_metrics::metric_stat_series(&buckets, &window, &stat.stat),
            window,
        ))
    }

    /// GetMetricData: every query evaluated over the range (metric math after the queries it
    /// names), the results of those with `ReturnData`, paged by `MaxDatapoints`.
    pub async fn metric_data(&self, req: &DataRequest) -> Result<DataResponse, Error> {
        let results = self
            .evaluate_queries(&req.queries, req.start_ms, req.end_ms)
            .await?;
        let mut out: Vec<DataResult> = Vec::new();
        for (q, value) in req.queries.iter().zip(results) {
            if !q.return_data {
                continue;
            }
            let mut members = match value {
                math::Value::Series(s) => vec![(q.id.clone(), q.label.clone(), s)],
                math::Value::Array(list) => list
                    .into_iter()
                    .map(|l| {
                        (
                            q.id.clone(),
                            Some(q.label.clone().unwrap_or(l.id)),
                            l.series,
                        )
                    })
                    .collect(),
                math::Value::Scalar(_) => Vec::new(),
            };
            for (id, label, series) in members.drain(..) {
                let mut points: Vec<(i64, f64)> = series.points().collect();
                if req.scan_by == ScanBy::TimestampDescending {
                    points.reverse();
                }
                out.push(DataResult {
                    label: label.unwrap_or_else(|| default_label(q)),
                    id,
                    points,
                    complete: true,
                    messages: Vec::new(),
                });
            }
        }
        self.page_data(out, req)
    }

    /// Evaluates `queries` over `[start, end)`: each one's value, in request order.
    pub(super) async fn evaluate_queries(
        &self,
        queries: &[DataQuery],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<math::Value>, Error> {
        let validation = |m: String| Error::coded("ValidationError", m);
        let mut exprs: Vec<Option<Expr>> = Vec::with_capacity(queries.len());
        for q in queries {
            if !valid_id(&q.id) {
                return Err(validation(format!(
                    "The value {} for parameter MetricDataQueries.member.Id is invalid: it must begin with a lowercase letter and contain only letters, digits and underscores.",
                    q.id
                )));
            }
            exprs.push(match &q.what {
                QueryKind::Expression(e) => {
                    Some(Expr::parse(e).map_err(|e| validation(e.message))?)
                }
                QueryKind::Stat(_) => None,
            });
        }
        let order = math::evaluation_order(
            &queries
                .iter()
                .zip(&exprs)
                .map(|(q, e)| (q.id.as_str(), e.as_ref()))
                .collect::<Vec<_>>(),
        )
        .map_err(|e| validation(e.message))?;
        let metric_ids: Vec<String> = queries
            .iter()
            .filter(|q| matches!(q.what, QueryKind::Stat(_)))
            .map(|q| q.id.clone())
            .collect();
        let mut values: HashMap<String, math::Value> = HashMap::new();
        let mut grid = None;
        for i in order {
            let q = &queries[i];
            let value = match (&q.what, &exprs[i]) {
                (QueryKind::Stat(stat), _) => {
                    let (series, window) = self.stat_series(stat, start_ms, end_ms).await?;
                    grid.get_or_insert(Grid::from(&window));
                    math::Value::Series(series)
                }
                (QueryKind::Expression(_), Some(expr)) => {
                    let period = q.period_s.unwrap_or(60);
                    let g = *grid.get_or_insert(Grid {
                        start_ms: start_ms.div_euclid(period * 1000) * period * 1000,
                        end_ms,
                        period_ms: period * 1000,
                    });
                    let ctx = Context {
                        results: &values,
                        metric_ids: &metric_ids,
                        grid: g,
                    };
                    let v = math::evaluate(expr, &ctx).map_err(|e| validation(e.message))?;
                    if q.return_data {
                        v.check_final().map_err(|e| validation(e.message))?;
                    }
                    v
                }
                (QueryKind::Expression(_), None) => unreachable!("parsed above"),
            };
            values.insert(q.id.clone(), value);
        }
        Ok(queries
            .iter()
            .map(|q| values.remove(&q.id).unwrap_or(math::Value::Scalar(0.0)))
            .collect())
    }

    /// Cuts GetMetricData's results to `MaxDatapoints` (and the overall limit), continuing
    /// from the request's token.
    fn page_data(
        &self,
        mut results: Vec<DataResult>,
        req: &DataRequest,
    ) -> Result<DataResponse, Error> {
        let scope = "GetMetricData";
        let mut skip = match &req.next_token {
            Some(t) => self
                .pager
                .decode(scope, t)
                .map_err(|_| invalid_token())?
                .parse::<usize>()
                .map_err(|_| invalid_token())?,
            None => 0,
        };
        let budget = req
            .max_datapoints
            .unwrap_or(MAX_DATAPOINTS)
            .min(MAX_DATAPOINTS);
        let mut left = budget;
        let mut served = skip;
        let mut more = false;
        for r in &mut results {
            let drop = skip.min(r.points.len());
            r.points.drain(..drop);
            skip -= drop;
            if r.points.len() > left {
                r.points.truncate(left);
                r.complete = false;
                more = true;
            }
            left -= r.points.len();
            served += r.points.len();
        }
        Ok(DataResponse {
            results,
            next_token: more.then(|| self.pager.encode(scope, &served.to_string())),
        })
    }

    /// ListMetrics: the metrics with data in the last two weeks (three hours with
    /// `recently_active`), filtered, in pages of 500.
    pub async fn metrics_list(
        &self,
        f: &ListFilter,
        token: Option<&str>,
    ) -> Result<(Vec<MetricId>, Option<String>), Error> {
        let now = self.clock.now().0;
        let since = now
            - if f.recently_active {
                3 * 3_600_000
            } else {
                LISTED_FOR_MS
            };
        let mut found: BTreeMap<String, MetricId> = BTreeMap::new();
        let stored = self.store.read(|r| {
            r.list(
                Kind::Metric,
                &ListQuery {
                    limit: usize::MAX >> 1,
                    ..Default::default()
                },
            )
        })?;
        for rec in stored {
            let doc: MetricDoc = decode(&rec.doc, &rec.key)?;
            if doc.last >= since {
                found.insert(rec.key, doc.id);
            }
        }
        for (id, last) in self.pending.metrics(&self.store).await? {
            if last >= since {
                found.insert(metric_hash(&id), id);
            }
        }
        let mut matching: Vec<MetricId> = found
            .into_values()
            .filter(|m| f.namespace.as_deref().is_none_or(|n| m.namespace() == n))
            .filter(|m| f.metric_name.as_deref().is_none_or(|n| m.name() == n))
            .filter(|m| m.matches_dimension_filter(&f.dimensions))
            .collect();
        matching.sort();
        let scope = format!("ListMetrics\0{f:?}");
        let skip = match token {
            Some(t) => self
                .pager
                .decode(&scope, t)
                .map_err(|_| invalid_token())?
                .parse::<usize>()
                .map_err(|_| invalid_token())?,
            None => 0,
        };
        let page: Vec<MetricId> = matching
            .iter()
            .skip(skip)
            .take(LIST_PAGE)
            .cloned()
            .collect();
        let next = (skip + page.len() < matching.len())
            .then(|| self.pager.encode(&scope, &(skip + page.len()).to_string()));
        Ok((page, next))
    }

    /// The rollup (a background task): batches into chunks, metrics into the catalog,
    /// expired chunks and catalog entries out. Runs jobs of at most [`ROLLUP_BATCHES`]
    /// batches until none is left.
    pub async fn metrics_rollup(&self) -> Result<Counts, Error> {
        let store = &self.store;
        let now = self.clock.now().0;
        let (mut batches, mut chunks) = (0u64, 0u64);
        loop {
            let (b, c) = store.write(move |tx| roll_up(tx, now)).await?;
            batches += b;
            chunks += c;
            if b < ROLLUP_BATCHES as u64 {
                break;
            }
        }
        let expired = store.write(move |tx| expire(tx, now)).await?;
        let forgotten = store
            .write(move |tx| super::alarms::history_expire(tx, now))
            .await?;
        Ok(vec![
            ("batches rolled up", batches),
            ("chunks written", chunks),
            ("chunks expired", expired),
            ("alarm history items expired", forgotten),
        ])
    }
}

fn merge_into(merged: &mut BTreeMap<i64, Aggregate>, t: i64, a: &Aggregate) {
    match merged.get_mut(&t) {
        Some(have) => have.merge(a),
        None => {
            merged.insert(t, a.clone());
        }
    }
}

/// `^[a-z][a-zA-Z0-9_]*$`.
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A result's label when the query gives none: the metric's name, or the expression's id.
fn default_label(q: &DataQuery) -> String {
    match &q.what {
        QueryKind::Stat(s) => s.metric.name().to_string(),
        QueryKind::Expression(_) => q.id.clone(),
    }
}

/// One rollup job: the oldest pending batches into chunks and the catalog, then deleted.
fn roll_up(tx: &mut berth_store::Tx<'_>, now: i64) -> Result<(u64, u64), Error> {
    let rows = tx.list(
        Kind::MetricBatch,
        &ListQuery {
            prefix: "b",
            limit: ROLLUP_BATCHES,
            ..Default::default()
        },
    )?;
    let Some(mark) = rows.last().and_then(|r| batch_seq(&r.key)) else {
        return Ok((0, 0));
    };
    let mut chunks: HashMap<String, ChunkDoc> = HashMap::new();
    let mut catalog: HashMap<String, MetricDoc> = HashMap::new();
    for rec in &rows {
        let batch: BatchDoc = decode(&rec.doc, &rec.key)?;
        let hashes: Vec<String> = batch.metrics.iter().map(metric_hash).collect();
        for s in &batch.samples {
            let (Some(hash), Some(id)) =
                (hashes.get(s.m as usize), batch.metrics.get(s.m as usize))
            else {
                continue;
            };
            for tier in retention::tiers_for(s.resolution()) {
                let t = tier.bucket_start(s.t);
                if tier.expired(t, now) {
                    continue;
                }
                let key = chunk_key(*tier, chunk_start(*tier, t), hash);
                if !chunks.contains_key(&key) {
                    let doc = match tx.get(Kind::MetricChunk, &key)? {
                        Some(r) => decode(&r.doc, &key)?,
                        None => ChunkDoc::default(),
                    };
                    chunks.insert(key.clone(), doc);
                }
                if let Some(c) = chunks.get_mut(&key) {
                    c.merge(t, s.u, &s.a);
                }
            }
            let entry = catalog.entry(hash.clone()).or_insert_with(|| MetricDoc {
                id: id.clone(),
                last: s.t,
            });
            entry.last = entry.last.max(s.t);
        }
        tx.delete(Kind::MetricBatch, &rec.key, rec.generation)?;
    }
    let written = chunks.len() as u64;
    for (key, mut doc) in chunks {
        doc.w = mark;
        put(tx, Kind::MetricChunk, &key, &doc)?;
    }
    for (hash, mut doc) in catalog {
        if let Some(r) = tx.get(Kind::Metric, &hash)? {
            let old: MetricDoc = decode(&r.doc, &hash)?;
            doc.last = doc.last.max(old.last);
        }
        put(tx, Kind::Metric, &hash, &doc)?;
    }
    Ok((rows.len() as u64, written))
}

/// Writes `doc` under `key`, whether or not a record is there.
fn put<T: serde::Serialize>(
    tx: &mut berth_store::Tx<'_>,
    kind: Kind,
    key: &str,
    doc: &T,
) -> Result<(), Error> {
    let text = serde_json::to_string(doc).map_err(Error::internal)?;
    match tx.get(kind, key)? {
        Some(r) => tx.update(kind, key, r.generation, None, &text)?,
        None => tx.insert(kind, key, None, &text)?,
    };
    Ok(())
}

/// Deletes the chunks retention no longer keeps (oldest first, per tier) and catalog
/// entries without data for two weeks.
fn expire(tx: &mut berth_store::Tx<'_>, now: i64) -> Result<u64, Error> {
    let mut n = 0;
    for tier in retention::TIERS {
        let prefix = tier_prefix(tier);
        loop {
            let rows = tx.list(
                Kind::MetricChunk,
                &ListQuery {
                    prefix: &prefix,
                    limit: 256,
                    ..Default::default()
                },
            )?;
            let mut more = rows.len() == 256;
            for r in &rows {
                let expired = chunk_key_start(&r.key)
                    .is_some_and(|s| tier.expired(s + chunk_span_ms(tier) - 1, now));
                if !expired {
                    more = false;
                    break;
                }
                tx.delete(Kind::MetricChunk, &r.key, r.generation)?;
                n += 1;
            }
            if !more {
                break;
            }
        }
    }
    let stale = now - LISTED_FOR_MS;
    let catalog = tx.list(
        Kind::Metric,
        &ListQuery {
            limit: usize::MAX >> 1,
            ..Default::default()
        },
    )?;
    for r in catalog {
        let doc: MetricDoc = decode(&r.doc, &r.key)?;
        if doc.last < stale {
            tx.delete(Kind::Metric, &r.key, r.generation)?;
        }
    }
    Ok(n)
}
