//! Issue 15: an agent survives the fallback. The official `openai` Python client runs an agent loop
//! (parallel tool calls, tool results in the history, final answer; plain and streamed) against a route
//! whose OpenAI primary answers 500, so every turn falls back to AWS Bedrock (SigV4-verified, Converse
//! shapes checked by the mock), Anthropic, Claude on Bedrock through InvokeModel (`AWSAnthropic`), Azure
//! OpenAI or Cohere. Each fallback has a `modelNameOverride`: the
//! upstream must receive the overridden model, the answer must name it, and the metrics must carry both
//! it and the client's model (`gen_ai_original_model`). A field a provider cannot honour is a 422 naming
//! it and the provider, and never reaches the provider.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use switchyard_cluster_tests::harness::{
    bedrock_service_model, definition_args, fallback_per_model_config, http_get, http_post_json,
    run_agent_loop, venv_python, Fallback, MockOptions, MockProvider, SwitchyardNode,
};
use switchyard_cluster_tests::mock::service_model::ServiceModel;

const FALLBACKS: [Fallback; 5] = [
    Fallback {
        client_model: "agent-bedrock",
        schema: "AWSBedrock",
        name: "bedrock",
        override_model: "us.anthropic.claude-sonnet-4-v1:0",
    },
    Fallback {
        client_model: "agent-anthropic",
        schema: "Anthropic",
        name: "anthropic",
        override_model: "claude-sonnet-4",
    },
    Fallback {
        client_model: "agent-aws-anthropic",
        schema: "AWSAnthropic",
        name: "awsanthropic",
        override_model: "us.anthropic.claude-opus-4-v1:0",
    },
    Fallback {
        client_model: "agent-azure",
        schema: "AzureOpenAI",
        name: "azure",
        override_model: "gpt-4o-deployment",
    },
    Fallback {
        client_model: "agent-cohere",
        schema: "Cohere",
        name: "cohere",
        override_model: "command-a-03-2025",
    },
];

fn config(primary: SocketAddr, fallbacks: &[SocketAddr]) -> String {
    let pairs: Vec<(&Fallback, SocketAddr)> =
        FALLBACKS.iter().zip(fallbacks.iter().copied()).collect();
    fallback_per_model_config("agents", primary, &pairs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_client_runs_an_agent_loop_through_each_fallback_provider() {
    let python = tokio::task::spawn_blocking(venv_python)
        .await
        .expect("venv task");
    let result = tokio::time::timeout(Duration::from_secs(180), async {
        let primary = MockProvider::start("primary").await?;
        primary
            .set_mode(serde_json::json!({"mode": "status", "status": 500}))
            .await?;
        let model = bedrock_service_model(&python);
        let mut providers = Vec::new();
        for f in &FALLBACKS {
            let mut opts = MockOptions {
                name: Some(f.name.to_owned()),
                ..MockOptions::default()
            };
            if f.schema.starts_with("AWS") {
                opts.extra_args = vec![
                    "--bedrock-service-model".to_owned(),
                    model.display().to_string(),
                ];
            }
            if f.schema == "Cohere" {
                opts.extra_args = definition_args();
            }
            providers.push(MockProvider::start_with(opts).await?);
        }
        let addrs: Vec<SocketAddr> = providers.iter().map(|p| p.data_addr).collect();
        let node = SwitchyardNode::start(&config(primary.data_addr, &addrs)).await?;
        for (f, provider) in FALLBACKS.iter().zip(&providers) {
            let url = node.url("/v1");
            let stdout = run_agent_loop(
                &python,
                "openai_client_agent.py",
                &url,
                f.client_model,
                f.name,
                || node.logs(),
            )
            .await?;
            // The answer names the model that served it: the override (Anthropic's mock answers with
            // its own variant of the model it was sent).
            anyhow::ensure!(stdout.contains(f.override_model), "{stdout}");
            let requests = provider.requests().await?;
            anyhow::ensure!(requests.len() == 4, "{} got {}", f.name, requests.len());
            for r in &requests {
                match f.schema {
                    "AWSBedrock" => {
                        anyhow::ensure!(r.sigv4.as_deref() == Some("verified"), "{:?}", r.sigv4);
                        let encoded = f.override_model.replace(':', "%3A");
                        anyhow::ensure!(r.path.contains(&encoded), "{}", r.path);
                    }
                    "AWSAnthropic" => {
                        // InvokeModel: the model in the path, the Messages body with Bedrock's version.
                        anyhow::ensure!(r.sigv4.as_deref() == Some("verified"), "{:?}", r.sigv4);
                        let encoded = f.override_model.replace(':', "%3A");
                        anyhow::ensure!(
                            r.path.starts_with(&format!("/model/{encoded}/invoke")),
                            "{}",
                            r.path
                        );
                        let body: Value = serde_json::from_str(&r.body)?;
                        anyhow::ensure!(
                            body["anthropic_version"] == "bedrock-2023-05-31"
                                && body.get("model").is_none()
                                && body.get("stream").is_none(),
                            "{body}"
                        );
                    }
                    "AzureOpenAI" => {
                        anyhow::ensure!(r.path.contains(f.override_model), "{}", r.path);
                        let body: Value = serde_json::from_str(&r.body)?;
                        anyhow::ensure!(body["model"] == f.override_model, "{body}");
                    }
                    _ => {
                        let body: Value = serde_json::from_str(&r.body)?;
                        anyhow::ensure!(body["model"] == f.override_model, "{body}");
                    }
                }
            }
        }
        // Nothing is dropped silently: what a provider cannot do is a 422 naming the field and the
        // provider, and the provider never sees the request.
        for (f, provider) in FALLBACKS.iter().zip(&providers).take(2) {
            let before = provider.request_count().await?;
            let resp = http_post_json(
                &node.url("/v1/chat/completions"),
                &serde_json::json!({"model": f.client_model, "n": 2,
                    "messages": [{"role": "user", "content": "two answers"}]}),
            )
            .await?;
            let body = resp.text();
            anyhow::ensure!(resp.status.as_u16() == 422, "{}: {body}", resp.status);
            let provider_name = if f.schema == "AWSBedrock" {
                "AWS Bedrock"
            } else {
                "Anthropic"
            };
            anyhow::ensure!(
                body.contains("'n'") && body.contains(provider_name),
                "{body}"
            );
            anyhow::ensure!(provider.request_count().await? == before);
        }
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        for f in &FALLBACKS {
            let series = metrics.lines().find(|l| {
                l.starts_with("gen_ai_client_token_usage")
                    && l.contains(&format!("gen_ai_original_model=\"{}\"", f.client_model))
                    && l.contains(&format!("gen_ai_request_model=\"{}\"", f.override_model))
            });
            anyhow::ensure!(
                series.is_some(),
                "no token series for {}:\n{metrics}",
                f.name
            );
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

fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// Every shape the Bedrock translator produces is valid by AWS's published model, and the model check
/// itself refuses what AWS would (so a passing agent loop means something).
#[test]
fn translated_converse_requests_follow_the_bedrock_runtime_service_model() {
    let model = ServiceModel::load(&bedrock_service_model(&venv_python())).expect("model");
    let tools = serde_json::json!([
        {"type": "function", "function": {"name": "get_weather", "description": "weather", "strict": true,
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time"}},
    ]);
    let bodies = [
        serde_json::json!({"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}],
            "max_tokens": 10, "temperature": 0.3, "top_p": 0.9, "stop": ["x"]}),
        serde_json::json!({"model": "m", "tools": tools, "tool_choice": "required", "parallel_tool_calls": true, "messages": [
            {"role": "user", "content": [{"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]},
            {"role": "assistant", "content": "calling", "tool_calls": [
                {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "t2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "t2", "content": "noon"},
        ]}),
        serde_json::json!({"model": "m", "tools": tools, "tool_choice": {"type": "function", "function": {"name": "get_time"}},
            "messages": [{"role": "user", "content": "t?"}]}),
        // Reasoning sent back (signed and redacted) ahead of the tool calls it led to.
        serde_json::json!({"model": "m", "tools": tools, "reasoning_effort": "low", "messages": [
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": null, "reasoning_content": "hm",
             "thinking_blocks": [{"type": "thinking", "thinking": "hm", "signature": "c2ln"},
                                 {"type": "redacted_thinking", "data": "UkVEQUNURUQ="}],
             "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
        ]}),
        serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "json"}], "reasoning_effort": "low",
            "service_tier": "flex",
            "response_format": {"type": "json_schema", "json_schema": {"name": "w", "description": "d", "schema": {"type": "object"}}}}),
    ];
    for body in bodies {
        let converse = switchyard::schema::bedrock::request_body(&object(body.clone()))
            .unwrap_or_else(|e| panic!("{body}: {e}"));
        for shape in ["ConverseRequest", "ConverseStreamRequest"] {
            if let Err(e) = model.check(shape, &converse) {
                panic!("{shape} refuses the translation of {body}: {e}\n{converse}");
            }
        }
    }
    for (bad, needle) in [
        (
            serde_json::json!({"messages": [{"role": "user", "content": [{"text": "a"}]}], "tools": []}),
            "unknown member tools",
        ),
        (
            serde_json::json!({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}),
            "exactly one member",
        ),
        (
            serde_json::json!({"messages": [{"role": "assistant", "content": [{"toolUse": {"name": "f", "input": {}}}]}]}),
            "toolUseId",
        ),
        (
            serde_json::json!({"messages": [{"role": "user", "content": [{"image": {"format": "tiff", "source": {"bytes": "AA=="}}}]}]}),
            "tiff",
        ),
        (
            serde_json::json!({"messages": [{"role": "robot", "content": []}]}),
            "robot",
        ),
        (serde_json::json!({"modelId": "m", "messages": []}), "uri"),
    ] {
        let err = model.check("ConverseRequest", &bad).expect_err(needle);
        assert!(err.contains(needle), "{bad}: {err}");
    }
}
