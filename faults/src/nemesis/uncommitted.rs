//! The isolated leader's writes: frames SQLite wrote for transactions that Raft never
//! committed must never come back.
//!
//! The leader is cut off from every other member, and the nemesis sends it a unique insert at
//! once, as the next transaction it takes (the workloads' writes are held until none is in
//! flight). In its first second cut off the leader still takes writes: SQLite writes the
//! frames to its WAL and the node proposes the entry, which no one else receives; the workloads
//! write there too. Once another voter leads a later term and has committed at least as
//! far as the old leader's log reaches, no entry the old leader proposed after the cut can ever
//! be committed: a majority holds different entries at those indexes, of a later term. Then
//! the old leader is SIGKILLed (its writes still waiting, or failed), the network healed, and
//! it restarts and catches up. Every unique insert, large transaction and register write sent
//! to it between the cut and the kill is listed in [`Nemesis::never_committed`], whatever
//! outcome its client saw: the checks hold that none of them is on any node at the end.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use ha_host::process::Client;
use ha_host::protocol::Request;
use rand::Rng;

use super::{FaultKind, Nemesis};
use crate::cluster::{suffixed, Endpoint, Slot};
use crate::history::{History, Op, OpKind, Outcome};
use crate::workload::{classify, unique, OP_DEADLINE};

/// The old leader takes writes for at most an election timeout (1 s) after its last
/// acknowledgement from a majority; after this long cut off it proposes nothing more, so its
/// last log index no longer moves.
const LEASE_OVER: Duration = Duration::from_millis(1_500);
/// How long the majority may take to elect a leader and commit past the old leader's log.
const TAKEOVER_DEADLINE: Duration = Duration::from_secs(20);
/// How long in-flight writes may take to finish before the nemesis's own (a large transaction
/// can take seconds in a debug build).
const QUIESCE_DEADLINE: Duration = Duration::from_secs(5);
/// How long the nemesis's write has to take the WAL write lock before the workloads resume.
const WRITE_FIRST: Duration = Duration::from_millis(200);
/// Extra time before the SIGKILL, so it lands at different points of the write's wait.
const KILL_DELAY_MS: std::ops::Range<u64> = 0..1_000;

/// A leader cut off from every member, with the nemesis's write sent to it.
pub(super) struct Isolated {
    /// Records the write and returns its outcome.
    pub(super) writer: JoinHandle<Outcome>,
    /// The unique key it inserts.
    pub(super) key: i64,
    /// When the cut was in place: writes sent from then on reach no one else.
    pub(super) cut_at: Instant,
    pub(super) cut_us: u64,
}

impl Nemesis {
    pub(super) fn uncommitted_write(&mut self, leader: Slot) -> anyhow::Result<()> {
        let endpoint = self
            .cluster
            .endpoints()
            .into_iter()
            .find(|e| e.slot == leader)
            .ok_or_else(|| anyhow!("leader not running"))?;
        let term = self.cluster.status(leader)?["term"]
            .as_u64()
            .ok_or_else(|| anyhow!("leader has no term"))?;
        *self.counts.entry(FaultKind::UncommittedWrite).or_default() += 1;
        self.history.event(
            format!("{}: cut it off from every member", FaultKind::UncommittedWrite.label()),
            &[leader],
        );
        let Isolated { writer, key, cut_at, cut_us } = self.isolate_and_write(leader, endpoint)?;
        let takeover = self.wait_takeover(leader, term, cut_at);
        match &takeover {
            Ok((slot, index)) => self.history.event(
                format!(
                    "n{} leads a later term and committed {index}, past the old leader's log",
                    slot + 1
                ),
                &[*slot],
            ),
            Err(error) => {
                self.errors.push(format!("while n{} was isolated: {error:#}", leader + 1))
            }
        }
        std::thread::sleep(Duration::from_millis(self.rng.random_range(KILL_DELAY_MS)));
        self.history.event("SIGKILL the isolated leader", &[leader]);
        self.cluster.kill(leader);
        let kill_us = self.history.now_us();
        // What SQLite had written to the WAL when the process died, before any restart.
        let wal = self
            .cluster
            .db_path(leader)
            .and_then(|db| std::fs::read(suffixed(&db, "-wal")).ok())
            .unwrap_or_default();
        let outcome = writer.join().map_err(|_| anyhow!("the isolated write's thread panicked"))?;
        let own_in_wal = holds(&wal, unique::tag(key).as_bytes());
        self.history.event(format!("the isolated write of key {key}: {outcome:?}; its frames in the WAL at the kill: {own_in_wal}"), &[leader]);
        self.cluster.proxy.heal();
        self.history.event("heal network; restart the old leader", &[leader]);
        if self.restart(leader).is_some() {
            return Ok(());
        }
        self.caught_up(leader, "after its isolated write");
        if takeover.is_ok() {
            let orphans = self.sent_to(leader, cut_us, kill_us);
            let in_wal = orphans.iter().filter(|kind| matches!(kind, OpKind::Insert { key } if holds(&wal, unique::tag(*key).as_bytes()))).count();
            let inserts =
                orphans.iter().filter(|kind| matches!(kind, OpKind::Insert { .. })).count();
            self.notes.push(format!(
                "isolated leader n{}: {} write(s) sent to it while cut off, none may be committed; {in_wal} of its {inserts} unique inserts had their frames in its WAL at the kill",
                leader + 1,
                orphans.len()
            ));
            self.never_committed.extend(orphans);
        }
        Ok(())
    }

    /// Cuts `leader` off from every member and sends it a unique insert, which is the next
    /// transaction it takes: the workloads' writes are held until none is in flight (a node
    /// commits one transaction at a time, holding the WAL write lock), so the insert takes the
    /// lock at once, SQLite writes its frames and the node proposes the entry, to no one. Then
    /// the workloads write again (to the isolated leader too, until they find the new one).
    pub(super) fn isolate_and_write(
        &mut self,
        leader: Slot,
        endpoint: Endpoint,
    ) -> anyhow::Result<Isolated> {
        let key = i64::try_from(self.history.next_id())?;
        if !self.writes.hold(QUIESCE_DEADLINE) {
            self.history.event(format!("writes still in flight after {QUIESCE_DEADLINE:?}: the insert may wait behind one"), &[leader]);
        }
        self.cluster.proxy.partition(&[leader], &self.others(leader));
        // Only now: a write invoked before the cut may have been committed.
        let (cut_at, cut_us) = (Instant::now(), self.history.now_us());
        let history = Arc::clone(&self.history);
        let spawned = std::thread::Builder::new()
            .name("isolated-write".into())
            .spawn(move || write_and_record(&history, &endpoint, key));
        std::thread::sleep(WRITE_FIRST);
        self.writes.release();
        match spawned {
            Ok(writer) => Ok(Isolated { writer, key, cut_at, cut_us }),
            Err(error) => {
                self.cluster.proxy.heal();
                Err(error.into())
            }
        }
    }

    /// Waits until a voter other than `old` leads a term after `term` and has committed at
    /// least up to `old`'s last log index, read once `old` can no longer propose.
    fn wait_takeover(&self, old: Slot, term: u64, cut_at: Instant) -> anyhow::Result<(Slot, u64)> {
        let mut last = String::from("nothing yet");
        while cut_at.elapsed() < TAKEOVER_DEADLINE {
            std::thread::sleep(Duration::from_millis(100));
            if cut_at.elapsed() < LEASE_OVER {
                continue;
            }
            let Some(old_last) =
                self.cluster.status(old).ok().and_then(|status| status["last_log_index"].as_u64())
            else {
                last = format!("n{} did not answer", old + 1);
                continue;
            };
            for voter in self.cluster.voters() {
                if voter.slot == old {
                    continue;
                }
                let Ok(status) = self.cluster.status(voter.slot) else { continue };
                let (role, new_term, commit) = (
                    status["role"].clone(),
                    status["term"].as_u64().unwrap_or(0),
                    status["commit_index"].as_u64().unwrap_or(0),
                );
                if role == "leader" && new_term > term && commit >= old_last {
                    return Ok((voter.slot, commit));
                }
                last = format!("n{}: {role} term {new_term} commit {commit}; old leader's last log index {old_last}", voter.slot + 1);
            }
        }
        anyhow::bail!("no other voter took over within {TAKEOVER_DEADLINE:?}: {last}")
    }

    /// The checkable writes sent to `slot` from `from_us` to `to_us`: unique inserts, large
    /// transactions and register writes.
    fn sent_to(&self, slot: Slot, from_us: u64, to_us: u64) -> Vec<OpKind> {
        self.history
            .ops()
            .into_iter()
            .filter(|op| op.node == slot && op.invoke_us >= from_us && op.invoke_us <= to_us)
            .map(|op| op.kind)
            .filter(|kind| {
                matches!(
                    kind,
                    OpKind::Insert { .. } | OpKind::Large { .. } | OpKind::RegisterWrite { .. }
                )
            })
            .collect()
    }
}

/// Inserts unique key `key` on the isolated leader and records the operation.
fn write_and_record(history: &History, endpoint: &Endpoint, key: i64) -> Outcome {
    let invoke_us = history.now_us();
    let request = Request::Exec {
        conn: "nemesis-write".into(),
        statements: vec![unique::insert(key)],
        tx: false,
    };
    let answer = Client::connect("nemesis", endpoint.control_addr)
        .and_then(|mut client| client.request(&request, OP_DEADLINE));
    let (outcome, message) = match answer {
        Ok(_) => (Outcome::Ok, None),
        Err(error) => (classify(&error), Some(error.to_string())),
    };
    history.record(Op {
        id: u64::try_from(key).unwrap_or_default(),
        worker: "nemesis".into(),
        node: endpoint.slot,
        invoke_us,
        complete_us: history.now_us(),
        kind: OpKind::Insert { key },
        outcome: outcome.clone(),
        message,
    });
    outcome
}

/// Whether a WAL's bytes hold `needle` (an insert's tag, inside a page image).
fn holds(wal: &[u8], needle: &[u8]) -> bool {
    wal.windows(needle.len()).any(|window| window == needle)
}
