//! Wrong credentials are a configuration mistake: the manager neither retries them nor walks
//! the fallback chain past them (a fallback would hide the mistake behind a degraded role).

use std::time::{Duration, Instant};
use storage_core::ErrorKind;
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
    let m = StorageManager::from_source(
        &storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref()).unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    let e = m
        .connect_cache()
        .await
        .expect_err("no fallback past wrong credentials");
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(e.to_string().contains("authentication failed"), "{e}");
    assert!(!e.to_string().contains("wrong-pw-7"), "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "retried: {:?}",
        started.elapsed()
    );
}

/// Regression: against a PostgreSQL server that asks for a password, a URL without one failed
/// in the driver as "invalid configuration", and the role fell back to SQLite, degraded. A
/// missing password is a credential error like a wrong one: no fallback, no retry, the
/// configuration is what is wrong. The right password connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_postgres_password_stops_the_fallback_walk() {
    if storage_servers::find_postgres_bin().is_none() {
        return skip_or_fail(
            "a_missing_postgres_password_stops_the_fallback_walk",
            "PostgreSQL server binaries not found",
        );
    }
    let server = storage_servers::Postgres::start(&storage_servers::PostgresOptions {
        password: Some("pg-right-pw".into()),
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = |userinfo: &str| {
        format!(
            "database: {{ type: postgres, url: 'postgresql://{userinfo}@127.0.0.1:{}/postgres', maxRetries: 3, retryDelayMillis: 500, fallback: [sqlite] }}\n",
            server.port()
        )
    };
    for (userinfo, says) in [
        (
            "postgres",
            "the server asks for a password and the configuration gives none",
        ),
        ("postgres:pg-wrong-pw", "authentication failed"),
    ] {
        let m = StorageManager::from_source(
            &storage_manager::config_file::from_yaml_str(&config(userinfo), dir.path()).unwrap(),
        )
        .unwrap();
        let started = Instant::now();
        let e = m
            .connect_database()
            .await
            .expect_err("no fallback past missing or wrong credentials");
        assert_eq!(e.kind(), ErrorKind::Authentication, "{userinfo}: {e}");
        assert!(e.is_authentication(), "{userinfo}: {e}");
        assert!(e.to_string().contains(says), "{userinfo}: {e}");
        assert!(!e.to_string().contains("pg-wrong-pw"), "{e}");
        assert!(
            started.elapsed() < Duration::from_millis(900),
            "{userinfo}: retried: {:?}",
            started.elapsed()
        );
    }
    assert!(
        !dir.path().join(".storage").exists(),
        "the SQLite fallback was opened"
    );
    let m = StorageManager::from_source(
        &storage_manager::config_file::from_yaml_str(&config("postgres:pg-right-pw"), dir.path())
            .unwrap(),
    )
    .unwrap();
    let (db, status) = m.connect_database().await.unwrap();
    assert_eq!(status.serving.as_deref(), Some("postgresql"), "{status:?}");
    db.set("k", &serde_json::json!(1)).await.unwrap();
}

/// Regression: against a Redis server with `requirepass`, a URL without a password connected
/// "not degraded", and then every operation failed with an authentication error. Connecting
/// proves the credentials, their absence included: an authentication error at once, with no
/// fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_redis_password_is_noticed_at_connect() {
    if find_redis_server().is_none() {
        return skip_or_fail(
            "a_missing_redis_password_is_noticed_at_connect",
            "redis-server not found",
        );
    }
    let server = Redis::start(&RedisOptions {
        password: Some("redis-right-pw".into()),
        ..Default::default()
    })
    .unwrap();
    for role in ["cache", "database"] {
        let yaml = format!(
            "{role}: {{ type: redis, url: 'redis://127.0.0.1:{}', maxRetries: 3, retryDelayMillis: 500, fallback: [in-memory] }}\n",
            server.port()
        );
        let m = StorageManager::from_source(
            &storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref()).unwrap(),
        )
        .unwrap();
        let e = if role == "cache" {
            m.connect_cache().await.map(drop)
        } else {
            m.connect_database().await.map(drop)
        }
        .expect_err("a missing password must fail the connect");
        assert_eq!(e.kind(), ErrorKind::Authentication, "{role}: {e}");
        assert!(e.is_authentication(), "{role}: {e}");
        assert!(
            e.to_string()
                .contains("the server asks for a password and the configuration gives none"),
            "{role}: {e}"
        );
    }
    let yaml = format!(
        "cache: {{ type: redis, url: 'redis://:redis-right-pw@127.0.0.1:{}' }}\n",
        server.port()
    );
    let m = StorageManager::from_source(
        &storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref()).unwrap(),
    )
    .unwrap();
    let (cache, status) = m.connect_cache().await.unwrap();
    assert_eq!(status.serving.as_deref(), Some("redis"), "{status:?}");
    cache.set("k", &serde_json::json!(1), None).await.unwrap();
}

/// Secrets from files: `passwordFile` and `urlFile` in a block, and `$NAME` falling back to the
/// file `$NAME_FILE` names (the container convention). The right secret connects; a wrong one
/// is an authentication error that never quotes it; giving both forms, a missing file and an
/// empty one are errors naming the field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_files() {
    if find_redis_server().is_none() {
        return skip_or_fail("secrets_come_from_files", "redis-server not found");
    }
    let server = Redis::start(&RedisOptions {
        password: Some("file-pw-31".into()),
        ..Default::default()
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path.display().to_string()
    };
    let right = write("right", "file-pw-31\n");
    write("wrong", "not-the-pw-77\n");
    let url = write(
        "url",
        &format!("redis://:file-pw-31@127.0.0.1:{}\n", server.port()),
    );
    let empty = write("empty", "\n");
    let port = server.port();
    let env = move |name: &str| match name {
        "REDIS_PW_FILE" => Some(right.clone()),
        _ => None,
    };
    let connect = |yaml: String, env: &dyn Fn(&str) -> Option<String>| {
        let source = storage_manager::config_file::from_yaml_str_with_env(&yaml, dir.path(), env);
        async move {
            let m = StorageManager::from_source(&source?)?;
            m.connect_cache().await.map(drop)
        }
    };
    let none = |_: &str| None;
    let block = |fields: &str| {
        format!("cache: {{ type: redis, host: 127.0.0.1, port: {port}, {fields}, fallback: [] }}\n")
    };
    connect(block("passwordFile: right"), &none)
        .await
        .expect("passwordFile");
    connect(
        format!("cache: {{ type: redis, urlFile: {url}, fallback: [] }}\n"),
        &none,
    )
    .await
    .expect("urlFile");
    connect(block("password: $REDIS_PW"), &env)
        .await
        .expect("$REDIS_PW_FILE");

    let e = connect(block("passwordFile: wrong"), &none)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(!e.to_string().contains("not-the-pw-77"), "{e}");
    for (fields, want) in [
        (
            "password: x, passwordFile: right",
            "storage.cache.passwordFile: give password or passwordFile, not both",
        ),
        (
            "passwordFile: missing",
            "storage.cache.passwordFile: cannot read the secret file",
        ),
        (
            &*format!("passwordFile: {empty}"),
            "storage.cache.passwordFile: the secret file",
        ),
        (
            "password: $UNSET_PW",
            "environment variable UNSET_PW is not set",
        ),
    ] {
        let e = connect(block(fields), &none).await.unwrap_err();
        assert!(e.to_string().contains(want), "{fields}: {e}");
        assert!(!e.to_string().contains("file-pw-31"), "{fields}: {e}");
    }
}
