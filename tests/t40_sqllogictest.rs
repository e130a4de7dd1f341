//! Goal: the sqllogictest corpus in `../shared/sqllogictest/` (select1..5 and evidence/*,
//! about 11,000 records) gives the expected results on a replicated 3-node cluster.
//!
//! Method: each corpus file gets a fresh cluster inside one real `sqlite3` shell with the
//! built extension loaded (see `slt::cluster`). Statements run on the leader and must succeed
//! (`statement ok`) or fail (`statement error`); queries run on a follower after
//! `ha_barrier()` has caught it up, and their rows (read in `.mode quote`, so types and exact
//! values survive) are rendered per column type (I/T/R), sorted per the sort mode, hashed
//! with MD5 when there are more values than the hash threshold (8 unless the file says
//! otherwise), and compared with the expected result; queries sharing a label must agree.
//! As in the reference harness, an error while stepping a query ends its result (such
//! queries are listed in the summary); an error while preparing it fails the record.
//! Records for other engines (`skipif sqlite`, `onlyif <other>`) are not run and are counted
//! apart; any record this test itself skips is listed with its reason in `KNOWN_SKIPS` and in
//! the printed summary. Run with `--nocapture` to see the summary; `SLT_ONLY=<substring>`
//! runs only the files whose name contains it (for debugging).

mod common;
mod slt;

use md5::{Digest, Md5};
use slt::cluster::{Cluster, Outcome};
use slt::parse::{parse_script, Expected, Kind, Record, SortMode};
use slt::value::{parse_quote_rows, render};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The engine name `skipif` / `onlyif` lines are matched against.
const ENGINE: &str = "sqlite";
/// The README asks for a threshold of 8 where a file does not set one.
const DEFAULT_HASH_THRESHOLD: usize = 8;
/// Records this test deliberately does not run: (file relative to the corpus, header line,
/// why). Empty while everything passes; every entry is printed in the summary.
const KNOWN_SKIPS: &[(&str, usize, &str)] = &[];
/// Failures shown per file in the panic message (the count is always complete).
const FAILURES_SHOWN: usize = 10;

/// `<project>/../shared/sqllogictest`, as CI checks `shared/` out beside the project.
fn corpus_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/sqllogictest");
    assert!(
        dir.join("README.md").is_file(),
        "the sqllogictest corpus is missing: expected {} (clone `shared/` beside the project)",
        dir.display()
    );
    dir
}

/// select1..5 first, then the evidence files, each group in name order.
fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in [dir.to_path_buf(), dir.join("evidence")] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(&sub)
            .unwrap_or_else(|e| panic!("read {}: {e}", sub.display()))
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "test"))
            .collect();
        found.sort();
        files.extend(found);
    }
    assert!(!files.is_empty(), "no .test files in {}", dir.display());
    files
}

#[derive(Default)]
struct FileReport {
    name: String,
    passed: usize,
    failures: Vec<String>,
    /// Records whose skipif/onlyif conditions exclude sqlite.
    other_engine: usize,
    /// Records skipped through KNOWN_SKIPS: (line, reason).
    skipped: Vec<(usize, &'static str)>,
    /// Passed queries whose result was ended by a runtime error: (line, message).
    ended_by_error: Vec<(usize, String)>,
    /// The line of a `halt` that stopped the file early, if any.
    halted_at: Option<usize>,
    seconds: f64,
}

impl FileReport {
    fn ran(&self) -> usize {
        self.passed + self.failures.len()
    }
}

/// Per-file state that records change: the hash threshold and the results seen per label.
struct FileState {
    hash_threshold: usize,
    labels: HashMap<String, String>,
    /// Queries whose result was ended by a runtime error: (line, message).
    ended_by_error: Vec<(usize, String)>,
}

fn run_file(path: &Path, name: &str) -> FileReport {
    let started = Instant::now();
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let records = parse_script(name, &text).unwrap_or_else(|why| panic!("{why}"));
    let mut report = FileReport { name: name.to_string(), ..FileReport::default() };
    let mut state = FileState {
        hash_threshold: DEFAULT_HASH_THRESHOLD,
        labels: HashMap::new(),
        ended_by_error: Vec::new(),
    };
    let mut cluster = Cluster::start();
    for record in &records {
        if !record.applies_to(ENGINE) {
            report.other_engine += 1;
            continue;
        }
        if let Some(reason) = known_skip(name, record.line) {
            report.skipped.push((record.line, reason));
            continue;
        }
        match run_record(&mut cluster, &mut state, record) {
            RecordResult::Passed => report.passed += 1,
            RecordResult::Failed(why) => {
                report.failures.push(format!("{name}:{}: {why}", record.line))
            }
            RecordResult::Control => {}
            RecordResult::Halt => {
                report.halted_at = Some(record.line);
                break;
            }
        }
    }
    drop(cluster);
    report.ended_by_error = state.ended_by_error;
    report.seconds = started.elapsed().as_secs_f64();
    report
}

fn known_skip(name: &str, line: usize) -> Option<&'static str> {
    KNOWN_SKIPS.iter().find(|(file, at, _)| *file == name && *at == line).map(|(_, _, why)| *why)
}

enum RecordResult {
    Passed,
    Failed(String),
    /// `hash-threshold`: changes state, is not a test by itself.
    Control,
    Halt,
}

fn run_record(cluster: &mut Cluster, state: &mut FileState, record: &Record) -> RecordResult {
    match &record.kind {
        Kind::HashThreshold(n) => {
            state.hash_threshold = *n;
            RecordResult::Control
        }
        Kind::Halt => RecordResult::Halt,
        Kind::Statement { expect_error, sql } => {
            check_statement(*expect_error, cluster.statement(sql), sql)
        }
        Kind::Query { types, sort, label, sql, expected } => {
            let outcome = cluster.query(sql);
            match check_query(state, record.line, types, *sort, label.as_deref(), expected, outcome)
            {
                Ok(()) => RecordResult::Passed,
                Err(why) => RecordResult::Failed(format!("{why}\n    SQL: {sql}")),
            }
        }
    }
}

fn check_statement(expect_error: bool, outcome: Outcome, sql: &str) -> RecordResult {
    match (expect_error, outcome.error) {
        (false, None) | (true, Some(_)) => RecordResult::Passed,
        (false, Some(error)) => {
            RecordResult::Failed(format!("statement failed: {}\n    SQL: {sql}", error.message))
        }
        (true, None) => RecordResult::Failed(format!(
            "statement succeeded but an error was expected\n    SQL: {sql}"
        )),
    }
}

fn check_query(
    state: &mut FileState,
    line: usize,
    types: &str,
    sort: SortMode,
    label: Option<&str>,
    expected: &Expected,
    outcome: Outcome,
) -> Result<(), String> {
    // Like the reference harness, an error while stepping ends the result (the rows so far
    // count); it is recorded so the summary lists it. An error while preparing fails the query.
    if let Some(error) = outcome.error {
        if !error.while_stepping {
            return Err(format!("query failed: {}", error.message));
        }
        state.ended_by_error.push((line, error.message));
    }
    let output = outcome.rows;
    let rows = parse_quote_rows(&output).map_err(|why| {
        format!("unreadable output ({why}): {}", String::from_utf8_lossy(&output))
    })?;
    let values = rendered_values(&rows, types, sort)?;
    let actual = if values.len() > state.hash_threshold {
        Expected::Hash { count: values.len(), md5: md5_of_values(&values) }
    } else {
        Expected::Values(values.clone())
    };
    if actual != *expected {
        return Err(format!(
            "result differs\n    expected: {}\n    actual:   {}",
            describe(expected),
            describe(&actual)
        ));
    }
    if let Some(label) = label {
        let digest = format!("{} values hashing to {}", values.len(), md5_of_values(&values));
        let first = state.labels.entry(label.to_string()).or_insert_with(|| digest.clone());
        if *first != digest {
            return Err(format!(
                "label {label}: {digest}, but an earlier query with this label gave {first}"
            ));
        }
    }
    Ok(())
}

/// Renders every cell per its column type and orders values as the sort mode says.
fn rendered_values(
    rows: &[Vec<slt::value::Cell>],
    types: &str,
    sort: SortMode,
) -> Result<Vec<String>, String> {
    let mut rendered_rows = Vec::with_capacity(rows.len());
    for row in rows {
        if row.len() != types.len() {
            return Err(format!(
                "a row has {} columns, the type string {types:?} says {}",
                row.len(),
                types.len()
            ));
        }
        rendered_rows.push(
            row.iter().zip(types.chars()).map(|(cell, t)| render(cell, t)).collect::<Vec<_>>(),
        );
    }
    if sort == SortMode::RowSort {
        rendered_rows.sort();
    }
    let mut values: Vec<String> = rendered_rows.into_iter().flatten().collect();
    if sort == SortMode::ValueSort {
        values.sort();
    }
    Ok(values)
}

/// The corpus hashes the values each followed by a newline.
fn md5_of_values(values: &[String]) -> String {
    let mut hasher = Md5::new();
    for value in values {
        hasher.update(value.as_bytes());
        hasher.update(b"\n");
    }
    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn describe(result: &Expected) -> String {
    match result {
        Expected::Values(values) => format!("{values:?}"),
        Expected::Hash { count, md5 } => format!("{count} values hashing to {md5}"),
    }
}

fn print_summary(reports: &[FileReport], seconds: f64) {
    println!("\nsqllogictest on a 3-node cluster: {} files in {seconds:.1}s", reports.len());
    println!(
        "{:<40} {:>7} {:>7} {:>7} {:>8} {:>9} {:>7}",
        "file", "run", "passed", "failed", "skipped", "other-db", "secs"
    );
    for r in reports {
        let halted = r.halted_at.map(|line| format!("  (halt at line {line})")).unwrap_or_default();
        println!(
            "{:<40} {:>7} {:>7} {:>7} {:>8} {:>9} {:>7.1}{halted}",
            r.name,
            r.ran(),
            r.passed,
            r.failures.len(),
            r.skipped.len(),
            r.other_engine,
            r.seconds
        );
    }
    let sum = |f: fn(&FileReport) -> usize| reports.iter().map(f).sum::<usize>();
    println!(
        "{:<40} {:>7} {:>7} {:>7} {:>8} {:>9}",
        "total",
        sum(FileReport::ran),
        sum(|r| r.passed),
        sum(|r| r.failures.len()),
        sum(|r| r.skipped.len()),
        sum(|r| r.other_engine)
    );
    println!("(other-db: records whose skipif/onlyif lines exclude sqlite; not run by design)");
    for r in reports {
        for (line, why) in &r.skipped {
            println!("skipped {}:{line}: {why}", r.name);
        }
        for (line, message) in &r.ended_by_error {
            let first_line = message.lines().next().unwrap_or_default();
            println!(
                "result ended by an error (as the reference harness does) {}:{line}: {first_line}",
                r.name
            );
        }
    }
}

#[test]
fn sqllogictest_corpus_passes_on_a_three_node_cluster() {
    let started = Instant::now();
    let dir = corpus_dir();
    let only = std::env::var("SLT_ONLY").unwrap_or_default();
    let mut reports = Vec::new();
    for path in corpus_files(&dir) {
        let name =
            path.strip_prefix(&dir).expect("file is in the corpus").to_string_lossy().into_owned();
        if !name.contains(&only) {
            continue;
        }
        eprintln!("sqllogictest: {name} ...");
        reports.push(run_file(&path, &name));
    }
    print_summary(&reports, started.elapsed().as_secs_f64());
    let failures: Vec<&String> =
        reports.iter().flat_map(|r| r.failures.iter().take(FAILURES_SHOWN)).collect();
    let failed: usize = reports.iter().map(|r| r.failures.len()).sum();
    assert!(
        failed == 0,
        "{failed} records failed (up to {FAILURES_SHOWN} per file shown):\n{}",
        failures.iter().map(|f| f.as_str()).collect::<Vec<_>>().join("\n")
    );
}
