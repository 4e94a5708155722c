//! Application Default Credentials: the node's own Google identity, for a `GCPCredentials` policy that
//! names neither a key file nor workload identity federation.
//!
//! Google's documented order (google.auth.default, golang.org/x/oauth2/google.FindDefaultCredentials):
//! 1. the file `GOOGLE_APPLICATION_CREDENTIALS` names — when set it is used or its failure reported,
//!    never skipped;
//! 2. gcloud's well-known file, `$CLOUDSDK_CONFIG/application_default_credentials.json`, else
//!    `$HOME/.config/gcloud/application_default_credentials.json`, when it exists;
//! 3. the metadata server (GCE, GKE, Cloud Run): `GET
//!    http://{GCE_METADATA_HOST or metadata.google.internal}/computeMetadata/v1/instance/service-accounts/default/token`
//!    with `Metadata-Flavor: Google`.
//!
//! A file is `service_account` (the JWT bearer grant of [`super::google`]), `authorized_user` (the
//! refresh-token grant at its `token_uri`, Google's endpoint by default) or `external_account` (a subject
//! token read from a file or a URL, exchanged at its `token_url`, then impersonated through its
//! `service_account_impersonation_url` when set: [`super::google_sts`]) or `impersonated_service_account`
//! (what `gcloud auth application-default login --impersonate-service-account` writes: its
//! `source_credentials`' token calls IAM Credentials `generateAccessToken` at its
//! `service_account_impersonation_url`). Other kinds are refused by name.
//! Each fetch resolves again, so a rotated file or subject token is picked up at the next refresh.
//! Errors name the source and step, never a refresh token, client secret or token.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::context::{FetchContext, FetchError};
use super::oauth::{AccessToken, TokenError};
use crate::config::model::{GcpServiceAccount, SecretString};

/// The metadata server's host when `GCE_METADATA_HOST` names none.
pub(crate) const METADATA_HOST: &str = "metadata.google.internal";
/// The token path on the metadata server.
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
/// gcloud's file name.
const WELL_KNOWN_FILE: &str = "application_default_credentials.json";
/// Google's token endpoint for an `authorized_user` file that names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
/// The largest credentials file or subject token read.
const MAX_FILE: u64 = 64 * 1024;

/// Where the node's Application Default Credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AdcSource {
    /// A credentials file, and which rule found it (for errors).
    File {
        /// The file.
        path: PathBuf,
        /// `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's well-known file.
        origin: &'static str,
    },
    /// The metadata server's token URL.
    Metadata(String),
}

/// Google's order, given the environment (`env`) and whether a file exists (`exists`).
pub(crate) fn locate(
    env: impl Fn(&str) -> Option<String>,
    exists: impl Fn(&Path) -> bool,
) -> AdcSource {
    let set = |k: &str| {
        env(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    if let Some(p) = set("GOOGLE_APPLICATION_CREDENTIALS") {
        return AdcSource::File {
            path: PathBuf::from(p),
            origin: "GOOGLE_APPLICATION_CREDENTIALS",
        };
    }
    let gcloud_dir = set("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| set("HOME").map(|h| Path::new(&h).join(".config").join("gcloud")));
    if let Some(path) = gcloud_dir.map(|d| d.join(WELL_KNOWN_FILE)) {
        if exists(&path) {
            return AdcSource::File {
                path,
                origin: "gcloud's application default credentials",
            };
        }
    }
    let host = set("GCE_METADATA_HOST").unwrap_or_else(|| METADATA_HOST.to_owned());
    AdcSource::Metadata(format!("http://{host}{METADATA_TOKEN_PATH}"))
}

/// A credentials file, parsed.
#[derive(Debug)]
pub(crate) enum AdcFile {
    /// `service_account`.
    ServiceAccount(GcpServiceAccount),
    /// `authorized_user` (`gcloud auth application-default login`).
    AuthorizedUser {
        /// `client_id`.
        client_id: String,
        /// `client_secret`.
        client_secret: SecretString,
        /// `refresh_token`.
        refresh_token: SecretString,
        /// `token_uri`, else Google's.
        token_uri: String,
    },
    /// `external_account` (workload identity federation from a file).
    ExternalAccount(ExternalAccount),
    /// `impersonated_service_account` (`gcloud auth application-default login
    /// --impersonate-service-account`): a token of its `source_credentials` (a service account or an
    /// authorized user) impersonates through `service_account_impersonation_url`.
    Impersonated {
        /// `source_credentials`: `ServiceAccount` or `AuthorizedUser`.
        source: Box<AdcFile>,
        /// `service_account_impersonation_url`.
        url: String,
    },
}

/// An `external_account` file.
#[derive(Debug)]
pub(crate) struct ExternalAccount {
    /// `audience`: the workload identity provider.
    pub(crate) audience: String,
    /// `subject_token_type`.
    pub(crate) subject_token_type: String,
    /// `token_url`: STS.
    pub(crate) token_url: String,
    /// `service_account_impersonation_url`.
    pub(crate) impersonation_url: Option<String>,
    /// `credential_source`.
    pub(crate) source: SubjectSource,
}

/// Where an `external_account`'s subject token is read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubjectSource {
    /// `credential_source.file`.
    File {
        /// The file.
        path: PathBuf,
        /// `credential_source.format`.
        format: SubjectFormat,
    },
    /// `credential_source.url` with its `headers`.
    Url {
        /// The URL.
        url: String,
        /// Headers sent with it.
        headers: Vec<(String, String)>,
        /// `credential_source.format`.
        format: SubjectFormat,
    },
}

/// `credential_source.format`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SubjectFormat {
    /// `text` (the default): the whole content, trimmed.
    Text,
    /// `json`: the string field `subject_token_field_name`.
    Json(String),
}

#[derive(serde::Deserialize)]
struct RawFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    token_uri: Option<String>,
    audience: Option<String>,
    subject_token_type: Option<String>,
    token_url: Option<String>,
    service_account_impersonation_url: Option<String>,
    credential_source: Option<RawSource>,
    source_credentials: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct RawSource {
    file: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    format: Option<RawFormat>,
    environment_id: Option<String>,
    executable: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct RawFormat {
    #[serde(rename = "type")]
    kind: Option<String>,
    subject_token_field_name: Option<String>,
}

fn http_url(field: &'static str, v: String) -> Result<String, String> {
    if v.starts_with("https://") || v.starts_with("http://") {
        Ok(v)
    } else {
        Err(format!("{field} is not an http(s) URL"))
    }
}

/// Parses a credentials file. The error never shows a value from it.
pub(crate) fn parse_file(json: &str) -> Result<AdcFile, String> {
    let f: RawFile = serde_json::from_str(json).map_err(|e| {
        format!(
            "not a Google credentials file (line {} column {})",
            e.line(),
            e.column()
        )
    })?;
    let need = |v: Option<String>, name: &'static str| {
        v.map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| format!("the file has no {name}"))
    };
    match f.kind.as_deref() {
        Some("service_account") => super::google::parse_service_account(json)
            .map(AdcFile::ServiceAccount)
            .map_err(|e| e.to_string()),
        Some("authorized_user") => Ok(AdcFile::AuthorizedUser {
            client_id: need(f.client_id, "client_id")?,
            client_secret: SecretString::new(need(f.client_secret, "client_secret")?),
            refresh_token: SecretString::new(need(f.refresh_token, "refresh_token")?),
            token_uri: http_url(
                "token_uri",
                f.token_uri
                    .filter(|t| !t.trim().is_empty())
                    .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned()),
            )?,
        }),
        Some("external_account") => {
            let src = f
                .credential_source
                .ok_or("the file has no credential_source")?;
            if src.environment_id.is_some() {
                return Err("credential_source.environment_id (AWS-sourced subject tokens) is not supported; use a file or url source".into());
            }
            if src.executable.is_some() {
                return Err(
                    "credential_source.executable is not supported; use a file or url source"
                        .into(),
                );
            }
            let format = match src.format {
                None => SubjectFormat::Text,
                Some(fmt) => match fmt.kind.as_deref().unwrap_or("text") {
                    "text" => SubjectFormat::Text,
                    "json" => SubjectFormat::Json(need(
                        fmt.subject_token_field_name,
                        "credential_source.format.subject_token_field_name",
                    )?),
                    other => {
                        return Err(format!(
                        "credential_source.format.type {other:?} is not supported (text or json)"
                    ))
                    }
                },
            };
            let source = match (src.file, src.url) {
                (Some(file), None) => SubjectSource::File {
                    path: PathBuf::from(file),
                    format,
                },
                (None, Some(url)) => SubjectSource::Url {
                    url: http_url("credential_source.url", url)?,
                    headers: src.headers.into_iter().collect(),
                    format,
                },
                _ => return Err("credential_source needs exactly one of file and url".into()),
            };
            Ok(AdcFile::ExternalAccount(ExternalAccount {
                audience: need(f.audience, "audience")?,
                subject_token_type: need(f.subject_token_type, "subject_token_type")?,
                token_url: http_url(
                    "token_url",
                    f.token_url
                        .filter(|t| !t.trim().is_empty())
                        .unwrap_or_else(|| super::google_sts::STS_URL.to_owned()),
                )?,
                impersonation_url: f
                    .service_account_impersonation_url
                    .filter(|u| !u.trim().is_empty())
                    .map(|u| http_url("service_account_impersonation_url", u))
                    .transpose()?,
                source,
            }))
        }
        Some("impersonated_service_account") => {
            let url = http_url(
                "service_account_impersonation_url",
                need(
                    f.service_account_impersonation_url,
                    "service_account_impersonation_url",
                )?,
            )?;
            let inner = f
                .source_credentials
                .ok_or("the file has no source_credentials")?;
            let source = match parse_file(&inner.to_string())
                .map_err(|e| format!("source_credentials: {e}"))?
            {
                s @ (AdcFile::ServiceAccount(_) | AdcFile::AuthorizedUser { .. }) => s,
                _ => {
                    return Err(
                        "source_credentials must be a service_account or an authorized_user".into(),
                    )
                }
            };
            Ok(AdcFile::Impersonated {
                source: Box::new(source),
                url,
            })
        }
        Some(other) => Err(format!(
            "credentials of type {other:?} are not supported (service_account, authorized_user, external_account or impersonated_service_account)"
        )),
        None => Err("the file has no type".into()),
    }
}

/// The subject token in `content` per `format`.
pub(crate) fn subject_token(content: &str, format: &SubjectFormat) -> Result<SecretString, String> {
    let token = match format {
        SubjectFormat::Text => content.trim().to_owned(),
        SubjectFormat::Json(field) => serde_json::from_str::<serde_json::Value>(content)
            .ok()
            .and_then(|v| v.get(field)?.as_str().map(str::to_owned))
            .ok_or_else(|| {
                format!("the subject token source is not JSON with a string {field:?}")
            })?,
    };
    if token.is_empty() {
        return Err("the subject token is empty".into());
    }
    Ok(SecretString::new(token))
}

/// Reads at most [`MAX_FILE`] bytes of `path` as text.
async fn read_small(path: &Path) -> Result<String, String> {
    use tokio::io::AsyncReadExt as _;
    let f = tokio::fs::File::open(path)
        .await
        .map_err(|e| e.kind().to_string())?;
    let mut s = String::new();
    f.take(MAX_FILE)
        .read_to_string(&mut s)
        .await
        .map_err(|e| e.kind().to_string())?;
    Ok(s)
}

/// The node's Application Default Credentials, fetched once.
pub(crate) async fn fetch(cx: &FetchContext) -> Result<(SecretString, SystemTime), FetchError> {
    let source = locate(|k| std::env::var(k).ok(), Path::is_file);
    let (path, origin) = match source {
        AdcSource::Metadata(url) => {
            let t = cx
                .tokens
                .get_token(&url, &[("metadata-flavor", "Google")])
                .await
                .map_err(|source| FetchError::GoogleStep {
                    step: "Application Default Credentials from the metadata server (no GOOGLE_APPLICATION_CREDENTIALS, no gcloud file)".into(),
                    source,
                })?;
            return Ok((t.token, t.expiry));
        }
        AdcSource::File { path, origin } => (path, origin),
    };
    let what = format!(
        "Application Default Credentials ({origin} {})",
        path.display()
    );
    let fail = |why: String| FetchError::GoogleAdc(format!("{what}: {why}"));
    let text = read_small(&path)
        .await
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    let step = |step: &str| {
        let what = what.clone();
        let step = step.to_owned();
        move |source: TokenError| FetchError::GoogleStep {
            step: format!("{what}: {step}"),
            source,
        }
    };
    match parse_file(&text).map_err(fail)? {
        AdcFile::Impersonated { source, url } => {
            let t = grant(cx, &source, &what).await?;
            let t = cx
                .tokens
                .generate_access_token(&url, &t.token, &super::google_sts::impersonation_body())
                .await
                .map_err(step(&format!(
                    "IAM Credentials generateAccessToken for {}",
                    super::google_sts::account_of(&url)
                )))?;
            Ok((t.token, t.expiry))
        }
        AdcFile::ExternalAccount(ext) => {
            let subject = match &ext.source {
                SubjectSource::File { path, format } => {
                    let content = read_small(path)
                        .await
                        .map_err(|e| fail(format!("subject token file {}: {e}", path.display())))?;
                    subject_token(&content, format).map_err(fail)?
                }
                SubjectSource::Url {
                    url,
                    headers,
                    format,
                } => {
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let content = cx
                        .tokens
                        .get_text(url, &h)
                        .await
                        .map_err(step("subject token"))?;
                    subject_token(&content, format).map_err(fail)?
                }
            };
            let t = super::google_sts::exchange_and_impersonate(
                cx,
                &ext.token_url,
                &ext.audience,
                &subject,
                &ext.subject_token_type,
                ext.impersonation_url.as_deref(),
            )
            .await
            .map_err(|e| FetchError::GoogleAdc(format!("{what}: {e}")))?;
            Ok((t.token, t.expiry))
        }
        file => {
            let t = grant(cx, &file, &what).await?;
            Ok((t.token, t.expiry))
        }
    }
}

/// The token of a `service_account` (JWT bearer grant) or `authorized_user` (refresh-token grant) file
/// found as `what`.
async fn grant(cx: &FetchContext, file: &AdcFile, what: &str) -> Result<AccessToken, FetchError> {
    let step = |step: String| {
        move |source: TokenError| FetchError::GoogleStep {
            step: format!("{what}: {step}"),
            source,
        }
    };
    match file {
        AdcFile::ServiceAccount(account) => {
            let jwt = super::google::assertion(account, SystemTime::now()).map_err(|e| {
                FetchError::GoogleAdc(format!(
                    "{what}: service account {}: {e}",
                    account.client_email
                ))
            })?;
            cx.tokens
                .jwt_bearer(&account.token_uri, &jwt)
                .await
                .map_err(step(format!("OAuth2 token for {}", account.client_email)))
        }
        AdcFile::AuthorizedUser {
            client_id,
            client_secret,
            refresh_token,
            token_uri,
        } => cx
            .tokens
            .form_token(
                token_uri,
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id),
                    ("client_secret", client_secret.expose()),
                    ("refresh_token", refresh_token.expose()),
                ],
            )
            .await
            .map_err(step(format!("refresh-token grant of client {client_id}"))),
        AdcFile::ExternalAccount(_) | AdcFile::Impersonated { .. } => Err(FetchError::GoogleAdc(
            format!("{what}: not a service_account or authorized_user"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn sources_are_tried_in_googles_order() {
        let gcloud_home = Path::new("/home/u/.config/gcloud").join(WELL_KNOWN_FILE);
        let gcloud_cfg = Path::new("/cfg").join(WELL_KNOWN_FILE);
        let metadata = |host: &str| {
            AdcSource::Metadata(format!(
                "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
            ))
        };
        for (name, env, files, want) in [
            (
                "GOOGLE_APPLICATION_CREDENTIALS first, even when gcloud's file exists",
                vec![
                    ("GOOGLE_APPLICATION_CREDENTIALS", "/k.json"),
                    ("HOME", "/home/u"),
                ],
                vec![gcloud_home.clone()],
                AdcSource::File {
                    path: "/k.json".into(),
                    origin: "GOOGLE_APPLICATION_CREDENTIALS",
                },
            ),
            (
                "GOOGLE_APPLICATION_CREDENTIALS is used even if missing (its error is reported)",
                vec![("GOOGLE_APPLICATION_CREDENTIALS", "/missing.json")],
                vec![],
                AdcSource::File {
                    path: "/missing.json".into(),
                    origin: "GOOGLE_APPLICATION_CREDENTIALS",
                },
            ),
            (
                "an empty GOOGLE_APPLICATION_CREDENTIALS is unset",
                vec![("GOOGLE_APPLICATION_CREDENTIALS", " "), ("HOME", "/home/u")],
                vec![gcloud_home.clone()],
                AdcSource::File {
                    path: gcloud_home.clone(),
                    origin: "gcloud's application default credentials",
                },
            ),
            (
                "CLOUDSDK_CONFIG moves gcloud's directory",
                vec![("CLOUDSDK_CONFIG", "/cfg"), ("HOME", "/home/u")],
                vec![gcloud_cfg.clone(), gcloud_home.clone()],
                AdcSource::File {
                    path: gcloud_cfg.clone(),
                    origin: "gcloud's application default credentials",
                },
            ),
            (
                "no file: the metadata server",
                vec![("HOME", "/home/u")],
                vec![],
                metadata(METADATA_HOST),
            ),
            (
                "GCE_METADATA_HOST moves it",
                vec![("GCE_METADATA_HOST", "127.0.0.1:8080")],
                vec![],
                metadata("127.0.0.1:8080"),
            ),
        ] {
            let env: HashMap<&str, &str> = env.into_iter().collect();
            let got = locate(
                |k| env.get(k).map(|v| (*v).to_owned()),
                |p| files.iter().any(|f| f == p),
            );
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn credentials_files_parse_or_say_why_without_showing_values() {
        let user = serde_json::json!({"type": "authorized_user", "client_id": "cid",
            "client_secret": "csecret-123", "refresh_token": "1//rt-456"});
        match parse_file(&user.to_string()).expect("authorized_user") {
            AdcFile::AuthorizedUser {
                client_id,
                token_uri,
                refresh_token,
                ..
            } => {
                assert_eq!(client_id, "cid");
                assert_eq!(token_uri, DEFAULT_TOKEN_URI);
                assert_eq!(refresh_token.expose(), "1//rt-456");
            }
            other => panic!("{other:?}"),
        }
        let ext = serde_json::json!({"type": "external_account",
            "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": "http://127.0.0.1:9/sts",
            "service_account_impersonation_url": "http://127.0.0.1:9/iam/v1/projects/-/serviceAccounts/a@b:generateAccessToken",
            "credential_source": {"url": "http://127.0.0.1:9/subject", "headers": {"x-h": "v"},
                "format": {"type": "json", "subject_token_field_name": "id_token"}}});
        match parse_file(&ext.to_string()).expect("external_account") {
            AdcFile::ExternalAccount(e) => {
                assert_eq!(e.token_url, "http://127.0.0.1:9/sts");
                assert!(e.impersonation_url.is_some());
                assert_eq!(
                    e.source,
                    SubjectSource::Url {
                        url: "http://127.0.0.1:9/subject".into(),
                        headers: vec![("x-h".into(), "v".into())],
                        format: SubjectFormat::Json("id_token".into()),
                    }
                );
            }
            other => panic!("{other:?}"),
        }
        let imp = serde_json::json!({"type": "impersonated_service_account",
            "service_account_impersonation_url": "http://127.0.0.1:9/iam/v1/projects/-/serviceAccounts/a@b:generateAccessToken",
            "source_credentials": user});
        match parse_file(&imp.to_string()).expect("impersonated_service_account") {
            AdcFile::Impersonated { source, url } => {
                assert!(matches!(*source, AdcFile::AuthorizedUser { .. }));
                assert!(url.ends_with("a@b:generateAccessToken"));
            }
            other => panic!("{other:?}"),
        }
        let edit = |base: &serde_json::Value, f: &dyn Fn(&mut serde_json::Value)| {
            let mut v = base.clone();
            f(&mut v);
            v.to_string()
        };
        for (name, text, want) in [
            ("not JSON", "{".to_owned(), "not a Google credentials file"),
            ("no type", "{}".to_owned(), "no type"),
            (
                "gdch_service_account",
                r#"{"type":"gdch_service_account"}"#.to_owned(),
                "\"gdch_service_account\" are not supported",
            ),
            (
                "impersonation without a source",
                r#"{"type":"impersonated_service_account","service_account_impersonation_url":"https://x/y"}"#.to_owned(),
                "no source_credentials",
            ),
            (
                "impersonation of an external account",
                serde_json::json!({"type": "impersonated_service_account",
                    "service_account_impersonation_url": "https://x/y", "source_credentials": ext}).to_string(),
                "must be a service_account or an authorized_user",
            ),
            (
                "impersonation with a broken source",
                serde_json::json!({"type": "impersonated_service_account",
                    "service_account_impersonation_url": "https://x/y",
                    "source_credentials": {"type": "authorized_user", "client_id": "c", "refresh_token": "r"}}).to_string(),
                "source_credentials: the file has no client_secret",
            ),
            (
                "no refresh token",
                edit(&user, &|v| v["refresh_token"] = "".into()),
                "no refresh_token",
            ),
            (
                "token_uri not a URL",
                edit(&user, &|v| v["token_uri"] = "ftp://x".into()),
                "token_uri is not an http(s) URL",
            ),
            (
                "an AWS source",
                edit(&ext, &|v| {
                    v["credential_source"] = serde_json::json!({"environment_id": "aws1"})
                }),
                "environment_id",
            ),
            (
                "an executable source",
                edit(&ext, &|v| {
                    v["credential_source"] = serde_json::json!({"executable": {"command": "x"}})
                }),
                "executable is not supported",
            ),
            (
                "file and url",
                edit(&ext, &|v| {
                    v["credential_source"] = serde_json::json!({"file": "/t", "url": "http://x"})
                }),
                "exactly one of file and url",
            ),
            (
                "json without a field name",
                edit(&ext, &|v| {
                    v["credential_source"] =
                        serde_json::json!({"file": "/t", "format": {"type": "json"}})
                }),
                "subject_token_field_name",
            ),
            (
                "no audience",
                edit(&ext, &|v| v["audience"] = serde_json::Value::Null),
                "no audience",
            ),
        ] {
            let err = parse_file(&text).expect_err(name);
            assert!(err.contains(want), "{name}: {err}");
            for secret in ["csecret-123", "rt-456"] {
                assert!(!err.contains(secret), "{name}: {secret} in {err}");
            }
        }
    }

    #[test]
    fn subject_tokens_are_read_per_format() {
        let json = SubjectFormat::Json("id_token".into());
        assert_eq!(
            subject_token(" tok\n", &SubjectFormat::Text)
                .expect("text")
                .expose(),
            "tok"
        );
        assert_eq!(
            subject_token(r#"{"id_token":"j"}"#, &json)
                .expect("json")
                .expose(),
            "j"
        );
        assert!(subject_token("", &SubjectFormat::Text).is_err());
        let err = subject_token(r#"{"other":"secret-x"}"#, &json).expect_err("no field");
        assert!(
            err.contains("id_token") && !err.contains("secret-x"),
            "{err}"
        );
    }
}
