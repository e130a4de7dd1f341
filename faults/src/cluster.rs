//! The cluster under test: one `ha-host` process per node slot, each binding its real QUIC port
//! and advertising a port of the [`Proxy`], so every datagram between members passes the proxy.
//!
//! A slot is a place for one node: its ports, its database and its process. Its index is the
//! identity the proxy cuts by; the Raft node id is learnt from the host's startup result (a
//! replacement node gets a new slot and a new Raft id). Slots are never reused.
//!
//! A slot is a voter or a learner (`ha_join(..., '{"role":"learner"}')`): learners receive
//! every write and serve reads but never count for quorum, so the nemesis's budget of faulty
//! members counts voters only.
//!
//! Invariants: a slot's process handle is `Some` exactly while its process may be running;
//! every process is SIGKILLed when the cluster drops (and exits by itself if we die: its stdin
//! closes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use ha_host::process::{Client, HostCommand, HostProcess, HostSpec};
use ha_host::protocol::{Request, Statement};
use serde_json::Value;

use crate::proxy::Proxy;
use crate::NodeId;

/// Slot index: the proxy's identity of a node.
pub type Slot = u64;

/// How long a status request may take before the node counts as not answering.
pub const STATUS_DEADLINE: Duration = Duration::from_secs(2);
/// Pause between polls while waiting for the cluster.
const POLL: Duration = Duration::from_millis(100);
/// Deadline of `ha_token` on a member (forwarded to the leader and committed through Raft).
const TOKEN_DEADLINE: Duration = Duration::from_secs(20);

/// The health the nemesis gave a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Up,
    Killed,
    Paused,
    /// Removed from the membership; its process is gone for good.
    Removed,
}

/// One node slot.
pub struct SlotState {
    pub slot: Slot,
    pub raft_id: Option<NodeId>,
    /// Joined as a learner (never a voter).
    pub learner: bool,
    pub spec: HostSpec,
    /// The address the node binds; the others reach it through `proxy_addr`.
    pub real_addr: SocketAddr,
    pub proxy_addr: SocketAddr,
    pub health: Health,
    pub process: Option<HostProcess>,
    /// Where a worker reaches the host (changes at every restart).
    pub control_addr: Option<SocketAddr>,
}

/// A member as the nemesis and the checks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub slot: Slot,
    pub raft_id: Option<NodeId>,
    pub health: Health,
    pub learner: bool,
}

/// A slot as the workloads see it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub slot: Slot,
    pub control_addr: SocketAddr,
}

/// How to start hosts.
pub struct ClusterConfig {
    pub command: HostCommand,
    pub extension: PathBuf,
    pub dir: PathBuf,
    pub port_base: u16,
    /// Most slots the run may make (initial nodes plus replacements): each takes two ports
    /// from `port_base` on.
    pub slots_max: u64,
    pub log_filter: Option<String>,
}

pub struct Cluster {
    config: ClusterConfig,
    pub proxy: Proxy,
    slots: Mutex<Vec<SlotState>>,
}

impl Cluster {
    pub fn new(config: ClusterConfig, proxy: Proxy) -> Self {
        Cluster { config, proxy, slots: Mutex::default() }
    }

    pub fn lock(&self) -> MutexGuard<'_, Vec<SlotState>> {
        self.slots.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes a new slot, registers it with the proxy and starts its node: `ha_init` for the
    /// first, else `ha_join` through `peer` (a member's proxy address), as a learner if
    /// `learner`. Returns the slot.
    pub fn add_node(&self, peer: Option<SocketAddr>, learner: bool) -> anyhow::Result<Slot> {
        if learner && peer.is_none() {
            bail!("the first node of a cluster must be a voter");
        }
        let slot = self.lock().len() as Slot;
        if slot >= self.config.slots_max {
            bail!("no more node slots (at most {} per run)", self.config.slots_max);
        }
        let port = |offset: u64| -> anyhow::Result<u16> {
            u16::try_from(u64::from(self.config.port_base) + slot * 2 + offset)
                .context("port out of range")
        };
        let real_addr = SocketAddr::from(([127, 0, 0, 1], port(0)?));
        let proxy_addr = SocketAddr::from(([127, 0, 0, 1], port(1)?));
        let token = match peer {
            Some(peer) => Some(self.token_from(peer, learner)?),
            None => None,
        };
        self.proxy.add_node(slot, proxy_addr, real_addr)?;
        let startup = startup_sql(real_addr, proxy_addr, peer.zip(token.as_deref()), learner);
        let name = format!("n{}", slot + 1);
        let db = self.config.dir.join(format!("{name}.db"));
        let mut spec = HostSpec::new(
            &name,
            &self.config.command,
            Some(&self.config.extension),
            &db,
            vec![startup],
        );
        if let Some(filter) = &self.config.log_filter {
            spec.env.push(("DQLITE_VFS_LOG".into(), filter.into()));
        }
        self.lock().push(SlotState {
            slot,
            raft_id: None,
            learner,
            spec,
            real_addr,
            proxy_addr,
            health: Health::Killed,
            process: None,
            control_addr: None,
        });
        self.start(slot)?;
        Ok(slot)
    }

    /// A join token (`ha_token`) for a voter or a learner, issued by the member whose proxy
    /// address is `peer`.
    pub fn token_from(&self, peer: SocketAddr, learner: bool) -> anyhow::Result<String> {
        let control_addr = self
            .lock()
            .iter()
            .find(|state| state.proxy_addr == peer)
            .and_then(|state| state.control_addr)
            .ok_or_else(|| anyhow!("no running member at {peer} to issue a join token"))?;
        let role = if learner { "learner" } else { "voter" };
        let mut client = Client::connect("token", control_addr)?;
        let request = Request::Exec {
            conn: "token".into(),
            statements: vec![Statement::with_params(
                "SELECT ha_token(?1)",
                vec![serde_json::json!(role)],
            )],
            tx: false,
        };
        let answer = client.request(&request, TOKEN_DEADLINE)?;
        answer["results"][0]["rows"][0][0]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("ha_token on {peer} answered {answer}"))
    }

    /// Whether another node may still be added.
    pub fn has_free_slot(&self) -> bool {
        (self.lock().len() as u64) < self.config.slots_max
    }

    /// Starts (or restarts) a slot's host: the same startup SQL resumes the node.
    pub fn start(&self, slot: Slot) -> anyhow::Result<()> {
        let spec = {
            let slots = self.lock();
            let state = slots.get(slot as usize).ok_or_else(|| anyhow!("no slot {slot}"))?;
            if state.process.is_some() {
                bail!("slot {slot} is already running");
            }
            state.spec.clone()
        };
        // Spawning waits for the node to be ready (a join can take a while): not under the lock.
        let process = HostProcess::spawn(&spec).with_context(|| format!("start {}", spec.name))?;
        let raft_id = process.startup_result().as_u64();
        let mut slots = self.lock();
        let state = &mut slots[slot as usize];
        state.raft_id = raft_id.or(state.raft_id);
        state.control_addr = Some(process.control_addr());
        state.process = Some(process);
        state.health = Health::Up;
        Ok(())
    }

    /// SIGKILL, leaving the slot to be restarted.
    pub fn kill(&self, slot: Slot) {
        let mut slots = self.lock();
        if let Some(state) = slots.get_mut(slot as usize) {
            if let Some(mut process) = state.process.take() {
                // SIGKILL ends a stopped (SIGSTOPped) process too.
                process.kill();
            }
            state.control_addr = None;
            if state.health != Health::Removed {
                state.health = Health::Killed;
            }
        }
    }

    pub fn pause(&self, slot: Slot) -> anyhow::Result<()> {
        let mut slots = self.lock();
        let state = slots.get_mut(slot as usize).ok_or_else(|| anyhow!("no slot {slot}"))?;
        let process = state.process.as_ref().ok_or_else(|| anyhow!("slot {slot} not running"))?;
        process.stop()?;
        state.health = Health::Paused;
        Ok(())
    }

    pub fn resume(&self, slot: Slot) -> anyhow::Result<()> {
        let mut slots = self.lock();
        let state = slots.get_mut(slot as usize).ok_or_else(|| anyhow!("no slot {slot}"))?;
        if let Some(process) = state.process.as_ref() {
            process.cont()?;
            state.health = Health::Up;
        }
        Ok(())
    }

    /// Marks a slot removed (after `ha_remove`), kills it and deletes its files.
    pub fn retire(&self, slot: Slot) {
        self.kill(slot);
        let db = {
            let mut slots = self.lock();
            let Some(state) = slots.get_mut(slot as usize) else { return };
            state.health = Health::Removed;
            state.spec.db.clone()
        };
        // Kept aside, certificate and key included, so a nemesis can bring the removed node
        // back and check that the members refuse it.
        if let Err(error) = keep_removed_files(&db) {
            eprintln!("could not keep the files of removed n{}: {error}", slot + 1);
        }
        remove_node_files(&db);
    }

    /// A removed slot whose files `retire` kept, if any.
    pub fn removed_with_files(&self) -> Option<Slot> {
        self.lock()
            .iter()
            .find(|state| {
                state.health == Health::Removed && removed_copy_of(&state.spec.db).exists()
            })
            .map(|state| state.slot)
    }

    /// Starts the removed node of `slot` again from the files `retire` kept, at its old
    /// address: it presents its revoked certificate to the members. Its host is returned (the
    /// caller kills it); the kept files are used once.
    pub fn resurrect_removed(&self, slot: Slot) -> anyhow::Result<HostProcess> {
        let mut spec = {
            let slots = self.lock();
            let state = slots.get(slot as usize).ok_or_else(|| anyhow!("no slot {slot}"))?;
            if state.health != Health::Removed {
                bail!("n{} is a member", slot + 1);
            }
            state.spec.clone()
        };
        let copy = removed_copy_of(&spec.db);
        let file = spec.db.file_name().ok_or_else(|| anyhow!("no database file name"))?.to_owned();
        spec.name = format!("n{}-removed", slot + 1);
        spec.db = copy.join(file);
        spec.log = copy.join("host.log");
        Ok(HostProcess::spawn(&spec)?)
    }

    /// Forgets the files `retire` kept for `slot`.
    pub fn drop_removed_files(&self, slot: Slot) {
        if let Some(db) = self.db_path(slot) {
            let _ = std::fs::remove_dir_all(removed_copy_of(&db));
        }
    }

    /// The join token some node joined with (used up since), if any node has joined.
    pub fn used_token(&self) -> Option<String> {
        self.lock().iter().find_map(|state| {
            let startup = state.spec.startup.first()?;
            let start = startup.find(r#""token":""#)? + r#""token":""#.len();
            let len = startup[start..].find('"')?;
            Some(startup[start..start + len].to_owned())
        })
    }

    /// A fresh node (a new empty database, a free port) tries to join through `peer` with
    /// `token`. Returns the running host if it was admitted, else why it was not. Its files
    /// are removed either way once the host is gone.
    pub fn try_join(
        &self,
        peer: SocketAddr,
        token: &str,
    ) -> anyhow::Result<Result<HostProcess, ha_host::process::HostError>> {
        let port = std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = self.config.dir.join(format!("intruder-{port}"));
        std::fs::create_dir_all(&dir)?;
        let startup = format!("SELECT ha_join('127.0.0.1:{port}', '{peer}', '{token}')");
        let spec = HostSpec::new(
            "intruder",
            &self.config.command,
            Some(&self.config.extension),
            &dir.join("intruder.db"),
            vec![startup],
        );
        let result = HostProcess::spawn(&spec);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        Ok(result)
    }

    /// Makes a removed slot a fresh node again, as an operator repairs a broken one: its files
    /// are gone ([`Cluster::retire`]); it joins through `peer` at the same address (as a learner
    /// if it was one) and gets a new Raft id.
    pub fn rejoin(&self, slot: Slot, peer: SocketAddr) -> anyhow::Result<()> {
        let learner = self.lock().get(slot as usize).is_some_and(|state| state.learner);
        let token = self.token_from(peer, learner)?;
        {
            let mut slots = self.lock();
            let state = slots.get_mut(slot as usize).ok_or_else(|| anyhow!("no slot {slot}"))?;
            if state.health != Health::Removed {
                bail!("n{} is still a member: remove it first", slot + 1);
            }
            state.spec.startup = vec![startup_sql(
                state.real_addr,
                state.proxy_addr,
                Some((peer, token.as_str())),
                state.learner,
            )];
            state.raft_id = None;
            state.health = Health::Killed;
        }
        self.start(slot)
    }

    /// Every slot that is a member (not removed), learners included.
    pub fn members(&self) -> Vec<Member> {
        self.lock()
            .iter()
            .filter(|state| state.health != Health::Removed)
            .map(|state| Member {
                slot: state.slot,
                raft_id: state.raft_id,
                health: state.health,
                learner: state.learner,
            })
            .collect()
    }

    /// The members that vote (count for quorum and may lead).
    pub fn voters(&self) -> Vec<Member> {
        self.members().into_iter().filter(|member| !member.learner).collect()
    }

    /// Slots whose process runs (paused ones included: the workloads cannot tell).
    pub fn endpoints(&self) -> Vec<Endpoint> {
        self.lock()
            .iter()
            .filter_map(|state| {
                Some(Endpoint { slot: state.slot, control_addr: state.control_addr? })
            })
            .collect()
    }

    pub fn slot_of(&self, raft_id: NodeId) -> Option<Slot> {
        self.lock()
            .iter()
            .find(|state| state.raft_id == Some(raft_id) && state.health != Health::Removed)
            .map(|s| s.slot)
    }

    pub fn proxy_addr(&self, slot: Slot) -> Option<SocketAddr> {
        self.lock().get(slot as usize).map(|state| state.proxy_addr)
    }

    pub fn db_path(&self, slot: Slot) -> Option<PathBuf> {
        self.lock().get(slot as usize).map(|state| state.spec.db.clone())
    }

    /// The node's state directory, `<database>-ha/` (its Raft log, vote, applied state).
    pub fn state_dir(&self, slot: Slot) -> Option<PathBuf> {
        self.db_path(slot).map(|db| suffixed(&db, "-ha"))
    }

    /// `ha_status()` of a running slot, within [`STATUS_DEADLINE`].
    pub fn status(&self, slot: Slot) -> anyhow::Result<Value> {
        let endpoint = self
            .endpoints()
            .into_iter()
            .find(|e| e.slot == slot)
            .ok_or_else(|| anyhow!("slot {slot} not running"))?;
        let mut client =
            ha_host::process::Client::connect(&format!("n{}", slot + 1), endpoint.control_addr)?;
        let answer = client.request(&Request::Status, STATUS_DEADLINE)?;
        Ok(answer["status"].clone())
    }

    /// The slot of the leader: of the members that say they lead, the one of the highest term
    /// (a leader cut off from the others still believes it leads its old term); else the one
    /// most answering members name.
    pub fn leader(&self) -> Option<Slot> {
        let mut claims: Vec<(u64, Slot)> = Vec::new();
        let mut votes: Vec<(NodeId, u64)> = Vec::new();
        for member in self.members() {
            if member.health != Health::Up {
                continue;
            }
            let Ok(status) = self.status(member.slot) else { continue };
            if status["role"] == "leader" {
                claims.push((status["term"].as_u64().unwrap_or(0), member.slot));
            }
            if let Some(id) = status["leader_id"].as_u64() {
                match votes.iter_mut().find(|(leader, _)| *leader == id) {
                    Some((_, count)) => *count += 1,
                    None => votes.push((id, 1)),
                }
            }
        }
        if let Some((_, slot)) = claims.iter().max() {
            return Some(*slot);
        }
        votes.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
        votes.first().and_then(|(id, _)| self.slot_of(*id))
    }

    /// Waits until a member says it is the leader, at most `deadline`. The error quotes what
    /// each member said last.
    pub fn wait_for_leader(&self, deadline: Duration) -> anyhow::Result<Slot> {
        let start = Instant::now();
        loop {
            let mut seen = Vec::new();
            for Member { slot, health, .. } in self.members() {
                if health != Health::Up {
                    seen.push(format!("n{}: {health:?}", slot + 1));
                    continue;
                }
                match self.status(slot) {
                    Ok(status) if status["role"] == "leader" => return Ok(slot),
                    Ok(status) => seen.push(format!(
                        "n{}: {} term {} leader {} applied {} stopped_reason {}",
                        slot + 1,
                        status["role"],
                        status["term"],
                        status["leader_id"],
                        status["applied_index"],
                        status["stopped_reason"]
                    )),
                    Err(error) => seen.push(format!("n{}: {error:#}", slot + 1)),
                }
            }
            if start.elapsed() > deadline {
                bail!("no leader within {deadline:?}; last seen: {}", seen.join("; "));
            }
            std::thread::sleep(POLL);
        }
    }

    /// Waits until `slot` has applied everything the leader had committed when this was
    /// called, i.e. it rejoined and caught up, at most `deadline`; returns its applied index.
    /// The leader is the one of the highest term: a restarted old leader may claim its old
    /// term for a moment, with its old commit index.
    pub fn wait_caught_up(&self, slot: Slot, deadline: Duration) -> anyhow::Result<u64> {
        let start = Instant::now();
        let mut target = None;
        let mut last = String::from("no leader");
        while start.elapsed() < deadline {
            if target.is_none() {
                let leader = self.leader();
                target = leader
                    .filter(|leader| *leader != slot)
                    .and_then(|leader| self.status(leader).ok()?["commit_index"].as_u64());
                if leader == Some(slot) {
                    // It leads the latest term: nothing to catch up with.
                    target = Some(0);
                }
            }
            match (target, self.status(slot)) {
                (Some(target), Ok(status)) => {
                    let applied = status["applied_index"].as_u64().unwrap_or(0);
                    if applied >= target {
                        return Ok(applied);
                    }
                    last = format!(
                        "role {} applied {applied} of the leader's {target}, stopped_reason {}",
                        status["role"], status["stopped_reason"]
                    );
                }
                (None, _) => {}
                (Some(_), Err(error)) => last = format!("{error:#}"),
            }
            std::thread::sleep(POLL);
        }
        bail!(
            "n{} did not catch up with the leader within {deadline:?}; last seen: {last}",
            slot + 1
        )
    }

    /// SIGKILLs every process (at the end of the run, or on drop).
    pub fn kill_all(&self) {
        let slots: Vec<Slot> = self.lock().iter().map(|state| state.slot).collect();
        for slot in slots {
            self.kill(slot);
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The SQL that makes a node: `ha_init` without a peer, else `ha_join` through `peer` with
/// `token` (whose role, voter or learner, the node takes). Every node advertises its proxy
/// port, so all its traffic passes the proxy.
fn startup_sql(
    real_addr: SocketAddr,
    proxy_addr: SocketAddr,
    peer: Option<(SocketAddr, &str)>,
    learner: bool,
) -> String {
    match peer {
        None => format!(r#"SELECT ha_init('{real_addr}', '{{"advertise":"{proxy_addr}"}}')"#),
        Some((peer, token)) => {
            let role = if learner { "learner" } else { "voter" };
            let options =
                format!(r#"{{"advertise":"{proxy_addr}","role":"{role}","token":"{token}"}}"#);
            format!("SELECT ha_join('{real_addr}', '{peer}', '{options}')")
        }
    }
}

/// `path` with `suffix` appended to its last component (`n1.db` -> `n1.db-wal`).
pub fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Deletes a node's database, WAL, shared memory, log and state directory.
/// Where `retire` keeps a removed node's files: `<db>.removed/`.
fn removed_copy_of(db: &Path) -> PathBuf {
    suffixed(db, ".removed")
}

/// Copies the database, its WAL and its state directory into [`removed_copy_of`]`(db)`,
/// directories private (the node refuses a state directory open to others).
fn keep_removed_files(db: &Path) -> std::io::Result<()> {
    let copy = removed_copy_of(db);
    let _ = std::fs::remove_dir_all(&copy);
    create_private_dir(&copy)?;
    let name = db.file_name().ok_or_else(|| std::io::Error::other("no file name"))?;
    for suffix in ["", "-wal"] {
        let from = suffixed(db, suffix);
        if from.exists() {
            std::fs::copy(&from, suffixed(&copy.join(name), suffix))?;
        }
    }
    copy_dir(&suffixed(db, "-ha"), &suffixed(&copy.join(name), "-ha"))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    create_private_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else if entry.file_name() != "owner.lock" {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn remove_node_files(db: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(suffixed(db, suffix));
    }
    let _ = std::fs::remove_dir_all(suffixed(db, "-ha"));
}
