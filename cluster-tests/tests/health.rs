//! Issue 3's behaviour through real processes: ejection and fail-back on the seed policy, what `status`
//! and `/metrics` show about it, `maxEjectionPercent`, and reload (SIGHUP and `POST /reload`).

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_cluster_tests::harness::{
    bin_path, fallback_config, http_get, http_post_json, http_request, poll_until, run_bounded,
    MockProvider, SwitchyardNode, SEED_POLICY,
};

const MODEL: &str = "us.meta.llama3-2-1b-instruct-v1:0";
const TEST_TIMEOUT: Duration = Duration::from_secs(90);

async fn bounded<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) {
    run_bounded(TEST_TIMEOUT, f).await
}

fn chat(id: usize) -> Value {
    json!({"model": MODEL, "messages": [{"role": "user", "content": format!("request-{id}")}]})
}

async fn answer(node: &SwitchyardNode, id: usize) -> anyhow::Result<String> {
    let r = http_post_json(&node.url("/v1/chat/completions"), &chat(id)).await?;
    anyhow::ensure!(r.status == 200, "request {id}: {} {}", r.status, r.text());
    Ok(r.json()?["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

fn host<'a>(status: &'a Value, backend: &str) -> anyhow::Result<&'a Value> {
    status["backends"]
        .as_array()
        .and_then(|b| b.iter().find(|h| h["backend"] == backend))
        .ok_or_else(|| anyhow::anyhow!("{backend} missing from /status: {status}"))
}

async fn wait_returned(
    node: &SwitchyardNode,
    backend: &str,
    within: Duration,
) -> anyhow::Result<()> {
    poll_until(within, Duration::from_millis(100), || async {
        let s = node.status().await.ok()?;
        (host(&s, backend).ok()?["ejected"] == false).then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ejected_primary_gets_no_traffic_then_one_probe_then_fails_back() {
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
            SEED_POLICY,
        ))
        .await?;

        let ejected_at = Instant::now();
        for i in 0..8 {
            anyhow::ensure!(answer(&node, i).await? == "hello from fallback");
        }
        anyhow::ensure!(
            primary.request_count().await? == 1,
            "no request may reach an ejected primary"
        );
        let s = node.status().await?;
        let p = host(&s, "default/primary")?;
        anyhow::ensure!(
            p["ejected"] == true && p["reason"] == "consecutive_5xx",
            "{p}"
        );

        // Seed policy: 5 s base ejection, 2 s sweeps → the host returns 5–7 s after its ejection.
        wait_returned(&node, "default/primary", Duration::from_secs(10)).await?;
        let back_after = ejected_at.elapsed();
        anyhow::ensure!(
            back_after >= Duration::from_secs(5),
            "returned too early: {back_after:?}"
        );

        // Still failing: exactly one request probes it, fails, is retried on the fallback, and the host is
        // ejected again for twice as long (k = 2).
        for i in 10..14 {
            anyhow::ensure!(answer(&node, i).await? == "hello from fallback");
        }
        anyhow::ensure!(
            primary.request_count().await? == 2,
            "exactly one probe request after return"
        );
        let s = node.status().await?;
        let p = host(&s, "default/primary")?;
        let left = p["time_left_ms"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            p["ejection_count"] == 2 && left > 5_000 && left <= 10_000,
            "second ejection lasts 10 s: {p}"
        );

        // Healthy again: once it returns, traffic fails back to priority 0.
        primary.set_mode(json!({"mode": "ok"})).await?;
        wait_returned(&node, "default/primary", Duration::from_secs(14)).await?;
        for i in 20..23 {
            anyhow::ensure!(
                answer(&node, i).await? == "hello from primary",
                "traffic should fail back"
            );
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_command_and_metrics_show_the_ejection_and_token_usage() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary.set_mode(json!({"mode": "status", "status": 500})).await?;
        let node = SwitchyardNode::start(&fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY)).await?;
        answer(&node, 0).await?;
        let stream_body = json!({"model": MODEL, "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "hi"}]});
        let r = http_post_json(&node.url("/v1/chat/completions"), &stream_body).await?;
        anyhow::ensure!(r.status == 200 && r.text().contains("[DONE]"));

        let admin = format!("http://{}", node.admin);
        let out = tokio::process::Command::new(bin_path("switchyard"))
            .args(["status", "--admin", &admin, "--json"])
            .output()
            .await?;
        anyhow::ensure!(out.status.success(), "status --json failed: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout)?;
        let p = host(&v, "default/primary")?;
        let left = p["time_left_ms"].as_u64().unwrap_or(0);
        anyhow::ensure!(p["ejected"] == true && left > 0 && left <= 5_000, "plausible time left: {p}");
        anyhow::ensure!(v["routes"][0]["rules"][0] == json!([[0, 0], [1, 100]]), "priority load: {}", v["routes"]);

        let out = tokio::process::Command::new(bin_path("switchyard"))
            .args(["status", "--admin", &admin])
            .output()
            .await?;
        let table = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(out.status.success() && table.contains("ejected") && table.contains("consecutive_5xx"), "{table}");
        anyhow::ensure!(table.contains("P0: 0%") && table.contains("P1: 100%"), "{table}");

        // An unreachable node: non-zero exit and a message.
        let out = tokio::process::Command::new(bin_path("switchyard"))
            .args(["status", "--admin", "http://127.0.0.1:1"])
            .output()
            .await?;
        anyhow::ensure!(!out.status.success(), "status of an unreachable node must fail");
        anyhow::ensure!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));

        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        let samples = parse_prometheus(&metrics)?;
        let find = |name: &str, labels: &[(&str, &str)]| {
            samples.iter().find(|(n, l, _)| {
                n == name && labels.iter().all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
        };
        let ej = find("switchyard_ejections_total", &[("reason", "consecutive_5xx"), ("source", "local")])
            .ok_or_else(|| anyhow::anyhow!("no ejection counter in:\n{metrics}"))?;
        anyhow::ensure!(ej.2 == 1.0, "one ejection: {ej:?}");
        anyhow::ensure!(find("switchyard_backend_ejected", &[]).is_some(), "{metrics}");
        for token_type in ["input", "output"] {
            let name_matches = |n: &str| n.starts_with("gen_ai_client_token_usage");
            let found = samples.iter().any(|(n, l, v)| {
                name_matches(n)
                    && n.ends_with("_sum")
                    && *v > 0.0
                    && l.iter().any(|(k, lv)| k == "gen_ai_token_type" && lv == token_type)
                    && l.iter().any(|(k, lv)| k == "gen_ai_request_model" && lv == MODEL)
                    && l.iter().any(|(k, lv)| k == "gen_ai_operation_name" && lv == "chat")
            });
            anyhow::ensure!(found, "token usage ({token_type}) missing:\n{metrics}");
        }
        anyhow::ensure!(samples.iter().any(|(n, _, _)| n.starts_with("gen_ai_server_time_to_first_token_seconds")));
        Ok(())
    })
    .await;
}

type Sample = (String, Vec<(String, String)>, f64);

/// A strict reader of the Prometheus text format (0.0.4): every line is a comment, blank, or
/// `name{label="value",...} number`; anything else fails the test.
fn parse_prometheus(text: &str) -> anyhow::Result<Vec<Sample>> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| anyhow::anyhow!("no value: {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| anyhow::anyhow!("bad value: {line:?}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or_else(|| anyhow::anyhow!("bad labels: {line:?}"))?;
                let mut labels = Vec::new();
                let mut rest = body;
                while !rest.is_empty() {
                    let (k, after) = rest
                        .split_once("=\"")
                        .ok_or_else(|| anyhow::anyhow!("bad label: {line:?}"))?;
                    let mut end = None;
                    let mut escaped = false;
                    for (i, c) in after.char_indices() {
                        match c {
                            '\\' if !escaped => escaped = true,
                            '"' if !escaped => {
                                end = Some(i);
                                break;
                            }
                            _ => escaped = false,
                        }
                    }
                    let end = end.ok_or_else(|| anyhow::anyhow!("unterminated label: {line:?}"))?;
                    labels.push((
                        k.trim_start_matches(',').to_string(),
                        after[..end].to_string(),
                    ));
                    rest = after[end + 1..].trim_start_matches(',');
                }
                (n.to_string(), labels)
            }
            None => (series.to_string(), Vec::new()),
        };
        anyhow::ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line:?}"
        );
        out.push((name, labels, value));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_ejection_percent_50_keeps_the_second_of_two_hosts() {
    bounded(async {
        let a = MockProvider::start("a").await?;
        let b = MockProvider::start("b").await?;
        a.set_mode(json!({"mode": "status", "status": 500})).await?;
        b.set_mode(json!({"mode": "status", "status": 500})).await?;
        let policy = "  healthCheck:\n    passive:\n      consecutive5XxErrors: 1\n      maxEjectionPercent: 50\n      baseEjectionTime: 30s\n      interval: 1s\n";
        let yaml = fallback_config(MODEL, a.data_addr, b.data_addr, policy).replace("priority: 1", "priority: 0");
        let node = SwitchyardNode::start(&yaml).await?;
        for i in 0..20 {
            let r = http_post_json(&node.url("/v1/chat/completions"), &chat(i)).await?;
            anyhow::ensure!(r.status == 500);
            let s = node.status().await?;
            let ejected = s["backends"].as_array().map_or(0, |v| v.iter().filter(|h| h["ejected"] == true).count());
            anyhow::ensure!(ejected <= 1, "maxEjectionPercent 50 of 2 hosts allows one ejection, saw {ejected}: {s}");
        }
        let s = node.status().await?;
        let ejected = s["backends"].as_array().map_or(0, |v| v.iter().filter(|h| h["ejected"] == true).count());
        anyhow::ensure!(ejected == 1, "the first failing host is ejected: {s}");
        let (ca, cb) = (a.request_count().await?, b.request_count().await?);
        anyhow::ensure!(ca + cb == 20 && ca.min(cb) == 1, "after the first ejection every request goes to the other host: {ca}/{cb}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_moves_traffic_without_dropping_a_request_in_flight() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let mut node = SwitchyardNode::start(&yaml).await?;
        anyhow::ensure!(answer(&node, 0).await? == "hello from primary");

        // A slow request in flight on the primary while the config changes under it.
        primary
            .set_mode(json!({"mode": "delay", "ms": 1500}))
            .await?;
        let url = node.url("/v1/chat/completions");
        let in_flight = tokio::spawn(async move { http_post_json(&url, &chat(1)).await });
        poll_until(
            Duration::from_secs(5),
            Duration::from_millis(10),
            || async { (primary.request_count().await.ok()? == 2).then_some(()) },
        )
        .await?;

        let swapped = yaml
            .replace("priority: 0", "priority: 9")
            .replace("priority: 1", "priority: 0")
            .replace("priority: 9", "priority: 1");
        std::fs::write(&node.config_path, swapped)?;
        node.process().signal(libc::SIGHUP)?;
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(50),
            || async {
                let s = node.status().await.ok()?;
                (host(&s, "default/fallback").ok()?["priority"] == 0).then_some(())
            },
        )
        .await?;
        anyhow::ensure!(
            answer(&node, 2).await? == "hello from fallback",
            "traffic follows the new priorities"
        );

        let r = in_flight.await??;
        anyhow::ensure!(
            r.status == 200,
            "the in-flight request survived the reload: {}",
            r.status
        );
        anyhow::ensure!(r.json()?["choices"][0]["message"]["content"] == "hello from primary");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_reload_keeps_the_running_config_and_health() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        let yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        let node = SwitchyardNode::start(&yaml).await?;
        answer(&node, 0).await?;

        std::fs::write(
            &node.config_path,
            yaml.replace("priority: 1", "priority: [oops]"),
        )?;
        let r = http_request(
            hyper::Method::POST,
            &node.admin_url("/reload"),
            &[],
            bytes::Bytes::new(),
        )
        .await?;
        anyhow::ensure!(r.status == 400, "bad reload must fail: {}", r.status);
        let err = r.json()?["error"].as_str().unwrap_or_default().to_string();
        anyhow::ensure!(
            err.contains("config.yaml") && err.contains("AIGatewayRoute/default/provider-fallback"),
            "error names file and resource: {err}"
        );
        anyhow::ensure!(
            answer(&node, 1).await? == "hello from fallback",
            "old config still serves"
        );

        // A good reload keeps the health of backends that still exist.
        std::fs::write(&node.config_path, &yaml)?;
        let r = http_request(
            hyper::Method::POST,
            &node.admin_url("/reload"),
            &[],
            bytes::Bytes::new(),
        )
        .await?;
        anyhow::ensure!(r.status == 200, "good reload: {} {}", r.status, r.text());
        let s = node.status().await?;
        anyhow::ensure!(
            host(&s, "default/primary")?["ejected"] == true,
            "ejection survives reload: {s}"
        );
        anyhow::ensure!(primary.request_count().await? == 1);
        Ok(())
    })
    .await;
}

fn backend_hosts<'a>(status: &'a Value, backend: &str) -> Vec<&'a Value> {
    status["backends"]
        .as_array()
        .map(|b| b.iter().filter(|h| h["backend"] == backend).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_fqdn_with_two_addresses_is_two_hosts_with_their_own_health_and_is_re_resolved() {
    bounded(async {
        use switchyard_cluster_tests::harness::{free_port, MockOptions};
        let port = free_port();
        let start = |name: &str, ip: [u8; 4]| MockOptions {
            name: Some(name.into()),
            listen: Some((ip, port).into()),
            ..MockOptions::default()
        };
        let a = MockProvider::start_with(start("a", [127, 0, 0, 1])).await?;
        let b = MockProvider::start_with(start("b", [127, 0, 0, 2])).await?;
        a.set_mode(json!({"mode": "status", "status": 500})).await?;
        let yaml = format!(
            r#"apiVersion: aigateway.envoyproxy.io/v1alpha1
kind: AIGatewayRoute
metadata: {{name: r, namespace: default}}
spec:
  schema: {{name: OpenAI}}
  rules:
    - backendRefs: [{{name: api}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: Backend
metadata: {{name: api, namespace: default}}
spec:
  endpoints: [{{fqdn: {{hostname: api.mock.test, port: {port}}}}}]
---
apiVersion: gateway.envoyproxy.io/v1alpha1
kind: BackendTrafficPolicy
metadata: {{name: p, namespace: default}}
spec:
  targetRefs: [{{group: gateway.networking.k8s.io, kind: HTTPRoute, name: r}}]
{SEED_POLICY}"#
        );
        let node = SwitchyardNode::start_with_hosts(
            &yaml,
            &["--dns-refresh", "200ms"],
            "127.0.0.1 api.mock.test\n127.0.0.2 api.mock.test\n",
        )
        .await?;
        let s = node.status().await?;
        let hosts = backend_hosts(&s, "default/api");
        let addrs: Vec<&str> = hosts.iter().filter_map(|h| h["address"].as_str()).collect();
        anyhow::ensure!(
            addrs == [format!("127.0.0.1:{port}"), format!("127.0.0.2:{port}")],
            "one host per address: {addrs:?}"
        );
        for i in 0..10 {
            anyhow::ensure!(answer(&node, i).await? == "hello from b");
        }
        anyhow::ensure!(
            a.request_count().await? <= 1,
            "the failing address is ejected after one failure"
        );
        let s = node.status().await?;
        let ejected: Vec<bool> = backend_hosts(&s, "default/api")
            .iter()
            .map(|h| h["ejected"] == true)
            .collect();
        anyhow::ensure!(
            ejected.iter().filter(|e| **e).count() <= 1 && !ejected[1],
            "only a's address may be ejected: {s}"
        );
        // The Host header names the backend, not the dialled address.
        let seen = b.requests().await?;
        anyhow::ensure!(seen
            .iter()
            .all(|r| r.headers.get("host").map(String::as_str)
                == Some(&format!("api.mock.test:{port}"))));

        // Re-resolution: the name loses 127.0.0.2; the node drops that host and keeps the other's health.
        std::fs::write(node.hosts_path(), "127.0.0.1 api.mock.test\n")?;
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async {
                let s = node.status().await.ok()?;
                (backend_hosts(&s, "default/api").len() == 1).then_some(())
            },
        )
        .await?;
        Ok(())
    })
    .await;
}

const ACTIVE_POLICY: &str = r#"  healthCheck:
    active:
      type: HTTP
      interval: 200ms
      timeout: 1s
      unhealthyThreshold: 2
      healthyThreshold: 1
      http:
        path: /v1/models
        expectedStatuses: [200]
    passive:
      consecutive5XxErrors: 1
      baseEjectionTime: 60s
      interval: 1s
      maxEjectionPercent: 100
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_checks_eject_without_traffic_and_a_passing_probe_returns_a_host_at_once() {
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
            ACTIVE_POLICY,
        ))
        .await?;

        // No client traffic at all: failing probes eject the primary.
        poll_until(
            Duration::from_secs(10),
            Duration::from_millis(100),
            || async {
                let s = node.status().await.ok()?;
                let p = host(&s, "default/primary").ok()?.clone();
                (p["ejected"] == true && p["reason"] == "active_health_check").then_some(())
            },
        )
        .await?;
        anyhow::ensure!(answer(&node, 0).await? == "hello from fallback");
        let posts = primary
            .requests()
            .await?
            .into_iter()
            .filter(|r| r.method == "POST")
            .count();
        anyhow::ensure!(
            posts == 0,
            "no client request may reach a host failing active checks"
        );
        let probes = primary.requests().await?;
        anyhow::ensure!(
            probes
                .iter()
                .all(|r| r.method == "GET" && r.path == "/v1/models"),
            "probes use the configured path"
        );

        // Healthy again: one passing probe restores it (healthyThreshold 1).
        primary.set_mode(json!({"mode": "ok"})).await?;
        wait_returned(&node, "default/primary", Duration::from_secs(10)).await?;
        anyhow::ensure!(answer(&node, 1).await? == "hello from primary");

        // A passive ejection (60 s) ends at the first passing probe, not after 60 s.
        primary
            .set_mode(
                json!({"mode": "fail_after", "k": 0, "then": {"mode": "status", "status": 500}}),
            )
            .await?;
        let _ = http_post_json(&node.url("/v1/chat/completions"), &chat(2)).await?;
        let s = node.status().await?;
        let p = host(&s, "default/primary")?;
        anyhow::ensure!(p["ejected"] == true, "passively ejected: {p}");
        primary.set_mode(json!({"mode": "ok"})).await?;
        let since = Instant::now();
        wait_returned(&node, "default/primary", Duration::from_secs(10)).await?;
        anyhow::ensure!(
            since.elapsed() < Duration::from_secs(10),
            "returned by the probe, well before 60 s"
        );
        Ok(())
    })
    .await;
}

/// Health is per route rule (DESIGN §5 "Scope"): two rules name the same primary Backend; the primary fails
/// while one model is asked, that rule ejects it, and the other model keeps being served by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_models_failures_eject_the_provider_for_that_rule_only() {
    bounded(async {
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        let mut yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
        // A second rule, for another model, naming the same two Backends.
        yaml = yaml.replacen(
            "      backendRefs:\n        - name: primary\n          priority: 0\n        - name: fallback\n          priority: 1\n",
            "      backendRefs:\n        - name: primary\n          priority: 0\n        - name: fallback\n          priority: 1\n    - matches:\n        - headers:\n            - type: Exact\n              name: x-ai-eg-model\n              value: other-model\n      backendRefs:\n        - name: primary\n          priority: 0\n        - name: fallback\n          priority: 1\n",
            1,
        );
        let node = SwitchyardNode::start(&yaml).await?;
        let status = node.status().await?;
        let primaries: Vec<&Value> = status["backends"]
            .as_array()
            .map(|b| b.iter().filter(|h| h["backend"] == "default/primary").collect())
            .unwrap_or_default();
        let rules: Vec<&str> = primaries.iter().filter_map(|h| h["rule"].as_str()).collect();
        anyhow::ensure!(
            rules == ["default/provider-fallback#0", "default/provider-fallback#1"],
            "one primary host per rule: {rules:?}"
        );

        // The primary breaks while MODEL is asked: rule 0 ejects it (the retry lands on the fallback).
        primary
            .set_mode(json!({"mode": "status", "status": 500}))
            .await?;
        anyhow::ensure!(answer(&node, 1).await?.contains("fallback"));
        // It recovers; rule 0 still holds it out, rule 1 never saw a failure and keeps using it.
        primary.set_mode(json!({"mode": "ok"})).await?;
        primary.clear().await?;
        for id in 0..5 {
            let other = json!({"model": "other-model", "messages": [{"role": "user", "content": format!("o-{id}")}]});
            let r = http_post_json(&node.url("/v1/chat/completions"), &other).await?;
            anyhow::ensure!(r.status == 200, "{}", r.text());
            anyhow::ensure!(r.text().contains("primary"), "rule 1 is served by the primary: {}", r.text());
            anyhow::ensure!(answer(&node, 10 + id).await?.contains("fallback"), "rule 0 still ejects it");
        }
        let bodies: Vec<String> = primary
            .requests()
            .await?
            .iter()
            .filter_map(|r| r.json().and_then(|j| j["model"].as_str().map(String::from)))
            .collect();
        anyhow::ensure!(
            bodies.iter().all(|m| m == "other-model") && bodies.len() == 5,
            "only the other model reached the primary while rule 0 held it out: {bodies:?}"
        );
        let status = node.status().await?;
        let states: Vec<(String, bool)> = status["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|h| h["backend"] == "default/primary")
            .map(|h| (h["rule"].as_str().unwrap_or_default().to_string(), h["ejected"] == true))
            .collect();
        anyhow::ensure!(
            states
                == [
                    ("default/provider-fallback#0".to_string(), true),
                    ("default/provider-fallback#1".to_string(), false)
                ],
            "{states:?}"
        );
        Ok(())
    })
    .await;
}
