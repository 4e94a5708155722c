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
//! endpoint for a service account's JWT bearer grant, the `token_uri` of [`gcp_key_file`], and for an
//! `authorized_user`'s refresh-token grant), `POST /creds/google/sts` (Google STS's RFC 8693 token exchange:
//! `SWITCHYARD_GCP_STS_ENDPOINT`, or an `external_account` file's `token_url`),
//! `POST /creds/google/iam/v1/projects/-/serviceAccounts/{email}:generateAccessToken` (IAM Credentials:
//! base `SWITCHYARD_GCP_IAM_CREDENTIALS_ENDPOINT=http://HOST/creds/google/iam`), `GET /creds/google/subject`
//! (a URL-sourced subject token, JSON `{"id_token"}`, header [`GCP_SUBJECT_HEADER`] required) and
//! `GET /computeMetadata/v1/instance/service-accounts/default/token` (the GCE metadata server:
//! `GCE_METADATA_HOST=HOST`). Every Google access token is `swy.google.…` (what the Vertex mock accepts);
//! `GET /credentials` counts them per issuer (`google`, `google-refresh`, `google-sts`, `google-iam`,
//! `google-metadata`). Control: `PUT /credentials {"lifetime_secs":N,"fail":bool,"refuse_google_sts":bool,
//! "refuse_google_iam":bool}` and `GET /credentials` (settings and counts issued per kind).

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

/// The workload identity provider the mock STS accepts as `audience` (project `test-project`, pool
/// `test-pool`, provider `test-provider`).
pub const GCP_WIF_AUDIENCE: &str = "//iam.googleapis.com/projects/test-project/locations/global/workloadIdentityPools/test-pool/providers/test-provider";
/// The service account the mock IAM Credentials lets a federated token impersonate.
pub const GCP_IMPERSONATED: &str = "vertex-caller@test-project.iam.gserviceaccount.com";
/// The OAuth client of the mock `authorized_user` credentials.
pub const GCP_USER_CLIENT_ID: &str = "764086051850-test.apps.googleusercontent.com";
/// Its client secret.
pub const GCP_USER_CLIENT_SECRET: &str = "d-FL95Q-test-client-secret";
/// The refresh token the mock accepts.
pub const GCP_REFRESH_TOKEN: &str = "1//0test-refresh-token-never-shown";
/// The header (name, value) `GET /creds/google/subject` requires, as an `external_account` file's
/// `credential_source.headers` sends it.
pub const GCP_SUBJECT_HEADER: (&str, &str) = ("x-subject-key", "subject-test");

/// An `authorized_user` credentials file (what `gcloud auth application-default login` writes) whose
/// `token_uri` is the mock's token endpoint.
pub fn gcp_authorized_user_file(data_addr: &str) -> String {
    json!({
        "type": "authorized_user",
        "client_id": GCP_USER_CLIENT_ID,
        "client_secret": GCP_USER_CLIENT_SECRET,
        "refresh_token": GCP_REFRESH_TOKEN,
        "token_uri": format!("http://{data_addr}/creds/google/token"),
    })
    .to_string()
}

/// An `impersonated_service_account` credentials file (what `gcloud auth application-default login
/// --impersonate-service-account` writes): the [`gcp_authorized_user_file`] user impersonates
/// [`GCP_IMPERSONATED`] through the mock's IAM Credentials.
pub fn gcp_impersonated_file(data_addr: &str) -> String {
    let user: Value =
        serde_json::from_str(&gcp_authorized_user_file(data_addr)).unwrap_or_default();
    json!({
        "type": "impersonated_service_account",
        "service_account_impersonation_url": format!(
            "http://{data_addr}/creds/google/iam/v1/projects/-/serviceAccounts/{GCP_IMPERSONATED}:generateAccessToken"
        ),
        "delegates": [],
        "source_credentials": user,
    })
    .to_string()
}

/// An `external_account` credentials file for [`GCP_WIF_AUDIENCE`] whose subject token is read from
/// `subject_file` (text) or, when `None`, from the mock's URL (JSON `id_token`), and which impersonates
/// [`GCP_IMPERSONATED`] when `impersonate`.
pub fn gcp_external_account_file(
    data_addr: &str,
    subject_file: Option<&str>,
    impersonate: bool,
) -> String {
    let source = match subject_file {
        Some(path) => json!({"file": path}),
        None => json!({
            "url": format!("http://{data_addr}/creds/google/subject"),
            "headers": {GCP_SUBJECT_HEADER.0: GCP_SUBJECT_HEADER.1},
            "format": {"type": "json", "subject_token_field_name": "id_token"},
        }),
    };
    let mut f = json!({
        "type": "external_account",
        "audience": GCP_WIF_AUDIENCE,
        "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
        "token_url": format!("http://{data_addr}/creds/google/sts"),
        "credential_source": source,
    });
    if impersonate {
        f["service_account_impersonation_url"] = json!(format!(
            "http://{data_addr}/creds/google/iam/v1/projects/-/serviceAccounts/{GCP_IMPERSONATED}:generateAccessToken"
        ));
    }
    f.to_string()
}

/// A subject token the mock STS accepts until `valid_ms` from now (what an OIDC provider would have
/// written to a file).
pub fn gcp_subject_token(valid_ms: u64) -> String {
    format!("swy.oidc.{}.0", now_ms() + valid_ms)
}

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
    /// Google STS refuses every exchange (400 `invalid_grant`), the other services answering.
    #[serde(default)]
    pub refuse_google_sts: bool,
    /// IAM Credentials refuses every impersonation (403 `PERMISSION_DENIED`).
    #[serde(default)]
    pub refuse_google_iam: bool,
}

fn default_lifetime() -> u64 {
    3600
}

static SETTINGS: Mutex<CredSettings> = Mutex::new(CredSettings {
    lifetime_secs: 3600,
    fail: false,
    refuse_google_sts: false,
    refuse_google_iam: false,
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
    mint_uncounted()
}

fn mint_uncounted() -> (u64, u64) {
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

/// A Google access token (what Vertex accepts) counted under `issuer`; its expiry in ms too.
fn mint_google(issuer: &'static str) -> (String, u64) {
    *ISSUED
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(issuer)
        .or_default() += 1;
    let (expiry, serial) = mint_uncounted();
    (format!("swy.google.{expiry}.{serial}"), expiry)
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
    let metadata = path == GCE_METADATA_TOKEN_PATH;
    if !sts && !entra && !metadata && !path.starts_with("/creds/") {
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
        if f.get("grant_type").map(String::as_str) == Some("refresh_token") {
            return Some(google_refresh(&f));
        }
        return Some(google_token(&f, &format!("http://{host}{path}")));
    }
    if metadata && method == Method::GET {
        return Some(google_metadata(headers));
    }
    if (method, path) == (&Method::POST, "/creds/google/sts") {
        return Some(google_sts(&f));
    }
    if let Some(rest) = path.strip_prefix("/creds/google/iam/v1/projects/-/serviceAccounts/") {
        if *method == Method::POST {
            return Some(google_generate_access_token(rest, headers, body));
        }
    }
    if (method, path) == (&Method::GET, "/creds/google/subject") {
        let (name, value) = GCP_SUBJECT_HEADER;
        if headers.get(name).and_then(|v| v.to_str().ok()) != Some(value) {
            return Some(oauth_error(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "the subject token URL wants its header",
            ));
        }
        return Some(Reply::json(
            StatusCode::OK,
            &json!({"id_token": mint_bearer("oidc")}),
        ));
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

/// The metadata server's token path.
const GCE_METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// The GCE metadata server: it answers only requests that say `Metadata-Flavor: Google` (so a request
/// forwarded by a proxy cannot read a token), with the RFC 6749 token shape.
fn google_metadata(headers: &HeaderMap) -> Reply {
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return Reply::Full {
            status: StatusCode::FORBIDDEN,
            content_type: "text/html",
            body: bytes::Bytes::from_static(b"Missing required header: Metadata-Flavor"),
            headers: vec![],
        };
    }
    let (token, _) = mint_google("google-metadata");
    token_reply(token)
}

/// Google's token endpoint for an `authorized_user`: the refresh-token grant of the known client.
fn google_refresh(f: &BTreeMap<String, String>) -> Reply {
    let get = |k: &str| f.get(k).map(String::as_str);
    if get("client_id") != Some(GCP_USER_CLIENT_ID)
        || get("client_secret") != Some(GCP_USER_CLIENT_SECRET)
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    }
    if get("refresh_token") != Some(GCP_REFRESH_TOKEN) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Bad Request");
    }
    let (token, _) = mint_google("google-refresh");
    token_reply(token)
}

/// Google STS (`sts.googleapis.com/v1/token`): an RFC 8693 exchange of an OIDC token this mock issued for
/// [`GCP_WIF_AUDIENCE`], asking an access token with the cloud-platform scope. Refusals are STS's.
fn google_sts(f: &BTreeMap<String, String>) -> Reply {
    let get = |k: &str| f.get(k).map(String::as_str);
    let refuse = |error: &str, why: &str| oauth_error(StatusCode::BAD_REQUEST, error, why);
    if get("grant_type") != Some("urn:ietf:params:oauth:grant-type:token-exchange") {
        return refuse(
            "unsupported_grant_type",
            "Invalid value for \"grant_type\".",
        );
    }
    if get("requested_token_type") != Some("urn:ietf:params:oauth:token-type:access_token") {
        return refuse(
            "invalid_request",
            "Invalid value for \"requested_token_type\".",
        );
    }
    if !matches!(
        get("subject_token_type"),
        Some("urn:ietf:params:oauth:token-type:jwt" | "urn:ietf:params:oauth:token-type:id_token")
    ) {
        return refuse(
            "invalid_request",
            "Invalid value for \"subject_token_type\".",
        );
    }
    if get("scope") != Some(GCP_SCOPE) {
        return refuse("invalid_scope", "the cloud-platform scope is expected");
    }
    if get("audience") != Some(GCP_WIF_AUDIENCE) {
        return refuse(
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        );
    }
    if settings().refuse_google_sts {
        return refuse(
            "invalid_grant",
            "The audience in ID Token does not match the expected audience.",
        );
    }
    if let Err(why) = check_bearer(get("subject_token").unwrap_or(""), "oidc") {
        return refuse("invalid_grant", &format!("ID Token: {why}"));
    }
    let (token, _) = mint_google("google-sts");
    Reply::json(
        StatusCode::OK,
        &json!({"access_token": token, "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
                "token_type": "Bearer", "expires_in": settings().lifetime_secs}),
    )
}

/// Google's API error body.
fn google_api_error(status: StatusCode, google_status: &str, message: &str) -> Reply {
    Reply::json(
        status,
        &json!({"error": {"code": status.as_u16(), "message": message, "status": google_status}}),
    )
}

/// IAM Credentials `generateAccessToken` for `{email}:generateAccessToken`: authorised by a Google token
/// this mock issued, for [`GCP_IMPERSONATED`] only, asking the cloud-platform scope.
fn google_generate_access_token(rest: &str, headers: &HeaderMap, body: &[u8]) -> Reply {
    let Some(email) = rest.strip_suffix(":generateAccessToken") else {
        return google_api_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such method");
    };
    let bearer = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if let Err(why) = bearer.map_or(Err("no bearer token".to_owned()), |t| {
        check_bearer(t, "google")
    }) {
        return google_api_error(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            &format!("Request had invalid authentication credentials: {why}"),
        );
    }
    if settings().refuse_google_iam || email != GCP_IMPERSONATED {
        return google_api_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            &format!("Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist): {email}"),
        );
    }
    let req: Value = serde_json::from_slice(body).unwrap_or_default();
    let scoped = req["scope"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s == GCP_SCOPE));
    if !scoped {
        return google_api_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "Scope required.",
        );
    }
    let (token, expiry) = mint_google("google-iam");
    Reply::json(
        StatusCode::OK,
        &json!({"accessToken": token, "expireTime": rfc3339(expiry)}),
    )
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

    /// Status and body of a reply.
    fn answer(r: Reply) -> (u16, String) {
        match r {
            Reply::Full { status, body, .. } => {
                (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
            }
            Reply::Stream { .. } => (0, String::new()),
        }
    }

    fn form_body(pairs: &[(&str, &str)]) -> Vec<u8> {
        pairs
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes()
    }

    #[test]
    fn google_sts_checks_the_exchange() {
        let subject = gcp_subject_token(60_000);
        let good = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", GCP_WIF_AUDIENCE),
            ("scope", GCP_SCOPE),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", subject.as_str()),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ];
        let with = |k: &str, v: &'static str| {
            good.iter()
                .map(|&(gk, gv)| (gk, if gk == k { v } else { gv }))
                .collect::<Vec<_>>()
        };
        for (name, pairs, status, want) in [
            ("a good exchange", good.to_vec(), 200, "swy.google."),
            (
                "another grant",
                with("grant_type", "client_credentials"),
                400,
                "unsupported_grant_type",
            ),
            (
                "another audience",
                with("audience", "//iam.googleapis.com/projects/x"),
                400,
                "invalid_target",
            ),
            (
                "no cloud-platform scope",
                with("scope", "openid"),
                400,
                "invalid_scope",
            ),
            (
                "a refresh token asked",
                with(
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ),
                400,
                "requested_token_type",
            ),
            (
                "a SAML subject",
                with(
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:saml2",
                ),
                400,
                "subject_token_type",
            ),
            (
                "an expired subject",
                with("subject_token", "swy.oidc.1.1"),
                400,
                "expired",
            ),
        ] {
            let (got, body) = answer(google_sts(&form(&form_body(&pairs))));
            assert_eq!(got, status, "{name}: {body}");
            assert!(body.contains(want), "{name}: {body}");
        }
    }

    #[test]
    fn google_iam_and_metadata_check_their_headers() {
        let url = format!("{GCP_IMPERSONATED}:generateAccessToken");
        let (token, _) = mint_google("test");
        let bearer = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                hyper::header::AUTHORIZATION,
                format!("Bearer {t}").parse().expect("header"),
            );
            h
        };
        let scoped =
            br#"{"scope":["https://www.googleapis.com/auth/cloud-platform"],"lifetime":"3600s"}"#;
        for (name, rest, headers, body, status, want) in [
            (
                "impersonated",
                url.clone(),
                bearer(&token),
                &scoped[..],
                200,
                "accessToken",
            ),
            (
                "no bearer",
                url.clone(),
                HeaderMap::new(),
                &scoped[..],
                401,
                "UNAUTHENTICATED",
            ),
            (
                "an OIDC token",
                url.clone(),
                bearer(&gcp_subject_token(60_000)),
                &scoped[..],
                401,
                "UNAUTHENTICATED",
            ),
            (
                "another account",
                "x@y.iam.gserviceaccount.com:generateAccessToken".to_owned(),
                bearer(&token),
                &scoped[..],
                403,
                "PERMISSION_DENIED",
            ),
            (
                "no scope",
                url.clone(),
                bearer(&token),
                &br"{}"[..],
                400,
                "Scope required",
            ),
        ] {
            let (got, text) = answer(google_generate_access_token(&rest, &headers, body));
            assert_eq!(got, status, "{name}: {text}");
            assert!(text.contains(want), "{name}: {text}");
        }
        assert_eq!(answer(google_metadata(&HeaderMap::new())).0, 403);
        let mut h = HeaderMap::new();
        h.insert("metadata-flavor", "Google".parse().expect("header"));
        let (status, body) = answer(google_metadata(&h));
        assert!(status == 200 && body.contains("swy.google."), "{body}");
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
