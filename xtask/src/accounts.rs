//! The matrix's production-account lines, set up the way an operator would with the project's
//! own tools: a PostgreSQL role that may only read and write its schema's tables (the owner ran
//! `storage init` first and granted the rest), and Redis users created from the rules `storage
//! acl` prints, one per role. The runner then runs the whole kit with those accounts; a command
//! or statement the backend sends outside what they allow fails a case. The Redis users'
//! password is made per run and reaches the runner in its environment
//! (`$STORAGE_ACL_PASSWORD` in the block), never in a process's arguments.

use crate::matrix::Served;
use std::path::Path;
use std::process::Command;

/// The variable the Redis users' password is in, for the runner.
pub const PASSWORD_VAR: &str = "STORAGE_ACL_PASSWORD";

/// A password for this run's Redis users.
pub fn password() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("acl-{:016x}", h.finish())
}

/// The placeholders the account lines' blocks use, and their values (empty when the setup
/// failed: the runner then fails the line, and the failure is in `failures`). `password` is
/// the Redis users' (the runner reads it from [`PASSWORD_VAR`]).
pub fn prepare(
    storage: &Path,
    postgres: Option<&Served>,
    redis: Option<&Served>,
    password: &str,
    failures: &mut Vec<String>,
) -> Vec<(&'static str, String)> {
    let mut values = vec![
        ("{pg-least-url}", String::new()),
        ("{redis-acl-cache-url}", String::new()),
        ("{redis-acl-database-url}", String::new()),
    ];
    if let Some(Served::Postgres(pg)) = postgres {
        match postgres_least_privilege(storage, pg) {
            Ok(url) => values[0].1 = url,
            Err(e) => failures.push(format!(
                "setting up the least-privilege PostgreSQL role: {e}"
            )),
        }
    }
    if let Some(Served::Redis(r)) = redis {
        for (i, role) in [(1, "cache"), (2, "database")] {
            match redis_acl_user(storage, &r.url(), r.port(), role, password) {
                Ok(url) => values[i].1 = url,
                Err(e) => {
                    failures.push(format!("setting up the Redis ACL user for the {role}: {e}"))
                }
            }
        }
    }
    values
}

/// Runs `cmd`; its stdout, or what it said on failure.
fn output(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `storage --config <yaml> ARGS` in a throwaway directory.
fn storage(storage: &Path, yaml: &str, args: &[&str]) -> Result<String, String> {
    let dir = storage_servers::temp_dir("accounts").map_err(|e| e.to_string())?;
    let config = dir.join("storage.yml");
    std::fs::write(&config, yaml).map_err(|e| e.to_string())?;
    let result = output(
        Command::new(storage)
            .arg("--config")
            .arg(&config)
            .args(args)
            .current_dir(&dir),
    );
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Creates role `storage_least`, has the owner run `storage init` for schema
/// `least_privilege`, and grants the role only what the backend needs; its URL.
fn postgres_least_privilege(
    storage_bin: &Path,
    pg: &storage_servers::Postgres,
) -> Result<String, String> {
    let psql = |sql: &str| {
        output(
            Command::new(pg.bin_dir().join("psql"))
                .args(["-h", "127.0.0.1", "-p", &pg.port().to_string()])
                .args([
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-v",
                    "ON_ERROR_STOP=1",
                    "-q",
                    "-c",
                    sql,
                ]),
        )
    };
    psql("CREATE ROLE storage_least LOGIN")?;
    let owner = format!(
        "storage:\n  cache: {{ type: in-memory }}\n  database: {{ type: postgresql, url: '{}', schema: least_privilege }}\n  blob: {{ type: in-memory }}\n",
        pg.url()
    );
    storage(storage_bin, &owner, &["init"])?;
    psql(
        "GRANT USAGE ON SCHEMA least_privilege TO storage_least; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA least_privilege TO storage_least; \
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA least_privilege TO storage_least;",
    )?;
    Ok(format!(
        "postgresql://storage_least@127.0.0.1:{}/postgres",
        pg.port()
    ))
}

/// Creates Redis user `storage_<role>` from the rules `storage acl --role <role>` prints for
/// keyPrefix `acl:<role>:` (the command on redis-cli's input, so that the password is in no
/// process's arguments); its URL, with the password as `$STORAGE_ACL_PASSWORD`.
fn redis_acl_user(
    storage_bin: &Path,
    url: &str,
    port: u16,
    role: &str,
    password: &str,
) -> Result<String, String> {
    use std::io::Write;
    let yaml = format!(
        "storage:\n  cache: {{ type: redis, url: '{url}', keyPrefix: 'acl:cache:' }}\n  database: {{ type: redis, url: '{url}', keyPrefix: 'acl:database:' }}\n"
    );
    let rules = storage(storage_bin, &yaml, &["acl", "--role", role])?;
    let cli = storage_servers::find_redis_server()
        .and_then(|s| s.parent().map(|d| d.join("redis-cli")))
        .ok_or("redis-cli not found beside redis-server")?;
    let user = format!("storage_{role}");
    let mut child = Command::new(cli)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("redis-cli: {e}"))?;
    let line = format!("ACL SETUSER {user} reset on >{password} {}\n", rules.trim());
    child
        .stdin
        .take()
        .ok_or("redis-cli's input")?
        .write_all(line.as_bytes())
        .map_err(|e| format!("redis-cli: {e}"))?;
    let out = child
        .wait_with_output()
        .map_err(|e| format!("redis-cli: {e}"))?;
    let said = String::from_utf8_lossy(&out.stdout);
    if said.trim() != "OK" {
        return Err(format!("ACL SETUSER said {said:?} to the rules {rules:?}"));
    }
    Ok(format!("redis://{user}:${PASSWORD_VAR}@127.0.0.1:{port}"))
}
