use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use tonic_health::ServingStatus;

use super::*;
use crate::checks::test_servers::{closed_port, grpc_health_server, http_server, silent_server};

/// Generous for a loaded 2-core machine: probes against loopback answer in
/// milliseconds, so only the timeout tests ever approach it.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How far past its timeout a probe may finish before the test calls it a hang.
const MARGIN: Duration = Duration::from_secs(1);

fn http(url: String) -> ProbeTarget {
    ProbeTarget::Http {
        url,
        method: "GET".into(),
        expect: ExpectStatus::default(),
        headers: Vec::new(),
    }
}

fn client() -> reqwest::Client {
    http_client().expect("http client")
}

async fn run(target: &ProbeTarget) -> ProbeResult {
    probe(target, TIMEOUT, &client()).await
}

#[tokio::test]
async fn http_status_maps_to_health() {
    let status = Arc::new(AtomicU16::new(200));
    let server = http_server(status.clone()).await;
    let target = http(format!("http://{}/health", server.addr));

    let r = run(&target).await;
    assert_eq!(r.status, CheckHealth::Passing, "{r:?}");
    assert!(r.output.contains("HTTP GET http://"), "{}", r.output);
    assert!(
        r.output
            .contains("200 OK Output: hello from the test server"),
        "{}",
        r.output
    );

    status.store(429, Ordering::SeqCst);
    let r = run(&target).await;
    assert_eq!(r.status, CheckHealth::Warning, "{r:?}");
    assert!(r.output.contains("429 Too Many Requests"), "{}", r.output);

    status.store(500, Ordering::SeqCst);
    let r = run(&target).await;
    assert_eq!(r.status, CheckHealth::Critical, "{r:?}");
    assert!(
        r.output.contains("500 Internal Server Error"),
        "{}",
        r.output
    );

    let expect_500 = ProbeTarget::Http {
        url: format!("http://{}/health", server.addr),
        method: "HEAD".into(),
        expect: "5xx".parse().unwrap(),
        headers: Vec::new(),
    };
    let r = run(&expect_500).await;
    assert_eq!(r.status, CheckHealth::Passing, "{r:?}");
    assert!(r.output.starts_with("HTTP HEAD"), "{}", r.output);
    assert!(
        !r.output.contains("Output:"),
        "HEAD has no body: {}",
        r.output
    );
    server.stop().await;
}

#[tokio::test]
async fn http_output_keeps_at_most_512_bytes_of_body() {
    let server = http_server(Arc::new(AtomicU16::new(200))).await;
    let r = run(&http(format!("http://{}/big", server.addr))).await;
    assert_eq!(r.status, CheckHealth::Passing, "{r:?}");
    let body = r.output.split_once(" Output: ").expect("has a body").1;
    assert_eq!(body.len(), 512, "{}", r.output);
}

#[tokio::test]
async fn http_redirects_are_not_followed() {
    let server = http_server(Arc::new(AtomicU16::new(200))).await;
    let url = format!("http://{}/redirect", server.addr);
    let r = run(&http(url.clone())).await;
    assert_eq!(r.status, CheckHealth::Critical, "{r:?}");
    assert!(r.output.contains("302 Found"), "{}", r.output);
    let accept_3xx = ProbeTarget::Http {
        url,
        method: String::new(),
        expect: "3xx".parse().unwrap(),
        headers: Vec::new(),
    };
    let r = run(&accept_3xx).await;
    assert_eq!(r.status, CheckHealth::Passing, "{r:?}");
    assert!(
        r.output.starts_with("HTTP GET"),
        "empty method means GET: {}",
        r.output
    );
}

#[tokio::test]
async fn http_headers_are_sent() {
    let server = http_server(Arc::new(AtomicU16::new(200))).await;
    let target = ProbeTarget::Http {
        url: format!("http://{}/echo", server.addr),
        method: "GET".into(),
        expect: ExpectStatus::default(),
        headers: vec![("X-Probe".into(), "yes".into())],
    };
    let r = run(&target).await;
    assert!(r.output.contains("x-probe=yes"), "{}", r.output);
}

#[tokio::test]
async fn http_invalid_definitions_are_critical_with_the_reason() {
    let addr = closed_port().await;
    let cases = [
        (
            format!("https://{addr}/"),
            "GET",
            ("a", "b"),
            "unsupported scheme `https`",
        ),
        ("not a url".to_string(), "GET", ("a", "b"), "invalid URL"),
        (
            format!("http://{addr}/"),
            "GE T",
            ("a", "b"),
            "invalid method `GE T`",
        ),
        (
            format!("http://{addr}/"),
            "GET",
            ("bad name", "b"),
            "invalid header name `bad name`",
        ),
        (
            format!("http://{addr}/"),
            "GET",
            ("a", "line\nbreak"),
            "invalid value for header `a`",
        ),
    ];
    for (url, method, (name, value), reason) in cases {
        let target = ProbeTarget::Http {
            url,
            method: method.into(),
            expect: ExpectStatus::default(),
            headers: vec![(name.into(), value.into())],
        };
        let r = run(&target).await;
        assert_eq!(r.status, CheckHealth::Critical, "{r:?}");
        assert!(
            r.output.contains(reason),
            "{} should contain {reason}",
            r.output
        );
    }
}

#[tokio::test]
async fn http_connection_refused_is_critical() {
    let r = run(&http(format!("http://{}/", closed_port().await))).await;
    assert_eq!(r.status, CheckHealth::Critical, "{r:?}");
    assert!(r.output.to_lowercase().contains("connect"), "{}", r.output);
}

#[tokio::test]
async fn http_timeout_is_honoured() {
    let server = silent_server().await;
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let r = probe(
        &http(format!("http://{}/", server.addr)),
        timeout,
        &client(),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(r.status, CheckHealth::Critical, "{r:?}");
    assert!(r.output.contains("timed out after 300ms"), "{}", r.output);
    assert!(took >= timeout && took < timeout + MARGIN, "took {took:?}");
}

#[tokio::test]
async fn tcp_open_passes_and_closed_is_critical() {
    let server = silent_server().await;
    let r = run(&ProbeTarget::Tcp {
        address: server.addr.to_string(),
    })
    .await;
    assert_eq!(r.status, CheckHealth::Passing, "{r:?}");
    assert_eq!(r.output, format!("TCP connect {}: Success", server.addr));

    let addr = closed_port().await;
    let r = run(&ProbeTarget::Tcp {
        address: addr.to_string(),
    })
    .await;
    assert_eq!(r.status, CheckHealth::Critical, "{r:?}");
    assert!(
        r.output.starts_with(&format!("TCP connect {addr}: ")),
        "{}",
        r.output
    );

    let r = run(&ProbeTarget::Tcp {
        address: "no port".into(),
    })
    .await;
    assert_eq!(r.status, CheckHealth::Critical, "{r:?}");
}

#[tokio::test]
async fn grpc_serving_passes_anything_else_is_critical() {
    let (server, reporter) = grpc_health_server().await;
    let overall = ProbeTarget::Grpc {
        address: server.addr.to_string(),
        service: String::new(),
    };
    let named = ProbeTarget::Grpc {
        address: server.addr.to_string(),
        service: "demo".into(),
    };

    let r = run(&overall).await;
    assert_eq!(r.status, CheckHealth::Passing, "{r:?}");
    assert_eq!(r.output, format!("gRPC check {}: SERVING", server.addr));

    let r = run(&named).await;
    assert_eq!(r.status, CheckHealth::Critical, "unknown service: {r:?}");
    assert!(r.output.contains("NotFound"), "{}", r.output);

    reporter
        .set_service_status("demo", ServingStatus::Serving)
        .await;
    let r = run(&named).await;
    assert_eq!(r.status, CheckHealth::Passing, "{r:?}");
    assert_eq!(
        r.output,
        format!("gRPC check {}/demo: SERVING", server.addr)
    );

    reporter
        .set_service_status("demo", ServingStatus::NotServing)
        .await;
    let r = run(&named).await;
    assert_eq!(r.status, CheckHealth::Critical, "{r:?}");
    assert!(r.output.ends_with("NOT_SERVING"), "{}", r.output);
    server.stop().await;

    let r = run(&overall).await;
    assert_eq!(r.status, CheckHealth::Critical, "stopped server: {r:?}");
}

#[tokio::test]
async fn grpc_timeout_is_honoured() {
    let server = silent_server().await;
    let timeout = Duration::from_millis(300);
    let target = ProbeTarget::Grpc {
        address: server.addr.to_string(),
        service: String::new(),
    };
    let started = Instant::now();
    let r = probe(&target, timeout, &client()).await;
    let took = started.elapsed();
    assert_eq!(r.status, CheckHealth::Critical, "{r:?}");
    assert!(took < timeout + MARGIN, "took {took:?}");
}
