//! Crash safety: `kill -9` under concurrent writes loses no acknowledged write and
//! invents none.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

const WRITERS: usize = 8;

#[derive(Default)]
struct Ledger {
    /// key -> value, for writes the server acknowledged with 200.
    acked: BTreeMap<String, String>,
    /// Every key a writer attempted (acknowledged or not).
    attempted: BTreeSet<String>,
    max_acked_revision: u64,
}

#[tokio::test]
async fn kill_9_mid_load_loses_no_acknowledged_write() {
    // Snapshot often so recovery exercises snapshot load plus log replay.
    let mut s = Server::start_with(&["--snapshot-every", "64"]).await;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for w in 0..WRITERS {
        let (ledger, stop, http, base) =
            (ledger.clone(), stop.clone(), http.clone(), s.base.clone());
        tasks.push(tokio::spawn(async move {
            // Bounded in count and time.
            for n in 0..5_000u32 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let key = format!("crash/w{w}/{n:05}");
                let value = format!("{w}-{n}");
                ledger.lock().unwrap().attempted.insert(key.clone());
                let res = http
                    .put(format!("{base}/v1/kv/{key}"))
                    .body(value.clone())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status() == 200 => {
                        let body: serde_json::Value = r.json().await.unwrap_or_default();
                        let rev = body["revision"].as_u64().unwrap_or(0);
                        let mut l = ledger.lock().unwrap();
                        l.acked.insert(key, value);
                        l.max_acked_revision = l.max_acked_revision.max(rev);
                    }
                    // The connection died with the server: outcome unknown.
                    _ => break,
                }
            }
        }));
    }
    // Let a real load build up, then crash in the middle of it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while ledger.lock().unwrap().acked.len() < 400 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    assert!(
        ledger.acked.len() >= 100,
        "load ran: {} acked",
        ledger.acked.len()
    );

    s.crash_and_restart().await;
    let (st, _, body) = get(&s.url("/v1/kv/crash/?prefix=true")).await;
    assert_eq!(st, 200);
    let found: BTreeMap<String, String> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["key"].as_str().unwrap().to_owned(),
                i["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (k, v) in &ledger.acked {
        assert_eq!(
            found.get(k),
            Some(v),
            "acknowledged write {k} lost or changed"
        );
    }
    for (k, v) in &found {
        assert!(
            ledger.attempted.contains(k),
            "{k} appeared but was never written"
        );
        let expected = {
            let (w, n) = k.trim_start_matches("crash/w").split_once('/').unwrap();
            format!("{}-{}", w, n.parse::<u32>().unwrap())
        };
        assert_eq!(v, &expected, "{k} has a value nobody wrote");
    }
    let (_, _, st) = get(&s.url("/v1/status")).await;
    assert!(st["revision"].as_u64().unwrap() >= ledger.max_acked_revision);
    // The store keeps working after recovery.
    put_kv(&s, "crash/after", "ok").await;
}
