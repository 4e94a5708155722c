//! Failover figures: one route, primary (priority 0) and fallback (priority 1) mocks, the seed page's policy
//! (retry on 500 and connect failures, eject after one 5xx / one local-origin failure). `oha` sends a fixed
//! rate through the gateway — one `oha` per node, each with its share of the rate, as an L4 load balancer
//! would spread it — and writes every request (start, duration, status) as CSV; `fail_at` into the run the
//! primary is switched to `status 500`, `refuse` or `hang` through its control API.
//!
//! Topologies ([`TopologySpec`]): one node, or N nodes joined as a cluster (fresh CA and certificates
//! from `switchyard certs`, every node a seed, `--share-ejections on|off`).
//!
//! Reported: client-visible errors (non-200 answers), requests the failing primary received (the mock's
//! own count since the mode switch) and the attempts each node sent it (its `/metrics`), p99 in the failure
//! window against steady state, and the time from the switch until the first and the *last* node's
//! `/status` shows the primary ejected (locally, or by the cluster view): the whole gateway routing away.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};

use super::load::{oha_args, Load};
use super::targets::{seed_policy, start_mock, BenchNode};
use super::{request_body, Args, MODEL};
use crate::harness::{annotate_policy, fallback_config, http_get, MockProvider, TestCluster};

/// How many nodes, and whether they share ejections: `1`, `3:on`, `3:off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopologySpec {
    /// Gateway nodes.
    pub nodes: usize,
    /// `--share-ejections` (only meaningful with more than one node).
    pub share: bool,
}

impl FromStr for TopologySpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (n, share) = match s.split_once(':') {
            None => (s, None),
            Some((n, mode)) => (n, Some(mode)),
        };
        let nodes: usize = n
            .parse()
            .map_err(|_| format!("bad topology {s:?}: want N or N:on / N:off"))?;
        if !(1..=20).contains(&nodes) {
            return Err(format!("bad topology {s:?}: 1 to 20 nodes"));
        }
        let share = match share {
            None => nodes > 1,
            Some("on") => true,
            Some("off") => false,
            Some(other) => return Err(format!("bad topology {s:?}: {other:?} is not on/off")),
        };
        if nodes == 1 && share {
            return Err(format!(
                "bad topology {s:?}: sharing needs more than one node"
            ));
        }
        Ok(TopologySpec { nodes, share })
    }
}

impl std::fmt::Display for TopologySpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.nodes == 1 {
            write!(f, "1 node")
        } else {
            write!(
                f,
                "{} nodes, sharing {}",
                self.nodes,
                if self.share { "on" } else { "off" }
            )
        }
    }
}

/// The gateway nodes of a scenario.
pub enum Topology {
    /// One standalone node.
    Single(BenchNode),
    /// A cluster on 127.0.0.1..N.
    Cluster(TestCluster),
}

/// One node's addresses.
#[derive(Debug, Clone)]
pub struct NodeAddrs {
    /// Node id.
    pub id: String,
    /// Client listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin: SocketAddr,
}

impl Topology {
    /// Starts the nodes of `spec` on `config` (a cluster is joined before this returns).
    pub async fn start(spec: TopologySpec, config: &str) -> anyhow::Result<Topology> {
        if spec.nodes == 1 {
            return Ok(Topology::Single(BenchNode::start(config, &[]).await?));
        }
        let share = if spec.share { "on" } else { "off" };
        let cluster = TestCluster::start_seeded(
            spec.nodes,
            spec.nodes,
            config,
            &["--share-ejections", share, "--drain-delay", "0s"],
            |_, node| {
                // The harness logs every request at debug; a benchmark measures the gateway, not its logger.
                node.env.push(("SWITCHYARD_LOG".into(), "warn".into()));
            },
        )
        .await
        .context("starting the cluster")?;
        Ok(Topology::Cluster(cluster))
    }

    /// Every node's addresses.
    pub fn nodes(&self) -> Vec<NodeAddrs> {
        match self {
            Topology::Single(n) => vec![NodeAddrs {
                id: "bench-1".into(),
                listen: n.listen,
                admin: n.admin,
            }],
            Topology::Cluster(c) => c
                .running()
                .into_iter()
                .map(|i| NodeAddrs {
                    id: c.specs[i].id.clone(),
                    listen: c.node(i).listen,
                    admin: c.node(i).admin,
                })
                .collect(),
        }
    }
}

/// Whether `node`'s `/status` shows `backend` routed away from: ejected locally or by the cluster view.
async fn routes_away(node: &NodeAddrs, backend: &str) -> bool {
    let Ok(r) = http_get(&format!("http://{}/status", node.admin)).await else {
        return false;
    };
    let Ok(v) = r.json() else { return false };
    v["backends"].as_array().is_some_and(|bs| {
        bs.iter()
            .filter(|b| b["backend"].as_str() == Some(backend))
            .any(|b| {
                b["ejected"].as_bool() == Some(true) || b["cluster_ejected"].as_bool() == Some(true)
            })
    })
}

/// Attempts `node` sent to `backend` that did not answer 200 (from `/metrics`).
async fn failed_attempts(node: &NodeAddrs, backend: &str) -> u64 {
    let Ok(r) = http_get(&format!("http://{}/metrics", node.admin)).await else {
        return 0;
    };
    let needle = format!("backend=\"{backend}|");
    let mut total = 0.0;
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
    total as u64
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
    /// The same per node, in node order.
    pub failed_attempts_by_node: Vec<u64>,
    /// p99 (ms) of requests started in steady state, before the failure.
    pub steady_p99_ms: f64,
    /// p99 (ms) of requests started in the failure window.
    pub failure_p99_ms: f64,
    /// Max latency (ms) in the failure window.
    pub failure_max_ms: f64,
    /// Milliseconds from the failure until every node's `/status` showed the primary ejected.
    pub route_away_ms: Option<f64>,
    /// Milliseconds from the failure until the first node's `/status` showed it.
    pub first_route_away_ms: Option<f64>,
    /// Request rate.
    pub rate: u32,
    /// `perRetry.timeout` used (ms).
    pub per_try_timeout_ms: u64,
}

impl FailoverResult {
    /// One-line report.
    pub fn line(&self) -> String {
        format!(
            "failover {:<6} nodes {} sharing {} errors {}/{}  primary received {} (failed attempts {} = {:?})  p99 steady {:.2} ms, failure window {:.2} ms (max {:.1} ms)  routed away after {}",
            self.scenario,
            self.nodes,
            if self.share_ejections { "on" } else { "off" },
            self.client_errors,
            self.requests,
            self.primary_received,
            self.primary_failed_attempts,
            self.failed_attempts_by_node,
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

/// Runs one scenario on one topology.
pub async fn run(
    oha: &PathBuf,
    args: &Args,
    spec: TopologySpec,
    scenario: &str,
) -> anyhow::Result<FailoverResult> {
    let mode = mode_json(scenario)?;
    let primary = start_mock("primary", "ok").await?;
    let fallback = start_mock("fallback", "ok").await?;
    let policy = seed_policy(Some(args.per_try_timeout));
    let config = fallback_config(MODEL, primary.data_addr, fallback.data_addr, &policy);
    let config = match args.first_token_timeout {
        Some(t) => annotate_policy(
            &config,
            &format!("switchyard.io/first-token-timeout: {}ms", t.as_millis()),
        ),
        None => config,
    };
    let topo = Topology::start(spec, &config).await?;
    let nodes = topo.nodes();

    let (steady, window) = if args.quick {
        (Duration::from_secs(2), Duration::from_secs(2))
    } else {
        (Duration::from_secs(5), Duration::from_secs(3))
    };
    // A hanging primary holds each request it got for the per-try (or first-token) timeout: the window
    // must cover it.
    let window = if scenario == "hang" {
        window + args.first_token_timeout.unwrap_or(args.per_try_timeout)
    } else {
        window
    };
    let total = steady + window + Duration::from_secs(1);
    // One load generator per node, each with its share of the rate and of the connections.
    let share_rate = (args.failover_rate / nodes.len() as u32).max(1);
    let share_conns = (256 / nodes.len()).max(8);
    let mut csvs = Vec::new();
    let mut children = Vec::new();
    let started = Instant::now();
    for n in &nodes {
        let csv = tempfile::NamedTempFile::new().context("temp file")?;
        let load = Load {
            rate: Some(share_rate),
            connections: share_conns,
            duration: total,
        };
        let mut cmd = tokio::process::Command::new(oha);
        cmd.args(["--output-format", "csv", "-o"])
            .arg(csv.path())
            .args(oha_args(
                &format!("http://{}/v1/chat/completions", n.listen),
                &load,
                &request_body(),
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        children.push(cmd.spawn().context("spawning oha")?);
        csvs.push(csv);
    }
    tokio::time::sleep(steady).await;
    let fail_at = started.elapsed();
    let fail_instant = Instant::now();
    primary
        .set_mode(mode)
        .await
        .context("switching the primary")?;

    // Watch every node until each shows the primary ejected (its own detector or the cluster view).
    let mut routed: Vec<Option<f64>> = vec![None; nodes.len()];
    while started.elapsed() < total {
        for (i, n) in nodes.iter().enumerate() {
            if routed[i].is_none() && routes_away(n, "default/primary").await {
                routed[i] = Some(fail_instant.elapsed().as_secs_f64() * 1000.0);
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for child in children {
        let out = child.wait_with_output().await.context("waiting for oha")?;
        if !out.status.success() {
            bail!("oha failed: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    let primary_received = served_since_mode(&primary).await;
    let mut failed_attempts_by_node = Vec::new();
    for n in &nodes {
        failed_attempts_by_node.push(failed_attempts(n, "default/primary").await);
    }

    let (mut steady_lat, mut fail_lat) = (Vec::new(), Vec::new());
    let (mut requests, mut errors) = (0u64, 0u64);
    let fail_s = fail_at.as_secs_f64();
    let window_end = fail_s + window.as_secs_f64();
    for csv in &csvs {
        let text = std::fs::read_to_string(csv.path()).context("reading oha CSV")?;
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
    }
    let failure_max_ms = fail_lat.iter().copied().fold(0.0, f64::max);
    let all_routed = routed.iter().all(Option::is_some);
    Ok(FailoverResult {
        scenario: scenario.into(),
        nodes: nodes.len(),
        share_ejections: spec.share,
        requests,
        client_errors: errors,
        primary_received,
        primary_failed_attempts: failed_attempts_by_node.iter().sum(),
        failed_attempts_by_node,
        steady_p99_ms: percentile(&mut steady_lat, 99.0),
        failure_p99_ms: percentile(&mut fail_lat, 99.0),
        failure_max_ms,
        route_away_ms: all_routed.then(|| routed.iter().flatten().copied().fold(0.0, f64::max)),
        first_route_away_ms: routed.iter().flatten().copied().reduce(f64::min),
        rate: args.failover_rate,
        per_try_timeout_ms: args.per_try_timeout.as_millis() as u64,
    })
}
