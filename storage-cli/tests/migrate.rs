//! `storage migrate` between real backends, checked by an independent read.

mod support;
use support::{migrate, write_config};

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use storage_core::Database;
use storage_manager::StorageManager;
use storage_servers::{
    Postgres, Redis, RedisCluster, find_postgres_bin, find_redis_server, skip_or_fail,
};

const KEYS: usize = 100_000;
const LISTS: usize = 10;
const ITEMS: usize = 10_000;

fn classes() -> Vec<Value> {
    vec![
        json!(null),
        json!(false),
        json!(0),
        json!(""),
        json!([]),
        json!({}),
        json!("nul \u{0} inside, émoji 🦀"),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(-0.0f64),
        json!(1e18f64),
        json!(5e-324f64),
        json!(1.0f64),
        json!({"nested": [1, 2.5, {"deep": [null, true]}]}),
    ]
}

fn value(i: usize) -> Value {
    let c = classes();
    json!([i, c[i % c.len()].clone()])
}

fn list_item(l: usize, i: usize) -> Value {
    let c = classes();
    json!({"list": l, "i": i, "v": c[i % c.len()].clone()})
}

/// Canonical text: distinguishes 1 from 1.0 and 0.0 from -0.0.
fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

async fn database(config: &Path) -> Arc<dyn Database> {
    let m = StorageManager::from_file(config)
        .unwrap()
        .without_fallback();
    m.connect_database().await.unwrap().0
}

async fn seed(config: &Path) {
    let db = database(config).await;
    let entries: Vec<(String, Value)> = (0..KEYS)
        .map(|i| (format!("key:{i:06}"), value(i)))
        .collect();
    for chunk in entries.chunks(5000) {
        db.mset(chunk).await.unwrap();
    }
    for l in 0..LISTS {
        let items: Vec<Value> = (0..ITEMS).map(|i| list_item(l, i)).collect();
        for chunk in items.chunks(5000) {
            db.append_many(&format!("history:{l}"), chunk)
                .await
                .unwrap();
        }
    }
}

/// Reads the target back, independently of the command's own verification.
async fn check(config: &Path) {
    let db = database(config).await;
    let mut keys = db.keys(None).await.unwrap();
    keys.sort();
    assert_eq!(keys.len(), KEYS + LISTS, "key count");
    let wanted: Vec<String> = (0..KEYS).map(|i| format!("key:{i:06}")).collect();
    for (chunk_no, chunk) in wanted.chunks(5000).enumerate() {
        let got = db.mget(chunk).await.unwrap();
        for (j, slot) in got.iter().enumerate() {
            let i = chunk_no * 5000 + j;
            assert_eq!(slot.as_ref().map(text), Some(text(&value(i))), "key:{i:06}");
        }
    }
    for l in 0..LISTS {
        let key = format!("history:{l}");
        assert_eq!(
            db.get_length(&key).await.unwrap(),
            ITEMS as u64,
            "{key} length"
        );
        let items = db.get_range(&key, 0, -1).await.unwrap();
        for (i, item) in items.iter().enumerate() {
            assert_eq!(text(item), text(&list_item(l, i)), "{key}[{i}]");
        }
    }
}

fn ok(o: &Output) -> String {
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("verification: identical"), "{out}");
    out
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}:{}:{nanos}:", std::process::id())
}

fn postgres_url(test: &str) -> Option<(Option<Postgres>, String)> {
    if let Ok(url) = std::env::var("STORAGE_TEST_POSTGRES_URL") {
        return Some((None, url));
    }
    if find_postgres_bin().is_none() {
        skip_or_fail(test, "no PostgreSQL");
        return None;
    }
    let pg = Postgres::start(&Default::default()).unwrap();
    let url = pg.url();
    Some((Some(pg), url))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_to_postgres_and_back() {
    let Some((_guard, url)) = postgres_url("sqlite_to_postgres_and_back") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = write_config(
        dir.path(),
        "sqlite.yml",
        "{ type: sqlite, path: data/source.db }",
    );
    let pg = write_config(
        dir.path(),
        "pg.yml",
        &format!(
            "{{ type: postgres, url: '{url}', keyPrefix: '{}' }}",
            unique("mig")
        ),
    );
    seed(&sqlite).await;
    let dry = migrate(&sqlite, &pg, &["--dry-run"]);
    assert!(
        String::from_utf8_lossy(&dry.stdout)
            .contains("would copy 100000 values and 10 lists (100000 items)")
    );
    ok(&migrate(&sqlite, &pg, &[]));
    check(&pg).await;
    let back = write_config(
        dir.path(),
        "back.yml",
        "{ type: sqlite, path: data/back.db }",
    );
    ok(&migrate(&pg, &back, &[]));
    check(&back).await;
    database(&pg).await.clear().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_to_sqlite_and_back() {
    if find_redis_server().is_none() {
        return skip_or_fail("redis_to_sqlite_and_back", "redis-server not found");
    }
    let server = Redis::start(&Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let redis = write_config(
        dir.path(),
        "redis.yml",
        &format!(
            "{{ type: redis, url: '{}', keyPrefix: 'src:' }}",
            server.url()
        ),
    );
    let sqlite = write_config(
        dir.path(),
        "sqlite.yml",
        "{ type: sqlite, path: data/from-redis.db }",
    );
    seed(&redis).await;
    ok(&migrate(&redis, &sqlite, &[]));
    check(&sqlite).await;
    let redis_back = write_config(
        dir.path(),
        "redis-back.yml",
        &format!(
            "{{ type: redis, url: '{}', keyPrefix: 'back:' }}",
            server.url()
        ),
    );
    ok(&migrate(&sqlite, &redis_back, &[]));
    check(&redis_back).await;
    // The source namespace is untouched by the second migration.
    assert_eq!(
        database(&redis).await.keys(None).await.unwrap().len(),
        KEYS + LISTS
    );
}

/// From one Redis server to a Redis Cluster: the cluster's database keys take the
/// namespace as a hash tag (`{prefix}key`), a layout change that only a migration makes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_to_redis_cluster() {
    if find_redis_server().is_none() {
        return skip_or_fail("redis_to_redis_cluster", "redis-server not found");
    }
    let server = Redis::start(&Default::default()).unwrap();
    let cluster = RedisCluster::start(&Default::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let single = write_config(
        dir.path(),
        "single.yml",
        &format!(
            "{{ type: redis, url: '{}', keyPrefix: 'app:' }}",
            server.url()
        ),
    );
    let sharded = write_config(
        dir.path(),
        "cluster.yml",
        &format!(
            "{{ type: redis, cluster: true, nodes: {:?}, keyPrefix: 'app:' }}",
            cluster.urls()
        ),
    );
    seed(&single).await;
    ok(&migrate(&single, &sharded, &[]));
    check(&sharded).await;
    let mut conn = redis::Client::open(cluster.url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("{app:}key:000001")
        .query_async(&mut conn)
        .await
        .unwrap();
    let in_slot: u64 = redis::cmd("CLUSTER")
        .arg("COUNTKEYSINSLOT")
        .arg(slot)
        .query_async(&mut cluster_conn(&cluster).await)
        .await
        .unwrap();
    // Its keys, its lists, the namespace's hash of list headers (`{app:}\0lists`), its
    // change log (`{app:}\0changes`) and its key index (`{app:}\0keys`, built by the
    // migration's listing of the target).
    assert_eq!(
        in_slot,
        (KEYS + LISTS + 3) as u64,
        "the namespace is one slot"
    );
}

/// A connection to the node that serves `{app:}`'s slot (COUNTKEYSINSLOT answers for the
/// node it is sent to).
async fn cluster_conn(cluster: &RedisCluster) -> redis::aio::MultiplexedConnection {
    let owner = cluster
        .primary_of("{app:}x")
        .expect("a primary for the slot");
    redis::Client::open(cluster.node(owner).url().as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_migration_reruns_to_identical_and_occupied_targets_are_refused() {
    let Some((_guard, url)) = postgres_url("interrupted_migration") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sqlite = write_config(
        dir.path(),
        "sqlite.yml",
        "{ type: sqlite, path: data/source.db }",
    );
    let pg = write_config(
        dir.path(),
        "pg.yml",
        &format!(
            "{{ type: postgres, url: '{url}', keyPrefix: '{}' }}",
            unique("int")
        ),
    );
    seed(&sqlite).await;
    let mut child = Command::new(env!("CARGO_BIN_EXE_storage"))
        .args(["migrate", "--from"])
        .arg(&sqlite)
        .arg("--to")
        .arg(&pg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Let it copy part of the data, then kill it. The first batch lands after the source is
    // read, which takes a while on a loaded machine: wait for it (bounded), not for a fixed time.
    let target = database(&pg).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if !target.keys(Some("key:0*")).await.unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        !target.keys(None).await.unwrap().is_empty(),
        "nothing was copied before the kill"
    );
    // The target now holds keys: refused without --overwrite, and left as it was.
    let before = target.keys(None).await.unwrap().len();
    let refused = migrate(&sqlite, &pg, &[]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--overwrite"));
    assert_eq!(target.keys(None).await.unwrap().len(), before);
    ok(&migrate(&sqlite, &pg, &["--overwrite"]));
    check(&pg).await;
    target.clear().await.unwrap();
}
