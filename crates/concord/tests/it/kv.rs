//! Key-value store: put, get (JSON, raw, prefix, keys, limit), delete, CAS.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn put_get_delete_and_listing() {
    let s = Server::dev().await;
    let r1 = put_kv(&s, "app/a", "1").await;
    let r2 = put_kv(&s, "app/b", "2").await;
    assert!(r2 > r1, "revisions increase");
    put_kv(&s, "app/c/d", "3").await;
    put_kv(&s, "other", "x").await;

    let (st, idx, b) = get(&s.url("/v1/kv/app/a")).await;
    assert_eq!(st, 200);
    assert!(idx.unwrap() >= r2);
    assert_eq!(b["key"], "app/a");
    assert_eq!(b["value"], "1");
    assert_eq!(b["create_revision"], r1);
    assert_eq!(b["mod_revision"], r1);
    assert_eq!(b["version"], 1);
    assert_eq!(b["lease"], serde_json::Value::Null);

    // Overwrite bumps version and mod_revision, keeps create_revision.
    let r3 = put_kv(&s, "app/a", "one").await;
    let (_, _, b) = get(&s.url("/v1/kv/app/a")).await;
    assert_eq!(
        (
            b["version"].as_u64(),
            b["mod_revision"].as_u64(),
            b["create_revision"].as_u64()
        ),
        (Some(2), Some(r3), Some(r1))
    );

    // Raw.
    let resp = reqwest::get(s.url("/v1/kv/app/a?raw=true")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-concord-mod-revision"],
        r3.to_string().as_str()
    );
    assert!(resp.headers().contains_key("x-concord-index"));
    assert_eq!(resp.bytes().await.unwrap().as_ref(), b"one");

    // Prefix, keys, limit.
    let (_, _, b) = get(&s.url("/v1/kv/app/?prefix=true")).await;
    let keys: Vec<_> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["app/a", "app/b", "app/c/d"]);
    assert!(b["revision"].as_u64().is_some());
    let (_, _, b) = get(&s.url("/v1/kv/app/?prefix=true&keys=true")).await;
    assert_eq!(b["keys"], json!(["app/a", "app/b", "app/c/d"]));
    let (_, _, b) = get(&s.url("/v1/kv/app/?keys=true")).await;
    assert_eq!(
        b["keys"],
        json!(["app/a", "app/b", "app/c/d"]),
        "keys implies prefix"
    );
    let (_, _, b) = get(&s.url("/v1/kv/app/?prefix=true&limit=2")).await;
    assert_eq!(b["items"].as_array().unwrap().len(), 2);
    let (_, _, b) = get(&s.url("/v1/kv?prefix=true&keys=true")).await;
    assert_eq!(
        b["keys"].as_array().unwrap().len(),
        4,
        "empty prefix lists everything"
    );

    // Absent -> 404 in the error shape.
    assert_error(&get(&s.url("/v1/kv/nope")).await, 404, "not_found");

    // Delete one, then a prefix.
    let (st, _, b) = call(Method::DELETE, &s.url("/v1/kv/app/b"), None).await;
    assert_eq!(st, 200);
    assert_eq!(b["deleted"], 1);
    let (_, _, b) = call(Method::DELETE, &s.url("/v1/kv/app/b"), None).await;
    assert_eq!(b["deleted"], 0);
    let (_, _, b) = call(Method::DELETE, &s.url("/v1/kv/app/?prefix=true"), None).await;
    assert_eq!(b["deleted"], 2);
    assert_error(&get(&s.url("/v1/kv/app/a")).await, 404, "not_found");
    assert_eq!(
        get(&s.url("/v1/kv/other")).await.0,
        200,
        "outside the prefix survives"
    );
}

#[tokio::test]
async fn keys_are_percent_decoded_and_binary_values_come_as_base64() {
    let s = Server::dev().await;
    put_kv(&s, "dir%20one/k%3Fx", "v").await;
    let (st, _, b) = get(&s.url("/v1/kv/dir%20one/k%3Fx")).await;
    assert_eq!(st, 200);
    assert_eq!(b["key"], "dir one/k?x");

    let bytes = vec![0xff, 0x00, 0xfe];
    let (st, _, _) = call_raw(Method::PUT, &s.url("/v1/kv/bin"), bytes.clone()).await;
    assert_eq!(st, 200);
    let (_, _, b) = get(&s.url("/v1/kv/bin")).await;
    assert!(b.get("value").is_none_or(|v| v.is_null()), "{b}");
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b["value_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, bytes);
    let raw = reqwest::get(s.url("/v1/kv/bin?raw=true"))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(raw.as_ref(), bytes.as_slice());
}

#[tokio::test]
async fn compare_and_swap() {
    let s = Server::dev().await;
    // cas=0: create only if absent.
    let (st, _, b) = call_raw(Method::PUT, &s.url("/v1/kv/lock?cas=0"), b"me".to_vec()).await;
    assert_eq!(st, 200, "{b}");
    let rev = b["revision"].as_u64().unwrap();
    let got = call_raw(Method::PUT, &s.url("/v1/kv/lock?cas=0"), b"you".to_vec()).await;
    assert_error(&got, 409, "cas_failed");
    // Wrong revision fails, right one succeeds.
    let got = call_raw(
        Method::PUT,
        &s.url(&format!("/v1/kv/lock?cas={}", rev + 100)),
        b"you".to_vec(),
    )
    .await;
    assert_error(&got, 409, "cas_failed");
    let (st, _, b) = call_raw(
        Method::PUT,
        &s.url(&format!("/v1/kv/lock?cas={rev}")),
        b"you".to_vec(),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    let rev2 = b["revision"].as_u64().unwrap();
    let (_, _, b) = get(&s.url("/v1/kv/lock")).await;
    assert_eq!(b["value"], "you", "a failed CAS changed nothing");
    // CAS delete.
    let got = call(
        Method::DELETE,
        &s.url(&format!("/v1/kv/lock?cas={rev}")),
        None,
    )
    .await;
    assert_error(&got, 409, "cas_failed");
    let (st, _, b) = call(
        Method::DELETE,
        &s.url(&format!("/v1/kv/lock?cas={rev2}")),
        None,
    )
    .await;
    assert_eq!(st, 200);
    assert_eq!(b["deleted"], 1);
}
