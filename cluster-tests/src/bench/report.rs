//! Medians over rounds, ratios to the same-run baselines, the markdown tables and the result files.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::Context;
use serde::Serialize;

use super::failover::FailoverResult;
use super::load::Run;
use super::Args;

/// The machine the figures were taken on.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model from /proc/cpuinfo.
    pub cpu: String,
    /// Online CPUs.
    pub cores: usize,
    /// Kernel release.
    pub kernel: String,
}

impl Machine {
    /// Reads /proc.
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_string())
            .unwrap_or_else(|| "unknown".into());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into());
        Machine { cpu, cores, kernel }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cores, {}, Linux {}",
            self.cores, self.cpu, self.kernel
        )
    }
}

/// Medians of one (kind, target) over rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// `rate N` or `max`.
    pub kind: String,
    /// Target.
    pub target: String,
    /// Median throughput.
    pub rps: f64,
    /// Median p50 (ms).
    pub p50_ms: f64,
    /// Median p99 (ms).
    pub p99_ms: f64,
    /// Median p99.9 (ms).
    pub p999_ms: f64,
    /// Median target CPU per request (µs).
    pub cpu_us: f64,
    /// Median mock CPU per request (µs).
    pub mock_cpu_us: f64,
    /// Every round sustained the rate.
    pub sustained: bool,
    /// Non-200 answers, summed over rounds (oha counts requests cut by the end of `-z` as connection errors, not here).
    pub failures: u64,
}

/// Everything the load part measured.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Cells in run order.
    pub cells: Vec<Cell>,
    /// Peak RSS per target (KiB).
    pub peak_rss_kib: Vec<(String, u64)>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Medians per (kind, target).
pub fn summarize(runs: &[Run], rss: &[(String, u64)]) -> Summary {
    let mut order: Vec<(String, String)> = Vec::new();
    let mut groups: BTreeMap<(String, String), Vec<&Run>> = BTreeMap::new();
    for r in runs {
        let k = (r.kind.clone(), r.target.clone());
        if !groups.contains_key(&k) {
            order.push(k.clone());
        }
        groups.entry(k).or_default().push(r);
    }
    let cells = order
        .into_iter()
        .map(|k| {
            let rs = &groups[&k];
            let m = |f: &dyn Fn(&Run) -> f64| median(rs.iter().map(|r| f(r)).collect());
            Cell {
                kind: k.0.clone(),
                target: k.1.clone(),
                rps: m(&|r| r.rps),
                p50_ms: m(&|r| r.p50_ms),
                p99_ms: m(&|r| r.p99_ms),
                p999_ms: m(&|r| r.p999_ms),
                cpu_us: m(&|r| r.cpu_us_per_request()),
                mock_cpu_us: m(&|r| {
                    if r.requests == 0 {
                        0.0
                    } else {
                        r.mock_cpu_s * 1e6 / r.requests as f64
                    }
                }),
                sustained: rs.iter().all(|r| r.sustained),
                failures: rs.iter().map(|r| r.requests - r.ok.min(r.requests)).sum(),
            }
        })
        .collect();
    Summary {
        cells,
        peak_rss_kib: rss.to_vec(),
    }
}

fn cell<'a>(s: &'a Summary, kind: &str, target: &str) -> Option<&'a Cell> {
    s.cells
        .iter()
        .find(|c| c.kind == kind && c.target == target)
}

fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() && b.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// The load figures as markdown.
pub fn markdown_load(s: &Summary) -> String {
    let mut out = String::new();
    let mut kinds: Vec<String> = Vec::new();
    for c in &s.cells {
        if !kinds.contains(&c.kind) {
            kinds.push(c.kind.clone());
        }
    }
    out.push_str("### Latency and CPU (medians over rounds)\n\n");
    out.push_str("| load | target | req/s | p50 ms | p99 ms | p99.9 ms | added p50 / p99 / p99.9 over direct (ms) | CPU µs/req | CPU vs nginx | mock CPU µs/req | failures |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|\n");
    for kind in &kinds {
        let direct = cell(s, kind, "direct");
        let nginx = cell(s, kind, "nginx");
        for c in s.cells.iter().filter(|c| &c.kind == kind) {
            let added = match direct {
                Some(d) if c.target != "direct" && kind != "max" => format!(
                    "{:+.3} / {:+.3} / {:+.3}",
                    c.p50_ms - d.p50_ms,
                    c.p99_ms - d.p99_ms,
                    c.p999_ms - d.p999_ms
                ),
                _ => "–".into(),
            };
            let (cpu, vs_nginx) = if c.target == "direct" {
                ("–".to_string(), "–".to_string())
            } else {
                (
                    format!("{:.1}", c.cpu_us),
                    nginx.map_or("–".into(), |n| ratio(c.cpu_us, n.cpu_us)),
                )
            };
            out.push_str(&format!(
                "| {}{} | {} | {:.0} | {:.3} | {:.3} | {:.3} | {} | {} | {} | {:.1} | {} |\n",
                kind,
                if c.sustained { "" } else { " (not sustained)" },
                c.target,
                c.rps,
                c.p50_ms,
                c.p99_ms,
                c.p999_ms,
                added,
                cpu,
                vs_nginx,
                c.mock_cpu_us,
                c.failures
            ));
        }
    }
    out.push_str("\n### Switchyard against the baselines (same run)\n\n");
    out.push_str("| load | target | CPU/req vs nginx | added p50 vs nginx's | added p99 vs nginx's | throughput vs direct | nginx throughput vs direct |\n|---|---|---:|---:|---:|---:|---:|\n");
    for kind in &kinds {
        let (Some(d), Some(n)) = (cell(s, kind, "direct"), cell(s, kind, "nginx")) else {
            continue;
        };
        for target in ["switchyard-1t", "switchyard"] {
            let Some(y) = cell(s, kind, target) else {
                continue;
            };
            if kind == "max" {
                out.push_str(&format!(
                    "| max | {target} | {} | – | – | {} | {} |\n",
                    ratio(y.cpu_us, n.cpu_us),
                    ratio(y.rps, d.rps),
                    ratio(n.rps, d.rps)
                ));
            } else {
                out.push_str(&format!(
                    "| {kind} | {target} | {} | {} | {} | – | – |\n",
                    ratio(y.cpu_us, n.cpu_us),
                    ratio(y.p50_ms - d.p50_ms, n.p50_ms - d.p50_ms),
                    ratio(y.p99_ms - d.p99_ms, n.p99_ms - d.p99_ms)
                ));
            }
        }
    }
    out.push_str("\n### Peak RSS (VmHWM, whole run)\n\n| target | KiB |\n|---|---:|\n");
    for (t, k) in &s.peak_rss_kib {
        if t != "direct" {
            out.push_str(&format!("| {t} | {k} |\n"));
        }
    }
    out
}

/// The failover figures as markdown.
pub fn markdown_failover(results: &[FailoverResult], args: &Args) -> String {
    let mut out = format!(
        "### Failover ({} req/s in all, spread over the nodes; perRetry.timeout {} ms{})\n\n",
        args.failover_rate,
        args.per_try_timeout.as_millis(),
        args.first_token_timeout.map_or(String::new(), |t| format!(
            "; first-token timeout {} ms",
            t.as_millis()
        ))
    );
    out.push_str("| primary | nodes | sharing | requests | client errors | primary received | attempts to primary that failed (per node) | p99 steady ms | p99 failure window ms | max in window ms | failure → first node routes away (ms) | failure → last node routes away (ms) |\n|---|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|\n");
    let ms = |v: Option<f64>| v.map_or("not within the run".to_string(), |ms| format!("{ms:.0}"));
    for r in results {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} ({}) | {:.2} | {:.2} | {:.1} | {} | {} |\n",
            r.scenario,
            r.nodes,
            if r.nodes == 1 {
                "–"
            } else if r.share_ejections {
                "on"
            } else {
                "off"
            },
            r.requests,
            r.client_errors,
            r.primary_received,
            r.primary_failed_attempts,
            r.failed_attempts_by_node
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / "),
            r.steady_p99_ms,
            r.failure_p99_ms,
            r.failure_max_ms,
            ms(r.first_route_away_ms),
            ms(r.route_away_ms),
        ));
    }
    out
}

#[derive(Serialize)]
struct LoadFile<'a> {
    machine: &'a Machine,
    rounds: usize,
    duration_ms: u128,
    summary: &'a Summary,
    runs: &'a [Run],
}

/// Writes `results.json` and `results.md` for the load part.
pub fn write(
    args: &Args,
    machine: &Machine,
    summary: &Summary,
    runs: &[Run],
    _failover: Option<&[FailoverResult]>,
) -> anyhow::Result<()> {
    let json = serde_json::to_string_pretty(&LoadFile {
        machine,
        rounds: args.rounds,
        duration_ms: args.duration.as_millis(),
        summary,
        runs,
    })?;
    std::fs::write(args.out.join("results.json"), json).context("writing results.json")?;
    let md = format!(
        "# Switchyard benchmark results\n\nMachine: {machine}. Rounds: {}, {} ms per run.\n\n{}",
        args.rounds,
        args.duration.as_millis(),
        markdown_load(summary)
    );
    std::fs::write(args.out.join("results.md"), md).context("writing results.md")?;
    Ok(())
}

/// Writes `failover.json` and `failover.md`.
pub fn write_failover(args: &Args, results: &[FailoverResult]) -> anyhow::Result<()> {
    std::fs::write(
        args.out.join("failover.json"),
        serde_json::to_string_pretty(results)?,
    )
    .context("writing failover.json")?;
    std::fs::write(
        args.out.join("failover.md"),
        markdown_failover(results, args),
    )
    .context("writing failover.md")?;
    Ok(())
}
