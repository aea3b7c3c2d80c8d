//! Invariants of the source tree, checked by `cargo test -p xtask` (and so by every CI run):
//! storage-core names no built-in backend, no backend crate depends on another, every Rust file
//! opens with a `//!` doc, modules name what they import (no `use super::*` outside tests),
//! source files stay small enough to read in one sitting, and nothing in the repository points
//! outside it.
//!
//! Not a linter for style: `cargo fmt` and `cargo clippy` do that.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every file under `dir` whose name ends with one of `exts`, skipping build output and VCS data.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !matches!(
                    name.as_str(),
                    "target" | ".git" | ".storage" | "node_modules"
                ) {
                    stack.push(path);
                }
            } else if exts.iter().any(|e| name.ends_with(e)) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn rel(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The names (and alias stems) of the built-in backends, as a config spells them.
const BUILT_IN_NAMES: [&str; 4] = ["sqlite", "postgres", "redis", "in-memory"];

#[test]
fn storage_core_names_no_built_in_backend() {
    let mut found = Vec::new();
    for file in files(&root().join("storage-core/src"), &[".rs"]) {
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for name in BUILT_IN_NAMES {
                if line.contains(name) {
                    found.push(format!("{}:{}: {name}: {}", rel(&file), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "storage-core must not name a built-in backend (each backend crate owns its config):\n{}",
        found.join("\n")
    );
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let missing: Vec<String> = files(&root(), &[".rs"])
        .into_iter()
        .filter(|f| !fs::read_to_string(f).unwrap().starts_with("//!"))
        .map(|f| rel(&f))
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` doc:\n{}",
        missing.join("\n")
    );
}

/// Every Rust file that is code to navigate: not tests, nor the conformance kit's cases (lists
/// of cases).
fn source_files() -> Vec<PathBuf> {
    files(&root(), &[".rs"])
        .into_iter()
        .filter(|file| {
            let path = rel(file);
            let name = file.file_name().unwrap().to_string_lossy();
            !(path.contains("/tests/")
                || path.starts_with("storage-testkit/src/cases/")
                || name == "tests.rs"
                || name.ends_with("_tests.rs"))
        })
        .collect()
}

/// A source file longer than this is split by concern.
const MAX_SOURCE_LINES: usize = 520;

#[test]
fn source_files_stay_readable_in_one_sitting() {
    let mut long = Vec::new();
    for file in source_files() {
        let path = rel(&file);
        let lines = fs::read_to_string(&file).unwrap().lines().count();
        if lines > MAX_SOURCE_LINES {
            long.push(format!("{path}: {lines} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "source files over {MAX_SOURCE_LINES} lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn nothing_points_outside_the_repository() {
    // The specification this project was built from lives outside it; its docs are `docs/`.
    let outside = [
        "../shared",
        "SEMANTICS.md",
        "CONFIG.md",
        "seed/storage-system",
    ];
    let mut found = Vec::new();
    for file in files(&root(), &[".rs", ".md", ".toml", ".yml", ".yaml"]) {
        if file.ends_with("xtask/src/tidy.rs") {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            if let Some(hit) = outside.iter().find(|o| line.contains(*o)) {
                found.push(format!("{}:{}: {hit}", rel(&file), n + 1));
            }
        }
    }
    assert!(
        found.is_empty(),
        "references to files outside the repository:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_docs_the_code_cites_exist() {
    for doc in [
        "docs/semantics.md",
        "docs/configuration.md",
        "ARCHITECTURE.md",
        "README.md",
    ] {
        assert!(root().join(doc).is_file(), "{doc} is missing");
    }
}

/// A module names what it takes from its crate: `use super::*` outside tests hides where a name
/// comes from and ties a file to everything its parent imports.
#[test]
fn modules_name_what_they_import() {
    let mut found = Vec::new();
    for file in source_files() {
        let path = rel(&file);
        let text = fs::read_to_string(&file).unwrap();
        // Up to the first test module: a `mod tests` may take its parent whole.
        let body = text.split("#[cfg(test)]").next().unwrap_or("");
        if body.lines().any(|l| l.trim() == "use super::*;") {
            found.push(path);
        }
    }
    assert!(
        found.is_empty(),
        "modules with `use super::*` outside tests (import what they use by name):\n{}",
        found.join("\n")
    );
}

/// The backend crates: each depends on the contract (and a plugin on the bridge), never on
/// another backend, outside its dev-dependencies.
const BACKEND_CRATES: [&str; 5] = [
    "storage-memory",
    "storage-sqlite",
    "storage-postgres",
    "storage-redis",
    "plugins/storage-redb",
];

#[test]
fn no_backend_depends_on_another() {
    let names: Vec<&str> = BACKEND_CRATES
        .iter()
        .map(|c| c.rsplit('/').next().unwrap())
        .collect();
    let mut found = Vec::new();
    for krate in BACKEND_CRATES {
        let manifest = fs::read_to_string(root().join(krate).join("Cargo.toml")).unwrap();
        // The `[dependencies]` table only: dev-dependencies may use another backend in tests.
        let deps = manifest
            .split("\n[")
            .find(|t| t.starts_with("dependencies]"))
            .unwrap_or("");
        for line in deps.lines().skip(1) {
            let dep = line.split(['=', '.', ' ']).next().unwrap_or("").trim();
            if names.contains(&dep) && !krate.ends_with(dep) {
                found.push(format!("{krate} depends on {dep}"));
            }
        }
    }
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Where errors are classified: the contract, the pool, the backends and the manager.
const CLASSIFYING_CRATES: [&str; 8] = [
    "storage-core/src/",
    "storage-pool/src/",
    "storage-memory/src/",
    "storage-sqlite/src/",
    "storage-postgres/src/",
    "storage-redis/src/",
    "storage-manager/src/",
    "plugins/storage-redb/src/",
];

/// An error is classified from its driver's types (a SQLSTATE, a redis-rs kind, a SQLite
/// result code, `is_closed`), never from the words of its message: a message is for people,
/// and a reworded or redacted one must not change what a caller is told.
#[test]
fn errors_are_never_classified_by_their_message_text() {
    let reads_text = [
        "message().contains(",
        "message().starts_with(",
        "message().ends_with(",
        "to_string().contains(",
        "to_string().starts_with(",
        "to_string().ends_with(",
    ];
    let mut found = Vec::new();
    for file in source_files() {
        let path = rel(&file);
        if !CLASSIFYING_CRATES.iter().any(|c| path.starts_with(c)) {
            continue;
        }
        let text = fs::read_to_string(&file).unwrap();
        // Up to the first test module: tests read messages to check what people are shown.
        let body = text.split("#[cfg(test)]").next().unwrap_or("");
        for (n, line) in body.lines().enumerate() {
            let code = line.trim_start();
            if code.starts_with("//") {
                continue;
            }
            if reads_text.iter().any(|r| code.contains(r)) {
                found.push(format!("{path}:{}: {}", n + 1, code));
            }
        }
    }
    assert!(
        found.is_empty(),
        "error classification by message text (use the error's kind, status or outcome):\n{}",
        found.join("\n")
    );
}
