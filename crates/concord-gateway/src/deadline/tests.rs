use std::future::{Future, pending, poll_fn};
use std::pin::pin;

use super::*;

/// Runs `future` until `deadline` on `timer`, as the proxy's attempts do.
async fn within<F: Future>(
    timer: &ConnectionTimer,
    deadline: Instant,
    future: F,
) -> Result<F::Output, TimedOut> {
    let mut future = pin!(future);
    poll_fn(|cx| {
        if let Poll::Ready(out) = future.as_mut().poll(cx) {
            return Poll::Ready(Ok(out));
        }
        timer.poll_passed(deadline, cx).map(|()| Err(TimedOut))
    })
    .await
}

const SLACK: Duration = Duration::from_millis(5);

/// Asserts the clock is at `at`, within the timer wheel's resolution.
fn assert_now(at: Instant) {
    let now = Instant::now();
    assert!(
        now >= at && now < at + SLACK,
        "now {now:?}, expected {at:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_future_that_finishes_in_time_is_not_cut() {
    let timer = ConnectionTimer::default();
    let deadline = Instant::now() + Duration::from_secs(5);
    let out = within(&timer, deadline, async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        7
    })
    .await;
    assert_eq!(out, Ok(7));
}

/// A first request with deadline t0 + `first` that answers at t0 + 1 s,
/// then a second one that never answers, with deadline t0 + `second`: it
/// must time out exactly at its own deadline.
async fn second_times_out_at_its_deadline(first: u64, second: u64) {
    let timer = ConnectionTimer::default();
    let t0 = Instant::now();
    let answered = within(
        &timer,
        t0 + Duration::from_secs(first),
        tokio::time::sleep(Duration::from_secs(1)),
    )
    .await;
    assert_eq!(answered, Ok(()));
    let second = t0 + Duration::from_secs(second);
    assert_eq!(within(&timer, second, pending::<()>()).await, Err(TimedOut));
    assert_now(second);
}

#[tokio::test(start_paused = true)]
async fn a_timer_left_at_an_earlier_deadline_moves_to_the_next_one() {
    // The timer stays at t0 + 5 s and fires there, which must not cut the
    // second request.
    second_times_out_at_its_deadline(5, 6).await;
}

#[tokio::test(start_paused = true)]
async fn an_earlier_deadline_moves_the_timer_forward() {
    second_times_out_at_its_deadline(10, 3).await;
}

#[tokio::test(start_paused = true)]
async fn a_passed_deadline_times_out_at_once_and_the_timer_is_reusable() {
    let timer = ConnectionTimer::default();
    let past = Instant::now();
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(within(&timer, past, pending::<()>()).await, Err(TimedOut));
    let next = Instant::now() + Duration::from_secs(2);
    assert_eq!(within(&timer, next, pending::<()>()).await, Err(TimedOut));
    assert_now(next);
}
