//! Rules for the health part of a registration: checks, thresholds, reaping.

use std::collections::BTreeSet;

use super::{Invalid, MAX_LABEL_BYTES, MAX_TTL_SECS, host_port, ttl_secs};
use crate::expect_status::ExpectStatus;
use crate::registry::{CheckSpec, CheckType, InstanceSpec};

/// Most checks on one instance.
pub const MAX_CHECKS: usize = 16;
/// Longest probe interval.
const MAX_INTERVAL_SECS: u32 = 3_600;
/// Longest probe timeout.
const MAX_TIMEOUT_MS: u32 = 60_000;
/// Largest healthy or unhealthy threshold.
const MAX_THRESHOLD: u32 = 100;
/// Longest URL of an `http` check.
const MAX_URL_BYTES: usize = 2_048;
/// Most headers on an `http` check.
const MAX_HEADERS: usize = 32;

/// 1-64 characters of `A-Z a-z 0-9 . _ : -` (checks are named in URLs).
pub fn check_id(id: &str) -> Result<(), Invalid> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Invalid::new(
            "checks.id",
            format!(
                "check id {id:?} must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            ),
        ))
    }
}

/// The checks, thresholds and reaping delay of a registration.
pub(super) fn instance_health(spec: &InstanceSpec) -> Result<(), Invalid> {
    if spec.checks.len() > MAX_CHECKS {
        return Err(Invalid::new(
            "checks",
            format!(
                "at most {MAX_CHECKS} checks are allowed, got {}",
                spec.checks.len()
            ),
        ));
    }
    let mut ids = BTreeSet::new();
    for check in &spec.checks {
        check_spec(check)?;
        if !ids.insert(check.id.as_str()) {
            return Err(Invalid::new(
                "checks.id",
                format!("check id {:?} appears twice", check.id),
            ));
        }
    }
    for (field, value) in [
        ("healthy_threshold", spec.healthy_threshold),
        ("unhealthy_threshold", spec.unhealthy_threshold),
    ] {
        if let Some(v) = value
            && !(1..=MAX_THRESHOLD).contains(&v)
        {
            return Err(Invalid::new(
                field,
                format!("{field} must be between 1 and {MAX_THRESHOLD}, got {v}"),
            ));
        }
    }
    if let Some(secs) = spec.deregister_critical_after_secs {
        ttl_secs("deregister_critical_after_secs", secs)?;
    }
    Ok(())
}

/// One check: its id, and exactly the fields its type uses.
pub fn check_spec(check: &CheckSpec) -> Result<(), Invalid> {
    check_id(&check.id)?;
    let kind = kind_name(check.kind);
    let invalid = |name: &str, why: String| {
        Invalid::new(
            &format!("checks.{name}"),
            format!("check {:?}: {why}", check.id),
        )
    };
    let required = |name: &str, present: bool| {
        if present {
            Ok(())
        } else {
            Err(invalid(
                name,
                format!("{name} is required for {kind} checks"),
            ))
        }
    };
    let forbidden = |name: &str, present: bool| {
        if present {
            Err(invalid(
                name,
                format!("{name} does not apply to {kind} checks"),
            ))
        } else {
            Ok(())
        }
    };
    let is_http = check.kind == CheckType::Http;
    let probes = check.kind != CheckType::Ttl;
    let needs_address = matches!(check.kind, CheckType::Tcp | CheckType::Grpc);
    required("url", !is_http || check.url.is_some())?;
    forbidden("url", !is_http && check.url.is_some())?;
    forbidden("method", !is_http && check.method.is_some())?;
    forbidden("expect_status", !is_http && check.expect_status.is_some())?;
    forbidden("headers", !is_http && !check.headers.is_empty())?;
    required("address", !needs_address || check.address.is_some())?;
    forbidden("address", !needs_address && check.address.is_some())?;
    forbidden(
        "service",
        check.kind != CheckType::Grpc && check.service.is_some(),
    )?;
    required("ttl_secs", probes || check.ttl_secs.is_some())?;
    forbidden("ttl_secs", probes && check.ttl_secs.is_some())?;
    forbidden("interval_secs", !probes && check.interval_secs.is_some())?;
    forbidden("timeout_ms", !probes && check.timeout_ms.is_some())?;

    if let Some(url) = &check.url {
        // Probes speak plain HTTP only (no TLS backend is built in).
        let scheme_ok = url.starts_with("http://");
        if !scheme_ok
            || url.len() > MAX_URL_BYTES
            || url.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "url",
                format!(
                    "url must be an http:// URL of at most {MAX_URL_BYTES} bytes without spaces (https is not supported)"
                ),
            ));
        }
    }
    if let Some(method) = &check.method
        && (!(1..=16).contains(&method.len()) || !method.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(invalid(
            "method",
            "method must be an upper-case HTTP method like GET".to_string(),
        ));
    }
    if let Some(expect) = &check.expect_status {
        expect
            .parse::<ExpectStatus>()
            .map_err(|e| invalid("expect_status", e.to_string()))?;
    }
    let bad_header = |(k, v): (&String, &String)| {
        k.is_empty()
            || k.len() > 128
            || !header_name(k)
            || v.len() > MAX_LABEL_BYTES
            || v.chars().any(char::is_control)
    };
    if check.headers.len() > MAX_HEADERS || check.headers.iter().any(bad_header) {
        return Err(invalid(
            "headers",
            format!(
                "at most {MAX_HEADERS} headers, with token names and values without control characters"
            ),
        ));
    }
    if let Some(addr) = &check.address {
        host_port("checks.address", addr)?;
    }
    if let Some(service) = &check.service
        && service.len() > MAX_LABEL_BYTES
    {
        return Err(invalid(
            "service",
            format!("service must be at most {MAX_LABEL_BYTES} bytes"),
        ));
    }
    let in_range = |name: &str, value: Option<u32>, max: u32| match value {
        Some(v) if !(1..=max).contains(&v) => Err(invalid(
            name,
            format!("{name} must be between 1 and {max}, got {v}"),
        )),
        _ => Ok(()),
    };
    in_range("interval_secs", check.interval_secs, MAX_INTERVAL_SECS)?;
    in_range("timeout_ms", check.timeout_ms, MAX_TIMEOUT_MS)?;
    in_range("ttl_secs", check.ttl_secs, MAX_TTL_SECS)?;
    Ok(())
}

fn kind_name(kind: CheckType) -> &'static str {
    match kind {
        CheckType::Http => "http",
        CheckType::Tcp => "tcp",
        CheckType::Grpc => "grpc",
        CheckType::Ttl => "ttl",
    }
}

/// An HTTP header name token (RFC 9110 §5.6.2).
fn header_name(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http() -> CheckSpec {
        serde_json::from_str(
            r#"{"id":"http","type":"http","url":"http://10.0.0.5:8080/health","method":"GET","expect_status":"2xx","interval_secs":5,"timeout_ms":1000}"#,
        )
        .unwrap()
    }

    #[test]
    fn the_issue_examples_pass() {
        for json in [
            r#"{"id":"http","type":"http","url":"http://10.0.0.5:8080/health","method":"GET","expect_status":"2xx","interval_secs":5,"timeout_ms":1000}"#,
            r#"{"id":"tcp","type":"tcp","address":"10.0.0.5:8080","interval_secs":5,"timeout_ms":1000}"#,
            r#"{"id":"grpc","type":"grpc","address":"10.0.0.5:9090","service":"orders.v1","interval_secs":5}"#,
            r#"{"id":"ttl","type":"ttl","ttl_secs":15}"#,
        ] {
            let c: CheckSpec = serde_json::from_str(json).unwrap();
            check_spec(&c).unwrap_or_else(|e| panic!("{json}: {e}"));
        }
    }

    #[test]
    fn fields_must_fit_the_type() {
        let mut c = http();
        c.url = None;
        assert_eq!(check_spec(&c).unwrap_err().field, "checks.url");
        let mut c = http();
        c.ttl_secs = Some(5);
        assert_eq!(check_spec(&c).unwrap_err().field, "checks.ttl_secs");
        let mut c = http();
        c.kind = CheckType::Tcp;
        assert_eq!(
            check_spec(&c).unwrap_err().field,
            "checks.url",
            "an http field on a tcp check"
        );
        let ttl: CheckSpec = serde_json::from_str(r#"{"id":"t","type":"ttl"}"#).unwrap();
        assert_eq!(check_spec(&ttl).unwrap_err().field, "checks.ttl_secs");
        let tcp: CheckSpec = serde_json::from_str(r#"{"id":"t","type":"tcp"}"#).unwrap();
        assert_eq!(check_spec(&tcp).unwrap_err().field, "checks.address");
    }

    #[test]
    fn values_are_checked() {
        type Mutation = fn(&mut CheckSpec);
        let cases: Vec<(Mutation, &str)> = vec![
            (|c| c.id = "has space".into(), "checks.id"),
            (|c| c.url = Some("ftp://x".into()), "checks.url"),
            (|c| c.url = Some("https://x/health".into()), "checks.url"),
            (|c| c.method = Some("get".into()), "checks.method"),
            (
                |c| c.expect_status = Some("7xx".into()),
                "checks.expect_status",
            ),
            (|c| c.interval_secs = Some(0), "checks.interval_secs"),
            (|c| c.timeout_ms = Some(0), "checks.timeout_ms"),
            (
                |c| {
                    c.headers.insert("bad name".into(), "v".into());
                },
                "checks.headers",
            ),
        ];
        for (mutate, field) in cases {
            let mut c = http();
            mutate(&mut c);
            assert_eq!(check_spec(&c).unwrap_err().field, field);
        }
    }

    #[test]
    fn unknown_fields_and_types_are_rejected() {
        assert!(
            serde_json::from_str::<CheckSpec>(r#"{"id":"a","type":"tcp","adress":"x:1"}"#).is_err()
        );
        assert!(serde_json::from_str::<CheckSpec>(r#"{"id":"a","type":"icmp"}"#).is_err());
    }
}
