//! Workload 4: one large transaction of 1 MiB blobs (64 MiB; 8 MiB with --quick). Measures
//! the time from sending the transaction until every follower has applied it, and the peak
//! resident memory (VmHWM) of every host, against the size of the transaction.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ha_host::protocol::Statement;
use serde_json::json;

use super::{each_mode, repeat, repeat_deadline, Sizes};
use crate::deploy::{Ctx, Mode};
use crate::report::{Outcome, Row};

const MIB: u64 = 1 << 20;
/// How long followers may take to apply the transaction after the leader committed it.
const APPLY_DEADLINE: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(2);

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn run(ctx: &Ctx, sizes: &Sizes) -> Result<Outcome> {
    let mut outcome =
        Outcome { id: 4, name: "one large transaction", rows: Vec::new(), notes: Vec::new() };
    let bytes = sizes.large_mib * MIB;
    let megabytes = bytes as f64 / 1e6;
    let mut everywhere = Row::new("MB/s until every node has it", "mb_per_s_replicated", true);
    let mut committed = Row::new("MB/s until COMMIT returns", "mb_per_s_commit", true);
    let mut writer_peak = Row::new("peak RSS writer/leader MiB", "peak_rss_writer_mib", false);
    let mut follower_peak = Row::new("peak RSS follower (max) MiB", "peak_rss_follower_mib", false);
    let mut notes = Vec::new();
    each_mode(ctx, &Mode::ALL, &mut outcome, |mode, deployment| {
        deployment.setup(vec![Statement::new("CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB)")])?;
        let writer = deployment.writer()?;
        let followers = deployment.followers()?;
        let before_kib = writer.rss_kib()?;
        let insert = Statement::with_params(
            "INSERT INTO b VALUES (?, ?)",
            vec![json!({"$seq": 1}), json!({"$blob": MIB})],
        );
        let unit = vec![insert.times(u32::try_from(sizes.large_mib).context("size")?)];
        let mut spec = repeat("main", unit, 1, true);
        spec.stop_on_error = true;
        let started = Instant::now();
        let report = writer.repeat(spec, repeat_deadline(Duration::from_secs(30)))?;
        if report.units_ok != 1 {
            anyhow::bail!("the transaction failed: {:?}", report.errors);
        }
        committed.set(mode, megabytes / (report.elapsed_us as f64 / 1e6));
        if !followers.is_empty() {
            let target =
                writer.status()?["applied_index"].as_u64().context("leader applied_index")?;
            let until = Instant::now() + APPLY_DEADLINE;
            let mut waiting: Vec<_> = followers.clone();
            while !waiting.is_empty() {
                anyhow::ensure!(
                    Instant::now() < until,
                    "followers did not apply index {target} within {APPLY_DEADLINE:?}"
                );
                let mut still = Vec::new();
                for follower in waiting {
                    if follower.status()?["applied_index"].as_u64().unwrap_or(0) < target {
                        still.push(follower);
                    }
                }
                waiting = still;
                if !waiting.is_empty() {
                    std::thread::sleep(POLL);
                }
            }
        }
        everywhere.set(mode, megabytes / started.elapsed().as_secs_f64());
        let peak = writer.peak_rss_kib()?;
        writer_peak.set(mode, mib(peak));
        let mut growth = format!(
            "{}: writer RSS {:.0} MiB before, peak {:.0} MiB",
            mode.label(),
            mib(before_kib),
            mib(peak)
        );
        if !followers.is_empty() {
            let peaks =
                followers.iter().map(|f| f.peak_rss_kib()).collect::<Result<Vec<_>, _>>()?;
            let max = peaks.iter().copied().max().unwrap_or(0);
            follower_peak.set(mode, mib(max));
            growth.push_str(&format!(", followers' peak {:.0} MiB", mib(max)));
        }
        growth.push_str(&format!(" (transaction {} MiB)", sizes.large_mib));
        notes.push(growth);
        Ok(())
    });
    let met = everywhere.get(Mode::Nodes(3)).map(|v| v >= 100.0);
    everywhere.target(">= 100 MB/s", met);
    outcome.rows = vec![everywhere, committed, writer_peak, follower_peak];
    outcome.notes.extend(notes);
    outcome.notes.push(format!(
        "{} x 1 MiB pseudo-random blobs in one BEGIN IMMEDIATE..COMMIT; MB = 10^6 bytes",
        sizes.large_mib
    ));
    Ok(outcome)
}
