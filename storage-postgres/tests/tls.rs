//! PostgreSQL over TLS against a server started with certificates made for this run.

use std::io::Write;
use std::sync::{Arc, Mutex};
use storage_core::{Database, Registry, Result};
use storage_servers::{Postgres, PostgresOptions, TestCerts, find_postgres_bin, skip_or_fail};

fn tls_server(test: &str) -> Option<(TestCerts, Postgres)> {
    if find_postgres_bin().is_none() {
        skip_or_fail(test, "PostgreSQL binaries not found");
        return None;
    }
    let certs = TestCerts::generate().unwrap();
    let pg = Postgres::start(&PostgresOptions {
        tls: Some(certs.server.clone()),
        ..Default::default()
    })
    .unwrap();
    Some((certs, pg))
}

async fn open(block: &str) -> Result<Arc<dyn Database>> {
    let mut registry = Registry::new();
    registry
        .register(Arc::new(storage_postgres::PostgresFactory::new()))
        .unwrap();
    let yaml = format!("database: {block}\ncache: {{ type: postgresql, host: unused }}");
    let config =
        storage_manager::config_file::from_yaml_str(&yaml, ".".as_ref())?.resolve(&registry)?;
    registry.open_database(&config.database.primary).await
}

/// How many of the server's sessions named `app` are encrypted.
fn encrypted_sessions(pg: &Postgres, app: &str) -> i64 {
    let out = std::process::Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-tA", "-d", &pg.url(), "-c"])
        .arg(format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE s.ssl AND a.application_name = '{app}'"
        ))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

const FAST: &str = "maxRetries: 0, connectionTimeoutMillis: 3000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verify_full_with_the_right_ca_works_and_encrypts() {
    let Some((certs, pg)) = tls_server("tls_verify_full_with_the_right_ca_works_and_encrypts")
    else {
        return;
    };
    for host in ["localhost", "127.0.0.1"] {
        let db = open(&format!(
            "{{ type: postgres, host: {host}, port: {}, user: postgres, ssl: {{ mode: verify-full, ca: '{}' }}, options: {{ application_name: tls-verify }}, {FAST} }}",
            pg.port(),
            certs.server.ca.display()
        ))
        .await
        .unwrap();
        db.set("k", &serde_json::json!(1)).await.unwrap();
        assert_eq!(db.get("k").await.unwrap(), Some(serde_json::json!(1)));
        assert!(encrypted_sessions(&pg, "tls-verify") >= 1);
    }
    // The same through URL parameters that tokio-postgres itself does not parse.
    let url = format!(
        "postgresql://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&application_name=tls-url",
        pg.port(),
        certs.server.ca.display()
    );
    let db = open(&format!("{{ type: postgres, url: '{url}', {FAST} }}"))
        .await
        .unwrap();
    db.ping().await.unwrap();
    assert!(encrypted_sessions(&pg, "tls-url") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_require_encrypts_without_verifying() {
    let Some((certs, pg)) = tls_server("tls_require_encrypts_without_verifying") else {
        return;
    };
    // `require` accepts the server's certificate without checking who signed it.
    let db = open(&format!(
        "{{ type: postgres, host: 127.0.0.1, port: {}, ssl: {{ mode: require }}, options: {{ application_name: tls-require }}, {FAST} }}",
        pg.port(),
    ))
    .await
    .unwrap();
    db.ping().await.unwrap();
    assert!(encrypted_sessions(&pg, "tls-require") >= 1);
    // A CA with `require` would go unused: refused rather than silently ignored.
    let err = open(&format!(
        "{{ type: postgres, host: 127.0.0.1, port: {}, ssl: {{ mode: require, ca: '{}' }}, {FAST} }}",
        pg.port(),
        certs.other_ca.display()
    ))
    .await
    .expect_err("a CA that require would not use");
    assert!(err.to_string().contains("a CA file is given"), "{err}");
}

/// Regression: the key/value form's `sslmode=require` was dropped and the connection went in
/// plaintext.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_key_value_connection_string_sslmode_is_honoured() {
    let Some((certs, pg)) = tls_server("tls_key_value_connection_string_sslmode_is_honoured")
    else {
        return;
    };
    let conn = format!(
        "host=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require application_name=tls-kv",
        pg.port()
    );
    let db = open(&format!(
        "{{ type: postgres, connectionString: '{conn}', {FAST} }}"
    ))
    .await
    .unwrap();
    db.ping().await.unwrap();
    assert!(encrypted_sessions(&pg, "tls-kv") >= 1);
    // verify-full with the run's CA, in the same form.
    let conn = format!(
        "host=localhost port={} user=postgres dbname=postgres sslmode=verify-full sslrootcert='{}' application_name=tls-kv-verify",
        pg.port(),
        certs.server.ca.display()
    );
    let db = open(&format!(
        "{{ type: postgres, connectionString: \"{conn}\", {FAST} }}"
    ))
    .await
    .unwrap();
    db.ping().await.unwrap();
    assert!(encrypted_sessions(&pg, "tls-kv-verify") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_wrong_ca_is_refused() {
    let Some((certs, pg)) = tls_server("tls_wrong_ca_is_refused") else {
        return;
    };
    let err = open(&format!(
        "{{ type: postgres, host: localhost, port: {}, ssl: {{ mode: verify-full, ca: '{}' }}, {FAST} }}",
        pg.port(),
        certs.other_ca.display()
    ))
    .await
    .expect_err("an unrelated CA must be refused");
    assert!(
        err.to_string().to_lowercase().contains("certificate")
            || err.to_string().contains("connecting"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_wrong_host_name_is_refused_under_verify_full() {
    let Some((certs, pg)) = tls_server("tls_wrong_host_name_is_refused_under_verify_full") else {
        return;
    };
    // The right server and CA, reached under a name the certificate does not carry.
    let url = format!(
        "postgresql://postgres@db.wrong-name.test:{}/postgres?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
        pg.port(),
        certs.server.ca.display()
    );
    assert!(
        open(&format!("{{ type: postgres, url: '{url}', {FAST} }}"))
            .await
            .is_err()
    );
    // Under `require` (which takes no CA) the same name is fine: nothing is verified.
    let url = format!(
        "postgresql://postgres@db.wrong-name.test:{}/postgres?hostaddr=127.0.0.1&sslmode=require",
        pg.port()
    );
    open(&format!("{{ type: postgres, url: '{url}', {FAST} }}"))
        .await
        .unwrap()
        .ping()
        .await
        .unwrap();
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn tls_failures_never_show_passwords_or_keys_in_errors_or_logs() {
    let Some((certs, pg)) =
        tls_server("tls_failures_never_show_passwords_or_keys_in_errors_or_logs")
    else {
        return;
    };
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let password = "Sup3r-S3cret-tls-pw";
    let mut errors = Vec::new();
    for (mode, ca) in [
        ("verify-full", &certs.other_ca),
        ("verify-full", &certs.server.ca),
    ] {
        let url = format!(
            "postgresql://nobody:{password}@localhost:{}/nodb?sslmode={mode}&sslrootcert={}",
            pg.port(),
            ca.display()
        );
        if let Err(e) = open(&format!("{{ type: postgres, url: '{url}', {FAST} }}")).await {
            errors.push(format!("{e} {e:?}"));
        }
    }
    let logs = String::from_utf8_lossy(&captured.0.lock().unwrap()).into_owned();
    let key = std::fs::read_to_string(&certs.server.key).unwrap();
    let key_body = key.lines().nth(1).unwrap().to_string();
    assert!(!errors.is_empty());
    for text in errors.iter().chain(std::iter::once(&logs)) {
        assert!(!text.contains(password), "{text}");
        assert!(!text.contains(&key_body), "{text}");
    }
}
