//! Certificates made for one run: a CA, a server certificate it signs for `localhost` and
//! `127.0.0.1`, and a second, unrelated CA (for the "wrong CA" cases).

use crate::{TlsFiles, set_mode, temp_dir};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use std::fs;
use std::io;
use std::path::PathBuf;

/// A run's certificates, as PEM files in a temp dir that is removed on drop.
#[derive(Debug)]
pub struct TestCerts {
    dir: PathBuf,
    /// The server's certificate and key, and the CA that signed them.
    pub server: TlsFiles,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
}

fn ca(name: &str) -> Result<(CertificateParams, KeyPair, String), rcgen::Error> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key)?;
    Ok((params, key, cert.pem()))
}

impl TestCerts {
    /// Makes the certificates.
    pub fn generate() -> io::Result<TestCerts> {
        let err = |e: rcgen::Error| io::Error::other(format!("certificate generation: {e}"));
        let dir = temp_dir("certs")?;
        let (ca_params, ca_key, ca_pem) = ca("storage test CA").map_err(err)?;
        let (_, _, other_pem) = ca("unrelated test CA").map_err(err)?;
        let server_key = KeyPair::generate().map_err(err)?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .map_err(err)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let issuer = Issuer::new(ca_params, ca_key);
        let server_cert = params.signed_by(&server_key, &issuer).map_err(err)?;
        let write = |name: &str, text: &str| -> io::Result<PathBuf> {
            let path = dir.join(name);
            fs::write(&path, text)?;
            // Servers that drop privileges must be able to read them.
            set_mode(&path, 0o644)?;
            Ok(path)
        };
        let server = TlsFiles {
            cert: write("server.crt", &server_cert.pem())?,
            key: write("server.key", &server_key.serialize_pem())?,
            ca: write("ca.crt", &ca_pem)?,
        };
        let other_ca = write("other-ca.crt", &other_pem)?;
        Ok(TestCerts {
            dir,
            server,
            other_ca,
        })
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
