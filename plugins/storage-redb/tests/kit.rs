//! The conformance kit, run from the plugin's own tests the way a third-party author would:
//! the factory is called directly (no loader), through storage-core's checked `open_*`.

use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use storage_core::config::{BackendSettings, BackendSpec, PluginSettings};
use storage_redb::RedbFactory;
use storage_testkit::{SuiteOptions, run_cache_suite, run_database_suite};

fn spec(dir: &Path, options: serde_json::Value) -> BackendSpec {
    let options = options.as_object().unwrap().clone();
    BackendSpec::new(
        "redb",
        BackendSettings::Plugin(PluginSettings {
            block: json!({ "type": "redb", "options": options.clone() }),
            options,
            base_dir: dir.to_path_buf(),
        }),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_database_passes_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    let base = spec(dir.path(), json!({ "path": "kit.redb" }));
    let report = run_database_suite(
        Arc::new(move |prefix: String| {
            let spec = base.clone().with_key_prefix(prefix);
            async move { storage_core::open_database(&RedbFactory, &spec).await }
        }),
        &SuiteOptions::default(),
    )
    .await;
    report.assert_passed();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redb_cache_passes_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    let base = spec(
        dir.path(),
        json!({ "path": "cache.redb", "durability": "none" }),
    );
    let report = run_cache_suite(
        Arc::new(move |prefix: String| {
            let spec = base.clone().with_key_prefix(prefix);
            async move { storage_core::open_cache(&RedbFactory, &spec).await }
        }),
        &SuiteOptions::default(),
    )
    .await;
    report.assert_passed();
}

#[tokio::test]
async fn options_are_validated_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut bad = spec(
        dir.path(),
        json!({ "path": "x.redb", "durability": "sometimes" }),
    );
    bad.path = "storage.database".into();
    let e = storage_core::open_database(&RedbFactory, &bad)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("storage.database.options.durability"),
        "{e}"
    );
    let mut unknown = spec(dir.path(), json!({ "path": "x.redb", "paht": "y" }));
    unknown.path = "storage.database".into();
    let e = storage_core::open_database(&RedbFactory, &unknown)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("storage.database.options") && e.to_string().contains("paht"),
        "{e}"
    );
    let missing = spec(dir.path(), json!({}));
    let e = storage_core::open_database(&RedbFactory, &missing)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("path"), "{e}");
    // The schema describes the options.
    let schema = storage_core::BackendFactory::options_schema(&RedbFactory).to_string();
    assert!(
        schema.contains("durability") && schema.contains("path"),
        "{schema}"
    );
}
