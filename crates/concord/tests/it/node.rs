//! Node endpoints, headers on every response, stale reads, metrics, clean shutdown.

use reqwest::Method;

use crate::support::*;

#[tokio::test]
async fn status_health_ready_metrics() {
    let mut s = Server::dev().await;
    let rev = put_kv(&s, "a", "1").await;
    let (st, idx, b) = get(&s.url("/v1/status")).await;
    assert_eq!(st, 200);
    assert!(idx.is_some());
    assert_eq!(b["node_id"], 1);
    assert_eq!(b["leader_id"], 1);
    assert!(b["term"].as_u64().unwrap() >= 1);
    assert!(b["revision"].as_u64().unwrap() >= rev);
    assert!(b["applied_index"].as_u64().unwrap() <= b["commit_index"].as_u64().unwrap());
    assert_eq!(b["members"].as_array().unwrap().len(), 1);
    for p in ["/v1/health", "/v1/ready"] {
        let (st, idx, _) = get(&s.url(p)).await;
        assert_eq!(st, 200, "{p}");
        assert!(idx.is_some(), "{p} carries X-Concord-Index");
    }
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for m in [
        "concord_http_requests_total",
        "concord_http_request_duration_seconds_bucket",
        "concord_raft_term",
        "concord_raft_leader",
        "concord_raft_commit_index",
        "concord_raft_applied_index",
        "concord_raft_propose_duration_seconds",
        "concord_raft_apply_duration_seconds_count",
        "concord_kv_keys",
        "concord_services",
        "concord_instances",
        "concord_leases",
        "concord_watchers",
        "concord_raft_batch_holds_total",
        "concord_raft_batch_hold_timeouts_total",
        "concord_raft_log_syncs_total",
    ] {
        assert!(text.contains(m), "metrics lack {m}");
    }
    // The write above went through this node's proposer.
    let proposals = text
        .lines()
        .find_map(|l| l.strip_prefix("concord_raft_proposals_total "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .expect("concord_raft_proposals_total");
    assert!(proposals >= 1, "{proposals} proposals counted");
    assert!(
        text.contains("route=\"/v1/kv/{*key}\""),
        "requests labelled by route"
    );

    // Stale reads say what they are.
    let resp = reqwest::get(s.url("/v1/kv/a?consistency=stale"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-concord-known-leader"], "1");
    assert!(resp.headers().contains_key("x-concord-last-contact"));
    assert!(resp.headers().contains_key("x-concord-index"));

    // Every response carries the index, errors included.
    let (_, idx, _) = call(Method::GET, &s.url("/v1/kv/absent"), None).await;
    assert!(idx.is_some());

    // SIGTERM stops it cleanly; the data survives.
    let status = s.terminate();
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[tokio::test]
async fn restart_keeps_data_and_revision() {
    let mut s = Server::dev().await;
    let mut last = 0;
    for i in 0..50 {
        last = put_kv(&s, &format!("k{i}"), &i.to_string()).await;
    }
    s.terminate();
    s.crash_and_restart().await;
    let (_, _, b) = get(&s.url("/v1/kv/k49")).await;
    assert_eq!(b["value"], "49");
    let (_, _, b) = get(&s.url("/v1/status")).await;
    assert_eq!(
        b["revision"].as_u64(),
        Some(last),
        "revision survives a restart"
    );
    assert!(
        put_kv(&s, "after", "x").await > last,
        "revisions keep increasing"
    );
}
