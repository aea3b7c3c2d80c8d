//! Versions of stored values and the conditions of conditional writes.
//!
//! What a version is (an opaque token that changes on every write of its key) and what each
//! [`Condition`] means; not how a backend keeps versions (each backend stores them beside its
//! values) nor the retry loop of an update (`update.rs`).

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::str::FromStr;

/// The version of a value on the database role: a token that changes on every write of its
/// key (`set`, `mset`, `set_if`), compared only for equality.
///
/// Versions are random 64-bit tokens drawn by the writer, not counters: a version read from one
/// store never matches a value of another store (a fallback backend, a migrated copy) except by
/// a chance of one in 2^64. A value written before the store kept versions has the version
/// `0000000000000000` until its next write. Its text form is 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version(u64);

impl Version {
    /// The version of a value stored before its store kept versions.
    pub const UNVERSIONED: Version = Version(0);

    /// A version from the 64-bit number a backend stores (for backend authors).
    pub fn from_raw(raw: u64) -> Version {
        Version(raw)
    }

    /// The 64-bit number a backend stores (for backend authors).
    pub fn raw(self) -> u64 {
        self.0
    }

    /// A new version for a write: random, never [`Version::UNVERSIONED`]. Each write draws one
    /// (backends call this; applications never need to).
    pub fn fresh() -> Version {
        Version(random_u64().max(1))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({self})")
    }
}

impl FromStr for Version {
    type Err = crate::Error;

    /// Parses the text form: exactly 16 hex digits.
    fn from_str(text: &str) -> crate::Result<Version> {
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(crate::Error::invalid_input(format!(
                "{:?} is not a version (16 hex digits, as `get_versioned` gives)",
                crate::redact::excerpt(text, 40)
            )));
        }
        u64::from_str_radix(text, 16)
            .map(Version)
            .map_err(|e| crate::Error::invalid_input(format!("bad version {text:?}: {e}")))
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// When a conditional write ([`crate::Database::set_if`], [`crate::Database::delete_if`]) may
/// take effect. Checked and written atomically: no other write of the key comes between.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// Always: a plain write.
    Any,
    /// Only when the key holds nothing (neither a value nor a list).
    Absent,
    /// Only when the key holds a value whose version is this one: nobody wrote it since it
    /// was read.
    Version(Version),
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::Any => f.write_str("any"),
            Condition::Absent => f.write_str("absent"),
            Condition::Version(v) => write!(f, "version {v}"),
        }
    }
}

/// The refusal of a conditional write: the key was not as the condition said. Carried by an
/// [`crate::ErrorKind::Conflict`] error ([`crate::Error::conflict`]); nothing was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The key, as the caller named it.
    pub key: String,
    /// The key's version when the condition was checked: `None` when it held nothing, or a
    /// list (which has no version).
    pub current: Option<Version>,
}

/// 64 random bits, cheaply: each thread walks its own SplitMix64 sequence from a random start
/// (std's `RandomState`, seeded by the OS, hashing the time), so a thread never draws the same
/// value twice and threads and processes start far apart. Not for secrets; for versions and
/// retry jitter, drawn on every write.
pub(crate) fn random_u64() -> u64 {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(seed());
    }
    STATE.with(|state| {
        let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(next);
        let mut z = next;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    })
}

fn seed() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(nanos);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips_and_refuses_other_text() {
        let v = Version::from_raw(0x0123_4567_89ab_cdef);
        assert_eq!(v.to_string(), "0123456789abcdef");
        assert_eq!("0123456789abcdef".parse::<Version>().unwrap(), v);
        assert_eq!("0123456789ABCDEF".parse::<Version>().unwrap(), v);
        for bad in [
            "",
            "123",
            "0123456789abcdeg",
            "0123456789abcdef0",
            "+123456789abcdef",
        ] {
            let e = bad.parse::<Version>().unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidInput, "{bad:?}");
        }
        assert_eq!(format!("{v:?}"), "Version(0123456789abcdef)");
        assert_eq!(Version::UNVERSIONED.to_string(), "0000000000000000");
    }

    #[test]
    fn fresh_versions_differ_and_are_never_unversioned() {
        let drawn: std::collections::HashSet<Version> =
            (0..10_000).map(|_| Version::fresh()).collect();
        assert_eq!(drawn.len(), 10_000);
        assert!(!drawn.contains(&Version::UNVERSIONED));
    }

    #[test]
    fn threads_draw_distinct_versions() {
        let threads: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(|| (0..10_000).map(|_| Version::fresh()).collect::<Vec<_>>())
            })
            .collect();
        let mut all = std::collections::HashSet::new();
        for t in threads {
            all.extend(t.join().unwrap());
        }
        assert_eq!(all.len(), 40_000);
    }

    #[test]
    fn serde_uses_the_text_form() {
        let v = Version::from_raw(42);
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, "\"000000000000002a\"");
        assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), v);
        assert!(serde_json::from_str::<Version>("\"x\"").is_err());
    }

    #[test]
    fn conditions_say_what_they_are() {
        assert_eq!(Condition::Any.to_string(), "any");
        assert_eq!(Condition::Absent.to_string(), "absent");
        assert_eq!(
            Condition::Version(Version::from_raw(1)).to_string(),
            "version 0000000000000001"
        );
    }
}
