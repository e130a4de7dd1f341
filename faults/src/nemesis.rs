//! The nemesis: injects faults chosen from the run's seed, holds them, heals them, and logs
//! every action in the history. Never more than a minority of the members is faulty at once
//! (one of three, at most two of five), so the cluster must stay available and must not lose
//! anything acknowledged.
//!
//! Faults: SIGKILL of the leader or a follower (restarted after the hold), SIGSTOP/SIGCONT of
//! the leader or a follower for longer than the election timeout, the leader partitioned from
//! everyone, a follower isolated, the leader's outgoing traffic cut (one-way), a restart
//! (SIGKILL then start at once), a membership change (remove a follower, then a fresh node
//! joins), and a leadership transfer (`ha_transfer`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use ha_host::process::Client;
use ha_host::protocol::{Request, Statement};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::Rng;
use serde_json::json;

use crate::cluster::{Cluster, Health, Slot};
use crate::history::History;

/// Election timeout of the nodes is 0.5-1 s: a pause must outlast it.
const PAUSE_MS: std::ops::Range<u64> = 1_500..4_000;
/// How long other faults are held.
const HOLD_MS: std::ops::Range<u64> = 2_000..5_000;
/// Quiet time between faults.
const QUIET_MS: std::ops::Range<u64> = 1_000..3_000;
/// How long the cluster may take to have a leader again after a heal.
const LEADER_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline of an admin request (`ha_remove`, `ha_transfer`: 15 s each in the node).
const ADMIN_DEADLINE: Duration = Duration::from_secs(25);
/// How often the election watch polls the surviving nodes.
const ELECTION_POLL: Duration = Duration::from_millis(50);
/// Restart attempts of a killed node before the run counts it as an error.
const RESTART_TRIES: u32 = 3;

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
        }
    }

    /// Faults that may run alongside another one (five-node clusters).
    fn combinable(self) -> bool {
        !matches!(self, FaultKind::Membership | FaultKind::Transfer | FaultKind::Restart)
    }

    fn targets_leader(self) -> bool {
        matches!(self, FaultKind::KillLeader | FaultKind::PauseLeader | FaultKind::PartitionLeader | FaultKind::OneWayLeader)
    }
}

pub const ALL: [FaultKind; 10] = [
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
];

/// A fault in force, and how to heal it.
enum Active {
    Killed(Slot),
    Paused(Slot),
    Cut,
}

pub struct Nemesis {
    cluster: Arc<Cluster>,
    history: Arc<History>,
    rng: StdRng,
    /// The kinds this run may inject.
    kinds: Vec<FaultKind>,
    /// Members the run started with: the faulty budget is a minority of it.
    nodes: usize,
    /// Faults injected, by kind.
    pub counts: BTreeMap<FaultKind, u64>,
    /// When the leader was SIGKILLed, and which slot it was (for failover times).
    pub leader_kills: Vec<(u64, Slot)>,
    /// Time from each leader SIGKILL until another node said it leads, in ms.
    pub elections_ms: Vec<f64>,
    /// Actions that failed (a restart or a join that did not work): reported as errors.
    pub errors: Vec<String>,
}

impl Nemesis {
    pub fn new(cluster: Arc<Cluster>, history: Arc<History>, rng: StdRng, nodes: usize, kinds: Vec<FaultKind>) -> Self {
        Nemesis { cluster, history, rng, kinds, nodes, counts: BTreeMap::new(), leader_kills: Vec::new(), elections_ms: Vec::new(), errors: Vec::new() }
    }

    fn sleep_ms(&mut self, range: std::ops::Range<u64>, until: Instant) {
        let wanted = Duration::from_millis(self.rng.random_range(range));
        let left = until.saturating_duration_since(Instant::now());
        std::thread::sleep(wanted.min(left.max(Duration::from_millis(1))));
    }

    /// Injects faults until `until`, then heals everything.
    pub fn run(&mut self, until: Instant) {
        while Instant::now() < until {
            self.sleep_ms(QUIET_MS, until);
            if Instant::now() >= until {
                break;
            }
            if let Err(error) = self.round() {
                self.history.event(format!("round skipped: {error:#}"), &[]);
            }
        }
    }

    /// One round: choose one fault (or two on five nodes), hold, heal.
    fn round(&mut self) -> anyhow::Result<()> {
        let leader = self.cluster.leader().ok_or_else(|| anyhow!("no leader known"))?;
        let max_faulty = (self.nodes - 1) / 2;
        let first = *self.kinds.choose(&mut self.rng).ok_or_else(|| anyhow!("no faults"))?;
        let mut kinds = vec![first];
        if max_faulty >= 2 && first.combinable() && self.rng.random_bool(0.5) {
            let combinable: Vec<FaultKind> = self.kinds.iter().copied().filter(|k| k.combinable() && !(k.targets_leader() && first.targets_leader())).collect();
            if let Some(second) = combinable.choose(&mut self.rng) {
                kinds.push(*second);
            }
        }
        match first {
            FaultKind::Membership => return self.replace_follower(leader),
            FaultKind::Transfer => return self.transfer(leader),
            FaultKind::Restart => return self.restart_one(),
            _ => {}
        }
        let mut used: Vec<Slot> = Vec::new();
        let mut active = Vec::new();
        let mut hold = HOLD_MS;
        for kind in kinds {
            let target = if kind.targets_leader() { Some(leader) } else { self.follower(leader, &used) };
            let Some(target) = target else { continue };
            used.push(target);
            *self.counts.entry(kind).or_default() += 1;
            active.push(self.inject(kind, target)?);
            if matches!(kind, FaultKind::PauseLeader | FaultKind::PauseFollower) {
                hold = PAUSE_MS;
            }
        }
        let hold_until = Instant::now() + Duration::from_millis(self.rng.random_range(hold));
        if used.first() == Some(&leader) && matches!(active.first(), Some(Active::Killed(_))) {
            self.watch_election(leader, hold_until);
        }
        std::thread::sleep(hold_until.saturating_duration_since(Instant::now()));
        for fault in active {
            self.heal(fault);
        }
        if let Err(error) = self.cluster.wait_for_leader(LEADER_DEADLINE) {
            self.errors.push(format!("after healing {used:?}: {error}"));
        }
        Ok(())
    }

    /// After the leader's SIGKILL: polls the others until one says it leads (or the hold
    /// ends), and records how long that took.
    fn watch_election(&mut self, killed: Slot, hold_until: Instant) {
        let Some(&(killed_at, _)) = self.leader_kills.last() else { return };
        while Instant::now() < hold_until {
            for (slot, _, health) in self.cluster.members() {
                if slot == killed || health != Health::Up {
                    continue;
                }
                if self.cluster.status(slot).is_ok_and(|status| status["role"] == "leader") {
                    let elected_ms = (self.history.now_us().saturating_sub(killed_at)) as f64 / 1000.0;
                    self.history.event(format!("new leader elected {elected_ms:.0} ms after the kill"), &[slot]);
                    self.elections_ms.push(elected_ms);
                    return;
                }
            }
            std::thread::sleep(ELECTION_POLL);
        }
        self.history.event("no new leader before the old one restarts", &[]);
    }

    /// A running follower (healthy, not the leader, not already used this round).
    fn follower(&mut self, leader: Slot, used: &[Slot]) -> Option<Slot> {
        let candidates: Vec<Slot> = self
            .cluster
            .members()
            .into_iter()
            .filter(|(slot, _, health)| *health == Health::Up && *slot != leader && !used.contains(slot))
            .map(|(slot, _, _)| slot)
            .collect();
        candidates.choose(&mut self.rng).copied()
    }

    fn others(&self, slot: Slot) -> Vec<Slot> {
        self.cluster.members().into_iter().map(|(s, _, _)| s).filter(|s| *s != slot).collect()
    }

    fn inject(&mut self, kind: FaultKind, target: Slot) -> anyhow::Result<Active> {
        self.history.event(kind.label(), &[target]);
        Ok(match kind {
            FaultKind::KillLeader | FaultKind::KillFollower => {
                if kind == FaultKind::KillLeader {
                    self.leader_kills.push((self.history.now_us(), target));
                }
                self.cluster.kill(target);
                Active::Killed(target)
            }
            FaultKind::PauseLeader | FaultKind::PauseFollower => {
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
            FaultKind::Restart | FaultKind::Membership | FaultKind::Transfer => bail!("{kind:?} is not held"),
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

    fn restart(&mut self, slot: Slot) {
        let mut last = String::new();
        for _ in 0..RESTART_TRIES {
            match self.cluster.start(slot) {
                Ok(()) => return,
                Err(error) => last = format!("{error:#}"),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        self.errors.push(format!("restart of n{} failed {RESTART_TRIES} times: {last}", slot + 1));
    }

    /// SIGKILL any member and start it again at once.
    fn restart_one(&mut self) -> anyhow::Result<()> {
        let members: Vec<Slot> = self.cluster.members().into_iter().filter(|m| m.2 == Health::Up).map(|m| m.0).collect();
        let slot = *members.choose(&mut self.rng).ok_or_else(|| anyhow!("no member up"))?;
        *self.counts.entry(FaultKind::Restart).or_default() += 1;
        self.history.event(FaultKind::Restart.label(), &[slot]);
        self.cluster.kill(slot);
        self.restart(slot);
        Ok(())
    }

    /// Runs one admin statement on the leader.
    fn admin(&self, leader: Slot, sql: &str, param: u64) -> anyhow::Result<()> {
        let endpoint = self.cluster.endpoints().into_iter().find(|e| e.slot == leader).ok_or_else(|| anyhow!("leader not running"))?;
        let mut client = Client::connect("nemesis", endpoint.control_addr)?;
        let request = Request::Exec {
            conn: "nemesis".into(),
            statements: vec![Statement::with_params(sql, vec![json!(param)])],
            tx: false,
        };
        client.request(&request, ADMIN_DEADLINE)?;
        Ok(())
    }

    /// Removes a follower from the membership (`ha_remove` on the leader), retires its
    /// process and files, then joins a fresh node through the leader.
    fn replace_follower(&mut self, leader: Slot) -> anyhow::Result<()> {
        if !self.cluster.has_free_slot() {
            bail!("no free node slot (ports) for a replacement node");
        }
        let follower = self.follower(leader, &[]).ok_or_else(|| anyhow!("no follower"))?;
        let raft_id = self.cluster.members().iter().find(|m| m.0 == follower).and_then(|m| m.1).ok_or_else(|| anyhow!("follower id unknown"))?;
        *self.counts.entry(FaultKind::Membership).or_default() += 1;
        self.history.event(format!("ha_remove({raft_id})"), &[follower]);
        if let Err(error) = self.admin(leader, "SELECT ha_remove(?1)", raft_id) {
            self.history.event(format!("ha_remove failed: {error:#}"), &[follower]);
            return Ok(());
        }
        self.cluster.retire(follower);
        let peer = self.cluster.proxy_addr(leader).ok_or_else(|| anyhow!("leader slot unknown"))?;
        self.history.event("fresh node joins", &[]);
        match self.cluster.add_node(Some(peer)) {
            Ok(slot) => self.history.event("joined", &[slot]),
            Err(error) => self.errors.push(format!("a fresh node failed to join after removing n{}: {error:#}", follower + 1)),
        }
        Ok(())
    }

    /// Hands leadership to a random follower.
    fn transfer(&mut self, leader: Slot) -> anyhow::Result<()> {
        let follower = self.follower(leader, &[]).ok_or_else(|| anyhow!("no follower"))?;
        let raft_id = self.cluster.members().iter().find(|m| m.0 == follower).and_then(|m| m.1).ok_or_else(|| anyhow!("follower id unknown"))?;
        *self.counts.entry(FaultKind::Transfer).or_default() += 1;
        self.history.event(format!("ha_transfer({raft_id})"), &[follower]);
        if let Err(error) = self.admin(leader, "SELECT ha_transfer(?1)", raft_id) {
            self.history.event(format!("ha_transfer failed: {error:#}"), &[follower]);
        }
        Ok(())
    }

    /// Ends every fault: heals the network, resumes paused nodes, starts killed ones.
    pub fn heal_all(&mut self) {
        self.cluster.proxy.heal();
        for (slot, _, health) in self.cluster.members() {
            match health {
                Health::Paused => {
                    let _ = self.cluster.resume(slot);
                }
                Health::Killed => self.restart(slot),
                Health::Up | Health::Removed => {}
            }
        }
    }
}
