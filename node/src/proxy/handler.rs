//! The client-facing HTTP service: endpoint dispatch, body limits, model extraction and rule matching, then
//! the attempt loop (`forward`). Everything here is per request and reads only the published snapshot.

use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::gateway::Gateway;
use crate::proxy::body::ProxyBody;
use crate::proxy::error::GatewayError;
use crate::proxy::forward::{forward, ProxiedRequest};
use crate::routing::matcher::{exact_models, rule_holds, MatchInput};

/// The endpoints that are routed to a backend.
const ROUTED: &[&str] = &["/v1/chat/completions", "/v1/completions", "/v1/embeddings"];

/// Serves one client request.
pub async fn handle(
    gw: Arc<Gateway>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let path = req.uri().path();
    let resp = if path == "/v1/models" {
        if req.method() == Method::GET {
            models(&gw)
        } else {
            method_not_allowed("GET")
        }
    } else if ROUTED.contains(&path) {
        if req.method() == Method::POST {
            proxy(&gw, req).await
        } else {
            method_not_allowed("POST")
        }
    } else {
        GatewayError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "unknown_url",
            format!("unknown request URL: {} {}", req.method(), path),
        )
        .into_response()
    };
    Ok(resp)
}

fn method_not_allowed(allow: &'static str) -> Response<ProxyBody> {
    let mut r = GatewayError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
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
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    stream: Option<bool>,
    /// Only `include_usage` is read; kept as a value so any shape is accepted as before.
    #[serde(default)]
    stream_options: Option<serde_json::Value>,
}

async fn proxy(gw: &Gateway, req: Request<Incoming>) -> Response<ProxyBody> {
    let received = std::time::Instant::now();
    let operation = match req.uri().path() {
        "/v1/chat/completions" => "chat",
        "/v1/completions" => "text_completion",
        _ => "embeddings",
    };
    let snapshot = gw.snapshot();
    let limit = snapshot.max_body_bytes;
    let too_large = || {
        GatewayError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
        .into_response()
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let body: Bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large()
        }
        Err(e) => {
            return GatewayError::bad_request(
                "body_read_error",
                format!("cannot read request body: {e}"),
            )
            .into_response()
        }
    };
    let probe: BodyProbe<'_> = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return GatewayError::bad_request(
                "invalid_json",
                format!("request body is not a valid JSON object: {e}"),
            )
            .into_response()
        }
    };
    let stream = probe.stream.unwrap_or(false);
    let include_usage = probe
        .stream_options
        .as_ref()
        .and_then(|o| o.get("include_usage")?.as_bool())
        .unwrap_or(false);
    let model = match probe.model {
        Some(m) if !m.is_empty() => m.into_owned(),
        _ => {
            return GatewayError::bad_request("missing_model", "you must provide a model parameter")
                .into_response()
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
        return GatewayError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            "model_not_found",
            format!("no matching route for model {model:?}"),
        )
        .into_response();
    };
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_string(), |p| p.as_str().to_string());
    let proxied = ProxiedRequest {
        path_and_query,
        headers: parts.headers,
        body,
        model,
        stream,
        include_usage,
        operation,
        received,
    };
    let resp = forward(route, rule, &proxied).await;
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
                        "id": m, "object": "model", "created": 0, "owned_by": rule.models_owned_by
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
