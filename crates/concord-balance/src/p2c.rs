//! Power of two choices: least-request and peak-EWMA.
//!
//! Comparing two random candidates instead of scanning for the global best
//! costs O(1), needs no shared ordering, and avoids the herd effect of every
//! balancer instance sending to the same "best" endpoint at once, while still
//! bounding the worst load exponentially better than random choice.

use std::time::Instant;

use crate::random::Weights;
use crate::rng::Rng;
use crate::snapshot::Member;

/// The member with fewer requests in flight, of two drawn by weight.
pub(crate) fn least_request(members: &[Member], weights: &Weights, rng: &Rng) -> usize {
    choose(members.len(), weights, rng, |i| {
        members[i].stats.in_flight()
    })
}

/// The member with the lower peak-EWMA cost (latency estimate times requests
/// in flight plus one), of two drawn by weight.
pub(crate) fn peak_ewma(members: &[Member], weights: &Weights, rng: &Rng, decay_ns: f64) -> usize {
    let now = Instant::now();
    choose(members.len(), weights, rng, |i| {
        members[i].stats.cost(now, decay_ns)
    })
}

/// Of two distinct members drawn by weight, the cheaper; ties keep the first
/// draw, which is itself random.
fn choose<C: PartialOrd>(
    n: usize,
    weights: &Weights,
    rng: &Rng,
    cost: impl Fn(usize) -> C,
) -> usize {
    if n == 1 {
        return 0;
    }
    let (a, b) = weights.sample_two(rng);
    if cost(b) < cost(a) { b } else { a }
}
