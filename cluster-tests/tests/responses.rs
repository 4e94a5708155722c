//! Issue 17 item 4: `/v1/responses` through the gateway, with real processes. The official `openai` Python
//! client creates (plain and streamed), retrieves, lists input items and deletes through a route whose
//! primary answers 500: it sees clean answers from the fallback, the primary's failures count for passive
//! health, and the stored response is found on the backend that made it, by this node (which remembered
//! it) and by another node (which looks for it). Streams fail over before their first content and end
//! honestly after it; a chained create goes to the backend that holds its previous response.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    fallback_config, http_get, http_post_json, http_post_json_stream, poll_until,
    run_client_script, MockProvider, SwitchyardNode, SEED_POLICY,
};

const MODEL: &str = "gpt-resp";

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

async fn bounded(f: impl std::future::Future<Output = anyhow::Result<()>>) {
    match tokio::time::timeout(Duration::from_secs(120), f).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => panic!("{e:#}"),
        Err(_) => panic!("test did not finish within 120 s"),
    }
}

/// The sum of the samples of `metric` whose line contains every one of `labels`.
fn metric_sum(metrics: &str, metric: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(metric) && labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The text of a streamed Responses answer's deltas, and its event types in order.
fn events_of(body: &str) -> (String, Vec<String>) {
    let mut text = String::new();
    let mut types = Vec::new();
    for line in body.lines() {
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(data) else {
            continue;
        };
        if let Some(t) = v["type"].as_str() {
            types.push(t.to_owned());
        }
        if v["type"] == "response.output_text.delta" {
            text.push_str(v["delta"].as_str().unwrap_or_default());
        }
    }
    (text, types)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_openai_client_uses_responses_through_a_failing_primary() {
    let python = tokio::task::spawn_blocking(python)
        .await
        .expect("venv task");
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        primary
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        let fallback = MockProvider::start("fallback").await?;
        let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let node = SwitchyardNode::start(&config).await?;
        let url = node.url("/v1");
        let stdout = run_client_script(
            &python,
            "openai_client_responses.py",
            &[&url, MODEL, "fallback"],
            || node.logs(),
        )
        .await?;
        anyhow::ensure!(
            stdout.contains("done"),
            "the client did not finish:\n{stdout}"
        );
        let id_after = |prefix: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(prefix))
                .map(str::to_owned)
        };
        let plain_id = id_after("plain id: ").ok_or_else(|| anyhow::anyhow!("{stdout}"))?;
        let stream_id = id_after("stream id: ").ok_or_else(|| anyhow::anyhow!("{stdout}"))?;

        // The primary failed the first create (and only creates: this node knew where each id lives).
        let to_primary = primary.requests().await?;
        anyhow::ensure!(!to_primary.is_empty(), "the primary was never tried");
        for r in &to_primary {
            anyhow::ensure!(
                r.method == "POST" && r.path == "/v1/responses",
                "{} {}",
                r.method,
                r.path
            );
        }
        let to_fallback = primary_and_fallback_paths(&fallback).await?;
        for want in [
            format!("GET /v1/responses/{plain_id}"),
            format!("GET /v1/responses/{stream_id}"),
            format!("GET /v1/responses/{stream_id}/input_items"),
            format!("DELETE /v1/responses/{plain_id}"),
        ] {
            anyhow::ensure!(to_fallback.contains(&want), "{want} not in {to_fallback:?}");
        }
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        let failed = metric_sum(
            &metrics,
            "switchyard_upstream_requests_total",
            &["primary", "outcome=\"500\""],
        );
        anyhow::ensure!(failed >= 1.0, "primary 500s not counted:\n{metrics}");
        // The fallback's answers are counted, those on stored responses included: 2 creates, 2 retrieves,
        // the input items and the delete.
        let answered = metric_sum(
            &metrics,
            "switchyard_upstream_requests_total",
            &["fallback", "outcome=\"200\""],
        );
        anyhow::ensure!(answered >= 6.0, "{answered} answers counted:\n{metrics}");
        let ejections = metric_sum(&metrics, "switchyard_ejections_total", &["primary"]);
        anyhow::ensure!(ejections >= 1.0, "the primary was not ejected:\n{metrics}");
        // Input and output tokens of the two creates, under the responses operation.
        let tokens = metric_sum(
            &metrics,
            "gen_ai_client_token_usage_count",
            &["gen_ai_operation_name=\"responses\""],
        );
        anyhow::ensure!(tokens >= 4.0, "{tokens} token samples:\n{metrics}");

        // Another node never saw the create: it looks for the id, by priority, past the primary's 404.
        primary.set_mode(json!({"mode": "ok"})).await?;
        primary.clear().await?;
        let other = SwitchyardNode::start(&config).await?;
        let got = http_get(&other.url(&format!("/v1/responses/{stream_id}"))).await?;
        anyhow::ensure!(
            got.status == 200 && got.json()?["id"] == stream_id.as_str(),
            "{} {}",
            got.status,
            got.text()
        );
        let asked: Vec<String> = primary
            .requests()
            .await?
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        anyhow::ensure!(
            asked == [format!("GET /v1/responses/{stream_id}")],
            "the primary was asked {asked:?}"
        );
        let gone = http_get(&other.url(&format!("/v1/responses/{plain_id}"))).await?;
        anyhow::ensure!(gone.status == 404, "{} {}", gone.status, gone.text());
        let bad = http_get(&other.url("/v1/responses/..%2Fmodels")).await?;
        anyhow::ensure!(bad.status == 400, "{} {}", bad.status, bad.text());

        // Once the primary is back, plain creates go to it, and a create chained to the stream's response
        // still goes to the fallback, which holds it.
        poll_until(
            Duration::from_secs(20),
            Duration::from_millis(200),
            || async {
                let r = http_post_json(
                    &node.url("/v1/responses"),
                    &json!({"model": MODEL, "input": "back?"}),
                )
                .await
                .ok()?;
                let v = r.json().ok()?;
                (v["output"][0]["content"][0]["text"] == "hello from primary").then_some(())
            },
        )
        .await?;
        let chained = http_post_json(
            &node.url("/v1/responses"),
            &json!({"model": MODEL, "input": "and then?", "previous_response_id": stream_id}),
        )
        .await?;
        let v = chained.json()?;
        anyhow::ensure!(
            v["output"][0]["content"][0]["text"]
                == format!("hello from fallback (after {stream_id})").as_str(),
            "{v}"
        );
        Ok(())
    })
    .await;
}

async fn primary_and_fallback_paths(p: &MockProvider) -> anyhow::Result<Vec<String>> {
    Ok(p.requests()
        .await?
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_streams_fail_over_before_content_and_end_honestly_after_it() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let node = SwitchyardNode::start(&config).await?;
        let create = json!({"model": MODEL, "input": "hi", "stream": true});

        // An error event (a 500, which the seed policy retries) after `response.created`, before any delta:
        // the attempt failed, and the client
        // gets the fallback's whole stream without a trace of it.
        primary
            .set_mode(json!({"mode": "stream_error", "after_chunks": 2, "status": 500}))
            .await?;
        let resp = http_post_json_stream(&node.url("/v1/responses"), &create).await?;
        anyhow::ensure!(resp.status == 200, "{}", resp.status);
        let (chunks, err) = resp.collect_chunks().await;
        anyhow::ensure!(err.is_none(), "{err:?}");
        let body: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.data).into_owned())
            .collect();
        let (text, types) = events_of(&body);
        anyhow::ensure!(text == "hello from fallback", "{body}");
        anyhow::ensure!(
            types.first().map(String::as_str) == Some("response.created")
                && types.last().map(String::as_str) == Some("response.completed")
                && !types.iter().any(|t| t == "error"),
            "{types:?}"
        );
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        let failed = metric_sum(
            &metrics,
            "switchyard_upstream_requests_total",
            &["primary", "outcome=\"stream_error\""],
        );
        anyhow::ensure!(failed == 1.0, "{failed} stream errors counted:\n{metrics}");

        // Cut after two deltas: no retry once content went out; the client gets the deltas, then a
        // Responses `error` event and a broken connection, never a `response.completed`.
        for p in [&primary, &fallback] {
            p.set_mode(json!({"mode": "cut", "after_chunks": 6}))
                .await?;
        }
        let resp = http_post_json_stream(&node.url("/v1/responses"), &create).await?;
        anyhow::ensure!(resp.status == 200, "{}", resp.status);
        let (chunks, err) = resp.collect_chunks().await;
        anyhow::ensure!(err.is_some(), "the cut stream ended cleanly");
        let body: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.data).into_owned())
            .collect();
        let (text, types) = events_of(&body);
        anyhow::ensure!(!text.is_empty(), "no content before the cut: {body}");
        anyhow::ensure!(
            types.last().map(String::as_str) == Some("error")
                && !types.iter().any(|t| t == "response.completed"),
            "{types:?}"
        );
        anyhow::ensure!(body.contains("upstream_stream_truncated"), "{body}");
        Ok(())
    })
    .await;
}

fn backend(name: &str, addr: std::net::SocketAddr) -> String {
    format!("---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: Backend\nmetadata:\n  name: {name}\nspec:\n  endpoints:\n    - ip:\n        address: {}\n        port: {}\n", addr.ip(), addr.port())
}

fn service(name: &str, schema: &str) -> String {
    format!("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIServiceBackend\nmetadata:\n  name: {name}\nspec:\n  schema:\n    name: {schema}\n  backendRef:\n    name: {name}-be\n    kind: Backend\n    group: gateway.envoyproxy.io\n")
}

fn rule(model: &str, refs: &[(&str, u32)]) -> String {
    let mut r = format!("    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: {model}\n      backendRefs:\n");
    for (name, priority) in refs {
        r.push_str(&format!(
            "        - name: {name}\n          priority: {priority}\n"
        ));
    }
    r
}

/// Creates go to OpenAI-schema backends only: a Bedrock backend of the rule is passed over (even at
/// priority 0), a rule with nothing else is a 422 naming it, and an Azure OpenAI fallback gets the create
/// on `/openai/v1/responses` with its key, and the retrieve on its own path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_skip_backends_without_the_responses_api_and_reach_azure() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        primary
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        let bedrock = MockProvider::start("bedrock").await?;
        let azure = MockProvider::start("azure").await?;
        let openai = MockProvider::start("openai").await?;
        let mut yaml = format!(
            "apiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: AIGatewayRoute\nmetadata:\n  name: agents\nspec:\n  schema:\n    name: OpenAI\n  rules:\n{}{}{}",
            rule("mixed", &[("bedrock", 0), ("openai", 1)]),
            rule("bedrock-only", &[("bedrock", 0)]),
            rule("to-azure", &[("primary-be", 0), ("azure", 1)]),
        );
        yaml.push_str(&service("bedrock", "AWSBedrock"));
        yaml.push_str(&backend("bedrock-be", bedrock.data_addr));
        yaml.push_str(&service("openai", "OpenAI"));
        yaml.push_str(&backend("openai-be", openai.data_addr));
        yaml.push_str(&service("azure", "AzureOpenAI"));
        yaml.push_str(&backend("azure-be", azure.data_addr));
        yaml.push_str(&backend("primary-be", primary.data_addr));
        yaml.push_str("---\napiVersion: aigateway.envoyproxy.io/v1alpha1\nkind: BackendSecurityPolicy\nmetadata:\n  name: azure-auth\nspec:\n  targetRefs:\n    - group: aigateway.envoyproxy.io\n      kind: AIServiceBackend\n      name: azure\n  type: AzureAPIKey\n  azureAPIKey:\n    secretRef:\n      name: keys\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: keys\nstringData:\n  apiKey: azure-test-key\n");
        yaml.push_str(&format!("---\napiVersion: gateway.envoyproxy.io/v1alpha1\nkind: BackendTrafficPolicy\nmetadata:\n  name: agents-policy\nspec:\n  targetRefs:\n    - group: gateway.networking.k8s.io\n      kind: HTTPRoute\n      name: agents\n{SEED_POLICY}"));
        let node = SwitchyardNode::start(&yaml).await?;
        let create = |model: &str| json!({"model": model, "input": "hi"});

        for _ in 0..3 {
            let r = http_post_json(&node.url("/v1/responses"), &create("mixed")).await?;
            let v = r.json()?;
            anyhow::ensure!(
                r.status == 200 && v["output"][0]["content"][0]["text"] == "hello from openai",
                "{} {v}",
                r.status
            );
        }
        let r = http_post_json(&node.url("/v1/responses"), &create("bedrock-only")).await?;
        let v = r.json()?;
        let message = v["error"]["message"].as_str().unwrap_or_default();
        anyhow::ensure!(
            r.status == 422 && v["error"]["code"] == "unsupported_endpoint" && message.contains("bedrock"),
            "{} {v}",
            r.status
        );
        anyhow::ensure!(bedrock.request_count().await? == 0, "Bedrock was sent a Responses request");

        let r = http_post_json(&node.url("/v1/responses"), &create("to-azure")).await?;
        let v = r.json()?;
        anyhow::ensure!(
            r.status == 200 && v["output"][0]["content"][0]["text"] == "hello from azure",
            "{} {v}",
            r.status
        );
        let id = v["id"].as_str().unwrap_or_default().to_owned();
        let got = http_get(&node.url(&format!("/v1/responses/{id}"))).await?;
        anyhow::ensure!(got.status == 200 && got.json()?["id"] == id.as_str(), "{} {}", got.status, got.text());
        let seen: Vec<(String, String, Option<String>)> = azure
            .requests()
            .await?
            .into_iter()
            .map(|r| (r.method, r.path, r.headers.get("api-key").cloned()))
            .collect();
        let key = Some("azure-test-key".to_owned());
        anyhow::ensure!(
            seen == [
                ("POST".to_owned(), "/openai/v1/responses".to_owned(), key.clone()),
                ("GET".to_owned(), format!("/openai/v1/responses/{id}"), key),
            ],
            "{seen:?}"
        );
        Ok(())
    })
    .await;
}

/// A primary that sends `response.created` and then falls silent is failed over at the first-token
/// timeout (`switchyard.io/first-token-timeout`), whatever `retryOn` says; the client gets the fallback's
/// stream, and the silence counts against the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responses_stream_silent_before_content_fails_over_at_the_first_token_timeout() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        primary
            .set_mode(json!({"mode": "stall", "after_chunks": 1}))
            .await?;
        let fallback = MockProvider::start("fallback").await?;
        let config = switchyard_cluster_tests::harness::annotate_policy(
            &fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY),
            "switchyard.io/first-token-timeout: 1s",
        );
        let node = SwitchyardNode::start(&config).await?;
        let started = std::time::Instant::now();
        let resp = http_post_json_stream(
            &node.url("/v1/responses"),
            &json!({"model": MODEL, "input": "hi", "stream": true}),
        )
        .await?;
        anyhow::ensure!(resp.status == 200, "{}", resp.status);
        let (chunks, err) = resp.collect_chunks().await;
        anyhow::ensure!(err.is_none(), "{err:?}");
        let took = started.elapsed();
        let body: String = chunks
            .iter()
            .map(|c| String::from_utf8_lossy(&c.data).into_owned())
            .collect();
        let (text, types) = events_of(&body);
        anyhow::ensure!(text == "hello from fallback", "{body}");
        // One `response.created`: the primary's, held, never reached the client.
        anyhow::ensure!(
            types.iter().filter(|t| *t == "response.created").count() == 1
                && types.last().map(String::as_str) == Some("response.completed"),
            "{types:?}"
        );
        anyhow::ensure!(
            took >= Duration::from_secs(1) && took < Duration::from_secs(10),
            "{took:?}"
        );
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        let silent = metric_sum(
            &metrics,
            "switchyard_upstream_requests_total",
            &["primary", "outcome=\"first_token_timeout\""],
        );
        anyhow::ensure!(silent == 1.0, "{silent}:\n{metrics}");
        Ok(())
    })
    .await;
}
