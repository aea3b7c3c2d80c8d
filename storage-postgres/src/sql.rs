//! The statements, with `{kv}` and `{items}` standing for the (schema-qualified) table names.
//! Public so that tests can `EXPLAIN` them.
//!
//! `$1` is the namespace and `$2` the key. Time is the server's clock, in unix milliseconds, so
//! that instances with different clocks agree on expiry.

/// The server's clock in unix milliseconds.
pub const NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Schema version this build writes.
pub const SCHEMA_VERSION: i32 = 6;

/// Creates the tables (version 1). `{schema_create}` creates the schema when one is configured.
pub const MIGRATION_1: &str = r#"
CREATE TABLE IF NOT EXISTS {kv} (
    ns         text COLLATE "C" NOT NULL,
    key        text COLLATE "C" NOT NULL,
    kind       smallint NOT NULL,
    value      text,
    expires_at bigint,
    list_len   bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (ns, key)
);
CREATE INDEX IF NOT EXISTS {kv_name}_expiry ON {kv} (expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS {items} (
    ns    text COLLATE "C" NOT NULL,
    key   text COLLATE "C" NOT NULL,
    seq   bigint NOT NULL,
    value text NOT NULL,
    PRIMARY KEY (ns, key, seq)
);
"#;

/// Version 2: a list's first sequence number, so that trimming its head removes only the
/// removed items (a list's items are seq list_head .. list_head+list_len-1).
pub const MIGRATION_2: &str =
    "ALTER TABLE {kv} ADD COLUMN IF NOT EXISTS list_head bigint NOT NULL DEFAULT 0";

/// Version 3: a value's version (random, drawn by each write; 0 for values written before).
pub const MIGRATION_3: &str =
    "ALTER TABLE {kv} ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 0";

/// Version 4: blobs. A blob's bytes are the chunks of its upload; the blob row, written last in
/// one transaction, makes them visible. An upload row marks chunks still being written.
pub const MIGRATION_4: &str = r#"
CREATE TABLE IF NOT EXISTS {blobs} (
    ns         text COLLATE "C" NOT NULL,
    id         bytea NOT NULL,
    upload     bytea NOT NULL,
    size       bigint NOT NULL,
    mime       text NOT NULL,
    name       text,
    source     text,
    created_ms bigint NOT NULL,
    PRIMARY KEY (ns, id)
);
CREATE TABLE IF NOT EXISTS {chunks} (
    ns     text COLLATE "C" NOT NULL,
    upload bytea NOT NULL,
    seq    bigint NOT NULL,
    data   bytea NOT NULL,
    PRIMARY KEY (ns, upload, seq)
);
CREATE TABLE IF NOT EXISTS {uploads} (
    ns         text COLLATE "C" NOT NULL,
    upload     bytea NOT NULL,
    started_ms bigint NOT NULL,
    PRIMARY KEY (ns, upload)
);
"#;

/// A list's generation, drawn by the server when the list is created (in its `version`
/// column), so that followers tell a list deleted and created again from the one they follow.
pub const GENERATION: &str = "(floor(random() * 9.2e18))::bigint";

/// A live row's kind, list length, head and version (a list's generation).
pub const LIST_HEADER: &str = "SELECT kind, list_len, list_head, version FROM {kv} WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {now})";

/// A list's header (first row, `seq` -1) and up to `$4` items from the absolute index `$3`, in
/// one statement, so one snapshot.
pub const LIST_WINDOW: &str = "WITH h AS (
    SELECT kind, list_len, list_head, version FROM {kv}
    WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {now})
)
SELECT -1::bigint AS seq, kind, list_len, list_head, version, NULL::text AS value FROM h
UNION ALL
SELECT li.seq, NULL, NULL, NULL, NULL, li.value FROM {items} li JOIN h ON h.kind = 1
WHERE li.ns = $1 AND li.key = $2 AND li.seq >= greatest($3, h.list_head)
  AND li.seq < h.list_head + h.list_len AND li.seq - greatest($3, h.list_head) < $4
ORDER BY seq";

/// A live row's kind and value.
pub const GET: &str = "SELECT kind, value FROM {kv} WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {now})";

/// Live rows among keys `$2` (distinct: a key asked for twice is sent once). One index scan
/// over the primary key for the whole batch (a join with the array measured slower here, and
/// plans no better when statistics are stale).
pub const MGET: &str = "SELECT key, kind, value FROM {kv} WHERE ns = $1 AND key = ANY($2) AND (expires_at IS NULL OR expires_at > {now})";

/// A live row's kind and list length.
pub const HEADER: &str = "SELECT kind, list_len FROM {kv} WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {now})";

/// A live row's remaining milliseconds (null when it has no TTL).
pub const TTL: &str = "SELECT expires_at - {now} FROM {kv} WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {now})";

/// Stores a value (`$3`) with a TTL in ms (`$4`, or null) at version `$5`, replacing a list. The upsert takes the
/// key's row lock. Items of a replaced list are deleted in the same statement; items that a
/// concurrent append commits after this statement's snapshot are harmless orphans (every read is
/// bounded by the header's length, and a new list overwrites them).
pub const SET: &str = "WITH up AS (
    INSERT INTO {kv} AS kv (ns, key, kind, value, expires_at, list_len, list_head, version)
    VALUES ($1, $2, 0, $3, {now} + $4, 0, 0, $5)
    ON CONFLICT (ns, key) DO UPDATE
    SET kind = 0, value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, list_len = 0, list_head = 0, version = EXCLUDED.version
    RETURNING 1
), gone AS (
    DELETE FROM {items} WHERE ns = $1 AND key = $2 RETURNING 1
)
SELECT count(*) FROM up";

/// Stores many values (`$2` keys, `$3` values, `$4` TTLs in ms, `$5` versions), locking keys in key order so
/// that concurrent batches cannot deadlock, and returns the keys that held lists. The caller
/// deletes their items with [`DELETE_ITEMS`] in the same transaction: a single statement that
/// deletes by "key in this batch" lets the planner scan every item of the namespace once a long
/// list exists.
pub const MSET: &str = "WITH input AS (
    SELECT * FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[]) AS t(key, value, ttl, version)
), lists AS (
    SELECT key FROM {kv} WHERE ns = $1 AND key = ANY($2::text[]) AND kind = 1
), up AS (
    INSERT INTO {kv} AS kv (ns, key, kind, value, expires_at, list_len, list_head, version)
    SELECT $1, key, 0, value, {now} + ttl, 0, 0, version FROM input ORDER BY key
    ON CONFLICT (ns, key) DO UPDATE
    SET kind = 0, value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, list_len = 0, list_head = 0, version = EXCLUDED.version
    RETURNING 1
)
SELECT key FROM lists";

/// The items of one list.
pub const DELETE_ITEMS: &str = "DELETE FROM {items} WHERE ns = $1 AND key = $2";

/// Removes a key (both kinds); returns whether it was live.
pub const DELETE: &str = "WITH d AS (
    DELETE FROM {kv} WHERE ns = $1 AND key = $2 RETURNING (expires_at IS NULL OR expires_at > {now}) AS live
), gone AS (
    DELETE FROM {items} WHERE ns = $1 AND key = $2 RETURNING 1
)
SELECT live FROM d";

/// Appends `$3`: under the key's row lock, the header's length grows by one and the item takes
/// the next sequence number. No row comes back when the key holds a live value.
pub const APPEND: &str = "WITH h AS (
    INSERT INTO {kv} AS kv (ns, key, kind, value, expires_at, list_len, version)
    VALUES ($1, $2, 1, NULL, NULL, 1, {generation})
    ON CONFLICT (ns, key) DO UPDATE
    SET list_len = CASE WHEN kv.kind = 1 THEN kv.list_len + 1 ELSE 1 END,
        list_head = CASE WHEN kv.kind = 1 THEN kv.list_head ELSE 0 END,
        version = CASE WHEN kv.kind = 1 THEN kv.version ELSE {generation} END,
        kind = 1, value = NULL, expires_at = NULL
    WHERE kv.kind = 1 OR (kv.expires_at IS NOT NULL AND kv.expires_at <= {now})
    RETURNING list_len, list_head
)
INSERT INTO {items} AS li (ns, key, seq, value)
SELECT $1, $2, list_head + list_len - 1, $3 FROM h
ON CONFLICT (ns, key, seq) DO UPDATE SET value = EXCLUDED.value
RETURNING seq";

/// Appends the items `$3` (a text array) in one statement: the header grows by their number
/// under the key's row lock, and they take the next sequence numbers in order.
pub const APPEND_MANY: &str = "WITH h AS (
    INSERT INTO {kv} AS kv (ns, key, kind, value, expires_at, list_len, version)
    VALUES ($1, $2, 1, NULL, NULL, cardinality($3::text[]), {generation})
    ON CONFLICT (ns, key) DO UPDATE
    SET list_len = CASE WHEN kv.kind = 1 THEN kv.list_len ELSE 0 END + cardinality($3::text[]),
        list_head = CASE WHEN kv.kind = 1 THEN kv.list_head ELSE 0 END,
        version = CASE WHEN kv.kind = 1 THEN kv.version ELSE {generation} END,
        kind = 1, value = NULL, expires_at = NULL
    WHERE kv.kind = 1 OR (kv.expires_at IS NOT NULL AND kv.expires_at <= {now})
    RETURNING list_len, list_head
)
INSERT INTO {items} AS li (ns, key, seq, value)
SELECT $1, $2, h.list_head + h.list_len - cardinality($3::text[]) + t.ord - 1, t.value
FROM h, unnest($3::text[]) WITH ORDINALITY AS t(value, ord)
ON CONFLICT (ns, key, seq) DO UPDATE SET value = EXCLUDED.value
RETURNING seq";

/// Header and LRANGE window (`$3` start, `$4` end) in one statement, so one snapshot: the first
/// row carries the kind and length, and item values follow in order.
pub const RANGE: &str = "WITH h AS (
    SELECT kind, list_len, list_head,
           GREATEST(CASE WHEN $3::bigint < 0 THEN list_len + $3::bigint ELSE $3::bigint END, 0) AS first,
           LEAST(CASE WHEN $4::bigint < 0 THEN list_len + $4::bigint ELSE $4::bigint END, list_len - 1) AS last
    FROM {kv} WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {now})
)
SELECT h.kind, h.list_len, i.value
FROM h LEFT JOIN LATERAL (
    SELECT seq, value FROM {items}
    WHERE ns = $1 AND key = $2 AND h.kind = 1
      AND seq BETWEEN h.list_head + h.first AND h.list_head + h.last
    ORDER BY seq
) i ON true
ORDER BY i.seq";

/// A live list's length and head, locking its row for a trim.
pub const LOCK_LIST: &str = "SELECT kind, list_len, list_head FROM {kv} WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {now}) FOR UPDATE";

/// Drops a list's items outside sequence numbers `$3 ..= $4`, of those it holds (`$5 ..= $6`,
/// its head and last item before the trim): two index ranges bounded on both sides. Without
/// the outer bounds, the range before the new head would start at the key's first index entry
/// and walk every item earlier trims deleted that vacuum has not reclaimed yet, so a list
/// trimmed from its head over and over would cost more per trim as it went.
pub const TRIM_ITEMS: &str = "DELETE FROM {items} WHERE ns = $1 AND key = $2 \
    AND ((seq >= $5 AND seq < $3) OR (seq > $4 AND seq <= $6))";

/// Sets a list's head `$3` and length `$4` after a trim.
pub const SET_WINDOW: &str =
    "UPDATE {kv} SET list_head = $3, list_len = $4 WHERE ns = $1 AND key = $2";

/// Removes a key's header row (its items are removed by [`DELETE_ITEMS`]).
pub const DELETE_KEY: &str = "DELETE FROM {kv} WHERE ns = $1 AND key = $2";

/// A live row's kind, value and version.
pub const GET_VERSIONED: &str = "SELECT kind, value, version FROM {kv} WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {now})";

/// A live row's kind and version: what a refused condition reports.
pub const VERSION_OF: &str = "SELECT kind, version FROM {kv} WHERE ns = $1 AND key = $2 AND (expires_at IS NULL OR expires_at > {now})";

/// Replaces the value at version `$5` (or already at `$4`: this write, sent again after its
/// answer was lost) with `$3` at version `$4`, under the row's lock. No row: the condition
/// does not hold.
pub const SET_IF_VERSION: &str = "UPDATE {kv} SET value = $3, version = $4
    WHERE ns = $1 AND key = $2 AND kind = 0 AND version IN ($5, $4)
      AND (expires_at IS NULL OR expires_at > {now})
    RETURNING 1";

/// Stores `$3` at version `$4` with a TTL in ms (`$5`, or null) where the key holds nothing
/// live (or already holds this write, sent again). No row: the key was taken.
pub const SET_IF_ABSENT: &str = "INSERT INTO {kv} AS kv (ns, key, kind, value, expires_at, list_len, list_head, version)
    VALUES ($1, $2, 0, $3, {now} + $5, 0, 0, $4)
    ON CONFLICT (ns, key) DO UPDATE
    SET kind = 0, value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, list_len = 0, list_head = 0, version = EXCLUDED.version
    WHERE (kv.expires_at IS NOT NULL AND kv.expires_at <= {now}) OR (kv.kind = 0 AND kv.version = EXCLUDED.version)
    RETURNING 1";

/// Removes the value at version `$3`. No row: the condition does not hold.
pub const DELETE_IF_VERSION: &str = "DELETE FROM {kv}
    WHERE ns = $1 AND key = $2 AND kind = 0 AND version = $3
      AND (expires_at IS NULL OR expires_at > {now})
    RETURNING 1";

/// Live keys of a namespace.
pub const KEYS_ALL: &str =
    "SELECT key FROM {kv} WHERE ns = $1 AND (expires_at IS NULL OR expires_at > {now})";

/// Live keys in `[$2, $3)`: the index range of a literal prefix.
pub const KEYS_RANGE: &str = "SELECT key FROM {kv} WHERE ns = $1 AND key >= $2 AND key < $3 AND (expires_at IS NULL OR expires_at > {now})";

/// Live keys from `$2` on, in order; the caller stops past the prefix.
pub const KEYS_FROM: &str = "SELECT key FROM {kv} WHERE ns = $1 AND key >= $2 AND (expires_at IS NULL OR expires_at > {now}) ORDER BY key";

/// Clears a namespace.
pub const CLEAR: &str = "WITH a AS (DELETE FROM {kv} WHERE ns = $1 RETURNING 1), b AS (DELETE FROM {items} WHERE ns = $1 RETURNING 1) SELECT (SELECT count(*) FROM a) + (SELECT count(*) FROM b)";

/// Reclaims expired rows (always values).
pub const RECLAIM: &str = "DELETE FROM {kv} WHERE expires_at IS NOT NULL AND expires_at <= {now}";

/// Version 5: the change log watchers read. A trigger files every change of a key in the
/// writing transaction, with the transaction's id and the time of the write. A reader takes
/// only changes of transactions older than every transaction still running (the snapshot's
/// `xmin`), so a change committed later can never land behind where a reader stands; within
/// what it takes, the time of the write orders one key's changes, since the second writer of a
/// key waits for the first to commit. Appends and trims change a list's length, not its row's
/// identity, and are not filed. Every 1,000th change prunes what is 10,000 behind and raises the
/// horizon. A clear sets `storage.clearing` for its transaction and files one change.
pub const MIGRATION_5: &str = r#"
CREATE TABLE IF NOT EXISTS {changes} (
    seq     bigserial PRIMARY KEY,
    ns      text COLLATE "C" NOT NULL,
    key     text COLLATE "C" NOT NULL,
    kind    smallint NOT NULL,
    version bigint,
    xid     bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint,
    at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS {changes_name}_by_ns ON {changes} (ns, xid);
CREATE TABLE IF NOT EXISTS {horizon} (
    id     boolean PRIMARY KEY DEFAULT true CHECK (id),
    pruned bigint NOT NULL
);
INSERT INTO {horizon} (id, pruned) VALUES (true, 0) ON CONFLICT (id) DO NOTHING;
{log_function}
DROP TRIGGER IF EXISTS {kv_name}_changes ON {kv};
CREATE TRIGGER {kv_name}_changes AFTER INSERT OR UPDATE OR DELETE ON {kv}
    FOR EACH ROW EXECUTE FUNCTION {log_fn}();
"#;

/// The change log's trigger function, as versions 5 and 6 create it (version 6 replaces the
/// one version 5 created). Every 1,000th change prunes, but only when no other transaction
/// is pruning: the horizon row is taken with `SKIP LOCKED`. Waiting for it while holding rows
/// of the storage table could deadlock two writers, one holding the horizon row (until it
/// commits) and waiting for a key the other holds, the other holding that key and waiting for
/// the horizon row: `mset`s of overlapping keys at 64 tasks did, and PostgreSQL broke each
/// after `deadlock_timeout` (1 s) by failing one of them. A skipped prune only keeps more of
/// the log until the next.
pub const LOG_FUNCTION: &str = r#"
CREATE OR REPLACE FUNCTION {log_fn}() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    filed bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF current_setting('storage.clearing', true) IS DISTINCT FROM 'on' THEN
            INSERT INTO {changes} (ns, key, kind) VALUES (OLD.ns, OLD.key,
                CASE WHEN OLD.expires_at IS NOT NULL AND OLD.expires_at <= {now} THEN 2 ELSE 1 END)
            RETURNING seq INTO filed;
        END IF;
    ELSIF TG_OP = 'INSERT' OR NEW.kind IS DISTINCT FROM OLD.kind
          OR NEW.version IS DISTINCT FROM OLD.version OR NEW.value IS DISTINCT FROM OLD.value THEN
        INSERT INTO {changes} (ns, key, kind, version)
        VALUES (NEW.ns, NEW.key, 0, CASE WHEN NEW.kind = 0 THEN NEW.version END)
        RETURNING seq INTO filed;
    END IF;
    IF filed % 1000 = 0 THEN
        PERFORM 1 FROM {horizon} WHERE id FOR UPDATE SKIP LOCKED;
        IF FOUND THEN
            WITH gone AS (DELETE FROM {changes} WHERE seq <= filed - 10000 RETURNING xid)
            UPDATE {horizon} SET pruned = greatest(pruned, (SELECT max(xid) FROM gone));
        END IF;
    END IF;
    RETURN NULL;
END
$fn$;
"#;

/// Version 6: the change log's function prunes without waiting ([`LOG_FUNCTION`]).
pub const MIGRATION_6: &str = "{log_function}";

/// Where the log ends for a reader now, and the pruning horizon.
pub const CHANGE_ENDS: &str =
    "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, pruned FROM {horizon}";

/// The namespace's settled changes of transactions from `$2` on, in the order they were made,
/// with the end and horizon the read saw (one statement, one snapshot).
pub const CHANGES: &str = "WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint AS upto, pruned FROM {horizon}) \
SELECT h.upto, h.pruned, c.key, c.kind, c.version, c.xid, (extract(epoch from c.at) * 1000)::bigint FROM h LEFT JOIN LATERAL \
(SELECT key, kind, version, xid, at, seq FROM {changes} WHERE ns = $1 AND xid >= $2 AND xid < h.upto) c ON true \
ORDER BY c.at, c.seq";

/// Whether the namespace has a settled change from transaction `$2` on.
pub const HAS_CHANGES: &str = "SELECT EXISTS (SELECT 1 FROM {changes} WHERE ns = $1 AND xid >= $2 AND xid < pg_snapshot_xmin(pg_current_snapshot())::text::bigint)";

/// Marks this transaction a clear: its deletions file no change each.
pub const MARK_CLEARING: &str = "SELECT set_config('storage.clearing', 'on', true)";

/// Files a clear.
pub const LOG_CLEAR: &str = "INSERT INTO {changes} (ns, key, kind) VALUES ($1, '', 3)";
