//! Redis Cluster: the client (redis-rs's async cluster connection, which keeps the slot map,
//! follows `MOVED`/`ASK` and refreshes the topology), the connection type both kinds of
//! server share, and the commands a cluster routes differently from one server (`SCAN`, which
//! has no key, and `mset`, which must not span slots).
//!
//! Not the operations themselves (those are in `backend`), and no slot map of our own: slots
//! are computed by redis-rs's [`Slot::for_key`] and commands are routed by its router.

use crate::config::RedisConfig;
use crate::core::{BATCH, Links, RedisBackend, Sent, redis_error};
use redis::RedisFuture;
use redis::aio::MultiplexedConnection;
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, Slot, SlotAddr};
use redis::{Cmd, Pipeline};
use std::collections::HashMap;
use storage_core::config::BackendSpec;
use storage_core::raw::Resend;
use storage_core::{Error, Result};

/// A connection to one server or to a cluster; commands are sent the same way to both.
pub enum Link {
    /// One server's multiplexed connection, from the pool.
    Node(MultiplexedConnection),
    /// One server's solo connection, driven by the caller's task (`solo.rs`).
    Solo(crate::solo::SoloCall),
    /// A cluster: routes each command to the node that owns its key's slot.
    Cluster(ClusterConnection),
}

impl redis::aio::ConnectionLike for Link {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, redis::Value> {
        match self {
            Link::Node(c) => c.req_packed_command(cmd),
            Link::Solo(c) => c.req_packed_command(cmd),
            Link::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Link::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Solo(c) => c.req_packed_commands(pipeline, offset, count),
            Link::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Link::Node(c) => c.get_db(),
            Link::Solo(c) => c.get_db(),
            Link::Cluster(c) => c.get_db(),
        }
    }
}

/// The two cluster connections of a backend. redis-rs retries a command inside the cluster
/// connection after a dropped connection too, which could apply an `RPUSH` twice; so commands
/// that must not be re-sent go through a connection with no retries of its own, and the
/// backend re-sends them only when the server's answer proves they did not run.
#[derive(Clone)]
pub struct ClusterLinks {
    /// For idempotent commands: follows redirections and reconnects by itself.
    pub(crate) retrying: ClusterConnection,
    /// For `append` and `trim`: every error comes back to the backend.
    pub(crate) once: ClusterConnection,
}

/// Connects to a cluster from its seed nodes, with the block's timeouts, TLS and credentials.
pub(crate) async fn connect(
    nodes: &[redis::ConnectionInfo],
    settings: &RedisConfig,
    spec: &BackendSpec,
) -> Result<ClusterLinks> {
    if settings.tls() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let build = |retries: u32| -> Result<ClusterClient> {
        let mut builder = ClusterClient::builder(nodes.to_vec())
            .connection_timeout(spec.common.connect_timeout)
            // As a single server's connections (`options::tcp_settings`): no Nagle delay,
            // keep-alive probes after a minute idle.
            .tcp_settings(crate::options::tcp_settings())
            .response_timeout(spec.common.operation_timeout)
            .retries(retries)
            .min_retry_wait(10)
            .max_retry_wait(spec.common.retry_delay.as_millis().max(10) as u64);
        if let Some(ca) = &settings.ca {
            let pem = std::fs::read(ca)
                .map_err(|e| Error::config(format!("cannot read CA file {}: {e}", ca.display())))?;
            builder = builder.certs(redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            });
        }
        builder.build().map_err(|e| {
            Error::config(format!(
                "{}: invalid Redis Cluster settings: {e}",
                spec.path
            ))
        })
    };
    let describe = spec.to_string();
    let limit = spec.common.connect_timeout.max(spec.common.acquire_timeout);
    let connect = |client: ClusterClient| {
        let describe = describe.clone();
        async move {
            tokio::time::timeout(limit, client.get_async_connection())
                .await
                .map_err(|_| Error::connect_timeout(&describe, limit))?
                .map_err(|e| redis_error(e, "connecting to the cluster", Sent::No))
        }
    };
    // Redirections and reconnects count as retries in redis-rs: give the retrying connection
    // enough to ride out a failover within the operation timeout.
    let retrying = connect(build(settings.max_retries_per_request.max(1) * 4)?).await?;
    let once = connect(build(0)?).await?;
    Ok(ClusterLinks { retrying, once })
}

impl RedisBackend {
    /// The cluster connections, or `None` on one server.
    fn cluster(&self) -> Result<Option<ClusterLinks>> {
        Ok(match self.links.get()? {
            Links::Cluster(c) => Some(c),
            Links::Node(..) => None,
        })
    }

    /// Where `SCAN` runs: the node of the namespace's slot when the namespace is one hash
    /// slot (the database role), else every primary. `None` on one server.
    async fn scan_routes(&self) -> Result<Option<Vec<RoutingInfo>>> {
        let Some(links) = self.cluster()? else {
            return Ok(None);
        };
        if self.hash_tagged {
            let route = Route::with_key(self.prefix.as_bytes(), SlotAddr::Master);
            return Ok(Some(vec![RoutingInfo::SingleNode(
                SingleNodeRoutingInfo::SpecificNode(route),
            )]));
        }
        let mut conn = links.retrying.clone();
        let reply = tokio::time::timeout(
            self.operation_timeout,
            conn.route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            ),
        )
        .await
        .map_err(|_| Error::timeout("reading the cluster's slots: no answer in time"))?
        .map_err(|e| redis_error(e, "reading the cluster's slots", Sent::Yes))?;
        let mut primaries = Vec::new();
        for (host, port) in primaries_of(&reply)? {
            if !primaries.contains(&(host.clone(), port)) {
                primaries.push((host, port));
            }
        }
        Ok(Some(
            primaries
                .into_iter()
                .map(|(host, port)| {
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress { host, port })
                })
                .collect(),
        ))
    }

    /// One `SCAN` step on `route` (or on the one server).
    pub(crate) async fn scan_step(
        &self,
        route: Option<&RoutingInfo>,
        cursor: u64,
        matcher: &str,
    ) -> Result<(u64, Vec<Vec<u8>>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(matcher)
            .arg("COUNT")
            .arg(BATCH);
        match route {
            None => self.query(Resend::Allowed, &cmd, "scanning keys").await,
            Some(route) => {
                self.with_conn(Resend::Allowed, "scanning keys", |link| {
                    let cmd = cmd.clone();
                    let route = route.clone();
                    async move {
                        // Routes are made only for a cluster; on one server, send plainly.
                        let v = match link {
                            Link::Cluster(mut c) => c.route_command(cmd, route).await?,
                            mut node => cmd.query_async(&mut node).await?,
                        };
                        Ok(redis::from_redis_value(v)?)
                    }
                })
                .await
            }
        }
    }

    /// The routes `scan` walks: one `None` for one server.
    pub(crate) async fn scan_targets(&self) -> Result<Vec<Option<RoutingInfo>>> {
        Ok(match self.scan_routes().await? {
            None => vec![None],
            Some(routes) => routes.into_iter().map(Some).collect(),
        })
    }

    /// Cache `mset` entries grouped by hash slot on a cluster (a pipeline must not span
    /// slots), in their order; one group on one server or in a hash-tagged namespace.
    pub(crate) fn slot_groups<T>(&self, entries: Vec<(String, T)>) -> Vec<Vec<(String, T)>> {
        if !self.is_cluster || self.hash_tagged {
            return vec![entries];
        }
        let mut index: HashMap<Slot, usize> = HashMap::new();
        let mut groups: Vec<Vec<(String, T)>> = Vec::new();
        for (key, value) in entries {
            let slot = Slot::for_key(self.key(&key).as_bytes());
            let i = *index.entry(slot).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            });
            groups[i].push((key, value));
        }
        groups
    }
}

/// The `(host, port)` of each slot range's primary in a `CLUSTER SLOTS` reply.
fn primaries_of(reply: &redis::Value) -> Result<Vec<(String, u16)>> {
    use redis::Value as V;
    let bad = || Error::other("the cluster's CLUSTER SLOTS reply is not in the documented shape");
    let V::Array(ranges) = reply else {
        return Err(bad());
    };
    let mut out = Vec::new();
    for range in ranges {
        let V::Array(fields) = range else {
            return Err(bad());
        };
        let Some(V::Array(primary)) = fields.get(2) else {
            return Err(bad());
        };
        let host = match primary.first() {
            Some(V::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(V::SimpleString(s)) => s.clone(),
            _ => return Err(bad()),
        };
        let port = match primary.get(1) {
            Some(V::Int(p)) => u16::try_from(*p).map_err(|_| bad())?,
            _ => return Err(bad()),
        };
        out.push((host, port));
    }
    Ok(out)
}
