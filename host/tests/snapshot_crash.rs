//! Goal: a snapshot is installed atomically. A node that crashes (SIGKILL) while it receives or
//! installs a snapshot holds, on disk, either its old database or the new one, never a mix;
//! restarted, it gets the snapshot again and converges with the leader.
//! Method: a leader with the smallest log bound (16 MiB) and two followers; one follower is
//! stopped while 24 MiB more are written, so the leader's log drops what the follower lacks
//! and the follower must take a ~40 MiB snapshot. It is SIGKILLed at several moments of that
//! transfer; after each kill a copy of its files is opened with plain SQLite: the integrity
//! check passes and the rows are exactly the old set or exactly the new one. Ports
//! 17690-17699 (shared with `cluster.rs`: cargo runs test binaries one at a time).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

mod common;

use common::{extension, host_command, PORTS};
use ha_host::cluster::free_udp_ports;
use ha_host::process::{HostProcess, HostSpec};
use ha_host::protocol::Statement;
use serde_json::{json, Value};

/// Rows per transaction (4 KiB each): a half-applied transaction shows as a count that is not
/// a multiple of this.
const ROWS_PER_TX: u64 = 1024;
/// Transactions before the follower stops, and while it is stopped.
const TXS_BEFORE: u64 = 4;
const TXS_WHILE_DOWN: u64 = 6;
/// How long after the transfer is seen starting each kill comes: dense where the transfer
/// ends and the install runs (about 1 s in, in a debug build on two cores).
const KILL_DELAYS_MS: [u64; 12] =
    [0, 400, 800, 900, 1000, 1100, 1200, 1300, 1400, 1600, 2000, 3000];

fn insert_tx() -> Vec<Statement> {
    vec![Statement::new(format!(
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {ROWS_PER_TX}) \
         INSERT INTO blobs(b) SELECT randomblob(4096) FROM c"
    ))]
}

fn status_u64(status: &Value, key: &str) -> u64 {
    status[key].as_u64().unwrap_or_else(|| panic!("ha_status() has no {key}: {status}"))
}

/// Polls `check` every 20 ms until it holds or `deadline` passes.
fn wait_for(what: &str, deadline: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + deadline;
    while !check() {
        assert!(Instant::now() < until, "{what}: not within {deadline:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a copy of a killed node's database and WAL with plain SQLite (the copy, so that its
/// recovery does not touch the node's files) and returns its row count, after checking its
/// integrity and that it holds whole transactions only.
fn rows_on_disk(db: &Path, scratch: &Path) -> u64 {
    let copy = scratch.join("copy.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
    }
    std::fs::copy(db, &copy).expect("copy the database file");
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    if wal.exists() {
        std::fs::copy(&wal, format!("{}-wal", copy.display())).expect("copy the WAL");
    }
    let connection = rusqlite::Connection::open(&copy).expect("open the copy");
    let integrity: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok", "the killed node's files are corrupt");
    let (count, max_id): (i64, i64) = connection
        .query_row("SELECT count(*), coalesce(max(id), 0) FROM blobs", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .expect("count the rows");
    let count = u64::try_from(count).expect("a count");
    assert_eq!(count % ROWS_PER_TX, 0, "a partly applied transaction: {count} rows");
    assert_eq!(
        i64::try_from(count).ok(),
        Some(max_id),
        "rows missing in the middle: {count} rows up to id {max_id}"
    );
    count
}

#[test]
fn a_crash_mid_snapshot_leaves_the_old_database_or_the_new_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ports = free_udp_ports(PORTS, 3, 0).expect("3 free ports in 17690-17699");
    let [addr1, addr2, addr3] = [0, 1, 2].map(|i| format!("127.0.0.1:{}", ports[i]));
    let init = format!("SELECT ha_init('{addr1}', '{{\"log_bytes_max\":16777216}}')");
    let leader_spec = HostSpec::new(
        "n1",
        &host_command(),
        Some(&extension()),
        &dir.path().join("n1.db"),
        vec![init],
    );
    let leader = HostProcess::spawn(&leader_spec).expect("start the leader");
    leader
        .exec(
            "main",
            vec![Statement::new("CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB)")],
            false,
        )
        .expect("schema");
    for _ in 0..TXS_BEFORE {
        leader.exec("main", insert_tx(), true).expect("write before the follower stops");
    }
    // n2 keeps the majority while n3, the follower under test, is down.
    let token = leader.token("voter").expect("a join token for n2");
    let join = format!("SELECT ha_join('{addr2}', '{addr1}', '{token}')");
    let steady_spec = HostSpec::new(
        "n2",
        &host_command(),
        Some(&extension()),
        &dir.path().join("n2.db"),
        vec![join],
    );
    let _steady = HostProcess::spawn(&steady_spec).expect("join the steady follower");
    let follower_db = dir.path().join("n3.db");
    let token = leader.token("voter").expect("a join token for n3");
    let join = format!("SELECT ha_join('{addr3}', '{addr1}', '{token}')");
    let follower_spec =
        HostSpec::new("n3", &host_command(), Some(&extension()), &follower_db, vec![join]);
    let mut follower = HostProcess::spawn(&follower_spec).expect("join the follower");
    let old_rows = TXS_BEFORE * ROWS_PER_TX;
    follower.barrier().expect("the follower catches up");
    follower.kill();
    assert_eq!(rows_on_disk(&follower_db, dir.path()), old_rows);

    for _ in 0..TXS_WHILE_DOWN {
        leader.exec("main", insert_tx(), true).expect("write while the follower is down");
    }
    let new_rows = (TXS_BEFORE + TXS_WHILE_DOWN) * ROWS_PER_TX;
    // The log check runs every second: wait until the leader snapshotted past what the
    // follower has and dropped the log, so only a snapshot can bring the follower up to date.
    let commit = status_u64(&leader.status().expect("status"), "commit_index");
    wait_for("the leader's log dropped behind a snapshot", Duration::from_secs(30), || {
        let status = leader.status().expect("leader status");
        status_u64(&status, "snapshot_index") >= commit
            && status_u64(&status, "log_bytes") <= 16 << 20
    });

    let mut seen = Vec::new();
    for delay in KILL_DELAYS_MS {
        let sent_before = leader.status().expect("status")["last_snapshot_transfer"].clone();
        follower = HostProcess::spawn(&follower_spec).expect("restart the follower");
        wait_for("a snapshot transfer to the follower starts", Duration::from_secs(20), || {
            let status = leader.status().expect("leader status");
            status["snapshot_transfers"].as_array().is_some_and(|t| !t.is_empty())
                || status["last_snapshot_transfer"] != sent_before
        });
        std::thread::sleep(Duration::from_millis(delay));
        follower.kill();
        let rows = rows_on_disk(&follower_db, dir.path());
        assert!(
            rows == old_rows || rows == new_rows,
            "killed {delay} ms into the transfer: {rows} rows, expected {old_rows} or {new_rows}"
        );
        seen.push((delay, rows));
        if rows == new_rows {
            // Installed before the kill: a restart needs no snapshot any more.
            break;
        }
    }
    assert!(
        seen.iter().any(|&(_, rows)| rows == old_rows),
        "no kill came before the install: {seen:?}"
    );
    eprintln!("rows on disk after each kill (ms after the transfer started, rows): {seen:?}");

    let follower = HostProcess::spawn(&follower_spec).expect("restart the follower for good");
    follower.barrier().expect("the follower catches up from the snapshot");
    let sample = "SELECT count(*), sum(length(b)), group_concat(hex(substr(b, 1, 8))) FROM blobs WHERE id % 97 = 0";
    let expected = leader.query(sample).expect("leader sample");
    assert_eq!(follower.query(sample).expect("follower sample"), expected);
    assert_eq!(
        follower.query("SELECT count(*) FROM blobs").expect("count"),
        vec![json!([new_rows])]
    );
    assert_eq!(follower.query("PRAGMA integrity_check").expect("integrity"), vec![json!(["ok"])]);
}
