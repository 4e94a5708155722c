//! SWIM unit tests: update precedence, refutation, probe → indirect → suspect → dead, Leave, join.

use std::time::{Duration, Instant};

use switchyard_protocol::{MemberState as S, MemberUpdate, Message, Ping};

use super::*;

fn update(node: &str, inc: u64, state: S) -> MemberUpdate {
    MemberUpdate {
        node: node.into(),
        addr: format!("{node}:7946"),
        incarnation: inc,
        state,
        generation: 1,
    }
}

fn node(name: &str, seeds: &[&str], now: Instant) -> Membership {
    Membership::new(
        MembershipConfig::default(),
        name.into(),
        format!("{name}:7946"),
        1,
        seeds.iter().map(|s| (*s).to_string()).collect(),
        7,
        now,
    )
}

fn ping(updates: Vec<MemberUpdate>) -> Message {
    Message::Ping(Ping { seq: 1, updates })
}

#[test]
fn update_precedence_table() {
    let t = Instant::now();
    // (name, current, incoming, resulting state, resulting incarnation)
    let rows = [
        (
            "suspect_beats_alive_same_inc",
            (1, S::Alive),
            (1, S::Suspect),
            S::Suspect,
            1,
        ),
        (
            "alive_does_not_beat_suspect_same_inc",
            (1, S::Suspect),
            (1, S::Alive),
            S::Suspect,
            1,
        ),
        (
            "refuted_alive_beats_suspect",
            (1, S::Suspect),
            (2, S::Alive),
            S::Alive,
            2,
        ),
        (
            "dead_beats_suspect",
            (1, S::Suspect),
            (1, S::Dead),
            S::Dead,
            1,
        ),
        (
            "old_suspicion_is_ignored",
            (3, S::Alive),
            (2, S::Suspect),
            S::Alive,
            3,
        ),
        ("left_beats_dead", (1, S::Dead), (1, S::Left), S::Left, 1),
        (
            "alive_after_dead_needs_higher_inc",
            (1, S::Dead),
            (1, S::Alive),
            S::Dead,
            1,
        ),
    ];
    for (name, (ci, cs), (ii, is), want_state, want_inc) in rows {
        let mut m = node("me", &[], t);
        m.learn(update("x", ci, S::Alive), t);
        if cs != S::Alive {
            m.learn(update("x", ci, cs), t);
        }
        m.learn(update("x", ii, is), t);
        let x = m.member("x").expect("known");
        assert_eq!((x.state, x.incarnation), (want_state, want_inc), "{name}");
    }
    // A restart (new generation) beats any incarnation.
    let mut m = node("me", &[], t);
    m.learn(update("x", 9, S::Dead), t);
    m.learn(update("x", 9, S::Alive), t);
    let mut restarted = update("x", 0, S::Alive);
    restarted.generation = 2;
    m.learn(restarted, t);
    assert_eq!(m.member("x").map(|x| x.state), Some(S::Alive));
}

#[test]
fn unknown_node_reported_dead_is_not_added() {
    let t = Instant::now();
    let mut m = node("me", &[], t);
    m.learn(update("ghost", 0, S::Dead), t);
    assert!(m.member("ghost").is_none());
}

#[test]
fn suspect_refutes_by_bumping_incarnation() {
    let t = Instant::now();
    let mut m = node("me", &[], t);
    m.learn(update("a", 0, S::Alive), t);
    m.handle(&"a".into(), &ping(vec![update("me", 0, S::Suspect)]), t);
    assert_eq!(m.me().incarnation, 1);
    // The Ack carries our refuting record first.
    let out = m.drain_outbox();
    let Some(Outgoing {
        message: Message::Ack(ack),
        ..
    }) = out.first()
    else {
        panic!("expected an ack, got {out:?}");
    };
    assert_eq!(ack.updates[0].incarnation, 1);
    assert_eq!(ack.updates[0].state, S::Alive);
}

#[test]
fn silent_peer_gets_indirect_probes_then_suspected_then_dead() {
    let t0 = Instant::now();
    let cfg = MembershipConfig::default();
    let mut m = node("me", &[], t0);
    for p in ["a", "b", "c", "d"] {
        m.learn(update(p, 0, S::Alive), t0);
    }
    m.drain_events();
    m.tick(t0);
    let out = m.drain_outbox();
    let Some(Outgoing {
        to: Peer::Node(target),
        message: Message::Ping(_),
    }) = out.first().cloned()
    else {
        panic!("expected a probe, got {out:?}");
    };
    m.tick(t0 + cfg.ping_timeout);
    let reqs: Vec<_> = m
        .drain_outbox()
        .into_iter()
        .filter(|o| matches!(&o.message, Message::PingReq(r) if r.target == target))
        .collect();
    assert_eq!(reqs.len(), 3, "k = 3 indirect probes through the others");
    m.tick(t0 + cfg.probe_interval);
    assert_eq!(m.member(&target).map(|x| x.state), Some(S::Suspect));
    m.tick(t0 + cfg.probe_interval + cfg.suspicion_timeout);
    assert_eq!(m.member(&target).map(|x| x.state), Some(S::Dead));
    let events = m.drain_events();
    assert!(events.contains(&MembershipEvent::Suspect(target.clone())));
    assert!(events.contains(&MembershipEvent::Dead(target.clone())));
}

#[test]
fn ack_answers_the_probe() {
    let t0 = Instant::now();
    let mut m = node("me", &[], t0);
    m.learn(update("a", 0, S::Alive), t0);
    m.tick(t0);
    let seq = match m.drain_outbox().first().map(|o| &o.message) {
        Some(Message::Ping(p)) => p.seq,
        other => panic!("{other:?}"),
    };
    m.handle(
        &"a".into(),
        &Message::Ack(switchyard_protocol::Ack {
            seq,
            updates: vec![],
        }),
        t0 + Duration::from_millis(10),
    );
    m.tick(t0 + Duration::from_secs(1));
    assert_eq!(m.member("a").map(|x| x.state), Some(S::Alive));
    assert!(m.member("a").and_then(|a| a.last_heard).is_some());
}

#[test]
fn ping_req_is_relayed_and_answered_indirectly() {
    let t0 = Instant::now();
    let mut helper = node("h", &[], t0);
    helper.learn(update("p", 0, S::Alive), t0);
    helper.learn(update("t", 0, S::Alive), t0);
    helper.handle(
        &"p".into(),
        &Message::PingReq(switchyard_protocol::PingReq {
            seq: 42,
            target: "t".into(),
            updates: vec![],
        }),
        t0,
    );
    let out = helper.drain_outbox();
    let relay_seq = match &out[..] {
        [Outgoing {
            to: Peer::Node(t),
            message: Message::Ping(p),
        }] if t == "t" => p.seq,
        other => panic!("{other:?}"),
    };
    helper.handle(
        &"t".into(),
        &Message::Ack(switchyard_protocol::Ack {
            seq: relay_seq,
            updates: vec![],
        }),
        t0,
    );
    let out = helper.drain_outbox();
    assert!(matches!(
        &out[..],
        [Outgoing { to: Peer::Node(p), message: Message::IndirectAck(a) }] if p == "p" && a.seq == 42
    ));
}

#[test]
fn leave_marks_left_and_only_the_node_itself_can_leave() {
    let t = Instant::now();
    let mut m = node("me", &[], t);
    m.learn(update("a", 0, S::Alive), t);
    m.learn(update("b", 0, S::Alive), t);
    let leave = |n: &str| {
        Message::Leave(switchyard_protocol::Leave {
            node: n.into(),
            generation: 1,
            incarnation: 0,
        })
    };
    m.handle(&"b".into(), &leave("a"), t);
    assert_eq!(m.member("a").map(|x| x.state), Some(S::Alive));
    m.handle(&"a".into(), &leave("a"), t);
    assert_eq!(m.member("a").map(|x| x.state), Some(S::Left));
    m.leave();
    let out = m.drain_outbox();
    assert_eq!(out.len(), 1, "Leave goes to the live members only: {out:?}");
}

#[test]
fn joins_through_seeds_with_backoff_and_ignores_itself_as_seed() {
    let t0 = Instant::now();
    let mut m = node("me", &["me:7946", "s:7946"], t0);
    m.tick(t0);
    let out = m.drain_outbox();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].to, Peer::Addr("s:7946".into()));
    m.tick(t0 + Duration::from_millis(500));
    assert!(m.drain_outbox().is_empty(), "backoff: 1 s first");
    m.tick(t0 + Duration::from_secs(1));
    assert_eq!(m.drain_outbox().len(), 1);
    m.tick(t0 + Duration::from_secs(2));
    assert!(m.drain_outbox().is_empty(), "backoff doubled to 2 s");
    m.tick(t0 + Duration::from_secs(3));
    assert_eq!(m.drain_outbox().len(), 1);
}

/// The updates a message carries.
fn carried(msg: &Message) -> Vec<MemberUpdate> {
    match msg {
        Message::Ping(p) => p.updates.clone(),
        Message::Ack(a) => a.updates.clone(),
        _ => Vec::new(),
    }
}

/// A seed that knows `members` (all alive), answering a first Ping from `joiner`: every member it knows
/// reaches the joiner at once (on the Ack and, past the piggyback budget, on extra Pings), not only the
/// seed's own record.
#[test]
fn push_on_join_sends_every_live_member_to_the_joiner() {
    let t = Instant::now();
    for members in [2usize, 16, 40] {
        let mut seed = node("seed", &[], t);
        for i in 0..members {
            assert!(seed.apply(update(&format!("m{i}"), 0, S::Alive), t));
        }
        // Pending gossip about those members is spent, as in a cluster that has settled.
        seed.gossip.clear();
        seed.drain_outbox();
        let joiner = MemberUpdate {
            generation: 1,
            ..update("joiner", 0, S::Alive)
        };
        assert!(seed.handle(&"joiner".to_string(), &ping(vec![joiner]), t));
        let out = seed.drain_outbox();
        assert!(out.iter().all(|o| o.to == Peer::Node("joiner".into())));
        let mut learnt: BTreeSet<String> = BTreeSet::new();
        for o in &out {
            let ups = carried(&o.message);
            let bytes = switchyard_protocol::encode(&o.message).expect("fits a frame");
            assert!(bytes.len() <= switchyard_protocol::MAX_FRAME);
            // (The joiner's own record comes back too: it is new gossip.)
            learnt.extend(ups.into_iter().map(|u| u.node).filter(|n| n != "joiner"));
        }
        let want: BTreeSet<String> = (0..members)
            .map(|i| format!("m{i}"))
            .chain(["seed".to_string()])
            .collect();
        assert_eq!(learnt, want, "{members} members");
        // Once paid, a second message from the same joiner owes nothing more.
        let again = MemberUpdate {
            generation: 1,
            ..update("joiner", 0, S::Alive)
        };
        seed.handle(&"joiner".to_string(), &ping(vec![again]), t);
        assert_eq!(seed.drain_outbox().len(), 1, "only the Ack");
    }
}

/// A restart (higher generation) and a return from Left count as joining again; a member heard from
/// again in the same generation does not.
#[test]
fn push_on_join_after_restart_or_leave_but_not_on_every_message() {
    let t = Instant::now();
    let mut seed = node("seed", &[], t);
    seed.apply(update("m0", 0, S::Alive), t);
    seed.apply(update("peer", 0, S::Alive), t);
    seed.gossip.clear();
    seed.drain_outbox();
    let peer = "peer".to_string();
    let sends = |seed: &mut Membership, generation: u64| {
        let u = MemberUpdate {
            generation,
            ..update("peer", 0, S::Alive)
        };
        seed.handle(&peer, &ping(vec![u]), t);
        seed.drain_outbox()
            .iter()
            .flat_map(|o| carried(&o.message))
            .any(|u| u.node == "m0")
    };
    assert!(!sends(&mut seed, 1), "same generation: nothing owed");
    assert!(sends(&mut seed, 2), "restarted: owed everything");
    seed.apply(
        MemberUpdate {
            generation: 2,
            ..update("peer", 0, S::Left)
        },
        t,
    );
    seed.gossip.clear();
    assert!(sends(&mut seed, 3), "back after leaving: owed everything");
}

/// Delivers MemberSync messages back and forth between `a` and `b` until neither has one to send; returns
/// the phases seen, in order, as `(sender, phase)`. Other messages (acks of push-on-join) are dropped.
fn sync_between(a: &mut Membership, b: &mut Membership, t: Instant) -> Vec<(String, SyncPhase)> {
    let mut seen = Vec::new();
    loop {
        let before = seen.len();
        deliver_syncs(a, b, t, &mut seen);
        deliver_syncs(b, a, t, &mut seen);
        if seen.len() == before {
            return seen;
        }
    }
}

fn deliver_syncs(
    from: &mut Membership,
    to: &mut Membership,
    t: Instant,
    seen: &mut Vec<(String, SyncPhase)>,
) {
    let from_id = from.me().node.clone();
    let to_id = to.me().node.clone();
    for o in from.drain_outbox() {
        if let Message::MemberSync(s) = &o.message {
            assert_eq!(o.to, Peer::Node(to_id.clone()));
            seen.push((from_id.clone(), s.phase));
            assert!(to.handle(&from_id, &o.message, t));
        }
    }
}

/// Push-pull sync (module doc): Offer with the digest only; an Answer with the whole view when the views
/// differ; a Close back when they still differ; never more — and the views agree afterwards.
#[test]
fn sync_exchange_table() {
    use SyncPhase::{Answer, Close, Offer};
    let t = Instant::now();
    // (name, members only a knows, members only b knows, phases a → b → a)
    type Row = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &'static [SyncPhase],
    );
    let rows: [Row; 4] = [
        ("same_view_offer_only", &[], &[], &[Offer]),
        ("b_knows_more_answers", &[], &["x", "y"], &[Offer, Answer]),
        ("a_knows_more_closes", &["x"], &[], &[Offer, Answer, Close]),
        ("both_know_more", &["x"], &["y"], &[Offer, Answer, Close]),
    ];
    for (name, only_a, only_b, want) in rows {
        let mut a = node("a", &[], t);
        let mut b = node("b", &[], t);
        a.learn(update("b", 0, S::Alive), t);
        b.learn(update("a", 0, S::Alive), t);
        for n in only_a {
            a.learn(update(n, 0, S::Alive), t);
        }
        for n in only_b {
            b.learn(update(n, 0, S::Alive), t);
        }
        let at = t + MembershipConfig::default().sync_interval;
        a.tick(at);
        a.outbox
            .retain(|o| matches!(o.message, Message::MemberSync(_)));
        b.drain_outbox();
        let phases: Vec<SyncPhase> = sync_between(&mut a, &mut b, at)
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(phases, want, "{name}");
        assert_eq!(a.view_digest(), b.view_digest(), "{name}: views agree");
        assert_eq!(a.members.len(), 1 + only_a.len() + only_b.len(), "{name}");
    }
}

/// A suspicion travels by sync like by piggyback, and the suspect refutes it; a member first learned
/// by sync is not re-gossiped, a state change is.
#[test]
fn sync_applies_swim_precedence_and_gossips_only_changes() {
    let t = Instant::now();
    let mut a = node("a", &[], t);
    a.learn(update("b", 0, S::Alive), t);
    a.learn(update("old", 0, S::Alive), t);
    let view = |members: Vec<MemberUpdate>| {
        Message::MemberSync(MemberSync {
            digest: 0,
            phase: SyncPhase::Close,
            more: false,
            members,
        })
    };
    let msg = view(vec![
        update("b", 0, S::Alive),
        update("new", 0, S::Alive),
        update("old", 0, S::Suspect),
        update("a", 0, S::Suspect),
        update("ghost", 0, S::Dead),
    ]);
    assert!(a.handle(&"b".into(), &msg, t));
    assert_eq!(a.member("new").map(|m| m.state), Some(S::Alive));
    assert_eq!(a.member("old").map(|m| m.state), Some(S::Suspect));
    assert!(a.member("ghost").is_none(), "no resurrection from hearsay");
    assert_eq!(a.me().incarnation, 1, "refuted");
    assert!(
        !a.gossip.contains_key("new"),
        "joined by sync: not re-gossiped"
    );
    assert!(a.gossip.contains_key("old"), "suspicion: gossiped");
    assert!(a.drain_outbox().is_empty(), "Close is never answered");
}

/// A large view goes out in several chunks, each within the frame, each led by the sender's own record,
/// only the last without `more`; together they carry every member, dead ones included.
#[test]
fn sync_views_are_chunked_to_fit_a_frame() {
    let t = Instant::now();
    let mut a = node("a", &[], t);
    let long = "n".repeat(200);
    for i in 0..1500 {
        a.learn(update(&format!("{long}-{i}"), 0, S::Alive), t);
    }
    a.learn(update(&format!("{long}-0"), 0, S::Dead), t);
    let offer = Message::MemberSync(MemberSync {
        digest: 0,
        phase: SyncPhase::Offer,
        more: false,
        members: vec![update("b", 0, S::Alive)],
    });
    a.handle(&"b".into(), &offer, t);
    let out = a.drain_outbox();
    let chunks: Vec<&MemberSync> = out
        .iter()
        .filter_map(|o| match &o.message {
            Message::MemberSync(s) => Some(s),
            _ => None,
        })
        .collect();
    assert!(chunks.len() > 5, "{} chunks", chunks.len());
    let mut carried = BTreeSet::new();
    for (i, c) in chunks.iter().enumerate() {
        assert_eq!(c.phase, SyncPhase::Answer);
        assert_eq!(c.more, i + 1 < chunks.len());
        assert_eq!(c.members[0].node, "a");
        assert_eq!(c.digest, a.view_digest());
        let bytes = switchyard_protocol::encode(&Message::MemberSync((*c).clone()))
            .expect("every chunk fits a frame");
        assert!(bytes.len() <= switchyard_protocol::MAX_FRAME);
        carried.extend(c.members.iter().map(|u| u.node.clone()));
    }
    assert_eq!(carried.len(), 1 + 1500 + 1, "a, every member, b");
}

/// The digest depends on the live view only, not on the order it was learned in nor on dead members.
#[test]
fn view_digest_is_order_independent_and_ignores_the_dead() {
    let t = Instant::now();
    let mut a = node("me", &[], t);
    let mut b = node("me", &[], t);
    for i in 0..20 {
        a.learn(update(&format!("m{i}"), i, S::Alive), t);
        b.learn(update(&format!("m{}", 19 - i), 19 - i, S::Alive), t);
    }
    assert_eq!(a.view_digest(), b.view_digest());
    b.learn(update("gone", 0, S::Alive), t);
    assert_ne!(a.view_digest(), b.view_digest());
    b.learn(update("gone", 0, S::Dead), t);
    assert_eq!(
        a.view_digest(),
        b.view_digest(),
        "dead members do not count"
    );
    a.learn(update("m3", 3, S::Suspect), t);
    a.learn(update("m4", 9, S::Alive), t);
    assert_eq!(
        a.view_digest(),
        b.view_digest(),
        "suspicions and incarnations are SWIM's to settle"
    );
    let mut restarted = update("m5", 0, S::Alive);
    restarted.generation = 2;
    a.learn(restarted, t);
    assert_ne!(a.view_digest(), b.view_digest(), "a restart does count");
}

/// While views differ both sides offer again after sync_busy_interval; an offer that meets an equal view
/// leaves the pace at sync_interval.
#[test]
fn sync_pace_is_fast_while_views_differ() {
    let t = Instant::now();
    let cfg = MembershipConfig::default();
    let mut a = node("a", &[], t);
    let mut b = node("b", &[], t);
    a.learn(update("b", 0, S::Alive), t);
    b.learn(update("a", 0, S::Alive), t);
    b.learn(update("x", 0, S::Alive), t);
    let at = t + cfg.sync_interval;
    a.tick(at);
    b.tick(at);
    b.drain_outbox();
    sync_between(&mut a, &mut b, at);
    assert_eq!(a.next_sync, at + cfg.sync_busy_interval, "a learned x");
    assert_eq!(b.next_sync, at + cfg.sync_busy_interval, "b answered");
    let again = at + cfg.sync_busy_interval;
    a.tick(again);
    let phases = sync_between(&mut a, &mut b, again);
    assert_eq!(phases.len(), 1, "equal views: the offer only");
    assert_eq!(
        a.next_sync,
        again + cfg.sync_interval,
        "back to the slow pace"
    );
}

fn rec(addr: &str, generation: u64, inc: u64, state: S) -> MemberUpdate {
    MemberUpdate {
        node: "n2".into(),
        addr: addr.into(),
        incarnation: inc,
        state,
        generation,
    }
}

#[test]
fn claim_rule_table() {
    // (name, held, claim, direct, verdict)
    let rows = [
        (
            "older generation",
            rec("a", 2, 0, S::Alive),
            rec("b", 1, 9, S::Alive),
            true,
            Claim::Stale,
        ),
        (
            "same record",
            rec("a", 2, 0, S::Alive),
            rec("a", 2, 0, S::Alive),
            false,
            Claim::Stale,
        ),
        (
            "suspicion, same address",
            rec("a", 2, 0, S::Alive),
            rec("a", 2, 0, S::Suspect),
            false,
            Claim::Apply,
        ),
        (
            "restart in place, hearsay",
            rec("a", 1, 5, S::Alive),
            rec("a", 2, 0, S::Alive),
            false,
            Claim::Apply,
        ),
        (
            "restart elsewhere, from itself",
            rec("a", 1, 0, S::Alive),
            rec("b", 2, 0, S::Alive),
            true,
            Claim::Apply,
        ),
        (
            "restart elsewhere, hearsay, held alive",
            rec("a", 1, 0, S::Alive),
            rec("b", 2, 0, S::Alive),
            false,
            Claim::Deferred,
        ),
        (
            "restart elsewhere, hearsay, held suspect",
            rec("a", 1, 0, S::Suspect),
            rec("b", 2, 0, S::Alive),
            false,
            Claim::Apply,
        ),
        (
            "restart elsewhere, hearsay, held dead",
            rec("a", 1, 0, S::Dead),
            rec("b", 2, 0, S::Alive),
            false,
            Claim::Apply,
        ),
        (
            "restart elsewhere, hearsay, held left",
            rec("a", 1, 0, S::Left),
            rec("b", 2, 0, S::Alive),
            false,
            Claim::Apply,
        ),
        (
            "same generation elsewhere, from itself",
            rec("a", 2, 0, S::Alive),
            rec("b", 2, 1, S::Alive),
            true,
            Claim::Conflict,
        ),
        (
            "same generation elsewhere, hearsay",
            rec("a", 2, 0, S::Suspect),
            rec("b", 2, 0, S::Dead),
            false,
            Claim::Conflict,
        ),
    ];
    for (name, held, claim, direct, want) in rows {
        assert_eq!(judge_claim(&held, &claim, direct), want, "{name}");
    }
}

#[test]
fn impostor_rule_table() {
    let me = rec("a", 2, 3, S::Alive);
    // (name, record about this node, impostor)
    let rows = [
        ("my own record", rec("a", 2, 3, S::Alive), false),
        (
            "a suspicion of me (refuted, not an impostor)",
            rec("a", 2, 3, S::Suspect),
            false,
        ),
        ("my previous life", rec("z", 1, 9, S::Alive), false),
        ("my previous life, dead", rec("z", 1, 9, S::Dead), false),
        ("a later generation", rec("b", 3, 0, S::Alive), true),
        (
            "a later generation at my address",
            rec("a", 3, 0, S::Alive),
            true,
        ),
        (
            "a later generation, already dead",
            rec("b", 3, 0, S::Dead),
            false,
        ),
        ("my generation elsewhere", rec("b", 2, 0, S::Alive), true),
        (
            "my generation elsewhere, suspected",
            rec("b", 2, 0, S::Suspect),
            true,
        ),
    ];
    for (name, claim, want) in rows {
        assert_eq!(is_impostor(&me, &claim), want, "{name}");
    }
}

#[test]
fn hearsay_cannot_move_a_live_member_but_the_member_itself_can() {
    let t = Instant::now();
    let mut m = node("n1", &[], t);
    m.learn(rec("n2:7946", 1, 0, S::Alive), t);
    m.learn(update("n3", 0, S::Alive), t);
    m.drain_events();
    // n3 reports n2 restarted at another address (twice: gossip retransmits): held back, reported once.
    let moved = rec("copy:7946", 2, 0, S::Alive);
    for _ in 0..2 {
        m.handle(&"n3".to_string(), &ping(vec![moved.clone()]), t);
    }
    assert_eq!(m.member("n2").expect("n2 is a member").addr, "n2:7946");
    let refused: Vec<_> = m
        .drain_events()
        .into_iter()
        .filter(|e| matches!(e, MembershipEvent::ClaimRefused { .. }))
        .collect();
    assert_eq!(
        refused,
        [MembershipEvent::ClaimRefused {
            node: "n2".into(),
            addr: "copy:7946".into(),
            generation: 2,
            claim: Claim::Deferred,
        }]
    );
    // The new process speaks for itself: taken (a real restart from another address).
    m.handle(&"n2".to_string(), &ping(vec![moved.clone()]), t);
    let n2 = m.member("n2").expect("n2 is a member");
    assert_eq!((n2.addr.as_str(), n2.generation), ("copy:7946", 2));
    // Hearsay of the same generation at a third address is a conflict, never taken.
    m.handle(
        &"n3".to_string(),
        &ping(vec![rec("third:7946", 2, 5, S::Alive)]),
        t,
    );
    assert_eq!(m.member("n2").expect("n2 is a member").addr, "copy:7946");
    assert!(m.drain_events().iter().any(|e| matches!(
        e,
        MembershipEvent::ClaimRefused {
            claim: Claim::Conflict,
            ..
        }
    )));
}

#[test]
fn a_record_of_this_node_from_another_process_is_reported_not_taken() {
    let t = Instant::now();
    let mut m = node("n1", &[], t);
    m.learn(update("n2", 0, S::Alive), t);
    m.drain_events();
    let copy = MemberUpdate {
        node: "n1".into(),
        addr: "elsewhere:7946".into(),
        incarnation: 0,
        state: S::Alive,
        generation: 9,
    };
    for _ in 0..3 {
        m.handle(&"n2".to_string(), &ping(vec![copy.clone()]), t);
    }
    let conflicts: Vec<_> = m
        .drain_events()
        .into_iter()
        .filter(|e| matches!(e, MembershipEvent::IdentityConflict { .. }))
        .collect();
    assert_eq!(
        conflicts,
        [MembershipEvent::IdentityConflict {
            node: "n1".into(),
            addr: "elsewhere:7946".into(),
            generation: 9,
        }]
    );
    assert_eq!(m.me().generation, 1);
    assert_eq!(m.me().addr, "n1:7946");
}
