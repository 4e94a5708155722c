//! What a loaded config turns into: every route rule's hosts, keyed and grouped the way health scopes them.
//! Pure: the config and the resolved addresses in, a [`Plan`] out; no actors, sockets or clients.
//!
//! Why it is separate from the reload (`gateway.rs`): deciding *which* hosts exist — one per resolved
//! address of every endpoint of every backendRef of every rule, each its own health state (DESIGN §5
//! "Scope": Envoy makes every route rule a cluster) — is the part worth table-testing; building clients,
//! starting actors and swapping the snapshot is the small effectful step that acts on the plan.

use std::collections::HashMap;
use std::time::Duration;

use crate::config::model::{Config, Endpoint, PassiveHealthConfig, UpstreamTls};
use crate::health::key::HostKey;
use crate::routing::resolve::{hosts_of, Dial, Resolved};

/// What makes two endpoint clients interchangeable (so connections survive reloads and are shared by the
/// rules that name the same backend).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientKey {
    /// `namespace/name` of the Backend.
    pub backend: String,
    /// Where it is dialled.
    pub dial: Dial,
    /// The endpoint (URIs, Host and the TLS name come from it).
    pub endpoint: Endpoint,
    /// TLS settings.
    pub tls: Option<UpstreamTls>,
    /// `timeout.tcp.connectTimeout` of the first route that uses the backend.
    pub connect_timeout: Duration,
}

/// One host of one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPlan {
    /// Route rule, backend and address.
    pub key: HostKey,
    /// Index of the backendRef in its rule (Envoy Gateway's locality).
    pub backend_ref: usize,
    /// `backendRefs[].priority`.
    pub priority: u32,
    /// `backendRefs[].weight`.
    pub weight: u32,
    /// `backendRefs[].modelNameOverride`: the model this host is sent instead of the client's.
    pub model_override: Option<String>,
    /// The backendRef's merged `headerMutation` / `bodyMutation`.
    pub mutation: Option<std::sync::Arc<crate::config::model::Mutation>>,
    /// The client this host sends through.
    pub client: ClientKey,
}

impl HostPlan {
    /// Where the host is dialled, as `/status` shows it.
    pub fn address(&self) -> String {
        self.client.dial.authority()
    }
}

/// One rule of a route.
#[derive(Debug, Clone, PartialEq)]
pub struct RulePlan {
    /// Its hosts, in backendRef, endpoint, address order.
    pub hosts: Vec<HostPlan>,
}

/// One route.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePlan {
    /// `namespace/name`.
    pub key: String,
    /// Its rules, in order (index = the rule's place in the route).
    pub rules: Vec<RulePlan>,
}

/// Every route's hosts.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Routes in config order (the same order as `cfg.routes`).
    pub routes: Vec<RoutePlan>,
}

impl Plan {
    /// Every host of every rule.
    pub fn hosts(&self) -> impl Iterator<Item = &HostPlan> {
        self.routes
            .iter()
            .flat_map(|r| r.rules.iter())
            .flat_map(|r| r.hosts.iter())
    }
}

/// The hosts `cfg` routes to, given the addresses its fqdn endpoints resolved to.
pub fn plan(cfg: &Config, resolved: &Resolved) -> Plan {
    // A backend's connect timeout comes from the first route that uses it (one client per endpoint).
    let mut connect_timeouts: HashMap<&str, Duration> = HashMap::new();
    for route in &cfg.routes {
        for rule in &route.rules {
            for r in &rule.backend_refs {
                connect_timeouts
                    .entry(r.backend.as_str())
                    .or_insert(route.traffic.connect_timeout);
            }
        }
    }
    let routes = cfg
        .routes
        .iter()
        .map(|route| {
            let key = format!("{}/{}", route.namespace, route.name);
            let rules = route
                .rules
                .iter()
                .enumerate()
                .map(|(index, rule)| {
                    let mut hosts = Vec::new();
                    for (backend_ref, r) in rule.backend_refs.iter().enumerate() {
                        let Some(backend) = cfg.backends.get(&r.backend) else {
                            continue;
                        };
                        let connect_timeout = connect_timeouts
                            .get(r.backend.as_str())
                            .copied()
                            .unwrap_or(route.traffic.connect_timeout);
                        for endpoint in &backend.endpoints {
                            for (address, dial) in hosts_of(endpoint, resolved) {
                                hosts.push(HostPlan {
                                    key: HostKey::new(&key, index, &backend.key, &address),
                                    backend_ref,
                                    priority: r.priority,
                                    weight: r.weight,
                                    model_override: r.model_name_override.clone(),
                                    mutation: r.mutation.clone(),
                                    client: ClientKey {
                                        backend: backend.key.clone(),
                                        dial,
                                        endpoint: endpoint.clone(),
                                        tls: backend.tls.clone(),
                                        connect_timeout,
                                    },
                                });
                            }
                        }
                    }
                    RulePlan { hosts }
                })
                .collect();
            RoutePlan { key, rules }
        })
        .collect();
    Plan { routes }
}

/// The ejection budget of one rule (`maxEjectionPercent` over its distinct hosts, all priorities), or
/// `None` when the route has no passive health check.
pub fn rule_budget(passive: Option<&PassiveHealthConfig>) -> Option<(u32, bool)> {
    passive.map(|p| (p.max_ejection_percent, p.always_eject_one_endpoint))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::net::IpAddr;

    use super::*;
    use crate::config::model::{
        Backend, BackendRef, Route, Rule, Schema, SchemaName, SchemaSource, TrafficPolicy,
    };

    fn backend(name: &str, endpoints: Vec<Endpoint>) -> Backend {
        Backend {
            key: format!("default/{name}"),
            name: name.into(),
            namespace: "default".into(),
            endpoints,
            tls: None,
            auth: None,
        }
    }

    fn backend_ref(name: &str, priority: u32) -> BackendRef {
        BackendRef {
            ref_name: name.into(),
            backend: format!("default/{name}"),
            priority,
            weight: 1,
            schema: Schema {
                name: SchemaName::OpenAI,
                version: None,
            },
            schema_source: SchemaSource::RouteInput,
            model_name_override: None,
            mutation: None,
        }
    }

    fn rule(refs: Vec<BackendRef>) -> Rule {
        Rule {
            matches: Vec::new(),
            backend_refs: refs,
            request_timeout: Duration::from_secs(60),
            models_owned_by: "Envoy AI Gateway".into(),
            models_created_at: None,
            stream_idle_timeout: None,
        }
    }

    fn config(rules: Vec<Rule>, backends: Vec<Backend>) -> Config {
        Config {
            sources: Vec::new(),
            gateway_port: None,
            routes: vec![Route {
                name: "chat".into(),
                namespace: "default".into(),
                input_schema: Schema {
                    name: SchemaName::OpenAI,
                    version: None,
                },
                rules,
                traffic: TrafficPolicy::default(),
                traffic_policy_name: None,
            }],
            backends: backends.into_iter().map(|b| (b.key.clone(), b)).collect(),
            warnings: Vec::new(),
        }
    }

    fn keys(plan: &Plan) -> Vec<String> {
        plan.hosts().map(|h| h.key.to_string()).collect()
    }

    #[test]
    fn an_fqdn_with_three_addresses_is_three_hosts_of_one_backend_ref() {
        let fqdn = Endpoint::Fqdn {
            hostname: "api.example.com".into(),
            port: 443,
        };
        let cfg = config(
            vec![rule(vec![backend_ref("api", 0), backend_ref("local", 1)])],
            vec![
                backend("api", vec![fqdn]),
                backend(
                    "local",
                    vec![Endpoint::Ip {
                        address: IpAddr::from([127, 0, 0, 1]),
                        port: 9000,
                    }],
                ),
            ],
        );
        let ips: BTreeSet<IpAddr> = (1..=3).map(|i| IpAddr::from([10, 0, 0, i])).collect();
        let resolved: Resolved = BTreeMap::from([(("api.example.com".to_string(), 443), ips)]);
        let plan = plan(&cfg, &resolved);
        assert_eq!(
            keys(&plan),
            vec![
                "default/chat#0|default/api|api.example.com:443@10.0.0.1",
                "default/chat#0|default/api|api.example.com:443@10.0.0.2",
                "default/chat#0|default/api|api.example.com:443@10.0.0.3",
                "default/chat#0|default/local|127.0.0.1:9000",
            ]
        );
        let refs: Vec<usize> = plan.hosts().map(|h| h.backend_ref).collect();
        assert_eq!(refs, vec![0, 0, 0, 1]);
        assert_eq!(plan.hosts().last().map(|h| h.priority), Some(1));
    }

    #[test]
    fn the_same_backend_in_two_rules_is_two_hosts_sharing_one_client() {
        let ip = Endpoint::Ip {
            address: IpAddr::from([127, 0, 0, 1]),
            port: 9001,
        };
        let cfg = config(
            vec![
                rule(vec![backend_ref("openai", 0)]),
                rule(vec![backend_ref("openai", 0)]),
            ],
            vec![backend("openai", vec![ip])],
        );
        let plan = plan(&cfg, &Resolved::new());
        assert_eq!(
            keys(&plan),
            vec![
                "default/chat#0|default/openai|127.0.0.1:9001",
                "default/chat#1|default/openai|127.0.0.1:9001",
            ]
        );
        let clients: Vec<&ClientKey> = plan.hosts().map(|h| &h.client).collect();
        assert_eq!(clients[0], clients[1], "one client (and its pool) for both");
    }

    #[test]
    fn a_missing_backend_gives_no_host() {
        let cfg = config(vec![rule(vec![backend_ref("gone", 0)])], vec![]);
        assert_eq!(plan(&cfg, &Resolved::new()).hosts().count(), 0);
    }
}
