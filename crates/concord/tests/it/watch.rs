//! SSE watches: ordered delivery, resume without gaps or duplicates, compaction, progress.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const WAIT: Duration = Duration::from_secs(20);

fn data(e: &concord_client::sse::SseEvent) -> Value {
    serde_json::from_str(&e.data).expect("event data is JSON")
}

#[tokio::test]
async fn kv_watch_delivers_in_order_and_resumes_without_gaps() {
    let s = Server::dev().await;
    let start = put_kv(&s, "unwatched", "x").await;
    let mut w = Sse::open(
        &s.url(&format!("/v1/watch?prefix=app/&from_revision={start}")),
        None,
    )
    .await;
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(put_kv(&s, &format!("app/k{i}"), &format!("v{i}")).await);
        put_kv(&s, "elsewhere", "noise").await;
    }
    call(Method::DELETE, &s.url("/v1/kv/app/k0"), None).await;
    for (i, rev) in revs.iter().enumerate() {
        let e = w.next_change(WAIT).await;
        assert_eq!(e.event, "put");
        let d = data(&e);
        assert_eq!(d["type"], "put");
        assert_eq!(d["key"], format!("app/k{i}"));
        assert_eq!(d["value"], format!("v{i}"));
        assert_eq!(
            e.id.as_deref(),
            Some(rev.to_string().as_str()),
            "SSE id is the revision"
        );
        assert_eq!(d["revision"], *rev);
    }
    let del = w.next_change(WAIT).await;
    assert_eq!(del.event, "delete");
    assert_eq!(data(&del)["key"], "app/k0");
    drop(w);

    // Resume from the middle with Last-Event-ID: exactly the later events, once each.
    let mut w = Sse::open(&s.url("/v1/watch?prefix=app/"), Some(revs[4])).await;
    for rev in &revs[5..] {
        let d = data(&w.next_change(WAIT).await);
        assert_eq!(d["revision"], *rev, "no gap, no duplicate");
    }
    assert_eq!(data(&w.next_change(WAIT).await)["type"], "delete");
    // And from_revision does the same.
    let mut w = Sse::open(
        &s.url(&format!("/v1/watch?prefix=app/&from_revision={}", revs[8])),
        None,
    )
    .await;
    assert_eq!(data(&w.next_change(WAIT).await)["revision"], revs[9]);
}

#[tokio::test]
async fn service_watch_reports_register_update_deregister_expire() {
    let s = Server::dev().await;
    let mut w = Sse::open(&s.url("/v1/watch?service=orders"), None).await;
    let inst = s.url("/v1/services/orders/instances/o1");
    call(Method::PUT, &inst, Some(json!({"address":"a","port":1}))).await;
    call(Method::PUT, &inst, Some(json!({"address":"b","port":1}))).await;
    call(
        Method::PUT,
        &s.url("/v1/services/other/instances/x"),
        Some(json!({"address":"a","port":1})),
    )
    .await;
    call(Method::DELETE, &inst, None).await;
    call(
        Method::PUT,
        &s.url("/v1/services/orders/instances/e1"),
        Some(json!({"address":"c","port":1,"ttl_secs":1})),
    )
    .await;
    let kinds: Vec<(String, String)> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            let d = data(&w.next_change(WAIT).await);
            assert_eq!(d["service"], "orders");
            v.push((
                d["type"].as_str().unwrap().to_owned(),
                d["instance"]["id"].as_str().unwrap().to_owned(),
            ));
        }
        v
    };
    let expect = [
        ("register", "o1"),
        ("update", "o1"),
        ("deregister", "o1"),
        ("register", "e1"),
        ("expire", "e1"),
    ];
    assert_eq!(kinds, expect.map(|(a, b)| (a.to_owned(), b.to_owned())));
}

#[tokio::test]
async fn compacted_revision_answers_410_with_the_oldest_revision() {
    let s = Server::start_with(&["--history-max-events", "5"]).await;
    for i in 0..20 {
        put_kv(&s, &format!("k{i}"), "v").await;
    }
    let got = get(&s.url("/v1/watch?prefix=k&from_revision=1")).await;
    assert_error(&got, 410, "compacted");
    let oldest = got.2["error"]["oldest_revision"]
        .as_u64()
        .expect("oldest_revision");
    assert!(oldest > 1);
    // Resuming at the oldest retained revision works.
    let mut w = Sse::open(
        &s.url(&format!("/v1/watch?prefix=k&from_revision={oldest}")),
        None,
    )
    .await;
    let d = data(&w.next_change(WAIT).await);
    assert_eq!(d["revision"], oldest + 1);
}

#[tokio::test]
async fn idle_watch_gets_progress_events() {
    let s = Server::dev().await;
    let rev = put_kv(&s, "x", "1").await;
    let mut w = Sse::open(&s.url("/v1/watch?prefix=nothing-here/"), None).await;
    // At least every 10 s; allow for a slow machine.
    let e = w.next(Duration::from_secs(25)).await;
    assert_eq!(e.event, "progress");
    assert!(data(&e)["revision"].as_u64().unwrap() >= rev);
}

#[tokio::test]
async fn watch_rejects_bad_requests() {
    let s = Server::dev().await;
    assert_error(&get(&s.url("/v1/watch")).await, 400, "invalid_argument");
    assert_error(
        &get(&s.url("/v1/watch?prefix=a&service=b")).await,
        400,
        "invalid_argument",
    );
    assert_error(
        &get(&s.url("/v1/watch?service=Bad_Name")).await,
        400,
        "invalid_argument",
    );
    assert_error(
        &get(&s.url("/v1/watch?prefix=a&from_revision=x")).await,
        400,
        "invalid_argument",
    );
}
