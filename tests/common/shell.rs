//! A real `sqlite3` shell process driven through its pipes, one batch of SQL at a time.
//!
//! Why one merged stream: the shell reports errors on stderr and results on stdout. Read from
//! two pipes by two threads, an error could reach us after the marker that ends its batch, and
//! be blamed on the next batch. The shell is therefore started as `sh -c 'exec sqlite3 2>&1'`:
//! stderr is unbuffered and the shell flushes stdout after every statement, so everything a
//! batch prints is in the one pipe before the marker that follows it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How long one batch may take before the shell counts as hung. Every `ha_*` call has its own
/// shorter deadline, so reaching this means something is wrong, not slow.
pub const BATCH_DEADLINE: Duration = Duration::from_secs(30);

/// Pause between polls of a node's state.
const POLL: Duration = Duration::from_millis(50);

/// The environment variable that turns the library's logging on (see src/ext.rs).
const LOG_ENV: &str = "DQLITE_VFS_LOG";

/// What a batch printed: its result lines, or the error lines the shell reported.
pub type BatchResult = Result<String, String>;

/// One `sqlite3` process whose working directory holds `./libdqlite_vfs.so`.
pub struct Shell {
    name: String,
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    batches: u64,
}

impl Shell {
    /// Starts `sqlite3` in `dir`; `name` labels its log lines and failure messages.
    pub fn start(name: &str, dir: &Path) -> Shell {
        Shell::start_with_env(name, dir, &[])
    }

    /// [`Shell::start`], with extra environment variables for the process.
    pub fn start_with_env(name: &str, dir: &Path, env: &[(&str, &str)]) -> Shell {
        let mut command = Command::new("/bin/sh");
        command.envs(env.iter().copied());
        command
            .arg("-c")
            // exec: the pid we hold is the shell's own, so kill() reaches sqlite3 itself.
            .arg(r#"exec "$0" -batch 2>&1"#)
            .arg(super::sqlite3_shell())
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        // Logs are only wanted when someone debugging asked for them.
        if std::env::var_os(LOG_ENV).is_none() {
            command.env_remove(LOG_ENV);
        }
        let mut child = command.spawn().expect("start sqlite3 through /bin/sh");
        let stdin = child.stdin.take().expect("stdin was piped");
        let stdout = child.stdout.take().expect("stdout was piped");
        let (sender, lines) = mpsc::channel();
        let label = name.to_owned();
        std::thread::spawn(move || {
            // Ends at EOF, i.e. when the process exits or is killed.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if is_log_line(&line) {
                    eprintln!("[{label}] {line}");
                } else if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Shell { name: name.to_owned(), child, stdin, lines, batches: 0 }
    }

    /// `ha_status()` as JSON.
    pub fn status(&mut self) -> serde_json::Value {
        let text = self.ok("SELECT ha_status();");
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("[{}] ha_status() is not JSON ({e}): {text}", self.name))
    }

    /// Polls (every [`POLL`]) until the node reports `wanted` as its role, for at most `deadline`.
    pub fn wait_for_role(&mut self, wanted: &str, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            let now = self.status()["role"].as_str().unwrap_or("?").to_owned();
            if now == wanted {
                return;
            }
            assert!(
                Instant::now() < until,
                "[{}] still {now} after {deadline:?}, expected {wanted}",
                self.name
            );
            std::thread::sleep(POLL);
        }
    }

    /// `ha_barrier()`, retried while the node is still finding its leader after a (re)start,
    /// for at most `deadline`.
    pub fn barrier(&mut self, deadline: Duration) {
        let until = Instant::now() + deadline;
        loop {
            match self.sql("SELECT ha_barrier();") {
                Ok(_) => return,
                Err(_) if Instant::now() < until => std::thread::sleep(POLL),
                Err(error) => {
                    panic!("[{}] ha_barrier() still failing after {deadline:?}: {error}", self.name)
                }
            }
        }
    }

    /// The label given at start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The OS process id of the `sqlite3` process (the shell `exec`s it), e.g. to read its
    /// `/proc/<pid>/status`.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `sql` (one or more statements or dot-commands) within [`BATCH_DEADLINE`].
    pub fn sql(&mut self, sql: &str) -> BatchResult {
        self.sql_within(sql, BATCH_DEADLINE)
    }

    /// Runs `sql` and panics, naming the shell and the SQL, if it reports an error.
    pub fn ok(&mut self, sql: &str) -> String {
        self.sql(sql).unwrap_or_else(|error| panic!("[{}] {sql}\nfailed: {error}", self.name))
    }

    /// Runs `sql`, then a marker query, and collects lines until the marker comes back.
    /// Panics if the shell dies or the deadline passes: after that its state is unknown.
    pub fn sql_within(&mut self, sql: &str, deadline: Duration) -> BatchResult {
        self.batches += 1;
        let marker = format!("__batch_{}_done__", self.batches);
        let input = format!("{sql}\nSELECT '{marker}';\n");
        self.stdin
            .write_all(input.as_bytes())
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| panic!("[{}] writing to sqlite3: {e}", self.name));
        let until = Instant::now() + deadline;
        let (mut output, mut errors) = (Vec::new(), Vec::new());
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                // The marker is written whole, with its newline, but a panic backtrace the
                // library prints meanwhile (stderr, written piece by piece into the same pipe)
                // may have begun the line: the marker ends the line, whatever precedes it.
                Ok(line) if line.ends_with(&marker) => {
                    let fragment = &line[..line.len() - marker.len()];
                    if !fragment.is_empty() {
                        output.push(fragment.to_owned());
                    }
                    break;
                }
                // An error's continuation lines (SQL excerpt, caret) follow its first line.
                Ok(line) if is_error_line(&line) || !errors.is_empty() => errors.push(line),
                Ok(line) => output.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    panic!("[{}] no answer within {deadline:?} to:\n{sql}\n(so far: {output:?} {errors:?})", self.name)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("[{}] sqlite3 exited while running:\n{sql}\n(so far: {output:?} {errors:?})", self.name)
                }
            }
        }
        if errors.is_empty() {
            Ok(output.join("\n"))
        } else {
            Err(errors.join("\n"))
        }
    }

    /// SIGSTOP: the node freezes (its sockets stay open, nothing answers) until `resume`.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after `pause`.
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "[{}] kill -{name} failed", self.name);
    }

    /// SIGKILL (what `Child::kill` sends on unix), then reap the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Shell {
    /// Never leave a node running after its test, whether it passed or panicked.
    fn drop(&mut self) {
        self.kill();
    }
}

/// The first line of an error report by the shell (SQL errors and dot-command errors).
fn is_error_line(line: &str) -> bool {
    ["Runtime error", "Parse error", "Error:"].iter().any(|prefix| line.starts_with(prefix))
}

/// A line of the library's tracing output, which starts with an RFC 3339 timestamp
/// (`2026-01-02T03:04:05.678Z`). No result row in these tests starts that way.
fn is_log_line(line: &str) -> bool {
    let bytes = line.as_bytes();
    bytes.len() > 20
        && bytes[..4].iter().all(u8::is_ascii_digit)
        && bytes[4] == b'-'
        && bytes[10] == b'T'
}
