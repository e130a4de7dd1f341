//! Attacks on the cluster's trust, from outside and by a former member:
//!
//! - **Token replay.** A fresh node tries to join with a token a member already joined with.
//!   It must be refused ("no uses left", or "expired"), and the membership must not change.
//! - **Revoked certificate.** A removed node is started again from its files (kept by
//!   `Cluster::retire`), at its old address, with its old certificate. The members must refuse
//!   it: it must report `removed` within seconds, never become a follower again, and the
//!   membership and leader must not change.
//!
//! A refused attack is what must happen; an admitted one is a safety violation.

use std::time::{Duration, Instant};

use anyhow::anyhow;
use serde_json::Value;

use super::{FaultKind, Nemesis};
use crate::cluster::Slot;

/// How long a resurrected removed node may take to learn that it was removed (its election
/// timeout, then one pre-vote answered "revoked").
const REMOVED_DEADLINE: Duration = Duration::from_secs(15);

/// Pause between polls of the resurrected node's status.
const POLL: Duration = Duration::from_millis(200);

impl Nemesis {
    /// The member ids the leader lists, sorted.
    fn member_ids(&self, leader: Slot) -> anyhow::Result<Vec<u64>> {
        let status = self.cluster.status(leader)?;
        let mut ids: Vec<u64> = status["members"]
            .as_array()
            .ok_or_else(|| anyhow!("no members in the leader's status"))?
            .iter()
            .filter_map(|member| member["id"].as_u64())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// A fresh node replays a used join token; it must be refused and nothing may change.
    pub(super) fn replay_token(&mut self, leader: Slot) -> anyhow::Result<()> {
        let token = self
            .cluster
            .used_token()
            .ok_or_else(|| anyhow!("no node has joined with a token yet"))?;
        let peer = self.cluster.proxy_addr(leader).ok_or_else(|| anyhow!("leader slot unknown"))?;
        let before = self.member_ids(leader)?;
        *self.counts.entry(FaultKind::TokenReplay).or_default() += 1;
        self.history.event("a fresh node replays a used join token", &[leader]);
        match self.cluster.try_join(peer, &token)? {
            Ok(mut intruder) => {
                intruder.kill();
                self.violations.push(format!(
                    "a replayed join token admitted a node (members before: {before:?})"
                ));
            }
            Err(error) => {
                let message = format!("{error:#}");
                if message.contains("no uses left") || message.contains("expired") {
                    self.history.event(format!("replay refused: {message}"), &[]);
                } else {
                    self.errors.push(format!(
                        "a replayed token was refused, but not as used up or expired: {message}"
                    ));
                }
            }
        }
        let after = self.member_ids(leader)?;
        if after != before {
            self.violations.push(format!(
                "a refused token replay changed the membership: {before:?} -> {after:?}"
            ));
        }
        Ok(())
    }

    /// A removed node comes back with its revoked certificate; the members must refuse it.
    /// Removes a follower first (as `replace follower` does) if no removed node's files are kept.
    pub(super) fn revoked_peer(&mut self, leader: Slot) -> anyhow::Result<()> {
        let slot = match self.cluster.removed_with_files() {
            Some(slot) => slot,
            None => {
                self.replace_follower(leader)?;
                self.cluster
                    .removed_with_files()
                    .ok_or_else(|| anyhow!("no removed node's files to bring back"))?
            }
        };
        let leader = self.cluster.leader().ok_or_else(|| anyhow!("no leader known"))?;
        let before = self.member_ids(leader)?;
        *self.counts.entry(FaultKind::RevokedPeer).or_default() += 1;
        self.history.event("a removed node comes back with its revoked certificate", &[slot]);
        let mut process = match self.cluster.resurrect_removed(slot) {
            Ok(process) => process,
            Err(error) => {
                self.cluster.drop_removed_files(slot);
                self.errors.push(format!(
                    "the removed n{} did not start from its files: {error:#}",
                    slot + 1
                ));
                return Ok(());
            }
        };
        // It starts as it stopped (a follower that remembers its old leader), so what counts
        // is whether the members let it in: it must learn it was removed, and must never
        // apply an entry committed after its removal.
        let until = Instant::now() + REMOVED_DEADLINE;
        let mut last = Value::Null;
        let mut applied_at_start = None;
        let verdict = loop {
            if let Ok(status) = process.status() {
                last = status;
            }
            let applied = last["applied_index"].as_u64();
            let applied_at_start = *applied_at_start.get_or_insert(applied);
            match last["role"].as_str() {
                Some("removed") => break Ok(()),
                _ if applied > applied_at_start => {
                    break Err(format!("rejoined: it applied entries up to {applied:?} (from {applied_at_start:?}) with its revoked certificate"))
                }
                _ if Instant::now() >= until => break Err(format!("still {} after {REMOVED_DEADLINE:?}", last["role"])),
                _ => std::thread::sleep(POLL),
            }
        };
        process.kill();
        self.cluster.drop_removed_files(slot);
        match verdict {
            Ok(()) => self.history.event("the members refused it: it reports 'removed'", &[slot]),
            Err(why) if why.starts_with("rejoined") => {
                self.violations.push(format!("removed n{}: {why}", slot + 1))
            }
            Err(why) => self
                .errors
                .push(format!("removed n{} never learnt it was removed: {why}", slot + 1)),
        }
        let leader = self.cluster.leader().ok_or_else(|| anyhow!("no leader known"))?;
        let after = self.member_ids(leader)?;
        if after != before {
            self.violations.push(format!(
                "a removed node coming back changed the membership: {before:?} -> {after:?}"
            ));
        }
        Ok(())
    }
}
