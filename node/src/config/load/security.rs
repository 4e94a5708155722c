//! Pass 2 for `BackendSecurityPolicy`: which credential a backend's requests carry, resolved from
//! `Secret`s (`stringData`, or base64 `data` as Kubernetes stores it). Values never reach an error or a
//! warning; only Secret names and keys do.

use super::super::error::{ConfigError, ResourceId};
use super::super::model::{
    AwsKeys, AwsSource, AzureSecret, BackendAuth, GcpFederation, GcpSource, OidcClient,
    SecretString,
};
use super::super::resources::{
    BackendSecurityPolicySpec, GcpWorkloadIdentityFederationConfig, OidcExchangeToken,
    SecretObjectRef, SecretResource,
};
use super::{find, Loaded, Store, Warnings};

/// Key of the API key in the Secret an `apiKey.secretRef` names (Envoy AI Gateway's convention).
const API_KEY_SECRET_KEY: &str = "apiKey";
/// Key of the client secret in the Secret `azureCredentials.clientSecretRef` names (upstream's convention).
const AZURE_CLIENT_SECRET_KEY: &str = "client-secret";
/// Key of the service account key file in the Secret `gcpCredentials.credentialsFile.secretRef` names
/// (upstream's convention).
const GCP_KEY_FILE_SECRET_KEY: &str = "service_account.json";
/// Keys of an OIDC client's id and secret in their Secrets (Envoy Gateway's convention).
const OIDC_CLIENT_ID_KEY: &str = "client-id";
const OIDC_CLIENT_SECRET_KEY: &str = "client-secret";

/// A BackendSecurityPolicy → credentials. APIKey, AzureAPIKey, AnthropicAPIKey, AWSCredentials (credentials
/// file + profile, OIDC exchange, or the default chain) and AzureCredentials (client secret or OIDC
/// federation) are implemented; the dynamic ones are fetched and refreshed at run time by
/// `crate::credentials`, and so are GCPCredentials (service account key file, workload identity
/// federation, or — naming neither — the node's Application Default Credentials).
pub(super) fn resolve_security_policy(
    store: &Store,
    p: &Loaded<BackendSecurityPolicySpec>,
    warnings: &mut Warnings,
) -> Result<BackendAuth, ConfigError> {
    let id = &p.id;
    let spec = &p.spec;
    let policy = id.key();
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
            let source = if let Some(file) = &aws.credentials_file {
                if aws.oidc_exchange_token.is_some() {
                    return Err(id.error(
                        "spec.awsCredentials",
                        "credentialsFile and oidcExchangeToken are mutually exclusive",
                    ));
                }
                let (secret, text) = lookup_secret(store, id, "spec.awsCredentials.credentialsFile.secretRef", &file.secret_ref, "credentials")?;
                let profile = file.profile.as_deref().unwrap_or("default");
                AwsKeys::from_credentials_file(&text, profile)
                    .map(AwsSource::Keys)
                    .map_err(|why| format!("Secret {secret} key credentials: {why}"))
            } else if let Some(exchange) = &aws.oidc_exchange_token {
                let field = "spec.awsCredentials.oidcExchangeToken";
                let role_arn = exchange
                    .aws_role_arn
                    .as_deref()
                    .map(str::trim)
                    .filter(|r| !r.is_empty())
                    .ok_or_else(|| id.error(format!("{field}.awsRoleArn"), "required: the role STS AssumeRoleWithWebIdentity assumes"))?
                    .to_owned();
                Ok(AwsSource::OidcExchange {
                    oidc: oidc_client(store, id, field, exchange, warnings)?,
                    role_arn,
                })
            } else {
                Ok(AwsSource::DefaultChain)
            };
            Ok(match source {
                Ok(source) => BackendAuth::AwsCredentials { source, region, policy },
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
            let azure = spec.azure_credentials.as_ref().ok_or_else(|| required("azureCredentials"))?;
            let nonempty = |field: &str, v: &str| {
                let v = v.trim();
                if v.is_empty() {
                    Err(id.error(format!("spec.azureCredentials.{field}"), "must not be empty"))
                } else {
                    Ok(v.to_owned())
                }
            };
            let client_id = nonempty("clientID", &azure.client_id)?;
            let tenant_id = nonempty("tenantID", &azure.tenant_id)?;
            let secret = match (&azure.client_secret_ref, &azure.oidc_exchange_token) {
                (Some(r), None) => {
                    let field = "spec.azureCredentials.clientSecretRef";
                    let (secret, value) = lookup_secret(store, id, field, r, AZURE_CLIENT_SECRET_KEY)?;
                    AzureSecret::ClientSecret(form_safe_secret(id, field, &secret, AZURE_CLIENT_SECRET_KEY, &value)?)
                }
                (None, Some(exchange)) => AzureSecret::Oidc(oidc_client(store, id, "spec.azureCredentials.oidcExchangeToken", exchange, warnings)?),
                _ => {
                    return Err(id.error(
                        "spec.azureCredentials",
                        "exactly one of clientSecretRef and oidcExchangeToken is required",
                    ))
                }
            };
            Ok(BackendAuth::AzureCredentials { client_id, tenant_id, secret, policy })
        }
        "GCPCredentials" => {
            let gcp = spec.gcp_credentials.as_ref().ok_or_else(|| required("gcpCredentials"))?;
            let nonempty = |field: &str, v: &str| {
                let v = v.trim();
                if v.is_empty() {
                    Err(id.error(format!("spec.gcpCredentials.{field}"), "required: Vertex AI paths name it"))
                } else {
                    Ok(v.to_owned())
                }
            };
            let project = nonempty("projectName", &gcp.project_name)?;
            let region = nonempty("region", &gcp.region)?;
            let source = match (&gcp.credentials_file, &gcp.workload_identity_federation_config) {
                (Some(_), Some(_)) => {
                    return Err(id.error(
                        "spec.gcpCredentials",
                        "at most one of credentialsFile and workloadIdentityFederationConfig may be set",
                    ))
                }
                (Some(file), None) => {
                    let field = "spec.gcpCredentials.credentialsFile.secretRef";
                    let (secret, text) = lookup_secret(store, id, field, &file.secret_ref, GCP_KEY_FILE_SECRET_KEY)?;
                    // An unusable key file (the upstream example's placeholder, say) loads like an
                    // unusable AWS credentials file: with a warning, its backends answering 401 naming why.
                    match crate::credentials::google::parse_service_account(&text) {
                        Ok(account) => GcpSource::ServiceAccount(account),
                        Err(e) => {
                            let reason = format!("Secret {secret} key {GCP_KEY_FILE_SECRET_KEY}: {e}");
                            warnings.push(id.warning(
                                "spec.gcpCredentials.credentialsFile",
                                format!("{reason}: requests to its backends answer 401 instead of being sent unsigned"),
                            ));
                            return Ok(BackendAuth::Unavailable { reason, policy });
                        }
                    }
                }
                (None, Some(wif)) => GcpSource::Federation(Box::new(gcp_federation(store, id, &project, wif, warnings)?)),
                // Upstream's CRD requires one of the two; without either, the node's own Application
                // Default Credentials (what Google's libraries use) are the sensible extension.
                (None, None) => GcpSource::ApplicationDefault,
            };
            Ok(BackendAuth::GcpCredentials { project, region, source, policy })
        }
        other => Err(id.error(
            "spec.type",
            format!("unknown type {other:?} (expected APIKey, AWSCredentials, AzureAPIKey, AnthropicAPIKey, AzureCredentials or GCPCredentials)"),
        )),
    }
}

/// A `workloadIdentityFederationConfig` → the STS audience, the OIDC client and the service account to
/// impersonate (`{serviceAccountName}@{projectName}.iam.gserviceaccount.com`, as upstream builds it; a
/// name that is already an email is used as is, a Switchyard extension for accounts of other projects).
fn gcp_federation(
    store: &Store,
    id: &ResourceId,
    project: &str,
    wif: &GcpWorkloadIdentityFederationConfig,
    warnings: &mut Warnings,
) -> Result<GcpFederation, ConfigError> {
    let field = "spec.gcpCredentials.workloadIdentityFederationConfig";
    // Each part lands in a URL path or an audience: no separators, no spaces.
    let part = |name: &str, v: &str| {
        let v = v.trim();
        if v.is_empty() {
            Err(id.error(format!("{field}.{name}"), "required"))
        } else if v.contains(['/', ' ', '?', '#']) {
            Err(id.error(
                format!("{field}.{name}"),
                format!("{v:?} must not contain '/', '?', '#' or spaces"),
            ))
        } else {
            Ok(v.to_owned())
        }
    };
    let project_id = part("projectID", &wif.project_id)?;
    let pool = part("workloadIdentityPoolName", &wif.workload_identity_pool_name)?;
    let provider = part(
        "workloadIdentityProviderName",
        &wif.workload_identity_provider_name,
    )?;
    // `awsRoleArn` never gets here: upstream's GCP exchange has no such field, so the field check refuses it.
    let oidc = oidc_client(
        store,
        id,
        &format!("{field}.oidcExchangeToken"),
        &wif.oidc_exchange_token,
        warnings,
    )?;
    let impersonate = wif
        .service_account_impersonation
        .as_ref()
        .map(|sa| {
            let name = part(
                "serviceAccountImpersonation.serviceAccountName",
                &sa.service_account_name,
            )?;
            Ok::<_, ConfigError>(if name.contains('@') {
                name
            } else {
                format!("{name}@{project}.iam.gserviceaccount.com")
            })
        })
        .transpose()?;
    Ok(GcpFederation {
        oidc,
        audience: format!(
            "//iam.googleapis.com/projects/{project_id}/locations/global/workloadIdentityPools/{pool}/providers/{provider}"
        ),
        impersonate,
    })
}

/// An `oidcExchangeToken` → the OIDC client that obtains its token (Envoy Gateway's `OIDC` type: issuer,
/// optional tokenEndpoint, clientID or clientIDRef, clientSecret, scopes).
fn oidc_client(
    store: &Store,
    id: &ResourceId,
    field: &str,
    exchange: &OidcExchangeToken,
    warnings: &mut Warnings,
) -> Result<OidcClient, ConfigError> {
    if let Some(g) = exchange
        .grant_type
        .as_deref()
        .filter(|g| !g.is_empty() && *g != "client_credentials")
    {
        return Err(id.error(
            format!("{field}.grantType"),
            format!("{g:?} is not supported: the exchange uses the client_credentials grant"),
        ));
    }
    let oidc = &exchange.oidc;
    let url = |name: &str, v: &str| {
        let v = v.trim();
        if v.starts_with("https://") || v.starts_with("http://") {
            Ok(v.trim_end_matches('/').to_owned())
        } else {
            Err(id.error(
                format!("{field}.oidc.provider.{name}"),
                "must be an http(s) URL",
            ))
        }
    };
    let issuer = url("issuer", &oidc.provider.issuer)?;
    let token_endpoint = oidc
        .provider
        .token_endpoint
        .as_deref()
        .map(|t| url("tokenEndpoint", t))
        .transpose()?;
    // Plain HTTP is accepted (a sidecar or a local test provider), but off loopback it sends the client
    // secret unencrypted: say so.
    let used = token_endpoint.as_deref().unwrap_or(&issuer);
    if let Some(rest) = used.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or_default();
        let loopback = rest.starts_with("[::1]") || host == "localhost" || host.starts_with("127.");
        if !loopback {
            warnings.push(id.warning(
                format!("{field}.oidc.provider"),
                format!("{used} is plain HTTP: the client secret and tokens cross the network unencrypted"),
            ));
        }
    }
    let client_id = match (&oidc.client_id, &oidc.client_id_ref) {
        (Some(c), None) if !c.trim().is_empty() => c.trim().to_owned(),
        (None, Some(r)) => {
            let (_, v) = lookup_secret(
                store,
                id,
                &format!("{field}.oidc.clientIDRef"),
                r,
                OIDC_CLIENT_ID_KEY,
            )?;
            v.trim().to_owned()
        }
        _ => {
            return Err(id.error(
                format!("{field}.oidc"),
                "exactly one of clientID and clientIDRef is required",
            ))
        }
    };
    let secret_field = format!("{field}.oidc.clientSecret");
    let (secret, value) = lookup_secret(
        store,
        id,
        &secret_field,
        &oidc.client_secret,
        OIDC_CLIENT_SECRET_KEY,
    )?;
    Ok(OidcClient {
        issuer,
        token_endpoint,
        client_id,
        client_secret: form_safe_secret(
            id,
            &secret_field,
            &secret,
            OIDC_CLIENT_SECRET_KEY,
            &value,
        )?,
        scopes: oidc.scopes.clone(),
    })
}

/// A client secret as it will be form-encoded: a trailing newline is dropped; an empty one is an error
/// naming the Secret and key, never the value.
fn form_safe_secret(
    id: &ResourceId,
    field: &str,
    secret: &str,
    key: &str,
    value: &str,
) -> Result<SecretString, ConfigError> {
    let v = value.trim_end_matches(['\n', '\r']);
    if v.is_empty() {
        return Err(id.error(
            format!("{field}.name"),
            format!("Secret {secret} key {key} is empty"),
        ));
    }
    Ok(SecretString::new(v.to_owned()))
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
