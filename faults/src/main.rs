//! The fault-injection suite: starts a cluster of real node processes (`ha-host`, run as
//! `faults host ...`) behind a UDP proxy, runs workloads while a seeded nemesis injects faults,
//! then heals, converges and checks every invariant. See docs/FAULTS.md.
//!
//! Exit status: 0 when every invariant held, 1 on a violation (the history and nemesis log
//! are written to the run directory, which is kept), 2 when the run itself could not be made
//! (a cluster that would not start), 3 when the watchdog ended a run that did not finish.

#![deny(unsafe_code)]

mod checks;
mod cluster;
mod damage;
mod history;
mod linearizability;
mod nemesis;
mod proxy;
mod report;
mod staleness;
mod workload;
mod write_gate;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Parser;
use ha_host::process::{Client, HostCommand};
use ha_host::protocol::{Request, Statement};
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::cluster::{Cluster, ClusterConfig};
use crate::history::History;
use crate::nemesis::Nemesis;
use crate::proxy::Proxy;
use crate::workload::{Shared, Worker};

/// A node's Raft id, as `ha_status()` reports it.
pub type NodeId = u64;

/// A workload thread's body: runs operations until told to stop.
type WorkloadBody = fn(&mut Worker);

/// The subcommand that runs a node host (this same executable).
const HOST_SUBCOMMAND: &str = "host";
/// How long the end of a run (heal, restart, converge, check) may take before the watchdog
/// ends the process: every step has its own deadline, so reaching this is a bug in the suite.
const WATCHDOG_SLACK: Duration = Duration::from_secs(600);
/// How often a progress line is printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(30);
/// How long the cluster may take to form at the start.
const SETUP_DEADLINE: Duration = Duration::from_secs(60);

/// Fault-injection suite for dqlite-vfs.
#[derive(Parser, Debug)]
#[command(name = "faults")]
struct Args {
    /// Seed of every random choice (faults, targets, workload); random when omitted.
    #[arg(long)]
    seed: Option<u64>,
    /// How long workloads and faults run: e.g. 90s, 10m, 30m, 2h.
    #[arg(long, default_value = "90s", value_parser = parse_duration)]
    duration: Duration,
    /// Voters: 3 (one fault at a time) or 5 (up to two at once).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(3..=5))]
    nodes: u8,
    /// One more node that joins as a learner: always (on), never (off), or for half the
    /// seeds (seed).
    #[arg(long, value_enum, default_value = "on")]
    learner: LearnerChoice,
    /// First UDP port of the run's range.
    #[arg(long, default_value_t = 17700)]
    port_base: u16,
    /// Size of the run's UDP port range: two per node slot (real and proxy), so this bounds
    /// the initial nodes plus the replacements that membership faults add.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(10..))]
    ports: u16,
    /// The extension; default: libdqlite_vfs.so next to this executable.
    #[arg(long)]
    extension: Option<PathBuf>,
    /// Where the run directory is made (default: the system's temp directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Only these faults (comma-separated); default: all of them.
    #[arg(long, value_enum, value_delimiter = ',')]
    faults: Vec<nemesis::FaultKind>,
    /// Whether availability problems (no leader 30 s after a heal, a failed restart or join)
    /// fail the run like safety violations do, or are only reported.
    #[arg(long, value_enum, default_value = "fail")]
    availability: Availability,
    /// Keep the run directory even when the run passes.
    #[arg(long)]
    keep: bool,
    /// `DQLITE_VFS_LOG` filter for the nodes (their logs go to nN.db.log in the run dir).
    #[arg(long)]
    node_log: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LearnerChoice {
    On,
    Off,
    Seed,
}

impl LearnerChoice {
    fn wanted(self, seed: u64) -> bool {
        match self {
            LearnerChoice::On => true,
            LearnerChoice::Off => false,
            LearnerChoice::Seed => seed.is_multiple_of(2),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Availability {
    Fail,
    Warn,
}

/// Parses `90s`, `30m`, `2h`, `500ms` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 =
        number.parse().map_err(|_| format!("bad duration '{text}': expected e.g. 90s, 30m, 2h"))?;
    let seconds = match unit {
        "ms" => return Ok(Duration::from_millis(number)),
        "" | "s" => number,
        "m" => number * 60,
        "h" => number * 3600,
        _ => return Err(format!("bad duration unit '{unit}': use ms, s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

fn main() {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|first| first == HOST_SUBCOMMAND) {
        // `faults host --db ...`: this process is a node host.
        ha_host::cli::main_with_args(std::env::args_os().skip(1));
    }
    let args = Args::parse();
    match run(&args) {
        Ok(true) => std::process::exit(0),
        Ok(false) => std::process::exit(1),
        Err(error) => {
            eprintln!("fault suite could not run: {error:#}");
            std::process::exit(2);
        }
    }
}

fn default_extension() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or_else(|| anyhow!("executable has no directory"))?;
    let path = dir.join("libdqlite_vfs.so");
    if !path.exists() {
        bail!(
            "{} not found: build the library first (cargo build [--release]) or pass --extension",
            path.display()
        );
    }
    Ok(path)
}

/// One whole run; Ok(true) when every invariant held.
fn run(args: &Args) -> anyhow::Result<bool> {
    let seed = args.seed.unwrap_or_else(|| rand::random::<u64>() >> 12);
    let learner = args.learner.wanted(seed);
    println!(
        "fault suite: seed {seed}, {} voters{}, {:?} (replay: --seed {seed})",
        args.nodes,
        if learner { " and a learner" } else { "" },
        args.duration
    );
    let extension = match &args.extension {
        Some(path) => path.clone(),
        None => default_extension()?,
    };
    let prefix = format!("faults-{seed}-");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix);
    let run_dir = match &args.dir {
        Some(parent) => builder.tempdir_in(parent),
        None => builder.tempdir(),
    }
    .context("make the run directory")?
    .keep();
    println!("run directory: {}", run_dir.display());
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let proxy = Proxy::new(runtime.handle().clone());
    let config = ClusterConfig {
        command: HostCommand::self_exec(HOST_SUBCOMMAND)?,
        extension,
        dir: run_dir.clone(),
        port_base: args.port_base,
        slots_max: u64::from(args.ports / 2),
        log_filter: args.node_log.clone(),
    };
    let cluster = Arc::new(Cluster::new(config, proxy));
    let history = Arc::new(History::new());
    start_watchdog(
        args.duration + WATCHDOG_SLACK,
        seed,
        Arc::clone(&history),
        run_dir.join("history.jsonl"),
    )?;
    let outcome = run_in(args, seed, learner, &cluster, &history);
    cluster.kill_all();
    let verdict = match outcome {
        Ok(verdict) => verdict,
        Err(error) => {
            let _ = history.write_to(&run_dir.join("history.jsonl"));
            eprintln!("run directory kept: {}", run_dir.display());
            return Err(error);
        }
    };
    let passed = verdict.passed;
    if verdict.clean && !args.keep {
        std::fs::remove_dir_all(&run_dir)
            .with_context(|| format!("remove {}", run_dir.display()))?;
    } else {
        let path = run_dir.join("history.jsonl");
        history.write_to(&path)?;
        println!("history and nemesis log: {}", path.display());
        println!("run directory kept: {}", run_dir.display());
    }
    if !passed {
        let learner = if learner { "on" } else { "off" };
        println!(
            "FAILED: replay with --seed {seed} --nodes {} --learner {learner} --duration {}s",
            args.nodes,
            args.duration.as_secs()
        );
    }
    Ok(passed)
}

/// Every [`PROGRESS_INTERVAL`], one line on stderr: operations so far by outcome, members
/// and the leader, so a long soak can be watched.
fn start_progress(shared: Arc<Shared>) {
    let spawned = std::thread::Builder::new().name("progress".into()).spawn(move || {
        let mut waited = Duration::ZERO;
        while !shared.stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_secs(1));
            waited += Duration::from_secs(1);
            if waited < PROGRESS_INTERVAL {
                continue;
            }
            waited = Duration::ZERO;
            let mut counts = [0u64; 3];
            for op in shared.history.ops() {
                counts[match op.outcome {
                    history::Outcome::Ok => 0,
                    history::Outcome::Failed { .. } => 1,
                    history::Outcome::Unknown { .. } => 2,
                }] += 1;
            }
            let members: Vec<String> = shared
                .cluster
                .members()
                .iter()
                .map(|m| format!("n{}(id {:?}, {:?}{})", m.slot + 1, m.raft_id, m.health, if m.learner { ", learner" } else { "" }))
                .collect();
            let leader = shared.cluster.leader().map(|slot| format!("n{}", slot + 1));
            eprintln!(
                "[progress {:>8.3}s] ops ok {} / did not happen {} / unknown {}; members {}; leader {leader:?}",
                shared.history.now_us() as f64 / 1e6,
                counts[0],
                counts[1],
                counts[2],
                members.join(" ")
            );
        }
    });
    if let Err(error) = spawned {
        eprintln!("no progress lines: {error}");
    }
}

/// Ends the process (status 3) if the run outlives `limit`, after saving the history. The
/// node hosts exit by themselves when their stdin (held by this process) closes.
fn start_watchdog(
    limit: Duration,
    seed: u64,
    history: Arc<History>,
    path: PathBuf,
) -> anyhow::Result<()> {
    std::thread::Builder::new().name("watchdog".into()).spawn(move || {
        std::thread::sleep(limit);
        let _ = history.write_to(&path);
        eprintln!(
            "fault suite: still running after {limit:?}; giving up (seed {seed}); history: {}",
            path.display()
        );
        std::process::exit(3);
    })?;
    Ok(())
}

/// How a run ended: `passed` decides the exit status; a run that is not `clean` (even one that
/// passed because availability problems only warn) keeps its directory for a post-mortem.
struct Verdict {
    passed: bool,
    clean: bool,
}

fn run_in(
    args: &Args,
    seed: u64,
    learner: bool,
    cluster: &Arc<Cluster>,
    history: &Arc<History>,
) -> anyhow::Result<Verdict> {
    let started = Instant::now();
    let voters = usize::from(args.nodes);
    setup_cluster(cluster, voters, learner)?;
    println!(
        "cluster of {voters} voters{} ready in {:.1} s",
        if learner { " and a learner" } else { "" },
        started.elapsed().as_secs_f64()
    );

    let writes = Arc::new(write_gate::WriteGate::default());
    let shared = Arc::new(Shared {
        cluster: Arc::clone(cluster),
        history: Arc::clone(history),
        stop: Default::default(),
        writes: Arc::clone(&writes),
    });
    // New workloads go at the end: a worker's seed is its place in this list.
    let workloads: [(&str, WorkloadBody); 8] = [
        ("bank-transfer", workload::bank::transfers),
        ("bank-read", workload::bank::reads),
        ("unique", workload::unique::inserts),
        ("register-1", workload::register::operations),
        ("register-2", workload::register::operations),
        ("large", workload::large::transactions),
        ("staleness-write", workload::staleness::writes),
        ("staleness-read", workload::staleness::reads),
    ];
    let mut threads = Vec::new();
    for (index, (name, body)) in workloads.into_iter().enumerate() {
        let rng = StdRng::seed_from_u64(seed.wrapping_add(1 + index as u64));
        let mut worker = Worker::new(name, Arc::clone(&shared), rng);
        threads
            .push(std::thread::Builder::new().name(name.into()).spawn(move || body(&mut worker))?);
    }

    start_progress(Arc::clone(&shared));
    let kinds = if args.faults.is_empty() { nemesis::ALL.to_vec() } else { args.faults.clone() };
    let workload_start = Instant::now();
    let mut nemesis = Nemesis::new(
        Arc::clone(cluster),
        Arc::clone(history),
        writes,
        StdRng::seed_from_u64(seed),
        voters,
        kinds,
    );
    nemesis.run(workload_start + args.duration);
    history.event("healing everything", &[]);
    nemesis.heal_all();
    shared.stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let duration_s = workload_start.elapsed().as_secs_f64();

    let findings = finish(cluster, history, &mut nemesis, voters);
    let lags = staleness::lags(&history.ops());
    let summary = report::Summary {
        seed,
        nodes: voters,
        duration_s,
        history,
        faults: nemesis
            .counts
            .iter()
            .map(|(kind, count)| (kind.label().to_owned(), *count))
            .collect(),
        failovers_ms: report::failover_ms(history, &nemesis.leader_kills),
        elections_ms: nemesis.elections_ms.clone(),
        proxy: cluster.proxy.stats(),
        staleness: staleness::figures(&lags),
        staleness_quiet: staleness::figures(&staleness::outside(&lags, &nemesis.windows)),
        notes: &findings.notes,
        violations: &findings.violations,
        availability: &findings.availability,
    };
    println!("{}", summary.render());
    let available = findings.availability.is_empty() || args.availability == Availability::Warn;
    Ok(Verdict {
        passed: findings.violations.is_empty() && available,
        clean: findings.violations.is_empty() && findings.availability.is_empty(),
    })
}

/// After the faults: restart every node, wait for convergence, check every invariant.
fn finish(
    cluster: &Cluster,
    history: &History,
    nemesis: &mut Nemesis,
    voters: usize,
) -> checks::Findings {
    history.event("restarting every node (SIGKILL, start)", &[]);
    let slots: Vec<_> = cluster.members().into_iter().map(|member| member.slot).collect();
    for &slot in &slots {
        cluster.kill(slot);
    }
    for &slot in &slots {
        if let Err(error) = cluster.start(slot) {
            nemesis.errors.push(format!("final restart of n{}: {error:#}", slot + 1));
        }
    }
    let mut findings = checks::Findings::default();
    findings.violations.extend(nemesis.violations.iter().cloned());
    findings.notes.extend(nemesis.notes.iter().cloned());
    match checks::converge(cluster) {
        Ok(index) => {
            findings.notes.push(format!("converged: every node applied index {index}"));
            let facts = checks::RunFacts { never_committed: &nemesis.never_committed, voters };
            let checked = checks::check_all(cluster, history, &facts);
            findings.violations.extend(checked.violations);
            findings.notes.extend(checked.notes);
        }
        Err(error) => findings.violations.push(format!("{error:#}")),
    }
    for error in &nemesis.errors {
        findings.availability.push(format!("nemesis: {error}"));
    }
    findings
}

/// Node 1 makes the cluster and the tables; the other voters join through the proxy, one by
/// one, then the learner.
fn setup_cluster(cluster: &Cluster, voters: usize, learner: bool) -> anyhow::Result<()> {
    let first = cluster.add_node(None, false)?;
    let mut statements = workload::bank::setup();
    statements.extend(workload::unique::setup());
    statements.extend(workload::register::setup());
    statements.extend(workload::large::setup());
    statements.extend(workload::staleness::setup());
    exec_on(cluster, first, statements, true)?;
    let peer = cluster.proxy_addr(first).ok_or_else(|| anyhow!("no proxy address for n1"))?;
    for _ in 1..voters {
        cluster.add_node(Some(peer), false)?;
    }
    if learner {
        cluster.add_node(Some(peer), true)?;
    }
    cluster.wait_for_leader(SETUP_DEADLINE)?;
    Ok(())
}

fn exec_on(
    cluster: &Cluster,
    slot: cluster::Slot,
    statements: Vec<Statement>,
    tx: bool,
) -> anyhow::Result<()> {
    let endpoint = cluster
        .endpoints()
        .into_iter()
        .find(|e| e.slot == slot)
        .ok_or_else(|| anyhow!("n{} not running", slot + 1))?;
    let mut client = Client::connect("setup", endpoint.control_addr)?;
    client.request(&Request::Exec { conn: "main".into(), statements, tx }, SETUP_DEADLINE)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("m").is_err());
    }
}
