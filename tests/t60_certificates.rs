//! Certificate lifetimes with real processes: every node renews its certificate over its
//! authenticated connection well before it expires, `ha_status()` shows each member's expiry,
//! and the cluster goes on working after the first certificates have expired.
//!
//! Method: `DQLITE_VFS_CERT_VALIDITY_S` makes the certificates of a 2-node cluster of `sqlite3`
//! shells live 15 s (renewed with 5 s left). The test waits for both members' recorded expiry
//! to move on, then past the first certificates' expiry, restarts the follower (so every
//! connection is made afresh, with renewed certificates loaded from disk) and checks that a
//! write on the leader reaches it.

mod common;

use std::ops::Range;
use std::time::{Duration, Instant};

use common::shell::Shell;

/// This file's ports; other test files use other ranges.
const PORTS: Range<u16> = 17600..17650;

/// Certificate lifetime in this test, seconds (the shortest the library accepts).
const VALIDITY_S: &str = "15";

/// Bound on every wait below: renewal is due 10 s after issue; checks run every 1.5 s.
const RENEWAL_DEADLINE: Duration = Duration::from_secs(25);

/// Each member's recorded certificate expiry, by node id, as the node sees it.
fn expiries(shell: &mut Shell) -> Vec<(u64, String)> {
    let status = shell.status();
    let members = status["members"].as_array().cloned().unwrap_or_default();
    members
        .iter()
        .map(|m| {
            (m["id"].as_u64().unwrap_or(0), m["cert_expires_at"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

fn start(name: &str, dir: &std::path::Path, sql: &str) -> Shell {
    let mut shell = Shell::start_with_env(name, dir, &[("DQLITE_VFS_CERT_VALIDITY_S", VALIDITY_S)]);
    shell.ok(&format!(".load ./libdqlite_vfs\n.open file:{name}.db?vfs=ha\n{sql}"));
    shell
}

#[test]
fn certificates_renew_before_they_expire() {
    let scratch = common::scratch_with_extension();
    let dir = scratch.path();
    let (p1, p2) = (common::free_udp_port(PORTS), common::free_udp_port(PORTS));
    let mut leader =
        start("n1", dir, &format!("SELECT ha_init('127.0.0.1:{p1}');\nCREATE TABLE t(x);"));
    let token = leader.ok("SELECT ha_token();").trim().to_owned();
    let join = format!("SELECT ha_join('127.0.0.1:{p2}', '127.0.0.1:{p1}', '{token}');");
    let mut follower = start("n2", dir, &join);
    let first = expiries(&mut leader);
    assert_eq!(first.len(), 2, "two members with an expiry each: {first:?}");
    assert!(first.iter().all(|(_, at)| at.ends_with('Z')), "RFC 3339 expiries: {first:?}");
    let started = Instant::now();

    // Both members renew: the expiries recorded through Raft move on.
    let until = started + RENEWAL_DEADLINE;
    loop {
        let now = expiries(&mut leader);
        if now.iter().zip(&first).all(|(new, old)| new.0 == old.0 && new.1 > old.1) {
            eprintln!(
                "renewed after {:.1} s: {first:?} -> {now:?}",
                started.elapsed().as_secs_f64()
            );
            break;
        }
        assert!(
            Instant::now() < until,
            "not renewed within {RENEWAL_DEADLINE:?}: {first:?} -> {now:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let own = follower.status()["cert_expires_at"].as_str().unwrap_or("").to_owned();
    assert!(own > first[1].1, "the follower shows its own renewed expiry: {own}");

    // Past the first certificates' expiry, a restarted follower connects with its renewed
    // certificate (read back from its state directory) and receives a new write.
    std::thread::sleep(Duration::from_secs(16).saturating_sub(started.elapsed()));
    follower.kill();
    let mut follower = start("n2", dir, &join);
    leader.ok("INSERT INTO t VALUES (1);");
    follower.barrier(RENEWAL_DEADLINE);
    assert_eq!(follower.ok("SELECT count(*) FROM t;").trim(), "1");
}
