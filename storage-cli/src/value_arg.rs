//! The value of `set` and `append`: JSON text given as an argument or read from a file or
//! standard input, parsed strictly (a member written twice, or an integer past 64 bits, would be
//! stored changed). Not the commands (`main.rs`).

use crate::Failure;
use serde_json::Value;
use storage_core::Error;

fn parse_json(text: &str) -> Result<Value, Failure> {
    // Strict: a member written twice, or an integer past 64 bits, would be stored changed.
    // The argument is quoted as a short escaped excerpt, never whole.
    storage_core::json::parse_strict(text).map_err(|e| {
        Failure(Error::invalid_input(format!(
            "argument \"{}\" is not a JSON value that can be stored as written: {e}",
            storage_core::redact::excerpt(text, 60)
        )))
    })
}

/// The value of `set` or `append`: the argument, or the file (`-`: standard input).
pub(crate) fn value_arg(
    json: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Value, Failure> {
    let text = match (json, file) {
        (Some(text), _) => return parse_json(text),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
                Failure(Error::invalid_input(format!(
                    "--value-file -: cannot read standard input: {e}"
                )))
            })?;
            text
        }
        (None, Some(path)) => std::fs::read_to_string(path).map_err(|e| {
            Failure(Error::invalid_input(format!(
                "--value-file {}: {e}",
                path.display()
            )))
        })?,
        (None, None) => {
            return Err(Failure(Error::invalid_input(
                "give the value as JSON text or with --value-file",
            )));
        }
    };
    storage_core::json::parse_strict(&text).map_err(|e| {
        Failure(Error::invalid_input(format!(
            "--value-file: not a JSON value that can be stored as written: {e}"
        )))
    })
}
