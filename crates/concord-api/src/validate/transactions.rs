//! Rules for distributed transactions: ids, steps, calls and limits, with errors
//! that name the field (`steps[1].compensate.url`).

use std::collections::{BTreeMap, BTreeSet};

use super::{Invalid, header_value, namespace, service_name, token};
use crate::transactions::{
    BranchRequest, CallSpec, ResolveRequest, RetrySpec, StepSpec, TxnMode, TxnOp, TxnRequest,
};

/// Most steps in one saga or 2PC transaction.
pub const MAX_STEPS: usize = 100;
/// Longest id or step name.
const MAX_NAME: usize = 128;
/// Longest call URL.
const MAX_URL: usize = 2048;
/// Longest forward-phase timeout (a week).
const MAX_TIMEOUT_SECS: u64 = 7 * 86_400;
/// Longest per-call timeout (10 minutes).
const MAX_CALL_TIMEOUT_MS: u64 = 600_000;
/// Longest backoff (an hour).
const MAX_BACKOFF_MS: u64 = 3_600_000;
/// Most attempts per op.
const MAX_ATTEMPTS: u32 = 1000;
/// Longest operator reason.
const MAX_REASON: usize = 1024;

fn bad(field: &str, message: impl Into<String>) -> Invalid {
    Invalid::new(field, message)
}

fn name_ok(s: &str) -> bool {
    (1..=MAX_NAME).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A transaction id: 1-128 characters of `A-Z a-z 0-9 . _ : -`.
pub fn txn_id(field: &str, id: &str) -> Result<(), Invalid> {
    if name_ok(id) {
        Ok(())
    } else {
        Err(bad(
            field,
            format!(
                "transaction id {id:?} must be 1-{MAX_NAME} characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            ),
        ))
    }
}

fn step_name(field: &str, name: &str) -> Result<(), Invalid> {
    if name_ok(name) {
        Ok(())
    } else {
        Err(bad(
            field,
            format!(
                "step name {name:?} must be 1-{MAX_NAME} characters of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            ),
        ))
    }
}

/// `http://host[:port]/path`, `https://...` or `concord://service[.namespace]/path`.
fn url(field: &str, raw: &str) -> Result<(), Invalid> {
    if raw.len() > MAX_URL || raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad(
            field,
            format!("must be at most {MAX_URL} characters without spaces or control characters"),
        ));
    }
    let Some((scheme, rest)) = raw.split_once("://") else {
        return Err(bad(
            field,
            format!("{raw:?} must start with http://, https:// or concord://"),
        ));
    };
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    match scheme {
        "http" | "https" => {
            if authority.is_empty() || authority.contains('@') {
                return Err(bad(
                    field,
                    format!("{raw:?} needs a host (and no user info)"),
                ));
            }
            Ok(())
        }
        "concord" => {
            let (service, ns) = match authority.split_once('.') {
                Some((s, ns)) => (s, Some(ns)),
                None => (authority, None),
            };
            service_name(service).map_err(|e| bad(field, format!("{raw:?}: {}", e.message)))?;
            if let Some(ns) = ns {
                namespace(ns).map_err(|e| bad(field, format!("{raw:?}: {}", e.message)))?;
            }
            Ok(())
        }
        other => Err(bad(
            field,
            format!("scheme {other:?} is not one of http, https, concord"),
        )),
    }
}

fn call(field: &str, c: &CallSpec) -> Result<(), Invalid> {
    url(&format!("{field}.url"), &c.url)?;
    if let Some(m) = &c.method
        && !(token(m) && m.len() <= 16 && m.bytes().all(|b| b.is_ascii_uppercase()))
    {
        return Err(bad(
            &format!("{field}.method"),
            format!("{m:?} is not an upper-case HTTP method"),
        ));
    }
    for (k, v) in &c.headers {
        let f = format!("{field}.headers");
        if !token(k) {
            return Err(bad(&f, format!("{k:?} is not a valid header name")));
        }
        let lower = k.to_ascii_lowercase();
        if lower.starts_with("concord-txn-") || lower == "traceparent" || lower == "host" {
            return Err(bad(
                &f,
                format!("{k:?} is set by the coordinator and cannot be overridden"),
            ));
        }
        if !header_value(v) {
            return Err(bad(
                &f,
                format!("the value of {k:?} is not a valid header value"),
            ));
        }
    }
    Ok(())
}

fn retry(field: &str, r: &RetrySpec) -> Result<(), Invalid> {
    for (name, v) in [
        ("initial_backoff_ms", r.initial_backoff_ms),
        ("max_backoff_ms", r.max_backoff_ms),
    ] {
        if v.is_some_and(|v| v > MAX_BACKOFF_MS) {
            return Err(bad(
                &format!("{field}.{name}"),
                format!("must be at most {MAX_BACKOFF_MS}"),
            ));
        }
    }
    if let (Some(lo), Some(hi)) = (r.initial_backoff_ms, r.max_backoff_ms)
        && lo > hi
    {
        return Err(bad(
            &format!("{field}.max_backoff_ms"),
            "must not be below initial_backoff_ms",
        ));
    }
    if r.max_attempts
        .is_some_and(|a| !(1..=MAX_ATTEMPTS).contains(&a))
    {
        return Err(bad(
            &format!("{field}.max_attempts"),
            format!("must be 1-{MAX_ATTEMPTS}"),
        ));
    }
    Ok(())
}

fn call_timeout(field: &str, ms: Option<u64>) -> Result<(), Invalid> {
    if ms.is_some_and(|ms| !(1..=MAX_CALL_TIMEOUT_MS).contains(&ms)) {
        return Err(bad(field, format!("must be 1-{MAX_CALL_TIMEOUT_MS} ms")));
    }
    Ok(())
}

/// Checks a step's calls against its mode: which it needs and which it may not have.
fn step(field: &str, mode: TxnMode, s: &StepSpec) -> Result<(), Invalid> {
    step_name(&format!("{field}.name"), &s.name)?;
    let (fwd, fin, back) = mode.ops();
    let required: &[TxnOp] = match mode {
        TxnMode::Saga => &[TxnOp::Action],
        _ => &[fwd, fin.unwrap_or(fwd), back],
    };
    let allowed = |op: TxnOp| op == fwd || Some(op) == fin || op == back;
    for op in TxnOp::ALL {
        let f = format!("{field}.{op}");
        match s.call(op) {
            Some(c) if allowed(op) => call(&f, c)?,
            Some(_) => {
                return Err(bad(
                    &f,
                    format!("a {} step has no {op} call", mode.as_str()),
                ));
            }
            None if required.contains(&op) => {
                return Err(bad(
                    &f,
                    format!("a {} step needs a {op} call", mode.as_str()),
                ));
            }
            None => {}
        }
    }
    call_timeout(&format!("{field}.timeout_ms"), s.timeout_ms)?;
    if let Some(r) = &s.retry {
        retry(&format!("{field}.retry"), r)?;
    }
    Ok(())
}

/// Every rule of `POST /v1/transactions`.
pub fn txn_request(r: &TxnRequest) -> Result<(), Invalid> {
    if let Some(id) = &r.id {
        txn_id("id", id)?;
    }
    match r.mode {
        TxnMode::Tcc if !r.steps.is_empty() => {
            return Err(bad(
                "steps",
                "a tcc transaction starts with no steps; add branches with POST /v1/transactions/{id}/branches",
            ));
        }
        TxnMode::Tcc => {}
        _ if r.steps.is_empty() || r.steps.len() > MAX_STEPS => {
            return Err(bad("steps", format!("must hold 1-{MAX_STEPS} steps")));
        }
        _ => {}
    }
    let mut seen = BTreeMap::new();
    for (i, s) in r.steps.iter().enumerate() {
        let field = format!("steps[{i}]");
        step(&field, r.mode, s)?;
        if seen.insert(s.name.as_str(), i).is_some() {
            return Err(bad(
                &format!("{field}.name"),
                format!("step name {:?} is used twice", s.name),
            ));
        }
    }
    if !r.depends_on.is_empty() && r.mode != TxnMode::Saga {
        return Err(bad("depends_on", "only sagas have step dependencies"));
    }
    for (name, deps) in &r.depends_on {
        let field = format!("depends_on.{name}");
        let Some(&at) = seen.get(name.as_str()) else {
            return Err(bad(&field, format!("there is no step {name:?}")));
        };
        let mut unique = BTreeSet::new();
        for d in deps {
            match seen.get(d.as_str()) {
                Some(&before) if before < at => {}
                Some(_) => {
                    return Err(bad(
                        &field,
                        format!("{name:?} may only depend on earlier steps, not {d:?}"),
                    ));
                }
                None => return Err(bad(&field, format!("there is no step {d:?}"))),
            }
            if !unique.insert(d) {
                return Err(bad(&field, format!("{d:?} is listed twice")));
            }
        }
    }
    if r.timeout_secs
        .is_some_and(|t| !(1..=MAX_TIMEOUT_SECS).contains(&t))
    {
        return Err(bad("timeout_secs", format!("must be 1-{MAX_TIMEOUT_SECS}")));
    }
    call_timeout("step_timeout_ms", r.step_timeout_ms)?;
    if let Some(rt) = &r.retry {
        retry("retry", rt)?;
    }
    Ok(())
}

/// Every rule of `POST /v1/transactions/{id}/branches`.
pub fn branch(b: &BranchRequest) -> Result<(), Invalid> {
    step_name("name", &b.name)?;
    call("try", &b.try_)?;
    call("confirm", &b.confirm)?;
    call("cancel", &b.cancel)?;
    call_timeout("timeout_ms", b.timeout_ms)?;
    if let Some(r) = &b.retry {
        retry("retry", r)?;
    }
    Ok(())
}

/// `POST /v1/transactions/{id}/resolve`: a reason is required, for the audit trail.
pub fn resolve(r: &ResolveRequest) -> Result<(), Invalid> {
    if r.reason.trim().is_empty() || r.reason.len() > MAX_REASON {
        return Err(bad("reason", format!("must be 1-{MAX_REASON} characters")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(v: serde_json::Value) -> TxnRequest {
        serde_json::from_value(v).expect("decodes")
    }

    fn field(r: &TxnRequest) -> String {
        txn_request(r).expect_err("invalid").field
    }

    fn saga(steps: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"mode": "saga", "steps": steps})
    }

    #[test]
    fn a_full_saga_passes() {
        let r = req(serde_json::json!({
            "id": "order-1", "mode": "saga",
            "steps": [
                {"name": "reserve", "action": {"url": "http://127.0.0.1:9001/reserve", "method": "POST", "body": {"sku": "a"}, "headers": {"x-a": "1"}},
                 "compensate": {"url": "concord://inventory/release"}},
                {"name": "charge", "action": {"url": "concord://payments.prod/charge"}, "timeout_ms": 100, "retry": {"max_attempts": 3}}
            ],
            "concurrent": true, "depends_on": {"charge": ["reserve"]},
            "timeout_secs": 60, "step_timeout_ms": 5000,
            "retry": {"initial_backoff_ms": 200, "max_backoff_ms": 30000, "max_attempts": 10},
            "wait": true
        }));
        assert_eq!(txn_request(&r), Ok(()));
    }

    #[test]
    fn errors_name_the_field() {
        let action = serde_json::json!({"url": "http://h/a"});
        assert_eq!(field(&req(saga(serde_json::json!([])))), "steps");
        assert_eq!(
            field(&req(saga(serde_json::json!([{"name": "a"}])))),
            "steps[0].action"
        );
        assert_eq!(
            field(&req(saga(
                serde_json::json!([{"name": "a", "action": {"url": "ftp://h/x"}}])
            ))),
            "steps[0].action.url"
        );
        assert_eq!(
            field(&req(saga(
                serde_json::json!([{"name": "a", "action": action, "commit": action}])
            ))),
            "steps[0].commit"
        );
        assert_eq!(
            field(&req(saga(
                serde_json::json!([{"name": "a b", "action": action}])
            ))),
            "steps[0].name"
        );
        assert_eq!(
            field(&req(saga(serde_json::json!([
                {"name": "a", "action": action}, {"name": "a", "action": action}
            ])))),
            "steps[1].name"
        );
        assert_eq!(
            field(&req(saga(
                serde_json::json!([{"name": "a", "action": {"url": "concord://Bad_Name/x"}}])
            ))),
            "steps[0].action.url"
        );
        assert_eq!(
            field(&req(saga(
                serde_json::json!([{"name": "a", "action": {"url": "http://h/", "method": "post"}}])
            ))),
            "steps[0].action.method"
        );
        assert_eq!(
            field(&req(saga(
                serde_json::json!([{"name": "a", "action": {"url": "http://h/", "headers": {"Concord-Txn-Id": "x"}}}])
            ))),
            "steps[0].action.headers"
        );
        assert_eq!(
            field(&req(saga(
                serde_json::json!([{"name": "a", "action": action, "retry": {"max_attempts": 0}}])
            ))),
            "steps[0].retry.max_attempts"
        );
        assert_eq!(
            field(&req(
                serde_json::json!({"mode": "2pc", "steps": [{"name": "a", "prepare": action, "commit": action}]})
            )),
            "steps[0].rollback"
        );
        assert_eq!(
            field(&req(
                serde_json::json!({"mode": "tcc", "steps": [{"name": "a", "try": action}]})
            )),
            "steps"
        );
        let mut r = req(saga(
            serde_json::json!([{"name": "a", "action": action}, {"name": "b", "action": action}]),
        ));
        r.depends_on.insert("a".into(), vec!["b".into()]);
        assert_eq!(field(&r), "depends_on.a");
        r.depends_on.clear();
        r.timeout_secs = Some(0);
        assert_eq!(field(&r), "timeout_secs");
        r.timeout_secs = None;
        r.id = Some(String::new());
        assert_eq!(field(&r), "id");
    }

    #[test]
    fn unknown_fields_are_refused_when_decoding() {
        let bad: Result<TxnRequest, _> = serde_json::from_value(serde_json::json!({
            "mode": "saga", "steps": [{"name": "a", "action": {"url": "http://h/"}, "compensation": {}}]
        }));
        assert!(bad.is_err());
        let bad: Result<TxnRequest, _> =
            serde_json::from_value(serde_json::json!({"mode": "xa", "steps": []}));
        assert!(bad.is_err());
    }

    #[test]
    fn branches_and_resolutions() {
        let c = serde_json::json!({"url": "http://h/x"});
        let b: BranchRequest = serde_json::from_value(
            serde_json::json!({"name": "a", "try": c, "confirm": c, "cancel": c}),
        )
        .expect("decodes");
        assert_eq!(branch(&b), Ok(()));
        assert_eq!(
            resolve(&ResolveRequest { reason: " ".into() })
                .unwrap_err()
                .field,
            "reason"
        );
    }
}
