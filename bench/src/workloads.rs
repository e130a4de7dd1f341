//! The seven workloads of issue #4 and the archive's (issue #13), each in its own file, with
//! the sizes of a full and a `--quick` run. A workload runs its modes in order (plain SQLite,
//! 1 node, 3 nodes), each on a fresh deployment; a mode that fails becomes a note in the
//! report, not the end of the run.

pub mod archive;
pub mod catchup;
pub mod idle;
pub mod large;
pub mod reads;
pub mod serial;
pub mod writers;

use std::time::Duration;

use anyhow::Result;
use ha_host::protocol::{RepeatSpec, Statement};

use crate::deploy::{Ctx, Deployment, Mode};
use crate::report::Outcome;

/// How much each workload does.
#[derive(Debug, Clone)]
pub struct Sizes {
    pub serial_commits: u64,
    pub batch_transactions: u64,
    pub writers_ms: u64,
    pub large_mib: u64,
    pub read_table_rows: u64,
    pub reads_ms: u64,
    pub catchup_rows: u64,
    pub idle_settle_ms: u64,
}

impl Sizes {
    pub fn new(quick: bool) -> Sizes {
        if quick {
            Sizes {
                serial_commits: 300,
                batch_transactions: 20,
                writers_ms: 1_000,
                large_mib: 8,
                read_table_rows: 2_000,
                reads_ms: 1_000,
                catchup_rows: 5_000,
                idle_settle_ms: 500,
            }
        } else {
            Sizes {
                serial_commits: 5_000,
                batch_transactions: 300,
                writers_ms: 5_000,
                large_mib: 64,
                read_table_rows: 10_000,
                reads_ms: 5_000,
                catchup_rows: 100_000,
                idle_settle_ms: 3_000,
            }
        }
    }
}

/// Figures one workload hands to a later one's target.
#[derive(Debug, Default)]
pub struct Known {
    /// Serial commits/s of 3 nodes (the four-writer target is "at least the serial rate").
    pub serial_three_nodes: Option<f64>,
}

/// Runs workload `id` (1..=8).
pub fn run(id: u8, ctx: &Ctx, sizes: &Sizes, known: &mut Known) -> Result<Outcome> {
    match id {
        1 => serial::serial(ctx, sizes, known),
        2 => serial::batches(ctx, sizes),
        3 => writers::run(ctx, sizes, known),
        4 => large::run(ctx, sizes),
        5 => reads::run(ctx, sizes),
        6 => catchup::run(ctx, sizes),
        7 => idle::run(ctx, sizes),
        8 => archive::run(ctx, sizes),
        _ => anyhow::bail!("no workload {id} (1 to 8)"),
    }
}

/// Runs `measure` on a fresh deployment of each mode in order; a failure becomes a note.
pub fn each_mode(
    ctx: &Ctx,
    modes: &[Mode],
    outcome: &mut Outcome,
    mut measure: impl FnMut(Mode, &mut Deployment) -> Result<()>,
) {
    for &mode in modes {
        eprintln!("[{} {}] {}: starting", outcome.id, outcome.name, mode.label());
        let result =
            Deployment::start(ctx, mode).and_then(|mut deployment| measure(mode, &mut deployment));
        match result {
            Ok(()) => eprintln!("[{} {}] {}: done", outcome.id, outcome.name, mode.label()),
            Err(error) => {
                eprintln!("[{} {}] {}: FAILED: {error:#}", outcome.id, outcome.name, mode.label());
                outcome.notes.push(format!("{} failed: {error:#}", mode.label()));
            }
        }
    }
}

/// A `repeat` of `statements` on connection `conn`, `count` units (bounded by `duration_ms`).
pub fn repeat(conn: &str, statements: Vec<Statement>, count: u64, tx: bool) -> RepeatSpec {
    RepeatSpec {
        conn: conn.into(),
        statements,
        count,
        duration_ms: None,
        tx,
        latencies: false,
        seed: 42,
        stop_on_error: false,
    }
}

/// A deadline for waiting on a `repeat`: its own bound plus a margin for slow machines.
pub fn repeat_deadline(expected: Duration) -> Duration {
    expected * 4 + Duration::from_secs(60)
}

/// A row value of about 40 bytes, like a short record.
pub const ROW_TEXT: &str = "a row of about forty bytes of text......";

/// The failed units of a report as a note, if any.
pub fn failures_note(
    mode: Mode,
    what: &str,
    report: &ha_host::protocol::RepeatReport,
) -> Option<String> {
    if report.units_failed == 0 {
        return None;
    }
    let errors: Vec<String> = report
        .errors
        .iter()
        .map(|e| format!("{} x extended {:?} ({})", e.count, e.extended, e.message))
        .collect();
    Some(format!("{}: {what}: {} failed: {}", mode.label(), report.units_failed, errors.join("; ")))
}
