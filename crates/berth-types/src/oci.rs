//! Registry vocabulary: content digests, repository names, tags (OCI distribution spec).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A content digest. Only `sha256` is accepted (what docker, skopeo and ECR use).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

impl Digest {
    pub fn parse(s: &str) -> Option<Digest> {
        let hex = s.strip_prefix("sha256:")?;
        (hex.len() == 64
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Digest(s.to_string()))
    }

    /// The digest of `hex` (64 lower-case hex characters of a SHA-256).
    pub fn from_sha256_hex(hex: &str) -> Digest {
        Digest(format!("sha256:{hex}"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0[7..]
    }
}

impl TryFrom<String> for Digest {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Digest::parse(&s).ok_or_else(|| format!("invalid digest '{s}'"))
    }
}

impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A repository name: 2–256 characters, lower-case path components separated by `/`, each
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` (ECR's `RepositoryName` pattern).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RepositoryName(String);

fn component_ok(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: ".", "_", "__" or a run of "-", always between alphanumerics.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < b.len() && b[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || i >= b.len() || !is_alnum(b[i]) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl RepositoryName {
    pub fn parse(s: &str) -> Option<RepositoryName> {
        ((2..=256).contains(&s.len()) && s.split('/').all(component_ok))
            .then(|| RepositoryName(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepositoryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag as registries accept it: `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub fn is_tag(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_names_and_tags_follow_the_spec() {
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(Digest::parse(&d).unwrap().hex(), "a".repeat(64));
        assert!(Digest::parse("sha256:abc").is_none());
        assert!(Digest::parse(&format!("sha512:{}", "a".repeat(64))).is_none());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_none());
        for ok in ["ab", "team/app", "a.b_c__d---e/f0", "busybox"] {
            assert!(RepositoryName::parse(ok).is_some(), "{ok}");
        }
        for bad in [
            "a", "A/b", "../x", "a//b", "a/", "-a", "a_", "a___b", "a/%2e%2e", "a/./b", "a/../b",
        ] {
            assert!(RepositoryName::parse(bad).is_none(), "{bad}");
        }
        assert!(
            is_tag("v1.2-rc_3")
                && is_tag("_x")
                && !is_tag(".x")
                && !is_tag("")
                && !is_tag(&"a".repeat(129))
        );
    }
}
