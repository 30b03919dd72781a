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

#[tokio::test]
async fn registry_health_and_config_commands() {
    let s = Server::dev().await;
    for (id, ns) in [("o1", "prod"), ("o2", "prod"), ("d1", "default")] {
        ok(
            &s,
            &[
                "services",
                "--namespace",
                ns,
                "register",
                "orders",
                id,
                "--address",
                "10.0.0.1",
                "--port",
                "80",
                "--checks",
                r#"[{"id":"beat","type":"ttl","ttl_secs":60}]"#,
            ],
        );
    }
    // TTL checks start critical; pass one of them.
    let out = ok(
        &s,
        &[
            "services",
            "--namespace",
            "prod",
            "check",
            "orders",
            "o1",
            "beat",
            "pass",
        ],
    );
    assert!(out.contains("status=passing"), "{out}");
    let passing = json(
        &s,
        &[
            "services",
            "--namespace",
            "prod",
            "get",
            "orders",
            "--passing",
        ],
    );
    let ids: Vec<&str> = passing["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["o1"]);
    let table = ok(&s, &["services", "--namespace", "prod", "get", "orders"]);
    assert!(
        table.contains("STATUS") && table.contains("critical"),
        "{table}"
    );
    // Maintenance on: out of passing results, with its reason; off: back.
    let out = ok(
        &s,
        &[
            "services",
            "--namespace",
            "prod",
            "maintenance",
            "orders",
            "o1",
            "on",
            "--reason",
            "deploy",
        ],
    );
    assert!(out.contains("status=maintenance"), "{out}");
    let passing = json(
        &s,
        &[
            "services",
            "--namespace",
            "prod",
            "get",
            "orders",
            "--passing",
        ],
    );
    assert_eq!(passing["instances"], serde_json::json!([]));
    ok(
        &s,
        &[
            "services",
            "--namespace",
            "prod",
            "maintenance",
            "orders",
            "o1",
            "off",
        ],
    );
    let ls = ok(&s, &["services", "--namespace", "prod", "ls"]);
    assert!(ls.contains("PASSING"), "{ls}");
    let namespaces = json(&s, &["services", "namespaces"]);
    assert_eq!(namespaces["namespaces"].as_array().unwrap().len(), 2);

    // Config: put from a file, get, history, rollback.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.yaml");
    std::fs::write(&file, "pool: 5\n").unwrap();
    let f = file.to_str().unwrap();
    ok(&s, &["config", "put", "prod/orders/app.yaml", "--file", f]);
    std::fs::write(&file, "pool: 6\n").unwrap();
    ok(
        &s,
        &[
            "config",
            "put",
            "prod/orders/app.yaml",
            "--file",
            f,
            "--comment",
            "more",
        ],
    );
    assert_eq!(
        ok(&s, &["config", "get", "prod/orders/app.yaml", "--raw"]),
        "pool: 6\n"
    );
    let item = json(&s, &["config", "get", "prod/orders/app.yaml"]);
    assert_eq!(
        (item["format"].as_str(), item["version"].as_u64()),
        (Some("yaml"), Some(2))
    );
    let history = ok(&s, &["config", "history", "prod/orders/app.yaml"]);
    assert!(history.contains("more"), "{history}");
    ok(&s, &["config", "rollback", "prod/orders/app.yaml", "1"]);
    assert_eq!(
        ok(&s, &["config", "get", "prod/orders/app.yaml", "--raw"]),
        "pool: 5\n"
    );
    std::fs::write(&file, "pool: [\n").unwrap();
    let out = concord(&s, &["config", "put", "prod/orders/app.yaml", "--file", f]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("line"));
}
