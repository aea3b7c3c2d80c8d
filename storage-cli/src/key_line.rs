//! How `storage keys` prints one key per line so that every line reads back as exactly one key.
//! Not the `--json` form, which prints the whole list as one JSON array.
//!
//! Keys may hold any character but NUL, newlines and terminal escapes included. Printed raw, a
//! key with a newline reads as two keys and an escape sequence reaches the terminal. As git
//! quotes unusual paths, a key holding a control character, or starting with `"`, is printed as
//! a JSON string (quoted, every control character escaped); any other key is printed as it is.

use std::borrow::Cow;
use std::fmt::Write;

/// `key` as a line of `storage keys`: itself, or a JSON string when printing it raw would be
/// ambiguous or unsafe for a terminal.
pub fn key_line(key: &str) -> Cow<'_, str> {
    if !key.starts_with('"') && !key.chars().any(char::is_control) {
        return Cow::Borrowed(key);
    }
    // serde_json escapes only U+0000..U+001F; DEL and the C1 controls (U+0080..U+009F, which
    // some terminals obey as escapes) are escaped here too. The result is still JSON.
    let mut out = String::with_capacity(key.len() + 2);
    out.push('"');
    for c in key.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                // Every control character is in the Basic Multilingual Plane.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::key_line;

    #[test]
    fn plain_keys_print_as_they_are() {
        for k in [
            "chat:1",
            "héllo wörld 🦀",
            "a\\b",
            "quote\"inside",
            " lead",
            "*?[]",
        ] {
            assert_eq!(key_line(k), k);
        }
    }

    #[test]
    fn unsafe_keys_print_as_json_strings_that_read_back() {
        for (k, shown) in [
            ("a\nb", r#""a\nb""#),
            ("\u{1b}[31mred", r#""\u001b[31mred""#),
            ("del\u{7f}", r#""del\u007f""#),
            ("csi\u{9b}2J", r#""csi\u009b2J""#),
            ("\"quoted\"", r#""\"quoted\"""#),
            ("tab\tand\\slash", r#""tab\tand\\slash""#),
        ] {
            let line = key_line(k);
            assert_eq!(line, shown, "{k:?}");
            assert!(!line.chars().any(char::is_control), "{line:?}");
            let back: String = serde_json::from_str(&line).unwrap();
            assert_eq!(back, k);
        }
    }
}
