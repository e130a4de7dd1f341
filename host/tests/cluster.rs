//! Goal: `ha-host` processes form a working cluster and the harness drives them.
//! Method: a plain host (no extension) checks the protocol (exec, repeat generators, error
//! codes); then 3 ha-host processes on 127.0.0.1 (ports 17690-17699): write on the leader, read
//! on a follower after `ha_barrier()`, SIGKILL the leader, and a new leader accepts writes that
//! the surviving follower then reads.

use std::time::{Duration, Instant};

use ha_host::process::{HostProcess, HostSpec};
use ha_host::protocol::{RepeatSpec, Statement};
use serde_json::json;

mod common;

use common::{host_command, start_cluster, write_until};

/// Leader election after a SIGKILL takes about a second; generous bound.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(20);

#[test]
fn plain_host_serves_the_protocol() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut spec =
        HostSpec::new("plain", &host_command(), None, &dir.path().join("p.db"), Vec::new());
    spec.plain = true;
    let host = HostProcess::spawn(&spec).expect("start a plain host");
    host.exec(
        "main",
        vec![Statement::new("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)")],
        false,
    )
    .expect("create");
    let insert = Statement::with_params(
        "INSERT INTO t VALUES (?, ?)",
        vec![json!({"$seq": 1}), json!({"$blob": 100})],
    )
    .times(10);
    let report = host
        .repeat(
            RepeatSpec {
                conn: "w1".into(),
                statements: vec![insert],
                count: 5,
                duration_ms: None,
                tx: true,
                latencies: true,
                seed: 1,
                stop_on_error: false,
            },
            Duration::from_secs(30),
        )
        .expect("repeat");
    assert_eq!((report.units_ok, report.units_failed, report.latencies_us.len()), (5, 0, 5));
    let rows =
        host.query("SELECT count(*), min(id), max(id), sum(length(v)) FROM t").expect("count");
    assert_eq!(rows, vec![json!([50, 1, 50, 5000])]);
    let reads = RepeatSpec {
        conn: "r1".into(),
        statements: vec![Statement::with_params(
            "SELECT id FROM t WHERE id = ?",
            vec![json!({"$rand": [1, 50]})],
        )],
        count: 100,
        duration_ms: Some(10_000),
        tx: false,
        latencies: false,
        seed: 2,
        stop_on_error: false,
    };
    assert_eq!(host.repeat(reads, Duration::from_secs(30)).expect("reads").rows, 100);
    // A duplicate key: SQLITE_CONSTRAINT_PRIMARYKEY (1555), and the transaction rolled back.
    let error = host
        .exec(
            "main",
            vec![
                Statement::new("INSERT INTO t VALUES (51, NULL)"),
                Statement::new("INSERT INTO t VALUES (1, NULL)"),
            ],
            true,
        )
        .expect_err("duplicate key");
    let sql = error.sql().expect("an SQLite error");
    assert_eq!((sql.code, sql.extended), (Some(19), Some(1555)));
    assert_eq!(
        host.query("SELECT count(*) FROM t WHERE id = 51").expect("count"),
        vec![json!([0])]
    );
    assert!(host.peak_rss_kib().expect("VmHWM") >= host.rss_kib().expect("VmRSS"));
}

#[test]
fn three_hosts_fail_over() {
    let mut cluster = start_cluster(3, 0);
    let leader = cluster.leader(Duration::from_secs(10)).expect("a leader");
    let schema = vec![
        Statement::new("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"),
        Statement::new("INSERT INTO t VALUES (1, 'before')"),
    ];
    write_until(cluster.node(leader).expect("leader runs"), schema, Duration::from_secs(10))
        .expect("write on the leader");
    let follower = cluster.followers(leader)[0];
    let node = cluster.node(follower).expect("follower runs");
    node.barrier().expect("barrier on a follower");
    assert_eq!(node.query("SELECT v FROM t WHERE id = 1").expect("read"), vec![json!(["before"])]);
    let refused = node
        .exec("main", vec![Statement::new("INSERT INTO t VALUES (2, 'follower')")], false)
        .expect_err("follower write");
    assert_eq!(
        refused.sql().and_then(|e| e.code),
        Some(8),
        "a follower refuses writes with SQLITE_READONLY: {refused}"
    );

    let killed_at = Instant::now();
    cluster.kill(leader);
    let new_leader = cluster.leader(FAILOVER_DEADLINE).expect("a new leader");
    assert_ne!(new_leader, leader);
    let insert = vec![Statement::new("INSERT INTO t VALUES (3, 'after')")];
    write_until(cluster.node(new_leader).expect("new leader runs"), insert, FAILOVER_DEADLINE)
        .expect("write on the new leader");
    eprintln!(
        "new leader n{} took a write {:?} after the SIGKILL",
        new_leader + 1,
        killed_at.elapsed()
    );
    let other = cluster.followers(new_leader)[0];
    let node = cluster.node(other).expect("survivor runs");
    node.barrier().expect("barrier on the surviving follower");
    assert_eq!(
        node.query("SELECT id, v FROM t ORDER BY id").expect("read"),
        vec![json!([1, "before"]), json!([3, "after"])]
    );
}

/// Applying the leader's entries on a follower needs the WAL write lock, so the follower's own
/// connections must not be able to sit on it: `BEGIN IMMEDIATE` there is refused at once
/// (SQLITE_READONLY, as any write on a follower), and a long read transaction holds up
/// nothing: it keeps its snapshot while the follower applies 8 s of writes behind it.
#[test]
fn a_follower_connection_cannot_hold_up_replication() {
    let cluster = start_cluster(3, 5);
    let leader = cluster.leader(Duration::from_secs(10)).expect("a leader");
    let schema = vec![Statement::new("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")];
    write_until(cluster.node(leader).expect("leader runs"), schema, Duration::from_secs(10))
        .expect("schema");
    let follower = cluster.followers(leader)[0];
    let node = cluster.node(follower).expect("follower runs");
    node.barrier().expect("barrier on the follower");
    let refused = node
        .exec("writer", vec![Statement::new("BEGIN IMMEDIATE")], false)
        .expect_err("BEGIN IMMEDIATE on a follower");
    assert_eq!(refused.sql().and_then(|e| e.extended), Some(8), "refused as read-only: {refused}");
    let snapshot = node
        .exec(
            "reader",
            vec![Statement::new("BEGIN"), Statement::new("SELECT count(*) FROM t")],
            false,
        )
        .expect("a read transaction on the follower");
    assert_eq!(snapshot.last().map(|r| r["rows"].clone()), Some(json!([[0]])));

    let until = Instant::now() + Duration::from_secs(8);
    let mut rows = 0;
    while Instant::now() < until {
        rows += 1;
        let insert =
            vec![Statement::with_params("INSERT INTO t VALUES (?, 'x')", vec![json!(rows)])];
        write_until(cluster.node(leader).expect("leader runs"), insert, Duration::from_secs(5))
            .expect("write on the leader");
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = node.status().expect("follower status");
    assert_eq!(status["role"], "follower", "{status}");
    let still = node
        .exec("reader", vec![Statement::new("SELECT count(*) FROM t")], false)
        .expect("read in the snapshot");
    assert_eq!(still[0]["rows"], json!([[0]]), "the read transaction keeps its snapshot");
    node.exec("reader", vec![Statement::new("COMMIT")], false).expect("end the read transaction");
    node.barrier().expect("barrier");
    assert_eq!(node.query("SELECT count(*) FROM t").expect("count"), vec![json!([rows])]);
}
