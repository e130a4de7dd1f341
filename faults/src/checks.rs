//! The end of a run: wait until every node applied the same log, then check every invariant
//! on every node against the history. Each broken invariant becomes one line of
//! [`Findings::violations`]; a run passes only with none.
//!
//! Invariants: every read of the bank total saw the initial total, and so does every node at
//! the end; every acknowledged insert (unique or large) is on every node, none that was refused
//! as "did not happen" is, and no key that was never attempted; each register key's history
//! (with a final read on every node) is linearizable; `PRAGMA integrity_check` says ok on every
//! node; every node holds the same rows; after `PRAGMA wal_checkpoint(TRUNCATE)` the database
//! files are byte-identical; no write sent to a leader cut off from everyone is on any node
//! ([`never_committed`]); every follower read of the staleness counter saw a value that was
//! written, and every node ends with the newest acknowledged one ([`counter`]); the learner is
//! a member that does not vote and it served reads ([`learner`]).

mod counter;
mod learner;
mod never_committed;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use ha_host::process::Client;
use ha_host::protocol::{Request, Statement};
use md5::{Digest, Md5};
use serde_json::{json, Value};

use crate::cluster::{Cluster, Endpoint, Member, Slot};
use crate::history::{History, OpKind, Outcome};
use crate::linearizability::{check_register, RegisterEntry, RegisterOp, Verdict};
use crate::workload::{bank, register, staleness};

/// How long the nodes may take to apply the same log after everything was healed.
const CONVERGE_DEADLINE: Duration = Duration::from_secs(90);
/// Deadline of one check query.
const QUERY_DEADLINE: Duration = Duration::from_secs(60);
/// States the linearizability search may explore per key, and the memory its seen-set may
/// take (each state is a bitset over the key's operations).
const SEARCH_STATES_MAX: u64 = 5_000_000;
const SEARCH_BYTES_MAX: u64 = 400 << 20;
/// Violations of one kind listed before the rest are counted.
const EXAMPLES_MAX: usize = 5;

#[derive(Default)]
pub struct Findings {
    pub violations: Vec<String>,
    /// The cluster was not available when it should have been (no leader after a heal, a
    /// restart or a join that failed): no data is at risk, but a guarantee is broken.
    pub availability: Vec<String>,
    pub notes: Vec<String>,
}

impl Findings {
    fn violation(&mut self, text: String) {
        eprintln!("VIOLATION: {text}");
        self.violations.push(text);
    }
}

fn query(endpoint: &Endpoint, statements: Vec<Statement>) -> anyhow::Result<Vec<Vec<Value>>> {
    let mut client = Client::connect("check", endpoint.control_addr)?;
    let answer = client
        .request(&Request::Exec { conn: "main".into(), statements, tx: false }, QUERY_DEADLINE)?;
    let rows = answer["results"]
        .as_array()
        .and_then(|results| results.last())
        .and_then(|last| last["rows"].as_array())
        .ok_or_else(|| anyhow!("no rows in {answer}"))?;
    Ok(rows.iter().map(|row| row.as_array().cloned().unwrap_or_default()).collect())
}

/// Rows the host returns at most per request (`ha_host::protocol::ROWS_MAX` is 100,000): a
/// soak inserts more than that, so whole tables are read in pages.
const PAGE_ROWS: usize = 50_000;

/// Every row of `table` as `rowid, columns...`, in rowid order, read a page at a time.
fn all_rows(endpoint: &Endpoint, columns: &str, table: &str) -> anyhow::Result<Vec<Vec<Value>>> {
    let sql = format!(
        "SELECT rowid, {columns} FROM \"{table}\" WHERE rowid > ? ORDER BY rowid LIMIT {PAGE_ROWS}"
    );
    let mut rows = Vec::new();
    let mut after = i64::MIN;
    loop {
        let page = query(endpoint, vec![Statement::with_params(sql.clone(), vec![json!(after)])])?;
        let full = page.len() == PAGE_ROWS;
        match page.last().and_then(|row| row.first()).and_then(Value::as_i64) {
            Some(last) => after = last,
            None => return Ok(rows),
        }
        rows.extend(page);
        if !full {
            return Ok(rows);
        }
    }
}

/// Waits until every member applied the same index, equal to its commit index, and a leader
/// exists.
pub fn converge(cluster: &Cluster) -> anyhow::Result<u64> {
    let start = Instant::now();
    let leader = cluster.wait_for_leader(CONVERGE_DEADLINE)?;
    let endpoint = cluster
        .endpoints()
        .into_iter()
        .find(|e| e.slot == leader)
        .ok_or_else(|| anyhow!("leader gone"))?;
    let barrier = query(&endpoint, vec![Statement::new("SELECT ha_barrier()")])?;
    let floor = barrier.first().and_then(|row| row.first()).and_then(Value::as_u64).unwrap_or(0);
    let mut last = String::new();
    while start.elapsed() < CONVERGE_DEADLINE {
        let mut applied = BTreeSet::new();
        let mut all = true;
        last.clear();
        for Member { slot, .. } in cluster.members() {
            match cluster.status(slot) {
                Ok(status) => {
                    let index = status["applied_index"].as_u64().unwrap_or(0);
                    last.push_str(&format!(
                        "n{}: role {} applied {} commit {}; ",
                        slot + 1,
                        status["role"],
                        index,
                        status["commit_index"]
                    ));
                    all &= index >= floor && status["commit_index"].as_u64() == Some(index);
                    applied.insert(index);
                }
                Err(error) => {
                    last.push_str(&format!("n{}: {error}; ", slot + 1));
                    all = false;
                }
            }
        }
        if all && applied.len() == 1 {
            return applied.first().copied().ok_or_else(|| anyhow!("no members"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("nodes did not converge within {CONVERGE_DEADLINE:?}: {last}")
}

/// What the run knows beyond the history.
pub struct RunFacts<'a> {
    /// Writes that can never have been committed (see `Nemesis::never_committed`).
    pub never_committed: &'a [OpKind],
    /// How many voters the cluster must have.
    pub voters: usize,
}

/// Runs every check on every member.
pub fn check_all(cluster: &Cluster, history: &History, facts: &RunFacts<'_>) -> Findings {
    let mut findings = Findings::default();
    let endpoints: Vec<Endpoint> = {
        let members: BTreeSet<Slot> = cluster.members().into_iter().map(|m| m.slot).collect();
        cluster.endpoints().into_iter().filter(|e| members.contains(&e.slot)).collect()
    };
    check_bank_reads(history, &mut findings);
    counter::check_reads(history, &mut findings);
    learner::check(cluster, history, facts.voters, &mut findings);
    let mut final_reads = Vec::new();
    let mut contents = Vec::new();
    for endpoint in &endpoints {
        let name = format!("n{}", endpoint.slot + 1);
        match node_checks(endpoint, history, facts, &mut findings, &mut final_reads) {
            Ok(content) => contents.push((name, content)),
            Err(error) => findings.violation(format!("{name}: checks could not run: {error:#}")),
        }
    }
    let distinct: BTreeSet<&String> = contents.iter().map(|(_, hash)| hash).collect();
    if distinct.len() > 1 {
        findings.violation(format!("nodes hold different rows: {contents:?}"));
    }
    check_registers(history, &final_reads, &mut findings);
    never_committed::check_register_reads(
        history,
        &final_reads,
        facts.never_committed,
        &mut findings,
    );
    check_files(cluster, &endpoints, &mut findings);
    findings
}

fn check_bank_reads(history: &History, findings: &mut Findings) {
    let bad: Vec<String> = history
        .ops()
        .iter()
        .filter_map(|op| match op.kind {
            OpKind::ReadTotal { total, accounts } if op.outcome == Outcome::Ok => {
                (total != Some(bank::TOTAL) || accounts != Some(bank::ACCOUNTS)).then(|| {
                    format!(
                        "op {} on n{} at {} us: total {total:?} over {accounts:?} accounts",
                        op.id,
                        op.node + 1,
                        op.complete_us
                    )
                })
            }
            _ => None,
        })
        .collect();
    if !bad.is_empty() {
        findings.violation(format!(
            "{} bank reads saw a wrong total (expected {}), e.g. {:?}",
            bad.len(),
            bank::TOTAL,
            &bad[..bad.len().min(EXAMPLES_MAX)]
        ));
    }
}

/// The checks of one node; returns a hash of its rows.
fn node_checks(
    endpoint: &Endpoint,
    history: &History,
    facts: &RunFacts<'_>,
    findings: &mut Findings,
    final_reads: &mut Vec<(i64, RegisterEntry)>,
) -> anyhow::Result<String> {
    let name = format!("n{}", endpoint.slot + 1);
    let integrity = query(endpoint, vec![Statement::new("PRAGMA integrity_check")])?;
    if integrity != vec![vec![json!("ok")]] {
        findings.violation(format!("{name}: integrity_check: {integrity:?}"));
    }
    let total =
        query(endpoint, vec![Statement::new("SELECT sum(balance), count(*) FROM accounts")])?;
    if total != vec![vec![json!(bank::TOTAL), json!(bank::ACCOUNTS)]] {
        findings.violation(format!(
            "{name}: final bank total {total:?}, expected {} over {} accounts",
            bank::TOTAL,
            bank::ACCOUNTS
        ));
    }
    let keys = |column: &str, table: &str| -> anyhow::Result<BTreeSet<i64>> {
        Ok(all_rows(endpoint, column, table)?
            .iter()
            .filter_map(|row| row.get(1).and_then(Value::as_i64))
            .collect())
    };
    let unique = keys("k", "uniq")?;
    check_keys(
        &name,
        "unique insert",
        &unique,
        history,
        |kind| match kind {
            OpKind::Insert { key } => Some(*key),
            _ => None,
        },
        findings,
    );
    let large = keys("id", "big")?;
    check_keys(
        &name,
        "large transaction",
        &large,
        history,
        |kind| match kind {
            OpKind::Large { key, .. } => Some(*key),
            _ => None,
        },
        findings,
    );
    never_committed::check_keys(&name, &unique, &large, facts.never_committed, findings);
    let counter = query(endpoint, vec![staleness::read_statement()])?;
    counter::check_final(
        &name,
        counter.first().and_then(|row| row.first()).and_then(Value::as_i64),
        history,
        findings,
    );
    let sizes = query(
        endpoint,
        vec![Statement::new("SELECT id, bytes, length(data) FROM big WHERE data IS NOT NULL")],
    )?;
    for row in sizes {
        if row.get(1) != row.get(2) {
            findings.violation(format!("{name}: large row {row:?} has the wrong size"));
        }
    }
    let now = history.now_us();
    for key in 0..register::KEYS {
        let rows = query(endpoint, register::read_statements(key))?;
        let value = rows.first().and_then(|row| row.first()).and_then(Value::as_i64);
        final_reads.push((
            key,
            RegisterEntry {
                id: 0,
                op: RegisterOp::Read(value),
                invoke_us: now,
                complete_us: Some(history.now_us()),
            },
        ));
    }
    content_hash(endpoint)
}

/// Compares the keys a node holds with what the history says about them.
fn check_keys(
    name: &str,
    what: &str,
    present: &BTreeSet<i64>,
    history: &History,
    key_of: impl Fn(&OpKind) -> Option<i64>,
    findings: &mut Findings,
) {
    let mut attempted: HashMap<i64, Outcome> = HashMap::new();
    for op in history.ops() {
        if let Some(key) = key_of(&op.kind) {
            attempted.insert(key, op.outcome);
        }
    }
    let lost: Vec<i64> = attempted
        .iter()
        .filter(|(key, outcome)| **outcome == Outcome::Ok && !present.contains(key))
        .map(|(key, _)| *key)
        .collect();
    let refused: Vec<(i64, Outcome)> = present
        .iter()
        .filter_map(|key| match attempted.get(key) {
            Some(outcome @ Outcome::Failed { .. }) => Some((*key, outcome.clone())),
            _ => None,
        })
        .collect();
    let phantom: Vec<i64> =
        present.iter().filter(|key| !attempted.contains_key(key)).copied().collect();
    if !lost.is_empty() {
        findings.violation(format!(
            "{name}: {} acknowledged {what}s lost, e.g. keys {:?}",
            lost.len(),
            &lost[..lost.len().min(EXAMPLES_MAX)]
        ));
    }
    if !refused.is_empty() {
        findings.violation(format!(
            "{name}: {} {what}s reported as did-not-happen are present, e.g. {:?}",
            refused.len(),
            &refused[..refused.len().min(EXAMPLES_MAX)]
        ));
    }
    if !phantom.is_empty() {
        findings.violation(format!(
            "{name}: {} {what} keys were never attempted, e.g. {:?}",
            phantom.len(),
            &phantom[..phantom.len().min(EXAMPLES_MAX)]
        ));
    }
}

/// A hash over every user table's rows (blobs as their length and an md5 of the content).
fn content_hash(endpoint: &Endpoint) -> anyhow::Result<String> {
    let tables = query(endpoint, vec![Statement::new("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")])?;
    let mut hasher = Md5::new();
    for table in tables.iter().filter_map(|row| row.first().and_then(Value::as_str)) {
        let columns = if table == "big" {
            "id, bytes, length(data), hex(substr(data, 1, 64)), hex(substr(data, -64))"
        } else {
            "*"
        };
        let rows = all_rows(endpoint, columns, table)?;
        hasher.update(table.as_bytes());
        hasher.update(serde_json::to_vec(&rows)?);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Each register key's history, plus the final reads, must be linearizable.
fn check_registers(
    history: &History,
    final_reads: &[(i64, RegisterEntry)],
    findings: &mut Findings,
) {
    let mut per_key: BTreeMap<i64, Vec<RegisterEntry>> = BTreeMap::new();
    for op in history.ops() {
        let (key, entry_op) = match op.kind {
            OpKind::RegisterWrite { key, value } => (key, RegisterOp::Write(value)),
            OpKind::RegisterRead { key, value } => (key, RegisterOp::Read(value)),
            _ => continue,
        };
        let complete_us = match (&op.outcome, entry_op) {
            (Outcome::Ok, _) => Some(op.complete_us),
            (Outcome::Unknown { .. }, RegisterOp::Write(_)) => None,
            // Failed writes did not happen; failed or unknown reads returned nothing.
            _ => continue,
        };
        per_key.entry(key).or_default().push(RegisterEntry {
            id: op.id,
            op: entry_op,
            invoke_us: op.invoke_us,
            complete_us,
        });
    }
    for (key, read) in final_reads {
        per_key.entry(*key).or_default().push(read.clone());
    }
    for (key, entries) in per_key {
        let count = entries.len();
        let state_bytes = (count as u64).div_ceil(64) * 8 + 64;
        let states_max = (SEARCH_BYTES_MAX / state_bytes).clamp(10_000, SEARCH_STATES_MAX);
        match check_register(&entries, None, states_max) {
            Verdict::Linearizable => findings.notes.push(format!("register key {key}: {count} operations, linearizable")),
            Verdict::Violation { stuck_ids } => findings.violation(format!(
                "register key {key}: not linearizable ({count} operations); no valid order can place ops {stuck_ids:?} (id 0 = final read)"
            )),
            Verdict::Inconclusive { states } => {
                findings.violation(format!("register key {key}: linearizability search gave up after {states} states ({count} operations)"))
            }
        }
    }
}

/// Checkpoints every node (TRUNCATE) and compares the database files' bytes.
fn check_files(cluster: &Cluster, endpoints: &[Endpoint], findings: &mut Findings) {
    let mut hashes = Vec::new();
    for endpoint in endpoints {
        let name = format!("n{}", endpoint.slot + 1);
        let mut done = false;
        for _ in 0..10 {
            match query(endpoint, vec![Statement::new("PRAGMA wal_checkpoint(TRUNCATE)")]) {
                Ok(rows) if rows.first().and_then(|row| row.first()) == Some(&json!(0)) => {
                    done = true;
                    break;
                }
                Ok(_) | Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
        if !done {
            findings.violation(format!("{name}: wal_checkpoint(TRUNCATE) did not complete"));
            continue;
        }
        let Some(path) = cluster.db_path(endpoint.slot) else { continue };
        match std::fs::read(&path) {
            Ok(bytes) => hashes.push((name, bytes.len(), format!("{:x}", Md5::digest(&bytes)))),
            Err(error) => findings.violation(format!("{name}: read {}: {error}", path.display())),
        }
    }
    let distinct: BTreeSet<&String> = hashes.iter().map(|(_, _, hash)| hash).collect();
    if distinct.len() > 1 {
        findings.violation(format!("database files differ after checkpoint: {hashes:?}"));
    } else {
        findings.notes.push(format!(
            "database files byte-identical after checkpoint on {} nodes",
            hashes.len()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::Op;

    fn insert(history: &History, key: i64, outcome: Outcome) {
        history.record(Op {
            id: u64::try_from(key).unwrap(),
            worker: "unique".into(),
            node: 0,
            invoke_us: 0,
            complete_us: 1,
            kind: OpKind::Insert { key },
            outcome,
            message: None,
        });
    }

    #[test]
    fn lost_refused_and_phantom_keys_are_violations() {
        let history = History::new();
        insert(&history, 1, Outcome::Ok);
        insert(&history, 2, Outcome::Failed { code: 8 });
        insert(&history, 3, Outcome::Unknown { reason: "timeout".into() });
        insert(&history, 5, Outcome::Ok);
        let key_of = |kind: &OpKind| match kind {
            OpKind::Insert { key } => Some(*key),
            _ => None,
        };
        let mut findings = Findings::default();
        let present: BTreeSet<i64> = [2, 3, 4, 5].into();
        check_keys("n1", "unique insert", &present, &history, key_of, &mut findings);
        assert_eq!(findings.violations.len(), 3, "{:?}", findings.violations);
        assert!(
            findings.violations[0].contains("1 acknowledged unique inserts lost, e.g. keys [1]")
        );
        assert!(findings.violations[1].contains("reported as did-not-happen are present"));
        assert!(findings.violations[2].contains("never attempted, e.g. [4]"));

        // An unknown outcome may go either way; acknowledged ones present: no violation.
        let mut findings = Findings::default();
        check_keys("n1", "unique insert", &[1, 5].into(), &history, key_of, &mut findings);
        assert!(findings.violations.is_empty(), "{:?}", findings.violations);
    }
}
