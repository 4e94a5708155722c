//! Host selection for one attempt: priority load, backendRef (locality) weights, previously tried hosts. Pure.
//!
//! This module exists to turn a route rule's backend hosts (priority, backendRef, weight, current health)
//! plus what earlier attempts of the same request already tried into the one host the next attempt goes to,
//! the way Envoy's load balancer does it for the cluster Envoy Gateway builds from a route rule (DESIGN §4):
//! - the priority level comes from [`crate::routing::priority`]'s load (`LoadBalancerBase::choosePriority`);
//! - `numAttemptsPerPriority` is Envoy's `envoy.retry_priorities.previous_priorities` (levels that have had
//!   their attempts are taken out of the load, and put back once none with health is left);
//! - within a level, Envoy Gateway makes every backendRef a *locality* weighted by `backendRefs[].weight`
//!   (`locality_weighted_lb_config`; each resolved address is an endpoint of weight 1 inside it), so the
//!   weight belongs to the backendRef, not to each of its addresses: a Backend with three addresses at
//!   weight 1 beside a one-address Backend at weight 1 gets half the traffic, not three quarters. A locality
//!   with ejected hosts weighs less, as Envoy's `HostSetImpl::effectiveLocalityWeight` makes it:
//!   `weight × min(1, 1.4 × healthy / total)`;
//! - a level in panic ignores localities and health and spreads over all its hosts (Envoy's
//!   `hostSourceToUse` returns `AllHosts` before it looks at localities);
//! - retries re-run that whole choice, priority roll included, while it lands on a host this request already
//!   tried, up to [`HOST_SELECTION_RETRY_MAX_ATTEMPTS`] more times, and then take the last pick (Envoy's
//!   `ZoneAwareLoadBalancerBase::chooseHost` with the `envoy.retry_host_predicates.previous_hosts` predicate
//!   Envoy Gateway configures on every retry policy).
//!
//! Two documented stand-ins, both equal to Envoy in the long-run shares: Envoy walks localities with a
//! deterministic weighted round-robin schedule (EDF) shared by all requests of a worker, and Envoy Gateway's
//! LeastRequest balancer picks the less busy of two random hosts inside a locality; here both are weighted
//! (locality) and uniform (host) random choices. A per-request random choice needs no shared mutable state
//! on the request path, and for an LLM provider the gateway's own in-flight count says little about the
//! provider's load, which comes from all its clients.
//!
//! Randomness comes from the caller's RNG so tests can seed it.

use rand::Rng;
use smallvec::SmallVec;

use super::priority::{self, PerLevel, PriorityLevel, PriorityLoad, OVERPROVISIONING_FACTOR};

/// Envoy Gateway's `host_selection_retry_max_attempts` on every retry policy it generates: a retry re-runs
/// host selection up to this many more times while the pick is a host the request already tried.
pub const HOST_SELECTION_RETRY_MAX_ATTEMPTS: u32 = 5;

/// A rule's hosts as candidates: inline up to eight, so that building them per attempt does not allocate.
pub type Candidates = SmallVec<[Candidate; 8]>;

/// One backend host of a route rule, as selection sees it. Its index in the slice passed to [`select`] is its
/// identity (the same index the caller records in [`AttemptHistory`]).
///
/// Every candidate of one `locality` (one backendRef) has that backendRef's `priority` and `weight`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// `backendRefs[].priority` (lower is preferred; levels are the distinct values, ascending).
    pub priority: u32,
    /// `backendRefs[].weight`: the weight of the host's locality, not of the host; 0 means never chosen and
    /// not counted in any level.
    pub weight: u32,
    /// Not ejected (locally or by the cluster view).
    pub healthy: bool,
    /// The backendRef the host belongs to (its index in the rule's `backendRefs`): Envoy Gateway's locality.
    pub locality: u16,
}

/// What earlier attempts of one request tried: the hosts (indices into the candidate slice) and how many
/// attempts went to each priority value. Inline for the first few attempts: a request rarely makes more.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttemptHistory {
    hosts: SmallVec<[usize; 4]>,
    /// `(priority value, attempts)`, one entry per priority value tried.
    per_priority: SmallVec<[(u32, u32); 4]>,
}

impl AttemptHistory {
    /// Records that an attempt went to candidate `host`, whose priority value is `priority`.
    pub fn record(&mut self, host: usize, priority: u32) {
        self.hosts.push(host);
        match self.per_priority.iter_mut().find(|(p, _)| *p == priority) {
            Some((_, n)) => *n = n.saturating_add(1),
            None => self.per_priority.push((priority, 1)),
        }
    }

    /// Number of attempts recorded so far.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.hosts.len()).unwrap_or(u32::MAX)
    }

    /// Whether candidate `host` was already tried by this request.
    pub fn tried(&self, host: usize) -> bool {
        self.hosts.contains(&host)
    }

    /// Number of attempts that went to priority value `priority`.
    pub fn attempts_at(&self, priority: u32) -> u32 {
        self.per_priority
            .iter()
            .find(|(p, _)| *p == priority)
            .map_or(0, |(_, n)| *n)
    }
}

/// The host chosen for one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    /// Index into the candidate slice.
    pub host: usize,
    /// The chosen host's priority value.
    pub priority: u32,
    /// The chosen level was in panic, so the host may be unhealthy (Envoy routes to all hosts of a level in
    /// panic rather than refusing traffic).
    pub panic: bool,
}

/// Envoy's `effectiveLocalityWeight`: `weight × min(1, 1.4 × healthy / total)`, here in millionths so the
/// arithmetic stays integer (Envoy uses a double; a millionth is far below what sampling can tell).
fn effective_weight(weight: u32, healthy: u32, total: u32) -> u64 {
    if total == 0 {
        return 0;
    }
    let availability = if healthy == total {
        1_000_000
    } else {
        (OVERPROVISIONING_FACTOR * 10_000 * u64::from(healthy) / u64::from(total)).min(1_000_000)
    };
    u64::from(weight) * availability
}

/// The priority levels of a candidate set: distinct priority values of weight > 0 candidates, ascending, with
/// their healthy/total host counts.
struct Levels {
    priorities: PerLevel<u32>,
    levels: PerLevel<PriorityLevel>,
}

impl Levels {
    fn of(cands: &[Candidate]) -> Levels {
        let mut priorities = PerLevel::new();
        let mut levels: PerLevel<PriorityLevel> = PerLevel::new();
        for c in cands.iter().filter(|c| c.weight > 0) {
            // Kept sorted by insertion: there are only a handful of levels.
            let i = match priorities.binary_search(&c.priority) {
                Ok(i) => i,
                Err(i) => {
                    priorities.insert(i, c.priority);
                    levels.insert(i, PriorityLevel::default());
                    i
                }
            };
            if let Some(level) = levels.get_mut(i) {
                level.total += 1;
                if c.healthy {
                    level.healthy += 1;
                }
            }
        }
        Levels { priorities, levels }
    }
}

/// The current load per priority value, `(priority, load %)` ascending by priority, for `status` and
/// `validate` output. Weight-0 candidates do not form or count towards a level.
pub fn current_load(cands: &[Candidate], panic_threshold: u32) -> Vec<(u32, u32)> {
    let levels = Levels::of(cands);
    let load = priority::compute(&levels.levels, panic_threshold);
    levels.priorities.into_iter().zip(load.loads).collect()
}

/// Which levels `numAttemptsPerPriority = n` takes out of the load for the next attempt, or `None` when the
/// unmodified load applies.
///
/// A level is excluded once it has had `n` attempts. Envoy's `previous_priorities` resets its exclusions (and
/// forgets its attempts) when the remaining levels have no health left, so counting starts over; since the
/// history here is a pure record, the reset is expressed as rounds: `rounds` = how many times every level
/// with health has used up its `n` attempts, and a level is excluded once it has `n * (rounds + 1)`. That
/// always leaves a level with health in the load, and reproduces Envoy's sequence (with n = 1 and two
/// healthy levels: P0, P1, P0, P1, …).
fn excluded_levels(
    levels: &Levels,
    n: u32,
    history: &AttemptHistory,
    healths: &[u32],
) -> Option<PerLevel<bool>> {
    let counts: PerLevel<u32> = levels
        .priorities
        .iter()
        .map(|p| history.attempts_at(*p))
        .collect();
    let rounds = counts
        .iter()
        .zip(healths)
        .filter(|(_, h)| **h > 0)
        .map(|(c, _)| c / n)
        .min()?;
    let limit = u64::from(n) * (u64::from(rounds) + 1);
    let excluded: PerLevel<bool> = counts.iter().map(|c| u64::from(*c) >= limit).collect();
    excluded.iter().any(|e| *e).then_some(excluded)
}

/// Chooses the host for the next attempt, or `None` when nothing can be chosen (no candidate with weight, or
/// panic disabled and no healthy host: the proxy answers 503 "no healthy upstream").
///
/// 1. Levels and their load as in [`priority::compute`].
/// 2. With `num_attempts_per_priority = Some(n)` (n ≥ 1; `Some(0)` is treated as unset, as Envoy requires
///    n ≥ 1), levels that have had their attempts get zero health and the load is redistributed over the
///    others by health (Envoy `PreviousPrioritiesRetryPriority::adjustForAttemptedPriorities`); see
///    `excluded_levels` for the reset. Panic flags stay those of the unmodified load, as in Envoy.
/// 3. One pick (`pick_once`): a roll in `0..100` picks the level ([`PriorityLoad::pick`]); in panic, any
///    host of the level, uniformly; otherwise a locality by effective weight, then one of its healthy hosts,
///    uniformly.
/// 4. On a retry (the history is not empty), while the pick is a host already tried, step 3 is run again,
///    at most [`HOST_SELECTION_RETRY_MAX_ATTEMPTS`] more times; the last pick stands. So a tried host is
///    only likely to be picked again when little else is eligible, and a partly ejected level leaks retries
///    to the next one as Envoy's do (P0 at 70 % whose only healthy host just failed: the retry lands on P1
///    with probability 1 − 0.7⁶ ≈ 88 %).
///
/// Allocates nothing for routes of up to four levels and requests of up to four attempts.
pub fn select(
    cands: &[Candidate],
    panic_threshold: u32,
    num_attempts_per_priority: Option<u32>,
    history: &AttemptHistory,
    rng: &mut impl Rng,
) -> Option<Selection> {
    let levels = Levels::of(cands);
    if levels.levels.is_empty() {
        return None;
    }
    let base = priority::compute(&levels.levels, panic_threshold);

    let adjusted;
    let load: &PriorityLoad = match num_attempts_per_priority.filter(|n| *n > 0) {
        Some(n) => {
            let healths: PerLevel<u32> = levels.levels.iter().map(PriorityLevel::health).collect();
            match excluded_levels(&levels, n, history, &healths) {
                Some(excluded) => {
                    let remaining: PerLevel<u32> = healths
                        .iter()
                        .zip(&excluded)
                        .map(|(h, e)| if *e { 0 } else { *h })
                        .collect();
                    let nth = priority::normalized_total_health(&remaining);
                    adjusted = PriorityLoad {
                        loads: priority::distribute_by_health(&remaining, nth),
                        panic: base.panic.clone(),
                        total_panic: base.total_panic,
                    };
                    &adjusted
                }
                None => &base,
            }
        }
        None => &base,
    };

    // Envoy asks the predicate only on retries (`hostSelectionRetryCount` is 1 for a first attempt, whose
    // predicate has nothing to reject), so a first attempt is always a single pick.
    let picks = if history.attempts() == 0 {
        1
    } else {
        HOST_SELECTION_RETRY_MAX_ATTEMPTS + 1
    };
    let mut last = None;
    for _ in 0..picks {
        // Envoy returns at once when a pick finds no host: re-running would find none either.
        let pick = pick_once(cands, &levels, load, &base.panic, rng)?;
        if !history.tried(pick.host) {
            return Some(pick);
        }
        last = Some(pick);
    }
    last
}

/// One run of the load balancer (Envoy's `chooseHostOnce`): level, then locality, then host.
fn pick_once(
    cands: &[Candidate],
    levels: &Levels,
    load: &PriorityLoad,
    panic_flags: &[bool],
    rng: &mut impl Rng,
) -> Option<Selection> {
    let level = load.pick(rng.random_range(0..100u32))?;
    let priority = *levels.priorities.get(level)?;
    let panic = panic_flags.get(level).copied().unwrap_or(false);
    let at_level = |c: &Candidate| c.priority == priority && c.weight > 0;
    let host = if panic {
        // Every endpoint Envoy Gateway generates has weight 1, so the panic pick over all hosts is unweighted.
        pick_uniform(cands, at_level, rng)
    } else {
        match pick_locality(cands, priority, rng) {
            Some(id) => pick_uniform(cands, |c| at_level(c) && c.healthy && c.locality == id, rng),
            // One backendRef at this level (the usual shape, decided without weighing anything), or none with
            // effective weight (which a level with load and health cannot be, but Envoy's answer is defined):
            // the level's healthy hosts.
            None => pick_uniform(cands, |c| at_level(c) && c.healthy, rng),
        }
    }?;
    Some(Selection {
        host,
        priority,
        panic,
    })
}

/// A locality (backendRef) of level `priority`, chosen with probability proportional to its effective
/// weight; `None` when the level has a single locality (nothing to weigh: the caller takes the level's
/// healthy hosts without a roll) or none with effective weight.
///
/// Localities are found in place, without a table: a candidate stands for its locality when it is the
/// first of it in the slice, and the locality's counts are a scan of the slice. Quadratic in the level's
/// hosts, which are few, and only reached when a level has several backendRefs.
fn pick_locality(cands: &[Candidate], priority: u32, rng: &mut impl Rng) -> Option<u16> {
    let at_level = |c: &Candidate| c.priority == priority && c.weight > 0;
    let mut level = cands.iter().filter(|c| at_level(c));
    let first = level.next()?.locality;
    if level.all(|c| c.locality == first) {
        return None;
    }
    let weighted = || {
        cands.iter().enumerate().filter_map(move |(i, c)| {
            let first_of_its_locality = at_level(c)
                && !cands[..i]
                    .iter()
                    .any(|e| at_level(e) && e.locality == c.locality);
            if !first_of_its_locality {
                return None;
            }
            let (healthy, total) = cands
                .iter()
                .filter(|e| at_level(e) && e.locality == c.locality)
                .fold((0u32, 0u32), |(h, t), e| (h + u32::from(e.healthy), t + 1));
            Some((c.locality, effective_weight(c.weight, healthy, total)))
        })
    };
    let total = weighted().fold(0u64, |sum, (_, w)| sum.saturating_add(w));
    if total == 0 {
        return None;
    }
    let mut roll = rng.random_range(0..total);
    for (id, w) in weighted() {
        if roll < w {
            return Some(id);
        }
        roll -= w;
    }
    None
}

/// A uniformly random candidate among those `eligible` accepts, in index order; `None` when there is none.
/// A single eligible candidate is returned without spending a roll.
fn pick_uniform(
    cands: &[Candidate],
    eligible: impl Fn(&Candidate) -> bool,
    rng: &mut impl Rng,
) -> Option<usize> {
    let n = cands.iter().filter(|c| eligible(c)).count();
    let k = match n {
        0 => return None,
        1 => 0,
        _ => rng.random_range(0..n),
    };
    cands
        .iter()
        .enumerate()
        .filter(|(_, c)| eligible(c))
        .nth(k)
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// A host of backendRef `locality`.
    fn host(locality: u16, priority: u32, weight: u32, healthy: bool) -> Candidate {
        Candidate {
            priority,
            weight,
            healthy,
            locality,
        }
    }

    /// One host per backendRef, `(priority, weight, healthy)` each, backendRef = index.
    fn refs(spec: &[(u32, u32, bool)]) -> Vec<Candidate> {
        spec.iter()
            .enumerate()
            .map(|(i, (p, w, h))| host(u16::try_from(i).expect("few refs"), *p, *w, *h))
            .collect()
    }

    /// Counts, per candidate index, how often `select` chose it over `n` seeded picks with `history`.
    fn histogram(
        cands: &[Candidate],
        threshold: u32,
        per_priority: Option<u32>,
        history: &AttemptHistory,
        n: usize,
    ) -> Vec<usize> {
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = vec![0; cands.len()];
        for _ in 0..n {
            if let Some(s) = select(cands, threshold, per_priority, history, &mut rng) {
                counts[s.host] += 1;
            }
        }
        counts
    }

    fn history(attempts: &[(usize, u32)]) -> AttemptHistory {
        let mut h = AttemptHistory::default();
        for (host, priority) in attempts {
            h.record(*host, *priority);
        }
        h
    }

    /// Share of `n` picks in percent.
    fn pct(count: usize, n: usize) -> f64 {
        100.0 * count as f64 / n as f64
    }

    #[test]
    fn p1_never_chosen_while_p0_healthy() {
        let cands = refs(&[(0, 1, true), (1, 1, true)]);
        let counts = histogram(&cands, 50, None, &AttemptHistory::default(), 5_000);
        assert_eq!(counts, vec![5_000, 0]);
    }

    #[test]
    fn backend_ref_weight_table() {
        // (name, candidates, expected share per candidate in percent). The weight belongs to the backendRef
        // (Envoy Gateway's locality), and the hosts of one backendRef share its share evenly.
        let cases = [
            (
                "weights_1_1_split_about_50_50",
                refs(&[(0, 1, true), (0, 1, true)]),
                vec![50.0, 50.0],
            ),
            (
                "weights_3_1_split_about_75_25",
                refs(&[(0, 3, true), (0, 1, true)]),
                vec![75.0, 25.0],
            ),
            (
                // The D7 case: three addresses do not triple a backendRef's weight.
                "three_addresses_beside_one_address_split_50_50_by_backend_ref",
                vec![
                    host(0, 0, 1, true),
                    host(0, 0, 1, true),
                    host(0, 0, 1, true),
                    host(1, 0, 1, true),
                ],
                vec![50.0 / 3.0, 50.0 / 3.0, 50.0 / 3.0, 50.0],
            ),
            (
                "two_addresses_at_weight_2_beside_one_at_weight_1",
                vec![
                    host(0, 0, 2, true),
                    host(0, 0, 2, true),
                    host(1, 0, 1, true),
                ],
                vec![100.0 / 3.0, 100.0 / 3.0, 100.0 / 3.0],
            ),
        ];
        let n = 30_000;
        for (name, cands, want) in cases {
            let counts = histogram(&cands, 50, None, &AttemptHistory::default(), n);
            assert_eq!(counts.iter().sum::<usize>(), n, "{name}");
            for (i, (got, want)) in counts.iter().zip(&want).enumerate() {
                let share = pct(*got, n);
                assert!(
                    (share - want).abs() < 1.5,
                    "{name}: host {i} got {share:.1}%, want {want:.1}% ({counts:?})"
                );
            }
        }
    }

    /// A backendRef of `total` hosts at priority 0 of which `healthy` are not ejected.
    fn locality(id: u16, weight: u32, healthy: usize, total: usize) -> Vec<Candidate> {
        (0..total)
            .map(|i| host(id, 0, weight, i < healthy))
            .collect()
    }

    #[test]
    fn partly_ejected_backend_ref_weighs_less_table() {
        // Envoy's locality-weighted LB documentation: X at weight 1, Y at weight 2 (always fully healthy),
        // overprovisioning 1.4. (name, X healthy of 10, expected share of X in percent: weight × min(1, 1.4 ×
        // healthy fraction), normalised.) Y has 20 hosts so the level stays out of panic.
        let cases = [
            ("all_healthy_keeps_its_weight", 10, 100.0 / 3.0),
            (
                "seventy_percent_is_absorbed_by_overprovisioning",
                7,
                0.98 / 2.98 * 100.0,
            ),
            ("half_healthy_weighs_0_7", 5, 0.7 / 2.7 * 100.0),
            ("one_healthy_weighs_0_14", 1, 0.14 / 2.14 * 100.0),
            ("none_healthy_gets_nothing", 0, 0.0),
        ];
        let n = 30_000;
        for (name, x_healthy, want) in cases {
            let mut cands = locality(0, 1, x_healthy, 10);
            cands.extend(locality(1, 2, 20, 20));
            let counts = histogram(&cands, 50, None, &AttemptHistory::default(), n);
            let x: usize = counts[..10].iter().sum();
            let share = pct(x, n);
            assert!(
                (share - want).abs() < 1.0,
                "{name}: X got {share:.1}%, want {want:.1}%"
            );
            // Within X only its healthy hosts are used.
            assert!(
                counts[x_healthy..10].iter().all(|c| *c == 0),
                "{name}: {counts:?}"
            );
        }
    }

    #[test]
    fn weight_zero_never_chosen() {
        let cases = [
            (
                "weight_zero_beside_healthy_host",
                refs(&[(0, 0, true), (0, 1, true)]),
            ),
            (
                "weight_zero_beside_host_in_panic",
                refs(&[(0, 0, true), (0, 1, false)]),
            ),
            (
                "weight_zero_at_better_priority",
                refs(&[(0, 0, true), (1, 1, true)]),
            ),
        ];
        for (name, cands) in cases {
            let counts = histogram(&cands, 50, None, &AttemptHistory::default(), 2_000);
            assert_eq!(counts[0], 0, "{name}");
            assert_eq!(counts[1], 2_000, "{name}");
        }
    }

    #[test]
    fn nothing_choosable_returns_none() {
        let mut rng = StdRng::seed_from_u64(1);
        let none = AttemptHistory::default();
        let retry = history(&[(0, 0)]);
        let cases: [(&str, Vec<Candidate>, u32); 3] = [
            ("no_candidates", vec![], 50),
            ("only_weight_zero", refs(&[(0, 0, true)]), 50),
            (
                "panic_disabled_all_unhealthy",
                refs(&[(0, 1, false), (1, 1, false)]),
                0,
            ),
        ];
        for (name, cands, threshold) in cases {
            for h in [&none, &retry] {
                for _ in 0..100 {
                    assert_eq!(select(&cands, threshold, None, h, &mut rng), None, "{name}");
                }
            }
        }
    }

    #[test]
    fn tried_host_table() {
        // Envoy's previous_hosts with host_selection_retry_max_attempts 5: up to six picks, the last stands.
        // (name, candidates, history, expected share per candidate in percent)
        let cases = [
            (
                // Two equal backendRefs, host 0 tried: it is kept only if all six picks land on it (0.5⁶).
                "tried_host_avoided_unless_six_picks_land_on_it",
                refs(&[(0, 1, true), (0, 1, true)]),
                history(&[(0, 0)]),
                vec![100.0 * 0.5f64.powi(6), 100.0 * (1.0 - 0.5f64.powi(6))],
            ),
            (
                "two_addresses_of_one_backend_ref_alike",
                vec![host(0, 0, 1, true), host(0, 0, 1, true)],
                history(&[(0, 0)]),
                vec![100.0 * 0.5f64.powi(6), 100.0 * (1.0 - 0.5f64.powi(6))],
            ),
            (
                "tried_host_reused_when_only_one",
                refs(&[(0, 1, true), (1, 1, false)]),
                history(&[(0, 0)]),
                vec![100.0, 0.0],
            ),
            (
                "unhealthy_alternative_is_not_an_alternative",
                refs(&[(0, 1, true), (0, 1, false), (0, 1, true)]),
                history(&[(0, 0)]),
                vec![100.0 * 0.5f64.powi(6), 0.0, 100.0 * (1.0 - 0.5f64.powi(6))],
            ),
            (
                "all_tried_falls_back_to_the_last_pick",
                refs(&[(0, 1, true), (0, 1, true)]),
                history(&[(0, 0), (1, 0)]),
                vec![50.0, 50.0],
            ),
            (
                // Weight 3:1, host 0 tried: kept only if six picks all land on it (0.75⁶ ≈ 17.8 %).
                "heavier_tried_host_comes_back_more_often",
                refs(&[(0, 3, true), (0, 1, true)]),
                history(&[(0, 0)]),
                vec![100.0 * 0.75f64.powi(6), 100.0 * (1.0 - 0.75f64.powi(6))],
            ),
        ];
        let n = 20_000;
        for (name, cands, hist, want) in cases {
            let got = histogram(&cands, 50, None, &hist, n);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                let share = pct(*g, n);
                assert!(
                    (share - w).abs() < 1.2,
                    "{name}: host {i} got {share:.2}%, want {w:.2}% ({got:?})"
                );
            }
        }
    }

    #[test]
    fn retry_leaks_to_p1_when_p0_is_partly_ejected() {
        // The audit's D6 example. P0 = 2 hosts, one ejected: health 70, load 70/30 with a healthy P1. The
        // healthy P0 host (0) just failed without being ejected. Each of the six picks lands on P0 (and so on
        // host 0, the only healthy P0 host) with probability 0.7; the retry stays on host 0 only if all six
        // do. Both shapes of P0 (one backendRef of two addresses, or two backendRefs) behave alike.
        let one_ref = vec![
            host(0, 0, 1, true),
            host(0, 0, 1, false),
            host(1, 1, 1, true),
        ];
        let two_refs = refs(&[(0, 1, true), (0, 1, false), (1, 1, true)]);
        let n = 100_000;
        let want_p1 = 100.0 * (1.0 - 0.7f64.powi(6));
        for (name, cands) in [("one_backend_ref", one_ref), ("two_backend_refs", two_refs)] {
            assert_eq!(current_load(&cands, 50), vec![(0, 70), (1, 30)], "{name}");
            let first = histogram(&cands, 50, None, &AttemptHistory::default(), n);
            assert!(
                (pct(first[2], n) - 30.0).abs() < 0.6,
                "{name}: first attempt {first:?}"
            );
            assert_eq!(first[1], 0, "{name}: the ejected host is never chosen");
            let retry = histogram(&cands, 50, None, &history(&[(0, 0)]), n);
            let p1 = pct(retry[2], n);
            // Binomial standard deviation at n = 100k is about 0.1 %.
            assert!(
                (p1 - want_p1).abs() < 0.5,
                "{name}: retry went to P1 {p1:.2}%, want {want_p1:.2}% ({retry:?})"
            );
            assert_eq!(retry[1], 0, "{name}");
        }
    }

    #[test]
    fn first_attempt_is_one_pick() {
        // Envoy consults the predicate only on retries: a first attempt is exactly one run of the balancer,
        // so it consumes exactly one pick's rolls, whatever it lands on.
        let cands = refs(&[(0, 1, true), (0, 1, true), (1, 1, true)]);
        let levels = Levels::of(&cands);
        let load = priority::compute(&levels.levels, 50);
        for seed in 0..200 {
            let mut a = StdRng::seed_from_u64(seed);
            let mut b = StdRng::seed_from_u64(seed);
            let selected = select(&cands, 50, None, &AttemptHistory::default(), &mut a);
            let once = pick_once(&cands, &levels, &load, &load.panic, &mut b);
            assert_eq!(selected, once, "seed {seed}");
            assert_eq!(
                a.random::<u64>(),
                b.random::<u64>(),
                "seed {seed}: extra rolls"
            );
        }
    }

    #[test]
    fn attempts_per_priority_table() {
        let healthy_two_levels = refs(&[(0, 1, true), (1, 1, true)]);
        // (name, candidates, n, history, expected counts over 1,000 picks)
        let cases = [
            (
                "first_attempt_uses_unmodified_load",
                healthy_two_levels.clone(),
                Some(1),
                history(&[]),
                vec![1_000, 0],
            ),
            (
                "second_attempt_moves_to_p1_with_p0_healthy",
                healthy_two_levels.clone(),
                Some(1),
                history(&[(0, 0)]),
                vec![0, 1_000],
            ),
            (
                "every_level_used_resets_exclusions",
                healthy_two_levels.clone(),
                Some(1),
                history(&[(0, 0), (1, 1)]),
                vec![1_000, 0],
            ),
            (
                "after_reset_p0_excluded_again",
                healthy_two_levels.clone(),
                Some(1),
                history(&[(0, 0), (1, 1), (0, 0)]),
                vec![0, 1_000],
            ),
            (
                "n_2_keeps_p0_for_two_attempts",
                healthy_two_levels.clone(),
                Some(2),
                history(&[(0, 0)]),
                vec![1_000, 0],
            ),
            (
                "n_2_moves_after_two_attempts",
                healthy_two_levels.clone(),
                Some(2),
                history(&[(0, 0), (0, 0)]),
                vec![0, 1_000],
            ),
            (
                // The predicate re-picks, but P0 holds all the load and host 0 is its only host: after six
                // picks the last (host 0) stands.
                "without_setting_retry_stays_on_healthy_p0",
                healthy_two_levels.clone(),
                None,
                history(&[(0, 0)]),
                vec![1_000, 0],
            ),
            (
                "zero_is_treated_as_unset",
                healthy_two_levels,
                Some(0),
                history(&[(0, 0)]),
                vec![1_000, 0],
            ),
            (
                // P1 has no health: excluding P0 would leave nothing, so the exclusion resets to P0.
                "exclusion_resets_when_remaining_levels_have_no_health",
                refs(&[(0, 1, true), (1, 1, false)]),
                Some(1),
                history(&[(0, 0)]),
                vec![1_000, 0],
            ),
        ];
        for (name, cands, n, hist, want) in cases {
            let got = histogram(&cands, 50, n, &hist, 1_000);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn all_unhealthy_spreads_in_panic_by_host_count() {
        // 1 host at P0, 3 at P1, all ejected: total panic, 25/75 by host count, every host used.
        let cands = refs(&[(0, 1, false), (1, 1, false), (1, 1, false), (1, 1, false)]);
        let mut rng = StdRng::seed_from_u64(3);
        let none = AttemptHistory::default();
        let mut counts = [0usize; 4];
        for _ in 0..8_000 {
            let s = select(&cands, 50, None, &none, &mut rng);
            let s = s.expect("panic routes somewhere");
            assert!(s.panic, "selection must say it was made in panic");
            counts[s.host] += 1;
        }
        for (i, n) in counts.iter().enumerate() {
            assert!(n.abs_diff(2_000) < 200, "host {i}: {counts:?}");
        }
    }

    #[test]
    fn panic_level_ignores_backend_ref_weights_and_health() {
        // One level, 3 of 4 hosts ejected (25 % < 50 % threshold): Envoy takes all hosts of the level, each at
        // endpoint weight 1, without locality weighting — the weight-3 backendRef's host gets a quarter.
        let cands = vec![
            host(0, 0, 3, false),
            host(1, 0, 1, false),
            host(1, 0, 1, false),
            host(1, 0, 1, true),
        ];
        let n = 20_000;
        let counts = histogram(&cands, 50, None, &AttemptHistory::default(), n);
        for (i, c) in counts.iter().enumerate() {
            assert!((pct(*c, n) - 25.0).abs() < 1.2, "host {i}: {counts:?}");
        }
    }

    #[test]
    fn healthy_selection_is_not_panic() {
        let mut rng = StdRng::seed_from_u64(3);
        let s = select(
            &refs(&[(0, 1, true)]),
            50,
            None,
            &AttemptHistory::default(),
            &mut rng,
        );
        assert_eq!(
            s,
            Some(Selection {
                host: 0,
                priority: 0,
                panic: false
            })
        );
    }

    #[test]
    fn sparse_priority_values_form_consecutive_levels() {
        // Priorities 5 and 10: level 0 is priority 5. P5's only host ejected -> all to priority 10.
        let cands = refs(&[(10, 1, true), (5, 1, false)]);
        let counts = histogram(&cands, 50, None, &AttemptHistory::default(), 1_000);
        assert_eq!(counts, vec![1_000, 0]);
        let mut rng = StdRng::seed_from_u64(9);
        let s = select(&cands, 50, None, &AttemptHistory::default(), &mut rng);
        assert_eq!(s.map(|s| s.priority), Some(10));
    }

    #[test]
    fn effective_locality_weight_table() {
        // (name, weight, healthy, total, expected weight in millionths)
        let cases = [
            ("all_healthy", 3, 4, 4, 3_000_000),
            ("overprovisioning_caps_at_full_weight", 1, 3, 4, 1_000_000),
            ("half_healthy_is_0_7", 1, 1, 2, 700_000),
            ("one_of_three_is_0_4666", 2, 1, 3, 933_332),
            ("none_healthy", 5, 0, 3, 0),
            ("empty", 5, 0, 0, 0),
            ("weight_zero", 0, 2, 2, 0),
        ];
        for (name, weight, healthy, total, want) in cases {
            assert_eq!(effective_weight(weight, healthy, total), want, "{name}");
        }
    }

    #[test]
    fn current_load_table() {
        let cases = [
            (
                "healthy_p0_takes_all",
                refs(&[(0, 1, true), (1, 1, true)]),
                50,
                vec![(0, 100), (1, 0)],
            ),
            (
                "ejected_p0_fails_over",
                refs(&[(0, 1, false), (1, 1, true)]),
                50,
                vec![(0, 0), (1, 100)],
            ),
            (
                "weight_zero_level_not_listed",
                refs(&[(0, 0, true), (1, 1, true)]),
                50,
                vec![(1, 100)],
            ),
            (
                "threshold_zero_nothing_healthy_all_zero",
                refs(&[(0, 1, false), (3, 1, false)]),
                0,
                vec![(0, 0), (3, 0)],
            ),
        ];
        for (name, cands, threshold, want) in cases {
            assert_eq!(current_load(&cands, threshold), want, "{name}");
        }
    }

    #[test]
    fn history_records_hosts_and_priorities() {
        let h = history(&[(2, 0), (5, 1), (2, 0)]);
        assert_eq!(h.attempts(), 3);
        assert!(h.tried(2) && h.tried(5) && !h.tried(0));
        assert_eq!(h.attempts_at(0), 2);
        assert_eq!(h.attempts_at(1), 1);
        assert_eq!(h.attempts_at(7), 0);
    }
}
