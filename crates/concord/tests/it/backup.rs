//! Backup and restore: `GET /v1/snapshot`, `concord snapshot save|restore`.

use std::process::Command;

use reqwest::Method;
use serde_json::json;

use crate::support::*;

fn concord(base: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .env("CONCORD_ADDR", base)
        .args(args)
        .output()
        .expect("run concord")
}

#[tokio::test]
async fn save_then_restore_into_a_new_data_dir() {
    let s = Server::dev().await;
    for i in 0..20 {
        put_kv(&s, &format!("cfg/k{i}"), &format!("v{i}")).await;
    }
    call(
        Method::PUT,
        &s.url("/v1/services/web/instances/w1"),
        Some(json!({"address":"10.0.0.1","port":80,"tags":["blue"]})),
    )
    .await;
    let (_, _, st) = get(&s.url("/v1/status")).await;
    let revision = st["revision"].as_u64().unwrap();

    // The endpoint itself answers the envelope with the index header.
    let resp = reqwest::get(s.url("/v1/snapshot")).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-concord-index"],
        revision.to_string().as_str()
    );
    let body = resp.bytes().await.unwrap();
    assert_eq!(&body[..8], b"CONCORD\x01");

    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("backup.bin");
    let out = concord(&s.base, &["snapshot", "save", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(file.exists());

    let restored_dir = tmp.path().join("restored");
    let out = concord(
        &s.base,
        &[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            restored_dir.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Restoring over a used data dir is refused.
    let out = concord(
        &s.base,
        &[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            restored_dir.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not empty"));

    let r = Server::dev_on(&restored_dir).await;
    let (_, _, b) = get(&r.url("/v1/kv/cfg/?prefix=true")).await;
    assert_eq!(b["items"].as_array().unwrap().len(), 20);
    assert_eq!(get(&r.url("/v1/kv/cfg/k7")).await.2["value"], "v7");
    let (_, _, b) = get(&r.url("/v1/services/web")).await;
    assert_eq!(b["instances"][0]["tags"], json!(["blue"]));
    let (_, _, st) = get(&r.url("/v1/status")).await;
    assert!(
        st["revision"].as_u64().unwrap() >= revision,
        "revision carried over"
    );
    // It keeps working, and a restart does not apply the backup twice.
    put_kv(&r, "cfg/after", "x").await;
    let mut r = r;
    r.terminate();
    r.crash_and_restart().await;
    assert_eq!(
        get(&r.url("/v1/kv/cfg/after")).await.0,
        200,
        "later writes survive"
    );
}

#[tokio::test]
async fn damaged_backups_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("bad.bin");
    std::fs::write(&file, b"CONCORD\x01 this is not a backup").unwrap();
    let out = concord(
        "http://127.0.0.1:1",
        &[
            "snapshot",
            "restore",
            file.to_str().unwrap(),
            "--data-dir",
            tmp.path().join("d").to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).starts_with("error:"));
    assert!(
        !tmp.path().join("d").exists(),
        "nothing created from a bad backup"
    );
}
