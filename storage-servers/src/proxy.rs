//! A loopback TCP proxy that a test puts between a client and its server, and breaks on
//! demand: refuse, black hole, delay, drop the reply of the next request, reset.
//!
//! It runs on the caller's tokio runtime (feature `proxy`) and needs no external tool. It is
//! not a general-purpose proxy: one upstream, loopback only, no TLS termination (TLS passes
//! through it untouched, so a TLS client can be tested behind it too).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward both ways.
    Pass,
    /// A dead server: open connections are closed, and new ones are closed at once.
    Refuse,
    /// A stalled server: new connections are accepted, and nothing is forwarded on any
    /// connection, old or new; they stay open and silent.
    BlackHole,
    /// Every chunk waits this long, each way.
    Delay(Duration),
    /// The next request reaches the server, its reply is lost, and that connection is cut.
    /// Then back to [`Fault::Pass`].
    DropAfterNextRequest,
}

struct Shared {
    upstream: SocketAddr,
    fault: Mutex<Fault>,
    /// Bumped to close every open connection.
    kill: watch::Sender<u64>,
    /// Set by `DropAfterNextRequest`, taken by the first request that sees it.
    drop_armed: AtomicBool,
    open: AtomicUsize,
}

impl Shared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A running proxy. It stops (and closes every connection) when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .field("fault", &self.shared.fault())
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy on a free loopback port in front of `upstream`, passing traffic.
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream,
            fault: Mutex::new(Fault::Pass),
            kill: watch::channel(0).0,
            drop_armed: AtomicBool::new(false),
            open: AtomicUsize::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(FaultProxy { addr, shared, task })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Switches the fault. `Refuse` closes the open connections too.
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        self.shared
            .drop_armed
            .store(fault == Fault::DropAfterNextRequest, Ordering::SeqCst);
        if fault == Fault::Refuse {
            self.reset();
        }
    }

    /// Cuts every open connection (as a server restart does) and keeps the current fault.
    pub fn reset(&self) {
        self.shared.kill.send_modify(|n| *n += 1);
    }

    /// How many client connections are open through the proxy.
    pub fn open_connections(&self) -> usize {
        self.shared.open.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.reset();
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if shared.fault() == Fault::Refuse {
            drop(client);
            continue;
        }
        tokio::spawn(connection(client, shared.clone()));
    }
}

async fn connection(client: TcpStream, shared: Arc<Shared>) {
    let mut kill = shared.kill.subscribe();
    kill.mark_unchanged();
    shared.open.fetch_add(1, Ordering::SeqCst);
    let _ = client.set_nodelay(true);
    let served = async {
        // A black-holed connection never reaches the server; it just stays open.
        while shared.fault() == Fault::BlackHole {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Ok(server) = TcpStream::connect(shared.upstream).await else {
            return;
        };
        let _ = server.set_nodelay(true);
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        // Set once this connection carried the request whose reply must be lost.
        let swallow = Arc::new(AtomicBool::new(false));
        let up = pump(cr, sw, true, shared.clone(), swallow.clone());
        let down = pump(sr, cw, false, shared.clone(), swallow);
        tokio::select! {
            _ = up => {}
            _ = down => {}
        }
    };
    tokio::select! {
        _ = served => {}
        _ = kill.changed() => {}
    }
    shared.open.fetch_sub(1, Ordering::SeqCst);
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    upstream: bool,
    shared: Arc<Shared>,
    swallow: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if !upstream && swallow.load(Ordering::SeqCst) {
            // The reply to the dropped request: lost.
            continue;
        }
        match shared.fault() {
            // `set(Refuse)` cuts open connections through a signal that their tasks see only
            // when next scheduled; until then nothing may pass, or a request sent right after
            // the switch could still be served.
            Fault::Refuse => return,
            Fault::BlackHole => continue,
            Fault::Delay(d) => tokio::time::sleep(d).await,
            Fault::DropAfterNextRequest
                if upstream && shared.drop_armed.swap(false, Ordering::SeqCst) =>
            {
                swallow.store(true, Ordering::SeqCst);
                *shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = Fault::Pass;
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                // Give the server time to act on it, then cut the connection.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return;
            }
            _ => {}
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
