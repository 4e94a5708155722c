//! A tiny HTTP client for tests.
//!
//! Each call opens its own connection (no pooling), so a test knows exactly which connection a failure
//! mode hit and no state leaks between calls. Built directly on hyper's connection API over a tokio
//! `TcpStream`; plain HTTP/1.1, or h2c with prior knowledge ([`http2_post_json`]).

use std::io;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpStream;

/// Time allowed for connecting and receiving the response head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_slice(&self.body).with_context(|| {
            format!(
                "response body is not JSON: {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The body as text (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// A header value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A body chunk with its arrival time.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// When the chunk was read from the connection.
    pub at: Instant,
    /// The chunk.
    pub data: Bytes,
}

/// A response whose body is read chunk by chunk.
#[derive(Debug)]
pub struct StreamingResponse {
    /// Status code.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    body: Incoming,
}

impl StreamingResponse {
    /// The next data chunk; `None` at the end of the body; `Some(Err)` if the body failed (e.g. the
    /// connection was cut). Trailers are skipped.
    pub async fn next_chunk(&mut self) -> Option<anyhow::Result<Chunk>> {
        loop {
            match self.body.frame().await? {
                Err(e) => return Some(Err(anyhow::Error::new(e).context("reading response body"))),
                Ok(frame) => {
                    if let Ok(data) = frame.into_data() {
                        if !data.is_empty() {
                            return Some(Ok(Chunk {
                                at: Instant::now(),
                                data,
                            }));
                        }
                    }
                }
            }
        }
    }

    /// Reads the rest of the body: the chunks received and the error that ended it, if any.
    pub async fn collect_chunks(mut self) -> (Vec<Chunk>, Option<anyhow::Error>) {
        let mut chunks = Vec::new();
        while let Some(c) = self.next_chunk().await {
            match c {
                Ok(c) => chunks.push(c),
                Err(e) => return (chunks, Some(e)),
            }
        }
        (chunks, None)
    }
}

/// The first `std::io::ErrorKind` in an error's chain (e.g. `ConnectionRefused`, `ConnectionReset`).
pub fn io_error_kind(err: &anyhow::Error) -> Option<io::ErrorKind> {
    err.chain()
        .find_map(|e| e.downcast_ref::<io::Error>())
        .map(io::Error::kind)
}

fn authority(uri: &Uri) -> anyhow::Result<String> {
    if uri.scheme_str() != Some("http") {
        bail!("only http:// URLs are supported, got {uri}");
    }
    let host = uri.host().context("URL has no host")?;
    Ok(format!("{host}:{}", uri.port_u16().unwrap_or(80)))
}

fn build_request(
    method: Method,
    uri: &Uri,
    headers: &[(&str, &str)],
    body: Bytes,
) -> anyhow::Result<Request<Full<Bytes>>> {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let mut b = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header(HOST, authority(uri)?);
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Ok(b.body(Full::new(body))?)
}

async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    h2: bool,
) -> anyhow::Result<hyper::Response<Incoming>> {
    let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    let addr = authority(&uri)?;
    let mut req = build_request(method, &uri, headers, body)?;
    let fut = async {
        let tcp = TcpStream::connect(&addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true)?;
        let io = TokioIo::new(tcp);
        if h2 {
            *req.uri_mut() = uri.clone();
            req.headers_mut().remove(HOST);
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .context("h2 handshake")?;
            tokio::spawn(conn);
            sender.send_request(req).await.context("sending request")
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .context("http/1.1 handshake")?;
            tokio::spawn(conn);
            sender.send_request(req).await.context("sending request")
        }
    };
    tokio::time::timeout(HEAD_TIMEOUT, fut)
        .await
        .with_context(|| format!("no response head from {url} within {HEAD_TIMEOUT:?}"))?
}

async fn complete(resp: hyper::Response<Incoming>) -> anyhow::Result<HttpResponse> {
    let (parts, body) = resp.into_parts();
    let body = body
        .collect()
        .await
        .context("reading response body")?
        .to_bytes();
    Ok(HttpResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Sends one request over a new HTTP/1.1 connection and reads the whole response.
pub async fn http_request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> anyhow::Result<HttpResponse> {
    complete(send(method, url, headers, body.into(), false).await?).await
}

/// `GET url`.
pub async fn http_get(url: &str) -> anyhow::Result<HttpResponse> {
    http_request(Method::GET, url, &[], Bytes::new()).await
}

/// `POST url` with a JSON body.
pub async fn http_post_json(url: &str, body: &Value) -> anyhow::Result<HttpResponse> {
    let json = [(CONTENT_TYPE.as_str(), "application/json")];
    http_request(Method::POST, url, &json, body.to_string()).await
}

/// `POST url` with a JSON body over h2c (HTTP/2 with prior knowledge).
pub async fn http2_post_json(url: &str, body: &Value) -> anyhow::Result<HttpResponse> {
    let json = [(CONTENT_TYPE.as_str(), "application/json")];
    complete(
        send(
            Method::POST,
            url,
            &json,
            Bytes::from(body.to_string()),
            true,
        )
        .await?,
    )
    .await
}

/// `POST https://url` with a JSON body over TLS with `tls` (HTTP/2 if ALPN selects `h2`, else HTTP/1.1).
/// The URL host must be an IP address or a DNS name in the server certificate.
pub async fn https_post_json(
    url: &str,
    body: &Value,
    tls: std::sync::Arc<rustls::ClientConfig>,
) -> anyhow::Result<HttpResponse> {
    let uri: Uri = url.parse().with_context(|| format!("bad URL {url}"))?;
    if uri.scheme_str() != Some("https") {
        bail!("expected an https:// URL, got {uri}");
    }
    let host = uri.host().context("URL has no host")?.to_owned();
    let addr = format!("{host}:{}", uri.port_u16().unwrap_or(443));
    let server_name =
        rustls_pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
            .with_context(|| format!("bad server name {host}"))?;
    let path = uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_owned();
    let fut = async {
        let tcp = TcpStream::connect(&addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .context("TLS handshake")?;
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(stream);
        let b = Request::builder()
            .method(Method::POST)
            .header(CONTENT_TYPE, "application/json");
        let b = if h2 {
            b.uri(uri.clone())
        } else {
            b.uri(path).header(HOST, &addr)
        };
        let req = b.body(Full::new(Bytes::from(body.to_string())))?;
        let resp = if h2 {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .context("h2 handshake")?;
            tokio::spawn(conn);
            sender.send_request(req).await.context("sending request")?
        } else {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .context("http/1.1 handshake")?;
            tokio::spawn(conn);
            sender.send_request(req).await.context("sending request")?
        };
        complete(resp).await
    };
    tokio::time::timeout(HEAD_TIMEOUT, fut)
        .await
        .with_context(|| format!("no response from {url} within {HEAD_TIMEOUT:?}"))?
}

/// `POST url` with a JSON body; returns once the response head arrives, the body is read by chunks.
pub async fn http_post_json_stream(url: &str, body: &Value) -> anyhow::Result<StreamingResponse> {
    let json = [(CONTENT_TYPE.as_str(), "application/json")];
    let resp = send(
        Method::POST,
        url,
        &json,
        Bytes::from(body.to_string()),
        false,
    )
    .await?;
    let (parts, body) = resp.into_parts();
    Ok(StreamingResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// The head of a raw HTTP/1.1 `POST path` with a JSON body of `content_length` bytes, or chunked when
/// `None`: for tests that write a request themselves, byte by byte.
pub fn raw_post_head(path: &str, content_length: Option<usize>) -> String {
    let framing = match content_length {
        Some(n) => format!("content-length: {n}"),
        None => "transfer-encoding: chunked".to_string(),
    };
    format!(
        "POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n{framing}\r\n\r\n"
    )
}

/// Reads one HTTP/1.1 response with a Content-Length body from `conn` within 10 s: (status, body).
pub async fn read_raw_response(conn: &mut tokio::net::TcpStream) -> anyhow::Result<(u16, String)> {
    tokio::time::timeout(Duration::from_secs(10), read_raw_response_unbounded(conn))
        .await
        .map_err(|_| anyhow::anyhow!("no complete response within 10 s"))?
}

async fn read_raw_response_unbounded(
    conn: &mut tokio::net::TcpStream,
) -> anyhow::Result<(u16, String)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed before the response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no status in {head:?}"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| anyhow::anyhow!("no content-length in {head:?}"))?;
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = conn.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "connection closed mid-body");
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}
