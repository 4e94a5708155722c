//! The control API of the mock provider (HTTP/1.1 JSON on `--control`).
//!
//! It is a separate port from the data port so that tests can still steer a provider whose data listener
//! is closed (`refuse`). Endpoints:
//!
//! | Method + path           | Body / answer                                                              |
//! |-------------------------|----------------------------------------------------------------------------|
//! | `GET /health`           | `{"status":"ok","name":NAME}`                                              |
//! | `PUT /mode`             | a mode JSON (see [`super::mode`]), e.g. `{"mode":"status","status":500}`; answers `{"mode":MODE,"served":0}` once the data listener follows it (closed for `refuse`, re-bound otherwise) |
//! | `GET /mode`             | `{"mode":MODE,"served":N}` — `served`: requests seen since the mode was set |
//! | `PUT /stream`           | `{"chunk_delay_ms":50,"content_chunks":5}` (both optional); answers the full settings |
//! | `GET /stream`           | `{"chunk_delay_ms":N,"content_chunks":N}`                                  |
//! | `GET /requests`         | JSON array of [`super::log::RecordedRequest`]                              |
//! | `GET /requests/count`   | `{"count":N}`                                                              |
//! | `DELETE /requests`      | clears the log; `{"cleared":N}`                                            |
//! | `PUT /credentials`      | `{"lifetime_secs":N,"fail":bool}`: the credential services ([`super::credentials`]) |
//! | `GET /credentials`      | `{"settings":…,"issued":{KIND:N}}`                                         |
//!
//! Errors are `{"error":"message"}` with status 400 (bad JSON), 404 or 405.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::net::TcpListener;

use super::mode::Mode;
use super::{Shared, StreamSettings};

/// Serves the control API on `listener` forever.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener) -> anyhow::Result<()> {
    loop {
        let (tcp, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "control accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), svc)
                .await
            {
                tracing::debug!(error = %e, "control connection error");
            }
        });
    }
}

fn reply(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn err(status: StatusCode, msg: impl std::fmt::Display) -> Response<Full<Bytes>> {
    reply(status, &json!({"error": msg.to_string()}))
}

/// Partial stream settings accepted by `PUT /stream`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamPatch {
    chunk_delay_ms: Option<u64>,
    content_chunks: Option<usize>,
}

async fn handle(
    shared: Arc<Shared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, 1024 * 1024).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return Ok(err(StatusCode::BAD_REQUEST, format!("reading body: {e}"))),
    };
    let mode_json = |shared: &Shared| {
        let (mode, served) = shared.mode();
        json!({"mode": mode, "served": served})
    };
    Ok(match (&parts.method, parts.uri.path()) {
        (&Method::GET, "/health") => reply(
            StatusCode::OK,
            &json!({"status": "ok", "name": shared.name}),
        ),
        (&Method::PUT, "/mode") => match serde_json::from_slice::<Mode>(&body) {
            Err(e) => err(StatusCode::BAD_REQUEST, format!("bad mode JSON: {e}")),
            Ok(mode) => match shared.set_mode(mode).await {
                Ok(()) => reply(StatusCode::OK, &mode_json(&shared)),
                Err(e) => err(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")),
            },
        },
        (&Method::GET, "/mode") => reply(StatusCode::OK, &mode_json(&shared)),
        (&Method::PUT, "/stream") => match serde_json::from_slice::<StreamPatch>(&body) {
            Err(e) => err(StatusCode::BAD_REQUEST, format!("bad stream JSON: {e}")),
            Ok(p) => {
                let mut s: StreamSettings = shared.stream();
                if let Some(d) = p.chunk_delay_ms {
                    s.chunk_delay_ms = d;
                }
                if let Some(n) = p.content_chunks {
                    s.content_chunks = n.max(1);
                }
                shared.set_stream(s);
                reply(StatusCode::OK, &json!(s))
            }
        },
        (&Method::GET, "/stream") => reply(StatusCode::OK, &json!(shared.stream())),
        (&Method::GET, "/requests") => reply(StatusCode::OK, &json!(shared.requests())),
        (&Method::GET, "/requests/count") => {
            reply(StatusCode::OK, &json!({"count": shared.request_count()}))
        }
        (&Method::DELETE, "/requests") => {
            let n = shared.clear();
            reply(StatusCode::OK, &json!({"cleared": n}))
        }
        (&Method::PUT, "/credentials") => {
            match serde_json::from_slice::<super::credentials::CredSettings>(&body) {
                Err(e) => err(
                    StatusCode::BAD_REQUEST,
                    format!("bad credentials JSON: {e}"),
                ),
                Ok(c) => {
                    super::credentials::set_settings(c);
                    reply(StatusCode::OK, &super::credentials::status())
                }
            }
        }
        (&Method::GET, "/credentials") => reply(StatusCode::OK, &super::credentials::status()),
        (_, "/health" | "/mode" | "/stream" | "/requests" | "/requests/count" | "/credentials") => {
            err(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        (_, path) => err(StatusCode::NOT_FOUND, format!("no control endpoint {path}")),
    })
}
