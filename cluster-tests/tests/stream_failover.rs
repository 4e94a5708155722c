//! Honest streams and failover before the first token (issues 17.1, 17.2, 18.3, 18.4), through a real
//! `switchyard` process and mock providers speaking each provider's own stream format:
//! - a stream that fails after its 200 counts against its backend (ejection, `/metrics`);
//! - a stream that ends without its end marker reaches the client as an error, not a complete answer;
//! - an error event, an end or silence before the first content fails over to the next priority, for
//!   OpenAI, Azure, Anthropic and Bedrock streams; after content it stays an SSE error event;
//! - the timeouts: first-token (extension), the route timeout over the whole body, `perRetry.timeout` only
//!   until the response starts, `streamIdleTimeout` as the idle cut.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    fallback_config, http_get, http_post_json, http_post_json_stream, run_bounded, MockProvider,
    SwitchyardNode, SEED_POLICY,
};
use switchyard_cluster_tests::mock::bedrock::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

const MODEL: &str = "stream-model";
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) {
    run_bounded(TEST_TIMEOUT, f).await
}

/// Retries 5xx, resets and 429s onto the fallback; ejects after `consecutive` 5xx-class failures.
fn failover_policy(consecutive: u32) -> String {
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
enum Schema {
    OpenAi,
    Azure,
    Anthropic,
    Bedrock,
}

/// A route `MODEL` → `primary` (priority 0, `schema`) and an OpenAI `fallback` (priority 1); `rule_extra`
/// is appended to the rule (e.g. `timeouts`), `annotations` to the policy's metadata.
fn config(
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

fn first_token_annotation(value: &str) -> String {
    format!("  annotations:\n    switchyard.io/first-token-timeout: {value}\n")
}

fn stream_body(content: &str) -> Value {
    json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": content}]})
}

/// What a client made of a streamed answer.
#[derive(Debug)]
struct Streamed {
    status: u16,
    /// The concatenated `delta.content` of every chunk.
    content: String,
    done: bool,
    /// The `error` of an error event, if one came.
    error: Option<Value>,
    /// The body ended with an error (connection aborted) rather than a clean end.
    aborted: bool,
    raw: String,
}

async fn stream(node: &SwitchyardNode, content: &str) -> anyhow::Result<Streamed> {
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
fn ensure_fallback_answer(s: &Streamed, node: &SwitchyardNode) -> anyhow::Result<()> {
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
fn ensure_broken(s: &Streamed) -> anyhow::Result<()> {
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
async fn outcomes(node: &SwitchyardNode, backend: &str) -> anyhow::Result<Vec<(String, f64)>> {
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

async fn primary_ejected(node: &SwitchyardNode) -> anyhow::Result<bool> {
    let status = node.status().await?;
    Ok(status["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|h| h["backend"] == "default/primary-be"))
        .is_some_and(|h| h["ejected"] == true))
}

async fn start(
    schema: Schema,
    primary_mode: Value,
    rule_extra: &str,
    policy: &str,
    annotations: &str,
) -> anyhow::Result<(MockProvider, MockProvider, SwitchyardNode)> {
    let primary = MockProvider::start("primary").await?;
    let fallback = MockProvider::start("fallback").await?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_cuts_every_stream_after_content_is_ejected_and_the_fallback_serves() {
    bounded(async {
        // Two content chunks go out before each cut, so those answers cannot fail over; with
        // consecutive5XxErrors: 2 only the second cut ejects — which also shows that the 200 each cut
        // stream began with was not counted as a success that resets the counter.
        let (primary, fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "cut", "after_chunks": 2}),
            "",
            &failover_policy(2),
            "",
        )
        .await?;
        for i in 0..2 {
            let s = stream(&node, &format!("cut-{i}")).await?;
            ensure_broken(&s)?;
            anyhow::ensure!(
                s.content.starts_with("hello"),
                "content before the cut: {s:?}"
            );
        }
        anyhow::ensure!(
            primary_ejected(&node).await?,
            "primary not ejected after two cut streams"
        );
        for i in 0..3 {
            ensure_fallback_answer(&stream(&node, &format!("after-{i}")).await?, &node)?;
        }
        anyhow::ensure!(
            primary.request_count().await? == 2,
            "the ejected primary was used"
        );
        anyhow::ensure!(fallback.request_count().await? == 3);
        let primary_outcomes = outcomes(&node, "primary").await?;
        anyhow::ensure!(
            primary_outcomes == vec![("stream_reset".to_string(), 2.0)],
            "cut streams are failed attempts, not 200s: {primary_outcomes:?}"
        );
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        anyhow::ensure!(
            metrics
                .lines()
                .any(|l| l.starts_with("switchyard_truncated_responses_total{")
                    && l.contains("primary")
                    && l.ends_with(" 2")),
            "truncations not counted per backend:\n{metrics}"
        );
        anyhow::ensure!(
            outcomes(&node, "fallback").await? == vec![("200".to_string(), 3.0)],
            "{:?}",
            outcomes(&node, "fallback").await?
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_without_done_or_finish_reason_is_an_error_not_an_answer() {
    bounded(async {
        // Role chunk and two content chunks, then a clean end: no finish reason, no [DONE].
        let (_primary, _fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "truncate", "after_chunks": 3}),
            "",
            &failover_policy(5),
            "",
        )
        .await?;
        let s = stream(&node, "truncated").await?;
        ensure_broken(&s)?;
        anyhow::ensure!(
            outcomes(&node, "primary").await? == vec![("stream_incomplete".to_string(), 1.0)],
            "{:?}",
            outcomes(&node, "primary").await?
        );
        Ok(())
    })
    .await;
}

/// An error event after the 200 and before any content fails over to the fallback, classified by the
/// status it stands for (which ejects on a 5xx, never on a 429).
async fn error_event_before_content_fails_over(
    schema: Schema,
    status: u16,
    ejects: bool,
) -> anyhow::Result<()> {
    let (primary, fallback, node) = start(
        schema,
        json!({"mode": "stream_error", "after_chunks": 1, "status": status}),
        "",
        &failover_policy(1),
        "",
    )
    .await?;
    ensure_fallback_answer(&stream(&node, "first").await?, &node)?;
    anyhow::ensure!(primary.request_count().await? == 1);
    anyhow::ensure!(fallback.request_count().await? == 1);
    anyhow::ensure!(
        outcomes(&node, "primary").await? == vec![("stream_error".to_string(), 1.0)],
        "{:?}",
        outcomes(&node, "primary").await?
    );
    anyhow::ensure!(
        primary_ejected(&node).await? == ejects,
        "primary ejected should be {ejects} after a {status}-class error event"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_error_chunk_before_content_fails_over() {
    bounded(error_event_before_content_fails_over(
        Schema::OpenAi,
        503,
        true,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_error_chunk_before_content_fails_over() {
    bounded(error_event_before_content_fails_over(
        Schema::Azure,
        500,
        true,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_overloaded_event_before_content_fails_over() {
    bounded(error_event_before_content_fails_over(
        Schema::Anthropic,
        529,
        true,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_throttling_exception_before_content_fails_over_without_ejecting() {
    bounded(error_event_before_content_fails_over(
        Schema::Bedrock,
        429,
        false,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_before_content_fails_over() {
    bounded(async {
        let (_primary, _fallback, node) = start(
            Schema::Anthropic,
            json!({"mode": "truncate", "after_chunks": 1}),
            "",
            &failover_policy(1),
            "",
        )
        .await?;
        ensure_fallback_answer(&stream(&node, "ends").await?, &node)?;
        anyhow::ensure!(
            primary_ejected(&node).await?,
            "an early end counts like a reset"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_before_content_fails_over_after_the_stream_idle_timeout() {
    bounded(async {
        let (_primary, _fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "stall", "after_chunks": 1}),
            "      streamIdleTimeout: 1s\n",
            &failover_policy(1),
            "",
        )
        .await?;
        let t = Instant::now();
        ensure_fallback_answer(&stream(&node, "silent").await?, &node)?;
        let took = t.elapsed();
        anyhow::ensure!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "failover after {took:?}, want about the 1 s idle timeout"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_event_after_content_stays_an_error_event() {
    bounded(async {
        let (_primary, fallback, node) = start(
            Schema::Anthropic,
            json!({"mode": "stream_error", "after_chunks": 4, "status": 529}),
            "",
            &failover_policy(1),
            "",
        )
        .await?;
        let s = stream(&node, "late error").await?;
        ensure_broken(&s)?;
        anyhow::ensure!(
            !s.content.is_empty(),
            "content came before the error: {s:?}"
        );
        anyhow::ensure!(
            fallback.request_count().await? == 0,
            "no retry after content"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_token_timeout_fails_over_a_hung_primary_under_the_seed_policy() {
    bounded(async {
        // The seed policy retries neither timeouts nor resets; its 30 s per-try timeout would hold the
        // client. The annotation fails over after 1 s, before headers (non-streamed)…
        let (_primary, _fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "hang"}),
            "",
            SEED_POLICY,
            &first_token_annotation("1s"),
        )
        .await?;
        let t = Instant::now();
        let r = http_post_json(
            &node.url("/v1/chat/completions"),
            &json!({"model": MODEL, "messages": [{"role": "user", "content": "hung"}]}),
        )
        .await?;
        let took = t.elapsed();
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
        anyhow::ensure!(
            r.json()?["choices"][0]["message"]["content"] == "hello from fallback",
            "{}",
            r.text()
        );
        anyhow::ensure!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "took {took:?}"
        );
        anyhow::ensure!(
            outcomes(&node, "primary").await? == vec![("first_token_timeout".to_string(), 1.0)],
            "{:?}",
            outcomes(&node, "primary").await?
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_token_timeout_fails_over_a_stream_silent_after_its_headers() {
    bounded(async {
        // …and after a 200 whose stream says nothing but its role chunk.
        let (_primary, _fallback, node) = start(
            Schema::Bedrock,
            json!({"mode": "stall", "after_chunks": 1}),
            "",
            SEED_POLICY,
            &first_token_annotation("1s"),
        )
        .await?;
        let t = Instant::now();
        ensure_fallback_answer(&stream(&node, "silent").await?, &node)?;
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_annotation_an_unretried_per_try_timeout_stays_envoy_exact() {
    bounded(async {
        let policy = SEED_POLICY.replace("timeout: 30s", "timeout: 1s");
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary.set_mode(json!({"mode": "hang"})).await?;
        let node = SwitchyardNode::start(&fallback_config(
            MODEL,
            primary.data_addr,
            fallback.data_addr,
            &policy,
        ))
        .await?;
        let r = http_post_json(
            &node.url("/v1/chat/completions"),
            &json!({"model": MODEL, "messages": [{"role": "user", "content": "hung"}]}),
        )
        .await?;
        anyhow::ensure!(r.status == 504, "{} {}", r.status, r.text());
        anyhow::ensure!(fallback.request_count().await? == 0);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_timeout_bounds_the_whole_body() {
    bounded(async {
        // Content, then the upstream stalls; no idle timeout is set: the 2 s route timeout cuts it.
        let (_primary, _fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "stall", "after_chunks": 2}),
            "      timeouts:\n        request: 2s\n",
            &failover_policy(5),
            "",
        )
        .await?;
        let t = Instant::now();
        let s = stream(&node, "slow").await?;
        let took = t.elapsed();
        ensure_broken(&s)?;
        anyhow::ensure!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
            "cut after {took:?}"
        );
        anyhow::ensure!(s.raw.contains("route timeout"), "{s:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_stops_once_the_response_has_started() {
    bounded(async {
        // perRetry.timeout 1 s, chunks 1.2 s apart: the answer takes about 6 s and is complete.
        let policy =
            failover_policy(5).replace("    perRetry:\n", "    perRetry:\n      timeout: 1s\n");
        let (primary, _fallback, node) =
            start(Schema::OpenAi, json!({"mode": "ok"}), "", &policy, "").await?;
        primary
            .set_stream(json!({"chunk_delay_ms": 1200, "content_chunks": 2}))
            .await?;
        let s = stream(&node, "paced").await?;
        anyhow::ensure!(
            s.status == 200 && s.done && s.error.is_none() && !s.aborted,
            "{s:?}"
        );
        anyhow::ensure!(s.content == "hello from primary", "{s:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_idle_timeout_cuts_a_stream_that_stalls_after_content() {
    bounded(async {
        let (_primary, _fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "stall", "after_chunks": 2}),
            "      streamIdleTimeout: 1s\n",
            &failover_policy(5),
            "",
        )
        .await?;
        let t = Instant::now();
        let s = stream(&node, "stalls").await?;
        let took = t.elapsed();
        ensure_broken(&s)?;
        anyhow::ensure!(s.raw.contains("idle"), "{s:?}");
        anyhow::ensure!(took < Duration::from_secs(5), "cut after {took:?}");
        anyhow::ensure!(
            outcomes(&node, "primary").await? == vec![("stream_idle".to_string(), 1.0)],
            "{:?}",
            outcomes(&node, "primary").await?
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_hangs_under_load_costs_no_client_errors_with_a_first_token_timeout() {
    bounded(async {
        // `just bench`'s hang scenario in small: clients keep sending while the primary starts hanging.
        // Under the seed page's policy alone each request the primary holds would wait 30 s and get a 504;
        // with the annotation every one of them is answered by the fallback.
        let (primary, fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "ok"}),
            "",
            SEED_POLICY,
            &first_token_annotation("1s"),
        )
        .await?;
        let url = node.url("/v1/chat/completions");
        let ok = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Instant::now() + Duration::from_secs(5);
        let mut clients = Vec::new();
        for c in 0..8 {
            let (url, ok) = (url.clone(), ok.clone());
            clients.push(tokio::spawn(async move {
                let mut failed = Vec::new();
                let mut i = 0;
                while Instant::now() < stop {
                    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": format!("c{c}-{i}")}]});
                    match http_post_json(&url, &body).await {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                        Err(e) => failed.push(format!("{e:#}")),
                    }
                    i += 1;
                }
                failed
            }));
        }
        // The switch happens once traffic flows (a poll with a deadline, not a sleep).
        let switch_by = Instant::now() + Duration::from_secs(3);
        while ok.load(std::sync::atomic::Ordering::Relaxed) < 20 {
            anyhow::ensure!(Instant::now() < switch_by, "no traffic before the switch");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        primary.set_mode(json!({"mode": "hang"})).await?;
        let mut failed = Vec::new();
        for c in clients {
            failed.extend(c.await?);
        }
        anyhow::ensure!(failed.is_empty(), "client errors: {failed:?}");
        let held = outcomes(&node, "primary").await?;
        anyhow::ensure!(
            held.iter()
                .any(|(o, n)| o == "first_token_timeout" && *n >= 1.0),
            "the hung primary held no request: {held:?}"
        );
        anyhow::ensure!(fallback.request_count().await? >= 1);
        Ok(())
    })
    .await;
}
