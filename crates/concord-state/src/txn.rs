//! Transactions: compares, then one branch, atomically, under one revision.

use concord_api::txn::{CompareOp, CompareTarget};

use crate::command::{Compare, CompareValue, Outcome, TxnOp, TxnOpOutcome};
use crate::machine::StateMachine;

impl StateMachine {
    /// `Command::Txn`.
    ///
    /// All-or-nothing: the chosen branch's leases are checked before anything
    /// changes. Ops run in order, so a later get sees an earlier put of the same
    /// branch. The revision moves only if some op changed something.
    pub(crate) fn txn(
        &mut self,
        compare: &[Compare],
        success: Vec<TxnOp>,
        failure: Vec<TxnOp>,
    ) -> Outcome {
        let succeeded = compare.iter().all(|c| self.compare_holds(c));
        let ops = if succeeded { success } else { failure };
        for op in &ops {
            if let TxnOp::Put { lease, .. } = op
                && let Err(e) = self.check_lease(*lease)
            {
                return Outcome::Refused(e);
            }
        }
        let mut change = self.begin();
        let results = ops
            .into_iter()
            .map(|op| match op {
                TxnOp::Put { key, value, lease } => {
                    self.kv_write(&mut change, key.clone(), value, lease);
                    TxnOpOutcome::Put { key }
                }
                TxnOp::Get { key } => {
                    let entry = self.kv.get(&key).cloned();
                    TxnOpOutcome::Get { key, entry }
                }
                TxnOp::Delete { key, prefix } => {
                    let deleted = self.kv_delete(&mut change, &key, prefix);
                    TxnOpOutcome::Delete { key, deleted }
                }
            })
            .collect();
        Outcome::Txn {
            revision: self.commit(change),
            succeeded,
            results,
        }
    }

    /// Evaluates one guard against the current state.
    ///
    /// A missing key counts as version, create_revision and mod_revision 0; for the
    /// value target only `!=` holds on a missing key. A value kind that does not
    /// fit the target (bytes for a revision, a number for the value) never holds.
    pub(crate) fn compare_holds(&self, c: &Compare) -> bool {
        let entry = self.kv.get(&c.key);
        match (c.target, &c.value) {
            (CompareTarget::Value, CompareValue::Bytes(want)) => match entry {
                Some(e) => op_holds(c.op, e.value.as_slice(), want.as_slice()),
                None => c.op == CompareOp::Ne,
            },
            (CompareTarget::Version, CompareValue::Number(want)) => {
                op_holds(c.op, entry.map_or(0, |e| e.version), *want)
            }
            (CompareTarget::CreateRevision, CompareValue::Number(want)) => {
                op_holds(c.op, entry.map_or(0, |e| e.create_revision), *want)
            }
            (CompareTarget::ModRevision, CompareValue::Number(want)) => {
                op_holds(c.op, entry.map_or(0, |e| e.mod_revision), *want)
            }
            _ => false,
        }
    }
}

/// `have <op> want`.
fn op_holds<T: Ord>(op: CompareOp, have: T, want: T) -> bool {
    match op {
        CompareOp::Eq => have == want,
        CompareOp::Ne => have != want,
        CompareOp::Lt => have < want,
        CompareOp::Gt => have > want,
    }
}

#[cfg(test)]
mod tests;
