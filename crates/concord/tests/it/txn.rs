//! Multi-key transactions.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn compares_choose_the_branch_atomically() {
    let s = Server::dev().await;
    put_kv(&s, "a", "1").await;
    put_kv(&s, "c", "gone soon").await;
    let txn = |body| async { call(Method::POST, &s.url("/v1/txn"), Some(body)).await };

    let (st, idx, b) = txn(json!({
        "compare": [{"key":"a","target":"value","op":"==","value":"1"},
                    {"key":"new","target":"version","op":"==","value":0}],
        "success": [{"put":{"key":"b","value":"2"}},{"get":{"key":"a"}},{"delete":{"key":"c"}}],
        "failure": [{"put":{"key":"failed","value":"x"}}]
    }))
    .await;
    assert_eq!(st, 200, "{b}");
    assert_eq!(b["succeeded"], true);
    let rev = b["revision"].as_u64().unwrap();
    assert_eq!(idx, Some(rev));
    let results = b["results"].as_array().unwrap();
    assert_eq!(results.len(), 3);
    assert_eq!(results[1]["get"]["item"]["value"], "1");
    assert_eq!(results[2]["delete"]["deleted"], 1);
    // Both writes carry the same revision.
    let (_, _, bb) = get(&s.url("/v1/kv/b")).await;
    assert_eq!(bb["mod_revision"], rev);
    assert_error(&get(&s.url("/v1/kv/c")).await, 404, "not_found");
    assert_error(&get(&s.url("/v1/kv/failed")).await, 404, "not_found");

    // Failing compares run the failure branch.
    let (st, _, b) = txn(json!({
        "compare": [{"key":"a","target":"mod_revision","op":">","value":rev + 10}],
        "success": [{"put":{"key":"s","value":"x"}}],
        "failure": [{"put":{"key":"f","value":"y"}}]
    }))
    .await;
    assert_eq!(st, 200);
    assert_eq!(b["succeeded"], false);
    assert_eq!(get(&s.url("/v1/kv/f")).await.0, 200);
    assert_eq!(get(&s.url("/v1/kv/s")).await.0, 404);

    // All-or-nothing: a put bound to a missing lease aborts the whole branch.
    let got = txn(json!({
        "success": [{"put":{"key":"x1","value":"1"}},{"put":{"key":"x2","value":"2","lease":"00000000000000ff"}}]
    }))
    .await;
    assert_error(&got, 404, "not_found");
    assert_eq!(
        get(&s.url("/v1/kv/x1")).await.0,
        404,
        "nothing of a refused txn applies"
    );

    // create_revision / version compares, != and <.
    let (_, _, b) = txn(json!({
        "compare": [{"key":"a","target":"create_revision","op":"<","value":rev},
                    {"key":"a","target":"version","op":"!=","value":5}],
        "success": [{"get":{"key":"missing"}}]
    }))
    .await;
    assert_eq!(b["succeeded"], true, "{b}");
    assert_eq!(b["results"][0]["get"]["item"], serde_json::Value::Null);
}
