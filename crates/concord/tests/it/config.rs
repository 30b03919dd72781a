//! The configuration center: formats, CAS, history, rollback, gray release, live push.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

const ITEM: &str = "/v1/config/prod/app/db";

/// PUT raw content with a format (and optional comment); returns the response.
async fn publish(s: &Server, path: &str, format: &str, content: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .put(s.url(&format!("{path}?format={format}")))
        .header("X-Concord-Comment", format!("{format} edit"))
        .body(content.to_owned())
        .send()
        .await
        .expect("publish");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn every_format_is_checked_with_the_error_position() {
    let s = Server::dev().await;
    let ok = [
        ("json", "{\"pool\": 5}"),
        ("yaml", "pool: 5\nhosts:\n  - a\n"),
        ("toml", "pool = 5\n[db]\nhost = \"a\"\n"),
        ("properties", "pool=5\nhost: a\n"),
        ("text", "anything {"),
    ];
    for (i, (format, content)) in ok.iter().enumerate() {
        let path = format!("/v1/config/prod/app/f{i}");
        let (st, b) = publish(&s, &path, format, content).await;
        assert_eq!(st, 200, "{format}: {b}");
        assert_eq!(b["version"], 1);
        assert_eq!(b["sha256"].as_str().unwrap().len(), 64);
        let (_, _, item) = get(&s.url(&path)).await;
        assert_eq!(item["format"], *format);
        assert_eq!(item["content"], *content);
    }
    let bad = [
        ("json", "{\n  \"pool\": 5,\n}", 3u64),
        ("yaml", "pool: 5\nhost: a: b\n", 2),
        ("toml", "pool = 5\npool = 6\n", 2),
        ("properties", "a=1\nb=\\uZZZZ\n", 2),
    ];
    for (format, content, line) in bad {
        let (st, b) = publish(&s, "/v1/config/prod/app/bad", format, content).await;
        assert_eq!(st, 400, "{format}: {b}");
        assert_eq!(b["error"]["code"], "invalid_argument");
        assert_eq!(b["error"]["line"], line, "{format}: {b}");
        assert!(b["error"]["column"].as_u64().unwrap() >= 1, "{b}");
        let msg = b["error"]["message"].as_str().unwrap();
        assert!(msg.contains(&format!("line {line}")), "{msg}");
    }
    let (_, _, b) = get(&s.url("/v1/config/prod/app/bad")).await;
    assert_eq!(b["error"]["code"], "not_found", "nothing stored: {b}");
    // Unknown format, bad names, non-UTF-8.
    let (st, b) = publish(&s, ITEM, "xml", "<a/>").await;
    assert_eq!((st, b["error"]["field"].clone()), (400, json!("format")));
    assert_error(
        &call_raw(Method::PUT, &s.url("/v1/config/Prod/app/db"), b"x".to_vec()).await,
        400,
        "invalid_argument",
    );
    assert_error(
        &call_raw(Method::PUT, &s.url(ITEM), vec![0xff, 0xfe]).await,
        400,
        "invalid_argument",
    );
}

#[tokio::test]
async fn get_raw_list_cas_delete() {
    let s = Server::dev().await;
    let (_, b) = publish(&s, ITEM, "yaml", "pool: 5\n").await;
    assert_eq!(b["version"], 1);
    let resp = reqwest::get(s.url(&format!("{ITEM}?raw=true")))
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/yaml");
    assert_eq!(resp.text().await.unwrap(), "pool: 5\n");
    let (_, _, item) = get(&s.url(ITEM)).await;
    for field in [
        "namespace",
        "group",
        "id",
        "format",
        "content",
        "version",
        "sha256",
        "revision",
        "updated_at",
    ] {
        assert!(item.get(field).is_some(), "{field}: {item}");
    }
    assert!(item["updated_at"].as_str().unwrap().ends_with('Z'));
    // CAS: only over the named version.
    let (st, b) = publish(&s, ITEM, "yaml", "pool: 6\n").await;
    assert_eq!((st, b["version"].clone()), (200, json!(2)));
    let conflict = call_raw(
        Method::PUT,
        &s.url(&format!("{ITEM}?cas=1")),
        b"pool: 7\n".to_vec(),
    )
    .await;
    assert_error(&conflict, 409, "cas_failed");
    assert!(
        conflict.2["error"]["message"]
            .as_str()
            .unwrap()
            .contains("current version is 2"),
        "{}",
        conflict.2
    );
    let (st, _, b) = call_raw(
        Method::PUT,
        &s.url(&format!("{ITEM}?cas=2")),
        b"pool: 7\n".to_vec(),
    )
    .await;
    assert_eq!((st, b["version"].clone()), (200, json!(3)), "{b}");
    // The format sticks when not given.
    let (_, _, item) = get(&s.url(ITEM)).await;
    assert_eq!(item["format"], "yaml");
    publish(&s, "/v1/config/prod/web/site", "text", "hi").await;
    publish(&s, "/v1/config/dev/app/db", "text", "hi").await;
    let (_, _, list) = get(&s.url("/v1/config/prod")).await;
    let ids: Vec<(String, String)> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["group"].as_str().unwrap().to_owned(),
                i["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [("app".into(), "db".into()), ("web".into(), "site".into())]
    );
    let (_, _, list) = get(&s.url("/v1/config/prod?group=web")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (st, _, _) = call(Method::DELETE, &s.url(ITEM), None).await;
    assert_eq!(st, 200);
    assert_error(&get(&s.url(ITEM)).await, 404, "not_found");
    assert_error(
        &call(Method::DELETE, &s.url(ITEM), None).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn history_is_newest_first_bounded_and_rolls_back() {
    let s = Server::start_with(&["--config-history", "3"]).await;
    for n in 1..=4 {
        let (st, b) = publish(&s, ITEM, "json", &format!("{{\"n\":{n}}}")).await;
        assert_eq!((st, b["version"].clone()), (200, json!(n)));
    }
    let (_, _, h) = get(&s.url(&format!("{ITEM}/history"))).await;
    let versions: Vec<u64> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [4, 3, 2], "newest first, three kept");
    assert_eq!(h[0]["comment"], "json edit");
    let (_, _, v2) = get(&s.url(&format!("{ITEM}/history/2"))).await;
    assert_eq!(v2["content"], "{\"n\":2}");
    assert_error(
        &get(&s.url(&format!("{ITEM}/history/1"))).await,
        404,
        "not_found",
    );
    let (st, _, b) = call(
        Method::POST,
        &s.url(&format!("{ITEM}/rollback")),
        Some(json!({"version":2})),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["version"], 5);
    let (_, _, item) = get(&s.url(ITEM)).await;
    assert_eq!(item["content"], "{\"n\":2}");
    let (_, _, h) = get(&s.url(&format!("{ITEM}/history"))).await;
    assert_eq!(h[0]["comment"], "rollback to version 2");
    assert_error(
        &call(
            Method::POST,
            &s.url(&format!("{ITEM}/rollback")),
            Some(json!({"version":1})),
        )
        .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn gray_is_served_only_to_matching_instances_and_promoted() {
    let s = Server::dev().await;
    publish(&s, ITEM, "yaml", "pool: 5\n").await;
    for (id, tags) in [
        ("o1", json!([])),
        ("o2", json!(["canary"])),
        ("o3", json!([])),
    ] {
        let (st, _, b) = call(
            Method::PUT,
            &s.url(&format!(
                "/v1/services/orders/instances/{id}?namespace=prod"
            )),
            Some(json!({"address":"10.0.0.1","port":80,"tags":tags})),
        )
        .await;
        assert_eq!(st, 200, "{b}");
    }
    // A watcher for o2 (matches by tag) and one for o3 (does not match).
    let base = "/v1/watch?config=prod/app/db";
    let mut w2 = Sse::open(&s.url(&format!("{base}&instance=orders/o2")), None).await;
    let mut w3 = Sse::open(&s.url(&format!("{base}&instance=orders/o3")), None).await;
    let (st, _, b) = call(
        Method::PUT,
        &s.url(&format!("{ITEM}/gray")),
        Some(
            json!({"content":"pool: 9\n","selector":{"instances":["orders/o1"],"tags":["canary"]}}),
        ),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    for (who, gray) in [("o1", true), ("o2", true), ("o3", false), ("zz", false)] {
        let (_, _, item) = get(&s.url(&format!("{ITEM}?instance=orders/{who}"))).await;
        assert_eq!(item["gray"], gray, "{who}: {item}");
        let want = if gray { "pool: 9\n" } else { "pool: 5\n" };
        assert_eq!(item["content"], want, "{who}");
        assert_eq!(item["version"], 1, "still version 1");
    }
    let (st, _, staged) = get(&s.url(&format!("{ITEM}/gray"))).await;
    assert_eq!(st, 200, "{staged}");
    assert_eq!(staged["content"], "pool: 9\n");
    assert_eq!(staged["selector"]["tags"], json!(["canary"]));
    let (_, _, plain) = get(&s.url(ITEM)).await;
    assert_eq!(
        (plain["gray"].clone(), plain["content"].clone()),
        (json!(false), json!("pool: 5\n"))
    );
    let ev = w2.next_change(Duration::from_secs(10)).await;
    assert_eq!(ev.event, "gray");
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(data["content"], "pool: 9\n");
    // Promote: everyone gets version 2.
    let (st, _, b) = call(Method::POST, &s.url(&format!("{ITEM}/gray/promote")), None).await;
    assert_eq!((st, b["version"].clone()), (200, json!(2)), "{b}");
    for w in [&mut w2, &mut w3] {
        let ev = w.next_change(Duration::from_secs(10)).await;
        assert_eq!(ev.event, "publish", "o3 never saw the gray event: {ev:?}");
        let data: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(
            (data["version"].clone(), data["content"].clone()),
            (json!(2), json!("pool: 9\n"))
        );
    }
    assert_error(
        &get(&s.url(&format!("{ITEM}/gray"))).await,
        404,
        "not_found",
    );
    // Cancel: the gray watcher is told to go back.
    call(
        Method::PUT,
        &s.url(&format!("{ITEM}/gray")),
        Some(json!({"content":"pool: 1\n","selector":{"meta":{"zone":"none"},"tags":["canary"]}})),
    )
    .await;
    assert_eq!(w2.next_change(Duration::from_secs(10)).await.event, "gray");
    let (st, _, _) = call(Method::DELETE, &s.url(&format!("{ITEM}/gray")), None).await;
    assert_eq!(st, 200);
    let ev = w2.next_change(Duration::from_secs(10)).await;
    assert_eq!(ev.event, "gray_cancel");
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(data["content"], "pool: 9\n");
    // Bad gray requests.
    assert_error(
        &call(
            Method::PUT,
            &s.url(&format!("{ITEM}/gray")),
            Some(json!({"content":"pool: [\n","selector":{"tags":["canary"]}})),
        )
        .await,
        400,
        "invalid_argument",
    );
    assert_error(
        &call(
            Method::PUT,
            &s.url(&format!("{ITEM}/gray")),
            Some(json!({"content":"a: 1\n","selector":{}})),
        )
        .await,
        400,
        "invalid_argument",
    );
    assert_error(
        &call(Method::POST, &s.url(&format!("{ITEM}/gray/promote")), None).await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn watches_get_every_version_in_order_and_resume_after_a_restart() {
    let mut s = Server::start_with(&[]).await;
    publish(&s, ITEM, "text", "v1").await;
    let (_, idx, _) = get(&s.url(ITEM)).await;
    let start = idx.expect("index");
    let mut w = Sse::open(
        &s.url(&format!(
            "/v1/watch?config=prod/app/db&from_revision={start}"
        )),
        None,
    )
    .await;
    for n in 2..=5 {
        publish(&s, ITEM, "text", &format!("v{n}")).await;
    }
    // Noise on other items and keys never reaches this watch.
    publish(&s, "/v1/config/prod/app/other", "text", "x").await;
    put_kv(&s, "k", "v").await;
    let mut last_id = 0;
    for n in 2..=5 {
        let ev = w.next_change(Duration::from_secs(10)).await;
        assert_eq!(ev.event, "publish");
        let data: Value = serde_json::from_str(&ev.data).unwrap();
        assert_eq!(
            (data["version"].clone(), data["content"].clone()),
            (json!(n), json!(format!("v{n}")))
        );
        last_id = ev.id.as_deref().unwrap().parse().unwrap();
    }
    drop(w);
    // Restart; publish more; resume from the last seen revision: nothing lost.
    s.crash_and_restart().await;
    publish(&s, ITEM, "text", "v6").await;
    let mut w = Sse::open(&s.url("/v1/watch?config=prod/app/db"), Some(last_id)).await;
    let ev = w.next_change(Duration::from_secs(10)).await;
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(data["version"], 6, "{data}");
    // Blocking read wakes on the next version.
    let (_, idx, _) = get(&s.url(ITEM)).await;
    let index = idx.unwrap();
    let waiter = tokio::spawn({
        let url = s.url(&format!("{ITEM}?index={index}&wait=20s"));
        async move { get(&url).await }
    });
    publish(&s, ITEM, "text", "v7").await;
    let (_, _, item) = waiter.await.unwrap();
    assert_eq!(item["version"], 7);
    let text = reqwest::get(s.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("concord_config_items 2"), "metrics");
    assert!(text.contains("concord_config_push_duration_seconds_count"));
    // Bad watch requests.
    assert_error(
        &get(&s.url("/v1/watch?config=prod/app")).await,
        400,
        "invalid_argument",
    );
}

#[tokio::test]
async fn config_survives_a_leader_failover() {
    use crate::support::cluster::{Cluster, request};

    let mut c = Cluster::start(3).await;
    let leader = c.leader().await;
    let followers: Vec<u64> = c.nodes.keys().copied().filter(|id| *id != leader).collect();
    let (a, b) = (c.node(followers[0]).base(), c.node(followers[1]).base());
    let put = |base: String, content: &'static str| async move {
        let resp = reqwest::Client::new()
            .put(format!("{base}{ITEM}?format=text"))
            .body(content)
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.ok()?;
        (status == 200).then_some(body)
    };
    // Published through a follower; watched on the other follower.
    let v1 = put(a.clone(), "one")
        .await
        .expect("publish through a follower");
    assert_eq!(v1["version"], 1);
    let mut w = Sse::open(
        &format!("{b}/v1/watch?config=prod/app/db&from_revision=0"),
        None,
    )
    .await;
    let ev = w.next_change(Duration::from_secs(10)).await;
    assert_eq!(
        serde_json::from_str::<Value>(&ev.data).unwrap()["content"],
        "one"
    );
    c.kill9(leader);
    // The survivors elect a leader; the next version lands and reaches the watch.
    let v2 = eventually(START_DEADLINE, "a publish after the failover", || {
        put(a.clone(), "two")
    })
    .await;
    assert_eq!(v2["version"], 2);
    let ev = w.next_change(Duration::from_secs(20)).await;
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(
        (data["version"].clone(), data["content"].clone()),
        (json!(2), json!("two"))
    );
    let (st, item) = request(Method::GET, &format!("{b}{ITEM}"), None)
        .await
        .expect("read");
    assert_eq!((st, item["content"].clone()), (200, json!("two")));
}
