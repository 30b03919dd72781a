use std::time::Duration;

use concord_api::transactions::{BranchRequest, CallSpec, RetrySpec, TxnMode, TxnRequest};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

fn to_json(request: &TxnRequest) -> Value {
    serde_json::to_value(request).unwrap()
}

#[test]
fn call_specs_serialize_minimally() {
    let call = CallSpec::post("http://a/x");
    assert_eq!(
        serde_json::to_value(&call).unwrap(),
        json!({"url": "http://a/x"})
    );
    let call = CallSpec::put("concord://stock/r")
        .json(json!({"qty": 2}))
        .header("x-tenant", "acme");
    assert_eq!(
        serde_json::to_value(&call).unwrap(),
        json!({"url": "concord://stock/r", "method": "PUT", "body": {"qty": 2},
               "headers": {"x-tenant": "acme"}})
    );
    assert_eq!(
        CallSpec::delete("u").method("PATCH").method,
        Some("PATCH".into())
    );
}

#[test]
fn saga_builds_the_contract_json() {
    let request = Saga::new()
        .id("order-1")
        .step(
            "reserve",
            CallSpec::post("http://stock/reserve").json(json!({"sku": "A7"})),
            Some(CallSpec::post("http://stock/release")),
        )
        .step("charge", CallSpec::post("http://pay/charge"), None)
        .concurrent()
        .depends_on("charge", ["reserve"])
        .timeout(Duration::from_millis(1500))
        .step_timeout(Duration::from_micros(2500))
        .retry(RetrySpec {
            max_attempts: Some(3),
            ..RetrySpec::default()
        })
        .wait(true)
        .build();
    assert_eq!(
        to_json(&request),
        json!({
            "id": "order-1",
            "mode": "saga",
            "steps": [
                {"name": "reserve",
                 "action": {"url": "http://stock/reserve", "body": {"sku": "A7"}},
                 "compensate": {"url": "http://stock/release"}},
                {"name": "charge", "action": {"url": "http://pay/charge"}}
            ],
            "concurrent": true,
            "depends_on": {"charge": ["reserve"]},
            "timeout_secs": 2,
            "step_timeout_ms": 3,
            "retry": {"max_attempts": 3},
            "wait": true
        })
    );
    // What the server parses is what was built.
    let back: TxnRequest = serde_json::from_value(to_json(&request)).unwrap();
    assert_eq!(back, request);
}

#[test]
fn saga_defaults_and_repeated_dependencies() {
    let request = Saga::new()
        .depends_on("c", ["a"])
        .depends_on("c", vec!["b".to_owned()])
        .build();
    assert_eq!(
        to_json(&request),
        json!({"mode": "saga", "steps": [], "concurrent": false,
               "depends_on": {"c": ["a", "b"]}, "wait": false})
    );
}

#[test]
fn two_phase_uses_mode_2pc_and_its_three_calls() {
    let request = TwoPhase::new()
        .step(
            "db",
            CallSpec::post("http://db/prepare"),
            CallSpec::post("http://db/commit"),
            CallSpec::post("http://db/rollback"),
        )
        .build();
    assert_eq!(request.mode, TxnMode::TwoPc);
    assert_eq!(
        to_json(&request),
        json!({
            "mode": "2pc",
            "steps": [{"name": "db",
                       "prepare": {"url": "http://db/prepare"},
                       "commit": {"url": "http://db/commit"},
                       "rollback": {"url": "http://db/rollback"}}],
            "concurrent": false,
            "wait": false
        })
    );
}

#[test]
fn tcc_starts_empty_and_branches_name_try() {
    let request = Tcc::new()
        .id("t-1")
        .timeout(Duration::from_secs(10))
        .build();
    assert_eq!(
        to_json(&request),
        json!({"id": "t-1", "mode": "tcc", "steps": [], "concurrent": false,
               "timeout_secs": 10, "wait": false})
    );
    let branch = BranchRequest {
        name: "seat".into(),
        try_: CallSpec::post("http://s/try"),
        confirm: CallSpec::post("http://s/confirm"),
        cancel: CallSpec::post("http://s/cancel"),
        timeout_ms: None,
        retry: None,
    };
    assert_eq!(
        serde_json::to_value(&branch).unwrap(),
        json!({"name": "seat", "try": {"url": "http://s/try"},
               "confirm": {"url": "http://s/confirm"}, "cancel": {"url": "http://s/cancel"}})
    );
}

#[test]
fn paths_encode_ids_and_refuse_unaddressable_ones() {
    assert_eq!(txn_path("order-1").unwrap(), "/v1/transactions/order-1");
    assert_eq!(txn_path("a:b").unwrap(), "/v1/transactions/a%3Ab");
    assert_eq!(txn_path("a/b").unwrap(), "/v1/transactions/a%2Fb");
    for bad in ["", ".", ".."] {
        let err = txn_path(bad).unwrap_err();
        assert_eq!(err.code(), Some("invalid_argument"), "{bad:?}");
    }
}

#[test]
fn list_queries() {
    assert_eq!(list_query(Query::default(), None, None, None).as_str(), "");
    assert_eq!(
        list_query(
            Query::default(),
            Some(TxnStatus::Stuck),
            Some(50),
            Some("a:1")
        )
        .as_str(),
        "?status=stuck&limit=50&after=a%3A1"
    );
    let stale = Client::new("h:1").with_consistency(crate::Consistency::Stale);
    assert_eq!(
        list_query(stale.read_query(), None, Some(5), None).as_str(),
        "?consistency=stale&limit=5"
    );
}

#[test]
fn branch_answers_map_to_outcomes() {
    let ok = bytes::Bytes::from_static(br#"{"name":"seat","status":"succeeded"}"#);
    match branch_outcome(200, &ok).unwrap() {
        BranchOutcome::Succeeded(step) => {
            assert_eq!(
                (step.name.as_str(), step.status.as_str()),
                ("seat", "succeeded")
            );
        }
        other => panic!("{other:?}"),
    }
    let slow =
        bytes::Bytes::from_static(br#"{"name":"seat","status":"running","transaction":"trying"}"#);
    assert!(matches!(
        branch_outcome(202, &slow).unwrap(),
        BranchOutcome::Pending(step) if step.status == "running"
    ));
    let refused = bytes::Bytes::from_static(
        br#"{"error":{"code":"conflict","message":"no seats left","field":null}}"#,
    );
    assert_eq!(
        branch_outcome(409, &refused).unwrap(),
        BranchOutcome::Refused {
            code: "conflict".into(),
            message: "no seats left".into()
        }
    );
    let failed =
        bytes::Bytes::from_static(br#"{"error":{"code":"unavailable","message":"gave up"}}"#);
    assert_eq!(
        branch_outcome(502, &failed).unwrap_err().status(),
        Some(502)
    );
}

/// One canned HTTP answer on a local port; yields the request it received
/// (request line, body) so tests can check what the client sent.
async fn serve_once(
    status: &'static str,
    body: &'static str,
) -> (Client, tokio::task::JoinHandle<(String, String)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = Client::new(listener.local_addr().unwrap().to_string());
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let (head_len, body_len) = loop {
            let n = socket.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                break (end + 4, length);
            }
        };
        while seen.len() < head_len + body_len {
            let n = socket.read(&mut buf).await.unwrap();
            seen.extend_from_slice(&buf[..n]);
        }
        let answer = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(answer.as_bytes()).await.unwrap();
        let text = String::from_utf8_lossy(&seen).to_string();
        let line = text.lines().next().unwrap_or_default().to_owned();
        (line, text[head_len..].to_owned())
    });
    (client, task)
}

const VIEW: &str = r#"{"id":"o 1","mode":"saga","status":"succeeded","created_at":"2025-01-01T00:00:00Z",
    "steps":[{"name":"a","status":"succeeded","op":"action","attempts":1}],"history":[],"revision":7}"#;

#[tokio::test]
async fn create_tells_finished_from_accepted() {
    let (client, server) = serve_once("200 OK", VIEW).await;
    let answer = client
        .create_transaction(&Saga::new().id("o 1").wait(true).build())
        .await
        .unwrap();
    assert!(matches!(&answer, TxnAnswer::Finished(v) if v.revision == 7));
    assert_eq!(
        (answer.id(), answer.status()),
        ("o 1", TxnStatus::Succeeded)
    );
    let (line, body) = server.await.unwrap();
    assert_eq!(line, "POST /v1/transactions HTTP/1.1");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["id"], "o 1");

    let (client, _server) = serve_once("202 Accepted", r#"{"id":"x","status":"running"}"#).await;
    let answer = client
        .create_transaction(&Saga::new().build())
        .await
        .unwrap();
    assert_eq!(
        answer,
        TxnAnswer::Accepted(TxnAccepted {
            id: "x".into(),
            status: TxnStatus::Running
        })
    );
}

#[tokio::test]
async fn tcc_handle_drives_branch_commit_and_abort() {
    let (client, _server) = serve_once("202 Accepted", r#"{"id":"t:1","status":"trying"}"#).await;
    let handle = client.begin_tcc(Tcc::new().id("t:1")).await.unwrap();
    assert_eq!(handle.id(), "t:1");

    let (client, server) = serve_once(
        "409 Conflict",
        r#"{"error":{"code":"conflict","message":"sold out"}}"#,
    )
    .await;
    let handle = TccHandle::resume(client, "t:1");
    let outcome = handle
        .branch(
            "seat",
            CallSpec::post("http://s/try"),
            CallSpec::post("http://s/confirm"),
            CallSpec::post("http://s/cancel"),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, BranchOutcome::Refused { ref message, .. } if message == "sold out"));
    let (line, body) = server.await.unwrap();
    assert_eq!(line, "POST /v1/transactions/t%3A1/branches HTTP/1.1");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["try"]["url"],
        "http://s/try"
    );

    let (client, server) = serve_once("202 Accepted", r#"{"id":"t:1","status":"aborting"}"#).await;
    let answer = TccHandle::resume(client, "t:1")
        .abort("sold out")
        .await
        .unwrap();
    assert_eq!(answer.status(), TxnStatus::Aborting);
    let (line, body) = server.await.unwrap();
    assert_eq!(line, "POST /v1/transactions/t%3A1/abort HTTP/1.1");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"reason": "sold out", "wait": true})
    );

    let (client, server) = serve_once("200 OK", VIEW).await;
    client.commit_transaction("t:1", false).await.unwrap();
    let (line, body) = server.await.unwrap();
    assert_eq!(line, "POST /v1/transactions/t%3A1/commit HTTP/1.1");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"wait": false})
    );
}

#[tokio::test]
async fn operator_calls_and_reads() {
    let (client, server) = serve_once("200 OK", r#"{"id":"s","status":"running"}"#).await;
    let accepted = client
        .resolve_transaction("s", "fixed by hand")
        .await
        .unwrap();
    assert_eq!(accepted.status, TxnStatus::Running);
    let (line, body) = server.await.unwrap();
    assert_eq!(line, "POST /v1/transactions/s/resolve HTTP/1.1");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"reason": "fixed by hand"})
    );

    let (client, server) = serve_once("200 OK", r#"{"id":"s","status":"running"}"#).await;
    client.retry_transaction("s").await.unwrap();
    assert_eq!(
        server.await.unwrap().0,
        "POST /v1/transactions/s/retry HTTP/1.1"
    );

    let (client, _server) = serve_once(
        "404 Not Found",
        r#"{"error":{"code":"not_found","message":"no transaction s"}}"#,
    )
    .await;
    assert_eq!(client.get_transaction("s").await.unwrap(), None);

    let (client, server) = serve_once(
        "200 OK",
        r#"{"transactions":[{"id":"s","mode":"2pc","status":"stuck","created_at":"t","steps":2,"reason":"r","revision":3}],"next":"s","revision":9}"#,
    )
    .await;
    let list = client
        .list_transactions(Some(TxnStatus::Stuck), Some(1), None)
        .await
        .unwrap();
    assert_eq!(list.transactions[0].mode, TxnMode::TwoPc);
    assert_eq!(list.next.as_deref(), Some("s"));
    assert_eq!(
        server.await.unwrap().0,
        "GET /v1/transactions?status=stuck&limit=1 HTTP/1.1"
    );
}
