//! What a parsed backend block becomes: a [`BackendSpec`], whose backend-specific part is a
//! [`BackendConfig`] owned by the backend crate that parsed it.
//!
//! storage-core does not know any backend's fields. It holds the common settings and a
//! type-erased [`BackendConfig`] that answers the three questions the manager asks of every
//! backend: how to describe it without secrets, which server (and which data on it) it reaches,
//! and which type it is. The backend downcasts its own settings back with
//! [`BackendSpec::settings`].

use super::common::CommonSettings;
use crate::error::{Error, Result};
use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

/// A backend's own settings, parsed by its factory from its block.
///
/// Implementations hold secrets (passwords) but never show them: [`BackendConfig::describe`]
/// and `Debug` must not print one.
pub trait BackendConfig: Any + fmt::Debug + Send + Sync {
    /// The canonical type name of the backend these settings are for.
    fn type_name(&self) -> &str;

    /// One line naming what it reaches (`app@db.local:5432/app`, a file path), without any
    /// password or other secret.
    fn describe(&self) -> String;

    /// Where its data lives, normalised by the backend that knows its driver (host resolved,
    /// port, database), for the checks that two namespaces never see each other's keys (the
    /// manager's, and `storage migrate`'s). `None` when the data is private to the backend that
    /// opened it.
    ///
    /// The default is cautious: settings of the same type that print the same (`Debug`) reach
    /// the same data, and namespaces nest. A backend that knows better says so.
    fn identity(&self) -> Option<ServerIdentity> {
        Some(ServerIdentity {
            scheme: self.type_name().to_string(),
            endpoints: [format!("{self:?}")].into(),
            scope: String::new(),
            prefixes_nest: true,
        })
    }

    /// The statements an owner runs so that an application account with no right to create
    /// can use this backend (PostgreSQL: the tables, indexes and functions), printed by
    /// `storage init --print-sql`. `None` (the default) when the backend needs none.
    fn schema_ddl(&self) -> Option<String> {
        None
    }

    /// The access rules an account limited to the namespace `key_prefix` of `role` needs, as
    /// the server takes them (Redis: the rules of `ACL SETUSER <name> on ><password> <rules>`:
    /// the key and channel patterns and exactly the commands the backend sends), printed by
    /// `storage acl`. `None` (the default) when the backend has no such rules.
    fn access_rules(&self, role: super::Role, key_prefix: &str) -> Option<String> {
        let _ = (role, key_prefix);
        None
    }
}

/// Where a backend's data lives, as the backend itself normalises it.
///
/// Two identities reach the same data when they have the same `scheme` and `scope` and share at
/// least one endpoint ([`ServerIdentity::overlaps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerIdentity {
    /// The kind of server (usually the type name): identities of different kinds
    /// never overlap.
    pub scheme: String,
    /// Every address the data is reachable at: resolved `ip:port` pairs, socket paths, or a
    /// canonical file path.
    pub endpoints: BTreeSet<String>,
    /// The part of the server that holds the data (a database name or number); empty if the
    /// endpoint says it all.
    pub scope: String,
    /// Whether namespaces on this server are plain string prefixes of one keyspace, so that
    /// `app` and `app:` nest (one's `clear` reaches the other's keys).
    pub prefixes_nest: bool,
}

impl ServerIdentity {
    /// Whether `self` and `other` reach the same data.
    pub fn overlaps(&self, other: &ServerIdentity) -> bool {
        self.scheme == other.scheme
            && self.scope == other.scope
            && self
                .endpoints
                .intersection(&other.endpoints)
                .next()
                .is_some()
    }
}

/// One backend, fully resolved: its type, where it sits in the config, the common settings and
/// its own settings.
#[derive(Clone)]
pub struct BackendSpec {
    /// The canonical type name.
    pub type_name: String,
    /// Where it came from in the config, such as `storage.database.fallback[0]`.
    pub path: String,
    /// Fields every backend has.
    pub common: CommonSettings,
    /// Fields of its type, parsed by its factory.
    pub config: Arc<dyn BackendConfig>,
}

impl fmt::Debug for BackendSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendSpec")
            .field("type_name", &self.type_name)
            .field("path", &self.path)
            .field("common", &self.common)
            .field("config", &self.config)
            .finish()
    }
}

impl BackendSpec {
    /// A spec for settings built in code, with default common settings. The type name comes
    /// from the settings, so it cannot disagree with them.
    pub fn new(config: impl BackendConfig) -> Self {
        Self::from_arc(Arc::new(config))
    }

    /// As [`BackendSpec::new`], from shared settings.
    pub fn from_arc(config: Arc<dyn BackendConfig>) -> Self {
        BackendSpec {
            type_name: config.type_name().to_string(),
            path: "storage".to_string(),
            common: CommonSettings::default(),
            config,
        }
    }

    /// The same spec under another namespace.
    pub fn with_key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.common.key_prefix = prefix.into();
        self
    }

    /// The backend's own settings as `T`, or a configuration error naming both types.
    pub fn settings<T: BackendConfig>(&self) -> Result<&T> {
        // `BackendConfig: Any`, so the settings upcast to `dyn Any` and downcast from there.
        let settings: &dyn Any = &*self.config;
        settings.downcast_ref::<T>().ok_or_else(|| {
            Error::config(format!(
                "{}: the settings are for {:?}, not for this backend ({})",
                self.path,
                self.config.type_name(),
                std::any::type_name::<T>()
            ))
        })
    }
}

impl fmt::Display for BackendSpec {
    /// `type (description)`, never with a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.type_name)?;
        let detail = self.config.describe();
        if !detail.is_empty() {
            write!(f, " ({detail})")?;
        }
        Ok(())
    }
}

/// The settings of a backend that takes no fields of its own beyond the common ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSettings {
    type_name: String,
}

impl NoSettings {
    /// Settings for `type_name`.
    pub fn new(type_name: impl Into<String>) -> Self {
        NoSettings {
            type_name: type_name.into(),
        }
    }
}

impl BackendConfig for NoSettings {
    fn type_name(&self) -> &str {
        &self.type_name
    }
    fn describe(&self) -> String {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(scheme: &str, endpoints: &[&str], scope: &str) -> ServerIdentity {
        ServerIdentity {
            scheme: scheme.into(),
            endpoints: endpoints.iter().map(|s| s.to_string()).collect(),
            scope: scope.into(),
            prefixes_nest: true,
        }
    }

    #[test]
    fn overlap_needs_scheme_scope_and_a_shared_endpoint() {
        let a = id("x", &["127.0.0.1:1", "[::1]:1"], "0");
        assert!(a.overlaps(&id("x", &["[::1]:1"], "0")));
        assert!(!a.overlaps(&id("x", &["[::1]:1"], "1")));
        assert!(!a.overlaps(&id("y", &["[::1]:1"], "0")));
        assert!(!a.overlaps(&id("x", &["127.0.0.1:2"], "0")));
    }

    #[test]
    fn settings_downcast_names_both_sides() {
        let spec = BackendSpec::new(NoSettings::new("t"));
        assert_eq!(spec.type_name, "t");
        assert!(spec.settings::<NoSettings>().is_ok());
        #[derive(Debug)]
        struct Other;
        impl BackendConfig for Other {
            fn type_name(&self) -> &str {
                "other"
            }
            fn describe(&self) -> String {
                String::new()
            }
        }
        let e = spec.settings::<Other>().unwrap_err().to_string();
        assert!(e.contains("\"t\""), "{e}");
    }
}
