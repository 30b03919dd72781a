//! Any node serves any request: followers relay writes, keepalives and
//! linearizable reads to the leader; stale reads and watches are local.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::support::cluster::Cluster;
use crate::support::*;

#[tokio::test]
async fn followers_forward_writes_and_linearizable_reads() {
    let c = Cluster::start(3).await;
    let leader = c.leader().await;
    let follower = *c.nodes.keys().find(|id| **id != leader).unwrap();
    let f = c.node(follower);

    // A write through a follower is acknowledged by the leader's log...
    let (st, idx, b) = call_raw(Method::PUT, &f.url("/v1/kv/fw/a"), b"1".to_vec()).await;
    assert_eq!(st, 200, "{b}");
    let rev = b["revision"].as_u64().unwrap();
    assert_eq!(idx, Some(rev));
    // ...and a linearizable read through the same follower sees it at once.
    let (st, _, b) = get(&f.url("/v1/kv/fw/a")).await;
    assert_eq!(st, 200, "read-your-writes through a follower: {b}");
    assert_eq!(b["value"], "1");

    // CAS, transactions, registry, leases and keepalives all work through it.
    let got = call_raw(Method::PUT, &f.url("/v1/kv/fw/a?cas=0"), b"2".to_vec()).await;
    assert_error(&got, 409, "cas_failed");
    let (st, _, b) = call(
        Method::POST,
        &f.url("/v1/txn"),
        Some(json!({"success":[{"put":{"key":"fw/t","value":"x"}}]})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (st, _, b) = call(
        Method::PUT,
        &f.url("/v1/services/web/instances/w1"),
        Some(json!({"address":"a","port":1,"ttl_secs":5})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (st, _, b) = call(
        Method::PUT,
        &f.url("/v1/services/web/instances/w1/heartbeat"),
        None,
    )
    .await;
    assert_eq!(
        st, 200,
        "heartbeat relayed to the leader's lease memory: {b}"
    );
    let (_, _, lease) = call(
        Method::POST,
        &f.url("/v1/leases"),
        Some(json!({"ttl_secs":5})),
    )
    .await;
    let id = lease["id"].as_str().expect("lease id").to_owned();
    let (st, _, b) = call(
        Method::PUT,
        &f.url(&format!("/v1/leases/{id}/keepalive")),
        None,
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let (st, _, b) = get(&f.url(&format!("/v1/leases/{id}"))).await;
    assert_eq!(st, 200, "{b}");
    assert!(b["remaining_ms"].as_u64().unwrap() > 0);
    // Validation errors come back in the usual shape through the relay.
    assert_error(
        &get(&f.url("/v1/kv/fw/a?consistency=bogus")).await,
        400,
        "invalid_argument",
    );
    assert_error(
        &call_raw(
            Method::PUT,
            &f.url("/v1/services/Bad/instances/x"),
            b"{}".to_vec(),
        )
        .await,
        400,
        "invalid_argument",
    );

    // A stale read is answered locally, saying how stale it may be.
    let value = eventually(
        Duration::from_secs(10),
        "follower applied the write",
        || async {
            let r = reqwest::get(f.url("/v1/kv/fw/a?consistency=stale"))
                .await
                .ok()?;
            (r.status() == 200).then_some(r)
        },
    )
    .await;
    assert_eq!(
        value.headers()["x-concord-known-leader"],
        leader.to_string().as_str()
    );
    let contact: i64 = value.headers()["x-concord-last-contact"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (0..5_000).contains(&contact),
        "recent contact with the leader: {contact}"
    );

    // A watch on a follower streams from its own applied history.
    let mut w = Sse::open(
        &f.url(&format!("/v1/watch?prefix=fw/&from_revision={}", rev - 1)),
        None,
    )
    .await;
    let e = w.next_change(Duration::from_secs(20)).await;
    assert_eq!(e.id.as_deref(), Some(rev.to_string().as_str()));
}
