//! The resolved, validated configuration: what the YAML resources mean once every reference is followed.
//!
//! The loader (`config::load`) turns Envoy AI Gateway resources into these types; everything else in the
//! node (routing snapshot, health, proxy) reads only these, never the raw YAML structs. Field names follow the
//! YAML names so a reader can grep from a YAML key to the code that honours it.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// A whole loaded configuration (one file or one directory of files).
#[derive(Debug, Clone)]
pub struct Config {
    /// The files read, in load order.
    pub sources: Vec<PathBuf>,
    /// Listener port from a `Gateway` resource, if one was given (the `--listen` flag wins when set).
    pub gateway_port: Option<u16>,
    /// Routes in load order.
    pub routes: Vec<Route>,
    /// Every backend referenced by a route, keyed by `namespace/name` of the `Backend` resource.
    pub backends: BTreeMap<String, Backend>,
    /// Non-fatal findings (skipped unknown kinds, accepted-but-ignored fields, inferred schemas).
    pub warnings: Vec<String>,
}

/// The API schema a client speaks or a backend expects (`schema.name` in the YAML).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SchemaName {
    /// `OpenAI`: passthrough.
    OpenAI,
    /// `AWSBedrock`: Converse / ConverseStream.
    AwsBedrock,
    /// `AzureOpenAI`: deployments path and `api-key`.
    AzureOpenAI,
    /// `Anthropic`: `/v1/messages`.
    Anthropic,
    /// `AWSAnthropic`: Claude on Bedrock through InvokeModel / InvokeModelWithResponseStream with the
    /// Anthropic Messages body, SigV4-signed like `AWSBedrock`.
    AwsAnthropic,
    /// `Cohere`: v2 Chat (`/v2/chat`) for OpenAI chat clients.
    Cohere,
    /// `GCPAnthropic`: Claude on Vertex AI through rawPredict / streamRawPredict with the Anthropic
    /// Messages body; project and region from the backend's `GCPCredentials` policy.
    GcpAnthropic,
    /// `GCPVertexAI`: Gemini through generateContent / streamGenerateContent for OpenAI chat clients;
    /// project and region from the backend's `GCPCredentials` policy.
    GcpVertexAI,
}

impl SchemaName {
    /// The spelling used in YAML (`schema.name`).
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaName::OpenAI => "OpenAI",
            SchemaName::AwsBedrock => "AWSBedrock",
            SchemaName::AzureOpenAI => "AzureOpenAI",
            SchemaName::Anthropic => "Anthropic",
            SchemaName::AwsAnthropic => "AWSAnthropic",
            SchemaName::Cohere => "Cohere",
            SchemaName::GcpAnthropic => "GCPAnthropic",
            SchemaName::GcpVertexAI => "GCPVertexAI",
        }
    }

    /// Whether requests to the schema are SigV4-signed for Bedrock (AWS credentials, no API key).
    pub fn is_aws(self) -> bool {
        matches!(self, SchemaName::AwsBedrock | SchemaName::AwsAnthropic)
    }

    /// Whether the schema takes the Anthropic Messages body (`/anthropic/v1/messages` can be routed to it
    /// as it is).
    pub fn speaks_messages(self) -> bool {
        matches!(
            self,
            SchemaName::Anthropic | SchemaName::AwsAnthropic | SchemaName::GcpAnthropic
        )
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A schema plus its optional version (`schema.version`, e.g. the Azure `api-version`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    /// Which API.
    pub name: SchemaName,
    /// Optional version string, passed through to translators.
    pub version: Option<String>,
}

/// One `AIGatewayRoute`.
#[derive(Debug, Clone)]
pub struct Route {
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace` (default `default`).
    pub namespace: String,
    /// `spec.schema`: what clients speak (OpenAI).
    pub input_schema: Schema,
    /// `spec.rules`, in order; the first whose match holds wins.
    pub rules: Vec<Rule>,
    /// The attached `BackendTrafficPolicy` (defaults when none targets this route).
    pub traffic: TrafficPolicy,
    /// Name of the `BackendTrafficPolicy` applied, if any (for `validate` output).
    pub traffic_policy_name: Option<String>,
}

/// One `spec.rules[]` entry.
#[derive(Debug, Clone)]
pub struct Rule {
    /// `matches[]`: the rule applies when any one of them holds (an empty list matches everything).
    pub matches: Vec<RuleMatch>,
    /// `backendRefs[]`, in YAML order.
    pub backend_refs: Vec<BackendRef>,
    /// `timeouts.request` (default 60 s): covers every attempt and backoff of one request.
    pub request_timeout: Duration,
    /// `modelsOwnedBy` (default "Envoy AI Gateway"), reported by `GET /v1/models`.
    pub models_owned_by: String,
    /// `GET /v1/models` `created` (Unix seconds): `modelsCreatedAt`, else the route's
    /// `metadata.creationTimestamp`, as Envoy AI Gateway does; `None` = when the node loaded the config.
    pub models_created_at: Option<u64>,
    /// `streamIdleTimeout`: an attempt silent this long, before or after its headers, is cut (Envoy's
    /// `per_try_idle_timeout`).
    pub stream_idle_timeout: Option<Duration>,
}

/// One `matches[]` entry: every header condition must hold.
#[derive(Debug, Clone)]
pub struct RuleMatch {
    /// `headers[]`.
    pub headers: Vec<HeaderMatch>,
}

/// One header condition.
#[derive(Debug, Clone)]
pub struct HeaderMatch {
    /// Header name, lower-cased.
    pub name: String,
    /// How the value is compared.
    pub value: HeaderMatchValue,
}

/// `type: Exact` or `type: RegularExpression`.
#[derive(Debug, Clone)]
pub enum HeaderMatchValue {
    /// Byte-for-byte equality.
    Exact(String),
    /// A regular expression that must match the whole value (Gateway API semantics), compiled at load.
    RegularExpression(regex::Regex),
}

/// One `backendRefs[]` entry, resolved.
#[derive(Debug, Clone)]
pub struct BackendRef {
    /// The name as written in the route (an `AIServiceBackend` or a `Backend`).
    pub ref_name: String,
    /// Key into [`Config::backends`] (`namespace/name` of the `Backend`).
    pub backend: String,
    /// `priority` (default 0; lower is preferred).
    pub priority: u32,
    /// `weight` (default 1; 0 = never chosen).
    pub weight: u32,
    /// The schema the backend expects.
    pub schema: Schema,
    /// How the schema was decided (for `validate`): from an AIServiceBackend, the provider host, or the route.
    pub schema_source: SchemaSource,
    /// `modelNameOverride`: the model sent to this backend instead of the client's (`None`: the client's).
    pub model_name_override: Option<String>,
    /// `headerMutation` and `bodyMutation` of the AIServiceBackend and of this backendRef, merged (the
    /// backendRef's win where both touch the same header or member); `None` when neither has any.
    pub mutation: Option<std::sync::Arc<Mutation>>,
}

/// Edits to every request a backendRef sends (Envoy AI Gateway's `headerMutation` / `bodyMutation`),
/// validated and merged at load. Applied after translation and before credentials, so a mutation never
/// replaces the backend's credential; removals first, then sets.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Mutation {
    /// Header names to remove (lowercase, deduplicated).
    pub header_remove: Vec<http::HeaderName>,
    /// Headers to overwrite or add. Values are marked sensitive: they may carry keys.
    pub header_set: Vec<(http::HeaderName, http::HeaderValue)>,
    /// Top-level body members to remove.
    pub body_remove: Vec<String>,
    /// Top-level body members to overwrite or add.
    pub body_set: Vec<(String, serde_json::Value)>,
}

impl Mutation {
    /// Whether the body is touched (it is parsed and re-serialised only then).
    pub fn edits_body(&self) -> bool {
        !self.body_remove.is_empty() || !self.body_set.is_empty()
    }
}

/// Where a backend's schema came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaSource {
    /// `AIServiceBackend.spec.schema`.
    AiServiceBackend,
    /// Inferred from a well-known provider hostname (e.g. `bedrock-runtime.<region>.amazonaws.com`).
    ProviderHost,
    /// Defaulted to the route's input schema.
    RouteInput,
}

/// One `Backend` resource, resolved.
#[derive(Debug, Clone)]
pub struct Backend {
    /// `namespace/name`.
    pub key: String,
    /// `metadata.name`.
    pub name: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `spec.endpoints[]`.
    pub endpoints: Vec<Endpoint>,
    /// TLS towards this backend (port 443 or a `BackendTLSPolicy`), `None` for plain HTTP.
    pub tls: Option<UpstreamTls>,
    /// Credentials from a `BackendSecurityPolicy`, if one applies.
    pub auth: Option<BackendAuth>,
}

/// One endpoint of a `Backend`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `fqdn: {hostname, port}`: resolved at connect time (and re-resolved periodically).
    Fqdn {
        /// DNS name; also the Host header and TLS server name.
        hostname: String,
        /// Port.
        port: u16,
    },
    /// `ip: {address, port}`.
    Ip {
        /// Address.
        address: IpAddr,
        /// Port.
        port: u16,
    },
}

impl Endpoint {
    /// The host part used for the Host header and SNI.
    pub fn host(&self) -> String {
        match self {
            Endpoint::Fqdn { hostname, .. } => hostname.clone(),
            Endpoint::Ip { address, .. } => address.to_string(),
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        match self {
            Endpoint::Fqdn { port, .. } | Endpoint::Ip { port, .. } => *port,
        }
    }

    /// `host:port`, with IPv6 addresses bracketed.
    pub fn authority(&self) -> String {
        match self {
            Endpoint::Ip {
                address: IpAddr::V6(a),
                port,
            } => format!("[{a}]:{port}"),
            other => format!("{}:{}", other.host(), other.port()),
        }
    }
}

/// TLS settings for an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamTls {
    /// Server name to verify (`BackendTLSPolicy.spec.validation.hostname`, else the endpoint host).
    pub server_name: Option<String>,
    /// Extra CA certificates (PEM) to trust besides the webpki roots (from a file or a ConfigMap/Secret).
    pub ca_pem: Option<String>,
    /// Where the CA came from, for messages.
    pub ca_source: Option<String>,
}

/// A secret value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }
    /// The secret itself; call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString(<redacted>)")
    }
}

/// Credentials attached to a backend by a `BackendSecurityPolicy`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum BackendAuth {
    /// `type: APIKey`: sent as `Authorization: Bearer <key>`.
    ApiKey {
        /// The key.
        key: SecretString,
        /// The policy that supplied it (`namespace/name`), for messages.
        policy: String,
    },
    /// `type: AzureAPIKey`: sent as the `api-key` header.
    AzureApiKey {
        /// The key.
        key: SecretString,
        /// The policy (`namespace/name`).
        policy: String,
    },
    /// `type: AnthropicAPIKey`: sent as the `x-api-key` header.
    AnthropicApiKey {
        /// The key.
        key: SecretString,
        /// The policy (`namespace/name`).
        policy: String,
    },
    /// `type: AWSCredentials`: requests are signed with SigV4.
    AwsCredentials {
        /// Where the keys come from: the credentials file's profile, an OIDC exchange, or the default chain.
        source: AwsSource,
        /// `awsCredentials.region` (else the region of the backend host).
        region: Option<String>,
        /// The policy (`namespace/name`).
        policy: String,
    },
    /// `type: AzureCredentials`: an Entra ID access token, sent as `Authorization: Bearer`.
    AzureCredentials {
        /// `azureCredentials.clientID`.
        client_id: String,
        /// `azureCredentials.tenantID`.
        tenant_id: String,
        /// How the client proves itself to Entra ID.
        secret: AzureSecret,
        /// The policy (`namespace/name`).
        policy: String,
    },
    /// `type: GCPCredentials`: a Google OAuth2 access token, sent as `Authorization: Bearer`, from a
    /// service-account key, workload identity federation or Application Default Credentials.
    GcpCredentials {
        /// `gcpCredentials.projectName`: the project in Vertex AI paths.
        project: String,
        /// `gcpCredentials.region`: the location in Vertex AI paths.
        region: String,
        /// Where the access token comes from.
        source: GcpSource,
        /// The policy (`namespace/name`).
        policy: String,
    },
    /// A policy type this node does not support yet (named), or whose secret could not be resolved:
    /// requests to the backend answer 401 instead of being sent unsigned.
    Unavailable {
        /// Why, without the secret.
        reason: String,
        /// The policy (`namespace/name`).
        policy: String,
    },
}

impl BackendAuth {
    /// The Vertex AI project and region of a `GCPCredentials` policy (they are in every Vertex path).
    pub fn gcp_location(&self) -> Option<GcpLocation<'_>> {
        match self {
            BackendAuth::GcpCredentials {
                project, region, ..
            } => Some(GcpLocation { project, region }),
            _ => None,
        }
    }

    /// The policy that supplied the credentials (`namespace/name`).
    pub fn policy(&self) -> &str {
        match self {
            BackendAuth::ApiKey { policy, .. }
            | BackendAuth::AzureApiKey { policy, .. }
            | BackendAuth::AnthropicApiKey { policy, .. }
            | BackendAuth::AwsCredentials { policy, .. }
            | BackendAuth::AzureCredentials { policy, .. }
            | BackendAuth::GcpCredentials { policy, .. }
            | BackendAuth::Unavailable { policy, .. } => policy,
        }
    }
}

/// Where an `AWSCredentials` policy's keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AwsSource {
    /// `credentialsFile`: fixed keys from a profile of the file in a Secret.
    Keys(AwsKeys),
    /// `oidcExchangeToken`: an OIDC client-credentials token exchanged at STS
    /// (`AssumeRoleWithWebIdentity`) for temporary keys.
    OidcExchange {
        /// The OIDC client that obtains the web identity token.
        oidc: OidcClient,
        /// `awsRoleArn`: the role assumed.
        role_arn: String,
    },
    /// Neither: the standard AWS default chain of the node (environment, shared files and profiles, web
    /// identity, EKS pod identity, ECS, IMDSv2, `credential_process`), as upstream's current release does.
    DefaultChain,
}

/// How an `AzureCredentials` policy authenticates to Entra ID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AzureSecret {
    /// `clientSecretRef`: the client-credentials grant with a client secret.
    ClientSecret(SecretString),
    /// `oidcExchangeToken`: an OIDC token sent as the federated `client_assertion`.
    Oidc(OidcClient),
}

/// Where Vertex AI requests go: `gcpCredentials.projectName` and `region`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcpLocation<'a> {
    /// The project.
    pub project: &'a str,
    /// The region (location).
    pub region: &'a str,
}

/// Where a `GCPCredentials` policy's access token comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GcpSource {
    /// `credentialsFile`: the service account (`service_account.json` of its Secret), JWT bearer grant.
    ServiceAccount(GcpServiceAccount),
    /// `workloadIdentityFederationConfig`: an OIDC token exchanged at Google STS, then optionally
    /// impersonating a service account through IAM Credentials.
    Federation(Box<GcpFederation>),
    /// Neither: Application Default Credentials of the node, resolved at each fetch in Google's order.
    ApplicationDefault,
}

/// A `workloadIdentityFederationConfig`, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GcpFederation {
    /// `oidcExchangeToken`: the OIDC client whose token is the STS subject token.
    pub oidc: OidcClient,
    /// The STS audience: `//iam.googleapis.com/projects/{projectID}/locations/global/workloadIdentityPools/{pool}/providers/{provider}`.
    pub audience: String,
    /// `serviceAccountImpersonation.serviceAccountName` as an email, when set.
    pub impersonate: Option<String>,
}

/// A Google service account from its key file (the JSON `gcloud iam service-accounts keys create`
/// writes), checked at load: an RSA private key in PKCS#8 PEM that signs the JWT bearer grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GcpServiceAccount {
    /// `client_email`: the JWT's issuer.
    pub client_email: String,
    /// `private_key_id`: the JWT header's `kid`.
    pub private_key_id: Option<String>,
    /// `private_key` (PKCS#8 PEM).
    pub private_key: SecretString,
    /// `token_uri`: where the grant is sent (and the JWT's audience).
    pub token_uri: String,
}

/// An OIDC client (`oidcExchangeToken.oidc`, Envoy Gateway's `OIDC` type) that obtains tokens with the
/// client-credentials grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OidcClient {
    /// `provider.issuer`: its `/.well-known/openid-configuration` names the token endpoint.
    pub issuer: String,
    /// `provider.tokenEndpoint`, when given (no discovery then).
    pub token_endpoint: Option<String>,
    /// `clientID` (or the `client-id` key of `clientIDRef`'s Secret).
    pub client_id: String,
    /// The `client-secret` key of `clientSecret`'s Secret.
    pub client_secret: SecretString,
    /// `scopes`.
    pub scopes: Vec<String>,
}

/// AWS access keys. Every part is a [`SecretString`], so `Debug` never shows them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AwsKeys {
    /// `aws_access_key_id`.
    pub access_key_id: SecretString,
    /// `aws_secret_access_key`.
    pub secret_access_key: SecretString,
    /// `aws_session_token` (temporary credentials).
    pub session_token: Option<SecretString>,
}

impl AwsKeys {
    /// Keys from an AWS shared credentials file (INI) for `profile`. AWS docs ("Configuration and
    /// credential file settings"): `[profile]` sections with `aws_access_key_id`,
    /// `aws_secret_access_key`, optional `aws_session_token`; `#` and `;` start comments. The error never
    /// contains a value from the file.
    pub fn from_credentials_file(text: &str, profile: &str) -> Result<AwsKeys, String> {
        let mut section: Option<String> = None;
        let mut found = false;
        let (mut id, mut secret, mut token) = (None, None, None);
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                let name = name.trim();
                let name = name.strip_prefix("profile ").unwrap_or(name).trim();
                found |= name == profile;
                section = Some(name.to_owned());
                continue;
            }
            if section.as_deref() != Some(profile) {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "aws_access_key_id" => id = Some(v.to_owned()),
                "aws_secret_access_key" => secret = Some(v.to_owned()),
                "aws_session_token" => token = Some(v.to_owned()),
                _ => {}
            }
        }
        if !found {
            return Err(format!("the credentials file has no profile [{profile}]"));
        }
        match (
            id.filter(|s| !s.is_empty()),
            secret.filter(|s| !s.is_empty()),
        ) {
            (Some(id), Some(secret)) => Ok(AwsKeys {
                access_key_id: SecretString::new(id),
                secret_access_key: SecretString::new(secret),
                session_token: token.filter(|s| !s.is_empty()).map(SecretString::new),
            }),
            _ => Err(format!(
                "profile [{profile}] lacks aws_access_key_id or aws_secret_access_key"
            )),
        }
    }

    /// Keys from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` as read by `var`
    /// (the process environment in production).
    pub fn from_env_with(var: impl Fn(&str) -> Option<String>) -> Option<AwsKeys> {
        let get = |k: &str| var(k).filter(|v| !v.is_empty());
        Some(AwsKeys {
            access_key_id: SecretString::new(get("AWS_ACCESS_KEY_ID")?),
            secret_access_key: SecretString::new(get("AWS_SECRET_ACCESS_KEY")?),
            session_token: get("AWS_SESSION_TOKEN").map(SecretString::new),
        })
    }

    /// Keys from the process environment.
    pub fn from_env() -> Option<AwsKeys> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }
}

/// Retry triggers (`retryOn.triggers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RetryTrigger {
    /// `5xx`: any 5xx, connect failure, reset, per-try timeout.
    FiveXx,
    /// `gateway-error`: 502/503/504, connect failure, reset, per-try timeout.
    GatewayError,
    /// `reset`: connection reset/closed before response headers, or a per-try timeout.
    Reset,
    /// `reset-before-request`: reset before the request was sent.
    ResetBeforeRequest,
    /// `connect-failure`: TCP connect (or TLS handshake) failed or timed out.
    ConnectFailure,
    /// `retriable-4xx`: 409.
    Retriable4xx,
    /// `refused-stream`: HTTP/2 REFUSED_STREAM.
    RefusedStream,
    /// `retriable-status-codes`: the statuses in `httpStatusCodes`.
    RetriableStatusCodes,
}

impl RetryTrigger {
    /// Parses the YAML spelling.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "5xx" => RetryTrigger::FiveXx,
            "gateway-error" => RetryTrigger::GatewayError,
            "reset" => RetryTrigger::Reset,
            "reset-before-request" => RetryTrigger::ResetBeforeRequest,
            "connect-failure" => RetryTrigger::ConnectFailure,
            "retriable-4xx" => RetryTrigger::Retriable4xx,
            "refused-stream" => RetryTrigger::RefusedStream,
            "retriable-status-codes" => RetryTrigger::RetriableStatusCodes,
            _ => return None,
        })
    }

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RetryTrigger::FiveXx => "5xx",
            RetryTrigger::GatewayError => "gateway-error",
            RetryTrigger::Reset => "reset",
            RetryTrigger::ResetBeforeRequest => "reset-before-request",
            RetryTrigger::ConnectFailure => "connect-failure",
            RetryTrigger::Retriable4xx => "retriable-4xx",
            RetryTrigger::RefusedStream => "refused-stream",
            RetryTrigger::RetriableStatusCodes => "retriable-status-codes",
        }
    }
}

/// `BackendTrafficPolicy.spec.retry`, with Envoy's defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// `numRetries` (default 2): attempts ≤ numRetries + 1.
    pub num_retries: u32,
    /// `retryOn.triggers` (default: connect-failure, refused-stream, retriable-status-codes).
    pub triggers: Vec<RetryTrigger>,
    /// `retryOn.httpStatusCodes` (default `[503]` when `retryOn` is absent).
    pub http_status_codes: Vec<u16>,
    /// `perRetry.backOff.baseInterval` (Envoy default 25 ms).
    pub base_interval: Duration,
    /// `perRetry.backOff.maxInterval` (default 10 × base).
    pub max_interval: Duration,
    /// `perRetry.timeout`: bounds one attempt until its response headers.
    pub per_try_timeout: Option<Duration>,
    /// `numAttemptsPerPriority`: exclude a priority after this many attempts on it.
    pub num_attempts_per_priority: Option<u32>,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            num_retries: 2,
            triggers: vec![
                RetryTrigger::ConnectFailure,
                RetryTrigger::RefusedStream,
                RetryTrigger::RetriableStatusCodes,
            ],
            http_status_codes: vec![503],
            base_interval: Duration::from_millis(25),
            max_interval: Duration::from_millis(250),
            per_try_timeout: None,
            num_attempts_per_priority: None,
        }
    }
}

/// `healthCheck.passive` with Envoy's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveHealthConfig {
    /// `consecutive5XxErrors` (default 5; 0 never fires).
    pub consecutive_5xx: u32,
    /// `consecutiveGatewayErrors` (unset = off, represented as 0).
    pub consecutive_gateway_errors: u32,
    /// `consecutiveLocalOriginFailures` (default 5).
    pub consecutive_local_origin_failures: u32,
    /// `splitExternalLocalOriginErrors` (default false).
    pub split_external_local_origin_errors: bool,
    /// `interval` (default 3 s): the sweep period.
    pub interval: Duration,
    /// `baseEjectionTime` (default 30 s).
    pub base_ejection_time: Duration,
    /// `maxEjectionPercent` (default 10).
    pub max_ejection_percent: u32,
    /// `alwaysEjectOneEndpoint` (default false).
    pub always_eject_one_endpoint: bool,
    /// Cap on one ejection (Envoy default 300 s).
    pub max_ejection_time: Duration,
}

impl Default for PassiveHealthConfig {
    fn default() -> Self {
        PassiveHealthConfig {
            consecutive_5xx: 5,
            consecutive_gateway_errors: 0,
            consecutive_local_origin_failures: 5,
            split_external_local_origin_errors: false,
            interval: Duration::from_secs(3),
            base_ejection_time: Duration::from_secs(30),
            max_ejection_percent: 10,
            always_eject_one_endpoint: false,
            max_ejection_time: Duration::from_secs(300),
        }
    }
}

/// `healthCheck.active` (HTTP probes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveHealthConfig {
    /// Probe path (recommended: `/v1/models`).
    pub path: String,
    /// Probe period.
    pub interval: Duration,
    /// Probe timeout.
    pub timeout: Duration,
    /// Failed probes before ejection.
    pub unhealthy_threshold: u32,
    /// Passing probes before return.
    pub healthy_threshold: u32,
    /// Statuses that count as passing (default `[200]`).
    pub expected_statuses: Vec<u16>,
}

/// Everything a `BackendTrafficPolicy` says that this node honours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficPolicy {
    /// `retry`: `None` means no retry at all.
    pub retry: Option<RetryConfig>,
    /// `healthCheck.passive` (defaults apply even without the block, as in Envoy Gateway: outlier
    /// detection is only enabled when the block is present).
    pub passive: Option<PassiveHealthConfig>,
    /// `healthCheck.active`.
    pub active: Option<ActiveHealthConfig>,
    /// `healthCheck.panicThreshold` (default 50).
    pub panic_threshold: u32,
    /// `circuitBreaker.maxParallelRetries` (default 1024).
    pub max_parallel_retries: u32,
    /// `timeout.tcp.connectTimeout` (default 10 s).
    pub connect_timeout: Duration,
    /// `switchyard.io/first-token-timeout` (extension): bounds each attempt until its first content (a
    /// non-streamed answer: its headers); on expiry the attempt is retried like a reset.
    pub first_token_timeout: Option<Duration>,
    /// `switchyard.io/rate-limit-cooldown` (extension, off when `None`): a 429 with `Retry-After` cools
    /// its host down for that long, at most this, on every node; the 429 is retried elsewhere.
    pub rate_limit_cooldown: Option<Duration>,
}

impl Default for TrafficPolicy {
    fn default() -> Self {
        TrafficPolicy {
            retry: None,
            passive: None,
            active: None,
            panic_threshold: 50,
            max_parallel_retries: 1024,
            connect_timeout: Duration::from_secs(10),
            first_token_timeout: None,
            rate_limit_cooldown: None,
        }
    }
}
