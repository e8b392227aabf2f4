//! Number and time renderings CloudWatch uses in text it generates (alarm reasons, reason
//! data, error messages). Internal helpers for `alarm` and `metric`; no clock reads.

use time::OffsetDateTime;
use time::macros::format_description;

/// `f64` as Java's `Double.toString` writes it, which is what CloudWatch's alarm reasons
/// show: `75.0`, `8.891518474692088`, `1.0E7`, `1.0E-4`.
pub(crate) fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    let a = v.abs();
    if (1e-3..1e7).contains(&a) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        // Rust's `{:e}` is the shortest round-trip mantissa: `1e7`, `1.5e-5`.
        let s = format!("{v:e}");
        match s.split_once('e') {
            Some((mantissa, exp)) if mantissa.contains('.') => format!("{mantissa}E{exp}"),
            Some((mantissa, exp)) => format!("{mantissa}.0E{exp}"),
            None => s,
        }
    }
}

fn datetime(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// `dd/MM/yy HH:mm:ss` in UTC, the datapoint time in a `StateReason`
/// (`81.2 (26/11/26 14:20:00)`).
pub(crate) fn reason_time(ms: i64) -> String {
    let f = format_description!("[day]/[month]/[year repr:last_two] [hour]:[minute]:[second]");
    datetime(ms)
        .and_then(|t| t.format(&f).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `2024-10-26T19:00:38.853+0000`, the timestamp format of `StateReasonData`.
pub(crate) fn reason_data_time(ms: i64) -> String {
    let f = format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]+0000"
    );
    datetime(ms)
        .and_then(|t| t.format(&f).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// ISO 8601 UTC with seconds, for error messages (`2016-10-03T23:00:00Z`).
pub(crate) fn iso_time(ms: i64) -> String {
    let f = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    datetime(ms)
        .and_then(|t| t.format(&f).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// An integer with thousands separators (`2,881`), as CloudWatch writes counts in messages.
pub(crate) fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_double_matches_java_rendering() {
        assert_eq!(java_double(75.0), "75.0");
        assert_eq!(java_double(81.2), "81.2");
        assert_eq!(java_double(8.891518474692088), "8.891518474692088");
        assert_eq!(java_double(0.0), "0.0");
        assert_eq!(java_double(-3.5), "-3.5");
        assert_eq!(java_double(1e7), "1.0E7");
        assert_eq!(java_double(12345678.9), "1.23456789E7");
        assert_eq!(java_double(0.0001), "1.0E-4");
        assert_eq!(java_double(0.001), "0.001");
    }

    #[test]
    fn reason_time_is_day_month_two_digit_year() {
        // 2026-11-26T14:20:00Z
        assert_eq!(reason_time(1_795_702_800_000), "26/11/26 14:20:00");
        assert_eq!(
            reason_data_time(1_795_702_800_853),
            "2026-11-26T14:20:00.853+0000"
        );
        assert_eq!(iso_time(1_795_702_800_853), "2026-11-26T14:20:00Z");
    }

    #[test]
    fn grouped_inserts_thousands_separators() {
        assert_eq!(grouped(7), "7");
        assert_eq!(grouped(1440), "1,440");
        assert_eq!(grouped(100_800), "100,800");
        assert_eq!(grouped(1_000_000), "1,000,000");
    }
}
