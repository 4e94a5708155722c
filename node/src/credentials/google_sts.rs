//! Google's token exchange (STS, RFC 8693) and service-account impersonation (IAM Credentials
//! `generateAccessToken`): the two steps that turn a foreign token into a Google access token, shared by
//! a policy's `workloadIdentityFederationConfig` and by an `external_account` Application Default
//! Credentials file.
//!
//! The exchange is a form `POST` to `https://sts.googleapis.com/v1/token` with
//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`, the workload identity provider as
//! `audience`, the subject token and its type, `requested_token_type=…:access_token` and the
//! cloud-platform scope (what Google's libraries request; upstream asks for the IAM scope, which Vertex
//! does not accept when the federated token is used directly). Impersonation is a JSON `POST` to
//! `https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/{email}:generateAccessToken`
//! authorised by the exchanged token, asking for the cloud-platform scope for an hour.
//!
//! A policy has no file naming these endpoints, so two environment variables replace them for tests
//! and for Private Service Connect endpoints: `SWITCHYARD_GCP_STS_ENDPOINT` (the token URL) and
//! `SWITCHYARD_GCP_IAM_CREDENTIALS_ENDPOINT` (the service's base URL). An `external_account` file
//! names its own `token_url` and `service_account_impersonation_url`, as Google's libraries read them.

use std::time::SystemTime;

use super::context::{FetchContext, FetchError};
use super::google::CLOUD_PLATFORM_SCOPE;
use super::oauth::AccessToken;
use crate::config::model::{GcpFederation, SecretString};

/// Google STS's token endpoint.
pub(crate) const STS_URL: &str = "https://sts.googleapis.com/v1/token";
/// IAM Credentials' base URL.
pub(crate) const IAM_CREDENTIALS_URL: &str = "https://iamcredentials.googleapis.com";
/// The variable replacing [`STS_URL`].
pub(crate) const STS_URL_VAR: &str = "SWITCHYARD_GCP_STS_ENDPOINT";
/// The variable replacing [`IAM_CREDENTIALS_URL`].
pub(crate) const IAM_CREDENTIALS_URL_VAR: &str = "SWITCHYARD_GCP_IAM_CREDENTIALS_ENDPOINT";
/// RFC 8693's grant type.
pub(crate) const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693's access token type: what is requested.
pub(crate) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693's JWT type: an OIDC access token from the policy's provider is one.
pub(crate) const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// The lifetime asked of an impersonated token (IAM Credentials' default and maximum without an org
/// policy extending it).
const IMPERSONATED_LIFETIME: &str = "3600s";

/// An endpoint: the variable's value when set and non-empty, else Google's.
fn endpoint(var: Option<String>, default: &str) -> String {
    var.map(|v| v.trim().trim_end_matches('/').to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The STS token URL this node uses for policies.
pub(crate) fn sts_url() -> String {
    endpoint(std::env::var(STS_URL_VAR).ok(), STS_URL)
}

/// The `generateAccessToken` URL of `email` under the IAM Credentials base `base`.
pub(crate) fn impersonation_url(base: &str, email: &str) -> String {
    format!(
        "{}/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
        base.trim_end_matches('/')
    )
}

/// The form of an exchange of `subject` (of `subject_type`) for an access token for `audience`.
pub(crate) fn exchange_form<'a>(
    audience: &'a str,
    subject: &'a str,
    subject_type: &'a str,
) -> [(&'static str, &'a str); 6] {
    [
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("audience", audience),
        ("scope", CLOUD_PLATFORM_SCOPE),
        ("requested_token_type", ACCESS_TOKEN_TYPE),
        ("subject_token", subject),
        ("subject_token_type", subject_type),
    ]
}

/// The body of a `generateAccessToken` request.
pub(crate) fn impersonation_body() -> serde_json::Value {
    serde_json::json!({"scope": [CLOUD_PLATFORM_SCOPE], "lifetime": IMPERSONATED_LIFETIME})
}

/// Exchanges `subject` at `sts_url` for `audience`, then impersonates at `impersonate_url` when given.
/// Errors name the step and the audience or account.
pub(crate) async fn exchange_and_impersonate(
    cx: &FetchContext,
    sts_url: &str,
    audience: &str,
    subject: &SecretString,
    subject_type: &str,
    impersonate_url: Option<&str>,
) -> Result<AccessToken, FetchError> {
    let sts = cx
        .tokens
        .form_token(
            sts_url,
            &exchange_form(audience, subject.expose(), subject_type),
        )
        .await
        .map_err(|source| FetchError::GoogleStep {
            step: format!("Google STS token exchange for {audience}"),
            source,
        })?;
    let Some(url) = impersonate_url else {
        return Ok(sts);
    };
    cx.tokens
        .generate_access_token(url, &sts.token, &impersonation_body())
        .await
        .map_err(|source| FetchError::GoogleStep {
            step: format!(
                "IAM Credentials generateAccessToken for {}",
                account_of(url)
            ),
            source,
        })
}

/// The account an impersonation URL names (for errors), or the URL.
pub(crate) fn account_of(url: &str) -> &str {
    url.rsplit_once("/serviceAccounts/")
        .and_then(|(_, r)| r.split_once(':'))
        .map_or(url, |(a, _)| a)
}

/// A `workloadIdentityFederationConfig`'s token: the OIDC client's token, exchanged, impersonated.
pub(crate) async fn federation(
    cx: &FetchContext,
    f: &GcpFederation,
) -> Result<(SecretString, SystemTime), FetchError> {
    let subject = super::context::oidc_token(cx, &f.oidc).await?;
    let base = endpoint(
        std::env::var(IAM_CREDENTIALS_URL_VAR).ok(),
        IAM_CREDENTIALS_URL,
    );
    let impersonate = f
        .impersonate
        .as_deref()
        .map(|email| impersonation_url(&base, email));
    let t = exchange_and_impersonate(
        cx,
        &sts_url(),
        &f.audience,
        &subject,
        JWT_TOKEN_TYPE,
        impersonate.as_deref(),
    )
    .await?;
    Ok((t.token, t.expiry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_googles_and_variables_replace_them() {
        for (name, var, want) in [
            ("unset", None, STS_URL),
            ("empty", Some(""), STS_URL),
            (
                "set, trailing slash dropped",
                Some("http://127.0.0.1:9/sts/"),
                "http://127.0.0.1:9/sts",
            ),
        ] {
            assert_eq!(endpoint(var.map(str::to_owned), STS_URL), want, "{name}");
        }
        assert_eq!(
            impersonation_url(IAM_CREDENTIALS_URL, "sa@p.iam.gserviceaccount.com"),
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken"
        );
        assert_eq!(account_of(&impersonation_url("http://x/", "a@b")), "a@b");
        assert_eq!(account_of("http://x/other"), "http://x/other");
    }

    #[test]
    fn the_exchange_asks_what_google_sts_expects() {
        let f = exchange_form("//iam.googleapis.com/projects/p/x", "tok", JWT_TOKEN_TYPE);
        let m: std::collections::BTreeMap<_, _> = f.into_iter().collect();
        assert_eq!(
            m["grant_type"],
            "urn:ietf:params:oauth:grant-type:token-exchange"
        );
        assert_eq!(
            m["requested_token_type"],
            "urn:ietf:params:oauth:token-type:access_token"
        );
        assert_eq!(
            m["subject_token_type"],
            "urn:ietf:params:oauth:token-type:jwt"
        );
        assert_eq!(m["scope"], "https://www.googleapis.com/auth/cloud-platform");
        assert_eq!(m["audience"], "//iam.googleapis.com/projects/p/x");
        assert_eq!(
            impersonation_body(),
            serde_json::json!({"scope": ["https://www.googleapis.com/auth/cloud-platform"], "lifetime": "3600s"})
        );
    }
}
