//! Every statement the backend runs, public so that tests can `EXPLAIN QUERY PLAN` them.
//!
//! `?1` is always the namespace and `?2` the key. A row is live while `expires_at` is null or
//! after `?3` (now, in unix milliseconds).

/// A live row's kind and value.
pub const GET: &str = "SELECT kind, value FROM kv WHERE ns = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)";
/// The live rows among the keys of the JSON array `?2`, each with its index in the array: one
/// statement and one primary-key search per key, instead of one statement per key. `CROSS
/// JOIN` keeps the array as the outer loop whatever the statistics say: with the key table
/// outside, the planner scans every row of it.
pub const MGET: &str = "SELECT wanted.key, kv.kind, kv.value FROM json_each(?2) AS wanted CROSS JOIN kv ON kv.ns = ?1 AND kv.key = wanted.value WHERE kv.expires_at IS NULL OR kv.expires_at > ?3";
/// A live row's kind and list length.
pub const HEADER: &str = "SELECT kind, list_len, list_head FROM kv WHERE ns = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)";
/// A live row's deadline.
pub const EXPIRY: &str = "SELECT expires_at FROM kv WHERE ns = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)";
/// A live row's kind, value and version.
pub const GET_VERSIONED: &str = "SELECT kind, value, version FROM kv WHERE ns = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)";
/// A live row's kind and version, for a condition.
pub const VERSION_OF: &str = "SELECT kind, version FROM kv WHERE ns = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)";
/// Stores a value at version `?5`, replacing a value or a list header.
pub const UPSERT_VALUE: &str = "INSERT INTO kv (ns, key, kind, value, expires_at, list_len, list_head, version) VALUES (?1, ?2, 0, ?3, ?4, 0, 0, ?5) \
     ON CONFLICT (ns, key) DO UPDATE SET kind = 0, value = excluded.value, expires_at = excluded.expires_at, list_len = 0, list_head = 0, version = excluded.version";
/// Removes a key's row, saying what it was.
pub const DELETE_ROW: &str = "DELETE FROM kv WHERE ns = ?1 AND key = ?2 RETURNING kind, expires_at";
/// Removes a list's items.
pub const DELETE_ITEMS: &str = "DELETE FROM list_items WHERE ns = ?1 AND key = ?2";
/// Starts a list of `?3` items (the first append).
pub const NEW_LIST: &str = "INSERT INTO kv (ns, key, kind, value, expires_at, list_len, list_head, version) VALUES (?1, ?2, 1, NULL, NULL, ?3, 0, ?4) \
     ON CONFLICT (ns, key) DO UPDATE SET kind = 1, value = NULL, expires_at = NULL, list_len = ?3, list_head = 0, version = ?4";
/// A live row's kind, list length, head and version (a list's generation).
pub const LIST_HEADER: &str = "SELECT kind, list_len, list_head, version FROM kv WHERE ns = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)";
/// Grows a list by `?3` items.
pub const BUMP_LIST: &str = "UPDATE kv SET list_len = list_len + ?3 WHERE ns = ?1 AND key = ?2";
/// Adds an item at sequence `?3`.
pub const INSERT_ITEM: &str =
    "INSERT INTO list_items (ns, key, seq, value) VALUES (?1, ?2, ?3, ?4)";
/// Reads items `?3 ..= ?4` in order.
pub const RANGE: &str = "SELECT value FROM list_items WHERE ns = ?1 AND key = ?2 AND seq BETWEEN ?3 AND ?4 ORDER BY seq";
/// Drops a list's items before sequence `?3` (its new head).
pub const TRIM_HEAD: &str = "DELETE FROM list_items WHERE ns = ?1 AND key = ?2 AND seq < ?3";
/// Drops a list's items after sequence `?3` (its new last item).
pub const TRIM_TAIL: &str = "DELETE FROM list_items WHERE ns = ?1 AND key = ?2 AND seq > ?3";
/// Sets a list's head `?3` and length `?4` after a trim.
pub const SET_WINDOW: &str =
    "UPDATE kv SET list_head = ?3, list_len = ?4 WHERE ns = ?1 AND key = ?2";
/// Removes a key's header row.
pub const DELETE_KEY: &str = "DELETE FROM kv WHERE ns = ?1 AND key = ?2";

/// Every live key of a namespace.
pub const KEYS_ALL: &str =
    "SELECT key FROM kv WHERE ns = ?1 AND (expires_at IS NULL OR expires_at > ?2)";
/// Live keys from `?3` on (a literal prefix), in key order; the caller stops past the prefix.
pub const KEYS_FROM: &str = "SELECT key FROM kv WHERE ns = ?1 AND (expires_at IS NULL OR expires_at > ?2) AND key >= ?3 ORDER BY key";
/// Live keys in `[?3, ?4)`: the range of a literal prefix.
pub const KEYS_RANGE: &str = "SELECT key FROM kv WHERE ns = ?1 AND (expires_at IS NULL OR expires_at > ?2) AND key >= ?3 AND key < ?4";
/// Clears a namespace's keys.
pub const CLEAR_KEYS: &str = "DELETE FROM kv WHERE ns = ?1";
/// Clears a namespace's list items.
pub const CLEAR_ITEMS: &str = "DELETE FROM list_items WHERE ns = ?1";
/// Reclaims expired rows (they are always values).
pub const RECLAIM: &str = "DELETE FROM kv WHERE expires_at IS NOT NULL AND expires_at <= ?1";

/// Marks the clear in progress (its deletions file no change each) or done.
pub const SET_CLEARING: &str = "UPDATE change_horizon SET clearing = ?1 WHERE id = 0";

/// Files one change (a clear's).
pub const LOG_CHANGE: &str =
    "INSERT INTO changes (ns, key, kind, version) VALUES (?1, ?2, ?3, NULL)";

/// The namespace's changes from position `?2`, at most `?3`.
pub const CHANGES: &str = "SELECT seq, key, kind, version, at FROM changes WHERE ns = ?1 AND seq >= ?2 ORDER BY seq LIMIT ?3";

/// The last position handed out (0 before the first change) and the pruning horizon.
pub const CHANGE_ENDS: &str = "SELECT (SELECT coalesce(max(seq), 0) FROM sqlite_sequence WHERE name = 'changes'), pruned FROM change_horizon WHERE id = 0";
