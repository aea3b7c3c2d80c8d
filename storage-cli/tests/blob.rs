//! `storage blob …` end to end on the embedded default (files under `.storage/blobs`): put
//! prints the reference and stores the same bytes once, get writes them back, ls, stats, rm,
//! gc, and the errors.

#[path = "support/run.rs"]
mod run;
use run::{ok as out, storage};

#[test]
fn put_get_ls_stats_rm_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(
        d.join("cat.png"),
        [&b"\x89PNG\r\n\x1a\n"[..], &bytes].concat(),
    )
    .unwrap();
    let reference = out(&storage(d, &["blob", "put", "cat.png"]));
    assert!(
        reference.starts_with("blob:sha256:") && reference.len() == 76,
        "{reference}"
    );
    assert_eq!(
        out(&storage(d, &["blob", "put", "cat.png"])),
        reference,
        "stored once"
    );
    assert!(d.join(".storage/blobs").is_dir());
    assert_eq!(
        out(&storage(d, &["blob", "stats"])),
        "1 blobs, 300008 bytes"
    );
    let ls = out(&storage(d, &["blob", "ls"]));
    assert_eq!(ls, format!("{reference}\t300008\timage/png\tcat.png"));
    out(&storage(d, &["blob", "get", &reference, "-o", "copy.png"]));
    assert_eq!(
        std::fs::read(d.join("copy.png")).unwrap(),
        std::fs::read(d.join("cat.png")).unwrap()
    );
    let o = storage(d, &["blob", "get", &reference]);
    assert_eq!(o.stdout.len(), 300_008);

    // A stored file changed on disk: exit 2, and no output file left behind.
    let hex = &reference["blob:sha256:".len()..];
    let stored = d
        .join(".storage/blobs")
        .join(&hex[..2])
        .join(&hex[2..4])
        .join(hex);
    let mut changed = std::fs::read(&stored).unwrap();
    changed[100] ^= 1;
    std::fs::write(&stored, &changed).unwrap();
    let o = storage(d, &["blob", "get", &reference, "-o", "bad.png"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not match its id"));
    assert!(!d.join("bad.png").exists());

    assert_eq!(
        out(&storage(d, &["blob", "gc", "--older-than", "1d"])),
        "removed 0 blobs"
    );
    assert_eq!(out(&storage(d, &["blob", "rm", &reference])), "true");
    assert_eq!(out(&storage(d, &["blob", "rm", &reference])), "false");
    assert_eq!(
        storage(d, &["blob", "get", &reference]).status.code(),
        Some(1)
    );
    out(&storage(
        d,
        &["blob", "put", "cat.png", "--type", "image/x-test"],
    ));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(
        out(&storage(d, &["blob", "gc", "--older-than", "1s"])),
        "removed 1 blobs"
    );
    assert_eq!(out(&storage(d, &["blob", "stats"])), "0 blobs, 0 bytes");

    for (args, says) in [
        (&["blob", "get", "blob:sha256:12"][..], "reference"),
        (&["blob", "gc", "--older-than", "soon"][..], "--older-than"),
        (&["blob", "put", "missing.bin"][..], "missing.bin"),
    ] {
        let o = storage(d, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains(says),
            "{args:?}"
        );
    }
}

/// An S3 store that does not answer: `health` shows the default chain at work (`s3` →
/// `local`), degraded, without the secret; a data command, which never writes silently into a
/// fallback store, fails naming the store instead.
#[test]
fn an_unreachable_s3_store_degrades_health_to_local_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("s3.yml"),
        "storage:\n  blob:\n    type: s3\n    endpoint: http://127.0.0.1:1\n    bucket: b\n    accessKeyId: id\n    secretAccessKey: s3cr3t-value\n",
    )
    .unwrap();
    let o = storage(d, &["--config", "s3.yml", "health"]);
    assert_eq!(o.status.code(), Some(1), "{}", run::stderr(&o));
    let text = run::stdout(&o);
    let line = text
        .lines()
        .find(|l| l.starts_with("blob"))
        .unwrap_or_default();
    assert!(
        line.contains("local") && line.contains("degraded") && line.contains("s3"),
        "{text}"
    );
    assert!(!text.contains("s3cr3t-value"), "{text}");
    let put = storage(d, &["--config", "s3.yml", "blob", "put", "s3.yml"]);
    assert!(!put.status.success());
    let err = run::stderr(&put);
    assert!(err.contains("s3") && err.contains("127.0.0.1:1"), "{err}");
    assert!(!err.contains("s3cr3t-value"), "{err}");
    // `health` opened the fallback's directory; the put wrote nothing into it.
    let shards = std::fs::read_dir(d.join(".storage/blobs"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().len() == 2)
                .count()
        })
        .unwrap_or(0);
    assert_eq!(shards, 0, "nothing written to the fallback");
}
