//! Serde mirrors of the YAML resources, spelled exactly as Envoy AI Gateway, Envoy Gateway, Gateway API and
//! core Kubernetes spell them.
//!
//! Switchyard promises to read Envoy AI Gateway YAML unchanged, so these structs follow the upstream Go
//! types (`json:"…"` names, optionality) for every field the loader reads. Fields upstream defines that
//! Switchyard ignores or refuses are handled by `load/fields.rs` before these structs see the document
//! (warned and dropped, or an error), and a test there proves that every other upstream field is modelled
//! here. Every struct denies unknown fields as a second line behind that check, so a typo inside a `spec`
//! (`numRetry`, `prority`) is an error with its field path. Sub-objects read but never interpreted (OIDC
//! settings, Azure/GCP credentials…) are opaque [`serde_json::Value`]s so any upstream shape is accepted.
//! A document's `apiVersion`/`kind`/`metadata` header is [`TypeMeta`], read before any of these.
//!
//! Nothing here is resolved or defaulted: numbers are read as `i64` so the loader can say "must be ≥ 0"
//! with the field path instead of serde's "expected u32", and defaults live in the loader next to the
//! Envoy semantics they implement.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::duration::GoDuration;

/// `aigateway.envoyproxy.io` (AIGatewayRoute, AIServiceBackend, BackendSecurityPolicy).
pub(crate) const GROUP_AI_GATEWAY: &str = "aigateway.envoyproxy.io";
/// `gateway.envoyproxy.io` (Backend, BackendTrafficPolicy).
pub(crate) const GROUP_ENVOY_GATEWAY: &str = "gateway.envoyproxy.io";
/// `gateway.networking.k8s.io` (Gateway, BackendTLSPolicy, HTTPRoute).
pub(crate) const GROUP_GATEWAY_API: &str = "gateway.networking.k8s.io";

// ---------------------------------------------------------------------------------------------------------
// Envelope

/// The header every document shares — `apiVersion`, `kind` and the part of `metadata` that identifies it —
/// read once from the raw document before its body is typed, because every later error needs the
/// identity. Other metadata (labels, annotations, uid, managedFields…) never changes routing and is
/// dropped with the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TypeMeta {
    /// `apiVersion`.
    pub(crate) api_version: String,
    /// `kind`.
    pub(crate) kind: String,
    /// `metadata.name`; `None` when missing (an error only for kinds Switchyard reads).
    pub(crate) name: Option<String>,
    /// `metadata.namespace`, or the default when missing or empty.
    pub(crate) namespace: String,
    /// `metadata.creationTimestamp` (RFC 3339), as exported resources carry it.
    pub(crate) creation_timestamp: Option<String>,
    /// `metadata.annotations` with string values: where Switchyard's extensions live, so the YAML stays
    /// valid upstream (e.g. [`FIRST_TOKEN_TIMEOUT_ANNOTATION`]).
    pub(crate) annotations: std::collections::BTreeMap<String, String>,
}

/// The BackendTrafficPolicy annotation that bounds each attempt until its first content (a documented
/// extension; Envoy has no such timeout).
pub(crate) const FIRST_TOKEN_TIMEOUT_ANNOTATION: &str = "switchyard.io/first-token-timeout";

/// The BackendTrafficPolicy annotation that switches on rate-limit cooldowns (a documented extension):
/// its value is the longest cooldown a `Retry-After` may ask for.
pub(crate) const RATE_LIMIT_COOLDOWN_ANNOTATION: &str = "switchyard.io/rate-limit-cooldown";

impl TypeMeta {
    /// Takes the header out of `doc`, leaving only the body; `Err((field, why))` when `kind` or
    /// `apiVersion` is missing or not a string.
    pub(crate) fn take(
        doc: &mut Map<String, Value>,
        default_namespace: &str,
    ) -> Result<TypeMeta, (&'static str, &'static str)> {
        const NOT_A_STRING: &str = "missing or not a string";
        let kind = match doc.remove("kind") {
            Some(Value::String(k)) => k,
            _ => return Err(("kind", NOT_A_STRING)),
        };
        let api_version = match doc.remove("apiVersion") {
            Some(Value::String(v)) => v,
            _ => return Err(("apiVersion", NOT_A_STRING)),
        };
        let meta = doc.remove("metadata");
        let field = |name: &str| {
            meta.as_ref()
                .and_then(|m| m.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Ok(TypeMeta {
            api_version,
            kind,
            name: field("name"),
            namespace: field("namespace")
                .filter(|ns| !ns.is_empty())
                .unwrap_or_else(|| default_namespace.to_owned()),
            creation_timestamp: field("creationTimestamp"),
            annotations: meta
                .as_ref()
                .and_then(|m| m.get("annotations"))
                .and_then(Value::as_object)
                .map(|a| {
                    a.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
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
    /// `prefix` (AIServiceBackend only, v1.0+): the path prefix of an OpenAI- or Anthropic-compatible API.
    #[serde(default)]
    pub(crate) prefix: Option<String>,
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
    /// `streamIdleTimeout` (v1.1): an attempt silent this long is cut (Envoy's `per_try_idle_timeout`).
    #[serde(default)]
    pub(crate) stream_idle_timeout: Option<GoDuration>,
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
    /// `modelNameOverride`: the model this backend is sent instead of the client's.
    #[serde(default)]
    pub(crate) model_name_override: Option<String>,
    /// `headerMutation`: header edits for this rule's requests to this backend.
    #[serde(default)]
    pub(crate) header_mutation: Option<HttpHeaderMutation>,
    /// `bodyMutation`: top-level JSON body edits for this rule's requests to this backend.
    #[serde(default)]
    pub(crate) body_mutation: Option<HttpBodyMutation>,
}

/// `HTTPHeaderMutation` (Envoy AI Gateway; Gateway API's `HTTPHeaderFilter` without `add`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpHeaderMutation {
    /// `set`: overwrite or add.
    #[serde(default)]
    pub(crate) set: Option<Vec<HttpHeaderValue>>,
    /// `remove`: header names, case-insensitive.
    #[serde(default)]
    pub(crate) remove: Option<Vec<String>>,
}

/// One `set` entry of a header mutation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpHeaderValue {
    /// Header name.
    pub(crate) name: String,
    /// Header value.
    pub(crate) value: String,
}

/// `HTTPBodyMutation` (Envoy AI Gateway): top-level JSON members.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpBodyMutation {
    /// `set`: overwrite or add.
    #[serde(default)]
    pub(crate) set: Option<Vec<HttpBodyField>>,
    /// `remove`: top-level member names.
    #[serde(default)]
    pub(crate) remove: Option<Vec<String>>,
}

/// One `set` entry of a body mutation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HttpBodyField {
    /// The top-level member.
    pub(crate) path: String,
    /// Its value: JSON text, or a plain string.
    pub(crate) value: String,
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
    /// `headerMutation`: header edits for every request to this backend.
    #[serde(default)]
    pub(crate) header_mutation: Option<HttpHeaderMutation>,
    /// `bodyMutation`: top-level JSON body edits for every request to this backend.
    #[serde(default)]
    pub(crate) body_mutation: Option<HttpBodyMutation>,
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
    /// `azureCredentials` (client secret or OIDC federation).
    #[serde(default)]
    pub(crate) azure_credentials: Option<AzureCredentials>,
    /// `gcpCredentials` (service-account key file, workload identity federation, or neither: ADC).
    #[serde(default)]
    pub(crate) gcp_credentials: Option<GcpCredentials>,
}

/// `BackendSecurityPolicyGCPCredentials`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GcpCredentials {
    /// `projectName`.
    #[serde(default)]
    pub(crate) project_name: String,
    /// `region`.
    #[serde(default)]
    pub(crate) region: String,
    /// `credentialsFile`.
    #[serde(default)]
    pub(crate) credentials_file: Option<SecretRefHolder>,
    /// `workloadIdentityFederationConfig`.
    #[serde(default)]
    pub(crate) workload_identity_federation_config: Option<GcpWorkloadIdentityFederationConfig>,
}

/// `GCPWorkloadIdentityFederationConfig`: an OIDC token exchanged at Google STS for the pool's provider.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GcpWorkloadIdentityFederationConfig {
    /// `projectID`: the project in the STS audience.
    #[serde(default, rename = "projectID")]
    pub(crate) project_id: String,
    /// `workloadIdentityProviderName`.
    #[serde(default, rename = "workloadIdentityProviderName")]
    pub(crate) workload_identity_provider_name: String,
    /// `workloadIdentityPoolName`.
    #[serde(default, rename = "workloadIdentityPoolName")]
    pub(crate) workload_identity_pool_name: String,
    /// `oidcExchangeToken` (`GCPOIDCExchangeToken`: the generic OIDC fields inline).
    #[serde(rename = "oidcExchangeToken")]
    pub(crate) oidc_exchange_token: OidcExchangeToken,
    /// `serviceAccountImpersonation`.
    #[serde(default, rename = "serviceAccountImpersonation")]
    pub(crate) service_account_impersonation: Option<GcpServiceAccountImpersonation>,
}

/// `GCPServiceAccountImpersonationConfig`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GcpServiceAccountImpersonation {
    /// `serviceAccountName`: `{name}@{projectName}.iam.gserviceaccount.com` is impersonated.
    #[serde(default, rename = "serviceAccountName")]
    pub(crate) service_account_name: String,
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
pub(crate) struct AwsCredentials {
    /// `region`.
    pub(crate) region: String,
    /// `credentialsFile {secretRef, profile}`.
    #[serde(default)]
    pub(crate) credentials_file: Option<AwsCredentialsFile>,
    /// `oidcExchangeToken`.
    #[serde(default)]
    pub(crate) oidc_exchange_token: Option<OidcExchangeToken>,
}

/// `BackendSecurityPolicyAzureCredentials`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AzureCredentials {
    /// `clientID`.
    #[serde(rename = "clientID")]
    pub(crate) client_id: String,
    /// `tenantID`.
    #[serde(rename = "tenantID")]
    pub(crate) tenant_id: String,
    /// `clientSecretRef` (key `client-secret`).
    #[serde(default, rename = "clientSecretRef")]
    pub(crate) client_secret_ref: Option<SecretObjectRef>,
    /// `oidcExchangeToken`.
    #[serde(default, rename = "oidcExchangeToken")]
    pub(crate) oidc_exchange_token: Option<OidcExchangeToken>,
}

/// `BackendSecurityPolicyOIDC` (plus `awsRoleArn` under `awsCredentials`). `aud` and the browser-flow
/// fields of the OIDC type are removed before this parse (config/load/fields.rs says why).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct OidcExchangeToken {
    /// `oidc`: Envoy Gateway's OIDC type.
    pub(crate) oidc: Oidc,
    /// `grantType` (only `client_credentials`, the default, is meaningful for a machine exchange).
    #[serde(default)]
    pub(crate) grant_type: Option<String>,
    /// `awsRoleArn` (AWS only).
    #[serde(default)]
    pub(crate) aws_role_arn: Option<String>,
}

/// Envoy Gateway's `OIDC`: the fields a client-credentials exchange uses.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Oidc {
    /// `provider {issuer, tokenEndpoint}`.
    pub(crate) provider: OidcProvider,
    /// `clientID`.
    #[serde(default, rename = "clientID")]
    pub(crate) client_id: Option<String>,
    /// `clientIDRef` (key `client-id`).
    #[serde(default, rename = "clientIDRef")]
    pub(crate) client_id_ref: Option<SecretObjectRef>,
    /// `clientSecret` (key `client-secret`).
    pub(crate) client_secret: SecretObjectRef,
    /// `scopes`.
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
}

/// Envoy Gateway's `OIDCProvider`: issuer and token endpoint.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct OidcProvider {
    /// `issuer`.
    pub(crate) issuer: String,
    /// `tokenEndpoint`.
    #[serde(default)]
    pub(crate) token_endpoint: Option<String>,
}

/// `AWSCredentialsFile`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
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
    /// `tls`.
    #[serde(default)]
    pub(crate) tls: Option<BackendTlsSettings>,
}

/// `BackendEndpoint`: exactly one of `fqdn`, `ip`, `unix`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct BackendEndpoint {
    /// `fqdn`.
    #[serde(default)]
    pub(crate) fqdn: Option<FqdnEndpoint>,
    /// `ip`.
    #[serde(default)]
    pub(crate) ip: Option<IpEndpoint>,
    /// `unix`.
    #[serde(default)]
    pub(crate) unix: Option<UnixSocket>,
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
}

/// `CircuitBreaker`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CircuitBreaker {
    /// `maxParallelRetries` (default 1024): honoured.
    #[serde(default)]
    pub(crate) max_parallel_retries: Option<i64>,
}

/// `Timeout`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Timeout {
    /// `tcp`.
    #[serde(default)]
    pub(crate) tcp: Option<TcpTimeout>,
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
    /// `infrastructure`: Kubernetes deployment hints.
    #[serde(default)]
    #[allow(dead_code)] // accepted: deployment hints have no meaning outside Kubernetes
    pub(crate) infrastructure: Option<Value>,
}

/// `Listener`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Listener {
    /// `name`.
    pub(crate) name: String,
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

/// The body of a core `v1` `Secret` (after its [`TypeMeta`] header). Values are only ever held as [`RawSecretValue`] (redacted `Debug`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct SecretResource {
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

/// The body of a core `v1` `ConfigMap` (CA bundles for `caCertificateRefs`), after its header.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ConfigMapResource {
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
