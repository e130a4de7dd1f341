//! The continuous archive and point-in-time restore, end to end, with real `sqlite3` processes,
//! against a directory (`file://`) and a real S3 server (`s3s-fs` on 127.0.0.1).
//!
//! - Point in time: during a write workload the test records the database's contents, log
//!   index and time at 6 moments, then restores each moment from the archive (by time, and
//!   some by index) into a fresh database and compares the contents; a restore to just before
//!   a `DROP TABLE` brings the table back; a restored database passes `integrity_check` and
//!   starts a new cluster with `ha_init`.
//! - A damaged object is refused at restore with a clear error, and nothing is imported.
//! - The leader SIGKILLed while archiving: the new leader resumes, and a restore of the latest
//!   state after the kill holds every committed row.
//! - The store down for 30 s (the S3 server stopped; for a directory, the directory replaced
//!   by a file): every commit meanwhile succeeds, `ha_status()` shows the error, and the
//!   archive catches up once the store is back.

mod common;

use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use common::s3::S3Server;
use common::shell::Shell;
use serde_json::Value;

/// This file's ports; other test files use other ranges.
const PORTS: Range<u16> = 17700..17800;
/// Bound on waiting for the archive to catch up.
const CATCH_UP: Duration = Duration::from_secs(30);

/// Where a test archives: its URL and the options naming the store (endpoint, credentials).
struct Target {
    url: String,
    store_options: serde_json::Map<String, Value>,
}

impl Target {
    fn file(dir: &Path) -> Target {
        Target { url: format!("file://{}", dir.display()), store_options: serde_json::Map::new() }
    }

    fn s3(server: &S3Server, prefix: &str) -> Target {
        let options: Value = serde_json::from_str(&server.options_json()).expect("options JSON");
        Target {
            url: format!("s3://{}/{prefix}", server.bucket()),
            store_options: options.as_object().cloned().unwrap_or_default(),
        }
    }

    /// The options JSON with `extra` added to the store's.
    fn options(&self, extra: Value) -> String {
        let mut all = self.store_options.clone();
        if let Value::Object(extra) = extra {
            all.extend(extra);
        }
        Value::Object(all).to_string()
    }
}

/// An archive directory that a test can take away (replaced by a file, so the store fails as
/// a lost mount would) and bring back.
struct MovableArchive {
    _parent: tempfile::TempDir,
    root: std::path::PathBuf,
    away: std::path::PathBuf,
}

impl MovableArchive {
    fn new() -> MovableArchive {
        let parent = tempfile::tempdir().expect("archive dir");
        let (root, away) = (parent.path().join("archive"), parent.path().join("away"));
        MovableArchive { _parent: parent, root, away }
    }

    fn target(&self) -> Target {
        Target::file(&self.root)
    }

    fn take_away(&self) {
        std::fs::rename(&self.root, &self.away).expect("move the archive away");
        std::fs::write(&self.root, b"not a directory").expect("a file in its place");
    }

    fn bring_back(&self) {
        std::fs::remove_file(&self.root).expect("remove the file");
        std::fs::rename(&self.away, &self.root).expect("bring the archive back");
    }
}

fn start_node(dir: &Path, name: &str, port: u16) -> Shell {
    let mut shell = Shell::start(name, dir);
    shell.ok(&format!(
        ".load ./libdqlite_vfs\n.open file:{name}.db?vfs=ha\n.timeout 5000\nSELECT ha_init('127.0.0.1:{port}');"
    ));
    shell
}

fn archive_status(shell: &mut Shell) -> Value {
    shell.status()["archive"].clone()
}

/// Waits until the archive holds everything this leader has applied, up to at least `index`.
fn wait_archived(shell: &mut Shell, index: u64) -> Value {
    let until = Instant::now() + CATCH_UP;
    loop {
        let status = archive_status(shell);
        let archived = status["archived_index"].as_u64().unwrap_or(0);
        if archived >= index && status["lag_entries"].as_u64() == Some(0) {
            return status;
        }
        assert!(Instant::now() < until, "the archive did not catch up to {index}: {status}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn contents(shell: &mut Shell, table: &str) -> String {
    shell.ok(&format!(
        "SELECT group_concat(k || '=' || v, ',') FROM (SELECT * FROM {table} ORDER BY k);"
    ))
}

fn now_rfc3339(shell: &mut Shell) -> String {
    // Prefixed: the harness takes a line that starts with a timestamp for a log line.
    let line = shell.ok("SELECT 'at ' || strftime('%Y-%m-%dT%H:%M:%fZ', 'now');");
    line.trim().trim_start_matches("at ").to_owned()
}

/// Restores into a new database `name` in `dir` and returns (shell, index restored) or the
/// error text.
fn restore(
    dir: &Path,
    name: &str,
    target: &Target,
    options: Value,
) -> (Shell, Result<u64, String>) {
    let mut shell = Shell::start(name, dir);
    shell.ok(&format!(".load ./libdqlite_vfs\n.open file:{name}.db?vfs=ha"));
    let sql = format!("SELECT ha_restore('{}', '{}');", target.url, target.options(options));
    let result = shell
        .sql_within(&sql, Duration::from_secs(60))
        .map(|out| out.trim().parse::<u64>().expect("an index"));
    (shell, result)
}

/// A restore of the latest moment reached `last`, the last index the test committed; it may
/// end a little later, at the leader's record of the archive's progress (`Command::Archived`),
/// which changes nothing in the database (the callers compare contents too).
fn assert_latest(restored: &Result<u64, String>, last: u64) {
    match restored {
        Ok(index) => assert!(
            (last..=last + 2).contains(index),
            "restored index {index}, expected {last} or just after it"
        ),
        Err(error) => panic!("the latest restore failed: {error}"),
    }
}

/// A moment of the workload: what the database held, at which index and time.
struct Moment {
    index: u64,
    at: String,
    rows: String,
}

fn point_in_time(target: &Target, dir: &Path) {
    let port = common::free_udp_port(PORTS);
    let mut leader = start_node(dir, "n1", port);
    leader.ok("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT); CREATE TABLE keep(k INTEGER PRIMARY KEY, v TEXT);");
    leader.ok(&format!(
        "SELECT ha_archive('{}', '{}');",
        target.url,
        target.options(serde_json::json!({"interval_ms": 200}))
    ));
    // History is restorable from the first base image on: wait for it.
    let start = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
    wait_archived(&mut leader, start);
    let mut moments = Vec::new();
    for round in 0..6u32 {
        // Inserts, updates and deletes, in several transactions per round.
        for step in 0..5u32 {
            let k = round * 100 + step;
            leader.ok(&format!(
                "INSERT INTO t VALUES ({k}, 'r{round}s{step}'); UPDATE t SET v = v || '+' WHERE k % 7 = {step}; DELETE FROM t WHERE k = {};",
                k.saturating_sub(150)
            ));
        }
        leader.ok(&format!("INSERT INTO keep VALUES ({round}, randomblob(3000));"));
        let index = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
        std::thread::sleep(Duration::from_millis(30));
        let at = now_rfc3339(&mut leader);
        let rows = contents(&mut leader, "t");
        moments.push(Moment { index, at, rows });
        std::thread::sleep(Duration::from_millis(30));
    }
    // A table dropped by mistake.
    leader.ok("CREATE TABLE precious(k INTEGER PRIMARY KEY, v TEXT); INSERT INTO precious VALUES (1, 'one'), (2, 'two');");
    std::thread::sleep(Duration::from_millis(30));
    let before_drop = now_rfc3339(&mut leader);
    std::thread::sleep(Duration::from_millis(30));
    leader.ok("DROP TABLE precious;");
    let last = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
    let status = wait_archived(&mut leader, last);
    assert!(
        status["restorable_from"].is_string() && status["restorable_to"].is_string(),
        "{status}"
    );
    assert_eq!(status["last_error"], Value::Null, "{status}");
    let final_rows = contents(&mut leader, "t");

    for (i, moment) in moments.iter().enumerate() {
        let (mut restored, index) =
            restore(dir, &format!("at{i}"), target, serde_json::json!({"at": moment.at}));
        let index = index.unwrap_or_else(|e| panic!("restore to {}: {e}", moment.at));
        assert!(index >= moment.index, "moment {i}: restored index {index} < {}", moment.index);
        assert_eq!(contents(&mut restored, "t"), moment.rows, "moment {i} restored by time");
        if i % 2 == 0 {
            let (mut restored, index) =
                restore(dir, &format!("ix{i}"), target, serde_json::json!({"index": moment.index}));
            assert_eq!(index, Ok(moment.index));
            assert_eq!(contents(&mut restored, "t"), moment.rows, "moment {i} restored by index");
        }
    }
    let (mut undropped, _) = restore(dir, "undrop", target, serde_json::json!({"at": before_drop}));
    assert_eq!(contents(&mut undropped, "precious"), "1=one,2=two", "the dropped table is back");

    let (mut latest, index) = restore(dir, "latest", target, serde_json::json!({}));
    assert_latest(&index, last);
    assert_eq!(contents(&mut latest, "t"), final_rows);
    assert_eq!(latest.ok("PRAGMA integrity_check;").trim(), "ok");
    assert!(latest.sql("SELECT * FROM precious;").is_err(), "the drop is restored too");
    // A restored database starts a new cluster.
    let new_port = common::free_udp_port(PORTS);
    latest.ok(&format!("SELECT ha_init('127.0.0.1:{new_port}');"));
    latest.ok("INSERT INTO t VALUES (100000, 'after restore');");
    assert_eq!(latest.ok("SELECT count(*) FROM t WHERE k = 100000;").trim(), "1");

    // Restoring over a database that is not empty is refused.
    let error = leader
        .sql(&format!(
            "SELECT ha_restore('{}', '{}');",
            target.url,
            target.options(serde_json::json!({}))
        ))
        .expect_err("a node is refused");
    assert!(error.contains("empty database"), "{error}");
}

#[test]
fn point_in_time_restore_from_a_directory() {
    let scratch = common::scratch_with_extension();
    let archive = tempfile::tempdir().expect("archive dir");
    point_in_time(&Target::file(archive.path()), scratch.path());
}

#[test]
fn point_in_time_restore_from_s3() {
    let scratch = common::scratch_with_extension();
    let server = S3Server::start();
    point_in_time(&Target::s3(&server, "pitr"), scratch.path());
}

#[test]
fn a_damaged_object_is_refused_at_restore() {
    let scratch = common::scratch_with_extension();
    let archive = tempfile::tempdir().expect("archive dir");
    damaged_object(&Target::file(archive.path()), archive.path(), scratch.path());
}

#[test]
fn a_damaged_s3_object_is_refused_at_restore() {
    let scratch = common::scratch_with_extension();
    let server = S3Server::start();
    // s3s-fs keeps each object as a file under <root>/<bucket>/<key>.
    let objects = server.root().join(server.bucket()).join("damaged");
    damaged_object(&Target::s3(&server, "damaged"), &objects, scratch.path());
}

/// A flipped byte in a segment (found under `objects`, the archive root as files): the
/// restore fails naming the object, nothing is imported.
fn damaged_object(target: &Target, objects: &Path, dir: &Path) {
    let mut leader = start_node(dir, "n1", common::free_udp_port(PORTS));
    leader.ok("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);");
    leader.ok(&format!(
        "SELECT ha_archive('{}', '{}');",
        target.url,
        target.options(serde_json::json!({"interval_ms": 100}))
    ));
    let start = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
    wait_archived(&mut leader, start);
    for k in 0..20 {
        leader.ok(&format!("INSERT INTO t VALUES ({k}, hex(randomblob(200)));"));
    }
    let last = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
    wait_archived(&mut leader, last);
    let segments: Vec<_> = std::fs::read_dir(objects.join("seg"))
        .expect("segments")
        .map(|e| e.expect("entry").path())
        .collect();
    assert!(!segments.is_empty());
    let victim = segments.iter().max().expect("a segment");
    let mut bytes = std::fs::read(victim).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x20;
    std::fs::write(victim, bytes).expect("write");
    let (mut restored, result) = restore(dir, "r", target, serde_json::json!({}));
    let error = result.expect_err("a damaged object must be refused");
    let name = victim.file_name().and_then(|n| n.to_str()).expect("name");
    assert!(error.contains("damaged") && error.contains(name), "{error}");
    assert_eq!(restored.ok("SELECT count(*) FROM sqlite_schema;").trim(), "0", "nothing imported");
}

/// A 3-node cluster (n1 leads, with table `t`) archiving to `target` every 100 ms.
fn archiving_cluster(target: &Target, dir: &Path) -> (Shell, Vec<Shell>) {
    let ports: Vec<u16> = (0..3).map(|_| common::free_udp_port(PORTS)).collect();
    let mut n1 = start_node(dir, "n1", ports[0]);
    n1.ok("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);");
    let mut others = Vec::new();
    for (i, port) in ports.iter().enumerate().skip(1) {
        let token = n1.ok("SELECT ha_token();").trim().to_owned();
        let name = format!("n{}", i + 1);
        let mut shell = Shell::start(&name, dir);
        shell.ok(&format!(
            ".load ./libdqlite_vfs\n.open file:{name}.db?vfs=ha\n.timeout 5000\nSELECT ha_join('127.0.0.1:{port}', '127.0.0.1:{}', '{token}');",
            ports[0]
        ));
        others.push(shell);
    }
    n1.ok(&format!(
        "SELECT ha_archive('{}', '{}');",
        target.url,
        target.options(serde_json::json!({"interval_ms": 100}))
    ));
    (n1, others)
}

/// The node among `others` that leads after the leader was killed, taken out of `others` (the
/// rest stay running there: a dropped shell is killed).
fn new_leader(others: &mut Vec<Shell>) -> Shell {
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        for i in 0..others.len() {
            if others[i].status()["role"] == "leader" {
                return others.remove(i);
            }
        }
        assert!(Instant::now() < until, "no new leader after the kill");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn leader_killed(target: &Target, dir: &Path) {
    let (mut n1, mut others) = archiving_cluster(target, dir);
    for k in 0..200 {
        n1.ok(&format!("INSERT INTO t VALUES ({k}, 'before');"));
    }
    n1.kill();
    let mut leader = new_leader(&mut others);
    for k in 200..300 {
        leader.ok(&format!("INSERT INTO t VALUES ({k}, 'after');"));
    }
    let last = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
    let status = wait_archived(&mut leader, last);
    assert_eq!(status["uploading"], true, "{status}");
    let (mut restored, index) = restore(dir, "r", target, serde_json::json!({}));
    assert_latest(&index, last);
    assert_eq!(restored.ok("SELECT count(*), sum(k) FROM t;").trim(), "300|44850");
}

#[test]
fn the_new_leader_resumes_the_archive() {
    let scratch = common::scratch_with_extension();
    let server = S3Server::start();
    leader_killed(&Target::s3(&server, "failover"), scratch.path());
}

#[test]
fn the_new_leader_resumes_the_archive_in_a_directory() {
    let scratch = common::scratch_with_extension();
    let archive = tempfile::tempdir().expect("archive dir");
    leader_killed(&Target::file(archive.path()), scratch.path());
}

/// Goal: whichever node leads after a failover can resume the archive without a gap, however
/// far behind the archive is, even one that installed a snapshot and so lacks the entries.
/// Method: n3 is frozen (SIGSTOP) from the start; the archive holds the first insert, then
/// its directory is taken away during more inserts than a follower snapshots at (10,000)
/// plus what it keeps behind a snapshot (1,000). n2 snapshots, yet its log still starts at
/// the archived index the leader last recorded; n1's log is cut past where n3 stopped, so n3,
/// resumed, installs a snapshot: its log lacks what the archive lacks. Leadership goes to n3,
/// n1 is killed, the directory comes back: n3 takes the missing entries from n2's log, the
/// archive shows no gap, and restores of the latest moment and of an index among those
/// entries are complete.
#[test]
fn a_new_leader_resumes_the_archive_without_a_gap() {
    const ROWS: u64 = 11_500;
    let scratch = common::scratch_with_extension();
    let dir = scratch.path();
    let archive = MovableArchive::new();
    let target = archive.target();
    let (mut n1, mut others) = archiving_cluster(&target, dir);
    others[1].barrier(CATCH_UP);
    let n3_stopped_at = others[1].status()["last_log_index"].as_u64().expect("an index");
    others[1].pause();
    n1.ok("INSERT INTO t VALUES (0, 'first');");
    let first = n1.ok("SELECT ha_barrier();").trim().parse::<u64>().expect("an index");
    wait_archived(&mut n1, first);
    // Followers learn how far the archive is from the log (the leader records it each second).
    let until = Instant::now() + CATCH_UP;
    let recorded = loop {
        let status = archive_status(&mut others[0]);
        match status["archived_index"].as_u64() {
            Some(index) if index >= first => break index,
            _ => assert!(Instant::now() < until, "the follower never heard: {status}"),
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    archive.take_away();
    let inserts: String =
        (1..ROWS).map(|k| format!("INSERT INTO t VALUES ({k}, 'while down');\n")).collect();
    n1.sql_within(&inserts, Duration::from_secs(300)).expect("the inserts");
    let last = n1.ok("SELECT ha_barrier();").trim().parse::<u64>().expect("an index");
    let until = Instant::now() + CATCH_UP;
    let n2 = &mut others[0];
    n2.barrier(CATCH_UP);
    loop {
        let status = n2.status();
        // Far enough past the recorded index that cutting the usual 1,000 entries behind the
        // snapshot would cut entries the archive lacks.
        if status["snapshot_index"].as_u64().unwrap_or(0) > recorded + 2_000 {
            break;
        }
        assert!(Instant::now() < until, "no snapshot on n2: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The log is cut by a task that looks each second: give it time to cut too far.
    std::thread::sleep(Duration::from_millis(2_500));
    let status = n2.status();
    let purged = status["purged_index"].as_u64().unwrap_or(0);
    assert!(purged <= recorded, "n2 cut its log past the archive: {status}");
    let leader_purged = n1.status()["purged_index"].as_u64().unwrap_or(0);
    assert!(leader_purged > n3_stopped_at, "n1 kept what n3 needs ({leader_purged}): no snapshot");

    let n3 = &mut others[1];
    n3.resume();
    n3.barrier(CATCH_UP);
    let status = n3.status();
    let n3_purged = status["purged_index"].as_u64().unwrap_or(0);
    assert!(n3_purged > recorded, "n3 was to install a snapshot and lack entries: {status}");
    let n3_id = status["node_id"].as_u64().expect("an id");
    n1.ok(&format!("SELECT ha_transfer({n3_id});"));
    n1.kill();
    archive.bring_back();
    let mut leader = new_leader(&mut others);
    assert_eq!(leader.name(), "n3", "leadership was handed to n3");
    let status = wait_archived(&mut leader, last);
    assert_eq!(status["gaps"], serde_json::json!([]), "{status}");
    let (mut latest, index) = restore(dir, "latest", &target, serde_json::json!({}));
    assert_latest(&index, last);
    assert_eq!(latest.ok("SELECT count(*) FROM t;").trim(), ROWS.to_string());
    // An index among the entries n3 took from n2.
    let among = (recorded + n3_purged) / 2;
    let (mut middle, index) = restore(dir, "middle", &target, serde_json::json!({"index": among}));
    assert_eq!(index, Ok(among));
    assert_eq!(middle.ok("PRAGMA integrity_check;").trim(), "ok");
    let rows: u64 = middle.ok("SELECT count(*) FROM t;").trim().parse().expect("a count");
    assert!(rows > 1 && rows < ROWS, "a moment in the middle holds some of the rows: {rows}");
}

/// Commits for `down` while the store is unavailable, then checks the archive catches up.
fn store_down(target: &Target, dir: &Path, take_down: impl FnOnce(), bring_back: impl FnOnce()) {
    let mut leader = start_node(dir, "n1", common::free_udp_port(PORTS));
    leader.ok("CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT);");
    leader.ok(&format!(
        "SELECT ha_archive('{}', '{}');",
        target.url,
        target.options(serde_json::json!({"interval_ms": 100}))
    ));
    let first = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
    wait_archived(&mut leader, first);
    take_down();
    let down_until = Instant::now() + Duration::from_secs(30);
    let mut k = 0u64;
    let mut saw_error = false;
    while Instant::now() < down_until {
        leader.ok(&format!("INSERT INTO t VALUES ({k}, 'while down');"));
        k += 1;
        if k.is_multiple_of(50) {
            saw_error |= !archive_status(&mut leader)["last_error"].is_null();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = archive_status(&mut leader);
    assert!(saw_error || !status["last_error"].is_null(), "the outage is shown: {status}");
    assert!(status["lag_entries"].as_u64().unwrap_or(0) > 0, "{status}");
    bring_back();
    let last = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
    let status = wait_archived(&mut leader, last);
    assert_eq!(status["last_error"], Value::Null, "{status}");
    let (mut restored, index) = restore(dir, "r", target, serde_json::json!({}));
    assert_latest(&index, last);
    assert_eq!(restored.ok("SELECT count(*) FROM t;").trim(), k.to_string());
}

#[test]
fn the_archive_catches_up_after_the_s3_server_was_down() {
    let scratch = common::scratch_with_extension();
    let server = std::cell::RefCell::new(S3Server::start());
    let target = Target::s3(&server.borrow(), "outage");
    store_down(
        &target,
        scratch.path(),
        || server.borrow_mut().stop(),
        || server.borrow_mut().restart(),
    );
}

#[test]
fn the_archive_catches_up_after_the_directory_was_gone() {
    let scratch = common::scratch_with_extension();
    let archive = MovableArchive::new();
    let target = archive.target();
    store_down(&target, scratch.path(), || archive.take_away(), || archive.bring_back());
}

fn names_under(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// New base images by size, and retention: two bases kept, the segments only older bases
/// needed removed, the latest state still restorable and older moments refused by name.
#[test]
fn base_images_by_size_and_retention() {
    let scratch = common::scratch_with_extension();
    let dir = scratch.path();
    let archive = tempfile::tempdir().expect("archive dir");
    let target = Target::file(archive.path());
    let mut leader = start_node(dir, "n1", common::free_udp_port(PORTS));
    leader.ok("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);");
    let options = serde_json::json!({"interval_ms": 100, "base_bytes": 1 << 20, "retain_bases": 2});
    leader.ok(&format!("SELECT ha_archive('{}', '{}');", target.url, target.options(options)));
    let start = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
    wait_archived(&mut leader, start);
    let first_base = names_under(&archive.path().join("base"));
    let early = now_rfc3339(&mut leader);
    // About 5 MiB of pages in 250 KiB transactions, waiting for the archive now and then so
    // that each base is due after about 1 MiB of segments.
    for k in 0..20 {
        leader.ok(&format!("INSERT INTO t VALUES ({k}, randomblob(250000));"));
        if k % 4 == 3 {
            let index = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
            wait_archived(&mut leader, index);
        }
    }
    let last = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
    let status = wait_archived(&mut leader, last);
    let bases = names_under(&archive.path().join("base"));
    assert_eq!(bases.len(), 2, "two bases kept: {bases:?} ({status})");
    assert!(!bases.contains(&first_base[0]), "the first base was removed: {bases:?}");
    let oldest_kept: u64 = bases[0][..20].parse().expect("an index");
    for segment in names_under(&archive.path().join("seg")) {
        let last_of: u64 = segment[21..41].parse().expect("an index");
        assert!(last_of > oldest_kept, "segment {segment} is older than every kept base");
    }
    assert_eq!(status["base_images"], 2, "{status}");
    let (mut restored, index) = restore(dir, "r", &target, serde_json::json!({}));
    assert_latest(&index, last);
    assert_eq!(restored.ok("SELECT count(*) FROM t;").trim(), "20");
    let (_, refused) = restore(dir, "early", &target, serde_json::json!({"at": early}));
    let error = refused.expect_err("a moment before the oldest kept base");
    assert!(error.contains("starts later"), "{error}");
}

/// The log's bound wins over the archive: with the store gone while more than the bound is
/// written, the log is cut, the archiver uploads a new base when the store is back, the gap
/// is shown, and a restore into it is refused; restores after it work.
#[test]
fn a_log_cut_before_archiving_leaves_a_visible_gap() {
    let scratch = common::scratch_with_extension();
    let dir = scratch.path();
    let archive = MovableArchive::new();
    let target = archive.target();
    let port = common::free_udp_port(PORTS);
    let mut leader = Shell::start("n1", dir);
    leader.ok(&format!(
        ".load ./libdqlite_vfs\n.open file:n1.db?vfs=ha\n.timeout 5000\nSELECT ha_init('127.0.0.1:{port}', '{{\"log_bytes_max\":16777216}}');"
    ));
    leader.ok("CREATE TABLE t(k INTEGER PRIMARY KEY, v BLOB);");
    leader.ok(&format!(
        "SELECT ha_archive('{}', '{}');",
        target.url,
        target.options(serde_json::json!({"interval_ms": 100}))
    ));
    leader.ok("INSERT INTO t VALUES (0, 'before');");
    let before = leader.ok("SELECT ha_barrier();").trim().parse::<u64>().expect("an index");
    wait_archived(&mut leader, before);
    archive.take_away();
    // 40 MiB through a 16 MiB log: it is cut at least once.
    for k in 1..=40 {
        leader.ok(&format!("INSERT INTO t VALUES ({k}, randomblob(1048576));"));
    }
    let until = Instant::now() + CATCH_UP;
    loop {
        let status = leader.status();
        let log_bytes = status["log_bytes"].as_u64().unwrap_or(u64::MAX);
        if log_bytes <= 16 << 20 {
            break;
        }
        assert!(Instant::now() < until, "the log was not cut: {status}");
        std::thread::sleep(Duration::from_millis(200));
    }
    archive.bring_back();
    leader.ok("INSERT INTO t VALUES (1000, 'after');");
    let last = leader.ok("SELECT ha_barrier();").trim().parse().expect("an index");
    let status = wait_archived(&mut leader, last);
    let gaps = status["gaps"].as_array().cloned().unwrap_or_default();
    assert_eq!(gaps.len(), 1, "one gap: {status}");
    let gap_index = gaps[0]["after_index"].as_u64().expect("after_index") + 1;
    let (_, refused) = restore(dir, "ingap", &target, serde_json::json!({"index": gap_index}));
    let error = refused.expect_err("a restore into the gap is refused");
    assert!(error.contains("gap"), "{error}");
    let (mut before_gap, index) =
        restore(dir, "before", &target, serde_json::json!({"index": before}));
    assert_eq!(index, Ok(before));
    assert_eq!(before_gap.ok("SELECT v FROM t;").trim(), "before");
    let (mut latest, index) = restore(dir, "latest", &target, serde_json::json!({}));
    assert_latest(&index, last);
    assert_eq!(latest.ok("SELECT count(*) FROM t;").trim(), "42");
}
