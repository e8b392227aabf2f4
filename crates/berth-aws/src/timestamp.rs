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
    let mut out = String::with_capacity(24);
    write_iso8601(&mut out, t);
    out
}

/// [`format_iso8601`] appended to `out` (by hand: responses carry many timestamps, and a
/// format description costs more than the rest of the element).
pub fn write_iso8601(out: &mut String, t: OffsetDateTime) {
    let t = t.to_offset(time::UtcOffset::UTC);
    let year = t.year();
    if !(0..=9999).contains(&year) {
        out.push_str(
            &t.format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .expect("formatting a UTC time cannot fail"),
        );
        return;
    }
    let digits = |out: &mut String, n: u32, width: u32| {
        for i in (0..width).rev() {
            out.push(char::from(b'0' + (n / 10u32.pow(i) % 10) as u8));
        }
    };
    digits(out, year as u32, 4);
    out.push('-');
    digits(out, u8::from(t.month()).into(), 2);
    out.push('-');
    digits(out, t.day().into(), 2);
    out.push('T');
    digits(out, t.hour().into(), 2);
    out.push(':');
    digits(out, t.minute().into(), 2);
    out.push(':');
    digits(out, t.second().into(), 2);
    out.push('.');
    digits(out, t.millisecond().into(), 3);
    out.push('Z');
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

    #[test]
    fn iso8601_by_hand_matches_the_format_description() {
        let described = |t: OffsetDateTime| {
            t.format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .unwrap()
        };
        for ms in [
            0i128,
            1,
            999,
            1_735_787_045_123,
            951_782_400_000,
            253_402_300_799_999,
        ] {
            let t = OffsetDateTime::from_unix_timestamp_nanos(ms * 1_000_000).unwrap();
            assert_eq!(format_iso8601(t), described(t), "{ms}");
        }
        let offset = time::UtcOffset::from_hms(2, 0, 0).unwrap();
        let t = OffsetDateTime::from_unix_timestamp(0)
            .unwrap()
            .to_offset(offset);
        assert_eq!(format_iso8601(t), "1970-01-01T00:00:00.000Z");
    }
}
