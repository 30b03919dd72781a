use concord_api::transactions::{
    TRACEPARENT_HEADER, TXN_ATTEMPT_HEADER, TXN_ID_HEADER, TXN_OP_HEADER, TXN_STEP_HEADER, TxnOp,
};
use reqwest::header::{HeaderMap, HeaderValue};

use super::{MetaError, TxnMeta};

fn good_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(TXN_ID_HEADER, HeaderValue::from_static("txn-1"));
    headers.insert(TXN_STEP_HEADER, HeaderValue::from_static("debit"));
    headers.insert(TXN_OP_HEADER, HeaderValue::from_static("compensate"));
    headers.insert(TXN_ATTEMPT_HEADER, HeaderValue::from_static("3"));
    headers
}

#[test]
fn meta_accepts_good_headers() {
    let mut headers = good_headers();
    let meta = TxnMeta::from_headers(&headers).unwrap();
    assert_eq!(
        meta,
        TxnMeta {
            txn_id: "txn-1".into(),
            step: "debit".into(),
            op: TxnOp::Compensate,
            attempt: 3,
            traceparent: None,
        }
    );
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    headers.insert(TRACEPARENT_HEADER, HeaderValue::from_static(trace));
    let meta = TxnMeta::from_headers(&headers).unwrap();
    assert_eq!(meta.traceparent.as_deref(), Some(trace));
}

#[test]
fn meta_rejects_each_missing_header_by_name() {
    for name in [
        TXN_ID_HEADER,
        TXN_STEP_HEADER,
        TXN_OP_HEADER,
        TXN_ATTEMPT_HEADER,
    ] {
        let mut headers = good_headers();
        headers.remove(name);
        let err = TxnMeta::from_headers(&headers).unwrap_err();
        assert_eq!(err, MetaError::Missing { header: name });
        assert_eq!(err.to_string(), format!("missing header {name}"));
    }
}

#[test]
fn meta_rejects_invalid_values_by_name() {
    let cases: [(&str, HeaderValue); 7] = [
        (TXN_OP_HEADER, HeaderValue::from_static("undo")),
        (TXN_OP_HEADER, HeaderValue::from_static("Action")),
        (TXN_ATTEMPT_HEADER, HeaderValue::from_static("0")),
        (TXN_ATTEMPT_HEADER, HeaderValue::from_static("-1")),
        (TXN_ATTEMPT_HEADER, HeaderValue::from_static("two")),
        (TXN_ID_HEADER, HeaderValue::from_static("")),
        (
            TXN_STEP_HEADER,
            HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap(),
        ),
    ];
    for (name, value) in cases {
        let mut headers = good_headers();
        headers.insert(name, value.clone());
        let err = TxnMeta::from_headers(&headers).unwrap_err();
        assert_eq!(err.header(), name, "{value:?}");
        assert!(matches!(err, MetaError::Invalid { .. }), "{value:?}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("invalid header {name}: ")),
            "{err}"
        );
    }
    let mut headers = good_headers();
    headers.insert(TXN_OP_HEADER, HeaderValue::from_static("undo"));
    let message = TxnMeta::from_headers(&headers).unwrap_err().to_string();
    assert!(
        message.contains("\"undo\"") && message.contains("action|compensate"),
        "{message}"
    );
}

#[cfg(feature = "axum")]
mod extractor {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::post;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;

    fn app() -> Router {
        Router::new().route("/", post(|meta: TxnMeta| async move { meta.txn_id }))
    }

    fn request(headers: HeaderMap) -> Request<Body> {
        let mut request = Request::post("/").body(Body::empty()).unwrap();
        *request.headers_mut() = headers;
        request
    }

    async fn body_bytes(response: axum::response::Response) -> Vec<u8> {
        axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap()
            .to_vec()
    }

    #[tokio::test]
    async fn extractor_passes_good_headers() {
        let response = app().oneshot(request(good_headers())).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(body_bytes(response).await, b"txn-1");
    }

    #[tokio::test]
    async fn extractor_rejects_with_400_and_json_error() {
        let mut headers = good_headers();
        headers.remove(TXN_OP_HEADER);
        let response = app().oneshot(request(headers)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()["content-type"], "application/json");
        let body: serde_json::Value = serde_json::from_slice(&body_bytes(response).await).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "code": "invalid_argument",
                "message": "missing header Concord-Txn-Op",
                "field": "Concord-Txn-Op",
            }})
        );
    }

    #[tokio::test]
    async fn extractor_rejects_invalid_attempt_naming_the_header() {
        let mut headers = good_headers();
        headers.insert(TXN_ATTEMPT_HEADER, HeaderValue::from_static("0"));
        let response = app().oneshot(request(headers)).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: concord_api::ErrorBody =
            serde_json::from_slice(&body_bytes(response).await).unwrap();
        assert_eq!(body.error.field.as_deref(), Some(TXN_ATTEMPT_HEADER));
    }

    /// A whole participant: extractor, barrier, and the outcome as the response.
    #[cfg(feature = "barrier-sqlite")]
    #[tokio::test]
    async fn participant_handler_answers_duplicate_with_200() {
        use axum::extract::State;

        use crate::participant::{BarrierError, BarrierOutcome, SqliteBarrier};

        type Answer = Result<BarrierOutcome<&'static str>, BarrierError<(StatusCode, String)>>;

        async fn handler(State(pool): State<sqlx::SqlitePool>, meta: TxnMeta) -> Answer {
            SqliteBarrier::new()
                .call(&pool, &meta, |_tx| Box::pin(async { Ok("debited") }))
                .await
        }

        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        SqliteBarrier::new().migrate(&pool).await.unwrap();
        let app = Router::new().route("/", post(handler)).with_state(pool);
        let mut headers = good_headers();
        headers.insert(TXN_OP_HEADER, HeaderValue::from_static("action"));
        let first = app.clone().oneshot(request(headers.clone())).await.unwrap();
        assert_eq!(first.status(), StatusCode::OK);
        assert_eq!(body_bytes(first).await, b"debited");
        let again = app.oneshot(request(headers)).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
        assert_eq!(body_bytes(again).await, br#"{"outcome":"duplicate"}"#);
    }
}

#[cfg(any(feature = "barrier-sqlite", feature = "barrier-postgres"))]
mod harness;
#[cfg(any(feature = "barrier-sqlite", feature = "barrier-postgres"))]
mod scenarios;

#[cfg(any(feature = "barrier-sqlite", feature = "barrier-postgres"))]
#[test]
fn table_names_are_validated() {
    type B = super::Barrier<harness::AnyTestDb>;
    for bad in [
        "",
        "bad-name",
        "1abc",
        "x; DROP TABLE t",
        "a.b",
        "tablé",
        &"t".repeat(64),
    ] {
        assert!(B::with_table(bad).is_err(), "{bad:?} accepted");
    }
    for good in ["svc_barrier_2", "_x", "T", &"t".repeat(63)] {
        assert_eq!(B::with_table(good).unwrap().table(), good);
    }
    assert_eq!(B::new().table(), "concord_barrier");
}

/// Generates one `#[tokio::test]` per shared scenario for a backend.
#[cfg(any(feature = "barrier-sqlite", feature = "barrier-postgres"))]
macro_rules! barrier_scenarios {
    ($db:ty, $attrs:tt) => {
        barrier_scenarios!(@each $db, $attrs, [
            forward_runs_once_and_duplicate_is_noop
            business_error_rolls_back_and_retry_runs
            compensate_after_action_undoes_once
            cancel_after_try_undoes_once
            rollback_after_prepare_undoes_once
            compensate_before_action_is_null_and_suppresses_action
            cancel_before_try_is_null_and_suppresses_try
            rollback_before_prepare_is_null_and_suppresses_prepare
            compensate_after_refused_action_is_null
            finish_ops_run_once
            steps_and_transactions_are_independent
            concurrent_duplicates_take_effect_once
            racing_action_and_compensate_leave_no_effect
        ]);
    };
    (@each $db:ty, $attrs:tt, [$($name:ident)*]) => {
        $( barrier_scenarios!(@one $db, $attrs, $name); )*
    };
    (@one $db:ty, { $(#[$attr:meta])* }, $name:ident) => {
        $(#[$attr])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            super::scenarios::$name::<$db>(stringify!($name)).await;
        }
    };
}

#[cfg(feature = "barrier-sqlite")]
mod sqlite_barrier {
    barrier_scenarios!(sqlx::Sqlite, {});

    /// The smallest setup a participant can use: one in-memory connection.
    #[tokio::test]
    async fn memory_pool_with_one_connection_works() {
        use sqlx::sqlite::SqlitePoolOptions;

        use crate::participant::{BarrierOutcome, SqliteBarrier, TxnMeta};

        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let barrier = SqliteBarrier::new();
        barrier.migrate(&pool).await.unwrap();
        let meta = TxnMeta {
            txn_id: "t".into(),
            step: "s".into(),
            op: concord_api::transactions::TxnOp::Action,
            attempt: 1,
            traceparent: None,
        };
        let run = || barrier.call(&pool, &meta, |_tx| Box::pin(async { Ok::<_, ()>(7) }));
        assert_eq!(run().await.unwrap(), BarrierOutcome::Ran(7));
        assert_eq!(run().await.unwrap(), BarrierOutcome::Duplicate);

        // A second barrier on its own table in the same database keeps its own rows.
        let other = SqliteBarrier::with_table("other_barrier").unwrap();
        other.migrate(&pool).await.unwrap();
        let run_other = || other.call(&pool, &meta, |_tx| Box::pin(async { Ok::<_, ()>(8) }));
        assert_eq!(run_other().await.unwrap(), BarrierOutcome::Ran(8));
        assert_eq!(run_other().await.unwrap(), BarrierOutcome::Duplicate);
    }
}

#[cfg(feature = "barrier-postgres")]
mod postgres_barrier {
    barrier_scenarios!(sqlx::Postgres, {
        #[ignore = "needs PostgreSQL: set CONCORD_TEST_POSTGRES_URL"]
    });
}
