//! Issue 5 through real `switchyard` and `mock-provider` processes: round trips through AWS Bedrock
//! (SigV4-verified by the mock), Azure OpenAI and Anthropic, streaming and not, checked field by field
//! against the OpenAI shape; the seed page's scenario with a Bedrock fallback over TLS with a test CA;
//! provider errors as OpenAI errors; a Bedrock stream cut mid-way; missing credentials.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    free_port, http_get, http_post_json, http_post_json_stream, http_request, run_bounded,
    MockOptions, MockProvider, SwitchyardNode, TlsFiles, SEED_POLICY,
};
use switchyard_cluster_tests::mock::bedrock::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";
const TEST_TIMEOUT: Duration = Duration::from_secs(90);
const BEDROCK_HOST: &str = "bedrock-runtime.us-east-1.amazonaws.com";

async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) {
    run_bounded(TEST_TIMEOUT, f).await
}

/// One backendRef of the test route.
struct Upstream<'a> {
    name: &'a str,
    addr: SocketAddr,
    priority: u32,
    /// `AWSBedrock`, `AzureOpenAI`, `Anthropic`, or `None` for a plain OpenAI `Backend`.
    schema: Option<&'a str>,
    /// `(policy spec YAML indented by 2, extra documents)`.
    policy: Option<(String, String)>,
    /// CA PEM to trust (adds a BackendTLSPolicy validating [`BEDROCK_HOST`]).
    tls_ca: Option<&'a str>,
}

fn indent(text: &str, by: usize) -> String {
    text.lines()
        .map(|l| format!("{}{l}\n", " ".repeat(by)))
        .collect()
}

fn aws_policy(profile: &str) -> (String, String) {
    let file = format!(
        "[default]\naws_access_key_id = {TEST_ACCESS_KEY_ID}\naws_secret_access_key = {TEST_SECRET_ACCESS_KEY}\n"
    );
    (
        format!("  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n    credentialsFile:\n      secretRef:\n        name: aws-creds\n      profile: {profile}\n"),
        format!("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: aws-creds\n  namespace: default\nstringData:\n  credentials: |\n{}", indent(&file, 4)),
    )
}

fn key_policy(kind: &str, field: &str, secret: &str) -> (String, String) {
    (
        format!("  type: {kind}\n  {field}:\n    secretRef:\n      name: {secret}\n"),
        format!("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: {secret}\n  namespace: default\nstringData:\n  apiKey: test-{secret}\n"),
    )
}

fn config(upstreams: &[Upstream<'_>], traffic: &str) -> String {
    let mut refs = String::new();
    let mut docs = String::new();
    for u in upstreams {
        refs.push_str(&format!(
            "        - name: {}\n          priority: {}\n",
            u.name, u.priority
        ));
        let backend = format!("{}-be", u.name);
        let backend_name = if u.schema.is_some() { &backend } else { u.name };
        docs.push_str(&format!(
            "---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: {backend_name}\n  namespace: default\nspec:\n  endpoints:\n    - ip:\n        address: {}\n        port: {}\n",
            u.addr.ip(),
            u.addr.port()
        ));
        if let Some(schema) = u.schema {
            docs.push_str(&format!(
                "---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\nmetadata:\n  name: {}\n  namespace: default\nspec:\n  schema:\n    name: {schema}\n  backendRef:\n    name: {backend}\n    kind: Backend\n    group: gateway.envoyproxy.io\n",
                u.name
            ));
        }
        if let Some((spec, extra)) = &u.policy {
            docs.push_str(&format!(
                "---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: {0}-auth\n  namespace: default\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: {0}\n{spec}{extra}",
                u.name
            ));
        }
        if let Some(ca) = u.tls_ca {
            docs.push_str(&format!(
                "---\napiVersion: gateway.networking.k8s.io/v1alpha3\nkind: BackendTLSPolicy\nmetadata:\n  name: {backend_name}-tls\n  namespace: default\nspec:\n  targetRefs:\n    - group: gateway.envoyproxy.io\n      kind: Backend\n      name: {backend_name}\n  validation:\n    hostname: {BEDROCK_HOST}\n    caCertificateRefs:\n      - group: \"\"\n        kind: ConfigMap\n        name: {backend_name}-ca\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {backend_name}-ca\n  namespace: default\ndata:\n  ca.crt: |\n{}",
                indent(ca, 4)
            ));
        }
    }
    let mut yaml = format!(
        "apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIGatewayRoute\nmetadata:\n  name: provider-fallback\n  namespace: default\nspec:\n  schema:\n    name: OpenAI\n  rules:\n    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: {MODEL}\n      backendRefs:\n{refs}{docs}"
    );
    if !traffic.is_empty() {
        yaml.push_str(&format!("---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata:\n  name: policy\n  namespace: default\nspec:\n  targetRefs:\n    - group: gateway.networking.k8s.io\n      kind: HTTPRoute\n      name: provider-fallback\n{traffic}"));
    }
    yaml
}

fn single(name: &str, addr: SocketAddr, schema: &str, policy: (String, String)) -> String {
    config(
        &[Upstream {
            name,
            addr,
            priority: 0,
            schema: Some(schema),
            policy: Some(policy),
            tls_ca: None,
        }],
        "",
    )
}

fn chat(content: &str, stream: bool) -> Value {
    json!({
        "model": MODEL,
        "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": content}],
        "max_tokens": 64,
        "stream": stream,
        "stream_options": if stream { json!({"include_usage": true}) } else { Value::Null },
    })
}

/// Checks a non-streamed answer against the OpenAI `chat.completion` shape.
fn check_completion(v: &Value, content: &str) -> anyhow::Result<()> {
    anyhow::ensure!(v["object"] == "chat.completion", "{v}");
    anyhow::ensure!(v["id"].as_str().is_some_and(|s| !s.is_empty()), "{v}");
    anyhow::ensure!(v["created"].as_u64().is_some(), "{v}");
    anyhow::ensure!(
        v["model"].as_str().is_some_and(|m| m.starts_with(MODEL)),
        "{v}"
    );
    let choice = &v["choices"][0];
    anyhow::ensure!(choice["index"] == 0, "{v}");
    anyhow::ensure!(choice["message"]["role"] == "assistant", "{v}");
    anyhow::ensure!(choice["message"]["content"] == content, "{v}");
    anyhow::ensure!(choice["finish_reason"] == "stop", "{v}");
    let u = &v["usage"];
    let (p, c, t) = (
        u["prompt_tokens"].as_u64().unwrap_or(0),
        u["completion_tokens"].as_u64().unwrap_or(0),
        u["total_tokens"].as_u64().unwrap_or(0),
    );
    anyhow::ensure!(p > 0 && c > 0 && t == p + c, "usage {u}");
    Ok(())
}

/// Reads an SSE answer: checks every chunk's shape, returns the joined content.
async fn check_stream(node: &SwitchyardNode, body: &Value) -> anyhow::Result<String> {
    let resp = http_post_json_stream(&node.url("/v1/chat/completions"), body).await?;
    anyhow::ensure!(resp.status == 200, "stream status {}", resp.status);
    let ct = resp
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(ct.starts_with("text/event-stream"), "content-type {ct}");
    let (chunks, err) = resp.collect_chunks().await;
    anyhow::ensure!(err.is_none(), "stream ended with {err:?}");
    let text: String = chunks
        .iter()
        .map(|c| String::from_utf8_lossy(&c.data))
        .collect();
    anyhow::ensure!(text.ends_with("data: [DONE]\n\n"), "no [DONE]: {text}");
    let mut content = String::new();
    let (mut finish, mut usage, mut first_role) = (None, None, None);
    for event in text.split("\n\n").filter(|e| !e.is_empty()) {
        let data = event
            .strip_prefix("data: ")
            .ok_or_else(|| anyhow::anyhow!("not a data event: {event:?}"))?;
        if data == "[DONE]" {
            continue;
        }
        let v: Value = serde_json::from_str(data)?;
        anyhow::ensure!(v["object"] == "chat.completion.chunk", "{v}");
        anyhow::ensure!(
            v["id"].as_str().is_some_and(|s| !s.is_empty()) && v["created"].is_u64(),
            "{v}"
        );
        if let Some(choice) = v["choices"].as_array().and_then(|c| c.first()) {
            anyhow::ensure!(choice["index"] == 0, "{v}");
            if first_role.is_none() {
                first_role = choice["delta"]["role"].as_str().map(str::to_owned);
            }
            if let Some(c) = choice["delta"]["content"].as_str() {
                content.push_str(c);
            }
            if let Some(f) = choice["finish_reason"].as_str() {
                finish = Some(f.to_owned());
            }
        } else if !v["usage"].is_null() {
            usage = Some(v["usage"].clone());
        }
    }
    anyhow::ensure!(
        first_role.as_deref() == Some("assistant"),
        "first delta has no role"
    );
    anyhow::ensure!(finish.as_deref() == Some("stop"), "finish {finish:?}");
    let u = usage.ok_or_else(|| anyhow::anyhow!("no usage chunk: {text}"))?;
    anyhow::ensure!(u["total_tokens"].as_u64().unwrap_or(0) > 0, "usage {u}");
    Ok(content)
}

async fn round_trip(node: &SwitchyardNode, name: &str) -> anyhow::Result<()> {
    let r = http_post_json(&node.url("/v1/chat/completions"), &chat("hi", false)).await?;
    anyhow::ensure!(
        r.status == 200,
        "{} {}\n{}",
        r.status,
        r.text(),
        node.logs()
    );
    check_completion(&r.json()?, &format!("hello from {name}"))?;
    let content = check_stream(node, &chat("hi", true)).await?;
    anyhow::ensure!(
        content == format!("hello from {name}"),
        "streamed {content:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_round_trip_is_signed_translated_and_labelled() {
    bounded(async {
        let mock = MockProvider::start("bedrock").await?;
        let node = SwitchyardNode::start(&single(
            "bedrock",
            mock.data_addr,
            "AWSBedrock",
            aws_policy("default"),
        ))
        .await?;
        round_trip(&node, "bedrock").await?;
        let reqs = mock.requests().await?;
        anyhow::ensure!(reqs.len() == 2, "{reqs:?}");
        anyhow::ensure!(
            reqs[0].path == "/model/us.meta.llama3-2-1b-instruct-v1%3A0/converse",
            "{}",
            reqs[0].path
        );
        anyhow::ensure!(
            reqs[1].path == "/model/us.meta.llama3-2-1b-instruct-v1%3A0/converse-stream",
            "{}",
            reqs[1].path
        );
        for r in &reqs {
            anyhow::ensure!(
                r.sigv4.as_deref() == Some("verified"),
                "signature: {:?}",
                r.sigv4
            );
            let body = r.json().ok_or_else(|| anyhow::anyhow!("not JSON"))?;
            anyhow::ensure!(body["system"] == json!([{"text": "be brief"}]), "{body}");
            anyhow::ensure!(
                body["messages"] == json!([{"role": "user", "content": [{"text": "hi"}]}]),
                "{body}"
            );
            anyhow::ensure!(body["inferenceConfig"]["maxTokens"] == 64, "{body}");
        }
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        anyhow::ensure!(
            metrics
                .lines()
                .any(|l| l.starts_with("gen_ai_client_token_usage")
                    && l.contains("gen_ai_provider_name=\"aws.bedrock\"")
                    && l.contains(&format!("gen_ai_response_model=\"{MODEL}\""))),
            "no Bedrock token usage metric:\n{metrics}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_round_trip_uses_the_deployment_path_and_api_key() {
    bounded(async {
        let mock = MockProvider::start("azure").await?;
        let node = SwitchyardNode::start(&single(
            "azure",
            mock.data_addr,
            "AzureOpenAI",
            key_policy("AzureAPIKey", "azureAPIKey", "azure-key"),
        ))
        .await?;
        round_trip(&node, "azure").await?;
        for r in mock.requests().await? {
            anyhow::ensure!(
                r.path
                    == format!(
                        "/openai/deployments/{}/chat/completions?api-version=2024-10-21",
                        "us.meta.llama3-2-1b-instruct-v1%3A0"
                    ),
                "{}",
                r.path
            );
            anyhow::ensure!(
                r.header("api-key") == Some("test-azure-key"),
                "{:?}",
                r.headers
            );
            anyhow::ensure!(r.header("authorization").is_none(), "{:?}", r.headers);
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_round_trip_uses_messages_and_its_headers() {
    bounded(async {
        let mock = MockProvider::start("anthropic").await?;
        let node = SwitchyardNode::start(&single(
            "anthropic",
            mock.data_addr,
            "Anthropic",
            key_policy("AnthropicAPIKey", "anthropicAPIKey", "anthropic-key"),
        ))
        .await?;
        round_trip(&node, "anthropic").await?;
        for r in mock.requests().await? {
            anyhow::ensure!(r.path == "/v1/messages", "{}", r.path);
            anyhow::ensure!(
                r.header("x-api-key") == Some("test-anthropic-key"),
                "{:?}",
                r.headers
            );
            anyhow::ensure!(
                r.header("anthropic-version") == Some("2023-06-01"),
                "{:?}",
                r.headers
            );
            let body = r.json().ok_or_else(|| anyhow::anyhow!("not JSON"))?;
            anyhow::ensure!(
                body["system"] == "be brief" && body["max_tokens"] == 64,
                "{body}"
            );
            anyhow::ensure!(
                body["messages"] == json!([{"role": "user", "content": "hi"}]),
                "{body}"
            );
        }
        Ok(())
    })
    .await;
}

async fn seed_scenario(primary_500: bool) -> anyhow::Result<()> {
    let tls = TlsFiles::with_test_ca(&[BEDROCK_HOST, "127.0.0.1"])?;
    let bedrock = MockProvider::start_with(MockOptions {
        name: Some("bedrock".into()),
        tls: Some((tls.cert_path.clone(), tls.key_path.clone())),
        ..MockOptions::default()
    })
    .await?;
    let primary = if primary_500 {
        let p = MockProvider::start("primary").await?;
        p.set_mode(json!({"mode": "status", "status": 500})).await?;
        Some(p)
    } else {
        None
    };
    let primary_addr = primary.as_ref().map_or_else(
        || SocketAddr::from(([127, 0, 0, 1], free_port())),
        |p| p.data_addr,
    );
    let yaml = config(
        &[
            Upstream {
                name: "primary",
                addr: primary_addr,
                priority: 0,
                schema: None,
                policy: None,
                tls_ca: None,
            },
            Upstream {
                name: "bedrock",
                addr: bedrock.data_addr,
                priority: 1,
                schema: Some("AWSBedrock"),
                policy: Some(aws_policy("default")),
                tls_ca: Some(&tls.ca_pem),
            },
        ],
        SEED_POLICY,
    );
    let node = SwitchyardNode::start(&yaml).await?;
    for i in 0..8 {
        let stream = i % 2 == 1;
        let body = chat(&format!("request-{i}"), stream);
        if stream {
            let content = check_stream(&node, &body).await?;
            anyhow::ensure!(content == "hello from bedrock", "request {i}: {content:?}");
        } else {
            let r = http_post_json(&node.url("/v1/chat/completions"), &body).await?;
            anyhow::ensure!(
                r.status == 200,
                "request {i}: {} {}\n{}",
                r.status,
                r.text(),
                node.logs()
            );
            check_completion(&r.json()?, "hello from bedrock")?;
        }
    }
    let reqs = bedrock.requests().await?;
    anyhow::ensure!(reqs.len() == 8, "bedrock saw {} requests", reqs.len());
    for r in &reqs {
        anyhow::ensure!(
            r.sigv4.as_deref() == Some("verified"),
            "request {} signature: {:?}",
            r.seq,
            r.sigv4
        );
    }
    if let Some(p) = &primary {
        let hits = p.request_count().await?;
        anyhow::ensure!(
            hits <= 1,
            "primary should be ejected after one 500, got {hits}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_primary_refusing_falls_back_to_bedrock_over_tls() {
    bounded(seed_scenario(false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_scenario_primary_500_falls_back_to_bedrock_over_tls() {
    bounded(seed_scenario(true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_errors_become_openai_errors_with_their_status() {
    bounded(async {
        for (name, schema, policy, status, code) in [
            (
                "bedrock",
                "AWSBedrock",
                aws_policy("default"),
                429,
                Some("ThrottlingException"),
            ),
            (
                "bedrock",
                "AWSBedrock",
                aws_policy("default"),
                400,
                Some("ValidationException"),
            ),
            (
                "anthropic",
                "Anthropic",
                key_policy("AnthropicAPIKey", "anthropicAPIKey", "k"),
                529,
                Some("overloaded_error"),
            ),
            (
                "azure",
                "AzureOpenAI",
                key_policy("AzureAPIKey", "azureAPIKey", "k"),
                404,
                Some("404"),
            ),
        ] {
            let mock = MockProvider::start(name).await?;
            mock.set_mode(json!({"mode": "status", "status": status}))
                .await?;
            let node = SwitchyardNode::start(&single(name, mock.data_addr, schema, policy)).await?;
            let r = http_post_json(&node.url("/v1/chat/completions"), &chat("hi", false)).await?;
            anyhow::ensure!(
                r.status.as_u16() == status,
                "{name}: {} {}",
                r.status,
                r.text()
            );
            let v = r.json()?;
            let err = &v["error"];
            anyhow::ensure!(
                err["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("injected status")),
                "{name}: {v}"
            );
            anyhow::ensure!(err["type"].is_string(), "{name}: {v}");
            anyhow::ensure!(err["code"].as_str() == code, "{name}: {v}");
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_stream_cut_mid_way_ends_with_an_sse_error_event() {
    bounded(async {
        let mock = MockProvider::start("bedrock").await?;
        mock.set_mode(json!({"mode": "cut", "after_chunks": 2}))
            .await?;
        let node = SwitchyardNode::start(&single(
            "bedrock",
            mock.data_addr,
            "AWSBedrock",
            aws_policy("default"),
        ))
        .await?;
        let resp =
            http_post_json_stream(&node.url("/v1/chat/completions"), &chat("hi", true)).await?;
        anyhow::ensure!(resp.status == 200, "status {}", resp.status);
        let (chunks, err) = resp.collect_chunks().await;
        let text: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.data))
            .collect();
        anyhow::ensure!(
            text.contains("\"content\":\"h"),
            "the first chunks arrive translated: {text}"
        );
        let last = text.trim_end().rsplit("\n\n").next().unwrap_or_default();
        let v: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap_or(last))?;
        anyhow::ensure!(
            v["error"]["code"] == "upstream_stream_truncated",
            "last event {last}"
        );
        anyhow::ensure!(
            !text.contains("[DONE]"),
            "a cut stream must not end cleanly: {text}"
        );
        anyhow::ensure!(
            err.is_some(),
            "the connection must be aborted, not ended cleanly"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_bedrock_credentials_answer_401_and_send_nothing() {
    bounded(async {
        let mock = MockProvider::start("bedrock").await?;
        // The credentials file has no such profile: the policy resolves to no credential.
        let node = SwitchyardNode::start(&single(
            "bedrock",
            mock.data_addr,
            "AWSBedrock",
            aws_policy("absent"),
        ))
        .await?;
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat("hi", false)).await?;
        anyhow::ensure!(r.status == 401, "{} {}", r.status, r.text());
        let v = r.json()?;
        anyhow::ensure!(
            v["error"]["type"] == "authentication_error"
                && v["error"]["code"] == "missing_backend_credential",
            "{v}"
        );
        anyhow::ensure!(!r.text().contains(TEST_SECRET_ACCESS_KEY), "secret leaked");
        anyhow::ensure!(
            mock.request_count().await? == 0,
            "a request was sent without credentials"
        );
        let status = http_get(&node.admin_url("/status")).await?.text();
        anyhow::ensure!(
            !status.contains(TEST_SECRET_ACCESS_KEY)
                && !node.logs().contains(TEST_SECRET_ACCESS_KEY),
            "secret leaked"
        );
        Ok(())
    })
    .await;
}

/// Issue 16.3: `headerMutation` / `bodyMutation` on the AIServiceBackend and on the route's backendRef,
/// merged with the backendRef's winning, applied after translation and before signing: the Bedrock mock
/// sees the edits and still verifies the SigV4 signature over the mutated body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_and_body_mutations_reach_a_signed_bedrock_request() {
    bounded(async {
        let mock = MockProvider::start("bedrock").await?;
        let yaml = single("bedrock", mock.data_addr, "AWSBedrock", aws_policy("default"))
            .replacen(
                "  schema:\n    name: AWSBedrock\n",
                "  schema:\n    name: AWSBedrock\n  headerMutation:\n    set:\n      - name: X-Org\n        value: acme\n      - name: x-tier\n        value: basic\n  bodyMutation:\n    set:\n      - path: additionalModelRequestFields\n        value: '{\"top_k\": 5}'\n",
                1,
            )
            .replacen(
                "        - name: bedrock\n          priority: 0\n",
                "        - name: bedrock\n          priority: 0\n          headerMutation:\n            set:\n              - name: x-tier\n                value: premium\n",
                1,
            );
        let node = SwitchyardNode::start(&yaml).await?;
        round_trip(&node, "bedrock").await?;
        let reqs = mock.requests().await?;
        anyhow::ensure!(reqs.len() == 2, "{reqs:?}");
        for r in &reqs {
            anyhow::ensure!(r.sigv4.as_deref() == Some("verified"), "signature: {:?}", r.sigv4);
            anyhow::ensure!(r.headers.get("x-org").map(String::as_str) == Some("acme"), "{:?}", r.headers);
            anyhow::ensure!(
                r.headers.get("x-tier").map(String::as_str) == Some("premium"),
                "the backendRef's value wins: {:?}",
                r.headers
            );
            let body = r.json().ok_or_else(|| anyhow::anyhow!("not JSON"))?;
            anyhow::ensure!(body["additionalModelRequestFields"] == json!({"top_k": 5}), "{body}");
            anyhow::ensure!(body["inferenceConfig"]["maxTokens"] == 64, "translation kept: {body}");
        }
        Ok(())
    })
    .await;
}

/// A mutation edits what the client sent (a header removed, body members removed and set) but never
/// replaces the backend's own credential: credentials are put on after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutations_edit_client_headers_and_body_but_not_the_credential() {
    bounded(async {
        let mock = MockProvider::start("openai").await?;
        let yaml = single("openai", mock.data_addr, "OpenAI", key_policy("APIKey", "apiKey", "openai-key"))
            .replacen(
                "    group: gateway.envoyproxy.io\n",
                "    group: gateway.envoyproxy.io\n  headerMutation:\n    remove:\n      - X-Internal\n    set:\n      - name: authorization\n        value: Bearer not-the-key\n  bodyMutation:\n    remove:\n      - user\n    set:\n      - path: service_tier\n        value: '\"scale\"'\n",
                1,
            );
        let node = SwitchyardNode::start(&yaml).await?;
        let mut body = chat("hi", false);
        body["user"] = json!("u-1");
        let r = http_request(
            http::Method::POST,
            &node.url("/v1/chat/completions"),
            &[("content-type", "application/json"), ("x-internal", "do-not-forward"), ("x-keep", "1")],
            body.to_string(),
        )
        .await?;
        anyhow::ensure!(r.status == 200, "{} {}\n{}", r.status, r.text(), node.logs());
        let reqs = mock.requests().await?;
        anyhow::ensure!(reqs.len() == 1, "{reqs:?}");
        let h = &reqs[0].headers;
        anyhow::ensure!(!h.contains_key("x-internal"), "removed header forwarded: {h:?}");
        anyhow::ensure!(h.get("x-keep").map(String::as_str) == Some("1"), "{h:?}");
        anyhow::ensure!(
            h.get("authorization").map(String::as_str) == Some("Bearer test-openai-key"),
            "the policy's key must win: {:?}",
            h.get("authorization")
        );
        let sent = reqs[0].json().ok_or_else(|| anyhow::anyhow!("not JSON"))?;
        anyhow::ensure!(sent.get("user").is_none(), "{sent}");
        anyhow::ensure!(sent["service_tier"] == "scale", "{sent}");
        anyhow::ensure!(sent["messages"][1]["content"] == "hi", "{sent}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohere_round_trip_uses_v2_chat_and_a_bearer_key() {
    bounded(async {
        let mock = MockProvider::start_checked("cohere").await?;
        let node = SwitchyardNode::start(&single(
            "cohere",
            mock.data_addr,
            "Cohere",
            key_policy("APIKey", "apiKey", "cohere-key"),
        ))
        .await?;
        round_trip(&node, "cohere").await?;
        for r in mock.requests().await? {
            anyhow::ensure!(r.path == "/v2/chat", "{}", r.path);
            anyhow::ensure!(
                r.header("authorization") == Some("Bearer test-cohere-key"),
                "{:?}",
                r.headers
            );
            let body = r.json().ok_or_else(|| anyhow::anyhow!("not JSON"))?;
            anyhow::ensure!(
                body["messages"]
                    == json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
                    && body["max_tokens"] == 64,
                "{body}"
            );
        }
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        anyhow::ensure!(
            metrics.lines().any(|l| l.starts_with("gen_ai_client_token_usage")
                && l.contains("gen_ai_provider_name=\"cohere\"")),
            "no Cohere token usage metric:\n{metrics}"
        );
        Ok(())
    })
    .await;
}

/// Cohere's rerank API where Envoy AI Gateway v1.1 serves it (`/cohere/v2/rerank`): routed by the body's
/// `model` to a Cohere backend and passed through (`/v2/rerank`, the backend's key, the model overridden),
/// with failover from a failing Cohere primary; a rule whose only backend is not Cohere answers 422 naming
/// the backend, which never sees the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohere_rerank_is_passed_through_with_failover() {
    bounded(async {
        let primary = MockProvider::start_checked("cohere-primary").await?;
        let fallback = MockProvider::start_checked("cohere-fallback").await?;
        primary
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        let upstream = |name, addr, priority| Upstream {
            name,
            addr,
            priority,
            schema: Some("Cohere"),
            policy: Some(key_policy("APIKey", "apiKey", &format!("{name}-key"))),
            tls_ca: None,
        };
        let yaml = config(
            &[
                upstream("cohere-primary", primary.data_addr, 0),
                upstream("cohere-fallback", fallback.data_addr, 1),
            ],
            SEED_POLICY,
        )
        .replacen(
            "          priority: 1\n",
            "          priority: 1\n          modelNameOverride: rerank-v3.5\n",
            1,
        );
        let node = SwitchyardNode::start(&yaml).await?;
        let body = json!({"model": MODEL, "query": "capital of France?",
            "documents": ["Paris is the capital.", "Berlin is in Germany."], "top_n": 2});
        let r = http_post_json(&node.url("/cohere/v2/rerank"), &body).await?;
        anyhow::ensure!(
            r.status == 200,
            "{} {}\n{}",
            r.status,
            r.text(),
            node.logs()
        );
        let v = r.json()?;
        anyhow::ensure!(
            v["results"][0]["index"] == 0 && v["results"].as_array().map(Vec::len) == Some(2),
            "{v}"
        );
        anyhow::ensure!(
            v["meta"]["billed_units"]["search_units"] == 1,
            "Cohere's answer as it is: {v}"
        );
        let sent = fallback.requests().await?;
        anyhow::ensure!(sent.len() == 1, "{sent:?}");
        anyhow::ensure!(sent[0].path == "/v2/rerank", "{}", sent[0].path);
        anyhow::ensure!(
            sent[0].header("authorization") == Some("Bearer test-cohere-fallback-key"),
            "{:?}",
            sent[0].headers
        );
        let b = sent[0].json().ok_or_else(|| anyhow::anyhow!("not JSON"))?;
        anyhow::ensure!(
            b["model"] == "rerank-v3.5" && b["query"] == "capital of France?",
            "{b}"
        );
        anyhow::ensure!(
            primary.request_count().await? == 1,
            "the failing primary was tried once"
        );

        // A rule with only an OpenAI backend: refused before anything is sent.
        let openai = MockProvider::start("openai").await?;
        let node = SwitchyardNode::start(&single(
            "openai",
            openai.data_addr,
            "OpenAI",
            key_policy("APIKey", "apiKey", "openai-key"),
        ))
        .await?;
        let r = http_post_json(&node.url("/cohere/v2/rerank"), &body).await?;
        anyhow::ensure!(r.status == 422, "{} {}", r.status, r.text());
        anyhow::ensure!(
            r.text().contains("Cohere backends only") && r.text().contains("OpenAI"),
            "{}",
            r.text()
        );
        anyhow::ensure!(openai.request_count().await? == 0);
        Ok(())
    })
    .await;
}
