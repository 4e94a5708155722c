//! Pass 2 for Envoy Gateway `Backend`s: endpoints, and whether and how to speak TLS to them (port 443, the
//! Backend's `tls` block, a BackendTLSPolicy) with which CAs (ConfigMap/Secret `ca.crt`, or the system
//! roots).

use std::net::IpAddr;

use super::super::error::{ConfigError, ResourceId};
use super::super::model::{Backend, BackendAuth, Endpoint, UpstreamTls};
use super::super::resources::{
    BackendSpec, BackendTlsPolicySpec, LocalObjectRef, PolicyTargetRef, GROUP_ENVOY_GATEWAY,
};
use super::security::secret_value;
use super::{find, port_u16, Loaded, Store, Warnings};

/// Key of the CA bundle in the ConfigMap/Secret a `caCertificateRefs` entry names (Gateway API).
const CA_CERT_KEY: &str = "ca.crt";

/// A Backend resource → [`Backend`] (endpoints and TLS; `auth` decided by the caller).
pub(super) fn resolve_backend_resource(
    store: &Store,
    backend: &Loaded<BackendSpec>,
    auth: Option<BackendAuth>,
    warnings: &mut Warnings,
) -> Result<Backend, ConfigError> {
    let id = &backend.id;
    let spec = &backend.spec;
    if let Some(t) = spec.backend_type.as_deref() {
        if t != "Endpoints" {
            return Err(id.error(
                "spec.type",
                format!("{t} backends are not supported (expected Endpoints)"),
            ));
        }
    }
    if spec.endpoints.is_empty() {
        return Err(id.error("spec.endpoints", "at least one endpoint is required"));
    }
    let mut endpoints = Vec::with_capacity(spec.endpoints.len());
    for (k, e) in spec.endpoints.iter().enumerate() {
        let field = format!("spec.endpoints[{k}]");
        let set = [e.fqdn.is_some(), e.ip.is_some(), e.unix.is_some()]
            .iter()
            .filter(|x| **x)
            .count();
        if set != 1 {
            return Err(id.error(&field, "exactly one of fqdn, ip or unix must be set"));
        }
        if let Some(f) = &e.fqdn {
            let port = port_u16(f.port).ok_or_else(|| {
                id.error(
                    format!("{field}.fqdn.port"),
                    format!("port {} is not in 1..=65535", f.port),
                )
            })?;
            let host = f.hostname.trim();
            if host.is_empty() || host.contains("://") || host.contains('/') || host.contains(':') {
                return Err(id.error(
                    format!("{field}.fqdn.hostname"),
                    format!(
                        "{:?} is not a bare DNS name (no scheme, path or port)",
                        f.hostname
                    ),
                ));
            }
            endpoints.push(Endpoint::Fqdn {
                hostname: host.to_owned(),
                port,
            });
        } else if let Some(ip) = &e.ip {
            let port = port_u16(ip.port).ok_or_else(|| {
                id.error(
                    format!("{field}.ip.port"),
                    format!("port {} is not in 1..=65535", ip.port),
                )
            })?;
            let address: IpAddr = ip.address.trim().parse().map_err(|_| {
                id.error(
                    format!("{field}.ip.address"),
                    format!("{:?} is not an IP address", ip.address),
                )
            })?;
            endpoints.push(Endpoint::Ip { address, port });
        } else {
            return Err(id.error(
                format!("{field}.unix"),
                "unix domain socket endpoints are not supported",
            ));
        }
    }
    if let Some(protocols) = &spec.app_protocols {
        if !protocols.is_empty() {
            warnings.push(id.warning(
                "spec.appProtocols",
                "ignored: Switchyard speaks HTTP/1.1 (or HTTP/2 over TLS by ALPN) to backends",
            ));
        }
    }
    let tls = resolve_upstream_tls(store, backend, &endpoints, warnings)?;
    Ok(Backend {
        key: id.key(),
        name: id.name.clone(),
        namespace: id.namespace.clone(),
        endpoints,
        tls,
        auth,
    })
}

/// TLS is on for port 443, a BackendTLSPolicy targeting the Backend, or a Backend `spec.tls` block.
pub(super) fn resolve_upstream_tls(
    store: &Store,
    backend: &Loaded<BackendSpec>,
    endpoints: &[Endpoint],
    warnings: &mut Warnings,
) -> Result<Option<UpstreamTls>, ConfigError> {
    let id = &backend.id;
    let policies: Vec<(&Loaded<BackendTlsPolicySpec>, usize)> = store
        .tls_policies
        .iter()
        .filter(|p| p.id.namespace == id.namespace)
        .filter_map(|p| {
            p.spec
                .target_refs
                .iter()
                .position(|t| t.name == id.name && targets_backend(t))
                .map(|i| (p, i))
        })
        .collect();
    if policies.len() > 1 {
        return Err(id.error(
            "metadata.name",
            format!(
                "targeted by more than one BackendTLSPolicy ({} and {})",
                policies[0].0.id.key(),
                policies[1].0.id.key()
            ),
        ));
    }
    let on_443 = endpoints.iter().any(|e| e.port() == 443);
    let backend_tls = backend.spec.tls.as_ref();
    if policies.is_empty() && !on_443 && backend_tls.is_none() {
        return Ok(None);
    }
    let mut tls = UpstreamTls {
        server_name: None,
        ca_pem: None,
        ca_source: None,
    };
    if let Some(t) = backend_tls {
        if t.insecure_skip_verify == Some(true) {
            warnings.push(id.warning(
                "spec.tls.insecureSkipVerify",
                "ignored: upstream certificates are always verified; add the CA with caCertificateRefs",
            ));
        }
        tls.server_name = t.sni.clone();
        let (pem, source) = resolve_ca(
            store,
            id,
            "spec.tls",
            t.ca_certificate_refs.as_deref(),
            t.well_known_ca_certificates.as_deref(),
            false,
        )?;
        tls.ca_pem = pem;
        tls.ca_source = source;
    }
    if let Some((p, _)) = policies.first() {
        let v = &p.spec.validation;
        tls.server_name = Some(v.hostname.clone());
        if v.subject_alt_names.is_some() {
            warnings.push(p.id.warning(
                "spec.validation.subjectAltNames",
                "ignored: the certificate is verified against validation.hostname",
            ));
        }
        let (pem, source) = resolve_ca(
            store,
            &p.id,
            "spec.validation",
            v.ca_certificate_refs.as_deref(),
            v.well_known_ca_certificates.as_deref(),
            true,
        )?;
        if pem.is_some() || tls.ca_pem.is_none() {
            tls.ca_pem = pem;
            tls.ca_source = source;
        }
    }
    Ok(Some(tls))
}

pub(super) fn targets_backend(t: &PolicyTargetRef) -> bool {
    t.kind.as_deref() == Some("Backend")
        && t.group.as_deref().is_none_or(|g| g == GROUP_ENVOY_GATEWAY)
}

/// `caCertificateRefs` / `wellKnownCACertificates` → extra CA PEM (None = webpki roots only).
/// `required`: Gateway API requires one of the two in a BackendTLSPolicy.
pub(super) fn resolve_ca(
    store: &Store,
    id: &ResourceId,
    field: &str,
    refs: Option<&[LocalObjectRef]>,
    well_known: Option<&str>,
    required: bool,
) -> Result<(Option<String>, Option<String>), ConfigError> {
    let refs = refs.unwrap_or(&[]);
    match (refs.is_empty(), well_known.filter(|w| !w.is_empty())) {
        (false, Some(_)) => Err(id.error(
            format!("{field}.wellKnownCACertificates"),
            "set either caCertificateRefs or wellKnownCACertificates, not both",
        )),
        (true, Some("System")) => Ok((None, Some("system (webpki roots)".to_owned()))),
        (true, Some(other)) => Err(id.error(
            format!("{field}.wellKnownCACertificates"),
            format!("{other:?} is not supported (expected System)"),
        )),
        (true, None) if required => Err(id.error(
            format!("{field}.caCertificateRefs"),
            "one of caCertificateRefs or wellKnownCACertificates is required",
        )),
        (true, None) => Ok((None, None)),
        (false, None) => {
            let mut pem = String::new();
            let mut sources = Vec::new();
            for (i, r) in refs.iter().enumerate() {
                let rf = format!("{field}.caCertificateRefs[{i}]");
                let kind = r.kind.as_deref().unwrap_or("ConfigMap");
                let text = match kind {
                    "ConfigMap" => {
                        let cm =
                            find(&store.config_maps, &id.namespace, &r.name).ok_or_else(|| {
                                id.error(
                                    format!("{rf}.name"),
                                    format!(
                                        "no ConfigMap named {:?} in namespace {}",
                                        r.name, id.namespace
                                    ),
                                )
                            })?;
                        cm.spec.data.get(CA_CERT_KEY).cloned().ok_or_else(|| {
                            id.error(
                                format!("{rf}.name"),
                                format!("ConfigMap {} has no key {CA_CERT_KEY}", cm.id.key()),
                            )
                        })?
                    }
                    "Secret" => {
                        let s = find(&store.secrets, &id.namespace, &r.name).ok_or_else(|| {
                            id.error(
                                format!("{rf}.name"),
                                format!(
                                    "no Secret named {:?} in namespace {}",
                                    r.name, id.namespace
                                ),
                            )
                        })?;
                        secret_value(s, CA_CERT_KEY)?.ok_or_else(|| {
                            id.error(
                                format!("{rf}.name"),
                                format!("Secret {} has no key {CA_CERT_KEY}", s.id.key()),
                            )
                        })?
                    }
                    other => {
                        return Err(id.error(
                            format!("{rf}.kind"),
                            format!("{other} is not supported (expected ConfigMap or Secret)"),
                        ))
                    }
                };
                if !text.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(id.error(
                        format!("{rf}.name"),
                        format!(
                            "{kind} {}/{} key {CA_CERT_KEY} holds no PEM certificate",
                            id.namespace, r.name
                        ),
                    ));
                }
                pem.push_str(text.trim_end());
                pem.push('\n');
                sources.push(format!("{kind} {}/{}", id.namespace, r.name));
            }
            Ok((Some(pem), Some(sources.join(", "))))
        }
    }
}
