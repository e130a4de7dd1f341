//! Storage faults: what a crash or a bad disk leaves in a node's state directory.
//!
//! - Torn tail: SIGKILL a node and leave its newest log segment as a crash in the middle of an
//!   append would ([`damage::tear_tail`]): a record being appended cut short, or random bytes
//!   after the last record; hold; start it again. It must start (the log store cuts a torn tail
//!   by its checksums) and catch up with the leader. One time in three the target is the
//!   leader, cut off from everyone first and sent a write, so that its last entry likely
//!   reaches no one: when it did not, its last record may be cut too (a real crash tears only an append that was never synced, and a
//!   follower's last record was synced and acknowledged, so it is never cut).
//! - Corrupt state: SIGKILL a follower or the learner and flip bytes in a record in the middle
//!   of its log or in a checksummed small file ([`damage::corrupt`]). It must refuse to start
//!   with an error that names the corruption (or stop at once, saying so), so it never serves
//!   what the damage made of its data. Then an operator's repair: remove it from the cluster,
//!   wipe its files, join it afresh; it must catch up.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use rand::seq::IndexedRandom;
use rand::Rng;

use super::{FaultKind, Nemesis, HOLD_MS};
use crate::cluster::{Health, Slot};
use crate::damage::{self, Damage};

/// How long the isolated leader keeps taking writes after the nemesis's own before its SIGKILL:
/// within its last second of leadership, so that it appends entries no one else receives.
const ORPHANS_MS: std::ops::Range<u64> = 100..600;
/// How long a node that started despite damage is watched for stopping by itself.
const STOP_WATCH: Duration = Duration::from_secs(5);

impl Nemesis {
    /// A running member other than the leader: a follower or the learner.
    fn storage_target(&mut self, leader: Slot) -> Option<Slot> {
        let candidates: Vec<Slot> = self
            .cluster
            .members()
            .into_iter()
            .filter(|member| member.health == Health::Up && member.slot != leader)
            .map(|member| member.slot)
            .collect();
        candidates.choose(&mut self.rng).copied()
    }

    pub(super) fn torn_tail(&mut self, leader: Slot) -> anyhow::Result<()> {
        let isolate = self.rng.random_bool(1.0 / 3.0);
        let target = if isolate { Some(leader) } else { self.storage_target(leader) };
        let target = target.ok_or_else(|| anyhow!("no node to tear"))?;
        let state_dir =
            self.cluster.state_dir(target).ok_or_else(|| anyhow!("no state directory"))?;
        *self.counts.entry(FaultKind::TornTail).or_default() += 1;
        let mut may_cut_last = false;
        let mut writer = None;
        if isolate {
            self.history.event(
                format!(
                    "{}: cut the leader off from every member, write to it",
                    FaultKind::TornTail.label()
                ),
                &[target],
            );
            // A write of our own, so that the leader appends an entry no one receives.
            let endpoint = self
                .cluster
                .endpoints()
                .into_iter()
                .find(|e| e.slot == target)
                .ok_or_else(|| anyhow!("leader not running"))?;
            writer = Some(self.isolate_and_write(target, endpoint)?.writer);
            std::thread::sleep(Duration::from_millis(self.rng.random_range(ORPHANS_MS)));
            may_cut_last = self.has_orphans(target);
            let orphans = if may_cut_last {
                "its last entry reached no one: its last record may be cut"
            } else {
                "every entry it has reached another node"
            };
            self.history.event(orphans, &[target]);
        }
        self.history.event(format!("{}: SIGKILL", FaultKind::TornTail.label()), &[target]);
        self.cluster.kill(target);
        if let Some(writer) = writer {
            writer.join().map_err(|_| anyhow!("the isolated write's thread panicked"))?;
        }
        let torn = match damage::tear_tail(&state_dir, &mut self.rng, may_cut_last) {
            Ok(damage) => describe(&damage, &state_dir),
            Err(error) => format!("nothing torn: {error:#}"),
        };
        self.history.event(format!("torn: {torn}"), &[target]);
        std::thread::sleep(Duration::from_millis(self.rng.random_range(HOLD_MS)));
        if isolate {
            self.history.event("heal network", &[]);
            self.cluster.proxy.heal();
        }
        self.history.event("restart after the torn tail", &[target]);
        if let Some(error) = self.restart(target) {
            self.violations.push(format!(
                "n{} did not start after a torn log tail ({torn}): {error}",
                target + 1
            ));
            return Ok(());
        }
        self.caught_up(target, &format!("after a torn tail ({torn})"));
        Ok(())
    }

    /// Whether the isolated `leader`'s log reaches past every other member's: then its last
    /// entry was received by no one (the cut was in place before it was sent), so no one
    /// acknowledged it and it was never committed nor applied.
    fn has_orphans(&self, leader: Slot) -> bool {
        let last_log_index = |slot: Slot| {
            self.cluster.status(slot).ok().and_then(|status| status["last_log_index"].as_u64())
        };
        let Some(own) = last_log_index(leader) else { return false };
        self.others(leader)
            .into_iter()
            .all(|other| last_log_index(other).is_some_and(|index| index < own))
    }

    pub(super) fn corrupt_state(&mut self, leader: Slot) -> anyhow::Result<()> {
        let target = self.storage_target(leader).ok_or_else(|| anyhow!("no follower to damage"))?;
        let raft_id = self
            .member(target)?
            .raft_id
            .ok_or_else(|| anyhow!("n{} has no node id yet", target + 1))?;
        let state_dir =
            self.cluster.state_dir(target).ok_or_else(|| anyhow!("no state directory"))?;
        *self.counts.entry(FaultKind::CorruptState).or_default() += 1;
        self.history.event(format!("{}: SIGKILL", FaultKind::CorruptState.label()), &[target]);
        self.cluster.kill(target);
        let damage = match damage::corrupt(&state_dir, &mut self.rng) {
            Ok(damage) => damage,
            Err(error) => {
                self.history.event(format!("nothing damaged ({error:#}): restart"), &[target]);
                self.restart(target);
                return Ok(());
            }
        };
        let what = describe(&damage, &state_dir);
        self.history.event(format!("damaged: {what}"), &[target]);
        let name = format!("n{}", target + 1);
        match self.cluster.start(target) {
            Err(error) => {
                let message = format!("{error:#}");
                let reason = message.lines().next().unwrap_or_default().to_owned();
                if names_corruption(&message) {
                    self.history.event(format!("refused to start: {reason}"), &[target]);
                    self.notes.push(format!("{name} refused to start after {what}: {reason}"));
                } else {
                    self.violations.push(format!("{name} refused to start after {what}, but its error does not say the state is corrupt: {message}"));
                }
            }
            Ok(()) => {
                match self.stopped_reason(target) {
                    Some(reason) if names_corruption(&reason) => {
                        self.history.event(format!("started, then stopped: {reason}"), &[target]);
                        self.notes.push(format!("{name} stopped at once after {what}: {reason}"));
                    }
                    Some(reason) => self.violations.push(format!("{name} stopped after {what}, but its reason does not say the state is corrupt: {reason}")),
                    None => self.violations.push(format!("{name} started and served after {what}: the damage went undetected")),
                }
                self.cluster.kill(target);
            }
        }
        self.repair(target, raft_id);
        if self.member(target).is_ok_and(|member| member.health == Health::Up) {
            self.caught_up(target, &format!("after repairing {name}"));
        }
        Ok(())
    }

    /// Watches a node for [`STOP_WATCH`]: why it stopped, if it does.
    fn stopped_reason(&self, slot: Slot) -> Option<String> {
        let started = Instant::now();
        while started.elapsed() < STOP_WATCH {
            if let Ok(status) = self.cluster.status(slot) {
                if status["role"] == "stopped" {
                    return Some(
                        status["stopped_reason"].as_str().unwrap_or("no reason given").to_owned(),
                    );
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

/// Whether an error tells the operator the node's files are corrupt.
fn names_corruption(message: &str) -> bool {
    message.to_lowercase().contains("corrupt")
}

/// `n2.db-ha/log/0000000000000001.seg: cut the last record ...`
fn describe(damage: &Damage, state_dir: &Path) -> String {
    let base = state_dir.parent().unwrap_or(state_dir);
    let file = damage.file.strip_prefix(base).unwrap_or(&damage.file);
    format!("{}: {}", file.display(), damage.description)
}
