//! One namespace's entries: a hash map for the point operations, and an ordered index of its
//! keys, so that `keys` with a literal prefix visits the keys that start with it, not the whole
//! namespace. The index is not kept until the first such `keys` call builds it (as a watcher's
//! change log is not kept until something watches): a namespace nobody lists by prefix pays
//! nothing for it, one that is listed pays a copy of each key and an ordered insert per new key.
//! Not the expiry index or the change log (`state.rs`, `changes.rs`).

use crate::state::Entry;
use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;

/// The entries of one namespace, by key. Every insertion and removal goes through here, so the
/// ordered index, once built, holds exactly the map's keys.
#[derive(Debug, Default)]
pub(crate) struct Namespace {
    entries: HashMap<String, Entry>,
    /// Every key of `entries`, in order; `None` until a prefix listing asks for it.
    ordered: Option<BTreeSet<String>>,
}

impl Namespace {
    pub(crate) fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        self.entries.get_mut(key)
    }

    /// Stores `entry` at `key`, returning the entry it replaced.
    pub(crate) fn insert(&mut self, key: String, entry: Entry) -> Option<Entry> {
        if let Some(ordered) = &mut self.ordered
            && !ordered.contains(key.as_str())
        {
            ordered.insert(key.clone());
        }
        self.entries.insert(key, entry)
    }

    pub(crate) fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        if let Some(ordered) = &mut self.ordered {
            ordered.remove(key);
        }
        Some(entry)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every key with its entry, in no order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    pub(crate) fn into_entries(self) -> impl Iterator<Item = Entry> {
        self.entries.into_values()
    }

    /// Whether the ordered index is kept ([`Namespace::ordered_from`]).
    pub(crate) fn is_ordered(&self) -> bool {
        self.ordered.is_some()
    }

    /// Builds the ordered index, if it is not kept yet: one pass over the keys, once.
    pub(crate) fn keep_ordered(&mut self) {
        if self.ordered.is_none() {
            self.ordered = Some(self.entries.keys().cloned().collect());
        }
    }

    /// The keys that start with `prefix`, in order, from the ordered index; `None` when it is
    /// not kept.
    pub(crate) fn ordered_from<'a>(
        &'a self,
        prefix: &'a str,
    ) -> Option<impl Iterator<Item = &'a String> + 'a> {
        let ordered = self.ordered.as_ref()?;
        Some(
            ordered
                .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                .take_while(move |k| k.starts_with(prefix)),
        )
    }

    /// Whether the ordered index, if kept, holds exactly the map's keys.
    #[cfg(test)]
    pub(crate) fn index_matches_map(&self) -> bool {
        self.ordered.as_ref().is_none_or(|ordered| {
            ordered.len() == self.entries.len()
                && ordered
                    .iter()
                    .all(|k| self.entries.contains_key(k.as_str()))
        })
    }
}
