//! How SQLite's result codes read: kind, outcome and status for each code `sql_error` names.

use super::sql_error;
use r2d2_sqlite::rusqlite::{Error as SqlError, ffi};
use storage_core::{ErrorKind, Outcome, Status};

fn read(code: i32) -> (ErrorKind, Outcome, Status) {
    let e = sql_error(
        SqlError::SqliteFailure(ffi::Error::new(code), None),
        "testing",
    );
    (e.kind(), e.outcome(), e.status())
}

#[test]
fn a_rolled_back_write_applied_nothing() {
    use ErrorKind::*;
    use Outcome::NotApplied;
    assert_eq!(
        read(ffi::SQLITE_BUSY),
        (Timeout, NotApplied, Status::Temporary)
    );
    assert_eq!(
        read(ffi::SQLITE_LOCKED),
        (Timeout, NotApplied, Status::Temporary)
    );
    assert_eq!(
        read(ffi::SQLITE_READONLY),
        (Connection, NotApplied, Status::Temporary)
    );
    assert_eq!(
        read(ffi::SQLITE_FULL),
        (Connection, NotApplied, Status::Temporary)
    );
    assert_eq!(
        read(ffi::SQLITE_CORRUPT),
        (Other, NotApplied, Status::Permanent)
    );
    assert_eq!(
        read(ffi::SQLITE_NOTADB),
        (Configuration, NotApplied, Status::Permanent)
    );
    assert_eq!(
        read(ffi::SQLITE_CONSTRAINT),
        (Other, NotApplied, Status::Permanent)
    );
}

#[test]
fn a_disk_failing_under_a_commit_leaves_the_outcome_unknown() {
    assert_eq!(
        read(ffi::SQLITE_IOERR),
        (ErrorKind::Connection, Outcome::Unknown, Status::Temporary)
    );
}
