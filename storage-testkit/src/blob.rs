//! The blob role's conformance cases: content addressing and dedupe, whole and range reads,
//! metadata and sniffing, listing by page, stats, cleanup, limits, concurrent puts of the same
//! bytes, and reads of a missing blob. Each case gets a fresh, empty store from the builder.
//! Not the key-value cases (`cases/`).

use crate::check::{CaseResult, Ctx, ensure, ensure_eq, expect_err};
use crate::{BoxFuture, CaseReport, Outcome, Report};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use storage_core::blob::{BlobId, BlobLimits, BlobReader, BlobStore, PutOptions};
use storage_core::{ErrorKind, Result};
use tokio::io::AsyncReadExt;

/// Builds a blob store with the given limits (the kit empties it before each case).
pub trait BlobBuilder: Send + Sync {
    /// A store.
    fn build(&self, limits: BlobLimits) -> BoxFuture<'static, Result<Arc<dyn BlobStore>>>;
}

impl<F, Fut> BlobBuilder for F
where
    F: Fn(BlobLimits) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = Result<Arc<dyn BlobStore>>> + Send + 'static,
{
    fn build(&self, limits: BlobLimits) -> BoxFuture<'static, Result<Arc<dyn BlobStore>>> {
        Box::pin(self(limits))
    }
}

type Case = (
    &'static str,
    fn(Arc<dyn BlobBuilder>) -> BoxFuture<'static, CaseResult>,
);

macro_rules! blob_cases {
    ($($name:ident),* $(,)?) => {
        vec![$((stringify!($name), (|b| Box::pin($name(b))) as fn(Arc<dyn BlobBuilder>) -> BoxFuture<'static, CaseResult>)),*]
    };
}

fn cases() -> Vec<Case> {
    blob_cases![
        same_bytes_are_one_blob,
        whole_reads_return_the_bytes,
        range_reads,
        metadata_is_kept_and_sniffed,
        listing_by_page_and_stats,
        cleanup_removes_only_older_blobs,
        limits_refuse_and_store_nothing,
        concurrent_puts_of_the_same_bytes,
        missing_blobs,
        delete_and_close,
    ]
}

/// The names of the blob cases.
pub fn blob_case_names() -> Vec<&'static str> {
    cases().into_iter().map(|(n, _)| n).collect()
}

/// Runs every blob case (those whose name contains `filter`, if given).
pub async fn run_blob_suite(builder: Arc<dyn BlobBuilder>, filter: Option<&str>) -> Report {
    let mut report = Report {
        role: "blob",
        cases: Vec::new(),
    };
    for (name, run) in cases() {
        if filter.is_some_and(|f| !name.contains(f)) {
            continue;
        }
        let outcome =
            match tokio::time::timeout(Duration::from_secs(120), run(builder.clone())).await {
                Ok(r) => r,
                Err(_) => Err("timed out after 120 s".to_string()),
            };
        report.cases.push(CaseReport {
            name,
            outcome: match outcome {
                Ok(()) => Outcome::Passed,
                Err(m) => Outcome::Failed(m),
            },
        });
    }
    report
}

async fn store(b: &Arc<dyn BlobBuilder>) -> std::result::Result<Arc<dyn BlobStore>, String> {
    fresh(b, BlobLimits::default()).await
}

/// A store from the builder, emptied first (a builder may hand out one store each time, as a
/// runner opening the same configuration does).
async fn fresh(
    b: &Arc<dyn BlobBuilder>,
    limits: BlobLimits,
) -> std::result::Result<Arc<dyn BlobStore>, String> {
    let s = b.build(limits).await.ctx("building the store")?;
    let everything = SystemTime::now() + Duration::from_secs(86_400);
    s.cleanup(everything).await.ctx("emptying the store")?;
    ensure_eq!(
        s.stats().await.ctx("stats")?.count,
        0,
        "blobs after emptying the store"
    );
    Ok(s)
}

async fn read_all(mut r: BlobReader) -> std::result::Result<Vec<u8>, String> {
    let mut out = Vec::new();
    r.read_to_end(&mut out)
        .await
        .map_err(|e| format!("reading the blob: {e}"))?;
    Ok(out)
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn same_bytes_are_one_blob(b: Arc<dyn BlobBuilder>) -> CaseResult {
    let s = store(&b).await?;
    let data = bytes(10_000, 1);
    let first = s
        .put_bytes(&data, &PutOptions::default())
        .await
        .ctx("put")?;
    ensure_eq!(first.size, 10_000, "size");
    ensure_eq!(
        first.id.to_string().len(),
        "blob:sha256:".len() + 64,
        "the id's text form"
    );
    let again = s
        .put_bytes(
            &data,
            &PutOptions {
                name: Some("other.bin".into()),
                ..Default::default()
            },
        )
        .await
        .ctx("put again")?;
    ensure_eq!(again.id, first.id.clone(), "the same bytes, the same id");
    ensure_eq!(
        again.created_ms,
        first.created_ms,
        "stored once: the first metadata"
    );
    ensure_eq!(
        s.stats().await.ctx("stats")?.count,
        1,
        "blobs after two puts"
    );
    let other = s
        .put_bytes(&bytes(10_000, 2), &PutOptions::default())
        .await
        .ctx("put")?;
    ensure!(other.id != first.id, "different bytes share an id");
    Ok(())
}

async fn whole_reads_return_the_bytes(b: Arc<dyn BlobBuilder>) -> CaseResult {
    let s = store(&b).await?;
    for n in [0usize, 1, 4096, 200_000] {
        let data = bytes(n, 3);
        let meta = s
            .put_bytes(&data, &PutOptions::default())
            .await
            .ctx("put")?;
        let Some((got, reader)) = s.get(&meta.id).await.ctx("get")? else {
            return Err(format!("a {n}-byte blob is missing after put"));
        };
        ensure_eq!(got, meta.clone(), "metadata from get");
        ensure!(
            read_all(reader).await? == data,
            "the bytes of a {n}-byte blob differ"
        );
        ensure!(s.exists(&meta.id).await.ctx("exists")?, "exists after put");
    }
    Ok(())
}

async fn range_reads(b: Arc<dyn BlobBuilder>) -> CaseResult {
    let s = store(&b).await?;
    let data = bytes(100_000, 4);
    let meta = s
        .put_bytes(&data, &PutOptions::default())
        .await
        .ctx("put")?;
    for (start, end) in [
        (0u64, 10u64),
        (99_990, 100_000),
        (50_000, 50_001),
        (99_000, 200_000),
        (7, 7),
        (200, 100),
    ] {
        let Some((_, reader)) = s.get_range(&meta.id, start, end).await.ctx("get_range")? else {
            return Err("the blob is missing".into());
        };
        let from = (start as usize).min(data.len());
        let to = (end as usize).min(data.len()).max(from);
        ensure!(
            read_all(reader).await? == data[from..to],
            "range {start}..{end}"
        );
    }
    Ok(())
}

async fn metadata_is_kept_and_sniffed(b: Arc<dyn BlobBuilder>) -> CaseResult {
    let s = store(&b).await?;
    let png = b"\x89PNG\r\n\x1a\n0000".to_vec();
    let before = SystemTime::now() - Duration::from_secs(1);
    let meta = s
        .put_bytes(
            &png,
            &PutOptions {
                name: Some("cat.png".into()),
                source: Some("user".into()),
                mime: None,
            },
        )
        .await
        .ctx("put")?;
    ensure_eq!(meta.mime.as_str(), "image/png", "sniffed type");
    ensure_eq!(meta.name.as_deref(), Some("cat.png"), "name");
    ensure_eq!(meta.source.as_deref(), Some("user"), "source");
    ensure!(meta.created() >= before, "created time in the past");
    let given = s
        .put_bytes(
            b"plain words",
            &PutOptions {
                mime: Some("text/markdown".into()),
                ..Default::default()
            },
        )
        .await
        .ctx("put")?;
    ensure_eq!(given.mime.as_str(), "text/markdown", "a given type wins");
    ensure_eq!(s.head(&meta.id).await.ctx("head")?, Some(meta), "head");
    Ok(())
}

async fn listing_by_page_and_stats(b: Arc<dyn BlobBuilder>) -> CaseResult {
    let s = store(&b).await?;
    let mut ids = Vec::new();
    let mut total = 0;
    for i in 0..25u8 {
        let data = bytes(100 + i as usize, i);
        total += data.len() as u64;
        ids.push(
            s.put_bytes(&data, &PutOptions::default())
                .await
                .ctx("put")?
                .id,
        );
    }
    ids.sort();
    let mut seen: Vec<BlobId> = Vec::new();
    let mut after: Option<BlobId> = None;
    loop {
        let page = s.list(after.as_ref(), 10).await.ctx("list")?;
        ensure!(page.len() <= 10, "a page longer than asked");
        if page.is_empty() {
            break;
        }
        after = page.last().map(|m| m.id.clone());
        seen.extend(page.into_iter().map(|m| m.id));
    }
    ensure_eq!(seen, ids, "every blob once, in id order");
    let stats = s.stats().await.ctx("stats")?;
    ensure_eq!((stats.count, stats.bytes), (25, total), "stats");
    Ok(())
}

async fn cleanup_removes_only_older_blobs(b: Arc<dyn BlobBuilder>) -> CaseResult {
    let s = store(&b).await?;
    let old = s
        .put_bytes(b"old", &PutOptions::default())
        .await
        .ctx("put")?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let new = s
        .put_bytes(b"new", &PutOptions::default())
        .await
        .ctx("put")?;
    ensure_eq!(s.cleanup(cut).await.ctx("cleanup")?, 1, "blobs removed");
    ensure!(
        !s.exists(&old.id).await.ctx("exists")?,
        "the old blob is still there"
    );
    ensure!(
        s.exists(&new.id).await.ctx("exists")?,
        "the new blob is gone"
    );
    Ok(())
}

async fn limits_refuse_and_store_nothing(b: Arc<dyn BlobBuilder>) -> CaseResult {
    let limits = BlobLimits {
        max_blob_bytes: Some(1000),
        max_total_bytes: Some(1500),
    };
    let s = fresh(&b, limits).await?;
    expect_err(
        s.put_bytes(&bytes(1001, 5), &PutOptions::default()).await,
        ErrorKind::InvalidInput,
        "a blob past maxBlobBytes",
    )?;
    ensure_eq!(
        s.stats().await.ctx("stats")?.count,
        0,
        "blobs after a refusal"
    );
    s.put_bytes(&bytes(1000, 6), &PutOptions::default())
        .await
        .ctx("a blob at the limit")?;
    expect_err(
        s.put_bytes(&bytes(600, 7), &PutOptions::default()).await,
        ErrorKind::InvalidInput,
        "a blob past maxTotalBytes",
    )?;
    s.put_bytes(&bytes(500, 8), &PutOptions::default())
        .await
        .ctx("up to the total")?;
    // Bytes already stored take no room again.
    s.put_bytes(&bytes(1000, 6), &PutOptions::default())
        .await
        .ctx("a blob already there")?;
    ensure_eq!(s.stats().await.ctx("stats")?.bytes, 1500, "bytes held");
    Ok(())
}

async fn concurrent_puts_of_the_same_bytes(b: Arc<dyn BlobBuilder>) -> CaseResult {
    let s = store(&b).await?;
    let data = Arc::new(bytes(300_000, 9));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (s, data) = (s.clone(), data.clone());
            tokio::spawn(async move { s.put_bytes(&data, &PutOptions::default()).await })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.map_err(|e| e.to_string())?.ctx("put")?.id);
    }
    ensure!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "concurrent puts gave different ids"
    );
    ensure_eq!(
        s.stats().await.ctx("stats")?.count,
        1,
        "blobs after 8 puts of one content"
    );
    let Some((_, r)) = s.get(&ids[0]).await.ctx("get")? else {
        return Err("missing".into());
    };
    ensure!(
        read_all(r).await? == *data,
        "the bytes after concurrent puts"
    );
    Ok(())
}

async fn missing_blobs(b: Arc<dyn BlobBuilder>) -> CaseResult {
    let s = store(&b).await?;
    let id = BlobId::from_digest([7; 32]);
    ensure!(
        s.get(&id).await.ctx("get")?.is_none(),
        "get of a missing blob"
    );
    ensure!(
        s.get_range(&id, 0, 1).await.ctx("get_range")?.is_none(),
        "range of a missing blob"
    );
    ensure!(
        s.head(&id).await.ctx("head")?.is_none(),
        "head of a missing blob"
    );
    ensure!(
        !s.exists(&id).await.ctx("exists")?,
        "exists of a missing blob"
    );
    ensure!(
        !s.delete(&id).await.ctx("delete")?,
        "delete of a missing blob"
    );
    Ok(())
}

async fn delete_and_close(b: Arc<dyn BlobBuilder>) -> CaseResult {
    let s = store(&b).await?;
    let meta = s
        .put_bytes(b"gone soon", &PutOptions::default())
        .await
        .ctx("put")?;
    ensure!(
        s.delete(&meta.id).await.ctx("delete")?,
        "delete of a stored blob"
    );
    ensure!(
        s.get(&meta.id).await.ctx("get")?.is_none(),
        "a deleted blob reads"
    );
    s.ping().await.ctx("ping")?;
    s.close().await.ctx("close")?;
    s.close().await.ctx("close again")?;
    ensure!(s.ping().await.is_err(), "ping after close");
    Ok(())
}
