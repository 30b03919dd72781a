use super::*;

const MS: f64 = 1e6;
const DECAY: f64 = 10_000.0 * MS;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= b.abs() * 1e-6 + 1e-3
}

#[test]
fn estimate_decays_towards_zero_by_e_per_time_constant() {
    let t0 = Instant::now();
    let e = PeakEwma::new(30.0 * MS, t0);
    assert!(close(e.at(t0, DECAY), 30.0 * MS));
    let later = t0 + Duration::from_secs(10);
    assert!(close(e.at(later, DECAY), 30.0 * MS / std::f64::consts::E));
}

#[test]
fn slower_observation_replaces_the_estimate_at_once() {
    let t0 = Instant::now();
    let mut e = PeakEwma::new(30.0 * MS, t0);
    e.observe(500.0 * MS, t0 + Duration::from_millis(1), DECAY);
    assert!(close(
        e.at(t0 + Duration::from_millis(1), DECAY),
        500.0 * MS
    ));
}

#[test]
fn faster_observations_blend_in_by_elapsed_time() {
    let t0 = Instant::now();
    let mut e = PeakEwma::new(100.0 * MS, t0);
    // Right after the last update a fast response barely moves the estimate ...
    e.observe(1.0 * MS, t0 + Duration::from_millis(1), DECAY);
    assert!(e.at(t0 + Duration::from_millis(1), DECAY) > 99.0 * MS);
    // ... a time constant later it has mostly taken over.
    let t1 = t0 + Duration::from_millis(1) + Duration::from_secs(10);
    e.observe(1.0 * MS, t1, DECAY);
    let expected = 100.0 * MS * (-1e-4f64).exp() / std::f64::consts::E
        + 1.0 * MS * (1.0 - 1.0 / std::f64::consts::E);
    assert!(
        (e.at(t1, DECAY) - expected).abs() < 0.5 * MS,
        "{}",
        e.at(t1, DECAY)
    );
}

#[test]
fn steady_latency_converges_to_itself() {
    let t0 = Instant::now();
    let mut e = PeakEwma::new(30.0 * MS, t0);
    for i in 1..=2_000 {
        e.observe(5.0 * MS, t0 + Duration::from_millis(100 * i), DECAY);
    }
    let now = t0 + Duration::from_millis(200_000);
    assert!((e.at(now, DECAY) - 5.0 * MS).abs() < 0.1 * MS);
}

#[test]
fn long_idle_keeps_a_floor_so_in_flight_still_counts() {
    let t0 = Instant::now();
    let s = Stats::new(Duration::from_millis(30), t0);
    s.begin();
    s.begin();
    let much_later = t0 + Duration::from_secs(100_000);
    assert_eq!(s.cost(much_later, DECAY), 3.0 * MIN_ESTIMATE_NS);
}

#[test]
fn failure_counts_as_at_least_the_penalty() {
    let t0 = Instant::now();
    let s = Stats::new(Duration::from_millis(30), t0);
    let p = EwmaParams {
        decay_ns: DECAY,
        failure_penalty_ns: 1_000.0 * MS,
    };
    s.observe(Duration::from_millis(2), false, t0, p);
    assert_eq!(s.snapshot(t0, DECAY).latency_ewma, Duration::from_secs(1));
}

#[test]
fn in_flight_counts_begin_and_end() {
    let s = Stats::new(Duration::from_millis(30), Instant::now());
    s.begin();
    s.begin();
    s.end();
    assert_eq!(s.in_flight(), 1);
}
