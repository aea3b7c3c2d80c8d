//! Following a list on Redis: each list's generation and head (the number of items trimmed from
//! its front) in one hash per namespace, `<keyPrefix>\0lists` (a name no caller's key can take,
//! since keys may not hold NUL; `keys` leaves it out, `clear` removes it), kept by scripts that
//! append and trim, so that a list's items have absolute indices. In a cluster the namespace's
//! hash tag puts the hash in the list's slot. Lists written before this existed read as
//! generation 0 from head 0 until their next trim. Not the other list operations
//! (`backend.rs`).

use crate::core::{RedisBackend, decode, wrong_type};
use crate::key_index::KEY_INDEX;
use crate::watch::{CHANGES, LUA_LOG};
use redis::Script;
use std::sync::LazyLock;
use std::time::{Duration, Instant};
use storage_core::raw::Resend;
use storage_core::{Error, ListWindow, Result, Version};

/// The per-namespace hash of list headers, as a key of the namespace.
pub(crate) const LISTS: &str = "\0lists";

/// How often a waiting follower reads the list's header.
const POLL: Duration = Duration::from_millis(5);

/// Parses a header `generation:head`.
const LUA_HEADER: &str = r#"
local function header(h, field)
  local meta = redis.call('HGET', h, field) or '0:0'
  local sep = string.find(meta, ':')
  return string.sub(meta, 1, sep - 1), tonumber(string.sub(meta, sep + 1))
end
"#;

/// `KEYS[1]` the list, `KEYS[2]` the headers, `KEYS[3]` the change log, `KEYS[4]` the key index;
/// `ARGV[1]` the key, `ARGV[2]` a fresh generation, `ARGV[3..]` the items. A new list gets the
/// generation and head 0, and its creation is filed.
static APPEND: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{LUA_LOG}
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. ':0')
  log(KEYS[3], ARGV[1], '0', '', KEYS[4])
end
local n = 0
for i = 3, #ARGV, 1000 do
  n = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
return n
"#
    ))
});

/// `KEYS[1]` the list, `KEYS[2]` the headers, `KEYS[3]` the change log, `KEYS[4]` the key index;
/// `ARGV[1]` the key, `ARGV[2]`, `ARGV[3]` LTRIM's window. The head grows by what goes from the
/// front; a trim that empties the list deletes it, and that is filed.
static TRIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{LUA_HEADER}{LUA_LOG}
local len = redis.call('LLEN', KEYS[1])
if len == 0 then return 0 end
local s, e = tonumber(ARGV[2]), tonumber(ARGV[3])
if s < 0 then s = len + s end
if e < 0 then e = len + e end
if s < 0 then s = 0 end
if e >= len then e = len - 1 end
redis.call('LTRIM', KEYS[1], ARGV[2], ARGV[3])
if redis.call('EXISTS', KEYS[1]) == 0 then log(KEYS[3], ARGV[1], '1', '', KEYS[4]) end
if s <= e and s > 0 then
  local generation, head = header(KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[2], ARGV[1], generation .. ':' .. string.format('%.0f', head + s))
end
return 1
"#
    ))
});

/// `KEYS[1]` the list, `KEYS[2]` the headers; `ARGV[1]` the key, `ARGV[2]` the absolute index
/// to read from, `ARGV[3]` how many. Answers generation, head, length, then the items.
static WINDOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{LUA_HEADER}
local len = redis.call('LLEN', KEYS[1])
if len == 0 then return {{'0', '0', '0'}} end
local generation, head = header(KEYS[2], ARGV[1])
local from = tonumber(ARGV[2]) - head
if from < 0 then from = 0 end
local out = {{generation, string.format('%.0f', head), tostring(len)}}
local max = tonumber(ARGV[3])
if max > 0 and from < len then
  for _, item in ipairs(redis.call('LRANGE', KEYS[1], from, from + max - 1)) do
    table.insert(out, item)
  end
end
return out
"#
    ))
});

fn number(reply: &[Vec<u8>], at: usize) -> Result<u64> {
    reply
        .get(at)
        .and_then(|b| std::str::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::other(format!("a list window's script answered field {at} badly")))
}

impl RedisBackend {
    /// Appends `items` (stored forms) by the script that starts a new list's header.
    pub(crate) async fn push(&self, key: &str, items: Vec<String>) -> Result<()> {
        let (full, headers, log) = (self.key(key), self.key(LISTS), self.key(CHANGES));
        let index = self.key(KEY_INDEX);
        let generation = Version::fresh().raw().to_string();
        // Never re-sent: a lost reply may hide an append the server applied.
        self.with_conn(Resend::Never, "appending", |mut link| {
            let (full, headers, log, index) = (&full, &headers, &log, &index);
            let (generation, items) = (&generation, &items);
            async move {
                APPEND
                    .key(full)
                    .key(headers)
                    .key(log)
                    .key(index)
                    .arg(key)
                    .arg(generation)
                    .arg(items)
                    .invoke_async::<u64>(&mut link)
                    .await
            }
        })
        .await
        .map_err(wrong_type(key, Error::holds_value))?;
        Ok(())
    }

    /// LTRIM, with the head moved by what goes from the front.
    pub(crate) async fn trim_list(&self, key: &str, start: i64, end: i64) -> Result<()> {
        let (full, headers, log) = (self.key(key), self.key(LISTS), self.key(CHANGES));
        let index = self.key(KEY_INDEX);
        // Not idempotent (a window counted from one end shrinks the list again): never re-sent.
        self.with_conn(Resend::Never, "trimming the list", |mut link| {
            let (full, headers, log, index) = (&full, &headers, &log, &index);
            async move {
                TRIM.key(full)
                    .key(headers)
                    .key(log)
                    .key(index)
                    .arg(key)
                    .arg(start)
                    .arg(end)
                    .invoke_async::<i64>(&mut link)
                    .await
            }
        })
        .await
        .map_err(wrong_type(key, Error::holds_value))?;
        Ok(())
    }

    /// See [`storage_core::Database::list_window`].
    pub(crate) async fn window(&self, key: &str, from: u64, max: usize) -> Result<ListWindow> {
        let (full, headers) = (self.key(key), self.key(LISTS));
        let reply: Vec<Vec<u8>> = self
            .with_conn(Resend::Allowed, "reading the list", |mut link| {
                let (full, headers) = (&full, &headers);
                async move {
                    WINDOW
                        .key(full)
                        .key(headers)
                        .arg(key)
                        .arg(from)
                        .arg(max)
                        .invoke_async(&mut link)
                        .await
                }
            })
            .await
            .map_err(wrong_type(key, Error::holds_value))?;
        let (generation, head, len) = (number(&reply, 0)?, number(&reply, 1)?, number(&reply, 2)?);
        if len == 0 {
            return Ok(ListWindow::default());
        }
        Ok(ListWindow {
            generation,
            first: head,
            next: head + len,
            items: reply[3..]
                .iter()
                .map(|b| decode(key, b))
                .collect::<Result<Vec<_>>>()?,
        })
    }

    /// See [`storage_core::Database::wait_for_change`]: returns once the list's length or head
    /// differs from what it was at the call, or `limit` has passed.
    pub(crate) async fn wait_list_change(&self, key: &str, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        let seen = self.window(key, u64::MAX, 0).await?;
        while Instant::now() < deadline {
            tokio::time::sleep(POLL.min(deadline - Instant::now())).await;
            if self.window(key, u64::MAX, 0).await? != seen {
                return Ok(());
            }
        }
        Ok(())
    }
}
