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

    /// One request; the status and the body read (at most [`MAX_ANSWER`] bytes), or why there is none.
    async fn raw(
        &self,
        method: Method,
        url: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<(StatusCode, Bytes), TokenError> {
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
        let body = match body {
            Body::None => String::new(),
            Body::Form(f) => {
                req = req.header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                );
                f
            }
            Body::Json(j) => {
                req = req.header(http::header::CONTENT_TYPE, "application/json");
                j
            }
        };
        for (name, value) in headers {
            let mut v = http::HeaderValue::from_str(value).map_err(|_| TokenError::Url {
                url: url.to_owned(),
                reason: format!("header {name} holds a character a header cannot carry"),
            })?;
            // Bearer tokens among them must not reach a debug dump.
            v.set_sensitive(true);
            req = req.header(*name, v);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
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
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| transport(format!("no answer within {:?}", self.timeout)))?
    }

    /// One request whose answer is JSON; a non-2xx answer is an error carrying the provider's reason.
    async fn call(
        &self,
        method: Method,
        url: &str,
        body: Body,
        headers: &[(&str, &str)],
    ) -> Result<serde_json::Value, TokenError> {
        let (status, bytes) = self.raw(method, url, body, headers).await?;
        let json = serde_json::from_slice::<serde_json::Value>(&bytes);
        if !status.is_success() {
            return Err(TokenError::Status {
                url: url.to_owned(),
                status,
                detail: json.ok().as_ref().and_then(error_detail),
            });
        }
        json.map_err(|e| TokenError::Malformed {
            url: url.to_owned(),
            reason: format!("not JSON: {e}"),
        })
    }

    /// The body of a 2xx answer as text (a subject token served by a URL).
    pub(crate) async fn get_text(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<String, TokenError> {
        let (status, bytes) = self.raw(Method::GET, url, Body::None, headers).await?;
        if !status.is_success() {
            let json = serde_json::from_slice::<serde_json::Value>(&bytes).ok();
            return Err(TokenError::Status {
                url: url.to_owned(),
                status,
                detail: json.as_ref().and_then(error_detail),
            });
        }
        String::from_utf8(bytes.to_vec()).map_err(|_| TokenError::Malformed {
            url: url.to_owned(),
            reason: "not UTF-8".into(),
        })
    }

    /// A token answered to a `GET` (Google's metadata server: the RFC 6749 §5.1 shape).
    pub(crate) async fn get_token(
        &self,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<AccessToken, TokenError> {
        let v = self.call(Method::GET, url, Body::None, headers).await?;
        token_answer(url, &v)
    }

    /// A token from a form-encoded `POST` of `pairs` (any RFC 6749 grant, RFC 8693 token exchange).
    pub(crate) async fn form_token(
        &self,
        url: &str,
        pairs: &[(&str, &str)],
    ) -> Result<AccessToken, TokenError> {
        self.token(url, form(pairs)).await
    }

    /// Google IAM Credentials' `generateAccessToken`: a JSON `POST` authorised by `bearer`, answered
    /// `{"accessToken", "expireTime"}` (RFC 3339).
    pub(crate) async fn generate_access_token(
        &self,
        url: &str,
        bearer: &SecretString,
        body: &serde_json::Value,
    ) -> Result<AccessToken, TokenError> {
        let auth = format!("Bearer {}", bearer.expose());
        let v = self
            .call(
                Method::POST,
                url,
                Body::Json(body.to_string()),
                &[("authorization", &auth)],
            )
            .await?;
        let malformed = |reason: &str| TokenError::Malformed {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let token = v
            .get("accessToken")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| malformed("no accessToken"))?;
        let expiry = v
            .get("expireTime")
            .and_then(|t| t.as_str())
            .and_then(rfc3339)
            .ok_or_else(|| malformed("expireTime is not an RFC 3339 time"))?;
        Ok(AccessToken {
            token: SecretString::new(token),
            expiry,
        })
    }

    /// RFC 6749 §5.1 token answer → token and expiry.
    async fn token(&self, url: &str, body: String) -> Result<AccessToken, TokenError> {
        let v = self.call(Method::POST, url, Body::Form(body), &[]).await?;
        token_answer(url, &v)
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
        let v = self.call(Method::GET, &url, Body::None, &[]).await?;
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

/// What a request carries.
enum Body {
    None,
    Form(String),
    Json(String),
}

/// An RFC 6749 §5.1 answer → token and expiry.
fn token_answer(url: &str, v: &serde_json::Value) -> Result<AccessToken, TokenError> {
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

/// Why an endpoint refused, from its error body: RFC 6749 §5.2 (`error`, `error_description`) or
/// Google's API errors (`{"error": {"status", "message"}}`). Neither echoes a secret.
fn error_detail(v: &serde_json::Value) -> Option<String> {
    let first_line = |d: &str| d.lines().next().unwrap_or(d).to_owned();
    match v.get("error")? {
        serde_json::Value::String(e) => {
            Some(match v.get("error_description").and_then(|d| d.as_str()) {
                Some(d) => format!("{e}: {}", first_line(d)),
                None => e.clone(),
            })
        }
        serde_json::Value::Object(o) => {
            let status = o.get("status").and_then(|s| s.as_str());
            let message = o.get("message").and_then(|m| m.as_str()).map(first_line);
            match (status, message) {
                (Some(s), Some(m)) => Some(format!("{s}: {m}")),
                (Some(x), None) => Some(x.to_owned()),
                (None, Some(m)) => Some(m),
                (None, None) => None,
            }
        }
        _ => None,
    }
}

/// An RFC 3339 time as a `SystemTime` (`None` before the epoch or malformed).
fn rfc3339(s: &str) -> Option<SystemTime> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(s, &Rfc3339).ok()?;
    let nanos = u64::try_from(t.unix_timestamp_nanos()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos))
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
    fn refusals_give_the_providers_reason() {
        use serde_json::json;
        for (name, body, want) in [
            (
                "RFC 6749",
                json!({"error": "invalid_grant", "error_description": "Bad\nsecond line"}),
                Some("invalid_grant: Bad"),
            ),
            (
                "RFC 6749, no description",
                json!({"error": "invalid_client"}),
                Some("invalid_client"),
            ),
            (
                "Google API error",
                json!({"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied", "status": "PERMISSION_DENIED"}}),
                Some("PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied"),
            ),
            ("no error field", json!({"message": "x"}), None),
        ] {
            assert_eq!(error_detail(&body).as_deref(), want, "{name}");
        }
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(
            rfc3339("2014-10-02T15:01:23Z"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_412_262_083))
        );
        assert_eq!(
            rfc3339("2014-10-02T15:01:23.5+00:00"),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_412_262_083_500))
        );
        assert_eq!(rfc3339("1969-12-31T23:59:59Z"), None);
        assert_eq!(rfc3339("yesterday"), None);
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
