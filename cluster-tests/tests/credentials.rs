//! Issue 16 item 4 through real `switchyard` and `mock-provider` processes: credential chains fetched at
//! run time and refreshed before they expire.
//!
//! The mock provider plays both the model provider and the credential services (ECS container
//! credentials, STS, an OIDC provider, Entra ID), issuing credentials a few seconds long; its Bedrock
//! SigV4 check and Azure bearer check refuse a credential once expired. So "every request answered 200
//! across several expiries" shows the node refreshed each credential before it expired, and the counts
//! of credentials issued show it did so more than once. The node finds the services through the
//! variables the AWS and Azure SDKs honour (`AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_ENDPOINT_URL_STS`,
//! `AZURE_AUTHORITY_HOST`); `AWS_EC2_METADATA_DISABLED` and empty shared files keep the machine's own
//! AWS setup out of the chain.

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    http_get, http_post_json, http_request, poll_until, run_bounded, MockProvider, SwitchyardNode,
};
use switchyard_cluster_tests::mock::credentials::{
    ENTRA_CLIENT_SECRET, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";
const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Lifetime of every credential the mock issues: the node refreshes at half of it.
const LIFETIME_SECS: u64 = 3;
/// How long traffic runs: several lifetimes.
const TRAFFIC: Duration = Duration::from_secs(3 * LIFETIME_SECS + 1);

fn config(schema: &str, policy: &str, extra_docs: &str, port: u16) -> String {
    format!(
        "apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: route
  namespace: default
spec:
  schema:
    name: OpenAI
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: {MODEL}
      backendRefs:
        - name: provider
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: provider
  namespace: default
spec:
  schema:
    name: {schema}
  backendRef:
    name: provider-be
    kind: Backend
    group: gateway.envoyproxy.io
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: provider-be
  namespace: default
spec:
  endpoints:
    - ip:
        address: 127.0.0.1
        port: {port}
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata:
  name: creds
  namespace: default
spec:
  targetRefs:
    - group: aigateway.envoyproxy.io
      kind: AIServiceBackend
      name: provider
{policy}{extra_docs}"
    )
}

const OIDC_SECRET_DOC: &str = "---
apiVersion: v1
kind: Secret
metadata:
  name: oidc
  namespace: default
stringData:
  client-secret: oidc-test-secret-7
";

fn oidc_block(indent: &str, issuer: &str) -> String {
    format!(
        "{indent}oidcExchangeToken:
{indent}  oidc:
{indent}    provider:
{indent}      issuer: {issuer}
{indent}    clientID: {OIDC_CLIENT_ID}
{indent}    clientSecret:
{indent}      name: oidc
"
    )
}

/// A node whose AWS chain sees only what `env` gives it.
async fn start(yaml: &str, env: &[(&str, &str)]) -> anyhow::Result<SwitchyardNode> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let config_path = dir.path().join("config.yaml");
    std::fs::write(&config_path, yaml).context("write config")?;
    let empty = dir.path().join("empty-aws-file");
    std::fs::write(&empty, "").context("write empty file")?;
    let empty = empty.display().to_string();
    // Empty counts as unset for aws-config's environment provider: a developer's own keys stay out.
    let mut all: Vec<(&str, &str)> = vec![
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_SESSION_TOKEN", ""),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_CONFIG_FILE", &empty),
        ("AWS_SHARED_CREDENTIALS_FILE", &empty),
    ];
    all.extend_from_slice(env);
    SwitchyardNode::start_file_env(config_path, "127.0.0.1:0", "127.0.0.1:0", &[], dir, &all).await
}

fn chat() -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})
}

/// Sends requests every 20 ms for `TRAFFIC`; every one must answer 200. Returns how many were sent.
async fn steady_traffic(node: &SwitchyardNode) -> anyhow::Result<usize> {
    let url = node.url("/v1/chat/completions");
    let end = tokio::time::Instant::now() + TRAFFIC;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut sent = 0;
    while tokio::time::Instant::now() < end {
        tick.tick().await;
        let r = http_post_json(&url, &chat()).await?;
        sent += 1;
        anyhow::ensure!(
            r.status == 200,
            "request {sent} failed: {} {}\n{}",
            r.status,
            r.text(),
            node.logs()
        );
    }
    Ok(sent)
}

fn issued(status: &Value, kind: &str) -> u64 {
    status["issued"][kind].as_u64().unwrap_or(0)
}

/// A refresh failure: once the credential in use has expired, requests answer 401 naming the backend
/// and the cause, never a secret; the node stays up, and recovers when the service does.
async fn refresh_failure_is_a_clear_401_then_recovers(
    node: &SwitchyardNode,
    mock: &MockProvider,
    cause: &str,
    secrets: &[&str],
) -> anyhow::Result<()> {
    mock.set_credentials(json!({"lifetime_secs": LIFETIME_SECS, "fail": true}))
        .await?;
    let url = node.url("/v1/chat/completions");
    let r = poll_until(
        Duration::from_secs(LIFETIME_SECS + 5),
        Duration::from_millis(50),
        || async {
            let r = http_post_json(&url, &chat()).await.ok()?;
            (r.status != 200).then_some(r)
        },
    )
    .await
    .context("requests kept succeeding after the credential service failed")?;
    // The first request that does not succeed is a 401 from the gateway (never a provider's refusal of
    // an expired credential) ...
    anyhow::ensure!(r.status == 401, "{} {}", r.status, r.text());
    let v = r.json()?;
    let message = v["error"]["message"].as_str().unwrap_or_default();
    anyhow::ensure!(
        v["error"]["code"] == "missing_backend_credential"
            && message.contains("default/provider-be")
            && message.contains("credential refresh failed"),
        "{v}"
    );
    // ... and once the failed refresh has answered, the 401 names its cause.
    let r = poll_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        || async {
            let r = http_post_json(&url, &chat()).await.ok()?;
            (r.status == 401 && r.text().contains(cause)).then_some(r)
        },
    )
    .await
    .with_context(|| format!("no 401 naming the cause {cause:?}"))?;
    eprintln!("a refresh failure answers: {}", r.text());
    let status = http_get(&node.admin_url("/status")).await?.text();
    for secret in secrets.iter().chain(&["swysecret", "swy."]) {
        anyhow::ensure!(
            !r.text().contains(secret) && !status.contains(secret) && !node.logs().contains(secret),
            "a secret ({secret}) leaked"
        );
    }
    anyhow::ensure!(
        http_get(&node.admin_url("/healthz")).await?.status == 200,
        "the node went down"
    );
    mock.set_credentials(json!({"lifetime_secs": LIFETIME_SECS, "fail": false}))
        .await?;
    poll_until(
        Duration::from_secs(35),
        Duration::from_millis(100),
        || async {
            let r = http_post_json(&url, &chat()).await.ok()?;
            (r.status == 200).then_some(())
        },
    )
    .await
    .context("the credential did not come back after the service recovered")?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_default_chain_from_ecs_signs_and_is_refreshed_before_expiry() {
    run_bounded(TEST_TIMEOUT, async {
        let mock = MockProvider::start("bedrock").await?;
        mock.set_credentials(json!({"lifetime_secs": LIFETIME_SECS}))
            .await?;
        let ecs = format!("http://{}/creds/ecs", mock.data_addr);
        let policy = "  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n";
        let yaml = config("AWSBedrock", policy, "", mock.data_addr.port());
        let node = start(&yaml, &[("AWS_CONTAINER_CREDENTIALS_FULL_URI", &ecs)]).await?;
        let sent = steady_traffic(&node).await?;
        // Every request was signed with a key the mock issued, and verified before it expired.
        let requests = mock.requests().await?;
        anyhow::ensure!(
            requests.len() == sent,
            "{} of {sent} reached the mock",
            requests.len()
        );
        let mut keys = std::collections::BTreeSet::new();
        for r in &requests {
            anyhow::ensure!(r.sigv4.as_deref() == Some("verified"), "{:?}", r.sigv4);
            let auth = r
                .headers
                .get("authorization")
                .map(String::as_str)
                .unwrap_or("");
            let key = auth
                .split("Credential=")
                .nth(1)
                .and_then(|c| c.split('/').next());
            keys.insert(key.unwrap_or_default().to_owned());
        }
        let status = mock.credentials().await?;
        anyhow::ensure!(
            keys.len() >= 3 && issued(&status, "ecs") >= 3,
            "expected a refresh per half-lifetime: keys used {keys:?}, {status}"
        );
        anyhow::ensure!(keys.iter().all(|k| k.starts_with("ASIASWY")), "{keys:?}");
        refresh_failure_is_a_clear_401_then_recovers(&node, &mock, "500", &[]).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_oidc_exchange_goes_through_sts_and_is_refreshed_before_expiry() {
    run_bounded(TEST_TIMEOUT, async {
        let mock = MockProvider::start("bedrock").await?;
        mock.set_credentials(json!({"lifetime_secs": LIFETIME_SECS})).await?;
        let base = format!("http://{}", mock.data_addr);
        let policy = format!(
            "  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n{}      awsRoleArn: arn:aws:iam::123456789012:role/bedrock\n",
            oidc_block("    ", &format!("{base}/creds/oidc"))
        );
        let yaml = config("AWSBedrock", &policy, OIDC_SECRET_DOC, mock.data_addr.port());
        let node = start(&yaml, &[("AWS_ENDPOINT_URL_STS", &base)]).await?;
        steady_traffic(&node).await?;
        let requests = mock.requests().await?;
        anyhow::ensure!(
            requests.iter().all(|r| r.sigv4.as_deref() == Some("verified")),
            "an unverified signature"
        );
        let status = mock.credentials().await?;
        anyhow::ensure!(
            issued(&status, "sts") >= 3 && issued(&status, "oidc") >= 3,
            "expected an OIDC token and an STS exchange per refresh: {status}"
        );
        refresh_failure_is_a_clear_401_then_recovers(&node, &mock, "OIDC token", &[OIDC_CLIENT_SECRET])
            .await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_entra_tokens_with_a_client_secret_or_federation_are_refreshed_before_expiry() {
    run_bounded(TEST_TIMEOUT, async {
        let mock = MockProvider::start("azure").await?;
        mock.set_credentials(json!({"lifetime_secs": LIFETIME_SECS})).await?;
        let base = format!("http://{}", mock.data_addr);
        let authority = format!("{base}/creds/entra");
        let env = [("AZURE_AUTHORITY_HOST", authority.as_str())];
        let secret_doc = |value: &str| {
            format!("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: az\n  namespace: default\nstringData:\n  client-secret: {value}\n")
        };
        let head = "  type: AzureCredentials\n  azureCredentials:\n    clientID: app\n    tenantID: tenant-1\n";
        let with_secret = format!("{head}    clientSecretRef:\n      name: az\n");

        // Client secret: every request carries a valid Entra token across several expiries.
        let yaml = config("AzureOpenAI", &with_secret, &secret_doc(ENTRA_CLIENT_SECRET), mock.data_addr.port());
        let mut node = start(&yaml, &env).await?;
        steady_traffic(&node).await?;
        let after_secret = issued(&mock.credentials().await?, "entra");
        anyhow::ensure!(after_secret >= 3, "expected several Entra tokens, got {after_secret}");
        refresh_failure_is_a_clear_401_then_recovers(&node, &mock, "Entra ID token", &[ENTRA_CLIENT_SECRET])
            .await?;
        node.process().kill()?;

        // A wrong secret: 401 naming the backend and Entra's reason, never the secret.
        let yaml = config("AzureOpenAI", &with_secret, &secret_doc("wrong-secret-123"), mock.data_addr.port());
        let mut node = start(&yaml, &env).await?;
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat()).await?;
        let text = r.text();
        anyhow::ensure!(
            r.status == 401 && text.contains("default/provider-be") && text.contains("invalid_client"),
            "{} {text}"
            , r.status
        );
        anyhow::ensure!(!text.contains("wrong-secret-123") && !node.logs().contains("wrong-secret-123"), "secret leaked");
        node.process().kill()?;

        // OIDC federation: the OIDC token is the client assertion.
        let federated = format!("{head}{}", oidc_block("    ", &format!("{base}/creds/oidc")));
        let yaml = config("AzureOpenAI", &federated, OIDC_SECRET_DOC, mock.data_addr.port());
        let before = mock.credentials().await?;
        let node = start(&yaml, &env).await?;
        steady_traffic(&node).await?;
        let after = mock.credentials().await?;
        anyhow::ensure!(
            issued(&after, "entra") >= issued(&before, "entra") + 3
                && issued(&after, "oidc") >= issued(&before, "oidc") + 3,
            "expected an OIDC assertion per Entra token: {before} then {after}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_without_a_policy_signs_with_the_nodes_chain_and_a_reload_keeps_credentials() {
    run_bounded(TEST_TIMEOUT, async {
        let mock = MockProvider::start("bedrock").await?;
        mock.set_credentials(json!({"lifetime_secs": 3600})).await?;
        let ecs = format!("http://{}/creds/ecs", mock.data_addr);
        // No BackendSecurityPolicy: the node's own default chain signs (here: ECS).
        let yaml = config("AWSBedrock", "", "", mock.data_addr.port());
        let yaml = yaml[..yaml
            .find("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy")
            .context("policy doc")?]
            .to_owned();
        let env = [
            ("AWS_CONTAINER_CREDENTIALS_FULL_URI", ecs.as_str()),
            ("AWS_REGION", "eu-west-1"),
        ];
        let node = start(&yaml, &env).await?;
        let url = node.url("/v1/chat/completions");
        // The node's chain is not waited for at start: poll until its first fetch has landed.
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async {
                let r = http_post_json(&url, &chat()).await.ok()?;
                (r.status == 200).then_some(())
            },
        )
        .await
        .with_context(|| format!("never signed with the node's chain:\n{}", node.logs()))?;
        let requests = mock.requests().await?;
        let last = requests.last().context("no request reached the mock")?;
        anyhow::ensure!(
            last.sigv4.as_deref() == Some("verified"),
            "{:?}",
            last.sigv4
        );
        // The host (an address) names no region: the node's AWS_REGION is the scope's.
        let auth = last
            .headers
            .get("authorization")
            .map(String::as_str)
            .unwrap_or("");
        anyhow::ensure!(auth.contains("/eu-west-1/bedrock/aws4_request"), "{auth}");
        anyhow::ensure!(
            issued(&mock.credentials().await?, "ecs") == 1,
            "fetched more than once"
        );
        // A reload that keeps the backend keeps its credential: no refetch, no gap.
        let r = http_request(hyper::Method::POST, &node.admin_url("/reload"), &[], "").await?;
        anyhow::ensure!(r.status == 200, "reload: {} {}", r.status, r.text());
        let r = http_post_json(&url, &chat()).await?;
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
        anyhow::ensure!(
            issued(&mock.credentials().await?, "ecs") == 1,
            "the reload fetched the credential again"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_default_chain_with_a_web_identity_token_file_assumes_the_role_at_sts() {
    run_bounded(TEST_TIMEOUT, async {
        let mock = MockProvider::start("bedrock").await?;
        mock.set_credentials(json!({"lifetime_secs": 3600})).await?;
        let base = format!("http://{}", mock.data_addr);
        // EKS IRSA: the pod's projected token in a file (here one the mock's OIDC provider issued).
        let form = format!(
            "grant_type=client_credentials&client_id={OIDC_CLIENT_ID}&client_secret={OIDC_CLIENT_SECRET}"
        );
        let r = http_request(
            hyper::Method::POST,
            &format!("{base}/creds/oidc/token"),
            &[("content-type", "application/x-www-form-urlencoded")],
            form,
        )
        .await?;
        let token = r.json()?["access_token"]
            .as_str()
            .context("no access_token")?
            .to_owned();
        let dir = tempfile::tempdir()?;
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, &token)?;
        let token_file = token_file.display().to_string();
        let policy = "  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n";
        let yaml = config("AWSBedrock", policy, "", mock.data_addr.port());
        let env = [
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token_file.as_str()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/irsa"),
            ("AWS_ENDPOINT_URL_STS", base.as_str()),
            ("AWS_REGION", "us-east-1"),
        ];
        let node = start(&yaml, &env).await?;
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat()).await?;
        anyhow::ensure!(r.status == 200, "{} {}\n{}", r.status, r.text(), node.logs());
        let requests = mock.requests().await?;
        let last = requests.last().context("no request reached the mock")?;
        anyhow::ensure!(last.sigv4.as_deref() == Some("verified"), "{:?}", last.sigv4);
        anyhow::ensure!(
            issued(&mock.credentials().await?, "sts") >= 1,
            "the keys did not come from STS"
        );
        Ok(())
    })
    .await;
}
