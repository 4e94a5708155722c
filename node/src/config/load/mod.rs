//! Loading: YAML files in, a resolved and validated [`Config`] out.
//!
//! Loading happens in two passes because Kubernetes-style resources reference each other by name in any
//! order and across files. Pass 1 (this file) parses every document of every file on its own: the shared
//! type-meta header (`apiVersion`, `kind`, `metadata`) is read first, the fields are checked against
//! upstream's ([`fields`]), and the body is deserialised with field-path tracking into the [`Store`].
//! Pass 2 follows references — route → AIServiceBackend → Backend → BackendTLSPolicy /
//! BackendSecurityPolicy → Secret, and BackendTrafficPolicy → route — and fills in Envoy's defaults, one
//! module per resource family: [`route`], [`backend`] (endpoints, TLS, CAs), [`security`] (credentials and
//! Secrets) and [`traffic`] (BackendTrafficPolicy). Everything the rest of the node needs comes out as
//! [`super::model`] types; nothing downstream ever sees the raw YAML structs.
//!
//! The loader is pure apart from reading the files and one environment read: an `AWSCredentials` policy
//! without a credentials file takes `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (see [`security`]).
//! No network, no clock.

mod backend;
#[cfg(test)]
mod examples_tests;
mod fields;
mod mutation;
mod route;
mod security;
#[cfg(test)]
mod tests;
mod traffic;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::{document_error, ConfigError, ResourceId};
use super::model::{Backend, Config, TrafficPolicy};
use super::resources::{
    AIGatewayRouteSpec, AIServiceBackendSpec, BackendSecurityPolicySpec, BackendSpec,
    BackendTlsPolicySpec, BackendTrafficPolicySpec, ConfigMapResource, GatewaySpec, SecretResource,
    TypeMeta, GROUP_AI_GATEWAY, GROUP_ENVOY_GATEWAY, GROUP_GATEWAY_API,
};
use route::RouteCtx;
use traffic::{attach_traffic_policies, resolve_traffic_policy};

/// Namespace of resources that do not say (as `kubectl apply` would do with no context namespace).
const DEFAULT_NAMESPACE: &str = "default";

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
    /// `metadata.creationTimestamp` as written (only a route's is read: `GET /v1/models` `created`).
    created: Option<String>,
    /// `metadata.annotations` (only a BackendTrafficPolicy's are read: Switchyard's extensions).
    annotations: std::collections::BTreeMap<String, String>,
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

/// A typed body and the [`Store`] list it is kept in.
trait Stored: DeserializeOwned + Sized {
    /// Parse errors of this type could quote a Secret value, so they are redacted.
    const REDACT: bool = false;
    fn bucket(store: &mut Store) -> &mut Vec<Loaded<Self>>;
}

macro_rules! stored {
    ($($t:ty => $bucket:ident),* $(,)?) => {
        $(impl Stored for $t {
            fn bucket(store: &mut Store) -> &mut Vec<Loaded<Self>> {
                &mut store.$bucket
            }
        })*
    };
}

stored!(
    AIGatewayRouteSpec => routes,
    AIServiceBackendSpec => ai_backends,
    BackendSecurityPolicySpec => security_policies,
    BackendSpec => backends,
    BackendTrafficPolicySpec => traffic_policies,
    BackendTlsPolicySpec => tls_policies,
    ConfigMapResource => config_maps,
    GatewaySpec => gateways,
);

impl Stored for SecretResource {
    const REDACT: bool = true;
    fn bucket(store: &mut Store) -> &mut Vec<Loaded<Self>> {
        &mut store.secrets
    }
}

/// Types a document's body (what follows its header) and stores it.
type Push = fn(&mut Store, ResourceId, DocMeta, Map<String, Value>) -> Result<(), ConfigError>;

/// The parts of a document's metadata kept with its typed body.
struct DocMeta {
    created: Option<String>,
    annotations: std::collections::BTreeMap<String, String>,
}

/// How one kind is read: its API group, the versions accepted, and how its body is typed and stored.
struct KindSpec {
    kind: &'static str,
    group: &'static str,
    versions: &'static [&'static str],
    push: Push,
}

/// The `aigateway.envoyproxy.io` versions read. v1beta1 exists since Envoy AI Gateway v0.7; v1.1 serves
/// both with the same schema, so they mean the same thing here too.
const AI_GATEWAY_VERSIONS: &[&str] = &["v1alpha1", "v1beta1"];

/// The kinds this node reads; any other kind is skipped with a warning.
const KINDS: &[KindSpec] = &[
    KindSpec {
        kind: "AIGatewayRoute",
        group: GROUP_AI_GATEWAY,
        versions: AI_GATEWAY_VERSIONS,
        push: push_spec::<AIGatewayRouteSpec>,
    },
    KindSpec {
        kind: "AIServiceBackend",
        group: GROUP_AI_GATEWAY,
        versions: AI_GATEWAY_VERSIONS,
        push: push_spec::<AIServiceBackendSpec>,
    },
    KindSpec {
        kind: "BackendSecurityPolicy",
        group: GROUP_AI_GATEWAY,
        versions: AI_GATEWAY_VERSIONS,
        push: push_spec::<BackendSecurityPolicySpec>,
    },
    KindSpec {
        kind: "Backend",
        group: GROUP_ENVOY_GATEWAY,
        versions: &["v1alpha1"],
        push: push_spec::<BackendSpec>,
    },
    KindSpec {
        kind: "BackendTrafficPolicy",
        group: GROUP_ENVOY_GATEWAY,
        versions: &["v1alpha1"],
        push: push_spec::<BackendTrafficPolicySpec>,
    },
    KindSpec {
        kind: "BackendTLSPolicy",
        group: GROUP_GATEWAY_API,
        versions: &["v1alpha3", "v1"],
        push: push_spec::<BackendTlsPolicySpec>,
    },
    KindSpec {
        kind: "Gateway",
        group: GROUP_GATEWAY_API,
        versions: &["v1", "v1beta1"],
        push: push_spec::<GatewaySpec>,
    },
    KindSpec {
        kind: "Secret",
        group: "",
        versions: &["v1"],
        push: push_body::<SecretResource>,
    },
    KindSpec {
        kind: "ConfigMap",
        group: "",
        versions: &["v1"],
        push: push_body::<ConfigMapResource>,
    },
];

/// A kind with a `spec`: after the type-meta header only `spec` (and a controller-written `status`,
/// accepted so `kubectl get -o yaml` output loads) may remain.
fn push_spec<S: Stored>(
    store: &mut Store,
    id: ResourceId,
    meta: DocMeta,
    mut body: Map<String, Value>,
) -> Result<(), ConfigError> {
    body.remove("status");
    let spec = body
        .remove("spec")
        .ok_or_else(|| id.error("(document)", "missing field `spec`"))?;
    if let Some(extra) = body.keys().next() {
        return Err(id.error(
            extra.as_str(),
            format!("unknown field {extra:?} (expected apiVersion, kind, metadata, spec, status)"),
        ));
    }
    let spec = typed::<S>(&id, "spec", spec)?;
    S::bucket(store).push(Loaded {
        id,
        spec,
        created: meta.created,
        annotations: meta.annotations,
    });
    Ok(())
}

/// A core kind without `spec` (`Secret`, `ConfigMap`): the body is what follows the header.
fn push_body<T: Stored>(
    store: &mut Store,
    id: ResourceId,
    meta: DocMeta,
    body: Map<String, Value>,
) -> Result<(), ConfigError> {
    let spec = typed::<T>(&id, "", Value::Object(body))?;
    T::bucket(store).push(Loaded {
        id,
        spec,
        created: meta.created,
        annotations: meta.annotations,
    });
    Ok(())
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

/// Reads one document's type-meta header, checks its `apiVersion`/`kind`, checks its fields against
/// upstream's ([`fields`]) and stores its typed body.
fn parse_document(
    file: &Path,
    index: usize,
    doc: Value,
    store: &mut Store,
) -> Result<(), ConfigError> {
    let mut obj = match doc {
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
    let meta = TypeMeta::take(&mut obj, DEFAULT_NAMESPACE)
        .map_err(|(field, why)| document_error(file, index, field, why))?;
    let TypeMeta {
        api_version,
        kind,
        name,
        namespace,
        creation_timestamp,
        annotations,
    } = meta;
    let label = match &name {
        Some(n) => format!("{kind}/{namespace}/{n}"),
        None => format!("{kind} (document {})", index + 1),
    };

    let Some(spec) = KINDS.iter().find(|k| k.kind == kind) else {
        store.warnings.push(format!(
            "{}: {label}: kind {kind} ({api_version}) is not read by Switchyard; skipped",
            file.display()
        ));
        return Ok(());
    };
    let (doc_group, doc_version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    if doc_group != spec.group {
        // Same kind name from another API (e.g. an Istio `Gateway`): not ours, so not an error.
        store.warnings.push(format!(
            "{}: {label}: apiVersion {api_version} is not the {kind} Switchyard reads ({}); skipped",
            file.display(),
            expected_api_versions(spec.group, spec.versions)
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
    if !spec.versions.contains(&doc_version) {
        return Err(id.error(
            "apiVersion",
            format!(
                "unsupported apiVersion {api_version} (expected {})",
                expected_api_versions(spec.group, spec.versions)
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
    fields::check_spec(&kind, &id, &mut obj, &mut store.warnings)?;
    let meta = DocMeta {
        created: creation_timestamp,
        annotations,
    };
    (spec.push)(store, id, meta, obj)
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

/// Deserialises a document's body with field-path tracking; paths are reported under `prefix`. Types
/// that hold Secret data ([`Stored::REDACT`]) get messages that could quote a value replaced (only
/// "unknown field"/"missing field" messages, which quote names, are kept).
fn typed<T: Stored>(id: &ResourceId, prefix: &str, body: Value) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(body).map_err(|e| {
        let path = e.path().to_string();
        let field = match (prefix, path.as_str()) {
            ("", ".") => "(document)".to_owned(),
            (p, ".") => p.to_owned(),
            ("", p) => p.to_owned(),
            (p, q) => format!("{p}.{q}"),
        };
        let mut message = e.inner().to_string();
        if T::REDACT
            && !(message.starts_with("unknown field") || message.starts_with("missing field"))
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
