//! Goal: the extension behaves as documented when driven by the real `sqlite3` shell.
//! Method: each `sql-tests/NNN_topic.sql` runs in a fresh directory holding the built
//! library as `./libdqlite_vfs.so`; the shell's stdout, stderr and exit code must equal
//! `NNN_topic.expected`. `UPDATE_EXPECTED=1 cargo test --test t20_sql_golden` rewrites the
//! expected files (review the diff before committing).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A script that runs longer than this has hung (every ha_* call has its own deadline).
const SCRIPT_DEADLINE: Duration = Duration::from_secs(120);

fn scripts() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql-tests");
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .expect("sql-tests/")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
        .collect();
    scripts.sort();
    scripts
}

fn run_script(script: &Path) -> String {
    let scratch = common::scratch_with_extension();
    let mut child = Command::new(common::sqlite3_shell())
        .current_dir(scratch.path())
        .stdin(std::fs::File::open(script).expect("script"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start sqlite3");
    let started = Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > SCRIPT_DEADLINE {
            let _ = child.kill();
            panic!("{} did not finish within {SCRIPT_DEADLINE:?}", script.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().expect("output");
    let scratch_path = scratch.path().to_string_lossy().into_owned();
    let clean = |bytes: &[u8]| {
        mask_random_values(&String::from_utf8_lossy(bytes).replace(&scratch_path, "$SCRATCH"))
    };
    format!(
        "{}-- stderr --\n{}-- exit: {} --\n",
        clean(&output.stdout),
        clean(&output.stderr),
        output.status.code().map_or("signal".to_string(), |c| c.to_string())
    )
}

/// Masks what differs on every run: token ids (16 hex digits), CA fingerprints (64 hex
/// digits) and Unix times (10 decimal digits), so error messages that name them still compare.
fn mask_random_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        let digits = run.bytes().all(|b| b.is_ascii_digit());
        out.push_str(match run.len() {
            10 if digits => "<unix-time>",
            16 => "<token-id>",
            64 => "<fingerprint>",
            _ => run.as_str(),
        });
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || ('a'..='f').contains(&c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

#[test]
fn masking_keeps_ordinary_output() {
    // Goal: only values of the masked shapes change; words and short numbers stay.
    let text = "token 7ac8d0c91e956141 expired at unix time 1796378252 s; abc 42 deadbeef";
    assert_eq!(
        mask_random_values(text),
        "token <token-id> expired at unix time <unix-time> s; abc 42 deadbeef"
    );
}

#[test]
fn sql_scripts_match_their_expected_output() {
    let update = std::env::var("UPDATE_EXPECTED").is_ok_and(|v| v == "1");
    let scripts = scripts();
    assert!(!scripts.is_empty(), "no scripts in sql-tests/");
    let mut failures = Vec::new();
    for script in &scripts {
        let actual = run_script(script);
        let expected_path = script.with_extension("expected");
        if update {
            std::fs::write(&expected_path, &actual).expect("write expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            failures.push(format!(
                "{}:\n--- expected ---\n{expected}--- actual ---\n{actual}",
                script.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} scripts differ:\n{}",
        failures.len(),
        scripts.len(),
        failures.join("\n")
    );
}
