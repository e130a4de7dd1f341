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

/// What one SQL command produced: its output (quote-mode rows), or the shell's error text.
pub type Outcome = Result<Vec<u8>, String>;

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
        let shell = Shell::start(&crate::common::sqlite3_shell(), dir.path());
        let mut cluster = Cluster { shell, on_follower: false, follower_stale: false, _dir: dir };
        let [p1, p2, p3] = free_ports();
        let setup = [
            ".load ./libdqlite_vfs".to_string(),
            ".mode quote".to_string(),
            ".open file:n1.db?vfs=ha".to_string(),
            format!("SELECT ha_init('127.0.0.1:{p1}');"),
            ".connection 1".to_string(),
            ".open file:n2.db?vfs=ha".to_string(),
            format!("SELECT ha_join('127.0.0.1:{p2}', '127.0.0.1:{p1}');"),
            ".connection 2".to_string(),
            ".open file:n3.db?vfs=ha".to_string(),
            format!("SELECT ha_join('127.0.0.1:{p3}', '127.0.0.1:{p1}');"),
            ".connection 0".to_string(),
        ];
        for command in setup {
            cluster.admin(&command);
        }
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
        let output = self.shell.run(&format!("{sql}\n;"), COMMAND_DEADLINE).unwrap_or_else(|why| panic!("{why}\nSQL: {sql}"));
        match error_text(&output) {
            Some(error) => Err(error),
            None => Ok(output),
        }
    }

    /// A setup or control command that must succeed.
    fn admin(&mut self, command: &str) {
        let output = self.shell.run(command, COMMAND_DEADLINE).unwrap_or_else(|why| panic!("{command}: {why}"));
        if let Some(error) = error_text(&output) {
            panic!("{command} failed: {error}");
        }
    }
}

/// The shell reports errors as `Parse error near line N: ...`, `Runtime error near line N: ...`
/// or `Error: ...`. In quote mode no row can start that way (text is quoted).
fn error_text(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let is_error = text.lines().any(|line| {
        line.starts_with("Parse error") || line.starts_with("Runtime error") || line.starts_with("Error")
    });
    is_error.then(|| text.trim_end().to_string())
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
