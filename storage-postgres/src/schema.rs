//! The tables: the statements of one backend with its schema's table names filled in, and the
//! versioned migration that runs on connect under an advisory lock.

use crate::core::pg_error;
use crate::sql;
use storage_core::{Error, ErrorKind, Result};
use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;

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

/// The meta table's (schema-qualified) name.
fn meta_table(schema: Option<&str>) -> String {
    qualified(schema, "storage_meta")
}

/// The DDL that takes a schema at `version` to [`sql::SCHEMA_VERSION`], step by step: (what
/// the step does, its statements). From version 0 it also creates the schema (when named) and
/// the meta table.
fn steps(schema: Option<&str>, version: i32) -> Vec<(String, String)> {
    let kv = qualified(schema, "storage_kv");
    let items = qualified(schema, "storage_list_items");
    let meta = meta_table(schema);
    let mut steps = Vec::new();
    if version < 1 {
        if let Some(s) = schema {
            steps.push((
                "creating the schema".into(),
                format!("CREATE SCHEMA IF NOT EXISTS {};", quote_ident(s)),
            ));
        }
        steps.push((
            "creating the meta table".into(),
            format!("CREATE TABLE IF NOT EXISTS {meta} (id boolean PRIMARY KEY DEFAULT true CHECK (id), version integer NOT NULL);"),
        ));
        steps.push((
            "migrating to version 1".into(),
            sql::MIGRATION_1
                .replace("{kv}", &kv)
                .replace("{kv_name}", "storage_kv")
                .replace("{items}", &items),
        ));
    }
    if version < 2 {
        steps.push((
            "migrating to version 2".into(),
            sql::MIGRATION_2.replace("{kv}", &kv),
        ));
    }
    if version < 3 {
        steps.push((
            "migrating to version 3".into(),
            sql::MIGRATION_3.replace("{kv}", &kv),
        ));
    }
    if version < 4 {
        let ddl = sql::MIGRATION_4
            .replace("{blobs}", &qualified(schema, "storage_blobs"))
            .replace("{chunks}", &qualified(schema, "storage_blob_chunks"))
            .replace("{uploads}", &qualified(schema, "storage_blob_uploads"));
        steps.push(("migrating to version 4".into(), ddl));
    }
    // The change log's tables and trigger (5), and its function as it is now (5 and 6).
    let change_log = |ddl: &str| {
        ddl.replace("{log_function}", sql::LOG_FUNCTION)
            .replace("{changes}", &qualified(schema, "storage_changes"))
            .replace("{changes_name}", "storage_changes")
            .replace("{horizon}", &qualified(schema, "storage_change_horizon"))
            .replace("{log_fn}", &qualified(schema, "storage_log_change"))
            .replace("{kv}", &kv)
            .replace("{kv_name}", "storage_kv")
            .replace("{now}", sql::NOW_MS)
    };
    if version < 5 {
        steps.push((
            "migrating to version 5".into(),
            change_log(sql::MIGRATION_5),
        ));
    }
    if version < 6 {
        steps.push((
            "migrating to version 6".into(),
            change_log(sql::MIGRATION_6),
        ));
    }
    steps.push((
        "stamping the schema version".into(),
        format!(
            "INSERT INTO {meta} (id, version) VALUES (true, {v}) ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;",
            v = sql::SCHEMA_VERSION
        ),
    ));
    steps
}

/// Everything an owner runs to create the tables in `schema` (or the search path's first
/// schema) from nothing, in one transaction: what `storage init --print-sql` prints. Each
/// statement is idempotent, so it may also be applied over an older schema.
pub fn schema_sql(schema: Option<&str>) -> String {
    let mut out = format!(
        "-- storage schema version {} (PostgreSQL){}\nBEGIN;\nSELECT pg_advisory_xact_lock({MIGRATION_LOCK});\n",
        sql::SCHEMA_VERSION,
        schema.map_or(String::new(), |s| format!(", schema {s}"))
    );
    for (what, ddl) in steps(schema, 0) {
        let ddl = ddl.trim();
        // Each step runs alone in `migrate`; printed together, each must end its statement.
        let end = if ddl.ends_with(';') { "" } else { ";" };
        out.push_str(&format!("-- {what}\n{ddl}{end}\n"));
    }
    out.push_str("COMMIT;\n");
    out
}

/// The advisory lock instances take turns under while migrating.
const MIGRATION_LOCK: i64 = 7294514218675021137;

/// The schema version the meta table records; `None` when there is no meta table (or no
/// schema) yet. Needs no right but to read it.
async fn recorded_version(conn: &impl GenericClient, schema: Option<&str>) -> Result<Option<i32>> {
    let meta = meta_table(schema);
    let no_grant = |e: tokio_postgres::Error, what: &str| {
        if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
            Error::new(
                ErrorKind::PermissionDenied,
                format!(
                    "{what}: {}: grant this role USAGE on the schema, SELECT, INSERT, UPDATE, DELETE on its tables and USAGE on its sequences",
                    e.as_db_error().map_or("permission denied", |d| d.message())
                ),
            )
            .permanent()
        } else {
            pg_error(e, what)
        }
    };
    let exists: bool = conn
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&meta])
        .await
        .map_err(|e| no_grant(e, "looking for the storage schema's meta table"))?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let row = conn
        .query_opt(&format!("SELECT version FROM {meta}"), &[])
        .await
        .map_err(|e| no_grant(e, "reading the storage schema's version"))?;
    Ok(Some(row.map_or(0, |r| r.get(0))))
}

/// A DDL step's failure: a role without the right to create gets what to do about it.
fn refused(
    e: tokio_postgres::Error,
    what: &str,
    describe: &str,
    schema: Option<&str>,
    found: Option<i32>,
) -> Error {
    if e.code() != Some(&SqlState::INSUFFICIENT_PRIVILEGE) {
        return pg_error(e, what);
    }
    let had = found.map_or("none".to_string(), |v| format!("version {v}"));
    Error::new(ErrorKind::PermissionDenied, format!(
        "{describe}: the storage schema{} is missing or older than this build needs ({had}, need version {}), and this role may not create it ({what}: {}): run `storage init` with the owner's credentials, or have the owner apply the SQL `storage init --print-sql` prints",
        schema.map_or(String::new(), |s| format!(" in schema {s}")),
        sql::SCHEMA_VERSION,
        e.as_db_error().map_or("permission denied", |d| d.message()),
    ))
    .permanent()
}

/// Makes sure the tables are at this build's version. A current schema is only read (a role
/// with no right to create connects through here); a missing or older one is created or
/// upgraded under an advisory lock, so that instances starting together take turns, and a role
/// that may not do that gets an error saying who must.
pub(crate) async fn migrate(
    conn: &mut tokio_postgres::Client,
    schema: Option<&str>,
    describe: &str,
) -> Result<()> {
    let newer = |version: i32| {
        Error::config(format!(
            "{describe} has storage schema version {version}, newer than this build supports ({})",
            sql::SCHEMA_VERSION
        ))
    };
    let found = recorded_version(&*conn, schema).await?;
    match found {
        Some(v) if v == sql::SCHEMA_VERSION => return Ok(()),
        Some(v) if v > sql::SCHEMA_VERSION => return Err(newer(v)),
        _ => {}
    }
    let tx = conn
        .transaction()
        .await
        .map_err(|e| pg_error(e, "starting the migration"))?;
    // Several instances may start at once: one migrates, the others wait and then see it done.
    tx.execute(
        &format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"),
        &[],
    )
    .await
    .map_err(|e| pg_error(e, "taking the migration lock"))?;
    let version = recorded_version(&tx, schema).await?.unwrap_or(0);
    if version > sql::SCHEMA_VERSION {
        return Err(newer(version));
    }
    for (what, ddl) in steps(schema, version) {
        tx.batch_execute(&ddl)
            .await
            .map_err(|e| refused(e, &what, describe, schema, found))?;
    }
    tx.commit()
        .await
        .map_err(|e| pg_error(e, "committing the migration"))?;
    Ok(())
}
