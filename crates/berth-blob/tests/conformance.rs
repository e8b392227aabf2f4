//! The blob stores' conformance suite: the same checks against the filesystem store and two
//! S3 servers — SeaweedFS and moto — which scripts/test.sh starts on loopback and names in
//! `BERTH_TEST_S3_SEAWEEDFS` and `BERTH_TEST_S3_MOTO` (endpoint URLs; bucket `berth-test`).
//! Each test works under a prefix of its own.

use berth_blob::{
    BlobError, BlobStore, Blobs, ByteStream, FsBlobs, S3Blobs, S3Settings, Staged, digest_of,
    new_upload_id,
};
use bytes::Bytes;
use futures_util::StreamExt;
use std::sync::Arc;

/// A store and what keeps it alive (its directory).
struct Backend {
    open: Box<dyn Fn() -> Blobs>,
    _dir: Option<tempfile::TempDir>,
}

fn fs() -> Backend {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    Backend {
        open: Box::new(move || Arc::new(FsBlobs::open(&root).unwrap())),
        _dir: Some(dir),
    }
}

fn s3(var: &str) -> Backend {
    let endpoint = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: scripts/test.sh starts the S3 server this test needs")
    });
    let url = format!("s3://berth-test/conformance-{}", new_upload_id());
    let settings = S3Settings {
        endpoint: Some(endpoint),
        access_key_id: Some("berth-test".into()),
        secret_access_key: Some("berth-test-secret".into()),
        ..Default::default()
    };
    Backend {
        open: Box::new(move || Arc::new(S3Blobs::open(&url, &settings).unwrap())),
        _dir: None,
    }
}

fn body(chunks: &[&[u8]]) -> ByteStream {
    let v: Vec<Result<Bytes, BlobError>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(v).boxed()
}

async fn read(b: &dyn BlobStore, object: &str, from: u64) -> Option<Vec<u8>> {
    let mut s = b.get(object, from).await.unwrap()?;
    let mut out = Vec::new();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    Some(out)
}

/// `n` bytes that differ from offset to offset.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

const PART: usize = berth_blob::PART_SIZE;

async fn chunked_upload_commits_only_the_right_digest(b: Backend) {
    let s = (b.open)();
    let id = new_upload_id();
    let st = s.begin(&id).await.unwrap();
    // Small chunks, then enough for two parts and a tail, over three requests.
    let content = pattern(2 * PART + 1234, 7);
    let st = s
        .append(&id, &st, body(&[&content[..10], &content[10..100]]))
        .await
        .unwrap();
    assert_eq!(st.size, 100);
    let st = s
        .append(&id, &st, body(&[&content[100..PART + 5]]))
        .await
        .unwrap();
    let st = s
        .append(&id, &st, body(&[&content[PART + 5..]]))
        .await
        .unwrap();
    assert_eq!(st.size, content.len() as u64);
    let object = s.finish(&id, &st, &digest_of(&content)).await.unwrap();
    assert_eq!(read(&*s, &object, 0).await.unwrap(), content);
    assert_eq!(
        read(&*s, &object, PART as u64 + 17).await.unwrap(),
        content[PART + 17..],
        "reads from an offset"
    );

    // A wrong digest: nothing becomes an object, the upload is gone.
    let id = new_upload_id();
    let st = s.begin(&id).await.unwrap();
    let st = s.append(&id, &st, body(&[b"other content"])).await.unwrap();
    let err = s.finish(&id, &st, &digest_of(b"not it")).await.unwrap_err();
    assert!(
        matches!(&err, BlobError::DigestMismatch { actual } if *actual == digest_of(b"other content")),
        "{err:?}"
    );
    let objects: Vec<_> = s.list().await.unwrap();
    assert_eq!(
        objects.iter().filter(|l| l.staging_for.is_none()).count(),
        1,
        "only the first upload is an object: {objects:?}"
    );
    assert!(read(&*s, "blobs/nothing-here", 0).await.is_none());
}

async fn an_upload_continues_and_finishes_on_another_server(b: Backend) {
    let (a, other) = ((b.open)(), (b.open)());
    let content = pattern(PART + 4321, 3);
    let id = new_upload_id();
    let st = a.begin(&id).await.unwrap();
    let st = a.append(&id, &st, body(&[&content[..1000]])).await.unwrap();
    // The second server knows only the staged state (no running hash): it re-reads to check.
    let st = other
        .append(&id, &st, body(&[&content[1000..]]))
        .await
        .unwrap();
    let wrong = other.finish(&id, &st, &digest_of(b"x")).await.unwrap_err();
    assert!(
        matches!(wrong, BlobError::DigestMismatch { .. }),
        "{wrong:?}"
    );

    let id = new_upload_id();
    let st = a.begin(&id).await.unwrap();
    let st = a
        .append(&id, &st, body(&[&content[..PART + 1]]))
        .await
        .unwrap();
    let st = other
        .append(&id, &st, body(&[&content[PART + 1..]]))
        .await
        .unwrap();
    // And the first finishes it: its hash no longer covers the staged bytes.
    let object = a.finish(&id, &st, &digest_of(&content)).await.unwrap();
    assert_eq!(read(&*other, &object, 0).await.unwrap(), content);
}

async fn bytes_past_the_staged_state_are_ignored(b: Backend) {
    let s = (b.open)();
    let id = new_upload_id();
    let st0 = s.begin(&id).await.unwrap();
    let st1 = s.append(&id, &st0, body(&[b"hello "])).await.unwrap();
    // A request whose new state was never stored (the server crashed): it is replayed.
    let _lost = s.append(&id, &st1, body(&[b"wrong bytes"])).await.unwrap();
    let st2 = s.append(&id, &st1, body(&[b"world"])).await.unwrap();
    assert_eq!(st2.size, 11);
    assert_eq!(&s.read_staged(&id, &st2).await.unwrap()[..], b"hello world");
    let object = s
        .finish(&id, &st2, &digest_of(b"hello world"))
        .await
        .unwrap();
    assert_eq!(read(&*s, &object, 0).await.unwrap(), b"hello world");
}

async fn each_upload_gets_its_own_object_and_deletes_are_idempotent(b: Backend) {
    let s = (b.open)();
    let mut objects = Vec::new();
    for _ in 0..2 {
        let id = new_upload_id();
        let st = s.begin(&id).await.unwrap();
        let st = s.append(&id, &st, body(&[b"same content"])).await.unwrap();
        objects.push(
            s.finish(&id, &st, &digest_of(b"same content"))
                .await
                .unwrap(),
        );
    }
    assert_ne!(objects[0], objects[1], "two commits never share an object");
    s.delete(&objects[0]).await.unwrap();
    s.delete(&objects[0]).await.unwrap();
    assert!(read(&*s, &objects[0], 0).await.is_none());
    assert_eq!(read(&*s, &objects[1], 0).await.unwrap(), b"same content");
    let listed: Vec<String> = s
        .list()
        .await
        .unwrap()
        .into_iter()
        .filter(|l| l.staging_for.is_none())
        .map(|l| l.object)
        .collect();
    assert_eq!(listed, vec![objects[1].clone()]);
}

async fn aborted_uploads_leave_nothing(b: Backend) {
    let s = (b.open)();
    let id = new_upload_id();
    let st = s.begin(&id).await.unwrap();
    let content = pattern(PART + 10, 9);
    let st: Staged = s.append(&id, &st, body(&[&content])).await.unwrap();
    assert!(
        s.list()
            .await
            .unwrap()
            .iter()
            .all(|l| l.staging_for.as_deref() == Some(&id[..])),
        "only staging objects while the upload runs"
    );
    s.abort(&id, &st).await.unwrap();
    assert!(s.list().await.unwrap().is_empty());
    assert!(
        s.read_staged(
            &id,
            &Staged {
                size: 3,
                tail: 3,
                ..Default::default()
            }
        )
        .await
        .is_err()
    );
    assert!(matches!(
        s.begin("../../etc/passwd").await,
        Err(BlobError::UploadNotFound)
    ));
}

macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            #[tokio::test]
            async fn chunked_upload_commits_only_the_right_digest() {
                super::chunked_upload_commits_only_the_right_digest($make).await
            }
            #[tokio::test]
            async fn an_upload_continues_and_finishes_on_another_server() {
                super::an_upload_continues_and_finishes_on_another_server($make).await
            }
            #[tokio::test]
            async fn bytes_past_the_staged_state_are_ignored() {
                super::bytes_past_the_staged_state_are_ignored($make).await
            }
            #[tokio::test]
            async fn each_upload_gets_its_own_object_and_deletes_are_idempotent() {
                super::each_upload_gets_its_own_object_and_deletes_are_idempotent($make).await
            }
            #[tokio::test]
            async fn aborted_uploads_leave_nothing() {
                super::aborted_uploads_leave_nothing($make).await
            }
        }
    };
}

conformance!(filesystem, fs());
conformance!(seaweedfs, s3("BERTH_TEST_S3_SEAWEEDFS"));
conformance!(moto, s3("BERTH_TEST_S3_MOTO"));
