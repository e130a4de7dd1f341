//! What the machine costs right now, measured in the run so figures can be read against it:
//! an fdatasync of a 4 KiB append in the scratch directory (the floor of a durable commit).
//! The machine is shared, so this moves between runs; the report carries it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::stats::percentile_ms;

const SYNCS: usize = 200;

/// p50 and p99 of fdatasync after a 4 KiB append, in ms.
pub fn fsync_ms(dir: &Path) -> Result<(f64, f64)> {
    let path = dir.join("fsync-probe");
    let mut file =
        OpenOptions::new().create(true).truncate(true).write(true).open(&path).context("fsync probe file")?;
    let block = [0x5au8; 4096];
    let mut latencies_us = Vec::with_capacity(SYNCS);
    for _ in 0..SYNCS {
        file.write_all(&block)?;
        let before = Instant::now();
        file.sync_data()?;
        latencies_us.push(u64::try_from(before.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    drop(file);
    std::fs::remove_file(&path)?;
    let p50 = percentile_ms(&latencies_us, 50.0).unwrap_or(0.0);
    let p99 = percentile_ms(&latencies_us, 99.0).unwrap_or(0.0);
    Ok((p50, p99))
}
