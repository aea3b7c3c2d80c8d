//! The key index of a database namespace on Redis: a sorted set, `<keyPrefix>\0keys` (a name no
//! caller's key can take), of the namespace's keys, so that `keys` with a literal prefix reads
//! the range of the index that starts with it and `clear` walks the namespace, where `SCAN`
//! walks everything the server (or the cluster node) holds.
//!
//! - **Started by a plain write, completed when first needed.** A plain `set` (on one server;
//!   on a cluster it stays a script, `watch.rs`) or an `mset` adds its keys to the index
//!   whether or not it exists yet (one `ZADD` in the write's transaction: no script, whose call
//!   alone costs the server more than the write, BENCHMARKS.md), so a database namespace
//!   written to holds an index of (at least) the keys set since. The first
//!   `keys` or `clear` completes it: it marks the index as being built, walks the namespace
//!   with `SCAN` once (the keys written before, by scripts before it existed or by an older
//!   build), adds what it found, and marks it complete. Until then nothing reads it.
//! - **Kept by every write**, in the same script or transaction as the write and its change-log
//!   entry: a plain `set`'s and `mset`'s `ZADD`; the scripts' shared `log` (`watch.rs`; the
//!   conditional writes, deletes, appends and trims), which keeps an index that exists: a key
//!   set is added, a key deleted (or a list trimmed to nothing) is removed.
//! - **Checked on read.** A key removed while the index was built can stay in it (the walk saw
//!   it before the removal): a listing checks that each key it reads exists and drops from the
//!   index those that do not, in the same script. So the index may hold more than the
//!   namespace, never less, and a listing costs what its range holds.
//! - **Only this library's writes.** A key written into the namespace by another client (or by
//!   an older build of this library, which does not keep the index) after the index was built
//!   is not listed, and `clear` leaves it. Deleting the index (`redis-cli DEL
//!   "<keyPrefix>\x00keys"`) makes the next listing build it again from `SCAN`.
//! - **The database role only.** A cache's keys expire without a command, which would leave
//!   the index growing: a cache lists and clears by `SCAN`, and keeps no index.
//!
//! Not the writes themselves (`backend.rs`, `conditional.rs`, `feed.rs`, `watch.rs`).

use crate::core::{BATCH, RedisBackend, not_utf8_key};
use redis::Script;
use std::sync::LazyLock;
use storage_core::Result;
use storage_core::raw::{Resend, glob_match, literal_prefix};

/// The namespace's key index, as a key of the namespace.
pub(crate) const KEY_INDEX: &str = "\0keys";
/// The member that marks an index being built: writes keep it from then on.
const BUILDING: &str = "\0building";
/// The member that marks an index holding every key of the namespace.
const COMPLETE: &str = "\0complete";

/// `KEYS[1]` the index; `ARGV[1]` the namespace's prefix, `ARGV[2]`, `ARGV[3]` the
/// `ZRANGEBYLEX` bounds, `ARGV[4]` how many. Answers nil when the index is not complete, else
/// how many members it read, the last of them, and the keys among them that exist (those that
/// do not are dropped from the index).
static PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if not redis.call('ZSCORE', KEYS[1], '\0complete') then return false end
local members = redis.call('ZRANGEBYLEX', KEYS[1], ARGV[2], ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local live = {}
for _, m in ipairs(members) do
  if string.byte(m, 1) ~= 0 then
    if redis.call('EXISTS', ARGV[1] .. m) == 1 then
      live[#live + 1] = m
    else
      redis.call('ZREM', KEYS[1], m)
    end
  end
end
return {#members, members[#members] or '', live}
"#,
    )
});

/// `KEYS[1]` the index; `ARGV[1]` the namespace's prefix, `ARGV[2]` how many (at most
/// [`BATCH`]: one `UNLINK` and one `ZREM` take them all). Removes that many keys of the index
/// with their members; answers how many, or -1 when the index is not complete.
static CLEAR_PAGE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if not redis.call('ZSCORE', KEYS[1], '\0complete') then return -1 end
local members = redis.call('ZRANGEBYLEX', KEYS[1], '[\1', '+', 'LIMIT', 0, tonumber(ARGV[2]))
if #members > 0 then
  local keys = {}
  for i, m in ipairs(members) do keys[i] = ARGV[1] .. m end
  redis.call('UNLINK', unpack(keys))
  redis.call('ZREM', KEYS[1], unpack(members))
end
return #members
"#,
    )
});

/// How often a listing builds the index again after finding it gone before it falls back to
/// `SCAN` (each time another client deleted it in between).
const ATTEMPTS: usize = 3;

impl RedisBackend {
    /// The keys of the namespace matching `pattern`, read from the index (built first when it
    /// is not complete); `None` when the index kept disappearing.
    pub(crate) async fn indexed_keys(&self, pattern: Option<&str>) -> Result<Option<Vec<String>>> {
        let pattern = pattern.unwrap_or("*");
        let (literal, _) = literal_prefix(pattern);
        for _ in 0..ATTEMPTS {
            if let Some(keys) = self.read_index(&literal, pattern).await? {
                return Ok(Some(keys));
            }
            self.build_index().await?;
        }
        Ok(None)
    }

    /// Every page of the index's range for `literal`, filtered by `pattern`; `None` when the
    /// index is not complete.
    async fn read_index(&self, literal: &str, pattern: &str) -> Result<Option<Vec<String>>> {
        let index = self.key(KEY_INDEX);
        // Keys are UTF-8 (never the byte 0xff) and never start with NUL (the markers do).
        let mut min = if literal.is_empty() {
            b"[\x01".to_vec()
        } else {
            [b"[", literal.as_bytes()].concat()
        };
        let max = if literal.is_empty() {
            b"+".to_vec()
        } else {
            [b"(", literal.as_bytes(), b"\xff"].concat()
        };
        let mut keys = Vec::new();
        loop {
            let page: Option<(usize, Vec<u8>, Vec<Vec<u8>>)> = self
                .with_conn(Resend::Allowed, "reading the key index", |mut link| {
                    let (index, min, max) = (&index, &min, &max);
                    async move {
                        PAGE.key(index)
                            .arg(&self.prefix)
                            .arg(min)
                            .arg(max)
                            .arg(BATCH)
                            .invoke_async(&mut link)
                            .await
                    }
                })
                .await?;
            let Some((read, last, live)) = page else {
                return Ok(None);
            };
            for member in live {
                let key = String::from_utf8(member).map_err(|e| {
                    let full = [self.prefix.as_bytes(), e.as_bytes()].concat();
                    not_utf8_key(&full)
                })?;
                if glob_match(pattern, &key) {
                    keys.push(key);
                }
            }
            if read < BATCH {
                return Ok(Some(keys));
            }
            min = [b"(", &last[..]].concat();
        }
    }

    /// Builds the index: marks it as being built, walks the namespace with `SCAN`, adds what it
    /// found, marks it complete. A key that is not UTF-8 stops the build with an error naming
    /// it (as a listing by `SCAN` reports it).
    async fn build_index(&self) -> Result<()> {
        let index = self.begin_index().await?;
        let mut members = Vec::new();
        for full in self.scan(None).await? {
            let Some(member) = full.get(self.prefix.len()..) else {
                continue;
            };
            // The namespace's own keys (the index, the change log, the list headers).
            if member.first() == Some(&0) {
                continue;
            }
            match std::str::from_utf8(member) {
                Ok(member) => members.push(member.to_string()),
                Err(_) => return Err(not_utf8_key(&full)),
            }
        }
        for chunk in members.chunks(BATCH) {
            let chunk: Vec<&str> = chunk.iter().map(String::as_str).collect();
            self.zadd(&index, &chunk).await?;
        }
        self.complete_index(&index).await
    }

    /// Marks the index as being built, so that every write keeps it from now on; its key.
    pub(crate) async fn begin_index(&self) -> Result<String> {
        let index = self.key(KEY_INDEX);
        self.zadd(&index, &[BUILDING]).await?;
        Ok(index)
    }

    /// Marks the index complete: it holds (at least) every key of the namespace.
    pub(crate) async fn complete_index(&self, index: &str) -> Result<()> {
        self.zadd(index, &[COMPLETE]).await?;
        self.query::<u64>(
            Resend::Allowed,
            redis::cmd("ZREM").arg(index).arg(BUILDING),
            "building the key index",
        )
        .await?;
        Ok(())
    }

    async fn zadd(&self, index: &str, members: &[&str]) -> Result<()> {
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(index);
        for m in members {
            cmd.arg(0).arg(*m);
        }
        self.query::<u64>(Resend::Allowed, &cmd, "building the key index")
            .await?;
        Ok(())
    }

    /// Removes every key the complete index holds, a page at a time, each page's keys and
    /// members in one script. False when the index is not complete (nothing was removed then,
    /// or the index went away part way).
    pub(crate) async fn clear_indexed(&self) -> Result<bool> {
        let index = self.key(KEY_INDEX);
        loop {
            let removed: i64 = self
                .with_conn(Resend::Allowed, "clearing the namespace", |mut link| {
                    let index = &index;
                    async move {
                        CLEAR_PAGE
                            .key(index)
                            .arg(&self.prefix)
                            .arg(BATCH)
                            .invoke_async(&mut link)
                            .await
                    }
                })
                .await?;
            match removed {
                ..0 => return Ok(false),
                0 => return Ok(true),
                _ => {}
            }
        }
    }

    /// A plain write's index step, for its transaction: one `ZADD` of `keys` per [`BATCH`] of
    /// them (a command's arguments stay bounded in a batch of any size).
    pub(crate) fn index_add_commands<'a>(
        &self,
        keys: impl Iterator<Item = &'a str>,
    ) -> Vec<redis::Cmd> {
        let index = self.key(KEY_INDEX);
        let keys: Vec<&str> = keys.collect();
        keys.chunks(BATCH)
            .map(|chunk| {
                let mut cmd = redis::cmd("ZADD");
                cmd.arg(&index);
                for k in chunk {
                    cmd.arg(0).arg(*k);
                }
                cmd
            })
            .collect()
    }
}
