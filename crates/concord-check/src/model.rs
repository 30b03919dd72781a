//! The sequential specification: a register holding a value or nothing.
//!
//! Values are interned to small integers so a search state is a `u32` and the
//! memo table compares integers, not strings.

use std::collections::HashMap;

use crate::history::{Call, Op, Ret};

/// The register's content: [`ABSENT`] or an interned value.
pub(crate) type State = u32;

/// The key does not exist.
pub(crate) const ABSENT: State = 0;

/// A value some unanswered write may have stored that no answer ever shows. All
/// such values behave alike (no read returns them, no CAS expects them), so the
/// search folds them into this one state.
pub(crate) const DEAD: State = State::MAX;

/// One operation with its answer, in interned form: what the search replays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Unconditional write (answered or not: a put's answer carries no information).
    Put(State),
    /// A completed read that saw this state.
    Get(State),
    /// Compare-and-swap; `swapped` is `None` when no answer came.
    Cas {
        expect: State,
        new: State,
        swapped: Option<bool>,
    },
    /// Unconditional removal.
    Delete,
}

impl Step {
    /// Applies the step to `state`: the next state, or `None` when the recorded
    /// answer is impossible in `state`.
    pub(crate) fn apply(self, state: State) -> Option<State> {
        match self {
            Step::Put(v) => Some(v),
            Step::Get(seen) => (seen == state).then_some(state),
            Step::Cas {
                expect,
                new,
                swapped,
            } => {
                let holds = state == expect;
                match swapped {
                    Some(s) if s != holds => None,
                    _ => Some(if holds { new } else { state }),
                }
            }
            Step::Delete => Some(ABSENT),
        }
    }
}

/// Interns values; index 0 stands for "absent".
#[derive(Debug, Default)]
pub(crate) struct Values {
    ids: HashMap<String, State>,
    names: Vec<String>,
}

impl Values {
    fn id(&mut self, v: Option<&str>) -> State {
        let Some(v) = v else { return ABSENT };
        if let Some(&id) = self.ids.get(v) {
            return id;
        }
        self.names.push(v.to_owned());
        // Ids stay below `DEAD`; billions of distinct values per key are not a concern.
        let id = State::try_from(self.names.len()).unwrap_or(DEAD - 1);
        self.ids.insert(v.to_owned(), id);
        id
    }

    /// The value a state stands for (`None`: absent).
    pub(crate) fn name(&self, s: State) -> Option<&str> {
        if s == ABSENT {
            return None;
        }
        if s == DEAD {
            return Some("<a value no answer shows>");
        }
        self.names.get(s as usize - 1).map(String::as_str)
    }

    /// The step an operation replays, or `None` for an unanswered read, which
    /// neither changes the register nor constrains anything and can be dropped.
    pub(crate) fn step(&mut self, op: &Op) -> Option<Step> {
        let ret = op.completion.as_ref().map(|c| &c.ret);
        Some(match (&op.call, ret) {
            (Call::Put { value }, _) => Step::Put(self.id(Some(value))),
            (Call::Get, Some(Ret::Value(v))) => Step::Get(self.id(v.as_deref())),
            (Call::Get, _) => return None,
            (Call::Cas { expect, new }, ret) => Step::Cas {
                expect: self.id(expect.as_deref()),
                new: self.id(Some(new)),
                swapped: match ret {
                    Some(Ret::Swapped(s)) => Some(*s),
                    _ => None,
                },
            },
            (Call::Delete, _) => Step::Delete,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_with_unknown_answer_applies_only_when_the_comparison_holds() {
        let cas = Step::Cas {
            expect: 1,
            new: 2,
            swapped: None,
        };
        assert_eq!(cas.apply(1), Some(2));
        assert_eq!(cas.apply(3), Some(3));
        assert_eq!(cas.apply(ABSENT), Some(ABSENT));
    }

    #[test]
    fn answered_cas_must_match_the_comparison() {
        let yes = Step::Cas {
            expect: ABSENT,
            new: 2,
            swapped: Some(true),
        };
        assert_eq!(yes.apply(ABSENT), Some(2));
        assert_eq!(yes.apply(1), None);
        let no = Step::Cas {
            expect: 1,
            new: 2,
            swapped: Some(false),
        };
        assert_eq!(no.apply(1), None);
        assert_eq!(no.apply(4), Some(4));
    }

    #[test]
    fn reads_must_see_the_state() {
        assert_eq!(Step::Get(1).apply(1), Some(1));
        assert_eq!(Step::Get(1).apply(ABSENT), None);
        assert_eq!(Step::Get(ABSENT).apply(ABSENT), Some(ABSENT));
    }

    #[test]
    fn interning_round_trips() {
        let mut v = Values::default();
        let a = v.id(Some("a"));
        assert_eq!(v.id(Some("a")), a);
        assert_ne!(v.id(Some("b")), a);
        assert_eq!(v.id(None), ABSENT);
        assert_eq!(v.name(a), Some("a"));
        assert_eq!(v.name(ABSENT), None);
    }
}
