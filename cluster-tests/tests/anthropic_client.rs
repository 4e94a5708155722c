//! Issue 17 item 5 and issue 15 item 4: Anthropic's Messages API at `/anthropic/v1/messages` (and
//! `count_tokens`), driven by the official `anthropic` Python client. Routed by model through the same
//! priorities, retries and outlier detection as chat: an `Anthropic` primary gets the body as is, an
//! `AWSAnthropic` fallback gets it through Bedrock InvokeModel / InvokeModelWithResponseStream (SigV4
//! verified by the mock, which checks the wire format against botocore's bedrock-runtime model). A
//! Claude-Code-shaped streamed request fails over from a primary answering 529 `overloaded_error` to the
//! Bedrock fallback and the client sees one clean stream; the 529 counts for passive health (the primary
//! is ejected and gets no further request). An `overloaded_error` event before the first content fails
//! over too; one after it reaches the client as an Anthropic `error` event on an aborted stream. Gateway
//! errors are in Anthropic's error shape.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    bedrock_service_model, http_get, http_post_json, http_post_json_stream, run_client_script,
    venv_python, MockOptions, MockProvider, SwitchyardNode,
};
use switchyard_cluster_tests::mock::bedrock::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

/// The Bedrock model the fallback is sent (a `modelNameOverride`).
const BEDROCK_MODEL: &str = "us.anthropic.claude-sonnet-4-5-v1:0";

fn rule(model: &str, refs: &[(&str, u32, Option<&str>)]) -> String {
    let mut r = format!("    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: {model}\n      backendRefs:\n");
    for (name, priority, over) in refs {
        r.push_str(&format!(
            "        - name: {name}\n          priority: {priority}\n"
        ));
        if let Some(o) = over {
            r.push_str(&format!("          modelNameOverride: \"{o}\"\n"));
        }
    }
    r
}

fn service_backend(name: &str, schema: &str, backend: &str) -> String {
    format!("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\nmetadata:\n  name: {name}\nspec:\n  schema:\n    name: {schema}\n  backendRef:\n    name: {backend}\n    kind: Backend\n    group: gateway.envoyproxy.io\n")
}

fn backend(name: &str, addr: SocketAddr) -> String {
    format!("---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: {name}\nspec:\n  endpoints:\n    - ip:\n        address: {}\n        port: {}\n", addr.ip(), addr.port())
}

fn policy(name: &str, target: &str, kind: &str) -> String {
    let auth = match kind {
        "aws" => "  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n    credentialsFile:\n      secretRef:\n        name: aws\n",
        _ => "  type: AnthropicAPIKey\n  anthropicAPIKey:\n    secretRef:\n      name: keys\n",
    };
    format!("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: {name}\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: {target}\n{auth}")
}

fn config(primary: SocketAddr, bedrock: SocketAddr) -> String {
    let bedrock_ref = ("claude-bedrock", 1, Some(BEDROCK_MODEL));
    let rules = [
        // The Claude Code setup: Anthropic's API first, Claude on Bedrock behind it.
        rule(
            "claude-sonnet-4-5",
            &[("anthropic-primary", 0, None), bedrock_ref],
        ),
        rule(
            "claude-on-bedrock",
            &[("claude-bedrock", 0, Some(BEDROCK_MODEL))],
        ),
        // The same pair for the stream tests (each rule has its own health).
        rule(
            "claude-event-before-content",
            &[("anthropic-primary", 0, None), bedrock_ref],
        ),
        rule(
            "claude-event-after-content",
            &[("anthropic-primary", 0, None)],
        ),
        // An OpenAI backend cannot take Messages in.
        rule("gpt-4o", &[("openai-be", 0, None)]),
    ]
    .concat();
    let mut out = format!("apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIGatewayRoute\nmetadata:\n  name: claude\nspec:\n  rules:\n{rules}");
    out.push_str(&service_backend(
        "anthropic-primary",
        "Anthropic",
        "primary-be",
    ));
    out.push_str(&service_backend(
        "claude-bedrock",
        "AWSAnthropic",
        "bedrock-be",
    ));
    out.push_str(&backend("primary-be", primary));
    out.push_str(&backend("bedrock-be", bedrock));
    out.push_str(&backend("openai-be", primary));
    out.push_str(&policy("primary-auth", "anthropic-primary", "key"));
    out.push_str(&policy("bedrock-auth", "claude-bedrock", "aws"));
    out.push_str(&format!("---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\nstringData:\n  credentials: |\n    [default]\n    aws_access_key_id = {TEST_ACCESS_KEY_ID}\n    aws_secret_access_key = {TEST_SECRET_ACCESS_KEY}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\nstringData:\n  apiKey: test-key\n"));
    // Anthropic's 529 is a 5xx: retried under `5xx`, and one ejects (consecutive5XxErrors: 1).
    out.push_str("---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata:\n  name: claude-policy\nspec:\n  targetRefs:\n    - group: gateway.networking.k8s.io\n      kind: HTTPRoute\n      name: claude\n  retry:\n    numRetries: 2\n    perRetry:\n      backOff:\n        baseInterval: 10ms\n        maxInterval: 100ms\n    retryOn:\n      triggers:\n        - 5xx\n        - connect-failure\n        - reset\n  healthCheck:\n    passive:\n      baseEjectionTime: 60s\n      interval: 2s\n      maxEjectionPercent: 100\n      consecutive5XxErrors: 1\n");
    out
}

/// Runs one case of the Python script; its stdout.
async fn client(
    python: &std::path::Path,
    node: &SwitchyardNode,
    model: &str,
    case: &str,
) -> anyhow::Result<String> {
    let url = node.url("/anthropic");
    run_client_script(python, "anthropic_client.py", &[&url, model, case], || {
        node.logs()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_anthropic_client_fails_over_from_an_overloaded_primary_to_claude_on_bedrock() {
    let python = tokio::task::spawn_blocking(venv_python)
        .await
        .expect("venv task");
    let model = bedrock_service_model(&python);
    let result = tokio::time::timeout(Duration::from_secs(180), async {
        let primary = MockProvider::start("anthropic").await?;
        let bedrock = MockProvider::start_with(MockOptions {
            name: Some("bedrock".to_owned()),
            extra_args: vec![
                "--bedrock-service-model".to_owned(),
                model.display().to_string(),
            ],
            ..MockOptions::default()
        })
        .await?;
        let node = SwitchyardNode::start(&config(primary.data_addr, bedrock.data_addr)).await?;

        // Anthropic primary: the body as the client sent it, the backend's key, the client's version.
        let out = client(&python, &node, "claude-sonnet-4-5", "basic").await?;
        anyhow::ensure!(out.contains("basic count_tokens input_tokens="), "{out}");
        let seen = primary.requests().await?;
        anyhow::ensure!(seen.len() == 3, "{seen:?}");
        for r in &seen {
            anyhow::ensure!(
                r.headers.get("x-api-key").map(String::as_str) == Some("test-key"),
                "{:?}",
                r.headers
            );
            anyhow::ensure!(r.headers.contains_key("anthropic-version"), "{:?}", r.headers);
            let body: Value = serde_json::from_str(&r.body)?;
            anyhow::ensure!(body["model"] == "claude-sonnet-4-5", "{body}");
        }
        anyhow::ensure!(seen[2].path == "/v1/messages/count_tokens", "{}", seen[2].path);
        anyhow::ensure!(bedrock.request_count().await? == 0);

        // Claude on Bedrock alone: InvokeModel, its stream and CountTokens, every one signed.
        let out = client(&python, &node, "claude-on-bedrock", "basic").await?;
        anyhow::ensure!(out.contains(&format!("model={BEDROCK_MODEL}")), "{out}");
        client(&python, &node, "claude-on-bedrock", "tools").await?;
        let encoded = BEDROCK_MODEL.replace(':', "%3A");
        let paths: Vec<String> = bedrock.requests().await?.iter().map(|r| r.path.clone()).collect();
        anyhow::ensure!(
            paths
                == [
                    format!("/model/{encoded}/invoke"),
                    format!("/model/{encoded}/invoke-with-response-stream"),
                    format!("/model/{encoded}/count-tokens"),
                    format!("/model/{encoded}/invoke-with-response-stream"),
                ],
            "{paths:?}"
        );
        bedrock.clear().await?;

        // The primary is overloaded: the Claude Code request falls over to Bedrock before any byte
        // reached the client, which sees one clean stream.
        primary
            .set_mode(json!({"mode": "status", "status": 529}))
            .await?;
        primary.clear().await?;
        let out = client(&python, &node, "claude-sonnet-4-5", "claude-code").await?;
        anyhow::ensure!(
            out.contains("blocks=thinking,text") && out.contains(&format!("model={BEDROCK_MODEL}")),
            "{out}"
        );
        // The beta client's `?beta=true` is the gateway's business: Anthropic gets its plain path.
        let tried = primary.requests().await?;
        anyhow::ensure!(
            tried.len() == 1 && tried[0].path == "/v1/messages",
            "{tried:?}"
        );
        let sent = bedrock.requests().await?;
        anyhow::ensure!(sent.len() == 1, "{sent:?}");
        anyhow::ensure!(sent[0].sigv4.as_deref() == Some("verified"), "{:?}", sent[0].sigv4);
        anyhow::ensure!(
            sent[0].path == format!("/model/{encoded}/invoke-with-response-stream"),
            "{}",
            sent[0].path
        );
        let body: Value = serde_json::from_str(&sent[0].body)?;
        anyhow::ensure!(
            body["anthropic_version"] == "bedrock-2023-05-31"
                && body.get("model").is_none()
                && body.get("stream").is_none()
                && body["anthropic_beta"]
                    == json!(["interleaved-thinking-2025-05-14", "fine-grained-tool-streaming-2025-05-14"])
                && body["thinking"] == json!({"type": "enabled", "budget_tokens": 2048})
                && body["system"][1]["cache_control"] == json!({"type": "ephemeral"})
                && body["messages"][1]["content"][0]["type"] == "thinking",
            "{body}"
        );
        // The 529 counted for passive health: the primary is ejected and gets nothing more.
        client(&python, &node, "claude-sonnet-4-5", "claude-code").await?;
        anyhow::ensure!(primary.request_count().await? == 1);
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        // The primary of rule 0 (`claude#0`): its 529 counted and ejected it.
        let primary_of_rule0 = |l: &&str| l.contains("claude#0|") && !l.contains("bedrock");
        anyhow::ensure!(
            metrics
                .lines()
                .filter(primary_of_rule0)
                .any(|l| l.starts_with("switchyard_upstream_requests_total")
                    && l.contains("outcome=\"529\"")),
            "{metrics}"
        );
        anyhow::ensure!(
            metrics
                .lines()
                .filter(primary_of_rule0)
                .any(|l| l.starts_with("switchyard_ejections_total")),
            "{metrics}"
        );
        // Usage of Messages answers reaches the token metrics, from both providers.
        for provider in ["anthropic", "aws.anthropic"] {
            anyhow::ensure!(
                metrics.lines().any(|l| l.starts_with("gen_ai_client_token_usage")
                    && l.contains("gen_ai_operation_name=\"messages\"")
                    && l.contains(&format!("gen_ai_provider_name=\"{provider}\""))
                    && l.contains("gen_ai_token_type=\"input\"")),
                "no messages token usage for {provider}:\n{metrics}"
            );
        }
        anyhow::ensure!(
            metrics.lines().any(|l| l.starts_with("gen_ai_client_token_usage")
                && l.contains("gen_ai_token_type=\"cached_input\"")
                && l.contains("gen_ai_provider_name=\"aws.anthropic\"")),
            "no cached input tokens:\n{metrics}"
        );

        // An overloaded_error event after the 200 but before content: still a failover.
        primary
            .set_mode(json!({"mode": "stream_error", "after_chunks": 1, "status": 529}))
            .await?;
        primary.clear().await?;
        client(&python, &node, "claude-event-before-content", "claude-code").await?;
        anyhow::ensure!(primary.request_count().await? == 1);

        // After content there is no retry: the client gets Anthropic's error event, then the cut.
        primary
            .set_mode(json!({"mode": "stream_error", "after_chunks": 4, "status": 529}))
            .await?;
        let resp = http_post_json_stream(
            &node.url("/anthropic/v1/messages"),
            &json!({"model": "claude-event-after-content", "max_tokens": 64, "stream": true,
                    "messages": [{"role": "user", "content": "a long answer please"}]}),
        )
        .await?;
        anyhow::ensure!(resp.status.as_u16() == 200, "{}", resp.status);
        let (chunks, end) = resp.collect_chunks().await;
        let text: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.data).into_owned())
            .collect();
        anyhow::ensure!(
            text.contains("event: content_block_delta")
                && text.contains("event: error\ndata: {\"error\":{\"message\"")
                && text.contains("\"type\":\"overloaded_error\"")
                && !text.contains("message_stop"),
            "{text}"
        );
        anyhow::ensure!(end.is_some(), "the stream ended cleanly after an error: {text}");

        // Gateway errors in Anthropic's shape: no route, and a backend that cannot take Messages.
        for (model, status) in [("no-such-model", 404), ("gpt-4o", 422)] {
            let resp = http_post_json(
                &node.url("/anthropic/v1/messages"),
                &json!({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await?;
            let v = resp.json()?;
            anyhow::ensure!(
                resp.status.as_u16() == status
                    && v["type"] == "error"
                    && v["error"]["type"].is_string()
                    && v["error"]["message"].is_string(),
                "{model}: {} {v}",
                resp.status
            );
            if status == 422 {
                let m = v["error"]["message"].as_str().unwrap_or_default();
                anyhow::ensure!(m.contains("openai-be") || m.contains("OpenAI"), "{m}");
            }
        }
        Ok(())
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test exceeded its time bound"),
    }
}
