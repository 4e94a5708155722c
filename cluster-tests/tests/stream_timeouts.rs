//! The timeouts of an attempt and its answer (issue 17.2, audit D1/D2), through a real `switchyard` process:
//! the first-token timeout (extension) before the headers, before the first content and under load; an
//! unretried per-try timeout without it; the route timeout over the whole body; `perRetry.timeout` only
//! until the response starts; `streamIdleTimeout` as the idle cut.

mod streams;

use std::time::{Duration, Instant};

use serde_json::json;
use streams::*;
use switchyard_cluster_tests::harness::{
    fallback_config, http_post_json, MockProvider, SwitchyardNode, SEED_POLICY,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_token_timeout_fails_over_a_hung_primary_under_the_seed_policy() {
    bounded(async {
        // The seed policy retries neither timeouts nor resets; its 30 s per-try timeout would hold the
        // client. The annotation fails over after 1 s, before headers (non-streamed)…
        let (_primary, _fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "hang"}),
            "",
            SEED_POLICY,
            &first_token_annotation("1s"),
        )
        .await?;
        let t = Instant::now();
        let r = http_post_json(
            &node.url("/v1/chat/completions"),
            &json!({"model": MODEL, "messages": [{"role": "user", "content": "hung"}]}),
        )
        .await?;
        let took = t.elapsed();
        anyhow::ensure!(r.status == 200, "{} {}", r.status, r.text());
        anyhow::ensure!(
            r.json()?["choices"][0]["message"]["content"] == "hello from fallback",
            "{}",
            r.text()
        );
        anyhow::ensure!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "took {took:?}"
        );
        anyhow::ensure!(
            outcomes(&node, "primary").await? == vec![("first_token_timeout".to_string(), 1.0)],
            "{:?}",
            outcomes(&node, "primary").await?
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_token_timeout_fails_over_a_stream_silent_after_its_headers() {
    bounded(async {
        // …and after a 200 whose stream says nothing but its role chunk.
        let (_primary, _fallback, node) = start(
            Schema::Bedrock,
            json!({"mode": "stall", "after_chunks": 1}),
            "",
            SEED_POLICY,
            &first_token_annotation("1s"),
        )
        .await?;
        let t = Instant::now();
        ensure_fallback_answer(&stream(&node, "silent").await?, &node)?;
        anyhow::ensure!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_annotation_an_unretried_per_try_timeout_stays_envoy_exact() {
    bounded(async {
        let policy = SEED_POLICY.replace("timeout: 30s", "timeout: 1s");
        let primary = MockProvider::start("primary").await?;
        let fallback = MockProvider::start("fallback").await?;
        primary.set_mode(json!({"mode": "hang"})).await?;
        let node = SwitchyardNode::start(&fallback_config(
            MODEL,
            primary.data_addr,
            fallback.data_addr,
            &policy,
        ))
        .await?;
        let r = http_post_json(
            &node.url("/v1/chat/completions"),
            &json!({"model": MODEL, "messages": [{"role": "user", "content": "hung"}]}),
        )
        .await?;
        anyhow::ensure!(r.status == 504, "{} {}", r.status, r.text());
        anyhow::ensure!(fallback.request_count().await? == 0);
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_timeout_bounds_the_whole_body() {
    bounded(async {
        // Content, then the upstream stalls; no idle timeout is set: the 2 s route timeout cuts it.
        let (_primary, _fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "stall", "after_chunks": 2}),
            "      timeouts:\n        request: 2s\n",
            &failover_policy(5),
            "",
        )
        .await?;
        let t = Instant::now();
        let s = stream(&node, "slow").await?;
        let took = t.elapsed();
        ensure_broken(&s)?;
        anyhow::ensure!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(6),
            "cut after {took:?}"
        );
        anyhow::ensure!(s.raw.contains("route timeout"), "{s:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_try_timeout_stops_once_the_response_has_started() {
    bounded(async {
        // perRetry.timeout 1 s, chunks 1.2 s apart: the answer takes about 6 s and is complete.
        let policy =
            failover_policy(5).replace("    perRetry:\n", "    perRetry:\n      timeout: 1s\n");
        let (primary, _fallback, node) =
            start(Schema::OpenAi, json!({"mode": "ok"}), "", &policy, "").await?;
        primary
            .set_stream(json!({"chunk_delay_ms": 1200, "content_chunks": 2}))
            .await?;
        let s = stream(&node, "paced").await?;
        anyhow::ensure!(
            s.status == 200 && s.done && s.error.is_none() && !s.aborted,
            "{s:?}"
        );
        anyhow::ensure!(s.content == "hello from primary", "{s:?}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_idle_timeout_cuts_a_stream_that_stalls_after_content() {
    bounded(async {
        let (_primary, _fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "stall", "after_chunks": 2}),
            "      streamIdleTimeout: 1s\n",
            &failover_policy(5),
            "",
        )
        .await?;
        let t = Instant::now();
        let s = stream(&node, "stalls").await?;
        let took = t.elapsed();
        ensure_broken(&s)?;
        anyhow::ensure!(s.raw.contains("idle"), "{s:?}");
        anyhow::ensure!(took < Duration::from_secs(5), "cut after {took:?}");
        anyhow::ensure!(
            outcomes(&node, "primary").await? == vec![("stream_idle".to_string(), 1.0)],
            "{:?}",
            outcomes(&node, "primary").await?
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_hangs_under_load_costs_no_client_errors_with_a_first_token_timeout() {
    bounded(async {
        // `just bench`'s hang scenario in small: clients keep sending while the primary starts hanging.
        // Under the seed page's policy alone each request the primary holds would wait 30 s and get a 504;
        // with the annotation every one of them is answered by the fallback.
        let (primary, fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "ok"}),
            "",
            SEED_POLICY,
            &first_token_annotation("1s"),
        )
        .await?;
        let url = node.url("/v1/chat/completions");
        let ok = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = Instant::now() + Duration::from_secs(5);
        let mut clients = Vec::new();
        for c in 0..8 {
            let (url, ok) = (url.clone(), ok.clone());
            clients.push(tokio::spawn(async move {
                let mut failed = Vec::new();
                let mut i = 0;
                while Instant::now() < stop {
                    let body = json!({"model": MODEL, "messages": [{"role": "user", "content": format!("c{c}-{i}")}]});
                    match http_post_json(&url, &body).await {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Ok(r) => failed.push(format!("{} {}", r.status, r.text())),
                        Err(e) => failed.push(format!("{e:#}")),
                    }
                    i += 1;
                }
                failed
            }));
        }
        // The switch happens once traffic flows (a poll with a deadline, not a sleep).
        let switch_by = Instant::now() + Duration::from_secs(3);
        while ok.load(std::sync::atomic::Ordering::Relaxed) < 20 {
            anyhow::ensure!(Instant::now() < switch_by, "no traffic before the switch");
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        primary.set_mode(json!({"mode": "hang"})).await?;
        let mut failed = Vec::new();
        for c in clients {
            failed.extend(c.await?);
        }
        anyhow::ensure!(failed.is_empty(), "client errors: {failed:?}");
        let held = outcomes(&node, "primary").await?;
        anyhow::ensure!(
            held.iter()
                .any(|(o, n)| o == "first_token_timeout" && *n >= 1.0),
            "the hung primary held no request: {held:?}"
        );
        anyhow::ensure!(fallback.request_count().await? >= 1);
        Ok(())
    })
    .await;
}
