//! The `bench` binary's logic (`just bench`); see `docs/BENCHMARKS.md` for the method and the figures.
//!
//! - [`targets`]: starting the mock, nginx and Switchyard, and per-process CPU/RSS accounting;
//! - [`load`]: running `oha` and reading its results;
//! - [`failover`]: the primary-fails-mid-run scenarios;
//! - [`report`]: medians, ratios, the table and the result files.

pub mod failover;
pub mod load;
pub mod report;
pub mod targets;
pub mod ttft;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use self::load::{Load, Run};
use self::targets::{Target, Targets};

/// Command-line flags of `bench`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "bench",
    about = "Switchyard vs direct vs nginx on loopback, and failover"
)]
pub struct Args {
    /// Rounds per measurement; figures are medians over rounds.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Duration of one load run (oha `-z`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Open-loop request rates (req/s).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000,10000")]
    pub rates: Vec<u32>,
    /// Connections for the open-loop runs.
    #[arg(long, default_value_t = 64)]
    pub rate_connections: usize,
    /// Connections for the closed-loop (maximum throughput) runs.
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Quick run: 1 round, 3 s runs, rates 1000 and 5000, short failover runs.
    #[arg(long)]
    pub quick: bool,
    /// Skip the load figures (latency, throughput, CPU, RSS).
    #[arg(long)]
    pub no_load: bool,
    /// Skip the failover figures.
    #[arg(long)]
    pub no_failover: bool,
    /// Skip nginx (when it cannot be installed).
    #[arg(long)]
    pub no_nginx: bool,
    /// Failover topologies: `1` (one node), `N:on` / `N:off` (N clustered nodes sharing ejections or not).
    #[arg(long, value_delimiter = ',', default_value = "1,3:on,3:off")]
    pub topologies: Vec<failover::TopologySpec>,
    /// Request rate of the failover runs (req/s).
    #[arg(long, default_value_t = 200)]
    pub failover_rate: u32,
    /// `perRetry.timeout` of the policy; the seed page's value is 30s (it bounds the `hang` scenario).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub per_try_timeout: Duration,
    /// `switchyard.io/first-token-timeout` on the policy (the extension that fails a hung primary over);
    /// unset, the seed page's policy is used as it is.
    #[arg(long, value_parser = parse_duration)]
    pub first_token_timeout: Option<Duration>,
    /// First-token latency: this many sequential streamed requests, direct and through Switchyard, with
    /// the mock's chunks 0 and 20 ms apart (0: skipped). Needs no `oha`.
    #[arg(long, default_value_t = 0)]
    pub ttft: usize,
    /// Failover scenarios to run.
    #[arg(long, value_delimiter = ',', default_value = "500,refuse,hang")]
    pub scenarios: Vec<String>,
    /// The `switchyard` binary to measure (default: the workspace's, built in the same profile).
    #[arg(long)]
    pub switchyard: Option<PathBuf>,
    /// Directory for results.json / results.md.
    #[arg(long, default_value = "target/bench")]
    pub out: PathBuf,
}

/// Parses `10s`, `500ms`, `2m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: f64 = num.parse().map_err(|_| format!("bad duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("bad duration unit in {s:?} (ms, s, m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

impl Args {
    fn effective(mut self) -> Args {
        if self.quick {
            self.rounds = 1;
            self.duration = Duration::from_secs(3);
            self.rates = vec![1000, 5000];
        }
        self
    }
}

/// The JSON body every target gets: a small chat completion.
pub const MODEL: &str = "bench-model";

/// The request body.
pub fn request_body() -> String {
    serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
        "max_tokens": 16,
    })
    .to_string()
}

/// Runs everything the flags ask for and writes the results.
pub async fn run(args: Args) -> anyhow::Result<()> {
    let args = args.effective();
    if let Some(p) = &args.switchyard {
        targets::set_switchyard_binary(p.clone());
    }
    if args.ttft > 0 {
        for delay in [0, 20] {
            for r in ttft::run(args.ttft, delay).await? {
                println!("{}", r.line());
            }
        }
        if args.no_load && args.no_failover {
            return Ok(());
        }
    }
    let oha = load::ensure_oha()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let machine = report::Machine::probe();
    println!("machine: {machine}");

    let mut runs: Vec<Run> = Vec::new();
    if !args.no_load {
        let targets = Targets::start(!args.no_nginx).await?;
        println!("targets: {}", targets.describe());
        let body = request_body();
        // Warm-up: connections, pools, caches.
        for t in targets.all() {
            let warm = Load {
                rate: None,
                connections: args.connections,
                duration: Duration::from_secs(1),
            };
            load::run_oha(&oha, t, &warm, &body, "warmup", 0).await?;
        }
        for round in 1..=args.rounds {
            for &rate in &args.rates {
                for t in targets.all() {
                    let l = Load {
                        rate: Some(rate),
                        connections: args.rate_connections,
                        duration: args.duration,
                    };
                    let r =
                        load::run_oha(&oha, t, &l, &body, &format!("rate {rate}"), round).await?;
                    println!("{}", r.line());
                    runs.push(r);
                }
            }
            for t in targets.all() {
                let l = Load {
                    rate: None,
                    connections: args.connections,
                    duration: args.duration,
                };
                let r = load::run_oha(&oha, t, &l, &body, "max", round).await?;
                println!("{}", r.line());
                runs.push(r);
            }
        }
        let rss: Vec<(String, u64)> = targets
            .all()
            .iter()
            .map(|t: &&Target| (t.name.clone(), t.peak_rss_kib()))
            .collect();
        let summary = report::summarize(&runs, &rss);
        report::write(&args, &machine, &summary, &runs, None)?;
        println!("\n{}", report::markdown_load(&summary));
    }

    if !args.no_failover {
        let mut results = Vec::new();
        for scenario in &args.scenarios {
            for &spec in &args.topologies {
                let r = failover::run(&oha, &args, spec, scenario)
                    .await
                    .with_context(|| format!("failover scenario {scenario}, {spec}"))?;
                println!("{}", r.line());
                results.push(r);
            }
        }
        report::write_failover(&args, &results)?;
        println!("\n{}", report::markdown_failover(&results, &args));
    }
    println!("results in {}", args.out.display());
    Ok(())
}
