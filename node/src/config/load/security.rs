//! Pass 2 for `BackendSecurityPolicy`: which credential a backend's requests carry, resolved from
//! `Secret`s (`stringData`, or base64 `data` as Kubernetes stores it). Values never reach an error or a
//! warning; only Secret names and keys do.

use super::super::error::{ConfigError, ResourceId};
use super::super::model::{AwsKeys, BackendAuth, SecretString};
use super::super::resources::{BackendSecurityPolicySpec, SecretObjectRef, SecretResource};
use super::{find, Loaded, Store, Warnings};

/// Key of the API key in the Secret an `apiKey.secretRef` names (Envoy AI Gateway's convention).
const API_KEY_SECRET_KEY: &str = "apiKey";

/// A BackendSecurityPolicy → credentials. APIKey, AzureAPIKey, AnthropicAPIKey and AWSCredentials
/// (credentials file + profile, or the environment) are implemented; AzureCredentials and GCPCredentials
/// are recognised but yield [`BackendAuth::Unavailable`] (401 at request time, never an unsigned request).
pub(super) fn resolve_security_policy(
    store: &Store,
    p: &Loaded<BackendSecurityPolicySpec>,
    warnings: &mut Warnings,
) -> Result<BackendAuth, ConfigError> {
    let id = &p.id;
    let spec = &p.spec;
    let policy = id.key();
    let unavailable = |warnings: &mut Warnings| {
        warnings.push(id.warning(
            "spec.type",
            format!(
                "type {} is not supported yet: requests to its backends answer 401 instead of being sent unsigned",
                spec.policy_type
            ),
        ));
        BackendAuth::Unavailable {
            reason: format!(
                "BackendSecurityPolicy type {} is not supported yet",
                spec.policy_type
            ),
            policy: policy.clone(),
        }
    };
    let required = |field: &str| {
        id.error(
            format!("spec.{field}"),
            format!("required when type is {}", spec.policy_type),
        )
    };
    match spec.policy_type.as_str() {
        "APIKey" => {
            let holder = spec.api_key.as_ref().ok_or_else(|| required("apiKey"))?;
            let field = "spec.apiKey.secretRef";
            let (secret, value) = lookup_secret(store, id, field, &holder.secret_ref, API_KEY_SECRET_KEY)?;
            Ok(BackendAuth::ApiKey {
                key: header_safe_key(id, field, &secret, &value)?,
                policy,
            })
        }
        "AzureAPIKey" | "AnthropicAPIKey" => {
            let azure = spec.policy_type == "AzureAPIKey";
            let (holder, field) = if azure {
                (spec.azure_api_key.as_ref().ok_or_else(|| required("azureAPIKey"))?, "spec.azureAPIKey.secretRef")
            } else {
                (spec.anthropic_api_key.as_ref().ok_or_else(|| required("anthropicAPIKey"))?, "spec.anthropicAPIKey.secretRef")
            };
            let (secret, value) = lookup_secret(store, id, field, &holder.secret_ref, API_KEY_SECRET_KEY)?;
            let key = header_safe_key(id, field, &secret, &value)?;
            Ok(if azure {
                BackendAuth::AzureApiKey { key, policy }
            } else {
                BackendAuth::AnthropicApiKey { key, policy }
            })
        }
        "AWSCredentials" => {
            let aws = spec.aws_credentials.as_ref().ok_or_else(|| required("awsCredentials"))?;
            let region = Some(aws.region.trim().to_owned()).filter(|r| !r.is_empty());
            let keys = if let Some(file) = &aws.credentials_file {
                let (secret, text) = lookup_secret(store, id, "spec.awsCredentials.credentialsFile.secretRef", &file.secret_ref, "credentials")?;
                let profile = file.profile.as_deref().unwrap_or("default");
                AwsKeys::from_credentials_file(&text, profile)
                    .map_err(|why| format!("Secret {secret} key credentials: {why}"))
            } else if aws.oidc_exchange_token.is_some() {
                Err("oidcExchangeToken is not supported yet".to_owned())
            } else {
                AwsKeys::from_env().ok_or_else(|| {
                    "no credentialsFile and no AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment".to_owned()
                })
            };
            Ok(match keys {
                Ok(keys) => BackendAuth::AwsCredentials { keys, region, policy },
                Err(reason) => {
                    warnings.push(id.warning(
                        "spec.awsCredentials",
                        format!("{reason}: requests to its backends answer 401 instead of being sent unsigned"),
                    ));
                    BackendAuth::Unavailable { reason, policy }
                }
            })
        }
        "AzureCredentials" => {
            spec.azure_credentials.as_ref().ok_or_else(|| required("azureCredentials"))?;
            Ok(unavailable(warnings))
        }
        "GCPCredentials" => {
            spec.gcp_credentials.as_ref().ok_or_else(|| required("gcpCredentials"))?;
            Ok(unavailable(warnings))
        }
        other => Err(id.error(
            "spec.type",
            format!("unknown type {other:?} (expected APIKey, AWSCredentials, AzureAPIKey, AnthropicAPIKey, AzureCredentials or GCPCredentials)"),
        )),
    }
}

/// An API key as it will be sent in a header. A trailing newline (`echo key | base64` leaves one) is
/// dropped; any other byte a header value cannot carry (CR, LF, other control characters) is an error
/// at load time, naming the Secret but never the value — at request time it could only fail every
/// request, and a CR/LF must never reach the wire as a header break.
fn header_safe_key(
    id: &ResourceId,
    field: &str,
    secret: &str,
    value: &str,
) -> Result<SecretString, ConfigError> {
    let key = value.trim_end_matches(['\n', '\r']);
    let why = if key.is_empty() {
        "is empty"
    } else if http::HeaderValue::from_str(key).is_err() {
        "holds a character an HTTP header value cannot carry (CR, LF or another control character; value not shown)"
    } else {
        return Ok(SecretString::new(key.to_owned()));
    };
    Err(id.error(
        format!("{field}.name"),
        format!("Secret {secret} key {API_KEY_SECRET_KEY} {why}"),
    ))
}

/// Follows a `secretRef` to one key of a Secret. Errors name the Secret and key, never the value.
pub(super) fn lookup_secret(
    store: &Store,
    id: &ResourceId,
    field: &str,
    r: &SecretObjectRef,
    key: &str,
) -> Result<(String, String), ConfigError> {
    if let Some(k) = r.kind.as_deref().filter(|k| *k != "Secret") {
        return Err(id.error(
            format!("{field}.kind"),
            format!("{k} is not supported (expected Secret)"),
        ));
    }
    let ns = r.namespace.as_deref().unwrap_or(&id.namespace);
    let secret = find(&store.secrets, ns, &r.name).ok_or_else(|| {
        id.error(
            format!("{field}.name"),
            format!("no Secret named {:?} in namespace {ns}", r.name),
        )
    })?;
    let value = secret_value(secret, key)?.ok_or_else(|| {
        let keys: Vec<&str> = secret
            .spec
            .string_data
            .keys()
            .chain(secret.spec.data.keys())
            .map(String::as_str)
            .collect();
        id.error(
            format!("{field}.name"),
            format!(
                "Secret {} has no key {key} (keys: {})",
                secret.id.key(),
                keys.join(", ")
            ),
        )
    })?;
    Ok((secret.id.key(), value))
}

/// One key of a Secret: `stringData` wins over `data` (base64), as when Kubernetes merges them.
pub(super) fn secret_value(
    secret: &Loaded<SecretResource>,
    key: &str,
) -> Result<Option<String>, ConfigError> {
    if let Some(v) = secret.spec.string_data.get(key) {
        return Ok(Some(v.0.clone()));
    }
    let Some(v) = secret.spec.data.get(key) else {
        return Ok(None);
    };
    let bytes = decode_base64(&v.0).ok_or_else(|| {
        secret
            .id
            .error(format!("data.{key}"), "not valid base64 (value not shown)")
    })?;
    String::from_utf8(bytes).map(Some).map_err(|_| {
        secret.id.error(
            format!("data.{key}"),
            "decodes to non-UTF-8 bytes (value not shown)",
        )
    })
}

/// Standard base64 as Kubernetes writes `data`; line breaks (as `base64` wraps long values) are ignored,
/// and so is missing padding, as before this used the `base64` crate.
pub(super) fn decode_base64(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    use base64::Engine as _;
    const STANDARD_ANY_PADDING: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD_ANY_PADDING.decode(clean).ok()
}
