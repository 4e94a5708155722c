//! The data port of the mock provider: sockets, TLS, HTTP serving and the failure modes.
//!
//! The wire formats ([`super::openai`], [`super::bedrock`], [`super::azure`], [`super::anthropic`]) decide *what* to answer; this module decides *how*: it owns the
//! listener (closing and re-binding it for `refuse`), keeps a duplicate of each TCP socket so that a request
//! can end its connection with an RST (`reset`), and paces, stalls or cuts response bodies.
//!
//! Non-streamed answers under `stall K`/`cut K`: the head (with the full `Content-Length`) and, when
//! `K >= 1`, the first half of the body are sent, then the connection stalls or is cut.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Notify};

use super::log::RecordedRequest;
use super::mode::Mode;
use super::openai::{self, Reply};
use super::{anthropic, azure, bedrock, cohere, responses, vertex, Format, Shared};

/// Response body type of the data port.
pub type DataBody = BoxBody<Bytes, std::io::Error>;

/// Largest request body accepted (bigger ones get 413).
const MAX_BODY: usize = 64 * 1024 * 1024;

/// Builds a TLS acceptor (rustls, ring provider, ALPN h2 + http/1.1) from PEM files.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(cfg)))
}

/// Runs the data listener: accepts while the mode allows, closes the listener for `refuse` and re-binds
/// `addr` when the mode allows again. Never returns under normal operation.
pub async fn listen(
    shared: Arc<Shared>,
    mut listener: Option<TcpListener>,
    addr: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> anyhow::Result<()> {
    let mut want = shared.want_listen.subscribe();
    loop {
        let Some(l) = listener.take() else {
            let ok = want.wait_for(|w| *w).await.is_ok();
            anyhow::ensure!(ok, "mode state dropped");
            listener = Some(bind_retrying(addr).await);
            continue;
        };
        shared.listening.send_replace(true);
        loop {
            tokio::select! {
                r = l.accept() => match r {
                    Ok((tcp, peer)) => {
                        tokio::spawn(connection(shared.clone(), tcp, peer, tls.clone()));
                    }
                    Err(e) => {
                        // EMFILE and friends: back off a little instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                ok = async { want.wait_for(|w| !*w).await.is_ok() } => {
                    anyhow::ensure!(ok, "mode state dropped");
                    break;
                }
            }
        }
        drop(l);
        shared.listening.send_replace(false);
    }
}

/// Binds `addr`, retrying while the address is still in use (a closing socket of ours).
async fn bind_retrying(addr: SocketAddr) -> TcpListener {
    loop {
        match TcpListener::bind(addr).await {
            Ok(l) => return l,
            Err(e) => {
                tracing::warn!(error = %e, %addr, "re-binding data port failed; retrying");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// Serves one accepted TCP connection.
async fn connection(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let _ = tcp.set_nodelay(true);
    // Keep a duplicate of the socket so that `reset` can set SO_LINGER=0 after hyper owns the stream.
    let (tcp, dup) = match dup_socket(tcp) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "cannot duplicate socket");
            return;
        }
    };
    let reset = Arc::new(Notify::new());
    match tls {
        None => serve(shared, tcp, peer, dup, reset).await,
        Some(acceptor) => {
            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => serve(shared, stream, peer, dup, reset).await,
                Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

fn dup_socket(tcp: TcpStream) -> std::io::Result<(TcpStream, std::net::TcpStream)> {
    let std = tcp.into_std()?;
    let dup = std.try_clone()?;
    Ok((TcpStream::from_std(std)?, dup))
}

/// Serves HTTP/1.1 or h2 on `io` until it ends, a request asks for a reset, or the listener closes
/// (then the connection is shut down gracefully: idle ones at once, busy ones after their response).
async fn serve<I>(
    shared: Arc<Shared>,
    io: I,
    peer: SocketAddr,
    dup: std::net::TcpStream,
    reset: Arc<Notify>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let svc_shared = shared.clone();
    let svc_reset = reset.clone();
    let service = hyper::service::service_fn(move |req| {
        handle(svc_shared.clone(), peer, svc_reset.clone(), req)
    });
    let mut conn = Box::pin(builder.serve_connection(TokioIo::new(io), service));
    let mut want = shared.want_listen.subscribe();
    let mut closing = false;
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, %peer, "data connection ended with error");
                }
                return;
            }
            _ = reset.notified() => {
                match TcpStream::from_std(dup) {
                    Ok(s) => {
                        if let Err(e) = s.set_zero_linger() {
                            tracing::warn!(error = %e, "SO_LINGER=0 failed");
                        }
                        // Dropping `conn` and then `s` closes the last descriptor: the kernel sends RST.
                        drop(conn);
                        drop(s);
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot re-register duplicate socket"),
                }
                return;
            }
            ok = async { want.wait_for(|w| !*w).await.is_ok() }, if !closing => {
                if !ok {
                    return;
                }
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Handles one request on the data port: read it, record it, then answer per the mode.
async fn handle(
    shared: Arc<Shared>,
    peer: SocketAddr,
    reset: Arc<Notify>,
    req: Request<Incoming>,
) -> Result<Response<DataBody>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            let status = if e.is::<http_body_util::LengthLimitError>() {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            let reply = openai::error_reply(status, &format!("cannot read request body: {e}"));
            return Ok(full_response(&shared, 0, reply));
        }
    };
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_owned())
        .unwrap_or_else(|| parts.uri.path().to_owned());
    // The credential services (ECS, STS, OIDC, Entra) answer outside the provider's mode and log.
    if let Some(reply) = super::credentials::handle(&parts.method, &path, &parts.headers, &body) {
        return Ok(full_response(&shared, 0, reply));
    }
    let format = Format::of(&path);
    let verdict = (format == Format::Bedrock).then(|| {
        let authority = parts
            .headers
            .get(hyper::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.as_str().to_owned()))
            .unwrap_or_default();
        let target = bedrock::Target {
            path: &path,
            authority: &authority,
        };
        bedrock::verify_sigv4(&parts.method, target, &parts.headers, &body)
    });
    // Chosen before the request is logged, so the log says which mode answered it.
    let mode = shared.next_mode();
    let seq = if shared.logging() {
        let mut headers = std::collections::BTreeMap::<String, String>::new();
        for (name, value) in &parts.headers {
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            headers
                .entry(name.as_str().to_owned())
                .and_modify(|old| {
                    old.push_str(", ");
                    old.push_str(&v);
                })
                .or_insert(v);
        }
        shared.record(RecordedRequest {
            seq: 0,
            method: parts.method.as_str().to_owned(),
            path: path.clone(),
            version: format!("{:?}", parts.version),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            source: peer.to_string(),
            at_ms: now_ms(),
            sigv4: verdict.as_ref().map(|v| match v {
                Ok(()) => "verified".to_owned(),
                Err(why) => format!("invalid: {why}"),
            }),
            mode: serde_json::to_value(&mode).ok(),
        })
    } else {
        shared.count_unlogged()
    };

    tracing::debug!(seq, %path, ?mode, "data request");
    let settings = shared.stream();
    let answer = || {
        let ctx = openai::Ctx {
            name: &shared.name,
            seq,
            content_chunks: settings.content_chunks,
        };
        match (format, &verdict) {
            (Format::Bedrock, Some(v)) => {
                bedrock::handle(&parts.method, &path, &parts.headers, &body, v, &ctx)
            }
            (Format::Azure, _) => azure::handle(&parts.method, &path, &parts.headers, &body, &ctx),
            (Format::Anthropic, _) => {
                anthropic::handle(&parts.method, &path, &parts.headers, &body, &ctx)
            }
            (Format::Vertex | Format::Gemini, _) => {
                vertex::handle(&parts.method, &path, &parts.headers, &body, &ctx)
            }
            (Format::Cohere, _) if path.starts_with(cohere::RERANK_PATH) => {
                cohere::rerank(&parts.method, &parts.headers, &body, &ctx)
            }
            (Format::Cohere, _) => cohere::handle(&parts.method, &parts.headers, &body, &ctx),
            (Format::Responses, _) => responses::handle(
                &parts.method,
                &path,
                &parts.headers,
                &body,
                &ctx,
                &shared.responses,
            ),
            _ => openai::handle(&parts.method, &path, &body, &ctx).unwrap_or_else(|| {
                openai::error_reply(StatusCode::NOT_FOUND, &format!("no route for {path}"))
            }),
        }
    };
    let delay = Duration::from_millis(settings.chunk_delay_ms);
    Ok(match mode {
        Mode::Refuse | Mode::Reset => {
            reset.notify_one();
            std::future::pending().await
        }
        Mode::Hang => std::future::pending().await,
        Mode::Status {
            status,
            retry_after,
            headers,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let msg = format!("mock-provider {}: injected status {status}", shared.name);
            let mut resp = full_response(&shared, seq, format.error_reply(code, &msg));
            if let Some(ra) = retry_after {
                if let Ok(v) = HeaderValue::from_str(&ra.header_value()) {
                    resp.headers_mut().insert(RETRY_AFTER, v);
                }
            }
            for (name, value) in headers {
                if let (Ok(n), Ok(v)) = (
                    http::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(&value),
                ) {
                    resp.headers_mut().insert(n, v);
                }
            }
            resp
        }
        Mode::Delay { ms } => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            respond(&shared, seq, answer(), delay, None)
        }
        Mode::Ok | Mode::FailAfter { .. } => respond(&shared, seq, answer(), delay, None),
        Mode::Stall { after_chunks } => respond(
            &shared,
            seq,
            answer(),
            delay,
            Some((after_chunks, End::Stall)),
        ),
        Mode::Cut { after_chunks } => respond(
            &shared,
            seq,
            answer(),
            delay,
            Some((after_chunks, End::Cut)),
        ),
        Mode::StreamError {
            after_chunks,
            status,
        } => {
            let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let msg = format!(
                "mock-provider {}: injected stream error {status}",
                shared.name
            );
            match answer() {
                Reply::Stream { .. } => respond(
                    &shared,
                    seq,
                    answer(),
                    delay,
                    Some((
                        after_chunks,
                        End::Append(format.stream_error_event(code, &msg, after_chunks)),
                    )),
                ),
                Reply::Full { .. } => full_response(&shared, seq, format.error_reply(code, &msg)),
            }
        }
        Mode::Truncate { after_chunks } => respond(
            &shared,
            seq,
            answer(),
            delay,
            Some((after_chunks, End::Finish)),
        ),
    })
}

/// How a truncated body ends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// Never send anything more.
    Stall,
    /// Abort the stream (the connection, for HTTP/1.1).
    Cut,
    /// End the body cleanly (a stream: without its end marker).
    Finish,
    /// Send these bytes (an in-stream error event), then end cleanly.
    Append(Bytes),
}

fn base_response(
    shared: &Shared,
    seq: u64,
    status: StatusCode,
    content_type: &str,
) -> http::response::Builder {
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .header("x-mock-provider", shared.name.as_str())
        .header("x-mock-seq", seq)
}

fn with_headers(
    mut b: http::response::Builder,
    headers: Vec<(&'static str, String)>,
) -> http::response::Builder {
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b
}

fn full_response(shared: &Shared, seq: u64, reply: Reply) -> Response<DataBody> {
    respond(shared, seq, reply, Duration::ZERO, None)
}

fn internal_error() -> Response<DataBody> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(b"mock-provider: bad response"))
            .map_err(never)
            .boxed(),
    );
    *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    r
}

fn never(e: Infallible) -> std::io::Error {
    match e {}
}

/// Builds the response for `reply`, pacing chunks by `delay` and truncating per `truncate`.
fn respond(
    shared: &Shared,
    seq: u64,
    reply: Reply,
    delay: Duration,
    truncate: Option<(usize, End)>,
) -> Response<DataBody> {
    let built = match (reply, truncate) {
        (
            Reply::Full {
                status,
                content_type,
                body,
                headers,
            },
            None,
        ) => with_headers(base_response(shared, seq, status, content_type), headers)
            .body(Full::new(body).map_err(never).boxed()),
        (
            Reply::Full {
                status,
                content_type,
                body,
                headers,
            },
            Some((k, end)),
        ) => {
            let len = body.len();
            let chunks = if k >= 1 {
                vec![body.slice(..len / 2)]
            } else {
                Vec::new()
            };
            with_headers(base_response(shared, seq, status, content_type), headers)
                .header(CONTENT_LENGTH, len)
                .body(ChunkBody::spawn(chunks, Duration::ZERO, Some(end)).boxed())
        }
        (
            Reply::Stream {
                content_type,
                mut chunks,
            },
            truncate,
        ) => {
            let end = truncate.and_then(|(k, end)| {
                chunks.truncate(k);
                match end {
                    End::Finish => None,
                    End::Append(last) => {
                        chunks.push(last);
                        None
                    }
                    other => Some(other),
                }
            });
            base_response(shared, seq, StatusCode::OK, content_type)
                .header(CACHE_CONTROL, "no-cache")
                .body(ChunkBody::spawn(chunks, delay, end).boxed())
        }
    };
    built.unwrap_or_else(|e| {
        tracing::error!(error = %e, "building response");
        internal_error()
    })
}

/// Messages from the chunk producer task to [`ChunkBody`].
enum Msg {
    Data(Bytes),
    Cut,
}

/// A response body fed by a producer task, so chunks can be paced, stalled or cut.
struct ChunkBody {
    rx: mpsc::Receiver<Msg>,
    /// Set once the body has answered `Pending` after being told to cut, so the previous chunk is
    /// flushed by hyper before the stream is aborted.
    cut_armed: bool,
}

impl ChunkBody {
    /// Spawns the producer: sends `chunks` with `delay` between them, then ends per `end`
    /// (`None`: end normally; `Stall`: keep the stream open until the client goes away; `Cut`: abort).
    fn spawn(chunks: Vec<Bytes>, delay: Duration, end: Option<End>) -> ChunkBody {
        let (tx, rx) = mpsc::channel(1);
        tokio::spawn(async move {
            for (i, c) in chunks.into_iter().enumerate() {
                if i > 0 && !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if tx.send(Msg::Data(c)).await.is_err() {
                    return;
                }
            }
            match end {
                None | Some(End::Finish) | Some(End::Append(_)) => {}
                Some(End::Stall) => tx.closed().await,
                Some(End::Cut) => {
                    let _ = tx.send(Msg::Cut).await;
                }
            }
        });
        ChunkBody {
            rx,
            cut_armed: false,
        }
    }
}

impl Body for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.cut_armed {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "mock-provider: stream cut",
            ))));
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Msg::Data(b))) => Poll::Ready(Some(Ok(Frame::data(b)))),
            Poll::Ready(Some(Msg::Cut)) => {
                // Yield once so hyper flushes what it has written, then fail on the next poll.
                self.cut_armed = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}
