//! Versions on Redis, and the conditional operations of [`RedisBackend`].
//!
//! A database value is stored with its version in front, in the same string: the byte 0x01,
//! the version's 16 hex digits, then the JSON text (JSON never starts with 0x01, so a value
//! written without a version, by the cache role or before versions existed, reads as
//! `0000000000000000`). One key holds both, so a write of the two is one `SET`, atomic on a
//! single server and on a cluster alike, and `keys`, `clear` and `TYPE` see nothing new. A
//! condition is checked and the write made by one Lua script, which Redis runs with nothing
//! in between. Not the plain operations (`backend.rs`).

use crate::core::{RedisBackend, decode_json, wrong_type};
use crate::key_index::KEY_INDEX;
use crate::watch::{CHANGES, LUA_LOG};
use redis::Script;
use serde_json::Value;
use std::sync::LazyLock;
use std::time::Duration;
use storage_core::raw::{Resend, encode_value};
use storage_core::{Condition, Error, Result, Version};

/// The first byte of a value stored with its version.
const MARK: u8 = 0x01;
/// The mark and the version's hex digits.
const HEADER: usize = 17;

/// The stored form of `json` at `version`.
pub(crate) fn with_version(version: Version, json: &str) -> String {
    format!("\u{1}{version}{json}")
}

/// A stored value's version digits (checked: 16 hex digits after the mark; `None` without a
/// mark) and its JSON text. The one place the header is read.
fn header(stored: &[u8]) -> Result<(Option<&str>, &[u8])> {
    if stored.first() != Some(&MARK) {
        return Ok((None, stored));
    }
    match stored.get(1..HEADER) {
        Some(hex) if hex.iter().all(u8::is_ascii_hexdigit) => {
            // Hex digits are ASCII: the check cannot fail.
            let digits = std::str::from_utf8(hex).unwrap_or_default();
            Ok((Some(digits), &stored[HEADER..]))
        }
        _ => Err(Error::other(format!(
            "a stored value has a version mark but no version ({} bytes)",
            stored.len()
        ))),
    }
}

/// A stored value's JSON text, its version skipped unread: what a plain read needs (a profile
/// of `mget` had turning the digits into a number at 2% of its time).
pub(crate) fn strip_version(stored: &[u8]) -> Result<&[u8]> {
    header(stored).map(|(_, json)| json)
}

/// A stored value's JSON text and version.
pub(crate) fn split_version(stored: &[u8]) -> Result<(&[u8], Version)> {
    let (digits, json) = header(stored)?;
    let version = match digits {
        None => Version::UNVERSIONED,
        Some(digits) => digits.parse()?,
    };
    Ok((json, version))
}

/// The version of a stored value, in Lua: the header's digits, or zeros without one.
const LUA_VERSION_OF: &str = r#"
local function version_of(stored)
  if string.byte(stored, 1) == 1 then return string.sub(stored, 2, 17) end
  return '0000000000000000'
end
"#;

/// `KEYS[1]` the key, `KEYS[2]` the change log, `KEYS[3]` the key index; `ARGV[1]` the stored form,
/// `ARGV[2]` `absent` or `version`, `ARGV[3]` the expected version, `ARGV[4]` the new one,
/// `ARGV[5]` the key as callers name it. A key already at the new version holds this very write
/// (sent again after a lost answer): success, filed once.
static SET_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{LUA_VERSION_OF}{LUA_LOG}
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then
  if ARGV[2] == 'absent' then
    redis.call('SET', KEYS[1], ARGV[1])
    log(KEYS[2], ARGV[5], '0', ARGV[4], KEYS[3])
    return {{'ok'}}
  end
  return {{'conflict'}}
end
if kind ~= 'string' then
  if ARGV[2] == 'version' then return {{'wrongtype'}} end
  return {{'conflict'}}
end
local held = version_of(redis.call('GET', KEYS[1]))
if held == ARGV[4] then return {{'ok'}} end
if ARGV[2] == 'version' and held == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1])
  log(KEYS[2], ARGV[5], '0', ARGV[4], KEYS[3])
  return {{'ok'}}
end
return {{'conflict', held}}
"#
    ))
});

/// `KEYS[1]` the key, `KEYS[2]` the change log, `KEYS[3]` the key index; `ARGV[1]` the expected
/// version, `ARGV[2]` the key as callers name it.
static DELETE_IF: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        r#"{LUA_VERSION_OF}{LUA_LOG}
local kind = redis.call('TYPE', KEYS[1]).ok
if kind == 'none' then return {{'conflict'}} end
if kind ~= 'string' then return {{'wrongtype'}} end
local held = version_of(redis.call('GET', KEYS[1]))
if held == ARGV[1] then
  redis.call('UNLINK', KEYS[1])
  log(KEYS[2], ARGV[2], '1', '', KEYS[3])
  return {{'ok'}}
end
return {{'conflict', held}}
"#
    ))
});

/// A script's answer: done, or why not.
fn answer(key: &str, reply: Vec<String>) -> Result<()> {
    match reply.first().map(String::as_str) {
        Some("ok") => Ok(()),
        Some("wrongtype") => Err(Error::holds_list(key)),
        Some("conflict") => {
            let current = reply.get(1).map(|v| v.parse()).transpose()?;
            Err(Error::conflict(key, current))
        }
        _ => Err(Error::other(format!(
            "a conditional write's script answered {reply:?}"
        ))),
    }
}

impl RedisBackend {
    pub(crate) async fn versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        let raw: Option<Vec<u8>> = self
            .query(
                Resend::Allowed,
                redis::cmd("GET").arg(self.key(key)),
                "reading the key",
            )
            .await
            .map_err(wrong_type(key, Error::holds_list))?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let (json, version) = split_version(&raw)?;
        Ok(Some((decode_json(key, json)?, version)))
    }

    pub(crate) async fn put_if(
        &self,
        key: &str,
        value: &Value,
        condition: &Condition,
    ) -> Result<Version> {
        let version = Version::fresh();
        let stored = with_version(version, &encode_value(value)?);
        let (mode, expected) = match condition {
            Condition::Any => {
                self.write_logged("set", key, &stored, None, Some(version), Resend::Allowed)
                    .await?;
                return Ok(version);
            }
            Condition::Absent => ("absent", String::new()),
            Condition::Version(v) => ("version", v.to_string()),
        };
        let (full, log, index) = (self.key(key), self.key(CHANGES), self.key(KEY_INDEX));
        let new = version.to_string();
        let reply: Vec<String> = self
            .with_conn(Resend::Allowed, "storing the value", |mut link| {
                let (full, log, index) = (&full, &log, &index);
                let (stored, expected, new) = (&stored, &expected, &new);
                async move {
                    SET_IF
                        .key(full)
                        .key(log)
                        .key(index)
                        .arg(stored)
                        .arg(mode)
                        .arg(expected)
                        .arg(new)
                        .arg(key)
                        .invoke_async(&mut link)
                        .await
                }
            })
            .await?;
        answer(key, reply).map(|()| version)
    }

    pub(crate) async fn remove_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        let expected = match condition {
            Condition::Any => return storage_core::Store::delete(self, key).await,
            Condition::Absent => {
                return match self.versioned_any(key).await? {
                    None => Ok(false),
                    Some(current) => Err(Error::conflict(key, current)),
                };
            }
            Condition::Version(v) => v.to_string(),
        };
        let (full, log, index) = (self.key(key), self.key(CHANGES), self.key(KEY_INDEX));
        // Not sent again: a resend after a lost answer would find the key gone and report a
        // conflict for a delete that happened.
        let reply: Vec<String> = self
            .with_conn(Resend::Never, "deleting the key", |mut link| {
                let (full, log, index, expected) = (&full, &log, &index, &expected);
                async move {
                    DELETE_IF
                        .key(full)
                        .key(log)
                        .key(index)
                        .arg(expected)
                        .arg(key)
                        .invoke_async(&mut link)
                        .await
                }
            })
            .await?;
        answer(key, reply).map(|()| true)
    }

    /// What a key holds for a condition: nothing, or something with its version (`None` for a
    /// list).
    async fn versioned_any(&self, key: &str) -> Result<Option<Option<Version>>> {
        match self.versioned(key).await {
            Ok(held) => Ok(held.map(|(_, v)| Some(v))),
            Err(e) if e.kind() == storage_core::ErrorKind::WrongType => Ok(Some(None)),
            Err(e) => Err(e),
        }
    }

    /// `SET NX PX`. Never sent again: after a lost answer, a resend would find this very write
    /// and report the key taken.
    pub(crate) async fn put_if_absent(
        &self,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        if self.logs_changes() {
            let stored = encode_value(value)?;
            return self
                .write_logged("setnx", key, &stored, ttl, None, Resend::Never)
                .await;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(key)).arg(encode_value(value)?).arg("NX");
        if let Some(t) = ttl {
            cmd.arg("PX").arg(t.as_millis() as u64);
        }
        let reply: Option<String> = self.query(Resend::Never, &cmd, "storing the value").await?;
        Ok(reply.is_some())
    }
}

#[cfg(test)]
mod tests {
    use super::{split_version, strip_version, with_version};
    use storage_core::Version;

    #[test]
    fn the_stored_form_round_trips_and_plain_json_is_unversioned() {
        let v = Version::from_raw(0xabcd);
        let stored = with_version(v, r#"{"a":1}"#);
        assert_eq!(stored.len(), 17 + 7);
        assert_eq!(
            split_version(stored.as_bytes()).unwrap(),
            (&br#"{"a":1}"#[..], v)
        );
        assert_eq!(
            split_version(b"[1]").unwrap(),
            (&b"[1]"[..], Version::UNVERSIONED)
        );
        assert!(split_version(b"\x01abc").is_err());
        assert!(split_version(b"\x01zzzzzzzzzzzzzzzz1").is_err());
        // Skipping the version accepts and refuses exactly what reading it does.
        for stored in [
            stored.as_bytes(),
            b"[1]",
            b"\x01abc",
            b"\x01zzzzzzzzzzzzzzzz1",
            b"\x01",
            b"",
        ] {
            assert_eq!(
                strip_version(stored).ok(),
                split_version(stored).ok().map(|(json, _)| json),
                "{stored:?}"
            );
        }
    }
}
