//! `cluster-sim`: prints the cluster simulator's convergence figures (README "Cluster simulator figures").
//! Run with `cargo run --release -p switchyard-cluster-tests --bin cluster-sim [-- N...]`.
//!
//! Each size runs with seeds 1..=5 (loss and latency draws differ per seed) and prints the median of each
//! figure and the worst join and ejection times, so one unlucky lost push does not stand for the whole
//! protocol; every run's own figures go to stderr.

use std::time::Duration;

use switchyard_cluster_tests::sim::measure;

fn main() {
    let sizes: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() {
        vec![3, 10, 100, 1000]
    } else {
        sizes
    };
    println!(
        "latency 1-5 ms, loss 1 %, gossip round 200 ms, probe 1 s; one seed (node-0); median of {} runs",
        SEEDS.len()
    );
    println!(
        "{:>6} | {:>18} | {:>11} | {:>16} | {:>16} | {:>7} | {:>8} | {:>12}",
        "nodes",
        "membership (join)",
        "worst join",
        "ejection to all",
        "worst ejection",
        "rounds",
        "log2(N)",
        "messages"
    );
    for n in sizes {
        // Every size joins through node 0 (push-pull sync makes that seconds, not minutes, even at 1000),
        // then one ejection is measured on the joined cluster.
        let runs: Vec<_> = SEEDS
            .iter()
            .map(|&seed| {
                let f = measure(n, seed, true);
                eprintln!(
                    "  {n} nodes, seed {seed}: join {:?}, ejection {:?}, {} messages",
                    f.membership, f.ejection_time, f.ejection_messages
                );
                f
            })
            .collect();
        let fmt = |d: Option<Duration>| match d {
            None => "-".to_string(),
            Some(d) if d < Duration::from_secs(1) => format!("{:.1} ms", d.as_secs_f64() * 1e3),
            Some(d) => format!("{:.2} s", d.as_secs_f64()),
        };
        let membership = median(runs.iter().filter_map(|f| f.membership).collect());
        // A run that never joined counts as the worst (shown as "-").
        let worst_join = if runs.iter().all(|f| f.membership.is_some()) {
            runs.iter().filter_map(|f| f.membership).max()
        } else {
            None
        };
        let ejection = median(runs.iter().filter_map(|f| f.ejection_time).collect());
        let worst = if runs.iter().all(|f| f.ejection_time.is_some()) {
            runs.iter().filter_map(|f| f.ejection_time).max()
        } else {
            None
        };
        let rounds = median(runs.iter().filter_map(|f| f.ejection_rounds).collect());
        let messages = median(runs.iter().map(|f| f.ejection_messages).collect());
        println!(
            "{:>6} | {:>18} | {:>11} | {:>16} | {:>16} | {:>7} | {:>8.1} | {:>12}",
            n,
            fmt(membership),
            fmt(worst_join),
            fmt(ejection),
            fmt(worst),
            rounds.map_or("-".into(), |r| r.to_string()),
            (n as f64).log2(),
            messages.map_or("-".into(), |m| m.to_string())
        );
    }
}

const SEEDS: [u64; 5] = [1, 2, 3, 4, 5];

fn median<T: Ord + Copy>(mut v: Vec<T>) -> Option<T> {
    v.sort();
    v.get(v.len() / 2).copied()
}
