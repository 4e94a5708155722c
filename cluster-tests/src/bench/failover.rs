//! Failover figures: one route, primary (priority 0) and fallback (priority 1) mocks, the seed page's policy
//! (retry on 500 and connect failures, eject after one 5xx / one local-origin failure). `oha` sends a fixed
//! rate through the node and writes every request (start, duration, status) as CSV; `fail_at` into the run
//! the primary is switched to `status 500`, `refuse` or `hang` through its control API.
//!
//! Reported: client-visible errors (non-200 answers), requests the failing primary received (the mock's
//! own count since the mode switch) and the attempts the node sent it (its `/metrics`), p99 in the failure
//! window against steady state, and the time from the switch until the node's `/status` shows the primary
//! ejected (the node routing away).
//!
//! Topology: `--nodes 1` today. With clustering integrated, `--nodes N` starts N nodes (flags `--seeds`,
//! `--cluster`, `--cluster-ca/-cert/-key` from `switchyard certs`, `--gossip`, `--share-ejections on|off`),
//! spreads the load over them and takes "routing away" as the moment the *last* node's `/status` shows the
//! ejection; [`Topology`] is where that goes.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use super::load::{oha_args, Load};
use super::targets::{seed_policy, start_mock, BenchNode};
use super::{request_body, Args, MODEL};
use crate::harness::{fallback_config, http_get, MockProvider};

/// The gateway nodes of a scenario (one today; see the module docs for N).
pub struct Topology {
    /// Running nodes.
    pub nodes: Vec<BenchNode>,
}

impl Topology {
    /// Starts `n` nodes on `config`. Only `n == 1` is supported until clustering is integrated.
    pub async fn start(n: usize, share_ejections: bool, config: &str) -> anyhow::Result<Topology> {
        if n != 1 || share_ejections {
            bail!("multi-node topologies need the cluster integration; not measurable yet");
        }
        Ok(Topology {
            nodes: vec![BenchNode::start(config).await?],
        })
    }

    /// Whether every node's `/status` shows `backend` ejected.
    pub async fn all_ejected(&self, backend: &str) -> bool {
        for n in &self.nodes {
            let Ok(r) = http_get(&format!("http://{}/status", n.admin)).await else {
                return false;
            };
            let Ok(v) = r.json() else { return false };
            let ejected = v["backends"].as_array().is_some_and(|bs| {
                bs.iter()
                    .filter(|b| b["backend"].as_str() == Some(backend))
                    .any(|b| b["ejected"].as_bool() == Some(true))
            });
            if !ejected {
                return false;
            }
        }
        true
    }

    /// Attempts the nodes sent to `backend` that did not answer 200 (from `/metrics`).
    pub async fn failed_attempts(&self, backend: &str) -> u64 {
        let mut total = 0.0;
        for n in &self.nodes {
            let Ok(r) = http_get(&format!("http://{}/metrics", n.admin)).await else {
                continue;
            };
            let needle = format!("backend=\"{backend}|");
            for line in r.text().lines() {
                if line.starts_with("switchyard_upstream_requests_total{")
                    && line.contains(&needle)
                    && !line.contains("outcome=\"200\"")
                {
                    total += line
                        .rsplit(' ')
                        .next()
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(0.0);
                }
            }
        }
        total as u64
    }
}

/// The figures of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverResult {
    /// `500`, `refuse` or `hang`.
    pub scenario: String,
    /// Gateway nodes.
    pub nodes: usize,
    /// Whether ejections were shared.
    pub share_ejections: bool,
    /// Requests with a response.
    pub requests: u64,
    /// Client-visible errors: answers other than 200.
    pub client_errors: u64,
    /// Requests the primary received after it started failing (its own count).
    pub primary_received: u64,
    /// Attempts the node(s) sent the primary that did not answer 200 (includes refused connects).
    pub primary_failed_attempts: u64,
    /// p99 (ms) of requests started in steady state, before the failure.
    pub steady_p99_ms: f64,
    /// p99 (ms) of requests started in the failure window.
    pub failure_p99_ms: f64,
    /// Max latency (ms) in the failure window.
    pub failure_max_ms: f64,
    /// Milliseconds from the failure until every node's `/status` showed the primary ejected.
    pub route_away_ms: Option<f64>,
    /// Request rate.
    pub rate: u32,
    /// `perRetry.timeout` used (ms).
    pub per_try_timeout_ms: u64,
}

impl FailoverResult {
    /// One-line report.
    pub fn line(&self) -> String {
        format!(
            "failover {:<6} nodes {} errors {}/{}  primary received {} (failed attempts {})  p99 steady {:.2} ms, failure window {:.2} ms (max {:.1} ms)  routed away after {}",
            self.scenario,
            self.nodes,
            self.client_errors,
            self.requests,
            self.primary_received,
            self.primary_failed_attempts,
            self.steady_p99_ms,
            self.failure_p99_ms,
            self.failure_max_ms,
            self.route_away_ms
                .map_or("never (within the run)".to_string(), |ms| format!("{ms:.0} ms")),
        )
    }
}

fn mode_json(scenario: &str) -> anyhow::Result<Value> {
    Ok(match scenario {
        "500" => json!({"mode": "status", "status": 500}),
        "refuse" => json!({"mode": "refuse"}),
        "hang" => json!({"mode": "hang"}),
        other => bail!("unknown failover scenario {other:?} (500, refuse, hang)"),
    })
}

async fn served_since_mode(mock: &MockProvider) -> u64 {
    match http_get(&format!("{}/mode", mock.control_url())).await {
        Ok(r) => r
            .json()
            .ok()
            .and_then(|v| v["served"].as_u64())
            .unwrap_or(0),
        Err(_) => 0,
    }
}

/// p-th percentile (0..=100) of `v` (sorted in place); NaN when empty.
pub fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let idx = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
    v[idx.min(v.len() - 1)]
}

/// Runs one scenario.
pub async fn run(oha: &PathBuf, args: &Args, scenario: &str) -> anyhow::Result<FailoverResult> {
    let mode = mode_json(scenario)?;
    let primary = start_mock("primary", "ok").await?;
    let fallback = start_mock("fallback", "ok").await?;
    let policy = seed_policy(Some(args.per_try_timeout));
    let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, &policy);
    let topo = Topology::start(args.nodes, args.share_ejections == "on", &config).await?;
    let node = &topo.nodes[0];

    let (steady, window) = if args.quick {
        (Duration::from_secs(2), Duration::from_secs(2))
    } else {
        (Duration::from_secs(5), Duration::from_secs(3))
    };
    // A hanging primary holds each request it got for the per-try timeout: the window must cover it.
    let window = if scenario == "hang" {
        window + args.per_try_timeout
    } else {
        window
    };
    let total = steady + window + Duration::from_secs(1);
    let csv = tempfile::NamedTempFile::new().context("temp file")?;
    let load = Load {
        rate: Some(args.failover_rate),
        connections: 256,
        duration: total,
    };
    let mut oha_cmd = tokio::process::Command::new(oha);
    oha_cmd
        .args(["--output-format", "csv", "-o"])
        .arg(csv.path())
        .args(oha_args(
            &format!("http://{}/v1/chat/completions", node.listen),
            &load,
            &request_body(),
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let started = Instant::now();
    let child = oha_cmd.spawn().context("spawning oha")?;
    tokio::time::sleep(steady).await;
    let fail_at = started.elapsed();
    let fail_instant = Instant::now();
    primary
        .set_mode(mode)
        .await
        .context("switching the primary")?;

    // Watch the node(s) until the primary shows as ejected.
    let mut route_away_ms = None;
    while started.elapsed() < total {
        if route_away_ms.is_none() && topo.all_ejected("default/primary").await {
            route_away_ms = Some(fail_instant.elapsed().as_secs_f64() * 1000.0);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let out = child.wait_with_output().await.context("waiting for oha")?;
    if !out.status.success() {
        bail!("oha failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let primary_received = served_since_mode(&primary).await;
    let primary_failed_attempts = topo.failed_attempts("default/primary").await;

    let text = std::fs::read_to_string(csv.path()).context("reading oha CSV")?;
    let (mut steady_lat, mut fail_lat) = (Vec::new(), Vec::new());
    let (mut requests, mut errors) = (0u64, 0u64);
    let fail_s = fail_at.as_secs_f64();
    let window_end = fail_s + window.as_secs_f64();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 7 {
            continue;
        }
        let (Ok(start), Ok(dur), Ok(status)) = (
            f[0].parse::<f64>(),
            f[4].parse::<f64>(),
            f[6].parse::<u16>(),
        ) else {
            continue;
        };
        requests += 1;
        if status != 200 {
            errors += 1;
        }
        if (1.0..fail_s).contains(&start) {
            steady_lat.push(dur * 1000.0);
        } else if (fail_s..window_end).contains(&start) {
            fail_lat.push(dur * 1000.0);
        }
    }
    let failure_max_ms = fail_lat.iter().copied().fold(0.0, f64::max);
    Ok(FailoverResult {
        scenario: scenario.into(),
        nodes: args.nodes,
        share_ejections: args.share_ejections == "on",
        requests,
        client_errors: errors,
        primary_received,
        primary_failed_attempts,
        steady_p99_ms: percentile(&mut steady_lat, 99.0),
        failure_p99_ms: percentile(&mut fail_lat, 99.0),
        failure_max_ms,
        route_away_ms,
        rate: args.failover_rate,
        per_try_timeout_ms: args.per_try_timeout.as_millis() as u64,
    })
}
