//! `/v1/responses` beyond what chat has (issue 17 item 4): which backends may answer it, where a stored
//! response lives, and the endpoints of stored responses, which carry no `model` to route by.
//!
//! A create (`POST /v1/responses`) goes through the same attempt loop as chat (`forward`), with three
//! differences that this module decides:
//! - only OpenAI-schema backends (OpenAI, AzureOpenAI) can answer it: the others of the rule are left out
//!   of the choice (weight 0, as if absent), and a rule with none at all is a 422 naming its backends;
//! - a create with `previous_response_id` goes first to the backend that holds that response, when it is
//!   healthy (stateful chaining); otherwise it fails over as usual and the backend that gets it answers
//!   without the earlier turns (docs/translation.md says what the client loses);
//! - the id of each answer is remembered with the backend that made it ([`ResponseHomes`]).
//!
//! `GET`/`DELETE /v1/responses/{id}`, `GET …/{id}/input_items` and `POST …/{id}/cancel` go to the backend
//! remembered for the id. An id this node has not seen (made through another node, before a restart, or
//! evicted) is looked for: the OpenAI-schema backends of the config are asked in priority order, healthy
//! first, until one answers something other than 404.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};

use bytes::Bytes;
use http::uri::PathAndQuery;
use http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use crate::config::model::SchemaName;
use crate::gateway::Gateway;
use crate::health::outlier::Observation;
use crate::proxy::body::{ProxyBody, UpstreamBody};
use crate::proxy::error::GatewayError;
use crate::proxy::forward::{
    auth_error, is_stripped_request_header, record_upstream, status_label,
};
use crate::proxy::upstream::LocalFailure;
use crate::routing::select::{Candidate, Candidates, Selection};
use crate::routing::snapshot::{RuleSnap, UpstreamHost};
use crate::schema::responses::{self as wire, StoredOp, StoredPathError};
use crate::schema::{self, auth, ResponseCtx};

/// Response ids remembered per node. At most [`wire::MAX_ID_LEN`] bytes each plus a shared backend name:
/// a few MiB whatever clients send.
pub const MAX_REMEMBERED: usize = 65_536;

/// Backends asked for an id this node has not seen, at most.
pub const MAX_LOOKUPS: usize = 8;

/// Whether a backend of `schema` speaks the Responses API: OpenAI and any OpenAI-compatible server, and
/// Azure OpenAI (`/openai/v1/responses`). Bedrock and Anthropic have no equivalent.
pub fn speaks_responses(schema: SchemaName) -> bool {
    matches!(schema, SchemaName::OpenAI | SchemaName::AzureOpenAI)
}

/// What the attempt loop needs to know about a create.
#[derive(Debug, Clone, Default)]
pub struct CreateCtx {
    /// The backend (`namespace/name`) remembered for the body's `previous_response_id`.
    pub holder: Option<Arc<str>>,
}

impl CreateCtx {
    /// Reads the create body's `previous_response_id` and looks up where it lives.
    pub fn of(body: &[u8]) -> CreateCtx {
        let holder = wire::previous_response_id(body).and_then(|id| homes().home(&id));
        CreateCtx { holder }
    }

    /// The first attempt of a chained create: a healthy host of the backend that holds the previous
    /// response, if the rule has one.
    pub fn preferred(&self, rule: &RuleSnap) -> Option<Selection> {
        let holder = self.holder.as_deref()?;
        rule.hosts
            .iter()
            .position(|h| {
                h.weight > 0
                    && *h.backend.key == *holder
                    && speaks_responses(h.backend.schema.name)
                    && !h.health.view.is_ejected()
            })
            .map(|i| Selection {
                host: i,
                priority: rule.hosts[i].priority,
                panic: false,
            })
    }
}

/// The rule's hosts as selection candidates for a create: those that cannot speak it get weight 0, which
/// takes them out of the choice and out of the priority levels' counts, as if the rule did not have them.
pub fn candidates(rule: &RuleSnap, cooling_at: Option<std::time::Instant>) -> Candidates {
    let mut cands = rule.candidates_at(cooling_at);
    for (c, h) in cands.iter_mut().zip(&rule.hosts) {
        if !speaks_responses(h.backend.schema.name) {
            *c = Candidate { weight: 0, ..*c };
        }
    }
    cands
}

/// Whether host `i` of `rule` may take a create (for the single trial, which picks outside the load).
pub fn host_speaks(rule: &RuleSnap, i: usize) -> bool {
    rule.hosts
        .get(i)
        .is_some_and(|h| speaks_responses(h.backend.schema.name))
}

/// 422 when no backend of the rule can answer a create: nothing to fail over to, and a clearer answer than
/// "no healthy upstream".
pub fn unsupported(rule: &RuleSnap, model: &str) -> Option<GatewayError> {
    if rule
        .hosts
        .iter()
        .any(|h| h.weight > 0 && speaks_responses(h.backend.schema.name))
    {
        return None;
    }
    let mut names: Vec<String> = rule
        .hosts
        .iter()
        .map(|h| format!("{} ({:?})", h.backend.key, h.backend.schema.name))
        .collect();
    names.dedup();
    Some(GatewayError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request_error",
        "unsupported_endpoint",
        format!(
            "/v1/responses needs an OpenAI-schema backend (OpenAI, AzureOpenAI), and the rule for model \
             {model:?} has none: {}",
            names.join(", ")
        ),
    ))
}

/// Response id → the backend (`namespace/name`) that made it, the oldest forgotten first past `cap`.
/// Backend names are shared: one allocation per backend, not per id. A deleted response stays: its
/// backend answers for it (404) better than a search would.
#[derive(Debug)]
pub struct ResponseHomes {
    cap: usize,
    homes: HashMap<Box<str>, Arc<str>>,
    /// Ids in the order they were remembered (an id remembered again keeps its first place).
    order: VecDeque<Box<str>>,
    backends: Vec<Arc<str>>,
}

impl ResponseHomes {
    /// An empty map holding at most `cap` ids.
    pub fn new(cap: usize) -> Self {
        ResponseHomes {
            cap,
            homes: HashMap::new(),
            order: VecDeque::new(),
            backends: Vec::new(),
        }
    }

    /// Remembers that `backend` holds `id` (ids that cannot be response ids are ignored).
    pub fn remember(&mut self, id: &str, backend: &str) {
        if !wire::valid_id(id) || self.cap == 0 {
            return;
        }
        let shared = match self.backends.iter().find(|b| ***b == *backend) {
            Some(b) => b.clone(),
            None => {
                let b: Arc<str> = Arc::from(backend);
                self.backends.push(b.clone());
                b
            }
        };
        if let Some(home) = self.homes.get_mut(id) {
            *home = shared;
            return;
        }
        while self.homes.len() >= self.cap {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.homes.remove(&old);
        }
        self.homes.insert(id.into(), shared);
        self.order.push_back(id.into());
        if self.backends.len() > 64 {
            let live: Vec<Arc<str>> = self.backends.drain(..).collect();
            self.backends = live
                .into_iter()
                .filter(|b| Arc::strong_count(b) > 1)
                .collect();
        }
    }

    /// The backend remembered for `id`.
    pub fn home(&self, id: &str) -> Option<Arc<str>> {
        self.homes.get(id).cloned()
    }

    /// Ids remembered now.
    pub fn len(&self) -> usize {
        self.homes.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.homes.is_empty()
    }
}

/// This node's map. One process is one node, like its metrics recorder.
static HOMES: LazyLock<Mutex<ResponseHomes>> =
    LazyLock::new(|| Mutex::new(ResponseHomes::new(MAX_REMEMBERED)));

fn homes() -> std::sync::MutexGuard<'static, ResponseHomes> {
    // Every operation leaves the map consistent, so a panic elsewhere cannot have broken it.
    HOMES.lock().unwrap_or_else(|e| e.into_inner())
}

/// Remembers that `backend` made response `id` (called by the usage tap when an answer names its id).
pub fn remember(id: &str, backend: &str) {
    homes().remember(id, backend);
}

/// Serves `/v1/responses/{rest}`: the endpoints of a stored response.
pub async fn stored(gw: &Gateway, req: Request<Incoming>, rest: &str) -> Response<ProxyBody> {
    let (op, id) = match wire::stored_op(req.method(), rest) {
        Ok(found) => found,
        Err(StoredPathError::Method(allow)) => {
            let mut r = GatewayError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                "method_not_allowed",
                format!("this endpoint accepts {allow} only"),
            )
            .into_response();
            r.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            return r;
        }
        Err(e @ StoredPathError::Unknown(_)) => {
            return GatewayError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                "unknown_url",
                e.to_string(),
            )
            .into_response()
        }
        Err(e @ StoredPathError::BadId) => {
            return GatewayError::bad_request("invalid_response_id", e.to_string()).into_response()
        }
    };
    let query = req.uri().query().map(str::to_owned);
    let (parts, _body) = req.into_parts();
    let snapshot = gw.snapshot();
    let home = homes().home(id);
    let (targets, authoritative) = lookup_order(
        snapshot
            .routes
            .iter()
            .flat_map(|r| r.rules.iter())
            .flat_map(|rule| rule.hosts.iter().map(move |h| (rule, h))),
        home.as_deref(),
    );
    if targets.is_empty() {
        return GatewayError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "response_not_found",
            format!("no OpenAI-schema backend is configured that could hold response {id:?}"),
        )
        .into_response();
    }
    // The remembered backend's answer is final (it made the response, and answers for it even once
    // deleted). Otherwise a 404 means "not here", and so does a failure as long as another backend is
    // left to ask; when none has it, a failure is the answer (the id may be there), else a 404.
    // One route timeout (the first target's rule's) bounds the whole lookup, however many it asks.
    let budget = targets[0].0.request_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    let mut failure: Option<Response<ProxyBody>> = None;
    let mut not_found: Option<Response<ProxyBody>> = None;
    for (rule, host) in targets {
        let probe = Probe {
            op,
            id,
            query: query.as_deref(),
            deadline,
            budget,
        };
        let resp = match send_stored(rule, host, probe, &parts.headers).await {
            Ok(resp) => resp,
            Err(e) if authoritative => return e,
            Err(e) => {
                failure.get_or_insert(e);
                continue;
            }
        };
        let status = resp.status();
        if authoritative || !(status == StatusCode::NOT_FOUND || status.is_server_error()) {
            if status.is_success() && !authoritative {
                homes().remember(id, &host.backend.key);
            }
            return resp;
        }
        if status.is_server_error() {
            failure.get_or_insert(resp);
        } else {
            not_found = Some(resp);
        }
    }
    failure.or(not_found).unwrap_or_else(|| {
        GatewayError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "response_not_found",
            format!("no backend holds response {id:?}"),
        )
        .into_response()
    })
}

/// The hosts to ask for an id, one per backend: the remembered backend alone when there is one and it is
/// still configured (then `true`: its answer is final); else every OpenAI-schema backend, by priority,
/// healthy hosts first, in config order.
fn lookup_order<'a>(
    hosts: impl Iterator<Item = (&'a RuleSnap, &'a UpstreamHost)>,
    home: Option<&str>,
) -> (Vec<(&'a RuleSnap, &'a UpstreamHost)>, bool) {
    let mut all: Vec<(&RuleSnap, &UpstreamHost)> = hosts
        .filter(|(_, h)| speaks_responses(h.backend.schema.name))
        .collect();
    // Stable: config order within equal keys.
    all.sort_by_key(|(_, h)| (h.health.view.is_ejected(), h.priority));
    if let Some(home) = home {
        if let Some(found) = all.iter().find(|(_, h)| *h.backend.key == *home) {
            return (vec![*found], true);
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    all.retain(|(_, h)| {
        if seen.contains(&h.backend.key.as_str()) {
            false
        } else {
            seen.push(&h.backend.key);
            true
        }
    });
    all.truncate(MAX_LOOKUPS);
    (all, false)
}

/// What one stored-response request asks, and until when.
#[derive(Clone, Copy)]
struct Probe<'a> {
    op: StoredOp,
    id: &'a str,
    query: Option<&'a str>,
    deadline: tokio::time::Instant,
    budget: std::time::Duration,
}

/// One request of a stored-response endpoint to `host`; `Err` is the gateway's answer for a failure
/// before any response (connect, reset, timeout), already counted for passive health.
async fn send_stored(
    rule: &RuleSnap,
    host: &UpstreamHost,
    probe: Probe<'_>,
    client_headers: &HeaderMap,
) -> Result<Response<ProxyBody>, Response<ProxyBody>> {
    let Probe {
        op,
        id,
        query,
        deadline,
        budget: timeout,
    } = probe;
    let upstream = match stored_request(host, op, id, query, client_headers) {
        Ok(r) => r,
        Err(e) => return Err(e.into_response()),
    };
    let outcome = tokio::time::timeout_at(deadline, host.client.request(upstream)).await;
    let resp = match outcome {
        Ok(Ok(resp)) => resp,
        Ok(Err(e)) => {
            let f = LocalFailure::classify(&e);
            tracing::debug!(host = %host.health.key, failure = f.as_str(), "stored-response request failed");
            record_upstream(host, metrics::SharedString::const_str(f.as_str()));
            host.health.report_failure(f.observation()).await;
            return Err(GatewayError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "upstream_unavailable",
                format!("backend {} unreachable: {}", host.backend.key, f.as_str()),
            )
            .into_response());
        }
        Err(_) => {
            record_upstream(host, metrics::SharedString::const_str("timeout"));
            host.health
                .report_failure(LocalFailure::Timeout.observation())
                .await;
            return Err(GatewayError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "server_error",
                "upstream_timeout",
                format!(
                    "backend {} did not answer within the lookup's {timeout:?}",
                    host.backend.key
                ),
            )
            .into_response());
        }
    };
    let status = resp.status().as_u16();
    record_upstream(host, status_label(status));
    host.health.report(Observation::ConnectSucceeded);
    if status >= 500 {
        host.health
            .report_failure(Observation::Status(status))
            .await;
    } else {
        host.health.report(Observation::Status(status));
    }
    let translator = schema::translator(host.backend.schema.name);
    let rctx = ResponseCtx {
        operation: schema::Operation::Responses,
        model: Arc::from(""),
        stream: false,
        include_usage: false,
        id: schema::CompletionId::from(id),
        created: 0,
    };
    let transform = translator.response(&rctx, resp.status(), resp.headers());
    let sse = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let (mut parts, body) = resp.into_parts();
    for name in [
        header::CONNECTION,
        header::TRANSFER_ENCODING,
        header::TE,
        header::TRAILER,
        header::UPGRADE,
    ] {
        parts.headers.remove(name);
    }
    if let Some(t) = &transform {
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(t.content_type()),
        );
    }
    let body = UpstreamBody::new(
        body,
        sse,
        false,
        rule.stream_idle_timeout.unwrap_or(timeout),
        deadline,
        timeout,
        None,
        transform,
        None,
    );
    Ok(Response::from_parts(parts, ProxyBody::upstream(body)))
}

/// The upstream path of a stored-response endpoint for `schema` (`version`: the backend's
/// `schema.version`), with the client's query.
pub fn stored_path(
    schema: SchemaName,
    version: Option<&str>,
    op: StoredOp,
    id: &str,
    query: Option<&str>,
) -> String {
    let tail = format!("/{id}{}", op.suffix());
    match schema {
        SchemaName::AzureOpenAI => schema::azure::responses_path(version, &tail, query),
        _ => match query {
            Some(q) => format!("{}{tail}?{q}", wire::CREATE_PATH),
            None => format!("{}{tail}", wire::CREATE_PATH),
        },
    }
}

fn stored_request(
    host: &UpstreamHost,
    op: StoredOp,
    id: &str,
    query: Option<&str>,
    client_headers: &HeaderMap,
) -> Result<Request<Full<Bytes>>, GatewayError> {
    let backend = &host.backend;
    let path = stored_path(
        backend.schema.name,
        backend.schema.version.as_deref(),
        op,
        id,
        query,
    );
    let internal = |e: String| {
        GatewayError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal",
            format!("cannot build the upstream URI: {e}"),
        )
    };
    let pq = PathAndQuery::try_from(path).map_err(|e| internal(e.to_string()))?;
    let uri = match &host.request_parts {
        Some(p) => http::Uri::builder()
            .scheme(p.scheme.clone())
            .authority(p.authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(|e| internal(e.to_string()))?,
        None => format!("{}{}", host.base_url, pq)
            .parse::<http::Uri>()
            .map_err(|e| internal(e.to_string()))?,
    };
    let mut headers = HeaderMap::with_capacity(client_headers.len() + 2);
    for (name, value) in client_headers {
        if !is_stripped_request_header(name) && name != header::CONTENT_TYPE {
            headers.append(name.clone(), value.clone());
        }
    }
    let mut upstream = Request::new(Full::new(Bytes::new()));
    *upstream.method_mut() = op.method();
    *upstream.uri_mut() = uri;
    *upstream.headers_mut() = headers;
    if op.method() == Method::POST {
        upstream
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    if let Some((name, value)) = &backend.static_auth {
        upstream.headers_mut().insert(name.clone(), value.clone());
    } else {
        let target = auth::AuthTarget {
            schema: backend.schema.name,
            backend: &backend.key,
            host: &host.endpoint_host,
            node_region: backend.credential.as_ref().and_then(|c| c.region()),
        };
        // A lock-free load of the credential the refresh task keeps current.
        let live = backend.credential.as_ref().map(|c| c.load());
        auth::apply(
            &mut upstream,
            &Bytes::new(),
            target,
            backend.auth.as_ref(),
            live.as_ref().map(|g| &***g),
            std::time::SystemTime::now,
        )
        .map_err(|e| auth_error(&e))?;
    }
    if let Some(p) = &host.request_parts {
        upstream
            .headers_mut()
            .insert(header::HOST, p.host_header.clone());
    }
    Ok(upstream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn homes_are_remembered_replaced_forgotten_and_bounded() {
        let mut h = ResponseHomes::new(3);
        h.remember("resp_1", "ns/a");
        h.remember("resp_2", "ns/b");
        assert_eq!(h.home("resp_1").as_deref(), Some("ns/a"));
        // Remembered again (a retrieve found it elsewhere): the newer backend wins.
        h.remember("resp_1", "ns/b");
        assert_eq!(h.home("resp_1").as_deref(), Some("ns/b"));
        h.remember("resp_3", "ns/a");
        h.remember("resp_4", "ns/a");
        // Over the cap: the oldest id goes.
        assert_eq!(h.len(), 3);
        assert_eq!(h.home("resp_1"), None);
        assert_eq!(h.home("resp_4").as_deref(), Some("ns/a"));
        // Ids that cannot be response ids are not stored.
        h.remember("../etc", "ns/a");
        h.remember(&"x".repeat(wire::MAX_ID_LEN + 1), "ns/a");
        assert_eq!(h.home("../etc"), None);
        assert_eq!(h.len(), 3);
    }

    #[test]
    fn memory_stays_bounded_whatever_clients_send() {
        let mut h = ResponseHomes::new(100);
        for i in 0..10_000 {
            h.remember(&format!("resp_{i}"), &format!("ns/backend-{}", i % 3));
            // The same ids again (a retrieve that found them) take no second place.
            h.remember(&format!("resp_{}", i / 2), "ns/backend-0");
        }
        assert!(h.len() <= 100);
        assert!(h.order.len() <= 100, "{}", h.order.len());
        // Backend names are shared, not copied per id.
        assert!(h.backends.len() <= 3);
        assert_eq!(h.home("resp_9999").as_deref(), Some("ns/backend-0"));
    }

    #[test]
    fn stored_paths_per_schema() {
        let rows = [
            (
                SchemaName::OpenAI,
                None,
                StoredOp::Retrieve,
                None,
                "/v1/responses/resp_1",
            ),
            (
                SchemaName::OpenAI,
                None,
                StoredOp::InputItems,
                Some("limit=5"),
                "/v1/responses/resp_1/input_items?limit=5",
            ),
            (
                SchemaName::AzureOpenAI,
                None,
                StoredOp::Cancel,
                None,
                "/openai/v1/responses/resp_1/cancel",
            ),
            (
                SchemaName::AzureOpenAI,
                Some("2025-04-01-preview"),
                StoredOp::Delete,
                None,
                "/openai/responses/resp_1?api-version=2025-04-01-preview",
            ),
            (
                SchemaName::AzureOpenAI,
                Some("2025-04-01-preview"),
                StoredOp::InputItems,
                Some("after=x"),
                "/openai/responses/resp_1/input_items?api-version=2025-04-01-preview&after=x",
            ),
        ];
        for (schema, version, op, query, want) in rows {
            assert_eq!(stored_path(schema, version, op, "resp_1", query), want);
        }
    }
}
