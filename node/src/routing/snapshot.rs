//! The routing snapshot: an immutable, `ArcSwap`-published picture of every route, rule and backend host,
//! read by connection tasks without locks (DESIGN §1). A reload builds a new one and swaps it in; requests in
//! flight keep the one they started with.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::model::{BackendAuth, Endpoint, RuleMatch, Schema, TrafficPolicy};
use crate::health::registry::HostEntry;
use crate::proxy::upstream::HttpClient;
use crate::routing::build::HostPlan;
use crate::routing::resolve::Dial;
use crate::routing::select::{Candidate, Candidates};

/// Everything the request path needs, swapped whole on reload.
pub struct RoutingSnapshot {
    /// Routes in config order.
    pub routes: Vec<Arc<RouteSnap>>,
    /// Request body limit in bytes.
    pub max_body_bytes: usize,
}

/// One `AIGatewayRoute`.
pub struct RouteSnap {
    /// `namespace/name`.
    pub key: String,
    /// The attached traffic policy.
    pub traffic: TrafficPolicy,
    /// Rules in order.
    pub rules: Vec<RuleSnap>,
    /// Retries in flight now, bounded by `circuitBreaker.maxParallelRetries` (kept across reloads).
    pub retries_in_flight: Arc<AtomicU32>,
}

/// One rule of a route.
pub struct RuleSnap {
    /// `matches[]`.
    pub matches: Vec<RuleMatch>,
    /// Every backend host of the rule (one per backendRef endpoint).
    pub hosts: Vec<UpstreamHost>,
    /// `timeouts.request`.
    pub request_timeout: Duration,
    /// `streamIdleTimeout`.
    pub stream_idle_timeout: Option<Duration>,
    /// `modelsOwnedBy`.
    pub models_owned_by: String,
    /// `GET /v1/models` `created` (Unix seconds): `modelsCreatedAt`, the route's creationTimestamp, or
    /// when this node loaded the config.
    pub models_created: u64,
}

impl RuleSnap {
    /// A host at its trial that this node runs and that this request has not tried yet, taken for this
    /// attempt (DESIGN §6 "Single trial": exactly one request per trial). Reads one atomic per host; the
    /// common case (no trial anywhere) takes nothing.
    pub fn take_trial(&self, tried: impl Fn(usize) -> bool) -> Option<usize> {
        self.hosts
            .iter()
            .enumerate()
            .find(|(i, h)| {
                h.health.view.trial_open() && !tried(*i) && h.health.view.try_take_trial()
            })
            .map(|(i, _)| i)
    }

    /// The shortest cooldown left among the rule's hosts at `now`, when every host with a weight cools:
    /// how long a client should wait before anything can be sent.
    pub fn all_cooling(&self, now: std::time::Instant) -> Option<std::time::Duration> {
        let mut shortest: Option<std::time::Duration> = None;
        for h in self.hosts.iter().filter(|h| h.weight > 0) {
            let left = h.health.view.cooling_left(now)?;
            shortest = Some(shortest.map_or(left, |s| s.min(left)));
        }
        shortest
    }

    /// The hosts as selection candidates, health read from the lock-free view.
    pub fn candidates(&self) -> Candidates {
        self.candidates_at(None)
    }

    /// [`Self::candidates`], where a host still in its rate-limit cooldown at `cooling_at` weighs 0: it is
    /// neither chosen nor counted, not even in panic (a cooldown is the provider asking for no traffic).
    pub fn candidates_at(&self, cooling_at: Option<std::time::Instant>) -> Candidates {
        self.hosts
            .iter()
            .map(|h| Candidate {
                priority: h.priority,
                weight: match cooling_at {
                    Some(now) if h.health.view.cooling_left(now).is_some() => 0,
                    _ => h.weight,
                },
                healthy: !h.health.view.is_ejected(),
                // A rule with more than 65,535 backendRefs folds the rest into one locality.
                locality: u16::try_from(h.backend_ref).unwrap_or(u16::MAX),
            })
            .collect()
    }
}

/// One backend host within a rule.
pub struct UpstreamHost {
    /// `backendRefs[].priority`.
    pub priority: u32,
    /// `backendRefs[].weight`.
    pub weight: u32,
    /// Index of the backendRef in the rule's `backendRefs` that this host comes from: the locality that
    /// weight and selection group its addresses by.
    pub backend_ref: usize,
    /// The backend it belongs to.
    pub backend: Arc<BackendRuntime>,
    /// The endpoint.
    pub endpoint: Endpoint,
    /// Where this host is dialled (one resolved address of the endpoint), pinned in its client.
    pub dial: Dial,
    /// The pooled client of this host: its connector always dials `dial`, while URIs, Host and the TLS
    /// server name keep the endpoint's name.
    pub client: HttpClient,
    /// Health flag and outcome reporting.
    pub health: Arc<HostEntry>,
    /// [`UpstreamHost::compute_base_url`], computed once when the snapshot is built.
    pub base_url: String,
    /// What the request path builds every attempt's URI and `Host` from, derived from `base_url` once
    /// (see [`UpstreamHost::derive_request_parts`]).
    pub request_parts: Option<RequestParts>,
    /// `endpoint.host()`, formatted once: the name SigV4 takes the region from.
    pub endpoint_host: String,
    /// The host key as a shared metric label value (no allocation per request).
    pub metric_backend: Arc<str>,
    /// `switchyard_upstream_requests_total{backend=this host, outcome="200"}`, registered once: the
    /// outcome of nearly every attempt, counted without a registry lookup.
    pub ok_counter: metrics::Counter,
    /// `backendRefs[].modelNameOverride`: the model this host is sent instead of the client's.
    pub model_override: Option<Arc<str>>,
    /// `headerMutation` / `bodyMutation` of its backendRef and AIServiceBackend, merged.
    pub mutation: Option<Arc<crate::config::model::Mutation>>,
}

/// The parts of `base_url` every attempt to a host reuses, so that no attempt formats or parses them.
#[derive(Clone, Debug)]
pub struct RequestParts {
    /// `http` or `https`.
    pub scheme: http::uri::Scheme,
    /// The authority, without the scheme's default port.
    pub authority: http::uri::Authority,
    /// `Host` of requests: the authority.
    pub host_header: http::HeaderValue,
}

impl UpstreamHost {
    /// The host `plan` describes, sending through `client`, reporting to `health`; everything attempts
    /// reuse (URL parts, metric labels) is derived here, once per snapshot.
    pub fn new(
        plan: &HostPlan,
        backend: Arc<BackendRuntime>,
        client: HttpClient,
        health: Arc<HostEntry>,
    ) -> Self {
        let mut host = UpstreamHost {
            backend_ref: plan.backend_ref,
            priority: plan.priority,
            weight: plan.weight,
            backend,
            endpoint: plan.client.endpoint.clone(),
            dial: plan.client.dial.clone(),
            client,
            metric_backend: health.key.shared(),
            ok_counter: metrics::counter!("switchyard_upstream_requests_total",
                "backend" => health.key.shared(), "outcome" => "200"),
            health,
            base_url: String::new(),
            request_parts: None,
            endpoint_host: String::new(),
            model_override: plan.model_override.as_deref().map(Arc::from),
            mutation: plan.mutation.clone(),
        };
        host.derive_request_parts();
        host
    }

    /// Fills `base_url`, `request_parts` and `endpoint_host` from the endpoint (once, when the snapshot is
    /// built). `request_parts` stays `None` only if the URL does not parse; attempts then build the URI
    /// from `base_url` and fail with its parse error.
    fn derive_request_parts(&mut self) {
        self.base_url = self.compute_base_url();
        self.endpoint_host = self.endpoint.host();
        self.request_parts = self.base_url.parse::<http::Uri>().ok().and_then(|uri| {
            let parts = uri.into_parts();
            let authority = parts.authority?;
            Some(RequestParts {
                scheme: parts.scheme?,
                host_header: http::HeaderValue::from_str(authority.as_str()).ok()?,
                authority,
            })
        });
    }

    /// `http(s)://authority`, without the port when it is the scheme's default, so that the authority the
    /// client sends (`Host`, or `:authority` on HTTP/2) is the one SigV4 signs (RFC 9110 §4.2: the default
    /// port is omitted).
    pub fn compute_base_url(&self) -> String {
        let (scheme, default_port) = if self.backend.tls {
            ("https", 443)
        } else {
            ("http", 80)
        };
        if self.endpoint.port() == default_port {
            let host = self.endpoint.authority();
            let host = host
                .strip_suffix(&format!(":{default_port}"))
                .unwrap_or(&host);
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{}", self.endpoint.authority())
        }
    }
}

/// A backend as the request path uses it.
pub struct BackendRuntime {
    /// `namespace/name`.
    pub key: String,
    /// Schema expected by the backend.
    pub schema: Schema,
    /// Credentials.
    pub auth: Option<BackendAuth>,
    /// The credential header every request carries, when it is the same for all
    /// ([`crate::schema::auth::static_header`]): built once instead of per request. `None`: see `auth`.
    pub static_auth: Option<(http::HeaderName, http::HeaderValue)>,
    /// The dynamic credential (AWS keys, an Entra token) kept fresh in the background, when there is one.
    pub credential: Option<Arc<crate::credentials::LiveCredential>>,
    /// Whether the connection uses TLS.
    pub tls: bool,
}

/// Guard for one retry slot of a route (`maxParallelRetries`).
pub struct RetrySlot(Arc<AtomicU32>);

impl RetrySlot {
    /// Takes a slot if fewer than `max` retries are in flight.
    pub fn acquire(counter: &Arc<AtomicU32>, max: u32) -> Option<RetrySlot> {
        counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| RetrySlot(counter.clone()))
    }
}

impl Drop for RetrySlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
