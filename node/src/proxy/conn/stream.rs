//! The byte stream of an upstream connection and how one is opened: TCP from a chosen source address,
//! then rustls when the backend needs TLS. The floor under both the pool (which keeps streams) and the
//! client (which dials them), so neither needs the other to know what a connection is.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::model::UpstreamTls;

/// A connection's byte stream: plain TCP or TLS over TCP.
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// rustls over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Why a client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// The CA bundle had no usable certificate, or one was malformed.
    #[error("backend {backend}: invalid CA certificate from {source_name}: {reason}")]
    BadCa {
        /// Backend key.
        backend: String,
        /// Where the CA came from.
        source_name: String,
        /// Why it failed.
        reason: String,
    },
    /// The TLS server name is not a valid DNS name or IP address.
    #[error("backend {backend}: invalid TLS server name {name:?}")]
    BadServerName {
        /// Backend key.
        backend: String,
        /// The name.
        name: String,
    },
    /// rustls refused the configuration.
    #[error("backend {backend}: TLS configuration: {source}")]
    Tls {
        /// Backend key.
        backend: String,
        /// The rustls error.
        source: rustls::Error,
    },
}

/// Why an attempt got no response.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The name did not resolve, or no TCP connection could be made (refused, unreachable, timed out).
    #[error("connect: {0}")]
    Connect(io::Error),
    /// The TLS handshake failed (certificate, protocol).
    #[error("TLS handshake: {0}")]
    Tls(io::Error),
    /// The HTTP exchange failed (the connection was reset or closed before a complete response head).
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// The request could not be put in HTTP/1.1 form.
    #[error("invalid request: {0}")]
    Request(String),
}

/// The TLS connector and verified server name of a backend endpoint: the webpki roots plus any extra CA,
/// HTTP/1.1 by ALPN.
pub(crate) fn tls_connector(
    backend: &str,
    endpoint_host: &str,
    tls: &UpstreamTls,
) -> Result<(TlsConnector, ServerName<'static>), UpstreamError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = &tls.ca_pem {
        let source_name = tls.ca_source.clone().unwrap_or_else(|| "CA bundle".into());
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| UpstreamError::BadCa {
                backend: backend.into(),
                source_name: source_name.clone(),
                reason: e.to_string(),
            })?;
            roots.add(cert).map_err(|e| UpstreamError::BadCa {
                backend: backend.into(),
                source_name: source_name.clone(),
                reason: e.to_string(),
            })?;
            added += 1;
        }
        if added == 0 {
            return Err(UpstreamError::BadCa {
                backend: backend.into(),
                source_name,
                reason: "no PEM certificate found".into(),
            });
        }
    }
    let name = tls
        .server_name
        .clone()
        .unwrap_or_else(|| endpoint_host.to_string());
    let server_name =
        ServerName::try_from(name.clone()).map_err(|_| UpstreamError::BadServerName {
            backend: backend.into(),
            name,
        })?;
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|source| UpstreamError::Tls {
        backend: backend.into(),
        source,
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsConnector::from(Arc::new(config)), server_name))
}

/// A TCP connection to `addr`, from `source` when given (`--upstream-bind`).
pub(crate) async fn connect_tcp(addr: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(addr).await
}
