//! Pass 2 for routes: an AIGatewayRoute's rules, header matches and backendRefs, following each ref to its
//! AIServiceBackend (schema, security policy) or, as on the seed page, straight to a Backend whose schema
//! is inferred from a well-known provider host.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::super::error::{ConfigError, ResourceId};
use super::super::model::{
    Backend, BackendAuth, BackendRef, Endpoint, HeaderMatch, HeaderMatchValue, Route, Rule,
    RuleMatch, Schema, SchemaName, SchemaSource, TrafficPolicy,
};
use super::super::resources::{
    AIGatewayRouteRuleBackendRef, AIGatewayRouteSpec, AIServiceBackendSpec,
    BackendSecurityPolicySpec, BackendSpec, HttpHeaderMatch, VersionedApiSchema, GROUP_AI_GATEWAY,
    GROUP_ENVOY_GATEWAY,
};
use super::backend::resolve_backend_resource;
use super::mutation;
use super::security::resolve_security_policy;
use super::{find, Loaded, Store, Warnings};

/// `rules[].timeouts.request` when unset: Envoy AI Gateway's 60 s (not Envoy Gateway's 15 s).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// `modelsOwnedBy` when unset, as in Envoy AI Gateway.
const DEFAULT_MODELS_OWNED_BY: &str = "Envoy AI Gateway";

/// Mutable state shared while resolving routes.
pub(super) struct RouteCtx<'a> {
    pub(super) store: &'a Store,
    pub(super) warnings: &'a mut Warnings,
    pub(super) backends: &'a mut BTreeMap<String, Backend>,
    pub(super) used_ai_backends: &'a mut HashSet<String>,
}

impl<'a> RouteCtx<'a> {
    pub(super) fn resolve_route(
        &mut self,
        route: &Loaded<AIGatewayRouteSpec>,
    ) -> Result<Route, ConfigError> {
        let id = &route.id;
        let spec = &route.spec;
        let input_schema = match &spec.schema {
            Some(s) => parse_schema(id, "spec.schema", s)?,
            // Newer Envoy AI Gateway dropped the field: clients always speak OpenAI.
            None => Schema {
                name: SchemaName::OpenAI,
                version: None,
            },
        };
        if input_schema.name != SchemaName::OpenAI {
            return Err(id.error(
                "spec.schema.name",
                format!(
                    "input schema {} is not supported: Switchyard speaks the OpenAI API to clients",
                    input_schema.name
                ),
            ));
        }
        if spec.rules.is_empty() {
            return Err(id.error("spec.rules", "at least one rule is required"));
        }
        let mut rules = Vec::with_capacity(spec.rules.len());
        for (i, rule) in spec.rules.iter().enumerate() {
            let field = format!("spec.rules[{i}]");
            let mut matches = Vec::with_capacity(rule.matches.len());
            for (j, m) in rule.matches.iter().enumerate() {
                let mut headers = Vec::with_capacity(m.headers.len());
                for (k, h) in m.headers.iter().enumerate() {
                    headers.push(resolve_header_match(
                        id,
                        &format!("{field}.matches[{j}].headers[{k}]"),
                        h,
                    )?);
                }
                matches.push(RuleMatch { headers });
            }
            if rule.backend_refs.is_empty() {
                return Err(id.error(
                    format!("{field}.backendRefs"),
                    "at least one backendRef is required",
                ));
            }
            let mut backend_refs = Vec::with_capacity(rule.backend_refs.len());
            for (j, b) in rule.backend_refs.iter().enumerate() {
                backend_refs.push(self.resolve_backend_ref(
                    route,
                    &input_schema,
                    &format!("{field}.backendRefs[{j}]"),
                    b,
                )?);
            }
            if backend_refs.iter().all(|b| b.weight == 0) {
                self.warnings.push(id.warning(
                    format!("{field}.backendRefs"),
                    "every backend has weight 0: this rule can never send a request",
                ));
            }
            let mut request_timeout = DEFAULT_REQUEST_TIMEOUT;
            if let Some(t) = &rule.timeouts {
                if let Some(r) = t.request {
                    if r.0.is_zero() {
                        return Err(id.error(
                            format!("{field}.timeouts.request"),
                            "0s (no timeout) is not supported: give the route a finite timeout",
                        ));
                    }
                    request_timeout = r.0;
                }
                if t.backend_request.is_some() {
                    self.warnings.push(id.warning(
                        format!("{field}.timeouts.backendRequest"),
                        "ignored: the per-attempt timeout is BackendTrafficPolicy retry.perRetry.timeout",
                    ));
                }
            }
            let models_created_at = match &rule.models_created_at {
                Some(v) => Some(unix_seconds(id, &format!("{field}.modelsCreatedAt"), v)?),
                None => match &route.created {
                    Some(ts) => Some(unix_seconds(
                        id,
                        "metadata.creationTimestamp",
                        &serde_json::Value::String(ts.clone()),
                    )?),
                    None => None,
                },
            };
            let stream_idle_timeout = match rule.stream_idle_timeout {
                Some(d) if d.0.is_zero() => {
                    return Err(id.error(
                        format!("{field}.streamIdleTimeout"),
                        "must be greater than 0",
                    ))
                }
                d => d.map(|d| d.0),
            };
            rules.push(Rule {
                matches,
                backend_refs,
                request_timeout,
                stream_idle_timeout,
                models_owned_by: rule
                    .models_owned_by
                    .clone()
                    .unwrap_or_else(|| DEFAULT_MODELS_OWNED_BY.to_owned()),
                models_created_at,
            });
        }
        Ok(Route {
            name: id.name.clone(),
            namespace: id.namespace.clone(),
            input_schema,
            rules,
            traffic: TrafficPolicy::default(),
            traffic_policy_name: None,
        })
    }

    fn resolve_backend_ref(
        &mut self,
        route: &Loaded<AIGatewayRouteSpec>,
        input_schema: &Schema,
        field: &str,
        b: &AIGatewayRouteRuleBackendRef,
    ) -> Result<BackendRef, ConfigError> {
        let id = &route.id;
        let kind = b.kind.as_deref();
        if let Some(k) = kind {
            if k != "AIServiceBackend" && k != "Backend" {
                return Err(id.error(
                    format!("{field}.kind"),
                    format!(
                        "{k} backends are not supported (expected AIServiceBackend, or a Backend)"
                    ),
                ));
            }
        }
        if let Some(g) = &b.group {
            if g != GROUP_AI_GATEWAY && g != GROUP_ENVOY_GATEWAY {
                return Err(id.error(
                    format!("{field}.group"),
                    format!(
                        "group {g} is not supported (InferencePool backends are not implemented)"
                    ),
                ));
            }
        }
        let priority = non_negative_u32(id, &format!("{field}.priority"), b.priority.unwrap_or(0))?;
        let weight = non_negative_u32(id, &format!("{field}.weight"), b.weight.unwrap_or(1))?;
        // Envoy AI Gateway: an empty override means none.
        let model_name_override = b.model_name_override.clone().filter(|m| !m.is_empty());
        let namespace = b.namespace.as_deref().unwrap_or(&id.namespace);

        // An AIServiceBackend of that name is what Envoy AI Gateway means; a Backend of that name is what
        // the seed page does. The AIServiceBackend wins when both exist, as upstream would only see it.
        let ai_backend = if kind == Some("Backend") {
            None
        } else {
            find(&self.store.ai_backends, namespace, &b.name)
        };
        let route_level = mutation::Level {
            id,
            at: field.to_owned(),
            headers: b.header_mutation.as_ref(),
            body: b.body_mutation.as_ref(),
        };
        if let Some(asb) = ai_backend {
            self.used_ai_backends.insert(asb.id.key());
            let backend_level = mutation::Level {
                id: &asb.id,
                at: "spec".to_owned(),
                headers: asb.spec.header_mutation.as_ref(),
                body: asb.spec.body_mutation.as_ref(),
            };
            let mutation = mutation::resolve(Some(backend_level), route_level, self.warnings)?;
            let schema = parse_schema(&asb.id, "spec.schema", &asb.spec.schema)?;
            let backend = self.backend_of_ai_backend(asb)?;
            let auth = self.auth_of_ai_backend(asb)?;
            let key = self.resolve_backend(backend, auth)?;
            let gcp_schema = matches!(
                schema.name,
                SchemaName::GcpAnthropic | SchemaName::GcpVertexAI
            );
            if gcp_schema
                && !matches!(
                    self.backends.get(&key).and_then(|b| b.auth.as_ref()),
                    Some(BackendAuth::GcpCredentials { .. } | BackendAuth::Unavailable { .. })
                )
            {
                self.warnings.push(asb.id.warning(
                    "spec.schema.name",
                    format!(
                        "schema {} needs a GCPCredentials BackendSecurityPolicy (its projectName and region are in every Vertex AI path): requests to it are refused (422) without one",
                        schema.name
                    ),
                ));
            }
            if let Some((inferred, host)) = self.backends.get(&key).and_then(infer_from_backend) {
                // Claude on Bedrock (AWSAnthropic) lives on the same runtime host as Converse.
                let same_host = inferred == SchemaName::AwsBedrock && schema.name.is_aws();
                if inferred != schema.name && !same_host {
                    self.warnings.push(asb.id.warning(
                        "spec.schema.name",
                        format!(
                            "schema {} but the backend host {host} looks like {inferred}",
                            schema.name
                        ),
                    ));
                }
            }
            return Ok(BackendRef {
                ref_name: b.name.clone(),
                backend: key,
                priority,
                weight,
                schema,
                schema_source: SchemaSource::AiServiceBackend,
                model_name_override,
                mutation,
            });
        }
        let Some(backend) = find(&self.store.backends, namespace, &b.name) else {
            return Err(id.error(
                format!("{field}.name"),
                format!(
                    "no AIServiceBackend or Backend named {:?} in namespace {namespace}",
                    b.name
                ),
            ));
        };
        let key = self.resolve_backend(backend, None)?;
        let (schema, schema_source) = match self.backends.get(&key).and_then(infer_from_backend) {
            Some((name, host)) => {
                self.warnings.push(id.warning(
                    format!("{field}.name"),
                    format!(
                        "Backend {key} is referenced directly: schema {name} inferred from host {host} (an AIServiceBackend would state it)"
                    ),
                ));
                (
                    Schema {
                        name,
                        version: None,
                    },
                    SchemaSource::ProviderHost,
                )
            }
            None => (input_schema.clone(), SchemaSource::RouteInput),
        };
        let mutation = mutation::resolve(None, route_level, self.warnings)?;
        Ok(BackendRef {
            ref_name: b.name.clone(),
            backend: key,
            priority,
            weight,
            schema,
            schema_source,
            model_name_override,
            mutation,
        })
    }

    /// `AIServiceBackend.spec.backendRef` → the Backend resource.
    fn backend_of_ai_backend(
        &mut self,
        asb: &Loaded<AIServiceBackendSpec>,
    ) -> Result<&'a Loaded<BackendSpec>, ConfigError> {
        let store: &'a Store = self.store;
        let r = &asb.spec.backend_ref;
        match r.kind.as_deref() {
            Some("Backend") => {}
            None => self.warnings.push(asb.id.warning(
                "spec.backendRef.kind",
                "unset (Gateway API's default is Service); treated as an Envoy Gateway Backend",
            )),
            Some(other) => {
                return Err(asb.id.error(
                    "spec.backendRef.kind",
                    format!("{other} is not supported: point backendRef at an Envoy Gateway Backend (kind: Backend, group: gateway.envoyproxy.io)"),
                ))
            }
        }
        if let Some(g) = &r.group {
            if g != GROUP_ENVOY_GATEWAY {
                return Err(asb.id.error(
                    "spec.backendRef.group",
                    format!("group {g:?} is not supported (expected {GROUP_ENVOY_GATEWAY})"),
                ));
            }
        }
        if r.port.is_some() {
            self.warnings.push(asb.id.warning(
                "spec.backendRef.port",
                "ignored: a Backend's endpoints carry their own ports",
            ));
        }
        let ns = r.namespace.as_deref().unwrap_or(&asb.id.namespace);
        find(&store.backends, ns, &r.name).ok_or_else(|| {
            asb.id.error(
                "spec.backendRef.name",
                format!("no Backend named {:?} in namespace {ns}", r.name),
            )
        })
    }

    /// The BackendSecurityPolicy of an AIServiceBackend (by its `backendSecurityPolicyRef`, or a policy
    /// whose `targetRefs` name it), resolved to credentials.
    fn auth_of_ai_backend(
        &mut self,
        asb: &Loaded<AIServiceBackendSpec>,
    ) -> Result<Option<BackendAuth>, ConfigError> {
        let mut policies: Vec<&Loaded<BackendSecurityPolicySpec>> = Vec::new();
        if let Some(r) = &asb.spec.backend_security_policy_ref {
            if let Some(k) = r.kind.as_deref().filter(|k| *k != "BackendSecurityPolicy") {
                return Err(asb.id.error(
                    "spec.backendSecurityPolicyRef.kind",
                    format!("{k} is not a BackendSecurityPolicy"),
                ));
            }
            let p = find(&self.store.security_policies, &asb.id.namespace, &r.name).ok_or_else(
                || {
                    asb.id.error(
                        "spec.backendSecurityPolicyRef.name",
                        format!(
                            "no BackendSecurityPolicy named {:?} in namespace {}",
                            r.name, asb.id.namespace
                        ),
                    )
                },
            )?;
            policies.push(p);
        }
        for p in &self.store.security_policies {
            let targets_it = p.id.namespace == asb.id.namespace
                && p.spec.target_refs.iter().flatten().any(|t| {
                    t.name == asb.id.name
                        && t.kind.as_deref().unwrap_or("AIServiceBackend") == "AIServiceBackend"
                });
            if targets_it && !policies.iter().any(|q| q.id == p.id) {
                policies.push(p);
            }
        }
        match policies.as_slice() {
            [] => Ok(None),
            [p] => resolve_security_policy(self.store, p, self.warnings).map(Some),
            [a, b, ..] => Err(asb.id.error(
                "metadata.name",
                format!(
                    "more than one BackendSecurityPolicy applies ({} and {}); attach exactly one",
                    a.id.key(),
                    b.id.key()
                ),
            )),
        }
    }

    /// Resolves a Backend once (endpoints, TLS) and records it in `backends`; returns its key.
    fn resolve_backend(
        &mut self,
        backend: &Loaded<BackendSpec>,
        auth: Option<BackendAuth>,
    ) -> Result<String, ConfigError> {
        let key = backend.id.key();
        if let Some(existing) = self.backends.get_mut(&key) {
            // Credentials belong to the Backend in the model; two AIServiceBackends may share a Backend
            // only if they agree on them.
            match (&existing.auth, auth) {
                (_, None) => {}
                (None, Some(a)) => existing.auth = Some(a),
                (Some(old), Some(new)) => {
                    if auth_policy(old) != auth_policy(&new) {
                        return Err(backend.id.error(
                            "metadata.name",
                            format!(
                                "used through AIServiceBackends with different BackendSecurityPolicies ({} and {}); credentials are per Backend, so give each its own Backend",
                                auth_policy(old),
                                auth_policy(&new)
                            ),
                        ));
                    }
                }
            }
            return Ok(key);
        }
        let resolved = resolve_backend_resource(self.store, backend, auth, self.warnings)?;
        self.backends.insert(key.clone(), resolved);
        Ok(key)
    }
}

pub(super) fn auth_policy(a: &BackendAuth) -> &str {
    a.policy()
}

/// An RFC 3339 timestamp (`metav1.Time`, e.g. `2025-05-01T00:00:00Z`) → Unix seconds. YAML may hand it
/// over as a string or, unquoted, already as a timestamp string; anything else is an error.
pub(super) fn unix_seconds(
    id: &ResourceId,
    field: &str,
    v: &serde_json::Value,
) -> Result<u64, ConfigError> {
    use time::format_description::well_known::Rfc3339;
    let bad = || {
        id.error(
            field,
            format!("{v} is not an RFC 3339 time (e.g. 2025-05-01T00:00:00Z)"),
        )
    };
    let s = v.as_str().ok_or_else(bad)?;
    let t = time::OffsetDateTime::parse(s, &Rfc3339).map_err(|_| bad())?;
    u64::try_from(t.unix_timestamp()).map_err(|_| bad())
}

pub(super) fn non_negative_u32(id: &ResourceId, field: &str, v: i64) -> Result<u32, ConfigError> {
    u32::try_from(v).map_err(|_| {
        let why = if v < 0 {
            "must not be negative"
        } else {
            "is too large"
        };
        id.error(field, format!("{v} {why} (0..={})", u32::MAX))
    })
}

/// `schema.name` → [`Schema`].
pub(super) fn parse_schema(
    id: &ResourceId,
    field: &str,
    s: &VersionedApiSchema,
) -> Result<Schema, ConfigError> {
    let name = match s.name.as_str() {
        "OpenAI" => SchemaName::OpenAI,
        "AWSBedrock" => SchemaName::AwsBedrock,
        "AzureOpenAI" => SchemaName::AzureOpenAI,
        "Anthropic" => SchemaName::Anthropic,
        "AWSAnthropic" => SchemaName::AwsAnthropic,
        "Cohere" => SchemaName::Cohere,
        "GCPAnthropic" => SchemaName::GcpAnthropic,
        "GCPVertexAI" => SchemaName::GcpVertexAI,
        other => {
            return Err(id.error(
                format!("{field}.name"),
                format!("schema {other:?} is not supported (expected OpenAI, AWSBedrock, AzureOpenAI, Anthropic, AWSAnthropic, GCPAnthropic, GCPVertexAI or Cohere)"),
            ))
        }
    };
    if let Some(prefix) = &s.prefix {
        // Envoy AI Gateway's default prefix is `v1`, which is where Switchyard sends OpenAI and Anthropic
        // requests; another prefix (Gemini's `v1beta/openai`) would need the path rewritten, and sending
        // to /v1 instead would only ever answer 404.
        if prefix.trim_matches('/') != "v1" {
            return Err(id.error(
                format!("{field}.prefix"),
                format!("{prefix:?} is not supported yet: Switchyard sends requests under /v1 (unset it or use v1)"),
            ));
        }
    }
    Ok(Schema {
        name,
        version: s.version.as_ref().map(|v| v.0.clone()),
    })
}

/// The provider a well-known API host belongs to, so a Backend referenced directly (as on the seed page)
/// still gets the right translation.
pub(crate) fn infer_schema_from_host(host: &str) -> Option<SchemaName> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if host.starts_with("bedrock-runtime.")
        && (host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn"))
    {
        Some(SchemaName::AwsBedrock)
    } else if host.ends_with(".openai.azure.com") {
        Some(SchemaName::AzureOpenAI)
    } else if host == "api.anthropic.com" {
        Some(SchemaName::Anthropic)
    } else {
        None
    }
}

/// The inferred schema of a resolved Backend and the host it was inferred from (first matching endpoint).
pub(super) fn infer_from_backend(b: &Backend) -> Option<(SchemaName, String)> {
    b.endpoints.iter().find_map(|e| match e {
        Endpoint::Fqdn { hostname, .. } => {
            infer_schema_from_host(hostname).map(|s| (s, hostname.clone()))
        }
        Endpoint::Ip { .. } => None,
    })
}

pub(super) fn resolve_header_match(
    id: &ResourceId,
    field: &str,
    h: &HttpHeaderMatch,
) -> Result<HeaderMatch, ConfigError> {
    let name = h.name.to_ascii_lowercase();
    if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(id.error(
            format!("{field}.name"),
            format!("{:?} is not a valid header name", h.name),
        ));
    }
    let value = match h.match_type.as_deref().unwrap_or("Exact") {
        "Exact" => HeaderMatchValue::Exact(h.value.0.clone()),
        "RegularExpression" => {
            // Gateway API: the expression must match the whole value, so anchor it.
            let re = regex::Regex::new(&format!("^(?:{})$", h.value.0)).map_err(|e| {
                id.error(
                    format!("{field}.value"),
                    format!("invalid regular expression {:?}: {e}", h.value.0),
                )
            })?;
            HeaderMatchValue::RegularExpression(re)
        }
        other => {
            return Err(id.error(
                format!("{field}.type"),
                format!(
                    "{other:?} is not a header match type (expected Exact or RegularExpression)"
                ),
            ))
        }
    };
    Ok(HeaderMatch { name, value })
}
