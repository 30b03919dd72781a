//! Behaviour of `Balancer` through its public API, one section per property.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use concord_balance::{Balancer, Config, Endpoint, EndpointsError, Pick, Policy, hash_key};

fn config() -> Config {
    Config {
        seed: Some(0x5eed),
        ..Config::default()
    }
}

fn balancer(policy: Policy) -> Balancer {
    Balancer::with_config(policy, config()).unwrap()
}

fn endpoints(weights: &[(&str, u32)]) -> Vec<Endpoint> {
    weights
        .iter()
        .map(|&(id, w)| Endpoint::new(id, format!("{id}.test:8080"), w))
        .collect()
}

fn ids(picks: impl IntoIterator<Item = Pick>) -> String {
    picks.into_iter().map(|p| p.endpoint.id.clone()).collect()
}

/// Counts by id over `n` picks, each finished at once; keyed by `i` when `keyed`.
fn tally(b: &Balancer, n: u64, keyed: bool) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let pick = b.pick(keyed.then(|| hash_key(&i.to_le_bytes()))).unwrap();
        *counts.entry(pick.endpoint.id.clone()).or_default() += 1;
    }
    counts
}

// ---- every policy ----

#[test]
fn empty_set_picks_none() {
    for policy in Policy::ALL {
        let b = balancer(policy);
        assert!(b.pick(Some(1)).is_none(), "{policy} before any set");
        b.set_endpoints(endpoints(&[("a", 1)])).unwrap();
        b.set_endpoints(Vec::new()).unwrap();
        assert!(b.pick(None).is_none(), "{policy} after emptying");
    }
}

#[test]
fn weight_zero_is_never_chosen() {
    for policy in Policy::ALL {
        let b = balancer(policy);
        b.set_endpoints(endpoints(&[("a", 0), ("b", 1), ("c", 2)]))
            .unwrap();
        for keyed in [false, true] {
            let counts = tally(&b, 2_000, keyed);
            assert!(!counts.contains_key("a"), "{policy}: {counts:?}");
            assert_eq!(counts.len(), 2, "{policy}: {counts:?}");
        }
        b.set_endpoints(endpoints(&[("a", 0), ("b", 0)])).unwrap();
        assert!(b.pick(Some(7)).is_none(), "{policy} with all weights 0");
    }
}

// ---- round robin ----

#[test]
fn round_robin_cycles_in_order_ignoring_weights() {
    let b = balancer(Policy::RoundRobin);
    b.set_endpoints(endpoints(&[("a", 1), ("b", 9), ("c", 1)]))
        .unwrap();
    assert_eq!(ids((0..7).map(|_| b.pick(None).unwrap())), "abcabca");
}

#[test]
fn weighted_round_robin_is_nginx_smooth_sequence() {
    let b = balancer(Policy::WeightedRoundRobin);
    b.set_endpoints(endpoints(&[("a", 5), ("b", 1), ("c", 1)]))
        .unwrap();
    assert_eq!(ids((0..7).map(|_| b.pick(None).unwrap())), "aabacaa");
    assert_eq!(ids((0..7).map(|_| b.pick(None).unwrap())), "aabacaa");
}

// ---- random ----

#[test]
fn random_is_proportional_to_weight() {
    let b = balancer(Policy::Random);
    b.set_endpoints(endpoints(&[("a", 1), ("b", 2), ("c", 7)]))
        .unwrap();
    let counts = tally(&b, 10_000, false);
    for (id, expected) in [("a", 1_000), ("b", 2_000), ("c", 7_000)] {
        assert!(counts[id].abs_diff(expected) < 250, "{counts:?}");
    }
}

#[test]
fn same_seed_same_choices() {
    let run = || {
        let b = balancer(Policy::Random);
        b.set_endpoints(endpoints(&[("a", 1), ("b", 1), ("c", 1)]))
            .unwrap();
        ids((0..50).map(|_| b.pick(None).unwrap()))
    };
    assert_eq!(run(), run());
}

// ---- least request ----

#[test]
fn least_request_avoids_an_endpoint_with_a_request_in_flight() {
    let b = balancer(Policy::LeastRequest);
    b.set_endpoints(endpoints(&[("a", 1), ("b", 1), ("c", 1)]))
        .unwrap();
    let held = std::iter::repeat_with(|| b.pick(None).unwrap())
        .find(|p| p.endpoint.id == "a")
        .unwrap();
    let counts = tally(&b, 1_000, false);
    assert!(!counts.contains_key("a"), "{counts:?}");
    assert_eq!(b.stats("a").unwrap().in_flight, 1);
    drop(held);
    assert_eq!(b.stats("a").unwrap().in_flight, 0);
}

#[test]
fn least_request_keeps_held_requests_balanced() {
    let b = balancer(Policy::LeastRequest);
    b.set_endpoints(endpoints(&[("a", 1), ("b", 1), ("c", 1)]))
        .unwrap();
    let held: Vec<Pick> = (0..300).map(|_| b.pick(None).unwrap()).collect();
    for id in ["a", "b", "c"] {
        let n = b.stats(id).unwrap().in_flight;
        assert!(n.abs_diff(100) <= 5, "{id}: {n}");
    }
    drop(held);
    assert!(
        ["a", "b", "c"]
            .iter()
            .all(|id| b.stats(id).unwrap().in_flight == 0)
    );
}

#[test]
fn least_request_samples_by_weight_when_idle() {
    let b = balancer(Policy::LeastRequest);
    b.set_endpoints(endpoints(&[("a", 1), ("b", 3)])).unwrap();
    // All idle: every comparison ties, so the weighted first draw decides.
    let counts = tally(&b, 10_000, false);
    assert!(counts["b"].abs_diff(7_500) < 250, "{counts:?}");
}

// ---- P2C peak EWMA ----

#[test]
fn p2c_ewma_steers_away_from_a_slow_endpoint() {
    let b = balancer(Policy::P2cEwma);
    b.set_endpoints(endpoints(&[("fast1", 1), ("slow", 1), ("fast2", 1)]))
        .unwrap();
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..1_000 {
        let pick = b.pick(None).unwrap();
        let latency = if pick.endpoint.id == "slow" { 200 } else { 5 };
        *counts.entry(pick.endpoint.id.clone()).or_default() += 1;
        pick.finish(Duration::from_millis(latency), true);
    }
    // Only picks before its first response reach it; after that its 200 ms
    // estimate loses every comparison.
    assert!(counts.get("slow").copied().unwrap_or(0) <= 5, "{counts:?}");
    let slow = b.stats("slow").unwrap().latency_ewma;
    assert!(slow > Duration::from_millis(190), "{slow:?}");
}

#[test]
fn p2c_ewma_new_endpoint_starts_at_the_prior() {
    let b = balancer(Policy::P2cEwma);
    b.set_endpoints(endpoints(&[("a", 1)])).unwrap();
    let prior = b.stats("a").unwrap().latency_ewma;
    assert!(
        prior <= Duration::from_millis(30) && prior > Duration::from_millis(29),
        "{prior:?}"
    );
}

#[test]
fn p2c_ewma_counts_a_failure_as_at_least_the_penalty() {
    let b = balancer(Policy::P2cEwma);
    b.set_endpoints(endpoints(&[("a", 1)])).unwrap();
    b.pick(None)
        .unwrap()
        .finish(Duration::from_millis(2), false);
    let ewma = b.stats("a").unwrap().latency_ewma;
    assert!(ewma > Duration::from_millis(990), "{ewma:?}");
}

#[test]
fn other_policies_do_not_learn_latency() {
    let b = balancer(Policy::RoundRobin);
    b.set_endpoints(endpoints(&[("a", 1)])).unwrap();
    b.pick(None).unwrap().finish(Duration::from_secs(5), true);
    assert!(b.stats("a").unwrap().latency_ewma <= Duration::from_millis(30));
}

// ---- hash policies ----

#[test]
fn hash_policies_are_sticky_per_key_and_spread_without_one() {
    for policy in [Policy::RingHash, Policy::Maglev] {
        let b = balancer(policy);
        b.set_endpoints(endpoints(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]))
            .unwrap();
        for user in ["alice", "bob", "carol"] {
            let key = hash_key(user.as_bytes());
            let first = b.pick(Some(key)).unwrap().endpoint.id.clone();
            assert!((0..20).all(|_| b.pick(Some(key)).unwrap().endpoint.id == first));
        }
        let unkeyed = tally(&b, 400, false);
        assert_eq!(unkeyed.len(), 4, "{policy}: {unkeyed:?}");
    }
}

#[test]
fn hash_policies_keep_keys_when_an_unrelated_endpoint_leaves() {
    for policy in [Policy::RingHash, Policy::Maglev] {
        let b = balancer(policy);
        let all = endpoints(&[("a", 1), ("b", 1), ("c", 1), ("d", 1), ("e", 1)]);
        b.set_endpoints(all.clone()).unwrap();
        let owner = |b: &Balancer, k: u64| b.pick(Some(k)).unwrap().endpoint.id.clone();
        let before: Vec<String> = (0..10_000).map(|k| owner(&b, k)).collect();
        b.set_endpoints(all.into_iter().filter(|e| e.id != "c").collect())
            .unwrap();
        let kept = (0..10_000u64)
            .filter(|&k| before[k as usize] != "c")
            .filter(|&k| owner(&b, k) == before[k as usize])
            .count();
        let not_on_c = before.iter().filter(|id| *id != "c").count();
        // Ring hash moves none of them; Maglev a few.
        assert!(
            kept as f64 >= 0.95 * not_on_c as f64,
            "{policy}: {kept}/{not_on_c}"
        );
    }
}

// ---- updates ----

#[test]
fn set_endpoints_keeps_stats_of_surviving_ids() {
    let b = balancer(Policy::P2cEwma);
    b.set_endpoints(endpoints(&[("a", 1)])).unwrap();
    b.pick(None)
        .unwrap()
        .finish(Duration::from_millis(300), true);
    let held = b.pick(None).unwrap();

    b.set_endpoints(endpoints(&[("a", 2), ("b", 1)])).unwrap();
    let a = b.stats("a").unwrap();
    assert_eq!(a.in_flight, 1);
    assert!(a.latency_ewma > Duration::from_millis(290), "{a:?}");
    let new = b.stats("b").unwrap();
    assert_eq!(new.in_flight, 0);
    assert!(new.latency_ewma <= Duration::from_millis(30), "{new:?}");

    // Removed ids are forgotten; a pick still held settles harmlessly.
    b.set_endpoints(endpoints(&[("b", 1)])).unwrap();
    assert!(b.stats("a").is_none());
    drop(held);
    b.set_endpoints(endpoints(&[("a", 1), ("b", 1)])).unwrap();
    let fresh = b.stats("a").unwrap();
    assert_eq!(fresh.in_flight, 0);
    assert!(fresh.latency_ewma <= Duration::from_millis(30), "{fresh:?}");
}

#[test]
fn rejected_set_leaves_the_previous_one() {
    let b = balancer(Policy::RoundRobin);
    b.set_endpoints(endpoints(&[("a", 1)])).unwrap();
    let err = b
        .set_endpoints(endpoints(&[("b", 1), ("b", 2)]))
        .unwrap_err();
    assert_eq!(err, EndpointsError::DuplicateId("b".into()));
    assert_eq!(b.pick(None).unwrap().endpoint.id, "a");
}

#[test]
fn maglev_refuses_more_endpoints_than_slots() {
    let small = Config {
        maglev_table_size: 3,
        ..config()
    };
    let b = Balancer::with_config(Policy::Maglev, small).unwrap();
    let err = b
        .set_endpoints(endpoints(&[("a", 1), ("b", 1), ("c", 1), ("d", 1)]))
        .unwrap_err();
    assert_eq!(
        err,
        EndpointsError::TooManyForMaglev {
            endpoints: 4,
            table_size: 3
        }
    );
    assert!(err.to_string().contains("maglev_table_size"));
}

#[test]
fn invalid_config_is_refused() {
    let bad = Config {
        maglev_table_size: 1_000,
        ..config()
    };
    assert!(Balancer::with_config(Policy::Maglev, bad).is_err());
}

// ---- concurrency ----

/// Pickers run while another thread swaps sets; every pick must succeed and
/// every in-flight count must return to zero. Bounded: fixed pick and swap counts.
#[test]
fn concurrent_picks_during_swaps() {
    let sets = [
        endpoints(&[("a", 1), ("b", 2), ("c", 3)]),
        endpoints(&[("b", 1), ("c", 1), ("d", 5)]),
        endpoints(&[("a", 2), ("d", 1)]),
    ];
    let known: HashSet<&str> = ["a", "b", "c", "d"].into();
    for policy in Policy::ALL {
        let b = Arc::new(balancer(policy));
        b.set_endpoints(sets[0].clone()).unwrap();
        let done = AtomicBool::new(false);
        thread::scope(|s| {
            let swapper = s.spawn(|| {
                for i in 1..=60 {
                    b.set_endpoints(sets[i % sets.len()].clone()).unwrap();
                    thread::yield_now();
                }
                done.store(true, Ordering::Relaxed);
            });
            let pickers: Vec<_> = (0..3u64)
                .map(|t| {
                    let (b, known) = (&b, &known);
                    s.spawn(move || {
                        let mut held = Vec::new();
                        for i in 0..3_000u64 {
                            let pick = b.pick(Some(t * 10_000 + i)).expect("sets are never empty");
                            assert!(known.contains(pick.endpoint.id.as_str()));
                            // Hold a few picks across swaps, release the rest.
                            if i % 7 == 0 {
                                held.push(pick);
                            } else {
                                pick.finish(Duration::from_micros(i % 500), i % 11 != 0);
                            }
                            if held.len() > 8 {
                                held.clear();
                            }
                        }
                    })
                })
                .collect();
            for p in pickers {
                p.join().unwrap();
            }
            swapper.join().unwrap();
        });
        assert!(done.load(Ordering::Relaxed));
        for e in &sets[60 % sets.len()] {
            assert_eq!(b.stats(&e.id).unwrap().in_flight, 0, "{policy}: {}", e.id);
        }
    }
}

#[test]
fn debug_names_the_policy() {
    let b = balancer(Policy::Maglev);
    assert!(format!("{b:?}").contains("Maglev"));
}
