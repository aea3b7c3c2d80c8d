//! The plugin ABI fingerprint: a hash of the definitions that cross the plugin boundary (the
//! traits with their method lists and signatures, the error and value types, the declaration),
//! with comments and whitespace left out, so that a change to any of them changes the
//! fingerprint and a documentation change does not. Shared by `build.rs`, which computes it,
//! and the crate's tests.

/// The source files whose definitions cross the boundary, relative to the crate root.
pub const BOUNDARY_FILES: &[&str] = &[
    "src/backend.rs",
    "src/error.rs",
    "src/version.rs",
    "src/blob.rs",
    "src/watch.rs",
    "src/registry.rs",
    "src/plugin.rs",
    "src/config/spec.rs",
    "src/config/common.rs",
    "src/config/near_cache.rs",
    "src/config/cache_aside.rs",
];

/// The fingerprint of the given sources, as 16 hex digits (FNV-1a, 64 bits).
pub fn fingerprint(sources: &[&str]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for source in sources {
        for byte in normalized(source).bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator, so that moving text between files changes the hash.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The source without `//` comments (doc comments included) and without whitespace: what
/// the compiler sees of the definitions, not how they are laid out or documented.
fn normalized(source: &str) -> String {
    source
        .lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal (a URL in a message) is kept: only a comment
            // that starts the line's code, or follows code after whitespace, is dropped.
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .flat_map(|line| line.chars().filter(|c| !c.is_whitespace()))
        .collect()
}
