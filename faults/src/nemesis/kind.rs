//! The kinds of fault the nemesis injects, as `--faults` names them, and what each may be
//! combined with.

/// One kind of fault. The `--faults` name is the kebab-case form (`kill-leader`, `torn-tail`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum FaultKind {
    KillLeader,
    KillFollower,
    PauseLeader,
    PauseFollower,
    PartitionLeader,
    IsolateFollower,
    OneWayLeader,
    Restart,
    Membership,
    Transfer,
    /// SIGKILL a node, tear its newest log segment's tail, start it again.
    TornTail,
    /// SIGKILL a follower, flip bytes in a checksummed state file; it must refuse to start.
    CorruptState,
    /// Isolate the leader, write on it, SIGKILL it: the write must never come back.
    UncommittedWrite,
    /// SIGKILL the learner (alone or on top of a voter fault).
    KillLearner,
    /// SIGSTOP the learner (alone or on top of a voter fault).
    PauseLearner,
    /// A fresh node joins with a token already used: it must be refused.
    TokenReplay,
    /// A removed node comes back with its revoked certificate: it must be refused.
    RevokedPeer,
}

impl FaultKind {
    pub fn label(self) -> &'static str {
        match self {
            FaultKind::KillLeader => "kill leader",
            FaultKind::KillFollower => "kill follower",
            FaultKind::PauseLeader => "pause leader",
            FaultKind::PauseFollower => "pause follower",
            FaultKind::PartitionLeader => "partition leader",
            FaultKind::IsolateFollower => "isolate follower",
            FaultKind::OneWayLeader => "cut leader's outgoing traffic",
            FaultKind::Restart => "restart node",
            FaultKind::Membership => "replace follower",
            FaultKind::Transfer => "transfer leadership",
            FaultKind::TornTail => "torn log tail",
            FaultKind::CorruptState => "corrupt state file",
            FaultKind::UncommittedWrite => "write on isolated leader",
            FaultKind::KillLearner => "kill learner",
            FaultKind::PauseLearner => "pause learner",
            FaultKind::TokenReplay => "replay a used join token",
            FaultKind::RevokedPeer => "connect with a revoked certificate",
        }
    }

    /// Faults held for a while and healed together, so that several may run at once (two on
    /// five voters, a learner fault on top of any). The others are whole rounds of their own.
    pub fn held(self) -> bool {
        !matches!(
            self,
            FaultKind::Membership
                | FaultKind::Transfer
                | FaultKind::Restart
                | FaultKind::TornTail
                | FaultKind::CorruptState
                | FaultKind::UncommittedWrite
                | FaultKind::TokenReplay
                | FaultKind::RevokedPeer
        )
    }

    pub fn targets_leader(self) -> bool {
        matches!(
            self,
            FaultKind::KillLeader
                | FaultKind::PauseLeader
                | FaultKind::PartitionLeader
                | FaultKind::OneWayLeader
        )
    }

    /// Faults of the learner: they never count against the budget of faulty voters.
    pub fn targets_learner(self) -> bool {
        matches!(self, FaultKind::KillLearner | FaultKind::PauseLearner)
    }
}

pub const ALL: [FaultKind; 17] = [
    FaultKind::KillLeader,
    FaultKind::KillFollower,
    FaultKind::PauseLeader,
    FaultKind::PauseFollower,
    FaultKind::PartitionLeader,
    FaultKind::IsolateFollower,
    FaultKind::OneWayLeader,
    FaultKind::Restart,
    FaultKind::Membership,
    FaultKind::Transfer,
    FaultKind::TornTail,
    FaultKind::CorruptState,
    FaultKind::UncommittedWrite,
    FaultKind::KillLearner,
    FaultKind::PauseLearner,
    FaultKind::TokenReplay,
    FaultKind::RevokedPeer,
];
