//! Server-run health checks, the probing half: what a probe does
//! ([`ProbeTarget`]), running one ([`probe()`]), flap damping ([`Damper`]) and
//! scheduling many with bounded concurrency ([`ProbeRunner`]).
//!
//! Nothing here knows about Raft or the registry: the caller maps its stored
//! check definitions to [`Scheduled`] entries, feeds results through a
//! [`Damper`] per check, and writes a status only when the damper says so.

mod damping;
mod probe;
mod runner;
#[cfg(test)]
mod test_servers;

pub use damping::{Damper, Thresholds};
pub use probe::{
    CheckHealth, ExpectStatus, ExpectStatusError, ProbeResult, ProbeTarget, http_client, probe,
};
pub use runner::{ProbeRunner, ProbeSender, RunnerConfig, Scheduled};
