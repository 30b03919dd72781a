use std::sync::Arc;

use concord_api::gateway::{RouteSpec, StoredRoute};
use concord_balance::Balancer;
use http::{Method, Request};
use serde_json::{Value, json};

use super::*;
use crate::route::{Route, fixed};

fn route(name: &str, m: Value, priority: i32) -> Arc<Route> {
    let spec: RouteSpec =
        serde_json::from_value(json!({"match": m, "priority": priority, "service": "s"})).unwrap();
    let stored = StoredRoute {
        name: name.to_owned(),
        route: spec,
        revision: 1,
    };
    Arc::new(Route::compile(&stored, &mut |_, p| fixed(Balancer::new(p), Vec::new())).unwrap())
}

fn req(method: Method, uri: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut b = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn find<'t>(table: &'t RouteTable, r: &Request<()>) -> Option<&'t str> {
    table.find(&RequestView::of(r)).map(|r| r.name.as_str())
}

fn get(table: &RouteTable, uri: &str) -> Option<String> {
    find(table, &req(Method::GET, uri, &[])).map(str::to_owned)
}

#[test]
fn exact_beats_regex_beats_longer_prefix_beats_shorter_beats_none() {
    let table = RouteTable::new(vec![
        route("any", json!({}), 100),
        route("short", json!({"path_prefix": "/api"}), 50),
        route("long", json!({"path_prefix": "/api/orders"}), 0),
        route("regex", json!({"path_regex": "/api/orders/[0-9]+"}), 0),
        route("exact", json!({"path_exact": "/api/orders/42"}), -5),
    ]);
    assert_eq!(get(&table, "/api/orders/42").as_deref(), Some("exact"));
    assert_eq!(get(&table, "/api/orders/7").as_deref(), Some("regex"));
    assert_eq!(get(&table, "/api/orders/x").as_deref(), Some("long"));
    assert_eq!(get(&table, "/api/orders").as_deref(), Some("long"));
    assert_eq!(get(&table, "/api/users").as_deref(), Some("short"));
    assert_eq!(get(&table, "/other").as_deref(), Some("any"));
    let order: Vec<&str> = table.routes().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["exact", "regex", "long", "short", "any"]);
}

#[test]
fn host_given_beats_no_host_then_priority_then_name() {
    let table = RouteTable::new(vec![
        route("b-plain", json!({"path_prefix": "/"}), 0),
        route("a-plain", json!({"path_prefix": "/"}), 0),
        route("high", json!({"path_prefix": "/"}), 10),
        route(
            "shop",
            json!({"path_prefix": "/", "host": "Shop.Local"}),
            -10,
        ),
    ]);
    let shop = req(Method::GET, "/x", &[("host", "shop.local:8080")]);
    assert_eq!(find(&table, &shop), Some("shop"));
    let other = req(Method::GET, "/x", &[("host", "other.local")]);
    assert_eq!(find(&table, &other), Some("high"));
    let order: Vec<&str> = table.routes().iter().map(|r| r.name.as_str()).collect();
    assert_eq!(order, ["shop", "high", "a-plain", "b-plain"]);
}

#[test]
fn http2_requests_match_on_the_authority() {
    let table = RouteTable::new(vec![route("shop", json!({"host": "shop.local"}), 0)]);
    let h2 = req(Method::GET, "http://shop.local:7680/x", &[]);
    assert_eq!(find(&table, &h2), Some("shop"));
    let none = req(Method::GET, "/x", &[]);
    assert_eq!(find(&table, &none), None);
}

#[test]
fn every_condition_must_hold() {
    let table = RouteTable::new(vec![route(
        "canary",
        json!({"path_prefix": "/api", "methods": ["GET", "POST"],
               "headers": {"x-canary": "1"}, "query": {"debug": "1"}}),
        0,
    )]);
    let ok = req(Method::POST, "/api/x?a=b&debug=1", &[("x-canary", "1")]);
    assert_eq!(find(&table, &ok), Some("canary"));
    let wrong_method = req(Method::DELETE, "/api/x?debug=1", &[("x-canary", "1")]);
    assert_eq!(find(&table, &wrong_method), None);
    let wrong_header = req(Method::GET, "/api/x?debug=1", &[("x-canary", "2")]);
    assert_eq!(find(&table, &wrong_header), None);
    let no_header = req(Method::GET, "/api/x?debug=1", &[]);
    assert_eq!(find(&table, &no_header), None);
    let wrong_query = req(Method::GET, "/api/x?debug=0", &[("x-canary", "1")]);
    assert_eq!(find(&table, &wrong_query), None);
    let no_query = req(Method::GET, "/api/x", &[("x-canary", "1")]);
    assert_eq!(find(&table, &no_query), None);
    // Repeated headers and encoded query values count.
    let repeated = req(
        Method::GET,
        "/api?debug=%31",
        &[("x-canary", "0"), ("x-canary", "1")],
    );
    assert_eq!(find(&table, &repeated), Some("canary"));
}

#[test]
fn prefixes_match_whole_segments() {
    assert!(prefix_matches("/api", "/api"));
    assert!(prefix_matches("/api", "/api/"));
    assert!(prefix_matches("/api", "/api/x/y"));
    assert!(!prefix_matches("/api", "/apix"));
    assert!(!prefix_matches("/api", "/ap"));
    assert!(prefix_matches("/api/", "/api/x"));
    assert!(!prefix_matches("/api/", "/api"));
    assert!(prefix_matches("/", "/anything"));
}

#[test]
fn regexes_match_the_whole_path() {
    let table = RouteTable::new(vec![route(
        "items",
        json!({"path_regex": "/v[0-9]+/items"}),
        0,
    )]);
    assert_eq!(get(&table, "/v12/items").as_deref(), Some("items"));
    assert_eq!(get(&table, "/v1/items/3"), None);
    assert_eq!(get(&table, "/x/v1/items"), None);
}

#[test]
fn ports_are_stripped_from_hosts() {
    assert_eq!(strip_port("example.com:8080"), "example.com");
    assert_eq!(strip_port("example.com"), "example.com");
    assert_eq!(strip_port("[::1]:80"), "[::1]");
    assert_eq!(strip_port("[::1]"), "[::1]");
    assert_eq!(strip_port("10.0.0.1:1"), "10.0.0.1");
}

#[test]
fn bad_conditions_are_route_errors() {
    let m: RouteMatch = serde_json::from_value(json!({"path_regex": "("})).unwrap();
    assert!(Matcher::compile(&m).is_err());
    let m: RouteMatch = serde_json::from_value(json!({"headers": {"bad header": "1"}})).unwrap();
    assert!(Matcher::compile(&m).is_err());
}
