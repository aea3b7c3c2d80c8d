//! What the Redis integration tests share: a private server (or a loud skip without
//! `redis-server`), and the database or cache role opened on it through a registry of the
//! Redis and in-memory backends. Not a test file of its own.

#![allow(dead_code)] // each test file uses what it needs

use std::sync::Arc;
use storage_core::config::StorageConfig;
use storage_core::{Cache, Database, Registry};
use storage_servers::{Redis, RedisCluster, RedisOptions, find_redis_server, skip_or_fail};

/// A private `redis-server` for `test`, or `None` after saying why (failing under CI).
pub fn private(test: &str) -> Option<Redis> {
    if find_redis_server().is_none() {
        skip_or_fail(test, "redis-server not found");
        return None;
    }
    Some(Redis::start(&Default::default()).expect("start a private redis-server"))
}

/// A private Redis Cluster for `test` (six nodes), or `None` after saying why (failing under
/// CI).
pub fn private_cluster(test: &str, options: &RedisOptions) -> Option<RedisCluster> {
    if find_redis_server().is_none() {
        skip_or_fail(test, "redis-server not found");
        return None;
    }
    Some(RedisCluster::start(options).expect("start a private Redis Cluster"))
}

/// A registry of the Redis and in-memory backends (the other role of a test's configuration
/// is in-memory), as every test file builds its own.
pub fn registry() -> Registry {
    let mut registry = Registry::new();
    registry
        .register(Arc::new(storage_redis::RedisFactory::new()))
        .unwrap();
    registry
        .register(Arc::new(storage_memory::MemoryFactory::new()))
        .unwrap();
    registry
}

/// `yaml` resolved against [`registry`].
fn resolved(yaml: &str) -> (Registry, StorageConfig) {
    let registry = registry();
    let config = storage_manager::config_file::from_yaml_str(yaml, ".".as_ref())
        .unwrap()
        .resolve(&registry)
        .unwrap();
    (registry, config)
}

/// The database role on `url`, with `extra` fields in its block.
pub async fn open(url: &str, extra: &str) -> Arc<dyn Database> {
    let (registry, config) = resolved(&format!(
        "database: {{ type: redis, url: '{url}', {extra} }}\ncache: {{ type: in-memory }}"
    ));
    registry
        .open_database(&config.database.primary)
        .await
        .unwrap()
}

/// The cache role on `url`, with `extra` fields in its block.
pub async fn open_cache(url: &str, extra: &str) -> Arc<dyn Cache> {
    let (registry, config) = resolved(&format!(
        "cache: {{ type: redis, url: '{url}', {extra} }}\ndatabase: {{ type: in-memory }}"
    ));
    registry.open_cache(&config.cache.primary).await.unwrap()
}

/// A plain connection of the driver's own to `url`, for looking behind the backend.
pub async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}
