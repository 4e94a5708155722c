//! The gateway's live state: the published routing snapshot, the health registry and the Route actors, and
//! the (re)load procedure that builds a new snapshot from a config file and swaps it in atomically.
//!
//! A reload that fails leaves the running config untouched and reports why (DESIGN §2); health of hosts that
//! survive a reload is kept because hosts are reused by key from the [`HealthRegistry`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ractor::{Actor, ActorRef};
use tokio::sync::Mutex;

use crate::config::model::{Config, SchemaName};
use crate::config::{self, ConfigError};
use crate::health::active::ActiveProbe;
use crate::health::actor::HostPolicy;
use crate::health::key::HostKey;
use crate::health::registry::{HealthRegistry, HealthSettings, HostEntry, RegistryError};
use crate::health::table::{HostTable, HostTableHandle, RuleGroup};
use crate::health::view::EjectionGroup;
use crate::proxy::conn::stream::UpstreamError;
use crate::proxy::upstream::{build_client, HttpClient};
use crate::routing::actor::{RouteActor, RouteMsg};
use crate::routing::build::{self, ClientKey};
use crate::routing::resolve::{fqdn_endpoints, resolve_all, Resolved};
use crate::routing::snapshot::{
    BackendRuntime, RouteSnap, RoutingSnapshot, RuleSnap, UpstreamHost,
};

/// Why a (re)load failed; the previous config keeps running.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The YAML did not load or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A backend's TLS settings are unusable.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// An actor could not be started.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A Route actor could not be started.
    #[error("cannot start the route actor for {route}: {reason}")]
    RouteActor {
        /// Route key.
        route: String,
        /// Why.
        reason: String,
    },
}

/// Node-wide settings that are not in the YAML.
#[derive(Clone)]
pub struct GatewaySettings {
    /// Request body limit.
    pub max_body_bytes: usize,
    /// `--upstream-bind`: source address of upstream connections.
    pub upstream_bind: Option<std::net::IpAddr>,
    /// How hosts eject and return, and whom they tell.
    pub health: HealthSettings,
}

/// The live gateway state shared by the listener, the admin server and the reload path.
pub struct Gateway {
    config_path: PathBuf,
    settings: GatewaySettings,
    snapshot: ArcSwap<RoutingSnapshot>,
    config: ArcSwap<Config>,
    registry: HealthRegistry,
    routes: Mutex<HashMap<String, RouteHandle>>,
    reload_lock: Mutex<()>,
    resolved: ArcSwap<Resolved>,
    /// Pooled clients per endpoint, kept across reloads so connections survive them.
    clients: Mutex<HashMap<ClientKey, HttpClient>>,
    /// Dynamic credentials, one per policy, kept across reloads while in use.
    credentials: crate::credentials::CredentialStore,
    /// Every host of the running config, for the cluster side.
    hosts: HostTableHandle,
}

/// How long one DNS lookup may take during a (re)load or refresh.
const DNS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

struct RouteHandle {
    actor: ActorRef<RouteMsg>,
    retries_in_flight: Arc<AtomicU32>,
}

impl Gateway {
    /// Loads `config_path` and builds the first snapshot.
    pub async fn start(
        config_path: &Path,
        settings: GatewaySettings,
    ) -> Result<Arc<Gateway>, LoadError> {
        let cfg = config::load(config_path)?;
        let gw = Arc::new(Gateway {
            config_path: config_path.to_path_buf(),
            settings: settings.clone(),
            snapshot: ArcSwap::from_pointee(RoutingSnapshot {
                routes: Vec::new(),
                max_body_bytes: settings.max_body_bytes,
            }),
            config: ArcSwap::from_pointee(cfg.clone()),
            registry: HealthRegistry::new(settings.health.clone()),
            routes: Mutex::new(HashMap::new()),
            reload_lock: Mutex::new(()),
            resolved: ArcSwap::from_pointee(Resolved::new()),
            clients: Mutex::new(HashMap::new()),
            credentials: crate::credentials::CredentialStore::new(),
            hosts: Arc::new(ArcSwap::from_pointee(HostTable::default())),
        });
        gw.apply(cfg).await?;
        Ok(gw)
    }

    /// The routing snapshot in force now (lock-free). Requests hold it for their whole life, across awaits,
    /// so it is an owned `Arc` rather than an `arc_swap` guard (guards are meant to be short-lived).
    pub fn snapshot(&self) -> Arc<RoutingSnapshot> {
        self.snapshot.load_full()
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Every host of the running config, republished on each (re)load.
    pub fn host_table(&self) -> HostTableHandle {
        self.hosts.clone()
    }

    /// The health registry.
    pub fn registry(&self) -> &HealthRegistry {
        &self.registry
    }

    /// The Route actors, by route key.
    pub async fn route_actors(&self) -> Vec<(String, ActorRef<RouteMsg>)> {
        let routes = self.routes.lock().await;
        let mut v: Vec<_> = routes
            .iter()
            .map(|(k, h)| (k.clone(), h.actor.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The config file or directory the gateway was started from (and reloads read).
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Swaps in a config that the reload entry point (`crate::reload`) has already loaded and checked; on
    /// error the running config is kept.
    pub async fn install(&self, cfg: Config) -> Result<(), LoadError> {
        self.apply(cfg).await?;
        metrics::counter!("switchyard_config_reloads_total", "result" => "ok").increment(1);
        Ok(())
    }

    /// Re-resolves every fqdn endpoint and rebuilds the snapshot if an address set changed; health of hosts
    /// whose address is still there is kept.
    pub async fn refresh_dns(&self) -> Result<bool, LoadError> {
        let cfg = self.config();
        let fresh = resolve_all(&cfg, DNS_TIMEOUT).await;
        if *self.resolved.load_full() == fresh {
            return Ok(false);
        }
        tracing::info!("fqdn endpoint addresses changed; rebuilding hosts");
        self.resolved.store(Arc::new(fresh));
        self.apply((*cfg).clone()).await?;
        Ok(true)
    }

    async fn apply(&self, cfg: Config) -> Result<(), LoadError> {
        let _serial = self.reload_lock.lock().await;
        // `GET /v1/models` `created` for rules with no modelsCreatedAt / creationTimestamp (Unix seconds).
        let loaded_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Names new to this config are resolved before it goes live; known ones wait for the refresh task.
        let wanted = fqdn_endpoints(&cfg);
        let known = self.resolved.load_full();
        if wanted.iter().any(|k| !known.contains_key(k)) {
            let fresh = resolve_all(&cfg, DNS_TIMEOUT).await;
            self.resolved.store(Arc::new(fresh));
        }
        let plan = build::plan(&cfg, &self.resolved.load_full());
        // New dynamic credentials fetched together, briefly, before the config goes live: requests right
        // after a start or reload then find them ready instead of answering 401.
        let auths: Vec<&config::model::BackendAuth> = cfg
            .backends
            .values()
            .filter_map(|b| b.auth.as_ref())
            .collect();
        let _ready = self.credentials.prepare(&auths).await;

        let mut clients = self.clients.lock().await;
        let mut used_clients = HashSet::new();
        // One runtime per Backend and schema: two AIServiceBackends may put different schemas (Gemini and
        // Claude on one Vertex host) on the same Backend; the credential is still shared per policy.
        let mut backends: BTreeMap<(String, SchemaName, Option<String>), Arc<BackendRuntime>> =
            BTreeMap::new();
        let mut entries: HashMap<HostKey, Arc<HostEntry>> = HashMap::new();
        let mut policies: Vec<(Arc<HostEntry>, HostPolicy)> = Vec::new();
        let mut groups = Vec::new();
        let mut route_snaps = Vec::new();
        let mut routes = self.routes.lock().await;
        let mut live_routes = HashSet::new();

        for (route, route_plan) in cfg.routes.iter().zip(&plan.routes) {
            let key = route_plan.key.clone();
            let mut rules = Vec::new();
            for (rule, rule_plan) in route.rules.iter().zip(&route_plan.rules) {
                let mut hosts = Vec::new();
                for (h, r) in rule_plan
                    .hosts
                    .iter()
                    .map(|h| (h, &rule.backend_refs[h.backend_ref]))
                {
                    let Some(backend) = cfg.backends.get(&r.backend) else {
                        continue;
                    };
                    let runtime_key = (r.backend.clone(), r.schema.name, r.schema.version.clone());
                    let runtime = match backends.get(&runtime_key) {
                        Some(rt) => rt.clone(),
                        None => {
                            let credential = self
                                .credentials
                                .live_for(r.schema.name, backend.auth.as_ref())
                                .await;
                            let rt = Arc::new(BackendRuntime {
                                key: backend.key.clone(),
                                schema: r.schema.clone(),
                                auth: backend.auth.clone(),
                                static_auth: crate::schema::auth::static_header(
                                    r.schema.name,
                                    backend.auth.as_ref(),
                                ),
                                credential,
                                tls: backend.tls.is_some(),
                            });
                            backends.insert(runtime_key, rt.clone());
                            rt
                        }
                    };
                    let client = match clients.get(&h.client) {
                        Some(c) => c.clone(),
                        None => {
                            let c = build_client(
                                &backend.key,
                                &h.client.endpoint.host(),
                                &h.client.dial,
                                backend.tls.as_ref(),
                                h.client.connect_timeout,
                                self.settings.upstream_bind,
                            )?;
                            clients.insert(h.client.clone(), c.clone());
                            c
                        }
                    };
                    used_clients.insert(h.client.clone());
                    let entry = self
                        .registry
                        .ensure(&h.key, &backend.key, &h.client.endpoint, &h.address())
                        .await?;
                    entries.insert(h.key.clone(), entry.clone());
                    hosts.push(UpstreamHost::new(h, runtime, client, entry));
                }
                // Every rule is its own health scope (DESIGN §5), with its own budget over its hosts.
                let budget = build::rule_budget(route.traffic.passive.as_ref());
                let group = budget.map(|(max, always)| {
                    let ejected = hosts.iter().filter(|h| h.health.view.is_ejected()).count();
                    Arc::new(EjectionGroup::new(hosts.len(), ejected, max, always))
                });
                groups.push(RuleGroup {
                    hosts: hosts.iter().map(|h| h.health.key.to_string()).collect(),
                    max_ejection_percent: budget.map_or(100, |b| b.0),
                    always_eject_one_endpoint: budget.is_some_and(|b| b.1),
                });
                for host in &hosts {
                    policies.push((
                        host.health.clone(),
                        HostPolicy {
                            passive: route.traffic.passive.clone(),
                            groups: group.iter().cloned().collect(),
                            active: route.traffic.active.clone().map(|config| ActiveProbe {
                                config,
                                client: host.client.clone(),
                                base_url: host.base_url.clone(),
                                // The credential requests get (API keys; probes are not signed).
                                auth: host.backend.static_auth.clone(),
                            }),
                        },
                    ));
                }
                rules.push(RuleSnap {
                    matches: rule.matches.clone(),
                    hosts,
                    request_timeout: rule.request_timeout,
                    stream_idle_timeout: rule.stream_idle_timeout,
                    models_owned_by: rule.models_owned_by.clone(),
                    models_created: rule.models_created_at.unwrap_or(loaded_at),
                });
            }

            let handle = match routes.get(&key) {
                Some(h) => h,
                None => {
                    let (actor, _join) = Actor::spawn(None, RouteActor, key.clone())
                        .await
                        .map_err(|e| LoadError::RouteActor {
                            route: key.clone(),
                            reason: e.to_string(),
                        })?;
                    routes.insert(
                        key.clone(),
                        RouteHandle {
                            actor,
                            retries_in_flight: Arc::new(AtomicU32::new(0)),
                        },
                    );
                    routes.get(&key).ok_or_else(|| LoadError::RouteActor {
                        route: key.clone(),
                        reason: "route actor vanished".into(),
                    })?
                }
            };
            let snap = Arc::new(RouteSnap {
                key: key.clone(),
                traffic: route.traffic.clone(),
                rules,
                retries_in_flight: handle.retries_in_flight.clone(),
            });
            let _ = handle.actor.cast(RouteMsg::Publish(snap.clone()));
            live_routes.insert(key);
            route_snaps.push(snap);
        }

        for (entry, policy) in policies {
            entry.configure(policy);
        }
        clients.retain(|k, _| used_clients.contains(k));
        let keep: HashSet<HostKey> = entries.keys().cloned().collect();
        self.registry.retain(&keep).await;
        routes.retain(|k, h| {
            let kept = live_routes.contains(k);
            if !kept {
                h.actor.stop(Some("route removed by reload".into()));
            }
            kept
        });

        // Published before the routes that can produce them, so a model of the new config is never
        // counted as `other` for lack of its name; `modelNameOverride` targets are config-chosen names too.
        crate::proxy::usage::set_configured_models(route_snaps.iter().flat_map(|r| {
            r.rules.iter().flat_map(|rule| {
                crate::routing::matcher::exact_models(&rule.matches)
                    .map(|m| m.to_string())
                    .chain(
                        rule.hosts
                            .iter()
                            .filter_map(|h| h.model_override.as_deref().map(str::to_string)),
                    )
                    .collect::<Vec<_>>()
            })
        }));
        self.snapshot.store(Arc::new(RoutingSnapshot {
            routes: route_snaps,
            max_body_bytes: self.settings.max_body_bytes,
        }));
        let mut hosts: Vec<Arc<HostEntry>> = entries.into_values().collect();
        hosts.sort_by(|a, b| a.key.cmp(&b.key));
        self.hosts.store(Arc::new(HostTable {
            hosts,
            groups,
            config_hash: config_hash(&cfg),
        }));
        for w in &cfg.warnings {
            tracing::warn!("config: {w}");
        }
        self.config.store(Arc::new(cfg));
        Ok(())
    }
}

/// FNV-1a of the routing table: equal on nodes that run the same routes, rules and backends, so their
/// host keys mean the same thing (DESIGN §6; not a security measure).
pub fn config_hash(cfg: &Config) -> u64 {
    crate::config::routing_fingerprint(cfg)
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        })
}
