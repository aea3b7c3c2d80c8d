//! Watching a namespace on Redis: its change log is a stream, `<keyPrefix>\0changes` (a name
//! no caller's key can take; `keys` and `clear` leave it out), that every write appends to in
//! the same script as the write itself, so the change and the write land together or not at
//! all, in the order Redis ran them. `XADD ... MAXLEN ~ 10000` bounds it; once trimming removed
//! entries, the oldest entry held tells a reader standing before it that it missed changes. Redis
//! removes an expired key without a command, so expiries are not filed.
//!
//! On a cluster the log needs the namespace in one hash slot (the database role's hash-tagged
//! prefix): a cache there spreads its keys over slots, writes file nothing, and watching it is
//! refused. Not the writes (`backend.rs`, `conditional.rs`, `feed.rs`), which call these.

use crate::core::RedisBackend;
use crate::key_index::KEY_INDEX;
use redis::Script;
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use storage_core::raw::Resend;
use storage_core::watch::{Change, ChangeKind, ChangeWindow};
use storage_core::{Error, Result, Version};

/// The namespace's change log, as a key of the namespace.
pub(crate) const CHANGES: &str = "\0changes";

/// How often a waiting watcher reads the log's end.
const POLL: Duration = Duration::from_millis(5);

/// Bits of a position that hold the stream ID's sequence (the rest hold its milliseconds).
const SEQ_BITS: u32 = 20;

/// Files a change: `log(stream, key, kind, version, index)`, the version `''` when there is
/// none; and keeps the namespace's key index (`key_index.rs`), when one exists, in the same step:
/// a key set (`kind` `'0'`) is added, a key deleted (`'1'`) removed.
pub(crate) const LUA_LOG: &str = r#"
local function log(stream, key, kind, version, index)
  redis.call('XADD', stream, 'MAXLEN', '~', '10000', '*', 'k', key, 't', kind, 'v', version)
  if redis.call('EXISTS', index) == 0 then return end
  if kind == '0' then redis.call('ZADD', index, 0, key) else redis.call('ZREM', index, key) end
end
"#;

/// `KEYS[1]` the key, `KEYS[2]` the log, `KEYS[3]` the key index; `ARGV[1]` `set`, `setnx` or
/// `del`, `ARGV[2]` the key as callers name it, `ARGV[3]` the stored form, `ARGV[4]` a TTL in ms or
/// `''`, `ARGV[5]` the version or `''`. Answers 1 when it wrote, else 0.
static WRITE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{LUA_LOG}
local op = ARGV[1]
if op == 'del' then
  local n = redis.call('UNLINK', KEYS[1])
  if n > 0 then log(KEYS[2], ARGV[2], '1', '', KEYS[3]) end
  return n
end
local args = {{KEYS[1], ARGV[3]}}
if op == 'setnx' then table.insert(args, 'NX') end
if ARGV[4] ~= '' then table.insert(args, 'PX') table.insert(args, ARGV[4]) end
if not redis.call('SET', unpack(args)) then return 0 end
log(KEYS[2], ARGV[2], '0', ARGV[5], KEYS[3])
return 1
"#
    ))
});

/// `KEYS[1]` the log; `ARGV[1]` the ID to read from (`''`: none), `ARGV[2]` how many. Answers
/// the last ID given, the oldest ID still held once trimming removed any (`0-0` before), then
/// ID, key, kind, version per change. (Trimming does not move `max-deleted-entry-id`; what it
/// removed shows as fewer entries held than added.)
static READ: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('EXISTS', KEYS[1]) == 0 then return {'0-0', '0-0'} end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local last, first, length, added = '0-0', '0-0', 0, 0
for i = 1, #info, 2 do
  local name, value = info[i], info[i + 1]
  if name == 'last-generated-id' then last = value end
  if name == 'length' then length = value end
  if name == 'entries-added' then added = value end
  if name == 'first-entry' and value then first = value[1] end
end
if added <= length then first = '0-0' end
local out = {last, first}
if ARGV[1] ~= '' and tonumber(ARGV[2]) > 0 then
  for _, e in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])) do
    local f = e[2]
    table.insert(out, e[1])
    table.insert(out, f[2])
    table.insert(out, f[4])
    table.insert(out, f[6])
  end
end
return out
"#,
    )
});

/// A stream ID as a position: its milliseconds above, its sequence below.
fn position(id: &str) -> Result<u64> {
    let bad = || {
        Error::other(format!(
            "the change log answered a malformed stream ID {id:?}"
        ))
    };
    let (ms, seq) = id.split_once('-').ok_or_else(bad)?;
    let (ms, seq): (u64, u64) = (
        ms.parse().map_err(|_| bad())?,
        seq.parse().map_err(|_| bad())?,
    );
    Ok((ms << SEQ_BITS) | seq.min((1 << SEQ_BITS) - 1))
}

/// A position as the stream ID to read from.
fn stream_id(position: u64) -> String {
    format!(
        "{}-{}",
        position >> SEQ_BITS,
        position & ((1 << SEQ_BITS) - 1)
    )
}

impl RedisBackend {
    /// Whether writes file changes: everywhere but a cache on a cluster (see the module).
    pub(crate) fn logs_changes(&self) -> bool {
        !self.is_cluster || self.hash_tagged
    }

    /// A `SET` (`setnx`: `SET NX`) or `UNLINK` with its change filed; true when it wrote.
    /// A plain `set` on one server is a transaction ([`Self::set_logged`]); the others, whose
    /// change is filed only when the server wrote, and every write on a cluster, a script: the
    /// cluster client follows a failover's `MOVED` for a command, not for a transaction, which
    /// fails whole until the topology is read again (seconds of failed writes, measured).
    pub(crate) async fn write_logged(
        &self,
        op: &'static str,
        key: &str,
        stored: &str,
        ttl: Option<Duration>,
        version: Option<Version>,
        resend: Resend,
    ) -> Result<bool> {
        if op == "set" && !self.is_cluster {
            self.set_logged(key, stored, ttl, version).await?;
            return Ok(true);
        }
        let (full, log, index) = (self.key(key), self.key(CHANGES), self.key(KEY_INDEX));
        let ttl = ttl.map_or(String::new(), |t| (t.as_millis() as u64).to_string());
        let version = version.map_or(String::new(), |v| v.to_string());
        let wrote: u64 = self
            .with_conn(resend, "writing the key", |mut link| {
                let (full, log, index, ttl, version) = (&full, &log, &index, &ttl, &version);
                async move {
                    WRITE
                        .key(full)
                        .key(log)
                        .key(index)
                        .arg(op)
                        .arg(key)
                        .arg(stored)
                        .arg(ttl)
                        .arg(version)
                        .invoke_async(&mut link)
                        .await
                }
            })
            .await?;
        Ok(wrote > 0)
    }

    /// A plain `SET` with its change filed, and on a database its key added to the key index
    /// (`key_index.rs`), as one `MULTI`/`EXEC`. Not a script: nothing in it depends on what the
    /// server holds, and a script's call alone costs the server more than the three commands
    /// (BENCHMARKS.md, "What the change log costs a Redis write").
    async fn set_logged(
        &self,
        key: &str,
        stored: &str,
        ttl: Option<Duration>,
        version: Option<Version>,
    ) -> Result<()> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut set = redis::cmd("SET");
        set.arg(self.key(key)).arg(stored);
        if let Some(t) = ttl {
            set.arg("PX").arg(t.as_millis() as u64);
        }
        pipe.add_command(set).ignore();
        pipe.add_command(self.log_command(key, ChangeKind::Set, version))
            .ignore();
        if self.key_index {
            for cmd in self.index_add_commands(std::iter::once(key)) {
                pipe.add_command(cmd).ignore();
            }
        }
        self.pipeline::<()>(&pipe, "writing the key").await
    }

    /// The `XADD` that files a change, for a pipeline (`mset`) or after a clear.
    pub(crate) fn log_command(
        &self,
        key: &str,
        kind: ChangeKind,
        version: Option<Version>,
    ) -> redis::Cmd {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(self.key(CHANGES))
            .arg("MAXLEN")
            .arg("~")
            .arg(10_000)
            .arg("*")
            .arg("k")
            .arg(key)
            .arg("t")
            .arg(kind.code())
            .arg("v")
            .arg(version.map_or(String::new(), |v| v.to_string()));
        cmd
    }

    async fn read_log(&self, from: Option<u64>, max: usize) -> Result<Vec<String>> {
        if !self.logs_changes() {
            return Err(Error::unsupported(
                "a cache on a Redis Cluster spreads its keys over hash slots, so no change can be filed in the same step as its write: its keys cannot be watched (the database role, whose namespace is one slot, can be)",
            ));
        }
        let log = self.key(CHANGES);
        let from = from.map_or(String::new(), stream_id);
        self.with_conn(Resend::Allowed, "reading the change log", |mut link| {
            let (log, from) = (&log, &from);
            async move {
                READ.key(log)
                    .arg(from)
                    .arg(max)
                    .invoke_async(&mut link)
                    .await
            }
        })
        .await
    }

    /// See [`storage_core::Store::changes`].
    pub(crate) async fn change_window(
        &self,
        from: Option<u64>,
        max: usize,
    ) -> Result<ChangeWindow> {
        let reply = self.read_log(from, max).await?;
        let field = |i: usize| {
            reply
                .get(i)
                .ok_or_else(|| Error::other("the change log's script answered too little"))
        };
        let end = position(field(0)?)? + 1;
        // Before any trim every position is held; after, the oldest entry's.
        let oldest = match field(1)?.as_str() {
            "0-0" => 0,
            first => position(first)?,
        };
        let mut changes = Vec::new();
        for entry in reply[2..].chunks_exact(4) {
            let kind: i64 = entry[2]
                .parse()
                .map_err(|_| Error::other(format!("the change log holds a kind {:?}", entry[2])))?;
            changes.push(Change {
                position: position(&entry[0])?,
                key: entry[1].clone(),
                kind: ChangeKind::from_code(kind)?,
                version: if entry[3].is_empty() {
                    None
                } else {
                    Some(entry[3].parse()?)
                },
                // A stream ID starts with the server's time of the XADD.
                at_ms: entry[0].split_once('-').and_then(|(ms, _)| ms.parse().ok()),
            });
        }
        let next = match (from, changes.last()) {
            (None, _) => end,
            (Some(_), Some(c)) if changes.len() == max => c.position + 1,
            (Some(from), _) => end.max(from),
        };
        Ok(ChangeWindow {
            oldest,
            next,
            changes,
        })
    }

    /// See [`storage_core::Store::wait_for_changes`]: returns once the log's end is past
    /// `from`, or `limit` has passed.
    pub(crate) async fn wait_changes(&self, from: u64, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if self.change_window(None, 0).await?.next > from || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(POLL.min(deadline - Instant::now())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{position, stream_id};

    #[test]
    fn positions_and_stream_ids_round_trip_in_order() {
        let a = position("1700000000000-0").unwrap();
        let b = position("1700000000000-7").unwrap();
        let c = position("1700000000001-0").unwrap();
        assert!(a < b && b < c);
        assert_eq!(stream_id(b), "1700000000000-7");
        assert_eq!(position(&stream_id(c)).unwrap(), c);
        assert!(position("nonsense").is_err());
    }
}
