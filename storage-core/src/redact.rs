//! A last line of defence that keeps passwords out of text that may hold a connection string.
//!
//! Backends describe themselves from their parsed settings and never print the string a user
//! wrote, so this is not how secrets are normally kept out of output. It is for text that may
//! echo one anyway (a driver's error, a status reason): it over-redacts rather than risk a
//! leak, and is not a parser.
//!
//! Also here: [`escape_controls`] and [`excerpt`], which every error message passes through
//! before it reaches a terminal, so that text quoted from input (a field name, a value, a key)
//! never carries an escape sequence or a screenful of bytes.

use std::borrow::Cow;
use std::fmt::Write;

/// Replaces passwords in `text` with `***`: the userinfo password of every `scheme://` token
/// (up to the token's last `@`, as libpq reads it), and the value of every `password` key in
/// libpq's key/value form or a URL query (`password=x`, `password = 'x y'`). Other text is
/// returned unchanged.
///
/// ```
/// use storage_core::redact::redact;
/// assert_eq!(redact("db://u:secret@h/db"), "db://u:***@h/db");
/// assert_eq!(redact("db://app:Pa/ss#1@h/app"), "db://app:***@h/app");
/// assert_eq!(redact("host=h password = 'a b' user=u"), "host=h password = *** user=u");
/// ```
pub fn redact(text: &str) -> String {
    redact_key_values(&redact_userinfo(text))
}

fn redact_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find("://") {
        let token_start = pos + 3;
        out.push_str(&rest[..token_start]);
        let tail = &rest[token_start..];
        let token_len = tail.find(char::is_whitespace).unwrap_or(tail.len());
        let token = &tail[..token_len];
        match token.rfind('@') {
            Some(at) => {
                let userinfo = &token[..at];
                match userinfo.find(':') {
                    Some(colon) => {
                        out.push_str(&userinfo[..colon + 1]);
                        out.push_str("***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&token[at..]);
            }
            None => out.push_str(token),
        }
        rest = &tail[token_len..];
    }
    out.push_str(rest);
    out
}

fn redact_key_values(text: &str) -> String {
    const KEY: &str = "password";
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.to_ascii_lowercase().find(KEY) {
        let after_key = pos + KEY.len();
        out.push_str(&rest[..after_key]);
        let tail = &rest[after_key..];
        let spaces_before = tail.len() - tail.trim_start().len();
        let Some(after_eq) = tail[spaces_before..].strip_prefix('=') else {
            rest = tail;
            continue;
        };
        let value = after_eq.trim_start();
        out.push_str(&tail[..tail.len() - value.len()]);
        out.push_str("***");
        let value_len = if let Some(quoted) = value.strip_prefix('\'') {
            // A quoted value runs to the next unescaped quote (or to the end).
            let mut escaped = false;
            let end = quoted
                .char_indices()
                .find(|&(_, c)| {
                    let close = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    close
                })
                .map_or(quoted.len(), |(i, _)| i + 1);
            1 + end
        } else {
            value.find(char::is_whitespace).unwrap_or(value.len())
        };
        rest = &value[value_len..];
    }
    out.push_str(rest);
    out
}

/// `text` with every control character (C0, DEL and C1, newlines and tabs included) written as
/// an escape (`\n`, `\t`, `\u{1b}`) and every backslash doubled, so quoted input prints on one
/// line and cannot drive a terminal. Text without either is returned as it is.
///
/// ```
/// use storage_core::redact::escape_controls;
/// assert_eq!(escape_controls("plain"), "plain");
/// assert_eq!(escape_controls("a\x1b[31mb\n"), "a\\u{1b}[31mb\\n");
/// ```
pub fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// At most `max_chars` characters of `text`, control characters escaped; a longer text is cut
/// and says how long it was (`…(131072 bytes)`), so an error never echoes a whole argument.
///
/// ```
/// use storage_core::redact::excerpt;
/// assert_eq!(excerpt("short", 10), "short");
/// assert_eq!(excerpt(&"x".repeat(100), 4), "xxxx…(100 bytes)");
/// ```
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let cut = text.char_indices().nth(max_chars).map(|(i, _)| i);
    match cut {
        None => escape_controls(text).into_owned(),
        Some(at) => format!("{}…({} bytes)", escape_controls(&text[..at]), text.len()),
    }
}

/// `message` with every value that `vars` (name, value) put into the configuration replaced by
/// the variable's name, or `None` when it holds none. An error about a field whose value came
/// from `$DB_PASSWORD` must not print the password: it says `the value of $DB_PASSWORD`.
/// Values of three characters or fewer are replaced only where quoted, so that a `$PORT` of
/// `1` does not rewrite every `1` in the message.
pub(crate) fn hide_env_values(message: &str, vars: &[(String, String)]) -> Option<String> {
    let mut out = message.to_owned();
    let mut vars: Vec<&(String, String)> = vars.iter().filter(|(_, v)| !v.is_empty()).collect();
    // Longest first, so a value holding another is replaced whole.
    vars.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    for (name, value) in vars {
        // A variable's value, or (a field path) the contents of a secret file.
        let shown = if name.contains('.') {
            format!("(the contents of {name})")
        } else {
            format!("(the value of ${name})")
        };
        for quoted in [
            format!("\"{value}\""),
            format!("`{value}`"),
            format!("'{value}'"),
        ] {
            out = out.replace(&quoted, &shown);
        }
        // serde quotes a string with Rust's escapes; a value holding a quote or backslash is
        // matched in that form too.
        out = out.replace(&format!("{value:?}"), &shown);
        if value.chars().count() > 3 {
            out = out.replace(value.as_str(), &shown);
        }
    }
    (out != message).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redacts_urls_as_libpq_reads_them() {
        assert_eq!(redact("db://h/db"), "db://h/db");
        assert_eq!(redact("db://u@h/db"), "db://u@h/db");
        assert_eq!(
            redact("db://u:p@ss@h:5/db?sslmode=require"),
            "db://u:***@h:5/db?sslmode=require"
        );
        assert_eq!(
            redact("failed: db://app:Pa/ss#1@h/app refused"),
            "failed: db://app:***@h/app refused"
        );
        assert_eq!(redact("db://:ab/cd@h:6379"), "db://:***@h:6379");
        assert_eq!(redact("not a url"), "not a url");
    }

    #[test]
    fn redacts_key_value_passwords() {
        assert_eq!(
            redact("db://h/db?user=u&password=hunter2"),
            "db://h/db?user=u&password=***"
        );
        assert_eq!(
            redact("host=h password = x user=u"),
            "host=h password = *** user=u"
        );
        assert_eq!(redact("password='it\\'s me' x=1"), "password=*** x=1");
        assert_eq!(redact("PASSWORD=x"), "PASSWORD=***");
        assert_eq!(redact("the password is wrong"), "the password is wrong");
    }
}
