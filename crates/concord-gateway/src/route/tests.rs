use std::collections::HashMap;

use concord_api::gateway::RouteSpec;
use concord_balance::Endpoint;
use http::Request;
use serde_json::{Value, json};

use super::*;

fn spec(v: Value) -> RouteSpec {
    serde_json::from_value(v).unwrap()
}

fn compile(v: Value) -> Result<Route, RouteError> {
    let stored = StoredRoute {
        name: "r".to_owned(),
        route: spec(v),
        revision: 3,
    };
    Route::compile(&stored, &mut |_, p| fixed(Balancer::new(p), Vec::new()))
}

/// Compiles with one balancer per target, holding the given endpoints.
fn compile_with(v: Value, endpoints: &[(&str, Vec<Endpoint>)]) -> Route {
    let by_service: HashMap<&str, &Vec<Endpoint>> =
        endpoints.iter().map(|(s, e)| (*s, e)).collect();
    let stored = StoredRoute {
        name: "r".to_owned(),
        route: spec(v),
        revision: 1,
    };
    Route::compile(&stored, &mut |key, policy| {
        let b = Balancer::new(policy);
        let eps = by_service
            .get(key.service.as_str())
            .map_or_else(Vec::new, |eps| (*eps).clone());
        b.set_endpoints(eps.clone()).unwrap();
        fixed(b, eps)
    })
    .unwrap()
}

#[test]
fn defaults_fill_what_the_route_leaves_out() {
    let r = compile(json!({"match": {}, "service": "orders"})).unwrap();
    assert_eq!(r.policy, Policy::P2cEwma);
    assert_eq!(
        r.timeouts,
        Timeouts {
            connect: DEFAULT_CONNECT_TIMEOUT,
            per_try: DEFAULT_PER_TRY_TIMEOUT,
            total: DEFAULT_TOTAL_TIMEOUT,
        }
    );
    assert_eq!(r.retry, RetryPolicy::default());
    assert!(r.rate_limit.is_none() && r.fallback.is_none() && r.hash_on.is_none());
    assert_eq!(r.rewrite, Rewrite::Keep);
    assert_eq!(r.targets.len(), 1);
    assert_eq!(r.targets[0].key, TargetKey::new("default", "orders", &[]));
    assert_eq!(r.revision, 3);
}

#[test]
fn explicit_settings_are_used() {
    let r = compile(
        json!({"match": {"path_prefix": "/api"}, "service": "orders",
        "lb": "round_robin", "hash_on": "path", "strip_prefix": true,
        "timeouts": {"connect_ms": 50, "per_try_ms": 200, "total_ms": 500}}),
    )
    .unwrap();
    assert_eq!(r.policy, Policy::RoundRobin);
    assert_eq!(r.hash_on, Some(HashOn::Path));
    assert_eq!(r.rewrite, Rewrite::StripPrefix("/api".to_owned()));
    assert_eq!(r.timeouts.connect, Duration::from_millis(50));
    assert_eq!(r.timeouts.per_try, Duration::from_millis(200));
    assert_eq!(r.timeouts.total, Duration::from_millis(500));
    assert!(compile(json!({"match": {}, "service": "s", "lb": "fastest"})).is_err());
    assert!(compile(json!({"match": {}, "service": "s", "hash_on": "moon"})).is_err());
}

#[test]
fn targets_come_from_service_or_split() {
    let single = spec(
        json!({"match": {}, "service": "orders", "namespace": "prod",
                             "tags": ["v2", "eu", "v2"]}),
    );
    assert_eq!(
        targets_of(&single),
        [(
            TargetKey::new("prod", "orders", &["eu".into(), "v2".into()]),
            1
        )]
    );
    let split = spec(json!({"match": {}, "namespace": "prod", "split": [
        {"service": "orders", "tags": ["v1"], "weight": 90},
        {"service": "orders", "namespace": "canary", "tags": ["v2"], "weight": 10},
        {"service": "off", "weight": 0}]}));
    let targets = targets_of(&split);
    assert_eq!(
        targets[0],
        (TargetKey::new("prod", "orders", &["v1".into()]), 90)
    );
    assert_eq!(
        targets[1],
        (TargetKey::new("canary", "orders", &["v2".into()]), 10)
    );
    assert_eq!(targets[2].1, 0);
    // Weight-0 targets are not compiled in, so nothing follows them.
    let r = compile(serde_json::to_value(&split).unwrap()).unwrap();
    assert_eq!(r.targets.len(), 2);
    assert_eq!(
        TargetKey::new("ns", "s", &["b".into(), "a".into()]).to_string(),
        "ns/s[a,b]"
    );
}

#[test]
fn paths_are_stripped_or_replaced() {
    let strip = Rewrite::StripPrefix("/api/orders".to_owned());
    assert_eq!(strip.apply("/api/orders/1", Some("x=1")), "/1?x=1");
    assert_eq!(strip.apply("/api/orders", None), "/");
    assert_eq!(strip.apply("/api/orders/", None), "/");
    let slash = Rewrite::StripPrefix("/api/".to_owned());
    assert_eq!(slash.apply("/api/x", None), "/x");
    let replace = Rewrite::Replace("/v2/items".to_owned());
    assert_eq!(replace.apply("/old/1", Some("q=2")), "/v2/items?q=2");
    assert_eq!(Rewrite::Keep.apply("/a", Some("b")), "/a?b");
    // rewrite_path wins over a prefix without strip_prefix.
    let r = compile(json!({"match": {"path_prefix": "/a"}, "service": "s", "rewrite_path": "/b"}))
        .unwrap();
    assert_eq!(r.rewrite, Rewrite::Replace("/b".to_owned()));
}

#[test]
fn a_weighted_split_follows_the_weights() {
    let r = compile_with(
        json!({"match": {}, "split": [{"service": "a", "weight": 90}, {"service": "b", "weight": 10}]}),
        &[
            ("a", vec![Endpoint::new("a1", "127.0.0.1:1", 1)]),
            ("b", vec![Endpoint::new("b1", "127.0.0.1:2", 1)]),
        ],
    );
    let n = 20_000;
    let a = (0..n)
        .filter(|_| r.pick(None, None).unwrap().0.key.service == "a")
        .count();
    let share = a as f64 / n as f64;
    assert!((share - 0.9).abs() < 0.02, "share of a: {share}");
}

#[test]
fn an_empty_target_passes_its_turn() {
    let r = compile_with(
        json!({"match": {}, "split": [{"service": "a", "weight": 90}, {"service": "b", "weight": 10}]}),
        &[("b", vec![Endpoint::new("b1", "127.0.0.1:2", 1)])],
    );
    for _ in 0..100 {
        assert_eq!(r.pick(None, None).unwrap().1.endpoint.id, "b1");
    }
    let empty = compile_with(json!({"match": {}, "service": "a"}), &[]);
    assert!(empty.pick(None, None).is_none());
}

#[test]
fn a_retry_avoids_the_endpoint_that_failed() {
    let r = compile_with(
        json!({"match": {}, "service": "a", "lb": "random"}),
        &[(
            "a",
            vec![
                Endpoint::new("a1", "127.0.0.1:1", 1),
                Endpoint::new("a2", "127.0.0.1:2", 1),
            ],
        )],
    );
    let avoided = (0..200)
        .filter(|_| r.pick(None, Some("a1")).unwrap().1.endpoint.id == "a2")
        .count();
    // Three random picks all landing on a1: 1/8 of the time.
    assert!(avoided > 150, "{avoided}");
    let single = compile_with(
        json!({"match": {}, "service": "a"}),
        &[("a", vec![Endpoint::new("a1", "127.0.0.1:1", 1)])],
    );
    assert_eq!(single.pick(None, Some("a1")).unwrap().1.endpoint.id, "a1");
}

/// Fails endpoint `id` of the route's first target until it is ejected.
fn eject(r: &Route, id: &str) {
    let target = &r.targets[0];
    let outlier = target
        .outlier
        .as_ref()
        .expect("route has outlier detection");
    let now = Instant::now();
    let ejected = (0..10).any(|_| outlier.record(id, true, target.balancer.len(), now));
    assert!(ejected && target.is_ejected(id, now));
}

#[test]
fn picks_skip_ejected_endpoints() {
    let three = vec![
        Endpoint::new("a1", "127.0.0.1:1", 1),
        Endpoint::new("a2", "127.0.0.1:2", 1),
        Endpoint::new("a3", "127.0.0.1:3", 1),
    ];
    let r = compile_with(
        json!({"match": {}, "service": "a", "lb": "round_robin",
               "outlier": {"consecutive_failures": 2, "max_ejection_percent": 70}}),
        &[("a", three)],
    );
    eject(&r, "a1");
    eject(&r, "a2");
    for _ in 0..30 {
        assert_eq!(r.pick(None, None).unwrap().1.endpoint.id, "a3");
    }
    // Ejected or avoided everywhere: an endpoint that is only avoided wins.
    assert_eq!(r.pick(None, Some("a3")).unwrap().1.endpoint.id, "a3");
}

#[test]
fn a_target_whose_endpoints_are_all_ejected_still_serves() {
    let r = compile_with(
        json!({"match": {}, "service": "a", "lb": "round_robin",
               "outlier": {"consecutive_failures": 1, "max_ejection_percent": 100}}),
        &[("a", vec![Endpoint::new("a1", "127.0.0.1:1", 1)])],
    );
    eject(&r, "a1");
    assert_eq!(r.pick(None, None).unwrap().1.endpoint.id, "a1");
}

#[test]
fn outlier_detection_is_only_on_when_the_route_sets_it() {
    let r = compile(json!({"match": {}, "service": "a"})).unwrap();
    assert!(r.targets[0].outlier.is_none());
    let r = compile(json!({"match": {}, "service": "a", "outlier": {}})).unwrap();
    assert!(r.targets[0].outlier.is_some());
}

#[test]
fn hash_keys_come_from_the_request() {
    let req = Request::builder()
        .uri("/p/1")
        .header("x-user-id", "u7")
        .header("cookie", "a=1; session=s9")
        .body(())
        .unwrap();
    let view = RequestView::of(&req);
    let ip: IpAddr = "10.0.0.1".parse().unwrap();
    let key = |s: &str| HashOn::parse(s).unwrap().key(&view, ip);
    assert_eq!(key("header:x-user-id"), Some(hash_key(b"u7")));
    assert_eq!(key("header:x-none"), None);
    assert_eq!(key("cookie:session"), Some(hash_key(b"s9")));
    assert_eq!(key("cookie:none"), None);
    assert_eq!(key("source_ip"), Some(hash_key(b"10.0.0.1")));
    assert_eq!(key("path"), Some(hash_key(b"/p/1")));
    assert!(HashOn::parse("cookie:").is_err());
    assert!(HashOn::parse("header:bad name").is_err());
}

#[test]
fn fallback_answers_with_its_body() {
    let r = compile(json!({"match": {}, "service": "s",
        "fallback": {"status": 503, "body": "come back later"}}))
    .unwrap();
    let resp = r.fallback_response().unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/plain");
    let r = compile(json!({"match": {}, "service": "s",
        "fallback": {"status": 200, "body": "{}", "content_type": "application/json"}}))
    .unwrap();
    let resp = r.fallback_response().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    assert!(
        compile(json!({"match": {}, "service": "s"}))
            .unwrap()
            .fallback_response()
            .is_none()
    );
}

#[test]
fn a_sticky_token_names_a_passing_endpoint_until_it_is_gone_or_ejected() {
    let mut drained = Endpoint::new("a3", "127.0.0.1:3", 1);
    drained.weight = 0;
    let r = compile_with(
        json!({"match": {}, "service": "a", "sticky": {"cookie": "srv", "ttl_secs": 60},
               "outlier": {"consecutive_failures": 1, "max_ejection_percent": 50}}),
        &[(
            "a",
            vec![
                Endpoint::new("a1", "127.0.0.1:1", 1),
                Endpoint::new("a2", "127.0.0.1:2", 1),
                drained,
            ],
        )],
    );
    assert_eq!(
        r.sticky,
        Some(StickyConfig {
            cookie: "srv".to_owned(),
            ttl: Some(Duration::from_secs(60))
        })
    );
    let pinned = |token: &str| r.pick_sticky(token).map(|(_, c)| c.endpoint().id.clone());
    assert_eq!(pinned(&sticky::token("a2")).as_deref(), Some("a2"));
    assert_eq!(pinned(&sticky::token("a3")), None, "weight 0");
    assert_eq!(pinned(&sticky::token("gone")), None);
    assert_eq!(pinned("not-a-token"), None);
    eject(&r, "a2");
    assert_eq!(pinned(&sticky::token("a2")), None, "ejected");
}
