//! This node's own cluster identity files (`--cluster-ca`, `--cluster-cert`, `--cluster-key`), read at
//! start and re-read on every reload (issue 18), the way Envoy takes a new SDS secret or a pod sees a
//! Kubernetes Secret mounted in place change (cert-manager renewing a node certificate).
//!
//! It exists so that start and reload apply one rule: the three files are read together and checked
//! ([`certs::check_node_identity`]) before anything uses them, a bad set is refused naming the file and
//! why, and the certificate in use is logged by subject and expiry (never key material) and exported as
//! `switchyard_cluster_cert_expiry_seconds` (its `notAfter`, Unix seconds) for an alert well before it.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rustls_pki_types::UnixTime;

use super::certs::{self, CertSummary, IdentityFile};
use super::transport::{TlsSet, Transport};

/// Why the identity files cannot be used; names the file.
#[derive(Debug, thiserror::Error)]
pub enum IdentityFilesError {
    /// A file did not read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file read but is not usable.
    #[error("cannot use {}: {reason}", path.display())]
    Invalid {
        /// The file at fault.
        path: PathBuf,
        /// Why (never key material).
        reason: String,
    },
}

/// The three PEM files as read.
#[derive(Clone, PartialEq, Eq)]
pub struct IdentityPem {
    /// CA bundle.
    pub ca: String,
    /// Node certificate (chain).
    pub cert: String,
    /// Node key.
    pub key: String,
}

impl std::fmt::Debug for IdentityPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityPem").finish_non_exhaustive()
    }
}

/// Where the node's identity files are.
#[derive(Debug, Clone)]
pub struct IdentityFiles {
    /// `--cluster-ca`.
    pub ca: PathBuf,
    /// `--cluster-cert`.
    pub cert: PathBuf,
    /// `--cluster-key`.
    pub key: PathBuf,
}

impl IdentityFiles {
    fn path(&self, file: IdentityFile) -> &Path {
        match file {
            IdentityFile::Ca => &self.ca,
            IdentityFile::Cert => &self.cert,
            IdentityFile::Key => &self.key,
        }
    }

    /// Reads the three files.
    pub fn read(&self) -> Result<IdentityPem, IdentityFilesError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|source| IdentityFilesError::Read {
                path: p.to_path_buf(),
                source,
            })
        };
        Ok(IdentityPem {
            ca: read(&self.ca)?,
            cert: read(&self.cert)?,
            key: read(&self.key)?,
        })
    }

    /// Reads and checks the files for `node_id` at `now` (start-up: nothing is in use yet).
    pub fn load(
        &self,
        node_id: &str,
        now: UnixTime,
    ) -> Result<(IdentityPem, CertSummary), IdentityFilesError> {
        let pem = self.read()?;
        let summary = certs::check_node_identity(node_id, &pem.ca, &pem.cert, &pem.key, now)
            .map_err(|e| self.invalid(e))?;
        Ok((pem, summary))
    }

    fn invalid(&self, e: certs::IdentityCheckError) -> IdentityFilesError {
        IdentityFilesError::Invalid {
            path: self.path(e.file).to_path_buf(),
            reason: e.reason,
        }
    }
}

/// Logs the certificate in use and sets the expiry gauge.
pub fn announce(summary: &CertSummary, what: &str) {
    metrics::gauge!("switchyard_cluster_cert_expiry_seconds").set(summary.not_after as f64);
    tracing::info!(subject = %summary.subject, not_after = summary.not_after, cas = summary.cas, "{what}");
}

/// Re-reads the identity files on reload and swaps them into the transport when they changed.
pub struct IdentityReload {
    files: IdentityFiles,
    transport: Transport,
    /// What is in use, to skip a reload that changed nothing (no new TLS configs, no log line).
    current: Mutex<IdentityPem>,
}

/// A checked set, ready to go into the transport.
pub struct PreparedIdentity {
    set: TlsSet,
    summary: CertSummary,
    pem: IdentityPem,
}

impl IdentityReload {
    /// `current` is what the transport was bound with.
    pub fn new(files: IdentityFiles, transport: Transport, current: IdentityPem) -> Self {
        IdentityReload {
            files,
            transport,
            current: Mutex::new(current),
        }
    }

    /// Reads and checks the files; `None` when they are what is in use already.
    pub fn prepare(&self, now: UnixTime) -> Result<Option<PreparedIdentity>, IdentityFilesError> {
        let pem = self.files.read()?;
        if *self.current.lock().unwrap_or_else(|e| e.into_inner()) == pem {
            return Ok(None);
        }
        let (set, summary) = self
            .transport
            .prepare_tls(&pem.ca, &pem.cert, &pem.key, now)
            .map_err(|e| self.files.invalid(e))?;
        Ok(Some(PreparedIdentity { set, summary, pem }))
    }

    /// Puts a prepared set in use for new handshakes.
    pub fn install(&self, prepared: PreparedIdentity, now: UnixTime) {
        let closed = self.transport.install_tls(prepared.set, now);
        *self.current.lock().unwrap_or_else(|e| e.into_inner()) = prepared.pem;
        announce(&prepared.summary, "cluster certificates reloaded");
        if !closed.is_empty() {
            tracing::warn!(peers = ?closed, "connections to peers the new CA bundle does not accept were closed");
        }
    }
}
