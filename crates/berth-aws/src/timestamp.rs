//! Wire timestamps: epoch seconds (awsJson), ISO-8601 (awsQuery/XML), SigV4's basic format.

use time::format_description::well_known::Iso8601;
use time::macros::format_description;
use time::{OffsetDateTime, PrimitiveDateTime};

/// `2025-01-02T03:04:05Z` or with fractional seconds; the forms awsQuery clients send.
pub fn parse_iso8601(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Iso8601::DEFAULT).ok()
}

/// `2025-01-02T03:04:05.123Z`: the XML form (milliseconds, UTC).
pub fn format_iso8601(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    ))
    .expect("formatting a UTC time cannot fail")
}

/// `20250102T030405Z`, the `X-Amz-Date` form.
pub fn parse_amz_date(s: &str) -> Option<OffsetDateTime> {
    PrimitiveDateTime::parse(
        s,
        format_description!("[year][month][day]T[hour][minute][second]Z"),
    )
    .ok()
    .map(PrimitiveDateTime::assume_utc)
}

pub fn format_amz_date(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[year][month][day]T[hour][minute][second]Z"
        ))
        .expect("formatting a UTC time cannot fail")
}

/// Epoch seconds with millisecond precision, the awsJson form (a JSON number).
pub fn epoch_seconds(t: OffsetDateTime) -> f64 {
    (t.unix_timestamp_nanos() / 1_000_000) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_round_trip() {
        let t = parse_amz_date("20250102T030405Z").unwrap();
        assert_eq!(format_amz_date(t), "20250102T030405Z");
        assert_eq!(format_iso8601(t), "2025-01-02T03:04:05.000Z");
        assert_eq!(parse_iso8601("2025-01-02T03:04:05Z"), Some(t));
        assert_eq!(
            parse_iso8601("2025-01-02T03:04:05.123456Z").map(|x| x.unix_timestamp()),
            Some(t.unix_timestamp())
        );
        assert_eq!(epoch_seconds(t), 1735787045.0);
        assert!(parse_amz_date("2025-01-02").is_none());
    }
}
