//! The blob rows: `put` and `get` throughput in MB/s at 4 KiB, 1 MiB and 100 MiB on each blob
//! backend, beside the raw path the backend stands on (a copy in memory for the in-memory store;
//! a file written, synced and renamed, or read, for the local and database stores; the
//! `object_store` client alone for S3), what SHA-256 alone runs at (every put and whole get
//! hashes), and the memory high-water of one large streamed `put` into the local store.
//!
//! Every `put` stores new bytes (a counter in the first eight bytes), since the same bytes
//! again are stored once and cost nothing; every `get` reads the whole blob through the hash
//! check. In the rows, `ops/s` is MB/s (MiB per second) and `c` is 1.

use crate::harness::{RUNS, Row, Stats};
use object_store::ObjectStoreExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use storage_core::blob::{BlobId, BlobStore, PutOptions};
use tokio::io::AsyncReadExt;

const MIB: usize = 1024 * 1024;

/// A size, its row name for put and get, and how many blobs a run moves.
struct Size {
    bytes: usize,
    put: &'static str,
    get: &'static str,
    count: usize,
}

fn sizes(quick: bool) -> Vec<Size> {
    let scale = if quick { 1 } else { 4 };
    vec![
        Size {
            bytes: 4 * 1024,
            put: "blob_put_4KiB_MBps",
            get: "blob_get_4KiB_MBps",
            count: 100 * scale,
        },
        Size {
            bytes: MIB,
            put: "blob_put_1MiB_MBps",
            get: "blob_get_1MiB_MBps",
            count: 8 * scale,
        },
        Size {
            bytes: 100 * MIB,
            put: "blob_put_100MiB_MBps",
            get: "blob_get_100MiB_MBps",
            count: 1,
        },
    ]
}

/// The raw path a backend is compared with.
pub enum Raw {
    /// Memory: the bytes copied into a map, and copied out.
    Memory(std::sync::Mutex<std::collections::HashMap<String, Vec<u8>>>),
    /// Files in a directory: written, synced and renamed; read whole.
    Files(PathBuf),
    /// The S3 client alone, on a bucket: endpoint, bucket, access key, secret.
    S3(Arc<dyn object_store::ObjectStore>),
}

fn data(size: usize, n: u64) -> Vec<u8> {
    let mut v: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let stamp = (n ^ std::process::id() as u64 ^ nanos()).to_le_bytes();
    let k = stamp.len().min(size);
    v[..k].copy_from_slice(&stamp[..k]);
    v
}

fn nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn mbps(bytes: usize, secs: f64) -> Stats {
    Stats::single(bytes as f64 / MIB as f64 / secs.max(1e-9), 0.0, 0.0)
}

/// One run of `count` puts then `count` gets through the store: (put, get) MB/s.
async fn store_run(store: &dyn BlobStore, size: &Size, seq: &mut u64) -> (Stats, Stats) {
    let blobs: Vec<Vec<u8>> = (0..size.count)
        .map(|_| {
            *seq += 1;
            data(size.bytes, *seq)
        })
        .collect();
    let mut ids: Vec<BlobId> = Vec::with_capacity(blobs.len());
    let started = Instant::now();
    for b in &blobs {
        let meta = store
            .put(
                Box::pin(std::io::Cursor::new(b.clone())),
                &PutOptions::default(),
            )
            .await
            .expect("blob put");
        ids.push(meta.id);
    }
    let put = mbps(size.bytes * size.count, started.elapsed().as_secs_f64());
    drop(blobs);
    let started = Instant::now();
    let mut buffer = Vec::with_capacity(size.bytes);
    for id in &ids {
        let (_, mut r) = store.get(id).await.expect("blob get").expect("stored");
        buffer.clear();
        r.read_to_end(&mut buffer).await.expect("blob read");
    }
    let get = mbps(size.bytes * size.count, started.elapsed().as_secs_f64());
    for id in &ids {
        store.delete(id).await.expect("blob delete");
    }
    (put, get)
}

/// One run of the raw path: (put, get) MB/s.
async fn raw_run(raw: &Raw, size: &Size, seq: &mut u64) -> (Stats, Stats) {
    let blobs: Vec<Vec<u8>> = (0..size.count)
        .map(|_| {
            *seq += 1;
            data(size.bytes, *seq)
        })
        .collect();
    let names: Vec<String> = (0..blobs.len()).map(|i| format!("raw-{seq}-{i}")).collect();
    let started = Instant::now();
    for (b, name) in blobs.iter().zip(&names) {
        match raw {
            Raw::Memory(map) => {
                let copy = b.clone();
                map.lock().expect("map").insert(name.clone(), copy);
            }
            Raw::Files(dir) => write_synced(dir, name, b).await,
            Raw::S3(client) => {
                let path = object_store::path::Path::from(name.as_str());
                client
                    .put(&path, b.clone().into())
                    .await
                    .expect("raw S3 put");
            }
        }
    }
    let put = mbps(size.bytes * size.count, started.elapsed().as_secs_f64());
    drop(blobs);
    let started = Instant::now();
    for name in &names {
        match raw {
            Raw::Memory(map) => {
                let copy = map.lock().expect("map").get(name).cloned();
                std::hint::black_box(copy);
            }
            Raw::Files(dir) => {
                tokio::fs::read(dir.join(name)).await.expect("raw read");
            }
            Raw::S3(client) => {
                let path = object_store::path::Path::from(name.as_str());
                client
                    .get(&path)
                    .await
                    .expect("raw S3 get")
                    .bytes()
                    .await
                    .expect("raw S3 read");
            }
        }
    }
    let get = mbps(size.bytes * size.count, started.elapsed().as_secs_f64());
    for name in &names {
        match raw {
            Raw::Memory(map) => {
                map.lock().expect("map").remove(name);
            }
            Raw::Files(dir) => {
                let _ = tokio::fs::remove_file(dir.join(name)).await;
            }
            Raw::S3(client) => {
                let _ = client
                    .delete(&object_store::path::Path::from(name.as_str()))
                    .await;
            }
        }
    }
    (put, get)
}

/// A file written as a durable store writes one: a temporary name, synced, renamed.
async fn write_synced(dir: &Path, name: &str, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = tokio::fs::File::create(&tmp).await.expect("raw create");
    f.write_all(bytes).await.expect("raw write");
    f.sync_all().await.expect("raw sync");
    tokio::fs::rename(&tmp, dir.join(name))
        .await
        .expect("raw rename");
}

/// The rows of one backend: each size's put and get, the median of [`RUNS`] runs, beside the
/// raw path's.
pub async fn bench(
    backend: &str,
    store: &dyn BlobStore,
    raw: &Raw,
    quick: bool,
    rows: &mut Vec<Row>,
) {
    let mut seq = 0;
    for size in sizes(quick) {
        eprintln!("bench: {backend} blobs of {} bytes", size.bytes);
        let (mut puts, mut gets, mut raw_puts, mut raw_gets) = (vec![], vec![], vec![], vec![]);
        for _ in 0..RUNS {
            let (p, g) = store_run(store, &size, &mut seq).await;
            puts.push(p);
            gets.push(g);
            let (p, g) = raw_run(raw, &size, &mut seq).await;
            raw_puts.push(p);
            raw_gets.push(g);
        }
        for (op, project, baseline) in [(size.put, puts, raw_puts), (size.get, gets, raw_gets)] {
            rows.push(Row::measured(
                backend,
                op,
                1,
                Stats::median(project),
                Some(Stats::median(baseline)),
            ));
        }
    }
}

/// `VmHWM` or `VmRSS` of this process, in KiB.
fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A reader of `len` generated bytes, never all in memory.
struct Generated {
    left: u64,
    n: u64,
}

impl tokio::io::AsyncRead for Generated {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let k = (buf.remaining() as u64).min(self.left) as usize;
        let start = self.n;
        let chunk: Vec<u8> = (0..k as u64).map(|i| ((start + i) % 253) as u8).collect();
        buf.put_slice(&chunk);
        self.left -= k as u64;
        self.n += k as u64;
        std::task::Poll::Ready(Ok(()))
    }
}

/// The child's side of the high-water row: in a fresh process (so that no memory freed by
/// earlier rows hides new use), one streamed `put` of `bytes` into the local store at `dir`;
/// prints `peak_growth_kib=<n> mbps=<x>`.
pub async fn high_water_child(dir: &str, bytes: u64) {
    let store = open(&format!("{{ type: local, path: '{dir}' }}")).await;
    store.ping().await.expect("the store answers");
    // "5" resets the peak resident size to the current one (Linux 4.0 and later).
    std::fs::write("/proc/self/clear_refs", "5").expect("reset the peak resident size");
    let before = status_kib("VmRSS:");
    let started = Instant::now();
    let meta = store
        .put(
            Box::pin(Generated {
                left: bytes,
                n: nanos() % 253,
            }),
            &PutOptions::default(),
        )
        .await
        .expect("large put");
    let secs = started.elapsed().as_secs_f64();
    let grown = status_kib("VmHWM:").saturating_sub(before);
    store.delete(&meta.id).await.expect("delete the large blob");
    println!(
        "peak_growth_kib={grown} mbps={:.1}",
        bytes as f64 / MIB as f64 / secs
    );
}

/// The high-water rows: [`high_water_child`] run as a process of its own.
fn high_water(dir: &Path, bytes: u64, rows: &mut Vec<Row>) {
    let out = std::process::Command::new(std::env::current_exe().expect("this benchmark"))
        .arg("--blob-high-water")
        .arg(dir)
        .arg(bytes.to_string())
        .output()
        .expect("run the high-water child");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> f64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name)?.parse().ok())
            .unwrap_or_else(|| panic!("the high-water child printed no {name}: {text}"))
    };
    let (grown_kib, rate) = (field("peak_growth_kib="), field("mbps="));
    eprintln!(
        "bench: local put of {} MiB in a fresh process: peak resident +{grown_kib} KiB",
        bytes / MIB as u64
    );
    for (op, value) in [
        ("blob_put_large_peak_rss_growth_KiB", grown_kib),
        ("blob_put_large_MBps", rate),
    ] {
        rows.push(Row::measured(
            "local",
            op,
            1,
            Stats::single(value, 0.0, 0.0),
            None,
        ));
    }
}

/// The blob store a `blob:` block describes, through the built-in registry.
pub async fn open(block: &str) -> Arc<dyn BlobStore> {
    let yaml =
        format!("blob: {block}\ncache: {{ type: in-memory }}\ndatabase: {{ type: in-memory }}\n");
    let registry = storage_manager::builtin_registry();
    let config = storage_manager::config_file::from_yaml_str(&yaml, Path::new("."))
        .expect("blob block")
        .resolve(&registry)
        .expect("blob block");
    let spec = config.blob.expect("a blob role").primary;
    registry
        .open_blob(&spec)
        .await
        .expect("open the blob store")
}

/// The S3 client alone, on the bucket the S3 store uses.
pub fn raw_s3(endpoint: &str, bucket: &str, key: &str, secret: &str) -> Raw {
    let client = object_store::aws::AmazonS3Builder::new()
        .with_endpoint(endpoint)
        .with_bucket_name(bucket)
        .with_region("us-east-1")
        .with_access_key_id(key)
        .with_secret_access_key(secret)
        .with_allow_http(true)
        .build()
        .expect("the raw S3 client");
    Raw::S3(Arc::new(client))
}

/// Every blob row: in-memory, local (with the large put's high-water), SQLite, and PostgreSQL
/// and S3 when given.
pub async fn bench_all(
    quick: bool,
    postgres: Option<&str>,
    s3: Option<(String, String, String)>,
    rows: &mut Vec<Row>,
) {
    let dir = std::env::temp_dir().join(format!("storage-bench-blobs-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("raw")).expect("bench directory");
    let files = Raw::Files(dir.join("raw"));
    hash_limit(rows);
    let memory = open("{ type: in-memory }").await;
    let copies = Raw::Memory(Default::default());
    bench("in-memory", &*memory, &copies, quick, rows).await;
    drop(memory);
    let local = open(&format!(
        "{{ type: local, path: '{}' }}",
        dir.join("local").display()
    ))
    .await;
    bench("local", &*local, &files, quick, rows).await;
    let large = if quick { 256 } else { 1024 } * MIB as u64;
    high_water(&dir.join("large"), large, rows);
    let sqlite = open(&format!(
        "{{ type: sqlite, path: '{}' }}",
        dir.join("blobs.db").display()
    ))
    .await;
    bench("sqlite", &*sqlite, &files, quick, rows).await;
    if let Some(url) = postgres {
        let pg = open(&format!(
            "{{ type: postgresql, url: '{url}', keyPrefix: 'bench-blobs:' }}"
        ))
        .await;
        bench("postgresql", &*pg, &files, quick, rows).await;
    }
    if let Some((endpoint, key, secret)) = s3 {
        let store = open(&format!(
            "{{ type: s3, endpoint: '{endpoint}', bucket: test, accessKeyId: '{key}', secretAccessKey: '{secret}', keyPrefix: bench }}"
        ))
        .await;
        let raw = raw_s3(&endpoint, "test", &key, &secret);
        bench("s3", &*store, &raw, quick, rows).await;
    } else {
        eprintln!("bench: no --s3 endpoint; s3 blobs are left out");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What SHA-256 alone runs at on this machine, over 100 MiB in memory: every `put` hashes what
/// it stores and every whole `get` what it reads, so no store moves bytes faster than this.
fn hash_limit(rows: &mut Vec<Row>) {
    use sha2::Digest;
    let bytes = data(100 * MIB, 1);
    let runs: Vec<Stats> = (0..RUNS)
        .map(|_| {
            let started = Instant::now();
            std::hint::black_box(sha2::Sha256::digest(&bytes));
            mbps(bytes.len(), started.elapsed().as_secs_f64())
        })
        .collect();
    rows.push(Row::measured(
        "sha256 (hash only)",
        "hash_100MiB_MBps",
        1,
        Stats::median(runs),
        None,
    ));
}
