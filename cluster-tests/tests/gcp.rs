//! Issue 15 item 4 (the GCP half) through real `switchyard` and `mock-provider` processes: Claude on
//! Vertex AI (`GCPAnthropic`) behind a failing primary, for OpenAI chat clients and Anthropic Messages
//! clients, streamed and not, with a Google access token obtained from a service-account key.
//!
//! The Vertex mock plays Google's token endpoint too (the key file's `token_uri` points at it): it
//! verifies the RS256 signature of each JWT bearer grant with the test key's public half and issues
//! tokens a few seconds long, and its Vertex endpoints refuse any token it did not issue or that has
//! expired. So "every request answered 200 across several expiries" shows the node refreshed the token
//! before each expiry.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    bin_path, http_get, http_post_json, http_post_json_stream, poll_until, run_agent_loop,
    run_bounded, venv_python, MockProvider, SwitchyardNode,
};
use switchyard_cluster_tests::mock::credentials::{
    gcp_authorized_user_file, gcp_external_account_file, gcp_impersonated_file, gcp_key_file,
    gcp_subject_token, GCP_IMPERSONATED, GCP_REFRESH_TOKEN, GCP_USER_CLIENT_SECRET,
    GCP_WIF_AUDIENCE, OIDC_CLIENT_ID, OIDC_CLIENT_SECRET,
};

const TEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The Vertex model id the fallback is sent (a `modelNameOverride`).
const VERTEX_MODEL: &str = "claude-sonnet-4@20250514";
/// The model clients ask for.
const MODEL: &str = "claude-sonnet-4";
/// The Gemini model clients ask for (sent as is).
const GEMINI_MODEL: &str = "gemini-2.5-flash";

/// A route for [`MODEL`]: an `Anthropic` primary at `primary`, Claude on Vertex at `vertex` behind it
/// (priority 1), retried on 5xx and ejected after one; and one for [`GEMINI_MODEL`] with Gemini on
/// Vertex behind the same primary. One GCPCredentials policy serves both Vertex backends.
fn config(primary: SocketAddr, vertex: SocketAddr) -> String {
    let key = gcp_key_file(&vertex.to_string());
    format!(
        "apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata:
  name: claude
  namespace: default
spec:
  rules:
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: {MODEL}
      backendRefs:
        - name: anthropic-primary
          priority: 0
        - name: claude-vertex
          priority: 1
          modelNameOverride: \"{VERTEX_MODEL}\"
    - matches:
        - headers:
            - type: Exact
              name: x-ai-eg-model
              value: {GEMINI_MODEL}
      backendRefs:
        - name: anthropic-primary
          priority: 0
        - name: gemini-vertex
          priority: 1
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: gemini-vertex
  namespace: default
spec:
  schema:
    name: GCPVertexAI
  backendRef:
    name: vertex-be
    kind: Backend
    group: gateway.envoyproxy.io
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: anthropic-primary
  namespace: default
spec:
  schema:
    name: Anthropic
  backendRef:
    name: primary-be
    kind: Backend
    group: gateway.envoyproxy.io
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata:
  name: claude-vertex
  namespace: default
spec:
  schema:
    name: GCPAnthropic
    version: vertex-2023-10-16
  backendRef:
    name: vertex-be
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
        address: {}
        port: {}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata:
  name: vertex-be
  namespace: default
spec:
  endpoints:
    - ip:
        address: {}
        port: {}
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata:
  name: primary-auth
  namespace: default
spec:
  targetRefs:
    - group: aigateway.envoyproxy.io
      kind: AIServiceBackend
      name: anthropic-primary
  type: AnthropicAPIKey
  anthropicAPIKey:
    secretRef:
      name: anthropic-key
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata:
  name: vertex-auth
  namespace: default
spec:
  targetRefs:
    - group: aigateway.envoyproxy.io
      kind: AIServiceBackend
      name: claude-vertex
    - group: aigateway.envoyproxy.io
      kind: AIServiceBackend
      name: gemini-vertex
  type: GCPCredentials
  gcpCredentials:
    projectName: test-project
    region: us-east5
    credentialsFile:
      secretRef:
        name: vertex-sa
---
apiVersion: v1
kind: Secret
metadata:
  name: anthropic-key
  namespace: default
stringData:
  apiKey: test-anthropic-key
---
apiVersion: v1
kind: Secret
metadata:
  name: vertex-sa
  namespace: default
stringData:
  service_account.json: '{key}'
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata:
  name: claude-policy
  namespace: default
spec:
  targetRefs:
    - group: gateway.networking.k8s.io
      kind: HTTPRoute
      name: claude
  retry:
    numRetries: 2
    perRetry:
      backOff:
        baseInterval: 10ms
        maxInterval: 100ms
    retryOn:
      triggers:
        - 5xx
        - connect-failure
  healthCheck:
    passive:
      baseEjectionTime: 60s
      interval: 2s
      maxEjectionPercent: 100
      consecutive5XxErrors: 1
",
        primary.ip(),
        primary.port(),
        vertex.ip(),
        vertex.port(),
    )
}

fn chat(stream: bool) -> Value {
    json!({"model": MODEL, "stream": stream, "max_tokens": 64,
           "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]})
}

fn messages(stream: bool) -> Value {
    json!({"model": MODEL, "stream": stream, "max_tokens": 64, "system": "be brief",
           "messages": [{"role": "user", "content": "hi"}]})
}

/// The concatenated `data:` payloads of an SSE answer, and whether it ended cleanly.
/// A primary that answers 500 and a Vertex mock checking requests against Vertex AI's discovery document:
/// every test here falls over from the one to the other.
async fn failing_primary_and_vertex() -> anyhow::Result<(MockProvider, MockProvider)> {
    let primary = MockProvider::start("primary").await?;
    let vertex = MockProvider::start_checked("vertex").await?;
    primary
        .set_mode(json!({"mode": "status", "status": 500}))
        .await?;
    Ok((primary, vertex))
}

/// Polls `url` with a chat until one is answered 200 (a token that came back after refusals).
async fn chats_again(url: &str) -> anyhow::Result<()> {
    poll_until(
        Duration::from_secs(35),
        Duration::from_millis(100),
        || async {
            let r = http_post_json(url, &chat(false)).await.ok()?;
            (r.status == 200).then_some(())
        },
    )
    .await
    .context("the token did not come back")
}

async fn sse(url: &str, body: &Value) -> anyhow::Result<String> {
    let resp = http_post_json_stream(url, body).await?;
    anyhow::ensure!(resp.status == 200, "stream status {}", resp.status);
    let (chunks, err) = resp.collect_chunks().await;
    anyhow::ensure!(err.is_none(), "stream ended with {err:?}");
    Ok(chunks
        .iter()
        .map(|c| String::from_utf8_lossy(&c.data))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_on_vertex_takes_over_from_a_failing_primary_for_chat_and_messages_clients() {
    run_bounded(TEST_TIMEOUT, async {
        let (primary, vertex) = failing_primary_and_vertex().await?;
        let node = SwitchyardNode::start(&config(primary.data_addr, vertex.data_addr)).await?;
        let chat_url = node.url("/v1/chat/completions");
        let messages_url = node.url("/anthropic/v1/messages");

        // Chat, not streamed: the primary's 500 is retried on Vertex and ejects the primary.
        let r = http_post_json(&chat_url, &chat(false)).await?;
        anyhow::ensure!(
            r.status == 200,
            "{} {}\n{}",
            r.status,
            r.text(),
            node.logs()
        );
        let v = r.json()?;
        anyhow::ensure!(v["object"] == "chat.completion", "{v}");
        anyhow::ensure!(
            v["choices"][0]["message"]["content"] == "hello from vertex",
            "{v}"
        );
        anyhow::ensure!(v["usage"]["prompt_tokens"].as_u64().unwrap_or(0) > 0, "{v}");

        // Chat, streamed.
        let text = sse(&chat_url, &chat(true)).await?;
        anyhow::ensure!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let content: String = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect();
        anyhow::ensure!(
            content == "hello from vertex",
            "streamed {content:?}: {text}"
        );

        // Messages, not streamed: Vertex's answer is the Anthropic message itself.
        let r = http_post_json(&messages_url, &messages(false)).await?;
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
        let v = r.json()?;
        anyhow::ensure!(
            v["type"] == "message" && v["content"][0]["text"] == "hello from vertex",
            "{v}"
        );

        // Messages, streamed: Anthropic's events.
        let text = sse(&messages_url, &messages(true)).await?;
        anyhow::ensure!(
            text.contains("event: message_start")
                && text.contains("event: message_stop")
                && text.contains("hello"),
            "{text}"
        );

        // count_tokens: Vertex's count-tokens endpoint.
        let r = http_post_json(
            &node.url("/anthropic/v1/messages/count_tokens"),
            &json!({"model": MODEL, "messages": [{"role": "user", "content": "hi there"}]}),
        )
        .await?;
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
        anyhow::ensure!(
            r.json()?["input_tokens"].as_u64().unwrap_or(0) > 0,
            "{}",
            r.text()
        );

        // The primary was tried once (then ejected); every Vertex request carried a Google token and the
        // Vertex wire format.
        anyhow::ensure!(primary.request_count().await? == 1, "primary requests");
        let base = "/v1/projects/test-project/locations/us-east5/publishers/anthropic/models";
        let mut paths = Vec::new();
        for r in vertex.requests().await? {
            if r.path.starts_with("/creds/") {
                continue;
            }
            anyhow::ensure!(
                r.header("authorization")
                    .is_some_and(|a| a.starts_with("Bearer swy.google.")),
                "{:?}",
                r.headers
            );
            anyhow::ensure!(r.header("x-api-key").is_none(), "an API key went to Vertex");
            paths.push(r.path.clone());
        }
        let want = [
            format!("{base}/{VERTEX_MODEL}:rawPredict"),
            format!("{base}/{VERTEX_MODEL}:streamRawPredict"),
            format!("{base}/{VERTEX_MODEL}:rawPredict"),
            format!("{base}/{VERTEX_MODEL}:streamRawPredict"),
            format!("{base}/count-tokens:rawPredict"),
        ];
        anyhow::ensure!(paths == want, "{paths:#?}");
        let issued = vertex.credentials().await?;
        anyhow::ensure!(issued["issued"]["google"].as_u64() == Some(1), "{issued}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn google_tokens_are_refreshed_before_expiry_and_a_refused_grant_is_a_401_naming_why() {
    run_bounded(TEST_TIMEOUT, async {
        let (primary, vertex) = failing_primary_and_vertex().await?;
        vertex
            .set_credentials(json!({"lifetime_secs": 3, "fail": false}))
            .await?;
        let node = SwitchyardNode::start(&config(primary.data_addr, vertex.data_addr)).await?;
        let url = node.url("/v1/chat/completions");
        // Three token lifetimes of traffic: every request succeeds, so no expired token was ever sent.
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut tick = tokio::time::interval(Duration::from_millis(25));
        let mut sent = 0;
        while tokio::time::Instant::now() < end {
            tick.tick().await;
            let r = http_post_json(&url, &chat(false)).await?;
            sent += 1;
            anyhow::ensure!(
                r.status == 200,
                "request {sent}: {} {}\n{}",
                r.status,
                r.text(),
                node.logs()
            );
        }
        let issued = vertex.credentials().await?["issued"]["google"]
            .as_u64()
            .unwrap_or(0);
        anyhow::ensure!(
            issued >= 4,
            "expected a token per 1.5 s, got {issued} over {sent} requests"
        );

        // Google refuses the grant: once the token in use expires, the gateway answers 401 itself,
        // naming the backend and Google's reason; never a key or a token.
        vertex
            .set_credentials(json!({"lifetime_secs": 3, "fail": true}))
            .await?;
        let r = poll_until(
            Duration::from_secs(15),
            Duration::from_millis(50),
            || async {
                let r = http_post_json(&url, &chat(false)).await.ok()?;
                (r.status != 200 && r.text().contains("temporarily_unavailable")).then_some(r)
            },
        )
        .await
        .context("no 401 naming the token endpoint's refusal")?;
        anyhow::ensure!(r.status == 401, "{} {}", r.status, r.text());
        let text = r.text();
        for want in [
            "default/vertex-be",
            "Google OAuth2 token for gateway@test-project.iam.gserviceaccount.com",
            "/creds/google/token",
        ] {
            anyhow::ensure!(text.contains(want), "{want:?} missing: {text}");
        }
        let status = http_get(&node.admin_url("/status")).await?.text();
        for secret in ["PRIVATE KEY", "swy.google"] {
            anyhow::ensure!(
                !text.contains(secret) && !status.contains(secret) && !node.logs().contains(secret),
                "{secret} leaked"
            );
        }
        // Google recovers: so does the backend.
        vertex
            .set_credentials(json!({"lifetime_secs": 3, "fail": false}))
            .await?;
        chats_again(&url).await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gemini_on_vertex_takes_over_from_a_failing_primary_streamed_and_not() {
    run_bounded(TEST_TIMEOUT, async {
        let (primary, vertex) = failing_primary_and_vertex().await?;
        vertex.set_stream(json!({"content_chunks": 3})).await?;
        let node = SwitchyardNode::start(&config(primary.data_addr, vertex.data_addr)).await?;
        let url = node.url("/v1/chat/completions");
        let gemini = |stream: bool| {
            json!({"model": GEMINI_MODEL, "stream": stream, "max_tokens": 64, "temperature": 0.2,
                   "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
                   "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]})
        };
        let r = http_post_json(&url, &gemini(false)).await?;
        anyhow::ensure!(r.status == 200, "{} {}\n{}", r.status, r.text(), node.logs());
        let v = r.json()?;
        anyhow::ensure!(v["object"] == "chat.completion", "{v}");
        anyhow::ensure!(v["choices"][0]["message"]["content"] == "hello from vertex", "{v}");
        anyhow::ensure!(v["choices"][0]["finish_reason"] == "stop", "{v}");
        anyhow::ensure!(v["model"] == format!("{GEMINI_MODEL}-mock"), "{v}");
        let u = &v["usage"];
        anyhow::ensure!(
            u["prompt_tokens"].as_u64().unwrap_or(0) > 0
                && u["total_tokens"].as_u64()
                    == Some(u["prompt_tokens"].as_u64().unwrap_or(0) + u["completion_tokens"].as_u64().unwrap_or(0)),
            "{v}"
        );

        let text = sse(&url, &gemini(true)).await?;
        anyhow::ensure!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let chunks: Vec<Value> = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .collect();
        let content: String = chunks
            .iter()
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str())
            .collect();
        anyhow::ensure!(content == "hello from vertex", "streamed {content:?}: {text}");
        anyhow::ensure!(
            chunks.iter().any(|c| c["choices"][0]["finish_reason"] == "stop"),
            "{text}"
        );
        anyhow::ensure!(
            chunks.last().is_some_and(|c| c["usage"]["completion_tokens"].as_u64().unwrap_or(0) > 0),
            "{text}"
        );

        let base = "/v1/projects/test-project/locations/us-east5/publishers/google/models";
        let mut paths = Vec::new();
        for r in vertex.requests().await? {
            if r.path.starts_with("/creds/") {
                continue;
            }
            anyhow::ensure!(
                r.header("authorization").is_some_and(|a| a.starts_with("Bearer swy.google.")),
                "{:?}",
                r.headers
            );
            let body = r.json().ok_or_else(|| anyhow::anyhow!("not JSON"))?;
            anyhow::ensure!(
                body["systemInstruction"] == json!({"parts": [{"text": "be brief"}]})
                    && body["contents"] == json!([{"role": "user", "parts": [{"text": "hi"}]}])
                    && body["generationConfig"] == json!({"temperature": 0.2, "maxOutputTokens": 64}),
                "{body}"
            );
            paths.push(r.path.clone());
        }
        let want = [
            format!("{base}/{GEMINI_MODEL}:generateContent"),
            format!("{base}/{GEMINI_MODEL}:streamGenerateContent?alt=sse"),
        ];
        anyhow::ensure!(paths == want, "{paths:#?}");
        anyhow::ensure!(primary.request_count().await? == 1, "primary requests");
        Ok(())
    })
    .await;
}

/// An agent loop through Gemini: tool calls, tool results, final answer, streamed and not. Gemini's calls
/// carry no id; the gateway numbers them, and the results find their function by those ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_loop_runs_through_gemini_streamed_and_not() {
    run_bounded(TEST_TIMEOUT, async {
        let (primary, vertex) = failing_primary_and_vertex().await?;
        let node = SwitchyardNode::start(&config(primary.data_addr, vertex.data_addr)).await?;
        let url = node.url("/v1/chat/completions");
        let tools = json!([
            {"type": "function", "function": {"name": "get_weather", "description": "weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
            {"type": "function", "function": {"name": "get_time",
                "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}}}]);
        let ask = json!({"role": "user", "content": "weather and time in Paris?"});
        for stream in [false, true] {
            let first = json!({"model": GEMINI_MODEL, "stream": stream, "tools": tools, "messages": [ask]});
            // The calls, as the client sees them: (id, name, arguments).
            let calls: Vec<(String, String, String)> = if stream {
                let text = sse(&url, &first).await?;
                anyhow::ensure!(text.ends_with("data: [DONE]\n\n"), "{text}");
                let mut calls: Vec<(String, String, String)> = Vec::new();
                let mut finish = None;
                for v in text
                    .split("\n\n")
                    .filter_map(|e| e.strip_prefix("data: "))
                    .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                {
                    if let Some(f) = v["choices"][0]["finish_reason"].as_str() {
                        finish = Some(f.to_owned());
                    }
                    for d in v["choices"][0]["delta"]["tool_calls"].as_array().into_iter().flatten() {
                        let i = d["index"].as_u64().unwrap_or(0) as usize;
                        if calls.len() <= i {
                            calls.push((
                                d["id"].as_str().unwrap_or_default().to_owned(),
                                d["function"]["name"].as_str().unwrap_or_default().to_owned(),
                                String::new(),
                            ));
                        }
                        calls[i].2.push_str(d["function"]["arguments"].as_str().unwrap_or_default());
                    }
                }
                anyhow::ensure!(finish.as_deref() == Some("tool_calls"), "{text}");
                calls
            } else {
                let r = http_post_json(&url, &first).await?;
                anyhow::ensure!(r.status == 200, "{} {}\n{}", r.status, r.text(), node.logs());
                let v = r.json()?;
                anyhow::ensure!(v["choices"][0]["finish_reason"] == "tool_calls", "{v}");
                v["choices"][0]["message"]["tool_calls"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| {
                        (
                            c["id"].as_str().unwrap_or_default().to_owned(),
                            c["function"]["name"].as_str().unwrap_or_default().to_owned(),
                            c["function"]["arguments"].as_str().unwrap_or_default().to_owned(),
                        )
                    })
                    .collect()
            };
            anyhow::ensure!(
                calls
                    == [
                        ("call_0".to_owned(), "get_weather".to_owned(), r#"{"city":"Paris"}"#.to_owned()),
                        ("call_1".to_owned(), "get_time".to_owned(), r#"{"zone":"Paris"}"#.to_owned()),
                    ],
                "stream={stream}: {calls:?}"
            );
            let assistant = json!({"role": "assistant", "content": null, "tool_calls": calls.iter().map(|(id, name, args)| {
                json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
            }).collect::<Vec<_>>()});
            let second = json!({"model": GEMINI_MODEL, "stream": false, "tools": tools, "messages": [
                ask, assistant,
                {"role": "tool", "tool_call_id": "call_0", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_1", "content": "noon"}]});
            let r = http_post_json(&url, &second).await?;
            anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
            let v = r.json()?;
            anyhow::ensure!(v["choices"][0]["message"]["content"] == "tool said: sunny; noon", "{v}");
        }
        // What Vertex saw for the results: each functionResponse named after its call.
        let last = vertex
            .requests()
            .await?
            .into_iter()
            .rev()
            .find(|r| !r.path.starts_with("/creds/"))
            .and_then(|r| r.json())
            .ok_or_else(|| anyhow::anyhow!("no Vertex request"))?;
        anyhow::ensure!(
            last["contents"][2]
                == json!({"role": "user", "parts": [
                    {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}},
                    {"functionResponse": {"name": "get_time", "response": {"content": "noon"}}}]}),
            "{last}"
        );
        Ok(())
    })
    .await;
}

/// Envoy AI Gateway's example Secret holds a placeholder, not a key: the policy loads, and its backends
/// answer 401 naming the Secret and why, without contacting Vertex (never an unsigned request, never a 422
/// about the path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_key_file_is_a_401_naming_why() {
    run_bounded(TEST_TIMEOUT, async {
        let (primary, vertex) = failing_primary_and_vertex().await?;
        let yaml = config(primary.data_addr, vertex.data_addr).replace(
            &gcp_key_file(&vertex.data_addr.to_string()),
            r#"{"type": "service_account"}"#,
        );
        let node = SwitchyardNode::start(&yaml).await?;
        for (url, body) in [
            (node.url("/v1/chat/completions"), chat(false)),
            (node.url("/anthropic/v1/messages"), messages(false)),
        ] {
            let r = http_post_json(&url, &body).await?;
            anyhow::ensure!(r.status == 401, "{} {}", r.status, r.text());
            let text = r.text();
            for want in [
                "default/vertex-be",
                "BackendSecurityPolicy default/vertex-auth",
                "Secret default/vertex-sa key service_account.json: the key file has no client_email",
            ] {
                anyhow::ensure!(text.contains(want), "{want:?} missing: {text}");
            }
        }
        anyhow::ensure!(vertex.request_count().await? == 0, "Vertex was contacted");
        Ok(())
    })
    .await;
}

/// A Gemini stream that fails before its first content (Google's error event) fails over to the next
/// priority; the client sees one clean stream from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gemini_stream_error_before_content_fails_over() {
    run_bounded(TEST_TIMEOUT, async {
        let primary = MockProvider::start("primary").await?;
        let vertex = MockProvider::start_checked("vertex").await?;
        vertex
            .set_mode(json!({"mode": "stream_error", "after_chunks": 0, "status": 503}))
            .await?;
        // Gemini first, the Anthropic backend behind it.
        let yaml = config(primary.data_addr, vertex.data_addr).replace(
            "        - name: anthropic-primary\n          priority: 0\n        - name: gemini-vertex\n          priority: 1\n",
            "        - name: gemini-vertex\n          priority: 0\n        - name: anthropic-primary\n          priority: 1\n",
        );
        anyhow::ensure!(yaml.contains("name: gemini-vertex\n          priority: 0"), "{yaml}");
        let node = SwitchyardNode::start(&yaml).await?;
        let body = json!({"model": GEMINI_MODEL, "stream": true,
                          "messages": [{"role": "user", "content": "hi"}]});
        let text = sse(&node.url("/v1/chat/completions"), &body).await?;
        anyhow::ensure!(text.ends_with("data: [DONE]\n\n"), "{text}");
        let content: String = text
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
            .collect();
        anyhow::ensure!(content == "hello from primary", "{content:?}: {text}");
        let tried: Vec<String> = vertex.requests().await?.into_iter().map(|r| r.path).collect();
        anyhow::ensure!(
            tried.len() == 1 && tried[0].ends_with(":streamGenerateContent?alt=sse"),
            "{tried:?}"
        );
        anyhow::ensure!(primary.request_count().await? == 1, "the primary answered once");
        Ok(())
    })
    .await;
}

/// The official `openai` Python client runs its agent loop (parallel tool calls, tool results in the
/// history, final answer; plain and streamed: `openai_client_agent.py`) through a failing primary onto
/// Claude on Vertex (`GCPAnthropic`) and onto Gemini (`GCPVertexAI`), with the node's Google token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_client_runs_an_agent_loop_through_both_vertex_schemas() {
    let python = tokio::task::spawn_blocking(venv_python)
        .await
        .expect("venv task");
    run_bounded(TEST_TIMEOUT, async {
        let (primary, vertex) = failing_primary_and_vertex().await?;
        let node = SwitchyardNode::start(&config(primary.data_addr, vertex.data_addr)).await?;
        for (model, label) in [(MODEL, "claude-vertex"), (GEMINI_MODEL, "gemini-vertex")] {
            let url = node.url("/v1");
            run_agent_loop(
                &python,
                "openai_client_agent.py",
                &url,
                model,
                label,
                || node.logs(),
            )
            .await?;
        }
        let reqs = vertex.requests().await?;
        for suffix in [
            ":rawPredict",
            ":streamRawPredict",
            ":generateContent",
            ":streamGenerateContent",
        ] {
            anyhow::ensure!(
                reqs.iter().any(|r| r.path.contains(suffix)),
                "no {suffix} request among {:?}",
                reqs.iter().map(|r| r.path.clone()).collect::<Vec<_>>()
            );
        }
        Ok(())
    })
    .await;
}

/// [`config`] with the Vertex policy's `credentialsFile` replaced by `source` (lines under
/// `gcpCredentials`, or nothing for Application Default Credentials), and `extra` documents appended.
fn config_with_source(
    primary: SocketAddr,
    vertex: SocketAddr,
    source: &str,
    extra: &str,
) -> String {
    let file = "    credentialsFile:\n      secretRef:\n        name: vertex-sa\n";
    let c = config(primary, vertex);
    assert!(c.contains(file), "the base config names a key file");
    format!("{}{extra}", c.replacen(file, source, 1))
}

/// A `workloadIdentityFederationConfig` for the mock STS's pool and provider, its OIDC client at the
/// mock's issuer, impersonating `vertex-caller` when `impersonate`; and the client secret's Secret.
fn federation(vertex: SocketAddr, impersonate: bool) -> (String, String) {
    let impersonation = if impersonate {
        "      serviceAccountImpersonation:\n        serviceAccountName: vertex-caller\n"
    } else {
        ""
    };
    let source = format!(
        "    workloadIdentityFederationConfig:
      projectID: test-project
      workloadIdentityPoolName: test-pool
      workloadIdentityProviderName: test-provider
{impersonation}      oidcExchangeToken:
        oidc:
          provider:
            issuer: http://{vertex}/creds/oidc
          clientID: {OIDC_CLIENT_ID}
          clientSecret:
            name: oidc-client
"
    );
    let secret = format!(
        "---
apiVersion: v1
kind: Secret
metadata:
  name: oidc-client
  namespace: default
stringData:
  client-secret: {OIDC_CLIENT_SECRET}
"
    );
    (source, secret)
}

/// Starts a node on `yaml` with `env` added to its environment.
async fn start_with_env(yaml: &str, env: &[(&str, &str)]) -> anyhow::Result<SwitchyardNode> {
    let dir = tempfile::tempdir().context("temp dir")?;
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, yaml).context("write config")?;
    SwitchyardNode::start_file_env(path, "127.0.0.1:0", "127.0.0.1:0", &[], dir, env).await
}

/// The `/status` entry of the Vertex backend's credential.
async fn vertex_credential(node: &SwitchyardNode) -> anyhow::Result<Value> {
    let status = http_get(&node.admin_url("/status")).await?.json()?;
    status["credentials"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["backend"] == "default/vertex-be")
        .cloned()
        .with_context(|| format!("no credential for default/vertex-be in {status}"))
}

/// How many Google tokens the mock issued as `issuer` (`google-sts`, `google-iam`, …).
async fn issued(vertex: &MockProvider, issuer: &str) -> anyhow::Result<u64> {
    Ok(vertex.credentials().await?["issued"][issuer]
        .as_u64()
        .unwrap_or(0))
}

/// Sends chats for `span`, each of which must answer 200 from Vertex; returns how many were sent.
async fn chats_all_succeed(node: &SwitchyardNode, span: Duration) -> anyhow::Result<u32> {
    let url = node.url("/v1/chat/completions");
    let end = tokio::time::Instant::now() + span;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut sent = 0;
    loop {
        tick.tick().await;
        let r = http_post_json(&url, &chat(false)).await?;
        sent += 1;
        anyhow::ensure!(
            r.status == 200 && r.json()?["choices"][0]["message"]["content"] == "hello from vertex",
            "request {sent}: {} {}\n{}",
            r.status,
            r.text(),
            node.logs()
        );
        if tokio::time::Instant::now() >= end {
            return Ok(sent);
        }
    }
}

/// Polls chats until one answers 401 containing `step`; returns its text.
async fn first_401_naming(node: &SwitchyardNode, step: &str) -> anyhow::Result<String> {
    let url = node.url("/v1/chat/completions");
    let r = poll_until(
        Duration::from_secs(15),
        Duration::from_millis(50),
        || async {
            let r = http_post_json(&url, &chat(false)).await.ok()?;
            (r.status != 200 && r.text().contains(step)).then_some(r)
        },
    )
    .await
    .with_context(|| format!("no answer naming {step:?}:\n{}", node.logs()))?;
    anyhow::ensure!(r.status == 401, "{} {}", r.status, r.text());
    Ok(r.text())
}

/// No token, client secret or refresh token in `text`, the node's `/status` or its logs.
async fn nothing_secret_shown(node: &SwitchyardNode, text: &str) -> anyhow::Result<()> {
    let status = http_get(&node.admin_url("/status")).await?.text();
    let logs = node.logs();
    for secret in [
        "swy.google",
        "swy.oidc",
        OIDC_CLIENT_SECRET,
        GCP_USER_CLIENT_SECRET,
        GCP_REFRESH_TOKEN,
        "PRIVATE KEY",
    ] {
        anyhow::ensure!(
            !text.contains(secret) && !status.contains(secret) && !logs.contains(secret),
            "{secret} leaked"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_federation_exchanges_impersonates_refreshes_and_names_a_refused_step() {
    run_bounded(TEST_TIMEOUT, async {
        let (primary, vertex) = failing_primary_and_vertex().await?;
        vertex
            .set_credentials(json!({"lifetime_secs": 3}))
            .await?;
        let (source, secret) = federation(vertex.data_addr, true);
        let yaml = config_with_source(primary.data_addr, vertex.data_addr, &source, &secret);
        let sts = format!("http://{}/creds/google/sts", vertex.data_addr);
        let iam = format!("http://{}/creds/google/iam", vertex.data_addr);
        let node = start_with_env(
            &yaml,
            &[
                ("SWITCHYARD_GCP_STS_ENDPOINT", &sts),
                ("SWITCHYARD_GCP_IAM_CREDENTIALS_ENDPOINT", &iam),
            ],
        )
        .await?;
        // Three token lifetimes of chats: every one answered by Vertex with a token it accepts, so each
        // was refreshed (OIDC token, STS exchange, impersonation) before it expired.
        let sent = chats_all_succeed(&node, Duration::from_secs(8)).await?;
        let (oidc, exchanged, impersonated) = (
            issued(&vertex, "oidc").await?,
            issued(&vertex, "google-sts").await?,
            issued(&vertex, "google-iam").await?,
        );
        anyhow::ensure!(
            exchanged >= 4 && impersonated >= 4 && oidc >= exchanged,
            "over {sent} chats: {oidc} OIDC tokens, {exchanged} exchanges, {impersonated} impersonations"
        );
        // `/status` shows the credential's kind and validity (a 3 s token), never the token.
        let cred = vertex_credential(&node).await?;
        anyhow::ensure!(
            cred["kind"] == "GCP workload identity federation"
                && cred["state"] == "valid"
                && cred["expires_in_secs"].as_u64().is_some_and(|s| s <= 3)
                && cred["credential"] == "BackendSecurityPolicy default/vertex-auth",
            "{cred}"
        );

        // STS refuses: once the token in use expires, a 401 names the backend, the step, the audience
        // and Google's reason.
        vertex
            .set_credentials(json!({"lifetime_secs": 3, "refuse_google_sts": true}))
            .await?;
        let text = first_401_naming(&node, "Google STS token exchange").await?;
        for want in [
            "default/vertex-be",
            GCP_WIF_AUDIENCE,
            "/creds/google/sts answered 400 Bad Request: invalid_grant: The audience in ID Token",
        ] {
            anyhow::ensure!(text.contains(want), "{want:?} missing: {text}");
        }
        // `/status` and `switchyard status` say it failed, and why.
        let cred = vertex_credential(&node).await?;
        anyhow::ensure!(
            cred["state"] == "failed"
                && cred["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("Google STS token exchange")),
            "{cred}"
        );
        let out = tokio::process::Command::new(bin_path("switchyard"))
            .args(["status", "--admin", &format!("http://{}", node.admin)])
            .output()
            .await?;
        let table = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            out.status.success()
                && table.lines().any(|l| l.contains("default/vertex-be")
                    && l.contains("GCP workload identity federation")
                    && l.contains("failed")
                    && l.contains("Google STS token exchange")),
            "{table}"
        );
        anyhow::ensure!(!table.contains("swy."), "a token in {table}");
        nothing_secret_shown(&node, &text).await?;

        // IAM Credentials refuses the impersonation: the 401 names that step and the account.
        vertex
            .set_credentials(json!({"lifetime_secs": 3, "refuse_google_iam": true}))
            .await?;
        let text = first_401_naming(&node, "IAM Credentials generateAccessToken").await?;
        for want in [
            "default/vertex-be",
            GCP_IMPERSONATED,
            "answered 403 Forbidden: PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied",
        ] {
            anyhow::ensure!(text.contains(want), "{want:?} missing: {text}");
        }
        nothing_secret_shown(&node, &text).await?;

        // Google recovers: so does the backend.
        vertex
            .set_credentials(json!({"lifetime_secs": 3}))
            .await?;
        chats_again(&node.url("/v1/chat/completions")).await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_identity_federation_without_impersonation_sends_the_sts_token() {
    run_bounded(TEST_TIMEOUT, async {
        let (primary, vertex) = failing_primary_and_vertex().await?;
        let (source, secret) = federation(vertex.data_addr, false);
        let yaml = config_with_source(primary.data_addr, vertex.data_addr, &source, &secret);
        let sts = format!("http://{}/creds/google/sts", vertex.data_addr);
        let node = start_with_env(&yaml, &[("SWITCHYARD_GCP_STS_ENDPOINT", &sts)]).await?;
        chats_all_succeed(&node, Duration::from_millis(500)).await?;
        anyhow::ensure!(issued(&vertex, "google-sts").await? >= 1, "no exchange");
        anyhow::ensure!(
            issued(&vertex, "google-iam").await? == 0,
            "impersonated without serviceAccountImpersonation"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_default_credentials_are_found_in_googles_order_and_refreshed() {
    run_bounded(Duration::from_secs(180), async {
        let (primary, vertex) = failing_primary_and_vertex().await?;
        let addr = vertex.data_addr.to_string();
        // No credentialsFile, no federation: the node's own credentials.
        let yaml = config_with_source(primary.data_addr, vertex.data_addr, "", "");
        let files = tempfile::tempdir().context("temp dir")?;
        let write = |name: &str, text: &str| -> anyhow::Result<String> {
            let p = files.path().join(name);
            std::fs::write(&p, text).with_context(|| format!("write {name}"))?;
            Ok(p.display().to_string())
        };
        let subject = write("subject.jwt", &gcp_subject_token(600_000))?;
        let key = write("key.json", &gcp_key_file(&addr))?;
        let user = write("user.json", &gcp_authorized_user_file(&addr))?;
        let ext_file = write(
            "ext-file.json",
            &gcp_external_account_file(&addr, Some(&subject), true),
        )?;
        let impersonated = write("impersonated.json", &gcp_impersonated_file(&addr))?;
        let ext_url = write(
            "ext-url.json",
            &gcp_external_account_file(&addr, None, false),
        )?;
        // A home with gcloud's file, and one without.
        let gcloud_home = files.path().join("home-gcloud");
        std::fs::create_dir_all(gcloud_home.join(".config/gcloud"))?;
        std::fs::write(
            gcloud_home.join(".config/gcloud/application_default_credentials.json"),
            gcp_authorized_user_file(&addr),
        )?;
        let empty_home = files.path().join("home-empty");
        std::fs::create_dir_all(&empty_home)?;
        let (gcloud_home, empty_home) = (
            gcloud_home.display().to_string(),
            empty_home.display().to_string(),
        );
        let missing = files.path().join("missing.json").display().to_string();

        // (case, GOOGLE_APPLICATION_CREDENTIALS, HOME, GCE_METADATA_HOST, issuer whose count must grow,
        // issuers whose count must not).
        let refusing_metadata = "127.0.0.1:1";
        for (case, gac, home, metadata, grows, still) in [
            (
                "a service_account file",
                key.as_str(),
                empty_home.as_str(),
                refusing_metadata,
                "google",
                vec!["google-metadata"],
            ),
            (
                "an authorized_user file",
                &user,
                &empty_home,
                refusing_metadata,
                "google-refresh",
                vec![],
            ),
            (
                "an impersonated_service_account (gcloud --impersonate-service-account)",
                &impersonated,
                &empty_home,
                refusing_metadata,
                "google-iam",
                vec!["google-sts"],
            ),
            (
                "an external_account, file-sourced, impersonating",
                &ext_file,
                &empty_home,
                refusing_metadata,
                "google-iam",
                vec![],
            ),
            (
                "an external_account, url-sourced",
                &ext_url,
                &empty_home,
                refusing_metadata,
                "google-sts",
                vec!["google-iam"],
            ),
            (
                "gcloud's file before the metadata server",
                "",
                &gcloud_home,
                addr.as_str(),
                "google-refresh",
                vec!["google-metadata"],
            ),
            (
                "the metadata server",
                "",
                &empty_home,
                &addr,
                "google-metadata",
                vec!["google-refresh"],
            ),
        ] {
            let before = vertex.credentials().await?["issued"].clone();
            let count = |v: &Value, k: &str| v[k].as_u64().unwrap_or(0);
            let node = start_with_env(
                &yaml,
                &[
                    ("GOOGLE_APPLICATION_CREDENTIALS", gac),
                    ("CLOUDSDK_CONFIG", ""),
                    ("HOME", home),
                    ("GCE_METADATA_HOST", metadata),
                ],
            )
            .await?;
            chats_all_succeed(&node, Duration::from_millis(300))
                .await
                .with_context(|| case.to_owned())?;
            let after = vertex.credentials().await?["issued"].clone();
            anyhow::ensure!(
                count(&after, grows) > count(&before, grows),
                "{case}: no {grows} token: {after}"
            );
            for k in still {
                anyhow::ensure!(
                    count(&after, k) == count(&before, k),
                    "{case}: a {k} token: {after}"
                );
            }
            nothing_secret_shown(&node, "")
                .await
                .with_context(|| case.to_owned())?;
        }

        // Short-lived tokens from the metadata server are refreshed before they expire.
        vertex.set_credentials(json!({"lifetime_secs": 3})).await?;
        let before = issued(&vertex, "google-metadata").await?;
        let node = start_with_env(
            &yaml,
            &[
                ("GOOGLE_APPLICATION_CREDENTIALS", ""),
                ("CLOUDSDK_CONFIG", ""),
                ("HOME", &empty_home),
                ("GCE_METADATA_HOST", &addr),
            ],
        )
        .await?;
        chats_all_succeed(&node, Duration::from_secs(7)).await?;
        let fetched = issued(&vertex, "google-metadata").await? - before;
        anyhow::ensure!(
            fetched >= 4,
            "{fetched} metadata tokens over three lifetimes"
        );
        drop(node);

        // GOOGLE_APPLICATION_CREDENTIALS naming a missing file is reported, not skipped.
        let node = start_with_env(
            &yaml,
            &[
                ("GOOGLE_APPLICATION_CREDENTIALS", &missing),
                ("CLOUDSDK_CONFIG", ""),
                ("HOME", &gcloud_home),
                ("GCE_METADATA_HOST", &addr),
            ],
        )
        .await?;
        let text = first_401_naming(&node, "GOOGLE_APPLICATION_CREDENTIALS").await?;
        for want in [
            "default/vertex-be",
            &missing,
            "cannot read: entity not found",
        ] {
            anyhow::ensure!(text.contains(want), "{want:?} missing: {text}");
        }
        Ok(())
    })
    .await;
}
