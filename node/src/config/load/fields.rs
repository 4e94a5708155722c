//! What Switchyard does with every `spec` field that upstream defines, and the check that applies it.
//!
//! Switchyard reads Envoy AI Gateway, Envoy Gateway and Gateway API YAML unchanged, so a field upstream
//! accepts must never fail the load just because this node does not act on it, while a field upstream does
//! not know (a typo such as `numRetry`) must still fail, naming it. Both need the list of fields upstream
//! defines: `upstream_fields.txt`, generated from the CRDs' own OpenAPI schemas by
//! `scripts/upstream-fields.py` (the union over every Envoy AI Gateway release v0.1–v1.1 and Envoy Gateway
//! v1.2–v1.8, so both API versions and older spellings such as the seed page's `schema` stay known).
//!
//! Each known field then has one fate, from [`FATES`]:
//! - [`Fate::Read`]: the loader reads it (the serde mirrors in `resources` model it) and honours it, or
//!   warns / refuses with context only it has (the default: a field inherits its parent's fate);
//! - [`Fate::Ignored`]: accepted with a warning that says what Switchyard does instead, and removed from
//!   the document before the typed parse, so the mirrors need not model it;
//! - [`Fate::Refused`]: an error naming the field and why (ignoring it would be unsafe).
//!
//! The check runs on the raw document before the typed parse. Tests below prove that every field the table
//! leaves as `Read` is modelled by the typed mirrors, so "upstream accepts it" and "we parse it" cannot
//! drift apart silently.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::super::error::{ConfigError, ResourceId};

/// One `Kind path` per line, generated from upstream's CRD schemas (see the module doc).
const UPSTREAM_FIELDS: &str = include_str!("upstream_fields.txt");

/// What the loader does with a field upstream defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// Parsed and acted on by the loader (which may still warn or refuse with its own context).
    Read,
    /// Accepted with a warning `ignored: <why>`; the value is dropped before the typed parse.
    Ignored(&'static str),
    /// An error `<why>`: acting as if it were absent could be unsafe or silently wrong.
    Refused(&'static str),
}

use Fate::{Ignored, Read, Refused};

/// Why the browser-login settings of an `oidcExchangeToken.oidc` do not apply.
const OIDC_BROWSER: &str =
    "a browser-login setting: the exchange uses the client-credentials grant, which has no browser flow";
/// Why `oidcExchangeToken.oidc.provider.backendRef(s)/backendSettings` do not apply.
const OIDC_DIRECT: &str =
    "the token endpoint is called directly at the URL the issuer's discovery or tokenEndpoint names";
/// Why `oidcExchangeToken.aud` is not sent.
const OIDC_AUD: &str = "the token is requested with clientID, clientSecret and scopes only, as upstream's exchange does";
/// Why `oidcExchangeToken.oidc.resources` is not sent.
const OIDC_RESOURCES: &str = "resource indicators are not sent with the client-credentials request";

/// The fates that differ from the parent field's; every other field inherits (`spec` is [`Fate::Read`]).
/// Paths use `[]` for array elements, as in `upstream_fields.txt`.
pub(crate) const FATES: &[(&str, &str, Fate)] = &[
    // --- AIGatewayRoute -------------------------------------------------------------------------------
    ("AIGatewayRoute", "spec.hostnames", Ignored("every route is served whatever the request's Host; split hosts in front of Switchyard")),
    ("AIGatewayRoute", "spec.filterConfig", Ignored("configures Envoy's external processor, which Switchyard does not have")),
    ("AIGatewayRoute", "spec.llmRequestCosts", Ignored("token-cost accounting for rate limits is not implemented (token usage is still exported as metrics)")),
    ("AIGatewayRoute", "spec.rules[].name", Ignored("rule names only name Envoy's generated HTTPRoute rules; validate output numbers the rules")),
    // The stream helper makes this Read (resources.rs, model.rs and its resolution).
    // --- AIServiceBackend -----------------------------------------------------------------------------
    ("AIServiceBackend", "spec.timeouts", Ignored("timeouts are AIGatewayRoute rules[].timeouts.request and BackendTrafficPolicy retry.perRetry.timeout")),
    // --- BackendSecurityPolicy ------------------------------------------------------------------------
    ("BackendSecurityPolicy", "spec.credentialOverride", Ignored("the policy's own credential is always sent; clients cannot supply one")),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.aud", Ignored(OIDC_AUD)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.resources", Ignored(OIDC_RESOURCES)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.cookieConfig", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.cookieDomain", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.cookieNames", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.csrfTokenTTL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.defaultRefreshTokenTTL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.defaultTokenTTL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.denyRedirect", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.disableTokenEncryption", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.forwardAccessToken", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.forwardIDToken", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.logoutPath", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.passThroughAuthHeader", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.redirectURL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.refreshToken", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.provider.authorizationEndpoint", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.provider.endSessionEndpoint", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.provider.backendRef", Ignored(OIDC_DIRECT)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.provider.backendRefs", Ignored(OIDC_DIRECT)),
    ("BackendSecurityPolicy", "spec.awsCredentials.oidcExchangeToken.oidc.provider.backendSettings", Ignored(OIDC_DIRECT)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.aud", Ignored(OIDC_AUD)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.resources", Ignored(OIDC_RESOURCES)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.cookieConfig", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.cookieDomain", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.cookieNames", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.csrfTokenTTL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.defaultRefreshTokenTTL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.defaultTokenTTL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.denyRedirect", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.disableTokenEncryption", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.forwardAccessToken", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.forwardIDToken", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.logoutPath", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.passThroughAuthHeader", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.redirectURL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.refreshToken", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.provider.authorizationEndpoint", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.provider.endSessionEndpoint", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.provider.backendRef", Ignored(OIDC_DIRECT)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.provider.backendRefs", Ignored(OIDC_DIRECT)),
    ("BackendSecurityPolicy", "spec.azureCredentials.oidcExchangeToken.oidc.provider.backendSettings", Ignored(OIDC_DIRECT)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.aud", Ignored(OIDC_AUD)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.resources", Ignored(OIDC_RESOURCES)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.cookieConfig", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.cookieDomain", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.cookieNames", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.csrfTokenTTL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.defaultRefreshTokenTTL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.defaultTokenTTL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.denyRedirect", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.disableTokenEncryption", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.forwardAccessToken", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.forwardIDToken", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.logoutPath", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.passThroughAuthHeader", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.redirectURL", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.refreshToken", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.provider.authorizationEndpoint", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.provider.endSessionEndpoint", Ignored(OIDC_BROWSER)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.provider.backendRef", Ignored(OIDC_DIRECT)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.provider.backendRefs", Ignored(OIDC_DIRECT)),
    ("BackendSecurityPolicy", "spec.gcpCredentials.workloadIdentityFederationConfig.oidcExchangeToken.oidc.provider.backendSettings", Ignored(OIDC_DIRECT)),
    // --- Backend --------------------------------------------------------------------------------------
    ("Backend", "spec.tls.autoSNIFromEndpointHostname", Ignored("SNI is tls.sni, a BackendTLSPolicy's hostname, or the fqdn endpoint's hostname")),
    ("Backend", "spec.tls.fingerprints", Refused("certificate pinning by fingerprint is not implemented, and ignoring it would accept certificates upstream rejects; verify with caCertificateRefs instead")),
    ("Backend", "spec.tls.clientCertificateRef", Ignored("client certificates towards backends are not implemented")),
    ("Backend", "spec.tls.minVersion", Ignored("rustls defaults apply (TLS 1.2 and 1.3)")),
    ("Backend", "spec.tls.maxVersion", Ignored("rustls defaults apply (TLS 1.2 and 1.3)")),
    ("Backend", "spec.tls.ciphers", Ignored("rustls defaults apply")),
    ("Backend", "spec.tls.ecdhCurves", Ignored("rustls defaults apply")),
    ("Backend", "spec.tls.signatureAlgorithms", Ignored("rustls defaults apply")),
    ("Backend", "spec.tls.alpnProtocols", Ignored("ALPN offers HTTP/2 and HTTP/1.1 as the backend's scheme allows")),
    ("Backend", "spec.endpoints[].hostname", Ignored("use an fqdn endpoint, or BackendTLSPolicy validation.hostname for TLS")),
    ("Backend", "spec.endpoints[].zone", Ignored("zone-aware routing is not implemented")),
    ("Backend", "spec.fallback", Ignored("the AIGatewayRoute backendRefs[].priority decides fallback")),
    // --- BackendTLSPolicy -----------------------------------------------------------------------------
    ("BackendTLSPolicy", "spec.options", Ignored("no TLS options are implemented")),
    ("BackendTLSPolicy", "spec.targetRefs[].sectionName", Ignored("the policy applies to every endpoint of the Backend")),
    // --- BackendTrafficPolicy -------------------------------------------------------------------------
    ("BackendTrafficPolicy", "spec.targetRef.sectionName", Ignored("the policy applies to every rule of the route")),
    ("BackendTrafficPolicy", "spec.targetRefs[].sectionName", Ignored("the policy applies to every rule of the route")),
    ("BackendTrafficPolicy", "spec.targetSelectors", Ignored("attach the policy by targetRefs (kind HTTPRoute, name = the AIGatewayRoute's name)")),
    ("BackendTrafficPolicy", "spec.loadBalancer", Ignored("Switchyard chooses by priority load, then backendRef weight (locality-weighted, as Envoy Gateway), then an address at random")),
    ("BackendTrafficPolicy", "spec.rateLimit", Ignored("rate limiting is not implemented")),
    ("BackendTrafficPolicy", "spec.faultInjection", Ignored("fault injection is not implemented")),
    ("BackendTrafficPolicy", "spec.proxyProtocol", Ignored("PROXY protocol towards backends is not implemented")),
    ("BackendTrafficPolicy", "spec.tcpKeepalive", Ignored("the OS keep-alive defaults apply")),
    ("BackendTrafficPolicy", "spec.connection", Ignored("connection buffer settings do not apply")),
    ("BackendTrafficPolicy", "spec.dns", Ignored("DNS is re-resolved on Switchyard's own schedule")),
    ("BackendTrafficPolicy", "spec.http2", Ignored("HTTP/2 tuning does not apply")),
    ("BackendTrafficPolicy", "spec.mergeType", Ignored("policies are not merged; only route-level policies apply")),
    ("BackendTrafficPolicy", "spec.useClientProtocol", Ignored("the upstream protocol follows the backend")),
    ("BackendTrafficPolicy", "spec.compression", Ignored("response compression is not implemented")),
    ("BackendTrafficPolicy", "spec.compressor", Ignored("response compression is not implemented")),
    ("BackendTrafficPolicy", "spec.responseOverride", Ignored("response overrides are not implemented")),
    ("BackendTrafficPolicy", "spec.httpUpgrade", Ignored("protocol upgrades are not used by the OpenAI API")),
    ("BackendTrafficPolicy", "spec.requestBuffer", Ignored("requests are always buffered up to the body limit")),
    ("BackendTrafficPolicy", "spec.telemetry", Ignored("tracing settings do not apply")),
    ("BackendTrafficPolicy", "spec.bandwidthLimit", Ignored("bandwidth limits are not implemented")),
    ("BackendTrafficPolicy", "spec.admissionControl", Ignored("admission control is not implemented; circuitBreaker.maxParallelRetries bounds retries")),
    ("BackendTrafficPolicy", "spec.routingType", Ignored("requests go to the Backend's endpoints, never through a Service's cluster IP")),
    ("BackendTrafficPolicy", "spec.circuitBreaker.maxConnections", Ignored("only maxParallelRetries is implemented")),
    ("BackendTrafficPolicy", "spec.circuitBreaker.maxPendingRequests", Ignored("only maxParallelRetries is implemented")),
    ("BackendTrafficPolicy", "spec.circuitBreaker.maxParallelRequests", Ignored("only maxParallelRetries is implemented")),
    ("BackendTrafficPolicy", "spec.circuitBreaker.maxRequestsPerConnection", Ignored("only maxParallelRetries is implemented")),
    ("BackendTrafficPolicy", "spec.circuitBreaker.perEndpoint", Ignored("only maxParallelRetries is implemented")),
    ("BackendTrafficPolicy", "spec.circuitBreaker.retryBudget", Ignored("a retry budget is not implemented; maxParallelRetries (default 1024) bounds concurrent retries")),
    ("BackendTrafficPolicy", "spec.healthCheck.passive.failurePercentageThreshold", Ignored("failure-percentage ejection is not implemented")),
    ("BackendTrafficPolicy", "spec.healthCheck.active.initialJitter", Ignored("not implemented")),
    ("BackendTrafficPolicy", "spec.healthCheck.active.healthCheckLog", Ignored("probe results are metrics and debug logs")),
    ("BackendTrafficPolicy", "spec.healthCheck.active.overrides", Ignored("probes go to the endpoint's own port")),
    ("BackendTrafficPolicy", "spec.healthCheck.active.http.expectedResponse", Ignored("only the status is checked")),
    ("BackendTrafficPolicy", "spec.healthCheck.active.http.hostname", Ignored("probes use the backend's host")),
    ("BackendTrafficPolicy", "spec.healthCheck.active.http.requestBody", Ignored("probes are GET requests without a body")),
    ("BackendTrafficPolicy", "spec.healthCheck.active.http.retriableStatuses", Ignored("a probe answered with a status outside expectedStatuses fails")),
    ("BackendTrafficPolicy", "spec.timeout.http", Ignored("the route timeout is AIGatewayRoute rules[].timeouts.request and the per-attempt timeout retry.perRetry.timeout")),
    // --- Gateway --------------------------------------------------------------------------------------
    ("Gateway", "spec.addresses", Ignored("the node listens where --listen says")),
    ("Gateway", "spec.listeners[].hostname", Ignored("every request reaching the node is served whatever its Host")),
    ("Gateway", "spec.backendTLS", Ignored("client certificates towards backends are not implemented")),
    ("Gateway", "spec.tls", Ignored("client certificates towards backends are not implemented")),
    ("Gateway", "spec.allowedListeners", Ignored("ListenerSets are not read; a node has one listener")),
    ("Gateway", "spec.defaultScope", Ignored("a node has one listener")),
];

/// The field paths upstream defines, by kind (parsed once from [`UPSTREAM_FIELDS`]).
fn upstream() -> &'static HashMap<&'static str, HashSet<&'static str>> {
    static FIELDS: OnceLock<HashMap<&'static str, HashSet<&'static str>>> = OnceLock::new();
    FIELDS.get_or_init(|| {
        let mut out: HashMap<&str, HashSet<&str>> = HashMap::new();
        for line in UPSTREAM_FIELDS.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if let Some((kind, path)) = line.split_once(' ') {
                out.entry(kind).or_default().insert(path);
            }
        }
        out
    })
}

/// The fate of one field path (exact entry only; callers inherit by not descending into non-Read fields).
fn fate(kind: &str, path: &str) -> Fate {
    FATES
        .iter()
        .find(|(k, p, _)| *k == kind && *p == path)
        .map_or(Read, |(_, _, f)| *f)
}

/// Checks `doc.spec` of a `kind` upstream defines: unknown fields are errors naming them, [`Fate::Ignored`]
/// fields become warnings and are removed, [`Fate::Refused`] fields are errors. Kinds without a CRD
/// (`Secret`, `ConfigMap`) are left to their typed mirrors.
pub(crate) fn check_spec(
    kind: &str,
    id: &ResourceId,
    doc: &mut Map<String, Value>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    let Some(known) = upstream().get(kind) else {
        return Ok(());
    };
    let Some(spec) = doc.get_mut("spec") else {
        return Ok(());
    };
    let mut walk = Walk {
        kind,
        id,
        known,
        warnings,
    };
    walk.value("spec", "spec", spec)
}

struct Walk<'a> {
    kind: &'a str,
    id: &'a ResourceId,
    known: &'a HashSet<&'static str>,
    warnings: &'a mut Vec<String>,
}

impl Walk<'_> {
    /// `schema_path` names the field as upstream's schema does (`spec.rules[].name`), `at` as the user
    /// wrote it (`spec.rules[2].name`).
    fn value(&mut self, schema_path: &str, at: &str, v: &mut Value) -> Result<(), ConfigError> {
        match v {
            Value::Object(map) => self.object(schema_path, at, map),
            Value::Array(items) => {
                let element = format!("{schema_path}[]");
                for (i, item) in items.iter_mut().enumerate() {
                    self.value(&element, &format!("{at}[{i}]"), item)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn object(
        &mut self,
        schema_path: &str,
        at: &str,
        map: &mut Map<String, Value>,
    ) -> Result<(), ConfigError> {
        if self.known.contains(format!("{schema_path}.*").as_str()) {
            return Ok(()); // free-form keys (labels, filter config): nothing to check
        }
        let keys: Vec<String> = map.keys().cloned().collect();
        for key in keys {
            let field = format!("{schema_path}.{key}");
            let field_at = format!("{at}.{key}");
            if !self.known.contains(field.as_str()) {
                return Err(self.id.error(
                    field_at,
                    format!(
                        "unknown field {key:?}: upstream {} has no such field (a typo?)",
                        self.kind
                    ),
                ));
            }
            match fate(self.kind, &field) {
                Read => {
                    if let Some(child) = map.get_mut(&key) {
                        self.value(&field, &field_at, child)?;
                    }
                }
                Ignored(why) => {
                    if map.remove(&key).is_some_and(|v| !v.is_null()) {
                        self.warnings
                            .push(self.id.warning(field_at, format!("ignored: {why}")));
                    }
                }
                Refused(why) => return Err(self.id.error(field_at, why)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resources::{
        AIGatewayRouteSpec, AIServiceBackendSpec, BackendSecurityPolicySpec, BackendSpec,
        BackendTlsPolicySpec, BackendTrafficPolicySpec, GatewaySpec,
    };
    use std::path::PathBuf;

    fn id(kind: &str) -> ResourceId {
        ResourceId {
            file: PathBuf::from("t.yaml"),
            kind: kind.into(),
            namespace: "default".into(),
            name: "n".into(),
        }
    }

    /// A document body holding just `path` (with `[]` as a one-element list) set to `leaf`.
    fn doc_with(kind: &str, path: &str, leaf: Value) -> Value {
        let mut v = leaf;
        for seg in path.rsplit('.') {
            let (name, arrays) = seg.split_at(seg.find("[]").unwrap_or(seg.len()));
            for _ in 0..arrays.len() / 2 {
                v = Value::Array(vec![v]);
            }
            let mut m = Map::new();
            m.insert(name.to_owned(), v);
            v = Value::Object(m);
        }
        let _ = kind;
        v
    }

    /// Deserialises the `spec` of `doc` as `kind`'s typed mirror; the error message if any.
    fn typed_error(kind: &str, doc: Value) -> Option<String> {
        fn de<T: serde::de::DeserializeOwned>(doc: Value) -> Option<String> {
            let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
            serde_path_to_error::deserialize::<_, T>(spec)
                .err()
                .map(|e| format!("spec.{}: {}", e.path(), e.inner()))
        }
        match kind {
            "AIGatewayRoute" => de::<AIGatewayRouteSpec>(doc),
            "AIServiceBackend" => de::<AIServiceBackendSpec>(doc),
            "BackendSecurityPolicy" => de::<BackendSecurityPolicySpec>(doc),
            "Backend" => de::<BackendSpec>(doc),
            "BackendTLSPolicy" => de::<BackendTlsPolicySpec>(doc),
            "BackendTrafficPolicy" => de::<BackendTrafficPolicySpec>(doc),
            "Gateway" => de::<GatewaySpec>(doc),
            other => panic!("no typed mirror for {other}"),
        }
    }

    /// The nearest fate on the way from `spec` to `path`: what the check does with it.
    fn effective_fate(kind: &str, path: &str) -> Fate {
        let mut end = 0;
        loop {
            let next = path[end..].find('.').map(|i| end + i);
            let prefix = &path[..next.unwrap_or(path.len())];
            let prefix = prefix.trim_end_matches("[]");
            let f = fate(kind, prefix);
            if f != Read {
                return f;
            }
            match next {
                Some(n) => end = n + 1,
                None => return Read,
            }
        }
    }

    #[test]
    fn every_upstream_field_left_read_is_modelled_by_the_typed_mirrors() {
        let mut failures = Vec::new();
        for (kind, paths) in upstream() {
            for path in paths {
                if path.ends_with(".*") || effective_fate(kind, path) != Read {
                    continue;
                }
                // `null` is accepted by every optional field, so an error can only be a required value
                // missing (fine here) or the field itself being unknown to the mirror (the bug).
                let doc = doc_with(kind, path, Value::Null);
                if let Some(e) = typed_error(kind, doc) {
                    if e.contains("unknown field") {
                        failures.push(format!("{kind} {path}: {e}"));
                    }
                }
            }
        }
        failures.sort();
        assert!(
            failures.is_empty(),
            "{} fields upstream defines are Read but not modelled:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn every_fate_names_a_field_upstream_defines() {
        for (kind, path, _) in FATES {
            assert!(
                upstream().get(kind).is_some_and(|k| k.contains(path)),
                "{kind} {path} is not an upstream field"
            );
        }
    }

    #[test]
    fn upstream_fields_cover_both_api_versions_and_the_seed_pages_spelling() {
        let k = upstream();
        for (kind, path) in [
            ("AIGatewayRoute", "spec.schema.name"), // v0.2 (the seed page)
            ("AIGatewayRoute", "spec.targetRefs[].name"), // v0.2
            ("AIGatewayRoute", "spec.parentRefs[].name"), // v0.3+
            ("AIGatewayRoute", "spec.rules[].streamIdleTimeout"), // v1.1
            ("AIServiceBackend", "spec.schema.prefix"), // v1.0+
            (
                "BackendSecurityPolicy",
                "spec.credentialOverride.fromRequestHeaders.header",
            ),
            (
                "BackendTrafficPolicy",
                "spec.circuitBreaker.retryBudget.percent.numerator",
            ),
            ("Backend", "spec.tls.autoSNIFromEndpointHostname"),
            (
                "BackendTLSPolicy",
                "spec.validation.subjectAltNames[].hostname",
            ),
            ("Gateway", "spec.listeners[].port"),
        ] {
            assert!(k[kind].contains(path), "{kind} {path}");
        }
    }

    /// One row per behaviour of the check.
    #[test]
    fn check_spec_table() {
        struct Row {
            name: &'static str,
            kind: &'static str,
            spec: Value,
            /// `Ok(warnings containing)` or `Err(message containing)`.
            want: Result<&'static [&'static str], &'static str>,
            /// The spec after the check (ignored fields removed).
            after: Option<Value>,
        }
        use serde_json::json;
        let rows = [
            Row {
                name: "read fields pass untouched",
                kind: "BackendTrafficPolicy",
                spec: json!({"retry": {"numRetries": 2}}),
                want: Ok(&[]),
                after: Some(json!({"retry": {"numRetries": 2}})),
            },
            Row {
                name: "a typo upstream does not know is an error naming it",
                kind: "BackendTrafficPolicy",
                spec: json!({"retry": {"numRetry": 2}}),
                want: Err("spec.retry.numRetry: unknown field \"numRetry\": upstream BackendTrafficPolicy has no such field"),
                after: None,
            },
            Row {
                name: "typos inside arrays name the element",
                kind: "AIGatewayRoute",
                spec: json!({"rules": [{"backendRefs": []}, {"backendRefs": [{"name": "a", "prority": 1}]}]}),
                want: Err("spec.rules[1].backendRefs[0].prority: unknown field \"prority\""),
                after: None,
            },
            Row {
                name: "ignored fields warn with what happens instead and are removed",
                kind: "BackendTrafficPolicy",
                spec: json!({"circuitBreaker": {"retryBudget": {"percent": {"numerator": 20}}, "maxParallelRetries": 3}}),
                want: Ok(&["spec.circuitBreaker.retryBudget: ignored: a retry budget is not implemented"]),
                after: Some(json!({"circuitBreaker": {"maxParallelRetries": 3}})),
            },
            Row {
                name: "inside an ignored field nothing is checked (upstream's own validation applies there)",
                kind: "AIGatewayRoute",
                spec: json!({"rules": [{"name": "r0", "backendRefs": [{"name": "b"}]}], "filterConfig": {"type": "x", "anything": {"y": 1}}}),
                want: Ok(&["spec.rules[0].name: ignored:", "spec.filterConfig: ignored:"]),
                after: Some(json!({"rules": [{"backendRefs": [{"name": "b"}]}]})),
            },
            Row {
                name: "refused fields are errors saying why",
                kind: "Backend",
                spec: json!({"tls": {"fingerprints": ["ab:cd"]}}),
                want: Err("spec.tls.fingerprints: certificate pinning by fingerprint is not implemented"),
                after: None,
            },
            Row {
                name: "free-form maps accept any key",
                kind: "Gateway",
                spec: json!({"infrastructure": {"labels": {"team": "ai", "any-key": "v"}}}),
                want: Ok(&[]),
                after: Some(json!({"infrastructure": {"labels": {"team": "ai", "any-key": "v"}}})),
            },
            Row {
                name: "an explicit null ignored field is dropped without a warning",
                kind: "AIServiceBackend",
                spec: json!({"timeouts": null}),
                want: Ok(&[]),
                after: Some(json!({})),
            },
        ];
        for row in rows {
            let mut doc = Map::new();
            doc.insert("spec".into(), row.spec);
            let mut warnings = Vec::new();
            let got = check_spec(row.kind, &id(row.kind), &mut doc, &mut warnings);
            match (row.want, got) {
                (Ok(want), Ok(())) => {
                    assert_eq!(warnings.len(), want.len(), "{}: {warnings:#?}", row.name);
                    for w in want {
                        assert!(
                            warnings.iter().any(|x| x.contains(w)),
                            "{}: {w} not in {warnings:#?}",
                            row.name
                        );
                    }
                    if let Some(after) = row.after {
                        assert_eq!(doc["spec"], after, "{}", row.name);
                    }
                }
                (Err(want), Err(e)) => {
                    assert!(e.to_string().contains(want), "{}: {e}", row.name)
                }
                (want, got) => panic!("{}: want {want:?}, got {got:?}", row.name),
            }
        }
    }
}
