use super::*;

fn config() -> BreakerConfig {
    BreakerConfig {
        failure_rate: 0.5,
        slow_call: None,
        slow_call_rate: 0.8,
        min_requests: 4,
        window_secs: 10,
        open_for: Duration::from_secs(5),
        half_open_requests: 2,
        max_concurrent: None,
    }
}

const FAST: Duration = Duration::from_millis(1);

fn call(b: &CircuitBreaker, failed: bool, latency: Duration, now: Instant) -> BreakerState {
    let permit = b.admit(now).expect("admitted");
    b.record(permit, failed, latency, now)
}

#[test]
fn defaults_follow_resilience4j() {
    let c = BreakerConfig::from_spec(&concord_api::gateway::CircuitBreaker::default());
    assert_eq!(c.failure_rate, 0.5);
    assert_eq!(c.slow_call, None);
    assert_eq!(c.min_requests, 20);
    assert_eq!(c.window_secs, 10);
    assert_eq!(c.open_for, Duration::from_secs(5));
    assert_eq!(c.half_open_requests, 3);
    assert_eq!(c.max_concurrent, None);
}

#[test]
fn opens_at_the_failure_rate_once_min_requests_are_in() {
    let b = CircuitBreaker::new(config());
    let t = Instant::now();
    // Three failures alone are below min_requests.
    for _ in 0..3 {
        assert_eq!(call(&b, true, FAST, t), BreakerState::Closed);
    }
    assert_eq!(call(&b, true, FAST, t), BreakerState::Open);
    assert_eq!(b.admit(t).unwrap_err(), Refused::Open);
    assert_eq!(b.state(t + Duration::from_secs(4)), BreakerState::Open);
}

#[test]
fn stays_closed_below_the_failure_rate() {
    let b = CircuitBreaker::new(config());
    let t = Instant::now();
    for i in 0..20 {
        // One in three fails: 33 % < 50 %.
        assert_eq!(call(&b, i % 3 == 2, FAST, t), BreakerState::Closed);
    }
}

#[test]
fn old_outcomes_leave_the_window() {
    let b = CircuitBreaker::new(config());
    let t = Instant::now();
    for _ in 0..3 {
        call(&b, true, FAST, t);
    }
    // Ten seconds on, the three failures no longer count.
    let later = t + Duration::from_secs(10);
    assert_eq!(call(&b, true, FAST, later), BreakerState::Closed);
    for _ in 0..3 {
        call(&b, false, FAST, later);
    }
    assert_eq!(b.state(later), BreakerState::Closed);
}

#[test]
fn slow_calls_open_it_when_configured() {
    let mut c = config();
    c.slow_call = Some(Duration::from_millis(100));
    let b = CircuitBreaker::new(c);
    let t = Instant::now();
    let slow = Duration::from_millis(150);
    for _ in 0..3 {
        assert_eq!(call(&b, false, slow, t), BreakerState::Closed);
    }
    assert_eq!(call(&b, false, slow, t), BreakerState::Open);
}

#[test]
fn half_open_trials_close_it_when_all_succeed() {
    let b = CircuitBreaker::new(config());
    let t = Instant::now();
    for _ in 0..4 {
        call(&b, true, FAST, t);
    }
    let t2 = t + Duration::from_secs(5);
    assert_eq!(b.state(t2), BreakerState::HalfOpen);
    let p1 = b.admit(t2).unwrap();
    let p2 = b.admit(t2).unwrap();
    // Only half_open_requests trials at a time.
    assert_eq!(b.admit(t2).unwrap_err(), Refused::Open);
    assert_eq!(b.record(p1, false, FAST, t2), BreakerState::HalfOpen);
    assert_eq!(b.record(p2, false, FAST, t2), BreakerState::Closed);
    // The window starts empty: three failures do not reopen it.
    for _ in 0..3 {
        assert_eq!(call(&b, true, FAST, t2), BreakerState::Closed);
    }
}

#[test]
fn a_failed_trial_opens_it_again() {
    let b = CircuitBreaker::new(config());
    let t = Instant::now();
    for _ in 0..4 {
        call(&b, true, FAST, t);
    }
    let t2 = t + Duration::from_secs(5);
    assert_eq!(call(&b, false, FAST, t2), BreakerState::HalfOpen);
    assert_eq!(call(&b, true, FAST, t2), BreakerState::Open);
    assert_eq!(b.state(t2 + Duration::from_secs(4)), BreakerState::Open);
    assert_eq!(b.state(t2 + Duration::from_secs(5)), BreakerState::HalfOpen);
}

#[test]
fn outcomes_of_an_earlier_state_are_ignored() {
    let b = CircuitBreaker::new(config());
    let t = Instant::now();
    let straggler = b.admit(t).unwrap();
    for _ in 0..4 {
        call(&b, true, FAST, t);
    }
    let t2 = t + Duration::from_secs(5);
    assert_eq!(b.state(t2), BreakerState::HalfOpen);
    // Admitted while closed: it does not fail a trial.
    assert_eq!(b.record(straggler, true, FAST, t2), BreakerState::HalfOpen);
}

#[test]
fn max_concurrent_caps_calls_in_flight() {
    let mut c = config();
    c.max_concurrent = Some(2);
    let b = CircuitBreaker::new(c);
    let t = Instant::now();
    let p1 = b.admit(t).unwrap();
    let _p2 = b.admit(t).unwrap();
    assert_eq!(b.admit(t).unwrap_err(), Refused::Concurrency);
    assert_eq!(b.in_flight(), 2);
    drop(p1);
    assert!(b.admit(t).is_ok());
}
