//! A real client: the official `openai` Python package completes a chat request and a streaming request
//! through the gateway, and reads the gateway's own error JSON as the SDK's typed error; and it reads
//! AWS Bedrock and Anthropic answers translated by the gateway, streaming and not.
//!
//! The package lives in `target/openai-venv`, made by `scripts/openai-venv.sh` (which `.ci/run` calls; this
//! test calls it too when the venv is missing, so `cargo test` works on a fresh machine with PyPI access).

use std::time::Duration;

use switchyard_cluster_tests::harness::{
    fallback_config, run_client_script, venv_python, MockProvider, SwitchyardNode, SEED_POLICY,
};
use switchyard_cluster_tests::mock::bedrock::{TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_client_chats_and_streams_through_the_gateway() {
    let python = tokio::task::spawn_blocking(venv_python)
        .await
        .expect("venv task");
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary
            .set_mode(serde_json::json!({"mode": "status", "status": 500}))
            .await?;
        let node = SwitchyardNode::start(&fallback_config(
            MODEL,
            primary.data_addr,
            fallback.data_addr,
            SEED_POLICY,
        ))
        .await?;
        let url = node.url("/v1");
        let stdout =
            run_client_script(&python, "openai_client.py", &[&url, MODEL], || node.logs()).await?;
        anyhow::ensure!(stdout.contains("chat: hello from fallback"), "{stdout}");
        anyhow::ensure!(stdout.contains("stream: "), "{stdout}");
        anyhow::ensure!(stdout.contains("not found: 404"), "{stdout}");
        // The client's own key never reaches a provider.
        for r in fallback.requests().await? {
            let auth = r.headers.get("authorization").cloned().unwrap_or_default();
            anyhow::ensure!(
                !auth.contains("client-key-not-forwarded"),
                "client credential leaked upstream"
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

/// One route per provider: model `bedrock-model` → a Bedrock mock (SigV4 with the test keys), model
/// `anthropic-model` → an Anthropic mock.
fn providers_config(bedrock: std::net::SocketAddr, anthropic: std::net::SocketAddr) -> String {
    let rule = |model: &str, backend: &str| {
        format!("    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: {model}\n      backendRefs:\n        - name: {backend}\n")
    };
    let service = |name: &str, schema: &str, addr: std::net::SocketAddr| {
        format!("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\nmetadata:\n  name: {name}\nspec:\n  schema:\n    name: {schema}\n  backendRef:\n    name: {name}-be\n    kind: Backend\n    group: gateway.envoyproxy.io\n---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: {name}-be\nspec:\n  endpoints:\n    - ip:\n        address: {}\n        port: {}\n", addr.ip(), addr.port())
    };
    let policy = |name: &str, spec: &str| {
        format!("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: {name}-auth\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: {name}\n{spec}")
    };
    format!(
        "apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIGatewayRoute\nmetadata:\n  name: providers\nspec:\n  schema:\n    name: OpenAI\n  rules:\n{}{}{}{}{}{}---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: aws\nstringData:\n  credentials: |\n    [default]\n    aws_access_key_id = {TEST_ACCESS_KEY_ID}\n    aws_secret_access_key = {TEST_SECRET_ACCESS_KEY}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: anthropic\nstringData:\n  apiKey: test-key\n",
        rule("bedrock-model", "bedrock"),
        rule("anthropic-model", "anthropic"),
        service("bedrock", "AWSBedrock", bedrock),
        service("anthropic", "Anthropic", anthropic),
        policy("bedrock", "  type: AWSCredentials\n  awsCredentials:\n    region: us-east-1\n    credentialsFile:\n      secretRef:\n        name: aws\n"),
        policy("anthropic", "  type: AnthropicAPIKey\n  anthropicAPIKey:\n    secretRef:\n      name: anthropic\n"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_client_reads_bedrock_and_anthropic_answers() {
    let python = tokio::task::spawn_blocking(venv_python)
        .await
        .expect("venv task");
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        let bedrock = MockProvider::start("bedrock").await?;
        let anthropic = MockProvider::start("anthropic").await?;
        let node = SwitchyardNode::start(&providers_config(bedrock.data_addr, anthropic.data_addr))
            .await?;
        for (model, label, name) in [
            ("bedrock-model", "bedrock", "bedrock"),
            ("anthropic-model", "anthropic", "anthropic"),
        ] {
            let url = node.url("/v1");
            let stdout = run_client_script(
                &python,
                "openai_client_providers.py",
                &[&url, model, label],
                || node.logs(),
            )
            .await?;
            anyhow::ensure!(
                stdout.contains(&format!("{label} chat: hello from {name}")),
                "{stdout}"
            );
            anyhow::ensure!(
                stdout.contains(&format!("{label} stream: hello from {name}")),
                "{stdout}"
            );
        }
        for r in bedrock.requests().await? {
            anyhow::ensure!(r.sigv4.as_deref() == Some("verified"), "{:?}", r.sigv4);
        }
        anyhow::ensure!(anthropic.request_count().await? == 2);
        Ok(())
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test exceeded its time bound"),
    }
}

/// Issue 18.4: a stream the upstream ends cleanly but without `[DONE]` or a finish reason makes the
/// official client raise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_python_client_raises_on_a_stream_ended_without_its_end_marker() {
    let python = tokio::task::spawn_blocking(venv_python)
        .await
        .expect("venv task");
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        // Role chunk and two content chunks, then a clean end.
        primary
            .set_mode(serde_json::json!({"mode": "truncate", "after_chunks": 3}))
            .await?;
        let node = SwitchyardNode::start(&fallback_config(
            MODEL,
            primary.data_addr,
            fallback.data_addr,
            SEED_POLICY,
        ))
        .await?;
        let url = node.url("/v1");
        let stdout = run_client_script(
            &python,
            "openai_client_truncated.py",
            &[&url, MODEL],
            || node.logs(),
        )
        .await?;
        anyhow::ensure!(stdout.contains("raised: "), "{stdout}");
        Ok(())
    })
    .await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test exceeded its time bound"),
    }
}
