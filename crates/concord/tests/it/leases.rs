//! Leases: grant, keepalive, info, revoke, and expiry deleting bound keys.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn lease_keys_vanish_on_expiry() {
    let s = Server::dev().await;
    let (st, _, b) = call(
        Method::POST,
        &s.url("/v1/leases"),
        Some(json!({"ttl_secs":1})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    assert_eq!(b["ttl_secs"], 1);
    let (st, _, b) = call_raw(
        Method::PUT,
        &s.url(&format!("/v1/kv/session/x?lease={id}")),
        b"v".to_vec(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (_, _, b) = get(&s.url("/v1/kv/session/x")).await;
    assert_eq!(b["lease"], id.as_str());

    let (st, _, b) = get(&s.url(&format!("/v1/leases/{id}"))).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["id"], id.as_str());
    assert!(b["remaining_ms"].as_u64().unwrap() <= 1000);

    let granted = Instant::now();
    eventually(Duration::from_secs(8), "leased key deleted", || async {
        (get(&s.url("/v1/kv/session/x")).await.0 == 404).then_some(())
    })
    .await;
    assert!(granted.elapsed() >= Duration::from_millis(500));
    assert_error(
        &get(&s.url(&format!("/v1/leases/{id}"))).await,
        404,
        "not_found",
    );
    let got = call(
        Method::PUT,
        &s.url(&format!("/v1/leases/{id}/keepalive")),
        None,
    )
    .await;
    assert_error(&got, 404, "not_found");
    // Writing with an unknown lease is refused.
    let got = call_raw(
        Method::PUT,
        &s.url(&format!("/v1/kv/y?lease={id}")),
        b"v".to_vec(),
    )
    .await;
    assert_error(&got, 404, "not_found");
}

#[tokio::test]
async fn keepalive_holds_and_revoke_deletes() {
    let s = Server::dev().await;
    let (_, _, b) = call(
        Method::POST,
        &s.url("/v1/leases"),
        Some(json!({"ttl_secs":2})),
    )
    .await;
    let id = b["id"].as_str().unwrap().to_owned();
    call_raw(
        Method::PUT,
        &s.url(&format!("/v1/kv/k1?lease={id}")),
        b"v".to_vec(),
    )
    .await;
    call_raw(
        Method::PUT,
        &s.url(&format!("/v1/kv/k2?lease={id}")),
        b"v".to_vec(),
    )
    .await;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        let (st, _, b) = call(
            Method::PUT,
            &s.url(&format!("/v1/leases/{id}/keepalive")),
            None,
        )
        .await;
        assert_eq!(st, 200, "{b}");
        assert_eq!(b["ttl_secs"], 2);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(get(&s.url("/v1/kv/k1")).await.0, 200, "kept alive");
    let (_, _, b) = get(&s.url(&format!("/v1/leases/{id}"))).await;
    assert_eq!(b["keys"], json!(["k1", "k2"]));

    let (st, _, b) = call(Method::DELETE, &s.url(&format!("/v1/leases/{id}")), None).await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(get(&s.url("/v1/kv/k1")).await.0, 404);
    assert_eq!(get(&s.url("/v1/kv/k2")).await.0, 404);
    let got = call(Method::DELETE, &s.url(&format!("/v1/leases/{id}")), None).await;
    assert_error(&got, 404, "not_found");
}
