//! The TCP settings of a backend's connections, read back from the kernel: every connection
//! this process holds to a private server (the pool's and the solo one) or to a private
//! cluster's nodes has keep-alive on, so its keep-alive timer runs while it idles
//! (`/proc/net/tcp`), and `options.soloConnection: false` holds one connection fewer. Its own
//! test binary, so that no other test's connection is counted. Not the connections' behaviour
//! (`tests/redis.rs`, `tests/solo.rs`, `tests/cluster.rs`).

use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

mod common;
use common::{open, open_cache, private, private_cluster};

/// The inodes of the sockets this process holds open.
fn own_socket_inodes() -> HashSet<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_string(),
            )
        })
        .collect()
}

/// The timer field (`tr`: 0 none, 1 retransmit, 2 keep-alive, ...) of each established IPv4
/// connection of this process to `port` on the loopback.
fn timers_of_connections_to(port: u16) -> Vec<String> {
    let inodes = own_socket_inodes();
    let remote = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .unwrap()
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split_whitespace().collect();
            let (rem, state, timer, inode) = (cells[2], cells[3], cells[5], cells[9]);
            (rem == remote && state == "01" && inodes.contains(inode))
                .then(|| timer.split(':').next().unwrap_or("").to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_to_the_server_keeps_alive() {
    let Some(server) = private("every_connection_to_the_server_keeps_alive") else {
        return;
    };
    let db = open(&server.url(), "keyPrefix: 'tcp:'").await;
    db.set("k", &json!(1)).await.unwrap();
    // Operations at once, so that the pool serves too (the solo connection takes one alone).
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.get("k").await.unwrap() })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), Some(json!(1)));
    }
    assert_idle_connections_keep_alive(&[server.port()], 2, "the pool's and the solo connection")
        .await;
}

/// Once idle (every connection's last segment acknowledged), this process holds at least
/// `expected` connections to `ports`, each with its keep-alive timer running.
async fn assert_idle_connections_keep_alive(ports: &[u16], expected: usize, what: &str) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    let timers: Vec<String> = ports
        .iter()
        .flat_map(|&port| timers_of_connections_to(port))
        .collect();
    assert!(
        timers.len() >= expected,
        "expected {what}, found {timers:?}"
    );
    assert!(
        timers.iter().all(|t| t == "02"),
        "a connection without keep-alive (timers {timers:?}; 02 is keep-alive)"
    );
}

/// A cluster's connections, one per node the cache's keys reached (its keys spread over every
/// primary), have keep-alive on as a single server's do: redis-rs's cluster client sets neither
/// it nor `TCP_NODELAY` by default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_connection_to_a_cluster_keeps_alive() {
    let test = "every_connection_to_a_cluster_keeps_alive";
    let Some(cluster) = private_cluster(test, &Default::default()) else {
        return;
    };
    let cache = open_cache(&cluster.url(), "cluster: true, keyPrefix: 'tcp:'").await;
    for i in 0..64 {
        cache.set(&format!("k{i}"), &json!(i), None).await.unwrap();
    }
    assert_idle_connections_keep_alive(&cluster.ports(), 3, "a connection to each primary").await;
}

/// `options.soloConnection: false` keeps the backend to its pool: the same sequential work
/// holds one connection to the server fewer than with the solo connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_solo_connection_one_connection_fewer() {
    let test = "without_the_solo_connection_one_connection_fewer";
    let (Some(with), Some(without)) = (private(test), private(test)) else {
        return;
    };
    let mut held = Vec::new();
    for (server, extra) in [
        (&with, "keyPrefix: 's:'"),
        (
            &without,
            "keyPrefix: 's:', options: { soloConnection: false }",
        ),
    ] {
        let db = open(&server.url(), extra).await;
        for i in 0..20 {
            db.set(&format!("k{i}"), &json!(i)).await.unwrap();
            assert_eq!(db.get(&format!("k{i}")).await.unwrap(), Some(json!(i)));
        }
        held.push(timers_of_connections_to(server.port()).len());
    }
    assert_eq!(
        held[0],
        held[1] + 1,
        "connections held with and without the solo connection: {held:?}"
    );
}
