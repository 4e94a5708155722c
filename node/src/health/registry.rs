//! The set of live BackendHealth actors, keyed by host, kept across config reloads.
//!
//! A reload rebuilds routes but must keep the health of hosts that still exist (DESIGN §2), so hosts are
//! looked up by their stable [`HostKey`] (route rule, backend, address) and only new hosts get new actors;
//! hosts that disappeared are stopped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::sync::Mutex;

use crate::config::model::Endpoint;
use crate::health::actor::{
    BackendHealth, HealthArgs, HealthMode, HealthMsg, HostPolicy, HostStatus,
};
use crate::health::events::{ClusterFact, HostEvents, LiveSetHandle};
use crate::health::key::HostKey;
use crate::health::outlier::Observation;
use crate::health::view::HostHealth;

/// How long a failed attempt waits for the health actor's acknowledgement before choosing anyway.
const ACK_TIMEOUT: Duration = Duration::from_secs(1);

/// One backend host as the request path sees it: its health flag and the way to report outcomes.
#[derive(Debug)]
pub struct HostEntry {
    /// Route rule, backend and address.
    pub key: HostKey,
    /// The `Backend` key (`namespace/name`).
    pub backend: String,
    /// The endpoint this host stands for.
    pub endpoint: Endpoint,
    /// Where it is dialled (`ip:port`, or `name:port` when the name did not resolve).
    pub address: String,
    /// The lock-free health flag.
    pub view: Arc<HostHealth>,
    actor: ActorRef<HealthMsg>,
}

impl HostEntry {
    /// Reports an outcome without waiting (successes: the common case). A success (a non-5xx answer, a
    /// connect that worked) only resets counters, so it is not sent at all while they are all 0 — the
    /// common case costs the request no message and the actor no wake-up. A success racing a failure
    /// that is being counted is ordered before it, as any two concurrent outcomes may be.
    pub fn report(&self, obs: Observation) {
        if obs.is_success() && self.view.success_is_noop() {
            return;
        }
        let _ = self.actor.cast(HealthMsg::Observe(obs));
    }

    /// Cools the host down until `until` (rate-limit cooldown extension): at once for this node's requests,
    /// and, when that lengthened it, told to the host's actor to share (fire-and-forget).
    pub fn cool_down(&self, until: std::time::Instant) {
        if self.view.cool_until(until) {
            let _ = self.actor.cast(HealthMsg::Cooldown(until));
        }
    }

    /// Reports a failed attempt and waits until the detector has run; returns whether the host is ejected.
    pub async fn report_failure(&self, obs: Observation) -> bool {
        match self
            .actor
            .call(|port| HealthMsg::ObserveAck(obs, port), Some(ACK_TIMEOUT))
            .await
        {
            Ok(CallResult::Success(ejected)) => ejected,
            _ => self.view.is_ejected(),
        }
    }

    /// The host's detector state, for `/status`.
    pub async fn status(&self) -> Option<HostStatus> {
        match self
            .actor
            .call(HealthMsg::Status, Some(Duration::from_secs(2)))
            .await
        {
            Ok(CallResult::Success(s)) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn configure(&self, policy: HostPolicy) {
        let _ = self.actor.cast(HealthMsg::Configure(Box::new(policy)));
    }

    /// Hands the host the cluster's verdict on it (the Gossip actor, when it changed).
    pub fn cluster(&self, fact: ClusterFact) {
        let _ = self.actor.cast(HealthMsg::Cluster(fact));
    }
}

/// Errors from the registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The actor system refused to start a BackendHealth actor.
    #[error("cannot start the health actor for {host}: {source}")]
    Spawn {
        /// The host key.
        host: String,
        /// Why.
        source: ractor::SpawnErr,
    },
}

/// How the registry's hosts behave and whom they tell.
#[derive(Clone, Default)]
pub struct HealthSettings {
    /// Timeline (default) or Envoy-exact.
    pub mode: Option<HealthMode>,
    /// Where the hosts' record changes go.
    pub events: Option<HostEvents>,
    /// The cluster's live set (`None` on a standalone node).
    pub live: Option<LiveSetHandle>,
}

/// Live hosts by key.
#[derive(Default)]
pub struct HealthRegistry {
    hosts: Mutex<HashMap<HostKey, Arc<HostEntry>>>,
    settings: HealthSettings,
}

impl HealthRegistry {
    /// A registry whose hosts behave as `settings` say.
    pub fn new(settings: HealthSettings) -> Self {
        HealthRegistry {
            hosts: Mutex::new(HashMap::new()),
            settings,
        }
    }

    /// Returns the entry for `key`, starting its actor if it is new. The actor starts with no policy; the
    /// caller sends one with [`HostEntry::configure`] once the rule groups are known.
    pub async fn ensure(
        &self,
        key: &HostKey,
        backend: &str,
        endpoint: &Endpoint,
        address: &str,
    ) -> Result<Arc<HostEntry>, RegistryError> {
        let mut hosts = self.hosts.lock().await;
        if let Some(e) = hosts.get(key) {
            return Ok(e.clone());
        }
        let view = Arc::new(HostHealth::default());
        let (actor, _join) = Actor::spawn(
            None,
            BackendHealth,
            HealthArgs {
                key: key.clone(),
                view: view.clone(),
                policy: HostPolicy {
                    passive: None,
                    groups: Vec::new(),
                    active: None,
                },
                mode: self.settings.mode.unwrap_or(HealthMode::Timeline),
                events: self.settings.events.clone(),
                live: self.settings.live.clone(),
            },
        )
        .await
        .map_err(|source| RegistryError::Spawn {
            host: key.to_string(),
            source,
        })?;
        let entry = Arc::new(HostEntry {
            key: key.clone(),
            backend: backend.to_string(),
            endpoint: endpoint.clone(),
            address: address.to_string(),
            view,
            actor,
        });
        hosts.insert(key.clone(), entry.clone());
        Ok(entry)
    }

    /// Stops every host not in `keep` (backends removed by a reload).
    pub async fn retain(&self, keep: &std::collections::HashSet<HostKey>) {
        let mut hosts = self.hosts.lock().await;
        hosts.retain(|k, e| {
            let kept = keep.contains(k);
            if !kept {
                e.actor.stop(Some("backend removed by reload".into()));
            }
            kept
        });
    }

    /// Every live host, sorted by key.
    pub async fn all(&self) -> Vec<Arc<HostEntry>> {
        let hosts = self.hosts.lock().await;
        let mut v: Vec<_> = hosts.values().cloned().collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }
}
