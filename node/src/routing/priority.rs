//! Priority load with overprovisioning and panic (Envoy semantics). Pure.
//!
//! This module exists so that the split of traffic between priority levels is computed exactly as Envoy's
//! `LoadBalancerBase::recalculatePerPriorityState`, `recalculatePerPriorityPanic` and
//! `recalculateLoadInTotalPanic` compute it (DESIGN §4), with the same integer arithmetic, so that a
//! Switchyard route fails over at the same health percentages an Envoy AI Gateway route would. It knows
//! nothing of hosts, weights or randomness: the caller counts healthy and total hosts per level and supplies
//! the roll; `routing::select` does both.
//!
//! Per-level values live in [`PerLevel`], inline up to four levels, because this runs for every attempt and
//! routes rarely have more levels than that.

use smallvec::SmallVec;

/// Per-priority-level values: inline for up to four levels (no allocation on the request path), spilling to
/// the heap beyond.
pub type PerLevel<T> = SmallVec<[T; 4]>;

/// Envoy's default overprovisioning factor (1.4), as Envoy stores it: an integer percentage.
pub const OVERPROVISIONING_FACTOR: u64 = 140;

/// One priority level as the load computation sees it.
///
/// Only hosts with weight > 0 are counted: a weight-0 backend is never chosen, so it must neither make a level
/// look healthier nor take a share of the panic load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PriorityLevel {
    /// Hosts at this level that are currently healthy (not ejected).
    pub healthy: u32,
    /// All hosts at this level.
    pub total: u32,
}

impl PriorityLevel {
    /// The level's health in percent: `min(100, 140 * healthy / total)`, 0 for an empty level.
    ///
    /// Envoy: "Each priority level's health is ratio of healthy hosts to total number of hosts in a priority
    /// multiplied by overprovisioning factor of 1.4 and capped at 100%." Integer division, as in Envoy.
    pub fn health(&self) -> u32 {
        if self.total == 0 {
            return 0;
        }
        let h = OVERPROVISIONING_FACTOR * u64::from(self.healthy) / u64::from(self.total);
        // Capped at 100, so the narrowing cannot lose anything.
        h.min(100) as u32
    }

    /// Whether this level, on its own, is below the panic threshold.
    ///
    /// Envoy's `isHostSetInPanic` compares the real-valued `100.0 * healthy / total` against the integer
    /// threshold; `100 * healthy < threshold * total` is the same comparison without floating point. An empty
    /// level counts as 0 % healthy, so it is in panic whenever the threshold is above 0.
    fn below_panic_threshold(&self, panic_threshold: u32) -> bool {
        if self.total == 0 {
            return panic_threshold > 0;
        }
        100 * u64::from(self.healthy) < u64::from(panic_threshold) * u64::from(self.total)
    }
}

/// The share of traffic each priority level receives, and which levels are in panic.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PriorityLoad {
    /// Percentage of traffic per level, index = level (0 = most preferred). Sums to 100, or to 0 when
    /// nothing can be routed (panic disabled and no healthy host anywhere).
    pub loads: PerLevel<u32>,
    /// Per level: in panic, i.e. choose among *all* its hosts regardless of health.
    pub panic: PerLevel<bool>,
    /// Every level is in panic: `loads` were distributed by host count, not by health.
    pub total_panic: bool,
}

impl PriorityLoad {
    /// The level a roll in `0..100` lands on, walking the cumulative loads; `None` when every load is 0.
    ///
    /// Envoy's `choosePriority` maps its hash to `1..=100` and takes the first level whose cumulative load is
    /// `>=` it; a roll `r` in `0..100` with `r < cumulative` is the same test. Larger rolls are reduced modulo
    /// 100, as Envoy reduces its hash.
    pub fn pick(&self, roll: u32) -> Option<usize> {
        let roll = roll % 100;
        let mut cumulative = 0u32;
        for (level, load) in self.loads.iter().enumerate() {
            cumulative = cumulative.saturating_add(*load);
            if roll < cumulative {
                return Some(level);
            }
        }
        None
    }
}

/// `min(100, Σ health)`: Envoy's "normalized total availability".
pub fn normalized_total_health(healths: &[u32]) -> u32 {
    healths
        .iter()
        .fold(0u32, |acc, h| acc.saturating_add(*h))
        .min(100)
}

/// Distributes 100 % over levels by health, as Envoy's `distributeLoad` followed by its rounding fix-up.
///
/// Level by level, `load = min(remaining, health * 100 / nth)`; whatever integer division left over goes to
/// the first level with non-zero health ("Anything that remains should just be rounding errors, so allocate
/// that to the first available priority"). Callers guarantee `nth > 0`; with `nth == 0` every load is 0.
pub fn distribute_by_health(healths: &[u32], nth: u32) -> PerLevel<u32> {
    let mut loads: PerLevel<u32> = smallvec::smallvec![0u32; healths.len()];
    if nth == 0 {
        return loads;
    }
    let mut remaining = 100u32;
    let mut first_healthy = None;
    for (i, h) in healths.iter().enumerate() {
        if first_healthy.is_none() && *h > 0 {
            first_healthy = Some(i);
        }
        let share = (u64::from(*h) * 100 / u64::from(nth)).min(u64::from(remaining)) as u32;
        loads[i] = share;
        remaining -= share;
    }
    if remaining > 0 {
        if let Some(first) = first_healthy {
            loads[first] += remaining;
        }
    }
    loads
}

/// Envoy's `recalculateLoadInTotalPanic`: every level is in panic, so traffic follows host count regardless of
/// health (`100 * hosts / all hosts`), the rounding remainder going to the first non-empty level.
fn distribute_by_host_count(levels: &[PriorityLevel]) -> PerLevel<u32> {
    let mut loads: PerLevel<u32> = smallvec::smallvec![0u32; levels.len()];
    let total: u64 = levels.iter().map(|l| u64::from(l.total)).sum();
    if total == 0 {
        // Envoy gives P0 100 % here, but P0 has no host, so nothing is routable; all-zero says so directly.
        return loads;
    }
    let mut remaining = 100u32;
    let mut first_nonempty = None;
    for (i, level) in levels.iter().enumerate() {
        if first_nonempty.is_none() && level.total > 0 {
            first_nonempty = Some(i);
        }
        let share = (100 * u64::from(level.total) / total) as u32;
        loads[i] = share;
        remaining -= share;
    }
    if let Some(first) = first_nonempty {
        loads[first] += remaining;
    }
    loads
}

/// Computes the per-level load and panic state for `levels` (index 0 = most preferred).
///
/// `panic_threshold` is a percentage (values above 100 act as 100, as in Envoy). Following Envoy:
/// - health and load per level by [`PriorityLevel::health`] and [`distribute_by_health`];
/// - a level is in panic only when the normalized total health is below 100 *and* its own healthy share is
///   below the threshold (a healthy fallback means no panic, however bad one level is);
/// - when every level is in panic (which includes "no healthy host anywhere" with a threshold above 0) the
///   cluster is in total panic and load follows host count;
/// - with threshold 0 panic is off: with no healthy host anywhere every load is 0 and [`PriorityLoad::pick`]
///   returns `None`, which the proxy answers with 503 "no healthy upstream". (Envoy puts a nominal 100 % on P0
///   in that case and then finds no healthy host there; the outcome is the same.)
pub fn compute(levels: &[PriorityLevel], panic_threshold: u32) -> PriorityLoad {
    if levels.is_empty() {
        return PriorityLoad::default();
    }
    let panic_threshold = panic_threshold.min(100);
    let healths: PerLevel<u32> = levels.iter().map(PriorityLevel::health).collect();
    let nth = normalized_total_health(&healths);

    if panic_threshold == 0 && nth == 0 {
        return PriorityLoad {
            loads: smallvec::smallvec![0; levels.len()],
            panic: smallvec::smallvec![false; levels.len()],
            total_panic: false,
        };
    }

    let panic: PerLevel<bool> = levels
        .iter()
        .map(|l| nth < 100 && l.below_panic_threshold(panic_threshold))
        .collect();
    let total_panic = panic.iter().all(|p| *p);

    let loads = if total_panic {
        distribute_by_host_count(levels)
    } else {
        distribute_by_health(&healths, nth)
    };
    PriorityLoad {
        loads,
        panic,
        total_panic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(healthy: u32, total: u32) -> PriorityLevel {
        PriorityLevel { healthy, total }
    }

    struct Case {
        name: &'static str,
        levels: Vec<PriorityLevel>,
        threshold: u32,
        loads: Vec<u32>,
        panic: Vec<bool>,
        total_panic: bool,
    }

    #[test]
    fn compute_table() {
        let cases = vec![
            Case {
                name: "all_healthy_single_level_takes_everything",
                levels: vec![lv(3, 3)],
                threshold: 50,
                loads: vec![100],
                panic: vec![false],
                total_panic: false,
            },
            Case {
                name: "p0_keeps_100_at_18_of_25_healthy_72_percent",
                levels: vec![lv(18, 25), lv(5, 5)],
                threshold: 50,
                loads: vec![100, 0],
                panic: vec![false, false],
                total_panic: false,
            },
            Case {
                // health(P0) = 140*17/25 = 95, so P1 gets the 5 % left over.
                name: "p0_spills_at_17_of_25_healthy",
                levels: vec![lv(17, 25), lv(5, 5)],
                threshold: 50,
                loads: vec![95, 5],
                panic: vec![false, false],
                total_panic: false,
            },
            Case {
                name: "single_p0_host_ejected_with_healthy_p1",
                levels: vec![lv(0, 1), lv(1, 1)],
                threshold: 50,
                loads: vec![0, 100],
                panic: vec![false, false],
                total_panic: false,
            },
            Case {
                // NTH = 0 and threshold > 0: every level in panic, load by host count 1:3.
                name: "all_ejected_is_total_panic_by_host_count",
                levels: vec![lv(0, 1), lv(0, 3)],
                threshold: 50,
                loads: vec![25, 75],
                panic: vec![true, true],
                total_panic: true,
            },
            Case {
                // 100*1/3 = 33: remainder 1 to the first non-empty level.
                name: "total_panic_remainder_goes_to_first_nonempty_level",
                levels: vec![lv(0, 1), lv(0, 1), lv(0, 1)],
                threshold: 50,
                loads: vec![34, 33, 33],
                panic: vec![true, true, true],
                total_panic: true,
            },
            Case {
                name: "threshold_zero_with_nothing_healthy_routes_nowhere",
                levels: vec![lv(0, 2), lv(0, 1)],
                threshold: 0,
                loads: vec![0, 0],
                panic: vec![false, false],
                total_panic: false,
            },
            Case {
                // health 28, 28 -> NTH 56; both levels 1/5 = 20 % < 50: total panic, host count 5:5.
                name: "every_level_below_threshold_is_total_panic",
                levels: vec![lv(1, 5), lv(1, 5)],
                threshold: 50,
                loads: vec![50, 50],
                panic: vec![true, true],
                total_panic: true,
            },
            Case {
                // Same health, threshold 0: no panic, load by health 28/56 = 50 each.
                name: "threshold_zero_keeps_health_based_load",
                levels: vec![lv(1, 5), lv(1, 5)],
                threshold: 0,
                loads: vec![50, 50],
                panic: vec![false, false],
                total_panic: false,
            },
            Case {
                // health 28 (P0 in panic, 20 % < 50) and 100 (P1 fine): NTH = 100 so nobody panics.
                name: "no_panic_when_normalized_total_health_is_100",
                levels: vec![lv(1, 5), lv(2, 2)],
                threshold: 50,
                loads: vec![28, 72],
                panic: vec![false, false],
                total_panic: false,
            },
            Case {
                // health 28 and 56 -> NTH 84: P0 20 % < 50 panics, P1 40 % < 50 panics too -> total.
                name: "partial_health_both_below_threshold_total_panic",
                levels: vec![lv(1, 5), lv(2, 5)],
                threshold: 50,
                loads: vec![50, 50],
                panic: vec![true, true],
                total_panic: true,
            },
            Case {
                // health 28 and 84 (3/5 = 60 % >= 50) -> NTH 100: no panic, 28/72.
                name: "one_level_in_panic_other_not",
                levels: vec![lv(1, 5), lv(3, 5), lv(0, 1)],
                threshold: 70,
                loads: vec![28, 72, 0],
                panic: vec![false, false, false],
                total_panic: false,
            },
            Case {
                // health 14, 14, 14 -> NTH 42: 14*100/42 = 33 each, remainder 1 to P0.
                // Panic: 10 % < 5? no -> not in panic.
                name: "three_priorities_rounding_remainder_to_first_healthy",
                levels: vec![lv(1, 10), lv(1, 10), lv(1, 10)],
                threshold: 5,
                loads: vec![34, 33, 33],
                panic: vec![false, false, false],
                total_panic: false,
            },
            Case {
                // health 0, 14, 14 -> NTH 28: 0, 50, 50.
                name: "remainder_skips_levels_without_health",
                levels: vec![lv(0, 3), lv(1, 10), lv(1, 10)],
                threshold: 5,
                loads: vec![0, 50, 50],
                panic: vec![true, false, false],
                total_panic: false,
            },
            Case {
                // health 0, 14, 28, 14 -> NTH 56: 0, 25, 50, 25.
                name: "four_levels_health_proportional",
                levels: vec![lv(0, 3), lv(1, 10), lv(2, 10), lv(1, 10)],
                threshold: 0,
                loads: vec![0, 25, 50, 25],
                panic: vec![false, false, false, false],
                total_panic: false,
            },
            Case {
                // health 0, 14, 14, 14 -> NTH 42: 33 each from P1, remainder 1 to P1.
                name: "remainder_goes_to_first_level_with_health_not_p0",
                levels: vec![lv(0, 3), lv(1, 10), lv(1, 10), lv(1, 10)],
                threshold: 0,
                loads: vec![0, 34, 33, 33],
                panic: vec![false, false, false, false],
                total_panic: false,
            },
            Case {
                // health 70 + 70 = 140 -> NTH 100: P0 70, P1 min(30, 70) = 30, P2 0.
                name: "three_priorities_overflow_capped_by_remaining",
                levels: vec![lv(1, 2), lv(1, 2), lv(1, 1)],
                threshold: 50,
                loads: vec![70, 30, 0],
                panic: vec![false, false, false],
                total_panic: false,
            },
            Case {
                name: "threshold_above_100_acts_as_100",
                levels: vec![lv(0, 1), lv(0, 1)],
                threshold: 250,
                loads: vec![50, 50],
                panic: vec![true, true],
                total_panic: true,
            },
            Case {
                name: "no_levels_no_load",
                levels: vec![],
                threshold: 50,
                loads: vec![],
                panic: vec![],
                total_panic: false,
            },
        ];
        for c in cases {
            let got = compute(&c.levels, c.threshold);
            assert_eq!(got.loads.as_slice(), c.loads, "{}: loads", c.name);
            assert_eq!(got.panic.as_slice(), c.panic, "{}: panic", c.name);
            assert_eq!(got.total_panic, c.total_panic, "{}: total_panic", c.name);
            let sum: u32 = got.loads.iter().sum();
            assert!(sum == 100 || sum == 0, "{}: loads sum {sum}", c.name);
        }
    }

    #[test]
    fn p0_keeps_100_down_to_72_percent_healthy() {
        // Envoy's documented rule of thumb, checked for every healthy count of a 25-host level.
        for healthy in 0..=25 {
            let got = compute(&[lv(healthy, 25), lv(1, 1)], 50);
            let p0 = got.loads[0];
            if 100 * healthy >= 72 * 25 {
                assert_eq!(p0, 100, "{healthy}/25 healthy");
            } else {
                assert!(p0 < 100, "{healthy}/25 healthy");
            }
        }
    }

    #[test]
    fn health_table() {
        let cases = [
            ("empty_level_has_no_health", lv(0, 0), 0),
            ("all_healthy_capped_at_100", lv(4, 4), 100),
            ("half_healthy_is_70", lv(1, 2), 70),
            ("integer_division_truncates", lv(1, 3), 46),
            ("72_percent_is_exactly_100", lv(18, 25), 100),
        ];
        for (name, level, want) in cases {
            assert_eq!(level.health(), want, "{name}");
        }
    }

    #[test]
    fn pick_table() {
        let load = |loads: Vec<u32>| PriorityLoad {
            panic: smallvec::smallvec![false; loads.len()],
            loads: loads.into(),
            total_panic: false,
        };
        let cases = [
            (
                "roll_0_lands_on_first_loaded_level",
                load(vec![0, 100]),
                0,
                Some(1),
            ),
            (
                "roll_99_lands_on_last_loaded_level",
                load(vec![95, 5]),
                99,
                Some(1),
            ),
            ("roll_below_first_share", load(vec![95, 5]), 94, Some(0)),
            ("roll_at_boundary_moves_on", load(vec![95, 5]), 95, Some(1)),
            ("all_zero_picks_nothing", load(vec![0, 0]), 10, None),
            ("empty_picks_nothing", load(vec![]), 0, None),
            ("roll_reduced_modulo_100", load(vec![50, 50]), 149, Some(0)),
            ("three_levels_middle", load(vec![34, 33, 33]), 50, Some(1)),
        ];
        for (name, l, roll, want) in cases {
            assert_eq!(l.pick(roll), want, "{name}");
        }
    }

    #[test]
    fn threshold_zero_with_nothing_healthy_picks_none_for_every_roll() {
        let got = compute(&[lv(0, 2), lv(0, 3)], 0);
        assert!((0..100).all(|roll| got.pick(roll).is_none()));
    }
}
