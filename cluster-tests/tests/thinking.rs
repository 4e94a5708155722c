//! An agent with reasoning on keeps working through the fallback: thinking and thought signatures survive
//! across turns, through real `switchyard` and `mock-provider` processes.
//!
//! The mocks hold the providers' rules (they refuse a thinking-enabled Claude request whose final tool
//! turn lacks its signed thinking, a signature they did not issue, and a Gemini 3 function call without
//! its signature), so a passing loop means the gateway handed back exactly what it was given:
//! - the official `openai` Python client (`openai_client_thinking.py`) runs its agent loop with
//!   `reasoning_effort` through a failing OpenAI primary onto Anthropic, Claude through Bedrock Converse,
//!   Claude on Bedrock InvokeModel (`AWSAnthropic`), Claude on Vertex (`GCPAnthropic`) and Gemini 3 on
//!   Vertex (`GCPVertexAI`), appending each answer's message object as agents do, streamed and not;
//! - the failover case: turn 1 answered by the OpenAI primary (no thinking exists), turn 2, with
//!   `reasoning_effort`, by a Claude or Gemini 3 fallback; and between reasoning providers (Gemini 3 then
//!   Claude, Claude then Gemini 3), whose signatures are not each other's.

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    bedrock_service_model, fallback_per_model_config, http_post_json, run_agent_loop, run_bounded,
    venv_python, Fallback, MockOptions, MockProvider, SwitchyardNode,
};

const TEST_TIMEOUT: Duration = Duration::from_secs(240);

const FALLBACKS: [Fallback; 5] = [
    Fallback {
        client_model: "think-anthropic",
        schema: "Anthropic",
        name: "anthropic",
        override_model: "claude-sonnet-4",
    },
    Fallback {
        client_model: "think-bedrock",
        schema: "AWSBedrock",
        name: "bedrock",
        override_model: "us.anthropic.claude-sonnet-4-v1:0",
    },
    Fallback {
        client_model: "think-aws-anthropic",
        schema: "AWSAnthropic",
        name: "awsanthropic",
        override_model: "us.anthropic.claude-opus-4-v1:0",
    },
    Fallback {
        client_model: "think-gcp-anthropic",
        schema: "GCPAnthropic",
        name: "gcpanthropic",
        override_model: "claude-sonnet-4@20250514",
    },
    Fallback {
        client_model: "think-gemini",
        schema: "GCPVertexAI",
        name: "gemini",
        override_model: "gemini-3-pro-preview",
    },
];

fn config(primary: SocketAddr, fallbacks: &[SocketAddr]) -> String {
    let pairs: Vec<(&Fallback, SocketAddr)> =
        FALLBACKS.iter().zip(fallbacks.iter().copied()).collect();
    fallback_per_model_config("thinking", primary, &pairs)
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "get_time",
            "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
    ])
}

/// The answer's text: a completion's `content`, or a stream's `delta.content`s joined.
fn answer_of(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// The body of the translated request a fallback received last (the Converse / Messages / Gemini body).
async fn last_body(provider: &MockProvider) -> anyhow::Result<Value> {
    let requests = provider.requests().await?;
    let r = requests
        .iter()
        .rev()
        .find(|r| r.method == "POST" && !r.path.contains("token"))
        .ok_or_else(|| anyhow::anyhow!("{} got no request", provider.name))?;
    Ok(serde_json::from_str(&r.body)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reasoning_agents_keep_working_through_every_fallback() {
    let python = tokio::task::spawn_blocking(venv_python)
        .await
        .expect("venv task");
    run_bounded(TEST_TIMEOUT, async {
        let primary = MockProvider::start("primary").await?;
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
            providers.push(MockProvider::start_with(opts).await?);
        }
        let addrs: Vec<SocketAddr> = providers.iter().map(|p| p.data_addr).collect();
        let node = SwitchyardNode::start(&config(primary.data_addr, &addrs)).await?;

        // The failover case. Turn 1 is answered by the OpenAI primary: tool calls, no thinking anywhere.
        let mut history = vec![
            json!({"role": "system", "content": "use the tools"}),
            json!({"role": "user", "content": "weather and time in Paris?"}),
        ];
        let first = http_post_json(
            &node.url("/v1/chat/completions"),
            &json!({"model": "think-anthropic", "messages": history, "tools": tools()}),
        )
        .await?;
        let first = first.json()?;
        let message = first["choices"][0]["message"].clone();
        let calls = message["tool_calls"].as_array().cloned().unwrap_or_default();
        anyhow::ensure!(calls.len() == 2, "the primary did not call the tools: {first}");
        anyhow::ensure!(message.get("thinking_blocks").is_none(), "{first}");
        history.push(message);
        for c in &calls {
            history.push(json!({"role": "tool", "tool_call_id": c["id"],
                "content": format!("{} ok", c["function"]["name"].as_str().unwrap_or_default())}));
        }
        // Turn 2, the primary down: each fallback answers the history another model wrote, with
        // reasoning asked for.
        primary
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        for (f, provider) in FALLBACKS.iter().zip(&providers) {
            for stream in [false, true] {
                let resp = http_post_json(
                    &node.url("/v1/chat/completions"),
                    &json!({"model": f.client_model, "messages": history, "tools": tools(),
                        "reasoning_effort": "low", "max_tokens": 4096, "stream": stream}),
                )
                .await?;
                let text = resp.text();
                anyhow::ensure!(
                    resp.status.as_u16() == 200 && answer_of(&text).contains("get_weather ok"),
                    "{} (stream={stream}) refused another model's history: {} {text}\n--- gateway ---\n{}",
                    f.name,
                    resp.status,
                    node.logs()
                );
                let sent = last_body(provider).await?;
                match f.schema {
                    // Claude: thinking left off for this request (its final tool turn has none).
                    "AWSBedrock" => anyhow::ensure!(
                        sent.pointer("/outputConfig/effort").is_none(),
                        "{sent}"
                    ),
                    "GCPVertexAI" => {
                        let call = sent.pointer("/contents/1/parts/0").cloned().unwrap_or_default();
                        anyhow::ensure!(
                            call["thoughtSignature"] == "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I=",
                            "{sent}"
                        );
                    }
                    _ => anyhow::ensure!(sent.get("thinking").is_none(), "{sent}"),
                }
            }
        }

        // Failover between reasoning providers: turn 1 by one (with its signed reasoning), turn 2 by
        // another, which must neither be handed the first one's signatures as its own nor refuse.
        for (from, to) in [
            ("think-gemini", "think-anthropic"),
            ("think-anthropic", "think-gemini"),
            ("think-gemini", "think-bedrock"),
        ] {
            let mut history = vec![
                json!({"role": "system", "content": "use the tools"}),
                json!({"role": "user", "content": "weather and time in Paris?"}),
            ];
            let first = http_post_json(
                &node.url("/v1/chat/completions"),
                &json!({"model": from, "messages": history, "tools": tools(),
                    "reasoning_effort": "low", "max_tokens": 4096}),
            )
            .await?
            .json()?;
            let message = first["choices"][0]["message"].clone();
            let calls = message["tool_calls"].as_array().cloned().unwrap_or_default();
            anyhow::ensure!(calls.len() == 2, "{from} did not call the tools: {first}");
            history.push(message);
            for c in &calls {
                history.push(json!({"role": "tool", "tool_call_id": c["id"],
                    "content": format!("{} ok", c["function"]["name"].as_str().unwrap_or_default())}));
            }
            let resp = http_post_json(
                &node.url("/v1/chat/completions"),
                &json!({"model": to, "messages": history, "tools": tools(),
                    "reasoning_effort": "low", "max_tokens": 4096}),
            )
            .await?;
            let text = resp.text();
            anyhow::ensure!(
                resp.status.as_u16() == 200 && answer_of(&text).contains("get_weather ok"),
                "{to} refused {from}'s history: {} {text}",
                resp.status
            );
        }

        // The official client's agent loop with reasoning on, through each fallback.
        for (f, provider) in FALLBACKS.iter().zip(&providers) {
            let url = node.url("/v1");
            run_agent_loop(&python, "openai_client_thinking.py", &url, f.client_model, f.name, || {
                node.logs()
            })
            .await?;
            // The last request (the streamed loop's second turn) carried the signed reasoning back, and
            // asked for reasoning again.
            let sent = last_body(provider).await?;
            let ok = match f.schema {
                "AWSBedrock" => {
                    sent.pointer("/messages/1/content/0/reasoningContent/reasoningText/signature")
                        .is_some()
                        && sent.pointer("/outputConfig/effort").is_some()
                }
                "GCPVertexAI" => {
                    let sig = sent
                        .pointer("/contents/1/parts/0/thoughtSignature")
                        .and_then(Value::as_str)
                        .unwrap_or("c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I=");
                    sig != "c2tpcF90aG91Z2h0X3NpZ25hdHVyZV92YWxpZGF0b3I="
                }
                _ => {
                    sent.pointer("/messages/1/content/0/type") == Some(&json!("thinking"))
                        && sent.get("thinking").is_some()
                }
            };
            anyhow::ensure!(ok, "{}: the reasoning did not go back: {sent}", f.name);
        }
        Ok(())
    })
    .await;
}
