//! The credential services of the mock provider: the ECS container-credentials endpoint, STS
//! `AssumeRoleWithWebIdentity`, an OIDC provider (discovery and client-credentials token endpoint) and
//! Microsoft Entra ID's v2.0 token endpoint, all issuing short-lived credentials that the provider formats
//! then check.
//!
//! A credential minted here carries its own expiry, so the SigV4 check of [`super::bedrock`] and the
//! bearer check of [`super::azure`] refuse it once it has expired, with no shared state between processes:
//! an access key id is `ASIASWY<expiry ms>N<serial>` (secret and session token derived from it), a bearer
//! token `swy.<kind>.<expiry ms>.<serial>`. A test that sees no failed request across several expiries
//! therefore shows that the node refreshed before each one.
//!
//! Paths on the data port (the variables the AWS and Azure SDKs honour point at them):
//! `GET /creds/ecs` (`AWS_CONTAINER_CREDENTIALS_FULL_URI`), any `POST` whose form says
//! `Action=AssumeRoleWithWebIdentity` (`AWS_ENDPOINT_URL_STS`), `GET /creds/oidc/.well-known/openid-configuration`
//! and `POST /creds/oidc/token` (issuer `http://HOST/creds/oidc`), `POST /creds/entra/{tenant}/oauth2/v2.0/token`
//! (`AZURE_AUTHORITY_HOST=http://HOST/creds/entra`), `POST /creds/google/token` (Google's OAuth2 token
//! endpoint for a service account's JWT bearer grant: the `token_uri` of [`gcp_key_file`]). Control: `PUT /credentials {"lifetime_secs":N,"fail":bool}`
//! and `GET /credentials` (settings and counts issued per kind).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use hyper::{HeaderMap, Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::bedrock::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};
use super::openai::Reply;

/// The OIDC client the mock token endpoint accepts.
pub const OIDC_CLIENT_ID: &str = "switchyard-client";
/// Its secret.
pub const OIDC_CLIENT_SECRET: &str = "oidc-test-secret-7";
/// The Entra client secret the mock accepts.
pub const ENTRA_CLIENT_SECRET: &str = "entra-test-secret-9";
/// The scope Entra tokens for Azure OpenAI are requested for.
pub const ENTRA_SCOPE: &str = "https://cognitiveservices.azure.com/.default";

/// The service account the mock Google token endpoint knows: its key file names this email, and its
/// JWTs must verify with the public half of [`GCP_TEST_KEY_PEM`].
pub const GCP_CLIENT_EMAIL: &str = "gateway@test-project.iam.gserviceaccount.com";
/// The service account's private key: a 2048-bit RSA key made for the tests only (it opens nothing).
pub const GCP_TEST_KEY_PEM: &str =
    include_str!("../../../node/tests/fixtures/gcp/test-service-account-key.pem");
/// The scope Vertex AI tokens are requested for.
pub const GCP_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// A service account key file (`service_account.json`) whose `token_uri` is the mock's Google token
/// endpoint at `data_addr`.
pub fn gcp_key_file(data_addr: &str) -> String {
    json!({
        "type": "service_account",
        "project_id": "test-project",
        "private_key_id": "mock-kid",
        "private_key": GCP_TEST_KEY_PEM,
        "client_email": GCP_CLIENT_EMAIL,
        "client_id": "1",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": format!("http://{data_addr}/creds/google/token"),
    })
    .to_string()
}

/// What the credential services do now (`PUT /credentials`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredSettings {
    /// Lifetime of every credential issued, in seconds.
    #[serde(default = "default_lifetime")]
    pub lifetime_secs: u64,
    /// Answer every credential request with 500.
    #[serde(default)]
    pub fail: bool,
}

fn default_lifetime() -> u64 {
    3600
}

static SETTINGS: Mutex<CredSettings> = Mutex::new(CredSettings {
    lifetime_secs: 3600,
    fail: false,
});
static SERIAL: AtomicU64 = AtomicU64::new(0);
static ISSUED: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());

fn settings() -> CredSettings {
    *SETTINGS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Replaces the settings.
pub fn set_settings(s: CredSettings) {
    *SETTINGS.lock().unwrap_or_else(|e| e.into_inner()) = s;
}

/// Settings and counts issued, for `GET /credentials`.
pub fn status() -> serde_json::Value {
    let issued = ISSUED.lock().unwrap_or_else(|e| e.into_inner()).clone();
    json!({"settings": settings(), "issued": issued})
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn mint(kind: &'static str) -> (u64, u64) {
    *ISSUED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(kind)
        .or_default() += 1;
    let expiry = now_ms() + settings().lifetime_secs * 1000;
    (expiry, SERIAL.fetch_add(1, Ordering::Relaxed) + 1)
}

/// Temporary AWS keys: id, secret, session token, expiry (ms).
fn mint_aws(kind: &'static str) -> (String, String, String, u64) {
    let (expiry, serial) = mint(kind);
    let id = format!("ASIASWY{expiry}N{serial}");
    (id.clone(), aws_secret(&id), aws_token(&id), expiry)
}

fn aws_secret(id: &str) -> String {
    format!("swysecret/{id}")
}

fn aws_token(id: &str) -> String {
    format!("swytoken-{id}")
}

/// The secret and session token that `key_id` must be signed with, or why it is refused (unknown, or
/// expired: then the request fails as AWS fails an expired token).
pub fn aws_key(key_id: &str) -> Result<(String, Option<String>), String> {
    if key_id == TEST_ACCESS_KEY_ID {
        return Ok((TEST_SECRET_ACCESS_KEY.to_owned(), None));
    }
    let expiry = key_id
        .strip_prefix("ASIASWY")
        .and_then(|r| r.split_once('N'))
        .and_then(|(e, _)| e.parse::<u64>().ok())
        .ok_or_else(|| format!("unknown access key id {key_id:?}"))?;
    let now = now_ms();
    if now >= expiry {
        return Err(format!(
            "the security token included in the request is expired ({} ms ago)",
            now - expiry
        ));
    }
    Ok((aws_secret(key_id), Some(aws_token(key_id))))
}

fn mint_bearer(kind: &'static str) -> String {
    let (expiry, serial) = mint(kind);
    format!("swy.{kind}.{expiry}.{serial}")
}

/// A live bearer token of `kind`, for tests that call a provider handler directly.
#[cfg(test)]
pub(crate) fn test_bearer(kind: &'static str) -> String {
    mint_bearer(kind)
}

/// Checks a bearer token minted as `kind`: Ok, or why not (unknown or expired).
pub fn check_bearer(token: &str, kind: &str) -> Result<(), String> {
    let mut parts = token.split('.');
    let (Some("swy"), Some(k), Some(expiry)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("not a token this mock issued".into());
    };
    if k != kind {
        return Err(format!("a {k} token, not a {kind} token"));
    }
    let expiry: u64 = expiry.parse().map_err(|_| "malformed token".to_owned())?;
    let now = now_ms();
    if now >= expiry {
        return Err(format!("the token expired {} ms ago", now - expiry));
    }
    Ok(())
}

/// RFC 3339 UTC (seconds) of a Unix time in ms, as AWS writes `Expiration`.
fn rfc3339(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil from days (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn form(body: &[u8]) -> BTreeMap<String, String> {
    url_decode_pairs(&String::from_utf8_lossy(body))
}

fn url_decode_pairs(s: &str) -> BTreeMap<String, String> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |x: &str| {
                percent_encoding::percent_decode_str(&x.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": error, "error_description": description}),
    )
}

fn token_reply(token: String) -> Reply {
    Reply::json(
        StatusCode::OK,
        &json!({"access_token": token, "token_type": "Bearer", "expires_in": settings().lifetime_secs}),
    )
}

/// Answers a credential-service request, or `None` when `path` is not one.
pub fn handle(method: &Method, path: &str, headers: &HeaderMap, body: &[u8]) -> Option<Reply> {
    let path = path.split('?').next().unwrap_or(path);
    let f = form(body);
    let sts = *method == Method::POST
        && f.get("Action").map(String::as_str) == Some("AssumeRoleWithWebIdentity");
    let entra = path.starts_with("/creds/entra/") && path.ends_with("/oauth2/v2.0/token");
    if !sts && !entra && !path.starts_with("/creds/") {
        return None;
    }
    if settings().fail {
        return Some(oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "temporarily_unavailable",
            "the mock credential service is failing on purpose",
        ));
    }
    if sts {
        return Some(assume_role_with_web_identity(&f));
    }
    if entra {
        return Some(entra_token(&f));
    }
    if (method, path) == (&Method::POST, "/creds/google/token") {
        let host = headers
            .get(hyper::header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("127.0.0.1");
        return Some(google_token(&f, &format!("http://{host}{path}")));
    }
    Some(match (method, path) {
        (&Method::GET, "/creds/ecs") => {
            let (id, secret, token, expiry) = mint_aws("ecs");
            Reply::json(
                StatusCode::OK,
                &json!({"AccessKeyId": id, "SecretAccessKey": secret, "Token": token, "Expiration": rfc3339(expiry), "RoleArn": "arn:aws:iam::123456789012:role/mock"}),
            )
        }
        (&Method::GET, "/creds/oidc/.well-known/openid-configuration") => {
            let host = headers
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            let issuer = format!("http://{host}/creds/oidc");
            Reply::json(
                StatusCode::OK,
                &json!({"issuer": issuer, "token_endpoint": format!("{issuer}/token"), "scopes_supported": ["openid"]}),
            )
        }
        (&Method::POST, "/creds/oidc/token") => {
            if f.get("grant_type").map(String::as_str) != Some("client_credentials") {
                oauth_error(
                    StatusCode::BAD_REQUEST,
                    "unsupported_grant_type",
                    "client_credentials only",
                )
            } else if f.get("client_id").map(String::as_str) != Some(OIDC_CLIENT_ID)
                || f.get("client_secret").map(String::as_str) != Some(OIDC_CLIENT_SECRET)
            {
                oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "unknown client or wrong secret",
                )
            } else {
                token_reply(mint_bearer("oidc"))
            }
        }
        _ => oauth_error(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such credential endpoint",
        ),
    })
}

fn assume_role_with_web_identity(f: &BTreeMap<String, String>) -> Reply {
    let error = |code: &str, message: &str| {
        Reply::Full {
        status: StatusCode::BAD_REQUEST,
        content_type: "text/xml",
        body: bytes::Bytes::from(format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>mock</RequestId></ErrorResponse>"
        )),
        headers: vec![],
    }
    };
    let token = f.get("WebIdentityToken").map(String::as_str).unwrap_or("");
    if let Err(why) = check_bearer(token, "oidc") {
        return error("InvalidIdentityToken", &why);
    }
    let Some(role) = f.get("RoleArn").filter(|r| r.starts_with("arn:aws:iam::")) else {
        return error("ValidationError", "RoleArn is required");
    };
    let session = f.get("RoleSessionName").cloned().unwrap_or_default();
    let (id, secret, token, expiry) = mint_aws("sts");
    Reply::Full {
        status: StatusCode::OK,
        content_type: "text/xml",
        body: bytes::Bytes::from(format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{id}</AccessKeyId><SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{token}</SessionToken><Expiration>{}</Expiration></Credentials><SubjectFromWebIdentityToken>{OIDC_CLIENT_ID}</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>{role}/{session}</Arn><AssumedRoleId>AROAMOCK:{session}</AssumedRoleId></AssumedRoleUser><Audience>{OIDC_CLIENT_ID}</Audience><Provider>mock</Provider></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>mock</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>",
            rfc3339(expiry)
        )),
        headers: vec![],
    }
}

fn entra_token(f: &BTreeMap<String, String>) -> Reply {
    let get = |k: &str| f.get(k).map(String::as_str);
    if get("grant_type") != Some("client_credentials") || get("scope") != Some(ENTRA_SCOPE) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "AADSTS900144: client_credentials with the Cognitive Services scope expected",
        );
    }
    let proof = match (
        get("client_secret"),
        get("client_assertion_type"),
        get("client_assertion"),
    ) {
        (Some(s), None, None) if s == ENTRA_CLIENT_SECRET => Ok(()),
        (Some(_), None, None) => Err("AADSTS7000215: Invalid client secret provided.".to_owned()),
        (None, Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"), Some(a)) => {
            check_bearer(a, "oidc").map_err(|why| format!("AADSTS700024: client assertion: {why}"))
        }
        _ => Err("AADSTS7000218: a client_secret or client_assertion is required".to_owned()),
    };
    match proof {
        Ok(()) => token_reply(mint_bearer("entra")),
        Err(why) => oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &why),
    }
}

/// Google's token endpoint for a service account: the JWT bearer grant (RFC 7523) whose assertion must
/// be RS256-signed by the test key and claim the account, the cloud-platform scope and this endpoint as
/// audience, for at most an hour. Refusals are Google's (`invalid_grant` with its description).
fn google_token(f: &BTreeMap<String, String>, endpoint: &str) -> Reply {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine as _;
    use ring::signature::{
        KeyPair as _, RsaKeyPair, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256,
    };
    let refuse = |why: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why);
    if f.get("grant_type").map(String::as_str)
        != Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
    {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "Invalid grant_type",
        );
    }
    let jwt = f.get("assertion").map(String::as_str).unwrap_or("");
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header, claims, sig] = parts[..] else {
        return refuse(
            "Invalid JWT: Token must be a short-lived token and in a reasonable timeframe",
        );
    };
    let b64: String = GCP_TEST_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = STANDARD.decode(b64).unwrap_or_default();
    let Ok(key) = RsaKeyPair::from_pkcs8(&der) else {
        return oauth_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_failure",
            "the test key",
        );
    };
    let verified = URL_SAFE_NO_PAD.decode(sig).ok().is_some_and(|sig| {
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key.public_key().as_ref())
            .verify(format!("{header}.{claims}").as_bytes(), &sig)
            .is_ok()
    });
    if !verified {
        return refuse("Invalid JWT Signature.");
    }
    let decode = |p: &str| -> Value {
        URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    };
    if decode(header)["alg"] != "RS256" {
        return refuse("Invalid JWT: alg must be RS256");
    }
    let c = decode(claims);
    let now = now_ms() / 1000;
    let (iat, exp) = (
        c["iat"].as_u64().unwrap_or(0),
        c["exp"].as_u64().unwrap_or(0),
    );
    if c["iss"] != GCP_CLIENT_EMAIL {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    }
    if c["aud"] != endpoint {
        return refuse(&format!("Invalid JWT: aud must be {endpoint}"));
    }
    if c["scope"] != GCP_SCOPE {
        return refuse("Invalid JWT: the cloud-platform scope is required");
    }
    if exp <= iat || exp - iat > 3600 || iat > now + 60 || exp < now {
        return refuse("Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.");
    }
    token_reply(mint_bearer("google"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_of_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_440_938_160_000), "2015-08-30T12:36:00Z");
        assert_eq!(rfc3339(1_709_251_199_000), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn minted_credentials_check_until_they_expire() {
        let (id, secret, token, _) = mint_aws("test");
        assert_eq!(aws_key(&id), Ok((secret, Some(token))));
        assert!(aws_key("ASIASWY1N1")
            .expect_err("expired")
            .contains("expired"));
        assert!(aws_key("AKIDOTHER").is_err());
        let b = mint_bearer("entra");
        assert_eq!(check_bearer(&b, "entra"), Ok(()));
        assert!(check_bearer(&b, "oidc").is_err());
        assert!(check_bearer("swy.entra.1.1", "entra")
            .expect_err("expired")
            .contains("expired"));
    }
}
