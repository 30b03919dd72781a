//! Service registry: register, discover, heartbeat, expire, deregister, blocking queries.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn register_discover_deregister() {
    let s = Server::dev().await;
    let (st, idx, b) = call(
        Method::PUT,
        &s.url("/v1/services/orders/instances/o1"),
        Some(json!({"address":"10.0.0.5","port":8080,"tags":["v2"],"meta":{"zone":"a"},"weight":100})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let rev = b["revision"].as_u64().unwrap();
    assert_eq!(idx, Some(rev));
    assert_eq!(b["instance"]["id"], "o1");
    assert_eq!(b["instance"]["address"], "10.0.0.5");
    assert_eq!(b["instance"]["meta"]["zone"], "a");
    assert_eq!(
        b["instance"]["ttl_secs"],
        serde_json::Value::Null,
        "present, null: {b}"
    );

    let (st, _, b) = call(
        Method::PUT,
        &s.url("/v1/services/orders/instances/o2"),
        Some(json!({"address":"10.0.0.6","port":8080,"tags":["v1"]})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["instance"]["weight"], 100, "default weight");

    let (st, _, b) = get(&s.url("/v1/services")).await;
    assert_eq!(st, 200);
    assert_eq!(
        b["services"],
        json!([{"name":"orders","instances":2,"passing":2}])
    );

    let (_, _, b) = get(&s.url("/v1/services/orders")).await;
    assert_eq!(b["name"], "orders");
    let ids: Vec<_> = b["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("o1"), json!("o2")]);
    for field in [
        "id", "address", "port", "tags", "meta", "weight", "ttl_secs",
    ] {
        assert!(
            b["instances"][0].get(field).is_some(),
            "instance has {field}"
        );
    }

    let (_, _, b) = get(&s.url("/v1/services/orders?tag=v2")).await;
    assert_eq!(b["instances"].as_array().unwrap().len(), 1);
    assert_eq!(b["instances"][0]["id"], "o1");
    let (_, _, b) = get(&s.url("/v1/services/orders?tag=v2&tag=v1")).await;
    assert_eq!(b["instances"], json!([]), "every tag must match");

    // Replacing keeps one instance with the new fields.
    let (st, _, b) = call(
        Method::PUT,
        &s.url("/v1/services/orders/instances/o1"),
        Some(json!({"address":"10.0.0.7","port":9090})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (_, _, b) = get(&s.url("/v1/services/orders")).await;
    assert_eq!(b["instances"][0]["address"], "10.0.0.7");
    assert_eq!(b["instances"].as_array().unwrap().len(), 2);

    let (st, _, b) = call(
        Method::DELETE,
        &s.url("/v1/services/orders/instances/o1"),
        None,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert!(b["revision"].as_u64().unwrap() > rev);
    let got = call(
        Method::DELETE,
        &s.url("/v1/services/orders/instances/o1"),
        None,
    )
    .await;
    assert_error(&got, 404, "not_found");

    let (st, _, b) = get(&s.url("/v1/services/unknown")).await;
    assert_eq!(st, 200, "unknown service is an empty list");
    assert_eq!(b["instances"], json!([]));
}

#[tokio::test]
async fn ephemeral_instance_lives_with_heartbeats_and_expires_without() {
    let s = Server::dev().await;
    let (st, _, b) = call(
        Method::PUT,
        &s.url("/v1/services/pay/instances/p1"),
        Some(json!({"address":"127.0.0.1","port":9000,"ttl_secs":2})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["instance"]["ttl_secs"], 2);
    let hb = s.url("/v1/services/pay/instances/p1/heartbeat");
    // Heartbeats for twice the TTL keep it registered.
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let (st, _, b) = call(Method::PUT, &hb, None).await;
        assert_eq!(st, 200, "heartbeat: {b}");
        assert_eq!(b["ttl_secs"], 2);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let (_, _, b) = get(&s.url("/v1/services/pay")).await;
    assert_eq!(
        b["instances"].as_array().unwrap().len(),
        1,
        "still there: {b}"
    );

    // Without heartbeats it disappears within about ttl_secs.
    let stopped = Instant::now();
    eventually(Duration::from_secs(8), "instance expiry", || async {
        let (_, _, b) = get(&s.url("/v1/services/pay")).await;
        b["instances"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
    assert!(
        stopped.elapsed() >= Duration::from_millis(1500),
        "expired too early"
    );
    let got = call(Method::PUT, &hb, None).await;
    assert_error(&got, 404, "not_found");
    // A persistent instance cannot be heart-beaten.
    call(
        Method::PUT,
        &s.url("/v1/services/pay/instances/p2"),
        Some(json!({"address":"a","port":1})),
    )
    .await;
    let got = call(
        Method::PUT,
        &s.url("/v1/services/pay/instances/p2/heartbeat"),
        None,
    )
    .await;
    assert_error(&got, 400, "invalid_argument");
    let got = call(
        Method::PUT,
        &s.url("/v1/services/pay/instances/nobody/heartbeat"),
        None,
    )
    .await;
    assert_error(&got, 404, "not_found");
}

#[tokio::test]
async fn blocking_query_returns_early_on_change_and_waits_otherwise() {
    let s = Server::dev().await;
    let (_, idx, _) = get(&s.url("/v1/services/web")).await;
    let index = idx.expect("X-Concord-Index");

    // Nothing changes: returns after `wait`, not before.
    let t = Instant::now();
    let (st, _, _) = get(&s.url(&format!("/v1/services/web?index={index}&wait=1s"))).await;
    assert_eq!(st, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "returned early without a change"
    );

    // Unrelated changes do not wake it; a change to the service does.
    let url = s.url(&format!("/v1/services/web?index={index}&wait=60s"));
    let waiter = tokio::spawn(async move {
        let t = Instant::now();
        (get(&url).await, t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    put_kv(&s, "unrelated", "x").await;
    call(
        Method::PUT,
        &s.url("/v1/services/other/instances/x"),
        Some(json!({"address":"a","port":1})),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "woke on an unrelated change");
    call(
        Method::PUT,
        &s.url("/v1/services/web/instances/w1"),
        Some(json!({"address":"a","port":1})),
    )
    .await;
    let ((st, idx2, b), took) = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .expect("blocking query returned")
        .unwrap();
    assert_eq!(st, 200);
    assert!(took < Duration::from_secs(30), "returned early");
    assert_eq!(b["instances"][0]["id"], "w1");
    assert!(idx2.unwrap() > index);

    // Deregistration also wakes it.
    let url = s.url(&format!(
        "/v1/services/web?index={}&wait=60s",
        idx2.unwrap()
    ));
    let waiter = tokio::spawn(async move { get(&url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    call(
        Method::DELETE,
        &s.url("/v1/services/web/instances/w1"),
        None,
    )
    .await;
    let (_, _, b) = tokio::time::timeout(Duration::from_secs(20), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(b["instances"], json!([]));
}
