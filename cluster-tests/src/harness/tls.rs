//! TLS material for tests of TLS upstreams: a certificate the server loads from PEM files, and what a client
//! (the gateway, via a `BackendTLSPolicy` CA, or a test's own rustls client) must trust to accept it.
//!
//! Two shapes, both made with `rcgen` (ring): a self-signed leaf (the leaf is its own trust anchor), and a
//! leaf signed by a throwaway test CA (the usual production shape: trust the CA, not the leaf).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// A server certificate and key as PEM files, plus the PEM a client must trust.
#[derive(Debug)]
pub struct TlsFiles {
    /// PEM certificate file (pass to `--tls-cert`).
    pub cert_path: PathBuf,
    /// PEM private key file (pass to `--tls-key`).
    pub key_path: PathBuf,
    /// The server certificate in DER.
    pub cert_der: CertificateDer<'static>,
    /// The trust anchor a client needs (the CA, or the self-signed leaf itself), PEM.
    pub ca_pem: String,
    _dir: Option<tempfile::TempDir>,
}

impl TlsFiles {
    /// Writes a self-signed certificate for `names` (DNS names or IP addresses) into `dir`.
    pub fn self_signed(dir: &Path, names: &[&str]) -> anyhow::Result<TlsFiles> {
        let names: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
        let ck = rcgen::generate_simple_self_signed(names).context("generating certificate")?;
        let cert_path = dir.join("cert.pem");
        let key_path = dir.join("key.pem");
        std::fs::write(&cert_path, ck.cert.pem()).context("writing cert.pem")?;
        std::fs::write(&key_path, ck.signing_key.serialize_pem()).context("writing key.pem")?;
        Ok(TlsFiles {
            cert_path,
            key_path,
            cert_der: ck.cert.der().clone(),
            ca_pem: ck.cert.pem(),
            _dir: None,
        })
    }

    /// A fresh test CA and a server certificate for `names` signed by it, in a temp dir owned by the value.
    pub fn with_test_ca(names: &[&str]) -> anyhow::Result<TlsFiles> {
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
            cert_path,
            key_path,
            cert_der: cert.der().clone(),
            ca_pem: ca.pem(),
            _dir: Some(dir),
        })
    }

    /// A rustls client configuration (ring provider) trusting only [`TlsFiles::ca_pem`], offering ALPN
    /// `alpn` (e.g. `&[b"h2", b"http/1.1"]`).
    pub fn client_config(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
            roots
                .add(cert.context("parsing CA PEM")?)
                .context("adding root")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }
}
