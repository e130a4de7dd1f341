//! Goal: a host's `usage` counts the context switches of threads that have ended, which the
//! bench's "context switches per commit" row needs: a host serves each client on a thread of
//! its own, and a client lives for one request, so /proc (live threads only) misses them.
//! Method: a plain host (no extension, no node) answers 100 pings, each from a fresh client.
//! Over them, `usage` must grow by more than the live threads' counts in /proc do, by at
//! least one switch for every other ended thread (each blocks reading its socket; it measured
//! about one each). No Raft ports.

mod common;

use std::time::Duration;

use ha_host::process::{HostProcess, HostSpec};
use ha_host::protocol::Request;

const PINGS: u64 = 100;

#[test]
fn usage_counts_the_switches_of_ended_request_threads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec = HostSpec::new(
        "plain",
        &common::host_command(),
        None,
        &dir.path().join("plain.db"),
        Vec::new(),
    );
    spec.plain = true;
    let host = HostProcess::spawn(&spec).expect("a plain host starts");
    let (usage_before, live_before) =
        (host.context_switches().expect("usage"), live_threads_switches(host.pid()));
    for _ in 0..PINGS {
        host.request(&Request::Ping, Duration::from_secs(10)).expect("ping");
    }
    let (usage_after, live_after) =
        (host.context_switches().expect("usage"), live_threads_switches(host.pid()));
    let (usage, live) = (usage_after - usage_before, live_after.saturating_sub(live_before));
    println!("over {PINGS} pings: usage {usage}, live threads {live} context switches");
    assert!(usage >= live + PINGS / 2, "usage grew by {usage}, the live threads' counts by {live}");
}

/// Voluntary and involuntary context switches of the process's live threads, from /proc.
fn live_threads_switches(pid: u32) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("the host's threads") {
        let Ok(status) = std::fs::read_to_string(task.expect("a thread").path().join("status"))
        else {
            continue;
        };
        total += status
            .lines()
            .filter_map(|line| {
                line.strip_prefix("voluntary_ctxt_switches:")
                    .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            })
            .filter_map(|count| count.trim().parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}
