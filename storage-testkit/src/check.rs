//! Small helpers that turn mismatches into readable failure messages.

use serde_json::Value;
use std::fmt::{Debug, Display};
use storage_core::{ErrorKind, Outcome, Result};

/// A case's result: `Err` carries what differed.
pub type CaseResult = std::result::Result<(), String>;

/// Adds context to a storage result.
pub trait Ctx<T> {
    /// Turns an error into a failure message that says what was being done.
    fn ctx(self, what: impl Display) -> std::result::Result<T, String>;
}

impl<T> Ctx<T> for Result<T> {
    fn ctx(self, what: impl Display) -> std::result::Result<T, String> {
        self.map_err(|e| format!("{what}: unexpected error: {e}"))
    }
}

/// Expects an error of `kind`.
///
/// Every error a case expects is a rejection (bad input, a wrong type): it must also say that
/// nothing was applied and that a retry would fail the same way.
pub fn expect_err<T: Debug>(r: Result<T>, kind: ErrorKind, what: impl Display) -> CaseResult {
    match r {
        Ok(v) => Err(format!("{what}: expected a {kind} error, got Ok({v:?})")),
        Err(e) if e.kind() == kind && e.outcome() != Outcome::NotApplied => Err(format!(
            "{what}: a rejection must say it applied nothing, but its outcome is {}: {e}",
            e.outcome().code()
        )),
        Err(e) if e.kind() == kind && e.is_temporary() => Err(format!(
            "{what}: a rejection must say a retry fails the same way, but it is temporary: {e}"
        )),
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => Err(format!(
            "{what}: expected a {kind} error, got {:?}: {e}",
            e.kind()
        )),
    }
}

/// Strict equality: integers and floats are different, floats compare bit for bit.
pub fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if x.is_f64() || y.is_f64() {
                x.is_f64()
                    && y.is_f64()
                    && x.as_f64().map(f64::to_bits) == y.as_f64().map(f64::to_bits)
            } else {
                x.as_i128() == y.as_i128()
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// `same` over optional values.
pub fn same_opt(a: &Option<Value>, b: &Option<Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// Shortens a value's debug text for messages.
pub fn show<T: Debug>(v: &T) -> String {
    let s = format!("{v:?}");
    if s.len() > 300 {
        format!("{}… ({} chars)", &s[..s.floor_char_boundary(300)], s.len())
    } else {
        s
    }
}

/// Fails unless `cond`.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Fails unless `got == want`, showing both.
macro_rules! ensure_eq {
    ($got:expr, $want:expr, $($msg:tt)+) => {{
        let got = $got;
        let want = $want;
        if got != want {
            return Err(format!(
                "{}: got {}, want {}",
                format!($($msg)+),
                $crate::check::show(&got),
                $crate::check::show(&want)
            ));
        }
    }};
}

/// Fails unless the two values are strictly the same (see [`same`]).
macro_rules! ensure_same {
    ($got:expr, $want:expr, $($msg:tt)+) => {{
        let got = $got;
        let want = $want;
        if !$crate::check::same_opt(&got, &want) {
            return Err(format!(
                "{}: got {}, want {}",
                format!($($msg)+),
                $crate::check::show(&got),
                $crate::check::show(&want)
            ));
        }
    }};
}

pub(crate) use {ensure, ensure_eq, ensure_same};
