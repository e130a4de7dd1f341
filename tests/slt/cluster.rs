//! A 3-node cluster inside one `sqlite3` shell: connection 0 is node 1 (the leader, which
//! created the cluster), connections 1 and 2 are followers that joined it. Statements go to the
//! leader; queries go to follower connection 1 after `ha_barrier()` has caught it up.

use super::shell::Shell;
use std::net::UdpSocket;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

/// Ports reserved for this test file; QUIC is UDP, so freeness is checked with UDP binds.
const PORT_RANGE: std::ops::Range<u16> = 17400..17500;
/// Generous: a debug build joining a node or committing can take a while on a busy machine.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// Offset in the range where the next port search starts, so consecutive clusters do not
/// reuse ports just freed.
static NEXT_PORT_OFFSET: AtomicU16 = AtomicU16::new(0);

/// What one SQL command produced: the quote-mode rows printed before any error, and the error.
#[derive(Debug)]
pub struct Outcome {
    pub rows: Vec<u8>,
    pub error: Option<ShellError>,
}

#[derive(Debug)]
pub struct ShellError {
    /// The statement compiled but failed while stepping (the shell says `Runtime error`).
    pub while_stepping: bool,
    /// The shell's message, including any context lines it printed.
    pub message: String,
}

pub struct Cluster {
    // Declared before the directory so the shell exits before its files are removed.
    shell: Shell,
    on_follower: bool,
    follower_stale: bool,
    _dir: tempfile::TempDir,
}

impl Cluster {
    pub fn start() -> Cluster {
        let dir = crate::common::scratch_with_extension();
        let shell = Shell::start(&crate::common::sqlite3_shell(), dir.path(), node_log());
        let mut cluster = Cluster { shell, on_follower: false, follower_stale: false, _dir: dir };
        let [p1, p2, p3] = free_ports();
        let setup = [
            ".load ./libdqlite_vfs".to_string(),
            ".mode quote".to_string(),
            ".open file:n1.db?vfs=ha".to_string(),
            format!("SELECT ha_init('127.0.0.1:{p1}');"),
        ];
        for command in setup {
            cluster.admin(&command);
        }
        for (connection, port) in [(1, p2), (2, p3)] {
            // Each joiner needs its own token; `.mode quote` prints it in quotes, ready to paste.
            cluster.admin(".connection 0");
            let token = cluster.admin_output("SELECT ha_token();");
            cluster.admin(&format!(".connection {connection}"));
            cluster.admin(&format!(".open file:n{}.db?vfs=ha", connection + 1));
            cluster.admin(&format!(
                "SELECT ha_join('127.0.0.1:{port}', '127.0.0.1:{p1}', {});",
                token.trim()
            ));
        }
        cluster.admin(".connection 0");
        cluster
    }

    /// Runs a statement on the leader.
    pub fn statement(&mut self, sql: &str) -> Outcome {
        if self.on_follower {
            self.admin(".connection 0");
            self.on_follower = false;
        }
        self.follower_stale = true;
        self.sql(sql)
    }

    /// Runs a query on follower connection 1, first catching it up if statements ran since.
    pub fn query(&mut self, sql: &str) -> Outcome {
        if !self.on_follower {
            self.admin(".connection 1");
            self.on_follower = true;
        }
        if self.follower_stale {
            self.admin("SELECT ha_barrier();");
            self.follower_stale = false;
        }
        self.sql(sql)
    }

    fn sql(&mut self, sql: &str) -> Outcome {
        // A trailing `;` ends the statement for the shell; an extra empty one is harmless.
        let output = self
            .shell
            .run(&format!("{sql}\n;"), COMMAND_DEADLINE)
            .unwrap_or_else(|why| panic!("{why}\nSQL: {sql}"));
        split_error(output)
    }

    /// A setup or control command that must succeed.
    fn admin(&mut self, command: &str) {
        self.admin_output(command);
    }

    /// A setup or control command that must succeed; returns what it printed.
    fn admin_output(&mut self, command: &str) -> String {
        let output = self
            .shell
            .run(command, COMMAND_DEADLINE)
            .unwrap_or_else(|why| panic!("{command}: {why}"));
        let outcome = split_error(output);
        if let Some(error) = outcome.error {
            panic!("{command} failed: {}\n{}", error.message, self.status_of_all_nodes());
        }
        String::from_utf8_lossy(&outcome.rows).into_owned()
    }

    /// `ha_status()` of every node, for failure messages (best effort, never panics).
    fn status_of_all_nodes(&mut self) -> String {
        let mut lines = Vec::new();
        for connection in 0..3 {
            let command = format!(".connection {connection}\nSELECT ha_status();");
            let status = self
                .shell
                .run(&command, COMMAND_DEADLINE)
                .map(|out| String::from_utf8_lossy(&out).into_owned());
            lines.push(format!(
                "node {}: {}",
                connection + 1,
                status.unwrap_or_else(|why| why).trim_end()
            ));
        }
        lines.join("\n")
    }
}

/// Splits a command's output at the shell's first error report, which is
/// `Parse error near line N: ...` (preparing failed), `Runtime error near line N: ...`
/// (stepping failed, after any rows already printed) or `Error: ...`. In quote mode no row
/// line can start that way, because text values are quoted.
fn split_error(output: Vec<u8>) -> Outcome {
    let mut start = 0;
    for line in output.split_inclusive(|b| *b == b'\n') {
        let is_error = [&b"Parse error"[..], b"Runtime error", b"Error"]
            .iter()
            .any(|prefix| line.starts_with(prefix));
        if is_error {
            let message = String::from_utf8_lossy(&output[start..]).trim_end().to_string();
            let error = ShellError { while_stepping: line.starts_with(b"Runtime error"), message };
            return Outcome { rows: output[..start].to_vec(), error: Some(error) };
        }
        start += line.len();
    }
    Outcome { rows: output, error: None }
}

/// For debugging: `SLT_NODE_LOG=<filter>` (e.g. `dqlite_vfs=info,openraft=warn`) appends the
/// nodes' logs to `$TMPDIR/t40_sqllogictest-nodes.log`.
fn node_log() -> Option<(&'static str, std::fs::File)> {
    let filter: &'static str = std::env::var("SLT_NODE_LOG").ok()?.leak();
    let path = std::env::temp_dir().join("t40_sqllogictest-nodes.log");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .expect("open the node log");
    eprintln!("node logs go to {}", path.display());
    Some((filter, file))
}

/// Three ports in the reserved range that are free for UDP right now.
fn free_ports() -> [u16; 3] {
    let span = PORT_RANGE.end - PORT_RANGE.start;
    let mut found = Vec::new();
    for _ in 0..span {
        let port = PORT_RANGE.start + NEXT_PORT_OFFSET.fetch_add(1, Ordering::Relaxed) % span;
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            found.push(port);
            if found.len() == 3 {
                return [found[0], found[1], found[2]];
            }
        }
    }
    panic!("fewer than 3 free UDP ports in {PORT_RANGE:?}");
}
