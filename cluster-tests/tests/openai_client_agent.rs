//! Issue 15: an agent survives the fallback. The official `openai` Python client runs an agent loop
//! (parallel tool calls, tool results in the history, final answer; plain and streamed) against a route
//! whose OpenAI primary answers 500, so every turn falls back to AWS Bedrock (SigV4-verified, Converse
//! shapes checked by the mock), Anthropic or Azure OpenAI. Each fallback has a `modelNameOverride`: the
//! upstream must receive the overridden model, the answer must name it, and the metrics must carry both
//! it and the client's model (`gen_ai_original_model`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use switchyard_cluster_tests::harness::{http_get, MockProvider, SwitchyardNode, SEED_POLICY};
use switchyard_cluster_tests::mock::bedrock::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".."))
}

fn python() -> PathBuf {
    let out = Command::new(repo_root().join("scripts/openai-venv.sh"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/openai-venv.sh: {e}"));
    assert!(
        out.status.success(),
        "scripts/openai-venv.sh failed (needs python3 with venv and PyPI access):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo_root().join(String::from_utf8_lossy(&out.stdout).trim())
}

/// One fallback provider of the test: client model, schema, upstream model (the override).
struct Fallback {
    client_model: &'static str,
    schema: &'static str,
    name: &'static str,
    override_model: &'static str,
}

const FALLBACKS: [Fallback; 3] = [
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
        client_model: "agent-azure",
        schema: "AzureOpenAI",
        name: "azure",
        override_model: "gpt-4o-deployment",
    },
];

fn backend(name: &str, addr: SocketAddr) -> String {
    format!("---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: {name}-be\nspec:\n  endpoints:\n    - ip:\n        address: {}\n        port: {}\n", addr.ip(), addr.port())
}

fn config(primary: SocketAddr, fallbacks: &[SocketAddr]) -> String {
    let mut rules = String::new();
    let mut rest = backend("primary", primary);
    for (f, addr) in FALLBACKS.iter().zip(fallbacks) {
        rules.push_str(&format!(
            "    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: {}\n      backendRefs:\n        - name: primary-be\n          kind: Backend\n          priority: 0\n        - name: {}\n          priority: 1\n          modelNameOverride: {}\n",
            f.client_model, f.name, f.override_model
        ));
        rest.push_str(&format!("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\nmetadata:\n  name: {n}\nspec:\n  schema:\n    name: {s}\n  backendRef:\n    name: {n}-be\n    kind: Backend\n    group: gateway.envoyproxy.io\n", n = f.name, s = f.schema));
        rest.push_str(&backend(f.name, *addr));
        let auth = match f.schema {
            "AWSBedrock" => "  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n    credentialsFile:\n      secretRef:\n        name: aws\n",
            "Anthropic" => "  type: AnthropicAPIKey\n  anthropicAPIKey:\n    secretRef:\n      name: keys\n",
            _ => "  type: AzureAPIKey\n  azureAPIKey:\n    secretRef:\n      name: keys\n",
        };
        rest.push_str(&format!("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: {n}-auth\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: {n}\n{auth}", n = f.name));
    }
    format!(
        "apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIGatewayRoute\nmetadata:\n  name: agents\nspec:\n  schema:\n    name: OpenAI\n  rules:\n{rules}{rest}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\nstringData:\n  credentials: |\n    [default]\n    aws_access_key_id = {TEST_ACCESS_KEY_ID}\n    aws_secret_access_key = {TEST_SECRET_ACCESS_KEY}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\nstringData:\n  apiKey: test-key\n---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata:\n  name: agents-policy\nspec:\n  targetRefs:\n    - group: gateway.networking.k8s.io\n      kind: HTTPRoute\n      name: agents\n{SEED_POLICY}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_client_runs_an_agent_loop_through_each_fallback_provider() {
    let python = tokio::task::spawn_blocking(python)
        .await
        .expect("venv task");
    let result = tokio::time::timeout(Duration::from_secs(180), async {
        let primary = MockProvider::start("primary").await?;
        primary
            .set_mode(serde_json::json!({"mode": "status", "status": 500}))
            .await?;
        let mut providers = Vec::new();
        for f in &FALLBACKS {
            providers.push(MockProvider::start(f.name).await?);
        }
        let addrs: Vec<SocketAddr> = providers.iter().map(|p| p.data_addr).collect();
        let node = SwitchyardNode::start(&config(primary.data_addr, &addrs)).await?;
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client_agent.py");
        for (f, provider) in FALLBACKS.iter().zip(&providers) {
            let out = tokio::process::Command::new(&python)
                .arg(&script)
                .arg(node.url("/v1"))
                .arg(f.client_model)
                .arg(f.name)
                .kill_on_drop(true)
                .output()
                .await?;
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            anyhow::ensure!(
                out.status.success(),
                "agent loop failed through {}:\n{stdout}\n{}\n--- gateway ---\n{}",
                f.name,
                String::from_utf8_lossy(&out.stderr),
                node.logs()
            );
            for stream in ["False", "True"] {
                anyhow::ensure!(
                    stdout.contains(&format!(
                        "{} stream={stream} answer: tool said: get_weather ok; get_time ok",
                        f.name
                    )),
                    "{stdout}"
                );
            }
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
