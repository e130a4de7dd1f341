//! Workload 3: four writers at once on the writer node, each its own connection (and its own
//! TCP client, so its own host thread), autocommit single-row INSERTs for a fixed time. Reports
//! total commits/s and how many SQLITE_BUSY reached the application despite the 5 s busy timeout.

use std::time::Duration;

use anyhow::{anyhow, Result};
use ha_host::protocol::{codes, RepeatReport, Statement};
use serde_json::json;

use super::{each_mode, repeat, repeat_deadline, Known, Sizes, ROW_TEXT};
use crate::deploy::{Ctx, Mode};
use crate::report::{Outcome, Row};
use crate::stats::per_second;

const WRITERS: usize = 4;

pub fn run(ctx: &Ctx, sizes: &Sizes, known: &Known) -> Result<Outcome> {
    let mut outcome = Outcome { id: 3, name: "four writers", rows: Vec::new(), notes: Vec::new() };
    let mut rate = Row::new("total commits/s", "commits_per_s", true);
    let mut busy = Row::new("SQLITE_BUSY seen", "busy", false);
    let mut other = Row::new("other failed commits", "other_failures", false);
    let mut notes = Vec::new();
    each_mode(ctx, &Mode::ALL, &mut outcome, |mode, deployment| {
        deployment.setup(vec![Statement::new(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, writer INTEGER, v TEXT)",
        )])?;
        let writer = deployment.writer()?;
        let reports: Vec<Result<RepeatReport>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..WRITERS)
                .map(|w| {
                    scope.spawn(move || {
                        let insert = Statement::with_params(
                            "INSERT INTO t(writer, v) VALUES (?, ?)",
                            vec![json!(w), json!(ROW_TEXT)],
                        );
                        let mut spec = repeat(&format!("w{w}"), vec![insert], 10_000_000, false);
                        spec.duration_ms = Some(sizes.writers_ms);
                        Ok(writer.repeat(
                            spec,
                            repeat_deadline(Duration::from_millis(sizes.writers_ms)),
                        )?)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().map_err(|_| anyhow!("writer thread panicked")).and_then(|r| r))
                .collect()
        });
        let reports = reports.into_iter().collect::<Result<Vec<_>>>()?;
        let commits: u64 = reports.iter().map(|r| r.units_ok).sum();
        let elapsed_us = reports.iter().map(|r| r.elapsed_us).max().unwrap_or(0);
        let errors = reports.iter().flat_map(|r| r.errors.iter());
        let (busy_count, other_count) = errors.fold((0, 0), |(b, o), e| {
            if e.code == Some(codes::SQLITE_BUSY) {
                (b + e.count, o)
            } else {
                (b, o + e.count)
            }
        });
        rate.set(mode, per_second(commits, elapsed_us));
        busy.set(mode, busy_count as f64);
        other.set(mode, other_count as f64);
        let per_writer: Vec<String> = reports.iter().map(|r| r.units_ok.to_string()).collect();
        notes.push(format!("{}: commits per writer {}", mode.label(), per_writer.join(", ")));
        for error in reports.iter().flat_map(|r| r.errors.iter()) {
            notes.push(format!(
                "{}: {} x extended {:?}: {}",
                mode.label(),
                error.count,
                error.extended,
                error.message
            ));
        }
        Ok(())
    });
    let three = Mode::Nodes(3);
    let met = match (rate.get(three), known.serial_three_nodes) {
        (Some(v), Some(serial)) => Some(v >= serial),
        _ => None,
    };
    let text = match known.serial_three_nodes {
        Some(serial) => format!(">= serial rate ({serial:.0}/s)"),
        None => ">= serial rate (run workload 1 too)".into(),
    };
    rate.target(&text, met);
    busy.target("0", busy.get(three).map(|b| b == 0.0));
    outcome.rows = vec![rate, busy, other];
    outcome.notes.extend(notes);
    outcome.notes.push(format!(
        "{WRITERS} connections inserting for {} ms each, busy timeout 5 s",
        sizes.writers_ms
    ));
    Ok(outcome)
}
