//! One immutable endpoint set with the lookup structure its policy needs.
//!
//! A snapshot is built off the request path by
//! [`Balancer::set_endpoints`](crate::Balancer::set_endpoints) and swapped in
//! whole, so a pick sees either the old set or the new one, never a mix, and
//! never waits for a table to be built.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use crate::balancer::EndpointsError;
use crate::config::Config;
use crate::endpoint::Endpoint;
use crate::maglev::Maglev;
use crate::p2c;
use crate::policy::Policy;
use crate::random::Weights;
use crate::ring_hash::Ring;
use crate::rng::Rng;
use crate::round_robin::{self, SmoothWeighted};
use crate::stats::Stats;

/// An endpoint that can be chosen (weight above zero) with its shared stats.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) stats: Arc<Stats>,
}

/// The members of one set, in the order given, and how to choose among them.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub(crate) members: Vec<Member>,
    weights: Weights,
    chooser: Chooser,
}

/// The per-policy state of one set. Tables are built once per set; only
/// smooth weighted round robin mutates on a pick.
#[derive(Debug)]
enum Chooser {
    /// No member can be chosen.
    Empty,
    RoundRobin,
    SmoothWeighted(SmoothWeighted),
    Random,
    LeastRequest,
    PeakEwma,
    Ring(Ring),
    Maglev(Maglev),
}

/// What a pick needs from the balancer besides the set itself.
pub(crate) struct PickContext<'a> {
    pub(crate) rng: &'a Rng,
    pub(crate) cursor: &'a AtomicU64,
    pub(crate) decay_ns: f64,
}

impl Snapshot {
    /// The set with no endpoints.
    pub(crate) fn empty() -> Self {
        Self {
            members: Vec::new(),
            weights: Weights::new([]),
            chooser: Chooser::Empty,
        }
    }

    /// Builds the set for `policy` from members that all have weight above zero.
    pub(crate) fn build(
        policy: Policy,
        members: Vec<Member>,
        config: &Config,
    ) -> Result<Self, EndpointsError> {
        if members.is_empty() {
            return Ok(Self::empty());
        }
        let keyed: Vec<(&str, u32)> = members
            .iter()
            .map(|m| (m.endpoint.id.as_str(), m.endpoint.weight))
            .collect();
        let chooser = match policy {
            Policy::RoundRobin => Chooser::RoundRobin,
            Policy::WeightedRoundRobin => {
                Chooser::SmoothWeighted(SmoothWeighted::new(keyed.iter().map(|&(_, w)| w)))
            }
            Policy::Random => Chooser::Random,
            Policy::LeastRequest => Chooser::LeastRequest,
            Policy::P2cEwma => Chooser::PeakEwma,
            Policy::RingHash => Chooser::Ring(Ring::new(
                &keyed,
                config.ring_vnodes_per_weight,
                config.ring_max_points,
            )),
            Policy::Maglev => {
                let table_size = config.maglev_table_size;
                if keyed.len() as u64 > table_size {
                    return Err(EndpointsError::TooManyForMaglev {
                        endpoints: keyed.len(),
                        table_size,
                    });
                }
                Chooser::Maglev(Maglev::new(&keyed, table_size))
            }
        };
        let weights = Weights::new(keyed.iter().map(|&(_, w)| w));
        Ok(Self {
            members,
            weights,
            chooser,
        })
    }

    /// The index of the member for one request, or `None` for an empty set.
    /// Hash policies without a key fall back to a weighted random member, as
    /// Envoy does, so requests lacking the hashed attribute still spread.
    pub(crate) fn choose(&self, key: Option<u64>, cx: &PickContext<'_>) -> Option<usize> {
        let index = match &self.chooser {
            Chooser::Empty => return None,
            Chooser::RoundRobin => round_robin::next(cx.cursor, self.members.len()),
            Chooser::SmoothWeighted(wrr) => wrr.next(),
            Chooser::Random => self.weights.sample(cx.rng),
            Chooser::LeastRequest => p2c::least_request(&self.members, &self.weights, cx.rng),
            Chooser::PeakEwma => p2c::peak_ewma(&self.members, &self.weights, cx.rng, cx.decay_ns),
            Chooser::Ring(ring) => match key {
                Some(key) => ring.lookup(key),
                None => self.weights.sample(cx.rng),
            },
            Chooser::Maglev(maglev) => match key {
                Some(key) => maglev.lookup(key),
                None => self.weights.sample(cx.rng),
            },
        };
        Some(index)
    }
}
