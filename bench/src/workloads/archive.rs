//! Workload 8: the continuous archive's cost and recovery point. On one deployment, serial
//! autocommit INSERTs without an archive and with one (a local directory, the default
//! 500 ms interval), in alternating rounds of the same run; meanwhile `ha_status()` is
//! sampled every 25 ms for the archive's lag (the recovery point). Then the database is
//! restored from the archive into a fresh host, timed (MB/s of database restored).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ha_host::process::HostProcess;
use serde_json::json;

use super::{each_mode, failures_note, repeat, repeat_deadline, Sizes, ROW_TEXT};
use crate::deploy::{Ctx, Mode};
use crate::report::{Outcome, Row};
use crate::stats::per_second;

const WARM_UP: u64 = 100;
/// Bound on the archive's catching up before the restore.
const CATCH_UP: Duration = Duration::from_secs(60);
/// How often the lag is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(25);
/// Rows of about 4 KiB put in before the timed runs, so the restore moves a database of some
/// size (about 40 MiB in a full run).
const FILL_ROWS_FULL: u64 = 10_000;
const FILL_ROWS_QUICK: u64 = 1_000;
/// Rounds of (archive off, archive on): several in a full run, because one node's commit rate
/// swings by 10-20% between runs of a few seconds (fsync times vary). An odd number, so the
/// last phase has the archive on and the restore that follows has everything to restore.
const ROUNDS_FULL: u64 = 3;
const ROUNDS_QUICK: u64 = 1;

fn insert() -> ha_host::protocol::Statement {
    ha_host::protocol::Statement::with_params("INSERT INTO t(v) VALUES (?)", vec![json!(ROW_TEXT)])
}

/// The archive object of a host's `ha_status()`.
fn archive_status(host: &HostProcess) -> Result<serde_json::Value> {
    Ok(host.status()?["archive"].clone())
}

/// Waits until the archive holds everything the leader applied (up to at least `index`).
fn wait_caught_up(host: &HostProcess, index: u64) -> Result<()> {
    let until = Instant::now() + CATCH_UP;
    loop {
        let status = archive_status(host)?;
        let archived = status["archived_index"].as_u64().unwrap_or(0);
        if archived >= index && status["lag_entries"].as_u64() == Some(0) {
            return Ok(());
        }
        if Instant::now() > until {
            bail!("the archive did not catch up to {index} within {CATCH_UP:?}: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls a host's `ha_status()` on its own connection and collects the archive's lag (ms).
struct Sampler {
    running: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<f64>>,
}

impl Sampler {
    fn start(host: &HostProcess) -> Result<Sampler> {
        let running = Arc::new(AtomicBool::new(true));
        let (flag, mut client) = (Arc::clone(&running), host.client()?);
        let thread = std::thread::spawn(move || {
            let mut lags_ms = Vec::new();
            while flag.load(Ordering::Acquire) {
                let status = ha_host::protocol::Request::Status;
                if let Ok(answer) = client.request(&status, Duration::from_secs(5)) {
                    if let Some(lag_s) = answer["status"]["archive"]["lag_s"].as_f64() {
                        lags_ms.push(lag_s * 1000.0);
                    }
                }
                std::thread::sleep(SAMPLE_EVERY);
            }
            lags_ms
        });
        Ok(Sampler { running, thread })
    }

    fn stop(self) -> Result<Vec<f64>> {
        self.running.store(false, Ordering::Release);
        self.thread.join().map_err(|_| anyhow::anyhow!("the lag sampler panicked"))
    }
}

/// The timed phases of one mode, summed over rounds.
#[derive(Default)]
struct Phase {
    units_ok: u64,
    elapsed_us: u64,
}

impl Phase {
    fn add(&mut self, report: &ha_host::protocol::RepeatReport) {
        self.units_ok += report.units_ok;
        self.elapsed_us += report.elapsed_us;
    }

    fn rate(&self) -> f64 {
        per_second(self.units_ok, self.elapsed_us)
    }
}

pub fn run(ctx: &Ctx, sizes: &Sizes) -> Result<Outcome> {
    let mut outcome =
        Outcome { id: 8, name: "serial INSERT, archive on", rows: Vec::new(), notes: Vec::new() };
    let mut off = Row::new("commits/s, archive off", "commits_per_s_archive_off", false);
    let mut on = Row::new("commits/s, archive on", "commits_per_s_archive_on", false);
    let mut ratio = Row::new("archive on / off (x)", "archive_on_over_off", false);
    let mut lag = Row::new("archive lag p99 ms", "archive_lag_p99_ms", false);
    let mut restore_speed = Row::new("restore MB/s", "restore_mb_per_s", false);
    let mut notes = Vec::new();
    let quick = sizes.serial_commits < 1_000;
    let fill_rows = if quick { FILL_ROWS_QUICK } else { FILL_ROWS_FULL };
    let rounds = if quick { ROUNDS_QUICK } else { ROUNDS_FULL };
    each_mode(ctx, &[Mode::Nodes(1), Mode::Nodes(3)], &mut outcome, |mode, deployment| {
        deployment.setup(vec![ha_host::protocol::Statement::new(
            "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
        )])?;
        let writer = deployment.writer()?;
        let fill = format!(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {fill_rows}) \
             INSERT INTO t(v) SELECT hex(randomblob(2000)) FROM n"
        );
        writer.exec("main", vec![ha_host::protocol::Statement::new(fill)], true)?;
        writer.repeat(
            repeat("main", vec![insert()], WARM_UP, false),
            repeat_deadline(Duration::from_secs(5)),
        )?;
        let deadline = repeat_deadline(Duration::from_millis(sizes.serial_commits * 20));
        let (mut timed_off, mut timed_on, mut lags_ms) =
            (Phase::default(), Phase::default(), Vec::new());
        let (mut url, mut archive_dirs) = (String::new(), Vec::new());
        // Rounds alternate which phase goes first, so neither gains from the order (the table
        // grows, caches warm); each archive-on phase starts a fresh archive, caught up before
        // the clock starts, and ends with the archive set to NULL again.
        for round in 0..rounds {
            let archive_first = round % 2 == 1;
            for (phase, archive_on) in [archive_first, !archive_first].into_iter().enumerate() {
                let last_phase = round + 1 == rounds && phase == 1;
                if archive_on {
                    let dir = tempfile::Builder::new()
                        .prefix("bench-archive-")
                        .disable_cleanup(ctx.keep)
                        .tempdir_in(&ctx.scratch)?;
                    url = format!("file://{}", dir.path().display());
                    archive_dirs.push(dir);
                    writer.query(&format!("SELECT ha_archive('{url}')"))?;
                    let started_at = writer.barrier()? as u64;
                    wait_caught_up(writer, started_at)?;
                }
                // The same ha_status() polling runs in both phases, so it costs both the same.
                let sampler = Sampler::start(writer)?;
                let report = writer
                    .repeat(repeat("main", vec![insert()], sizes.serial_commits, false), deadline);
                let samples = sampler.stop()?;
                let report = report?;
                let what = if archive_on { "commits, archive on" } else { "commits, archive off" };
                notes.extend(failures_note(mode, what, &report));
                if archive_on {
                    timed_on.add(&report);
                    lags_ms.extend(samples);
                    if !last_phase {
                        writer.query("SELECT ha_archive(NULL)")?;
                    }
                } else {
                    timed_off.add(&report);
                }
            }
        }
        let (rate_off, rate_on) = (timed_off.rate(), timed_on.rate());
        off.set(mode, rate_off);
        on.set(mode, rate_on);
        if rate_off > 0.0 {
            ratio.set(mode, rate_on / rate_off);
        }
        lags_ms.sort_by(f64::total_cmp);
        if let Some(p99) =
            lags_ms.get(((lags_ms.len() as f64 * 0.99).ceil() as usize).saturating_sub(1))
        {
            lag.set(mode, *p99);
            notes.push(format!(
                "{}: {} lag samples, max {:.0} ms",
                mode.label(),
                lags_ms.len(),
                lags_ms.last().copied().unwrap_or(0.0)
            ));
        }

        let last = writer.barrier()? as u64;
        wait_caught_up(writer, last)?;
        let restore_dir = tempfile::Builder::new()
            .prefix("bench-restore-")
            .disable_cleanup(ctx.keep)
            .tempdir_in(&ctx.scratch)?;
        let host = HostProcess::spawn(&ctx.bare_host(restore_dir.path(), "restored", false))
            .context("starting the host to restore into")?;
        let began = Instant::now();
        let rows = host.query(&format!("SELECT ha_restore('{url}')"))?;
        let elapsed = began.elapsed();
        let restored = rows.first().and_then(|r| r.get(0)).and_then(serde_json::Value::as_u64);
        // The archive may end just after `last`, at the leader's record of its progress
        // (`Command::Archived`), which changes no page.
        if !restored.is_some_and(|index| (last..=last + 2).contains(&index)) {
            bail!("the restore answered {rows:?}, expected index {last} or just after it");
        }
        let bytes = host
            .query("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()")?;
        let bytes =
            bytes.first().and_then(|r| r.get(0)).and_then(serde_json::Value::as_f64).unwrap_or(0.0);
        restore_speed.set(mode, bytes / 1e6 / elapsed.as_secs_f64());
        notes.push(format!(
            "{}: restored {:.1} MB (index {}) in {:.2} s",
            mode.label(),
            bytes / 1e6,
            restored.unwrap_or_default(),
            elapsed.as_secs_f64()
        ));
        Ok(())
    });
    let three = Mode::Nodes(3);
    ratio.target(">= 0.9x archive off", ratio.get(three).map(|r| r >= 0.9));
    lag.target("<= 1,000 ms (the recovery point)", lag.get(three).map(|v| v <= 1_000.0));
    outcome.rows = vec![off, on, ratio, lag, restore_speed];
    outcome.notes.extend(notes);
    outcome.notes.push(format!(
        "{rounds} rounds of {} timed commits with the archive off and on (order alternating), to a local directory (interval 500 ms); {fill_rows} rows of 4 KiB first; lag = ha_status().archive.lag_s every 25 ms",
        sizes.serial_commits
    ));
    Ok(outcome)
}
