//! Clusters of real `sqlite3` shell processes, each loading the extension with `.load` and
//! driven through its pipes (see `common::shell`): failover after SIGKILL, and the rule that
//! only the process running a database's node may write to it.

mod common;

use std::ops::Range;
use std::path::Path;
use std::time::{Duration, Instant};

use common::shell::Shell;

/// This file's ports; other test files use other ranges.
const PORTS: Range<u16> = 17300..17400;

/// Generous bound on electing a new leader and committing through it (Raft's election
/// timeout is 0.5-1 s); the measured figure is printed, not asserted tightly.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(15);

/// How long a node may take to reach a role, or a barrier to succeed, after a (re)start.
const SETTLE_DEADLINE: Duration = Duration::from_secs(15);

/// Pause between polls of a node's state.
const POLL: Duration = Duration::from_millis(50);

/// Rows written before and after the failover.
const ROWS_PER_PHASE: usize = 12;

/// One cluster member: the startup SQL that makes (or resumes) its node, and its shell while
/// the process runs.
struct Member {
    name: String,
    addr: String,
    startup: String,
    shell: Option<Shell>,
}

impl Member {
    /// Node 1 of a new cluster: `ha_init`.
    fn first(port: u16) -> Member {
        let addr = format!("127.0.0.1:{port}");
        let startup =
            format!(".load ./libdqlite_vfs\n.open file:n1.db?vfs=ha\nSELECT ha_init('{addr}');");
        Member { name: "n1".into(), addr, startup, shell: None }
    }

    /// Member `n` joining through `peer` with a join token `peer` issued: `ha_join`. The same
    /// startup SQL resumes the node after a restart, when the token is used up.
    fn joining(n: usize, port: u16, peer: &str, token: &str) -> Member {
        let addr = format!("127.0.0.1:{port}");
        let startup = format!(".load ./libdqlite_vfs\n.open file:n{n}.db?vfs=ha\nSELECT ha_join('{addr}', '{peer}', '{token}');");
        Member { name: format!("n{n}"), addr, startup, shell: None }
    }

    /// Starts a shell in `dir` and runs the startup SQL; the same call restarts a killed node,
    /// since the startup SQL resumes from the state directory. Returns the node id.
    fn start(&mut self, dir: &Path) -> u64 {
        let mut shell = Shell::start(&self.name, dir);
        let output = shell.ok(&self.startup);
        self.shell = Some(shell);
        output.trim().parse().unwrap_or_else(|_| {
            panic!("[{}] startup returned {output:?}, not a node id", self.name)
        })
    }

    /// The running shell.
    fn shell(&mut self) -> &mut Shell {
        let name = &self.name;
        self.shell.as_mut().unwrap_or_else(|| panic!("{name} is not running"))
    }

    /// SIGKILL the process: no chance to shut down cleanly.
    fn kill(&mut self) {
        let mut shell = self.shell.take().unwrap_or_else(|| panic!("{} is not running", self.name));
        shell.kill();
    }
}

/// The schema: a trigger makes every insert write a second table, so replication must carry
/// both tables' pages of one transaction together.
const SCHEMA: &str = "\
CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL, r INTEGER, at TEXT);
CREATE TABLE audit(id INTEGER PRIMARY KEY, row_id INTEGER NOT NULL, what TEXT NOT NULL);
CREATE TRIGGER t_audit AFTER INSERT ON t BEGIN
  INSERT INTO audit(row_id, what) VALUES (new.id, 'insert ' || new.v);
END;";

/// Inserts one row whose values only the writer can know (`random()`, `datetime('now')`), so
/// followers can only hold them through replication. Returns the id once acknowledged.
fn insert_row(shell: &mut Shell, label: &str) -> Result<i64, String> {
    let output = shell.sql(&format!(
        "INSERT INTO t(v, r, at) VALUES ('{label}', random(), datetime('now')) RETURNING id;"
    ))?;
    output.trim().parse().map_err(|_| format!("INSERT returned {output:?}, not an id"))
}

/// A transaction of several statements (two inserts firing the trigger, an update); returns
/// the ids of its rows once the commit is acknowledged.
fn insert_transaction(shell: &mut Shell, label: &str) -> Vec<i64> {
    let output = shell.ok(&format!(
        "BEGIN;
         INSERT INTO t(v, r, at) VALUES ('{label}-a', random(), datetime('now'));
         INSERT INTO t(v, r, at) VALUES ('{label}-b', random(), datetime('now'));
         UPDATE t SET v = v || ' (updated)' WHERE v = '{label}-a';
         COMMIT;
         SELECT id FROM t WHERE v IN ('{label}-a (updated)', '{label}-b') ORDER BY id;"
    ));
    let ids: Vec<i64> = output.lines().map(|line| line.parse().expect("an id per line")).collect();
    assert_eq!(ids.len(), 2, "[{}] the transaction's rows: {output:?}", shell.name());
    ids
}

/// The full contents of both tables in a fixed order, as the shell prints them.
fn contents(shell: &mut Shell) -> String {
    shell.ok("SELECT 't', id, v, r, at FROM t ORDER BY id;
         SELECT 'audit', id, row_id, what FROM audit ORDER BY id;")
}

/// The ids in `t`.
fn ids(shell: &mut Shell) -> Vec<i64> {
    let output = shell.ok("SELECT id FROM t ORDER BY id;");
    output.lines().map(|line| line.parse().expect("an id per line")).collect()
}

/// Writes `ROWS_PER_PHASE` rows plus one transaction on `leader`, recording each id once
/// the commit returned (i.e. once a majority has it).
fn write_phase(leader: &mut Shell, phase: &str, acknowledged: &mut Vec<i64>) {
    for i in 0..ROWS_PER_PHASE {
        let label = format!("{phase}-{i}");
        let id = insert_row(leader, &label)
            .unwrap_or_else(|e| panic!("[{}] insert {label}: {e}", leader.name()));
        acknowledged.push(id);
    }
    acknowledged.extend(insert_transaction(leader, &format!("{phase}-tx")));
}

/// Index (in `members`) of the node that `members[probe]` names as leader.
fn leader_index(members: &mut [Member], probe: usize) -> usize {
    let status = members[probe].shell().status();
    let leader_addr = status["leader_addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no leader known: {status}"))
        .to_owned();
    members
        .iter()
        .position(|m| m.addr == leader_addr)
        .unwrap_or_else(|| panic!("leader {leader_addr} is not ours"))
}

/// What the failover took, measured from the SIGKILL.
struct Failover {
    /// Index in `members` of the new leader.
    leader: usize,
    /// The id of the first row it committed.
    id: i64,
    /// Until a survivor first reported itself leader.
    elected: Duration,
    /// Until that leader's first write was acknowledged.
    committed: Duration,
}

/// Polls the survivors until one is leader and commits a write.
fn await_new_leader(members: &mut [Member], survivors: &[usize], killed_at: Instant) -> Failover {
    let until = killed_at + FAILOVER_DEADLINE;
    let mut last_seen = Vec::new();
    let mut elected = None;
    while Instant::now() < until {
        last_seen.clear();
        for &i in survivors {
            let shell = members[i].shell();
            let role = shell.status()["role"].as_str().unwrap_or("?").to_owned();
            if role == "leader" {
                let elected = *elected.get_or_insert_with(|| killed_at.elapsed());
                if let Ok(id) = insert_row(shell, "first-after-failover") {
                    return Failover { leader: i, id, elected, committed: killed_at.elapsed() };
                }
            }
            last_seen.push(format!("{}={role}", members[i].name));
        }
        std::thread::sleep(POLL);
    }
    panic!("no survivor became leader and committed within {FAILOVER_DEADLINE:?}; roles: {last_seen:?}")
}

/// Goal: the scenario with real processes: three `sqlite3` processes, writes on the
/// leader, reads on followers, the leader SIGKILLed, writes go on at the new leader, the old
/// leader restarts and catches up, all nodes hold the same rows and pass `integrity_check`.
/// Method: each node is a stock `sqlite3` shell that `.load`s the extension, started with the
/// SQL a user would type (`ha_init` / `ha_join`). Every insert's id is recorded once its commit
/// returns; at the end every node must hold all of them, identical contents, and pass
/// `PRAGMA integrity_check`. The failover time (kill to first committed write on the new leader)
/// is printed and only loosely bounded.
#[test]
fn leader_sigkill_failover_and_catch_up() {
    let scratch = common::scratch_with_extension();
    let dir = scratch.path();
    let mut first = Member::first(common::free_udp_port(PORTS));
    assert_eq!(first.start(dir), 1, "[n1] node id");
    let peer = first.addr.clone();
    let mut members = vec![first];
    for n in 2..=3 {
        let token = members[0].shell().ok("SELECT ha_token();").trim().to_owned();
        let mut member = Member::joining(n, common::free_udp_port(PORTS), &peer, &token);
        assert_eq!(member.start(dir), n as u64, "[n{n}] node id");
        members.push(member);
    }
    for member in &mut members[1..] {
        member.shell().wait_for_role("follower", SETTLE_DEADLINE);
    }

    // Writes on the leader.
    let leader = leader_index(&mut members, 1);
    let mut acknowledged = Vec::new();
    members[leader].shell().ok(SCHEMA);
    write_phase(members[leader].shell(), "before", &mut acknowledged);
    let expected = contents(members[leader].shell());

    // Reads on followers, after a barrier; writes there are refused.
    for i in (0..members.len()).filter(|&i| i != leader) {
        let shell = members[i].shell();
        shell.barrier(SETTLE_DEADLINE);
        assert_eq!(contents(shell), expected, "[{}] follower contents", shell.name());
        let refused = shell.sql("INSERT INTO t(v) VALUES ('written on a follower');");
        let error = refused.expect_err("a write on a follower must fail");
        assert!(
            error.contains("attempt to write a readonly database"),
            "[{}] follower write: {error}",
            shell.name()
        );
    }

    // SIGKILL the leader; a survivor must take over and commit.
    members[leader].kill();
    let killed_at = Instant::now();
    let survivors: Vec<usize> = (0..members.len()).filter(|&i| i != leader).collect();
    let failover = await_new_leader(&mut members, &survivors, killed_at);
    let new_leader = failover.leader;
    acknowledged.push(failover.id);
    eprintln!(
        "failover: {} SIGKILLed; {} reported leader after {:.3} s and committed after {:.3} s",
        members[leader].name,
        members[new_leader].name,
        failover.elected.as_secs_f64(),
        failover.committed.as_secs_f64()
    );
    assert!(failover.committed < FAILOVER_DEADLINE, "failover took {:?}", failover.committed);

    // Writes go on at the new leader, with one node down.
    write_phase(members[new_leader].shell(), "after", &mut acknowledged);

    // The old leader restarts with its own startup SQL, comes back as a follower, catches up.
    members[leader].start(dir);
    members[leader].shell().wait_for_role("follower", SETTLE_DEADLINE);
    write_phase(members[new_leader].shell(), "rejoined", &mut acknowledged);

    // All nodes: same contents, every acknowledged row, integrity ok.
    let expected = contents(members[new_leader].shell());
    for member in &mut members {
        let shell = member.shell();
        shell.barrier(SETTLE_DEADLINE);
        assert_eq!(
            contents(shell),
            expected,
            "[{}] contents differ from the leader's",
            shell.name()
        );
        let present = ids(shell);
        let missing: Vec<_> = acknowledged.iter().filter(|id| !present.contains(id)).collect();
        assert!(missing.is_empty(), "[{}] acknowledged ids missing: {missing:?}", shell.name());
        assert_eq!(shell.ok("PRAGMA integrity_check;"), "ok", "[{}] integrity", shell.name());
    }
    assert_eq!(
        acknowledged.len(),
        3 * (ROWS_PER_PHASE + 2) + 1,
        "every write was acknowledged once"
    );
}

/// Goal: one owner per database: while a process runs a database's node, another process may
/// open the same file through `ha` and read it, but its writes are refused with an error that
/// says it is read-only, and nothing it tried reaches the database.
/// Method: node 1 runs in one `sqlite3` process; a second `sqlite3` process in the same
/// directory opens `file:n1.db?vfs=ha`, reads the row, and tries to insert one.
#[test]
fn a_second_process_may_read_but_not_write() {
    let scratch = common::scratch_with_extension();
    let dir = scratch.path();
    let mut owner = Member::first(common::free_udp_port(PORTS));
    owner.start(dir);
    let owner = owner.shell();
    owner.ok(SCHEMA);
    insert_row(owner, "by the owner").expect("the owner writes");

    let mut other = Shell::start("other", dir);
    other.ok(".load ./libdqlite_vfs\n.open file:n1.db?vfs=ha");
    assert_eq!(other.ok("SELECT v FROM t ORDER BY id;"), "by the owner", "the other process reads");
    let attempt = other.sql("INSERT INTO t(v) VALUES ('by another process');");
    let error = attempt.expect_err("a write from a process that does not own the node must fail");
    // A VFS can only return a result code, not a message: the refusal is SQLITE_READONLY
    // (extended code SQLITE_READONLY_CANTLOCK, documented in README).
    assert!(
        error.contains("readonly database"),
        "the write should be refused as read-only: {error}"
    );

    // Nothing of the attempt is visible, to the owner or to the other process.
    assert_eq!(owner.ok("SELECT v FROM t ORDER BY id;"), "by the owner", "the owner's view");
    assert_eq!(
        other.ok("SELECT v FROM t ORDER BY id;"),
        "by the owner",
        "the other process's view"
    );
    assert_eq!(owner.ok("PRAGMA integrity_check;"), "ok");
}

/// The byte ranges of the records of a Raft log segment (`length u32 LE | crc32 | body`, see
/// `src/raft/log_store/record.rs`), read by their length fields.
fn log_records(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut records = Vec::new();
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 8) {
        let end =
            at + 8 + u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if end > bytes.len() {
            break;
        }
        records.push(at..end);
        at = end;
    }
    records
}

/// Goal: a node whose Raft core stops by itself says so: `ha_status()` reports role `stopped`
/// with a reason, not the role it had last, and writes are refused.
/// Method: a node of one commits a few rows and is SIGKILLed; its log then loses its last
/// record whole, an entry it had synced and applied (durable data lost, as by a bad disk; a
/// crash alone cannot do this). At the restart openraft finds the state machine ahead of the
/// log, purges up to it without a snapshot that covers it, and its core panics.
#[test]
fn a_node_whose_raft_core_stops_says_so() {
    let scratch = common::scratch_with_extension();
    let dir = scratch.path();
    let mut node = Member::first(common::free_udp_port(PORTS));
    node.start(dir);
    node.shell().ok(SCHEMA);
    for i in 0..2 {
        insert_row(node.shell(), &format!("row {i}")).expect("a node of one commits");
    }
    // The applied position is recorded by the apply of the first entry a second or more after
    // the last record: so the last insert's own apply records it, and the log then loses it.
    std::thread::sleep(Duration::from_millis(
        dqlite_vfs::raft::state_machine::APPLIED_SYNC_INTERVAL_MS + 300,
    ));
    insert_row(node.shell(), "row 2").expect("a node of one commits");
    std::thread::sleep(Duration::from_millis(300));
    node.kill();
    let segment = dir.join("n1.db-ha/log/0000000000000000.seg");
    let bytes = std::fs::read(&segment).expect("the log segment");
    let last = log_records(&bytes).pop().expect("records in the log");
    std::fs::write(&segment, &bytes[..last.start]).expect("cut the last record");

    // The shell's output mixes the panic's message and backtrace (its stderr, which may still
    // be printing) with the node id on a line of its own.
    let mut shell = Shell::start("n1", dir);
    let output = shell.ok(&node.startup);
    assert!(output.lines().any(|line| line.trim() == "1"), "the node resumes: {output}");
    let shell = &mut shell;
    let until = Instant::now() + SETTLE_DEADLINE;
    // Lines of the panic's backtrace may still come in between: the status is the JSON line.
    let status = loop {
        let output = shell.ok("SELECT ha_status();");
        let status: serde_json::Value = output
            .lines()
            .rev()
            .find_map(|line| serde_json::from_str(line).ok())
            .unwrap_or_default();
        if status["role"] == "stopped" || Instant::now() >= until {
            break status;
        }
        std::thread::sleep(POLL);
    };
    assert_eq!(status["role"], "stopped", "{status}");
    let reason = status["stopped_reason"].as_str().unwrap_or_default();
    assert!(reason.contains("raft stopped"), "the reason: {status}");
    let refused = shell
        .sql("INSERT INTO t(v) VALUES ('after the stop');")
        .expect_err("a stopped node takes no write");
    assert!(!refused.is_empty());
}
