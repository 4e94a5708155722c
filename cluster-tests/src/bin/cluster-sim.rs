//! `cluster-sim`: prints the cluster simulator's convergence figures (README "Cluster simulator figures").
//! Run with `cargo run --release -p switchyard-cluster-tests --bin cluster-sim [-- N...]`.

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
    println!("latency 1-5 ms, loss 1 %, gossip round 200 ms, probe 1 s; one seed (node-0)");
    println!(
        "{:>6} | {:>18} | {:>16} | {:>7} | {:>8} | {:>12}",
        "nodes", "membership (join)", "ejection to all", "rounds", "log2(N)", "messages"
    );
    for n in sizes {
        // Joining 1000 nodes through one seed is too slow to simulate here (minutes of CPU): above 100
        // nodes the membership is bootstrapped and only the ejection is measured.
        let f = measure(n, 1, n <= 100);
        let fmt = |d: Option<std::time::Duration>| {
            d.map_or("-".to_string(), |d| format!("{:.2} s", d.as_secs_f64()))
        };
        println!(
            "{:>6} | {:>18} | {:>16} | {:>7} | {:>8.1} | {:>12}",
            n,
            fmt(f.membership),
            fmt(f.ejection_time),
            f.ejection_rounds.map_or("-".into(), |r| r.to_string()),
            (n as f64).log2(),
            f.ejection_messages
        );
    }
}
