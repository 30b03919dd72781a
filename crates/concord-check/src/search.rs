//! The Wing & Gong search with Lowe's memoization (the "WGL" algorithm, as in
//! Knossos and Porcupine) over one register's operations.
//!
//! Call and return events sit in a doubly linked list in time order. The search
//! walks it from the front: a call event is a candidate to linearize next (every
//! call before the first remaining return is one); linearizing it removes its call
//! and return from the list and starts over from the front. Reaching a return
//! event means that operation's deadline passed without it being placed, so the
//! search backtracks. The memo table of (linearized set, state) pairs prunes every
//! configuration already explored, which turns the factorial search into one
//! bounded by the number of distinct configurations.
//!
//! Unanswered operations have no return event: nothing forces them to be placed,
//! and any left over at the end are taken to have never happened (or to happen
//! after everything else, which nothing can observe). The search succeeds once
//! every answered operation is placed.
//!
//! Unanswered writes are what makes the search explode: each may be placed at any
//! point after its invocation, or never, so a refutation would have to try every
//! subset of them at every point. Three rules (`prepare` applies the first) cut
//! that down without losing any linearization; each rewrites an arbitrary
//! linearization into one the search still explores:
//!
//! - An unanswered write whose (unique) value some answer observed must have
//!   happened before the first such answer arrived: it gets that as its deadline
//!   and is searched like an answered operation.
//! - An unanswered operation is never placed where it would not change the
//!   register: removing it leaves every answer explained, and "never happened" is
//!   one of its allowed fates.
//! - A *dead* write (unanswered, and its value is never read by any `Get` nor
//!   expected by any `Cas`) can only matter to an answered failed `Cas` whose
//!   expected value the register holds: between a dead write and the next write
//!   the only explainable operations are failed CASes and unanswered operations,
//!   and dropping the dead write breaks only those failed CASes that expected the
//!   value before it. Dead writes therefore stay off the event list; when such a
//!   failed CAS cannot be placed, the search places a dead write right before it
//!   (legal, since an unanswered operation has no deadline to miss by moving it
//!   later). Dead values are indistinguishable, so they share one state, [`DEAD`],
//!   and the earliest-invoked unused dead write is always the one to use (an
//!   exchange argument: any solution using a later one works with the earliest
//!   swapped in), preferring a dead CAS that expects the current value over a dead
//!   put, which can serve anywhere.

use std::collections::HashMap;

use crate::model::{DEAD, State, Step};

/// No list node.
const NIL: usize = usize::MAX;

/// One operation as the search sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SearchOp {
    pub(crate) step: Step,
    pub(crate) invoke: u64,
    /// `None` for an unanswered operation.
    pub(crate) complete: Option<u64>,
    /// An unanswered write of a value nobody observes (see the module docs); its
    /// step writes [`DEAD`].
    pub(crate) dead: bool,
}

impl SearchOp {
    fn is_failed_cas(&self) -> bool {
        matches!(
            self.step,
            Step::Cas {
                swapped: Some(false),
                ..
            }
        )
    }
}

/// How a search ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A linearization exists.
    Linearizable,
    /// None exists. `blocked` is the operation whose deadline (its return) could
    /// never be met, seen at the deepest point the search reached; `prefix` is that
    /// deepest partial linearization (operation indices, in order) and `state` the
    /// register after it.
    NotLinearizable {
        prefix: Vec<usize>,
        state: State,
        blocked: usize,
    },
    /// The step budget ran out first.
    BudgetExceeded,
}

/// What the search did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SearchResult {
    pub(crate) outcome: Outcome,
    /// Loop iterations spent (the unit of the budget).
    pub(crate) steps: u64,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    op: usize,
    time: u64,
    is_call: bool,
    /// For a call: its return node, or `NIL` when it has none.
    ret: usize,
    prev: usize,
    next: usize,
}

/// The event list with O(1) unlink and relink ("dancing links").
struct Events {
    nodes: Vec<Node>,
    /// Node 0 is a sentinel head.
    head: usize,
}

impl Events {
    fn new(ops: &[SearchOp]) -> Events {
        // (time, returns after calls at the same instant, op): touching intervals overlap.
        let mut order: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
        for (i, op) in ops.iter().enumerate().filter(|(_, o)| !o.dead) {
            order.push((op.invoke, false, i));
            if let Some(t) = op.complete {
                order.push((t, true, i));
            }
        }
        order.sort_unstable();
        let mut nodes = Vec::with_capacity(order.len() + 1);
        nodes.push(Node {
            op: NIL,
            time: 0,
            is_call: false,
            ret: NIL,
            prev: NIL,
            next: NIL,
        });
        let mut call_node = vec![NIL; ops.len()];
        for &(time, is_return, op) in &order {
            let idx = nodes.len();
            let prev = idx - 1;
            nodes[prev].next = idx;
            nodes.push(Node {
                op,
                time,
                is_call: !is_return,
                ret: NIL,
                prev,
                next: NIL,
            });
            if is_return {
                nodes[call_node[op]].ret = idx;
            } else {
                call_node[op] = idx;
            }
        }
        Events { nodes, head: 0 }
    }

    fn first(&self) -> usize {
        self.nodes[self.head].next
    }

    /// The time of the first return event at or after `from`: the latest instant
    /// an operation placed now may take effect (`u64::MAX` when none is left).
    fn next_return_time(&self, mut from: usize) -> u64 {
        while from != NIL {
            let n = &self.nodes[from];
            if !n.is_call {
                return n.time;
            }
            from = n.next;
        }
        u64::MAX
    }

    fn unlink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink(&mut self, n: usize) {
        let Node { prev, next, .. } = self.nodes[n];
        self.nodes[prev].next = n;
        if next != NIL {
            self.nodes[next].prev = n;
        }
    }

    /// Removes a call and its return (placing the operation).
    fn lift(&mut self, call: usize) {
        self.unlink(call);
        let ret = self.nodes[call].ret;
        if ret != NIL {
            self.unlink(ret);
        }
    }

    /// Undoes [`Events::lift`]; relinking in reverse order restores the list exactly.
    fn unlift(&mut self, call: usize) {
        let ret = self.nodes[call].ret;
        if ret != NIL {
            self.relink(ret);
        }
        self.relink(call);
    }
}

/// A fixed-size set of operation indices.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Bits(Box<[u64]>);

/// A [`Bits`] as the memo table stores it: leading all-ones words as a count,
/// trailing zero words dropped. Operations are indexed in invocation order, so a
/// linearized set is nearly always "everything before the frontier plus a few",
/// and the key shrinks from `ops / 8` bytes to a few words.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MemoKey {
    full_words: u32,
    rest: Box<[u64]>,
    state: State,
}

impl Bits {
    fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)].into_boxed_slice())
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
    fn memo_key(&self, state: State) -> MemoKey {
        let words = &self.0;
        let full = words.iter().take_while(|&&w| w == u64::MAX).count();
        let end = words.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
        MemoKey {
            full_words: u32::try_from(full).unwrap_or(u32::MAX),
            rest: words[full..end.max(full)].into(),
            state,
        }
    }
}

/// The dead writes, off the event list, in the order they are used.
///
/// Each group is used strictly in invocation order, so how many of each group
/// are used says exactly which ones: the pool's state is a short vector of counts.
struct DeadPool {
    /// Group 0 holds the dead puts; the others hold dead CASes by expected value.
    groups: Vec<Group>,
    /// Which group holds the dead CASes expecting a value.
    cas_group: HashMap<State, usize>,
}

/// Dead writes of one kind, by invocation time, and how many are used.
#[derive(Default)]
struct Group {
    ops: Vec<usize>,
    used: u32,
}

impl DeadPool {
    fn new(ops: &[SearchOp]) -> DeadPool {
        let mut pool = DeadPool {
            groups: vec![Group::default()],
            cas_group: HashMap::new(),
        };
        for (i, op) in ops.iter().enumerate().filter(|(_, o)| o.dead) {
            let g = match op.step {
                Step::Cas { expect, .. } => *pool.cas_group.entry(expect).or_insert_with(|| {
                    pool.groups.push(Group::default());
                    pool.groups.len() - 1
                }),
                _ => 0,
            };
            pool.groups[g].ops.push(i);
        }
        for g in &mut pool.groups {
            g.ops.sort_by_key(|&i| ops[i].invoke);
        }
        pool
    }

    /// The dead write to place right before a failed CAS while the register holds
    /// `state`, if one was invoked by `latest`: `(op, group)`.
    fn pick(&self, ops: &[SearchOp], state: State, latest: u64) -> Option<(usize, usize)> {
        let next = |g: usize| {
            let group = &self.groups[g];
            group
                .ops
                .get(group.used as usize)
                .copied()
                .filter(|&i| ops[i].invoke <= latest)
                .map(|i| (i, g))
        };
        self.cas_group
            .get(&state)
            .and_then(|&g| next(g))
            .or_else(|| next(0))
    }

    /// How many of each group are used.
    fn used(&self) -> Box<[u32]> {
        self.groups.iter().map(|g| g.used).collect()
    }
}

/// Configurations already explored. A configuration is the set of placed
/// operations (dead writes aside), the register, and the dead writes used; one
/// that used more dead writes than an explored one with the same set and register
/// is dominated (the other can do everything it can), so it is pruned too.
#[derive(Default)]
struct Memo {
    seen: HashMap<MemoKey, Vec<Box<[u32]>>>,
}

impl Memo {
    /// Records a configuration; false if it (or one that dominates it) was seen.
    fn insert(&mut self, key: MemoKey, used: Box<[u32]>) -> bool {
        let entry = self.seen.entry(key).or_default();
        let dominated = entry
            .iter()
            .any(|e| e.iter().zip(used.iter()).all(|(seen, now)| seen <= now));
        if !dominated {
            entry.push(used);
        }
        !dominated
    }
}

/// One placement on the search stack, with what undoing it needs.
#[derive(Debug, Clone, Copy)]
struct Placed {
    /// The call node lifted off the list.
    call: usize,
    /// The register before the placement.
    before: State,
    /// A dead write placed just before the operation, and its group.
    dead: Option<(usize, usize)>,
}

/// Searches for a linearization of `ops` starting from `init`, in at most `max_steps` steps.
pub(crate) fn search(ops: &[SearchOp], init: State, max_steps: u64) -> SearchResult {
    let mut events = Events::new(ops);
    let mut pool = DeadPool::new(ops);
    // Dead writes are tracked by the pool's counts, not in the set.
    let mut linearized = Bits::new(ops.len());
    let mut memo = Memo::default();
    let mut stack: Vec<Placed> = Vec::new();
    let mut state = init;
    let answered_total = ops.iter().filter(|o| o.complete.is_some()).count();
    let mut answered_left = answered_total;
    // The deepest dead end, for the explanation: (answered placed, prefix, state, blocked op).
    let mut deepest: Option<(usize, Vec<usize>, State, usize)> = None;
    let mut entry = events.first();
    let mut steps: u64 = 0;
    loop {
        if answered_left == 0 {
            return SearchResult {
                outcome: Outcome::Linearizable,
                steps,
            };
        }
        steps += 1;
        if steps > max_steps {
            return SearchResult {
                outcome: Outcome::BudgetExceeded,
                steps,
            };
        }
        let node = (entry != NIL).then(|| events.nodes[entry]);
        match node {
            Some(n) if n.is_call => {
                let op = &ops[n.op];
                // An unanswered operation is placed only where it has an effect.
                let direct = op
                    .step
                    .apply(state)
                    .filter(|&next| op.complete.is_some() || next != state)
                    .map(|next| (next, None));
                // A failed CAS that expects what the register holds needs a dead write first.
                let placement = direct.or_else(|| {
                    if !op.is_failed_cas() || state == DEAD {
                        return None;
                    }
                    let latest = events.next_return_time(entry);
                    pool.pick(ops, state, latest).map(|d| (DEAD, Some(d)))
                });
                if let Some((next, dead)) = placement {
                    linearized.set(n.op);
                    if let Some((_, g)) = dead {
                        pool.groups[g].used += 1;
                    }
                    if memo.insert(linearized.memo_key(next), pool.used()) {
                        stack.push(Placed {
                            call: entry,
                            before: state,
                            dead,
                        });
                        state = next;
                        if op.complete.is_some() {
                            answered_left -= 1;
                        }
                        events.lift(entry);
                        entry = events.first();
                        continue;
                    }
                    linearized.clear(n.op);
                    if let Some((_, g)) = dead {
                        pool.groups[g].used -= 1;
                    }
                }
                entry = n.next;
            }
            // A return of an unplaced operation (or, defensively, the list's end):
            // nothing placed so far admits it; undo the last choice.
            _ => {
                if let Some(n) = node {
                    let placed = answered_total - answered_left;
                    if deepest.as_ref().is_none_or(|d| placed > d.0) {
                        let prefix = stack
                            .iter()
                            .flat_map(|p| {
                                p.dead
                                    .map(|(d, _)| d)
                                    .into_iter()
                                    .chain([events.nodes[p.call].op])
                            })
                            .collect();
                        deepest = Some((placed, prefix, state, n.op));
                    }
                }
                let Some(p) = stack.pop() else {
                    let (_, prefix, state, blocked) =
                        deepest.unwrap_or((0, Vec::new(), init, usize::MAX));
                    return SearchResult {
                        outcome: Outcome::NotLinearizable {
                            prefix,
                            state,
                            blocked,
                        },
                        steps,
                    };
                };
                let op = events.nodes[p.call].op;
                linearized.clear(op);
                if let Some((_, g)) = p.dead {
                    pool.groups[g].used -= 1;
                }
                if ops[op].complete.is_some() {
                    answered_left += 1;
                }
                state = p.before;
                events.unlift(p.call);
                entry = events.nodes[p.call].next;
            }
        }
    }
}
