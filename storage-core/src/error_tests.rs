//! Tests of the error type: its message, its display, kinds, outcomes and statuses.

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
    let e = Error::other("y".repeat(50_000)).with_source(std::io::Error::other("z".repeat(9_000)));
    let shown = e.to_string();
    assert!(shown.len() < 3_200, "{}", shown.len());
    assert!(
        shown.contains("…(50000 bytes)") && shown.contains("…(9000 bytes)"),
        "{shown}"
    );
}

#[test]
fn kinds_give_a_status_and_an_outcome_a_backend_can_refine() {
    assert!(Error::connection("x").is_temporary());
    assert!(Error::timeout("x").is_temporary());
    assert!(!Error::wrong_type("x").is_temporary());
    assert!(!Error::config("x").is_temporary());
    assert!(!Error::authentication("connecting").is_temporary());
    assert_eq!(Error::timeout("x").outcome(), Outcome::Unknown);
    assert_eq!(Error::wrong_type("x").outcome(), Outcome::NotApplied);
    let refused = Error::connection("refused").not_applied();
    assert_eq!(
        (refused.outcome(), refused.status()),
        (Outcome::NotApplied, Status::Temporary)
    );
    let busy = Error::other("serialization failure")
        .temporary()
        .not_applied();
    assert!(busy.is_temporary());
    assert_eq!(busy.outcome(), Outcome::NotApplied);
}

/// Regression: authentication was recognised by the end of its message, so a message
/// rewritten on its way (an environment value hidden) could stop being one.
#[test]
fn authentication_is_a_kind_not_a_message() {
    let e = Error::authentication("connecting");
    assert_eq!(e.kind(), ErrorKind::Authentication);
    assert!(e.is_authentication());
    let hidden = e.map_message(|_| Some("something else".into()));
    assert!(hidden.is_authentication());
    assert!(
        !Error::config("authentication failed (check the user and password)").is_authentication()
    );
}

/// Regression: a refused connection said only "error connecting to server", the driver's
/// outer error; the OS error under it ("Connection refused") was never shown, and a copy
/// handed to other waiters lost even that.
#[test]
fn the_cause_chain_is_shown_to_its_root_and_survives_a_duplicate() {
    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("error connecting to server")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let refused = std::io::Error::new(
        std::io::ErrorKind::ConnectionRefused,
        "Connection refused (os error 111)",
    );
    let e = Error::connection("connecting")
        .not_applied()
        .with_source(Outer(refused));
    let shown = e.to_string();
    assert_eq!(
        shown,
        "connection error: connecting: error connecting to server: Connection refused (os error 111)"
    );
    let copy = e.duplicate();
    assert_eq!(copy.to_string(), shown);
    assert_eq!(copy.outcome(), Outcome::NotApplied);
    assert_eq!(copy.kind(), ErrorKind::Connection);
}

#[test]
fn codes_are_stable_labels() {
    assert_eq!(ErrorKind::Authentication.code(), "authentication");
    assert_eq!(ErrorKind::Timeout.code(), "timeout");
    assert_eq!(ErrorKind::WrongType.code(), "wrong_type");
    assert_eq!(Outcome::NotApplied.code(), "not_applied");
    assert_eq!(Outcome::Unknown.code(), "unknown");
}

#[test]
fn a_cause_already_said_is_not_said_again() {
    // The message already quotes the cause: it is not appended.
    let e =
        Error::other("reading: disk on fire").with_source(std::io::Error::other("disk on fire"));
    assert_eq!(e.to_string(), "error: reading: disk on fire");
    // A cause with no words adds nothing.
    let e = Error::other("reading").with_source(std::io::Error::other(""));
    assert_eq!(e.to_string(), "error: reading");
    // A cause whose own cause repeats it is said once.
    #[derive(Debug)]
    struct Wraps(std::io::Error);
    impl fmt::Display for Wraps {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "wrapped: {}", self.0)
        }
    }
    impl std::error::Error for Wraps {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let e = Error::other("reading").with_source(Wraps(std::io::Error::other("gone")));
    assert_eq!(e.to_string(), "error: reading: wrapped: gone");
}

#[test]
fn debug_is_the_kind_and_the_one_line() {
    let e = Error::timeout("x").at("kv", "get");
    assert_eq!(format!("{e:?}"), "Error(Timeout, \"kv get: timeout: x\")");
}
