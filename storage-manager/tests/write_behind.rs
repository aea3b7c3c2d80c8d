//! Write-behind loses nothing silently, against a real PostgreSQL that refuses some writes (a
//! trigger raises `check_violation` for keys under `refused:`, as a read-only or constrained
//! server would): refused writes stay reported until retried or acknowledged, the cache is
//! written only once the queue accepted a write, and shutdown's report misses no write.

use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage_core::{Cache, Database};
use storage_manager::{CacheAside, CacheAsideOptions, StorageManager};
use storage_servers::{Postgres, find_postgres_bin, skip_or_fail};

struct Refusing {
    _server: Option<Postgres>,
    psql: PathBuf,
    url: String,
    schema: String,
    cache: Arc<dyn Cache>,
    database: Arc<dyn Database>,
}

impl Refusing {
    fn sql(&self, sql: &str) {
        let out = std::process::Command::new(&self.psql)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                &self.url,
                "-c",
                sql,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn refuse(&self, on: bool) {
        let s = &self.schema;
        if on {
            self.sql(&format!(
                "CREATE OR REPLACE FUNCTION {s}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.key LIKE 'refused:%' THEN RAISE EXCEPTION 'this server refuses %', NEW.key USING ERRCODE = 'check_violation'; END IF; RETURN NEW; END $$; CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {s}.storage_kv FOR EACH ROW EXECUTE FUNCTION {s}.refuse();"
            ));
        } else {
            self.sql(&format!("DROP TRIGGER refuse ON {s}.storage_kv"));
        }
    }
}

async fn refusing(test: &str) -> Option<Refusing> {
    let Some(bin) = find_postgres_bin() else {
        skip_or_fail(test, "no PostgreSQL");
        return None;
    };
    let (server, url) = match std::env::var("STORAGE_TEST_POSTGRES_URL") {
        Ok(url) => (None, url),
        Err(_) => {
            let pg = Postgres::start(&Default::default()).unwrap();
            let url = pg.url();
            (Some(pg), url)
        }
    };
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let schema = format!(
        "wb_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let yaml = format!(
        "cache: {{ type: in-memory }}\ndatabase: {{ type: postgres, url: '{url}', schema: {schema}, fallback: [] }}\n"
    );
    let m = StorageManager::from_source(
        &storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref()).unwrap(),
    )
    .unwrap();
    let b = m.connect().await.unwrap();
    let r = Refusing {
        _server: server,
        psql: bin.join("psql"),
        url,
        schema,
        cache: b.cache,
        database: b.database,
    };
    r.refuse(true);
    Some(r)
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_stays_reported_until_retried_or_acknowledged() {
    let Some(r) = refusing("a_refused_write_stays_reported").await else {
        return;
    };
    let layer = CacheAside::new(
        r.cache.clone(),
        r.database.clone(),
        CacheAsideOptions::with_capacity(8),
    );
    layer.set_behind("refused:1", &json!(1)).await.unwrap();
    layer.set_behind("ok:1", &json!(1)).await.unwrap();
    until("the queue to drain", || {
        let s = layer.stats();
        s.write_behind_pending == 0 && s.write_behind_failed == 1
    })
    .await;
    let failed = layer.failed_writes();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!((failed[0].key.as_str(), failed[0].op), ("refused:1", "set"));
    assert!(failed[0].error.contains("refuses"), "{failed:?}");
    // Readers do not see a value the database refused (the cache holds the invalidation
    // marker in its place); the accepted write landed.
    assert_ne!(r.cache.get("refused:1").await.unwrap(), Some(json!(1)));
    assert_eq!(layer.get("refused:1").await.unwrap(), None);
    assert_eq!(r.database.get("ok:1").await.unwrap(), Some(json!(1)));

    // Retried once the server accepts it: written, and no longer reported.
    r.refuse(false);
    assert_eq!(layer.retry_failed().await.unwrap(), 1);
    until("the retry", || layer.stats().write_behind_pending == 0).await;
    assert!(layer.failed_writes().is_empty());
    assert_eq!(r.database.get("refused:1").await.unwrap(), Some(json!(1)));

    // Refused again, then acknowledged by the application: gone from the report.
    r.refuse(true);
    layer.delete_behind("ok:1").await.unwrap();
    layer.set_behind("refused:2", &json!(2)).await.unwrap();
    until("the refusal", || layer.stats().write_behind_failed == 1).await;
    // Shutdown names it, with its error, until it is acknowledged.
    let report = layer.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.unwritten, vec!["refused:2".to_string()]);
    assert_eq!(report.failed[0].key, "refused:2");
    assert_eq!(layer.acknowledge_failed().len(), 1);
    assert!(layer.failed_writes().is_empty());
    assert_eq!(r.database.get("ok:1").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_is_written_only_once_the_queue_accepted_the_write() {
    let Some(r) = refusing("the_cache_is_written_only_once_the_queue_accepted").await else {
        return;
    };
    // One slot of queue and one of failed list: two refusals stall the worker.
    let options = CacheAsideOptions {
        write_behind_capacity: 1,
        enqueue_timeout: Duration::from_millis(300),
        ..CacheAsideOptions::default()
    };
    let layer = CacheAside::new(r.cache.clone(), r.database.clone(), options);
    layer.set_behind("refused:a", &json!(1)).await.unwrap();
    until("the first refusal", || {
        layer.stats().write_behind_failed == 1
    })
    .await;
    layer.set_behind("refused:b", &json!(2)).await.unwrap();
    let e = layer.set_behind("fresh", &json!(3)).await.unwrap_err();
    assert_eq!(e.kind(), storage_core::ErrorKind::Timeout, "{e}");
    // The caller got an error, and no reader sees the value.
    assert_eq!(r.cache.get("fresh").await.unwrap(), None);
    // Both refusals are in the report: one failed, one still queued behind the full list.
    let report = layer.shutdown(Duration::from_millis(300)).await;
    assert_eq!(
        report.unwritten,
        vec!["refused:a".to_string(), "refused:b".to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_accepted_write_is_written_or_reported_across_a_shutdown() {
    let Some(r) = refusing("every_accepted_write_is_written_or_reported").await else {
        return;
    };
    let layer = Arc::new(CacheAside::new(
        r.cache.clone(),
        r.database.clone(),
        CacheAsideOptions::with_capacity(64),
    ));
    let mut writers = Vec::new();
    // Some writes surely accepted before the race, then 200 racing the shutdown.
    for i in 0..20 {
        let key = format!("race:early:{i}");
        layer.set_behind(&key, &json!(i)).await.unwrap();
        writers.push(tokio::spawn(async move { Some(key) }));
    }
    for i in 0..200 {
        let layer = layer.clone();
        writers.push(tokio::spawn(async move {
            let key = format!("race:{i}");
            layer.set_behind(&key, &json!(i)).await.ok().map(|_| key)
        }));
        if i == 100 {
            tokio::task::yield_now().await;
        }
    }
    let report = layer.shutdown(Duration::from_millis(200)).await;
    let mut accepted = 0;
    for w in writers {
        if let Some(key) = w.await.unwrap() {
            accepted += 1;
            let written = r.database.get(&key).await.unwrap().is_some();
            assert!(
                written || report.unwritten.contains(&key),
                "{key} was accepted, is not in the database, and the report does not name it"
            );
        }
    }
    assert!(accepted >= 20);
}
