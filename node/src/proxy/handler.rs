//! The client-facing HTTP service: endpoint dispatch, body limits, model extraction and rule matching, then
//! the attempt loop (`forward`). Everything here is per request and reads only the published snapshot.

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::uri::PathAndQuery;
use http::{header, HeaderValue, Method, Request, Response};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::gateway::Gateway;
use crate::proxy::body::ProxyBody;
use crate::proxy::conn::wake::poll_frame_quietly;
use crate::proxy::error::{Catalogue, ErrorShape, GatewayError};
use crate::proxy::forward::{forward, ProxiedRequest};
use crate::proxy::limits::BodyTimeouts;
use crate::routing::matcher::{exact_models, rule_holds, MatchInput};

/// The endpoints that are routed to a backend.
const ROUTED: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
];

/// Providers' own APIs, under the prefixes Envoy AI Gateway v1.1 serves them at, routed by the body's
/// `model` like chat: Anthropic's Messages (to Anthropic-schema backends) and Cohere's rerank (to Cohere
/// backends).
const MESSAGES_ROUTED: &[&str] = &[
    "/anthropic/v1/messages",
    "/anthropic/v1/messages/count_tokens",
    // Cohere's rerank API, under the prefix Envoy AI Gateway v1.1 serves it at (Cohere backends only).
    "/cohere/v2/rerank",
];

/// Serves one client request.
pub async fn handle(
    gw: Arc<Gateway>,
    req: Request<Incoming>,
    timeouts: BodyTimeouts,
) -> Result<Response<ProxyBody>, Infallible> {
    if let Some(e) = host_error(&req) {
        return Ok(e.into_response());
    }
    let path = req.uri().path();
    let resp = if path == "/v1/models" {
        if req.method() == Method::GET {
            models(&gw)
        } else {
            method_not_allowed("GET")
        }
    } else if ROUTED.contains(&path) || MESSAGES_ROUTED.contains(&path) {
        if req.method() == Method::POST {
            proxy(&gw, req, timeouts).await
        } else {
            method_not_allowed("POST")
        }
    } else if let Some(rest) = path.strip_prefix("/v1/responses/") {
        // Stored responses: no `model` to route by (proxy::responses finds the backend).
        let rest = rest.to_owned();
        crate::proxy::responses::stored(&gw, req, &rest).await
    } else {
        GatewayError::of(
            Catalogue::UnknownUrl,
            format!("unknown request URL: {} {}", req.method(), path),
        )
        .into_response()
    };
    Ok(resp)
}

/// RFC 9112 §3.2: an HTTP/1.1 request without exactly one `Host` is answered 400, as Envoy and nginx do
/// (HTTP/1.0 had no `Host`; HTTP/2 names the authority in `:authority`).
fn host_error<B>(req: &Request<B>) -> Option<GatewayError> {
    if req.version() != http::Version::HTTP_11 {
        return None;
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let message = match (hosts.next(), hosts.next()) {
        (Some(_), None) => return None,
        (None, _) => "an HTTP/1.1 request needs a Host header",
        (Some(_), Some(_)) => "an HTTP/1.1 request must have exactly one Host header",
    };
    Some(GatewayError::of(Catalogue::InvalidHost, message))
}

fn method_not_allowed(allow: &'static str) -> Response<ProxyBody> {
    let mut r = GatewayError::of(
        Catalogue::MethodNotAllowed,
        format!("this endpoint accepts {allow} only"),
    )
    .into_response();
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// The only fields the gateway reads from a request body; everything else is passed through untouched.
#[derive(Deserialize)]
struct BodyProbe<'a> {
    #[serde(borrow, default)]
    model: Option<BodyStr<'a>>,
    #[serde(default)]
    stream: Option<bool>,
    /// Only `include_usage` is read; kept as a value so any shape is accepted as before.
    #[serde(default)]
    stream_options: Option<serde_json::Value>,
}

/// A string of the body, borrowed when it has no escapes. serde's own `Cow<str>` only borrows as a
/// direct field, never inside an `Option`, where it always copies.
struct BodyStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BodyStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = BodyStr<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(BodyStr(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(BodyStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(BodyStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(Visit(std::marker::PhantomData))
    }
}

/// Why a request body could not be read.
#[derive(Debug)]
enum BodyError<E> {
    /// Longer than the limit.
    TooLarge,
    /// The client connection failed mid-body.
    Read(E),
    /// The client paused longer than the body timeout.
    Idle,
    /// The whole body took longer than the request timeout.
    Total,
}

/// The whole request body, at most `limit` bytes, with no pause longer than `timeouts.idle` and done by
/// `deadline` (the request timeout, from the head) if there is one. A body that arrives in one frame, as
/// small requests do, is kept as that frame (no copy, no list of frames); a longer one is gathered into
/// one buffer. The timers are armed only when a frame is not there yet, so a body that is already in
/// costs none.
async fn read_body<B>(
    mut body: B,
    limit: usize,
    idle: Duration,
    deadline: Option<tokio::time::Instant>,
) -> Result<Bytes, BodyError<B::Error>>
where
    B: http_body::Body<Data = Bytes> + Unpin,
{
    let mut first: Option<Bytes> = None;
    let mut gathered: Option<BytesMut> = None;
    let mut total = 0usize;
    loop {
        let mut next = std::pin::pin!(std::future::poll_fn(|cx| poll_frame_quietly(&mut body, cx)));
        let ready = std::future::poll_fn(|cx| Poll::Ready(next.as_mut().poll(cx))).await;
        let frame = match ready {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                let pause_ends = tokio::time::Instant::now() + idle;
                let (until, why) = match deadline {
                    Some(d) if d <= pause_ends => (d, BodyError::Total),
                    _ => (pause_ends, BodyError::Idle),
                };
                match tokio::time::timeout_at(until, next).await {
                    Ok(frame) => frame,
                    Err(_) => return Err(why),
                }
            }
        };
        let Some(frame) = frame else { break };
        // Trailers carry nothing the gateway forwards.
        let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else {
            continue;
        };
        total = total.saturating_add(data.len());
        if total > limit {
            return Err(BodyError::TooLarge);
        }
        if let Some(buf) = gathered.as_mut() {
            buf.extend_from_slice(&data);
        } else if let Some(f) = first.take() {
            let mut buf = BytesMut::with_capacity(total);
            buf.extend_from_slice(&f);
            buf.extend_from_slice(&data);
            gathered = Some(buf);
        } else {
            first = Some(data);
        }
    }
    Ok(match gathered {
        Some(buf) => buf.freeze(),
        None => first.unwrap_or_default(),
    })
}

/// 408 for a body that stalled, with the connection closed: the rest of that body may still be coming.
fn body_timeout(message: String, shape: ErrorShape) -> Response<ProxyBody> {
    let mut r = GatewayError::of(Catalogue::RequestTimeout, message).into_response_as(shape);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

/// Reads the probe's fields from a request body, which must be a JSON object in UTF-8 (RFC 8259 §8.1).
/// serde_json checks UTF-8 only inside the strings it decodes, so invalid bytes in a member the probe skips
/// (a message's content) would be forwarded: the body is validated once, whole, and then parsed as `str`,
/// which spares serde_json its own per-string checks. serde also reads a struct from a JSON array
/// (`["m", false]` as `{model, stream}`), so anything but an object is refused before it looks.
fn probe_body(body: &[u8]) -> Result<BodyProbe<'_>, GatewayError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        GatewayError::of(
            Catalogue::InvalidJson,
            format!(
                "request body is not valid UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })?;
    let first = text
        .bytes()
        .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if first != Some(b'{') {
        return Err(GatewayError::of(
            Catalogue::InvalidJson,
            "request body must be a JSON object",
        ));
    }
    serde_json::from_str(text).map_err(|e| {
        GatewayError::of(
            Catalogue::InvalidJson,
            format!("request body is not a valid JSON object: {e}"),
        )
    })
}

async fn proxy(
    gw: &Gateway,
    req: Request<Incoming>,
    timeouts: BodyTimeouts,
) -> Response<ProxyBody> {
    let received = std::time::Instant::now();
    let operation = match req.uri().path() {
        "/v1/chat/completions" => "chat",
        "/v1/completions" => "completion",
        "/v1/responses" => "responses",
        "/anthropic/v1/messages" => "messages",
        "/anthropic/v1/messages/count_tokens" => "count_tokens",
        "/cohere/v2/rerank" => "rerank",
        _ => "embeddings",
    };
    let shape = ErrorShape::of(operation);
    let snapshot = gw.snapshot();
    let limit = snapshot.max_body_bytes;
    let too_large = || {
        GatewayError::of(
            Catalogue::RequestTooLarge,
            format!("request body exceeds the limit of {limit} bytes"),
        )
        .into_response_as(shape)
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (mut parts, body) = req.into_parts();
    // Only a client that names extra hop-by-hop headers pays for the removal (RFC 9110 §7.6.1).
    if parts.headers.contains_key(header::CONNECTION) {
        crate::proxy::hop::remove_connection_nominated(&mut parts.headers);
    }
    let deadline = timeouts
        .total
        .map(|t| tokio::time::Instant::from_std(received) + t);
    let body: Bytes = match read_body(body, limit, timeouts.idle, deadline).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => return too_large(),
        Err(BodyError::Idle) => {
            metrics::counter!("switchyard_client_timeouts_total", "timeout" => "body").increment(1);
            return body_timeout(
                format!("request body paused longer than {:?}", timeouts.idle),
                shape,
            );
        }
        Err(BodyError::Total) => {
            metrics::counter!("switchyard_client_timeouts_total", "timeout" => "request")
                .increment(1);
            return body_timeout(
                format!(
                    "request body not received within {:?}",
                    timeouts.total.unwrap_or_default()
                ),
                shape,
            );
        }
        Err(BodyError::Read(e)) => {
            return GatewayError::of(
                Catalogue::BodyReadError,
                format!("cannot read request body: {e}"),
            )
            .into_response_as(shape)
        }
    };
    let probe = match probe_body(&body) {
        Ok(p) => p,
        Err(e) => return e.into_response_as(shape),
    };
    let stream = probe.stream.unwrap_or(false);
    let include_usage = probe
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage")?.as_bool())
        .unwrap_or(false);
    let (model, model_header): (Arc<str>, _) = match probe.model.map(|m| m.0) {
        // Borrowed from the body (no escapes): the upstream header shares the body's bytes.
        Some(Cow::Borrowed(m)) if !m.is_empty() => (
            Arc::from(m),
            HeaderValue::from_maybe_shared(body.slice_ref(m.as_bytes())).ok(),
        ),
        Some(Cow::Owned(m)) if !m.is_empty() => {
            let header = HeaderValue::from_str(&m).ok();
            (Arc::from(m), header)
        }
        _ => {
            return GatewayError::of(
                Catalogue::MissingModel,
                "you must provide a model parameter",
            )
            .into_response_as(shape)
        }
    };
    let input = MatchInput {
        headers: &parts.headers,
        model: &model,
    };
    let found = snapshot.routes.iter().find_map(|route| {
        route
            .rules
            .iter()
            .find(|rule| rule_holds(&rule.matches, &input))
            .map(|rule| (route, rule))
    });
    let Some((route, rule)) = found else {
        return GatewayError::of(
            Catalogue::ModelNotFound,
            format!("no matching route for model {model:?}"),
        )
        .into_response_as(shape);
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let responses =
        (operation == "responses").then(|| crate::proxy::responses::CreateCtx::of(&body));
    let proxied = ProxiedRequest {
        path_and_query,
        headers: parts.headers,
        body,
        model,
        model_header,
        stream,
        include_usage,
        operation,
        received,
        provider: Default::default(),
        responses,
    };
    let resp = forward(route, rule, &proxied).await;
    // Successes are recorded by the usage tap when their body ends; failures here, once.
    if !resp.status().is_success() {
        crate::proxy::usage::record_failure(
            operation,
            proxied.provider.get(),
            &proxied.model,
            crate::proxy::usage::error_type_of(resp.status()),
            received.elapsed(),
        );
    }
    tracing::debug!(route = %route.key, model = %proxied.model, stream = proxied.stream,
        status = resp.status().as_u16(), elapsed_ms = received.elapsed().as_millis() as u64, "request");
    resp
}

/// `GET /v1/models`: answered locally from the routes' exact model matches (OpenAI list format).
fn models(gw: &Gateway) -> Response<ProxyBody> {
    let snapshot = gw.snapshot();
    let mut seen = std::collections::BTreeSet::new();
    let mut data = Vec::new();
    for route in &snapshot.routes {
        for rule in &route.rules {
            for m in exact_models(&rule.matches) {
                if seen.insert(m.to_string()) {
                    data.push(serde_json::json!({
                        "id": m, "object": "model", "created": rule.models_created, "owned_by": rule.models_owned_by
                    }));
                }
            }
        }
    }
    let body = serde_json::json!({"object": "list", "data": data}).to_string();
    let mut r = Response::new(ProxyBody::full(body));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use http_body::Frame;

    /// A body that yields the given frames, one per poll.
    struct Frames(VecDeque<Result<Frame<Bytes>, &'static str>>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = &'static str;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front())
        }
    }

    fn data(s: &'static str) -> Result<Frame<Bytes>, &'static str> {
        Ok(Frame::data(Bytes::from_static(s.as_bytes())))
    }

    const IDLE: Duration = Duration::from_secs(60);

    /// A body that yields its first frame, then never anything again.
    struct Stalls(Option<Bytes>);

    impl http_body::Body for Stalls {
        type Data = Bytes;
        type Error = &'static str;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.0.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                None => Poll::Pending,
            }
        }
    }

    #[tokio::test]
    async fn a_stalled_body_ends_at_the_idle_or_the_total_timeout() {
        let half = || Stalls(Some(Bytes::from_static(b"{\"model\"")));
        let start = tokio::time::Instant::now();
        let idle = read_body(half(), 64, Duration::from_millis(200), None).await;
        assert!(matches!(idle, Err(BodyError::Idle)));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(5),
            "{took:?}"
        );
        // The request timeout wins when it comes first.
        let start = tokio::time::Instant::now();
        let deadline = Some(start + Duration::from_millis(100));
        let total = read_body(half(), 64, IDLE, deadline).await;
        assert!(matches!(total, Err(BodyError::Total)));
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(100) && took < Duration::from_secs(5),
            "{took:?}"
        );
    }

    #[test]
    fn only_utf8_json_objects_pass_the_probe() {
        // (body, model read, or the error message's start)
        type Want = Result<Option<&'static str>, &'static str>;
        let cases: [(&[u8], Want); 7] = [
            (br#"{"model":"m","stream":true}"#, Ok(Some("m"))),
            (b" \n{\"model\":\"m\"}", Ok(Some("m"))),
            (br#"{"messages":[]}"#, Ok(None)),
            (
                br#"["m", false]"#,
                Err("request body must be a JSON object"),
            ),
            (b"\"m\"", Err("request body must be a JSON object")),
            (
                b"{\"model\":\"m\",\"messages\":[{\"content\":\"a\xff\"}]}",
                Err("request body is not valid UTF-8 (invalid byte at offset 38)"),
            ),
            (
                b"{\"model\":",
                Err("request body is not a valid JSON object"),
            ),
        ];
        for (body, want) in cases {
            let got = probe_body(body);
            match (got, want) {
                (Ok(p), Ok(model)) => {
                    assert_eq!(p.model.map(|m| m.0.into_owned()).as_deref(), model)
                }
                (Err(e), Err(msg)) => {
                    assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
                    assert!(e.message.starts_with(msg), "{:?}: {}", body, e.message);
                }
                (got, want) => panic!(
                    "{:?}: got {:?}, want {want:?}",
                    String::from_utf8_lossy(body),
                    got.map(|p| p.stream)
                ),
            }
        }
    }

    #[test]
    fn http11_requests_need_exactly_one_host() {
        let req = |version, hosts: &[&'static str]| {
            let mut b = Request::builder().version(version).uri("/v1/models");
            for h in hosts {
                b = b.header(header::HOST, *h);
            }
            b.body(()).expect("request")
        };
        assert!(host_error(&req(http::Version::HTTP_11, &["gw"])).is_none());
        assert!(host_error(&req(http::Version::HTTP_11, &[])).is_some());
        assert!(host_error(&req(http::Version::HTTP_11, &["a", "b"])).is_some());
        assert!(host_error(&req(http::Version::HTTP_10, &[])).is_none());
        assert!(host_error(&req(http::Version::HTTP_2, &[])).is_none());
    }

    #[tokio::test]
    async fn bodies_are_read_whole_in_one_frame_or_many() {
        let one = read_body(Frames([data("{\"a\":1}")].into()), 64, IDLE, None).await;
        assert_eq!(one.expect("read"), "{\"a\":1}");
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-t", http::HeaderValue::from_static("1"));
        let many = Frames(
            [
                data("{\"a\""),
                data(""),
                Ok(Frame::trailers(trailers)),
                data(":1}"),
            ]
            .into(),
        );
        assert_eq!(
            read_body(many, 64, IDLE, None).await.expect("read"),
            "{\"a\":1}"
        );
        let none = read_body(Frames(VecDeque::new()), 64, IDLE, None).await;
        assert_eq!(none.expect("read"), "");
    }

    #[tokio::test]
    async fn the_limit_holds_without_a_content_length_and_errors_pass_through() {
        let long = Frames([data("12345"), data("67890")].into());
        assert!(matches!(
            read_body(long, 9, IDLE, None).await,
            Err(BodyError::TooLarge)
        ));
        let exact = Frames([data("12345"), data("6789")].into());
        assert_eq!(
            read_body(exact, 9, IDLE, None).await.expect("read"),
            "123456789"
        );
        let broken = Frames([data("12"), Err("reset")].into());
        assert!(matches!(
            read_body(broken, 9, IDLE, None).await,
            Err(BodyError::Read("reset"))
        ));
    }
}
