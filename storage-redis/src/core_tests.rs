//! How driver errors read: every branch of `redis_error`, from errors built the way redis-rs
//! builds them (an I/O error, a kind with a description), before and after sending.

use super::{Sent, is_wrong_type, redis_error};
use redis::{ErrorKind as Kind, RedisError, ServerErrorKind as Server};
use std::io;
use storage_core::{ErrorKind, Outcome, Status};

fn io_error(kind: io::ErrorKind) -> RedisError {
    RedisError::from(io::Error::new(kind, "from the socket"))
}

/// The error of a reply the server sent (`-CODE detail`), as redis-rs reads it off the wire.
fn reply(line: &str) -> RedisError {
    redis::parse_redis_value(format!("{line}\r\n").as_bytes())
        .and_then(redis::Value::extract_error)
        .expect_err("an error reply")
}

fn read(e: RedisError, sent: Sent) -> (ErrorKind, Outcome, Status) {
    let e = redis_error(e, "testing", sent);
    (e.kind(), e.outcome(), e.status())
}

#[test]
fn a_refused_connection_applied_nothing_whenever_it_came() {
    for sent in [Sent::No, Sent::Yes] {
        assert_eq!(
            read(io_error(io::ErrorKind::ConnectionRefused), sent),
            (
                ErrorKind::Connection,
                Outcome::NotApplied,
                Status::Temporary
            )
        );
    }
}

/// Regression: a connect that timed out said "the command may have been applied: the outcome
/// is unknown", though no command had been sent.
#[test]
fn a_timeout_is_unknown_only_after_sending() {
    let before = redis_error(io_error(io::ErrorKind::TimedOut), "connecting", Sent::No);
    assert_eq!(
        (before.kind(), before.outcome(), before.status()),
        (ErrorKind::Timeout, Outcome::NotApplied, Status::Temporary)
    );
    assert!(before.to_string().contains("nothing was sent"), "{before}");
    assert!(!before.to_string().contains("may have"), "{before}");
    assert_eq!(
        read(io_error(io::ErrorKind::TimedOut), Sent::Yes),
        (ErrorKind::Timeout, Outcome::Unknown, Status::Temporary)
    );
}

/// Regression: an append whose connection dropped after it was sent said only "appending:
/// broken pipe", which reads as "not applied".
#[test]
fn a_connection_lost_after_sending_is_unknown() {
    for cut in [
        io::ErrorKind::BrokenPipe,
        io::ErrorKind::ConnectionReset,
        io::ErrorKind::UnexpectedEof,
    ] {
        assert_eq!(
            read(io_error(cut), Sent::Yes),
            (ErrorKind::Connection, Outcome::Unknown, Status::Temporary),
            "{cut:?}"
        );
        assert_eq!(
            read(io_error(cut), Sent::No),
            (
                ErrorKind::Connection,
                Outcome::NotApplied,
                Status::Temporary
            ),
            "{cut:?}"
        );
    }
    let e = redis_error(io_error(io::ErrorKind::BrokenPipe), "appending", Sent::Yes);
    assert!(e.to_string().contains("the outcome is unknown"), "{e}");
}

#[test]
fn a_cluster_or_a_busy_server_refusing_the_command_applied_nothing() {
    for kind in [
        Server::Moved,
        Server::Ask,
        Server::TryAgain,
        Server::ClusterDown,
        Server::ReadOnly,
        Server::BusyLoading,
        Server::MasterDown,
    ] {
        assert_eq!(
            read(RedisError::from((Kind::Server(kind), "refused")), Sent::Yes),
            (
                ErrorKind::Connection,
                Outcome::NotApplied,
                Status::Temporary
            ),
            "{kind:?}"
        );
    }
}

#[test]
fn a_server_rejection_is_permanent_and_applied_nothing() {
    for kind in [Server::ResponseError, Server::ExecAbort] {
        assert_eq!(
            read(
                RedisError::from((Kind::Server(kind), "rejected")),
                Sent::Yes
            ),
            (ErrorKind::Other, Outcome::NotApplied, Status::Permanent),
            "{kind:?}"
        );
    }
}

#[test]
fn refused_credentials_are_an_authentication_error() {
    let e = redis_error(
        RedisError::from((Kind::AuthenticationFailed, "WRONGPASS")),
        "connecting",
        Sent::No,
    );
    assert_eq!(
        (e.kind(), e.outcome(), e.status()),
        (
            ErrorKind::Authentication,
            Outcome::NotApplied,
            Status::Permanent
        )
    );
}

#[test]
fn a_client_side_error_is_permanent() {
    assert_eq!(
        read(RedisError::from((Kind::Client, "bad argument")), Sent::No).2,
        Status::Permanent
    );
}

#[test]
fn each_sign_of_a_lost_connection_counts_alone() {
    // An I/O error that is neither a dropped connection nor one to reconnect after.
    assert_eq!(
        read(io_error(io::ErrorKind::Other), Sent::Yes),
        (ErrorKind::Connection, Outcome::Unknown, Status::Temporary)
    );
    // A reply that does not parse: not I/O, but the connection must be replaced.
    assert_eq!(
        read(RedisError::from((Kind::Parse, "garbled")), Sent::Yes),
        (ErrorKind::Connection, Outcome::Unknown, Status::Temporary)
    );
}

#[test]
fn reply_codes_redis_rs_does_not_type_are_read_by_code() {
    assert!(is_wrong_type(&reply(
        "-WRONGTYPE Operation against a key holding the wrong kind of value"
    )));
    assert!(!is_wrong_type(&reply("-ERR unknown command")));
    for line in [
        "-NOAUTH Authentication required.",
        "-WRONGPASS invalid username-password pair",
    ] {
        assert_eq!(
            read(reply(line), Sent::Yes).0,
            ErrorKind::Authentication,
            "{line}"
        );
    }
    assert_eq!(
        read(reply("-ERR unknown command"), Sent::Yes),
        (ErrorKind::Other, Outcome::NotApplied, Status::Permanent)
    );
    // An ACL's refusal: the account needs the right; even once sent, nothing ran.
    assert_eq!(
        read(
            reply("-NOPERM this user has no permissions to run the 'keys' command"),
            Sent::Yes
        ),
        (
            ErrorKind::PermissionDenied,
            Outcome::NotApplied,
            Status::Permanent
        )
    );
}
