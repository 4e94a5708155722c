//! What every credential flow stands on: the error a failed fetch reports, the context the flows share
//! (the node's `aws-config` environment and the token client), and the OIDC client-credentials step that
//! both the AWS and the Google federation start from. Kept apart from `fetch.rs`, which dispatches to the
//! flows, so that the Google flows (`google_sts.rs`, `google_adc.rs`) import from below instead of from
//! their dispatcher.

use aws_config::{BehaviorVersion, SdkConfig};
use tokio::sync::OnceCell;

use super::oauth::{TokenClient, TokenError};
use crate::config::model::{OidcClient, SecretString};

/// Why a credential could not be obtained: shown in the 401 of requests once nothing valid is left, and
/// in logs. Never a secret.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The AWS default chain found nothing, or its source failed.
    #[error("the AWS default credential chain failed: {0}")]
    AwsChain(String),
    /// The OIDC token for an exchange could not be obtained.
    #[error("OIDC token: {0}")]
    Oidc(#[source] TokenError),
    /// STS refused or failed the web-identity exchange.
    #[error("STS AssumeRoleWithWebIdentity for {role_arn}: {reason}")]
    Sts {
        /// The role.
        role_arn: String,
        /// Why.
        reason: String,
    },
    /// Entra ID refused or failed.
    #[error("Entra ID token: {0}")]
    Entra(#[source] TokenError),
    /// Google's token endpoint refused or failed the service account's JWT bearer grant.
    #[error("Google OAuth2 token for {account}: {source}")]
    Google {
        /// The service account (`client_email`).
        account: String,
        /// Why.
        #[source]
        source: TokenError,
    },
    /// The service account's key could not sign its assertion.
    #[error("Google service account {account}: {source}")]
    GoogleKey {
        /// The service account (`client_email`).
        account: String,
        /// Why.
        #[source]
        source: super::google::KeyError,
    },
    /// A step of a Google flow (STS exchange, impersonation, refresh-token grant, metadata server)
    /// refused or failed.
    #[error("{step}: {source}")]
    GoogleStep {
        /// The step, and what it was for (audience, account, source).
        step: String,
        /// Why.
        #[source]
        source: TokenError,
    },
    /// Application Default Credentials could not be used (file missing or malformed, subject token
    /// unreadable).
    #[error("{0}")]
    GoogleAdc(String),
    /// The token is not a valid header value.
    #[error("the token obtained is not a valid header value")]
    InvalidToken,
    /// No answer in time.
    #[error("no credential within {0:?}")]
    Timeout(std::time::Duration),
}

/// What every fetcher shares: one `aws-config` environment per node, loaded on first use, and the token
/// client.
pub(crate) struct FetchContext {
    aws: OnceCell<SdkConfig>,
    pub(crate) tokens: TokenClient,
}

impl FetchContext {
    pub(crate) fn new(tokens: TokenClient) -> FetchContext {
        FetchContext {
            aws: OnceCell::new(),
            tokens,
        }
    }

    /// The node's `aws-config` environment, loaded on first use.
    pub(crate) async fn aws(&self) -> &SdkConfig {
        self.aws
            .get_or_init(|| async {
                let http = aws_smithy_http_client::Builder::new()
                    .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                        aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
                    ))
                    .build_https();
                aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http)
                    .load()
                    .await
            })
            .await
    }
}

/// An OIDC provider's token by client credentials (its endpoint discovered from the issuer first).
pub(crate) async fn oidc_token(
    cx: &FetchContext,
    oidc: &OidcClient,
) -> Result<SecretString, FetchError> {
    let (endpoint, scopes) = cx.tokens.discover(oidc).await.map_err(FetchError::Oidc)?;
    let t = cx
        .tokens
        .client_credentials(oidc, &endpoint, &scopes)
        .await
        .map_err(FetchError::Oidc)?;
    Ok(t.token)
}
