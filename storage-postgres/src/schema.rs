//! The tables: the statements of one backend with its schema's table names filled in, and the
//! versioned migration that runs on connect under an advisory lock.

use crate::core::pg_error;
use crate::sql;
use storage_core::{Error, Result};

/// The statements of one backend, with its table names filled in.
pub(crate) struct Statements {
    pub(crate) get: String,
    pub(crate) mget: String,
    pub(crate) header: String,
    pub(crate) ttl: String,
    pub(crate) set: String,
    pub(crate) mset: String,
    pub(crate) delete_items: String,
    pub(crate) delete: String,
    pub(crate) append: String,
    pub(crate) append_many: String,
    pub(crate) range: String,
    pub(crate) keys_all: String,
    pub(crate) keys_range: String,
    pub(crate) keys_from: String,
    pub(crate) clear: String,
    pub(crate) reclaim: String,
    pub(crate) lock_list: String,
    pub(crate) trim_items: String,
    pub(crate) set_window: String,
    pub(crate) delete_key: String,
    pub(crate) get_versioned: String,
    pub(crate) version_of: String,
    pub(crate) set_if_version: String,
    pub(crate) set_if_absent: String,
    pub(crate) delete_if_version: String,
    pub(crate) list_header: String,
    pub(crate) list_window: String,
    pub(crate) changes: String,
    pub(crate) change_ends: String,
    pub(crate) has_changes: String,
    pub(crate) mark_clearing: String,
    pub(crate) log_clear: String,
    /// The blob tables' (schema-qualified) names.
    pub(crate) blobs: String,
    pub(crate) blob_chunks: String,
    pub(crate) blob_uploads: String,
}

/// Quotes an identifier that config validation already restricted to `[A-Za-z0-9_$]`.
fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// A table's name in `schema`, quoted.
fn qualified(schema: Option<&str>, table: &str) -> String {
    match schema {
        Some(s) => format!("{}.{table}", quote_ident(s)),
        None => table.to_string(),
    }
}

impl Statements {
    pub(crate) fn new(schema: Option<&str>) -> Self {
        let (kv, items) = match schema {
            Some(s) => (
                format!("{}.storage_kv", quote_ident(s)),
                format!("{}.storage_list_items", quote_ident(s)),
            ),
            None => ("storage_kv".to_string(), "storage_list_items".to_string()),
        };
        let changes = qualified(schema, "storage_changes");
        let horizon = qualified(schema, "storage_change_horizon");
        let fill = |t: &str| {
            t.replace("{kv}", &kv)
                .replace("{changes}", &changes)
                .replace("{horizon}", &horizon)
                .replace("{items}", &items)
                .replace("{now}", sql::NOW_MS)
                .replace("{generation}", sql::GENERATION)
        };
        Statements {
            get: fill(sql::GET),
            mget: fill(sql::MGET),
            header: fill(sql::HEADER),
            ttl: fill(sql::TTL),
            set: fill(sql::SET),
            mset: fill(sql::MSET),
            delete_items: fill(sql::DELETE_ITEMS),
            delete: fill(sql::DELETE),
            append: fill(sql::APPEND),
            append_many: fill(sql::APPEND_MANY),
            range: fill(sql::RANGE),
            keys_all: fill(sql::KEYS_ALL),
            keys_range: fill(sql::KEYS_RANGE),
            keys_from: fill(sql::KEYS_FROM),
            clear: fill(sql::CLEAR),
            reclaim: fill(sql::RECLAIM),
            lock_list: fill(sql::LOCK_LIST),
            trim_items: fill(sql::TRIM_ITEMS),
            set_window: fill(sql::SET_WINDOW),
            delete_key: fill(sql::DELETE_KEY),
            get_versioned: fill(sql::GET_VERSIONED),
            version_of: fill(sql::VERSION_OF),
            set_if_version: fill(sql::SET_IF_VERSION),
            set_if_absent: fill(sql::SET_IF_ABSENT),
            delete_if_version: fill(sql::DELETE_IF_VERSION),
            list_header: fill(sql::LIST_HEADER),
            list_window: fill(sql::LIST_WINDOW),
            changes: fill(sql::CHANGES),
            change_ends: fill(sql::CHANGE_ENDS),
            has_changes: fill(sql::HAS_CHANGES),
            mark_clearing: fill(sql::MARK_CLEARING),
            log_clear: fill(sql::LOG_CLEAR),
            blobs: qualified(schema, "storage_blobs"),
            blob_chunks: qualified(schema, "storage_blob_chunks"),
            blob_uploads: qualified(schema, "storage_blob_uploads"),
        }
    }
}

/// Creates or upgrades the tables, under an advisory lock so that instances starting together
/// take turns.
pub(crate) async fn migrate(
    conn: &mut tokio_postgres::Client,
    schema: Option<&str>,
    describe: &str,
) -> Result<()> {
    let tx = conn
        .transaction()
        .await
        .map_err(|e| pg_error(e, "starting the migration"))?;
    // Several instances may start at once: one migrates, the others wait and then see it done.
    tx.execute("SELECT pg_advisory_xact_lock(7294514218675021137)", &[])
        .await
        .map_err(|e| pg_error(e, "taking the migration lock"))?;
    let (meta, kv, kv_name, items) = match schema {
        Some(s) => {
            tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(s)))
                .await
                .map_err(|e| pg_error(e, "creating the schema"))?;
            let q = quote_ident(s);
            (
                format!("{q}.storage_meta"),
                format!("{q}.storage_kv"),
                "storage_kv".to_string(),
                format!("{q}.storage_list_items"),
            )
        }
        None => (
            "storage_meta".into(),
            "storage_kv".into(),
            "storage_kv".into(),
            "storage_list_items".into(),
        ),
    };
    tx.batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {meta} (id boolean PRIMARY KEY DEFAULT true CHECK (id), version integer NOT NULL)"
        ))
        .await
        .map_err(|e| pg_error(e, "creating the meta table"))?;
    let version: Option<i32> = tx
        .query_opt(&format!("SELECT version FROM {meta}"), &[])
        .await
        .map_err(|e| pg_error(e, "reading the schema version"))?
        .map(|r| r.get(0));
    let version = version.unwrap_or(0);
    if version > sql::SCHEMA_VERSION {
        return Err(Error::config(format!(
            "{} has storage schema version {version}, newer than this build supports ({})",
            describe,
            sql::SCHEMA_VERSION
        )));
    }
    if version < 1 {
        let ddl = sql::MIGRATION_1
            .replace("{kv}", &kv)
            .replace("{kv_name}", &kv_name)
            .replace("{items}", &items);
        tx.batch_execute(&ddl)
            .await
            .map_err(|e| pg_error(e, "migrating to version 1"))?;
    }
    if version < 2 {
        tx.batch_execute(&sql::MIGRATION_2.replace("{kv}", &kv))
            .await
            .map_err(|e| pg_error(e, "migrating to version 2"))?;
    }
    if version < 3 {
        tx.batch_execute(&sql::MIGRATION_3.replace("{kv}", &kv))
            .await
            .map_err(|e| pg_error(e, "migrating to version 3"))?;
    }
    if version < 4 {
        let ddl = sql::MIGRATION_4
            .replace("{blobs}", &qualified(schema, "storage_blobs"))
            .replace("{chunks}", &qualified(schema, "storage_blob_chunks"))
            .replace("{uploads}", &qualified(schema, "storage_blob_uploads"));
        tx.batch_execute(&ddl)
            .await
            .map_err(|e| pg_error(e, "migrating to version 4"))?;
    }
    if version < 5 {
        let ddl = sql::MIGRATION_5
            .replace("{changes}", &qualified(schema, "storage_changes"))
            .replace("{changes_name}", "storage_changes")
            .replace("{horizon}", &qualified(schema, "storage_change_horizon"))
            .replace("{log_fn}", &qualified(schema, "storage_log_change"))
            .replace("{kv}", &kv)
            .replace("{kv_name}", &kv_name)
            .replace("{now}", sql::NOW_MS);
        tx.batch_execute(&ddl)
            .await
            .map_err(|e| pg_error(e, "migrating to version 5"))?;
    }
    tx.execute(
            &format!("INSERT INTO {meta} (id, version) VALUES (true, $1) ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version"),
            &[&sql::SCHEMA_VERSION],
        )
        .await
        .map_err(|e| pg_error(e, "stamping the schema version"))?;
    tx.commit()
        .await
        .map_err(|e| pg_error(e, "committing the migration"))?;
    Ok(())
}
