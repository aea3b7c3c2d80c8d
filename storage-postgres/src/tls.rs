//! TLS for PostgreSQL: which mode the block asks for (`ssl`, `options.ssl` and the connection
//! string's `sslmode`/`sslrootcert`, which must agree), and the rustls setup for it: `require`
//! encrypts without verifying, `verify-full` checks the chain and the host name against the
//! system roots or a given CA.

use crate::conninfo::TlsParams;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use storage_core::config::{BlockInput, SslField};
use storage_core::{Error, Result};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How TLS is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server offers it, unverified.
    Prefer,
    /// TLS, without verifying the certificate.
    Require,
    /// TLS, verifying the chain and the host name.
    VerifyFull,
}

impl SslMode {
    /// Parses libpq's names; `allow` is read as `prefer`. `verify-ca` is refused: this backend
    /// always checks the host name when it verifies.
    pub fn parse(s: &str) -> Option<SslMode> {
        match s {
            "disable" => Some(SslMode::Disable),
            "allow" | "prefer" => Some(SslMode::Prefer),
            "require" => Some(SslMode::Require),
            "verify-full" => Some(SslMode::VerifyFull),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslSettings {
    /// The mode.
    pub mode: SslMode,
    /// Trusted roots (PEM), instead of the system's.
    pub ca: Option<PathBuf>,
}

impl SslSettings {
    /// No TLS.
    pub fn disabled() -> Self {
        SslSettings {
            mode: SslMode::Disable,
            ca: None,
        }
    }
}

/// `ssl`, `options.ssl` and the connection string's parameters: every one given must agree.
pub(crate) fn settle(
    block: &BlockInput<'_>,
    ssl: Option<&SslField>,
    options_ssl: Option<&SslField>,
    url_field: &str,
    url_tls: TlsParams,
) -> Result<SslSettings> {
    let mut sources: Vec<(String, SslSettings)> = Vec::new();
    let field = |v: &SslField, name: &str| -> Result<SslSettings> {
        Ok(match v {
            SslField::Flag(false) => SslSettings::disabled(),
            SslField::Flag(true) => SslSettings {
                mode: SslMode::VerifyFull,
                ca: None,
            },
            SslField::Detailed(d) => SslSettings {
                mode: match &d.mode {
                    None => SslMode::VerifyFull,
                    Some(m) => SslMode::parse(m).ok_or_else(|| {
                        block.error(
                            &format!("{name}.mode"),
                            format!("unknown mode {m:?}; expected disable, prefer, require or verify-full"),
                        )
                    })?,
                },
                ca: d.ca.as_ref().map(|p| block.resolve_path(p)),
            },
        })
    };
    if let Some(v) = ssl {
        sources.push(("ssl".into(), field(v, "ssl")?));
    }
    if let Some(v) = options_ssl {
        sources.push(("options.ssl".into(), field(v, "options.ssl")?));
    }
    let url_mode = match &url_tls.sslmode {
        None => None,
        Some(m) => Some(SslMode::parse(m).ok_or_else(|| {
            block.error(
                url_field,
                format!("unknown sslmode {m:?}; expected disable, prefer, require or verify-full"),
            )
        })?),
    };
    let url_ca = url_tls.sslrootcert.as_ref().map(|p| block.resolve_path(p));
    match (url_mode, url_ca) {
        (None, None) => {}
        // A root certificate alone is taken as verify-full, so that a CA given is never unused.
        (None, Some(ca)) => sources.push((
            format!("sslrootcert in `{url_field}`"),
            SslSettings {
                mode: SslMode::VerifyFull,
                ca: Some(ca),
            },
        )),
        (Some(mode), ca) => sources.push((
            format!("sslmode in `{url_field}`"),
            SslSettings { mode, ca },
        )),
    }
    if let [(first_name, first), rest @ ..] = sources.as_slice() {
        for (name, other) in rest {
            if other != first {
                return Err(block.error(
                    "",
                    format!(
                        "`{first_name}` ({}) and `{name}` ({}) disagree",
                        first.mode.name(),
                        other.mode.name()
                    ),
                ));
            }
        }
    }
    let ssl = sources
        .into_iter()
        .next()
        .map_or_else(SslSettings::disabled, |(_, s)| s);
    if ssl.ca.is_some() && ssl.mode != SslMode::VerifyFull {
        return Err(block.error(
            "",
            format!(
                "a CA file is given but the TLS mode is {}; a CA is only used by verify-full",
                ssl.mode.name()
            ),
        ));
    }
    Ok(ssl)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Trusted roots: the PEM file `ca`, or the system's.
pub fn roots(ca: Option<&Path>) -> Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    match ca {
        Some(path) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect())
                .map_err(|e| {
                    Error::config(format!("cannot read CA file {}: {e}", path.display()))
                })?;
            if certs.is_empty() {
                return Err(Error::config(format!(
                    "CA file {} holds no certificate",
                    path.display()
                )));
            }
            for cert in certs {
                store
                    .add(cert)
                    .map_err(|e| Error::config(format!("CA file {}: {e}", path.display())))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system store may hold certificates rustls cannot use; skip those.
                let _ = store.add(cert);
            }
            if store.is_empty() {
                return Err(Error::config(
                    "no system root certificates found; give a CA file",
                ));
            }
        }
    }
    Ok(store)
}

/// Accepts any server certificate while still checking the handshake signatures: the
/// `require` mode, which encrypts without authenticating the server.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The rustls client configuration for a TLS mode.
pub fn client_config(ssl: &SslSettings) -> Result<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::config(format!("TLS setup: {e}")))?;
    Ok(match ssl.mode {
        SslMode::VerifyFull => builder
            .with_root_certificates(roots(ssl.ca.as_deref())?)
            .with_no_client_auth(),
        SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider())))
            .with_no_client_auth(),
    })
}

/// The tokio-postgres connector for a TLS mode.
pub fn connector(ssl: &SslSettings) -> Result<MakeRustlsConnect> {
    Ok(MakeRustlsConnect::new(client_config(ssl)?))
}

#[cfg(test)]
mod tests {
    use super::{EncryptOnly, SslMode, provider};
    use rustls::client::danger::ServerCertVerifier;

    #[test]
    fn libpq_mode_names() {
        for (name, mode) in [
            ("disable", Some(SslMode::Disable)),
            ("allow", Some(SslMode::Prefer)),
            ("prefer", Some(SslMode::Prefer)),
            ("require", Some(SslMode::Require)),
            ("verify-full", Some(SslMode::VerifyFull)),
            ("verify-ca", None),
            ("", None),
        ] {
            assert_eq!(SslMode::parse(name), mode, "{name:?}");
        }
    }

    /// Encrypting without verifying still offers the provider's signature schemes: a handshake
    /// needs at least one.
    #[test]
    fn encrypt_only_offers_the_providers_schemes() {
        let provider = provider();
        let schemes = EncryptOnly(provider.clone()).supported_verify_schemes();
        assert!(!schemes.is_empty());
        assert_eq!(
            schemes,
            provider
                .signature_verification_algorithms
                .supported_schemes()
        );
    }
}
