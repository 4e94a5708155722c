//! What `stream_failover.rs` and `stream_timeouts.rs` share: a route with a primary of any schema and an
//! OpenAI fallback, a streamed request read the way a client sees it, and the node's per-backend outcomes.
#![allow(dead_code)] // each test file uses its own subset

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    http_get, http_post_json_stream, run_bounded, MockProvider, SwitchyardNode,
};
use switchyard_cluster_tests::mock::bedrock::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

pub const MODEL: &str = "stream-model";
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

pub async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) {
    run_bounded(TEST_TIMEOUT, f).await
}

/// Retries 5xx, resets and 429s onto the fallback; ejects after `consecutive` 5xx-class failures.
pub fn failover_policy(consecutive: u32) -> String {
    format!(
        r#"  retry:
    numRetries: 2
    numAttemptsPerPriority: 1
    perRetry:
      backOff:
        baseInterval: 10ms
    retryOn:
      httpStatusCodes:
        - 429
      triggers:
        - 5xx
        - reset
        - connect-failure
        - retriable-status-codes
  healthCheck:
    passive:
      baseEjectionTime: 30s
      interval: 2s
      maxEjectionPercent: 100
      consecutive5XxErrors: {consecutive}
      splitExternalLocalOriginErrors: false
"#
    )
}

/// The primary's schema and how it is reached.
#[derive(Clone, Copy)]
pub enum Schema {
    OpenAi,
    Azure,
    Anthropic,
    Bedrock,
    Cohere,
}

/// A route `MODEL` → `primary` (priority 0, `schema`) and an OpenAI `fallback` (priority 1); `rule_extra`
/// is appended to the rule (e.g. `timeouts`), `annotations` to the policy's metadata.
pub fn config(
    schema: Schema,
    primary: SocketAddr,
    fallback: SocketAddr,
    rule_extra: &str,
    policy: &str,
    annotations: &str,
) -> String {
    let (schema_yaml, security) = match schema {
        Schema::OpenAi => ("name: OpenAI", String::new()),
        Schema::Azure => (
            "name: AzureOpenAI\n    version: 2024-10-21",
            "---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: primary-auth\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: primary\n  type: AzureAPIKey\n  azureAPIKey:\n    secretRef:\n      name: key\n".to_string(),
        ),
        Schema::Anthropic => (
            "name: Anthropic",
            "---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: primary-auth\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: primary\n  type: AnthropicAPIKey\n  anthropicAPIKey:\n    secretRef:\n      name: key\n".to_string(),
        ),
        Schema::Cohere => (
            "name: Cohere",
            "---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: primary-auth\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: primary\n  type: APIKey\n  apiKey:\n    secretRef:\n      name: key\n".to_string(),
        ),
        Schema::Bedrock => (
            "name: AWSBedrock",
            "---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: primary-auth\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: primary\n  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n    credentialsFile:\n      secretRef:\n        name: aws\n".to_string(),
        ),
    };
    format!(
        r#"apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: streams
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
        - name: primary
          priority: 0
        - name: fallback
          priority: 1
{rule_extra}---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: primary
  namespace: default
spec:
  schema:
    {schema_yaml}
  backendRef:
    name: primary-be
    kind: Backend
    group: gateway.envoyproxy.io
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: primary-be
  namespace: default
spec:
  endpoints:
    - ip:
        address: {pa}
        port: {pp}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: fallback
  namespace: default
spec:
  endpoints:
    - ip:
        address: {fa}
        port: {fp}
{security}---
apiVersion: v1
kind: Secret
metadata:
  name: key
stringData:
  apiKey: test-key
---
apiVersion: v1
kind: Secret
metadata:
  name: aws
stringData:
  credentials: |
    [default]
    aws_access_key_id = {TEST_ACCESS_KEY_ID}
    aws_secret_access_key = {TEST_SECRET_ACCESS_KEY}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: policy
  namespace: default
{annotations}spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      name: streams
{policy}"#,
        pa = primary.ip(),
        pp = primary.port(),
        fa = fallback.ip(),
        fp = fallback.port(),
    )
}

pub fn first_token_annotation(value: &str) -> String {
    format!("  annotations:\n    switchyard.io/first-token-timeout: {value}\n")
}

pub fn stream_body(content: &str) -> Value {
    json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": content}]})
}

/// What a client made of a streamed answer.
#[derive(Debug)]
pub struct Streamed {
    pub status: u16,
    /// The concatenated `delta.content` of every chunk.
    pub content: String,
    pub done: bool,
    /// The `error` of an error event, if one came.
    pub error: Option<Value>,
    /// The body ended with an error (connection aborted) rather than a clean end.
    pub aborted: bool,
    pub raw: String,
}

pub async fn stream(node: &SwitchyardNode, content: &str) -> anyhow::Result<Streamed> {
    let resp =
        http_post_json_stream(&node.url("/v1/chat/completions"), &stream_body(content)).await?;
    let status = resp.status.as_u16();
    let (chunks, err) = resp.collect_chunks().await;
    let raw: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(&c.data).into_owned())
        .collect();
    let mut out = Streamed {
        status,
        content: String::new(),
        done: false,
        error: None,
        aborted: err.is_some(),
        raw: raw.clone(),
    };
    for line in raw.lines() {
        let Some(payload) = line.strip_prefix("data: ") else {
            continue;
        };
        if payload == "[DONE]" {
            out.done = true;
            continue;
        }
        let v: Value = serde_json::from_str(payload)?;
        if let Some(e) = v.get("error") {
            out.error = Some(e.clone());
        }
        if let Some(c) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            out.content.push_str(c);
        }
    }
    Ok(out)
}

/// A complete answer from the fallback, with nothing of the primary's in it.
pub fn ensure_fallback_answer(s: &Streamed, node: &SwitchyardNode) -> anyhow::Result<()> {
    anyhow::ensure!(
        s.status == 200 && s.done && s.error.is_none() && !s.aborted,
        "want a complete answer, got {s:?}\n--- gateway ---\n{}",
        node.logs()
    );
    anyhow::ensure!(
        s.content == "hello from fallback",
        "answered by {:?}",
        s.content
    );
    Ok(())
}

/// A broken answer: the SSE error event, then an aborted connection, never `[DONE]`.
pub fn ensure_broken(s: &Streamed) -> anyhow::Result<()> {
    anyhow::ensure!(s.status == 200, "{s:?}");
    anyhow::ensure!(!s.done, "a broken stream must not look complete: {s:?}");
    anyhow::ensure!(s.error.is_some(), "no SSE error event: {s:?}");
    anyhow::ensure!(
        s.aborted,
        "the body must end with an abort, not a clean end: {s:?}"
    );
    Ok(())
}

/// `switchyard_upstream_requests_total` of the backend whose label contains `backend`, by outcome.
pub async fn outcomes(node: &SwitchyardNode, backend: &str) -> anyhow::Result<Vec<(String, f64)>> {
    let text = http_get(&node.admin_url("/metrics")).await?.text();
    Ok(text
        .lines()
        .filter(|l| l.starts_with("switchyard_upstream_requests_total{") && l.contains(backend))
        .filter_map(|l| {
            let outcome = l.split("outcome=\"").nth(1)?.split('"').next()?.to_string();
            let n: f64 = l.rsplit(' ').next()?.parse().ok()?;
            // Series registered up front (a host's `200`) render as 0 until counted.
            (n > 0.0).then_some((outcome, n))
        })
        .collect())
}

pub async fn primary_ejected(node: &SwitchyardNode) -> anyhow::Result<bool> {
    let status = node.status().await?;
    Ok(status["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|h| h["backend"] == "default/primary-be"))
        .is_some_and(|h| h["ejected"] == true))
}

pub async fn start(
    schema: Schema,
    primary_mode: Value,
    rule_extra: &str,
    policy: &str,
    annotations: &str,
) -> anyhow::Result<(MockProvider, MockProvider, SwitchyardNode)> {
    // Cohere mocks check every request against the SDK's definition of the API.
    let (primary, fallback) = if matches!(schema, Schema::Cohere) {
        (
            MockProvider::start_checked("primary").await?,
            MockProvider::start_checked("fallback").await?,
        )
    } else {
        (
            MockProvider::start("primary").await?,
            MockProvider::start("fallback").await?,
        )
    };
    primary.set_mode(primary_mode).await?;
    let node = SwitchyardNode::start(&config(
        schema,
        primary.data_addr,
        fallback.data_addr,
        rule_extra,
        policy,
        annotations,
    ))
    .await?;
    Ok((primary, fallback, node))
}
