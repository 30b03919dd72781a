//! Names, paths and bodies of the benchmark's instances.
//!
//! Instance number `n` is `svc-<n mod 100>/i-<n>` at address `10.0.<n/256 mod 256>.<n mod 256>`.
//! Workers interleave their numbers ([`interleave`]), so every number, and so every
//! instance, is registered once.

use serde_json::json;

/// Services the instances are spread over.
pub const SERVICES: u64 = 100;

/// The number a worker uses for its `seq`-th instance: worker `w` of `workers` gets
/// `w`, `w + workers`, `w + 2 * workers`, … and no two workers share one.
pub fn interleave(worker: u64, workers: u64, seq: u64) -> u64 {
    seq * workers + worker
}

/// Service name of instance `n`.
pub fn service(n: u64) -> String {
    format!("svc-{}", n % SERVICES)
}

/// Instance id of instance `n`.
pub fn instance_id(n: u64) -> String {
    format!("i-{n}")
}

/// `{base}/v1/services/{service}/instances/{id}` of instance `n`.
pub fn instance_url(base: &str, n: u64) -> String {
    format!(
        "{base}/v1/services/{}/instances/{}",
        service(n),
        instance_id(n)
    )
}

/// The heartbeat URL of instance `n`.
pub fn heartbeat_url(base: &str, n: u64) -> String {
    format!("{}/heartbeat", instance_url(base, n))
}

/// The registration body of instance `n`: persistent without `ttl_secs`, ephemeral with it.
pub fn register_body(n: u64, ttl_secs: Option<u32>) -> String {
    let mut body = json!({
        "address": format!("10.0.{}.{}", (n / 256) % 256, n % 256),
        "port": 8080,
        "tags": ["v1"],
        "meta": {"zone": "a"},
    });
    if let Some(ttl) = ttl_secs {
        body["ttl_secs"] = json!(ttl);
    }
    body.to_string()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn interleaved_numbers_are_unique_and_dense() {
        let workers = 7;
        let mut seen = HashSet::new();
        for w in 0..workers {
            for seq in 0..50 {
                assert!(seen.insert(interleave(w, workers, seq)));
            }
        }
        assert_eq!(seen.len(), 350);
        assert!(seen.iter().all(|&n| n < 350));
    }

    #[test]
    fn names_and_urls() {
        assert_eq!(service(1234), "svc-34");
        assert_eq!(instance_id(1234), "i-1234");
        assert_eq!(
            heartbeat_url("http://h:1", 205),
            "http://h:1/v1/services/svc-5/instances/i-205/heartbeat"
        );
    }

    #[test]
    fn bodies() {
        let v: serde_json::Value = serde_json::from_str(&register_body(258, None)).unwrap();
        assert_eq!(v["address"], "10.0.1.2");
        assert_eq!(v["port"], 8080);
        assert_eq!(v["tags"], json!(["v1"]));
        assert_eq!(v["meta"], json!({"zone": "a"}));
        assert!(v.get("ttl_secs").is_none());
        let v: serde_json::Value = serde_json::from_str(&register_body(65_536, Some(15))).unwrap();
        assert_eq!(v["address"], "10.0.0.0");
        assert_eq!(v["ttl_secs"], 15);
    }
}
