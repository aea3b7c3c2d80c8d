//! The one error type of the project.

use crate::redact::escape_controls;
use std::borrow::Cow;
use std::fmt;

/// The result type used across every backend.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, as a caller branches on it.
///
/// The kinds are the ones the contract (`docs/semantics.md`) lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The key is empty, longer than 1024 bytes, or contains U+0000.
    InvalidKey,
    /// The value is nested deeper than 64 levels, or cannot be stored.
    InvalidValue,
    /// Another argument is out of range (a zero TTL, a bad pattern, ...).
    InvalidInput,
    /// The key holds the other kind (a list where a value is expected, or the reverse).
    WrongType,
    /// The server could not be reached or the connection was lost. Transient.
    Connection,
    /// The operation, a connect or a pool checkout took longer than its limit. Transient.
    Timeout,
    /// The configuration is invalid.
    Configuration,
    /// The backend does not offer this operation or role.
    Unsupported,
    /// A runtime plugin could not be loaded, or misbehaved.
    Plugin,
    /// Anything else: corrupt data, a driver error with no better kind.
    Other,
}

impl ErrorKind {
    /// A short human name, used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::InvalidKey => "invalid key",
            ErrorKind::InvalidValue => "invalid value",
            ErrorKind::InvalidInput => "invalid input",
            ErrorKind::WrongType => "wrong type",
            ErrorKind::Connection => "connection error",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Configuration => "configuration error",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Plugin => "plugin error",
            ErrorKind::Other => "error",
        }
    }

    /// A stable identifier (`invalid_key`, `connection`, `timeout`, ...), for metric labels
    /// (`error.type`) and logs that machines read.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::InvalidValue => "invalid_value",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::WrongType => "wrong_type",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Configuration => "configuration",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Plugin => "plugin",
            ErrorKind::Other => "other",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const AUTHENTICATION_FAILED: &str = "authentication failed (check the user and password)";

/// The error of every storage operation.
///
/// Its message names the backend and the operation (`kv get: wrong type: ...`) once a
/// backend has reported it; helpers that run before any backend is known leave them empty and
/// the observation layer ([`crate::layer::Observe`]) fills them in. Messages never contain a password: backends
/// describe themselves from parsed settings, and pass foreign text through
/// [`crate::redact::redact`] before they put it in a message.
#[derive(thiserror::Error)]
pub struct Error {
    kind: ErrorKind,
    backend: Option<Cow<'static, str>>,
    op: Option<Cow<'static, str>>,
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            backend: None,
            op: None,
            message: message.into(),
            source: None,
        }
    }

    /// Shorthand for [`ErrorKind::InvalidKey`].
    pub fn invalid_key(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidKey, message)
    }
    /// Shorthand for [`ErrorKind::InvalidValue`].
    pub fn invalid_value(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidValue, message)
    }
    /// Shorthand for [`ErrorKind::InvalidInput`].
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// Shorthand for [`ErrorKind::WrongType`].
    pub fn wrong_type(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::WrongType, message)
    }
    /// Shorthand for [`ErrorKind::Connection`].
    pub fn connection(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Connection, message)
    }
    /// Shorthand for [`ErrorKind::Timeout`].
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Timeout, message)
    }
    /// Shorthand for [`ErrorKind::Configuration`].
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Configuration, message)
    }
    /// Shorthand for [`ErrorKind::Unsupported`].
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// Shorthand for [`ErrorKind::Plugin`].
    pub fn plugin(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Plugin, message)
    }
    /// Shorthand for [`ErrorKind::Other`].
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Other, message)
    }

    /// The standard wrong-type error for a key that holds a list where a value was expected.
    pub fn holds_list(key: &str) -> Self {
        Self::wrong_type(format!("key {key:?} holds a list, not a value"))
    }
    /// The standard wrong-type error for a key that holds a value where a list was expected.
    pub fn holds_value(key: &str) -> Self {
        Self::wrong_type(format!("key {key:?} holds a value, not a list"))
    }

    /// A pool checkout that timed out, naming the last connection error the pool saw, if any.
    pub fn checkout_timeout(last_connection_error: Option<&str>) -> Self {
        Self::timeout(match last_connection_error {
            Some(why) => format!(
                "no pooled connection within the acquire timeout (last connection error: {why})"
            ),
            None => "no pooled connection within the acquire timeout".to_string(),
        })
    }

    /// The server refused the credentials: a [`ErrorKind::Configuration`] error that retrying
    /// or falling back cannot fix, so the manager neither retries it nor walks the fallback
    /// chain past it ([`Error::is_authentication`]). The message never holds the credentials.
    pub fn authentication(what: &str) -> Self {
        Self::config(format!("{what}: {AUTHENTICATION_FAILED}"))
    }

    /// Whether this error is [`Error::authentication`]'s.
    pub fn is_authentication(&self) -> bool {
        self.kind == ErrorKind::Configuration && self.message.ends_with(AUTHENTICATION_FAILED)
    }

    /// The same error with its message rewritten (to take out what must not be shown).
    pub(crate) fn map_message(mut self, f: impl FnOnce(&str) -> Option<String>) -> Self {
        if let Some(message) = f(&self.message) {
            self.message = message;
        }
        self
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Names the backend and operation, unless a more specific layer already did.
    pub fn at(
        mut self,
        backend: impl Into<Cow<'static, str>>,
        op: impl Into<Cow<'static, str>>,
    ) -> Self {
        if self.backend.is_none() {
            self.backend = Some(backend.into());
        }
        if self.op.is_none() {
            self.op = Some(op.into());
        }
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    /// The backend that reported the error, once known.
    pub fn backend(&self) -> Option<&str> {
        self.backend.as_deref()
    }
    /// The operation that failed, once known.
    pub fn op(&self) -> Option<&str> {
        self.op.as_deref()
    }
    /// The message without the backend and operation.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying again later may succeed: connection errors and timeouts.
    ///
    /// Transient does not mean safe to retry: an `append` whose acknowledgement was lost may
    /// have been applied, so only idempotent operations are retried.
    pub fn is_transient(&self) -> bool {
        matches!(self.kind, ErrorKind::Connection | ErrorKind::Timeout)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.backend, &self.op) {
            (Some(b), Some(op)) => write!(f, "{b} {op}: ")?,
            (Some(b), None) => write!(f, "{b}: ")?,
            (None, Some(op)) => write!(f, "{op}: ")?,
            (None, None) => {}
        }
        // Messages quote input (a field name, a key, a driver's reply): escaped here, once for
        // every error, so none reaches a terminal raw.
        // And bounded: a driver's error for a failed batch may hold one entry per command.
        write!(f, "{}: {}", self.kind, bounded(&self.message, 2000))?;
        if let Some(source) = &self.source {
            // The source is part of the one line a CLI prints; drivers' messages carry no secrets
            // that we have not already redacted in the URL we gave them.
            let text = source.to_string();
            if !text.is_empty() && !self.message.contains(&text) {
                write!(f, ": {}", bounded(&text, 1000))?;
            }
        }
        Ok(())
    }
}

/// `text` escaped, and cut with its length when longer than `max` characters.
fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        escape_controls(text)
    } else {
        Cow::Owned(crate::redact::excerpt(text, max))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Debug is what `unwrap()` prints; the one-line Display is the readable form.
        write!(f, "Error({:?}, \"{}\")", self.kind, self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_names_backend_and_op() {
        let e = Error::holds_list("k").at("kv", "get");
        assert_eq!(
            e.to_string(),
            "kv get: wrong type: key \"k\" holds a list, not a value"
        );
        // A second `at` does not overwrite the first, more specific one.
        let e = e.at("manager", "read");
        assert_eq!(e.backend(), Some("kv"));
        assert_eq!(e.op(), Some("get"));
    }

    /// Regression: an error quoting input printed it raw, escapes and all, and a batch's error
    /// (one entry per failed command) made a 39 KB line. Display escapes and bounds both.
    #[test]
    fn display_escapes_control_characters_and_bounds_its_length() {
        let e = Error::config("field `\u{1b}[2Jx`\nnext");
        assert_eq!(
            e.to_string(),
            "configuration error: field `\\u{1b}[2Jx`\\nnext"
        );
        let e =
            Error::other("y".repeat(50_000)).with_source(std::io::Error::other("z".repeat(9_000)));
        let shown = e.to_string();
        assert!(shown.len() < 3_200, "{}", shown.len());
        assert!(
            shown.contains("…(50000 bytes)") && shown.contains("…(9000 bytes)"),
            "{shown}"
        );
    }

    #[test]
    fn transient_kinds() {
        assert!(Error::connection("x").is_transient());
        assert!(Error::timeout("x").is_transient());
        assert!(!Error::wrong_type("x").is_transient());
        assert!(!Error::config("x").is_transient());
    }
}
