//! The private cluster CA and node certificates (DESIGN §6 transport, §7 `switchyard certs ca|node`).
//!
//! Gossip peers authenticate each other with mutual TLS against one private CA per cluster. A node's
//! identity *is* its certificate: the node id is the certificate's single DNS subject alternative name,
//! which the transport reads back with [`node_id_from_cert`] so the gossip layer can check that a peer's
//! `Hello` claims the id its certificate proves.
//!
//! This module generates development and test material with rcgen (ECDSA P-256): a self-signed CA
//! (`ca.crt`, `ca.key`) and node certificates signed by it (`<id>.crt`, `<id>.key`) carrying both the
//! server and client auth extended key usages, since every node both dials and accepts. Keys are written
//! with mode 0600 and existing files are never overwritten unless asked to.
//!
//! Validity is bounded (issue 18): node certificates default to [`DEFAULT_NODE_VALIDITY`] (one year) and
//! never outlive their CA, CAs to [`DEFAULT_CA_VALIDITY`] (ten years); both start an hour in the past so a
//! peer whose clock runs a little behind accepts a certificate issued just now. A stolen node key is then
//! useful for a bounded time, and rotation (docs/operations.md "Rotating certificates") is routine.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

/// File name of the CA certificate inside a CA directory.
pub const CA_CERT_FILE: &str = "ca.crt";
/// File name of the CA private key inside a CA directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// The cluster name used when none is given.
pub const DEFAULT_CLUSTER: &str = "switchyard";
/// How long a node certificate is valid unless `--validity-days` says otherwise.
pub const DEFAULT_NODE_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// How long a cluster CA is valid unless `--validity-days` says otherwise.
pub const DEFAULT_CA_VALIDITY: Duration = Duration::from_secs(3650 * 86_400);
/// How far in the past validity starts, for peers whose clocks lag.
const BACKDATE: Duration = Duration::from_secs(3600);

/// Errors of certificate generation, loading and identity extraction.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// A node id that cannot be a DNS name (and so cannot be a certificate identity or TLS server name).
    #[error(
        "invalid node id {id:?}: a node id must be a valid DNS name (letters, digits, '-', '.')"
    )]
    InvalidNodeId {
        /// The rejected id.
        id: String,
    },
    /// rcgen refused to build or sign a certificate.
    #[error("cannot generate {what}")]
    Generate {
        /// What was being generated.
        what: String,
        /// The rcgen error.
        source: rcgen::Error,
    },
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file could not be written (or a directory created).
    #[error("cannot write {}", path.display())]
    Write {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The output file exists and overwriting was not requested.
    #[error("{} already exists (pass --force to overwrite)", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// A validity period of zero, or one the certificate format cannot express.
    #[error("invalid validity period: {0}")]
    Validity(String),
    /// A CA certificate or key could not be parsed.
    #[error("{} is not a usable CA {what}: {reason}", path.display())]
    BadCa {
        /// The file.
        path: PathBuf,
        /// "certificate" or "key".
        what: &'static str,
        /// Why.
        reason: String,
    },
}

/// Errors reading a node identity out of a peer certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The certificate is not parseable X.509.
    #[error("peer certificate is not valid X.509: {0}")]
    Parse(String),
    /// The certificate has no DNS subject alternative name.
    #[error("peer certificate has no DNS subject alternative name (no node id)")]
    NoNodeId,
    /// The certificate has several DNS names: the identity would be ambiguous.
    #[error("peer certificate has {0} DNS subject alternative names; a node certificate has exactly one")]
    Ambiguous(usize),
}

/// A PEM certificate and its PEM (PKCS#8) private key.
#[derive(Debug, Clone)]
pub struct CertAndKey {
    /// Certificate, PEM.
    pub cert_pem: String,
    /// Private key, PEM.
    pub key_pem: String,
}

/// Checks that `id` can be a node id: a valid DNS name, as it becomes the certificate's DNS SAN and the
/// TLS server name peers dial.
pub fn validate_node_id(id: &str) -> Result<(), CertError> {
    let invalid = || CertError::InvalidNodeId { id: id.to_string() };
    if id.is_empty() || id.parse::<IpAddr>().is_ok() {
        return Err(invalid());
    }
    rustls_pki_types::DnsName::try_from(id).map_err(|_| invalid())?;
    Ok(())
}

fn generate_err(what: impl Into<String>) -> impl FnOnce(rcgen::Error) -> CertError {
    let what = what.into();
    move |source| CertError::Generate { what, source }
}

/// Generates a self-signed cluster CA (ECDSA P-256, CA basic constraints with path length 0, key usages
/// certificate signing and CRL signing). The cluster name goes into the subject.
pub fn generate_ca(cluster: &str) -> Result<CertAndKey, CertError> {
    generate_ca_valid_for(cluster, DEFAULT_CA_VALIDITY)
}

/// [`generate_ca`] valid for `validity` from now (backdated by an hour).
pub fn generate_ca_valid_for(cluster: &str, validity: Duration) -> Result<CertAndKey, CertError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(generate_err("CA key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Switchyard");
    dn.push(
        DnType::CommonName,
        format!("Switchyard cluster CA: {cluster}"),
    );
    params.distinguished_name = dn;
    set_validity(&mut params, validity, None)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params
        .self_signed(&key)
        .map_err(generate_err("CA certificate"))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Generates a node certificate signed by the CA: the node id is the single DNS SAN (and the subject
/// common name), `ips` are added as IP SANs, extended key usages are server and client auth.
///
/// `ca_source` names where the CA came from, for error messages.
pub fn generate_node(
    ca: &CertAndKey,
    ca_source: &Path,
    node_id: &str,
    ips: &[IpAddr],
) -> Result<CertAndKey, CertError> {
    generate_node_valid_for(ca, ca_source, node_id, ips, DEFAULT_NODE_VALIDITY)
}

/// [`generate_node`] valid for `validity` from now (backdated by an hour), and never past the CA's own
/// expiry: a node certificate cannot be verified once its CA has expired anyway.
pub fn generate_node_valid_for(
    ca: &CertAndKey,
    ca_source: &Path,
    node_id: &str,
    ips: &[IpAddr],
    validity: Duration,
) -> Result<CertAndKey, CertError> {
    validate_node_id(node_id)?;
    let ca_not_after = ca_expiry(&ca.cert_pem).map_err(|reason| CertError::BadCa {
        path: ca_source.join(CA_CERT_FILE),
        what: "certificate",
        reason,
    })?;
    let ca_key = KeyPair::from_pem(&ca.key_pem).map_err(|e| CertError::BadCa {
        path: ca_source.join(CA_KEY_FILE),
        what: "key",
        reason: e.to_string(),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert_pem, ca_key).map_err(|e| CertError::BadCa {
        path: ca_source.join(CA_CERT_FILE),
        what: "certificate",
        reason: e.to_string(),
    })?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(generate_err(format!("key for node {node_id}")))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "Switchyard");
    dn.push(DnType::CommonName, node_id);
    params.distinguished_name = dn;
    let dns = node_id
        .to_string()
        .try_into()
        .map_err(generate_err(format!("DNS name {node_id}")))?;
    params.subject_alt_names = std::iter::once(SanType::DnsName(dns))
        .chain(ips.iter().map(|ip| SanType::IpAddress(*ip)))
        .collect();
    set_validity(&mut params, validity, Some(ca_not_after))?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(generate_err(format!("certificate for node {node_id}")))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Sets `not_before` an hour back and `not_after` `validity` from now, capped at `cap` (Unix seconds).
fn set_validity(
    params: &mut CertificateParams,
    validity: Duration,
    cap: Option<i64>,
) -> Result<(), CertError> {
    if validity.is_zero() {
        return Err(CertError::Validity("it must be at least one day".into()));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| CertError::Validity("the system clock is before 1970".into()))?;
    let mut not_after = now
        .checked_add(validity)
        .ok_or_else(|| CertError::Validity(format!("{validity:?} is too long")))?;
    if let Some(cap) = cap.and_then(|c| u64::try_from(c).ok()) {
        not_after = not_after.min(Duration::from_secs(cap));
    }
    // X.509 GeneralizedTime ends at 9999; rcgen would otherwise write an unreadable date.
    const YEAR_9999: Duration = Duration::from_secs(253_402_300_799);
    if not_after > YEAR_9999 {
        return Err(CertError::Validity(format!("{validity:?} is too long")));
    }
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now.saturating_sub(BACKDATE);
    params.not_after = epoch + not_after;
    Ok(())
}

/// The CA certificate's `notAfter`, in Unix seconds.
fn ca_expiry(ca_pem: &str) -> Result<i64, String> {
    use rustls_pki_types::pem::PemObject;
    let der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| e.to_string())?;
    let (_, parsed) =
        x509_parser::parse_x509_certificate(der.as_ref()).map_err(|e| e.to_string())?;
    Ok(parsed.validity().not_after.timestamp())
}

/// Reads the node id out of a certificate: its single DNS subject alternative name.
///
/// This only parses; it does not verify the chain. The transport calls it on certificates rustls has
/// already verified against the cluster CA.
pub fn node_id_from_cert(cert: &CertificateDer<'_>) -> Result<String, IdentityError> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| IdentityError::Parse(e.to_string()))?;
    let mut names = san
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        });
    match (names.next(), names.count()) {
        (None, _) => Err(IdentityError::NoNodeId),
        (Some(name), 0) => Ok(name),
        (Some(_), more) => Err(IdentityError::Ambiguous(more + 1)),
    }
}

/// Which of a node's three identity files a problem is in, so an error can name the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityFile {
    /// `--cluster-ca`: the CA bundle.
    Ca,
    /// `--cluster-cert`: the node certificate (chain).
    Cert,
    /// `--cluster-key`: the node's private key.
    Key,
}

/// Why a node's own identity files cannot be used (at start or on reload).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct IdentityCheckError {
    /// The file at fault.
    pub file: IdentityFile,
    /// Why, without key material.
    pub reason: String,
}

/// What a node presents, for the log and the expiry gauge. Never contains key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// The certificate's subject (distinguished name as text).
    pub subject: String,
    /// Its `notAfter`, in Unix seconds.
    pub not_after: i64,
    /// How many CA certificates the bundle holds.
    pub cas: usize,
}

/// Checks a node's own CA bundle, certificate and key before they are used: the bundle holds at least
/// one CA certificate, the certificate chains to one of them at `now` (so it is neither expired nor
/// not yet valid) for both server and client use, its node id is `node_id`, and the key is the
/// certificate's. Pure apart from the signature checks, so the rule is table-tested with `now` given.
pub fn check_node_identity(
    node_id: &str,
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
    now: rustls_pki_types::UnixTime,
) -> Result<CertSummary, IdentityCheckError> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{PrivateKeyDer, ServerName};
    let fail = |file, reason: String| IdentityCheckError { file, reason };
    let ca_err = |r: String| fail(IdentityFile::Ca, r);
    let cert_err = |r: String| fail(IdentityFile::Cert, r);

    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let ca = ca.map_err(|e| ca_err(format!("not a PEM certificate bundle: {e}")))?;
        roots
            .add(ca)
            .map_err(|e| ca_err(format!("not a usable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(ca_err("no PEM certificate found".into()));
    }
    let cas = roots.len();
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(format!("not a PEM certificate: {e}")))?;
    let (leaf, intermediates) = chain
        .split_first()
        .ok_or_else(|| cert_err("no PEM certificate found".into()))?;
    let cert_id = node_id_from_cert(leaf).map_err(|e| cert_err(e.to_string()))?;
    if cert_id != node_id {
        return Err(cert_err(format!(
            "the certificate is for node {cert_id:?}, but this node's id is {node_id:?}"
        )));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let roots = std::sync::Arc::new(roots);
    let server = rustls::client::WebPkiServerVerifier::builder_with_provider(
        roots.clone(),
        provider.clone(),
    )
    .build()
    .map_err(|e| ca_err(e.to_string()))?;
    let name = ServerName::try_from(cert_id.clone())
        .map_err(|e| cert_err(format!("node id is not a DNS name: {e}")))?;
    server
        .verify_server_cert(leaf, intermediates, &name, &[], now)
        .map_err(|e| cert_err(format!("does not verify against the CA bundle: {e}")))?;
    let client =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| ca_err(e.to_string()))?;
    client
        .verify_client_cert(leaf, intermediates, now)
        .map_err(|e| cert_err(format!("not usable as a client certificate: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| fail(IdentityFile::Key, format!("not a PEM private key: {e}")))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| fail(IdentityFile::Key, format!("not a usable private key: {e}")))?;
    // A key type whose public half the provider cannot derive cannot be compared; rustls itself lets
    // those through, and so does this check.
    match rustls::sign::CertifiedKey::new(chain.clone(), signing).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(fail(
                IdentityFile::Key,
                format!("does not belong to the certificate: {e}"),
            ))
        }
    }
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| cert_err(format!("not valid X.509: {e}")))?;
    Ok(CertSummary {
        subject: parsed.subject().to_string(),
        not_after: parsed.validity().not_after.timestamp(),
        cas,
    })
}

/// Paths of a written certificate and key.
#[derive(Debug, Clone)]
pub struct WrittenFiles {
    /// The certificate file.
    pub cert: PathBuf,
    /// The key file (mode 0600).
    pub key: PathBuf,
}

/// `switchyard certs ca`: creates `out/ca.crt` and `out/ca.key` (0600).
pub fn write_ca(out: &Path, cluster: &str, force: bool) -> Result<WrittenFiles, CertError> {
    write_ca_valid_for(out, cluster, force, DEFAULT_CA_VALIDITY)
}

/// [`write_ca`] with a validity period (`--validity-days`).
pub fn write_ca_valid_for(
    out: &Path,
    cluster: &str,
    force: bool,
    validity: Duration,
) -> Result<WrittenFiles, CertError> {
    let files = WrittenFiles {
        cert: out.join(CA_CERT_FILE),
        key: out.join(CA_KEY_FILE),
    };
    check_absent(&files, force)?;
    let ca = generate_ca_valid_for(cluster, validity)?;
    write_pair(out, &files, &ca, force)?;
    Ok(files)
}

/// Reads `ca.crt` and `ca.key` from a CA directory.
pub fn read_ca(ca_dir: &Path) -> Result<CertAndKey, CertError> {
    let read = |name: &str| {
        let path = ca_dir.join(name);
        fs::read_to_string(&path).map_err(|source| CertError::Read { path, source })
    };
    Ok(CertAndKey {
        cert_pem: read(CA_CERT_FILE)?,
        key_pem: read(CA_KEY_FILE)?,
    })
}

/// `switchyard certs node`: creates `out/<node_id>.crt` and `out/<node_id>.key` (0600), signed by the CA in
/// `ca_dir`.
pub fn write_node(
    ca_dir: &Path,
    node_id: &str,
    out: &Path,
    ips: &[IpAddr],
    force: bool,
) -> Result<WrittenFiles, CertError> {
    write_node_valid_for(ca_dir, node_id, out, ips, force, DEFAULT_NODE_VALIDITY)
}

/// [`write_node`] with a validity period (`--validity-days`).
pub fn write_node_valid_for(
    ca_dir: &Path,
    node_id: &str,
    out: &Path,
    ips: &[IpAddr],
    force: bool,
    validity: Duration,
) -> Result<WrittenFiles, CertError> {
    validate_node_id(node_id)?;
    let files = WrittenFiles {
        cert: out.join(format!("{node_id}.crt")),
        key: out.join(format!("{node_id}.key")),
    };
    check_absent(&files, force)?;
    let ca = read_ca(ca_dir)?;
    let node = generate_node_valid_for(&ca, ca_dir, node_id, ips, validity)?;
    write_pair(out, &files, &node, force)?;
    Ok(files)
}

fn check_absent(files: &WrittenFiles, force: bool) -> Result<(), CertError> {
    if force {
        return Ok(());
    }
    for path in [&files.cert, &files.key] {
        if path.exists() {
            return Err(CertError::Exists { path: path.clone() });
        }
    }
    Ok(())
}

fn write_pair(
    dir: &Path,
    files: &WrittenFiles,
    pair: &CertAndKey,
    force: bool,
) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    write_file(&files.key, &pair.key_pem, 0o600, force)?;
    write_file(&files.cert, &pair.cert_pem, 0o644, force)?;
    Ok(())
}

fn write_file(path: &Path, contents: &str, mode: u32, force: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut opts = fs::OpenOptions::new();
    opts.write(true);
    if force {
        opts.create(true).truncate(true);
    } else {
        opts.create_new(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        opts.mode(mode);
        let mut f = opts.open(path).map_err(err)?;
        // An overwritten file keeps its old mode: set it explicitly.
        f.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(err)?;
        f.write_all(contents.as_bytes()).map_err(err)?;
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        let mut f = opts.open(path).map_err(err)?;
        f.write_all(contents.as_bytes()).map_err(err)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls_pki_types::pem::PemObject;

    fn der(pem: &str) -> CertificateDer<'static> {
        CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
    }

    #[test]
    fn node_cert_carries_its_id_and_chains_to_the_ca() {
        let ca = generate_ca("test").unwrap();
        let node = generate_node(
            &ca,
            Path::new("mem"),
            "node-a",
            &["127.0.0.1".parse().unwrap()],
        )
        .unwrap();
        let node_der = der(&node.cert_pem);
        assert_eq!(node_id_from_cert(&node_der).unwrap(), "node-a");

        // Chain check with rustls' own verifier (the transport uses the same one).
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(&ca.cert_pem)).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        let now = rustls_pki_types::UnixTime::now();
        let name = rustls_pki_types::ServerName::try_from("node-a").unwrap();
        verifier
            .verify_server_cert(&node_der, &[], &name, &[], now)
            .unwrap();
        let wrong = rustls_pki_types::ServerName::try_from("node-b").unwrap();
        assert!(verifier
            .verify_server_cert(&node_der, &[], &wrong, &[], now)
            .is_err());

        // Another CA does not vouch for it.
        let other = generate_ca("other").unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(der(&other.cert_pem)).unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .unwrap();
        assert!(verifier
            .verify_server_cert(&node_der, &[], &name, &[], now)
            .is_err());
    }

    fn validity_of(pem: &str) -> (i64, i64) {
        let der = der(pem);
        let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        (
            c.validity().not_before.timestamp(),
            c.validity().not_after.timestamp(),
        )
    }

    #[test]
    fn validity_is_bounded() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let day = 86_400;
        let near = |got: i64, want: i64| (got - want).abs() < 120;
        let ca = generate_ca("v").unwrap();
        let (nb, na) = validity_of(&ca.cert_pem);
        assert!(
            near(nb, now - 3600) && near(na, now + 3650 * day),
            "CA {nb} {na}"
        );
        // (name, validity days, expected days from now)
        let rows = [
            ("default: one year", None, 365),
            ("30 days", Some(30), 30),
            ("past the CA: capped", Some(5000), 3650),
        ];
        for (name, days, want) in rows {
            let node = match days {
                None => generate_node(&ca, Path::new("mem"), "n1", &[]),
                Some(d) => generate_node_valid_for(
                    &ca,
                    Path::new("mem"),
                    "n1",
                    &[],
                    Duration::from_secs(d * 86_400),
                ),
            }
            .unwrap();
            let (nb, na) = validity_of(&node.cert_pem);
            assert!(near(nb, now - 3600), "{name}: not before {nb}");
            assert!(
                near(na, now + want * day),
                "{name}: not after {na}, want {want} days"
            );
        }
        assert!(generate_node_valid_for(&ca, Path::new("mem"), "n1", &[], Duration::ZERO).is_err());
        assert!(generate_ca_valid_for("v", Duration::from_secs(9000 * 365 * 86_400)).is_err());
    }

    #[test]
    fn own_identity_is_checked_with_the_time_given() {
        use rustls_pki_types::UnixTime;
        let ca = generate_ca("own").unwrap();
        let node = generate_node(&ca, Path::new("mem"), "n1", &[]).unwrap();
        let other = generate_node(&ca, Path::new("mem"), "n2", &[]).unwrap();
        let foreign = generate_ca("foreign").unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let at = |secs: u64| UnixTime::since_unix_epoch(Duration::from_secs(secs));
        let bundle = format!("{}{}", foreign.cert_pem, ca.cert_pem);
        // (name, ca, cert, key, at, Err(file at fault, words in the reason) or Ok)
        type Want = Result<(), (IdentityFile, &'static str)>;
        let rows: [(&str, &str, &str, &str, UnixTime, Want); 9] = [
            (
                "good",
                &ca.cert_pem,
                &node.cert_pem,
                &node.key_pem,
                at(now),
                Ok(()),
            ),
            (
                "good, CA in a bundle",
                &bundle,
                &node.cert_pem,
                &node.key_pem,
                at(now),
                Ok(()),
            ),
            (
                "expired",
                &ca.cert_pem,
                &node.cert_pem,
                &node.key_pem,
                at(now + 400 * 86_400),
                Err((IdentityFile::Cert, "expired")),
            ),
            (
                "not yet valid",
                &ca.cert_pem,
                &node.cert_pem,
                &node.key_pem,
                at(now - 2 * 86_400),
                Err((IdentityFile::Cert, "not valid yet")),
            ),
            (
                "another CA",
                &foreign.cert_pem,
                &node.cert_pem,
                &node.key_pem,
                at(now),
                Err((IdentityFile::Cert, "does not verify")),
            ),
            (
                "empty CA file",
                "",
                &node.cert_pem,
                &node.key_pem,
                at(now),
                Err((IdentityFile::Ca, "no PEM certificate")),
            ),
            (
                "another node's certificate",
                &ca.cert_pem,
                &other.cert_pem,
                &other.key_pem,
                at(now),
                Err((IdentityFile::Cert, "\"n2\"")),
            ),
            (
                "another node's key",
                &ca.cert_pem,
                &node.cert_pem,
                &other.key_pem,
                at(now),
                Err((IdentityFile::Key, "does not belong")),
            ),
            (
                "the key file holds the certificate",
                &ca.cert_pem,
                &node.cert_pem,
                &node.cert_pem,
                at(now),
                Err((IdentityFile::Key, "private key")),
            ),
        ];
        for (name, ca_pem, cert, key, when, want) in rows {
            let got = check_node_identity("n1", ca_pem, cert, key, when);
            match (got, want) {
                (Ok(summary), Ok(())) => {
                    assert!(summary.subject.contains("CN=n1"), "{name}: {summary:?}");
                    assert!(summary.not_after > now as i64, "{name}: {summary:?}");
                }
                (Err(e), Err((file, words))) => {
                    assert_eq!(e.file, file, "{name}: {e}");
                    assert!(e.reason.contains(words), "{name}: {e}");
                    assert!(!e.reason.contains("BEGIN"), "{name}: leaks PEM: {e}");
                }
                (got, want) => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn node_ids_must_be_dns_names() {
        assert!(validate_node_id("node-1").is_ok());
        assert!(validate_node_id("n1.dc1.example").is_ok());
        for bad in ["", "has space", "127.0.0.1", "a/b"] {
            assert!(validate_node_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn files_are_written_with_modes_and_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write_ca(dir.path(), "c1", false).unwrap();
        let node = write_node(dir.path(), "n1", &dir.path().join("nodes"), &[], false).unwrap();
        assert!(node.cert.ends_with("nodes/n1.crt"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for key in [&ca.key, &node.key] {
                let mode = fs::metadata(key).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", key.display());
            }
        }
        let err = write_ca(dir.path(), "c1", false).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
        write_ca(dir.path(), "c1", true).unwrap();

        let missing = write_node(&dir.path().join("nope"), "n2", dir.path(), &[], false)
            .unwrap_err()
            .to_string();
        assert!(missing.contains("nope/ca.crt"), "{missing}");
    }
}
