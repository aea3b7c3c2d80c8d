//! The conditional operations of [`MemoryBackend`]: reads with a version, writes that check a
//! condition first, both under the store's one lock, so nothing comes between the check and
//! the write. Not the plain operations (`lib.rs`).

use crate::{Entry, MemoryBackend, Now, Slot};
use serde_json::Value;
use std::time::Duration;
use storage_core::{Condition, Error, Result, Version};

/// What a key holds for a condition: nothing, a list, or a value at a version.
enum Held {
    Nothing,
    List,
    Value(Version),
}

fn held(entry: Option<&Entry>) -> Held {
    match entry {
        None => Held::Nothing,
        Some(Entry {
            slot: Slot::List(_),
            ..
        }) => Held::List,
        Some(e) => Held::Value(Version::from_raw(e.version)),
    }
}

/// Whether `condition` holds for what the key holds: `Ok(())`, or the conflict (or, for a
/// version on a list, the wrong-type error).
fn check(key: &str, condition: &Condition, held: Held) -> Result<()> {
    match (condition, held) {
        (Condition::Any, _) | (Condition::Absent, Held::Nothing) => Ok(()),
        (Condition::Version(want), Held::Value(have)) if *want == have => Ok(()),
        (Condition::Version(_), Held::List) => Err(Error::holds_list(key)),
        (_, Held::Value(have)) => Err(Error::conflict(key, Some(have))),
        (_, Held::Nothing | Held::List) => Err(Error::conflict(key, None)),
    }
}

impl MemoryBackend {
    pub(crate) fn versioned(&self, key: &str) -> Result<Option<(Value, Version)>> {
        self.open()?;
        let state = self.store.read();
        match state.live(&self.ns, key, &Now::default()) {
            None => Ok(None),
            Some(Entry {
                slot: Slot::Value(v),
                version,
                ..
            }) => Ok(Some((v.clone(), Version::from_raw(*version)))),
            Some(_) => Err(Error::holds_list(key)),
        }
    }

    pub(crate) fn put_if(
        &self,
        key: &str,
        value: &Value,
        condition: &Condition,
    ) -> Result<Version> {
        self.open()?;
        let slot = Slot::Value(value.clone());
        let mut state = self.store.write();
        let now = Now::default();
        check(key, condition, held(state.live(&self.ns, key, &now)))?;
        let replaced = state.put(&self.ns, key, slot, None, &now);
        let version = state
            .live(&self.ns, key, &now)
            .map(|e| Version::from_raw(e.version))
            .ok_or_else(|| Error::other("the value just stored is missing"))?;
        drop(state);
        drop(replaced);
        Ok(version)
    }

    pub(crate) fn remove_if(&self, key: &str, condition: &Condition) -> Result<bool> {
        self.open()?;
        let mut state = self.store.write();
        let now = Now::default();
        check(key, condition, held(state.live(&self.ns, key, &now)))?;
        if *condition == Condition::Absent {
            return Ok(false);
        }
        let removed = state.remove(&self.ns, key, &now);
        drop(state);
        Ok(removed.is_some())
    }

    pub(crate) fn put_if_absent(
        &self,
        key: &str,
        value: &Value,
        ttl: Option<Duration>,
    ) -> Result<bool> {
        self.open()?;
        let slot = Slot::Value(value.clone());
        let mut state = self.store.write();
        let now = Now::default();
        if state.live(&self.ns, key, &now).is_some() {
            return Ok(false);
        }
        // What it replaces is an expired entry at most.
        let _expired = state.put(&self.ns, key, slot, ttl, &now);
        Ok(true)
    }
}
