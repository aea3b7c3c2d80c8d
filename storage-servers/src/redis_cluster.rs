//! A throwaway Redis Cluster: six `redis-server` processes in cluster mode on loopback (three
//! primaries, three replicas), joined by `redis-cli --cluster create`, plain or TLS. Stopped
//! when dropped. Not a cluster manager: no resharding, no adding nodes.

use crate::{Redis, RedisOptions};
use std::io;
use std::process::{Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// A private Redis Cluster of three primaries with one replica each.
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<Redis>,
    options: RedisOptions,
}

/// The node timeout of the test clusters: a failed primary is replaced after about this long.
pub const NODE_TIMEOUT: Duration = Duration::from_millis(2000);

impl RedisCluster {
    /// Starts six nodes, creates the cluster and waits until every node reports
    /// `cluster_state:ok` and every replica is in sync. `options.tls` and `options.password`
    /// apply to every node.
    pub fn start(options: &RedisOptions) -> io::Result<RedisCluster> {
        let options = RedisOptions {
            cluster_node_timeout: Some(NODE_TIMEOUT),
            ..options.clone()
        };
        let mut nodes = Vec::with_capacity(6);
        for _ in 0..6 {
            nodes.push(Redis::start(&options)?);
        }
        let cluster = RedisCluster { nodes, options };
        let addrs: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = cluster
            .cli(cluster.nodes[0].port())
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "redis-cli --cluster create failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        cluster.wait_healthy(Duration::from_secs(60))?;
        Ok(cluster)
    }

    /// A `redis-cli` command aimed at the node on `port`, with the cluster's TLS and password.
    fn cli(&self, port: u16) -> Command {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
        if let Some(tls) = &self.options.tls {
            cmd.arg("--tls").arg("--cacert").arg(&tls.ca);
        }
        if let Some(pw) = &self.options.password {
            cmd.args(["-a", pw, "--no-auth-warning"]);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs one command on a node; its output, or `None` if the node does not answer.
    fn ask(&self, port: u16, args: &[&str]) -> Option<String> {
        let out = self.cli(port).args(args).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Waits until every running node reports `cluster_state:ok`, every slot is served, and
    /// every running replica's link to its primary is up.
    pub fn wait_healthy(&self, limit: Duration) -> io::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.healthy() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the Redis Cluster did not become healthy",
                ));
            }
            sleep(Duration::from_millis(100));
        }
    }

    fn healthy(&self) -> bool {
        self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
            let Some(info) = self.ask(n.port(), &["cluster", "info"]) else {
                return false;
            };
            let Some(repl) = self.ask(n.port(), &["info", "replication"]) else {
                return false;
            };
            info.contains("cluster_state:ok")
                && info.contains("cluster_slots_ok:16384")
                && (repl.contains("role:master") || repl.contains("master_link_status:up"))
        })
    }

    /// A seed URL (`redis://` or `rediss://`) of the first running node.
    pub fn url(&self) -> String {
        let node = self
            .nodes
            .iter()
            .find(|n| n.child.is_some())
            .unwrap_or(&self.nodes[0]);
        node.url()
    }

    /// Every node's port.
    pub fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|n| n.port()).collect()
    }

    /// Every node's URL, as `nodes:` takes them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }

    /// The nodes' indices that serve slots as primaries now, by each node's own `ROLE`.
    pub fn primaries(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].child.is_some()
                    && self
                        .ask(self.nodes[i].port(), &["role"])
                        .is_some_and(|r| r.lines().next() == Some("master"))
            })
            .collect()
    }

    /// The index of the node that serves `key`'s slot as primary now, by `CLUSTER KEYSLOT`
    /// and `CLUSTER NODES` as a running node sees them.
    pub fn primary_of(&self, key: &str) -> Option<usize> {
        let seed = self.nodes.iter().find(|n| n.child.is_some())?.port();
        let slot: u16 = self
            .ask(seed, &["cluster", "keyslot", key])?
            .trim()
            .parse()
            .ok()?;
        let port = owner(&self.ask(seed, &["cluster", "nodes"])?, slot)?;
        self.nodes.iter().position(|n| n.port() == port)
    }

    /// Kills node `i` at once (SIGKILL), as a crash would.
    pub fn kill(&mut self, i: usize) {
        self.nodes[i].kill();
    }

    /// Starts a killed node again on its port; it rejoins from its `nodes.conf` (as a replica
    /// when its replica was promoted meanwhile).
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        self.nodes[i].restart()
    }

    /// The node at index `i`.
    pub fn node(&self, i: usize) -> &Redis {
        &self.nodes[i]
    }
}

/// The port of the primary serving `slot` in a `CLUSTER NODES` reply: one line per node,
/// `id host:port@bus flags primary-id ping pong epoch link slot-range...`.
fn owner(nodes: &str, slot: u16) -> Option<u16> {
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let flags = fields.get(2)?;
        if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
            return None;
        }
        let serves = fields.iter().skip(8).any(|range| {
            let mut ends = range.splitn(2, '-').map(|n| n.parse::<u16>());
            match (ends.next(), ends.next()) {
                (Some(Ok(a)), Some(Ok(b))) => a <= slot && slot <= b,
                (Some(Ok(a)), None) => a == slot,
                _ => false,
            }
        });
        let addr = fields.get(1)?.split('@').next()?;
        serves.then(|| addr.rsplit(':').next()?.parse().ok())?
    })
}
