//! Which adopted cluster ejections a node applies: `maxEjectionPercent` over the combined view (DESIGN §6:
//! "maxEjectionPercent and panic apply to the combined view, deterministically"). Pure.
//!
//! Local ejections already respect the budget (their slots are reserved when they happen), so only the
//! cluster's additions are rationed: within each route rule, adopted hosts not ejected locally are added in
//! host-key order while `ejection_allowed` still holds. A host serving several rules is applied only when
//! every one of them has room. Same inputs give the same set on every node; panic then follows from the
//! resulting health, as for local ejections.

use std::collections::{BTreeSet, HashMap, HashSet};

use crate::health::outlier::ejection_allowed;
pub use crate::health::table::RuleGroup;

/// The cluster ejections to apply: a subset of `adopted`, never a host that is ejected locally (it is
/// ejected anyway).
pub fn applied_cluster_ejections(
    groups: &[RuleGroup],
    locally_ejected: &HashSet<String>,
    adopted: &BTreeSet<String>,
) -> BTreeSet<String> {
    // Per host: allowed by every rule it is in (hosts in no rule are not routed to; apply them as is).
    let mut verdict: HashMap<&str, bool> = adopted
        .iter()
        .filter(|h| !locally_ejected.contains(*h))
        .map(|h| (h.as_str(), true))
        .collect();
    for g in groups {
        let total = g.hosts.len();
        let mut ejected = g
            .hosts
            .iter()
            .filter(|h| locally_ejected.contains(*h))
            .count();
        let candidates: Vec<&String> = g
            .hosts
            .iter()
            .filter(|h| verdict.contains_key(h.as_str()))
            .collect();
        for h in candidates {
            if ejection_allowed(
                ejected,
                total,
                g.max_ejection_percent,
                g.always_eject_one_endpoint,
            ) {
                ejected += 1;
            } else if let Some(v) = verdict.get_mut(h.as_str()) {
                *v = false;
            }
        }
    }
    verdict
        .into_iter()
        .filter(|(_, ok)| *ok)
        .map(|(h, _)| h.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn group(hosts: &[&str], max: u32) -> RuleGroup {
        RuleGroup {
            hosts: set(hosts),
            max_ejection_percent: max,
            always_eject_one_endpoint: false,
        }
    }

    /// (name, rule groups, locally ejected, adopted, applied).
    type Row<'a> = (
        &'a str,
        Vec<RuleGroup>,
        &'a [&'a str],
        &'a [&'a str],
        &'a [&'a str],
    );

    #[test]
    fn table() {
        let rows: Vec<Row<'_>> = vec![
            (
                "100% applies every adopted host",
                vec![group(&["a", "b"], 100)],
                &[],
                &["a", "b"],
                &["a", "b"],
            ),
            (
                "50% of two applies one, the first by key",
                vec![group(&["a", "b"], 50)],
                &[],
                &["b", "a"],
                &["a"],
            ),
            (
                "a local ejection uses the budget first",
                vec![group(&["a", "b"], 50)],
                &["b"],
                &["a"],
                &[],
            ),
            (
                "locally ejected hosts are not re-applied",
                vec![group(&["a", "b"], 100)],
                &["a"],
                &["a"],
                &[],
            ),
            (
                "a host in two rules needs room in both",
                vec![group(&["a", "b"], 100), group(&["a", "c"], 0)],
                &[],
                &["a"],
                &[],
            ),
            (
                "hosts outside every rule apply as adopted",
                vec![],
                &[],
                &["z"],
                &["z"],
            ),
        ];
        for (name, groups, local, adopted, want) in rows {
            let local: HashSet<String> = local.iter().map(|s| s.to_string()).collect();
            let got = applied_cluster_ejections(&groups, &local, &set(adopted));
            assert_eq!(got, set(want), "{name}");
        }
    }

    #[test]
    fn always_eject_one_applies_one_even_at_zero_percent() {
        let g = RuleGroup {
            hosts: set(&["a", "b", "c"]),
            max_ejection_percent: 0,
            always_eject_one_endpoint: true,
        };
        let got = applied_cluster_ejections(&[g], &HashSet::new(), &set(&["c", "b"]));
        assert_eq!(got, set(&["b"]));
    }
}
