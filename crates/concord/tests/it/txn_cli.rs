//! `concord txn` mistakes caught before any request: bad flags and bad input
//! files fail with a message naming the problem (no server needed).

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::support::bin;

/// Runs `concord` against an address nothing listens on, so a command that
/// reached the network would fail differently.
fn concord(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(bin())
        .env("CONCORD_ADDR", "http://127.0.0.1:9")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run concord");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for concord")
}

#[test]
fn unknown_status_is_a_usage_error_listing_the_statuses() {
    let out = concord(&["txn", "ls", "--status", "bogus"], "");
    assert_eq!(out.status.code(), Some(2), "clap usage errors exit 2");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("'bogus'")
            && stderr.contains("--status")
            && stderr.contains("running, trying, aborting, succeeded, aborted, stuck, resolved"),
        "{stderr}"
    );
}

#[test]
fn submit_refuses_input_that_is_not_a_request() {
    let out = concord(&["txn", "submit", "-"], r#"{"mode":"saga","stepz":[]}"#);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: - is not a transaction request in JSON")
            && stderr.contains("stepz"),
        "{stderr}"
    );
}

#[test]
fn resolve_requires_a_reason() {
    let out = concord(&["txn", "resolve", "o-1"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--reason"));
}
