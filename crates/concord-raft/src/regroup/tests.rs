//! The hold's rules, on tokio's paused clock: a test sees exactly how long a batch waited.

use concord_state::Command;
use tokio::sync::oneshot;

use super::*;

fn put(n: usize) -> Pending {
    let (reply, _answer) = oneshot::channel();
    Pending {
        cmd: Command::Put {
            key: format!("k{n}"),
            value: vec![0; 8],
            lease: None,
            cas: None,
        },
        reply,
    }
}

fn keys(batch: &[Pending]) -> Vec<String> {
    batch
        .iter()
        .map(|p| match &p.cmd {
            Command::Put { key, .. } => key.clone(),
            other => panic!("unexpected command {other:?}"),
        })
        .collect()
}

/// Queues `n` proposals numbered from `from`.
async fn queue(intake: &Intake, from: usize, n: usize) {
    for i in from..from + n {
        assert!(intake.send(put(i)).await.is_ok());
    }
}

/// Submits `batch` as a round that takes `took` and is then answered.
async fn answer_after(batches: &Batches, batch: &[Pending], took: Duration) {
    assert_eq!(batches.own as usize, batch.len());
    let round = batches.round();
    tokio::time::sleep(took).await;
    round.answered();
}

/// Group A (writers k0, k1) was in flight while group B (k2) queued; A was just
/// answered after a 5 ms round.
async fn two_groups_answered(intake: &Intake, batches: &mut Batches) {
    queue(intake, 0, 2).await;
    let first = batches.first().await.unwrap();
    let a = batches.fill(first).await;
    queue(intake, 2, 1).await;
    answer_after(batches, &a, Duration::from_millis(5)).await;
}

#[tokio::test(start_paused = true)]
async fn nothing_answered_means_no_hold() {
    let (intake, mut batches) = channel(64, Arc::default());
    queue(&intake, 0, 3).await;
    let first = batches.first().await.unwrap();
    let start = Instant::now();
    let batch = batches.fill(first).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(keys(&batch), ["k0", "k1", "k2"]);
}

#[tokio::test(start_paused = true)]
async fn the_next_batch_waits_for_the_writers_just_answered() {
    let (intake, mut batches) = channel(64, Arc::default());
    two_groups_answered(&intake, &mut batches).await;

    // A's writers come back only once the batching side waits for them (the
    // paused clock would round any sleep up to the hold's own millisecond tick).
    let back = intake.clone();
    tokio::spawn(async move {
        for _ in 0..3 {
            tokio::task::yield_now().await;
        }
        queue(&back, 3, 2).await;
    });
    let first = batches.first().await.unwrap();
    let start = Instant::now();
    let b = batches.fill(first).await;
    assert_eq!(keys(&b), ["k2", "k3", "k4"], "both groups share one batch");
    assert!(start.elapsed() < MAX_HOLD, "held to the deadline");
    assert_eq!(batches.counters.holds.load(Ordering::Relaxed), 1);
    assert_eq!(batches.counters.timeouts.load(Ordering::Relaxed), 0);
}

#[tokio::test(start_paused = true)]
async fn a_hold_that_runs_out_skips_the_next_one() {
    let (intake, mut batches) = channel(64, Arc::default());
    two_groups_answered(&intake, &mut batches).await;

    // Nobody comes back: the hold ends at its bound, within one timer tick.
    let first = batches.first().await.unwrap();
    let start = Instant::now();
    let b = batches.fill(first).await;
    assert_eq!(keys(&b), ["k2"]);
    let held = start.elapsed();
    assert!(
        held >= MAX_HOLD && held <= MAX_HOLD + Duration::from_millis(1),
        "held {held:?}"
    );

    // The next batch after that goes at once, though its writers do not come back either.
    queue(&intake, 3, 1).await;
    answer_after(&batches, &b, Duration::from_millis(5)).await;
    let first = batches.first().await.unwrap();
    let start = Instant::now();
    let c = batches.fill(first).await;
    assert_eq!(keys(&c), ["k3"]);
    assert_eq!(start.elapsed(), Duration::ZERO);

    // And the one after holds again.
    queue(&intake, 4, 1).await;
    answer_after(&batches, &c, Duration::from_millis(5)).await;
    let first = batches.first().await.unwrap();
    let start = Instant::now();
    batches.fill(first).await;
    assert!(start.elapsed() >= MAX_HOLD);
    assert_eq!(batches.counters.holds.load(Ordering::Relaxed), 2);
    assert_eq!(batches.counters.timeouts.load(Ordering::Relaxed), 2);
}

#[tokio::test(start_paused = true)]
async fn a_short_round_bounds_the_hold() {
    let (intake, mut batches) = channel(64, Arc::default());
    queue(&intake, 0, 1).await;
    let first = batches.first().await.unwrap();
    let a = batches.fill(first).await;
    queue(&intake, 1, 1).await;
    // A round of 100 µs: holding longer than that would cost more than it saves.
    answer_after(&batches, &a, Duration::from_micros(100)).await;
    let back = intake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        queue(&back, 2, 1).await;
    });
    let first = batches.first().await.unwrap();
    let start = Instant::now();
    let b = batches.fill(first).await;
    assert_eq!(keys(&b), ["k1"]);
    // The deadline is 100 µs away; tokio fires it on its next millisecond tick.
    assert!(
        start.elapsed() <= Duration::from_millis(1),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn a_lone_writer_never_waits() {
    let (intake, mut batches) = channel(64, Arc::default());
    for i in 0..5 {
        queue(&intake, i, 1).await;
        let first = batches.first().await.unwrap();
        let start = Instant::now();
        let batch = batches.fill(first).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "round {i}");
        assert_eq!(batch.len(), 1);
        answer_after(&batches, &batch, Duration::from_millis(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_stops_the_hold() {
    let (intake, mut batches) = channel(4096, Arc::default());
    queue(&intake, 0, 1).await;
    let first = batches.first().await.unwrap();
    let a = batches.fill(first).await;
    queue(&intake, 1, 1).await;
    // 5000 writers answered (batches were fuller before); 2000 are back, more than one batch holds.
    drop(a);
    batches.own = 5000;
    let round = batches.round();
    tokio::time::sleep(Duration::from_millis(5)).await;
    round.answered();
    queue(&intake, 2, 2000).await;
    let first = batches.first().await.unwrap();
    let start = Instant::now();
    let b = batches.fill(first).await;
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(b.len(), proposer::MAX_BATCH_COMMANDS);
}

#[tokio::test(start_paused = true)]
async fn relayed_proposals_are_not_waited_for() {
    let (intake, mut batches) = channel(64, Arc::default());
    // A relay's message of three is in flight; one of this node's own writers queues.
    for i in 0..3 {
        assert!(intake.send_relayed(put(i)).await.is_ok());
    }
    let first = batches.first().await.unwrap();
    let a = batches.fill(first).await;
    assert_eq!(a.len(), 3);
    assert_eq!(batches.own, 0);
    queue(&intake, 3, 1).await;
    answer_after(&batches, &[], Duration::from_millis(5)).await;

    let first = batches.first().await.unwrap();
    let start = Instant::now();
    let b = batches.fill(first).await;
    assert_eq!(keys(&b), ["k3"]);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn relayed_arrivals_do_not_end_a_hold() {
    let (intake, mut batches) = channel(64, Arc::default());
    two_groups_answered(&intake, &mut batches).await;

    // Two relayed proposals arrive, then the two own writers come back.
    let back = intake.clone();
    tokio::spawn(async move {
        for i in 3..5 {
            assert!(back.send_relayed(put(i)).await.is_ok());
            tokio::task::yield_now().await;
        }
        queue(&back, 5, 2).await;
    });
    let first = batches.first().await.unwrap();
    let b = batches.fill(first).await;
    assert_eq!(keys(&b), ["k2", "k3", "k4", "k5", "k6"]);
    assert_eq!(batches.own, 3);
}
