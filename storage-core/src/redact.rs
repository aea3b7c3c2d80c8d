//! Keeping passwords out of messages and logs.

/// Replaces the password in a connection URL (`scheme://user:pass@host`, or a `password=` query
/// parameter) with `***`. Other text is returned unchanged.
///
/// ```
/// use storage_core::redact::redact_url;
/// assert_eq!(redact_url("postgresql://u:secret@h/db"), "postgresql://u:***@h/db");
/// assert_eq!(redact_url("redis://:secret@h:6379"), "redis://:***@h:6379");
/// ```
pub fn redact_url(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?', '#'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let pass_start = rest_start + colon + 1;
                let pass_end = rest_start + at;
                out.replace_range(pass_start..pass_end, "***");
            }
        }
    }
    // libpq also accepts the password as a query parameter.
    let mut search_from = 0;
    while let Some(pos) = out[search_from..].find("password=") {
        let start = search_from + pos + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |i| start + i);
        out.replace_range(start..end, "***");
        search_from = start + 3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts() {
        assert_eq!(redact_url("postgresql://h/db"), "postgresql://h/db");
        assert_eq!(redact_url("postgresql://u@h/db"), "postgresql://u@h/db");
        assert_eq!(
            redact_url("postgres://u:p@ss@h:5/db?sslmode=require"),
            "postgres://u:***@h:5/db?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://h/db?user=u&password=hunter2&x=1"),
            "postgresql://h/db?user=u&password=***&x=1"
        );
        assert_eq!(redact_url("not a url"), "not a url");
    }
}
