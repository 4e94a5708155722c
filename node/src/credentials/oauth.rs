//! Access tokens over OAuth 2.0: the client-credentials grant at an OIDC provider's token endpoint
//! (RFC 6749 §4.4; the endpoint from `tokenEndpoint` or the issuer's OpenID discovery document), and
//! Microsoft Entra ID's v2.0 token endpoint with a client secret or a federated client assertion.
//!
//! This is what upstream's token providers do (golang.org/x/oauth2 `clientcredentials` after go-oidc
//! discovery; azidentity's `ClientSecretCredential` / `ClientAssertionCredential`). Entra's authority is
//! `AZURE_AUTHORITY_HOST` when set, as the Azure SDKs honour it (sovereign clouds, and tests pointing it at
//! a local mock), else `https://login.microsoftonline.com`. Errors carry the endpoint, the HTTP status and
//! the provider's `error`/`error_description`, never a secret or a token.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::config::model::{OidcClient, SecretString};

/// Entra ID's public-cloud authority.
pub(crate) const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The scope of an Azure OpenAI (Cognitive Services) token, as upstream requests it.
pub(crate) const AZURE_OPENAI_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
/// `client_assertion_type` of a federated (JWT bearer) client assertion.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The largest token or discovery answer read: they are a few KiB.
const MAX_ANSWER: usize = 256 * 1024;
/// Assumed lifetime of a token answered without `expires_in` (RFC 6749 makes it optional).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// Why a token could not be obtained. Never holds a secret or a token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The URL cannot be requested.
    #[error("invalid URL {url}: {reason}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// No answer (connect, TLS, reset, timeout).
    #[error("request to {url} failed: {reason}")]
    Transport {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
    /// A non-2xx answer: the provider's `error` and `error_description` when it gave them.
    #[error("{url} answered {status}{}", detail.as_ref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status {
        /// The URL.
        url: String,
        /// HTTP status.
        status: StatusCode,
        /// `error: error_description`, as the provider wrote them.
        detail: Option<String>,
    },
    /// A 2xx answer that is not what the protocol says.
    #[error("{url} answered something unexpected: {reason}")]
    Malformed {
        /// The URL.
        url: String,
        /// Why.
        reason: String,
    },
}

/// An access token and when it expires.
pub(crate) struct AccessToken {
    /// The token.
    pub(crate) token: SecretString,
    /// Its expiry (from `expires_in`).
    pub(crate) expiry: SystemTime,
}

/// A small HTTPS (and, for local endpoints, HTTP) client for token endpoints.
#[derive(Clone)]
pub(crate) struct TokenClient {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

/// `application/x-www-form-urlencoded` reserves everything but alphanumerics and `*-._`.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'*')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_');

fn form(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, FORM),
                utf8_percent_encode(v, FORM)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl TokenClient {
    /// A client with webpki roots (rustls, ring) whose requests each end within `timeout`.
    pub(crate) fn new(timeout: Duration) -> Result<TokenClient, TokenError> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .map_err(|e| TokenError::Url {
                url: "(TLS setup)".into(),
                reason: e.to_string(),
            })?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(https);
        Ok(TokenClient { client, timeout })
    }

    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Option<String>,
    ) -> Result<serde_json::Value, TokenError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| TokenError::Url {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let mut req = Request::builder()
            .method(method)
            .uri(uri)
            .header(http::header::ACCEPT, "application/json");
        if body.is_some() {
            req = req.header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| TokenError::Url {
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
        let transport = |reason: String| TokenError::Transport {
            url: url.to_owned(),
            reason,
        };
        let exchange = async {
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| transport(error_chain(&e)))?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map_err(|e| transport(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok::<_, TokenError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {:?}", self.timeout)))??;
        let json = serde_json::from_slice::<serde_json::Value>(&bytes);
        if !status.is_success() {
            // RFC 6749 §5.2: `error` and `error_description` say why; they never echo the secret.
            let detail = json.ok().and_then(|v| {
                let e = v.get("error")?.as_str()?.to_owned();
                Some(match v.get("error_description").and_then(|d| d.as_str()) {
                    Some(d) => format!("{e}: {}", d.lines().next().unwrap_or(d)),
                    None => e,
                })
            });
            return Err(TokenError::Status {
                url: url.to_owned(),
                status,
                detail,
            });
        }
        json.map_err(|e| TokenError::Malformed {
            url: url.to_owned(),
            reason: format!("not JSON: {e}"),
        })
    }

    /// RFC 6749 §5.1 token answer → token and expiry.
    async fn token(&self, url: &str, body: String) -> Result<AccessToken, TokenError> {
        let v = self.call(Method::POST, url, Some(body)).await?;
        let malformed = |reason: &str| TokenError::Malformed {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let token = v
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| malformed("no access_token"))?;
        // `expires_in` is seconds (a number, or a string as Entra's v1 endpoint writes it).
        let expires_in = match v.get("expires_in") {
            None | Some(serde_json::Value::Null) => DEFAULT_LIFETIME,
            Some(e) => e
                .as_u64()
                .or_else(|| e.as_str().and_then(|s| s.parse().ok()))
                .map(Duration::from_secs)
                .ok_or_else(|| malformed("expires_in is not a number of seconds"))?,
        };
        Ok(AccessToken {
            token: SecretString::new(token),
            expiry: SystemTime::now() + expires_in,
        })
    }

    /// The token endpoint of `oidc` (given, or from the issuer's discovery document) and the scopes to
    /// request: the configured ones plus, after discovery, the provider's `scopes_supported`, as
    /// upstream's OIDC token provider requests them.
    pub(crate) async fn discover(
        &self,
        oidc: &OidcClient,
    ) -> Result<(String, Vec<String>), TokenError> {
        if let Some(t) = &oidc.token_endpoint {
            return Ok((t.clone(), oidc.scopes.clone()));
        }
        let url = format!("{}/.well-known/openid-configuration", oidc.issuer);
        let v = self.call(Method::GET, &url, None).await?;
        let endpoint = v
            .get("token_endpoint")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| TokenError::Malformed {
                url: url.clone(),
                reason: "the discovery document has no token_endpoint".into(),
            })?;
        let mut scopes = oidc.scopes.clone();
        for s in v
            .get("scopes_supported")
            .and_then(|s| s.as_array())
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str())
        {
            if !scopes.iter().any(|have| have == s) {
                scopes.push(s.to_owned());
            }
        }
        Ok((endpoint.to_owned(), scopes))
    }

    /// The client-credentials grant of `oidc` at `endpoint` with `scopes`.
    pub(crate) async fn client_credentials(
        &self,
        oidc: &OidcClient,
        endpoint: &str,
        scopes: &[String],
    ) -> Result<AccessToken, TokenError> {
        let scope = scopes.join(" ");
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            ("client_id", oidc.client_id.as_str()),
            ("client_secret", oidc.client_secret.expose()),
        ];
        if !scope.is_empty() {
            pairs.push(("scope", &scope));
        }
        self.token(endpoint, form(&pairs)).await
    }

    /// The JWT bearer grant (RFC 7523 §2.1) at `endpoint` with a signed `assertion`: how a Google
    /// service account obtains its access token.
    pub(crate) async fn jwt_bearer(
        &self,
        endpoint: &str,
        assertion: &SecretString,
    ) -> Result<AccessToken, TokenError> {
        let pairs = [
            ("grant_type", super::google::JWT_BEARER_GRANT),
            ("assertion", assertion.expose()),
        ];
        self.token(endpoint, form(&pairs)).await
    }

    /// An Entra ID token for Azure OpenAI: client credentials with a secret, or with a federated
    /// `client_assertion` (the OIDC token).
    pub(crate) async fn entra(
        &self,
        authority: &str,
        tenant_id: &str,
        client_id: &str,
        proof: EntraProof<'_>,
    ) -> Result<AccessToken, TokenError> {
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            authority.trim_end_matches('/'),
            utf8_percent_encode(tenant_id, FORM)
        );
        let mut pairs = vec![
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("scope", AZURE_OPENAI_SCOPE),
        ];
        match proof {
            EntraProof::Secret(s) => pairs.push(("client_secret", s.expose())),
            EntraProof::Assertion(a) => {
                pairs.push(("client_assertion_type", JWT_BEARER));
                pairs.push(("client_assertion", a.expose()));
            }
        }
        self.token(&url, form(&pairs)).await
    }
}

/// How a client proves itself to Entra ID.
pub(crate) enum EntraProof<'a> {
    /// A client secret.
    Secret(&'a SecretString),
    /// A federated token (client assertion).
    Assertion(&'a SecretString),
}

/// The authority Entra requests go to: `AZURE_AUTHORITY_HOST` (with a scheme, as the Azure SDKs accept
/// it), else the public cloud.
pub(crate) fn authority_from(var: Option<String>) -> String {
    match var.map(|v| v.trim().trim_end_matches('/').to_owned()) {
        Some(v) if v.starts_with("https://") || v.starts_with("http://") => v,
        Some(v) if !v.is_empty() => format!("https://{v}"),
        _ => DEFAULT_AUTHORITY.to_owned(),
    }
}

/// An error and its sources on one line (hyper's own message alone says only "client error").
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_reserves_what_rfc_says() {
        assert_eq!(
            form(&[("scope", "a b/.default"), ("k", "x+y=z&*-._~")]),
            "scope=a%20b%2F.default&k=x%2By%3Dz%26*-._%7E"
        );
    }

    #[test]
    fn authority_host() {
        for (var, want) in [
            (None, DEFAULT_AUTHORITY),
            (Some(""), DEFAULT_AUTHORITY),
            (
                Some("login.microsoftonline.us"),
                "https://login.microsoftonline.us",
            ),
            (Some("http://127.0.0.1:9/"), "http://127.0.0.1:9"),
        ] {
            assert_eq!(authority_from(var.map(str::to_owned)), want);
        }
    }
}
