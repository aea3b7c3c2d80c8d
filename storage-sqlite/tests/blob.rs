//! The kit's blob cases against the SQLite blob store (each case in a namespace of its own in
//! one file), and an upload cut off mid-stream: its chunks are invisible and `cleanup` removes
//! them once stale.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use storage_core::blob::{BlobLimits, BlobStore, PutOptions};
use storage_sqlite::{SqliteBlobStore, SqliteConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_blob_store_passes_the_blob_cases() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("blobs.db");
    let counter = Arc::new(AtomicUsize::new(0));
    let report = storage_testkit::blob::run_blob_suite(
        Arc::new(move |limits: BlobLimits| {
            let prefix = format!("case{}:", counter.fetch_add(1, Ordering::Relaxed));
            let config = SqliteConfig::file(path.clone());
            async move {
                Ok(
                    Arc::new(SqliteBlobStore::open(config, &prefix, limits).await?)
                        as Arc<dyn BlobStore>,
                )
            }
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

/// A stream that fails after 600 KiB (three chunks written): the put fails, nothing is
/// visible, and the chunks it wrote are dropped with it.
#[tokio::test]
async fn a_failed_upload_leaves_nothing_visible() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteBlobStore::open(
        SqliteConfig::file(dir.path().join("b.db")),
        "",
        BlobLimits::default(),
    )
    .await
    .unwrap();
    let good = std::io::Cursor::new(vec![1u8; 600 * 1024]);
    let failing = tokio::io::AsyncReadExt::chain(good, Failing);
    let e = store
        .put(Box::pin(failing), &PutOptions::default())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("reading the blob to store"), "{e}");
    assert_eq!(store.stats().await.unwrap().count, 0);
    let conn = rusqlite_count(&dir.path().join("b.db"));
    assert_eq!(conn, (0, 0), "chunks and uploads left behind");
}

struct Failing;

impl tokio::io::AsyncRead for Failing {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Err(std::io::Error::other("the client went away")))
    }
}

fn rusqlite_count(path: &std::path::Path) -> (i64, i64) {
    let conn = r2d2_sqlite::rusqlite::Connection::open(path).unwrap();
    let count = |t: &str| {
        conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
            .unwrap()
    };
    (count("blob_chunks"), count("blob_uploads"))
}
