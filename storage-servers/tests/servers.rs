//! Each kind of server starts, answers its own client, and stops.

use std::process::Command;
use storage_servers::{Postgres, Redis, find_postgres_bin, find_redis_server, skip_or_fail};

#[test]
fn postgres_starts_answers_psql_and_stops() {
    if find_postgres_bin().is_none() {
        return skip_or_fail(
            "postgres_starts_answers_psql_and_stops",
            "PostgreSQL binaries not found",
        );
    }
    let mut pg = Postgres::start(&Default::default()).expect("start postgres");
    let psql = pg.bin_dir().join("psql");
    let out = Command::new(&psql)
        .args(["-X", "-tA", "-d", &pg.url(), "-c", "SELECT 40 + 2"])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "42");
    let port = pg.port();
    pg.stop();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening"
    );
    pg.restart().expect("restart postgres");
    let out = Command::new(&psql)
        .args(["-X", "-tA", "-d", &pg.url(), "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(out.status.success());
}

#[test]
fn redis_starts_answers_redis_cli_and_stops() {
    if find_redis_server().is_none() {
        return skip_or_fail(
            "redis_starts_answers_redis_cli_and_stops",
            "redis-server not found",
        );
    }
    let mut redis = Redis::start(&Default::default()).expect("start redis");
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-p", &redis.port().to_string()])
            .args(args)
            .output()
            .expect("run redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "k", "v"]), "OK");
    assert_eq!(cli(&["GET", "k"]), "v");
    let port = redis.port();
    redis.kill();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening"
    );
    redis.restart().expect("restart redis");
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string(), "PING"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "PONG");
}
