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

use crate::config::model::{Config, PassiveHealthConfig};
use crate::config::{self, ConfigError};
use crate::health::actor::HostPolicy;
use crate::health::registry::{HealthRegistry, HostEntry, RegistryError};
use crate::health::view::EjectionGroup;
use crate::proxy::upstream::{build_client, UpstreamError};
use crate::routing::actor::{RouteActor, RouteMsg};
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
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    /// Request body limit.
    pub max_body_bytes: usize,
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
            registry: HealthRegistry::default(),
            routes: Mutex::new(HashMap::new()),
            reload_lock: Mutex::new(()),
        });
        gw.apply(cfg).await?;
        Ok(gw)
    }

    /// The routing snapshot in force now (lock-free).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<RoutingSnapshot>> {
        self.snapshot.load()
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

    async fn apply(&self, cfg: Config) -> Result<(), LoadError> {
        let _serial = self.reload_lock.lock().await;

        // Backends: one pooled client each, connect timeout from the first route that uses it.
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

        // Hosts, their passive policy (first route wins) and the rule groups they belong to.
        let mut host_policy: HashMap<
            String,
            (Option<PassiveHealthConfig>, Vec<Arc<EjectionGroup>>),
        > = HashMap::new();
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
                    let runtime = match backends.get(&r.backend) {
                        Some(b) => b.clone(),
                        None => {
                            let timeout = connect_timeouts
                                .get(&r.backend)
                                .copied()
                                .unwrap_or(route.traffic.connect_timeout);
                            let b = Arc::new(BackendRuntime {
                                key: backend.key.clone(),
                                schema: r.schema.clone(),
                                auth: backend.auth.clone(),
                                tls: backend.tls.is_some(),
                                client: build_client(&backend.key, backend.tls.as_ref(), timeout)?,
                            });
                            backends.insert(r.backend.clone(), b.clone());
                            b
                        }
                    };
                    for endpoint in &backend.endpoints {
                        let host_key = format!("{}|{}", backend.key, endpoint.authority());
                        let entry = match entries.get(&host_key) {
                            Some(e) => e.clone(),
                            None => {
                                let e = self
                                    .registry
                                    .ensure(&host_key, &backend.key, endpoint)
                                    .await?;
                                entries.insert(host_key.clone(), e.clone());
                                e
                            }
                        };
                        host_policy
                            .entry(host_key)
                            .or_insert_with(|| (route.traffic.passive.clone(), Vec::new()));
                        hosts.push(UpstreamHost {
                            priority: r.priority,
                            weight: r.weight,
                            backend: runtime.clone(),
                            endpoint: endpoint.clone(),
                            health: entry,
                        });
                    }
                }
                // maxEjectionPercent counts over every distinct host of the rule, all priorities.
                if let Some(passive) = &route.traffic.passive {
                    let distinct: HashSet<&str> =
                        hosts.iter().map(|h| h.health.key.as_str()).collect();
                    let ejected = hosts
                        .iter()
                        .filter(|h| h.health.view.is_ejected())
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
                        if let Some((_, groups)) = host_policy.get_mut(k) {
                            groups.push(group.clone());
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

        for (key, (passive, groups)) in host_policy {
            if let Some(e) = entries.get(&key) {
                e.configure(HostPolicy { passive, groups });
            }
        }
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
