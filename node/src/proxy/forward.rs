//! The attempt loop for one request: choose a host, send, classify, report to health, then return or retry.
//!
//! Envoy semantics (DESIGN §4): attempts ≤ numRetries + 1; only outcomes the `retryOn` triggers name are
//! retried, and never an answer an upstream Envoy marked `x-envoy-ratelimited` or `x-envoy-overloaded`; a retry
//! backs off with full jitter, whatever `Retry-After` says, as Envoy; `perRetry.timeout` bounds one
//! attempt until response headers and the route timeout bounds everything, the response body included,
//! never retried. `streamIdleTimeout` cuts an attempt silent that long, before or after its headers. A
//! failed attempt is acknowledged by the host's health actor before the retry chooses, so the retry sees
//! the ejection.
//!
//! A streamed answer is held until its first content (DESIGN §3.6): an error event, an end or silence
//! before it fails the attempt like the equivalent status or reset, and it is retried per the policy; the
//! client's headers go out with the first content. Once content has gone to the client there is no retry.
//! Extension: `switchyard.io/first-token-timeout` bounds each attempt until its first content (a
//! non-streamed answer: its headers), and its expiry is retried whatever `retryOn` says.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Request, Response};
use http_body_util::Full;
use metrics::SharedString;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::health::outlier::Observation;
use crate::proxy::body::{EndReport, ProxyBody, StartFailure, UpstreamBody};
use crate::proxy::conn::pool::UpstreamResponseBody;
use crate::proxy::error::{Catalogue, ErrorShape, GatewayError};
use crate::proxy::mutation;
use crate::proxy::upstream::LocalFailure;
use crate::proxy::usage::{GenAiLabels, UsageTap};
use crate::retry::attempts::{AttemptKind, Attempts, Decision};
use crate::retry::policy::{rate_limit_cooldown, response_outcome};
use crate::routing::matcher::{MODEL_HEADER, MODEL_HEADER_NAME};
use crate::routing::select::{select, Selection};
use crate::routing::snapshot::{RetrySlot, RouteSnap, RuleSnap, UpstreamHost};
use crate::schema::auth::{self, AuthError};
use crate::schema::{self, Operation, RequestCtx, ResponseCtx, Translator};

/// A client request, read and understood, ready to be sent to any backend.
pub struct ProxiedRequest {
    /// Path and query as the client sent them (shared with the request head hyper parsed).
    pub path_and_query: PathAndQuery,
    /// The client's headers.
    pub headers: HeaderMap,
    /// The original body, re-sent (re-translated later) for every attempt.
    pub body: Bytes,
    /// The body's `model`, shared by every attempt, the response translation and the metrics.
    pub model: Arc<str>,
    /// `x-ai-eg-model` for the upstream request: the `model` value, sharing the body's bytes when the
    /// string had no escapes. `None` when the model is not a valid header value.
    pub model_header: Option<HeaderValue>,
    /// Whether the client asked for a stream.
    pub stream: bool,
    /// `stream_options.include_usage` of the body (read by the handler's probe, not re-parsed).
    pub include_usage: bool,
    /// `gen_ai_operation_name` of the endpoint (`chat`, `completion`, `embeddings`).
    pub operation: &'static str,
    /// When the gateway received the request (GenAI duration metrics start here).
    pub received: std::time::Instant,
    /// The provider of the latest attempt (labels a failed request's metrics).
    pub provider: crate::proxy::usage::LastProvider,
    /// `POST /v1/responses`: OpenAI-schema backends only, chained creates to their previous response's
    /// backend (`proxy::responses`). `None` for every other endpoint.
    pub responses: Option<crate::proxy::responses::CreateCtx>,
}

/// Why an attempt did not produce a response to return.
enum Failure {
    /// The upstream answered with a status the policy retries (kept so it can be returned, translated by
    /// its backend's schema).
    Response(
        Response<UpstreamResponseBody>,
        &'static dyn Translator,
        Option<Arc<str>>,
    ),
    /// No response at all.
    Local(LocalFailure),
    /// A streamed answer that failed before its first content, held (nothing sent); returned as it is
    /// (what was held, then the SSE error event) if it is the last attempt.
    Held(Response<ProxyBody>, StartFailure),
}

/// How long an upstream body may take: its idle cut and the route's deadline.
#[derive(Clone, Copy)]
struct BodyTiming {
    idle: Duration,
    deadline: Instant,
    route_timeout: Duration,
}

/// Request headers never forwarded upstream: hop-by-hop (RFC 9110 §7.6.1), those the gateway sets itself,
/// and the client's credentials (the backend gets its own). Compared as names, not strings: a standard
/// name is one byte to compare, and only the few custom names fall back to their text.
pub(crate) fn is_stripped_request_header(name: &HeaderName) -> bool {
    const STANDARD: [HeaderName; 10] = [
        header::CONNECTION,
        header::PROXY_AUTHORIZATION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::HOST,
        header::CONTENT_LENGTH,
        header::AUTHORIZATION,
        header::ACCEPT_ENCODING,
    ];
    const CUSTOM: [&str; 3] = ["keep-alive", "proxy-connection", MODEL_HEADER];
    STANDARD.contains(name) || CUSTOM.contains(&name.as_str())
}

/// Response headers not passed back to the client (hop-by-hop; framing is hyper's business).
const STRIPPED_RESPONSE_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Runs the attempt loop for `req` on `rule` of `route`.
pub async fn forward(
    route: &RouteSnap,
    rule: &RuleSnap,
    req: &ProxiedRequest,
) -> Response<ProxyBody> {
    let deadline = Instant::now() + rule.request_timeout;
    // Anthropic Messages clients get the gateway's own errors in Anthropic's shape.
    let shape = ErrorShape::of(req.operation);
    let retry = route.traffic.retry.as_ref();
    let per_try = retry.and_then(|r| r.per_try_timeout);
    let first_token = route.traffic.first_token_timeout;
    let cooldown_cap = route.traffic.rate_limit_cooldown;
    // Envoy: `perRetry.timeout` ends once the response has started; after that only the stream's idle cut
    // and the route timeout bound the body.
    let timing = BodyTiming {
        idle: rule.stream_idle_timeout.unwrap_or(rule.request_timeout),
        deadline,
        route_timeout: rule.request_timeout,
    };
    if let Some(e) = req
        .responses
        .as_ref()
        .and_then(|_| crate::proxy::responses::unsupported(rule, &req.model))
    {
        return e.into_response();
    }
    // The retry budget and the decisions between attempts (`retry::attempts`, pure).
    let mut attempts: Attempts<'_, RetrySlot> = Attempts::new(retry, deadline.into_std());
    let mut rng = rand::rngs::SmallRng::seed_from_u64(rand::rng().random());
    let mut last: Option<Failure> = None;
    // Fixed per client request, so every attempt's answer is translated alike.
    let rctx = ResponseCtx {
        operation: Operation::from_name(req.operation),
        model: req.model.clone(),
        stream: req.stream,
        include_usage: req.include_usage,
        id: crate::schema::CompletionId::from_seed(rng.random::<u128>() >> 32),
        created: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    };

    loop {
        // A host at its trial on this node takes one request, ahead of the load (DESIGN §6 "Single trial").
        let trial = rule
            .take_trial(|i| {
                attempts.history().tried(i)
                    || (req.responses.is_some() && !crate::proxy::responses::host_speaks(rule, i))
            })
            .map(|i| Selection {
                host: i,
                priority: rule.hosts[i].priority,
                panic: false,
            });
        // A chained create goes first to the backend that holds its previous response.
        let chained = match &req.responses {
            Some(r) if attempts.history().attempts() == 0 => r.preferred(rule),
            _ => None,
        };
        // Read the clock only where the rate-limit cooldown extension is on.
        let cooling_at = cooldown_cap.map(|_| std::time::Instant::now());
        let Some(choice) = trial.or(chained).or_else(|| {
            let candidates = match &req.responses {
                None => rule.candidates_at(cooling_at),
                Some(_) => crate::proxy::responses::candidates(rule, cooling_at),
            };
            select(
                &candidates,
                route.traffic.panic_threshold,
                retry.and_then(|r| r.num_attempts_per_priority),
                attempts.history(),
                &mut rng,
            )
        }) else {
            let cooling = cooling_at.and_then(|now| rule.all_cooling(now));
            return match (last, cooling) {
                // The provider's own 429 already says when to come back.
                (Some(f @ Failure::Response(..)), _) | (Some(f), None) => {
                    failure_response(f, timing, &rctx, shape)
                }
                (_, Some(left)) => all_cooling_response(left, &req.model, shape),
                (None, None) => GatewayError::of(
                    Catalogue::NoHealthyUpstream,
                    format!("no healthy upstream for model {:?}", req.model),
                )
                .into_response_as(shape),
            };
        };
        let host = &rule.hosts[choice.host];
        match attempts.record(choice.host, choice.priority) {
            AttemptKind::First => {}
            AttemptKind::Retry => metrics::counter!("switchyard_retries_total").increment(1),
            AttemptKind::Fallback => {
                metrics::counter!("switchyard_retries_total").increment(1);
                metrics::counter!("switchyard_fallbacks_total").increment(1);
            }
        }

        let translator = schema::translator(host.backend.schema.name);
        req.provider.set(translator.provider_name());
        let upstream_req = match build_upstream_request(host, req, translator) {
            Ok(r) => r,
            Err(e) => return e.into_response_as(shape),
        };
        // The last failure is released only now: it was the answer if no further attempt could start.
        drop(last.take());

        let now = Instant::now();
        let first_token_at = first_token.map(|t| (now + t, t));
        let attempt_deadline = [
            per_try.map(|t| now + t),
            // Envoy's `per_try_idle_timeout`: a silent upstream before its headers too.
            rule.stream_idle_timeout.map(|t| now + t),
            first_token_at.map(|(at, _)| at),
        ]
        .into_iter()
        .flatten()
        .fold(deadline, Instant::min);
        let sent =
            tokio::time::timeout_at(attempt_deadline, host.client.request(upstream_req)).await;
        let mut first_token_expired = false;
        // This attempt's 429 started a cooldown (extension): it is retried elsewhere whatever `retryOn` says.
        let mut cooled = false;
        let failure = match sent {
            Ok(Ok(resp)) => {
                let status = resp.status().as_u16();
                // A streamed 200 is held until its first content; its outcome (count and health) is
                // known only when it ends, so the body reports it.
                let held = req.stream && status == 200;
                if status != 200 {
                    record_upstream(host, status_label(status));
                }
                host.health.report(Observation::ConnectSucceeded);
                if let Some(cap) = cooldown_cap.filter(|_| status == 429) {
                    if let Some(wait) = cooldown_of(resp.headers(), cap) {
                        host.health.cool_down(std::time::Instant::now() + wait);
                        cooled = true;
                    }
                }
                let outcome = response_outcome(status, resp.headers());
                let retriable = attempts.may_retry(&outcome, cooled);
                if status >= 500 {
                    host.health
                        .report_failure(Observation::Status(status))
                        .await;
                } else if !held {
                    host.health.report(Observation::Status(status));
                }
                let report = (status == 200).then(|| EndReport {
                    health: host.health.clone(),
                    backend: host.metric_backend.clone(),
                    ok: host.ok_counter.clone(),
                    success_to_health: held,
                });
                let tap = (resp.status().is_success() && rctx.operation != Operation::CountTokens)
                    .then(|| usage_tap(translator, req, host));
                // Answers that do not name their model (Bedrock) name the one that served them.
                let served = served_ctx(&rctx, host.model_override.as_ref());
                let rctx = served.as_ref().unwrap_or(&rctx);
                if held {
                    let (parts, mut body, sse) =
                        upstream_body(resp, timing, tap, translator, rctx, report, true);
                    if !sse {
                        // Not a stream after all: nothing to hold.
                        return Response::from_parts(parts, ProxyBody::upstream(body));
                    }
                    if req.responses.is_some() {
                        body.watch_responses();
                    }
                    match body.hold_until_content(first_token_at).await {
                        Ok(()) => return Response::from_parts(parts, ProxyBody::upstream(body)),
                        Err(f) => {
                            tracing::debug!(host = %host.health.key, failure = %f.message, "stream failed before its first content");
                            record_upstream(host, SharedString::const_str(f.label));
                            if f.route_timeout {
                                host.health.report(f.observation);
                                return route_timeout(rule, shape);
                            }
                            host.health.report_failure(f.observation).await;
                            first_token_expired = f.first_token_timeout;
                            Failure::Held(Response::from_parts(parts, ProxyBody::upstream(body)), f)
                        }
                    }
                } else if !retriable {
                    return pass_through(resp, timing, tap, translator, rctx, report);
                } else {
                    Failure::Response(resp, translator, host.model_override.clone())
                }
            }
            Ok(Err(e)) => {
                let f = LocalFailure::classify(&e);
                tracing::debug!(host = %host.health.key, failure = f.as_str(), error = ?e, "attempt failed");
                record_upstream(host, SharedString::const_str(f.as_str()));
                host.health.report_failure(f.observation()).await;
                Failure::Local(f)
            }
            Err(_) if attempt_deadline == deadline => {
                // The route timeout: covers every attempt and is never retried (DESIGN §4).
                record_upstream(host, SharedString::const_str("route_timeout"));
                host.health.report(LocalFailure::Timeout.observation());
                return route_timeout(rule, shape);
            }
            Err(_) => {
                first_token_expired = first_token_at.is_some_and(|(at, _)| at == attempt_deadline);
                record_upstream(
                    host,
                    SharedString::const_str(if first_token_expired {
                        "first_token_timeout"
                    } else {
                        "timeout"
                    }),
                );
                host.health
                    .report_failure(LocalFailure::Timeout.observation())
                    .await;
                Failure::Local(LocalFailure::Timeout)
            }
        };

        let outcome = match &failure {
            Failure::Response(r, ..) => response_outcome(r.status().as_u16(), r.headers()),
            Failure::Local(f) => f.attempt_outcome(),
            Failure::Held(_, f) => f.outcome,
        };
        // The first-token timeout and a cooldown's 429 exist to fail over: retried whatever `retryOn` says.
        let acquire =
            || RetrySlot::acquire(&route.retries_in_flight, route.traffic.max_parallel_retries);
        match attempts.after(
            &outcome,
            first_token_expired || cooled,
            Instant::now().into_std(),
            acquire,
            &mut rng,
        ) {
            Decision::Return => return failure_response(failure, timing, &rctx, shape),
            Decision::Overflow => {
                metrics::counter!("switchyard_retry_overflow_total").increment(1);
                return failure_response(failure, timing, &rctx, shape);
            }
            Decision::RouteTimeout => {
                tokio::time::sleep_until(deadline).await;
                return route_timeout(rule, shape);
            }
            Decision::Retry(wait) => tokio::time::sleep(wait).await,
        }
        last = Some(failure);
    }
}

/// The cooldown a 429's headers ask for, at most `cap` (the rate-limit cooldown extension).
fn cooldown_of(headers: &http::HeaderMap, cap: Duration) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    rate_limit_cooldown(
        429,
        text("retry-after"),
        text("retry-after-ms"),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        cap,
    )
}

/// The gateway's own answer when every host of the rule is in its rate-limit cooldown: 429 with a
/// `Retry-After` (whole seconds, rounded up) for the shortest cooldown left.
fn all_cooling_response(left: Duration, model: &str, shape: ErrorShape) -> Response<ProxyBody> {
    let mut resp = GatewayError::of(
        Catalogue::AllBackendsCoolingDown,
        format!(
            "every backend for model {model:?} is rate limited (cooling down for {} ms more)",
            left.as_millis()
        ),
    )
    .into_response_as(shape);
    let secs = left.as_millis().div_ceil(1000).max(1);
    if let Ok(v) = http::HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Counts one attempt. The labels are shared strings (the host's precomputed backend label, static
/// outcomes), so recording allocates nothing but the metric key's label vector.
pub(crate) fn record_upstream(host: &UpstreamHost, outcome: SharedString) {
    metrics::counter!("switchyard_upstream_requests_total",
        "backend" => host.metric_backend.clone(), "outcome" => outcome)
    .increment(1);
}

/// The `outcome` label of an upstream status: static for the common codes.
pub(crate) fn status_label(status: u16) -> SharedString {
    const COMMON: [&str; 16] = [
        "200", "201", "204", "400", "401", "403", "404", "408", "409", "413", "422", "429", "500",
        "502", "503", "504",
    ];
    match COMMON
        .iter()
        .find(|s| s.parse::<u16>().ok() == Some(status))
    {
        Some(s) => SharedString::const_str(s),
        None => SharedString::from(status.to_string()),
    }
}

fn route_timeout(rule: &RuleSnap, shape: ErrorShape) -> Response<ProxyBody> {
    GatewayError::of(
        Catalogue::UpstreamTimeout,
        format!("upstream request timeout after {:?}", rule.request_timeout),
    )
    .into_response_as(shape)
}

fn failure_response(
    failure: Failure,
    timing: BodyTiming,
    rctx: &ResponseCtx,
    shape: ErrorShape,
) -> Response<ProxyBody> {
    match failure {
        Failure::Response(resp, translator, model_override) => {
            let served = served_ctx(rctx, model_override.as_ref());
            pass_through(
                resp,
                timing,
                None,
                translator,
                served.as_ref().unwrap_or(rctx),
                None,
            )
        }
        Failure::Held(resp, _) => resp,
        Failure::Local(LocalFailure::Timeout) => GatewayError::of(
            Catalogue::UpstreamTimeout,
            "upstream request timeout (per-try, stream idle or first-token timeout)",
        )
        .into_response_as(shape),
        Failure::Local(f) => GatewayError::of(
            Catalogue::UpstreamUnavailable,
            format!(
                "upstream connect error or disconnect/reset before headers; reset reason: {}",
                f.as_str()
            ),
        )
        .into_response_as(shape),
    }
}

fn is_sse(resp: &Response<UpstreamResponseBody>) -> bool {
    resp.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"))
}

/// The response context of an attempt to a host with a `modelNameOverride`: answers that do not name
/// their model (Bedrock) name the one that served them, not the client's. `None`: the request's own.
fn served_ctx(rctx: &ResponseCtx, model_override: Option<&Arc<str>>) -> Option<ResponseCtx> {
    model_override.map(|m| ResponseCtx {
        model: m.clone(),
        ..rctx.clone()
    })
}

fn usage_tap(translator: &dyn Translator, req: &ProxiedRequest, host: &UpstreamHost) -> UsageTap {
    // The tap reads the body the client gets, i.e. after translation, which is OpenAI-shaped for every
    // provider (Anthropic-shaped for Messages clients); `stream` is what the client asked for (a
    // translated stream is SSE).
    let tap = UsageTap::new(
        GenAiLabels {
            operation: req.operation,
            provider: translator.provider_name(),
            request_model: host
                .model_override
                .clone()
                .unwrap_or_else(|| req.model.clone()),
            original_model: host.model_override.as_ref().map(|_| req.model.clone()),
        },
        req.stream,
        req.received,
    );
    match &req.responses {
        Some(_) => tap.with_response_home(&host.backend.key),
        None if req.operation == "messages" => tap.reading_messages(),
        None => tap,
    }
}

/// Returns an upstream response to the client, translated by `translator` (frame by frame).
fn pass_through(
    resp: Response<UpstreamResponseBody>,
    timing: BodyTiming,
    tap: Option<UsageTap>,
    translator: &dyn Translator,
    rctx: &ResponseCtx,
    report: Option<EndReport>,
) -> Response<ProxyBody> {
    let (parts, body, _) = upstream_body(resp, timing, tap, translator, rctx, report, false);
    Response::from_parts(parts, ProxyBody::upstream(body))
}

/// The client's response head and body for an upstream response, translated by `translator`; `watch`
/// reads a stream for its first content and end marker. Also says whether the body is SSE.
fn upstream_body(
    resp: Response<UpstreamResponseBody>,
    timing: BodyTiming,
    tap: Option<UsageTap>,
    translator: &dyn Translator,
    rctx: &ResponseCtx,
    report: Option<EndReport>,
    watch: bool,
) -> (http::response::Parts, UpstreamBody, bool) {
    let transform = translator.response(rctx, resp.status(), resp.headers());
    let sse = match &transform {
        Some(t) => t.is_sse(),
        None => is_sse(&resp),
    };
    let watch = watch && !transform.as_ref().is_some_and(|t| t.self_watched());
    let (mut parts, body) = resp.into_parts();
    // Answers rarely carry hop-by-hop headers: look before removing (a removal hashes the name).
    if parts
        .headers
        .keys()
        .any(|n| STRIPPED_RESPONSE_HEADERS.contains(&n.as_str()))
    {
        // Headers the upstream named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1).
        crate::proxy::hop::remove_connection_nominated(&mut parts.headers);
        for name in STRIPPED_RESPONSE_HEADERS {
            parts.headers.remove(*name);
        }
    }
    if let Some(t) = &transform {
        // The body changes: its length is unknown until it ends, and provider-specific framing and
        // encoding headers no longer describe it.
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_ENCODING);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(t.content_type()),
        );
    }
    if sse {
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    let body = UpstreamBody::new(
        body,
        sse,
        watch && sse,
        timing.idle,
        timing.deadline,
        timing.route_timeout,
        tap,
        transform,
        report,
    );
    (parts, body, sse)
}

fn translation_error(backend: &str, e: &schema::TranslateError) -> GatewayError {
    GatewayError::of(
        Catalogue::TranslationFailed,
        format!("cannot translate the request for backend {backend}: {e}"),
    )
}

pub(crate) fn auth_error(e: &AuthError) -> GatewayError {
    match e {
        AuthError::Missing { .. } => {
            GatewayError::of(Catalogue::MissingBackendCredential, e.to_string())
        }
        AuthError::InvalidHeader { .. } => {
            GatewayError::of(Catalogue::InvalidBackendCredential, e.to_string())
        }
        AuthError::Signing { .. } => GatewayError::of(Catalogue::SigningFailed, e.to_string()),
    }
}

/// Builds one attempt's request: translated from the original body for this backend's schema, with
/// this backend's credentials (signed last, over the final request).
fn build_upstream_request(
    host: &UpstreamHost,
    req: &ProxiedRequest,
    translator: &dyn Translator,
) -> Result<Request<Full<Bytes>>, GatewayError> {
    let backend = &host.backend;
    // A policy that could not be resolved answers 401 naming why (as `auth::apply` would), before the
    // translation, which may need what the policy would have given (Vertex AI's project and region).
    if let Some(crate::config::model::BackendAuth::Unavailable { reason, policy }) = &backend.auth {
        return Err(auth_error(&AuthError::Missing {
            backend: backend.key.clone(),
            policy: Some(policy.clone()),
            reason: reason.clone(),
        }));
    }
    let ctx = RequestCtx {
        operation: Operation::from_name(req.operation),
        path_and_query: &req.path_and_query,
        model: host.model_override.as_deref().unwrap_or(&req.model),
        model_overridden: host.model_override.is_some(),
        stream: req.stream,
        schema_version: backend.schema.version.as_deref(),
        client_headers: &req.headers,
        gcp: backend.auth.as_ref().and_then(|a| a.gcp_location()),
    };
    let translated = translator
        .request(&ctx, &req.body)
        .map_err(|e| translation_error(&backend.key, &e))?;
    let uri = match &host.request_parts {
        Some(p) => http::Uri::builder()
            .scheme(p.scheme.clone())
            .authority(p.authority.clone())
            .path_and_query(translated.path_and_query)
            .build(),
        None => format!("{}{}", host.base_url, translated.path_and_query)
            .parse::<http::Uri>()
            .map_err(http::Error::from),
    }
    .map_err(|e| {
        GatewayError::of(
            Catalogue::Internal,
            format!("cannot build the upstream URI: {e}"),
        )
    })?;
    // Sized once: the client's headers, the model header, the translator's and Host.
    let mut headers = HeaderMap::with_capacity(req.headers.len() + translated.headers.len() + 2);
    // Client headers are forwarded to OpenAI-compatible backends only: for Bedrock and Anthropic they
    // mean nothing, and for Bedrock every header sent is signed.
    if matches!(
        backend.schema.name,
        crate::config::model::SchemaName::OpenAI | crate::config::model::SchemaName::AzureOpenAI
    ) {
        for (name, value) in &req.headers {
            if !is_stripped_request_header(name) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
    // Appended: the client's own is stripped above, so there is none to replace.
    if let Some(v) = &req.model_header {
        headers.append(MODEL_HEADER_NAME, v.clone());
    }
    for (name, value) in translated.headers {
        headers.insert(name, value);
    }
    // The backendRef's mutations edit what this backend is sent, before its credential and signature.
    let body = match &host.mutation {
        Some(m) => {
            mutation::apply_headers(m, &mut headers);
            mutation::apply_body(m, &translated.body)
        }
        None => translated.body,
    };
    // Host names the endpoint (its name and, when not the scheme default, its port: the value SigV4
    // signs from the URI), set below from the host's precomputed parts. The address dialled is pinned in
    // the host's connector, so naming the endpoint never changes which address is reached.
    let mut upstream = Request::new(Full::new(body.clone()));
    *upstream.method_mut() = Method::POST;
    *upstream.uri_mut() = uri;
    *upstream.headers_mut() = headers;
    if let Some((name, value)) = &backend.static_auth {
        // An API key: the header was built with the snapshot.
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
            &body,
            target,
            backend.auth.as_ref(),
            live.as_ref().map(|g| &***g),
            SystemTime::now,
        )
        .map_err(|e| auth_error(&e))?;
    }
    // After signing, which derives the same value from the URI: set here, the client does not rebuild it
    // for every attempt.
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
    fn hop_by_hop_gateway_and_credential_headers_are_not_forwarded() {
        for name in [
            "Connection",
            "Keep-Alive",
            "proxy-connection",
            "Proxy-Authorization",
            "TE",
            "trailer",
            "Transfer-Encoding",
            "upgrade",
            "host",
            "content-length",
            "Authorization",
            "accept-encoding",
            "X-AI-EG-Model",
        ] {
            let parsed = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            assert!(is_stripped_request_header(&parsed), "{name} is forwarded");
        }
        for name in [
            "content-type",
            "user-agent",
            "accept",
            "x-tenant",
            "openai-organization",
        ] {
            let parsed = HeaderName::from_bytes(name.as_bytes()).expect("a header name");
            assert!(!is_stripped_request_header(&parsed), "{name} is dropped");
        }
    }
}
