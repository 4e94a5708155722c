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

use crate::config::model::{Config, Endpoint, UpstreamTls};
use crate::config::{self, ConfigError};
use crate::health::active::ActiveProbe;
use crate::health::actor::HostPolicy;
use crate::health::registry::{HealthRegistry, HostEntry, RegistryError};
use crate::health::view::EjectionGroup;
use crate::proxy::upstream::{build_client, HttpClient, UpstreamError};
use crate::routing::actor::{RouteActor, RouteMsg};
use crate::routing::resolve::{fqdn_endpoints, hosts_of, resolve_all, Dial, Resolved};
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
    /// The Gossip actor, when the node is in a cluster.
    pub gossip: Option<ActorRef<crate::cluster::gossip::GossipMsg>>,
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
}

/// How long one DNS lookup may take during a (re)load or refresh.
const DNS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What makes two endpoint clients interchangeable.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    backend: String,
    dial: Dial,
    endpoint: Endpoint,
    tls: Option<UpstreamTls>,
    connect_timeout: std::time::Duration,
}

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
            registry: HealthRegistry::new(settings.gossip.clone()),
            routes: Mutex::new(HashMap::new()),
            reload_lock: Mutex::new(()),
            resolved: ArcSwap::from_pointee(Resolved::new()),
            clients: Mutex::new(HashMap::new()),
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

    /// Re-reads the config file and swaps it in; on error the running config is kept.
    pub async fn reload(&self) -> Result<(), LoadError> {
        let cfg = config::load(&self.config_path)?;
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
        // Names new to this config are resolved before it goes live; known ones wait for the refresh task.
        let wanted = fqdn_endpoints(&cfg);
        let known = self.resolved.load_full();
        if wanted.iter().any(|k| !known.contains_key(k)) {
            let fresh = resolve_all(&cfg, DNS_TIMEOUT).await;
            self.resolved.store(Arc::new(fresh));
        }
        let resolved = self.resolved.load_full();

        // Backends: connect timeout from the first route that uses each.
        let mut connect_timeouts = HashMap::new();
        for route in &cfg.routes {
            for rule in &route.rules {
                for r in &rule.backend_refs {
                    connect_timeouts
                        .entry(r.backend.clone())
                        .or_insert(route.traffic.connect_timeout);
                }
            }
        }
        let mut backends: BTreeMap<String, Arc<BackendRuntime>> = BTreeMap::new();
        let mut clients = self.clients.lock().await;
        let mut used_clients = HashSet::new();

        // Hosts, their policy (first route wins) and the rule groups they belong to.
        let mut host_policy: HashMap<String, HostPolicy> = HashMap::new();
        let mut entries: HashMap<String, Arc<HostEntry>> = HashMap::new();
        let mut route_snaps = Vec::new();
        let mut routes = self.routes.lock().await;
        let mut live_routes = HashSet::new();

        for route in &cfg.routes {
            let key = format!("{}/{}", route.namespace, route.name);
            let mut rules = Vec::new();
            for rule in &route.rules {
                let mut hosts = Vec::new();
                for r in &rule.backend_refs {
                    let Some(backend) = cfg.backends.get(&r.backend) else {
                        continue;
                    };
                    let runtime = backends
                        .entry(r.backend.clone())
                        .or_insert_with(|| {
                            Arc::new(BackendRuntime {
                                key: backend.key.clone(),
                                schema: r.schema.clone(),
                                auth: backend.auth.clone(),
                                static_auth: crate::schema::auth::static_header(
                                    r.schema.name,
                                    backend.auth.as_ref(),
                                ),
                                tls: backend.tls.is_some(),
                            })
                        })
                        .clone();
                    let timeout = connect_timeouts
                        .get(&r.backend)
                        .copied()
                        .unwrap_or(route.traffic.connect_timeout);
                    for endpoint in &backend.endpoints {
                        for (suffix, dial) in hosts_of(endpoint, &resolved) {
                            let client_key = ClientKey {
                                backend: backend.key.clone(),
                                dial: dial.clone(),
                                endpoint: endpoint.clone(),
                                tls: backend.tls.clone(),
                                connect_timeout: timeout,
                            };
                            let client = match clients.get(&client_key) {
                                Some(c) => c.clone(),
                                None => {
                                    let c = build_client(
                                        &backend.key,
                                        &endpoint.host(),
                                        &dial,
                                        backend.tls.as_ref(),
                                        timeout,
                                        self.settings.upstream_bind,
                                    )?;
                                    clients.insert(client_key.clone(), c.clone());
                                    c
                                }
                            };
                            used_clients.insert(client_key);
                            let host_key = format!("{}|{}", backend.key, suffix);
                            let entry = match entries.get(&host_key) {
                                Some(e) => e.clone(),
                                None => {
                                    let e = self
                                        .registry
                                        .ensure(
                                            &host_key,
                                            &backend.key,
                                            endpoint,
                                            &dial.authority(),
                                        )
                                        .await?;
                                    entries.insert(host_key.clone(), e.clone());
                                    e
                                }
                            };
                            let mut host = UpstreamHost {
                                priority: r.priority,
                                weight: r.weight,
                                backend: runtime.clone(),
                                endpoint: endpoint.clone(),
                                dial,
                                client,
                                metric_backend: Arc::from(entry.key.as_str()),
                                ok_counter: metrics::counter!("switchyard_upstream_requests_total",
                                    "backend" => entry.key.clone(), "outcome" => "200"),
                                health: entry,
                                base_url: String::new(),
                                request_parts: None,
                                endpoint_host: String::new(),
                                model_override: r.model_name_override.as_deref().map(Arc::from),
                            };
                            host.derive_request_parts();
                            host_policy.entry(host_key).or_insert_with(|| HostPolicy {
                                passive: route.traffic.passive.clone(),
                                groups: Vec::new(),
                                active: route.traffic.active.clone().map(|config| ActiveProbe {
                                    config,
                                    client: host.client.clone(),
                                    base_url: host.base_url.clone(),
                                    // The credential requests get (API keys; probes are not signed).
                                    auth: host.backend.static_auth.clone(),
                                }),
                            });
                            hosts.push(host);
                        }
                    }
                }
                // maxEjectionPercent counts over every distinct host of the rule, all priorities.
                if let Some(passive) = &route.traffic.passive {
                    let distinct: HashSet<&str> =
                        hosts.iter().map(|h| h.health.key.as_str()).collect();
                    let ejected = hosts
                        .iter()
                        .filter(|h| h.health.view.is_locally_ejected())
                        .map(|h| h.health.key.as_str())
                        .collect::<HashSet<_>>()
                        .len();
                    let group = Arc::new(EjectionGroup::new(
                        distinct.len(),
                        ejected,
                        passive.max_ejection_percent,
                        passive.always_eject_one_endpoint,
                    ));
                    for k in distinct {
                        if let Some(policy) = host_policy.get_mut(k) {
                            policy.groups.push(group.clone());
                        }
                    }
                }
                rules.push(RuleSnap {
                    matches: rule.matches.clone(),
                    hosts,
                    request_timeout: rule.request_timeout,
                    models_owned_by: rule.models_owned_by.clone(),
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

        for (key, policy) in host_policy {
            if let Some(e) = entries.get(&key) {
                e.configure(policy);
            }
        }
        clients.retain(|k, _| used_clients.contains(k));
        let keep: HashSet<String> = entries.keys().cloned().collect();
        self.registry.retain(&keep).await;
        routes.retain(|k, h| {
            let kept = live_routes.contains(k);
            if !kept {
                h.actor.stop(Some("route removed by reload".into()));
            }
            kept
        });

        self.snapshot.store(Arc::new(RoutingSnapshot {
            routes: route_snaps,
            max_body_bytes: self.settings.max_body_bytes,
        }));
        for w in &cfg.warnings {
            tracing::warn!("config: {w}");
        }
        self.config.store(Arc::new(cfg));
        Ok(())
    }
}
