//! Running `oha` (installed with `cargo install oha --locked` when missing) against one target and
//! reading its JSON summary, with the target's CPU time read around the run.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::Value;

use super::targets::Target;

/// One load shape.
#[derive(Debug, Clone)]
pub struct Load {
    /// Open loop at this rate (req/s, with latency correction), or closed loop when `None`.
    pub rate: Option<u32>,
    /// Connections.
    pub connections: usize,
    /// Duration.
    pub duration: Duration,
}

/// The result of one oha run against one target.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Target name.
    pub target: String,
    /// `rate N` or `max`.
    pub kind: String,
    /// Round number (1-based).
    pub round: usize,
    /// Requested rate, if open loop.
    pub rate: Option<u32>,
    /// Requests with a response (any status).
    pub requests: u64,
    /// Requests answered 200.
    pub ok: u64,
    /// Requests that failed at the connection level (oha's error distribution).
    pub errors: u64,
    /// Throughput over the run.
    pub rps: f64,
    /// Latency percentiles in milliseconds.
    pub p50_ms: f64,
    /// p99.
    pub p99_ms: f64,
    /// p99.9.
    pub p999_ms: f64,
    /// CPU seconds of the target's own processes during the run.
    pub cpu_s: f64,
    /// CPU seconds of the mock during the run.
    pub mock_cpu_s: f64,
    /// Whether an open-loop run reached at least 95 % of its rate.
    pub sustained: bool,
}

impl Run {
    /// Microseconds of target CPU per request.
    pub fn cpu_us_per_request(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.cpu_s * 1e6 / self.requests as f64
    }

    /// A one-line progress report.
    pub fn line(&self) -> String {
        format!(
            "round {} {:<10} {:<11} {:>8.0} req/s  p50 {:>7.3} ms  p99 {:>7.3} ms  p99.9 {:>7.3} ms  cpu {:>6.1} µs/req  ok {}/{}{}{}",
            self.round,
            self.kind,
            self.target,
            self.rps,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms,
            self.cpu_us_per_request(),
            self.ok,
            self.requests,
            if self.errors > 0 { format!("  conn errors {}", self.errors) } else { String::new() },
            if self.sustained { "" } else { "  NOT SUSTAINED" },
        )
    }
}

/// The `oha` binary, installing it with `cargo install oha --locked` when missing.
pub fn ensure_oha() -> anyhow::Result<PathBuf> {
    if let Some(p) = find_oha() {
        return Ok(p);
    }
    eprintln!("oha not found: running `cargo install oha --locked` (a few minutes)");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let ok = Command::new(cargo)
        .args(["install", "oha", "--locked"])
        .status()
        .is_ok_and(|s| s.success());
    match find_oha() {
        Some(p) => Ok(p),
        None => {
            bail!(
            "the load generator oha is required and could not be installed (cargo install {}): \
             run `cargo install oha --locked`",
            if ok { "succeeded but no oha binary" } else { "failed" }
        )
        }
    }
}

fn find_oha() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("CARGO_HOME") {
        dirs.push(PathBuf::from(home).join("bin"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".cargo/bin"));
    }
    dirs.into_iter()
        .map(|d| d.join("oha"))
        .find(|p| p.is_file())
}

/// The common oha arguments for a POST of `body` to `url`.
pub fn oha_args(url: &str, load: &Load, body: &str) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "--no-tui".into(),
        "-m".into(),
        "POST".into(),
        "-T".into(),
        "application/json".into(),
        "-d".into(),
        body.into(),
        "-c".into(),
        load.connections.to_string(),
        "-z".into(),
        format!("{}ms", load.duration.as_millis()),
    ];
    if let Some(rate) = load.rate {
        a.extend(["-q".into(), rate.to_string(), "--latency-correction".into()]);
    }
    a.push(url.into());
    a
}

/// Runs oha once against `target` and reads the JSON summary and the CPU time around it.
pub async fn run_oha(
    oha: &PathBuf,
    target: &Target,
    load: &Load,
    body: &str,
    kind: &str,
    round: usize,
) -> anyhow::Result<Run> {
    let mut args = oha_args(&target.url, load, body);
    args.splice(0..0, ["--output-format".to_string(), "json".to_string()]);
    let cpu0 = target.cpu_seconds();
    let mock0 = target.mock_cpu_seconds();
    let out = tokio::process::Command::new(oha)
        .args(&args)
        .output()
        .await
        .context("running oha")?;
    let cpu_s = target.cpu_seconds() - cpu0;
    let mock_cpu_s = target.mock_cpu_seconds() - mock0;
    if !out.status.success() {
        bail!(
            "oha failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "oha output is not JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let sum_map = |key: &str| -> u64 {
        v[key]
            .as_object()
            .map(|m| m.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    };
    let requests = sum_map("statusCodeDistribution");
    let ok = v["statusCodeDistribution"]["200"].as_u64().unwrap_or(0);
    let errors = sum_map("errorDistribution");
    let pct = |k: &str| v["latencyPercentiles"][k].as_f64().unwrap_or(f64::NAN) * 1000.0;
    let rps = requests as f64 / load.duration.as_secs_f64();
    let sustained = load.rate.is_none_or(|r| rps >= 0.95 * f64::from(r));
    Ok(Run {
        target: target.name.clone(),
        kind: kind.into(),
        round,
        rate: load.rate,
        requests,
        ok,
        errors,
        rps,
        p50_ms: pct("p50"),
        p99_ms: pct("p99"),
        p999_ms: pct("p99.9"),
        cpu_s,
        mock_cpu_s,
        sustained,
    })
}
