//! The filesystem blob store. Layout under its root:
//! * `blobs/sha256/<first two hex>/<hex>.<upload id>` — finished uploads, immutable (data
//!   directories from before blob records name theirs `<hex>`, without the upload id);
//! * `uploads/<id>` — uploads in progress, appended to request after request.
//!
//! Every append and every finish is fsynced (the file, and the directory after a rename)
//! before it returns, so what a caller was told is staged or committed survives a crash.

use crate::{
    BlobError, BlobStore, ByteStream, Hashes, Listed, Staged, check_digest, hash_stream,
    valid_upload_id,
};
use berth_types::oci::Digest;
use bytes::Bytes;
use futures_util::StreamExt;
use sha2::Digest as _;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Blobs in a directory.
pub struct FsBlobs {
    root: PathBuf,
    hashes: Hashes,
}

impl FsBlobs {
    pub fn open(root: &Path) -> Result<FsBlobs, BlobError> {
        for d in ["blobs/sha256", "uploads"] {
            let p = root.join(d);
            std::fs::create_dir_all(&p).map_err(io(&p))?;
        }
        Ok(FsBlobs {
            root: root.to_path_buf(),
            hashes: Hashes::default(),
        })
    }

    fn upload_path(&self, id: &str) -> Result<PathBuf, BlobError> {
        if !valid_upload_id(id) {
            return Err(BlobError::UploadNotFound);
        }
        Ok(self.root.join("uploads").join(id))
    }

    /// The file of an object name (`sha256/<xx>/<name>`); `None` for names that are not.
    fn object_path(&self, object: &str) -> Option<PathBuf> {
        let mut parts = object.split('/');
        let (algorithm, prefix, name) = (parts.next()?, parts.next()?, parts.next()?);
        let plain = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'.')
        };
        (algorithm == "sha256"
            && parts.next().is_none()
            && prefix.len() == 2
            && plain(prefix)
            && plain(name)
            && !name.starts_with('.'))
        .then(|| self.root.join("blobs").join(object))
    }

    /// The upload's file, opened for writing, holding exactly the `size` staged bytes (bytes
    /// written by a request whose state was never stored are cut off).
    async fn staged_file(
        &self,
        id: &str,
        size: u64,
    ) -> Result<(tokio::fs::File, PathBuf), BlobError> {
        let p = self.upload_path(id)?;
        let file = match tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p)
            .await
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::UploadNotFound);
            }
            Err(e) => return Err(io(&p)(e)),
        };
        let len = file.metadata().await.map_err(io(&p))?.len();
        if len < size {
            return Err(io(&p)(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!("the upload file has {len} bytes, {size} were staged"),
            )));
        }
        if len > size {
            file.set_len(size).await.map_err(io(&p))?;
        }
        Ok((file, p))
    }
}

/// Streams a file from byte `from`.
async fn file_stream(path: &Path, from: u64) -> Result<Option<ByteStream>, BlobError> {
    let mut f = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    if from > 0 {
        f.seek(std::io::SeekFrom::Start(from))
            .await
            .map_err(io(path))?;
    }
    let p = path.to_path_buf();
    let s = tokio_util::io::ReaderStream::with_capacity(f, 256 * 1024)
        .map(move |r| r.map_err(|e| io(&p)(e)));
    Ok(Some(s.boxed()))
}

#[async_trait::async_trait]
impl BlobStore for FsBlobs {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn begin(&self, id: &str) -> Result<Staged, BlobError> {
        let p = self.upload_path(id)?;
        tokio::fs::File::create(&p).await.map_err(io(&p))?;
        self.hashes.start(id);
        Ok(Staged::default())
    }

    async fn append(
        &self,
        id: &str,
        staged: &Staged,
        mut body: ByteStream,
    ) -> Result<Staged, BlobError> {
        let (mut file, p) = self.staged_file(id, staged.size).await?;
        file.seek(std::io::SeekFrom::End(0)).await.map_err(io(&p))?;
        let mut hash = self.hashes.take(id, staged.size);
        let mut size = staged.size;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            file.write_all(&chunk).await.map_err(io(&p))?;
            if let Some(h) = &mut hash {
                h.update(&chunk);
            }
            size += chunk.len() as u64;
        }
        file.sync_data().await.map_err(io(&p))?;
        if let Some(h) = hash {
            self.hashes.put(id, h, size);
        }
        Ok(Staged {
            size,
            ..Staged::default()
        })
    }

    async fn read_staged(&self, id: &str, staged: &Staged) -> Result<Bytes, BlobError> {
        let (file, p) = self.staged_file(id, staged.size).await?;
        let mut content = Vec::with_capacity(staged.size as usize);
        let mut file = tokio::io::BufReader::new(file);
        file.read_to_end(&mut content).await.map_err(io(&p))?;
        Ok(Bytes::from(content))
    }

    async fn finish(
        &self,
        id: &str,
        staged: &Staged,
        expected: &Digest,
    ) -> Result<String, BlobError> {
        let (file, p) = self.staged_file(id, staged.size).await?;
        let hash = match self.hashes.take(id, staged.size) {
            Some(h) => h,
            None => {
                hash_stream(file_stream(&p, 0).await?.ok_or(BlobError::UploadNotFound)?).await?
            }
        };
        if let Err(e) = check_digest(hash, expected) {
            let _ = tokio::fs::remove_file(&p).await;
            return Err(e);
        }
        let hex = expected.hex();
        let object = format!("sha256/{}/{hex}.{id}", &hex[..2]);
        let target = self.root.join("blobs").join(&object);
        let dir = target
            .parent()
            .expect("blob path has a parent")
            .to_path_buf();
        tokio::fs::create_dir_all(&dir).await.map_err(io(&dir))?;
        file.sync_all().await.map_err(io(&p))?;
        tokio::fs::rename(&p, &target).await.map_err(io(&target))?;
        let d = tokio::fs::File::open(&dir).await.map_err(io(&dir))?;
        d.sync_all().await.map_err(io(&dir))?;
        Ok(object)
    }

    async fn abort(&self, id: &str, _staged: &Staged) -> Result<(), BlobError> {
        let p = self.upload_path(id)?;
        self.hashes.forget(id);
        match tokio::fs::remove_file(&p).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&p)(e)),
        }
    }

    async fn get(&self, object: &str, from: u64) -> Result<Option<ByteStream>, BlobError> {
        match self.object_path(object) {
            Some(p) => file_stream(&p, from).await,
            None => Ok(None),
        }
    }

    async fn delete(&self, object: &str) -> Result<(), BlobError> {
        let p = match object.strip_prefix("uploads/") {
            Some(id) => self.upload_path(id)?,
            None => match self.object_path(object) {
                Some(p) => p,
                None => return Ok(()),
            },
        };
        match tokio::fs::remove_file(&p).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&p)(e)),
        }
    }

    async fn list(&self) -> Result<Vec<Listed>, BlobError> {
        let mut out = Vec::new();
        let uploads = self.root.join("uploads");
        for (name, size, modified) in read_dir(&uploads).await? {
            if valid_upload_id(&name) {
                out.push(Listed {
                    object: format!("uploads/{name}"),
                    staging_for: Some(name),
                    size,
                    modified,
                });
            }
        }
        let root = self.root.join("blobs/sha256");
        for (prefix, _, _) in read_dir(&root).await? {
            for (name, size, modified) in read_dir(&root.join(&prefix)).await? {
                let object = format!("sha256/{prefix}/{name}");
                if self.object_path(&object).is_some() {
                    out.push(Listed {
                        object,
                        staging_for: None,
                        size,
                        modified,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// A directory's entries with their sizes and modification times (none if it does not exist).
async fn read_dir(dir: &Path) -> Result<Vec<(String, u64, std::time::SystemTime)>, BlobError> {
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(dir)(e)),
    };
    let mut out = Vec::new();
    while let Some(e) = entries.next_entry().await.map_err(io(dir))? {
        let Ok(m) = e.metadata().await else { continue };
        let modified = m.modified().map_err(io(&e.path()))?;
        out.push((
            e.file_name().to_string_lossy().into_owned(),
            m.len(),
            modified,
        ));
    }
    Ok(out)
}
