//! Image scanning: the registry's scanning configuration (PutRegistryScanningConfiguration),
//! which images are scanned on push, and manual scans (StartImageScan).
//!
//! Berth has no vulnerability database (it runs offline), so it finds nothing — and says so
//! the way ECR's basic scanning does for an image whose operating system it does not support:
//! a scan ends at once with status `FAILED` and the description [`UNSUPPORTED`]
//! (`DescribeImageScanFindings`), never with made-up findings. What Berth keeps is when each
//! image was last scanned ([`crate::Image::scanned_at`]): that is what answers
//! `ScanNotFoundException` before any scan, and what enforces basic scanning's one scan per
//! image per 24 hours (`LimitExceededException`).
//!
//! Registry rules (`rules[].repositoryFilters`, `WILDCARD`): a filter without `*` matches a
//! repository whose name contains it; with `*`, the whole name must match the pattern
//! (`*prod` matches `repo-prod`, not `prod-repo`).

use crate::{Image, Reference, Registry, Repository, decode, encode, key, wildcard_match};
use berth_store::{Kind, Read};
use berth_types::{Error, Timestamp};
use serde::{Deserialize, Serialize};

/// The record key of the scanning configuration.
const SCANNING: &str = "scanning";

/// What ECR's basic scanning reports for an image it cannot scan; Berth reports it for every
/// image.
pub const UNSUPPORTED: &str =
    "UnsupportedImageError: The operating system and/or package manager are not supported.";

/// One scan per image per this many milliseconds (basic scanning's 24 hours).
pub const SCAN_QUOTA_MS: i64 = 24 * 3600 * 1000;

/// `scanType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ScanType {
    #[default]
    Basic,
    Enhanced,
}

impl ScanType {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanType::Basic => "BASIC",
            ScanType::Enhanced => "ENHANCED",
        }
    }

    pub fn parse(s: &str) -> Option<ScanType> {
        match s {
            "BASIC" => Some(ScanType::Basic),
            "ENHANCED" => Some(ScanType::Enhanced),
            _ => None,
        }
    }
}

/// `scanFrequency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScanFrequency {
    ScanOnPush,
    ContinuousScan,
    Manual,
}

impl ScanFrequency {
    pub fn as_str(self) -> &'static str {
        match self {
            ScanFrequency::ScanOnPush => "SCAN_ON_PUSH",
            ScanFrequency::ContinuousScan => "CONTINUOUS_SCAN",
            ScanFrequency::Manual => "MANUAL",
        }
    }

    pub fn parse(s: &str) -> Option<ScanFrequency> {
        match s {
            "SCAN_ON_PUSH" => Some(ScanFrequency::ScanOnPush),
            "CONTINUOUS_SCAN" => Some(ScanFrequency::ContinuousScan),
            "MANUAL" => Some(ScanFrequency::Manual),
            _ => None,
        }
    }
}

/// One registry scanning rule: a frequency for the repositories its filters match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanRule {
    pub frequency: ScanFrequency,
    /// `WILDCARD` filters.
    pub filters: Vec<String>,
}

/// The registry's scanning configuration (default: `BASIC`, no rules).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryScanning {
    pub scan_type: ScanType,
    pub rules: Vec<ScanRule>,
}

/// Whether a scanning filter matches a repository name.
pub fn filter_matches(filter: &str, name: &str) -> bool {
    if filter.contains('*') {
        wildcard_match(filter, name)
    } else {
        name.contains(filter)
    }
}

impl RegistryScanning {
    /// How often a repository is scanned, and the filters that decided it: the first rule
    /// (in `rules` order) with a matching filter, else `MANUAL` (or `SCAN_ON_PUSH` for a
    /// repository whose own `scanOnPush` is set, under basic scanning).
    pub fn frequency(&self, repo: &Repository) -> (ScanFrequency, Vec<String>) {
        for rule in &self.rules {
            let matched: Vec<String> = rule
                .filters
                .iter()
                .filter(|f| filter_matches(f, repo.name.as_str()))
                .cloned()
                .collect();
            if !matched.is_empty() {
                return (rule.frequency, matched);
            }
        }
        let own = repo
            .scanning
            .get("scanOnPush")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        if own && self.scan_type == ScanType::Basic {
            (ScanFrequency::ScanOnPush, Vec::new())
        } else {
            (ScanFrequency::Manual, Vec::new())
        }
    }
}

fn load(r: &impl Read) -> Result<RegistryScanning, Error> {
    Ok(r.get(Kind::RegistrySetting, SCANNING)?
        .map(decode::<RegistryScanning>)
        .transpose()?
        .map(|(_, v)| v)
        .unwrap_or_default())
}

/// Whether a push to `repo` is scanned on push (inside the push's transaction).
pub(crate) fn scans_on_push(r: &impl Read, repo: &Repository) -> Result<bool, Error> {
    let (f, _) = load(r)?.frequency(repo);
    Ok(matches!(
        f,
        ScanFrequency::ScanOnPush | ScanFrequency::ContinuousScan
    ))
}

impl Registry {
    /// The registry's scanning configuration.
    pub fn scanning_get(&self) -> Result<RegistryScanning, Error> {
        self.store.read(|r| load(r))
    }

    /// Replaces the registry's scanning configuration.
    pub async fn scanning_put(&self, config: RegistryScanning) -> Result<(), Error> {
        self.store
            .write(move |tx| {
                let doc = encode(&config)?;
                match tx.get(Kind::RegistrySetting, SCANNING)? {
                    Some(r) => tx.update(Kind::RegistrySetting, SCANNING, r.generation, None, &doc),
                    None => tx.insert(Kind::RegistrySetting, SCANNING, None, &doc),
                }
                .map(|_| ())
            })
            .await
    }

    /// `StartImageScan`: records a scan of the image at `now`, at most one per image per 24
    /// hours (`LimitExceededException`, in the words moto mirrors from ECR).
    pub async fn image_scan_start(
        &self,
        repo: &str,
        reference: &Reference,
        now: Timestamp,
    ) -> Result<Image, Error> {
        let image = self.image_resolve(repo, reference)?;
        let n = self.require_repo(repo)?;
        let ik = key(&n, image.digest.as_str());
        self.store
            .write(move |tx| {
                let rec = tx.get(Kind::Image, &ik)?.ok_or_else(|| {
                    Error::ImageNotFound(format!("the image {} was deleted", image.digest))
                })?;
                let (g, mut img) = decode::<Image>(rec)?;
                if img.scanned_at.is_some_and(|t| now.0 - t.0 < SCAN_QUOTA_MS) {
                    return Err(Error::LimitExceeded(
                        "The scan quota per image has been exceeded. Wait and try again.".into(),
                    ));
                }
                img.scanned_at = Some(now);
                tx.update(Kind::Image, &ik, g, None, &encode(&img)?)?;
                Ok(img)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanning_filters_match_substrings_or_whole_patterns() {
        assert!(filter_matches("prod", "team/prod-web"));
        assert!(!filter_matches("prod", "team/dev"));
        assert!(filter_matches("*prod", "repo-prod"));
        assert!(!filter_matches("*prod", "prod-repo"));
        assert!(filter_matches("*", "anything"));
    }
}
