//! `storage watch [PREFIX] [--role cache|database] [--from N]`: prints each change to the keys
//! under a prefix of the role's namespace, one JSON object a line, until Ctrl-C (exit 0) or an
//! error that ends the watch. A watcher that fell behind the backend's log prints a `lagged`
//! line, then goes on. Also the feed subcommands' definitions (this and `tail`), flattened
//! into the CLI's command list.

use crate::RoleArg;
use clap::Subcommand;
use serde_json::json;
use std::io::Write;
use storage_core::Result;
use storage_core::watch::{Watch, WatchEvent};
use storage_manager::StorageManager;

/// The commands that follow a store as it changes.
#[derive(Subcommand)]
pub enum FeedCommand {
    /// Follows a list like `tail -f`: each item appended from now on (or from the absolute index
    /// `--from`; 0 is the list's first append), one JSON value a line, until Ctrl-C.
    Tail {
        /// The list's key; one starting with `-` goes after `--`.
        key: String,
        /// The absolute index to start from (appends since the list was created; a trim does
        /// not move it).
        #[arg(long)]
        from: Option<u64>,
    },
    /// Prints every change to keys under PREFIX (all keys without one) as it happens, one JSON
    /// object a line (`{"position":..,"key":..,"kind":"set"|"delete"|"expired"|"cleared",
    /// "version":..}`), until Ctrl-C. A `{"lagged":..}` line says changes were missed.
    Watch {
        /// Only keys starting with this.
        #[arg(default_value = "")]
        prefix: String,
        /// Which role's namespace to watch.
        #[arg(long, value_enum, default_value = "database")]
        role: RoleArg,
        /// The position to start from (a printed `position`: that change is printed again);
        /// the log's end when not given.
        #[arg(long)]
        from: Option<u64>,
    },
}

/// Runs a feed command.
pub async fn run(m: &StorageManager, command: &FeedCommand) -> Result<()> {
    match command {
        FeedCommand::Tail { key, from } => crate::tail::run(m, key, *from).await,
        FeedCommand::Watch { prefix, role, from } => watch(m, prefix, *role, *from).await,
    }
}

async fn watch(m: &StorageManager, prefix: &str, role: RoleArg, from: Option<u64>) -> Result<()> {
    let store = crate::store(m, role).await?;
    let mut watch = match from {
        Some(position) => Watch::from(store, prefix, position),
        None => Watch::new(store, prefix).await?,
    };
    let mut stdout = std::io::stdout().lock();
    // One listener for the whole run, made before the first read: a Ctrl-C that arrives
    // while a line is being printed is kept for the next wait, not lost with a listener
    // made afresh each time round.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let event = tokio::select! {
            event = watch.next() => event,
            _ = &mut ctrl_c => return Ok(()),
        };
        let Some(event) = event else { return Ok(()) };
        let line = match event? {
            WatchEvent::Change(c) => json!({
                "position": c.position,
                "key": c.key,
                "kind": c.kind,
                "version": c.version.map(|v| v.to_string()),
            }),
            WatchEvent::Lagged {
                missed_from,
                resumed_at,
            } => json!({"lagged": {"missedFrom": missed_from, "resumedAt": resumed_at}}),
        };
        // A closed pipe (`storage watch | head`) ends the watch quietly.
        if writeln!(stdout, "{line}")
            .and_then(|()| stdout.flush())
            .is_err()
        {
            return Ok(());
        }
    }
}
