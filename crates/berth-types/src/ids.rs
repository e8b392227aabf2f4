//! Typed ids shared across crates.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(AccountId(s.to_string()))
        } else {
            Err(format!("account id must be 12 digits, got '{s}'"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A region name such as `us-east-1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-')
            && !s.ends_with('-');
        if ok {
            Ok(Region(s.to_string()))
        } else {
            Err(format!("'{s}' is not a region name such as us-east-1"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The version of a stored record; conditional writes name the generation they read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Generation(pub u64);

/// Milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Timestamp(pub i64);

impl Timestamp {
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp(d.as_millis() as i64)
    }
    /// Epoch seconds with millisecond precision (the awsJson wire form).
    pub fn epoch_seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

/// An ARN's parts, borrowed from the string: the one ARN parser every crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArnRef<'a> {
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> ArnRef<'a> {
    /// `arn:aws:<service>:<region>:<account>:<resource>` (region and account may be empty, as
    /// in IAM's); `None` for anything else.
    pub fn parse(s: &'a str) -> Option<ArnRef<'a>> {
        let mut parts = s.splitn(6, ':');
        let (Some("arn"), Some("aws"), Some(service), Some(region), Some(account), Some(resource)) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return None;
        };
        if service.is_empty() || resource.is_empty() {
            return None;
        }
        Some(ArnRef {
            service,
            region,
            account,
            resource,
        })
    }

    /// The resource path after `<kind>/` (`cluster/web` → `web`).
    pub fn path_of(&self, kind: &str) -> Option<&'a str> {
        self.resource
            .strip_prefix(kind)
            .and_then(|r| r.strip_prefix('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_validate_their_forms() {
        assert!(AccountId::parse("000000000000").is_ok());
        assert!(AccountId::parse("00000000000").is_err());
        assert!(AccountId::parse("00000000000a").is_err());
        assert!(Region::parse("eu-west-3").is_ok());
        assert!(Region::parse("EU").is_err());
        let arn =
            ArnRef::parse("arn:aws:ecs:us-east-1:000000000000:task-definition/web:3").unwrap();
        let r = ArnRef::parse("arn:aws:ecs:us-east-1:000000000000:cluster/web").unwrap();
        assert_eq!(
            (r.service, r.region, r.account),
            ("ecs", "us-east-1", "000000000000")
        );
        assert_eq!(r.path_of("cluster"), Some("web"));
        assert_eq!(r.path_of("task"), None);
        assert_eq!(
            ArnRef::parse("arn:aws:iam::000000000000:root")
                .unwrap()
                .region,
            ""
        );
        assert_eq!(arn.resource, "task-definition/web:3");
        assert!(ArnRef::parse("arn:aws:ecs:us-east-1").is_none());
        assert!(ArnRef::parse("arn:aws::us-east-1:0:x").is_none());
    }
}
