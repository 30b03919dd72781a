//! Local token-bucket rate limits (per gateway process, not cluster-wide).
//!
//! A bucket holds up to `burst` tokens and refills at `requests_per_second`;
//! each request takes one. An empty bucket answers 429 with `Retry-After`
//! (whole seconds until a token is back, at least 1). Buckets are keyed by
//! the route (one bucket), the client IP, or a header's value (requests
//! without the header share the bucket of the empty value).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use concord_api::gateway::RateLimit;
use http::HeaderMap;
use http::header::HeaderName;

use crate::error::RouteError;

/// Past this many buckets, full ones are forgotten (a full bucket is the
/// same as no bucket), so a scan of client IPs cannot grow memory forever.
const MAX_IDLE_BUCKETS: usize = 10_000;

/// What requests share a bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    /// The whole route.
    Route,
    /// Each client IP.
    SourceIp,
    /// Each value of a header.
    Header(HeaderName),
}

impl RateKey {
    /// Parses `route`, `source_ip` or `header:NAME`.
    pub fn parse(s: &str) -> Result<Self, RouteError> {
        match s {
            "route" => Ok(RateKey::Route),
            "source_ip" => Ok(RateKey::SourceIp),
            _ => s
                .strip_prefix("header:")
                .and_then(|n| HeaderName::from_bytes(n.as_bytes()).ok())
                .map(RateKey::Header)
                .ok_or_else(|| {
                    RouteError::invalid(
                        "rate_limit.key",
                        "expected route, source_ip or header:NAME",
                    )
                }),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// One route's limiter.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    key: RateKey,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    /// A limiter of `rate` requests per second with bursts of `burst`.
    pub fn new(rate: f64, burst: u32, key: RateKey) -> Self {
        RateLimiter {
            rate,
            burst: f64::from(burst.max(1)),
            key,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// From a route's `rate_limit`, with the defaults filled in.
    pub fn from_spec(spec: &RateLimit) -> Result<Self, RouteError> {
        if !(spec.requests_per_second > 0.0 && spec.requests_per_second.is_finite()) {
            return Err(RouteError::invalid(
                "rate_limit.requests_per_second",
                "must be a positive number",
            ));
        }
        let burst = spec
            .burst
            .unwrap_or(spec.requests_per_second.ceil().min(f64::from(u32::MAX)) as u32);
        let key = spec
            .key
            .as_deref()
            .map(RateKey::parse)
            .transpose()?
            .unwrap_or(RateKey::Route);
        Ok(RateLimiter::new(spec.requests_per_second, burst, key))
    }

    /// The bucket a request falls in.
    pub fn key_of<'a>(&self, headers: &'a HeaderMap, client: IpAddr) -> std::borrow::Cow<'a, str> {
        match &self.key {
            RateKey::Route => "".into(),
            RateKey::SourceIp => client.to_string().into(),
            RateKey::Header(name) => headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .into(),
        }
    }

    /// Takes a token from `key`'s bucket, or says how long until one is back.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > MAX_IDLE_BUCKETS && !buckets.contains_key(key) {
            buckets.retain(|_, b| self.refilled(*b, now) < self.burst);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        bucket.tokens = self.refilled(*bucket, now);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
        }
    }

    fn refilled(&self, b: Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
        (b.tokens + elapsed * self.rate).min(self.burst)
    }
}

/// `Retry-After` in whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs_f64().ceil() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::new(2.0, 3, RateKey::Route);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(l.check("", t0), Ok(()));
        }
        let wait = l.check("", t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-9, "{wait:?}");
        // Half a second later one token is back, and only one.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(l.check("", t1), Ok(()));
        assert!(l.check("", t1).is_err());
        // A long pause refills to the burst, not beyond.
        let t2 = t1 + Duration::from_secs(100);
        for _ in 0..3 {
            assert_eq!(l.check("", t2), Ok(()));
        }
        assert!(l.check("", t2).is_err());
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let l = RateLimiter::new(1.0, 1, RateKey::SourceIp);
        let t = Instant::now();
        assert!(l.check("10.0.0.1", t).is_ok());
        assert!(l.check("10.0.0.1", t).is_err());
        assert!(l.check("10.0.0.2", t).is_ok());
    }

    #[test]
    fn idle_buckets_are_forgotten_past_the_cap() {
        let l = RateLimiter::new(1000.0, 1, RateKey::SourceIp);
        let t = Instant::now();
        for i in 0..=MAX_IDLE_BUCKETS + 1 {
            l.check(&i.to_string(), t).unwrap();
        }
        // One second later every bucket is full again and can go.
        l.check("new", t + Duration::from_secs(1)).unwrap();
        assert!(l.buckets.lock().unwrap().len() <= 2);
    }

    #[test]
    fn spec_defaults_and_keys() {
        let spec = |key: Option<&str>| RateLimit {
            requests_per_second: 2.5,
            burst: None,
            key: key.map(str::to_owned),
        };
        let l = RateLimiter::from_spec(&spec(None)).unwrap();
        assert_eq!(l.burst, 3.0);
        assert_eq!(l.key, RateKey::Route);
        let l = RateLimiter::from_spec(&spec(Some("header:x-api-key"))).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(l.key_of(&h, [127, 0, 0, 1].into()), "k1");
        assert!(RateLimiter::from_spec(&spec(Some("cookie:x"))).is_err());
        let l = RateLimiter::from_spec(&spec(Some("source_ip"))).unwrap();
        assert_eq!(l.key_of(&h, [10, 1, 2, 3].into()), "10.1.2.3");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1500)), 2);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
