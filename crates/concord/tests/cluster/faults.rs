//! The faults a round can inject. Each targets the current leader (or its
//! neighbours), because that is where a Raft implementation's bugs live:
//! stale leaders serving reads, lost acknowledged writes, split votes.
//! [`Cluster::heal_all`] undoes any of them.

use std::fmt;
use std::time::Duration;

use crate::cluster::Cluster;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Blackhole every link to and from the leader: it keeps running, and
    /// clients can still reach it, but it cannot reach a quorum.
    IsolateLeader,
    /// The leader plus the fewest followers that still leave the rest a
    /// majority, cut off from that majority with RSTs (for 3 nodes: the leader
    /// alone; for 5: the leader and one follower against three).
    SplitLeaderMinority,
    /// Asymmetric: the leader's outgoing links are cut, its incoming ones work.
    /// Followers stop hearing heartbeats and elect a new leader, whose vote
    /// requests do reach the old one.
    LeaderOutboundCut,
    /// Asymmetric, between followers: one follower cannot reach another (one
    /// direction only) while the leader still reaches both.
    FollowerOneWay,
    /// `kill -9` the leader; it is restarted on heal, on the same data dir.
    KillLeader,
    /// `kill -9` a follower.
    KillFollower,
    /// SIGSTOP the leader (a long GC pause); SIGCONT on heal. It wakes up
    /// believing it still leads.
    PauseLeader,
    /// 40 ms more latency on every link, each way.
    SlowLinks,
}

impl Fault {
    /// The CI rotation: every kind once.
    pub const ALL: [Fault; 8] = [
        Fault::IsolateLeader,
        Fault::SplitLeaderMinority,
        Fault::LeaderOutboundCut,
        Fault::KillLeader,
        Fault::PauseLeader,
        Fault::FollowerOneWay,
        Fault::KillFollower,
        Fault::SlowLinks,
    ];

    /// Injects the fault given the current leader; returns what was done.
    pub fn inject(self, c: &mut Cluster, leader: u64) -> String {
        let followers: Vec<u64> = c.ids().into_iter().filter(|&i| i != leader).collect();
        match self {
            Fault::IsolateLeader => {
                c.isolate(leader);
                format!("isolated leader {leader} (blackhole)")
            }
            Fault::SplitLeaderMinority => {
                let minority_size = c.ids().len() / 2;
                let mut minority = vec![leader];
                minority.extend(followers.iter().take(minority_size - 1));
                let majority: Vec<u64> = followers
                    .iter()
                    .copied()
                    .filter(|f| !minority.contains(f))
                    .collect();
                c.split(&minority, &majority, true);
                format!("split {minority:?} | {majority:?} (reset)")
            }
            Fault::LeaderOutboundCut => {
                for &f in &followers {
                    c.cut(leader, f);
                }
                format!("cut leader {leader}'s outgoing links to {followers:?}")
            }
            Fault::FollowerOneWay => {
                let (a, b) = (followers[0], followers[1]);
                c.cut(a, b);
                format!("cut {a} -> {b} only (leader {leader})")
            }
            Fault::KillLeader => {
                c.kill9(leader);
                format!("kill -9 leader {leader}")
            }
            Fault::KillFollower => {
                let f = followers[0];
                c.kill9(f);
                format!("kill -9 follower {f} (leader {leader})")
            }
            Fault::PauseLeader => {
                c.pause(leader);
                format!("SIGSTOP leader {leader}")
            }
            Fault::SlowLinks => {
                c.delay_all(Duration::from_millis(40));
                "40 ms delay on every link".to_owned()
            }
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
