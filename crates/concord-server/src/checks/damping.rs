//! Flap damping: a check's stored status changes only after enough consecutive
//! probe results agree, so one lost packet does not deregister a service and
//! one lucky answer does not bring a broken one back. Pure: no I/O, no clock.

use std::num::NonZeroU32;

use super::CheckHealth;

#[cfg(test)]
mod tests;

/// How many consecutive results it takes to change a check's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    /// Consecutive non-critical results to leave critical, and consecutive
    /// results of the other kind to switch between passing and warning.
    pub healthy: NonZeroU32,
    /// Consecutive critical results to become critical.
    pub unhealthy: NonZeroU32,
}

impl Default for Thresholds {
    /// Every result counts at once, as a check without damping behaves.
    fn default() -> Self {
        Thresholds {
            healthy: NonZeroU32::MIN,
            unhealthy: NonZeroU32::MIN,
        }
    }
}

/// Which results a streak is made of. Leaving critical counts passing and
/// warning together, so a service flickering between them still recovers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toward {
    Critical,
    NonCritical,
    Exactly(CheckHealth),
}

/// Decides, one probe result at a time, when a check's status must change.
#[derive(Debug, Clone)]
pub struct Damper {
    thresholds: Thresholds,
    /// The status as last reported (stored); `None` before the first result.
    current: Option<CheckHealth>,
    /// The run of consecutive results pointing away from `current`.
    streak: Option<(Toward, u32)>,
}

impl Damper {
    /// Starts from the status the check currently has (`None`: never probed,
    /// so the first result is reported as is). Streaks start empty: a restart
    /// or a new leader counts afresh rather than trusting counts it never saw.
    pub fn new(current: Option<CheckHealth>, thresholds: Thresholds) -> Self {
        Damper {
            thresholds,
            current,
            streak: None,
        }
    }

    /// The status as last reported, `None` before any.
    pub fn current(&self) -> Option<CheckHealth> {
        self.current
    }

    /// Takes one probe result; returns the new status when the stored one must
    /// change, `None` when it stays.
    pub fn observe(&mut self, result: CheckHealth) -> Option<CheckHealth> {
        let Some(current) = self.current else {
            return self.change_to(result);
        };
        if result == current {
            self.streak = None;
            return None;
        }
        let (toward, threshold) = self.toward(current, result);
        let count = match self.streak {
            Some((t, n)) if t == toward => n + 1,
            _ => 1,
        };
        if count >= threshold.get() {
            self.change_to(result)
        } else {
            self.streak = Some((toward, count));
            None
        }
    }

    fn toward(&self, current: CheckHealth, result: CheckHealth) -> (Toward, NonZeroU32) {
        match (current, result) {
            (_, CheckHealth::Critical) => (Toward::Critical, self.thresholds.unhealthy),
            (CheckHealth::Critical, _) => (Toward::NonCritical, self.thresholds.healthy),
            (_, other) => (Toward::Exactly(other), self.thresholds.healthy),
        }
    }

    fn change_to(&mut self, status: CheckHealth) -> Option<CheckHealth> {
        self.current = Some(status);
        self.streak = None;
        Some(status)
    }
}
