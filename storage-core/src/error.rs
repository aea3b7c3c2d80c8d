//! The one error type of the project.

use crate::redact::escape_controls;
use crate::version::{Conflict, Version};
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
    /// The server refused the credentials (or their absence). Retrying or falling back to
    /// another backend cannot fix it.
    Authentication,
    /// The server refused this operation to this account (a missing grant, an ACL that does
    /// not allow the command or the key): the account needs the right; a retry or another
    /// backend cannot give it.
    PermissionDenied,
    /// A conditional write found the key not as its condition said (another writer came
    /// first); nothing was written. [`Error::conflict`] carries the key's current version.
    Conflict,
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
            ErrorKind::Authentication => "authentication error",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::Conflict => "conflict",
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
            ErrorKind::Authentication => "authentication",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Plugin => "plugin",
            ErrorKind::Other => "other",
        }
    }
}

impl ErrorKind {
    /// What an error of this kind says of its operation unless its backend knows better:
    /// [`Outcome::Unknown`] for a lost connection, a timeout, a plugin's or an unclassified
    /// error; [`Outcome::NotApplied`] for everything refused before it could take effect.
    pub fn default_outcome(self) -> Outcome {
        match self {
            ErrorKind::Connection | ErrorKind::Timeout | ErrorKind::Plugin | ErrorKind::Other => {
                Outcome::Unknown
            }
            _ => Outcome::NotApplied,
        }
    }

    /// Whether an error of this kind may pass on a retry, unless its backend knows better:
    /// [`Status::Temporary`] for a connection error and a timeout, [`Status::Permanent`] for
    /// the rest.
    pub fn default_status(self) -> Status {
        match self {
            ErrorKind::Connection | ErrorKind::Timeout => Status::Temporary,
            _ => Status::Permanent,
        }
    }
}

/// What a failed operation did to the stored data. Success is not an error, so it is not here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It provably took no effect: refused before it was sent (bad input, no connection, a
    /// pool timeout), or rejected by the server (a wrong type, a constraint, a conflict). The
    /// same operation may be sent again.
    NotApplied,
    /// It was sent and its answer was lost (a timeout without a confirmed cancel, a connection
    /// lost after sending): it may or may not have taken effect. Sending a non-idempotent
    /// operation (`append`, `trim`) again may apply it twice; read the data first.
    Unknown,
}

impl Outcome {
    /// `not_applied` or `unknown`, for logs and metric labels.
    pub fn code(self) -> &'static str {
        match self {
            Outcome::NotApplied => "not_applied",
            Outcome::Unknown => "unknown",
        }
    }
}

/// Whether trying again may succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// A retry may succeed: the server was unreachable, busy, failing over, or slow.
    Temporary,
    /// A retry will fail the same way: bad input, a wrong type, the configuration, the
    /// credentials.
    Permanent,
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    outcome: Outcome,
    status: Status,
    backend: Option<Cow<'static, str>>,
    op: Option<Cow<'static, str>>,
    message: String,
    conflict: Option<Box<Conflict>>,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// A new error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            outcome: kind.default_outcome(),
            status: kind.default_status(),
            backend: None,
            op: None,
            message: message.into(),
            conflict: None,
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

    /// A first connect to `target` that did not finish within `limit`: nothing was sent.
    pub fn connect_timeout(target: &str, limit: std::time::Duration) -> Self {
        Self::timeout(format!("connecting to {target} took longer than {limit:?}")).not_applied()
    }

    /// The error of an operation on a backend after its `close`: nothing is sent, and trying
    /// again on the same backend fails the same way.
    pub fn closed() -> Self {
        Self::connection("backend is closed")
            .not_applied()
            .permanent()
    }

    /// A pool checkout that timed out, naming the last connection error the pool saw, if any.
    /// Nothing was sent: [`Outcome::NotApplied`].
    pub fn checkout_timeout(last_connection_error: Option<&str>) -> Self {
        Self::timeout(match last_connection_error {
            Some(why) => format!(
                "no pooled connection within the acquire timeout (last connection error: {why})"
            ),
            None => "no pooled connection within the acquire timeout".to_string(),
        })
        .not_applied()
    }

    /// The server refused the credentials: an [`ErrorKind::Authentication`] error, which the
    /// manager neither retries nor walks the fallback chain past. The message never holds the
    /// credentials.
    pub fn authentication(what: &str) -> Self {
        Self::new(
            ErrorKind::Authentication,
            format!("{what}: authentication failed (check the user and password)"),
        )
    }

    /// A conditional write refused: `key` was not as the condition said, and holds the version
    /// `current` (`None`: nothing, or a list). [`Outcome::NotApplied`] and permanent: sending
    /// the same write again fails the same way; read the key again and decide (as
    /// [`crate::DatabaseExt::update`] does).
    pub fn conflict(key: &str, current: Option<Version>) -> Self {
        let now = match current {
            Some(v) => format!("it is at version {v}"),
            None => "it holds no value".to_string(),
        };
        let mut error = Self::new(
            ErrorKind::Conflict,
            format!("key {key:?} changed since it was read: {now}"),
        );
        error.conflict = Some(Box::new(Conflict {
            key: key.to_string(),
            current,
        }));
        error
    }

    /// The conflict of a refused conditional write: the key and its current version.
    pub fn as_conflict(&self) -> Option<&Conflict> {
        self.conflict.as_deref()
    }

    /// Whether the server refused the credentials.
    pub fn is_authentication(&self) -> bool {
        self.kind == ErrorKind::Authentication
    }

    /// The same error, saying that its operation took no effect.
    pub fn not_applied(mut self) -> Self {
        self.outcome = Outcome::NotApplied;
        self
    }

    /// The same error, saying that its operation may or may not have taken effect.
    pub fn outcome_unknown(mut self) -> Self {
        self.outcome = Outcome::Unknown;
        self
    }

    /// The same error, saying that a retry may succeed.
    pub fn temporary(mut self) -> Self {
        self.status = Status::Temporary;
        self
    }

    /// The same error, saying that a retry will fail the same way.
    pub fn permanent(mut self) -> Self {
        self.status = Status::Permanent;
        self
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

    /// What the failed operation did to the stored data.
    pub fn outcome(&self) -> Outcome {
        self.outcome
    }

    /// Whether trying again may succeed.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Whether trying again may succeed ([`Status::Temporary`]).
    ///
    /// Temporary does not mean safe to send again: an `append` whose answer was lost
    /// ([`Outcome::Unknown`]) may have been applied. Sending again is safe when the error is
    /// temporary and either [`Outcome::NotApplied`] or the operation is idempotent.
    pub fn is_temporary(&self) -> bool {
        self.status == Status::Temporary
    }

    /// A copy of this error: kind, outcome, status, backend, operation and message, with its
    /// cause kept as text (a cause is not `Clone`). For an error handed to many waiters.
    pub fn duplicate(&self) -> Error {
        Error {
            kind: self.kind,
            outcome: self.outcome,
            status: self.status,
            backend: self.backend.clone(),
            op: self.op.clone(),
            message: self.message.clone(),
            conflict: self.conflict.clone(),
            source: self
                .source
                .as_ref()
                .map(|s| Box::new(CauseText(cause_chain(s.as_ref()))) as _),
        }
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
            // The cause is part of the one line a CLI prints, down to its root (the OS error
            // under a driver's "error connecting to server"); drivers' messages carry no
            // secrets that we have not already redacted in the URL we gave them.
            let text = cause_chain(source.as_ref());
            if !text.is_empty() && !self.message.contains(&text) {
                write!(f, ": {}", bounded(&text, 1000))?;
            }
        }
        Ok(())
    }
}

/// `error` and its causes, joined by `: `, each left out when the one before already says it.
fn cause_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let said = cause.to_string();
        if !said.is_empty() && !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        next = cause.source();
    }
    text
}

/// A cause kept as its text, for [`Error::duplicate`].
#[derive(Debug)]
struct CauseText(String);

impl fmt::Display for CauseText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CauseText {}

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
#[path = "error_tests.rs"]
mod tests;
