//! One long-lived `sqlite3` shell process driven through pipes.
//!
//! stdout and stderr share one pipe so error messages arrive in order with the rows. After
//! each command we send `.print <marker>` and read until that marker line: everything before
//! it is the command's output. Every read has a deadline, and the process is killed on drop.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

pub struct Shell {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Vec<u8>>,
    next_marker: u64,
}

impl Shell {
    /// Starts `sqlite3` in `dir` with no database open yet. With `node_log` (a
    /// `DQLITE_VFS_LOG` filter and a file), the extension logs and its log lines are diverted
    /// to the file instead of being taken for output.
    pub fn start(shell: &Path, dir: &Path, node_log: Option<(&str, std::fs::File)>) -> Shell {
        let (reader, writer) = std::io::pipe().expect("pipe for the shell's output");
        let mut command = Command::new(shell);
        let log_file = node_log.map(|(filter, file)| {
            command.env("DQLITE_VFS_LOG", filter);
            file
        });
        let mut child = command
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(writer.try_clone().expect("clone output pipe"))
            .stderr(writer)
            .spawn()
            .expect("start the sqlite3 shell");
        let stdin = child.stdin.take().expect("shell stdin is piped");
        Shell {
            child,
            stdin: Some(stdin),
            lines: spawn_line_reader(reader, log_file),
            next_marker: 0,
        }
    }

    /// Sends `input` (one or more complete commands) and returns all output it produced.
    pub fn run(&mut self, input: &str, deadline: Duration) -> Result<Vec<u8>, String> {
        self.next_marker += 1;
        let marker = format!("__slt_end_{}__", self.next_marker);
        let stdin = self.stdin.as_mut().expect("shell stdin open");
        write!(stdin, "{input}\n.print {marker}\n")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("write to shell: {e}"))?;
        self.read_until_marker(&marker, deadline)
    }

    fn read_until_marker(&mut self, marker: &str, deadline: Duration) -> Result<Vec<u8>, String> {
        let until = Instant::now() + deadline;
        let mut output = Vec::new();
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.strip_suffix(b"\n").unwrap_or(&line) == marker.as_bytes() => {
                    return Ok(output)
                }
                Ok(line) => output.extend_from_slice(&line),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(format!(
                        "no answer within {deadline:?}; output so far: {}",
                        String::from_utf8_lossy(&output)
                    ))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(format!(
                        "the shell exited; last output: {}",
                        String::from_utf8_lossy(&output)
                    ))
                }
            }
        }
    }
}

/// Reads the shell's output on a thread, so the shell never blocks on a full pipe and the
/// test can wait with a deadline. Log lines of the extension (they start with an ANSI escape
/// or an ISO timestamp) go to `log_file` when one is given.
fn spawn_line_reader(
    reader: std::io::PipeReader,
    mut log_file: Option<std::fs::File>,
) -> Receiver<Vec<u8>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if let Some(file) = log_file.as_mut().filter(|_| is_log_line(&line)) {
                        let _ = file.write_all(&line);
                        continue;
                    }
                    if sender.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    receiver
}

fn is_log_line(line: &[u8]) -> bool {
    let timestamp = line.len() > 11
        && line[..4].iter().all(u8::is_ascii_digit)
        && line[4] == b'-'
        && line[10] == b'T';
    line.starts_with(b"\x1b[") || timestamp
}

impl Drop for Shell {
    fn drop(&mut self) {
        // Closing stdin lets the shell exit cleanly (nodes shut down); kill it if it lingers.
        drop(self.stdin.take());
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
