//! The change log a watcher reads ([`storage_core::watch`]): per namespace, the most recent
//! changes with their positions. Not kept until something watches the namespace: before the
//! first [`ChangeLogs::window`] no watcher holds a position, so nothing can be missed, and a
//! store nobody watches pays one emptiness test per write.

use std::collections::{HashMap, VecDeque};
use storage_core::Version;
use storage_core::watch::{Change, ChangeKind, ChangeWindow, RETAINED_CHANGES};

#[derive(Debug, Default)]
pub(crate) struct ChangeLogs {
    by_namespace: HashMap<String, Log>,
    /// Woken on every change filed, for watchers waiting on the log's end.
    pub(crate) filed: std::sync::Arc<tokio::sync::Notify>,
}

#[derive(Debug, Default)]
struct Log {
    /// The position of `entries[0]`.
    start: u64,
    entries: VecDeque<(String, ChangeKind, Option<u64>, u64)>,
}

impl ChangeLogs {
    /// Files a change of `key` in `ns`, if the namespace is watched.
    pub(crate) fn record(&mut self, ns: &str, key: &str, kind: ChangeKind, version: Option<u64>) {
        if self.by_namespace.is_empty() {
            return;
        }
        if let Some(log) = self.by_namespace.get_mut(ns) {
            if log.entries.len() as u64 >= RETAINED_CHANGES {
                log.entries.pop_front();
                log.start += 1;
            }
            log.entries.push_back((
                key.to_string(),
                kind,
                version,
                storage_core::watch::now_ms(),
            ));
            self.filed.notify_waiters();
        }
    }

    /// The end of `ns`'s log, where the next change will be filed (0 before it is watched).
    pub(crate) fn end(&self, ns: &str) -> u64 {
        self.by_namespace
            .get(ns)
            .map_or(0, |log| log.start + log.entries.len() as u64)
    }

    /// Up to `max` changes of `ns` from `from` on; starts keeping `ns`'s log.
    pub(crate) fn window(&mut self, ns: &str, from: Option<u64>, max: usize) -> ChangeWindow {
        let log = self.by_namespace.entry(ns.to_string()).or_default();
        let end = log.start + log.entries.len() as u64;
        let Some(from) = from else {
            return ChangeWindow {
                oldest: log.start,
                next: end,
                changes: Vec::new(),
            };
        };
        let skip = from.saturating_sub(log.start) as usize;
        let changes: Vec<Change> = log
            .entries
            .iter()
            .enumerate()
            .skip(skip)
            .take(max)
            .map(|(i, (key, kind, version, at))| Change {
                position: log.start + i as u64,
                key: key.clone(),
                kind: *kind,
                version: version.map(Version::from_raw),
                at_ms: Some(*at),
            })
            .collect();
        ChangeWindow {
            oldest: log.start,
            next: changes.last().map_or(end.max(from), |c| c.position + 1),
            changes,
        }
    }
}
