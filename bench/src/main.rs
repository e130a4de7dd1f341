//! `bench`: runs the workloads of issue #4 against plain SQLite, a 1-node and a 3-node cluster
//! of ha-host processes on 127.0.0.1, prints one table (stdout) and writes the same figures as
//! JSON. Progress goes to stderr. See docs/PERFORMANCE.md.
//!
//! The hosts are this same executable run as `bench host ...` (the `ha-host` program from
//! the `ha-host` crate), so `cargo run --manifest-path tools/Cargo.toml -p bench` needs no
//! other binary.

mod deploy;
mod probe;
mod report;
mod stats;
mod workloads;

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use ha_host::process::{HostCommand, HostProcess};
use serde_json::json;

use deploy::Ctx;
use workloads::{Known, Sizes};

/// The subcommand that turns this executable into an ha-host process.
const HOST_SUBCOMMAND: &str = "host";

/// Benchmarks of dqlite-vfs: plain SQLite against 1- and 3-node clusters on 127.0.0.1.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Smaller counts: a smoke run of every workload in seconds.
    #[arg(long)]
    quick: bool,
    /// Run only these workloads (comma-separated numbers, 1 to 8).
    #[arg(long, value_delimiter = ',')]
    only: Vec<u8>,
    /// Where to write the JSON report.
    #[arg(long, default_value = "bench.json")]
    json: PathBuf,
    /// The extension (default: libdqlite_vfs.so next to this executable, i.e. target/release/).
    #[arg(long)]
    library: Option<PathBuf>,
    /// Directory for the databases (default: the system's temporary directory).
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Keep every deployment's directory (databases, state, host logs) after the run.
    #[arg(long)]
    keep: bool,
}

fn main() {
    let mut args = std::env::args_os();
    if args.nth(1).is_some_and(|first| first == HOST_SUBCOMMAND) {
        ha_host::cli::main_with_args(std::env::args_os().skip(1));
    }
    if let Err(error) = run(Args::parse()) {
        eprintln!("bench: {error:#}");
        std::process::exit(1);
    }
}

fn default_library() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("path of this executable")?;
    let dir = exe.parent().context("directory of this executable")?;
    Ok(dir.join("libdqlite_vfs.so"))
}

fn run(args: Args) -> Result<()> {
    let library = match args.library {
        Some(path) => path,
        None => default_library()?,
    };
    if !library.exists() {
        bail!(
            "{} is missing: build the extension first with `cargo build --release` (from the repository root), \
             or name it with --library PATH",
            library.display()
        );
    }
    let library = library.canonicalize().context("extension path")?;
    let scratch = args.scratch.unwrap_or_else(std::env::temp_dir);
    let ctx = Ctx::new(HostCommand::self_exec(HOST_SUBCOMMAND)?, library, scratch, args.keep);
    let selected: Vec<u8> =
        if args.only.is_empty() { (1..=8).collect() } else { args.only.clone() };
    if let Some(bad) = selected.iter().find(|id| !(1..=8).contains(*id)) {
        bail!("no workload {bad}: workloads are 1 to 8");
    }
    let context = preflight(&ctx)?;
    eprintln!(
        "bench: {} run of workloads {selected:?}; library {}",
        if args.quick { "quick" } else { "full" },
        ctx.library.display()
    );
    let sizes = Sizes::new(args.quick);
    let mut known = Known::default();
    let mut outcomes = Vec::new();
    for id in selected {
        outcomes.push(workloads::run(id, &ctx, &sizes, &mut known)?);
    }
    let table = report::table(&outcomes);
    println!("{table}");
    println!(
        "machine: {} x {}; fdatasync of 4 KiB in {}: p50 {:.2} ms, p99 {:.2} ms alone, p50 {:.2} ms, p99 {:.2} ms with 3 files at once (one per node); load average at start {}",
        context["cpus"],
        context["cpu"].as_str().unwrap_or("?"),
        ctx.scratch.display(),
        context["fdatasync_4k_p50_ms"].as_f64().unwrap_or(0.0),
        context["fdatasync_4k_p99_ms"].as_f64().unwrap_or(0.0),
        context["fdatasync_4k_3_files_p50_ms"].as_f64().unwrap_or(0.0),
        context["fdatasync_4k_3_files_p99_ms"].as_f64().unwrap_or(0.0),
        context["loadavg_at_start"].as_str().unwrap_or("?")
    );
    let mut context = context;
    context["quick"] = json!(args.quick);
    context["sizes"] = json!(format!("{sizes:?}"));
    let report = report::json(&outcomes, context);
    let text = serde_json::to_string_pretty(&report)?;
    std::fs::write(&args.json, text + "\n")
        .with_context(|| format!("writing {}", args.json.display()))?;
    eprintln!("bench: wrote {}", args.json.display());
    Ok(())
}

/// Starts one host with the extension to check it loads, and describes the machine.
fn preflight(ctx: &Ctx) -> Result<serde_json::Value> {
    let dir = tempfile::Builder::new().prefix("bench-preflight-").tempdir_in(&ctx.scratch)?;
    let host = HostProcess::spawn(&ctx.bare_host(dir.path(), "preflight", false))
        .context("starting a host with the extension")?;
    let version = host.query("SELECT sqlite_version()")?;
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let (fsync_p50, fsync_p99) = probe::fsync_ms(dir.path(), 1)?;
    let (fsync3_p50, fsync3_p99) = probe::fsync_ms(dir.path(), 3)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    Ok(json!({
        "sqlite_version": version.first().map(|row| row[0].clone()),
        "cpu": model,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "kernel": kernel.trim(),
        "library": ctx.library.display().to_string(),
        "scratch": ctx.scratch.display().to_string(),
        "fdatasync_4k_p50_ms": fsync_p50,
        "fdatasync_4k_p99_ms": fsync_p99,
        "fdatasync_4k_3_files_p50_ms": fsync3_p50,
        "fdatasync_4k_3_files_p99_ms": fsync3_p99,
        "loadavg_at_start": load.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    }))
}
