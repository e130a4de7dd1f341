//! Clusters of `ha-host` processes on 127.0.0.1, in a temporary directory removed on drop:
//! node 1 runs `ha_init`, the others `ha_join` through node 1 with a token node 1 issued, one
//! after the other. A node is restarted with the same startup SQL (token included, used up by
//! then), which resumes it from its state directory.
//!
//! Nodes are indexed from 0 here (node `i` is `n{i+1}`, Raft node id `i+1` on a fresh cluster).

use std::ffi::OsString;
use std::net::UdpSocket;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::process::{HostCommand, HostError, HostProcess, HostSpec};

/// Pause between polls of the nodes' status.
const POLL: Duration = Duration::from_millis(20);

/// How to start a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub command: HostCommand,
    pub extension: PathBuf,
    /// One Raft (QUIC, UDP) port per node on 127.0.0.1.
    pub ports: Vec<u16>,
    /// Extra environment of every host.
    pub env: Vec<(OsString, OsString)>,
    /// Where the cluster's temporary directory is made (None: the system's).
    pub parent_dir: Option<PathBuf>,
    /// Leave the directory (databases, state, host logs) in place for a post-mortem.
    pub keep_dir: bool,
}

/// Errors of cluster operations.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("temporary directory: {0}")]
    Dir(std::io::Error),
    #[error("node n{} is not running", .0 + 1)]
    NotRunning(usize),
    #[error("{what} not reached within {deadline:?}; last seen: {last}")]
    Timeout { what: String, deadline: Duration, last: String },
}

struct Node {
    spec: HostSpec,
    addr: String,
    process: Option<HostProcess>,
}

/// A running cluster. Dropping it SIGKILLs every host and removes the directory.
pub struct Cluster {
    nodes: Vec<Node>,
    // Dropped after `nodes` (fields drop in order): the hosts are gone before their files.
    dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts `config.ports.len()` nodes and waits until every one is a voter.
    pub fn start(config: &ClusterConfig) -> Result<Cluster, ClusterError> {
        let mut builder = tempfile::Builder::new();
        builder.prefix("ha-cluster-").disable_cleanup(config.keep_dir);
        let dir = match &config.parent_dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .map_err(ClusterError::Dir)?;
        let first = format!("127.0.0.1:{}", config.ports.first().copied().unwrap_or(0));
        let mut nodes = Vec::new();
        for (i, port) in config.ports.iter().enumerate() {
            let addr = format!("127.0.0.1:{port}");
            // Joiners get their startup SQL once node 1 runs and can issue their tokens.
            let startup =
                if i == 0 { vec![format!("SELECT ha_init('{addr}')")] } else { Vec::new() };
            let name = format!("n{}", i + 1);
            let db = dir.path().join(format!("{name}.db"));
            let mut spec =
                HostSpec::new(&name, &config.command, Some(&config.extension), &db, startup);
            spec.env = config.env.clone();
            nodes.push(Node { spec, addr, process: None });
        }
        let mut cluster = Cluster { nodes, dir };
        for i in 0..cluster.nodes.len() {
            if i > 0 {
                let token = cluster.node(0)?.token("voter")?;
                let addr = &cluster.nodes[i].addr;
                cluster.nodes[i].spec.startup =
                    vec![format!("SELECT ha_join('{addr}', '{first}', '{token}')")];
            }
            cluster.restart(i)?;
        }
        cluster.wait_voters(cluster.nodes.len(), Duration::from_secs(30))?;
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Node `i`'s Raft address.
    pub fn addr(&self, i: usize) -> &str {
        &self.nodes[i].addr
    }

    /// Node `i`'s host process.
    pub fn node(&self, i: usize) -> Result<&HostProcess, ClusterError> {
        self.nodes[i].process.as_ref().ok_or(ClusterError::NotRunning(i))
    }

    /// Node `i`'s host process, mutably (to kill or wait on it).
    pub fn node_mut(&mut self, i: usize) -> Result<&mut HostProcess, ClusterError> {
        self.nodes[i].process.as_mut().ok_or(ClusterError::NotRunning(i))
    }

    /// SIGKILL node `i` (no-op if it is not running).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut process) = self.nodes[i].process.take() {
            process.kill();
        }
    }

    /// (Re)starts node `i` with its startup SQL, which resumes it if it ran before.
    pub fn restart(&mut self, i: usize) -> Result<&HostProcess, ClusterError> {
        self.kill(i);
        let process = HostProcess::spawn(&self.nodes[i].spec)?;
        Ok(self.nodes[i].process.insert(process))
    }

    /// Status of every running node (None for stopped ones or ones that did not answer).
    pub fn statuses(&self) -> Vec<Option<Value>> {
        self.nodes.iter().map(|n| n.process.as_ref().and_then(|p| p.status().ok())).collect()
    }

    /// Waits until a running node says it is the leader; returns its index.
    pub fn leader(&self, deadline: Duration) -> Result<usize, ClusterError> {
        self.poll("a leader", deadline, |statuses| {
            statuses.iter().position(|s| s.as_ref().is_some_and(|s| s["role"] == "leader"))
        })
    }

    /// Indexes of the running nodes other than `leader`.
    pub fn followers(&self, leader: usize) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| i != leader && self.nodes[i].process.is_some()).collect()
    }

    /// Waits until the leader lists `voters` voting members.
    pub fn wait_voters(&self, voters: usize, deadline: Duration) -> Result<(), ClusterError> {
        self.poll(&format!("{voters} voters"), deadline, |statuses| {
            statuses.iter().flatten().find(|s| s["role"] == "leader").and_then(|s| {
                let members = s["members"].as_array()?;
                (members.iter().filter(|m| m["voter"] == true).count() == voters).then_some(())
            })
        })
    }

    /// Waits until node `i` has applied at least `index`; returns its applied index.
    pub fn wait_applied(
        &self,
        i: usize,
        index: u64,
        deadline: Duration,
    ) -> Result<u64, ClusterError> {
        self.poll(&format!("n{} applied {index}", i + 1), deadline, |statuses| {
            statuses[i]
                .as_ref()
                .and_then(|s| s["applied_index"].as_u64())
                .filter(|&applied| applied >= index)
        })
    }

    fn poll<T>(
        &self,
        what: &str,
        deadline: Duration,
        mut check: impl FnMut(&[Option<Value>]) -> Option<T>,
    ) -> Result<T, ClusterError> {
        let until = Instant::now() + deadline;
        loop {
            let statuses = self.statuses();
            if let Some(found) = check(&statuses) {
                return Ok(found);
            }
            if Instant::now() >= until {
                let last = serde_json::to_string(&statuses).unwrap_or_default();
                return Err(ClusterError::Timeout { what: what.to_owned(), deadline, last });
            }
            std::thread::sleep(POLL);
        }
    }
}

/// `count` 127.0.0.1 UDP ports in `range` that nobody is bound to now, starting the search at
/// `start_hint` (wrapping around) so that consecutive clusters tend to use different ports.
pub fn free_udp_ports(range: Range<u16>, count: usize, start_hint: u16) -> Option<Vec<u16>> {
    let len = range.end.checked_sub(range.start)?;
    let mut found = Vec::new();
    for step in 0..len {
        let port = range.start + (start_hint.wrapping_add(step)) % len;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            found.push(port);
            if found.len() == count {
                return Some(found);
            }
        }
    }
    None
}
