//! Self-signed TLS material for tests.
//!
//! Tests of TLS upstreams need a certificate the server can load from PEM files and the client can trust;
//! this module makes both with `rcgen` (ring) into a directory the test owns.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use rustls_pki_types::CertificateDer;

/// A self-signed certificate and its key, written as PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate file (pass to `--tls-cert`).
    pub cert_path: PathBuf,
    /// PEM private key file (pass to `--tls-key`).
    pub key_path: PathBuf,
    /// The certificate in DER, for a client's root store.
    pub cert_der: CertificateDer<'static>,
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
        })
    }

    /// A rustls client configuration (ring provider) trusting only this certificate, offering ALPN
    /// `alpn` (e.g. `&[b"h2", b"http/1.1"]`).
    pub fn client_config(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert_der.clone()).context("adding root")?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(cfg))
    }
}
