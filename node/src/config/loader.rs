//! Loading: YAML files in, a resolved and validated [`Config`] out.
//!
//! Loading happens in two passes because Kubernetes-style resources reference each other by name in any
//! order and across files: first every document of every file is parsed and type-checked on its own
//! (`apiVersion`/`kind` checked, the body deserialised with field-path tracking), then references are
//! followed — route → AIServiceBackend → Backend → BackendTLSPolicy / BackendSecurityPolicy → Secret, and
//! BackendTrafficPolicy → route — and Envoy's defaults are filled in. Everything the rest of the node
//! needs comes out as [`super::model`] types; nothing downstream ever sees the raw YAML structs.
//!
//! The loader is pure apart from reading the files: no network, no clock, no environment.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{document_error, ConfigError, ResourceId};
use super::model::{
    ActiveHealthConfig, AwsKeys, Backend, BackendAuth, BackendRef, Config, Endpoint, HeaderMatch,
    HeaderMatchValue, PassiveHealthConfig, RetryConfig, RetryTrigger, Route, Rule, RuleMatch,
    Schema, SchemaName, SchemaSource, SecretString, TrafficPolicy, UpstreamTls,
};
use super::resources::{
    AIGatewayRouteRuleBackendRef, AIGatewayRouteSpec, AIServiceBackendSpec,
    BackendSecurityPolicySpec, BackendSpec, BackendTlsPolicySpec, BackendTrafficPolicySpec,
    ConfigMapResource, GatewaySpec, HttpHeaderMatch, LocalObjectRef, PolicyTargetRef, Resource,
    SecretObjectRef, SecretResource, VersionedApiSchema, GROUP_AI_GATEWAY, GROUP_ENVOY_GATEWAY,
    GROUP_GATEWAY_API,
};

/// Namespace of resources that do not say (as `kubectl apply` would do with no context namespace).
const DEFAULT_NAMESPACE: &str = "default";
/// `rules[].timeouts.request` when unset: Envoy AI Gateway's 60 s (not Envoy Gateway's 15 s).
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// `modelsOwnedBy` when unset, as in Envoy AI Gateway.
const DEFAULT_MODELS_OWNED_BY: &str = "Envoy AI Gateway";
/// Upper bound on `numRetries`: Envoy has none, but a larger number is a typo, not a policy, and would
/// let one request hammer every provider for the whole route timeout.
const MAX_NUM_RETRIES: i64 = 100;
/// Key of the API key in the Secret an `apiKey.secretRef` names (Envoy AI Gateway's convention).
const API_KEY_SECRET_KEY: &str = "apiKey";
/// Key of the CA bundle in the ConfigMap/Secret a `caCertificateRefs` entry names (Gateway API).
const CA_CERT_KEY: &str = "ca.crt";

/// Loads a configuration from a file, or from every `*.yaml` / `*.yml` file of a directory (not
/// recursive) in sorted order, resolves every reference and validates the result.
///
/// Unknown kinds are skipped with a warning; unknown fields inside a known kind, dangling references and
/// invalid values are errors naming the file, the resource and the field path.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let files = collect_files(path)?;
    let mut store = Store::default();
    for file in &files {
        let text = fs::read_to_string(file).map_err(|source| ConfigError::Io {
            path: file.clone(),
            source,
        })?;
        parse_file(file, &text, &mut store)?;
    }
    resolve(files, store)
}

/// The files to read: the path itself, or the YAML files of a directory in sorted order (so the load
/// order, and with it the route order, does not depend on the file system).
fn collect_files(path: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let io = |source| ConfigError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = fs::metadata(path).map_err(io)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        let p = entry.path();
        let is_yaml = matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml") | Some("yml")
        );
        if is_yaml && p.is_file() {
            files.push(p);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(ConfigError::EmptyDirectory {
            path: path.to_path_buf(),
        });
    }
    Ok(files)
}

// ---------------------------------------------------------------------------------------------------------
// Pass 1: documents → typed resources

/// A typed resource plus where it came from.
struct Loaded<T> {
    id: ResourceId,
    spec: T,
}

/// Every resource read so far, by kind, in load order.
#[derive(Default)]
struct Store {
    routes: Vec<Loaded<AIGatewayRouteSpec>>,
    ai_backends: Vec<Loaded<AIServiceBackendSpec>>,
    security_policies: Vec<Loaded<BackendSecurityPolicySpec>>,
    backends: Vec<Loaded<BackendSpec>>,
    traffic_policies: Vec<Loaded<BackendTrafficPolicySpec>>,
    tls_policies: Vec<Loaded<BackendTlsPolicySpec>>,
    secrets: Vec<Loaded<SecretResource>>,
    config_maps: Vec<Loaded<ConfigMapResource>>,
    gateways: Vec<Loaded<GatewaySpec>>,
    /// `(kind, namespace, name)` seen, to refuse duplicates (which one would win is not obvious).
    seen: HashMap<(String, String, String), PathBuf>,
    warnings: Vec<String>,
}

/// The kinds this node reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    AIGatewayRoute,
    AIServiceBackend,
    BackendSecurityPolicy,
    Backend,
    BackendTrafficPolicy,
    BackendTLSPolicy,
    Gateway,
    Secret,
    ConfigMap,
}

impl Kind {
    /// The kind for a `kind:` string, with its API group and accepted versions.
    fn lookup(kind: &str) -> Option<(Kind, &'static str, &'static [&'static str])> {
        Some(match kind {
            "AIGatewayRoute" => (Kind::AIGatewayRoute, GROUP_AI_GATEWAY, &["v1alpha1"]),
            "AIServiceBackend" => (Kind::AIServiceBackend, GROUP_AI_GATEWAY, &["v1alpha1"]),
            "BackendSecurityPolicy" => {
                (Kind::BackendSecurityPolicy, GROUP_AI_GATEWAY, &["v1alpha1"])
            }
            "Backend" => (Kind::Backend, GROUP_ENVOY_GATEWAY, &["v1alpha1"]),
            "BackendTrafficPolicy" => (
                Kind::BackendTrafficPolicy,
                GROUP_ENVOY_GATEWAY,
                &["v1alpha1"],
            ),
            "BackendTLSPolicy" => (
                Kind::BackendTLSPolicy,
                GROUP_GATEWAY_API,
                &["v1alpha3", "v1"],
            ),
            "Gateway" => (Kind::Gateway, GROUP_GATEWAY_API, &["v1", "v1beta1"]),
            "Secret" => (Kind::Secret, "", &["v1"]),
            "ConfigMap" => (Kind::ConfigMap, "", &["v1"]),
            _ => return None,
        })
    }
}

/// Parses one file's documents into `store`.
fn parse_file(file: &Path, text: &str, store: &mut Store) -> Result<(), ConfigError> {
    // Snippets are off: a snippet of a Secret document would print the secret.
    let options = serde_saphyr::options! { with_snippet: false };
    let docs: Vec<Value> =
        serde_saphyr::from_multiple_with_options(text, options).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            ConfigError::Yaml {
                file: file.to_path_buf(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
    for (index, doc) in docs.into_iter().enumerate() {
        parse_document(file, index, doc, store)?;
    }
    Ok(())
}

/// Checks one document's `apiVersion`/`kind` and deserialises it into its typed form.
fn parse_document(
    file: &Path,
    index: usize,
    doc: Value,
    store: &mut Store,
) -> Result<(), ConfigError> {
    let obj = match &doc {
        Value::Null => return Ok(()), // an empty document (`---` twice) is not an error
        Value::Object(obj) => obj,
        _ => {
            return Err(document_error(
                file,
                index,
                "(document)",
                "expected a mapping with apiVersion, kind, metadata",
            ))
        }
    };
    let str_field = |name: &str| obj.get(name).and_then(Value::as_str).map(str::to_owned);
    let Some(kind) = str_field("kind") else {
        return Err(document_error(
            file,
            index,
            "kind",
            "missing or not a string",
        ));
    };
    let Some(api_version) = str_field("apiVersion") else {
        return Err(document_error(
            file,
            index,
            "apiVersion",
            "missing or not a string",
        ));
    };
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let namespace = meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
        .filter(|ns| !ns.is_empty())
        .unwrap_or(DEFAULT_NAMESPACE)
        .to_owned();
    let label = match &name {
        Some(n) => format!("{kind}/{namespace}/{n}"),
        None => format!("{kind} (document {})", index + 1),
    };

    let Some((kind_enum, group, versions)) = Kind::lookup(&kind) else {
        store.warnings.push(format!(
            "{}: {label}: kind {kind} ({api_version}) is not read by Switchyard; skipped",
            file.display()
        ));
        return Ok(());
    };
    let (doc_group, doc_version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    if doc_group != group {
        // Same kind name from another API (e.g. an Istio `Gateway`): not ours, so not an error.
        store.warnings.push(format!(
            "{}: {label}: apiVersion {api_version} is not the {kind} Switchyard reads ({}); skipped",
            file.display(),
            expected_api_versions(group, versions)
        ));
        return Ok(());
    }
    let Some(name) = name else {
        return Err(document_error(
            file,
            index,
            "metadata.name",
            "missing or not a string",
        ));
    };
    let id = ResourceId {
        file: file.to_path_buf(),
        kind: kind.clone(),
        namespace,
        name,
    };
    if !versions.contains(&doc_version) {
        return Err(id.error(
            "apiVersion",
            format!(
                "unsupported apiVersion {api_version} (expected {})",
                expected_api_versions(group, versions)
            ),
        ));
    }
    let seen_key = (kind.clone(), id.namespace.clone(), id.name.clone());
    if let Some(first) = store.seen.get(&seen_key) {
        return Err(id.error(
            "metadata.name",
            format!("duplicate {kind}: already defined in {}", first.display()),
        ));
    }
    store.seen.insert(seen_key, file.to_path_buf());

    match kind_enum {
        Kind::AIGatewayRoute => {
            let r: Resource<AIGatewayRouteSpec> = typed(&id, doc, false)?;
            store.routes.push(Loaded { id, spec: r.spec });
        }
        Kind::AIServiceBackend => {
            let r: Resource<AIServiceBackendSpec> = typed(&id, doc, false)?;
            store.ai_backends.push(Loaded { id, spec: r.spec });
        }
        Kind::BackendSecurityPolicy => {
            let r: Resource<BackendSecurityPolicySpec> = typed(&id, doc, false)?;
            store.security_policies.push(Loaded { id, spec: r.spec });
        }
        Kind::Backend => {
            let r: Resource<BackendSpec> = typed(&id, doc, false)?;
            store.backends.push(Loaded { id, spec: r.spec });
        }
        Kind::BackendTrafficPolicy => {
            let r: Resource<BackendTrafficPolicySpec> = typed(&id, doc, false)?;
            store.traffic_policies.push(Loaded { id, spec: r.spec });
        }
        Kind::BackendTLSPolicy => {
            let r: Resource<BackendTlsPolicySpec> = typed(&id, doc, false)?;
            store.tls_policies.push(Loaded { id, spec: r.spec });
        }
        Kind::Gateway => {
            let r: Resource<GatewaySpec> = typed(&id, doc, false)?;
            store.gateways.push(Loaded { id, spec: r.spec });
        }
        Kind::Secret => {
            let r: SecretResource = typed(&id, doc, true)?;
            debug_assert_eq!(r.metadata.name, id.name);
            store.secrets.push(Loaded { id, spec: r });
        }
        Kind::ConfigMap => {
            let r: ConfigMapResource = typed(&id, doc, false)?;
            debug_assert_eq!(r.metadata.name, id.name);
            store.config_maps.push(Loaded { id, spec: r });
        }
    }
    Ok(())
}

fn expected_api_versions(group: &str, versions: &[&str]) -> String {
    versions
        .iter()
        .map(|v| {
            if group.is_empty() {
                (*v).to_owned()
            } else {
                format!("{group}/{v}")
            }
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// Deserialises a whole document with field-path tracking. With `redact`, messages that could quote a
/// value are replaced (only "unknown field"/"missing field" messages, which quote names, are kept).
fn typed<T: DeserializeOwned>(id: &ResourceId, doc: Value, redact: bool) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(doc).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." {
            "(document)".to_owned()
        } else {
            path
        };
        let mut message = e.inner().to_string();
        if redact && !(message.starts_with("unknown field") || message.starts_with("missing field"))
        {
            message = "invalid value (not shown: Secret data)".to_owned();
        }
        id.error(field, message)
    })
}

// ---------------------------------------------------------------------------------------------------------
// Pass 2: references → resolved model

fn find<'a, T>(items: &'a [Loaded<T>], namespace: &str, name: &str) -> Option<&'a Loaded<T>> {
    items
        .iter()
        .find(|l| l.id.namespace == namespace && l.id.name == name)
}

/// Warnings, deduplicated (a Backend shared by two routes should not warn twice).
#[derive(Default)]
struct Warnings(Vec<String>);

impl Warnings {
    fn push(&mut self, w: String) {
        if !self.0.contains(&w) {
            self.0.push(w);
        }
    }
}

fn resolve(sources: Vec<PathBuf>, store: Store) -> Result<Config, ConfigError> {
    let mut warnings = Warnings(store.warnings.clone());
    let gateway_port = resolve_gateway_port(&store, &mut warnings)?;
    let attachments = attach_traffic_policies(&store, &mut warnings)?;

    let mut backends: BTreeMap<String, Backend> = BTreeMap::new();
    let mut used_ai_backends: HashSet<String> = HashSet::new();
    let mut routes = Vec::with_capacity(store.routes.len());
    for route in &store.routes {
        let traffic_src = attachments.get(&route.id.key()).copied();
        let traffic = match traffic_src {
            Some(p) => resolve_traffic_policy(p, &mut warnings)?,
            None => TrafficPolicy::default(),
        };
        let mut ctx = RouteCtx {
            store: &store,
            warnings: &mut warnings,
            backends: &mut backends,
            used_ai_backends: &mut used_ai_backends,
        };
        let mut resolved = ctx.resolve_route(route)?;
        resolved.traffic = traffic;
        resolved.traffic_policy_name = traffic_src.map(|p| p.id.key());
        routes.push(resolved);
    }

    // Resources nobody uses are usually a misspelt reference somewhere else.
    for b in &store.backends {
        if !backends.contains_key(&b.id.key()) {
            warnings.push(b.id.warning("metadata.name", "not referenced by any route; unused"));
        }
    }
    for a in &store.ai_backends {
        if !used_ai_backends.contains(&a.id.key()) {
            warnings.push(a.id.warning("metadata.name", "not referenced by any route; unused"));
        }
    }

    Ok(Config {
        sources,
        gateway_port,
        routes,
        backends,
        warnings: warnings.0,
    })
}

/// `Gateway` → the listener port. A node has one listener, so the first HTTP listener of the first
/// Gateway wins and any other is reported.
fn resolve_gateway_port(
    store: &Store,
    warnings: &mut Warnings,
) -> Result<Option<u16>, ConfigError> {
    let mut port = None;
    for gw in &store.gateways {
        let spec = &gw.spec;
        if spec.addresses.is_some() {
            warnings.push(gw.id.warning(
                "spec.addresses",
                "ignored: the node listens where --listen says",
            ));
        }
        if spec.backend_tls.is_some() {
            warnings.push(gw.id.warning(
                "spec.backendTLS",
                "ignored: client certificates towards backends are not implemented",
            ));
        }
        if spec.listeners.is_empty() {
            return Err(gw
                .id
                .error("spec.listeners", "at least one listener is required"));
        }
        for (i, l) in spec.listeners.iter().enumerate() {
            let field = format!("spec.listeners[{i}]");
            let p = port_u16(l.port).ok_or_else(|| {
                gw.id.error(
                    format!("{field}.port"),
                    format!("port {} is not in 1..=65535", l.port),
                )
            })?;
            if l.tls.is_some() || l.protocol != "HTTP" {
                warnings.push(gw.id.warning(
                    format!("{field}.protocol"),
                    format!(
                        "{} listener served as plain HTTP: terminate TLS in front of Switchyard (the L4 load balancer)",
                        l.protocol
                    ),
                ));
            }
            if port.is_none() {
                port = Some(p);
            } else {
                warnings.push(gw.id.warning(
                    field,
                    format!(
                        "listener {} (port {p}) ignored: a node has one listener",
                        l.name
                    ),
                ));
            }
        }
    }
    Ok(port)
}

fn port_u16(port: i64) -> Option<u16> {
    u16::try_from(port).ok().filter(|p| *p != 0)
}

/// Which BackendTrafficPolicy applies to which route (`namespace/name` → policy).
fn attach_traffic_policies<'s>(
    store: &'s Store,
    warnings: &mut Warnings,
) -> Result<HashMap<String, &'s Loaded<BackendTrafficPolicySpec>>, ConfigError> {
    let mut out: HashMap<String, &Loaded<BackendTrafficPolicySpec>> = HashMap::new();
    for p in &store.traffic_policies {
        let refs = p
            .spec
            .target_ref
            .iter()
            .map(|r| ("spec.targetRef".to_owned(), r))
            .chain(
                p.spec
                    .target_refs
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, r)| (format!("spec.targetRefs[{i}]"), r)),
            );
        if p.spec.target_selectors.is_some() {
            warnings.push(p.id.warning(
                "spec.targetSelectors",
                "ignored: attach the policy by targetRefs (kind HTTPRoute, name = the AIGatewayRoute's name)",
            ));
        }
        let mut attached_any = false;
        for (field, r) in refs {
            let kind = r.kind.as_deref().unwrap_or("");
            match kind {
                // Envoy AI Gateway generates an HTTPRoute named after the AIGatewayRoute; policies target
                // that. Naming the AIGatewayRoute itself is accepted too.
                "HTTPRoute" | "AIGatewayRoute" => {
                    let Some(route) = find(&store.routes, &p.id.namespace, &r.name) else {
                        warnings.push(p.id.warning(
                            &field,
                            format!(
                                "targets {kind} {}/{} but no AIGatewayRoute of that name is loaded; ignored",
                                p.id.namespace, r.name
                            ),
                        ));
                        continue;
                    };
                    let key = route.id.key();
                    if let Some(prev) = out.get(&key) {
                        if prev.id != p.id {
                            return Err(p.id.error(
                                field,
                                format!(
                                    "route {key} is already targeted by BackendTrafficPolicy {}; only one policy may apply to a route",
                                    prev.id.key()
                                ),
                            ));
                        }
                    }
                    out.insert(key, p);
                    attached_any = true;
                }
                "Gateway" => warnings.push(p.id.warning(
                    &field,
                    "ignored: policies attached to a Gateway are not applied; target the route (kind HTTPRoute, name = the AIGatewayRoute's name)",
                )),
                other => warnings.push(p.id.warning(
                    &field,
                    format!("ignored: kind {other:?} is not a route Switchyard serves"),
                )),
            }
        }
        if !attached_any {
            warnings.push(p.id.warning("spec", "applies to no loaded route"));
        }
    }
    Ok(out)
}

/// Mutable state shared while resolving routes.
struct RouteCtx<'a> {
    store: &'a Store,
    warnings: &'a mut Warnings,
    backends: &'a mut BTreeMap<String, Backend>,
    used_ai_backends: &'a mut HashSet<String>,
}

impl<'a> RouteCtx<'a> {
    fn resolve_route(&mut self, route: &Loaded<AIGatewayRouteSpec>) -> Result<Route, ConfigError> {
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
        if spec.llm_request_costs.is_some() {
            self.warnings.push(id.warning(
                "spec.llmRequestCosts",
                "ignored: token-cost accounting for rate limits is not implemented (token usage is still exported as metrics)",
            ));
        }
        if spec.filter_config.is_some() {
            self.warnings.push(id.warning(
                "spec.filterConfig",
                "ignored: configures Envoy's external processor, which Switchyard does not have",
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
            if rule.models_created_at.is_some() {
                self.warnings.push(id.warning(
                    format!("{field}.modelsCreatedAt"),
                    "ignored: GET /v1/models reports the time the configuration was loaded",
                ));
            }
            rules.push(Rule {
                matches,
                backend_refs,
                request_timeout,
                models_owned_by: rule
                    .models_owned_by
                    .clone()
                    .unwrap_or_else(|| DEFAULT_MODELS_OWNED_BY.to_owned()),
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
        if b.header_mutation.is_some() {
            self.warnings.push(id.warning(
                format!("{field}.headerMutation"),
                "ignored: not implemented",
            ));
        }
        if b.body_mutation.is_some() {
            self.warnings
                .push(id.warning(format!("{field}.bodyMutation"), "ignored: not implemented"));
        }
        let namespace = b.namespace.as_deref().unwrap_or(&id.namespace);

        // An AIServiceBackend of that name is what Envoy AI Gateway means; a Backend of that name is what
        // the seed page does. The AIServiceBackend wins when both exist, as upstream would only see it.
        let ai_backend = if kind == Some("Backend") {
            None
        } else {
            find(&self.store.ai_backends, namespace, &b.name)
        };
        if let Some(asb) = ai_backend {
            self.used_ai_backends.insert(asb.id.key());
            let schema = parse_schema(&asb.id, "spec.schema", &asb.spec.schema)?;
            let backend = self.backend_of_ai_backend(asb)?;
            let auth = self.auth_of_ai_backend(asb)?;
            let key = self.resolve_backend(backend, auth)?;
            if let Some((inferred, host)) = self.backends.get(&key).and_then(infer_from_backend) {
                if inferred != schema.name {
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
        Ok(BackendRef {
            ref_name: b.name.clone(),
            backend: key,
            priority,
            weight,
            schema,
            schema_source,
            model_name_override,
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

fn auth_policy(a: &BackendAuth) -> &str {
    a.policy()
}

fn non_negative_u32(id: &ResourceId, field: &str, v: i64) -> Result<u32, ConfigError> {
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
fn parse_schema(
    id: &ResourceId,
    field: &str,
    s: &VersionedApiSchema,
) -> Result<Schema, ConfigError> {
    let name = match s.name.as_str() {
        "OpenAI" => SchemaName::OpenAI,
        "AWSBedrock" => SchemaName::AwsBedrock,
        "AzureOpenAI" => SchemaName::AzureOpenAI,
        "Anthropic" => SchemaName::Anthropic,
        other => {
            return Err(id.error(
                format!("{field}.name"),
                format!("schema {other:?} is not supported (expected OpenAI, AWSBedrock, AzureOpenAI or Anthropic)"),
            ))
        }
    };
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
fn infer_from_backend(b: &Backend) -> Option<(SchemaName, String)> {
    b.endpoints.iter().find_map(|e| match e {
        Endpoint::Fqdn { hostname, .. } => {
            infer_schema_from_host(hostname).map(|s| (s, hostname.clone()))
        }
        Endpoint::Ip { .. } => None,
    })
}

fn resolve_header_match(
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

/// A Backend resource → [`Backend`] (endpoints and TLS; `auth` decided by the caller).
fn resolve_backend_resource(
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
        if e.zone.is_some() {
            warnings.push(id.warning(
                format!("{field}.zone"),
                "ignored: zone-aware routing is not implemented",
            ));
        }
        if e.hostname.is_some() {
            warnings.push(id.warning(
                format!("{field}.hostname"),
                "ignored: use an fqdn endpoint, or BackendTLSPolicy validation.hostname for TLS",
            ));
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
    if spec.fallback.is_some() {
        warnings.push(id.warning(
            "spec.fallback",
            "ignored: the AIGatewayRoute backendRefs[].priority decides fallback",
        ));
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
fn resolve_upstream_tls(
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
        for (name, present) in [
            ("clientCertificateRef", t.client_certificate_ref.is_some()),
            ("minVersion", t.min_version.is_some()),
            ("maxVersion", t.max_version.is_some()),
            ("ciphers", t.ciphers.is_some()),
            ("ecdhCurves", t.ecdh_curves.is_some()),
            ("signatureAlgorithms", t.signature_algorithms.is_some()),
            ("alpnProtocols", t.alpn_protocols.is_some()),
        ] {
            if present {
                warnings.push(id.warning(
                    format!("spec.tls.{name}"),
                    "ignored: not implemented (rustls defaults apply)",
                ));
            }
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
        if p.spec.options.is_some() {
            warnings.push(p.id.warning("spec.options", "ignored: no TLS options are implemented"));
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

fn targets_backend(t: &PolicyTargetRef) -> bool {
    t.kind.as_deref() == Some("Backend")
        && t.group.as_deref().is_none_or(|g| g == GROUP_ENVOY_GATEWAY)
}

/// `caCertificateRefs` / `wellKnownCACertificates` → extra CA PEM (None = webpki roots only).
/// `required`: Gateway API requires one of the two in a BackendTLSPolicy.
fn resolve_ca(
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

/// A BackendSecurityPolicy → credentials. APIKey, AzureAPIKey, AnthropicAPIKey and AWSCredentials
/// (credentials file + profile, or the environment) are implemented; AzureCredentials and GCPCredentials
/// are recognised but yield [`BackendAuth::Unavailable`] (401 at request time, never an unsigned request).
fn resolve_security_policy(
    store: &Store,
    p: &Loaded<BackendSecurityPolicySpec>,
    warnings: &mut Warnings,
) -> Result<BackendAuth, ConfigError> {
    let id = &p.id;
    let spec = &p.spec;
    let policy = id.key();
    let unavailable = |warnings: &mut Warnings| {
        warnings.push(id.warning(
            "spec.type",
            format!(
                "type {} is not supported yet: requests to its backends answer 401 instead of being sent unsigned",
                spec.policy_type
            ),
        ));
        BackendAuth::Unavailable {
            reason: format!(
                "BackendSecurityPolicy type {} is not supported yet",
                spec.policy_type
            ),
            policy: policy.clone(),
        }
    };
    let required = |field: &str| {
        id.error(
            format!("spec.{field}"),
            format!("required when type is {}", spec.policy_type),
        )
    };
    match spec.policy_type.as_str() {
        "APIKey" => {
            let holder = spec.api_key.as_ref().ok_or_else(|| required("apiKey"))?;
            let (secret, value) = lookup_secret(store, id, "spec.apiKey.secretRef", &holder.secret_ref, API_KEY_SECRET_KEY)?;
            // `echo key | base64` leaves a newline that would otherwise end up in the header.
            let key = value.trim_end_matches(['\n', '\r']).to_owned();
            if key.is_empty() {
                return Err(id.error(
                    "spec.apiKey.secretRef.name",
                    format!("Secret {secret} key {API_KEY_SECRET_KEY} is empty"),
                ));
            }
            Ok(BackendAuth::ApiKey {
                key: SecretString::new(key),
                policy,
            })
        }
        "AzureAPIKey" | "AnthropicAPIKey" => {
            let azure = spec.policy_type == "AzureAPIKey";
            let (holder, field) = if azure {
                (spec.azure_api_key.as_ref().ok_or_else(|| required("azureAPIKey"))?, "spec.azureAPIKey.secretRef")
            } else {
                (spec.anthropic_api_key.as_ref().ok_or_else(|| required("anthropicAPIKey"))?, "spec.anthropicAPIKey.secretRef")
            };
            let (secret, value) = lookup_secret(store, id, field, &holder.secret_ref, API_KEY_SECRET_KEY)?;
            let key = value.trim_end_matches(['\n', '\r']).to_owned();
            if key.is_empty() {
                return Err(id.error(
                    format!("{field}.name"),
                    format!("Secret {secret} key {API_KEY_SECRET_KEY} is empty"),
                ));
            }
            let key = SecretString::new(key);
            Ok(if azure {
                BackendAuth::AzureApiKey { key, policy }
            } else {
                BackendAuth::AnthropicApiKey { key, policy }
            })
        }
        "AWSCredentials" => {
            let aws = spec.aws_credentials.as_ref().ok_or_else(|| required("awsCredentials"))?;
            let region = Some(aws.region.trim().to_owned()).filter(|r| !r.is_empty());
            let keys = if let Some(file) = &aws.credentials_file {
                let (secret, text) = lookup_secret(store, id, "spec.awsCredentials.credentialsFile.secretRef", &file.secret_ref, "credentials")?;
                let profile = file.profile.as_deref().unwrap_or("default");
                AwsKeys::from_credentials_file(&text, profile)
                    .map_err(|why| format!("Secret {secret} key credentials: {why}"))
            } else if aws.oidc_exchange_token.is_some() {
                Err("oidcExchangeToken is not supported yet".to_owned())
            } else {
                AwsKeys::from_env().ok_or_else(|| {
                    "no credentialsFile and no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment".to_owned()
                })
            };
            Ok(match keys {
                Ok(keys) => BackendAuth::AwsCredentials { keys, region, policy },
                Err(reason) => {
                    warnings.push(id.warning(
                        "spec.awsCredentials",
                        format!("{reason}: requests to its backends answer 401 instead of being sent unsigned"),
                    ));
                    BackendAuth::Unavailable { reason, policy }
                }
            })
        }
        "AzureCredentials" => {
            spec.azure_credentials.as_ref().ok_or_else(|| required("azureCredentials"))?;
            Ok(unavailable(warnings))
        }
        "GCPCredentials" => {
            spec.gcp_credentials.as_ref().ok_or_else(|| required("gcpCredentials"))?;
            Ok(unavailable(warnings))
        }
        other => Err(id.error(
            "spec.type",
            format!("unknown type {other:?} (expected APIKey, AWSCredentials, AzureAPIKey, AnthropicAPIKey, AzureCredentials or GCPCredentials)"),
        )),
    }
}

/// Follows a `secretRef` to one key of a Secret. Errors name the Secret and key, never the value.
fn lookup_secret(
    store: &Store,
    id: &ResourceId,
    field: &str,
    r: &SecretObjectRef,
    key: &str,
) -> Result<(String, String), ConfigError> {
    if let Some(k) = r.kind.as_deref().filter(|k| *k != "Secret") {
        return Err(id.error(
            format!("{field}.kind"),
            format!("{k} is not supported (expected Secret)"),
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(&id.namespace);
    let secret = find(&store.secrets, ns, &r.name).ok_or_else(|| {
        id.error(
            format!("{field}.name"),
            format!("no Secret named {:?} in namespace {ns}", r.name),
        )
    })?;
    let value = secret_value(secret, key)?.ok_or_else(|| {
        let keys: Vec<&str> = secret
            .spec
            .string_data
            .keys()
            .chain(secret.spec.data.keys())
            .map(String::as_str)
            .collect();
        id.error(
            format!("{field}.name"),
            format!(
                "Secret {} has no key {key} (keys: {})",
                secret.id.key(),
                keys.join(", ")
            ),
        )
    })?;
    Ok((secret.id.key(), value))
}

/// One key of a Secret: `stringData` wins over `data` (base64), as when Kubernetes merges them.
fn secret_value(secret: &Loaded<SecretResource>, key: &str) -> Result<Option<String>, ConfigError> {
    if let Some(v) = secret.spec.string_data.get(key) {
        return Ok(Some(v.0.clone()));
    }
    let Some(v) = secret.spec.data.get(key) else {
        return Ok(None);
    };
    let bytes = decode_base64(&v.0).ok_or_else(|| {
        secret
            .id
            .error(format!("data.{key}"), "not valid base64 (value not shown)")
    })?;
    String::from_utf8(bytes).map(Some).map_err(|_| {
        secret.id.error(
            format!("data.{key}"),
            "decodes to non-UTF-8 bytes (value not shown)",
        )
    })
}

/// Standard base64 (padding optional, whitespace ignored), as Kubernetes writes `data`.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let body = clean
        .strip_suffix(b"==")
        .or_else(|| clean.strip_suffix(b"="))
        .unwrap_or(&clean);
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut acc = 0u32;
        for &c in chunk {
            acc = (acc << 6) | sextet(c)?;
        }
        let bits = chunk.len() * 6;
        acc <<= 24 - bits;
        let bytes = acc.to_be_bytes();
        out.extend_from_slice(&bytes[1..1 + bits / 8]);
    }
    Some(out)
}

/// A BackendTrafficPolicy → [`TrafficPolicy`] with Envoy's defaults.
fn resolve_traffic_policy(
    p: &Loaded<BackendTrafficPolicySpec>,
    warnings: &mut Warnings,
) -> Result<TrafficPolicy, ConfigError> {
    let id = &p.id;
    let spec = &p.spec;
    let mut out = TrafficPolicy::default();
    for (name, why) in spec.ignored_settings() {
        warnings.push(id.warning(format!("spec.{name}"), format!("ignored: {why}")));
    }

    if let Some(r) = &spec.retry {
        let defaults = RetryConfig::default();
        let num_retries = r.num_retries.unwrap_or(i64::from(defaults.num_retries));
        if !(0..=MAX_NUM_RETRIES).contains(&num_retries) {
            return Err(id.error(
                "spec.retry.numRetries",
                format!("{num_retries} is not in 0..={MAX_NUM_RETRIES}"),
            ));
        }
        let num_attempts_per_priority = match r.num_attempts_per_priority {
            None => None,
            Some(n) if (1..=i64::from(u32::MAX)).contains(&n) => Some(n as u32),
            Some(n) => {
                return Err(id.error(
                    "spec.retry.numAttemptsPerPriority",
                    format!("{n} must be at least 1"),
                ))
            }
        };
        let (triggers, http_status_codes) = match &r.retry_on {
            // Envoy Gateway's defaults when `retryOn` is absent.
            None => (
                defaults.triggers.clone(),
                defaults.http_status_codes.clone(),
            ),
            // Present: exactly what it says, nothing merged in.
            Some(on) => {
                let mut triggers = Vec::new();
                for (i, t) in on.triggers.iter().flatten().enumerate() {
                    let field = format!("spec.retry.retryOn.triggers[{i}]");
                    match RetryTrigger::parse(t) {
                        Some(trig) => {
                            if !triggers.contains(&trig) {
                                triggers.push(trig);
                            }
                        }
                        None if matches!(t.as_str(), "cancelled" | "deadline-exceeded" | "internal" | "resource-exhausted" | "unavailable") => {
                            warnings.push(id.warning(field, format!("ignored: {t} is a gRPC trigger")));
                        }
                        None => {
                            return Err(id.error(
                                field,
                                format!("unknown retry trigger {t:?} (expected 5xx, gateway-error, reset, reset-before-request, connect-failure, retriable-4xx, refused-stream, retriable-status-codes)"),
                            ))
                        }
                    }
                }
                let mut codes = Vec::new();
                for (i, c) in on.http_status_codes.iter().flatten().enumerate() {
                    let code = u16::try_from(*c)
                        .ok()
                        .filter(|c| (100..=599).contains(c))
                        .ok_or_else(|| {
                            id.error(
                                format!("spec.retry.retryOn.httpStatusCodes[{i}]"),
                                format!("{c} is not an HTTP status (100..=599)"),
                            )
                        })?;
                    codes.push(code);
                }
                if !codes.is_empty() && !triggers.contains(&RetryTrigger::RetriableStatusCodes) {
                    warnings.push(id.warning(
                        "spec.retry.retryOn.httpStatusCodes",
                        "has no effect without the retriable-status-codes trigger",
                    ));
                }
                if triggers.is_empty() {
                    warnings.push(
                        id.warning("spec.retry.retryOn", "no triggers: nothing will be retried"),
                    );
                }
                (triggers, codes)
            }
        };
        let mut base_interval = defaults.base_interval;
        let mut max_interval = None;
        let mut per_try_timeout = None;
        if let Some(pr) = &r.per_retry {
            per_try_timeout = pr.timeout.map(|d| d.0);
            if per_try_timeout == Some(Duration::ZERO) {
                return Err(id.error("spec.retry.perRetry.timeout", "must be greater than 0"));
            }
            if let Some(b) = &pr.back_off {
                if let Some(base) = b.base_interval {
                    if base.0.is_zero() {
                        return Err(id.error(
                            "spec.retry.perRetry.backOff.baseInterval",
                            "must be greater than 0",
                        ));
                    }
                    base_interval = base.0;
                }
                max_interval = b.max_interval.map(|d| d.0);
            }
        }
        // Envoy: maxInterval defaults to 10 × baseInterval and may not be below it.
        let max_interval = max_interval.unwrap_or(base_interval * 10);
        if max_interval < base_interval {
            return Err(id.error(
                "spec.retry.perRetry.backOff.maxInterval",
                "must be greater than or equal to baseInterval",
            ));
        }
        out.retry = Some(RetryConfig {
            num_retries: num_retries as u32,
            triggers,
            http_status_codes,
            base_interval,
            max_interval,
            per_try_timeout,
            num_attempts_per_priority,
        });
    }

    if let Some(hc) = &spec.health_check {
        if let Some(pt) = hc.panic_threshold {
            out.panic_threshold = percent(pt).ok_or_else(|| {
                id.error(
                    "spec.healthCheck.panicThreshold",
                    format!("{pt} is not a percentage (0..=100)"),
                )
            })?;
        }
        if let Some(ps) = &hc.passive {
            let d = PassiveHealthConfig::default();
            let count = |v: Option<i64>, default: u32, name: &str| -> Result<u32, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(n) => u32::try_from(n).map_err(|_| {
                        id.error(
                            format!("spec.healthCheck.passive.{name}"),
                            format!("{n} must be a non-negative integer"),
                        )
                    }),
                }
            };
            let positive = |v: Option<super::duration::GoDuration>,
                            default: Duration,
                            name: &str|
             -> Result<Duration, ConfigError> {
                match v {
                    None => Ok(default),
                    Some(x) if x.0.is_zero() => Err(id.error(
                        format!("spec.healthCheck.passive.{name}"),
                        "must be greater than 0",
                    )),
                    Some(x) => Ok(x.0),
                }
            };
            let max_ejection_percent = match ps.max_ejection_percent {
                None => d.max_ejection_percent,
                Some(v) => percent(v).ok_or_else(|| {
                    id.error(
                        "spec.healthCheck.passive.maxEjectionPercent",
                        format!("{v} is not a percentage (0..=100)"),
                    )
                })?,
            };
            if ps.failure_percentage_threshold.is_some() {
                warnings.push(id.warning(
                    "spec.healthCheck.passive.failurePercentageThreshold",
                    "ignored: failure-percentage ejection is not implemented",
                ));
            }
            out.passive = Some(PassiveHealthConfig {
                consecutive_5xx: count(
                    ps.consecutive_5xx_errors,
                    d.consecutive_5xx,
                    "consecutive5XxErrors",
                )?,
                consecutive_gateway_errors: count(
                    ps.consecutive_gateway_errors,
                    d.consecutive_gateway_errors,
                    "consecutiveGatewayErrors",
                )?,
                consecutive_local_origin_failures: count(
                    ps.consecutive_local_origin_failures,
                    d.consecutive_local_origin_failures,
                    "consecutiveLocalOriginFailures",
                )?,
                split_external_local_origin_errors: ps
                    .split_external_local_origin_errors
                    .unwrap_or(d.split_external_local_origin_errors),
                interval: positive(ps.interval, d.interval, "interval")?,
                base_ejection_time: positive(
                    ps.base_ejection_time,
                    d.base_ejection_time,
                    "baseEjectionTime",
                )?,
                max_ejection_percent,
                always_eject_one_endpoint: ps
                    .always_eject_one_endpoint
                    .unwrap_or(d.always_eject_one_endpoint),
                max_ejection_time: d.max_ejection_time,
            });
        }
        if let Some(a) = &hc.active {
            out.active = resolve_active_health(id, a, warnings)?;
        }
    }

    if let Some(cb) = &spec.circuit_breaker {
        if let Some(n) = cb.max_parallel_retries {
            out.max_parallel_retries = u32::try_from(n).map_err(|_| {
                id.error(
                    "spec.circuitBreaker.maxParallelRetries",
                    format!("{n} must be a non-negative integer"),
                )
            })?;
        }
        for (name, present) in [
            ("maxConnections", cb.max_connections.is_some()),
            ("maxPendingRequests", cb.max_pending_requests.is_some()),
            ("maxParallelRequests", cb.max_parallel_requests.is_some()),
            (
                "maxRequestsPerConnection",
                cb.max_requests_per_connection.is_some(),
            ),
            ("perEndpoint", cb.per_endpoint.is_some()),
        ] {
            if present {
                warnings.push(id.warning(
                    format!("spec.circuitBreaker.{name}"),
                    "ignored: only maxParallelRetries is implemented",
                ));
            }
        }
    }

    if let Some(t) = &spec.timeout {
        if let Some(ct) = t.tcp.as_ref().and_then(|tcp| tcp.connect_timeout) {
            if ct.0.is_zero() {
                return Err(id.error("spec.timeout.tcp.connectTimeout", "must be greater than 0"));
            }
            out.connect_timeout = ct.0;
        }
        if t.http.is_some() {
            warnings.push(id.warning(
                "spec.timeout.http",
                "ignored: the route timeout is AIGatewayRoute rules[].timeouts.request and the per-attempt timeout retry.perRetry.timeout",
            ));
        }
    }
    Ok(out)
}

fn percent(v: i64) -> Option<u32> {
    u32::try_from(v).ok().filter(|p| *p <= 100)
}

/// `healthCheck.active` → [`ActiveHealthConfig`]; only HTTP probes exist here.
fn resolve_active_health(
    id: &ResourceId,
    a: &super::resources::ActiveHealthCheck,
    warnings: &mut Warnings,
) -> Result<Option<ActiveHealthConfig>, ConfigError> {
    const F: &str = "spec.healthCheck.active";
    match a.check_type.as_str() {
        "HTTP" => {}
        "TCP" | "GRPC" => {
            warnings.push(id.warning(
                format!("{F}.type"),
                format!(
                    "ignored: {} probes are not implemented; only HTTP",
                    a.check_type
                ),
            ));
            return Ok(None);
        }
        other => {
            return Err(id.error(
                format!("{F}.type"),
                format!("{other:?} is not a health checker type (expected HTTP)"),
            ))
        }
    }
    let http = a
        .http
        .as_ref()
        .ok_or_else(|| id.error(format!("{F}.http"), "required when type is HTTP"))?;
    if !http.path.starts_with('/') {
        return Err(id.error(
            format!("{F}.http.path"),
            format!("{:?} must start with /", http.path),
        ));
    }
    if http
        .method
        .as_deref()
        .is_some_and(|m| !m.eq_ignore_ascii_case("GET"))
    {
        warnings.push(id.warning(
            format!("{F}.http.method"),
            "ignored: probes are GET requests",
        ));
    }
    if http.expected_response.is_some() {
        warnings.push(id.warning(
            format!("{F}.http.expectedResponse"),
            "ignored: only the status is checked",
        ));
    }
    if http.hostname.is_some() {
        warnings.push(id.warning(
            format!("{F}.http.hostname"),
            "ignored: probes use the backend's host",
        ));
    }
    if a.initial_jitter.is_some() {
        warnings.push(id.warning(format!("{F}.initialJitter"), "ignored: not implemented"));
    }
    let mut expected_statuses = Vec::new();
    for (i, s) in http.expected_statuses.iter().flatten().enumerate() {
        expected_statuses.push(
            u16::try_from(*s)
                .ok()
                .filter(|c| (100..=599).contains(c))
                .ok_or_else(|| {
                    id.error(
                        format!("{F}.http.expectedStatuses[{i}]"),
                        format!("{s} is not an HTTP status (100..=599)"),
                    )
                })?,
        );
    }
    if expected_statuses.is_empty() {
        expected_statuses.push(200);
    }
    let threshold = |v: Option<i64>, default: u32, name: &str| -> Result<u32, ConfigError> {
        match v {
            None => Ok(default),
            Some(n) if n >= 1 && n <= i64::from(u32::MAX) => Ok(n as u32),
            Some(n) => Err(id.error(format!("{F}.{name}"), format!("{n} must be at least 1"))),
        }
    };
    let interval = a.interval.map_or(Duration::from_secs(3), |d| d.0);
    let timeout = a.timeout.map_or(Duration::from_secs(1), |d| d.0);
    if interval.is_zero() {
        return Err(id.error(format!("{F}.interval"), "must be greater than 0"));
    }
    if timeout.is_zero() {
        return Err(id.error(format!("{F}.timeout"), "must be greater than 0"));
    }
    Ok(Some(ActiveHealthConfig {
        path: http.path.clone(),
        interval,
        timeout,
        unhealthy_threshold: threshold(a.unhealthy_threshold, 3, "unhealthyThreshold")?,
        healthy_threshold: threshold(a.healthy_threshold, 1, "healthyThreshold")?,
        expected_statuses,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `yaml` to `test.yaml` in a fresh directory and loads it.
    fn load_yaml(yaml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("test.yaml");
        fs::write(&path, yaml).expect("write");
        load(&path)
    }

    fn load_ok(yaml: &str) -> Config {
        match load_yaml(yaml) {
            Ok(c) => c,
            Err(e) => panic!("expected the config to load, got: {e}"),
        }
    }

    fn load_err(yaml: &str) -> String {
        match load_yaml(yaml) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deploy/examples")
            .join(name)
    }

    /// A small valid config; tests splice variations into it.
    const ROUTE: &str = "
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: r
spec:
  schema:
    name: OpenAI
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: m
      backendRefs:
        - name: b
";
    const BACKEND: &str = "
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: b
spec:
  endpoints:
    - ip:
        address: 127.0.0.1
        port: 9001
";

    #[test]
    fn seed_example_loads_unmodified_with_the_pages_semantics() {
        let cfg = load(&example("provider-fallback.yaml")).expect("seed example loads");
        assert_eq!(cfg.routes.len(), 1);
        let route = &cfg.routes[0];
        assert_eq!(
            (route.namespace.as_str(), route.name.as_str()),
            ("default", "provider-fallback")
        );
        assert_eq!(route.input_schema.name, SchemaName::OpenAI);
        assert_eq!(route.rules.len(), 1);
        let rule = &route.rules[0];
        assert_eq!(rule.request_timeout, Duration::from_secs(60));
        assert_eq!(rule.models_owned_by, "Envoy AI Gateway");
        let h = &rule.matches[0].headers[0];
        assert_eq!(h.name, "x-ai-eg-model");
        assert!(
            matches!(&h.value, HeaderMatchValue::Exact(v) if v == "us.meta.llama3-2-1b-instruct-v1:0")
        );

        // (ref name, priority, weight, schema, source, host)
        let want = [
            (
                "provider-fallback-always-failing-upstream",
                0,
                1,
                SchemaName::OpenAI,
                SchemaSource::RouteInput,
                "provider-fallback-always-failing-upstream.default.svc.cluster.local",
            ),
            (
                "provider-fallback-aws",
                1,
                1,
                SchemaName::AwsBedrock,
                SchemaSource::ProviderHost,
                "bedrock-runtime.us-east-1.amazonaws.com",
            ),
        ];
        assert_eq!(rule.backend_refs.len(), want.len());
        for (b, (name, prio, weight, schema, source, host)) in rule.backend_refs.iter().zip(want) {
            assert_eq!(b.ref_name, name);
            assert_eq!(b.backend, format!("default/{name}"));
            assert_eq!((b.priority, b.weight), (prio, weight), "{name}");
            assert_eq!((b.schema.name, b.schema_source), (schema, source), "{name}");
            let be = &cfg.backends[&b.backend];
            assert_eq!(
                be.endpoints,
                vec![Endpoint::Fqdn {
                    hostname: host.into(),
                    port: 443
                }]
            );
            assert_eq!(
                be.tls,
                Some(UpstreamTls {
                    server_name: None,
                    ca_pem: None,
                    ca_source: None
                }),
                "port 443 means TLS"
            );
            assert_eq!(be.auth, None);
        }

        assert_eq!(
            route.traffic_policy_name.as_deref(),
            Some("default/passive-health-check")
        );
        let retry = route.traffic.retry.as_ref().expect("retry");
        assert_eq!(
            retry,
            &RetryConfig {
                num_retries: 5,
                triggers: vec![
                    RetryTrigger::ConnectFailure,
                    RetryTrigger::RetriableStatusCodes
                ],
                http_status_codes: vec![500],
                base_interval: Duration::from_millis(100),
                max_interval: Duration::from_secs(10),
                per_try_timeout: Some(Duration::from_secs(30)),
                num_attempts_per_priority: None,
            }
        );
        assert_eq!(
            route.traffic.passive,
            Some(PassiveHealthConfig {
                base_ejection_time: Duration::from_secs(5),
                interval: Duration::from_secs(2),
                max_ejection_percent: 100,
                consecutive_5xx: 1,
                consecutive_gateway_errors: 0,
                consecutive_local_origin_failures: 1,
                split_external_local_origin_errors: false,
                always_eject_one_endpoint: false,
                max_ejection_time: Duration::from_secs(300),
            })
        );
        assert_eq!(route.traffic.active, None);
        assert_eq!(route.traffic.panic_threshold, 50);
        assert_eq!(cfg.gateway_port, None);
        assert!(
            cfg.warnings.iter().any(|w| w
                .contains("AWSBedrock inferred from host bedrock-runtime.us-east-1.amazonaws.com")),
            "{:#?}",
            cfg.warnings
        );
    }

    #[test]
    fn local_example_loads_with_loopback_backends_and_an_api_key() {
        let cfg = load(&example("local-fallback.yaml")).expect("local example loads");
        assert_eq!(cfg.gateway_port, Some(8080));
        let rule = &cfg.routes[0].rules[0];
        let primary = &rule.backend_refs[0];
        let fallback = &rule.backend_refs[1];
        assert_eq!(
            (primary.priority, primary.schema_source),
            (0, SchemaSource::RouteInput)
        );
        assert_eq!(
            (fallback.priority, fallback.schema_source),
            (1, SchemaSource::AiServiceBackend)
        );
        assert_eq!(fallback.schema.name, SchemaName::OpenAI);
        let p = &cfg.backends[&primary.backend];
        let f = &cfg.backends[&fallback.backend];
        assert_eq!(p.endpoints[0].authority(), "127.0.0.1:9001");
        assert_eq!(f.endpoints[0].authority(), "127.0.0.1:9002");
        assert_eq!((p.tls.as_ref(), f.tls.as_ref()), (None, None));
        assert_eq!(p.auth, None);
        match &f.auth {
            Some(BackendAuth::ApiKey { key, policy }) => {
                assert_eq!(key.expose(), "sk-local-mock-key");
                assert_eq!(policy, "default/local-fallback-apikey");
            }
            other => panic!("expected an API key, got {other:?}"),
        }
        assert_eq!(
            cfg.routes[0].traffic.retry.as_ref().map(|r| r.num_retries),
            Some(5)
        );
    }

    #[test]
    fn directory_loads_every_yaml_file_in_sorted_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let second_route = ROUTE.replace("name: r\n", "name: r2\n");
        fs::write(dir.path().join("b-route.yml"), &second_route).expect("write");
        fs::write(dir.path().join("a-route.yaml"), ROUTE).expect("write");
        fs::write(dir.path().join("c-backend.yaml"), BACKEND).expect("write");
        fs::write(dir.path().join("notes.txt"), "not: [yaml").expect("write");
        let cfg = load(dir.path()).expect("directory loads");
        let names: Vec<&str> = cfg.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["r", "r2"]);
        let files: Vec<String> = cfg
            .sources
            .iter()
            .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
            .collect();
        assert_eq!(files, ["a-route.yaml", "b-route.yml", "c-backend.yaml"]);
        assert_eq!(cfg.backends.len(), 1);
    }

    #[test]
    fn empty_directory_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = load(dir.path()).expect_err("empty dir").to_string();
        assert!(err.contains("no *.yaml or *.yml files"), "{err}");
    }

    #[test]
    fn unknown_kinds_and_foreign_api_groups_warn_and_are_skipped() {
        let yaml = format!(
            "{ROUTE}{BACKEND}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: other
spec:
  whatever: [1, 2]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: istio
spec:
  servers: []
---
---
"
        );
        let cfg = load_ok(&yaml);
        assert_eq!(cfg.routes.len(), 1);
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("HTTPRoute/default/other") && w.contains("skipped")),
            "{:#?}",
            cfg.warnings
        );
        assert!(
            cfg.warnings
                .iter()
                .any(|w| w.contains("Gateway/default/istio") && w.contains("skipped")),
            "{:#?}",
            cfg.warnings
        );
        assert_eq!(cfg.gateway_port, None);
    }

    #[test]
    fn invalid_resources_are_errors_naming_file_resource_and_field() {
        // (what, yaml, expected fragments of the message)
        let cases: Vec<(&str, String, Vec<&str>)> = vec![
            (
                "unknown field in a rule",
                ROUTE.replace(
                    "      backendRefs:",
                    "      backendRefz: []\n      backendRefs:",
                ) + BACKEND,
                vec![
                    "test.yaml",
                    "AIGatewayRoute/default/r",
                    "spec.rules[0]",
                    "backendRefz",
                ],
            ),
            (
                "unknown field in a backendRef",
                ROUTE.replace(
                    "        - name: b\n",
                    "        - name: b\n          prority: 1\n",
                ) + BACKEND,
                vec![
                    "test.yaml",
                    "AIGatewayRoute/default/r",
                    "spec.rules[0].backendRefs[0]",
                    "prority",
                ],
            ),
            (
                "negative priority",
                ROUTE.replace(
                    "        - name: b\n",
                    "        - name: b\n          priority: -1\n",
                ) + BACKEND,
                vec![
                    "AIGatewayRoute/default/r",
                    "spec.rules[0].backendRefs[0].priority",
                ],
            ),
            (
                "negative weight",
                ROUTE.replace(
                    "        - name: b\n",
                    "        - name: b\n          weight: -3\n",
                ) + BACKEND,
                vec!["spec.rules[0].backendRefs[0].weight"],
            ),
            (
                "dangling backendRef",
                ROUTE.replace(
                    "        - name: b\n",
                    "        - name: b\n        - name: nope\n",
                ) + BACKEND,
                vec![
                    "AIGatewayRoute/default/r",
                    "spec.rules[0].backendRefs[1].name",
                    "\"nope\"",
                ],
            ),
            (
                "no backendRefs",
                ROUTE.replace(
                    "      backendRefs:\n        - name: b\n",
                    "      backendRefs: []\n",
                ) + BACKEND,
                vec!["spec.rules[0].backendRefs", "at least one backendRef"],
            ),
            (
                "bad regex",
                ROUTE
                    .replace("type: Exact", "type: RegularExpression")
                    .replace("value: m", "value: \"llama(\"")
                    + BACKEND,
                vec![
                    "AIGatewayRoute/default/r",
                    "spec.rules[0].matches[0].headers[0].value",
                    "invalid regular expression",
                ],
            ),
            (
                "unknown header match type",
                ROUTE.replace("type: Exact", "type: Prefix") + BACKEND,
                vec!["spec.rules[0].matches[0].headers[0].type"],
            ),
            (
                "port 0",
                format!("{ROUTE}{}", BACKEND.replace("port: 9001", "port: 0")),
                vec![
                    "Backend/default/b",
                    "spec.endpoints[0].ip.port",
                    "1..=65535",
                ],
            ),
            (
                "port too large",
                format!("{ROUTE}{}", BACKEND.replace("port: 9001", "port: 70000")),
                vec!["spec.endpoints[0].ip.port"],
            ),
            (
                "not an IP",
                format!("{ROUTE}{}", BACKEND.replace("127.0.0.1", "localhost")),
                vec!["spec.endpoints[0].ip.address"],
            ),
            (
                "unknown schema",
                ROUTE.replace("name: OpenAI", "name: Cohere") + BACKEND,
                vec!["spec.schema.name", "Cohere"],
            ),
            (
                "wrong apiVersion of a known group",
                ROUTE.replace("v1alpha1", "v1beta9") + BACKEND,
                vec![
                    "AIGatewayRoute/default/r",
                    "apiVersion",
                    "aigateway.envoyproxy.io/v1alpha1",
                ],
            ),
            (
                "missing metadata.name",
                ROUTE.replace("  name: r\n", "  namespace: x\n") + BACKEND,
                vec!["test.yaml", "document 1", "metadata.name"],
            ),
            (
                "duplicate resource",
                format!("{ROUTE}{BACKEND}{BACKEND}"),
                vec!["Backend/default/b", "duplicate"],
            ),
        ];
        for (what, yaml, fragments) in cases {
            let err = load_err(&yaml);
            for f in fragments {
                assert!(err.contains(f), "{what}: {f:?} not in: {err}");
            }
        }
    }

    #[test]
    fn bad_durations_are_errors_with_the_field_path() {
        let yaml = format!(
            "{ROUTE}{BACKEND}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: p
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      name: r
  retry:
    perRetry:
      timeout: 30 seconds
"
        );
        let err = load_err(&yaml);
        for f in [
            "test.yaml",
            "BackendTrafficPolicy/default/p",
            "spec.retry.perRetry.timeout",
            "invalid duration \"30 seconds\"",
        ] {
            assert!(err.contains(f), "{f:?} not in: {err}");
        }
    }

    #[test]
    fn yaml_syntax_errors_name_the_file_and_line() {
        let err = load_yaml("apiVersion: v1\nkind: Secret\nmetadata: {name: [unclosed\n")
            .expect_err("bad yaml");
        match &err {
            ConfigError::Yaml { file, line, .. } => {
                assert!(file.ends_with("test.yaml"));
                assert!(*line >= 3, "line {line}");
            }
            other => panic!("expected a YAML error, got {other}"),
        }
        assert!(err.to_string().contains("test.yaml:"), "{err}");
    }

    const SECRET_VALUE: &str = "sk-very-secret-4242";

    fn with_api_key(secret_doc: &str) -> String {
        format!(
            "{ROUTE}
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: b
spec:
  schema:
    name: OpenAI
  backendRef:
    name: be
    kind: Backend
    group: gateway.envoyproxy.io
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: be
spec:
  endpoints:
    - fqdn:
        hostname: api.openai.com
        port: 443
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata:
  name: key
spec:
  type: APIKey
  targetRefs:
    - group: aigateway.envoyproxy.io
      kind: AIServiceBackend
      name: b
  apiKey:
    secretRef:
      name: s
{secret_doc}"
        )
    }

    #[test]
    fn api_keys_resolve_from_string_data_and_base64_data() {
        // "c2stdmVyeS1zZWNyZXQtNDI0Mg==" is base64 of SECRET_VALUE; the second adds the newline `echo` leaves.
        for data in [
            format!("stringData:\n  apiKey: {SECRET_VALUE}"),
            "data:\n  apiKey: c2stdmVyeS1zZWNyZXQtNDI0Mg==".to_owned(),
            "data:\n  apiKey: c2stdmVyeS1zZWNyZXQtNDI0Mgo=".to_owned(),
        ] {
            let cfg = load_ok(&with_api_key(&format!(
                "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n{data}\n"
            )));
            let be = &cfg.backends["default/be"];
            match &be.auth {
                Some(BackendAuth::ApiKey { key, policy }) => {
                    assert_eq!(key.expose(), SECRET_VALUE, "{data}");
                    assert_eq!(policy, "default/key");
                }
                other => panic!("{data}: expected an API key, got {other:?}"),
            }
            assert_eq!(
                cfg.routes[0].rules[0].backend_refs[0].schema_source,
                SchemaSource::AiServiceBackend
            );
            let dbg = format!("{cfg:?}");
            assert!(!dbg.contains(SECRET_VALUE), "secret in Debug output");
            assert!(
                !render_routing_table_for_test(&cfg).contains(SECRET_VALUE),
                "secret in the table"
            );
        }
    }

    fn render_routing_table_for_test(cfg: &Config) -> String {
        super::super::render_routing_table(cfg)
    }

    #[test]
    fn missing_secret_is_an_error_naming_the_reference() {
        let err = load_err(&with_api_key(""));
        for f in [
            "BackendSecurityPolicy/default/key",
            "spec.apiKey.secretRef.name",
            "no Secret named \"s\"",
        ] {
            assert!(err.contains(f), "{f:?} not in: {err}");
        }
        let err = load_err(&with_api_key(&format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  token: {SECRET_VALUE}\n"
        )));
        assert!(
            err.contains("has no key apiKey") && err.contains("token"),
            "{err}"
        );
        assert!(!err.contains(SECRET_VALUE), "{err}");
    }

    #[test]
    fn secret_values_never_appear_in_errors() {
        let secret = |body: &str| {
            format!("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n{body}\n")
        };
        let cases = [
            // wrong shapes and types inside the Secret
            secret(&format!("stringData: {SECRET_VALUE}")),
            secret(&format!("data: {SECRET_VALUE}")),
            secret(&format!("stringData:\n  apiKey: [{SECRET_VALUE}]")),
            secret("stringData:\n  apiKey: 4242424242"),
            secret(&format!("data:\n  apiKey: \"{SECRET_VALUE}!!\"")),
            secret(&format!(
                "stringData:\n  apiKey: {SECRET_VALUE}\nextra: {SECRET_VALUE}"
            )),
            // a YAML syntax error inside the Secret
            secret(&format!(
                "stringData:\n  apiKey: \"{SECRET_VALUE}\n  other: ["
            )),
        ];
        for yaml in cases {
            let err = load_yaml(&with_api_key(&yaml)).expect_err("must fail");
            let (shown, dbg) = (err.to_string(), format!("{err:?}"));
            assert!(
                !shown.contains(SECRET_VALUE) && !shown.contains("4242424242"),
                "leak: {shown}"
            );
            assert!(
                !dbg.contains(SECRET_VALUE) && !dbg.contains("4242424242"),
                "leak in Debug: {dbg}"
            );
        }
    }

    fn with_policy(policy_spec: &str, secret_doc: &str) -> String {
        with_api_key(secret_doc)
            .replace(
                "  type: APIKey\n  targetRefs:",
                &format!("{policy_spec}  targetRefs:"),
            )
            .replace("  apiKey:\n    secretRef:\n      name: s\n", "")
    }

    #[test]
    fn aws_credentials_resolve_from_a_credentials_file_profile() {
        let file = format!("# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key = nope\n\n[test]\naws_access_key_id=AKIDTEST\naws_secret_access_key = {SECRET_VALUE}\naws_session_token = tok\n");
        let secret = format!(
            "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\nstringData:\n  credentials: |\n{}",
            file.lines().map(|l| format!("    {l}\n")).collect::<String>()
        );
        let policy = "  type: AWSCredentials\n  awsCredentials:\n    region: eu-west-3\n    credentialsFile:\n      secretRef:\n        name: aws\n      profile: test\n";
        let cfg = load_ok(&with_policy(policy, &secret));
        match &cfg.backends["default/be"].auth {
            Some(BackendAuth::AwsCredentials {
                keys,
                region,
                policy,
            }) => {
                assert_eq!(keys.access_key_id.expose(), "AKIDTEST");
                assert_eq!(keys.secret_access_key.expose(), SECRET_VALUE);
                assert_eq!(
                    keys.session_token.as_ref().map(SecretString::expose),
                    Some("tok")
                );
                assert_eq!(region.as_deref(), Some("eu-west-3"));
                assert_eq!(policy, "default/key");
                assert!(!format!("{keys:?}").contains(SECRET_VALUE));
            }
            other => panic!("expected AwsCredentials, got {other:?}"),
        }
        // A profile the file lacks: 401 at request time, with a reason that names no value.
        let cfg = load_ok(&with_policy(
            &policy.replace("profile: test", "profile: other"),
            &secret,
        ));
        match &cfg.backends["default/be"].auth {
            Some(BackendAuth::Unavailable { reason, .. }) => {
                assert!(reason.contains("no profile [other]"), "{reason}");
                assert!(!reason.contains(SECRET_VALUE));
            }
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn azure_and_anthropic_keys_resolve() {
        let secret = format!("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  apiKey: {SECRET_VALUE}\n");
        let azure = "  type: AzureAPIKey\n  azureAPIKey:\n    secretRef:\n      name: s\n";
        match &load_ok(&with_policy(azure, &secret)).backends["default/be"].auth {
            Some(BackendAuth::AzureApiKey { key, .. }) => assert_eq!(key.expose(), SECRET_VALUE),
            other => panic!("expected AzureApiKey, got {other:?}"),
        }
        let anthropic =
            "  type: AnthropicAPIKey\n  anthropicAPIKey:\n    secretRef:\n      name: s\n";
        match &load_ok(&with_policy(anthropic, &secret)).backends["default/be"].auth {
            Some(BackendAuth::AnthropicApiKey { key, .. }) => {
                assert_eq!(key.expose(), SECRET_VALUE)
            }
            other => panic!("expected AnthropicApiKey, got {other:?}"),
        }
    }

    #[test]
    fn unsupported_credential_types_are_unavailable_not_errors() {
        for policy in [
            "  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n    oidcExchangeToken:\n      oidc: {}\n",
            "  type: GCPCredentials\n  gcpCredentials:\n    projectName: p\n",
        ] {
            let cfg = load_ok(&with_policy(policy, ""));
            match &cfg.backends["default/be"].auth {
                Some(BackendAuth::Unavailable { reason, policy }) => {
                    assert!(reason.contains("not supported yet"), "{reason}");
                    assert_eq!(policy, "default/key");
                }
                other => panic!("expected Unavailable, got {other:?}"),
            }
        }
    }

    #[test]
    fn no_retry_block_means_no_retry_and_default_limits() {
        let yaml = format!(
            "{ROUTE}{BACKEND}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: p
spec:
  targetRef:
    group: gateway.networking.k8s.io
    kind: AIGatewayRoute
    name: r
  healthCheck:
    passive: {{}}
"
        );
        let cfg = load_ok(&yaml);
        let t = &cfg.routes[0].traffic;
        assert_eq!(t.retry, None);
        assert_eq!(t.passive, Some(PassiveHealthConfig::default()));
        assert_eq!(
            cfg.routes[0].traffic_policy_name.as_deref(),
            Some("default/p")
        );

        let bare = load_ok(&format!("{ROUTE}{BACKEND}"));
        assert_eq!(bare.routes[0].traffic, TrafficPolicy::default());
        assert_eq!(bare.routes[0].traffic_policy_name, None);
    }

    #[test]
    fn retry_defaults_follow_envoy() {
        let policy = |retry: &str| {
            format!(
                "{ROUTE}{BACKEND}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: p
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      name: r
  retry:
{retry}"
            )
        };
        let d = RetryConfig::default();
        // (retry block, expected)
        let cases = [
            ("    numRetries: 2\n", d.clone()),
            (
                "    perRetry:\n      backOff:\n        baseInterval: 1s\n",
                RetryConfig {
                    base_interval: Duration::from_secs(1),
                    max_interval: Duration::from_secs(10),
                    ..d.clone()
                },
            ),
            (
                "    retryOn:\n      triggers: [5xx]\n",
                RetryConfig {
                    triggers: vec![RetryTrigger::FiveXx],
                    http_status_codes: vec![],
                    ..d.clone()
                },
            ),
            (
                "    numRetries: 0\n    numAttemptsPerPriority: 1\n",
                RetryConfig {
                    num_retries: 0,
                    num_attempts_per_priority: Some(1),
                    ..d.clone()
                },
            ),
        ];
        for (block, want) in cases {
            let cfg = load_ok(&policy(block));
            assert_eq!(cfg.routes[0].traffic.retry.as_ref(), Some(&want), "{block}");
        }
        // and the invalid ones
        for (block, field) in [
            ("    numRetries: 1000\n", "spec.retry.numRetries"),
            ("    numRetries: -1\n", "spec.retry.numRetries"),
            ("    retryOn:\n      triggers: [on-error]\n", "spec.retry.retryOn.triggers[0]"),
            ("    retryOn:\n      httpStatusCodes: [99]\n", "spec.retry.retryOn.httpStatusCodes[0]"),
            ("    perRetry:\n      backOff:\n        baseInterval: 1s\n        maxInterval: 100ms\n", "spec.retry.perRetry.backOff.maxInterval"),
            ("    numRetry: 3\n", "numRetry"),
        ] {
            let err = load_err(&policy(block));
            assert!(err.contains(field) && err.contains("BackendTrafficPolicy/default/p"), "{block}: {err}");
        }
    }

    #[test]
    fn regular_expressions_match_the_whole_header_value() {
        let cfg = load_ok(
            &(ROUTE
                .replace("type: Exact", "type: RegularExpression")
                .replace("value: m", "value: \"llama-.*\"")
                + BACKEND),
        );
        let HeaderMatchValue::RegularExpression(re) =
            &cfg.routes[0].rules[0].matches[0].headers[0].value
        else {
            panic!("expected a regex");
        };
        for (value, want) in [
            ("llama-3", true),
            ("llama-", true),
            ("my-llama-3", false),
            ("llama", false),
        ] {
            assert_eq!(re.is_match(value), want, "{value}");
        }
    }

    #[test]
    fn header_names_are_lower_cased() {
        let cfg = load_ok(&(ROUTE.replace("name: x-ai-eg-model", "name: X-AI-EG-Model") + BACKEND));
        assert_eq!(
            cfg.routes[0].rules[0].matches[0].headers[0].name,
            "x-ai-eg-model"
        );
    }

    #[test]
    fn backend_tls_policy_sets_server_name_and_ca() {
        let pem = "-----BEGIN CERTIFICATE-----\\n  MIIB\\n  -----END CERTIFICATE-----";
        let yaml = format!(
            "{ROUTE}{BACKEND}
---
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata:
  name: tls
spec:
  targetRefs:
    - group: gateway.envoyproxy.io
      kind: Backend
      name: b
  validation:
    hostname: internal.example
    caCertificateRefs:
      - group: \"\"
        kind: ConfigMap
        name: ca
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: ca
data:
  ca.crt: \"{pem}\"
"
        );
        let cfg = load_ok(&yaml);
        let tls = cfg.backends["default/b"].tls.as_ref().expect("tls");
        assert_eq!(tls.server_name.as_deref(), Some("internal.example"));
        assert!(tls
            .ca_pem
            .as_deref()
            .is_some_and(|p| p.contains("BEGIN CERTIFICATE")));
        assert_eq!(tls.ca_source.as_deref(), Some("ConfigMap default/ca"));

        let system = yaml.replace(
            "    caCertificateRefs:\n      - group: \"\"\n        kind: ConfigMap\n        name: ca\n",
            "    wellKnownCACertificates: System\n",
        );
        let cfg = load_ok(&system.replace(
            "apiVersion: gateway.networking.k8s.io/v1alpha3",
            "apiVersion: gateway.networking.k8s.io/v1",
        ));
        let tls = cfg.backends["default/b"].tls.as_ref().expect("tls");
        assert_eq!(
            (tls.server_name.as_deref(), tls.ca_pem.as_deref()),
            (Some("internal.example"), None)
        );

        let err = load_err(&yaml.replace("name: ca\ndata", "name: other\ndata"));
        assert!(
            err.contains("BackendTLSPolicy/default/tls")
                && err.contains("spec.validation.caCertificateRefs[0].name"),
            "{err}"
        );
    }

    #[test]
    fn gateway_listener_port_is_read() {
        let gw = |port: &str| {
            format!(
                "{ROUTE}{BACKEND}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: gw
spec:
  gatewayClassName: eg
  listeners:
    - name: http
      protocol: HTTP
      port: {port}
"
            )
        };
        assert_eq!(load_ok(&gw("8081")).gateway_port, Some(8081));
        let err = load_err(&gw("0"));
        assert!(
            err.contains("Gateway/default/gw") && err.contains("spec.listeners[0].port"),
            "{err}"
        );
    }

    #[test]
    fn accepted_but_ignored_fields_warn() {
        let yaml = format!(
            "{}{BACKEND}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: p
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      name: r
  loadBalancer:
    type: RoundRobin
  rateLimit:
    type: Global
  timeout:
    tcp:
      connectTimeout: 3s
    http:
      requestTimeout: 10s
",
            ROUTE.replace(
                "  rules:\n",
                "  llmRequestCosts:\n    - metadataKey: t\n      type: TotalToken\n  rules:\n",
            )
        );
        let cfg = load_ok(&yaml);
        for f in [
            "spec.llmRequestCosts",
            "spec.loadBalancer",
            "spec.rateLimit",
            "spec.timeout.http",
        ] {
            assert!(
                cfg.warnings.iter().any(|w| w.contains(f)),
                "{f}: {:#?}",
                cfg.warnings
            );
        }
        assert_eq!(
            cfg.routes[0].traffic.connect_timeout,
            Duration::from_secs(3)
        );
    }

    #[test]
    fn provider_hosts_imply_schemas() {
        let cases = [
            (
                "bedrock-runtime.us-east-1.amazonaws.com",
                Some(SchemaName::AwsBedrock),
            ),
            (
                "bedrock-runtime.eu-west-3.amazonaws.com",
                Some(SchemaName::AwsBedrock),
            ),
            ("bedrock.us-east-1.amazonaws.com", None),
            ("myres.openai.azure.com", Some(SchemaName::AzureOpenAI)),
            ("api.anthropic.com", Some(SchemaName::Anthropic)),
            ("API.Anthropic.com.", Some(SchemaName::Anthropic)),
            ("api.openai.com", None),
            ("evil-api.anthropic.com.example", None),
        ];
        for (host, want) in cases {
            assert_eq!(infer_schema_from_host(host), want, "{host}");
        }
    }

    #[test]
    fn base64_decodes_like_kubernetes_data() {
        let cases: [(&str, Option<&[u8]>); 6] = [
            ("", Some(b"")),
            ("YQ==", Some(b"a")),
            ("YWI=", Some(b"ab")),
            ("YWJj", Some(b"abc")),
            ("YWJj\nZA==", Some(b"abcd")),
            ("Y*==", None),
        ];
        for (input, want) in cases {
            assert_eq!(decode_base64(input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn routing_table_shows_the_effective_configuration() {
        let cfg = load(&example("provider-fallback.yaml")).expect("seed loads");
        let table = super::super::render_routing_table(&cfg);
        for f in [
            "Route default/provider-fallback",
            "BackendTrafficPolicy: default/passive-health-check",
            "x-ai-eg-model = \"us.meta.llama3-2-1b-instruct-v1:0\"",
            "priority 0 weight 1: provider-fallback-always-failing-upstream",
            "priority 1 weight 1: provider-fallback-aws",
            "AWSBedrock (inferred from host bedrock-runtime.us-east-1.amazonaws.com)",
            "OpenAI (the route's input schema)",
            "bedrock-runtime.us-east-1.amazonaws.com:443",
            "tls:       on",
            "numRetries 5",
            "[connect-failure, retriable-status-codes]",
            "[500]",
            "backoff base 100ms max 10s, per-try timeout 30s",
            "consecutive5XxErrors 1, consecutiveGatewayErrors 0 (off)",
            "interval 2s, baseEjectionTime 5s, maxEjectionPercent 100%",
            "request timeout 1m",
            "Warnings (",
        ] {
            assert!(table.contains(f), "{f:?} not in:\n{table}");
        }
    }
}
