//! The nemesis: injects faults chosen from the run's seed, holds them, heals them, and logs
//! every action in the history. Never more than a minority of the voters is faulty at once
//! (one of three, at most two of five), so the cluster must stay available and must not lose
//! anything acknowledged. The learner is not a voter: its faults come on top of that budget,
//! and while it and a minority of voters are faulty the leader must still commit.
//!
//! Faults held and healed together (`held`): SIGKILL of the leader, a follower or the learner
//! (restarted after the hold), SIGSTOP/SIGCONT of them for longer than the election timeout,
//! the leader partitioned from everyone, a follower isolated, the leader's outgoing traffic
//! cut (one-way). A round ends once every node it touched has caught up with the leader.
//! Rounds of their own: a restart (SIGKILL then start at once), a membership
//! change (remove a follower, then a fresh node joins), a leadership transfer, and the storage
//! and isolated-write faults of [`storage`] and [`uncommitted`].

mod kind;
mod membership;
mod storage;
mod trust;
mod uncommitted;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;

pub use self::kind::{FaultKind, ALL};
use crate::cluster::{Cluster, Health, Member, Slot};
use crate::history::History;
use crate::write_gate::WriteGate;

/// Election timeout of the nodes is 0.5-1 s: a pause must outlast it.
const PAUSE_MS: std::ops::Range<u64> = 1_500..4_000;
/// How long other faults are held.
const HOLD_MS: std::ops::Range<u64> = 2_000..5_000;
/// Quiet time between faults.
const QUIET_MS: std::ops::Range<u64> = 1_000..3_000;
/// How long the cluster may take to have a leader again after a heal.
const LEADER_DEADLINE: Duration = Duration::from_secs(30);
/// How often the election watch polls the surviving nodes.
const ELECTION_POLL: Duration = Duration::from_millis(50);
/// Restart attempts of a killed node before the run counts it as an error.
const RESTART_TRIES: u32 = 3;
/// Chance that a held round also faults the learner (on top of the voter faults).
const LEARNER_TOO: f64 = 0.4;
/// How long an untouched leader may go without committing while a minority of voters (and
/// perhaps the learner) is faulty: the workloads write every few milliseconds.
const PROGRESS_DEADLINE: Duration = Duration::from_secs(15);
/// How often the leader's commit index is polled meanwhile.
const PROGRESS_POLL: Duration = Duration::from_millis(100);
/// How long a node back from a fault may take to apply what the leader had committed: a
/// round ends only once every node it touched has caught up.
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(60);
/// Past the run's end, how much longer a node is given to catch up before the round ends
/// anyway (the final convergence checks every node), so a run ends near its duration.
const CATCH_UP_AFTER_END: Duration = Duration::from_secs(10);
/// Rounds of their own that take long (a repair joins a node again, a takeover is awaited) are
/// not started when less than this is left of the run.
const LONG_ROUND_MARGIN: Duration = Duration::from_secs(15);

/// A fault in force, and how to heal it.
enum Active {
    Killed(Slot),
    Paused(Slot),
    Cut,
}

pub struct Nemesis {
    cluster: Arc<Cluster>,
    history: Arc<History>,
    /// The workloads' writes pass it: held while the nemesis makes its own write the next one.
    writes: Arc<WriteGate>,
    rng: StdRng,
    /// The kinds this run may inject.
    kinds: Vec<FaultKind>,
    /// Voters the run started with: the faulty budget is a minority of it.
    nodes: usize,
    /// Faults injected, by kind.
    pub counts: BTreeMap<FaultKind, u64>,
    /// When the leader was SIGKILLed, and which slot it was (for failover times).
    pub leader_kills: Vec<(u64, Slot)>,
    /// Time from each leader SIGKILL until another node said it leads, in ms.
    pub elections_ms: Vec<f64>,
    /// Availability problems: a restart or a join that did not work, no commit while a
    /// majority of voters was healthy.
    pub errors: Vec<String>,
    /// Safety problems seen during the run: damage a node did not detect, a torn log that
    /// stopped a node from starting, a write that its isolated leader could not commit but that
    /// came back.
    pub violations: Vec<String>,
    /// What the storage and isolated-write faults observed, for the summary.
    pub notes: Vec<String>,
    /// Writes that can never have been committed (sent to a leader cut off from everyone):
    /// absent on every node at the end, whatever outcome their clients saw.
    pub never_committed: Vec<crate::history::OpKind>,
    /// When faults were in force, in µs since the start (from injection to healed), so that
    /// follower staleness can be measured apart from them.
    pub windows: Vec<(u64, u64)>,
    /// When the run's faults end (set by [`Nemesis::run`]).
    until: Option<Instant>,
}

impl Nemesis {
    /// `nodes` is the number of voters; learner faults are left out when there is no learner.
    pub fn new(
        cluster: Arc<Cluster>,
        history: Arc<History>,
        writes: Arc<WriteGate>,
        rng: StdRng,
        nodes: usize,
        mut kinds: Vec<FaultKind>,
    ) -> Self {
        if !cluster.members().iter().any(|member| member.learner) {
            kinds.retain(|kind| !kind.targets_learner());
        }
        Nemesis {
            cluster,
            history,
            writes,
            rng,
            kinds,
            nodes,
            counts: BTreeMap::new(),
            leader_kills: Vec::new(),
            elections_ms: Vec::new(),
            errors: Vec::new(),
            violations: Vec::new(),
            notes: Vec::new(),
            never_committed: Vec::new(),
            windows: Vec::new(),
            until: None,
        }
    }

    fn sleep_ms(&mut self, range: std::ops::Range<u64>, until: Instant) {
        let wanted = Duration::from_millis(self.rng.random_range(range));
        let left = until.saturating_duration_since(Instant::now());
        std::thread::sleep(wanted.min(left.max(Duration::from_millis(1))));
    }

    /// Injects faults until `until`, then heals everything.
    pub fn run(&mut self, until: Instant) {
        self.until = Some(until);
        while Instant::now() < until {
            self.sleep_ms(QUIET_MS, until);
            if Instant::now() >= until {
                break;
            }
            let started_us = self.history.now_us();
            if let Err(error) = self.round() {
                self.history.event(format!("round skipped: {error:#}"), &[]);
            }
            self.windows.push((started_us, self.history.now_us()));
        }
    }

    /// One round: a fault of its own, or held faults (one voter, two on five voters, perhaps
    /// the learner too), hold, heal.
    fn round(&mut self) -> anyhow::Result<()> {
        let leader = self.cluster.leader().ok_or_else(|| anyhow!("no leader known"))?;
        let first = *self.kinds.choose(&mut self.rng).ok_or_else(|| anyhow!("no faults"))?;
        let left = self
            .until
            .map_or(Duration::MAX, |until| until.saturating_duration_since(Instant::now()));
        let long = matches!(
            first,
            FaultKind::Membership
                | FaultKind::CorruptState
                | FaultKind::UncommittedWrite
                | FaultKind::TornTail
                | FaultKind::RevokedPeer
        );
        if long && left < LONG_ROUND_MARGIN {
            bail!("{:.1} s left: too little for a round of {}", left.as_secs_f64(), first.label());
        }
        match first {
            FaultKind::Membership => return self.replace_follower(leader),
            FaultKind::Transfer => return self.transfer(leader),
            FaultKind::Restart => return self.restart_one(),
            FaultKind::TornTail => return self.torn_tail(leader),
            FaultKind::CorruptState => return self.corrupt_state(leader),
            FaultKind::UncommittedWrite => return self.uncommitted_write(leader),
            FaultKind::TokenReplay => return self.replay_token(leader),
            FaultKind::RevokedPeer => return self.revoked_peer(leader),
            _ => {}
        }
        let max_faulty = (self.nodes - 1) / 2;
        let voter_fault = |kind: &FaultKind| kind.held() && !kind.targets_learner();
        let mut kinds = vec![first];
        if max_faulty >= 2 && voter_fault(&first) && self.rng.random_bool(0.5) {
            let second: Vec<FaultKind> = self
                .kinds
                .iter()
                .copied()
                .filter(|k| voter_fault(k) && !(k.targets_leader() && first.targets_leader()))
                .collect();
            if let Some(second) = second.choose(&mut self.rng) {
                kinds.push(*second);
            }
        }
        if !first.targets_learner() && self.rng.random_bool(LEARNER_TOO) {
            let learner: Vec<FaultKind> =
                self.kinds.iter().copied().filter(|k| k.targets_learner()).collect();
            if let Some(extra) = learner.choose(&mut self.rng) {
                kinds.push(*extra);
            }
        }
        let mut used: Vec<Slot> = Vec::new();
        let mut active = Vec::new();
        let mut hold = HOLD_MS;
        let mut faulty_voters = 0;
        for kind in kinds {
            let target = if kind.targets_leader() {
                Some(leader)
            } else if kind.targets_learner() {
                self.learner()
            } else {
                self.follower(leader, &used)
            };
            let Some(target) = target else { continue };
            if !kind.targets_learner() {
                faulty_voters += 1;
            }
            // The promises under test hold only while a majority of voters is healthy.
            assert!(faulty_voters <= max_faulty, "{faulty_voters} faulty voters of {}", self.nodes);
            used.push(target);
            *self.counts.entry(kind).or_default() += 1;
            match self.inject(kind, target) {
                Ok(fault) => active.push(fault),
                Err(error) => {
                    self.history.event(format!("{} failed: {error:#}", kind.label()), &[target])
                }
            }
            if matches!(
                kind,
                FaultKind::PauseLeader | FaultKind::PauseFollower | FaultKind::PauseLearner
            ) {
                hold = PAUSE_MS;
            }
        }
        let hold_until = Instant::now() + Duration::from_millis(self.rng.random_range(hold));
        if used.first() == Some(&leader) && matches!(active.first(), Some(Active::Killed(_))) {
            self.watch_election(leader, hold_until);
        }
        if !used.contains(&leader) {
            self.expect_commits(leader, &used);
        }
        std::thread::sleep(hold_until.saturating_duration_since(Instant::now()));
        for fault in active {
            self.heal(fault);
        }
        if let Err(error) = self.cluster.wait_for_leader(LEADER_DEADLINE) {
            self.errors.push(format!("after healing {}: {error}", names(&used)));
        }
        for slot in used {
            self.caught_up(slot, "after its fault");
        }
        Ok(())
    }

    /// Waits until `slot` has applied what the leader committed; an availability problem if
    /// it does not within [`CATCH_UP_DEADLINE`].
    fn caught_up(&mut self, slot: Slot, after: &str) {
        let left = self
            .until
            .map_or(Duration::MAX, |until| until.saturating_duration_since(Instant::now()));
        let deadline = CATCH_UP_DEADLINE.min(left.saturating_add(CATCH_UP_AFTER_END));
        match self.cluster.wait_caught_up(slot, deadline) {
            Ok(applied) => self.history.event(format!("caught up {after}, applied {applied}"), &[slot]),
            Err(error) if deadline < CATCH_UP_DEADLINE => {
                self.history.event(format!("not caught up {after} when the run ended, left to the final convergence: {error:#}"), &[slot])
            }
            Err(error) => self.errors.push(format!("{after}: {error:#}")),
        }
    }

    /// With the leader untouched and only a minority of voters (and perhaps the learner)
    /// faulty, the leader's commit index must move within [`PROGRESS_DEADLINE`]: a learner
    /// counted for quorum, or a leader that needs the faulty nodes, would stall it.
    fn expect_commits(&mut self, leader: Slot, faulty: &[Slot]) {
        let commit_index = |cluster: &Cluster| {
            cluster.status(leader).ok().and_then(|status| status["commit_index"].as_u64())
        };
        let Some(first) = commit_index(&self.cluster) else { return };
        let started = Instant::now();
        while started.elapsed() < PROGRESS_DEADLINE {
            if commit_index(&self.cluster).is_some_and(|index| index > first) {
                return;
            }
            std::thread::sleep(PROGRESS_POLL);
        }
        self.errors.push(format!(
            "the leader n{} committed nothing for {PROGRESS_DEADLINE:?} (commit index stuck at {first}) while only {} were faulty",
            leader + 1,
            names(faulty)
        ));
    }

    /// After the leader's SIGKILL: polls the others until one says it leads (or the hold
    /// ends), and records how long that took.
    fn watch_election(&mut self, killed: Slot, hold_until: Instant) {
        let Some(&(killed_at, _)) = self.leader_kills.last() else { return };
        while Instant::now() < hold_until {
            for Member { slot, health, .. } in self.cluster.members() {
                if slot == killed || health != Health::Up {
                    continue;
                }
                if self.cluster.status(slot).is_ok_and(|status| status["role"] == "leader") {
                    let elected_ms =
                        (self.history.now_us().saturating_sub(killed_at)) as f64 / 1000.0;
                    self.history.event(
                        format!("new leader elected {elected_ms:.0} ms after the kill"),
                        &[slot],
                    );
                    self.elections_ms.push(elected_ms);
                    return;
                }
            }
            std::thread::sleep(ELECTION_POLL);
        }
        self.history.event("no new leader before the old one restarts", &[]);
    }

    /// A running voter other than the leader, not already used this round.
    fn follower(&mut self, leader: Slot, used: &[Slot]) -> Option<Slot> {
        let candidates: Vec<Slot> = self
            .cluster
            .voters()
            .into_iter()
            .filter(|member| {
                member.health == Health::Up && member.slot != leader && !used.contains(&member.slot)
            })
            .map(|member| member.slot)
            .collect();
        candidates.choose(&mut self.rng).copied()
    }

    /// The running learner, if there is one.
    fn learner(&self) -> Option<Slot> {
        self.cluster
            .members()
            .into_iter()
            .find(|member| member.learner && member.health == Health::Up)
            .map(|member| member.slot)
    }

    fn member(&self, slot: Slot) -> anyhow::Result<Member> {
        self.cluster
            .members()
            .into_iter()
            .find(|member| member.slot == slot)
            .ok_or_else(|| anyhow!("n{} is not a member", slot + 1))
    }

    fn others(&self, slot: Slot) -> Vec<Slot> {
        self.cluster
            .members()
            .into_iter()
            .map(|member| member.slot)
            .filter(|s| *s != slot)
            .collect()
    }

    fn inject(&mut self, kind: FaultKind, target: Slot) -> anyhow::Result<Active> {
        self.history.event(kind.label(), &[target]);
        Ok(match kind {
            FaultKind::KillLeader | FaultKind::KillFollower | FaultKind::KillLearner => {
                if kind == FaultKind::KillLeader {
                    self.leader_kills.push((self.history.now_us(), target));
                }
                self.cluster.kill(target);
                Active::Killed(target)
            }
            FaultKind::PauseLeader | FaultKind::PauseFollower | FaultKind::PauseLearner => {
                self.cluster.pause(target)?;
                Active::Paused(target)
            }
            FaultKind::PartitionLeader | FaultKind::IsolateFollower => {
                self.cluster.proxy.partition(&[target], &self.others(target));
                Active::Cut
            }
            FaultKind::OneWayLeader => {
                for other in self.others(target) {
                    self.cluster.proxy.block(target, other);
                }
                Active::Cut
            }
            FaultKind::Restart
            | FaultKind::Membership
            | FaultKind::Transfer
            | FaultKind::TornTail
            | FaultKind::CorruptState
            | FaultKind::UncommittedWrite
            | FaultKind::TokenReplay
            | FaultKind::RevokedPeer => bail!("{kind:?} is not held"),
        })
    }

    fn heal(&mut self, fault: Active) {
        match fault {
            Active::Killed(slot) => {
                self.history.event("restart", &[slot]);
                self.restart(slot);
            }
            Active::Paused(slot) => {
                self.history.event("resume (SIGCONT)", &[slot]);
                if let Err(error) = self.cluster.resume(slot) {
                    self.errors.push(format!("SIGCONT n{}: {error:#}", slot + 1));
                }
            }
            Active::Cut => {
                self.history.event("heal network", &[]);
                self.cluster.proxy.heal();
            }
        }
    }

    /// Starts a killed node, retrying; the last error if every try failed (also recorded as
    /// an availability problem).
    fn restart(&mut self, slot: Slot) -> Option<String> {
        let mut last = String::new();
        for _ in 0..RESTART_TRIES {
            match self.cluster.start(slot) {
                Ok(()) => return None,
                Err(error) => last = format!("{error:#}"),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        self.errors.push(format!("restart of n{} failed {RESTART_TRIES} times: {last}", slot + 1));
        Some(last)
    }

    /// SIGKILL any member and start it again at once.
    fn restart_one(&mut self) -> anyhow::Result<()> {
        let members: Vec<Slot> = self
            .cluster
            .members()
            .into_iter()
            .filter(|m| m.health == Health::Up)
            .map(|m| m.slot)
            .collect();
        let slot = *members.choose(&mut self.rng).ok_or_else(|| anyhow!("no member up"))?;
        *self.counts.entry(FaultKind::Restart).or_default() += 1;
        self.history.event(FaultKind::Restart.label(), &[slot]);
        self.cluster.kill(slot);
        if self.restart(slot).is_none() {
            self.caught_up(slot, "after its restart");
        }
        Ok(())
    }

    /// Ends every fault: heals the network, resumes paused nodes, starts killed ones.
    pub fn heal_all(&mut self) {
        self.cluster.proxy.heal();
        for member in self.cluster.members() {
            match member.health {
                Health::Paused => {
                    let _ = self.cluster.resume(member.slot);
                }
                Health::Killed => {
                    self.restart(member.slot);
                }
                Health::Up | Health::Removed => {}
            }
        }
    }
}

/// `n1, n3` for the log.
fn names(slots: &[Slot]) -> String {
    slots.iter().map(|slot| format!("n{}", slot + 1)).collect::<Vec<_>>().join(", ")
}
