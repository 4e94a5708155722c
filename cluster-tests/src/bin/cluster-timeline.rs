//! The cluster-timeline benchmark (docs/BENCHMARKS.md, "One timeline"): three nodes behind a real HAProxy
//! in TCP mode, the seed page's policy, a primary that answers 500 from the start, and load through HAProxy
//! for a fixed time at each rate (open loop at R req/s, or a closed loop on C connections), with
//! `--share-ejections on` and `off`. Reported per run: client errors, the requests the primary received
//! (all, after the first second, and per node by source address, with their times), the expiries in the
//! window, and the nodes' propagation p99 from their `switchyard_ejection_propagation_seconds` histograms.
//!
//! Not a test: it prints figures. Run with
//! `cargo run --release -p switchyard-cluster-tests --bin cluster-timeline -- --rates 300,3000,closed`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use switchyard_cluster_tests::harness::{
    fallback_config, http_get, Haproxy, LbServer, MockProvider, TestCluster, SEED_POLICY,
};

#[derive(Parser)]
struct Args {
    /// Loads: a rate in req/s, or `closed` (a closed loop on `--connections`).
    #[arg(long, value_delimiter = ',', default_value = "300,3000,closed")]
    rates: Vec<String>,
    /// Connections of the closed loop.
    #[arg(long, default_value_t = 12)]
    connections: usize,
    /// Length of each run.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Sharing modes to run.
    #[arg(long, value_delimiter = ',', default_value = "on,off")]
    share: Vec<String>,
}

const MODEL: &str = "bench-model";

fn body() -> Bytes {
    Bytes::from(
        json!({"model": MODEL, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16})
            .to_string(),
    )
}

struct Counts {
    ok: AtomicU64,
    failed: AtomicU64,
}

async fn one(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    url: &str,
    counts: &Counts,
) {
    let req = http::Request::post(url)
        .header("content-type", "application/json")
        .body(Full::new(body()));
    let Ok(req) = req else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let ok = match tokio::time::timeout(Duration::from_secs(30), client.request(req)).await {
        Ok(Ok(resp)) => {
            let status = resp.status();
            let _ = resp.into_body().collect().await;
            status == 200
        }
        _ => false,
    };
    if ok {
        counts.ok.fetch_add(1, Ordering::Relaxed);
    } else {
        counts.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sends the load for `length` and waits for the last answers.
async fn load(url: &str, rate: Option<u32>, connections: usize, length: Duration) -> (u64, u64) {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1024)
        .build_http();
    let counts = Arc::new(Counts {
        ok: AtomicU64::new(0),
        failed: AtomicU64::new(0),
    });
    let end = Instant::now() + length;
    let mut tasks = Vec::new();
    match rate {
        Some(rate) => {
            // Open loop: one request every 1/rate, whatever the answers do.
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            while Instant::now() < end {
                tick.tick().await;
                let (client, url, counts) = (client.clone(), url.to_string(), counts.clone());
                tasks.push(tokio::spawn(
                    async move { one(&client, &url, &counts).await },
                ));
            }
        }
        None => {
            for _ in 0..connections {
                let (client, url, counts) = (client.clone(), url.to_string(), counts.clone());
                tasks.push(tokio::spawn(async move {
                    while Instant::now() < end {
                        one(&client, &url, &counts).await;
                    }
                }));
            }
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    (
        counts.ok.load(Ordering::Relaxed),
        counts.failed.load(Ordering::Relaxed),
    )
}

/// p99 of a Prometheus histogram summed over several `/metrics` texts (the upper bound of the bucket
/// holding the 99th percentile), and the sample count.
fn histogram_p99(texts: &[String], name: &str) -> (Option<f64>, u64) {
    let mut buckets: BTreeMap<String, u64> = BTreeMap::new();
    for text in texts {
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&format!("{name}_bucket{{le=\"")) else {
                continue;
            };
            let Some((le, value)) = rest.split_once("\"} ") else {
                continue;
            };
            let n: f64 = value.trim().parse().unwrap_or(0.0);
            *buckets.entry(le.to_string()).or_default() += n as u64;
        }
    }
    let mut bounds: Vec<(f64, u64)> = buckets
        .into_iter()
        .map(|(le, n)| (le.parse::<f64>().unwrap_or(f64::INFINITY), n))
        .collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = bounds.last().map_or(0, |b| b.1);
    if total == 0 {
        return (None, 0);
    }
    let want = (total as f64 * 0.99).ceil() as u64;
    (bounds.iter().find(|b| b.1 >= want).map(|b| b.0), total)
}

async fn run_one(rate: &str, share: &str, args: &Args) -> anyhow::Result<String> {
    let primary = MockProvider::start("primary").await?;
    let fallback = MockProvider::start("fallback").await?;
    let yaml = fallback_config(MODEL, primary.data_addr, fallback.data_addr, SEED_POLICY);
    let cluster = TestCluster::start(3, &yaml, &["--share-ejections", share]).await?;
    let servers: Vec<LbServer> = (0..3)
        .map(|i| LbServer {
            name: format!("n{}", i + 1),
            client: cluster.node(i).listen,
            admin: cluster.node(i).admin,
        })
        .collect();
    let lb = Haproxy::start(&servers).await?;
    for name in ["n1", "n2", "n3"] {
        lb.wait_status(name, "UP", Duration::from_secs(20))
            .await
            .context("HAProxy never saw the nodes up")?;
    }
    primary
        .set_mode(json!({"mode": "status", "status": 500}))
        .await?;
    primary.clear().await?;
    let open = rate.parse::<u32>().ok();
    let started = Instant::now();
    let (ok, failed) = load(
        &lb.url("/v1/chat/completions"),
        open,
        args.connections,
        Duration::from_secs(args.seconds),
    )
    .await;
    let took = started.elapsed();
    let reqs = primary.requests().await?;
    let first = reqs.first().map(|r| r.at_ms).unwrap_or_default();
    let after: Vec<&_> = reqs.iter().filter(|r| r.at_ms >= first + 1_000).collect();
    let mut per_node: BTreeMap<String, u64> = BTreeMap::new();
    for r in &reqs {
        let ip = r
            .source
            .rsplit_once(':')
            .map_or(r.source.as_str(), |(ip, _)| ip);
        *per_node.entry(ip.to_string()).or_default() += 1;
    }
    let times: Vec<String> = after
        .iter()
        .map(|r| format!("{:.2}s", (r.at_ms - first) as f64 / 1000.0))
        .collect();
    let mut texts = Vec::new();
    for i in 0..3 {
        texts.push(
            http_get(&cluster.node(i).admin_url("/metrics"))
                .await?
                .text(),
        );
    }
    let (p99, samples) = histogram_p99(&texts, "switchyard_ejection_propagation_seconds");
    let load_name = match open {
        Some(r) => format!("{r} req/s"),
        None => format!("closed loop, {} connections", args.connections),
    };
    Ok(format!(
        "| {load_name} | {share} | {:.0} | {failed} | {} | {} | {} | {per_node:?} | {} |",
        (ok + failed) as f64 / took.as_secs_f64(),
        reqs.len(),
        after.len(),
        times.join(" "),
        p99.map_or("-".to_string(), |p| format!(
            "≤ {:.2} ms ({samples} samples)",
            p * 1000.0
        )),
    ))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "| load | sharing | req/s achieved | client errors | primary requests | after the first second | their times (from the first) | per node | propagation p99 |"
    );
    println!("|---|---|---:|---:|---:|---:|---|---|---|");
    for rate in &args.rates {
        for share in &args.share {
            match run_one(rate, share, &args).await {
                Ok(line) => println!("{line}"),
                Err(e) => println!("| {rate} | {share} | failed: {e:#} |"),
            }
        }
    }
    Ok(())
}
