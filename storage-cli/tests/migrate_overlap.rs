//! `storage migrate` refuses a source and a target that can see each other's keys, before it
//! reads or writes anything, however the two are spelled; the source stays intact.

mod support;
use support::{migrate, write_config};

use serde_json::json;
use std::path::Path;
use storage_manager::StorageManager;
use storage_servers::{Postgres, Redis, find_postgres_bin, find_redis_server, skip_or_fail};

async fn seed(config: &Path) {
    let m = StorageManager::from_file(config)
        .unwrap()
        .without_fallback();
    let db = m.connect_database().await.unwrap().0;
    for i in 0..20 {
        db.set(&format!("k{i}"), &json!(i)).await.unwrap();
    }
    db.append("history", &json!("hello")).await.unwrap();
    m.disconnect().await.unwrap();
}

async fn count(config: &Path) -> usize {
    let m = StorageManager::from_file(config)
        .unwrap()
        .without_fallback();
    let db = m.connect_database().await.unwrap().0;
    let n = db.keys(None).await.unwrap().len();
    m.disconnect().await.unwrap();
    n
}

/// Runs both directions, with and without --overwrite: each is refused, naming both sides, and
/// the source still holds its 21 keys.
async fn assert_refused(a: &Path, b: &Path) {
    seed(a).await;
    for (from, to) in [(a, b), (b, a)] {
        for extra in [&["--overwrite"][..], &[][..]] {
            let o = migrate(from, to, extra);
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(
                o.status.code(),
                Some(2),
                "{from:?} -> {to:?} {extra:?}: {err}"
            );
            assert!(err.contains("reach the same data"), "{err}");
            assert!(err.contains(&from.display().to_string()), "{err}");
            assert!(err.contains(&to.display().to_string()), "{err}");
            // The refusal never suggests --overwrite: overwriting would destroy the source.
            assert!(!err.contains("use --overwrite"), "{err}");
            assert!(!String::from_utf8_lossy(&o.stdout).contains("identical"));
        }
    }
    assert_eq!(count(a).await, 21, "the source is intact");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_same_file_however_spelled_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = write_config(dir.path(), "a.yml", "{ type: sqlite, path: data/app.db }");
    // The same file and config: the case that used to empty the store.
    assert_refused(&a, &a).await;
    // Relative to one file, absolute in another directory's file.
    let abs = dir.path().join("data/app.db");
    let b = write_config(
        &dir.path().join("other"),
        "b.yml",
        &format!("{{ type: sqlite, path: '{}' }}", abs.display()),
    );
    assert_refused(&a, &b).await;
    // A different namespace in the same file is allowed: SQLite namespaces are exact.
    let c = write_config(
        dir.path(),
        "c.yml",
        "{ type: sqlite, path: data/app.db, keyPrefix: 'copy:' }",
    );
    let o = migrate(&a, &c, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("verified 21 of 21 keys"), "{out}");
    // Every value was written anew: its version on the target is not the source's.
    assert!(out.contains("versions restart on the target"), "{out}");
    assert_eq!(count(&a).await, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_same_database_as_url_and_as_host_fields_is_refused() {
    let (_guard, url) = match std::env::var("STORAGE_TEST_POSTGRES_URL") {
        Ok(url) => (None, url),
        Err(_) if find_postgres_bin().is_some() => {
            let pg = Postgres::start(&Default::default()).unwrap();
            let url = pg.url();
            (Some(pg), url)
        }
        Err(_) => {
            return skip_or_fail(
                "postgres_same_database_as_url_and_as_host_fields_is_refused",
                "no PostgreSQL",
            );
        }
    };
    // postgresql://user@127.0.0.1:PORT/db -> its port and database, for the host-field spelling.
    let after_at = url.rsplit('@').next().unwrap();
    let (hostport, db) = after_at.split_once('/').unwrap();
    let db = db.split('?').next().unwrap();
    let port = hostport.rsplit(':').next().unwrap();
    let prefix = format!("overlap{}:", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let a = write_config(
        dir.path(),
        "a.yml",
        &format!("{{ type: postgresql, url: '{url}', keyPrefix: '{prefix}' }}"),
    );
    let b = write_config(
        dir.path(),
        "b.yml",
        &format!(
            "{{ type: postgres, host: localhost, port: {port}, database: {db}, user: postgres, keyPrefix: '{prefix}' }}"
        ),
    );
    assert_refused(&a, &b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_nested_prefixes_are_refused() {
    let (_guard, url) = match std::env::var("STORAGE_TEST_REDIS_URL") {
        Ok(url) => (None, url),
        Err(_) if find_redis_server().is_some() => {
            let r = Redis::start(&Default::default()).unwrap();
            let url = r.url();
            (Some(r), url)
        }
        Err(_) => {
            return skip_or_fail(
                "redis_nested_prefixes_are_refused",
                "redis-server not found",
            );
        }
    };
    let base = format!("nest{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let a = write_config(
        dir.path(),
        "a.yml",
        &format!("{{ type: redis, url: '{url}', keyPrefix: '{base}:' }}"),
    );
    // The target's `clear()` would take the source with it.
    let localhost = url.replace("127.0.0.1", "localhost");
    let b = write_config(
        dir.path(),
        "b.yml",
        &format!("{{ type: redis, url: '{localhost}', keyPrefix: '{base}' }}"),
    );
    assert_refused(&a, &b).await;
}
