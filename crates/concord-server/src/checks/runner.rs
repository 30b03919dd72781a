//! Runs scheduled probes: one task per check, a shared semaphore bounding how
//! many probe at once, every result sent to one channel. Knows nothing of Raft:
//! the owner decides which checks this node runs and what results mean.

use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::BuildHasher;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::{ProbeResult, ProbeTarget, probe};

#[cfg(test)]
mod tests;

/// Where results go: the check key, the result, and how long the probe took.
pub type ProbeSender = mpsc::Sender<(String, ProbeResult, Duration)>;

/// Intervals are clamped to this so a zero interval cannot spin (or panic in
/// `tokio::time::interval`). The API should enforce a saner floor (Consul: 1 s).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// One check to run: what to probe, how often, and how long one probe may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scheduled {
    /// What the probe does.
    pub target: ProbeTarget,
    /// Time between probe starts; a probe overrunning it skips the missed runs.
    pub interval: Duration,
    /// Deadline for one probe.
    pub timeout: Duration,
}

/// Settings of a [`ProbeRunner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunnerConfig {
    /// Probes in flight at once across all checks, so thousands of checks
    /// due together cannot exhaust sockets or file descriptors.
    pub max_concurrent_probes: NonZeroUsize,
}

impl Default for RunnerConfig {
    fn default() -> Self {
        RunnerConfig {
            max_concurrent_probes: NonZeroUsize::new(64).expect("64 is not zero"),
        }
    }
}

/// Owns the set of checks this node probes and runs each on its own timer.
///
/// Each check is a Tokio task, so a slow probe delays only its own check; it
/// does hold one of the concurrency permits until its timeout. Dropping the
/// runner stops every probe.
#[derive(Debug)]
pub struct ProbeRunner {
    checks: Mutex<HashMap<String, Running>>,
    shared: Arc<Shared>,
    runtime: Handle,
}

/// What every check task needs.
#[derive(Debug)]
struct Shared {
    permits: Semaphore,
    http: reqwest::Client,
    results: ProbeSender,
}

/// A started check; dropping it stops the check.
#[derive(Debug)]
struct Running {
    spec: Scheduled,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ProbeRunner {
    /// A runner with no checks, sending results to `results`.
    ///
    /// Fails only if the HTTP client cannot be built.
    ///
    /// # Panics
    /// Outside a Tokio runtime: the runner spawns its checks on the runtime
    /// it was created in, so that `set` works from any thread.
    pub fn new(config: RunnerConfig, results: ProbeSender) -> Result<Self, reqwest::Error> {
        Ok(ProbeRunner {
            checks: Mutex::new(HashMap::new()),
            shared: Arc::new(Shared {
                permits: Semaphore::new(
                    config
                        .max_concurrent_probes
                        .get()
                        .min(Semaphore::MAX_PERMITS),
                ),
                http: super::http_client()?,
                results,
            }),
            runtime: Handle::current(),
        })
    }

    /// Replaces the set of checks: new keys start (after a random fraction of
    /// their interval, to spread load), removed keys stop, keys whose
    /// definition changed restart, unchanged keys keep their timers.
    ///
    /// Never waits for I/O. A result already queued, or sent by a probe that
    /// finishes while `set` runs, can still arrive for a removed or changed
    /// key: the consumer should check keys against what it last scheduled.
    pub fn set(&self, desired: HashMap<String, Scheduled>) {
        let mut checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        // Dropping a `Running` aborts its task.
        checks.retain(|key, running| desired.get(key) == Some(&running.spec));
        for (key, spec) in desired {
            if let Entry::Vacant(slot) = checks.entry(key) {
                let task = self.runtime.spawn(run_check(
                    slot.key().clone(),
                    spec.clone(),
                    self.shared.clone(),
                ));
                tracing::debug!(key = %slot.key(), ?spec.interval, "health check scheduled");
                slot.insert(Running { spec, task });
            }
        }
    }

    /// How many checks are scheduled.
    pub fn len(&self) -> usize {
        self.checks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether no check is scheduled.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The task running `key`, to tell a kept timer from a restarted one.
    #[cfg(test)]
    fn task_id(&self, key: &str) -> Option<tokio::task::Id> {
        let checks = self.checks.lock().unwrap_or_else(PoisonError::into_inner);
        checks.get(key).map(|r| r.task.id())
    }
}

/// Probes `spec` every interval until aborted or the results channel closes.
async fn run_check(key: String, spec: Scheduled, shared: Arc<Shared>) {
    let interval = spec.interval.max(MIN_INTERVAL);
    let first = Instant::now() + jitter(&key, interval);
    let mut ticks = tokio::time::interval_at(first, interval);
    // An overrunning probe skips the runs it missed instead of bursting.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        let Ok(permit) = shared.permits.acquire().await else {
            return; // never closed
        };
        let started = Instant::now();
        let result = probe(&spec.target, spec.timeout, &shared.http).await;
        let latency = started.elapsed();
        drop(permit);
        if shared
            .results
            .send((key.clone(), result, latency))
            .await
            .is_err()
        {
            return;
        }
    }
}

/// A random delay in `[0, interval)`, so checks created together (a restart,
/// a new leader, a bulk registration) do not all probe at the same instant.
fn jitter(key: &str, interval: Duration) -> Duration {
    // A freshly keyed SipHash is random enough for spreading load.
    let random = RandomState::new().hash_one(key);
    let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(random % nanos.max(1))
}
