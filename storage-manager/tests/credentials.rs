//! Wrong credentials are a configuration mistake: the manager neither retries them nor walks
//! the fallback chain past them (a fallback would hide the mistake behind a degraded role).

use std::time::{Duration, Instant};
use storage_core::ErrorKind;
use storage_core::config::ConfigSource;
use storage_manager::StorageManager;
use storage_servers::{Redis, RedisOptions, find_redis_server, skip_or_fail};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_stops_the_fallback_walk() {
    if find_redis_server().is_none() {
        return skip_or_fail(
            "wrong_password_stops_the_fallback_walk",
            "redis-server not found",
        );
    }
    let server = Redis::start(&RedisOptions {
        password: Some("right-pw".into()),
        ..Default::default()
    })
    .unwrap();
    let yaml = format!(
        "cache: {{ type: redis, host: 127.0.0.1, port: {}, password: wrong-pw-7, maxRetries: 3, retryDelayMillis: 500, fallback: [in-memory] }}\n",
        server.port()
    );
    let m = StorageManager::from_source(&ConfigSource::from_yaml_str(&yaml, ".".as_ref()).unwrap())
        .unwrap();
    let started = Instant::now();
    let e = m
        .connect_cache()
        .await
        .expect_err("no fallback past wrong credentials");
    assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
    assert!(e.to_string().contains("authentication failed"), "{e}");
    assert!(!e.to_string().contains("wrong-pw-7"), "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "retried: {:?}",
        started.elapsed()
    );
}
