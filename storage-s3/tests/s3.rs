//! The S3 store against a real S3-protocol server (`s3s-fs` on loopback, checking SigV4):
//! the kit's blob cases, a blob large enough for a multipart upload, a tampered object read
//! as an error, wrong credentials as an authentication error, and a put cut off midway that
//! leaves nothing readable.

use std::sync::Arc;
use std::time::Duration;
use storage_core::blob::{BlobLimits, BlobReader, BlobStore, PutOptions};
use storage_core::{ErrorKind, Result};
use storage_s3::{PART_BYTES, S3BlobStore, S3Config};
use storage_servers::S3Server;
use tokio::io::AsyncReadExt;

fn server(test: &str) -> Option<S3Server> {
    match S3Server::start() {
        Ok(s) => Some(s),
        Err(e) => {
            storage_servers::skip_or_fail(test, &e.to_string());
            None
        }
    }
}

fn config(s: &S3Server, prefix: &str) -> S3Config {
    let mut c = S3Config::new(&s.endpoint(), "test", s.access_key(), s.secret_key());
    c.prefix = prefix.to_string();
    c
}

async fn read_all(mut r: BlobReader) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out)
}

/// Bytes that do not repeat with the part size.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blob_store_passes_the_blob_cases() {
    let Some(s) = server("s3_blob_store_passes_the_blob_cases") else {
        return;
    };
    let s = Arc::new(s);
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let report = storage_testkit::blob::run_blob_suite(
        Arc::new(move |limits: BlobLimits| {
            // Each case in a folder of its own.
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut c = config(&s, &format!("case{n}"));
            c.limits = limits;
            async move { Ok(Arc::new(S3BlobStore::open(c).await?) as Arc<dyn BlobStore>) }
        }),
        None,
    )
    .await;
    println!("{report}");
    assert_eq!(
        report.cases.len(),
        storage_testkit::blob::blob_case_names().len()
    );
    report.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_past_one_part_streams_as_a_multipart_upload() -> Result<()> {
    let Some(s) = server("a_blob_past_one_part_streams_as_a_multipart_upload") else {
        return Ok(());
    };
    let store = S3BlobStore::open(config(&s, "large")).await?;
    let data = pattern(2 * PART_BYTES + 12_345);
    let meta = store
        .put(
            Box::pin(std::io::Cursor::new(data.clone())),
            &PutOptions::default(),
        )
        .await?;
    assert_eq!(meta.size, data.len() as u64);
    let (_, r) = store.get(&meta.id).await?.expect("stored");
    assert!(read_all(r).await.unwrap() == data, "the bytes read back");
    // A range across the first part boundary.
    let from = PART_BYTES as u64 - 10;
    let (_, r) = store
        .get_range(&meta.id, from, from + 20)
        .await?
        .expect("stored");
    assert_eq!(
        read_all(r).await.unwrap(),
        data[from as usize..from as usize + 20]
    );
    // The upload object is gone: only the data and metadata objects remain.
    let uploads = std::fs::read_dir(s.bucket_dir("test").join("large/blobs/uploads"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(uploads, 0, "uploads left behind");
    assert_eq!(store.stats().await?.bytes, data.len() as u64);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_bytes_read_as_an_error() -> Result<()> {
    let Some(s) = server("tampered_bytes_read_as_an_error") else {
        return Ok(());
    };
    let store = S3BlobStore::open(config(&s, "tamper")).await?;
    let meta = store
        .put_bytes(b"the original bytes", &PutOptions::default())
        .await?;
    let file = s
        .bucket_dir("test")
        .join("tamper/blobs/data")
        .join(meta.id.hex());
    std::fs::write(&file, b"the tampered bytes!").unwrap();
    let (_, r) = store.get(&meta.id).await?.expect("stored");
    let e = read_all(r)
        .await
        .expect_err("tampered bytes must not read back");
    assert!(
        e.to_string().contains("sha256") || e.to_string().contains("SHA-256"),
        "{e}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_an_authentication_error() {
    let Some(s) = server("wrong_credentials_are_an_authentication_error") else {
        return;
    };
    let c = S3Config::new(&s.endpoint(), "test", s.access_key(), "not-the-secret");
    let e = S3BlobStore::open(c).await.expect_err("a wrong secret");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(!e.to_string().contains("not-the-secret"), "{e}");
}

/// A reader that yields `len` bytes slowly, then never ends.
fn endless(len: usize) -> BlobReader {
    let (mut tx, rx) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let data = pattern(len);
        let _ = tx.write_all(&data).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    Box::pin(rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_cut_off_midway_leaves_nothing_readable() -> Result<()> {
    let Some(s) = server("a_put_cut_off_midway_leaves_nothing_readable") else {
        return Ok(());
    };
    let store = S3BlobStore::open(config(&s, "cut")).await?;
    let options = PutOptions::default();
    for len in [1000, PART_BYTES + 1000] {
        let put = store.put(endless(len), &options);
        // The writer goes away mid-stream, as a crashed process's would.
        assert!(
            tokio::time::timeout(Duration::from_secs(2), put)
                .await
                .is_err()
        );
        assert_eq!(
            store.stats().await?.count,
            0,
            "after a cut-off put of {len} bytes"
        );
        assert!(store.list(None, 10).await?.is_empty());
    }
    Ok(())
}
