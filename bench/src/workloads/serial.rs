//! Workloads 1 and 2: serial single-row autocommit INSERTs from one connection (commits/s,
//! p50, p99), and 100-row transactions (rows/s). Timing is done inside the host.

use std::time::Duration;

use anyhow::Result;
use ha_host::protocol::Statement;
use serde_json::json;

use super::{each_mode, failures_note, repeat, repeat_deadline, Known, Sizes, ROW_TEXT};
use crate::deploy::{Ctx, Mode};
use crate::report::{Outcome, Row};
use crate::stats::{per_second, percentile_ms};

/// Commits before the timed ones (statement cache, file growth, connections warm).
const WARM_UP: u64 = 100;
/// Rows per transaction in workload 2.
const ROWS_PER_TRANSACTION: u32 = 100;

fn insert() -> Statement {
    Statement::with_params("INSERT INTO t(v) VALUES (?)", vec![json!(ROW_TEXT)])
}

fn create() -> Vec<Statement> {
    vec![Statement::new("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")]
}

pub fn serial(ctx: &Ctx, sizes: &Sizes, known: &mut Known) -> Result<Outcome> {
    let mut outcome =
        Outcome { id: 1, name: "serial autocommit INSERT", rows: Vec::new(), notes: Vec::new() };
    let mut rate = Row::new("commits/s", "commits_per_s", true);
    let mut p50 = Row::new("p50 ms", "p50_ms", false);
    let mut p99 = Row::new("p99 ms", "p99_ms", false);
    let mut cpu = Row::new("CPU us per commit (all hosts)", "cpu_us_per_commit", false);
    let mut switches =
        Row::new("context switches per commit", "context_switches_per_commit", false);
    let mut notes = Vec::new();
    each_mode(ctx, &Mode::ALL, &mut outcome, |mode, deployment| {
        deployment.setup(create())?;
        let writer = deployment.writer()?;
        writer.repeat(
            repeat("main", vec![insert()], WARM_UP, false),
            repeat_deadline(Duration::from_secs(5)),
        )?;
        let mut spec = repeat("main", vec![insert()], sizes.serial_commits, false);
        spec.latencies = true;
        let (cpu_before, switches_before) =
            (deployment.cpu_time()?, deployment.context_switches()?);
        let report = writer
            .repeat(spec, repeat_deadline(Duration::from_millis(sizes.serial_commits * 20)))?;
        let cpu_used = deployment.cpu_time()?.saturating_sub(cpu_before);
        let switched = deployment.context_switches()?.saturating_sub(switches_before);
        if report.units_ok > 0 {
            cpu.set(mode, cpu_used.as_micros() as f64 / report.units_ok as f64);
            switches.set(mode, switched as f64 / report.units_ok as f64);
        }
        rate.set(mode, per_second(report.units_ok, report.elapsed_us));
        if let Some(ms) = percentile_ms(&report.latencies_us, 50.0) {
            p50.set(mode, ms);
        }
        if let Some(ms) = percentile_ms(&report.latencies_us, 99.0) {
            p99.set(mode, ms);
        }
        notes.extend(failures_note(mode, "commits", &report));
        Ok(())
    });
    let three = Mode::Nodes(3);
    known.serial_three_nodes = rate.get(three);
    let met = rate.get(three).zip(rate.ratio_of(three)).map(|(v, r)| v >= 2_000.0 && r >= 0.45);
    rate.target(">= 2,000/s and >= 0.45x plain", met);
    let met = p99.get(three).map(|v| v <= 2.0);
    p99.target("<= 2 ms", met);
    outcome.rows = vec![rate, p50, p99, cpu, switches];
    outcome.notes.extend(notes);
    outcome.notes.push(format!(
        "{} timed commits after {WARM_UP} warm-up commits, one connection, ~40-byte rows",
        sizes.serial_commits
    ));
    Ok(outcome)
}

pub fn batches(ctx: &Ctx, sizes: &Sizes) -> Result<Outcome> {
    let mut outcome =
        Outcome { id: 2, name: "100-row transactions", rows: Vec::new(), notes: Vec::new() };
    let mut rate = Row::new("rows/s", "rows_per_s", true);
    let mut p50 = Row::new("p50 ms per transaction", "p50_ms", false);
    let mut notes = Vec::new();
    each_mode(ctx, &Mode::ALL, &mut outcome, |mode, deployment| {
        deployment.setup(create())?;
        let writer = deployment.writer()?;
        let unit = || vec![insert().times(ROWS_PER_TRANSACTION)];
        writer.repeat(repeat("main", unit(), 5, true), repeat_deadline(Duration::from_secs(5)))?;
        let mut spec = repeat("main", unit(), sizes.batch_transactions, true);
        spec.latencies = true;
        let report = writer
            .repeat(spec, repeat_deadline(Duration::from_millis(sizes.batch_transactions * 50)))?;
        rate.set(
            mode,
            per_second(report.units_ok * u64::from(ROWS_PER_TRANSACTION), report.elapsed_us),
        );
        if let Some(ms) = percentile_ms(&report.latencies_us, 50.0) {
            p50.set(mode, ms);
        }
        notes.extend(failures_note(mode, "transactions", &report));
        Ok(())
    });
    let met = rate.get(Mode::Nodes(3)).map(|v| v >= 100_000.0);
    rate.target(">= 100,000 rows/s", met);
    outcome.rows = vec![rate, p50];
    outcome.notes.extend(notes);
    outcome.notes.push(format!(
        "{} transactions of {ROWS_PER_TRANSACTION} single-row INSERTs (BEGIN IMMEDIATE..COMMIT)",
        sizes.batch_transactions
    ));
    Ok(outcome)
}
