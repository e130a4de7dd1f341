//! Goal: several connections writing at once on the leader share the WAL write lock fairly,
//! and none gets `SQLITE_BUSY` with the hosts' normal busy timeout (5 s). A commit holds that
//! lock for a Raft round trip, so without turns SQLite's busy handler starves all but one
//! writer until its timeout runs out.
//! Method: a 3-node cluster; four connections on the leader insert single rows in autocommit
//! for 4 s (each on its own host thread); every insert succeeds and each writer gets at least
//! a fifth of the average share. Ports 17690-17699 (test binaries run one at a time).

mod common;

use std::time::Duration;

use ha_host::protocol::{RepeatSpec, Statement};
use serde_json::json;

const WRITERS: u64 = 4;
const WRITE_FOR_MS: u64 = 4_000;

#[test]
fn four_writers_on_the_leader_take_turns_without_busy_errors() {
    let cluster = common::start_cluster(3, 0);
    let leader = cluster
        .node(cluster.leader(Duration::from_secs(10)).expect("a leader"))
        .expect("leader runs");
    leader
        .exec(
            "main",
            vec![Statement::new("CREATE TABLE t(id INTEGER PRIMARY KEY, writer INTEGER)")],
            true,
        )
        .expect("schema");
    let reports: Vec<_> = std::thread::scope(|scope| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                scope.spawn(move || {
                    let spec = RepeatSpec {
                        conn: format!("w{w}"),
                        statements: vec![Statement::with_params(
                            "INSERT INTO t(writer) VALUES (?)",
                            vec![json!(w)],
                        )],
                        count: 10_000_000,
                        duration_ms: Some(WRITE_FOR_MS),
                        tx: false,
                        latencies: false,
                        seed: w,
                        stop_on_error: false,
                    };
                    leader
                        .repeat(spec, Duration::from_millis(WRITE_FOR_MS) + Duration::from_secs(30))
                        .expect("repeat")
                })
            })
            .collect();
        writers.into_iter().map(|w| w.join().expect("writer thread")).collect()
    });
    let commits: Vec<u64> = reports.iter().map(|r| r.units_ok).collect();
    eprintln!("commits per writer: {commits:?}");
    for report in &reports {
        assert_eq!(report.units_failed, 0, "failed inserts: {:?}", report.errors);
    }
    let average = commits.iter().sum::<u64>() / WRITERS;
    assert!(average > 0, "nothing committed");
    assert!(commits.iter().all(|&c| c * 5 >= average), "a writer was starved: {commits:?}");
    let total = leader.query("SELECT count(*) FROM t").expect("count");
    assert_eq!(total, vec![json!([commits.iter().sum::<u64>()])]);
}
