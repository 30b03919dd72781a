//! Every validation rule answers 400 (or 413) in the error shape, naming the field, and changes nothing.

use reqwest::Method;
use serde_json::{Value, json};

use crate::support::*;

fn field(got: &(u16, Option<u64>, Value)) -> String {
    got.2["error"]["field"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn registry_input_is_validated() {
    let s = Server::dev().await;
    let ok = json!({"address":"10.0.0.5","port":8080});
    let reg = |svc: &str, id: &str, body: Value| {
        let url = s.url(&format!("/v1/services/{svc}/instances/{id}"));
        async move { call(Method::PUT, &url, Some(body)).await }
    };
    for bad in ["-orders", "orders-", "Orders", "or_ders", &"a".repeat(64)] {
        let got = reg(bad, "i1", ok.clone()).await;
        assert_error(&got, 400, "invalid_argument");
        assert_eq!(field(&got), "service", "{bad}");
    }
    for bad in ["a%2Fb", "a%20b", &"x".repeat(129)] {
        let got = reg("orders", bad, ok.clone()).await;
        assert_error(&got, 400, "invalid_argument");
        assert_eq!(field(&got), "id", "{bad}");
    }
    let cases = [
        (json!({"address":"a","port":1,"ttl_secs":0}), "ttl_secs"),
        (json!({"address":"a","port":1,"ttl_secs":86401}), "ttl_secs"),
        (json!({"address":"a","port":1,"weight":10001}), "weight"),
        (json!({"address":"a","port":1,"tags":vec!["t"; 65]}), "tags"),
        (
            json!({"address":"a","port":1,"meta":(0..65).map(|i| (i.to_string(), json!("v"))).collect::<serde_json::Map<_,_>>()}),
            "meta",
        ),
        (json!({"address":"a","port":"eighty"}), "port"),
        (json!({"address":"a","port":70000}), "port"),
        (json!({"address":"a","port":0}), "port"),
        (json!({"address":"","port":1}), "address"),
        (json!({"port":1}), "address"),
        (json!({"address":"a","port":1,"colour":"red"}), "colour"),
        (json!({"address":"a","port":1,"weight":-1}), "weight"),
    ];
    for (body, f) in cases {
        let got = reg("orders", "i1", body.clone()).await;
        assert_error(&got, 400, "invalid_argument");
        assert_eq!(field(&got), f, "{body}");
    }
    // Malformed JSON.
    let got = call_raw(
        Method::PUT,
        &s.url("/v1/services/orders/instances/i1"),
        b"{\"address\":".to_vec(),
    )
    .await;
    assert_error(&got, 400, "invalid_argument");
    // Boundaries that are allowed.
    let (st, _, b) = reg(
        "a",
        "A.b_c:d-e",
        json!({"address":"a","port":65535,"weight":0,"ttl_secs":86400}),
    )
    .await;
    assert_eq!(st, 200, "{b}");
    // Nothing invalid was stored.
    let (_, _, b) = get(&s.url("/v1/services")).await;
    assert_eq!(
        b["services"],
        json!([{"name":"a","instances":1,"passing":1}])
    );
}

#[tokio::test]
async fn kv_lease_and_txn_input_is_validated() {
    let s = Server::start_with(&["--max-value-bytes", "1024", "--max-body-bytes", "4096"]).await;
    // Key length.
    let long = "k".repeat(1025);
    assert_error(
        &call_raw(
            Method::PUT,
            &s.url(&format!("/v1/kv/{long}")),
            b"v".to_vec(),
        )
        .await,
        400,
        "invalid_argument",
    );
    assert_eq!(
        call_raw(
            Method::PUT,
            &s.url(&format!("/v1/kv/{}", "k".repeat(1024))),
            b"v".to_vec()
        )
        .await
        .0,
        200
    );
    // Value and body limits -> 413.
    assert_error(
        &call_raw(Method::PUT, &s.url("/v1/kv/big"), vec![b'x'; 1025]).await,
        413,
        "too_large",
    );
    assert_eq!(
        call_raw(Method::PUT, &s.url("/v1/kv/big"), vec![b'x'; 1024])
            .await
            .0,
        200
    );
    assert_error(
        &call_raw(Method::PUT, &s.url("/v1/kv/big"), vec![b'x'; 5000]).await,
        413,
        "too_large",
    );
    let big_txn = json!({"success":[{"put":{"key":"t","value":"x".repeat(5000)}}]});
    assert_error(
        &call(Method::POST, &s.url("/v1/txn"), Some(big_txn)).await,
        413,
        "too_large",
    );
    let (_, _, b) = get(&s.url("/v1/kv/big")).await;
    assert_eq!(
        b["value"].as_str().unwrap().len(),
        1024,
        "rejected writes changed nothing"
    );
    // Query parameters.
    for q in ["cas=abc", "cas=-1", "lease=zz", "lease=0"] {
        let got = call_raw(Method::PUT, &s.url(&format!("/v1/kv/q?{q}")), b"v".to_vec()).await;
        assert_error(&got, 400, "invalid_argument");
    }
    assert_error(
        &get(&s.url("/v1/kv/q?limit=x")).await,
        400,
        "invalid_argument",
    );
    assert_error(
        &get(&s.url("/v1/kv/q?consistency=sometimes")).await,
        400,
        "invalid_argument",
    );
    assert_error(
        &call(Method::DELETE, &s.url("/v1/kv/q?prefix=true&cas=1"), None).await,
        400,
        "invalid_argument",
    );
    // Leases.
    for body in [
        json!({"ttl_secs":0}),
        json!({"ttl_secs":86401}),
        json!({"ttl":5}),
        json!({}),
    ] {
        assert_error(
            &call(Method::POST, &s.url("/v1/leases"), Some(body)).await,
            400,
            "invalid_argument",
        );
    }
    assert_error(
        &get(&s.url("/v1/leases/not-hex")).await,
        400,
        "invalid_argument",
    );
    // Transactions.
    let bad = [
        json!({"compare":[{"key":"a","target":"size","op":"==","value":"1"}]}),
        json!({"compare":[{"key":"a","target":"version","op":"~","value":1}]}),
        json!({"compare":[{"key":"a","target":"version","op":"==","value":"one"}]}),
        json!({"compare":[{"key":"a","target":"value","op":"==","value":1}]}),
        json!({"success":[{"upsert":{"key":"a"}}]}),
        json!({"success":[{"put":{"key":"","value":"1"}}]}),
        json!({"success":[{"put":{"key":"a","value":"1","value_base64":"MQ=="}}]}),
        json!({"success":[{"put":{"key":"a","value_base64":"!!"}}]}),
        json!({"sucess":[]}),
    ];
    for body in bad {
        let got = call(Method::POST, &s.url("/v1/txn"), Some(body.clone())).await;
        assert_error(&got, 400, "invalid_argument");
        assert!(!field(&got).is_empty(), "field named for {body}: {}", got.2);
    }
    // Unknown endpoints and methods also use the shape.
    assert_error(&get(&s.url("/v1/nothing")).await, 404, "not_found");
    assert_error(
        &call(Method::POST, &s.url("/v1/kv/a"), None).await,
        405,
        "method_not_allowed",
    );
}
