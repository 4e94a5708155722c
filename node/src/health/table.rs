//! The hosts the gateway runs now, as data the cluster side reads (aesthetics review §5.1): published by
//! the gateway once per (re)load, read by the Gossip actor to hand verdicts to hosts and ration them by
//! each rule's `maxEjectionPercent`. Gossip never reaches into the gateway for them.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::health::registry::HostEntry;

/// One route rule's hosts and its ejection budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleGroup {
    /// Distinct host keys of the rule.
    pub hosts: BTreeSet<String>,
    /// `maxEjectionPercent` (100 when the route has no passive health block).
    pub max_ejection_percent: u32,
    /// `alwaysEjectOneEndpoint`.
    pub always_eject_one_endpoint: bool,
}

/// Every host of the running config.
#[derive(Default)]
pub struct HostTable {
    /// Every host, in key order.
    pub hosts: Vec<Arc<HostEntry>>,
    /// Every rule's hosts and budget.
    pub groups: Vec<RuleGroup>,
    /// Hash of the routing config (carried in Hello and in the node's cluster state).
    pub config_hash: u64,
}

/// Shared handle to the current [`HostTable`].
pub type HostTableHandle = Arc<ArcSwap<HostTable>>;
