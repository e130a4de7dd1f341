//! Workload 6 (3 nodes only): a follower is SIGKILLed, the leader commits rows in 1,000-row
//! transactions while it is down, then it is restarted with its startup SQL (which resumes the
//! node): the time until it has applied everything the leader had, checked by counting rows.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use ha_host::protocol::Statement;
use serde_json::json;

use super::{each_mode, repeat, repeat_deadline, Sizes, ROW_TEXT};
use crate::deploy::{Ctx, Mode};
use crate::report::{Outcome, Row};

const BATCH: u64 = 1_000;
const CATCH_UP_DEADLINE: Duration = Duration::from_secs(300);

pub fn run(ctx: &Ctx, sizes: &Sizes) -> Result<Outcome> {
    let mut outcome =
        Outcome { id: 6, name: "follower catch-up", rows: Vec::new(), notes: Vec::new() };
    let rows = sizes.catchup_rows.max(BATCH) / BATCH * BATCH;
    let mut total = Row::new("s until it holds them", "catch_up_s", false);
    let mut ready = Row::new("s until restarted host ready", "restart_ready_s", false);
    let mut rate = Row::new("rows/s caught up", "catch_up_rows_per_s", false);
    let mut notes = Vec::new();
    each_mode(ctx, &[Mode::Nodes(3)], &mut outcome, |mode, deployment| {
        deployment.setup(vec![Statement::new("CREATE TABLE c(id INTEGER PRIMARY KEY, v TEXT)")])?;
        let leader = deployment.leader;
        let cluster = deployment.cluster.as_mut().context("a cluster")?;
        let follower = cluster.followers(leader)[0];
        cluster.kill(follower);
        let insert = Statement::with_params("INSERT INTO c(v) VALUES (?)", vec![json!(ROW_TEXT)])
            .times(u32::try_from(BATCH)?);
        let mut spec = repeat("main", vec![insert], rows / BATCH, true);
        spec.stop_on_error = true;
        let report =
            cluster.node(leader)?.repeat(spec, repeat_deadline(Duration::from_secs(60)))?;
        ensure!(
            report.units_failed == 0,
            "writes with a follower down failed: {:?}",
            report.errors
        );
        let target =
            cluster.node(leader)?.status()?["applied_index"].as_u64().context("applied_index")?;
        let started = Instant::now();
        cluster.restart(follower)?;
        let ready_s = started.elapsed().as_secs_f64();
        cluster.wait_applied(follower, target, CATCH_UP_DEADLINE)?;
        let total_s = started.elapsed().as_secs_f64();
        let count = cluster.node(follower)?.query("SELECT count(*) FROM c")?;
        ensure!(count == vec![json!([rows])], "the follower holds {count:?} rows, not {rows}");
        total.set(mode, total_s);
        ready.set(mode, ready_s);
        rate.set(mode, rows as f64 / total_s);
        notes.push(format!(
            "leader wrote {rows} rows while the follower was down at {:.0} rows/s",
            rows as f64 / (report.elapsed_us as f64 / 1e6)
        ));
        Ok(())
    });
    outcome.rows = vec![total, ready, rate];
    outcome.notes.extend(notes);
    outcome.notes.push(format!(
        "{rows} rows of ~40 bytes in {BATCH}-row transactions; no target in the issue"
    ));
    Ok(outcome)
}
