//! How each kind of dynamic credential is obtained, once: the AWS default chain, the OIDC → STS
//! exchange, and Entra ID tokens. The refresh loop in `super` decides when.
//!
//! AWS comes from the `aws-config` crate (DESIGN §8): its default chain (environment, shared config and
//! credentials files with profiles, web identity / IRSA, EKS pod identity, ECS container credentials,
//! IMDSv2, `credential_process`) and its STS client, which honour the variables AWS documents
//! (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_ENDPOINT_URL_STS`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`, …).
//! Their HTTP client is rustls with ring, like the rest of the node.

use std::time::SystemTime;

use aws_config::Region;
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_types::error::display::DisplayErrorContext;
use http::HeaderValue;

use super::context::{oidc_token, FetchContext, FetchError};
use super::oauth::{authority_from, EntraProof};
use crate::config::model::{AwsKeys, AzureSecret, GcpSource, OidcClient, SecretString};

/// A credential as requests use it.
pub enum Token {
    /// AWS keys (SigV4).
    Aws(AwsKeys),
    /// An `Authorization: Bearer …` value, marked sensitive.
    Bearer(HeaderValue),
}

/// Where a dynamic credential comes from.
pub(crate) enum Fetcher {
    /// The AWS default chain of the node.
    AwsChain,
    /// OIDC client credentials, then STS `AssumeRoleWithWebIdentity`.
    AwsOidc {
        /// The OIDC client.
        oidc: OidcClient,
        /// The role assumed.
        role_arn: String,
        /// The policy's region, for STS when the environment names none.
        region: Option<String>,
        /// A session name naming the policy (CloudTrail shows it).
        session: String,
    },
    /// Entra ID for Azure OpenAI.
    Azure {
        /// `clientID`.
        client_id: String,
        /// `tenantID`.
        tenant_id: String,
        /// Secret or federation.
        secret: AzureSecret,
    },
    /// A Google access token for Vertex AI.
    Gcp {
        /// A service account's key, federation, or the node's Application Default Credentials.
        source: GcpSource,
    },
}

impl Fetcher {
    /// How it obtains its credential, for `/status`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Fetcher::AwsChain => "AWS default credential chain",
            Fetcher::AwsOidc { .. } => "AWS OIDC token exchanged at STS",
            Fetcher::Azure {
                secret: AzureSecret::ClientSecret(_),
                ..
            } => "Entra ID client secret",
            Fetcher::Azure { .. } => "Entra ID federated OIDC token",
            Fetcher::Gcp {
                source: GcpSource::ServiceAccount(_),
            } => "GCP service account key",
            Fetcher::Gcp {
                source: GcpSource::Federation(_),
            } => "GCP workload identity federation",
            Fetcher::Gcp {
                source: GcpSource::ApplicationDefault,
            } => "GCP Application Default Credentials",
        }
    }

    /// Obtains a credential and its expiry (`None`: it does not expire).
    pub(crate) async fn fetch(
        &self,
        cx: &FetchContext,
    ) -> Result<(Token, Option<SystemTime>), FetchError> {
        match self {
            Fetcher::AwsChain => {
                let sdk = cx.aws().await;
                let provider = sdk.credentials_provider().ok_or_else(|| {
                    FetchError::AwsChain("aws-config has no credentials provider".into())
                })?;
                let c = provider
                    .provide_credentials()
                    .await
                    .map_err(|e| FetchError::AwsChain(DisplayErrorContext(&e).to_string()))?;
                let keys = AwsKeys {
                    access_key_id: SecretString::new(c.access_key_id()),
                    secret_access_key: SecretString::new(c.secret_access_key()),
                    session_token: c.session_token().map(SecretString::new),
                };
                Ok((Token::Aws(keys), c.expiry()))
            }
            Fetcher::AwsOidc {
                oidc,
                role_arn,
                region,
                session,
            } => {
                let token = oidc_token(cx, oidc).await?;
                let sdk = cx.aws().await;
                let mut conf = aws_sdk_sts::config::Builder::from(sdk);
                if sdk.region().is_none() {
                    // STS needs a region for its endpoint; the policy's, else the global partition's.
                    let fallback = region.clone().unwrap_or_else(|| "us-east-1".to_owned());
                    conf = conf.region(Region::new(fallback));
                }
                let sts = aws_sdk_sts::Client::from_conf(conf.build());
                let sts_error = |reason: String| FetchError::Sts {
                    role_arn: role_arn.clone(),
                    reason,
                };
                let out = sts
                    .assume_role_with_web_identity()
                    .role_arn(role_arn)
                    .role_session_name(session)
                    .web_identity_token(token.expose())
                    .send()
                    .await
                    .map_err(|e| sts_error(DisplayErrorContext(&e).to_string()))?;
                let c = out
                    .credentials()
                    .ok_or_else(|| sts_error("the answer holds no credentials".into()))?;
                let expiry = SystemTime::try_from(c.expiration().to_owned())
                    .map_err(|_| sts_error("the credentials' Expiration is out of range".into()))?;
                let keys = AwsKeys {
                    access_key_id: SecretString::new(c.access_key_id()),
                    secret_access_key: SecretString::new(c.secret_access_key()),
                    session_token: Some(SecretString::new(c.session_token())),
                };
                Ok((Token::Aws(keys), Some(expiry)))
            }
            Fetcher::Azure {
                client_id,
                tenant_id,
                secret,
            } => {
                let authority = authority_from(std::env::var("AZURE_AUTHORITY_HOST").ok());
                let assertion;
                let proof = match secret {
                    AzureSecret::ClientSecret(s) => EntraProof::Secret(s),
                    AzureSecret::Oidc(oidc) => {
                        assertion = oidc_token(cx, oidc).await?;
                        EntraProof::Assertion(&assertion)
                    }
                };
                let t = cx
                    .tokens
                    .entra(&authority, tenant_id, client_id, proof)
                    .await
                    .map_err(FetchError::Entra)?;
                Ok((bearer(&t.token)?, Some(t.expiry)))
            }
            Fetcher::Gcp {
                source: GcpSource::Federation(f),
            } => {
                let (token, expiry) = super::google_sts::federation(cx, f).await?;
                Ok((bearer(&token)?, Some(expiry)))
            }
            Fetcher::Gcp {
                source: GcpSource::ApplicationDefault,
            } => {
                let (token, expiry) = super::google_adc::fetch(cx).await?;
                Ok((bearer(&token)?, Some(expiry)))
            }
            Fetcher::Gcp {
                source: GcpSource::ServiceAccount(account),
            } => {
                let jwt =
                    super::google::assertion(account, SystemTime::now()).map_err(|source| {
                        FetchError::GoogleKey {
                            account: account.client_email.clone(),
                            source,
                        }
                    })?;
                let t = cx
                    .tokens
                    .jwt_bearer(&account.token_uri, &jwt)
                    .await
                    .map_err(|source| FetchError::Google {
                        account: account.client_email.clone(),
                        source,
                    })?;
                Ok((bearer(&t.token)?, Some(t.expiry)))
            }
        }
    }
}

/// `Authorization: Bearer <token>`, marked sensitive.
fn bearer(token: &SecretString) -> Result<Token, FetchError> {
    let mut v = HeaderValue::try_from(format!("Bearer {}", token.expose()))
        .map_err(|_| FetchError::InvalidToken)?;
    v.set_sensitive(true);
    Ok(Token::Bearer(v))
}
