//! `berth-logs`: CloudWatch Logs' languages and rules, pure (no I/O, no clock: `now` is an
//! argument). The Logs API (awsJson 1.1) and its storage, and the agent's `awslogs` shipping,
//! are built on it.
//!
//! * [`names`]: log group and stream names, `retentionInDays` values.
//! * [`batch`]: what `PutLogEvents` accepts, drops (`rejectedLogEventsInfo`) or refuses.
//! * [`pattern`]: the filter-pattern language of FilterLogEvents and metric filters, and
//!   metric filters' `metricValue`/`dimensions`.
//! * [`insights`]: the Logs Insights query subset, parsed and run over events.
//! * [`multiline`]: Docker `awslogs`' `awslogs-datetime-format` / `awslogs-multiline-pattern`
//!   joining of lines into events.
//!
//! Error `Display` strings are the messages AWS returns (`InvalidParameterException`,
//! `MalformedQueryException`) where known; each module says which it had to word itself.

pub mod batch;
pub mod insights;
pub mod multiline;
pub mod names;
pub mod pattern;

pub use batch::{BatchError, BatchOutcome, RejectedInfo, check_batch};
pub use insights::{Query, QueryError, QueryEvent, QueryOutput, QueryStatistics};
pub use multiline::{LogEvent, Multiline, MultilineError};
pub use names::{
    NameError, RETENTION_DAYS, check_log_group_name, check_log_stream_name,
    check_new_log_group_name, check_retention_days,
};
pub use pattern::{Captures, MetricExtraction, MetricPoint, Pattern, PatternError, PatternKind};
