//! What the manager's cross-backend tests share: every built-in backend as a config block (an
//! in-memory store, a SQLite file, and a PostgreSQL and a Redis server started for the test),
//! and a cache and a database from two of them, in namespaces of the caller's own.
#![allow(dead_code)]

use std::sync::Arc;
use storage_core::{Cache, Database};
use storage_manager::StorageManager;
use storage_servers::{Postgres, Redis, RedisOptions, skip_or_fail};

/// Every built-in backend, as a block (`{}` stands for the role's own table or file).
pub struct Servers {
    _postgres: Option<Postgres>,
    _redis: Option<Redis>,
    pub blocks: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

pub fn servers(test: &str) -> Option<Servers> {
    let dir = tempfile::tempdir().unwrap();
    let mut blocks = vec![
        (
            "in-memory",
            "{ type: in-memory, store: coherence }".to_string(),
        ),
        (
            "sqlite",
            format!(
                "{{ type: sqlite, path: '{}' }}",
                dir.path().join("coherence.db").display()
            ),
        ),
    ];
    let postgres = match Postgres::start(&Default::default()) {
        Ok(pg) => {
            blocks.push((
                "postgresql",
                format!("{{ type: postgresql, url: '{}' }}", pg.url()),
            ));
            Some(pg)
        }
        Err(e) => {
            skip_or_fail(test, &format!("no PostgreSQL: {e}"));
            return None;
        }
    };
    let redis = match Redis::start(&RedisOptions::default()) {
        Ok(r) => {
            blocks.push(("redis", format!("{{ type: redis, url: '{}' }}", r.url())));
            Some(r)
        }
        Err(e) => {
            skip_or_fail(test, &format!("no Redis: {e}"));
            return None;
        }
    };
    Some(Servers {
        _postgres: postgres,
        _redis: redis,
        blocks,
        _dir: dir,
    })
}

/// The pair's cache and database, each in a namespace of this case's own.
pub async fn connect(
    cache: &str,
    database: &str,
    prefix: &str,
) -> (Arc<dyn Cache>, Arc<dyn Database>) {
    let with_prefix = |block: &str, role: &str| {
        format!(
            "{}, keyPrefix: '{prefix}{role}:', fallback: [] }}",
            block.trim_end_matches('}').trim_end()
        )
    };
    let yaml = format!(
        "cache: {}\ndatabase: {}\n",
        with_prefix(cache, "c"),
        with_prefix(database, "d")
    );
    let m = StorageManager::from_source(
        &storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref()).unwrap(),
    )
    .unwrap();
    let b = m.connect().await.unwrap();
    (b.cache, b.database)
}
