//! Redis's glob matcher, ported line by line from `stringmatchlen` in Redis's `util.c`.
//!
//! It is a port, not a translation to regular expressions, so that every backend lists exactly
//! the keys a Redis server would: `?` matches one *byte*, range ends compare as signed bytes (C
//! `char` on x86-64), a reversed range is swapped, only `^` negates, `\` escapes one byte, and an
//! unclosed `[` runs to the end of the pattern.

/// Redis gives up on patterns that nest `*` more than this deep.
const MAX_NESTING: u32 = 1000;

/// Whether `string` matches the Redis glob `pattern`, byte for byte as Redis decides it.
///
/// ```
/// use storage_core::raw::glob_match;
/// assert!(glob_match("user:*", "user:42"));
/// assert!(glob_match("h?llo", "hello"));
/// assert!(!glob_match("h[^e]llo", "hello"));
/// ```
pub fn glob_match(pattern: &str, string: &str) -> bool {
    glob_match_bytes(pattern.as_bytes(), string.as_bytes())
}

/// [`glob_match`] over raw bytes.
pub fn glob_match_bytes(pattern: &[u8], string: &[u8]) -> bool {
    let mut skip_longer = false;
    matchlen(pattern, string, &mut skip_longer, 0)
}

/// The byte at `i`, or 0 past the end: Redis's patterns are NUL-terminated and its matcher
/// reads the terminator in two places.
#[inline]
fn at(p: &[u8], i: usize) -> u8 {
    p.get(i).copied().unwrap_or(0)
}

fn matchlen(pattern: &[u8], string: &[u8], skip_longer: &mut bool, nesting: u32) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    // `p`/`s` index the current byte; `plen`/`slen` are the bytes left, as in the C code. The
    // invariant `p + plen == pattern.len()` holds until the pattern is used up, so
    // `at(pattern, p)` is 0 when `plen == 0`: the C code's extra `plen > 0` tests next to it are
    // left out.
    let (mut p, mut s) = (0usize, 0usize);
    let (mut plen, mut slen) = (pattern.len(), string.len());

    while plen > 0 && slen > 0 {
        match pattern[p] {
            b'*' => {
                while at(pattern, p + 1) == b'*' {
                    p += 1;
                    plen -= 1;
                }
                if plen == 1 {
                    return true;
                }
                while slen > 0 {
                    if matchlen(
                        &pattern[p + 1..p + plen],
                        &string[s..s + slen],
                        skip_longer,
                        nesting + 1,
                    ) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                    slen -= 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => {
                s += 1;
                slen -= 1;
            }
            b'[' => {
                p += 1;
                plen -= 1;
                let not = at(pattern, p) == b'^';
                if not {
                    p += 1;
                    plen -= 1;
                }
                let mut matched = false;
                loop {
                    if at(pattern, p) == b'\\' && plen >= 2 {
                        p += 1;
                        plen -= 1;
                        if pattern[p] == string[s] {
                            matched = true;
                        }
                    } else if at(pattern, p) == b']' {
                        break;
                    } else if plen == 0 {
                        // Unclosed `[`: the shared advance below must land on the end, where
                        // the loop stops (`p` is not read again).
                        plen += 1;
                        break;
                    } else if plen >= 3 && pattern[p + 1] == b'-' {
                        // C `char` is signed on x86-64: compare range ends as i8.
                        let (a, b) = (pattern[p] as i8 as i32, pattern[p + 2] as i8 as i32);
                        let (start, end) = (a.min(b), a.max(b));
                        let c = string[s] as i8 as i32;
                        p += 2;
                        plen -= 2;
                        if c >= start && c <= end {
                            matched = true;
                        }
                    } else if pattern[p] == string[s] {
                        matched = true;
                    }
                    p += 1;
                    plen -= 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
                slen -= 1;
            }
            first => {
                let mut lit = first;
                if first == b'\\' && plen >= 2 {
                    p += 1;
                    plen -= 1;
                    lit = pattern[p];
                }
                if lit != string[s] {
                    return false;
                }
                s += 1;
                slen -= 1;
            }
        }
        p += 1;
        plen -= 1;
        if slen == 0 {
            while at(pattern, p) == b'*' {
                p += 1;
                plen -= 1;
            }
            break;
        }
    }
    plen == 0 && slen == 0
}

/// The literal part at the start of a pattern, which every matching key starts with.
///
/// SQL backends turn it into an index range scan (see [`prefix_upper_bound`]) and filter the
/// rest with [`glob_match`]. Returns the prefix and whether the pattern is nothing but that
/// literal (then it matches exactly one key).
///
/// ```
/// use storage_core::raw::literal_prefix;
/// assert_eq!(literal_prefix("user:*"), ("user:".to_string(), false));
/// assert_eq!(literal_prefix(r"a\*b"), ("a*b".to_string(), true));
/// ```
pub fn literal_prefix(pattern: &str) -> (String, bool) {
    let bytes = pattern.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'*' | b'?' | b'[' => {
                return (String::from_utf8_lossy(&out).into_owned(), false);
            }
            b'\\' if i + 1 < bytes.len() => {
                out.push(bytes[i + 1]);
                i += 2;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    // Escapes split only single bytes and glob characters are ASCII, so `out` is whole
    // characters of the original pattern.
    (String::from_utf8_lossy(&out).into_owned(), true)
}

/// The smallest string greater than every string that starts with `prefix`, or `None` when no
/// such bound exists (empty prefix, or one made only of U+10FFFF).
///
/// UTF-8's byte order is code point order, so `prefix <= key < upper` is exactly "key starts
/// with prefix" under a byte-wise collation (SQLite's BINARY, PostgreSQL's "C").
///
/// ```
/// use storage_core::raw::prefix_upper_bound;
/// assert_eq!(prefix_upper_bound("ab").as_deref(), Some("ac"));
/// assert_eq!(prefix_upper_bound(""), None);
/// ```
pub fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let mut next = last as u32 + 1;
        if (0xD800..=0xDFFF).contains(&next) {
            next = 0xE000;
        }
        if let Some(c) = char::from_u32(next) {
            chars.push(c);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Escapes every glob character of `literal`, so that it matches only itself as a Redis pattern.
///
/// ```
/// use storage_core::raw::{escape_glob, glob_match};
/// let prefix = "a*[b]:";
/// assert!(glob_match(&escape_glob(prefix), prefix));
/// assert!(!glob_match(&escape_glob(prefix), "aX[b]:"));
/// ```
pub fn escape_glob(literal: &str) -> String {
    let mut out = String::with_capacity(literal.len() + 4);
    for c in literal.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        glob_match(p, s)
    }

    /// Redis stops recursing past 1000 nested `*`s (checked against a Redis 7 server:
    /// `KEYS` with `*a` × 1000 finds `a` × 1000; × 1001 finds nothing), and collapses a run of
    /// `*`s into one, so a run of any length costs one level.
    #[test]
    fn nesting_limit_and_star_runs_as_in_the_server() {
        let a = |n: usize| "a".repeat(n);
        let star_a = |n: usize| "*a".repeat(n);
        assert!(m(&star_a(999), &a(999)));
        assert!(m(&star_a(1000), &a(1000)));
        assert!(!m(&star_a(1001), &a(1001)));
        assert!(m(&format!("{}a", "*".repeat(2000)), "a"));
        assert!(m(&format!("{}a", "*".repeat(2000)), "bba"));
    }

    /// Trailing stars after the string is used up match nothing more, and a pattern byte left
    /// after them fails.
    #[test]
    fn trailing_stars_once_the_string_is_used_up() {
        assert!(m("a**", "a"));
        assert!(m("ab***", "ab"));
        assert!(!m("a*x", "a"));
        assert!(!m("a**x", "a"));
        assert!(!m("a*[x]", "a"));
    }

    #[test]
    fn basics() {
        let table: &[(&str, &str, bool)] = &[
            ("*", "", false), // as in Redis: the loop never runs on an empty string (keys are never empty)
            ("*", "anything", true),
            ("", "", true),
            ("", "a", false),
            ("a", "", false),
            ("abc", "abc", true),
            ("abc", "abd", false),
            ("ABC", "abc", false), // case-sensitive
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*c", "abc", true),
            ("a*c", "abcd", false),
            ("*c", "abc", true),
            ("a**c", "ac", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbY", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("?", "", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[!e]llo", "h!llo", true), // only ^ negates
            ("h[!e]llo", "hallo", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("[z-a]", "m", true), // reversed range is swapped
            ("[z-a]", "A", false),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("a\\?c", "a?c", true),
            ("a\\?c", "abc", false),
            ("[\\]]", "]", true),
            ("[\\-]", "-", true),
            ("[a-]", "]", true),    // `-` followed by `]`: a range from a to ]
            ("[a-]", "-", false),   // ... so '-' itself is not in the set
            ("[]", "]", false),     // `]` right after `[` closes an empty set
            ("[]a]", "]a]", false), // empty set never matches
            ("[", "[", false),      // unclosed `[` with nothing in it
            ("[abc", "a", true),    // unclosed `[` runs to the end
            ("[abc", "d", false),
            ("a[bc", "ab", true),
            ("\\", "\\", true), // a trailing backslash is literal
            ("a\\", "a\\", true),
            ("*\\", "x\\", true),
            ("[^]", "a", true),
            ("*a", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab", false),
            (
                "a*a*a*a*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for &(p, s, want) in table {
            assert_eq!(m(p, s), want, "pattern {p:?} string {s:?}");
        }
    }

    #[test]
    fn question_mark_matches_one_byte() {
        // 'é' is two bytes in UTF-8, so one `?` does not match it, and two do.
        assert!(!m("?", "é"));
        assert!(m("??", "é"));
        assert!(m("caf??", "café"));
        assert!(!m("caf?", "café"));
        // A class matches one byte too.
        assert!(!m("[é]", "é"));
        assert!(m("[é]?", "é"));
    }

    #[test]
    fn signed_byte_ranges() {
        // 'é' is C3 A9; as signed chars, C3 is -61. The range [a-\xC3] swaps to [-61, 'a'].
        // The set is "a-" then C3 then A9: bytes 'a' (97) '-' (45) C3 (-61) and A9 as a literal.
        // Redis reads `[a-é]` as the range a..C3 (swapped: -61..97) plus the literal A9.
        assert!(m("[a-é]", "#"));
        assert!(m("[a-é]", "A"));
        assert!(m("[a-é]", "a"));
        assert!(!m("[a-é]", "b"));
        // Bytes >= 0x80 are negative, so inside the swapped range.
        assert!(m("[a-é]?", "é"));
    }

    #[test]
    fn negated_and_escaped_in_sets() {
        assert!(m("[^a-c]", "d"));
        assert!(!m("[^a-c]", "b"));
        assert!(m("[\\^]", "^"));
        assert!(m("[x\\]y]", "]"));
        assert!(!m("[x\\]y]", "\\"));
    }

    #[test]
    fn literal_prefixes() {
        let table: &[(&str, &str, bool)] = &[
            ("", "", true),
            ("*", "", false),
            ("abc", "abc", true),
            ("ab*", "ab", false),
            ("ab?", "ab", false),
            ("ab[c]", "ab", false),
            ("a\\*b*", "a*b", false),
            ("a\\", "a\\", true),
            ("é*", "é", false),
            ("\\é", "é", true),
        ];
        for &(p, prefix, exact) in table {
            assert_eq!(literal_prefix(p), (prefix.to_string(), exact), "{p:?}");
        }
    }

    #[test]
    fn upper_bounds() {
        assert_eq!(prefix_upper_bound("a").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
        // Every key with the prefix sorts below the bound, byte-wise.
        let upper = prefix_upper_bound("p:").unwrap();
        for key in ["p:", "p:\u{10FFFF}\u{10FFFF}", "p:zzz"] {
            assert!(key.as_bytes() < upper.as_bytes());
        }
        assert!("p;".as_bytes() >= upper.as_bytes());
    }

    #[test]
    fn escaped_literal_matches_only_itself() {
        for lit in ["a*[b]:", "x?y", "\\", "[^a-z]", "plain"] {
            let p = escape_glob(lit);
            assert!(m(&p, lit), "{lit}");
            assert!(!m(&p, &format!("{lit}x")));
            assert_eq!(literal_prefix(&p), (lit.to_string(), true));
        }
    }
}
