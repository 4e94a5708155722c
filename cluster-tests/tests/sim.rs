//! Simulator assertions (issue 4: "propagation to all of 1000 nodes in O(log N) rounds"; DESIGN §6
//! "Partitions": after healing, anti-entropy converges and expired ejections do not come back).

use std::time::Duration;

use switchyard_cluster_tests::sim::{measure, Sim, SimConfig};
use switchyard_protocol::ObservationClass;

/// The stated constant: an ejection reaches all N nodes within `C · log2(N)` gossip rounds.
const C: f64 = 1.5;

#[test]
fn ejection_reaches_all_1000_nodes_in_log_n_rounds() {
    let f = measure(1000, 7, false);
    let rounds = f.ejection_rounds.expect("reached every node within 60 s");
    let bound = (C * 1000f64.log2()).ceil() as u32;
    assert!(
        rounds <= bound,
        "{rounds} rounds > {C}·log2(1000) = {bound}"
    );
}

#[test]
fn small_cluster_joins_and_pushes_to_all_within_one_round() {
    let f = measure(10, 3, true);
    assert!(f.membership.expect("joined") < Duration::from_secs(15));
    assert!(f.ejection_rounds.expect("reached") <= 1);
}

#[test]
fn healed_partition_converges() {
    let mut cfg = SimConfig::lan(10);
    cfg.seed = 11;
    let mut sim = Sim::new(cfg);
    sim.converge_membership(Duration::from_secs(60))
        .expect("joined");
    sim.partition(|i| u32::from(i >= 5));
    sim.run_for(Duration::from_secs(12));
    sim.eject(
        0,
        "left-side",
        ObservationClass::Provider,
        Duration::from_secs(120),
    );
    sim.eject(
        9,
        "right-side",
        ObservationClass::Provider,
        Duration::from_secs(120),
    );
    sim.eject(
        9,
        "short",
        ObservationClass::Provider,
        Duration::from_secs(3),
    );
    sim.run_for(Duration::from_secs(2));
    assert!(sim.adopted(4, "left-side") && !sim.adopted(4, "right-side"));
    assert!(sim.adopted(5, "right-side") && !sim.adopted(5, "left-side"));
    sim.run_for(Duration::from_secs(3));
    sim.heal();
    let merged = sim
        .converge_membership(Duration::from_secs(60))
        .expect("membership merges after healing");
    sim.run_for(Duration::from_secs(3));
    for i in 0..sim.len() {
        assert!(
            sim.adopted(i, "left-side") && sim.adopted(i, "right-side"),
            "node {i}"
        );
        assert!(
            !sim.adopted(i, "short"),
            "expired ejection came back on node {i}"
        );
    }
    assert!(merged < Duration::from_secs(40), "merge took {merged:?}");
    assert_eq!(sim.codec_errors, 0);
}
