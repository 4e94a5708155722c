//! Table tests for the adoption rule, one per behaviour (DESIGN §6 "Adoption rule", "Time").

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use switchyard_protocol::{NodeState, NodeStateV2, Observation, ObservationClass as C, Verdict};

use crate::health::events::LocalRecord;

use super::*;
use crate::cluster::evidence::EvidenceStore;

const MAX: Duration = Duration::from_secs(300);

fn obs(backend: &str, class: C, remaining_ms: u64, count: u32) -> Observation {
    Observation {
        backend: backend.into(),
        reason: match class {
            C::Provider => "consecutive_5xx".into(),
            C::Network => "consecutive_local_origin_failure".into(),
        },
        class,
        remaining_ms,
        ejection_count: count,
        version: 1,
        age_ms: 0,
    }
}

/// A store on node "me" holding one observation of backend "b" per `(owner, class, remaining_ms, count)`.
fn store(rows: &[(&str, C, u64, u32)], now: Instant) -> EvidenceStore {
    let mut s = EvidenceStore::new("me".into(), 1, MAX, now);
    for (owner, class, remaining, count) in rows {
        if *owner == "me" {
            s.set_local(
                "b",
                &LocalRecord {
                    verdict: Verdict::Ejected,
                    reason: "x".into(),
                    class: *class,
                    remaining: Duration::from_millis(*remaining),
                    ejection_count: *count,
                },
                now,
            );
            continue;
        }
        s.merge(
            &NodeState {
                node: (*owner).into(),
                generation: 1,
                version: 1,
                observations: vec![obs("b", *class, *remaining, *count)],
            }
            .into(),
            now,
        );
    }
    s
}

fn live(nodes: &[&str]) -> BTreeSet<String> {
    nodes.iter().map(|n| (*n).to_string()).collect()
}

fn verdict_at(
    rows: &[(&str, C, u64, u32)],
    live_nodes: &[&str],
    quorum: usize,
    after: Duration,
) -> Option<BackendView> {
    let t0 = Instant::now();
    let s = store(rows, t0);
    compute(s.states(), &live(live_nodes), quorum, 0, t0 + after).remove("b")
}

#[test]
fn adoption_rule_table() {
    let s = Duration::from_secs;
    let all = ["me", "a", "b", "c"];
    // (name, observations, live, quorum, at, adopted, time_left)
    type Row<'a> = (
        &'a str,
        Vec<(&'a str, C, u64, u32)>,
        &'a [&'a str],
        usize,
        Duration,
        bool,
        Option<Duration>,
    );
    let rows: Vec<Row> = vec![
        (
            "provider_from_one_observer_is_adopted",
            vec![("a", C::Provider, 30_000, 1)],
            &all,
            2,
            s(0),
            true,
            Some(s(30)),
        ),
        (
            "network_from_one_observer_is_not_adopted",
            vec![("a", C::Network, 30_000, 1)],
            &all,
            2,
            s(0),
            false,
            None,
        ),
        (
            "network_from_two_live_observers_is_adopted",
            vec![("a", C::Network, 30_000, 1), ("c", C::Network, 60_000, 1)],
            &all,
            2,
            s(0),
            true,
            Some(s(30)),
        ),
        (
            "own_network_observation_counts_towards_quorum",
            vec![("me", C::Network, 10_000, 1), ("a", C::Network, 20_000, 1)],
            &all,
            2,
            s(0),
            true,
            Some(s(10)),
        ),
        (
            "dead_observer_does_not_count_for_network_quorum",
            vec![("a", C::Network, 30_000, 1), ("c", C::Network, 30_000, 1)],
            &["me", "a", "b"],
            2,
            s(0),
            false,
            None,
        ),
        (
            "non_live_network_observer_is_ignored_even_when_quorum_shrinks",
            vec![("a", C::Network, 30_000, 1)],
            &["me"],
            2,
            s(0),
            false,
            None,
        ),
        (
            "quorum_of_three_with_two_live_needs_both",
            vec![("me", C::Network, 5_000, 1), ("a", C::Network, 9_000, 1)],
            &["me", "a"],
            3,
            s(0),
            true,
            Some(s(5)),
        ),
        (
            "quorum_of_three_needs_three_observers",
            vec![("a", C::Network, 5_000, 1), ("b", C::Network, 9_000, 1)],
            &all,
            3,
            s(0),
            false,
            None,
        ),
        (
            "dead_nodes_provider_evidence_outlives_it_until_expiry",
            vec![("c", C::Provider, 30_000, 1)],
            &["me"],
            2,
            s(29),
            true,
            Some(s(1)),
        ),
        (
            "expired_observation_is_ignored",
            vec![("a", C::Provider, 30_000, 1)],
            &all,
            2,
            s(30),
            false,
            None,
        ),
        (
            "longest_provider_remaining_wins",
            vec![("a", C::Provider, 10_000, 1), ("b", C::Provider, 90_000, 3)],
            &all,
            2,
            s(0),
            true,
            Some(s(90)),
        ),
        (
            "network_adoption_lapses_when_quorum_expires",
            vec![("a", C::Network, 10_000, 1), ("b", C::Network, 90_000, 1)],
            &all,
            2,
            s(11),
            false,
            None,
        ),
        (
            "remaining_is_clamped_to_max_ejection_time",
            vec![("a", C::Provider, 10_000_000, 1)],
            &all,
            2,
            s(0),
            true,
            Some(MAX),
        ),
        (
            "provider_and_network_take_the_later_end",
            vec![
                ("a", C::Provider, 10_000, 1),
                ("b", C::Network, 50_000, 1),
                ("c", C::Network, 40_000, 1),
            ],
            &all,
            2,
            s(0),
            true,
            Some(s(40)),
        ),
    ];
    let mut failures = Vec::new();
    for (name, obs, live_nodes, quorum, at, adopted, time_left) in rows {
        let v = verdict_at(&obs, live_nodes, quorum, at);
        let got = (
            v.as_ref().is_some_and(|v| v.adopted),
            v.as_ref().and_then(|v| v.time_left),
        );
        let want = (adopted, time_left);
        if got != want {
            failures.push(format!("{name}: got {got:?}, want {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn single_live_node_adopts_its_own_network_ejection() {
    let v =
        verdict_at(&[("me", C::Network, 30_000, 1)], &["me"], 2, Duration::ZERO).expect("observed");
    assert!(v.adopted);
    assert_eq!(v.network_quorum_needed, 1);
}

#[test]
fn clock_skew_is_irrelevant_only_remaining_matters() {
    // Two receivers whose monotonic clocks have unrelated origins (and whose owners' wall clocks differ,
    // which shows up only as different age_ms) compute the same time left.
    let state = |age_ms| -> NodeStateV2 {
        NodeState {
            node: "a".into(),
            generation: 1,
            version: 1,
            observations: vec![Observation {
                age_ms,
                ..obs("b", C::Provider, 42_000, 2)
            }],
        }
        .into()
    };
    let base = Instant::now();
    let mut lefts = Vec::new();
    for (offset, age) in [(0, 0), (3_600_000, 86_400_000), (17, 5)] {
        let t = base + Duration::from_millis(offset);
        let mut s = EvidenceStore::new("me".into(), 1, MAX, t);
        s.merge(&state(age), t);
        let v = compute(
            s.states(),
            &live(&["me", "a"]),
            2,
            0,
            t + Duration::from_secs(2),
        );
        lefts.push(v["b"].time_left);
    }
    assert!(
        lefts.iter().all(|l| *l == Some(Duration::from_secs(40))),
        "{lefts:?}"
    );
}

#[test]
fn ejection_count_is_the_max_seen() {
    let v = verdict_at(
        &[("a", C::Provider, 30_000, 2), ("b", C::Network, 30_000, 5)],
        &["me", "a", "b"],
        2,
        Duration::ZERO,
    )
    .expect("observed");
    assert_eq!(v.ejection_count, 5);
}

#[test]
fn verdict_is_deterministic_whatever_the_merge_order() {
    let t0 = Instant::now();
    let rows = [
        ("a", C::Network, 30_000, 1),
        ("b", C::Network, 20_000, 2),
        ("c", C::Provider, 5_000, 3),
    ];
    let mut views = Vec::new();
    for order in [[0, 1, 2], [2, 1, 0], [1, 2, 0]] {
        let picked: Vec<_> = order.iter().map(|&i| rows[i]).collect();
        let s = store(&picked, t0);
        views.push(compute(s.states(), &live(&["me", "a", "b", "c"]), 2, 0, t0));
    }
    assert_eq!(views[0], views[1]);
    assert_eq!(views[1], views[2]);
}

#[test]
fn owners_under_another_config_are_held_but_never_counted() {
    let t0 = Instant::now();
    let mut s = EvidenceStore::new("me".into(), 1, MAX, t0);
    s.set_config_hash(7, t0);
    let mut other: NodeStateV2 = NodeState {
        node: "a".into(),
        generation: 1,
        version: 1,
        observations: vec![obs("b", C::Provider, 30_000, 1)],
    }
    .into();
    s.merge(&other, t0);
    assert!(
        compute(s.states(), &live(&["me", "a"]), 2, 7, t0).is_empty(),
        "an older node (no hash) is not applied"
    );
    other.version = 2;
    other.config_hash = 8;
    s.merge(&other, t0);
    assert!(compute(s.states(), &live(&["me", "a"]), 2, 7, t0).is_empty());
    other.version = 3;
    other.config_hash = 7;
    s.merge(&other, t0);
    assert!(compute(s.states(), &live(&["me", "a"]), 2, 7, t0)["b"].adopted);
}

#[test]
fn a_returned_record_is_not_evidence_of_failure() {
    let t0 = Instant::now();
    let mut s = EvidenceStore::new("me".into(), 1, MAX, t0);
    let mut st: NodeStateV2 = NodeState {
        node: "a".into(),
        generation: 1,
        version: 1,
        observations: vec![obs("b", C::Provider, 3_000, 2)],
    }
    .into();
    st.hosts[0].verdict = Verdict::Returned;
    s.merge(&st, t0);
    let v = compute(s.states(), &live(&["me", "a"]), 2, 0, t0)
        .remove("b")
        .expect("the verdict names the host");
    assert!(!v.adopted);
    assert_eq!(v.returned, Some(2));
    assert!(v.observers.is_empty());
}

#[test]
fn a_cooling_record_is_a_cooldown_not_an_ejection() {
    let t0 = Instant::now();
    let mut s = EvidenceStore::new("me".into(), 1, MAX, t0);
    for (owner, remaining) in [("a", 3_000), ("c", 5_000)] {
        let mut st: NodeStateV2 = NodeState {
            node: owner.into(),
            generation: 1,
            version: 1,
            observations: vec![obs("b", C::Provider, remaining, 0)],
        }
        .into();
        st.hosts[0].verdict = Verdict::Cooling;
        s.merge(&st, t0);
    }
    let at = |d: u64| {
        compute(
            s.states(),
            &live(&["me", "a", "c"]),
            2,
            0,
            t0 + Duration::from_millis(d),
        )
        .remove("b")
    };
    let v = at(1_000).expect("the view names the host");
    assert!(!v.adopted, "a cooldown never ejects");
    assert!(v.observers.is_empty());
    assert_eq!(
        v.cooling,
        Some(Duration::from_millis(4_000)),
        "the longest one"
    );
    assert_eq!(
        at(4_000).expect("c still cools").cooling,
        Some(Duration::from_millis(1_000))
    );
    assert!(at(5_000).is_none(), "gone once every cooldown expired");
}
