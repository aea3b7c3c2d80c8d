//! What an `object_store` error means here: its variant, never its text, decides the kind.

use storage_core::Error;

/// The error of `what` failing with `e`.
pub(crate) fn s3_error(e: object_store::Error, what: &str) -> Error {
    use object_store::Error as E;
    let message = format!("{what}: {e}");
    let error = match &e {
        // Every request error after the client's own retries: the server unreachable, or an
        // answer of 5xx. Whether a write was applied is not known.
        E::Generic { .. } => Error::connection(message).outcome_unknown(),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            Error::new(storage_core::ErrorKind::Authentication, message).permanent()
        }
        E::NotSupported { .. } | E::NotImplemented { .. } => Error::unsupported(message),
        E::UnknownConfigurationKey { .. } | E::InvalidPath { .. } => Error::config(message),
        _ => Error::other(message),
    };
    error.with_source(e)
}
