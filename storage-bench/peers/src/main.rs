//! `storage-bench-peers`: our backends beside Apache OpenDAL's services on the same servers and
//! files, with the same workload (`workload.rs`): 1,000 keys of about 200 bytes of JSON, `get`
//! and `set` at concurrency 1 and 64, each figure the median of three interleaved runs. Ours go
//! through the manager as an application's database role does (redb through the plugin
//! loader); OpenDAL's values are the same JSON, encoded and decoded on each call.
//!
//! Outside the workspace, with its own lockfile: OpenDAL's SQL services depend on sqlx, whose
//! SQLite driver cannot share a build with rusqlite. So this program never links our SQLite
//! backend; `storage-bench` measures ours with the same workload file and writes its rows
//! (`sqlite (peer workload)`), and this program measures OpenDAL's SQLite service and compares.
//! Rows are appended to the benchmark's `results.json`: `backend: "opendal-<service>"`,
//! `ops_per_sec` OpenDAL's, `ours_ops_per_sec` ours, `ratio` ours ÷ OpenDAL; and the rows
//! `backend: "moka"`: our in-memory cache role against moka, a TTL on each entry on both sides.
//!
//! ```text
//! storage-bench-peers --results FILE --dir DIR [--quick | --smoke] [--postgres URL]
//!                     [--redis URL] [--redb-plugin PATH]
//! ```

mod moka_peer;
mod workload;

use opendal::{ErrorKind, Operator, services};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storage_manager::StorageManager;
use workload::{Figure, Kv, OurDatabase};

/// OpenDAL: bytes in and out, so JSON is encoded and decoded here, as an application would.
struct Dal(Operator);

impl Kv for Dal {
    async fn get(&self, key: String) -> Result<Option<Value>, String> {
        match self.0.read(&key).await {
            Ok(buffer) => serde_json::from_slice(&buffer.to_bytes())
                .map(Some)
                .map_err(|e| e.to_string()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }
    async fn set(&self, key: String, value: Value) -> Result<(), String> {
        let bytes = serde_json::to_vec(&value).map_err(|e| e.to_string())?;
        self.0
            .write(&key, bytes)
            .await
            .map(drop)
            .map_err(|e| e.to_string())
    }
}

async fn ours(yaml: &str, dir: &Path) -> Arc<OurDatabase> {
    let source = storage_manager::config_file::from_yaml_str(yaml, dir).expect("a peer config");
    let manager = StorageManager::from_source(&source)
        .expect("a peer config")
        .without_fallback();
    let (db, _) = manager.connect_database().await.expect("open our backend");
    db.clear().await.expect("an empty namespace");
    Arc::new(OurDatabase(db))
}

fn row(service: &str, op: &str, c: usize, ours: Figure, theirs: Figure) -> Value {
    eprintln!(
        "peers: {service:<10} {op:<4} c={c:<3} ours {:>9.0} ops/s  peer {:>9.0} ops/s  ratio {:.2}",
        ours.ops_per_sec,
        theirs.ops_per_sec,
        ours.ops_per_sec / theirs.ops_per_sec
    );
    json!({
        "backend": format!("opendal-{service}"),
        "op": op,
        "concurrency": c,
        "list_len": null,
        "ops_per_sec": theirs.ops_per_sec,
        "ops_per_sec_min": theirs.min_ops_per_sec,
        "ops_per_sec_max": theirs.max_ops_per_sec,
        "runs": workload::RUNS,
        "p50_us": theirs.p50_us,
        "p99_us": theirs.p99_us,
        "ours_ops_per_sec": ours.ops_per_sec,
        "ours_ops_per_sec_min": ours.min_ops_per_sec,
        "ours_ops_per_sec_max": ours.max_ops_per_sec,
        "ratio": ours.ops_per_sec / theirs.ops_per_sec,
        "flushes_per_op": theirs.flushes_per_op,
        "ours_flushes_per_op": ours.flushes_per_op,
    })
}

async fn pair(
    service: &str,
    ours: Arc<OurDatabase>,
    theirs: Operator,
    scale: usize,
    rows: &mut Vec<Value>,
) {
    let theirs = Arc::new(Dal(theirs));
    workload::preload(ours.as_ref())
        .await
        .expect("preload ours");
    workload::preload(theirs.as_ref())
        .await
        .expect("preload OpenDAL");
    for (op, c, a, b) in workload::measure_pair(ours, theirs, scale).await {
        rows.push(row(service, op, c, a, b));
    }
}

/// Our SQLite figure for `(op, c)`, from the rows `storage-bench` wrote.
fn our_sqlite(results: &[Value], op: &str, c: usize) -> Option<Figure> {
    let r = results.iter().find(|r| {
        r["backend"] == "sqlite (peer workload)" && r["op"] == op && r["concurrency"] == c
    })?;
    let f = |k: &str| r[k].as_f64().unwrap_or(f64::NAN);
    Some(Figure {
        ops_per_sec: f("ops_per_sec"),
        min_ops_per_sec: f("ops_per_sec_min"),
        max_ops_per_sec: f("ops_per_sec_max"),
        p50_us: f("p50_us"),
        p99_us: f("p99_us"),
        flushes_per_op: r["flushes_per_op"].as_f64(),
    })
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let results_path = PathBuf::from(value_of("--results").expect("--results FILE"));
    let dir = PathBuf::from(value_of("--dir").expect("--dir DIR"));
    std::fs::create_dir_all(&dir).expect("the peers' directory");
    let smoke = args.iter().any(|a| a == "--smoke");
    let scale = if smoke {
        40
    } else if args.iter().any(|a| a == "--quick") {
        2000
    } else {
        20_000
    };
    let mut results: Vec<Value> = std::fs::read(&results_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let mut rows = Vec::new();

    // In-memory.
    let mine = ours(
        "database: { type: in-memory }\ncache: { type: in-memory }",
        &dir,
    )
    .await;
    let theirs = Operator::new(services::Memory::default()).expect("OpenDAL memory");
    pair("memory", mine, theirs, scale * 5, &mut rows).await;

    // moka, beside our in-memory cache role, a TTL on every entry on both sides.
    let (mine, theirs) = (
        Arc::new(moka_peer::OurCache::open(&dir).await),
        Arc::new(moka_peer::Moka::new()),
    );
    workload::preload(mine.as_ref())
        .await
        .expect("preload ours");
    workload::preload(theirs.as_ref())
        .await
        .expect("preload moka");
    for (op, c, a, b) in workload::measure_pair(mine, theirs, scale * 5).await {
        let mut r = row("moka", op, c, a, b);
        r["backend"] = json!("moka");
        rows.push(r);
    }

    // PostgreSQL: OpenDAL needs its table (key text, value bytea); ours creates its own, in a
    // schema of its own, so that both start from empty tables (not the main benchmark's).
    if let Some(url) = value_of("--postgres") {
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        client
            .batch_execute("DROP TABLE IF EXISTS opendal_kv; DROP SCHEMA IF EXISTS peers CASCADE; CREATE TABLE opendal_kv (key TEXT PRIMARY KEY, value BYTEA NOT NULL)")
            .await
            .expect("OpenDAL's table");
        let mine = ours(&format!("database: {{ type: postgresql, url: '{url}', schema: peers, keyPrefix: 'peer:' }}\ncache: {{ type: in-memory }}"), &dir).await;
        let builder = services::Postgresql::default()
            .connection_string(&url)
            .table("opendal_kv")
            .key_field("key")
            .value_field("value");
        let theirs = Operator::new(builder).expect("OpenDAL PostgreSQL");
        pair("postgresql", mine, theirs, scale, &mut rows).await;
    } else {
        eprintln!("peers: no --postgres URL; PostgreSQL is left out");
    }

    // Redis.
    if let Some(url) = value_of("--redis") {
        let mine = ours(&format!("database: {{ type: redis, url: '{url}', keyPrefix: 'peer:' }}\ncache: {{ type: in-memory }}"), &dir).await;
        let endpoint = url.replacen("redis://", "tcp://", 1);
        let theirs = Operator::new(
            services::Redis::default()
                .endpoint(&endpoint)
                .root("/opendal/"),
        )
        .expect("OpenDAL Redis");
        pair("redis", mine, theirs, scale, &mut rows).await;
    } else {
        eprintln!("peers: no --redis URL; Redis is left out");
    }

    // redb: ours is the plugin, loaded as an application loads it.
    if let Some(plugin) = value_of("--redb-plugin") {
        let yaml = format!(
            "plugins: ['{plugin}']\ndatabase: {{ type: redb, options: {{ path: '{}' }} }}\ncache: {{ type: in-memory }}",
            dir.join("ours.redb").display()
        );
        let mine = ours(&yaml, &dir).await;
        let builder = services::Redb::default()
            .datadir(&dir.join("opendal.redb").display().to_string())
            .table("opendal");
        let theirs = Operator::new(builder).expect("OpenDAL redb");
        pair("redb", mine, theirs, scale, &mut rows).await;
    } else {
        eprintln!("peers: no --redb-plugin PATH; redb is left out");
    }

    // SQLite: OpenDAL here, ours from storage-bench's rows (same workload, same machine).
    let db = dir.join("opendal.db");
    let _ = std::fs::remove_file(&db);
    let url = format!("sqlite://{}?mode=rwc", db.display());
    {
        use sqlx::ConnectOptions;
        // WAL, as ours runs: the mode is kept in the file, so OpenDAL's connections use it too
        // (sqlx leaves a new file in rollback-journal mode). `synchronous` is FULL on both.
        let mut conn = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .expect("a SQLite URL")
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
            .connect()
            .await
            .expect("create OpenDAL's SQLite file");
        sqlx::query("CREATE TABLE opendal_kv (key TEXT PRIMARY KEY, value BLOB NOT NULL)")
            .execute(&mut conn)
            .await
            .expect("OpenDAL's table");
    }
    let builder = services::Sqlite::default()
        .connection_string(&url)
        .table("opendal_kv")
        .key_field("key")
        .value_field("value");
    let theirs = Arc::new(Dal(Operator::new(builder).expect("OpenDAL SQLite")));
    workload::preload(theirs.as_ref())
        .await
        .expect("preload OpenDAL SQLite");
    for (op, c, figure) in workload::measure_alone(theirs, scale).await {
        match our_sqlite(&results, op, c) {
            Some(mine) => rows.push(row("sqlite", op, c, mine, figure)),
            None => {
                eprintln!("peers: no `sqlite (peer workload)` row for {op} c={c} in the results")
            }
        }
    }

    if smoke {
        // Every service given must have produced every figure, each with a ratio.
        let mut services = vec!["memory", "moka", "redb"];
        services.extend(value_of("--postgres").map(|_| "postgresql"));
        services.extend(value_of("--redis").map(|_| "redis"));
        let expected = services.len() * workload::OPS.len() * workload::CONCURRENCIES.len();
        let complete = rows
            .iter()
            .filter(|r| {
                r["ratio"]
                    .as_f64()
                    .is_some_and(|x| x.is_finite() && x > 0.0)
            })
            .count();
        if complete != expected {
            eprintln!("peers: {complete} of {expected} rows with a ratio");
            std::process::exit(1);
        }
    }
    results.extend(rows);
    std::fs::write(
        &results_path,
        serde_json::to_string_pretty(&Value::Array(results)).expect("json"),
    )
    .expect("write the results");
}
