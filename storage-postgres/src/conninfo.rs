//! Taking `sslmode` and `sslrootcert` out of a connection string in either libpq form, leaving
//! every other parameter for tokio-postgres to parse.
//!
//! tokio-postgres parses both forms itself but knows neither `sslmode=verify-full` nor
//! `sslrootcert`, and refuses a string that holds them. So the two are removed here and handed
//! to the TLS setup; the rest of the string is passed on byte for byte. In the URL form the
//! query is split on `&` and each name and value is percent-decoded with the
//! `percent-encoding` crate (invalid UTF-8 is an error, never a panic). In the key/value form
//! the string is split into `key = value` pairs by libpq's rules (values may be single-quoted,
//! with `\` escapes), only so that the two parameters can be found: the kept pairs are passed
//! on as written. Errors never quote a value, which may be a password.

use percent_encoding::percent_decode_str;

/// The TLS parameters found in a connection string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsParams {
    /// `sslmode`, as written.
    pub sslmode: Option<String>,
    /// `sslrootcert`, decoded.
    pub sslrootcert: Option<String>,
}

/// Splits `conn` into the string tokio-postgres should parse and the TLS parameters.
pub fn take_tls_params(conn: &str) -> Result<(String, TlsParams), String> {
    if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
        take_from_url(conn)
    } else {
        take_from_key_values(conn)
    }
}

fn take_from_url(url: &str) -> Result<(String, TlsParams), String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), TlsParams::default()));
    };
    let mut params = TlsParams::default();
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str, what: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| {
                    format!("a query parameter's {what} is not valid UTF-8 once percent-decoded")
                })
        };
        match decode(raw_key, "name")?.as_str() {
            "sslmode" => params.sslmode = Some(decode(raw_value, "value")?),
            "sslrootcert" => params.sslrootcert = Some(decode(raw_value, "value")?),
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((rest, params))
}

/// One `key = value` pair: the key, the unescaped value, and the pair's text as written.
struct Pair<'a> {
    key: &'a str,
    value: String,
    raw: &'a str,
}

fn key_value_pairs(s: &str) -> Result<Vec<Pair<'_>>, String> {
    let mut pairs = Vec::new();
    let bytes = s.as_bytes();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i >= bytes.len() {
            return Ok(pairs);
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &s[start..i];
        i = skip_ws(i);
        if i >= bytes.len() || bytes[i] != b'=' {
            return Err(format!("expected `=` after `{key}`"));
        }
        i = skip_ws(i + 1);
        let mut value = Vec::new();
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(format!("unterminated quoted value for `{key}`")),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1]);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                if bytes[i] == b'\\' && i + 1 < bytes.len() {
                    i += 1;
                }
                value.push(bytes[i]);
                i += 1;
            }
        }
        // Split points are ASCII, so the pieces are UTF-8.
        let value =
            String::from_utf8(value).map_err(|_| format!("the value of `{key}` is not UTF-8"))?;
        pairs.push(Pair {
            key,
            value,
            raw: &s[start..i],
        });
    }
}

fn take_from_key_values(conn: &str) -> Result<(String, TlsParams), String> {
    let mut params = TlsParams::default();
    let mut kept = Vec::new();
    for pair in key_value_pairs(conn)? {
        match pair.key {
            "sslmode" => params.sslmode = Some(pair.value),
            "sslrootcert" => params.sslrootcert = Some(pair.value),
            _ => kept.push(pair.raw),
        }
    }
    Ok((kept.join(" "), params))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(s: &str) -> String {
        // tokio-postgres's Debug of its config shows every parameter but the password.
        format!("{:?}", s.parse::<tokio_postgres::Config>().unwrap())
    }

    #[test]
    fn url_form() {
        let (rest, p) =
            take_tls_params("postgresql://u:p%40w@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Ftmp%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgresql://u:p%40w@h:5/db?application_name=x");
        assert_eq!(p.sslmode.as_deref(), Some("verify-full"));
        assert_eq!(p.sslrootcert.as_deref(), Some("/tmp/ca.pem"));
        let (rest, p) = take_tls_params("postgres://h/db").unwrap();
        assert_eq!(
            (rest.as_str(), p),
            ("postgres://h/db", TlsParams::default())
        );
        let (rest, _) = take_tls_params("postgres://h/db?sslmode=require").unwrap();
        assert_eq!(rest, "postgres://h/db");
    }

    /// Regression: a hand-written percent decoder sliced a `str` inside a multi-byte character
    /// and panicked on `%aé`.
    #[test]
    fn bad_percent_escapes_are_errors_not_panics() {
        let (_, p) =
            take_tls_params("postgresql://u@h/x?sslmode=verify-full&sslrootcert=%aé").unwrap();
        assert_eq!(p.sslrootcert.as_deref(), Some("%aé"));
        let e = take_tls_params("postgresql://u@h/x?sslrootcert=%ff%fe").unwrap_err();
        assert!(e.contains("not valid UTF-8"), "{e}");
        assert!(!e.contains("%ff"), "{e}");
    }

    #[test]
    fn key_value_form_keeps_the_rest_as_written() {
        let conn = "host=h  user = u password='a b\\'c' dbname=d sslmode=require options='-c search_path=t'";
        let (rest, p) = take_tls_params(conn).unwrap();
        assert_eq!(p.sslmode.as_deref(), Some("require"));
        assert_eq!(
            rest,
            "host=h user = u password='a b\\'c' dbname=d options='-c search_path=t'"
        );
        let without_ssl = "host=h  user = u password='a b\\'c' dbname=d options='-c search_path=t'";
        assert_eq!(parsed(&rest), parsed(without_ssl));
        let (_, p) = take_tls_params("host=h sslrootcert='/a dir/ca.pem'").unwrap();
        assert_eq!(p.sslrootcert.as_deref(), Some("/a dir/ca.pem"));
    }

    #[test]
    fn malformed_key_values_are_errors_without_values() {
        let e = take_tls_params("host=h password='hunter2").unwrap_err();
        assert!(e.contains("unterminated") && !e.contains("hunter2"), "{e}");
        let e = take_tls_params("host").unwrap_err();
        assert!(e.contains("expected `=`"), "{e}");
    }

    /// Backslash escapes, quoted and not, at the end of the text and before it, and an empty
    /// value at the very end: each pair's value and its text as written.
    #[test]
    fn escapes_and_ends_of_the_key_value_form() {
        let pairs = |s: &str| -> Vec<(String, String, String)> {
            key_value_pairs(s)
                .unwrap()
                .into_iter()
                .map(|p| (p.key.to_string(), p.value, p.raw.to_string()))
                .collect()
        };
        let one = |k: &str, v: &str, raw: &str| (k.to_string(), v.to_string(), raw.to_string());
        assert_eq!(pairs("a="), vec![one("a", "", "a=")]);
        assert_eq!(pairs("a = ''"), vec![one("a", "", "a = ''")]);
        assert_eq!(
            pairs(r"a='x\'y' b=1"),
            vec![one("a", "x'y", r"a='x\'y'"), one("b", "1", "b=1")]
        );
        assert_eq!(pairs(r"a=x\ y"), vec![one("a", "x y", r"a=x\ y")]);
        assert_eq!(pairs(r"a=x\"), vec![one("a", r"x\", r"a=x\")]);
        assert_eq!(pairs(r"a=\\b"), vec![one("a", r"\b", r"a=\\b")]);
        assert!(matches!(key_value_pairs(r"a='x\"), Err(e) if e.contains("unterminated")));
    }
}
