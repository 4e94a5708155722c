//! What the request path reads about a backend host's health: one atomic flag per host, no locks.
//!
//! The BackendHealth actor is the only writer; connection tasks only load the flag (DESIGN §1: the request
//! path never waits on a mailbox to learn health). `EjectionGroup` is the shared budget behind
//! `maxEjectionPercent`: hosts of one route rule reserve a slot atomically before ejecting, so two hosts
//! failing at the same instant cannot both take the last slot.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};

use crate::health::outlier::ejection_allowed;

/// The lock-free health of one backend host: the local verdict (its BackendHealth actor) and the cluster's
/// (the Gossip actor), each written by one actor only. The request path treats the host as ejected when
/// either says so (DESIGN §6: every node routes away once any node's ejection is adopted).
#[derive(Debug, Default)]
pub struct HostHealth {
    local: AtomicBool,
    cluster: AtomicBool,
    cluster_count: AtomicU32,
    /// Every consecutive-failure counter of the host's detector is 0 (or it has none): a success would
    /// change nothing, so the request path need not report it (DESIGN §1: no mailbox in the common case).
    quiet: AtomicBool,
}

impl HostHealth {
    /// True while the host is ejected, locally or by the cluster view.
    pub fn is_ejected(&self) -> bool {
        self.local.load(Ordering::Acquire) || self.cluster.load(Ordering::Acquire)
    }

    /// True while this node's own detector (or active check) ejects it.
    pub fn is_locally_ejected(&self) -> bool {
        self.local.load(Ordering::Acquire)
    }

    /// True while the cluster view ejects it on this node.
    pub fn is_cluster_ejected(&self) -> bool {
        self.cluster.load(Ordering::Acquire)
    }

    /// The cluster's ejection count for this host (0 without a cluster).
    pub fn cluster_ejection_count(&self) -> u32 {
        self.cluster_count.load(Ordering::Acquire)
    }

    /// True when reporting a success would change nothing: the detector's consecutive counters are all 0.
    pub fn success_is_noop(&self) -> bool {
        self.quiet.load(Ordering::Acquire)
    }

    pub(crate) fn set_quiet(&self, quiet: bool) {
        self.quiet.store(quiet, Ordering::Release);
    }

    pub(crate) fn set_local_ejected(&self, ejected: bool) {
        self.local.store(ejected, Ordering::Release);
    }

    /// Publishes the cluster's verdict; returns true when the ejected bit changed.
    pub(crate) fn set_cluster(&self, ejected: bool, count: u32) -> bool {
        self.cluster_count.store(count, Ordering::Release);
        self.cluster.swap(ejected, Ordering::AcqRel) != ejected
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
