//! Fault points for crash tests: `CONCORD_FAULT_POINTS=txn.after_call:3,...` makes
//! the process abort (as abruptly as `kill -9`) the third time it passes
//! `txn.after_call`. Inert, and nearly free, when the variable is unset.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable read once at the first fault point.
pub const FAULT_POINTS_ENV: &str = "CONCORD_FAULT_POINTS";

struct Point {
    name: String,
    at: u64,
    hits: AtomicU64,
}

fn points() -> &'static [Point] {
    static POINTS: OnceLock<Vec<Point>> = OnceLock::new();
    POINTS.get_or_init(|| {
        std::env::var(FAULT_POINTS_ENV)
            .map(|v| parse(&v))
            .unwrap_or_default()
    })
}

fn parse(spec: &str) -> Vec<Point> {
    spec.split(',')
        .filter_map(|p| {
            let (name, at) = p.trim().split_once(':')?;
            Some(Point {
                name: name.to_owned(),
                at: at.parse().ok()?,
                hits: AtomicU64::new(0),
            })
        })
        .collect()
}

/// Passes the named point; aborts the process on its configured hit.
pub(crate) fn hit(name: &str) {
    for p in points() {
        if p.name == name && p.hits.fetch_add(1, Ordering::Relaxed) + 1 == p.at {
            eprintln!("fault point {name} reached {} times: aborting", p.at);
            std::process::abort();
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn specs_parse_and_ignore_junk() {
        let p = super::parse("txn.after_call:3, bad, x:y,txn.before_call:1");
        let names: Vec<_> = p.iter().map(|p| (p.name.as_str(), p.at)).collect();
        assert_eq!(names, [("txn.after_call", 3), ("txn.before_call", 1)]);
    }
}
