//! The solo connection: one connection to a single server that the calling task drives itself
//! (it writes the command and reads the reply on its own task, with redis-rs's encoder and
//! parser), taken by an operation that begins while no other operation of the backend is in
//! flight. The others take the pool's multiplexed connections as before, so that many tasks
//! still share few connections.
//!
//! Why: a multiplexed connection hands each reply from its own task to the caller's, and a task
//! that sleeps until the reply arrives pays the wake-up of a parked thread, which at one task is
//! most of an operation's time on loopback. An operation alone on the backend instead polls the
//! socket for its reply (and for each further piece of a long reply) for a while
//! (`options.replySpinMicros`, 100 µs by default: the end of the 10–100 µs tokio's guide gives a
//! task between yields; 50 µs left half of a logged write's replies to a wake-up on the benchmark
//! machine) before it sleeps; with other operations in flight it never polls.
//!
//! Not for TLS, RESP3 or a cluster (those always take the pool), not the retry policy
//! (`command.rs`), and not a pool: it is one connection, opened again after an error.

use crate::pool::IDLE_CHECK;
use combine::parser::combinator::AnySendSyncPartialState;
use combine::stream::{Decoder, PointerOffset};
use redis::{Cmd, ConnectionAddr, ConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Solo-connection exchanges allowed to poll, process-wide: how many had every reply arrive
/// while polling, and how many polled out and slept for one (see [`reply_polling`]).
static REPLIES_POLLED: AtomicU64 = AtomicU64::new(0);
static REPLIES_SLEPT: AtomicU64 = AtomicU64::new(0);

/// How the replies of operations alone on a Redis server arrived, counted over every backend
/// of this process since it started: each operation that took the solo connection while no
/// other was in flight (so it was allowed to poll) is counted once, as `polled` when every
/// reply it read came within `options.replySpinMicros`, or as `slept` when it polled out and
/// waited to be woken (the wake-up polling exists to spare).
///
/// For tuning `replySpinMicros`: many `slept` against `polled` at one task mean the server
/// answers more slowly than the window (a slow command, a busy or distant server), and a
/// longer window (or none) fits better. The benchmark reads it to tell a slow run whose
/// replies missed the window from one where the round trip itself was slow.
///
/// ```
/// let before = storage_redis::reply_polling();
/// // ... operations at one task ...
/// let after = storage_redis::reply_polling();
/// assert!(after.slept >= before.slept);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReplyPolling {
    /// Operations whose every reply arrived while they polled.
    pub polled: u64,
    /// Operations that polled out and slept until a reply woke them.
    pub slept: u64,
}

/// The process-wide [`ReplyPolling`] counts so far.
pub fn reply_polling() -> ReplyPolling {
    ReplyPolling {
        polled: REPLIES_POLLED.load(Ordering::Relaxed),
        slept: REPLIES_SLEPT.load(Ordering::Relaxed),
    }
}

/// How long a solo connection that failed to open is left alone before the next try: the
/// pool serves meanwhile and reports why the server cannot be reached.
const REOPEN_AFTER: Duration = Duration::from_secs(1);

/// The backend's solo connection and what every operation shares to decide whether to poll.
pub(crate) struct SoloLink {
    slot: Arc<Mutex<Slot>>,
    /// Where and as whom to connect (plain TCP or a Unix socket, RESP2).
    info: ConnectionInfo,
    connect_timeout: Duration,
    /// How long an operation alone on the backend polls for its reply (zero: never).
    spin: Duration,
    /// Operations in flight on this backend, on either path.
    in_flight: AtomicUsize,
}

/// The connection, when open, and when the next open may be tried after a failed one.
#[derive(Default)]
struct Slot {
    conn: Option<SoloConn>,
    reopen_at: Option<Instant>,
}

enum Stream {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

/// One open connection driven by whoever holds the slot.
struct SoloConn {
    stream: Stream,
    /// redis-rs's reply parser, with what it has read past the last reply.
    decoder: Decoder<AnySendSyncPartialState, PointerOffset<[u8]>>,
    db: i64,
    /// Set from the command's write until its last reply is read: a connection whose
    /// operation was dropped half way (a timeout) has replies on the wire and is not reused.
    pending: bool,
    last_used: Instant,
}

/// Counts an operation in flight on the backend while it lives.
pub(crate) struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// No other operation of the backend was in flight when this one began.
    pub(crate) alone: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

impl SoloLink {
    /// A solo link for `info` when it can drive one (plain TCP or a Unix socket, RESP2);
    /// `None` otherwise.
    pub(crate) fn for_server(
        info: &ConnectionInfo,
        connect_timeout: Duration,
        spin: Duration,
    ) -> Option<Arc<SoloLink>> {
        let plain = match info.addr() {
            ConnectionAddr::Tcp(..) => true,
            #[cfg(unix)]
            ConnectionAddr::Unix(_) => true,
            _ => false,
        };
        let resp2 = info.redis_settings().protocol() == redis::ProtocolVersion::RESP2;
        (plain && resp2).then(|| {
            Arc::new(SoloLink {
                slot: Arc::default(),
                info: info.clone(),
                connect_timeout,
                spin,
                in_flight: AtomicUsize::new(0),
            })
        })
    }

    /// Counts one more operation in flight until the guard drops.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let before = self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            count: &self.in_flight,
            alone: before == 0,
        }
    }

    /// The solo connection for one command, if no other operation holds it and it is (or
    /// can be made) usable: opened if closed, checked with a `PING` after idling. `None`
    /// sends the caller to the pool.
    pub(crate) async fn take(self: &Arc<Self>) -> Option<SoloCall> {
        let mut slot = self.slot.clone().try_lock_owned().ok()?;
        if slot.conn.as_ref().is_some_and(|c| c.pending) {
            slot.conn = None;
        }
        if slot.conn.is_none() {
            if slot.reopen_at.is_some_and(|at| Instant::now() < at) {
                return None;
            }
            match tokio::time::timeout(self.connect_timeout, SoloConn::open(&self.info)).await {
                Ok(Ok(conn)) => slot.conn = Some(conn),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "the solo connection did not open; the pool serves");
                    slot.reopen_at = Some(Instant::now() + REOPEN_AFTER);
                    return None;
                }
                Err(_) => {
                    slot.reopen_at = Some(Instant::now() + REOPEN_AFTER);
                    return None;
                }
            }
        }
        let conn = slot.conn.as_mut()?;
        if conn.last_used.elapsed() > IDLE_CHECK {
            // The server may have closed it while it idled: a write is never sent on it
            // before it answers.
            let ping = redis::cmd("PING");
            if !matches!(
                tokio::time::timeout(self.connect_timeout, conn.command(&ping)).await,
                Ok(Ok(_))
            ) {
                slot.conn = None;
                return None;
            }
        }
        Some(SoloCall {
            slot,
            link: self.clone(),
        })
    }

    /// Opens the solo connection ahead of the first operation; a failure is left to `take`.
    pub(crate) async fn warm(self: &Arc<Self>) {
        drop(self.take().await);
    }
}

/// The solo connection held for one command; sent through redis-rs's `ConnectionLike`.
pub struct SoloCall {
    slot: OwnedMutexGuard<Slot>,
    link: Arc<SoloLink>,
}

impl SoloCall {
    async fn send(&mut self, bytes: &[u8], offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        // Polling only pays when nothing else waits: alone, the reply is microseconds away
        // and this task has the thread to itself.
        let spin = (self.link.spin > Duration::ZERO
            && self.link.in_flight.load(Ordering::Relaxed) <= 1)
            .then_some(self.link.spin);
        let conn = self.slot.conn.as_mut().ok_or_else(|| {
            redis::RedisError::from(io::Error::new(
                io::ErrorKind::NotConnected,
                "the solo connection is closed",
            ))
        })?;
        conn.exchange(bytes, offset, count, spin).await
    }
}

impl SoloConn {
    async fn open(info: &ConnectionInfo) -> RedisResult<SoloConn> {
        let stream = match info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let tcp = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                // The same TCP settings as the pool's connections (`options::tcp_settings`).
                let settings = info.tcp_settings();
                tcp.set_nodelay(settings.nodelay())?;
                if let Some(probes) = settings.keepalive() {
                    socket2::SockRef::from(&tcp).set_tcp_keepalive(probes)?;
                }
                Stream::Tcp(tcp)
            }
            #[cfg(unix)]
            ConnectionAddr::Unix(path) => {
                Stream::Unix(tokio::net::UnixStream::connect(path).await?)
            }
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "the solo connection is plain TCP or a Unix socket",
                )
                .into());
            }
        };
        let mut conn = SoloConn {
            stream,
            decoder: Decoder::new(),
            db: info.redis_settings().db(),
            pending: false,
            last_used: Instant::now(),
        };
        let settings = info.redis_settings();
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
            conn.command(&auth).await?;
        } else {
            // Nothing in the handshake needs the server's consent without a password.
            conn.command(&redis::cmd("PING")).await?;
        }
        if conn.db != 0 {
            conn.command(redis::cmd("SELECT").arg(conn.db)).await?;
        }
        Ok(conn)
    }

    /// One command of the handshake; its error reply is an error.
    async fn command(&mut self, cmd: &Cmd) -> RedisResult<()> {
        let mut replies = self.exchange(&cmd.get_packed_command(), 0, 1, None).await?;
        replies.pop().map(Value::extract_error).transpose()?;
        Ok(())
    }

    /// Writes `bytes` and reads `offset + count` replies, returning the last `count` (the
    /// first `offset` are a transaction's `OK` and `QUEUED`s; the first error among them, which
    /// aborted the transaction, is returned instead). Polls for the first reply for `spin`.
    async fn exchange(
        &mut self,
        bytes: &[u8],
        offset: usize,
        count: usize,
        spin: Option<Duration>,
    ) -> RedisResult<Vec<Value>> {
        self.pending = true;
        match &mut self.stream {
            Stream::Tcp(s) => s.write_all(bytes).await?,
            #[cfg(unix)]
            Stream::Unix(s) => s.write_all(bytes).await?,
        }
        let mut reader = PollingRead {
            stream: &mut self.stream,
            spin,
            spin_until: spin.map(|d| Instant::now() + d),
        };
        let mut replies = Vec::with_capacity(count);
        // A command the server refused as it queued it (`NOPERM`, `OOM`, a wrong arity) aborts
        // the transaction; its error, not `EXEC`'s `EXECABORT`, says why.
        let mut refused = None;
        for index in 0..offset + count {
            let reply = redis::parse_redis_value_async(&mut self.decoder, &mut reader).await?;
            if index >= offset {
                replies.push(reply);
            } else if let Value::ServerError(e) = reply {
                refused.get_or_insert(e);
            }
        }
        if spin.is_some() {
            // Polling out clears `spin_until`; every reply in the window leaves it set.
            let counter = match reader.spin_until {
                Some(_) => &REPLIES_POLLED,
                None => &REPLIES_SLEPT,
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.pending = false;
        self.last_used = Instant::now();
        match refused {
            Some(e) => Err(e.into()),
            None => Ok(replies),
        }
    }
}

/// Reads the socket, first by polling it (a non-blocking `recv`, which does not wait for
/// tokio's readiness) until `spin_until`, then through tokio, which sleeps until it is ready.
/// Each read that finds data polls `spin` longer: a long reply (an `MGET` of 100 values, a
/// transaction's `QUEUED`s) arrives in pieces right behind one another.
struct PollingRead<'a> {
    stream: &'a mut Stream,
    spin: Option<Duration>,
    spin_until: Option<Instant>,
}

impl PollingRead<'_> {
    fn try_recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        let sock = match &*self.stream {
            Stream::Tcp(s) => socket2::SockRef::from(s),
            #[cfg(unix)]
            Stream::Unix(s) => socket2::SockRef::from(s),
        };
        io::Read::read(&mut &*sock, buf)
    }
}

impl AsyncRead for PollingRead<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(until) = this.spin_until {
            loop {
                match this.try_recv(buf.initialize_unfilled()) {
                    Ok(read) => {
                        buf.advance(read);
                        this.spin_until = this.spin.map(|d| Instant::now() + d);
                        return Poll::Ready(Ok(()));
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if Instant::now() >= until {
                            // Polled out: sleep until tokio says the socket is readable.
                            this.spin_until = None;
                            this.spin = None;
                            break;
                        }
                        std::hint::spin_loop();
                    }
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
        }
        match this.stream {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl redis::aio::ConnectionLike for SoloCall {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut replies = self.send(&cmd.get_packed_command(), 0, 1).await?;
            Ok(replies.pop().unwrap_or(Value::Nil))
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.send(&pipeline.get_packed_pipeline(), offset, count)
                .await
        })
    }

    fn get_db(&self) -> i64 {
        self.slot.conn.as_ref().map_or(0, |c| c.db)
    }
}
