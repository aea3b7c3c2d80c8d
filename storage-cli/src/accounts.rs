//! The commands for production accounts: `storage init` creates or upgrades each role's
//! schema with the config's (owner's) credentials, `storage init --print-sql` prints that DDL
//! for a DBA instead, and `storage acl` prints the Redis ACL rules an account limited to each
//! role's namespace needs. Flattened into the CLI's command list. Not the DDL or the rules
//! themselves: each backend gives its own (`BackendConfig::schema_ddl`, `access_rules`).

use crate::RoleArg;
use clap::Subcommand;
use storage_core::config::{BackendSpec, Role};
use storage_core::{Error, Result};
use storage_manager::StorageManager;

/// Commands for the accounts the storage runs under.
#[derive(Subcommand)]
pub enum AccountCommand {
    /// Creates or upgrades each role's tables with this config's credentials (run it as the
    /// schema's owner; the application's account then needs no right to create). With
    /// --print-sql, prints the DDL instead, for review and to apply by hand.
    Init {
        /// Print the statements instead of running them.
        #[arg(long)]
        print_sql: bool,
    },
    /// Prints, for each role on Redis, one line of ACL rules an account limited to the
    /// role's keyPrefix needs (`ACL SETUSER <name> on ><password> <rules>` takes it as is);
    /// which role each line is for goes to stderr.
    Acl {
        /// Only this role's line.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
    },
}

/// Each configured role's primary block.
fn primaries(m: &StorageManager) -> Vec<(Role, &BackendSpec)> {
    m.config()
        .roles()
        .into_iter()
        .filter_map(|role| m.config().role(role).map(|r| (role, &r.primary)))
        .collect()
}

/// Runs an account command.
pub async fn run(m: &StorageManager, command: &AccountCommand) -> Result<()> {
    match command {
        AccountCommand::Init { print_sql: true } => {
            let mut printed = false;
            for (role, spec) in primaries(m) {
                if let Some(ddl) = spec.config.schema_ddl() {
                    println!("-- {} ({role}: {spec})\n{ddl}", spec.path);
                    printed = true;
                }
            }
            if !printed {
                eprintln!(
                    "storage: no role's backend has a schema to print (SQLite and the in-memory store create their own; Redis has none)"
                );
            }
            Ok(())
        }
        AccountCommand::Init { print_sql: false } => {
            let registry = m.registry();
            for (role, spec) in primaries(m) {
                // Opening a backend creates or upgrades its schema with these credentials.
                match role {
                    Role::Cache => registry.open_cache(spec).await?.close().await?,
                    Role::Database => registry.open_database(spec).await?.close().await?,
                    Role::Blob => registry.open_blob(spec).await?.close().await?,
                }
                println!("{} ({spec}): ready", spec.path);
            }
            Ok(())
        }
        AccountCommand::Acl { role } => {
            let wanted = role.map(|r| match r {
                RoleArg::Cache => Role::Cache,
                RoleArg::Database => Role::Database,
            });
            let mut printed = false;
            for (role, spec) in primaries(m) {
                if wanted.is_some_and(|w| w != role) {
                    continue;
                }
                if spec.common.key_prefix.chars().any(char::is_whitespace) {
                    // A rule line is split at spaces: such a prefix cannot be written in one.
                    return Err(Error::config(format!(
                        "{}.keyPrefix: holds whitespace, which an ACL rule line cannot carry; choose a keyPrefix without it",
                        spec.path
                    )));
                }
                if let Some(rules) = spec.config.access_rules(role, &spec.common.key_prefix) {
                    eprintln!("storage: {} ({role}: {spec}):", spec.path);
                    println!("{rules}");
                    printed = true;
                }
            }
            if printed {
                Ok(())
            } else {
                Err(Error::config(
                    "no role (of those asked for) is on a backend with access rules (Redis)",
                ))
            }
        }
    }
}
