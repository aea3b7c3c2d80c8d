//! The store's state: entries (a value with its version, or a list) by namespace and key,
//! and the expiry index. Not the operations (`lib.rs`, `conditional.rs`), which take the
//! store's lock and call these.

use crate::changes::ChangeLogs;
use crate::namespace::Namespace;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};
use storage_core::Version;
use storage_core::watch::ChangeKind;

#[derive(Debug, Clone)]
pub(crate) enum Slot {
    Value(Value),
    List(ListItems),
}

/// A list's items and the absolute index of the first (how many were trimmed from its head),
/// which followers read by.
#[derive(Debug, Clone, Default)]
pub(crate) struct ListItems {
    pub(crate) head: u64,
    pub(crate) items: VecDeque<Value>,
}

impl std::ops::Deref for ListItems {
    type Target = VecDeque<Value>;
    fn deref(&self) -> &VecDeque<Value> {
        &self.items
    }
}

impl std::ops::DerefMut for ListItems {
    fn deref_mut(&mut self) -> &mut VecDeque<Value> {
        &mut self.items
    }
}

#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) slot: Slot,
    /// A value's version (`Version::raw`); for a list, its generation (drawn the same way when
    /// the list is created, so that a list deleted and created again is told apart).
    pub(crate) version: u64,
    /// The deadline and its tie-breaking sequence number, as filed in the expiry index.
    pub(crate) expiry: Option<(Instant, u64)>,
}

impl Entry {
    pub(crate) fn live(&self, now: &Now) -> bool {
        self.expiry.is_none_or(|(deadline, _)| deadline > now.get())
    }
}

/// The time of one operation, read from the clock only if something needs it: most keys have
/// no TTL, and a clock read costs about as much as the lookup it would serve.
#[derive(Default)]
pub(crate) struct Now(pub(crate) std::cell::OnceCell<Instant>);

impl Now {
    pub(crate) fn get(&self) -> Instant {
        *self.0.get_or_init(Instant::now)
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) namespaces: HashMap<String, Namespace>,
    /// (deadline, seq) -> (namespace, key), for every entry with a TTL.
    pub(crate) expiry: BTreeMap<(Instant, u64), (String, String)>,
    next_seq: u64,
    /// What watchers read: every change below, filed as it is made.
    pub(crate) changes: ChangeLogs,
}

impl State {
    /// Removes every entry whose deadline has passed. Called on each write, so that memory
    /// held by expired keys is bounded by what was written since the last write.
    pub(crate) fn reclaim(&mut self, now: &Now) {
        while let Some(entry) = self.expiry.first_entry() {
            if entry.key().0 > now.get() {
                break;
            }
            let (ns, key) = entry.remove();
            if let Some(map) = self.namespaces.get_mut(&ns) {
                map.remove(&key);
                self.changes.record(&ns, &key, ChangeKind::Expired, None);
                if map.is_empty() {
                    self.namespaces.remove(&ns);
                }
            }
        }
    }

    pub(crate) fn ns_mut(&mut self, ns: &str) -> &mut Namespace {
        if !self.namespaces.contains_key(ns) {
            self.namespaces.insert(ns.to_string(), Namespace::default());
        }
        self.namespaces.get_mut(ns).expect("inserted above")
    }

    /// Removes `key`, unfiling its deadline. Returns the entry if it was live.
    pub(crate) fn remove(&mut self, ns: &str, key: &str, now: &Now) -> Option<Entry> {
        let map = self.namespaces.get_mut(ns)?;
        let entry = map.remove(key)?;
        if map.is_empty() {
            self.namespaces.remove(ns);
        }
        if let Some(exp) = entry.expiry {
            self.expiry.remove(&exp);
        }
        let live = entry.live(now);
        let kind = if live {
            ChangeKind::Delete
        } else {
            ChangeKind::Expired
        };
        self.changes.record(ns, key, kind, None);
        live.then_some(entry)
    }

    /// Stores `slot` at `key` and returns the entry it replaced, for the caller to drop after
    /// releasing the lock (a value's drop frees every part of it). An existing key keeps its
    /// allocation: one lookup, no new key string.
    #[must_use = "drop the replaced entry after releasing the lock"]
    pub(crate) fn put(
        &mut self,
        ns: &str,
        key: &str,
        slot: Slot,
        ttl: Option<Duration>,
        now: &Now,
    ) -> Option<Entry> {
        let version = Version::fresh().raw();
        // A deadline past what `Instant` can represent (hundreds of years) is "never".
        let expiry = ttl.and_then(|t| now.get().checked_add(t)).map(|deadline| {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.expiry
                .insert((deadline, seq), (ns.to_string(), key.to_string()));
            (deadline, seq)
        });
        let value_version = matches!(slot, Slot::Value(_)).then_some(version);
        self.changes.record(ns, key, ChangeKind::Set, value_version);
        let entry = Entry {
            slot,
            version,
            expiry,
        };
        let map = self.ns_mut(ns);
        let old = match map.get_mut(key) {
            Some(existing) => Some(std::mem::replace(existing, entry)),
            None => map.insert(key.to_string(), entry),
        };
        if let Some(exp) = old.as_ref().and_then(|o| o.expiry) {
            self.expiry.remove(&exp);
        }
        old
    }

    pub(crate) fn live(&self, ns: &str, key: &str, now: &Now) -> Option<&Entry> {
        self.namespaces.get(ns)?.get(key).filter(|e| e.live(now))
    }

    pub(crate) fn entry_count(&self) -> usize {
        self.namespaces.values().map(Namespace::len).sum()
    }
}
