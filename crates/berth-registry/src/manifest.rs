//! Manifest parsing: what a pushed manifest is and what it references. The bytes themselves
//! are never re-serialized.

use berth_types::Error;
use berth_types::oci::Digest;
use serde_json::Value;
use std::collections::BTreeMap;

/// The manifest media types the registry accepts.
pub struct MediaType;

impl MediaType {
    pub const DOCKER_V2: &'static str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &'static str =
        "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const OCI_MANIFEST: &'static str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &'static str = "application/vnd.oci.image.index.v1+json";

    pub const ALL: [&'static str; 4] = [
        Self::DOCKER_V2,
        Self::DOCKER_LIST,
        Self::OCI_MANIFEST,
        Self::OCI_INDEX,
    ];

    pub fn is_index(t: &str) -> bool {
        t == Self::DOCKER_LIST || t == Self::OCI_INDEX
    }
}

/// What a manifest says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedManifest {
    pub media_type: String,
    /// Config and layers (image manifests).
    pub blobs: Vec<Digest>,
    /// Layers only (their sizes make the image size).
    pub layers: Vec<Digest>,
    /// Child manifests (indexes).
    pub manifests: Vec<Digest>,
    pub subject: Option<Digest>,
    pub artifact_type: Option<String>,
    pub config_media_type: Option<String>,
    /// The manifest's own `annotations` (string values only, as the spec defines them).
    pub annotations: BTreeMap<String, String>,
}

fn invalid(m: impl Into<String>) -> Error {
    Error::ManifestInvalid(m.into())
}

fn descriptor_digest(d: &Value, what: &str) -> Result<Digest, Error> {
    let s = d
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("{what} descriptor has no digest")))?;
    Digest::parse(s)
        .ok_or_else(|| invalid(format!("{what} descriptor has an invalid digest '{s}'")))
}

/// Parses `bytes` as a manifest of `content_type` (or of its own `mediaType` field).
pub fn parse(bytes: &[u8], content_type: Option<&str>) -> Result<ParsedManifest, Error> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| invalid(format!("manifest is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(invalid("manifest is not a JSON object"));
    }
    let declared = v.get("mediaType").and_then(Value::as_str);
    let header = content_type
        .map(|c| c.split(';').next().unwrap_or("").trim())
        .filter(|c| !c.is_empty());
    let media_type = match (header, declared) {
        (Some(h), Some(d)) if h != d => {
            return Err(invalid(format!(
                "Content-Type {h} does not match the manifest's mediaType {d}"
            )));
        }
        (Some(h), _) => h.to_string(),
        (None, Some(d)) => d.to_string(),
        (None, None) if v.get("manifests").is_some() => MediaType::OCI_INDEX.to_string(),
        (None, None) => MediaType::OCI_MANIFEST.to_string(),
    };
    if !MediaType::ALL.contains(&media_type.as_str()) {
        return Err(invalid(format!(
            "unsupported manifest media type '{media_type}'"
        )));
    }
    if v.get("schemaVersion").and_then(Value::as_i64) != Some(2) {
        return Err(invalid("schemaVersion must be 2"));
    }
    let subject = match v.get("subject") {
        Some(s) => Some(descriptor_digest(s, "subject")?),
        None => None,
    };
    let artifact_type = v
        .get("artifactType")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut parsed = ParsedManifest {
        media_type: media_type.clone(),
        blobs: Vec::new(),
        layers: Vec::new(),
        manifests: Vec::new(),
        subject,
        artifact_type,
        config_media_type: None,
        annotations: v
            .get("annotations")
            .and_then(Value::as_object)
            .map(|a| {
                a.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    };
    if MediaType::is_index(&media_type) {
        let list = v
            .get("manifests")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("an index needs a manifests list"))?;
        for m in list {
            parsed.manifests.push(descriptor_digest(m, "manifest")?);
        }
    } else {
        let config = v
            .get("config")
            .ok_or_else(|| invalid("an image manifest needs a config"))?;
        parsed.blobs.push(descriptor_digest(config, "config")?);
        parsed.config_media_type = config
            .get("mediaType")
            .and_then(Value::as_str)
            .map(str::to_string);
        let layers = v
            .get("layers")
            .and_then(Value::as_array)
            .ok_or_else(|| invalid("an image manifest needs a layers list"))?;
        for l in layers {
            let d = descriptor_digest(l, "layer")?;
            parsed.layers.push(d.clone());
            parsed.blobs.push(d);
        }
    }
    Ok(parsed)
}

/// Docker's media types of an image's parts and OCI's for the same things.
const EQUIVALENT: [(&str, &str); 4] = [
    (MediaType::DOCKER_V2, MediaType::OCI_MANIFEST),
    (
        "application/vnd.docker.container.image.v1+json",
        "application/vnd.oci.image.config.v1+json",
    ),
    (
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        "application/vnd.oci.image.layer.v1.tar+gzip",
    ),
    (
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    ),
];

/// The media type `t` is called in the other format, if it has an equivalent.
fn counterpart(t: &str) -> Option<&'static str> {
    EQUIVALENT.iter().find_map(|&(docker, oci)| {
        if t == docker {
            Some(oci)
        } else if t == oci {
            Some(docker)
        } else {
            None
        }
    })
}

/// A Docker v2 image manifest as an OCI image manifest, or the other way round (`to` is the
/// media type wanted): the same config and layers, each descriptor's media type renamed
/// (BatchGetImage's `acceptedMediaTypes`, by tag). `None` when it cannot be said in the other
/// format: an index, a media type without an equivalent, OCI-only members (`subject`,
/// `artifactType`) in a manifest that would become Docker's.
pub fn convert(bytes: &[u8], to: &str) -> Option<bytes::Bytes> {
    let mut v: Value = serde_json::from_slice(bytes).ok()?;
    let from = v.get("mediaType").and_then(Value::as_str)?.to_string();
    if counterpart(&from) != Some(to) {
        return None;
    }
    if to == MediaType::DOCKER_V2 && (v.get("subject").is_some() || v.get("artifactType").is_some())
    {
        return None;
    }
    let rename = |d: &mut Value| -> Option<()> {
        let t = d.get("mediaType").and_then(Value::as_str)?;
        let other = counterpart(t)?;
        d["mediaType"] = Value::String(other.to_string());
        Some(())
    };
    rename(v.get_mut("config")?)?;
    for l in v.get_mut("layers")?.as_array_mut()? {
        rename(l)?;
    }
    v["mediaType"] = Value::String(to.to_string());
    serde_json::to_vec_pretty(&v).ok().map(bytes::Bytes::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_and_oci_manifests_convert_both_ways() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":1}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":2}}]}}"#,
            MediaType::DOCKER_V2,
            d('a'),
            d('b')
        );
        let oci = convert(m.as_bytes(), MediaType::OCI_MANIFEST).unwrap();
        let p = parse(&oci, Some(MediaType::OCI_MANIFEST)).unwrap();
        assert_eq!(
            p.config_media_type.as_deref(),
            Some("application/vnd.oci.image.config.v1+json")
        );
        assert_eq!(p.blobs.len(), 2);
        let back = convert(&oci, MediaType::DOCKER_V2).unwrap();
        let v: Value = serde_json::from_slice(&back).unwrap();
        assert_eq!(
            v["layers"][0]["mediaType"],
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        );
        assert!(convert(m.as_bytes(), MediaType::DOCKER_V2).is_none());
        let zstd = m.replace(
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
        );
        assert!(convert(zstd.as_bytes(), MediaType::OCI_MANIFEST).is_none());
    }

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn manifests_and_indexes_parse() {
        let m = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":1}},"layers":[{{"digest":"{}","size":2}}]}}"#,
            MediaType::DOCKER_V2,
            d('a'),
            d('b')
        );
        let p = parse(m.as_bytes(), Some(MediaType::DOCKER_V2)).unwrap();
        assert_eq!(p.blobs.len(), 2);
        assert_eq!(p.layers, vec![Digest::parse(&d('b')).unwrap()]);
        let i = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"digest":"{}","size":3}}]}}"#,
            d('c')
        );
        let p = parse(i.as_bytes(), Some(MediaType::OCI_INDEX)).unwrap();
        assert_eq!(p.manifests.len(), 1);
        assert!(parse(b"{}", Some("application/x-unknown")).is_err());
        assert!(parse(b"not json", None).is_err());
        assert!(
            parse(m.as_bytes(), Some(MediaType::OCI_INDEX)).is_err(),
            "header and body disagree"
        );
        assert!(parse(br#"{"schemaVersion":1}"#, Some(MediaType::OCI_MANIFEST)).is_err());
    }
}
