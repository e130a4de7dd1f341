//! Membership faults and admin statements: replacing a follower by a fresh node, handing
//! leadership over, and the operator's repair of a broken node (remove it, wipe it, join it
//! afresh at the same address).

use std::time::Duration;

use anyhow::{anyhow, bail};
use ha_host::process::Client;
use ha_host::protocol::{Request, Statement};
use serde_json::json;

use super::{FaultKind, Nemesis, LEADER_DEADLINE};
use crate::cluster::Slot;

/// Deadline of an admin request (`ha_remove`, `ha_transfer`: 15 s each in the node).
const ADMIN_DEADLINE: Duration = Duration::from_secs(25);
/// Attempts at `ha_remove` during a repair (leadership may move meanwhile).
const REMOVE_TRIES: u32 = 3;

impl Nemesis {
    /// Runs one admin statement on `slot` (the leader).
    pub(super) fn admin(&self, slot: Slot, sql: &str, param: u64) -> anyhow::Result<()> {
        let endpoint = self
            .cluster
            .endpoints()
            .into_iter()
            .find(|e| e.slot == slot)
            .ok_or_else(|| anyhow!("n{} not running", slot + 1))?;
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
    pub(super) fn replace_follower(&mut self, leader: Slot) -> anyhow::Result<()> {
        if !self.cluster.has_free_slot() {
            bail!("no free node slot (ports) for a replacement node");
        }
        let follower = self.follower(leader, &[]).ok_or_else(|| anyhow!("no follower"))?;
        let raft_id =
            self.member(follower)?.raft_id.ok_or_else(|| anyhow!("follower id unknown"))?;
        *self.counts.entry(FaultKind::Membership).or_default() += 1;
        self.history.event(format!("ha_remove({raft_id})"), &[follower]);
        if let Err(error) = self.admin(leader, "SELECT ha_remove(?1)", raft_id) {
            self.history.event(format!("ha_remove failed: {error:#}"), &[follower]);
            return Ok(());
        }
        self.cluster.retire(follower);
        let peer = self.cluster.proxy_addr(leader).ok_or_else(|| anyhow!("leader slot unknown"))?;
        self.history.event("fresh node joins", &[]);
        match self.cluster.add_node(Some(peer), false) {
            Ok(slot) => {
                self.history.event("joined", &[slot]);
                self.caught_up(slot, "after joining");
            }
            Err(error) => self.errors.push(format!(
                "a fresh node failed to join after removing n{}: {error:#}",
                follower + 1
            )),
        }
        Ok(())
    }

    /// Hands leadership to a random follower.
    pub(super) fn transfer(&mut self, leader: Slot) -> anyhow::Result<()> {
        let follower = self.follower(leader, &[]).ok_or_else(|| anyhow!("no follower"))?;
        let raft_id =
            self.member(follower)?.raft_id.ok_or_else(|| anyhow!("follower id unknown"))?;
        *self.counts.entry(FaultKind::Transfer).or_default() += 1;
        self.history.event(format!("ha_transfer({raft_id})"), &[follower]);
        if let Err(error) = self.admin(leader, "SELECT ha_transfer(?1)", raft_id) {
            self.history.event(format!("ha_transfer failed: {error:#}"), &[follower]);
        }
        Ok(())
    }

    /// An operator's repair of a node that cannot run from its files (killed already):
    /// `ha_remove` of its id on the leader, its database and state directory deleted, then
    /// `ha_join` afresh at the same address through the leader. Failures are availability
    /// problems.
    pub(super) fn repair(&mut self, slot: Slot, raft_id: u64) {
        let mut removed = false;
        let mut last = String::new();
        for _ in 0..REMOVE_TRIES {
            let leader = match self.cluster.wait_for_leader(LEADER_DEADLINE) {
                Ok(leader) => leader,
                Err(error) => {
                    last = format!("{error:#}");
                    continue;
                }
            };
            self.history
                .event(format!("repair: ha_remove({raft_id}) on the leader"), &[slot, leader]);
            match self.admin(leader, "SELECT ha_remove(?1)", raft_id) {
                Ok(()) => {
                    removed = true;
                    break;
                }
                Err(error) => last = format!("{error:#}"),
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        if !removed {
            self.errors.push(format!(
                "repair of n{}: ha_remove({raft_id}) failed {REMOVE_TRIES} times: {last}",
                slot + 1
            ));
            return;
        }
        self.cluster.retire(slot);
        let peer = self.cluster.leader().and_then(|leader| self.cluster.proxy_addr(leader));
        let Some(peer) = peer else {
            self.errors.push(format!("repair of n{}: no leader to join through", slot + 1));
            return;
        };
        self.history.event("repair: files wiped, ha_join afresh", &[slot]);
        match self.cluster.rejoin(slot, peer) {
            Ok(()) => {
                let id = self.member(slot).ok().and_then(|member| member.raft_id);
                self.history.event(format!("repair: joined again as node {id:?}"), &[slot]);
            }
            Err(error) => self
                .errors
                .push(format!("repair of n{}: ha_join afresh failed: {error:#}", slot + 1)),
        }
    }
}
