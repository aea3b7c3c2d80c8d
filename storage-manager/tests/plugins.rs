//! Runtime plugins: loading through the manager, every refusal, and panic containment.
//!
//! The plugin libraries are built by `cargo build --workspace --all-targets --all-features`
//! (`cargo xtask test` does it first); `STORAGE_TEST_PLUGIN_DIR` or the test binary's own
//! target directory locates them.

use serde_json::json;
use std::path::PathBuf;
use storage_core::{ErrorKind, Registry};
use storage_manager::{StorageManager, builtin_registry, load_plugin};
use storage_servers::skip_or_fail;

fn plugin_dir(test: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("STORAGE_TEST_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap();
            exe.parent().and_then(|p| p.parent()).unwrap().to_path_buf()
        });
    if dir.join("libplugin_memory.so").is_file() && dir.join("libplugin_mismatch.so").is_file() {
        Some(dir)
    } else {
        skip_or_fail(
            test,
            &format!(
                "plugin libraries not built in {}: run cargo build --workspace --all-targets --all-features",
                dir.display()
            ),
        );
        None
    }
}

fn manager(dir: &std::path::Path, yaml: &str) -> storage_core::Result<StorageManager> {
    StorageManager::from_source(&storage_manager::config_file::from_yaml_str(yaml, dir)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_memory_loads_from_a_config_file_and_serves_both_roles() {
    let Some(plugins) = plugin_dir("plugin_memory_loads_from_a_config_file") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // Paths in `plugins:` are relative to the config file.
    std::fs::create_dir_all(dir.path().join("lib")).unwrap();
    std::fs::copy(
        plugins.join("libplugin_memory.so"),
        dir.path().join("lib/libplugin_memory_copy.so"),
    )
    .unwrap();
    let cfg = dir.path().join("agent.yml");
    std::fs::write(
        &cfg,
        "storage:\n  plugins: [lib/libplugin_memory_copy.so]\n  cache: { type: plugin-memory, keyPrefix: 'c:' }\n  database: { type: plugin-memory, keyPrefix: 'd:' }\n",
    )
    .unwrap();
    let m = StorageManager::from_file(&cfg).unwrap();
    let b = m.connect().await.unwrap();
    assert_eq!(
        b.status(storage_core::config::Role::Cache)
            .expect("the cache role")
            .serving
            .as_deref(),
        Some("plugin-memory")
    );
    b.cache
        .set("k", &json!(1), Some(std::time::Duration::from_secs(60)))
        .await
        .unwrap();
    b.database.append("h", &json!("a")).await.unwrap();
    b.database
        .append_many("h", &[json!("b"), json!("c")])
        .await
        .unwrap();
    assert_eq!(
        b.database.get_range("h", -2, -1).await.unwrap(),
        vec![json!("b"), json!("c")]
    );
    assert_eq!(b.cache.get("k").await.unwrap(), Some(json!(1)));
    // The checked layer applies to plugins too.
    assert_eq!(
        b.database.get("").await.unwrap_err().kind(),
        ErrorKind::InvalidKey
    );
    m.disconnect().await.unwrap();
}

#[test]
fn the_plugin_runtime_works_under_a_current_thread_host() {
    let Some(plugins) = plugin_dir("the_plugin_runtime_works_under_a_current_thread_host") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let yaml = format!(
            "plugins: ['{}']\ndatabase: {{ type: plugin-memory, keyPrefix: 'ct:' }}\ncache: {{ type: in-memory }}",
            plugins.join("libplugin_memory.so").display()
        );
        let m = manager(dir.path(), &yaml).unwrap();
        let (db, _) = m.connect_database().await.unwrap();
        for i in 0..100 {
            db.append("l", &json!(i)).await.unwrap();
        }
        assert_eq!(db.get_length("l").await.unwrap(), 100);
        db.clear().await.unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_the_plugin_comes_back_as_an_error() {
    let Some(plugins) = plugin_dir("a_panic_inside_the_plugin_comes_back_as_an_error") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let yaml = format!(
        "plugins: ['{}']\ndatabase: {{ type: plugin-memory, keyPrefix: 'panics:', options: {{ panicOn: get }} }}\ncache: {{ type: in-memory }}",
        plugins.join("libplugin_memory.so").display()
    );
    let m = manager(dir.path(), &yaml).unwrap();
    let (db, _) = m.connect_database().await.unwrap();
    db.set("k", &json!(1)).await.unwrap();
    let err = db.get("k").await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Plugin, "{err}");
    assert!(
        err.to_string().contains("panicked") && err.to_string().contains("panic on get"),
        "{err}"
    );
    // The host and the plugin both carry on.
    assert!(db.exists("k").await.unwrap());
    assert_eq!(db.mget(&["k".into()]).await.unwrap(), vec![Some(json!(1))]);
}

#[test]
fn refusals_are_clear_errors_naming_the_path() {
    let Some(plugins) = plugin_dir("refusals_are_clear_errors_naming_the_path") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::new();

    let missing = dir.path().join("nope/libmissing.so");
    let e = load_plugin(&missing, &mut registry).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Plugin);
    assert!(
        e.to_string().contains("not found") && e.to_string().contains("libmissing.so"),
        "{e}"
    );

    let text = dir.path().join("libnotes.so");
    std::fs::write(&text, "just some text, not an ELF file\n".repeat(40)).unwrap();
    let e = load_plugin(&text, &mut registry).unwrap_err();
    assert!(
        e.to_string().contains("is not an ELF shared library")
            && e.to_string().contains("libnotes.so"),
        "{e}"
    );

    // A real library that is not a plugin.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .expect("libm");
    let e = load_plugin(&libm, &mut registry).unwrap_err();
    assert!(
        e.to_string().contains("no storage plugin declaration"),
        "{e}"
    );

    // A declaration that differs: the field and both values are named.
    let e = load_plugin(&plugins.join("libplugin_mismatch.so"), &mut registry).unwrap_err();
    let msg = e.to_string();
    let host_release = storage_core::plugin::SERDE_JSON_VERSION.trim_end_matches('\0');
    assert!(
        msg.contains("serde_json version")
            && msg.contains("\"0.9.0\"")
            && msg.contains(&format!("\"{host_release}\"")),
        "{msg}"
    );
    assert!(
        registry.types().is_empty(),
        "a refused plugin registered something"
    );

    // A type name that is already registered.
    let memory = plugins.join("libplugin_memory.so");
    assert_eq!(
        load_plugin(&memory, &mut registry).unwrap(),
        vec!["plugin-memory".to_string()]
    );
    let e = load_plugin(&memory, &mut registry).unwrap_err();
    assert!(
        e.to_string()
            .contains("\"plugin-memory\" is already registered"),
        "{e}"
    );

    // Through the manager, errors name the config field.
    let yaml = format!("plugins: ['{}']", libm.display());
    let e = StorageManager::with_registry(
        &storage_manager::config_file::from_yaml_str(&yaml, dir.path()).unwrap(),
        builtin_registry(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("storage.plugins[0]"), "{e}");
}

/// Regressions: a FIFO named as a plugin blocked the loader forever; a copy cut short crashed
/// the host with SIGBUS; a file or directory others could write was loaded without a word.
/// Each is refused, naming the path and why, before the loader maps anything.
#[test]
fn hostile_plugin_files_are_refused_before_they_are_mapped() {
    use std::os::unix::fs::PermissionsExt;
    let Some(plugins) = plugin_dir("hostile_plugin_files_are_refused_before_they_are_mapped")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut registry = Registry::new();
    let refused = |path: &std::path::Path, registry: &mut Registry, says: &str| {
        let e = load_plugin(path, registry).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Plugin, "{e}");
        let msg = e.to_string();
        assert!(msg.contains(says), "{}: {msg}", path.display());
        assert!(
            msg.contains(&path.file_name().unwrap().to_string_lossy().to_string()),
            "{msg}"
        );
    };

    let fifo = dir.path().join("libfifo.so");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    refused(&fifo, &mut registry, "is a FIFO, not a regular file");
    refused(
        dir.path(),
        &mut registry,
        "is a directory, not a regular file",
    );

    let whole = std::fs::read(plugins.join("libplugin_memory.so")).unwrap();
    // Where the mapped image ends (debug information after it is never mapped).
    let image_end = {
        use object::read::elf::{FileHeader, ProgramHeader};
        let header = object::elf::FileHeader64::<object::Endianness>::parse(&*whole).unwrap();
        let endian = header.endian().unwrap();
        header
            .program_headers(endian, &*whole)
            .unwrap()
            .iter()
            .filter(|ph| ph.p_type(endian) == object::elf::PT_LOAD)
            .map(|ph| ph.p_offset(endian) + ph.p_filesz(endian))
            .max()
            .unwrap() as usize
    };
    for (name, len) in [
        ("libcut4k.so", 4096),
        ("libcuthalf.so", image_end / 2),
        ("libcutend.so", image_end - 1),
    ] {
        let cut = dir.path().join(name);
        std::fs::write(&cut, &whole[..len]).unwrap();
        std::fs::set_permissions(&cut, std::fs::Permissions::from_mode(0o755)).unwrap();
        refused(&cut, &mut registry, "is cut short");
    }
    let cut = dir.path().join("libcut64.so");
    std::fs::write(&cut, &whole[..64]).unwrap();
    refused(&cut, &mut registry, "cut short or damaged");

    let copy = dir.path().join("libplugin_memory_copy.so");
    std::fs::write(&copy, &whole).unwrap();
    for (mode, says) in [
        (0o666, "writable by others"),
        (0o775, "writable by its group"),
    ] {
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(mode)).unwrap();
        refused(&copy, &mut registry, says);
    }
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let open_dir = dir.path().join("shared");
    std::fs::create_dir(&open_dir).unwrap();
    let in_open_dir = open_dir.join("libplugin_memory_copy.so");
    std::fs::copy(&copy, &in_open_dir).unwrap();
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = load_plugin(&in_open_dir, &mut registry).unwrap_err();
    assert!(
        e.to_string().contains("the directory of plugin library")
            && e.to_string().contains("writable by others"),
        "{e}"
    );
    // A sticky directory (as /tmp) lets only a file's owner replace it: allowed.
    std::fs::set_permissions(&open_dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    // Owned by another user: refused. Only root can give a file away, and CI runs as root.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&copy, Some(65534), None).unwrap();
        refused(&copy, &mut registry, "is owned by user 65534");
    } else {
        eprintln!(
            "NOTE hostile_plugin_files_are_refused_before_they_are_mapped: not root, so the file owned by another user is not tried here (CI runs it as root)"
        );
    }
    assert!(
        registry.types().is_empty(),
        "a refused file registered something"
    );
    assert_eq!(
        load_plugin(&in_open_dir, &mut registry).unwrap(),
        vec!["plugin-memory".to_string()]
    );
}

/// Regression: a plugin's options were parsed only when it opened, so with a fallback a typo
/// degraded the role instead of failing the config. They are parsed at load now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_options_are_checked_at_load_before_anything_connects() {
    let Some(plugins) = plugin_dir("plugin_options_are_checked_at_load") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lib = plugins.join("libplugin_memory.so");
    let yaml = format!(
        "plugins: ['{}']\ndatabase: {{ type: plugin-memory, options: {{ panicOnn: get }}, fallback: [in-memory] }}\ncache: {{ type: in-memory }}",
        lib.display()
    );
    let e = manager(dir.path(), &yaml).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
    assert!(
        e.message()
            .starts_with("storage.database.options.panicOnn: unknown field"),
        "{e}"
    );
    // A panic in the plugin's parse is contained and reported, not propagated.
    let yaml = format!(
        "plugins: ['{}']\ndatabase: {{ type: plugin-memory, options: {{ panicOn: parse }} }}\ncache: {{ type: in-memory }}",
        lib.display()
    );
    let e = manager(dir.path(), &yaml).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Plugin, "{e}");
    assert!(e.message().contains("panicked"), "{e}");
}
