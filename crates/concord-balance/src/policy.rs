//! The names of the balancing algorithms, as they appear in configuration.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Which algorithm a [`Balancer`](crate::Balancer) uses to choose an endpoint.
///
/// The serialized names (`round_robin`, `p2c_ewma`, ...) are the ones used in
/// configuration and on the wire; [`Policy::as_str`] and [`FromStr`] use the same
/// names so config files, CLI flags and logs agree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Each endpoint in turn, ignoring weights (weight 0 is still excluded).
    RoundRobin,
    /// nginx's smooth weighted round robin: proportional and evenly interleaved.
    WeightedRoundRobin,
    /// Independent random choice, proportional to weight.
    Random,
    /// Power of two choices: of two weighted-random endpoints, the one with fewer
    /// requests in flight.
    LeastRequest,
    /// Power of two choices on peak-EWMA latency times requests in flight
    /// (Finagle / linkerd). The default: it adapts to slow endpoints without
    /// any configuration.
    #[default]
    P2cEwma,
    /// Consistent hashing on a ring with virtual nodes proportional to weight.
    RingHash,
    /// Google's Maglev lookup table: consistent hashing with an even spread and
    /// O(1) lookup.
    Maglev,
}

impl Policy {
    /// Every policy, for help texts and exhaustive tests.
    pub const ALL: [Policy; 7] = [
        Policy::RoundRobin,
        Policy::WeightedRoundRobin,
        Policy::Random,
        Policy::LeastRequest,
        Policy::P2cEwma,
        Policy::RingHash,
        Policy::Maglev,
    ];

    /// The configuration name, identical to the serde name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Policy::RoundRobin => "round_robin",
            Policy::WeightedRoundRobin => "weighted_round_robin",
            Policy::Random => "random",
            Policy::LeastRequest => "least_request",
            Policy::P2cEwma => "p2c_ewma",
            Policy::RingHash => "ring_hash",
            Policy::Maglev => "maglev",
        }
    }

    /// Whether the policy routes by the key passed to
    /// [`Balancer::pick`](crate::Balancer::pick); other policies ignore it.
    pub const fn uses_key(self) -> bool {
        matches!(self, Policy::RingHash | Policy::Maglev)
    }
}

impl fmt::Display for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A policy name that is not one of [`Policy::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown load-balancing policy {name:?}; expected one of round_robin, \
     weighted_round_robin, random, least_request, p2c_ewma, ring_hash, maglev"
)]
pub struct ParsePolicyError {
    /// The name that was given.
    pub name: String,
}

impl FromStr for Policy {
    type Err = ParsePolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Policy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| ParsePolicyError { name: s.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_from_str_and_serde() {
        for policy in Policy::ALL {
            assert_eq!(policy.as_str().parse::<Policy>(), Ok(policy));
            let json = serde_json::to_string(&policy).unwrap();
            assert_eq!(json, format!("\"{}\"", policy.as_str()));
            assert_eq!(serde_json::from_str::<Policy>(&json).unwrap(), policy);
        }
    }

    #[test]
    fn unknown_name_is_an_error_naming_the_choices() {
        let err = "fastest".parse::<Policy>().unwrap_err();
        assert_eq!(err.name, "fastest");
        assert!(err.to_string().contains("p2c_ewma"));
    }

    #[test]
    fn default_is_p2c_ewma() {
        assert_eq!(Policy::default(), Policy::P2cEwma);
    }
}
