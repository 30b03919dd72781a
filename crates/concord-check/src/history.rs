//! What a history is made of: operations with their call, invocation time and,
//! when the client got an answer, completion time and result.

use std::fmt;

/// What a client asked for, on one key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Call {
    /// Write `value` unconditionally.
    Put {
        /// The value written. Make values unique per history: a read then names
        /// exactly one write, which is what lets the checker spot a stale read.
        value: String,
    },
    /// Read the key (a linearizable read; stale reads are not register operations).
    Get,
    /// Compare-and-swap on the value: write `new` only if the key holds `expect`
    /// (`None`: only if the key is absent).
    Cas {
        /// The value the key must hold, or `None` for "absent".
        expect: Option<String>,
        /// The value written when the comparison holds.
        new: String,
    },
    /// Remove the key.
    Delete,
}

/// What the store answered.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Ret {
    /// A `Put` or `Delete` was acknowledged.
    Ok,
    /// A `Get` saw this value (`None`: the key was absent).
    Value(Option<String>),
    /// A `Cas` answered whether the comparison held (and so whether it wrote).
    Swapped(bool),
}

/// The answer to an operation and when it arrived.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Completion {
    /// When the answer arrived, on the same clock as [`Op::invoke`].
    pub time: u64,
    /// The answer.
    pub ret: Ret,
}

/// One operation of a history.
///
/// Times are in any unit of one monotonic clock shared by every client (the
/// harness uses nanoseconds since the test started). Two operations whose
/// intervals touch (one completes at the instant the other is invoked) count as
/// concurrent, the lenient reading of a coarse clock.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Op {
    /// The client that issued it (only used in explanations).
    pub client: u64,
    /// The register it acts on.
    pub key: String,
    /// What was asked.
    pub call: Call,
    /// When the request was sent.
    pub invoke: u64,
    /// The answer, or `None` when none came (timeout, connection lost, an error
    /// that does not say whether the write happened). Such an operation may have
    /// taken effect at any point after `invoke`, or never.
    pub completion: Option<Completion>,
}

/// A history the checker cannot interpret: a harness bug, not a store bug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HistoryError {
    /// The answer arrived before the request was sent.
    #[error("operation {index} completes at {complete} before it is invoked at {invoke}")]
    CompletesBeforeInvoke {
        /// Position of the operation in the history.
        index: usize,
        /// Its invocation time.
        invoke: u64,
        /// Its completion time.
        complete: u64,
    },
    /// The answer does not fit the call (say, a `Get` answered with `Swapped`).
    #[error("operation {index}: {call} cannot be answered with {ret:?}")]
    MismatchedReturn {
        /// Position of the operation in the history.
        index: usize,
        /// The call, rendered.
        call: String,
        /// The answer that does not fit.
        ret: Ret,
    },
}

impl Op {
    /// Checks that the answer fits the call and arrives no earlier than the call.
    pub(crate) fn validate(&self, index: usize) -> Result<(), HistoryError> {
        let Some(c) = &self.completion else {
            return Ok(());
        };
        if c.time < self.invoke {
            return Err(HistoryError::CompletesBeforeInvoke {
                index,
                invoke: self.invoke,
                complete: c.time,
            });
        }
        let fits = matches!(
            (&self.call, &c.ret),
            (Call::Put { .. } | Call::Delete, Ret::Ok)
                | (Call::Get, Ret::Value(_))
                | (Call::Cas { .. }, Ret::Swapped(_))
        );
        if !fits {
            return Err(HistoryError::MismatchedReturn {
                index,
                call: self.call.to_string(),
                ret: c.ret.clone(),
            });
        }
        Ok(())
    }
}

/// Renders a register value for explanations.
pub(crate) fn show_value(v: Option<&str>) -> String {
    match v {
        Some(s) => format!("{s:?}"),
        None => "absent".to_owned(),
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Put { value } => write!(f, "put {value:?}"),
            Call::Get => write!(f, "get"),
            Call::Cas { expect, new } => {
                write!(f, "cas {} -> {new:?}", show_value(expect.as_deref()))
            }
            Call::Delete => write!(f, "delete"),
        }
    }
}

impl fmt::Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ret::Ok => write!(f, "ok"),
            Ret::Value(v) => write!(f, "{}", show_value(v.as_deref())),
            Ret::Swapped(true) => write!(f, "swapped"),
            Ret::Swapped(false) => write!(f, "not swapped"),
        }
    }
}

impl fmt::Display for Op {
    /// `client 3: get -> "c1-4" [1200, 1350]`; an unknown outcome shows `-> ?` and `[1200, ?]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.completion {
            Some(c) => write!(
                f,
                "client {}: {} -> {} [{}, {}]",
                self.client, self.call, c.ret, self.invoke, c.time
            ),
            None => write!(
                f,
                "client {}: {} -> ? [{}, ?]",
                self.client, self.call, self.invoke
            ),
        }
    }
}
