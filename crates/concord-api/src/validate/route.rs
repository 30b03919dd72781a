//! Rules for gateway routes: every field checked, errors name the field path.

use super::{Invalid, header_value, namespace, service_name, token};
use crate::gateway::{HeaderRules, LB_POLICIES, RouteSpec};

/// Most targets in a split.
const MAX_SPLIT: usize = 16;
/// Longest timeout, in milliseconds (an hour).
const MAX_TIMEOUT_MS: u32 = 3_600_000;
/// Longest route name.
const MAX_NAME: usize = 128;
/// Largest fallback body.
const MAX_FALLBACK_BODY: usize = 64 * 1024;
/// Largest compiled path regex, in bytes.
const MAX_REGEX_SIZE: usize = 64 * 1024;

fn bad(field: &str, message: impl Into<String>) -> Invalid {
    Invalid::new(field, message)
}

/// 1-128 characters of `A-Z a-z 0-9 . _ : -`.
pub fn route_name(name: &str) -> Result<(), Invalid> {
    let ok = (1..=MAX_NAME).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(bad(
            "name",
            format!(
                "route name {name:?} must be 1-{MAX_NAME} characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            ),
        ))
    }
}

fn path(field: &str, p: &str) -> Result<(), Invalid> {
    if !p.starts_with('/')
        || p.len() > 2048
        || p.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(
            field,
            format!("{field} must start with '/' and contain no spaces"),
        ));
    }
    Ok(())
}

fn range(field: &str, v: Option<u32>, lo: u32, hi: u32) -> Result<(), Invalid> {
    match v {
        Some(v) if !(lo..=hi).contains(&v) => Err(bad(
            field,
            format!("{field} must be between {lo} and {hi}, got {v}"),
        )),
        _ => Ok(()),
    }
}

fn rate(field: &str, v: Option<f64>) -> Result<(), Invalid> {
    match v {
        Some(r) if !(r > 0.0 && r <= 1.0) => Err(bad(
            field,
            format!("{field} must be a fraction in (0, 1], got {r}"),
        )),
        _ => Ok(()),
    }
}

fn headers(field: &str, rules: &HeaderRules) -> Result<(), Invalid> {
    for (k, v) in &rules.add {
        if !token(k) || !header_value(v) {
            return Err(bad(
                &format!("{field}.add"),
                format!("header {k:?} must be a token with a value without control characters"),
            ));
        }
    }
    if let Some(k) = rules.remove.iter().find(|k| !token(k)) {
        return Err(bad(
            &format!("{field}.remove"),
            format!("{k:?} is not a header name"),
        ));
    }
    Ok(())
}

/// `header:NAME`, `cookie:NAME`, `source_ip`, `path` (and for rate limits, `route`).
fn key_spec(field: &str, spec: &str, allow_route: bool) -> Result<(), Invalid> {
    let ok = match spec.split_once(':') {
        Some(("header" | "cookie", name)) => token(name),
        None => spec == "source_ip" || spec == "path" || (allow_route && spec == "route"),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(bad(
            field,
            format!(
                "{field} must be header:NAME, cookie:NAME, source_ip or path{}, got {spec:?}",
                if allow_route { " (or route)" } else { "" }
            ),
        ))
    }
}

/// A whole route.
pub fn route(r: &RouteSpec) -> Result<(), Invalid> {
    let m = &r.matches;
    let paths = [&m.path_prefix, &m.path_exact, &m.path_regex]
        .iter()
        .filter(|p| p.is_some())
        .count();
    if paths > 1 {
        return Err(bad(
            "match",
            "give at most one of path_prefix, path_exact and path_regex",
        ));
    }
    if let Some(p) = &m.path_prefix {
        path("match.path_prefix", p)?;
    }
    if let Some(p) = &m.path_exact {
        path("match.path_exact", p)?;
    }
    if let Some(re) = &m.path_regex {
        regex::RegexBuilder::new(re)
            .size_limit(MAX_REGEX_SIZE)
            .build()
            .map_err(|e| bad("match.path_regex", format!("not a valid regex: {e}")))?;
    }
    if let Some(h) = &m.host {
        let ok = !h.is_empty()
            && h.len() <= 253
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'*'));
        if !ok {
            return Err(bad("match.host", format!("{h:?} is not a host name")));
        }
    }
    if let Some(x) = m
        .methods
        .iter()
        .find(|x| !token(x) || x.bytes().any(|b| b.is_ascii_lowercase()))
    {
        return Err(bad(
            "match.methods",
            format!("{x:?} is not an upper-case HTTP method"),
        ));
    }
    if let Some((k, _)) = m
        .headers
        .iter()
        .find(|(k, v)| !token(k) || !header_value(v))
    {
        return Err(bad("match.headers", format!("{k:?} is not a header name")));
    }
    if m.query.keys().any(|k| k.is_empty() || k.len() > 256) {
        return Err(bad(
            "match.query",
            "query parameter names must be 1-256 bytes",
        ));
    }

    match (&r.service, r.split.is_empty()) {
        (Some(_), false) => return Err(bad("split", "give either service or split, not both")),
        (None, true) => return Err(bad("service", "a route needs a service or a split")),
        (Some(s), true) => {
            service_name(s).map_err(|e| bad("service", e.message))?;
        }
        (None, false) => {
            if r.split.len() > MAX_SPLIT {
                return Err(bad("split", format!("at most {MAX_SPLIT} targets")));
            }
            for (i, t) in r.split.iter().enumerate() {
                service_name(&t.service)
                    .map_err(|e| bad(&format!("split[{i}].service"), e.message))?;
                if let Some(ns) = &t.namespace {
                    namespace(ns).map_err(|e| bad(&format!("split[{i}].namespace"), e.message))?;
                }
                if t.weight > 10_000 {
                    return Err(bad(&format!("split[{i}].weight"), "weight must be 0-10000"));
                }
            }
            if r.split.iter().all(|t| t.weight == 0) {
                return Err(bad("split", "at least one target needs a weight above 0"));
            }
        }
    }
    if let Some(ns) = &r.namespace {
        namespace(ns)?;
    }
    if r.tags.iter().any(|t| t.is_empty() || t.len() > 512) {
        return Err(bad("tags", "tags must be 1-512 bytes"));
    }
    if r.strip_prefix && m.path_prefix.is_none() {
        return Err(bad("strip_prefix", "strip_prefix needs match.path_prefix"));
    }
    if let Some(p) = &r.rewrite_path {
        if r.strip_prefix {
            return Err(bad(
                "rewrite_path",
                "give either strip_prefix or rewrite_path",
            ));
        }
        path("rewrite_path", p)?;
    }
    if let Some(h) = &r.request_headers {
        headers("request_headers", h)?;
    }
    if let Some(h) = &r.response_headers {
        headers("response_headers", h)?;
    }
    if let Some(lb) = &r.lb
        && !LB_POLICIES.contains(&lb.as_str())
    {
        return Err(bad(
            "lb",
            format!("lb must be one of {}", LB_POLICIES.join(", ")),
        ));
    }
    if let Some(h) = &r.hash_on {
        key_spec("hash_on", h, false)?;
    }
    if let Some(s) = &r.sticky {
        if !token(&s.cookie) {
            return Err(bad("sticky.cookie", "the cookie name must be a token"));
        }
        range("sticky.ttl_secs", s.ttl_secs, 1, 86_400 * 365)?;
    }
    if let Some(t) = &r.timeouts {
        range("timeouts.connect_ms", t.connect_ms, 1, MAX_TIMEOUT_MS)?;
        range("timeouts.per_try_ms", t.per_try_ms, 1, MAX_TIMEOUT_MS)?;
        range("timeouts.total_ms", t.total_ms, 1, MAX_TIMEOUT_MS)?;
        if let (Some(p), Some(total)) = (t.per_try_ms, t.total_ms)
            && p > total
        {
            return Err(bad(
                "timeouts.per_try_ms",
                "per_try_ms must not exceed total_ms",
            ));
        }
    }
    if let Some(rt) = &r.retries {
        range("retries.attempts", rt.attempts, 0, 10)?;
        range("retries.budget_percent", rt.budget_percent, 0, 100)?;
        for on in &rt.on {
            let status = on.len() == 3 && on.parse::<u16>().is_ok_and(|s| (400..=599).contains(&s));
            let ok = status || matches!(on.as_str(), "connect_failure" | "reset" | "timeout");
            if !ok {
                return Err(bad(
                    "retries.on",
                    format!("{on:?} must be connect_failure, reset, timeout or a 4xx/5xx status"),
                ));
            }
        }
    }
    if let Some(cb) = &r.circuit_breaker {
        rate("circuit_breaker.failure_rate", cb.failure_rate)?;
        rate("circuit_breaker.slow_call_rate", cb.slow_call_rate)?;
        range(
            "circuit_breaker.slow_call_ms",
            cb.slow_call_ms,
            1,
            MAX_TIMEOUT_MS,
        )?;
        range(
            "circuit_breaker.min_requests",
            cb.min_requests,
            1,
            1_000_000,
        )?;
        range("circuit_breaker.window_secs", cb.window_secs, 1, 3_600)?;
        range("circuit_breaker.open_secs", cb.open_secs, 1, 3_600)?;
        range(
            "circuit_breaker.half_open_requests",
            cb.half_open_requests,
            1,
            1_000,
        )?;
        range(
            "circuit_breaker.max_concurrent",
            cb.max_concurrent,
            1,
            1_000_000,
        )?;
    }
    if let Some(o) = &r.outlier {
        range(
            "outlier.consecutive_failures",
            o.consecutive_failures,
            1,
            1_000,
        )?;
        range("outlier.base_ejection_secs", o.base_ejection_secs, 1, 3_600)?;
        range(
            "outlier.max_ejection_percent",
            o.max_ejection_percent,
            0,
            100,
        )?;
    }
    if let Some(rl) = &r.rate_limit {
        let rps = rl.requests_per_second;
        if !(rps.is_finite() && rps > 0.0 && rps <= 1e7) {
            return Err(bad(
                "rate_limit.requests_per_second",
                "requests_per_second must be above 0 (and at most 10,000,000)",
            ));
        }
        range("rate_limit.burst", rl.burst, 1, 10_000_000)?;
        if let Some(k) = &rl.key {
            key_spec("rate_limit.key", k, true)?;
        }
    }
    if let Some(f) = &r.fallback {
        if !(100..=599).contains(&f.status) {
            return Err(bad("fallback.status", "status must be 100-599"));
        }
        if f.body.len() > MAX_FALLBACK_BODY {
            return Err(bad(
                "fallback.body",
                format!("body must be at most {MAX_FALLBACK_BODY} bytes"),
            ));
        }
        if f.content_type.as_deref().is_some_and(|c| !header_value(c)) {
            return Err(bad(
                "fallback.content_type",
                "content_type must not contain control characters",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"{"match": {"path_prefix": "/api/orders", "path_exact": null, "path_regex": null, "host": "shop.local", "methods": ["GET","POST"],
           "headers": {"x-canary": "1"}, "query": {"debug": "1"}},
 "priority": 0,
 "service": "orders", "namespace": "default", "tags": ["v2"],
 "strip_prefix": true, "rewrite_path": null,
 "request_headers": {"add": {"x-from": "gw"}, "remove": ["x-debug"]}, "response_headers": {"add": {}, "remove": []},
 "lb": "p2c_ewma",
 "hash_on": "header:x-user-id",
 "sticky": {"cookie": "concord_affinity", "ttl_secs": 3600},
 "timeouts": {"connect_ms": 1000, "per_try_ms": 5000, "total_ms": 15000},
 "retries": {"attempts": 2, "on": ["connect_failure", "reset", "502", "503", "504"], "budget_percent": 20, "non_idempotent": false},
 "circuit_breaker": {"failure_rate": 0.5, "slow_call_ms": 2000, "slow_call_rate": 0.8, "min_requests": 20, "window_secs": 10, "open_secs": 5, "half_open_requests": 3, "max_concurrent": 1000},
 "outlier": {"consecutive_failures": 5, "base_ejection_secs": 10, "max_ejection_percent": 50},
 "rate_limit": {"requests_per_second": 100, "burst": 200, "key": "source_ip"},
 "fallback": {"status": 503, "body": "...", "content_type": "text/plain"}}"#;

    fn parse(json: &str) -> RouteSpec {
        serde_json::from_str(json).expect("route JSON")
    }

    #[test]
    fn the_issue_example_and_a_minimal_route_pass() {
        route(&parse(FULL)).expect("full example");
        route(&parse(r#"{"match":{},"service":"orders"}"#)).expect("minimal");
        route(&parse(
            r#"{"match":{"path_prefix":"/"},"split":[{"service":"orders","tags":["v1"],"weight":90},{"service":"orders","tags":["v2"],"weight":10}]}"#,
        ))
        .expect("split");
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (r#"{"match":{}}"#, "service"),
            (r#"{"match":{},"service":"Orders"}"#, "service"),
            (
                r#"{"match":{},"service":"a","split":[{"service":"b","weight":1}]}"#,
                "split",
            ),
            (
                r#"{"match":{},"split":[{"service":"b","weight":0}]}"#,
                "split",
            ),
            (
                r#"{"match":{},"split":[{"service":"B","weight":1}]}"#,
                "split[0].service",
            ),
            (
                r#"{"match":{"path_prefix":"/a","path_exact":"/a"},"service":"a"}"#,
                "match",
            ),
            (
                r#"{"match":{"path_prefix":"a"},"service":"a"}"#,
                "match.path_prefix",
            ),
            (
                r#"{"match":{"path_regex":"(unclosed"},"service":"a"}"#,
                "match.path_regex",
            ),
            (
                r#"{"match":{"methods":["get"]},"service":"a"}"#,
                "match.methods",
            ),
            (
                r#"{"match":{},"service":"a","strip_prefix":true}"#,
                "strip_prefix",
            ),
            (r#"{"match":{},"service":"a","lb":"fastest"}"#, "lb"),
            (r#"{"match":{},"service":"a","hash_on":"body"}"#, "hash_on"),
            (
                r#"{"match":{},"service":"a","timeouts":{"connect_ms":0}}"#,
                "timeouts.connect_ms",
            ),
            (
                r#"{"match":{},"service":"a","timeouts":{"per_try_ms":10,"total_ms":5}}"#,
                "timeouts.per_try_ms",
            ),
            (
                r#"{"match":{},"service":"a","retries":{"on":["200"]}}"#,
                "retries.on",
            ),
            (
                r#"{"match":{},"service":"a","retries":{"attempts":99}}"#,
                "retries.attempts",
            ),
            (
                r#"{"match":{},"service":"a","circuit_breaker":{"failure_rate":1.5}}"#,
                "circuit_breaker.failure_rate",
            ),
            (
                r#"{"match":{},"service":"a","outlier":{"max_ejection_percent":101}}"#,
                "outlier.max_ejection_percent",
            ),
            (
                r#"{"match":{},"service":"a","rate_limit":{"requests_per_second":0}}"#,
                "rate_limit.requests_per_second",
            ),
            (
                r#"{"match":{},"service":"a","rate_limit":{"requests_per_second":1,"key":"ip"}}"#,
                "rate_limit.key",
            ),
            (
                r#"{"match":{},"service":"a","fallback":{"status":42}}"#,
                "fallback.status",
            ),
            (
                r#"{"match":{},"service":"a","request_headers":{"add":{"bad name":"x"}}}"#,
                "request_headers.add",
            ),
        ];
        for (json, field) in cases {
            let err = route(&parse(json)).expect_err(json);
            assert_eq!(err.field, field, "{json}: {}", err.message);
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(
            serde_json::from_str::<RouteSpec>(r#"{"match":{},"service":"a","retry":{}}"#).is_err()
        );
        assert!(
            serde_json::from_str::<RouteSpec>(r#"{"match":{"prefix":"/"},"service":"a"}"#).is_err()
        );
    }

    #[test]
    fn names() {
        route_name("orders-v2.api").unwrap();
        assert!(route_name("").is_err());
        assert!(route_name("a/b").is_err());
    }
}
