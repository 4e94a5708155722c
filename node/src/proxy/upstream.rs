//! The HTTP client towards one backend (pooled, rustls for TLS) and the classification of what an attempt
//! did, in the terms the retry policy and the outlier detector speak.

use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::dns::{GaiResolver, Name};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::config::model::UpstreamTls;
use crate::health::outlier::{LocalOriginFailure, Observation};
use crate::retry::policy::AttemptOutcome;
use crate::routing::resolve::Dial;

/// The pooled client for one backend host.
pub type HttpClient = Client<HttpsConnector<HttpConnector<HostResolver>>, Full<Bytes>>;

/// The connector's resolver for one host: the host's own address when it has one, so the request URI can
/// keep the endpoint's name (for Host, `:authority`, SNI and SigV4) while the connection goes to exactly
/// this host; the system resolver for a name that did not resolve at the last refresh.
#[derive(Clone)]
pub enum HostResolver {
    /// Always this address (the port comes from the URI).
    Pinned(IpAddr),
    /// `getaddrinfo` at connect time.
    System(GaiResolver),
}

type ResolveFuture =
    Pin<Box<dyn Future<Output = std::io::Result<std::vec::IntoIter<SocketAddr>>> + Send>>;

impl tower_service::Service<Name> for HostResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = ResolveFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        match self {
            HostResolver::Pinned(ip) => {
                // Port 0: hyper-util fills in the URI's port.
                let addr = SocketAddr::new(*ip, 0);
                Box::pin(async move { Ok(vec![addr].into_iter()) })
            }
            HostResolver::System(gai) => {
                let lookup = gai.call(name);
                Box::pin(async move { Ok(lookup.await?.collect::<Vec<_>>().into_iter()) })
            }
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

/// Builds the client for one endpoint of a backend: plain HTTP when `tls` is `None`, otherwise rustls with
/// the webpki roots plus any extra CA, HTTP/2 offered by ALPN. The TLS server name is `tls.server_name` or
/// else `endpoint_host`, whatever address is dialled — so an fqdn endpoint dialled by one of its resolved
/// addresses is still verified against its name.
pub fn build_client(
    backend: &str,
    endpoint_host: &str,
    dial: &Dial,
    tls: Option<&UpstreamTls>,
    connect_timeout: Duration,
    source: Option<IpAddr>,
) -> Result<HttpClient, UpstreamError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut server_name = None;
    if let Some(tls) = tls {
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
        server_name =
            Some(
                ServerName::try_from(name.clone()).map_err(|_| UpstreamError::BadServerName {
                    backend: backend.into(),
                    name,
                })?,
            );
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|source| UpstreamError::Tls {
        backend: backend.into(),
        source,
    })?
    .with_root_certificates(roots)
    .with_no_client_auth();

    let resolver = match dial {
        Dial::Addr(addr) => HostResolver::Pinned(addr.ip()),
        Dial::Name(..) => HostResolver::System(GaiResolver::new()),
    };
    let mut http = HttpConnector::new_with_resolver(resolver);
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_local_address(source);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let builder = match server_name {
        Some(name) => builder.with_server_name_resolver(FixedServerNameResolver::new(name)),
        None => builder,
    };
    let connector = builder.enable_all_versions().wrap_connector(http);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .build(connector))
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
    /// Classifies a client error by walking its cause chain.
    pub fn classify(err: &hyper_util::client::legacy::Error) -> LocalFailure {
        let mut tls = false;
        let mut refused_stream = false;
        let mut cur: Option<&(dyn StdError + 'static)> = err.source();
        while let Some(e) = cur {
            if e.downcast_ref::<rustls::Error>().is_some() {
                tls = true;
            }
            if e.to_string().contains("refused stream") {
                refused_stream = true;
            }
            // `io::Error::source()` skips the error it wraps (it returns *that* error's source), and connectors
            // nest io::Errors around the rustls error, so descend through `get_ref()` instead.
            cur = match e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(inner) => Some(inner as &(dyn StdError + 'static)),
                None => e.source(),
            };
        }
        if tls {
            LocalFailure::Tls
        } else if err.is_connect() {
            LocalFailure::Connect
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
