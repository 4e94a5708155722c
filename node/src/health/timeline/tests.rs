//! The timeline's rules, one test per behaviour, and three nodes driven by hand to show they share one
//! timeline.

use super::*;

const P: ObservationClass = ObservationClass::Provider;

fn cfg() -> TimelineConfig {
    TimelineConfig {
        base: Duration::from_secs(5),
        max: Duration::from_secs(300),
        interval: Duration::from_secs(2),
    }
}

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn published(step: &Step) -> (Verdict, u32, Duration) {
    match step {
        Step::Publish(r) => (r.verdict, r.ejection_count, r.remaining),
        other => panic!("expected a record, got {other:?}"),
    }
}

#[test]
fn nth_ejection_lasts_base_times_n_and_decays_while_healthy() {
    let t0 = Instant::now();
    let mut t = Timeline::new(cfg());
    assert_eq!(t.gate(), Gate::Open);
    assert_eq!(
        published(&t.fire("consecutive_5xx", P, t0)),
        (Verdict::Ejected, 1, s(5))
    );
    assert_eq!(t.gate(), Gate::Closed);
    assert_eq!(t.next_deadline(), Some(t0 + s(5)));
    // Trial at the instant the ejection ends, run here (a cluster of one).
    assert_eq!(t.tick(t0 + s(5), true, false), Step::Quiet);
    assert_eq!(t.gate(), Gate::Trial);
    // It fails: ejection 2, 10 s.
    assert_eq!(
        published(&t.trial_outcome(false, "consecutive_5xx", P, t0 + s(5))),
        (Verdict::Ejected, 2, s(10))
    );
    t.tick(t0 + s(15), true, false);
    // It passes: back, and the cluster is told which ejection it ended.
    assert_eq!(
        published(&t.trial_outcome(true, "", P, t0 + s(15))),
        (Verdict::Returned, 2, s(2))
    );
    assert_eq!(t.gate(), Gate::Open);
    // −1 per interval healthy: 2 s later the next ejection is number 2 again, 4 s later number 1.
    assert_eq!(t.decayed_count(t0 + s(17)), 1);
    assert_eq!(t.decayed_count(t0 + s(19)), 0);
    assert_eq!(published(&t.fire("x", P, t0 + s(17))).1, 2);
}

#[test]
fn multiplier_growth_is_capped_like_envoy() {
    // base 100 s, max 300 s: k grows while k·base < max + base, i.e. up to 4; lengths cap at 300 s.
    let mut t = Timeline::new(TimelineConfig {
        base: s(100),
        max: s(300),
        interval: s(1),
    });
    let mut now = Instant::now();
    let mut counts = Vec::new();
    for _ in 0..6 {
        let step = if t.is_healthy() {
            t.fire("x", P, now)
        } else {
            t.trial_outcome(false, "x", P, now)
        };
        let (_, count, length) = published(&step);
        counts.push((count, length.as_secs()));
        now += length;
        t.tick(now, true, false);
    }
    assert_eq!(
        counts,
        vec![(1, 100), (2, 200), (3, 300), (4, 300), (4, 300), (4, 300)]
    );
}

#[test]
fn a_firing_detector_changes_nothing_while_the_host_is_out() {
    let t0 = Instant::now();
    let mut t = Timeline::new(cfg());
    t.fire("x", P, t0);
    assert_eq!(t.fire("x", P, t0 + s(1)), Step::Quiet);
    t.tick(t0 + s(5), false, false);
    assert_eq!(
        t.fire("x", P, t0 + s(5)),
        Step::Quiet,
        "another node's trial: a late failure here is not a verdict"
    );
    assert_eq!(t.trial_outcome(false, "x", P, t0 + s(5)), Step::Quiet);
}

/// (name, starting count and phase set-up, adopted count, adopted end (s after t0), gate after, count
/// after, end after)
#[test]
fn adoption_table() {
    let t0 = Instant::now();
    type Setup = fn(&mut Timeline, Instant);
    let ejected_1: Setup = |t, t0| {
        t.fire("x", P, t0);
    };
    let in_trial_1: Setup = |t, t0| {
        t.fire("x", P, t0);
        t.tick(t0 + s(5), false, false);
    };
    let returned_1: Setup = |t, t0| {
        t.fire("x", P, t0);
        t.tick(t0 + s(5), true, false);
        t.trial_outcome(true, "", P, t0 + s(5));
    };
    let healthy: Setup = |_, _| {};
    type Row = (
        &'static str,
        Setup,
        u32,
        Duration,
        Gate,
        u32,
        Option<Instant>,
    );
    let rows: Vec<Row> = vec![
        (
            "a healthy host adopts the cluster's ejection and number",
            healthy,
            3,
            s(15),
            Gate::Closed,
            3,
            Some(t0 + s(15)),
        ),
        (
            "the same number ends at the later of the two ends",
            ejected_1,
            1,
            s(5) + ms(4),
            Gate::Closed,
            1,
            Some(t0 + s(5) + ms(4)),
        ),
        (
            "the same number never shortens the hold",
            ejected_1,
            1,
            s(4),
            Gate::Closed,
            1,
            Some(t0 + s(5)),
        ),
        (
            "a higher number replaces the local ejection",
            ejected_1,
            2,
            s(10),
            Gate::Closed,
            2,
            Some(t0 + s(10)),
        ),
        (
            "a lower number is stale",
            ejected_1,
            0,
            s(30),
            Gate::Closed,
            1,
            Some(t0 + s(5)),
        ),
        (
            "during the trial a late copy of its own ejection is ignored",
            in_trial_1,
            1,
            s(5) + ms(3),
            Gate::Closed,
            1,
            Some(t0 + s(7)),
        ),
        (
            "during the trial a higher number (the trial failed elsewhere) holds the host out again",
            in_trial_1,
            2,
            s(15),
            Gate::Closed,
            2,
            Some(t0 + s(15)),
        ),
        (
            "just after a returned trial a late copy of the ended ejection is ignored",
            returned_1,
            1,
            s(5) + ms(3),
            Gate::Open,
            1,
            None,
        ),
        (
            "just after a returned trial a new ejection is taken",
            returned_1,
            2,
            s(15),
            Gate::Closed,
            2,
            Some(t0 + s(15)),
        ),
    ];
    for (name, setup, count, end, gate, count_after, deadline) in rows {
        let mut t = Timeline::new(cfg());
        setup(&mut t, t0);
        let now = t.trial().map_or(t0 + ms(1), |(since, _)| since);
        t.adopt(count, t0 + end, "y", P, now);
        assert_eq!(t.gate(), gate, "{name}: gate");
        assert_eq!(t.ejection_count(), count_after, "{name}: count");
        assert_eq!(t.next_deadline(), deadline, "{name}: deadline");
    }
}

#[test]
fn a_verdict_from_another_node_returns_the_host_and_clears_the_own_record() {
    let t0 = Instant::now();
    let mut t = Timeline::new(cfg());
    t.fire("x", P, t0);
    t.tick(t0 + s(5), false, false);
    assert_eq!(t.gate(), Gate::Closed, "another node runs the trial");
    assert_eq!(
        t.returned(0, t0 + s(5)),
        Step::Quiet,
        "another ejection's verdict"
    );
    assert_eq!(t.returned(1, t0 + s(5) + ms(2)), Step::Clear);
    assert_eq!(t.gate(), Gate::Open);
}

#[test]
fn a_lost_verdict_is_settled_after_one_interval_by_own_evidence() {
    let t0 = Instant::now();
    let mut t = Timeline::new(cfg());
    t.adopt(1, t0 + s(5), "x", P, t0);
    t.tick(t0 + s(5), false, false);
    assert_eq!(t.tick(t0 + s(6), false, false), Step::Quiet);
    assert_eq!(t.gate(), Gate::Closed);
    assert_eq!(
        t.tick(t0 + s(7), false, false),
        Step::Quiet,
        "nothing of its own to clear"
    );
    assert_eq!(t.gate(), Gate::Open);
}

#[test]
fn the_trial_node_waits_for_its_own_request_but_not_for_traffic_that_never_came() {
    let t0 = Instant::now();
    let mut t = Timeline::new(cfg());
    t.fire("x", P, t0);
    t.tick(t0 + s(5), true, false);
    assert_eq!(t.tick(t0 + s(8), true, true), Step::Quiet);
    assert_eq!(t.gate(), Gate::Trial, "its request is still out");
    assert_eq!(t.tick(t0 + s(8), true, false), Step::Clear);
    assert_eq!(t.gate(), Gate::Open, "no request to try with: back");
}

#[test]
fn the_trial_role_moves_when_the_live_set_changes() {
    let t0 = Instant::now();
    let mut t = Timeline::new(cfg());
    t.adopt(1, t0 + s(5), "x", P, t0);
    t.tick(t0 + s(5), false, false);
    assert_eq!(t.gate(), Gate::Closed);
    t.set_trial_mine(true);
    assert_eq!(t.gate(), Gate::Trial);
}

#[test]
fn a_passing_probe_returns_the_host_and_tells_the_cluster() {
    let t0 = Instant::now();
    let mut t = Timeline::new(cfg());
    t.fire("x", P, t0);
    assert_eq!(
        published(&t.probe_passed(t0 + s(1))),
        (Verdict::Returned, 1, s(2))
    );
    assert_eq!(t.gate(), Gate::Open);
}

#[test]
fn trial_node_is_deterministic_spreads_and_moves_on() {
    let live: BTreeSet<NodeId> = ["n1", "n2", "n3"].iter().map(|s| s.to_string()).collect();
    let first = trial_node("h", 1, &live).cloned();
    assert_eq!(first, trial_node("h", 1, &live.clone()).cloned());
    let mut seen = BTreeSet::new();
    for count in 1..40 {
        for host in ["a", "b", "c"] {
            seen.extend(trial_node(host, count, &live).cloned());
        }
    }
    assert_eq!(seen.len(), 3, "every node gets trials");
    let chosen = first.expect("a node");
    let mut without: BTreeSet<NodeId> = live.clone();
    without.remove(&chosen);
    let next = trial_node("h", 1, &without).cloned().expect("a node");
    assert_ne!(next, chosen);
    assert!(trial_node("h", 1, &BTreeSet::new()).is_none());
}

/// Three nodes, messages delivered by hand with a few milliseconds of delay: they hold the host out until
/// the same instant, one trial runs, and the failure moves everyone to ejection 2 together.
#[test]
fn three_nodes_share_one_timeline() {
    let t0 = Instant::now();
    let mut nodes: Vec<Timeline> = (0..3).map(|_| Timeline::new(cfg())).collect();
    let step = nodes[0].fire("consecutive_5xx", P, t0);
    let (_, count, remaining) = published(&step);
    // The record reaches the others 1 and 3 ms later, carrying its time left then.
    for (i, delay) in [(1, ms(1)), (2, ms(3))] {
        let at = t0 + delay;
        let until = at + remaining - delay;
        assert!(nodes[i].adopt(count, until, "consecutive_5xx", P, at));
    }
    let ends: Vec<Option<Instant>> = nodes.iter().map(|t| t.next_deadline()).collect();
    assert!(ends.iter().all(|e| *e == Some(t0 + s(5))), "{ends:?}");
    // Node 2 is the trial node.
    let end = t0 + s(5);
    for (i, t) in nodes.iter_mut().enumerate() {
        t.tick(end, i == 2, false);
    }
    let gates: Vec<Gate> = nodes.iter().map(|t| t.gate()).collect();
    assert_eq!(gates, vec![Gate::Closed, Gate::Closed, Gate::Trial]);
    let step = nodes[2].trial_outcome(false, "consecutive_5xx", P, end + ms(20));
    let (_, count, remaining) = published(&step);
    assert_eq!((count, remaining), (2, s(10)));
    for i in [0, 1] {
        nodes[i].adopt(
            count,
            end + ms(20) + remaining,
            "consecutive_5xx",
            P,
            end + ms(21),
        );
    }
    assert!(nodes
        .iter()
        .all(|t| t.next_deadline() == Some(end + ms(20) + s(10)) && t.ejection_count() == 2));
}
