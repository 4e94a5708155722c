//! What the request path reads about a backend host's health: one atomic flag per host, no locks.
//!
//! The BackendHealth actor is the only writer; connection tasks only load the flag (DESIGN §1: the request
//! path never waits on a mailbox to learn health). `EjectionGroup` is the shared budget behind
//! `maxEjectionPercent`: hosts of one route rule reserve a slot atomically before ejecting, so two hosts
//! failing at the same instant cannot both take the last slot.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use crate::health::outlier::ejection_allowed;

/// The lock-free health of one backend host, written by its BackendHealth actor only: a gate (open,
/// closed, or open for exactly one trial request) and whether a success would change anything.
#[derive(Debug, Default)]
pub struct HostHealth {
    gate: AtomicU8,
    /// Whether the gate is closed because of the cluster's verdict (for `/status`).
    cluster: AtomicBool,
    /// Every consecutive-failure counter of the host's detector is 0 (or it has none) and the host is in
    /// service: a success would change nothing, so the request path need not report it (DESIGN §1: no
    /// mailbox in the common case).
    quiet: AtomicBool,
    /// End of the host's rate-limit cooldown in microseconds after [`EPOCH`] (0: none). Written by the
    /// request path that met the 429 (so this node stops at once) and by the host's actor for the
    /// cluster's cooldowns; read only by routes that switch the extension on.
    cool_until: AtomicU64,
}

/// The origin of [`HostHealth`]'s cooldown instants: one atomic word holds an `Instant`.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

fn micros_since_epoch(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(*EPOCH).as_micros())
        .unwrap_or(u64::MAX)
        .max(1)
}

const OPEN: u8 = 0;
const CLOSED: u8 = 1;
/// Held out, but this node runs the trial and no request has taken it yet.
const TRIAL_OPEN: u8 = 2;
/// Held out; the one trial request has been sent.
const TRIAL_TAKEN: u8 = 3;

impl HostHealth {
    /// True while the host is held out (ejected, or at a trial): selection does not count it as healthy.
    pub fn is_ejected(&self) -> bool {
        self.gate.load(Ordering::Acquire) != OPEN
    }

    /// True while the host waits for its one trial request, which this node sends.
    pub fn trial_open(&self) -> bool {
        self.gate.load(Ordering::Acquire) == TRIAL_OPEN
    }

    /// Takes the trial: true for exactly one caller per trial (DESIGN §6 "Single trial").
    pub fn try_take_trial(&self) -> bool {
        self.gate
            .compare_exchange(TRIAL_OPEN, TRIAL_TAKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// True once the trial request has been sent and its outcome not yet judged.
    pub fn trial_taken(&self) -> bool {
        self.gate.load(Ordering::Acquire) == TRIAL_TAKEN
    }

    /// True while the cluster's verdict holds the host out on this node.
    pub fn is_cluster_ejected(&self) -> bool {
        self.cluster.load(Ordering::Acquire)
    }

    /// True when reporting a success would change nothing.
    pub fn success_is_noop(&self) -> bool {
        self.quiet.load(Ordering::Acquire)
    }

    /// Extends the rate-limit cooldown to `until` (never shortens it). Returns whether it grew.
    pub fn cool_until(&self, until: Instant) -> bool {
        let t = micros_since_epoch(until);
        self.cool_until.fetch_max(t, Ordering::AcqRel) < t
    }

    /// How long the host still cools at `now` (`None`: not cooling).
    pub fn cooling_left(&self, now: Instant) -> Option<Duration> {
        let until = self.cool_until.load(Ordering::Acquire);
        let now = micros_since_epoch(now);
        (until > now).then(|| Duration::from_micros(until - now))
    }

    pub(crate) fn set_quiet(&self, quiet: bool) {
        self.quiet.store(quiet, Ordering::Release);
    }

    /// Publishes the gate: `held` closes it, `trial` opens it for one request (keeping a trial already
    /// taken as taken). Returns whether the host went in or out of service.
    pub(crate) fn set_gate(&self, held: bool, trial: bool, by_cluster: bool) -> bool {
        self.cluster.store(held && by_cluster, Ordering::Release);
        let want = match (held, trial) {
            (false, _) => OPEN,
            (true, false) => CLOSED,
            (true, true) => TRIAL_OPEN,
        };
        let old = self
            .gate
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |cur| {
                if want == TRIAL_OPEN && cur == TRIAL_TAKEN {
                    None
                } else {
                    Some(want)
                }
            })
            .unwrap_or(TRIAL_TAKEN);
        (old == OPEN) != (want == OPEN)
    }
}

/// The hosts of one route rule, counted for `maxEjectionPercent` (DESIGN §5: over all priorities).
#[derive(Debug)]
pub struct EjectionGroup {
    total: usize,
    ejected: AtomicUsize,
    max_ejection_percent: u32,
    always_eject_one_endpoint: bool,
}

impl EjectionGroup {
    /// A group of `total` hosts of which `already_ejected` are ejected now (kept across reloads).
    pub fn new(
        total: usize,
        already_ejected: usize,
        max_ejection_percent: u32,
        always_eject_one_endpoint: bool,
    ) -> Self {
        EjectionGroup {
            total,
            ejected: AtomicUsize::new(already_ejected),
            max_ejection_percent,
            always_eject_one_endpoint,
        }
    }

    /// Takes one ejection slot if the budget allows it (Envoy: `100 * (ejected + 1) / total <= max`).
    pub fn try_reserve(&self) -> bool {
        self.ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                ejection_allowed(
                    n,
                    self.total,
                    self.max_ejection_percent,
                    self.always_eject_one_endpoint,
                )
                .then_some(n + 1)
            })
            .is_ok()
    }

    /// Takes a slot whatever the budget says: the cluster's deterministic choice (`cluster::apply`) already
    /// rationed the ejections it hands down, and local ejections must see them.
    pub fn force_reserve(&self) {
        self.ejected.fetch_add(1, Ordering::AcqRel);
    }

    /// Gives a slot back when a host returns.
    pub fn release(&self) {
        let _ = self
            .ejected
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Hosts ejected in this group now.
    pub fn ejected(&self) -> usize {
        self.ejected.load(Ordering::Acquire)
    }

    /// Hosts in this group.
    pub fn total(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cooldown_only_grows_and_ends_at_its_instant() {
        let h = HostHealth::default();
        let t0 = Instant::now();
        assert_eq!(h.cooling_left(t0), None);
        assert!(h.cool_until(t0 + Duration::from_secs(5)));
        assert!(
            !h.cool_until(t0 + Duration::from_secs(2)),
            "a shorter one changes nothing"
        );
        assert_eq!(
            h.cooling_left(t0 + Duration::from_secs(1)),
            Some(Duration::from_secs(4))
        );
        assert!(h.cool_until(t0 + Duration::from_secs(6)));
        assert_eq!(h.cooling_left(t0 + Duration::from_secs(6)), None);
        assert!(!h.is_ejected(), "a cooldown is not an ejection");
    }

    #[test]
    fn exactly_one_caller_takes_a_trial() {
        let h = HostHealth::default();
        assert!(!h.is_ejected());
        assert!(h.set_gate(true, true, false), "out of service");
        assert!(
            h.is_ejected(),
            "a trial host counts as ejected for the load"
        );
        assert!(h.trial_open());
        assert!(h.try_take_trial());
        assert!(!h.try_take_trial());
        assert!(h.trial_taken());
        assert!(!h.set_gate(true, true, false));
        assert!(h.trial_taken(), "re-publishing the trial keeps it taken");
        assert!(h.set_gate(false, false, false));
        assert!(!h.is_ejected());
    }

    #[test]
    fn max_ejection_percent_50_of_two_allows_only_one() {
        let g = EjectionGroup::new(2, 0, 50, false);
        assert!(g.try_reserve());
        assert!(!g.try_reserve());
        g.release();
        assert!(g.try_reserve());
    }

    #[test]
    fn always_eject_one_overrides_a_zero_budget_once() {
        let g = EjectionGroup::new(4, 0, 0, true);
        assert!(g.try_reserve());
        assert!(!g.try_reserve());
    }

    #[test]
    fn release_never_underflows() {
        let g = EjectionGroup::new(1, 0, 100, false);
        g.release();
        assert_eq!(g.ejected(), 0);
    }
}
