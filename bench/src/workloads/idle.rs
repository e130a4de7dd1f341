//! Workload 7: resident memory (VmRSS) of idle nodes against the same host process without a
//! node: the "plain" column is a host that loaded the extension and opened its database through
//! `ha` but made no node; the cluster columns are the largest idle node of each cluster.

use std::time::Duration;

use anyhow::Result;
use ha_host::process::HostProcess;

use super::{each_mode, Sizes};
use crate::deploy::{Ctx, Mode};
use crate::report::{Outcome, Row};

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn run(ctx: &Ctx, sizes: &Sizes) -> Result<Outcome> {
    let mut outcome =
        Outcome { id: 7, name: "idle node memory", rows: Vec::new(), notes: Vec::new() };
    let settle = Duration::from_millis(sizes.idle_settle_ms);
    let dir = tempfile::Builder::new().prefix("bench-idle-").tempdir_in(&ctx.scratch)?;
    let mut base_spec = ctx.bare_host(dir.path(), "bare", false);
    let base = HostProcess::spawn(&base_spec)?;
    base.query("SELECT count(*) FROM sqlite_schema")?;
    base_spec.extension = None;
    base_spec.plain = true;
    base_spec.name = "no-extension".into();
    base_spec.db = dir.path().join("no-extension.db");
    let without = HostProcess::spawn(&base_spec)?;
    without.query("SELECT count(*) FROM sqlite_schema")?;
    std::thread::sleep(settle);
    let base_kib = base.rss_kib()?;
    let without_kib = without.rss_kib()?;
    drop((base, without));
    let mut rss = Row::new("RSS MiB (largest node)", "rss_mib", false);
    let mut over = Row::new("MiB over the host", "rss_over_host_mib", false);
    rss.set(Mode::Plain, mib(base_kib));
    let mut notes = vec![format!(
        "host without a node: {:.1} MiB with the extension loaded, {:.1} MiB without it",
        mib(base_kib),
        mib(without_kib)
    )];
    each_mode(ctx, &[Mode::Nodes(1), Mode::Nodes(3)], &mut outcome, |mode, deployment| {
        std::thread::sleep(settle);
        let mut hosts = vec![deployment.writer()?];
        hosts.extend(deployment.followers()?);
        let sizes = hosts.iter().map(|h| h.rss_kib()).collect::<Result<Vec<_>, _>>()?;
        let largest = sizes.iter().copied().max().unwrap_or(0);
        rss.set(mode, mib(largest));
        over.set(mode, mib(largest.saturating_sub(base_kib)));
        let each: Vec<String> = sizes.iter().map(|k| format!("{:.1}", mib(*k))).collect();
        notes.push(format!("{}: RSS of leader, followers: {} MiB", mode.label(), each.join(", ")));
        Ok(())
    });
    let met = over.get(Mode::Nodes(3)).map(|v| v <= 30.0);
    over.target("<= 30 MiB", met);
    outcome.rows = vec![rss, over];
    outcome.notes.extend(notes);
    outcome.notes.push(format!("measured after {} ms idle", sizes.idle_settle_ms));
    Ok(outcome)
}
