//! Host selection for one attempt: priority load, weights, previously tried hosts. Pure.
//!
//! This module exists to turn a route's backend hosts (priority, weight, current health) plus what earlier
//! attempts of the same request already tried into the one host the next attempt goes to, the way Envoy's
//! load balancer does it with the retry extensions Envoy Gateway configures (DESIGN §4):
//! - the priority level comes from [`crate::routing::priority`]'s load, rolled once per attempt;
//! - `numAttemptsPerPriority` is Envoy's `envoy.retry_priorities.previous_priorities` (levels that have had
//!   their attempts are taken out of the load, and put back once none with health is left);
//! - within a level, hosts are chosen by weight, skipping hosts already tried when another is available
//!   (Envoy's `envoy.retry_host_predicates.previous_hosts`).
//!
//! Randomness comes from the caller's RNG so tests can seed it.

use rand::Rng;
use smallvec::SmallVec;

use super::priority::{self, PerLevel, PriorityLevel, PriorityLoad};

/// A rule's hosts as candidates: inline up to eight, so that building them per attempt does not allocate.
pub type Candidates = SmallVec<[Candidate; 8]>;

/// One backend host of a route, as selection sees it. Its index in the slice passed to [`select`] is its
/// identity (the same index the caller records in [`AttemptHistory`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// `backendRefs[].priority` (lower is preferred; levels are the distinct values, ascending).
    pub priority: u32,
    /// `backendRefs[].weight`; 0 means never chosen and not counted in any level.
    pub weight: u32,
    /// Not ejected (locally or by the cluster view).
    pub healthy: bool,
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
/// 3. A roll in `0..100` picks the level ([`PriorityLoad::pick`]).
/// 4. Within the level: its healthy hosts, or all of them if the level is in panic; among those, hosts not yet
///    tried when at least one exists (Envoy's `previous_hosts` predicate, without its retry limit: a tried
///    host is reused only when it is the only eligible one); then a weighted random choice.
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

    let roll = rng.random_range(0..100u32);
    let level = load.pick(roll)?;
    let priority = *levels.priorities.get(level)?;
    let panic = base.panic.get(level).copied().unwrap_or(false);

    let eligible = |c: &Candidate| c.priority == priority && c.weight > 0 && (panic || c.healthy);
    let any_untried = cands
        .iter()
        .enumerate()
        .any(|(i, c)| eligible(c) && !history.tried(i));
    let host = pick_weighted(
        cands,
        |i, c| eligible(c) && (!any_untried || !history.tried(i)),
        rng,
    )?;
    Some(Selection {
        host,
        priority,
        panic,
    })
}

/// A weighted random choice among the candidates `in_pool` accepts (all with weight > 0), in index order.
fn pick_weighted(
    cands: &[Candidate],
    in_pool: impl Fn(usize, &Candidate) -> bool,
    rng: &mut impl Rng,
) -> Option<usize> {
    let pool = || {
        cands
            .iter()
            .enumerate()
            .filter(|(i, c)| in_pool(*i, c))
            .map(|(i, c)| (i, u64::from(c.weight)))
    };
    let total: u64 = pool().map(|(_, w)| w).sum();
    if total == 0 {
        return None;
    }
    let mut roll = rng.random_range(0..total);
    for (i, w) in pool() {
        if roll < w {
            return Some(i);
        }
        roll -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn c(priority: u32, weight: u32, healthy: bool) -> Candidate {
        Candidate {
            priority,
            weight,
            healthy,
        }
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

    #[test]
    fn p1_never_chosen_while_p0_healthy() {
        let cands = [c(0, 1, true), c(1, 1, true)];
        let counts = histogram(&cands, 50, None, &AttemptHistory::default(), 5_000);
        assert_eq!(counts, vec![5_000, 0]);
    }

    #[test]
    fn weight_split_table() {
        // (name, weights, expected share of host 0 in percent)
        let cases = [
            ("weights_1_1_split_about_50_50", [1u32, 1], 50.0),
            ("weights_3_1_split_about_75_25", [3, 1], 75.0),
        ];
        for (name, weights, want) in cases {
            let cands = [c(0, weights[0], true), c(0, weights[1], true)];
            let counts = histogram(&cands, 50, None, &AttemptHistory::default(), 10_000);
            let share = counts[0] as f64 / 100.0;
            assert!((share - want).abs() < 2.0, "{name}: host 0 got {share}%");
            assert_eq!(counts[0] + counts[1], 10_000, "{name}");
        }
    }

    #[test]
    fn weight_zero_never_chosen() {
        let cases = [
            (
                "weight_zero_beside_healthy_host",
                vec![c(0, 0, true), c(0, 1, true)],
            ),
            (
                "weight_zero_beside_host_in_panic",
                vec![c(0, 0, true), c(0, 1, false)],
            ),
            (
                "weight_zero_at_better_priority",
                vec![c(0, 0, true), c(1, 1, true)],
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
        let cases: [(&str, Vec<Candidate>, u32); 3] = [
            ("no_candidates", vec![], 50),
            ("only_weight_zero", vec![c(0, 0, true)], 50),
            (
                "panic_disabled_all_unhealthy",
                vec![c(0, 1, false), c(1, 1, false)],
                0,
            ),
        ];
        for (name, cands, threshold) in cases {
            for _ in 0..100 {
                assert_eq!(
                    select(&cands, threshold, None, &none, &mut rng),
                    None,
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn tried_host_table() {
        // (name, candidates, history, expected counts over 1,000 picks)
        let cases = [
            (
                "tried_host_avoided_when_alternative_exists",
                vec![c(0, 1, true), c(0, 1, true)],
                history(&[(0, 0)]),
                vec![0, 1_000],
            ),
            (
                "tried_host_reused_when_only_one",
                vec![c(0, 1, true), c(1, 1, false)],
                history(&[(0, 0)]),
                vec![1_000, 0],
            ),
            (
                "unhealthy_alternative_is_not_an_alternative",
                vec![c(0, 1, true), c(0, 1, false), c(0, 1, true)],
                history(&[(0, 0)]),
                vec![0, 0, 1_000],
            ),
            (
                "all_tried_falls_back_to_weighted_choice_among_all",
                vec![c(0, 1, true), c(0, 1, true)],
                history(&[(0, 0), (1, 0)]),
                vec![500, 500],
            ),
        ];
        for (name, cands, hist, want) in cases {
            let got = histogram(&cands, 50, None, &hist, 1_000);
            for (g, w) in got.iter().zip(&want) {
                assert!(
                    g.abs_diff(*w) <= 60,
                    "{name}: got {got:?}, want about {want:?}"
                );
            }
        }
    }

    #[test]
    fn attempts_per_priority_table() {
        let healthy_two_levels = vec![c(0, 1, true), c(1, 1, true)];
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
                vec![c(0, 1, true), c(1, 1, false)],
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
        let cands = [
            c(0, 1, false),
            c(1, 1, false),
            c(1, 1, false),
            c(1, 1, false),
        ];
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
    fn healthy_selection_is_not_panic() {
        let mut rng = StdRng::seed_from_u64(3);
        let s = select(
            &[c(0, 1, true)],
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
        let cands = [c(10, 1, true), c(5, 1, false)];
        let counts = histogram(&cands, 50, None, &AttemptHistory::default(), 1_000);
        assert_eq!(counts, vec![1_000, 0]);
        let mut rng = StdRng::seed_from_u64(9);
        let s = select(&cands, 50, None, &AttemptHistory::default(), &mut rng);
        assert_eq!(s.map(|s| s.priority), Some(10));
    }

    #[test]
    fn current_load_table() {
        let cases = [
            (
                "healthy_p0_takes_all",
                vec![c(0, 1, true), c(1, 1, true)],
                50,
                vec![(0, 100), (1, 0)],
            ),
            (
                "ejected_p0_fails_over",
                vec![c(0, 1, false), c(1, 1, true)],
                50,
                vec![(0, 0), (1, 100)],
            ),
            (
                "weight_zero_level_not_listed",
                vec![c(0, 0, true), c(1, 1, true)],
                50,
                vec![(1, 100)],
            ),
            (
                "threshold_zero_nothing_healthy_all_zero",
                vec![c(0, 1, false), c(3, 1, false)],
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
