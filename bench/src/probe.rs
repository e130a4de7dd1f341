//! What the machine costs right now, measured in the run so figures can be read against it:
//! an fdatasync of a 4 KiB append in the scratch directory (the floor of a durable commit),
//! alone and with three files synced at once, as the three nodes of a cluster on this one
//! disk do for every commit. The machine is shared, so this moves between runs; the report
//! carries it.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::Barrier;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::stats::percentile_ms;

const SYNCS: usize = 200;

/// p50 and p99, in ms, of fdatasync after a 4 KiB append, with `files` files appended to and
/// synced at the same time (one thread each).
pub fn fsync_ms(dir: &Path, files: usize) -> Result<(f64, f64)> {
    let start = &Barrier::new(files);
    let per_file: Vec<Result<Vec<u64>>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..files)
            .map(|n| {
                scope.spawn(move || sync_latencies_us(&dir.join(format!("fsync-probe-{n}")), start))
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| Err(anyhow::anyhow!("fsync probe thread panicked")))
            })
            .collect()
    });
    let mut latencies_us = Vec::with_capacity(SYNCS * files);
    for one in per_file {
        latencies_us.extend(one?);
    }
    let p50 = percentile_ms(&latencies_us, 50.0).unwrap_or(0.0);
    let p99 = percentile_ms(&latencies_us, 99.0).unwrap_or(0.0);
    Ok((p50, p99))
}

fn sync_latencies_us(path: &Path, start: &Barrier) -> Result<Vec<u64>> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)
        .context("fsync probe file")?;
    let block = [0x5au8; 4096];
    let mut latencies_us = Vec::with_capacity(SYNCS);
    start.wait();
    for _ in 0..SYNCS {
        file.write_all(&block)?;
        let before = Instant::now();
        file.sync_data()?;
        latencies_us.push(u64::try_from(before.elapsed().as_micros()).unwrap_or(u64::MAX));
    }
    drop(file);
    std::fs::remove_file(path)?;
    Ok(latencies_us)
}
