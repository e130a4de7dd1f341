//! Workload 5: point SELECTs by primary key on a follower (on the only node for 1 node, on a
//! second connection of the same host for plain SQLite) while the writer takes autocommit
//! INSERTs into another table for the whole time. Reports reads/s and the concurrent writes/s.

use std::time::Duration;

use anyhow::{anyhow, Result};
use ha_host::protocol::Statement;
use serde_json::json;

use super::{each_mode, failures_note, repeat, repeat_deadline, Sizes, ROW_TEXT};
use crate::deploy::{Ctx, Mode};
use crate::report::{Outcome, Row};
use crate::stats::per_second;

/// Rows per setup transaction.
const FILL_BATCH: u64 = 1_000;
/// The writer starts this much earlier and stops this much later than the reader.
const WRITE_MARGIN_MS: u64 = 300;

pub fn run(ctx: &Ctx, sizes: &Sizes) -> Result<Outcome> {
    let mut outcome =
        Outcome { id: 5, name: "point reads during writes", rows: Vec::new(), notes: Vec::new() };
    let mut reads = Row::new("reads/s (follower)", "reads_per_s", true);
    let mut writes = Row::new("writes/s meanwhile", "writes_per_s", true);
    let mut notes = Vec::new();
    let rows = sizes.read_table_rows.max(FILL_BATCH) / FILL_BATCH * FILL_BATCH;
    each_mode(ctx, &Mode::ALL, &mut outcome, |mode, deployment| {
        deployment.setup(vec![
            Statement::new("CREATE TABLE r(id INTEGER PRIMARY KEY, v TEXT)"),
            Statement::new("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)"),
        ])?;
        let writer = deployment.writer()?;
        let fill = Statement::with_params("INSERT INTO r(v) VALUES (?)", vec![json!(ROW_TEXT)])
            .times(u32::try_from(FILL_BATCH)?);
        let mut spec = repeat("main", vec![fill], rows / FILL_BATCH, true);
        spec.stop_on_error = true;
        writer.repeat(spec, repeat_deadline(Duration::from_secs(10)))?;
        deployment.sync_followers()?;
        let reader = deployment.reader()?;
        let (read_report, write_report) = std::thread::scope(|scope| {
            let write = scope.spawn(|| {
                let insert =
                    Statement::with_params("INSERT INTO w(v) VALUES (?)", vec![json!(ROW_TEXT)]);
                let mut spec = repeat("writer", vec![insert], 10_000_000, false);
                spec.duration_ms = Some(sizes.reads_ms + 2 * WRITE_MARGIN_MS);
                writer.repeat(spec, repeat_deadline(Duration::from_millis(sizes.reads_ms)))
            });
            std::thread::sleep(Duration::from_millis(WRITE_MARGIN_MS));
            let lookup = Statement::with_params(
                "SELECT v FROM r WHERE id = ?",
                vec![json!({"$rand": [1, rows]})],
            );
            let mut spec =
                repeat("reader", vec![lookup], ha_host::protocol::REPEAT_COUNT_MAX, false);
            spec.duration_ms = Some(sizes.reads_ms);
            let read = reader.repeat(spec, repeat_deadline(Duration::from_millis(sizes.reads_ms)));
            (read, write.join().map_err(|_| anyhow!("writer thread panicked")))
        });
        let (read_report, write_report) = (read_report?, write_report??);
        anyhow::ensure!(
            read_report.rows == read_report.units_ok,
            "a point read found no row ({} rows for {} reads)",
            read_report.rows,
            read_report.units_ok
        );
        reads.set(mode, per_second(read_report.units_ok, read_report.elapsed_us));
        writes.set(mode, per_second(write_report.units_ok, write_report.elapsed_us));
        notes.extend(failures_note(mode, "reads", &read_report));
        notes.extend(failures_note(mode, "writes", &write_report));
        Ok(())
    });
    let met = reads.ratio_of(Mode::Nodes(3)).map(|r| r >= 0.90);
    reads.target(">= 0.90x plain", met);
    outcome.rows = vec![reads, writes];
    outcome.notes.extend(notes);
    outcome.notes.push(format!(
        "{rows} rows; one reader connection for {} ms; plain and 1 node read on the writer's host",
        sizes.reads_ms
    ));
    Ok(outcome)
}
