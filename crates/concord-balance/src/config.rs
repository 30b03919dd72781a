//! Tuning knobs for a [`Balancer`](crate::Balancer), with their defaults in one place.

use std::time::Duration;

/// Tuning for one [`Balancer`](crate::Balancer). `Config::default()` is what
/// [`Balancer::new`](crate::Balancer::new) uses.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// Seed for the balancer's RNG (random, least-request, P2C EWMA, and hash
    /// policies without a key). `None` seeds from the OS; set it for
    /// reproducible tests and simulations.
    pub seed: Option<u64>,
    /// Time constant of the peak-EWMA latency: an estimate decays towards zero
    /// by a factor of e every `ewma_decay` without new observations, so an
    /// endpoint that was slow is retried after a while. Default 10 s (linkerd).
    pub ewma_decay: Duration,
    /// Latency prior for an endpoint with no observations yet. Default 30 ms
    /// (linkerd's default RTT).
    pub default_rtt: Duration,
    /// A failed request counts as at least this slow in the latency EWMA, so an
    /// endpoint that fails fast does not attract traffic by looking quick.
    /// `Duration::ZERO` records failures at their real latency. Default 1 s.
    pub failure_penalty: Duration,
    /// Ring-hash virtual nodes per unit of weight. Default 100.
    pub ring_vnodes_per_weight: u32,
    /// Upper bound on ring-hash points; weights are scaled down to fit so a
    /// large weight cannot make the ring unbounded. Default 2^20.
    pub ring_max_points: usize,
    /// Maglev lookup-table size; must be prime and should be well above 100x
    /// the endpoint count for an even spread. Default 65537.
    pub maglev_table_size: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            seed: None,
            ewma_decay: Duration::from_secs(10),
            default_rtt: Duration::from_millis(30),
            failure_penalty: Duration::from_secs(1),
            ring_vnodes_per_weight: 100,
            ring_max_points: 1 << 20,
            maglev_table_size: 65_537,
        }
    }
}

/// A [`Config`] that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// Maglev's permutation only visits every slot when the table size is prime.
    #[error("maglev_table_size {0} must be a prime number (e.g. 65537)")]
    MaglevTableNotPrime(u64),
    /// A zero decay would make every estimate vanish at once.
    #[error("ewma_decay must be greater than zero")]
    ZeroEwmaDecay,
    /// Without virtual nodes the ring is empty.
    #[error("ring_vnodes_per_weight must be at least 1")]
    ZeroRingVnodes,
    /// Without points the ring is empty.
    #[error("ring_max_points must be at least 1")]
    ZeroRingPoints,
}

impl Config {
    /// Checks the settings; [`Balancer::with_config`](crate::Balancer::with_config)
    /// calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !is_prime(self.maglev_table_size) {
            return Err(ConfigError::MaglevTableNotPrime(self.maglev_table_size));
        }
        if self.ewma_decay.is_zero() {
            return Err(ConfigError::ZeroEwmaDecay);
        }
        if self.ring_vnodes_per_weight == 0 {
            return Err(ConfigError::ZeroRingVnodes);
        }
        if self.ring_max_points == 0 {
            return Err(ConfigError::ZeroRingPoints);
        }
        Ok(())
    }
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    (2..)
        .take_while(|d| d * d <= n)
        .all(|d| !n.is_multiple_of(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn rejects_unusable_settings() {
        let bad = |f: fn(&mut Config)| {
            let mut c = Config::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert_eq!(
            bad(|c| c.maglev_table_size = 65_536),
            ConfigError::MaglevTableNotPrime(65_536)
        );
        assert_eq!(
            bad(|c| c.maglev_table_size = 1),
            ConfigError::MaglevTableNotPrime(1)
        );
        assert_eq!(
            bad(|c| c.ewma_decay = Duration::ZERO),
            ConfigError::ZeroEwmaDecay
        );
        assert_eq!(
            bad(|c| c.ring_vnodes_per_weight = 0),
            ConfigError::ZeroRingVnodes
        );
        assert_eq!(bad(|c| c.ring_max_points = 0), ConfigError::ZeroRingPoints);
    }

    #[test]
    fn primes() {
        let small: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(small, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        assert!(is_prime(65_537));
        assert!(is_prime(655_373));
    }
}
