//! `storage migrate --role blob` end to end: files under a local store copied into a SQLite
//! file's blob role, read back through their SHA-256, with the refusals of a non-empty target
//! and of one store as both ends.

#[path = "support/run.rs"]
mod run;
use run::{ok as out, storage};

#[test]
fn blobs_move_from_files_to_sqlite_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("from.yml"),
        "storage:\n  blob: { type: local, path: src-blobs }\n",
    )
    .unwrap();
    std::fs::write(
        d.join("to.yml"),
        "storage:\n  blob: { type: sqlite, path: target.db }\n",
    )
    .unwrap();
    let big: Vec<u8> = (0..700_000u32).map(|i| (i % 253) as u8).collect();
    std::fs::write(d.join("big.bin"), &big).unwrap();
    std::fs::write(d.join("note.txt"), "hello").unwrap();
    let mut refs = Vec::new();
    for file in ["big.bin", "note.txt"] {
        refs.push(out(&storage(
            d,
            &["--config", "from.yml", "blob", "put", file],
        )));
    }
    let dry = out(&storage(
        d,
        &[
            "migrate",
            "--role",
            "blob",
            "--from",
            "from.yml",
            "--to",
            "to.yml",
            "--dry-run",
        ],
    ));
    assert!(dry.contains("would copy 2 blobs (700005 bytes)"), "{dry}");
    let run = out(&storage(
        d,
        &[
            "migrate", "--role", "blob", "--from", "from.yml", "--to", "to.yml",
        ],
    ));
    assert!(
        run.contains("copied 2 blobs (700005 bytes)") && run.contains("verified 2 by SHA-256"),
        "{run}"
    );
    assert!(run.contains("verification: identical"), "{run}");
    let ls = out(&storage(d, &["--config", "to.yml", "blob", "ls"]));
    assert!(
        ls.contains(&refs[0]) && ls.contains("big.bin") && ls.contains("note.txt"),
        "{ls}"
    );
    out(&storage(
        d,
        &[
            "--config", "to.yml", "blob", "get", &refs[0], "-o", "copy.bin",
        ],
    ));
    assert!(std::fs::read(d.join("copy.bin")).unwrap() == big);

    // A target that holds blobs is refused, then replaced with --overwrite.
    let again = storage(
        d,
        &[
            "migrate", "--role", "blob", "--from", "from.yml", "--to", "to.yml",
        ],
    );
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("already holds 2 blobs") && err.contains("--overwrite"),
        "{err}"
    );
    let over = out(&storage(
        d,
        &[
            "migrate",
            "--role",
            "blob",
            "--from",
            "from.yml",
            "--to",
            "to.yml",
            "--overwrite",
        ],
    ));
    assert!(over.contains("verification: identical"), "{over}");

    // One store as both ends.
    let same = storage(
        d,
        &[
            "migrate", "--role", "blob", "--from", "from.yml", "--to", "from.yml",
        ],
    );
    assert!(!same.status.success());
    let err = String::from_utf8_lossy(&same.stderr);
    assert!(err.contains("reach the same blobs"), "{err}");
}
