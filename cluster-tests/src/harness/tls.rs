//! Test certificates: a throwaway CA and a server certificate it signs, written as PEM files so a mock
//! provider can serve TLS (`--tls-cert/--tls-key`) and a gateway can trust the CA (a `BackendTLSPolicy`
//! with `caCertificateRefs` to a ConfigMap holding [`TlsFiles::ca_pem`]).

use std::path::PathBuf;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// A CA and a server certificate for some names, on disk.
#[derive(Debug)]
pub struct TlsFiles {
    /// The CA certificate (PEM), to be trusted by clients.
    pub ca_pem: String,
    /// The server certificate chain file (PEM).
    pub cert_path: PathBuf,
    /// The server private key file (PEM).
    pub key_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsFiles {
    /// A fresh CA and a server certificate valid for `names` (DNS names or IP addresses).
    pub fn self_signed(names: &[&str]) -> anyhow::Result<TlsFiles> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "switchyard test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let mut params = CertificateParams::new(names)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "switchyard test server");
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        let dir = tempfile::tempdir().context("temp dir")?;
        let cert_path = dir.path().join("server.pem");
        let key_path = dir.path().join("server.key");
        std::fs::write(&cert_path, cert.pem()).context("writing certificate")?;
        std::fs::write(&key_path, key.serialize_pem()).context("writing key")?;
        Ok(TlsFiles {
            ca_pem: ca.pem(),
            cert_path,
            key_path,
            _dir: dir,
        })
    }
}
