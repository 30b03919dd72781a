use std::num::NonZeroU32;

use proptest::prelude::*;

use super::{Damper, Thresholds};
use crate::checks::CheckHealth::{self, Critical, Passing, Warning};

fn thresholds(healthy: u32, unhealthy: u32) -> Thresholds {
    Thresholds {
        healthy: NonZeroU32::new(healthy).unwrap(),
        unhealthy: NonZeroU32::new(unhealthy).unwrap(),
    }
}

/// Feeds `results` and returns what `observe` said for each.
fn run(damper: &mut Damper, results: &[CheckHealth]) -> Vec<Option<CheckHealth>> {
    results.iter().map(|&r| damper.observe(r)).collect()
}

#[test]
fn first_result_of_a_new_check_is_reported_at_once() {
    for first in [Passing, Warning, Critical] {
        let mut d = Damper::new(None, thresholds(3, 3));
        assert_eq!(d.observe(first), Some(first));
        assert_eq!(d.current(), Some(first));
        assert_eq!(d.observe(first), None);
    }
}

#[test]
fn a_single_failure_never_flips_a_passing_check() {
    let mut d = Damper::new(Some(Passing), thresholds(2, 2));
    let said = run(&mut d, &[Critical, Passing, Critical, Passing, Critical]);
    assert!(said.iter().all(Option::is_none), "{said:?}");
    assert_eq!(d.current(), Some(Passing));
}

#[test]
fn exactly_the_unhealthy_threshold_flips_it() {
    let mut d = Damper::new(Some(Passing), thresholds(1, 3));
    assert_eq!(run(&mut d, &[Critical, Critical]), [None, None]);
    assert_eq!(d.observe(Critical), Some(Critical));
    assert_eq!(d.observe(Critical), None, "already critical");
}

#[test]
fn recovery_needs_the_healthy_threshold() {
    let mut d = Damper::new(Some(Critical), thresholds(3, 1));
    assert_eq!(run(&mut d, &[Passing, Passing]), [None, None]);
    assert_eq!(d.observe(Passing), Some(Passing));
}

#[test]
fn leaving_critical_counts_passing_and_warning_together() {
    let mut d = Damper::new(Some(Critical), thresholds(3, 1));
    assert_eq!(run(&mut d, &[Warning, Passing]), [None, None]);
    assert_eq!(d.observe(Warning), Some(Warning), "takes the latest result");
}

#[test]
fn passing_and_warning_switch_after_the_healthy_threshold() {
    let mut d = Damper::new(Some(Passing), thresholds(2, 5));
    assert_eq!(d.observe(Warning), None);
    assert_eq!(d.observe(Warning), Some(Warning));
    assert_eq!(d.observe(Passing), None);
    assert_eq!(d.observe(Passing), Some(Passing));
}

#[test]
fn interleaved_results_reset_the_streaks() {
    let mut d = Damper::new(Some(Passing), thresholds(2, 2));
    // Critical, then warning: neither streak reaches 2.
    let said = run(
        &mut d,
        &[Critical, Warning, Critical, Warning, Passing, Critical],
    );
    assert!(said.iter().all(Option::is_none), "{said:?}");
    // The streak toward critical restarted at the last result: one more flips.
    assert_eq!(d.observe(Critical), Some(Critical));

    let mut d = Damper::new(Some(Critical), thresholds(3, 1));
    assert_eq!(
        run(&mut d, &[Passing, Passing, Critical, Passing, Warning]),
        [None; 5]
    );
    assert_eq!(d.observe(Passing), Some(Passing));
}

#[test]
fn thresholds_of_one_follow_every_result() {
    let mut d = Damper::new(Some(Passing), Thresholds::default());
    let results = [
        Critical, Critical, Warning, Passing, Passing, Critical, Warning,
    ];
    let said = run(&mut d, &results);
    assert_eq!(
        said,
        [
            Some(Critical),
            None,
            Some(Warning),
            Some(Passing),
            None,
            Some(Critical),
            Some(Warning)
        ]
    );
}

fn health() -> impl Strategy<Value = CheckHealth> {
    prop_oneof![Just(Passing), Just(Warning), Just(Critical)]
}

/// Whether the `n` results ending at index `i` exist and all satisfy `ok`.
fn streak_ends_at(
    results: &[CheckHealth],
    i: usize,
    n: u32,
    ok: impl Fn(CheckHealth) -> bool,
) -> bool {
    let n = n as usize;
    i + 1 >= n && results[i + 1 - n..=i].iter().all(|&r| ok(r))
}

proptest! {
    /// Safety: every change is backed by a streak of the required length ending
    /// at that observation. Liveness: once such a streak exists, the status has
    /// followed it.
    #[test]
    fn changes_happen_exactly_on_complete_streaks(
        start in proptest::option::of(health()),
        healthy in 1u32..5,
        unhealthy in 1u32..5,
        results in proptest::collection::vec(health(), 0..60),
    ) {
        let mut d = Damper::new(start, thresholds(healthy, unhealthy));
        let mut status = start;
        for (i, &r) in results.iter().enumerate() {
            let said = d.observe(r);
            if let Some(new) = said {
                prop_assert_ne!(Some(new), status, "reported a non-change at {}", i);
                prop_assert_eq!(new, r, "changed to something not observed at {}", i);
                match status {
                    None => prop_assert_eq!(i, 0),
                    Some(_) if new == Critical => prop_assert!(
                        streak_ends_at(&results, i, unhealthy, |x| x == Critical),
                        "critical at {} without {} critical results", i, unhealthy),
                    Some(Critical) => prop_assert!(
                        streak_ends_at(&results, i, healthy, |x| x != Critical),
                        "recovered at {} without {} non-critical results", i, healthy),
                    Some(_) => prop_assert!(
                        streak_ends_at(&results, i, healthy, |x| x == new),
                        "switched to {} at {} without {} of them", new, i, healthy),
                }
                status = Some(new);
            }
            prop_assert_eq!(d.current(), status);
            if streak_ends_at(&results, i, unhealthy, |x| x == Critical) {
                prop_assert_eq!(status, Some(Critical), "missed going critical at {}", i);
            }
            if streak_ends_at(&results, i, healthy, |x| x != Critical) {
                prop_assert_ne!(status, Some(Critical), "missed recovering at {}", i);
            }
            if streak_ends_at(&results, i, healthy, |x| x == r) && r != Critical {
                prop_assert_eq!(status, Some(r), "missed switching to {} at {}", r, i);
            }
        }
    }
}
