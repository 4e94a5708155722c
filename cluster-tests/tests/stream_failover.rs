//! Honest streams and failover before the first token (issues 17.1, 18.3, 18.4), through a real
//! `switchyard` process and mock providers speaking each provider's own stream format:
//! - a stream that fails after its 200 counts against its backend (ejection, `/metrics`);
//! - a stream that ends without its end marker reaches the client as an error, not a complete answer;
//! - an error event, an end or silence before the first content fails over to the next priority, for
//!   OpenAI, Azure, Anthropic, Bedrock and Cohere streams; after content it stays an SSE error event.

mod streams;

use std::time::{Duration, Instant};

use serde_json::json;
use streams::*;
use switchyard_cluster_tests::harness::http_get;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_that_cuts_every_stream_after_content_is_ejected_and_the_fallback_serves() {
    bounded(async {
        // Two content chunks go out before each cut, so those answers cannot fail over; with
        // consecutive5XxErrors: 2 only the second cut ejects — which also shows that the 200 each cut
        // stream began with was not counted as a success that resets the counter.
        let (primary, fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "cut", "after_chunks": 2}),
            "",
            &failover_policy(2),
            "",
        )
        .await?;
        for i in 0..2 {
            let s = stream(&node, &format!("cut-{i}")).await?;
            ensure_broken(&s)?;
            anyhow::ensure!(
                s.content.starts_with("hello"),
                "content before the cut: {s:?}"
            );
        }
        anyhow::ensure!(
            primary_ejected(&node).await?,
            "primary not ejected after two cut streams"
        );
        for i in 0..3 {
            ensure_fallback_answer(&stream(&node, &format!("after-{i}")).await?, &node)?;
        }
        anyhow::ensure!(
            primary.request_count().await? == 2,
            "the ejected primary was used"
        );
        anyhow::ensure!(fallback.request_count().await? == 3);
        let primary_outcomes = outcomes(&node, "primary").await?;
        anyhow::ensure!(
            primary_outcomes == vec![("stream_reset".to_string(), 2.0)],
            "cut streams are failed attempts, not 200s: {primary_outcomes:?}"
        );
        let metrics = http_get(&node.admin_url("/metrics")).await?.text();
        anyhow::ensure!(
            metrics
                .lines()
                .any(|l| l.starts_with("switchyard_truncated_responses_total{")
                    && l.contains("primary")
                    && l.ends_with(" 2")),
            "truncations not counted per backend:\n{metrics}"
        );
        anyhow::ensure!(
            outcomes(&node, "fallback").await? == vec![("200".to_string(), 3.0)],
            "{:?}",
            outcomes(&node, "fallback").await?
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_ends_without_done_or_finish_reason_is_an_error_not_an_answer() {
    bounded(async {
        // Role chunk and two content chunks, then a clean end: no finish reason, no [DONE].
        let (_primary, _fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "truncate", "after_chunks": 3}),
            "",
            &failover_policy(5),
            "",
        )
        .await?;
        let s = stream(&node, "truncated").await?;
        ensure_broken(&s)?;
        anyhow::ensure!(
            outcomes(&node, "primary").await? == vec![("stream_incomplete".to_string(), 1.0)],
            "{:?}",
            outcomes(&node, "primary").await?
        );
        Ok(())
    })
    .await;
}

/// An error event after the 200 and before any content fails over to the fallback, classified by the
/// status it stands for (which ejects on a 5xx, never on a 429).
async fn error_event_before_content_fails_over(
    schema: Schema,
    status: u16,
    ejects: bool,
) -> anyhow::Result<()> {
    let (primary, fallback, node) = start(
        schema,
        json!({"mode": "stream_error", "after_chunks": 1, "status": status}),
        "",
        &failover_policy(1),
        "",
    )
    .await?;
    ensure_fallback_answer(&stream(&node, "first").await?, &node)?;
    anyhow::ensure!(primary.request_count().await? == 1);
    anyhow::ensure!(fallback.request_count().await? == 1);
    anyhow::ensure!(
        outcomes(&node, "primary").await? == vec![("stream_error".to_string(), 1.0)],
        "{:?}",
        outcomes(&node, "primary").await?
    );
    anyhow::ensure!(
        primary_ejected(&node).await? == ejects,
        "primary ejected should be {ejects} after a {status}-class error event"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_error_chunk_before_content_fails_over() {
    bounded(error_event_before_content_fails_over(
        Schema::OpenAi,
        503,
        true,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_error_chunk_before_content_fails_over() {
    bounded(error_event_before_content_fails_over(
        Schema::Azure,
        500,
        true,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_overloaded_event_before_content_fails_over() {
    bounded(error_event_before_content_fails_over(
        Schema::Anthropic,
        529,
        true,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cohere_failed_generation_before_content_fails_over() {
    bounded(error_event_before_content_fails_over(
        Schema::Cohere,
        500,
        true,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bedrock_throttling_exception_before_content_fails_over_without_ejecting() {
    bounded(error_event_before_content_fails_over(
        Schema::Bedrock,
        429,
        false,
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_before_content_fails_over() {
    bounded(async {
        let (_primary, _fallback, node) = start(
            Schema::Anthropic,
            json!({"mode": "truncate", "after_chunks": 1}),
            "",
            &failover_policy(1),
            "",
        )
        .await?;
        ensure_fallback_answer(&stream(&node, "ends").await?, &node)?;
        anyhow::ensure!(
            primary_ejected(&node).await?,
            "an early end counts like a reset"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_before_content_fails_over_after_the_stream_idle_timeout() {
    bounded(async {
        let (_primary, _fallback, node) = start(
            Schema::OpenAi,
            json!({"mode": "stall", "after_chunks": 1}),
            "      streamIdleTimeout: 1s\n",
            &failover_policy(1),
            "",
        )
        .await?;
        let t = Instant::now();
        ensure_fallback_answer(&stream(&node, "silent").await?, &node)?;
        let took = t.elapsed();
        anyhow::ensure!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "failover after {took:?}, want about the 1 s idle timeout"
        );
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_event_after_content_stays_an_error_event() {
    bounded(async {
        let (_primary, fallback, node) = start(
            Schema::Anthropic,
            json!({"mode": "stream_error", "after_chunks": 4, "status": 529}),
            "",
            &failover_policy(1),
            "",
        )
        .await?;
        let s = stream(&node, "late error").await?;
        ensure_broken(&s)?;
        anyhow::ensure!(
            !s.content.is_empty(),
            "content came before the error: {s:?}"
        );
        anyhow::ensure!(
            fallback.request_count().await? == 0,
            "no retry after content"
        );
        Ok(())
    })
    .await;
}
