//! The PostgreSQL blob store against a real server: a blob of several chunks read whole and
//! by a range across a chunk boundary, a tampered chunk read as an error, and a put cut off
//! midway that leaves nothing readable. (The kit's blob cases run in the matrix line
//! `postgresql blob`.)

use std::sync::Arc;
use std::time::Duration;
use storage_core::BackendFactory;
use storage_core::blob::{BlobReader, BlobStore, PutOptions};
use storage_core::config::BackendSpec;
use storage_postgres::CHUNK_BYTES;
use tokio::io::AsyncReadExt;

// A server URL: the shared one, or a private server kept alive by the returned guard.
use storage_servers::test_postgres as server;

fn namespace(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}:{}:{nanos}:", std::process::id())
}

async fn store(url: &str, ns: &str) -> Arc<dyn BlobStore> {
    let u = url::Url::parse(url).unwrap();
    let config = storage_postgres::config::from_host(
        u.host_str().unwrap(),
        u.port().unwrap_or(5432),
        u.path().trim_start_matches('/'),
        u.username(),
    );
    let spec = BackendSpec::new(config).with_key_prefix(ns);
    storage_postgres::PostgresFactory::new()
        .open_blob(&spec)
        .await
        .unwrap()
}

async fn read_all(mut r: BlobReader) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).await?;
    Ok(out)
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 7919) as u8)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_read_back_whole_and_by_range_and_tampering_is_caught() {
    let Some((_guard, url)) = server("chunks_read_back_whole_and_by_range") else {
        return;
    };
    let ns = namespace("blob");
    let s = store(&url, &ns).await;
    let data = pattern(3 * CHUNK_BYTES + 777);
    let meta = s.put_bytes(&data, &PutOptions::default()).await.unwrap();
    let (_, r) = s.get(&meta.id).await.unwrap().unwrap();
    assert!(read_all(r).await.unwrap() == data);
    let from = CHUNK_BYTES as u64 - 5;
    let (_, r) = s
        .get_range(&meta.id, from, from + 10)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        read_all(r).await.unwrap(),
        data[from as usize..from as usize + 10]
    );

    // Change one byte of the second chunk behind the store's back.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let changed = client
        .execute(
            "UPDATE storage_blob_chunks SET data = set_byte(data, 10, 0) WHERE ns = $1 AND seq = 1",
            &[&ns],
        )
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let (_, r) = s.get(&meta.id).await.unwrap().unwrap();
    let e = read_all(r)
        .await
        .expect_err("a changed chunk must not read back");
    assert!(
        e.to_string().contains("SHA-256") || e.to_string().contains("sha256"),
        "{e}"
    );
}

/// A reader that yields `len` bytes, then never ends.
fn endless(len: usize) -> BlobReader {
    let (mut tx, rx) = tokio::io::duplex(64 * 1024);
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = tx.write_all(&pattern(len)).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    Box::pin(rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_put_cut_off_midway_leaves_nothing_readable() {
    let Some((_guard, url)) = server("a_put_cut_off_midway_leaves_nothing_readable") else {
        return;
    };
    let s = store(&url, &namespace("cut")).await;
    let options = PutOptions::default();
    for len in [100, 2 * CHUNK_BYTES + 100] {
        let put = s.put(endless(len), &options);
        assert!(
            tokio::time::timeout(Duration::from_secs(2), put)
                .await
                .is_err()
        );
        assert_eq!(
            s.stats().await.unwrap().count,
            0,
            "after a cut-off put of {len}"
        );
        assert!(s.list(None, 10).await.unwrap().is_empty());
    }
}
