//! `bench` (`just bench`): Switchyard against its baselines on loopback, in one run (DESIGN.md §9).
//!
//! Three targets get the same small chat completion from the same `mock-provider` (started with
//! `--no-log`, so the mock keeps no request log): the mock itself (the physical limit), nginx as a plain
//! reverse proxy with one worker (the floor of proxy overhead) and one Switchyard node (release build, one
//! route, one OpenAI backend = the mock, the seed page's retry + passive-health policy). The load generator
//! is `oha`. Every figure is taken with the targets interleaved (direct, nginx, switchyard per rate, per
//! round) and reported as the median over rounds, and as a ratio to the baselines of the same run — the
//! machine is shared and noisy, absolute numbers alone mean little.
//!
//! Measured per target: latency at fixed rates (open loop, `oha -q R --latency-correction`: p50/p99/p99.9),
//! maximum throughput (closed loop, fixed connections), CPU time per request of the proxy process(es)
//! (utime+stime from `/proc/PID/stat` before/after, divided by the requests oha counted) and peak RSS
//! (`VmHWM`). Then the failover scenarios (module `failover`): the primary starts failing mid-run.
//!
//! Results: a table on stdout, `results.json` and `results.md` under `--out` (default `target/bench`).

use clap::Parser;
use switchyard_cluster_tests::bench;

fn main() -> anyhow::Result<()> {
    let args = bench::Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(bench::run(args))
}
