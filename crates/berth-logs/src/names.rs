//! Log group and log stream names, and the retention periods a log group may have, checked as
//! CloudWatch Logs checks them (model shapes `LogGroupName`, `LogStreamName`, `Days`; the
//! `CreateLogGroup`/`CreateLogStream`/`PutRetentionPolicy` documentation).
//!
//! Called by the Logs API handlers before anything is stored. Pure: no I/O.
//!
//! Messages: length and pattern violations are worded as Smithy services word a failed
//! constraint ("1 validation error detected: Value '…' at 'logGroupName' failed to satisfy
//! constraint: …"), the form `berth-aws`'s validator uses. The `aws/` prefix message and the
//! retention message's enum list are Berth's wording of the documented rule (not seen verbatim).

use thiserror::Error;

/// The longest log group or stream name, in characters.
pub const NAME_MAX: usize = 512;

/// The values `PutRetentionPolicy.retentionInDays` accepts (the model's `Days` documentation;
/// the spec digest lists the same 22 values). Absent retention means "never expire".
pub const RETENTION_DAYS: [u32; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// A name or retention value CloudWatch Logs refuses, as `InvalidParameterException`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must have length greater than or equal to 1"
    )]
    Empty { member: &'static str, value: String },
    #[error(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must have length less than or equal to 512"
    )]
    TooLong { member: &'static str, value: String },
    #[error(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}"
    )]
    Pattern {
        member: &'static str,
        value: String,
        pattern: &'static str,
    },
    /// Names starting `aws/` are reserved for AWS services.
    #[error("Log group names can't start with the string aws/")]
    Reserved { value: String },
    #[error(
        "1 validation error detected: Value '{value}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653]"
    )]
    Retention { value: i64 },
}

const GROUP_PATTERN: &str = r"[\.\-_/#A-Za-z0-9]+";
const STREAM_PATTERN: &str = "[^:*]*";

fn group_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#')
}

fn length(member: &'static str, name: &str) -> Result<(), NameError> {
    let n = name.chars().count();
    if n == 0 {
        return Err(NameError::Empty {
            member,
            value: name.into(),
        });
    }
    if n > NAME_MAX {
        return Err(NameError::TooLong {
            member,
            value: name.into(),
        });
    }
    Ok(())
}

/// Checks a name given as `logGroupName` to an operation that reads a group.
pub fn check_log_group_name(name: &str) -> Result<(), NameError> {
    check_group(name, "logGroupName")
}

/// Checks a name for `CreateLogGroup`: [`check_log_group_name`], and not under `aws/`.
pub fn check_new_log_group_name(name: &str) -> Result<(), NameError> {
    check_log_group_name(name)?;
    if name.starts_with("aws/") {
        return Err(NameError::Reserved { value: name.into() });
    }
    Ok(())
}

/// Checks a group name given under another member (`logGroupNamePrefix` is checked by the
/// caller with [`check_log_group_name_prefix`]).
pub fn check_group(name: &str, member: &'static str) -> Result<(), NameError> {
    length(member, name)?;
    if !name.chars().all(group_char) {
        return Err(NameError::Pattern {
            member,
            value: name.into(),
            pattern: GROUP_PATTERN,
        });
    }
    Ok(())
}

/// `logGroupNamePrefix` / `logGroupNamePattern`: 0–512 of the group-name characters.
pub fn check_log_group_name_prefix(prefix: &str, member: &'static str) -> Result<(), NameError> {
    if prefix.chars().count() > NAME_MAX {
        return Err(NameError::TooLong {
            member,
            value: prefix.into(),
        });
    }
    if !prefix.chars().all(group_char) {
        return Err(NameError::Pattern {
            member,
            value: prefix.into(),
            pattern: r"[\.\-_/#A-Za-z0-9]*",
        });
    }
    Ok(())
}

/// Checks a `logStreamName`: 1–512 characters, no `:` or `*`.
pub fn check_log_stream_name(name: &str) -> Result<(), NameError> {
    length("logStreamName", name)?;
    if name.contains([':', '*']) {
        return Err(NameError::Pattern {
            member: "logStreamName",
            value: name.into(),
            pattern: STREAM_PATTERN,
        });
    }
    Ok(())
}

/// Checks a `retentionInDays` value.
pub fn check_retention_days(days: i64) -> Result<u32, NameError> {
    u32::try_from(days)
        .ok()
        .filter(|d| RETENTION_DAYS.contains(d))
        .ok_or(NameError::Retention { value: days })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_accept_the_documented_characters() {
        for ok in [
            "a",
            "/ecs/web",
            "my-app_1.log#x",
            "/aws/lambda/f",
            &"a".repeat(512),
        ] {
            assert_eq!(check_new_log_group_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn group_names_refuse_bad_characters_length_and_reserved_prefix() {
        let e = check_log_group_name("a:b").unwrap_err();
        assert_eq!(
            e.to_string(),
            r"1 validation error detected: Value 'a:b' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+"
        );
        assert!(matches!(
            check_log_group_name(""),
            Err(NameError::Empty { .. })
        ));
        assert!(matches!(
            check_log_group_name(&"a".repeat(513)),
            Err(NameError::TooLong { .. })
        ));
        assert!(matches!(
            check_log_group_name("é"),
            Err(NameError::Pattern { .. })
        ));
        assert!(matches!(
            check_new_log_group_name("aws/x"),
            Err(NameError::Reserved { .. })
        ));
        // Reading an existing `aws/` group is not refused.
        assert_eq!(check_log_group_name("aws/x"), Ok(()));
    }

    #[test]
    fn stream_names_refuse_colon_and_star_only() {
        assert_eq!(check_log_stream_name("web/nginx/158d1c80 é!"), Ok(()));
        assert_eq!(check_log_stream_name(&"é".repeat(512)), Ok(()));
        for bad in ["a:b", "a*", ""] {
            assert!(check_log_stream_name(bad).is_err(), "{bad}");
        }
        assert!(check_log_stream_name(&"a".repeat(513)).is_err());
    }

    #[test]
    fn retention_accepts_the_model_values_only() {
        for d in RETENTION_DAYS {
            assert_eq!(check_retention_days(d.into()), Ok(d));
        }
        for d in [0, 2, 4, 366, 3652, 3654, -1, i64::MAX] {
            assert!(check_retention_days(d).is_err(), "{d}");
        }
        assert!(
            check_retention_days(2)
                .unwrap_err()
                .to_string()
                .starts_with("1 validation error detected: Value '2' at 'retentionInDays'")
        );
    }
}
