//! The rate-limit cooldown extension (issue 17.3) through a real `switchyard` process and real mock
//! providers: a 429 with `Retry-After` (or `retry-after-ms`) cools its host down and is retried elsewhere,
//! nothing is sent to the host until the cooldown ends, `status` shows it, the gateway's own 429 carries
//! `Retry-After` when every backend cools, and without the annotation nothing of this happens (Envoy).
//! The cluster-wide half is `cluster.rs a_rate_limited_provider_cools_down_on_every_node_under_load`.

use std::time::Duration;

use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    annotate_policy, backend_by_addr, bin_path, fallback_config, http_post_json, poll_until,
    run_bounded, MockProvider, SwitchyardNode, SEED_POLICY,
};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
const COOLDOWN: &str = "switchyard.io/rate-limit-cooldown: 60s";

fn chat(id: usize) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": format!("request-{id}")}]})
}

async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) {
    run_bounded(TEST_TIMEOUT, f).await
}

/// A node over `primary` and `fallback` with the seed page's policy (which does not retry 429) and, when
/// `cooldown`, the extension's annotation.
async fn node(
    primary: &MockProvider,
    fallback: &MockProvider,
    cooldown: bool,
) -> anyhow::Result<SwitchyardNode> {
    let yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
    let yaml = if cooldown {
        annotate_policy(&yaml, COOLDOWN)
    } else {
        yaml
    };
    SwitchyardNode::start(&yaml).await
}

async fn host(node: &SwitchyardNode, mock: &MockProvider) -> anyhow::Result<Value> {
    let st = node.status().await?;
    backend_by_addr(&st, mock.data_addr).ok_or_else(|| anyhow::anyhow!("no host in {st}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_cools_its_host_and_fails_over() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary
            .set_mode(json!({"mode": "status", "status": 429, "retry_after": 30}))
            .await?;
        let node = node(&primary, &fallback, true).await?;
        for i in 0..20 {
            let r = http_post_json(&node.url("/v1/chat/completions"), &chat(i)).await?;
            anyhow::ensure!(r.status == 200, "request {i}: {} {}", r.status, r.text());
            anyhow::ensure!(
                r.text().contains("fallback"),
                "request {i} answered by {}",
                r.text()
            );
        }
        anyhow::ensure!(
            primary.request_count().await? == 1,
            "nothing goes to a cooling host: the primary saw {}",
            primary.request_count().await?
        );
        let h = host(&node, &primary).await?;
        let left = h["cooldown_ms_left"].as_u64().unwrap_or(0);
        anyhow::ensure!((20_000..=30_000).contains(&left), "{h}");
        anyhow::ensure!(h["ejected"] == false, "a cooldown is not an ejection: {h}");
        let out = tokio::process::Command::new(bin_path("switchyard"))
            .args(["status", "--admin", &format!("http://{}", node.admin)])
            .output()
            .await?;
        let table = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(
            table
                .lines()
                .any(|l| l.contains(&primary.data_addr.to_string())
                    && l.contains("cooling")
                    && l.contains("rate_limited")),
            "status table:\n{table}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_takes_traffic_again_when_its_cooldown_ends() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        // Azure OpenAI's millisecond header wins over Retry-After.
        primary
            .set_mode(json!({"mode": "status", "status": 429, "retry_after": 30,
                             "headers": {"retry-after-ms": "1200"}}))
            .await?;
        let node = node(&primary, &fallback, true).await?;
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(0)).await?;
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
        let left = host(&node, &primary).await?["cooldown_ms_left"]
            .as_u64()
            .unwrap_or(0);
        anyhow::ensure!((1..=1_200).contains(&left), "retry-after-ms: {left}");
        primary.set_mode(json!({"mode": "ok"})).await?;
        poll_until(
            Duration::from_secs(5),
            Duration::from_millis(50),
            || async {
                host(&node, &primary).await.ok()?["cooldown_ms_left"]
                    .is_null()
                    .then_some(())
            },
        )
        .await?;
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(1)).await?;
        anyhow::ensure!(
            r.status == 200 && r.text().contains("primary"),
            "{}",
            r.text()
        );
        anyhow::ensure!(primary.request_count().await? == 2);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_backend_cools_the_gateway_answers_429_with_retry_after() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        for (m, secs) in [(&primary, 30), (&fallback, 20)] {
            m.set_mode(json!({"mode": "status", "status": 429, "retry_after": secs}))
                .await?;
        }
        let node = node(&primary, &fallback, true).await?;
        // Both answer 429 once: the client gets the last provider's own answer.
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(0)).await?;
        anyhow::ensure!(r.status == 429, "{} {}", r.status, r.text());
        anyhow::ensure!(
            r.header("retry-after") == Some("20"),
            "{:?}",
            r.header("retry-after")
        );
        // Then nothing is sent: the gateway answers for them, saying when to come back.
        let r = http_post_json(&node.url("/v1/chat/completions"), &chat(1)).await?;
        anyhow::ensure!(r.status == 429, "{} {}", r.status, r.text());
        anyhow::ensure!(
            r.json()?["error"]["code"] == "all_backends_cooling_down",
            "{}",
            r.text()
        );
        let wait: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no Retry-After"))?;
        anyhow::ensure!(
            (1..=20).contains(&wait),
            "Retry-After {wait}: the shortest cooldown left"
        );
        anyhow::ensure!(
            primary.request_count().await? == 1 && fallback.request_count().await? == 1
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_annotation_a_429_is_envoys() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary
            .set_mode(json!({"mode": "status", "status": 429, "retry_after": 30}))
            .await?;
        let node = node(&primary, &fallback, false).await?;
        for i in 0..3 {
            let r = http_post_json(&node.url("/v1/chat/completions"), &chat(i)).await?;
            anyhow::ensure!(
                r.status == 429,
                "the seed policy does not retry 429: {}",
                r.status
            );
        }
        anyhow::ensure!(
            primary.request_count().await? == 3,
            "no cooldown without the annotation"
        );
        anyhow::ensure!(fallback.request_count().await? == 0);
        anyhow::ensure!(host(&node, &primary).await?["cooldown_ms_left"].is_null());
        Ok(())
    })
    .await;
}
