//! Two tenants on one PostgreSQL and one Redis, kept apart by the servers: each has its own
//! PostgreSQL role and schema (made with `storage init` by the owner, then granted) and its own
//! Redis ACL user (made from `storage acl`). Each can do everything in its own namespace; a
//! crafted configuration with one tenant's credentials that names the other's schema or
//! prefix is refused by the server (`permission denied`) for reads, writes, deletes and
//! clears, and on PostgreSQL for listing too. (Redis ACLs do not filter `SCAN`: key names can
//! still be listed there, as docs/configuration.md says.)

#[path = "support/run.rs"]
mod run;

use run::{ok, stderr, storage};
use std::path::Path;
use std::process::Command;
use storage_servers::{Postgres, Redis, find_postgres_bin, find_redis_server, skip_or_fail};

fn psql(pg: &Postgres, sql: &str) {
    let out = Command::new(pg.bin_dir().join("psql"))
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
        ])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn redis_cli(redis: &Redis, args: &[&str]) -> String {
    let cli = find_redis_server()
        .unwrap()
        .parent()
        .unwrap()
        .join("redis-cli");
    let out = Command::new(cli)
        .args(["-h", "127.0.0.1", "-p", &redis.port().to_string()])
        .args(args)
        .output()
        .expect("run redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A config in `dir` for a tenant: the cache on Redis as `user`, the database on PostgreSQL
/// as `role`, in `schema` and under `prefix`.
fn config(
    dir: &Path,
    name: &str,
    pg: &Postgres,
    redis: &Redis,
    account: &str,
    namespace: &str,
) -> String {
    let yaml = format!(
        "storage:\n  cache: {{ type: redis, url: 'redis://{account}:{account}-pw@127.0.0.1:{}', keyPrefix: '{namespace}:', fallback: [] }}\n  database: {{ type: postgresql, url: 'postgresql://{account}@127.0.0.1:{}/postgres', schema: {namespace}, keyPrefix: 'app:', fallback: [] }}\n  blob: {{ type: in-memory }}\n",
        redis.port(),
        pg.port()
    );
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path.display().to_string()
}

#[test]
fn tenants_are_kept_apart_by_the_servers() {
    let test = "tenants_are_kept_apart_by_the_servers";
    if find_postgres_bin().is_none() || find_redis_server().is_none() {
        skip_or_fail(test, "needs PostgreSQL and Redis installed");
        return;
    }
    let pg = Postgres::start(&Default::default()).expect("start PostgreSQL");
    let redis = Redis::start(&Default::default()).expect("start Redis");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for tenant in ["tenant_a", "tenant_b"] {
        // PostgreSQL: the owner makes the schema with `storage init`, then grants the role.
        psql(&pg, &format!("CREATE ROLE {tenant} LOGIN"));
        let owner = d.join(format!("{tenant}-owner.yml"));
        std::fs::write(
            &owner,
            format!(
                "storage:\n  cache: {{ type: in-memory }}\n  database: {{ type: postgresql, url: '{}', schema: {tenant} }}\n  blob: {{ type: in-memory }}\n",
                pg.url()
            ),
        )
        .unwrap();
        ok(&storage(d, &["--config", owner.to_str().unwrap(), "init"]));
        psql(
            &pg,
            &format!(
                "GRANT USAGE ON SCHEMA {tenant} TO {tenant}; \
                 GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {tenant} TO {tenant}; \
                 GRANT USAGE ON ALL SEQUENCES IN SCHEMA {tenant} TO {tenant};"
            ),
        );
        // Redis: a user from the rules `storage acl` prints for the tenant's cache.
        let own = config(d, &format!("{tenant}.yml"), &pg, &redis, tenant, tenant);
        let rules = ok(&storage(d, &["--config", &own, "acl", "--role", "cache"]));
        let mut args = vec!["ACL", "SETUSER", tenant, "on"];
        let password = format!(">{tenant}-pw");
        args.push(&password);
        args.extend(rules.split_whitespace());
        assert_eq!(redis_cli(&redis, &args), "OK", "{rules}");
    }

    // Each tenant does everything in its own namespace.
    for tenant in ["tenant_a", "tenant_b"] {
        let own = d.join(format!("{tenant}.yml")).display().to_string();
        let c = |args: &[&str]| {
            let mut all = vec!["--config", own.as_str()];
            all.extend(args);
            ok(&storage(d, &all))
        };
        c(&["set", "secret", &format!("\"{tenant}'s\"")]);
        c(&[
            "set",
            "secret",
            &format!("\"{tenant}'s\""),
            "--role",
            "cache",
        ]);
        c(&["append", "chat", "\"hi\""]);
        assert_eq!(c(&["get", "secret"]), format!("\"{tenant}'s\""));
        assert_eq!(
            c(&["get", "secret", "--role", "cache"]),
            format!("\"{tenant}'s\"")
        );
        assert!(c(&["keys"]).contains("secret"));
        assert!(c(&["keys", "--role", "cache"]).contains("secret"));
    }

    // Tenant A's credentials, tenant B's schema and prefix: the servers refuse.
    // One crafted config per server, so that each refusal is that server's.
    let crafted = |name: &str, from: &str, to: &str| {
        let yaml = std::fs::read_to_string(d.join("tenant_a.yml"))
            .unwrap()
            .replace(from, to);
        let path = d.join(name);
        std::fs::write(&path, yaml).unwrap();
        path.display().to_string()
    };
    let other_schema = crafted("schema.yml", "schema: tenant_a", "schema: tenant_b");
    let other_prefix = crafted(
        "prefix.yml",
        "keyPrefix: 'tenant_a:'",
        "keyPrefix: 'tenant_b:'",
    );
    let refused = |config: &str, args: &[&str], because: &str| {
        let mut all = vec!["--config", config];
        all.extend(args);
        let out = storage(d, &all);
        assert!(!out.status.success(), "{args:?} was allowed");
        let said = stderr(&out);
        assert!(said.contains("permission denied"), "{args:?}: {said}");
        assert!(said.contains(because), "{args:?}: {said}");
    };
    let by_postgres = "permission denied for schema tenant_b";
    refused(&other_schema, &["get", "secret"], by_postgres);
    refused(&other_schema, &["set", "secret", "1"], by_postgres);
    refused(&other_schema, &["delete", "secret"], by_postgres);
    refused(&other_schema, &["keys"], by_postgres);
    refused(&other_schema, &["range", "chat", "0", "-1"], by_postgres);
    let by_redis = "the server's ACL does not allow this account";
    refused(
        &other_prefix,
        &["get", "secret", "--role", "cache"],
        by_redis,
    );
    refused(
        &other_prefix,
        &["set", "secret", "1", "--role", "cache"],
        by_redis,
    );
    refused(
        &other_prefix,
        &["delete", "secret", "--role", "cache"],
        by_redis,
    );

    // B's data is untouched.
    let b = d.join("tenant_b.yml").display().to_string();
    assert_eq!(
        ok(&storage(d, &["--config", &b, "get", "secret"])),
        "\"tenant_b's\""
    );
    assert_eq!(
        ok(&storage(
            d,
            &["--config", &b, "get", "secret", "--role", "cache"]
        )),
        "\"tenant_b's\""
    );
}
