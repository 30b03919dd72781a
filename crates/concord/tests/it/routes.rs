//! Gateway routes: validated on the server, listed, watched, and managed by the CLI.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn routes_are_validated_stored_and_watched() {
    let s = Server::dev().await;
    let mut w = Sse::open(&s.url("/v1/watch?routes=true"), None).await;
    let route = json!({"match":{"path_prefix":"/api/orders","methods":["GET","POST"]},
                       "service":"orders","strip_prefix":true,"lb":"round_robin",
                       "retries":{"attempts":2,"on":["connect_failure","503"]}});
    let (st, _, b) = call(
        Method::PUT,
        &s.url("/v1/gateway/routes/orders"),
        Some(route.clone()),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let ev = w.next_change(Duration::from_secs(10)).await;
    assert_eq!(ev.event, "put");
    let data: Value = serde_json::from_str(&ev.data).unwrap();
    assert_eq!(data["name"], "orders");
    assert_eq!(data["route"]["match"]["path_prefix"], "/api/orders");

    // Invalid routes never get in, and say which field is wrong.
    for (body, field) in [
        (json!({"match":{}}), "service"),
        (
            json!({"match":{"path_regex":"("},"service":"a"}),
            "match.path_regex",
        ),
        (json!({"match":{},"service":"a","lb":"fastest"}), "lb"),
        (
            json!({"match":{},"service":"a","timeouts":{"per_try_ms":10,"total_ms":5}}),
            "timeouts.per_try_ms",
        ),
    ] {
        let got = call(Method::PUT, &s.url("/v1/gateway/routes/bad"), Some(body)).await;
        assert_error(&got, 400, "invalid_argument");
        assert_eq!(got.2["error"]["field"], field, "{}", got.2);
    }
    let got = call(
        Method::PUT,
        &s.url("/v1/gateway/routes/bad"),
        Some(json!({"match":{},"service":"a","retry":{}})),
    )
    .await;
    assert_error(&got, 400, "invalid_argument");
    assert_error(
        &call(
            Method::PUT,
            &s.url("/v1/gateway/routes/a%2Fb"),
            Some(route.clone()),
        )
        .await,
        400,
        "invalid_argument",
    );

    let (_, _, list) = get(&s.url("/v1/gateway/routes")).await;
    assert_eq!(list["routes"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["routes"][0]["name"], "orders");
    let (st, _, one) = get(&s.url("/v1/gateway/routes/orders")).await;
    assert_eq!(st, 200);
    assert_eq!(one["route"]["lb"], "round_robin");
    assert_error(
        &get(&s.url("/v1/gateway/routes/nope")).await,
        404,
        "not_found",
    );

    let (st, _, _) = call(Method::DELETE, &s.url("/v1/gateway/routes/orders"), None).await;
    assert_eq!(st, 200);
    let ev = w.next_change(Duration::from_secs(10)).await;
    assert_eq!(ev.event, "delete");
    assert_error(
        &call(Method::DELETE, &s.url("/v1/gateway/routes/orders"), None).await,
        404,
        "not_found",
    );

    // The CLI.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("route.json");
    std::fs::write(&file, route.to_string()).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(bin())
            .env("CONCORD_ADDR", &s.base)
            .args(args)
            .output()
            .expect("run concord")
    };
    let out = run(&["route", "put", "orders", "--file", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["route", "ls"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("orders") && text.contains("/api/orders*"),
        "{text}"
    );
    let out = run(&["route", "get", "orders"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("round_robin"));
    let out = run(&["route", "del", "orders"]);
    assert!(out.status.success());
    let out = run(&["route", "get", "orders"]);
    assert_eq!(out.status.code(), Some(1));
}
