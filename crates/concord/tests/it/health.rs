//! Server-run health checks against real endpoints, TTL checks, maintenance,
//! namespaces and discovery filters.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tonic_health::ServingStatus;

use crate::endpoints::{GrpcEndpoint, HttpEndpoint, TcpEndpoint};
use crate::support::*;

/// Probing at 1 s with thresholds of a few: transitions take seconds.
const WAIT: Duration = Duration::from_secs(30);

async fn register(s: &Server, path: &str, body: Value) -> Value {
    let (st, _, b) = call(Method::PUT, &s.url(path), Some(body)).await;
    assert_eq!(st, 200, "register {path}: {b}");
    b
}

/// The instance as discovery returns it (`None` when gone).
async fn instance(s: &Server, service: &str, id: &str, ns: &str) -> Option<Value> {
    let (st, _, b) = get(&s.url(&format!("/v1/services/{service}?namespace={ns}"))).await;
    assert_eq!(st, 200, "{b}");
    b["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|i| i["id"] == id)
        .cloned()
}

async fn wait_status(s: &Server, service: &str, id: &str, want: &str) -> Value {
    eventually(WAIT, &format!("{service}/{id} {want}"), || async {
        instance(s, service, id, "default")
            .await
            .filter(|i| i["status"] == want)
    })
    .await
}

#[tokio::test]
async fn http_check_is_damped_and_tracks_the_endpoint() {
    let s = Server::dev().await;
    let ep = HttpEndpoint::start(200).await;
    let b = register(
        &s,
        "/v1/services/web/instances/w1",
        json!({"address":"127.0.0.1","port":ep.addr.port(),
               "checks":[{"id":"http","type":"http","url":ep.url(),"interval_secs":1,"timeout_ms":500}],
               "healthy_threshold":2,"unhealthy_threshold":3}),
    )
    .await;
    assert_eq!(b["instance"]["status"], "critical", "no result yet: {b}");
    assert_eq!(b["instance"]["checks"][0]["type"], "http");
    let i = wait_status(&s, "web", "w1", "passing").await;
    let check = &i["checks"][0];
    assert_eq!(check["id"], "http");
    assert!(check["output"].as_str().unwrap().contains("200"), "{check}");
    let changed_at = check["last_change_revision"].as_u64().unwrap();

    // One failed probe, then success again: no flap.
    ep.set_status(500);
    eventually(WAIT, "one failed probe", || async {
        (ep.failed() >= 1).then_some(())
    })
    .await;
    ep.set_status(200);
    let ok_before = ep.ok();
    eventually(WAIT, "three more good probes", || async {
        (ep.ok() >= ok_before + 3).then_some(())
    })
    .await;
    let i = instance(&s, "web", "w1", "default").await.unwrap();
    assert_eq!(i["status"], "passing", "a single failure flipped it: {i}");
    assert_eq!(i["checks"][0]["last_change_revision"], changed_at);

    // Failing for good: critical only after three failures in a row.
    let failed_before = ep.failed();
    ep.set_status(503);
    let i = wait_status(&s, "web", "w1", "critical").await;
    assert!(
        ep.failed() >= failed_before + 3,
        "critical after {} failures",
        ep.failed() - failed_before
    );
    assert!(i["checks"][0]["output"].as_str().unwrap().contains("503"));
    let (_, _, b) = get(&s.url("/v1/services/web?passing=true")).await;
    assert_eq!(b["instances"], json!([]), "critical is not passing");
    let (_, _, b) = get(&s.url("/v1/services")).await;
    assert_eq!(
        b["services"],
        json!([{"name":"web","instances":1,"passing":0}])
    );

    // Recovery needs two good probes.
    let ok_before = ep.ok();
    ep.set_status(204);
    wait_status(&s, "web", "w1", "passing").await;
    assert!(ep.ok() >= ok_before + 2);

    // The probes show up in metrics.
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("concord_health_probe_duration_seconds_count{check_type=\"http\"}"));
    assert!(text.contains("concord_health_checks{status=\"passing\"} 1"));
    assert!(text.contains("concord_health_check_transitions_total{status=\"critical\"}"));
}

#[tokio::test]
async fn tcp_check_goes_critical_and_the_instance_is_reaped() {
    let s = Server::dev().await;
    let ep = TcpEndpoint::start().await;
    register(
        &s,
        "/v1/services/db/instances/d1",
        json!({"address":"127.0.0.1","port":ep.addr.port(),
               "checks":[{"id":"tcp","type":"tcp","address":ep.addr.to_string(),"interval_secs":1,"timeout_ms":500}],
               "unhealthy_threshold":2,"deregister_critical_after_secs":2}),
    )
    .await;
    wait_status(&s, "db", "d1", "passing").await;
    let mut watch = Sse::open(&s.url("/v1/watch?service=db"), None).await;
    ep.stop().await;
    wait_status(&s, "db", "d1", "critical").await;
    // The status change reached the watch as an update.
    let ev = watch.next_change(WAIT).await;
    assert_eq!(ev.event, "update", "{ev:?}");
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(data["instance"]["status"], "critical");
    // Critical for 2 s: removed.
    eventually(WAIT, "d1 reaped", || async {
        instance(&s, "db", "d1", "default")
            .await
            .is_none()
            .then_some(())
    })
    .await;
    let ev = watch.next_change(WAIT).await;
    assert_eq!(ev.event, "deregister", "{ev:?}");
}

#[tokio::test]
async fn grpc_check_follows_the_serving_status() {
    let s = Server::dev().await;
    let ep = GrpcEndpoint::start().await;
    ep.reporter
        .set_service_status("orders.v1", ServingStatus::Serving)
        .await;
    register(
        &s,
        "/v1/services/orders/instances/o1",
        json!({"address":"127.0.0.1","port":ep.addr.port(),
               "checks":[{"id":"grpc","type":"grpc","address":ep.addr.to_string(),"service":"orders.v1","interval_secs":1}],
               "unhealthy_threshold":1,"healthy_threshold":1}),
    )
    .await;
    wait_status(&s, "orders", "o1", "passing").await;
    ep.reporter
        .set_service_status("orders.v1", ServingStatus::NotServing)
        .await;
    let i = wait_status(&s, "orders", "o1", "critical").await;
    assert!(
        i["checks"][0]["output"]
            .as_str()
            .unwrap()
            .contains("NOT_SERVING"),
        "{i}"
    );
    ep.reporter
        .set_service_status("orders.v1", ServingStatus::Serving)
        .await;
    wait_status(&s, "orders", "o1", "passing").await;
}

#[tokio::test]
async fn ttl_checks_take_updates_and_expire() {
    let s = Server::dev().await;
    register(
        &s,
        "/v1/services/job/instances/j1",
        json!({"address":"10.0.0.1","port":1,"checks":[{"id":"beat","type":"ttl","ttl_secs":3}]}),
    )
    .await;
    let base = "/v1/services/job/instances/j1/checks/beat";
    let (st, _, b) = call(Method::PUT, &s.url(&format!("{base}/pass")), None).await;
    assert_eq!((st, &b["status"]), (200, &json!("passing")), "{b}");
    let (st, _, b) = call(
        Method::PUT,
        &s.url(&format!("{base}/warn")),
        Some(json!({"output":"queue is long"})),
    )
    .await;
    assert_eq!((st, &b["status"]), (200, &json!("warning")), "{b}");
    let i = instance(&s, "job", "j1", "default").await.unwrap();
    assert_eq!(i["status"], "warning");
    assert_eq!(i["checks"][0]["output"], "queue is long");
    // Keep it fresh for longer than its TTL (updates 0.5 s apart, TTL 3 s): it stays.
    for _ in 0..8 {
        let (st, _, _) = call(Method::PUT, &s.url(&format!("{base}/warn")), None).await;
        assert_eq!(st, 200);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        instance(&s, "job", "j1", "default").await.unwrap()["status"],
        "warning"
    );
    // Then silence: critical once the TTL runs out.
    let i = wait_status(&s, "job", "j1", "critical").await;
    assert!(i["checks"][0]["output"].as_str().unwrap().contains("TTL"));
    // Bad updates.
    assert_error(
        &call(Method::PUT, &s.url(&format!("{base}/maybe")), None).await,
        404,
        "not_found",
    );
    assert_error(
        &call(
            Method::PUT,
            &s.url("/v1/services/job/instances/j1/checks/nope/pass"),
            None,
        )
        .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn probed_checks_refuse_ttl_updates() {
    let s = Server::dev().await;
    register(
        &s,
        "/v1/services/web/instances/w1",
        json!({"address":"127.0.0.1","port":9,
               "checks":[{"id":"tcp","type":"tcp","address":"127.0.0.1:9"}]}),
    )
    .await;
    assert_error(
        &call(
            Method::PUT,
            &s.url("/v1/services/web/instances/w1/checks/tcp/pass"),
            None,
        )
        .await,
        400,
        "invalid_argument",
    );
}

#[tokio::test]
async fn namespaces_filters_and_maintenance() {
    let s = Server::dev().await;
    for (ns, id, tags, zone) in [
        ("default", "a1", json!(["v1"]), "a"),
        ("default", "a2", json!(["v2", "canary"]), "b"),
        ("prod", "p1", json!(["v1"]), "a"),
    ] {
        register(
            &s,
            &format!("/v1/services/api/instances/{id}?namespace={ns}"),
            json!({"address":"10.0.0.1","port":80,"tags":tags,"meta":{"zone":zone}}),
        )
        .await;
    }
    // Isolation.
    let (_, _, b) = get(&s.url("/v1/services/api")).await;
    assert_eq!(b["instances"].as_array().unwrap().len(), 2);
    assert_eq!(b["namespace"], "default");
    let (_, _, b) = get(&s.url("/v1/services/api?namespace=prod")).await;
    assert_eq!(b["instances"].as_array().unwrap().len(), 1);
    assert_eq!(b["instances"][0]["id"], "p1");
    let (_, _, b) = get(&s.url("/v1/namespaces")).await;
    assert_eq!(
        b["namespaces"],
        json!([{"name":"default","services":1,"instances":2},{"name":"prod","services":1,"instances":1}])
    );
    assert_error(
        &get(&s.url("/v1/services/api?namespace=Bad_NS")).await,
        400,
        "invalid_argument",
    );
    // Filters: every condition must hold.
    let ids = |b: &Value| -> Vec<String> {
        b["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (_, _, b) = get(&s.url("/v1/services/api?tag=v2&tag=canary")).await;
    assert_eq!(ids(&b), ["a2"]);
    let (_, _, b) = get(&s.url("/v1/services/api?meta=zone:a")).await;
    assert_eq!(ids(&b), ["a1"]);
    let (_, _, b) = get(&s.url("/v1/services/api?meta=zone:a&tag=v2")).await;
    assert!(ids(&b).is_empty());
    assert_error(
        &get(&s.url("/v1/services/api?meta=zone")).await,
        400,
        "invalid_argument",
    );
    // Maintenance takes an instance out of passing results, with its reason.
    let (_, _, before) = get(&s.url("/v1/services/api")).await;
    let index = before["revision"].as_u64().unwrap();
    let blocked = tokio::spawn({
        let url = s.url(&format!("/v1/services/api?index={index}&wait=20s"));
        async move { get(&url).await }
    });
    let (st, _, b) = call(
        Method::PUT,
        &s.url("/v1/services/api/instances/a1/maintenance"),
        Some(json!({"enabled":true,"reason":"deploy"})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["instance"]["status"], "maintenance");
    assert_eq!(b["instance"]["maintenance"]["reason"], "deploy");
    let (_, _, woke) = blocked.await.unwrap();
    assert!(woke["revision"].as_u64().unwrap() > index, "{woke}");
    let (_, _, b) = get(&s.url("/v1/services/api?passing=true")).await;
    assert_eq!(ids(&b), ["a2"]);
    let (_, _, b) = get(&s.url("/v1/services/api?namespace=prod&passing=true")).await;
    assert_eq!(ids(&b), ["p1"], "other namespace untouched");
    let (st, _, b) = call(
        Method::PUT,
        &s.url("/v1/services/api/instances/a1/maintenance"),
        Some(json!({"enabled":false})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["instance"]["status"], "passing");
    assert_eq!(b["instance"]["maintenance"], Value::Null);
    assert_error(
        &call(
            Method::PUT,
            &s.url("/v1/services/api/instances/zz/maintenance"),
            Some(json!({"enabled":true})),
        )
        .await,
        404,
        "not_found",
    );
    assert_error(
        &call(
            Method::PUT,
            &s.url("/v1/services/api/instances/a1/maintenance"),
            Some(json!({"on":true})),
        )
        .await,
        400,
        "invalid_argument",
    );
}

#[tokio::test]
async fn bad_checks_are_refused_with_the_field_named() {
    let s = Server::dev().await;
    for (checks, field) in [
        (json!([{"id":"h","type":"http"}]), "checks.url"),
        (
            json!([{"id":"h","type":"http","url":"https://x/health"}]),
            "checks.url",
        ),
        (
            json!([{"id":"t","type":"tcp","address":"nope"}]),
            "checks.address",
        ),
        (json!([{"id":"t","type":"ttl"}]), "checks.ttl_secs"),
        (
            json!([{"id":"t","type":"ttl","ttl_secs":5},{"id":"t","type":"ttl","ttl_secs":5}]),
            "checks.id",
        ),
        (
            json!([{"id":"h","type":"http","url":"http://x/","expect_status":"7xx"}]),
            "checks.expect_status",
        ),
    ] {
        let got = call(
            Method::PUT,
            &s.url("/v1/services/web/instances/w1"),
            Some(json!({"address":"10.0.0.1","port":80,"checks":checks})),
        )
        .await;
        assert_error(&got, 400, "invalid_argument");
        assert_eq!(got.2["error"]["field"], field, "{}", got.2);
    }
    let got = call(
        Method::PUT,
        &s.url("/v1/services/web/instances/w1"),
        Some(json!({"address":"10.0.0.1","port":80,"unhealthy_threshold":0})),
    )
    .await;
    assert_eq!(got.2["error"]["field"], "unhealthy_threshold");
    let (_, _, b) = get(&s.url("/v1/services")).await;
    assert_eq!(b["services"], json!([]), "nothing stored");
}

/// Probe counts of one node, from its metrics; `None` if it does not answer.
async fn probes_run(base: &str) -> Option<u64> {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Some(
        text.lines()
            .find(|l| {
                l.starts_with("concord_health_probe_duration_seconds_count{check_type=\"http\"}")
            })
            .and_then(|l| l.split_whitespace().last())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0),
    )
}

#[tokio::test]
async fn checks_move_to_survivors_when_their_owner_dies() {
    use crate::support::cluster::{Cluster, request};

    let mut c = Cluster::start(3).await;
    let ep = HttpEndpoint::start(200).await;
    let ids: Vec<String> = (0..12).map(|i| format!("w{i}")).collect();
    let entry = c.node(1).base();
    for id in &ids {
        let (st, b) = request(
            Method::PUT,
            &format!("{entry}/v1/services/web/instances/{id}"),
            Some(json!({"address":"127.0.0.1","port":ep.addr.port(),
                "checks":[{"id":"http","type":"http","url":ep.url(),"interval_secs":1,"timeout_ms":500}],
                "healthy_threshold":1,"unhealthy_threshold":2})),
        )
        .await
        .expect("register");
        assert_eq!(st, 200, "{b}");
    }
    let statuses = |base: String| async move {
        let (st, b) = request(
            Method::GET,
            &format!("{base}/v1/services/web?consistency=stale"),
            None,
        )
        .await?;
        (st == 200).then(|| {
            b["instances"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|i| i["status"].as_str().unwrap_or("").to_owned())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
    };
    let all_are = |want: &'static str, base: String| async move {
        let s = statuses(base).await?;
        (s.len() == 12 && s.iter().all(|x| x == want)).then_some(())
    };
    eventually(WAIT, "all 12 passing", || all_are("passing", entry.clone())).await;
    // The checks are spread: every node probes some, and together they probe all.
    let mut counts = Vec::new();
    for id in [1, 2, 3] {
        let base = c.node(id).base();
        let n = eventually(WAIT, &format!("node {id} probing"), || {
            let base = base.clone();
            async move { probes_run(&base).await.filter(|n| *n > 0) }
        })
        .await;
        counts.push((n, id));
    }
    // Kill the busiest prober (it may be the leader: then a failover happens too).
    let (_, victim) = *counts.iter().max().expect("three nodes");
    c.kill9(victim);
    let survivor = c.nodes.keys().copied().find(|id| *id != victim).unwrap();
    let survivor = c.node(survivor).base();
    // Every check, including the dead node's, still tracks the endpoint.
    ep.set_status(500);
    eventually(WAIT, "all 12 critical after the owner died", || {
        all_are("critical", survivor.clone())
    })
    .await;
    ep.set_status(200);
    eventually(WAIT, "all 12 passing again", || {
        all_are("passing", survivor.clone())
    })
    .await;
}
