use super::*;

fn config(consecutive_failures: u32, max_ejection_percent: u32) -> OutlierConfig {
    OutlierConfig {
        consecutive_failures,
        base_ejection: Duration::from_secs(10),
        max_ejection_percent,
    }
}

/// `n` failures of `id`; whether the last one ejected it.
fn fail(d: &OutlierDetector, id: &str, n: u32, endpoints: usize, now: Instant) -> bool {
    (0..n)
        .map(|_| d.record(id, true, endpoints, now))
        .last()
        .unwrap_or(false)
}

#[test]
fn defaults_follow_envoy() {
    let c = OutlierConfig::from_spec(&concord_api::gateway::Outlier::default());
    assert_eq!(c.consecutive_failures, 5);
    assert_eq!(c.base_ejection, Duration::from_secs(30));
    assert_eq!(c.max_ejection_percent, 10);
}

#[test]
fn the_cap_rounds_down_but_allows_one_of_two_or_more() {
    let c = config(5, 10);
    assert_eq!(c.max_ejected(1), 0);
    assert_eq!(c.max_ejected(2), 1);
    assert_eq!(c.max_ejected(19), 1);
    assert_eq!(c.max_ejected(25), 2);
    assert_eq!(config(5, 0).max_ejected(10), 0);
    assert_eq!(config(5, 50).max_ejected(5), 2);
    assert_eq!(config(5, 100).max_ejected(1), 1);
}

#[test]
fn consecutive_failures_eject_and_a_success_resets_the_count() {
    let d = OutlierDetector::new(config(3, 50));
    let now = Instant::now();
    assert!(!fail(&d, "a", 2, 4, now));
    assert!(!d.record("a", false, 4, now));
    assert!(!fail(&d, "a", 2, 4, now));
    assert!(!d.is_ejected("a", now));
    assert!(d.record("a", true, 4, now));
    assert!(d.is_ejected("a", now));
    assert!(!d.is_ejected("b", now));
    let e = d.ejections(now);
    assert_eq!(e.len(), 1);
    assert_eq!(
        (e[0].endpoint.as_str(), e[0].remaining, e[0].times_ejected),
        ("a", Duration::from_secs(10), 1)
    );
}

#[test]
fn it_returns_after_its_time_which_grows_with_each_ejection() {
    let d = OutlierDetector::new(config(1, 50));
    let t0 = Instant::now();
    assert!(d.record("a", true, 2, t0));
    assert!(d.is_ejected("a", t0 + Duration::from_secs(9)));
    let t1 = t0 + Duration::from_secs(10);
    assert!(!d.is_ejected("a", t1));
    assert!(d.ejections(t1).is_empty());
    assert!(d.record("a", true, 2, t1));
    assert!(d.is_ejected("a", t1 + Duration::from_secs(19)));
    assert!(!d.is_ejected("a", t1 + Duration::from_secs(20)));
}

#[test]
fn ejection_time_is_capped() {
    let d = OutlierDetector::new(OutlierConfig {
        base_ejection: Duration::from_secs(200),
        ..config(1, 50)
    });
    let mut now = Instant::now();
    assert!(d.record("a", true, 2, now));
    now += Duration::from_secs(200);
    assert!(d.record("a", true, 2, now));
    assert_eq!(d.ejections(now)[0].remaining, MAX_EJECTION);
}

#[test]
fn failures_while_ejected_do_not_extend_it() {
    let d = OutlierDetector::new(config(1, 50));
    let t0 = Instant::now();
    assert!(d.record("a", true, 2, t0));
    assert!(!d.record("a", true, 2, t0 + Duration::from_secs(5)));
    assert!(!d.is_ejected("a", t0 + Duration::from_secs(10)));
}

#[test]
fn the_percentage_cap_holds_back_further_ejections() {
    let d = OutlierDetector::new(config(2, 50));
    let now = Instant::now();
    assert!(fail(&d, "a", 2, 4, now));
    assert!(fail(&d, "b", 2, 4, now));
    assert!(!fail(&d, "c", 5, 4, now), "a third of four is over 50 %");
    assert!(!d.is_ejected("c", now));
    // Once one returns, the next failure of c ejects it.
    let later = now + Duration::from_secs(10);
    assert!(d.record("c", true, 4, later));
}

#[test]
fn a_single_endpoint_is_never_ejected_below_100_percent() {
    let d = OutlierDetector::new(config(1, 90));
    let now = Instant::now();
    assert!(!fail(&d, "a", 10, 1, now));
    assert!(!d.is_ejected("a", now));
}
