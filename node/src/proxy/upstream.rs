//! The HTTP client towards one backend host (HTTP/1.1, plain or rustls TLS, connections from
//! `conn::stream`, pooled in `conn::pool` and driven by the request's own task) and the classification of what an attempt did, in the
//! terms the retry policy and the outlier detector speak.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio_rustls::TlsConnector;

use crate::config::model::UpstreamTls;
use crate::health::outlier::{LocalOriginFailure, Observation};
use crate::proxy::conn::pool::{Conn, Pool, UpstreamResponseBody};
use crate::proxy::conn::stream::{connect_tcp, tls_connector};
use crate::proxy::conn::stream::{SendError, Stream, UpstreamError};
use crate::retry::policy::AttemptOutcome;
use crate::routing::resolve::Dial;

/// How long an unused connection is kept: under the keep-alive timeouts servers and load balancers
/// commonly use (60 s and up), so the gateway closes an idle connection before the far side does.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per host at most.
const MAX_IDLE: usize = 512;

/// The client for one backend host. Cheap to clone (one shared pool).
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    /// Where connections go: always this address, or a name resolved at connect time.
    dial: Dial,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    connect_timeout: Duration,
    source: Option<IpAddr>,
    pool: Arc<Pool>,
}

impl std::fmt::Debug for ClientInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientInner")
            .field("dial", &self.dial)
            .field("tls", &self.tls.is_some())
            .field("pool", &self.pool)
            .finish()
    }
}

/// Builds the client for one endpoint of a backend: plain HTTP when `tls` is `None`, otherwise rustls with
/// the webpki roots plus any extra CA, HTTP/1.1 by ALPN. The TLS server name is `tls.server_name` or else
/// `endpoint_host`, whatever address is dialled — so an fqdn endpoint dialled by one of its resolved
/// addresses is still verified against its name.
pub fn build_client(
    backend: &str,
    endpoint_host: &str,
    dial: &Dial,
    tls: Option<&UpstreamTls>,
    connect_timeout: Duration,
    source: Option<IpAddr>,
) -> Result<HttpClient, UpstreamError> {
    let tls = match tls {
        None => None,
        Some(tls) => Some(tls_connector(backend, endpoint_host, tls)?),
    };
    Ok(HttpClient {
        inner: Arc::new(ClientInner {
            dial: dial.clone(),
            tls,
            connect_timeout,
            source,
            pool: Pool::new(IDLE_TIMEOUT, MAX_IDLE),
        }),
    })
}

impl HttpClient {
    /// Sends `req` (absolute URI naming the endpoint) on an idle connection of this host, or a new one,
    /// driving the connection from the calling task until the response head arrives; the returned body
    /// keeps driving it and gives it back to the pool at its end. A reused connection found closed before
    /// the request was written is replaced by a fresh one, once — the request never reached the backend,
    /// so this is not a retry.
    pub async fn request(
        &self,
        mut req: Request<Full<Bytes>>,
    ) -> Result<Response<UpstreamResponseBody>, SendError> {
        origin_form(&mut req)?;
        // A reused connection gets one chance; the resend goes on a fresh one (and takes no idle one from
        // the pool only to drop it).
        let mut may_reuse = true;
        loop {
            let pooled = if may_reuse {
                self.inner.pool.checkout()
            } else {
                None
            };
            let (mut conn, reused) = match pooled {
                Some(c) => (c, true),
                // Boxed: dialling (TLS handshake included) is most of this future's size, and it is
                // rare with a warm pool; inline, every request would carry and move that state.
                None => (Box::pin(self.connect()).await?, false),
            };
            let mut closed = false;
            let result = {
                let mut send = std::pin::pin!(conn.sender.try_send_request(req));
                std::future::poll_fn(|cx| conn.drive(cx, &mut closed, |cx| send.as_mut().poll(cx)))
                    .await
            };
            match result {
                Ok(resp) => {
                    let conn = (!closed).then_some(conn);
                    let pool = self.inner.pool.clone();
                    return Ok(resp.map(|body| UpstreamResponseBody::new(body, conn, pool)));
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => {
                        may_reuse = false;
                        req = unsent;
                    }
                    _ => return Err(SendError::Http(e.into_error())),
                },
            }
        }
    }

    async fn connect(&self) -> Result<Box<Conn>, SendError> {
        let inner = &self.inner;
        let addrs: Vec<SocketAddr> = match &inner.dial {
            Dial::Addr(a) => vec![*a],
            Dial::Name(host, port) => tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(SendError::Connect)?
                .collect(),
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "the name resolved to no address");
        let mut tcp = None;
        for addr in addrs {
            match tokio::time::timeout(inner.connect_timeout, connect_tcp(addr, inner.source)).await
            {
                Ok(Ok(s)) => {
                    tcp = Some(s);
                    break;
                }
                Ok(Err(e)) => last = e,
                Err(_) => {
                    last = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "connect to {addr} timed out after {:?}",
                            inner.connect_timeout
                        ),
                    )
                }
            }
        }
        let tcp = tcp.ok_or(SendError::Connect(last))?;
        let _ = tcp.set_nodelay(true);
        let stream = match &inner.tls {
            None => Stream::Plain(tcp),
            Some((connector, name)) => Stream::Tls(Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(SendError::Tls)?,
            )),
        };
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await?;
        Ok(Box::new(Conn::new(sender, conn)))
    }
}

/// Rewrites an absolute-URI request into what goes on an HTTP/1.1 connection: `Host` from the URI's
/// authority (unless set; without the scheme's default port, the value SigV4 signed) and an origin-form
/// request target.
fn origin_form(req: &mut Request<Full<Bytes>>) -> Result<(), SendError> {
    let uri = req.uri();
    let Some(authority) = uri.authority() else {
        return Err(SendError::Request(format!("no authority in {uri}")));
    };
    if !req.headers().contains_key(HOST) {
        let default_port = if uri.scheme_str() == Some("https") {
            443
        } else {
            80
        };
        let host = match authority.port_u16() {
            Some(p) if p == default_port => authority.host(),
            _ => authority.as_str(),
        };
        let value = HeaderValue::from_str(host)
            .map_err(|e| SendError::Request(format!("Host {host:?}: {e}")))?;
        req.headers_mut().insert(HOST, value);
    }
    let target = req
        .uri()
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(target);
    Ok(())
}

/// A local-origin failure of one attempt (no HTTP response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalFailure {
    /// TCP connect refused, unreachable or timed out.
    Connect,
    /// TLS handshake failed.
    Tls,
    /// The connection was reset or closed before response headers.
    Reset,
    /// HTTP/2 REFUSED_STREAM.
    RefusedStream,
    /// The per-try timeout elapsed before response headers.
    Timeout,
}

impl LocalFailure {
    /// Classifies a failed attempt; for HTTP errors by walking the cause chain.
    pub fn classify(err: &SendError) -> LocalFailure {
        let http = match err {
            SendError::Connect(_) | SendError::Request(_) => return LocalFailure::Connect,
            SendError::Tls(_) => return LocalFailure::Tls,
            SendError::Http(e) => e,
        };
        let mut tls = false;
        let mut refused_stream = false;
        let mut cur: Option<&(dyn StdError + 'static)> = http.source();
        while let Some(e) = cur {
            if e.downcast_ref::<rustls::Error>().is_some() {
                tls = true;
            }
            if e.to_string().contains("refused stream") {
                refused_stream = true;
            }
            // `io::Error::source()` skips the error it wraps (it returns *that* error's source), and streams
            // nest io::Errors around the rustls error, so descend through `get_ref()` instead.
            cur = match e.downcast_ref::<io::Error>().and_then(|io| io.get_ref()) {
                Some(inner) => Some(inner as &(dyn StdError + 'static)),
                None => e.source(),
            };
        }
        if tls {
            LocalFailure::Tls
        } else if refused_stream {
            LocalFailure::RefusedStream
        } else {
            LocalFailure::Reset
        }
    }

    /// The retry policy's name for it.
    pub fn attempt_outcome(self) -> AttemptOutcome {
        match self {
            LocalFailure::Connect => AttemptOutcome::ConnectFailure,
            LocalFailure::Tls => AttemptOutcome::TlsFailure,
            LocalFailure::Reset => AttemptOutcome::Reset,
            LocalFailure::RefusedStream => AttemptOutcome::RefusedStream,
            LocalFailure::Timeout => AttemptOutcome::PerTryTimeout,
        }
    }

    /// The outlier detector's name for it.
    pub fn observation(self) -> Observation {
        Observation::LocalOriginFailure(match self {
            LocalFailure::Connect => LocalOriginFailure::ConnectFailed,
            LocalFailure::Tls => LocalOriginFailure::TlsFailed,
            LocalFailure::Reset | LocalFailure::RefusedStream => LocalOriginFailure::Reset,
            LocalFailure::Timeout => LocalOriginFailure::Timeout,
        })
    }

    /// Label for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            LocalFailure::Connect => "connect_failure",
            LocalFailure::Tls => "tls_failure",
            LocalFailure::Reset => "reset",
            LocalFailure::RefusedStream => "refused_stream",
            LocalFailure::Timeout => "timeout",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    /// How a test backend answers: the response bytes, written piece by piece with a pause between
    /// pieces so that they reach the client as separate reads.
    type Answer = Vec<Vec<u8>>;

    /// A backend on loopback answering the i-th request it gets (over all connections) with
    /// `answers[i]`, closing the connection after an answer that says `connection: close`. Counts the
    /// connections it accepted.
    async fn backend(answers: Vec<Answer>) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = Arc::new(AtomicUsize::new(0));
        let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let answers = answers.clone();
                tokio::spawn(async move {
                    while read_request(&mut s).await.is_some() {
                        let next = answers.lock().expect("answers").next();
                        let Some(answer) = next else { return };
                        let closes = answer
                            .iter()
                            .any(|p| String::from_utf8_lossy(p).contains("connection: close"));
                        for piece in answer {
                            if s.write_all(&piece).await.is_err() {
                                return;
                            }
                            // Not synchronisation: makes the pieces separate reads.
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        if closes {
                            return;
                        }
                    }
                });
            }
        });
        (addr, accepted)
    }

    /// Reads one request with a Content-Length body; `None` at the end of the connection.
    async fn read_request(s: &mut TcpStream) -> Option<()> {
        let mut buf = Vec::new();
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                while buf.len() < end + 4 + len {
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
                    buf.extend_from_slice(&chunk[..n]);
                }
                return Some(());
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn client(addr: SocketAddr) -> HttpClient {
        build_client(
            "b",
            "127.0.0.1",
            &Dial::Addr(addr),
            None,
            Duration::from_secs(5),
            None,
        )
        .expect("client")
    }

    async fn exchange(client: &HttpClient, addr: SocketAddr) -> (u16, Bytes) {
        let req = Request::builder()
            .method("POST")
            .uri(format!("http://{addr}/v1/chat/completions"))
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request");
        let resp = tokio::time::timeout(Duration::from_secs(10), async {
            let resp = client.request(req).await.expect("response");
            let status = resp.status().as_u16();
            let body = resp.into_body().collect().await.expect("body").to_bytes();
            (status, body)
        })
        .await
        .expect("the exchange finished within 10 s");
        resp
    }

    fn with_length(body: &[u8], split: &[usize]) -> Answer {
        let mut all = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        all.extend_from_slice(body);
        let mut pieces = Vec::new();
        let mut rest = all.as_slice();
        for at in split {
            let (a, b) = rest.split_at(*at);
            pieces.push(a.to_vec());
            rest = b;
        }
        pieces.push(rest.to_vec());
        pieces
    }

    fn chunked(chunks: &[&[u8]]) -> Answer {
        let mut pieces =
            vec![b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n".to_vec()];
        for c in chunks {
            let mut p = format!("{:x}\r\n", c.len()).into_bytes();
            p.extend_from_slice(c);
            p.extend_from_slice(b"\r\n");
            pieces.push(p);
        }
        pieces.push(b"0\r\n\r\n".to_vec());
        pieces
    }

    /// Bodies that arrive in one read with their head, in several reads, or chunked all arrive whole,
    /// and every exchange hands its connection back for the next one.
    #[tokio::test]
    async fn answers_in_any_number_of_reads_arrive_whole_on_one_connection() {
        let long: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
        let (addr, accepted) = backend(vec![
            with_length(b"{\"short\":true}", &[]),
            with_length(&long, &[10, 120, 70_000]),
            chunked(&[b"data: one\n\n", b"data: two\n\n"]),
            with_length(b"{\"after\":true}", &[]),
        ])
        .await;
        let client = client(addr);
        assert_eq!(
            exchange(&client, addr).await,
            (200, Bytes::from_static(b"{\"short\":true}"))
        );
        assert_eq!(exchange(&client, addr).await, (200, Bytes::from(long)));
        assert_eq!(
            exchange(&client, addr).await,
            (200, Bytes::from_static(b"data: one\n\ndata: two\n\n"))
        );
        assert_eq!(
            exchange(&client, addr).await,
            (200, Bytes::from_static(b"{\"after\":true}"))
        );
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection for every exchange"
        );
        assert_eq!(client.inner.pool.idle_count(), 1);
    }

    /// An answer that closes its connection leaves nothing in the pool, and the next exchange dials
    /// afresh.
    #[tokio::test]
    async fn an_answer_that_closes_its_connection_is_not_pooled() {
        let mut closing = with_length(b"{\"bye\":true}", &[]);
        closing[0] = String::from_utf8_lossy(&closing[0])
            .replace("content-type", "connection: close\r\ncontent-type")
            .into_bytes();
        let (addr, accepted) = backend(vec![closing, with_length(b"{\"again\":true}", &[])]).await;
        let client = client(addr);
        assert_eq!(
            exchange(&client, addr).await,
            (200, Bytes::from_static(b"{\"bye\":true}"))
        );
        assert_eq!(client.inner.pool.idle_count(), 0);
        assert_eq!(
            exchange(&client, addr).await,
            (200, Bytes::from_static(b"{\"again\":true}"))
        );
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }
}
