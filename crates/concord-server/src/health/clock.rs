//! Deadlines kept in the leader's memory, restarted whenever leadership changes.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When each tracked item started its current wait; only meaningful on the leader.
///
/// A new leader (any change of term) forgets everything, so every item gets its
/// whole duration again from the moment the new leader first sees it.
pub struct LeaderClock<K> {
    inner: Mutex<Inner<K>>,
}

struct Inner<K> {
    term: Option<u64>,
    started: HashMap<K, Instant>,
    /// Items returned as due and not yet resolved, so they are not proposed twice.
    pending: HashSet<K>,
}

impl<K> Default for LeaderClock<K> {
    fn default() -> Self {
        LeaderClock {
            inner: Mutex::new(Inner {
                term: None,
                started: HashMap::new(),
                pending: HashSet::new(),
            }),
        }
    }
}

impl<K: Hash + Eq + Clone> LeaderClock<K> {
    fn lock(&self, leading: Option<u64>) -> std::sync::MutexGuard<'_, Inner<K>> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.term != leading {
            inner.term = leading;
            inner.started.clear();
            inner.pending.clear();
        }
        inner
    }

    /// Starts `key`'s wait over from `now`; `false` when this node does not lead.
    pub fn restart(&self, leading: Option<u64>, key: K, now: Instant) -> bool {
        let mut inner = self.lock(leading);
        if inner.term.is_none() {
            return false;
        }
        inner.pending.remove(&key);
        inner.started.insert(key, now);
        true
    }

    /// The items of `present` whose wait has run out. Items seen for the first time
    /// start waiting now; items no longer present are forgotten. Returned items are
    /// not returned again until they leave `present` or [`LeaderClock::retry`].
    pub fn due(
        &self,
        leading: Option<u64>,
        present: impl IntoIterator<Item = (K, Duration)>,
        now: Instant,
    ) -> Vec<K> {
        let mut inner = self.lock(leading);
        if inner.term.is_none() {
            return Vec::new();
        }
        let present: HashMap<K, Duration> = present.into_iter().collect();
        inner.started.retain(|k, _| present.contains_key(k));
        inner.pending.retain(|k| present.contains_key(k));
        let mut due = Vec::new();
        for (key, wait) in present {
            let started = *inner.started.entry(key.clone()).or_insert(now);
            if started + wait <= now && !inner.pending.contains(&key) {
                due.push(key);
            }
        }
        for key in &due {
            inner.pending.insert(key.clone());
        }
        due
    }

    /// A due item's proposal failed: return it again on the next `due`.
    pub fn retry(&self, key: &K) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.pending.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn items_wait_their_duration_from_first_sight() {
        let c = LeaderClock::<&str>::default();
        let t0 = Instant::now();
        assert!(c.due(Some(1), [("a", 5 * S)], t0).is_empty());
        assert!(c.due(Some(1), [("a", 5 * S)], t0 + 4 * S).is_empty());
        assert_eq!(c.due(Some(1), [("a", 5 * S)], t0 + 5 * S), ["a"]);
        assert!(
            c.due(Some(1), [("a", 5 * S)], t0 + 6 * S).is_empty(),
            "pending"
        );
        c.retry(&"a");
        assert_eq!(c.due(Some(1), [("a", 5 * S)], t0 + 7 * S), ["a"]);
    }

    #[test]
    fn restart_and_absence_reset_the_wait() {
        let c = LeaderClock::<&str>::default();
        let t0 = Instant::now();
        c.due(Some(1), [("a", 5 * S)], t0);
        assert!(c.restart(Some(1), "a", t0 + 4 * S));
        assert!(c.due(Some(1), [("a", 5 * S)], t0 + 8 * S).is_empty());
        assert_eq!(c.due(Some(1), [("a", 5 * S)], t0 + 9 * S), ["a"]);
        // Gone (e.g. went critical), then back: a fresh wait.
        c.due(Some(1), [], t0 + 10 * S);
        assert!(c.due(Some(1), [("a", 5 * S)], t0 + 11 * S).is_empty());
        assert_eq!(c.due(Some(1), [("a", 5 * S)], t0 + 16 * S), ["a"]);
    }

    #[test]
    fn a_new_term_restarts_everything_and_followers_do_nothing() {
        let c = LeaderClock::<&str>::default();
        let t0 = Instant::now();
        c.due(Some(1), [("a", 5 * S)], t0);
        assert!(c.due(None, [("a", 5 * S)], t0 + 9 * S).is_empty());
        assert!(!c.restart(None, "a", t0 + 9 * S));
        assert!(c.due(Some(2), [("a", 5 * S)], t0 + 10 * S).is_empty());
        assert!(c.due(Some(2), [("a", 5 * S)], t0 + 14 * S).is_empty());
        assert_eq!(c.due(Some(2), [("a", 5 * S)], t0 + 15 * S), ["a"]);
    }
}
