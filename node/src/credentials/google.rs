//! Google service-account credentials: the key file a `GCPCredentials` policy names, and the OAuth 2.0
//! JWT bearer grant (RFC 7523 §2.1) that turns it into an access token for Vertex AI.
//!
//! This is what Google's own libraries do with a `service_account` key (golang.org/x/oauth2/google's
//! `CredentialsFromJSON`, which upstream's token provider calls): a JWT with `iss` = the account's
//! `client_email`, `scope` = cloud-platform, `aud` = the key's `token_uri`, `iat`/`exp` an hour apart,
//! signed RS256 with the key's private key (header `kid` = `private_key_id`), posted as
//! `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=…` to `token_uri`. Like those
//! libraries, the key file's `token_uri` is where the grant goes, which is also how a test points it at a
//! local token endpoint. Signing is `ring`'s (already in the tree under rustls).
//!
//! The key is parsed and its private key checked when the config loads, so a broken Secret is a load
//! error naming it, never a 401 discovered at request time; errors never show key material.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};

use crate::config::model::{GcpServiceAccount, SecretString};

/// The scope Vertex AI tokens are requested for (what upstream requests).
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
/// `grant_type` of the JWT bearer grant.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of the signed assertion: Google accepts at most an hour.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(3600);
/// The largest private key accepted (a 4096-bit PKCS#8 key is about 3.3 KiB of PEM).
const MAX_PEM: usize = 16 * 1024;

/// Why a service-account key cannot be used. Never shows key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not JSON, or not the shape of a key file.
    #[error("not a service account key file: {0}")]
    Shape(String),
    /// A key of another kind (an authorized user, an external account…).
    #[error("credentials of type {0:?} are not supported (expected a service_account key)")]
    Type(String),
    /// A required field is missing or empty.
    #[error("the key file has no {0}")]
    Missing(&'static str),
    /// `token_uri` is not an http(s) URL.
    #[error("token_uri is not an http(s) URL")]
    TokenUri,
    /// The private key is not an RSA key in PKCS#8 PEM.
    #[error("private_key is not an RSA private key in PKCS#8 PEM: {0}")]
    PrivateKey(&'static str),
    /// Signing failed.
    #[error("signing the assertion failed")]
    Sign,
}

#[derive(serde::Deserialize)]
struct KeyFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key_id: Option<String>,
    private_key: Option<String>,
    token_uri: Option<String>,
}

/// Google's token endpoint, for a key file that names none (Google's libraries default to it too).
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// Parses a service-account key file and checks its private key.
pub fn parse_service_account(json: &str) -> Result<GcpServiceAccount, KeyError> {
    let f: KeyFile = serde_json::from_str(json).map_err(|e| {
        // serde_json's message names a position and the expected type, never the content.
        KeyError::Shape(format!("line {} column {}", e.line(), e.column()))
    })?;
    match f.kind.as_deref() {
        Some("service_account") => {}
        Some(other) => return Err(KeyError::Type(other.to_owned())),
        None => return Err(KeyError::Missing("type")),
    }
    let nonempty = |v: Option<String>, name| {
        v.map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or(KeyError::Missing(name))
    };
    let client_email = nonempty(f.client_email, "client_email")?;
    let private_key = nonempty(f.private_key, "private_key")?;
    let token_uri = f
        .token_uri
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
    if !(token_uri.starts_with("https://") || token_uri.starts_with("http://")) {
        return Err(KeyError::TokenUri);
    }
    key_pair(&private_key)?;
    Ok(GcpServiceAccount {
        client_email,
        private_key_id: f.private_key_id.filter(|k| !k.trim().is_empty()),
        private_key: SecretString::new(private_key),
        token_uri,
    })
}

/// The RSA key pair of a PKCS#8 PEM private key.
pub fn key_pair(pem: &str) -> Result<RsaKeyPair, KeyError> {
    if pem.len() > MAX_PEM {
        return Err(KeyError::PrivateKey("too long"));
    }
    let body = pem
        .trim()
        .strip_prefix("-----BEGIN PRIVATE KEY-----")
        .and_then(|r| r.strip_suffix("-----END PRIVATE KEY-----"))
        .ok_or(KeyError::PrivateKey(
            "expected -----BEGIN PRIVATE KEY----- … -----END PRIVATE KEY-----",
        ))?;
    let clean: Vec<u8> = body.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let der = STANDARD
        .decode(clean)
        .map_err(|_| KeyError::PrivateKey("not valid base64"))?;
    RsaKeyPair::from_pkcs8(&der).map_err(|_| KeyError::PrivateKey("not an RSA PKCS#8 key"))
}

/// The unsigned JWT (`header.claims`, base64url) asserting `account` at `now`.
pub fn unsigned_assertion(account: &GcpServiceAccount, now: SystemTime) -> String {
    let iat = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &account.private_key_id {
        header["kid"] = serde_json::Value::String(kid.clone());
    }
    let claims = serde_json::json!({
        "iss": account.client_email,
        "scope": CLOUD_PLATFORM_SCOPE,
        "aud": account.token_uri,
        "iat": iat,
        "exp": iat + ASSERTION_LIFETIME.as_secs(),
    });
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    )
}

/// The signed JWT bearer assertion for `account` at `now`.
pub fn assertion(account: &GcpServiceAccount, now: SystemTime) -> Result<SecretString, KeyError> {
    let key = key_pair(account.private_key.expose())?;
    let unsigned = unsigned_assertion(account, now);
    let mut sig = vec![0u8; key.public().modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        unsigned.as_bytes(),
        &mut sig,
    )
    .map_err(|_| KeyError::Sign)?;
    Ok(SecretString::new(format!(
        "{unsigned}.{}",
        URL_SAFE_NO_PAD.encode(sig)
    )))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::signature::{KeyPair as _, UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};

    /// A 2048-bit RSA key made for these tests only (`openssl genpkey -algorithm RSA`); it opens nothing.
    pub(crate) const TEST_KEY_PEM: &str =
        include_str!("../../tests/fixtures/gcp/test-service-account-key.pem");

    pub(crate) fn key_file(token_uri: &str) -> String {
        serde_json::json!({
            "type": "service_account",
            "project_id": "test-project",
            "private_key_id": "kid-1",
            "private_key": TEST_KEY_PEM,
            "client_email": "gateway@test-project.iam.gserviceaccount.com",
            "client_id": "1",
            "token_uri": token_uri,
        })
        .to_string()
    }

    #[test]
    fn key_files_are_checked_at_load() {
        let good = key_file("https://oauth2.googleapis.com/token");
        let sa = parse_service_account(&good).expect("good key");
        assert_eq!(
            sa.client_email,
            "gateway@test-project.iam.gserviceaccount.com"
        );
        assert_eq!(sa.private_key_id.as_deref(), Some("kid-1"));
        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&good).expect("json");
            f(&mut v);
            v.to_string()
        };
        for (name, text, want) in [
            ("not json", "{".to_owned(), "not a service account key file"),
            (
                "authorized user",
                edit(&|v| v["type"] = "authorized_user".into()),
                "authorized_user",
            ),
            (
                "no email",
                edit(&|v| v["client_email"] = "".into()),
                "no client_email",
            ),
            (
                "no key",
                edit(&|v| {
                    v.as_object_mut().expect("obj").remove("private_key");
                }),
                "no private_key",
            ),
            (
                "not PEM",
                edit(&|v| v["private_key"] = "abc".into()),
                "PKCS#8 PEM",
            ),
            (
                "not a key",
                edit(&|v| {
                    v["private_key"] =
                        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into()
                }),
                "not an RSA PKCS#8 key",
            ),
            (
                "token_uri",
                edit(&|v| v["token_uri"] = "ftp://x".into()),
                "token_uri",
            ),
        ] {
            let err = parse_service_account(&text).expect_err(name).to_string();
            assert!(err.contains(want), "{name}: {err}");
            assert!(!err.contains("MII"), "{name}: key material in {err}");
        }
        // No token_uri: Google's endpoint, as Google's libraries default.
        let sa = parse_service_account(&edit(&|v| {
            v.as_object_mut().expect("obj").remove("token_uri");
        }))
        .expect("default token_uri");
        assert_eq!(sa.token_uri, DEFAULT_TOKEN_URI);
    }

    #[test]
    fn the_assertion_is_an_rs256_jwt_google_accepts() {
        let sa = parse_service_account(&key_file("http://127.0.0.1:9/token")).expect("key");
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let jwt = assertion(&sa, now).expect("sign");
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let decode = |p: &str| -> serde_json::Value {
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("json")
        };
        assert_eq!(
            decode(parts[0]),
            serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "kid-1"})
        );
        assert_eq!(
            decode(parts[1]),
            serde_json::json!({
                "iss": "gateway@test-project.iam.gserviceaccount.com",
                "scope": CLOUD_PLATFORM_SCOPE,
                "aud": "http://127.0.0.1:9/token",
                "iat": 1_800_000_000u64,
                "exp": 1_800_003_600u64,
            })
        );
        let public = key_pair(TEST_KEY_PEM)
            .expect("key")
            .public_key()
            .as_ref()
            .to_vec();
        let sig = URL_SAFE_NO_PAD.decode(parts[2]).expect("b64");
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
            .verify(signed.as_bytes(), &sig)
            .expect("the signature verifies with the public key");
        assert!(UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public)
            .verify(b"tampered", &sig)
            .is_err());
    }

    /// A local Google token endpoint: checks the JWT bearer grant (grant type, RS256 signature against
    /// the test key's public half, issuer, audience, scope, lifetime) and issues short-lived tokens whose
    /// expiry it remembers, or refuses every grant as Google does a bad signature.
    mod token_endpoint {
        use std::collections::HashMap;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::{Arc, Mutex};

        use super::*;
        use bytes::Bytes;
        use http_body_util::{BodyExt, Full};
        use hyper::service::service_fn;
        use hyper_util::rt::TokioIo;

        pub(crate) struct Mock {
            pub(crate) url: String,
            pub(crate) lifetime_secs: u64,
            pub(crate) fail: AtomicBool,
            pub(crate) issued: AtomicU64,
            /// Token → expiry, for checking that no expired token is ever in use.
            pub(crate) expiries: Mutex<HashMap<String, SystemTime>>,
            public: Vec<u8>,
        }

        impl Mock {
            fn answer(&self, body: &[u8]) -> (u16, serde_json::Value) {
                let form: HashMap<String, String> = String::from_utf8_lossy(body)
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| {
                        let d = |s: &str| {
                            percent_encoding::percent_decode_str(s)
                                .decode_utf8_lossy()
                                .into_owned()
                        };
                        (d(k), d(v))
                    })
                    .collect();
                let refuse = |why: &str| {
                    (
                        400,
                        serde_json::json!({"error": "invalid_grant", "error_description": why}),
                    )
                };
                if form.get("grant_type").map(String::as_str) != Some(JWT_BEARER_GRANT) {
                    return refuse("wrong grant_type");
                }
                let Some(jwt) = form.get("assertion") else {
                    return refuse("no assertion");
                };
                let parts: Vec<&str> = jwt.split('.').collect();
                let [h, c, sig] = parts[..] else {
                    return refuse("not a JWT");
                };
                let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
                    return refuse("bad signature encoding");
                };
                if UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.public)
                    .verify(format!("{h}.{c}").as_bytes(), &sig)
                    .is_err()
                {
                    return refuse("Invalid JWT Signature.");
                }
                let claims: serde_json::Value = URL_SAFE_NO_PAD
                    .decode(c)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .unwrap_or_default();
                let ok = claims["iss"] == "gateway@test-project.iam.gserviceaccount.com"
                    && claims["aud"] == self.url.as_str()
                    && claims["scope"] == CLOUD_PLATFORM_SCOPE
                    && claims["exp"]
                        .as_u64()
                        .zip(claims["iat"].as_u64())
                        .is_some_and(|(e, i)| e > i && e - i <= 3600);
                if !ok {
                    return refuse("bad claims");
                }
                if self.fail.load(Ordering::SeqCst) {
                    return refuse("Invalid JWT Signature.");
                }
                let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
                let token = format!("ya29.test-{n}");
                let expiry = SystemTime::now() + Duration::from_secs(self.lifetime_secs);
                self.expiries
                    .lock()
                    .expect("lock")
                    .insert(token.clone(), expiry);
                (
                    200,
                    serde_json::json!({"access_token": token, "expires_in": self.lifetime_secs, "token_type": "Bearer"}),
                )
            }
        }

        /// Starts the endpoint on 127.0.0.1 (it lives as long as the test's runtime).
        pub(crate) async fn start(lifetime_secs: u64) -> Arc<Mock> {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let addr = listener.local_addr().expect("addr");
            let public = key_pair(TEST_KEY_PEM)
                .expect("key")
                .public_key()
                .as_ref()
                .to_vec();
            let mock = Arc::new(Mock {
                url: format!("http://{addr}/token"),
                lifetime_secs,
                fail: AtomicBool::new(false),
                issued: AtomicU64::new(0),
                expiries: Mutex::new(HashMap::new()),
                public,
            });
            let m = mock.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let m = m.clone();
                    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let m = m.clone();
                        async move {
                            let body = req
                                .into_body()
                                .collect()
                                .await
                                .map(|b| b.to_bytes())
                                .unwrap_or_default();
                            let (status, json) = m.answer(&body);
                            Ok::<_, std::convert::Infallible>(
                                hyper::Response::builder()
                                    .status(status)
                                    .header("content-type", "application/json")
                                    .body(Full::new(Bytes::from(json.to_string())))
                                    .expect("response"),
                            )
                        }
                    });
                    tokio::spawn(
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), svc),
                    );
                }
            });
            mock
        }
    }

    /// The live credential of a GCPCredentials policy whose key points at `token_uri`.
    async fn live(
        store: &crate::credentials::CredentialStore,
        token_uri: &str,
    ) -> (
        crate::config::model::BackendAuth,
        std::sync::Arc<crate::credentials::LiveCredential>,
    ) {
        let auth = crate::config::model::BackendAuth::GcpCredentials {
            project: "proj-1".into(),
            region: "us-east5".into(),
            source: crate::config::model::GcpSource::ServiceAccount(
                parse_service_account(&key_file(token_uri)).expect("key"),
            ),
            policy: "default/gcp".into(),
        };
        let cred = store
            .live_for(crate::config::model::SchemaName::OpenAI, Some(&auth))
            .await
            .expect("a GCP policy has a live credential");
        cred.first_result(Duration::from_secs(5)).await;
        (auth, cred)
    }

    /// What a request to the backend would carry: `Ok(Authorization value)` or the 401's message.
    fn apply_to_request(
        auth: &crate::config::model::BackendAuth,
        cred: &crate::credentials::LiveCredential,
    ) -> Result<String, String> {
        use crate::schema::auth::{apply, AuthTarget};
        let mut req = http::Request::post("http://127.0.0.1:1/x")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .expect("request");
        let target = AuthTarget {
            schema: crate::config::model::SchemaName::OpenAI,
            backend: "default/vertex",
            host: "us-east5-aiplatform.googleapis.com",
            node_region: None,
        };
        let state = cred.load();
        apply(
            &mut req,
            &bytes::Bytes::new(),
            target,
            Some(auth),
            Some(&state),
            SystemTime::now,
        )
        .map_err(|e| e.to_string())?;
        let v = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .ok_or("no Authorization")?;
        assert!(v.is_sensitive());
        Ok(v.to_str().map_err(|e| e.to_string())?.to_owned())
    }

    #[tokio::test]
    async fn tokens_are_refreshed_before_expiry_and_a_failure_is_a_401_naming_backend_and_cause() {
        use std::sync::atomic::Ordering;
        let mock = token_endpoint::start(2).await;
        let store = crate::credentials::CredentialStore::new();
        let (auth, cred) = live(&store, &mock.url).await;
        // Three token lifetimes of requests: every one carries a token the endpoint issued and that has
        // not expired (refresh at half the 2 s lifetime).
        let until = tokio::time::Instant::now() + Duration::from_secs(6);
        let mut seen = std::collections::BTreeSet::new();
        while tokio::time::Instant::now() < until {
            let header = apply_to_request(&auth, &cred).expect("every request is signed");
            let token = header.strip_prefix("Bearer ").expect("bearer").to_owned();
            let expiry = mock
                .expiries
                .lock()
                .expect("lock")
                .get(&token)
                .copied()
                .expect("issued by the endpoint");
            assert!(SystemTime::now() < expiry, "{token} used after its expiry");
            seen.insert(token);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            seen.len() >= 4,
            "expected a refresh per second, saw {seen:?}"
        );
        // The endpoint refuses every grant: the valid token stays in use until it expires, then requests
        // answer 401 naming the backend, the policy and Google's reason.
        mock.fail.store(true, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let err = loop {
            match apply_to_request(&auth, &cred) {
                Err(e) => break e,
                Ok(header) => {
                    let token = header.strip_prefix("Bearer ").expect("bearer").to_owned();
                    let expiry = mock.expiries.lock().expect("lock")[&token];
                    assert!(SystemTime::now() < expiry, "{token} used after its expiry");
                }
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the failure was never published"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        for want in [
            "default/vertex",
            "BackendSecurityPolicy default/gcp",
            "Google OAuth2 token for gateway@test-project.iam.gserviceaccount.com",
            "400",
            "invalid_grant: Invalid JWT Signature.",
        ] {
            assert!(err.contains(want), "{want:?} missing from {err}");
        }
        assert!(
            !err.contains("PRIVATE") && !err.contains("ya29"),
            "secret in {err}"
        );
        // The endpoint recovers: the next retry (capped backoff) signs again.
        mock.fail.store(false, Ordering::SeqCst);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while apply_to_request(&auth, &cred).is_err() {
            assert!(tokio::time::Instant::now() < deadline, "never recovered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
