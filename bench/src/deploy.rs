//! What a workload runs against: plain SQLite in one host process, or a cluster of 1 or 3
//! ha-host processes on 127.0.0.1, all under one scratch directory (the same disk). Every
//! deployment is started fresh for one workload and torn down (processes killed, files removed)
//! when dropped.

use std::cell::Cell;
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ha_host::cluster::{free_udp_ports, Cluster, ClusterConfig};
use ha_host::process::{HostCommand, HostError, HostProcess, HostSpec};
use ha_host::protocol::{codes, Statement};

/// The bench's Raft ports (17690-17699 belong to host/'s test).
const PORTS: std::ops::Range<u16> = 17600..17690;
/// How long a fresh leader may refuse writes (it first applies its own entry of the term).
const WRITABLE_DEADLINE: Duration = Duration::from_secs(15);
/// Extended code: the transaction did not happen (conflict, or Raft refused it).
const SQLITE_IOERR_WRITE: i32 = 778;

/// Shared by every workload of a run.
pub struct Ctx {
    pub command: HostCommand,
    pub library: PathBuf,
    /// Parent of every deployment's directory.
    pub scratch: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    /// Leave every deployment's directory (databases, host logs) in place.
    pub keep: bool,
    next_port: Cell<u16>,
}

impl Ctx {
    pub fn new(command: HostCommand, library: PathBuf, scratch: PathBuf, keep: bool) -> Ctx {
        let env = std::env::var_os("DQLITE_VFS_LOG")
            .map(|v| vec![("DQLITE_VFS_LOG".into(), v)])
            .unwrap_or_default();
        Ctx { command, library, scratch, env, keep, next_port: Cell::new(0) }
    }

    /// `count` free ports, moving on through the range so consecutive clusters differ.
    fn ports(&self, count: usize) -> Result<Vec<u16>> {
        let hint = self.next_port.get();
        let ports = free_udp_ports(PORTS, count, hint)
            .with_context(|| format!("{count} free UDP ports in {PORTS:?}"))?;
        let step = u16::try_from(count).unwrap_or(1);
        self.next_port.set(hint.wrapping_add(step) % (PORTS.end - PORTS.start));
        Ok(ports)
    }

    /// A host spec in `dir` (not a node): plain SQLite, or the extension without a node.
    pub fn bare_host(&self, dir: &std::path::Path, name: &str, plain: bool) -> HostSpec {
        let mut spec = HostSpec::new(
            name,
            &self.command,
            Some(&self.library),
            &dir.join(format!("{name}.db")),
            Vec::new(),
        );
        spec.plain = plain;
        spec.env = self.env.clone();
        spec
    }
}

/// Plain SQLite, or a cluster of `n` nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Plain,
    Nodes(usize),
}

impl Mode {
    pub const ALL: [Mode; 3] = [Mode::Plain, Mode::Nodes(1), Mode::Nodes(3)];

    /// The key of this mode in the JSON report.
    pub fn key(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::Nodes(1) => "one_node",
            Mode::Nodes(_) => "three_nodes",
        }
    }

    pub fn label(self) -> String {
        match self {
            Mode::Plain => "plain SQLite".into(),
            Mode::Nodes(1) => "1 node".into(),
            Mode::Nodes(n) => format!("{n} nodes"),
        }
    }
}

/// A running deployment.
pub struct Deployment {
    plain: Option<HostProcess>,
    pub cluster: Option<Cluster>,
    pub leader: usize,
    // Dropped last: the hosts are gone before their files.
    _dir: tempfile::TempDir,
}

impl Deployment {
    pub fn start(ctx: &Ctx, mode: Mode) -> Result<Deployment> {
        let dir = tempfile::Builder::new()
            .prefix("bench-")
            .disable_cleanup(ctx.keep)
            .tempdir_in(&ctx.scratch)
            .context("scratch directory")?;
        if ctx.keep {
            eprintln!("bench: {} runs in {} (kept)", mode.label(), dir.path().display());
        }
        match mode {
            Mode::Plain => {
                let host = HostProcess::spawn(&ctx.bare_host(dir.path(), "plain", true))?;
                Ok(Deployment { plain: Some(host), cluster: None, leader: 0, _dir: dir })
            }
            Mode::Nodes(n) => {
                let config = ClusterConfig {
                    command: ctx.command.clone(),
                    extension: ctx.library.clone(),
                    ports: ctx.ports(n)?,
                    env: ctx.env.clone(),
                    parent_dir: Some(dir.path().to_path_buf()),
                    keep_dir: ctx.keep,
                };
                let cluster = Cluster::start(&config)?;
                let leader = cluster.leader(Duration::from_secs(10))?;
                Ok(Deployment { plain: None, cluster: Some(cluster), leader, _dir: dir })
            }
        }
    }

    /// Where writes go: the plain host or the leader.
    pub fn writer(&self) -> Result<&HostProcess> {
        match (&self.plain, &self.cluster) {
            (Some(host), _) => Ok(host),
            (None, Some(cluster)) => Ok(cluster.node(self.leader)?),
            (None, None) => bail!("empty deployment"),
        }
    }

    /// The followers' hosts (none for plain SQLite and 1 node).
    pub fn followers(&self) -> Result<Vec<&HostProcess>> {
        let Some(cluster) = &self.cluster else { return Ok(Vec::new()) };
        cluster.followers(self.leader).into_iter().map(|i| Ok(cluster.node(i)?)).collect()
    }

    /// Where reads go: a follower, or the writer when there is none.
    pub fn reader(&self) -> Result<&HostProcess> {
        match self.followers()?.first() {
            Some(follower) => Ok(follower),
            None => self.writer(),
        }
    }

    /// Runs setup statements in one transaction on the writer, retrying while a fresh leader
    /// still refuses writes, then makes every follower catch up (barrier).
    pub fn setup(&self, statements: Vec<Statement>) -> Result<()> {
        let writer = self.writer()?;
        let until = Instant::now() + WRITABLE_DEADLINE;
        loop {
            match writer.exec("main", statements.clone(), true) {
                Ok(_) => break,
                Err(error) if Instant::now() < until && retryable(&error) => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(error) => return Err(error).context("setup on the writer"),
            }
        }
        self.sync_followers()
    }

    /// Every host of the deployment: the writer, then the followers.
    fn hosts(&self) -> Result<Vec<&HostProcess>> {
        let mut hosts = vec![self.writer()?];
        hosts.extend(self.followers()?);
        Ok(hosts)
    }

    /// CPU time used so far by every host of the deployment, summed.
    pub fn cpu_time(&self) -> Result<Duration> {
        self.hosts()?.iter().map(|host| Ok(host.cpu_time()?)).sum()
    }

    /// Context switches so far of every host of the deployment, summed.
    pub fn context_switches(&self) -> Result<u64> {
        self.hosts()?.iter().map(|host| Ok(host.context_switches()?)).sum()
    }

    /// `ha_barrier()` on every follower.
    pub fn sync_followers(&self) -> Result<()> {
        for follower in self.followers()? {
            follower.barrier()?;
        }
        Ok(())
    }
}

/// A write refused before it happened by a node that is not (yet) a writable leader.
fn retryable(error: &HostError) -> bool {
    error.sql().is_some_and(|e| {
        e.code == Some(codes::SQLITE_READONLY) || e.extended == Some(SQLITE_IOERR_WRITE)
    })
}
