//! The data directory: an exclusive lock (one process per directory), the root credentials
//! (mode 0600), and the paths of everything else.

use berth_api::auth::KeyPair;
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("cannot use data directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "data directory {0} is in use by another Berth process (its lock file is held); stop that process or pick another --data-dir"
    )]
    Locked(PathBuf),
    #[error(
        "no root credentials in {0}: start Berth on this data directory first (berth up --data-dir …)"
    )]
    NoCredentials(PathBuf),
    #[error("invalid root credentials: {0}")]
    BadCredentials(String),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An opened, locked data directory. The lock is released when this is dropped (or the
/// process dies).
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Creates the directory if needed (mode 0700) and takes its lock.
    pub fn open(path: &Path) -> Result<DataDir, DataDirError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io(path))?;
        let lock_path = path.join("berth.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(DataDirError::Locked(path.into()));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(&lock_path)(e)),
        }
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn database(&self) -> PathBuf {
        self.path.join("berth.db")
    }

    pub fn credentials_path(&self) -> PathBuf {
        credentials_path(&self.path)
    }

    /// Root of the blob store (layers, configs, manifests, uploads in progress).
    pub fn blobs(&self) -> PathBuf {
        self.path.join("blobs")
    }

    /// The root key pair: read from the directory, or on first start taken from
    /// `BERTH_ROOT_ACCESS_KEY_ID` / `BERTH_ROOT_SECRET_ACCESS_KEY` or generated, then stored
    /// (mode 0600, fsynced). The flag says whether they were created now.
    pub fn root_credentials(&self) -> Result<(KeyPair, bool), DataDirError> {
        let path = self.credentials_path();
        if path.exists() {
            return Ok((read_credentials(&self.path)?, false));
        }
        let env = (
            std::env::var("BERTH_ROOT_ACCESS_KEY_ID")
                .ok()
                .filter(|s| !s.is_empty()),
            std::env::var("BERTH_ROOT_SECRET_ACCESS_KEY")
                .ok()
                .filter(|s| !s.is_empty()),
        );
        let pair = match env {
            (Some(id), Some(secret)) => {
                check_pair(&id, &secret)?;
                KeyPair {
                    access_key_id: id,
                    secret_access_key: secret,
                }
            }
            (None, None) => generate(),
            _ => {
                return Err(DataDirError::BadCredentials(
                    "set both BERTH_ROOT_ACCESS_KEY_ID and BERTH_ROOT_SECRET_ACCESS_KEY, or neither".into(),
                ));
            }
        };
        self.write_credentials(&pair)?;
        Ok((pair, true))
    }
}

/// Replaces the file at `path` with `bytes` (file mode `mode`): written to a temporary name
/// beside it, fsynced, renamed over it, and the directory fsynced.
pub fn replace_file(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&tmp)?;
    f.write_all(bytes).and_then(|_| f.sync_all())?;
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => File::open(dir).and_then(|d| d.sync_all()),
        None => Ok(()),
    }
}

impl DataDir {
    /// Replaces the credentials file with `pair` (mode 0600).
    pub fn write_credentials(&self, pair: &KeyPair) -> Result<(), DataDirError> {
        let path = self.credentials_path();
        replace_file(&path, encode_credentials(pair).as_bytes(), 0o600).map_err(io(&path))
    }

    /// This server's id among those sharing a store (its leases' holder): made once per
    /// data directory, so a restarted server is the same server.
    pub fn server_id(&self) -> Result<String, DataDirError> {
        let path = self.path.join("server-id");
        match std::fs::read_to_string(&path) {
            Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&path)(e)),
        }
        let mut bytes = [0u8; 8];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
        let id = hex::encode(bytes);
        replace_file(&path, format!("{id}\n").as_bytes(), 0o644).map_err(io(&path))?;
        Ok(id)
    }
}

/// Where a running server records the URL it serves (`berth credentials` reads it).
pub fn endpoint_path(dir: &Path) -> PathBuf {
    dir.join("endpoint")
}

impl DataDir {
    /// Records the URL the server really listens on (a port chosen by the system included),
    /// replacing the file atomically.
    pub fn record_endpoint(&self, url: &str) -> Result<(), DataDirError> {
        let path = endpoint_path(&self.path);
        replace_file(&path, format!("{url}\n").as_bytes(), 0o644).map_err(io(&path))
    }
}

/// The URL the last server on this data directory recorded, if any.
pub fn recorded_endpoint(dir: &Path) -> Option<String> {
    let url = std::fs::read_to_string(endpoint_path(dir)).ok()?;
    let url = url.trim();
    (!url.is_empty()).then(|| url.to_string())
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct StoredCredentials {
    access_key_id: String,
    secret_access_key: String,
}

pub fn credentials_path(dir: &Path) -> PathBuf {
    dir.join("credentials.json")
}

/// Root credentials as the credentials file and the shared store keep them.
pub fn encode_credentials(pair: &KeyPair) -> String {
    serde_json::to_string_pretty(&StoredCredentials {
        access_key_id: pair.access_key_id.clone(),
        secret_access_key: pair.secret_access_key.clone(),
    })
    .expect("serializable")
}

/// Root credentials from `text` (kept in `place`, for errors).
pub fn decode_credentials(text: &[u8], place: &str) -> Result<KeyPair, DataDirError> {
    let c: StoredCredentials = serde_json::from_slice(text)
        .map_err(|e| DataDirError::BadCredentials(format!("{place}: {e}")))?;
    Ok(KeyPair {
        access_key_id: c.access_key_id,
        secret_access_key: c.secret_access_key,
    })
}

/// Reads the stored root credentials of a data directory (no lock needed).
pub fn read_credentials(dir: &Path) -> Result<KeyPair, DataDirError> {
    let path = credentials_path(dir);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(DataDirError::NoCredentials(dir.into()));
        }
        Err(e) => return Err(io(&path)(e)),
    };
    decode_credentials(&text, &path.display().to_string())
}

fn check_pair(id: &str, secret: &str) -> Result<(), DataDirError> {
    let ok_id = (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
    let ok_secret = secret.len() >= 16 && secret.bytes().all(|b| b.is_ascii_graphic());
    if ok_id && ok_secret {
        Ok(())
    } else {
        Err(DataDirError::BadCredentials(
            "an access key id is 16-128 letters and digits, a secret at least 16 printable characters".into(),
        ))
    }
}

/// An AWS-shaped key pair: `AKIA` + 16 upper-case base-32 characters, and a 40-character secret.
fn generate() -> KeyPair {
    const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const SECRET_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut rng = rand::rng();
    let mut pick = |set: &[u8], n: usize| -> String {
        (0..n)
            .map(|_| set[rng.random_range(0..set.len())] as char)
            .collect()
    };
    KeyPair {
        access_key_id: format!("AKIA{}", pick(ID_CHARS, 16)),
        secret_access_key: pick(SECRET_CHARS, 40),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn data_dir_is_locked_and_credentials_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let d = DataDir::open(dir.path()).unwrap();
        assert!(matches!(
            DataDir::open(dir.path()),
            Err(DataDirError::Locked(_))
        ));
        let (pair, created) = d.root_credentials().unwrap();
        assert!(created || std::env::var("BERTH_ROOT_ACCESS_KEY_ID").is_ok());
        let mode = std::fs::metadata(d.credentials_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = d.root_credentials().unwrap();
        assert!(!created);
        assert_eq!(again.access_key_id, pair.access_key_id);
        drop(d);
        DataDir::open(dir.path()).unwrap();
    }

    #[test]
    fn generated_keys_are_aws_shaped() {
        let k = generate();
        assert_eq!(k.access_key_id.len(), 20);
        assert!(k.access_key_id.starts_with("AKIA"));
        assert_eq!(k.secret_access_key.len(), 40);
        assert_ne!(generate().secret_access_key, k.secret_access_key);
    }
}
