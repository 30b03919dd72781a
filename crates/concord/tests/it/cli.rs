//! The CLI against a real server: human output, `--json`, and exit codes.

use std::process::{Command, Output};

use serde_json::Value;

use crate::support::*;

fn concord(s: &Server, args: &[&str]) -> Output {
    Command::new(bin())
        .env("CONCORD_ADDR", &s.base)
        .args(args)
        .output()
        .expect("run concord")
}

fn ok(s: &Server, args: &[&str]) -> String {
    let out = concord(s, args);
    assert!(
        out.status.success(),
        "concord {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn json(s: &Server, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&ok(s, &all)).expect("--json prints JSON")
}

#[tokio::test]
async fn kv_commands() {
    let s = Server::dev().await;
    ok(&s, &["kv", "put", "app/greeting", "hello world"]);
    assert_eq!(
        ok(&s, &["kv", "get", "app/greeting", "--raw"]),
        "hello world"
    );
    let item = json(&s, &["kv", "get", "app/greeting"]);
    assert_eq!(item["value"], "hello world");
    let rev = item["mod_revision"].as_u64().unwrap();
    // CAS through the CLI: a stale revision fails with exit code 1 and a message.
    let out = concord(
        &s,
        &[
            "kv",
            "put",
            "app/greeting",
            "x",
            "--cas",
            &(rev + 5).to_string(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error:"));
    ok(
        &s,
        &[
            "kv",
            "put",
            "app/greeting",
            "bye",
            "--cas",
            &rev.to_string(),
        ],
    );
    ok(&s, &["kv", "put", "app/other", "2"]);
    let listing = ok(&s, &["kv", "ls", "app/"]);
    assert!(
        listing.contains("app/greeting") && listing.contains("app/other"),
        "{listing}"
    );
    ok(&s, &["kv", "del", "app/", "--prefix"]);
    let out = concord(&s, &["kv", "get", "app/greeting"]);
    assert_eq!(out.status.code(), Some(1), "absent key is an error");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"));
}

#[tokio::test]
async fn services_lease_and_status_commands() {
    let s = Server::dev().await;
    ok(
        &s,
        &[
            "services",
            "register",
            "web",
            "w1",
            "--address",
            "10.0.0.1",
            "--port",
            "80",
            "--tag",
            "v1",
            "--tag",
            "blue",
            "--meta",
            "zone=a",
            "--weight",
            "5",
        ],
    );
    ok(
        &s,
        &[
            "services",
            "register",
            "web",
            "w2",
            "--address",
            "10.0.0.2",
            "--port",
            "80",
            "--ttl",
            "30",
        ],
    );
    let listing = ok(&s, &["services", "ls"]);
    assert!(listing.contains("web"), "{listing}");
    let detail = json(&s, &["services", "get", "web", "--tag", "blue"]);
    assert_eq!(detail["instances"].as_array().unwrap().len(), 1);
    assert_eq!(detail["instances"][0]["meta"]["zone"], "a");
    assert_eq!(detail["instances"][0]["weight"], 5);
    ok(&s, &["services", "deregister", "web", "w1"]);
    let detail = json(&s, &["services", "get", "web"]);
    assert_eq!(detail["instances"][0]["id"], "w2");
    assert_eq!(
        concord(
            &s,
            &[
                "services",
                "register",
                "Bad_Name",
                "x",
                "--address",
                "a",
                "--port",
                "1"
            ]
        )
        .status
        .code(),
        Some(1)
    );

    let lease = json(&s, &["lease", "grant", "30"]);
    let id = lease["id"].as_str().unwrap().to_owned();
    ok(&s, &["kv", "put", "leased", "v", "--lease", &id]);
    ok(&s, &["lease", "keepalive", &id]);
    ok(&s, &["lease", "revoke", &id]);
    assert_eq!(
        concord(&s, &["kv", "get", "leased"]).status.code(),
        Some(1),
        "revoked with its lease"
    );

    let status = json(&s, &["status"]);
    assert_eq!(status["leader_id"], 1);
    let human = ok(&s, &["status"]);
    assert!(human.contains("leader"), "{human}");
    // An unreachable server is a clear error, exit code 1.
    let out = Command::new(bin())
        .args(["--addr", "http://127.0.0.1:1", "status"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error:"));
}
