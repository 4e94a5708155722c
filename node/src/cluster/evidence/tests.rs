//! Evidence store tests: merge laws as seeded property tests (DESIGN §6: "commutative, associative,
//! idempotent"), re-basing of time, digests, and the dissemination choice.

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchyard_protocol::{
    HostReport, NodeState, NodeStateV2, Observation, ObservationClass, Verdict,
};

use crate::health::events::LocalRecord;

use super::*;

const MAX: Duration = Duration::from_secs(300);

/// A state whose content is a function of `(owner, generation, version)` — as it is in reality, since
/// each owner is the single writer of its versions.
fn state(owner: u8, generation: u64, version: u64) -> NodeStateV2 {
    let n = (u64::from(owner) * 31 + generation * 7 + version) % 5;
    NodeState {
        node: format!("n{owner}"),
        generation,
        version,
        observations: (0..n)
            .map(|i| Observation {
                backend: format!("b{i}"),
                reason: "consecutive_5xx".into(),
                class: if i % 2 == 0 {
                    ObservationClass::Provider
                } else {
                    ObservationClass::Network
                },
                remaining_ms: 1_000 * (n + i),
                ejection_count: (n + i) as u32,
                version,
                age_ms: i,
            })
            .collect(),
    }
    .into()
}

fn random_states(rng: &mut StdRng) -> Vec<NodeStateV2> {
    (0..rng.random_range(0..12))
        .map(|_| {
            state(
                rng.random_range(0..4),
                rng.random_range(0..3),
                rng.random_range(0..6),
            )
        })
        .collect()
}

fn store_of(states: &[NodeStateV2], now: Instant) -> EvidenceStore {
    let mut s = EvidenceStore::new("me".into(), 1, MAX, now);
    for st in states {
        s.merge(st, now);
    }
    s
}

/// Merges everything `other` holds into `into` (what anti-entropy does).
fn merge_store(into: &mut EvidenceStore, other: &EvidenceStore, now: Instant) {
    for (owner, _) in other.states() {
        if let Some(w) = other.wire_state(owner, now) {
            into.merge(&w, now);
        }
    }
}

/// `(owner, generation, version, [(backend, count, expires_at)])` per owner.
type Snapshot = Vec<(String, u64, u64, Vec<(String, u32, Instant)>)>;

fn snapshot(s: &EvidenceStore) -> Snapshot {
    s.states()
        .map(|(n, st)| {
            (
                n.clone(),
                st.generation,
                st.version,
                st.observations
                    .iter()
                    .map(|(b, o)| (b.clone(), o.ejection_count, o.expires_at))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn merge_is_commutative_associative_and_idempotent() {
    let mut rng = StdRng::seed_from_u64(0xe71d);
    let now = Instant::now();
    for case in 0..500 {
        let (a, b, c) = (
            random_states(&mut rng),
            random_states(&mut rng),
            random_states(&mut rng),
        );
        let (sa, sb, sc) = (store_of(&a, now), store_of(&b, now), store_of(&c, now));
        // Commutative: a ∪ b == b ∪ a.
        let mut ab = sa.clone();
        merge_store(&mut ab, &sb, now);
        let mut ba = sb.clone();
        merge_store(&mut ba, &sa, now);
        assert_eq!(snapshot(&ab), snapshot(&ba), "case {case}: commutativity");
        // Associative: (a ∪ b) ∪ c == a ∪ (b ∪ c).
        let mut ab_c = ab.clone();
        merge_store(&mut ab_c, &sc, now);
        let mut bc = sb.clone();
        merge_store(&mut bc, &sc, now);
        let mut a_bc = sa.clone();
        merge_store(&mut a_bc, &bc, now);
        assert_eq!(
            snapshot(&ab_c),
            snapshot(&a_bc),
            "case {case}: associativity"
        );
        // Idempotent: a ∪ a == a, and merging again changes nothing.
        let mut aa = sa.clone();
        merge_store(&mut aa, &sa, now);
        assert_eq!(snapshot(&aa), snapshot(&sa), "case {case}: idempotence");
        // Order of individual deliveries does not matter either.
        let mut shuffled = a.clone();
        shuffled.reverse();
        assert_eq!(snapshot(&store_of(&shuffled, now)), snapshot(&sa));
    }
}

#[test]
fn higher_generation_beats_higher_version() {
    let now = Instant::now();
    let mut s = store_of(&[state(1, 1, 9)], now);
    assert_eq!(s.merge(&state(1, 2, 1), now), MergeOutcome::Newer);
    assert_eq!(s.merge(&state(1, 1, 10), now), MergeOutcome::NotNewer);
    assert_eq!(
        s.state("n1").map(|s| (s.generation, s.version)),
        Some((2, 1))
    );
}

#[test]
fn a_state_about_ourselves_is_ignored() {
    let now = Instant::now();
    let mut s = EvidenceStore::new("me".into(), 1, MAX, now);
    let mut mine = state(0, 5, 5);
    mine.node = "me".into();
    assert_eq!(s.merge(&mine, now), MergeOutcome::Ours);
    assert_eq!(s.state("me").map(|s| s.version), Some(0));
}

#[test]
fn relaying_rebases_remaining_and_age_on_the_relays_clock() {
    let t0 = Instant::now();
    let mut s = EvidenceStore::new("me".into(), 1, MAX, t0);
    let mut st = state(1, 1, 1);
    st.hosts = vec![HostReport {
        host: "b".into(),
        verdict: Verdict::Ejected,
        reason: "r".into(),
        class: ObservationClass::Provider,
        remaining_ms: 10_000,
        ejection_count: 1,
        version: 1,
        age_us: 250_000,
    }];
    s.merge(&st, t0);
    let relayed = s
        .wire_state("n1", t0 + Duration::from_secs(4))
        .expect("held");
    assert_eq!(relayed.hosts[0].remaining_ms, 6_000);
    assert_eq!(relayed.hosts[0].age_us, 4_250_000);
}

#[test]
fn local_changes_bump_the_version() {
    let now = Instant::now();
    let mut s = EvidenceStore::new("me".into(), 1, MAX, now);
    s.set_local(
        "b",
        &LocalRecord {
            verdict: Verdict::Ejected,
            reason: "r".into(),
            class: ObservationClass::Provider,
            remaining: Duration::from_secs(999),
            ejection_count: 1,
        },
        now,
    );
    assert_eq!(s.state("me").map(|s| s.version), Some(1));
    // Own remaining is clamped too.
    assert_eq!(
        s.wire_state("me", now).expect("own").hosts[0].remaining_ms,
        300_000
    );
    assert!(s.clear_local("b", now));
    assert!(!s.clear_local("b", now));
    assert_eq!(s.state("me").map(|s| s.version), Some(2));
}

#[test]
fn digest_exchange_finds_what_each_side_lacks() {
    let now = Instant::now();
    let a = store_of(&[state(1, 1, 3), state(2, 1, 1)], now);
    let b = store_of(&[state(1, 1, 2), state(3, 1, 1)], now);
    assert_eq!(
        a.newer_than(&b.digest()),
        vec!["n1".to_string(), "n2".into()]
    );
    assert!(a.peer_has_newer(&b.digest()));
    assert_eq!(b.newer_than(&a.digest()), vec!["n3".to_string()]);
    let same = store_of(&[state(1, 1, 3), state(2, 1, 1)], now);
    assert!(a.newer_than(&same.digest()).is_empty());
    assert!(!a.peer_has_newer(&same.digest()));
}

#[test]
fn dead_owners_state_is_pruned_only_after_it_expired() {
    let t0 = Instant::now();
    let mut s = store_of(&[state(1, 1, 4)], t0);
    s.prune(t0 + Duration::from_secs(10), |_| false);
    assert!(
        s.state("n1").is_some(),
        "unexpired evidence outlives its owner"
    );
    s.prune(t0 + MAX + Duration::from_secs(1), |_| true);
    assert!(s.state("n1").is_some(), "live owners are kept");
    s.prune(t0 + MAX + Duration::from_secs(1), |_| false);
    assert!(s.state("n1").is_none());
}

#[test]
fn dissemination_pushes_to_all_when_small_and_relays_nothing() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut d = Disseminator::new(DisseminationConfig::default());
    let peers: Vec<String> = (0..32).map(|i| format!("p{i}")).collect();
    assert_eq!(d.changed(&"me".into(), true, &peers, &mut rng), peers);
    assert!(d.changed(&"x".into(), false, &peers, &mut rng).is_empty());
    assert!(d.round(&peers, &mut rng).is_empty());
}

#[test]
fn dissemination_gossips_to_fanout_for_log_n_rounds_when_large() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut d = Disseminator::new(DisseminationConfig::default());
    let peers: Vec<String> = (0..99).map(|i| format!("p{i}")).collect();
    // The owner's own push goes to the immediate fanout (⌈ln 100⌉ + 6 = 11), the rounds to 3.
    assert_eq!(d.changed(&"me".into(), true, &peers, &mut rng).len(), 11);
    assert!(d.changed(&"x".into(), false, &peers, &mut rng).is_empty());
    let limit = retransmit_limit(100);
    assert_eq!(limit, 7);
    let mut rounds = 0;
    while d.pending() > 0 {
        let r = d.round(&peers, &mut rng);
        assert!(r.values().map(Vec::len).sum::<usize>() <= 6);
        rounds += 1;
    }
    assert_eq!(rounds, limit);
    // Feedback: a peer that already holds it shortens the rumour.
    d.changed(&"x".into(), false, &peers, &mut rng);
    for _ in 0..limit {
        d.already_held("x");
    }
    assert_eq!(d.pending(), 0);
}

#[test]
fn immediate_fanout_is_ln_n_plus_margin_within_fanout_and_peers() {
    let d = Disseminator::new(DisseminationConfig::default());
    // (live peers, fanout): ⌈ln(peers + 1)⌉ + 6, at least 3, at most every peer.
    let rows = [
        ("alone", 0, 0),
        ("fewer_peers_than_fanout", 2, 2),
        ("33_nodes", 32, 10),
        ("100_nodes", 99, 11),
        ("1000_nodes", 999, 13),
        ("100k_nodes", 99_999, 18),
    ];
    for (name, peers, want) in rows {
        assert_eq!(d.immediate_fanout(peers), want, "{name}");
    }
    let lean = Disseminator::new(DisseminationConfig {
        relay_margin: 0,
        fanout: 3,
        ..DisseminationConfig::default()
    });
    assert_eq!(lean.immediate_fanout(9), 3, "never below fanout");
}

#[test]
fn relays_pass_a_new_state_on_at_once_exactly_once_when_large() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut d = Disseminator::new(DisseminationConfig::default());
    let peers: Vec<String> = (0..99).map(|i| format!("p{i}")).collect();
    let owner: NodeId = "p7".into();
    for _ in 0..50 {
        let mut again = Disseminator::new(DisseminationConfig::default());
        let to = again.learned(&owner, (1, 5), "p3", &peers, &mut rng);
        assert_eq!(to.len(), 11);
        assert!(
            !to.iter().any(|p| p == "p3" || p == "p7"),
            "never back to the sender or the owner: {to:?}"
        );
        let mut unique = to.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), to.len());
    }
    assert_eq!(d.learned(&owner, (1, 5), "p3", &peers, &mut rng).len(), 11);
    assert_eq!(d.pending(), 1, "the repair rounds start too");
    // The same (owner, generation, version) again, from anyone, or an older one: no second wave.
    assert!(d.learned(&owner, (1, 5), "p4", &peers, &mut rng).is_empty());
    assert!(d.learned(&owner, (1, 4), "p4", &peers, &mut rng).is_empty());
    // A newer version, or a restart, is a new state and gets its own wave.
    assert_eq!(d.learned(&owner, (1, 6), "p4", &peers, &mut rng).len(), 11);
    assert_eq!(d.learned(&owner, (2, 1), "p4", &peers, &mut rng).len(), 11);
    // Relaying is per owner.
    assert_eq!(
        d.learned(&"p8".into(), (1, 6), "p4", &peers, &mut rng)
            .len(),
        11
    );
}

#[test]
fn relays_stay_silent_in_a_small_cluster() {
    let mut rng = StdRng::seed_from_u64(4);
    let mut d = Disseminator::new(DisseminationConfig::default());
    let peers: Vec<String> = (0..32).map(|i| format!("p{i}")).collect();
    assert!(d
        .learned(&"p1".into(), (1, 1), "p2", &peers, &mut rng)
        .is_empty());
    assert!(d.round(&peers, &mut rng).is_empty());
}

#[test]
fn relay_bookkeeping_is_forgotten_with_the_owner() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut d = Disseminator::new(DisseminationConfig::default());
    let peers: Vec<String> = (0..99).map(|i| format!("p{i}")).collect();
    assert!(!d
        .learned(&"gone".into(), (1, 1), "p2", &peers, &mut rng)
        .is_empty());
    d.retain(|owner| owner != "gone");
    assert_eq!(d.pending(), 0);
    // Forgotten: a state of it seen again (after its store entry was pruned) is new again.
    assert!(!d
        .learned(&"gone".into(), (1, 1), "p2", &peers, &mut rng)
        .is_empty());
}
