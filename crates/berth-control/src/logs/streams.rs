//! Log streams: create, delete, describe (by name — prefix, either direction — or by last
//! event time, pages of at most 50). A deleted stream's spans go with it; its chunks are
//! left to the sweeper.

use super::records::{GroupDoc, SpanDoc, StreamDoc, SweepDoc, chunk_key, chunk_prefix, stream_key};
use super::{
    Logs, group_not_found, invalid, key_of, name_error, scope_hash, stream_not_found, token_of,
};
use crate::paging::Page;
use crate::records::{all, decode, load, save};
use berth_store::{Kind, ListQuery, Tx};
use berth_types::Error;

/// DescribeLogStreams' default and largest page.
const PAGE: usize = 50;

/// How DescribeLogStreams orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamOrder {
    #[default]
    Name,
    LastEventTime,
}

/// DescribeLogStreams' filters.
#[derive(Debug, Clone, Default)]
pub struct StreamFilter {
    pub prefix: Option<String>,
    pub order: StreamOrder,
    pub descending: bool,
}

/// A log stream as DescribeLogStreams shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamView {
    pub name: String,
    pub created: i64,
    pub first_event: Option<i64>,
    pub last_event: Option<i64>,
    pub last_ingestion: Option<i64>,
    pub stored_bytes: i64,
}

fn view(name: &str, s: &StreamDoc) -> StreamView {
    StreamView {
        name: name.to_string(),
        created: s.created,
        first_event: s.first,
        last_event: s.last,
        last_ingestion: s.ingested,
        stored_bytes: s.bytes.max(0),
    }
}

/// The group's record inside a write job, or the not-found error.
pub(super) fn group_in(
    tx: &Tx<'_>,
    group: &str,
) -> Result<(berth_types::Generation, GroupDoc), Error> {
    load::<GroupDoc>(tx.get(Kind::LogGroup, group)?)?.ok_or_else(group_not_found)
}

impl Logs {
    /// CreateLogStream.
    pub async fn stream_create(&self, group: &str, stream: &str) -> Result<(), Error> {
        berth_logs::check_log_group_name(group).map_err(name_error)?;
        berth_logs::check_log_stream_name(stream).map_err(name_error)?;
        let key = stream_key(group, stream);
        let (group, created) = (group.to_string(), self.clock.now().0);
        self.store
            .write(move |tx| {
                group_in(tx, &group)?;
                if tx.get(Kind::LogStream, &key)?.is_some() {
                    return Err(Error::coded(
                        "ResourceAlreadyExistsException",
                        "The specified log stream already exists",
                    ));
                }
                let doc = StreamDoc {
                    created,
                    ..Default::default()
                };
                save(tx, Kind::LogStream, &key, None, &doc, None)
            })
            .await
    }

    /// DeleteLogStream.
    pub async fn stream_delete(&self, group: &str, stream: &str) -> Result<(), Error> {
        berth_logs::check_log_group_name(group).map_err(name_error)?;
        berth_logs::check_log_stream_name(stream).map_err(name_error)?;
        let index = self.index.clone();
        let (group, stream) = (group.to_string(), stream.to_string());
        self.store
            .write(move |tx| {
                let (_, g) = group_in(tx, &group)?;
                let key = stream_key(&group, &stream);
                let Some(rec) = tx.get(Kind::LogStream, &key)? else {
                    return Err(stream_not_found());
                };
                tx.delete(Kind::LogStream, &key, rec.generation)?;
                // The index is exact inside a write job (the watcher has seen every job
                // before this one); without it, the span records say.
                let inc = g.inc;
                let seqs = match index.stream_spans(&group, &inc, &stream) {
                    Some(s) => s.into_iter().map(|s| s.seq).collect(),
                    None => spans_of_stream(tx, &group, &inc, &stream)?,
                };
                for seq in &seqs {
                    let k = chunk_key(&group, &inc, *seq);
                    if let Some(r) = tx.get(Kind::LogSpan, &k)? {
                        tx.delete(Kind::LogSpan, &k, r.generation)?;
                    }
                }
                if !seqs.is_empty() {
                    let sweep = format!("{group}\t{inc}\t{stream}");
                    let doc = SweepDoc { seqs: Some(seqs) };
                    match tx.get(Kind::LogSweep, &sweep)? {
                        Some(r) => {
                            let mut old: SweepDoc = decode(&r.doc, &r.key)?;
                            old.seqs
                                .get_or_insert_default()
                                .extend(doc.seqs.unwrap_or_default());
                            save(tx, Kind::LogSweep, &sweep, None, &old, Some(r.generation))?;
                        }
                        None => save(tx, Kind::LogSweep, &sweep, None, &doc, None)?,
                    }
                }
                Ok(())
            })
            .await?;
        self.background.activate(crate::background::LOG_RETENTION);
        Ok(())
    }

    /// DescribeLogStreams.
    pub fn streams_describe(
        &self,
        group: &str,
        f: &StreamFilter,
        limit: Option<usize>,
        token: Option<&str>,
    ) -> Result<Page<StreamView>, Error> {
        berth_logs::check_log_group_name(group).map_err(name_error)?;
        if f.prefix.is_some() && f.order == StreamOrder::LastEventTime {
            return Err(invalid(
                "Cannot order by LastEventTime with a logStreamNamePrefix.",
            ));
        }
        self.group_doc(group)?;
        let limit = limit.unwrap_or(PAGE).clamp(1, PAGE);
        let scope = format!(
            "DescribeLogStreams:{}",
            scope_hash(&[group, &format!("{:?}{}", f.order, f.descending)])
        );
        let after = token.map(|t| key_of(&self.pager, &scope, t)).transpose()?;
        match f.order {
            StreamOrder::Name => self.streams_by_name(group, f, limit, after, &scope),
            StreamOrder::LastEventTime => self.streams_by_time(group, f, limit, after, &scope),
        }
    }

    fn streams_by_name(
        &self,
        group: &str,
        f: &StreamFilter,
        limit: usize,
        after: Option<String>,
        scope: &str,
    ) -> Result<Page<StreamView>, Error> {
        let base = format!("{group}\t");
        let prefix = format!("{base}{}", f.prefix.as_deref().unwrap_or(""));
        let after = after.map(|a| format!("{base}{a}"));
        let rows = self.store.read(|r| {
            r.list(
                Kind::LogStream,
                &ListQuery {
                    prefix: &prefix,
                    after: after.as_deref(),
                    descending: f.descending,
                    limit: limit + 1,
                    ..Default::default()
                },
            )
        })?;
        let more = rows.len() > limit;
        let mut items = Vec::new();
        for r in rows.into_iter().take(limit) {
            let s: StreamDoc = decode(&r.doc, &r.key)?;
            items.push(view(&r.key[base.len()..], &s));
        }
        let next_token = match (more, items.last()) {
            (true, Some(v)) => Some(token_of(&self.pager, scope, &v.name)),
            _ => None,
        };
        Ok(Page { items, next_token })
    }

    fn streams_by_time(
        &self,
        group: &str,
        f: &StreamFilter,
        limit: usize,
        after: Option<String>,
        scope: &str,
    ) -> Result<Page<StreamView>, Error> {
        // Ordered by (last event time, name); streams without events count as time 0.
        let order_key = |v: &StreamView| (v.last_event.unwrap_or(0), v.name.clone());
        let mut all: Vec<StreamView> = self
            .streams_all(group)?
            .iter()
            .map(|(n, s)| view(n, s))
            .collect();
        all.sort_by_key(order_key);
        if f.descending {
            all.reverse();
        }
        let after = after
            .map(|a| {
                let (t, name) = a.split_once('\t').ok_or_else(super::invalid_token)?;
                Ok::<_, Error>((
                    t.parse::<i64>().map_err(|_| super::invalid_token())?,
                    name.to_string(),
                ))
            })
            .transpose()?;
        let start = match &after {
            None => 0,
            Some(a) => all.partition_point(|v| {
                if f.descending {
                    order_key(v) >= *a
                } else {
                    order_key(v) <= *a
                }
            }),
        };
        let items: Vec<StreamView> = all.iter().skip(start).take(limit).cloned().collect();
        let more = all.len() > start + items.len();
        let next_token = match (more, items.last()) {
            (true, Some(v)) => {
                let (t, n) = order_key(v);
                Some(token_of(&self.pager, scope, &format!("{t}\t{n}")))
            }
            _ => None,
        };
        Ok(Page { items, next_token })
    }

    /// One stream's view.
    pub fn stream_describe(&self, group: &str, stream: &str) -> Result<StreamView, Error> {
        let key = stream_key(group, stream);
        let rec = self.store.read(|r| r.get(Kind::LogStream, &key))?;
        match rec {
            Some(r) => Ok(view(stream, &decode(&r.doc, &r.key)?)),
            None => Err(stream_not_found()),
        }
    }
}

/// The sequences of a stream's chunks, from the span records (inside a write job).
fn spans_of_stream(tx: &Tx<'_>, group: &str, inc: &str, stream: &str) -> Result<Vec<u64>, Error> {
    let prefix = chunk_prefix(group, inc);
    let spans: Vec<(String, SpanDoc)> = all(tx, Kind::LogSpan, &prefix)?;
    Ok(spans
        .into_iter()
        .filter(|(_, s)| s.s == stream)
        .filter_map(|(k, _)| super::records::parse_chunk_key(&k).map(|(_, _, seq)| seq))
        .collect())
}
