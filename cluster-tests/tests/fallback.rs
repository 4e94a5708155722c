//! Issue 2's behaviour through a real `switchyard` process and real mock providers: the seed page's
//! fallback (500 and refused primaries), no-retry pass-through, statuses that are not retried, the attempt
//! bound, priority and weights, local errors, streaming pass-through and honest truncation, h2c, models.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    fallback_config, free_port, http2_post_json, http_get, http_post_json, http_post_json_stream,
    raw_post_head, read_raw_response, run_bounded, MockProvider, SwitchyardNode, SEED_POLICY,
};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

fn chat(id: usize) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": format!("request-{id}")}]})
}

async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) {
    run_bounded(TEST_TIMEOUT, f).await
}

/// An address on loopback where nothing listens: connects are refused.
fn dead_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

async fn count_by_body(mock: &MockProvider) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut seen = BTreeMap::new();
    for r in mock.requests().await? {
        let v: Value = serde_json::from_str(&r.body)?;
        let content = v["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        *seen.entry(content).or_insert(0) += 1;
    }
    Ok(seen)
}

/// A healthy primary and fallback (the seed page's shape) and a node routing to them with `policy`.
async fn start_pair(policy: &str) -> anyhow::Result<(MockProvider, MockProvider, SwitchyardNode)> {
    let primary = MockProvider::start("primary").await?;
    let fallback = MockProvider::start("fallback").await?;
    let node = SwitchyardNode::start(&fallback_config(
        MODEL,
        primary.data_addr,
        fallback.data_addr,
        policy,
    ))
    .await?;
    Ok((primary, fallback, node))
}

async fn seed_fallback(primary_mode: Option<Value>) -> anyhow::Result<()> {
    let fallback = MockProvider::start("fallback").await?;
    let (primary, primary_addr) = match primary_mode {
        Some(mode) => {
            let p = MockProvider::start("primary").await?;
            p.set_mode(mode).await?;
            let addr = p.data_addr;
            (Some(p), addr)
        }
        None => (None, dead_addr()),
    };
    let node = SwitchyardNode::start(&fallback_config(
        MODEL,
        primary_addr,
        fallback.data_addr,
        SEED_POLICY,
    ))
    .await?;
    let n = 12;
    for i in 0..n {
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(i)).await?;
        anyhow::ensure!(
            r.status == 200,
            "request {i}: {} {}\n{}",
            r.status,
            r.text(),
            node.logs()
        );
        let content = r.json()?["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        anyhow::ensure!(
            content == "hello from fallback",
            "request {i} answered by {content:?}"
        );
    }
    let seen = count_by_body(&fallback).await?;
    anyhow::ensure!(
        seen.len() == n,
        "fallback saw {} distinct requests, want {n}: {seen:?}",
        seen.len()
    );
    anyhow::ensure!(
        seen.values().all(|&c| c == 1),
        "fallback received a request twice: {seen:?}"
    );
    if let Some(p) = &primary {
        // A mock that refuses connections logs nothing; one that answers 500 logs exactly the first request:
        // consecutive5XxErrors: 1 ejects the primary for 5 s after its first failure.
        let hits = p.request_count().await?;
        anyhow::ensure!(
            hits <= 1,
            "primary should be ejected after one failure, got {hits} requests"
        );
    }
    let status = node.status().await?;
    let primary_host = status["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|h| h["backend"] == "default/primary"))
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("primary missing from /status: {status}"))?;
    anyhow::ensure!(
        primary_host["ejected"] == true,
        "primary should be ejected: {primary_host}"
    );
    anyhow::ensure!(primary_host["ejection_count"] == 1, "{primary_host}");
    let left = primary_host["time_left_ms"].as_u64().unwrap_or(0);
    anyhow::ensure!(
        left > 0 && left <= 5000,
        "time left should be within the 5 s base ejection: {primary_host}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_policy_primary_500_every_request_gets_the_fallback_once() {
    bounded(seed_fallback(Some(
        json!({"mode": "status", "status": 500}),
    )))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_policy_primary_refusing_connections_every_request_gets_the_fallback_once() {
    bounded(seed_fallback(None)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_policy_primary_in_refuse_mode_gets_the_fallback() {
    bounded(seed_fallback(Some(json!({"mode": "refuse"})))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retry_block_a_primary_failure_reaches_the_client() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        let node = SwitchyardNode::start(&fallback_config(
            MODEL,
            primary.data_addr,
            fallback.data_addr,
            "",
        ))
        .await?;
        for i in 0..3 {
            let r = http_post_json(&node.url("/v1/chat/completions"), &chat(i)).await?;
            anyhow::ensure!(
                r.status == 500,
                "want the upstream 500 as is, got {} {}",
                r.status,
                r.text()
            );
            let upstream_error = r.json()?;
            anyhow::ensure!(
                upstream_error["error"].is_object(),
                "upstream body passed through: {upstream_error}"
            );
        }
        anyhow::ensure!(primary.request_count().await? == 3);

        // A refused connection: 503 from the gateway, fallback untouched.
        let dead = dead_addr();
        let node2 =
            SwitchyardNode::start(&fallback_config(MODEL, dead, fallback.data_addr, "")).await?;
        let r = http_post_json(&node2.url("/v1/chat/completions"), &chat(9)).await?;
        anyhow::ensure!(
            r.status == 503,
            "refused primary without retry: want 503, got {} {}",
            r.status,
            r.text()
        );
        anyhow::ensure!(r.json()?["error"]["message"].as_str().is_some());
        anyhow::ensure!(
            fallback.request_count().await? == 0,
            "fallback must not be tried without a retry block"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_policy_does_not_retry_502_503_504_429() {
    bounded(async {
        let fallback = MockProvider::start("fallback").await?;
        let primary = MockProvider::start("primary").await?;
        for status in [502u16, 503, 504, 429] {
            primary
                .set_mode(json!({"mode": "status", "status": status}))
                .await?;
            primary.clear().await?;
            let node = SwitchyardNode::start(&fallback_config(
                MODEL,
                primary.data_addr,
                fallback.data_addr,
                SEED_POLICY,
            ))
            .await?;
            let r = http_post_json(&node.url("/v1/chat/completions"), &chat(0)).await?;
            anyhow::ensure!(
                r.status == status,
                "status {status} must reach the client, got {}",
                r.status
            );
            anyhow::ensure!(
                primary.request_count().await? == 1,
                "{status} was retried on the primary"
            );
        }
        anyhow::ensure!(
            fallback.request_count().await? == 0,
            "a non-retried status reached the fallback"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_never_exceed_num_retries_plus_one() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        fallback
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        let policy = SEED_POLICY.replace("baseInterval: 100ms", "baseInterval: 10ms");
        let node = SwitchyardNode::start(&fallback_config(
            MODEL,
            primary.data_addr,
            fallback.data_addr,
            &policy,
        ))
        .await?;
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(0)).await?;
        anyhow::ensure!(
            r.status == 500,
            "exhausted retries return the last 500, got {}",
            r.status
        );
        let total = primary.request_count().await? + fallback.request_count().await?;
        anyhow::ensure!(
            total == 6,
            "numRetries 5 allows exactly 6 attempts, saw {total}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_one_gets_nothing_while_priority_zero_is_healthy() {
    bounded(async {
        let (primary, fallback, node) = start_pair(SEED_POLICY).await?;
        for i in 0..30 {
            let r = http_post_json(&node.url("/v1/chat/completions"), &chat(i)).await?;
            anyhow::ensure!(r.status == 200);
        }
        anyhow::ensure!(primary.request_count().await? == 30);
        anyhow::ensure!(
            fallback.request_count().await? == 0,
            "priority 1 must get zero requests"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equal_weights_split_about_evenly() {
    bounded(async {
        let a = MockProvider::start("a").await?;
        let b = MockProvider::start("b").await?;
        let yaml = fallback_config(MODEL, a.data_addr, b.data_addr, "")
            .replace("priority: 1", "priority: 0");
        let node = SwitchyardNode::start(&yaml).await?;
        for i in 0..100 {
            let r = http_post_json(&node.url("/v1/chat/completions"), &chat(i)).await?;
            anyhow::ensure!(r.status == 200);
        }
        let (ca, cb) = (a.request_count().await?, b.request_count().await?);
        anyhow::ensure!(ca + cb == 100);
        // 50/50 within ±20 requests: about four standard deviations of a fair coin over 100 tries.
        anyhow::ensure!((30..=70).contains(&ca), "weights 1:1 gave {ca}/{cb}");
        Ok(())
    })
    .await;
}

/// How the three addresses of backendRef "a" are spelled in the test below.
#[derive(Clone, Copy)]
enum ThreeAddresses {
    /// Three `ip` endpoints of one Backend.
    IpEndpoints,
    /// One `fqdn` endpoint that resolves to three addresses.
    Fqdn,
}

/// Envoy Gateway makes each backendRef a locality weighted by its `weight`: a backendRef with three
/// addresses at weight 1 beside a one-address backendRef at weight 1 gets half the traffic (each address a
/// sixth), not three quarters as weighting every address would give.
async fn weight_is_per_backend_ref(shape: ThreeAddresses) -> anyhow::Result<()> {
    use switchyard_cluster_tests::harness::MockOptions;
    // The three mocks share one port on 127.0.0.1-3, so that one fqdn endpoint can name them all.
    let port = free_port();
    let mut a = Vec::new();
    for i in 1..=3u8 {
        a.push(
            MockProvider::start_with(MockOptions {
                name: Some(format!("a{i}")),
                listen: Some(([127, 0, 0, i], port).into()),
                ..MockOptions::default()
            })
            .await?,
        );
    }
    let b = MockProvider::start("b").await?;
    let base = fallback_config(MODEL, a[0].data_addr, b.data_addr, "")
        .replace("priority: 1", "priority: 0");
    let first = format!("    - ip:\n        address: 127.0.0.1\n        port: {port}\n");
    anyhow::ensure!(base.contains(&first), "{base}");
    let node = match shape {
        ThreeAddresses::IpEndpoints => {
            let three: String = (1..=3)
                .map(|i| format!("    - ip:\n        address: 127.0.0.{i}\n        port: {port}\n"))
                .collect();
            SwitchyardNode::start(&base.replacen(&first, &three, 1)).await?
        }
        ThreeAddresses::Fqdn => {
            let fqdn =
                format!("    - fqdn:\n        hostname: api.mock.test\n        port: {port}\n");
            let hosts: String = (1..=3)
                .map(|i| format!("127.0.0.{i} api.mock.test\n"))
                .collect();
            SwitchyardNode::start_with_hosts(&base.replacen(&first, &fqdn, 1), &[], &hosts).await?
        }
    };
    let n = 200;
    for i in 0..n {
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(i)).await?;
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
    }
    let mut per_a = Vec::new();
    for m in &a {
        per_a.push(m.request_count().await?);
    }
    let cb = b.request_count().await?;
    anyhow::ensure!(per_a.iter().sum::<usize>() + cb == n);
    // 100 of 200 within ±30: about four standard deviations of a fair coin; weighting per address would
    // give 50.
    anyhow::ensure!(
        (70..=130).contains(&cb),
        "the one-address backendRef got {cb} of {n}, the three addresses {per_a:?}"
    );
    // Every address of the three-address backendRef takes its part (about 33 each).
    anyhow::ensure!(per_a.iter().all(|c| *c >= 10), "{per_a:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_belongs_to_the_backend_ref_not_to_each_of_its_endpoints() {
    bounded(weight_is_per_backend_ref(ThreeAddresses::IpEndpoints)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_belongs_to_the_backend_ref_not_to_each_address_of_its_fqdn() {
    bounded(weight_is_per_backend_ref(ThreeAddresses::Fqdn)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_answered_locally_with_openai_errors() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let node = SwitchyardNode::start_with(
            &fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY),
            &["--max-body-bytes", "2048"],
        )
        .await?;
        let url = node.url("/v1/chat/completions");
        let raw = |body: &'static str| {
            let url = url.clone();
            async move {
                switchyard_cluster_tests::harness::http_request(
                    hyper::Method::POST,
                    &url,
                    &[("content-type", "application/json")],
                    bytes::Bytes::from_static(body.as_bytes()),
                )
                .await
            }
        };
        let r = raw("{not json").await?;
        anyhow::ensure!(r.status == 400, "malformed JSON: {}", r.status);
        anyhow::ensure!(r.json()?["error"]["type"] == "invalid_request_error");
        let r = raw(r#"{"messages":[]}"#).await?;
        anyhow::ensure!(r.status == 400, "missing model: {}", r.status);
        let r = http_post_json(&url, &json!({"model": "no-such-model", "messages": []})).await?;
        anyhow::ensure!(r.status == 404, "unknown model: {}", r.status);
        anyhow::ensure!(r.json()?["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("no-such-model"));
        let big =
            json!({"model": MODEL, "messages": [{"role": "user", "content": "x".repeat(4096)}]});
        let r = http_post_json(&url, &big).await?;
        anyhow::ensure!(r.status == 413, "oversized body: {}", r.status);
        anyhow::ensure!(r.json()?["error"]["code"] == "request_too_large");
        let total = primary.request_count().await? + fallback.request_count().await?;
        anyhow::ensure!(
            total == 0,
            "no upstream may be contacted for a bad request, saw {total}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_passes_chunks_through_as_they_arrive() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        // The mock sends the head and two events, then never sends the rest: a client that sees those two
        // events proves chunk-by-chunk pass-through without relying on timing.
        primary.set_mode(json!({"mode": "stall", "after_chunks": 2})).await?;
        let node = SwitchyardNode::start(&fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY)).await?;
        let body = json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let mut stream = http_post_json_stream(&node.url("/v1/chat/completions"), &body).await?;
        anyhow::ensure!(stream.status == 200);
        anyhow::ensure!(stream.headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default()
            .starts_with("text/event-stream"));
        let mut text = String::new();
        while text.matches("data: ").count() < 2 {
            let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next_chunk()).await
                .map_err(|_| anyhow::anyhow!("first events did not arrive while the upstream stalls; got {text:?}"))?;
            match chunk {
                Some(Ok(c)) => text.push_str(&String::from_utf8_lossy(&c.data)),
                other => anyhow::bail!("stream ended early: {other:?}"),
            }
        }
        anyhow::ensure!(!text.contains("[DONE]"));
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_mid_way_ends_with_an_error_event_not_a_clean_end() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary.set_mode(json!({"mode": "cut", "after_chunks": 2})).await?;
        let node = SwitchyardNode::start(&fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY)).await?;
        let body = json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "hi"}]});
        let stream = http_post_json_stream(&node.url("/v1/chat/completions"), &body).await?;
        anyhow::ensure!(stream.status == 200);
        let (chunks, err) = stream.collect_chunks().await;
        let text: String = chunks.iter().map(|c| String::from_utf8_lossy(&c.data).into_owned()).collect();
        anyhow::ensure!(!text.contains("[DONE]"), "a cut stream must not look complete: {text:?}");
        let last_event = text.trim_end().rsplit("\n\n").next().unwrap_or_default();
        anyhow::ensure!(last_event.starts_with("data: {\"error\""), "last event should be an SSE error: {text:?}");
        anyhow::ensure!(err.is_some(), "the body must end with an error (connection aborted), not a clean end");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_clients_are_served_and_models_are_listed() {
    bounded(async {
        let (primary, _fallback, node) = start_pair(SEED_POLICY).await?;
        let r = http2_post_json(&node.url("/v1/chat/completions"), &chat(0)).await?;
        anyhow::ensure!(r.status == 200, "h2c: {} {}", r.status, r.text());
        for path in ["/v1/embeddings", "/v1/completions"] {
            let body = json!({"model": MODEL, "input": "hello", "prompt": "hello"});
            let r = http_post_json(&node.url(path), &body).await?;
            anyhow::ensure!(r.status == 200, "{path}: {} {}", r.status, r.text());
        }
        let r = http_get(&node.url("/v1/models")).await?;
        let v = r.json()?;
        anyhow::ensure!(v["object"] == "list");
        anyhow::ensure!(
            v["data"][0]["id"] == MODEL && v["data"][0]["owned_by"] == "Envoy AI Gateway",
            "{v}"
        );
        // No modelsCreatedAt or creationTimestamp in this config: `created` is when the node loaded it
        // (audit D11; it was 0), so within the last hour.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let created = v["data"][0]["created"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            created <= now && created + 3600 > now,
            "created {created}, now {now}: {v}"
        );
        let seen: Vec<String> = primary
            .requests()
            .await?
            .into_iter()
            .map(|r| r.path)
            .collect();
        anyhow::ensure!(
            seen == ["/v1/chat/completions", "/v1/embeddings", "/v1/completions"],
            "{seen:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_upstream_with_a_test_ca_and_api_key_from_a_secret() {
    bounded(async {
        use switchyard_cluster_tests::harness::{MockOptions, TlsFiles};
        let dir = tempfile::tempdir()?;
        let tls = TlsFiles::self_signed(dir.path(), &["provider.test"])?;
        let upstream = MockProvider::start_with(MockOptions {
            name: Some("tls-provider".into()),
            tls: Some((tls.cert_path.clone(), tls.key_path.clone())),
            ..MockOptions::default()
        })
        .await?;
        let ca_pem = std::fs::read_to_string(&tls.cert_path)?;
        let indented: String = ca_pem.lines().map(|l| format!("    {l}\n")).collect();
        let yaml = format!(
            r#"apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata: {{name: r, namespace: default}}
spec:
  schema: {{name: OpenAI}}
  rules:
    - backendRefs: [{{name: secure}}]
---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIServiceBackend
metadata: {{name: secure, namespace: default}}
spec:
  schema: {{name: OpenAI}}
  backendRef: {{name: secure-backend, kind: Backend, group: gateway.envoyproxy.io}}
  backendSecurityPolicyRef: {{name: key}}
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: secure-backend, namespace: default}}
spec:
  endpoints: [{{ip: {{address: 127.0.0.1, port: {port}}}}}]
---
apiVersion: gateway.networking.k8s.io/v1alpha3
kind: BackendTLSPolicy
metadata: {{name: tls, namespace: default}}
spec:
  targetRefs: [{{group: gateway.envoyproxy.io, kind: Backend, name: secure-backend}}]
  validation:
    hostname: provider.test
    caCertificateRefs: [{{group: "", kind: ConfigMap, name: test-ca}}]
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: test-ca, namespace: default}}
data:
  ca.crt: |
{indented}---
apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: BackendSecurityPolicy
metadata: {{name: key, namespace: default}}
spec:
  type: APIKey
  apiKey:
    secretRef: {{name: key, namespace: default}}
---
apiVersion: v1
kind: Secret
metadata: {{name: key, namespace: default}}
stringData:
  apiKey: sk-test-secret-value
"#,
            port = upstream.data_addr.port()
        );
        let node = SwitchyardNode::start(&yaml).await?;
        let r = switchyard_cluster_tests::harness::http_request(
            hyper::Method::POST,
            &node.url("/v1/chat/completions"),
            &[
                ("content-type", "application/json"),
                ("authorization", "Bearer client-own-key"),
            ],
            bytes::Bytes::from(serde_json::to_vec(&chat(0))?),
        )
        .await?;
        anyhow::ensure!(
            r.status == 200,
            "TLS upstream: {} {}\n{}",
            r.status,
            r.text(),
            node.logs()
        );
        anyhow::ensure!(r.json()?["choices"][0]["message"]["content"] == "hello from tls-provider");
        let seen = upstream.requests().await?;
        anyhow::ensure!(seen.len() == 1);
        let auth = seen[0]
            .headers
            .get("authorization")
            .cloned()
            .unwrap_or_default();
        anyhow::ensure!(
            auth == "Bearer sk-test-secret-value",
            "backend key from the Secret, not the client's: {auth:?}"
        );
        let want_host = format!("127.0.0.1:{}", upstream.data_addr.port());
        // On HTTP/1.1 the name is the Host header; over TLS the upstream may negotiate HTTP/2, where it is
        // the `:authority` pseudo-header (not in the mock's header log).
        if seen[0].version == "HTTP/1.1" {
            anyhow::ensure!(
                seen[0].headers.get("host") == Some(&want_host),
                "Host names the endpoint: {:?}",
                seen[0].headers
            );
        }
        // The secret never shows in status, logs or validate output.
        let status = node.status().await?.to_string();
        anyhow::ensure!(
            !status.contains("sk-test-secret-value")
                && !node.logs().contains("sk-test-secret-value")
        );
        let validate =
            std::process::Command::new(switchyard_cluster_tests::harness::bin_path("switchyard"))
                .args(["validate", "--config"])
                .arg(&node.config_path)
                .output()?;
        let out = String::from_utf8_lossy(&validate.stdout);
        anyhow::ensure!(
            validate.status.success() && !out.contains("sk-test-secret-value"),
            "{out}"
        );

        // A CA that did not sign the upstream's certificate: TLS failure → 503, never a plaintext fallback.
        std::fs::create_dir_all(dir.path().join("other"))?;
        let other = TlsFiles::self_signed(&dir.path().join("other"), &["provider.test"])?;
        let other_pem = std::fs::read_to_string(&other.cert_path)?;
        let other_indented: String = other_pem.lines().map(|l| format!("    {l}\n")).collect();
        let bad = SwitchyardNode::start(&yaml.replace(&indented, &other_indented)).await?;
        let r = http_post_json(&bad.url("/v1/chat/completions"), &chat(1)).await?;
        anyhow::ensure!(
            r.status == 503,
            "untrusted upstream certificate: {} {}",
            r.status,
            r.text()
        );
        anyhow::ensure!(r.text().contains("tls"), "reason names TLS: {}", r.text());
        Ok(())
    })
    .await;
}

/// Sockets to `port` on loopback in TCP state `state` (hex, as /proc/net/tcp spells it: 01 ESTABLISHED,
/// 08 CLOSE_WAIT), seen from the side that connected (remote port = `port`).
fn sockets_to(port: u16, state: &str) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[3] == state
                && f[2]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        })
        .count()
}

/// Sequential requests through the gateway ride one upstream connection (the pool hands it back after
/// each complete answer, streamed or not), and every non-streaming answer is counted in the GenAI metrics
/// (the body's end is seen even though hyper stops reading at its Content-Length).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_reused_and_every_answer_is_metered() {
    bounded(async {
        let (primary, _fallback, node) = start_pair(SEED_POLICY).await?;
        let n = 10;
        for i in 0..n {
            let r = http_post_json(&node.url("/v1/chat/completions"), &chat(i)).await?;
            anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
        }
        let stream =
            json!({"model": MODEL, "stream": true, "messages": [{"role": "user", "content": "s"}]});
        let r = http_post_json(&node.url("/v1/chat/completions"), &stream).await?;
        anyhow::ensure!(r.status == 200 && r.text().contains("[DONE]"));
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(99)).await?;
        anyhow::ensure!(r.status == 200);
        let sources: std::collections::BTreeSet<String> = primary
            .requests()
            .await?
            .into_iter()
            .map(|r| r.source)
            .collect();
        anyhow::ensure!(
            sources.len() == 1,
            "{} sequential requests used {} upstream connections: {sources:?}",
            n + 2,
            sources.len()
        );
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        let count = |name: &str| -> f64 {
            metrics
                .lines()
                .filter(|l| l.starts_with(name) && l.contains("gen_ai_request_model"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        let durations = count("gen_ai_server_request_duration_seconds_count");
        anyhow::ensure!(
            durations == (n + 2) as f64,
            "{durations} request durations recorded for {} answers:\n{metrics}",
            n + 2
        );
        // Input and output token counts for every answer.
        let tokens = count("gen_ai_client_token_usage_count");
        anyhow::ensure!(
            tokens >= 2.0 * (n + 1) as f64,
            "{tokens} token usage samples for {} metered answers:\n{metrics}",
            n + 1
        );
        Ok(())
    })
    .await;
}

/// A pooled connection the backend closed while it sat idle is noticed and replaced: the next request
/// goes out on a fresh connection and succeeds, with no failed attempt, even without any retry policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pooled_connection_the_backend_closed_is_replaced_without_a_failed_attempt() {
    bounded(async {
        // No BackendTrafficPolicy: a failed attempt would reach the client.
        let (primary, _fallback, node) = start_pair("").await?;
        let port = primary.data_addr.port();
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(1)).await?;
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
        anyhow::ensure!(sockets_to(port, "01") == 1, "one pooled connection");
        // `refuse` closes the mock's idle connections (and its listener); `ok` listens again.
        primary.set_mode(json!({"mode": "refuse"})).await?;
        primary.set_mode(json!({"mode": "ok"})).await?;
        switchyard_cluster_tests::harness::poll_until(
            Duration::from_secs(5),
            Duration::from_millis(10),
            || async { (sockets_to(port, "08") == 1).then_some(()) },
        )
        .await
        .map_err(|e| e.context("the gateway's pooled connection never saw the backend close it"))?;
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(2)).await?;
        anyhow::ensure!(
            r.status == 200,
            "after the backend closed the pooled connection: {} {}\n{}",
            r.status,
            r.text(),
            node.logs()
        );
        let reqs = primary.requests().await?;
        anyhow::ensure!(reqs.len() == 2, "the primary saw {} requests", reqs.len());
        anyhow::ensure!(reqs[0].source != reqs[1].source, "a fresh connection");
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        let failed: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                l.starts_with("switchyard_upstream_requests_total")
                    && !l.contains("outcome=\"200\"")
            })
            .collect();
        anyhow::ensure!(failed.is_empty(), "failed attempts recorded: {failed:?}");
        Ok(())
    })
    .await;
}

/// A request body that reaches the gateway in pieces (chunked, or a Content-Length body split across
/// writes) is forwarded whole, on one runtime thread and on several, and the client connection serves the
/// next request afterwards. The pieces are separate frames of the body, so the gateway must keep asking
/// its connection for more until the body ends (`wake.rs` holds back only the wake-up of the last one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_arriving_in_pieces_are_forwarded_whole() {
    use tokio::io::AsyncWriteExt;
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        for threads in ["1", "2"] {
            let node = SwitchyardNode::start_with(&config, &["--worker-threads", threads]).await?;
            primary.clear().await?;
            let mut conn = tokio::net::TcpStream::connect(node.listen).await?;
            conn.set_nodelay(true)?;
            // Chunked, three chunks written one at a time.
            let body = serde_json::to_string(&chat(1))?;
            let (a, rest) = body.split_at(10);
            let (b, c) = rest.split_at(rest.len() / 2);
            conn.write_all(raw_post_head("/v1/chat/completions", None).as_bytes())
                .await?;
            for piece in [a, b, c] {
                conn.write_all(format!("{:x}\r\n{piece}\r\n", piece.len()).as_bytes())
                    .await?;
                conn.flush().await?;
                // Not synchronisation: a pause so that the pieces arrive as separate reads.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            conn.write_all(b"0\r\n\r\n").await?;
            let (status, text) = read_raw_response(&mut conn).await?;
            anyhow::ensure!(
                status == 200,
                "chunked body on {threads} thread(s): {status} {text}"
            );
            // Then a Content-Length body in two writes, on the same connection.
            let body = serde_json::to_string(&chat(2))?;
            let (a, b) = body.split_at(body.len() / 2);
            let head = raw_post_head("/v1/chat/completions", Some(body.len()));
            conn.write_all(format!("{head}{a}").as_bytes()).await?;
            conn.flush().await?;
            tokio::time::sleep(Duration::from_millis(20)).await;
            conn.write_all(b.as_bytes()).await?;
            let (status, text) = read_raw_response(&mut conn).await?;
            anyhow::ensure!(
                status == 200,
                "split body on {threads} thread(s): {status} {text}"
            );
            let seen = count_by_body(&primary).await?;
            let want: BTreeMap<String, usize> =
                [("request-1".to_string(), 1), ("request-2".to_string(), 1)].into();
            anyhow::ensure!(
                seen == want,
                "on {threads} thread(s) the primary saw {seen:?}"
            );
        }
        Ok(())
    })
    .await;
}

/// Audit D4: an answer an upstream Envoy marked as its own refusal (`x-envoy-overloaded`,
/// `x-envoy-ratelimited`) is never retried, even when `retryOn` names its status, as Envoy's
/// `wouldRetryFromHeaders`; passive health still counts it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_an_upstream_envoy_marked_as_refusals_are_not_retried() {
    bounded(async {
        let policy = SEED_POLICY.replace(
            "        - 500\n",
            "        - 500\n        - 503\n        - 429\n",
        );
        for (status, header) in [(503u16, "x-envoy-overloaded"), (429, "x-envoy-ratelimited")] {
            let (primary, fallback, node) = start_pair(&policy).await?;
            primary
                .set_mode(json!({"mode": "status", "status": status, "headers": {header: "true"}}))
                .await?;
            let r = http_post_json(&node.url("/v1/chat/completions"), &chat(0)).await?;
            anyhow::ensure!(
                r.status == status,
                "{header}: the {status} must reach the client, got {} {}",
                r.status,
                r.text()
            );
            anyhow::ensure!(
                primary.request_count().await? == 1,
                "{header}: retried on the primary"
            );
            anyhow::ensure!(
                fallback.request_count().await? == 0,
                "{header}: retried onto the fallback"
            );
            if status == 503 {
                // consecutive5XxErrors: 1 ejected the primary on the marked 503: health counted it.
                let st = node.status().await?;
                let ejected = st["backends"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|b| b["backend"] == "default/primary" && b["ejected"] == true);
                anyhow::ensure!(
                    ejected,
                    "the marked 503 did not count for passive health: {st}"
                );
            } else {
                // The same status without the mark is retried (the policy names it); a 429 does not eject,
                // so every attempt goes to the primary: numRetries + 1 of them.
                primary
                    .set_mode(json!({"mode": "status", "status": status}))
                    .await?;
                let r = http_post_json(&node.url("/v1/chat/completions"), &chat(1)).await?;
                anyhow::ensure!(r.status == 429, "{}", r.status);
                let n = primary.request_count().await?;
                anyhow::ensure!(
                    n == 1 + 6,
                    "an unmarked 429 is retried 5 times: the primary saw {n}"
                );
            }
        }
        Ok(())
    })
    .await;
}

/// Audit D3: Envoy backs off with its jittered exponential strategy whatever a `Retry-After` says (Envoy
/// Gateway configures no rate-limited backoff). A primary asking for 8 s under a 3 s route timeout: the
/// retry goes to the fallback at once and the client gets its answer, not a route timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_does_not_delay_the_retry() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary
            .set_mode(json!({"mode": "status", "status": 500, "retry_after": 8}))
            .await?;
        let yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY)
            .replacen(
                "      backendRefs:\n",
                "      timeouts:\n        request: 3s\n      backendRefs:\n",
                1,
            );
        let node = SwitchyardNode::start(&yaml).await?;
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(0)).await?;
        anyhow::ensure!(
            r.status == 200,
            "the retry waited for Retry-After: {} {}",
            r.status,
            r.text()
        );
        anyhow::ensure!(fallback.request_count().await? == 1);
        Ok(())
    })
    .await;
}
