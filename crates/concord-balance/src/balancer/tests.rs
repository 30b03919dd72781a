//! Tests that look inside the balancer; behaviour through the public API is
//! tested in `tests/balancer.rs`.

use super::*;

fn seeded(policy: Policy) -> Balancer {
    let config = Config {
        seed: Some(3),
        ..Config::default()
    };
    Balancer::with_config(policy, config).unwrap()
}

fn three() -> Vec<Endpoint> {
    ["a", "b", "c"]
        .map(|id| Endpoint::new(id, format!("{id}:80"), 1))
        .to_vec()
}

/// Makes endpoint `index` of the current set look busy without holding picks.
fn make_busy(balancer: &Balancer, index: usize, in_flight: usize) {
    let stats = Arc::clone(&balancer.current().members[index].stats);
    for _ in 0..in_flight {
        stats.begin();
    }
}

fn counts(balancer: &Balancer, picks: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for _ in 0..picks {
        let pick = balancer.pick(None).unwrap();
        *counts.entry(pick.endpoint.id.clone()).or_default() += 1;
    }
    counts
}

#[test]
fn least_request_never_picks_the_busy_endpoint_when_others_are_idle() {
    let balancer = seeded(Policy::LeastRequest);
    balancer.set_endpoints(three()).unwrap();
    make_busy(&balancer, 0, 5);
    let counts = counts(&balancer, 1_000);
    assert_eq!(counts.get("a"), None, "{counts:?}");
    assert!(counts["b"].abs_diff(500) < 80, "{counts:?}");
}

#[test]
fn p2c_ewma_weighs_in_flight_at_equal_latency() {
    let balancer = seeded(Policy::P2cEwma);
    balancer.set_endpoints(three()).unwrap();
    make_busy(&balancer, 0, 1);
    let counts = counts(&balancer, 1_000);
    assert_eq!(counts.get("a"), None, "{counts:?}");
}

#[test]
fn surviving_ids_share_the_same_stats_object() {
    let balancer = seeded(Policy::LeastRequest);
    balancer.set_endpoints(three()).unwrap();
    let before = Arc::clone(&balancer.current().members[1].stats);
    let mut next = three();
    next.remove(0);
    next.push(Endpoint::new("d", "d:80", 1));
    balancer.set_endpoints(next).unwrap();
    assert!(Arc::ptr_eq(&before, &balancer.current().members[0].stats));
}

#[test]
fn weight_zero_endpoints_keep_stats_but_leave_the_set() {
    let balancer = seeded(Policy::RoundRobin);
    let mut endpoints = three();
    endpoints[2].weight = 0;
    balancer.set_endpoints(endpoints).unwrap();
    assert_eq!(balancer.current().members.len(), 2);
    assert!(balancer.stats("c").is_some());
}

#[test]
fn len_counts_the_endpoints_a_pick_can_choose() {
    let balancer = seeded(Policy::RoundRobin);
    assert_eq!((balancer.len(), balancer.is_empty()), (0, true));
    let mut endpoints = three();
    endpoints[2].weight = 0;
    balancer.set_endpoints(endpoints).unwrap();
    assert_eq!((balancer.len(), balancer.is_empty()), (2, false));
}
