//! Serde mirrors of the YAML resources, spelled exactly as Envoy AI Gateway, Envoy Gateway, Gateway API and
//! core Kubernetes spell them.
//!
//! Switchyard promises to read Envoy AI Gateway YAML unchanged, so these structs follow the upstream Go
//! types field for field (`json:"…"` names, optionality), including fields this node does not act on:
//! a config written for Envoy must load here, and the loader turns accepted-but-ignored fields into
//! warnings instead of failing. Every struct we model denies unknown fields, so a typo inside a `spec`
//! (`numRetry`, `prority`) is an error with its field path rather than a silently ignored setting. Sub-objects
//! we never interpret (rate limits, filter config, OIDC settings…) are kept as opaque
//! [`serde_json::Value`]s so any upstream shape is accepted.
//!
//! Nothing here is resolved or defaulted: numbers are read as `i64` so the loader can say "must be ≥ 0"
//! with the field path instead of serde's "expected u32", and defaults live in the loader next to the
//! Envoy semantics they implement.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, IgnoredAny, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::duration::GoDuration;

/// `aigateway.envoyproxy.io` (AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy).
pub(crate) const GROUP_AI_GATEWAY: &str = "aigateway.envoyproxy.io";
/// `gateway.envoyproxy.io` (Backend, BackendTrafficPolicy).
pub(crate) const GROUP_ENVOY_GATEWAY: &str = "gateway.envoyproxy.io";
/// `gateway.networking.k8s.io` (Gateway, BackendTLSPolicy, HTTPRoute).
pub(crate) const GROUP_GATEWAY_API: &str = "gateway.networking.k8s.io";

// ---------------------------------------------------------------------------------------------------------
// Envelope

/// One whole YAML document of a kind with a `spec` (`apiVersion`, `kind`, `metadata`, `spec`, `status`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Resource<S> {
    /// `apiVersion`; checked by the loader before this struct is read.
    #[allow(dead_code)] // checked on the raw document before typed deserialisation
    pub(crate) api_version: String,
    /// `kind`; likewise checked before.
    #[allow(dead_code)] // checked on the raw document before typed deserialisation
    pub(crate) kind: String,
    /// `metadata`.
    #[allow(dead_code)]
    // identity is taken from the raw document: errors need it before this parse
    pub(crate) metadata: ObjectMeta,
    /// `spec`.
    pub(crate) spec: S,
    /// `status`, written by controllers; accepted so `kubectl get -o yaml` output loads.
    #[serde(default)]
    #[allow(dead_code)] // accepted so exported cluster state loads; never meaningful here
    pub(crate) status: Option<IgnoredAny>,
}

/// The part of Kubernetes `ObjectMeta` this node uses. Other metadata (labels, annotations, uid,
/// managedFields…) is accepted and ignored: it never changes routing.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectMeta {
    /// `metadata.name`.
    pub(crate) name: String,
    /// `metadata.namespace` (the loader defaults it to `default`).
    #[serde(default)]
    #[allow(dead_code)] // read from the raw document, like the name
    pub(crate) namespace: Option<String>,
}

/// A string that may also have been written as a YAML number or boolean (`version: 2024-10-21` is a
/// string, but `version: 1` is not). Only for non-secret fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stringish(pub(crate) String);

impl<'de> Deserialize<'de> for Stringish {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(s) => Ok(Stringish(s)),
            Value::Number(n) => Ok(Stringish(n.to_string())),
            Value::Bool(b) => Ok(Stringish(b.to_string())),
            _ => Err(de::Error::custom("expected a string")),
        }
    }
}

/// A value inside a `Secret` or a credential. It is never echoed: wrong types are reported without the
/// value, and `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RawSecretValue(pub(crate) String);

impl fmt::Debug for RawSecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<'de> Deserialize<'de> for RawSecretValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        // serde's default messages quote the offending value ("invalid type: integer `123`"); a secret
        // must not end up in a log that way, so every wrong type gets the same value-free message.
        const WRONG: &str = "expected a string (value not shown: Secret data)";
        impl<'v> Visitor<'v> for V {
            type Value = RawSecretValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(RawSecretValue(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(RawSecretValue(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Err(E::custom(WRONG))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Err(E::custom(WRONG))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Err(E::custom(WRONG))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Err(E::custom(WRONG))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Err(E::custom(WRONG))
            }
            fn visit_seq<A: de::SeqAccess<'v>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(WRONG))
            }
            fn visit_map<A: de::MapAccess<'v>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(WRONG))
            }
        }
        deserializer.deserialize_any(V)
    }
}

// ---------------------------------------------------------------------------------------------------------
// Shared Gateway API references

/// `gwapiv1a2.LocalPolicyTargetReference(WithSectionName)`: how policies and routes name their targets.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PolicyTargetRef {
    /// API group of the target.
    #[serde(default)]
    pub(crate) group: Option<String>,
    /// Kind of the target (`HTTPRoute`, `AIGatewayRoute`, `Gateway`, `Backend`, `AIServiceBackend`…).
    #[serde(default)]
    pub(crate) kind: Option<String>,
    /// Name of the target, in the policy's namespace.
    pub(crate) name: String,
    /// Listener / port section; accepted, never used for matching here.
    #[serde(default)]
    #[allow(dead_code)] // accepted for compatibility; Switchyard has no sections to target
    pub(crate) section_name: Option<String>,
}

/// `gwapiv1.ParentReference`: the Gateway an AIGatewayRoute attaches to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // accepted for compatibility: a Switchyard node is its own gateway
pub(crate) struct ParentRef {
    #[serde(default)]
    pub(crate) group: Option<String>,
    #[serde(default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) section_name: Option<String>,
    #[serde(default)]
    pub(crate) port: Option<i64>,
}

/// `gwapiv1.LocalObjectReference`: a same-namespace reference (`caCertificateRefs`, `backendSecurityPolicyRef`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct LocalObjectRef {
    /// API group (`""` for core objects such as ConfigMap and Secret).
    #[serde(default)]
    #[allow(dead_code)] // the kind alone decides what is looked up
    pub(crate) group: Option<String>,
    /// Kind (`ConfigMap`, `Secret`, `BackendSecurityPolicy`).
    #[serde(default)]
    pub(crate) kind: Option<String>,
    /// Name.
    pub(crate) name: String,
}

/// `gwapiv1.SecretObjectReference`: where a credential lives.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SecretObjectRef {
    /// API group (core: `""`).
    #[serde(default)]
    #[allow(dead_code)] // only Secret is supported; the kind check covers it
    pub(crate) group: Option<String>,
    /// Kind (default `Secret`).
    #[serde(default)]
    pub(crate) kind: Option<String>,
    /// Secret name.
    pub(crate) name: String,
    /// Secret namespace (default: the referring resource's namespace).
    #[serde(default)]
    pub(crate) namespace: Option<String>,
}

/// `gwapiv1.BackendObjectReference`: `AIServiceBackend.spec.backendRef`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BackendObjectRef {
    /// API group (`gateway.envoyproxy.io` for a Backend).
    #[serde(default)]
    pub(crate) group: Option<String>,
    /// Kind (`Backend`; Gateway API's default would be `Service`).
    #[serde(default)]
    pub(crate) kind: Option<String>,
    /// Name.
    pub(crate) name: String,
    /// Namespace (default: the AIServiceBackend's).
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    /// Service port; meaningless for a `Backend`, which carries its own ports.
    #[serde(default)]
    pub(crate) port: Option<i64>,
}

// ---------------------------------------------------------------------------------------------------------
// aigateway.envoyproxy.io/v1alpha1

/// `VersionedAPISchema`: `{name, version}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct VersionedApiSchema {
    /// `OpenAI`, `AWSBedrock`, `AzureOpenAI`, `Anthropic`, …
    pub(crate) name: String,
    /// Optional API version (e.g. Azure `api-version`).
    #[serde(default)]
    pub(crate) version: Option<Stringish>,
}

/// `AIGatewayRouteSpec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AIGatewayRouteSpec {
    /// `schema`: what clients speak. Required in v0.2, dropped later (always OpenAI), so optional here.
    #[serde(default)]
    pub(crate) schema: Option<VersionedApiSchema>,
    /// `targetRefs` (v0.1/v0.2): the Gateway(s) the route attaches to. A node is its own gateway.
    #[serde(default)]
    #[allow(dead_code)] // accepted: a Switchyard node serves every route it loads
    pub(crate) target_refs: Option<Vec<PolicyTargetRef>>,
    /// `parentRefs` (v0.2+): likewise.
    #[serde(default)]
    #[allow(dead_code)] // accepted: a Switchyard node serves every route it loads
    pub(crate) parent_refs: Option<Vec<ParentRef>>,
    /// `rules`.
    #[serde(default)]
    pub(crate) rules: Vec<AIGatewayRouteRule>,
    /// `filterConfig`: how Envoy deploys its external processor; nothing to configure here.
    #[serde(default)]
    pub(crate) filter_config: Option<Value>,
    /// `llmRequestCosts`: token-cost metadata for rate limiting; not implemented.
    #[serde(default)]
    pub(crate) llm_request_costs: Option<Value>,
}

/// `AIGatewayRouteRule`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AIGatewayRouteRule {
    /// `matches` (OR of header conditions; absent = match everything).
    #[serde(default)]
    pub(crate) matches: Vec<AIGatewayRouteRuleMatch>,
    /// `backendRefs`.
    #[serde(default)]
    pub(crate) backend_refs: Vec<AIGatewayRouteRuleBackendRef>,
    /// `timeouts` (`gwapiv1.HTTPRouteTimeouts`).
    #[serde(default)]
    pub(crate) timeouts: Option<HttpRouteTimeouts>,
    /// `modelsOwnedBy`.
    #[serde(default)]
    pub(crate) models_owned_by: Option<String>,
    /// `modelsCreatedAt` (RFC 3339); kept opaque because YAML may type it as a timestamp.
    #[serde(default)]
    pub(crate) models_created_at: Option<Value>,
}

/// `AIGatewayRouteRuleMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AIGatewayRouteRuleMatch {
    /// `headers` (`gwapiv1.HTTPHeaderMatch`), all of which must hold.
    #[serde(default)]
    pub(crate) headers: Vec<HttpHeaderMatch>,
}

/// `gwapiv1.HTTPHeaderMatch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HttpHeaderMatch {
    /// `Exact` (default) or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub(crate) match_type: Option<String>,
    /// Header name (case-insensitive).
    pub(crate) name: String,
    /// Value or pattern.
    pub(crate) value: Stringish,
}

/// `gwapiv1.HTTPRouteTimeouts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HttpRouteTimeouts {
    /// `request`: the whole request including retries.
    #[serde(default)]
    pub(crate) request: Option<GoDuration>,
    /// `backendRequest`: one upstream attempt. Switchyard takes that from `perRetry.timeout`.
    #[serde(default)]
    pub(crate) backend_request: Option<GoDuration>,
}

/// `AIGatewayRouteRuleBackendRef`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AIGatewayRouteRuleBackendRef {
    /// Name of an AIServiceBackend (or, as on the seed page, a Backend).
    pub(crate) name: String,
    /// Namespace (default: the route's).
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    /// Group, only set for InferencePool references.
    #[serde(default)]
    pub(crate) group: Option<String>,
    /// Kind, only set for InferencePool references.
    #[serde(default)]
    pub(crate) kind: Option<String>,
    /// `priority` (default 0).
    #[serde(default)]
    pub(crate) priority: Option<i64>,
    /// `weight` (default 1).
    #[serde(default)]
    pub(crate) weight: Option<i64>,
    /// `modelNameOverride`: not implemented yet.
    #[serde(default)]
    pub(crate) model_name_override: Option<String>,
    /// `headerMutation`: not implemented.
    #[serde(default)]
    pub(crate) header_mutation: Option<Value>,
    /// `bodyMutation`: not implemented.
    #[serde(default)]
    pub(crate) body_mutation: Option<Value>,
}

/// `AIServiceBackendSpec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct AIServiceBackendSpec {
    /// `schema`: what the backend expects.
    pub(crate) schema: VersionedApiSchema,
    /// `backendRef`: the Envoy Gateway `Backend`.
    pub(crate) backend_ref: BackendObjectRef,
    /// `backendSecurityPolicyRef` (v0.2; later replaced by the policy's `targetRefs`).
    #[serde(default)]
    pub(crate) backend_security_policy_ref: Option<LocalObjectRef>,
}

/// `BackendSecurityPolicySpec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BackendSecurityPolicySpec {
    /// `targetRefs`: the AIServiceBackends this policy applies to (newer versions).
    #[serde(default)]
    pub(crate) target_refs: Option<Vec<PolicyTargetRef>>,
    /// `type`: `APIKey`, `AWSCredentials`, `AzureAPIKey`, `AnthropicAPIKey`, `AzureCredentials`, `GCPCredentials`.
    #[serde(rename = "type")]
    pub(crate) policy_type: String,
    /// `apiKey`.
    #[serde(default)]
    pub(crate) api_key: Option<SecretRefHolder>,
    /// `awsCredentials`.
    #[serde(default)]
    pub(crate) aws_credentials: Option<AwsCredentials>,
    /// `azureAPIKey`.
    #[serde(default, rename = "azureAPIKey")]
    pub(crate) azure_api_key: Option<SecretRefHolder>,
    /// `anthropicAPIKey`.
    #[serde(default, rename = "anthropicAPIKey")]
    pub(crate) anthropic_api_key: Option<SecretRefHolder>,
    /// `azureCredentials` (client secret / OIDC / managed identity): opaque until supported.
    #[serde(default)]
    pub(crate) azure_credentials: Option<Value>,
    /// `gcpCredentials`: opaque until supported.
    #[serde(default)]
    pub(crate) gcp_credentials: Option<Value>,
}

/// `{secretRef}` (`BackendSecurityPolicyAPIKey` and friends).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SecretRefHolder {
    /// `secretRef`.
    pub(crate) secret_ref: SecretObjectRef,
}

/// `BackendSecurityPolicyAWSCredentials`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // modelled so typos fail now; read when AWSCredentials support lands
pub(crate) struct AwsCredentials {
    /// `region`.
    pub(crate) region: String,
    /// `credentialsFile {secretRef, profile}`.
    #[serde(default)]
    pub(crate) credentials_file: Option<AwsCredentialsFile>,
    /// `oidcExchangeToken`: opaque.
    #[serde(default)]
    pub(crate) oidc_exchange_token: Option<Value>,
}

/// `AWSCredentialsFile`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // read when AWSCredentials support lands
pub(crate) struct AwsCredentialsFile {
    /// `secretRef` (key `credentials`).
    pub(crate) secret_ref: SecretObjectRef,
    /// `profile` (default `default`).
    #[serde(default)]
    pub(crate) profile: Option<String>,
}

// ---------------------------------------------------------------------------------------------------------
// gateway.envoyproxy.io/v1alpha1

/// `BackendSpec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BackendSpec {
    /// `type`: `Endpoints` (default) or `DynamicResolver`.
    #[serde(default, rename = "type")]
    pub(crate) backend_type: Option<String>,
    /// `endpoints`.
    #[serde(default)]
    pub(crate) endpoints: Vec<BackendEndpoint>,
    /// `appProtocols` (`gateway.envoyproxy.io/h2c`, `ws`, `wss`).
    #[serde(default)]
    pub(crate) app_protocols: Option<Vec<String>>,
    /// `fallback`: Envoy Gateway's own priority flag; AIGatewayRoute `priority` overrides it.
    #[serde(default)]
    pub(crate) fallback: Option<bool>,
    /// `tls`.
    #[serde(default)]
    pub(crate) tls: Option<BackendTlsSettings>,
}

/// `BackendEndpoint`: exactly one of `fqdn`, `ip`, `unix`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BackendEndpoint {
    /// `hostname` (newer): Host/SNI override for an IP endpoint.
    #[serde(default)]
    pub(crate) hostname: Option<String>,
    /// `fqdn`.
    #[serde(default)]
    pub(crate) fqdn: Option<FqdnEndpoint>,
    /// `ip`.
    #[serde(default)]
    pub(crate) ip: Option<IpEndpoint>,
    /// `unix`.
    #[serde(default)]
    pub(crate) unix: Option<UnixSocket>,
    /// `zone`: zone-aware routing hint.
    #[serde(default)]
    pub(crate) zone: Option<String>,
}

/// `FQDNEndpoint`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct FqdnEndpoint {
    /// DNS name.
    pub(crate) hostname: String,
    /// Port.
    pub(crate) port: i64,
}

/// `IPEndpoint`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct IpEndpoint {
    /// IPv4 or IPv6 address.
    pub(crate) address: String,
    /// Port.
    pub(crate) port: i64,
}

/// `UnixSocket`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)] // unix endpoints are refused by the loader; the path is not needed for that
pub(crate) struct UnixSocket {
    /// Socket path.
    pub(crate) path: String,
}

/// `BackendTLSSettings` / `BackendTLSConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BackendTlsSettings {
    /// `caCertificateRefs` (ConfigMap/Secret with `ca.crt`).
    #[serde(default)]
    pub(crate) ca_certificate_refs: Option<Vec<LocalObjectRef>>,
    /// `wellKnownCACertificates: System`.
    #[serde(default, rename = "wellKnownCACertificates")]
    pub(crate) well_known_ca_certificates: Option<String>,
    /// `insecureSkipVerify`: refused — Switchyard always verifies.
    #[serde(default)]
    pub(crate) insecure_skip_verify: Option<bool>,
    /// `sni`: the server name to send and verify.
    #[serde(default)]
    pub(crate) sni: Option<String>,
    /// `clientCertificateRef` (mTLS to the backend): not implemented.
    #[serde(default)]
    pub(crate) client_certificate_ref: Option<Value>,
    /// `minVersion`.
    #[serde(default)]
    pub(crate) min_version: Option<Value>,
    /// `maxVersion`.
    #[serde(default)]
    pub(crate) max_version: Option<Value>,
    /// `ciphers`.
    #[serde(default)]
    pub(crate) ciphers: Option<Value>,
    /// `ecdhCurves`.
    #[serde(default)]
    pub(crate) ecdh_curves: Option<Value>,
    /// `signatureAlgorithms`.
    #[serde(default)]
    pub(crate) signature_algorithms: Option<Value>,
    /// `alpnProtocols`.
    #[serde(default)]
    pub(crate) alpn_protocols: Option<Value>,
}

/// `BackendTrafficPolicySpec` (`PolicyTargetReferences` and `ClusterSettings` inlined, as in Go).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BackendTrafficPolicySpec {
    /// `targetRef` (deprecated singular form).
    #[serde(default)]
    pub(crate) target_ref: Option<PolicyTargetRef>,
    /// `targetRefs`.
    #[serde(default)]
    pub(crate) target_refs: Option<Vec<PolicyTargetRef>>,
    /// `targetSelectors`: label selection is meaningless without a cluster API.
    #[serde(default)]
    pub(crate) target_selectors: Option<Value>,
    /// `retry`.
    #[serde(default)]
    pub(crate) retry: Option<Retry>,
    /// `healthCheck`.
    #[serde(default)]
    pub(crate) health_check: Option<HealthCheck>,
    /// `circuitBreaker`.
    #[serde(default)]
    pub(crate) circuit_breaker: Option<CircuitBreaker>,
    /// `timeout`.
    #[serde(default)]
    pub(crate) timeout: Option<Timeout>,
    // Settings accepted and ignored; each present one becomes a warning (see `ignored_settings`).
    /// `loadBalancer`: Switchyard picks by priority, then backendRef weight, then an address, at random.
    #[serde(default)]
    pub(crate) load_balancer: Option<Value>,
    /// `rateLimit`.
    #[serde(default)]
    pub(crate) rate_limit: Option<Value>,
    /// `faultInjection`.
    #[serde(default)]
    pub(crate) fault_injection: Option<Value>,
    /// `proxyProtocol`.
    #[serde(default)]
    pub(crate) proxy_protocol: Option<Value>,
    /// `tcpKeepalive`.
    #[serde(default)]
    pub(crate) tcp_keepalive: Option<Value>,
    /// `connection`.
    #[serde(default)]
    pub(crate) connection: Option<Value>,
    /// `dns`.
    #[serde(default)]
    pub(crate) dns: Option<Value>,
    /// `http2`.
    #[serde(default)]
    pub(crate) http2: Option<Value>,
    /// `mergeType`.
    #[serde(default)]
    pub(crate) merge_type: Option<Value>,
    /// `useClientProtocol`.
    #[serde(default)]
    pub(crate) use_client_protocol: Option<Value>,
    /// `compression`.
    #[serde(default)]
    pub(crate) compression: Option<Value>,
    /// `responseOverride`.
    #[serde(default)]
    pub(crate) response_override: Option<Value>,
    /// `httpUpgrade`.
    #[serde(default)]
    pub(crate) http_upgrade: Option<Value>,
    /// `requestBuffer`.
    #[serde(default)]
    pub(crate) request_buffer: Option<Value>,
    /// `telemetry`.
    #[serde(default)]
    pub(crate) telemetry: Option<Value>,
}

impl BackendTrafficPolicySpec {
    /// The YAML names of the settings that are present, with why they do not apply.
    pub(crate) fn ignored_settings(&self) -> Vec<(&'static str, &'static str)> {
        let all: [(&'static str, bool, &'static str); 15] = [
            (
                "loadBalancer",
                self.load_balancer.is_some(),
                "Switchyard chooses by priority load, then backendRef weight (as Envoy Gateway's default locality weighting), then an address, at random",
            ),
            (
                "rateLimit",
                self.rate_limit.is_some(),
                "rate limiting is not implemented",
            ),
            (
                "faultInjection",
                self.fault_injection.is_some(),
                "fault injection is not implemented",
            ),
            (
                "proxyProtocol",
                self.proxy_protocol.is_some(),
                "PROXY protocol towards backends is not implemented",
            ),
            (
                "tcpKeepalive",
                self.tcp_keepalive.is_some(),
                "the OS keep-alive defaults apply",
            ),
            (
                "connection",
                self.connection.is_some(),
                "connection buffer settings do not apply",
            ),
            (
                "dns",
                self.dns.is_some(),
                "DNS is re-resolved on Switchyard's own schedule",
            ),
            (
                "http2",
                self.http2.is_some(),
                "HTTP/2 tuning does not apply",
            ),
            (
                "mergeType",
                self.merge_type.is_some(),
                "policies are not merged; only route-level policies apply",
            ),
            (
                "useClientProtocol",
                self.use_client_protocol.is_some(),
                "the upstream protocol follows the backend",
            ),
            (
                "compression",
                self.compression.is_some(),
                "response compression is not implemented",
            ),
            (
                "responseOverride",
                self.response_override.is_some(),
                "response overrides are not implemented",
            ),
            (
                "httpUpgrade",
                self.http_upgrade.is_some(),
                "protocol upgrades are not used by the OpenAI API",
            ),
            (
                "requestBuffer",
                self.request_buffer.is_some(),
                "requests are always buffered up to the body limit",
            ),
            (
                "telemetry",
                self.telemetry.is_some(),
                "tracing settings do not apply",
            ),
        ];
        all.into_iter()
            .filter(|(_, present, _)| *present)
            .map(|(name, _, why)| (name, why))
            .collect()
    }
}

/// `Retry`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Retry {
    /// `numRetries` (default 2).
    #[serde(default)]
    pub(crate) num_retries: Option<i64>,
    /// `numAttemptsPerPriority`.
    #[serde(default)]
    pub(crate) num_attempts_per_priority: Option<i64>,
    /// `retryOn`.
    #[serde(default)]
    pub(crate) retry_on: Option<RetryOn>,
    /// `perRetry`.
    #[serde(default)]
    pub(crate) per_retry: Option<PerRetryPolicy>,
}

/// `RetryOn`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RetryOn {
    /// `triggers`.
    #[serde(default)]
    pub(crate) triggers: Option<Vec<String>>,
    /// `httpStatusCodes`.
    #[serde(default, rename = "httpStatusCodes")]
    pub(crate) http_status_codes: Option<Vec<i64>>,
}

/// `PerRetryPolicy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PerRetryPolicy {
    /// `timeout`.
    #[serde(default)]
    pub(crate) timeout: Option<GoDuration>,
    /// `backOff`.
    #[serde(default)]
    pub(crate) back_off: Option<BackOffPolicy>,
}

/// `BackOffPolicy`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BackOffPolicy {
    /// `baseInterval` (Envoy default 25 ms).
    #[serde(default)]
    pub(crate) base_interval: Option<GoDuration>,
    /// `maxInterval` (default 10 × base).
    #[serde(default)]
    pub(crate) max_interval: Option<GoDuration>,
}

/// `HealthCheck`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HealthCheck {
    /// `active`.
    #[serde(default)]
    pub(crate) active: Option<ActiveHealthCheck>,
    /// `passive`.
    #[serde(default)]
    pub(crate) passive: Option<PassiveHealthCheck>,
    /// `panicThreshold` (percent, default 50).
    #[serde(default)]
    pub(crate) panic_threshold: Option<i64>,
}

/// `PassiveHealthCheck` (Envoy outlier detection).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PassiveHealthCheck {
    /// `splitExternalLocalOriginErrors`.
    #[serde(default)]
    pub(crate) split_external_local_origin_errors: Option<bool>,
    /// `interval`.
    #[serde(default)]
    pub(crate) interval: Option<GoDuration>,
    /// `consecutiveLocalOriginFailures`.
    #[serde(default)]
    pub(crate) consecutive_local_origin_failures: Option<i64>,
    /// `consecutiveGatewayErrors`.
    #[serde(default)]
    pub(crate) consecutive_gateway_errors: Option<i64>,
    /// `consecutive5XxErrors` (sic: that is how the Go JSON tag spells it).
    #[serde(default, rename = "consecutive5XxErrors")]
    pub(crate) consecutive_5xx_errors: Option<i64>,
    /// `baseEjectionTime`.
    #[serde(default)]
    pub(crate) base_ejection_time: Option<GoDuration>,
    /// `maxEjectionPercent`.
    #[serde(default)]
    pub(crate) max_ejection_percent: Option<i64>,
    /// `alwaysEjectOneEndpoint`.
    #[serde(default)]
    pub(crate) always_eject_one_endpoint: Option<bool>,
    /// `failurePercentageThreshold`: success-rate style ejection, not implemented.
    #[serde(default)]
    pub(crate) failure_percentage_threshold: Option<i64>,
}

/// `ActiveHealthCheck`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ActiveHealthCheck {
    /// `timeout` (default 1 s).
    #[serde(default)]
    pub(crate) timeout: Option<GoDuration>,
    /// `interval` (default 3 s).
    #[serde(default)]
    pub(crate) interval: Option<GoDuration>,
    /// `initialJitter`.
    #[serde(default)]
    pub(crate) initial_jitter: Option<GoDuration>,
    /// `unhealthyThreshold` (default 3).
    #[serde(default)]
    pub(crate) unhealthy_threshold: Option<i64>,
    /// `healthyThreshold` (default 1).
    #[serde(default)]
    pub(crate) healthy_threshold: Option<i64>,
    /// `type`: `HTTP`, `TCP` or `GRPC`.
    #[serde(rename = "type")]
    pub(crate) check_type: String,
    /// `http`.
    #[serde(default)]
    pub(crate) http: Option<HttpActiveHealthChecker>,
    /// `tcp`: opaque (TCP probes are not supported).
    #[serde(default)]
    #[allow(dead_code)] // TCP probes are refused by type; the payload is never needed
    pub(crate) tcp: Option<Value>,
    /// `grpc`: opaque (gRPC probes are not supported).
    #[serde(default)]
    #[allow(dead_code)] // gRPC probes are refused by type; the payload is never needed
    pub(crate) grpc: Option<Value>,
}

/// `HTTPActiveHealthChecker`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct HttpActiveHealthChecker {
    /// `path`.
    pub(crate) path: String,
    /// `method` (default GET).
    #[serde(default)]
    pub(crate) method: Option<String>,
    /// `expectedStatuses` (default [200]).
    #[serde(default)]
    pub(crate) expected_statuses: Option<Vec<i64>>,
    /// `expectedResponse`: body matching, not implemented.
    #[serde(default)]
    pub(crate) expected_response: Option<Value>,
    /// `hostname`: Host header for probes (newer).
    #[serde(default)]
    pub(crate) hostname: Option<String>,
}

/// `CircuitBreaker`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CircuitBreaker {
    /// `maxConnections`.
    #[serde(default)]
    pub(crate) max_connections: Option<i64>,
    /// `maxPendingRequests`.
    #[serde(default)]
    pub(crate) max_pending_requests: Option<i64>,
    /// `maxParallelRequests`.
    #[serde(default)]
    pub(crate) max_parallel_requests: Option<i64>,
    /// `maxParallelRetries` (default 1024): honoured.
    #[serde(default)]
    pub(crate) max_parallel_retries: Option<i64>,
    /// `maxRequestsPerConnection`.
    #[serde(default)]
    pub(crate) max_requests_per_connection: Option<i64>,
    /// `perEndpoint`.
    #[serde(default)]
    pub(crate) per_endpoint: Option<Value>,
}

/// `Timeout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Timeout {
    /// `tcp`.
    #[serde(default)]
    pub(crate) tcp: Option<TcpTimeout>,
    /// `http` (`connectionIdleTimeout`, `maxConnectionDuration`, `requestTimeout`, …): not implemented.
    #[serde(default)]
    pub(crate) http: Option<Value>,
}

/// `TCPTimeout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct TcpTimeout {
    /// `connectTimeout` (default 10 s).
    #[serde(default)]
    pub(crate) connect_timeout: Option<GoDuration>,
}

// ---------------------------------------------------------------------------------------------------------
// gateway.networking.k8s.io

/// `BackendTLSPolicySpec` (v1alpha3 and v1 share this shape).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BackendTlsPolicySpec {
    /// `targetRefs`: `Backend` (or `Service`) names in the policy's namespace.
    pub(crate) target_refs: Vec<PolicyTargetRef>,
    /// `validation`.
    pub(crate) validation: BackendTlsPolicyValidation,
    /// `options`: implementation-specific TLS options; none are implemented.
    #[serde(default)]
    pub(crate) options: Option<Value>,
}

/// `BackendTLSPolicyValidation`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BackendTlsPolicyValidation {
    /// `caCertificateRefs`.
    #[serde(default)]
    pub(crate) ca_certificate_refs: Option<Vec<LocalObjectRef>>,
    /// `wellKnownCACertificates: System`.
    #[serde(default, rename = "wellKnownCACertificates")]
    pub(crate) well_known_ca_certificates: Option<String>,
    /// `hostname`: SNI and the name the certificate must carry.
    pub(crate) hostname: String,
    /// `subjectAltNames` (v1): not implemented; the hostname is verified.
    #[serde(default)]
    pub(crate) subject_alt_names: Option<Value>,
}

/// `GatewaySpec`: only the listener port matters to a node.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GatewaySpec {
    /// `gatewayClassName`.
    #[serde(default)]
    #[allow(dead_code)] // accepted: there is no controller to select
    pub(crate) gateway_class_name: Option<String>,
    /// `listeners`.
    #[serde(default)]
    pub(crate) listeners: Vec<Listener>,
    /// `addresses`: the node listens where `--listen` says.
    #[serde(default)]
    pub(crate) addresses: Option<Value>,
    /// `infrastructure`: Kubernetes deployment hints.
    #[serde(default)]
    #[allow(dead_code)] // accepted: deployment hints have no meaning outside Kubernetes
    pub(crate) infrastructure: Option<Value>,
    /// `backendTLS` (client certificate for upstreams): not implemented.
    #[serde(default, rename = "backendTLS")]
    pub(crate) backend_tls: Option<Value>,
}

/// `Listener`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Listener {
    /// `name`.
    pub(crate) name: String,
    /// `hostname`.
    #[serde(default)]
    #[allow(dead_code)] // accepted: every request reaching the node is served
    pub(crate) hostname: Option<String>,
    /// `port`.
    pub(crate) port: i64,
    /// `protocol` (`HTTP`, `HTTPS`, …).
    pub(crate) protocol: String,
    /// `tls`: listener TLS is terminated in front of Switchyard (the L4 balancer), not here.
    #[serde(default)]
    pub(crate) tls: Option<Value>,
    /// `allowedRoutes`.
    #[serde(default)]
    #[allow(dead_code)] // accepted: every loaded route is served
    pub(crate) allowed_routes: Option<Value>,
}

// ---------------------------------------------------------------------------------------------------------
// v1 (core)

/// A core `v1` `Secret`. Values are only ever held as [`RawSecretValue`] (redacted `Debug`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SecretResource {
    /// `apiVersion` (`v1`).
    #[allow(dead_code)] // checked on the raw document before typed deserialisation
    pub(crate) api_version: String,
    /// `kind` (`Secret`).
    #[allow(dead_code)] // checked on the raw document before typed deserialisation
    pub(crate) kind: String,
    /// `metadata`.
    pub(crate) metadata: ObjectMeta,
    /// `type` (`Opaque`, …).
    #[serde(default, rename = "type")]
    #[allow(dead_code)] // any type may carry an apiKey
    pub(crate) secret_type: Option<String>,
    /// `data`: base64 values.
    #[serde(default)]
    pub(crate) data: BTreeMap<String, RawSecretValue>,
    /// `stringData`: plain values; win over `data` for the same key, as in Kubernetes.
    #[serde(default)]
    pub(crate) string_data: BTreeMap<String, RawSecretValue>,
    /// `immutable`.
    #[serde(default)]
    #[allow(dead_code)] // meaningless for a file
    pub(crate) immutable: Option<bool>,
}

/// A core `v1` `ConfigMap` (CA bundles for `caCertificateRefs`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConfigMapResource {
    /// `apiVersion` (`v1`).
    #[allow(dead_code)] // checked on the raw document before typed deserialisation
    pub(crate) api_version: String,
    /// `kind` (`ConfigMap`).
    #[allow(dead_code)] // checked on the raw document before typed deserialisation
    pub(crate) kind: String,
    /// `metadata`.
    pub(crate) metadata: ObjectMeta,
    /// `data`.
    #[serde(default)]
    pub(crate) data: BTreeMap<String, String>,
    /// `binaryData`: not used for PEM.
    #[serde(default)]
    #[allow(dead_code)] // PEM bundles live in `data`
    pub(crate) binary_data: Option<Value>,
    /// `immutable`.
    #[serde(default)]
    #[allow(dead_code)] // meaningless for a file
    pub(crate) immutable: Option<bool>,
}
