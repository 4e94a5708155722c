//! The admin listener (default loopback): `/healthz`, `/readyz` (what the L4 load balancer checks),
//! `/status` (JSON for `switchyard status`), `/metrics` (Prometheus text) and `POST /reload`. Who may call
//! which endpoint is decided by [`crate::admin_access`] before anything is served.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use metrics_exporter_prometheus::PrometheusHandle;
use ractor::rpc::CallResult;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::admin_access::AdminAccess;
use crate::cluster::gossip::{BackendClusterStatus, ClusterStatus, GossipMsg};
use crate::gateway::Gateway;
use crate::health::actor::HostStatus;
use crate::proxy::body::ProxyBody;
use crate::reload::Reloader;
use crate::routing::actor::{RouteLoad, RouteMsg};
use crate::shutdown::Shutdown;

/// What the admin endpoints read.
pub struct AdminState {
    /// Gateway state.
    pub gateway: Arc<Gateway>,
    /// Shutdown state (readiness).
    pub shutdown: Shutdown,
    /// Prometheus renderer.
    pub metrics: PrometheusHandle,
    /// Node id.
    pub node_id: String,
    /// Process start.
    pub started: Instant,
    /// Client listener address.
    pub listen: String,
    /// The Gossip actor, when the node is in a cluster.
    pub gossip: Option<ractor::ActorRef<GossipMsg>>,
    /// Token, Host and form-post rules.
    pub access: AdminAccess,
    /// The reload entry point (`POST /reload`, shared with SIGHUP).
    pub reloader: Arc<Reloader>,
}

/// `/status` JSON.
#[derive(Debug, Serialize)]
pub struct NodeStatus {
    /// Node id.
    pub node_id: String,
    /// Build version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// Client listener.
    pub listen: String,
    /// Config sources.
    pub config: Vec<String>,
    /// Ready for traffic.
    pub ready: bool,
    /// Routes and their priority load.
    pub routes: Vec<RouteLoad>,
    /// Every backend host.
    pub backends: Vec<BackendStatus>,
    /// Membership, cluster view and gossip counters (absent on a standalone node).
    pub cluster: Option<ClusterStatus>,
    /// Each backend's credential: kind and state, never the secret.
    pub credentials: Vec<BackendCredential>,
}

/// One backend's credential in `/status`.
#[derive(Debug, Serialize)]
pub struct BackendCredential {
    /// Backend key.
    pub backend: String,
    /// Kind, state, validity and the last error.
    #[serde(flatten)]
    pub status: crate::credentials::CredentialStatus,
}

/// One backend host in `/status`.
#[derive(Debug, Serialize)]
pub struct BackendStatus {
    /// Host key (route rule, backend, address).
    pub host: String,
    /// The route rule (`namespace/route#index`): the health scope.
    pub rule: String,
    /// Backend key.
    pub backend: String,
    /// Endpoint `host:port`.
    pub endpoint: String,
    /// Dialled address (`ip:port`; `name:port` when the name did not resolve).
    pub address: String,
    /// Lowest priority it serves at.
    pub priority: Option<u32>,
    /// Detector state (None if the actor did not answer).
    #[serde(flatten)]
    pub health: Option<HostStatus>,
    /// This node applies a cluster ejection of the host.
    pub cluster_ejected: bool,
    /// The cluster's view of the host, when any node has observed it.
    pub cluster: Option<BackendClusterStatus>,
}

/// Serves the admin API until the process exits.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let st = state.clone();
        let svc = service_fn(move |req| route(st.clone(), req));
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn route(
    st: Arc<AdminState>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    if let Err(refusal) = st
        .access
        .check(req.method(), req.uri().path(), host, req.headers())
    {
        tracing::debug!(path = req.uri().path(), status = %refusal.status, reason = refusal.message,
            "admin request refused");
        let mut r = text(refusal.status, format!("{}\n", refusal.message));
        if refusal.status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"switchyard-admin\""),
            );
        }
        return Ok(r);
    }
    let resp = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") => {
            if st.shutdown.is_draining() {
                text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
            } else if !has_routes(&st) {
                // A node without routes would answer every request with 404: keep it out of the load
                // balancer until a config with routes is loaded.
                text(StatusCode::SERVICE_UNAVAILABLE, "no routes\n")
            } else {
                text(StatusCode::OK, "ready\n")
            }
        }
        (&Method::GET, "/metrics") => {
            // /readyz as a series, so that alerts see a node stuck out of rotation (a draining node still
            // serves /metrics). Set at scrape time: nothing on the request path pays for it.
            metrics::gauge!("switchyard_ready").set(if st.shutdown.is_draining() {
                0.0
            } else {
                1.0
            });
            let mut r = text(StatusCode::OK, st.metrics.render());
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        (&Method::GET, "/status") => json(StatusCode::OK, &status(&st).await),
        (&Method::POST, "/reload") => match st.reloader.reload().await {
            Ok(()) => json(StatusCode::OK, &serde_json::json!({"reloaded": true})),
            Err(e) => {
                // Counted and logged by the reloader.
                json(
                    StatusCode::BAD_REQUEST,
                    &serde_json::json!({"reloaded": false, "error": e.to_string()}),
                )
            }
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    };
    Ok(resp)
}

/// Builds the `/status` document.
pub async fn status(st: &AdminState) -> NodeStatus {
    let gw = &st.gateway;
    let mut routes = Vec::new();
    for (_, actor) in gw.route_actors().await {
        if let Ok(CallResult::Success(load)) = actor
            .call(RouteMsg::Load, Some(Duration::from_secs(2)))
            .await
        {
            routes.push(load);
        }
    }
    let cluster = match &st.gossip {
        Some(g) => match g
            .call(GossipMsg::Status, Some(Duration::from_secs(2)))
            .await
        {
            Ok(CallResult::Success(c)) => Some(c),
            _ => None,
        },
        None => None,
    };
    let snapshot = gw.snapshot();
    let mut backends = Vec::new();
    for host in gw.registry().all().await {
        let priority = snapshot
            .routes
            .iter()
            .flat_map(|r| r.rules.iter())
            .flat_map(|r| r.hosts.iter())
            .filter(|h| h.health.key == host.key)
            .map(|h| h.priority)
            .min();
        backends.push(BackendStatus {
            host: host.key.to_string(),
            rule: host.key.rule().to_string(),
            backend: host.backend.clone(),
            endpoint: host.endpoint.authority(),
            address: host.address.clone(),
            priority,
            health: host.status().await,
            cluster_ejected: host.view.is_cluster_ejected(),
            cluster: cluster
                .as_ref()
                .and_then(|c| c.backends.get(host.key.as_str()).cloned()),
        });
    }
    let mut credentials: Vec<BackendCredential> = Vec::new();
    let now = std::time::SystemTime::now();
    for b in snapshot
        .routes
        .iter()
        .flat_map(|r| r.rules.iter())
        .flat_map(|r| r.hosts.iter())
        .map(|h| &h.backend)
    {
        if credentials.iter().any(|c| c.backend == b.key) {
            continue;
        }
        if let Some(status) =
            crate::credentials::status_of(b.auth.as_ref(), b.credential.as_deref(), now)
        {
            credentials.push(BackendCredential {
                backend: b.key.clone(),
                status,
            });
        }
    }
    NodeStatus {
        node_id: st.node_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: st.started.elapsed().as_secs(),
        listen: st.listen.clone(),
        config: gw
            .config()
            .sources
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        ready: !st.shutdown.is_draining() && has_routes(st),
        routes,
        backends,
        cluster,
        credentials,
    }
}

/// Whether the routing snapshot in force has any route (lock-free read).
fn has_routes(st: &AdminState) -> bool {
    !st.gateway.snapshot().routes.is_empty()
}

fn text(status: StatusCode, body: impl Into<bytes::Bytes>) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<ProxyBody> {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    let mut r = text(status, body);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
