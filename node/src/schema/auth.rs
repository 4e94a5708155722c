//! Backend credentials on the wire: API-key headers per provider and AWS SigV4 for Bedrock.
//!
//! Rules (DESIGN §3.4, §8): the backend gets its own credential, never the client's; a backend whose
//! credential is missing or unusable gets nothing at all — the gateway answers 401 itself — so a request is
//! never sent unsigned to a provider that needs a signature. Secrets are only read here, where they are put
//! on the wire, and marked sensitive; errors name the backend and policy, never a value.
//!
//! SigV4 (AWS docs "Signature Version 4 signing process", "Amazon Bedrock endpoints"): service `bedrock`,
//! region from the policy's `awsCredentials.region`, else from the host `bedrock-runtime.<region>.amazonaws.com`
//! (or `bedrock-runtime-fips.<region>…`). Signed with the `aws-sigv4` crate over the final method, URI,
//! headers and body; the `host` it signs is the URI authority without a default port, which is what the
//! HTTP client sends (`Host` on HTTP/1.1, `:authority` on HTTP/2).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request};
use http_body_util::Full;

use crate::config::model::{AwsKeys, BackendAuth, SchemaName};
use crate::credentials::{CredState, Token};

/// SigV4 service name of the Bedrock runtime.
pub const BEDROCK_SERVICE: &str = "bedrock";

/// Why credentials could not be put on a request. Every variant answers 401 except `Signing` (500).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential at all, or one the policy could not resolve.
    #[error("no usable credential for backend {backend}{}: {reason}", policy.as_ref().map(|p| format!(" (BackendSecurityPolicy {p})")).unwrap_or_default())]
    Missing {
        /// Backend key.
        backend: String,
        /// Policy, when one applies.
        policy: Option<String>,
        /// Why (never a secret).
        reason: String,
    },
    /// The credential is not a valid header value.
    #[error("the credential for backend {backend} is not a valid header value")]
    InvalidHeader {
        /// Backend key.
        backend: String,
    },
    /// Signing failed (bad region or URI): a configuration problem.
    #[error("cannot sign the request for backend {backend}: {reason}")]
    Signing {
        /// Backend key.
        backend: String,
        /// Why.
        reason: String,
    },
}

/// The region in a Bedrock runtime host name, if it is one.
pub fn region_from_host(host: &str) -> Option<&str> {
    let rest = host
        .strip_prefix("bedrock-runtime.")
        .or_else(|| host.strip_prefix("bedrock-runtime-fips."))?;
    let (region, suffix) = rest.split_once('.')?;
    (matches!(suffix, "amazonaws.com" | "amazonaws.com.cn") && !region.is_empty()).then_some(region)
}

fn sensitive(backend: &str, value: &str) -> Result<HeaderValue, AuthError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| AuthError::InvalidHeader {
        backend: backend.to_owned(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// The backend a request goes to, as credentials see it.
#[derive(Debug, Clone, Copy)]
pub struct AuthTarget<'a> {
    /// The schema the backend expects.
    pub schema: SchemaName,
    /// Backend key, for messages.
    pub backend: &'a str,
    /// Endpoint host (its name gives the Bedrock region).
    pub host: &'a str,
    /// The region when neither the policy nor the host names one: the node's (`AWS_REGION`), for a
    /// Bedrock backend signed by the node's own chain.
    pub node_region: Option<&'a str>,
}

/// Adds the credentials of `auth` to `req` (whose body is `body`) for `target`. `live` is the state of the
/// backend's dynamic credential (`crate::credentials`): AWS keys to sign with (a credentials file, an OIDC
/// exchange, the default chain — also the node's chain for a Bedrock backend without a policy) or an
/// Entra ID bearer token. `now` is read only to sign (the clock is not free on the request path).
pub fn apply(
    req: &mut Request<Full<Bytes>>,
    body: &Bytes,
    target: AuthTarget<'_>,
    auth: Option<&BackendAuth>,
    live: Option<&CredState>,
    now: impl FnOnce() -> SystemTime,
) -> Result<(), AuthError> {
    let AuthTarget {
        schema,
        backend,
        host,
        node_region,
    } = target;
    let missing = |policy: Option<&str>, reason: String| AuthError::Missing {
        backend: backend.to_owned(),
        policy: policy.map(str::to_owned),
        reason,
    };
    if let Some(BackendAuth::Unavailable { reason, policy }) = auth {
        return Err(missing(Some(policy), reason.clone()));
    }
    // The dynamic credential, or why there is none (refresh failures name their cause).
    let token = |policy: Option<&str>| match live {
        Some(CredState::Ready(t)) => Ok(t),
        Some(CredState::Pending) => Err(missing(
            policy,
            "the credential has not been obtained yet (first fetch in progress)".into(),
        )),
        Some(CredState::Failed(why)) => Err(missing(
            policy,
            match policy {
                Some(_) => format!("credential refresh failed: {why}"),
                None => format!("the node's default AWS credential chain failed: {why}"),
            },
        )),
        None => Err(missing(policy, "no credential is set up for it".into())),
    };
    if schema.is_aws() {
        let (region, policy) = match auth {
            Some(BackendAuth::AwsCredentials { region, policy, .. }) => {
                (region.as_deref(), Some(policy.as_str()))
            }
            None if live.is_none() => {
                return Err(missing(None, "AWS Bedrock requests must be signed: attach an AWSCredentials BackendSecurityPolicy or give the node AWS credentials".into()))
            }
            None => (None, None),
            Some(other) => {
                return Err(missing(
                    Some(other.policy()),
                    "AWS Bedrock requests must be signed: the policy is not of type AWSCredentials"
                        .into(),
                ))
            }
        };
        let Token::Aws(keys) = token(policy)? else {
            return Err(missing(policy, "the credential is not AWS keys".into()));
        };
        let region = region
            .or_else(|| region_from_host(host))
            .or(if policy.is_none() { node_region } else { None })
            .ok_or_else(|| {
                missing(
                    policy,
                    format!(
                        "no AWS region: set awsCredentials.region (the host {host} names none)"
                    ),
                )
            })?;
        return sign_sigv4(req, body, keys, region, now()).map_err(|reason| AuthError::Signing {
            backend: backend.to_owned(),
            reason,
        });
    }
    let (name, value) = match auth {
        None | Some(BackendAuth::Unavailable { .. }) => return Ok(()),
        Some(BackendAuth::AwsCredentials { policy, .. }) => {
            return Err(missing(
                Some(policy),
                format!("AWSCredentials sign AWS Bedrock requests only, but the backend expects the {schema} schema"),
            ))
        }
        Some(
            BackendAuth::AzureCredentials { policy, .. } | BackendAuth::GcpCredentials { policy, .. },
        ) => {
            let Token::Bearer(v) = token(Some(policy))? else {
                return Err(missing(Some(policy), "the credential is not a bearer token".into()));
            };
            // Built (sensitive) once per refresh; a clone shares its bytes.
            req.headers_mut().insert(http::header::AUTHORIZATION, v.clone());
            return Ok(());
        }
        Some(key) => match key_header_text(key) {
            Some(header) => header,
            None => return Ok(()),
        },
    };
    let value = sensitive(backend, &value)?;
    req.headers_mut().insert(name, value);
    Ok(())
}

/// The header an API key is sent in, and its value; `None` for credentials that are not a key.
fn key_header_text(auth: &BackendAuth) -> Option<(HeaderName, String)> {
    Some(match auth {
        BackendAuth::ApiKey { key, .. } => (
            http::header::AUTHORIZATION,
            format!("Bearer {}", key.expose()),
        ),
        BackendAuth::AzureApiKey { key, .. } => {
            (HeaderName::from_static("api-key"), key.expose().to_owned())
        }
        BackendAuth::AnthropicApiKey { key, .. } => (
            HeaderName::from_static("x-api-key"),
            key.expose().to_owned(),
        ),
        BackendAuth::AwsCredentials { .. }
        | BackendAuth::AzureCredentials { .. }
        | BackendAuth::GcpCredentials { .. }
        | BackendAuth::Unavailable { .. } => return None,
    })
}

/// The header [`apply`] would add to every request of a backend of `schema` with `auth`, built once
/// (marked sensitive) when it is the same for every request: an API key for a schema that takes one.
/// `None` when the credentials must go through [`apply`] per request: none at all, SigV4 (which signs
/// each request), or credentials [`apply`] refuses (it answers with the error).
pub fn static_header(
    schema: SchemaName,
    auth: Option<&BackendAuth>,
) -> Option<(HeaderName, HeaderValue)> {
    if schema.is_aws() {
        return None;
    }
    let (name, value) = key_header_text(auth?)?;
    let mut value = HeaderValue::from_str(&value).ok()?;
    value.set_sensitive(true);
    Some((name, value))
}

/// Signs `req` in place with SigV4 (headers `authorization`, `x-amz-date`, `x-amz-security-token`).
pub fn sign_sigv4(
    req: &mut Request<Full<Bytes>>,
    body: &Bytes,
    keys: &AwsKeys,
    region: &str,
    now: SystemTime,
) -> Result<(), String> {
    let identity: Identity = Credentials::new(
        keys.access_key_id.expose(),
        keys.secret_access_key.expose(),
        keys.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "switchyard",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(BEDROCK_SERVICE)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let uri = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    instructions.apply_to_request_http1x(req);
    for name in [http::header::AUTHORIZATION.as_str(), "x-amz-security-token"] {
        if let Some(v) = req.headers_mut().get_mut(name) {
            v.set_sensitive(true);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::{AwsSource, SecretString};

    fn keys(token: bool) -> AwsKeys {
        AwsKeys {
            access_key_id: SecretString::new("AKIDEXAMPLE"),
            secret_access_key: SecretString::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.then(|| SecretString::new("session")),
        }
    }

    fn request(uri: &str) -> Request<Full<Bytes>> {
        Request::post(uri)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("request")
    }

    #[test]
    fn regions_come_from_bedrock_hosts_only() {
        for (host, want) in [
            ("bedrock-runtime.us-east-1.amazonaws.com", Some("us-east-1")),
            (
                "bedrock-runtime-fips.us-west-2.amazonaws.com",
                Some("us-west-2"),
            ),
            (
                "bedrock-runtime.cn-north-1.amazonaws.com.cn",
                Some("cn-north-1"),
            ),
            ("bedrock.us-east-1.amazonaws.com", None),
            ("127.0.0.1", None),
            ("bedrock-runtime.us-east-1.example.com", None),
        ] {
            assert_eq!(region_from_host(host), want, "{host}");
        }
    }

    #[test]
    fn sigv4_matches_the_aws_shape() {
        let mut req =
            request("https://bedrock-runtime.us-east-1.amazonaws.com/model/m%3A0/converse");
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        sign_sigv4(
            &mut req,
            &Bytes::from_static(b"{}"),
            &keys(true),
            "us-east-1",
            t,
        )
        .expect("sign");
        let auth = req.headers()["authorization"].to_str().expect("ascii");
        assert!(auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature="), "{auth}");
        assert_eq!(req.headers()["x-amz-date"], "20150830T123600Z");
        assert!(req.headers()["authorization"].is_sensitive());
        assert_eq!(req.headers()["x-amz-security-token"], "session");
    }

    fn at(schema: SchemaName, host: &str) -> AuthTarget<'_> {
        AuthTarget {
            schema,
            backend: "b",
            host,
            node_region: None,
        }
    }

    #[test]
    fn only_keys_a_schema_takes_are_built_once_the_rest_is_left_to_apply() {
        let p = || "p".to_owned();
        let key = BackendAuth::ApiKey {
            key: SecretString::new("k"),
            policy: p(),
        };
        // Bedrock signs each request (and refuses a key: `apply` answers that).
        assert!(static_header(SchemaName::AwsBedrock, Some(&key)).is_none());
        assert!(static_header(SchemaName::OpenAI, None).is_none());
        let aws = BackendAuth::AwsCredentials {
            source: AwsSource::Keys(keys(false)),
            region: None,
            policy: p(),
        };
        assert!(static_header(SchemaName::OpenAI, Some(&aws)).is_none());
        let unavailable = BackendAuth::Unavailable {
            reason: "r".into(),
            policy: p(),
        };
        assert!(static_header(SchemaName::OpenAI, Some(&unavailable)).is_none());
        // A key that cannot be a header value: `apply` answers with the error, per request.
        let broken = BackendAuth::ApiKey {
            key: SecretString::new("a\nb"),
            policy: p(),
        };
        assert!(static_header(SchemaName::OpenAI, Some(&broken)).is_none());
        let mut req = request("http://127.0.0.1:1/x");
        let err = apply(
            &mut req,
            &Bytes::from_static(b"{}"),
            at(SchemaName::OpenAI, "h"),
            Some(&broken),
            None,
            SystemTime::now,
        )
        .expect_err("not a header value");
        assert!(matches!(err, AuthError::InvalidHeader { .. }), "{err}");
    }

    #[test]
    fn credentials_per_schema_and_401_when_missing() {
        let now = SystemTime::now();
        let body = Bytes::from_static(b"{}");
        let key = SecretString::new("k");
        let p = || "p".to_owned();
        for (schema, auth, header, value) in [
            (
                SchemaName::OpenAI,
                BackendAuth::ApiKey {
                    key: key.clone(),
                    policy: p(),
                },
                "authorization",
                "Bearer k",
            ),
            (
                SchemaName::AzureOpenAI,
                BackendAuth::AzureApiKey {
                    key: key.clone(),
                    policy: p(),
                },
                "api-key",
                "k",
            ),
            (
                SchemaName::Anthropic,
                BackendAuth::AnthropicApiKey {
                    key: key.clone(),
                    policy: p(),
                },
                "x-api-key",
                "k",
            ),
        ] {
            let mut req = request("http://h/x");
            apply(&mut req, &body, at(schema, "h"), Some(&auth), None, || now).expect("apply");
            assert_eq!(req.headers()[header], value);
            assert!(req.headers()[header].is_sensitive());
            // Built once with the snapshot, the same header.
            let (name, built) = static_header(schema, Some(&auth)).expect("a static header");
            assert_eq!((name.as_str(), &built), (header, &req.headers()[header]));
            assert!(built.is_sensitive());
        }
        // Bedrock: never unsigned.
        let mut req = request("http://127.0.0.1:1/x");
        let bedrock = at(SchemaName::AwsBedrock, "127.0.0.1");
        let err = apply(&mut req, &body, bedrock, None, None, || now).expect_err("401");
        assert!(matches!(err, AuthError::Missing { .. }), "{err}");
        let api = BackendAuth::ApiKey { key, policy: p() };
        assert!(apply(&mut req, &body, bedrock, Some(&api), None, || now).is_err());
        let unavailable = BackendAuth::Unavailable {
            reason: "r".into(),
            policy: p(),
        };
        let openai = at(SchemaName::OpenAI, "h");
        assert!(apply(&mut req, &body, openai, Some(&unavailable), None, || now).is_err());
        // No region anywhere.
        let aws = BackendAuth::AwsCredentials {
            source: AwsSource::Keys(keys(false)),
            region: None,
            policy: p(),
        };
        let ready = CredState::Ready(Token::Aws(keys(false)));
        assert!(apply(&mut req, &body, bedrock, Some(&aws), Some(&ready), || now).is_err());
        assert!(req.headers().get("authorization").is_none());
        // The node's chain and the host's region.
        let host = "bedrock-runtime.eu-west-1.amazonaws.com";
        let mut req = request(&format!("https://{host}/x"));
        let target = at(SchemaName::AwsBedrock, host);
        apply(&mut req, &body, target, None, Some(&ready), || now).expect("signed");
        let auth = req.headers()["authorization"].to_str().expect("ascii");
        assert!(auth.contains("/eu-west-1/bedrock/aws4_request"), "{auth}");
    }

    #[test]
    fn dynamic_credentials_sign_or_answer_401_with_the_cause() {
        let now = SystemTime::now();
        let body = Bytes::from_static(b"{}");
        let host = "bedrock-runtime.us-east-1.amazonaws.com";
        let bedrock = at(SchemaName::AwsBedrock, host);
        let chain = BackendAuth::AwsCredentials {
            source: AwsSource::DefaultChain,
            region: None,
            policy: "ns/aws".into(),
        };
        let failed = CredState::Failed("the ECS endpoint answered 500".into());
        for (name, auth, live, want) in [
            (
                "pending",
                Some(&chain),
                CredState::Pending,
                "first fetch in progress",
            ),
            (
                "failed, policy",
                Some(&chain),
                failed,
                "credential refresh failed: the ECS endpoint answered 500",
            ),
            (
                "failed, node chain",
                None,
                CredState::Failed("no providers".into()),
                "the node's default AWS credential chain failed: no providers",
            ),
        ] {
            let mut req = request(&format!("https://{host}/x"));
            let err = apply(&mut req, &body, bedrock, auth, Some(&live), || now).expect_err(name);
            let shown = err.to_string();
            assert!(
                shown.contains(want) && shown.contains("backend b"),
                "{name}: {shown}"
            );
            assert!(req.headers().get("authorization").is_none(), "{name}");
        }
        // Azure: the bearer token as it was built, sensitive.
        let azure = BackendAuth::AzureCredentials {
            client_id: "c".into(),
            tenant_id: "t".into(),
            secret: crate::config::model::AzureSecret::ClientSecret(SecretString::new("s")),
            policy: "ns/az".into(),
        };
        let mut bearer = HeaderValue::from_static("Bearer tok");
        bearer.set_sensitive(true);
        let mut req = request("http://h/x");
        let target = at(SchemaName::AzureOpenAI, "h");
        apply(
            &mut req,
            &body,
            target,
            Some(&azure),
            Some(&CredState::Ready(Token::Bearer(bearer))),
            || now,
        )
        .expect("bearer");
        assert_eq!(req.headers()["authorization"], "Bearer tok");
        assert!(req.headers()["authorization"].is_sensitive());
        let err = apply(
            &mut request("http://h/x"),
            &body,
            target,
            Some(&azure),
            Some(&CredState::Pending),
            || now,
        )
        .expect_err("pending");
        assert!(
            err.to_string().contains("BackendSecurityPolicy ns/az"),
            "{err}"
        );
    }
}
