//! Credentials that change at run time: fetched in the background, refreshed before they expire, and read
//! by the request path without waiting (DESIGN §1: the request path never waits in the common case).
//!
//! Each dynamic credential (an `AWSCredentials` policy without a credentials file, one with
//! `oidcExchangeToken`, an `AzureCredentials` policy, a `GCPCredentials` policy (key file, workload
//! identity federation or Application Default Credentials), and the node's default AWS chain for Bedrock
//! backends without a policy) is a [`LiveCredential`]: an `ArcSwap` of its current [`CredState`] that
//! one task per credential keeps fresh on the schedule of [`schedule`]. A request loads the state (one
//! atomic load, no lock, no allocation) and signs or sends with it; a refresh failure keeps the old
//! credential while it is valid and then becomes the state itself, so requests answer 401 naming the
//! backend and the cause instead of sending an expired credential. A failure never stops the node: the
//! task retries with capped backoff until the credential is no longer used.
//!
//! Why not the SDK's own credentials cache: `aws-config`'s identity cache is lazy — it refreshes when a
//! request finds the credential near expiry, and that request waits for STS or IMDS. Here the refresh runs
//! ahead of expiry on its own task, the providers of `aws-config` doing the fetching.
//!
//! The [`CredentialStore`] hands out one live credential per distinct policy and keeps it across config
//! reloads that do not change it (no refetch, no gap); one no route uses any more is dropped with the old
//! snapshot, and its task ends.

pub mod context;
pub mod fetch;
pub mod google;
pub(crate) mod google_adc;
pub(crate) mod google_sts;
pub mod oauth;
pub(crate) mod schedule;

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{Mutex, Notify};

use self::context::{FetchContext, FetchError};
use self::fetch::Fetcher;
pub use self::fetch::Token;
use crate::config::model::{AwsSource, BackendAuth, SchemaName};

/// One attempt to obtain a credential may take this long (IMDS and STS retry inside it).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long before its expiry a credential that could not be refreshed stops being used.
const EXPIRY_MARGIN: Duration = Duration::from_millis(500);
/// How long a config load waits for a new credential's first fetch before going live without it.
pub const FIRST_FETCH_WAIT: Duration = Duration::from_secs(5);

/// What requests to a backend with a dynamic credential get.
pub enum CredState {
    /// The first fetch has not finished.
    Pending,
    /// A valid credential.
    Ready(Token),
    /// Nothing valid: why (never a secret).
    Failed(String),
}

/// What `/status` shows of a credential besides its [`CredState`]: kept by the refresh task, read only by
/// the admin API (a lock off the request path).
#[derive(Debug, Clone, Default)]
struct RefreshInfo {
    /// When the credential in use stops being used (`None`: none, or it never expires).
    valid_until: Option<SystemTime>,
    /// The last refresh's failure, while the next attempt is pending (never a secret).
    last_error: Option<String>,
    /// Consecutive failed refreshes.
    failures: u32,
}

/// One credential as `/status` shows it: what it is and whether it works, never the secret.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CredentialStatus {
    /// What it is (`BackendSecurityPolicy ns/name` or the node's chain).
    pub credential: String,
    /// How it is obtained (`GCP workload identity federation`, `AWS default chain`, …).
    pub kind: &'static str,
    /// `pending` (first fetch under way), `valid`, `refreshing` (the last refresh failed; the credential in
    /// use is still valid and the refresh is retried), `failed` (nothing valid: requests answer 401) or
    /// `static` (never expires).
    pub state: &'static str,
    /// When the credential in use stops being used (Unix seconds).
    pub valid_until_unix: Option<u64>,
    /// Seconds until then.
    pub expires_in_secs: Option<u64>,
    /// Consecutive failed refreshes.
    pub failures: u32,
    /// Why it failed or is being retried.
    pub error: Option<String>,
}

/// The status of a credential in `state` with `info` at `now` (pure).
fn describe(
    state: &CredState,
    info: &RefreshInfo,
    now: SystemTime,
) -> (&'static str, Option<String>) {
    match state {
        CredState::Pending => ("pending", info.last_error.clone()),
        CredState::Failed(why) => ("failed", Some(why.clone())),
        CredState::Ready(_) if info.valid_until.is_none() => ("static", None),
        CredState::Ready(_) => match &info.last_error {
            Some(e) => ("refreshing", Some(e.clone())),
            None if info.valid_until.is_some_and(|u| u <= now) => ("refreshing", None),
            None => ("valid", None),
        },
    }
}

/// A credential kept fresh in the background.
pub struct LiveCredential {
    state: ArcSwap<CredState>,
    /// How it is obtained, for `/status`.
    kind: &'static str,
    /// Refresh bookkeeping for `/status`.
    info: std::sync::Mutex<RefreshInfo>,
    changed: Notify,
    /// Whether a config load waits for its first fetch: yes for a policy's credential; not for the
    /// node's own chain, which off AWS only fails after IMDS's timeouts.
    wait_on_load: bool,
    /// The node's region (`AWS_REGION`, else `AWS_DEFAULT_REGION`), for the node's own chain.
    region: Option<String>,
    /// What it is, for logs (`BackendSecurityPolicy ns/name` or `the node's default AWS chain`).
    what: String,
}

impl LiveCredential {
    /// A credential that never changes (long-term keys from a credentials file).
    pub fn fixed(token: Token, what: impl Into<String>) -> LiveCredential {
        LiveCredential {
            state: ArcSwap::from_pointee(CredState::Ready(token)),
            kind: "AWS credentials file (long-term keys)",
            info: std::sync::Mutex::new(RefreshInfo::default()),
            changed: Notify::new(),
            wait_on_load: false,
            region: None,
            what: what.into(),
        }
    }

    fn pending(
        what: String,
        kind: &'static str,
        wait_on_load: bool,
        region: Option<String>,
    ) -> LiveCredential {
        LiveCredential {
            state: ArcSwap::from_pointee(CredState::Pending),
            kind,
            info: std::sync::Mutex::new(RefreshInfo::default()),
            changed: Notify::new(),
            wait_on_load,
            region,
            what,
        }
    }

    /// The node's region, for a Bedrock backend without a policy whose host names none.
    pub fn region(&self) -> Option<&str> {
        self.region.as_deref()
    }

    /// The current state (lock-free).
    pub fn load(&self) -> arc_swap::Guard<Arc<CredState>> {
        self.state.load()
    }

    /// What `/status` shows of it at `now`.
    pub fn status(&self, now: SystemTime) -> CredentialStatus {
        let info = self.info.lock().map(|i| i.clone()).unwrap_or_default();
        let (state, error) = describe(&self.state.load(), &info, now);
        let valid_until = info
            .valid_until
            .filter(|_| state == "valid" || state == "refreshing");
        CredentialStatus {
            credential: self.what.clone(),
            kind: self.kind,
            state,
            valid_until_unix: valid_until
                .and_then(|u| u.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
            expires_in_secs: valid_until
                .map(|u| u.duration_since(now).unwrap_or_default().as_secs()),
            failures: info.failures,
            error,
        }
    }

    fn note(&self, valid_until: Option<SystemTime>, last_error: Option<String>, failures: u32) {
        if let Ok(mut i) = self.info.lock() {
            *i = RefreshInfo {
                valid_until,
                last_error,
                failures,
            };
        }
    }

    fn publish(&self, s: CredState) {
        self.state.store(Arc::new(s));
        self.changed.notify_waiters();
    }

    /// Waits until the first fetch has finished (either way), at most `within`.
    pub async fn first_result(&self, within: Duration) {
        let notified = self.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.wait_on_load || !matches!(**self.state.load(), CredState::Pending) {
            return;
        }
        let _ = tokio::time::timeout(within, notified).await;
    }
}

/// What `/status` shows for a backend with `auth` and, when dynamic, its `live` credential at `now`;
/// `None` for a backend without credentials.
pub fn status_of(
    auth: Option<&BackendAuth>,
    live: Option<&LiveCredential>,
    now: SystemTime,
) -> Option<CredentialStatus> {
    if let Some(live) = live {
        return Some(live.status(now));
    }
    let auth = auth?;
    let (kind, state, error) = match auth {
        BackendAuth::Unavailable { reason, .. } => {
            ("unusable policy", "failed", Some(reason.clone()))
        }
        BackendAuth::ApiKey { .. } => ("API key", "static", None),
        BackendAuth::AzureApiKey { .. } => ("Azure API key", "static", None),
        BackendAuth::AnthropicApiKey { .. } => ("Anthropic API key", "static", None),
        // Dynamic kinds always have a live credential; without one the store could not start it.
        _ => (
            "not started",
            "failed",
            Some("the credential was not started".to_owned()),
        ),
    };
    Some(CredentialStatus {
        credential: format!("BackendSecurityPolicy {}", auth.policy()),
        kind,
        state,
        valid_until_unix: None,
        expires_in_secs: None,
        failures: 0,
        error,
    })
}

/// Keeps `live` fresh with `fetcher` until nothing holds it any more.
async fn refresh_loop(live: Weak<LiveCredential>, fetcher: Fetcher, cx: Arc<FetchContext>) {
    let mut failures = 0u32;
    let mut valid_until: Option<SystemTime> = None;
    let mut last_error: Option<String> = None;
    loop {
        let Some(cred) = live.upgrade() else { return };
        // A retry scheduled at the current credential's expiry: what failed is the answer from now on.
        if let (Some(until), Some(e)) = (valid_until, &last_error) {
            if SystemTime::now() >= until {
                cred.publish(CredState::Failed(e.clone()));
                valid_until = None;
                cred.note(None, last_error.clone(), failures);
            }
        }
        // A fetch can outlast the credential in use (the SDKs retry inside it): at its expiry requests
        // get the failure, not the expired credential, while the fetch goes on.
        let fetch = tokio::time::timeout(FETCH_TIMEOUT, fetcher.fetch(&cx));
        tokio::pin!(fetch);
        let left = valid_until.map(|u| u.duration_since(SystemTime::now()).unwrap_or_default());
        let expired = async {
            match left {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let result = tokio::select! {
            r = &mut fetch => r,
            () = expired => {
                cred.publish(CredState::Failed(last_error.clone().unwrap_or_else(|| {
                    "the credential expired before its refresh finished".to_owned()
                })));
                valid_until = None;
                cred.note(None, last_error.clone(), failures);
                fetch.await
            }
        };
        let result = result.unwrap_or(Err(FetchError::Timeout(FETCH_TIMEOUT)));
        let now = SystemTime::now();
        let wait = match result {
            Ok((token, expiry)) => {
                if failures > 0 {
                    tracing::info!(credential = %cred.what, "credential refreshed after {failures} failed attempt(s)");
                }
                failures = 0;
                last_error = None;
                metrics::counter!("switchyard_credential_refreshes_total", "credential" => cred.what.clone(), "result" => "ok").increment(1);
                // Retired a little before its expiry: the task that publishes the failure can wake a few
                // ms late on a busy node, and a request must not carry the credential in that gap.
                valid_until = expiry.map(|e| e.checked_sub(EXPIRY_MARGIN).unwrap_or(e));
                cred.publish(CredState::Ready(token));
                match schedule::refresh_after(now, expiry) {
                    Some(d) => d,
                    None => return, // long-term keys: nothing to refresh
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let why = e.to_string();
                let plan = schedule::after_failure(now, valid_until, failures);
                metrics::counter!("switchyard_credential_refreshes_total", "credential" => cred.what.clone(), "result" => "error").increment(1);
                tracing::warn!(credential = %cred.what, error = %why, failures, retry_in = ?plan.retry_in, "credential refresh failed");
                if plan.publish {
                    cred.publish(CredState::Failed(why.clone()));
                    valid_until = None;
                }
                last_error = Some(why);
                plan.retry_in
            }
        };
        cred.note(valid_until, last_error.clone(), failures);
        drop(cred);
        tokio::time::sleep(wait).await;
    }
}

/// Which live credential a backend uses: its policy, or (Bedrock without one) the node's chain.
#[derive(Clone, PartialEq, Eq, Hash)]
enum StoreKey {
    Policy(BackendAuth),
    NodeAwsChain,
}

/// One live credential per distinct policy, shared by every backend that names it and kept across
/// reloads while in use.
pub struct CredentialStore {
    live: Mutex<HashMap<StoreKey, Weak<LiveCredential>>>,
    cx: Option<Arc<FetchContext>>,
}

impl Default for CredentialStore {
    fn default() -> Self {
        Self::new()
    }
}

impl CredentialStore {
    /// An empty store.
    pub fn new() -> CredentialStore {
        let cx = match oauth::TokenClient::new(FETCH_TIMEOUT) {
            Ok(t) => Some(Arc::new(FetchContext::new(t))),
            Err(e) => {
                tracing::error!(error = %e, "cannot build the token client: dynamic credentials answer 401");
                None
            }
        };
        CredentialStore {
            live: Mutex::new(HashMap::new()),
            cx,
        }
    }

    /// The live credential requests to a backend of `schema` with `auth` use, started if new; `None`
    /// when its credential is static (API keys: a header built once) or absent. Must be called within a
    /// Tokio runtime.
    pub async fn live_for(
        &self,
        schema: SchemaName,
        auth: Option<&BackendAuth>,
    ) -> Option<Arc<LiveCredential>> {
        let (key, what, fetcher) = match auth {
            Some(
                a @ BackendAuth::AwsCredentials {
                    source,
                    region,
                    policy,
                },
            ) => {
                let what = format!("BackendSecurityPolicy {policy}");
                let fetcher = match source {
                    AwsSource::Keys(keys) => {
                        return Some(Arc::new(LiveCredential::fixed(
                            Token::Aws(keys.clone()),
                            what,
                        )))
                    }
                    AwsSource::DefaultChain => Fetcher::AwsChain,
                    AwsSource::OidcExchange { oidc, role_arn } => Fetcher::AwsOidc {
                        oidc: oidc.clone(),
                        role_arn: role_arn.clone(),
                        region: region.clone(),
                        session: session_name(policy),
                    },
                };
                (StoreKey::Policy(a.clone()), what, fetcher)
            }
            Some(
                a @ BackendAuth::AzureCredentials {
                    client_id,
                    tenant_id,
                    secret,
                    policy,
                },
            ) => (
                StoreKey::Policy(a.clone()),
                format!("BackendSecurityPolicy {policy}"),
                Fetcher::Azure {
                    client_id: client_id.clone(),
                    tenant_id: tenant_id.clone(),
                    secret: secret.clone(),
                },
            ),
            Some(a @ BackendAuth::GcpCredentials { source, policy, .. }) => (
                StoreKey::Policy(a.clone()),
                format!("BackendSecurityPolicy {policy}"),
                Fetcher::Gcp {
                    source: source.clone(),
                },
            ),
            None if schema.is_aws() => (
                StoreKey::NodeAwsChain,
                "the node's default AWS credential chain".to_owned(),
                Fetcher::AwsChain,
            ),
            _ => return None,
        };
        let mut live = self.live.lock().await;
        live.retain(|_, w| w.strong_count() > 0);
        if let Some(c) = live.get(&key).and_then(Weak::upgrade) {
            return Some(c);
        }
        let node_chain = key == StoreKey::NodeAwsChain;
        let region = node_chain
            .then(|| {
                ["AWS_REGION", "AWS_DEFAULT_REGION"]
                    .into_iter()
                    .find_map(|v| std::env::var(v).ok().filter(|r| !r.trim().is_empty()))
            })
            .flatten();
        let cred = Arc::new(LiveCredential::pending(
            what,
            fetcher.kind(),
            !node_chain,
            region,
        ));
        match &self.cx {
            Some(cx) => {
                tokio::spawn(refresh_loop(Arc::downgrade(&cred), fetcher, cx.clone()));
            }
            None => cred.publish(CredState::Failed(
                "the node could not build its token client".into(),
            )),
        }
        live.insert(key, Arc::downgrade(&cred));
        Some(cred)
    }
}

impl CredentialStore {
    /// Starts the credentials of every policy in `auths` at once and waits (together, at most
    /// [`FIRST_FETCH_WAIT`]) for their first fetch, so that a config goes live with them ready. Keep the
    /// result until the snapshot holds them.
    pub async fn prepare(&self, auths: &[&BackendAuth]) -> Vec<Arc<LiveCredential>> {
        let mut started = Vec::new();
        for auth in auths {
            // The schema matters only without a policy.
            if let Some(c) = self.live_for(SchemaName::OpenAI, Some(*auth)).await {
                started.push(c);
            }
        }
        futures_util::future::join_all(started.iter().map(|c| c.first_result(FIRST_FETCH_WAIT)))
            .await;
        started
    }
}

/// An STS session name for a policy (`[\w+=,.@-]{2,64}`), so CloudTrail names who assumed the role.
fn session_name(policy: &str) -> String {
    let mut s: String = format!("switchyard-{policy}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@-_".contains(c) {
                c
            } else {
                '.'
            }
        })
        .collect();
    s.truncate(64);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_states() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let s = Duration::from_secs;
        let bearer = || CredState::Ready(Token::Bearer(http::HeaderValue::from_static("Bearer x")));
        let info = |valid: Option<u64>, err: Option<&str>| RefreshInfo {
            valid_until: valid.map(|v| t0 + s(v)),
            last_error: err.map(str::to_owned),
            failures: u32::from(err.is_some()),
        };
        for (name, state, info, want) in [
            (
                "first fetch under way",
                CredState::Pending,
                info(None, None),
                ("pending", None),
            ),
            ("valid", bearer(), info(Some(60), None), ("valid", None)),
            (
                "a failed refresh while still valid",
                bearer(),
                info(Some(60), Some("STS said no")),
                ("refreshing", Some("STS said no")),
            ),
            (
                "past its validity, refresh late",
                bearer(),
                info(Some(0), None),
                ("refreshing", None),
            ),
            (
                "nothing valid",
                CredState::Failed("STS said no".into()),
                info(None, Some("STS said no")),
                ("failed", Some("STS said no")),
            ),
            (
                "never expires",
                bearer(),
                info(None, None),
                ("static", None),
            ),
        ] {
            let (st, err) = describe(&state, &info, t0);
            assert_eq!((st, err.as_deref()), want, "{name}");
        }
    }

    #[test]
    fn session_names_are_what_sts_accepts() {
        assert_eq!(
            session_name("default/bedrock"),
            "switchyard-default.bedrock"
        );
        let long = session_name(&"n".repeat(100));
        assert_eq!(long.len(), 64);
    }

    #[tokio::test]
    async fn a_static_credential_is_ready_and_api_keys_are_not_live() {
        use crate::config::model::{AwsKeys, SecretString};
        let store = CredentialStore::new();
        let keys = AwsKeys {
            access_key_id: SecretString::new("AKID"),
            secret_access_key: SecretString::new("s"),
            session_token: None,
        };
        let aws = BackendAuth::AwsCredentials {
            source: AwsSource::Keys(keys),
            region: None,
            policy: "p".into(),
        };
        let live = store
            .live_for(SchemaName::AwsBedrock, Some(&aws))
            .await
            .expect("live");
        assert!(matches!(**live.load(), CredState::Ready(Token::Aws(_))));
        let key = BackendAuth::ApiKey {
            key: SecretString::new("k"),
            policy: "p".into(),
        };
        assert!(store
            .live_for(SchemaName::OpenAI, Some(&key))
            .await
            .is_none());
        assert!(store.live_for(SchemaName::OpenAI, None).await.is_none());
    }
}
