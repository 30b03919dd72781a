//! The rules: how results and decisions move a transaction, and what starts next.
//!
//! Everything here is a pure function of the record and the command, so every
//! replica takes the same decisions and a new leader needs nothing but the log.

use concord_api::transactions::{TxnMode, TxnStatus};

use super::record::{HistoryEntry, Mark, Phase, SlotState, TxnRecord, Verdict};
use super::{CallKind, TxnDecision, TxnEvent};

impl TxnRecord {
    /// Applies one driver event; false if it no longer fits (nothing changed).
    pub(crate) fn event(&mut self, event: TxnEvent, at_ms: u64) -> bool {
        match event {
            TxnEvent::Result {
                step,
                phase,
                attempt,
                result,
            } => self.result(step as usize, phase, attempt, result, at_ms),
            TxnEvent::Restart {
                step,
                phase,
                attempt,
            } => self.restart(step as usize, phase, attempt, at_ms),
            TxnEvent::Deadline => {
                let forward = self.phase == Phase::Forward
                    && matches!(self.status, TxnStatus::Running | TxnStatus::Trying);
                if !forward || self.elapsed_ms < self.timeout_ms {
                    return false;
                }
                self.note(
                    at_ms,
                    None,
                    Mark::Timeout,
                    Verdict::Became(TxnStatus::Aborting),
                );
                let secs = self.timeout_ms / 1000;
                self.enter_backward(format!("timed out after {secs} s"), at_ms);
                true
            }
        }
    }

    /// Whether the transaction still acts on `phase` (results may still retry).
    fn live(&self, phase: Phase) -> bool {
        self.phase == phase && !self.status.is_final() && self.status != TxnStatus::Stuck
    }

    fn result(
        &mut self,
        step: usize,
        phase: Phase,
        attempt: u32,
        result: super::CallResult,
        at_ms: u64,
    ) -> bool {
        let live = self.live(phase);
        let Some(op) = phase.op(self.mode) else {
            return false;
        };
        let Some(s) = self.steps.get_mut(step) else {
            return false;
        };
        let retry = s.retry;
        let slot = s.slot_mut(phase);
        if slot.state != SlotState::Running || slot.attempts != attempt {
            return false;
        }
        let verdict = match result.kind {
            CallKind::Success => {
                slot.state = SlotState::Done;
                Verdict::Succeeded
            }
            CallKind::Refused if op.may_refuse() => {
                slot.state = SlotState::Refused;
                Verdict::Refused
            }
            kind => {
                let used = slot.attempts.saturating_sub(slot.budget_from);
                if !live || used >= retry.max_attempts {
                    slot.state = SlotState::Exhausted;
                    Verdict::Exhausted
                } else {
                    slot.state = SlotState::Waiting {
                        delay_ms: result.retry_in_ms,
                    };
                    if kind == CallKind::Pending {
                        Verdict::Pending
                    } else {
                        Verdict::Failed
                    }
                }
            }
        };
        self.log(HistoryEntry {
            at_ms,
            step: Some(step as u32),
            mark: Mark::Call(op),
            attempt,
            verdict,
            http_status: result.http_status,
            latency_ms: Some(result.latency_ms),
            error: result.error,
        });
        true
    }

    fn restart(&mut self, step: usize, phase: Phase, attempt: u32, at_ms: u64) -> bool {
        let live = self.live(phase);
        let (term, index) = (self.term, self.log_index);
        let Some(op) = phase.op(self.mode) else {
            return false;
        };
        let Some(s) = self.steps.get_mut(step) else {
            return false;
        };
        let retry = s.retry;
        let slot = s.slot_mut(phase);
        if !slot.busy() || attempt != slot.attempts.saturating_add(1) {
            return false;
        }
        let interrupted = slot.state == SlotState::Running;
        let used = slot.attempts.saturating_sub(slot.budget_from);
        let verdict = if !live || used >= retry.max_attempts {
            slot.state = SlotState::Exhausted;
            Verdict::Exhausted
        } else {
            slot.state = SlotState::Running;
            slot.attempts = attempt;
            slot.term = term;
            slot.started_at = index;
            Verdict::Started
        };
        let entry = |attempt, verdict| HistoryEntry {
            at_ms,
            step: Some(step as u32),
            mark: Mark::Call(op),
            attempt,
            verdict,
            http_status: None,
            latency_ms: None,
            error: None,
        };
        if interrupted {
            self.log(entry(attempt - 1, Verdict::Interrupted));
        }
        let shown = if verdict == Verdict::Started {
            attempt
        } else {
            attempt - 1
        };
        self.log(entry(shown, verdict));
        true
    }

    /// Applies a client's or operator's decision, or says why it does not apply now.
    pub(crate) fn decide(&mut self, decision: TxnDecision, at_ms: u64) -> Result<(), String> {
        let id = &self.id;
        match decision {
            TxnDecision::Commit => {
                if self.mode != TxnMode::Tcc {
                    return Err(format!(
                        "transaction {id:?} is a {}; only TCC transactions are committed by the client",
                        self.mode.as_str()
                    ));
                }
                if self.status != TxnStatus::Trying {
                    return Err(format!("transaction {id:?} is {}, not trying", self.status));
                }
                if let Some(s) = self.steps.iter().find(|s| s.fwd.state != SlotState::Done) {
                    let what = match s.fwd.state {
                        SlotState::Refused => "was refused",
                        SlotState::Exhausted => "failed",
                        _ => "is still running",
                    };
                    return Err(format!(
                        "branch {:?} try {what}: abort the transaction instead",
                        s.name
                    ));
                }
                self.note(
                    at_ms,
                    None,
                    Mark::Commit,
                    Verdict::Became(TxnStatus::Running),
                );
                self.phase = Phase::Finish;
                self.status = TxnStatus::Running;
                Ok(())
            }
            TxnDecision::Abort { reason } => {
                let forward = self.phase == Phase::Forward
                    && matches!(self.status, TxnStatus::Running | TxnStatus::Trying);
                if !forward {
                    return Err(format!(
                        "transaction {id:?} is {} and past its point of no return",
                        self.status
                    ));
                }
                self.log(HistoryEntry {
                    error: Some(reason.clone()),
                    ..entry(at_ms, Mark::Abort, Verdict::Became(TxnStatus::Aborting))
                });
                self.enter_backward(reason, at_ms);
                Ok(())
            }
            TxnDecision::Retry => {
                if self.status != TxnStatus::Stuck {
                    return Err(format!(
                        "transaction {id:?} is {}; only stuck transactions are retried",
                        self.status
                    ));
                }
                let phase = self.phase;
                for s in &mut self.steps {
                    let slot = s.slot_mut(phase);
                    if slot.state == SlotState::Exhausted {
                        slot.state = SlotState::Waiting { delay_ms: 0 };
                        slot.budget_from = slot.attempts;
                    }
                }
                self.status = if phase == Phase::Finish {
                    TxnStatus::Running
                } else {
                    TxnStatus::Aborting
                };
                let status = self.status;
                self.note(at_ms, None, Mark::Retry, Verdict::Became(status));
                Ok(())
            }
            TxnDecision::Resolve { reason } => {
                if self.status.is_final() {
                    return Err(format!("transaction {id:?} is already {}", self.status));
                }
                self.log(HistoryEntry {
                    error: Some(reason.clone()),
                    ..entry(at_ms, Mark::Resolve, Verdict::Became(TxnStatus::Resolved))
                });
                self.reason = Some(reason);
                self.status = TxnStatus::Resolved;
                self.finished_at_ms = Some(at_ms);
                Ok(())
            }
        }
    }

    /// Moves the record as far as the rules allow: starts due calls, changes phase,
    /// ends it. Idempotent: settling a settled record changes nothing.
    pub(crate) fn settle(&mut self, at_ms: u64) {
        loop {
            if self.status.is_final() || self.status == TxnStatus::Stuck {
                return;
            }
            let moved = match self.phase {
                Phase::Forward => self.settle_forward(at_ms),
                Phase::Finish => self.settle_finish(at_ms),
                Phase::Backward => self.settle_backward(at_ms),
            };
            if !moved {
                return;
            }
        }
    }

    fn settle_forward(&mut self, at_ms: u64) -> bool {
        if self.mode != TxnMode::Tcc {
            let failed = self.steps.iter().find_map(|s| match s.fwd.state {
                SlotState::Refused => Some(format!("step {:?} was refused", s.name)),
                SlotState::Exhausted => Some(format!(
                    "step {:?} failed after {} attempts",
                    s.name, s.fwd.attempts
                )),
                _ => None,
            });
            if let Some(reason) = failed {
                self.enter_backward(reason, at_ms);
                return true;
            }
            if self.steps.iter().all(|s| s.fwd.state == SlotState::Done) {
                if self.mode == TxnMode::Saga {
                    self.finish(TxnStatus::Succeeded, at_ms);
                } else {
                    self.phase = Phase::Finish;
                }
                return true;
            }
        }
        let mut due = Vec::new();
        match self.mode {
            TxnMode::Saga if !self.concurrent => {
                if !self.steps.iter().any(|s| s.fwd.busy())
                    && let Some(i) = self
                        .steps
                        .iter()
                        .position(|s| s.fwd.state == SlotState::Pending)
                {
                    due.push(i);
                }
            }
            TxnMode::Saga => {
                for (i, s) in self.steps.iter().enumerate() {
                    let ready = s.deps.iter().all(|&d| {
                        self.steps
                            .get(d as usize)
                            .is_some_and(|d| d.fwd.state == SlotState::Done)
                    });
                    if s.fwd.state == SlotState::Pending && ready {
                        due.push(i);
                    }
                }
            }
            TxnMode::Tcc | TxnMode::TwoPc => {
                due.extend(
                    (0..self.steps.len())
                        .filter(|&i| self.steps[i].fwd.state == SlotState::Pending),
                );
            }
        }
        for &i in &due {
            self.start(i, Phase::Forward, at_ms);
        }
        !due.is_empty()
    }

    fn settle_finish(&mut self, at_ms: u64) -> bool {
        if self.stuck_if_exhausted(Phase::Finish, at_ms) {
            return true;
        }
        if self.steps.iter().all(|s| s.fin.state == SlotState::Done) {
            self.finish(TxnStatus::Succeeded, at_ms);
            return true;
        }
        let due: Vec<usize> = (0..self.steps.len())
            .filter(|&i| self.steps[i].fin.state == SlotState::Pending)
            .collect();
        for &i in &due {
            self.start(i, Phase::Finish, at_ms);
        }
        !due.is_empty()
    }

    fn settle_backward(&mut self, at_ms: u64) -> bool {
        // A forward call that ended after the abort may show nothing needs undoing.
        let mode = self.mode;
        let mut moved = false;
        for s in &mut self.steps {
            if s.back.state == SlotState::Pending && !s.fwd.busy() && !needs_undo(mode, s) {
                s.back.state = SlotState::Skipped;
                moved = true;
            }
        }
        if self.stuck_if_exhausted(Phase::Backward, at_ms) {
            return true;
        }
        if self
            .steps
            .iter()
            .all(|s| matches!(s.back.state, SlotState::Done | SlotState::Skipped))
        {
            self.finish(TxnStatus::Aborted, at_ms);
            return true;
        }
        let ready = |s: &super::StepRecord| s.back.state == SlotState::Pending && !s.fwd.busy();
        let due: Vec<usize> = if mode == TxnMode::Saga {
            // Undo in reverse order, one step at a time.
            if self.steps.iter().any(|s| s.back.busy()) {
                Vec::new()
            } else {
                self.steps
                    .iter()
                    .rposition(|s| s.back.state == SlotState::Pending)
                    .filter(|&i| ready(&self.steps[i]))
                    .into_iter()
                    .collect()
            }
        } else {
            (0..self.steps.len())
                .filter(|&i| ready(&self.steps[i]))
                .collect()
        };
        for &i in &due {
            self.start(i, Phase::Backward, at_ms);
        }
        moved || !due.is_empty()
    }

    /// Switches to undoing: forward ops never started are skipped, ones waiting to
    /// retry count as failed (their effect is unknown), and steps with nothing to
    /// undo are skipped.
    fn enter_backward(&mut self, reason: String, at_ms: u64) {
        self.phase = Phase::Backward;
        self.status = TxnStatus::Aborting;
        let mode = self.mode;
        for s in &mut self.steps {
            match s.fwd.state {
                SlotState::Pending => s.fwd.state = SlotState::Skipped,
                SlotState::Waiting { .. } => s.fwd.state = SlotState::Exhausted,
                _ => {}
            }
            if s.backward.is_none() || (!s.fwd.busy() && !needs_undo(mode, s)) {
                s.back.state = SlotState::Skipped;
            }
        }
        self.log(HistoryEntry {
            error: Some(reason.clone()),
            ..entry(at_ms, Mark::Status, Verdict::Became(TxnStatus::Aborting))
        });
        self.reason = Some(reason);
    }

    fn start(&mut self, step: usize, phase: Phase, at_ms: u64) {
        let op = phase.op(self.mode);
        let (term, index) = (self.term, self.log_index);
        let s = &mut self.steps[step];
        let slot = s.slot_mut(phase);
        slot.state = SlotState::Running;
        slot.attempts += 1;
        slot.term = term;
        slot.started_at = index;
        let attempt = slot.attempts;
        if let Some(op) = op {
            self.log(HistoryEntry {
                step: Some(step as u32),
                attempt,
                ..entry(at_ms, Mark::Call(op), Verdict::Started)
            });
        }
    }

    /// Gets stuck if an op of `phase` (one that must succeed) ran out of attempts.
    fn stuck_if_exhausted(&mut self, phase: Phase, at_ms: u64) -> bool {
        let Some(s) = self
            .steps
            .iter()
            .find(|s| s.slot(phase).state == SlotState::Exhausted)
        else {
            return false;
        };
        let reason = format!(
            "{} of step {:?} failed after {} attempts",
            phase.op(self.mode).map_or("finish", |o| o.as_str()),
            s.name,
            s.slot(phase).attempts
        );
        self.get_stuck(reason, at_ms);
        true
    }

    fn get_stuck(&mut self, reason: String, at_ms: u64) {
        self.status = TxnStatus::Stuck;
        self.log(HistoryEntry {
            error: Some(reason.clone()),
            ..entry(at_ms, Mark::Status, Verdict::Became(TxnStatus::Stuck))
        });
        self.reason = Some(reason);
    }

    fn finish(&mut self, status: TxnStatus, at_ms: u64) {
        self.status = status;
        self.finished_at_ms = Some(at_ms);
        self.note(at_ms, None, Mark::Status, Verdict::Became(status));
    }
}

/// Whether a step's forward op may have taken effect and so must be undone.
///
/// A refused saga action took no effect. TCC cancels and 2PC rolls back every
/// branch that was tried, refused or not: the participant's barrier makes an
/// undo of nothing a no-op, and it keeps a late try from taking effect.
fn needs_undo(mode: TxnMode, s: &super::StepRecord) -> bool {
    if s.backward.is_none() || !s.fwd.attempted() {
        return false;
    }
    mode != TxnMode::Saga || s.fwd.state != SlotState::Refused
}

/// A transaction-wide history entry.
fn entry(at_ms: u64, mark: Mark, verdict: Verdict) -> HistoryEntry {
    HistoryEntry {
        at_ms,
        step: None,
        mark,
        attempt: 0,
        verdict,
        http_status: None,
        latency_ms: None,
        error: None,
    }
}
